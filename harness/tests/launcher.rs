//! The preload user's tools (issue 13): `tools/gilgate-run` (arguments, environment, exit status
//! and signals, the installed layout, relative and symlinked invocations, no process forked on the
//! run path: issue 20), `gilgate-run --check` on the programs the issue names (a statically
//! linked interpreter: partially covered, its pthread_exit/pause relocations cross-checked with
//! objdump -R),
//! gilgate's `dlsym`/`dlvsym` (what it rewrites and what it must leave alone, RTLD_NEXT included),
//! a host that dlopens libpython (RTLD_GLOBAL and RTLD_LOCAL), polite and rude, on every CPython
//! under gilgate-run, and the build tree's soname link (the README's link example).
//!
//! GILGATE_LAUNCHER_RUNS (default 2): rude runs per (CPython, RTLD mode).

use gilgate_harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GILGATE_VARS: [&str; 5] = ["LD_PRELOAD", "GILGATE_ON_FINALIZE", "GILGATE_DRAIN_TIMEOUT_MS", "GILGATE_VERBOSE", "GILGATE_SHOW_STATS"];
/// Prints what the launcher set: LD_PRELOAD|policy|timeout|verbose|stats.
const SHOW: &str = r#"printf '%s|%s|%s|%s|%s' "${LD_PRELOAD-unset}" "${GILGATE_ON_FINALIZE-unset}" "${GILGATE_DRAIN_TIMEOUT_MS-unset}" "${GILGATE_VERBOSE-unset}" "${GILGATE_SHOW_STATS-unset}""#;

fn launcher() -> PathBuf {
    repo_root().join("tools/gilgate-run")
}

/// The launcher with a clean gilgate environment.
fn gr(args: &[&str]) -> Command {
    let mut c = Command::new(launcher());
    for v in GILGATE_VARS {
        c.env_remove(v);
    }
    c.args(args);
    c
}

fn code(o: &Outcome) -> Option<i32> {
    match o {
        Outcome::Clean(_) => Some(0),
        Outcome::Failed(c) => Some(*c),
        _ => None,
    }
}

fn gcc(args: &[String]) -> Result<(), String> {
    let o = Command::new("gcc").args(args).output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("gcc {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr)))
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The libpython of a CPython found by discover().
fn libpython(p: &Python) -> Option<PathBuf> {
    let (a, b) = p.minor();
    [format!("libpython{a}.{b}.so.1.0"), format!("libpython{a}.{b}.so")].iter().map(|n| p.libdir.join(n)).find(|f| f.exists())
}

/// `gilgate-run [opts] PROGRAM...` for a CPython run through a private loader (Debian unstable
/// trees): the loader is the program, which honours LD_PRELOAD like the system one.
fn under_launcher(p: &Python, opts: &[&str], program: &Path, args: &[String]) -> Command {
    let mut c = gr(opts);
    c.args(&p.run_prefix).arg(program).args(args);
    for (k, v) in &p.env {
        c.env(k, v);
    }
    c
}

fn raw_cmd(p: &Python, program: &Path, args: &[String]) -> Command {
    let mut c = p.command(program);
    c.args(args);
    for v in GILGATE_VARS {
        c.env_remove(v);
    }
    c
}

/// `gilgate-run --check PROG` must exit `want` and say `must_say`.
fn check(tally: &mut Tally, what: &str, prog: &Path, want: i32, must_say: &str) {
    check_all(tally, what, prog, want, &[must_say]);
}

/// `gilgate-run --check PROG` must exit `want` and say each of `must_say`.
fn check_all(tally: &mut Tally, what: &str, prog: &Path, want: i32, must_say: &[&str]) {
    let r = run(gr(&["--check", &s(prog)]), Duration::from_secs(30));
    let ok = code(&r.outcome) == Some(want) && must_say.iter().all(|m| r.stdout.contains(m));
    println!("  --check {:60} exit {:?}: {}", s(prog), code(&r.outcome), r.stdout.lines().filter(|l| !l.starts_with("  ")).last().unwrap_or(""));
    tally.case(&format!("--check {what}: exit {want}"), ok, &format!("{} {} {}", r.outcome, r.stdout, r.stderr));
}

fn field<'a>(result: &'a str, key: &str) -> Option<&'a str> {
    result.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

fn main() {
    let t0 = Instant::now();
    let rude_runs = env_u64("GILGATE_LAUNCHER_RUNS", 2);
    let d = discover();
    announce("gilgate-run, gilgate-run --check, dlsym interposition, dlopen hosts", &d);
    let mut tally = Tally::default();
    let out = out_dir().join("launcher");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let lib = std::fs::canonicalize(repo_root().join("target/release/libgilgate.so")).expect("target/release/libgilgate.so: run cargo build --release");
    let lib_s = s(&lib);

    // ---- 1. the launcher: arguments, environment, exit status, signals ----------------------
    let r = run(gr(&["sh", "-c", SHOW]), Duration::from_secs(20));
    tally.case("gilgate-run: LD_PRELOAD is the build tree's library; no GILGATE_* set unasked",
        r.stdout == format!("{lib_s}|unset|unset|unset|unset") && code(&r.outcome) == Some(0), &format!("{} {:?}", r.outcome, r.stdout));
    let r = run(gr(&["--policy", "hang", "--drain-timeout-ms", "250", "--verbose", "--stats", "sh", "-c", SHOW]), Duration::from_secs(20));
    tally.case("gilgate-run: options become GILGATE_ON_FINALIZE/DRAIN_TIMEOUT_MS/VERBOSE/SHOW_STATS",
        r.stdout == format!("{lib_s}|hang|250|1|1") && r.stderr.contains("gilgate: loaded"), &format!("{:?} {:?}", r.stdout, r.stderr));
    let r = run(gr(&["--policy=exit", "--drain-timeout-ms=0", "sh", "-c", SHOW]), Duration::from_secs(20));
    tally.case("gilgate-run: --opt=value forms", r.stdout == format!("{lib_s}|exit|0|unset|unset"), &r.stdout);
    for pol in ["park", "abort"] {
        let r = run(gr(&["--policy", pol, "sh", "-c", SHOW]), Duration::from_secs(20));
        tally.case(&format!("gilgate-run: --policy {pol} is accepted"), r.stdout == format!("{lib_s}|{pol}|unset|unset|unset"),
            &format!("{} {:?} {:?}", r.outcome, r.stdout, r.stderr));
    }
    // Invoked by a relative path, through '..', and through a symlink: the same physical library.
    let rel = |dir: &Path, path: &str| {
        let mut c = Command::new("sh");
        c.args(["-c", r#"cd "$1" && exec "$2" sh -c "$3""#, "sh", &s(dir), path, SHOW]);
        for v in GILGATE_VARS {
            c.env_remove(v);
        }
        run(c, Duration::from_secs(20))
    };
    for (dir, path) in [(repo_root(), "tools/gilgate-run"), (repo_root().join("tools"), "./gilgate-run"),
                        (repo_root().join("target"), "../tools/../tools/gilgate-run")] {
        let r = rel(&dir, path);
        tally.case(&format!("gilgate-run invoked as {path} from {}: LD_PRELOAD is the physical library path", s(&dir)),
            r.stdout == format!("{lib_s}|unset|unset|unset|unset"), &format!("{} {:?} {:?}", r.outcome, r.stdout, r.stderr));
    }
    let symdir = out.join("symlinked-dir");
    let _ = std::os::unix::fs::symlink(repo_root().join("tools"), &symdir);
    let r = rel(&out, "symlinked-dir/gilgate-run");
    tally.case("gilgate-run through a symlinked directory: LD_PRELOAD is the physical library path",
        r.stdout == format!("{lib_s}|unset|unset|unset|unset"), &format!("{} {:?} {:?}", r.outcome, r.stdout, r.stderr));
    // Start-up cost (issue 20): the run path forks nothing (no readlink, dirname, $(...)
    // subshell); through a symlink, at most one readlink process.
    let forks = |args: &[&str]| -> Option<(usize, String)> {
        let trace = out.join("strace.txt");
        let mut c = Command::new("strace");
        c.args(["-f", "-e", "trace=fork,vfork,clone,clone3,execve", "-o"]).arg(&trace).args(args);
        for v in GILGATE_VARS {
            c.env_remove(v);
        }
        let o = c.output().ok()?;
        if !o.status.success() {
            return None;
        }
        let t = std::fs::read_to_string(&trace).ok()?;
        let n = t.lines().filter(|l| l.contains("clone(") || l.contains("clone3(") || l.contains("fork(")).count();
        Some((n, t))
    };
    if Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        let l = s(&launcher());
        for (args, max, what) in [
            (vec![l.as_str(), "true"], 0, "forks no process"),
            (vec![l.as_str(), "--policy", "park", "--drain-timeout-ms", "100", "--verbose", "--stats", "true"], 0, "with every option forks no process"),
            (vec![l.as_str(), "/bin/true"], 0, "forks no process (PROGRAM given by path)"),
        ] {
            match forks(&args) {
                Some((n, t)) => tally.case(&format!("gilgate-run {what} (strace: {n} fork/clone)"), n <= max, &t),
                None => tally.case(&format!("gilgate-run {what}: strace ran"), false, ""),
            }
        }
        let link = out.join("linked-gilgate-run");
        let _ = std::os::unix::fs::symlink(launcher(), &link);
        match forks(&[&s(&link), "true"]) {
            Some((n, t)) => tally.case(&format!("gilgate-run through a symlink: at most one process (readlink -f) (strace: {n})"), n <= 1, &t),
            None => tally.case("gilgate-run through a symlink: strace ran", false, ""),
        }
    } else {
        println!("  strace absent: the launcher's no-fork start-up not checked");
    }
    let libm = String::from_utf8_lossy(&Command::new("gcc").arg("-print-file-name=libm.so.6").output().unwrap().stdout).trim().to_string();
    let libm = std::fs::canonicalize(&libm).map(|p| s(&p)).unwrap_or(libm);
    let r = run({ let mut c = gr(&["sh", "-c", SHOW]); c.env("LD_PRELOAD", &libm); c }, Duration::from_secs(20));
    tally.case("gilgate-run: an existing LD_PRELOAD is kept, first; gilgate appended",
        r.stdout.starts_with(&format!("{libm}:{lib_s}|")), &r.stdout);
    let r = run({ let mut c = gr(&["sh", "-c", SHOW]); c.env("LD_PRELOAD", format!("{libm} {lib_s}")); c }, Duration::from_secs(20));
    tally.case("gilgate-run: gilgate already in LD_PRELOAD is not added twice", r.stdout.starts_with(&format!("{libm} {lib_s}|")), &r.stdout);
    let r = run({ let mut c = gr(&["sh", "-c", SHOW]); c.env("GILGATE_ON_FINALIZE", "hang").env("GILGATE_DRAIN_TIMEOUT_MS", "7"); c }, Duration::from_secs(20));
    tally.case("gilgate-run: the caller's GILGATE_* values are kept when no option overrides them",
        r.stdout == format!("{lib_s}|hang|7|unset|unset"), &r.stdout);
    let r = run(gr(&["--", "sh", "-c", r#"printf '[%s]' "$@""#, "x", "a b", "", "*", "--policy"]), Duration::from_secs(20));
    tally.case("gilgate-run: PROGRAM's arguments pass through intact (after --)", r.stdout == "[a b][][*][--policy]", &r.stdout);
    let r = run(gr(&["sh", "-c", "exit 7"]), Duration::from_secs(20));
    tally.case("gilgate-run: PROGRAM's exit status", code(&r.outcome) == Some(7), &format!("{}", r.outcome));
    let r = run(gr(&["sh", "-c", "kill -TERM $$"]), Duration::from_secs(20));
    tally.case("gilgate-run: PROGRAM's death by signal (SIGTERM) is the launcher's", r.outcome == Outcome::Crash(15), &format!("{}", r.outcome));
    match gr(&["sh", "-c", "echo $$"]).stdout(Stdio::piped()).spawn() {
        Ok(child) => {
            let pid = child.id();
            let o = child.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&o.stdout).trim().to_string();
            tally.case("gilgate-run: PROGRAM is exec'd (same process id: signals reach it directly)", said == pid.to_string(),
                &format!("launcher pid {pid}, program said {said}"));
        }
        Err(e) => tally.case("gilgate-run: spawn", false, &e.to_string()),
    }
    for (args, want, what) in [
        (vec!["--policy", "explode", "true"], 125, "--policy"),
        (vec!["--drain-timeout-ms", "12x", "true"], 125, "--drain-timeout-ms"),
        (vec!["--drain-timeout-ms", "99999999", "true"], 125, "at most 3600000"),
        (vec!["--frobnicate", "true"], 125, "unknown option"),
        (vec![], 125, "no PROGRAM"),
        (vec!["/nonexistent/program"], 127, "not found"),
    ] {
        let r = run(gr(&args), Duration::from_secs(20));
        tally.case(&format!("gilgate-run {args:?}: exit {want} with a message"), code(&r.outcome) == Some(want) && r.stderr.contains(what),
            &format!("{} stderr: {}", r.outcome, r.stderr));
    }
    let r = run(gr(&["--verbose", "true"]), Duration::from_secs(20));
    tally.case("gilgate-run: gilgate is loaded and interposes dlsym (GILGATE_VERBOSE)",
        r.stderr.contains("gilgate: loaded") && r.stderr.contains("gilgate: interposing dlsym/dlvsym"), &r.stderr);

    // The installed layout (cmake/install.sh): bin/gilgate-run finds lib/libgilgate.so.0 and
    // libexec/gilgate/gilgate-check, also through a symlink to it.
    let prefix = out.join("prefix");
    let inst = Command::new("sh").arg(repo_root().join("cmake/install.sh")).arg(&prefix).env("GILGATE_SKIP_CARGO", "1")
        .env_remove("CARGO_TARGET_DIR").output().unwrap();
    if !inst.status.success() {
        tally.case("install.sh into a temporary prefix", false, &String::from_utf8_lossy(&inst.stderr));
    } else {
        let link = out.join("elsewhere-gilgate-run");
        let _ = std::os::unix::fs::symlink(prefix.join("bin/gilgate-run"), &link);
        for (name, exe) in [("installed", prefix.join("bin/gilgate-run")), ("installed, via a symlink", link)] {
            let mut c = Command::new(&exe);
            c.args(["sh", "-c", SHOW]).env_remove("LD_PRELOAD");
            let r = run(c, Duration::from_secs(20));
            let want = s(&std::fs::canonicalize(&prefix).unwrap().join("lib/libgilgate.so.0"));
            tally.case(&format!("gilgate-run ({name}) preloads <prefix>/lib/libgilgate.so.0"), r.stdout.starts_with(&format!("{want}|")),
                &format!("{:?} want {want}", r.stdout));
            let r = run({ let mut c = Command::new(&exe); c.args(["--check", "/bin/ls"]); c }, Duration::from_secs(20));
            tally.case(&format!("gilgate-run --check ({name}) runs the installed gilgate-check"),
                code(&r.outcome) == Some(2) && r.stdout.contains("cannot tell"), &format!("{} {}", r.outcome, r.stdout));
        }
        // A prefix whose lib/ is a symbolic link: LD_PRELOAD names the physical directory.
        let prefix2 = out.join("prefix2");
        let _ = std::fs::create_dir_all(prefix2.join("bin"));
        let copied = std::fs::copy(prefix.join("bin/gilgate-run"), prefix2.join("bin/gilgate-run")).is_ok()
            && std::os::unix::fs::symlink(prefix.join("lib"), prefix2.join("lib")).is_ok();
        let mut c = Command::new(prefix2.join("bin/gilgate-run"));
        c.args(["sh", "-c", SHOW]).env_remove("LD_PRELOAD");
        let r = run(c, Duration::from_secs(20));
        let want = s(&std::fs::canonicalize(&prefix).unwrap().join("lib/libgilgate.so.0"));
        tally.case("gilgate-run in a prefix whose lib/ is a symlink preloads the physical lib/libgilgate.so.0",
            copied && r.stdout.starts_with(&format!("{want}|")), &format!("{:?} want {want} {:?}", r.stdout, r.stderr));
    }

    // ---- 2. the build tree as it is: the soname link and the README's link example -----------
    let so0 = repo_root().join("target/release/libgilgate.so.0");
    tally.case("target/release/libgilgate.so.0 -> libgilgate.so (build.rs)",
        std::fs::read_link(&so0).map_or(false, |t| t == Path::new("libgilgate.so")), &format!("{:?}", std::fs::read_link(&so0)));
    if let Some(p) = d.found.iter().find(|p| p.run_prefix.is_empty()) {
        let app = out.join("readme_app.c");
        std::fs::write(&app, README_APP).unwrap();
        let exe = out.join("readme_app");
        let tr = repo_root().join("target/release");
        // The README's command: -Ltarget/release -lgilgate, rpath to the build tree, nothing else.
        let mut a = vec![s(&app), "-o".into(), s(&exe), format!("-I{}", s(&repo_root().join("include")))];
        a.extend(p.cflags.iter().cloned());
        a.extend([format!("-L{}", s(&tr)), "-lgilgate".into(), format!("-Wl,-rpath,{}", s(&tr))]);
        a.extend(p.ldflags.iter().cloned());
        match gcc(&a) {
            Ok(()) => {
                let r = run(p.command(&exe), Duration::from_secs(20));
                tally.case(&format!("README link example from the build tree ({})", p.name),
                    code(&r.outcome) == Some(0) && r.stdout.contains("hello from gilgate"), &format!("{} {} {}", r.outcome, r.stdout, r.stderr));
            }
            Err(e) => tally.case("README link example: build", false, &e),
        }
    }

    // ---- 3. dlsym: the replaced names are exactly the drop-in exports -----------------------
    let nm = Command::new("nm").args(["-D", "--defined-only"]).arg(&lib).output().unwrap();
    let mut exported: Vec<String> = String::from_utf8_lossy(&nm.stdout).lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .filter(|n| n.starts_with("Py") || n.starts_with("_Py")).collect();
    exported.sort();
    let src = std::fs::read_to_string(repo_root().join("src/exports/dlsym.rs")).unwrap();
    let list = src.split("const NAMES").nth(1).and_then(|r| r.split("= [").nth(1)).and_then(|r| r.split("];").next()).unwrap_or("");
    let mut names: Vec<String> = list.split("b\"").skip(1).filter_map(|x| x.split('"').next().map(String::from)).collect();
    names.sort();
    tally.case("src/exports/dlsym.rs NAMES == gilgate's exported CPython functions (nm -D)", !names.is_empty() && names == exported,
        &format!("NAMES {names:?}\nexports {exported:?}"));

    // ---- 4. builds: the probe (program + two libraries), the dlopen host, a static program ----
    let probe_map = out.join("probe.map");
    std::fs::write(&probe_map, "PROBE_1 { global: *; };\n").unwrap();
    let probe_src = s(&repo_root().join("c_tests/dlsym_probe.c"));
    let probe = out.join("dlsym_probe");
    let b = gcc(&["-shared".into(), "-fPIC".into(), "-O1".into(), "-DPROBE_LIB_A".into(), probe_src.clone(), "-o".into(), s(&out.join("libprobea.so")), format!("-Wl,--version-script={}", s(&probe_map))])
        .and_then(|_| gcc(&["-shared".into(), "-fPIC".into(), "-O1".into(), "-DPROBE_LIB_B".into(), probe_src.clone(), "-o".into(), s(&out.join("libprobeb.so")), format!("-Wl,--version-script={}", s(&probe_map))]))
        .and_then(|_| gcc(&["-O1".into(), "-Wall".into(), "-Wextra".into(), "-Werror".into(), probe_src.clone(), "-o".into(), s(&probe), format!("-L{}", s(&out)), "-Wl,--no-as-needed".into(), "-lprobea".into(), "-lprobeb".into(), format!("-Wl,-rpath,{}", s(&out))]));
    if let Err(e) = &b {
        tally.case("build dlsym_probe", false, e);
    }
    let host = out.join("dlopen_host");
    let hb = gcc(&["-O1".into(), "-g".into(), "-Wall".into(), "-Wextra".into(), "-Werror".into(), "-pthread".into(), s(&repo_root().join("c_tests/dlopen_host.c")), "-o".into(), s(&host)]);
    if let Err(e) = &hb {
        tally.case("build dlopen_host", false, e);
    }

    // ---- 5. per CPython: the probe raw and under gilgate-run; the dlopen host ----------------
    #[derive(Clone)]
    enum Job {
        /// `nodlsym`: under gilgate-run with GILGATE_DLSYM=0: handle lookups are libpython's.
        Probe { py: usize, gated: bool, nodlsym: bool },
        Host { py: usize, global: bool, polite: bool, gated: bool, k: u64 },
    }
    let pys = d.found.clone();
    let mut jobs = vec![];
    for (i, p) in pys.iter().enumerate() {
        if libpython(p).is_none() {
            println!("  {:26} no shared libpython in {}: dlopen host not run (absent, not counted)", p.name, p.libdir.display());
            continue;
        }
        if b.is_ok() {
            jobs.push(Job::Probe { py: i, gated: false, nodlsym: false });
            jobs.push(Job::Probe { py: i, gated: true, nodlsym: false });
            jobs.push(Job::Probe { py: i, gated: true, nodlsym: true });
        }
        if hb.is_ok() {
            for global in [true, false] {
                jobs.push(Job::Host { py: i, global, polite: true, gated: true, k: 0 });
                for k in 0..rude_runs {
                    jobs.push(Job::Host { py: i, global, polite: false, gated: true, k });
                }
            }
            jobs.push(Job::Host { py: i, global: true, polite: false, gated: false, k: 0 });
        }
    }
    let (pys_r, probe_r, host_r) = (pys.clone(), probe.clone(), host.clone());
    let results = parallel(jobs, concurrency(), move |job| {
        let r = match &job {
            Job::Probe { py, gated, nodlsym } => {
                let p = &pys_r[*py];
                let expect = match (*gated, *nodlsym) { (false, _) => "raw", (true, false) => "gilgate", (true, true) => "nodlsym" };
                let args = vec![s(&libpython(p).unwrap()), expect.into()];
                let mut c = if *gated { under_launcher(p, &[], &probe_r, &args) } else { raw_cmd(p, &probe_r, &args) };
                if *nodlsym {
                    c.env("GILGATE_DLSYM", "0");
                }
                run(c, Duration::from_secs(20))
            }
            Job::Host { py, global, polite, gated, .. } => {
                let p = &pys_r[*py];
                let args = vec![s(&libpython(p).unwrap()), if *global { "global".into() } else { "local".into() },
                    if *polite { "polite".into() } else { "rude".into() }, "4".into(), "60".into()];
                if *gated {
                    run(under_launcher(p, &["--stats"], &host_r, &args), Duration::from_secs(20))
                } else {
                    run(raw_cmd(p, &host_r, &args), Duration::from_secs(5))
                }
            }
        };
        (job, r)
    });
    // per CPython: polite clean, rude [clean, deadlock named, bad], raw rude outcome
    let mut rows: Vec<(u32, [u32; 3], String)> = vec![(0, [0; 3], String::new()); pys.len()];
    for (job, r) in &results {
        match job {
            Job::Probe { py, gated, nodlsym } => {
                let fails: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
                let how = match (*gated, *nodlsym) {
                    (false, _) => "raw",
                    (true, false) => "under gilgate-run",
                    (true, true) => "under gilgate-run with GILGATE_DLSYM=0 (handle lookups libpython's)",
                };
                tally.case(&format!("{} dlsym_probe {how}", pys[*py].name),
                    code(&r.outcome) == Some(0) && r.stdout.contains("failures=0"),
                    &format!("{} {:?} stderr: {}", r.outcome, fails, stderr_tail(r, 3)));
            }
            Job::Host { py, global, polite, gated, k } => {
                let name = format!("{} dlopen host {} {} {}", pys[*py].name, if *global { "RTLD_GLOBAL" } else { "RTLD_LOCAL" },
                    if *polite { "polite" } else { "rude" }, if *gated { format!("under gilgate-run #{k}") } else { "raw".into() });
                let res = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("").to_string();
                let row = &mut rows[*py];
                if !*gated {
                    row.2 = match &r.outcome {
                        Outcome::Clean(_) => "clean".into(),
                        o => o.kind().to_string(),
                    };
                    if let Outcome::Vanished(_) = r.outcome {
                        row.2 = format!("vanished={}", field(&res, "vanished").unwrap_or("?"));
                    }
                    continue;
                }
                if *polite {
                    let entries = field(&res, "entries").unwrap_or("?");
                    let stats_ok = {
                        let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("gilgate: stats: gated_entries=")).collect();
                        !lines.is_empty() && lines.iter().all(|l| field(l.trim_start_matches("gilgate: stats: "), "gated_entries") == Some(entries))
                    };
                    let ok = matches!(r.outcome, Outcome::Clean(_)) && field(&res, "resolved") == Some("gilgate")
                        && field(&res, "gated") == Some(entries) && field(&res, "open") == Some("0") && stats_ok;
                    if ok {
                        row.0 += 1;
                    }
                    tally.case(&name, ok, &format!("{} {res} (GILGATE_SHOW_STATS agrees: {stats_ok}) stderr: {}", r.outcome, stderr_tail(r, 4)));
                } else {
                    // The default policy parks; a wait on a parked thread is named (then SIGABRT).
                    let diag = r.stderr.contains("gilgate: deadlock: thread ");
                    let k = match &r.outcome {
                        Outcome::Clean(_) if field(&res, "resolved") == Some("gilgate") && gilgate_unasked(&r.stderr).is_none() => 0,
                        Outcome::Crash(6) if diag => 1,
                        _ => 2,
                    };
                    row.1[k] += 1;
                    tally.case(&name, k < 2, &format!("{} {res} stderr: {}", r.outcome, stderr_tail(r, 4)));
                }
            }
        }
    }
    println!();
    println!("{:26} | {:^13} | {:^22} | {:^18}", "dlopen host", "polite clean", "rude clean/named/bad", "raw rude (1 run)");
    for (i, p) in pys.iter().enumerate() {
        if libpython(p).is_some() {
            let (pc, rr, raw) = &rows[i];
            println!("{:26} | {:^13} | {:^22} | {:^18}", p.name, format!("{pc}/2"), format!("{}/{}/{}", rr[0], rr[1], rr[2]), raw);
        }
    }

    // gilgate loaded late (dlopen) cannot interpose dlsym, and says so.
    if let Some(p) = d.found.iter().find(|p| p.run_prefix.is_empty()) {
        match compile_as(p, "late_load.c", Lang::C, Link::Raw) {
            Ok(exe) => {
                let mut c = p.command(&exe);
                c.arg(&lib).env("GILGATE_VERBOSE", "1").env_remove("LD_PRELOAD");
                let r = run(c, Duration::from_secs(20));
                tally.case(&format!("{} gilgate dlopen'ed late: GILGATE_VERBOSE says NOT interposing dlsym", p.name),
                    r.stderr.contains("NOT interposing dlsym"), &format!("{} {}", r.outcome, r.stderr));
            }
            Err(e) => tally.case("build late_load", false, &e),
        }
    }

    // ---- 6. gilgate-run --check -------------------------------------------------------------
    let check_built = repo_root().join("target/release/gilgate-check").exists();
    tally.case("target/release/gilgate-check built (cargo build --release builds it: default-members)", check_built, "");
    for p in d.found.iter().filter(|p| p.name.starts_with("pyenv")) {
        check(&mut tally, &format!("{} (shared libpython)", p.name), &p.exe, 0, "covered: its calls");
    }
    // A statically linked interpreter: its API calls are its own (not gated), but it calls
    // pthread_exit and pause through the PLT, so the preloaded gilgate's are bound: partially
    // covered (exit 3). What --check reads is cross-checked with binutils' objdump -R.
    let mut statics: Vec<(String, PathBuf)> = vec![];
    if Path::new("/usr/bin/python3.11").exists() {
        statics.push(("Debian's /usr/bin/python3.11".into(), PathBuf::from("/usr/bin/python3.11")));
    } else {
        println!("  /usr/bin/python3.11: absent, not checked");
    }
    for p in d.found.iter().filter(|p| p.name.starts_with("debian-unstable")) {
        statics.push((format!("{} executable", p.name), p.exe.clone()));
    }
    for (name, exe) in &statics {
        let o = Command::new("objdump").arg("-R").arg(exe).output();
        let relocs = o.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let slot = |f: &str| relocs.lines().any(|l| l.contains("R_X86_64_JUMP_SLOT") && l.split_whitespace().last().is_some_and(|w| w.split('@').next() == Some(f)));
        tally.case(&format!("objdump -R {name}: pthread_exit and pause are JUMP_SLOT (PLT) relocations"),
            slot("pthread_exit") && slot("pause"), &format!("{o:?}"));
        check_all(&mut tally, &format!("{name} (statically linked interpreter)"), exe, 3,
            &["partially covered: finalization kills parked (pthread_exit, pause via PLT), API calls not gated",
              "no fallible entries, no gate, no drain"]);
    }
    // Stand-ins for a statically linked interpreter (an executable exporting CPython's API):
    // without pthread_exit/pause relocations it is not covered at all; with them, through the
    // PLT or (-fno-plt) the GOT, partially.
    let fake = out.join("fake_static_python.c");
    std::fs::write(&fake, FAKE_STATIC_PYTHON).unwrap();
    for (i, (tag, flags, want, say)) in [
        ("no kill import", vec![], 1, "NOT covered: statically linked CPython"),
        ("pthread_exit via the PLT", vec!["-DKILL"], 3, "partially covered: finalization kills parked (pthread_exit via PLT)"),
        ("pthread_exit and pause via the GOT (-fno-plt)", vec!["-DKILL", "-DPARK", "-fno-plt"], 3,
            "partially covered: finalization kills parked (pthread_exit, pause via GOT)"),
    ].into_iter().enumerate() {
        let exe = out.join(format!("fake_static_python_{i}"));
        let mut a = vec![s(&fake), "-O1".into(), "-rdynamic".into(), "-pthread".into(), "-o".into(), s(&exe)];
        a.extend(flags.iter().map(|f| f.to_string()));
        match gcc(&a) {
            Ok(()) => check(&mut tally, &format!("an executable defining CPython's API, {tag}"), &exe, want, say),
            Err(e) => tally.case(&format!("build the static-interpreter stand-in ({tag})"), false, &e),
        }
    }
    if let Some(p) = d.found.iter().find(|p| p.run_prefix.is_empty()) {
        for (link, say) in [(Link::Raw, "covered: its calls"), (Link::Api, ", ahead of libpython and libc")] {
            match compile_as(p, "seed_host.c", Lang::C, link) {
                Ok(exe) => check(&mut tally, &format!("a C host linked against libpython ({}, {})", p.name, link.tag()), &exe, 0, say),
                Err(e) => tally.case("build seed_host", false, &e),
            }
        }
    }
    if hb.is_ok() {
        check(&mut tally, "the dlopen host", &host, 0, "covered via dlsym interposition");
    }
    let text = out.join("notes.txt");
    std::fs::write(&text, "not a program\n").unwrap();
    check(&mut tally, "a text file", &text, 2, "not an ELF file");
    check(&mut tally, "a missing program", Path::new("/nonexistent/program"), 2, "not found");
    check(&mut tally, "/bin/ls (no CPython)", Path::new("/bin/ls"), 2, "no CPython in sight");
    let script = |name: &str, line: String| {
        let f = out.join(name);
        std::fs::write(&f, format!("{line}\nprint('hi')\n")).unwrap();
        f
    };
    check(&mut tally, "a script whose interpreter cannot be resolved", &script("bad.py", "#!/nonexistent/python".into()), 2, "cannot be resolved");
    if let Some(p) = d.found.iter().find(|p| p.name.starts_with("pyenv")) {
        check(&mut tally, "a script run by a shared-libpython python (#! followed once)", &script("ok.py", format!("#!{}", s(&p.exe))), 0, "covered");
        check(&mut tally, "a script run through env", &script("env.py", format!("#!/usr/bin/env {}", s(&p.exe))), 0, "covered");
    }
    if Path::new("/usr/bin/python3.11").exists() {
        check(&mut tally, "a script run by Debian's static python3.11", &script("deb.py", "#!/usr/bin/python3.11".into()), 3, "partially covered");
    }
    let hello = out.join("hello.c");
    std::fs::write(&hello, "int main(void) { return 0; }\n").unwrap();
    let stat = out.join("hello-static");
    match gcc(&[s(&hello), "-static".into(), "-o".into(), s(&stat)]) {
        Ok(()) => check(&mut tally, "a statically linked program", &stat, 1, "NOT covered: a statically linked executable"),
        Err(e) => println!("  static program: not built (no static libc?): not checked: {}", e.lines().next().unwrap_or("")),
    }
    // setuid: a copy owned by another user. The loader then ignores LD_PRELOAD, which the check
    // predicts and the run confirms (gilgate absent from the process).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let deb_libpython = Path::new("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0");
    if !root || hb.is_err() {
        println!("  setuid copy: not checked (needs root to give a copy to another user)");
    } else {
        let dir = std::env::temp_dir().join(format!("gilgate-setuid-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let copy = dir.join("dlopen_host_setuid");
        let made = std::fs::copy(&host, &copy).is_ok()
            && Command::new("chmod").arg("0755").arg(&dir).status().map_or(false, |st| st.success())
            && Command::new("chown").arg("65534").arg(&copy).status().map_or(false, |st| st.success())
            && Command::new("chmod").arg("4755").arg(&copy).status().map_or(false, |st| st.success());
        if !made {
            tally.case("setuid copy: prepare", false, "copy/chown/chmod failed");
        } else {
            check(&mut tally, "a setuid copy owned by another user", &copy, 1, "NOT covered: LD_PRELOAD is ignored");
            if deb_libpython.exists() {
                let r = run(gr(&[&s(&copy), &s(deb_libpython), "global", "polite", "2", "30"]), Duration::from_secs(20));
                let res = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("");
                tally.case("setuid copy under gilgate-run: the loader ignored the preload, as --check said",
                    matches!(r.outcome, Outcome::Clean(_)) && field(res, "gated") == Some("n/a") && field(res, "resolved") == Some("libpython"),
                    &format!("{} {res} {}", r.outcome, r.stderr));
            } else {
                println!("  setuid copy: not run ({} absent)", deb_libpython.display());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    tally.finish(t0);
}

/// An executable that defines CPython's API markers itself (as a statically linked interpreter
/// does), importing pthread_exit (-DKILL) and pause (-DPARK) or neither.
const FAKE_STATIC_PYTHON: &str = r#"#include <pthread.h>
#include <unistd.h>
int Py_IsInitialized(void) { return 1; }
int PyGILState_Ensure(void) { return 0; }
int main(int argc, char **argv) {
    (void)argv;
#ifdef KILL
    if (argc == 5) pthread_exit(0);
#endif
#ifdef PARK
    if (argc == 6) pause();
#endif
    return argc > 7;
}
"#;

/// The README's example host (include gilgate.h, link -lgilgate ahead of libpython).
const README_APP: &str = r#"#include <Python.h>
#include "gilgate.h"
int main(void) {
    Py_Initialize();
    PyThreadState *ts = PyEval_SaveThread();
    int st, rc = 1;
    if (gilgate_gilstate_ensure(&st) == GILGATE_OK) {
        PyRun_SimpleString("print('hello from gilgate')");
        gilgate_gilstate_release(st);
    }
    PyEval_RestoreThread(ts);
    return gilgate_finalize(&rc) == GILGATE_OK ? rc : 1;
}
"#;
