//! What `spindle rds` does outside stacks: list DB instances, and take, list and delete
//! manual snapshots, which outlive the instance (a restore is a stack's DB instance with
//! `DBSnapshotIdentifier`, as on AWS).
//!
//! A manual snapshot stops the engine (fast shutdown), copies the volume (`cp -a
//! --reflink=auto`) and starts the engine again, so the copy is a consistent, shut-down
//! cluster; the instance is unavailable for the copy (AWS's single-AZ snapshots also
//! suspend I/O briefly). The snapshot appears whole or not at all.

use std::time::Duration;

use spindle_model::rds::{DbInstanceSummary, DbSnapshotInfo};
use spindle_rds::Snapshot;
use spindle_runtime::InstanceState;

use super::{key, shut_down_engine, wait_ready, Rds};

/// Why a `spindle rds` call failed.
#[derive(Debug, thiserror::Error)]
pub enum RdsOpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Failed(String),
}

fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn info(s: Snapshot) -> DbSnapshotInfo {
    DbSnapshotInfo {
        id: s.id,
        db_instance: s.db_instance,
        engine: s.engine,
        created: rfc3339(s.created_at),
        kind: s.kind,
        master_user_secret: s.master_user_secret,
    }
}

impl Rds {
    /// The account's DB instances, by identifier.
    pub fn db_instances(&self, account: &str) -> Vec<DbInstanceSummary> {
        let prefix = format!("{account}/");
        let st = self.snapshot();
        st.instances
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| {
                let status = match self.ec2.runtime.describe(&r.instance_id) {
                    Ok(i) if i.state == InstanceState::Running => "available".to_string(),
                    Ok(i) => format!("{:?}", i.state).to_ascii_lowercase(),
                    Err(_) => "unknown".into(),
                };
                DbInstanceSummary {
                    id: r.id.clone(),
                    engine: "postgres".into(),
                    status,
                    address: r.address.clone(),
                    port: r.port,
                    instance_id: r.instance_id.clone(),
                    vpc_id: r.vpc_id.clone(),
                    subnet_group: r.subnet_group.clone(),
                    allocated_storage: r.allocated_storage,
                    deletion_protection: r.deletion_protection,
                    db_name: r.db_name.clone(),
                    master_user_secret: r.secret_arn.clone(),
                }
            })
            .collect()
    }

    /// Whether DB instance `db` exists with `DeletionProtection` on.
    pub fn is_protected(&self, account: &str, db: &str) -> bool {
        self.snapshot()
            .instances
            .get(&key(account, db))
            .is_some_and(|r| r.deletion_protection)
    }

    /// The account's snapshots (final and manual), oldest first.
    pub fn db_snapshots(&self, account: &str) -> Result<Vec<DbSnapshotInfo>, RdsOpError> {
        self.volumes
            .snapshots(account)
            .map(|v| v.into_iter().map(info).collect())
            .map_err(|e| RdsOpError::Failed(crate::error::full_message(&e)))
    }

    /// Takes manual snapshot `snapshot_id` of DB instance `db` (see the module's
    /// documentation); blocks until the engine accepts connections again.
    pub fn create_db_snapshot(
        &self,
        account: &str,
        db: &str,
        snapshot_id: &str,
    ) -> Result<DbSnapshotInfo, RdsOpError> {
        spindle_rds::volume::check_snapshot_id(snapshot_id)
            .map_err(|e| RdsOpError::Invalid(format!("snapshot id: {e}")))?;
        // `ID-final-…` names are the final snapshots': a manual one taking such a name first
        // would make that instance's delete fail.
        if snapshot_id.to_ascii_lowercase().contains("-final-") {
            return Err(RdsOpError::Invalid(format!(
                "snapshot id `{snapshot_id}`: names with `-final-` are kept for the final \
                 snapshots Spindle takes before a delete or replacement"
            )));
        }
        let db = db.to_ascii_lowercase();
        let rec = self
            .snapshot()
            .instances
            .get(&key(account, &db))
            .cloned()
            .ok_or_else(|| {
                RdsOpError::NotFound(format!("no DB instance `{db}` in this account"))
            })?;
        if self.volumes.has_snapshot(account, snapshot_id) {
            return Err(RdsOpError::Conflict(format!(
                "snapshot {snapshot_id} already exists; choose another id"
            )));
        }
        let rt = &self.ec2.runtime;
        let running = matches!(
            rt.describe(&rec.instance_id).map(|i| i.state),
            Ok(InstanceState::Running)
        );
        if running {
            shut_down_engine(rt, &rec.instance_id);
            rt.stop(&rec.instance_id, Duration::from_secs(10))
                .map_err(|e| RdsOpError::Failed(crate::error::full_message(&e)))?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let copied = self.volumes.copy_to_snapshot(
            account,
            &rec.id,
            Snapshot {
                id: snapshot_id.to_string(),
                db_instance: rec.id.clone(),
                engine: "postgres".into(),
                created_at: now,
                kind: "manual".into(),
                master_user_secret: rec.secret_arn.clone(),
            },
        );
        // The engine comes back whether or not the copy worked.
        if running {
            rt.start(&rec.instance_id)
                .map_err(|e| RdsOpError::Failed(crate::error::full_message(&e)))?;
            let addr = format!("{}:{}", rec.address, rec.port);
            wait_ready(
                &self.ec2,
                &rec.instance_id,
                &rec.vpc_id,
                &addr,
                "postgres",
                "postgres",
            )
            .map_err(|why| {
                RdsOpError::Failed(format!(
                    "DB instance {} did not come back after the snapshot: {why}",
                    rec.id
                ))
            })?;
        }
        match copied {
            Ok(s) => {
                tracing::info!(db = %rec.id, snapshot = %s.id, "took a manual snapshot");
                Ok(info(s))
            }
            Err(spindle_rds::RdsError::SnapshotExists(id)) => Err(RdsOpError::Conflict(format!(
                "snapshot {id} already exists; choose another id"
            ))),
            Err(e) => Err(RdsOpError::Failed(crate::error::full_message(&e))),
        }
    }

    /// Deletes a snapshot (manual or final); its data is gone for good.
    pub fn delete_db_snapshot(&self, account: &str, snapshot_id: &str) -> Result<(), RdsOpError> {
        // The id comes from a URL path: never let it name a path outside the snapshots.
        spindle_rds::volume::check_snapshot_id(snapshot_id)
            .map_err(|e| RdsOpError::Invalid(format!("snapshot id: {e}")))?;
        match self.volumes.delete_snapshot(account, snapshot_id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(RdsOpError::NotFound(format!(
                "no snapshot `{snapshot_id}` in this account"
            ))),
            Err(e) => Err(RdsOpError::Failed(crate::error::full_message(&e))),
        }
    }
}
