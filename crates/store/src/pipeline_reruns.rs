//! Re-runs of pipeline runs (issue #17): a new attempt recorded as a new run of the same
//! commit, and the job outputs that let a re-run of failed jobs reuse the jobs that passed.

use std::collections::BTreeSet;

use crate::{fmt_time, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use spindle_model::pipeline::RunStatus;
use spindle_model::AccountId;
use time::OffsetDateTime;

/// A job of a run as the executor resumes it: its status and its outputs (a JSON object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub job: String,
    pub status: RunStatus,
    pub outputs: String,
}

impl Store {
    /// Records a new attempt of `account`'s ended run `run`, queued: the jobs in `again`
    /// (every job when `None`) start over; every other job is copied with its status, steps,
    /// logs and outputs, marked reused. The new run re-runs the first attempt and its number
    /// is one more than the latest attempt's. One transaction; returns the new run's id.
    pub fn rerun_run(
        &self,
        account: &AccountId,
        run: i64,
        again: Option<&BTreeSet<String>>,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let now = fmt_time(now);
        self.write(|tx| {
            let first: Option<i64> = tx
                .query_row(
                    "SELECT COALESCE(rerun_of, id) FROM pipeline_runs WHERE id = ?1 AND account_id = ?2",
                    params![run, account.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(first) = first else {
                return Err(StoreError::NotFound {
                    what: format!("pipeline run {run}"),
                });
            };
            let latest: i64 = tx.query_row(
                "SELECT MAX(attempt) FROM pipeline_runs WHERE id = ?1 OR rerun_of = ?1",
                [first],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO pipeline_runs(account_id, repo, workflow, name, event, git_ref, \
                 commit_id, status, diagnostics, created, inputs, rerun_of, attempt) \
                 SELECT account_id, repo, workflow, name, event, git_ref, commit_id, 'queued', '[]', \
                 ?2, inputs, ?3, ?4 FROM pipeline_runs WHERE id = ?1",
                params![run, now, first, latest + 1],
            )?;
            let id = tx.last_insert_rowid();
            let jobs: Vec<String> = tx
                .prepare("SELECT job FROM pipeline_jobs WHERE run_id = ?1 ORDER BY seq")?
                .query_map([run], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for job in jobs {
                let redo = again.is_none_or(|a| a.contains(&job));
                if redo {
                    tx.execute(
                        "INSERT INTO pipeline_jobs(run_id, job, seq, runs_on, needs, status) \
                         SELECT ?3, job, seq, runs_on, needs, 'queued' FROM pipeline_jobs \
                         WHERE run_id = ?1 AND job = ?2",
                        params![run, job, id],
                    )?;
                    tx.execute(
                        "INSERT INTO pipeline_steps(run_id, job, idx, name, status) \
                         SELECT ?3, job, idx, name, 'queued' FROM pipeline_steps \
                         WHERE run_id = ?1 AND job = ?2",
                        params![run, job, id],
                    )?;
                } else {
                    tx.execute(
                        "INSERT INTO pipeline_jobs(run_id, job, seq, runs_on, needs, status, \
                         started, finished, outputs, reused) \
                         SELECT ?3, job, seq, runs_on, needs, status, started, finished, outputs, 1 \
                         FROM pipeline_jobs WHERE run_id = ?1 AND job = ?2",
                        params![run, job, id],
                    )?;
                    tx.execute(
                        "INSERT INTO pipeline_steps(run_id, job, idx, name, status, exit_code, \
                         started, finished, log) \
                         SELECT ?3, job, idx, name, status, exit_code, started, finished, log \
                         FROM pipeline_steps WHERE run_id = ?1 AND job = ?2",
                        params![run, job, id],
                    )?;
                }
            }
            Ok(id)
        })
    }

    /// Records a job's outputs (a JSON object), for later attempts that reuse it.
    pub fn set_job_outputs(&self, run: i64, job: &str, outputs: &str) -> Result<(), StoreError> {
        self.write_unscoped(|tx| {
            let n = tx.execute(
                "UPDATE pipeline_jobs SET outputs = ?3 WHERE run_id = ?1 AND job = ?2",
                params![run, job, outputs],
            )?;
            crate::expect_changed(n, || format!("job `{job}` of pipeline run {run}"))
        })
    }

    /// Every job of `run` in file order, with its status and outputs.
    pub fn job_outcomes(&self, run: i64) -> Result<Vec<JobOutcome>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT job, status, outputs FROM pipeline_jobs WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = st
                .query_map([run], |r| {
                    Ok(JobOutcome {
                        job: r.get(0)?,
                        status: crate::pipelines::status_of(r.get(1)?)?,
                        outputs: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{dev_and_prod, now, open};
    use crate::{NewJob, NewRun};

    #[test]
    fn a_rerun_of_failed_jobs_copies_the_others_with_their_outputs_and_logs() {
        let (_d, s) = open();
        let (dev, prod) = dev_and_prod(&s);
        let job = |id: &str, needs: &[&str]| NewJob {
            id: id.into(),
            runs_on: "img".into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            steps: vec![format!("Run {id}")],
        };
        let run = s
            .insert_run(
                &NewRun {
                    account: &dev.id,
                    repo: "app",
                    workflow: ".github/workflows/ci.yml",
                    name: Some("CI"),
                    event: "workflow_dispatch",
                    git_ref: "refs/heads/main",
                    commit: "c0ffee",
                    status: RunStatus::Queued,
                    diagnostics: &[],
                    jobs: vec![job("make", &[]), job("use", &["make"])],
                    inputs: "{\"who\":\"ada\"}",
                },
                now(),
            )
            .unwrap();
        s.append_step_log(run, "make", 0, "made\n").unwrap();
        s.set_step_status(run, "make", 0, RunStatus::Success, Some(0), now())
            .unwrap();
        s.set_job_status(run, "make", RunStatus::Success, now())
            .unwrap();
        s.set_job_outputs(run, "make", "{\"v\":\"4.2\"}").unwrap();
        s.set_job_status(run, "use", RunStatus::Failure, now())
            .unwrap();
        s.set_run_status(run, RunStatus::Failure, now()).unwrap();

        let again = BTreeSet::from(["use".to_string()]);
        assert!(matches!(
            s.rerun_run(&prod.id, run, Some(&again), now()),
            Err(StoreError::NotFound { .. })
        ));
        let second = s.rerun_run(&dev.id, run, Some(&again), now()).unwrap();
        let r = s.get_run(&dev.id, second).unwrap().unwrap();
        assert_eq!(
            (r.status, r.rerun_of, r.attempt),
            (RunStatus::Queued, Some(run), 2)
        );
        assert_eq!(s.run_inputs(second).unwrap(), "{\"who\":\"ada\"}");
        let make = &r.jobs[0];
        assert_eq!((make.status, make.reused), (RunStatus::Success, true));
        assert_eq!(make.steps[0].log, "made\n");
        let used = &r.jobs[1];
        assert_eq!((used.status, used.reused), (RunStatus::Queued, false));
        assert_eq!(used.steps[0].status, RunStatus::Queued);
        let outcomes = s.job_outcomes(second).unwrap();
        assert_eq!(outcomes[0].outputs, "{\"v\":\"4.2\"}");
        assert_eq!(outcomes[1].outputs, "{}");

        // A whole new attempt runs everything again; it re-runs the first attempt, and
        // its number follows the latest attempt's whichever attempt it was asked of.
        let third = s.rerun_run(&dev.id, second, None, now()).unwrap();
        let r = s.get_run(&dev.id, third).unwrap().unwrap();
        assert_eq!((r.attempt, r.rerun_of), (3, Some(run)));
        let fourth = s.rerun_run(&dev.id, run, None, now()).unwrap();
        assert_eq!(s.get_run(&dev.id, fourth).unwrap().unwrap().attempt, 4);
        assert!(r
            .jobs
            .iter()
            .all(|j| j.status == RunStatus::Queued && !j.reused));
    }
}
