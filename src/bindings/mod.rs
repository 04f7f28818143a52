//! Bindings: the safe Rust API over the C API (by its C names), and its PyO3 integration.
pub mod safe;
#[cfg(feature = "pyo3")]
pub mod pyo3;
