//! Drop-in mode: CPython's own thread-state symbols, exported by gilgate, so an unmodified host
//! gets the protection from linking gilgate ahead of libpython or from LD_PRELOAD.
//!
//! Every export starts with a two-instruction trampoline that hands the implementation its
//! caller's return address and stack pointer. For the hot six (restore/acquire/ensure and their
//! releases) the implementation is a C fast path in src/c/dropin_entries.c (`gg_drop_*`) that handles the common
//! cases and calls the `*_impl` functions below for the rest. Either way:
//! - a call from CPython's own code, or on a thread CPython created, goes straight to the real
//!   function (native behaviour, no bookkeeping: see origin.rs);
//! - a host thread's outermost entry goes through the gate like the fallible API; where CPython
//!   would kill or park it, or the gate refuses it, the policy applies (a void API cannot fail);
//! - inside a host region, an extension module's `Py_BEGIN/END_ALLOW_THREADS` pair (a save made
//!   deeper on the stack than the region's entry) suspends and resumes the region instead of
//!   ending it, so the drain waits for it rather than refusing its return.

use crate::cpython::{self, Api, TState};
use crate::gate::{self, Slot};
use crate::origin;
use crate::status::*;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::Ordering::*;

use crate::boundary::*;

macro_rules! export0 {
    ($(#[$m:meta])* $name:ident -> $ret:ty => $imp:ident) => {
        $(#[$m])*
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name() -> $ret {
            core::arch::naked_asm!(tramp!(0), f = sym $imp)
        }
    };
}
macro_rules! export1 {
    ($(#[$m:meta])* $name:ident($a:ty) -> $ret:ty => $imp:ident) => {
        $(#[$m])*
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name(_: $a) -> $ret {
            core::arch::naked_asm!(tramp!(1), f = sym $imp)
        }
    };
}

export1!(/// CPython-compatible `PyEval_RestoreThread` (see module docs).
    PyEval_RestoreThread(TState) -> () => gg_drop_restore_thread);
export1!(/// CPython-compatible `PyEval_AcquireThread`.
    PyEval_AcquireThread(TState) -> () => gg_drop_acquire_thread);
export0!(/// CPython-compatible `PyGILState_Ensure`.
    PyGILState_Ensure -> c_int => gg_drop_gilstate_ensure);
export0!(/// CPython-compatible `PyEval_AcquireLock` (CPython <= 3.12).
    PyEval_AcquireLock -> () => acquire_lock_impl);
export0!(/// CPython-compatible `PyEval_SaveThread`.
    PyEval_SaveThread -> TState => gg_drop_save_thread);
export1!(/// CPython-compatible `PyEval_ReleaseThread`.
    PyEval_ReleaseThread(TState) -> () => gg_drop_release_thread);
export1!(/// CPython-compatible `PyGILState_Release`.
    PyGILState_Release(c_int) -> () => gg_drop_gilstate_release);
export0!(/// CPython-compatible `PyEval_ReleaseLock` (CPython <= 3.12).
    PyEval_ReleaseLock -> () => release_lock_impl);
export1!(/// CPython-compatible `PyThreadState_New`: refused (policy) once the gate is closed.
    PyThreadState_New(*mut c_void) -> TState => tstate_new_impl);
export0!(/// CPython-compatible `PyThreadState_DeleteCurrent`: ends the innermost level.
    PyThreadState_DeleteCurrent -> () => delete_current_impl);
export1!(/// CPython-compatible `_PyThreadState_DeleteCurrent` (exported by CPython 3.9-3.12).
    _PyThreadState_DeleteCurrent(TState) -> () => delete_current_ts_impl);
export1!(/// CPython-compatible `PyThreadState_Swap`: on 3.12+ an attach is an entry, a detach a save.
    PyThreadState_Swap(TState) -> TState => swap_impl);
export0!(/// CPython-compatible `Py_FinalizeEx`, with gilgate's drain first.
    Py_FinalizeEx -> c_int => finalize_ex_impl);
export0!(/// CPython-compatible `Py_Finalize`, with gilgate's drain first.
    Py_Finalize -> () => finalize_impl);

/// The CPython functions behind the exports; a missing one means a broken process.
fn api_or_die(name: &str) -> &'static Api {
    match cpython::api() {
        Some(a) => a,
        None => {
            crate::log::Line::new().s("fatal: ").s(name)
                .s(" called but no CPython (3.8+) was found in this process").emit();
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() }
        }
    }
}

/// Outside any region, a thread state executing a Python frame is being resumed: the end of an
/// extension's `Py_BEGIN_ALLOW_THREADS` pair inside Python code that runs outside any region (an
/// embedding host's main thread, CPython's own extension modules there). Not a region entry:
/// forwarded as is (src/c/shared.h `gg_in_python` makes the same test for the fast entries).
#[inline]
fn resumes_python(ts: TState) -> bool {
    outside_region() && frame_of(ts as *mut c_void) != 0
}

#[inline]
fn outside_region() -> bool {
    gate::my_slot_if_any().map_or(true, |s| s.depth.load(Relaxed) == 0)
}

/// Native path: CPython's own call site (or CPython tail-calling from inside a call gilgate
/// made), or a thread CPython created.
#[inline(always)]
fn native(ra: usize) -> bool {
    origin::in_cpython(ra) || origin::in_self(ra) || origin::thread_kind() == origin::CPYTHON
}

/// The policy said `exit`: the caller must end the thread, outside any catch_unwind (the forced
/// unwind of pthread_exit must not meet one) and only through `C-unwind` frames.
#[must_use]
struct Exit;

/// A drop-in export cannot return an error: a panic inside gilgate applies the policy.
impl<R> crate::OnPanic for Result<R, Exit> {
    fn on_panic() -> Self {
        crate::policy::apply("gilgate", "internal error (a panic inside gilgate)");
        Err(Exit)
    }
}

#[cold]
fn refuse(name: &str, e: gilgate_status) -> Exit {
    let why = match e {
        GILGATE_ERR_NOT_INITIALIZED => "the gate refused a host thread: the Python runtime is not initialized (finalized?)",
        _ => "the gate refused a host thread: the interpreter is finalizing",
    };
    crate::policy::apply(name, why);
    Exit
}

#[cold]
fn killed_in_region(name: &str, kind: c_int) -> Exit {
    crate::policy::apply(name, if kind == KILL_PAUSE {
        "CPython tried to park a host thread forever (finalizing)"
    } else {
        "CPython tried to kill a host thread (finalizing)"
    });
    Exit
}

/// Leave the thread the legacy way (policy `exit`).
#[cold]
fn exit_thread() -> ! {
    // SAFETY: ends the calling thread, as the policy asks; every frame between here and the host
    // is `C-unwind` or C, so the forced unwind passes through.
    unsafe { crate::interpose::real_pthread_exit()(std::ptr::null_mut()) }
}

/// Run `f` inside the panic boundary; leave the thread if the policy said so.
#[inline(always)]
fn guarded<R>(f: impl FnOnce() -> Result<R, Exit>) -> R {
    match ffi_boundary!(f()) {
        Ok(v) => v,
        Err(Exit) => exit_thread(),
    }
}

/// CPython killed or parked a host thread inside an outermost entry the C fast path made: undo
/// the entry and apply the policy (which does not return, or ends the thread).
pub(crate) extern "C-unwind" fn fast_entry_killed(slot: *const c_void, kind: c_int, which: c_int) {
    let (name, retire) = match which {
        crate::layout::WHICH_RESTORE => ("PyEval_RestoreThread", false),
        crate::layout::WHICH_ACQUIRE => ("PyEval_AcquireThread", false),
        _ => ("PyGILState_Ensure", true),
    };
    guarded(|| -> Result<(), Exit> {
        // SAFETY: the C fast path passes this thread's own slot (static storage).
        let t = gate::Ticket::fast(unsafe { &*(slot as *const Slot) });
        gate::killed(&t, retire, kind == KILL_PAUSE);
        Err(killed_in_region(name, kind))
    })
}

/// A host thread's entry through an export: a level of `kind` (region model: gate/region.rs).
/// `call` makes the armed CPython call (0 or a kill kind); `ts` is the thread state it attaches
/// (for the level's Python frame; NULL where there is none).
#[inline]
fn host_enter(api: &Api, name: &str, sp: usize, kind: u8, retire: bool, ts: TState,
              call: impl FnOnce() -> c_int) -> Result<(), Exit> {
    let Some(slot) = gate::my_slot() else { return Err(refuse(name, GILGATE_ERR_INTERNAL)) };
    if slot.depth.load(Relaxed) > 0 {
        // Inside the thread's region: the resume of a suspension (a restore-like call), or a
        // nested level. Never refused: the drain waits for this thread.
        let resume = kind == gate::KIND_TSTATE && slot.top().0 == gate::KIND_SUSPEND;
        if resume {
            gate::leave(slot);
        } else {
            slot.push(kind, 0);
        }
        let rc = call();
        if rc != 0 {
            gate::close_region(slot);
            crate::counters::killed();
            return Err(killed_in_region(name, rc));
        }
        if !resume && kind == gate::KIND_TSTATE {
            slot.set_top_frame(frame_of(ts as *mut c_void));
        }
        return Ok(());
    }
    let t = match gate::enter_with(api, slot, kind) {
        Ok(t) => t,
        Err(e) => return Err(refuse(name, e)),
    };
    slot.open_sp.store(sp, Relaxed);
    let rc = call();
    if rc != 0 {
        gate::killed(&t, retire, rc == KILL_PAUSE);
        return Err(killed_in_region(name, rc));
    }
    if kind == gate::KIND_TSTATE {
        slot.set_top_frame(frame_of(ts as *mut c_void));
    }
    crate::drain::entered(api, &t);
    Ok(())
}

/// A host thread's save-like call returned, having detached `ts` (NULL if unknown): close the
/// innermost thread-state level if `ts` is back at its Python frame, else suspend the region.
pub(crate) fn saved(s: &Slot, ts: *mut c_void) {
    if s.depth.load(Relaxed) == 0 {
        return;
    }
    match s.top() {
        (gate::KIND_TSTATE, f0) if frame_of(ts) == f0 => {
            gate::leave(s);
        }
        (0, _) => {
            gate::leave(s); // past gate::LEVELS: untyped
        }
        (gate::KIND_SUSPEND, _) => {} // already suspended (its resume went unseen)
        _ => s.push(gate::KIND_SUSPEND, 0),
    }
}

#[inline]
fn host_leave(slot: Option<&'static Slot>, ts: TState) {
    if let Some(s) = slot {
        saved(s, ts as *mut c_void);
    }
}

pub(crate) extern "C-unwind" fn restore_impl(ts: TState, ra: usize, sp: usize) {
    let api = api_or_die("PyEval_RestoreThread");
    if native(ra) || ts.is_null() || resumes_python(ts) {
        // SAFETY: forwarding the caller's own call unchanged.
        return unsafe { (api.PyEval_RestoreThread)(ts) };
    }
    guarded(|| {
        host_enter(api, "PyEval_RestoreThread", sp, gate::KIND_TSTATE, false, ts, || {
            // SAFETY: see api.rs: PyThreadState* passed through a void* parameter.
            unsafe { gg_armed_call_p(std::mem::transmute(api.PyEval_RestoreThread), ts as *mut c_void) }
        })
    })
}

pub(crate) extern "C-unwind" fn acquire_impl(ts: TState, ra: usize, sp: usize) {
    let api = api_or_die("PyEval_AcquireThread");
    if native(ra) || ts.is_null() || resumes_python(ts) {
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyEval_AcquireThread)(ts) };
    }
    guarded(|| {
        host_enter(api, "PyEval_AcquireThread", sp, gate::KIND_TSTATE, false, ts, || {
            // SAFETY: as above.
            unsafe { gg_armed_call_p(std::mem::transmute(api.PyEval_AcquireThread), ts as *mut c_void) }
        })
    })
}

pub(crate) extern "C-unwind" fn ensure_impl(ra: usize, sp: usize) -> c_int {
    let api = api_or_die("PyGILState_Ensure");
    if native(ra) || (outside_region() && api.holds_gil()) {
        // Outside any region with a thread state attached: the thread holds the GIL already, so
        // this only counts (no wait, no kill): not an entry (e.g. a callback on the main thread).
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyGILState_Ensure)() };
    }
    guarded(|| {
        let mut st: c_int = 0;
        host_enter(api, "PyGILState_Ensure", sp, gate::KIND_GILSTATE, true, std::ptr::null_mut(), || {
            // SAFETY: PyGILState_Ensure takes nothing and returns an int-sized enum.
            unsafe { gg_armed_call_ri(api.PyGILState_Ensure, &mut st) }
        })?;
        Ok(st)
    })
}

extern "C-unwind" fn acquire_lock_impl(ra: usize, sp: usize) {
    let api = api_or_die("PyEval_AcquireLock");
    let Some(real) = api.PyEval_AcquireLock else {
        crate::log::Line::new().s("fatal: PyEval_AcquireLock called but this CPython (3.13+) has none").emit();
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    };
    if native(ra) {
        // SAFETY: forwarding unchanged.
        return unsafe { real() };
    }
    guarded(|| {
        // SAFETY: a void(void) CPython function.
        host_enter(api, "PyEval_AcquireLock", sp, gate::KIND_TSTATE, false, std::ptr::null_mut(), || unsafe {
            gg_armed_call_v(real)
        })
    })
}

pub(crate) extern "C-unwind" fn save_impl(ra: usize, _sp: usize) -> TState {
    let api = api_or_die("PyEval_SaveThread");
    if native(ra) {
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyEval_SaveThread)() };
    }
    let slot = gate::my_slot_if_any();
    // SAFETY: forwarding the host's call (it holds the GIL, CPython's contract).
    let ts = unsafe { (api.PyEval_SaveThread)() };
    ffi_boundary!(host_leave(slot, ts));
    ts
}

pub(crate) extern "C-unwind" fn release_thread_impl(ts: TState, ra: usize, _sp: usize) {
    let api = api_or_die("PyEval_ReleaseThread");
    if native(ra) {
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyEval_ReleaseThread)(ts) };
    }
    let slot = gate::my_slot_if_any();
    // SAFETY: forwarding the host's call.
    unsafe { (api.PyEval_ReleaseThread)(ts) };
    ffi_boundary!(host_leave(slot, ts));
}

pub(crate) extern "C-unwind" fn gil_release_impl(st: c_int, ra: usize, _sp: usize) {
    let api = api_or_die("PyGILState_Release");
    if native(ra) {
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyGILState_Release)(st) };
    }
    let slot = gate::my_slot_if_any();
    // SAFETY: forwarding the host's call.
    unsafe { (api.PyGILState_Release)(st) };
    if let Some(s) = slot {
        // Closes its own level: a callback's release inside a suspended region (ctypes, cffi,
        // numpy, SWIG, PyO3) leaves the suspension open.
        ffi_boundary!(s.pop_through(gate::KIND_GILSTATE));
    }
}

extern "C-unwind" fn release_lock_impl(ra: usize, _sp: usize) {
    let api = api_or_die("PyEval_ReleaseLock");
    let Some(real) = api.PyEval_ReleaseLock else {
        crate::log::Line::new().s("fatal: PyEval_ReleaseLock called but this CPython (3.13+) has none").emit();
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    };
    if native(ra) {
        // SAFETY: forwarding unchanged.
        return unsafe { real() };
    }
    let slot = gate::my_slot_if_any();
    // SAFETY: reads the attached thread state (the caller holds the GIL).
    let ts = unsafe { (api.tstate_unchecked)() };
    // SAFETY: forwarding the host's call.
    unsafe { real() };
    ffi_boundary!(host_leave(slot, ts));
}

extern "C-unwind" fn tstate_new_impl(interp: *mut c_void, ra: usize, _sp: usize) -> TState {
    let api = api_or_die("PyThreadState_New");
    if !native(ra) {
        let inside = gate::my_slot_if_any().map_or(false, |s| s.depth.load(Relaxed) > 0);
        if !inside {
            let s = gate::state();
            let refused = match gate::state_of(s) {
                gate::CLOSING => Some(GILGATE_ERR_FINALIZING),
                // SAFETY: Py_IsInitialized reads one runtime field; callable without the GIL.
                gate::FINALIZED if unsafe { (api.Py_IsInitialized)() } == 0 => Some(GILGATE_ERR_NOT_INITIALIZED),
                _ => api.runtime_alive().err(),
            };
            if let Some(e) = refused {
                crate::counters::refused(e);
                let Exit = refuse("PyThreadState_New", e);
                exit_thread();
            }
        }
    }
    if !origin::in_cpython(ra) && late_new_tstate(api) {
        // A thread that does not hold the GIL making a thread state for a runtime past its
        // finalizing flag (or gone): e.g. a daemon thread woken inside pybind11's
        // gil_scoped_release after Py_FinalizeEx, whose gil_scoped_acquire builds a new state
        // (3.8, where waiters are never killed). CPython would run on freed state: park it.
        if origin::thread_kind() == origin::CPYTHON {
            if ffi_boundary!(crate::policy::cpython_thread("PyThreadState_New")) {
                exit_thread(); // released: end it as CPython's kill would have
            }
        } else {
            crate::counters::refused(GILGATE_ERR_FINALIZING);
            let Exit = refuse("PyThreadState_New", GILGATE_ERR_FINALIZING);
            exit_thread();
        }
    }
    // SAFETY: forwarding the call unchanged.
    unsafe { (api.PyThreadState_New)(interp) }
}

/// The runtime is past its finalizing flag (it stays set after `Py_FinalizeEx`) and the caller
/// is not the finalizing thread (which holds the GIL). Two runtime reads; cold callers only.
#[inline]
fn late_new_tstate(api: &Api) -> bool {
    // SAFETY: _Py_IsFinalizing/Py_IsFinalizing read one runtime field, callable without the GIL.
    api.is_finalizing.map_or(false, |f| unsafe { f() } != 0) && !api.holds_gil()
}

extern "C-unwind" fn delete_current_impl(ra: usize, _sp: usize) {
    let api = api_or_die("PyThreadState_DeleteCurrent");
    let real = api.PyThreadState_DeleteCurrent.unwrap_or_else(|| missing("PyThreadState_DeleteCurrent"));
    // SAFETY: forwarding the call unchanged (the caller holds the GIL, CPython's contract).
    deleted_current(ra, || unsafe { real() });
}

extern "C-unwind" fn delete_current_ts_impl(ts: TState, ra: usize, _sp: usize) {
    let api = api_or_die("_PyThreadState_DeleteCurrent");
    let real = api._PyThreadState_DeleteCurrent.unwrap_or_else(|| missing("_PyThreadState_DeleteCurrent"));
    // SAFETY: forwarding the call unchanged.
    deleted_current(ra, || unsafe { real(ts) });
}

/// Forward a `DeleteCurrent` (it releases the GIL and frees the thread state), then close the
/// host's innermost level (pybind11's `gil_scoped_acquire` on a fresh thread ends this way).
#[inline]
fn deleted_current(ra: usize, forward: impl FnOnce()) {
    let slot = if native(ra) { None } else { gate::my_slot_if_any() };
    forward();
    if let Some(s) = slot {
        ffi_boundary!(gate::leave(s));
    }
}

#[cold]
fn missing(name: &str) -> ! {
    crate::log::Line::new().s("fatal: ").s(name).s(" called but this CPython has none").emit();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// `PyThreadState_Swap` takes and releases the GIL on 3.12+ only (earlier it stores a pointer).
extern "C-unwind" fn swap_impl(ts: TState, ra: usize, sp: usize) -> TState {
    let api = api_or_die("PyThreadState_Swap");
    if native(ra) || api.version < (3, 12) {
        // SAFETY: forwarding unchanged.
        return unsafe { (api.PyThreadState_Swap)(ts) };
    }
    guarded(|| {
        // SAFETY: reads this thread's attached thread state; no precondition.
        let old = unsafe { (api.tstate_unchecked)() };
        let mut r: TState = std::ptr::null_mut();
        if old.is_null() && !ts.is_null() && !resumes_python(ts) {
            // An attach: an entry like PyEval_RestoreThread (Cython >= 3.2's `with nogil` end
            // on 3.13+ uses RestoreThread after a Swap(NULL); mod_wsgi and JEP switch this way).
            host_enter(api, "PyThreadState_Swap", sp, gate::KIND_TSTATE, false, ts, || {
                // SAFETY: Swap takes and returns a thread state pointer.
                unsafe { gg_armed_call_pp(api.PyThreadState_Swap, ts, &mut r) }
            })?;
            return Ok(r);
        }
        let slot = gate::my_slot_if_any();
        let inside = slot.map_or(false, |s| s.depth.load(Relaxed) > 0);
        if !ts.is_null() && inside {
            // A switch inside the region: CPython may wait for a GIL in between; the level stays.
            // SAFETY: as above.
            let rc = unsafe { gg_armed_call_pp(api.PyThreadState_Swap, ts, &mut r) };
            if rc != 0 {
                if let Some(s) = slot {
                    gate::close_region(s);
                }
                crate::counters::killed();
                return Err(killed_in_region("PyThreadState_Swap", rc));
            }
            return Ok(r);
        }
        // SAFETY: forwarding: a detach (Swap(NULL): a save), or a switch outside any region.
        r = unsafe { (api.PyThreadState_Swap)(ts) };
        if ts.is_null() && !old.is_null() {
            host_leave(slot, old);
        }
        Ok(r)
    })
}

extern "C-unwind" fn finalize_ex_impl(ra: usize, _sp: usize) -> c_int {
    let api = api_or_die("Py_FinalizeEx");
    if origin::in_cpython(ra) {
        // CPython's own (Py_RunMain): the atexit hook drains if gilgate was used.
        // SAFETY: forwarding unchanged.
        return unsafe { (api.Py_FinalizeEx)() };
    }
    guarded(|| Ok(crate::drain::finalize(api, "Py_FinalizeEx")))
}

extern "C-unwind" fn finalize_impl(ra: usize, sp: usize) {
    let _ = finalize_ex_impl(ra, sp);
}

