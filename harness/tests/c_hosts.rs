//! The C/C++ host tests, against every CPython on the machine (custom harness: the set of
//! versions is only known at run time). Prints which versions ran and which are absent, one line
//! per failure, a summary per version, and a closing `N passed, N failed` line.
//!
//! GILGATE_TEST_RUNS (default 48): seed-scenario runs through gilgate per CPython version.
//! GILGATE_DEBUG_TEST_RUNS (default 14): the same on the assertion-enabled (Py_DEBUG) builds.
//! GILGATE_RAW_TRIES (default 6): raw-CPython runs per version started at once; when none of
//!   them showed the harm, more are run one by one until one does (at most GILGATE_RAW_MAX_TRIES,
//!   default 40, in all), so the control does not fail by chance.
//! GILGATE_NODRAIN_RUNS (default 0: not part of the default run): drain-disabled seed runs per
//!   CPython, a stress command (docs/testing.md: their outcome set includes CPython's own
//!   failures, so they cannot be a pass/fail test that never fails by chance).
//!
//! Every seed run through gilgate gets GILGATE_DRAIN_TIMEOUT_MS=20000 (not the 2 s default) and a
//! 90 s watchdog: a drain that times out, or a run that does not end, is then a real hang, not a
//! starved machine (the regions of the seed host last micro- to milliseconds).

use gilgate_harness::*;
use std::time::{Duration, Instant};


enum Job {
    Seed { py: usize, exe: std::path::PathBuf, lang: Lang, run: SeedRun },
    /// The drain disabled (GILGATE_DRAIN_TIMEOUT_MS=0): threads already past the gate meet
    /// CPython's kill (3.9-3.13) or park (3.14+) inside their entry, which must be caught.
    NoDrain { py: usize, exe: std::path::PathBuf, lang: Lang, run: SeedRun },
    Raw { py: usize, exe: std::path::PathBuf, run: SeedRun },
    Edges { py: usize, exe: std::path::PathBuf },
    LateLoad { py: usize, exe: std::path::PathBuf },
    /// c_tests/entry_kill.c: a kill/park inside a thread's outermost fast entry, deterministic.
    EntryKill { py: usize, exe: std::path::PathBuf, mode: &'static str },
}

fn main() {
    let t0 = Instant::now();
    let runs = env_u64("GILGATE_TEST_RUNS", 48);
    let debug_runs = env_u64("GILGATE_DEBUG_TEST_RUNS", 14);
    let raw_tries = env_u64("GILGATE_RAW_TRIES", 6);
    let raw_max = env_u64("GILGATE_RAW_MAX_TRIES", 40).max(raw_tries);
    let d = discover();
    announce("gilgate C/C++ host tests (fallible API)", &d);
    let mut tally = Tally::default();
    let pys = d.found.clone();

    // A process with no CPython at all.
    let nopy = no_python_host();
    match nopy {
        Ok(exe) => {
            let r = run(native(&exe), Duration::from_secs(20));
            tally.case("no-python", matches!(r.outcome, Outcome::Clean(_)), &format!("{} {}", r.outcome, r.stderr));
            // Garbage in every GILGATE_* variable: one warning each, defaults, no crash.
            let mut c = native(&exe);
            c.env("GILGATE_VERBOSE", "banana").env("GILGATE_SHOW_STATS", "\u{7f}x").env("GILGATE_ON_FINALIZE", "explode")
                .env("GILGATE_DRAIN_TIMEOUT_MS", "-5");
            let r = run(c, Duration::from_secs(20));
            let warned = ["GILGATE_VERBOSE", "GILGATE_SHOW_STATS", "GILGATE_DRAIN_TIMEOUT_MS", "GILGATE_ON_FINALIZE"]
                .iter().all(|v| r.stderr.contains(&format!("ignoring malformed {v}")));
            tally.case("garbage GILGATE_* variables: warnings and defaults", matches!(r.outcome, Outcome::Clean(_)) && warned,
                &format!("{} stderr: {}", r.outcome, r.stderr));
        }
        Err(e) => tally.case("no-python (build)", false, &e),
    }

    // Build everything first (compiles run in parallel, two per core).
    let mut build_jobs = vec![];
    for (i, _) in pys.iter().enumerate() {
        for lang in Lang::ALL {
            build_jobs.push((i, "seed_host.c", lang, true));
            build_jobs.push((i, "seed_host.c", lang, false));
        }
        build_jobs.push((i, "api_edges.c", Lang::C, true));
        build_jobs.push((i, "late_load.c", Lang::C, false));
        build_jobs.push((i, "entry_kill.c", Lang::C, true));
    }
    let pys_b = pys.clone();
    let built = parallel(build_jobs.clone(), concurrency(), move |(i, src, lang, gg)| compile(&pys_b[i], src, lang, gg));
    let mut exe_of = std::collections::HashMap::new();
    let mut broken = std::collections::HashSet::new();
    for ((i, src, lang, gg), r) in build_jobs.into_iter().zip(built) {
        match r {
            Ok(exe) => {
                exe_of.insert((i, src, lang, gg), exe);
            }
            Err(e) => {
                tally.case(&format!("{} build {src} {} {}", pys[i].name, lang.tag(), if gg { "gilgate" } else { "raw" }), false, &e);
                broken.insert(i);
            }
        }
    }

    let mut jobs = vec![];
    for (i, p) in pys.iter().enumerate() {
        if broken.contains(&i) {
            continue;
        }
        let mut rng = Rng::new(0x5eed ^ (i as u64) << 32 ^ env_u64("GILGATE_TEST_SEED", 1));
        for k in 0..if p.debug { debug_runs } else { runs } {
            let lang = Lang::ALL[(k % 3) as usize];
            let mode = MODES[((k / 3) % MODES.len() as u64) as usize];
            let run = SeedRun {
                mode,
                workers: 1 + rng.below(8) as u32,
                delay_us: 1 + rng.below(30_000) as u32,
                cycles: if k % 5 == 4 { 3 } else { 1 },
                seed: rng.next() % 1_000_000,
            };
            // GILGATE_CASE: a case it does not select is not run (the seeds stay those of a full run).
            if wanted(&format!("{} seed {} {}", p.name, lang.tag(), run.describe())) {
                jobs.push(Job::Seed { py: i, exe: exe_of[&(i, "seed_host.c", lang, true)].clone(), lang, run });
            }
        }
        // 3.8 is left out: its take_gil waiters spin forever after Py_FinalizeEx and never reach
        // the kill, so without the drain nothing can save them (the drain is what protects 3.8).
        if p.minor() >= (3, 9) {
            for k in 0..env_u64("GILGATE_NODRAIN_RUNS", 0) {
                let lang = Lang::ALL[(k % 3) as usize];
                let run = SeedRun { mode: if k % 2 == 0 { "gilstate" } else { "tstate" }, workers: 6, delay_us: 20_000, cycles: 1, seed: 1000 + k };
                jobs.push(Job::NoDrain { py: i, exe: exe_of[&(i, "seed_host.c", lang, true)].clone(), lang, run });
            }
        }
        for k in 0..raw_tries {
            let lang = if k % 2 == 0 { Lang::C } else { Lang::CxxNoExc };
            let run = SeedRun { mode: "gilstate", workers: 4, delay_us: 20_000, cycles: 1, seed: k };
            if wanted(&format!("{} raw CPython shows the harm", p.name)) {
                jobs.push(Job::Raw { py: i, exe: exe_of[&(i, "seed_host.c", lang, false)].clone(), run });
            }
        }
        if wanted(&format!("{} api-edges (before init, after finalize, NULLs, 4 cycles, stats)", p.name)) {
            jobs.push(Job::Edges { py: i, exe: exe_of[&(i, "api_edges.c", Lang::C, true)].clone() });
        }
        if p.minor() >= (3, 9) {
            // gilgate_gilstate_ensure is no fast entry on 3.15+ (the PEP 788 path, which holds a
            // guard that lets the thread in during finalization: pep788.rs covers it).
            // pep788-ensure: PEP 788's ensure below 3.15 (gilgate_thread_state_ensure), whose
            // fast entry (x86-64, aarch64: <arch>/pep788_entries.S) serves 3.12-3.14.
            let modes: &[&'static str] = if p.minor() >= (3, 15) {
                &["api-restore", "dropin", "dropin-park"]
            } else if p.minor() >= (3, 12) {
                &["api-restore", "api-ensure", "pep788-ensure", "dropin", "dropin-park"]
            } else {
                &["api-restore", "api-ensure", "dropin", "dropin-park"]
            };
            for &mode in modes {
                if wanted(&format!("{} kill inside an outermost fast entry ({mode})", p.name)) {
                    jobs.push(Job::EntryKill { py: i, exe: exe_of[&(i, "entry_kill.c", Lang::C, true)].clone(), mode });
                }
            }
        }
        if wanted(&format!("{} late dlopen of gilgate + calls during Py_Initialize", p.name)) {
            jobs.push(Job::LateLoad { py: i, exe: exe_of[&(i, "late_load.c", Lang::C, false)].clone() });
        }
        let _ = p;
    }

    let pys_r = pys.clone();
    let results = parallel(jobs, concurrency(), move |job| {
        let (py, exe, args, timeout) = match &job {
            Job::Seed { py, exe, run, .. } => (*py, exe.clone(), run.args(), Duration::from_secs(90)),
            Job::NoDrain { py, exe, run, .. } => (*py, exe.clone(), run.args(), Duration::from_secs(30)),
            Job::Raw { py, exe, run, .. } => (*py, exe.clone(), run.args(), Duration::from_secs(4)),
            Job::Edges { py, exe } => (*py, exe.clone(), vec![], Duration::from_secs(30)),
            Job::LateLoad { py, exe } => (*py, exe.clone(), vec![lib_dir().join("libgilgate.so").display().to_string()], Duration::from_secs(30)),
            Job::EntryKill { py, exe, mode } => (*py, exe.clone(), vec![mode.to_string()], Duration::from_secs(30)),
        };
        let timeout = timeout * debug_scale(&pys_r[py]);
        let mut cmd = pys_r[py].command(&exe);
        cmd.args(&args);
        if matches!(job, Job::LateLoad { .. }) {
            cmd.env("GILGATE_VERBOSE", "1");
        }
        if matches!(job, Job::Edges { .. }) {
            cmd.env("GILGATE_SHOW_STATS", "1");
        }
        if matches!(job, Job::Seed { .. }) {
            cmd.env("GILGATE_DRAIN_TIMEOUT_MS", "20000");
        }
        if matches!(job, Job::NoDrain { .. } | Job::EntryKill { .. }) {
            cmd.env("GILGATE_DRAIN_TIMEOUT_MS", "0").env("SEED_NO_SLEEP", "1");
        }
        if matches!(job, Job::EntryKill { mode: "dropin", .. }) {
            cmd.env("GILGATE_ON_FINALIZE", "abort");
        }
        (job, run(cmd, timeout))
    });

    // Per version: gilgate outcomes, raw outcomes.
    let mut per: Vec<([u32; OUTCOMES], [u32; OUTCOMES])> = vec![([0; OUTCOMES], [0; OUTCOMES]); pys.len()];
    // Per version: no-drain runs, clean ones, kills+hangs intercepted in them, CPython TSS fatals (3.14+).
    let mut nodrain: Vec<(u32, u32, u64, u32)> = vec![(0, 0, 0, 0); pys.len()];
    for (job, r) in &results {
        match job {
            Job::Seed { py, lang, run, .. } => {
                per[*py].0[r.outcome.index()] += 1;
                let ok = matches!(r.outcome, Outcome::Clean(_));
                let name = format!("{} seed {} {}", pys[*py].name, lang.tag(), run.describe());
                let log = if ok || !selected(&name) { String::new() } else { format!(" (whole output: {})", keep_failure_log(&name, r)) };
                tally.case(&name, ok, &format!("{} stderr: {}{log}", r.outcome, stderr_tail(r, 8)));
            }
            Job::Raw { py, .. } => per[*py].1[r.outcome.index()] += 1,
            Job::NoDrain { py, lang, run, .. } => {
                // Clean, or (a thread killed by the eval loop's own GIL switch while inside its
                // region, outside any entry) the policy: SIGABRT with gilgate's diagnostic.
                // Never silent: no deadlock, no vanished thread, no other crash.
                let policed = matches!(r.outcome, Outcome::Crash(6)) && r.stderr.contains("gilgate: pthread_exit")
                    || matches!(r.outcome, Outcome::Crash(6)) && r.stderr.contains("gilgate: pause");
                // 3.14+ only: a worker that passed the gate, then was descheduled for the whole of
                // Py_FinalizeEx, binds a fresh thread state after the runtime deleted its TSS key
                // and CPython aborts itself. Keeping threads out of that window is the drain's job,
                // which this job disables on purpose; counted and printed, not hidden.
                let tss_fatal = pys[*py].minor() >= (3, 14) && matches!(r.outcome, Outcome::Crash(6))
                    && r.stderr.contains("Fatal Python error: gilstate_tss_set: failed to set current tstate (TSS)")
                    && !r.stderr.contains("gilgate: ");
                nodrain[*py].3 += tss_fatal as u32;
                let ok = matches!(r.outcome, Outcome::Clean(_)) || policed || tss_fatal;
                let caught: u64 = match &r.outcome {
                    Outcome::Clean(l) => ["kills=", "hangs="].iter().filter_map(|k| {
                        l.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse::<u64>().ok())
                    }).sum(),
                    _ => 0,
                };
                nodrain[*py].0 += 1;
                nodrain[*py].1 += matches!(r.outcome, Outcome::Clean(_)) as u32;
                nodrain[*py].2 += caught;
                tally.case(&format!("{} no-drain seed {} {}", pys[*py].name, lang.tag(), run.describe()), ok,
                    &format!("{} stderr: {}", r.outcome, stderr_tail(r, 5)));
            }
            Job::EntryKill { py, mode, .. } => {
                // api-*, pep788-ensure: the entry returned GILGATE_ERR_FINALIZING (resp. NULL), errno unchanged, thread joined
                // (the host checks, exit 0). dropin: the policy (abort, set) from the entry's own
                // bookkeeping, naming the export, not the interposer's fallback for kills outside
                // any entry ("pthread_exit on thread ..." / "pause on thread ...").
                // dropin-park (the default policy): the worker parks inside its entry; the main
                // thread's pthread_join then waits for it. 3.14+: forever (raw CPython parks it
                // too), which the watchdog names. 3.9-3.13: the watchdog releases it into the
                // pthread_exit raw CPython gives it, the join returns and the host reports that the
                // entry never returned (exit 1), exactly as without gilgate, and quietly.
                let ok = if *mode == "dropin" {
                    matches!(r.outcome, Outcome::Crash(6))
                        && r.stderr.contains("gilgate: PyGILState_Ensure on thread")
                        && (r.stderr.contains("CPython tried to kill a host thread")
                            || r.stderr.contains("CPython tried to park a host thread"))
                } else if *mode == "dropin-park" {
                    // Which one follows the CPython's own kill: a build that parks with pause()
                    // (3.14+, and Debian's 3.13.18d) is never released.
                    let named = matches!(r.outcome, Outcome::Crash(6))
                        && r.stderr.contains(" waits to join thread ")
                        && r.stderr.contains("which was parked in PyGILState_Ensure")
                        && !r.stderr.contains("policy ");
                    let released = pys[*py].minor() < (3, 14) && matches!(r.outcome, Outcome::Failed(1))
                        && r.stdout.contains("entry=none") && gilgate_unasked(&r.stderr).is_none();
                    named || released
                } else {
                    matches!(r.outcome, Outcome::Clean(_)) && r.stdout.contains(" ok")
                };
                tally.case(&format!("{} kill inside an outermost fast entry ({mode})", pys[*py].name), ok,
                    &format!("{} stdout: {} stderr: {}", r.outcome, r.stdout.trim(), stderr_tail(r, 4)));
            }
            Job::LateLoad { py, .. } => {
                // Loaded too late to interpose: it must say so, and still answer correctly.
                let said = r.stderr.contains("NOT interposing");
                tally.case(&format!("{} late dlopen of gilgate + calls during Py_Initialize", pys[*py].name),
                    matches!(r.outcome, Outcome::Clean(_)) && said,
                    &format!("{} (said NOT interposing: {said}) {}", r.outcome, stderr_tail(r, 6)));
            }
            Job::Edges { py, .. } => {
                // GILGATE_SHOW_STATS=1: counters at each finalization (4 here) and at exit.
                let stats_lines = r.stderr.matches("gilgate: stats: gated_entries=").count();
                let ok = matches!(r.outcome, Outcome::Clean(_)) && stats_lines >= 4;
                tally.case(&format!("{} api-edges (before init, after finalize, NULLs, 4 cycles, stats)", pys[*py].name), ok,
                    &format!("{} ({stats_lines} stats lines) {}", r.outcome, r.stderr));
            }
        }
    }
    println!();
    println!("{:28} | {:^39} | {:^30}", "CPython", "through gilgate: clean/deadlock/vanished/crash/failed/leaked", "raw CPython (harm expected)");
    for (i, p) in pys.iter().enumerate() {
        if broken.contains(&i) {
            println!("{:28} | build failed", p.name);
            continue;
        }
        let (g, r) = per[i];
        let harm = r[1] + r[2] + r[3];
        println!("{:28} | {:>5}/{}/{}/{}/{}/{} {:>29} | {} of {} runs harmed (deadlock {}, vanished {}, crash {})",
            p.name, g[0], g[1], g[2], g[3], g[4], g[5], "", harm, r.iter().sum::<u32>(), r[1], r[2], r[3]);
        let (n, clean, caught, tss) = nodrain[i];
        if n > 0 {
            println!("{:28} | drain disabled: {clean}/{n} clean, {tss} CPython TSS fatal (3.14+, no drain), others policy abort with diagnostic; {caught} kills/parks caught inside entries", "");
            // The catch itself must have been exercised, not only the drain.
            tally.case(&format!("{} kill/park interception exercised", p.name), caught > 0,
                "no run had a kill or park to intercept: the scenario did not reach CPython's kill site");
        }
        // The test must be able to fail: on raw CPython the same scenario has to show the harm.
        // A raw run shows it unless no worker happened to enter during finalization (about 1 in
        // 10 on the quickest versions, docs/testing.md): when none of the first tries did, more
        // run one by one until one does, so this control does not go red by chance.
        let (mut harm, mut tries) = (harm, r.iter().sum::<u32>() as u64);
        let mut k = tries;
        let raw_wanted = wanted(&format!("{} raw CPython shows the harm", p.name));
        while raw_wanted && harm == 0 && tries < raw_max {
            let lang = if k % 2 == 0 { Lang::C } else { Lang::CxxNoExc };
            let sr = SeedRun { mode: "gilstate", workers: 4, delay_us: 20_000, cycles: 1, seed: k };
            let mut cmd = p.command(&exe_of[&(i, "seed_host.c", lang, false)]);
            cmd.args(sr.args());
            let o = run(cmd, Duration::from_secs(4)).outcome;
            harm += matches!(o, Outcome::Deadlock | Outcome::Vanished(_) | Outcome::Crash(_)) as u32;
            tries += 1;
            k += 1;
        }
        if tries > raw_tries {
            println!("{:28} | raw: harm shown after {tries} tries", "");
        }
        tally.case(&format!("{} raw CPython shows the harm", p.name), harm > 0,
            &format!("none of {tries} raw runs deadlocked, vanished or crashed: the scenario no longer detects the problem"));
    }

    // 3.13+: the struct offsets gilgate reads through a thread state (src/cpython.rs:
    // `interp` is the third pointer; `current_frame` at 72; on 3.15+ the frame's `previous` at 8)
    // from each CPython's own headers, so a Py_DEBUG build laid out differently is caught.
    for p in pys.iter().filter(|p| p.minor() >= (3, 13)) {
        let name = format!("{} struct _ts offsets read by gilgate (interp 16, current_frame 72, frame previous 8)", p.name);
        match compile(p, "layout_probe.c", Lang::C, false) {
            Ok(exe) => {
                let r = run(p.command(&exe), Duration::from_secs(20));
                let line = r.stdout.lines().find(|l| l.starts_with("LAYOUT")).unwrap_or("").to_string();
                let want_debug = if p.debug { "debug=1" } else { "debug=0" };
                let ok = line.contains("interp=16 ") && line.contains("current_frame=72 ")
                    && (p.minor() < (3, 15) || line.contains("frame_previous=8 ")) && line.contains(want_debug);
                tally.case(&name, ok, &format!("{} {line} {}", r.outcome, stderr_tail(&r, 3)));
            }
            Err(e) => tally.case(&name, false, &e),
        }
    }

    // Header and packaging checks (shell scripts in c_tests/), per CPython where meaningful.
    // GILGATE_HEADER_CHECKS=0 leaves them out: test.sh's portable-entries run of this suite
    // sets it, since the headers compile without the library (the same check twice).
    if std::env::var("GILGATE_HEADER_CHECKS").as_deref() != Ok("0") {
        let plain: Vec<Python> = pys.iter().filter(|p| p.run_prefix.is_empty()).cloned().collect();
        script_cases(&mut tally, "header_compile.sh", &plain, Duration::from_secs(300));
    } else {
        println!("header_compile.sh: not run here (GILGATE_HEADER_CHECKS=0: the headers compile without the library; c_hosts runs it)");
    }

    tally.finish(t0);
}

fn no_python_host() -> Result<std::path::PathBuf, String> {
    let root = repo_root();
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = dir.join("no_python");
    let ld = lib_dir();
    let o = std::process::Command::new(cc(false))
        .args(["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join("c_tests/no_python.c"))
        .arg("-o").arg(&exe)
        .arg(format!("-L{}", ld.display())).arg("-lgilgate").arg(format!("-Wl,-rpath,{}", ld.display()))
        .output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into());
    }
    Ok(exe)
}

