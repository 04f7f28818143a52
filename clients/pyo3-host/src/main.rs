//! The seed's scenario (bpo-42969) as a Rust embedding host, through gilgate's safe API:
//! worker threads hold a host `std::sync::Mutex` around every call into Python while the main
//! thread finalizes the interpreter with `gilgate::finalize`.
//!
//! usage: gg_pyo3_host WORKERS RUN_US [py|nopy]
//!   nopy: the callback only checks the GIL, it runs no Python code: CPython never drops the GIL
//!   inside a region, so with the drain off (GILGATE_DRAIN_TIMEOUT_MS=0) the finalizing
//!   CPython's kills (3.8-3.13) or parks (3.14+) land inside gilgate's entries, where the
//!   interposers must turn them into errors (counted as kills/hangs).
//!   even workers ("fresh"):  lock their host mutex, `gilgate::pyo3::attach(|py| callback)`,
//!                            unlock; until attach returns an error.
//!   odd workers ("nested"):  each iteration one `gilgate::pyo3::attach`: callback, then
//!                            `gilgate::pyo3::detach(py, || lock the host mutex)`, callback with
//!                            the GIL and the mutex held, unlock; until attach (or detach)
//!                            returns an error. (Not one attach for the thread's life: the
//!                            drain waits for a region to end; src/pyo3.rs `attach` docs.)
//!   main: Python::initialize, start the workers, wait until each made a call, sleep RUN_US,
//!   `Gil::ensure` + `gilgate::finalize` while they call in, then the host's own shutdown: lock
//!   every worker's mutex (a vanished worker would hold its own forever: the harness's watchdog
//!   reports the hang), join every worker.
//! Prints `RESULT ok=N finalizing=N notinit=N other=N bad_ok=N vanished=N errors=N workers=N
//! kills=N hangs=N leaked=N interposing=0|1`; exit 0 only if every worker ended with an error
//! from gilgate, none vanished or panicked, every successful attach held the GIL.
use gilgate::pyo3::{attach, detach};
use gilgate::status::gilgate_status::*;
use pyo3::prelude::*;
use pyo3::types::PyModule;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

static CB: OnceLock<Py<PyAny>> = OnceLock::new();
static OK: AtomicI64 = AtomicI64::new(0);
static BAD_OK: AtomicI64 = AtomicI64::new(0);
static NOPY: AtomicBool = AtomicBool::new(false);
static HOST: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];
static FINISHED: [AtomicBool; 64] = [const { AtomicBool::new(false) }; 64];

/// The callback, with the GIL held: checks it is (PyGILState_Check), calls into Python.
fn call_cb(py: Python<'_>) {
    // SAFETY: PyGILState_Check only reads this thread's state.
    if unsafe { pyo3::ffi::PyGILState_Check() } == 0 {
        BAD_OK.fetch_add(1, SeqCst);
    } else {
        OK.fetch_add(1, Relaxed);
    }
    if NOPY.load(Relaxed) {
        return;
    }
    if let Err(e) = CB.get().unwrap().call0(py) {
        e.write_unraisable(py, None);
    }
}

fn fresh(i: usize, seen: &AtomicBool) -> gilgate::Error {
    loop {
        let g = HOST[i].lock().unwrap();
        let r = attach(|py| {
            call_cb(py);
            seen.store(true, SeqCst);
        });
        drop(g);
        if let Err(e) = r {
            return e;
        }
    }
}

fn nested(i: usize, seen: &AtomicBool) -> gilgate::Error {
    loop {
        let r = attach(|py| -> Result<(), gilgate::Error> {
            call_cb(py);
            // SAFETY: `py` is attach's, and no Bound lives across the call.
            let g = unsafe { detach(py, || HOST[i].lock().unwrap()) }?; // Err: no GIL, no mutex
            call_cb(py); // GIL and host mutex held
            seen.store(true, SeqCst);
            drop(g);
            Ok(())
        });
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => return e,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = args.get(1).and_then(|s| s.parse().ok()).filter(|n| (1..=64).contains(n)).expect("usage: gg_pyo3_host WORKERS RUN_US [py|nopy]");
    let run_us: u64 = args.get(2).and_then(|s| s.parse().ok()).expect("usage: gg_pyo3_host WORKERS RUN_US [py|nopy]");

    match args.get(3).map(String::as_str) {
        None | Some("py") => {}
        Some("nopy") => NOPY.store(true, SeqCst),
        Some(m) => panic!("unknown mode {m}"),
    }
    Python::initialize();
    let cb = attach(|py| -> PyResult<Py<PyAny>> {
        let m = PyModule::from_code(
            py,
            c"import time\ndef work():\n    s = 0\n    for i in range(50):\n        s += i\n    time.sleep(0)\n",
            c"gg_host_cb.py",
            c"gg_host_cb",
        )?;
        Ok(m.getattr("work")?.unbind())
    })
    .expect("attach before finalization")
    .expect("callback");
    let _ = CB.set(cb);

    let seen: &'static [AtomicBool] = Box::leak((0..workers).map(|_| AtomicBool::new(false)).collect());
    let mut hs = vec![];
    for i in 0..workers {
        let seen_i = &seen[i];
        hs.push(std::thread::spawn(move || {
            let e = if i % 2 == 0 { fresh(i, seen_i) } else { nested(i, seen_i) };
            FINISHED[i].store(true, SeqCst);
            e
        }));
    }
    // Every worker in its loop (made one call), then let them run.
    let t0 = std::time::Instant::now();
    while !seen.iter().all(|s| s.load(SeqCst)) {
        if t0.elapsed() > Duration::from_secs(20) {
            eprintln!("workers did not start calling in");
            std::process::exit(70);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(Duration::from_micros(run_us));

    // Finalize while they call in: the main thread takes the GIL through gilgate first.
    let gil = match gilgate::Gil::ensure() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("main ensure: {e}");
            std::process::exit(71);
        }
    };
    match gilgate::finalize() {
        Ok(_) => {}
        Err(e) => {
            eprintln!("finalize: {e}");
            std::process::exit(72);
        }
    }
    drop(gil);

    // The host's own shutdown: every worker's mutex, then every worker.
    for m in HOST.iter().take(workers) {
        drop(m.lock().unwrap_or_else(|p| p.into_inner()));
    }
    let (mut fin, mut notinit, mut other, mut vanished) = (0, 0, 0, 0);
    for (i, h) in hs.into_iter().enumerate() {
        match h.join() {
            Ok(e) if e.status() == GILGATE_ERR_FINALIZING => fin += 1,
            Ok(e) if e.status() == GILGATE_ERR_NOT_INITIALIZED => notinit += 1,
            Ok(e) => {
                eprintln!("worker {i}: unexpected error {e}");
                other += 1
            }
            Err(_) => {
                eprintln!("worker {i} panicked");
                other += 1
            }
        }
        if !FINISHED[i].load(SeqCst) {
            vanished += 1;
        }
    }
    let mut st = std::mem::MaybeUninit::<gilgate::stats::gilgate_stats>::zeroed();
    // A valid pointer to a gilgate_stats-sized buffer.
    let rc = gilgate::gilgate_stats(st.as_mut_ptr());
    // SAFETY: zero-initialised, then filled by gilgate_stats (plain integers).
    let st = unsafe { st.assume_init() };
    let (kills, hangs, leaked) = if rc == GILGATE_OK {
        (st.kills_intercepted as i64, st.hangs_intercepted as i64, st.open_regions as i64)
    } else {
        (-1, -1, -1)
    };
    let bad_ok = BAD_OK.load(SeqCst);
    println!(
        "RESULT ok={} finalizing={fin} notinit={notinit} other={other} bad_ok={bad_ok} vanished={vanished} errors={} workers={workers} kills={kills} hangs={hangs} leaked={leaked}",
        OK.load(SeqCst),
        fin + notinit
    );
    let bad = vanished > 0 || other > 0 || bad_ok > 0 || fin + notinit != workers || leaked != 0 || OK.load(SeqCst) == 0;
    std::process::exit(if bad { 1 } else { 0 });
}
