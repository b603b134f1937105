//! A Spindle project directory: the manifest `spindle.toml` and the pure planner behind
//! `spindle up`.
//!
//! Invariant: reading and planning are pure. [`Manifest::load`] only reads the file; [`plan`]
//! compares the manifest with what the daemon reports and proposes steps without doing any.
//! The CLI executes the steps through the API.

use serde::Deserialize;
use spindle_model::AccountName;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The manifest's file name inside a project directory.
pub const MANIFEST: &str = "spindle.toml";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more mistakes, each already positioned (`file:line:column: message`).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// `spindle.toml`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    /// The accounts the project needs, in name order.
    pub accounts: BTreeMap<AccountName, AccountSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountSpec {
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    project: RawProject,
    #[serde(default)]
    accounts: BTreeMap<Spanned<String>, RawAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(default)]
    description: String,
}

/// 1-based line and column of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| before[nl + 1..].chars().count()) + 1;
    (line, col)
}

impl Manifest {
    /// Reads `DIR/spindle.toml` (or the file itself, if `path` is one).
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let file = if path.is_dir() { path.join(MANIFEST) } else { path.to_owned() };
        let text = std::fs::read_to_string(&file).map_err(|source| ProjectError::Read { path: file.clone(), source })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates manifest text, reporting every mistake with its position.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ProjectError> {
        let at = |span: std::ops::Range<usize>, msg: &str| {
            let (l, c) = line_col(text, span.start);
            format!("{}:{l}:{c}: {msg}", file.display())
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_owned();
            ProjectError::Invalid(vec![match e.span() {
                Some(s) => at(s, &msg),
                None => format!("{}: {msg}", file.display()),
            }])
        })?;
        let mut errors = Vec::new();
        let name = raw.project.name.get_ref().trim().to_owned();
        if name.is_empty() {
            errors.push(at(raw.project.name.span(), "project.name must not be empty"));
        }
        let mut accounts = BTreeMap::new();
        for (key, acct) in raw.accounts {
            match AccountName::parse(key.get_ref()) {
                Ok(n) => {
                    accounts.insert(n, AccountSpec { description: acct.description });
                }
                Err(e) => errors.push(at(key.span(), &format!("accounts.{}: {e}", key.get_ref()))),
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Invalid(errors));
        }
        Ok(Self { path: file.to_owned(), name, description: raw.project.description, accounts })
    }
}

/// One thing `spindle up` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateAccount { name: AccountName, description: String },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateAccount { name, .. } => write!(f, "create account {name}"),
        }
    }
}

/// What `spindle up` will do, and what it found already in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub up_to_date: Vec<String>,
}

/// Compares the manifest with the accounts that exist. Accounts the manifest doesn't name are
/// left alone: `up` adds and updates, it never deletes what it wasn't asked about.
pub fn plan(manifest: &Manifest, existing_accounts: &[AccountName]) -> Plan {
    let mut p = Plan::default();
    for (name, spec) in &manifest.accounts {
        if existing_accounts.contains(name) {
            p.up_to_date.push(format!("account {name}"));
        } else {
            p.steps.push(Step::CreateAccount { name: name.clone(), description: spec.description.clone() });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("spindle.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_are_positioned() {
        let cases = [
            ("[project]\nname = \"x\"\ncolour = 1\n", "spindle.toml:3:1: unknown field `colour`"),
            ("[project]\nname = \"x\"\n[accounts.Dev]\n", "spindle.toml:3:11: accounts.Dev: account name `Dev` is not valid"),
            ("[project]\nname = \"\"\n", "spindle.toml:2:8: project.name must not be empty"),
            ("[project]\nname = \"x\"\n[accounts.dev]\ndescription = 3\n", "spindle.toml:4:15: invalid type: integer `3`, expected a string"),
            ("[project\n", "spindle.toml:1:9: "),
            ("", "spindle.toml:1:1: missing field `project`"),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn every_error_is_reported() {
        let got = parse("[project]\nname = \"\"\n[accounts.A]\n[accounts.B]\n").unwrap_err();
        assert_eq!(got.lines().count(), 3, "{got}");
    }

    #[test]
    fn plan_creates_only_what_is_missing() {
        let m = parse("[project]\nname = \"t\"\n[accounts.dev]\ndescription = \"d\"\n[accounts.prod]\n").unwrap();
        let dev = AccountName::parse("dev").unwrap();
        let p = plan(&m, &[dev.clone(), AccountName::parse("other").unwrap()]);
        assert_eq!(p.steps, vec![Step::CreateAccount { name: AccountName::parse("prod").unwrap(), description: String::new() }]);
        assert_eq!(p.up_to_date, vec!["account dev".to_string()]);
        let all = plan(&m, &[dev, AccountName::parse("prod").unwrap()]);
        assert!(all.steps.is_empty());
    }

    #[test]
    fn the_example_projects_are_valid() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&examples).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join(MANIFEST).exists() {
                Manifest::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                n += 1;
            }
        }
        assert!(n >= 1, "no example project found under {}", examples.display());
    }
}
