//! The pybind11 and nanobind recipes of docs/recipes.md, built and run so that the doc cannot
//! rot: clients/recipes/{pybind11,nanobind}/ (CMake projects: `find_package(gilgate CONFIG)`
//! against a prefix installed by cmake/install.sh, pybind11/nanobind from PyPI) and the pybind11
//! module once more with pkg-config (`pkg-config --cflags --libs gilgate`). Each module's own
//! threads call in through gilgate.hpp while the program exits (clients/recipes/recipe_main.py).
//!
//! Run two ways each: `linked` (gilgate loaded with the extension, after libpython) and
//! `preload` (LD_PRELOAD). Asserted for both: exit 0, i.e. every thread ended with
//! GILGATE_ERR_FINALIZING or GILGATE_ERR_NOT_INITIALIZED, none vanished, calls were made; no hang;
//! and the constructor's own account: `NOT interposing` when linked, `interposing` when
//! preloaded. One CPython (the newest pyenv 3.9-3.13; the real-client suite covers the others).
//!
//! Env: GILGATE_RECIPE_RUNS (default 2 per way), GILGATE_RECIPE_PYTHON (a python3 to use),
//! GILGATE_CACHE.

use gilgate_harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// pybind11 / nanobind wheel for `p`, where the real-client suite keeps it (same stamp).
/// A build step's output (the last 15 lines of it on failure).
fn out(cmd: &mut Command) -> Result<String, String> {
    command_output(cmd, 15)
}

fn wheel(p: &Python, key: &str, spec: &str) -> Result<PathBuf, String> {
    let dir = clients_cache().join(&p.name).join(key);
    if dir.join(".gg-installed").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    out(Command::new(&p.exe).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore",
        "--no-warn-script-location", "--only-binary=:all:", "--target"]).arg(&dir).arg(spec))?;
    let ver = std::fs::read_dir(&dir).into_iter().flatten().flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .find_map(|n| n.strip_suffix(".dist-info").and_then(|s| s.strip_prefix(&format!("{key}-")).map(|v| format!("{key}-{v}"))))
        .unwrap_or_else(|| format!("{key}-?"));
    std::fs::write(dir.join(".gg-installed"), ver).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn read(f: &Path) -> Vec<u8> {
    std::fs::read(f).unwrap_or_default()
}

fn find_module(dir: &Path, stem: &str) -> Result<PathBuf, String> {
    std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten().map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).map_or(false, |n| n.starts_with(&format!("{stem}.")) && n.ends_with(".so")))
        .ok_or_else(|| format!("no {stem}*.so in {}", dir.display()))
}

fn main() {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let d = discover();
    let p = match std::env::var("GILGATE_RECIPE_PYTHON") {
        Ok(want) => d.found.iter().find(|p| p.exe.display().to_string() == want || p.name.contains(&want)).cloned(),
        Err(_) => d.found.iter().filter(|p| p.name.starts_with("pyenv-") && p.minor() >= (3, 9) && p.minor() <= (3, 13)).last().cloned(),
    };
    println!("gilgate recipes (docs/recipes.md): pybind11 and nanobind modules with their own threads");
    let Some(p) = p else {
        println!("ABSENT: no pyenv CPython 3.9-3.13 (or GILGATE_RECIPE_PYTHON) to build the recipes against: not run, not counted");
        println!("0 passed, 0 failed");
        return;
    };
    println!("CPython: {} ({})", p.name, p.exe.display());
    let root = repo_root();
    let lib = built_lib();
    assert!(lib.exists(), "{} not found: cargo build --release -p gilgate first", lib.display());

    // The installed gilgate every recipe finds: cmake/install.sh into a fresh prefix.
    let prefix = root.join("target/recipes/prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let target_dir = lib.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    if let Err(e) = out(Command::new("sh").arg(root.join("cmake/install.sh")).arg(&prefix)
        .env("GILGATE_SKIP_CARGO", "1").env("CARGO_TARGET_DIR", &target_dir)) {
        tally.case("cmake/install.sh into the recipes' prefix", false, &e);
        tally.finish(t0);
    }
    let ext = match out(Command::new(&p.exe).args(["-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"])) {
        Ok(e) => e,
        Err(e) => {
            tally.case("EXT_SUFFIX", false, &e);
            tally.finish(t0);
        }
    };
    let inc = root.join("include");
    let common = [read(&inc.join("gilgate.h")), read(&inc.join("gilgate.hpp")), prefix.display().to_string().into_bytes(),
        p.name.clone().into_bytes(), p.cflags.join(" ").into_bytes(), ext.clone().into_bytes()];

    // (name, module, dir)
    let mut modules: Vec<(String, &'static str, PathBuf)> = vec![];
    for (lib_key, spec, stem, cmake_dir) in [
        ("pybind11", "pybind11", "gg_recipe_pyb", "pybind11/share/cmake/pybind11"),
        ("nanobind", "nanobind>=2,<3", "gg_recipe_nb", "nanobind/cmake"),
    ] {
        let w = match wheel(&p, lib_key, spec) {
            Ok(w) => w,
            Err(e) => {
                println!("  ABSENT {lib_key}: not installable from PyPI: {}", e.lines().last().unwrap_or(""));
                continue;
            }
        };
        let ver = std::fs::read_to_string(w.join(".gg-installed")).unwrap_or_default();
        let src = root.join("clients/recipes").join(lib_key);
        let cpp = src.join(format!("{stem}.cpp"));
        let mut parts: Vec<&[u8]> = common.iter().map(|v| v.as_slice()).collect();
        let (a, b, c) = (read(&cpp), read(&src.join("CMakeLists.txt")), read(&root.join("clients/recipes/recipe_threads.hpp")));
        parts.extend([a.as_slice(), b.as_slice(), c.as_slice(), ver.as_bytes()]);
        let h = content_hash(&parts);
        let bdir = clients_cache().join("build").join(&p.name).join(format!("recipe-{lib_key}-{h}"));
        // CMake: find_package(gilgate CONFIG) against the installed prefix.
        let cm = (|| -> Result<PathBuf, String> {
            let b = bdir.join("cmake");
            if !b.join(".gg-built").exists() {
                let _ = std::fs::remove_dir_all(&b);
                out(Command::new("cmake").arg("-S").arg(&src).arg("-B").arg(&b)
                    .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
                    .arg(format!("-D{lib_key}_DIR={}", w.join(cmake_dir).display()))
                    .arg(format!("-DPython_EXECUTABLE={}", p.exe.display()))
                    .arg("-DCMAKE_BUILD_TYPE=Release"))?;
                out(Command::new("cmake").arg("--build").arg(&b).arg("-j2"))?;
                std::fs::write(b.join(".gg-built"), "").map_err(|e| e.to_string())?;
            }
            find_module(&b, stem).map(|_| b)
        })();
        match cm {
            Ok(b) => modules.push((format!("{lib_key}-cmake"), stem, b)),
            Err(e) => tally.case(&format!("{} build recipe {lib_key} (CMake)", p.name), false, &e),
        }
        // pkg-config (pybind11 only: nanobind's sources are compiled into the module, its CMake
        // helper is the supported way).
        if lib_key == "pybind11" {
            if Command::new("pkg-config").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
                println!("  ABSENT pybind11-pkgconfig: no pkg-config on this machine");
                continue;
            }
            let pc = (|| -> Result<PathBuf, String> {
                let b = bdir.join("pkgconfig");
                if !b.join(".gg-built").exists() {
                    let _ = std::fs::remove_dir_all(&b);
                    std::fs::create_dir_all(&b).map_err(|e| e.to_string())?;
                    let flags = out(Command::new("pkg-config").args(["--cflags", "--libs", "gilgate"])
                        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")))?;
                    out(Command::new("g++").args(["-O1", "-shared", "-fPIC", "-std=c++17", "-fvisibility=hidden"]).args(&p.cflags)
                        .arg(format!("-I{}", w.join("pybind11/include").display())).arg(&cpp)
                        .args(flags.split_whitespace()).arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
                        .arg("-o").arg(b.join(format!("{stem}{ext}"))))?;
                    std::fs::write(b.join(".gg-built"), "").map_err(|e| e.to_string())?;
                }
                Ok(b)
            })();
            match pc {
                Ok(b) => modules.push(("pybind11-pkgconfig".into(), stem, b)),
                Err(e) => tally.case(&format!("{} build recipe pybind11 (pkg-config)", p.name), false, &e),
            }
        }
    }
    println!("setup: {:.1}s", t0.elapsed().as_secs_f64());

    let runs = env_u64("GILGATE_RECIPE_RUNS", 2);
    let mut jobs = vec![];
    for i in 0..modules.len() {
        for preload in [false, true] {
            for k in 0..runs {
                jobs.push((i, preload, ["0.05", "0.3"][k as usize % 2]));
            }
        }
    }
    let (mods_r, p_r, lib_r) = (modules.clone(), p.clone(), lib.clone());
    let results = parallel(jobs.clone(), concurrency(), move |(i, preload, secs)| {
        let (_, stem, dir) = &mods_r[i];
        let mut c = Command::new(&p_r.exe);
        c.arg(repo_root().join("clients/recipes/recipe_main.py")).arg(stem).arg(dir).arg(secs)
            .env("GILGATE_VERBOSE", "1").env("GILGATE_SHOW_STATS", "1");
        if preload {
            c.env("LD_PRELOAD", &lib_r);
        }
        run(c, Duration::from_secs(60))
    });
    for ((i, preload, secs), r) in jobs.iter().zip(&results) {
        let way = if *preload { "preload" } else { "linked" };
        let name = format!("{} recipe {} {way} run {secs}s", p.name, modules[*i].0);
        let line = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("(no RESULT line)");
        let said_not = r.stderr.contains("NOT interposing");
        let said = r.stderr.contains(": interposing pthread_exit/pause");
        let account_ok = if *preload { said && !said_not } else { said_not && !said };
        let stats = r.stderr.lines().rev().find(|l| l.starts_with("gilgate: stats: ")).unwrap_or("");
        let pick = |k: &str| stats.split_whitespace().find(|w| w.starts_with(k)).unwrap_or("").to_string();
        println!("  {name}: {} {line} | interposing={} {} {} {}", r.outcome.kind(), if said { "yes" } else { "no" },
            pick("kills_intercepted="), pick("drains="), pick("drain_max_us="));
        tally.case(&name, matches!(r.outcome, Outcome::Clean(_)) && line.starts_with("RESULT") && account_ok,
            &format!("{} (interposing said: {said}, NOT said: {said_not}) stdout: {} stderr: {}", r.outcome, r.stdout.trim(), stderr_tail(r, 6)));
    }
    tally.finish(t0);
}
