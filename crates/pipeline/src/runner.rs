//! The job executor's pure half: what a step runs (its shell command line and environment),
//! the expression contexts it sees, whether it runs at all (`if:`), what its
//! `GITHUB_OUTPUT`/`GITHUB_ENV`/`GITHUB_PATH` files said, and what the job hands to the jobs
//! that need it. The daemon's executor (`spindle-server`'s `pipeline_runner`) boots the
//! job's instance, runs what this module decides and feeds each step's result back through
//! [`JobScope::record`]; everything here is deterministic and tested without processes.
//!
//! The sandbox's layout, as steps see it (GitHub's container jobs use `/__w` too):
//! - [`WORKSPACE`]: the checkout of the pushed commit, writable, `GITHUB_WORKSPACE`;
//! - [`TEMP`]: `RUNNER_TEMP`, where the output, env and path files of each step are;
//! - [`SCRIPTS`]: the step scripts, written by the daemon, read-only to steps;
//! - `/tmp`, writable; everything else belongs to root and steps run as [`RUNNER_UID`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::eval::{self, Contexts, Status};
use crate::model::{Job, Step, StepAction};

/// The uid and gid steps run as (GitHub's hosted runners use 1001 too). Not root: the image's
/// files are root's, so the workspace, its temp directory and `/tmp` are all a step can write.
pub const RUNNER_UID: u32 = 1001;
/// Where the job's host directory is mounted in its instance.
pub const WORK_ROOT: &str = "/__w";
pub const WORKSPACE: &str = "/__w/workspace";
pub const TEMP: &str = "/__w/_temp";
pub const SCRIPTS: &str = "/__w/_steps";
/// A step's time limit when it sets none (GitHub's: 360 minutes).
pub const DEFAULT_TIMEOUT_MINUTES: f64 = 360.0;
/// At most this much of a step's log is kept; the rest is cut with a note.
pub const LOG_LIMIT: usize = 1 << 20;
/// The `PATH` of a step before `GITHUB_PATH` adds to it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a step or job ended, in GitHub's words (`steps.<id>.outcome`, `needs.<id>.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The run a job belongs to, for the `github` and `inputs` contexts and `GITHUB_*` variables.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The run's id; a re-run keeps its first attempt's (as GitHub's does).
    pub run_id: i64,
    /// 1, and one more for each re-run (`github.run_attempt`).
    pub run_attempt: u32,
    /// `account/repo`.
    pub repository: String,
    pub workflow: String,
    pub event: String,
    pub git_ref: String,
    pub sha: String,
    pub inputs: Map<String, Value>,
}

impl RunInfo {
    fn ref_name(&self) -> &str {
        self.git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| self.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&self.git_ref)
    }

    fn github(&self, job: &str) -> Value {
        json!({
            "run_id": self.run_id.to_string(),
            "run_number": self.run_id.to_string(),
            "run_attempt": self.run_attempt.to_string(),
            "repository": self.repository,
            "repository_owner": self.repository.split('/').next().unwrap_or(""),
            "workflow": self.workflow,
            "event_name": self.event,
            "ref": self.git_ref,
            "ref_name": self.ref_name(),
            "ref_type": if self.git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
            "sha": self.sha,
            "job": job,
            "workspace": WORKSPACE,
            "actor": "spindle",
            "server_url": "",
            "event": {"inputs": self.inputs.clone()},
        })
    }

    /// The `GITHUB_*` variables every step gets.
    fn variables(&self, job: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CI", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            ("SPINDLE_PIPELINE", "true".into()),
            ("GITHUB_RUN_ID", self.run_id.to_string()),
            ("GITHUB_RUN_NUMBER", self.run_id.to_string()),
            ("GITHUB_RUN_ATTEMPT", self.run_attempt.to_string()),
            ("GITHUB_REPOSITORY", self.repository.clone()),
            ("GITHUB_WORKFLOW", self.workflow.clone()),
            ("GITHUB_EVENT_NAME", self.event.clone()),
            ("GITHUB_REF", self.git_ref.clone()),
            ("GITHUB_REF_NAME", self.ref_name().to_string()),
            ("GITHUB_SHA", self.sha.clone()),
            ("GITHUB_JOB", job.to_string()),
            ("GITHUB_WORKSPACE", WORKSPACE.into()),
            ("GITHUB_ACTOR", "spindle".into()),
            ("RUNNER_TEMP", TEMP.into()),
            ("RUNNER_OS", "Linux".into()),
            ("HOME", "/tmp".into()),
        ]
    }
}

/// One job's finished result, as later jobs see it through `needs.<id>`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub result: Outcome,
    pub outputs: Map<String, Value>,
}

/// What the executor needs to run one step: already evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum StepPlan {
    /// The `if:` was false.
    Skip,
    /// Run `argv` in `workdir` with exactly `env`; the script goes to `script_path` first.
    Run {
        script: String,
        script_path: String,
        argv: Vec<String>,
        workdir: String,
        env: BTreeMap<String, String>,
        timeout_minutes: f64,
        continue_on_error: bool,
    },
    /// A built-in that needs no process: succeeds with this log line.
    Builtin { log: String },
    /// The step can't run (a bad expression, an action not executed here): fails with this.
    Fail {
        reason: String,
        continue_on_error: bool,
    },
}

/// Where a job is: the values its expressions see so far.
pub struct JobScope<'a> {
    run: &'a RunInfo,
    job: &'a Job,
    needs: Map<String, Value>,
    /// The job's `env:`, evaluated once when the job starts.
    job_env: BTreeMap<String, String>,
    /// Set by earlier steps' `GITHUB_ENV` files.
    added_env: BTreeMap<String, String>,
    /// Added by earlier steps' `GITHUB_PATH` files, the latest first.
    added_path: Vec<String>,
    steps: Map<String, Value>,
    failed: bool,
    cancelled: bool,
}

impl<'a> JobScope<'a> {
    /// The scope of `job` starting in `run`, after the jobs it needs ended as `needs` says.
    /// Fails when the job's `env:` can't be evaluated.
    pub fn new(
        run: &'a RunInfo,
        workflow_env: &BTreeMap<String, String>,
        job: &'a Job,
        needs: &BTreeMap<String, JobResult>,
    ) -> Result<Self, String> {
        let needs: Map<String, Value> = needs
            .iter()
            .filter(|(id, _)| job.needs.contains(id))
            .map(|(id, r)| {
                (
                    id.clone(),
                    json!({"result": r.result.as_str(), "outputs": r.outputs}),
                )
            })
            .collect();
        let mut scope = JobScope {
            run,
            job,
            needs,
            job_env: BTreeMap::new(),
            added_env: BTreeMap::new(),
            added_path: Vec::new(),
            steps: Map::new(),
            failed: false,
            cancelled: false,
        };
        let mut wf_env = BTreeMap::new();
        for (k, v) in workflow_env {
            let value = scope
                .with(&BTreeMap::new(), |cx| cx.interpolate(v))
                .map_err(|e| format!("env.{k}: {e}"))?;
            wf_env.insert(k.clone(), eval::to_string(&value));
        }
        scope.job_env = wf_env;
        for (k, v) in &job.env {
            let value = scope
                .with(&BTreeMap::new(), |cx| cx.interpolate(v))
                .map_err(|e| format!("jobs.{}.env.{k}: {e}", job.id))?;
            scope.job_env.insert(k.clone(), eval::to_string(&value));
        }
        Ok(scope)
    }

    /// Evaluates with the contexts as they are now, `env` being the environment a step sees.
    fn with<T>(
        &self,
        env: &BTreeMap<String, String>,
        f: impl FnOnce(&Contexts<'_>) -> Result<T, eval::EvalError>,
    ) -> Result<T, eval::EvalError> {
        let mut values = Map::new();
        values.insert("github".into(), self.run.github(&self.job.id));
        values.insert("inputs".into(), Value::Object(self.run.inputs.clone()));
        values.insert("needs".into(), Value::Object(self.needs.clone()));
        values.insert("steps".into(), Value::Object(self.steps.clone()));
        values.insert(
            "env".into(),
            Value::Object(
                env.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        values.insert("matrix".into(), json!({}));
        values.insert("vars".into(), json!({}));
        values.insert("secrets".into(), json!({}));
        let status = if self.failed { "failure" } else { "success" };
        values.insert("job".into(), json!({"status": status}));
        values.insert(
            "runner".into(),
            json!({"os": "Linux", "arch": std::env::consts::ARCH, "temp": TEMP, "name": "spindle"}),
        );
        let cx = Contexts {
            values,
            status: Status {
                failed: self.failed,
                cancelled: self.cancelled,
            },
            files: &eval::NoFiles,
        };
        f(&cx)
    }

    /// Whether the job runs at all: its `if:`, with its needs all succeeded.
    pub fn job_condition(&self) -> Result<bool, String> {
        match &self.job.condition {
            None => Ok(true),
            Some(c) => self
                .with(&self.job_env, |cx| cx.condition(c))
                .map_err(|e| format!("jobs.{}.if: {e}", self.job.id)),
        }
    }

    /// The environment of step `index` before its own `env:` (which may refer to it).
    fn base_env(&self) -> BTreeMap<String, String> {
        let mut env = self.job_env.clone();
        env.extend(self.added_env.clone());
        env
    }

    /// What step `index` runs, with everything evaluated. The job's cancellation counts as
    /// a failure for `if:` (only `always()` and `cancelled()` steps run then).
    pub fn plan(&self, index: usize) -> StepPlan {
        let step = &self.job.steps[index];
        let at = |key: &str| format!("jobs.{}.steps[{index}].{key}", self.job.id);
        let base = self.base_env();
        let condition = match &step.condition {
            None => Ok(!self.failed && !self.cancelled),
            Some(c) => self.with(&base, |cx| cx.condition(c)),
        };
        let continue_on_error = match self.with(&base, |cx| cx.interpolate(&step.continue_on_error))
        {
            Ok(v) => eval::truthy(&v) && v != Value::String("false".into()),
            Err(e) => {
                return StepPlan::Fail {
                    reason: format!("{}: {e}", at("continue-on-error")),
                    continue_on_error: false,
                }
            }
        };
        match condition {
            Ok(false) => return StepPlan::Skip,
            Ok(true) => {}
            Err(e) => {
                return StepPlan::Fail {
                    reason: format!("{}: {e}", at("if")),
                    continue_on_error,
                }
            }
        }
        let mut env = base;
        for (k, v) in &step.env {
            match self.with(&env, |cx| cx.interpolate(v)) {
                Ok(value) => {
                    env.insert(k.clone(), eval::to_string(&value));
                }
                Err(e) => {
                    return StepPlan::Fail {
                        reason: format!("{}: {e}", at(&format!("env.{k}"))),
                        continue_on_error,
                    }
                }
            }
        }
        match &step.action {
            StepAction::Uses { action, .. } if action == "actions/checkout" => StepPlan::Builtin {
                log: format!(
                    "{WORKSPACE} already holds commit {} (the job's workspace is a checkout of it)\n",
                    self.run.sha
                ),
            },
            StepAction::Uses {
                action, version, ..
            } => StepPlan::Fail {
                reason: format!(
                    "`uses: {action}{}` is not executed by this daemon yet; only actions/checkout is",
                    version.as_ref().map(|v| format!("@{v}")).unwrap_or_default()
                ),
                continue_on_error,
            },
            StepAction::Run {
                script,
                shell,
                working_directory,
            } => {
                let script = match self.with(&env, |cx| cx.interpolate(script)) {
                    Ok(v) => eval::to_string(&v),
                    Err(e) => {
                        return StepPlan::Fail {
                            reason: format!("{}: {e}", at("run")),
                            continue_on_error,
                        }
                    }
                };
                let workdir = match working_directory {
                    None => WORKSPACE.to_string(),
                    Some(w) => match self.with(&env, |cx| cx.interpolate(w)) {
                        Ok(v) => join_workdir(&eval::to_string(&v)),
                        Err(e) => {
                            return StepPlan::Fail {
                                reason: format!("{}: {e}", at("working-directory")),
                                continue_on_error,
                            }
                        }
                    },
                };
                let timeout_minutes = match &step.timeout_minutes {
                    None => DEFAULT_TIMEOUT_MINUTES,
                    Some(t) => match self.with(&env, |cx| cx.interpolate(t)) {
                        Ok(v) => {
                            let n = eval::to_number(&v);
                            if n.is_nan() || n <= 0.0 {
                                return StepPlan::Fail {
                                    reason: format!(
                                        "{}: expected a positive number of minutes, got `{}`",
                                        at("timeout-minutes"),
                                        eval::to_string(&v)
                                    ),
                                    continue_on_error,
                                };
                            }
                            n
                        }
                        Err(e) => {
                            return StepPlan::Fail {
                                reason: format!("{}: {e}", at("timeout-minutes")),
                                continue_on_error,
                            }
                        }
                    },
                };
                let ext = if shell.as_deref() == Some("python") {
                    "py"
                } else {
                    "sh"
                };
                let script_path = format!("{SCRIPTS}/step-{index}.{ext}");
                let argv = shell_argv(shell.as_deref(), &script_path);
                let env = self.step_env(index, env);
                StepPlan::Run {
                    script,
                    script_path,
                    argv,
                    workdir,
                    env,
                    timeout_minutes,
                    continue_on_error,
                }
            }
        }
    }

    /// The whole environment of a step: GitHub's variables, the workflow's, job's, earlier
    /// steps' `GITHUB_ENV`, the step's own, and `PATH` with `GITHUB_PATH` in front.
    fn step_env(&self, index: usize, own: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self
            .run
            .variables(&self.job.id)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let path = own.get("PATH").cloned().unwrap_or(DEFAULT_PATH.into());
        env.extend(own);
        let mut dirs = self.added_path.clone();
        dirs.push(path);
        env.insert("PATH".into(), dirs.join(":"));
        for (var, file) in step_files(index) {
            env.insert(var.into(), file);
        }
        env
    }

    /// Feeds back how step `index` ended and what its files said. `outcome` is before
    /// `continue-on-error`; a failure with it still lets later steps run as on success.
    pub fn record(
        &mut self,
        index: usize,
        outcome: Outcome,
        continue_on_error: bool,
        files: &StepFiles,
    ) {
        let step: &Step = &self.job.steps[index];
        let conclusion = if outcome == Outcome::Failure && continue_on_error {
            Outcome::Success
        } else {
            outcome
        };
        match conclusion {
            Outcome::Failure => self.failed = true,
            Outcome::Cancelled => self.cancelled = true,
            _ => {}
        }
        self.added_env.extend(files.env.iter().cloned());
        for p in files.path.iter() {
            self.added_path.insert(0, p.clone());
        }
        if let Some(id) = &step.id {
            let outputs: Map<String, Value> = files
                .output
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            self.steps.insert(
                id.clone(),
                json!({"outcome": outcome.as_str(), "conclusion": conclusion.as_str(), "outputs": outputs}),
            );
        }
    }

    /// Marks the job cancelled: later steps run only with `always()` or `cancelled()`.
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// How the job ended, with its `outputs:` evaluated (an output that can't be evaluated
    /// is left out and named in the second value).
    pub fn finish(&self) -> (JobResult, Vec<String>) {
        let continue_on_error = self
            .with(&self.job_env, |cx| {
                cx.interpolate(&self.job.continue_on_error)
            })
            .map(|v| eval::truthy(&v) && v != Value::String("false".into()))
            .unwrap_or(false);
        let result = if self.cancelled {
            Outcome::Cancelled
        } else if self.failed && !continue_on_error {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let mut outputs = Map::new();
        let mut problems = Vec::new();
        for (k, v) in &self.job.outputs {
            match self.with(&self.job_env, |cx| cx.interpolate(v)) {
                Ok(value) => {
                    outputs.insert(k.clone(), Value::String(eval::to_string(&value)));
                }
                Err(e) => problems.push(format!("jobs.{}.outputs.{k}: {e}", self.job.id)),
            }
        }
        (JobResult { result, outputs }, problems)
    }
}

/// `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH` and `GITHUB_STEP_SUMMARY` of step `index`.
pub fn step_files(index: usize) -> [(&'static str, String); 4] {
    [
        ("GITHUB_OUTPUT", format!("{TEMP}/output-{index}")),
        ("GITHUB_ENV", format!("{TEMP}/env-{index}")),
        ("GITHUB_PATH", format!("{TEMP}/path-{index}")),
        ("GITHUB_STEP_SUMMARY", format!("{TEMP}/summary-{index}")),
    ]
}

/// What a step's files said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFiles {
    pub output: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub path: Vec<String>,
}

impl StepFiles {
    /// Reads the three files' texts (`None`: absent). A malformed file is an error naming it
    /// and its line.
    pub fn parse(
        output: Option<&str>,
        env: Option<&str>,
        path: Option<&str>,
    ) -> Result<Self, String> {
        Ok(StepFiles {
            output: output
                .map(|t| parse_assignments(t).map_err(|e| format!("GITHUB_OUTPUT: {e}")))
                .transpose()?
                .unwrap_or_default(),
            env: env
                .map(|t| parse_assignments(t).map_err(|e| format!("GITHUB_ENV: {e}")))
                .transpose()?
                .unwrap_or_default(),
            path: path
                .map(|t| {
                    t.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// GitHub's `GITHUB_OUTPUT`/`GITHUB_ENV` format: `name=value` lines, or `name<<DELIMITER`,
/// the value's lines, then the delimiter alone on a line.
pub fn parse_assignments(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let heredoc = line.split_once("<<").filter(|(k, _)| !k.contains('='));
        if let Some((name, delim)) = heredoc {
            check_name(name, n + 1)?;
            let mut value: Vec<&str> = Vec::new();
            loop {
                match lines.next() {
                    Some((_, l)) if l == delim => break,
                    Some((_, l)) => value.push(l),
                    None => {
                        return Err(format!(
                            "line {}: `{name}<<{delim}` is not closed by a line `{delim}`",
                            n + 1
                        ))
                    }
                }
            }
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            check_name(name, n + 1)?;
            out.push((name.to_string(), value.to_string()));
        } else {
            return Err(format!(
                "line {}: expected `name=value` or `name<<DELIMITER`, got `{line}`",
                n + 1
            ));
        }
    }
    Ok(out)
}

fn check_name(name: &str, line: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("line {line}: `{name}` is not a valid name"))
    }
}

/// A `working-directory` relative to the workspace, or absolute as given.
fn join_workdir(dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{WORKSPACE}/{}", dir.trim_start_matches("./"))
    }
}

/// The command line of a step's script at `path`, as GitHub's `shell:` names it. With no
/// shell: `bash -e {0}`, or `sh -e {0}` where the image has no bash (GitHub's fallback).
pub fn shell_argv(shell: Option<&str>, path: &str) -> Vec<String> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match shell {
        None => v(&[
            "/bin/sh",
            "-c",
            "if command -v bash >/dev/null 2>&1; then exec bash -e \"$1\"; else exec sh -e \"$1\"; fi",
            "sh",
            path,
        ]),
        Some("bash") => v(&["bash", "--noprofile", "--norc", "-eo", "pipefail", path]),
        Some("python") => v(&["python3", path]),
        Some(_) => v(&["sh", "-e", path]),
    }
}

/// What the executor runs for a step's `argv`: standard error joined to standard output (one
/// log, lines in the order they were written), in `workdir`; a missing directory fails the
/// step with the shell's message.
pub fn exec_argv(argv: &[String], workdir: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "/bin/sh",
        "-c",
        "exec 2>&1; cd \"$1\" || exit 1; shift; exec \"$@\"",
        "sh",
        workdir,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(argv.iter().cloned());
    v
}

/// Keeps at most [`LOG_LIMIT`] bytes of a log (on a character boundary), noting the cut.
pub fn bounded_log(text: &str) -> String {
    if text.len() <= LOG_LIMIT {
        return text.to_string();
    }
    let mut end = LOG_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[spindle: log cut at {LOG_LIMIT} bytes; {} more bytes not kept]\n",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests;
