//! Sealing `NoEcho` values at rest. The stack journal and stored change sets keep values
//! computed from `NoEcho` parameters encrypted (AES-256-GCM) with a key that lives in the data
//! dir next to, not inside, the database (`stack-secrets.key`, mode 0600). A copy of
//! `state.db` — a backup, a `sqlite3` session, a support bundle — shows `{sealed:v1:…}`
//! instead of the value; the daemon unseals when it reads, so providers and `UsePreviousValue`
//! style re-deploys still get the real value.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::Digest;
use spindle_template::Value;
use std::io::Write;
use std::path::Path;

const PREFIX: &str = "{sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or create the sealing key `{path}`")]
    Key {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("sealing key `{path}` is not 32 bytes")]
    KeyLength { path: String },
    #[error("a sealed value is malformed or was sealed with another key")]
    Open,
}

pub struct Sealer {
    cipher: Aes256Gcm,
    /// A second key derived from the sealing key, for MACs only the daemon can make (e.g. the
    /// AWS endpoint's session tokens).
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// Opens the key at `path`, creating it (mode 0600) on first use.
    pub fn open(path: &Path) -> Result<Sealer, SealError> {
        let key_err = |err| SealError::Key {
            path: path.display().to_string(),
            err,
        };
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(key_err)?;
                f.write_all(&k)
                    .and_then(|_| f.sync_all())
                    .map_err(key_err)?;
                k
            }
            Err(e) => return Err(key_err(e)),
        };
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::KeyLength {
            path: path.display().to_string(),
        })?;
        let mac_key = sha2::Sha256::new()
            .chain_update(b"spindle-mac-key:")
            .chain_update(&key)
            .finalize()
            .into();
        Ok(Sealer { cipher, mac_key })
    }

    /// The MAC key derived from the sealing key (never the sealing key itself).
    pub fn mac_key(&self) -> &[u8; 32] {
        &self.mac_key
    }

    pub fn seal_str(&self, plain: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        format!("{PREFIX}{}{}}}", hex::encode(nonce), hex::encode(ct))
    }

    /// The plain text of a sealed string; `None` if `s` is not sealed.
    pub fn unseal_str(&self, s: &str) -> Option<Result<String, SealError>> {
        let body = s.strip_prefix(PREFIX)?.strip_suffix('}')?;
        Some((|| {
            let bytes = hex::decode(body).map_err(|_| SealError::Open)?;
            if bytes.len() < 12 {
                return Err(SealError::Open);
            }
            let (nonce, ct) = bytes.split_at(12);
            let plain = self
                .cipher
                .decrypt(Nonce::from_slice(nonce), ct)
                .map_err(|_| SealError::Open)?;
            String::from_utf8(plain).map_err(|_| SealError::Open)
        })())
    }

    /// Replaces `v` by a sealed string holding its JSON.
    pub fn seal(&self, v: &mut Value) {
        let json = serde_json::to_string(&*v).expect("values serialise");
        *v = Value::String(self.seal_str(&json));
    }

    /// Restores a value [`Sealer::seal`] sealed; leaves others alone.
    pub fn unseal(&self, v: &mut Value) -> Result<(), SealError> {
        if let Value::String(s) = &*v {
            if let Some(plain) = self.unseal_str(s) {
                *v = serde_json::from_str(&plain?).map_err(|_| SealError::Open)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let s = Sealer::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let orig = Value::List(vec![Value::str("hunter2"), Value::Number("7".into())]);
        let mut v = orig.clone();
        s.seal(&mut v);
        let Value::String(text) = &v else { panic!() };
        assert!(
            text.starts_with(PREFIX) && !text.contains("hunter2"),
            "{text}"
        );
        // The same key, opened again, unseals; another key does not.
        Sealer::open(&path).unwrap().unseal(&mut v.clone()).unwrap();
        let other = Sealer::open(&dir.path().join("other")).unwrap();
        assert!(other.unseal(&mut v.clone()).is_err());
        s.unseal(&mut v).unwrap();
        assert_eq!(v, orig);
        let mut plain = Value::str("not sealed");
        s.unseal(&mut plain).unwrap();
        assert_eq!(plain, Value::str("not sealed"));
    }
}
