//! Push filters, data-driven from tests/data/filters.txt (GitHub's filter pattern cheat
//! sheet), and the branch/tag/path rules of `on.push`.

use spindle_pipeline::filter::check;
use spindle_pipeline::model::PushFilter;

fn included(patterns: &[String], text: &str) -> bool {
    // The same rule as a branches/tags/paths list: `PushFilter` over paths only.
    let f = PushFilter {
        paths: patterns.to_vec(),
        ..PushFilter::default()
    };
    f.matches("refs/heads/x", &[text])
}

#[test]
fn filter_pattern_table() {
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in include_str!("data/filters.txt").lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(" | ").collect();
        let [pats, text, want] = cols[..] else {
            panic!("line {}: expected PATTERNS | TEXT | MATCHES", i + 1)
        };
        let pats: Vec<String> = pats.split(' ').map(String::from).collect();
        let want = want == "true";
        n += 1;
        if included(&pats, text) != want {
            failures.push(format!(
                "line {}: {pats:?} vs `{text}`: wanted {want}",
                i + 1
            ));
        }
    }
    assert!(n > 50, "{n} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn filter(yaml: &str) -> PushFilter {
    let src =
        format!("on:\n  push:\n{yaml}\njobs:\n  a:\n    runs-on: d\n    steps: [{{run: x}}]\n");
    let wf = spindle_pipeline::parse(&src, "f.yml").unwrap_or_else(|e| panic!("{e}"));
    wf.on.push.unwrap()
}

#[test]
fn branch_tag_and_path_rules() {
    let all = PushFilter::default();
    assert!(all.matches("refs/heads/main", &["a"]));
    assert!(all.matches("refs/tags/v1", &[]));

    // Only branch filters: tag pushes don't run.
    let b = filter("    branches: [main, 'releases/**']");
    assert!(b.matches("refs/heads/main", &["x"]));
    assert!(b.matches("refs/heads/releases/1/2", &["x"]));
    assert!(!b.matches("refs/heads/dev", &["x"]));
    assert!(!b.matches("refs/tags/v1", &["x"]));

    // Only tag filters: branch pushes don't run.
    let t = filter("    tags: ['v*', '!v0*']");
    assert!(t.matches("refs/tags/v1.2", &[]));
    assert!(!t.matches("refs/tags/v0.9", &[]));
    assert!(!t.matches("refs/heads/main", &[]));

    // -ignore forms.
    let bi = filter("    branches-ignore: ['wip/**']");
    assert!(bi.matches("refs/heads/main", &[]));
    assert!(!bi.matches("refs/heads/wip/x", &[]));
    assert!(!bi.matches("refs/tags/v1", &[]));

    // Paths: any changed file included; paths-ignore: runs unless every file is ignored.
    let p = filter("    branches: [main]\n    paths: ['src/**', '!src/generated/**']");
    assert!(p.matches("refs/heads/main", &["README.md", "src/a.rs"]));
    assert!(!p.matches("refs/heads/main", &["README.md", "src/generated/x.rs"]));
    assert!(!p.matches("refs/heads/dev", &["src/a.rs"]));
    let pi = filter("    paths-ignore: ['docs/**', '*.md']");
    assert!(pi.matches("refs/heads/main", &["docs/a", "src/x"]));
    assert!(!pi.matches("refs/heads/main", &["docs/a", "README.md"]));
}

#[test]
fn bad_patterns_are_refused_with_positions() {
    for (bad, why) in [
        ("a[bc", "not closed"),
        ("a[]", "empty"),
        ("+a", "nothing before it"),
        ("a*?", "cannot follow"),
        ("a\\", "ends with"),
        ("[z-a]", "not a range"),
    ] {
        let e = check(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let e = spindle_pipeline::parse(
        "on:\n  push:\n    tags: ['v*', 'v[0-9']\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x}]\n",
        "f.yml",
    )
    .unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "f.yml:3:18: on.push.tags: invalid: filter pattern `v[0-9`: `[` is not closed by `]`"
    );
}
