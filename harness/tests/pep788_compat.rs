//! PEP 788 on every CPython (issue 24): three hosts written only against CPython 3.15's API
//! (`c_tests/pep788_pool.c`, `pep788_guards.cpp`, `pep788_seed.c`), built unchanged for each
//! CPython: for 3.15+ (release and Py_DEBUG) against CPython alone (`include/gilgate_pep788.h`
//! adds nothing there), for 3.8–3.14 with that header and libgilgate linked ahead of libpython.
//! Every run must end the same way on every version (see each host's header comment):
//! - pool (C): a native thread pool calling Python through a view while the main thread
//!   finalizes; every worker ends through a NULL from `PyThreadState_EnsureFromView`, no wrong
//!   result, no vanished worker, NULL after `Py_FinalizeEx`;
//! - guards (C++ -fno-exceptions): guards held across the workers' lifetime; finalization waits
//!   for them (every job runs, no NULL), a guard from an atexit handler succeeds, one from a
//!   `__del__` during finalization fails with an exception, whose type is reported (it must be
//!   the one 3.15 sets where the version has that type: `PythonFinalizationError`, 3.13+);
//! - seed (C and C++ -fno-exceptions): the seed's host mutex around every call, init/finalize
//!   cycles on one `PyInterpreterView_FromMain` view; no deadlock, every worker refused once per
//!   cycle;
//! - subinterp (C): a view and a guard of a subinterpreter used from native threads (they run
//!   there; nested Ensure on the guard), a main-interpreter view beside it, and after
//!   `Py_EndInterpreter` the subinterpreter's view gives no guard and no thread state.
//! A watchdog (90 s) turns a hang into a failure; `GILGATE_DRAIN_TIMEOUT_MS=20000` as in
//! c_hosts.rs (a drain bound no starved machine reaches: the guards host's workers must finish
//! inside it on 3.8–3.14, where 3.15 waits without a bound).
//!
//! GILGATE_PEP788_COMPAT_RUNS (default 4): runs per host and CPython.

use gilgate_harness::*;
use std::time::{Duration, Instant};

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn main() {
    let t0 = Instant::now();
    let d = discover();
    announce("PEP 788 API on every CPython (gilgate_pep788.h)", &d);
    let mut tally = Tally::default();
    let runs = env_u64("GILGATE_PEP788_COMPAT_RUNS", 4);
    let mut rng = Rng::new(0x24 ^ env_u64("GILGATE_TEST_SEED", 1));
    for p in &d.found {
        let native = p.minor() >= (3, 15);
        let link = if native { Link::Raw } else { Link::Api };
        let how = if native { "CPython's own PEP 788" } else { "gilgate_pep788.h + libgilgate" };
        let mut jobs: Vec<(String, std::path::PathBuf, Vec<String>)> = vec![];
        for (src, lang) in [
            ("pep788_pool.c", Lang::C),
            ("pep788_guards.cpp", Lang::CxxNoExc),
            ("pep788_seed.c", Lang::C),
            ("pep788_seed.c", Lang::CxxNoExc),
            ("pep788_subinterp.c", Lang::C),
        ] {
            let exe = match compile_as(p, src, lang, link) {
                Ok(e) => e,
                Err(e) => {
                    tally.case(&format!("{} build {src} {}", p.name, lang.tag()), false, &e);
                    continue;
                }
            };
            for k in 0..runs {
                let workers = 1 + rng.below(8);
                let args: Vec<String> = match src {
                    "pep788_pool.c" => vec![workers.to_string(), (1 + rng.below(40_000)).to_string(), k.to_string()],
                    "pep788_guards.cpp" => vec![workers.to_string(), (1 + rng.below(200)).to_string(), (rng.below(20_000)).to_string()],
                    "pep788_subinterp.c" => vec![workers.to_string()],
                    _ => vec![workers.to_string(), (1 + rng.below(30_000)).to_string(), (1 + k % 3).to_string(), rng.next().to_string()],
                };
                jobs.push((format!("{} {}", src.split('.').next().unwrap(), lang.tag()), exe.clone(), args));
            }
        }
        let py = p.clone();
        let results = parallel(jobs, concurrency(), move |(name, exe, args)| {
            let mut cmd = py.command(&exe);
            cmd.args(&args).env("GILGATE_DRAIN_TIMEOUT_MS", "20000");
            let r = run(cmd, Duration::from_secs(90));
            (name, args, r)
        });
        let mut del_types = std::collections::BTreeSet::new();
        let mut per = std::collections::BTreeMap::<String, (u32, u32)>::new();
        for (name, args, r) in &results {
            let line = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("");
            let mut ok = matches!(r.outcome, Outcome::Clean(_));
            if name.starts_with("pep788_guards") {
                let t = field(line, "del_guard=").unwrap_or("?");
                del_types.insert(t.to_string());
                // 3.15 sets PythonFinalizationError (seen on 3.15.2 and 3.15.2d: this check runs
                // there too); gilgate sets it where the type exists (3.13+), RuntimeError before.
                let want = if p.minor() >= (3, 13) { "PythonFinalizationError" } else { "RuntimeError" };
                ok &= t == want;
            }
            let e = per.entry(name.clone()).or_default();
            e.0 += 1;
            e.1 += ok as u32;
            tally.case(&format!("{} {name} {}", p.name, args.join(" ")), ok,
                &format!("{} ({how})\nstdout: {}\nstderr: {}", r.outcome, r.stdout.trim(), stderr_tail(r, 6)));
        }
        for (name, (n, good)) in &per {
            println!("{:28} {name:24} {good}/{n} as 3.15 specifies ({how})", p.name);
        }
        if !del_types.is_empty() {
            println!("{:28} guard from __del__ during finalization: NULL with {}", p.name,
                del_types.into_iter().collect::<Vec<_>>().join(", "));
        }
    }
    if !d.found.iter().any(|p| p.minor() >= (3, 15)) {
        println!("no CPython 3.15 found: the hosts were NOT checked against CPython's own PEP 788");
    }
    tally.finish(t0);
}
