//! The typed client of Spindle's REST API, and the credentials file.
//!
//! Every CLI command other than `spindle server` goes through [`Client`]; programs can use it
//! the same way. Requests are signed with the caller's derived key (see `spindle-auth`); the
//! secret itself never leaves the process.

mod apt;
mod client;
/// The credentials file's format lives in `spindle-credentials` (the daemon writes it too,
/// without depending on the client); re-exported so programs using the client find it here.
pub use spindle_credentials as credentials;

pub use apt::DebArchive;
pub use client::{Client, ClientError, LogEvent, LogEvents, DEFAULT_ENDPOINT};
pub use credentials::{CredentialsError, CredentialsFile, Profile};
