//! Exports: everything C sees. The fallible `gilgate_*` API (`api`), the drop-in exports under
//! CPython's names (`dropin`), the `pthread_exit`/`pause` interposers (`interpose`), the
//! `dlsym`/`dlvsym` interposers (`dlsym`), the PEP 788 API for CPython < 3.15 (`pep788_compat`),
//! and the policy applied where no error can be returned.
pub mod policy;
pub mod interpose;
pub(crate) mod dlsym;
pub mod dropin;
pub mod api;
pub mod pep788_compat;
#[cfg(test)]
mod fastpath_equivalence;
