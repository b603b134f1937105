//! Nested stack templates (`AWS::CloudFormation::Stack` with a local `TemplateURL`): where a
//! nested template lives relative to its parent, and which ones a template names. The CLI
//! uses this to bundle nested templates into a request; the stack engine uses the same
//! paths to find them in the bundle, so both sides agree on the keys.

use std::path::{Component, Path, PathBuf};

use crate::diag::Pos;
use crate::template::Template;

/// The path of the nested template `url` names, relative to the directory of
/// `parent_file`: `file://` stripped, `.` and `..` resolved lexically.
pub fn nested_template_path(parent_file: &str, url: &str) -> String {
    let url = url.strip_prefix("file://").unwrap_or(url);
    let base = Path::new(parent_file).parent().unwrap_or(Path::new(""));
    let mut out = PathBuf::new();
    for c in base.join(url).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Whether `url` is remote (Spindle reads nested templates only from local paths).
pub fn is_remote_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://") || url.starts_with("s3://")
}

/// A local nested template a template names: its `TemplateURL` as written, where it is
/// written, the template path of that spot, and the resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedRef {
    pub url: String,
    pub pos: Pos,
    /// `Resources.Net.Properties.TemplateURL`.
    pub path: String,
    pub resolved: String,
}

/// Every `AWS::CloudFormation::Stack` resource whose `TemplateURL` is a literal local path.
/// Computed URLs (`!Sub …`) and remote ones are left out: the daemon reports those.
pub fn nested_refs(t: &Template) -> Vec<NestedRef> {
    t.resources
        .iter()
        .filter(|r| r.type_name == "AWS::CloudFormation::Stack")
        .filter_map(|r| {
            let node = r.properties.as_ref()?.get("TemplateURL")?;
            let url = node.as_str()?;
            if is_remote_url(url) {
                return None;
            }
            Some(NestedRef {
                url: url.to_owned(),
                pos: node.pos,
                path: format!("Resources.{}.Properties.TemplateURL", r.name),
                resolved: nested_template_path(&t.file, url),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_parent_directory() {
        assert_eq!(
            nested_template_path("stacks/app.yaml", "net.yaml"),
            "stacks/net.yaml"
        );
        assert_eq!(
            nested_template_path("stacks/app.yaml", "file://./sub/../net.yaml"),
            "stacks/net.yaml"
        );
        assert_eq!(
            nested_template_path("app.yaml", "../x/net.yaml"),
            "../x/net.yaml"
        );
        assert_eq!(
            nested_template_path("/abs/app.yaml", "n.json"),
            "/abs/n.json"
        );
    }

    #[test]
    fn refs_are_the_literal_local_template_urls_with_positions() {
        let src = "Resources:\n  Net:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: net.yaml\n  Remote:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: https://example.invalid/t.yaml\n  Computed:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: !Sub '${AWS::Region}.yaml'\n";
        let t = crate::parse(src, "dir/app.yaml").unwrap();
        let refs = nested_refs(&t);
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert_eq!(refs[0].resolved, "dir/net.yaml");
        assert_eq!(refs[0].path, "Resources.Net.Properties.TemplateURL");
        assert_eq!((refs[0].pos.line, refs[0].pos.col), (5, 20));
    }
}
