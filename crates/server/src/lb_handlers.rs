//! Route handlers for load balancers: read-only views of what the ELBv2 stack resources run.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, State};
use axum::Json;
use spindle_model::lb::{LbMetricSeries, LoadBalancerInfo, TargetHealthInfo};

type Res<T> = Result<T, ApiError>;

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("load balancer `{name}` not found"))
        .with_hint("`spindle lb list` shows the account's load balancers")
}

pub async fn list(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<LoadBalancerInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/load-balancers"))?;
    Ok(Json(app.elb.list(&a.id)))
}

pub async fn describe(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<LoadBalancerInfo>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/load-balancers/{name}"),
    )?;
    app.elb
        .describe(&a.id, &name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

pub async fn targets(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<TargetHealthInfo>>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/load-balancers/{name}"),
    )?;
    app.elb
        .target_health(&a.id, &name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

pub async fn metrics(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<LbMetricSeries>>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/load-balancers/{name}"),
    )?;
    app.elb
        .metrics(&a.id, &name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}
