//! The fallible C API. Every entry point is wrapped in `ffi_boundary!`: no panic crosses it.

use crate::cpython::{self, Api, PyThreadStateOpaque, TState};
use crate::gate::{self, Ticket};
use crate::boundary::{self, *};
use crate::status::*;
use std::os::raw::{c_char, c_int, c_void};

/// Called first by the library constructor: until then the C fast paths answer NO_PYTHON.
pub(crate) fn register_rust_paths() {
    static PATHS: RustPaths = RustPaths {
        restore: rs_restore_thread,
        acquire: rs_acquire_thread,
        ensure: rs_gilstate_ensure,
        save: rs_save_thread,
        release_thread: rs_release_thread,
        gilstate_release: rs_gilstate_release,
        killed: rs_killed,
        drop_restore: crate::dropin::restore_impl,
        drop_acquire: crate::dropin::acquire_impl,
        drop_ensure: crate::dropin::ensure_impl,
        drop_save: crate::dropin::save_impl,
        drop_release_thread: crate::dropin::release_thread_impl,
        drop_gilstate_release: crate::dropin::gil_release_impl,
        drop_killed: crate::dropin::fast_entry_killed,
    };
    boundary::set_rust_paths(&PATHS);
}

#[cfg(target_arch = "x86_64")]
macro_rules! jump { () => { "jmp {f}" }; }
#[cfg(target_arch = "aarch64")]
macro_rules! jump { () => { "b {f}" }; }

/// Bookkeeping for a C fast-path entry that CPython tried to kill or park (outermost entry).
extern "C" fn rs_killed(slot: *const c_void, kind: c_int, which: c_int) -> c_int {
    ffi_boundary!({
        // SAFETY: the C fast path passes this thread's own slot (static storage).
        let t = Ticket::fast(unsafe { &*(slot as *const gate::Slot) });
        let (retire, name) = match which {
            crate::layout::WHICH_RESTORE => (false, "gilgate_restore_thread"),
            crate::layout::WHICH_ACQUIRE => (false, "gilgate_acquire_thread"),
            _ => (true, "gilgate_gilstate_ensure"),
        };
        entry_killed(&t, kind, retire, name) as c_int
    })
}

/// The interpreter killed (3.8-3.13) or tried to park (3.14+) the thread inside the entry.
#[cold]
fn entry_killed(t: &Ticket, kind: c_int, retire: bool, func: &str) -> gilgate_status {
    gate::killed(t, retire, kind == KILL_PAUSE);
    if crate::config::get().verbose {
        crate::log::Line::new().s(func).s(": CPython ")
            .s(if kind == KILL_PAUSE { "tried to park" } else { "tried to kill" })
            .s(" thread ").u(crate::log::tid()).s(" (finalizing); returned GILGATE_ERR_FINALIZING").emit();
    }
    GILGATE_ERR_FINALIZING
}

#[inline]
fn with_api() -> Result<&'static Api, gilgate_status> {
    cpython::api().ok_or_else(|| {
        crate::counters::refused(GILGATE_ERR_NO_PYTHON);
        GILGATE_ERR_NO_PYTHON
    })
}

#[inline]
fn restore_like(
    tstate: TState,
    f: fn(&Api) -> unsafe extern "C" fn(TState),
    name: &str,
) -> gilgate_status {
    if tstate.is_null() {
        return GILGATE_ERR_NULL_ARGUMENT;
    }
    let api = match with_api() {
        Ok(a) => a,
        Err(e) => return e,
    };
    let t = match gate::enter(api, gate::KIND_API_TSTATE) {
        Ok(t) => t,
        Err(e) => return e,
    };
    // Only now, with the runtime known to be alive, is the thread state read.
    if !api.interp_is_live(tstate) {
        gate::undo(&t);
        if crate::config::get().verbose {
            crate::log::Line::new().s(name)
                .s(": the thread state belongs to no live interpreter of this runtime; returned GILGATE_ERR_INVALID_ARGUMENT")
                .emit();
        }
        return GILGATE_ERR_INVALID_ARGUMENT;
    }
    // SAFETY: the CPython function takes a PyThreadState* and returns nothing; passing it through
    // a `void (*)(void *)` is ABI-identical. The armed call returns normally or via the kill jump.
    let rc = unsafe {
        let func: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(f(api));
        gg_armed_call_p(func, tstate as *mut c_void)
    };
    if rc != 0 {
        return entry_killed(&t, rc, false, name);
    }
    crate::drain::entered(api, &t);
    GILGATE_OK
}

/// Fallible `PyEval_RestoreThread`: re-attach `tstate` and take the GIL.
///
/// Returns `GILGATE_OK` with the GIL held and the runtime not finalizing, or an error with the
/// thread intact, no GIL held and nothing to release. After `GILGATE_ERR_FINALIZING` do not use
/// `tstate` again (CPython 3.14+ may already have freed it); the runtime reclaims it.
/// `GILGATE_ERR_INVALID_ARGUMENT`: `tstate` belongs to no live interpreter of this runtime
/// (checked once the runtime is known to be alive; a stale pointer is not detectable).
#[must_use]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_restore_thread(tstate: *mut PyThreadStateOpaque) -> gilgate_status {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_restore_thread)
}
extern "C" fn rs_restore_thread(tstate: TState) -> c_int {
    ffi_boundary!(restore_like(tstate, |a| a.PyEval_RestoreThread, "gilgate_restore_thread")) as c_int
}

/// Fallible `PyEval_AcquireThread`: same contract as `gilgate_restore_thread`.
#[must_use]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_acquire_thread(tstate: *mut PyThreadStateOpaque) -> gilgate_status {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_acquire_thread)
}
extern "C" fn rs_acquire_thread(tstate: TState) -> c_int {
    ffi_boundary!(restore_like(tstate, |a| a.PyEval_AcquireThread, "gilgate_acquire_thread")) as c_int
}

/// Whether release-side calls may still reach CPython (not after Py_FinalizeEx returned).
#[inline]
fn runtime_gone(api: &Api) -> bool {
    gate::state_of(gate::state()) == gate::FINALIZED
        // SAFETY: Py_IsInitialized reads one runtime field; callable without the GIL.
        && unsafe { (api.Py_IsInitialized)() } == 0
}

/// `PyEval_SaveThread`: release the GIL and detach the current thread state, which is returned
/// for a later `gilgate_restore_thread`. Ends the gated region opened by the matching entry.
/// Returns NULL (and does nothing) when there is no live CPython runtime.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_save_thread() -> *mut PyThreadStateOpaque {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_save_thread)
}
extern "C" fn rs_save_thread() -> TState {
    ffi_boundary!({
        let Some(api) = cpython::api() else { return std::ptr::null_mut() };
        let slot = gate::my_slot_if_any();
        let in_region = slot.map_or(false, |s| s.depth.load(std::sync::atomic::Ordering::Relaxed) > 0);
        let detached = slot.map_or(false, |s| s.detached.load(std::sync::atomic::Ordering::Relaxed));
        if runtime_gone(api)
            || detached
            // SAFETY: as above.
            || (!in_region && unsafe { (api.Py_IsInitialized)() } == 0)
        {
            if let Some(s) = slot {
                api_tstate_leave(s, std::ptr::null_mut());
            }
            return std::ptr::null_mut();
        }
        // SAFETY: the caller holds the GIL (CPython's contract for PyEval_SaveThread).
        let ts = unsafe { (api.PyEval_SaveThread)() };
        if let Some(s) = slot {
            api_tstate_leave(s, ts);
        }
        ts
    })
}

/// `gilgate_save_thread`/`gilgate_release_thread` end the innermost API thread-state level; used
/// inside a region opened otherwise, they are read like a drop-in save (region model: gate/region.rs).
fn api_tstate_leave(slot: &gate::Slot, ts: TState) {
    if !slot.pop_through(gate::KIND_API_TSTATE) {
        crate::dropin::saved(slot, ts as *mut c_void);
    }
}

/// `gilgate_gilstate_release` ends the innermost API gilstate level.
fn api_gilstate_leave(slot: &gate::Slot) {
    if !slot.pop_through(gate::KIND_API_GILSTATE) && crate::config::get().verbose {
        crate::log::Line::new().s("gilgate_gilstate_release: no gilstate level open on thread ")
            .u(crate::log::tid()).s(": region unchanged").emit();
    }
}

/// `PyEval_ReleaseThread`: detach `tstate` and release the GIL; ends the gated region.
/// NULL or no live runtime: does nothing.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_release_thread(tstate: *mut PyThreadStateOpaque) {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_release_thread)
}
extern "C" fn rs_release_thread(tstate: TState) {
    ffi_boundary!({
        if tstate.is_null() {
            return;
        }
        let Some(api) = cpython::api() else { return };
        let slot = gate::my_slot_if_any();
        let detached = slot.map_or(false, |s| s.detached.load(std::sync::atomic::Ordering::Relaxed));
        if !runtime_gone(api) && !detached {
            // SAFETY: the caller holds the GIL with `tstate` attached (CPython's contract).
            unsafe { (api.PyEval_ReleaseThread)(tstate) };
        }
        if let Some(s) = slot {
            api_tstate_leave(s, tstate);
        }
    })
}

/// Fallible `PyGILState_Ensure`. On `GILGATE_OK`, `*state_out` holds the `PyGILState_STATE` to
/// pass to `gilgate_gilstate_release`. On error nothing is held and nothing must be released;
/// after `GILGATE_ERR_FINALIZING` this thread's gilstate calls are refused until the runtime is
/// re-initialized (CPython may have bound, and later freed, a thread state for it).
#[must_use]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_gilstate_ensure(state_out: *mut c_int) -> gilgate_status {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_gilstate_ensure)
}
extern "C" fn rs_gilstate_ensure(state_out: *mut c_int) -> c_int {
    ffi_boundary!({
        if state_out.is_null() {
            return GILGATE_ERR_NULL_ARGUMENT;
        }
        let api = match with_api() {
            Ok(a) => a,
            Err(e) => return e,
        };
        let t = match gate::enter(api, gate::KIND_API_GILSTATE) {
            Ok(t) => t,
            Err(e) => return e,
        };
        // CPython 3.15+: PEP 788 guard + PyThreadState_Ensure (src/pep788.rs); same contract.
        match crate::pep788::ensure(api, &t) {
            crate::pep788::Ensure::Ok(st) => {
                crate::drain::entered(api, &t);
                // SAFETY: state_out checked non-NULL above; the caller provides a writable int.
                unsafe { *state_out = st };
                return GILGATE_OK;
            }
            crate::pep788::Ensure::Refused(e) => return e,
            crate::pep788::Ensure::Killed(rc) => return entry_killed(&t, rc, true, "gilgate_gilstate_ensure"),
            crate::pep788::Ensure::Legacy => {}
        }
        let mut st: c_int = 0;
        // SAFETY: PyGILState_Ensure takes nothing and returns an int-sized enum.
        let rc = unsafe { gg_armed_call_ri(api.PyGILState_Ensure, &mut st) };
        if rc != 0 {
            return entry_killed(&t, rc, true, "gilgate_gilstate_ensure");
        }
        crate::drain::entered(api, &t);
        crate::pep788::note_legacy(api, &t);
        // SAFETY: state_out checked non-NULL above; the caller provides a writable int.
        unsafe { *state_out = st };
        GILGATE_OK
    }) as c_int
}

/// `PyGILState_Release` for a successful `gilgate_gilstate_ensure`; ends the gated region.
/// Without a matching successful ensure on this thread, or with no live runtime, does nothing.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn gilgate_gilstate_release(state: c_int) {
    // The C fast path (src/c/api_entries.c), entered by a tail jump: no frame of our own.
    core::arch::naked_asm!(jump!(), f = sym gg_api_gilstate_release)
}
extern "C" fn rs_gilstate_release(state: c_int) {
    ffi_boundary!({
        let Some(api) = cpython::api_if_resolved() else { return };
        let Some(slot) = gate::my_slot_if_any() else { return };
        if slot.depth.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            if crate::config::get().verbose {
                crate::log::Line::new()
                    .s("gilgate_gilstate_release without a matching successful ensure on thread ")
                    .u(crate::log::tid()).s(": ignored").emit();
            }
            return;
        }
        let skip = runtime_gone(api) || slot.detached.load(std::sync::atomic::Ordering::Relaxed);
        if crate::pep788::release(api, slot, skip) {
            api_gilstate_leave(slot);
            return;
        }
        if !skip {
            // SAFETY: pairs with the successful PyGILState_Ensure that opened this region.
            unsafe { (api.PyGILState_Release)(state) };
        }
        api_gilstate_leave(slot);
    })
}

/// `Py_FinalizeEx` with the drain: close the gate (new entries get GILGATE_ERR_FINALIZING), wait
/// up to the drain timeout for threads inside gated regions to leave, then finalize.
/// The caller must hold the GIL, as for `Py_FinalizeEx`. `py_result_out` (may be NULL) receives
/// `Py_FinalizeEx`'s return value.
#[no_mangle]
#[must_use]
pub extern "C" fn gilgate_finalize(py_result_out: *mut c_int) -> gilgate_status {
    ffi_boundary!({
        let api = match with_api() {
            Ok(a) => a,
            Err(e) => return e,
        };
        if runtime_gone(api) {
            return GILGATE_ERR_NOT_INITIALIZED;
        }
        if let Err(e) = api.runtime_alive() {
            return e;
        }
        let r = crate::drain::finalize(api, "gilgate_finalize");
        if !py_result_out.is_null() {
            // SAFETY: non-NULL, caller-provided writable int.
            unsafe { *py_result_out = r };
        }
        GILGATE_OK
    })
}

/// Advisory runtime state: `GILGATE_OK` (running), `GILGATE_ERR_FINALIZING`,
/// `GILGATE_ERR_NOT_INITIALIZED` or `GILGATE_ERR_NO_PYTHON`. It can change right after it
/// returns; only the entry calls are race-free.
#[no_mangle]
pub extern "C" fn gilgate_runtime_status() -> gilgate_status {
    ffi_boundary!({
        let Some(api) = cpython::api() else { return GILGATE_ERR_NO_PYTHON };
        let s = gate::state();
        match gate::state_of(s) {
            gate::CLOSING => GILGATE_ERR_FINALIZING,
            // SAFETY: Py_IsInitialized reads one runtime field; callable without the GIL.
            gate::FINALIZED if unsafe { (api.Py_IsInitialized)() } == 0 => GILGATE_ERR_NOT_INITIALIZED,
            _ => match api.runtime_alive() {
                Ok(()) => GILGATE_OK,
                Err(e) => e,
            },
        }
    })
}

/// A static, NUL-terminated description of `status`; never NULL (unknown codes included).
#[no_mangle]
pub extern "C" fn gilgate_status_str(status: gilgate_status_in) -> *const c_char {
    status_cstr(status)
}

/// gilgate's version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn gilgate_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Set how long the drain waits for gated threads before finalization goes on (milliseconds,
/// capped at one hour). Overrides `GILGATE_DRAIN_TIMEOUT_MS` (default 2000).
#[no_mangle]
pub extern "C" fn gilgate_set_drain_timeout_ms(ms: u64) {
    crate::config::set_drain_timeout_ms(ms)
}

/// Set the policy applied where no error can be returned (a `gilgate_policy` value); overrides
/// `GILGATE_ON_FINALIZE`. `GILGATE_ERR_INVALID_ARGUMENT` for any other value (nothing changes).
#[no_mangle]
pub extern "C" fn gilgate_set_policy(policy: c_int) -> gilgate_status {
    if crate::policy::set(policy) {
        GILGATE_OK
    } else {
        GILGATE_ERR_INVALID_ARGUMENT
    }
}

/// Copy the counters into `*out`. `GILGATE_ERR_NULL_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn gilgate_stats(out: *mut crate::stats::gilgate_stats) -> gilgate_status {
    ffi_boundary!({
        if out.is_null() {
            return GILGATE_ERR_NULL_ARGUMENT;
        }
        // SAFETY: non-NULL, caller-provided struct of this layout.
        unsafe { *out = crate::stats::snapshot() };
        GILGATE_OK
    })
}

/// Apply the configured policy (`GILGATE_ON_FINALIZE` / `gilgate_set_policy`) for a refused
/// entry that the caller cannot report, e.g. a C++ destructor re-acquiring the GIL. `what`
/// (may be NULL) names the caller in the diagnostic. Returns only if the policy lets the thread
/// go on, which none does: abort, park forever, or pthread_exit.
#[no_mangle]
pub extern "C-unwind" fn gilgate_apply_policy(what: *const c_char) -> ! {
    ffi_boundary!({
        let name = if what.is_null() {
            "gilgate_apply_policy"
        } else {
            // SAFETY: caller passes a NUL-terminated string (documented); invalid UTF-8 is replaced.
            unsafe { std::ffi::CStr::from_ptr(what) }.to_str().unwrap_or("gilgate_apply_policy")
        };
        crate::policy::apply(name, "the GIL could not be re-acquired (interpreter finalizing)");
    });
    // `exit` policy (the others do not return): the legacy behaviour, outside the panic boundary
    // so that the forced unwind does not meet a catch.
    // SAFETY: terminating the calling thread is what the configured policy asks for.
    unsafe { crate::interpose::real_pthread_exit()(std::ptr::null_mut()) }
}
