//! The Rust side of the C boundary (src/c/: `shared.c` the shared data, `armed_call.c` the armed
//! call and kill hook, `api_entries.c` and `dropin_entries.c` the fast paths, `x86_64/*.S` their
//! assembly, `pep788.c`): every symbol and shared structure they have in common is declared here.
//! Shapes come from `base/layout.rs` (build.rs writes the C structures from it as `gg_layout.h`;
//! both sides assert them). Rust fills the `RustPaths` table (api.rs) and
//! publishes CPython's functions (cpython.rs); the C side calls back only through that table.

use crate::layout::*;
use crate::pytypes::TState;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

extern "C" {
    static gg_hot: Hot;
    fn gg_publish_py(i: c_int, f: *mut c_void);
    fn gg_set_rust(r: *const RustPaths);
    // This thread's slot pointer in initial-exec TLS (no __tls_get_addr call).
    pub(crate) fn gg_slot_get() -> *const c_void;
    pub(crate) fn gg_slot_set(p: *const c_void);
    // This thread's classification (origin.rs) and CPython's text range, for the drop-in paths.
    pub(crate) fn gg_thread_kind() -> c_int;
    pub(crate) fn gg_set_thread_kind(k: c_int);
    pub(crate) fn gg_publish_text(lo: usize, hi: usize);
    pub(crate) fn gg_publish_self_text(lo: usize, hi: usize);
    // Called by the pthread_exit/pause interposers: jumps back into an armed call of this thread
    // (never returns then); returns when none is armed.
    pub(crate) fn gg_kill_hook(kind: c_int) -> c_int;
    // Call `f` with this thread's kill-jump armed: 0, or the kill kind (KILL_*).
    pub(crate) fn gg_armed_call_p(f: unsafe extern "C" fn(*mut c_void), arg: *mut c_void) -> c_int;
    pub(crate) fn gg_armed_call_ri(f: unsafe extern "C" fn() -> c_int, out: *mut c_int) -> c_int;
    pub(crate) fn gg_armed_call_v(f: unsafe extern "C" fn()) -> c_int;
    pub(crate) fn gg_armed_call_pp(f: unsafe extern "C" fn(TState) -> TState, arg: TState, out: *mut TState) -> c_int;
    // The fast paths behind the fallible API's exports (a naked tail jump each, api.rs).
    pub(crate) fn gg_api_restore_thread(ts: TState) -> c_int;
    pub(crate) fn gg_api_acquire_thread(ts: TState) -> c_int;
    pub(crate) fn gg_api_gilstate_ensure(out: *mut c_int) -> c_int;
    pub(crate) fn gg_api_save_thread() -> TState;
    pub(crate) fn gg_api_release_thread(ts: TState);
    pub(crate) fn gg_api_gilstate_release(st: c_int);
}
// The fast paths the hot drop-in exports' trampolines jump to (dropin.rs); they call the
// `*_impl` functions there for everything they do not handle.
extern "C-unwind" {
    pub(crate) fn gg_drop_restore_thread(ts: TState, ra: usize, sp: usize);
    pub(crate) fn gg_drop_acquire_thread(ts: TState, ra: usize, sp: usize);
    pub(crate) fn gg_drop_gilstate_ensure(ra: usize, sp: usize) -> c_int;
    pub(crate) fn gg_drop_save_thread(ra: usize, sp: usize) -> TState;
    pub(crate) fn gg_drop_release_thread(ts: TState, ra: usize, sp: usize);
    pub(crate) fn gg_drop_gilstate_release(st: c_int, ra: usize, sp: usize);
}

/// `gg_kill_hook` kinds.
pub(crate) const KILL_PTHREAD_EXIT: c_int = crate::layout::KILL_PTHREAD_EXIT;
pub(crate) const KILL_PAUSE: c_int = crate::layout::KILL_PAUSE;

/// src/c/pep788.c's trampoline (declared in a function body so that cbindgen, which reads only
/// module-level items, keeps it out of the public header).
pub(crate) fn pep788_ensure_tramp() -> unsafe extern "C" fn(*mut c_void) {
    extern "C" {
        fn gg788_ensure_tramp(p: *mut c_void);
    }
    gg788_ensure_tramp
}

/// The full (Rust) paths the C fast paths fall back to: `struct gg_rust` (layout.rs `RUST_C`), defined in src/c/shared.c.
/// `killed` receives the slot as `*const gate::Slot`.
#[repr(C)]
pub(crate) struct RustPaths {
    pub restore: extern "C" fn(TState) -> c_int,
    pub acquire: extern "C" fn(TState) -> c_int,
    pub ensure: extern "C" fn(*mut c_int) -> c_int,
    pub save: extern "C" fn() -> TState,
    pub release_thread: extern "C" fn(TState),
    pub gilstate_release: extern "C" fn(c_int),
    pub killed: extern "C" fn(*const c_void, c_int, c_int) -> c_int,
    pub drop_restore: extern "C-unwind" fn(TState, usize, usize),
    pub drop_acquire: extern "C-unwind" fn(TState, usize, usize),
    pub drop_ensure: extern "C-unwind" fn(usize, usize) -> c_int,
    pub drop_save: extern "C-unwind" fn(usize, usize) -> TState,
    pub drop_release_thread: extern "C-unwind" fn(TState, usize, usize),
    pub drop_gilstate_release: extern "C-unwind" fn(c_int, usize, usize),
    pub drop_killed: extern "C-unwind" fn(*const c_void, c_int, c_int),
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(RustPaths, restore) == RUST_RESTORE && offset_of!(RustPaths, acquire) == RUST_ACQUIRE);
    assert!(offset_of!(RustPaths, ensure) == RUST_ENSURE && offset_of!(RustPaths, save) == RUST_SAVE);
    assert!(offset_of!(RustPaths, release_thread) == RUST_RELEASE_THREAD);
    assert!(offset_of!(RustPaths, gilstate_release) == RUST_GILSTATE_RELEASE);
    assert!(offset_of!(RustPaths, killed) == RUST_KILLED && offset_of!(RustPaths, drop_restore) == RUST_DROP_RESTORE);
    assert!(offset_of!(RustPaths, drop_acquire) == RUST_DROP_ACQUIRE && offset_of!(RustPaths, drop_ensure) == RUST_DROP_ENSURE);
    assert!(offset_of!(RustPaths, drop_save) == RUST_DROP_SAVE);
    assert!(offset_of!(RustPaths, drop_release_thread) == RUST_DROP_RELEASE_THREAD);
    assert!(offset_of!(RustPaths, drop_gilstate_release) == RUST_DROP_GILSTATE_RELEASE);
    assert!(offset_of!(RustPaths, drop_killed) == RUST_DROP_KILLED && size_of::<RustPaths>() == RUST_SIZE);
};

/// Hand the C side its fallbacks (the library constructor, before any entry can run: until
/// then the C fast paths answer NO_PYTHON).
pub(crate) fn set_rust_paths(p: &'static RustPaths) {
    // SAFETY: C copies a struct of its own layout (`struct gg_rust`, asserted there).
    unsafe { gg_set_rust(p) }
}

/// The read-mostly line every entry reads, defined in `src/c/shared.c` (`struct gg_hot`, layout.rs `HOT_C`, same
/// layout): the state word, whether membarrier is in use, and CPython's functions for the C fast
/// paths (published by `publish_py` once a CPython is resolved).
#[repr(C)]
pub(crate) struct Hot {
    pub(crate) state: AtomicU64,
    pub(crate) fast_barrier: AtomicU32,
    _pad: u32,
    pub(crate) py: [AtomicPtr<std::ffi::c_void>; PY_SLOTS],
    pub(crate) text_lo: AtomicUsize,
    pub(crate) text_hi: AtomicUsize,
    pub(crate) main_interp: AtomicPtr<std::ffi::c_void>,
    /// `cpython::frame_offsets` of the loaded CPython (the drop-in saves' Python-frame test).
    pub(crate) frame_off: AtomicU32,
    pub(crate) cframe_off: AtomicU32,
    /// gilgate's own executable segments: a call into an export whose return address is there
    /// is CPython tail-calling from inside a call gilgate made (origin.rs `set_self_object`).
    pub(crate) self_lo: AtomicUsize,
    pub(crate) self_hi: AtomicUsize,
}
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Hot, state) == HOT_STATE && offset_of!(Hot, py) == HOT_PY);
    assert!(offset_of!(Hot, fast_barrier) == HOT_FAST_BARRIER);
    assert!(offset_of!(Hot, text_lo) == HOT_TEXT_LO && offset_of!(Hot, text_hi) == HOT_TEXT_HI);
    assert!(offset_of!(Hot, self_lo) == HOT_SELF_LO && offset_of!(Hot, self_hi) == HOT_SELF_HI);
    assert!(offset_of!(Hot, main_interp) == HOT_MAIN_INTERP && offset_of!(Hot, frame_off) == HOT_FRAME_OFF);
    assert!(offset_of!(Hot, cframe_off) == HOT_CFRAME_OFF && size_of::<Hot>() == HOT_SIZE);
};

static FRAME_STYLE: AtomicU32 = AtomicU32::new(0);

/// Publish where thread states keep their current Python frame (before any entry can succeed).
/// The C fast paths only ask "is a Python frame executing" (the word at `cframe_off` is 0 or
/// not); `frame_of` also tells frames apart.
pub(crate) fn publish_frame_offsets((off, cf, style): (u32, u32, FrameStyle)) {
    FRAME_STYLE.store(style as u32, Relaxed);
    hot().frame_off.store(off, Relaxed);
    hot().cframe_off.store(cf, Relaxed);
}

/// The Python frame `ts` is executing (0: none, i.e. the host's own level). `ts` must be a
/// live thread state owned by the calling thread (only the owner changes these fields).
pub(crate) fn frame_of(ts: *mut std::ffi::c_void) -> usize {
    if ts.is_null() {
        return 0;
    }
    let off = hot().frame_off.load(Relaxed) as usize;
    let cf = hot().cframe_off.load(Relaxed);
    // SAFETY: per-version offsets of pointer fields inside CPython's `struct _ts`, `_PyCFrame`
    // and `_PyInterpreterFrame` (cpython::frame_offsets); the caller passes its own live state.
    unsafe {
        let p = *((ts as *const u8).add(off) as *const usize);
        if cf == NO_CFRAME || p == 0 {
            return p;
        }
        let w = *((p as *const u8).add(cf as usize) as *const usize);
        if FRAME_STYLE.load(Relaxed) == FrameStyle::Sentinel as u32 {
            if w == 0 { 0 } else { p }
        } else {
            w
        }
    }
}

/// This generation's main interpreter, for the C fast paths' thread-state check. Published
/// before the state word says RUNNING (the fast path reads it only after seeing RUNNING).
pub(crate) fn publish_main_interp(p: *mut std::ffi::c_void) {
    hot().main_interp.store(p, Release);
}

#[inline(always)]
pub(crate) fn hot() -> &'static Hot {
    // SAFETY: a C static of this exact layout (asserted on both sides), only ever accessed
    // through atomics.
    unsafe { &*std::ptr::addr_of!(gg_hot) }
}

/// Indices of `Hot::py` (layout.rs).
pub(crate) const PY_RESTORE: i32 = crate::layout::PY_RESTORE as i32;
pub(crate) const PY_ACQUIRE: i32 = crate::layout::PY_ACQUIRE as i32;
pub(crate) const PY_ENSURE: i32 = crate::layout::PY_ENSURE as i32;
pub(crate) const PY_SAVE: i32 = crate::layout::PY_SAVE as i32;
pub(crate) const PY_RELEASE_THREAD: i32 = crate::layout::PY_RELEASE_THREAD as i32;
pub(crate) const PY_GILSTATE_RELEASE: i32 = crate::layout::PY_GILSTATE_RELEASE as i32;
pub(crate) const PY_API_ENSURE: i32 = crate::layout::PY_API_ENSURE as i32;
pub(crate) const PY_API_GILSTATE_RELEASE: i32 = crate::layout::PY_API_GILSTATE_RELEASE as i32;

/// Hand CPython's function `f` to the C fast paths (NULL: those calls always take the Rust path).
pub(crate) fn publish_py(i: i32, f: *mut std::ffi::c_void) {
    // SAFETY: i is one of the PY_* indices; the store is atomic on the C side.
    unsafe { gg_publish_py(i, f) }
}
