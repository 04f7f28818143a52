//! PEP 788 (CPython 3.15's `PyInterpreterGuard`, `PyInterpreterView`, `PyThreadState_Ensure`,
//! `PyThreadState_EnsureFromView`, `PyThreadState_Release`) on every CPython, under gilgate's own
//! names: `include/gilgate_pep788.h` maps CPython's names onto these exports below 3.15 and adds
//! nothing from 3.15 on. On a CPython that has PEP 788 these exports forward to CPython's own
//! functions (so Rust and Cython callers can use them on every version too).
//!
//! Semantics (3.15's, docs/versions.md "PEP 788 on every CPython" lists each difference):
//! - a view is the interpreter's id (weak: it never keeps anything alive);
//! - a guard is counted (`guards.rs`); creating one fails once finalization has begun
//!   (`FromCurrent` with an exception set, `FromView` without); the drain waits for open guards
//!   before it closes the gate, up to its bound;
//! - `Ensure(guard)`: attached thread state of the guard's interpreter → only counted (a nested
//!   level); none attached → main interpreter: `gilgate_gilstate_ensure` (PyGILState's thread
//!   state, created and deleted as 3.15 does for its own), a subinterpreter: this thread's
//!   gilstate thread state of it re-attached, or a new one (`PyThreadState_New`) attached with
//!   `gilgate_acquire_thread` and deleted by the matching release. A refusal returns NULL with
//!   the thread intact;
//! - `Release(token)` undoes the level the token names (the token encodes it: no per-thread
//!   state); releases come in reverse order of the ensures, as 3.15 requires.

use crate::cpython::{self, Api, TState};
use crate::status::*;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

/// `PyInterpreterGuard` on CPython < 3.15 (opaque to C: `Guard` behind it).
#[allow(non_camel_case_types)]
pub struct gilgate_interpreter_guard {
    _opaque: [u8; 0],
}

/// What a `gilgate_interpreter_guard *` points to; its head is read by
/// `src/c/pep788_compat.c`, hence `repr(C)`.
#[repr(C)]
struct Guard {
    magic: u64,
    interp: *mut c_void,
    gen: u64,
    /// The interpreter was the main one when the guard was made (no lookup per ensure).
    main: bool,
    /// What the C hot path compares the state word with: `pack(RUNNING, gen)` for a guard of the
    /// main interpreter ("main, this generation, running" in one compare), `u64::MAX` (never a
    /// state word) for any other.
    key: u64,
    /// For a guard `EnsureFromView` made: the token of the level it guards.
    inner: AtomicUsize,
}

/// `PyInterpreterView` on CPython < 3.15 (opaque to C).
#[allow(non_camel_case_types)]
pub struct gilgate_interpreter_view {
    magic: u64,
    id: i64,
}

const GUARD_MAGIC: u64 = crate::layout::GUARD788_MAGIC; // "gggguard1"
const _: () = {
    // The head src/c/pep788_compat.c and <arch>/pep788_entries.S read (struct gg788c_guard).
    use std::mem::offset_of;
    assert!(offset_of!(Guard, magic) == 0 && offset_of!(Guard, interp) == 8);
    assert!(offset_of!(Guard, gen) == 16 && offset_of!(Guard, main) == 24);
    assert!(offset_of!(Guard, key) == crate::layout::GUARD788_KEY);
};

// src/c/pep788_compat.c (left out of gilgate.h: cbindgen.toml's exclude list).
extern "C" {
    fn gg788c_set_paths(ensure: extern "C" fn(P) -> P, release: extern "C" fn(P));
    fn gg788c_publish(cur: Option<unsafe extern "C" fn() -> TState>, state: *const u64, ti: P, disp: isize);
    #[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))] // x86-64's tls_index proof
    fn gg788c_tls_addr(ti: P, disp: isize) -> *const TState;
    /// x86-64 and aarch64 (not portable-entries): <arch>/pep788_entries.S; elsewhere gg788c_ensure.
    fn gg788_compat_ensure(guard: P) -> P;
    fn gg788c_release(token: P);
}

extern "C" fn set_paths_at_load() {
    // SAFETY: stores two function pointers in the C file's statics, at load, before any call.
    unsafe { gg788c_set_paths(rs_thread_state_ensure, rs_thread_state_release) };
}
#[used]
#[link_section = ".init_array"]
static PEP788_COMPAT_INIT: extern "C" fn() = set_paths_at_load;
const VIEW_MAGIC: u64 = 0x6767_7669_6577_3031;

type P = *mut c_void;

#[cfg(target_arch = "x86_64")]
macro_rules! jump788 { () => { "jmp {f}" }; }
#[cfg(target_arch = "aarch64")]
macro_rules! jump788 { () => { "b {f}" }; }

/// What CPython 3.15+ has, and the few functions the < 3.15 path needs beyond `Api`.
#[allow(non_snake_case)]
struct Extra {
    // 3.15+ (all or nothing)
    native: Option<Native>,
    PyInterpreterState_GetID: Option<unsafe extern "C" fn(P) -> i64>,
    PyThreadState_Clear: Option<unsafe extern "C" fn(TState)>,
    PyThreadState_Delete: Option<unsafe extern "C" fn(TState)>,
    PyErr_SetString: Option<unsafe extern "C" fn(P, *const c_char)>,
    /// `PyObject **`: PyExc_PythonFinalizationError (3.13+) or PyExc_RuntimeError.
    finalization_error: *mut P,
}

#[allow(non_snake_case)]
struct Native {
    PyInterpreterGuard_FromCurrent: unsafe extern "C" fn() -> P,
    PyInterpreterGuard_Close: unsafe extern "C" fn(P),
    PyInterpreterGuard_FromView: unsafe extern "C" fn(P) -> P,
    PyInterpreterView_FromCurrent: unsafe extern "C" fn() -> P,
    PyInterpreterView_Close: unsafe extern "C" fn(P),
    PyInterpreterView_FromMain: unsafe extern "C" fn() -> P,
    PyThreadState_Ensure: unsafe extern "C" fn(P) -> P,
    PyThreadState_EnsureFromView: unsafe extern "C" fn(P) -> P,
    PyThreadState_Release: unsafe extern "C" fn(P),
}

// SAFETY: function pointers and the address of a CPython global, immutable once resolved.
unsafe impl Send for Extra {}
// SAFETY: as above.
unsafe impl Sync for Extra {}

static EXTRA: OnceLock<Extra> = OnceLock::new();

/// The object that defines `Py_IsInitialized` (the CPython of `Api`), for lookups in it first.
fn py_handle(api: &Api) -> P {
    // SAFETY: dladdr/dlopen(RTLD_NOLOAD) only query the loader.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(api.Py_IsInitialized as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return null_mut();
        }
        libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD)
    }
}

fn extra(api: &Api) -> &'static Extra {
    EXTRA.get_or_init(|| {
        let h = py_handle(api);
        let look = |n: &[u8]| cpython::lookup(n, h);
        // SAFETY: each symbol is transmuted to the signature CPython declares for it.
        unsafe {
            macro_rules! opt {
                ($name:literal) => {{
                    let p = look(concat!($name, "\0").as_bytes());
                    if p.is_null() { None } else { Some(std::mem::transmute::<P, _>(p)) }
                }};
            }
            let native = (|| {
                Some(Native {
                    PyInterpreterGuard_FromCurrent: opt!("PyInterpreterGuard_FromCurrent")?,
                    PyInterpreterGuard_Close: opt!("PyInterpreterGuard_Close")?,
                    PyInterpreterGuard_FromView: opt!("PyInterpreterGuard_FromView")?,
                    PyInterpreterView_FromCurrent: opt!("PyInterpreterView_FromCurrent")?,
                    PyInterpreterView_Close: opt!("PyInterpreterView_Close")?,
                    PyInterpreterView_FromMain: opt!("PyInterpreterView_FromMain")?,
                    PyThreadState_Ensure: opt!("PyThreadState_Ensure")?,
                    PyThreadState_EnsureFromView: opt!("PyThreadState_EnsureFromView")?,
                    PyThreadState_Release: opt!("PyThreadState_Release")?,
                })
            })();
            let mut fe = look(b"PyExc_PythonFinalizationError\0");
            if fe.is_null() {
                fe = look(b"PyExc_RuntimeError\0");
            }
            Extra {
                native,
                PyInterpreterState_GetID: opt!("PyInterpreterState_GetID"),
                PyThreadState_Clear: opt!("PyThreadState_Clear"),
                PyThreadState_Delete: opt!("PyThreadState_Delete"),
                PyErr_SetString: opt!("PyErr_SetString"),
                finalization_error: fe as *mut P,
            }
        }
    })
}

fn native(api: &Api) -> Option<&'static Native> {
    extra(api).native.as_ref()
}

/// 0: not known yet; `COMPAT`: gilgate's implementation (CPython < 3.15); `NATIVE`: forward.
static MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
const COMPAT: u8 = 1;
const NATIVE: u8 = 2;

/// The hot paths' test: `Some(api)` when gilgate's implementation applies.
#[inline(always)]
fn compat_api() -> Option<&'static Api> {
    if MODE.load(Relaxed) == COMPAT {
        return cpython::api_if_resolved();
    }
    compat_api_slow()
}

#[cold]
fn compat_api_slow() -> Option<&'static Api> {
    let api = cpython::api()?;
    let m = if native(api).is_some() { NATIVE } else { COMPAT };
    if m == COMPAT && api.version >= (3, 12) {
        // The C hot path (src/c/pep788_compat.c): on 3.12+ `tstate_unchecked` is the calling
        // thread's own attached thread state, so "not attached" is one call, or one read of
        // CPython's thread-local when `tls_getter` proves where that is.
        let (ti, disp) = tls_getter(api).unwrap_or((null_mut(), 0));
        // SAFETY: a CPython function with no preconditions, the gate's state word (static), and
        // a tls_index of libpython's (or NULL).
        unsafe { gg788c_publish(Some(api.tstate_unchecked), crate::boundary::hot().state.as_ptr() as *const u64, ti, disp) };
    }
    MODE.store(m, Relaxed);
    (m == COMPAT).then_some(api)
}

/// Where CPython's "attached thread state" getter (3.12+: `_PyThreadState_UncheckedGet` /
/// `PyThreadState_GetUnchecked`) reads, proven from its code, so the hot path reads CPython's
/// thread-local itself instead of calling the getter (a PLT hop and `__tls_get_addr` per call):
/// `(ti, disp)` such that the getter returns `*(__tls_get_addr(ti) + disp)` on every thread.
/// The proof: the getter's bytes are exactly a general- or local-dynamic TLS access
/// (`decode_getter`), its call goes to its object's PLT entry whose GOT slot holds the
/// `__tls_get_addr` this library binds to (`decode_plt`), `ti` and that slot lie in the
/// getter's own object, and the address computed on this thread reads what the getter returns.
/// That holds for a libpython loaded at start-up and for one loaded with `dlopen` alike: the
/// per-thread address comes from `__tls_get_addr` itself (once per thread, in the C path). Any
/// other shape of getter (TLS descriptors, a static libpython in the executable, a PLT stub as
/// the function's address): None, and the hot path calls the getter.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn tls_getter(api: &Api) -> Option<(P, isize)> {
    extern "C" {
        fn __tls_get_addr(ti: P) -> P;
    }
    let f = api.tstate_unchecked as usize;
    // SAFETY: the getter's code is mapped readable; decode_getter reads its bytes in order and
    // stops at the first one that does not match, so never past its final `ret`.
    let g = decode_getter(|i| unsafe { *((f + i) as *const u8) })?;
    let ti = f.wrapping_add_signed(g.ti);
    let plt = f.wrapping_add_signed(g.call);
    // SAFETY: a CPython function with no preconditions; calling it also binds a lazily bound
    // PLT slot.
    let now = unsafe { (api.tstate_unchecked)() };
    // SAFETY: `plt` is the target of the getter's call, code in the getter's object: read in
    // order up to the first mismatch, as above.
    let slot = plt.wrapping_add_signed(decode_plt(|i| unsafe { *((plt + i) as *const u8) })?);
    let base = |a: usize| {
        // SAFETY: dladdr only queries the loader.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(a as *const c_void, &mut info) != 0).then_some(info.dli_fbase as usize)
        }
    };
    let obj = base(f)?;
    if base(ti) != Some(obj) || base(plt) != Some(obj) || base(slot) != Some(obj) {
        return None;
    }
    // SAFETY: a GOT slot of the getter's object (checked just above), bound by the call above.
    if unsafe { std::ptr::read_volatile(slot as *const usize) } != __tls_get_addr as *const () as usize {
        return None;
    }
    // SAFETY: `ti` is the getter's own tls_index (proven above); the address is this thread's.
    let read = unsafe { *gg788c_tls_addr(ti as P, g.disp) };
    (read == now).then_some((ti as P, g.disp))
}

/// aarch64: the same proof for a TLS-descriptor getter (GCC's default there), whose result is
/// `(NULL, off)`: the getter returns `*(tpidr_el0 + off)` on every thread. The getter's words are
/// exactly `decode_getter_a64`'s shape; its descriptor lies in the getter's object and its
/// function is `decode_tlsdesc_return`'s (glibc's `_dl_tlsdesc_return`: the descriptor's second
/// word is the static-TLS offset, fixed for the module's lifetime and the same on every thread);
/// and the address computed on this thread reads what the getter returns. A descriptor of
/// dynamic TLS (a libpython `dlopen`ed without static TLS room), or any other shape: None.
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn tls_getter(api: &Api) -> Option<(P, isize)> {
    let f = api.tstate_unchecked as usize;
    // SAFETY: the getter's code is mapped readable; decode_getter_a64 reads its words in order
    // and stops at the first one that does not match, so never past its final `ret`.
    let desc = decode_getter_a64(f, |i| unsafe { *((f + 4 * i) as *const u32) })?;
    // SAFETY: a CPython function with no preconditions (it also resolves the descriptor, were
    // that lazy).
    let now = unsafe { (api.tstate_unchecked)() };
    let base = |a: usize| {
        // SAFETY: dladdr only queries the loader.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(a as *const c_void, &mut info) != 0).then_some(info.dli_fbase as usize)
        }
    };
    if base(desc) != base(f) || base(f).is_none() {
        return None;
    }
    // SAFETY: the descriptor (two words, in the getter's object: checked above).
    let (func, off) = unsafe {
        (std::ptr::read_volatile(desc as *const usize), std::ptr::read_volatile((desc + 8) as *const isize))
    };
    // SAFETY: the descriptor's function, code mapped readable (dladdr: some object's); read in
    // order up to the first mismatch, at most three words.
    if base(func).is_none() || !decode_tlsdesc_return(|i| unsafe { *((func + 4 * i) as *const u32) }) {
        return None;
    }
    let tp: usize;
    // SAFETY: reads this thread's thread pointer.
    unsafe { std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack, preserves_flags)) };
    // SAFETY: the getter's own thread-local on this thread (static TLS: proven above).
    let read = unsafe { std::ptr::read_volatile(tp.wrapping_add_signed(off) as *const TState) };
    (off != 0 && read == now).then_some((null_mut(), off))
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
fn tls_getter(_api: &Api) -> Option<(P, isize)> {
    None
}

/// The aarch64 code of `return *(T *)(tpidr_el0 + tlsdesc(v));` as GCC emits it for a
/// thread-local of a PIC library (TLS descriptors): `[bti c] [paciasp]`, `mrs xT, tpidr_el0`
/// and the `stp x29, x30, [sp, #-16]!; mov x29, sp` frame in either order, `adrp x0, desc;
/// ldr xF, [x0, #lo]; add x0, x0, #lo; blr xF`, `ldr x0, [xT, x0]`, `ldp x29, x30, [sp], #16`,
/// `[autiasp]` (iff paciasp), `ret`. The descriptor call preserves every register but x0 (the
/// TLS-descriptor convention), so xT survives it. Returns the descriptor's address (`at`: the
/// function's). `w(i)` is the function's word i, read in order, never past the first mismatch.
#[cfg_attr(not(all(target_arch = "aarch64", target_os = "linux")), allow(dead_code))]
fn decode_getter_a64(at: usize, w: impl Fn(usize) -> u32) -> Option<usize> {
    let mut i = 0;
    if w(i) == 0xd503_245f {
        i += 1; // bti c
    }
    let pac = w(i) == 0xd503_233f; // paciasp
    if pac {
        i += 1;
    }
    let (mut t, mut frame) = (None, false);
    for _ in 0..2 {
        let x = w(i);
        if t.is_none() && x & !31 == 0xd53b_d040 && !matches!(x & 31, 0 | 29 | 30 | 31) {
            t = Some(x & 31); // mrs xT, tpidr_el0
        } else if !frame && x == 0xa9bf_7bfd && w(i + 1) == 0x9100_03fd {
            frame = true; // stp x29, x30, [sp, #-16]!; mov x29, sp
            i += 1;
        } else {
            return None;
        }
        i += 1;
    }
    let t = t?;
    let adrp = w(i);
    if adrp & 0x9f00_001f != 0x9000_0000 {
        return None; // adrp x0, page
    }
    let imm = (((adrp >> 29) & 3) | (((adrp >> 5) & 0x7ffff) << 2)) as i64;
    let page = ((imm << 43) >> 31) as isize; // sign-extend 21 bits, then << 12
    let pc = at + 4 * i;
    let ldr = w(i + 1);
    let fr = ldr & 31;
    if ldr & 0xffc0_03e0 != 0xf940_0000 || matches!(fr, 0 | 29 | 30 | 31) || fr == t {
        return None; // ldr xF, [x0, #lo]
    }
    let lo = ((ldr >> 10) & 0xfff) as usize * 8;
    let add = w(i + 2);
    if add & 0xffc0_03ff != 0x9100_0000 || ((add >> 10) & 0xfff) as usize != lo {
        return None; // add x0, x0, #lo
    }
    if w(i + 3) != 0xd63f_0000 | (fr << 5) || w(i + 4) != 0xf860_6800 | (t << 5) {
        return None; // blr xF; ldr x0, [xT, x0]
    }
    i += 5;
    if frame {
        if w(i) != 0xa8c1_7bfd {
            return None; // ldp x29, x30, [sp], #16
        }
        i += 1;
    }
    if pac {
        if w(i) != 0xd503_23bf {
            return None; // autiasp
        }
        i += 1;
    }
    (w(i) == 0xd65f_03c0).then_some((pc & !0xfff).wrapping_add_signed(page) + lo) // ret
}

/// glibc's `_dl_tlsdesc_return`: `[bti c] ldr x0, [x0, #8]; ret` (the descriptor's second word).
#[cfg_attr(not(all(target_arch = "aarch64", target_os = "linux")), allow(dead_code))]
fn decode_tlsdesc_return(w: impl Fn(usize) -> u32) -> bool {
    let i = usize::from(w(0) == 0xd503_245f);
    w(i) == 0xf940_0400 && w(i + 1) == 0xd65f_03c0
}

/// `decode_getter`'s result: offsets from the function's start of its `lea` operand (the
/// tls_index) and of its call's target, and the displacement of the final load.
#[derive(Debug, PartialEq)]
#[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
struct TlsGetter {
    ti: isize,
    call: isize,
    disp: isize,
}

/// The x86-64 code of a function `return *(T *)(__tls_get_addr(&ti) + disp);` as GCC emits it
/// for a thread-local of a PIC library, general-dynamic (`data16 lea ti(%rip),%rdi; data16
/// data16 rex.W call`) or local-dynamic (`lea; call`, then `disp(%rax)`), after an optional
/// `endbr64` and a `sub $8,%rsp` or `push %rbp; mov %rsp,%rbp` frame, with the frame's undo
/// before or after the load, then `ret`. Anything else: None. `b(i)` is the function's byte i,
/// read in order, never past the first mismatch.
#[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
fn decode_getter(b: impl Fn(usize) -> u8) -> Option<TlsGetter> {
    let mut i = 0;
    let eat = |i: &mut usize, pat: &[u8]| {
        let ok = pat.iter().enumerate().all(|(k, &p)| b(*i + k) == p);
        if ok {
            *i += pat.len();
        }
        ok
    };
    let rel32 = |i: &mut usize, b: &dyn Fn(usize) -> u8| {
        let v = i32::from_le_bytes([b(*i), b(*i + 1), b(*i + 2), b(*i + 3)]) as isize;
        *i += 4;
        v + *i as isize // rip-relative: from the next instruction (the operand is last)
    };
    eat(&mut i, &[0xf3, 0x0f, 0x1e, 0xfa]); // endbr64
    let undo: &[u8] = if eat(&mut i, &[0x48, 0x83, 0xec, 0x08]) {
        &[0x48, 0x83, 0xc4, 0x08] // sub $8,%rsp ... add $8,%rsp
    } else if eat(&mut i, &[0x55, 0x48, 0x89, 0xe5]) {
        &[0x5d] // push %rbp; mov %rsp,%rbp ... pop %rbp
    } else {
        return None;
    };
    let gd = eat(&mut i, &[0x66, 0x48, 0x8d, 0x3d]);
    if !gd && !eat(&mut i, &[0x48, 0x8d, 0x3d]) {
        return None; // lea ti(%rip),%rdi
    }
    let ti = rel32(&mut i, &b);
    if !eat(&mut i, if gd { &[0x66, 0x66, 0x48, 0xe8] } else { &[0xe8] }) {
        return None; // call __tls_get_addr@plt
    }
    let call = rel32(&mut i, &b);
    let undone = eat(&mut i, undo);
    let disp = if eat(&mut i, &[0x48, 0x8b, 0x00]) {
        0 // mov (%rax),%rax
    } else if eat(&mut i, &[0x48, 0x8b, 0x40]) {
        let d = b(i) as i8 as isize; // mov disp8(%rax),%rax
        i += 1;
        d
    } else if eat(&mut i, &[0x48, 0x8b, 0x80]) {
        let d = i32::from_le_bytes([b(i), b(i + 1), b(i + 2), b(i + 3)]) as isize; // disp32
        i += 4;
        d
    } else {
        return None;
    };
    if (!undone && !eat(&mut i, undo)) || !eat(&mut i, &[0xc3]) {
        return None;
    }
    Some(TlsGetter { ti, call, disp })
}

/// A PLT entry `[endbr64] [bnd] jmp *slot(%rip)`: the offset of its GOT slot from the entry.
#[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
fn decode_plt(b: impl Fn(usize) -> u8) -> Option<isize> {
    let mut i = 0;
    if [0xf3, 0x0f, 0x1e, 0xfa].iter().enumerate().all(|(k, &p)| b(k) == p) {
        i = 4;
    }
    if b(i) == 0xf2 {
        i += 1; // bnd
    }
    if b(i) != 0xff || b(i + 1) != 0x25 {
        return None;
    }
    let v = i32::from_le_bytes([b(i + 2), b(i + 3), b(i + 4), b(i + 5)]) as isize;
    Some(v + (i + 6) as isize)
}

/// `tstate->interp` (the third pointer of `struct _ts` in 3.8–3.15, as `Api::interp_is_live`).
///
/// # Safety
/// `ts` is a live thread state.
unsafe fn interp_of(ts: TState) -> P {
    // SAFETY: the caller's live thread state.
    unsafe { *(ts as *const P).add(2) }
}

/// The calling thread's attached thread state (NULL if none), with `Api::holds_gil`'s caveat on
/// 3.8–3.11 (a thread holding the GIL with a thread state that is not its gilstate one reads as
/// detached, as `PyGILState_Check` does there).
fn attached(api: &Api) -> TState {
    if api.holds_gil() {
        // SAFETY: reads the current thread state; no preconditions.
        unsafe { (api.tstate_unchecked)() }
    } else {
        null_mut()
    }
}

/// The caller's attached thread state for the `*_FromCurrent` functions, whose contract is that
/// the caller is attached: on 3.8–3.11 the runtime-wide current thread state is then the
/// caller's, also when it is not the thread's gilstate one (a subinterpreter's).
fn current(api: &Api) -> TState {
    // SAFETY: reads the current thread state; no preconditions.
    unsafe { (api.tstate_unchecked)() }
}

fn set_finalizing_error(api: &Api) {
    let x = extra(api);
    if let (Some(set), false) = (x.PyErr_SetString, x.finalization_error.is_null()) {
        // SAFETY: the caller holds the GIL (FromCurrent's contract); the exception type is a
        // CPython global holding a type object.
        unsafe { set(*x.finalization_error, b"cannot create an interpreter guard: the interpreter is finalizing\0".as_ptr() as *const c_char) };
    }
}

fn new_guard(api: &Api, interp: P) -> *mut gilgate_interpreter_guard {
    // SAFETY: reads one runtime field.
    let main = interp == unsafe { (api.PyInterpreterState_Main)() };
    match crate::guards::open(api) {
        Ok(gen) => {
            let key = if main { crate::gate::pack(crate::gate::RUNNING, gen) } else { u64::MAX };
            Box::into_raw(Box::new(Guard { magic: GUARD_MAGIC, interp, gen, main, key, inner: AtomicUsize::new(0) })) as *mut gilgate_interpreter_guard
        }
        Err(_) => null_mut(),
    }
}

/// `PyInterpreterGuard_FromCurrent`: a guard for the current interpreter (caller attached).
/// NULL with an exception set once finalization has begun (`PythonFinalizationError` on 3.13+,
/// `RuntimeError` before).
#[no_mangle]
pub extern "C" fn gilgate_interpreter_guard_from_current() -> *mut gilgate_interpreter_guard {
    ffi_boundary!({
        let Some(api) = cpython::api() else { return null_mut() };
        if let Some(n) = native(api) {
            // SAFETY: CPython's own function, the caller's contract is CPython's.
            return unsafe { (n.PyInterpreterGuard_FromCurrent)() } as *mut gilgate_interpreter_guard;
        }
        let cur = current(api);
        if cur.is_null() {
            return null_mut();
        }
        // SAFETY: attached, so live.
        let interp = unsafe { interp_of(cur) };
        adopt_if_main(api, interp);
        let g = new_guard(api, interp);
        if g.is_null() {
            set_finalizing_error(api);
        }
        g
    })
}

/// The first time gilgate sees the GIL held on the main interpreter: arm the drain (it is the
/// drain that waits for guards).
fn adopt_if_main(api: &Api, interp: P) {
    // SAFETY: PyInterpreterState_Main reads one runtime field.
    if interp == unsafe { (api.PyInterpreterState_Main)() } && crate::gate::state_of(crate::gate::state()) == crate::gate::UNKNOWN && api.runtime_alive().is_ok() {
        crate::drain::adopt(api);
    }
}

/// `PyInterpreterGuard_FromView`: NULL (no exception) when the interpreter is gone or finalizing.
#[no_mangle]
pub extern "C" fn gilgate_interpreter_guard_from_view(view: *mut gilgate_interpreter_view) -> *mut gilgate_interpreter_guard {
    ffi_boundary!({
        if view.is_null() {
            return null_mut();
        }
        let Some(api) = cpython::api() else { return null_mut() };
        if let Some(n) = native(api) {
            // SAFETY: CPython's own view.
            return unsafe { (n.PyInterpreterGuard_FromView)(view as P) } as *mut gilgate_interpreter_guard;
        }
        // SAFETY: a view from gilgate_interpreter_view_* (checked by its magic).
        let v = unsafe { &*view };
        if v.magic != VIEW_MAGIC || crate::guards::live_gen(api).is_err() {
            return null_mut();
        }
        let interp = if v.id == 0 {
            // SAFETY: reads one runtime field.
            unsafe { (api.PyInterpreterState_Main)() }
        } else {
            find_interp(api, v.id)
        };
        if interp.is_null() {
            return null_mut();
        }
        new_guard(api, interp)
    })
}

/// The live interpreter with this id (CPython's list, read without its HEAD_LOCK, which is not
/// exported: as `Api::interp_is_live`).
fn find_interp(api: &Api, id: i64) -> P {
    let Some(get_id) = extra(api).PyInterpreterState_GetID else { return null_mut() };
    // SAFETY: the runtime is alive (checked by the caller); the list functions read runtime fields.
    unsafe {
        let mut i = (api.PyInterpreterState_Head)();
        let mut n = 0;
        while !i.is_null() && n < 1 << 16 {
            if get_id(i) == id {
                return i;
            }
            i = (api.PyInterpreterState_Next)(i);
            n += 1;
        }
    }
    null_mut()
}

/// `PyInterpreterGuard_Close`.
#[no_mangle]
pub extern "C" fn gilgate_interpreter_guard_close(guard: *mut gilgate_interpreter_guard) {
    ffi_boundary!({
        if guard.is_null() {
            return;
        }
        if let Some(n) = cpython::api_if_resolved().and_then(native) {
            // SAFETY: CPython's own guard, closed once by the caller's contract.
            unsafe { (n.PyInterpreterGuard_Close)(guard as P) };
            return;
        }
        // SAFETY: a guard from new_guard (Box), closed once by the caller's contract.
        let g = unsafe { Box::from_raw(guard as *mut Guard) };
        if g.magic == GUARD_MAGIC {
            crate::guards::close(g.gen);
        }
    })
}

/// `PyInterpreterView_FromCurrent` (caller attached).
#[no_mangle]
pub extern "C" fn gilgate_interpreter_view_from_current() -> *mut gilgate_interpreter_view {
    ffi_boundary!({
        let Some(api) = cpython::api() else { return null_mut() };
        if let Some(n) = native(api) {
            // SAFETY: CPython's own function.
            return unsafe { (n.PyInterpreterView_FromCurrent)() } as *mut gilgate_interpreter_view;
        }
        let cur = current(api);
        let Some(get_id) = extra(api).PyInterpreterState_GetID else { return null_mut() };
        if cur.is_null() {
            return null_mut();
        }
        // SAFETY: attached, so live; GetID reads the interpreter's id.
        let (interp, id) = unsafe {
            let i = interp_of(cur);
            (i, get_id(i))
        };
        adopt_if_main(api, interp);
        Box::into_raw(Box::new(gilgate_interpreter_view { magic: VIEW_MAGIC, id }))
    })
}

/// `PyInterpreterView_FromMain` (no thread state needed; works before `Py_Initialize` and
/// across init/finalize cycles, as 3.15.2's does).
#[no_mangle]
pub extern "C" fn gilgate_interpreter_view_from_main() -> *mut gilgate_interpreter_view {
    ffi_boundary!({
        if let Some(n) = cpython::api().and_then(native) {
            // SAFETY: CPython's own function.
            return unsafe { (n.PyInterpreterView_FromMain)() } as *mut gilgate_interpreter_view;
        }
        Box::into_raw(Box::new(gilgate_interpreter_view { magic: VIEW_MAGIC, id: 0 }))
    })
}

/// `PyInterpreterView_Close`.
#[no_mangle]
pub extern "C" fn gilgate_interpreter_view_close(view: *mut gilgate_interpreter_view) {
    ffi_boundary!({
        if view.is_null() {
            return;
        }
        if let Some(n) = cpython::api().and_then(native) {
            // SAFETY: CPython's own view, closed once.
            unsafe { (n.PyInterpreterView_Close)(view as P) };
            return;
        }
        // SAFETY: a view from Box::into_raw above, closed once by the caller's contract.
        drop(unsafe { Box::from_raw(view) });
    })
}

/// Tokens carry their level (no per-thread state): the low bits say what the release undoes.
/// A thread state created for the level is its own token (aligned: low bits 0).
const T_VIEW: usize = 0b001; // a guard EnsureFromView made, | its address; the level's token inside
const T_NESTED: usize = 0b010; // attached already (same interpreter): only counted
const T_GILSTATE: usize = 0b100; // gilgate_gilstate_ensure (main interpreter); | state << 3
const T_REATTACH: usize = 0b110; // this thread's gilstate thread state of a subinterpreter
const T_MASK: usize = 0b111;

fn tok(v: usize) -> P {
    v as P
}

/// `PyThreadState_Ensure`: attach a thread state of the guard's interpreter. Returns a token for
/// `gilgate_thread_state_release`, or NULL (no exception) with the thread as it was.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn gilgate_thread_state_ensure(guard: *mut gilgate_interpreter_guard) -> *mut c_void {
    // The hot path (<arch>/pep788_entries.S or src/c/pep788_compat.c), entered by a tail jump:
    // no frame of our own.
    core::arch::naked_asm!(jump788!(), f = sym gg788_compat_ensure)
}

extern "C" fn rs_thread_state_ensure(guard: P) -> *mut c_void {
    let guard = guard as *mut gilgate_interpreter_guard;
    ffi_boundary!({
        if guard.is_null() {
            return null_mut();
        }
        let Some(api) = compat_api() else {
            return match cpython::api().and_then(native) {
                // SAFETY: CPython's own guard.
                Some(n) => unsafe { (n.PyThreadState_Ensure)(guard as P) },
                None => null_mut(),
            };
        };
        // SAFETY: an open guard (the caller's contract), checked by its magic.
        let g = unsafe { &*(guard as *const Guard) };
        if g.magic != GUARD_MAGIC {
            return null_mut();
        }
        ensure(api, g)
    })
}

#[inline(always)]
fn ensure(api: &Api, g: &Guard) -> P {
    let cur = attached(api);
    if !cur.is_null() {
        // SAFETY: attached, so live.
        if unsafe { interp_of(cur) } == g.interp {
            return tok(T_NESTED);
        }
        // Attached to another interpreter: not supported below 3.15 (docs/versions.md).
        return null_mut();
    }
    if crate::gate::gen_of(crate::gate::state()) != g.gen {
        return null_mut(); // a guard of an earlier runtime generation
    }
    if g.main {
        let mut st: c_int = 0;
        // SAFETY: gilgate's own fallible export.
        if unsafe { crate::api::gilgate_gilstate_ensure(&mut st) } != GILGATE_OK {
            return null_mut();
        }
        return tok(T_GILSTATE | ((st as usize & 1) << 3));
    }
    // A subinterpreter.
    // SAFETY: reads this thread's gilstate thread state.
    let mine = unsafe { (api.PyGILState_GetThisThreadState)() };
    // SAFETY: a thread state bound to this thread is live.
    if !mine.is_null() && unsafe { interp_of(mine) } == g.interp {
        // SAFETY: gilgate's own fallible export, with this thread's thread state.
        if unsafe { crate::api::gilgate_restore_thread(mine as *mut _) } != GILGATE_OK {
            return null_mut();
        }
        return tok(T_REATTACH);
    }
    // SAFETY: the guard keeps the interpreter from finalizing (counted, the drain waits).
    let ts = unsafe { (api.PyThreadState_New)(g.interp) };
    if ts.is_null() {
        return null_mut();
    }
    // SAFETY: gilgate's own fallible export, with the fresh thread state. On refusal the state is
    // left to the runtime (CPython reclaims it when the interpreter ends), as after a refused
    // gilstate entry.
    if unsafe { crate::api::gilgate_acquire_thread(ts as *mut _) } != GILGATE_OK {
        return null_mut();
    }
    debug_assert!(ts as usize & T_MASK == 0);
    ts as P
}

/// `PyThreadState_EnsureFromView`: a guard from the view (closed by the matching release), then
/// `PyThreadState_Ensure`.
#[no_mangle]
pub extern "C" fn gilgate_thread_state_ensure_from_view(view: *mut gilgate_interpreter_view) -> *mut c_void {
    ffi_boundary!({
        if view.is_null() {
            return null_mut();
        }
        let Some(api) = cpython::api() else { return null_mut() };
        if let Some(n) = native(api) {
            // SAFETY: CPython's own view.
            return unsafe { (n.PyThreadState_EnsureFromView)(view as P) };
        }
        let g = gilgate_interpreter_guard_from_view(view);
        if g.is_null() {
            return null_mut();
        }
        // SAFETY: just created, open.
        let tok = ensure(api, unsafe { &*(g as *const Guard) });
        if tok.is_null() {
            gilgate_interpreter_guard_close(g);
            return null_mut();
        }
        // SAFETY: the guard is this level's alone until its release closes it.
        unsafe { &*(g as *const Guard) }.inner.store(tok as usize, Relaxed);
        (g as usize | T_VIEW) as P
    })
}

/// `PyThreadState_Release`: undo this thread's innermost successful ensure.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn gilgate_thread_state_release(token: *mut c_void) {
    // The C hot path (src/c/pep788_compat.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump788!(), f = sym gg788c_release)
}

extern "C" fn rs_thread_state_release(token: *mut c_void) {
    ffi_boundary!({
        let Some(api) = compat_api() else {
            if let Some(n) = cpython::api_if_resolved().and_then(native) {
                // SAFETY: CPython's own token.
                unsafe { (n.PyThreadState_Release)(token) };
            }
            return;
        };
        let t = token as usize;
        if t & T_MASK == T_VIEW {
            let g = (t & !T_MASK) as *mut gilgate_interpreter_guard;
            // SAFETY: the guard EnsureFromView made for this level, still open.
            release_level(api, unsafe { &*(g as *const Guard) }.inner.load(Relaxed));
            gilgate_interpreter_guard_close(g);
        } else {
            release_level(api, t);
        }
    })
}

#[inline(always)]
fn release_level(api: &Api, t: usize) {
    if t & T_MASK == T_GILSTATE {
        // SAFETY: gilgate's own export, pairing with the ensure of this level.
        return unsafe { crate::api::gilgate_gilstate_release((t >> 3) as c_int) };
    }
    release_other(api, t)
}

#[cold]
fn release_other(api: &Api, t: usize) {
    match t & T_MASK {
        T_NESTED => {}
        // SAFETY: gilgate's own export, pairing with the ensure of this level.
        T_GILSTATE => unsafe { crate::api::gilgate_gilstate_release((t >> 3) as c_int) },
        T_REATTACH => {
            // SAFETY: gilgate's own export: detaches the level's thread state.
            let _ = unsafe { crate::api::gilgate_save_thread() };
        }
        0 if t != 0 => {
            let ts = t as TState;
            let x = extra(api);
            // SAFETY: Py_IsInitialized reads one runtime field.
            let gone = crate::gate::state_of(crate::gate::state()) == crate::gate::FINALIZED
                && unsafe { (api.Py_IsInitialized)() } == 0;
            if let (false, Some(clear)) = (gone, x.PyThreadState_Clear) {
                // SAFETY: the level's thread state, attached with the GIL held.
                unsafe { clear(ts) };
            }
            // SAFETY: gilgate's own export: detaches it (NULL when the runtime is gone).
            let saved = unsafe { crate::api::gilgate_save_thread() };
            if let (false, Some(del)) = (saved.is_null(), x.PyThreadState_Delete) {
                // SAFETY: cleared, no longer current; PyThreadState_Delete needs no GIL.
                unsafe { del(ts) };
            }
        }
        _ => {
            crate::log::Line::new().s("PyThreadState_Release (gilgate): not a token of PyThreadState_Ensure on thread ")
                .u(crate::log::tid()).s(": ignored").emit();
        }
    }
}

/// CPython 3.15's PEP 788 names for Rust code, over the exports above (which forward to
/// CPython's own on 3.15+): `use gilgate::pep788_compat::names::*;`. Nothing here is an exported
/// symbol (these are Rust aliases), so no symbol of gilgate takes a CPython name.
#[allow(non_camel_case_types, non_snake_case)]
pub mod names {
    pub use super::gilgate_interpreter_guard as PyInterpreterGuard;
    pub use super::gilgate_interpreter_guard_close as PyInterpreterGuard_Close;
    pub use super::gilgate_interpreter_guard_from_current as PyInterpreterGuard_FromCurrent;
    pub use super::gilgate_interpreter_guard_from_view as PyInterpreterGuard_FromView;
    pub use super::gilgate_interpreter_view as PyInterpreterView;
    pub use super::gilgate_interpreter_view_close as PyInterpreterView_Close;
    pub use super::gilgate_interpreter_view_from_current as PyInterpreterView_FromCurrent;
    pub use super::gilgate_interpreter_view_from_main as PyInterpreterView_FromMain;
    pub use super::gilgate_thread_state_ensure as PyThreadState_Ensure;
    pub use super::gilgate_thread_state_ensure_from_view as PyThreadState_EnsureFromView;
    pub use super::gilgate_thread_state_release as PyThreadState_Release;
    /// `PyThreadStateToken` is `void` in C: tokens are `*mut c_void`.
    pub type PyThreadStateToken = std::os::raw::c_void;
}

#[cfg(test)]
mod tests {
    use super::names::*;
    use super::*;

    /// A unit-test process has no CPython: every call fails cleanly (NULL), views still work.
    #[test]
    fn without_python_everything_is_refused_cleanly() {
        assert!(cpython::api().is_none(), "this test needs a process without CPython");
        let v = PyInterpreterView_FromMain();
        assert!(!v.is_null());
        assert!(PyInterpreterGuard_FromView(v).is_null());
        assert!(PyThreadState_EnsureFromView(v).is_null());
        assert!(PyInterpreterGuard_FromCurrent().is_null());
        assert!(PyInterpreterView_FromCurrent().is_null());
        assert!(PyThreadState_Ensure(null_mut()).is_null());
        PyThreadState_Release(null_mut()); // no level: nothing happens
        PyInterpreterGuard_Close(null_mut());
        PyInterpreterView_Close(v);
    }

    fn at(code: &[u8]) -> impl Fn(usize) -> u8 + '_ {
        |i| code[i]
    }

    /// The getters of the CPythons tested here, byte for byte (objdump of their libpython).
    #[test]
    fn aarch64_tls_getters_are_decoded() {
        // Debian 3.13 arm64 `PyThreadState_GetUnchecked` at 0x2f21c0 (objdump): the descriptor
        // at adrp 0x6e1000 + 0xc8.
        let g = [0xd503233f, 0xd53bd041, 0xa9bf7bfd, 0x910003fd, 0xf0001f60, 0xf9406402, 0x91032000, 0xd63f0040,
                 0xf8606820, 0xa8c17bfd, 0xd50323bf, 0xd65f03c0u32];
        assert_eq!(decode_getter_a64(0x2f21c0, |i| g[i]), Some(0x6e10c8));
        // Debian 3.14 at 0x34ca70 (adrp 0x781000 + 0x150), and the same with `bti c` in front.
        let b = [0xd503245f, 0xd503233f, 0xd53bd041, 0xa9bf7bfd, 0x910003fd, 0xb00021a0, 0xf940a802, 0x91054000,
                 0xd63f0040, 0xf8606820, 0xa8c17bfd, 0xd50323bf, 0xd65f03c0u32];
        assert_eq!(decode_getter_a64(0x34ca70, |i| b[i + 1]), Some(0x781150));
        assert_eq!(decode_getter_a64(0x34ca6c, |i| b[i]), Some(0x781150));
        // The result register as xT, an add/ldr offset mismatch, autiasp missing: not a getter.
        let mut bad = g;
        bad[1] = 0xd53bd040;
        assert_eq!(decode_getter_a64(0x2f21c0, |i| bad[i]), None);
        let mut bad = g;
        bad[6] = 0x91034000;
        assert_eq!(decode_getter_a64(0x2f21c0, |i| bad[i]), None);
        let mut bad = g;
        bad[10] = 0xd65f03c0;
        assert_eq!(decode_getter_a64(0x2f21c0, |i| bad[i]), None);
        assert!(decode_tlsdesc_return(|i| [0xf9400400, 0xd65f03c0u32][i]));
        assert!(decode_tlsdesc_return(|i| [0xd503245f, 0xf9400400, 0xd65f03c0u32][i]));
        assert!(!decode_tlsdesc_return(|i| [0xf9400000, 0xd65f03c0u32][i]));
    }

    #[test]
    fn tls_getters_are_decoded() {
        // pyenv 3.12.1 `_PyThreadState_UncheckedGet` (general-dynamic).
        let gd = [0x48, 0x83, 0xec, 0x08, 0x66, 0x48, 0x8d, 0x3d, 0xf4, 0xc9, 0x26, 0x00, 0x66, 0x66, 0x48, 0xe8,
                  0xdc, 0x10, 0xe3, 0xff, 0x48, 0x8b, 0x00, 0x48, 0x83, 0xc4, 0x08, 0xc3];
        assert_eq!(decode_getter(at(&gd)), Some(TlsGetter { ti: 0x26c9f4 + 12, call: -0x1cef24 + 20, disp: 0 }));
        // Debian 3.14 `PyThreadState_GetUnchecked` (local-dynamic, disp32).
        let ld = [0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x83, 0xec, 0x08, 0x48, 0x8d, 0x3d, 0x61, 0x53, 0x44, 0x00, 0xe8,
                  0x1c, 0x0b, 0xd4, 0xff, 0x48, 0x8b, 0x80, 0x08, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x08, 0xc3];
        assert_eq!(decode_getter(at(&ld)), Some(TlsGetter { ti: 0x445361 + 15, call: -0x2bf4e4 + 20, disp: 8 }));
        // Debian 3.15: frame pointer, popped before the load.
        let fp = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x3d, 0xd1, 0xa6, 0x4a, 0x00, 0xe8,
                  0xcc, 0x9d, 0xcf, 0xff, 0x5d, 0x48, 0x8b, 0x80, 0x08, 0x00, 0x00, 0x00, 0xc3];
        assert_eq!(decode_getter(at(&fp)), Some(TlsGetter { ti: 0x4aa6d1 + 15, call: -0x306234 + 20, disp: 8 }));
        // disp8 form.
        let d8 = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x3d, 1, 0, 0, 0, 0xe8, 2, 0, 0, 0, 0x48, 0x8b, 0x40, 0x18, 0x5d, 0xc3];
        assert_eq!(decode_getter(at(&d8)), Some(TlsGetter { ti: 12, call: 18, disp: 0x18 }));
    }

    #[test]
    fn other_code_is_not_a_tls_getter() {
        // Initial-exec / local-exec (a static libpython): `mov %fs:...`.
        assert_eq!(decode_getter(at(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0xf8, 0xff, 0xff, 0xff, 0xc3])), None);
        // TLS descriptors: `lea ti(%rip),%rax; call *(%rax)`.
        assert_eq!(decode_getter(at(&[0x48, 0x83, 0xec, 0x08, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xff, 0x10, 0xc3])), None);
        // A PLT stub as the function's address.
        assert_eq!(decode_getter(at(&[0xff, 0x25, 0, 0, 0, 0, 0x68, 0, 0, 0, 0])), None);
        // The right shape with something after the load but `ret`, or a mismatched frame undo.
        let more = [0x48, 0x83, 0xec, 0x08, 0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0x48, 0x8b, 0x00, 0x48, 0x8b, 0x00, 0xc3];
        assert_eq!(decode_getter(at(&more)), None);
        let undo = [0x48, 0x83, 0xec, 0x08, 0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0x48, 0x8b, 0x00, 0x5d, 0xc3];
        assert_eq!(decode_getter(at(&undo)), None);
    }

    #[test]
    fn plt_entries_are_decoded() {
        // pyenv 3.12.1's __tls_get_addr@plt at 0x1085e0, slot at 0x5452d8.
        assert_eq!(decode_plt(at(&[0xff, 0x25, 0xf2, 0xcc, 0x43, 0x00, 0x68])), Some(0x5452d8 - 0x1085e0));
        // IBT's .plt.sec: endbr64; bnd jmp *slot(%rip).
        assert_eq!(decode_plt(at(&[0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0x10, 0, 0, 0])), Some(0x10 + 11));
        assert_eq!(decode_plt(at(&[0xe9, 0, 0, 0, 0, 0, 0])), None);
    }

    #[test]
    fn tokens_name_their_level() {
        for st in [0usize, 1] {
            let t = T_GILSTATE | (st << 3);
            assert_eq!(t & T_MASK, T_GILSTATE);
            assert_eq!(t >> 3, st);
            assert_ne!(t, 0);
        }
        // A guard address (8-aligned) tagged as EnsureFromView's, and a thread state pointer.
        let g = Box::into_raw(Box::new(0u64)) as usize;
        assert_eq!((g | T_VIEW) & T_MASK, T_VIEW);
        assert_eq!((g | T_VIEW) & !T_MASK, g);
        assert_eq!(g & T_MASK, 0);
        // SAFETY: the box made above.
        drop(unsafe { Box::from_raw(g as *mut u64) });
    }
}
