//! Lifecycle: adopting a runtime and draining it before finalization, parking what cannot be
//! given an error, PEP 788 guards (CPython's on 3.15+, counted by gilgate below: `guards`),
//! statistics.
pub(crate) mod pep788;
pub(crate) mod guards;
pub(crate) mod park;
pub(crate) mod drain;
pub mod stats;
