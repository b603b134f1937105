//! The pipeline executor (issue #17 item 3): the daemon's thin I/O edge around
//! `spindle_pipeline::schedule` (which jobs start or are skipped next) and
//! `spindle_pipeline::runner` (what each step runs and sees).
//!
//! A task polls the store for queued runs (a push wakes it at once, see [`wake`]) and drives
//! each run: every job runs in a FRESH instance of its `runs-on` image, in a VPC of its own,
//! with the job's host directory (`DATA_DIR/pipelines/jobs/r<run>-<job>`) bind-mounted at
//! `/__w`: the workspace (an export of the pushed commit), the step scripts and the step
//! files. Steps run through [`spindle_runtime::Runtime::exec_as`] as uid/gid 1001 with
//! exactly the environment the runner module computed, under the instance's cgroup limits and
//! seccomp filter: `offline` (no socket but `AF_UNIX`) unless the job sets
//! `x-spindle-network: true`. Each step's status, exit code, timestamps and log are written
//! as they happen. The instance, its VPC and the job's directory go when the job ends, however
//! it ends ([`Sandbox`]'s `Drop`); a daemon start sweeps what a killed daemon left.
//!
//! The daemon only trusts what it wrote: step files are read without following links and
//! bounded, scripts go to a directory steps can't write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use spindle_git::{RepoName, Repos};
use spindle_model::ids::AccountRef;
use spindle_model::pipeline::{PipelineRun, RunStatus};
use spindle_model::{AccountId, ACCOUNT_TAG};
use spindle_pipeline::logs::StepLog;
use spindle_pipeline::runner::{
    self, JobResult, JobScope, Outcome, RunInfo, StepFiles, StepPlan, RUNNER_UID,
};
use spindle_pipeline::schedule::{self, JobState, JobView, Next};
use spindle_pipeline::{Job, Workflow};
use spindle_runtime::{BindMount, ExecUser, LaunchSpec, Runtime, SeccompProfile};
use spindle_store::Store;
use tokio::sync::Notify;

use crate::app::App;

/// The tag naming the pipeline run a job's instance belongs to.
pub const JOB_TAG: &str = "spindle:pipeline-job";
/// How often queued runs are looked for when no push wakes the task.
const POLL: Duration = Duration::from_millis(500);
/// Jobs of one run that run at once (the machine's cores are shared with everything else).
const MAX_PARALLEL: usize = 4;
/// A job instance's type: its cgroup limits.
const INSTANCE_TYPE: &str = "t3.small";
/// A job's instance idles until its steps are run in it.
const IDLE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
/// At most this much of a step file is read.
const FILE_LIMIT: u64 = 1 << 20;

static WAKE: Notify = Notify::const_new();

/// Runs being executed, for cancellation and shutdown.
static ACTIVE: LazyLock<Mutex<HashMap<i64, Arc<RunCtl>>>> = LazyLock::new(Default::default);

/// Starts looking for queued runs now rather than at the next poll (after a push).
pub fn wake() {
    WAKE.notify_one();
}

/// One run's controls: cancelled, and the instances its jobs run in.
#[derive(Default)]
pub struct RunCtl {
    cancelled: AtomicBool,
    instances: Mutex<BTreeSet<String>>,
}

/// Asks a running run to stop: its jobs' instances are terminated (the running step ends),
/// later steps and jobs don't start. `false` if the run is not being executed here.
pub fn cancel(rt: Option<&Runtime>, run: i64) -> bool {
    let ctl = ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&run)
        .cloned();
    let Some(ctl) = ctl else { return false };
    ctl.cancelled.store(true, Ordering::SeqCst);
    if let Some(rt) = rt {
        let ids: Vec<String> = ctl
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for id in ids {
            let _ = rt.terminate(&id, Duration::from_secs(1));
        }
    }
    true
}

/// The executor's task.
pub struct Runner {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Runner {
    /// Cancels every run in progress (each ends `cancelled`, its sandboxes removed) and
    /// waits at most `grace` for them.
    pub async fn stop(self, rt: Option<&Runtime>, grace: Duration) {
        let _ = self.stop.send(true);
        let runs: Vec<i64> = ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        for r in runs {
            cancel(rt, r);
        }
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// Starts the executor: first removes what a killed daemon's jobs left (instances, their
/// networks, job directories), then runs queued runs as they come.
pub fn spawn(app: App) -> Runner {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        if let Some(rt) = app.runtime.clone() {
            let dir = jobs_dir(&app.store);
            let _ = tokio::task::spawn_blocking(move || sweep(&rt, &dir)).await;
        }
        let mut runs = tokio::task::JoinSet::new();
        loop {
            let store = app.store.clone();
            let queued = tokio::task::spawn_blocking(move || store.queued_runs()).await;
            match queued {
                Ok(Ok(list)) => {
                    for run in list {
                        let ctl = {
                            let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
                            if active.contains_key(&run.id) {
                                continue;
                            }
                            let ctl = Arc::new(RunCtl::default());
                            active.insert(run.id, ctl.clone());
                            ctl
                        };
                        let app = app.clone();
                        runs.spawn(async move {
                            let id = run.id;
                            execute(app, run, ctl).await;
                            ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        });
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %crate::api::error_chain(&e), "cannot list queued pipeline runs")
                }
                Err(e) => tracing::error!(error = %e, "pipeline poll task failed"),
            }
            while runs.try_join_next().is_some() {}
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
        while runs.join_next().await.is_some() {}
    });
    Runner { task, stop }
}

fn jobs_dir(store: &Store) -> PathBuf {
    store
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .join("pipelines/jobs")
}

/// Terminates job instances and removes job directories a previous daemon left.
fn sweep(rt: &Runtime, dir: &Path) {
    for i in rt.list() {
        if i.tags.contains_key(JOB_TAG) {
            tracing::warn!(instance = %i.id, "removing a pipeline job's instance a stopped daemon left");
            let _ = rt.terminate(&i.id, Duration::from_secs(1));
            let _ = rt.delete_vpc(&i.vpc_id);
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn now() -> time::OffsetDateTime {
    crate::app::now()
}

/// Everything a run's jobs share.
struct RunEnv {
    store: Arc<Store>,
    rt: Arc<Runtime>,
    run: PipelineRun,
    account: AccountId,
    info: RunInfo,
    repo: PathBuf,
    jobs_dir: PathBuf,
    ctl: Arc<RunCtl>,
}

/// Drives one run from queued to its end.
async fn execute(app: App, run: PipelineRun, ctl: Arc<RunCtl>) {
    let store = app.store.clone();
    let id = run.id;
    let prepared = {
        let app = app.clone();
        let ctl = ctl.clone();
        tokio::task::spawn_blocking(move || prepare(&app, run, ctl))
            .await
            .unwrap_or_else(|e| Err(format!("the run's task failed: {e}")))
    };
    let (env, wf) = match prepared {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(reason) => {
            tracing::warn!(run = id, %reason, "pipeline run cannot start");
            let _ = tokio::task::spawn_blocking(move || {
                store.end_run(id, RunStatus::Failure, &reason, now())
            })
            .await;
            return;
        }
    };
    let env = Arc::new(env);
    let wf = Arc::new(wf);
    let started = Instant::now();
    let mut states: Vec<JobState> = vec![JobState::Queued; wf.jobs.len()];
    let mut results: BTreeMap<String, JobResult> = BTreeMap::new();
    // A re-run of failed jobs starts with the jobs it reuses already ended, their outputs
    // as the earlier attempt recorded them.
    let store = env.store.clone();
    let done = tokio::task::spawn_blocking(move || store.job_outcomes(id)).await;
    for o in done.ok().and_then(Result::ok).unwrap_or_default() {
        let Some(i) = wf.jobs.iter().position(|j| j.id == o.job) else {
            continue;
        };
        if !o.status.is_final() {
            continue;
        }
        states[i] = crate::pipeline_rerun::job_state(o.status);
        let outputs = serde_json::from_str(&o.outputs).unwrap_or_default();
        let result = match o.status {
            RunStatus::Success => Outcome::Success,
            RunStatus::Skipped => Outcome::Skipped,
            RunStatus::Cancelled => Outcome::Cancelled,
            _ => Outcome::Failure,
        };
        results.insert(o.job, JobResult { result, outputs });
    }
    let mut running = tokio::task::JoinSet::new();
    loop {
        if env.ctl.cancelled.load(Ordering::SeqCst) {
            for (i, s) in states.iter_mut().enumerate() {
                if *s == JobState::Queued {
                    *s = JobState::Cancelled;
                    skip_job(&env.store, id, &wf.jobs[i], RunStatus::Cancelled);
                }
            }
        }
        let views: Vec<JobView<'_>> = wf
            .jobs
            .iter()
            .zip(&states)
            .map(|(j, s)| JobView {
                id: &j.id,
                needs: &j.needs,
                state: *s,
            })
            .collect();
        let next = schedule::next(&views, MAX_PARALLEL);
        drop(views);
        for n in next {
            match n {
                Next::Skip { job, because } => {
                    let i = wf.jobs.iter().position(|j| j.id == job).unwrap_or(0);
                    states[i] = JobState::Skipped;
                    tracing::info!(run = id, job = %job, needs = %because, "job skipped");
                    skip_job(&env.store, id, &wf.jobs[i], RunStatus::Skipped);
                    results.insert(
                        job,
                        JobResult {
                            result: Outcome::Skipped,
                            outputs: Default::default(),
                        },
                    );
                }
                Next::Start(job) => {
                    let i = wf.jobs.iter().position(|j| j.id == job).unwrap_or(0);
                    states[i] = JobState::Running;
                    let (env, wf, needs) = (env.clone(), wf.clone(), results.clone());
                    running.spawn_blocking(move || {
                        let r = run_job(&env, &wf, i, &needs);
                        (i, r)
                    });
                }
            }
        }
        let views: Vec<JobView<'_>> = wf
            .jobs
            .iter()
            .zip(&states)
            .map(|(j, s)| JobView {
                id: &j.id,
                needs: &j.needs,
                state: *s,
            })
            .collect();
        if let Some(end) = schedule::outcome(&views) {
            let status = if env.ctl.cancelled.load(Ordering::SeqCst) {
                RunStatus::Cancelled
            } else if end == JobState::Succeeded {
                RunStatus::Success
            } else {
                RunStatus::Failure
            };
            let store = env.store.clone();
            let _ =
                tokio::task::spawn_blocking(move || store.set_run_status(id, status, now())).await;
            crate::pipeline_logs::changed(id);
            tracing::info!(run = id, %status, ms = started.elapsed().as_millis() as u64, "pipeline run ended");
            return;
        }
        drop(views);
        match running.join_next().await {
            Some(Ok((i, r))) => {
                states[i] = match r.result {
                    Outcome::Success => JobState::Succeeded,
                    Outcome::Failure => JobState::Failed,
                    Outcome::Cancelled => JobState::Cancelled,
                    Outcome::Skipped => JobState::Skipped,
                };
                results.insert(wf.jobs[i].id.clone(), r);
            }
            Some(Err(e)) => {
                // A job's thread panicked: its sandbox went with it (Drop); end the run.
                tracing::error!(run = id, error = %e, "a pipeline job's task failed");
                let store = env.store.clone();
                let reason = format!("a job's task failed: {e}");
                let _ = tokio::task::spawn_blocking(move || {
                    store.end_run(id, RunStatus::Failure, &reason, now())
                })
                .await;
                return;
            }
            None => {
                // Nothing runs and nothing can start: the scheduler would have ended it.
                let store = env.store.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    store.end_run(id, RunStatus::Failure, "no job can start", now())
                })
                .await;
                return;
            }
        }
    }
}

/// The run's workflow (re-read from the commit, as pushed) and what its jobs share.
/// `None` when the run is no longer queued (it was cancelled meanwhile).
fn prepare(
    app: &App,
    run: PipelineRun,
    ctl: Arc<RunCtl>,
) -> Result<Option<(RunEnv, Workflow)>, String> {
    let rt = app.runtime.clone().ok_or_else(|| {
        "pipeline jobs run in instances, and the instance runtime is off on this daemon \
         (run `spindle server` as root, without --no-runtime)"
            .to_string()
    })?;
    let account = AccountId::parse(&run.account_id)
        .map_err(|e| format!("account id `{}`: {e}", run.account_id))?;
    let account_name = app
        .store
        .find_account(&AccountRef::Id(account.clone()))
        .ok()
        .flatten()
        .map(|a| a.name.to_string())
        .unwrap_or_else(|| run.account_id.clone());
    let name = RepoName::parse(&run.repo).map_err(|e| format!("repository: {e}"))?;
    let repo = app
        .git
        .repos
        .find(&account, &name)
        .map_err(|e| format!("repository `{}`: {}", run.repo, crate::api::error_chain(&e)))?;
    let files = Repos::workflow_files(&repo, &run.commit)
        .map_err(|e| format!("{}: {}", run.workflow, crate::api::error_chain(&e)))?;
    let text = files
        .into_iter()
        .find(|(p, _)| *p == run.workflow)
        .ok_or_else(|| format!("{}: not in commit {}", run.workflow, run.commit))?
        .1?;
    let wf = spindle_pipeline::parse(&text, &run.workflow).map_err(|d| {
        d.0.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let claimed = app
        .store
        .claim_run(run.id, now())
        .map_err(|e| crate::api::error_chain(&e))?;
    if !claimed {
        return Ok(None);
    }
    let info = RunInfo {
        run_id: run.rerun_of.unwrap_or(run.id),
        run_attempt: run.attempt,
        repository: format!("{account_name}/{}", run.repo),
        workflow: wf.name.clone().unwrap_or_else(|| run.workflow.clone()),
        event: run.event.clone(),
        git_ref: run.git_ref.clone(),
        sha: run.commit.clone(),
        inputs: app
            .store
            .run_inputs(run.id)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
    };
    let env = RunEnv {
        store: app.store.clone(),
        rt,
        account,
        info,
        repo,
        jobs_dir: jobs_dir(&app.store),
        ctl,
        run,
    };
    Ok(Some((env, wf)))
}

/// Marks a job that won't run, and its steps.
fn skip_job(store: &Store, run: i64, job: &Job, status: RunStatus) {
    let t = now();
    for i in 0..job.steps.len() {
        let _ = store.set_step_status(run, &job.id, i as u32, status, None, t);
    }
    let _ = store.set_job_status(run, &job.id, status, t);
    crate::pipeline_logs::changed(run);
}

/// Stores whole lines of a step's log (what [`StepLog`] handed out) and wakes its readers.
fn append_log(env: &RunEnv, job: &str, i: usize, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Err(e) = env.store.append_step_log(env.run.id, job, i as u32, text) {
        tracing::error!(run = env.run.id, job, step = i, error = %crate::api::error_chain(&e), "cannot store a step's log");
    }
    crate::pipeline_logs::changed(env.run.id);
}

/// Records a step's end: its log (bounded) if not stored already, status and exit code.
fn end_step(env: &RunEnv, job: &str, i: usize, status: RunStatus, code: Option<i32>, log: &str) {
    let (run, t) = (env.run.id, now());
    append_log(env, job, i, &runner::bounded_log(log));
    if let Err(e) = env
        .store
        .set_step_status(run, job, i as u32, status, code, t)
    {
        tracing::error!(run, job, step = i, error = %crate::api::error_chain(&e), "cannot record a step");
    }
    crate::pipeline_logs::changed(run);
}

/// Fails a job that could not run its steps: the reason is the first step's log.
fn fail_job(env: &RunEnv, job: &Job, reason: &str) -> JobResult {
    tracing::warn!(run = env.run.id, job = %job.id, %reason, "pipeline job failed before its steps");
    let _ = env
        .store
        .set_step_status(env.run.id, &job.id, 0, RunStatus::InProgress, None, now());
    end_step(
        env,
        &job.id,
        0,
        RunStatus::Failure,
        None,
        &format!("{reason}\n"),
    );
    for i in 1..job.steps.len() {
        let _ = env.store.set_step_status(
            env.run.id,
            &job.id,
            i as u32,
            RunStatus::Skipped,
            None,
            now(),
        );
    }
    let _ = env
        .store
        .set_job_status(env.run.id, &job.id, RunStatus::Failure, now());
    JobResult {
        result: Outcome::Failure,
        outputs: Default::default(),
    }
}

/// Runs job `index` of `wf` to its end; blocking.
fn run_job(
    env: &RunEnv,
    wf: &Workflow,
    index: usize,
    needs: &BTreeMap<String, JobResult>,
) -> JobResult {
    let job = &wf.jobs[index];
    let run = env.run.id;
    let _ = env
        .store
        .set_job_status(run, &job.id, RunStatus::InProgress, now());
    let mut scope = match JobScope::new(&env.info, &wf.env, job, needs) {
        Ok(s) => s,
        Err(reason) => return fail_job(env, job, &reason),
    };
    match scope.job_condition() {
        Ok(true) => {}
        Ok(false) => {
            skip_job(&env.store, run, job, RunStatus::Skipped);
            return JobResult {
                result: Outcome::Skipped,
                outputs: Default::default(),
            };
        }
        Err(reason) => return fail_job(env, job, &reason),
    }
    if job.matrix.is_some() {
        return fail_job(
            env,
            job,
            &format!(
                "jobs.{}.strategy.matrix: matrix jobs are not executed by this daemon yet",
                job.id
            ),
        );
    }
    let job_minutes = job
        .timeout_minutes
        .as_deref()
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(runner::DEFAULT_TIMEOUT_MINUTES);
    let deadline = Instant::now() + Duration::from_secs_f64(job_minutes * 60.0);
    let sandbox = match Sandbox::create(env, job) {
        Ok(s) => s,
        Err(reason) => return fail_job(env, job, &reason),
    };
    // Values `::add-mask::` registered: masked in every later step of the job.
    let mut masks: Vec<String> = Vec::new();
    for i in 0..job.steps.len() {
        if env.ctl.cancelled.load(Ordering::SeqCst) {
            scope.cancel();
        }
        let plan = scope.plan(i);
        let (outcome, coe, files) = match plan {
            StepPlan::Skip => {
                let _ = env.store.set_step_status(
                    run,
                    &job.id,
                    i as u32,
                    RunStatus::Skipped,
                    None,
                    now(),
                );
                (Outcome::Skipped, false, StepFiles::default())
            }
            StepPlan::Builtin { log } => {
                start_step(env, &job.id, i);
                end_step(env, &job.id, i, RunStatus::Success, Some(0), &log);
                (Outcome::Success, false, StepFiles::default())
            }
            StepPlan::Fail {
                reason,
                continue_on_error,
            } => {
                start_step(env, &job.id, i);
                end_step(
                    env,
                    &job.id,
                    i,
                    RunStatus::Failure,
                    None,
                    &format!("{reason}\n"),
                );
                (Outcome::Failure, continue_on_error, StepFiles::default())
            }
            StepPlan::Run {
                script,
                script_path,
                argv,
                workdir,
                env: vars,
                timeout_minutes,
                continue_on_error,
            } => {
                start_step(env, &job.id, i);
                let left = deadline.saturating_duration_since(Instant::now());
                let limit = Duration::from_secs_f64(timeout_minutes * 60.0).min(left);
                // The log is stored line by line as the step writes it, masked first.
                let mut log = StepLog::with_masks(masks.clone());
                let mut sink = |bytes: &[u8]| {
                    let text = log.push(bytes);
                    append_log(env, &job.id, i, &text);
                };
                let (outcome, code, files) = sandbox.step(
                    i,
                    &script,
                    &script_path,
                    &argv,
                    &workdir,
                    vars,
                    limit,
                    &mut sink,
                );
                append_log(env, &job.id, i, &log.finish());
                masks = log.masks().to_vec();
                let cancelled = env.ctl.cancelled.load(Ordering::SeqCst);
                let (outcome, status) = match outcome {
                    _ if cancelled => (Outcome::Cancelled, RunStatus::Cancelled),
                    Outcome::Success => (Outcome::Success, RunStatus::Success),
                    o => (o, RunStatus::Failure),
                };
                end_step(env, &job.id, i, status, code, "");
                (outcome, continue_on_error, files)
            }
        };
        scope.record(i, outcome, coe, &files);
    }
    let (result, problems) = scope.finish();
    if !problems.is_empty() {
        if let Some(last) = job.steps.len().checked_sub(1) {
            let _ = env.store.append_step_log(
                run,
                &job.id,
                last as u32,
                &format!("{}\n", problems.join("\n")),
            );
        }
    }
    drop(sandbox);
    let outputs = serde_json::Value::Object(result.outputs.clone()).to_string();
    if let Err(e) = env.store.set_job_outputs(run, &job.id, &outputs) {
        tracing::error!(run, job = %job.id, error = %crate::api::error_chain(&e), "cannot record a job's outputs");
    }
    let status = match result.result {
        Outcome::Success => RunStatus::Success,
        Outcome::Failure => RunStatus::Failure,
        Outcome::Cancelled => RunStatus::Cancelled,
        Outcome::Skipped => RunStatus::Skipped,
    };
    let _ = env.store.set_job_status(run, &job.id, status, now());
    crate::pipeline_logs::changed(run);
    result
}

fn start_step(env: &RunEnv, job: &str, i: usize) {
    let _ = env.store.set_step_status(
        env.run.id,
        job,
        i as u32,
        RunStatus::InProgress,
        None,
        now(),
    );
    crate::pipeline_logs::changed(env.run.id);
}

/// A job's instance, its VPC and its host directory; all removed on drop.
struct Sandbox {
    rt: Arc<Runtime>,
    ctl: Arc<RunCtl>,
    dir: PathBuf,
    vpc: Option<String>,
    instance: Option<String>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(id) = self.instance.take() {
            if let Err(e) = self.rt.terminate(&id, Duration::from_secs(1)) {
                tracing::error!(instance = %id, error = %crate::api::error_chain(&e), "cannot terminate a pipeline job's instance");
            }
            self.ctl
                .instances
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        if let Some(vpc) = self.vpc.take() {
            if let Err(e) = self.rt.delete_vpc(&vpc) {
                tracing::error!(%vpc, error = %crate::api::error_chain(&e), "cannot delete a pipeline job's network");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot remove a pipeline job's directory");
            }
        }
    }
}

/// Makes `path` a directory owned by `uid` with `mode`.
fn owned_dir(path: &Path, uid: u32, mode: u32) -> std::io::Result<()> {
    fs::create_dir_all(path)?;
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Gives a tree the daemon just wrote to `uid`, without following links.
fn chown_tree(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for e in fs::read_dir(path)? {
            chown_tree(&e?.path(), uid)?;
        }
    }
    Ok(())
}

impl Sandbox {
    fn create(env: &RunEnv, job: &Job) -> Result<Sandbox, String> {
        let rt = env.rt.clone();
        let image = rt
            .images()
            .inspect(&job.runs_on)
            .ok()
            .filter(|i| {
                env.store
                    .account_images(&env.account)
                    .is_ok_and(|ids| ids.contains(&i.id))
            })
            .ok_or_else(|| {
                format!(
                    "jobs.{}.runs-on: image `{}` not found in this account (`spindle image list` shows its images)",
                    job.id, job.runs_on
                )
            })?;
        let dir = env.jobs_dir.join(format!("r{}-{}", env.run.id, job.id));
        let mut sb = Sandbox {
            rt: rt.clone(),
            ctl: env.ctl.clone(),
            dir: dir.clone(),
            vpc: None,
            instance: None,
        };
        let io = |what: &str, e: std::io::Error| format!("job directory {what}: {e}");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| io("clean", e))?;
        }
        owned_dir(&dir, 0, 0o755).map_err(|e| io("create", e))?;
        let ws = dir.join("workspace");
        owned_dir(&ws, 0, 0o755).map_err(|e| io("create", e))?;
        Repos::export_tree(&env.repo, &env.run.commit, &ws).map_err(|e| {
            format!(
                "checkout of {}: {}",
                env.run.commit,
                crate::api::error_chain(&e)
            )
        })?;
        chown_tree(&ws, RUNNER_UID).map_err(|e| io("chown", e))?;
        owned_dir(&dir.join("_temp"), RUNNER_UID, 0o700).map_err(|e| io("create", e))?;
        owned_dir(&dir.join("_steps"), 0, 0o755).map_err(|e| io("create", e))?;
        let mount = BindMount::checked(&dir.to_string_lossy(), runner::WORK_ROOT)
            .map_err(|e| format!("job directory mount: {e}"))?;
        let (vpc, subnet) = crate::devbox_handlers::network(&rt)
            .map_err(|e| format!("job network: {}", e.message()))?;
        sb.vpc = Some(vpc);
        let tags = BTreeMap::from([
            (
                "Name".to_string(),
                format!("pipeline-{}-{}", env.run.id, job.id),
            ),
            (JOB_TAG.to_string(), format!("{}/{}", env.run.id, job.id)),
            (ACCOUNT_TAG.to_string(), env.account.as_str().to_string()),
        ]);
        let inst = rt
            .launch(LaunchSpec {
                image: image.id.clone(),
                instance_type: INSTANCE_TYPE.into(),
                subnet_id: subnet,
                hostname: Some("runner".into()),
                tags,
                command: Some(vec!["/bin/sh".into(), "-c".into(), IDLE.into()]),
                mounts: vec![mount],
                seccomp: if job.network {
                    SeccompProfile::Default
                } else {
                    SeccompProfile::Offline
                },
                ..Default::default()
            })
            .map_err(|e| {
                format!(
                    "launch of image `{}`: {}",
                    job.runs_on,
                    crate::api::error_chain(&e)
                )
            })?;
        sb.instance = Some(inst.id.clone());
        env.ctl
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(inst.id.clone());
        let booted = rt
            .wait_booted(&inst.id, Duration::from_secs(30))
            .map_err(|e| format!("job instance boot: {}", crate::api::error_chain(&e)))?;
        if !booted {
            return Err("job instance boot: its init did not start its command within 30 s".into());
        }
        // `/tmp` is the one writable place outside the workspace, whatever the image made it.
        let setup = [
            "/bin/sh",
            "-c",
            "mkdir -p /tmp && { ! command -v chmod >/dev/null || chmod 1777 /tmp; }",
        ]
        .map(String::from);
        let out = rt
            .exec(&inst.id, &setup, Duration::from_secs(30))
            .map_err(|e| format!("job instance setup: {}", crate::api::error_chain(&e)))?;
        if !out.status.success() {
            return Err(format!(
                "job instance setup: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(sb)
    }

    /// The host path of a path under `/__w`.
    fn host(&self, guest: &str) -> PathBuf {
        self.dir.join(
            guest
                .strip_prefix(runner::WORK_ROOT)
                .unwrap_or(guest)
                .trim_start_matches('/'),
        )
    }

    /// Runs one step, handing its output to `out` as it is written; returns its outcome,
    /// exit code and files. The daemon's own notes (a timeout, a bad step file) go to `out`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        index: usize,
        script: &str,
        script_path: &str,
        argv: &[String],
        workdir: &str,
        vars: BTreeMap<String, String>,
        limit: Duration,
        out: &mut dyn FnMut(&[u8]),
    ) -> (Outcome, Option<i32>, StepFiles) {
        let fail = |out: &mut dyn FnMut(&[u8]), log: String| {
            out(log.as_bytes());
            (Outcome::Failure, None, StepFiles::default())
        };
        if let Err(e) = write_new(&self.host(script_path), script.as_bytes(), 0o644) {
            return fail(out, format!("cannot write the step's script: {e}\n"));
        }
        for (_, f) in runner::step_files(index) {
            let p = self.host(&f);
            let made = write_new(&p, b"", 0o600)
                .and_then(|()| std::os::unix::fs::lchown(&p, Some(RUNNER_UID), Some(RUNNER_UID)));
            if let Err(e) = made {
                return fail(out, format!("cannot create {f}: {e}\n"));
            }
        }
        let Some(id) = self.instance.as_deref() else {
            return fail(out, "the job has no instance\n".into());
        };
        let user = ExecUser {
            uid: RUNNER_UID,
            gid: RUNNER_UID,
            env: vars.into_iter().collect(),
        };
        let started = Instant::now();
        let status =
            self.rt
                .exec_as_streaming(id, &runner::exec_argv(argv, workdir), &user, limit, out);
        let status = match status {
            Ok(s) => s,
            Err(_) if started.elapsed() >= limit => {
                return fail(
                    out,
                    format!(
                        "[spindle: the step timed out after {:.1} minute(s) and was killed]\n",
                        limit.as_secs_f64() / 60.0
                    ),
                );
            }
            Err(e) => {
                return fail(
                    out,
                    format!("cannot run the step: {}\n", crate::api::error_chain(&e)),
                )
            }
        };
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
        let read = |name: &str| -> Result<Option<String>, String> {
            let f = runner::step_files(index)
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| f)
                .unwrap_or_default();
            read_step_file(&self.host(&f)).map_err(|e| format!("{name}: {e}"))
        };
        let files = read("GITHUB_OUTPUT").and_then(|o| {
            let e = read("GITHUB_ENV")?;
            let p = read("GITHUB_PATH")?;
            StepFiles::parse(o.as_deref(), e.as_deref(), p.as_deref())
        });
        match files {
            Ok(f) if status.success() => (Outcome::Success, code, f),
            Ok(f) => (Outcome::Failure, code, f),
            Err(e) => {
                out(format!("[spindle: {e}]\n").as_bytes());
                (Outcome::Failure, code, StepFiles::default())
            }
        }
    }
}

/// Creates `path` anew (a link or file a step left there is removed first, never followed).
fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)
}

/// A step file as the step left it: a regular file, not followed if a link, at most
/// [`FILE_LIMIT`] bytes; `None` if it is gone.
fn read_step_file(path: &Path) -> Result<Option<String>, String> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("not a file the step may hand back: {e}")),
    };
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > FILE_LIMIT {
        return Err(format!("{} bytes, more than {FILE_LIMIT}", meta.len()));
    }
    let mut text = String::new();
    f.take(FILE_LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| format!("not UTF-8 text: {e}"))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_files_are_read_only_as_regular_files_and_written_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("secret");
        fs::write(&target, "host secret\n").unwrap();
        let link = d.path().join("output-0");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_step_file(&link).unwrap_err();
        assert!(e.starts_with("not a file the step may hand back: "), "{e}");
        assert_eq!(read_step_file(&d.path().join("gone")).unwrap(), None);
        fs::create_dir(d.path().join("dir")).unwrap();
        assert_eq!(
            read_step_file(&d.path().join("dir")).unwrap_err(),
            "not a regular file"
        );
        let big = d.path().join("big");
        fs::write(&big, vec![b'a'; FILE_LIMIT as usize + 1]).unwrap();
        assert!(read_step_file(&big).unwrap_err().contains("more than"));

        // Writing a script over a planted link replaces the link; the target is untouched.
        write_new(&link, b"echo hi\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "host secret\n");
        assert_eq!(fs::read_to_string(&link).unwrap(), "echo hi\n");
        assert!(!fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(read_step_file(&link).unwrap().as_deref(), Some("echo hi\n"));
    }
}
