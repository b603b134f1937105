//! Which jobs a re-run of a run's failed jobs runs again (issue #17 items 4 and 6): the jobs
//! that failed or were cancelled, and every job that needs one of them, directly or through
//! other jobs (they were skipped, or ran on outputs that will change). Every other job keeps
//! its result and outputs from the earlier attempt. Pure.

use std::collections::BTreeSet;

use crate::schedule::{JobState, JobView};

/// The ids of the jobs to run again, in no particular order; empty when nothing failed.
pub fn failed_and_dependents(jobs: &[JobView<'_>]) -> BTreeSet<String> {
    let mut again: BTreeSet<String> = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Failed | JobState::Cancelled))
        .map(|j| j.id.to_string())
        .collect();
    loop {
        let before = again.len();
        for j in jobs {
            if !again.contains(j.id) && j.needs.iter().any(|n| again.contains(n)) {
                again.insert(j.id.to_string());
            }
        }
        if again.len() == before {
            return again;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_jobs_and_everything_downstream_run_again() {
        use JobState::*;
        // (job, needs, state) per run; the jobs that run again.
        type Job<'a> = (&'a str, &'a [&'a str], JobState);
        let cases: &[(&[Job<'_>], &[&str])] = &[
            (&[("a", &[], Succeeded), ("b", &["a"], Succeeded)], &[]),
            (
                &[
                    ("build", &[], Succeeded),
                    ("test", &["build"], Failed),
                    ("lint", &["build"], Succeeded),
                    ("ship", &["test", "lint"], Skipped),
                    ("notify", &["ship"], Skipped),
                ],
                &["notify", "ship", "test"],
            ),
            (
                &[
                    ("a", &[], Cancelled),
                    ("b", &[], Skipped),
                    ("c", &["b"], Skipped),
                ],
                &["a"],
            ),
            // Listed before the job it needs: still found.
            (
                &[("late", &["x"], Skipped), ("x", &[], Failed)],
                &["late", "x"],
            ),
        ];
        for (jobs, want) in cases {
            let needs: Vec<Vec<String>> = jobs
                .iter()
                .map(|(_, n, _)| n.iter().map(|s| s.to_string()).collect())
                .collect();
            let views: Vec<JobView<'_>> = jobs
                .iter()
                .zip(&needs)
                .map(|((id, _, state), needs)| JobView {
                    id,
                    needs,
                    state: *state,
                })
                .collect();
            let got: Vec<String> = failed_and_dependents(&views).into_iter().collect();
            assert_eq!(got, *want, "{jobs:?}");
        }
    }
}
