//! The pure planner behind `spindle up`: the manifest and what the daemon has ([`Observed`])
//! in, the steps that bring the project up to date out. It never does I/O.

use crate::{ImageSpec, Manifest, PackageSpec, RepoSpec, StackSpec};
use sha2::{Digest, Sha256};
use spindle_model::AccountName;
use std::collections::{BTreeMap, BTreeSet};

/// What the CLI found before planning: the daemon's state, the digests of the inputs now, and
/// what the last `up` recorded (in the parameters `/spindle/up/PROJECT/...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub accounts: Vec<AccountName>,
    /// Signing keys, as (account, key name).
    pub signing_keys: BTreeSet<(AccountName, String)>,
    /// Repos, as (account, repo name).
    pub repos: BTreeSet<(AccountName, String)>,
    /// Publications, as (account, prefix, distribution).
    pub publications: BTreeSet<(AccountName, String, String)>,
    /// By package name.
    pub packages: BTreeMap<String, PackageState>,
    /// By image name.
    pub images: BTreeMap<String, ImageState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageState {
    /// The digest of the package's inputs now ([`crate::digest_paths`]).
    pub inputs: String,
    /// What the last `up` recorded: the inputs' digest and the .deb's sha256.
    pub recorded: Option<(String, String)>,
    /// The sha256 of every .deb of this name the repo holds.
    pub in_repo: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageState {
    /// The digest of the recipe's directory now.
    pub recipe: String,
    /// What the last `up` recorded: the image's input digest ([`image_digest`]) and its id.
    pub recorded: Option<(String, String)>,
    /// The accounts whose `/spindle/images/NAME/latest` names the recorded image and that
    /// own it.
    pub ready_in: BTreeSet<AccountName>,
}

/// One thing `spindle up` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateAccount {
        name: AccountName,
        description: String,
    },
    CreateSigningKey {
        account: AccountName,
        name: String,
    },
    CreateRepo(RepoSpec),
    /// Run the package's build command and `pkg build` its spec.
    BuildPackage {
        spec: PackageSpec,
        inputs: String,
    },
    /// Upload the packages built in this run (`packages`) to the repo, add them, and publish
    /// it (`create`: the publication doesn't exist yet).
    Publish {
        repo: RepoSpec,
        packages: Vec<String>,
        create: bool,
    },
    /// Bake the recipe, import the image into every account of the image and point their
    /// `/spindle/images/NAME/latest` at it.
    BakeImage {
        spec: ImageSpec,
        inputs: String,
    },
    /// Bring a stack up to date: preview its change set and execute it if not empty.
    DeployStack(StackSpec),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateAccount { name, .. } => write!(f, "create account {name}"),
            Step::CreateSigningKey { account, name } => {
                write!(f, "create signing key {name} in {account}")
            }
            Step::CreateRepo(r) => write!(f, "create repo {} in {}", r.name, r.account),
            Step::BuildPackage { spec, .. } => write!(f, "build package {}", spec.name),
            Step::Publish { repo, packages, .. } if packages.is_empty() => {
                write!(f, "publish repo {} in {}", repo.name, repo.account)
            }
            Step::Publish { repo, packages, .. } => write!(
                f,
                "publish {} to repo {} in {}",
                packages.join(", "),
                repo.name,
                repo.account
            ),
            Step::BakeImage { spec, .. } => {
                write!(f, "bake image {} in {}", spec.name, spec.account)?;
                if !spec.share_with.is_empty() {
                    let others: Vec<&str> = spec.share_with.iter().map(|a| a.as_str()).collect();
                    write!(f, " (shared with {})", others.join(", "))?;
                }
                Ok(())
            }
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

/// The digest that decides whether an image is out of date: its recipe directory, its `-var`
/// values, the accounts it goes to, and the input digests of the packages of the repo it
/// installs from (so a changed package re-bakes the image).
pub fn image_digest(manifest: &Manifest, image: &ImageSpec, observed: &Observed) -> String {
    let mut h = Sha256::new();
    let state = observed.images.get(&image.name);
    h.update(format!(
        "recipe {} {}\0",
        image
            .recipe
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        state.map_or("", |s| s.recipe.as_str())
    ));
    for (k, v) in &image.vars {
        h.update(format!("var {k}={v}\0"));
    }
    for a in image.accounts() {
        h.update(format!("account {a}\0"));
    }
    if let Some(repo) = &image.repo {
        h.update(format!("repo {repo}\0"));
        for p in manifest.packages.values().filter(|p| &p.repo == repo) {
            let inputs = observed
                .packages
                .get(&p.name)
                .map_or("", |s| s.inputs.as_str());
            h.update(format!("package {} {inputs}\0", p.name));
        }
    }
    hex::encode(h.finalize())
}

/// Compares the manifest with what the daemon has. What the manifest doesn't name is left
/// alone: `up` adds and updates, it never deletes what it wasn't asked about.
pub fn plan(manifest: &Manifest, observed: &Observed) -> Plan {
    let mut p = Plan::default();
    for (name, spec) in &manifest.accounts {
        if observed.accounts.contains(name) {
            p.up_to_date.push(format!("account {name}"));
        } else {
            p.steps.push(Step::CreateAccount {
                name: name.clone(),
                description: spec.description.clone(),
            });
        }
    }
    for repo in manifest.repos.values() {
        let key = (repo.account.clone(), repo.sign_key.clone());
        if !observed.signing_keys.contains(&key) {
            p.steps.push(Step::CreateSigningKey {
                account: key.0,
                name: key.1,
            });
        }
        if observed
            .repos
            .contains(&(repo.account.clone(), repo.name.clone()))
        {
            p.up_to_date
                .push(format!("repo {} in {}", repo.name, repo.account));
        } else {
            p.steps.push(Step::CreateRepo(repo.clone()));
        }
    }
    let mut built: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for pkg in manifest.packages.values() {
        let state = observed.packages.get(&pkg.name);
        let current = state.is_some_and(|s| {
            s.recorded
                .as_ref()
                .is_some_and(|(inputs, sha)| *inputs == s.inputs && s.in_repo.contains(sha))
        });
        if current {
            p.up_to_date.push(format!("package {}", pkg.name));
        } else {
            p.steps.push(Step::BuildPackage {
                spec: pkg.clone(),
                inputs: state.map(|s| s.inputs.clone()).unwrap_or_default(),
            });
            built
                .entry(pkg.repo.as_str())
                .or_default()
                .push(pkg.name.clone());
        }
    }
    for repo in manifest.repos.values() {
        let packages = built.remove(repo.name.as_str()).unwrap_or_default();
        let create = !observed.publications.contains(&(
            repo.account.clone(),
            repo.prefix.clone(),
            repo.distribution.clone(),
        ));
        if create || !packages.is_empty() {
            p.steps.push(Step::Publish {
                repo: repo.clone(),
                packages,
                create,
            });
        } else {
            p.up_to_date.push(format!(
                "publication {}/{} in {}",
                repo.prefix, repo.distribution, repo.account
            ));
        }
    }
    for image in manifest.images.values() {
        let inputs = image_digest(manifest, image, observed);
        let current = observed.images.get(&image.name).is_some_and(|s| {
            s.recorded.as_ref().is_some_and(|(d, _)| *d == inputs)
                && image.accounts().all(|a| s.ready_in.contains(a))
        });
        if current {
            p.up_to_date.push(format!("image {}", image.name));
        } else {
            p.steps.push(Step::BakeImage {
                spec: image.clone(),
                inputs,
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
pub(crate) mod tests {
    use super::*;
    use crate::MANIFEST;

    /// A project with a package, its repo and an image shared with prod. Shared with
    /// `down`'s tests, which add stacks.
    const TEXT: &str = r#"
[project]
name = "t"
[accounts.dev]
[accounts.prod]
[repos.app]
account = "dev"
[packages.app]
spec = "app.toml"
build = "./build.sh --release"
inputs = ["src"]
repo = "app"
[images.app]
recipe = "images/app.pkr.hcl"
account = "dev"
share_with = ["prod"]
repo = "app"
vars = { base = "debian:bookworm" }
"#;

    fn project() -> (tempfile::TempDir, Manifest) {
        project_with("")
    }

    /// The project of [`TEXT`] followed by `more` (`[[stacks]]` of template `s.yaml`), its
    /// files written.
    pub(crate) fn project_with(more: &str) -> (tempfile::TempDir, Manifest) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::create_dir_all(d.path().join("images")).unwrap();
        for f in ["app.toml", "images/app.pkr.hcl", "s.yaml"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let m = Manifest::parse(&d.path().join(MANIFEST), &format!("{TEXT}{more}")).unwrap();
        (d, m)
    }

    pub(crate) fn acct(s: &str) -> AccountName {
        AccountName::parse(s).unwrap()
    }

    /// What the daemon reports after an `up` of the project with these input digests.
    fn after_up(m: &Manifest, pkg_inputs: &str, recipe: &str) -> Observed {
        let mut o = Observed {
            accounts: vec![acct("dev"), acct("prod")],
            signing_keys: [(acct("dev"), "app".into())].into(),
            repos: [(acct("dev"), "app".into())].into(),
            publications: [(acct("dev"), "app".into(), "stable".into())].into(),
            ..Observed::default()
        };
        o.packages.insert(
            "app".into(),
            PackageState {
                inputs: pkg_inputs.into(),
                recorded: Some((pkg_inputs.into(), "deb1".into())),
                in_repo: vec!["deb1".into()],
            },
        );
        o.images.insert(
            "app".into(),
            ImageState {
                recipe: recipe.into(),
                recorded: None,
                ready_in: [acct("dev"), acct("prod")].into(),
            },
        );
        let digest = image_digest(m, &m.images["app"], &o);
        o.images.get_mut("app").unwrap().recorded = Some((digest, "ami-1".into()));
        o
    }

    fn names(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_fresh_daemon_gets_everything_in_order() {
        let (_d, m) = project();
        assert_eq!(m.packages["app"].build, ["./build.sh", "--release"]);
        assert_eq!(m.packages["app"].inputs.len(), 2, "the spec and src");
        let p = plan(&m, &Observed::default());
        assert_eq!(
            names(&p),
            [
                "create account dev",
                "create account prod",
                "create signing key app in dev",
                "create repo app in dev",
                "build package app",
                "publish app to repo app in dev",
                "bake image app in dev (shared with prod)",
            ]
        );
        assert!(matches!(&p.steps[5], Step::Publish { create: true, .. }));
    }

    #[test]
    fn unchanged_inputs_plan_nothing() {
        let (_d, m) = project();
        let o = after_up(&m, "src1", "recipe1");
        let p = plan(&m, &o);
        assert!(p.steps.is_empty(), "{:?}", names(&p));
        assert_eq!(
            p.up_to_date,
            [
                "account dev",
                "account prod",
                "repo app in dev",
                "package app",
                "publication app/stable in dev",
                "image app",
            ]
        );
    }

    #[test]
    fn a_changed_package_rebuilds_publishes_and_rebakes() {
        let (_d, m) = project();
        let mut o = after_up(&m, "src1", "recipe1");
        o.packages.get_mut("app").unwrap().inputs = "src2".into();
        let p = plan(&m, &o);
        assert_eq!(
            names(&p),
            [
                "build package app",
                "publish app to repo app in dev",
                "bake image app in dev (shared with prod)",
            ]
        );
        assert!(matches!(&p.steps[1], Step::Publish { create: false, .. }));
    }

    #[test]
    fn a_changed_recipe_or_var_rebakes_only() {
        let (_d, mut m) = project();
        let o = after_up(&m, "src1", "recipe1");
        let mut changed = o.clone();
        changed.images.get_mut("app").unwrap().recipe = "recipe2".into();
        assert_eq!(
            names(&plan(&m, &changed)),
            ["bake image app in dev (shared with prod)"]
        );
        m.images
            .get_mut("app")
            .unwrap()
            .vars
            .insert("base".into(), "scratch".into());
        assert_eq!(
            names(&plan(&m, &o)),
            ["bake image app in dev (shared with prod)"]
        );
    }

    #[test]
    fn missing_pieces_are_redone_even_with_unchanged_inputs() {
        let (_d, m) = project();
        // The .deb the record names is gone from the repo (the repo was dropped and made again).
        let mut o = after_up(&m, "src1", "recipe1");
        o.packages.get_mut("app").unwrap().in_repo.clear();
        assert_eq!(
            names(&plan(&m, &o)),
            ["build package app", "publish app to repo app in dev"]
        );
        // The publication was dropped: publish again, nothing to build.
        let mut o = after_up(&m, "src1", "recipe1");
        o.publications.clear();
        let p = plan(&m, &o);
        assert_eq!(names(&p), ["publish repo app in dev"]);
        assert!(matches!(&p.steps[0], Step::Publish { create: true, .. }));
        // prod lost the image (or its parameter): bake again, which the bake cache makes cheap.
        let mut o = after_up(&m, "src1", "recipe1");
        o.images
            .get_mut("app")
            .unwrap()
            .ready_in
            .remove(&acct("prod"));
        assert_eq!(
            names(&plan(&m, &o)),
            ["bake image app in dev (shared with prod)"]
        );
    }

    #[test]
    fn bad_entries_name_their_line_and_column() {
        let (d, _) = project();
        let text = r#"[project]
name = "t"
[accounts.dev]
[repos.App]
account = "dev"
[repos.ok]
account = "qa"
prefix = "Bad Prefix"
[packages.app]
spec = "missing.toml"
inputs = ["nothere"]
repo = "nope"
[images.app]
recipe = "images/app.pkr.hcl"
account = "dev"
share_with = ["dev"]
repo = "ok"
colour = 1
"#;
        let err = Manifest::parse(&d.path().join(MANIFEST), text)
            .unwrap_err()
            .to_string();
        let f = d.path().join(MANIFEST);
        let f = f.display();
        assert_eq!(
            err,
            format!("{f}:18:1: unknown field `colour`, expected one of `recipe`, `account`, `share_with`, `repo`, `vars`")
        );
        let text = text.replace("colour = 1\n", "");
        let err = Manifest::parse(&d.path().join(MANIFEST), &text)
            .unwrap_err()
            .to_string();
        let want = [
            format!("{f}:4:8: repos.App: name `App` is not valid: expected a-z or 0-9 first, then a-z, 0-9, `.`, `+` and `-`"),
            format!("{f}:7:11: repos.ok.account: `qa` is not one of the [accounts] of this manifest"),
            format!("{f}:8:10: repos.ok.prefix: `Bad Prefix` is not valid: expected a-z or 0-9 first, then a-z, 0-9, `.`, `+` and `-`"),
            format!("{f}:10:8: packages.app.spec: no file `{}`", d.path().join("missing.toml").display()),
            format!("{f}:12:8: packages.app.repo: no repo `nope` in [repos] (declared: none)"),
            format!("{f}:11:11: packages.app.inputs: no file or directory `{}`", d.path().join("nothere").display()),
            format!("{f}:16:15: images.app.share_with: `dev` is named twice"),
            format!("{f}:17:8: images.app.repo: no repo `ok` in [repos] (declared: none)"),
        ];
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            want.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}
