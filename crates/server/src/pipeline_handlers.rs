//! The pipeline routes that start and stop runs: `dispatches` (a `workflow_dispatch` run of
//! a repository's workflow at a ref, with checked inputs) and `cancel`.

use crate::api::{error_chain, ApiError};
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_git::{RepoName, Repos};
use spindle_model::pipeline::{DispatchRun, PipelineRun, RunStatus};
use spindle_pipeline::trigger;
use spindle_store::NewRun;

type Res<T> = Result<T, ApiError>;

/// The full ref `given` names in `refs` (a branch, then a tag, then a full ref), with its
/// object; `refs/heads/main` when none is given.
fn resolve_ref(
    refs: &std::collections::BTreeMap<String, String>,
    given: Option<&str>,
) -> Res<(String, String)> {
    let want = given.unwrap_or("main");
    for candidate in [
        format!("refs/heads/{want}"),
        format!("refs/tags/{want}"),
        want.to_string(),
    ] {
        if let Some(oid) = refs.get(&candidate) {
            return Ok((candidate, oid.clone()));
        }
    }
    Err(ApiError::bad_request(format!(
        "ref `{want}`: no such branch or tag in the repository"
    ))
    .with_hint("pass --ref BRANCH|TAG; `spindle git list` shows the repository's refs"))
}

pub async fn dispatch(
    State(app): State<App>,
    Path((account, repo)): Path<(String, String)>,
    call: Call,
) -> Res<(StatusCode, Json<PipelineRun>)> {
    let req: DispatchRun = call.json()?;
    let acct = app.scope(&call, &account, format!("git-repos/{repo}"))?;
    let name = RepoName::parse(&repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (store, repos, account_id) = (app.store.clone(), app.git.repos.clone(), acct.id.clone());
    let id = tokio::task::spawn_blocking(move || -> Res<i64> {
        let path = repos.find(&account_id, &name).map_err(|e| {
            ApiError::not_found(e.to_string())
                .with_hint("`spindle git list` shows the account's repositories")
        })?;
        let internal = |e: spindle_git::GitError| ApiError::internal(&error_chain(&e));
        let refs = Repos::refs(&path).map_err(internal)?;
        let (git_ref, oid) = resolve_ref(&refs, req.git_ref.as_deref())?;
        let commit = Repos::commit_of(&path, &oid).map_err(internal)?;
        let files = Repos::workflow_files(&path, &commit).map_err(internal)?;
        let wanted = |p: &str| {
            p == req.workflow || p.strip_prefix(".github/workflows/") == Some(req.workflow.as_str())
        };
        let Some((file, text)) = files.into_iter().find(|(p, _)| wanted(p)) else {
            return Err(ApiError::not_found(format!(
                "workflow `{}` not found at {git_ref} ({commit})",
                req.workflow
            ))
            .with_hint("name a file under .github/workflows/, e.g. ci.yml"));
        };
        let text = text.map_err(ApiError::bad_request)?;
        let wf = spindle_pipeline::parse(&text, &file).map_err(|d| {
            ApiError::bad_request(
                d.0.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let Some(declared) = &wf.on.dispatch else {
            return Err(ApiError::bad_request(format!(
                "{file} has no `on.workflow_dispatch`: only workflows that declare it can be dispatched"
            )));
        };
        let inputs = trigger::dispatch_inputs(declared, &req.inputs)
            .map_err(|errs| ApiError::bad_request(format!("{file}: {}", errs.join("; "))))?;
        let inputs = serde_json::Value::Object(inputs).to_string();
        Ok(store.insert_run(
            &NewRun {
                account: &account_id,
                repo: name.as_str(),
                workflow: &file,
                name: wf.name.as_deref(),
                event: "workflow_dispatch",
                git_ref: &git_ref,
                commit: &commit,
                status: RunStatus::Queued,
                diagnostics: &[],
                jobs: crate::git::new_jobs(&wf),
                inputs: &inputs,
            },
            crate::app::now(),
        )?)
    })
    .await
    .map_err(|_| ApiError::internal("the dispatch task failed"))??;
    crate::pipeline_runner::wake();
    let run = app
        .store
        .get_run(&acct.id, id)?
        .ok_or_else(|| ApiError::internal("the dispatched run is gone"))?;
    Ok((StatusCode::CREATED, Json(run)))
}

pub async fn cancel(
    State(app): State<App>,
    Path((account, run)): Path<(String, String)>,
    call: Call,
) -> Res<Json<PipelineRun>> {
    let acct = app.scope(&call, &account, format!("pipeline-runs/{run}"))?;
    let missing = || crate::git_handlers::run_missing(&run, &acct);
    let id: i64 = run.parse().map_err(|_| missing())?;
    let found = app.store.get_run(&acct.id, id)?.ok_or_else(missing)?;
    if found.status.is_final() {
        return Err(ApiError::conflict(format!(
            "pipeline run {id} already ended: {}",
            found.status
        )));
    }
    let rt = app.runtime.clone();
    let store = app.store.clone();
    let account_id = acct.id.clone();
    tokio::task::spawn_blocking(move || -> Res<()> {
        // A run is either running (its controller cancels it), or still queued (it ends here,
        // before anything of it ran); one claimed between the two checks is running by the
        // time the controller is registered, so look again briefly.
        for _ in 0..100 {
            if crate::pipeline_runner::cancel(rt.as_deref(), id)
                || store.end_queued_run(
                    id,
                    RunStatus::Cancelled,
                    "cancelled before it started",
                    crate::app::now(),
                )?
            {
                return Ok(());
            }
            if store
                .get_run(&account_id, id)?
                .is_none_or(|r| r.status.is_final())
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(ApiError::conflict(format!(
            "pipeline run {id} is starting; cancel it again in a moment"
        )))
    })
    .await
    .map_err(|_| ApiError::internal("the cancel task failed"))??;
    Ok(Json(app.store.get_run(&acct.id, id)?.ok_or_else(missing)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_resolve_as_branch_then_tag_then_full_name() {
        let refs: std::collections::BTreeMap<String, String> = [
            ("refs/heads/main", "a"),
            ("refs/heads/v1", "b"),
            ("refs/tags/v1", "c"),
            ("refs/tags/only-tag", "d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (given, want) in [
            (None, ("refs/heads/main", "a")),
            (Some("v1"), ("refs/heads/v1", "b")),
            (Some("only-tag"), ("refs/tags/only-tag", "d")),
            (Some("refs/tags/v1"), ("refs/tags/v1", "c")),
        ] {
            let got = resolve_ref(&refs, given).unwrap();
            assert_eq!((got.0.as_str(), got.1.as_str()), want, "{given:?}");
        }
        let e = resolve_ref(&refs, Some("nope")).unwrap_err();
        assert_eq!(
            e.message(),
            "ref `nope`: no such branch or tag in the repository"
        );
    }
}
