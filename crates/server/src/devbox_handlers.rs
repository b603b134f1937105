//! Developer boxes: one long-lived instance of a baked image per box, in a VPC of its own,
//! with the project directory bind-mounted (`spindle devbox up|list|down|exec`).
//!
//! A box is an ordinary runtime instance, so the daemon supervises it (it outlives the CLI and
//! is adopted by a restarted daemon). What makes it a box is two tags, `spindle:devbox` (its
//! name) and `spindle:account` (its owner): the runtime's state is the only record, so there is
//! no table to keep in step. Boxes are managed only through these routes — the instance routes
//! don't list them, so a box's network can't be orphaned by terminating its instance there.
//!
//! A host bind mount exposes the daemon's filesystem, so only the installation's admin
//! credential may ask for one, the path must be absolute, existing, a directory and not `/`,
//! and (as for image paths) the client must be on the daemon's machine.

use crate::api::{error_chain, ApiError};
use crate::app::App;
use crate::auth::Call;
use crate::runtime_handlers::{owned_image, runtime, state_name};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_model::api::{ExecRequest, ExecResult};
use spindle_model::devbox::{DevboxAttach, DevboxInfo, DevboxResult, PutDevbox};
use spindle_runtime::net::NetError;
use spindle_runtime::{
    BindMount, Instance, InstanceState, LaunchSpec, Runtime, RuntimeError, SeccompProfile,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Res<T> = Result<T, ApiError>;

/// The tag naming the box an instance is.
pub const DEVBOX_TAG: &str = "spindle:devbox";
// The tag naming the account that owns the box, as every instance's owner is recorded.
use spindle_model::ACCOUNT_TAG;

/// One box operation at a time, so two `up`s of one name can't both launch.
static OPS: Mutex<()> = Mutex::new(());

/// Networks tried for a box's VPC, in order; the first the host has no route into is used.
/// Boxes are isolated from each other, so they may all share one.
const CIDRS: &[&str] = &[
    "10.254.0.0/24",
    "10.253.0.0/24",
    "172.31.254.0/24",
    "192.168.254.0/24",
];

/// What a box runs when its image names no command: an idle shell that ends on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

fn check_name(name: &str) -> Res<()> {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "devbox name `{name}` is invalid: 1 to 40 of a-z, 0-9 and `-`, not starting or ending with `-`"
        )))
    }
}

fn is_box(i: &Instance, account: &str, name: Option<&str>) -> bool {
    i.state != InstanceState::Terminated
        && i.tags.get(ACCOUNT_TAG).map(String::as_str) == Some(account)
        && i.tags
            .get(DEVBOX_TAG)
            .is_some_and(|n| name.is_none_or(|want| n == want))
}

fn info(i: &Instance) -> DevboxInfo {
    DevboxInfo {
        name: i.tags.get(DEVBOX_TAG).cloned().unwrap_or_default(),
        instance_id: i.id.clone(),
        image_id: i.image_id.clone(),
        state: state_name(i.state),
        private_ip: i.private_ip.to_string(),
        vpc_id: i.vpc_id.clone(),
        mount: i.mounts.first().map(BindMount::spec),
        launched_at: i.launched_at,
    }
}

fn find(rt: &Runtime, account: &str, name: &str) -> Option<Instance> {
    rt.list()
        .into_iter()
        .find(|i| is_box(i, account, Some(name)))
}

fn missing(name: &str) -> ApiError {
    ApiError::not_found(format!("devbox `{name}` not found"))
        .with_hint("`spindle devbox list` shows the account's boxes")
}

fn runtime_err(e: RuntimeError) -> ApiError {
    ApiError::conflict(error_chain(&e))
}

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Res<T> + Send + 'static,
) -> Res<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(&format!("devbox {what} task failed: {e}")))?
}

/// The caller's account id (scoped for the call's action) and the runtime.
fn scoped(app: &App, call: &Call, account: &str, name: &str) -> Res<(Arc<Runtime>, String)> {
    let a = app.scope(call, account, format!("account/{account}/devboxes/{name}"))?;
    Ok((runtime(app)?, a.id.as_str().to_string()))
}

pub async fn list(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<DevboxInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/devboxes"))?;
    let rt = runtime(&app)?;
    let mut boxes: Vec<DevboxInfo> = rt
        .list()
        .iter()
        .filter(|i| is_box(i, a.id.as_str(), None))
        .map(info)
        .collect();
    boxes.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(Json(boxes))
}

pub async fn describe(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<DevboxInfo>> {
    let (rt, account_id) = scoped(&app, &call, &account, &name)?;
    find(&rt, &account_id, &name)
        .map(|i| Json(info(&i)))
        .ok_or_else(|| missing(&name))
}

pub async fn put(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    call: Call,
) -> Res<(StatusCode, Json<DevboxResult>)> {
    let req: PutDevbox = call.json()?;
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/devboxes/{name}"),
    )?;
    check_name(&name)?;
    let mount = match &req.mount {
        None => None,
        Some(m) => {
            if !call.caller.admin {
                return Err(ApiError::access_denied(format!(
                    "mount: a host bind mount (`{}`) needs the installation's admin credential; \
                     this credential ({}) may not ask for one",
                    m.host, call.caller.arn
                ))
                .with_hint("run `spindle devbox up` with the admin profile, or with --no-mount"));
            }
            if !peer.ip().is_loopback() {
                return Err(ApiError::bad_request(
                    "mount: the host path is on the daemon's machine; connect over loopback".into(),
                ));
            }
            Some(
                BindMount::checked(&m.host, &m.guest)
                    .map_err(|e| ApiError::bad_request(format!("mount: {e}")))?,
            )
        }
    };
    let seccomp = seccomp_profile(&app, &call, &a, req.seccomp_profile.as_deref())?;
    let rt = runtime(&app)?;
    let image = owned_image(&app, &rt, &a.id, &req.image)?;
    let itype = req.instance_type.unwrap_or_else(|| "t3.medium".into());
    let account_id = a.id.as_str().to_string();
    let res = blocking("up", move || {
        let _one = OPS.lock().unwrap_or_else(|p| p.into_inner());
        up(&rt, &account_id, &name, &image, mount, &itype, seccomp)
    })
    .await?;
    let status = if res.change == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(res)))
}

/// The profile `seccomp_profile` names (the default when absent); a wider one only if the
/// caller holds the grant, as for the `spindle:seccomp-profile` tag of a template.
fn seccomp_profile(
    app: &App,
    call: &Call,
    account: &spindle_model::api::Account,
    name: Option<&str>,
) -> Res<SeccompProfile> {
    use spindle_providers::rules::{requestable_names, requestable_profile, SECCOMP_PROFILE_GRANT};
    let Some(name) = name else {
        return Ok(SeccompProfile::Default);
    };
    let profile = requestable_profile(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "seccomp_profile: `{name}` is not a seccomp profile a box can ask for (expected one of: {})",
            requestable_names()
        ))
    })?;
    if profile != SeccompProfile::Default
        && !app
            .admin_grants(call, account)?
            .iter()
            .any(|g| g == SECCOMP_PROFILE_GRANT)
    {
        return Err(ApiError::access_denied(format!(
            "seccomp_profile: the `{name}` profile needs the grant `{SECCOMP_PROFILE_GRANT}`, which this credential ({}) doesn't hold",
            call.caller.arn
        ))
        .with_hint("only the installation's admin credential can grant it (`--allow instance:UseSeccompProfile` on a key or role)"));
    }
    Ok(profile)
}

/// Creates, starts, replaces or leaves the box. A replacement launches the new instance in the
/// box's network before the old one goes, so a failed launch leaves the old box as it was.
fn up(
    rt: &Arc<Runtime>,
    account: &str,
    name: &str,
    image: &spindle_runtime::Image,
    mount: Option<BindMount>,
    itype: &str,
    seccomp: SeccompProfile,
) -> Res<DevboxResult> {
    let mounts: Vec<BindMount> = mount.into_iter().collect();
    let old = find(rt, account, name);
    if let Some(old) = &old {
        if old.image_id == image.id
            && old.mounts == mounts
            && old.instance_type == itype
            && old.seccomp == seccomp
        {
            let (change, i) = match old.state {
                InstanceState::Stopped => ("started", rt.start(&old.id).map_err(runtime_err)?),
                _ => ("unchanged", old.clone()),
            };
            return Ok(DevboxResult {
                change: change.into(),
                devbox: info(&i),
            });
        }
    }
    let (vpc, subnet, new_net) = match &old {
        Some(o) => (o.vpc_id.clone(), o.subnet_id.clone(), false),
        None => {
            let (v, s) = network(rt)?;
            (v, s, true)
        }
    };
    let command = (image.config.entrypoint.is_empty() && image.config.cmd.is_empty())
        .then(|| vec!["/bin/sh".to_string(), "-c".into(), IDLE.into()]);
    let tags = BTreeMap::from([
        ("Name".to_string(), name.to_string()),
        (DEVBOX_TAG.to_string(), name.to_string()),
        (ACCOUNT_TAG.to_string(), account.to_string()),
    ]);
    let launched = rt.launch(LaunchSpec {
        image: image.id.clone(),
        instance_type: itype.into(),
        subnet_id: subnet,
        hostname: Some(name.into()),
        tags,
        command,
        mounts,
        seccomp,
        ..Default::default()
    });
    let new = match launched {
        Ok(i) => i,
        Err(e) => {
            if new_net {
                let _ = rt.delete_vpc(&vpc);
            }
            let err = match e {
                RuntimeError::Bind(b) => ApiError::bad_request(format!("mount: {b}")),
                other => runtime_err(other),
            };
            return Err(err);
        }
    };
    if let Some(old) = old {
        if let Err(e) = rt.terminate(&old.id, Duration::from_secs(5)) {
            // Two instances may not carry one box's name: keep the old one, as it was.
            let _ = rt.terminate(&new.id, Duration::from_secs(5));
            return Err(runtime_err(e));
        }
    }
    Ok(DevboxResult {
        change: if new_net { "created" } else { "replaced" }.into(),
        devbox: info(&new),
    })
}

/// A VPC with one subnet covering it, on the first of [`CIDRS`] the host doesn't route.
pub(crate) fn network(rt: &Runtime) -> Res<(String, String)> {
    let mut last = None;
    for cidr in CIDRS {
        match rt.create_vpc(None, cidr) {
            Ok(vpc) => {
                return match rt.create_subnet(&vpc.id, None, cidr) {
                    Ok(subnet) => Ok((vpc.id, subnet)),
                    Err(e) => {
                        let _ = rt.delete_vpc(&vpc.id);
                        Err(runtime_err(e))
                    }
                };
            }
            Err(e @ RuntimeError::Net(NetError::HostRouteCollision { .. })) => last = Some(e),
            Err(e) => return Err(runtime_err(e)),
        }
    }
    Err(ApiError::conflict(format!(
        "no network for the devbox: the host routes every candidate ({}): {}",
        CIDRS.join(", "),
        last.map(|e| error_chain(&e)).unwrap_or_default()
    )))
}

pub async fn delete(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<DevboxInfo>> {
    let (rt, account_id) = scoped(&app, &call, &account, &name)?;
    blocking("down", move || {
        let _one = OPS.lock().unwrap_or_else(|p| p.into_inner());
        let i = find(&rt, &account_id, &name).ok_or_else(|| missing(&name))?;
        let gone = rt
            .terminate(&i.id, Duration::from_secs(5))
            .map_err(runtime_err)?;
        rt.delete_vpc(&i.vpc_id).map_err(runtime_err)?;
        Ok(Json(info(&gone)))
    })
    .await
}

pub async fn exec(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<ExecResult>> {
    let req: ExecRequest = call.json()?;
    let (rt, account_id) = scoped(&app, &call, &account, &name)?;
    if req.argv.is_empty() {
        return Err(ApiError::bad_request(
            "argv: give the command to run, e.g. [\"ls\", \"/project\"]".into(),
        ));
    }
    let i = find(&rt, &account_id, &name).ok_or_else(|| missing(&name))?;
    let timeout = Duration::from_secs(u64::from(req.timeout_seconds.unwrap_or(60).clamp(1, 3600)));
    let out = blocking("exec", move || {
        rt.exec(&i.id, &req.argv, timeout).map_err(runtime_err)
    })
    .await?;
    Ok(Json(ExecResult {
        exit_code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }))
}

/// Where the box runs on this host, for `spindle devbox shell`: the CLI, as root on this
/// machine, joins the box's namespaces itself so that the shell runs on the user's own
/// terminal. Only the admin credential may ask (the route is org-only), and only from
/// loopback: the answer is about this host.
pub async fn attach(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    call: Call,
) -> Res<Json<DevboxAttach>> {
    let (rt, account_id) = scoped(&app, &call, &account, &name)?;
    if !peer.ip().is_loopback() {
        return Err(ApiError::bad_request(
            "attach: a shell joins the box on the daemon's machine; connect over loopback".into(),
        ));
    }
    let i = find(&rt, &account_id, &name).ok_or_else(|| missing(&name))?;
    let t = rt
        .attach_target(&i.id)
        .map_err(|e| runtime_err(e).with_hint("`spindle devbox up` starts a stopped box"))?;
    Ok(Json(DevboxAttach {
        instance_id: i.id.clone(),
        pid: t.pid,
        pid_start: t.pid_start,
        cgroup_procs: t
            .cgroup_procs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        mount_guest: i.mounts.first().map(|m| m.guest.clone()),
        seccomp: t.seccomp.name().to_string(),
    }))
}
