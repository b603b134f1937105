//! The AWS-compatible endpoint's pure core (issue #21): SigV4 verification ([`sigv4`]), the
//! table of operations Spindle answers and routing to them ([`ops`]), and replies in each
//! protocol's own shape ([`reply`]). No I/O and no clock: the daemon (`crates/server`, module
//! `aws`) reads requests, looks keys up, calls engines and writes what this crate renders.

pub mod ops;
pub mod reply;
pub mod restxml;
pub mod sigv4;

pub use ops::{route, Operation, Protocol, RouteError, Service, OPERATIONS};
pub use reply::{ErrorKind, Reply, Value};
pub use sigv4::{SigV4Error, Signed};
