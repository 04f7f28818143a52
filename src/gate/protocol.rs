//! The entry/drain protocol on the state word and a slot's depth: the one definition that
//! `gate/entry.rs` runs and `tests/loom_gate.rs` model-checks (the test includes this very file with
//! loom's atomics as `super::sync`; the crate passes std's).
//!
//! An asymmetric Dekker pair:
//!   entry:  depth = d+1 ; [barrier A] ; read STATE      (refuse unless admitted)
//!   drain:  STATE = CLOSING ; [barrier B] ; read every depth (wait while any > 0)
//! Either the entry reads CLOSING, or the drain reads the raised depth (or both): never neither.
//! Barrier A is a SeqCst fence, or only a compiler fence when barrier B adds
//! `membarrier(PRIVATE_EXPEDITED)` (gate/barrier.rs; that variant is checked by
//! `tests/loom_membarrier.rs` with arm64's orderings, and by `tests/model_tso.rs` on x86-TSO).
//! The C fast entries (src/c/shared.h `gg_fast_entry`, and its x86-64 assembly) run `announce` + `admits_fast` in C with a compiler fence: they
//! only ever see a non-zero `fast_state` when membarrier is in use.

use super::sync::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering::*};

pub(crate) const UNKNOWN: u64 = 0; // runtime not adopted yet: consult CPython on the slow path
pub(crate) const RUNNING: u64 = 1; // adopted: drain hooks registered for this generation
pub(crate) const CLOSING: u64 = 2; // draining or finalizing: every new entry is refused
pub(crate) const FINALIZED: u64 = 3; // Py_FinalizeEx returned; a new Py_Initialize starts gen+1

#[inline]
pub(crate) const fn pack(state: u64, gen: u64) -> u64 {
    (gen << 2) | state
}
#[inline]
pub(crate) const fn state_of(s: u64) -> u64 {
    s & 3
}
#[inline]
pub(crate) const fn gen_of(s: u64) -> u64 {
    s >> 2
}

/// Entry side: raise this thread's depth from `d`, barrier A, then read the state word.
/// `fenced`: barrier A is a SeqCst fence (no membarrier), else a compiler fence.
#[inline(always)]
pub(crate) fn announce(depth: &AtomicU32, d: u32, state: &AtomicU64, fenced: bool) -> u64 {
    depth.store(d + 1, Relaxed);
    if fenced {
        fence(SeqCst);
    } else {
        compiler_fence(SeqCst);
    }
    state.load(Acquire)
}

/// May an outermost entry that read `s` proceed? RUNNING, and this thread was not retired (killed
/// in an ensure) in that generation.
#[inline]
pub(crate) fn admits(s: u64, retired_gen: u64) -> bool {
    state_of(s) == RUNNING && retired_gen != gen_of(s)
}

/// The fast entries' shortcut for `admits`: one compare with `fast_state`, a RUNNING word this
/// thread was admitted in before (0 = never; cleared whenever the thread is retired or detached).
#[inline]
pub(crate) fn admits_fast(s: u64, fast_state: u64) -> bool {
    fast_state != 0 && s == fast_state
}

/// Leave a level (or undo a refused entry): back to depth `d`, publishing the region's accesses.
#[inline(always)]
pub(crate) fn lower(depth: &AtomicU32, d: u32) {
    depth.store(d, Release);
}

/// Drain side: move RUNNING/UNKNOWN to CLOSING (same generation), then barrier B's fence.
/// False if the gate was closed or finalized already. The caller adds membarrier if in use.
pub(crate) fn close(state: &AtomicU64) -> bool {
    let closed = close_word(state);
    if closed {
        fence(SeqCst);
    }
    closed
}

/// `close` without barrier B (for the model's negative control; production calls `close`).
pub(crate) fn close_word(state: &AtomicU64) -> bool {
    let mut s = state.load(Acquire);
    loop {
        if state_of(s) == CLOSING || state_of(s) == FINALIZED {
            return false;
        }
        match state.compare_exchange(s, pack(CLOSING, gen_of(s)), SeqCst, Acquire) {
            Ok(_) => return true,
            Err(cur) => s = cur,
        }
    }
}

/// Drain side, after `close`: the depth a thread shows (> 0: inside a region).
#[inline]
pub(crate) fn depth_seen(depth: &AtomicU32) -> u32 {
    depth.load(Acquire)
}

#[inline]
pub(crate) fn inside(depth: &AtomicU32) -> bool {
    depth_seen(depth) > 0
}
