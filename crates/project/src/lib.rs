//! A Spindle project directory: the manifest `spindle.toml` and the pure planner behind
//! `spindle up`.
//!
//! Invariant: reading and planning are pure. [`Manifest::load`] only reads the file; [`plan`]
//! compares the manifest with what the daemon reports and proposes steps without doing any.
//! The CLI executes the steps through the API.

use serde::Deserialize;
use spindle_model::{AccountName, StackName};
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
    /// Stacks to deploy, in manifest order.
    pub stacks: Vec<StackSpec>,
}

/// A CloudFormation stack the project deploys into one of its accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSpec {
    pub name: StackName,
    pub account: AccountName,
    /// The template file, resolved against the project directory.
    pub template: PathBuf,
    pub parameters: BTreeMap<String, String>,
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
    #[serde(default)]
    stacks: Vec<RawStack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    name: Spanned<String>,
    account: Spanned<String>,
    template: Spanned<String>,
    #[serde(default)]
    parameters: BTreeMap<String, toml::Value>,
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
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

impl Manifest {
    /// Reads `DIR/spindle.toml` (or the file itself, if `path` is one).
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let file = if path.is_dir() {
            path.join(MANIFEST)
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ProjectError::Read {
            path: file.clone(),
            source,
        })?;
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
            errors.push(at(
                raw.project.name.span(),
                "project.name must not be empty",
            ));
        }
        let mut accounts = BTreeMap::new();
        for (key, acct) in raw.accounts {
            match AccountName::parse(key.get_ref()) {
                Ok(n) => {
                    accounts.insert(
                        n,
                        AccountSpec {
                            description: acct.description,
                        },
                    );
                }
                Err(e) => errors.push(at(key.span(), &format!("accounts.{}: {e}", key.get_ref()))),
            }
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let mut stacks = Vec::new();
        for st in raw.stacks {
            let name = StackName::parse(st.name.get_ref())
                .map_err(|e| at(st.name.span(), &format!("stacks.name: {e}")));
            let account = match AccountName::parse(st.account.get_ref()) {
                Ok(a) if accounts.contains_key(&a) => Ok(a),
                Ok(a) => Err(at(
                    st.account.span(),
                    &format!("stacks.account: `{a}` is not one of the [accounts] of this manifest"),
                )),
                Err(e) => Err(at(st.account.span(), &format!("stacks.account: {e}"))),
            };
            let template = base.join(st.template.get_ref());
            let template_ok = if template.is_file() {
                Ok(template)
            } else {
                Err(at(
                    st.template.span(),
                    &format!("stacks.template: no file `{}`", template.display()),
                ))
            };
            let mut parameters = BTreeMap::new();
            for (k, v) in st.parameters {
                // CloudFormation takes parameters as strings; lists are comma-separated.
                let text = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                parameters.insert(k, text);
            }
            match (name, account, template_ok) {
                (Ok(name), Ok(account), Ok(template)) => stacks.push(StackSpec {
                    name,
                    account,
                    template,
                    parameters,
                }),
                (n, a, t) => errors.extend([n.err(), a.err(), t.err()].into_iter().flatten()),
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Invalid(errors));
        }
        Ok(Self {
            stacks,
            path: file.to_owned(),
            name,
            description: raw.project.description,
            accounts,
        })
    }
}

/// One thing `spindle up` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateAccount {
        name: AccountName,
        description: String,
    },
    /// Bring a stack up to date: preview its change set and execute it if not empty.
    DeployStack(StackSpec),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateAccount { name, .. } => write!(f, "create account {name}"),
            Step::DeployStack(s) => write!(f, "deploy stack {} in {}", s.name, s.account),
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
            p.steps.push(Step::CreateAccount {
                name: name.clone(),
                description: spec.description.clone(),
            });
        }
    }
    // Whether a stack is out of date is only known from its change set, which the daemon
    // computes: every stack gets a deploy step, and an empty change set makes it a no-op.
    p.steps
        .extend(manifest.stacks.iter().cloned().map(Step::DeployStack));
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
            (
                "[project]\nname = \"x\"\ncolour = 1\n",
                "spindle.toml:3:1: unknown field `colour`",
            ),
            (
                "[project]\nname = \"x\"\n[accounts.Dev]\n",
                "spindle.toml:3:11: accounts.Dev: account name `Dev` is not valid",
            ),
            (
                "[project]\nname = \"\"\n",
                "spindle.toml:2:8: project.name must not be empty",
            ),
            (
                "[project]\nname = \"x\"\n[accounts.dev]\ndescription = 3\n",
                "spindle.toml:4:15: invalid type: integer `3`, expected a string",
            ),
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
    fn stacks_are_checked_against_accounts_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.yaml"), "Resources: {}\n").unwrap();
        let file = dir.path().join(MANIFEST);
        let text = "[project]\nname = \"t\"\n[accounts.dev]\n\n[[stacks]]\nname = \"app\"\naccount = \"dev\"\ntemplate = \"app.yaml\"\nparameters = { Env = \"dev\", Zones = [\"a\", \"b\"], Size = 3 }\n\n[[stacks]]\nname = \"9bad\"\naccount = \"prod\"\ntemplate = \"missing.yaml\"\n";
        let err = Manifest::parse(&file, text).unwrap_err().to_string();
        let f = file.display();
        let want = [
            format!("{f}:12:8: stacks.name: stack name `9bad` is not valid: expected 1-128 characters of A-Z, a-z, 0-9 and '-', starting with a letter"),
            format!("{f}:13:11: stacks.account: `prod` is not one of the [accounts] of this manifest"),
            format!("{f}:14:12: stacks.template: no file `{}`", dir.path().join("missing.yaml").display()),
        ];
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            want.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let ok = text
            .split("\n\n[[stacks]]\nname = \"9bad\"")
            .next()
            .unwrap();
        let m = Manifest::parse(&file, ok).unwrap();
        assert_eq!(m.stacks[0].parameters["Zones"], "a,b");
        assert_eq!(m.stacks[0].parameters["Size"], "3");
        assert_eq!(m.stacks[0].template, dir.path().join("app.yaml"));
        let p = plan(&m, &[AccountName::parse("dev").unwrap()]);
        assert_eq!(p.steps, vec![Step::DeployStack(m.stacks[0].clone())]);
    }

    #[test]
    fn plan_creates_only_what_is_missing() {
        let m = parse(
            "[project]\nname = \"t\"\n[accounts.dev]\ndescription = \"d\"\n[accounts.prod]\n",
        )
        .unwrap();
        let dev = AccountName::parse("dev").unwrap();
        let p = plan(&m, &[dev.clone(), AccountName::parse("other").unwrap()]);
        assert_eq!(
            p.steps,
            vec![Step::CreateAccount {
                name: AccountName::parse("prod").unwrap(),
                description: String::new()
            }]
        );
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
        assert!(
            n >= 1,
            "no example project found under {}",
            examples.display()
        );
    }
}
