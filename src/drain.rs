//! Draining host threads out of CPython before it marks itself finalizing.
//!
//! The gate is closed (new entries refused), the GIL released, and we wait (bounded) until no
//! other thread is inside a gated region; then finalization goes on. Threads running Python code
//! thus finish their region instead of being killed by the eval loop's GIL switch, and no gated
//! thread waits for the GIL in CPython's late-finalization windows (known crashes in 3.10-3.12).
//!
//! Three ways in, whichever comes first for a generation:
//!  1. `gilgate_finalize`, or gilgate's exported `Py_FinalizeEx`/`Py_Finalize`;
//!  2. an `atexit` callback registered the first time gilgate holds the GIL in a generation
//!     (atexit runs before CPython sets its finalizing flag, in every version);
//!  3. (end of finalization) a `Py_AtExit` callback marks the generation finalized, so later
//!     calls answer NOT_INITIALIZED and a new `Py_Initialize` is recognised.

use crate::cpython::{Api, PyMethodDef, PyObj, METH_NOARGS};
use crate::gate;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// Generation for which the drain hooks were registered.
static HOOKED_GEN: AtomicU64 = AtomicU64::new(0);

static ATEXIT_DEF: PyMethodDef = PyMethodDef {
    name: b"_gilgate_drain\0".as_ptr() as *const _,
    meth: Some(atexit_drain),
    flags: METH_NOARGS,
    doc: b"gilgate: drain gated host threads before finalization\0".as_ptr() as *const _,
};

unsafe extern "C" fn atexit_drain(_self: PyObj, _args: PyObj) -> PyObj {
    // Called by CPython's atexit machinery with the GIL held. No panic may escape into CPython.
    let r = std::panic::catch_unwind(|| {
        if let Some(api) = crate::cpython::api_if_resolved() {
            drain(api, "atexit");
        }
    });
    let _ = r;
    match crate::cpython::api_if_resolved() {
        Some(api) => {
            // SAFETY: returning a new reference to None, as METH_NOARGS requires.
            (api.Py_IncRef)(api.none);
            api.none
        }
        None => std::ptr::null_mut(),
    }
}

extern "C" fn finalized_hook() {
    // Py_AtExit callbacks run at the very end of Py_FinalizeEx.
    gate::mark_finalized();
    crate::stats::maybe_print_at_finalize();
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
            let c_ok = (api.Py_AtExit)(finalized_hook) == 0;
            if crate::config::get().verbose {
                crate::log::Line::new()
                    .s("adopted CPython runtime generation ").u(gen)
                    .s(if py_ok { ", atexit drain registered" } else { ", atexit drain NOT registered" })
                    .s(if c_ok { ", Py_AtExit hook registered" } else { ", Py_AtExit hook NOT registered" })
                    .emit();
            }
        }
    }
    // SAFETY: PyInterpreterState_Main reads one runtime field.
    gate::publish_main_interp(unsafe { (api.PyInterpreterState_Main)() });
    gate::transition(s, gate::pack(gate::RUNNING, gen));
}

/// `atexit.register(_gilgate_drain)`, leaving the thread's exception state as it found it.
unsafe fn register_atexit(api: &Api) -> bool {
    let (mut t, mut v, mut tb): (PyObj, PyObj, PyObj) = Default::default();
    (api.PyErr_Fetch)(&mut t, &mut v, &mut tb);
    let mut ok = false;
    let module = (api.PyImport_ImportModule)(b"atexit\0".as_ptr() as *const _);
    if !module.is_null() {
        let register = (api.PyObject_GetAttrString)(module, b"register\0".as_ptr() as *const _);
        let func = (api.PyCFunction_NewEx)(&ATEXIT_DEF, std::ptr::null_mut(), std::ptr::null_mut());
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

/// Close the gate and wait (bounded) for gated threads to leave. The caller holds the GIL.
pub(crate) fn drain(api: &Api, why: &str) {
    if !gate::close() {
        return;
    }
    let start = Instant::now();
    let me = gate::my_slot_if_any();
    let mut left = gate::others_inside(me);
    let inside_at_close = left;
    let timeout = Duration::from_millis(crate::config::drain_timeout_ms());
    // A zero bound disables the drain: the gate closes, but the GIL is not handed to the
    // threads inside (which would let them finish their entry), so they meet CPython's kill.
    if left > 0 && !timeout.is_zero() {
        // SAFETY: the caller holds the GIL; we give it up so drained threads can finish, and take
        // it back before returning (the runtime is not finalizing yet, so this cannot be killed).
        unsafe {
            let ts = (api.PyEval_SaveThread)();
            left = gate::wait_drained(me, timeout);
            (api.PyEval_RestoreThread)(ts);
        }
    }
    // PEP 788 (3.15+): Py_FinalizeEx waits, without a bound, for interpreter guards: close every
    // guard gilgate holds, so that it waits for none past this drain (src/pep788.rs).
    crate::pep788::after_drain(api, left > 0);
    let ns = start.elapsed().as_nanos() as u64;
    crate::stats::drained(ns, left > 0);
    if crate::config::get().verbose || left > 0 {
        let mut l = crate::log::Line::new();
        l.s("drain (").s(why).s("): gate closed, ").u(inside_at_close as u64)
            .s(" thread(s) were inside, ").u(ns / 1000).s(" us");
        if left > 0 && timeout.is_zero() {
            l.s("; drain disabled (bound 0): ").u(left as u64).s(" still inside");
        } else if left > 0 {
            l.s("; TIMED OUT with ").u(left as u64)
                .s(" still inside (raise GILGATE_DRAIN_TIMEOUT_MS or gilgate_set_drain_timeout_ms)");
        }
        l.emit();
    }
}

/// Drain, then `Py_FinalizeEx`; the generation is finalized when it returns. Caller holds the GIL.
pub(crate) fn finalize(api: &Api, why: &str) -> std::os::raw::c_int {
    drain(api, why);
    // SAFETY: the caller holds the GIL, as Py_FinalizeEx requires.
    let r = unsafe { (api.Py_FinalizeEx)() };
    gate::mark_finalized();
    // The finalizing thread's own region (if it entered through gilgate) ends with the runtime.
    if let Some(s) = gate::my_slot_if_any() {
        s.depth.store(0, Release);
    }
    r
}
