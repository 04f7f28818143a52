//! The slot registry: one `Slot` per host thread, in chunks that are never freed (slots are
//! reused when their thread ends), found through this thread's TLS word (`gg_slot`, the C side's
//! initial-exec TLS, which the fast paths read). Also the walks over every slot: the drain's
//! count, the fork child handler, the statistics.

use super::protocol;
use crate::boundary::{gg_slot_get, gg_slot_set};
use crate::layout::*;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

/// One host thread's view. Only its owner writes it (the drain and stats read `depth`).
/// `#[repr(C)]`: the C fast paths use the same layout (src/base/layout.rs `SLOT_C`, asserted below).
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
    pub kind0: AtomicU32,
    /// Generation in which this thread lost a PyGILState thread state to a kill: retired until
    /// the runtime is re-initialized.
    pub retired_gen: AtomicU64,
    pub entries: AtomicU64,
    /// Stack pointer of the region's outermost entry (the kill walk finds that frame with it).
    pub open_sp: AtomicUsize,
    pub in_use: AtomicBool,
    /// A nested re-entry inside the region failed: the thread no longer holds the GIL, so the
    /// region's remaining release calls must not reach CPython.
    pub detached: AtomicBool,
    /// The state word for which this thread may take the C fast path (src/c/shared.h `gg_fast_entry`): the outermost
    /// entry compares the state word with it, one compare for "RUNNING, adopted, same
    /// generation, thread not retired, not detached, membarrier in use". 0 = never (the state
    /// word always has a generation >= 1). Set by the Rust path, cleared wherever one of those
    /// conditions stops holding for this thread; a new generation or a closed gate changes the
    /// state word itself.
    pub fast_state: AtomicU64,
    /// The owner thread's `errno` location (fixed per thread), and errno saved by the C fast
    /// path around its armed call, restored when a kill is caught (only the owner touches them).
    pub errno_ptr: AtomicPtr<std::os::raw::c_int>,
    pub saved_errno: std::sync::atomic::AtomicI32,
    pub _pad: AtomicU32,
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
            super::region::close_all(s);
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

/// Number of threads other than `me` inside a gated region.
pub(crate) fn others_inside(me: Option<&'static Slot>) -> u32 {
    let (api, dropin) = others_inside_by_kind(me);
    api + dropin
}

/// Threads other than `me` inside a region, split by the region's outermost level: opened
/// through the gilgate_* API, or through a drop-in export.
pub(crate) fn others_inside_by_kind(me: Option<&'static Slot>) -> (u32, u32) {
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

/// `pthread_atfork` child handler: only the forking thread exists in the child, so every other
/// slot's regions are dropped (their owners' TLS destructors will never run there). Atomic
/// stores only: async-signal-safe, as a fork child handler must be.
pub(crate) extern "C" fn after_fork_child() {
    let me = my_slot_if_any();
    for_each_slot(|s| {
        if me.map_or(true, |m| !std::ptr::eq(m, s)) && s.in_use.load(Relaxed) {
            s.fast_state.store(0, Relaxed);
            super::region::close_all(s);
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
/// The slot registry is process-global: tests that count open regions run one at a time.
pub(crate) static TEST_SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_thread_reused_after_exit_and_grow_past_a_chunk() {
        let _g = TEST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

}
