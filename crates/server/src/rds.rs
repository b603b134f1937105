//! The daemon's side of the RDS providers: their records in the store (`rds` in
//! `engine_state`), volumes and snapshots under `DATA_DIR/rds`. Only as root (they launch
//! instances); `SPINDLE_RDS_BAKE_DIR` moves the engine image's bake cache (tests share one).

use std::sync::Arc;

use spindle_store::Store;

/// The RDS providers over `ec2`'s runtime, or `None` without a runtime or when their records
/// can't be read (logged; the RDS types are then unsupported rather than the daemon down).
pub fn open(
    store: &Arc<Store>,
    ec2: Option<&Arc<spindle_providers::Ec2>>,
) -> Option<Arc<spindle_providers::Rds>> {
    let ec2 = ec2?;
    let dir = store.path().parent()?.join("rds");
    let doc = crate::engine_state::SqlDoc::arc(store, spindle_providers::RDS_DOC);
    match spindle_providers::Rds::open_with(ec2.clone(), Some(doc), dir) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "RDS state unreadable; AWS::RDS types are off");
            None
        }
    }
}
