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
pub const HOT_SIZE: usize = 128;
/// `frame_off`/`cframe_off` meaning "no `_PyCFrame` indirection".
pub const NO_CFRAME: u32 = u32::MAX;

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
