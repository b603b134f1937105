//! The checked workflow: what the reader hands the planner and the runner.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::graph::JobGraph;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    pub name: Option<String>,
    pub run_name: Option<String>,
    pub on: Triggers,
    pub env: BTreeMap<String, String>,
    pub concurrency: Option<Concurrency>,
    /// Jobs in file order.
    pub jobs: Vec<Job>,
    pub graph: JobGraph,
}

impl Workflow {
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Triggers {
    pub push: Option<PushFilter>,
    /// Cron expressions, each checked.
    pub schedule: Vec<String>,
    /// `Some` when `workflow_dispatch` is on, with its inputs.
    pub dispatch: Option<Vec<DispatchInput>>,
}

/// Glob filters of a push; an empty list means "not filtered on this".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushFilter {
    pub branches: Vec<String>,
    pub branches_ignore: Vec<String>,
    pub tags: Vec<String>,
    pub tags_ignore: Vec<String>,
    pub paths: Vec<String>,
    pub paths_ignore: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatchInput {
    pub id: String,
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
    /// `string`, `boolean`, `choice` or `number`.
    pub kind: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    pub group: String,
    /// `true`, `false` or an expression.
    pub cancel_in_progress: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    pub needs: Vec<String>,
    pub condition: Option<String>,
    pub runs_on: String,
    pub matrix: Option<MatrixPlan>,
    pub fail_fast: String,
    pub max_parallel: Option<String>,
    pub env: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub timeout_minutes: Option<String>,
    pub continue_on_error: String,
    pub concurrency: Option<Concurrency>,
    pub services: BTreeMap<String, Service>,
    pub environment: Option<String>,
    pub steps: Vec<Step>,
    /// `x-spindle-network: true`: the job's steps may open network sockets (see
    /// [`crate::runner`]); without it only Unix sockets work.
    pub network: bool,
}

/// A matrix known when the file is read, or one that an expression computes at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MatrixPlan {
    Static {
        combinations: Vec<Map<String, Value>>,
    },
    Dynamic {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: Option<String>,
    pub name: Option<String>,
    pub condition: Option<String>,
    pub action: StepAction,
    pub env: BTreeMap<String, String>,
    pub continue_on_error: String,
    pub timeout_minutes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepAction {
    Run {
        script: String,
        shell: Option<String>,
        working_directory: Option<String>,
    },
    Uses {
        action: String,
        version: Option<String>,
        with: BTreeMap<String, String>,
    },
}
