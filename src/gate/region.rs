//! The region model on a thread's `Slot`: which levels are open, of which kind, and which
//! release closes which level.

use super::{protocol, Slot};
use crate::layout::*;
use std::sync::atomic::Ordering::*;

impl Slot {
    /// Kind of the innermost level (0 past `LEVELS`: untyped), with its recorded frame.
    #[inline]
    pub(crate) fn top(&self) -> (u8, usize) {
        let d = self.depth.load(Relaxed) as usize;
        if d == 0 || d > LEVELS {
            return (0, 0);
        }
        (self.kind_at(d - 1), self.frames[d - 1].load(Relaxed))
    }

    #[inline]
    pub(crate) fn kind_at(&self, i: usize) -> u8 {
        if i == 0 {
            self.kind0.load(Relaxed) as u8
        } else {
            self.kinds[i].load(Relaxed)
        }
    }

    /// Record the kind and frame of level `i` (0-based), owner only.
    #[inline]
    pub(crate) fn record(&self, i: u32, kind: u8, frame: usize) {
        if i == 0 {
            self.kind0.store(kind as u32, Relaxed);
            self.frames[0].store(frame, Relaxed);
        } else if (i as usize) < LEVELS {
            self.kinds[i as usize].store(kind, Relaxed);
            self.frames[i as usize].store(frame, Relaxed);
        }
    }

    /// The innermost level's Python frame, known once its entry holds the GIL.
    #[inline]
    pub(crate) fn set_top_frame(&self, frame: usize) {
        let d = self.depth.load(Relaxed) as usize;
        if d > 0 && d <= LEVELS {
            self.frames[d - 1].store(frame, Relaxed);
        }
    }

    /// Open a level inside the region (depth > 0: the drain already counts this thread).
    #[inline]
    pub(crate) fn push(&self, kind: u8, frame: usize) {
        let d = self.depth.load(Relaxed);
        self.record(d, kind, frame);
        self.depth.store(d + 1, Release);
    }

    /// Close levels down to and including the innermost one of `kind` (levels above it were
    /// opened by calls gilgate did not see end). False, and nothing changed, if there is none;
    /// past `LEVELS`, the untyped innermost level is taken as the one.
    pub(crate) fn pop_through(&self, kind: u8) -> bool {
        let d = self.depth.load(Relaxed) as usize;
        if d > LEVELS {
            return leave(self);
        }
        for i in (0..d).rev() {
            if self.kind_at(i) == kind {
                if i == 0 {
                    close_all(self);
                } else {
                    self.depth.store(i as u32, Release);
                }
                return true;
            }
        }
        false
    }
}

/// Close the whole region (depth 0), owner only.
pub(crate) fn close_region(slot: &Slot) {
    close_all(slot)
}

pub(crate) fn close_all(slot: &Slot) {
    slot.open_sp.store(0, Relaxed);
    slot.detached.store(false, Relaxed);
    slot.frames[0].store(0, Relaxed);
    slot.depth.store(0, Release);
}

/// Close a region after the real release call returned. Returns false if there was none open.
#[inline]
pub(crate) fn leave(slot: &Slot) -> bool {
    let d = slot.depth.load(Relaxed);
    if d == 0 {
        return false;
    }
    if d == 1 {
        close_all(slot);
    } else {
        protocol::lower(&slot.depth, d - 1);
    }
    true
}

