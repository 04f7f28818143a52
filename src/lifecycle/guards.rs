//! PEP 788 interpreter guards on CPython 3.8–3.14 (the counting half; the exports are in
//! `pep788_compat.rs`): how many guards are open in the current runtime generation, refusing new
//! ones once finalization has begun, and the drain's wait for the open ones.
//!
//! CPython 3.15 (`Py_FinalizeEx`): atexit callbacks, then wait (no bound) until no guard is open,
//! then refuse new guards, then mark the runtime finalizing and park late threads. gilgate's
//! equivalent point is the drain (end of the atexit pass, or gilgate's `Py_FinalizeEx` export):
//! `before_drain` refuses new guards and waits, with the GIL released, until every guard of the
//! generation is closed, up to the drain bound (`GILGATE_DRAIN_TIMEOUT_MS`); only then does the
//! drain close the gate. So a thread holding a guard is admitted by the gate (still open) for as
//! long as the wait lasts, as on 3.15. Past the bound, the drain goes on: the guards still open
//! are forgotten (closing them later is harmless) and their holders' entries are refused by the
//! gate (NULL, thread intact) — the one place where 3.15 would wait forever instead.
//!
//! Ordering: the guard side raises the count (SeqCst), then reads `CLOSED_GEN` and the gate; the
//! drain side stores `CLOSED_GEN` (SeqCst), then reads the count. Either the drain sees the
//! guard, or the guard sees the drain and withdraws.

use crate::gate;
use crate::status::*;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// `generation << 24 | open guards of that generation`.
static OPEN: AtomicU64 = AtomicU64::new(0);
/// The generation whose guard phase is over (new guards refused).
static CLOSED_GEN: AtomicU64 = AtomicU64::new(0);

fn open_in(gen: u64) -> u64 {
    let w = OPEN.load(SeqCst);
    if w >> COUNT_BITS == gen {
        w & COUNT_MASK
    } else {
        0
    }
}

/// The current runtime generation if guards may be created in it: the runtime is initialized,
/// not finalizing, and gilgate has not begun its drain. A generation re-initialized since the
/// last `Py_FinalizeEx` is recognised here (as `gate::enter_slow` does).
pub(crate) fn live_gen(api: &crate::cpython::Api) -> Result<u64, gilgate_status> {
    let mut s = gate::state();
    match gate::state_of(s) {
        gate::CLOSING => return Err(GILGATE_ERR_FINALIZING),
        gate::FINALIZED => {
            api.runtime_alive()?;
            let next = gate::pack(gate::UNKNOWN, gate::gen_of(s) + 1);
            gate::transition(s, next);
            s = gate::state();
            if gate::state_of(s) == gate::CLOSING || gate::state_of(s) == gate::FINALIZED {
                return Err(GILGATE_ERR_FINALIZING);
            }
        }
        _ => api.runtime_alive()?,
    }
    let gen = gate::gen_of(s);
    if CLOSED_GEN.load(SeqCst) == gen {
        return Err(GILGATE_ERR_FINALIZING);
    }
    Ok(gen)
}

/// Count one new guard; `Err` (nothing counted) once finalization has begun.
pub(crate) fn open(api: &crate::cpython::Api) -> Result<u64, gilgate_status> {
    let gen = live_gen(api)?;
    let mut w = OPEN.load(SeqCst);
    loop {
        let next = if w >> COUNT_BITS == gen { w + 1 } else { (gen << COUNT_BITS) | 1 };
        if next & COUNT_MASK == 0 {
            return Err(GILGATE_ERR_INTERNAL); // 16 M open guards: refuse rather than wrap
        }
        match OPEN.compare_exchange(w, next, SeqCst, SeqCst) {
            Ok(_) => break,
            Err(cur) => w = cur,
        }
    }
    // Re-check after being counted (the drain may have started in between).
    match live_gen(api) {
        Ok(g) if g == gen => Ok(gen),
        Ok(_) => {
            close(gen);
            Err(GILGATE_ERR_FINALIZING)
        }
        Err(e) => {
            close(gen);
            Err(e)
        }
    }
}

/// A guard of generation `gen` is closed.
pub(crate) fn close(gen: u64) {
    let mut w = OPEN.load(SeqCst);
    while w >> COUNT_BITS == gen && w & COUNT_MASK > 0 {
        match OPEN.compare_exchange(w, w - 1, SeqCst, SeqCst) {
            Ok(_) => return,
            Err(cur) => w = cur,
        }
    }
}

/// Called by the drain before it closes the gate (GIL held, once per generation): refuse new
/// guards, then wait (GIL released, bounded by the drain timeout) for the open ones.
pub(crate) fn before_drain(api: &crate::cpython::Api) {
    let gen = gate::gen_of(gate::state());
    if CLOSED_GEN.swap(gen, SeqCst) == gen {
        return;
    }
    let n0 = open_in(gen);
    if n0 == 0 {
        return;
    }
    let bound = Duration::from_millis(crate::config::drain_timeout_ms());
    let start = Instant::now();
    if !bound.is_zero() {
        // SAFETY: the caller holds the GIL (drain's contract); it is given up so guard holders can
        // run and close their guards, and taken back before returning (the runtime is not
        // finalizing yet: the drain runs before CPython sets its finalizing flag).
        unsafe {
            let ts = (api.PyEval_SaveThread)();
            while open_in(gen) > 0 && start.elapsed() < bound {
                std::thread::sleep(Duration::from_micros(200));
            }
            (api.PyEval_RestoreThread)(ts);
        }
    }
    let left = open_in(gen);
    if crate::config::get().verbose || left > 0 {
        let mut l = crate::log::Line::new();
        l.s("drain: waited ").u(start.elapsed().as_micros() as u64).s(" us for ").u(n0)
            .s(" open PEP 788 interpreter guard(s)");
        if left > 0 {
            l.s("; bound reached with ").u(left).s(" still open: their holders' entries are refused from now on");
        }
        l.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_counts_only_its_generation() {
        OPEN.store((7 << COUNT_BITS) | 2, SeqCst);
        close(6); // a guard of an older generation: nothing
        assert_eq!(open_in(7), 2);
        close(7);
        close(7);
        close(7); // never below zero
        assert_eq!(open_in(7), 0);
        assert_eq!(open_in(8), 0);
    }
}
