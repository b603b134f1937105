//! Expressions, data-driven: every line of tests/data/expressions.txt is evaluated over the
//! contexts below and compared with its expected JSON or error.

use serde_json::{json, Value};
use spindle_pipeline::eval::{Contexts, Files, Status};
use spindle_pipeline::expr;

fn contexts() -> Contexts<'static> {
    let mut c = Contexts::default();
    let v = json!({
        "github": {"event_name": "push", "ref": "refs/heads/main",
                   "event": {"commits": [{"message": "a"}, {"message": "B"}]}},
        "env": {"CI": "true", "N": "3"},
        "matrix": {"os": "ubuntu", "node": 18},
        "steps": {"build": {"outputs": {"v": "1.2"}, "outcome": "success"}},
        "needs": {"build": {"result": "success", "outputs": {}}},
    });
    c.values = v.as_object().unwrap().clone();
    c
}

fn check(line: &str) -> Result<(), String> {
    let (e, want) = line.rsplit_once(" => ").ok_or("no ` => `")?;
    let cx = contexts();
    let got = expr::parse(e, 0)
        .map_err(|e| e.to_string())
        .and_then(|p| cx.eval(&p).map_err(|e| e.to_string()));
    match (want.strip_prefix("error: "), got) {
        (Some(sub), Err(msg)) if msg.contains(sub) => Ok(()),
        (Some(sub), r) => Err(format!("wanted an error with `{sub}`, got {r:?}")),
        (None, Ok(v)) => {
            let w: Value =
                serde_json::from_str(want).map_err(|e| format!("bad expectation: {e}"))?;
            if v == w {
                Ok(())
            } else {
                Err(format!("got {v}"))
            }
        }
        (None, Err(m)) => Err(format!("error: {m}")),
    }
}

#[test]
fn expression_table() {
    let data = include_str!("data/expressions.txt");
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in data.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        n += 1;
        if let Err(e) = check(line) {
            failures.push(format!("line {}: `{line}`: {e}", i + 1));
        }
    }
    assert!(n > 50, "the table has {n} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn interpolation_joins_strings_and_keeps_a_lone_value() {
    let cx = contexts();
    assert_eq!(
        cx.interpolate("node-${{ matrix.node }}-${{ matrix.os }}")
            .unwrap(),
        json!("node-18-ubuntu")
    );
    assert_eq!(cx.interpolate("${{ matrix.node }}").unwrap(), json!(18));
    assert_eq!(
        cx.interpolate("${{ github.event }}x").unwrap(),
        json!("Objectx")
    );
    assert_eq!(cx.interpolate("plain").unwrap(), json!("plain"));
    assert!(cx.interpolate("${{ 1 ").is_err());
}

#[test]
fn conditions_add_success_unless_a_status_function_is_used() {
    let mut cx = contexts();
    assert!(cx.condition("github.event_name == 'push'").unwrap());
    assert!(cx.condition("${{ github.event_name == 'push' }}").unwrap());
    cx.status = Status {
        failed: true,
        cancelled: false,
    };
    assert!(!cx.condition("github.event_name == 'push'").unwrap());
    assert!(cx.condition("always()").unwrap());
    assert!(cx
        .condition("failure() && github.event_name == 'push'")
        .unwrap());
    assert!(!cx.condition("success()").unwrap());
    cx.status = Status {
        failed: false,
        cancelled: true,
    };
    assert!(cx.condition("cancelled()").unwrap());
    assert!(!cx.condition("true").unwrap());
}

struct MapFiles(Vec<(&'static str, &'static [u8])>);

impl Files for MapFiles {
    fn matching(&self, patterns: &[String]) -> Result<Vec<Vec<u8>>, String> {
        let mut out: Vec<(&str, &[u8])> = self
            .0
            .iter()
            .filter(|(p, _)| {
                patterns
                    .iter()
                    .any(|pat| p.ends_with(pat.trim_start_matches("**/")))
            })
            .copied()
            .collect();
        out.sort();
        Ok(out.into_iter().map(|(_, c)| c.to_vec()).collect())
    }
}

#[test]
fn hash_files_hashes_the_digests_of_the_matches() {
    let files = MapFiles(vec![
        ("b/lock", b"b\n"),
        ("a/lock", b"a\n"),
        ("c/other", b"c\n"),
    ]);
    let cx = Contexts {
        files: &files,
        ..Contexts::default()
    };
    let e = expr::parse("hashFiles('**/lock')", 0).unwrap();
    // sha256(sha256("a\n") ++ sha256("b\n")), computed with Python's hashlib.
    assert_eq!(
        cx.eval(&e).unwrap(),
        json!("6ec7b73f58839768f5eb006d96b02ebaa7bf3d30c5daaccc832663c8266e0931")
    );
    let none = expr::parse("hashFiles('nothing')", 0).unwrap();
    assert_eq!(cx.eval(&none).unwrap(), json!(""));
}

#[test]
fn long_operator_chains_are_refused_not_overflowed() {
    let ok = vec!["1"; 1000].join(" || ");
    assert!(expr::parse(&ok, 0).is_ok());
    let long = vec!["1"; 5000].join(" || ");
    let e = expr::parse(&long, 0).unwrap_err();
    assert!(e.message.contains("more than 2048 tokens"), "{e}");
}

#[test]
fn parse_errors_carry_offsets() {
    let e = expr::parse("github.x == ", 10).unwrap_err();
    assert_eq!(e.offset, 22);
    let e = expr::split("a ${{ b").unwrap_err();
    assert_eq!(e.offset, 2);
    let parts = expr::split("x ${{ '}}' }} y").unwrap();
    assert_eq!(parts.len(), 3, "a quoted `}}}}` does not close: {parts:?}");
}
