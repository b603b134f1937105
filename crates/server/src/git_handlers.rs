//! The git repository and pipeline run routes: `git-repos` (create, list, drop) and
//! `pipeline-runs` (list, describe with logs).

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use spindle_git::{GitError, RepoName};
use spindle_model::api::Account;
use spindle_model::pipeline::{CreateGitRepo, GitRepo, PipelineRun};

type Res<T> = Result<T, ApiError>;

fn git_err(e: GitError) -> ApiError {
    match e {
        GitError::InvalidName { .. } => ApiError::bad_request(e.to_string()),
        GitError::Exists { .. } => ApiError::conflict(e.to_string()),
        GitError::NotFound { .. } => ApiError::not_found(e.to_string())
            .with_hint("`spindle git list` shows the account's repositories"),
        other => {
            let chain = crate::api::error_chain(&other);
            tracing::error!(error = %chain, "git failure");
            ApiError::internal(&chain)
        }
    }
}

fn name(s: &str) -> Res<RepoName> {
    RepoName::parse(s).map_err(git_err)
}

fn view(app: &App, acct: &Account, info: spindle_git::RepoInfo) -> Res<GitRepo> {
    let n = name(&info.name)?;
    Ok(GitRepo {
        clone_url: app.git.clone_url(acct, &n),
        name: info.name,
        account_id: acct.id.to_string(),
        refs: info.refs,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Res<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("a git task failed"))?
        .map_err(git_err)
}

pub async fn create_repo(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<GitRepo>)> {
    let req: CreateGitRepo = call.json()?;
    let acct = app.scope(&call, &account, format!("git-repos/{}", req.name))?;
    let n = name(&req.name)?;
    let (repos, id) = (app.git.repos.clone(), acct.id.clone());
    let info = blocking(move || repos.create(&id, &n)).await?;
    Ok((StatusCode::CREATED, Json(view(&app, &acct, info)?)))
}

pub async fn list_repos(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<GitRepo>>> {
    let acct = app.scope(&call, &account, "git-repos".into())?;
    let (repos, id) = (app.git.repos.clone(), acct.id.clone());
    let list = blocking(move || repos.list(&id)).await?;
    let list = list
        .into_iter()
        .map(|i| view(&app, &acct, i))
        .collect::<Res<_>>()?;
    Ok(Json(list))
}

pub async fn drop_repo(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let acct = app.scope(&call, &account, format!("git-repos/{repo}"))?;
    let n = name(&repo)?;
    let (repos, id) = (app.git.repos.clone(), acct.id.clone());
    blocking(move || repos.drop_repo(&id, &n)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    repo: Option<String>,
    limit: Option<u32>,
}

pub async fn list_runs(
    State(app): State<App>,
    Path(account): Path<String>,
    Query(q): Query<RunsQuery>,
    call: Call,
) -> Res<Json<Vec<PipelineRun>>> {
    let acct = app.scope(&call, &account, "pipeline-runs".into())?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(app.store.list_runs(
        &acct.id,
        q.repo.as_deref(),
        limit,
    )?))
}

/// The answer for a run the account doesn't have.
pub(crate) fn run_missing(run: &str, acct: &Account) -> ApiError {
    ApiError::not_found(format!(
        "pipeline run `{run}` not found in account {}",
        acct.name
    ))
    .with_hint("`spindle pipeline runs` lists the account's runs")
}

pub async fn describe_run(
    State(app): State<App>,
    Path((account, run)): Path<(String, String)>,
    call: Call,
) -> Res<Json<PipelineRun>> {
    let acct = app.scope(&call, &account, format!("pipeline-runs/{run}"))?;
    let missing = || run_missing(&run, &acct);
    let id: i64 = run.parse().map_err(|_| missing())?;
    Ok(Json(app.store.get_run(&acct.id, id)?.ok_or_else(missing)?))
}
