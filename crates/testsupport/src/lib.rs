//! What the integration tests and the benchmarks share, so each has one copy:
//!
//! - [`Daemon`]: `spindle server` on a temporary data dir and a random loopback port, ready once
//!   `/healthz` answers, stopped by its own PID when dropped (pass, fail or panic).
//! - [`root`]: whether root-only tests can run here (printing `skipped: <reason>` when not),
//!   and a guard that removes what a test created under its name prefix.
//! - [`templates`]: the web-in-a-VPC CloudFormation templates, kept as files under this crate.
//!
//! Tests get panicking helpers; benchmarks, which report errors, get the `try_` forms.

pub mod daemon;
pub mod root;
pub mod templates;

pub use daemon::{Daemon, Error, Options, Runtime};
pub use root::{pids_whose_cmdline_holds, root_tests_can_run, Sweep};
