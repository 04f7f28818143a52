//! Exports: everything C sees. The fallible `gilgate_*` API (`api`), the drop-in exports under
//! CPython's names (`dropin`), the `pthread_exit`/`pause` interposers (`interpose`), the
//! `dlsym`/`dlvsym` interposers (`dlsym`), and the policy applied where no error can be returned.
pub mod policy;
pub mod interpose;
pub(crate) mod dlsym;
pub mod dropin;
pub mod api;
