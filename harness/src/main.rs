//! `gilgate-harness demo [RUNS]`: the seed's host on raw CPython vs through gilgate, every CPython
//! on the machine, a table of outcomes.
//! `gilgate-harness stress [RUNS]`: the seed scenario with random timing, 1-16 workers, every
//! mode (gilstate, tstate, callback, mixed, nested, subinterp) and build, 1-3 init/finalize
//! cycles, RUNS per CPython version (default 1000), outcome table with a leaked column.
//! `gilgate-harness pythons`: what CPythons were found and which are absent.

use gilgate_harness::*;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).map(String::as_str).unwrap_or("demo");
    let n: Option<u64> = args.get(2).and_then(|v| v.parse().ok());
    match cmd {
        "demo" => demo(n.unwrap_or(20)),
        "stress" => stress(n.unwrap_or(1000)),
        "pythons" => {
            let d = discover();
            for p in &d.found {
                println!("{:28} {}", p.name, p.exe.display());
            }
            for a in &d.absent {
                println!("{a}");
            }
        }
        _ => {
            eprintln!("usage: gilgate-harness demo [RUNS] | stress [RUNS] | pythons\n\
                 \n  demo [RUNS]    the seed's host, raw CPython vs through gilgate, every CPython (default 20)\
                 \n  stress [RUNS]  RUNS seed runs per CPython (default 1000): random mode ({}),\
                 \n                 build, 1-16 workers, finalize timing, 1-3 init/finalize cycles; columns:\
                 \n                 ok, deadlock, vanished, crash, failed, leaked (gated regions still open\
                 \n                 after every worker left its region); exit 1 unless every run is ok;\
                 \n                 GILGATE_STRESS_MODES=a,b and GILGATE_STRESS_PYTHONS=3.12,3.14 narrow it\
                 \n  pythons        the CPythons found and the ones absent", MODES.join(", "));
            std::process::exit(64);
        }
    }
}

fn counts(rs: &[Outcome]) -> [usize; OUTCOMES] {
    let mut c = [0; OUTCOMES];
    for o in rs {
        c[o.index()] += 1;
    }
    c
}

fn fmt(c: [usize; OUTCOMES]) -> String {
    format!("{:>4} {:>8} {:>8} {:>5} {:>6} {:>6}", c[0], c[1], c[2], c[3], c[4], c[5])
}

fn demo(runs: u64) {
    let t0 = Instant::now();
    let d = discover();
    for a in &d.absent {
        println!("{a}");
    }
    println!(
        "\nThe seed's host (C++ -fno-exceptions): 4 workers hold a std::mutex-style lock around every\n\
         PyGILState_Ensure/Release while the main thread finalizes after a random delay (<20 ms);\n\
         then main locks every worker's mutex and joins. {runs} runs per column; watchdog 4 s (raw), 30 s (gilgate).\n"
    );
    println!("{:28} | {:^38} | {:^38}", "", "raw CPython", "through gilgate");
    println!("{:28} | {} | {}", "CPython", fmt_header(), fmt_header());
    for p in &d.found {
        let raw = compile(p, "seed_host.c", Lang::CxxNoExc, false);
        let gg = compile(p, "seed_host.c", Lang::CxxNoExc, true);
        let (raw, gg) = match (raw, gg) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                println!("{:28} | build failed: {}", p.name, e.lines().next().unwrap_or(""));
                continue;
            }
        };
        let mut jobs = vec![];
        for k in 0..runs {
            let run = SeedRun { mode: "gilstate", workers: 4, delay_us: 20_000, cycles: 1, seed: k + 1 };
            jobs.push((raw.clone(), run.clone(), Duration::from_secs(4), false));
            jobs.push((gg.clone(), run, Duration::from_secs(30), true));
        }
        let pc = p.clone();
        let res = parallel(jobs, concurrency(), move |(exe, sr, to, gg)| {
            let mut c = pc.command(&exe);
            c.args(sr.args());
            (gg, run(c, to).outcome)
        });
        let raw_o: Vec<_> = res.iter().filter(|r| !r.0).map(|r| r.1.clone()).collect();
        let gg_o: Vec<_> = res.iter().filter(|r| r.0).map(|r| r.1.clone()).collect();
        println!("{:28} | {} | {}", p.name, fmt(counts(&raw_o)), fmt(counts(&gg_o)));
    }
    println!("\n(clean: every worker finished or got an error code; deadlock: the host hung on a lock a\n vanished worker still held, or a worker hung in CPython; vanished: a worker disappeared)");
    println!("elapsed {:.0}s", t0.elapsed().as_secs_f64());
}

fn fmt_header() -> String {
    format!("{:>4} {:>8} {:>8} {:>5} {:>6} {:>6}", "ok", "deadlock", "vanished", "crash", "failed", "leaked")
}


fn stress(runs: u64) {
    let t0 = Instant::now();
    let d = discover();
    for a in &d.absent {
        println!("{a}");
    }
    let modes: Vec<&str> = match std::env::var("GILGATE_STRESS_MODES") {
        Ok(v) if !v.trim().is_empty() => MODES.iter().copied().filter(|m| v.split(',').any(|x| x.trim() == *m)).collect(),
        _ => MODES.to_vec(),
    };
    if modes.is_empty() {
        eprintln!("GILGATE_STRESS_MODES names no known mode ({})", MODES.join(", "));
        std::process::exit(64);
    }
    println!("stress: {runs} runs per CPython, random mode ({})/build/workers(1-16)/delay(<50ms)/cycles(1-3)\n", modes.join(","));
    println!("{:28} | {}", "CPython", fmt_header());
    let mut total_bad = 0;
    let only = std::env::var("GILGATE_STRESS_PYTHONS").unwrap_or_default();
    for (i, p) in d.found.iter().enumerate() {
        if !only.trim().is_empty() && !only.split(',').any(|x| !x.trim().is_empty() && p.name.contains(x.trim())) {
            continue;
        }
        let mut exes = vec![];
        for lang in Lang::ALL {
            match compile(p, "seed_host.c", lang, true) {
                Ok(e) => exes.push(e),
                Err(e) => {
                    println!("{:28} | build failed: {}", p.name, e.lines().next().unwrap_or(""));
                }
            }
        }
        if exes.len() != 3 {
            total_bad += 1;
            continue;
        }
        let mut rng = Rng::new(0xdead ^ i as u64);
        let jobs: Vec<_> = (0..runs)
            .map(|_| {
                let exe = exes[rng.below(3) as usize].clone();
                let run = SeedRun {
                    mode: modes[rng.below(modes.len() as u64) as usize],
                    workers: 1 + rng.below(16) as u32,
                    delay_us: 1 + rng.below(50_000) as u32,
                    cycles: 1 + rng.below(3) as u32,
                    seed: rng.next() % 1_000_000,
                };
                (exe, run)
            })
            .collect();
        let pc = p.clone();
        let res = parallel(jobs, concurrency(), move |(exe, sr)| {
            let mut c = pc.command(&exe);
            c.args(sr.args());
            let r = run(c, Duration::from_secs(30));
            (exe, sr, r)
        });
        let outs: Vec<_> = res.iter().map(|r| r.2.outcome.clone()).collect();
        let c = counts(&outs);
        println!("{:28} | {}", p.name, fmt(c));
        for (exe, run, r) in &res {
            if !matches!(r.outcome, Outcome::Clean(_)) {
                total_bad += 1;
                let name = format!("{} stress {} {}", p.name, exe.file_name().unwrap().to_string_lossy(), run.describe());
                println!("    {} {} {}: {} (whole output: {})", exe.file_name().unwrap().to_string_lossy(), run.describe(), r.outcome,
                    stderr_tail(r, 3), keep_failure_log(&name, r));
            }
        }
    }
    println!("elapsed {:.0}s", t0.elapsed().as_secs_f64());
    std::process::exit(if total_bad == 0 { 0 } else { 1 });
}
