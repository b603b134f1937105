//! `spindle pipeline dispatch|cancel|logs -f`: starting, stopping and following runs.

use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::Result;
use spindle_client::LogEvent;
use spindle_model::pipeline::{DispatchRun, RerunRun, RunStatus};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long `logs -f` waits before resuming a stream that was cut.
const RETRY: Duration = Duration::from_millis(200);
/// How many cuts `logs -f` resumes from (a daemon that went away ends it sooner: the
/// reconnect fails).
const RECONNECTS: u32 = 1000;

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

/// `spindle pipeline rerun RUN [--failed]`.
pub fn rerun(cx: &Context, run: i64, failed: bool) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let r = c
        .rerun_pipeline_run(&account, run, &RerunRun { failed })
        .map_err(api_err)?;
    if cx.json() {
        output::json(&r);
    } else {
        let reused: Vec<&str> = r
            .jobs
            .iter()
            .filter(|j| j.reused)
            .map(|j| j.id.as_str())
            .collect();
        println!("Run {} (attempt {} of run {run}) queued", r.id, r.attempt);
        if !reused.is_empty() {
            println!("  reusing: {}", reused.join(", "));
        }
        println!("  spindle pipeline logs -f {}", r.id);
    }
    Ok(())
}

/// `spindle ui`: a one-time sign-in URL for the daemon's web page, for this credential and
/// account. The code in it is good once, for a minute; the browser keeps an HttpOnly session
/// cookie instead (the access key never goes into a URL).
pub fn ui(cx: &Context) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let s = c.create_ui_session(&account).map_err(api_err)?;
    let url = format!("{}{}", c.endpoint(), s.login_path);
    if cx.json() {
        output::json(&serde_json::json!({"url": url, "expires_in": s.expires_in}));
    } else {
        println!(
            "Open this URL in a browser on this machine (good once, within {} s):",
            s.expires_in
        );
        println!("  {url}");
    }
    Ok(())
}

/// The status (and exit code) of each step `logs -f` printed last: a reconnected stream
/// sends statuses again, and each change is printed once.
type Seen = HashMap<(String, u32), (RunStatus, Option<i32>)>;

/// The lines `logs -f` prints for one event of the live log (none for `End`).
fn render(ev: &LogEvent, seen: &mut Seen) -> Vec<String> {
    match ev {
        LogEvent::Line {
            job, step, text, ..
        } => text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .map(|l| format!("[{job} {}] {l}", step + 1))
            .collect(),
        LogEvent::Step {
            job,
            step,
            name,
            status,
            exit_code,
        } => {
            let now = (*status, *exit_code);
            if seen.insert((job.clone(), *step), now) == Some(now) {
                return Vec::new();
            }
            let code = exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
            vec![format!("[{job} {}] {name}: {status}{code}", step + 1)]
        }
        LogEvent::End { .. } => Vec::new(),
    }
}

/// `spindle pipeline logs -f RUN [--job J]`: log lines and status changes live, from the
/// daemon's event stream (resumed after the last line if the connection drops), until the
/// run ends; exits non-zero when it didn't succeed.
pub fn follow(cx: &Context, run: i64, job: Option<&str>) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let mut seen = Seen::new();
    let mut last: Option<String> = None;
    let mut drops = 0;
    loop {
        let events = c
            .pipeline_log_events(&account, run, job, last.as_deref())
            .map_err(api_err)?;
        for ev in events {
            let ev = ev.map_err(api_err)?;
            if !cx.json() {
                for l in render(&ev, &mut seen) {
                    println!("{l}");
                }
            }
            match ev {
                LogEvent::Line { id, .. } => last = Some(id),
                LogEvent::End { .. } => return finished(cx, c, &account, run),
                LogEvent::Step { .. } => {}
            }
        }
        // The stream was cut before the run ended: resume after the last line.
        drops += 1;
        if drops > RECONNECTS {
            anyhow::bail!("the log stream of run {run} dropped {RECONNECTS} times; giving up");
        }
        std::thread::sleep(RETRY);
    }
}

/// Prints how run `run` ended (its JSON with `-o json`); an error when it didn't succeed.
fn finished(cx: &Context, c: &spindle_client::Client, account: &str, run: i64) -> Result<()> {
    let r = c.pipeline_run(account, run).map_err(api_err)?;
    if cx.json() {
        output::json(&r);
    } else {
        println!("run {}: {}", r.id, r.status);
        for d in &r.diagnostics {
            println!("  {d}");
        }
    }
    if r.status != RunStatus::Success {
        anyhow::bail!("run {} ended {}", r.id, r.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn following_prints_each_line_and_each_status_change_once() {
        let line = |text: &str| LogEvent::Line {
            job: "build".into(),
            step: 0,
            text: text.into(),
            id: String::new(),
        };
        let step = |status, exit_code| LogEvent::Step {
            job: "build".into(),
            step: 0,
            name: "Run make".into(),
            status,
            exit_code,
        };
        let mut seen = Seen::new();
        let cases: Vec<(LogEvent, &[&str])> = vec![
            (
                step(RunStatus::InProgress, None),
                &["[build 1] Run make: in_progress"],
            ),
            (line("one\n"), &["[build 1] one"]),
            (line("<b>no newline"), &["[build 1] <b>no newline"]),
            (step(RunStatus::InProgress, None), &[]),
            (
                step(RunStatus::Success, Some(0)),
                &["[build 1] Run make: success, exit 0"],
            ),
            (step(RunStatus::Success, Some(0)), &[]),
            (
                LogEvent::End {
                    status: RunStatus::Success,
                },
                &[],
            ),
        ];
        for (ev, want) in cases {
            assert_eq!(render(&ev, &mut seen), want, "{ev:?}");
        }
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
