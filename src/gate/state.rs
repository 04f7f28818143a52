//! The state word (`gg_hot.state`, shared with the C fast paths): the runtime's state in its low
//! two bits, the generation (one per Py_Initialize) above.

use super::{barrier, protocol};
use crate::boundary::hot;
use std::sync::atomic::Ordering::*;

pub(crate) use protocol::{gen_of, pack, state_of, CLOSING, FINALIZED, RUNNING, UNKNOWN};
// The state word gg_hot starts with (src/c/shared.c).
const _: () = assert!(pack(UNKNOWN, 1) == crate::layout::INITIAL_STATE);

pub(crate) fn state() -> u64 {
    hot().state.load(Acquire)
}

/// Move STATE from `from` (exactly) to `to`; false if someone else changed it first.
pub(crate) fn transition(from: u64, to: u64) -> bool {
    hot().state.compare_exchange(from, to, AcqRel, Acquire).is_ok()
}

/// Close the gate for the current generation. Returns false if it was closed already.
pub(crate) fn close() -> bool {
    let closed = protocol::close(&hot().state);
    if closed {
        barrier::drain_membarrier();
    }
    closed
}

pub(crate) fn mark_finalized() {
    let s = hot().state.load(Acquire);
    hot().state.store(pack(FINALIZED, gen_of(s)), Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_packing_round_trips() {
        for st in [UNKNOWN, RUNNING, CLOSING, FINALIZED] {
            for g in [1, 2, 77, 1 << 40] {
                let s = pack(st, g);
                assert_eq!(state_of(s), st);
                assert_eq!(gen_of(s), g);
            }
        }
    }

}
