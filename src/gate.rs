//! The gate in front of CPython: a per-runtime state machine plus one slot per host thread that
//! says "inside a gated region" (from a successful entry until the matching save/release).
//!
//! Memory ordering: the asymmetric Dekker pair of `protocol.rs` (entry raises its depth, then
//! reads the state word; the drain closes the state word, then reads every depth). With
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` available, barrier B forces a full fence on
//! every running thread of the process, so barrier A only has to stop the compiler from reordering
//! (the hot path pays no fence). Without it, barrier A is a real SeqCst fence. `tests/loom_gate.rs`
//! model-checks `protocol.rs` itself (fenced, with the fast shortcut); `tests/model_tso.rs` checks
//! the membarrier variant on x86-TSO.
//!
//! The fallible API's outermost entries run this sequence in C (`gg_fast_entry` in armed.c), with
//! "refuse unless RUNNING" as one compare of the state word against the slot's `fast_state` (a
//! RUNNING value this thread may enter in; only set when membarrier is in use, so the C side's
//! barrier A is always a compiler fence). Every other case comes back to `enter` below.

use crate::cpython::Api;
use crate::protocol;
use crate::status::*;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

pub(crate) use crate::protocol::{gen_of, pack, state_of, CLOSING, FINALIZED, RUNNING, UNKNOWN};
// The state word gg_hot starts with (armed.c).
const _: () = assert!(pack(UNKNOWN, 1) == crate::layout::INITIAL_STATE);

use crate::fastpath::{gg_slot_get, gg_slot_set, hot};

pub(crate) fn state() -> u64 {
    hot().state.load(Acquire)
}

pub(crate) use crate::layout::*;
use std::sync::atomic::AtomicU8;

/// One host thread's view. Only its owner writes it (the drain and stats read `depth`).
/// `#[repr(C)]`: the C fast paths use the same layout (src/layout.rs, asserted below).
///
/// The region model: `depth` levels, the first `LEVELS` with their kind (`KIND_*`) and, for
/// `KIND_TSTATE`, the Python frame the thread state was executing when the level opened. Every
/// release closes exactly the level it belongs to:
/// - a gilstate release closes the innermost gilstate level of its family (API or drop-in), and
///   whatever unseen levels lie above it;
/// - a drop-in save-like call (`PyEval_SaveThread`/`ReleaseThread`/`ReleaseLock`,
///   `PyThreadState_Swap(NULL)` on 3.12+) closes a `KIND_TSTATE` level when the thread state is
///   back at that level's Python frame (the host ending its region), and otherwise opens a
///   `KIND_SUSPEND` level (an extension's `Py_BEGIN_ALLOW_THREADS` inside Python code, or any
///   save inside an API or gilstate level, which only their own release can end);
/// - the next restore-like call on a suspended thread is its resume: it closes the suspension;
/// - `PyThreadState_DeleteCurrent` closes the innermost level (pybind11's `gil_scoped_acquire`).
/// A thread with `depth > 0` (suspended ones included) is inside: the drain waits for it, and
/// its nested entries and resumes are never refused.
#[derive(Default)]
#[repr(C)]
pub(crate) struct Slot {
    pub depth: AtomicU32,
    /// The kind of level 0 (`kinds[0]` is unused): beside `depth` for the C fast releases.
    kind0: AtomicU32,
    /// Generation in which this thread lost a PyGILState thread state to a kill: retired until
    /// the runtime is re-initialized.
    pub retired_gen: AtomicU64,
    pub entries: AtomicU64,
    /// Stack pointer of the region's outermost entry (the kill walk finds that frame with it).
    pub open_sp: AtomicUsize,
    in_use: AtomicBool,
    /// A nested re-entry inside the region failed: the thread no longer holds the GIL, so the
    /// region's remaining release calls must not reach CPython.
    pub detached: AtomicBool,
    /// The state word for which this thread may take the C fast path (armed.c): the outermost
    /// entry compares the state word with it, one compare for "RUNNING, adopted, same
    /// generation, thread not retired, not detached, membarrier in use". 0 = never (the state
    /// word always has a generation >= 1). Set by the Rust path, cleared wherever one of those
    /// conditions stops holding for this thread; a new generation or a closed gate changes the
    /// state word itself.
    pub fast_state: AtomicU64,
    /// The owner thread's `errno` location (fixed per thread), and errno saved by the C fast
    /// path around its armed call, restored when a kill is caught (only the owner touches them).
    errno_ptr: AtomicPtr<std::os::raw::c_int>,
    saved_errno: std::sync::atomic::AtomicI32,
    _pad: AtomicU32,
    pub kinds: [AtomicU8; LEVELS],
    /// Python frame at the opening of each `KIND_TSTATE` level. `frames[0]` is always 0: an
    /// outermost restore of a thread state that executes a Python frame is not an entry
    /// (dropin.rs `resumes_python`), which the C fast save relies on.
    pub frames: [AtomicUsize; LEVELS],
}
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Slot, depth) == SLOT_DEPTH && offset_of!(Slot, retired_gen) == SLOT_RETIRED_GEN);
    assert!(offset_of!(Slot, kind0) == SLOT_KIND0);
    assert!(offset_of!(Slot, entries) == SLOT_ENTRIES && offset_of!(Slot, open_sp) == SLOT_OPEN_SP);
    assert!(offset_of!(Slot, in_use) == SLOT_IN_USE && offset_of!(Slot, detached) == SLOT_DETACHED);
    assert!(offset_of!(Slot, fast_state) == SLOT_FAST_STATE && offset_of!(Slot, errno_ptr) == SLOT_ERRNO_PTR);
    assert!(offset_of!(Slot, saved_errno) == SLOT_SAVED_ERRNO && offset_of!(Slot, kinds) == SLOT_KINDS);
    assert!(offset_of!(Slot, frames) == SLOT_FRAMES && size_of::<Slot>() == SLOT_SIZE);
};

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
    fn kind_at(&self, i: usize) -> u8 {
        if i == 0 {
            self.kind0.load(Relaxed) as u8
        } else {
            self.kinds[i].load(Relaxed)
        }
    }

    /// Record the kind and frame of level `i` (0-based), owner only.
    #[inline]
    fn record(&self, i: u32, kind: u8, frame: usize) {
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

fn close_all(slot: &Slot) {
    slot.open_sp.store(0, Relaxed);
    slot.detached.store(false, Relaxed);
    slot.frames[0].store(0, Relaxed);
    slot.depth.store(0, Release);
}

const CHUNK: usize = 32;
struct Chunk {
    slots: [CachePadded<Slot>; CHUNK],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const K: AtomicU8 = AtomicU8::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const F: AtomicUsize = AtomicUsize::new(0);
        const S: CachePadded<Slot> = CachePadded::new(Slot {
            depth: AtomicU32::new(0),
            kind0: AtomicU32::new(0),
            in_use: AtomicBool::new(false),
            retired_gen: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            open_sp: AtomicUsize::new(0),
            detached: AtomicBool::new(false),
            fast_state: AtomicU64::new(0),
            errno_ptr: AtomicPtr::new(std::ptr::null_mut()),
            saved_errno: std::sync::atomic::AtomicI32::new(0),
            _pad: AtomicU32::new(0),
            kinds: [K; LEVELS],
            frames: [F; LEVELS],
        });
        Chunk { slots: [S; CHUNK], next: AtomicPtr::new(std::ptr::null_mut()) }
    }
}

static HEAD: Chunk = Chunk::new();
static THREADS_REGISTERED: AtomicU64 = AtomicU64::new(0);

/// Walk every slot ever allocated (chunks are never freed: slots are reused).
fn for_each_slot(mut f: impl FnMut(&'static Slot)) {
    let mut c: &'static Chunk = &HEAD;
    loop {
        for s in c.slots.iter() {
            f(s);
        }
        let n = c.next.load(Acquire);
        if n.is_null() {
            return;
        }
        // SAFETY: chunks are leaked boxes published with Release and never freed.
        c = unsafe { &*n };
    }
}

fn claim_slot() -> &'static Slot {
    let mut c: &'static Chunk = &HEAD;
    loop {
        for s in c.slots.iter() {
            if !s.in_use.load(Relaxed) && s.in_use.compare_exchange(false, true, Acquire, Relaxed).is_ok() {
                s.depth.store(0, Relaxed);
                s.frames[0].store(0, Relaxed);
                s.open_sp.store(0, Relaxed);
                s.detached.store(false, Relaxed);
                s.retired_gen.store(0, Relaxed);
                s.fast_state.store(0, Relaxed);
                THREADS_REGISTERED.fetch_add(1, Relaxed);
                return s;
            }
        }
        let mut n = c.next.load(Acquire);
        if n.is_null() {
            let fresh = Box::into_raw(Box::new(Chunk::new()));
            match c.next.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire) {
                Ok(_) => n = fresh,
                Err(other) => {
                    // SAFETY: `fresh` was never published.
                    drop(unsafe { Box::from_raw(fresh) });
                    n = other;
                }
            }
        }
        // SAFETY: as in for_each_slot.
        c = unsafe { &*n };
    }
}

/// Owns the thread's slot: its destructor gives the slot back when the thread ends.
struct Local {
    slot: Cell<*const Slot>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let p = self.slot.get();
        if !p.is_null() {
            // SAFETY: p came from claim_slot (static storage); clearing our own TLS word.
            let s = unsafe { &*p };
            // SAFETY: clearing this thread's own TLS word (no other thread reads it).
            unsafe { gg_slot_set(std::ptr::null()) };
            // A thread that ends inside a region (killed by a policy `exit`, or a host bug)
            // must not hold the drain up forever.
            close_all(s);
            s.in_use.store(false, Release);
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { slot: Cell::new(std::ptr::null()) } };
}

/// This thread's slot, claimed on first use. None only during thread-local destruction.
#[inline]
pub(crate) fn my_slot() -> Option<&'static Slot> {
    // SAFETY: reads this thread's TLS word; a non-null value is a claimed static slot.
    let p = unsafe { gg_slot_get() } as *const Slot;
    if !p.is_null() {
        // SAFETY: as above.
        return Some(unsafe { &*p });
    }
    claim_for_thread()
}

#[cold]
#[inline(never)]
fn claim_for_thread() -> Option<&'static Slot> {
    LOCAL
        .try_with(|l| {
            let s = claim_slot();
            // SAFETY: __errno_location has no preconditions; the address is this thread's.
            s.errno_ptr.store(unsafe { libc::__errno_location() }, Relaxed);
            l.slot.set(s);
            // SAFETY: publishing our own slot in our own TLS word.
            unsafe { gg_slot_set(s as *const Slot as *const std::ffi::c_void) };
            s
        })
        .ok()
}

/// This thread's slot if it has one; never allocates (for interposed paths).
#[inline]
pub(crate) fn my_slot_if_any() -> Option<&'static Slot> {
    // SAFETY: as in my_slot.
    let p = unsafe { gg_slot_get() } as *const Slot;
    // SAFETY: as in my_slot.
    (!p.is_null()).then(|| unsafe { &*p })
}

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
fn barrier_drain_membarrier() {
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
    let slot = my_slot().ok_or(GILGATE_ERR_INTERNAL)?;
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

/// Move STATE from `from` (exactly) to `to`; false if someone else changed it first.
pub(crate) fn transition(from: u64, to: u64) -> bool {
    hot().state.compare_exchange(from, to, AcqRel, Acquire).is_ok()
}

/// Close the gate for the current generation. Returns false if it was closed already.
pub(crate) fn close() -> bool {
    let closed = protocol::close(&hot().state);
    if closed {
        barrier_drain_membarrier();
    }
    closed
}

pub(crate) fn mark_finalized() {
    let s = hot().state.load(Acquire);
    hot().state.store(pack(FINALIZED, gen_of(s)), Release);
}

/// Number of threads other than `me` inside a gated region.
pub(crate) fn others_inside(me: Option<&'static Slot>) -> u32 {
    let (api, dropin) = others_inside_by_kind(me);
    api + dropin
}

/// Threads other than `me` inside a region, split by the region's outermost level: opened
/// through the gilgate_* API, or through a drop-in export.
fn others_inside_by_kind(me: Option<&'static Slot>) -> (u32, u32) {
    let (mut api, mut dropin) = (0, 0);
    for_each_slot(|s| {
        if me.map_or(true, |m| !std::ptr::eq(m, s)) && protocol::inside(&s.depth) {
            match s.kind0.load(Relaxed) as u8 {
                KIND_API_TSTATE | KIND_API_GILSTATE => api += 1,
                _ => dropin += 1,
            }
        }
    });
    (api, dropin)
}

/// Wait until no other thread is inside a gated region, or the deadline passes. While only
/// drop-in regions are left, also stop once `idle` passes without any of them leaving: a
/// drop-in thread cannot be told, and one that does not come out of its region promptly (a
/// callback that never returns, a thread looping in Python) will not come out in time, so
/// waiting longer only delays the exit (the policy takes care of it). An API region keeps the
/// whole bound: its thread will be told at its next entry.
/// Returns how many are still inside at the end, (API regions, drop-in regions).
pub(crate) fn wait_drained(me: Option<&'static Slot>, timeout: Duration, idle: Duration) -> (u32, u32) {
    let start = Instant::now();
    let mut spins = 0u32;
    let mut last = u32::MAX;
    let mut progress = start;
    loop {
        let (api, dropin) = others_inside_by_kind(me);
        let n = api + dropin;
        let now = Instant::now();
        if n < last {
            last = n;
            progress = now;
        }
        if n == 0 || now - start >= timeout || (api == 0 && now - progress >= idle) {
            return (api, dropin);
        }
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(if spins < 256 { 20 } else { 200 }));
        }
    }
}

/// `pthread_atfork` child handler: only the forking thread exists in the child, so every other
/// slot's regions are dropped (their owners' TLS destructors will never run there). Atomic
/// stores only: async-signal-safe, as a fork child handler must be.
pub(crate) extern "C" fn after_fork_child() {
    let me = my_slot_if_any();
    for_each_slot(|s| {
        if me.map_or(true, |m| !std::ptr::eq(m, s)) && s.in_use.load(Relaxed) {
            s.fast_state.store(0, Relaxed);
            close_all(s);
            s.in_use.store(false, Release);
        }
    });
}

pub(crate) fn sum_entries() -> (u64, u64) {
    let mut e = 0;
    for_each_slot(|s| e += s.entries.load(Relaxed));
    (e, THREADS_REGISTERED.load(Relaxed))
}

/// Number of host threads inside a gated region now (slots with depth > 0), for the stats.
pub(crate) fn open_regions() -> u64 {
    let mut n = 0;
    for_each_slot(|s| n += (s.depth.load(Acquire) > 0) as u64);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    // The slot registry is process-global: tests that count open regions run one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

    #[test]
    fn slots_are_per_thread_reused_after_exit_and_grow_past_a_chunk() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mine = my_slot().unwrap() as *const Slot as usize;
        assert_eq!(mine, my_slot().unwrap() as *const Slot as usize);
        // 3 chunks' worth of concurrently live threads: every one gets a distinct slot.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(CHUNK * 3));
        let handles: Vec<_> = (0..CHUNK * 3)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    let s = my_slot().unwrap();
                    s.depth.store(1, Release);
                    let p = s as *const Slot as usize;
                    b.wait();
                    p
                })
            })
            .collect();
        let mut ptrs: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ptrs.push(mine);
        ptrs.sort();
        ptrs.dedup();
        assert_eq!(ptrs.len(), CHUNK * 3 + 1);
        // Threads that exited inside a region released their slot and its depth.
        assert_eq!(others_inside(my_slot()), 0);
        // A later thread reuses a freed slot rather than growing the registry.
        let chunks_before = { let mut n = 0; for_each_slot(|_| n += 1); n };
        std::thread::spawn(|| { my_slot().unwrap(); }).join().unwrap();
        let chunks_after = { let mut n = 0; for_each_slot(|_| n += 1); n };
        assert_eq!(chunks_before, chunks_after);
    }

    #[test]
    fn drain_wait_sees_open_regions_and_times_out() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let s = my_slot().unwrap();
            s.record(0, KIND_TSTATE, 0); // a drop-in region (slots are reused: say which)
            s.depth.store(1, Release);
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            leave(s);
        });
        rx.recv().unwrap();
        assert!(others_inside(my_slot()) >= 1);
        assert_eq!(wait_drained(my_slot(), Duration::from_millis(20), Duration::from_secs(10)), (0, 1));
        // A drop-in region that does not leave: the wait ends once `idle` passed, not at the bound.
        let t0 = Instant::now();
        assert_eq!(wait_drained(my_slot(), Duration::from_secs(30), Duration::from_millis(30)), (0, 1));
        let e = t0.elapsed();
        assert!(e >= Duration::from_millis(30) && e < Duration::from_secs(20), "{e:?}");
        tx2.send(()).unwrap();
        assert_eq!(wait_drained(my_slot(), Duration::from_secs(10), Duration::from_secs(10)), (0, 0));
        h.join().unwrap();
    }

    #[test]
    fn drain_wait_gives_api_regions_the_whole_bound() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let s = my_slot().unwrap();
            s.record(0, KIND_API_TSTATE, 0);
            s.depth.store(1, Release);
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            leave(s);
        });
        rx.recv().unwrap();
        let t0 = Instant::now();
        assert_eq!(wait_drained(my_slot(), Duration::from_millis(300), Duration::from_millis(10)), (1, 0));
        assert!(t0.elapsed() >= Duration::from_millis(300));
        tx2.send(()).unwrap();
        h.join().unwrap();
    }
}
