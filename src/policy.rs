//! What happens when CPython would kill or hang a thread and no error code can be returned:
//! a void entry point (drop-in mode), or a kill decided outside any gated entry while the thread
//! is inside a host's gated region (the eval loop's own GIL switch).

use crate::config::POLICY;
use std::sync::atomic::Ordering::Relaxed;

/// `GILGATE_ON_FINALIZE` / `gilgate_set_policy` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gilgate_policy {
    /// Write one diagnostic line on fd 2, then abort(): a failing process beats a hung one.
    GILGATE_POLICY_ABORT = 0,
    /// Write the diagnostic, then park the thread forever (CPython 3.14's own choice).
    GILGATE_POLICY_HANG = 1,
    /// The legacy behaviour: pthread_exit() the thread (no unwinding). For comparison only.
    GILGATE_POLICY_EXIT = 2,
}
pub use gilgate_policy::*;

pub(crate) fn current() -> gilgate_policy {
    let mut v = POLICY.load(Relaxed);
    if v == u32::MAX {
        v = match crate::config::policy_env() {
            None | Some(b"") | Some(b"abort") => 0,
            Some(b"hang") => 1,
            Some(b"exit") => 2,
            Some(raw) => {
                crate::config::warn_bad_policy(raw);
                0
            }
        };
        let _ = POLICY.compare_exchange(u32::MAX, v, Relaxed, Relaxed);
        v = POLICY.load(Relaxed);
    }
    match v {
        1 => GILGATE_POLICY_HANG,
        2 => GILGATE_POLICY_EXIT,
        _ => GILGATE_POLICY_ABORT,
    }
}

pub(crate) fn set(p: i32) -> bool {
    if !(0..=2).contains(&p) {
        return false;
    }
    POLICY.store(p as u32, Relaxed);
    true
}

/// Apply the policy. Returns only for `exit`, where the caller performs the real pthread_exit.
pub(crate) fn apply(func: &str, what: &str) {
    let p = current();
    crate::counters::policy_action();
    let mut l = crate::log::Line::new();
    l.s(func).s(" on thread ").u(crate::log::tid()).s(": ").s(what).s("; policy ");
    match p {
        GILGATE_POLICY_ABORT => l.s("abort: aborting"),
        GILGATE_POLICY_HANG => l.s("hang: parking this thread forever"),
        GILGATE_POLICY_EXIT => l.s("exit: pthread_exit (thread vanishes, no unwinding)"),
    };
    l.s(". Remedy: call the gilgate_* function and handle its error, or set GILGATE_ON_FINALIZE=abort|hang|exit");
    l.emit();
    match p {
        // SAFETY: abort has no preconditions.
        GILGATE_POLICY_ABORT => unsafe { libc::abort() },
        GILGATE_POLICY_HANG => park_forever(),
        GILGATE_POLICY_EXIT => {}
    }
}

/// Park the calling thread forever without spinning (used by the `hang` policy).
pub(crate) fn park_forever() -> ! {
    loop {
        // SAFETY: plain sleep; not our interposed pause, so never caught by an armed entry.
        unsafe {
            let ts = libc::timespec { tv_sec: 3600, tv_nsec: 0 };
            libc::nanosleep(&ts, std::ptr::null_mut());
        }
    }
}
