//! The gilstate path on PEP 788 (CPython 3.15+), used by `gilgate_gilstate_ensure` /
//! `gilgate_gilstate_release` when the loaded CPython exports `PyThreadState_EnsureFromView`.
//!
//! What 3.15.2 does (read from its libpython, confirmed by experiment; docs/versions.md "PEP 788"):
//! - `PyInterpreterView_FromMain()` is one 8-byte `PyMem_RawMalloc` holding the main
//!   interpreter's id (0). It works before `Py_Initialize` and stays valid across
//!   `Py_FinalizeEx` / `Py_Initialize` cycles, so gilgate creates one and keeps it forever.
//! - `PyInterpreterGuard_FromView(view)` takes the runtime's interpreter-list mutex, finds the
//!   interpreter by id and increments its guard countdown unless it is -1; it returns NULL, with
//!   no exception and without touching any thread state, when the interpreter is gone or has
//!   passed its pre-finalization step. It needs no GIL and cannot kill or park the thread.
//! - `PyThreadState_EnsureFromView(view)` is exactly `GuardFromView` + `PyThreadState_Ensure(guard)`,
//!   the guard then owned by the thread state and closed by the matching `PyThreadState_Release`.
//! - `Py_FinalizeEx` runs atexit callbacks (gilgate's drain is one), then waits, with no timeout,
//!   until the countdown is 0, then sets it to -1 (new guards fail) and only then goes on to mark
//!   and park thread states. So a thread holding a guard is never parked, and a NULL guard means
//!   the thread touched nothing.
//!
//! How gilgate uses it: the **generation guard**. When gilgate adopts a runtime generation
//! whose drain is armed (drain.rs), it takes one guard and keeps it until that drain's wait is
//! over (or the drain is disarmed, e.g. by `atexit._clear()`), then closes it. While it is held,
//! `Py_FinalizeEx` cannot pass its countdown, so no thread can be parked; the gate refuses every
//! entry once the drain closed it (race-free, before any CPython call), and waits for the ones
//! it admitted before closing the guard. So entries of a guarded generation take the plain
//! `PyGILState_Ensure` path (the API's C fast path included) at the legacy cost: one guard per
//! generation instead of one per call (the runtime mutex, list walk and allocation it costs:
//! +750 instructions per pair measured on 3.15.2, BENCHMARKS.md). Where there is no generation
//! guard (the entries before adoption, the rest of a generation whose drain timed out or was
//! disarmed), an entry takes its own guard: `PyInterpreterGuard_FromView` + `PyThreadState_Ensure`,
//! not `EnsureFromView`, because the guard must be gilgate's, not the thread state's: held for a
//! whole gilstate level, it would make `Py_FinalizeEx` wait for that level past gilgate's drain
//! bound. Those guards live in per-thread records the drain can reach: once the drain's wait is
//! over it closes every guard gilgate holds, and a guard taken later in that generation is closed
//! as soon as its `PyThreadState_Ensure` returns. A region that outlives the drain timeout meets
//! what it meets on 3.14 (CPython's park, intercepted or policed).
//!
//! Tokens live in the same per-thread record, a LIFO of `DEPTH` levels; a deeper nesting falls back
//! to `PyGILState_Ensure` for that level, and so does an entry nested in the thread's own
//! attached gilstate thread state (there `PyGILState_Ensure` only counts: no wait, no park). `*state_out` stays CPython's value
//! (`PyGILState_LOCKED` when the thread already had an attached thread state, else `UNLOCKED`);
//! each thread also keeps the kind (PEP 788 or legacy) of every gilstate level it has open, so
//! a release pops exactly its own level (gate depth cannot tell: `gilgate_save_thread` lowers it).

use crate::cpython::{Api, Pep788Api};
use crate::gate::{self, Slot, Ticket};
use crate::status::*;
use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

const DEPTH: usize = 8;
const PYGILSTATE_LOCKED: c_int = 0;
const PYGILSTATE_UNLOCKED: c_int = 1;

use crate::boundary::{gg_armed_call_p, pep788_ensure_tramp as ensure_tramp};

#[repr(C)]
struct Call {
    ensure: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    guard: *mut c_void,
    token: *mut c_void,
}

/// One gilstate level entered through PEP 788.
struct Ent {
    /// The `PyInterpreterGuard *` this level holds, or NULL once closed (by its owner or the drain).
    guard: AtomicPtr<c_void>,
    token: AtomicPtr<c_void>,
    gen: AtomicU64,
}

/// One thread's levels. Records are leaked and reused, so the drain can walk them at any time.
struct Rec {
    in_use: AtomicBool,
    len: AtomicUsize,
    ent: [Ent; DEPTH],
    /// Every open gilstate level of this thread, both kinds, innermost last: `count` levels,
    /// bit i of `kinds` set when level i is a PEP 788 one (levels past 63 are always legacy).
    count: AtomicU32,
    kinds: AtomicU64,
    /// Runtime generation the levels belong to.
    kgen: AtomicU64,
    next: AtomicPtr<Rec>,
}

/// The generation guard: one guard gilgate takes when it adopts a runtime generation whose
/// drain is armed, and closes when that drain's wait is over (or the drain is disarmed). While
/// it is held, `Py_FinalizeEx` cannot pass its guard countdown, so no thread can be parked; a
/// gate-admitted entry is waited for by the drain before the guard is closed. Entries of that
/// generation therefore take the plain `PyGILState_Ensure` path (the C fast path included) at
/// the legacy cost, and the refusal stays race-free (the gate's, before any CPython call).
static GEN_GUARD: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// The generation `GEN_GUARD` protects (0: none; every entry takes its own guard).
static GUARDED_GEN: AtomicU64 = AtomicU64::new(0);

static HEAD: AtomicPtr<Rec> = AtomicPtr::new(null_mut());
/// Generation whose drain timed out: guards taken in it are closed at once.
static STOLEN_GEN: AtomicU64 = AtomicU64::new(0);
/// The main interpreter's view, created once and never closed.
static VIEW: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// The PEP 788 functions, if the loaded CPython has them and `GILGATE_PEP788` is not 0.
pub(crate) fn active(api: &Api) -> Option<&Pep788Api> {
    api.pep788_active()
}

/// For the load line (`GILGATE_VERBOSE=1`).
pub(crate) fn describe(api: Option<&Api>) -> &'static str {
    match api {
        None => "",
        Some(a) if a.pep788.is_none() => "; gilstate path: PyGILState_Ensure (no PEP 788 in this CPython)",
        Some(a) if active(a).is_none() => "; gilstate path: PyGILState_Ensure (PEP 788 available, disabled by GILGATE_PEP788=0)",
        Some(_) => "; gilstate path: PEP 788 (one interpreter guard per runtime generation, held until the drain; PyGILState_Ensure under it)",
    }
}

fn new_rec() -> Rec {
    const E: Ent = Ent {
        guard: AtomicPtr::new(null_mut()),
        token: AtomicPtr::new(null_mut()),
        gen: AtomicU64::new(0),
    };
    Rec {
        in_use: AtomicBool::new(true),
        len: AtomicUsize::new(0),
        ent: [E; DEPTH],
        count: AtomicU32::new(0),
        kinds: AtomicU64::new(0),
        kgen: AtomicU64::new(0),
        next: AtomicPtr::new(null_mut()),
    }
}

fn for_each_rec(mut f: impl FnMut(&'static Rec)) {
    let mut p = HEAD.load(Acquire);
    while !p.is_null() {
        // SAFETY: records are leaked boxes published with Release and never freed.
        let r = unsafe { &*p };
        f(r);
        p = r.next.load(Acquire);
    }
}

fn claim_rec() -> &'static Rec {
    let mut found: Option<&'static Rec> = None;
    for_each_rec(|r| {
        if found.is_none() && !r.in_use.load(Relaxed) && r.in_use.compare_exchange(false, true, Acquire, Relaxed).is_ok() {
            r.len.store(0, Relaxed);
            r.count.store(0, Relaxed);
            r.kinds.store(0, Relaxed);
            found = Some(r);
        }
    });
    if let Some(r) = found {
        return r;
    }
    let r: &'static Rec = Box::leak(Box::new(new_rec()));
    let mut head = HEAD.load(Acquire);
    loop {
        r.next.store(head, Relaxed);
        match HEAD.compare_exchange(head, r as *const Rec as *mut Rec, AcqRel, Acquire) {
            Ok(_) => return r,
            Err(h) => head = h,
        }
    }
}

struct Local {
    rec: Cell<*const Rec>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let p = self.rec.get();
        if p.is_null() {
            return;
        }
        // SAFETY: p came from claim_rec (leaked, static).
        let r = unsafe { &*p };
        // A thread that ends inside a region must not hold finalization up forever.
        if let Some(p788) = crate::cpython::api_if_resolved().and_then(|a| a.pep788.as_ref()) {
            for e in r.ent.iter() {
                close_taken(p788, e);
            }
        }
        r.len.store(0, Release);
        r.count.store(0, Relaxed);
        r.in_use.store(false, Release);
    }
}

thread_local! {
    static LOCAL: Local = const { Local { rec: Cell::new(std::ptr::null()) } };
}

fn my_rec() -> Option<&'static Rec> {
    LOCAL
        .try_with(|l| {
            let mut p = l.rec.get();
            if p.is_null() {
                p = claim_rec();
                l.rec.set(p);
            }
            // SAFETY: as in Drop.
            unsafe { &*p }
        })
        .ok()
}

fn my_rec_if_any() -> Option<&'static Rec> {
    LOCAL
        .try_with(|l| {
            let p = l.rec.get();
            // SAFETY: as in Drop.
            (!p.is_null()).then(|| unsafe { &*p })
        })
        .ok()
        .flatten()
}

/// Tag bits on `Ent::guard` (guards are malloc'd, so at least 8-byte aligned).
const BUSY: usize = 1; // the owner is inside PyThreadState_Ensure(guard): it reads the guard
const CLOSE: usize = 2; // the drain asked for it to be closed as soon as Ensure returns

/// Close this level's guard if nobody has yet (or, while its owner is inside
/// `PyThreadState_Ensure`, which reads the guard, ask the owner to close it right after).
/// Every guard in a record is counted in its interpreter's countdown, so that interpreter cannot
/// have finalized: closing is safe. Returns true if it closed or deferred one.
fn close_taken(p: &Pep788Api, e: &Ent) -> bool {
    let mut v = e.guard.load(Acquire);
    loop {
        if v.is_null() {
            return false;
        }
        let bits = v as usize;
        if bits & BUSY != 0 {
            if bits & CLOSE != 0 {
                return false;
            }
            match e.guard.compare_exchange(v, (bits | CLOSE) as *mut c_void, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(cur) => v = cur,
            }
            continue;
        }
        match e.guard.compare_exchange(v, null_mut(), AcqRel, Acquire) {
            Ok(_) => {
                // SAFETY: a guard from PyInterpreterGuard_FromView, closed exactly once (by
                // whoever took it out of the record).
                unsafe { (p.PyInterpreterGuard_Close)(v) };
                return true;
            }
            Err(cur) => v = cur,
        }
    }
}

fn view(p: &Pep788Api) -> *mut c_void {
    let v = VIEW.load(Acquire);
    if !v.is_null() {
        return v;
    }
    // SAFETY: PyInterpreterView_FromMain only allocates (PyMem_RawMalloc); callable at any time.
    let fresh = unsafe { (p.PyInterpreterView_FromMain)() };
    if fresh.is_null() {
        return fresh;
    }
    match VIEW.compare_exchange(null_mut(), fresh, AcqRel, Acquire) {
        Ok(_) => fresh,
        Err(other) => other, // lost a race: `fresh` (8 bytes) is leaked, once
    }
}

/// The outcome of a PEP 788 gilstate entry.
pub(crate) enum Ensure {
    /// Attached with the GIL; the value for `*state_out`. The caller calls `drain::entered`.
    Ok(c_int),
    /// Refused, the gate ticket undone, the thread untouched.
    Refused(gilgate_status),
    /// CPython tried to kill/park the thread inside `PyThreadState_Ensure` (never expected while
    /// the guard is held; possible only after the drain closed it). The caller undoes the ticket.
    Killed(c_int),
    /// Not available, or this thread's LIFO is full: use `PyGILState_Ensure`.
    Legacy,
}

/// Undo a ticket whose entry never reached a thread state.
fn undo(t: &Ticket, e: gilgate_status) {
    let s = t.slot;
    s.entries.store(s.entries.load(Relaxed).saturating_sub(1), Relaxed);
    s.depth.store(t.depth_before, Release);
    crate::counters::refused(e);
}

/// `gilgate_gilstate_ensure` after `gate::enter` admitted the thread.
pub(crate) fn ensure(api: &Api, t: &Ticket) -> Ensure {
    let Some(p) = active(api) else { return Ensure::Legacy };
    let gen = gate::gen_of(t.snapshot);
    if legacy_suffices(p, gen) {
        return Ensure::Legacy;
    }
    let Some(rec) = my_rec() else { return Ensure::Legacy };
    levels_of_gen(rec, gen);
    // A failed entry leaves errno as it was (the guard's mutex and allocation may touch it).
    // SAFETY: this thread's errno location.
    let errno_at_entry = unsafe { *libc::__errno_location() };
    // SAFETY: as above.
    let restore_errno = || unsafe { *libc::__errno_location() = errno_at_entry };
    let n = drop_levels_of_old_gens(p, rec, gen);
    if n == DEPTH || rec.count.load(Relaxed) >= 64 {
        return Ensure::Legacy;
    }
    let v = view(p);
    if v.is_null() {
        return Ensure::Legacy;
    }
    // SAFETY: a valid view; no GIL needed; cannot kill or park (a mutex, a list walk, a CAS).
    let guard = unsafe { (p.PyInterpreterGuard_FromView)(v) };
    if guard.is_null() {
        return refused_without_guard(api, p, t, &restore_errno);
    }
    let e = &rec.ent[n];
    let (rc, token) = ensure_under_guard(p, rec, n, guard, gen);
    if rc != 0 {
        rec.len.store(n, Release);
        restore_errno();
        return Ensure::Killed(rc);
    }
    if token.is_null() {
        // Only when a new thread state cannot be allocated.
        rec.len.store(n, Release);
        let err = match api.runtime_alive() {
            Err(e) => e,
            Ok(()) => GILGATE_ERR_INTERNAL,
        };
        undo(t, err);
        restore_errno();
        return Ensure::Refused(err);
    }
    e.token.store(token, Relaxed);
    let c = rec.count.load(Relaxed);
    rec.kinds.store(rec.kinds.load(Relaxed) | (1u64 << c), Relaxed);
    rec.count.store(c + 1, Relaxed);
    // SAFETY: reads this thread's current thread state; no preconditions.
    let cur = unsafe { (p.PyThreadState_GetUnchecked)() } as *mut c_void;
    Ensure::Ok(if token == cur { PYGILSTATE_LOCKED } else { PYGILSTATE_UNLOCKED })
}

/// Cases where plain PyGILState_Ensure is as safe and cheaper than a guard: the generation guard
/// is held (PyGILState_Ensure cannot be parked before the drain), or the thread is nested in its
/// own attached gilstate thread state (PyGILState_Ensure only counts: no GIL wait, nothing to park).
fn legacy_suffices(p: &Pep788Api, gen: u64) -> bool {
    if GUARDED_GEN.load(Acquire) == gen {
        return true;
    }
    // SAFETY: both read this thread's thread-state pointers; no preconditions.
    let cur = unsafe { (p.PyThreadState_GetUnchecked)() };
    // SAFETY: as above.
    let mine = unsafe { (p.PyGILState_GetThisThreadState)() };
    !cur.is_null() && cur == mine
}

/// Drop the levels of a previous runtime generation (the finalizing thread's levels end with the
/// runtime, without a release); returns the number of levels left. Not by depth: a
/// gilgate_save_thread inside a level lowers the gate depth while the level stays open (and a new
/// level may nest in it).
fn drop_levels_of_old_gens(p: &Pep788Api, rec: &Rec, gen: u64) -> usize {
    let mut n = rec.len.load(Relaxed);
    while n > 0 {
        let e = &rec.ent[n - 1];
        if e.gen.load(Relaxed) == gen {
            break;
        }
        close_taken(p, e);
        n -= 1;
        rec.len.store(n, Release);
    }
    n
}

/// No guard could be taken from the main interpreter's view.
fn refused_without_guard(api: &Api, p: &Pep788Api, t: &Ticket, restore_errno: &dyn Fn()) -> Ensure {
    // SAFETY: reads this thread's current thread state; no preconditions.
    if !unsafe { (p.PyThreadState_GetUnchecked)() }.is_null() {
        // Nested in an attached thread state (e.g. a callback on the finalizing thread, or in a
        // region that outlived the drain): the thread holds the GIL already and
        // PyGILState_Ensure only counts, as on every other version.
        return Ensure::Legacy;
    }
    // The main interpreter is gone or past pre-finalization: nothing was touched.
    let e = match api.runtime_alive() {
        Err(e) => e,
        Ok(()) => GILGATE_ERR_FINALIZING,
    };
    undo(t, e);
    restore_errno();
    Ensure::Refused(e)
}

/// Record `guard` as level `n` of `rec` and call PyThreadState_Ensure(guard) with the kill jump
/// armed: (0 or the kill kind, the token or NULL). The guard stays in `e` only if the level holds
/// (a token, and the drain did not give up on this generation); otherwise it is closed here.
fn ensure_under_guard(p: &Pep788Api, rec: &Rec, n: usize, guard: *mut c_void, gen: u64) -> (c_int, *mut c_void) {
    let e = &rec.ent[n];
    e.gen.store(gen, Relaxed);
    e.token.store(null_mut(), Relaxed);
    // Publish the guard (BUSY: PyThreadState_Ensure reads it, so the drain must not free it
    // under us), then, after Ensure, check whether the drain gave up on this generation (it sets
    // STOLEN_GEN, then reads every record): either it saw this level or we see the flag.
    e.guard.store((guard as usize | BUSY) as *mut c_void, SeqCst);
    rec.len.store(n + 1, SeqCst);
    let mut call = Call { ensure: p.PyThreadState_Ensure, guard, token: null_mut() };
    // SAFETY: the trampoline calls PyThreadState_Ensure(guard) with the kill jump armed; the
    // guard stays valid for the call (BUSY).
    let rc = unsafe { gg_armed_call_p(ensure_tramp(), &mut call as *mut Call as *mut c_void) };
    let keep = rc == 0
        && !call.token.is_null()
        && STOLEN_GEN.load(SeqCst) != gen
        && e.guard.compare_exchange((guard as usize | BUSY) as *mut c_void, guard, AcqRel, Acquire).is_ok();
    if !keep {
        e.guard.store(null_mut(), Release);
        // SAFETY: ours (BUSY): nobody else closes a BUSY guard.
        unsafe { (p.PyInterpreterGuard_Close)(guard) };
    }
    (rc, call.token)
}

/// Adopting generation `gen` with its drain armed (drain.rs, GIL held): take the generation
/// guard and give the API's gilstate pair its C fast path (`PyGILState_Ensure`/`Release`).
pub(crate) fn hold_generation(api: &Api, gen: u64) {
    let Some(p) = active(api) else { return };
    let v = view(p);
    if v.is_null() || !GEN_GUARD.load(Acquire).is_null() {
        return;
    }
    // SAFETY: a valid view; no GIL needed; cannot kill or park (a mutex, a list walk, a CAS).
    let g = unsafe { (p.PyInterpreterGuard_FromView)(v) };
    if g.is_null() {
        return;
    }
    GEN_GUARD.store(g, Release);
    GUARDED_GEN.store(gen, Release);
    publish_api_gilstate(api, true);
}

/// This generation's drain is over (or disarmed: it will not run): `Py_FinalizeEx` must not
/// wait for the generation guard. Entries take their own guards again.
pub(crate) fn release_generation(api: &Api) {
    let Some(p) = api.pep788.as_ref() else { return };
    GUARDED_GEN.store(0, Release);
    publish_api_gilstate(api, false);
    let g = GEN_GUARD.swap(null_mut(), AcqRel);
    if !g.is_null() {
        // SAFETY: the guard hold_generation took, closed once (swapped out above).
        unsafe { (p.PyInterpreterGuard_Close)(g) };
    }
}

fn publish_api_gilstate(api: &Api, on: bool) {
    let f = |x: usize| if on { x as *mut c_void } else { null_mut() };
    crate::boundary::publish_py(crate::boundary::PY_API_ENSURE, f(api.PyGILState_Ensure as usize));
    crate::boundary::publish_py(crate::boundary::PY_API_GILSTATE_RELEASE, f(api.PyGILState_Release as usize));
}

/// Start the level bookkeeping over when the runtime generation changed (the finalizing thread's
/// levels end with the runtime, without a release).
fn levels_of_gen(rec: &Rec, gen: u64) {
    if rec.kgen.load(Relaxed) != gen {
        rec.kgen.store(gen, Relaxed);
        rec.count.store(0, Relaxed);
        rec.kinds.store(0, Relaxed);
    }
}

/// A `PyGILState_Ensure` level opened by `gilgate_gilstate_ensure` (where this path is active).
pub(crate) fn note_legacy(api: &Api, t: &Ticket) {
    if active(api).is_none() {
        return;
    }
    let Some(rec) = my_rec() else { return };
    levels_of_gen(rec, gate::gen_of(t.snapshot));
    let c = rec.count.load(Relaxed);
    if c < 64 {
        rec.kinds.store(rec.kinds.load(Relaxed) & !(1u64 << c), Relaxed);
    }
    rec.count.store(c.saturating_add(1), Relaxed);
}

/// `gilgate_gilstate_release` (a region is open on `slot`): pop this thread's innermost gilstate
/// level; if it is a PEP 788 one, release it (CPython is skipped when `skip_cpython`) and return
/// true; false means a `PyGILState_Ensure` level (or none known here): the caller's legacy path.
pub(crate) fn release(api: &Api, _slot: &Slot, skip_cpython: bool) -> bool {
    let Some(p) = api.pep788.as_ref() else { return false };
    let Some(rec) = my_rec_if_any() else { return false };
    let c = rec.count.load(Relaxed);
    if c == 0 {
        return false;
    }
    let i = c - 1;
    rec.count.store(i, Relaxed);
    if i >= 64 || rec.kinds.load(Relaxed) & (1u64 << i) == 0 {
        return false;
    }
    let n = rec.len.load(Relaxed);
    if n == 0 {
        return false; // cannot happen: every PEP 788 level has its entry
    }
    let e = &rec.ent[n - 1];
    rec.len.store(n - 1, Release);
    if !skip_cpython {
        // SAFETY: the token of this thread's matching successful PyThreadState_Ensure; the thread
        // holds the GIL with that level's thread state attached (CPython's contract).
        unsafe { (p.PyThreadState_Release)(e.token.load(Relaxed)) };
    }
    close_taken(p, e);
    true
}

/// Called by the drain once its wait is over (GIL held, gate closed, drained or timed out):
/// close every guard gilgate still holds in this generation, and have guards taken later in it
/// closed as soon as their `PyThreadState_Ensure` returns. `Py_FinalizeEx` then waits for no
/// gilgate guard: regions are protected by the drain, as on every version, and its bound holds.
/// Guards outlive a region's gate accounting (a `gilgate_save_thread` inside a gilstate region
/// ends the region but not the level), so the drain cannot only close timed-out ones.
pub(crate) fn after_drain(api: &Api, timed_out: bool) {
    let Some(p) = api.pep788.as_ref() else { return };
    release_generation(api);
    STOLEN_GEN.store(gate::gen_of(gate::state()), SeqCst);
    let mut closed = 0u64;
    for_each_rec(|r| {
        let n = r.len.load(SeqCst).min(DEPTH);
        for e in &r.ent[..n] {
            closed += close_taken(p, e) as u64;
        }
    });
    if closed > 0 && (timed_out || crate::config::get().verbose) {
        crate::log::Line::new()
            .s("drain: closed ").u(closed)
            .s(" PEP 788 interpreter guard(s) still held by gilstate levels: Py_FinalizeEx does not wait for them")
            .emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static CLOSED: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn close(_g: *mut c_void) {
        CLOSED.fetch_add(1, SeqCst);
    }
    unsafe extern "C" fn none() -> *mut c_void {
        null_mut()
    }
    unsafe extern "C" fn none1(_: *mut c_void) -> *mut c_void {
        null_mut()
    }
    unsafe extern "C" fn nothing(_: *mut c_void) {}
    unsafe extern "C" fn no_ts() -> crate::cpython::TState {
        null_mut()
    }
    fn fake() -> Pep788Api {
        Pep788Api {
            PyInterpreterView_FromMain: none,
            PyInterpreterGuard_FromView: none1,
            PyInterpreterGuard_Close: close,
            PyThreadState_Ensure: none1,
            PyThreadState_Release: nothing,
            PyThreadState_GetUnchecked: no_ts,
            PyGILState_GetThisThreadState: no_ts,
        }
    }

    #[test]
    fn guards_are_closed_exactly_once_and_never_while_busy() {
        let p = fake();
        let r = new_rec();
        let e = &r.ent[0];
        let g = 0x1000usize as *mut c_void;
        let before = CLOSED.load(SeqCst);
        // Plain: the first taker closes it, the second finds nothing.
        e.guard.store(g, SeqCst);
        assert!(close_taken(&p, e));
        assert!(!close_taken(&p, e));
        assert_eq!(CLOSED.load(SeqCst), before + 1);
        // BUSY (owner inside PyThreadState_Ensure): only marked, not closed; marking twice is a no-op.
        e.guard.store((0x2000usize | BUSY) as *mut c_void, SeqCst);
        assert!(close_taken(&p, e));
        assert!(!close_taken(&p, e));
        assert_eq!(CLOSED.load(SeqCst), before + 1);
        assert_eq!(e.guard.load(SeqCst) as usize, 0x2000 | BUSY | CLOSE);
        // The owner's "keep" CAS then fails, so the owner closes it.
        assert!(e.guard.compare_exchange((0x2000usize | BUSY) as *mut c_void, 0x2000usize as *mut c_void, AcqRel, Acquire).is_err());
    }
}
