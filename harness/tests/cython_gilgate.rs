//! Cython through include/gilgate.pxd: clients/gg_cy_gilgate.pyx (`from gilgate cimport ...`),
//! a module whose own C threads call into Python with gilgate's fallible calls in nogil code,
//! built per CPython with Cython >= 3.2 from PyPI and linked with `-lgilgate`, then run by
//! clients/cython_gilgate_main.py, which exits while the threads call in.
//!
//! Two ways gilgate is loaded, each asserted the same: `linked` (loaded with the extension, i.e.
//! after libpython: no interposition, the gate and the drain answer) and `preload`
//! (`LD_PRELOAD`). Asserted: exit 0, i.e. every C thread ended with GILGATE_ERR_FINALIZING or
//! GILGATE_ERR_NOT_INITIALIZED, none vanished, calls were made; no hang (watchdog).
//!
//! Env: GILGATE_CYTHON_RUNS (default 3 per way), GILGATE_ONLY_PYTHONS, GILGATE_CACHE,
//! GILGATE_CLIENT_PIP (the python whose pip installs Cython; default newest pyenv python).

use gilgate_harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A build step's output (the last 12 lines of it on failure).
fn out(cmd: &mut Command) -> Result<String, String> {
    command_output(cmd, 12)
}

// py_command, pip_python and install (Cython, where the real-client suite keeps it, same
// stamp) are the harness library's (harness/src/clients.rs).

/// libgilgate.so and its soname link, pointing at the library under test, in a directory the
/// modules carry as their rpath.
fn gilgate_lib_dir() -> PathBuf {
    let dir = clients_cache().join("build/gilgate-lib");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["libgilgate.so", "libgilgate.so.0"] {
        let link = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(built_lib(), &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    }
    dir
}

fn build(p: &Python, cy: &Path, libdir: &Path) -> Result<PathBuf, String> {
    let root = repo_root();
    let inc = root.join("include");
    let pyx = root.join("clients/gg_cy_gilgate.pyx");
    let ext = out(py_command(p).args(["-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"]))?;
    let ver = std::fs::read_to_string(cy.join(".gg-installed")).unwrap_or_default();
    let read = |f: &Path| std::fs::read(f).unwrap_or_default();
    let h = content_hash(&[&read(&pyx), &read(&inc.join("gilgate.pxd")), &read(&inc.join("gilgate.h")),
        p.cflags.join(" ").as_bytes(), ver.as_bytes(), ext.as_bytes(), libdir.display().to_string().as_bytes()]);
    let dir = clients_cache().join("build").join(&p.name).join(format!("cython-gilgate-{h}"));
    let so = dir.join(format!("gg_cy_gilgate{ext}"));
    if dir.join(".gg-built").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let c_file = dir.join("gg_cy_gilgate.c");
    // `-I include`: where `from gilgate cimport ...` finds gilgate.pxd.
    out(py_command(p).env("PYTHONPATH", cy).args(["-m", "cython", "-3", "-I"]).arg(&inc).arg(&pyx).arg("-o").arg(&c_file))?;
    out(Command::new("gcc").args(["-O1", "-shared", "-fPIC", "-pthread"]).args(&p.cflags).arg(format!("-I{}", inc.display()))
        .arg(&c_file).arg("-o").arg(&so).arg(format!("-L{}", libdir.display())).arg("-lgilgate")
        .arg(format!("-Wl,-rpath,{}", libdir.display())))?;
    std::fs::write(dir.join(".gg-built"), "").map_err(|e| e.to_string())?;
    Ok(dir)
}

fn main() {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let d = discover();
    announce("gilgate from Cython (include/gilgate.pxd, clients/gg_cy_gilgate.pyx)", &d);
    let libdir = gilgate_lib_dir();
    let runs = env_u64("GILGATE_CYTHON_RUNS", 3);
    let pip = pip_python(&d.found);
    let mut ready: Vec<(Python, PathBuf)> = vec![];
    for p in &d.found {
        let Some(pip) = pip.as_deref() else {
            println!("  ABSENT {}: no python with pip to install Cython", p.name);
            continue;
        };
        let cy = match install(p, pip, "cython", &["Cython>=3.2,<4"]) {
            Ok((c, _)) => c,
            Err(e) => {
                println!("  ABSENT {}: Cython>=3.2 not installable: {}", p.name, e.lines().last().unwrap_or(""));
                continue;
            }
        };
        match build(p, &cy, &libdir) {
            Ok(dir) => ready.push((p.clone(), dir)),
            Err(e) => tally.case(&format!("{} build gg_cy_gilgate", p.name), false, &e),
        }
    }
    let mut jobs = vec![];
    for i in 0..ready.len() {
        for preload in [false, true] {
            for k in 0..runs {
                jobs.push((i, preload, ["0.05", "0.3", "0.01", "0.1"][k as usize % 4]));
            }
        }
    }
    let (ready_r, lib) = (ready.clone(), built_lib());
    let results = parallel(jobs.clone(), concurrency(), move |(i, preload, secs)| {
        let (p, dir) = &ready_r[i];
        let mut c = py_command(p);
        c.arg(repo_root().join("clients/cython_gilgate_main.py")).arg(dir).arg(secs);
        if preload {
            c.env("LD_PRELOAD", &lib);
        }
        run(c, Duration::from_secs(60))
    });
    for ((i, preload, secs), r) in jobs.iter().zip(&results) {
        let name = format!("{} cython+gilgate.pxd {} run {secs}s", ready[*i].0.name, if *preload { "preload" } else { "linked" });
        let line = r.stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("(no RESULT line)");
        println!("  {name}: {} {line}", r.outcome.kind());
        tally.case(&name, matches!(r.outcome, Outcome::Clean(_)) && line.starts_with("RESULT"),
            &format!("{} stdout: {} stderr: {}", r.outcome, r.stdout.trim(), stderr_tail(r, 6)));
    }
    for a in &d.absent {
        println!("  ABSENT CPython: {a}");
    }
    tally.finish(t0);
}
