//! The gilstate path on PEP 788 (CPython 3.15+; src/pep788.rs), and the legacy path elsewhere.
//!
//! Per CPython: `c_tests/pep788_host.c` (which path its entries took, read from CPython's own
//! guard countdown (one guard kept per thread and generation); 12 nested levels, and 12 levels each inside the previous one's
//! `gilgate_save_thread` (8 on PEP 788, the rest legacy, each release finding its own); finalizing from inside a gilstate level while a laggard
//! holds one with the GIL released: Py_FinalizeEx must not wait past the drain; a second
//! runtime). The GILGATE_VERBOSE=1 load line must name the path. On CPythons with PEP 788
//! also: the same with GILGATE_PEP788=0 (legacy path), and seed-scenario runs
//! (gilstate/callback/mixed/nested/subinterp, C and C++, 1 and 3 init/finalize cycles) that must
//! all end clean (0 leaked regions).
//!
//! GILGATE_PEP788_RUNS (default 6): seed runs per mode on CPythons with PEP 788.
//! GILGATE_ONLY_PYTHONS="3.15 3.14 3.12": only these CPythons (harness/src/lib.rs).

use gilgate_harness::*;
use std::time::{Duration, Instant};

fn field<'a>(out: &'a str, line: &str, key: &str) -> Option<&'a str> {
    let l = out.lines().find(|l| l.starts_with(line))?;
    l.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn main() {
    let t0 = Instant::now();
    let d = discover();
    announce("gilgate PEP 788 gilstate path", &d);
    let mut tally = Tally::default();
    let runs = env_u64("GILGATE_PEP788_RUNS", 6);
    for p in &d.found {
        let has788 = p.minor() >= (3, 15);
        let exe = match compile(p, "pep788_host.c", Lang::C, true) {
            Ok(e) => e,
            Err(e) => {
                tally.case(&format!("{} build pep788_host", p.name), false, &e);
                continue;
            }
        };
        let variants: &[(&str, bool)] = if has788 { &[("1", true), ("0", false)] } else { &[("1", false)] };
        for &(env, want788) in variants {
            let mut cmd = p.command(&exe);
            cmd.env("GILGATE_VERBOSE", "1").env("GILGATE_PEP788", env);
            let r = run(cmd, Duration::from_secs(30));
            let name = format!("{} pep788_host GILGATE_PEP788={env}", p.name);
            let load_ok = r.stderr.lines().any(|l| {
                l.contains("gilgate: loaded")
                    && l.contains(if want788 { "gilstate path: PEP 788" } else { "gilstate path: PyGILState_Ensure" })
            });
            let path = field(&r.stdout, "PROBE ", "path=").unwrap_or("?");
            // 8 PEP 788 levels open at the deepest point of the saved chain (the LIFO's size), all
            // on the one guard the thread keeps for the generation once the drain is armed.
            let chain = field(&r.stdout, "PROBECHAIN", "countdown=").unwrap_or("?");
            let chain_ok = chain == if want788 { "1" } else if p.minor() >= (3, 15) { "0" } else { "-1" };
            let fin_ms: f64 = field(&r.stdout, "FINALIZE", "ms=").and_then(|v| v.parse().ok()).unwrap_or(f64::MAX);
            let ok = matches!(r.outcome, Outcome::Clean(_))
                && r.stdout.contains("\nDONE")
                && load_ok
                && path == if want788 { "pep788" } else { "legacy" }
                && chain_ok
                // The drain timeout is 300 ms: Py_FinalizeEx must not wait for the guards of the
                // laggard or of the finalizing thread itself. The laggard holds its guard until
                // finalization returns, so such a wait would never end (the watchdog); the 10 s
                // bound only keeps a starved machine from failing this by chance.
                && fin_ms < 10_000.0;
            tally.case(&name, ok, &format!("{} path={path} chain_countdown={chain} finalize_ms={fin_ms} load_line_ok={load_ok}\nstdout: {}\nstderr: {}",
                r.outcome, r.stdout.trim(), stderr_tail(&r, 6)));
            println!("{:28} GILGATE_PEP788={env}: path={path} (expected {}), Py_FinalizeEx inside a gilstate level with a laggard: {fin_ms:.0} ms, {}",
                p.name, if want788 { "pep788" } else { "legacy" }, r.outcome.kind());
        }
        if !has788 {
            continue;
        }
        // Seed scenario on the PEP 788 path: every run clean.
        let mut builds = vec![];
        for lang in [Lang::C, Lang::CxxNoExc] {
            match compile(p, "seed_host.c", lang, true) {
                Ok(e) => builds.push((lang, e)),
                Err(e) => tally.case(&format!("{} build seed_host {}", p.name, lang.tag()), false, &e),
            }
        }
        if builds.is_empty() {
            continue;
        }
        let mut rng = Rng::new(0x788 ^ env_u64("GILGATE_TEST_SEED", 1));
        let mut jobs = vec![];
        for mode in ["gilstate", "callback", "mixed", "nested", "subinterp"] {
            for k in 0..runs {
                let (lang, exe) = builds[(k as usize) % builds.len()].clone();
                let run = SeedRun {
                    mode,
                    workers: 1 + rng.below(8) as u32,
                    delay_us: 1 + rng.below(30_000) as u32,
                    cycles: if k % 2 == 0 { 3 } else { 1 },
                    seed: rng.next() % 1_000_000,
                };
                jobs.push((lang, exe, run));
            }
        }
        let py = p.clone();
        let results = parallel(jobs, concurrency(), move |(lang, exe, sr)| {
            let mut cmd = py.command(&exe);
            // As in c_hosts.rs: a drain bound and a watchdog no starved machine reaches.
            cmd.args(sr.args()).env("GILGATE_VERBOSE", "1").env("GILGATE_DRAIN_TIMEOUT_MS", "20000");
            (lang, sr, run(cmd, Duration::from_secs(90)))
        });
        let mut counts = std::collections::BTreeMap::<&str, [u32; OUTCOMES]>::new();
        for (lang, sr, r) in &results {
            counts.entry(sr.mode).or_default()[r.outcome.index()] += 1;
            let on_path = r.stderr.lines().any(|l| l.contains("gilgate: loaded") && l.contains("gilstate path: PEP 788"));
            let bad_ok = match &r.outcome {
                Outcome::Clean(l) => !l.contains("bad_ok=0 ") || !l.contains("leaked=0"),
                _ => true,
            };
            tally.case(&format!("{} seed {} {}", p.name, lang.tag(), sr.describe()), on_path && !bad_ok,
                &format!("{} on_pep788_path={on_path} stderr: {}", r.outcome, stderr_tail(r, 4)));
        }
        for (mode, c) in &counts {
            println!("{:28} PEP 788 path, seed {mode:8}: {} runs: clean {} deadlock {} vanished {} crash {} failed {} leaked {}",
                p.name, c.iter().sum::<u32>(), c[0], c[1], c[2], c[3], c[4], c[5]);
        }
    }
    if !d.found.iter().any(|p| p.minor() >= (3, 15)) {
        println!("no CPython with PEP 788 (3.15+) found: the PEP 788 path was NOT exercised");
    }
    tally.finish(t0);
}
