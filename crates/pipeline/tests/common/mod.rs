//! Shared by the test binaries: the workflow corpus, and the generated sections of
//! docs/pipelines.md (between `<!-- generated:NAME -->` and `<!-- end:NAME -->`, compared by a
//! test and rewritten with `UPDATE_EXPECT=1`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `SPINDLE_WORKFLOW_CORPUS`, or `shared/corpus/github-workflows` beside the checkout or any
/// folder above it (a worktree sits deeper than the main checkout).
pub fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SPINDLE_WORKFLOW_CORPUS") {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/corpus/github-workflows"))
        .find(|d| d.is_dir())
}

/// Every `.yml`/`.yaml` file under `dir`, sorted.
pub fn workflows(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, &mut out);
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(p);
        }
    }
}

pub fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipelines.md")
}

/// Checks (or with `UPDATE_EXPECT=1`, rewrites) the section `name` of docs/pipelines.md.
pub fn check_section(name: &str, want: &str) {
    let path = docs_path();
    let doc = std::fs::read_to_string(&path).expect("docs/pipelines.md is readable");
    let open = format!("<!-- generated:{name} -->\n");
    let close = format!("<!-- end:{name} -->");
    let start = doc
        .find(&open)
        .unwrap_or_else(|| panic!("docs/pipelines.md has no `{open}`"))
        + open.len();
    let end = doc[start..]
        .find(&close)
        .unwrap_or_else(|| panic!("docs/pipelines.md has no `{close}`"))
        + start;
    let have = &doc[start..end];
    if have == want {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let mut new = doc[..start].to_string();
        new.push_str(want);
        new.push_str(&doc[end..]);
        // Several test binaries update sections; a rename keeps readers from seeing half a
        // file (run UPDATE_EXPECT twice if two rewrites raced).
        let tmp = path.with_extension(format!("md.{}", std::process::id()));
        std::fs::write(&tmp, new).expect("docs/ is writable");
        std::fs::rename(&tmp, &path).expect("docs/pipelines.md is replaceable");
        return;
    }
    panic!(
        "docs/pipelines.md section `{name}` is out of step with the code; run \
         `UPDATE_EXPECT=1 cargo test -p spindle-pipeline` and review the diff.\n--- docs\n{have}\n--- code\n{want}"
    );
}
