//! The crate as published: `cargo package --no-verify` (target dir under $GILGATE_CACHE/crate),
//! the .crate unpacked, and clients/crate-consumer built against the unpacked files (a path
//! dependency on the package's contents, not on the repository: this build is the package's
//! verification, from build.rs, the C sources and the header it ships) and run: the safe Rust
//! API answers GILGATE_ERR_NO_PYTHON without a CPython, gilgate_version() is Cargo.toml's.
//! Cached: the unpacked package and the consumer's target dir, both renewed when the .crate
//! changes (its files all carry one fixed mtime, which cargo's fingerprints cannot see past).
//! `cargo publish --dry-run` is not run here (it needs the crates.io index); see docs/packaging.md.

use gilgate_harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS").env_remove("CARGO_BUILD_TARGET");
    c
}

fn main() {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    println!("gilgate crate: cargo package, a consumer crate built from the packaged .crate");
    let root = repo_root();
    let cache: PathBuf = clients_cache().parent().unwrap().join("crate");
    let version = {
        let t = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        t.lines().find_map(|l| l.strip_prefix("version = \"").and_then(|r| r.split('"').next())).unwrap().to_string()
    };
    let pkg_target = cache.join("target-package");
    let tp = Instant::now();
    let r = command_output(cargo().args(["package", "--no-verify", "--allow-dirty", "--quiet", "-p", "gilgate"])
        .current_dir(&root).env("CARGO_TARGET_DIR", &pkg_target), 20);
    let krate = pkg_target.join(format!("package/gilgate-{version}.crate"));
    let ok = r.is_ok() && krate.is_file();
    tally.case("cargo package -p gilgate", ok, &format!("{r:?}"));
    if !ok {
        tally.finish(t0);
    }
    let bytes = std::fs::read(&krate).unwrap();
    println!("packaged {} ({} bytes, {:.1} s)", krate.display(), bytes.len(), tp.elapsed().as_secs_f64());
    let list = command_output(Command::new("tar").arg("tzf").arg(&krate), 5).unwrap_or_default();
    let want = ["build.rs", "cbindgen.toml", "src/lib.rs", "src/c/shared.h", "src/c/shared.c", "src/c/armed_call.c", "src/c/api_entries.c", "src/c/dropin_entries.c", "src/c/x86_64/api_entries.S", "src/c/pep788.c", "src/base/layout.rs", "include/gilgate.h"];
    let missing: Vec<&str> = want.iter().copied().filter(|w| !list.lines().any(|l| l == format!("gilgate-{version}/{w}"))).collect();
    tally.case("the .crate holds build.rs, the C sources and the header", missing.is_empty(), &format!("missing {missing:?}"));

    // Unpack (when the .crate changed) and write the consumer around the unpacked package.
    let hash = content_hash(&[&bytes]);
    let src = cache.join("src");
    let stamp = src.join("crate.hash");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(hash.as_str()) {
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).unwrap();
        if let Err(e) = command_output(Command::new("tar").arg("xzf").arg(&krate).arg("-C").arg(&src), 5) {
            tally.case("unpack the .crate", false, &e);
            tally.finish(t0);
        }
        std::fs::write(&stamp, &hash).unwrap();
    }
    let consumer = cache.join("consumer");
    std::fs::create_dir_all(consumer.join("src")).unwrap();
    // A new package: the consumer builds it from nothing. `cargo package` gives every file one
    // fixed mtime, so cargo's mtime fingerprints of a path dependency cannot see that build.rs or
    // src/ changed: a build script cached from an older package would write an older
    // gg_layout.h (seen: GG788_GUARD_MAGIC undeclared after build.rs grew).
    let built_from = consumer.join("target.hash");
    if std::fs::read_to_string(&built_from).ok().as_deref() != Some(hash.as_str()) {
        let _ = std::fs::remove_dir_all(consumer.join("target"));
        std::fs::write(&built_from, &hash).unwrap();
    }
    let manifest = format!(
        "[package]\nname = \"gg-crate-consumer\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\ngilgate = {{ path = \"{}\" }}\n\n[workspace]\n",
        src.join(format!("gilgate-{version}")).display()
    );
    let main_rs = std::fs::read_to_string(root.join("clients/crate-consumer/src/main.rs")).unwrap();
    for (f, text) in [("Cargo.toml", manifest.as_str()), ("src/main.rs", main_rs.as_str())] {
        if std::fs::read_to_string(consumer.join(f)).ok().as_deref() != Some(text) {
            std::fs::write(consumer.join(f), text).unwrap();
        }
    }
    if !consumer.join("Cargo.lock").exists() {
        // The package's own lock file: the versions the repository was tested with.
        let _ = std::fs::copy(src.join(format!("gilgate-{version}/Cargo.lock")), consumer.join("Cargo.lock"));
    }
    let tb = Instant::now();
    let build = |offline: bool| {
        let mut c = cargo();
        c.args(["build", "--release", "--quiet", "-j2", "--manifest-path"]).arg(consumer.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", consumer.join("target"));
        if offline {
            c.arg("--offline");
        }
        command_output(&mut c, 20)
    };
    let b = build(true).or_else(|_| build(false));
    tally.case("consumer crate builds from the packaged gilgate", b.is_ok(), &format!("{b:?}"));
    if b.is_ok() {
        println!("consumer built ({:.1} s)", tb.elapsed().as_secs_f64());
        let mut c = Command::new(consumer.join("target/release/gg-crate-consumer"));
        c.arg(&version);
        let r = run(c, Duration::from_secs(20));
        println!("{}", r.stdout.trim());
        tally.case("consumer runs the safe Rust API (no CPython: GILGATE_ERR_NO_PYTHON), version = Cargo.toml",
            matches!(r.outcome, Outcome::Clean(_)) && r.stdout.contains("crate-consumer: PASS"), &format!("{} {} {}", r.outcome, r.stdout, r.stderr));
    }
    tally.finish(t0);
}
