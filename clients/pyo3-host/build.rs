// Linker arguments for the executable only (not for build scripts): the harness passes the
// CPython's `-Wl,...` flags (rpath to its libpython; --allow-shlib-undefined for the Debian
// unstable trees) in GG_PY_LINK_ARGS, separated by \x1f. An rpath on build scripts would make
// them load a Debian tree's own libc through the system loader.
fn main() {
    println!("cargo:rerun-if-env-changed=GG_PY_LINK_ARGS");
    if let Ok(args) = std::env::var("GG_PY_LINK_ARGS") {
        for a in args.split('\x1f').filter(|a| !a.is_empty()) {
            println!("cargo:rustc-link-arg-bins={a}");
        }
    }
}
