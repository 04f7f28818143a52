//! The gate in front of CPython: a per-runtime state word plus one slot per host thread that
//! says "inside a gated region" (from a successful entry until the matching save/release).
//! One file per job:
//! - `protocol`: the entry/drain Dekker pair on the state word and a slot's depth (the file the
//!   loom model runs; its memory-ordering argument is at its top);
//! - `state`: the state word (RUNNING/CLOSING/FINALIZED and the generation);
//! - `slots`: the slot registry and each thread's slot in TLS;
//! - `region`: the region model (levels, their kinds, what closes them);
//! - `barrier`: membarrier, which lets the entries' barrier A be a compiler fence;
//! - `entry`: opening a level (`enter`), a kill inside it, leaving it.
//!
//! The outermost entries run `entry::enter_with`'s fast case in C or assembly (src/c/), as one
//! compare of the state word with the slot's `fast_state`; every other case comes back to `enter`.

pub(crate) mod protocol;
mod sync {
    // protocol.rs's atomics: std's here, loom's in tests/loom_gate.rs.
    pub(crate) use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
}
pub(crate) mod state;
pub(crate) mod slots;
pub(crate) mod region;
pub(crate) mod barrier;
pub(crate) mod entry;

pub(crate) use barrier::{fast_barrier, init_barrier};
pub(crate) use crate::layout::*;
pub(crate) use entry::{enter, enter_with, entered, killed, undo, Ticket};
pub(crate) use region::{close_region, leave};
pub(crate) use slots::{
    after_fork_child, my_slot, my_slot_if_any, open_regions, others_inside, others_inside_by_kind, sum_entries, Slot,
};
pub(crate) use state::{
    close, gen_of, mark_finalized, pack, state, state_of, transition, CLOSING, FINALIZED, RUNNING, UNKNOWN,
};
