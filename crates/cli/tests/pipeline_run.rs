//! The pipeline executor (issue #17 item 3) through a real daemon and a real `git push`, as
//! root: every job in a fresh instance of a busybox image, steps as uid 1001, logs and
//! statuses in `spindle pipeline logs`, outputs through `needs`, and the sandbox's escapes
//! refused, each for its own reason.

mod common;

use common::{dev_json, ok, stderr, Daemon, BIN};
use spindle_model::pipeline::{PipelineJob, PipelineRun, RunStatus};
use std::time::{Duration, Instant};

const ECHO: &str = "name: echo
on: push
jobs:
  hello:
    runs-on: busybox:ci
    steps:
      - uses: actions/checkout@v4
      - run: echo one
        shell: sh
      - run: |
          echo two
          echo to-stderr >&2
          echo three
        shell: sh
      - name: Workspace
        run: cat README; id -u; id -g; echo \"$GITHUB_SHA\"
";

const FAIL: &str = "name: fail
on: push
jobs:
  breaks:
    runs-on: busybox:ci
    steps:
      - run: echo before; exit 3
      - run: echo never
  after:
    needs: breaks
    runs-on: busybox:ci
    steps:
      - run: echo never either
  missing:
    runs-on: nope:latest
    steps:
      - run: echo no image
";

const OUTPUTS: &str = "name: outputs
on: push
jobs:
  make:
    runs-on: busybox:ci
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - id: v
        run: echo version=4.2 >> \"$GITHUB_OUTPUT\"; echo GREETING=hello >> \"$GITHUB_ENV\"
      - run: echo \"$GREETING ${{ steps.v.outputs.version }}\"
  use:
    needs: make
    runs-on: busybox:ci
    steps:
      - run: echo \"got ${{ needs.make.outputs.version }}\"
";

const MANUAL: &str = "name: manual
on:
  workflow_dispatch:
    inputs:
      who:
        required: true
      loud:
        type: boolean
        default: false
jobs:
  greet:
    runs-on: busybox:ci
    steps:
      - run: echo \"hello ${{ inputs.who }} loud=${{ inputs.loud }} by ${{ github.event_name }}\"
      - run: sleep 1; echo done
";

const SLOW: &str = "name: slow
on: workflow_dispatch
jobs:
  wait:
    runs-on: busybox:ci
    steps:
      - run: echo started; sleep 120
      - run: echo never
";

/// `DATA` is replaced with the daemon's data directory: a job looks for another job's
/// workspace where it is on the host.
const ESCAPE: &str = "name: escape
on: push
jobs:
  write:
    runs-on: busybox:ci
    steps:
      - run: echo ok > \"$GITHUB_WORKSPACE/mine\" && echo ok > /tmp/mine && echo writable
      - run: echo owned > /etc/owned
  peek:
    runs-on: busybox:ci
    steps:
      - run: cat DATA/pipelines/jobs/*/workspace/README
  offline:
    runs-on: busybox:ci
    steps:
      - run: nc -w 1 127.0.0.1 80 </dev/null
      - if: always()
        run: nc -w 1 192.0.2.1 80 </dev/null
  online:
    runs-on: busybox:ci
    x-spindle-network: true
    timeout-minutes: 1
    steps:
      - run: |
          nc -l -p 8080 > /tmp/got &
          sleep 1
          echo ping | nc -w 1 127.0.0.1 8080
          wait
          echo \"server got: $(cat /tmp/got)\"
";

/// Waits until `want` runs exist and all have ended.
fn ended_runs(d: &Daemon, want: usize) -> Vec<PipelineRun> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let list: Vec<PipelineRun> = dev_json(d, &["pipeline", "runs", "app"]);
        let done = list.len() >= want && list.iter().all(|r| r.status.is_final());
        if done || Instant::now() > deadline {
            assert!(done, "runs did not end in time: {list:#?}");
            return list;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_of(d: &Daemon, runs: &[PipelineRun], name: &str) -> PipelineRun {
    let r = runs
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no run `{name}` in {runs:#?}"));
    dev_json(d, &["pipeline", "logs", &r.id.to_string()])
}

fn job<'a>(run: &'a PipelineRun, id: &str) -> &'a PipelineJob {
    run.jobs.iter().find(|j| j.id == id).unwrap()
}

/// A job's step: its status, exit code and log.
fn step(run: &PipelineRun, job_id: &str, i: usize) -> (RunStatus, Option<i32>, String) {
    let s = &job(run, job_id).steps[i];
    (s.status, s.exit_code, s.log.clone())
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_push_runs_each_job_in_a_fresh_sandbox_with_logs_outputs_and_escapes_refused() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    // The runtime prefix allows only a-z and 0-9: `spplr` stands for this area's `sp-plr-`.
    let prefix = format!("spplr{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let data = d.data_dir();
    let project = common::pipeline_project(
        &d,
        &[
            ("echo.yml", ECHO.to_string()),
            ("fail.yml", FAIL.to_string()),
            ("outputs.yml", OUTPUTS.to_string()),
            ("manual.yml", MANUAL.to_string()),
            ("slow.yml", SLOW.to_string()),
            (
                "escape.yml",
                ESCAPE.replace("DATA", &data.display().to_string()),
            ),
        ],
    );
    let (head, pushed) = (project.head, project.pushed);
    let runs = ended_runs(&d, 4);
    eprintln!(
        "4 runs (7 jobs) pushed to all ended: {:.2} s",
        pushed.elapsed().as_secs_f64()
    );

    // Three echo steps and a checkout: success, each step's output in its log, stderr
    // interleaved with stdout, the workspace is the pushed commit, the uid is not root.
    let echo = run_of(&d, &runs, "echo");
    assert_eq!(echo.status, RunStatus::Success, "{echo:#?}");
    let (st, _, log) = step(&echo, "hello", 0);
    assert_eq!(st, RunStatus::Success);
    assert!(log.contains(head.trim()), "{log}");
    assert_eq!(
        step(&echo, "hello", 1),
        (RunStatus::Success, Some(0), "one\n".into())
    );
    assert_eq!(
        step(&echo, "hello", 2),
        (
            RunStatus::Success,
            Some(0),
            "two\nto-stderr\nthree\n".into()
        )
    );
    let (st, code, log) = step(&echo, "hello", 3);
    assert_eq!((st, code), (RunStatus::Success, Some(0)));
    assert_eq!(
        log,
        format!("the pushed readme\n1001\n1001\n{}\n", head.trim())
    );
    assert!(echo
        .jobs
        .iter()
        .flat_map(|j| &j.steps)
        .all(|s| s.started.is_some() && s.finished.is_some()));
    // The text form shows the logs too.
    let o = d.cli(&["--account", "dev", "pipeline", "logs", &echo.id.to_string()]);
    let text = common::stdout(&o);
    assert!(text.contains("to-stderr"), "{text}\n{}", stderr(&o));

    // A failing step fails its job (later steps skipped), a job that needs it is skipped,
    // and a job whose image doesn't exist fails naming it.
    let fail = run_of(&d, &runs, "fail");
    assert_eq!(fail.status, RunStatus::Failure);
    assert_eq!(job(&fail, "breaks").status, RunStatus::Failure);
    assert_eq!(
        step(&fail, "breaks", 0),
        (RunStatus::Failure, Some(3), "before\n".into())
    );
    assert_eq!(step(&fail, "breaks", 1).0, RunStatus::Skipped);
    assert_eq!(job(&fail, "after").status, RunStatus::Skipped);
    assert_eq!(job(&fail, "missing").status, RunStatus::Failure);
    let (_, _, log) = step(&fail, "missing", 0);
    assert_eq!(
        log,
        "jobs.missing.runs-on: image `nope:latest` not found in this account (`spindle image list` shows its images)\n"
    );

    // Step outputs, GITHUB_ENV and job outputs through `needs`.
    let outputs = run_of(&d, &runs, "outputs");
    assert_eq!(outputs.status, RunStatus::Success, "{outputs:#?}");
    assert_eq!(step(&outputs, "make", 1).2, "hello 4.2\n");
    assert_eq!(step(&outputs, "use", 0).2, "got 4.2\n");

    // The escapes, each failing for its own reason.
    let esc = run_of(&d, &runs, "escape");
    assert_eq!(esc.status, RunStatus::Failure);
    assert_eq!(
        step(&esc, "write", 0),
        (RunStatus::Success, Some(0), "writable\n".into()),
        "the workspace and /tmp are writable"
    );
    let (st, code, log) = step(&esc, "write", 1);
    assert_eq!((st, code), (RunStatus::Failure, Some(1)));
    assert!(
        log.contains("/etc/owned") && log.contains("Permission denied"),
        "a write outside the workspace: {log}"
    );
    let (st, _, log) = step(&esc, "peek", 0);
    assert_eq!(st, RunStatus::Failure);
    assert!(
        log.contains("No such file or directory"),
        "another job's workspace is not there: {log}"
    );
    for i in 0..2 {
        let (st, _, log) = step(&esc, "offline", i);
        assert_eq!(st, RunStatus::Failure, "{log}");
        assert!(
            log.contains("Operation not permitted"),
            "a socket without the grant, step {i}: {log}"
        );
    }
    let (st, code, log) = step(&esc, "online", 0);
    assert_eq!(
        (st, code, log.as_str()),
        (RunStatus::Success, Some(0), "server got: ping\n"),
        "with the grant, loopback works"
    );

    // Every job's instance, network and directory is gone.
    let jobs_dir = data.join("pipelines/jobs");
    let left: Vec<_> = std::fs::read_dir(&jobs_dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "job directories left: {left:?}");
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.lines().any(|l| l.contains(&prefix)),
        "namespaces left: {netns}"
    );

    // Dispatch: inputs checked against the workflow's, the run followed with `logs -f`.
    let dev = |args: &[&str]| {
        let mut all = vec!["--account", "dev", "pipeline"];
        all.extend_from_slice(args);
        d.cli(&all)
    };
    let o = dev(&["dispatch", "app", "manual.yml", "-f", "bogus=1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("input `bogus` is not declared (declared: who, loud)")
            && stderr(&o).contains("input `who` is required"),
        "{}",
        stderr(&o)
    );
    let o = dev(&["dispatch", "app", "echo.yml"]);
    assert!(
        stderr(&o).contains("has no `on.workflow_dispatch`"),
        "{}",
        stderr(&o)
    );
    let run: PipelineRun = dev_json(
        &d,
        &[
            "pipeline",
            "dispatch",
            "app",
            "manual.yml",
            "-f",
            "who=ada",
            "--ref",
            "main",
        ],
    );
    assert_eq!(
        (run.event.as_str(), run.git_ref.as_str()),
        ("workflow_dispatch", "refs/heads/main")
    );
    let o = dev(&["logs", "-f", &run.id.to_string()]);
    let text = common::stdout(&o);
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    let want = [
        "[greet 1] hello ada loud=false by workflow_dispatch",
        "[greet 1] Run echo \"hello ${{ inputs.who }} loud=${{ inputs.loud }} by ${{ github.event_name }}\": success, exit 0",
        "[greet 2] done",
        "[greet 2] Run sleep 1; echo done: success, exit 0",
    ];
    for w in want {
        assert_eq!(
            text.lines().filter(|l| *l == w).count(),
            1,
            "`{w}` once in:\n{text}"
        );
    }
    assert!(
        text.ends_with(&format!("run {}: success\n", run.id)),
        "{text}"
    );

    // Cancel: the running step ends, the next doesn't start, the sandbox goes.
    let slow: PipelineRun = dev_json(&d, &["pipeline", "dispatch", "app", "slow.yml"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r: PipelineRun = dev_json(&d, &["pipeline", "logs", &slow.id.to_string()]);
        // Logs are stored when a step ends, so wait for its status.
        if r.jobs[0].steps[0].status == RunStatus::InProgress {
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow step never started: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = Instant::now();
    ok(dev(&["cancel", &slow.id.to_string()]));
    let r = loop {
        let r: PipelineRun = dev_json(&d, &["pipeline", "logs", &slow.id.to_string()]);
        if r.status.is_final() {
            break r;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "cancel took too long: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, RunStatus::Cancelled, "{r:#?}");
    assert_eq!(r.jobs[0].steps[0].status, RunStatus::Cancelled);
    assert_eq!(r.jobs[0].steps[1].status, RunStatus::Skipped);
    let o = dev(&["cancel", &slow.id.to_string()]);
    assert!(
        stderr(&o).contains("already ended: cancelled"),
        "{}",
        stderr(&o)
    );
    let left: Vec<_> = std::fs::read_dir(&jobs_dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "job directories left after cancel: {left:?}"
    );
}
