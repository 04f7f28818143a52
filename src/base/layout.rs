// The shapes the C/assembly fast paths (src/c/) share with Rust: one definition.
// build.rs includes this file and writes `gg_layout.h` from it: every constant as a macro, and
// the C structures (`struct slot`, `struct gg_hot`, `struct gg_rust`) from the `*_C` tables with
// a `_Static_assert` per offset. The Rust structures (gate/slots.rs `Slot`, platform/boundary.rs
// `Hot` and `RustPaths`) assert the same offsets. Plain consts only.

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
/// `KIND_TSTATE`, where the Python frame recorded at its opening decides (see gate/region.rs).
pub const KIND_API_TSTATE: u8 = 1; // gilgate_restore_thread / gilgate_acquire_thread
pub const KIND_API_GILSTATE: u8 = 2; // gilgate_gilstate_ensure
pub const KIND_TSTATE: u8 = 3; // drop-in PyEval_RestoreThread/AcquireThread/AcquireLock, Swap(ts)
pub const KIND_GILSTATE: u8 = 4; // drop-in PyGILState_Ensure
pub const KIND_SUSPEND: u8 = 5; // an extension's save inside a level, until its restore

/// `struct gg_hot` offsets (bytes).
pub const HOT_STATE: usize = 0;
pub const HOT_FAST_BARRIER: usize = 8;
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

/// `RustPaths` (boundary.rs) = `struct gg_rust` (src/c/shared.c) field offsets: the assembly jumps
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

/// PEP 788 below 3.15 (exports/pep788_compat.rs `Guard`, read by src/c/pep788_compat.c and
/// <arch>/pep788_entries.S): a guard's magic (at offset 0) and the offset of its `key`.
pub const GUARD788_MAGIC: u64 = 0x6767_6775_6172_6431; // "gggguard1"
pub const GUARD788_KEY: usize = 32;

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

/// The C structures, field by field: (name, C declarator with `$` for the name, offset, size).
/// build.rs writes them in this order, padding the gaps, and asserts every offset and the size.
pub const SLOT_C: &[(&str, &str, usize, usize)] = &[
    ("depth", "_Atomic uint32_t $", SLOT_DEPTH, 4),
    ("kind0", "_Atomic uint32_t $", SLOT_KIND0, 4), // the kind of level 0 (kinds[0] unused)
    ("retired_gen", "_Atomic uint64_t $", SLOT_RETIRED_GEN, 8),
    ("entries", "_Atomic uint64_t $", SLOT_ENTRIES, 8),
    ("open_sp", "_Atomic uintptr_t $", SLOT_OPEN_SP, 8),
    ("in_use", "_Atomic uint8_t $", SLOT_IN_USE, 1),
    ("detached", "_Atomic uint8_t $", SLOT_DETACHED, 1),
    ("fast_state", "_Atomic uint64_t $", SLOT_FAST_STATE, 8),
    ("errno_ptr", "int *$", SLOT_ERRNO_PTR, 8), // the owner thread's errno (fixed per thread)
    ("saved_errno", "int $", SLOT_SAVED_ERRNO, 4), // errno at the armed call, put back on a kill
    ("kinds", "_Atomic uint8_t $[GG_LEVELS]", SLOT_KINDS, LEVELS),
    ("frames", "_Atomic uintptr_t $[GG_LEVELS]", SLOT_FRAMES, 8 * LEVELS),
];
pub const SLOT_C_SIZE: usize = SLOT_SIZE;

pub const HOT_C: &[(&str, &str, usize, usize)] = &[
    ("state", "_Atomic uint64_t $", HOT_STATE, 8),
    ("fast_barrier", "_Atomic uint32_t $", HOT_FAST_BARRIER, 4), // read by Rust only
    ("py", "void *_Atomic $[GG_PY_SLOTS]", HOT_PY, 8 * PY_SLOTS),
    ("text_lo", "_Atomic uintptr_t $", HOT_TEXT_LO, 8),
    ("text_hi", "_Atomic uintptr_t $", HOT_TEXT_HI, 8),
    ("main_interp", "void *_Atomic $", HOT_MAIN_INTERP, 8),
    ("frame_off", "_Atomic uint32_t $", HOT_FRAME_OFF, 4),
    ("cframe_off", "_Atomic uint32_t $", HOT_CFRAME_OFF, 4),
    ("self_lo", "_Atomic uintptr_t $", HOT_SELF_LO, 8),
    ("self_hi", "_Atomic uintptr_t $", HOT_SELF_HI, 8),
];
pub const HOT_C_SIZE: usize = HOT_SIZE;

pub const RUST_C: &[(&str, &str, usize, usize)] = &[
    ("restore", "int (*$)(void *tstate)", RUST_RESTORE, 8),
    ("acquire", "int (*$)(void *tstate)", RUST_ACQUIRE, 8),
    ("ensure", "int (*$)(int *out)", RUST_ENSURE, 8),
    ("save", "void *(*$)(void)", RUST_SAVE, 8),
    ("release_thread", "void (*$)(void *tstate)", RUST_RELEASE_THREAD, 8),
    ("gilstate_release", "void (*$)(int st)", RUST_GILSTATE_RELEASE, 8),
    ("killed", "int (*$)(struct slot *slot, int kind, int which)", RUST_KILLED, 8),
    ("drop_restore", "void (*$)(void *tstate, uintptr_t ra, uintptr_t sp)", RUST_DROP_RESTORE, 8),
    ("drop_acquire", "void (*$)(void *tstate, uintptr_t ra, uintptr_t sp)", RUST_DROP_ACQUIRE, 8),
    ("drop_ensure", "int (*$)(uintptr_t ra, uintptr_t sp)", RUST_DROP_ENSURE, 8),
    ("drop_save", "void *(*$)(uintptr_t ra, uintptr_t sp)", RUST_DROP_SAVE, 8),
    ("drop_release_thread", "void (*$)(void *tstate, uintptr_t ra, uintptr_t sp)", RUST_DROP_RELEASE_THREAD, 8),
    ("drop_gilstate_release", "void (*$)(int st, uintptr_t ra, uintptr_t sp)", RUST_DROP_GILSTATE_RELEASE, 8),
    ("drop_killed", "void (*$)(struct slot *slot, int kind, int which)", RUST_DROP_KILLED, 8),
];
pub const RUST_C_SIZE: usize = RUST_SIZE;
