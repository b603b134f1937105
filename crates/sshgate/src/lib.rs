//! The SSH bastion's engine: each account's SSH user certificate authority (`ca`), the pure
//! certificate policy check (`policy`), and the jump host (`gate`), an SSH server (russh) that
//! accepts only certificates the policy passes and forwards `direct-tcpip` channels (what
//! `ssh -J` opens) to upstream sockets a [`gate::Backend`] gives it.
//!
//! What this crate deliberately does not do: it knows no accounts, grants, audit log or network
//! namespaces. The daemon's backend answers "which account's CA is this", "may this identity
//! reach that target, and through which namespace" and "record this attempt"; the gate only
//! speaks SSH and copies bytes.

pub mod ca;
pub mod gate;
pub mod path;
pub mod policy;

pub use ca::{CaError, CertRequest, HostCa, UserCa};
pub use gate::{Attempt, Backend, BoxFuture, Gate, GateError, Identity, SessionInfo};
pub use path::{choose, EndpointView, NoPath};
pub use policy::{check, Expect, Refusal};
/// The ssh-key types (russh's re-export), so callers need no second copy of the crate.
pub use russh::keys as ssh_key;
