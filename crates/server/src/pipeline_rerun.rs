//! `POST /v1/accounts/{account}/pipeline-runs/{run}/rerun` (issue #17): a new attempt of an
//! ended run, recorded as a new run of the same commit, workflow and inputs. With `failed`
//! only the failed and cancelled jobs and what needs them run again
//! ([`spindle_pipeline::rerun::failed_and_dependents`]); the executor starts the new run with
//! the other jobs' results and outputs as they were.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_model::pipeline::{PipelineRun, RerunRun, RunStatus};
use spindle_pipeline::schedule::{JobState, JobView};

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;

/// A stored job status as the scheduler sees it.
pub fn job_state(s: RunStatus) -> JobState {
    match s {
        RunStatus::Queued => JobState::Queued,
        RunStatus::InProgress => JobState::Running,
        RunStatus::Success => JobState::Succeeded,
        RunStatus::Failure => JobState::Failed,
        RunStatus::Skipped => JobState::Skipped,
        RunStatus::Cancelled => JobState::Cancelled,
    }
}

pub async fn rerun(
    State(app): State<App>,
    Path((account, run)): Path<(String, String)>,
    call: Call,
) -> Result<(StatusCode, Json<PipelineRun>), ApiError> {
    let req: RerunRun = call.json()?;
    let acct = app.scope(&call, &account, format!("pipeline-runs/{run}"))?;
    let missing = || crate::git_handlers::run_missing(&run, &acct);
    let id: i64 = run.parse().map_err(|_| missing())?;
    let found = app.store.get_run(&acct.id, id)?.ok_or_else(missing)?;
    if !found.status.is_final() {
        return Err(ApiError::conflict(format!(
            "pipeline run {id} is still {}: only an ended run can be re-run",
            found.status
        ))
        .with_hint(format!(
            "wait for it (`spindle pipeline logs -f {id}`) or cancel it"
        )));
    }
    let again = if req.failed {
        let views: Vec<JobView<'_>> = found
            .jobs
            .iter()
            .map(|j| JobView {
                id: &j.id,
                needs: &j.needs,
                state: job_state(j.status),
            })
            .collect();
        let set = spindle_pipeline::rerun::failed_and_dependents(&views);
        if set.is_empty() {
            return Err(ApiError::conflict(format!(
                "pipeline run {id} has no failed or cancelled job to re-run"
            ))
            .with_hint("re-run all of it without --failed"));
        }
        Some(set)
    } else {
        None
    };
    let new = app
        .store
        .rerun_run(&acct.id, id, again.as_ref(), crate::app::now())?;
    crate::pipeline_runner::wake();
    let r = app
        .store
        .get_run(&acct.id, new)?
        .ok_or_else(|| ApiError::internal("the new attempt is gone"))?;
    Ok((StatusCode::CREATED, Json(r)))
}
