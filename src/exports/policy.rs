//! What happens when CPython would kill or hang a thread and no error code can be returned:
//! a void entry point (drop-in mode), a kill decided outside any gated entry while the thread is
//! inside a host's gated region (the eval loop's own GIL switch), or CPython killing one of its
//! own threads during finalization (a daemon thread re-attaching inside an extension).

use crate::config::POLICY;
use std::sync::atomic::Ordering::Relaxed;

/// `GILGATE_ON_FINALIZE` / `gilgate_set_policy` values (stable numbers).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gilgate_policy {
    /// Write one diagnostic line on fd 2, then abort().
    GILGATE_POLICY_ABORT = 0,
    /// Write the diagnostic, then park the thread forever.
    GILGATE_POLICY_HANG = 1,
    /// The legacy behaviour: pthread_exit() the thread (no unwinding). For comparison only.
    GILGATE_POLICY_EXIT = 2,
    /// The default: park the thread forever, silently (`GILGATE_VERBOSE=1` says so): it never
    /// returns and never unwinds, and the process exits with the program's own status, as
    /// CPython 3.14 does for its own threads. A later wait on it is named by the watchdog.
    GILGATE_POLICY_PARK = 3,
}
pub use gilgate_policy::*;

pub(crate) fn current() -> gilgate_policy {
    let mut v = POLICY.load(Relaxed);
    if v == u32::MAX {
        v = match crate::config::policy_env() {
            None | Some(b"") | Some(b"park") => 3,
            Some(b"abort") => 0,
            Some(b"hang") => 1,
            Some(b"exit") => 2,
            Some(raw) => {
                crate::config::warn_bad_policy(raw);
                3
            }
        };
        let _ = POLICY.compare_exchange(u32::MAX, v, Relaxed, Relaxed);
        v = POLICY.load(Relaxed);
    }
    match v {
        0 => GILGATE_POLICY_ABORT,
        1 => GILGATE_POLICY_HANG,
        2 => GILGATE_POLICY_EXIT,
        _ => GILGATE_POLICY_PARK,
    }
}

pub(crate) fn set(p: i32) -> bool {
    if !(0..=3).contains(&p) {
        return false;
    }
    POLICY.store(p as u32, Relaxed);
    true
}

/// Apply the policy to a host thread. Returns for `exit`, and for `park`/`hang` when the
/// watchdog releases the thread (3.8–3.13: the main thread waits for it); the caller then
/// performs the real pthread_exit.
pub(crate) fn apply(func: &str, what: &str) {
    let p = current();
    crate::counters::policy_action();
    if p == GILGATE_POLICY_PARK {
        crate::park::park(func);
        return;
    }
    let mut l = crate::log::Line::new();
    l.s(func).s(" on thread ").u(crate::log::tid()).s(": ").s(what).s("; policy ");
    match p {
        GILGATE_POLICY_ABORT => l.s("abort: aborting"),
        GILGATE_POLICY_HANG | GILGATE_POLICY_PARK => l.s("hang: parking this thread forever"),
        GILGATE_POLICY_EXIT => l.s("exit: pthread_exit (thread vanishes, no unwinding)"),
    };
    l.s(". Remedy: call the gilgate_* function and handle its error, or set GILGATE_ON_FINALIZE=park|abort|hang|exit");
    l.emit();
    match p {
        // SAFETY: abort has no preconditions.
        GILGATE_POLICY_ABORT => unsafe { libc::abort() },
        GILGATE_POLICY_HANG | GILGATE_POLICY_PARK => crate::park::park(func),
        GILGATE_POLICY_EXIT => {}
    }
}

/// CPython is killing (3.8-3.13) or parking (3.14+) one of its own threads while it finalizes,
/// e.g. a daemon thread re-attaching at the end of an extension's `gil_scoped_release`: park it
/// where it stands (no forced unwind through C++ destructors or Rust drops). Under `abort` and
/// `exit` (they are about host threads) returns false at once: CPython's own behaviour goes on.
/// True once a parked thread was released (the caller ends it, as CPython would have).
pub(crate) fn cpython_thread(func: &str) -> bool {
    match current() {
        GILGATE_POLICY_PARK | GILGATE_POLICY_HANG => {
            crate::counters::policy_action();
            crate::park::park(func);
            true
        }
        GILGATE_POLICY_ABORT | GILGATE_POLICY_EXIT => false,
    }
}
