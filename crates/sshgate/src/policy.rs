//! The certificate policy: everything the jump host checks about a user certificate itself,
//! as one pure function of the certificate, what is expected and the time. russh checks the
//! signature and the validity window before it asks the gate, but not which CA signed, the
//! type, the principals, the critical options or the key algorithm; this check does all of
//! them again, so it holds on its own.

use crate::ca::algorithm_accepted;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg};
use std::net::IpAddr;

/// What the certificate must match.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `SHA256:…` fingerprints of the CAs trusted for this login.
    pub trusted_cas: &'a [String],
    /// The login name the client asked for; it must be one of the certificate's principals.
    pub user: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// The client's address, checked against a `source-address` critical option.
    pub peer: Option<IpAddr>,
}

/// Why a certificate is refused. `code` is what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a host certificate was presented as a user certificate")]
    HostCertificate,
    #[error("signed by CA {0}, which no account trusts")]
    UnknownCa(String),
    #[error("the certificate's signature does not verify")]
    BadSignature,
    #[error("not valid until {valid_after} (now {now})")]
    NotYetValid { valid_after: u64, now: u64 },
    #[error("expired at {valid_before} (now {now})")]
    Expired { valid_before: u64, now: u64 },
    #[error("login `{user}` is not among the certificate's principals {principals:?}")]
    WrongPrincipal {
        user: String,
        principals: Vec<String>,
    },
    #[error("critical option `{0}` is not supported, so the certificate can't be honoured")]
    UnknownCriticalOption(String),
    #[error("source-address `{allowed}` does not include the client {peer}")]
    SourceAddress { allowed: String, peer: String },
    #[error("key algorithm `{0}` is not accepted (ed25519 or ECDSA)")]
    KeyAlgorithm(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::HostCertificate => "host-certificate",
            Refusal::UnknownCa(_) => "unknown-ca",
            Refusal::BadSignature => "bad-signature",
            Refusal::NotYetValid { .. } => "not-yet-valid",
            Refusal::Expired { .. } => "expired",
            Refusal::WrongPrincipal { .. } => "wrong-principal",
            Refusal::UnknownCriticalOption(_) => "critical-option",
            Refusal::SourceAddress { .. } => "source-address",
            Refusal::KeyAlgorithm(_) => "key-algorithm",
        }
    }
}

/// Checks `cert` against `expect`. The first failing rule is the answer, in this order: type,
/// CA, signature, validity window, principal, critical options, key algorithm.
pub fn check(cert: &Certificate, expect: &Expect<'_>) -> Result<(), Refusal> {
    if cert.cert_type() != CertType::User {
        return Err(Refusal::HostCertificate);
    }
    let ca = cert
        .signature_key()
        .fingerprint(HashAlg::Sha256)
        .to_string();
    if !expect.trusted_cas.contains(&ca) {
        return Err(Refusal::UnknownCa(ca));
    }
    if cert.verify_signature().is_err() {
        return Err(Refusal::BadSignature);
    }
    // PROTOCOL.certkeys: valid after <= now < valid before.
    let now = expect.now;
    if now < cert.valid_after() {
        return Err(Refusal::NotYetValid {
            valid_after: cert.valid_after(),
            now,
        });
    }
    if now >= cert.valid_before() {
        return Err(Refusal::Expired {
            valid_before: cert.valid_before(),
            now,
        });
    }
    // An empty principal list means "anyone" to OpenSSH; the bastion never accepts that.
    if !cert.valid_principals().iter().any(|p| p == expect.user) {
        return Err(Refusal::WrongPrincipal {
            user: expect.user.to_string(),
            principals: cert.valid_principals().to_vec(),
        });
    }
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => source_address(value, expect.peer)?,
            _ => return Err(Refusal::UnknownCriticalOption(name.clone())),
        }
    }
    let alg = cert.public_key().algorithm();
    if !algorithm_accepted(&alg) {
        return Err(Refusal::KeyAlgorithm(alg.to_string()));
    }
    Ok(())
}

/// `source-address`: a comma-separated list of addresses or CIDR blocks.
fn source_address(allowed: &str, peer: Option<IpAddr>) -> Result<(), Refusal> {
    let refuse = || Refusal::SourceAddress {
        allowed: allowed.to_string(),
        peer: peer.map_or_else(|| "(unknown)".to_string(), |p| p.to_string()),
    };
    let peer = peer.ok_or_else(refuse)?;
    let inside = |block: &str| -> bool {
        let (addr, len) = match block.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().ok()),
            None => (block, None),
        };
        match (addr.parse::<IpAddr>(), peer) {
            (Ok(IpAddr::V4(net)), IpAddr::V4(p)) => {
                let len = len.unwrap_or(32).min(32);
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(net) & mask == u32::from(p) & mask
            }
            (Ok(IpAddr::V6(net)), IpAddr::V6(p)) => {
                let len = len.unwrap_or(128).min(128);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(net) & mask == u128::from(p) & mask
            }
            _ => false,
        }
    };
    if allowed.split(',').map(str::trim).any(inside) {
        Ok(())
    } else {
        Err(refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CertRequest, UserCa};
    use russh::keys::{Algorithm, PrivateKey};

    const NOW: u64 = 1_800_000_000;

    /// One row: how the certificate is made, who asks, and the expected refusal code.
    struct Case {
        name: &'static str,
        make: fn(&UserCa, &UserCa) -> Certificate,
        user: &'static str,
        peer: &'static str,
        want: Result<(), &'static str>,
    }

    fn subject(alg: Algorithm) -> russh::keys::ssh_key::public::KeyData {
        PrivateKey::random(&mut rand::rngs::OsRng, alg)
            .unwrap()
            .public_key()
            .key_data()
            .clone()
    }

    fn cert(
        ca: &UserCa,
        ty: CertType,
        after: u64,
        before: u64,
        options: &[(&str, &str)],
    ) -> Certificate {
        let principals = vec!["root".to_string()];
        let req = CertRequest {
            public_key: "",
            key_id: "123456789012/AKIAEXAMPLE",
            principals: &principals,
            serial: 7,
            valid_after: after,
            ttl_secs: 0,
        };
        if options.is_empty() {
            return ca
                .sign_unchecked(subject(Algorithm::Ed25519), ty, &req, after, before)
                .unwrap();
        }
        // Critical options need the builder directly.
        use russh::keys::ssh_key::certificate::Builder;
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rngs::OsRng,
            subject(Algorithm::Ed25519),
            after,
            before,
        )
        .unwrap();
        b.cert_type(ty).unwrap();
        b.valid_principal("root").unwrap();
        for (k, v) in options {
            b.critical_option(*k, *v).unwrap();
        }
        let key = PrivateKey::from_openssh(ca.to_openssh()).unwrap();
        b.sign(&key).unwrap()
    }

    fn good(ca: &UserCa, _: &UserCa) -> Certificate {
        cert(ca, CertType::User, NOW - 60, NOW + 3600, &[])
    }

    const CASES: &[Case] = &[
        Case {
            name: "a valid user certificate",
            make: good,
            user: "root",
            peer: "127.0.0.1",
            want: Ok(()),
        },
        Case {
            name: "expired",
            make: |ca, _| cert(ca, CertType::User, NOW - 7200, NOW - 3600, &[]),
            user: "root",
            peer: "127.0.0.1",
            want: Err("expired"),
        },
        Case {
            name: "valid_before is exclusive",
            make: |ca, _| cert(ca, CertType::User, NOW - 60, NOW, &[]),
            user: "root",
            peer: "127.0.0.1",
            want: Err("expired"),
        },
        Case {
            name: "not yet valid",
            make: |ca, _| cert(ca, CertType::User, NOW + 60, NOW + 3600, &[]),
            user: "root",
            peer: "127.0.0.1",
            want: Err("not-yet-valid"),
        },
        Case {
            name: "another CA's certificate",
            make: |_, other| good(other, other),
            user: "root",
            peer: "127.0.0.1",
            want: Err("unknown-ca"),
        },
        Case {
            name: "a host certificate as a user certificate",
            make: |ca, _| cert(ca, CertType::Host, NOW - 60, NOW + 3600, &[]),
            user: "root",
            peer: "127.0.0.1",
            want: Err("host-certificate"),
        },
        Case {
            name: "a login the certificate doesn't name",
            make: good,
            user: "admin",
            peer: "127.0.0.1",
            want: Err("wrong-principal"),
        },
        Case {
            name: "an unknown critical option",
            make: |ca, _| {
                cert(
                    ca,
                    CertType::User,
                    NOW - 60,
                    NOW + 3600,
                    &[("verify-required", "")],
                )
            },
            user: "root",
            peer: "127.0.0.1",
            want: Err("critical-option"),
        },
        Case {
            name: "force-command is refused, not ignored",
            make: |ca, _| {
                cert(
                    ca,
                    CertType::User,
                    NOW - 60,
                    NOW + 3600,
                    &[("force-command", "/bin/true")],
                )
            },
            user: "root",
            peer: "127.0.0.1",
            want: Err("critical-option"),
        },
        Case {
            name: "source-address that includes the client",
            make: |ca, _| {
                cert(
                    ca,
                    CertType::User,
                    NOW - 60,
                    NOW + 3600,
                    &[("source-address", "10.0.0.0/8,127.0.0.0/8")],
                )
            },
            user: "root",
            peer: "127.0.0.1",
            want: Ok(()),
        },
        Case {
            name: "source-address that excludes the client",
            make: |ca, _| {
                cert(
                    ca,
                    CertType::User,
                    NOW - 60,
                    NOW + 3600,
                    &[("source-address", "10.0.0.0/8")],
                )
            },
            user: "root",
            peer: "127.0.0.1",
            want: Err("source-address"),
        },
        Case {
            name: "a DSA-free world: an RSA-less build accepts ECDSA",
            make: |ca, _| {
                let principals = vec!["root".to_string()];
                let req = CertRequest {
                    public_key: "",
                    key_id: "k",
                    principals: &principals,
                    serial: 1,
                    valid_after: 0,
                    ttl_secs: 0,
                };
                ca.sign_unchecked(
                    subject(Algorithm::Ecdsa {
                        curve: russh::keys::EcdsaCurve::NistP256,
                    }),
                    CertType::User,
                    &req,
                    NOW - 60,
                    NOW + 60,
                )
                .unwrap()
            },
            user: "root",
            peer: "127.0.0.1",
            want: Ok(()),
        },
    ];

    #[test]
    fn every_refusal_reason_from_the_acceptance_list() {
        let ca = UserCa::generate();
        let other = UserCa::generate();
        let trusted = vec![ca.fingerprint()];
        let mut failures = Vec::new();
        for c in CASES {
            let cert = (c.make)(&ca, &other);
            let got = check(
                &cert,
                &Expect {
                    trusted_cas: &trusted,
                    user: c.user,
                    now: NOW,
                    peer: Some(c.peer.parse().unwrap()),
                },
            )
            .map_err(|r| r.code());
            if got != c.want {
                failures.push(format!("{}: got {got:?}, want {:?}", c.name, c.want));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_tampered_certificate_fails_its_signature() {
        let ca = UserCa::generate();
        let c = good(&ca, &ca);
        // Re-encode with one principal changed: same CA key, signature no longer matches.
        let text = c.to_openssh().unwrap();
        let mut bytes = c.to_bytes().unwrap();
        let at = bytes.windows(4).position(|w| w == b"root").unwrap();
        bytes[at] = b'x';
        let tampered = Certificate::from_bytes(&bytes).unwrap();
        assert_ne!(tampered.to_openssh().unwrap(), text);
        let trusted = vec![ca.fingerprint()];
        let r = check(
            &tampered,
            &Expect {
                trusted_cas: &trusted,
                user: "xoot",
                now: NOW,
                peer: None,
            },
        );
        assert_eq!(r.map_err(|r| r.code()), Err("bad-signature"));
    }
}
