//! Loom model of the gate/drain pair, *membarrier* variant, with the orderings the arm64 build
//! uses (docs/design.md, "arm64"). `tests/loom_gate.rs` checks the fenced variant; this file
//! replaces the argument that the membarrier variant "reduces to" it with a model.
//!
//!   entry:  depth = d+1 Relaxed ; NO fence (compiler barrier) ; STATE Acquire ;
//!           admits / admits_fast -> region ; leave/undo depth Release
//!   drain:  CAS RUNNING->CLOSING SeqCst ; fence(SeqCst) [protocol::close] ;
//!           membarrier(PRIVATE_EXPEDITED) [modelled below] ; read every depth Acquire
//!
//! Code under test: `src/gate/protocol.rs` itself (included with loom's atomics, as in
//! loom_gate.rs), called as gate/entry.rs calls it when membarrier is in use:
//! `announce(.., fenced = false)`, whose `compiler_fence` is the model's hook below (no ordering
//! of its own, only a place where the kernel's barrier may land). The aarch64 assembly entries
//! are hand-written; they make the same three accesses (src/c/aarch64/entry.inc:37 `str` depth
//! relaxed, :38 `ldar` state acquire, :100 `stlr` depth 0 release; the C leave `stlr` as well,
//! design.md), so `announce(fenced = false)` + `lower` is their model too.
//!
//! membarrier, as the kernel guarantees it (man membarrier(2): "all its running thread siblings
//! have passed through a state where all memory accesses to user-space addresses match program
//! order between entry to and return from the system call"; kernel/sched/membarrier.c: smp_mb()
//! at the start and at the end of the syscall, smp_mb() in the IPI handler on every CPU running
//! a thread of the process, and for a thread not running, the scheduler's full barriers around
//! the rq->curr switch): for every other thread T there is a point in T's program order, reached
//! after the syscall started and before it returns, where T executes a full barrier. Encoding:
//!   - the drain: [syscall entry: its smp_mb is protocol::close's fence(SeqCst), which comes
//!     right before] ; REQ[i] = 1 (Relaxed) ; read every DONE[i] (Relaxed) ;
//!     fence(SeqCst) [syscall exit smp_mb] ; then the scan;
//!   - entry thread i, at its point k (the k-th gap of its shared accesses: 0 = before the
//!     first, the last = after the last, also taken when k is past the end of a shorter path):
//!     read REQ[i] (Relaxed) ; fence(SeqCst) [the IPI's smp_mb] ; DONE[i] = 1 (Relaxed).
//!   The flag reads are `fetch_add(0, Relaxed)`: a relaxed RMW orders nothing more than a
//!   relaxed load, but loom makes it read the newest value, so loom does not also explore the
//!   stale reads that would only be discarded (same kept executions: 3324 either way).
//!   An execution where T read REQ = 0 (its barrier before the syscall started) or the drain
//!   read some DONE = 0 (a barrier not before the return) is not an execution of membarrier at
//!   k: T then skips its fence and DONE, the drain skips the finalizer's write and the checks,
//!   and the run counts it as discarded. This is the "wait until" of the real syscall without
//!   a spin loop: every execution of a waiting version (spin with yield_now until the flag
//!   reads 1) is one of these with only the last loop iteration kept, and the kept ones are
//!   exactly the waiting version's. (A first version spun: 28,087 executions and 9.3 s for the
//!   fast-shortcut test instead of 18,616 and under 1 s, the same 3,324 kept.)
//! Every k is checked (each is one exhaustive loom run), and each run must keep at least one
//! execution.
//! One entry thread stands for any number: entry threads share only STATE (which they only
//! read) and the runtime cell (only read); a violation for thread i with other entry threads
//! present stays one when their events are removed (neither thread i nor the drain reads from
//! them, except the drain's depth and DONE reads: fewer nonzero depths only make "drained"
//! easier, and the DONE reads only select executions; their fences only add order). Two entry threads are the ignored `two_entry_threads`
//! (about 4 M executions per pair of k, minutes each).
//! Why the union over k covers every real execution: the barrier lands somewhere in T's program
//! order between the syscall's start and return; only its position among T's shared accesses
//! matters (a fence between two non-shared instructions acts as one right after the previous
//! shared access). T not yet started: k = 0; T done already (or parked for the whole syscall
//! after its last access): the last k; preempted mid-sequence: the k of that gap. A thread that
//! passes more than one full barrier in the window only has fewer executions than with one.
//! Why the handshake adds no ordering the kernel does not give: REQ and DONE are Relaxed, so by
//! themselves they order nothing (control `negative_control_handshake_without_the_ipi_barrier`
//! keeps them and drops T's fence: the violation is found). They only select the executions
//! where T's barrier comes after the syscall's start and before its return; the ordering comes
//! from the three fences, by C++'s fence-fence synchronization through a relaxed flag
//! ([atomics.fences]: release fence ; relaxed store ... relaxed load of it ; acquire fence),
//! the pairing the kernel's comments name (its IPI is sent and acknowledged through memory,
//! with full barriers on both sides; the syscall's own smp_mb at entry and exit are what the
//! drain's two fences stand for). Loom's extra SC-fence edges (loom_gate.rs's header) add
//! nothing here that this synchronization does not already give.
//!
//! The drain's other paths: if membarrier(QUERY/REGISTER_PRIVATE_EXPEDITED) fails at start
//! (gate/barrier.rs: old kernel, seccomp), `fast_barrier` stays 0: no membarrier in the drain,
//! every entry's barrier A is fence(SeqCst) (`announce(.., fenced = true)`, `dmb ish` on arm64)
//! and `fast_state` is never set, so the assembly fast entries always defer to Rust: that is
//! `tests/loom_gate.rs`'s model. A registered membarrier that then fails in the drain is not
//! modelled (not an error the kernel returns once registered; logged as an error if it did).
//!
//! Properties (as loom_gate.rs): the ghost tag (leave/undo store `d | LEFT`; only values differ
//! from production) catches "an entry proceeded and the drain read its depth from before the
//! raise and concluded drained"; a loom UnsafeCell read in the region and written by the
//! finalizer after "drained" catches any region access not happening-before finalization.
//!
//! Limitations: loom's C++-style model, not ARMv8's axiomatic one (arm64 is other-multicopy-
//! atomic and its `ldar`/`stlr`/`dmb ish` are at least as strong as Acquire/Release/SeqCst
//! fences in the mapping compilers use); one scan by the drain; one entry (plus the fast
//! second entry) per thread; nesting, detached/retired slots, UNKNOWN/FINALIZED, the slot
//! registry and the publication of CPython's function pointers (the reason the STATE load is
//! Acquire) are not modelled. Because of the last point, a Relaxed STATE load is *not* a
//! control here: with the IPI's fence before or after it the Dekker pair holds either way, and
//! nothing the region reads depends on that acquire in this model
//! (`relaxed_state_load_is_not_a_control_here` passes, and says so).
use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use loom::sync::Arc;
use std::cell::RefCell;
use std::sync::Mutex;

/// What `src/gate/protocol.rs` sees as `super::sync`. `compiler_fence` (barrier A with
/// membarrier) emits no instruction: in the model it is only one of the points where the
/// kernel's barrier may land (the point between the depth store and the STATE load).
mod sync {
    pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    pub(crate) fn compiler_fence(_: Ordering) {
        super::point();
    }
}
#[allow(dead_code)]
#[path = "../src/gate/protocol.rs"]
mod protocol;

const GEN: u64 = 1;
const RUNNING: u64 = protocol::pack(protocol::RUNNING, GEN);
mod loom_check;
use loom_check::{assert_every_outcome, assert_gate, LEFT, SECOND};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Announce {
    Arm64,          // protocol::announce(fenced = false): str ; (nothing) ; ldar
    StoreAfterLoad, // control: the STATE load moved before the depth store
    RelaxedLoad,    // the STATE load Relaxed (not a control: see the header)
}

#[derive(Clone, Copy, Debug)]
struct Cfg {
    entries: usize, // 1 or 2 entry threads
    runtime_cell: bool,
    fast_second: bool, // each entry thread enters again through the fast shortcut
    membarrier: bool,  // the drain issues membarrier (false: control)
    ipi_fence: bool,   // the barrier the kernel runs on T (false: control, handshake kept)
    announce: Announce,
    leave: loom::sync::atomic::Ordering, // Release (production) or Relaxed (control)
}

struct Shared {
    state: AtomicU64,
    depth: [AtomicU32; 2],
    runtime: UnsafeCell<u64>,
    req: [AtomicU8; 2],  // the drain is inside membarrier (schedule constraint only)
    done: [AtomicU8; 2], // thread i passed its barrier (schedule constraint only)
}

/// Entry thread i's barrier point: the `k`-th gap of its shared accesses.
struct Ipi {
    sh: Arc<Shared>,
    me: usize,
    k: usize,
    gap: usize,
    fired: bool,
    fence: bool,
}

impl Ipi {
    /// The barrier at this point. If the drain has not entered membarrier yet (REQ read 0),
    /// this execution puts the barrier before the syscall: not one of k's executions. The
    /// thread then never sets DONE, and the drain discards the execution (see `run`).
    fn fire(&mut self) {
        self.fired = true;
        if self.sh.req[self.me].fetch_add(0, Relaxed) == 0 {
            return;
        }
        if self.fence {
            fence(SeqCst); // smp_mb() in the IPI handler, or the context switch's
        }
        self.sh.done[self.me].store(1, Relaxed);
    }
}

loom::thread_local! {
    static IPI: RefCell<Option<Ipi>> = RefCell::new(None);
}

/// A gap between two shared accesses of this entry thread: the barrier lands here if it is gap k.
fn point() {
    IPI.with(|c| {
        if let Some(p) = c.borrow_mut().as_mut() {
            if !p.fired && p.gap == p.k {
                p.fire();
            }
            p.gap += 1;
        }
    });
}

/// After the thread's last access: a k past the end means the barrier comes now. Takes the Arc
/// out of the thread-local so nothing outlives the thread.
fn finish() {
    IPI.with(|c| {
        if let Some(mut p) = c.borrow_mut().take() {
            if !p.fired {
                p.fire();
            }
        }
    });
}

fn announce(cfg: Cfg, depth: &AtomicU32, d: u32, state: &AtomicU64) -> u64 {
    match cfg.announce {
        Announce::Arm64 => protocol::announce(depth, d, state, false), // point() inside
        Announce::StoreAfterLoad => {
            let s = state.load(Acquire);
            point();
            depth.store(d + 1, Relaxed);
            s
        }
        Announce::RelaxedLoad => {
            depth.store(d + 1, Relaxed);
            point();
            state.load(Relaxed)
        }
    }
}

fn lower(cfg: Cfg, depth: &AtomicU32, d: u32) {
    if cfg.leave == Release {
        protocol::lower(depth, d);
    } else {
        depth.store(d, cfg.leave);
    }
}

#[derive(Default, Debug)]
struct Stats {
    executions: u64,
    valid: u64, // executions with every barrier inside the syscall (the others are discarded)
    outcomes: std::collections::BTreeSet<(usize, bool)>, // (#entries that proceeded, drained?)
    drained_after_a_leave: bool,
    fast_admitted: bool,
    fast_refused: bool,
}

fn run(cfg: Cfg, ks: [usize; 2]) -> Stats {
    let stats = std::sync::Arc::new(Mutex::new(Stats::default())); // std: bookkeeping only
    let st = stats.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = None; // exhaustive, whatever LOOM_* the environment has
    b.max_permutations = None;
    b.max_duration = None;
    b.checkpoint_file = None;
    b.check(move || {
        let sh = Arc::new(Shared {
            state: AtomicU64::new(RUNNING),
            depth: [AtomicU32::new(0), AtomicU32::new(0)],
            runtime: UnsafeCell::new(0),
            req: [AtomicU8::new(0), AtomicU8::new(0)],
            done: [AtomicU8::new(0), AtomicU8::new(0)],
        });
        let entries: Vec<_> = (0..cfg.entries)
            .map(|i| {
                let sh = sh.clone();
                loom::thread::spawn(move || {
                    if cfg.membarrier {
                        let (k, fence) = (ks[i], cfg.ipi_fence);
                        let ipi = Ipi { sh: sh.clone(), me: i, k, gap: 0, fired: false, fence };
                        IPI.with(|c| *c.borrow_mut() = Some(ipi));
                    }
                    let slot = &sh.depth[i];
                    let region = || {
                        if cfg.runtime_cell {
                            point();
                            sh.runtime.with(|p| unsafe { std::ptr::read(p) }); // work under the GIL
                        }
                    };
                    point();
                    let s = announce(cfg, slot, 0, &sh.state);
                    let first = protocol::admits(s, 0);
                    if first {
                        region();
                    }
                    point();
                    lower(cfg, slot, LEFT); // leave (or undo a refused entry)
                    let mut second = false;
                    if cfg.fast_second {
                        // entry.rs records the admitted RUNNING word as fast_state (membarrier on).
                        let fast_state = if first { s } else { 0 };
                        point();
                        let s2 = announce(cfg, slot, SECOND, &sh.state);
                        second = protocol::admits_fast(s2, fast_state);
                        if second {
                            region();
                        }
                        point();
                        lower(cfg, slot, SECOND | LEFT);
                    }
                    finish();
                    (first, second)
                })
            })
            .collect();
        // The drain, on the model's main thread.
        assert!(protocol::close(&sh.state));
        let mut valid = true;
        if cfg.membarrier {
            // syscall entry: its smp_mb() is the fence protocol::close just ran (nothing between).
            for r in &sh.req[..cfg.entries] {
                r.store(1, Relaxed); // the IPIs go out
            }
            // smp_call_function_many(.., wait = true): every barrier before the return. An
            // execution where one is not (DONE read 0) is not one of k's: discarded.
            valid = sh.done[..cfg.entries].iter().all(|d| d.fetch_add(0, Relaxed) == 1);
            fence(SeqCst); // syscall exit: smp_mb()
        }
        let seen: Vec<u32> = sh.depth[..cfg.entries].iter().map(protocol::depth_seen).collect();
        let drained = seen.iter().all(|v| v & 0xff == 0);
        if drained && valid && cfg.runtime_cell {
            sh.runtime.with_mut(|p| unsafe { *p = 0xdead }); // Py_FinalizeEx
        }
        let results: Vec<(bool, bool)> = entries.into_iter().map(|h| h.join().unwrap()).collect();
        let mut s = st.lock().unwrap();
        s.executions += 1;
        if !valid {
            return;
        }
        s.valid += 1;
        assert_gate(&results, drained, &seen);
        let proceeded: Vec<bool> = results.iter().map(|r| r.0 || r.1).collect();
        s.outcomes.insert((proceeded.iter().filter(|p| **p).count(), drained));
        s.drained_after_a_leave |= drained && proceeded.iter().any(|p| *p);
        s.fast_admitted |= results.iter().any(|r| r.1);
        s.fast_refused |= results.iter().any(|r| r.0 && !r.1);
    });
    let s = std::mem::take(&mut *stats.lock().unwrap());
    s
}

/// Gaps of an entry thread: every shared access of the longest path, plus one after the last.
fn gaps(cfg: Cfg) -> usize {
    let per_entry = if cfg.runtime_cell { 4 } else { 3 }; // depth, STATE, [cell], depth
    per_entry * if cfg.fast_second { 2 } else { 1 } + 1
}

/// Every barrier position (every pair with two entry threads), merged.
fn run_all_k(cfg: Cfg) -> Stats {
    let t = std::time::Instant::now();
    let n = gaps(cfg);
    let mut all = Stats::default();
    for k0 in 0..n {
        for k1 in 0..if cfg.entries == 2 { n } else { 1 } {
            let t1 = std::time::Instant::now();
            let s = run(cfg, [k0, k1]);
            if std::env::var_os("LOOM_MB_TRACE").is_some() {
                let (e, v, t) = (s.executions, s.valid, t1.elapsed());
                eprintln!("  k = {:?}: {e} executions ({v} kept), {t:?}", [k0, k1]);
            }
            assert!(s.valid > 0, "k = {:?}: no valid execution", [k0, k1]);
            all.executions += s.executions;
            all.valid += s.valid;
            all.outcomes.extend(s.outcomes);
            all.drained_after_a_leave |= s.drained_after_a_leave;
            all.fast_admitted |= s.fast_admitted;
            all.fast_refused |= s.fast_refused;
        }
    }
    eprintln!("loom membarrier {cfg:?}: k in 0..{n}: {} executions ({} kept), {:?}", all.executions, all.valid, t.elapsed());
    all
}

/// A control: some barrier position must give a violation (GATE VIOLATION, or loom's causality
/// check on the runtime cell). Returns the first failing (k0, k1) and the message.
fn expect_violation(cfg: Cfg) -> ([usize; 2], String) {
    eprintln!("(negative control {cfg:?}: the panic output that follows is expected)");
    let n = if cfg.membarrier { gaps(cfg) } else { 1 };
    for k0 in 0..n {
        for k1 in 0..if cfg.entries == 2 { n } else { 1 } {
            if let Err(err) = std::panic::catch_unwind(|| run(cfg, [k0, k1])) {
                let msg = err
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                assert!(
                    msg.contains("GATE VIOLATION") || msg.contains("Causality violation"),
                    "negative control failed for another reason: {msg}"
                );
                eprintln!("negative control caught at k = {:?}: {msg}", [k0, k1]);
                return ([k0, k1], msg);
            }
        }
    }
    panic!("negative control {cfg:?}: loom found no violation at any barrier position");
}

const ARM64: Cfg = Cfg {
    entries: 1, // one entry thread covers any number (header); two: the ignored test below
    runtime_cell: false,
    fast_second: false,
    membarrier: true,
    ipi_fence: true,
    announce: Announce::Arm64,
    leave: Release,
};

#[test]
fn arm64_membarrier_never_lets_an_entry_past_a_drain() {
    let s = run_all_k(ARM64);
    // Not vacuous: refused and admitted entries with both verdicts occur.
    assert_every_outcome(&s.outcomes, ARM64.entries);
    assert!(s.drained_after_a_leave);
}

#[test]
fn arm64_membarrier_orders_regions_before_finalization() {
    let s = run_all_k(Cfg { runtime_cell: true, ..ARM64 });
    assert!(s.drained_after_a_leave);
}

#[test]
fn arm64_membarrier_fast_shortcut() {
    let s = run_all_k(Cfg { runtime_cell: true, fast_second: true, ..ARM64 });
    // Not vacuous: the fast entry is admitted in some executions and refused in others.
    assert!(s.fast_admitted && s.fast_refused, "{s:?}");
}

#[test]
fn negative_control_without_membarrier_is_caught() {
    // The drain skips membarrier while the entries keep only their compiler barrier.
    let (_, msg) = expect_violation(Cfg { membarrier: false, ..ARM64 });
    assert!(msg.contains("GATE VIOLATION"));
    expect_violation(Cfg { membarrier: false, fast_second: true, ..ARM64 });
    expect_violation(Cfg { membarrier: false, runtime_cell: true, ..ARM64 });
}

#[test]
fn negative_control_handshake_without_the_ipi_barrier() {
    // The REQ/DONE handshake and the syscall's own fences stay, T's barrier goes: the handshake
    // alone must not be what makes the model pass.
    let cfg = Cfg { ipi_fence: false, ..ARM64 };
    let (_, msg) = expect_violation(cfg);
    assert!(msg.contains("GATE VIOLATION"));
    // Even with the barrier point between the depth store and the STATE load (k = 1), where a
    // flag that ordered anything would make the pair hold.
    assert!(std::panic::catch_unwind(|| run(cfg, [1, 0])).is_err());
}

#[test]
fn negative_control_store_after_load_is_caught() {
    // Depth store moved after the STATE load: the barrier between them orders nothing useful.
    let (_, msg) = expect_violation(Cfg { announce: Announce::StoreAfterLoad, ..ARM64 });
    assert!(msg.contains("GATE VIOLATION"));
}

#[test]
fn relaxed_state_load_is_not_a_control_here() {
    // Documents the header's limitation: the Dekker pair does not need the STATE load's acquire
    // (the barrier is a fence on either side of it); the acquire publishes what this model
    // does not have (CPython's function pointers, stored before the state word).
    run_all_k(Cfg { announce: Announce::RelaxedLoad, runtime_cell: true, fast_second: true, ..ARM64 });
}

#[test]
fn negative_control_relaxed_leave_is_caught() {
    // Leave/undo Relaxed instead of the `stlr`: the region's accesses no longer happen-before
    // finalization when the barrier came before them (loom's causality check on the cell).
    let (_, msg) = expect_violation(Cfg { leave: Relaxed, runtime_cell: true, ..ARM64 });
    assert!(msg.contains("Causality violation"), "{msg}");
}

#[test]
#[ignore] // minutes to hours: run by hand (K=<gap> for one pair (K, K), else every pair)
fn two_entry_threads() {
    // Measured 2026-12-06 on a loaded 2-core machine, both passed: K=1 2,900,235 executions
    // (88,146 kept), 286 s; K=3 3,912,468 (136,548 kept), 227 s. Each of the 25 pairs is of
    // that order, hence not in CI (see the header); the other 23 pairs were not run.
    let cfg = Cfg { entries: 2, ..ARM64 };
    match std::env::var("K") {
        Ok(k) => {
            let k: usize = k.parse().unwrap();
            let t = std::time::Instant::now();
            let s = run(cfg, [k, k]);
            eprintln!("two entry threads, k = {k}: {} executions ({} kept), {:?}", s.executions, s.valid, t.elapsed());
        }
        Err(_) => {
            run_all_k(cfg);
        }
    }
}
