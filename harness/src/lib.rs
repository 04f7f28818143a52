//! Test harness for gilgate's C and C++ hosts: finds every CPython on the machine, compiles the
//! hosts in c_tests/ against each, runs them under a watchdog and classifies what happened.
//! One module per job: `discovery` (which CPythons), `build` (libgilgate.so, hosts, the build
//! cache), `run` (watchdog, outcomes, job pool), `report` (result lines, case names and the
//! `GILGATE_CASE` filter, tally), `clients` (helpers of the suites that build Python extensions).

pub mod build;
pub mod clients;
pub mod discovery;
pub mod report;
pub mod run;

pub use build::*;
pub use clients::*;
pub use discovery::*;
pub use report::*;
pub use run::*;
