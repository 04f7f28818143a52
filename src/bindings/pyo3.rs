//! PyO3 0.30 integration (cargo feature `pyo3`): PyO3's `Python<'py>` token over a GIL taken
//! through gilgate, so that attaching to a finalizing interpreter is an `Err`, not a killed or
//! parked thread.
//!
//! `Python::attach` cannot report that the interpreter is finalizing (`Python::try_attach` checks
//! `Py_IsFinalizing` first, and says itself that the check races), and on CPython 3.8-3.13 the
//! `pthread_exit` inside `PyGILState_Ensure`/`PyEval_RestoreThread` starts a forced unwind
//! through Rust frames that aborts the process. [`attach`] takes the GIL with
//! `gilgate_gilstate_ensure` instead.
//!
//! How the token is made: after a successful `gilgate_gilstate_ensure` the thread holds the GIL,
//! so [`attach`] hands the closure `Python::assume_attached()` (PyO3's documented way to create a
//! token for a GIL acquired outside PyO3); the closure's higher-ranked lifetime keeps it, and
//! every `Bound<'py, _>` made from it, inside the call. PyO3's own per-thread attach count is not
//! raised, on purpose: [`detach`] must be able to release the GIL with PyO3 still regarding the
//! thread as detached, or code in its closure calling `Python::attach` would believe the GIL
//! held. Two consequences: a `Py<T>` dropped inside [`attach`] is queued in PyO3's reference pool
//! (released by the next attach, ours included: [`attach`] drains it first), and with PyO3's
//! `py-clone` feature `Py::clone` panics there (use `clone_ref(py)`).
//!
//! PyO3 with `auto-initialize`, or any embedding, links libpython into the executable; the
//! `gilgate` rlib linked beside it interposes `pthread_exit`/`pause` (see the crate's `safe`
//! module docs), so a kill inside the entry is caught. Tested by `clients/pyo3-host`
//! (`harness/tests/rust_host.rs`) on every CPython PyO3 0.30 supports here.
//!
//! An embedding host (these examples run: PyO3 links libpython into the doctest, which starts
//! CPython itself; `test.sh` runs them against a pyenv CPython):
//!
//! ```
//! use gilgate::pyo3::attach;
//! use pyo3::prelude::*;
//!
//! Python::initialize(); // Py_InitializeEx, then the main thread releases the GIL
//! let v: PyResult<i64> = attach(|py| py.eval(c"6 * 7", None, None)?.extract()).unwrap();
//! assert_eq!(v.unwrap(), 42);
//!
//! // Finalize through gilgate (the drain first): the caller holds the GIL, as for Py_FinalizeEx.
//! let gil = gilgate::Gil::ensure().unwrap();
//! assert_eq!(gilgate::finalize().unwrap(), 0);
//! drop(gil); // gilgate skips the release CPython must not see any more
//!
//! // From now on attaching is an error, and the thread is intact.
//! let e = attach(|py| py.version().to_string()).unwrap_err();
//! assert_eq!(e.status(), gilgate::status::GILGATE_ERR_NOT_INITIALIZED);
//! println!("{e}");
//! ```

use crate::safe::{allow_threads, Error, Gil};
use ::pyo3::marker::Ungil;
use ::pyo3::Python;

/// Run `f` with a `Python<'py>` token while holding the GIL taken through gilgate
/// (`gilgate_gilstate_ensure`, released when `f` returns or panics), or return why the GIL
/// could not be taken: then `f` did not run and the thread holds nothing. `Err` from a
/// [`detach`] inside `f` is `f`'s to return.
///
/// Works on a thread that is already attached too (nested: the gilstate counter goes up).
///
/// Keep each `attach` short, and loop around it rather than inside it: `attach` is one gated
/// region, and `gilgate::finalize` (or CPython's own finalization) drains, i.e. waits for every
/// thread inside a region to leave it, up to the drain timeout (2 s by default,
/// `GILGATE_DRAIN_TIMEOUT_MS`). Inside the region, [`detach`]'s re-acquire is not refused while
/// the drain waits, so that the region can finish. A thread that stays in one `attach` for its
/// whole life holds finalization up to the timeout, then meets CPython's kill: the policy
/// (`GILGATE_ON_FINALIZE`, a park by default) where it is outside a gilgate
/// entry, `Err` from [`detach`] where it is inside one.
///
/// ```
/// use gilgate::pyo3::attach;
/// use pyo3::prelude::*;
/// fn answer() -> Result<i64, Box<dyn std::error::Error>> {
///     // The outer `?` is gilgate's error (no GIL), the inner one Python's.
///     Ok(attach(|py| py.eval(c"6 * 7", None, None)?.extract::<i64>())??)
/// }
/// // CPython is linked (PyO3) but not initialized yet: refused, the closure did not run.
/// let e = answer().unwrap_err();
/// assert!(e.to_string().starts_with("GILGATE_ERR_NOT_INITIALIZED"), "{e}");
/// pyo3::Python::initialize();
/// assert_eq!(answer().unwrap(), 42);
/// ```
pub fn attach<F, R>(f: F) -> Result<R, Error>
where
    F: for<'py> FnOnce(Python<'py>) -> R,
{
    let gil = Gil::ensure()?;
    // Release the `Py<T>`s queued while detached (as PyO3's own attach does): a nested,
    // checked-by-us attach on a thread that holds the GIL, so PyGILState_Ensure only counts up.
    // SAFETY: the GIL is held and the runtime is not finalizing (gilgate's ensure succeeded;
    // gilgate's drain keeps finalization from starting while this thread is in its region),
    // which is when `Python::attach` would succeed.
    unsafe { Python::attach_unchecked(|_| ()) };
    // SAFETY: this thread holds the GIL until `gil` drops after `f` returns (or unwinds); the
    // token cannot outlive `f`: `F` must accept any `'py`, so neither the token nor anything
    // borrowed from it can be in `R`.
    let py = unsafe { Python::assume_attached() };
    let r = f(py);
    drop(gil);
    Ok(r)
}

/// Release the GIL while `f` runs (`gilgate_save_thread`), then take it back
/// (`gilgate_restore_thread`): `py.detach(f)` with a fallible end. `Ok`: the GIL is held again.
/// The enclosing [`attach`]'s region stays open: while gilgate drains before finalization the
/// re-acquire is allowed (the region is being waited for), so `Err` comes only after a drain
/// timed out. `Err` (the interpreter is finalizing): the GIL is NOT held any more and `f`'s value has been
/// dropped (a lock guard it returned is released): return from the [`attach`] closure with the
/// error, touching nothing of Python's on the way.
///
/// Unlike `py.detach`, `T` need not be `Send`: `f` runs on this thread, and without the GIL it
/// cannot make a Python reference that outlives it; so a `MutexGuard` can come back.
///
/// # Safety
/// - `py` comes from [`attach`] on this thread, not from PyO3's own `Python::attach`, a
///   `#[pyfunction]`, or `py.detach` (PyO3 would count the thread as attached while `f` runs,
///   and code in `f` calling `Python::attach` would use Python without the GIL).
/// - On `Err`, no Python object may be used or dropped before the [`attach`] closure returns:
///   no `Bound<'py, _>` may be alive across the call (a `Py<T>` may: PyO3 queues its drop).
///
/// ```
/// use gilgate::pyo3::{attach, detach};
/// use std::sync::Mutex;
/// static HOST: Mutex<u32> = Mutex::new(0);
///
/// pyo3::Python::initialize();
/// let r = attach(|py| -> Result<u32, gilgate::Error> {
///     // Blocks on the host lock without the GIL; then holds both.
///     // SAFETY: `py` is attach's; no Bound lives across the call.
///     let mut guard = unsafe { detach(py, || HOST.lock().unwrap()) }?;
///     *guard += 1;
///     Ok(*guard)
/// });
/// assert_eq!(r.unwrap().unwrap(), 1);
/// ```
pub unsafe fn detach<T, F>(py: Python<'_>, f: F) -> Result<T, Error>
where
    F: Ungil + FnOnce() -> T,
{
    let _ = py;
    // SAFETY: the thread holds the GIL (it has `py`, from `attach`), PyO3 does not count it as
    // attached (caller's contract), and `F: Ungil` keeps Python references out of `f`.
    unsafe { allow_threads(f) }
}
