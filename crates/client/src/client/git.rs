//! Git repository and pipeline run calls (`/v1/accounts/{account}/git-repos`,
//! `/pipeline-runs`).

use super::{method, seg, Client, ClientError};
use spindle_model::pipeline::{
    CreateGitRepo, DispatchRun, GitRepo, PipelineRun, RerunRun, UiLogin,
};

impl Client {
    pub fn create_git_repo(&self, account: &str, name: &str) -> Result<GitRepo, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/git-repos", seg(account)),
            Some(&CreateGitRepo {
                name: name.to_owned(),
            }),
        )
    }

    pub fn list_git_repos(&self, account: &str) -> Result<Vec<GitRepo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/git-repos", seg(account)))
    }

    pub fn drop_git_repo(&self, account: &str, name: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/git-repos/{}", seg(account), seg(name)),
            None::<&()>,
        )
    }

    /// Newest first; only `repo`'s when given.
    pub fn list_pipeline_runs(
        &self,
        account: &str,
        repo: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<PipelineRun>, ClientError> {
        let mut q = Vec::new();
        if let Some(r) = repo {
            q.push(format!("repo={}", seg(r)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get(&format!("/v1/accounts/{}/pipeline-runs{q}", seg(account)))
    }

    /// One run with its jobs, steps and logs.
    pub fn pipeline_run(&self, account: &str, run: i64) -> Result<PipelineRun, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/pipeline-runs/{run}",
            seg(account)
        ))
    }

    /// Starts a `workflow_dispatch` run of `repo`'s workflow.
    pub fn dispatch_pipeline_run(
        &self,
        account: &str,
        repo: &str,
        req: &DispatchRun,
    ) -> Result<PipelineRun, ClientError> {
        self.call(
            method::POST,
            &format!(
                "/v1/accounts/{}/git-repos/{}/dispatches",
                seg(account),
                seg(repo)
            ),
            Some(req),
        )
    }

    /// Cancels a queued or running run.
    pub fn cancel_pipeline_run(&self, account: &str, run: i64) -> Result<PipelineRun, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/pipeline-runs/{run}/cancel", seg(account)),
            None::<&()>,
        )
    }

    /// A new attempt of an ended run (only its failed jobs and what needs them with
    /// `failed`).
    pub fn rerun_pipeline_run(
        &self,
        account: &str,
        run: i64,
        req: &RerunRun,
    ) -> Result<PipelineRun, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/pipeline-runs/{run}/rerun", seg(account)),
            Some(req),
        )
    }

    /// A one-time sign-in code for the web page, for this credential in `account`.
    pub fn create_ui_session(&self, account: &str) -> Result<UiLogin, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/ui-sessions", seg(account)),
            None::<&()>,
        )
    }
}
