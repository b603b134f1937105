//! docs/pipelines.md shows the key table and the built-in actions exactly as the code has them.

mod common;

#[test]
fn key_table_is_in_step_with_the_docs() {
    common::check_section("keys", &spindle_pipeline::keys::markdown());
}

#[test]
fn builtin_actions_are_in_step_with_the_docs() {
    common::check_section("actions", &spindle_pipeline::actions::markdown());
}

#[test]
fn every_key_path_is_reachable_and_unique() {
    use spindle_pipeline::keys::{has_children, KEYS};
    let mut seen = std::collections::BTreeSet::new();
    for r in KEYS {
        assert!(seen.insert(r.path), "`{}` is listed twice", r.path);
        // Every row's parent is a row too (or the root), so the walk can reach it.
        let parent = r.path.rsplit_once('.').map_or("", |(p, _)| p);
        let parent = parent.strip_suffix("[]").unwrap_or(parent);
        assert!(
            parent.is_empty() || KEYS.iter().any(|p| p.path == parent),
            "`{}` has no parent row",
            r.path
        );
        if !parent.is_empty() {
            assert!(has_children(parent) || has_children(&format!("{parent}[]")));
        }
    }
}
