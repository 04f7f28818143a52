//! A crate that depends on gilgate as published: harness/tests/crate_package.rs packages gilgate
//! (`cargo package`), unpacks the .crate and builds this against the unpacked files (path
//! dependency on the package's contents, not on the repository), then runs it.
//! usage: gg-crate-consumer EXPECTED_VERSION
//! No CPython in this process: every entry of the safe API must say so, as an error.

use gilgate::status::GILGATE_ERR_NO_PYTHON;

fn main() {
    let want = std::env::args().nth(1).expect("usage: gg-crate-consumer EXPECTED_VERSION");
    // SAFETY: gilgate_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(gilgate::gilgate_version()) }.to_str().unwrap();
    let mut bad = vec![];
    if v != want {
        bad.push(format!("gilgate_version() = {v}, want {want}"));
    }
    match gilgate::runtime_status() {
        Err(e) if e.status() == GILGATE_ERR_NO_PYTHON => {}
        r => bad.push(format!("runtime_status() = {:?}", r.map_err(|e| e.message()))),
    }
    match gilgate::Gil::ensure() {
        Err(e) if e.status() == GILGATE_ERR_NO_PYTHON => {}
        Err(e) => bad.push(format!("Gil::ensure() = {}", e.message())),
        Ok(_) => bad.push("Gil::ensure() succeeded without a CPython".into()),
    }
    match gilgate::finalize() {
        Err(e) if e.status() == GILGATE_ERR_NO_PYTHON => {}
        r => bad.push(format!("finalize() = {:?}", r.map_err(|e| e.message()))),
    }
    if bad.is_empty() {
        println!("crate-consumer: PASS gilgate={v} runtime_status/Gil::ensure/finalize: GILGATE_ERR_NO_PYTHON");
    } else {
        println!("crate-consumer: FAIL {}", bad.join("; "));
        std::process::exit(1);
    }
}
