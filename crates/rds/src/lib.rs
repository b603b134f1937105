//! # spindle-rds: what runs Spindle's DB instances (issue #20)
//!
//! The engine side of `AWS::RDS::DBInstance` (the providers are in `spindle-providers`'s
//! `rds.rs`): the engine image baked on first use from a recipe shipped in the binary
//! ([`image`]), the script an instance runs to initialize and serve its data directory
//! ([`boot`], pure), the SCRAM verifier that keeps the master password out of every record
//! ([`scram`], pure), the readiness probe that says when the engine accepts connections
//! ([`probe`]), and the volumes and snapshots on the host ([`volume`]).
//!
//! ## Invariants
//! - The master password is turned into a SCRAM-SHA-256 verifier before anything is
//!   launched or recorded; the instance, its launch record and its data directory see only
//!   the verifier.
//! - A volume outlives its instance; deleting a DB instance moves the volume whole into a
//!   named snapshot (one rename) unless the template asked for `DeletionPolicy: Delete`.
//! - This crate never calls `unshare`, `mount` or `ip` (the runtime does, through its
//!   `Kernel`); baking goes through `spindle-bake`.

pub mod boot;
pub mod image;
pub mod probe;
pub mod scram;
pub mod volume;

use std::path::{Path, PathBuf};

pub use boot::{Bootstrap, Init};
pub use image::{ensure_postgres, EngineImage};
pub use volume::{Snapshot, Volumes};

/// What can go wrong below the providers.
#[derive(Debug, thiserror::Error)]
pub enum RdsError {
    #[error("the engine recipe: {0}")]
    Recipe(String),
    #[error("baking the engine image")]
    Bake(#[from] spindle_bake::BakeError),
    #[error("importing the engine image")]
    Image(#[from] spindle_runtime::ImageError),
    #[error("cannot {op} `{path}`")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("snapshot {0} already exists; choose another FinalDBSnapshotIdentifier")]
    SnapshotExists(String),
    #[error("snapshot {0} not found (DBSnapshotIdentifier)")]
    NoSnapshot(String),
    #[error("DB instance {0} has a volume already; restore into a new DBInstanceIdentifier")]
    VolumeExists(String),
    #[error("cannot copy snapshot data `{0}`: {1}")]
    Copy(String, String),
    #[error("unreadable record {0}")]
    BadRecord(String),
}

impl RdsError {
    pub(crate) fn io(op: &'static str, path: &Path, err: std::io::Error) -> Self {
        RdsError::Io {
            op,
            path: path.to_path_buf(),
            err,
        }
    }
}
