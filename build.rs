// Compiles the armed-call C helper (src/c/armed.c) and regenerates include/gilgate.h with cbindgen.
// The header is checked in; CI fails if it is stale (see .ci/run).
use std::path::PathBuf;

fn main() {
    // Hosts record the soname, so a later compatible release can replace the file.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgilgate.so.0");
    println!("cargo:rerun-if-changed=src/c/armed.c");
    cc::Build::new()
        .file("src/c/armed.c")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .flag_if_supported("-Wclobbered")
        // The fast paths are leaf-like wrappers: no frame pointer setup on the hot path.
        .flag_if_supported("-fomit-frame-pointer")
        .opt_level(2)
        .compile("gilgate_armed");
    // PEP 788 path (src/pep788.rs): the trampoline for its armed call.
    println!("cargo:rerun-if-changed=src/c/pep788.c");
    cc::Build::new()
        .file("src/c/pep788.c")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .opt_level(2)
        .compile("gilgate_pep788");

    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    for f in ["src", "cbindgen.toml"] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    match cbindgen::Builder::new().with_crate(&dir).with_config(config).generate() {
        Ok(b) => {
            b.write_to_file(dir.join("include/gilgate.h"));
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}
