//! Test harness for gilgate's C and C++ hosts: finds every CPython on the machine, compiles the
//! hosts in c_tests/ against each, runs them under a watchdog and classifies what happened.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The arm64 mode (`GILGATE_ARCH=aarch64`, set by scripts/arm64.sh): the hosts are
/// cross-compiled with aarch64-linux-gnu-gcc against Debian's arm64 CPythons and run under
/// qemu-user (`qemu-aarch64-static`) on this x86-64 machine; the library is the cross build in
/// target/aarch64-unknown-linux-gnu/release.
pub fn arm64() -> bool {
    std::env::var("GILGATE_ARCH").as_deref() == Ok("aarch64")
}

/// The C (`cxx` false) or C++ compiler for the hosts.
pub fn cc(cxx: bool) -> &'static str {
    match (arm64(), cxx) {
        (false, false) => "gcc",
        (false, true) => "g++",
        (true, false) => "aarch64-linux-gnu-gcc",
        (true, true) => "aarch64-linux-gnu-g++",
    }
}

/// Whether gilgate's park watchdog can see what the main thread waits in. Not under qemu-user
/// (the arm64 mode): it reads `/proc/self/task/T/syscall`, which qemu-user leaves to the host
/// kernel, so it shows the host's syscall numbers (x86-64 futex 202, not aarch64's 98) of qemu's
/// own threads. The cases whose outcome depends on it are reported as not run there.
pub fn watchdog_observable() -> bool {
    !arm64()
}

/// A binutils program (`nm`, `objdump`, `readelf`) for this test's architecture.
pub fn binutil(name: &str) -> String {
    if arm64() { format!("aarch64-linux-gnu-{name}") } else { name.to_string() }
}

/// Watchdog timeouts are multiplied by this (`GILGATE_TIME_SCALE`; default 6 in the arm64 mode,
/// where every instruction is emulated, else 1). Only the watchdogs: nothing asserts a time.
pub fn time_scale() -> u32 {
    std::env::var("GILGATE_TIME_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(if arm64() { 6 } else { 1 })
}

/// A command for a program of this test's architecture that needs no CPython tree: itself, or
/// in the arm64 mode the program under qemu-user with the cross toolchain's sysroot.
pub fn native(program: &Path) -> Command {
    if arm64() {
        let mut c = Command::new(std::env::var("GILGATE_QEMU").unwrap_or_else(|_| "qemu-aarch64-static".into()));
        c.arg("-L").arg(std::env::var("GILGATE_ARM64_SYSROOT").unwrap_or_else(|_| "/usr/aarch64-linux-gnu".into())).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Where libgilgate.so was built (`cargo build --release` by the test command; the arm64 mode:
/// `cargo build --release --target aarch64-unknown-linux-gnu`).
pub fn built_lib() -> PathBuf {
    std::env::var_os("GILGATE_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(if arm64() { "target/aarch64-unknown-linux-gnu/release" } else { "target/release" }))
        .join("libgilgate.so")
}

/// A directory with libgilgate.so and its soname link (hosts record libgilgate.so.0).
pub fn lib_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(make_lib_dir).clone()
}

fn make_lib_dir() -> PathBuf {
    let built = built_lib();
    assert!(built.exists(), "{} not found: run `cargo build --release` first", built.display());
    let dir = out_dir().join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["libgilgate.so", "libgilgate.so.0"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&built, &link).unwrap();
    }
    dir
}

pub fn out_dir() -> PathBuf {
    repo_root().join(if arm64() { "target/c_tests-aarch64" } else { "target/c_tests" })
}

/// One CPython we can compile and run hosts against.
#[derive(Clone, Debug)]
pub struct Python {
    /// Short unique name, e.g. "pyenv-3.12.1" or "debian-3.11.2".
    pub name: String,
    /// "3.12.1"
    pub version: String,
    pub cflags: Vec<String>,
    pub ldflags: Vec<String>,
    /// Prefix for running a host (a private loader for Debian unstable trees), else empty.
    pub run_prefix: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Directory holding libpython (for LD_PRELOAD-free runs this is on the rpath).
    pub libdir: PathBuf,
    /// The python executable, run the same way as hosts.
    pub exe: PathBuf,
    /// Install prefix (for the packaging test), e.g. /root/.pyenv/versions/3.12.1 or /usr.
    pub prefix: PathBuf,
    /// How to run this python as a program that may start itself again (regression tests).
    pub python_cmd: Vec<String>,
    /// An assertion-enabled build (Py_DEBUG: Debian's python3.X-dbg, `libpython3.Xd.so`).
    pub debug: bool,
}

impl Python {
    pub fn minor(&self) -> (u32, u32) {
        let mut it = self.version.split('.').map(|s| s.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
    /// "3.14", or "3.14d" for a Py_DEBUG build.
    pub fn short(&self) -> String {
        let (a, b) = self.minor();
        format!("{a}.{b}{}", if self.debug { "d" } else { "" })
    }
    /// Where this CPython's hosts are built.
    pub fn dir(&self) -> PathBuf {
        out_dir().join(&self.name)
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut c = if self.run_prefix.is_empty() {
            Command::new(program)
        } else {
            let mut c = Command::new(&self.run_prefix[0]);
            c.args(&self.run_prefix[1..]).arg(program);
            c
        };
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).stderr(Stdio::null()).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn split(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn from_config(name_prefix: &str, config: &Path, exe: &Path, prefix: &Path) -> Option<Python> {
    let c = config.to_str()?;
    let version = sh(exe.to_str()?, &["-c", "import platform; print(platform.python_version())"])?;
    let cflags = split(&sh(c, &["--includes"])?);
    let mut ldflags = split(&sh(c, &["--ldflags", "--embed"])?);
    let libdir = PathBuf::from(sh(exe.to_str()?, &["-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"])?);
    ldflags.push(format!("-Wl,-rpath,{}", libdir.display()));
    Some(Python {
        name: format!("{name_prefix}-{version}"),
        version,
        cflags,
        ldflags,
        run_prefix: vec![],
        env: vec![],
        libdir,
        exe: exe.to_path_buf(),
        prefix: prefix.to_path_buf(),
        python_cmd: vec![exe.display().to_string()],
        debug: false,
    })
}

/// The minor versions gilgate supports and looks for; a missing one is reported as absent.
pub const WANTED: &[&str] = &["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];
/// The assertion-enabled (Py_DEBUG) builds looked for, from Debian unstable's -dbg packages.
pub const WANTED_DEBUG: &[&str] = &["3.13", "3.14", "3.15"];

pub struct Discovery {
    pub found: Vec<Python>,
    /// Human-readable lines for what was looked for and not found.
    pub absent: Vec<String>,
}

impl Discovery {
    /// For suites that do not run on the assertion-enabled builds: they move to the absent list
    /// with the reason (printed, never counted as passed).
    pub fn without_debug(mut self, why: &str) -> Discovery {
        let mut absent = std::mem::take(&mut self.absent);
        self.found.retain(|p| {
            if p.debug {
                absent.push(format!("{}: not run in this suite ({why})", p.name));
            }
            !p.debug
        });
        self.absent = absent;
        self
    }
}

/// The names of the CPythons `discover` found (for attributing a result line to a CPython).
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The suite a result line belongs to: GILGATE_RESULTS_SUITE, else this test binary's name
/// (cargo's `c_hosts-0123abcd` -> `c_hosts`).
pub fn suite_name() -> String {
    if let Ok(s) = std::env::var("GILGATE_RESULTS_SUITE") {
        if !s.is_empty() {
            return s;
        }
    }
    let a0 = std::env::args().next().unwrap_or_default();
    let stem = Path::new(&a0).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((a, h)) if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) => a.to_string(),
        _ => stem,
    }
}

/// Append one machine-readable result line `suite<TAB>cpython<TAB>case<TAB>outcome` to the file
/// named by GILGATE_RESULTS (set by test.sh; nothing when unset). Outcome: pass, fail or absent.
/// One write(2) per line on an O_APPEND file, so suites running one after another (or at once)
/// do not interleave within a line.
pub fn record(cpython: &str, case: &str, outcome: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GILGATE_RESULTS") else { return };
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!("{}\t{}\t{}\t{}\n", clean(&suite_name()), clean(cpython), clean(case), outcome);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The CPython a case name starts with (the longest known name that prefixes it), else "-".
pub fn cpython_of(case: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.iter().filter(|n| case.starts_with(n.as_str()) && case[n.len()..].chars().next().map_or(true, |c| c == ' ' || c == ':'))
        .max_by_key(|n| n.len()).cloned().unwrap_or_else(|| "-".into())
}

/// pyenv builds, Debian's system python3.11, and Debian unstable's 3.14/3.15 trees
/// (fetched by scripts/debian-python.sh unless GILGATE_DEBIAN_PYTHONS=0).
pub fn discover() -> Discovery {
    let mut found = vec![];
    let mut absent = vec![];
    if arm64() {
        discover_arm64(&mut found, &mut absent);
        return finish_discovery(found, absent, WANTED_ARM64);
    }
    let pyenv_root = std::env::var("PYENV_ROOT")
        .ok()
        .or_else(|| sh("pyenv", &["root"]))
        .unwrap_or_else(|| format!("{}/.pyenv", std::env::var("HOME").unwrap_or_default()));
    if let Ok(rd) = std::fs::read_dir(Path::new(&pyenv_root).join("versions")) {
        let mut dirs: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            let exe = d.join("bin/python3");
            let cfg = d.join("bin/python3-config");
            if !exe.exists() || !cfg.exists() {
                continue;
            }
            if let Some(p) = from_config("pyenv", &cfg, &exe, &d) {
                if p.minor() >= (3, 8) {
                    found.push(p);
                }
            }
        }
    }
    let deb_cfg = Path::new("/usr/bin/python3.11-config");
    if deb_cfg.exists() && Path::new("/usr/include/python3.11/Python.h").exists() {
        if let Some(p) = from_config("debian", deb_cfg, Path::new("/usr/bin/python3.11"), Path::new("/usr")) {
            found.push(p);
        }
    } else {
        absent.push("debian-3.11 (system python3.11 with headers): absent".into());
    }
    if std::env::var("GILGATE_DEBIAN_PYTHONS").as_deref() != Ok("0") {
        for v in ["3.14", "3.15"] {
            match debian_unstable(v) {
                Ok(p) => found.push(p),
                Err(why) => absent.push(format!("debian-unstable-{v}: ABSENT ({why})")),
            }
        }
        if std::env::var("GILGATE_DEBUG_PYTHONS").as_deref() != Ok("0") {
            for v in WANTED_DEBUG {
                let vd = format!("{v}d");
                match debian_unstable(&vd) {
                    Ok(p) => found.push(p),
                    Err(why) => absent.push(format!("debian-unstable-{vd} (Py_DEBUG): ABSENT ({why})")),
                }
            }
        } else {
            absent.push("debian-unstable-3.13d/3.14d/3.15d (Py_DEBUG): ABSENT, not fetched (GILGATE_DEBUG_PYTHONS=0)".into());
        }
    } else {
        absent.push("debian-unstable-3.14/3.15: ABSENT, not fetched (GILGATE_DEBIAN_PYTHONS=0)".into());
        absent.push("debian-unstable-3.13d/3.14d/3.15d (Py_DEBUG): ABSENT, not fetched (GILGATE_DEBIAN_PYTHONS=0)".into());
    }
    finish_discovery(found, absent, WANTED)
}

/// The minor versions the arm64 mode looks for: Debian 12's 3.11 and unstable's 3.13-3.15.
pub const WANTED_ARM64: &[&str] = &["3.11", "3.13", "3.14", "3.15"];

/// The arm64 mode's CPythons: Debian's arm64 packages (bookworm's 3.11, unstable's 3.13/3.14/3.15
/// and the Py_DEBUG builds named by GILGATE_ARM64_DEBUG, default "3.14"), fetched by
/// scripts/debian-python.sh with GILGATE_DEBIAN_ARCH=arm64 into `$GILGATE_CACHE/debian-python-arm64*`.
fn discover_arm64(found: &mut Vec<Python>, absent: &mut Vec<String>) {
    if std::env::var("GILGATE_DEBIAN_PYTHONS").as_deref() == Ok("0") {
        absent.push("arm64 Debian CPythons: ABSENT, not fetched (GILGATE_DEBIAN_PYTHONS=0)".into());
        return;
    }
    let cache = std::env::var_os("GILGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/gilgate"));
    let mut wanted: Vec<(String, &str, &str, &str)> = vec![
        ("3.11".into(), "arm64-debian", "debian-python-arm64-bookworm", "bookworm"),
        ("3.13".into(), "arm64-debian-unstable", "debian-python-arm64", "unstable experimental"),
        ("3.14".into(), "arm64-debian-unstable", "debian-python-arm64", "unstable experimental"),
        ("3.15".into(), "arm64-debian-unstable", "debian-python-arm64", "unstable experimental"),
    ];
    let dbg = std::env::var("GILGATE_ARM64_DEBUG").unwrap_or_else(|_| "3.14".into());
    if std::env::var("GILGATE_DEBUG_PYTHONS").as_deref() != Ok("0") {
        for v in dbg.split_whitespace() {
            wanted.push((format!("{v}d"), "arm64-debian-unstable", "debian-python-arm64", "unstable experimental"));
        }
    } else {
        absent.push("arm64 Py_DEBUG builds: ABSENT, not fetched (GILGATE_DEBUG_PYTHONS=0)".into());
    }
    for (v, prefix, dir, suite) in wanted {
        let env = [("GILGATE_DEBIAN_ARCH", "arm64"), ("GILGATE_DEBIAN_SUITE", suite)];
        match debian_tree(&v, prefix, &env, &cache.join(dir)) {
            Ok(p) => found.push(p),
            Err(why) => absent.push(format!("{prefix}-{v}: ABSENT ({why})")),
        }
    }
}

fn finish_discovery(mut found: Vec<Python>, mut absent: Vec<String>, wanted: &[&str]) -> Discovery {
    found.sort_by_key(|p| {
        let v: Vec<u32> = p.version.split('.').map(|x| x.parse().unwrap_or(0)).collect();
        (v, p.debug, p.name.starts_with("debian"))
    });
    // GILGATE_ONLY_PYTHONS="3.12 debian-unstable-3.15": a development filter (names or versions,
    // substring match). Everything filtered out is reported, never counted as passed.
    if let Ok(only) = std::env::var("GILGATE_ONLY_PYTHONS") {
        let keep: Vec<&str> = only.split_whitespace().collect();
        found.retain(|p| {
            let k = keep.iter().any(|w| p.name.contains(w) || p.version.starts_with(w) || p.short() == *w);
            if !k {
                absent.push(format!("{}: skipped (GILGATE_ONLY_PYTHONS), not tested", p.name));
            }
            k
        });
    }
    for w in wanted {
        let have = found.iter().any(|p| {
            let (a, b) = p.minor();
            format!("{a}.{b}") == *w
        });
        if !have {
            let why = if std::env::var_os("GILGATE_ONLY_PYTHONS").is_some() {
                "not tested (filtered out by GILGATE_ONLY_PYTHONS, or no build on this machine)"
            } else {
                "absent (no build found on this machine)"
            };
            absent.push(format!("CPython {w}: {why}"));
        }
    }
    *KNOWN.lock().unwrap_or_else(|e| e.into_inner()) = found.iter().map(|p| p.name.clone()).collect();
    Discovery { found, absent }
}

/// A CPython from Debian unstable's binary packages, run through that tree's own loader.
/// `v` is "3.X", or "3.Xd" for the assertion-enabled build (Debian's -dbg packages unpacked over
/// the release tree).
fn debian_unstable(v: &str) -> Result<Python, String> {
    debian_tree(v, "debian-unstable", &[], "")
}

/// A tree fetched by scripts/debian-python.sh `v` (with `env`, into `cache` when given), named
/// `<prefix>-<version>[d]`.
fn debian_tree(v: &str, prefix: &str, env: &[(&str, &str)], cache: impl AsRef<std::ffi::OsStr>) -> Result<Python, String> {
    let debug = v.ends_with('d');
    let script = repo_root().join("scripts/debian-python.sh");
    if !script.exists() {
        return Err("scripts/debian-python.sh missing".into());
    }
    let cache = cache.as_ref();
    let mut fetch = Command::new("bash");
    fetch.arg(&script).arg(v);
    let mut envc = Command::new("bash");
    envc.arg(&script).args(["--env", v]);
    if !cache.is_empty() {
        fetch.arg(cache);
        envc.arg(cache);
    }
    for (k, val) in env {
        fetch.env(k, val);
        envc.env(k, val);
    }
    let fetch = fetch.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&fetch.stdout).to_string();
    if !fetch.status.success() {
        return Err(out.lines().last().unwrap_or("fetch failed").to_string());
    }
    let envo = envc.output().map_err(|e| e.to_string())?;
    if !envo.status.success() {
        return Err("--env failed".into());
    }
    let mut kv = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&envo.stdout).lines() {
        if let Some((k, val)) = line.split_once('=') {
            kv.insert(k.to_string(), val.trim_matches('"').trim_matches('\'').to_string());
        }
    }
    let get = |k: &str| kv.get(k).cloned().ok_or_else(|| format!("{k} missing from --env"));
    let tree = PathBuf::from(get("PY_TREE")?);
    let libdir = PathBuf::from(get("PY_LIBDIR")?);
    let mut ldflags = split(&get("PY_LDFLAGS")?);
    ldflags.push(format!("-Wl,-rpath,{}", libdir.display()));
    let version = get("PY_VERSION")?;
    // A foreign tree (the arm64 mode): qemu-user and the tree's ld.so directly, no shell between
    // (a host shell started with an arm64 LD_PRELOAD prints ld.so's error), also for `python`.
    let run = kv.get("PY_RUN").map(|r| split(r)).unwrap_or_default();
    let mut run_prefix = if run.is_empty() { vec![get("PY_LOADER")?] } else { run };
    run_prefix.extend(["--library-path".to_string(), get("PY_LIBRARY_PATH")?]);
    let exe = tree.join(format!("usr/bin/python{v}"));
    let python_cmd = if kv.get("PY_RUN").map_or(true, |r| r.is_empty()) {
        vec![get("PY_PYTHON")?]
    } else {
        run_prefix.iter().cloned().chain([exe.display().to_string()]).collect()
    };
    Ok(Python {
        name: format!("{prefix}-{version}{}", if debug { "d" } else { "" }),
        version: version.clone(),
        cflags: split(&get("PY_CFLAGS")?),
        ldflags,
        run_prefix,
        env: vec![("PYTHONHOME".into(), get("PY_HOME")?)],
        libdir,
        exe,
        prefix: tree.join("usr"),
        python_cmd,
        debug,
    })
}

/// How a host was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    C,
    /// C++17, -fno-exceptions -fno-rtti: pthread_exit runs no destructor.
    CxxNoExc,
    /// C++17 with exceptions: pthread_exit's forced unwind runs destructors.
    CxxExc,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::C, Lang::CxxNoExc, Lang::CxxExc];
    pub fn tag(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::CxxNoExc => "cxx-noexc",
            Lang::CxxExc => "cxx-exc",
        }
    }
}

/// How a host uses gilgate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// Raw CPython API, gilgate not linked (it may still be LD_PRELOADed).
    Raw,
    /// The fallible gilgate_* API (gilgate linked ahead of libpython).
    Api,
    /// Raw CPython API source, gilgate linked ahead of libpython (drop-in without preload).
    RawAhead,
}

impl Link {
    pub fn tag(self) -> &'static str {
        match self {
            Link::Raw => "raw",
            Link::Api => "gilgate",
            Link::RawAhead => "raw-linked-gilgate",
        }
    }
}

/// Compile `c_tests/<src>` for `py`. `gilgate` false builds against raw CPython (-DGG_RAW).
pub fn compile(py: &Python, src: &str, lang: Lang, gilgate: bool) -> Result<PathBuf, String> {
    compile_as(py, src, lang, if gilgate { Link::Api } else { Link::Raw })
}

pub fn compile_as(py: &Python, src: &str, lang: Lang, link: Link) -> Result<PathBuf, String> {
    let gilgate = link != Link::Raw;
    let root = repo_root();
    let dir = out_dir().join(&py.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let stem = src.rsplit_once('.').map(|x| x.0).unwrap_or(src);
    let exe = dir.join(format!("{stem}-{}-{}", lang.tag(), link.tag()));
    let (cc, std_flags): (&str, &[&str]) = match lang {
        Lang::C => (cc(false), &["-std=gnu11"]),
        Lang::CxxNoExc => (cc(true), &["-x", "c++", "-std=c++17", "-fno-exceptions", "-fno-rtti"]),
        Lang::CxxExc => (cc(true), &["-x", "c++", "-std=c++17", "-fexceptions"]),
    };
    let mut cmd = Command::new(cc);
    cmd.args(std_flags)
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers", "-pthread"])
        .arg(format!("-I{}", root.join("include").display()))
        .args(&py.cflags);
    if link != Link::Api {
        cmd.arg("-DGG_RAW");
    }
    cmd.arg(root.join("c_tests").join(src)).arg("-o").arg(&exe);
    if lang != Lang::C {
        cmd.arg("-x").arg("none");
    }
    if gilgate {
        // gilgate first: its pthread_exit/pause must precede libc (and libpython) in lookup order.
        let ld = lib_dir();
        cmd.arg(format!("-L{}", ld.display())).arg("-lgilgate").arg(format!("-Wl,-rpath,{}", ld.display()));
    }
    cmd.args(&py.ldflags);
    let o = cmd.output().map_err(|e| format!("{cc}: {e}"))?;
    if !o.status.success() {
        return Err(format!("compile {src} ({}) for {} failed:\n{}", lang.tag(), py.name, String::from_utf8_lossy(&o.stderr)));
    }
    Ok(exe)
}

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
    RunResult { outcome, stdout, stderr, elapsed: start.elapsed() }
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

/// Build `c_tests/<src>` as a plain shared library (no Python, no gilgate).
pub fn compile_shared(src: &str, name: &str) -> Result<PathBuf, String> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(name);
    let o = Command::new(cc(false))
        .args(["-shared", "-fPIC", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg(repo_root().join("c_tests").join(src))
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into());
    }
    Ok(out)
}

/// Pass/fail bookkeeping for the custom test binaries; prints failures as they come and the
/// closing `N passed, N failed` line.
#[derive(Default)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

impl Tally {
    pub fn case(&mut self, name: &str, ok: bool, detail: &str) {
        record(&cpython_of(name), name, if ok { "pass" } else { "fail" });
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }
    pub fn finish(&self, started: Instant) -> ! {
        println!();
        println!("elapsed {:.1}s", started.elapsed().as_secs_f64());
        println!("{} passed, {} failed", self.passed, self.failed);
        std::process::exit(if self.failed == 0 { 0 } else { 1 });
    }
}

pub fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// Print which CPythons will run and which are absent.
pub fn announce(title: &str, d: &Discovery) {
    println!("{title}");
    println!("CPython versions that will run:");
    for p in &d.found {
        println!("  {:28} {}", p.name, p.exe.display());
    }
    println!("CPython versions absent (not run, not counted):");
    for a in &d.absent {
        println!("  {a}");
        // "CPython 3.8: absent (...)" -> "CPython 3.8"; the whole line is the case.
        let label = a.split_once(": ").map(|x| x.0).unwrap_or(a);
        record(label, a, "absent");
    }
}

pub fn stderr_tail(r: &RunResult, n: usize) -> String {
    let mut v: Vec<&str> = r.stderr.lines().rev().take(n).collect();
    v.reverse();
    v.join(" | ")
}

/// Run `bash c_tests/<script> <python3-config>` for one CPython; the script's own closing line
/// is `N passed, N failed` and its exit status says whether all passed.
pub fn script_case(tally: &mut Tally, script: &str, p: &Python, timeout: Duration) {
    let path = repo_root().join("c_tests").join(script);
    if !path.exists() {
        tally.case(&format!("{} {script}", p.name), false, "script missing");
        return;
    }
    let cfg = if p.prefix == Path::new("/usr") {
        "/usr/bin/python3.11-config".to_string()
    } else {
        p.prefix.join("bin/python3-config").display().to_string()
    };
    let arg = if script == "packaging_test.sh" { p.prefix.display().to_string() } else { cfg };
    let mut cmd = Command::new("bash");
    cmd.arg(&path).arg(&arg).env("GILGATE_LIB_DIR", lib_dir()).env("GILGATE_SKIP_CARGO", "1");
    let r = run(cmd, timeout);
    let ok = matches!(r.outcome, Outcome::Clean(_));
    let last = r.stdout.lines().last().unwrap_or("").to_string();
    println!("{:28} {script}: {last}", p.name);
    tally.case(&format!("{} {script}", p.name), ok, &format!("{}\n{}\n{}", r.outcome, r.stdout, r.stderr));
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

/// Where the real-client builds are cached: `$GILGATE_CACHE/clients` (default
/// `~/.cache/gilgate/clients`), keyed by `content_hash` of what goes into them.
pub fn clients_cache() -> PathBuf {
    std::env::var_os("GILGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/gilgate"))
        .join("clients")
}

/// FNV-1a of the parts (each followed by a 0 byte), as 16 hex digits: a build's cache key.
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.iter().chain(b"\x00") {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// Run a build command: its trimmed stdout, or an error with the last `tail` lines of its output.
pub fn command_output(cmd: &mut Command, tail: usize) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        let s = format!("{}{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
        let t: Vec<&str> = s.lines().rev().take(tail).collect();
        return Err(format!("{cmd:?} failed ({}):\n{}", o.status, t.into_iter().rev().collect::<Vec<_>>().join("\n")));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The first line gilgate wrote on stderr that was not asked for (everything but the
/// GILGATE_SHOW_STATS line): under the default policy a program that exits clean raw must get
/// none.
pub fn gilgate_unasked(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| l.starts_with("gilgate: ") && !l.starts_with("gilgate: stats: "))
}
