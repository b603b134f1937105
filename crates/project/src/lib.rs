//! A Spindle project directory: the manifest `spindle.toml` and the pure planners behind
//! `spindle up` ([`plan`]) and `spindle down` ([`plan_down`]).
//!
//! Invariant: reading and planning are pure. [`Manifest::load`] only reads the file; [`plan`]
//! compares the manifest with what the daemon reports and proposes steps without doing any.
//! The CLI executes the steps through the API.
//!
//! The manifest names, besides accounts and stacks, the .deb packages the project builds
//! (`[packages.NAME]`), the signed apt repositories it publishes them to (`[repos.NAME]`) and
//! the images it bakes from them (`[images.NAME]`). Whether a package or an image is out of
//! date is decided from digests of their inputs ([`digest_paths`]) against what the last `up`
//! recorded in the daemon ([`Observed`]).

mod digest;
mod down;
mod plan;

pub use digest::{digest_paths, DigestError};
pub use down::{plan_down, up_params, DownObserved, DownPlan, DownStep};
pub use plan::{image_digest, plan, ImageState, Observed, PackageState, Plan, Step};

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
    /// Signed apt repositories, by name.
    pub repos: BTreeMap<String, RepoSpec>,
    /// .deb packages to build, by name.
    pub packages: BTreeMap<String, PackageSpec>,
    /// Images to bake, by name (the `NAME` of `/spindle/images/NAME/latest`).
    pub images: BTreeMap<String, ImageSpec>,
}

/// A signed apt repository in one account, published at `/apt/ACCOUNT/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub name: String,
    pub account: AccountName,
    pub distribution: String,
    pub component: String,
    /// The publication's prefix (default: the repo's name).
    pub prefix: String,
    /// The signing key's name in the account (default: the repo's name); created if missing.
    pub sign_key: String,
}

/// A .deb built from a `spindle pkg build` spec, after an optional build command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    /// The package spec (TOML), resolved against the project directory.
    pub spec: PathBuf,
    /// A command run in the project directory before the spec is built (`app/build.sh`).
    pub build: Vec<String>,
    /// The files and directories whose contents decide whether the package is out of date
    /// (the spec is always one), resolved against the project directory.
    pub inputs: Vec<PathBuf>,
    /// The repo (a key of [`Manifest::repos`]) it is published to.
    pub repo: String,
}

/// An image baked from a recipe (`spindle bake build`), imported into `account` and shared
/// with `share_with`; `/spindle/images/NAME/latest` names it in each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    /// The `*.pkr.hcl` recipe, resolved against the project directory. Its directory is the
    /// image's input (with the packages of `repo`).
    pub recipe: PathBuf,
    pub account: AccountName,
    pub share_with: Vec<AccountName>,
    /// The repo the recipe installs from: `up` passes `-var repo_url=… -var repo_keyring=…`.
    pub repo: Option<String>,
    /// More `-var` values for the recipe.
    pub vars: BTreeMap<String, String>,
}

/// A package's build command as it is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCommand {
    /// A program named with a `/` is the project's, joined to the project directory; a bare
    /// name is looked up in `PATH`.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The project directory.
    pub cwd: PathBuf,
}

impl PackageSpec {
    /// The build command run in `project_dir`, or `None` when the package has none.
    ///
    /// The program is joined to the project directory once, here, and run with that
    /// directory as its working directory; with an absolute project directory (what
    /// [`Manifest::load`] gives) the two can't compound, whatever the caller's working
    /// directory. Issue #14: with a relative one they did (`examples/twine/app/build.sh` run
    /// from inside `examples/twine`).
    pub fn build_command(&self, project_dir: &Path) -> Option<BuildCommand> {
        let (prog, args) = self.build.split_first()?;
        let program = if prog.contains('/') {
            project_dir.join(prog)
        } else {
            PathBuf::from(prog)
        };
        Some(BuildCommand {
            program,
            args: args.to_vec(),
            cwd: project_dir.to_owned(),
        })
    }
}

impl ImageSpec {
    /// The accounts that own the image: where it is baked, then those it is shared with.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountName> {
        std::iter::once(&self.account).chain(self.share_with.iter())
    }
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
    #[serde(default)]
    repos: BTreeMap<Spanned<String>, RawRepo>,
    #[serde(default)]
    packages: BTreeMap<Spanned<String>, RawPackage>,
    #[serde(default)]
    images: BTreeMap<Spanned<String>, RawImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    account: Spanned<String>,
    #[serde(default)]
    distribution: Option<Spanned<String>>,
    #[serde(default)]
    component: Option<Spanned<String>>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    sign_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    spec: Spanned<String>,
    #[serde(default)]
    build: Option<Spanned<String>>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    repo: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    recipe: Spanned<String>,
    account: Spanned<String>,
    #[serde(default)]
    share_with: Vec<Spanned<String>>,
    #[serde(default)]
    repo: Option<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
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
    ///
    /// The manifest's path is made canonical first (absolute, no `.` or `..`, symlinks
    /// resolved), so every path resolved from it means the same file whatever directory a step
    /// later runs in, and `spindle up examples/twine`, `spindle up /abs/examples/twine` and
    /// `spindle up .` inside the project read the same manifest.
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let file = if path.is_dir() {
            path.join(MANIFEST)
        } else {
            path.to_owned()
        };
        let file = std::fs::canonicalize(&file).map_err(|source| ProjectError::Read {
            path: file.clone(),
            source,
        })?;
        let text = std::fs::read_to_string(&file).map_err(|source| ProjectError::Read {
            path: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// The project directory: the manifest's.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
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
        let (repos, packages, images) = {
            let mut cx = Checker {
                at: &at,
                base,
                accounts: &accounts,
                errors: &mut errors,
            };
            let repos = cx.repos(raw.repos);
            let packages = cx.packages(raw.packages, &repos);
            let images = cx.images(raw.images, &repos);
            (repos, packages, images)
        };
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
                parameters.insert(k, value_text(v));
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
        if !name.is_empty()
            && !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(ProjectError::Invalid(vec![at(
                raw.project.name.span(),
                "project.name: use only a-z, A-Z, 0-9, `_`, `.` and `-` (it names parameters)",
            )]));
        }
        Ok(Self {
            stacks,
            repos,
            packages,
            images,
            path: file.to_owned(),
            name,
            description: raw.project.description,
            accounts,
        })
    }
}

/// A parameter's or variable's text: CloudFormation and Packer take strings; lists are
/// comma-separated.
fn value_text(v: toml::Value) -> String {
    match v {
        toml::Value::String(s) => s,
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Whether `s` is a name for a package, repo, image or key entry: a-z or 0-9 first, then
/// a-z, 0-9, `.`, `+` and `-` (Debian's package-name alphabet).
fn entry_name_ok(s: &str) -> bool {
    s.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Validates the `[repos]`, `[packages]` and `[images]` tables, collecting every error.
struct Checker<'a, F: Fn(std::ops::Range<usize>, &str) -> String> {
    at: &'a F,
    base: &'a Path,
    accounts: &'a BTreeMap<AccountName, AccountSpec>,
    errors: &'a mut Vec<String>,
}

impl<F: Fn(std::ops::Range<usize>, &str) -> String> Checker<'_, F> {
    fn err(&mut self, span: std::ops::Range<usize>, msg: String) {
        self.errors.push((self.at)(span, &msg));
    }

    /// The entry's name, if valid.
    fn name(&mut self, table: &str, key: &Spanned<String>) -> Option<String> {
        let n = key.get_ref();
        if entry_name_ok(n) {
            Some(n.clone())
        } else {
            self.err(
                key.span(),
                format!("{table}.{n}: name `{n}` is not valid: expected a-z or 0-9 first, then a-z, 0-9, `.`, `+` and `-`"),
            );
            None
        }
    }

    fn account(&mut self, field: &str, v: &Spanned<String>) -> Option<AccountName> {
        match AccountName::parse(v.get_ref()) {
            Ok(a) if self.accounts.contains_key(&a) => Some(a),
            Ok(a) => {
                self.err(
                    v.span(),
                    format!("{field}: `{a}` is not one of the [accounts] of this manifest"),
                );
                None
            }
            Err(e) => {
                self.err(v.span(), format!("{field}: {e}"));
                None
            }
        }
    }

    fn file(&mut self, field: &str, v: &Spanned<String>) -> Option<PathBuf> {
        let p = self.base.join(v.get_ref());
        if p.is_file() {
            Some(p)
        } else {
            self.err(v.span(), format!("{field}: no file `{}`", p.display()));
            None
        }
    }

    fn repo_ref<T>(
        &mut self,
        field: &str,
        v: &Spanned<String>,
        repos: &BTreeMap<String, T>,
    ) -> Option<String> {
        if repos.contains_key(v.get_ref()) {
            Some(v.get_ref().clone())
        } else {
            let known: Vec<&str> = repos.keys().map(String::as_str).collect();
            self.err(
                v.span(),
                format!(
                    "{field}: no repo `{}` in [repos] (declared: {})",
                    v.get_ref(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            None
        }
    }

    fn word(&mut self, field: &str, v: Option<Spanned<String>>, default: &str) -> Option<String> {
        match v {
            None => Some(default.to_owned()),
            Some(v) if entry_name_ok(v.get_ref()) => Some(v.into_inner()),
            Some(v) => {
                self.err(
                    v.span(),
                    format!("{field}: `{}` is not valid: expected a-z or 0-9 first, then a-z, 0-9, `.`, `+` and `-`", v.get_ref()),
                );
                None
            }
        }
    }

    fn repos(&mut self, raw: BTreeMap<Spanned<String>, RawRepo>) -> BTreeMap<String, RepoSpec> {
        let mut out = BTreeMap::new();
        for (key, r) in raw {
            let name = self.name("repos", &key);
            let t = format!("repos.{}", key.get_ref());
            let account = self.account(&format!("{t}.account"), &r.account);
            let default = key.get_ref().clone();
            let distribution = self.word(&format!("{t}.distribution"), r.distribution, "stable");
            let component = self.word(&format!("{t}.component"), r.component, "main");
            let prefix = self.word(&format!("{t}.prefix"), r.prefix, &default);
            let sign_key = self.word(&format!("{t}.sign_key"), r.sign_key, &default);
            if let (
                Some(name),
                Some(account),
                Some(distribution),
                Some(component),
                Some(prefix),
                Some(sign_key),
            ) = (name, account, distribution, component, prefix, sign_key)
            {
                out.insert(
                    name.clone(),
                    RepoSpec {
                        name,
                        account,
                        distribution,
                        component,
                        prefix,
                        sign_key,
                    },
                );
            }
        }
        out
    }

    fn packages(
        &mut self,
        raw: BTreeMap<Spanned<String>, RawPackage>,
        repos: &BTreeMap<String, RepoSpec>,
    ) -> BTreeMap<String, PackageSpec> {
        let mut out = BTreeMap::new();
        for (key, p) in raw {
            let name = self.name("packages", &key);
            let t = format!("packages.{}", key.get_ref());
            let spec = self.file(&format!("{t}.spec"), &p.spec);
            let repo = self.repo_ref(&format!("{t}.repo"), &p.repo, repos);
            let build = match p.build {
                None => Some(Vec::new()),
                Some(b) => {
                    let words: Vec<String> =
                        b.get_ref().split_whitespace().map(str::to_owned).collect();
                    if words.is_empty() {
                        self.err(b.span(), format!("{t}.build: the command is empty"));
                        None
                    } else {
                        Some(words)
                    }
                }
            };
            let mut inputs = Vec::new();
            let mut inputs_ok = true;
            for i in &p.inputs {
                let path = self.base.join(i.get_ref());
                if path.exists() {
                    inputs.push(path);
                } else {
                    self.err(
                        i.span(),
                        format!("{t}.inputs: no file or directory `{}`", path.display()),
                    );
                    inputs_ok = false;
                }
            }
            if let (Some(name), Some(spec), Some(repo), Some(build), true) =
                (name, spec, repo, build, inputs_ok)
            {
                inputs.insert(0, spec.clone());
                out.insert(
                    name.clone(),
                    PackageSpec {
                        name,
                        spec,
                        build,
                        inputs,
                        repo,
                    },
                );
            }
        }
        out
    }

    fn images(
        &mut self,
        raw: BTreeMap<Spanned<String>, RawImage>,
        repos: &BTreeMap<String, RepoSpec>,
    ) -> BTreeMap<String, ImageSpec> {
        let mut out = BTreeMap::new();
        for (key, i) in raw {
            let name = self.name("images", &key);
            let t = format!("images.{}", key.get_ref());
            let recipe = self.file(&format!("{t}.recipe"), &i.recipe);
            let account = self.account(&format!("{t}.account"), &i.account);
            let mut share_with = Vec::new();
            let mut shares_ok = true;
            for s in &i.share_with {
                match self.account(&format!("{t}.share_with"), s) {
                    Some(a) if Some(&a) == account.as_ref() || share_with.contains(&a) => {
                        self.err(s.span(), format!("{t}.share_with: `{a}` is named twice"));
                        shares_ok = false;
                    }
                    Some(a) => share_with.push(a),
                    None => shares_ok = false,
                }
            }
            let repo = match &i.repo {
                None => Some(None),
                Some(r) => self.repo_ref(&format!("{t}.repo"), r, repos).map(Some),
            };
            let vars: BTreeMap<String, String> = i
                .vars
                .into_iter()
                .map(|(k, v)| (k, value_text(v)))
                .collect();
            if let (Some(name), Some(recipe), Some(account), Some(repo), true) =
                (name, recipe, account, repo, shares_ok)
            {
                out.insert(
                    name.clone(),
                    ImageSpec {
                        name,
                        recipe,
                        account,
                        share_with,
                        repo,
                        vars,
                    },
                );
            }
        }
        out
    }
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
        let p = plan(
            &m,
            &Observed {
                accounts: vec![AccountName::parse("dev").unwrap()],
                ..Observed::default()
            },
        );
        assert_eq!(p.steps, vec![Step::DeployStack(m.stacks[0].clone())]);
    }

    #[test]
    fn plan_creates_only_what_is_missing() {
        let m = parse(
            "[project]\nname = \"t\"\n[accounts.dev]\ndescription = \"d\"\n[accounts.prod]\n",
        )
        .unwrap();
        let dev = AccountName::parse("dev").unwrap();
        let seen = |accounts: Vec<AccountName>| Observed {
            accounts,
            ..Observed::default()
        };
        let p = plan(
            &m,
            &seen(vec![dev.clone(), AccountName::parse("other").unwrap()]),
        );
        assert_eq!(
            p.steps,
            vec![Step::CreateAccount {
                name: AccountName::parse("prod").unwrap(),
                description: String::new()
            }]
        );
        assert_eq!(p.up_to_date, vec!["account dev".to_string()]);
        let all = plan(&m, &seen(vec![dev, AccountName::parse("prod").unwrap()]));
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
