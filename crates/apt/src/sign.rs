//! OpenPGP signing keys for published repositories, in pure Rust (rPGP).
//!
//! A key is one primary key that certifies and signs (no subkeys): Ed25519 in the v4
//! "EdDSA legacy" encoding that GnuPG 2.2 — and so `gpgv` as apt on Debian 12 runs it —
//! verifies, or RSA 3072/4096 for consumers that want RSA. Signatures use SHA-512.
//!
//! Secret material stays inside [`SigningKey`]: its `Debug` shows only the fingerprint,
//! [`SigningKey::save_secret`] writes mode 0600 files atomically, and nothing here logs.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize as _;
use pgp::types::{KeyDetails as _, Password};

use crate::fsutil;

/// Why a key could not be made, read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("invalid user id `{user_id}`: {reason}")]
    UserId {
        user_id: String,
        reason: &'static str,
    },
    #[error("invalid key parameters: {reason}")]
    Params { reason: String },
    #[error("OpenPGP key generation failed")]
    Generate(#[source] pgp::errors::Error),
    #[error("cannot parse the secret key")]
    Parse(#[source] pgp::errors::Error),
    #[error("signing with key {fingerprint} failed")]
    Sign {
        fingerprint: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("cannot serialise key {fingerprint}")]
    Serialise {
        fingerprint: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The public-key algorithm of a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// EdDSA over Curve25519 (v4, algorithm 22): small and fast; gpgv ≥ 2.1 verifies it.
    Ed25519,
    Rsa3072,
    Rsa4096,
}

/// A secret signing key.
#[derive(Clone)]
pub struct SigningKey {
    secret: SignedSecretKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a key for `user_id` (`Name <email>`), created now.
    pub fn generate(user_id: &str, algorithm: KeyAlgorithm) -> Result<SigningKey, SignError> {
        if user_id.trim().is_empty() || user_id.contains(['\n', '\r']) {
            return Err(SignError::UserId {
                user_id: user_id.to_string(),
                reason: "must be a non-empty single line",
            });
        }
        let key_type = match algorithm {
            KeyAlgorithm::Ed25519 => KeyType::Ed25519Legacy,
            KeyAlgorithm::Rsa3072 => KeyType::Rsa(3072),
            KeyAlgorithm::Rsa4096 => KeyType::Rsa(4096),
        };
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(key_type)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(user_id.to_string())
            .preferred_hash_algorithms(
                [HashAlgorithm::Sha512, HashAlgorithm::Sha256]
                    .into_iter()
                    .collect(),
            );
        let params = params.build().map_err(|e| SignError::Params {
            reason: e.to_string(),
        })?;
        let secret = params
            .generate(rand::thread_rng())
            .map_err(SignError::Generate)?;
        Ok(SigningKey { secret })
    }

    /// Reads a secret key from binary OpenPGP data (as written by [`SigningKey::secret_bytes`])
    /// or ASCII armor.
    pub fn from_bytes(data: &[u8]) -> Result<SigningKey, SignError> {
        let secret = if data.starts_with(b"-----BEGIN") {
            SignedSecretKey::from_armor_single(data)
                .map(|(k, _)| k)
                .map_err(SignError::Parse)?
        } else {
            SignedSecretKey::from_bytes(data).map_err(SignError::Parse)?
        };
        secret.verify_bindings().map_err(SignError::Parse)?;
        Ok(SigningKey { secret })
    }

    /// Reads a secret key file.
    pub fn load_secret(path: &Path) -> Result<SigningKey, SignError> {
        let data = std::fs::read(path).map_err(|source| SignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SigningKey::from_bytes(&data)
    }

    /// The fingerprint in upper-case hex (40 digits for v4 keys).
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.secret.fingerprint())
    }

    /// The 64-bit key id in upper-case hex (what `NO_PUBKEY` messages print).
    pub fn key_id(&self) -> String {
        hex::encode_upper(self.secret.legacy_key_id().as_ref())
    }

    fn public(&self) -> SignedPublicKey {
        self.secret.to_public_key()
    }

    /// The public key as a binary OpenPGP keyring: the file apt's `signed-by=` takes.
    pub fn public_keyring(&self) -> Result<Vec<u8>, SignError> {
        self.public()
            .to_bytes()
            .map_err(|source| SignError::Serialise {
                fingerprint: self.fingerprint(),
                source,
            })
    }

    /// The public key in ASCII armor (`.asc`; apt also accepts it as `signed-by=`).
    pub fn public_armored(&self) -> Result<String, SignError> {
        self.public()
            .to_armored_string(ArmorOptions::default())
            .map_err(|source| SignError::Serialise {
                fingerprint: self.fingerprint(),
                source,
            })
    }

    /// The secret key as binary OpenPGP data (unencrypted: protect it like a private key).
    pub fn secret_bytes(&self) -> Result<Vec<u8>, SignError> {
        self.secret
            .to_bytes()
            .map_err(|source| SignError::Serialise {
                fingerprint: self.fingerprint(),
                source,
            })
    }

    /// Writes the secret key to `path` with mode 0600, atomically.
    pub fn save_secret(&self, path: &Path) -> Result<(), SignError> {
        let bytes = self.secret_bytes()?;
        fsutil::write_atomic(path, &bytes, 0o600, true).map_err(|source| SignError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A cleartext-signed copy of `text` (an `InRelease` file).
    pub fn clearsign(&self, text: &str) -> Result<String, SignError> {
        let msg = CleartextSignedMessage::sign(
            rand::thread_rng(),
            text,
            &self.secret.primary_key,
            &Password::empty(),
        )
        .map_err(|source| self.sign_err(source))?;
        msg.to_armored_string(ArmorOptions::default())
            .map_err(|source| self.sign_err(source))
    }

    /// An armored detached signature over `data` (a `Release.gpg` file).
    pub fn detach_sign(&self, data: &[u8]) -> Result<String, SignError> {
        let sig = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.secret.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha512,
            data,
        )
        .map_err(|source| self.sign_err(source))?;
        sig.to_armored_string(ArmorOptions::default())
            .map_err(|source| self.sign_err(source))
    }

    fn sign_err(&self, source: pgp::errors::Error) -> SignError {
        SignError::Sign {
            fingerprint: self.fingerprint(),
            source,
        }
    }

    /// Checks a cleartext signature made by this key (for tests and self-checks).
    pub fn verify_clearsigned(&self, signed: &str) -> Result<String, SignError> {
        let (msg, _) = CleartextSignedMessage::from_string(signed).map_err(SignError::Parse)?;
        msg.verify(&self.public().primary_key)
            .map_err(|source| self.sign_err(source))?;
        Ok(msg.signed_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_sign_round_trip_and_reload() {
        let key =
            SigningKey::generate("Spindle Test <test@example.invalid>", KeyAlgorithm::Ed25519)
                .unwrap();
        assert_eq!(key.fingerprint().len(), 40);
        assert!(key.fingerprint().ends_with(&key.key_id()));
        let debug = format!("{key:?}");
        assert!(
            debug.contains(&key.fingerprint()) && !debug.contains("secret"),
            "{debug}"
        );

        let text = "Origin: test\nSuite: stable\n-dash line\n";
        let signed = key.clearsign(text).unwrap();
        assert!(
            signed.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA"),
            "{signed}"
        );
        assert!(signed.contains("\n- -dash line\n"));
        key.verify_clearsigned(&signed).unwrap();
        let tampered = signed.replace("Suite: stable", "Suite: evil");
        assert!(key.verify_clearsigned(&tampered).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.sec");
        key.save_secret(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = SigningKey::load_secret(&path).unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        let armored = key.public_armored().unwrap();
        assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        assert!(SigningKey::from_bytes(b"not a key").is_err());
        assert!(SigningKey::generate("", KeyAlgorithm::Ed25519).is_err());
    }
}
