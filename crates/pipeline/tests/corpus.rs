//! Every workflow of ../shared/corpus/github-workflows (actions/starter-workflows, MIT), read
//! in place: each is accepted or refused with positioned diagnostics, never a crash, and the
//! split is the one docs/pipelines.md lists.

mod common;

use std::collections::BTreeMap;

use spindle_pipeline::Category;

/// What a diagnostic blames, for the table: the refused key or action, else its category.
fn blame(d: &spindle_pipeline::Diagnostic) -> String {
    let quoted = d.message.split('`').nth(1).unwrap_or("");
    match d.category {
        Category::Refused if quoted.starts_with("uses: ") => {
            let action = quoted.trim_start_matches("uses: ");
            format!("`uses: {}`", action.split('@').next().unwrap_or(action))
        }
        Category::Refused => format!("`{quoted}`"),
        other => format!("{} ({})", other.as_str(), quoted_or_message(d)),
    }
}

fn quoted_or_message(d: &spindle_pipeline::Diagnostic) -> String {
    let m = &d.message;
    if m.starts_with("unknown context") {
        m.split(" (").next().unwrap_or(m).to_string()
    } else {
        m.clone()
    }
}

#[test]
fn corpus_split() {
    let Some(dir) = common::corpus_dir() else {
        println!("SKIPPED: workflow corpus not found (set SPINDLE_WORKFLOW_CORPUS)");
        return;
    };
    let files = common::workflows(&dir);
    assert!(
        files.len() > 50,
        "corpus at {} has {} workflows",
        dir.display(),
        files.len()
    );
    let mut accepted = Vec::new();
    let mut blamed: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused = 0;
    for f in &files {
        let name = f.strip_prefix(&dir).unwrap().display().to_string();
        let src = std::fs::read_to_string(f).unwrap();
        let r = std::panic::catch_unwind(|| spindle_pipeline::parse(&src, &name))
            .unwrap_or_else(|_| panic!("{name}: the reader panicked"));
        match r {
            Ok(_) => accepted.push(name),
            Err(d) => {
                refused += 1;
                assert!(!d.0.is_empty(), "{name}: refused without a reason");
                let mut keys = std::collections::BTreeSet::new();
                for x in &d.0 {
                    assert!(x.pos.line > 0 && x.pos.col > 0, "{name}: no position: {x}");
                    keys.insert(blame(x));
                }
                for k in keys {
                    *blamed.entry(k).or_default() += 1;
                }
            }
        }
    }
    let mut s = format!(
        "{} workflows: {} accepted, {refused} refused.\n\nAccepted: {}.\n\n| Refused because of | Files |\n|---|---|\n",
        files.len(),
        accepted.len(),
        accepted.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
    );
    let mut rows: Vec<(String, usize)> = blamed.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (k, n) in rows {
        s.push_str(&format!("| {} | {n} |\n", k.replace('|', "\\|")));
    }
    println!("{s}");
    common::check_section("corpus", &s);
}
