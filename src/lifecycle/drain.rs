//! Draining host threads out of CPython before it marks itself finalizing.
//!
//! The gate is closed (new entries refused), the GIL released, and we wait (bounded) until no
//! other thread is inside a gated region; then finalization goes on. Threads running Python code
//! thus finish their region instead of being killed by the eval loop's GIL switch, and no gated
//! thread waits for the GIL in CPython's late-finalization windows (known crashes in 3.10-3.12).
//!
//! When: after every `atexit` handler of the interpreter, whatever their registration order
//! (a program's handler may still need its threads to enter Python to stop them), and before
//! CPython sets its finalizing flag. atexit runs handlers last-registered-first, and gilgate only
//! registers when it first holds the GIL, usually after the program registered its own; so the
//! trigger is not the callback itself but the death of the callback object, which CPython drops
//! once the whole atexit pass is over (`atexit_callfuncs` ends with `atexit_cleanup`, 3.8-3.15;
//! checked by experiment on each). The callback only marks that the pass began, so dropping it
//! any other way (`atexit.unregister`, `atexit._clear`) disarms the trigger instead of draining.
//!  1. the trigger above, registered the first time gilgate holds the GIL in a generation;
//!  2. `gilgate_finalize`, gilgate's exported `Py_FinalizeEx`/`Py_Finalize`: they let the trigger
//!     drain when it is armed, and drain first otherwise;
//!  3. (end of finalization) a `Py_AtExit` callback marks the generation finalized, so later
//!     calls answer NOT_INITIALIZED and a new `Py_Initialize` is recognised.
//! A program that runs the atexit pass by hand (`atexit._run_exitfuncs()`) drains there: the
//! gate stays closed for the rest of that generation.

use crate::cpython::{Api, PyMethodDef, PyObj, METH_NOARGS};
use crate::gate;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// Generation for which the drain hooks were registered.
static HOOKED_GEN: AtomicU64 = AtomicU64::new(0);
/// Generation whose atexit trigger is armed (registered, not yet fired or dropped).
static TRIGGER_GEN: AtomicU64 = AtomicU64::new(0);
/// Generation in which CPython called the trigger's callback (its atexit pass began).
static CALLED_GEN: AtomicU64 = AtomicU64::new(0);
static CAPSULE_NAME: &[u8] = b"gilgate.drain_trigger\0";
static CAPSULE_TARGET: u8 = 0;

static ATEXIT_DEF: PyMethodDef = PyMethodDef {
    name: b"_gilgate_drain\0".as_ptr() as *const _,
    meth: Some(atexit_drain),
    flags: METH_NOARGS,
    doc: b"gilgate: drain gated host threads before finalization\0".as_ptr() as *const _,
};

unsafe extern "C" fn atexit_drain(_self: PyObj, _args: PyObj) -> PyObj {
    // Called by CPython's atexit machinery with the GIL held: the pass has begun; the drain
    // comes when the callback object dies at its end (trigger_dropped). No panic may escape.
    ffi_boundary!(CALLED_GEN.store(gate::gen_of(gate::state()), Relaxed));
    match crate::cpython::api_if_resolved() {
        Some(api) => {
            // SAFETY: returning a new reference to None, as METH_NOARGS requires (GIL held).
            unsafe { (api.Py_IncRef)(api.none) };
            api.none
        }
        None => std::ptr::null_mut(),
    }
}

/// The trigger's capsule is freed (GIL held): at the end of the atexit pass, or because the
/// callback was unregistered or cleared.
unsafe extern "C" fn trigger_dropped(_capsule: PyObj) {
    ffi_boundary!({
        let gen = gate::gen_of(gate::state());
        if TRIGGER_GEN.compare_exchange(gen, 0, AcqRel, Relaxed).is_err() {
            return;
        }
        if CALLED_GEN.load(Relaxed) == gen {
            if let Some(api) = crate::cpython::api_if_resolved() {
                drain(api, "end of atexit");
            }
        } else {
            // No drain at the end of the atexit pass: Py_FinalizeEx must not wait for guards.
            if let Some(api) = crate::cpython::api_if_resolved() {
                crate::pep788::release_generation(api);
            }
            if crate::config::get().verbose {
                crate::log::Line::new().s("atexit drain trigger dropped before the atexit pass: the finalize call drains first").emit();
            }
        }
    })
}

/// Whether this generation's drain will run at the end of the atexit pass.
pub(crate) fn trigger_armed() -> bool {
    TRIGGER_GEN.load(Acquire) == gate::gen_of(gate::state())
}

extern "C" fn finalized_hook() {
    // Py_AtExit callbacks run at the very end of Py_FinalizeEx.
    gate::mark_finalized();
    crate::stats::maybe_print_at_finalize();
}

/// A gated entry succeeded (the GIL is held): adopt the runtime if this generation's is not.
#[inline]
pub(crate) fn entered(api: &Api, t: &gate::Ticket) {
    if gate::entered(t) {
        adopt(api);
    }
}

/// First time this generation that gilgate holds the GIL (main interpreter): register the drain.
#[cold]
pub(crate) fn adopt(api: &Api) {
    let s = gate::state();
    if gate::state_of(s) != gate::UNKNOWN {
        return;
    }
    let gen = gate::gen_of(s);
    // SAFETY: the GIL is held by this thread (the caller just acquired it).
    unsafe {
        // Per-interpreter atexit (3.10+): only the main interpreter's finalization is ours.
        if (api.PyInterpreterState_Get)() != (api.PyInterpreterState_Main)() {
            return;
        }
        if HOOKED_GEN.load(Relaxed) != gen {
            HOOKED_GEN.store(gen, Relaxed);
            let py_ok = register_atexit(api);
            if py_ok {
                TRIGGER_GEN.store(gen, Release);
                // The drain will run (or, disarmed, release it): hold the generation guard.
                crate::pep788::hold_generation(api, gen);
            }
            let c_ok = (api.Py_AtExit)(finalized_hook) == 0;
            if crate::config::get().verbose {
                crate::log::Line::new()
                    .s("adopted CPython runtime generation ").u(gen)
                    .s(if py_ok { ", atexit drain registered" } else { ", atexit drain NOT registered" })
                    .s(if c_ok { ", Py_AtExit hook registered" } else { ", Py_AtExit hook NOT registered" })
                    .emit();
            }
        } else {
            // Another thread is adopting this generation and is inside its registration:
            // `atexit.register` runs Python code, which can hand the GIL over (the switch
            // interval) to this thread before that one has registered the drain and, on 3.15+,
            // taken the PEP 788 generation guard. Only the registering thread moves the state to
            // RUNNING, once all of that is in place: RUNNING admits the C fast entries and
            // releases, and a PEP 788 gilstate level opened before the generation guard was held
            // would otherwise be closed by the fast release's PyGILState_Release (3.15's fatal
            // "PyThreadState_Release() called more times than PyThreadState_Ensure()" at the
            // drain, seen 1 in ~150 seed runs, docs/testing.md).
            return;
        }
    }
    // SAFETY: PyInterpreterState_Main reads one runtime field.
    crate::boundary::publish_main_interp(unsafe { (api.PyInterpreterState_Main)() });
    gate::transition(s, gate::pack(gate::RUNNING, gen));
}

/// `atexit.register(_gilgate_drain)`, leaving the thread's exception state as it found it.
unsafe fn register_atexit(api: &Api) -> bool {
    // SAFETY: the caller holds the GIL (this fn's contract); CPython's C API used as documented, every new reference released once.
    unsafe {
        let (mut t, mut v, mut tb): (PyObj, PyObj, PyObj) = Default::default();
        (api.PyErr_Fetch)(&mut t, &mut v, &mut tb);
        let mut ok = false;
        let module = (api.PyImport_ImportModule)(b"atexit\0".as_ptr() as *const _);
        if !module.is_null() {
            let register = (api.PyObject_GetAttrString)(module, b"register\0".as_ptr() as *const _);
            // The function object owns the only reference to the capsule: when CPython drops the
            // callback, the capsule's destructor runs.
            let capsule = (api.PyCapsule_New)(
                &CAPSULE_TARGET as *const u8 as *mut std::ffi::c_void,
                CAPSULE_NAME.as_ptr() as *const _,
                Some(trigger_dropped),
            );
            let func = if capsule.is_null() {
                std::ptr::null_mut()
            } else {
                let f = (api.PyCFunction_NewEx)(&ATEXIT_DEF, capsule, std::ptr::null_mut());
                (api.Py_DecRef)(capsule);
                f
            };
            if !register.is_null() && !func.is_null() {
                let args = (api.PyTuple_New)(1);
                if !args.is_null() {
                    (api.Py_IncRef)(func);
                    (api.PyTuple_SetItem)(args, 0, func); // steals the reference
                    let r = (api.PyObject_CallObject)(register, args);
                    ok = !r.is_null();
                    if ok {
                        (api.Py_DecRef)(r);
                    }
                    (api.Py_DecRef)(args);
                }
            }
            for o in [func, register, module] {
                if !o.is_null() {
                    (api.Py_DecRef)(o);
                }
            }
        }
        // Drops any error raised above and restores the caller's.
        (api.PyErr_Restore)(t, v, tb);
        ok
    }
}

/// While only drop-in regions are left, the drain stops waiting once this long passes without
/// one of them leaving (`wait_drained`). Measured: the polite and late-polite real clients
/// leave their last regions within a few ms of the gate closing (BENCHMARKS.md: drain 2–200 µs
/// median, 2.2 ms at most); 150 ms covers a few switch intervals of GIL handoffs for a callback
/// still running, and keeps a rude program's exit within raw 3.14's + 0.2 s.
const DROPIN_IDLE: Duration = Duration::from_millis(150);

/// Close the gate and wait (bounded) for gated threads to leave. The caller holds the GIL.
pub(crate) fn drain(api: &Api, why: &str) {
    // PEP 788 guards (CPython < 3.15, src/guards.rs): refuse new ones and wait for the open ones
    // while the gate is still open, as 3.15 waits for guards before it lets nothing attach.
    crate::guards::before_drain(api);
    if !gate::close() {
        return;
    }
    let start = Instant::now();
    let me = gate::my_slot_if_any();
    let inside_at_close = gate::others_inside(me);
    let (mut api_left, mut dropin_left) = (0, inside_at_close);
    let timeout = Duration::from_millis(crate::config::drain_timeout_ms());
    // A zero bound disables the drain: the gate closes, but the GIL is not handed to the
    // threads inside (which would let them finish their entry), so they meet CPython's kill.
    if inside_at_close > 0 && !timeout.is_zero() {
        // SAFETY: the caller holds the GIL; we give it up so drained threads can finish, and take
        // it back before returning (the runtime is not finalizing yet, so this cannot be killed).
        unsafe {
            let ts = (api.PyEval_SaveThread)();
            (api_left, dropin_left) = wait_drained(me, timeout, DROPIN_IDLE.min(timeout));
            (api.PyEval_RestoreThread)(ts);
        }
    }
    let left = api_left + dropin_left;
    // PEP 788 (3.15+): Py_FinalizeEx waits, without a bound, for interpreter guards: close every
    // guard gilgate holds, so that it waits for none past this drain (src/pep788.rs).
    crate::pep788::after_drain(api, left > 0);
    // The draining thread is the finalizing one (atexit runs on it, and so do the finalize
    // entries): its own region, if any, ends with the runtime (e.g. pybind11's embedded
    // interpreter, whose last `gil_scoped_release` re-entered before `finalize_interpreter`).
    if let Some(m) = me {
        gate::close_region(m);
    }
    let ns = start.elapsed().as_nanos() as u64;
    crate::counters::drained(ns, left > 0);
    // Unasked, only an API region left behind is worth a line: a drop-in thread still inside
    // is what a program that exits with its threads running looks like (the policy parks it).
    if crate::config::get().verbose || api_left > 0 {
        let mut l = crate::log::Line::new();
        l.s("drain (").s(why).s("): gate closed, ").u(inside_at_close as u64)
            .s(" thread(s) were inside, ").u(ns / 1000).s(" us");
        if left > 0 && timeout.is_zero() {
            l.s("; drain disabled (bound 0): ").u(left as u64).s(" still inside");
        } else if api_left > 0 {
            l.s("; TIMED OUT with ").u(api_left as u64)
                .s(" gilgate_* API region(s) still inside (raise GILGATE_DRAIN_TIMEOUT_MS or gilgate_set_drain_timeout_ms)");
            if dropin_left > 0 {
                l.s(" and ").u(dropin_left as u64).s(" drop-in region(s)");
            }
        } else if dropin_left > 0 {
            l.s("; ").u(dropin_left as u64).s(" drop-in region(s) still inside after ")
                .u(DROPIN_IDLE.as_millis() as u64).s(" ms without progress: left to the policy");
        }
        l.emit();
    }
}

/// `Py_FinalizeEx` with the drain: at the end of its atexit pass when the trigger is armed
/// (the host's own atexit handlers may still need their threads), else first. The generation is
/// finalized when it returns. Caller holds the GIL.
pub(crate) fn finalize(api: &Api, why: &str) -> std::os::raw::c_int {
    if !trigger_armed() {
        drain(api, why);
    }
    // SAFETY: the caller holds the GIL, as Py_FinalizeEx requires.
    let r = unsafe { (api.Py_FinalizeEx)() };
    gate::mark_finalized();
    // The finalizing thread's own region (if it entered through gilgate) ends with the runtime.
    if let Some(s) = gate::my_slot_if_any() {
        gate::close_region(s);
    }
    r
}

/// Wait until no other thread is inside a gated region, or the deadline passes. While only
/// drop-in regions are left, also stop once `idle` passes without any of them leaving: a
/// drop-in thread cannot be told, and one that does not come out of its region promptly (a
/// callback that never returns, a thread looping in Python) will not come out in time, so
/// waiting longer only delays the exit (the policy takes care of it). An API region keeps the
/// whole bound: its thread will be told at its next entry.
/// Returns how many are still inside at the end, (API regions, drop-in regions).
pub(crate) fn wait_drained(me: Option<&'static gate::Slot>, timeout: Duration, idle: Duration) -> (u32, u32) {
    let start = Instant::now();
    let mut spins = 0u32;
    let mut last = u32::MAX;
    let mut progress = start;
    loop {
        let (api, dropin) = gate::others_inside_by_kind(me);
        let n = api + dropin;
        let now = Instant::now();
        if n < last {
            last = n;
            progress = now;
        }
        if n == 0 || now - start >= timeout || (api == 0 && now - progress >= idle) {
            return (api, dropin);
        }
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(if spins < 256 { 20 } else { 200 }));
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_wait_sees_open_regions_and_times_out() {
        let _g = gate::slots::TEST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let s = gate::my_slot().unwrap();
            s.record(0, gate::KIND_TSTATE, 0); // a drop-in region (slots are reused: say which)
            s.depth.store(1, Release);
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            gate::leave(s);
        });
        rx.recv().unwrap();
        assert!(gate::others_inside(gate::my_slot()) >= 1);
        assert_eq!(wait_drained(gate::my_slot(), Duration::from_millis(20), Duration::from_secs(10)), (0, 1));
        // A drop-in region that does not leave: the wait ends once `idle` passed, not at the bound.
        let t0 = Instant::now();
        assert_eq!(wait_drained(gate::my_slot(), Duration::from_secs(30), Duration::from_millis(30)), (0, 1));
        let e = t0.elapsed();
        assert!(e >= Duration::from_millis(30) && e < Duration::from_secs(20), "{e:?}");
        tx2.send(()).unwrap();
        assert_eq!(wait_drained(gate::my_slot(), Duration::from_secs(10), Duration::from_secs(10)), (0, 0));
        h.join().unwrap();
    }

    #[test]
    fn drain_wait_gives_api_regions_the_whole_bound() {
        let _g = gate::slots::TEST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let s = gate::my_slot().unwrap();
            s.record(0, gate::KIND_API_TSTATE, 0);
            s.depth.store(1, Release);
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            gate::leave(s);
        });
        rx.recv().unwrap();
        let t0 = Instant::now();
        assert_eq!(wait_drained(gate::my_slot(), Duration::from_millis(300), Duration::from_millis(10)), (1, 0));
        assert!(t0.elapsed() >= Duration::from_millis(300));
        tx2.send(()).unwrap();
        h.join().unwrap();
    }
}
