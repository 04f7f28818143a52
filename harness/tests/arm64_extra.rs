//! The arm64 pieces that launcher.rs covers on x86-64, for the arm64 mode (`GILGATE_ARCH=aarch64`,
//! scripts/arm64.sh); in the x86-64 run it reports itself as not run (nothing counted).
//!
//! - `gilgate-run` in the installed layout (`<prefix>/bin/gilgate-run`, `<prefix>/lib/libgilgate.so.0`
//!   the arm64 library) running the raw seed host of each arm64 CPython through that tree's
//!   loader under qemu: the preload reaches the arm64 process (its stats line is printed under
//!   `--stats`) under `--policy abort`: the run ends clean with the stats line, or in the policy's
//!   abort (chosen when the park watchdog could not see the guest's waits under qemu-user; it
//!   calibrates now, and the default `park` is covered in the arm64 mode by dropin);
//! - `gilgate-run --check` (the x86-64 `gilgate-check` reading arm64 ELF files) and the arm64
//!   `gilgate-check` itself under qemu, on: the raw seed host (linked to libpython: 0 covered),
//!   the host linked with gilgate ahead (0), Debian's static arm64 `python3.X` (3, partly
//!   covered), the dlopen host (0), and a static arm64 program (1);
//! - `c_tests/dlopen_host.c` per CPython under gilgate-run, polite (clean, every entry gated,
//!   0 open regions) and rude under `--policy abort` (clean with nothing unasked on stderr, or the
//!   policy's abort).
use gilgate_harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

fn cross(args: &[String]) -> Result<(), String> {
    let o = Command::new(cc(false)).args(args).output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{} {}: {}", cc(false), args.join(" "), String::from_utf8_lossy(&o.stderr)))
    }
}

/// `<out>/prefix`: bin/gilgate-run (a copy of tools/gilgate-run) and lib/libgilgate.so.0 (the
/// arm64 library), the layout `cmake/install.sh` makes.
fn installed_prefix() -> Result<PathBuf, String> {
    let pre = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&pre);
    std::fs::create_dir_all(pre.join("bin")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(pre.join("lib")).map_err(|e| e.to_string())?;
    std::fs::copy(repo_root().join("tools/gilgate-run"), pre.join("bin/gilgate-run")).map_err(|e| e.to_string())?;
    std::fs::copy(built_lib(), pre.join("lib/libgilgate.so")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("libgilgate.so", pre.join("lib/libgilgate.so.0")).map_err(|e| e.to_string())?;
    Ok(pre)
}

/// gilgate-run [opts] <the tree's loader under qemu> PROGRAM ARGS (the loader honours LD_PRELOAD).
fn under_launcher(pre: &Path, p: &Python, opts: &[&str], program: &Path, args: &[String]) -> Command {
    let mut c = Command::new(pre.join("bin/gilgate-run"));
    for v in ["LD_PRELOAD", "GILGATE_ON_FINALIZE", "GILGATE_DRAIN_TIMEOUT_MS", "GILGATE_VERBOSE", "GILGATE_SHOW_STATS"] {
        c.env_remove(v);
    }
    c.args(opts).args(&p.run_prefix).arg(program).args(args);
    for (k, v) in &p.env {
        c.env(k, v);
    }
    c
}

fn main() {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    if !arm64() {
        println!("arm64_extra: not run (the arm64 mode is GILGATE_ARCH=aarch64: scripts/arm64.sh); nothing counted");
        record("arm64 suites (GILGATE_ARCH=aarch64)", "arm64_extra: not run (GILGATE_ARCH is not aarch64)", "absent");
        return;
    }
    let d = discover();
    announce("arm64: gilgate-run, --check on arm64 ELF files, the dlopen host (under qemu-user)", &d);
    let out = out_dir().join("arm64_extra");
    std::fs::create_dir_all(&out).unwrap();
    let pre = match installed_prefix() {
        Ok(p) => p,
        Err(e) => {
            tally.case("installed layout (bin/gilgate-run, lib/libgilgate.so.0)", false, &e);
            tally.finish(t0);
        }
    };
    let host = out.join("dlopen_host");
    let hb = cross(&["-O1".into(), "-g".into(), "-Wall".into(), "-Wextra".into(), "-Werror".into(), "-pthread".into(),
        s(&repo_root().join("c_tests/dlopen_host.c")), "-o".into(), s(&host), "-ldl".into()]);
    if let Err(e) = &hb {
        tally.case("build dlopen_host (aarch64)", false, e);
    }
    let stat = out.join("static_prog");
    std::fs::write(out.join("static_prog.c"), "int main(void) { return 0; }\n").unwrap();
    let sb = cross(&["-static".into(), s(&out.join("static_prog.c")), "-o".into(), s(&stat)]);
    if let Err(e) = &sb {
        tally.case("build static_prog (aarch64)", false, e);
    }

    // --check: the x86-64 gilgate-check (what gilgate-run --check runs here) on arm64 files, and
    // the arm64 gilgate-check under qemu (what --check runs on an arm64 machine).
    let host_check = repo_root().join("target/release/gilgate-check");
    let arm_check = built_lib().with_file_name("gilgate-check");
    let check = |tally: &mut Tally, what: &str, file: &Path, want: i32, words: &str| {
        for (who, mut c) in [("gilgate-check (x86-64)", Command::new(&host_check)), ("gilgate-check (aarch64, qemu)", native(&arm_check))] {
            c.arg(file);
            let r = run(c, Duration::from_secs(20));
            let got = match r.outcome {
                Outcome::Clean(_) => Some(0),
                Outcome::Failed(c) => Some(c),
                _ => None,
            };
            tally.case(&format!("{who} on {what}: {want}"), got == Some(want) && r.stdout.contains(words),
                &format!("exit {got:?}, want {want} and '{words}': {} {}", r.stdout, r.stderr));
        }
    };
    let gr_check = |tally: &mut Tally, what: &str, file: &Path, want: i32| {
        // gilgate-run --check runs <prefix>/bin/gilgate-check, else the build tree's: here the
        // installed layout has none, so it reports that (exit 2) or finds the build tree's.
        let mut c = Command::new(repo_root().join("tools/gilgate-run"));
        c.arg("--check").arg(file);
        let r = run(c, Duration::from_secs(20));
        let got = match r.outcome {
            Outcome::Clean(_) => Some(0),
            Outcome::Failed(c) => Some(c),
            _ => None,
        };
        tally.case(&format!("tools/gilgate-run --check on {what}: {want}"), got == Some(want), &format!("exit {got:?}: {} {}", r.stdout, r.stderr));
    };
    if sb.is_ok() {
        check(&mut tally, "a static aarch64 program", &stat, 1, "NOT covered");
        gr_check(&mut tally, "a static aarch64 program", &stat, 1);
    }
    if hb.is_ok() {
        check(&mut tally, "the aarch64 dlopen host", &host, 0, "covered");
    }
    for p in &d.found {
        let (a, b) = p.minor();
        let exe = p.prefix.join(format!("bin/python{a}.{b}{}", if p.debug { "d" } else { "" }));
        if exe.exists() {
            check(&mut tally, &format!("{} python executable (static, aarch64)", p.name), &exe, 3, "partially covered: finalization kills parked (pthread_exit, pause via PLT)");
        }
        match compile_as(p, "seed_host.c", Lang::C, Link::Raw) {
            Ok(h) => {
                check(&mut tally, &format!("{} seed host linked to libpython (aarch64)", p.name), &h, 0, "covered");
                gr_check(&mut tally, &format!("{} seed host linked to libpython (aarch64)", p.name), &h, 0);
            }
            Err(e) => tally.case(&format!("{} build seed_host raw", p.name), false, &e),
        }
        match compile_as(p, "seed_host.c", Lang::C, Link::RawAhead) {
            Ok(h) => check(&mut tally, &format!("{} seed host, gilgate linked ahead (aarch64)", p.name), &h, 0, "covered"),
            Err(e) => tally.case(&format!("{} build seed_host linked ahead", p.name), false, &e),
        }
    }

    // gilgate-run (installed layout) on the raw seed host, and the dlopen host, per CPython.
    #[derive(Clone)]
    enum Job {
        Seed { py: usize, k: u64 },
        Host { py: usize, global: bool, polite: bool },
    }
    let pys = d.found.clone();
    let mut jobs = vec![];
    for (i, p) in pys.iter().enumerate() {
        for k in 0..env_u64("GILGATE_LAUNCHER_RUNS", 2) {
            jobs.push(Job::Seed { py: i, k });
        }
        let (a, b) = p.minor();
        if hb.is_ok() && p.libdir.join(format!("libpython{a}.{b}{}.so.1.0", if p.debug { "d" } else { "" })).exists() {
            for global in [true, false] {
                jobs.push(Job::Host { py: i, global, polite: true });
                jobs.push(Job::Host { py: i, global, polite: false });
            }
        }
    }
    let (pys_r, pre_r, host_r) = (pys.clone(), pre.clone(), host.clone());
    let results = parallel(jobs, concurrency(), move |job| {
        let r = match &job {
            Job::Seed { py, k } => {
                let p = &pys_r[*py];
                match compile_as(p, "seed_host.c", Lang::C, Link::Raw) {
                    Ok(h) => {
                        let args: Vec<String> = ["gilstate", "4", "20000", "1"].iter().map(|x| x.to_string()).chain([k.to_string()]).collect();
                        run(under_launcher(&pre_r, p, &["--stats", "--policy", "abort"], &h, &args), Duration::from_secs(30))
                    }
                    Err(e) => RunResult { outcome: Outcome::Failed(-1), stdout: String::new(), stderr: e, elapsed: Duration::ZERO },
                }
            }
            Job::Host { py, global, polite } => {
                let p = &pys_r[*py];
                let (a, b) = p.minor();
                let lib = p.libdir.join(format!("libpython{a}.{b}{}.so.1.0", if p.debug { "d" } else { "" }));
                let args = vec![s(&lib), if *global { "global".into() } else { "local".into() },
                    if *polite { "polite".into() } else { "rude".into() }, "4".into(), "60".into()];
                let opts: &[&str] = if *polite { &["--stats"] } else { &["--stats", "--policy", "abort"] };
                run(under_launcher(&pre_r, p, opts, &host_r, &args), Duration::from_secs(20))
            }
        };
        (job, r)
    });
    for (job, r) in &results {
        match job {
            Job::Seed { py, k } => {
                let stats = r.stderr.contains("gilgate: stats: gated_entries=");
                let diag = r.stderr.contains("gilgate: ") && r.stderr.contains("policy abort");
                let ok = (matches!(r.outcome, Outcome::Clean(_)) && stats) || (matches!(r.outcome, Outcome::Crash(6)) && diag);
                tally.case(&format!("{} gilgate-run (installed layout) --stats --policy abort, seed host raw build #{k}: clean with stats, or the policy's abort", pys[*py].name), ok,
                    &format!("{} stats line: {stats} stderr: {}", r.outcome, stderr_tail(r, 4)));
            }
            Job::Host { py, global, polite } => {
                let name = format!("{} dlopen host {} {} under gilgate-run", pys[*py].name,
                    if *global { "RTLD_GLOBAL" } else { "RTLD_LOCAL" }, if *polite { "polite" } else { "rude" });
                let res = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("").to_string();
                let ok = if *polite {
                    let entries = field(&res, "entries");
                    matches!(r.outcome, Outcome::Clean(_)) && field(&res, "resolved") == Some("gilgate")
                        && entries.is_some() && field(&res, "gated") == entries && field(&res, "open") == Some("0")
                } else {
                    match &r.outcome {
                        Outcome::Clean(_) => field(&res, "resolved") == Some("gilgate") && gilgate_unasked(&r.stderr).is_none(),
                        Outcome::Crash(6) => r.stderr.contains("gilgate: ") && r.stderr.contains("policy abort"),
                        _ => false,
                    }
                };
                tally.case(&name, ok, &format!("{} {res} stderr: {}", r.outcome, stderr_tail(r, 4)));
            }
        }
    }
    tally.finish(t0);
}
