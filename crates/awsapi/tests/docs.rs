//! docs/aws.md lists the supported operations exactly as the operation table has them.
//! `UPDATE_EXPECT=1 cargo test -p spindle-awsapi --test docs` rewrites the section.

use std::path::PathBuf;

const BEGIN: &str = "<!-- BEGIN operations (generated from crates/awsapi/src/ops.rs) -->\n";
const END: &str = "<!-- END operations -->";

#[test]
fn the_operations_table_is_in_step_with_the_docs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/aws.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = text
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{} has no `{}` marker", path.display(), BEGIN.trim()));
    let (_, tail) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{} has no `{END}` marker", path.display()));
    let want = format!(
        "{head}{BEGIN}{}{END}{tail}",
        spindle_awsapi::ops::markdown_table()
    );
    if want != text {
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, want).unwrap();
        } else {
            panic!(
                "{} is out of date with the operation table; run UPDATE_EXPECT=1 cargo test -p spindle-awsapi --test docs",
                path.display()
            );
        }
    }
}
