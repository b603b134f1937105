//! Matrix expansion, the job graph and cron, against the examples in GitHub's documentation
//! ("Running variations of jobs in a workflow", "Using jobs", "Events that trigger
//! workflows"), written out by hand.

use serde_json::{json, Value};
use spindle_pipeline::cron::Cron;
use spindle_pipeline::matrix::{expand, MatrixError};
use spindle_pipeline::{parse, MatrixPlan};

/// Expands the `strategy.matrix` of a one-job workflow read from YAML.
fn matrix_of(yaml: &str) -> Vec<Value> {
    let src = format!(
        "on: push\njobs:\n  j:\n    runs-on: debian\n    strategy:\n      matrix:\n{}\n    steps:\n      - run: echo\n",
        yaml.lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let wf = parse(&src, "m.yml").unwrap_or_else(|e| panic!("{e}"));
    match &wf.jobs[0].matrix {
        Some(MatrixPlan::Static { combinations }) => {
            combinations.iter().cloned().map(Value::Object).collect()
        }
        other => panic!("not static: {other:?}"),
    }
}

#[test]
fn include_extends_matching_combinations_and_adds_the_rest() {
    let got = matrix_of(
        "fruit: [apple, pear]\nanimal: [cat, dog]\ninclude:\n  - color: green\n  - color: pink\n    animal: cat\n  - fruit: apple\n    shape: circle\n  - fruit: banana\n  - fruit: banana\n    animal: cat",
    );
    assert_eq!(
        got,
        vec![
            json!({"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}),
            json!({"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}),
            json!({"fruit": "pear", "animal": "cat", "color": "pink"}),
            json!({"fruit": "pear", "animal": "dog", "color": "green"}),
            json!({"fruit": "banana"}),
            json!({"fruit": "banana", "animal": "cat"}),
        ]
    );
}

#[test]
fn exclude_removes_partial_matches() {
    let got = matrix_of(
        "os: [macos-latest, windows-latest]\nversion: [12, 14, 16]\nenvironment: [staging, production]\nexclude:\n  - os: macos-latest\n    version: 12\n    environment: production\n  - os: windows-latest\n    version: 16",
    );
    assert_eq!(got.len(), 9);
    assert!(
        !got.contains(&json!({"os": "macos-latest", "version": 12, "environment": "production"}))
    );
    assert!(got
        .iter()
        .all(|c| !(c["os"] == "windows-latest" && c["version"] == 16)));
    assert_eq!(
        got[0],
        json!({"os": "macos-latest", "version": 12, "environment": "staging"})
    );
}

#[test]
fn include_alone_makes_its_entries_the_combinations() {
    let got = matrix_of(
        "include:\n  - site: production\n    datacenter: site-a\n  - site: staging\n    datacenter: site-b",
    );
    assert_eq!(
        got,
        vec![
            json!({"site": "production", "datacenter": "site-a"}),
            json!({"site": "staging", "datacenter": "site-b"}),
        ]
    );
}

#[test]
fn include_never_overwrites_an_original_value() {
    let got = matrix_of(
        "os: [windows-latest, ubuntu-latest]\nnode: [14, 16]\ninclude:\n  - os: windows-latest\n    node: 16\n    npm: 6\n  - os: windows-latest\n    node: 17",
    );
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[1],
        json!({"os": "windows-latest", "node": 16, "npm": 6})
    );
    assert_eq!(got[4], json!({"os": "windows-latest", "node": 17}));
}

#[test]
fn matrix_errors() {
    let m =
        |v: Value| -> Vec<(String, Value)> { v.as_object().unwrap().clone().into_iter().collect() };
    assert_eq!(
        expand(&m(json!({"a": []}))),
        Err(MatrixError::NotAList("a".into()))
    );
    assert_eq!(
        expand(&m(json!({"a": "x"}))),
        Err(MatrixError::NotAList("a".into()))
    );
    assert_eq!(
        expand(&m(json!({"include": [1]}))),
        Err(MatrixError::BadEntries("include"))
    );
    assert_eq!(
        expand(&m(json!({"a": [1], "exclude": [{"a": 1}]}))),
        Err(MatrixError::Empty)
    );
    let big: Vec<u32> = (0..17).collect();
    assert_eq!(
        expand(&m(json!({"a": big, "b": big}))),
        Err(MatrixError::TooMany(289))
    );
}

#[test]
fn matrix_from_an_expression_is_planned_at_run_time() {
    let src = "on: push\njobs:\n  j:\n    runs-on: debian\n    strategy:\n      matrix: ${{ fromJSON(needs.a.outputs.m) }}\n    needs: a\n    steps: [{run: x}]\n  a:\n    runs-on: debian\n    steps: [{run: x}]\n";
    let wf = parse(src, "d.yml").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        wf.jobs[0].matrix,
        Some(MatrixPlan::Dynamic { .. })
    ));
}

#[test]
fn needs_orders_jobs_into_stages() {
    let src = "on: push\njobs:\n  deploy:\n    needs: [test, package]\n    runs-on: d\n    steps: [{run: x}]\n  build:\n    runs-on: d\n    steps: [{run: x}]\n  test:\n    needs: build\n    runs-on: d\n    steps: [{run: x}]\n  package:\n    needs: build\n    runs-on: d\n    steps: [{run: x}]\n  lint:\n    runs-on: d\n    steps: [{run: x}]\n";
    let wf = parse(src, "g.yml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        wf.graph.stages().unwrap(),
        vec![
            vec!["build", "lint"],
            vec!["test", "package"],
            vec!["deploy"]
        ]
    );
    assert_eq!(wf.graph.find_cycle(), None);
}

#[test]
fn cron_fields() {
    let c = Cron::parse("*/15 9-17 * * MON-FRI").unwrap();
    assert!(c.matches(30, 9, 7, 12, 1));
    assert!(!c.matches(31, 9, 7, 12, 1));
    assert!(!c.matches(30, 8, 7, 12, 1));
    assert!(!c.matches(30, 9, 6, 12, 0));
    // Both day fields restricted: either matches (POSIX).
    let c = Cron::parse("0 0 1 * 0").unwrap();
    assert!(c.matches(0, 0, 1, 3, 3));
    assert!(c.matches(0, 0, 15, 3, 0));
    assert!(!c.matches(0, 0, 15, 3, 3));
    let c = Cron::parse("5/20 0 * JAN,jul *").unwrap();
    assert!(c.matches(45, 0, 2, 7, 4));
    assert!(!c.matches(0, 0, 2, 7, 4));
    assert!(!c.matches(45, 0, 2, 2, 4));
    for (bad, why) in [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 7", "day of week: 7"),
        ("*/0 * * * *", "step `0`"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "`x` is not a number"),
        ("* * * FOO *", "`FOO` is not a number"),
    ] {
        let e = Cron::parse(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
