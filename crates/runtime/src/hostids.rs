//! The host-wide table of user-namespace id ranges: two engines on one host (two data dirs,
//! the test daemons beside the real one) must never hand out the same host ids.
//!
//! Like `/etc/subuid`, the table is one small file every engine on the host shares,
//! `HOST_DIR/userns-ranges.json` ([`RuntimeConfig::host_dir`](crate::RuntimeConfig), default
//! [`DEFAULT_HOST_DIR`], overridden by the `SPINDLE_HOST_DIR` environment variable). Each entry
//! says which range belongs to which instance of which data dir. An engine changes it only
//! while it holds an exclusive `flock` on `userns-ranges.lock` beside it, and writes it to a
//! temporary file renamed over the old one, so a killed engine leaves the old table or the
//! new one, never half of either.
//!
//! A range is handed out again only once its entry is gone: its instance was terminated (the
//! engine frees it), its launch failed, or reconciliation found it dead. An engine reconciles
//! its own entries when it opens ([`HostTable::reconcile`]: entries of instances it no longer
//! has go, ranges of its live instances that predate the table are entered), and every
//! allocation drops the entries of data dirs that no longer exist (a deleted test
//! directory), since no engine will ever open them again to reconcile.
//!
//! [`HostTable`] is the pure part (tested without files); [`HostIds`] is the locked file.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::userns::{IdRange, IDS_PER_INSTANCE, ID_BASE, SLOTS};

/// Where the table lives unless configured otherwise.
pub const DEFAULT_HOST_DIR: &str = "/var/lib/spindle-host";
/// The environment variable that overrides [`DEFAULT_HOST_DIR`] (tests, a second host root).
pub const HOST_DIR_ENV: &str = "SPINDLE_HOST_DIR";
const TABLE: &str = "userns-ranges.json";
const LOCK: &str = "userns-ranges.lock";

/// The host directory the environment asks for, else [`DEFAULT_HOST_DIR`].
pub fn default_host_dir() -> PathBuf {
    std::env::var_os(HOST_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HOST_DIR))
}

/// One range and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub base: u32,
    pub count: u32,
    /// The engine's data dir (canonical), which scopes the instance id.
    pub data_dir: PathBuf,
    pub instance: String,
}

impl Entry {
    pub fn range(&self) -> IdRange {
        IdRange {
            base: self.base,
            count: self.count,
        }
    }

    fn overlaps(&self, r: &IdRange) -> bool {
        let (a0, a1) = (self.base as u64, self.base as u64 + self.count as u64);
        let (b0, b1) = (r.base as u64, r.base as u64 + r.count as u64);
        a0 < b1 && b0 < a1
    }
}

/// The whole table (the file's content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTable {
    pub entries: Vec<Entry>,
}

/// What [`HostTable::reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Entries of this data dir whose instance is gone, now free.
    pub freed: Vec<IdRange>,
    /// Live instances whose range was not in the table (from before it), now entered.
    pub entered: Vec<String>,
    /// Live instances whose range another entry already holds: left as they are (their
    /// ids are shared until one of them is terminated).
    pub conflicts: Vec<String>,
}

impl HostTable {
    fn owned_by(&self, data_dir: &Path, instance: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.data_dir == data_dir && e.instance == instance)
    }

    /// The range of `instance` of `data_dir`: the one it already holds, else the lowest free
    /// one. `None` when every one of [`SLOTS`] ranges is held.
    pub fn allocate(&mut self, data_dir: &Path, instance: &str) -> Option<IdRange> {
        if let Some(e) = self.owned_by(data_dir, instance) {
            return Some(e.range());
        }
        // Every slot an entry touches is taken (entries entered by `reconcile` come from
        // records and need not be aligned).
        let mut taken = vec![false; SLOTS as usize];
        for e in &self.entries {
            let first = (e.base.max(ID_BASE) - ID_BASE) / IDS_PER_INSTANCE;
            let end = e.base as u64 + e.count as u64;
            let last = end.saturating_sub(ID_BASE as u64 + 1) / IDS_PER_INSTANCE as u64;
            if end <= ID_BASE as u64 {
                continue;
            }
            for slot in first as u64..=last.min(SLOTS as u64 - 1) {
                taken[slot as usize] = true;
            }
        }
        let range = IdRange::slot(taken.iter().position(|t| !t)? as u32);
        self.entries.push(Entry {
            base: range.base,
            count: range.count,
            data_dir: data_dir.to_path_buf(),
            instance: instance.to_string(),
        });
        Some(range)
    }

    /// Frees the range of `instance` of `data_dir`; whether it held one.
    pub fn free(&mut self, data_dir: &Path, instance: &str) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|e| !(e.data_dir == data_dir && e.instance == instance));
        self.entries.len() != before
    }

    /// Brings `data_dir`'s entries in line with its live instances (id and range): frees the
    /// others and enters live ranges the table lacks where nobody else holds them.
    pub fn reconcile(&mut self, data_dir: &Path, live: &[(String, IdRange)]) -> Reconciled {
        let mut out = Reconciled::default();
        let ids: BTreeSet<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
        self.entries.retain(|e| {
            let keep = e.data_dir != data_dir || ids.contains(e.instance.as_str());
            if !keep {
                out.freed.push(e.range());
            }
            keep
        });
        for (id, range) in live {
            if let Some(e) = self.owned_by(data_dir, id) {
                if e.range() == *range {
                    continue;
                }
                // The table says another range than the instance runs with: the instance
                // is the truth.
                self.free(data_dir, id);
            }
            if self.entries.iter().any(|e| e.overlaps(range)) {
                out.conflicts.push(id.clone());
                continue;
            }
            self.entries.push(Entry {
                base: range.base,
                count: range.count,
                data_dir: data_dir.to_path_buf(),
                instance: id.clone(),
            });
            out.entered.push(id.clone());
        }
        out
    }

    /// Drops the entries of data dirs `exists` says are gone; how many.
    pub fn forget_missing(&mut self, exists: impl Fn(&Path) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| exists(&e.data_dir));
        before - self.entries.len()
    }
}

/// Errors of the host table.
#[derive(Debug, thiserror::Error)]
pub enum HostIdsError {
    #[error("{op} `{path}` failed")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("`{path}` is not a user-namespace range table: line {line}, column {column}: {message} (expected {{\"entries\": [{{\"base\", \"count\", \"data_dir\", \"instance\"}}, …]}})")]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HostIdsError + 'a {
    move |err| HostIdsError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// The table file of one host directory.
#[derive(Debug, Clone)]
pub struct HostIds {
    dir: PathBuf,
}

impl HostIds {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        HostIds { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(TABLE)
    }

    /// Runs `f` on the table under the host-wide lock and writes the table back if `f`
    /// changed it (temporary file, fsync, rename). A failed write leaves the old table.
    pub fn update<T>(&self, f: impl FnOnce(&mut HostTable) -> T) -> Result<T, HostIdsError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err("create", &self.dir))?;
        let lock_path = self.dir.join(LOCK);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("lock", &lock_path)(io::Error::last_os_error()));
        }
        let path = self.path();
        let before = match fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice::<HostTable>(&b).map_err(|e| HostIdsError::Corrupt {
                    path: path.clone(),
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => HostTable::default(),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut table = before.clone();
        let out = f(&mut table);
        if table != before {
            let tmp = self.dir.join(format!("{TABLE}.tmp"));
            let write = || -> io::Result<()> {
                let mut file = fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o600)
                    .open(&tmp)?;
                file.write_all(&serde_json::to_vec_pretty(&table).expect("table serializes"))?;
                file.sync_all()
            };
            write().map_err(io_err("write", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        }
        drop(lock);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(slot: u32) -> IdRange {
        IdRange::slot(slot)
    }

    /// Steps on one table: `a`/`b` are two data dirs; each step says what it expects.
    #[test]
    fn two_data_dirs_never_share_a_range_and_freed_ranges_are_reused() {
        let (a, b) = (Path::new("/data/a"), Path::new("/data/b"));
        let mut t = HostTable::default();
        let steps: &[(&str, &Path, &str, Option<u32>)] = &[
            ("alloc", a, "i-1", Some(0)),
            ("alloc", b, "i-1", Some(1)), // the same id in another data dir is another owner
            ("alloc", a, "i-2", Some(2)),
            ("alloc", a, "i-1", Some(0)), // asking again gives the same range
            ("free", a, "i-1", None),
            ("alloc", b, "i-9", Some(0)), // freed, so reused, by the other data dir
            ("alloc", a, "i-3", Some(3)),
        ];
        for (op, dir, id, want) in steps {
            match *op {
                "alloc" => assert_eq!(t.allocate(dir, id), want.map(r), "{op} {dir:?} {id}"),
                _ => assert!(t.free(dir, id), "{op} {dir:?} {id}"),
            }
        }
        assert!(!t.free(a, "i-1"), "freeing twice frees nothing");
        let bases: BTreeSet<u32> = t.entries.iter().map(|e| e.base).collect();
        assert_eq!(bases.len(), t.entries.len(), "no range held twice: {t:?}");
    }

    #[test]
    fn a_full_table_allocates_nothing() {
        let mut t = HostTable::default();
        for n in 0..SLOTS {
            assert_eq!(t.allocate(Path::new("/d"), &format!("i-{n}")), Some(r(n)));
        }
        assert_eq!(t.allocate(Path::new("/e"), "i-x"), None);
        t.free(Path::new("/d"), "i-7");
        assert_eq!(t.allocate(Path::new("/e"), "i-x"), Some(r(7)));
    }

    #[test]
    fn reconcile_frees_the_dead_enters_the_unrecorded_and_reports_conflicts() {
        let (a, b) = (Path::new("/data/a"), Path::new("/data/b"));
        let mut t = HostTable::default();
        t.allocate(a, "i-live");
        t.allocate(a, "i-dead");
        t.allocate(b, "i-other");
        let live = vec![
            ("i-live".to_string(), r(0)),
            ("i-old".to_string(), r(5)), // from before the table: entered
            ("i-clash".to_string(), r(2)), // b's i-other holds slot 2: a conflict
        ];
        let got = t.reconcile(a, &live);
        assert_eq!(got.freed, vec![r(1)]);
        assert_eq!(got.entered, vec!["i-old".to_string()]);
        assert_eq!(got.conflicts, vec!["i-clash".to_string()]);
        assert_eq!(t.owned_by(b, "i-other").map(Entry::range), Some(r(2)));
        assert_eq!(t.owned_by(a, "i-old").map(Entry::range), Some(r(5)));
        // Reconciling again changes nothing but the (still) conflicting one.
        let again = t.reconcile(a, &live);
        assert!(again.freed.is_empty() && again.entered.is_empty());
        // The other data dir's reconcile doesn't touch a's entries.
        t.reconcile(b, &[]);
        assert_eq!(t.entries.len(), 2);
        assert!(t.entries.iter().all(|e| e.data_dir == a));
    }

    #[test]
    fn entries_of_data_dirs_that_are_gone_are_forgotten() {
        let mut t = HostTable::default();
        t.allocate(Path::new("/data/kept"), "i-1");
        t.allocate(Path::new("/data/gone"), "i-1");
        assert_eq!(t.forget_missing(|p| p.ends_with("kept")), 1);
        assert_eq!(t.allocate(Path::new("/data/new"), "i-1"), Some(r(1)));
    }

    #[test]
    fn the_file_is_shared_locked_and_a_corrupt_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ids = HostIds::new(dir.path().join("host"));
        // Threads with their own handles, as two engines: every allocation distinct.
        let got: Vec<IdRange> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|n| {
                    let ids = HostIds::new(dir.path().join("host"));
                    s.spawn(move || {
                        let dd = PathBuf::from(format!("/data/{}", n % 2));
                        ids.update(|t| t.allocate(&dd, &format!("i-{n}")))
                            .unwrap()
                            .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: BTreeSet<u32> = got.iter().map(|r| r.base).collect();
        assert_eq!(distinct.len(), 8, "{got:?}");
        assert_eq!(ids.update(|t| t.entries.len()).unwrap(), 8);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("host")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o700);

        fs::write(ids.path(), "{\"entries\": [}").unwrap();
        let err = ids.update(|_| ()).unwrap_err().to_string();
        assert!(err.contains("userns-ranges.json"), "{err}");
        assert!(err.contains("line 1, column"), "{err}");
    }
}
