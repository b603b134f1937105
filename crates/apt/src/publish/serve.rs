//! What a published tree serves at a path. Index files (`dists/…`) are files on disk;
//! package files (`…/pool/…`) are not: each publication's state file names the content of
//! its pool paths (current and still in their grace period), and the bytes come from the
//! [`Pool`]. This is what makes a first publish of many packages cheap — nothing is copied
//! or linked — and what an HTTP server calls for every request.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::write::load_state;
use super::PublishError;
use crate::pack::{self, Slice};
use crate::pool::Pool;

/// Which state files a cached prefix was built from: (name, inode, mtime ns, size).
type Stamp = Vec<(String, u64, i128, u64)>;

/// Pool path → content address, for one prefix.
type PoolPaths = HashMap<String, [u8; 32]>;

/// Resolves request paths under publish roots to open file regions. Keep one per process:
/// it caches, per prefix, the pool paths of its publications, and checks on every lookup
/// (one directory read and a `stat` per publication) that they have not been republished.
#[derive(Debug)]
pub struct PublishedFiles {
    pool: Pool,
    prefixes: Mutex<HashMap<PathBuf, (Stamp, Arc<PoolPaths>)>>,
}

impl PublishedFiles {
    pub fn new(pool: Pool) -> PublishedFiles {
        PublishedFiles {
            pool,
            prefixes: Mutex::new(HashMap::new()),
        }
    }

    /// Opens what the tree at `root` serves at `rel` (a `/`-separated path relative to
    /// `root`). `None` for anything not published, including paths with empty, `.`-leading
    /// or `..` parts.
    pub fn open(&self, root: &Path, rel: &str) -> Result<Option<Slice>, PublishError> {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
            return Ok(None);
        }
        let path = root.join(rel);
        match fs::File::open(&path) {
            Ok(file) => {
                let meta = file.metadata().map_err(io_err(&path))?;
                if meta.is_file() {
                    return Ok(Some(Slice {
                        file,
                        offset: 0,
                        len: meta.len(),
                    }));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let Some(split) = parts.iter().position(|p| *p == "pool") else {
            return Ok(None);
        };
        let meta_dir = root.join(parts[..split].join("/")).join(".spindle");
        let paths = self.pool_paths(&meta_dir)?;
        let Some(address) = paths.get(&parts[split..].join("/")) else {
            return Ok(None);
        };
        self.pool
            .open_slice(&hex::encode(address))
            .map_err(|e| PublishError::Io {
                path: path.clone(),
                source: io::Error::other(e.to_string()),
            })
    }

    /// The pool paths of the publications whose state files are in `meta_dir`, rebuilt
    /// when one of them changed.
    fn pool_paths(&self, meta_dir: &Path) -> Result<Arc<PoolPaths>, PublishError> {
        let stamp = stamp(meta_dir)?;
        {
            let cache = self.prefixes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((s, paths)) = cache.get(meta_dir) {
                if *s == stamp {
                    return Ok(paths.clone());
                }
            }
        }
        let mut paths = PoolPaths::new();
        let mut current = Vec::new();
        for (name, ..) in &stamp {
            let state = load_state(&meta_dir.join(name))?;
            // Paths in their grace period first, so a current publication's content wins.
            for (p, sha) in &state.retired_pool {
                if let Some(a) = pack::parse_sha256(sha) {
                    paths.insert(p.clone(), a);
                }
            }
            current.push(state.pool);
        }
        for pool in current {
            for (p, sha) in pool {
                if let Some(a) = pack::parse_sha256(&sha) {
                    paths.insert(p, a);
                }
            }
        }
        let paths = Arc::new(paths);
        let mut cache = self.prefixes.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(meta_dir.to_path_buf(), (stamp, paths.clone()));
        Ok(paths)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The publication state files of a prefix (`<dist>.json`), with what identifies their
/// current version; empty when the prefix has none.
fn stamp(meta_dir: &Path) -> Result<Stamp, PublishError> {
    let entries = match fs::read_dir(meta_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(meta_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(meta_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Replaced between the listing and the stat: the next lookup sees the new one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&entry.path())(e)),
        };
        let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        out.push((name, meta.ino(), mtime, meta.len()));
    }
    out.sort();
    Ok(out)
}

/// Every pool address a publication under `root` (at any depth of prefix) serves, now or
/// within its grace period: what a pool cleanup must keep even when no package record
/// names it any more.
pub fn referenced_pool_files(root: &Path) -> Result<HashSet<String>, PublishError> {
    let mut out = HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map_err(io_err(&entry.path()))?.is_dir();
            if !is_dir || name == "dists" || name == "pool" {
                continue;
            }
            if name != ".spindle" {
                dirs.push(entry.path());
                continue;
            }
            for (state_name, ..) in stamp(&entry.path())? {
                let state = load_state(&entry.path().join(state_name))?;
                out.extend(state.pool.into_values());
                out.extend(state.retired_pool.into_values());
            }
        }
    }
    Ok(out)
}
