//! Route handlers for images and the runtime's doctor.

use crate::api::ApiError;
use crate::app::{now, App};
use crate::auth::Call;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_model::api::{DoctorReport, ImageInfo, ImportImage};
use std::net::SocketAddr;
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;

fn runtime(app: &App) -> Res<Arc<spindle_runtime::Runtime>> {
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
    // The daemon reads the file itself: only a client on the same machine may name one.
    if !peer.ip().is_loopback() {
        return Err(ApiError::bad_request(
            "images are imported from a path on the daemon's machine; connect over loopback".into(),
        ));
    }
    let path = std::path::PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "path `{}` must be absolute",
            req.path
        )));
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
