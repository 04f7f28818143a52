//! Finding the CPythons on the machine (pyenv, Debian's python3.11, Debian unstable's trees)
//! and which of the wanted versions are absent.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// pyenv builds, Debian's system python3.11, and Debian unstable's 3.14/3.15 trees
/// (fetched by scripts/debian-python.sh unless GILGATE_DEBIAN_PYTHONS=0).
pub fn discover() -> Discovery {
    enter_suite();
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
    // GILGATE_ONLY_PYTHONS applies before the fetch here: a tree it leaves out is not downloaded
    // (test.sh's arm64 lane fetches one), and is reported as skipped like any filtered CPython.
    let only = std::env::var("GILGATE_ONLY_PYTHONS").ok();
    for (v, prefix, dir, suite) in wanted {
        if let Some(only) = &only {
            if !only.split_whitespace().any(|w| only_may_keep(w, prefix, &v)) {
                absent.push(format!("{prefix}-{v}: skipped (GILGATE_ONLY_PYTHONS), not fetched, not tested"));
                continue;
            }
        }
        let env = [("GILGATE_DEBIAN_ARCH", "arm64"), ("GILGATE_DEBIAN_SUITE", suite)];
        match debian_tree(&v, prefix, &env, &cache.join(dir)) {
            Ok(p) => found.push(p),
            Err(why) => absent.push(format!("{prefix}-{v}: ABSENT ({why})")),
        }
    }
}

/// Could the GILGATE_ONLY_PYTHONS word `w` keep the tree of version `v` ("3.13", "3.14d") named
/// `<prefix>-<v>.<patch>`? Errs towards yes: `finish_discovery` applies the exact filter.
fn only_may_keep(w: &str, prefix: &str, v: &str) -> bool {
    let name = format!("{prefix}-{v}");
    let base = v.trim_end_matches('d');
    name.contains(w) || w.starts_with(&name) || base.starts_with(w) || w.starts_with(base)
        || w.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(&format!("-{base}")))
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
    // GILGATE_CASE naming CPythons (report::pattern_pythons): only those run.
    let named = pattern_pythons(&found.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
    if !named.is_empty() {
        found.retain(|p| {
            let k = named.contains(&p.name);
            if !k {
                absent.push(format!("{}: skipped (GILGATE_CASE names other CPythons), not tested", p.name));
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
            let why = if std::env::var_os("GILGATE_ONLY_PYTHONS").is_some() || !named.is_empty() {
                "not tested (filtered out by GILGATE_ONLY_PYTHONS or GILGATE_CASE, or no build on this machine)"
            } else {
                "absent (no build found on this machine)"
            };
            absent.push(format!("{}CPython {w}: {why}", if arm64() { "arm64 " } else { "" }));
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

/// Debian 13's Py_DEBUG 3.13 (3.13.5: ends threads with `pthread_exit`, unlike unstable's 3.13.18),
/// fetched into `$GILGATE_CACHE/debian-python-trixie`. Only the drop-in suite's finalization-window
/// case uses it; not a discovered CPython. Not fetched when GILGATE_DEBIAN_PYTHONS=0.
pub fn debian_trixie_313d() -> Result<Python, String> {
    if std::env::var("GILGATE_DEBIAN_PYTHONS").as_deref() == Ok("0") || arm64() {
        return Err("not fetched (GILGATE_DEBIAN_PYTHONS=0 or the arm64 mode)".into());
    }
    let cache = std::env::var_os("GILGATE_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/gilgate"))
        .join("debian-python-trixie");
    let p = debian_tree("3.13d", "debian-13", &[("GILGATE_DEBIAN_SUITE", "trixie")], cache)?;
    // Its results are reported under its own name in the summary.
    KNOWN.lock().unwrap_or_else(|e| e.into_inner()).push(p.name.clone());
    Ok(p)
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

#[cfg(test)]
mod tests {
    use super::only_may_keep;

    #[test]
    fn only_filter_before_an_arm64_fetch() {
        let u = "arm64-debian-unstable";
        assert!(only_may_keep("arm64-debian-unstable-3.13", u, "3.13"));
        assert!(only_may_keep("arm64-debian-unstable-3.13.18", u, "3.13"));
        assert!(only_may_keep("3.13", u, "3.13"));
        assert!(only_may_keep("3.14", u, "3.14d"));
        assert!(!only_may_keep("arm64-debian-unstable-3.13", u, "3.14"));
        assert!(!only_may_keep("arm64-debian-unstable-3.13", "arm64-debian", "3.11"));
        assert!(!only_may_keep("3.13", u, "3.15"));
    }
}
