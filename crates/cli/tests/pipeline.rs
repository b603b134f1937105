//! `spindle pipeline validate`: offline, every problem at once, JSON on request, non-zero exit
//! on errors (issue #17 item 2).

mod common;

use common::{stderr, stdout, BIN};
use serde_json::Value;
use std::process::{Command, Output};

const GOOD: &str = "on: push\njobs:\n  build:\n    runs-on: debian-12\n    strategy:\n      matrix:\n        arch: [amd64, arm64]\n    steps:\n      - uses: actions/checkout@v4\n      - run: make\n  ship:\n    needs: build\n    runs-on: debian-12\n    steps:\n      - uses: spindle/publish@v1\n        with: {repo: dev, packages: '*.deb'}\n";

const BAD: &str = "on: pull_request\njobs:\n  a:\n    needs: b\n    runs-on: debian\n    steps:\n      - uses: actions/setup-node@v4\n  b:\n    needs: a\n    runs-on: debian\n    steps:\n      - run: echo ${{ github.sha == }}\n";

fn validate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["pipeline", "validate"])
        .args(args)
        // Offline: no daemon is asked, so no endpoint or credentials matter.
        .env("SPINDLE_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

#[test]
fn valid_and_invalid_files_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let (g, b) = (good.to_str().unwrap(), bad.to_str().unwrap());

    let o = validate(&[g]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("{g}: valid (2 job(s) in 2 stage(s): build ×2 (matrix) → ship)")
    );

    let o = validate(&[g, b]);
    assert!(!o.status.success());
    let out = stdout(&o);
    let want = [
        format!("{b}:1:5: on.pull_request: refused: `on.pull_request` is refused by Spindle"),
        format!("{b}:4:12: jobs.a.needs: graph: jobs need each other in a cycle: a → b → a"),
        format!(
            "{b}:7:15: jobs.a.steps[0].uses: refused: `uses: actions/setup-node@v4` is refused"
        ),
        format!("{b}:12:37: jobs.b.steps[0].run: expression: expected a value before the end"),
    ];
    for w in &want {
        assert!(
            out.lines().any(|l| l.starts_with(w.as_str())),
            "no line `{w}` in:\n{out}"
        );
    }
    assert_eq!(out.lines().count(), want.len() + 1, "{out}");
    assert!(
        stderr(&o).contains("1 of 2 workflow file(s) invalid: 4 problem(s)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_output_has_positions_stages_and_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let missing = dir.path().join("missing.yml");
    let o = validate(&[
        "--output",
        "json",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["valid"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[0]["stages"], serde_json::json!([["build"], ["ship"]]));
    assert_eq!(
        files[0]["jobs"][0]["matrix"],
        serde_json::json!([{"arch": "amd64"}, {"arch": "arm64"}])
    );
    assert_eq!(files[1]["valid"], false);
    let d = &files[1]["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(d["category"], "refused");
    assert_eq!(files[1]["diagnostics"].as_array().unwrap().len(), 4);
    assert_eq!(files[2]["diagnostics"][0]["category"], "io");
}
