//! Opening a level (`enter`: the full path of every entry, the fast path's first call on a thread
//! included), what an entry that CPython killed leaves behind (`killed`), and the GIL-held part
//! of a successful entry (`entered`).

use super::{barrier::fast_barrier, protocol, state::*, Slot};
use crate::boundary::hot;
use crate::cpython::Api;
use crate::status::*;
use std::sync::atomic::Ordering::*;

/// What `enter` observed, needed by `entered` once the GIL is held.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    pub slot: &'static Slot,
    pub depth_before: u32,
    pub snapshot: u64,
}

impl Ticket {
    /// The ticket of an outermost entry the C fast path made (in the slot's `fast_state`).
    pub(crate) fn fast(slot: &'static Slot) -> Ticket {
        Ticket { slot, depth_before: 0, snapshot: slot.fast_state.load(Relaxed) }
    }
}

/// Open a level of `kind` on this thread (a gated region if it is the outermost), or refuse
/// without touching the GIL.
#[inline]
pub(crate) fn enter(api: &Api, kind: u8) -> Result<Ticket, gilgate_status> {
    let slot = super::my_slot().ok_or(GILGATE_ERR_INTERNAL)?;
    enter_with(api, slot, kind)
}

/// `enter` for a caller that already has this thread's slot.
#[inline]
pub(crate) fn enter_with(api: &Api, slot: &'static Slot, kind: u8) -> Result<Ticket, gilgate_status> {
    let d = slot.depth.load(Relaxed);
    slot.record(d, kind, 0);
    let s = protocol::announce(&slot.depth, d, &hot().state, !fast_barrier());
    if d > 0 && state_of(s) != FINALIZED && !slot.detached.load(Relaxed) {
        // Nested inside an open region (the thread is counted, the drain waits for it): let it
        // finish its work rather than fail half-way. A kill is still caught by the armed call.
        slot.entries.store(slot.entries.load(Relaxed) + 1, Relaxed);
        return Ok(Ticket { slot, depth_before: d, snapshot: s });
    }
    if protocol::admits_fast(s, slot.fast_state.load(Relaxed)) && d == 0 {
        // The C fast entries' shortcut (the thread was admitted in this RUNNING word before).
        slot.entries.store(slot.entries.load(Relaxed) + 1, Relaxed);
        return Ok(Ticket { slot, depth_before: d, snapshot: s });
    }
    if protocol::admits(s, slot.retired_gen.load(Relaxed)) {
        if fast_barrier() && !slot.detached.load(Relaxed) {
            slot.fast_state.store(s, Relaxed);
        }
        slot.entries.store(slot.entries.load(Relaxed) + 1, Relaxed);
        return Ok(Ticket { slot, depth_before: d, snapshot: s });
    }
    match enter_slow(api, slot, s) {
        Ok(s) => {
            slot.entries.store(slot.entries.load(Relaxed) + 1, Relaxed);
            Ok(Ticket { slot, depth_before: d, snapshot: s })
        }
        Err(e) => {
            if d > 0 {
                slot.detached.store(true, Relaxed);
                slot.fast_state.store(0, Relaxed);
            }
            protocol::lower(&slot.depth, d);
            crate::counters::refused(e);
            Err(e)
        }
    }
}

#[cold]
fn enter_slow(api: &Api, slot: &Slot, mut s: u64) -> Result<u64, gilgate_status> {
    match state_of(s) {
        CLOSING => return Err(GILGATE_ERR_FINALIZING),
        FINALIZED => {
            // SAFETY: Py_IsInitialized reads one runtime field; callable without the GIL.
            if unsafe { (api.Py_IsInitialized)() } == 0 {
                return Err(GILGATE_ERR_NOT_INITIALIZED);
            }
            api.runtime_alive()?;
            // Re-initialized since: a new generation, not adopted yet.
            let next = pack(UNKNOWN, gen_of(s) + 1);
            s = match hot().state.compare_exchange(s, next, AcqRel, Acquire) {
                Ok(_) => next,
                Err(cur) => cur,
            };
            if state_of(s) == CLOSING || state_of(s) == FINALIZED {
                return Err(GILGATE_ERR_FINALIZING);
            }
        }
        UNKNOWN => api.runtime_alive()?,
        _ => {}
    }
    if slot.retired_gen.load(Relaxed) == gen_of(s) {
        return Err(GILGATE_ERR_FINALIZING);
    }
    Ok(s)
}

/// The CPython call behind a ticket succeeded: the GIL is held. True when this generation's
/// runtime is not adopted yet (the caller, `drain::entered`, adopts it).
#[inline]
pub(crate) fn entered(t: &Ticket) -> bool {
    if t.depth_before == 0 && t.slot.open_sp.load(Relaxed) == 0 {
        // The fallible API: an address in the entry's frame stands for the caller's stack
        // pointer (drop-in exports record the exact one before calling this).
        let marker = 0u8;
        t.slot.open_sp.store(std::hint::black_box(&marker) as *const u8 as usize, Relaxed);
    }
    state_of(t.snapshot) != RUNNING
}

/// The entry was refused after `enter` (bad argument): undo it, nothing reached CPython.
pub(crate) fn undo(t: &Ticket) {
    protocol::lower(&t.slot.depth, t.depth_before);
}

/// The CPython call behind a ticket was killed and intercepted: undo the entry.
#[cold]
pub(crate) fn killed(t: &Ticket, retire: bool, hang: bool) {
    let gen = gen_of(hot().state.load(Acquire)).max(gen_of(t.snapshot));
    if retire {
        t.slot.retired_gen.store(gen, Relaxed);
        t.slot.fast_state.store(0, Relaxed);
    }
    if t.depth_before == 0 {
        t.slot.open_sp.store(0, Relaxed);
        t.slot.frames[0].store(0, Relaxed);
    } else {
        t.slot.detached.store(true, Relaxed);
        t.slot.fast_state.store(0, Relaxed);
    }
    protocol::lower(&t.slot.depth, t.depth_before);
    crate::counters::killed();
    if hang {
        crate::counters::hang_intercepted();
    }
}

