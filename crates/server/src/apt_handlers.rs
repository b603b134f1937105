//! Route handlers of the apt repository service (`repo`, `snapshot`, `publish`, `signkey`,
//! `db`), and the unauthenticated file server for published trees (`/apt/...`). Each API
//! handler scopes the call, runs one [`AptService`] operation on a blocking thread and
//! converts the result.

use crate::api::ApiError;
use crate::app::App;
use crate::apt::{AptError, AptService};
use crate::auth::Call;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use spindle_model::api::Account;
use spindle_model::apt::*;
use spindle_model::ids::AccountRef;
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;

impl From<AptError> for ApiError {
    fn from(e: AptError) -> Self {
        match e {
            AptError::Store(s) => s.into(),
            AptError::Invalid(m) => ApiError::bad_request(m),
            AptError::Conflict(m) => ApiError::conflict(m),
            AptError::NotFound(m) => ApiError::not_found(m),
            AptError::Internal(m) => {
                tracing::error!(error = %m, "apt service failure");
                ApiError::internal(&m)
            }
        }
    }
}

/// Scopes the call to `account` and runs `f` on a blocking thread.
async fn run<T: Send + 'static>(
    app: &App,
    call: &Call,
    account: &str,
    target: String,
    f: impl FnOnce(&AptService, &Account) -> Result<T, AptError> + Send + 'static,
) -> Res<T> {
    let a = app.scope(call, account, format!("account/{account}/{target}"))?;
    let svc: Arc<AptService> = app.apt.clone();
    tokio::task::spawn_blocking(move || f(&svc, &a))
        .await
        .map_err(|e| ApiError::internal(&format!("apt task failed: {e}")))?
        .map_err(Into::into)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupQuery {
    #[serde(default)]
    apply: bool,
}

pub async fn upload_package(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<PackageInfo>)> {
    let body = call.body.clone();
    let p = run(&app, &call, &account, "packages".into(), move |s, a| {
        s.upload(&a.id, &body)
    })
    .await?;
    call.set_target(format!("account/{account}/packages/{}", p.key));
    Ok((StatusCode::CREATED, Json(p)))
}

/// Many .debs in one request: the body is a tar archive of .deb files, added all or none.
pub async fn upload_packages(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<Vec<PackageInfo>>)> {
    let body = call.body.clone();
    let ps = run(&app, &call, &account, "packages".into(), move |s, a| {
        s.upload_many(&a.id, &body)
    })
    .await?;
    call.set_target(format!("account/{account}/packages ({} .debs)", ps.len()));
    Ok((StatusCode::CREATED, Json(ps)))
}

pub async fn list_repos(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<RepoInfo>>> {
    Ok(Json(
        run(&app, &call, &account, "repos".into(), |s, a| {
            s.list_repos(&a.id)
        })
        .await?,
    ))
}

pub async fn create_repo(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<RepoInfo>)> {
    let req: CreateRepo = call.json()?;
    let target = format!("repos/{}", req.name);
    let r = run(&app, &call, &account, target, move |s, a| {
        s.create_repo(&a.id, &req)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn describe_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<Json<RepoInfo>> {
    let target = format!("repos/{repo}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.describe_repo(&a.id, &repo)
        })
        .await?,
    ))
}

pub async fn drop_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let target = format!("repos/{repo}");
    run(&app, &call, &account, target, move |s, a| {
        s.drop_repo(&a.id, &repo)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_to_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<Json<RepoChange>> {
    let req: AddPackages = call.json()?;
    let target = format!("repos/{repo}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.add_to_repo(&a.id, &repo, &req.packages)
        })
        .await?,
    ))
}

pub async fn remove_from_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<Json<RepoChange>> {
    let req: PackageQuery = call.json()?;
    let target = format!("repos/{repo}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.remove_from_repo(&a.id, &repo, &req.query)
        })
        .await?,
    ))
}

async fn copy_or_move(
    app: App,
    account: String,
    repo: String,
    call: Call,
    mv: bool,
) -> Res<Json<RepoChange>> {
    let req: CopyPackages = call.json()?;
    let target = format!("repos/{repo}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.copy(&a.id, &repo, &req, mv)
        })
        .await?,
    ))
}

pub async fn copy_packages(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<Json<RepoChange>> {
    copy_or_move(app, account, repo, call, false).await
}

pub async fn move_packages(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<Json<RepoChange>> {
    copy_or_move(app, account, repo, call, true).await
}

pub async fn search_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    Query(q): Query<SearchQuery>,
    call: Call,
) -> Res<Json<Vec<PackageInfo>>> {
    let target = format!("repos/{repo}");
    let q = q.q.unwrap_or_else(|| "Name".into());
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.search_repo(&a.id, &repo, &q)
        })
        .await?,
    ))
}

pub async fn list_snapshots(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<SnapshotInfo>>> {
    Ok(Json(
        run(&app, &call, &account, "snapshots".into(), |s, a| {
            s.list_snapshots(&a.id)
        })
        .await?,
    ))
}

pub async fn create_snapshot(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<SnapshotInfo>)> {
    let req: CreateSnapshot = call.json()?;
    let name = match &req {
        CreateSnapshot::Repo { name, .. }
        | CreateSnapshot::Merge { name, .. }
        | CreateSnapshot::Filter { name, .. }
        | CreateSnapshot::Mirror { name, .. } => name.clone(),
    };
    let r = run(
        &app,
        &call,
        &account,
        format!("snapshots/{name}"),
        move |s, a| s.create_snapshot(&a.id, &req),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn describe_snapshot(
    State(app): State<App>,
    Path((account, snap)): Path<(String, String)>,
    Query(q): Query<SearchQuery>,
    call: Call,
) -> Res<Json<SnapshotInfo>> {
    let target = format!("snapshots/{snap}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.describe_snapshot(&a.id, &snap, q.q.as_deref())
        })
        .await?,
    ))
}

pub async fn diff_snapshots(
    State(app): State<App>,
    Path((account, snap, other)): Path<(String, String, String)>,
    call: Call,
) -> Res<Json<SnapshotDiffInfo>> {
    let target = format!("snapshots/{snap}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.diff_snapshots(&a.id, &snap, &other)
        })
        .await?,
    ))
}

pub async fn drop_snapshot(
    State(app): State<App>,
    Path((account, snap)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let target = format!("snapshots/{snap}");
    run(&app, &call, &account, target, move |s, a| {
        s.drop_snapshot(&a.id, &snap)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_publications(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<PublicationInfo>>> {
    Ok(Json(
        run(&app, &call, &account, "publications".into(), |s, a| {
            s.list_publications(&a.id, a.name.as_str())
        })
        .await?,
    ))
}

pub async fn create_publication(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<PublicationInfo>)> {
    let req: CreatePublication = call.json()?;
    let target = format!("publications/{}/{}", req.prefix, req.distribution);
    let r = run(&app, &call, &account, target, move |s, a| {
        s.create_publication(&a.id, a.name.as_str(), &req)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn update_publication(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<PublicationInfo>> {
    let req: PublicationRef = call.json()?;
    let target = format!("publications/{}/{}", req.prefix, req.distribution);
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.update_publication(&a.id, a.name.as_str(), &req, None)
        })
        .await?,
    ))
}

pub async fn switch_publication(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<PublicationInfo>> {
    let req: SwitchPublication = call.json()?;
    let target = format!("publications/{}/{}", req.prefix, req.distribution);
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            let r = PublicationRef {
                prefix: req.prefix.clone(),
                distribution: req.distribution.clone(),
            };
            s.update_publication(&a.id, a.name.as_str(), &r, Some(&req.snapshots))
        })
        .await?,
    ))
}

pub async fn drop_publication(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<StatusCode> {
    let req: PublicationRef = call.json()?;
    let target = format!("publications/{}/{}", req.prefix, req.distribution);
    run(&app, &call, &account, target, move |s, a| {
        s.drop_publication(&a.id, &req)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_signing_keys(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<SigningKeyInfo>>> {
    Ok(Json(
        run(&app, &call, &account, "signing-keys".into(), |s, a| {
            s.list_keys(&a.id)
        })
        .await?,
    ))
}

pub async fn create_signing_key(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<SigningKeyInfo>)> {
    let req: CreateSigningKey = call.json()?;
    let target = format!("signing-keys/{}", req.name);
    let r = run(&app, &call, &account, target, move |s, a| {
        s.create_key(&a.id, a.name.as_str(), &req)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn export_signing_key(
    State(app): State<App>,
    Path((account, key)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SigningKeyInfo>> {
    let target = format!("signing-keys/{key}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.export_key(&a.id, &key)
        })
        .await?,
    ))
}

pub async fn delete_signing_key(
    State(app): State<App>,
    Path((account, key)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let target = format!("signing-keys/{key}");
    run(&app, &call, &account, target, move |s, a| {
        s.delete_key(&a.id, &key)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_mirrors(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<MirrorInfo>>> {
    Ok(Json(
        run(&app, &call, &account, "mirrors".into(), |s, a| {
            s.list_mirrors(&a.id)
        })
        .await?,
    ))
}

pub async fn create_mirror(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<MirrorInfo>)> {
    let req: CreateMirror = call.json()?;
    let target = format!("mirrors/{}", req.name);
    let r = run(&app, &call, &account, target, move |s, a| {
        s.create_mirror(&a.id, &req)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn describe_mirror(
    State(app): State<App>,
    Path((account, mirror)): Path<(String, String)>,
    call: Call,
) -> Res<Json<MirrorInfo>> {
    let target = format!("mirrors/{mirror}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.describe_mirror(&a.id, &mirror)
        })
        .await?,
    ))
}

pub async fn update_mirror(
    State(app): State<App>,
    Path((account, mirror)): Path<(String, String)>,
    call: Call,
) -> Res<Json<MirrorInfo>> {
    let target = format!("mirrors/{mirror}");
    Ok(Json(
        run(&app, &call, &account, target, move |s, a| {
            s.update_mirror(&a.id, &mirror)
        })
        .await?,
    ))
}

pub async fn drop_mirror(
    State(app): State<App>,
    Path((account, mirror)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let target = format!("mirrors/{mirror}");
    run(&app, &call, &account, target, move |s, a| {
        s.drop_mirror(&a.id, &mirror)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn cleanup_db(
    State(app): State<App>,
    Query(q): Query<CleanupQuery>,
    call: Call,
) -> Res<Json<CleanupReport>> {
    app.check_own(&call, "apt/pool".into())?;
    let svc = app.apt.clone();
    let r = tokio::task::spawn_blocking(move || svc.cleanup(!q.apply))
        .await
        .map_err(|e| ApiError::internal(&format!("cleanup task failed: {e}")))??;
    Ok(Json(r))
}

// ---- serving published trees

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// The password of an HTTP basic `Authorization` header.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    crate::auth::basic_credentials(headers).map(|(_, password)| password)
}

/// `GET /apt/{account}/{path}`: a file of a published tree. Public prefixes answer anyone;
/// a private publication's prefix wants its read token as the basic-auth password (apt's
/// `auth.conf`). Unknown accounts and files answer the same 404.
pub async fn serve_published(
    State(app): State<App>,
    Path((account, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\'))
    {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let Some(split) = parts.iter().position(|p| *p == "dists" || *p == "pool") else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let prefix = parts[..split].join("/");
    let acct = match AccountRef::parse(&account).map(|r| app.store.find_account(&r)) {
        Ok(Ok(Some(a))) => a,
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let token = basic_password(&headers);
    let svc = app.apt.clone();
    let id = acct.id.clone();
    let found = tokio::task::spawn_blocking(move || {
        if !svc.may_read(&id, &prefix, token.as_deref())? {
            return Ok(None);
        }
        svc.open_published(&id, &path).map(|f| Some(f.ok_or(())))
    })
    .await;
    let slice = match found {
        Ok(Ok(Some(Ok(slice)))) => slice,
        Ok(Ok(Some(Err(())))) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        Ok(Ok(None)) => {
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, "Basic realm=\"spindle apt\""),
                    (header::CONTENT_TYPE, "text/plain"),
                ],
                "this repository is private: give its read token in apt's auth.conf\n",
            )
                .into_response()
        }
        _ => return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    };
    // Stream the region: a .deb may be large. A file replaced while it is read keeps its
    // old content for this reader (publishes rename, never rewrite in place; packs only
    // grow, and compaction writes a new pack).
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::from_std(slice.file);
    if f.seek(std::io::SeekFrom::Start(slice.offset))
        .await
        .is_err()
    {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    }
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f.take(slice.len)));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, slice.len.to_string()),
        ],
        body,
    )
        .into_response()
}
