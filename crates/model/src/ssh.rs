//! The SSH bastion's API types: signing a user certificate, and what a client needs to trust
//! and reach the jump host.

use serde::{Deserialize, Serialize};

/// `POST /v1/accounts/{account}/ssh/certificates`: sign `public_key` for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignSshCertRequest {
    /// One OpenSSH public key line (ed25519 or ECDSA).
    pub public_key: String,
    /// Seconds; the daemon's default (8 h) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Login names the certificate allows; `["root"]` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignSshCertResponse {
    /// The certificate as an OpenSSH line, for `~/.ssh/spindle-<account>-cert.pub`.
    pub certificate: String,
    pub serial: u64,
    /// `ACCOUNT/ACCESS_KEY_ID`: whose grants the jump host checks for each connection.
    pub key_id: String,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    pub valid_before: u64,
    pub bastion: BastionInfo,
}

/// `GET /v1/accounts/{account}/ssh`: the account's CA and the jump host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BastionInfo {
    /// `ssh-ed25519 AAAA…`: the account's SSH user CA.
    pub ca_public_key: String,
    /// `SHA256:…`.
    pub ca_fingerprint: String,
    /// `HOST:PORT` the jump host listens on; absent when the daemon runs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The jump host's host key, for `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_public_key: Option<String>,
}
