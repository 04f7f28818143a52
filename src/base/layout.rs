// The shapes the C/assembly fast paths (src/c/armed.c) share with Rust: one definition.
// Included by build.rs, which writes them as `gg_layout.h` for armed.c, and by gate.rs, which
// asserts that `Slot` really has these offsets. Plain consts only (build.rs includes this file).

/// Levels a slot records with their kind; deeper nesting is counted but not typed.
pub const LEVELS: usize = 16;

/// `Slot` field offsets (bytes).
pub const SLOT_DEPTH: usize = 0;
/// Kind of level 0, next to `depth`: the fast releases test both with one 64-bit compare.
pub const SLOT_KIND0: usize = 4;
pub const SLOT_RETIRED_GEN: usize = 8;
pub const SLOT_ENTRIES: usize = 16;
pub const SLOT_OPEN_SP: usize = 24;
pub const SLOT_IN_USE: usize = 32;
pub const SLOT_DETACHED: usize = 33;
pub const SLOT_FAST_STATE: usize = 40;
pub const SLOT_ERRNO_PTR: usize = 48;
pub const SLOT_SAVED_ERRNO: usize = 56;
pub const SLOT_KINDS: usize = 64;
pub const SLOT_FRAMES: usize = SLOT_KINDS + LEVELS;
pub const SLOT_SIZE: usize = SLOT_FRAMES + 8 * LEVELS;

/// Level kinds (`Slot::kinds`). What may close a level follows from its kind alone, except for
/// `KIND_TSTATE`, where the Python frame recorded at its opening decides (see gate.rs).
pub const KIND_API_TSTATE: u8 = 1; // gilgate_restore_thread / gilgate_acquire_thread
pub const KIND_API_GILSTATE: u8 = 2; // gilgate_gilstate_ensure
pub const KIND_TSTATE: u8 = 3; // drop-in PyEval_RestoreThread/AcquireThread/AcquireLock, Swap(ts)
pub const KIND_GILSTATE: u8 = 4; // drop-in PyGILState_Ensure
pub const KIND_SUSPEND: u8 = 5; // an extension's save inside a level, until its restore

/// `struct gg_hot` offsets (bytes).
pub const HOT_STATE: usize = 0;
pub const HOT_PY: usize = 16;
pub const HOT_TEXT_LO: usize = 80;
pub const HOT_TEXT_HI: usize = 88;
pub const HOT_MAIN_INTERP: usize = 96;
pub const HOT_FRAME_OFF: usize = 104;
pub const HOT_CFRAME_OFF: usize = 108;
pub const HOT_SELF_LO: usize = 112;
pub const HOT_SELF_HI: usize = 120;
pub const HOT_SIZE: usize = 128;
/// `frame_off`/`cframe_off` meaning "no `_PyCFrame` indirection".
pub const NO_CFRAME: u32 = u32::MAX;

/// `Hot::py` indices: CPython's functions for the C fast paths (boundary.rs `publish_py`).
pub const PY_RESTORE: usize = 0;
pub const PY_ACQUIRE: usize = 1;
pub const PY_ENSURE: usize = 2;
pub const PY_SAVE: usize = 3;
pub const PY_RELEASE_THREAD: usize = 4;
pub const PY_GILSTATE_RELEASE: usize = 5;
/// The fallible API's gilstate pair: NULL while its Rust path must run every time (pep788.rs).
pub const PY_API_ENSURE: usize = 6;
pub const PY_API_GILSTATE_RELEASE: usize = 7;
pub const PY_SLOTS: usize = 8;

/// `RustPaths` (boundary.rs) = `struct gg_rust` (armed.c) field offsets: the assembly jumps
/// through them.
pub const RUST_RESTORE: usize = 0;
pub const RUST_ACQUIRE: usize = 8;
pub const RUST_ENSURE: usize = 16;
pub const RUST_SAVE: usize = 24;
pub const RUST_RELEASE_THREAD: usize = 32;
pub const RUST_GILSTATE_RELEASE: usize = 40;
pub const RUST_KILLED: usize = 48;
pub const RUST_DROP_RESTORE: usize = 56;
pub const RUST_DROP_ACQUIRE: usize = 64;
pub const RUST_DROP_ENSURE: usize = 72;
pub const RUST_DROP_SAVE: usize = 80;
pub const RUST_DROP_RELEASE_THREAD: usize = 88;
pub const RUST_DROP_GILSTATE_RELEASE: usize = 96;
pub const RUST_DROP_KILLED: usize = 104;
pub const RUST_SIZE: usize = 112;

/// Which fast entry CPython killed (`killed`/`drop_killed`'s third argument).
pub const WHICH_RESTORE: i32 = 0;
pub const WHICH_ACQUIRE: i32 = 1;
pub const WHICH_ENSURE: i32 = 2;

/// `gilgate_status` numbers the C side returns (status.rs asserts them).
pub const STATUS_OK: i32 = 0;
pub const STATUS_ERR_FINALIZING: i32 = 1;
pub const STATUS_ERR_NO_PYTHON: i32 = 3;

/// `gg_kill_hook` kinds (what CPython tried: the interposers say which).
pub const KILL_PTHREAD_EXIT: i32 = 1;
pub const KILL_PAUSE: i32 = 2;

/// The state word before anything happened: UNKNOWN, generation 1 (protocol.rs `pack`).
pub const INITIAL_STATE: u64 = 4;

/// Offset of `interp` in CPython's `struct _ts` (its third pointer, in every version here).
pub const TS_INTERP: usize = 16;

/// Thread kinds (origin.rs), read by the drop-in assembly.
pub const THREAD_HOST: i32 = 1;
pub const THREAD_CPYTHON: i32 = 2;

/// How `Hot::frame_off`/`cframe_off` lead to a thread state's Python frame (cpython.rs
/// `frame_offsets`): directly, through `_PyCFrame`, or 3.15's base-frame sentinel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameStyle {
    Direct,
    CFrame,
    Sentinel,
}
