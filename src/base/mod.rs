//! Leaves: status codes, diagnostics, configuration, the C/Rust layouts, counters, CPython's
//! opaque types. Nothing here knows CPython or the gate.
pub mod status;
pub(crate) mod log;
pub(crate) mod config;
#[allow(dead_code)] // some shapes only the C side uses
pub(crate) mod layout {
    // include!, not `mod layout;`: build.rs includes the same file, and cbindgen (which does not
    // expand include!) keeps these shapes out of the public header.
    include!("layout.rs");
}
pub(crate) mod counters;
pub mod pytypes;
