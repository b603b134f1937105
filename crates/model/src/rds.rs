//! The API shapes of DB instances and their snapshots (`spindle rds`).

use serde::{Deserialize, Serialize};

/// A DB instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbInstanceSummary {
    /// `DBInstanceIdentifier`.
    pub id: String,
    pub engine: String,
    /// AWS's `DBInstanceStatus`: `available` while the engine's instance runs, else the
    /// instance's state (`stopped`, `terminated`, …).
    pub status: String,
    pub address: String,
    pub port: u16,
    /// The Spindle instance running the engine.
    pub instance_id: String,
    pub vpc_id: String,
    pub subnet_group: String,
    pub allocated_storage: u32,
    pub deletion_protection: bool,
    pub db_name: Option<String>,
    /// `MasterUserSecret.SecretArn` (`ManageMasterUserPassword`).
    pub master_user_secret: Option<String>,
}

/// A DB snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSnapshotInfo {
    pub id: String,
    pub db_instance: String,
    pub engine: String,
    /// RFC 3339.
    pub created: String,
    /// `manual` (`spindle rds snapshot create`) or `final` (taken before a delete or a
    /// replacement).
    pub kind: String,
    /// The managed master secret whose password the snapshot's users keep, if any.
    pub master_user_secret: Option<String>,
}

/// `POST …/rds/snapshots`: snapshot a running DB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDbSnapshot {
    pub db_instance: String,
    /// `DBSnapshotIdentifier`: a letter, then letters, digits and single hyphens.
    pub snapshot_id: String,
}
