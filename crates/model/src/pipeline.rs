//! Git repositories and build pipeline runs: the API's request and response shapes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/accounts/{account}/git-repos`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateGitRepo {
    pub name: String,
}

/// One hosted repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GitRepo {
    pub name: String,
    pub account_id: String,
    /// What `git clone` and `git remote add` take; the user is an access key id, the password
    /// its secret.
    pub clone_url: String,
    /// Branches and tags → the object each names.
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
}

/// Where a run, a job or a step is. A run ends `success` or `failure`; `skipped` is a job or
/// step whose `needs` failed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    InProgress,
    Success,
    Failure,
    Skipped,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::InProgress,
        RunStatus::Success,
        RunStatus::Failure,
        RunStatus::Skipped,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::InProgress => "in_progress",
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::InProgress)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of one workflow file, started by one event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipelineRun {
    pub id: i64,
    pub account_id: String,
    pub repo: String,
    /// The workflow file's path in the repository.
    pub workflow: String,
    /// Its `name:`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `push`.
    pub event: String,
    /// `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    pub commit: String,
    pub status: RunStatus,
    /// Why a workflow file that failed to parse failed: `file:line:column: …`, every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// In file order; empty in lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<PipelineJob>,
    /// The run this one re-runs (`spindle pipeline rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<i64>,
    /// 1 for a run a push or dispatch started, one more for each re-run.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipelineJob {
    pub id: String,
    pub runs_on: String,
    #[serde(default)]
    pub needs: Vec<String>,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(default)]
    pub steps: Vec<PipelineStep>,
    /// Its result, steps and outputs were carried over from the attempt this run re-runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipelineStep {
    pub index: u32,
    pub name: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// The step's output (stdout and stderr, interleaved as written).
    #[serde(default)]
    pub log: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names_and_serde() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(RunStatus::parse("done"), None);
        assert!(!RunStatus::Queued.is_final() && RunStatus::Skipped.is_final());
    }
}

/// `POST /v1/accounts/{account}/git-repos/{repo}/dispatches`: a `workflow_dispatch` run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DispatchRun {
    /// The workflow file: its path in the repository or its name under `.github/workflows/`.
    pub workflow: String,
    /// A branch, tag or full ref; the repository's `HEAD` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

/// `POST /v1/accounts/{account}/pipeline-runs/{run}/rerun`: a new attempt of an ended run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RerunRun {
    /// Only the failed and cancelled jobs and the jobs that need them run again; the others
    /// keep their results and outputs.
    #[serde(default)]
    pub failed: bool,
}

/// `POST /v1/accounts/{account}/ui-sessions`'s answer: where a browser signs in to the web
/// page with a one-time code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UiLogin {
    /// `/ui/login?code=…`, relative to the daemon's endpoint.
    pub login_path: String,
    /// Seconds the code is good for (once).
    pub expires_in: u64,
}
