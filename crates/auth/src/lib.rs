//! Authentication and authorization logic, with no I/O: deriving signing keys from secrets,
//! signing and verifying requests, refusing replays, and deciding whether a principal may
//! perform an action.
//!
//! The request signature follows SigV4's idea: the client never sends its secret. Each request
//! carries `Authorization: SPINDLE-HMAC-SHA256 Credential=…,Timestamp=…,Nonce=…,Signature=…`,
//! an HMAC-SHA256 over the method, raw path, raw query, SHA-256 of the body, timestamp and a
//! random nonce. The server refuses a signature outside the time window, one it has seen
//! before, and one dated before the server started (its replay memory starts empty).
//!
//! Secrets are never stored: the HMAC key is `argon2id(secret, salt = key id)`, computed once by
//! the client per process and once by the server when the key is created. The database holds
//! only that derived key.

pub mod policy;
pub mod signing;

pub use policy::{authorize, Decision, Grant};
pub use signing::{
    derive_signing_key, generate_secret, sign, verify, AuthHeader, ReplayGuard, RequestParts,
    SigError, SigningKey, SIGNATURE_WINDOW_SECS,
};
