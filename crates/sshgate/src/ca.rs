//! An account's SSH user certificate authority: an ed25519 key kept, by the daemon, sealed at
//! rest as OpenSSH private key text, and the signing of users' public keys into short-lived
//! user certificates.

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the CA key is not an OpenSSH private key")]
    BadKey(#[source] russh::keys::ssh_key::Error),
    #[error("public key: expected one OpenSSH public key line (`ssh-ed25519 AAAA… comment`)")]
    BadPublicKey(#[source] russh::keys::ssh_key::Error),
    #[error(
        "public key: algorithm `{0}` is not accepted; use ed25519 or ECDSA (ssh-keygen -t ed25519)"
    )]
    Algorithm(String),
    #[error("ttl: must be between 1 second and {max} seconds, got {got}")]
    Ttl { got: u64, max: u64 },
    #[error("principals: at least one login name is needed")]
    NoPrincipals,
    #[error("principal `{0}`: expected a login name of letters, digits, `.`, `_` or `-`")]
    BadPrincipal(String),
    #[error("cannot build or sign the certificate")]
    Sign(#[source] russh::keys::ssh_key::Error),
}

/// The longest user certificate the CA signs: a working day and a bit.
pub const MAX_TTL_SECS: u64 = 24 * 3600;

/// How long a host certificate is valid. An instance asks again (through its metadata
/// service) whenever it likes; a month keeps a forgotten renewal from locking anyone out soon.
pub const HOST_TTL_SECS: u64 = 30 * 24 * 3600;

/// An account's SSH host CA: the same kind of key as the user CA, kept apart so a host
/// certificate can never pass for a user one (and the other way round) by which CA signed it.
pub type HostCa = UserCa;

/// Subject key algorithms the CA signs and the gate accepts.
pub fn algorithm_accepted(a: &Algorithm) -> bool {
    matches!(a, Algorithm::Ed25519 | Algorithm::Ecdsa { .. })
}

/// What to sign: the subject's key, who it is, which login names, for how long.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// One OpenSSH public key line.
    pub public_key: &'a str,
    /// The identity the certificate speaks for (the daemon writes `ACCOUNT/ACCESS_KEY_ID`).
    pub key_id: &'a str,
    pub principals: &'a [String],
    pub serial: u64,
    /// Unix seconds.
    pub valid_after: u64,
    pub ttl_secs: u64,
}

pub struct UserCa {
    key: PrivateKey,
}

impl std::fmt::Debug for UserCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserCa({})", self.fingerprint())
    }
}

impl UserCa {
    /// A fresh ed25519 CA.
    pub fn generate() -> UserCa {
        let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
            .expect("ed25519 key generation from the OS RNG does not fail");
        UserCa { key }
    }

    pub fn from_openssh(text: &str) -> Result<UserCa, CaError> {
        Ok(UserCa {
            key: PrivateKey::from_openssh(text).map_err(CaError::BadKey)?,
        })
    }

    /// The private key as OpenSSH text, for the caller to seal before it stores it.
    pub fn to_openssh(&self) -> String {
        self.key
            .to_openssh(LineEnding::LF)
            .expect("an in-memory ed25519 key encodes")
            .to_string()
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// `ssh-ed25519 AAAA…`, for `@cert-authority` lines and `TrustedUserCAKeys`.
    pub fn public_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .expect("an ed25519 public key encodes")
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Signs a user certificate for `req`, without agent forwarding.
    pub fn sign(&self, req: &CertRequest<'_>) -> Result<Certificate, CaError> {
        self.sign_user(req, false)
    }

    /// Signs a user certificate for `req`; `forward_agent` adds `permit-agent-forwarding`, so
    /// an instance's sshd lets the holder forward an SSH agent (`ssh -A`).
    pub fn sign_user(
        &self,
        req: &CertRequest<'_>,
        forward_agent: bool,
    ) -> Result<Certificate, CaError> {
        let subject =
            PublicKey::from_openssh(req.public_key.trim()).map_err(CaError::BadPublicKey)?;
        if !algorithm_accepted(&subject.algorithm()) {
            return Err(CaError::Algorithm(subject.algorithm().to_string()));
        }
        if req.ttl_secs == 0 || req.ttl_secs > MAX_TTL_SECS {
            return Err(CaError::Ttl {
                got: req.ttl_secs,
                max: MAX_TTL_SECS,
            });
        }
        if req.principals.is_empty() {
            return Err(CaError::NoPrincipals);
        }
        if let Some(p) = req.principals.iter().find(|p| !principal_ok(p)) {
            return Err(CaError::BadPrincipal(p.clone()));
        }
        let mut extensions = vec!["permit-port-forwarding", "permit-pty"];
        if forward_agent {
            extensions.push("permit-agent-forwarding");
        }
        self.build(
            subject.key_data().clone(),
            CertType::User,
            req,
            (req.valid_after, req.valid_after + req.ttl_secs),
            &extensions,
        )
    }

    /// Signs a host certificate for an instance's own host key: `principals` are the names a
    /// client may use for it (instance id, private address, hostname), checked like login names.
    pub fn sign_host(
        &self,
        public_key: &str,
        key_id: &str,
        principals: &[String],
        serial: u64,
        valid_after: u64,
    ) -> Result<Certificate, CaError> {
        let subject = PublicKey::from_openssh(public_key.trim()).map_err(CaError::BadPublicKey)?;
        if !algorithm_accepted(&subject.algorithm()) {
            return Err(CaError::Algorithm(subject.algorithm().to_string()));
        }
        if principals.is_empty() {
            return Err(CaError::NoPrincipals);
        }
        if let Some(p) = principals.iter().find(|p| !principal_ok(p)) {
            return Err(CaError::BadPrincipal(p.clone()));
        }
        let req = CertRequest {
            public_key,
            key_id,
            principals,
            serial,
            valid_after,
            ttl_secs: HOST_TTL_SECS,
        };
        // Extensions belong to user certificates only; OpenSSH refuses a host certificate
        // that carries any.
        self.build(
            subject.key_data().clone(),
            CertType::Host,
            &req,
            (valid_after, valid_after + HOST_TTL_SECS),
            &[],
        )
    }

    /// Signs without the request checks: any type and window. Tests use it to make the
    /// certificates the gate must refuse (host certificates, expired ones).
    pub fn sign_unchecked(
        &self,
        subject: russh::keys::ssh_key::public::KeyData,
        cert_type: CertType,
        req: &CertRequest<'_>,
        valid_after: u64,
        valid_before: u64,
    ) -> Result<Certificate, CaError> {
        let extensions: &[&str] = match cert_type {
            CertType::User => &["permit-port-forwarding", "permit-pty"],
            CertType::Host => &[],
        };
        self.build(
            subject,
            cert_type,
            req,
            (valid_after, valid_before),
            extensions,
        )
    }

    fn build(
        &self,
        subject: russh::keys::ssh_key::public::KeyData,
        cert_type: CertType,
        req: &CertRequest<'_>,
        (valid_after, valid_before): (u64, u64),
        extensions: &[&str],
    ) -> Result<Certificate, CaError> {
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rngs::OsRng,
            subject,
            valid_after,
            valid_before,
        )
        .map_err(CaError::Sign)?;
        b.serial(req.serial).map_err(CaError::Sign)?;
        b.cert_type(cert_type).map_err(CaError::Sign)?;
        b.key_id(req.key_id).map_err(CaError::Sign)?;
        for p in req.principals {
            b.valid_principal(p.clone()).map_err(CaError::Sign)?;
        }
        for ext in extensions {
            b.extension(*ext, "").map_err(CaError::Sign)?;
        }
        b.sign(&self.key).map_err(CaError::Sign)
    }
}

fn principal_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_key() -> String {
        PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap()
    }

    #[test]
    fn the_ca_round_trips_through_openssh_text_and_signs_what_it_is_asked() {
        let ca = UserCa::generate();
        let again = UserCa::from_openssh(&ca.to_openssh()).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let principals = vec!["root".to_string(), "deploy".to_string()];
        let key = user_key();
        let cert = again
            .sign(&CertRequest {
                public_key: &key,
                key_id: "123456789012/AKIAEXAMPLE",
                principals: &principals,
                serial: 42,
                valid_after: 1_000,
                ttl_secs: 3_600,
            })
            .unwrap();
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.valid_principals(), &principals[..]);
        assert_eq!((cert.valid_after(), cert.valid_before()), (1_000, 4_600));
        assert_eq!(cert.serial(), 42);
        assert_eq!(cert.key_id(), "123456789012/AKIAEXAMPLE");
        assert_eq!(
            cert.signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            ca.fingerprint()
        );
        cert.verify_signature().unwrap();
    }

    #[test]
    fn agent_forwarding_is_in_a_user_certificate_only_when_asked() {
        let ca = UserCa::generate();
        let key = user_key();
        let root = vec!["root".to_string()];
        let req = CertRequest {
            public_key: &key,
            key_id: "k",
            principals: &root,
            serial: 1,
            valid_after: 0,
            ttl_secs: 60,
        };
        for (agent, want) in [(false, false), (true, true)] {
            let cert = ca.sign_user(&req, agent).unwrap();
            let has = cert.extensions().contains_key("permit-agent-forwarding");
            assert_eq!(has, want, "forward_agent {agent}");
            assert!(cert.extensions().contains_key("permit-port-forwarding"));
        }
        assert!(!ca
            .sign(&req)
            .unwrap()
            .extensions()
            .contains_key("permit-agent-forwarding"));
    }

    #[test]
    fn host_certificates_name_the_instance_and_last_a_month() {
        let ca = HostCa::generate();
        let names = vec!["i-0abc".to_string(), "10.0.1.5".to_string()];
        let cert = ca
            .sign_host(&user_key(), "host i-0abc", &names, 7, 1_000)
            .unwrap();
        assert_eq!(cert.cert_type(), CertType::Host);
        assert_eq!(cert.valid_principals(), &names[..]);
        assert_eq!(cert.valid_before(), 1_000 + HOST_TTL_SECS);
        assert!(cert.extensions().is_empty());
        cert.verify_signature().unwrap();
        let err = ca.sign_host("nope", "k", &names, 1, 0).unwrap_err();
        assert!(err.to_string().starts_with("public key: expected"), "{err}");
        let err = ca.sign_host(&user_key(), "k", &[], 1, 0).unwrap_err();
        assert!(matches!(err, CaError::NoPrincipals), "{err}");
        let bad = vec!["a b".to_string()];
        let err = ca.sign_host(&user_key(), "k", &bad, 1, 0).unwrap_err();
        assert!(matches!(err, CaError::BadPrincipal(_)), "{err}");
    }

    #[test]
    fn bad_requests_are_refused_with_the_field_named() {
        let ca = UserCa::generate();
        let key = user_key();
        let root = vec!["root".to_string()];
        let ok = CertRequest {
            public_key: &key,
            key_id: "k",
            principals: &root,
            serial: 1,
            valid_after: 0,
            ttl_secs: 60,
        };
        let bad_name = vec!["ro ot".to_string()];
        let cases: Vec<(CertRequest<'_>, &str)> = vec![
            (
                CertRequest {
                    public_key: "ssh-ed25519 nope",
                    ..ok.clone()
                },
                "public key: expected",
            ),
            (
                CertRequest {
                    ttl_secs: 0,
                    ..ok.clone()
                },
                "ttl: must be",
            ),
            (
                CertRequest {
                    ttl_secs: MAX_TTL_SECS + 1,
                    ..ok.clone()
                },
                "ttl: must be",
            ),
            (
                CertRequest {
                    principals: &[],
                    ..ok.clone()
                },
                "principals: at least one",
            ),
            (
                CertRequest {
                    principals: &bad_name,
                    ..ok.clone()
                },
                "principal `ro ot`",
            ),
        ];
        for (req, want) in cases {
            let err = ca.sign(&req).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
        ca.sign(&ok).unwrap();
    }
}
