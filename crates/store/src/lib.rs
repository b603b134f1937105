//! Spindle's state in SQLite. **Invariant: this is the only crate that speaks SQL.**
//!
//! One writer connection (SQLite serialises writers anyway) and a small pool of readers, all in
//! WAL mode so reads never wait for a write. Every mutation runs in one transaction, so a failed
//! call changes nothing. The schema is versioned with `PRAGMA user_version`; [`migrations`]
//! holds the steps, and a database written by a newer Spindle is refused rather than guessed at.
//!
//! The store has no clock: callers pass the time, so behaviour is reproducible in tests.

mod accounts;
mod apt;
mod audit;
mod audit_scope;
mod aws_keys;
mod change_sets;
mod engine_state;
mod error;
mod journal;
mod keys;
pub mod migrations;
mod params;
mod pipeline_logs;
mod pipeline_reruns;
mod pipelines;
mod roles;

pub use apt::{AptChange, AptKind, AptPackage, Expect};
pub use audit::{AuditFilter, AuditRecord};
pub use audit_scope::{AuditScope, Scoped};
pub use error::StoreError;
pub use keys::{KeyRecord, NewKey};
pub use params::ValueSeal;
pub use pipeline_logs::LogTail;
pub use pipeline_reruns::JobOutcome;
pub use pipelines::{NewJob, NewRun};

use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::OffsetDateTime;

const READERS: usize = 4;

/// A handle on the database; cheap to share behind an `Arc`.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Seals `SecureString` parameter values (set by the daemon, see [`Store::seal_params_with`]).
    param_seal: std::sync::OnceLock<std::sync::Arc<dyn ValueSeal>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Freed and overwritten content is zeroed, so a value sealed in place (a SecureString an
    // older daemon kept in clear) leaves no readable copy in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        migrations::migrate(&mut writer, path)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
            configure(&r).map_err(open_err)?;
            readers.push(r);
        }
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(readers),
            param_seal: std::sync::OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection (a fresh one if all are busy).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(|source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                })?;
                configure(&c)?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READERS {
            pool.push(conn);
        }
        out
    }

    /// Runs `f` in one write transaction: all of it commits, or none of it does. Inside a
    /// request's [`AuditScope`] the first such transaction also carries the request's pending
    /// audit record.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transact(true, f)
    }

    /// Copies the WAL's pages into the database and empties the WAL (`TRUNCATE`), so content
    /// that was overwritten lives on in neither file. Readers in progress make it partial;
    /// that is not an error.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// [`Store::write`] outside the audit scope: for the audit records themselves.
    fn write_unscoped<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transact(false, f)
    }

    fn transact<T>(
        &self,
        scoped: bool,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        let scope = if scoped {
            audit_scope::pending_in(&tx)?
        } else {
            None
        };
        tx.commit()?;
        audit_scope::committed(scope);
        Ok(out)
    }

    /// A value from the `meta` table (installation-wide settings).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
            let mut rows = st.query([key])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }
}

/// RFC 3339 with millisecond precision in UTC: sortable as text.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Turns an UPDATE/DELETE's changed-row count into `NotFound` when nothing matched.
pub(crate) fn expect_changed(n: usize, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if n == 0 {
        return Err(StoreError::NotFound { what: what() });
    }
    Ok(())
}

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings serialises")
}

pub(crate) fn parse_json_list(s: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[cfg(test)]
pub(crate) mod test_util {
    pub fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// Accounts `dev` and `prod` in `s`.
    pub fn dev_and_prod(
        s: &super::Store,
    ) -> (spindle_model::api::Account, spindle_model::api::Account) {
        let mk = |n: &str| {
            s.create_account(
                &spindle_model::AccountName::parse(n).unwrap(),
                "",
                false,
                now(),
            )
            .unwrap()
        };
        (mk("dev"), mk("prod"))
    }

    pub fn open() -> (tempfile::TempDir, super::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }
}
