//! The safe Rust API: RAII guards and `Result`s over the C API (`gilgate_*`), mirroring
//! `include/gilgate.hpp`. Everything here goes through the exported `extern "C"` functions, by
//! their C names, exactly as a Rust host declaring them itself would.
//!
//! # Linking: the kill interception in a Rust host
//!
//! Depend on the crate as usual (`gilgate = ...` in `Cargo.toml`): the `rlib` is linked into the
//! executable, and with it gilgate's `pthread_exit`/`pause` interposers, its CPython-compatible
//! drop-in exports and its library constructor. GNU ld exports a symbol defined in the executable
//! when a shared library on the link line refers to it, so `pthread_exit` and `pause` (referred to
//! by libc/libpython) and the drop-in `PyEval_*`/`PyGILState_*` (referred to by libpython, when
//! the executable links it, as PyO3's embedding does) land in the executable's dynamic symbol
//! table. The executable comes first in the lookup scope, so libpython's calls to `pthread_exit`
//! bind to gilgate's and a kill inside a gated entry becomes [`Error`] with
//! `GILGATE_ERR_FINALIZING`: the same guarantees as a C host linking `-lgilgate` ahead of
//! libpython, with nothing to add. Measured with `nm -D` on such executables and by the seed
//! scenario in `clients/pyo3-host` (tested by `harness/tests/rust_host.rs`), which asserts on
//! every CPython that the constructor reports `interposing pthread_exit/pause`.
//!
//! Consequences worth knowing: the drop-in exports make the whole process's
//! `PyEval_RestoreThread`/`PyGILState_Ensure`/... calls (PyO3's own `Python::attach` included)
//! go through gilgate's drop-in mode, where a refused entry that cannot report an error applies
//! the policy (`GILGATE_ON_FINALIZE`, a silent park by default) instead of killing the
//! thread. A Rust `cdylib` (a Python extension module) depending on the crate carries its own copy
//! of gilgate, loaded after libc and libpython: like `libgilgate.so` loaded late, it cannot
//! interpose, and only its gate and drain protect (not tested here; preloading `libgilgate.so`
//! as well would put a second, separate gilgate in the process).
//!
//! # Examples
//!
//! Without a CPython in the process (as in this doctest) every entry fails cleanly:
//!
//! ```
//! match gilgate::Gil::ensure() {
//!     Ok(_gil) => { /* call into Python; the GIL is released when `_gil` drops */ }
//!     Err(e) => {
//!         assert_eq!(e.status(), gilgate::status::GILGATE_ERR_NO_PYTHON);
//!         eprintln!("not calling into Python: {e}");
//!     }
//! }
//! ```

use crate::status::gilgate_status;
use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::c_int;

// The C API, by its exported names: the same declarations a Rust host would write.
use crate::{
    gilgate_finalize, gilgate_gilstate_ensure, gilgate_gilstate_release, gilgate_restore_thread,
    gilgate_runtime_status, gilgate_save_thread, gilgate_status_str,
};

/// CPython's `PyThreadState` (`struct _ts`), opaque. Cast from your bindings' type, e.g.
/// `ptr.cast::<gilgate::PyThreadState>()` from `pyo3::ffi::PyThreadState`.
#[repr(C)]
pub struct PyThreadState {
    _private: [u8; 0],
    _not_send_sync: PhantomData<*mut u8>,
}

/// Why a gilgate call did not acquire anything: a non-OK [`gilgate_status`].
///
/// The thread that gets one holds no GIL and owes no release.
/// `Display` gives the same text as the C `gilgate_status_str`.
///
/// ```
/// use gilgate::status::*;
/// let e = gilgate::Error::from_status(GILGATE_ERR_FINALIZING).unwrap();
/// assert!(e.is_finalizing());
/// assert_eq!(e.to_string(), "GILGATE_ERR_FINALIZING: the Python interpreter is finalizing");
/// assert!(gilgate::Error::from_status(GILGATE_OK).is_none());
/// let boxed: Box<dyn std::error::Error> = Box::new(e);
/// assert!(boxed.to_string().starts_with("GILGATE_ERR_FINALIZING"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Error {
    status: gilgate_status,
}

impl Error {
    /// `None` for `GILGATE_OK`, else the error.
    pub fn from_status(status: gilgate_status) -> Option<Error> {
        (status != gilgate_status::GILGATE_OK).then_some(Error { status })
    }

    /// The C status code (never `GILGATE_OK`).
    pub fn status(&self) -> gilgate_status {
        self.status
    }

    /// The interpreter is finalizing (or gilgate is draining before finalization): Python is
    /// going away; stop calling in.
    pub fn is_finalizing(&self) -> bool {
        self.status == gilgate_status::GILGATE_ERR_FINALIZING
    }

    /// The message of `gilgate_status_str`.
    pub fn message(&self) -> &'static str {
        // SAFETY: gilgate_status_str returns a static NUL-terminated ASCII string, never NULL.
        let s = unsafe { CStr::from_ptr(gilgate_status_str(self.status as c_int)) };
        s.to_str().unwrap_or("GILGATE_ERR_UNKNOWN")
    }
}

fn check(status: gilgate_status) -> Result<(), Error> {
    match Error::from_status(status) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gilgate::Error({:?})", self.status)
    }
}

impl std::error::Error for Error {}

/// The GIL, held through `gilgate_gilstate_ensure` (the fallible `PyGILState_Ensure`) until
/// dropped (`gilgate_gilstate_release`). For threads Python did not create, and for code that
/// may or may not hold the GIL already. `!Send`: it must be dropped on the thread that made it;
/// nested guards must be dropped in reverse order (as Rust drops locals).
///
/// ```
/// fn call_into_python() -> Result<(), gilgate::Error> {
///     let _gil = gilgate::Gil::ensure()?;   // Err: the thread holds nothing, owes nothing
///     // ... Python C API calls ...
///     Ok(())
/// }                                          // released here
/// // No CPython in this doctest's process:
/// let err = call_into_python().unwrap_err();
/// assert_eq!(err.status(), gilgate::status::GILGATE_ERR_NO_PYTHON);
/// ```
#[must_use = "the GIL is released when the guard is dropped"]
pub struct Gil {
    state: c_int,
    _not_send: PhantomData<*mut u8>,
}

impl Gil {
    /// Take the GIL (creating a thread state for this thread if it has none), or say why not:
    /// `GILGATE_ERR_FINALIZING`, `GILGATE_ERR_NOT_INITIALIZED`, `GILGATE_ERR_NO_PYTHON`, ...
    /// After `GILGATE_ERR_FINALIZING` this thread's gilstate calls are refused until the runtime
    /// is re-initialized.
    pub fn ensure() -> Result<Gil, Error> {
        let mut state: c_int = 0;
        // SAFETY: a valid pointer to a local int; gilgate_gilstate_ensure has no other precondition.
        let rc = unsafe { gilgate_gilstate_ensure(&mut state) };
        check(rc).map(|()| Gil { state, _not_send: PhantomData })
    }

    /// Release now (same as dropping it).
    pub fn release(self) {}
}

impl Drop for Gil {
    fn drop(&mut self) {
        // SAFETY: pairs with the successful gilgate_gilstate_ensure that made this guard, on the
        // same thread (`Gil` is !Send); gilgate ignores it if the runtime is gone.
        unsafe { gilgate_gilstate_release(self.state) }
    }
}

/// A caller-owned thread state attached through `gilgate_restore_thread` (the fallible
/// `PyEval_RestoreThread`) until dropped (`gilgate_save_thread`, which detaches it again).
/// `!Send`.
///
/// ```
/// // A null thread state is refused before anything else.
/// // SAFETY: nothing to uphold for a null pointer: it is rejected.
/// let r = unsafe { gilgate::ThreadState::restore(std::ptr::null_mut()) };
/// assert_eq!(r.err().unwrap().status(), gilgate::status::GILGATE_ERR_NULL_ARGUMENT);
/// ```
#[must_use = "the thread state is detached when the guard is dropped"]
pub struct ThreadState {
    tstate: *mut PyThreadState,
}

impl ThreadState {
    /// Attach `tstate` and take the GIL, or say why not (the thread then holds nothing). After
    /// `GILGATE_ERR_FINALIZING`, do not use `tstate` again: CPython 3.14+ may already have
    /// freed it, and the runtime reclaims it.
    ///
    /// # Safety
    /// `tstate` is null or a thread state of this process's CPython runtime (from
    /// `PyThreadState_New` or an earlier save) that is not attached to any thread, and that the
    /// caller owns.
    pub unsafe fn restore(tstate: *mut PyThreadState) -> Result<ThreadState, Error> {
        // SAFETY: the caller's contract above is gilgate_restore_thread's.
        check(unsafe { gilgate_restore_thread(tstate.cast()) }).map(|()| ThreadState { tstate })
    }

    /// The thread state passed to [`ThreadState::restore`].
    pub fn as_ptr(&self) -> *mut PyThreadState {
        self.tstate
    }

    /// Detach now and give the thread state back, for a later [`ThreadState::restore`]
    /// (null if there was no live runtime to detach from).
    pub fn save(self) -> *mut PyThreadState {
        let _no_drop = std::mem::ManuallyDrop::new(self);
        // SAFETY: this guard attached a thread state on this thread (ThreadState is !Send).
        unsafe { gilgate_save_thread() }.cast()
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        let _ = unsafe { gilgate_save_thread() };
    }
}

/// `Py_BEGIN_ALLOW_THREADS` ... `Py_END_ALLOW_THREADS` with a fallible end: release the GIL held
/// by this thread (`gilgate_save_thread`), run `f`, take it back (`gilgate_restore_thread`).
///
/// `Ok(value)`: `f` ran and the GIL is held again. `Err`: the GIL is not held any more (the
/// interpreter is finalizing, or it was not held to begin with: then the runtime's status, or
/// `GILGATE_ERR_NULL_ARGUMENT` if the runtime is running); `f`'s value was dropped, so a lock
/// guard it returned is released: the thread holds nothing. Code holding a [`Gil`] or
/// [`ThreadState`] guard after an `Err` must not call into Python; dropping the guard is safe
/// (gilgate skips the release CPython must not see). If `f` panics, the GIL is taken back
/// before the unwinding goes on (the guards being unwound expect it held).
///
/// # Safety
/// The calling thread holds the GIL (through gilgate or otherwise: CPython's contract for
/// `PyEval_SaveThread`; gilgate only answers for it when there is no live runtime).
/// Nothing in `f` may use Python objects or assume the GIL is held, and no code (PyO3's
/// `Python::attach` included) may think this thread is attached while `f` runs. With PyO3 use
/// [`crate::pyo3::detach`], which upholds this.
///
/// ```
/// // Without a CPython in the process, nothing is released and the error says why.
/// // SAFETY: no runtime, so no GIL to hold; the closure does not touch Python.
/// let r = unsafe { gilgate::allow_threads(|| 6 * 7) };
/// assert_eq!(r.unwrap_err().status(), gilgate::status::GILGATE_ERR_NO_PYTHON);
/// ```
pub unsafe fn allow_threads<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    /// Re-acquires if `f` panics, so that the unwinding reaches the caller's guards (a [`Gil`]
    /// release) with the GIL held, as they expect. Forgotten on the normal path.
    struct OnUnwind(*mut PyThreadState);
    impl Drop for OnUnwind {
        fn drop(&mut self) {
            // SAFETY: the thread state this thread's gilgate_save_thread detached; a refusal
            // (finalizing) leaves the region marked, and its releases then skip CPython.
            let _ = unsafe { gilgate_restore_thread(self.0.cast()) };
        }
    }
    // SAFETY: releases the GIL this thread holds, or returns null and does nothing.
    let ts = unsafe { gilgate_save_thread() };
    let guard = (!ts.is_null()).then(|| OnUnwind(ts.cast()));
    let v = f();
    std::mem::forget(guard);
    if ts.is_null() {
        let rt = gilgate_runtime_status();
        return Err(Error::from_status(rt).unwrap_or(Error { status: gilgate_status::GILGATE_ERR_NULL_ARGUMENT }));
    }
    // SAFETY: `ts` is the thread state gilgate_save_thread just detached from this thread.
    check(unsafe { gilgate_restore_thread(ts) }).map(|()| v)
}

/// `Py_FinalizeEx` after gilgate's drain (`gilgate_finalize`): close the gate (new entries get
/// `GILGATE_ERR_FINALIZING`), wait up to the drain timeout for threads inside gated regions to
/// leave, then finalize. Returns `Py_FinalizeEx`'s result. The caller must hold the GIL, as for
/// `Py_FinalizeEx` (the main thread after `Py_Initialize`, for instance).
///
/// ```
/// // No CPython in this doctest's process:
/// assert_eq!(gilgate::finalize().unwrap_err().status(), gilgate::status::GILGATE_ERR_NO_PYTHON);
/// ```
pub fn finalize() -> Result<i32, Error> {
    let mut r: c_int = 0;
    check(gilgate_finalize(&mut r)).map(|()| r)
}

/// Advisory runtime state (`gilgate_runtime_status`): `Ok(())` while running. It can change
/// right after it returns; only the entries ([`Gil::ensure`], [`ThreadState::restore`]) are
/// race-free.
///
/// ```
/// assert_eq!(gilgate::runtime_status().unwrap_err().status(), gilgate::status::GILGATE_ERR_NO_PYTHON);
/// ```
pub fn runtime_status() -> Result<(), Error> {
    check(gilgate_runtime_status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::gilgate_status::*;

    #[test]
    fn error_messages_match_gilgate_status_str() {
        for s in [GILGATE_ERR_FINALIZING, GILGATE_ERR_NOT_INITIALIZED, GILGATE_ERR_NO_PYTHON,
                  GILGATE_ERR_NULL_ARGUMENT, GILGATE_ERR_INTERNAL, GILGATE_ERR_INVALID_ARGUMENT] {
            let e = Error::from_status(s).unwrap();
            // SAFETY: static NUL-terminated string.
            let c = unsafe { CStr::from_ptr(gilgate_status_str(s as c_int)) }.to_str().unwrap();
            assert_eq!(e.to_string(), c);
            assert_eq!(e.status(), s);
        }
        assert!(Error::from_status(GILGATE_OK).is_none());
    }
}
