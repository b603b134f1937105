//! Whole workflows through one `check` helper: the diagnostics (or the accepted plan) as
//! text, compared with an expectation (`UPDATE_EXPECT=1` rewrites them).

use expect_test::{expect, Expect};

fn check(src: &str, want: Expect) {
    let got = match spindle_pipeline::parse(src, "w.yml") {
        Ok(wf) => {
            let mut s = String::from("ok\n");
            for (i, stage) in wf.graph.stages().unwrap().iter().enumerate() {
                s.push_str(&format!("stage {i}: {}\n", stage.join(", ")));
            }
            for j in &wf.jobs {
                s.push_str(&format!(
                    "job {} on {}: {} step(s)",
                    j.id,
                    j.runs_on,
                    j.steps.len()
                ));
                if let Some(spindle_pipeline::MatrixPlan::Static { combinations }) = &j.matrix {
                    s.push_str(&format!(", {} matrix job(s)", combinations.len()));
                }
                s.push('\n');
            }
            s
        }
        Err(d) => d.0.iter().map(|d| format!("{d}\n")).collect(),
    };
    want.assert_eq(&got);
}

#[test]
fn a_release_workflow_is_accepted() {
    check(
        r#"name: release
run-name: release of ${{ github.ref_name }}
on:
  push:
    branches: [main, 'release/**']
    paths-ignore: ['docs/**']
  schedule:
    - cron: '30 5 * * 1-5'
  workflow_dispatch:
    inputs:
      level:
        type: choice
        options: [dev, prod]
        default: dev
        required: true
      dry:
        type: boolean
        default: false
permissions:
  contents: read
env:
  DEB_BUILD_OPTIONS: nocheck
concurrency:
  group: release-${{ github.ref }}
  cancel-in-progress: true
jobs:
  build:
    runs-on: debian-12
    strategy:
      fail-fast: false
      max-parallel: 2
      matrix:
        arch: [amd64, arm64]
        profile: [release]
        include:
          - arch: amd64
            lto: true
    outputs:
      version: ${{ steps.ver.outputs.version }}
    timeout-minutes: 30
    services:
      db:
        image: postgres-16
        ports: ['5432:5432']
        env:
          POSTGRES_PASSWORD: ${{ secrets.DB_PASSWORD }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/cache@v4
        with:
          path: target
          key: cargo-${{ hashFiles('**/Cargo.lock') }}
      - id: ver
        run: echo "version=1.${{ github.run_number }}" >> "$GITHUB_OUTPUT"
        shell: bash
      - uses: spindle/pkg-build@v1
        with:
          spec: packages/twine.toml
        if: ${{ matrix.arch == 'amd64' }}
        continue-on-error: ${{ matrix.lto }}
  publish:
    needs: build
    if: github.ref == 'refs/heads/main' && needs.build.result == 'success'
    runs-on: debian-12
    environment:
      name: dev
      url: https://dev.example.test
    steps:
      - uses: spindle/publish@v1
        with: {repo: dev, packages: '*.deb'}
      - uses: spindle/deploy@v1
        with: {group: twine-dev}
        timeout-minutes: 10
"#,
        expect![[r#"
            ok
            stage 0: build
            stage 1: publish
            job build on debian-12: 4 step(s), 2 matrix job(s)
            job publish on debian-12: 2 step(s)
        "#]],
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    check(
        r#"on:
  push:
    branches: [main]
    branches-ignore: [wip]
  pull_request:
  schedule:
    - cron: '61 * * * *'
jobs:
  a:
    needs: [b]
    runs-on: [self-hosted, linux]
    container: debian
    steps:
      - uses: actions/setup-node@v4
      - run: echo ${{ github.sha == }}
        shell: pwsh
      - uses: actions/cache@v4
        with:
          paths: x
  b:
    needs: c
    if: ${{ unknown.thing }}
    runs-on: debian
    timeout-minute: 5
    steps:
      - run: echo ${{ secrets.X }}
        if: secrets.X != ''
  c:
    needs: a
    runs-on: debian
    steps:
      - run: make
        uses: actions/checkout@v4
"#,
        expect![[r#"
            w.yml:4:22: on.push.branches-ignore: invalid: `branches` and `branches-ignore` cannot both filter one event
            w.yml:5:3: on.pull_request: refused: `on.pull_request` is refused by Spindle: Spindle's git hosting has no pull requests, issues or releases
            w.yml:7:13: on.schedule[0].cron: invalid: cron `61 * * * *`: minute: 61 is outside 0-59
            w.yml:10:12: jobs.a.needs: graph: jobs need each other in a cycle: a → b → c → a
            w.yml:11:14: jobs.a.runs-on: refused: `runs-on` as a sequence is refused by Spindle: name one image or tag as a string
            w.yml:12:5: jobs.a.container: refused: `jobs.<job_id>.container` is refused by Spindle: every job already runs in a fresh instance of its `runs-on` image
            w.yml:14:15: jobs.a.steps[0].uses: refused: `uses: actions/setup-node@v4` is refused by Spindle: only the built-in actions run (actions/checkout, actions/cache, actions/upload-artifact, actions/download-artifact, spindle/pkg-build, spindle/publish, spindle/bake, spindle/deploy)
            w.yml:15:37: jobs.a.steps[1].run: expression: expected a value before the end
            w.yml:16:16: jobs.a.steps[1].shell: refused: `shell: pwsh` is refused by Spindle: use bash, sh or python
            w.yml:19:11: jobs.a.steps[2].with.paths: invalid: `actions/cache` has no input `paths` (inputs: path, key, restore-keys, lookup-only, fail-on-cache-miss, enableCrossOsArchive)
            w.yml:19:11: jobs.a.steps[2].with: invalid: `actions/cache` needs the input `path`
            w.yml:19:11: jobs.a.steps[2].with: invalid: `actions/cache` needs the input `key`
            w.yml:22:13: jobs.b.if: expression: unknown context `unknown` (known: github, env, vars, secrets, inputs, matrix, needs, steps, job, runner)
            w.yml:24:5: jobs.b.timeout-minute: unknown-key: unknown key `timeout-minute` under `jobs.<job_id>`; did you mean `timeout-minutes`?
            w.yml:27:13: jobs.b.steps[0].if: expression: context `secrets` is not available here (available: github, env, vars, inputs, matrix, needs, steps, job, runner)
            w.yml:33:15: jobs.c.steps[0]: invalid: a step has `run` or `uses`, not both
        "#]],
    );
}

#[test]
fn yaml_problems_are_positioned() {
    check(
        "on: push\non: push\njobs:\n  a: &x\n    runs-on: d\n    steps: [{run: x}]\n  b: *x\n",
        expect![[r#"
            w.yml:2:1: syntax: duplicate key `on` (first at 1:1)
            w.yml:7:6: syntax: YAML aliases are not supported in workflows
            w.yml:7:6: jobs.b: invalid: expected a mapping, found null
        "#]],
    );
    check(
        "on: [push\n",
        expect![[r#"
        w.yml:2:1: syntax: YAML: while parsing a flow sequence, expected ',' or ']'
    "#]],
    );
    check(
        "- a\n- b\n",
        expect![[r#"
        w.yml:1:1: invalid: expected a mapping of workflow keys, found a sequence
    "#]],
    );
    check(
        "",
        expect![[r#"
        w.yml:1:1: syntax: the workflow is empty
    "#]],
    );
}

#[test]
fn expression_positions_point_inside_the_file() {
    check(
        "on: push\njobs:\n  a:\n    runs-on: d\n    steps:\n      - run: |\n          echo one\n          echo ${{ matrix.x + }} ${{ nope() }}\n      - run: \"echo ${{ github.sha }} ${{ inputs.x ==  }}\"\n        if: github.sha ==\n",
        expect![[r#"
            w.yml:8:29: jobs.a.steps[0].run: expression: unexpected character `+`
            w.yml:8:38: jobs.a.steps[0].run: expression: unknown function `nope`
            w.yml:9:55: jobs.a.steps[1].run: expression: expected a value before the end
            w.yml:10:26: jobs.a.steps[1].if: expression: expected a value before the end
        "#]],
    );
}

#[test]
fn dispatch_inputs_and_on_forms() {
    check(
        "on:\n  workflow_dispatch:\n    inputs:\n      env:\n        type: environment\n      pick:\n        type: choice\n      n:\n        type: number\n        default: abc\n      flag:\n        type: boolean\n        default: 'yes'\n        required: maybe\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x}]\n",
        expect![[r#"
            w.yml:5:15: on.workflow_dispatch.inputs.env.type: refused: `type: environment` is refused by Spindle: environments are not listed to choose from
            w.yml:7:15: on.workflow_dispatch.inputs.pick: invalid: a `choice` input needs `options`
            w.yml:10:18: on.workflow_dispatch.inputs.n.default: invalid: the default does not fit type `number`
            w.yml:13:18: on.workflow_dispatch.inputs.flag.default: invalid: the default does not fit type `boolean`
            w.yml:14:19: on.workflow_dispatch.inputs.flag.required: invalid: expected true or false, found a string
        "#]],
    );
    check(
        "on: [push, issues, nonsense]\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x}]\n",
        expect![[r#"
            w.yml:1:12: on.issues: refused: `on.issues` is refused by Spindle: Spindle's git hosting has no pull requests, issues or releases
            w.yml:1:20: on.nonsense: unknown-key: unknown event `nonsense`
        "#]],
    );
    check(
        "on: pull_request\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x}]\n",
        expect![[r#"
            w.yml:1:5: on.pull_request: refused: `on.pull_request` is refused by Spindle: Spindle's git hosting has no pull requests, issues or releases
        "#]],
    );
}

#[test]
fn builtin_inputs_are_checked() {
    check(
        "on: push\njobs:\n  a:\n    runs-on: d\n    steps:\n      - uses: spindle/deploy@v1\n        with: {stack: s, group: g}\n      - uses: spindle/deploy@v1\n      - uses: spindle/bake\n        with:\n          recipe: x.pkr.hcl\n          extra: 1\n      - uses: ./local\n      - uses: docker://debian\n      - run: x\n        with: {a: b}\n      - id: s\n        run: x\n      - id: s\n        run: y\n      - uses: actions/upload-artifact@v4\n        with: {path: out, if-no-files-found: fail, compression-level: 6}\n      - uses: actions/checkout@v4\n        with: {submodules: '${{ inputs.sub }}', clean: 'no'}\n",
        expect![[r#"
            w.yml:7:15: jobs.a.steps[0].with: invalid: `spindle/deploy` needs exactly one of stack, group
            w.yml:8:15: jobs.a.steps[1].with: invalid: `spindle/deploy` needs exactly one of stack, group
            w.yml:12:11: jobs.a.steps[2].with.extra: invalid: `spindle/bake` has no input `extra` (inputs: recipe, var)
            w.yml:13:15: jobs.a.steps[3].uses: refused: `uses: ./local` is refused by Spindle: only the built-in actions run (actions/checkout, actions/cache, actions/upload-artifact, actions/download-artifact, spindle/pkg-build, spindle/publish, spindle/bake, spindle/deploy)
            w.yml:14:15: jobs.a.steps[4].uses: refused: `uses: docker://debian` is refused by Spindle: only the built-in actions run (actions/checkout, actions/cache, actions/upload-artifact, actions/download-artifact, spindle/pkg-build, spindle/publish, spindle/bake, spindle/deploy)
            w.yml:16:15: jobs.a.steps[5].with: invalid: `with` belongs to `uses` steps
            w.yml:19:13: jobs.a.steps[7].id: invalid: step id `s` is used twice (first at 17:13)
            w.yml:22:46: jobs.a.steps[8].with.if-no-files-found: invalid: `actions/upload-artifact` input `if-no-files-found` is `fail`: expected warn, error, ignore
            w.yml:24:56: jobs.a.steps[9].with.clean: invalid: `actions/checkout` input `clean` is `no`: expected true, false
        "#]],
    );
}

#[test]
fn needs_on_a_refused_job_is_not_a_second_mistake() {
    check(
        "on: push\njobs:\n  call:\n    uses: org/repo/.github/workflows/x.yml@v1\n  after:\n    needs: [call, ghost]\n    runs-on: d\n    steps: [{run: x}]\n",
        expect![[r#"
            w.yml:4:5: jobs.call.uses: refused: `jobs.<job_id>.uses` is refused by Spindle: reusable workflows are not supported
            w.yml:6:12: jobs.after.needs: graph: job `after` needs `ghost`, which is not a job of this workflow
        "#]],
    );
}

#[test]
fn needs_and_steps_in_expressions_must_be_declared() {
    check(
        "on: push\njobs:\n  a:\n    runs-on: d\n    outputs:\n      v: ${{ steps.ver.outputs.v }}\n    steps:\n      - id: version\n        run: x\n  b:\n    needs: a\n    if: needs.a.result == 'success' && needs.c.result\n    runs-on: d\n    steps:\n      - run: echo ${{ needs['A'].outputs.v }} ${{ steps.version.outputs.v }}\n",
        expect![[r#"
            w.yml:6:14: jobs.a.outputs.v: expression: job `a` has no step with id `ver`
            w.yml:12:40: jobs.b.if: expression: job `b` does not need `c`
            w.yml:15:51: jobs.b.steps[0].run: expression: job `b` has no step with id `version`
        "#]],
    );
}
