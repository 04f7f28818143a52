//! What both loom models of the gate check (tests/loom_gate.rs, tests/loom_membarrier.rs): the
//! ghost tags their entries store as the depth, and the gate property over one execution.

// Ghost tags passed as the depth `d` (the depth proper is the low byte; the drain masks it):
// they tell which store the drain read. Only values differ from production.
pub const LEFT: u32 = 0x100; // first leave/undo
pub const SECOND: u32 = 0x200; // second (fast) entry raises to SECOND+1, leaves to SECOND|LEFT

/// Never (an entry proceeded) and (the drain concluded "drained" having read that entry's depth
/// from before its raise). `results[i]`: entry i's (first, fast second) entry proceeded;
/// `seen[i]`: the depth the drain read for it.
pub fn assert_gate(results: &[(bool, bool)], drained: bool, seen: &[u32]) {
    for (i, &(first, second)) in results.iter().enumerate() {
        assert!(
            !(first && drained && seen[i] == 0),
            "GATE VIOLATION: entry {i} proceeded (saw RUNNING) but the drain concluded \
             drained having read its depth from before the raise: {seen:?}"
        );
        assert!(
            !(second && drained && (seen[i] == 0 || seen[i] == LEFT)),
            "GATE VIOLATION: entry {i}'s fast second entry proceeded but the drain concluded \
             drained having read its depth from before that raise: {seen:?}"
        );
    }
}

/// Not vacuous: every number of proceeding entries, 0 to `entries`, occurs with both drain verdicts.
pub fn assert_every_outcome(outcomes: &std::collections::BTreeSet<(usize, bool)>, entries: usize) {
    for n in 0..=entries {
        for drained in [false, true] {
            assert!(outcomes.contains(&(n, drained)), "{outcomes:?}");
        }
    }
}
