//! DB instance and snapshot calls (`/v1/accounts/{account}/rds/…`).

use super::{method, seg, Client, ClientError};
use spindle_model::rds::{CreateDbSnapshot, DbInstanceSummary, DbSnapshotInfo};

impl Client {
    pub fn list_db_instances(&self, account: &str) -> Result<Vec<DbInstanceSummary>, ClientError> {
        self.get(&format!("/v1/accounts/{}/rds/instances", seg(account)))
    }

    pub fn list_db_snapshots(&self, account: &str) -> Result<Vec<DbSnapshotInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/rds/snapshots", seg(account)))
    }

    /// Takes a manual snapshot; returns once the instance accepts connections again.
    pub fn create_db_snapshot(
        &self,
        account: &str,
        req: &CreateDbSnapshot,
    ) -> Result<DbSnapshotInfo, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/rds/snapshots", seg(account)),
            Some(req),
        )
    }

    pub fn delete_db_snapshot(
        &self,
        account: &str,
        snapshot: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(
            method::DELETE,
            &format!(
                "/v1/accounts/{}/rds/snapshots/{}",
                seg(account),
                seg(snapshot)
            ),
            None::<&()>,
        )
    }
}
