//! Drop-in mode: unmodified hosts (raw CPython API) protected by LD_PRELOAD=libgilgate.so or by
//! linking gilgate ahead of libpython, on every CPython on the machine; an ordinary Python
//! program using a C library whose threads call back through ctypes; and CPython's own
//! regression tests with and without the preload (nothing observable may change).
//!
//! pause_host.py: `signal.pause()` (CPython's own call of the `pause` gilgate interposes) still
//! returns when a handler runs, and a daemon thread left in it changes nothing at exit.
//!
//! The finalization window: on Py_DEBUG builds (whose symbols say where), c_tests/hold_main.c
//! holds the main thread right after `_Py_Finalize` marks the interpreter finalizing, before the
//! runtime's flag, while a ctypes callback thread makes its first call: CPython hangs it there
//! (3.15: its interpreter refuses new guards; Debian's 3.13.18: the interpreter's flag) with the
//! runtime still saying alive. Raw, the library's destructor then waits forever for the lock
//! that thread holds; with gilgate it must be named like any other park.
//!
//! GILGATE_DROPIN_RUNS (default 4): runs per (CPython, policy) cell.
//! GILGATE_TRANSPARENCY=0 skips the regression-test comparison (reported, not counted).

use gilgate_harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// CPython's own tests for threads, the C API, shutdown and the sys module.
const REGRTESTS: &[&str] = &["test_atexit", "test_thread", "test_threading", "test_capi", "test_sys"];
/// Left out, with and without the preload alike: test_print_exception_gh_102056 (3.11+) recurses
/// exponentially until interrupt_main stops it, and on this shared 2-core machine it sometimes
/// never stops: its subprocess outlives the timed-out worker and spins, and the CPU it takes
/// makes the timing-sensitive tests of every other version fail too (seen in three CI runs on
/// 2026-11-26, identically with and without gilgate). Nothing in it concerns thread states.
const REGRTEST_IGNORE: &[&str] = &["test_print_exception_gh_102056"];

#[derive(Clone)]
enum Job {
    /// The seed host built on the raw API, under a policy; `ahead`: linked, else preloaded.
    Seed { py: usize, exe: PathBuf, mode: &'static str, policy: &'static str, stop_first: bool, ahead: bool, seed: u64 },
    /// python ctypes_host.py with C threads calling back; preload on or off.
    Ctypes { py: usize, preload: bool, seed: u64 },
    /// python -m test REGRTESTS, with or without the preload.
    Regr { py: usize, preload: bool },
    /// c_tests/park_watchdog.c in one of its modes (the watchdog's cases), preload on or off.
    Watchdog { py: usize, exe: PathBuf, mode: &'static str, preload: bool },
    /// c_tests/pause_host.py: signal.pause() woken by a signal, and a daemon thread left in it.
    Pause { py: usize, preload: bool },
    /// ctypes_host.py's on-go thread under hold_main, held at `site` (the finalization window).
    Window { py: usize, site: String, hold: PathBuf, preload: bool, seed: u64 },
}

const WATCHDOG_MODES: [&str; 4] = ["workers-wait", "timed", "join", "mutex"];

/// CPython's own test_threading starts grandchildren in new sessions; one of them
/// (test_print_exception_gh_102056, exponential recursion stopped only by interrupt_main) can
/// outlive the regrtest worker that --timeout kills, spinning forever, with or without gilgate.
/// As a subreaper this process inherits such orphans, and kills them when its jobs are done.
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and affects only this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Kill and reap every remaining descendant (all jobs have finished: only orphans are left).
fn kill_orphans() -> usize {
    let me = std::process::id().to_string();
    let mut n = 0;
    for _ in 0..5 {
        let kids: Vec<i32> = std::fs::read_dir("/proc").into_iter().flatten().flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
            .filter(|pid| {
                // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
                    .and_then(|st| st.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(1) == Some(me.as_str())))
                    .unwrap_or(false)
            })
            .collect();
        if kids.is_empty() {
            break;
        }
        for pid in kids {
            // SAFETY: kill(2) and waitpid(2) on a positive PID that is this process's own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            n += 1;
        }
    }
    n
}

fn main() {
    let t0 = Instant::now();
    become_subreaper();
    let runs = env_u64("GILGATE_DROPIN_RUNS", 4);
    let d = discover();
    announce("gilgate drop-in mode (LD_PRELOAD / linked ahead, unmodified hosts)", &d);
    let mut pys = d.found.clone();
    // Window-only: Debian 13's Py_DEBUG 3.13.5, which ends threads with pthread_exit (the other
    // builds with symbols here hang them with pause). Not a discovered CPython: no other case.
    let n_found = pys.len();
    if unfiltered() || case_pattern().map_or(false, |c| c.contains("window") || c.contains("debian-13")) {
        match debian_trixie_313d() {
            Ok(p) => {
                println!("window only: {} ({})", p.name, p.exe.display());
                pys.push(p);
            }
            Err(e) => {
                println!("window only: debian-13-3.13d (Py_DEBUG, pthread_exit): ABSENT ({e})");
                record("debian-13-3.13d", "debian-13-3.13d ctypes thread in the finalization window under LD_PRELOAD", "absent");
            }
        }
    }
    let mut tally = Tally::default();
    let lib = lib_dir().join("libgilgate.so");
    let cblib = match compile_shared("cbthread.c", "libcbthread.so") {
        Ok(p) => Some(p),
        Err(e) => {
            tally.case("build libcbthread.so", false, &e);
            None
        }
    };

    // x86-64 debug registers: not in the arm64 mode (each Python there is recorded absent).
    let hold = if arm64() {
        Err("hold_main uses x86-64 debug registers".to_string())
    } else {
        compile_exe("hold_main.c", "hold_main")
    };
    let mut jobs = vec![];
    // CPython's regression tests are the longest jobs (tens of seconds each, `-j2`): queued
    // first, so that the short runs fill the pool around them instead of waiting at the end.
    let mut regr_jobs = vec![];
    let mut raw_of = std::collections::HashMap::new();
    for (i, p) in pys.iter().enumerate() {
        let wanted_w = |seed| wanted(&window_case_name(p, seed));
        if p.debug && cblib.is_some() && (wanted_w(0) || wanted_w(1) || unfiltered()) {
            match (hold.as_ref().map_err(|e| e.clone()), window_site(p)) {
                (Ok(h), Ok(site)) => {
                    for seed in 0..2 {
                        if wanted_w(seed) {
                            jobs.push(Job::Window { py: i, site: site.clone(), hold: h.clone(), preload: true, seed });
                        }
                    }
                    if unfiltered() {
                        jobs.push(Job::Window { py: i, site, hold: h.clone(), preload: false, seed: 0 });
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    println!("{:26} | finalization window: absent ({e})", p.name);
                    for seed in 0..2 {
                        record(&p.name, &window_case_name(p, seed), "absent");
                    }
                }
            }
        }
        if i >= n_found {
            continue; // window only
        }
        let raw = compile_as(p, "seed_host.c", Lang::CxxNoExc, Link::Raw);
        let ahead = compile_as(p, "seed_host.c", Lang::C, Link::RawAhead);
        let (raw, ahead) = match (raw, ahead) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                tally.case(&format!("{} build", p.name), false, &e);
                continue;
            }
        };
        raw_of.insert(i, raw.clone());
        match compile_as(p, "park_watchdog.c", Lang::C, Link::Raw) {
            Ok(exe) => {
                for mode in WATCHDOG_MODES {
                        if wanted(&format!("{} park_watchdog {mode} under LD_PRELOAD", p.name)) {
                        for _ in 0..2 {
                            jobs.push(Job::Watchdog { py: i, exe: exe.clone(), mode, preload: true });
                        }
                    }
                    if unfiltered() {
                        jobs.push(Job::Watchdog { py: i, exe: exe.clone(), mode, preload: false });
                    }
                }
            }
            Err(e) => tally.case(&format!("{} build park_watchdog", p.name), false, &e),
        }
        if wanted(&pause_case_name(p)) {
            jobs.push(Job::Pause { py: i, preload: true });
        }
        if unfiltered() {
            jobs.push(Job::Pause { py: i, preload: false });
        }
        for k in 0..runs {
            let mode = if k % 2 == 0 { "gilstate" } else { "tstate" };
            // GILGATE_CASE: only the selected cases run (and what no case asserts, only unfiltered).
            let mut seed_job = |exe: &PathBuf, policy: &'static str, stop_first: bool, ahead: bool| {
                let job = Job::Seed { py: i, exe: exe.clone(), mode, policy, stop_first, ahead, seed: k };
                if if policy == "exit" { unfiltered() } else { wanted(&seed_case_name(p, &job)) } {
                    jobs.push(job);
                }
            };
            for policy in ["park", "abort", "hang", "exit"] {
                seed_job(&raw, policy, false, false);
            }
            seed_job(&raw, "abort", true, false);
            seed_job(&ahead, "abort", false, true);
            if cblib.is_some() {
                if wanted(&ctypes_case_name(p, k)) {
                    jobs.push(Job::Ctypes { py: i, preload: true, seed: k });
                }
                if unfiltered() {
                    jobs.push(Job::Ctypes { py: i, preload: false, seed: k });
                }
            }
        }
        // Not on the Py_DEBUG builds: their regression tests take many times as long, and the
        // release build of the same Debian version runs them (reported below, not counted).
        if std::env::var("GILGATE_TRANSPARENCY").as_deref() != Ok("0") && !p.debug
            && wanted(&format!("{} regression tests identical under LD_PRELOAD", p.name)) {
            regr_jobs.push(Job::Regr { py: i, preload: false });
            regr_jobs.push(Job::Regr { py: i, preload: true });
        }
    }

    regr_jobs.extend(jobs);
    let jobs = regr_jobs;

    // Which pythons are statically linked executables (docs/design.md, case (c)).
    let static_exe: Vec<bool> = pys.iter().map(|p| {
        Command::new(binutil("nm")).args(["-D", "--defined-only"]).arg(&p.exe).output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.ends_with(" PyGILState_Ensure")))
            .unwrap_or(false)
    }).collect();
    let (pys_r, lib_r, cb_r) = (pys.clone(), lib.clone(), cblib.clone());
    let results = parallel(jobs, concurrency(), move |job| {
        let r = run_job(&pys_r, &lib_r, &cb_r, &job);
        (job, r)
    });

    // Per CPython: [park (the default): clean, deadlock named, other], [abort: clean, sigabrt+diag,
    // other], [hang: clean, deadlock named after the hang line, other], exit outcomes, stop-first
    // clean, linked-ahead, ctypes preload, ctypes raw.
    #[derive(Default, Clone)]
    struct Row {
        park: [u32; 3],
        abort: [u32; 3],
        hang: [u32; 3],
        exit: [u32; OUTCOMES],
        stop_first: [u32; 2],
        ahead: [u32; 3],
        ct_pre: [u32; 4],
        ct_raw: [u32; OUTCOMES],
        wd_raw: Vec<String>,
        window_raw: Vec<String>,
        window_late: u32,
        regr: [Option<(String, Vec<String>)>; 2],
    }
    let mut rows = vec![Row::default(); pys.len()];
    let raw_exe: Vec<Option<PathBuf>> = (0..pys.len()).map(|i| raw_of.get(&i).cloned()).collect();
    for (job, r) in &results {
        let diag = |pol: &str| r.stderr.contains("gilgate: ") && r.stderr.contains(&format!("policy {pol}"));
        match job {
            Job::Seed { py, mode, policy, stop_first, ahead, seed, .. } => {
                let _ = (mode, seed);
                let name = seed_case_name(&pys[*py], job);
                let row = &mut rows[*py];
                let detail = format!("{} stderr: {}", r.outcome, stderr_tail(r, 4));
                if *stop_first {
                    let ok = matches!(r.outcome, Outcome::Clean(_));
                    row.stop_first[if ok { 0 } else { 1 }] += 1;
                    tally.case(&name, ok, &detail);
                } else if *policy == "exit" {
                    row.exit[r.outcome.index()] += 1; // legacy behaviour, for comparison only
                } else if *policy == "abort" {
                    let k = match r.outcome {
                        Outcome::Clean(_) => 0,
                        Outcome::Crash(6) if diag("abort") => 1,
                        _ => 2,
                    };
                    if *ahead { row.ahead[k] += 1 } else { row.abort[k] += 1 }
                    tally.case(&name, k < 2, &detail);
                } else {
                    // park/hang: the workers refused while holding their host mutex are parked;
                    // the main thread then takes those mutexes and would wait forever (raw 3.14
                    // does): the watchdog names the wait and aborts.
                    let k = seed_park_outcome(r, *policy);
                    if *policy == "park" { row.park[k] += 1 } else { row.hang[k] += 1 }
                    tally.case(&name, k < 2, &detail);
                }
            }
            Job::Ctypes { py, preload, seed } => {
                let row = &mut rows[*py];
                if *preload {
                    // Case (c): a statically linked python executable's own exports win, so gilgate
                    // never sees the callback threads' PyGILState_Ensure; only the kill/park
                    // interception applies. On 3.14+ such a thread entering after Py_FinalizeEx
                    // segfaults inside CPython (gh-124619) before any park, or, binding its fresh
                    // thread state after the runtime deleted its TSS key, CPython aborts itself
                    // ("gilstate_tss_set: failed to set current tstate"): not interceptable either.
                    // The Py_DEBUG 3.13.18 does the same raw (measured 2026-11-30: the same program
                    // without gilgate, 4 runs: 2 SIGSEGV, 1 SIGABRT in CPython's assertion
                    // `unbind_gilstate_tstate`, 1 hang), so there case (c) includes its SIGSEGV
                    // and that assertion (docs/testing.md).
                    let dbg = pys[*py].debug;
                    let case_c_314 = static_exe[*py] && (pys[*py].minor() >= (3, 14) || dbg && pys[*py].minor() >= (3, 13));
                    let unbind_assert = dbg && matches!(r.outcome, Outcome::Crash(6))
                        && r.stderr.contains("unbind_gilstate_tstate: Assertion")
                        && !r.stderr.contains("gilgate: ");
                    let tss_fatal = matches!(r.outcome, Outcome::Crash(6))
                        && r.stderr.contains("Fatal Python error: gilstate_tss_set: failed to set current tstate (TSS)")
                        && !r.stderr.contains("gilgate: ");
                    // The default policy parks. The library's destructor then takes the lock a
                    // parked callback thread holds (raw: a deadlock, or a hang on 3.14): the
                    // watchdog names it and aborts. Otherwise the program exits 0, quietly.
                    let named = r.stderr.contains("gilgate: deadlock: thread ") && r.stderr.contains("which was parked in ");
                    // The same crash on an older static python (Debian's 3.11.2), rarer: a callback
                    // thread that was never stopped during finalization calls the executable's own
                    // PyGILState_Ensure after Py_FinalizeEx (cores, 2026-12-06: SIGSEGV in
                    // PyThreadState_New, no gilgate frame, in one core no thread ever parked).
                    // Measured at the same load, alternating: this library 2 of 240 runs, the
                    // library before this session 2 of 240, without gilgate 2 of 300 (the rest
                    // deadlocked). At most one such run per cell, with gilgate silent.
                    let case_c_old = static_exe[*py] && !case_c_314 && row.ct_pre[3] == 0
                        && !r.stderr.contains("gilgate: ");
                    let k = match r.outcome {
                        Outcome::Clean(_) if gilgate_unasked(&r.stderr).is_none() => 0,
                        Outcome::Crash(6) if named => 1,
                        Outcome::Crash(11) if case_c_314 || case_c_old => 3,
                        Outcome::Crash(6) if case_c_314 && tss_fatal => 3,
                        Outcome::Crash(6) if case_c_314 && unbind_assert => 3,
                        _ => 2,
                    };
                    row.ct_pre[k] += 1;
                    tally.case(&ctypes_case_name(&pys[*py], *seed), k != 2,
                        &format!("{} stderr: {}", r.outcome, stderr_tail(r, 4)));
                } else {
                    row.ct_raw[r.outcome.index()] += 1;
                }
            }
            Job::Watchdog { py, mode, preload, .. } => {
                let res = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("");
                if !*preload {
                    rows[*py].wd_raw.push(format!("{mode}:{}", r.outcome.kind()));
                    continue;
                }
                // Blocked workers and timed waits are left alone (exit 0, quiet). A join of parked
                // workers: released to the pthread_exit CPython would have given them where it
                // kills (3.8-3.13: exit 0, quiet, as raw), named where it parks (3.14+; also
                // Debian's 3.13.18d). A mutex a parked worker holds: named everywhere.
                let quiet_clean = matches!(r.outcome, Outcome::Clean(_)) && gilgate_unasked(&r.stderr).is_none();
                let named = |how: &str| matches!(r.outcome, Outcome::Crash(6)) && r.stderr.contains("gilgate: deadlock: thread ")
                    && r.stderr.contains(how) && r.stderr.contains("which was parked in Py");
                let ok = match *mode {
                    "join" => named(" waits to join thread ") || (pys[*py].minor() < (3, 14) && quiet_clean),
                    "mutex" => named(" waits for a mutex (0x"),
                    _ => quiet_clean,
                } && !res.contains("calls=0");
                tally.case(&format!("{} park_watchdog {mode} under LD_PRELOAD", pys[*py].name), ok,
                    &format!("{} {res} stderr: {}", r.outcome, stderr_tail(r, 3)));
            }
            Job::Pause { py, preload } => {
                let woken = r.stdout.contains("RESULT pause woken after");
                let ok = matches!(r.outcome, Outcome::Clean(_)) && woken && gilgate_unasked(&r.stderr).is_none();
                if *preload {
                    tally.case(&pause_case_name(&pys[*py]), ok, &format!("{} stderr: {}", r.outcome, stderr_tail(r, 4)));
                } else if !ok {
                    println!("  {:26} pause_host.py raw (the reference) did not end clean: {}", pys[*py].name, r.outcome);
                }
            }
            Job::Window { py, preload, seed, .. } => {
                let held = r.stderr.contains("hold_main: held");
                if !*preload {
                    rows[*py].window_raw.push(format!("{}{}", r.outcome.kind(), if held { "" } else { "(not held)" }));
                    continue;
                }
                // The held thread holds the library's lock where CPython hangs it; the
                // destructor then waits for it: named and aborted (hold_main exits 128+6).
                let named = matches!(r.outcome, Outcome::Failed(134))
                    && r.stderr.contains("gilgate: deadlock: thread ") && r.stderr.contains("which was parked in ");
                let late = r.stderr.contains("before the runtime showed finalization");
                rows[*py].window_late += late as u32;
                tally.case(&window_case_name(&pys[*py], *seed), held && named,
                    &format!("held={held} {} stderr: {}", r.outcome, stderr_tail(r, 4)));
            }
            Job::Regr { py, preload } => {
                let summary = regr_summary(&r.stdout);
                rows[*py].regr[*preload as usize] = Some((format!("{}", r.outcome.kind()), summary));
            }
        }
    }

    for (i, p) in pys.iter().enumerate() {
        if runs == 0 || raw_exe[i].is_none() {
            continue;
        }
        // The policies must actually have been exercised, not just never failed. Whether a
        // run reaches the refusal depends on timing: when none of the runs above did, more
        // run one by one (each checked like the others) until one does, at most
        // GILGATE_DROPIN_MAX_EXTRA (default 24) per policy, so this does not fail by chance.
        let extra_max = env_u64("GILGATE_DROPIN_MAX_EXTRA", 24);
        for policy in ["park", "abort", "hang"] {
            if !wanted(&exercised_case_name(p, policy)) {
                continue;
            }
            let seen = |r: &Row| match policy { "abort" => r.abort[1] + r.ahead[1], "park" => r.park[1], _ => r.hang[1] };
            let mut k = 0;
            while seen(&rows[i]) == 0 && k < extra_max {
                let seed = 100 + k;
                let mode = if k % 2 == 0 { "gilstate" } else { "tstate" };
                let job = Job::Seed { py: i, exe: raw_exe[i].clone().unwrap(), mode, policy, stop_first: false, ahead: false, seed };
                let r = run_job(&pys, &lib, &cblib, &job);
                let diag = r.stderr.contains("gilgate: ") && r.stderr.contains(&format!("policy {policy}"));
                let kk = match (&r.outcome, policy) {
                    (Outcome::Clean(_), _) => 0,
                    (Outcome::Crash(6), "abort") if diag => 1,
                    (_, "park" | "hang") => seed_park_outcome(&r, policy),
                    _ => 2,
                };
                match policy { "abort" => rows[i].abort[kk] += 1, "park" => rows[i].park[kk] += 1, _ => rows[i].hang[kk] += 1 }
                tally.case(&format!("{} LD_PRELOAD seed {mode} policy={policy} seed={seed} (extra)", p.name), kk < 2,
                    &format!("{} stderr: {}", r.outcome, stderr_tail(&r, 4)));
                k += 1;
            }
            if k > 0 {
                println!("{:26} | {policy} policy: {k} extra run(s) to see it exercised", p.name);
            }
        }
    }
    println!();
    println!("{:26} | {:^13} | {:^13} | {:^13} | {:^15} | {:^10} | {:^13} | {:^13} | {:^19}", "CPython (raw-API host)",
        "park (default)", "abort", "hang", "exit (legacy)", "stop-first", "linked ahead", "ctypes+preload", "ctypes raw");
    println!("{:26} | {:^13} | {:^13} | {:^13} | {:^15} | {:^10} | {:^13} | {:^13} | {:^19}", "",
        "ok/deadlock/bad", "ok/SIGABRT/bad", "ok/deadlock/bad", "ok/dl/van/cr/fl", "clean/bad", "ok/SIGABRT/bad", "ok/named/bad/SEGV*", "ok/dl/van/crash/fl");
    for (i, p) in pys.iter().enumerate().take(n_found) {
        let r = &rows[i];
        let j = |v: &[u32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("/");
        println!("{:26} | {:^13} | {:^13} | {:^13} | {:^15} | {:^10} | {:^13} | {:^13} | {:^19}", p.name,
            j(&r.park), j(&r.abort), j(&r.hang), j(&r.exit), j(&r.stop_first), j(&r.ahead), j(&r.ct_pre), j(&r.ct_raw));
        if runs > 0 {
            // The policies must actually have been exercised, not just never failed (extra runs
            // above when the first ones did not reach the refusal).
            tally.case(&exercised_case_name(p, "abort"), r.abort[1] + r.ahead[1] > 0,
                "no run reached the refusal: the scenario did not hit finalization");
            tally.case(&exercised_case_name(p, "hang"), r.hang[1] > 0, "no run parked a thread");
            tally.case(&exercised_case_name(p, "park"), r.park[1] > 0, "no run parked a thread");
        }
    }

    for (i, p) in pys.iter().enumerate() {
        if !rows[i].wd_raw.is_empty() {
            println!("  {:26} park_watchdog raw (recorded, not asserted): {}", p.name, rows[i].wd_raw.join(" "));
        }
        if !rows[i].window_raw.is_empty() || rows[i].window_late > 0 {
            println!("  {:26} finalization window: raw {} (recorded, not asserted); hang seen before the runtime's flag in {} gilgate run(s)",
                p.name, rows[i].window_raw.join(" "), rows[i].window_late);
        }
    }
    println!("(* SEGV: case (c) on 3.14+ (and the Py_DEBUG 3.13; at most one per cell on an older static python), a statically linked python whose own exports gilgate never sees:");
    println!("   a callback thread entering after Py_FinalizeEx crashes inside CPython, gh-124619, or CPython");
    println!("   aborts itself binding its thread state after the TSS key is gone; see docs/design.md)");
    for (i, p) in pys.iter().enumerate() {
        if static_exe[i] {
            println!("  {:26} python executable is statically linked: ctypes runs are case (c) of docs/design.md", p.name);
        }
    }
    let orphans = kill_orphans();
    println!();
    println!("CPython regression tests ({}; ignoring {}) without / with LD_PRELOAD:", REGRTESTS.join(" "), REGRTEST_IGNORE.join(" "));
    if orphans > 0 {
        println!("  ({orphans} orphaned test subprocess(es) left by CPython's tests were killed)");
    }
    for (i, p) in pys.iter().enumerate() {
        match &rows[i].regr {
            [Some((k0, s0)), Some((k1, s1))] => {
                let mut same = s0 == s1 && k0 == k1;
                println!("  {:26} without: {:8} {:?}\n  {:26} with:    {:8} {:?}", p.name, k0, s0, "", k1, s1);
                let ran = s0.iter().chain(s1.iter()).any(|l| l.starts_with("Result:") || l.starts_with("Tests result:"));
                if !ran {
                    println!("  {:26} regression tests absent or did not run: reported, not counted", p.name);
                    continue;
                }
                let mut detail = format!("without: {s0:?} with: {s1:?}");
                if !same {
                    // CPython's timing-sensitive tests fail now and then on a loaded machine, on
                    // either side. The files that failed on either side run again, both sides,
                    // up to REGR_RETRIES times: identical once = identical (the retries are
                    // printed); a file that keeps failing only under the preload stays a failure.
                    let mut files: Vec<String> = failed_files(s0).into_iter().chain(failed_files(s1)).collect();
                    files.sort();
                    files.dedup();
                    for attempt in 1..=REGR_RETRIES {
                        let r0 = run_regr(p, &lib, false, &files);
                        let r1 = run_regr(p, &lib, true, &files);
                        let (a, b) = (regr_summary(&r0.stdout), regr_summary(&r1.stdout));
                        let ok = a == b && r0.outcome.kind() == r1.outcome.kind();
                        println!("  {:26} re-run {attempt} of {files:?}: without {a:?} / with {b:?}: {}", "",
                            if ok { "identical" } else { "different" });
                        detail.push_str(&format!(" | re-run {attempt} of {files:?}: without {a:?} with {b:?}"));
                        if ok {
                            same = true;
                            break;
                        }
                    }
                }
                tally.case(&format!("{} regression tests identical under LD_PRELOAD", p.name), same, &detail);
            }
            _ if p.debug => println!("  {:26} not run on Py_DEBUG builds (the release build of the same version runs them): not counted", p.name),
            _ => println!("  {:26} not run (GILGATE_TRANSPARENCY=0): not counted", p.name),
        }
    }
    tally.finish(t0);
}

/// Case names (GILGATE_CASE matches `dropin/<name>`).
fn seed_case_name(p: &Python, job: &Job) -> String {
    let Job::Seed { mode, policy, stop_first, ahead, seed, .. } = job else { unreachable!() };
    format!("{} {} seed {mode} policy={policy} seed={seed}{}", p.name,
        if *ahead { "linked-ahead" } else { "LD_PRELOAD" }, if *stop_first { " stop-first" } else { "" })
}

fn pause_case_name(p: &Python) -> String {
    format!("{} signal.pause woken, daemon left in it, under LD_PRELOAD", p.name)
}

fn window_case_name(p: &Python, seed: u64) -> String {
    format!("{} ctypes thread in the finalization window under LD_PRELOAD seed={seed}", p.name)
}

/// The instruction after `_Py_Finalize`'s call of `_PyInterpreterState_SetFinalizing` in the
/// python executable (non-PIE, so a fixed address): read from a build with symbols.
fn window_site(p: &Python) -> Result<String, String> {
    let o = Command::new(binutil("objdump")).args(["-d", "--no-show-raw-insn", "--disassemble=_Py_Finalize"]).arg(&p.exe)
        .output().map_err(|e| format!("objdump: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines().skip_while(|l| !l.contains("call") || !l.contains("<_PyInterpreterState_SetFinalizing>"));
    lines.next().ok_or("no call of _PyInterpreterState_SetFinalizing in _Py_Finalize (stripped or inlined)")?;
    let next = lines.next().ok_or("no instruction after the call")?;
    let addr = next.trim().split(':').next().unwrap_or("").trim();
    if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("unexpected objdump line: {next}"));
    }
    Ok(addr.to_string())
}

fn ctypes_case_name(p: &Python, seed: u64) -> String {
    format!("{} ctypes host threads under LD_PRELOAD (default policy: park; clean, or the deadlock named) seed={seed}", p.name)
}

fn exercised_case_name(p: &Python, policy: &str) -> String {
    match policy {
        "abort" => format!("{} abort policy exercised (SIGABRT with diagnostic seen)", p.name),
        "hang" => format!("{} hang policy exercised (parked thread, deadlock named)", p.name),
        _ => format!("{} default policy (park) exercised (parked thread, deadlock named)", p.name),
    }
}

/// The seed host under `park` (default) or `hang`: 0 clean, 1 the watchdog named the deadlock
/// (one line naming the parked thread and the call that parked it, then SIGABRT; `hang` also
/// writes its policy line), 2 anything else (a hang is the watchdog missing it).
fn seed_park_outcome(r: &RunResult, policy: &str) -> usize {
    let named = r.stderr.contains("gilgate: deadlock: thread ") && r.stderr.contains(" waits for a mutex (0x")
        && r.stderr.contains("which was parked in ");
    let policy_line = r.stderr.contains("policy hang");
    match r.outcome {
        Outcome::Clean(_) if policy == "hang" || r.stderr.is_empty() => 0,
        Outcome::Crash(6) if named && (policy == "hang") == policy_line => 1,
        _ => 2,
    }
}

/// One drop-in job: the seed host under a policy, the ctypes host, or CPython's regression tests.
fn run_job(pys_r: &[Python], lib_r: &std::path::Path, cb_r: &Option<PathBuf>, job: &Job) -> RunResult {
    match job {
        Job::Seed { py, exe, mode, policy, stop_first, ahead, seed } => {
            let mut c = pys_r[*py].command(exe);
            c.args([*mode, "4", "20000", "1", &seed.to_string()]);
            if *policy == "park" {
                c.env_remove("GILGATE_ON_FINALIZE"); // the default
            } else {
                c.env("GILGATE_ON_FINALIZE", policy);
            }
            if *stop_first {
                c.env("SEED_STOP_FIRST", "1");
            }
            if !*ahead {
                c.env("LD_PRELOAD", &lib_r);
            }
            run(c, Duration::from_secs(if *policy == "exit" { 5 } else { 20 }))
        }
        Job::Ctypes { py, preload, .. } => {
            let p = &pys_r[*py];
            let mut c = Command::new(&p.python_cmd[0]);
            c.args(&p.python_cmd[1..]).arg(repo_root().join("c_tests/ctypes_host.py")).arg(cb_r.as_ref().unwrap()).arg("4");
            for (k, v) in &p.env {
                c.env(k, v);
            }
            if *preload {
                c.env("LD_PRELOAD", &lib_r);
            }
            run(c, Duration::from_secs(if *preload { 20 } else { 5 }))
        }
        Job::Watchdog { py, exe, mode, preload } => {
            let mut c = pys_r[*py].command(exe);
            c.arg(*mode).env_remove("GILGATE_ON_FINALIZE");
            if *preload {
                c.env("LD_PRELOAD", lib_r);
            }
            run(c, Duration::from_secs(20))
        }
        Job::Pause { py, preload } => {
            let p = &pys_r[*py];
            let mut c = Command::new(&p.python_cmd[0]);
            c.args(&p.python_cmd[1..]).arg(repo_root().join("c_tests/pause_host.py"));
            for (k, v) in &p.env {
                c.env(k, v);
            }
            if *preload {
                c.env("LD_PRELOAD", lib_r);
            }
            run(c, Duration::from_secs(20))
        }
        Job::Window { py, site, hold, preload, seed } => {
            let p = &pys_r[*py];
            let go = out_dir().join(format!("window-go-{}-{}-{}-{}", std::process::id(), py, *preload as u8, seed));
            let _ = std::fs::remove_file(&go);
            let mut c = Command::new(hold);
            c.args([site.as_str(), go.to_str().unwrap_or_default(), "1000", "--"]).args(&p.run_prefix).arg(&p.exe)
                .arg(repo_root().join("c_tests/ctypes_host.py")).arg(cb_r.as_ref().unwrap()).args(["1", "on-go"]).arg(&go);
            for (k, v) in &p.env {
                c.env(k, v);
            }
            c.env("GILGATE_VERBOSE", "1").env_remove("GILGATE_ON_FINALIZE");
            if *preload {
                c.env("LD_PRELOAD", lib_r);
            }
            let r = run(c, Duration::from_secs(if *preload { 30 } else { 8 }));
            let _ = std::fs::remove_file(&go);
            r
        }
        Job::Regr { py, preload } => {
            let tests: Vec<String> = REGRTESTS.iter().map(|t| t.to_string()).collect();
            run(regr_command(&pys_r[*py], lib_r, *preload, &tests), Duration::from_secs(900))
        }
    }
}

/// Re-runs of the test files whose results differed (see the comparison above).
const REGR_RETRIES: u32 = 2;

fn regr_command(p: &Python, lib: &std::path::Path, preload: bool, tests: &[String]) -> Command {
    let mut c = Command::new(&p.python_cmd[0]);
    c.args(&p.python_cmd[1..]).args(["-m", "test", "-j2", "--timeout", "300"])
        .args(REGRTEST_IGNORE.iter().flat_map(|t| ["-i", t])).args(tests);
    for (k, v) in &p.env {
        c.env(k, v);
    }
    if preload {
        c.env("LD_PRELOAD", lib);
    }
    c
}

fn run_regr(p: &Python, lib: &std::path::Path, preload: bool, tests: &[String]) -> RunResult {
    let r = run(regr_command(p, lib, preload, tests), Duration::from_secs(900));
    kill_orphans();
    r
}

/// The test files a regrtest summary names as failed (or re-run): the indented names after
/// "N test(s) failed:" and similar lines; every file of REGRTESTS when it names none.
fn failed_files(summary: &[String]) -> Vec<String> {
    let mut out: Vec<String> = summary.iter()
        .flat_map(|l| l.split_whitespace())
        .filter(|w| REGRTESTS.contains(w))
        .map(|w| w.to_string())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out = REGRTESTS.iter().map(|t| t.to_string()).collect();
    }
    out
}

/// The lines of regrtest's summary that say what passed and failed (no timings).
fn regr_summary(stdout: &str) -> Vec<String> {
    let mut out = vec![];
    let mut grab = false;
    for l in stdout.lines() {
        let t = l.trim();
        if t.starts_with("== Tests result") {
            grab = true;
        }
        if !grab {
            continue;
        }
        if t.starts_with("Total duration") || t.is_empty() || t.starts_with("==") {
            continue;
        }
        if t.starts_with("Total tests:") {
            continue; // counts differ with skips that depend on timing; result lines carry the verdict
        }
        out.push(t.to_string());
    }
    out
}
