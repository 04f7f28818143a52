//! The Python wheel (scripts/build-wheel.py), built once from the checkout's release build, then
//! installed with pip, offline from the file, into a fresh venv of each pyenv CPython 3.8–3.13:
//!   - the wheel: its files, its tag (auditwheel show, when auditwheel can be installed), no
//!     libpython dependency, one version (Cargo.toml = wheel = METADATA = CHANGELOG);
//!   - per CPython: `python -m gilgate --preload/--includedir/...` point at existing files,
//!     gilgate.__version__ and gilgate_version() agree, `gilgate-run --check python` says
//!     covered, `gilgate-run python -c ...` runs with the wheel's library mapped, and the seed host
//!     (c_tests/seed_host.c built raw) under the venv's gilgate-run ends clean or with the
//!     watchdog's deadlock line (what harness/tests/dropin.rs accepts under the park policy);
//!   - on one CPython (3.12, else the newest): the CMake and pkg-config consumers build against
//!     the wheel's files only (c_tests/packaging_test.sh with GILGATE_PACKAGING_PREFIX).
//! The venvs are cached per wheel content hash under $GILGATE_CACHE/wheel (~/.cache/gilgate).
//! GILGATE_WHEEL_SEED_RUNS: seed-host runs per CPython (default 2).

use gilgate_harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn cache_root() -> PathBuf {
    clients_cache().parent().unwrap().join("wheel")
}

fn cargo_version() -> String {
    let t = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix("version = \"").and_then(|r| r.split('"').next()))
        .unwrap()
        .to_string()
}

/// Run and return (success, stdout+stderr).
fn out(cmd: &mut Command) -> (bool, String, String) {
    match cmd.output() {
        Ok(o) => (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => (false, String::new(), format!("{cmd:?}: {e}")),
    }
}

/// A venv of `p` with the wheel installed (pip, offline, from the file); cached per wheel hash.
fn venv(p: &Python, whl: &Path, hash: &str) -> Result<PathBuf, String> {
    // Venvs of other wheels (an older build) are dropped: one wheel's venvs are kept.
    if let Ok(rd) = std::fs::read_dir(cache_root()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.len() == 16 && n.chars().all(|c| c.is_ascii_hexdigit()) && n != hash {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = cache_root().join(hash).join(&p.name);
    if dir.join("installed.stamp").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).map_err(|e| e.to_string())?;
    command_output(Command::new(&p.exe).args(["-m", "venv"]).arg(&dir), 20)?;
    command_output(
        Command::new(dir.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--no-index", "--no-deps", "--disable-pip-version-check"])
            .arg(whl)
            .env_remove("PIP_FIND_LINKS"),
        20,
    )?;
    std::fs::write(dir.join("installed.stamp"), whl.display().to_string()).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `auditwheel show` from a cached tool venv (installed with pip from the index once); None when
/// auditwheel cannot be had (no network): reported absent, not counted.
fn auditwheel(whl: &Path, host: &Python) -> Option<Result<String, String>> {
    let tool = cache_root().join("auditwheel-venv");
    let aw = tool.join("bin/auditwheel");
    if !aw.exists() {
        let _ = std::fs::remove_dir_all(&tool);
        let ok = command_output(Command::new(&host.exe).args(["-m", "venv"]).arg(&tool), 5).is_ok()
            && command_output(Command::new(tool.join("bin/python")).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "auditwheel"]), 5).is_ok();
        if !ok || !aw.exists() {
            let _ = std::fs::remove_dir_all(&tool);
            return None;
        }
    }
    Some(command_output(Command::new(&aw).arg("show").arg(whl), 20))
}

/// The scikit-build-core recipe (clients/recipes/skbuild) built by `pip wheel` for `p`, build
/// isolation on: scikit-build-core and pybind11 from the index (network), gilgate from the wheel
/// just built (--find-links). Cached per headers + recipe sources + CPython (the module links
/// libgilgate.so.0 by soname, not the library's bytes). Err(None): the index is unreachable.
fn recipe_wheel(p: &Python, venv: &Path, gilgate_dir: &Path) -> Result<PathBuf, Option<String>> {
    let root = repo_root();
    let files = ["include/gilgate.h", "include/gilgate.hpp", "cmake/gilgateConfig.cmake.in", "clients/recipes/skbuild/pyproject.toml",
        "clients/recipes/skbuild/CMakeLists.txt", "clients/recipes/pybind11/gg_recipe_pyb.cpp", "clients/recipes/recipe_threads.hpp"];
    let data: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(root.join(f)).unwrap_or_default()).collect();
    let mut parts: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
    parts.push(p.name.as_bytes());
    let dir = cache_root().join("recipe").join(format!("{}-{}", p.name, content_hash(&parts)));
    let find = |d: &Path| std::fs::read_dir(d).ok()?.flatten().map(|e| e.path())
        .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("gg_recipe_skbuild-")));
    if let Some(w) = find(&dir) {
        return Ok(w);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let r = command_output(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "--find-links"]).arg(gilgate_dir)
        .arg("-w").arg(&dir).arg(root.join("clients/recipes/skbuild")), 25);
    match r {
        Err(e) if ["No matching distribution", "Could not find a version", "NewConnectionError", "Temporary failure in name resolution"]
            .iter().any(|m| e.contains(m)) && !e.contains("gilgate") => Err(None),
        Err(e) => Err(Some(e)),
        Ok(_) => find(&dir).ok_or_else(|| Some(format!("pip wheel wrote no gg_recipe_skbuild wheel in {}", dir.display()))),
    }
}

fn main() {
    let t0 = Instant::now();
    let d = discover().without_debug("the wheel is installed into venvs of the release CPythons");
    let pys: Vec<Python> = d
        .found
        .iter()
        .filter(|p| p.name.starts_with("pyenv-") && (3..=13).contains(&p.minor().1) && p.minor().0 == 3 && (p.minor().1 >= 8))
        .cloned()
        .collect();
    println!("gilgate wheel (scripts/build-wheel.py; pip install into a venv of each pyenv CPython 3.8-3.13)");
    for p in &pys {
        println!("  {:28} {}", p.name, p.exe.display());
    }
    for want in ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"] {
        if !pys.iter().any(|p| p.short() == want) {
            let line = format!("CPython {want}: absent (no pyenv {want} here), wheel not tried");
            println!("  {line}");
            record(&format!("CPython {want}"), &line, "absent");
        }
    }
    let mut tally = Tally::default();
    let Some(host) = pys.iter().rev().find(|p| p.short() == "3.12").or(pys.last()).cloned() else {
        tally.finish(t0);
    };
    let version = cargo_version();

    // --- build the wheel once ------------------------------------------------------------------
    let outdir = repo_root().join("target/wheel");
    let _ = std::fs::remove_dir_all(&outdir);
    let tb = Instant::now();
    // test.sh built the library and gilgate-check; run on its own, the script builds them.
    let release = built_lib().parent().unwrap().to_path_buf();
    let have_build = built_lib().exists() && release.join("gilgate-check").exists();
    let built = command_output(
        Command::new(&host.exe)
            .arg(repo_root().join("scripts/build-wheel.py"))
            .args(if have_build { &["--no-cargo"][..] } else { &[][..] })
            .arg("--out")
            .arg(&outdir)
            .env("CARGO_TARGET_DIR", built_lib().parent().unwrap().parent().unwrap()),
        20,
    );
    let whl = match built {
        Ok(s) => PathBuf::from(s.lines().last().unwrap_or("")),
        Err(e) => {
            tally.case("wheel build", false, &e);
            tally.finish(t0);
        }
    };
    let bytes = std::fs::read(&whl).unwrap_or_default();
    let hash = content_hash(&[&bytes]);
    println!("built {} ({} bytes, {:.1} s, content hash {hash})", whl.display(), bytes.len(), tb.elapsed().as_secs_f64());
    tally.case("wheel build", !bytes.is_empty(), "empty wheel");

    // --- the wheel itself ----------------------------------------------------------------------
    let name = whl.file_name().unwrap().to_string_lossy().to_string();
    let tag_ok = name.starts_with(&format!("gilgate-{version}-py3-none-manylinux_2_")) && name.ends_with(&format!("_{}.whl", std::env::consts::ARCH));
    tally.case("wheel name: version from Cargo.toml, py3-none-manylinux tag", tag_ok, &name);
    let tag = name.trim_start_matches(&format!("gilgate-{version}-py3-none-")).trim_end_matches(".whl").to_string();
    let listing = out(Command::new(&host.exe).args(["-m", "zipfile", "-l"]).arg(&whl)).1;
    let wanted = [
        "gilgate/__init__.py", "gilgate/__main__.py", "gilgate/lib/libgilgate.so.0", "gilgate/lib/libgilgate.so",
        "gilgate/include/gilgate.h", "gilgate/include/gilgate.hpp", "gilgate/include/gilgate.pxd",
        "gilgate/include/gilgate_pep788.h", "gilgate/include/gilgate_pep788.pxd",
        "gilgate/lib/cmake/gilgate/gilgateConfig.cmake", "gilgate/lib/cmake/gilgate/gilgateConfigVersion.cmake",
        "gilgate/lib/pkgconfig/gilgate.pc", "gilgate/bin/gilgate-run", "gilgate/libexec/gilgate/gilgate-check",
        "/entry_points.txt", "/METADATA", "/RECORD",
    ];
    let missing: Vec<&str> = wanted.iter().copied().filter(|w| !listing.lines().any(|l| l.split_whitespace().next().is_some_and(|f| f.ends_with(w)))).collect();
    tally.case("wheel contents (library, linker script, headers, CMake, .pc, launcher, checker)", missing.is_empty(), &format!("missing {missing:?} in\n{listing}"));
    let changelog = std::fs::read_to_string(repo_root().join("CHANGELOG.md")).unwrap_or_default();
    // "## Unreleased (...)" sections sit above the newest release's "## X.Y.Z (date)".
    let head = changelog.lines().find(|l| l.starts_with("## ") && l[3..].starts_with(|c: char| c.is_ascii_digit())).unwrap_or("").to_string();
    tally.case("CHANGELOG's newest release heading = Cargo.toml version", head.starts_with(&format!("## {version} ")) || head == format!("## {version}"), &head);
    match auditwheel(&whl, &host) {
        None => {
            println!("auditwheel show: absent (auditwheel could not be installed), not counted");
            record("-", "auditwheel show", "absent");
        }
        Some(r) => {
            let flat = r.as_deref().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            let ok = flat.contains(&format!("is consistent with the following platform tag: \"{tag}\"")) && !flat.contains("libpython");
            println!("auditwheel show: {}", if ok { format!("consistent with {tag}, no libpython") } else { flat.clone() });
            tally.case("auditwheel show: the wheel's tag, no libpython", ok, &format!("{r:?}"));
        }
    }

    // --- per CPython -----------------------------------------------------------------------
    let seed_runs = env_u64("GILGATE_WHEEL_SEED_RUNS", 2);
    let mut host_venv = None;
    for p in &pys {
        let tv = Instant::now();
        let v = match venv(p, &whl, &hash) {
            Ok(v) => v,
            Err(e) => {
                tally.case(&format!("{} venv + pip install", p.name), false, &e);
                continue;
            }
        };
        let case = |t: &mut Tally, what: &str, ok: bool, detail: &str| t.case(&format!("{} wheel: {what}", p.name), ok, detail);
        let py = v.join("bin/python");
        let path = format!("{}:{}", v.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        // python -m gilgate: every directory and the library exist; the versions agree.
        let (ok, o, e) = out(Command::new(&py).args(["-m", "gilgate", "--includedir", "--cmakedir", "--libdir", "--pkgconfigdir", "--preload", "--version", "--prefix"]));
        let l: Vec<&str> = o.lines().collect();
        let good = ok && l.len() == 7
            && Path::new(l[0]).join("gilgate.h").is_file()
            && Path::new(l[1]).join("gilgateConfig.cmake").is_file()
            && Path::new(l[2]).join("libgilgate.so.0").is_file()
            && Path::new(l[3]).join("gilgate.pc").is_file()
            && Path::new(l[4]).is_file()
            && l[5] == version
            && l[4].starts_with(&v.display().to_string());
        case(&mut tally, "python -m gilgate --includedir/--cmakedir/--libdir/--pkgconfigdir/--preload/--version", good, &format!("{o}\n{e}"));
        if !good {
            continue;
        }
        let (lib, prefix) = (l[4].to_string(), l[6].to_string());
        if p.short() == host.short() {
            host_venv = Some(prefix.clone());
        }
        let cmake_ver = std::fs::read_to_string(Path::new(l[1]).join("gilgateConfigVersion.cmake")).unwrap_or_default();
        case(&mut tally, "CMake version file = Cargo.toml", cmake_ver.contains(&format!("set(PACKAGE_VERSION \"{version}\")")), "PACKAGE_VERSION differs");
        // gilgate-run --check on the venv's python: covered (exit 0).
        let (ok, o, e) = out(Command::new(v.join("bin/gilgate-run")).arg("--check").arg(&py));
        case(&mut tally, "gilgate-run --check python: covered", ok, &format!("{o}\n{e}"));
        // gilgate-run python -c: the wheel's library is preloaded, and its gilgate_version() is ours.
        let script = "import ctypes, gilgate\n\
            maps = [l.split()[-1] for l in open('/proc/self/maps') if 'libgilgate' in l]\n\
            f = ctypes.CDLL(None).gilgate_version; f.restype = ctypes.c_char_p\n\
            print(f().decode(), gilgate.__version__, sorted(set(maps))[0] if maps else '-')";
        let mut c = Command::new(v.join("bin/gilgate-run"));
        c.args(["python", "-c", script]).env("PATH", &path).env_remove("LD_PRELOAD");
        let (ok, o, e) = out(&mut c);
        let want = format!("{version} {version} {lib}");
        case(&mut tally, "gilgate-run python -c: the wheel's library preloaded, gilgate_version() = Cargo.toml", ok && o == want && gilgate_unasked(&e).is_none(), &format!("got {o:?}, want {want:?}\n{e}"));
        // The seed host (raw CPython API) under the venv's gilgate-run.
        match compile_as(p, "seed_host.c", Lang::CxxNoExc, Link::Raw) {
            Err(e) => case(&mut tally, "build seed_host (raw)", false, &e),
            Ok(exe) => {
                for k in 0..seed_runs {
                    let mode = if k % 2 == 0 { "gilstate" } else { "tstate" };
                    let mut c = p.command(&v.join("bin/gilgate-run"));
                    c.arg(&exe).args([mode, "4", "20000", "1", &k.to_string()]).env("PATH", &path).env_remove("GILGATE_ON_FINALIZE").env_remove("LD_PRELOAD");
                    let r = run(c, Duration::from_secs(20));
                    let named = r.stderr.contains("gilgate: deadlock: thread ") && r.stderr.contains(" waits for a mutex (0x") && r.stderr.contains("which was parked in ");
                    let ok = match r.outcome {
                        Outcome::Clean(_) => gilgate_unasked(&r.stderr).is_none(),
                        Outcome::Crash(6) => named && !r.stderr.contains("policy hang"),
                        _ => false,
                    };
                    case(&mut tally, &format!("seed host {mode} seed {k} under the venv's gilgate-run"), ok, &format!("{} | {}", r.outcome, stderr_tail(&r, 5)));
                }
            }
        }
        // The scikit-build-core recipe: built against the wheel, installed into this venv, run
        // linked (libgilgate loaded with the module) and under the venv's gilgate-run.
        if std::env::var("GILGATE_WHEEL_RECIPE").as_deref() == Ok("0") {
            println!("{:28} scikit-build-core recipe: skipped (GILGATE_WHEEL_RECIPE=0), not counted", p.name);
        } else {
            match recipe_wheel(p, &v, whl.parent().unwrap()) {
                Err(None) => {
                    println!("{:28} scikit-build-core recipe: absent (scikit-build-core/pybind11 not installable from the index)", p.name);
                    record(&p.name, &format!("{} wheel: scikit-build-core recipe", p.name), "absent");
                }
                Err(Some(e)) => case(&mut tally, "scikit-build-core recipe: pip wheel", false, &e),
                Ok(rw) => {
                    let stamp = v.join("recipe.stamp");
                    let key = rw.display().to_string();
                    let installed = std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) || {
                        let r = command_output(Command::new(&py).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "--no-deps", "--force-reinstall"]).arg(&rw), 15);
                        if let Err(e) = &r {
                            case(&mut tally, "scikit-build-core recipe: pip install", false, e);
                        }
                        r.is_ok() && std::fs::write(&stamp, &key).is_ok()
                    };
                    if installed {
                        for (way, secs) in [("linked", "0.05"), ("gilgate-run", "0.3")] {
                            let mut c = if way == "linked" { Command::new(&py) } else {
                                let mut c = Command::new(v.join("bin/gilgate-run"));
                                c.arg("python");
                                c
                            };
                            c.arg(repo_root().join("clients/recipes/recipe_main.py")).args(["gg_recipe_pyb", "/nonexistent", secs])
                                .env("PATH", &path).env("GILGATE_VERBOSE", "1").env_remove("LD_PRELOAD").env_remove("GILGATE_ON_FINALIZE");
                            let r = run(c, Duration::from_secs(60));
                            let line = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("");
                            let said_not = r.stderr.contains("NOT interposing pthread_exit");
                            let said = r.stderr.contains(": interposing pthread_exit/pause");
                            let account = if way == "linked" { said_not && !said } else { said && !said_not };
                            case(&mut tally, &format!("scikit-build-core recipe {way}: every thread gets an error, none killed"),
                                matches!(r.outcome, Outcome::Clean(_)) && line.contains("vanished=0") && account,
                                &format!("{} {line} | {}", r.outcome, stderr_tail(&r, 6)));
                        }
                    }
                }
            }
        }
        println!("{:28} wheel: venv at {} checked ({:.1} s)", p.name, v.display(), tv.elapsed().as_secs_f64());
    }

    // --- consumers against the wheel's files only, on one CPython -----------------------------
    match host_venv {
        None => tally.case(&format!("{} wheel: CMake + pkg-config consumers", host.name), false, "no venv with the wheel"),
        Some(prefix) => {
            let mut cmd = Command::new("bash");
            cmd.arg(repo_root().join("c_tests/packaging_test.sh")).arg(&host.prefix).env("GILGATE_PACKAGING_PREFIX", &prefix);
            let r = run(cmd, Duration::from_secs(300));
            let last = r.stdout.lines().last().unwrap_or("").to_string();
            println!("{:28} consumers against {prefix}: {last}", host.name);
            tally.case(&format!("{} wheel: CMake + pkg-config consumers (packaging_test.sh on the wheel's prefix)", host.name), matches!(r.outcome, Outcome::Clean(_)), &format!("{}\n{}\n{}", r.outcome, r.stdout, r.stderr));
        }
    }
    tally.finish(t0);
}
