//! Route handlers for images and the runtime's doctor.

use crate::api::{error_chain, ApiError};
use crate::app::{now, App};
use crate::auth::Call;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_model::api::{
    ConsoleOutput, DoctorReport, ExecRequest, ExecResult, ExportImage, ImageDetail, ImageInfo,
    ImportImage, InstanceInfo, TagImage,
};
use std::net::SocketAddr;
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;

pub(crate) fn runtime(app: &App) -> Res<Arc<spindle_runtime::Runtime>> {
    app.runtime.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RuntimeOff",
            "instances and images are off on this daemon".into(),
        )
        .with_hint("run `spindle server` as root, without --no-runtime")
    })
}

fn info(i: &spindle_runtime::Image) -> ImageInfo {
    ImageInfo {
        id: i.id.clone(),
        tags: i.tags.clone(),
        layers: i.layers.len(),
        entrypoint: i.config.entrypoint.clone(),
        cmd: i.config.cmd.clone(),
        created: i.created,
    }
}

pub async fn import_image(
    State(app): State<App>,
    Path(account): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    call: Call,
) -> Res<(StatusCode, Json<ImageInfo>)> {
    let req: ImportImage = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/images"))?;
    let rt = runtime(&app)?;
    let path = local_path(peer, &req.path, "imported from")?;
    if let Some(tag) = &req.tag {
        tag_free(&app, &rt, &a.id, tag, None)?;
    }
    let config = spindle_runtime::ImageConfig {
        entrypoint: req.entrypoint.clone(),
        cmd: req.cmd.clone(),
        ..Default::default()
    };
    let tag = req.tag.clone();
    let image =
        tokio::task::spawn_blocking(move || rt.images().import(&path, config, tag.as_deref()))
            .await
            .map_err(|e| ApiError::internal(&format!("image import task failed: {e}")))?
            .map_err(|e| {
                ApiError::bad_request(format!("cannot import `{}`: {}", req.path, error_chain(&e)))
            })?;
    app.store.add_image(&a.id, &image.id, now())?;
    call.set_target(format!("account/{account}/images/{}", image.id));
    Ok((StatusCode::CREATED, Json(info(&image))))
}

pub async fn list_images(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<ImageInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/images"))?;
    let rt = runtime(&app)?;
    let owned = app.store.account_images(&a.id)?;
    let all = rt
        .images()
        .list()
        .map_err(|e| ApiError::internal(&error_chain(&e)))?;
    Ok(Json(
        all.iter()
            .filter(|i| owned.contains(&i.id))
            .map(info)
            .collect(),
    ))
}

/// A path on the daemon's machine, which the daemon reads or writes itself: only a client on
/// the same machine may name one, and only an absolute one.
fn local_path(peer: SocketAddr, path: &str, verb: &str) -> Res<std::path::PathBuf> {
    if !peer.ip().is_loopback() {
        return Err(ApiError::bad_request(format!(
            "images are {verb} a path on the daemon's machine; connect over loopback"
        )));
    }
    let p = std::path::PathBuf::from(path);
    if !p.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "path `{path}` must be absolute"
        )));
    }
    Ok(p)
}

/// The account's image `id` (an `ami-…` id or a tag), resolved; another account's image
/// answers exactly as a missing one.
pub(crate) fn owned_image(
    app: &App,
    rt: &spindle_runtime::Runtime,
    account: &spindle_model::AccountId,
    id: &str,
) -> Res<spindle_runtime::Image> {
    let missing = || {
        ApiError::not_found(format!("image `{id}` not found"))
            .with_hint("`spindle image list` shows the account's images")
    };
    let image = rt.images().inspect(id).map_err(|_| missing())?;
    if !app.store.account_images(account)?.contains(&image.id) {
        return Err(missing());
    }
    Ok(image)
}

/// What uses an image: live instances (by id for this account's, counted for others') and
/// launch templates.
fn image_users(
    app: &App,
    rt: &spindle_runtime::Runtime,
    account: &str,
    image: &str,
) -> Vec<String> {
    let live: Vec<spindle_runtime::Instance> = rt
        .list()
        .into_iter()
        .filter(|i| i.image_id == image && i.state != spindle_runtime::InstanceState::Terminated)
        .collect();
    let devbox = |i: &spindle_runtime::Instance| {
        use crate::devbox_handlers::DEVBOX_TAG;
        use spindle_model::ACCOUNT_TAG;
        (i.tags.get(ACCOUNT_TAG).map(String::as_str) == Some(account))
            .then(|| i.tags.get(DEVBOX_TAG))
            .flatten()
            .map(|name| format!("devbox {name}"))
    };
    let mut users: Vec<String> = live
        .iter()
        .filter_map(|i| {
            if owner(i).is_some_and(|o| o.as_str() == account) {
                Some(format!("instance {}", i.id))
            } else {
                devbox(i)
            }
        })
        .collect();
    let others = live.len() - users.len();
    if others > 0 {
        users.push(format!("{others} instance(s) of other accounts"));
    }
    if let Some(ec2) = &app.ec2 {
        users.extend(ec2.launch_templates_using(image));
    }
    users
}

/// Tags are shared by the image store: refuses to move `tag` off another account's image.
fn tag_free(
    app: &App,
    rt: &spindle_runtime::Runtime,
    account: &spindle_model::AccountId,
    tag: &str,
    to: Option<&str>,
) -> Res<()> {
    if let Ok(current) = rt.images().resolve(tag) {
        if Some(current.as_str()) != to && !app.store.account_images(account)?.contains(&current) {
            return Err(ApiError::conflict(format!(
                "tag `{tag}` is taken by an image of another account"
            ))
            .with_hint("choose another name"));
        }
    }
    Ok(())
}

pub async fn describe_image(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ImageDetail>> {
    let a = app.scope(&call, &account, format!("account/{account}/images/{id}"))?;
    let rt = runtime(&app)?;
    let i = owned_image(&app, &rt, &a.id, &id)?;
    Ok(Json(ImageDetail {
        info: info(&i),
        env: i.config.env.clone(),
        user: i.config.user.clone(),
        workdir: i.config.workdir.clone(),
        exposed_ports: i.config.exposed_ports.clone(),
        min_memory_mib: i.config.min_memory_mib,
        layer_digests: i.layers.iter().map(|l| l.digest.clone()).collect(),
        size: i.layers.iter().map(|l| l.size).sum(),
        used_by: image_users(&app, &rt, a.id.as_str(), &i.id),
    }))
}

pub async fn tag_image(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ImageInfo>> {
    let req: TagImage = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/images/{id}"))?;
    let rt = runtime(&app)?;
    let image = owned_image(&app, &rt, &a.id, &id)?;
    tag_free(&app, &rt, &a.id, &req.tag, Some(&image.id))?;
    rt.images()
        .tag(&image.id, &req.tag)
        .map_err(|e| ApiError::bad_request(error_chain(&e)))?;
    let image = rt
        .images()
        .inspect(&image.id)
        .map_err(|e| ApiError::internal(&error_chain(&e)))?;
    Ok(Json(info(&image)))
}

pub async fn remove_image(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ImageInfo>> {
    let a = app.scope(&call, &account, format!("account/{account}/images/{id}"))?;
    let rt = runtime(&app)?;
    let image = owned_image(&app, &rt, &a.id, &id)?;
    let users = image_users(&app, &rt, a.id.as_str(), &image.id);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "image {} is in use by {}",
            image.id,
            users.join(", ")
        ))
        .with_hint("terminate the instances and delete the launch templates first"));
    }
    // Another account that imported the same content keeps it; the last owner removes it.
    if app.store.image_owner_count(&image.id)? <= 1 {
        let (rt2, iid) = (rt.clone(), image.id.clone());
        tokio::task::spawn_blocking(move || rt2.images().remove(&iid, &[]))
            .await
            .map_err(|e| ApiError::internal(&format!("image remove task failed: {e}")))?
            .map_err(|e| ApiError::conflict(error_chain(&e)))?;
    }
    app.store.remove_image(&a.id, &image.id)?;
    Ok(Json(info(&image)))
}

pub async fn export_image(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    call: Call,
) -> Res<Json<ImageInfo>> {
    let req: ExportImage = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/images/{id}"))?;
    let rt = runtime(&app)?;
    let image = owned_image(&app, &rt, &a.id, &id)?;
    let path = local_path(peer, &req.path, "exported to")?;
    let format: spindle_runtime::ExportFormat = req
        .format
        .parse()
        .map_err(|e: spindle_runtime::ImageError| ApiError::bad_request(format!("format: {e}")))?;
    let iid = image.id.clone();
    tokio::task::spawn_blocking(move || rt.images().export(&iid, &path, format))
        .await
        .map_err(|e| ApiError::internal(&format!("image export task failed: {e}")))?
        .map_err(|e| {
            ApiError::bad_request(format!(
                "cannot export to `{}`: {}",
                req.path,
                error_chain(&e)
            ))
        })?;
    Ok(Json(info(&image)))
}

fn leak(l: &spindle_runtime::doctor::Leak) -> String {
    format!("{} {}", format!("{:?}", l.kind).to_lowercase(), l.name)
}

fn doctor(app: &App, call: &Call, fix: bool) -> Res<Json<DoctorReport>> {
    app.check_own(call, "runtime".into())?;
    let rt = runtime(app)?;
    let r = rt.doctor(fix);
    Ok(Json(DoctorReport {
        prefix: rt.config().prefix.clone(),
        leaks: r.leaks.iter().map(leak).collect(),
        unfixed: r
            .unfixed
            .iter()
            .map(|(l, why)| format!("{}: {why}", leak(l)))
            .collect(),
    }))
}

pub async fn read_doctor(State(app): State<App>, call: Call) -> Res<Json<DoctorReport>> {
    doctor(&app, &call, false)
}

pub async fn fix_doctor(State(app): State<App>, call: Call) -> Res<Json<DoctorReport>> {
    doctor(&app, &call, true)
}

// ---- instances

/// The account an instance of the instance API belongs to ([`spindle_model::instance_owner`]).
/// Devboxes and pipeline jobs are owned the same way but belong to their own services: the
/// instance API (and EC2's calls) neither show nor change them, so no one execs into a job
/// as root or stops it under its run. (DB instances' engines stay visible: their volume
/// outlives the instance, and a stop/start is how one restarts an engine today.)
pub(crate) fn owner(i: &spindle_runtime::Instance) -> Option<spindle_model::AccountId> {
    let managed = [
        crate::devbox_handlers::DEVBOX_TAG,
        crate::pipeline_runner::JOB_TAG,
    ];
    if managed.iter().any(|t| i.tags.contains_key(*t)) {
        return None;
    }
    spindle_model::instance_owner(&i.tags)
}

/// AWS's name of an instance state (`running`, `shutting-down`, …).
pub(crate) fn state_name(s: spindle_runtime::InstanceState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn instance_info(i: &spindle_runtime::Instance) -> InstanceInfo {
    InstanceInfo {
        id: i.id.clone(),
        state: state_name(i.state),
        image_id: i.image_id.clone(),
        instance_type: i.instance_type.clone(),
        private_ip: i.private_ip.to_string(),
        vpc_id: i.vpc_id.clone(),
        subnet_id: i.subnet_id.clone(),
        hostname: i.hostname.clone(),
        tags: i.tags.clone().into_iter().collect(),
        launched_at: i.launched_at,
        last_exit: i.last_exit.as_ref().map(|e| e.reason.clone()),
        oom_killed: i.last_exit.as_ref().is_some_and(|e| e.oom_killed),
        state_reason: i
            .last_exit
            .as_ref()
            .filter(|e| e.oom_killed)
            .map(|_| "Server.OutOfMemory".to_string()),
        seccomp: i.seccomp.name().to_string(),
        user_namespace: i.userns.map(|r| r.map_line().trim_end().to_string()),
    }
}

/// The account's instance `id`; another account's answers exactly as a missing one.
fn instance(
    app: &App,
    account: &spindle_model::AccountId,
    id: &str,
) -> Res<(Arc<spindle_runtime::Runtime>, spindle_runtime::Instance)> {
    let rt = runtime(app)?;
    match rt.describe(id) {
        Ok(i) if owner(&i).as_ref() == Some(account) => Ok((rt, i)),
        _ => Err(ApiError::not_found(format!("instance `{id}` not found"))
            .with_hint("`spindle instance list` shows the account's instances")),
    }
}

pub async fn list_instances(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<InstanceInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/instances"))?;
    let rt = runtime(&app)?;
    Ok(Json(
        rt.list()
            .iter()
            .filter(|i| owner(i).as_ref() == Some(&a.id))
            .map(instance_info)
            .collect(),
    ))
}

pub async fn describe_instance(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<InstanceInfo>> {
    let a = app.scope(&call, &account, format!("account/{account}/instances/{id}"))?;
    Ok(Json(instance_info(&instance(&app, &a.id, &id)?.1)))
}

pub async fn instance_console(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ConsoleOutput>> {
    let a = app.scope(&call, &account, format!("account/{account}/instances/{id}"))?;
    let (rt, _) = instance(&app, &a.id, &id)?;
    let output = rt
        .console_output(&id)
        .map_err(|e| ApiError::internal(&error_chain(&e)))?;
    Ok(Json(ConsoleOutput {
        instance_id: id,
        output,
    }))
}

pub async fn exec_instance(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ExecResult>> {
    let req: ExecRequest = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/instances/{id}"))?;
    if req.argv.is_empty() {
        return Err(ApiError::bad_request(
            "argv: give the command to run, e.g. [\"cat\", \"/etc/hostname\"]".into(),
        ));
    }
    let (rt, _) = instance(&app, &a.id, &id)?;
    let timeout =
        std::time::Duration::from_secs(u64::from(req.timeout_seconds.unwrap_or(60).clamp(1, 3600)));
    let out = tokio::task::spawn_blocking(move || rt.exec(&id, &req.argv, timeout))
        .await
        .map_err(|e| ApiError::internal(&format!("exec task failed: {e}")))?
        .map_err(|e| ApiError::conflict(error_chain(&e)))?;
    Ok(Json(ExecResult {
        exit_code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }))
}

/// Stop, start or terminate, off the async workers (they wait for the process).
async fn change_state(
    app: App,
    call: Call,
    account: String,
    id: String,
    what: &'static str,
) -> Res<Json<InstanceInfo>> {
    let a = app.scope(&call, &account, format!("account/{account}/instances/{id}"))?;
    let (rt, inst) = instance(&app, &a.id, &id)?;
    crate::rds_handlers::refuse_protected_engine(&app, &a.id, &inst, what)?;
    let grace = std::time::Duration::from_secs(10);
    let out = tokio::task::spawn_blocking(move || match what {
        "stop" => rt.stop(&id, grace),
        "start" => rt.start(&id),
        _ => rt.terminate(&id, grace),
    })
    .await
    .map_err(|e| ApiError::internal(&format!("{what} task failed: {e}")))?
    .map_err(|e| ApiError::conflict(error_chain(&e)))?;
    Ok(Json(instance_info(&out)))
}

pub async fn stop_instance(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<InstanceInfo>> {
    change_state(app, call, account, id, "stop").await
}

pub async fn start_instance(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<InstanceInfo>> {
    change_state(app, call, account, id, "start").await
}

pub async fn terminate_instance(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    call: Call,
) -> Res<Json<InstanceInfo>> {
    change_state(app, call, account, id, "terminate").await
}
