//! The pure planner behind `spindle down`: the manifest and what the daemon has in, the
//! deletions that take the project down out. Stacks go in the reverse of the manifest's order
//! (the app before the configuration it reads); what `up` built and published (repos,
//! packages, images) stays unless `all`, so the next `up` deploys again without rebuilding.
//! Accounts always stay: they hold credentials people saved and whatever else they hold.

use crate::Manifest;
use spindle_model::{AccountName, StackName};
use std::collections::{BTreeMap, BTreeSet};

/// What `spindle down` found: the project's stacks that exist, and (for `all`) what `up`
/// made besides them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownObserved {
    /// Stacks of the manifest that exist, with their status.
    pub stacks: BTreeMap<(AccountName, StackName), String>,
    /// Signing keys, as (account, key name).
    pub signing_keys: BTreeSet<(AccountName, String)>,
    /// Repos, as (account, repo name).
    pub repos: BTreeSet<(AccountName, String)>,
    /// Publications, as (account, prefix, distribution).
    pub publications: BTreeSet<(AccountName, String, String)>,
    /// The image `up` recorded for each `[images.NAME]`, by (account, name), in every account
    /// that owns it: its id.
    pub images: BTreeMap<(AccountName, String), String>,
    /// Parameters that exist, as (account, name): `up`'s records and the images'
    /// `/spindle/images/NAME/latest`.
    pub params: BTreeSet<(AccountName, String)>,
}

/// One deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownStep {
    DeleteStack {
        account: AccountName,
        name: StackName,
        status: String,
    },
    RemoveImage {
        account: AccountName,
        name: String,
        id: String,
    },
    DropPublication {
        account: AccountName,
        prefix: String,
        distribution: String,
    },
    DropRepo {
        account: AccountName,
        name: String,
    },
    DeleteSigningKey {
        account: AccountName,
        name: String,
    },
    DeleteParam {
        account: AccountName,
        name: String,
    },
}

impl std::fmt::Display for DownStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownStep::DeleteStack {
                account,
                name,
                status,
            } => write!(f, "delete stack {name} in {account} ({status})"),
            DownStep::RemoveImage { account, name, id } => {
                write!(f, "remove image {name} ({id}) from {account}")
            }
            DownStep::DropPublication {
                account,
                prefix,
                distribution,
            } => write!(f, "drop publication {prefix}/{distribution} in {account}"),
            DownStep::DropRepo { account, name } => write!(f, "drop repo {name} in {account}"),
            DownStep::DeleteSigningKey { account, name } => {
                write!(f, "delete signing key {name} in {account}")
            }
            DownStep::DeleteParam { account, name } => {
                write!(f, "delete parameter {name} in {account}")
            }
        }
    }
}

/// What `spindle down` will delete, and what it leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownPlan {
    pub steps: Vec<DownStep>,
    /// What stays, as people read it (`repo twine in dev`).
    pub kept: Vec<String>,
}

/// The parameters `up` keeps for the project in `account`'s store: its records of packages
/// and images, and each image's `latest` pointer.
pub fn up_params(manifest: &Manifest) -> Vec<(AccountName, String)> {
    let mut out = Vec::new();
    for p in manifest.packages.values() {
        let repo = &manifest.repos[&p.repo];
        out.push((
            repo.account.clone(),
            format!("/spindle/up/{}/packages/{}", manifest.name, p.name),
        ));
    }
    for i in manifest.images.values() {
        out.push((
            i.account.clone(),
            format!("/spindle/up/{}/images/{}", manifest.name, i.name),
        ));
        for a in i.accounts() {
            out.push((a.clone(), format!("/spindle/images/{}/latest", i.name)));
        }
    }
    out
}

/// Compares the manifest with what exists. Deletes only what the manifest names and exists,
/// so a second `down` plans nothing.
pub fn plan_down(manifest: &Manifest, observed: &DownObserved, all: bool) -> DownPlan {
    let mut p = DownPlan::default();
    let mut seen = BTreeSet::new();
    for s in manifest.stacks.iter().rev() {
        let key = (s.account.clone(), s.name.clone());
        if let Some(status) = observed.stacks.get(&key) {
            if seen.insert(key) {
                p.steps.push(DownStep::DeleteStack {
                    account: s.account.clone(),
                    name: s.name.clone(),
                    status: status.clone(),
                });
            }
        }
    }
    let mut kept = Vec::new();
    for i in manifest.images.values() {
        for a in i.accounts() {
            if let Some(id) = observed.images.get(&(a.clone(), i.name.clone())) {
                if all {
                    p.steps.push(DownStep::RemoveImage {
                        account: a.clone(),
                        name: i.name.clone(),
                        id: id.clone(),
                    });
                } else {
                    kept.push(format!("image {} ({id}) in {a}", i.name));
                }
            }
        }
    }
    for r in manifest.repos.values() {
        let publication = (r.account.clone(), r.prefix.clone(), r.distribution.clone());
        let repo = (r.account.clone(), r.name.clone());
        let key = (r.account.clone(), r.sign_key.clone());
        if !all {
            if observed.repos.contains(&repo) {
                let packages: Vec<&str> = manifest
                    .packages
                    .values()
                    .filter(|p| p.repo == r.name)
                    .map(|p| p.name.as_str())
                    .collect();
                kept.push(if packages.is_empty() {
                    format!("repo {} in {}", r.name, r.account)
                } else {
                    format!(
                        "repo {} in {} with package {}",
                        r.name,
                        r.account,
                        packages.join(", ")
                    )
                });
            }
            continue;
        }
        if observed.publications.contains(&publication) {
            p.steps.push(DownStep::DropPublication {
                account: publication.0,
                prefix: publication.1,
                distribution: publication.2,
            });
        }
        if observed.repos.contains(&repo) {
            p.steps.push(DownStep::DropRepo {
                account: repo.0,
                name: repo.1,
            });
        }
        if observed.signing_keys.contains(&key) {
            p.steps.push(DownStep::DeleteSigningKey {
                account: key.0,
                name: key.1,
            });
        }
    }
    if all {
        for key in up_params(manifest) {
            if observed.params.contains(&key) {
                p.steps.push(DownStep::DeleteParam {
                    account: key.0,
                    name: key.1,
                });
            }
        }
    }
    p.kept = kept;
    if !manifest.accounts.is_empty() {
        let names: Vec<&str> = manifest.accounts.keys().map(|a| a.as_str()).collect();
        p.kept.push(format!("accounts {}", names.join(", ")));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{acct, project_with};

    fn manifest() -> (tempfile::TempDir, Manifest) {
        project_with(
            r#"
[[stacks]]
name = "config"
account = "dev"
template = "s.yaml"
[[stacks]]
name = "app"
account = "dev"
template = "s.yaml"
[[stacks]]
name = "app"
account = "prod"
template = "s.yaml"
"#,
        )
    }

    /// What exists after an `up` of the project.
    fn after_up(m: &Manifest) -> DownObserved {
        let mut o = DownObserved::default();
        for s in &m.stacks {
            o.stacks.insert(
                (s.account.clone(), s.name.clone()),
                "CREATE_COMPLETE".into(),
            );
        }
        o.signing_keys.insert((acct("dev"), "app".into()));
        o.repos.insert((acct("dev"), "app".into()));
        o.publications
            .insert((acct("dev"), "app".into(), "stable".into()));
        for a in ["dev", "prod"] {
            o.images.insert((acct(a), "app".into()), "ami-1".into());
        }
        o.params = up_params(m).into_iter().collect();
        o
    }

    fn names(p: &DownPlan) -> Vec<String> {
        p.steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stacks_go_in_reverse_order_and_the_rest_stays() {
        let (_d, m) = manifest();
        let p = plan_down(&m, &after_up(&m), false);
        assert_eq!(
            names(&p),
            [
                "delete stack app in prod (CREATE_COMPLETE)",
                "delete stack app in dev (CREATE_COMPLETE)",
                "delete stack config in dev (CREATE_COMPLETE)",
            ]
        );
        assert_eq!(
            p.kept,
            [
                "image app (ami-1) in dev",
                "image app (ami-1) in prod",
                "repo app in dev with package app",
                "accounts dev, prod",
            ]
        );
    }

    #[test]
    fn all_also_removes_images_repos_keys_and_records() {
        let (_d, m) = manifest();
        let p = plan_down(&m, &after_up(&m), true);
        assert_eq!(
            names(&p),
            [
                "delete stack app in prod (CREATE_COMPLETE)",
                "delete stack app in dev (CREATE_COMPLETE)",
                "delete stack config in dev (CREATE_COMPLETE)",
                "remove image app (ami-1) from dev",
                "remove image app (ami-1) from prod",
                "drop publication app/stable in dev",
                "drop repo app in dev",
                "delete signing key app in dev",
                "delete parameter /spindle/up/t/packages/app in dev",
                "delete parameter /spindle/up/t/images/app in dev",
                "delete parameter /spindle/images/app/latest in dev",
                "delete parameter /spindle/images/app/latest in prod",
            ]
        );
        assert_eq!(p.kept, ["accounts dev, prod"]);
    }

    #[test]
    fn what_is_gone_is_not_planned_again() {
        let (_d, m) = manifest();
        // A second `down`: no stack left.
        let mut o = after_up(&m);
        o.stacks.clear();
        assert!(plan_down(&m, &o, false).steps.is_empty());
        // A second `down --all`: nothing left at all.
        assert!(plan_down(&m, &DownObserved::default(), true)
            .steps
            .is_empty());
        // Half-way: one stack already deleted, a failed one still there.
        let mut o = after_up(&m);
        o.stacks
            .remove(&(acct("prod"), StackName::parse("app").unwrap()));
        o.stacks.insert(
            (acct("dev"), StackName::parse("app").unwrap()),
            "DELETE_FAILED".into(),
        );
        assert_eq!(
            names(&plan_down(&m, &o, false)),
            [
                "delete stack app in dev (DELETE_FAILED)",
                "delete stack config in dev (CREATE_COMPLETE)",
            ]
        );
    }
}
