//! The clients' acquire/release idioms (c_tests/idioms_ext.c: pybind11's fresh-thread acquire,
//! an owned thread state with an ALLOW_THREADS pair inside, gilstate, a callback during a foreign
//! call, Cython's Swap(NULL)/RestoreThread) from native threads of an extension module, run by
//! the `python` of every CPython, raw and with gilgate preloaded, stopped the ways programs stop
//! them (c_tests/idioms_main.py).
//!
//! Under gilgate: a polite program (join, atexit before or after the threads ran, fork) must end
//! clean, with gilgate having seen its calls (gated_entries > 0), 0 regions left open and no
//! drain that timed out, in the parent and in a forked child; a rude one (threads never stop)
//! must exit 0 with nothing from gilgate on stderr but the stats line (the default policy parks
//! what CPython would kill or park): never a hang, a crash, a CPython fatal error or a vanished
//! thread. Raw runs are recorded, not asserted: polite ones
//! must be clean there too, or the program itself is wrong (asserted).

use gilgate_harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const MODES: [&str; 5] = ["pybind11", "owned", "gilstate", "foreign", "swap"];
const VARIANTS: [&str; 5] = ["join", "atexit-before", "atexit-after", "fork", "rude"];

fn build_ext(p: &Python) -> Result<PathBuf, String> {
    let mut q = Command::new(&p.python_cmd[0]);
    q.args(&p.python_cmd[1..]).args(["-c", "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))"]);
    for (k, v) in &p.env {
        q.env(k, v);
    }
    let o = q.output().map_err(|e| e.to_string())?;
    let suffix = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() || suffix.is_empty() {
        return Err(format!("EXT_SUFFIX: {}", String::from_utf8_lossy(&o.stderr)));
    }
    let dir = out_dir().join("idioms").join(&p.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(format!("gg_idioms{suffix}"));
    let st = Command::new(cc(false))
        .args(["-shared", "-fPIC", "-O2", "-Wall"])
        .args(p.cflags.iter().filter(|f| f.starts_with("-I") || f.starts_with("-D")))
        .arg(repo_root().join("c_tests/idioms_ext.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("gcc failed".into());
    }
    Ok(dir)
}

fn stats_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("gilgate: stats:")).collect()
}

fn stat(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('='))).and_then(|v| v.parse().ok())
}

fn main() {
    let t0 = Instant::now();
    let d = discover().without_debug("the Py_DEBUG builds run in c_hosts, dropin and pep788; extension modules and wheels here are built for the release ABI");
    announce("client idioms from an extension module's native threads (python + LD_PRELOAD)", &d);
    let mut tally = Tally::default();
    let lib = lib_dir().join("libgilgate.so");
    let runs = env_u64("GILGATE_IDIOM_RUNS", 2);
    let mut jobs = vec![];
    // A statically linked `python` (Debian's) keeps its own CPython symbols whatever is preloaded
    // (docs/design.md: what a preload covers): run the programs through c_tests/pymain.c there, a
    // `python` linked against that CPython's shared libpython.
    let mut launcher: Vec<Option<PathBuf>> = vec![];
    for p in &d.found {
        let is_static = Command::new(binutil("nm")).args(["-D", "--defined-only"]).arg(&p.exe).output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.ends_with(" PyGILState_Ensure")))
            .unwrap_or(false);
        launcher.push(if is_static {
            match compile_as(p, "pymain.c", Lang::C, Link::Raw) {
                Ok(exe) => {
                    println!("  {}: static python executable; programs run through {}", p.name, exe.display());
                    Some(exe)
                }
                Err(e) => {
                    tally.case(&format!("{} build pymain", p.name), false, &e);
                    None
                }
            }
        } else {
            None
        });
    }
    for (i, p) in d.found.iter().enumerate() {
        match build_ext(p) {
            Ok(dir) => {
                for m in MODES {
                    for v in VARIANTS {
                        if v == "fork" && m != "owned" {
                            continue; // forking amid PyThreadState_New/Delete can hang raw 3.8
                        }
                        for k in 0..runs {
                            jobs.push((i, dir.clone(), m, v, true, k));
                        }
                        jobs.push((i, dir.clone(), m, v, false, 0));
                    }
                }
            }
            Err(e) => tally.case(&format!("{} build gg_idioms", p.name), false, &e),
        }
    }
    let pys = d.found.clone();
    let lib_r = lib.clone();
    let results = parallel(jobs, concurrency(), move |(i, dir, m, v, pre, k)| {
        let p = &pys[i];
        let mut c = match &launcher[i] {
            Some(exe) => p.command(exe),
            None => {
                let mut c = Command::new(&p.python_cmd[0]);
                c.args(&p.python_cmd[1..]);
                for (key, val) in &p.env {
                    c.env(key, val);
                }
                c
            }
        };
        c.arg(repo_root().join("c_tests/idioms_main.py")).args([m, v]);
        c.env("PYTHONPATH", &dir).env("GILGATE_SHOW_STATS", "1");
        if pre {
            c.env("LD_PRELOAD", &lib_r);
            if v != "rude" {
                // Polite programs must end with no drain timeout: a 20 s bound (not the 2 s
                // default) makes one a real stuck region, never a starved machine.
                c.env("GILGATE_DRAIN_TIMEOUT_MS", "20000");
            }
        }
        ((i, m, v, pre, k), run(c, Duration::from_secs(60)))
    });
    // (python, mode, variant) -> (raw outcome, gilgate outcomes)
    let mut table: std::collections::BTreeMap<(usize, usize, usize), (String, Vec<String>)> = Default::default();
    for ((i, m, v, pre, k), r) in results {
        let p = &d.found[i];
        let name = format!("{} {m} {v} {}#{k}", p.name, if pre { "gilgate" } else { "raw" });
        let fatal = r.stderr.contains("Fatal Python error");
        let diag = r.stderr.contains("gilgate:") && r.stderr.contains("policy abort");
        let polite = v != "rude";
        let short = match (&r.outcome, fatal, diag) {
            (_, true, _) => "fatal".to_string(),
            (Outcome::Clean(_), ..) => "clean".into(),
            (Outcome::Crash(6), _, true) => "abort(diag)".into(),
            (o, ..) => o.kind().into(),
        };
        let key = (i, MODES.iter().position(|x| *x == m).unwrap(), VARIANTS.iter().position(|x| *x == v).unwrap());
        let e = table.entry(key).or_default();
        if !pre {
            e.0 = short.clone();
            if polite {
                tally.case(&name, matches!(r.outcome, Outcome::Clean(_)) && !fatal,
                    &format!("the program itself is wrong: {} {}", r.outcome, r.stderr.lines().last().unwrap_or("")));
            }
            continue;
        }
        e.1.push(short.clone());
        if polite {
            let lines = stats_lines(&r.stderr);
            let expect = if v == "fork" { 2 } else { 1 };
            let mut why = vec![];
            if !matches!(r.outcome, Outcome::Clean(_)) || fatal {
                why.push(format!("outcome {}", r.outcome));
            }
            if lines.len() < expect {
                why.push(format!("{} stats line(s), expected {expect}", lines.len()));
            }
            for l in &lines {
                if stat(l, "drain_timeouts") != Some(0) || stat(l, "open_regions") != Some(0) {
                    why.push(format!("drain timed out or regions left open: {l}"));
                }
            }
            if lines.last().and_then(|l| stat(l, "gated_entries")).unwrap_or(0) == 0 {
                why.push("gilgate saw no entry".into());
            }
            if r.stderr.contains("TIMED OUT") {
                why.push("drain TIMED OUT".into());
            }
            tally.case(&name, why.is_empty(), &format!("{}\n{}", why.join("; "), r.stderr.lines().rev().take(4).collect::<Vec<_>>().join(" | ")));
        } else {
            // Rude: the default policy parks what cannot be told, so the program exits 0 as it
            // does raw (or better, where raw crashes), and gilgate says nothing unasked.
            let unasked = gilgate_unasked(&r.stderr).is_some();
            let ok = !fatal && matches!(r.outcome, Outcome::Clean(_)) && !unasked;
            tally.case(&name, ok, &format!("{}{} {}", r.outcome, if unasked { " (gilgate wrote to stderr)" } else { "" },
                r.stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")));
        }
    }
    // c_tests/swap_host.c (3.12+): mod_wsgi's and JEP's PyThreadState_Swap between interpreters,
    // a polite embedding host, preloaded and linked ahead of libpython.
    for p in d.found.iter().filter(|p| p.minor() >= (3, 12)) {
        for link in [Link::Raw, Link::RawAhead] {
            let exe = match compile_as(p, "swap_host.c", Lang::C, link) {
                Ok(e) => e,
                Err(e) => {
                    tally.case(&format!("{} build swap_host", p.name), false, &e);
                    continue;
                }
            };
            for gated in [false, true] {
                if link == Link::RawAhead && !gated {
                    continue;
                }
                let mut c = p.command(&exe);
                c.arg("4").env("GILGATE_SHOW_STATS", "1");
                if gated && link == Link::Raw {
                    c.env("LD_PRELOAD", &lib);
                }
                let r = run(c, Duration::from_secs(60));
                let how = if !gated { "raw" } else if link == Link::Raw { "LD_PRELOAD" } else { "linked ahead" };
                let mut why = vec![];
                if !matches!(r.outcome, Outcome::Clean(_)) || r.stderr.contains("Fatal Python error") {
                    why.push(format!("outcome {}", r.outcome));
                }
                if gated {
                    match stats_lines(&r.stderr).last() {
                        Some(l) => {
                            if stat(l, "drain_timeouts") != Some(0) || stat(l, "open_regions") != Some(0) || stat(l, "gated_entries").unwrap_or(0) == 0 {
                                why.push(format!("stats: {l}"));
                            }
                        }
                        None => why.push("no stats line".into()),
                    }
                }
                println!("  {} swap_host (Swap between interpreters) {how}: {}", p.name, r.outcome);
                tally.case(&format!("{} swap_host {how}", p.name), why.is_empty(),
                    &format!("{}\n{}", why.join("; "), r.stderr.lines().rev().take(4).collect::<Vec<_>>().join(" | ")));
            }
        }
    }
    println!("\n| CPython | idiom | stopped by | raw | through gilgate |\n|---|---|---|---|---|");
    for ((i, m, v), (raw, gg)) in &table {
        let mut g = gg.clone();
        g.sort();
        g.dedup();
        println!("| {} | {} | {} | {} | {} |", d.found[*i].name, MODES[*m], VARIANTS[*v], raw, g.join(", "));
    }
    tally.finish(t0);
}
