//! gilgate's `dlsym` and `dlvsym`: a host that loads libpython with `dlopen` and resolves the C
//! API with `dlsym` on that handle (plugin hosts, R's reticulate, Julia's PyCall) would get
//! libpython's own `PyGILState_Ensure` & co. whatever is preloaded. Here, a lookup of one of the
//! CPython functions gilgate exports (drop-in mode), on an explicit handle, that resolves to
//! CPython's own definition returns gilgate's export instead. Everything else is libc's:
//! - any other name, `RTLD_DEFAULT` and `RTLD_NEXT` lookups, and lookups made by gilgate itself or
//!   by CPython's own code are not touched: the exported symbol is a trampoline that asks a filter
//!   (no allocation, no lock, a few byte compares for a name that is not one of ours) and then
//!   *tail-jumps* to libc's function, so libc sees the caller's own return address and resolves
//!   `RTLD_NEXT` and `RTLD_DEFAULT` relative to the caller, not to gilgate;
//! - under a preload (or gilgate linked ahead of libc), `RTLD_DEFAULT` lookups of these names
//!   already find gilgate's exports first (the global scope), so only explicit handles need this.
//!
//! libc's own functions are found by reading the dynamic symbol tables of the loaded objects
//! (`dl_iterate_phdr`, GNU or SysV hash): gilgate's own references to `dlsym`/`dlvsym` bind to
//! these very exports (an unversioned definition satisfies `dlsym@GLIBC_2.34`), so neither
//! `dlsym(RTLD_NEXT, ..)` nor a versioned reference could bootstrap them.
//!
//! The replacement path (one of our names, an explicit handle, a host caller) makes the real
//! lookup itself (libc takes its loader lock for every dlsym), and may bind gilgate to the CPython
//! just loaded (`cpython::api`, once). Where gilgate is not in the global scope ahead of libc (it
//! was `dlopen`ed late), the host's `dlsym` calls never reach these exports:
//! `GILGATE_VERBOSE=1` says so at load.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

/// CPython functions that gilgate exports with CPython's signature (exports/dropin.rs). A name here
/// that gilgate does not export (found in its own dynamic symbol table at init) is left alone;
/// harness/tests/launcher.rs checks that this list and the exports agree.
const NAMES: [&[u8]; 14] = [
    b"PyEval_RestoreThread",
    b"PyEval_AcquireThread",
    b"PyGILState_Ensure",
    b"PyEval_AcquireLock",
    b"PyEval_SaveThread",
    b"PyEval_ReleaseThread",
    b"PyGILState_Release",
    b"PyEval_ReleaseLock",
    b"PyThreadState_New",
    b"PyThreadState_DeleteCurrent",
    b"_PyThreadState_DeleteCurrent",
    b"PyThreadState_Swap",
    b"Py_FinalizeEx",
    b"Py_Finalize",
];

static REAL_DLSYM: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_DLVSYM: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
/// gilgate's own executable segments, [lo, hi): its own lookups are never rewritten.
static OWN_LO: AtomicUsize = AtomicUsize::new(0);
static OWN_HI: AtomicUsize = AtomicUsize::new(0);
/// gilgate's export for NAMES[i], 0 if it has none.
static OURS: [AtomicUsize; NAMES.len()] = [const { AtomicUsize::new(0) }; NAMES.len()];
static READY: AtomicBool = AtomicBool::new(false);
/// Lookups rewritten to gilgate's exports (GILGATE_VERBOSE reports the first).
static REWRITTEN: AtomicUsize = AtomicUsize::new(0);

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type DlvsymFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;

// ---- the exports ---------------------------------------------------------------------------

/// gilgate's `dlsym` (see the module docs): `filter` decides; 0 means "libc's answer", reached by
/// a tail jump so that libc sees the caller's return address.
///
/// # Safety
/// Same contract as libc's dlsym.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlsym(_handle: *mut c_void, _name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "mov rdx, [rsp + 24]", // the caller's return address
        "call {filter}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz 2f",
        "ret",
        "2:",
        "jmp qword ptr [rip + {real}]",
        filter = sym dlsym_filter,
        real = sym REAL_DLSYM,
    )
}

/// gilgate's `dlvsym`: as `dlsym`, with a version (CPython's symbols are unversioned, and glibc
/// accepts an unversioned definition for any requested version).
///
/// # Safety
/// Same contract as libc's dlvsym.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlvsym(_handle: *mut c_void, _name: *const c_char, _version: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        "push rdx",
        "mov rcx, [rsp + 24]",
        "call {filter}",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz 2f",
        "ret",
        "2:",
        "jmp qword ptr [rip + {real}]",
        filter = sym dlvsym_filter,
        real = sym REAL_DLVSYM,
    )
}

/// # Safety
/// Same contract as libc's dlsym.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlsym(_handle: *mut c_void, _name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-32]!",
        "mov x29, sp",
        "stp x0, x1, [sp, #16]",
        "mov x2, x30",
        "bl {filter}",
        "cbnz x0, 2f",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #32",
        "adrp x16, {real}",
        "ldr x16, [x16, :lo12:{real}]",
        "br x16",
        "2:",
        "ldp x29, x30, [sp], #32",
        "ret",
        filter = sym dlsym_filter,
        real = sym REAL_DLSYM,
    )
}

/// # Safety
/// Same contract as libc's dlvsym.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlvsym(_handle: *mut c_void, _name: *const c_char, _version: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-48]!",
        "mov x29, sp",
        "stp x0, x1, [sp, #16]",
        "str x2, [sp, #32]",
        "mov x3, x30",
        "bl {filter}",
        "cbnz x0, 2f",
        "ldp x0, x1, [sp, #16]",
        "ldr x2, [sp, #32]",
        "ldp x29, x30, [sp], #48",
        "adrp x16, {real}",
        "ldr x16, [x16, :lo12:{real}]",
        "br x16",
        "2:",
        "ldp x29, x30, [sp], #48",
        "ret",
        filter = sym dlvsym_filter,
        real = sym REAL_DLVSYM,
    )
}

// ---- the filter ------------------------------------------------------------------------------

extern "C" fn dlsym_filter(handle: *mut c_void, name: *const c_char, ra: usize) -> *mut c_void {
    ffi_boundary!({
        filter(handle, name, ra, |h, n| {
            let f = REAL_DLSYM.load(Acquire);
            // SAFETY: f is libc's dlsym (init aborts if it cannot be found); the caller's own
            // arguments. An explicit handle's lookup does not depend on the caller's address.
            unsafe { std::mem::transmute::<*mut c_void, DlsymFn>(f)(h, n) }
        })
    })
}

extern "C" fn dlvsym_filter(handle: *mut c_void, name: *const c_char, version: *const c_char, ra: usize) -> *mut c_void {
    ffi_boundary!({
        filter(handle, name, ra, |h, n| {
            let f = REAL_DLVSYM.load(Acquire);
            // SAFETY: as in dlsym_filter, with libc's dlvsym.
            unsafe { std::mem::transmute::<*mut c_void, DlvsymFn>(f)(h, n, version) }
        })
    })
}

/// Null: let libc answer (the trampoline tail-jumps). Otherwise the value to return.
#[inline(always)]
fn filter(handle: *mut c_void, name: *const c_char, ra: usize, real: impl FnOnce(*mut c_void, *const c_char) -> *mut c_void) -> *mut c_void {
    if !READY.load(Acquire) {
        init_tables();
    }
    // RTLD_DEFAULT (0) and RTLD_NEXT (-1): the caller's scope matters; libc answers.
    if handle.is_null() || handle as isize == -1 || name.is_null() {
        return std::ptr::null_mut();
    }
    let Some(i) = our_name(name) else { return std::ptr::null_mut() };
    let ours = OURS[i].load(Relaxed);
    if ours == 0 || own_code(ra) || crate::origin::in_cpython(ra) {
        return std::ptr::null_mut();
    }
    replace(i, ours, real(handle, name))
}

#[cold]
#[inline(never)]
fn replace(i: usize, ours: usize, p: *mut c_void) -> *mut c_void {
    if p.is_null() || p as usize == ours || !crate::config::get().dlsym {
        return p;
    }
    if !crate::origin::in_cpython(p as usize) && crate::cpython::api_if_resolved().is_none() {
        // A CPython loaded after gilgate: bind to it now (it records CPython's code range).
        let _ = crate::cpython::api();
    }
    if !crate::origin::in_cpython(p as usize) {
        return p; // not the CPython gilgate fronts
    }
    let n = REWRITTEN.fetch_add(1, Relaxed);
    if n == 0 && crate::config::get().verbose {
        crate::log::Line::new().s("dlsym: lookups of CPython's thread-state functions on a libpython handle return gilgate's exports (first: ")
            .s(std::str::from_utf8(NAMES[i]).unwrap_or("?")).s(")").emit();
    }
    ours as *mut c_void
}

/// Index in NAMES of the NUL-terminated `name`, without strlen or allocation.
#[inline(always)]
fn our_name(name: *const c_char) -> Option<usize> {
    let p = name as *const u8;
    // SAFETY: name is a NUL-terminated string (dlsym's contract); we read at most up to its NUL.
    let (b0, b1) = unsafe { (*p, if *p == 0 { 0 } else { *p.add(1) }) };
    if !((b0 == b'P' && b1 == b'y') || (b0 == b'_' && b1 == b'P')) {
        return None;
    }
    'names: for (i, n) in NAMES.iter().enumerate() {
        for (k, &c) in n.iter().enumerate() {
            // SAFETY: every byte compared so far was equal to a non-NUL byte, so the string goes on.
            if unsafe { *p.add(k) } != c {
                continue 'names;
            }
        }
        // SAFETY: as above: index n.len() is at most the terminating NUL.
        if unsafe { *p.add(n.len()) } == 0 {
            return Some(i);
        }
    }
    None
}

#[inline(always)]
fn own_code(ra: usize) -> bool {
    ra >= OWN_LO.load(Relaxed) && ra < OWN_HI.load(Relaxed)
}

// ---- finding libc's functions and our own exports ----------------------------------------------

/// Library constructor (also run lazily by the first lookup, which may come from an earlier
/// constructor): find libc's dlsym/dlvsym and gilgate's exports; with GILGATE_VERBOSE, say whether
/// the host's lookups reach us.
pub(crate) fn init() {
    if !READY.load(Acquire) {
        init_tables();
    }
    if crate::config::get().verbose {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name (through our own export when
        // it interposes: a pass-through lookup).
        let seen = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"dlsym".as_ptr()) };
        let ours = !seen.is_null() && crate::cpython::object_base(seen) == crate::cpython::own_base();
        let mut l = crate::log::Line::new();
        if ours {
            l.s("interposing dlsym/dlvsym: hosts that dlopen libpython and dlsym its thread-state functions get gilgate's");
        } else {
            l.s("NOT interposing dlsym (loaded too late: dlopen?): a host that dlopens libpython and resolves its functions with dlsym bypasses gilgate");
        }
        l.emit();
    }
}

/// What one pass over the loaded objects found.
struct Scan {
    own_addr: usize,
    own_index: usize,
    own: Option<Obj>,
    /// (index in load order, dlsym, dlvsym) of each object other than gilgate defining dlsym.
    found: [(usize, usize, usize); 4],
    nfound: usize,
    index: usize,
}

#[derive(Clone, Copy)]
struct Obj {
    base: usize,
    symtab: usize,
    strtab: usize,
    gnu_hash: usize,
    hash: usize,
    versym: usize,
    lo: usize,
    hi: usize,
}

#[cold]
fn init_tables() {
    let mut scan = Scan {
        own_addr: init_tables as *const () as usize,
        own_index: usize::MAX,
        own: None,
        found: [(0, 0, 0); 4],
        nfound: 0,
        index: 0,
    };
    // SAFETY: the callback only reads the program headers and dynamic sections it is handed.
    unsafe { libc::dl_iterate_phdr(Some(scan_cb), &mut scan as *mut Scan as *mut c_void) };
    // libc's: the first definition after gilgate in load order (what RTLD_NEXT from gilgate
    // would give), else the first anywhere (gilgate loaded late).
    let pick = scan.found[..scan.nfound].iter().find(|f| f.0 > scan.own_index).or(scan.found[..scan.nfound].first());
    let Some(&(_, ds, dvs)) = pick else {
        crate::log::Line::new().s("fatal: libc's dlsym not found among the loaded objects").emit();
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    };
    REAL_DLSYM.store(ds as *mut c_void, Release);
    REAL_DLVSYM.store(dvs as *mut c_void, Release);
    if let Some(own) = scan.own {
        for (i, n) in NAMES.iter().enumerate() {
            let a = elf_lookup(&own, n);
            if a >= own.lo && a < own.hi {
                OURS[i].store(a, Relaxed);
            }
        }
        OWN_LO.store(own.lo, Relaxed);
        OWN_HI.store(own.hi, Relaxed);
    }
    READY.store(true, Release);
}

unsafe extern "C" fn scan_cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
    // SAFETY: data is the &mut Scan init_tables passes; info is the loader's entry for one object.
    let (scan, info) = unsafe { (&mut *(data as *mut Scan), &*info) };
    let index = scan.index;
    scan.index += 1;
    // SAFETY: info describes a loaded object (dl_iterate_phdr's contract).
    let Some(obj) = (unsafe { object(info) }) else { return 0 };
    if scan.own_addr >= obj.lo && scan.own_addr < obj.hi {
        scan.own_index = index;
        scan.own = Some(obj);
        return 0;
    }
    if scan.nfound < scan.found.len() {
        let ds = elf_lookup(&obj, b"dlsym");
        let dvs = elf_lookup(&obj, b"dlvsym");
        if ds != 0 && dvs != 0 {
            scan.found[scan.nfound] = (index, ds, dvs);
            scan.nfound += 1;
        }
    }
    0
}

/// The dynamic symbol table of one loaded object.
///
/// # Safety
/// `info` describes an object that stays loaded while this runs (dl_iterate_phdr's callback).
unsafe fn object(info: &libc::dl_phdr_info) -> Option<Obj> {
    // SAFETY: the program headers and the dynamic section belong to a loaded object (caller);
    // the dynamic section ends with DT_NULL (bounded at 4096 entries anyway).
    unsafe {
        let base = info.dlpi_addr as usize;
        let (mut dynamic, mut lo, mut hi) = (0usize, usize::MAX, 0usize);
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type == libc::PT_DYNAMIC {
                dynamic = base.wrapping_add(ph.p_vaddr as usize);
            } else if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let s = base.wrapping_add(ph.p_vaddr as usize);
                lo = lo.min(s);
                hi = hi.max(s + ph.p_memsz as usize);
            }
        }
        if dynamic == 0 || hi == 0 {
            return None;
        }
        // glibc relocates these entries in place in writable dynamic sections; the vDSO's are
        // offsets. An address below the load base is an offset.
        let fix = |v: usize| if v != 0 && v < base { v + base } else { v };
        let mut o = Obj { base, symtab: 0, strtab: 0, gnu_hash: 0, hash: 0, versym: 0, lo, hi };
        // Elf64_Dyn: { d_tag: i64, d_un: u64 }.
        let mut d = dynamic as *const [u64; 2];
        let mut n = 0;
        while (*d)[0] != 0 && n < 4096 {
            let v = (*d)[1] as usize;
            match (*d)[0] {
                4 => o.hash = fix(v),               // DT_HASH
                5 => o.strtab = fix(v),             // DT_STRTAB
                6 => o.symtab = fix(v),             // DT_SYMTAB
                0x6fff_fef5 => o.gnu_hash = fix(v), // DT_GNU_HASH
                0x6fff_fff0 => o.versym = fix(v),   // DT_VERSYM
                _ => {}
            }
            d = d.add(1);
            n += 1;
        }
        (o.symtab != 0 && o.strtab != 0 && (o.gnu_hash != 0 || o.hash != 0)).then_some(o)
    }
}

/// The address of the default-version definition of function `name` in `o`, or 0.
fn elf_lookup(o: &Obj, name: &[u8]) -> usize {
    // SAFETY: o's tables come from a loaded object's dynamic section; indices stay within the
    // hash tables' own bounds (bucket and chain values index the symbol table by construction).
    unsafe {
        let matches = |idx: u32| -> usize {
            let sym = &*(o.symtab as *const libc::Elf64_Sym).add(idx as usize);
            let ty = sym.st_info & 0xf;
            if sym.st_shndx == 0 || sym.st_value == 0 || !(ty == 2 || ty == 10) {
                return 0; // undefined, or not a function (STT_FUNC, STT_GNU_IFUNC)
            }
            if o.versym != 0 && *(o.versym as *const u16).add(idx as usize) & 0x8000 != 0 {
                return 0; // a hidden (non-default) version
            }
            let s = (o.strtab as *const u8).add(sym.st_name as usize);
            for (k, &c) in name.iter().enumerate() {
                if *s.add(k) != c {
                    return 0;
                }
            }
            if *s.add(name.len()) != 0 || ty == 10 {
                return 0; // longer name; an IFUNC would need its resolver called: not ours
            }
            o.base.wrapping_add(sym.st_value as usize)
        };
        if o.gnu_hash != 0 {
            let h = name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32));
            let t = o.gnu_hash as *const u32;
            let (nbuckets, symoffset, bloom_size) = (*t, *t.add(1), *t.add(2));
            if nbuckets == 0 {
                return 0;
            }
            let buckets = t.add(4 + 2 * bloom_size as usize); // 64-bit bloom words
            let chain = buckets.add(nbuckets as usize);
            let mut idx = *buckets.add((h % nbuckets) as usize);
            if idx < symoffset {
                return 0;
            }
            loop {
                let ch = *chain.add((idx - symoffset) as usize);
                if ch | 1 == h | 1 {
                    let a = matches(idx);
                    if a != 0 {
                        return a;
                    }
                }
                if ch & 1 != 0 {
                    return 0;
                }
                idx += 1;
            }
        }
        let t = o.hash as *const u32;
        let nchain = *t.add(1);
        for idx in 0..nchain {
            let a = matches(idx);
            if a != 0 {
                return a;
            }
        }
        0
    }
}
