//! Barrier B's membarrier: when the kernel has `MEMBARRIER_CMD_PRIVATE_EXPEDITED`, the drain forces
//! a full fence on every running thread, so the entries' barrier A is only a compiler fence
//! (protocol.rs). Without it, barrier A is a SeqCst fence and the C fast entries stay off.

use crate::boundary::hot;
use std::sync::atomic::Ordering::*;

pub(crate) fn init_barrier() {
    // SAFETY: membarrier with QUERY/REGISTER commands has no memory-safety preconditions.
    unsafe {
        const QUERY: libc::c_long = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
        let mask = libc::syscall(libc::SYS_membarrier, QUERY, 0, 0);
        if mask >= 0
            && mask & PRIVATE_EXPEDITED != 0
            && mask & REGISTER_PRIVATE_EXPEDITED != 0
            && libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
        {
            hot().fast_barrier.store(1, Relaxed);
        }
    }
}

pub(crate) fn fast_barrier() -> bool {
    hot().fast_barrier.load(Relaxed) != 0
}

/// Barrier B's second half when membarrier is in use (protocol::close ran the fence).
pub(crate) fn drain_membarrier() {
    if hot().fast_barrier.load(Relaxed) != 0 {
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        // SAFETY: registered in init_barrier; the command has no memory-safety preconditions.
        let rc = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
        if rc != 0 {
            // Cannot happen once registered; if it does, entries are unprotected: say so loudly.
            crate::log::Line::new().s("error: membarrier failed during drain").emit();
        }
    }
}

