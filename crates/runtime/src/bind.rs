//! Host directories bind-mounted into an instance (the developer box's project directory).
//!
//! A bind mount gives the instance read-write access to part of the host's filesystem, so the
//! checks here are strict: the host path must be absolute, exist, be a directory and not be
//! `/`; the guest path must be absolute, plain (no `.`, `..` or empty components) and not `/`.
//! Who may ask for one is the caller's decision (the daemon allows only the admin credential).

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One host directory mounted read-write into an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute path of a directory on the host.
    pub host: PathBuf,
    /// Absolute path inside the instance.
    pub guest: String,
}

/// Why a bind mount was refused. The caller names the flag or field in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("expected HOST:GUEST (two absolute paths), got `{0}`")]
    Syntax(String),
    #[error("host path `{0}` must be absolute")]
    HostRelative(String),
    #[error("host path `{0}` does not exist")]
    HostMissing(String),
    #[error("host path `{0}` is not a directory")]
    HostNotDir(String),
    #[error("host path `{0}` is the root directory; mount a project directory instead")]
    HostRoot(String),
    #[error(
        "guest path `{0}` must be absolute, without `.`, `..` or empty components, and not `/`"
    )]
    BadGuest(String),
    #[error("guest path `{guest}` passes through `{link}`, a symlink in the image")]
    GuestSymlink { guest: String, link: String },
}

impl BindMount {
    /// Checks both paths (the host one on this machine) and returns the mount with the host
    /// path made canonical, so a symlink on the host is resolved once, now.
    pub fn checked(host: &str, guest: &str) -> Result<BindMount, BindError> {
        let hp = Path::new(host);
        if !hp.is_absolute() {
            return Err(BindError::HostRelative(host.into()));
        }
        let meta = fs::metadata(hp).map_err(|_| BindError::HostMissing(host.into()))?;
        if !meta.is_dir() {
            return Err(BindError::HostNotDir(host.into()));
        }
        let canonical = fs::canonicalize(hp).map_err(|_| BindError::HostMissing(host.into()))?;
        if canonical == Path::new("/") {
            return Err(BindError::HostRoot(host.into()));
        }
        check_guest(guest)?;
        Ok(BindMount {
            host: canonical,
            guest: guest.trim_end_matches('/').to_string(),
        })
    }

    /// Parses `HOST:GUEST` and checks it as [`BindMount::checked`] does.
    pub fn parse(spec: &str) -> Result<BindMount, BindError> {
        let (host, guest) = spec
            .split_once(':')
            .filter(|(h, g)| !h.is_empty() && !g.is_empty())
            .ok_or_else(|| BindError::Syntax(spec.into()))?;
        Self::checked(host, guest)
    }

    /// `HOST:GUEST`.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.host.display(), self.guest)
    }
}

fn check_guest(guest: &str) -> Result<(), BindError> {
    let bad = || BindError::BadGuest(guest.into());
    let trimmed = guest.trim_end_matches('/');
    if !trimmed.starts_with('/') || trimmed.contains('\0') {
        return Err(bad());
    }
    let comps: Vec<&str> = trimmed[1..].split('/').collect();
    if comps
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(bad());
    }
    // `Path` agrees that it is plain: only normal components after the root.
    if !Path::new(trimmed)
        .components()
        .skip(1)
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad());
    }
    Ok(())
}

/// Refuses a guest path any prefix of which is a symlink in the image's layers (topmost
/// layer first): the mount would land wherever the link points, which is not what was asked.
pub(crate) fn check_guest_in_layers(guest: &str, layers: &[PathBuf]) -> Result<(), BindError> {
    let mut so_far = PathBuf::new();
    for c in guest.split('/').filter(|c| !c.is_empty()) {
        so_far.push(c);
        let found = layers
            .iter()
            .rev()
            .find_map(|l| fs::symlink_metadata(l.join(&so_far)).ok());
        match found {
            None => return Ok(()),
            Some(m) if m.file_type().is_symlink() => {
                return Err(BindError::GuestSymlink {
                    guest: guest.into(),
                    link: format!("/{}", so_far.display()),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_host_and_guest_paths() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().to_str().unwrap();
        let m = BindMount::parse(&format!("{host}:/project/")).unwrap();
        assert_eq!(m.guest, "/project");
        assert_eq!(m.host, fs::canonicalize(d.path()).unwrap());
        let file = d.path().join("f");
        fs::write(&file, "x").unwrap();
        let f = file.to_str().unwrap();
        let missing = format!("{host}/nope");
        for (spec, want) in [
            ("nocolon".to_string(), BindError::Syntax("nocolon".into())),
            (":/x".to_string(), BindError::Syntax(":/x".into())),
            (
                "rel/dir:/x".to_string(),
                BindError::HostRelative("rel/dir".into()),
            ),
            (
                format!("{missing}:/x"),
                BindError::HostMissing(missing.clone()),
            ),
            (format!("{f}:/x"), BindError::HostNotDir(f.into())),
            ("/:/x".to_string(), BindError::HostRoot("/".into())),
            (
                "/tmp/..:/x".to_string(),
                BindError::HostRoot("/tmp/..".into()),
            ),
        ] {
            assert_eq!(BindMount::parse(&spec), Err(want), "{spec}");
        }
        for guest in ["/", "x", "/a/../b", "/a//b", "/a/./b", ""] {
            assert!(
                matches!(BindMount::checked(host, guest), Err(BindError::BadGuest(_))),
                "{guest:?}"
            );
        }
    }

    #[test]
    fn a_symlink_on_the_guest_path_in_the_image_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (low, high) = (d.path().join("low"), d.path().join("high"));
        fs::create_dir_all(low.join("home/dev")).unwrap();
        fs::create_dir_all(&high).unwrap();
        std::os::unix::fs::symlink("/etc", high.join("home2")).unwrap();
        let layers = [low, high];
        assert_eq!(check_guest_in_layers("/home/dev/project", &layers), Ok(()));
        assert_eq!(check_guest_in_layers("/new/dir", &layers), Ok(()));
        assert_eq!(
            check_guest_in_layers("/home2/project", &layers),
            Err(BindError::GuestSymlink {
                guest: "/home2/project".into(),
                link: "/home2".into()
            })
        );
    }
}
