use std::path::PathBuf;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database `{}` has schema version {found}, newer than this build of Spindle knows ({known}); \
         run a newer spindle, or restore a backup of the data dir",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migration to schema version {version} failed")]
    Migration {
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} is not empty: {detail}")]
    NotEmpty { what: String, detail: String },
    #[error("stored data is corrupt: {detail}")]
    Corrupt { detail: String },
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
}

/// Turns a UNIQUE/PRIMARY KEY violation into [`StoreError::Conflict`].
pub(crate) fn conflict(
    what: impl FnOnce() -> String,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict { what: what() }
        }
        _ => StoreError::Sqlite(e),
    }
}
