//! PyO3 0.30 extension module for the real-client suite (clients/README.md).
//!
//! start(n, callback): n "fresh" std::threads and n "owning" std::threads call `callback`.
//!   fresh:  each iteration `Python::attach` on a thread that is not attached (PyGILState_Ensure,
//!           after PyO3's own `Py_IsFinalizing` check on 3.13+; PyGILState_Release at the end),
//!           calls the callback.
//!   owning: one `Python::attach` for the thread's life; each iteration `py.detach` (PyEval_SaveThread
//!           ... PyEval_RestoreThread) while blocking on a host std::sync::Mutex, callback with the
//!           GIL and the host mutex held, unlock.
//! stop(): sets the flag, joins every thread inside `py.detach`.
//! counts(): (started, finished, calls); a worker increments `finished` only on a clean exit from
//!   its loop, so started != finished after stop() means a thread vanished (or panicked).
//! Called from Python's own daemon threads (variants daemon, daemon-cb: threading.Thread(daemon=True)
//! calling these in a loop while the main thread returns):
//!   blocking(ms, obj): `py.detach` (PyEval_SaveThread ... PyEval_RestoreThread in the drop of
//!     PyO3's SuspendAttach guard) around ms of blocking work (a sleep), with two objects alive
//!     across it: an `Arc<Holder>` holding `obj` (a `Py<PyAny>`; one clone moved into the closure)
//!     and a fresh `Bound` list owned by this frame alone. When CPython 3.8-3.13 end the thread
//!     with pthread_exit in that restore, the forced unwind runs this frame's drop glue without a
//!     thread state: Holder's Drop and the Arc (PyO3 0.30 defers the Py<PyAny>'s decref to its
//!     pool: quiet on its own), and the list's Py_DECREF to zero, a dealloc without the GIL.
//!   blocking_cb(ms, cb): inside `py.detach`, half the sleep, then `Python::attach` (the thread's
//!     own state: PyGILState_Ensure) calling the Python callback cb, then the other half.
//!   holder_drops(): how many Holders were dropped.
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use std::thread::JoinHandle;

static STOP: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicI32 = AtomicI32::new(0);
static FINISHED: AtomicI32 = AtomicI32::new(0);
static CALLS: AtomicI64 = AtomicI64::new(0);
/// Never dropped: rude programs exit with the threads running.
static CB: OnceLock<Py<PyAny>> = OnceLock::new();
static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
static HOST: Mutex<()> = Mutex::new(());

/// The host mutex's guard crosses `py.detach` (which wants Send results) but never leaves the
/// thread: detach runs its closure on the calling thread.
struct HostGuard(#[allow(dead_code)] MutexGuard<'static, ()>);
unsafe impl Send for HostGuard {}

fn call_cb(py: Python<'_>) {
    match CB.get().expect("start() sets the callback").call0(py) {
        Ok(_) => {
            CALLS.fetch_add(1, Relaxed);
        }
        Err(e) => e.write_unraisable(py, None),
    }
}

fn fresh_worker() {
    STARTED.fetch_add(1, SeqCst);
    while !STOP.load(SeqCst) {
        Python::attach(call_cb);
    }
    FINISHED.fetch_add(1, SeqCst);
}

fn owning_worker() {
    STARTED.fetch_add(1, SeqCst);
    Python::attach(|py| {
        while !STOP.load(SeqCst) {
            let guard = py.detach(|| HostGuard(HOST.lock().unwrap_or_else(|e| e.into_inner())));
            call_cb(py); // GIL and host mutex both held
            drop(guard);
        }
    });
    FINISHED.fetch_add(1, SeqCst);
}

#[pyfunction]
fn start(n: i32, cb: Py<PyAny>) {
    let _ = CB.set(cb);
    STOP.store(false, SeqCst);
    let mut t = THREADS.lock().unwrap();
    for _ in 0..n {
        t.push(std::thread::spawn(fresh_worker));
        t.push(std::thread::spawn(owning_worker));
    }
}

#[pyfunction]
fn stop(py: Python<'_>) {
    STOP.store(true, SeqCst);
    py.detach(|| {
        let hs: Vec<JoinHandle<()>> = THREADS.lock().unwrap().drain(..).collect();
        for h in hs {
            let _ = h.join();
        }
    });
}

#[pyfunction]
fn counts() -> (i32, i32, i64) {
    (STARTED.load(SeqCst), FINISHED.load(SeqCst), CALLS.load(SeqCst))
}

static HOLDER_DROPS: AtomicI64 = AtomicI64::new(0);

/// Holds a Python object; its Drop runs on every way out of `blocking`, the forced unwind included.
struct Holder(#[allow(dead_code)] Py<PyAny>);
impl Drop for Holder {
    fn drop(&mut self) {
        HOLDER_DROPS.fetch_add(1, SeqCst);
    }
}

#[pyfunction]
fn blocking(py: Python<'_>, ms: u64, obj: Py<PyAny>) -> PyResult<usize> {
    let keep = Arc::new(Holder(obj));
    let inside = keep.clone();
    // A fresh object owned by this frame alone: dropping it is a Py_DECREF to zero (a dealloc).
    let local = pyo3::types::PyList::new(py, [ms])?;
    py.detach(move || {
        std::thread::sleep(Duration::from_millis(ms));
        drop(inside);
    });
    Ok(Arc::strong_count(&keep) + local.len())
}

#[pyfunction]
fn blocking_cb(py: Python<'_>, ms: u64, cb: Py<PyAny>) -> PyResult<()> {
    py.detach(|| {
        std::thread::sleep(Duration::from_millis(ms / 2));
        let r = Python::attach(|py| cb.call0(py).map(|_| ()));
        std::thread::sleep(Duration::from_millis(ms - ms / 2));
        r
    })
}

#[pyfunction]
fn holder_drops() -> i64 {
    HOLDER_DROPS.load(SeqCst)
}

#[pymodule]
fn gg_pyo3(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(blocking, m)?)?;
    m.add_function(wrap_pyfunction!(blocking_cb, m)?)?;
    m.add_function(wrap_pyfunction!(holder_drops, m)?)?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(counts, m)?)?;
    Ok(())
}
