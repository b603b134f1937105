//! Positioned diagnostics: every problem in a workflow is one [`Diagnostic`] with the file,
//! line:column and the dotted path of the key, so all of them can be reported at once.

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

/// What kind of problem a diagnostic reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Not well-formed YAML, or a YAML feature workflows may not use here.
    Syntax,
    /// A key GitHub Actions does not know at all.
    UnknownKey,
    /// A key GitHub Actions knows but Spindle refuses (see docs/pipelines.md).
    Refused,
    /// A value of the wrong shape or outside what is allowed.
    Invalid,
    /// A `${{ }}` expression that does not parse or names unknown contexts or functions.
    Expression,
    /// `needs` naming a missing job, or jobs that need each other in a cycle.
    Graph,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Syntax => "syntax",
            Category::UnknownKey => "unknown-key",
            Category::Refused => "refused",
            Category::Invalid => "invalid",
            Category::Expression => "expression",
            Category::Graph => "graph",
        }
    }
}

/// One problem found in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    pub category: Category,
    pub file: String,
    pub pos: Pos,
    /// Dotted workflow path, e.g. `jobs.build.steps[2].uses`. Empty for the root.
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

/// Every diagnostic of one file; the error type of [`crate::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render(d: &[Diagnostic]) -> String {
    let mut s = format!("{} problem(s) in workflow", d.len());
    for x in d {
        s.push_str("\n  ");
        s.push_str(&x.to_string());
    }
    s
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
