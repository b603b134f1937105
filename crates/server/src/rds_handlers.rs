//! The `spindle rds` routes: DB instances and their snapshots (`rds:*` actions, audited
//! when they change something). Thin: each calls one `spindle_providers::Rds` function,
//! the blocking ones off the async workers.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use spindle_model::rds::{CreateDbSnapshot, DbInstanceSummary, DbSnapshotInfo};
use spindle_providers::{Rds, RdsOpError};

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;

type Res<T> = Result<T, ApiError>;

fn rds(app: &App) -> Res<Arc<Rds>> {
    app.stacks.rds().cloned().ok_or_else(|| {
        ApiError::conflict(
            "DB instances need the instance runtime: this daemon runs without it (or as a user other than root)".into(),
        )
    })
}

fn api_err(e: RdsOpError) -> ApiError {
    match e {
        RdsOpError::NotFound(m) => ApiError::not_found(m),
        RdsOpError::Invalid(m) => ApiError::bad_request(m),
        RdsOpError::Conflict(m) => ApiError::conflict(m),
        RdsOpError::Failed(m) => {
            tracing::error!(error = %m, "rds");
            ApiError::internal(&m)
        }
    }
}

/// Refuses to stop or terminate (through the instance API) the instance running a DB
/// instance that has `DeletionProtection`: that would take the database down past its
/// protection. Starting it is always allowed.
pub(crate) fn refuse_protected_engine(
    app: &App,
    account: &spindle_model::AccountId,
    inst: &spindle_runtime::Instance,
    what: &str,
) -> Res<()> {
    let Some(db) = inst.tags.get(spindle_providers::DB_INSTANCE_TAG) else {
        return Ok(());
    };
    let protected = app
        .stacks
        .rds()
        .is_some_and(|r| r.is_protected(account.as_str(), db));
    if what != "start" && protected {
        return Err(ApiError::conflict(format!(
            "instance {} runs DB instance {db}, which has DeletionProtection enabled; it can't be {}",
            inst.id,
            if what == "stop" { "stopped" } else { "terminated" }
        ))
        .with_hint("update its stack with DeletionProtection: false first"));
    }
    Ok(())
}

pub async fn list_db_instances(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<DbInstanceSummary>>> {
    let a = app.scope(&call, &account, format!("account/{account}/rds/instances"))?;
    let r = rds(&app)?;
    let id = a.id.to_string();
    let list = tokio::task::spawn_blocking(move || r.db_instances(&id))
        .await
        .map_err(|e| ApiError::internal(&format!("rds task failed: {e}")))?;
    Ok(Json(list))
}

pub async fn list_db_snapshots(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<DbSnapshotInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/rds/snapshots"))?;
    Ok(Json(
        rds(&app)?.db_snapshots(a.id.as_str()).map_err(api_err)?,
    ))
}

pub async fn create_db_snapshot(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<DbSnapshotInfo>> {
    let req: CreateDbSnapshot = call.json()?;
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/rds/instances/{}", req.db_instance),
    )?;
    let r = rds(&app)?;
    let id = a.id.to_string();
    let made = tokio::task::spawn_blocking(move || {
        r.create_db_snapshot(&id, &req.db_instance, &req.snapshot_id)
    })
    .await
    .map_err(|e| ApiError::internal(&format!("rds task failed: {e}")))?
    .map_err(api_err)?;
    Ok(Json(made))
}

pub async fn delete_db_snapshot(
    State(app): State<App>,
    Path((account, snapshot)): Path<(String, String)>,
    call: Call,
) -> Res<Json<serde_json::Value>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/rds/snapshots/{snapshot}"),
    )?;
    let r = rds(&app)?;
    let id = a.id.to_string();
    let snap = snapshot.clone();
    tokio::task::spawn_blocking(move || r.delete_db_snapshot(&id, &snap))
        .await
        .map_err(|e| ApiError::internal(&format!("rds task failed: {e}")))?
        .map_err(api_err)?;
    Ok(Json(serde_json::json!({ "deleted": snapshot })))
}
