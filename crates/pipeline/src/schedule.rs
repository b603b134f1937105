//! The runner's pure half: given where each job of a run is, which jobs to start and which to
//! skip next, honouring the `needs` DAG, and how the run ended. The executor (booting a job's
//! instance, running its steps) is later work of issue #17; it will call [`next`] after every
//! change and do what it says.
//!
//! Rules, GitHub's defaults for jobs without an `if:`: a job starts once every job it needs
//! has succeeded; it is skipped as soon as one of them failed, was skipped or was cancelled
//! (so a failure skips everything downstream); at most `max_parallel` jobs run at once, in
//! file order. `if:` conditions such as `always()` are not applied here yet.

/// Where one job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl JobState {
    fn done(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One job as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView<'a> {
    pub id: &'a str,
    pub needs: &'a [String],
    pub state: JobState,
}

/// What to do next with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Start(String),
    /// Skipped because the named job it needs didn't succeed.
    Skip {
        job: String,
        because: String,
    },
}

/// The next moves for a run whose jobs (in file order) are `jobs`. Skips are decided
/// transitively at once: a job that needs a job skipped in this same answer is skipped too.
pub fn next(jobs: &[JobView<'_>], max_parallel: usize) -> Vec<Next> {
    let mut state: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    let index = |id: &str| jobs.iter().position(|j| j.id == id);
    let mut out = Vec::new();
    // Skips first, to a fixed point, so a chain of dependants goes in one answer.
    loop {
        let mut changed = false;
        for (i, j) in jobs.iter().enumerate() {
            if state[i] != JobState::Queued {
                continue;
            }
            let failed = j.needs.iter().find(|n| {
                index(n).is_none_or(|k| {
                    matches!(
                        state[k],
                        JobState::Failed | JobState::Skipped | JobState::Cancelled
                    )
                })
            });
            if let Some(n) = failed {
                state[i] = JobState::Skipped;
                out.push(Next::Skip {
                    job: j.id.to_owned(),
                    because: n.clone(),
                });
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let running = state.iter().filter(|s| **s == JobState::Running).count();
    let mut free = max_parallel.max(1).saturating_sub(running);
    for (i, j) in jobs.iter().enumerate() {
        if free == 0 {
            break;
        }
        let ready = state[i] == JobState::Queued
            && j.needs
                .iter()
                .all(|n| index(n).is_some_and(|k| state[k] == JobState::Succeeded));
        if ready {
            out.push(Next::Start(j.id.to_owned()));
            free -= 1;
        }
    }
    out
}

/// How the run ended, once every job has: failed if any job failed or was cancelled,
/// succeeded otherwise. `None` while a job is queued or running.
pub fn outcome(jobs: &[JobView<'_>]) -> Option<JobState> {
    if !jobs.iter().all(|j| j.state.done()) {
        return None;
    }
    let bad = jobs
        .iter()
        .any(|j| matches!(j.state, JobState::Failed | JobState::Cancelled));
    Some(if bad {
        JobState::Failed
    } else {
        JobState::Succeeded
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    /// `jobs`: `id:state:need,need`; the answer as `+id` (start) and `-id(need)` (skip).
    fn check(jobs: &str, max_parallel: usize, want: &str) {
        let parsed: Vec<(String, Vec<String>, JobState)> = jobs
            .split_whitespace()
            .map(|j| {
                let mut p = j.split(':');
                let id = p.next().unwrap().to_string();
                let state = match p.next().unwrap() {
                    "q" => Queued,
                    "r" => Running,
                    "ok" => Succeeded,
                    "x" => Failed,
                    "s" => Skipped,
                    "c" => Cancelled,
                    o => panic!("state {o}"),
                };
                let needs = p
                    .next()
                    .map(|n| n.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                (id, needs, state)
            })
            .collect();
        let views: Vec<JobView<'_>> = parsed
            .iter()
            .map(|(id, needs, state)| JobView {
                id,
                needs,
                state: *state,
            })
            .collect();
        let got: Vec<String> = next(&views, max_parallel)
            .into_iter()
            .map(|n| match n {
                Next::Start(j) => format!("+{j}"),
                Next::Skip { job, because } => format!("-{job}({because})"),
            })
            .collect();
        assert_eq!(got.join(" "), want, "{jobs} (max {max_parallel})");
    }

    #[test]
    fn jobs_start_when_their_needs_succeed_and_are_skipped_when_one_fails() {
        for (jobs, max, want) in [
            ("a:q b:q:a c:q:a d:q:b,c", 9, "+a"),
            ("a:ok b:q:a c:q:a d:q:b,c", 9, "+b +c"),
            ("a:ok b:q:a c:q:a d:q:b,c", 1, "+b"),
            ("a:ok b:r:a c:q:a d:q:b,c", 1, ""),
            ("a:ok b:ok:a c:r:a d:q:b,c", 9, ""),
            ("a:ok b:ok:a c:ok:a d:q:b,c", 9, "+d"),
            ("a:x b:q:a c:q:a d:q:b,c", 9, "-b(a) -c(a) -d(b)"),
            ("a:ok b:x:a c:q:a d:q:b,c", 9, "-d(b) +c"),
            ("a:c b:q:a", 9, "-b(a)"),
            ("a:q b:q", 0, "+a"),
            ("a:q:nope", 9, "-a(nope)"),
        ] {
            check(jobs, max, want);
        }
    }

    #[test]
    fn a_run_ends_when_every_job_has() {
        let v = |states: &[JobState]| -> Option<JobState> {
            let views: Vec<JobView<'_>> = states
                .iter()
                .map(|s| JobView {
                    id: "j",
                    needs: &[],
                    state: *s,
                })
                .collect();
            outcome(&views)
        };
        assert_eq!(v(&[Succeeded, Running]), None);
        assert_eq!(v(&[Succeeded, Queued]), None);
        assert_eq!(v(&[Succeeded, Succeeded]), Some(Succeeded));
        assert_eq!(v(&[Succeeded, Failed, Skipped]), Some(Failed));
        assert_eq!(v(&[Cancelled]), Some(Failed));
        assert_eq!(v(&[]), Some(Succeeded));
    }
}
