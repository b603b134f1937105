//! The content-addressed package pool: each .deb is stored once, at `ab/cdef…` under the
//! pool root, named by the SHA-256 of its bytes.
//!
//! Adding is idempotent and all-or-nothing per batch: every .deb of a batch is read and
//! checked (container, control fields, unsafe `data.tar` entries, key conflicts against the
//! catalog and within the batch) before any file is written. Files are written to temporary
//! names, flushed with one `syncfs`, then renamed into place, so a crash leaves either no file
//! or a complete one, never a truncated file under a content address.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use spindle_deb::reader::{read_deb, validate_data_entries, EntryKind, ReadError, UnsafeEntry};

use crate::catalog::KnownPackages;
use crate::fsutil;
use crate::package::{PackageError, PackageKey, PackageRef};

/// Why a package could not be added to (or found in) the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("package #{index} of the batch is not a valid .deb")]
    Read {
        index: usize,
        #[source]
        source: ReadError,
    },
    #[error("package `{key}` has unsafe data.tar entries: {}", describe_unsafe(.entries))]
    UnsafeEntries {
        key: String,
        entries: Vec<UnsafeEntry>,
    },
    #[error("package #{index} of the batch has an invalid identity")]
    Identity {
        index: usize,
        #[source]
        source: PackageError,
    },
    #[error(
        "package `{key}` already exists with different content (pool sha256 {existing}, new {new})"
    )]
    Conflict {
        key: Box<PackageKey>,
        existing: String,
        new: String,
    },
    #[error("cannot read `{path}`")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write pool file `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{sha256}` is not a SHA-256 pool address")]
    BadAddress { sha256: String },
}

fn describe_unsafe(entries: &[UnsafeEntry]) -> String {
    entries
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result of adding one package.
#[derive(Debug, Clone)]
pub struct Added {
    pub package: PackageRef,
    /// False when the identical file was already in the pool.
    pub written: bool,
}

/// A pool directory.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
    sync: bool,
}

impl Pool {
    /// Opens (creating if needed) a pool rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Pool, PoolError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| PoolError::Write {
            path: root.clone(),
            source,
        })?;
        Ok(Pool { root, sync: true })
    }

    /// Whether adds flush to disk before returning (default true). Turning it off trades
    /// crash safety for speed, e.g. for benchmarks against tools that never sync.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this SHA-256 lives (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf, PoolError> {
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(PoolError::BadAddress {
                sha256: sha256.to_string(),
            });
        }
        Ok(self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads and checks a .deb without touching the disk.
    pub fn inspect(bytes: &[u8]) -> Result<PackageRef, PoolError> {
        inspect_at(0, bytes)
    }

    /// Adds one .deb; see [`Pool::add_batch`].
    pub fn add(&self, bytes: &[u8], known: &impl KnownPackages) -> Result<Added, PoolError> {
        let mut added = self.add_batch(&[bytes], known)?;
        Ok(added.remove(0))
    }

    /// Reads a .deb file from disk and adds it.
    pub fn add_file(&self, path: &Path, known: &impl KnownPackages) -> Result<Added, PoolError> {
        let bytes = fs::read(path).map_err(|source| PoolError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        self.add(&bytes, known)
    }

    /// Adds a batch of .debs: all are checked before any is written, so an error leaves the
    /// pool as it was. A key already bound to other content in `known` (or twice in the
    /// batch with different content) is a [`PoolError::Conflict`].
    pub fn add_batch<B: AsRef<[u8]> + Sync>(
        &self,
        debs: &[B],
        known: &impl KnownPackages,
    ) -> Result<Vec<Added>, PoolError> {
        let mut packages = Vec::with_capacity(debs.len());
        let mut in_batch: BTreeMap<PackageKey, String> = BTreeMap::new();
        for package in inspect_all(debs)? {
            let existing = known
                .sha256_of(package.key())
                .or_else(|| in_batch.get(package.key()).cloned());
            if let Some(existing) = existing {
                if existing != package.sha256() {
                    return Err(PoolError::Conflict {
                        key: Box::new(package.key().clone()),
                        existing,
                        new: package.sha256().to_string(),
                    });
                }
            }
            in_batch.insert(package.key().clone(), package.sha256().to_string());
            packages.push(package);
        }

        // Write every new file under a temporary name, make them durable with one syncfs,
        // then rename them into place.
        let mut pending: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut seen = HashSet::new();
        let mut written = Vec::with_capacity(packages.len());
        let cleanup = |pending: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in pending {
                let _ = fs::remove_file(tmp);
            }
        };
        for (package, deb) in packages.iter().zip(debs) {
            let path = self.path_of(package.sha256())?;
            let new = !path.is_file() && seen.insert(package.sha256().to_string());
            written.push(new);
            if !new {
                continue;
            }
            let dir = path.parent().unwrap_or(&self.root);
            let res = fs::create_dir_all(dir)
                .and_then(|()| fsutil::write_temp(&path, deb.as_ref(), false));
            match res {
                Ok(tmp) => pending.push((tmp, path)),
                Err(source) => {
                    cleanup(&pending);
                    return Err(PoolError::Write { path, source });
                }
            }
        }
        self.commit(&pending)?;
        Ok(packages
            .into_iter()
            .zip(written)
            .map(|(package, written)| Added { package, written })
            .collect())
    }

    /// Adds the .deb files at `paths` with the guarantees of [`Pool::add_batch`], without
    /// holding their bytes: worker threads (one per core, at most 4) each read a file,
    /// inspect it and write it to a temporary pool name, so reading, checking and writing
    /// overlap and only the package records stay in memory. The whole set is made durable
    /// with two `syncfs` calls (data, then renames) instead of two per batch; any error
    /// removes the temporary files and leaves the pool as it was.
    pub fn add_files(
        &self,
        paths: &[PathBuf],
        known: &impl KnownPackages,
    ) -> Result<Vec<Added>, PoolError> {
        type Staged = (PackageRef, Option<PathBuf>);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(paths.len().max(1));
        let stage = |index: usize, path: &Path| -> Result<Staged, PoolError> {
            let bytes = fs::read(path).map_err(|source| PoolError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
            let package = inspect_at(index, &bytes)?;
            let dest = self.path_of(package.sha256())?;
            if dest.is_file() {
                return Ok((package, None));
            }
            let dir = dest.parent().unwrap_or(&self.root);
            let tmp = fs::create_dir_all(dir)
                .and_then(|()| fsutil::write_temp(&dest, &bytes, false))
                .map_err(|source| PoolError::Write { path: dest, source })?;
            Ok((package, Some(tmp)))
        };
        let remove_temps = |staged: &[Staged]| {
            for tmp in staged.iter().filter_map(|(_, t)| t.as_ref()) {
                let _ = fs::remove_file(tmp);
            }
        };
        let mut staged: Vec<Staged> = Vec::with_capacity(paths.len());
        // Rounds of at most 1,000 files bound the workers' short-lived garbage.
        for (round, part) in paths.chunks(1000).enumerate() {
            let per = part.len().div_ceil(threads).max(1);
            let results: Vec<(Vec<Staged>, Option<PoolError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = part
                    .chunks(per)
                    .enumerate()
                    .map(|(n, chunk)| {
                        s.spawn(move || {
                            let mut staged = Vec::with_capacity(chunk.len());
                            for (i, path) in chunk.iter().enumerate() {
                                match stage(round * 1000 + n * per + i, path) {
                                    Ok(one) => staged.push(one),
                                    Err(e) => return (staged, Some(e)),
                                }
                            }
                            (staged, None)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            let mut failure = None;
            for (part, err) in results {
                // `clone` allocates each record afresh in this thread's arena (see
                // `inspect_all`).
                staged.extend(part.iter().map(|(p, t)| (p.clone(), t.clone())));
                failure = failure.or(err);
            }
            if let Some(e) = failure {
                remove_temps(&staged);
                return Err(e);
            }
        }
        // Check every key first, then move the records out (one copy of them at a time).
        let mut in_batch: BTreeMap<&PackageKey, &str> = BTreeMap::new();
        for (package, _) in &staged {
            let existing = known
                .sha256_of(package.key())
                .or_else(|| in_batch.get(package.key()).map(|s| s.to_string()));
            if let Some(existing) = existing.filter(|e| e != package.sha256()) {
                remove_temps(&staged);
                return Err(PoolError::Conflict {
                    key: Box::new(package.key().clone()),
                    existing,
                    new: package.sha256().to_string(),
                });
            }
            in_batch.insert(package.key(), package.sha256());
        }
        drop(in_batch);
        let mut seen = HashSet::new();
        let mut pending = Vec::new();
        let mut added = Vec::with_capacity(staged.len());
        for (package, tmp) in staged {
            let written = match tmp {
                // The same content twice in the set: keep the first temporary file.
                Some(tmp) if !seen.insert(package.sha256().to_string()) => {
                    let _ = fs::remove_file(tmp);
                    false
                }
                Some(tmp) => {
                    pending.push((tmp, self.path_of(package.sha256())?));
                    true
                }
                None => false,
            };
            added.push(Added { package, written });
        }
        self.commit(&pending)?;
        Ok(added)
    }

    /// Makes the temporary files of `pending` durable, renames them to their pool names and
    /// makes the renames durable; on error the remaining temporary files are removed.
    fn commit(&self, pending: &[(PathBuf, PathBuf)]) -> Result<(), PoolError> {
        let cleanup = |pending: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in pending {
                let _ = fs::remove_file(tmp);
            }
        };
        if pending.is_empty() {
            return Ok(());
        }
        if self.sync {
            if let Err(source) = syncfs(&self.root) {
                cleanup(pending);
                return Err(PoolError::Write {
                    path: self.root.clone(),
                    source,
                });
            }
        }
        let mut dirs = HashSet::new();
        for (i, (tmp, path)) in pending.iter().enumerate() {
            if let Err(source) = fs::rename(tmp, path) {
                cleanup(&pending[i..]);
                return Err(PoolError::Write {
                    path: path.clone(),
                    source,
                });
            }
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        // Make the renames durable: a few directory fsyncs, or one syncfs for a big batch.
        if self.sync && dirs.len() > 16 {
            syncfs(&self.root).map_err(|source| PoolError::Write {
                path: self.root.clone(),
                source,
            })?;
        } else if self.sync {
            for dir in dirs {
                fsutil::sync_dir(&dir).map_err(|source| PoolError::Write { path: dir, source })?;
            }
        }
        Ok(())
    }

    /// Removes pool files whose address is not in `referenced`, returning the removed
    /// addresses. Temporary files left by an interrupted add are removed too.
    pub fn cleanup(&self, referenced: &HashSet<String>) -> Result<Vec<String>, PoolError> {
        let mut removed = Vec::new();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PoolError::Write { path, source }
        };
        for dir in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let dir = dir.map_err(io_err(&self.root))?.path();
            if !dir.is_dir() {
                continue;
            }
            let prefix = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for file in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let file = file.map_err(io_err(&dir))?;
                let name = file.file_name().to_string_lossy().into_owned();
                let sha = format!("{prefix}{name}");
                if name.starts_with('.') || !referenced.contains(&sha) {
                    fs::remove_file(file.path()).map_err(io_err(&file.path()))?;
                    if !name.starts_with('.') {
                        removed.push(sha);
                    }
                }
            }
        }
        removed.sort();
        Ok(removed)
    }
}

/// Inspects a batch on worker threads (one per core, at most 4).
///
/// Besides using every core, this keeps memory compact: reading a .deb makes many
/// short-lived allocations (decompressor state, tar buffers) and interleaving the few
/// long-lived ones with them fragments the heap — about 20 KiB lost per package with glibc.
/// The workers' allocations live in their own arenas; the records are deep-copied here and
/// the originals freed with the arena's other garbage.
fn inspect_all<B: AsRef<[u8]> + Sync>(debs: &[B]) -> Result<Vec<PackageRef>, PoolError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(debs.len().max(1));
    let per = debs.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<PackageRef>, PoolError>> = std::thread::scope(|s| {
        let handles: Vec<_> = debs
            .chunks(per)
            .enumerate()
            .map(|(n, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, deb)| inspect_at(n * per + i, deb.as_ref()))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = Vec::with_capacity(debs.len());
    for r in results {
        // `clone` allocates each string afresh, in this thread's arena.
        out.extend(r?.iter().cloned());
    }
    Ok(out)
}

fn inspect_at(index: usize, bytes: &[u8]) -> Result<PackageRef, PoolError> {
    let info = read_deb(bytes).map_err(|source| PoolError::Read { index, source })?;
    if let Err(entries) = validate_data_entries(&info.data_entries) {
        return Err(PoolError::UnsafeEntries {
            key: format!(
                "{}_{}_{}",
                info.package(),
                info.version(),
                info.architecture()
            ),
            entries,
        });
    }
    let files = info
        .data_entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::File | EntryKind::Symlink { .. } | EntryKind::Hardlink { .. }
            )
        })
        .map(|e| e.relative_path().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    PackageRef::new(info.control, info.digests, files)
        .map_err(|source| PoolError::Identity { index, source })
}

fn syncfs(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = fs::File::open(path)?;
    // SAFETY: `dir` is an open file descriptor for the duration of the call; syncfs only
    // reads the descriptor.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
