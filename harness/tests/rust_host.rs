//! The seed's scenario as a Rust embedding host (clients/pyo3-host): gilgate linked as the rlib
//! into the executable, PyO3 0.30 through the `pyo3` feature (`gilgate::pyo3::{attach, detach}`),
//! main finalizing with `gilgate::finalize` while the workers call in. Per CPython that PyO3 0.30
//! supports (3.9-3.15), built once per CPython and cached by content (see `build`) and
//! run under a watchdog.
//!
//! Asserted:
//! - the executable exports `pthread_exit` and `pause` (gilgate's, from the rlib) and gilgate's
//!   constructor says it is interposing them (`GILGATE_VERBOSE=1`);
//! - drained runs (modes `py`: the callback runs Python code; `nopy`: it only checks the GIL):
//!   exit 0, i.e. every worker ended with a gilgate error (FINALIZING or NOT_INITIALIZED), none
//!   vanished or panicked, every successful attach held the GIL, no region left open; no hang;
//! - drain disabled (`GILGATE_DRAIN_TIMEOUT_MS=0`, mode `nopy`): kills/parks land inside
//!   gilgate's entries; per CPython, gilgate logged at least one kill or park it caught inside
//!   an entry and returned as GILGATE_ERR_FINALIZING: the interposers work in a Rust executable. Where the gilstate calls
//!   take the PEP 788 path (3.15) and no run caught one, that is printed as NOT ASSERTED. The other no-drain runs are
//!   recorded, not asserted: with the drain off, threads reach CPython's late-finalization
//!   windows (e.g. `PyGILState_Ensure` creating a thread state while the runtime is torn down),
//!   which is exactly what the drain exists to prevent.
//!
//! Env: GILGATE_RUST_HOST_RUNS (default 3 per drained mode), GILGATE_RUST_HOST_NODRAIN_RUNS
//! (default 6; where none caught a kill or park, more one at a time until one does, at most
//! GILGATE_RUST_HOST_NODRAIN_MAX_EXTRA = 24), GILGATE_ONLY_PYTHONS, GILGATE_CACHE (builds under
//! $GILGATE_CACHE/clients/build/<python>/pyo3-host-<hash>, built in the shared
//! $GILGATE_CACHE/clients/build/pyo3-target).

use gilgate_harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Build clients/pyo3-host against `p`'s shared libpython; the executable's path. The build
/// runs in the target directory every CPython's PyO3 builds share (pyo3_target_dir), and the
/// executable is kept in `$GILGATE_CACHE/clients/build/<python>/pyo3-host-<hash>`, keyed by
/// everything that goes into it (PyO3's configuration, link flags, the host's sources, gilgate's
/// sources, rustc): a warm run builds nothing, a changed source rebuilds what cargo says.
fn build(p: &Python) -> Result<PathBuf, String> {
    let (a, b) = p.minor();
    // PyO3's build configuration, written out: the Debian trees' sysconfig names Debian's own
    // paths, not the tree's, so nothing is asked of the interpreter.
    let text = format!(
        "implementation=CPython\nversion={a}.{b}\nshared=true\nabi3=false\nlib_name=python{a}.{b}\nlib_dir={}\npointer_width=64\nbuild_flags=\nsuppress_build_script_link_lines=false\n",
        p.libdir.display()
    );
    // The linker flags the harness uses for C hosts (rpath; --allow-shlib-undefined for the
    // Debian unstable trees, whose libpython needs a newer glibc than the build machine's).
    // Passed to clients/pyo3-host/build.rs, which gives them to the executable only.
    let flags: Vec<String> = p.ldflags.iter().filter(|f| f.starts_with("-Wl,")).cloned().collect();
    let root = repo_root();
    let host = root.join("clients/pyo3-host");
    let sources = tree_bytes(&[host.clone(), root.join("src")], &[root.join("build.rs"), root.join("Cargo.toml"),
        root.join("cbindgen.toml")]);
    let h = content_hash(&[b"pyo3-host-1", text.as_bytes(), flags.join("\x1f").as_bytes(), &sources, rustc_version().as_bytes()]);
    let dir = cached(&p.name, "pyo3-host", &h, |d| {
        let cfg = d.join("pyo3-config.txt");
        std::fs::write(&cfg, &text).map_err(|e| e.to_string())?;
        let target_dir = pyo3_target_dir();
        let env = vec![("PYO3_CONFIG_FILE".to_string(), cfg.display().to_string()), ("GG_PY_LINK_ARGS".into(), flags.join("\x1f"))];
        let _held = cargo_lock();
        cargo_build(&host.join("Cargo.toml"), &target_dir, &env)?;
        std::fs::copy(target_dir.join("release/gg_pyo3_host"), d.join("gg_pyo3_host"))
            .map(|_| ()).map_err(|e| format!("copy gg_pyo3_host: {e}"))
    })?;
    Ok(dir.join("gg_pyo3_host"))
}

fn main() {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let d = discover();
    announce("gilgate Rust embedding host (clients/pyo3-host: the rlib + PyO3 0.30 via the pyo3 feature)", &d);
    let runs = env_u64("GILGATE_RUST_HOST_RUNS", 3);
    let nodrain_runs = env_u64("GILGATE_RUST_HOST_NODRAIN_RUNS", 6);

    let mut ready: Vec<(Python, PathBuf)> = vec![];
    for p in &d.found {
        if p.minor() < (3, 9) || p.minor() > (3, 15) {
            println!("  ABSENT {}: PyO3 0.30 supports CPython 3.9-3.15 (pyo3-ffi build.rs), not {}", p.name, p.version);
            continue;
        }
        let tb = Instant::now();
        match build(p) {
            Ok(exe) => {
                // The rlib's interposers must be in the executable's dynamic symbol table.
                let nm = Command::new("nm").args(["-D", "--defined-only"]).arg(&exe).output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
                let has = |s: &str| nm.lines().any(|l| l.ends_with(&format!(" T {s}")));
                let ok = has("pthread_exit") && has("pause");
                tally.case(&format!("{} executable exports gilgate's pthread_exit and pause", p.name), ok,
                    &format!("nm -D --defined-only {}: pthread_exit={} pause={}", exe.display(), has("pthread_exit"), has("pause")));
                println!("  {:26} built in {:.1}s: {}", p.name, tb.elapsed().as_secs_f64(), exe.display());
                ready.push((p.clone(), exe));
            }
            Err(e) => tally.case(&format!("{} build clients/pyo3-host", p.name), false, &e),
        }
    }

    // (python index, mode, drain on, run_us)
    let mut jobs: Vec<(usize, &'static str, bool, u64)> = vec![];
    let delays = [0u64, 3_000, 30_000, 1_000, 10_000, 100_000];
    for i in 0..ready.len() {
        for mode in ["py", "nopy"] {
            for k in 0..runs {
                jobs.push((i, mode, true, delays[k as usize % delays.len()]));
            }
        }
        for k in 0..nodrain_runs {
            jobs.push((i, "nopy", false, delays[k as usize % delays.len()]));
        }
    }
    let ready_r = ready.clone();
    let results = parallel(jobs.clone(), concurrency(), move |(i, mode, drain, us)| {
        let (p, exe) = &ready_r[i];
        let mut c = p.command(exe);
        c.args(["4", &us.to_string(), mode]).env("GILGATE_VERBOSE", "1");
        if !drain {
            c.env("GILGATE_DRAIN_TIMEOUT_MS", "0");
        }
        run(c, Duration::from_secs(60))
    });

    let mut nodrain: Vec<(u32, u32, u64, Vec<String>)> = vec![(0, 0, 0, vec![]); ready.len()];
    // CPythons where gilgate's gilstate calls take the PEP 788 path (3.15+): the guard refuses
    // the entry before CPython can kill or park, so there may be nothing to intercept.
    let mut pep788 = vec![false; ready.len()];
    for ((i, mode, drain, us), r) in jobs.iter().zip(&results) {
        let p = &ready[*i].0;
        let name = format!("{} pyo3-host {mode} run_us={us}{}", p.name, if *drain { "" } else { " drain=0" });
        let interposing = r.stderr.contains("interposing pthread_exit/pause") && !r.stderr.contains("NOT interposing");
        pep788[*i] |= r.stderr.contains("gilstate path: PEP 788 (");
        if *drain {
            let ok = matches!(r.outcome, Outcome::Clean(_)) && interposing;
            tally.case(&name, ok, &format!("{} (constructor said interposing: {interposing}) stdout: {} stderr: {}",
                r.outcome, r.stdout.trim(), stderr_tail(r, 6)));
        } else {
            account_nodrain(&mut nodrain[*i], r, "");
        }
    }
    // Interception must be seen once per CPython; with the drain off, whether a kill or park lands
    // inside an entry is up to the scheduler, so runs go on one at a time until one does (at most
    // GILGATE_RUST_HOST_NODRAIN_MAX_EXTRA more, each recorded like the others): the check cannot
    // fail by chance, only by gilgate not catching.
    let max_extra = env_u64("GILGATE_RUST_HOST_NODRAIN_MAX_EXTRA", 24);
    for (i, (p, exe)) in ready.iter().enumerate() {
        let mut k = 0;
        while nodrain_runs > 0 && nodrain[i].2 == 0 && !pep788[i] && k < max_extra {
            let us = delays[(k as usize + 1) % delays.len()];
            let mut c = p.command(exe);
            c.args(["4", &us.to_string(), "nopy"]).env("GILGATE_VERBOSE", "1").env("GILGATE_DRAIN_TIMEOUT_MS", "0");
            let r = run(c, Duration::from_secs(60));
            account_nodrain(&mut nodrain[i], &r, " (extra run)");
            k += 1;
        }
    }
    println!();
    for (i, (p, _)) in ready.iter().enumerate() {
        let (n, clean, caught, others) = &nodrain[i];
        if *n == 0 {
            continue;
        }
        println!("  {:26} drain disabled: {clean}/{n} clean; {caught} kills/parks caught inside entries (gilgate's log); other outcomes (recorded): {}",
            p.name, if others.is_empty() { "none".to_string() } else { others.join(", ") });
        if *caught == 0 && pep788[i] {
            // Not counted as a pass: said so.
            println!("  {:26} NOT ASSERTED: interception (no kill or park reached an entry: the gilstate path uses PEP 788 guards here)", p.name);
        } else {
            tally.case(&format!("{} kill/park interception exercised in the Rust executable", p.name), *caught > 0,
                "no drain-disabled run logged a kill or park caught inside an entry");
        }
    }
    for a in &d.absent {
        println!("  ABSENT CPython: {a}");
    }
    tally.finish(t0);
}

/// One drain-off run into (runs, clean, kills/parks caught, other outcomes). The catches are
/// gilgate's own account (GILGATE_VERBOSE=1) of each kill or park it caught inside an entry and
/// turned into GILGATE_ERR_FINALIZING: counted in every run, also in those that CPython later
/// ended itself (the drain that would prevent that is off).
fn account_nodrain(e: &mut (u32, u32, u64, Vec<String>), r: &RunResult, note: &str) {
    e.0 += 1;
    e.2 += r.stderr.lines().filter(|l| (l.contains("CPython tried to kill") || l.contains("CPython tried to park"))
        && l.contains("returned GILGATE_ERR_FINALIZING")).count() as u64;
    if matches!(r.outcome, Outcome::Clean(_)) {
        e.1 += 1;
    } else {
        let why = r.stderr.lines().find(|l| l.starts_with("Fatal Python error"))
            .map(|l| format!(" ({l})"))
            .unwrap_or_else(|| if r.stderr.contains("policy abort") { " (gilgate policy abort)".into() } else { String::new() });
        e.3.push(format!("{}{why}{note}", r.outcome));
    }
}
