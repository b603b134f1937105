//! `/ui/`: the daemon's web page of build pipelines (issue #17 item 4). Plain HTML from
//! [`pages`], a stylesheet and a little JavaScript embedded in the binary (no build step);
//! it works without JavaScript for reading, and follows a running run's logs live through
//! the same event stream as `spindle pipeline logs -f` ([`crate::pipeline_logs`]).
//!
//! Signing in: `spindle ui` asks `POST /v1/accounts/{account}/ui-sessions` (a signed,
//! audited API call) for a one-time code, good once for [`CODE_TTL`], and prints
//! `/ui/login?code=…`. That page posts the code back (a form; `ui.js` submits it at once) and
//! the answer sets an HttpOnly, `SameSite=Strict` session cookie scoped to `/ui`; the access
//! key never appears in a URL and the browser never holds it. Each request re-reads the key
//! behind the session (so a revoked or expired key signs the browser out) and goes through
//! the same scope, grant and audit checks as the CLI's call for the same thing; cancel and
//! re-run call the API's own handlers. Forms that change something carry the session's CSRF
//! token, and a cross-origin `Origin` is refused.
//!
//! Sessions live in the daemon's memory: a restart signs browsers out. The daemon serves
//! plain HTTP on loopback, so the cookie is not marked `Secure`.

// A refusal here is the page the handler answers with, returned as it is; boxing it would
// only move the allocation.
#![allow(clippy::result_large_err)]

mod pages;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use spindle_model::api::Account;
use spindle_model::pipeline::UiLogin;
use spindle_model::{AccessKeyId, AccountId, Action};

use crate::api::{ApiError, ErrorCode};
use crate::app::App;
use crate::audit::AuditCtx;
use crate::auth::Call;

/// How long a sign-in code is good for (once).
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a browser stays signed in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const COOKIE: &str = "spindle_ui";
/// The largest form a page posts.
const MAX_FORM: usize = 4096;

/// A code `spindle ui` was given, not used yet.
struct Pending {
    key_id: AccessKeyId,
    account: AccountId,
    account_name: String,
    expires: Instant,
}

/// A signed-in browser.
#[derive(Clone)]
struct Session {
    key_id: AccessKeyId,
    account: AccountId,
    account_name: String,
    csrf: String,
    expires: Instant,
}

/// Codes and sessions by the SHA-256 of their secret (the secrets themselves are not kept).
#[derive(Default)]
struct Sessions {
    codes: HashMap<String, Pending>,
    sessions: HashMap<String, Session>,
}

static SESSIONS: LazyLock<Mutex<Sessions>> = LazyLock::new(Default::default);

fn sessions() -> std::sync::MutexGuard<'static, Sessions> {
    SESSIONS.lock().unwrap_or_else(|p| p.into_inner())
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The web page's routes, outside the signed API (merged into the daemon's router, under its
/// audit layer).
pub fn router() -> Router<App> {
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/runs") }))
        .route("/ui/", get(|| async { see_other("/ui/runs") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/workflows", get(workflows))
        .route("/ui/runs", get(runs))
        .route("/ui/runs/{run}", get(run))
        .route("/ui/runs/{run}/events", get(events))
        .route("/ui/runs/{run}/cancel", post(cancel))
        .route("/ui/runs/{run}/rerun", post(rerun))
        .route("/ui/assets/{file}", get(asset))
}

/// `POST /v1/accounts/{account}/ui-sessions`: a one-time sign-in code for the caller's key in
/// `account`.
pub async fn create_session(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Result<(StatusCode, Json<UiLogin>), ApiError> {
    let acct = app.scope(&call, &account, "ui-sessions".into())?;
    let code = secret();
    let now = Instant::now();
    let mut s = sessions();
    s.codes.retain(|_, p| p.expires > now);
    s.sessions.retain(|_, x| x.expires > now);
    s.codes.insert(
        digest(&code),
        Pending {
            key_id: call.caller.key_id.clone(),
            account: acct.id.clone(),
            account_name: acct.name.to_string(),
            expires: now + CODE_TTL,
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(UiLogin {
            login_path: format!("/ui/login?code={code}"),
            expires_in: CODE_TTL.as_secs(),
        }),
    ))
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// An HTML page with the headers every page carries.
fn html(status: StatusCode, title: &str, who: &str, body: &str) -> Response {
    let mut r = (status, pages::layout(title, who, body)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with no referrer Chromium posts a form with
    // `Origin: null`, which `same_origin` refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An API error as a page, keeping its code for the audit log.
fn error_page(e: ApiError) -> Response {
    let mut r = html(
        e.status(),
        "Error",
        "",
        &pages::message(e.code(), e.message(), None),
    );
    r.extensions_mut().insert(ErrorCode {
        code: e.code().to_owned(),
        denied: e.is_denial(),
    });
    r
}

fn signed_out(why: &str) -> Response {
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        "Sign in",
        "",
        &pages::message(
            "Sign in",
            why,
            Some("Run `spindle ui` and open the URL it prints (it is good once, for a minute)."),
        ),
    );
    r.extensions_mut().insert(ErrorCode {
        code: "NotSignedIn".into(),
        denied: true,
    });
    r
}

/// A signed-in request: the call it makes (the session's key, as the CLI would make it) and
/// the session.
struct Ui {
    call: Call,
    session: Session,
}

impl Ui {
    fn who(&self) -> String {
        format!("{} · {}", self.session.account_name, self.session.key_id)
    }

    /// The session's account, checked for the call's action as the API checks it.
    fn scope(&self, app: &App, target: String) -> Result<Account, Response> {
        app.scope(&self.call, self.session.account.as_str(), target)
            .map_err(error_page)
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("spindle_ui=").map(str::to_owned))
}

/// The session of this request, its key checked again, doing `action` with `body`.
fn signed_in(
    app: &App,
    headers: &HeaderMap,
    ctx: &AuditCtx,
    action: Action,
    body: Bytes,
) -> Result<Ui, Response> {
    ctx.update(|a| a.action = action.as_str().to_owned());
    let Some(token) = cookie(headers) else {
        return Err(signed_out("You are not signed in."));
    };
    let session = {
        let mut s = sessions();
        let key = digest(&token);
        match s.sessions.get(&key) {
            Some(x) if x.expires > Instant::now() => x.clone(),
            Some(_) => {
                s.sessions.remove(&key);
                return Err(signed_out("Your session has expired."));
            }
            None => {
                return Err(signed_out(
                    "This browser's session is not known (the daemon may have restarted).",
                ))
            }
        }
    };
    ctx.update(|a| a.access_key_id = Some(session.key_id.to_string()));
    let key = app
        .store
        .get_key(&session.key_id)
        .map_err(|e| error_page(e.into()))?
        .ok_or_else(|| error_page(app.invalid_key(&session.key_id)))?;
    let caller = app
        .caller_for_key(key, crate::app::now())
        .map_err(error_page)?;
    ctx.update(|a| {
        a.principal = Some(caller.arn.clone());
        a.account_id = Some(caller.account.id.clone());
    });
    Ok(Ui {
        call: Call::new(caller, action, body, ctx.clone()),
        session,
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    code: String,
    next: Option<String>,
}

/// Where to go after signing in: a page of this UI, nothing else.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/ui/runs".to_owned(),
    }
}

/// `GET /ui/login?code=…`: asks to sign in with a code (it is used only when posted, so a
/// link preview doesn't burn it).
async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let pending = sessions()
        .codes
        .get(&digest(&q.code))
        .filter(|p| p.expires > Instant::now())
        .map(|p| (p.account_name.clone(), p.key_id.to_string()));
    match pending {
        Some((account, key)) => html(
            StatusCode::OK,
            "Sign in",
            "",
            &pages::sign_in(&q.code, &next_page(q.next.as_deref()), &account, &key),
        ),
        None => signed_out("This sign-in link was used already or has expired."),
    }
}

fn form<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    if body.len() > MAX_FORM {
        return Err(error_page(ApiError::payload_too_large(MAX_FORM)));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| error_page(ApiError::bad_request(format!("form: {e}"))))
}

#[derive(Deserialize)]
struct LoginForm {
    code: String,
    next: Option<String>,
}

/// `POST /ui/login`: trades a code for a session cookie (audited as `ui:SignIn`).
async fn login(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ctx.update(|a| {
        a.action = "ui:SignIn".into();
        a.target = "ui-sessions".into();
    });
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let f: LoginForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(p) = sessions().codes.remove(&digest(&f.code)) else {
        return signed_out("This sign-in link was used already or has expired.");
    };
    if p.expires <= Instant::now() {
        return signed_out("This sign-in link has expired.");
    }
    ctx.update(|a| a.access_key_id = Some(p.key_id.to_string()));
    // The key must still be good (not revoked or expired since `spindle ui`).
    let caller = match app.store.get_key(&p.key_id) {
        Ok(Some(key)) => app.caller_for_key(key, crate::app::now()),
        Ok(None) => Err(app.invalid_key(&p.key_id)),
        Err(e) => Err(e.into()),
    };
    match caller {
        Ok(c) => ctx.update(|a| {
            a.principal = Some(c.arn.clone());
            a.account_id = Some(c.account.id.clone());
            a.target_account_id = Some(p.account.clone());
        }),
        Err(e) => return error_page(e),
    }
    let token = secret();
    sessions().sessions.insert(
        digest(&token),
        Session {
            key_id: p.key_id,
            account: p.account,
            account_name: p.account_name,
            csrf: secret(),
            expires: Instant::now() + SESSION_TTL,
        },
    );
    let mut r = see_other(&next_page(f.next.as_deref()));
    let c = format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Refuses a request whose `Origin` is another site (the cookie's `SameSite=Strict` already
/// keeps it off such requests; this is the second lock).
fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if origin_host == host {
        Ok(())
    } else {
        Err(error_page(
            ApiError::access_denied(format!("a form posted from `{origin}`")).denied(),
        ))
    }
}

/// A posted form of a signed-in page: its origin and CSRF token checked.
fn checked_post(
    app: &App,
    headers: &HeaderMap,
    ctx: &AuditCtx,
    action: Action,
    body: &[u8],
    api_body: Bytes,
) -> Result<Ui, Response> {
    same_origin(headers)?;
    let ui = signed_in(app, headers, ctx, action, api_body)?;
    #[derive(Deserialize)]
    struct Token {
        csrf: String,
        #[serde(rename = "failed")]
        _failed: Option<String>,
    }
    let t: Token = form(body)?;
    if !crate::git::constant_eq(t.csrf.as_bytes(), ui.session.csrf.as_bytes()) {
        return Err(error_page(
            ApiError::access_denied("the form's CSRF token is not this session's".into()).denied(),
        ));
    }
    Ok(ui)
}

#[derive(Deserialize)]
struct RunsQuery {
    repo: Option<String>,
}

async fn runs(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Response {
    let page = async {
        let ui = signed_in(&app, &headers, &ctx, Action::ListPipelineRuns, Bytes::new())?;
        let acct = ui.scope(&app, "pipeline-runs".into())?;
        let list = app
            .store
            .list_runs(&acct.id, q.repo.as_deref(), 100)
            .map_err(|e| error_page(e.into()))?;
        Ok::<_, Response>(html(
            StatusCode::OK,
            "Runs",
            &ui.who(),
            &pages::runs(&list, q.repo.as_deref()),
        ))
    };
    page.await.unwrap_or_else(|r| r)
}

async fn workflows(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
) -> Response {
    let page = async {
        let ui = signed_in(
            &app,
            &headers,
            &ctx,
            Action::ListGitRepositories,
            Bytes::new(),
        )?;
        let acct = ui.scope(&app, "git-repos".into())?;
        let repos = app.git.repos.clone();
        let id = acct.id.clone();
        let list = tokio::task::spawn_blocking(move || workflow_files(&repos, &id))
            .await
            .map_err(|_| error_page(ApiError::internal("the workflows task failed")))?
            .map_err(error_page)?;
        Ok::<_, Response>(html(
            StatusCode::OK,
            "Workflows",
            &ui.who(),
            &pages::workflows(&list),
        ))
    };
    page.await.unwrap_or_else(|r| r)
}

type RepoWorkflows = Vec<(String, Result<Vec<String>, String>)>;

/// Each repository's workflow files at `main`.
fn workflow_files(
    repos: &spindle_git::Repos,
    account: &AccountId,
) -> Result<RepoWorkflows, ApiError> {
    let list = repos
        .list(account)
        .map_err(|e| ApiError::internal(&crate::api::error_chain(&e)))?;
    Ok(list
        .into_iter()
        .map(|info| {
            let files = (|| -> Result<Vec<String>, String> {
                let Some(oid) = info.refs.get("refs/heads/main") else {
                    return Ok(Vec::new());
                };
                let name = spindle_git::RepoName::parse(&info.name).map_err(|e| e.to_string())?;
                let path = repos.find(account, &name).map_err(|e| e.to_string())?;
                let commit =
                    spindle_git::Repos::commit_of(&path, oid).map_err(|e| e.to_string())?;
                let files = spindle_git::Repos::workflow_files(&path, &commit)
                    .map_err(|e| crate::api::error_chain(&e))?;
                Ok(files.into_iter().map(|(p, _)| p).collect())
            })();
            (info.name, files)
        })
        .collect())
}

/// The run `run` of the session's account, for `action`.
fn find_run(
    app: &App,
    ui: &Ui,
    run: &str,
) -> Result<spindle_model::pipeline::PipelineRun, Response> {
    let acct = ui.scope(app, format!("pipeline-runs/{run}"))?;
    let missing = || error_page(crate::git_handlers::run_missing(run, &acct));
    let id: i64 = run.parse().map_err(|_| missing())?;
    app.store
        .get_run(&acct.id, id)
        .map_err(|e| error_page(e.into()))?
        .ok_or_else(missing)
}

async fn run(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    Path(run): Path<String>,
) -> Response {
    let page = async {
        let ui = signed_in(
            &app,
            &headers,
            &ctx,
            Action::DescribePipelineRun,
            Bytes::new(),
        )?;
        let r = find_run(&app, &ui, &run)?;
        let title = format!("Run #{}", r.id);
        Ok::<_, Response>(html(
            StatusCode::OK,
            &title,
            &ui.who(),
            &pages::run(&r, &ui.session.csrf),
        ))
    };
    page.await.unwrap_or_else(|r| r)
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// `GET /ui/runs/{run}/events`: the run's live log for the page (the API's stream).
async fn events(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    Path(run): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let page = async {
        let ui = signed_in(
            &app,
            &headers,
            &ctx,
            Action::DescribePipelineRun,
            Bytes::new(),
        )?;
        let r = find_run(&app, &ui, &run)?;
        let cursor = crate::pipeline_logs::resume_from(&headers, q.last_event_id.as_deref())
            .map_err(error_page)?;
        Ok::<_, Response>(crate::pipeline_logs::stream(
            app.store.clone(),
            r.id,
            None,
            cursor,
        ))
    };
    page.await.unwrap_or_else(|r| r)
}

/// `POST /ui/runs/{run}/cancel`: the API's cancel, as the session's key.
async fn cancel(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    Path(run): Path<String>,
    body: Bytes,
) -> Response {
    let page = async {
        let ui = checked_post(
            &app,
            &headers,
            &ctx,
            Action::CancelPipelineRun,
            &body,
            Bytes::new(),
        )?;
        let account = ui.session.account.to_string();
        let _ended = crate::pipeline_handlers::cancel(
            State(app.clone()),
            Path((account, run.clone())),
            ui.call,
        )
        .await
        .map_err(error_page)?;
        Ok::<_, Response>(see_other(&format!("/ui/runs/{run}")))
    };
    page.await.unwrap_or_else(|r| r)
}

/// `POST /ui/runs/{run}/rerun` (`failed=1` for the failed jobs only): the API's re-run, as
/// the session's key; then the new run's page.
async fn rerun(
    State(app): State<App>,
    Extension(ctx): Extension<AuditCtx>,
    headers: HeaderMap,
    Path(run): Path<String>,
    body: Bytes,
) -> Response {
    let page = async {
        #[derive(Deserialize)]
        struct Failed {
            failed: Option<String>,
        }
        let f: Failed = form(&body)?;
        let req = spindle_model::pipeline::RerunRun {
            failed: f.failed.is_some_and(|v| v == "1"),
        };
        let api_body = Bytes::from(serde_json::to_vec(&req).unwrap_or_default());
        let ui = checked_post(
            &app,
            &headers,
            &ctx,
            Action::RerunPipelineRun,
            &body,
            api_body,
        )?;
        let account = ui.session.account.to_string();
        let (_, Json(new)) =
            crate::pipeline_rerun::rerun(State(app.clone()), Path((account, run)), ui.call)
                .await
                .map_err(error_page)?;
        Ok::<_, Response>(see_other(&format!("/ui/runs/{}", new.id)))
    };
    page.await.unwrap_or_else(|r| r)
}

/// The stylesheet and script, embedded.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.js" => (include_str!("ui.js"), "text/javascript; charset=utf-8"),
        "ui.css" => (include_str!("ui.css"), "text/css; charset=utf-8"),
        _ => return error_page(ApiError::not_found(format!("no asset `{file}`"))),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_sign_in_only_pages_of_this_ui_are_followed() {
        for (given, want) in [
            (None, "/ui/runs"),
            (Some("/ui/runs/5"), "/ui/runs/5"),
            (Some("https://evil.example/"), "/ui/runs"),
            (Some("/ui//evil.example"), "/ui/runs"),
            (Some("/ui/\\evil"), "/ui/runs"),
            (Some("/v1/accounts"), "/ui/runs"),
            (Some("/ui/runs\r\nSet-Cookie: x"), "/ui/runs"),
        ] {
            assert_eq!(next_page(given), want, "{given:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h), None);
        h.append(header::COOKIE, "a=1; spindle_ui=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:7420".parse().unwrap());
        assert!(
            same_origin(&h).is_ok(),
            "no Origin: a same-site form or a tool"
        );
        h.insert(header::ORIGIN, "http://127.0.0.1:7420".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        let r = same_origin(&h).unwrap_err();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}
