//! Generated sections of docs/pipelines.md: between `<!-- generated:NAME -->` and
//! `<!-- end:NAME -->`. A test compares them; `UPDATE_EXPECT=1` rewrites them.

use std::path::PathBuf;

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
