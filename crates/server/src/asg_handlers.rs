//! Route handlers for auto scaling groups: thin calls into `spindle_providers::AutoScaling`.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_autoscale::group::HookResult;
use spindle_model::asg::{
    AutoScalingGroupInfo, AutoScalingInstance, CompleteLifecycleAction, ScalingActivity,
    SetDesiredCapacity, StartInstanceRefresh,
};
use spindle_model::AccountId;
use spindle_providers::{AutoScaling, GroupInfo};
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;

fn asg(app: &App) -> Res<Arc<AutoScaling>> {
    app.autoscaling.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RuntimeOff",
            "auto scaling is off on this daemon (it needs the instance runtime)".into(),
        )
        .with_hint("run `spindle server` as root, without --no-runtime")
    })
}

fn group_info(g: GroupInfo) -> AutoScalingGroupInfo {
    AutoScalingGroupInfo {
        name: g.name,
        min_size: g.min,
        max_size: g.max,
        desired_capacity: g.desired,
        launch_template: g.launch_template,
        launch_template_version: g.version,
        target_groups: g.target_groups,
        instances: g
            .instances
            .into_iter()
            .map(|i| AutoScalingInstance {
                id: i.id,
                lifecycle_state: i.lifecycle_state,
                health: i.health,
                launch_template_version: i.version,
                protected_from_scale_in: i.protected,
                subnet_id: i.subnet,
            })
            .collect(),
        refresh: g.refresh,
        policies: g.policies,
    }
}

/// A group's error: not found, or a refused request.
fn refused(message: String) -> ApiError {
    if message.ends_with("not found") {
        ApiError::not_found(message).with_hint("`spindle asg list` shows the account's groups")
    } else {
        ApiError::bad_request(message)
    }
}

/// Scopes a call on group `name` and returns the account id and auto scaling.
fn scoped(app: &App, call: &Call, account: &str, name: &str) -> Res<(AccountId, Arc<AutoScaling>)> {
    let a = app.scope(
        call,
        account,
        format!("account/{account}/autoscaling-groups/{name}"),
    )?;
    Ok((a.id, asg(app)?))
}

pub async fn list_groups(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<AutoScalingGroupInfo>>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/autoscaling-groups"),
    )?;
    let asg = asg(&app)?;
    Ok(Json(asg.list(&a.id).into_iter().map(group_info).collect()))
}

pub async fn describe_group(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<AutoScalingGroupInfo>> {
    let (id, asg) = scoped(&app, &call, &account, &name)?;
    let g = asg.describe(&id, &name).map_err(refused)?;
    Ok(Json(group_info(g)))
}

pub async fn group_activities(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<ScalingActivity>>> {
    let (id, asg) = scoped(&app, &call, &account, &name)?;
    let acts = asg.activities(&id, &name).map_err(refused)?;
    Ok(Json(
        acts.into_iter()
            .map(|x| ScalingActivity {
                at: x.at,
                description: x.description,
                cause: x.cause,
                status: format!("{:?}", x.status),
            })
            .collect(),
    ))
}

pub async fn set_desired(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let req: SetDesiredCapacity = call.json()?;
    let (id, asg) = scoped(&app, &call, &account, &name)?;
    asg.set_desired(&id, &name, req.desired_capacity)
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn start_refresh(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let req: StartInstanceRefresh = call.json()?;
    let (id, asg) = scoped(&app, &call, &account, &name)?;
    asg.start_refresh(&id, &name, req.min_healthy_percentage)
        .map_err(refused)?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn complete_lifecycle_action(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let req: CompleteLifecycleAction = call.json()?;
    let (id, asg) = scoped(&app, &call, &account, &name)?;
    let result = match req.lifecycle_action_result.as_str() {
        "CONTINUE" => HookResult::Continue,
        "ABANDON" => HookResult::Abandon,
        other => {
            return Err(ApiError::bad_request(format!(
                "lifecycle_action_result `{other}` must be CONTINUE or ABANDON"
            )))
        }
    };
    let account_id = id;
    tokio::task::spawn_blocking(move || {
        asg.complete_lifecycle_action(
            &account_id,
            &name,
            &req.instance_id,
            &req.lifecycle_hook_name,
            result,
        )
    })
    .await
    .map_err(|e| ApiError::internal(&format!("lifecycle action task failed: {e}")))?
    .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The controller loop: one tick a second, on the blocking pool (launches block).
pub fn spawn_controller(asg: Arc<AutoScaling>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Tick just after each wall-clock second ends, so the load balancer's second
            // that just completed is read at once rather than up to a second late.
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let into = std::time::Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
            let wait = (std::time::Duration::from_secs(1) - into) + TICK_AFTER_SECOND;
            tokio::time::sleep(wait).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let a = asg.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || a.tick(now)).await {
                tracing::error!(error = %e, "auto scaling tick failed");
            }
        }
    })
}

/// How long after a wall-clock second ends the controller ticks: room for requests that
/// ended right at the boundary to be counted in the second they belong to.
const TICK_AFTER_SECOND: std::time::Duration = std::time::Duration::from_millis(20);
