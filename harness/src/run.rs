//! Running a host under a watchdog and classifying what happened; the job pool; seed-run
//! parameters.

use crate::*;
use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one host run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exited 0; the host's RESULT line.
    Clean(String),
    /// Exited with a RESULT line saying a worker disappeared (pthread_exit without unwinding).
    Vanished(String),
    /// Still running at the watchdog: killed.
    Deadlock,
    /// Killed by a signal (SIGSEGV, SIGABRT, ...).
    Crash(i32),
    /// Exited non-zero for another reason.
    Failed(i32),
    /// A RESULT line with `leaked=N`, N > 0: gilgate still counted N gated regions as open
    /// after every worker had left its region (read before the workers exit).
    Leaked(String),
}

/// Number of outcome kinds (columns of the outcome tables).
pub const OUTCOMES: usize = 6;

/// The `leaked=N` count of a RESULT line (None when absent or `n/a`, i.e. raw builds).
pub fn leaked_count(result: &str) -> Option<u64> {
    result.split_whitespace().find_map(|w| w.strip_prefix("leaked=")).and_then(|v| v.parse().ok())
}

impl Outcome {
    /// Column index in the outcome tables: clean, deadlock, vanished, crash, failed, leaked.
    pub fn index(&self) -> usize {
        match self {
            Outcome::Clean(_) => 0,
            Outcome::Deadlock => 1,
            Outcome::Vanished(_) => 2,
            Outcome::Crash(_) => 3,
            Outcome::Failed(_) => 4,
            Outcome::Leaked(_) => 5,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Clean(_) => "clean",
            Outcome::Vanished(_) => "vanished",
            Outcome::Deadlock => "deadlock",
            Outcome::Crash(_) => "crash",
            Outcome::Failed(_) => "failed",
            Outcome::Leaked(_) => "leaked",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Clean(r) | Outcome::Vanished(r) | Outcome::Leaked(r) => write!(f, "{} ({r})", self.kind()),
            Outcome::Crash(s) => write!(f, "crash (signal {s})"),
            Outcome::Failed(c) => write!(f, "failed (exit {c})"),
            Outcome::Deadlock => write!(f, "deadlock (watchdog)"),
        }
    }
}

pub struct RunResult {
    pub outcome: Outcome,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run with a watchdog; the child gets its own process group so the kill takes everything.
pub fn run(mut cmd: Command, timeout: Duration) -> RunResult {
    use std::io::Read;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let timeout = timeout * time_scale();
    let start = Instant::now();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunResult { outcome: Outcome::Failed(-1), stdout: String::new(), stderr: e.to_string(), elapsed: start.elapsed() }
        }
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if start.elapsed() >= timeout {
            // Kill the child's own process group (the host and anything it spawned). Never
            // through the kill(1) command: a parsing slip there can mean "every process".
            let pid = child.id() as i32;
            if pid > 1 {
                // SAFETY: kill(2) on a process group this harness created (process_group(0)).
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = to.join().unwrap_or_default();
    let stderr = te.join().unwrap_or_default();
    let result_line = stdout.lines().find(|l| l.starts_with("RESULT")).map(|l| l.trim_start_matches("RESULT ").to_string());
    let outcome = match status {
        None => Outcome::Deadlock,
        Some(st) => match (st.code(), st.signal()) {
            (_, Some(sig)) => Outcome::Crash(sig),
            (Some(code), _) => match result_line {
                Some(r) if r.contains("vanished=") && !r.contains("vanished=0 ") => Outcome::Vanished(r),
                Some(r) if leaked_count(&r).map_or(false, |n| n > 0) => Outcome::Leaked(r),
                r if code == 0 => Outcome::Clean(r.unwrap_or_default()),
                _ => Outcome::Failed(code),
            },
            _ => Outcome::Failed(-1),
        },
    };
    let elapsed = start.elapsed();
    note_timing(&cmd, elapsed);
    RunResult { outcome, stdout, stderr, elapsed }
}

/// With GILGATE_TIMINGS=FILE, one line per watched run: seconds, suite, the command line (how
/// docs/testing.md's "where the time goes" is measured; one write per line, O_APPEND).
fn note_timing(cmd: &Command, elapsed: Duration) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GILGATE_TIMINGS") else { return };
    let mut line = format!("{:.3}\t{}\t{}", elapsed.as_secs_f64(), suite_name(), cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&a.to_string_lossy());
    }
    line = line.replace('\n', " ");
    line.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Parameters of one seed-scenario run.
#[derive(Clone, Debug)]
pub struct SeedRun {
    pub mode: &'static str,
    pub workers: u32,
    pub delay_us: u32,
    pub cycles: u32,
    pub seed: u64,
}

impl SeedRun {
    pub fn args(&self) -> Vec<String> {
        vec![self.mode.into(), self.workers.to_string(), self.delay_us.to_string(), self.cycles.to_string(), self.seed.to_string()]
    }
    pub fn describe(&self) -> String {
        format!("{} workers={} delay<{}us cycles={} seed={}", self.mode, self.workers, self.delay_us, self.cycles, self.seed)
    }
}

/// A tiny deterministic PRNG (xorshift), so runs are reproducible from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed host's modes (c_tests/seed_host.c describes each).
pub const MODES: [&str; 7] = ["gilstate", "tstate", "callback", "mixed", "nested", "subinterp", "allowcb"];

/// Run jobs on `threads` workers, returning results in job order.
pub fn parallel<J: Send + 'static, R: Send + 'static>(jobs: Vec<J>, threads: usize, f: impl Fn(J) -> R + Send + Sync + 'static) -> Vec<R> {
    let n = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>()));
    let f = Arc::new(f);
    let hs: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (q, r, f) = (queue.clone(), results.clone(), f.clone());
            std::thread::spawn(move || loop {
                let job = q.lock().unwrap().pop_front();
                match job {
                    Some((i, j)) => {
                        let out = f(j);
                        r.lock().unwrap()[i] = Some(out);
                    }
                    None => return,
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap().into_iter().map(|x| x.unwrap()).collect()
}

/// How many host runs go on at once: the hosts mostly sleep and wait, so a little over the
/// core count keeps the machine busy without starving the watchdog.
pub fn concurrency() -> usize {
    std::env::var("GILGATE_TEST_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism().map(|n| n.get() + 2).unwrap_or(4)
    })
}

pub fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// The last `n` lines of a run's stderr (GILGATE_STDERR_LINES raises `n`), joined with " | ".
/// When CPython printed a fatal error above them, its block (the `Fatal Python error:` line and
/// up to 15 lines after it: the runtime state, the thread stacks) comes first, then "...", so a
/// failure's detail always names CPython's own reason.
pub fn stderr_tail(r: &RunResult, n: usize) -> String {
    let n = n.max(env_u64("GILGATE_STDERR_LINES", 0) as usize);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let from = lines.len().saturating_sub(n);
    let mut out: Vec<&str> = vec![];
    if let Some(f) = lines[..from].iter().position(|l| l.contains("Fatal Python error")) {
        let end = (f + 16).min(from);
        out.extend(&lines[f..end]);
        if end < from {
            out.push("...");
        }
    }
    out.extend(&lines[from..]);
    out.join(" | ")
}

/// Keep a failed run's whole stdout and stderr in `target/failure-logs/<case>.log` (the case
/// name made a file name); returns the path for the failure's detail line.
pub fn keep_failure_log(case: &str, r: &RunResult) -> String {
    let dir = repo_root().join("target/failure-logs");
    let file: String = case.chars().map(|c| if c.is_ascii_alphanumeric() || "._-=".contains(c) { c } else { '_' }).take(180).collect();
    let path = dir.join(format!("{file}.log"));
    let body = format!("case: {case}\noutcome: {}\nelapsed: {:.1}s\n--- stdout\n{}\n--- stderr\n{}\n", r.outcome, r.elapsed.as_secs_f64(), r.stdout, r.stderr);
    match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, body)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not kept: {e})"),
    }
}

/// Run `bash c_tests/<script> <python3-config>` for one CPython; the script's own closing line
/// is `N passed, N failed` and its exit status says whether all passed.
pub fn script_case(tally: &mut Tally, script: &str, p: &Python, timeout: Duration) {
    script_cases(tally, script, std::slice::from_ref(p), timeout);
}

/// `script_case` for each of `pys`, the scripts running side by side (`concurrency()`; each
/// works in its own mktemp directory), the cases tallied in `pys` order.
pub fn script_cases(tally: &mut Tally, script: &str, pys: &[Python], timeout: Duration) {
    let path = repo_root().join("c_tests").join(script);
    let todo: Vec<Python> = pys.iter().filter(|p| wanted(&format!("{} {script}", p.name))).cloned().collect();
    if !path.exists() {
        for p in &todo {
            tally.case(&format!("{} {script}", p.name), false, "script missing");
        }
        return;
    }
    let lib = lib_dir();
    let script_s = script.to_string();
    let results = parallel(todo.clone(), concurrency(), move |p| {
        let cfg = if p.prefix == Path::new("/usr") {
            "/usr/bin/python3.11-config".to_string()
        } else {
            p.prefix.join("bin/python3-config").display().to_string()
        };
        let arg = if script_s == "packaging_test.sh" { p.prefix.display().to_string() } else { cfg };
        let mut cmd = Command::new("bash");
        cmd.arg(&path).arg(&arg).env("GILGATE_LIB_DIR", &lib).env("GILGATE_SKIP_CARGO", "1");
        run(cmd, timeout)
    });
    for (p, r) in todo.iter().zip(results) {
        let ok = matches!(r.outcome, Outcome::Clean(_));
        let last = r.stdout.lines().last().unwrap_or("").to_string();
        println!("{:28} {script}: {last}", p.name);
        tally.case(&format!("{} {script}", p.name), ok, &format!("{}\n{}\n{}", r.outcome, r.stdout, r.stderr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh_run(script: &str) -> Outcome {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        run(c, Duration::from_secs(20)).outcome
    }

    #[test]
    fn result_lines_classify_leaked_regions() {
        let line = "RESULT ok=3 finalizing=0 notinit=0 other=0 bad_ok=0 vanished=0 cycles=1 kills=0 hangs=0";
        assert_eq!(sh_run(&format!("echo '{line} leaked=0'")).index(), 0);
        assert_eq!(sh_run(&format!("echo '{line} leaked=n/a'")).index(), 0);
        assert!(matches!(sh_run(&format!("echo '{line} leaked=2'; exit 1")), Outcome::Leaked(_)));
        assert!(matches!(sh_run(&format!("echo '{line} leaked=1'")), Outcome::Leaked(_)));
        assert_eq!(leaked_count("a=1 leaked=7 b=2"), Some(7));
        assert_eq!(leaked_count("leaked=n/a"), None);
    }
}

/// The first line gilgate wrote on stderr that was not asked for (everything but the
/// GILGATE_SHOW_STATS line): under the default policy a program that exits clean raw must get
/// none.
pub fn gilgate_unasked(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| l.starts_with("gilgate: ") && !l.starts_with("gilgate: stats: "))
}

/// Watchdog timeouts are multiplied by this (`GILGATE_TIME_SCALE`; default 6 in the arm64 mode,
/// where every instruction is emulated, else 1). Only the watchdogs: nothing asserts a time.
pub fn time_scale() -> u32 {
    std::env::var("GILGATE_TIME_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(if arm64() { 6 } else { 1 })
}

/// A further watchdog factor for one CPython: 4 for a Py_DEBUG build in the arm64 mode, else 1.
/// Such a build is unoptimised with its stdlib unfrozen, and under qemu-user every
/// Py_Initialize/Py_FinalizeEx cycle costs it ~14 s of CPU (c_tests/api_edges.c, 4 cycles: 57 s
/// of CPU, 107 s at load 6, over the 180 s watchdog at load 16-21; measured 2026-12-06). Only the
/// watchdogs: nothing asserts a time.
pub fn debug_scale(p: &Python) -> u32 {
    if arm64() && p.debug { 4 } else { 1 }
}

/// A command for a program of this test's architecture that needs no CPython tree: itself, or
/// in the arm64 mode the program under qemu-user with the cross toolchain's sysroot.
pub fn native(program: &std::path::Path) -> Command {
    if arm64() {
        let mut c = Command::new(std::env::var("GILGATE_QEMU").unwrap_or_else(|_| "qemu-aarch64-static".into()));
        c.arg("-L").arg(std::env::var("GILGATE_ARM64_SYSROOT").unwrap_or_else(|_| "/usr/aarch64-linux-gnu".into())).arg(program);
        c
    } else {
        Command::new(program)
    }
}
