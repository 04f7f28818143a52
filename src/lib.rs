//! gilgate: a fallible, finalization-safe front for CPython's thread-state API.
//!
//! CPython's `PyEval_RestoreThread`, `PyEval_AcquireThread`, `PyEval_AcquireLock` and
//! `PyGILState_Ensure` return nothing, yet kill the calling thread (`pthread_exit`, 3.8-3.13) or
//! hang it forever (3.14+) when the interpreter is finalizing. gilgate's entry points return a
//! status instead. docs/design.md has the design, the layers (one folder of src/ each: base,
//! platform, gate, lifecycle, exports, bindings), the life of a call and how to add an export.

#![allow(clippy::missing_safety_doc)]
// The C entry points take pointers from C and check them for NULL; `unsafe fn` would change
// nothing for their callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// Every unsafe block says why it is sound; test.sh runs clippy with these two denied.
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(unsafe_op_in_unsafe_fn)]

/// The one panic boundary, on every exported function and callback (rustls-ffi's
/// `ffi_panic_boundary!`): run `$body`; a panic becomes one line on fd 2 and the value
/// `OnPanic` chooses for the return type, instead of unwinding into C or CPython frames.
macro_rules! ffi_boundary {
    ($body:expr) => {{
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => {
                crate::log::panic_caught();
                crate::OnPanic::on_panic()
            }
        }
    }};
}

/// What an exported function returns when its body panicked.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}
impl OnPanic for () {
    fn on_panic() {}
}
impl OnPanic for bool {
    fn on_panic() -> bool {
        false
    }
}
impl OnPanic for std::os::raw::c_int {
    fn on_panic() -> Self {
        status::GILGATE_ERR_INTERNAL as Self
    }
}
impl OnPanic for status::gilgate_status {
    fn on_panic() -> Self {
        status::GILGATE_ERR_INTERNAL
    }
}
impl<T> OnPanic for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

/// Trampolines for naked exports: pass the caller's return address and stack pointer as the next
/// two arguments (after `$n` real ones), then jump to the implementation, which returns straight
/// to the caller.
#[cfg(target_arch = "x86_64")]
macro_rules! tramp {
    (0) => { "mov rdi, [rsp]\nlea rsi, [rsp + 8]\njmp {f}" };
    (1) => { "mov rsi, [rsp]\nlea rdx, [rsp + 8]\njmp {f}" };
}
#[cfg(target_arch = "aarch64")]
macro_rules! tramp {
    (0) => { "mov x0, x30\nmov x1, sp\nb {f}" };
    (1) => { "mov x1, x30\nmov x2, sp\nb {f}" };
}

// The layers, one folder each, each using only the folders above it (tests/layers.rs reads this
// order and the folders; docs/design.md's table says what each module does).
mod base;
mod platform;
mod gate;
mod lifecycle;
mod exports;
mod bindings;

// Crate paths by module name (`crate::cpython`, ...) and the public Rust API's module paths.
pub use base::{pytypes, status};
pub(crate) use base::{config, counters, layout, log};
pub use platform::cpython;
pub(crate) use platform::{boundary, origin};
pub use lifecycle::stats;
pub(crate) use lifecycle::{drain, guards, park, pep788};
pub use exports::{api, dropin, interpose, pep788_compat, policy};
pub(crate) use exports::dlsym;
pub use bindings::safe;
#[cfg(feature = "pyo3")]
pub use bindings::pyo3;

pub use api::*;
pub use policy::gilgate_policy;
pub use safe::{allow_threads, finalize, runtime_status, Error, Gil, PyThreadState, ThreadState};
pub use stats::gilgate_stats;
pub use status::{gilgate_status, gilgate_status_in};

extern "C" fn gilgate_init() {
    // No panic may escape a constructor either.
    ffi_boundary!({
        dlsym::init();
        api::register_rust_paths();
        interpose::init();
        origin::set_self_object();
        origin::init_find_object();
        gate::init_barrier();
        // Bind to a CPython that is already loaded (linked, or a python executable) now, in the
        // constructor, so that kill interception on paths that must not resolve or lock
        // (pthread_exit/pause) knows CPython's code. A CPython dlopen'ed later is found on the
        // first gilgate call.
        let _ = cpython::api();
        // Read every GILGATE_* variable now: a malformed one is reported once, at load.
        let _ = config::drain_timeout_ms();
        let _ = policy::current();
        // SAFETY: registering a plain extern "C" fn with libc's atexit.
        unsafe { libc::atexit(stats::print_at_exit) };
        // SAFETY: a child handler that only does atomic stores (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(gate::after_fork_child)) };
        // SAFETY: as above (atomic stores only).
        unsafe { libc::pthread_atfork(None, None, Some(park::after_fork_child)) };
        if config::get().verbose {
            log::Line::new()
                .s("loaded ").s(env!("CARGO_PKG_VERSION"))
                .s(if interpose::interposing() {
                    ": interposing pthread_exit/pause (kills in gated entries become errors)"
                } else {
                    ": NOT interposing pthread_exit/pause (loaded too late: dlopen?); only the gate and drain protect"
                })
                .s(if gate::fast_barrier() { "; membarrier on" } else { "; membarrier off (fenced entries)" })
                .s("; drain timeout ").u(config::drain_timeout_ms()).s(" ms")
                .s(pep788::describe(cpython::api_if_resolved()))
                .emit();
        }
    });
}

#[used]
#[link_section = ".init_array"]
static GILGATE_INIT: extern "C" fn() = gilgate_init;
