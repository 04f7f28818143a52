//! `gilgate_stats` and `GILGATE_SHOW_STATS=1`: the counters (counters.rs) plus what the slots
//! say (gated entries are counted in each thread's own slot: no shared write on the hot path).

use crate::counters::{self, Counter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters since the library was loaded (all generations).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gilgate_stats {
    /// Successful gated entries (restore/acquire/ensure through gilgate).
    pub gated_entries: u64,
    /// Entries refused because the interpreter was finalizing (or gilgate was draining).
    pub refused_finalizing: u64,
    /// Entries refused because the runtime was not initialized.
    pub refused_not_initialized: u64,
    /// Entries refused because no CPython was found in the process.
    pub refused_no_python: u64,
    /// Thread kills (pthread_exit) intercepted inside a gated entry and turned into an error.
    pub kills_intercepted: u64,
    /// Thread hangs (pause) intercepted inside a gated entry and turned into an error.
    pub hangs_intercepted: u64,
    /// Drains run (one per finalized generation at most).
    pub drains: u64,
    /// Drains that gave up after the timeout with threads still inside.
    pub drain_timeouts: u64,
    /// Duration of the last drain, nanoseconds.
    pub drain_last_ns: u64,
    /// Longest drain, nanoseconds.
    pub drain_max_ns: u64,
    /// Times the policy (abort/hang/exit) was applied because no error could be returned.
    pub policy_actions: u64,
    /// Host threads that have used gilgate (slots claimed, including reused ones).
    pub threads_registered: u64,
    /// Host threads currently inside a gated region (from a successful entry to its matching
    /// save/release), counted when the snapshot is taken by walking the slots. A host whose
    /// threads are all outside their regions must read 0 here; more means a leaked region.
    /// A thread that exits releases its slot, so read this before the threads exit.
    pub open_regions: u64,
}

pub(crate) fn snapshot() -> gilgate_stats {
    let (entries, threads) = crate::gate::sum_entries();
    let c = counters::get;
    let k = c(Counter::Kills);
    let h = c(Counter::Hangs);
    gilgate_stats {
        gated_entries: entries,
        refused_finalizing: c(Counter::RefusedFinalizing),
        refused_not_initialized: c(Counter::RefusedNotInitialized),
        refused_no_python: c(Counter::RefusedNoPython),
        kills_intercepted: k - h.min(k),
        hangs_intercepted: h,
        drains: c(Counter::Drains),
        drain_timeouts: c(Counter::DrainTimeouts),
        drain_last_ns: c(Counter::DrainLastNs),
        drain_max_ns: c(Counter::DrainMaxNs),
        policy_actions: c(Counter::PolicyActions),
        threads_registered: threads,
        open_regions: crate::gate::open_regions(),
    }
}

pub(crate) fn print() {
    let s = snapshot();
    let mut l = crate::log::Line::new();
    l.s("stats: gated_entries=").u(s.gated_entries)
        .s(" refused_finalizing=").u(s.refused_finalizing)
        .s(" refused_not_initialized=").u(s.refused_not_initialized)
        .s(" refused_no_python=").u(s.refused_no_python)
        .s(" kills_intercepted=").u(s.kills_intercepted)
        .s(" hangs_intercepted=").u(s.hangs_intercepted)
        .s(" drains=").u(s.drains)
        .s(" drain_timeouts=").u(s.drain_timeouts)
        .s(" drain_max_us=").u(s.drain_max_ns / 1000)
        .s(" policy_actions=").u(s.policy_actions)
        .s(" parked=").u(crate::park::parked())
        .s(" threads=").u(s.threads_registered)
        .s(" open_regions=").u(s.open_regions);
    l.emit();
}

static PRINTED: AtomicBool = AtomicBool::new(false);
static PARKED_AT_PRINT: AtomicU64 = AtomicU64::new(0);

/// GILGATE_SHOW_STATS=1: print once per finalization and once at process exit.
pub(crate) fn maybe_print_at_finalize() {
    if crate::config::get().show_stats {
        PARKED_AT_PRINT.store(crate::park::parked(), Relaxed);
        print();
        PRINTED.store(true, Relaxed);
    }
}

/// At process exit: unless already printed with the same number of parked threads (threads
/// are parked during and after finalization, when the runtime kills them).
pub(crate) extern "C" fn print_at_exit() {
    if crate::config::get().show_stats
        && (!PRINTED.load(Relaxed) || PARKED_AT_PRINT.load(Relaxed) != crate::park::parked())
    {
        print();
    }
}
