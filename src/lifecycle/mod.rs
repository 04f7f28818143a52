//! Lifecycle: adopting a runtime and draining it before finalization, parking what cannot be
//! given an error, PEP 788 guards, statistics.
pub(crate) mod pep788;
pub(crate) mod park;
pub(crate) mod drain;
pub mod stats;
