use super::*;

fn run_info() -> RunInfo {
    RunInfo {
        run_attempt: 1,
        run_id: 7,
        repository: "dev/app".into(),
        workflow: ".github/workflows/ci.yml".into(),
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        sha: "c0ffee".into(),
        inputs: Map::new(),
    }
}

fn workflow(src: &str) -> crate::Workflow {
    crate::parse(src, "w.yml").unwrap_or_else(|d| panic!("{d:?}"))
}

fn run_plan(p: &StepPlan) -> (&str, &[String], &str, &BTreeMap<String, String>) {
    match p {
        StepPlan::Run {
            script,
            argv,
            workdir,
            env,
            ..
        } => (script.as_str(), argv.as_slice(), workdir.as_str(), env),
        other => panic!("not a run: {other:?}"),
    }
}

#[test]
fn shells_are_called_as_github_calls_them() {
    for (shell, want) in [
        (Some("bash"), "bash --noprofile --norc -eo pipefail /s"),
        (Some("sh"), "sh -e /s"),
        (Some("python"), "python3 /s"),
    ] {
        assert_eq!(shell_argv(shell, "/s").join(" "), want, "{shell:?}");
    }
    let wrapped = exec_argv(&shell_argv(Some("sh"), "/s"), "/w d");
    assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
    assert!(wrapped[2].starts_with("exec 2>&1;"));
    assert_eq!(wrapped[3..], ["sh", "/w d", "sh", "-e", "/s"]);
    let default = shell_argv(None, "/s");
    assert_eq!(default[0], "/bin/sh");
    assert!(default[2].contains("exec bash -e") && default[2].contains("exec sh -e"));
    assert_eq!(default.last().unwrap(), "/s");
}

#[test]
fn output_and_env_files_are_read_with_heredocs_and_bad_lines_named() {
    for (text, want) in [
        (
            "a=1\nb=two words\n",
            Ok(vec![("a", "1"), ("b", "two words")]),
        ),
        ("x=a=b\n\n", Ok(vec![("x", "a=b")])),
        (
            "m<<EOF\nline 1\nline 2\nEOF\nz=9\n",
            Ok(vec![("m", "line 1\nline 2"), ("z", "9")]),
        ),
        (
            "m<<EOF\nnever closed\n",
            Err("line 1: `m<<EOF` is not closed by a line `EOF`"),
        ),
        (
            "ok=1\njunk\n",
            Err("line 2: expected `name=value` or `name<<DELIMITER`, got `junk`"),
        ),
        ("1a=x\n", Err("line 1: `1a` is not a valid name")),
    ] {
        let got = parse_assignments(text);
        let want: Result<Vec<(String, String)>, String> = want
            .map(|v| {
                v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            })
            .map_err(String::from);
        assert_eq!(got, want, "{text:?}");
    }
    let f = StepFiles::parse(Some("o=1\n"), Some("bad\n"), None).unwrap_err();
    assert_eq!(
        f,
        "GITHUB_ENV: line 1: expected `name=value` or `name<<DELIMITER`, got `bad`"
    );
}

const WF: &str = "on: push
env:
  LEVEL: wf
  WHERE: ${{ github.ref_name }}
jobs:
  build:
    runs-on: img
    env:
      LEVEL: job
    outputs:
      version: ${{ steps.v.outputs.version }}
      missing: ${{ steps.skipped.outputs.x }}
    steps:
      - id: v
        run: echo version=1.2 >> $GITHUB_OUTPUT
      - run: echo ${{ steps.v.outputs.version }} on ${{ env.WHERE }}
        working-directory: sub
        env:
          LEVEL: step ${{ env.LEVEL }}
      - if: failure()
        id: skipped
        run: echo only on failure
      - if: always()
        run: echo always
        shell: bash
      - uses: actions/checkout@v4
      - uses: actions/cache@v4
        with: {path: x, key: y}
  later:
    needs: build
    runs-on: img
    steps:
      - run: echo ${{ needs.build.outputs.version }} ${{ needs.build.result }}
";

#[test]
fn a_step_sees_the_layers_of_env_earlier_outputs_and_github_variables() {
    let wf = workflow(WF);
    let info = run_info();
    let job = wf.job("build").unwrap();
    let mut scope = JobScope::new(&info, &wf.env, job, &BTreeMap::new()).unwrap();
    assert!(scope.job_condition().unwrap());

    let first = scope.plan(0);
    let (script, argv, workdir, env) = run_plan(&first);
    assert_eq!(script, "echo version=1.2 >> $GITHUB_OUTPUT");
    assert_eq!(argv.last().unwrap(), "/__w/_steps/step-0.sh");
    assert_eq!(workdir, WORKSPACE);
    assert_eq!(env["LEVEL"], "job");
    assert_eq!(env["WHERE"], "main");
    assert_eq!(env["GITHUB_SHA"], "c0ffee");
    assert_eq!(env["GITHUB_OUTPUT"], "/__w/_temp/output-0");
    assert_eq!(env["PATH"], DEFAULT_PATH);
    assert_eq!(env["HOME"], "/tmp");

    let files = StepFiles::parse(
        Some("version=1.2\n"),
        Some("ADDED=yes\n"),
        Some("/opt/tool/bin\n"),
    )
    .unwrap();
    scope.record(0, Outcome::Success, false, &files);

    let second = scope.plan(1);
    let (script, _, workdir, env) = run_plan(&second);
    assert_eq!(script, "echo 1.2 on main");
    assert_eq!(workdir, "/__w/workspace/sub");
    assert_eq!(env["LEVEL"], "step job");
    assert_eq!(env["ADDED"], "yes");
    assert_eq!(env["PATH"], format!("/opt/tool/bin:{DEFAULT_PATH}"));
    scope.record(1, Outcome::Success, false, &StepFiles::default());

    // No failure so far: `failure()` skips, `always()` runs.
    assert_eq!(scope.plan(2), StepPlan::Skip);
    assert!(matches!(scope.plan(3), StepPlan::Run { .. }));
    assert!(
        matches!(&scope.plan(4), StepPlan::Builtin { log } if log.contains("c0ffee")),
        "checkout is a no-op that succeeds"
    );
    assert!(matches!(
        &scope.plan(5),
        StepPlan::Fail { reason, .. } if reason == "`uses: actions/cache@v4` is not executed by this daemon yet; only actions/checkout is"
    ));

    let (result, problems) = scope.finish();
    assert_eq!(result.result, Outcome::Success);
    assert_eq!(result.outputs["version"], "1.2");
    // A step that never ran has no outputs: the output is empty, as on GitHub.
    assert_eq!(result.outputs["missing"], "");
    assert!(problems.is_empty(), "{problems:?}");

    // The next job sees the output and result through `needs`.
    let later = wf.job("later").unwrap();
    let needs = BTreeMap::from([("build".to_string(), result)]);
    let scope = JobScope::new(&info, &wf.env, later, &needs).unwrap();
    let p = scope.plan(0);
    assert_eq!(run_plan(&p).0, "echo 1.2 success");
}

#[test]
fn a_failure_skips_later_steps_unless_they_ask_and_continue_on_error_keeps_going() {
    let wf = workflow(
        "on: push
jobs:
  a:
    runs-on: img
    steps:
      - id: flaky
        run: exit 1
        continue-on-error: true
      - run: exit 3
      - run: echo skipped
      - if: failure()
        run: echo cleanup ${{ steps.flaky.outcome }} ${{ steps.flaky.conclusion }}
",
    );
    let info = run_info();
    let job = &wf.jobs[0];
    let mut scope = JobScope::new(&info, &wf.env, job, &BTreeMap::new()).unwrap();
    let StepPlan::Run {
        continue_on_error, ..
    } = scope.plan(0)
    else {
        panic!()
    };
    assert!(continue_on_error);
    scope.record(0, Outcome::Failure, true, &StepFiles::default());
    assert!(matches!(
        scope.plan(1),
        StepPlan::Run {
            continue_on_error: false,
            ..
        }
    ));
    scope.record(1, Outcome::Failure, false, &StepFiles::default());
    assert_eq!(scope.plan(2), StepPlan::Skip);
    let p = scope.plan(3);
    assert_eq!(run_plan(&p).0, "echo cleanup failure success");
    assert_eq!(scope.finish().0.result, Outcome::Failure);
}

#[test]
fn timeouts_conditions_and_cancellation_are_evaluated() {
    let wf = workflow(
        "on: push
jobs:
  a:
    runs-on: img
    if: github.ref == 'refs/heads/other'
    steps:
      - run: sleep 1
        timeout-minutes: 2
      - run: echo x
        timeout-minutes: ${{ github.run_id }}
      - if: cancelled()
        run: echo cancelled
      - if: ${{ fromJSON('[') }}
        run: echo broken
",
    );
    let info = run_info();
    let mut scope = JobScope::new(&info, &wf.env, &wf.jobs[0], &BTreeMap::new()).unwrap();
    assert!(!scope.job_condition().unwrap());
    assert!(
        matches!(scope.plan(0), StepPlan::Run { timeout_minutes, .. } if timeout_minutes == 2.0)
    );
    assert!(
        matches!(scope.plan(1), StepPlan::Run { timeout_minutes, .. } if timeout_minutes == 7.0)
    );
    assert_eq!(scope.plan(2), StepPlan::Skip);
    let StepPlan::Fail { reason, .. } = scope.plan(3) else {
        panic!()
    };
    assert!(reason.starts_with("jobs.a.steps[3].if: "), "{reason}");
    scope.cancel();
    assert!(matches!(scope.plan(2), StepPlan::Run { .. }));
    assert_eq!(scope.plan(0), StepPlan::Skip);
    assert_eq!(scope.finish().0.result, Outcome::Cancelled);
}

#[test]
fn the_network_key_is_a_plain_boolean() {
    let on = workflow("on: push\njobs:\n  a:\n    runs-on: i\n    x-spindle-network: true\n    steps: [{run: x}]\n");
    assert!(on.jobs[0].network);
    let off = workflow("on: push\njobs:\n  a:\n    runs-on: i\n    steps: [{run: x}]\n");
    assert!(!off.jobs[0].network);
    let bad = crate::parse(
        "on: push\njobs:\n  a:\n    runs-on: i\n    x-spindle-network: yes please\n    steps: [{run: x}]\n",
        "w.yml",
    )
    .unwrap_err();
    assert_eq!(
        bad.0[0].to_string(),
        "w.yml:5:24: jobs.a.x-spindle-network: invalid: expected true or false, found a string"
    );
}

#[test]
fn logs_are_bounded_on_a_character_boundary() {
    assert_eq!(bounded_log("short"), "short");
    let long = "é".repeat(LOG_LIMIT);
    let cut = bounded_log(&long);
    assert!(cut.len() < LOG_LIMIT + 100);
    assert!(
        cut.ends_with("more bytes not kept]\n"),
        "{}",
        &cut[cut.len() - 80..]
    );
}
