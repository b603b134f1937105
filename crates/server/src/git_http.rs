//! `/git/{account}/{name}.git/...`: git's smart HTTP, served by git's own `git http-backend`
//! run as a CGI per request. Request and response bodies are streamed through the process,
//! never held whole. Authentication is HTTP basic with an access key id and its secret;
//! fetching is `git:Pull` and pushing `git:Push`, decided and audited like every API call.
//! After a receive-pack that changed refs, the push's workflows are recorded as runs.

use crate::api::ApiError;
use crate::app::App;
use crate::audit::AuditCtx;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use spindle_git::cgi::{self, CgiRequest};
use spindle_git::{RepoName, Repos};
use spindle_model::Action;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The route, in the route table with no API action: the handler decides between `git:Pull`
/// and `git:Push` from the git service the request names.
pub const GIT_ROUTE: &str = "/git/{account}/{*path}";

pub async fn serve(
    State(app): State<App>,
    Path((account, path)): Path<(String, String)>,
    req: Request,
) -> Response {
    match handle(app, &account, &path, req).await {
        Ok(r) => r,
        Err(e) => {
            let unauthenticated = e.status() == StatusCode::UNAUTHORIZED;
            let mut r = e.into_response();
            if unauthenticated {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"spindle git\""),
                );
            }
            r
        }
    }
}

/// Whether the request is part of a push: receive-pack or its ref advertisement.
fn is_push(rest: &str, query: &str) -> bool {
    rest == "git-receive-pack"
        || (rest == "info/refs" && query.split('&').any(|kv| kv == "service=git-receive-pack"))
}

async fn handle(app: App, account: &str, path: &str, req: Request) -> Result<Response, ApiError> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let (repo_part, rest) = path.split_once('/').unwrap_or((path, ""));
    let action = if is_push(rest, &query) {
        Action::GitPush
    } else {
        Action::GitPull
    };
    let ctx = req
        .extensions()
        .get::<AuditCtx>()
        .cloned()
        .unwrap_or_default();
    ctx.update(|a| {
        a.action = action.as_str().to_owned();
        a.target = format!("git/{account}/{repo_part}");
    });
    let Some((user, secret)) = crate::auth::basic_credentials(req.headers()) else {
        return Err(ApiError::unauthenticated(
            "MissingAuthentication",
            "git over HTTP needs an access key id as the user and its secret as the password"
                .into(),
        )
        .with_hint("git asks for them, or put them in a credential helper"));
    };
    ctx.update(|a| a.access_key_id = Some(user.clone()));
    let caller = app.git_caller(&user, &secret).await?;
    ctx.update(|a| {
        a.principal = Some(caller.arn.clone());
        a.account_id = Some(caller.account.id.clone());
    });
    let acct = app.git_scope(&caller, account, action)?;
    ctx.update(|a| a.target_account_id = Some(acct.id.clone()));
    let missing = || {
        ApiError::not_found(format!(
            "repository `{repo_part}` not found in account {}",
            acct.name
        ))
        .with_hint("`spindle git list` shows the account's repositories; `spindle git create NAME` makes one")
    };
    let name = repo_part
        .strip_suffix(".git")
        .and_then(|n| RepoName::parse(n).ok())
        .ok_or_else(missing)?;
    let repo = app.git.repos.find(&acct.id, &name).map_err(|_| missing())?;

    // A push holds the repository's lock until its receive-pack has ended, so the refs read
    // before and after are this push's.
    let push = action == Action::GitPush && rest == "git-receive-pack";
    let lock = if push {
        Some(app.git.push_lock(&repo).lock_owned().await)
    } else {
        None
    };
    let before = if push {
        let r = repo.clone();
        Some(blocking(move || Repos::refs(&r)).await?)
    } else {
        None
    };

    let (content_type, content_length, content_encoding, git_protocol) = {
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            h("content-type"),
            h("content-length"),
            h("content-encoding"),
            h("git-protocol"),
        )
    };
    let remote_addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let path_info = format!("/{repo_part}/{rest}");
    let env = cgi::env(
        &app.git.repos.account_dir(&acct.id),
        &CgiRequest {
            method: req.method().as_str(),
            path_info: &path_info,
            query: &query,
            content_type: content_type.as_deref(),
            content_length: content_length.as_deref(),
            content_encoding: content_encoding.as_deref(),
            git_protocol: git_protocol.as_deref(),
            remote_user: caller.key_id.as_str(),
            remote_addr: &remote_addr,
        },
    );
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot run git http-backend");
            ApiError::internal(
                "cannot run `git http-backend`; is git installed on the daemon's host?",
            )
        })?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ApiError::internal("git http-backend has no pipes"));
    };

    // The request body goes to the backend as it arrives.
    let mut body = req.into_body().into_data_stream();
    tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    });
    // Its stderr is drained (a full pipe would stall it) and kept for the log.
    let errors = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut buf).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&buf).trim().to_owned()
    });

    // The head, then the rest of stdout streamed as the body.
    let mut buf = Vec::with_capacity(8 << 10);
    let head = loop {
        let mut chunk = [0u8; 8 << 10];
        let n = stdout.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            let err = errors.await.unwrap_or_default();
            tracing::error!(stderr = %err, "git http-backend ended without a response");
            return Err(ApiError::internal(&format!(
                "git http-backend gave no response: {err}"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        match cgi::parse_head(&buf) {
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "git http-backend's response is not CGI");
                return Err(ApiError::internal(&e.to_string()));
            }
        }
    };
    let rest_of_body = buf.split_off(head.body_start);
    let stream =
        tokio_util::io::ReaderStream::new(std::io::Cursor::new(rest_of_body).chain(stdout));
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in &head.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }

    // After the backend ends: a push that changed refs starts its workflows.
    let account_id = acct.id.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        let err = errors.await.unwrap_or_default();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        if !ok {
            tracing::warn!(repo = %name, status = ?status, stderr = %err, "git http-backend failed");
        }
        let Some(before) = before else { return };
        let store = app.store.clone();
        let r = repo.clone();
        let started = blocking(move || {
            let after = Repos::refs(&r)?;
            let updates = spindle_git::ref_updates(&before, &after);
            Ok::<_, spindle_git::GitError>(crate::git::on_push(
                &store,
                &account_id,
                &name,
                &r,
                &updates,
            ))
        })
        .await;
        drop(lock);
        match started {
            Ok(runs) if !runs.is_empty() => {
                tracing::info!(runs = ?runs, "push started pipeline runs");
                crate::pipeline_runner::wake();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = ?e, "cannot read the refs after a push"),
        }
    });
    Ok(resp)
}

/// Runs git plumbing off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, spindle_git::GitError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("a git task failed"))?
        .map_err(|e| {
            tracing::error!(error = %crate::api::error_chain(&e), "git failed");
            ApiError::internal(&format!("git failed: {}", crate::api::error_chain(&e)))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pushes_are_told_from_fetches_by_service() {
        for (rest, query, push) in [
            ("info/refs", "service=git-upload-pack", false),
            ("info/refs", "service=git-receive-pack", true),
            ("git-receive-pack", "", true),
            ("git-upload-pack", "", false),
            ("HEAD", "", false),
            ("info/refs", "x=1&service=git-receive-pack", true),
        ] {
            assert_eq!(super::is_push(rest, query), push, "{rest}?{query}");
        }
    }
}
