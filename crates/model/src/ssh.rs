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
    /// Whether the certificate permits agent forwarding (the credential holds
    /// `bastion:ForwardAgent`).
    #[serde(default)]
    pub forward_agent: bool,
    pub bastion: BastionInfo,
}

/// `GET /v1/accounts/{account}/ssh`: the account's CA and the jump host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BastionInfo {
    /// `ssh-ed25519 AAAA…`: the account's SSH user CA.
    pub ca_public_key: String,
    /// `SHA256:…`.
    pub ca_fingerprint: String,
    /// `ssh-ed25519 AAAA…`: the account's SSH host CA, which signs instances' host keys (for
    /// a `@cert-authority` known_hosts line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ca_public_key: Option<String>,
    /// `HOST:PORT` the jump host listens on; absent when the daemon runs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The jump host's host key, for `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_public_key: Option<String>,
    /// Whether the jump host accepts the account's registered plain public keys
    /// (`spindle ssh key-fallback on|off`); certificates are always accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fallback: Option<bool>,
}

/// `GET /v1/accounts/{account}/ssh/sessions`: one live session through the jump host (an
/// authenticated connection, with the channels it has open now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSession {
    /// `s-` and 16 hex digits; `DELETE …/ssh/sessions/{id}` ends it.
    pub id: String,
    /// `ACCOUNT/ACCESS_KEY_ID` of the certificate: who is connected.
    pub key_id: String,
    /// The certificate's serial.
    pub serial: u64,
    /// The login name on the bastion.
    pub user: String,
    /// The client's `address:port`.
    pub source: String,
    /// `HOST:PORT` of each channel open now.
    pub targets: Vec<String>,
    /// Unix seconds.
    pub started: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// `POST /v1/accounts/{account}/ssh/keys`: register a plain public key for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSshKeyRequest {
    /// One OpenSSH public key line (ed25519 or ECDSA).
    pub public_key: String,
}

/// A plain public key registered with the jump host, the fallback when certificates can't
/// be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// `key-` and 16 hex digits; `DELETE …/ssh/keys/{id}` removes it.
    pub id: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    pub public_key: String,
    /// The access key whose identity (and grants) the key speaks for.
    pub access_key_id: String,
    /// Unix seconds.
    pub added: u64,
}

/// `PUT /v1/accounts/{account}/ssh/settings`: the account's bastion settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// Whether registered plain public keys are accepted (on until turned off).
    pub key_fallback: bool,
}
