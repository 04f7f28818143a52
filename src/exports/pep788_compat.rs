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
    /// For a guard `EnsureFromView` made: the token of the level it guards.
    inner: AtomicUsize,
}

/// `PyInterpreterView` on CPython < 3.15 (opaque to C).
#[allow(non_camel_case_types)]
pub struct gilgate_interpreter_view {
    magic: u64,
    id: i64,
}

const GUARD_MAGIC: u64 = 0x6767_6775_6172_6431; // "gggguard1"; also in src/c/pep788_compat.c
const _: () = {
    // The head src/c/pep788_compat.c reads (struct gg788c_guard).
    use std::mem::offset_of;
    assert!(offset_of!(Guard, magic) == 0 && offset_of!(Guard, interp) == 8);
    assert!(offset_of!(Guard, gen) == 16 && offset_of!(Guard, main) == 24);
};

// src/c/pep788_compat.c (left out of gilgate.h: cbindgen.toml's exclude list).
extern "C" {
    fn gg788c_set_paths(ensure: extern "C" fn(P) -> P, release: extern "C" fn(P));
    fn gg788c_publish(cur: unsafe extern "C" fn() -> TState, state: *const u64);
    fn gg788c_ensure(guard: P) -> P;
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
        // thread's own attached thread state, so "not attached" is one call.
        // SAFETY: a CPython function with no preconditions and the gate's state word (static).
        unsafe { gg788c_publish(api.tstate_unchecked, crate::boundary::hot().state.as_ptr() as *const u64) };
    }
    MODE.store(m, Relaxed);
    (m == COMPAT).then_some(api)
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
        Ok(gen) => Box::into_raw(Box::new(Guard { magic: GUARD_MAGIC, interp, gen, main, inner: AtomicUsize::new(0) })) as *mut gilgate_interpreter_guard,
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
    // The C hot path (src/c/pep788_compat.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump788!(), f = sym gg788c_ensure)
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
