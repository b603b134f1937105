//! Build pipeline runs (issue #17): runs, their jobs and steps, each step's log. A run and
//! all its jobs and steps are inserted in one transaction; status changes are single rows.

use crate::{fmt_time, json_list, parse_json_list, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use spindle_model::pipeline::{PipelineJob, PipelineRun, PipelineStep, RunStatus};
use spindle_model::AccountId;
use time::OffsetDateTime;

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub account: &'a AccountId,
    pub repo: &'a str,
    pub workflow: &'a str,
    pub name: Option<&'a str>,
    pub event: &'a str,
    pub git_ref: &'a str,
    pub commit: &'a str,
    /// `Queued` for a run to execute; `Failure` for a file that didn't parse.
    pub status: RunStatus,
    pub diagnostics: &'a [String],
    pub jobs: Vec<NewJob>,
    /// A `workflow_dispatch` run's inputs, a JSON object (`{}` for other events).
    pub inputs: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub runs_on: String,
    pub needs: Vec<String>,
    /// Step names, in order.
    pub steps: Vec<String>,
}

/// A row whose status changes.
#[derive(Debug, Clone, Copy)]
enum Row<'a> {
    Run(i64),
    Job(i64, &'a str),
    Step(i64, &'a str, u32),
}

impl std::fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Run(r) => write!(f, "pipeline run {r}"),
            Row::Job(r, j) => write!(f, "job `{j}` of pipeline run {r}"),
            Row::Step(r, j, i) => write!(f, "step {i} of job `{j}` of pipeline run {r}"),
        }
    }
}

pub(crate) fn status_of(s: String) -> rusqlite::Result<RunStatus> {
    RunStatus::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown run status `{s}`").into(),
        )
    })
}

const RUN_COLUMNS: &str = "id, account_id, repo, workflow, name, event, git_ref, commit_id, \
                           status, diagnostics, created, started, finished, rerun_of, attempt";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PipelineRun> {
    Ok(PipelineRun {
        id: r.get(0)?,
        account_id: r.get(1)?,
        repo: r.get(2)?,
        workflow: r.get(3)?,
        name: r.get(4)?,
        event: r.get(5)?,
        git_ref: r.get(6)?,
        commit: r.get(7)?,
        status: status_of(r.get(8)?)?,
        diagnostics: parse_json_list(&r.get::<_, String>(9)?)?,
        created: r.get(10)?,
        started: r.get(11)?,
        finished: r.get(12)?,
        jobs: Vec::new(),
        rerun_of: r.get(13)?,
        attempt: r.get(14)?,
    })
}

/// `(started, finished)` for a row moving to `status` at `now`: started when it begins
/// (kept if set), finished when it ends.
fn stamps(status: RunStatus, now: &str) -> (Option<&str>, Option<&str>) {
    let started = (status != RunStatus::Queued).then_some(now);
    let finished = status.is_final().then_some(now);
    (started, finished)
}

impl Store {
    /// Records a run with its jobs and steps, all queued (or all as `run.status` says when
    /// that is final); returns its id.
    pub fn insert_run(&self, run: &NewRun<'_>, now: OffsetDateTime) -> Result<i64, StoreError> {
        let now = fmt_time(now);
        let finished = run.status.is_final().then_some(now.as_str());
        let child = if run.status.is_final() {
            RunStatus::Skipped
        } else {
            RunStatus::Queued
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO pipeline_runs(account_id, repo, workflow, name, event, git_ref, \
                 commit_id, status, diagnostics, created, finished, inputs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    run.account.as_str(),
                    run.repo,
                    run.workflow,
                    run.name,
                    run.event,
                    run.git_ref,
                    run.commit,
                    run.status.as_str(),
                    json_list(run.diagnostics),
                    now,
                    finished,
                    run.inputs,
                ],
            )?;
            let id = tx.last_insert_rowid();
            for (seq, job) in run.jobs.iter().enumerate() {
                tx.execute(
                    "INSERT INTO pipeline_jobs(run_id, job, seq, runs_on, needs, status) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        job.id,
                        seq as i64,
                        job.runs_on,
                        json_list(&job.needs),
                        child.as_str()
                    ],
                )?;
                for (idx, name) in job.steps.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO pipeline_steps(run_id, job, idx, name, status) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, job.id, idx as i64, name, child.as_str()],
                    )?;
                }
            }
            Ok(id)
        })
    }

    /// The account's runs, newest first, without jobs; only `repo`'s when given.
    pub fn list_runs(
        &self,
        account: &AccountId,
        repo: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PipelineRun>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE account_id = ?1 \
                 AND (?2 IS NULL OR repo = ?2) ORDER BY id DESC LIMIT ?3"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st
                .query_map(params![account.as_str(), repo, limit], run_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// One run with its jobs, steps and logs; `None` if the account has no such run.
    pub fn get_run(&self, account: &AccountId, id: i64) -> Result<Option<PipelineRun>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE account_id = ?1 AND id = ?2"
            );
            let run = c
                .prepare_cached(&sql)?
                .query_row(params![account.as_str(), id], run_row)
                .optional()?;
            let Some(mut run) = run else {
                return Ok(None);
            };
            run.jobs = jobs_of(c, id)?;
            Ok(Some(run))
        })
    }

    pub fn set_run_status(
        &self,
        run: i64,
        status: RunStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.set_status(Row::Run(run), status, None, now)
    }

    pub fn set_job_status(
        &self,
        run: i64,
        job: &str,
        status: RunStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.set_status(Row::Job(run, job), status, None, now)
    }

    /// Moves a step to `status`, with its exit code once it ended.
    pub fn set_step_status(
        &self,
        run: i64,
        job: &str,
        index: u32,
        status: RunStatus,
        exit_code: Option<i32>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.set_status(Row::Step(run, job, index), status, exit_code, now)
    }

    /// Sets a run's, job's or step's status: started when it begins (kept if set), finished
    /// when it ends.
    fn set_status(
        &self,
        row: Row<'_>,
        status: RunStatus,
        exit_code: Option<i32>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now = fmt_time(now);
        let (started, finished) = stamps(status, &now);
        let (table, key, run, job, index) = match row {
            Row::Run(r) => ("pipeline_runs", "id = ?5", r, None, None),
            Row::Job(r, j) => (
                "pipeline_jobs",
                "run_id = ?5 AND job = ?6",
                r,
                Some(j),
                None,
            ),
            Row::Step(r, j, i) => (
                "pipeline_steps",
                "run_id = ?5 AND job = ?6 AND idx = ?7",
                r,
                Some(j),
                Some(i),
            ),
        };
        // Only steps have an exit code; elsewhere `?4` is bound and unused.
        let exit = if index.is_some() {
            ", exit_code = COALESCE(?4, exit_code)"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE {table} SET status = ?1, started = COALESCE(started, ?2), finished = ?3{exit} \
             WHERE {key}"
        );
        self.write_unscoped(|tx| {
            let mut st = tx.prepare_cached(&sql)?;
            let n = match (job, index) {
                (None, _) => {
                    st.execute(params![status.as_str(), started, finished, exit_code, run])?
                }
                (Some(j), None) => st.execute(params![
                    status.as_str(),
                    started,
                    finished,
                    exit_code,
                    run,
                    j
                ])?,
                (Some(j), Some(i)) => st.execute(params![
                    status.as_str(),
                    started,
                    finished,
                    exit_code,
                    run,
                    j,
                    i
                ])?,
            };
            crate::expect_changed(n, || row.to_string())
        })
    }

    /// Appends output to a step's log.
    pub fn append_step_log(
        &self,
        run: i64,
        job: &str,
        index: u32,
        text: &str,
    ) -> Result<(), StoreError> {
        self.write_unscoped(|tx| {
            let n = tx.execute(
                "UPDATE pipeline_steps SET log = log || ?4 WHERE run_id = ?1 AND job = ?2 AND idx = ?3",
                params![run, job, index, text],
            )?;
            crate::expect_changed(n, || format!("step {index} of job `{job}` of run {run}"))
        })
    }

    /// A run's `workflow_dispatch` inputs, the JSON object they were recorded as.
    pub fn run_inputs(&self, run: i64) -> Result<String, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT inputs FROM pipeline_runs WHERE id = ?1",
                [run],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("pipeline run {run}"),
            })
        })
    }

    /// Moves a queued run to `in_progress`; `false` (and nothing changed) when it is no longer
    /// queued, e.g. cancelled between being listed and being started.
    pub fn claim_run(&self, run: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        let now = fmt_time(now);
        self.write_unscoped(|tx| {
            Ok(tx.execute(
                "UPDATE pipeline_runs SET status = 'in_progress', started = COALESCE(started, ?2) \
                 WHERE id = ?1 AND status = 'queued'",
                params![run, now],
            )? == 1)
        })
    }

    /// Every queued run, oldest first, with its account: what the executor starts.
    pub fn queued_runs(&self) -> Result<Vec<PipelineRun>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE status = 'queued' ORDER BY id"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([], run_row)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Ends a run that could not start or go on (no runtime, its workflow unreadable):
    /// `status` with `reason` added to its diagnostics, and every job and step that had not
    /// ended `skipped` (`cancelled` if it was running), in one transaction.
    pub fn end_run(
        &self,
        run: i64,
        status: RunStatus,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.end_run_from(run, status, reason, now, &["queued", "in_progress"])
    }

    /// Ends a run that no runner has claimed yet: `false` (and nothing changed) when it is no
    /// longer `queued`.
    pub fn end_queued_run(
        &self,
        run: i64,
        status: RunStatus,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.end_run_from(run, status, reason, now, &["queued"])
    }

    /// Ends `run` if its status is one of `from`, in one transaction (so a run that ended or
    /// was claimed meanwhile is never overwritten); whether it did.
    fn end_run_from(
        &self,
        run: i64,
        status: RunStatus,
        reason: &str,
        now: OffsetDateTime,
        from: &[&str],
    ) -> Result<bool, StoreError> {
        let now = fmt_time(now);
        self.write_unscoped(|tx| {
            let (diags, current): (String, String) = tx
                .query_row(
                    "SELECT diagnostics, status FROM pipeline_runs WHERE id = ?1",
                    [run],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("pipeline run {run}"),
                })?;
            if !from.contains(&current.as_str()) {
                return Ok(false);
            }
            let mut list = parse_json_list(&diags)?;
            list.push(reason.to_string());
            for table in ["pipeline_steps", "pipeline_jobs"] {
                tx.execute(
                    &format!(
                        "UPDATE {table} SET status = CASE status WHEN 'in_progress' THEN 'cancelled' \
                         ELSE 'skipped' END, finished = ?2 \
                         WHERE run_id = ?1 AND status IN ('queued', 'in_progress')"
                    ),
                    params![run, now],
                )?;
            }
            tx.execute(
                "UPDATE pipeline_runs SET status = ?2, diagnostics = ?3, \
                 started = COALESCE(started, ?4), finished = ?4 WHERE id = ?1",
                params![run, status.as_str(), json_list(&list), now],
            )?;
            Ok(true)
        })
    }

    /// Ends what a stopped daemon left running: runs, jobs and steps `in_progress` become
    /// `cancelled`; the steps and jobs of such a run that hadn't started become `skipped`.
    /// Queued runs are left for a runner to start. Returns how many runs.
    pub fn interrupt_running_runs(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let now = fmt_time(now);
        self.write_unscoped(|tx| {
            let running = "run_id IN (SELECT id FROM pipeline_runs WHERE status = 'in_progress')";
            for table in ["pipeline_steps", "pipeline_jobs"] {
                tx.execute(
                    &format!(
                        "UPDATE {table} SET status = 'cancelled', finished = ?1 \
                         WHERE status = 'in_progress' AND {running}"
                    ),
                    [&now],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE {table} SET status = 'skipped', finished = ?1 \
                         WHERE status = 'queued' AND {running}"
                    ),
                    [&now],
                )?;
            }
            Ok(tx.execute(
                "UPDATE pipeline_runs SET status = 'cancelled', finished = ?1 WHERE status = 'in_progress'",
                [&now],
            )?)
        })
    }
}

fn jobs_of(c: &Connection, run: i64) -> Result<Vec<PipelineJob>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT job, runs_on, needs, status, started, finished, reused FROM pipeline_jobs \
         WHERE run_id = ?1 ORDER BY seq",
    )?;
    let mut jobs: Vec<PipelineJob> = st
        .query_map([run], |r| {
            Ok(PipelineJob {
                id: r.get(0)?,
                runs_on: r.get(1)?,
                needs: parse_json_list(&r.get::<_, String>(2)?)?,
                status: status_of(r.get(3)?)?,
                started: r.get(4)?,
                finished: r.get(5)?,
                steps: Vec::new(),
                reused: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut st = c.prepare_cached(
        "SELECT idx, name, status, exit_code, started, finished, log FROM pipeline_steps \
         WHERE run_id = ?1 AND job = ?2 ORDER BY idx",
    )?;
    for job in &mut jobs {
        job.steps = st
            .query_map(params![run, job.id], |r| {
                Ok(PipelineStep {
                    index: r.get(0)?,
                    name: r.get(1)?,
                    status: status_of(r.get(2)?)?,
                    exit_code: r.get(3)?,
                    started: r.get(4)?,
                    finished: r.get(5)?,
                    log: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{dev_and_prod, now, open};

    fn new_run<'a>(account: &'a AccountId, status: RunStatus, diags: &'a [String]) -> NewRun<'a> {
        NewRun {
            account,
            repo: "app",
            workflow: ".github/workflows/ci.yml",
            name: Some("CI"),
            event: "push",
            git_ref: "refs/heads/main",
            commit: "c0ffee",
            status,
            diagnostics: diags,
            inputs: "{}",
            jobs: vec![
                NewJob {
                    id: "build".into(),
                    runs_on: "debian-12".into(),
                    needs: vec![],
                    steps: vec!["make".into(), "test".into()],
                },
                NewJob {
                    id: "ship".into(),
                    runs_on: "debian-12".into(),
                    needs: vec!["build".into()],
                    steps: vec!["publish".into()],
                },
            ],
        }
    }

    #[test]
    fn a_run_is_recorded_whole_and_moves_through_its_states() {
        let (_d, s) = open();
        let (dev, prod) = dev_and_prod(&s);
        let id = s
            .insert_run(&new_run(&dev.id, RunStatus::Queued, &[]), now())
            .unwrap();
        let run = s.get_run(&dev.id, id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.jobs.len(), 2);
        assert_eq!(run.jobs[1].needs, ["build"]);
        assert_eq!(run.jobs[0].steps.len(), 2);
        assert!(run
            .jobs
            .iter()
            .flat_map(|j| &j.steps)
            .all(|s| s.status == RunStatus::Queued));
        assert_eq!(
            s.get_run(&prod.id, id).unwrap(),
            None,
            "another account's run"
        );

        s.set_run_status(id, RunStatus::InProgress, now()).unwrap();
        s.set_job_status(id, "build", RunStatus::InProgress, now())
            .unwrap();
        s.set_step_status(id, "build", 0, RunStatus::InProgress, None, now())
            .unwrap();
        s.append_step_log(id, "build", 0, "line 1\n").unwrap();
        s.append_step_log(id, "build", 0, "line 2\n").unwrap();
        s.set_step_status(id, "build", 0, RunStatus::Success, Some(0), now())
            .unwrap();
        assert!(s
            .set_step_status(id, "build", 9, RunStatus::Success, None, now())
            .is_err());
        let run = s.get_run(&dev.id, id).unwrap().unwrap();
        let step = &run.jobs[0].steps[0];
        assert_eq!(step.log, "line 1\nline 2\n");
        assert_eq!((step.status, step.exit_code), (RunStatus::Success, Some(0)));
        assert!(step.started.is_some() && step.finished.is_some());
        assert!(run.started.is_some() && run.finished.is_none());

        // A restart ends what was left running, and leaves finished rows and queued runs
        // alone.
        let queued = s
            .insert_run(&new_run(&dev.id, RunStatus::Queued, &[]), now())
            .unwrap();
        assert_eq!(s.interrupt_running_runs(now()).unwrap(), 1);
        let run = s.get_run(&dev.id, id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.jobs[0].status, RunStatus::Cancelled);
        assert_eq!(run.jobs[0].steps[0].status, RunStatus::Success);
        assert_eq!(run.jobs[0].steps[1].status, RunStatus::Skipped);
        assert_eq!(run.jobs[1].status, RunStatus::Skipped);
        let q = s.get_run(&dev.id, queued).unwrap().unwrap();
        assert_eq!(q.status, RunStatus::Queued);
        assert!(q.jobs.iter().all(|j| j.status == RunStatus::Queued));
    }

    #[test]
    fn queued_runs_are_found_across_accounts_and_ended_whole_with_a_reason() {
        let (_d, s) = open();
        let (dev, prod) = dev_and_prod(&s);
        let a = s
            .insert_run(&new_run(&dev.id, RunStatus::Queued, &[]), now())
            .unwrap();
        let b = s
            .insert_run(&new_run(&prod.id, RunStatus::Queued, &[]), now())
            .unwrap();
        s.insert_run(&new_run(&dev.id, RunStatus::Failure, &["x".into()]), now())
            .unwrap();
        let ids: Vec<i64> = s.queued_runs().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [a, b]);
        let mut with_inputs = new_run(&dev.id, RunStatus::Queued, &[]);
        with_inputs.inputs = r#"{"env":"prod"}"#;
        let c = s.insert_run(&with_inputs, now()).unwrap();
        assert_eq!(s.run_inputs(c).unwrap(), r#"{"env":"prod"}"#);
        assert_eq!(s.run_inputs(a).unwrap(), "{}");
        s.end_run(c, RunStatus::Cancelled, "cancelled", now())
            .unwrap();
        assert!(
            !s.claim_run(c, now()).unwrap(),
            "an ended run is not started"
        );
        assert!(s.claim_run(b, now()).unwrap());
        assert!(!s.claim_run(b, now()).unwrap(), "only once");

        s.set_run_status(a, RunStatus::InProgress, now()).unwrap();
        s.set_job_status(a, "build", RunStatus::InProgress, now())
            .unwrap();
        s.set_step_status(a, "build", 0, RunStatus::Success, Some(0), now())
            .unwrap();
        s.set_step_status(a, "build", 1, RunStatus::InProgress, None, now())
            .unwrap();
        s.end_run(a, RunStatus::Failure, "no runtime", now())
            .unwrap();
        let run = s.get_run(&dev.id, a).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failure);
        assert_eq!(run.diagnostics, ["no runtime"]);
        assert!(run.finished.is_some());
        let states: Vec<RunStatus> = run.jobs[0].steps.iter().map(|st| st.status).collect();
        assert_eq!(states, [RunStatus::Success, RunStatus::Cancelled]);
        assert_eq!(run.jobs[0].status, RunStatus::Cancelled);
        assert_eq!(run.jobs[1].status, RunStatus::Skipped);
        assert!(
            s.queued_runs().unwrap().is_empty(),
            "b was claimed, a and c ended"
        );
        assert!(s.end_run(999, RunStatus::Failure, "x", now()).is_err());
        // An ended run is never overwritten, and a claimed one is not "cancelled before it
        // started".
        assert!(!s.end_run(a, RunStatus::Success, "late", now()).unwrap());
        let run = s.get_run(&dev.id, a).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failure);
        assert_eq!(run.diagnostics, ["no runtime"]);
        assert!(!s
            .end_queued_run(
                b,
                RunStatus::Cancelled,
                "cancelled before it started",
                now()
            )
            .unwrap());
        assert_eq!(
            s.get_run(&prod.id, b).unwrap().unwrap().status,
            RunStatus::InProgress
        );
        let d = s
            .insert_run(&new_run(&dev.id, RunStatus::Queued, &[]), now())
            .unwrap();
        assert!(s
            .end_queued_run(
                d,
                RunStatus::Cancelled,
                "cancelled before it started",
                now()
            )
            .unwrap());
        assert!(!s.claim_run(d, now()).unwrap());
    }

    #[test]
    fn a_failed_parse_is_a_finished_run_with_its_diagnostics_and_lists_filter_by_repo() {
        let (_d, s) = open();
        let (dev, _) = dev_and_prod(&s);
        let diags = vec!["ci.yml:3:5: jobs.a.shel: unknown key".to_string()];
        let mut bad = new_run(&dev.id, RunStatus::Failure, &diags);
        bad.jobs.clear();
        let a = s.insert_run(&bad, now()).unwrap();
        let mut other = new_run(&dev.id, RunStatus::Queued, &[]);
        other.repo = "lib";
        let b = s.insert_run(&other, now()).unwrap();
        let run = s.get_run(&dev.id, a).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failure);
        assert_eq!(run.diagnostics, diags);
        assert!(run.finished.is_some());
        let all: Vec<i64> = s
            .list_runs(&dev.id, None, 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(all, [b, a], "newest first");
        let app: Vec<i64> = s
            .list_runs(&dev.id, Some("app"), 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(app, [a]);
        assert!(s.list_runs(&dev.id, None, 10).unwrap()[0].jobs.is_empty());
    }

    #[test]
    fn schema_6_migrates_to_pipeline_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let s = Store::open(&path).unwrap();
        let (dev, _) = dev_and_prod(&s);
        drop(s);
        crate::migrations::rewind(&path, 6).unwrap();
        let c = rusqlite::Connection::open(&path).unwrap();
        assert!(c.prepare("SELECT * FROM pipeline_runs").is_err());
        drop(c);
        let s = Store::open(&path).unwrap();
        let id = s
            .insert_run(&new_run(&dev.id, RunStatus::Queued, &[]), now())
            .unwrap();
        assert_eq!(s.get_run(&dev.id, id).unwrap().unwrap().jobs.len(), 2);
        assert_eq!(
            s.find_account(&spindle_model::ids::AccountRef::Id(dev.id.clone()))
                .unwrap()
                .unwrap()
                .name,
            dev.name
        );
    }
}
