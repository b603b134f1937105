//! `spindle pipeline dispatch|cancel|logs -f`: starting, stopping and following runs.

use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::Result;
use spindle_model::pipeline::{DispatchRun, PipelineRun};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How often `logs -f` asks for the run.
const POLL: Duration = Duration::from_millis(500);

/// `-f KEY=VALUE` fields as inputs; the first malformed one is named.
fn fields(given: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in given {
        let Some((k, v)) = f.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(hinted(
                format!("-f {f}: expected KEY=VALUE"),
                "e.g. -f environment=prod",
            ));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `spindle pipeline dispatch REPO WORKFLOW [--ref R] [-f KEY=VALUE]…`.
pub fn dispatch(
    cx: &Context,
    repo: &str,
    workflow: &str,
    git_ref: Option<String>,
    given: &[String],
) -> Result<()> {
    let req = DispatchRun {
        workflow: workflow.to_string(),
        git_ref,
        inputs: fields(given)?,
    };
    let c = cx.client()?;
    let account = cx.account()?;
    let run = c
        .dispatch_pipeline_run(&account, repo, &req)
        .map_err(api_err)?;
    if cx.json() {
        output::json(&run);
    } else {
        println!(
            "Dispatched run {} of {} at {} ({})",
            run.id,
            run.workflow,
            run.git_ref,
            run.commit.chars().take(12).collect::<String>()
        );
        println!("  spindle pipeline logs -f {}", run.id);
    }
    Ok(())
}

/// `spindle pipeline cancel RUN`.
pub fn cancel(cx: &Context, run: i64) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let r = c.cancel_pipeline_run(&account, run).map_err(api_err)?;
    if cx.json() {
        output::json(&r);
    } else {
        println!("Cancelling run {} ({})", r.id, r.status);
    }
    Ok(())
}

/// What `logs -f` printed so far of each step: its status and how much of its log.
type Seen = HashMap<(String, u32), (String, usize)>;

/// The lines to print for what changed in `run` since `seen`, and `seen` brought up to date.
fn changes(run: &PipelineRun, job: Option<&str>, seen: &mut Seen) -> Vec<String> {
    let mut out = Vec::new();
    for j in run.jobs.iter().filter(|j| job.is_none_or(|x| x == j.id)) {
        for s in &j.steps {
            let key = (j.id.clone(), s.index);
            let (status, printed) = seen.entry(key).or_insert((String::new(), 0));
            let now = s.status.to_string();
            let tail = s.log.get(*printed..).unwrap_or("");
            // Only whole lines, unless the step has ended.
            let upto = if s.status.is_final() {
                tail.len()
            } else {
                tail.rfind('\n').map_or(0, |i| i + 1)
            };
            for line in tail[..upto].lines() {
                out.push(format!("[{} {}] {line}", j.id, s.index + 1));
            }
            *printed += upto;
            if *status != now {
                if now != "queued" {
                    let code = s
                        .exit_code
                        .map(|c| format!(", exit {c}"))
                        .unwrap_or_default();
                    out.push(format!(
                        "[{} {}] {}: {now}{code}",
                        j.id,
                        s.index + 1,
                        s.name
                    ));
                }
                *status = now;
            }
        }
    }
    out
}

/// `spindle pipeline logs -f RUN [--job J]`: new log lines and status changes as they come,
/// until the run ends; exits non-zero when it didn't succeed.
pub fn follow(cx: &Context, run: i64, job: Option<&str>) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let mut seen = Seen::new();
    loop {
        let r = c.pipeline_run(&account, run).map_err(api_err)?;
        if let Some(j) = job {
            if !r.jobs.iter().any(|x| x.id == j) {
                let have: Vec<&str> = r.jobs.iter().map(|x| x.id.as_str()).collect();
                return Err(hinted(
                    format!("run {run} has no job `{j}`"),
                    format!("its jobs: {}", have.join(", ")),
                ));
            }
        }
        let lines = changes(&r, job, &mut seen);
        if !cx.json() {
            for l in lines {
                println!("{l}");
            }
        }
        if r.status.is_final() {
            if cx.json() {
                output::json(&r);
            } else {
                println!("run {}: {}", r.id, r.status);
                for d in &r.diagnostics {
                    println!("  {d}");
                }
            }
            if r.status != spindle_model::pipeline::RunStatus::Success {
                anyhow::bail!("run {} ended {}", r.id, r.status);
            }
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_model::pipeline::{PipelineJob, PipelineStep, RunStatus};

    fn run(log: &str, status: RunStatus) -> PipelineRun {
        PipelineRun {
            id: 1,
            account_id: "123456789012".into(),
            repo: "app".into(),
            workflow: "ci.yml".into(),
            name: None,
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            commit: "c".into(),
            status: RunStatus::InProgress,
            diagnostics: vec![],
            created: String::new(),
            started: None,
            finished: None,
            jobs: vec![PipelineJob {
                id: "build".into(),
                runs_on: "img".into(),
                needs: vec![],
                status: RunStatus::InProgress,
                started: None,
                finished: None,
                steps: vec![PipelineStep {
                    index: 0,
                    name: "Run make".into(),
                    status,
                    exit_code: status.is_final().then_some(0),
                    started: None,
                    finished: None,
                    log: log.into(),
                }],
            }],
        }
    }

    #[test]
    fn following_prints_each_line_once_and_status_changes() {
        let mut seen = Seen::new();
        let r = run("", RunStatus::Queued);
        assert!(changes(&r, None, &mut seen).is_empty());
        let r = run("one\ntw", RunStatus::InProgress);
        assert_eq!(
            changes(&r, None, &mut seen),
            ["[build 1] one", "[build 1] Run make: in_progress"]
        );
        let r = run("one\ntwo\n", RunStatus::Success);
        assert_eq!(
            changes(&r, None, &mut seen),
            ["[build 1] two", "[build 1] Run make: success, exit 0"]
        );
        assert!(changes(&r, None, &mut seen).is_empty());
        assert!(changes(&r, Some("other"), &mut Seen::new()).is_empty());
    }

    #[test]
    fn fields_are_key_value_pairs() {
        let f = fields(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(f["a"], "1");
        assert_eq!(f["b"], "x=y");
        assert_eq!(f["c"], "");
        let e = fields(&["=1".into()]).unwrap_err();
        assert_eq!(e.to_string(), "-f =1: expected KEY=VALUE");
    }
}
