//! The content-addressed package pool: each .deb is stored once, found by the SHA-256 of its
//! bytes. The bytes live in pack files under `packs/` (see [`crate::pack`]); pools written
//! before packs existed keep their loose files at `ab/cdef…`, which are still read and
//! cleaned up.
//!
//! Adding is idempotent and all-or-nothing per batch: every .deb of a batch is read and
//! checked (container, control fields, unsafe `data.tar` entries, key conflicts against the
//! catalog and within the batch) before any of it becomes visible. Bytes are appended to a
//! pack while they are checked; the batch's index records are written only after the pack is
//! flushed, so a crash or an error leaves no record of incomplete content.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spindle_deb::reader::{read_deb, validate_data_entries, EntryKind, ReadError, UnsafeEntry};

use crate::catalog::KnownPackages;
use crate::pack::{self, Packs, Slice, Staged};
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

/// A pool directory. Clones share the same packs and index, so one `Pool` opened by the
/// daemon serves every thread.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
    sync: bool,
    packs: Arc<Packs>,
    /// Whether loose files from before packs may exist (checked once, at open), so the
    /// common case looks nothing up on disk.
    loose: bool,
}

impl Pool {
    /// Opens (creating if needed) a pool rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Pool, PoolError> {
        let root = root.into();
        let packs_dir = root.join("packs");
        let packs = Packs::open(&packs_dir).map_err(|source| PoolError::Write {
            path: packs_dir,
            source,
        })?;
        let mut pool = Pool {
            root,
            sync: true,
            packs: Arc::new(packs),
            loose: true,
        };
        pool.loose = !pool.loose_files()?.is_empty();
        Ok(pool)
    }

    /// Whether adds flush to disk before returning (default true). Turning it off trades
    /// crash safety for speed, e.g. for benchmarks against tools that never sync.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn address(sha256: &str) -> Result<[u8; 32], PoolError> {
        pack::parse_sha256(sha256).ok_or_else(|| PoolError::BadAddress {
            sha256: sha256.to_string(),
        })
    }

    /// Where a pool from before packs kept the file with this SHA-256.
    fn loose_path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(&sha256[2..])
    }

    pub fn contains(&self, sha256: &str) -> bool {
        Self::address(sha256).is_ok_and(|a| self.packs.contains(&a))
            || (self.loose && Self::address(sha256).is_ok() && self.loose_path(sha256).is_file())
    }

    /// Opens the bytes stored under `sha256` (`None` if the pool does not have them); what
    /// the daemon streams to apt clients.
    pub fn open_slice(&self, sha256: &str) -> Result<Option<Slice>, PoolError> {
        let address = Self::address(sha256)?;
        let read_err = |path: PathBuf| move |source| PoolError::ReadFile { path, source };
        if let Some(slice) = self
            .packs
            .open_slice(&address)
            .map_err(read_err(self.root.join("packs")))?
        {
            return Ok(Some(slice));
        }
        let loose = self.loose_path(sha256);
        match fs::File::open(&loose) {
            Ok(file) => {
                let len = file.metadata().map_err(read_err(loose.clone()))?.len();
                Ok(Some(Slice {
                    file,
                    offset: 0,
                    len,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PoolError::ReadFile {
                path: loose,
                source,
            }),
        }
    }

    /// The bytes stored under `sha256`, if the pool has them.
    pub fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>, PoolError> {
        let Some(slice) = self.open_slice(sha256)? else {
            return Ok(None);
        };
        slice
            .read_all()
            .map(Some)
            .map_err(|source| PoolError::ReadFile {
                path: self.root.join("packs"),
                source,
            })
    }

    /// Every address the pool holds.
    pub fn addresses(&self) -> Result<Vec<String>, PoolError> {
        let mut all: Vec<String> = self.packs.addresses().iter().map(hex::encode).collect();
        all.extend(
            self.loose_files()?
                .into_iter()
                .map(|(sha, _)| sha)
                .filter(|sha| !sha.starts_with('.')),
        );
        all.sort();
        all.dedup();
        Ok(all)
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
    /// holding their bytes: each worker reads a file, inspects it and appends it to a pack,
    /// so only the package records stay in memory.
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
    /// inspect it and append it to a pack, so loading, checking and writing overlap. Keys
    /// are checked once everything is staged; the whole batch then becomes durable and
    /// visible with two flushes (the pack, then the index records). Any error gives the
    /// pack space back and leaves the pool as it was.
    fn add_staged<'a>(
        &self,
        count: usize,
        known: &impl KnownPackages,
        load: impl Fn(usize) -> Result<Cow<'a, [u8]>, PoolError> + Sync,
    ) -> Result<Vec<Added>, PoolError> {
        type Staging = (PackageRef, Option<Staged>);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(count.max(1));
        // Content already staged by this batch is not written twice.
        let staging = std::sync::Mutex::new(HashSet::new());
        let stage = |index: usize| -> Result<Staging, PoolError> {
            let bytes = load(index)?;
            let package = inspect_at(index, &bytes)?;
            let address = Self::address(package.sha256())?;
            let first = staging
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(address);
            if !first || self.contains(package.sha256()) {
                return Ok((package, None));
            }
            let staged = self
                .packs
                .stage(address, &bytes)
                .map_err(|source| PoolError::Write {
                    path: self.root.join("packs"),
                    source,
                })?;
            Ok((package, Some(staged)))
        };
        let abandon = |staged: &[Staging]| {
            let written: Vec<Staged> = staged.iter().filter_map(|(_, s)| s.clone()).collect();
            self.packs.abandon(&written);
        };
        let mut staged: Vec<Staging> = Vec::with_capacity(count);
        // Rounds of at most 1,000 files bound the workers' short-lived garbage.
        let rounds: Vec<usize> = (0..count).step_by(1000).collect();
        for first in rounds {
            let part = first..(first + 1000).min(count);
            let per = part.len().div_ceil(threads).max(1);
            let stage = &stage;
            let results: Vec<(Vec<Staging>, Option<PoolError>)> = std::thread::scope(|s| {
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
                abandon(&staged);
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
                abandon(&staged);
                return Err(PoolError::Conflict {
                    key: Box::new(package.key().clone()),
                    existing,
                    new: package.sha256().to_string(),
                });
            }
            in_batch.insert(package.key(), package.sha256());
        }
        drop(in_batch);
        let mut pending = Vec::new();
        let mut added = Vec::with_capacity(staged.len());
        for (package, written) in staged {
            let written = match written {
                Some(w) => {
                    pending.push(w);
                    true
                }
                None => false,
            };
            added.push(Added { package, written });
        }
        if let Err(source) = self.packs.commit(&pending, self.sync) {
            self.packs.abandon(&pending);
            return Err(PoolError::Write {
                path: self.root.join("packs"),
                source,
            });
        }
        Ok(added)
    }

    /// Removes the packages whose address is not in `referenced`, returning the removed
    /// addresses: packs holding anything else (or bytes a failed add left) are rewritten,
    /// loose files from before packs are deleted, and so are temporary files an interrupted
    /// add of that era left. Adds must not run concurrently (the daemon excludes them).
    pub fn cleanup(&self, referenced: &HashSet<String>) -> Result<Vec<String>, PoolError> {
        let keep: HashSet<[u8; 32]> = referenced
            .iter()
            .filter_map(|s| pack::parse_sha256(s))
            .collect();
        let packs_dir = self.root.join("packs");
        let mut removed: Vec<String> = self
            .packs
            .compact(&keep, self.sync)
            .map_err(|source| PoolError::Write {
                path: packs_dir,
                source,
            })?
            .iter()
            .map(hex::encode)
            .collect();
        for (sha, path) in self.loose_files()? {
            if sha.starts_with('.') || !referenced.contains(&sha) {
                fs::remove_file(&path).map_err(|source| PoolError::Write { path, source })?;
                removed.push(sha);
            }
        }
        removed.retain(|s| !s.starts_with('.'));
        removed.sort();
        removed.dedup();
        Ok(removed)
    }

    /// The loose files of a pool from before packs: (address, path). A temporary file left
    /// by an interrupted add of that era is listed under its name, which starts with `.`.
    fn loose_files(&self) -> Result<Vec<(String, PathBuf)>, PoolError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PoolError::ReadFile { path, source }
        };
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let dir = dir.map_err(io_err(&self.root))?;
            let prefix = dir.file_name().to_string_lossy().into_owned();
            let fanout =
                prefix.len() == 2 && pack::parse_sha256(&format!("{prefix:0<64}")).is_some();
            if !fanout || !dir.path().is_dir() {
                continue;
            }
            for file in fs::read_dir(dir.path()).map_err(io_err(&dir.path()))? {
                let file = file.map_err(io_err(&dir.path()))?;
                let name = file.file_name().to_string_lossy().into_owned();
                let sha = if name.starts_with('.') {
                    name
                } else {
                    format!("{prefix}{name}")
                };
                out.push((sha, file.path()));
            }
        }
        Ok(out)
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
