//! Reading pipeline step logs from a position (issue #17 item 4): what a live reader has not
//! seen yet. Logs grow only by whole lines (the executor appends what
//! `spindle_pipeline::logs::StepLog` hands out), so a tail read from any position a reader
//! was given is itself whole lines.

use crate::{Store, StoreError};
use rusqlite::params;
use spindle_model::pipeline::RunStatus;

/// One step's log from a position on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    pub job: String,
    pub index: u32,
    pub name: String,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    /// The byte offset `text` starts at.
    pub from: u64,
    pub text: String,
}

impl Store {
    /// Every step of `run` (only `job`'s when given), in job then step order, with its log
    /// from byte `from(job, index)` on (empty when nothing is new), and the run's status.
    /// `None` when there is no such run.
    pub fn step_log_tails(
        &self,
        run: i64,
        job: Option<&str>,
        from: &dyn Fn(&str, u32) -> u64,
    ) -> Result<Option<(RunStatus, Vec<LogTail>)>, StoreError> {
        self.read(|c| {
            let status: Option<String> = rusqlite::OptionalExtension::optional(c.query_row(
                "SELECT status FROM pipeline_runs WHERE id = ?1",
                [run],
                |r| r.get(0),
            ))?;
            let Some(status) = status else {
                return Ok(None);
            };
            let status = crate::pipelines::status_of(status)?;
            let mut st = c.prepare_cached(
                "SELECT s.job, s.idx, s.status, length(CAST(s.log AS BLOB)), s.name, s.exit_code \
                 FROM pipeline_steps s JOIN pipeline_jobs j ON j.run_id = s.run_id AND j.job = s.job \
                 WHERE s.run_id = ?1 AND (?2 IS NULL OR s.job = ?2) ORDER BY j.seq, s.idx",
            )?;
            type Row = (String, u32, String, u64, String, Option<i32>);
            let steps: Vec<Row> = st
                .query_map(params![run, job], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut tail = c.prepare_cached(
                "SELECT substr(CAST(log AS BLOB), ?4) FROM pipeline_steps \
                 WHERE run_id = ?1 AND job = ?2 AND idx = ?3",
            )?;
            let mut out = Vec::with_capacity(steps.len());
            for (job, index, st, len, name, exit_code) in steps {
                let at = from(&job, index);
                let text = if len > at {
                    let bytes: Vec<u8> =
                        tail.query_row(params![run, job, index, at as i64 + 1], |r| r.get(0))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    String::new()
                };
                out.push(LogTail {
                    job,
                    index,
                    name,
                    status: crate::pipelines::status_of(st)?,
                    exit_code,
                    from: at,
                    text,
                });
            }
            Ok(Some((status, out)))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewJob, NewRun};
    use spindle_model::pipeline::RunStatus;

    #[test]
    fn tails_start_where_the_reader_stopped_in_bytes() {
        let (_d, s) = crate::test_util::open();
        let acct = crate::test_util::dev_and_prod(&s).0.id;
        let run = s
            .insert_run(
                &NewRun {
                    account: &acct,
                    repo: "app",
                    workflow: "ci.yml",
                    name: None,
                    event: "push",
                    git_ref: "refs/heads/main",
                    commit: "c",
                    status: RunStatus::Queued,
                    diagnostics: &[],
                    jobs: vec![
                        NewJob {
                            id: "b".into(),
                            runs_on: "x".into(),
                            needs: vec![],
                            steps: vec!["one".into(), "two".into()],
                        },
                        NewJob {
                            id: "a".into(),
                            runs_on: "x".into(),
                            needs: vec!["b".into()],
                            steps: vec!["only".into()],
                        },
                    ],
                    inputs: "{}",
                },
                crate::test_util::now(),
            )
            .unwrap();
        s.append_step_log(run, "b", 0, "é1\n").unwrap();
        s.append_step_log(run, "b", 0, "two\n").unwrap();
        s.append_step_log(run, "a", 0, "<a>\n").unwrap();
        // "é" is two bytes: the offset after the first line is 4.
        let (status, tails) = s
            .step_log_tails(run, None, &|j, i| if (j, i) == ("b", 0) { 4 } else { 0 })
            .unwrap()
            .unwrap();
        assert_eq!(status, RunStatus::Queued);
        let got: Vec<(&str, u32, u64, &str)> = tails
            .iter()
            .map(|t| (t.job.as_str(), t.index, t.from, t.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [("b", 0, 4, "two\n"), ("b", 1, 0, ""), ("a", 0, 0, "<a>\n")],
            "jobs in their order, then steps"
        );
        let (_, only_a) = s
            .step_log_tails(run, Some("a"), &|_, _| 4)
            .unwrap()
            .unwrap();
        assert_eq!(only_a.len(), 1);
        assert_eq!(only_a[0].text, "");
        assert!(s
            .step_log_tails(run + 1, None, &|_, _| 0)
            .unwrap()
            .is_none());
    }
}
