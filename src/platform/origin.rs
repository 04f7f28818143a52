//! Who is calling: CPython itself, or a host. Drop-in mode must leave CPython's own calls and
//! CPython's own threads exactly as they are, and protect only host threads.
//!
//! - A call site inside the CPython object (libpython, or a statically linked python executable)
//!   is CPython calling its own export through the PLT (pyenv builds do this 150+ times).
//! - A thread is CPython's when its start routine is in CPython (`threading`/`_thread`), or it is
//!   the main thread of a `python` executable (main -> Py_BytesMain/Py_Main). Decided once per
//!   thread by walking the stack to its outermost frames (`_Unwind_Backtrace`, no allocation);
//!   cached in initial-exec TLS.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};

use crate::boundary::{gg_publish_self_text, gg_publish_text, gg_set_thread_kind, gg_thread_kind};

extern "C" {
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

pub(crate) const HOST: c_int = crate::layout::THREAD_HOST;
pub(crate) const CPYTHON: c_int = crate::layout::THREAD_CPYTHON;

/// Executable address range of the CPython object, [start, end); 0/0 until known.
static PY_TEXT_START: AtomicUsize = AtomicUsize::new(0);
static PY_TEXT_END: AtomicUsize = AtomicUsize::new(0);

/// The executable segments [lo, hi) of the loaded object that contains `addr` ((0, 0): none).
/// `main`: the object is the main program (the first entry dl_iterate_phdr reports).
fn exec_range(addr: usize) -> (usize, usize, bool) {
    struct Acc {
        addr: usize,
        lo: usize,
        hi: usize,
        index: usize,
        main: bool,
    }
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid entry (program headers included) and our own `data` (an `Acc`).
        unsafe {
            let acc = &mut *(data as *mut Acc);
            let info = &*info;
            let (mut lo, mut hi, mut contains) = (0usize, 0usize, false);
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                    let s = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                    let e = s + ph.p_memsz as usize;
                    contains |= acc.addr >= s && acc.addr < e;
                    lo = if lo == 0 { s } else { lo.min(s) };
                    hi = hi.max(e);
                }
            }
            acc.index += 1;
            if contains {
                acc.lo = lo;
                acc.hi = hi;
                acc.main = acc.index == 1;
                return 1;
            }
            0
        }
    }
    let mut acc = Acc { addr, lo: 0, hi: 0, index: 0, main: false };
    // SAFETY: the callback only reads the program headers it is handed.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut acc as *mut Acc as *mut c_void) };
    (acc.lo, acc.hi, acc.main)
}

/// Record the executable segments of the object that contains `addr` (a CPython function).
pub(crate) fn set_cpython_object(addr: usize) {
    let (lo, hi, _) = exec_range(addr);
    if hi > lo {
        PY_TEXT_END.store(hi, Relaxed);
        PY_TEXT_START.store(lo, Release);
        // SAFETY: plain atomic stores on the C side (the drop-in fast paths' copy).
        unsafe { gg_publish_text(lo, hi) };
    }
}

static SELF_TEXT_START: AtomicUsize = AtomicUsize::new(0);
static SELF_TEXT_END: AtomicUsize = AtomicUsize::new(0);

/// Record gilgate's own executable segments (library constructor). Not when gilgate is linked
/// into the main program (a Rust host using the rlib): the host's own calls come from there.
pub(crate) fn set_self_object() {
    let (lo, hi, main) = exec_range(set_self_object as *const () as usize);
    if hi > lo && !main {
        SELF_TEXT_END.store(hi, Relaxed);
        SELF_TEXT_START.store(lo, Release);
        // SAFETY: plain atomic stores on the C side.
        unsafe { gg_publish_self_text(lo, hi) };
    }
}

/// Is `addr` inside gilgate's own code? A call into an export from there is CPython tail-calling
/// from inside a call gilgate made (gilgate never calls its own exports).
#[inline]
pub(crate) fn in_self(addr: usize) -> bool {
    let s = SELF_TEXT_START.load(Acquire);
    s != 0 && addr >= s && addr < SELF_TEXT_END.load(Relaxed)
}



/// Is `addr` (a return address) inside CPython's own code?
#[inline(always)]
pub(crate) fn in_cpython(addr: usize) -> bool {
    let s = PY_TEXT_START.load(Acquire);
    s != 0 && addr >= s && addr < PY_TEXT_END.load(Relaxed)
}

/// The published ranges, CPython's and gilgate's own, and `set_ranges` to replace them on both
/// sides (these statics and the C copies in `gg_hot`): for exports/fastpath_equivalence.rs.
#[cfg(test)]
pub(crate) fn ranges() -> ((usize, usize), (usize, usize)) {
    ((PY_TEXT_START.load(Acquire), PY_TEXT_END.load(Relaxed)), (SELF_TEXT_START.load(Acquire), SELF_TEXT_END.load(Relaxed)))
}
#[cfg(test)]
pub(crate) fn set_ranges(py: (usize, usize), own: (usize, usize)) {
    PY_TEXT_END.store(py.1, Relaxed);
    PY_TEXT_START.store(py.0, Release);
    SELF_TEXT_END.store(own.1, Relaxed);
    SELF_TEXT_START.store(own.0, Release);
    // SAFETY: plain atomic stores on the C side.
    unsafe {
        gg_publish_text(py.0, py.1);
        gg_publish_self_text(own.0, own.1);
    }
}

/// HOST or CPYTHON for the calling thread (classified on first use).
#[inline]
pub(crate) fn thread_kind() -> c_int {
    // SAFETY: reads this thread's initial-exec TLS word.
    let k = unsafe { gg_thread_kind() };
    if k != 0 {
        return k;
    }
    let k = classify();
    // SAFETY: writes this thread's TLS word.
    unsafe { gg_set_thread_kind(k) };
    k
}

const RING: usize = 8;
struct Walk {
    ring: [usize; RING],
    n: usize,
}

extern "C" fn collect(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the &mut Walk passed below; ctx is the unwinder's context.
    unsafe {
        let w = &mut *(arg as *mut Walk);
        let ip = _Unwind_GetIP(ctx);
        w.ring[w.n % RING] = ip;
        w.n += 1;
        if w.n > 100_000 {
            return 5; // _URC_END_OF_STACK: a corrupt chain, stop
        }
    }
    0 // _URC_NO_REASON: keep going
}

/// The object containing `addr`: its base and, where the loader has one, the nearest dynamic
/// symbol's name. `dladdr` takes the loader lock, which `exit()` takes too (`_dl_fini`): only the
/// main thread's classification needs names.
fn object_of(addr: usize) -> (usize, Option<&'static [u8]>) {
    // SAFETY: dladdr only reads loader data.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if addr == 0 || libc::dladdr(addr as *const c_void, &mut info) == 0 {
            return (0, None);
        }
        let name = if info.dli_sname.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr(info.dli_sname).to_bytes())
        };
        (info.dli_fbase as usize, name)
    }
}

/// glibc's `struct dl_find_object` (2.35+): the fields read here, then room for the rest
/// (`dlfo_eh_dbase`/`dlfo_eh_count` on some targets and seven reserved words).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    rest: [u64; 16],
}
type FindObject = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> c_int;
static FIND_OBJECT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Library constructor: resolve `_dl_find_object` (absent before glibc 2.35: `base_of` then
/// falls back to `dladdr`).
pub(crate) fn init_find_object() {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name (gilgate defines no such symbol).
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, b"_dl_find_object\0".as_ptr() as *const _) };
    FIND_OBJECT.store(f, Release);
}

/// Base of the object containing `addr` (0: none), as `dladdr`'s `dli_fbase` (both are the
/// link map's `l_map_start`). `_dl_find_object` takes no lock: a thread classified at a kill
/// while the main thread is in `exit()` must not hold the loader lock `_dl_fini` waits for
/// (that delayed raw CPython's own exit and widened 3.14's post-finalization crash window).
fn base_of(addr: usize) -> usize {
    if addr == 0 {
        return 0;
    }
    let f = FIND_OBJECT.load(Acquire);
    if f.is_null() {
        return object_of(addr).0;
    }
    // SAFETY: f is glibc's _dl_find_object; `o` is larger than every target's struct.
    unsafe {
        let f: FindObject = std::mem::transmute(f);
        let mut o: DlFindObject = std::mem::zeroed();
        if f(addr as *mut c_void, &mut o) == 0 {
            o.map_start as usize
        } else {
            0
        }
    }
}

#[cold]
fn classify() -> c_int {
    if PY_TEXT_START.load(Acquire) == 0 {
        return HOST;
    }
    let mut w = Walk { ring: [0; RING], n: 0 };
    // SAFETY: collect only writes into `w`.
    unsafe { _Unwind_Backtrace(collect, &mut w as *mut Walk as *mut c_void) };
    let count = w.n.min(RING);
    // Outermost first.
    let mut outer = [0usize; RING];
    for (i, slot) in outer.iter_mut().enumerate().take(count) {
        *slot = w.ring[(w.n - 1 - i) % RING];
    }
    let libc_base = base_of(libc::pthread_create as *const () as usize);
    // SAFETY: getpid/gettid have no preconditions.
    let main_thread = unsafe { libc::getpid() as i64 == libc::syscall(libc::SYS_gettid) };
    // The main executable: its frames outside any dynamic symbol (a launcher or host built
    // without -rdynamic: `_start`, `main`) are skipped like a named `main`.
    // SAFETY: getauxval has no preconditions; AT_ENTRY is the executable's entry point.
    let exe_base = if main_thread { base_of(unsafe { libc::getauxval(libc::AT_ENTRY) } as usize) } else { 0 };
    let mut seen_main = false;
    for &ip in outer.iter().take(count) {
        // A return address points after the call: step back one byte to stay in the caller.
        let pc = ip.saturating_sub(1);
        let (base, sym) = if main_thread && !seen_main { object_of(pc) } else { (base_of(pc), None) };
        if base == libc_base || base == 0 {
            continue;
        }
        if main_thread && !seen_main {
            if sym == Some(&b"_start"[..]) {
                continue;
            }
            if in_cpython(pc) {
                return CPYTHON; // static python executable: main itself is CPython's
            }
            if sym == Some(&b"main"[..]) {
                seen_main = true;
                continue; // python's main is a stub: look at what it calls
            }
            if sym.is_none() && base == exe_base && !in_cpython(pc) {
                continue; // an unnamed `_start`/`main`: look at what it calls
            }
        }
        return if in_cpython(pc) { CPYTHON } else { HOST };
    }
    HOST
}
