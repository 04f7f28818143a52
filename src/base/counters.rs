//! Process-wide event counters (slow paths only: a refusal, a kill, a drain, a policy action).
//! A leaf: anything may count; `stats.rs` reads them for `gilgate_stats`.

use crate::status::*;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy)]
pub(crate) enum Counter {
    RefusedFinalizing,
    RefusedNotInitialized,
    RefusedNoPython,
    Kills,
    Hangs,
    Drains,
    DrainTimeouts,
    DrainLastNs,
    DrainMaxNs,
    PolicyActions,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static COUNTERS: [AtomicU64; 10] = [ZERO; 10];

#[inline]
fn at(c: Counter) -> &'static AtomicU64 {
    &COUNTERS[c as usize]
}

pub(crate) fn get(c: Counter) -> u64 {
    at(c).load(Relaxed)
}

pub(crate) fn refused(e: gilgate_status) {
    let c = match e {
        GILGATE_ERR_FINALIZING => Counter::RefusedFinalizing,
        GILGATE_ERR_NOT_INITIALIZED => Counter::RefusedNotInitialized,
        GILGATE_ERR_NO_PYTHON => Counter::RefusedNoPython,
        _ => return,
    };
    at(c).fetch_add(1, Relaxed);
    if crate::config::get().verbose {
        crate::log::Line::new().s("refused entry on thread ").u(crate::log::tid())
            .s(": ").s(status_name(e)).emit();
    }
}

pub(crate) fn killed() {
    at(Counter::Kills).fetch_add(1, Relaxed);
}

pub(crate) fn hang_intercepted() {
    at(Counter::Hangs).fetch_add(1, Relaxed);
}

pub(crate) fn policy_action() {
    at(Counter::PolicyActions).fetch_add(1, Relaxed);
}

pub(crate) fn drained(ns: u64, timed_out: bool) {
    at(Counter::Drains).fetch_add(1, Relaxed);
    if timed_out {
        at(Counter::DrainTimeouts).fetch_add(1, Relaxed);
    }
    at(Counter::DrainLastNs).store(ns, Relaxed);
    at(Counter::DrainMaxNs).fetch_max(ns, Relaxed);
}
