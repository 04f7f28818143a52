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
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering::*};
use std::sync::{Mutex, MutexGuard, OnceLock};
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

#[pymodule]
fn gg_pyo3(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(counts, m)?)?;
    Ok(())
}
