//! Helpers of the suites that build Python extensions and hosts against each CPython (clients,
//! cython_gilgate, recipes, rust_host): running a CPython's `python`, cross-installing wheels
//! for it with pip, the content-keyed build cache, and one cargo target directory shared by
//! every CPython's PyO3 build.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Where keyed builds live: `$GILGATE_CACHE/clients/build` (see `clients_cache`).
pub fn build_root() -> PathBuf {
    clients_cache().join("build")
}

/// `python ARGS`, run the way this CPython runs (Debian trees through their loader).
pub fn py_command(p: &Python) -> Command {
    let mut c = Command::new(&p.python_cmd[0]);
    c.args(&p.python_cmd[1..]);
    for (k, v) in &p.env {
        c.env(k, v);
    }
    c
}

/// Is the python executable itself exporting the C API (statically linked libpython)?
pub fn static_exe(p: &Python) -> bool {
    Command::new(binutil("nm")).args(["-D", "--defined-only"]).arg(&p.exe).output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.ends_with(" PyGILState_Ensure")))
        .unwrap_or(false)
}

/// The python whose pip downloads wheels for every CPython (cross-installs with
/// --python-version): GILGATE_CLIENT_PIP, else the newest pyenv 3.9+ among `found`, else any
/// pyenv python, else `python3`.
pub fn pip_python(found: &[Python]) -> Option<Vec<String>> {
    if let Ok(p) = std::env::var("GILGATE_CLIENT_PIP") {
        return Some(vec![p]);
    }
    let mut cands: Vec<Vec<String>> = vec![];
    let mut pyenv: Vec<&Python> = found.iter().filter(|p| p.name.starts_with("pyenv-") && p.minor() >= (3, 9)).collect();
    pyenv.sort_by_key(|p| std::cmp::Reverse(p.minor()));
    cands.extend(pyenv.iter().map(|p| vec![p.exe.display().to_string()]));
    // Filtered-out pyenv builds still have a pip.
    if let Ok(rd) = std::fs::read_dir(std::env::var("HOME").unwrap_or_default() + "/.pyenv/versions") {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin/python3")).filter(|p| p.exists()).collect();
        v.sort();
        v.reverse();
        cands.extend(v.into_iter().map(|p| vec![p.display().to_string()]));
    }
    cands.push(vec!["python3".into()]);
    cands.into_iter().find(|c| Command::new(&c[0]).args(["-m", "pip", "--version"]).output().map(|o| o.status.success()).unwrap_or(false))
}

/// Install `spec` (one requirement, the first that works of `specs`) for CPython `p` into
/// `clients_cache()/<python>/<key>`, once (stamp `.gg-installed` holds "name-version").
/// Returns (dir, "name-version") or why it is absent.
pub fn install(p: &Python, pip: &[String], key: &str, specs: &[&str]) -> Result<(PathBuf, String), String> {
    let dir = clients_cache().join(&p.name).join(key);
    let stamp = dir.join(".gg-installed");
    if let Ok(v) = std::fs::read_to_string(&stamp) {
        return Ok((dir, v.trim().to_string()));
    }
    let (a, b) = p.minor();
    let tag = format!("cp{a}{b}");
    let mut why = vec![];
    for spec in specs {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut c = Command::new(&pip[0]);
        c.args(&pip[1..]).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore",
            "--no-warn-script-location", "--only-binary=:all:", "--target"]).arg(&dir)
            .args(["--python-version", &format!("{a}.{b}"), "--implementation", "cp", "--abi", &tag, "--abi", "abi3", "--abi", "none"]);
        for plat in ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64",
            "manylinux_2_31_x86_64", "manylinux_2_34_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"] {
            c.args(["--platform", plat]);
        }
        c.arg(spec);
        match command_output(&mut c, 12) {
            Ok(_) => {
                let ver = installed_version(&dir, spec);
                std::fs::write(&stamp, &ver).map_err(|e| e.to_string())?;
                return Ok((dir, ver));
            }
            Err(e) => why.push(format!("{spec}: {}", e.lines().find(|l| l.contains("ERROR")).unwrap_or("pip failed"))),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(why.join("; "))
}

/// "name-version" of the requirement `spec` that pip installed into `dir` (its `.dist-info`),
/// "name-?" when pip left none.
fn installed_version(dir: &Path, spec: &str) -> String {
    let base = spec.split(|ch: char| "<>=!~ ".contains(ch)).next().unwrap().to_lowercase();
    std::fs::read_dir(dir).into_iter().flatten().flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .find_map(|n| n.strip_suffix(".dist-info").and_then(|s| {
            let (name, v) = s.split_once('-')?;
            (name.to_lowercase() == base).then(|| format!("{base}-{v}"))
        }))
        .unwrap_or_else(|| format!("{base}-?"))
}

/// `spec` installed for the pip python itself (its own platform and version) into
/// `$GILGATE_CACHE/clients/<key>`: a tool that runs on this machine (the arm64 mode's Cython).
pub fn install_for_pip(pip: &[String], key: &str, spec: &str) -> Result<(PathBuf, String), String> {
    let dir = clients_cache().join(key);
    let stamp = dir.join(".gg-installed");
    if let Ok(v) = std::fs::read_to_string(&stamp) {
        return Ok((dir, v.trim().to_string()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut c = Command::new(&pip[0]);
    c.args(&pip[1..]).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore",
        "--no-warn-script-location", "--only-binary=:all:", "--target"]).arg(&dir).arg(spec);
    command_output(&mut c, 12).map_err(|e| e.lines().find(|l| l.contains("ERROR")).unwrap_or("pip failed").to_string())?;
    let ver = installed_version(&dir, spec);
    std::fs::write(&stamp, &ver).map_err(|e| e.to_string())?;
    Ok((dir, ver))
}

/// Run `build(dir)` into `build_root()/<python>/<what>-<hash>` unless already done (stamp
/// `.gg-built`); the directory.
pub fn cached(pyname: &str, what: &str, hash: &str, build: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    let dir = build_root().join(pyname).join(format!("{what}-{hash}"));
    if dir.join(".gg-built").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    build(&dir)?;
    std::fs::write(dir.join(".gg-built"), "").map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The cargo target directory every CPython's PyO3 build shares (`build_root()/pyo3-target`):
/// the dependencies that do not depend on the interpreter (syn, cbindgen, libc, ...) are
/// compiled once; PyO3's own crates rebuild when PYO3_CONFIG_FILE / PYO3_PYTHON changes. Its
/// outputs are overwritten by the next CPython's build, so a caller copies what it built out
/// while holding `cargo_lock()`, into a `cached` directory keyed by everything that went in.
pub fn pyo3_target_dir() -> PathBuf {
    build_root().join("pyo3-target")
}

/// Held around one shared-target-dir build and the copy of its output (cargo's own lock ends
/// with the build; another thread's build would overwrite the output before the copy).
pub fn cargo_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cargo build of `manifest` (release, quiet) into `target_dir`, offline first (the crates
/// are in cargo's cache after one build), online if that fails; `env` added, the variables that
/// would change what is built for the host removed. The last 15 lines of its output on failure.
pub fn cargo_build(manifest: &Path, target_dir: &Path, env: &[(String, String)]) -> Result<(), String> {
    let attempt = |offline: bool| -> Result<(), String> {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["build", "--release", "--quiet", "--manifest-path"]).arg(manifest);
        if offline {
            c.arg("--offline");
        }
        c.env("CARGO_TARGET_DIR", target_dir)
            .env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS").env_remove("CARGO_BUILD_TARGET")
            .env_remove("PYO3_PYTHON").env_remove("PYO3_CONFIG_FILE").env_remove("PYO3_BUILD_EXTENSION_MODULE");
        for (k, v) in env {
            c.env(k, v);
        }
        command_output(&mut c, 15).map(|_| ())
    };
    attempt(true).or_else(|_| attempt(false))
}

/// The bytes of every file under `dirs` (recursively, sorted by path; `target` directories
/// skipped) and of `files`, path and content: a build's cache key part.
pub fn tree_bytes(dirs: &[PathBuf], files: &[PathBuf]) -> Vec<u8> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().map_or(false, |n| n != "target") {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut all: Vec<PathBuf> = files.to_vec();
    for d in dirs {
        walk(d, &mut all);
    }
    all.sort();
    let mut v = vec![];
    for f in all {
        v.extend(f.display().to_string().bytes());
        v.push(0);
        v.extend(std::fs::read(&f).unwrap_or_default());
        v.push(0);
    }
    v
}

/// The rustc in use (`rustc -vV`), a cache key part for Rust builds.
pub fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc).arg("-vV").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}
