//! Platform: the Rust side of the C boundary (`boundary`), where a caller's code lives
//! (`origin`), and the CPython loaded in the process (`cpython`).
pub(crate) mod boundary;
pub(crate) mod origin;
pub mod cpython;
