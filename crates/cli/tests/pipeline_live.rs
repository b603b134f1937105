//! Live pipeline logs, the web page and re-runs (issue #17 items 4 and 6), through a real
//! daemon, a real `git push` and real job sandboxes, as root:
//! - a step's first line arrives over server-sent events while the step still runs, the
//!   stored log is byte for byte what the stream carried, `::add-mask::` values are masked
//!   before either, and `Last-Event-ID` resumes after the line it names;
//! - `/ui/` signs in with a one-time code, shows the run's graph and its logs escaped, and
//!   refuses a form without the session's CSRF token;
//! - `spindle pipeline rerun --failed` runs only the failed job, which reads the outputs of
//!   the job it reuses;
//! - with Debian's `chromium` installed, the run page in headless Chromium shows the graph and
//!   a log line, and its screenshot is kept under `target/pipeline-ui/`.

mod common;

use common::{dev_json, ok, stderr, stdout, Daemon, BIN};
use spindle_client::LogEvent;
use spindle_model::pipeline::{PipelineRun, RunStatus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LIVE: &str = "name: live
on: workflow_dispatch
jobs:
  talk:
    runs-on: busybox:ci
    steps:
      - run: |
          echo first
          echo '::add-mask::hunter2'
          echo 'pw hunter2 <script>alert(1)</script>'
          sleep 8
          echo second
        shell: sh
  after:
    needs: talk
    runs-on: busybox:ci
    steps:
      - run: echo after
        shell: sh
";

/// `use` fails on the first attempt only; it prints the attempt `make` ran in, which a
/// re-run of the failed job must take from the first attempt's outputs.
const FLAKY: &str = "name: flaky
on: workflow_dispatch
jobs:
  make:
    runs-on: busybox:ci
    outputs:
      attempt: ${{ steps.v.outputs.attempt }}
    steps:
      - id: v
        run: echo \"attempt=${{ github.run_attempt }}\" >> \"$GITHUB_OUTPUT\"
        shell: sh
  use:
    needs: make
    runs-on: busybox:ci
    steps:
      - run: echo \"made in attempt ${{ needs.make.outputs.attempt }}, now ${{ github.run_attempt }}\"; test ${{ github.run_attempt }} != 1
        shell: sh
";

fn run(d: &Daemon, id: i64) -> PipelineRun {
    dev_json(d, &["pipeline", "logs", &id.to_string()])
}

fn wait_end(d: &Daemon, id: i64) -> PipelineRun {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let r = run(d, id);
        if r.status.is_final() {
            return r;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {r:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `Cookie` of a browser signed in to `d`'s web page through `spindle ui`.
fn sign_in(d: &Daemon) -> String {
    let o = ok(d.cli(&["--account", "dev", "ui", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let url = v["url"].as_str().unwrap().to_string();
    let code = url.split_once("code=").unwrap().1.to_string();
    let page = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert!(page.contains("id=\"sign-in\""), "{page}");
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let r = match agent
        .post(&login_url(&url))
        .send_form(&[("code", &code), ("next", "/ui/runs")])
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.status(), 303);
    let set = r.header("set-cookie").unwrap().to_string();
    for want in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(want), "{set}");
    }
    // The code is good once.
    let again = agent.post(&login_url(&url)).send_form(&[("code", &code)]);
    assert!(matches!(again, Err(ureq::Error::Status(401, _))));
    set.split(';').next().unwrap().to_string()
}

fn login_url(url: &str) -> String {
    url.split_once('?').unwrap().0.to_string()
}

fn get_page(url: &str, cookie: &str) -> (u16, String) {
    match ureq::get(url).set("cookie", cookie).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

/// Headless Chromium, if this machine has it.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A one-time sign-in URL that lands on `page`.
fn login_to(d: &Daemon, page: &str) -> String {
    let o = ok(d.cli(&["--account", "dev", "ui", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    format!("{}&next={page}", v["url"].as_str().unwrap())
}

fn headless(profile: &Path, args: &[&str]) -> std::process::Output {
    let bin = chromium().unwrap();
    let o = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn logs_stream_live_the_page_shows_them_and_failed_jobs_rerun() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("spplv{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    common::pipeline_project(
        &d,
        &[
            ("live.yml", LIVE.to_string()),
            ("flaky.yml", FLAKY.to_string()),
        ],
    );
    let admin = d.admin();

    // Live: the first line arrives while its step still runs.
    let live: PipelineRun = dev_json(&d, &["pipeline", "dispatch", "app", "live.yml"]);
    let mut lines: Vec<(String, u32, String, String)> = Vec::new();
    let mut first_seen_while = None;
    let mut end = None;
    for ev in admin
        .pipeline_log_events("dev", live.id, None, None)
        .unwrap()
    {
        match ev.unwrap() {
            LogEvent::Line {
                job,
                step,
                text,
                id,
            } => {
                if lines.is_empty() {
                    assert_eq!(text, "first\n");
                    let now = run(&d, live.id);
                    let s = &now.jobs[0].steps[0];
                    first_seen_while = Some((s.status, s.log.clone()));
                }
                lines.push((job, step, text, id));
            }
            LogEvent::End { status } => {
                end = Some(status);
                break;
            }
            LogEvent::Step { .. } => {}
        }
    }
    let (status, log_then) = first_seen_while.expect("no line arrived");
    assert_eq!(
        status,
        RunStatus::InProgress,
        "the first line arrived only after its step ended"
    );
    assert!(!log_then.contains("second"), "{log_then}");
    assert_eq!(end, Some(RunStatus::Success));
    let done = run(&d, live.id);
    let streamed: String = lines
        .iter()
        .filter(|(j, s, _, _)| j == "talk" && *s == 0)
        .map(|(_, _, t, _)| t.as_str())
        .collect();
    let stored = &done.jobs[0].steps[0].log;
    assert_eq!(&streamed, stored, "the stored log is what was streamed");
    assert_eq!(
        stored, "first\npw *** <script>alert(1)</script>\nsecond\n",
        "masked before storing; the mask command is not shown"
    );
    assert_eq!(done.jobs[1].steps[0].log, "after\n");
    // Resuming after the first line starts at the second.
    let mut resumed = admin
        .pipeline_log_events("dev", live.id, Some("talk"), Some(&lines[0].3))
        .unwrap();
    let next = loop {
        match resumed.next().unwrap().unwrap() {
            LogEvent::Line { text, .. } => break text,
            LogEvent::Step { .. } => continue,
            LogEvent::End { .. } => panic!("no line after the resumed position"),
        }
    };
    assert_eq!(next, "pw *** <script>alert(1)</script>\n");
    // `logs -f` prints from the stream, each line once.
    let o = ok(d.cli(&[
        "--account",
        "dev",
        "pipeline",
        "logs",
        "-f",
        &live.id.to_string(),
    ]));
    let text = stdout(&o);
    assert_eq!(text.matches("[talk 1] second\n").count(), 1, "{text}");
    assert!(
        text.ends_with(&format!("run {}: success\n", live.id)),
        "{text}"
    );

    // The web page: signed in with a one-time code; logs escaped; the graph drawn.
    let cookie = sign_in(&d);
    let base = d.endpoint.clone();
    let (st, page) = get_page(&format!("{base}/ui/runs/{}", live.id), &cookie);
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains("pw *** &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("data-from=\"talk\" data-to=\"after\""),
        "{page}"
    );
    let (st, _) = get_page(&format!("{base}/ui/runs/{}", live.id), "spindle_ui=forged");
    assert_eq!(st, 401);
    let (st, list) = get_page(&format!("{base}/ui/runs"), &cookie);
    assert_eq!(st, 200);
    assert!(
        list.contains(&format!("href=\"/ui/runs/{}\"", live.id)),
        "{list}"
    );
    let forged = ureq::post(&format!("{base}/ui/runs/{}/rerun", live.id))
        .set("cookie", &cookie)
        .send_form(&[("csrf", "not-the-token")]);
    assert!(
        matches!(forged, Err(ureq::Error::Status(403, _))),
        "a form without the session's CSRF token is refused"
    );
    // Signing in is audited: the code's creation and its use, with the key that did it.
    let audit = stdout(&ok(d.cli(&["audit", "--kind", "ui", "-o", "json"])));
    for action in ["ui:CreateSession", "ui:SignIn"] {
        assert!(audit.contains(action), "{action} not in {audit}");
    }

    // Re-run of the failed job: `make` is reused with its outputs, `use` runs again.
    let flaky: PipelineRun = dev_json(&d, &["pipeline", "dispatch", "app", "flaky.yml"]);
    let first = wait_end(&d, flaky.id);
    assert_eq!(first.status, RunStatus::Failure, "{first:#?}");
    assert_eq!(first.jobs[1].steps[0].log, "made in attempt 1, now 1\n");
    let o = d.cli(&[
        "--account",
        "dev",
        "pipeline",
        "rerun",
        &live.id.to_string(),
        "--failed",
    ]);
    assert!(
        stderr(&o).contains("has no failed or cancelled job to re-run"),
        "{}",
        stderr(&o)
    );
    let again: PipelineRun = dev_json(
        &d,
        &["pipeline", "rerun", &flaky.id.to_string(), "--failed"],
    );
    assert_eq!((again.attempt, again.rerun_of), (2, Some(flaky.id)));
    let second = wait_end(&d, again.id);
    assert_eq!(second.status, RunStatus::Success, "{second:#?}");
    assert!(second.jobs[0].reused && !second.jobs[1].reused);
    assert_eq!(
        second.jobs[1].steps[0].log, "made in attempt 1, now 2\n",
        "the re-run read the reused job's outputs"
    );

    // Headless Chromium: the run page's DOM has the graph and a log line; a screenshot.
    let Some(_) = chromium() else {
        eprintln!(
            "skipped: the headless Chromium part (no /usr/bin/chromium; Debian's `chromium`)"
        );
        return;
    };
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pipeline-ui");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = d.root().join("chromium");
    let page = format!("/ui/runs/{}", live.id);
    let dom = stdout(&headless(&profile, &["--dump-dom", &login_to(&d, &page)]));
    assert!(dom.contains("<svg class=\"graph\""), "{dom}");
    assert!(dom.contains("data-job=\"after\""), "{dom}");
    assert!(
        dom.contains("pw *** &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    let shot = artifacts.join("run.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            &login_to(&d, &page),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    eprintln!("screenshot: {}", shot.display());
}
