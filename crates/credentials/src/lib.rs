//! `~/.config/spindle/credentials`: profiles of access keys, in the INI shape of
//! `~/.aws/credentials`, written with mode 0600.
//!
//! ```ini
//! [default]
//! access_key_id = AKIA…
//! secret_access_key = …
//! endpoint = http://127.0.0.1:7420
//! ```

pub mod aws;

use spindle_model::AccessKeyId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One profile's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub access_key_id: Option<AccessKeyId>,
    pub secret_access_key: Option<String>,
    pub endpoint: Option<String>,
    /// When short-lived credentials stop working (RFC 3339), informational.
    pub expiration: Option<String>,
    /// The account the credential belongs to, informational.
    pub account: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the credentials file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the credentials file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no home directory: set HOME or SPINDLE_CREDENTIALS_FILE")]
    NoHome,
}

/// The whole file, profiles in name order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialsFile {
    pub profiles: BTreeMap<String, Profile>,
}

impl CredentialsFile {
    /// Where the file lives: `$SPINDLE_CREDENTIALS_FILE`, else
    /// `$XDG_CONFIG_HOME/spindle/credentials`, else `~/.config/spindle/credentials`.
    pub fn default_path() -> Result<PathBuf, CredentialsError> {
        if let Some(p) = std::env::var_os("SPINDLE_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(x).join("spindle/credentials"));
        }
        let home = std::env::var_os("HOME")
            .filter(|p| !p.is_empty())
            .ok_or(CredentialsError::NoHome)?;
        Ok(PathBuf::from(home).join(".config/spindle/credentials"))
    }

    /// Reads `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CredentialsError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, CredentialsError> {
        let mut out = Self::default();
        let mut current: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let syntax = |column: usize, message: String| CredentialsError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                column,
                message,
            };
            let indent = raw.len() - raw.trim_start().len();
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| syntax(indent + 1, "expected `[profile-name]`".into()))?
                    .trim();
                let name = name.strip_prefix("profile ").unwrap_or(name).trim();
                if name.is_empty() {
                    return Err(syntax(indent + 1, "empty profile name".into()));
                }
                if out
                    .profiles
                    .insert(name.to_owned(), Profile::default())
                    .is_some()
                {
                    return Err(syntax(
                        indent + 1,
                        format!("profile `{name}` appears twice"),
                    ));
                }
                current = Some(name.to_owned());
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| syntax(indent + 1, "expected `key = value`".into()))?;
            let (k, v) = (k.trim(), v.trim().to_owned());
            let Some(name) = &current else {
                return Err(syntax(
                    indent + 1,
                    "a setting before any `[profile]` header".into(),
                ));
            };
            let p = out
                .profiles
                .get_mut(name)
                .expect("current profile was inserted");
            let vcol = raw.find('=').map_or(1, |x| x + 2);
            match k {
                "access_key_id" | "spindle_access_key_id" => {
                    p.access_key_id = Some(AccessKeyId::parse(&v).map_err(|e| syntax(vcol, e.to_string()))?)
                }
                "secret_access_key" | "spindle_secret_access_key" => p.secret_access_key = Some(v),
                "endpoint" => p.endpoint = Some(v),
                "expiration" => p.expiration = Some(v),
                "account" => p.account = Some(v),
                other => {
                    return Err(syntax(
                        indent + 1,
                        format!("unknown setting `{other}` (expected access_key_id, secret_access_key, endpoint, expiration or account)"),
                    ))
                }
            }
        }
        Ok(out)
    }

    pub fn render(&self) -> String {
        let mut s = String::from("# Spindle credentials. Keep this file private (mode 0600).\n");
        for (name, p) in &self.profiles {
            s.push_str(&format!("\n[{name}]\n"));
            let mut kv = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    s.push_str(&format!("{k} = {v}\n"));
                }
            };
            kv(
                "access_key_id",
                p.access_key_id.as_ref().map(|a| a.as_str()),
            );
            kv("secret_access_key", p.secret_access_key.as_deref());
            kv("endpoint", p.endpoint.as_deref());
            kv("account", p.account.as_deref());
            kv("expiration", p.expiration.as_deref());
        }
        s
    }

    /// Writes the file atomically (temporary file, then rename) with mode 0600, creating its
    /// directory with mode 0700.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        write_private(path, &self.render())
    }

    /// Loads `path`, sets `name` to `profile`, and saves it back.
    pub fn upsert(path: &Path, name: &str, profile: Profile) -> Result<(), CredentialsError> {
        let mut f = Self::load(path)?;
        f.profiles.insert(name.to_owned(), profile);
        f.save(path)
    }
}

/// Writes `text` to `path` atomically (temporary file, then rename) with mode 0600, creating
/// its directory with mode 0700.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), CredentialsError> {
    {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let werr = |source| CredentialsError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(werr)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr)?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(werr)?;
        std::fs::rename(&tmp, path).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_with_mode() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/credentials");
        let p = Profile {
            access_key_id: Some(AccessKeyId::parse("AKIAABCDEFGHIJKLMNOP").unwrap()),
            secret_access_key: Some("s3cr+t/=".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            ..Profile::default()
        };
        CredentialsFile::upsert(&path, "dev", p.clone()).unwrap();
        CredentialsFile::upsert(&path, "prod", Profile::default()).unwrap();
        let f = CredentialsFile::load(&path).unwrap();
        assert_eq!(f.profiles["dev"], p);
        assert_eq!(f.profiles.len(), 2);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let cases = [
            ("[dev\n", "f:1:1: expected `[profile-name]`"),
            (
                "key = v\n",
                "f:1:1: a setting before any `[profile]` header",
            ),
            ("[a]\n  nonsense\n", "f:2:3: expected `key = value`"),
            ("[a]\ncolour = blue\n", "f:2:1: unknown setting `colour`"),
            (
                "[a]\naccess_key_id = nope\n",
                "f:2:16: access key id `nope` is not valid",
            ),
            ("[a]\n[a]\n", "f:2:1: profile `a` appears twice"),
        ];
        for (text, want) in cases {
            let err = CredentialsFile::parse(Path::new("f"), text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{text:?}: got {err}");
        }
    }
}
