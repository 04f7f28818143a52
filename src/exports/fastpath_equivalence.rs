//! Issue 21: the rules that exist twice, in Rust and in the C/assembly fast paths (src/c/), give
//! the same outcome. Each table below is driven through both: the real fast entries and releases
//! (`gg_api_*`, `gg_drop_*`; on x86-64 the outermost entries are the assembly of src/c/x86_64/, with
//! the cargo feature `portable-entries` the C of api_entries.c/dropin_entries.c), and the Rust
//! functions they mirror (`gate::enter_with`, `protocol::admits_fast`, `region.rs`
//! `leave`/`pop_through`/`close_all`, `dropin::saved`/`native`/`resumes_python`, `frame_of`,
//! `origin::in_cpython`/`in_self`), on the same slot, state word, thread state and caller.
//!
//! CPython is faked: its functions in `gg_hot.py` record their calls, and a recording `gg_rust`
//! table stands for the Rust paths, so "C deferred to Rust" is an observed call with its arguments.
//! Every row says what C does (fast / forward to CPython / defer to Rust) and what Rust does; the
//! checks that make the two the same rule: C fast => Rust fast with the identical slot after;
//! C forwards => Rust forwards; C defers => C left the slot exactly as it was (no depth behind);
//! a release C handles itself => the slot after equals the Rust bookkeeping's. Rows marked
//! `known` are inputs where the two differ today; they assert that difference, so a change to
//! either side shows up here (see the rows' text).
//!
//! Process-global state (gg_hot, gg_rust, the text ranges, the frame offsets) is swapped for the
//! test under `gate::slots::TEST_SERIAL` and restored by `Restore`'s Drop, panics included; the
//! tables run on a thread of their own, with a fresh slot.

use crate::boundary::{self, hot, RustPaths};
use crate::cpython::{Api, TState};
use crate::gate::{self, protocol, Slot};
use crate::layout::*;
use crate::status::*;
use crate::{api, dropin, origin};
use std::ffi::c_void;
use std::os::raw::c_int;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::*};
use std::sync::Mutex;

extern "C" {
    static gg_rust: RustPaths;
    static gg_no_slot: Slot;
    // src/c/probes.c: shared.h's static inline rules.
    fn gg_probe_in_python(ts: *const c_void) -> c_int;
    fn gg_probe_from_cpython(ra: usize) -> c_int;
    fn gg_probe_from_self(ra: usize) -> c_int;
}

// ---- what the fakes saw ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ev {
    who: &'static str,
    args: [usize; 3],
}
static EVENTS: Mutex<Vec<Ev>> = Mutex::new(Vec::new());
fn ev(who: &'static str, a: usize, b: usize, c: usize) {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(Ev { who, args: [a, b, c] });
}
fn take_events() -> Vec<Ev> {
    std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|e| e.into_inner()))
}

// ---- fake CPython (published into gg_hot.py) ----

const PY_ENSURE_RET: c_int = 0x37;
const PY_API_ENSURE_RET: c_int = 0x38;
/// What the fake PyEval_SaveThread returns (the row's thread state).
static SAVE_RET: AtomicUsize = AtomicUsize::new(0);
/// The fake Py_IsInitialized (the Rust slow path asks it).
static INITIALIZED: AtomicI32 = AtomicI32::new(1);

extern "C" fn py_restore(ts: TState) {
    ev("py restore", ts as usize, 0, 0)
}
extern "C" fn py_acquire(ts: TState) {
    ev("py acquire", ts as usize, 0, 0)
}
extern "C" fn py_ensure() -> c_int {
    ev("py ensure", 0, 0, 0);
    PY_ENSURE_RET
}
extern "C" fn py_api_ensure() -> c_int {
    ev("py api ensure", 0, 0, 0);
    PY_API_ENSURE_RET
}
extern "C" fn py_save() -> TState {
    ev("py save", 0, 0, 0);
    SAVE_RET.load(Relaxed) as TState
}
extern "C" fn py_release_thread(ts: TState) {
    ev("py release_thread", ts as usize, 0, 0)
}
extern "C" fn py_gil_release(st: c_int) {
    ev("py gilstate_release", st as usize, 0, 0)
}
extern "C" fn py_api_gil_release(st: c_int) {
    ev("py api gilstate_release", st as usize, 0, 0)
}

fn fake_py(i: usize) -> *mut c_void {
    let f: usize = match i {
        PY_RESTORE => py_restore as *const () as usize,
        PY_ACQUIRE => py_acquire as *const () as usize,
        PY_ENSURE => py_ensure as *const () as usize,
        PY_SAVE => py_save as *const () as usize,
        PY_RELEASE_THREAD => py_release_thread as *const () as usize,
        PY_GILSTATE_RELEASE => py_gil_release as *const () as usize,
        PY_API_ENSURE => py_api_ensure as *const () as usize,
        PY_API_GILSTATE_RELEASE => py_api_gil_release as *const () as usize,
        _ => unreachable!(),
    };
    f as *mut c_void
}

// ---- the recording gg_rust table: "C went to Rust" ----

const RS_RESTORE: c_int = 0x51;
const RS_ACQUIRE: c_int = 0x52;
const RS_ENSURE: c_int = 0x53;
const RS_DROP_ENSURE: c_int = 0x54;
const RS_SAVE: usize = 0x5a50;
const RS_DROP_SAVE: usize = 0x5a60;

extern "C" fn rs_restore(ts: TState) -> c_int {
    ev("rust restore", ts as usize, 0, 0);
    RS_RESTORE
}
extern "C" fn rs_acquire(ts: TState) -> c_int {
    ev("rust acquire", ts as usize, 0, 0);
    RS_ACQUIRE
}
extern "C" fn rs_ensure(out: *mut c_int) -> c_int {
    ev("rust ensure", out as usize, 0, 0);
    RS_ENSURE
}
extern "C" fn rs_save() -> TState {
    ev("rust save", 0, 0, 0);
    RS_SAVE as TState
}
extern "C" fn rs_release_thread(ts: TState) {
    ev("rust release_thread", ts as usize, 0, 0)
}
extern "C" fn rs_gil_release(st: c_int) {
    ev("rust gilstate_release", st as usize, 0, 0)
}
extern "C" fn rs_killed(s: *const c_void, k: c_int, w: c_int) -> c_int {
    ev("rust killed", s as usize, k as usize, w as usize);
    GILGATE_ERR_FINALIZING as c_int
}
extern "C-unwind" fn rs_drop_restore(ts: TState, ra: usize, sp: usize) {
    ev("rust drop_restore", ts as usize, ra, sp)
}
extern "C-unwind" fn rs_drop_acquire(ts: TState, ra: usize, sp: usize) {
    ev("rust drop_acquire", ts as usize, ra, sp)
}
extern "C-unwind" fn rs_drop_ensure(ra: usize, sp: usize) -> c_int {
    ev("rust drop_ensure", ra, sp, 0);
    RS_DROP_ENSURE
}
extern "C-unwind" fn rs_drop_save(ra: usize, sp: usize) -> TState {
    ev("rust drop_save", ra, sp, 0);
    RS_DROP_SAVE as TState
}
extern "C-unwind" fn rs_drop_release_thread(ts: TState, ra: usize, sp: usize) {
    ev("rust drop_release_thread", ts as usize, ra, sp)
}
extern "C-unwind" fn rs_drop_gil_release(st: c_int, ra: usize, sp: usize) {
    ev("rust drop_gilstate_release", st as usize, ra, sp)
}
extern "C-unwind" fn rs_drop_killed(s: *const c_void, k: c_int, w: c_int) {
    ev("rust drop_killed", s as usize, k as usize, w as usize)
}
static RECORDER: RustPaths = RustPaths {
    restore: rs_restore,
    acquire: rs_acquire,
    ensure: rs_ensure,
    save: rs_save,
    release_thread: rs_release_thread,
    gilstate_release: rs_gil_release,
    killed: rs_killed,
    drop_restore: rs_drop_restore,
    drop_acquire: rs_drop_acquire,
    drop_ensure: rs_drop_ensure,
    drop_save: rs_drop_save,
    drop_release_thread: rs_drop_release_thread,
    drop_gilstate_release: rs_drop_gil_release,
    drop_killed: rs_drop_killed,
};

// ---- a fake Api for the Rust slow path (only Py_IsInitialized and the thread-state reads run) ----

unsafe extern "C" fn trap() {
    std::process::abort()
}
/// A function pointer of any signature that aborts if ever called.
fn dummy<F: Copy>() -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: F is a function pointer type of the same size; `trap` is never called through it
    // with arguments it would read (it aborts at once if reached at all).
    unsafe { std::mem::transmute_copy(&(trap as unsafe extern "C" fn())) }
}
unsafe extern "C" fn fake_initialized() -> c_int {
    INITIALIZED.load(Relaxed)
}
unsafe extern "C" fn no_tstate() -> TState {
    null_mut()
}
fn fake_api() -> Api {
    Api {
        version: (3, 12),
        Py_IsInitialized: fake_initialized,
        is_finalizing: None,
        PyEval_RestoreThread: dummy(),
        PyEval_AcquireThread: dummy(),
        PyEval_SaveThread: dummy(),
        PyEval_ReleaseThread: dummy(),
        PyEval_AcquireLock: None,
        PyEval_ReleaseLock: None,
        PyGILState_Ensure: dummy(),
        PyGILState_Release: dummy(),
        PyGILState_Check: dummy(),
        PyThreadState_New: dummy(),
        PyThreadState_DeleteCurrent: None,
        _PyThreadState_DeleteCurrent: None,
        PyThreadState_Swap: dummy(),
        tstate_unchecked: no_tstate,
        PyGILState_GetThisThreadState: no_tstate,
        PyCapsule_New: dummy(),
        Py_FinalizeEx: dummy(),
        Py_Finalize: dummy(),
        Py_AtExit: dummy(),
        PyInterpreterState_Main: dummy(),
        PyInterpreterState_Get: dummy(),
        PyInterpreterState_Head: dummy(),
        PyInterpreterState_Next: dummy(),
        PyImport_ImportModule: dummy(),
        PyObject_GetAttrString: dummy(),
        PyObject_CallObject: dummy(),
        PyTuple_New: dummy(),
        PyTuple_SetItem: dummy(),
        PyCFunction_NewEx: dummy(),
        Py_IncRef: dummy(),
        Py_DecRef: dummy(),
        PyErr_Fetch: dummy(),
        PyErr_Restore: dummy(),
        none: null_mut(),
        pep788: None,
    }
}

// ---- the process-global state this test swaps, restored on Drop ----

struct Restore {
    state: u64,
    py: [usize; PY_SLOTS],
    main_interp: usize,
    ranges: ((usize, usize), (usize, usize)),
    frames: (u32, u32, FrameStyle),
    rust: Option<RustPaths>,
}
impl Restore {
    fn take() -> Restore {
        let h = hot();
        Restore {
            state: h.state.load(SeqCst),
            py: std::array::from_fn(|i| h.py[i].load(SeqCst) as usize),
            main_interp: h.main_interp.load(SeqCst) as usize,
            ranges: origin::ranges(),
            frames: boundary::published_frame_offsets(),
            // SAFETY: a plain copy of the C table (`struct gg_rust`, the same layout).
            rust: Some(unsafe { std::ptr::read(std::ptr::addr_of!(gg_rust)) }),
        }
    }
}
impl Drop for Restore {
    fn drop(&mut self) {
        let h = hot();
        h.state.store(self.state, SeqCst);
        for (i, f) in self.py.iter().enumerate() {
            boundary::publish_py(i as i32, *f as *mut c_void);
        }
        boundary::publish_main_interp(self.main_interp as *mut c_void);
        origin::set_ranges(self.ranges.0, self.ranges.1);
        boundary::publish_frame_offsets(self.frames);
        if let Some(r) = self.rust.take() {
            boundary::set_rust_paths(Box::leak(Box::new(r)));
        }
    }
}

/// Run `body` on a thread of its own (a fresh slot) with the fakes installed; restore everything.
fn with_fakes(body: fn()) {
    let _serial = gate::slots::TEST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _restore = Restore::take();
    for i in 0..PY_SLOTS {
        boundary::publish_py(i as i32, fake_py(i));
    }
    boundary::publish_main_interp(MAIN_INTERP as *mut c_void);
    origin::set_ranges((PY_LO, PY_HI), (SELF_LO, SELF_HI));
    boundary::set_rust_paths(&RECORDER);
    take_events();
    let r = std::thread::Builder::new().name("fastpath-equivalence".into()).spawn(body).unwrap().join();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

// ---- inputs ----

const GEN: u64 = 0x777;
const MAIN_INTERP: usize = 0x1000_0000;
const OTHER_INTERP: usize = 0x2000_0000;
// Fake code ranges: nothing is mapped there, so a thread classification walk calls this a host.
const PY_LO: usize = 0x5000_0000_0000;
const PY_HI: usize = 0x5000_0010_0000;
const SELF_LO: usize = 0x6000_0000_0000;
const SELF_HI: usize = 0x6000_0000_8000;
const HOST: c_int = THREAD_HOST;
const CPYTHON: c_int = THREAD_CPYTHON;

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Running,
    Closing,
    Finalized,
    Unknown,
}
impl St {
    fn word(self) -> u64 {
        let s = match self {
            St::Running => protocol::RUNNING,
            St::Closing => protocol::CLOSING,
            St::Finalized => protocol::FINALIZED,
            St::Unknown => protocol::UNKNOWN,
        };
        protocol::pack(s, GEN)
    }
}

/// The slot's fast_state: the current RUNNING word, never admitted, or an earlier generation's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fs {
    Current,
    Zero,
    Stale,
}
impl Fs {
    fn word(self) -> u64 {
        match self {
            Fs::Current => protocol::pack(protocol::RUNNING, GEN),
            Fs::Zero => 0,
            Fs::Stale => protocol::pack(protocol::RUNNING, GEN - 1),
        }
    }
}

/// The thread state handed in (for the API's gilstate ensure: `Null` is a NULL `out`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ts {
    Null,
    /// Main interpreter, no Python frame.
    Main,
    Other,
    /// Executing a Python frame (under the row's CPython version's frame offsets).
    InPython,
    /// A frame pointer is set but the word behind it is NULL: executing Python for 3.8-3.10 and
    /// 3.13-3.14 (no indirection), not for 3.11-3.12 (empty cframe) and 3.15 (the base frame).
    FrameNotRunning,
}

/// Where the call comes from: a host, CPython's own code, gilgate's own code.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ra {
    Host,
    Py,
    Own,
    At(usize),
}
impl Ra {
    fn addr(self) -> usize {
        match self {
            Ra::Host => 0x7000_1234_5678,
            Ra::Py => PY_LO + 0x40,
            Ra::Own => SELF_LO + 0x40,
            Ra::At(a) => a,
        }
    }
}

/// Fake `struct _ts` memory for a row.
struct Mem {
    ts: Box<[usize; 32]>,
    frame: Box<[usize; 8]>,
}
impl Mem {
    fn new(t: Ts, ver: (u32, u32)) -> (Mem, TState) {
        let mut m = Mem { ts: Box::new([0; 32]), frame: Box::new([0; 8]) };
        let (off, cf, _) = crate::cpython::frame_offsets(ver);
        m.ts[TS_INTERP / 8] = if t == Ts::Other { OTHER_INTERP } else { MAIN_INTERP };
        if matches!(t, Ts::InPython | Ts::FrameNotRunning) {
            m.ts[off as usize / 8] = m.frame.as_ptr() as usize;
            if cf != NO_CFRAME && t == Ts::InPython {
                m.frame[cf as usize / 8] = 0xf4a3e;
            }
        }
        let p = if t == Ts::Null { null_mut() } else { m.ts.as_mut_ptr() as TState };
        (m, p)
    }
}

// ---- the slot ----

#[derive(Clone, Copy)]
struct Init {
    levels: &'static [u8],
    fs: Fs,
    retired: bool,
    detached: bool,
}

fn set_slot(s: &Slot, i: Init) {
    let d = i.levels.len();
    s.depth.store(d as u32, SeqCst);
    s.kind0.store(i.levels.first().copied().unwrap_or(0) as u32, SeqCst);
    for l in 0..LEVELS {
        if l > 0 {
            s.kinds[l].store(i.levels.get(l).copied().unwrap_or(0), SeqCst);
        }
        s.frames[l].store(0, SeqCst);
    }
    s.entries.store(100, SeqCst);
    s.open_sp.store(if d > 0 { 0xabc0 } else { 0 }, SeqCst);
    s.fast_state.store(i.fs.word(), SeqCst);
    s.retired_gen.store(if i.retired { GEN } else { 0 }, SeqCst);
    s.detached.store(i.detached, SeqCst);
}

/// The slot as the rules see it: levels beyond the depth are dead, so they (and level 0's kind at
/// depth 0) read as 0; open_sp only as set or not (its value is a stack address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snap {
    depth: u32,
    kinds: [u8; LEVELS],
    frames: [usize; LEVELS],
    entries: u64,
    open_sp: bool,
    fast_state: u64,
    retired_gen: u64,
    detached: bool,
}
fn snap(s: &Slot) -> Snap {
    let depth = s.depth.load(SeqCst);
    let live = |l: usize| l < depth as usize;
    Snap {
        depth,
        kinds: std::array::from_fn(|l| if live(l) { s.kind_at(l) } else { 0 }),
        frames: std::array::from_fn(|l| if live(l) || l == 0 { s.frames[l].load(SeqCst) } else { 0 }),
        entries: s.entries.load(SeqCst),
        open_sp: s.open_sp.load(SeqCst) != 0,
        fast_state: s.fast_state.load(SeqCst),
        retired_gen: s.retired_gen.load(SeqCst),
        detached: s.detached.load(SeqCst),
    }
}
fn levels_of(s: &Snap) -> Vec<u8> {
    s.kinds[..(s.depth as usize).min(LEVELS)].to_vec()
}

fn set_thread_kind(k: c_int) {
    // SAFETY: this thread's own TLS word.
    unsafe { boundary::gg_set_thread_kind(k) }
}
fn unset_slot() {
    // SAFETY: this thread's own TLS word (gg_no_slot stands in).
    unsafe { boundary::gg_slot_set(std::ptr::null()) }
}
fn reset_slot(s: &'static Slot) {
    // SAFETY: this thread's own TLS word, back to its own claimed slot.
    unsafe { boundary::gg_slot_set(s as *const Slot as *const c_void) }
}
fn no_slot_untouched() -> bool {
    // SAFETY: a C static of Slot's layout; only its depth is read.
    unsafe { (*std::ptr::addr_of!(gg_no_slot)).depth.load(SeqCst) == u32::MAX }
}

// ---- 1. outermost entries ----

#[derive(Clone, Copy, Debug, PartialEq)]
enum Entry {
    ApiRestore,
    ApiAcquire,
    ApiEnsure,
    DropRestore,
    DropAcquire,
    DropEnsure,
}
impl Entry {
    fn kind(self) -> u8 {
        match self {
            Entry::ApiRestore | Entry::ApiAcquire => KIND_API_TSTATE,
            Entry::ApiEnsure => KIND_API_GILSTATE,
            Entry::DropRestore | Entry::DropAcquire => KIND_TSTATE,
            Entry::DropEnsure => KIND_GILSTATE,
        }
    }
    fn py(self) -> usize {
        match self {
            Entry::ApiRestore | Entry::DropRestore => PY_RESTORE,
            Entry::ApiAcquire | Entry::DropAcquire => PY_ACQUIRE,
            Entry::ApiEnsure => PY_API_ENSURE,
            Entry::DropEnsure => PY_ENSURE,
        }
    }
    fn dropin(self) -> bool {
        matches!(self, Entry::DropRestore | Entry::DropAcquire | Entry::DropEnsure)
    }
    fn has_ts(self) -> bool {
        !matches!(self, Entry::ApiEnsure | Entry::DropEnsure)
    }
}

/// What the C/assembly entry did.
#[derive(Clone, Copy, Debug, PartialEq)]
enum COut {
    /// Opened the region itself and called CPython.
    Fast,
    /// Called CPython without a region (CPython's own call, a NULL thread state, CPython's thread).
    Forward,
    /// Jumped to the Rust path (`gg_rust`).
    Rust,
}

/// What Rust does with the same inputs (which branch of `enter_with`, or before it).
#[derive(Clone, Copy, Debug, PartialEq)]
enum ROut {
    /// `enter_with`'s fast case: `protocol::admits_fast`, depth 0.
    Fast,
    /// `protocol::admits`: the full admission test (which may set fast_state).
    Admit,
    /// `enter_slow` admitted (a runtime not adopted yet).
    Slow,
    /// Inside an open region: never refused (`enter_with`'s nested case / `host_enter`'s branch).
    Nested,
    Refused(gilgate_status),
    /// The API refuses a NULL argument before the gate.
    NullArg,
    /// No slot yet: Rust claims one (`my_slot`) first.
    FirstUse,
    /// Drop-in: forwarded to CPython as is (`native`, NULL thread state, `resumes_python`).
    Forward,
}

#[derive(Clone, Copy)]
struct Adm {
    name: &'static str,
    entry: Entry,
    levels: &'static [u8],
    fs: Fs,
    retired: bool,
    detached: bool,
    state: St,
    ts: Ts,
    published: bool,
    slot: bool,
    thread: c_int,
    ra: Ra,
    ver: (u32, u32),
    c: COut,
    rust: ROut,
    known: Option<&'static str>,
}
const A: Adm = Adm {
    name: "",
    entry: Entry::ApiRestore,
    levels: &[],
    fs: Fs::Current,
    retired: false,
    detached: false,
    state: St::Running,
    ts: Ts::Main,
    published: true,
    slot: true,
    thread: HOST,
    ra: Ra::Host,
    ver: (3, 12),
    c: COut::Fast,
    rust: ROut::Fast,
    known: None,
};

const FIN: ROut = ROut::Refused(GILGATE_ERR_FINALIZING);

fn api_tstate_rows(e: Entry) -> Vec<Adm> {
    use {COut as C, ROut as R};
    let a = Adm { entry: e, ..A };
    vec![
        Adm { name: "outermost, slot admitted in this RUNNING word before", ..a },
        Adm { name: "thread state executing Python (the API does not look)", ts: Ts::InPython, ..a },
        Adm { name: "never admitted fast (fast_state 0)", fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "admitted in an earlier generation", fs: Fs::Stale, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "gate closing", state: St::Closing, c: C::Rust, rust: FIN, ..a },
        Adm { name: "runtime finalized", state: St::Finalized, c: C::Rust,
              rust: R::Refused(GILGATE_ERR_NOT_INITIALIZED), ..a },
        Adm { name: "runtime not adopted yet", state: St::Unknown, fs: Fs::Zero, c: C::Rust, rust: R::Slow, ..a },
        Adm { name: "retired in this generation", retired: true, fs: Fs::Zero, c: C::Rust, rust: FIN, ..a },
        Adm { name: "nested in an API level", levels: &[KIND_API_TSTATE], c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "inside a suspended drop-in region", levels: &[KIND_TSTATE, KIND_SUSPEND], c: C::Rust,
              rust: R::Nested, ..a },
        Adm { name: "nested while the gate closes", levels: &[KIND_API_TSTATE], state: St::Closing, c: C::Rust,
              rust: R::Nested, ..a },
        Adm { name: "detached region", levels: &[KIND_API_TSTATE], detached: true, fs: Fs::Zero, c: C::Rust,
              rust: R::Admit, ..a },
        // Rust's gate admits; restore_like's interp_is_live then decides (C only knows the main one).
        Adm { name: "thread state of another interpreter", ts: Ts::Other, c: C::Rust, rust: R::Fast, ..a },
        Adm { name: "NULL thread state", ts: Ts::Null, c: C::Rust, rust: R::NullArg, ..a },
        // fast_state is only ever set once the functions are published (the assembly relies on it).
        Adm { name: "CPython function not published", published: false, fs: Fs::Zero, c: C::Rust,
              rust: R::Admit, ..a },
        Adm { name: "no slot yet", slot: false, c: C::Rust, rust: R::FirstUse, ..a },
    ]
}

fn api_ensure_rows() -> Vec<Adm> {
    use {COut as C, ROut as R};
    let a = Adm { entry: Entry::ApiEnsure, ..A };
    vec![
        Adm { name: "outermost, slot admitted in this RUNNING word before", ..a },
        Adm { name: "never admitted fast", fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "gate closing", state: St::Closing, c: C::Rust, rust: FIN, ..a },
        Adm { name: "runtime not adopted yet", state: St::Unknown, fs: Fs::Zero, c: C::Rust, rust: R::Slow, ..a },
        Adm { name: "retired in this generation", retired: true, fs: Fs::Zero, c: C::Rust, rust: FIN, ..a },
        Adm { name: "nested in an API gilstate level", levels: &[KIND_API_GILSTATE], c: C::Rust,
              rust: R::Nested, ..a },
        // PEP 788's path: the gate admits, the Rust body then takes its per-call guard.
        Adm { name: "API ensure not published (PEP 788 path)", published: false, c: C::Rust, rust: R::Fast, ..a },
        Adm { name: "NULL out", ts: Ts::Null, c: C::Rust, rust: R::NullArg, ..a },
        Adm { name: "no slot yet", slot: false, c: C::Rust, rust: R::FirstUse, ..a },
    ]
}

const SELF_ENTRY: &str = "a host-side entry from gilgate's own code: the fast entries test gg_from_cpython but not \
gg_from_self (shared.h: `Tested only before leaving the fast path for Rust`), Rust's `native` tests both, so C opens \
a region where Rust forwards. Reached only if CPython tail-calls the export from inside a call gilgate made at depth 0";

fn drop_tstate_rows(e: Entry) -> Vec<Adm> {
    use {COut as C, ROut as R};
    let a = Adm { entry: e, ..A };
    let mut v = vec![
        Adm { name: "host thread's outermost entry, admitted before", ..a },
        Adm { name: "never admitted fast", fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "admitted in an earlier generation", fs: Fs::Stale, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "gate closing", state: St::Closing, c: C::Rust, rust: FIN, ..a },
        Adm { name: "runtime not adopted yet", state: St::Unknown, fs: Fs::Zero, c: C::Rust, rust: R::Slow, ..a },
        Adm { name: "nested in a drop-in level", levels: &[KIND_TSTATE], c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "resume of a suspended region", levels: &[KIND_TSTATE, KIND_SUSPEND], c: C::Rust,
              rust: R::Nested, ..a },
        Adm { name: "resume while the gate closes", levels: &[KIND_TSTATE, KIND_SUSPEND], state: St::Closing,
              c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "inside a gilstate level", levels: &[KIND_GILSTATE], c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "thread state executing Python, inside a suspended region", ts: Ts::InPython,
              levels: &[KIND_TSTATE, KIND_SUSPEND], c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "thread state of another interpreter (drop-in does not check)", ts: Ts::Other, ..a },
        Adm { name: "NULL thread state", ts: Ts::Null, c: C::Forward, rust: R::Forward, ..a },
        Adm { name: "call from CPython's code", ra: Ra::Py, c: C::Forward, rust: R::Forward, ..a },
        Adm { name: "call from CPython's code, gate closing", ra: Ra::Py, state: St::Closing, c: C::Forward,
              rust: R::Forward, ..a },
        Adm { name: "CPython's thread", thread: CPYTHON, c: C::Forward, rust: R::Forward, ..a },
        // Rust classifies it (a host here: the fake CPython range holds no frame).
        Adm { name: "thread not classified yet", thread: 0, c: C::Rust, rust: R::Fast, ..a },
        Adm { name: "CPython function not published", published: false, fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "no slot yet", slot: false, c: C::Rust, rust: R::FirstUse, ..a },
        Adm { name: "call from gilgate's own code", ra: Ra::Own, c: C::Fast, rust: R::Forward, known: Some(SELF_ENTRY), ..a },
    ];
    // The Python-frame test, per frame layout (the assembly has its own copy of it).
    for ver in [(3, 8), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15)] {
        v.push(Adm { name: "thread state executing Python outside any region", ver, ts: Ts::InPython, c: C::Rust,
                     rust: R::Forward, ..a });
        let (_, cf, _) = crate::cpython::frame_offsets(ver);
        let (c, rust) = if cf == NO_CFRAME { (C::Rust, R::Forward) } else { (C::Fast, R::Fast) };
        v.push(Adm { name: "frame pointer set, word behind it NULL", ver, ts: Ts::FrameNotRunning, c, rust, ..a });
    }
    v
}

fn drop_ensure_rows() -> Vec<Adm> {
    use {COut as C, ROut as R};
    let a = Adm { entry: Entry::DropEnsure, ..A };
    vec![
        Adm { name: "host thread's outermost ensure, admitted before", ..a },
        Adm { name: "never admitted fast", fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "gate closing", state: St::Closing, c: C::Rust, rust: FIN, ..a },
        Adm { name: "retired in this generation", retired: true, fs: Fs::Zero, c: C::Rust, rust: FIN, ..a },
        Adm { name: "nested in a drop-in level", levels: &[KIND_TSTATE], c: C::Rust, rust: R::Nested, ..a },
        Adm { name: "callback inside a suspended region", levels: &[KIND_TSTATE, KIND_SUSPEND], c: C::Rust,
              rust: R::Nested, ..a },
        Adm { name: "call from CPython's code", ra: Ra::Py, c: C::Forward, rust: R::Forward, ..a },
        Adm { name: "CPython's thread", thread: CPYTHON, c: C::Forward, rust: R::Forward, ..a },
        Adm { name: "thread not classified yet", thread: 0, c: C::Rust, rust: R::Fast, ..a },
        Adm { name: "CPython function not published", published: false, fs: Fs::Zero, c: C::Rust, rust: R::Admit, ..a },
        Adm { name: "no slot yet", slot: false, c: C::Rust, rust: R::FirstUse, ..a },
        Adm { name: "call from gilgate's own code", ra: Ra::Own, c: C::Fast, rust: R::Forward, known: Some(SELF_ENTRY), ..a },
    ]
}

/// Run the C/assembly entry; its return value (0 for the void drop-in entries).
fn call_c_entry(e: Entry, ts: TState, out: *mut c_int, ra: usize, sp: usize) -> isize {
    // SAFETY: the fast entries with the arguments their exports pass; every function they can
    // reach is a fake of this file (gg_hot.py and gg_rust were swapped by `with_fakes`), and `ts`
    // is NULL or fake thread-state memory of this row.
    unsafe {
        match e {
            Entry::ApiRestore => boundary::gg_api_restore_thread(ts) as isize,
            Entry::ApiAcquire => boundary::gg_api_acquire_thread(ts) as isize,
            Entry::ApiEnsure => boundary::gg_api_gilstate_ensure(out) as isize,
            Entry::DropRestore => {
                boundary::gg_drop_restore_thread(ts, ra, sp);
                0
            }
            Entry::DropAcquire => {
                boundary::gg_drop_acquire_thread(ts, ra, sp);
                0
            }
            Entry::DropEnsure => boundary::gg_drop_gilstate_ensure(ra, sp) as isize,
        }
    }
}

/// The Rust side of an outermost entry on the same inputs (the slot is set up by the caller).
fn rust_entry(api: &Api, slot: &'static Slot, r: &Adm, ts: TState, ra: usize, sp: usize) -> ROut {
    let e = r.entry;
    if e.dropin() {
        // dropin.rs restore_impl/acquire_impl/ensure_impl, then host_enter.
        let forward = if e.has_ts() {
            dropin::native(ra) || ts.is_null() || dropin::resumes_python(ts)
        } else {
            dropin::native(ra) || (slot.depth.load(SeqCst) == 0 && api.holds_gil())
        };
        if forward {
            return ROut::Forward;
        }
    } else if ts.is_null() {
        return ROut::NullArg; // restore_like / rs_gilstate_ensure (ts stands for `out` there)
    }
    if !r.slot {
        return ROut::FirstUse;
    }
    if e.dropin() && slot.depth.load(SeqCst) > 0 {
        return ROut::Nested; // host_enter: a resume or a pushed level, never refused
    }
    let (s0, fs0, d0) = (hot().state.load(SeqCst), slot.fast_state.load(SeqCst), slot.depth.load(SeqCst));
    let (det0, ret0) = (slot.detached.load(SeqCst), slot.retired_gen.load(SeqCst));
    match gate::enter_with(api, slot, e.kind()) {
        Ok(t) => {
            if e.dropin() && t.depth_before == 0 {
                slot.open_sp.store(sp, SeqCst); // host_enter records the caller's sp
            }
            let _ = gate::entered(&t);
            if d0 > 0 && !det0 && protocol::state_of(s0) != protocol::FINALIZED {
                ROut::Nested
            } else if d0 == 0 && protocol::admits_fast(s0, fs0) {
                ROut::Fast
            } else if protocol::admits(s0, ret0) {
                ROut::Admit
            } else {
                ROut::Slow
            }
        }
        Err(e) => ROut::Refused(e),
    }
}

fn run_entry_row(api: &Api, slot: &'static Slot, r: &Adm, check_table: bool) {
    let e = r.entry;
    let ctx = format!("{:?} `{}` (CPython {:?}, levels {:?}, {:?}, fast_state {:?})", e, r.name, r.ver, r.levels,
                      r.state, r.fs);
    let (mem, ts) = Mem::new(r.ts, r.ver);
    let mut out: c_int = -1;
    let out_p: *mut c_int = if r.ts == Ts::Null { null_mut() } else { &mut out };
    let arg = if e.has_ts() { ts } else { out_p as TState };
    let ra = r.ra.addr();
    let sp = &mem as *const Mem as usize + 8;
    let init = Init { levels: r.levels, fs: r.fs, retired: r.retired, detached: r.detached };
    let setup = || {
        boundary::publish_frame_offsets(crate::cpython::frame_offsets(r.ver));
        for i in 0..PY_SLOTS {
            boundary::publish_py(i as i32, fake_py(i));
        }
        if !r.published {
            boundary::publish_py(e.py() as i32, null_mut());
        }
        hot().state.store(r.state.word(), SeqCst);
        INITIALIZED.store((r.state != St::Finalized) as c_int, Relaxed);
        set_thread_kind(r.thread);
        set_slot(slot, init);
        take_events();
    };

    // C.
    setup();
    let before = snap(slot);
    if !r.slot {
        unset_slot();
    }
    let ret = call_c_entry(e, arg, out_p, ra, sp);
    if !r.slot {
        reset_slot(slot);
        assert!(no_slot_untouched(), "{ctx}: gg_no_slot was written");
    }
    let c_snap = snap(slot);
    let c_open_sp = slot.open_sp.load(SeqCst);
    let evs = take_events();
    assert_eq!(evs.len(), 1, "{ctx}: C made exactly one call: {evs:?}");
    let ev0 = evs[0];
    let c = if ev0.who.starts_with("rust ") {
        COut::Rust
    } else if c_snap.depth == before.depth + 1 {
        COut::Fast
    } else {
        COut::Forward
    };

    // Rust, from the same inputs.
    setup();
    let rust = rust_entry(api, slot, r, arg, ra, sp);
    let r_snap = snap(slot);

    let both = format!("{ctx}: C {c:?} (event {ev0:?}), Rust {rust:?}");
    if check_table {
        assert_eq!((c, rust), (r.c, r.rust), "{both}: the table says C {:?}, Rust {:?}", r.c, r.rust);
    }
    // What C did, in detail.
    let py_name = match e.py() {
        PY_RESTORE => "py restore",
        PY_ACQUIRE => "py acquire",
        PY_ENSURE => "py ensure",
        _ => "py api ensure",
    };
    match c {
        COut::Fast | COut::Forward => {
            assert_eq!(ev0.who, py_name, "{both}");
            if e.has_ts() {
                assert_eq!(ev0.args[0], ts as usize, "{both}: the thread state reached CPython");
            }
            match e {
                Entry::ApiEnsure => {
                    assert_eq!((ret, out), (GILGATE_OK as isize, PY_API_ENSURE_RET), "{both}: *out = Ensure's value")
                }
                Entry::DropEnsure => assert_eq!(ret, PY_ENSURE_RET as isize, "{both}: Ensure's value returned"),
                Entry::ApiRestore | Entry::ApiAcquire => assert_eq!(ret, GILGATE_OK as isize, "{both}"),
                _ => {}
            }
        }
        COut::Rust => {
            let (who, args, want): (&str, [usize; 3], isize) = match e {
                Entry::ApiRestore => ("rust restore", [ts as usize, 0, 0], RS_RESTORE as isize),
                Entry::ApiAcquire => ("rust acquire", [ts as usize, 0, 0], RS_ACQUIRE as isize),
                Entry::ApiEnsure => ("rust ensure", [out_p as usize, 0, 0], RS_ENSURE as isize),
                Entry::DropRestore => ("rust drop_restore", [ts as usize, ra, sp], 0),
                Entry::DropAcquire => ("rust drop_acquire", [ts as usize, ra, sp], 0),
                Entry::DropEnsure => ("rust drop_ensure", [ra, sp, 0], RS_DROP_ENSURE as isize),
            };
            assert_eq!(ev0, Ev { who, args }, "{both}: deferred with the caller's arguments");
            assert_eq!(ret, want, "{both}: the Rust path's value is returned");
        }
    }
    match c {
        COut::Fast => {
            let mut opened = Snap { depth: 1, entries: before.entries + 1, open_sp: true, ..before };
            opened.kinds[0] = e.kind();
            assert_eq!(c_snap, opened, "{both}: C opened the region (depth 1, kind0, entries+1, open_sp)");
            if e.dropin() {
                assert_eq!(c_open_sp, sp, "{both}: open_sp is the caller's sp");
            } else {
                // The entry's own frame: just below the caller's stack pointer.
                let here = &c_open_sp as *const usize as usize;
                assert!(c_open_sp.abs_diff(here) < 1 << 16, "{both}: open_sp {c_open_sp:#x} is a stack address");
            }
        }
        _ => assert_eq!(c_snap, before, "{both}: C left the slot as it was (no depth behind)"),
    }
    if r.known.is_none() {
        match c {
            COut::Fast => {
                assert_eq!(rust, ROut::Fast, "{both}: C took the fast path, so must Rust");
                assert_eq!(c_snap, r_snap, "{both}: the slot after C and after Rust");
            }
            COut::Forward => assert_eq!(rust, ROut::Forward, "{both}: C forwarded, so must Rust"),
            COut::Rust => {}
        }
    } else {
        let same = c_snap == r_snap && (c == COut::Fast) == (rust == ROut::Fast);
        assert!(!same, "{both}: a `known` row no longer differs: update the table");
    }
    set_slot(slot, Init { levels: &[], fs: Fs::Zero, retired: false, detached: false });
    drop(mem);
}

#[test]
fn outermost_entries_admit_like_rust() {
    with_fakes(|| {
        let api = fake_api();
        let slot = gate::my_slot().unwrap();
        let mut rows = api_tstate_rows(Entry::ApiRestore);
        rows.extend(api_tstate_rows(Entry::ApiAcquire));
        rows.extend(api_ensure_rows());
        rows.extend(drop_tstate_rows(Entry::DropRestore));
        rows.extend(drop_tstate_rows(Entry::DropAcquire));
        rows.extend(drop_ensure_rows());
        for r in &rows {
            run_entry_row(&api, slot, r, true);
        }
        // Every combination of the slot and the state word: the rules, without a table.
        for e in [Entry::ApiRestore, Entry::ApiEnsure, Entry::DropRestore, Entry::DropEnsure] {
            for levels in [&[][..], &[KIND_TSTATE][..], &[KIND_API_TSTATE][..], &[KIND_TSTATE, KIND_SUSPEND][..]] {
                for fs in [Fs::Current, Fs::Zero, Fs::Stale] {
                    for state in [St::Running, St::Closing, St::Finalized, St::Unknown] {
                        for (retired, detached) in [(false, false), (true, false), (false, true), (true, true)] {
                            let r = Adm { name: "sweep", entry: e, levels, fs, state, retired, detached, ..A };
                            run_entry_row(&api, slot, &r, false);
                        }
                    }
                }
            }
        }
    });
}

// ---- 2. releases ----

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    ApiSave,
    ApiReleaseThread,
    ApiGilRelease,
    DropSave,
    DropReleaseThread,
    DropGilRelease,
}
impl Op {
    fn py(self) -> usize {
        match self {
            Op::ApiSave | Op::DropSave => PY_SAVE,
            Op::ApiReleaseThread | Op::DropReleaseThread => PY_RELEASE_THREAD,
            Op::ApiGilRelease => PY_API_GILSTATE_RELEASE,
            Op::DropGilRelease => PY_GILSTATE_RELEASE,
        }
    }
}

/// What the C release did: called CPython itself (with or without bookkeeping), or deferred.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CRel {
    Local,
    Rust,
}

#[derive(Clone, Copy)]
struct Rel {
    name: &'static str,
    op: Op,
    levels: &'static [u8],
    fs: Fs,
    detached: bool,
    state: St,
    ts: Ts,
    published: bool,
    slot: bool,
    thread: c_int,
    ra: Ra,
    ver: (u32, u32),
    c: CRel,
    /// The levels after Rust's bookkeeping (and after C's, unless `known`).
    after: &'static [u8],
    /// A row where C and Rust differ: why, and the levels C leaves.
    known: Option<(&'static str, &'static [u8])>,
}
const R: Rel = Rel {
    name: "",
    op: Op::ApiSave,
    levels: &[KIND_API_TSTATE],
    fs: Fs::Current,
    detached: false,
    state: St::Running,
    ts: Ts::Main,
    published: true,
    slot: true,
    thread: HOST,
    ra: Ra::Host,
    ver: (3, 12),
    c: CRel::Local,
    after: &[],
    known: None,
};

const SELF_SAVE: &str = "a release from gilgate's own code (CPython tail-calling the export from inside a call gilgate \
made) at the host's outermost level of the release's own kind: C tests gg_from_self only when it would defer \
(gg_drop_leave_kind == 2), so it does the host's bookkeeping; Rust's `native` forwards it untouched";
const CPYTHON_THREAD_SAVE: &str = "a CPython thread with an open drop-in level: the C saves do not test the thread \
kind (Rust's `native` does); unreachable as long as CPython's threads never open a level (their entries are forwarded)";

fn release_rows() -> Vec<Rel> {
    use CRel::*;
    const T: u8 = KIND_TSTATE;
    const G: u8 = KIND_GILSTATE;
    const AT: u8 = KIND_API_TSTATE;
    const AG: u8 = KIND_API_GILSTATE;
    const S: u8 = KIND_SUSPEND;
    let api_save = Rel { op: Op::ApiSave, ..R };
    let api_rel = Rel { op: Op::ApiReleaseThread, ..R };
    let api_gil = Rel { op: Op::ApiGilRelease, levels: &[KIND_API_GILSTATE], ..R };
    let save = Rel { op: Op::DropSave, levels: &[KIND_TSTATE], ..R };
    let rel = Rel { op: Op::DropReleaseThread, levels: &[KIND_TSTATE], ..R };
    let gil = Rel { op: Op::DropGilRelease, levels: &[KIND_GILSTATE], ..R };
    let mut v = vec![
        Rel { name: "outermost API level", ..api_save },
        Rel { name: "outermost API level, gate closing", state: St::Closing, c: Rust, ..api_save },
        Rel { name: "detached region", detached: true, fs: Fs::Zero, c: Rust, ..api_save },
        Rel { name: "nested API levels", levels: &[AT, AT], c: Rust, after: &[AT], ..api_save },
        Rel { name: "inside an API gilstate level: a suspension", levels: &[AG], c: Rust, after: &[AG, S], ..api_save },
        Rel { name: "inside a drop-in level at the host's frame", levels: &[T], c: Rust, after: &[], ..api_save },
        Rel { name: "no region", levels: &[], c: Rust, ..api_save },
        Rel { name: "no slot", levels: &[], slot: false, c: Rust, ..api_save },
        Rel { name: "outermost API level", ..api_rel },
        Rel { name: "outermost API level, gate closing", state: St::Closing, c: Rust, ..api_rel },
        Rel { name: "NULL thread state", ts: Ts::Null, c: Rust, after: &[AT], ..api_rel },
        Rel { name: "outermost API gilstate level", ..api_gil },
        Rel { name: "API release not published (PEP 788 path)", published: false, c: Rust, ..api_gil },
        Rel { name: "outermost API gilstate level, gate closing", state: St::Closing, c: Rust, ..api_gil },
        Rel { name: "inside an API thread-state level: not its level", levels: &[AT], c: Rust, after: &[AT], ..api_gil },
        Rel { name: "suspended gilstate region", levels: &[AG, S], c: Rust, after: &[], ..api_gil },
        Rel { name: "no region", levels: &[], c: Rust, ..api_gil },
        // Drop-in saves: the region rule.
        Rel { name: "host's level, thread state back at the host's frame: region closed", ..save },
        Rel { name: "gate closing: a save needs no admission", state: St::Closing, ..save },
        Rel { name: "detached level", detached: true, fs: Fs::Zero, ..save },
        Rel { name: "inside a gilstate level: a suspension", levels: &[G], c: Rust, after: &[G, S], ..save },
        Rel { name: "inside an API level: a suspension", levels: &[AT], c: Rust, after: &[AT, S], ..save },
        Rel { name: "already suspended", levels: &[T, S], c: Rust, after: &[T, S], ..save },
        Rel { name: "nested drop-in levels", levels: &[T, T], c: Rust, after: &[T], ..save },
        Rel { name: "no region", levels: &[], ..save },
        Rel { name: "no slot", levels: &[], slot: false, ..save },
        Rel { name: "call from CPython's code", ra: Ra::Py, after: &[T], ..save },
        Rel { name: "from gilgate's code inside a gilstate level", ra: Ra::Own, levels: &[G], after: &[G], ..save },
        Rel { name: "from gilgate's code at the host's level", ra: Ra::Own, after: &[T], known: Some((SELF_SAVE, &[])), ..save },
        Rel { name: "CPython's thread", thread: CPYTHON, after: &[T], known: Some((CPYTHON_THREAD_SAVE, &[])), ..save },
        Rel { name: "save not published", published: false, c: Rust, ..save },
        Rel { name: "host's level, thread state back at the host's frame", ..rel },
        Rel { name: "inside a gilstate level", levels: &[G], c: Rust, after: &[G, S], ..rel },
        Rel { name: "call from CPython's code", ra: Ra::Py, after: &[T], ..rel },
        Rel { name: "from gilgate's code at the host's level", ra: Ra::Own, after: &[T], known: Some((SELF_SAVE, &[])), ..rel },
        Rel { name: "release not published", published: false, c: Rust, ..rel },
        Rel { name: "outermost drop-in gilstate level", ..gil },
        Rel { name: "outermost gilstate level, gate closing", state: St::Closing, ..gil },
        Rel { name: "detached gilstate level", detached: true, fs: Fs::Zero, ..gil },
        Rel { name: "a callback's release inside a suspended region", levels: &[T, S, G], c: Rust, after: &[T, S], ..gil },
        Rel { name: "inside a thread-state level: not its level", levels: &[T], c: Rust, after: &[T], ..gil },
        Rel { name: "suspended gilstate region", levels: &[G, S], c: Rust, after: &[], ..gil },
        Rel { name: "no region", levels: &[], ..gil },
        Rel { name: "no slot", levels: &[], slot: false, ..gil },
        Rel { name: "call from CPython's code", ra: Ra::Py, after: &[G], ..gil },
        Rel { name: "from gilgate's code inside a thread-state level", ra: Ra::Own, levels: &[T], after: &[T], ..gil },
        Rel { name: "from gilgate's code at the host's gilstate level", ra: Ra::Own, after: &[G],
              known: Some((SELF_SAVE, &[])), ..gil },
        Rel { name: "release not published", published: false, c: Rust, ..gil },
    ];
    // The save inside Python code (an extension's Py_BEGIN_ALLOW_THREADS), per frame layout.
    for ver in [(3, 8), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15)] {
        let (_, cf, _) = crate::cpython::frame_offsets(ver);
        for base in [save, rel] {
            v.push(Rel { name: "thread state executing Python: a suspension", ver, ts: Ts::InPython, after: &[T, S], ..base });
            v.push(Rel { name: "frame pointer set, word behind it NULL", ver, ts: Ts::FrameNotRunning,
                         after: if cf == NO_CFRAME { &[T, S] } else { &[] }, ..base });
        }
    }
    v
}

/// The Rust bookkeeping for the same release (the CPython call itself is not modelled).
fn rust_release(slot: &'static Slot, r: &Rel, ts: TState, ra: usize) {
    let s = if r.slot { Some(slot) } else { None };
    match r.op {
        // api.rs rs_save_thread / rs_release_thread (after their runtime checks).
        Op::ApiSave => {
            if let Some(s) = s {
                api::api_tstate_leave(s, ts);
            }
        }
        Op::ApiReleaseThread => {
            if let (Some(s), false) = (s, ts.is_null()) {
                api::api_tstate_leave(s, ts);
            }
        }
        // api.rs rs_gilstate_release (pep788::release is false off the PEP 788 path).
        Op::ApiGilRelease => {
            if let Some(s) = s.filter(|s| s.depth.load(SeqCst) > 0) {
                api::api_gilstate_leave(s);
            }
        }
        // dropin.rs save_impl / release_thread_impl: host_leave.
        Op::DropSave | Op::DropReleaseThread => {
            if let (Some(s), false) = (s, dropin::native(ra)) {
                dropin::saved(s, ts as *mut c_void);
            }
        }
        // dropin.rs gil_release_impl.
        Op::DropGilRelease => {
            if let (Some(s), false) = (s, dropin::native(ra)) {
                s.pop_through(KIND_GILSTATE);
            }
        }
    }
}

const GIL_STATE_ARG: c_int = 0x2a;

fn run_release_row(slot: &'static Slot, r: &Rel) {
    let ctx = format!("{:?} `{}` (CPython {:?}, levels {:?}, {:?}, {:?}, {:?})", r.op, r.name, r.ver, r.levels,
                      r.state, r.ts, r.ra);
    let (mem, ts) = Mem::new(r.ts, r.ver);
    let ra = r.ra.addr();
    let sp = &mem as *const Mem as usize + 8;
    let init = Init { levels: r.levels, fs: r.fs, retired: false, detached: r.detached };
    let setup = || {
        boundary::publish_frame_offsets(crate::cpython::frame_offsets(r.ver));
        for i in 0..PY_SLOTS {
            boundary::publish_py(i as i32, fake_py(i));
        }
        if !r.published {
            boundary::publish_py(r.op.py() as i32, null_mut());
        }
        hot().state.store(r.state.word(), SeqCst);
        set_thread_kind(r.thread);
        set_slot(slot, init);
        SAVE_RET.store(ts as usize, Relaxed);
        take_events();
    };

    setup();
    let before = snap(slot);
    if !r.slot {
        unset_slot();
    }
    // SAFETY: the fast releases with the arguments their exports pass; every function they can
    // reach is a fake of this file, and `ts` is NULL or this row's fake thread-state memory.
    let ret = unsafe {
        match r.op {
            Op::ApiSave => boundary::gg_api_save_thread() as usize,
            Op::ApiReleaseThread => {
                boundary::gg_api_release_thread(ts);
                0
            }
            Op::ApiGilRelease => {
                boundary::gg_api_gilstate_release(GIL_STATE_ARG);
                0
            }
            Op::DropSave => boundary::gg_drop_save_thread(ra, sp) as usize,
            Op::DropReleaseThread => {
                boundary::gg_drop_release_thread(ts, ra, sp);
                0
            }
            Op::DropGilRelease => {
                boundary::gg_drop_gilstate_release(GIL_STATE_ARG, ra, sp);
                0
            }
        }
    };
    if !r.slot {
        reset_slot(slot);
        assert!(no_slot_untouched(), "{ctx}: gg_no_slot was written");
    }
    let c_snap = snap(slot);
    let evs = take_events();
    assert_eq!(evs.len(), 1, "{ctx}: C made exactly one call: {evs:?}");
    let ev0 = evs[0];
    let c = if ev0.who.starts_with("rust ") { CRel::Rust } else { CRel::Local };

    setup();
    rust_release(slot, r, ts, ra);
    let r_snap = snap(slot);

    let both = format!("{ctx}: C {c:?} (event {ev0:?}) left {:?}, Rust left {:?}", levels_of(&c_snap), levels_of(&r_snap));
    assert_eq!(c, r.c, "{both}: the table says C {:?}", r.c);
    assert_eq!(levels_of(&r_snap), r.after, "{both}: the table says Rust leaves {:?}", r.after);
    match c {
        CRel::Local => {
            let (who, arg) = match r.op {
                Op::ApiSave | Op::DropSave => ("py save", 0),
                Op::ApiReleaseThread | Op::DropReleaseThread => ("py release_thread", ts as usize),
                Op::ApiGilRelease => ("py api gilstate_release", GIL_STATE_ARG as usize),
                Op::DropGilRelease => ("py gilstate_release", GIL_STATE_ARG as usize),
            };
            assert_eq!(ev0, Ev { who, args: [arg, 0, 0] }, "{both}: CPython's release called with the caller's argument");
            if matches!(r.op, Op::ApiSave | Op::DropSave) {
                assert_eq!(ret, ts as usize, "{both}: the saved thread state is returned");
            }
            match r.known {
                None => assert_eq!(c_snap, r_snap, "{both}: the slot after C and after Rust"),
                Some((_, c_after)) => {
                    assert_ne!(c_snap, r_snap, "{both}: a `known` row no longer differs: update the table");
                    assert_eq!(levels_of(&c_snap), c_after, "{both}");
                }
            }
        }
        CRel::Rust => {
            let (who, args, want) = match r.op {
                Op::ApiSave => ("rust save", [0, 0, 0], RS_SAVE),
                Op::ApiReleaseThread => ("rust release_thread", [ts as usize, 0, 0], 0),
                Op::ApiGilRelease => ("rust gilstate_release", [GIL_STATE_ARG as usize, 0, 0], 0),
                Op::DropSave => ("rust drop_save", [ra, sp, 0], RS_DROP_SAVE),
                Op::DropReleaseThread => ("rust drop_release_thread", [ts as usize, ra, sp], 0),
                Op::DropGilRelease => ("rust drop_gilstate_release", [GIL_STATE_ARG as usize, ra, sp], 0),
            };
            assert_eq!(ev0, Ev { who, args }, "{both}: deferred with the caller's arguments");
            assert_eq!(ret, want, "{both}: the Rust path's value is returned");
            assert_eq!(c_snap, before, "{both}: C left the slot as it was");
            assert!(r.known.is_none());
        }
    }
    set_slot(slot, Init { levels: &[], fs: Fs::Zero, retired: false, detached: false });
    drop(mem);
}

#[test]
fn releases_leave_the_slot_like_rust() {
    with_fakes(|| {
        let slot = gate::my_slot().unwrap();
        for r in &release_rows() {
            run_release_row(slot, r);
        }
    });
}

// ---- 3. the Python-frame test ----

#[test]
fn python_frame_test_matches_frame_of() {
    with_fakes(|| {
        for ver in [(3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15), (3, 16)] {
            let offs = crate::cpython::frame_offsets(ver);
            boundary::publish_frame_offsets(offs);
            for (t, word) in [(Ts::Main, 0), (Ts::FrameNotRunning, 0), (Ts::InPython, 1), (Ts::InPython, usize::MAX)] {
                let (mut mem, ts) = Mem::new(t, ver);
                if t == Ts::InPython && offs.1 != NO_CFRAME {
                    mem.frame[offs.1 as usize / 8] = word;
                }
                let rust = boundary::frame_of(ts as *mut c_void) != 0;
                // SAFETY: fake thread-state memory covering every offset frame_offsets gives.
                let c = unsafe { gg_probe_in_python(ts as *const c_void) } != 0;
                let want = match t {
                    Ts::Main => false,
                    Ts::FrameNotRunning => offs.1 == NO_CFRAME,
                    _ => true,
                };
                assert_eq!((c, rust), (want, want), "CPython {ver:?} {offs:?}, {t:?}: gg_in_python vs frame_of != 0");
            }
            // NULL: frame_of answers 0; gg_in_python is never handed one (the entries test NULL
            // first, the saves get CPython's non-NULL thread state).
            assert_eq!(boundary::frame_of(null_mut()), 0);
        }
    });
}

// ---- 4. caller origin ----

#[test]
fn caller_origin_matches_rust() {
    with_fakes(|| {
        let probe = |ra: usize| {
            // SAFETY: both probes only read gg_hot.
            unsafe { (gg_probe_from_cpython(ra) != 0, gg_probe_from_self(ra) != 0) }
        };
        let points = |lo: usize, hi: usize| {
            [0, lo.wrapping_sub(1), lo, lo.wrapping_add(1), hi.wrapping_sub(1), hi, hi.wrapping_add(1), usize::MAX]
        };
        let ranges = [
            ((PY_LO, PY_HI), (SELF_LO, SELF_HI)),
            ((0x1000, 0x2000), (0x2000, 0x3000)), // adjacent
            ((0x1000, 0x1001), (usize::MAX - 0x10, usize::MAX)), // one byte; up to the top
            ((0, 0), (0, 0)),                     // nothing published (no CPython yet; gilgate in the program)
            ((PY_LO, PY_HI), (0, 0)),
        ];
        for (py, own) in ranges {
            origin::set_ranges(py, own);
            let mut ras: Vec<usize> = points(py.0, py.1).to_vec();
            ras.extend(points(own.0, own.1));
            for ra in ras {
                let rust = (origin::in_cpython(ra), origin::in_self(ra));
                assert_eq!(probe(ra), rust, "ra {ra:#x}, CPython {py:x?}, gilgate {own:x?}: (gg_from_cpython, gg_from_self)");
                for k in [HOST, CPYTHON] {
                    set_thread_kind(k);
                    let c = rust.0 || rust.1 || k == CPYTHON;
                    assert_eq!(dropin::native(ra), c, "ra {ra:#x}, thread {k}: dropin::native");
                }
            }
        }
        origin::set_ranges((PY_LO, PY_HI), (SELF_LO, SELF_HI));
        // Through the real entries and releases: CPython's range boundaries decide forward vs fast.
        let api = fake_api();
        let slot = gate::my_slot().unwrap();
        for ra in [PY_LO - 1, PY_LO, PY_HI - 1, PY_HI, 0, usize::MAX] {
            let inside = (PY_LO..PY_HI).contains(&ra);
            let (c, rust) = if inside { (COut::Forward, ROut::Forward) } else { (COut::Fast, ROut::Fast) };
            for entry in [Entry::DropRestore, Entry::DropAcquire, Entry::DropEnsure] {
                run_entry_row(&api, slot, &Adm { name: "CPython range boundary", entry, ra: Ra::At(ra), c, rust, ..A }, true);
            }
            let after: &[u8] = if inside { &[KIND_TSTATE] } else { &[] };
            for op in [Op::DropSave, Op::DropReleaseThread] {
                let r = Rel { name: "CPython range boundary", op, levels: &[KIND_TSTATE], ra: Ra::At(ra), after, ..R };
                run_release_row(slot, &r);
            }
        }
    });
}

// ---- 3. PEP 788's ensure below 3.15 ----
//
// `gg788_compat_ensure` (x86-64, aarch64: <arch>/pep788_entries.S, the API's gilstate entry and
// pep788_compat.c's checks in one frame; portable-entries: pep788_compat.c `gg788c_ensure`) must
// be the API's gilstate entry behind PEP 788's own tests: for every API ensure row, with no
// thread state attached and a good guard of the main interpreter of this generation, it does
// exactly what `gg_api_gilstate_ensure` does (the same call into CPython, the same slot after) and
// returns the token of that level; whenever a PEP 788 test fails (a thread state attached, no
// guard, a bad magic, a guard of another interpreter or generation) or the API entry would defer
// to Rust, it defers to its own Rust body with the guard (the C entry: to the API's Rust path once
// PEP 788's tests passed) and leaves the slot as it was.

type Rs788 = extern "C" fn(*mut c_void) -> *mut c_void;
extern "C" {
    fn gg788_compat_ensure(guard: *mut c_void) -> *mut c_void;
    fn gg788c_publish(cur: Option<unsafe extern "C" fn() -> TState>, state: *const u64, ti: *mut c_void, disp: isize);
    fn gg_probe_788_tss(tss: *const usize);
    fn gg_probe_788_tp_at(p: *const usize);
    fn gg_probe_788_rs(rs: Option<Rs788>) -> Option<Rs788>;
}
const RS_788: usize = 0x7880;
static REAL_RS_788: Mutex<Option<Rs788>> = Mutex::new(None);
extern "C" fn rs_788(g: *mut c_void) -> *mut c_void {
    if std::thread::current().name() != Some("fastpath-equivalence") {
        // Another test's thread (the real body, which publishing the fake getter does not reach).
        let real = *REAL_RS_788.lock().unwrap_or_else(|e| e.into_inner());
        return real.map_or(null_mut(), |f| f(g));
    }
    ev("rust 788 ensure", g as usize, 0, 0);
    RS_788 as *mut c_void
}
std::thread_local! {
    /// What the fake getter returns: the row's "attached" (aarch64's assembly asks the getter).
    static ATTACHED_788: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
unsafe extern "C" fn cur_788() -> TState {
    ev("py getter", 0, 0, 0);
    ATTACHED_788.with(|a| a.get()) as TState
}

/// pep788_compat.rs `Guard`'s head (its offsets are asserted there and in pep788_compat.c).
#[repr(C)]
struct Guard788 {
    magic: u64,
    interp: usize,
    gen: u64,
    main: bool,
    key: u64,
    inner: usize,
}

#[test]
fn pep788_compat_entry_is_the_api_entry() {
    with_fakes(|| {
        // SAFETY: publishes a fake getter and the (swapped-in) state word; restored below.
        unsafe { gg788c_publish(Some(cur_788), hot().state.as_ptr() as *const u64, null_mut(), 0) };
        // SAFETY: swaps the entry's Rust body; put back below.
        *REAL_RS_788.lock().unwrap() = unsafe { gg_probe_788_rs(Some(rs_788)) };
        let slot = gate::my_slot().unwrap();
        let running = protocol::pack(protocol::RUNNING, GEN);
        let mut rows: Vec<Adm> = api_ensure_rows().into_iter().filter(|r| r.ts != Ts::Null).collect();
        for levels in [&[][..], &[KIND_API_GILSTATE][..], &[KIND_TSTATE, KIND_SUSPEND][..]] {
            for fs in [Fs::Current, Fs::Zero, Fs::Stale] {
                for state in [St::Running, St::Closing, St::Finalized, St::Unknown] {
                    for (retired, detached) in [(false, false), (true, false), (false, true)] {
                        rows.push(Adm { name: "sweep", entry: Entry::ApiEnsure, levels, fs, state, retired, detached, ..A });
                    }
                }
            }
        }
        // (attached, guard present, magic ok, key)
        let variants = [
            (false, true, true, running),
            (true, true, true, running),
            (false, false, true, running),
            (false, true, false, running),
            (false, true, true, u64::MAX),                               // another interpreter
            (false, true, true, protocol::pack(protocol::RUNNING, GEN - 1)), // an earlier generation
        ];
        // direct: aarch64's entry reads the thread-local at tpidr_el0 + gg788_tp_off (a proven
        // getter) instead of calling the getter; the other entries ignore that offset.
        for r in &rows {
            for direct in [false, true] {
            for &(attached, present, magic_ok, key) in &variants {
                let ctx = format!("`{}` (levels {:?}, {:?}, fast_state {:?}, retired {}, detached {}, published {}, \
                                   slot {}), attached {attached}, guard {present}, magic {magic_ok}, key {key:#x}, \
                                   direct {direct}",
                                  r.name, r.levels, r.state, r.fs, r.retired, r.detached, r.published, r.slot);
                let init = Init { levels: r.levels, fs: r.fs, retired: r.retired, detached: r.detached };
                let setup = || {
                    for i in 0..PY_SLOTS {
                        boundary::publish_py(i as i32, fake_py(i));
                    }
                    if !r.published {
                        boundary::publish_py(PY_API_ENSURE as i32, null_mut());
                    }
                    hot().state.store(r.state.word(), SeqCst);
                    set_slot(slot, init);
                    take_events();
                };
                let run = |f: &mut dyn FnMut() -> isize| {
                    setup();
                    if !r.slot {
                        unset_slot();
                    }
                    let ret = f();
                    if !r.slot {
                        reset_slot(slot);
                        assert!(no_slot_untouched(), "{ctx}: gg_no_slot was written");
                    }
                    (ret, snap(slot), take_events())
                };
                // The API entry.
                let mut out: c_int = -1;
                // SAFETY: the fast entry with a writable `out`; everything it reaches is a fake.
                let (_, api_snap, api_evs) = run(&mut || unsafe { boundary::gg_api_gilstate_ensure(&mut out) } as isize);
                let api_fast = api_evs.len() == 1 && api_evs[0].who == "py api ensure";
                // PEP 788's.
                let tss: usize = attached as usize;
                let mut g = Guard788 { magic: if magic_ok { GUARD788_MAGIC } else { 0x1234 }, interp: MAIN_INTERP,
                                       gen: GEN, main: key != u64::MAX, key, inner: 0 };
                let gp = if present { &mut g as *mut Guard788 as *mut c_void } else { null_mut() };
                // SAFETY: this thread's fake thread-local word, alive for the call.
                unsafe { gg_probe_788_tss(&tss) };
                // SAFETY: the same word, alive for the call; NULL: the getter path.
                unsafe { gg_probe_788_tp_at(if direct { &tss } else { std::ptr::null() }) };
                ATTACHED_788.with(|a| a.set(tss));
                let before = { setup(); snap(slot) };
                // SAFETY: the entry with a fake guard (or NULL); everything it reaches is a fake.
                let (ret, s788, evs) = run(&mut || unsafe { gg788_compat_ensure(gp) } as isize);
                // "Attached?" is the thread-local's word (x86-64, the C path) or the getter's
                // answer (aarch64's assembly: it never reads the thread-local): at most one ask.
                let asks = evs.iter().filter(|e| e.who == "py getter").count();
                assert!(asks <= 1, "{ctx}: the getter called {asks} times");
                assert!((cfg!(target_arch = "aarch64") && !direct) || asks == 0, "{ctx}: the thread-local was read, not the getter");
                let evs: Vec<Ev> = evs.into_iter().filter(|e| e.who != "py getter").collect();
                // SAFETY: back to "not known" for this thread.
                unsafe { gg_probe_788_tss(std::ptr::null()) };
                // SAFETY: back to "not proven".
                unsafe { gg_probe_788_tp_at(std::ptr::null()) };
                let pass = !attached && present && magic_ok && key == running;
                if pass && api_fast {
                    assert_eq!(evs, api_evs, "{ctx}: the same call into CPython as the API entry");
                    assert_eq!(s788, api_snap, "{ctx}: the slot after equals the API entry's");
                    assert_eq!(ret as usize, 4 | ((PY_API_ENSURE_RET as usize & 1) << 3), "{ctx}: the gilstate token");
                } else if pass && evs.len() == 1 && evs[0].who == "rust ensure" {
                    // The C entry (portable-entries) calls the API entry once PEP 788's tests
                    // passed, so the API's own deferral is its Rust path (which the Rust body
                    // would call too); its status (not OK here) is a NULL token.
                    assert_eq!(ret, 0, "{ctx}: the API's Rust path refused: NULL");
                    assert_eq!(s788, before, "{ctx}: the slot as it was");
                } else {
                    assert_eq!(evs, vec![Ev { who: "rust 788 ensure", args: [gp as usize, 0, 0] }],
                               "{ctx}: deferred to the Rust body with the guard (API fast: {api_fast})");
                    assert_eq!(ret as usize, RS_788, "{ctx}: the Rust body's value is returned");
                    assert_eq!(s788, before, "{ctx}: the slot as it was");
                }
                set_slot(slot, Init { levels: &[], fs: Fs::Zero, retired: false, detached: false });
            }
            }
        }
        // SAFETY: as above: the real body and no getter (a unit-test process has no CPython).
        unsafe {
            gg_probe_788_rs(*REAL_RS_788.lock().unwrap());
            gg788c_publish(None, std::ptr::null(), null_mut(), 0);
        }
    });
}
