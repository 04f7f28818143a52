//! Building what the suites run: where libgilgate.so is (and that it is current), the C/C++
//! hosts compiled per CPython, the build cache and its content keys.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A binutils program (`nm`, `objdump`, `readelf`) for this test's architecture.
pub fn binutil(name: &str) -> String {
    if arm64() { format!("aarch64-linux-gnu-{name}") } else { name.to_string() }
}

/// The libgilgate.so under test: `$GILGATE_LIB_DIR/libgilgate.so`, else
/// `target/release/libgilgate.so`, checked once per process to be current (`ensure_current`).
pub fn built_lib() -> PathBuf {
    static LIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let lib = lib_path();
        ensure_current(&lib);
        lib
    })
    .clone()
}

fn lib_path() -> PathBuf {
    std::env::var_os("GILGATE_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(if arm64() { "target/aarch64-unknown-linux-gnu/release" } else { "target/release" }))
        .join("libgilgate.so")
}

/// The newest of the library's inputs (src/**, build.rs, cbindgen.toml): (mtime, path).
pub fn newest_source() -> Option<(std::time::SystemTime, PathBuf)> {
    fn walk(d: &Path, best: &mut Option<(std::time::SystemTime, PathBuf)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, best);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if best.as_ref().map_or(true, |b| t > b.0) {
                    *best = Some((t, p));
                }
            }
        }
    }
    let root = repo_root();
    let mut best = None;
    walk(&root.join("src"), &mut best);
    for f in ["build.rs", "cbindgen.toml"] {
        let p = root.join(f);
        if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified()) {
            if best.as_ref().map_or(true, |b: &(std::time::SystemTime, PathBuf)| t > b.0) {
                best = Some((t, p));
            }
        }
    }
    best
}

/// Why `lib` is not the build of the current sources (missing, or older than one of them).
pub fn stale_reason(lib: &Path) -> Option<String> {
    let Ok(t) = std::fs::metadata(lib).and_then(|m| m.modified()) else {
        return Some(format!("{} does not exist", lib.display()));
    };
    match newest_source() {
        Some((s, p)) if s > t => Some(format!("{} is older than {}", lib.display(), p.display())),
        _ => None,
    }
}

/// A stale library must neither pass nor fail a suite: when `target/release/libgilgate.so` is
/// missing or older than a source, the harness builds it (`cargo build --release -p gilgate`);
/// a stale `$GILGATE_LIB_DIR/libgilgate.so` (another build, e.g. test.sh's portable-entries
/// one) is refused, since the harness does not know how it was built. Either way the test
/// binary stops with the reason rather than test the wrong library.
fn ensure_current(lib: &Path) {
    let Some(why) = stale_reason(lib) else { return };
    if std::env::var_os("GILGATE_LIB_DIR").is_some() || arm64() {
        eprintln!("harness: REFUSED: {why}: rebuild that library (GILGATE_LIB_DIR, or scripts/arm64.sh --build-only) before testing it");
        std::process::exit(2);
    }
    eprintln!("harness: {why}: building it (cargo build --release -p gilgate)");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "gilgate"])
        .current_dir(repo_root())
        .env_remove("CARGO_TARGET_DIR")
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status();
    match st {
        Ok(s) if s.success() => {
            // cargo is the judge of freshness: a source whose change did not alter the library
            // (cargo left it as it was) is no reason to refuse it.
            if !lib.exists() {
                eprintln!("harness: REFUSED: cargo build succeeded but {} is still missing", lib.display());
                std::process::exit(2);
            }
        }
        other => {
            eprintln!("harness: REFUSED: {why}, and `cargo build --release -p gilgate` failed ({other:?})");
            std::process::exit(2);
        }
    }
}

/// A directory with libgilgate.so and its soname link (hosts record libgilgate.so.0).
pub fn lib_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(make_lib_dir).clone()
}

fn make_lib_dir() -> PathBuf {
    let built = built_lib();
    let dir = out_dir().join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["libgilgate.so", "libgilgate.so.0"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&built, &link).unwrap();
    }
    dir
}

/// Where this suite builds its hosts: `target/c_tests/<suite>` (`suite_name()`; arm64 mode:
/// `target/c_tests-aarch64/<suite>`). One directory per suite, because test.sh runs suites side
/// by side: two suites compiling the same host, or re-pointing the same `lib` links (the
/// portable-entries run points them at another build), must not share files.
pub fn out_dir() -> PathBuf {
    repo_root().join(if arm64() { "target/c_tests-aarch64" } else { "target/c_tests" }).join(suite_name())
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

/// Build `c_tests/<src>` as a plain shared library (no Python, no gilgate).
pub fn compile_shared(src: &str, name: &str) -> Result<PathBuf, String> {
    compile_plain(src, name, &["-shared", "-fPIC", "-pthread"])
}

/// A helper program from c_tests/ (no Python, no gilgate), for this machine.
pub fn compile_exe(src: &str, name: &str) -> Result<PathBuf, String> {
    compile_plain(src, name, &[])
}

fn compile_plain(src: &str, name: &str, kind: &[&str]) -> Result<PathBuf, String> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(name);
    let o = Command::new(cc(false))
        .args(kind)
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror"])
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
