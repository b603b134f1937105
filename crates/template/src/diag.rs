//! Positioned diagnostics. Every problem the engine finds is a [`Diagnostic`] carrying the
//! file, line:column and template path, so that all of them can be reported at once.

use std::fmt;

/// A position in the source text, both 1-based. `Pos::default()` (0:0) means "unknown".
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What kind of problem a diagnostic reports; callers use it to categorise rejections.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Not well-formed YAML or JSON, or a YAML feature CloudFormation does not accept.
    Syntax,
    /// Well-formed, but not a template: unknown sections, wrong shapes, duplicate keys.
    Structure,
    /// A CloudFormation quota is exceeded.
    Quota,
    /// A transform we do not run (SAM, `AWS::Include`, ...).
    UnsupportedTransform,
    /// A macro (a transform that names an account-defined macro).
    Macro,
    /// A Rain preprocessor directive (`!Rain::Embed`, `!Rain::Module`, `Overrides`): the
    /// template must be packaged with `rain pkg` first.
    Rain,
    /// A resource type the caller said it cannot provision.
    UnsupportedResourceType,
    /// Ref/GetAtt/Sub/DependsOn naming something that does not exist.
    UnknownReference,
    /// A condition name that does not exist.
    UnknownCondition,
    /// An intrinsic function with the wrong number or kind of arguments.
    Intrinsic,
    /// A parameter declaration or a parameter value is invalid.
    Parameter,
    /// A rule assertion failed.
    Rule,
    /// The resources (or conditions) depend on each other in a cycle.
    Cycle,
    /// Evaluation failed (bad index, missing mapping key, unresolved import, ...).
    Evaluation,
    /// A resource property disagrees with its type's registry schema: unknown, missing,
    /// of the wrong type, or outside the allowed values.
    Property,
    /// A rule of the provider that would create the resource (`Provider::validate`).
    ProviderRule,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Syntax => "syntax",
            Category::Structure => "structure",
            Category::Quota => "quota",
            Category::UnsupportedTransform => "unsupported-transform",
            Category::Macro => "macro",
            Category::Rain => "rain-directive",
            Category::UnsupportedResourceType => "unsupported-resource-type",
            Category::UnknownReference => "unknown-reference",
            Category::UnknownCondition => "unknown-condition",
            Category::Intrinsic => "intrinsic",
            Category::Parameter => "parameter",
            Category::Rule => "rule",
            Category::Cycle => "cycle",
            Category::Evaluation => "evaluation",
            Category::Property => "property",
            Category::ProviderRule => "provider-rule",
        }
    }
}

/// One problem found in a template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    pub category: Category,
    /// The file (or other source name) the template came from.
    pub file: String,
    pub pos: Pos,
    /// Dotted template path, e.g. `Resources.Web.Properties.ImageId`. Empty for the root.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}: {}", self.category.as_str(), self.message)
    }
}

/// All the diagnostics of one operation; the error type of every fallible entry point.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render(d: &[Diagnostic]) -> String {
    let mut s = format!("{} problem(s) in template", d.len());
    for x in d {
        s.push_str("\n  ");
        s.push_str(&x.to_string());
    }
    s
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl Diagnostic {
    /// A diagnostic about `path` (a template path) at `pos` in `file`.
    pub fn new(
        category: Category,
        file: &str,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            category,
            file: file.to_string(),
            pos,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// A collector that stamps the file name on every diagnostic.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sink {
    pub file: String,
    pub diags: Vec<Diagnostic>,
}

impl Sink {
    pub fn new(file: &str) -> Self {
        Sink {
            file: file.to_string(),
            diags: Vec::new(),
        }
    }
    pub fn push(&mut self, category: Category, pos: Pos, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            category,
            file: self.file.clone(),
            pos,
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// Joins a template path and a key with a dot.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        let mut s = String::with_capacity(path.len() + key.len() + 1);
        s.push_str(path);
        s.push('.');
        s.push_str(key);
        s
    }
}
