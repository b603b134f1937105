//! The content-addressed package pool: each .deb is stored once, at `ab/cdef…` under the
//! pool root, named by the SHA-256 of its bytes.
//!
//! Adding is idempotent and all-or-nothing per batch: every .deb of a batch is read and
//! checked (container, control fields, unsafe `data.tar` entries, key conflicts against the
//! catalog and within the batch) before any file is written. Files are written to temporary
//! names, flushed with one `syncfs`, then renamed into place, so a crash leaves either no file
//! or a complete one, never a truncated file under a content address.

use std::borrow::Cow;
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
    /// batch with different content) is a [`PoolError::Conflict`]. Checking and writing run
    /// on worker threads, as in [`Pool::add_files`].
    pub fn add_batch<B: AsRef<[u8]> + Sync>(
        &self,
        debs: &[B],
        known: &impl KnownPackages,
    ) -> Result<Vec<Added>, PoolError> {
        self.add_staged(debs.len(), known, |i| Ok(Cow::Borrowed(debs[i].as_ref())))
    }

    /// Adds the .deb files at `paths` with the guarantees of [`Pool::add_batch`], without
    /// holding their bytes: each worker reads a file, inspects it and writes it to a
    /// temporary pool name, so only the package records stay in memory.
    pub fn add_files(
        &self,
        paths: &[PathBuf],
        known: &impl KnownPackages,
    ) -> Result<Vec<Added>, PoolError> {
        self.add_staged(paths.len(), known, |i| {
            fs::read(&paths[i])
                .map(Cow::Owned)
                .map_err(|source| PoolError::ReadFile {
                    path: paths[i].clone(),
                    source,
                })
        })
    }

    /// The one add pipeline: worker threads (one per core, at most 4) each load a .deb,
    /// inspect it and write it to a temporary pool name, so loading, checking and writing
    /// overlap. Keys are checked once everything is staged; the whole set is made durable
    /// with two `syncfs` calls (data, then renames) instead of two per file. Any error
    /// removes the temporary files and leaves the pool as it was.
    fn add_staged<'a>(
        &self,
        count: usize,
        known: &impl KnownPackages,
        load: impl Fn(usize) -> Result<Cow<'a, [u8]>, PoolError> + Sync,
    ) -> Result<Vec<Added>, PoolError> {
        type Staged = (PackageRef, Option<PathBuf>);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(count.max(1));
        let stage = |index: usize| -> Result<Staged, PoolError> {
            let bytes = load(index)?;
            let package = inspect_at(index, &bytes)?;
            let dest = self.path_of(package.sha256())?;
            if dest.is_file() {
                return Ok((package, None));
            }
            let tmp = write_temp_in_fanout(&self.root, &dest, &bytes)
                .map_err(|source| PoolError::Write { path: dest, source })?;
            Ok((package, Some(tmp)))
        };
        let remove_temps = |staged: &[Staged]| {
            for tmp in staged.iter().filter_map(|(_, t)| t.as_ref()) {
                let _ = fs::remove_file(tmp);
            }
        };
        let mut staged: Vec<Staged> = Vec::with_capacity(count);
        // Rounds of at most 1,000 files bound the workers' short-lived garbage.
        let rounds: Vec<usize> = (0..count).step_by(1000).collect();
        for first in rounds {
            let part = first..(first + 1000).min(count);
            let per = part.len().div_ceil(threads).max(1);
            let stage = &stage;
            let results: Vec<(Vec<Staged>, Option<PoolError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = part
                    .clone()
                    .step_by(per)
                    .map(|from| {
                        let chunk = from..(from + per).min(part.end);
                        s.spawn(move || {
                            let mut staged = Vec::with_capacity(chunk.len());
                            for i in chunk {
                                match stage(i) {
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
                // `clone` allocates each record afresh in this thread's arena: reading a .deb
                // makes many short-lived allocations, and interleaving the few long-lived
                // ones with them would fragment the heap (about 20 KiB lost per package
                // with glibc). The workers' originals are freed with their other garbage.
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

/// Writes `bytes` to a temporary sibling of `dest`, creating its fan-out directory only when
/// it is missing (the common case costs no extra system call).
fn write_temp_in_fanout(root: &Path, dest: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    match fsutil::write_temp(dest, bytes, false) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest.parent().unwrap_or(root))?;
            fsutil::write_temp(dest, bytes, false)
        }
        other => other,
    }
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
