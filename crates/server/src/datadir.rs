//! The data dir: its lock (one daemon per data dir) and `server.json`, which tells clients and
//! tests where the daemon listens.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data dir `{}`", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another spindle server{} is using the data dir `{}`; stop it, or pass a different --data-dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display())]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a running daemon publishes about itself in `DATA_DIR/server.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    pub pid: u32,
    pub endpoint: String,
    pub version: String,
    /// The profile in the credentials file that holds this installation's admin credential
    /// (not always the one asked for: another installation's profile is never overwritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_profile: Option<String>,
    /// The AWS-compatible endpoint (`http://ADDR`), when it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint: Option<String>,
    /// The address the DNS server answers on (UDP and TCP), when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
}

/// A locked data dir; the lock is held until this is dropped (or the process dies).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory (mode 0700) if needed and takes its lock without waiting.
    pub fn lock(path: &Path) -> Result<Self, DataDirError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| DataDirError::Create {
                path: path.to_owned(),
                source,
            })?;
        let lock_path = path.join("spindle.lock");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| DataDirError::Create {
                path: lock_path.clone(),
                source,
            })?;
        // SAFETY: flock on a file descriptor we own for the duration of the call; it has no
        // memory-safety preconditions.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let pid = std::fs::read_to_string(&lock_path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(DataDirError::Locked {
                path: path.to_owned(),
                pid,
            });
        }
        let werr = |source| DataDirError::Write {
            path: lock_path.clone(),
            source,
        };
        f.set_len(0).map_err(werr)?;
        write!(f, "{}", std::process::id()).map_err(werr)?;
        Ok(Self {
            path: path.to_owned(),
            _lock: f,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("state.db")
    }

    /// Atomically replaces `server.json`.
    pub fn write_info(&self, info: &ServerInfo) -> Result<(), DataDirError> {
        let dest = self.path.join("server.json");
        let tmp = self.path.join(".server.json.tmp");
        let werr = |source| DataDirError::Write {
            path: dest.clone(),
            source,
        };
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(info).expect("ServerInfo serialises"),
        )
        .map_err(werr)?;
        std::fs::rename(&tmp, &dest).map_err(werr)
    }

    /// Reads `server.json` of a data dir, if a daemon wrote one.
    pub fn read_info(path: &Path) -> Option<ServerInfo> {
        serde_json::from_slice(&std::fs::read(path.join("server.json")).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let first = DataDir::lock(d.path()).unwrap();
        let err = DataDir::lock(d.path()).unwrap_err();
        assert!(
            matches!(err, DataDirError::Locked { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        assert!(err.to_string().contains("another spindle server"), "{err}");
        drop(first);
        DataDir::lock(d.path()).unwrap();
    }
}
