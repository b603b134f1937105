//! Local repositories and snapshots as plain data, and the pure operations on them: add,
//! remove by query, copy and move between repositories, snapshot from a repository,
//! snapshot diff, merge and filter (optionally following dependencies).
//!
//! Nothing here does I/O. The daemon persists [`Repo`] and [`Snapshot`] (both serialise
//! with serde) and the package records in its store; these functions take the records they
//! need through a [`Catalog`] and return new values or reports, never half-applied changes:
//! on error the repository is unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spindle_deb::relation::Relations;
use spindle_deb::Version;

use crate::catalog::{Catalog, CatalogError};
use crate::package::{PackageKey, PackageRef};
use crate::query::Query;

/// Why a repository or snapshot operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    #[error("repository `{repo}` does not carry architecture `{arch}` (package `{key}`; it carries {carried})")]
    Architecture {
        repo: String,
        key: Box<PackageKey>,
        arch: String,
        carried: String,
    },
    #[error("repository `{repo}` refers to a package missing from the catalog")]
    Missing {
        repo: String,
        #[source]
        source: CatalogError,
    },
    #[error("invalid repository or snapshot name `{name}`: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("cannot merge: no source snapshots")]
    NothingToMerge,
}

/// Checks a repository or snapshot name: 1–64 characters of `[A-Za-z0-9._-]`, not starting
/// with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), RepoError> {
    let err = |reason| {
        Err(RepoError::Name {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return err("must be 1 to 64 characters long");
    }
    if name.starts_with(['.', '-']) {
        return err("must not start with `.` or `-`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return err("may only contain letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// A mutable local repository: a named set of package keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repo {
    pub name: String,
    #[serde(default)]
    pub comment: String,
    /// Architectures the repository accepts besides `all`; empty accepts any.
    #[serde(default)]
    pub architectures: BTreeSet<String>,
    #[serde(default)]
    pub packages: BTreeSet<PackageKey>,
}

/// What an add changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    pub added: Vec<PackageKey>,
    /// Keys that were already in the repository.
    pub unchanged: Vec<PackageKey>,
}

impl Repo {
    pub fn new(name: &str, architectures: &[&str]) -> Result<Repo, RepoError> {
        validate_name(name)?;
        Ok(Repo {
            name: name.to_string(),
            comment: String::new(),
            architectures: architectures.iter().map(|a| a.to_string()).collect(),
            packages: BTreeSet::new(),
        })
    }

    fn check_arch(&self, key: &PackageKey) -> Result<(), RepoError> {
        if self.architectures.is_empty()
            || key.arch() == "all"
            || self.architectures.contains(key.arch())
        {
            return Ok(());
        }
        Err(RepoError::Architecture {
            repo: self.name.clone(),
            key: Box::new(key.clone()),
            arch: key.arch().to_string(),
            carried: self
                .architectures
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Adds packages (already in the catalog and pool). All are checked first: one package
    /// for an architecture the repository does not carry refuses the whole add.
    pub fn add<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a PackageKey>,
    ) -> Result<AddReport, RepoError> {
        let keys: Vec<&PackageKey> = keys.into_iter().collect();
        for key in &keys {
            self.check_arch(key)?;
        }
        let mut report = AddReport::default();
        for key in keys {
            if self.packages.insert(key.clone()) {
                report.added.push(key.clone());
            } else {
                report.unchanged.push(key.clone());
            }
        }
        Ok(report)
    }

    /// The packages matching `query`, in key order.
    pub fn search(
        &self,
        query: &Query,
        catalog: &Catalog,
    ) -> Result<Vec<Arc<PackageRef>>, RepoError> {
        select(&self.name, &self.packages, query, catalog)
    }

    /// Removes the packages matching `query`, returning their keys.
    pub fn remove(
        &mut self,
        query: &Query,
        catalog: &Catalog,
    ) -> Result<Vec<PackageKey>, RepoError> {
        let gone: Vec<PackageKey> = self
            .search(query, catalog)?
            .iter()
            .map(|p| p.key().clone())
            .collect();
        for k in &gone {
            self.packages.remove(k);
        }
        Ok(gone)
    }
}

fn select(
    owner: &str,
    keys: &BTreeSet<PackageKey>,
    query: &Query,
    catalog: &Catalog,
) -> Result<Vec<Arc<PackageRef>>, RepoError> {
    let packages = catalog.resolve(keys).map_err(|source| RepoError::Missing {
        repo: owner.to_string(),
        source,
    })?;
    Ok(packages.into_iter().filter(|p| query.matches(p)).collect())
}

/// Copies the packages of `from` matching `query` into `to` (architecture rules of `to`
/// apply; on error `to` is unchanged).
pub fn copy(
    from: &Repo,
    to: &mut Repo,
    query: &Query,
    catalog: &Catalog,
) -> Result<AddReport, RepoError> {
    let selected = from.search(query, catalog)?;
    to.add(selected.iter().map(|p| p.key()))
}

/// Moves the packages of `from` matching `query` into `to`. Both change or neither does.
pub fn move_packages(
    from: &mut Repo,
    to: &mut Repo,
    query: &Query,
    catalog: &Catalog,
) -> Result<AddReport, RepoError> {
    let report = copy(from, to, query, catalog)?;
    for k in report.added.iter().chain(&report.unchanged) {
        from.packages.remove(k);
    }
    Ok(report)
}

/// Where a snapshot's contents came from, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnapshotSource {
    Repo {
        name: String,
    },
    Merge {
        sources: Vec<String>,
        latest: bool,
    },
    Filter {
        source: String,
        query: String,
        with_deps: bool,
    },
    Mirror {
        name: String,
    },
}

/// An immutable set of packages. Fields are read-only: every operation makes a new snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    name: String,
    description: String,
    source: SnapshotSource,
    packages: BTreeSet<PackageKey>,
}

/// How to merge snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// For each name and architecture keep only the highest version across all sources.
    LatestWins,
    /// Keep every version from every source.
    KeepAll,
}

/// What changed between two snapshots, per package name and architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotDiff {
    /// Only in the new snapshot.
    pub added: Vec<PackageKey>,
    /// Only in the old snapshot.
    pub removed: Vec<PackageKey>,
    /// In both with a different version: `(old, new)`; `new` may be lower (a downgrade).
    pub changed: Vec<(PackageKey, PackageKey)>,
}

/// Result of a filter: the snapshot and the dependencies that could not be satisfied.
#[derive(Debug, Clone)]
pub struct Filtered {
    pub snapshot: Snapshot,
    /// `(package, unsatisfied relation)`, for reporting.
    pub unsatisfied: Vec<(PackageKey, String)>,
}

/// Dependency following options for [`Snapshot::filter`].
#[derive(Debug, Clone, Default)]
pub struct DepOptions {
    /// Follow `Depends` and `Pre-Depends` (always) and also `Recommends`.
    pub recommends: bool,
    /// Also `Suggests`.
    pub suggests: bool,
    /// Architectures considered for `Architecture: all` packages' dependencies; empty means
    /// every architecture in the source snapshot.
    pub architectures: Vec<String>,
}

impl Snapshot {
    /// A snapshot of a repository's current contents.
    pub fn from_repo(name: &str, repo: &Repo, description: &str) -> Result<Snapshot, RepoError> {
        validate_name(name)?;
        Ok(Snapshot {
            name: name.to_string(),
            description: description.to_string(),
            source: SnapshotSource::Repo {
                name: repo.name.clone(),
            },
            packages: repo.packages.clone(),
        })
    }

    /// A snapshot of an arbitrary package set (e.g. a mirror's selection).
    pub fn from_packages(
        name: &str,
        source: SnapshotSource,
        packages: BTreeSet<PackageKey>,
        description: &str,
    ) -> Result<Snapshot, RepoError> {
        validate_name(name)?;
        Ok(Snapshot {
            name: name.to_string(),
            description: description.to_string(),
            source,
            packages,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn source(&self) -> &SnapshotSource {
        &self.source
    }

    pub fn packages(&self) -> &BTreeSet<PackageKey> {
        &self.packages
    }

    /// The packages matching `query`.
    pub fn search(
        &self,
        query: &Query,
        catalog: &Catalog,
    ) -> Result<Vec<Arc<PackageRef>>, RepoError> {
        select(&self.name, &self.packages, query, catalog)
    }

    /// Compares `old` to `new`.
    pub fn diff(old: &Snapshot, new: &Snapshot) -> SnapshotDiff {
        diff_sets(&old.packages, &new.packages)
    }

    /// Merges snapshots in order.
    pub fn merge(
        name: &str,
        sources: &[&Snapshot],
        mode: MergeMode,
        description: &str,
    ) -> Result<Snapshot, RepoError> {
        validate_name(name)?;
        if sources.is_empty() {
            return Err(RepoError::NothingToMerge);
        }
        let mut packages = BTreeSet::new();
        for s in sources {
            packages.extend(s.packages.iter().cloned());
        }
        if mode == MergeMode::LatestWins {
            packages = latest_only(packages);
        }
        Ok(Snapshot {
            name: name.to_string(),
            description: description.to_string(),
            source: SnapshotSource::Merge {
                sources: sources.iter().map(|s| s.name.clone()).collect(),
                latest: mode == MergeMode::LatestWins,
            },
            packages,
        })
    }

    /// A new snapshot with the packages of `self` matching `query`, plus (when `deps` is
    /// given) everything they need from `self`, transitively.
    pub fn filter(
        &self,
        name: &str,
        query: &Query,
        query_text: &str,
        deps: Option<&DepOptions>,
        catalog: &Catalog,
    ) -> Result<Filtered, RepoError> {
        validate_name(name)?;
        let all = catalog
            .resolve(&self.packages)
            .map_err(|source| RepoError::Missing {
                repo: self.name.clone(),
                source,
            })?;
        let mut selected: BTreeSet<PackageKey> = all
            .iter()
            .filter(|p| query.matches(p))
            .map(|p| p.key().clone())
            .collect();
        let mut unsatisfied = Vec::new();
        if let Some(opts) = deps {
            unsatisfied = resolve_dependencies(&all, &mut selected, opts);
        }
        Ok(Filtered {
            snapshot: Snapshot {
                name: name.to_string(),
                description: String::new(),
                source: SnapshotSource::Filter {
                    source: self.name.clone(),
                    query: query_text.to_string(),
                    with_deps: deps.is_some(),
                },
                packages: selected,
            },
            unsatisfied,
        })
    }
}

/// Keeps, for each name and architecture, only the highest version.
pub fn latest_only(packages: BTreeSet<PackageKey>) -> BTreeSet<PackageKey> {
    // Keys sort by name, arch, then version: the last of each run is the newest.
    let mut out: BTreeMap<(String, String), PackageKey> = BTreeMap::new();
    for k in packages {
        out.insert((k.name().to_string(), k.arch().to_string()), k);
    }
    out.into_values().collect()
}

/// Diff of two key sets by name and architecture.
pub fn diff_sets(old: &BTreeSet<PackageKey>, new: &BTreeSet<PackageKey>) -> SnapshotDiff {
    let group = |s: &BTreeSet<PackageKey>| {
        let mut m: BTreeMap<(String, String), Vec<PackageKey>> = BTreeMap::new();
        for k in s {
            m.entry((k.name().to_string(), k.arch().to_string()))
                .or_default()
                .push(k.clone());
        }
        m
    };
    let (a, b) = (group(old), group(new));
    let mut diff = SnapshotDiff::default();
    let names: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
    for n in names {
        match (a.get(n), b.get(n)) {
            (Some(o), None) => diff.removed.extend(o.iter().cloned()),
            (None, Some(nw)) => diff.added.extend(nw.iter().cloned()),
            (Some(o), Some(nw)) => {
                let o_only: Vec<&PackageKey> = o.iter().filter(|k| !nw.contains(k)).collect();
                let n_only: Vec<&PackageKey> = nw.iter().filter(|k| !o.contains(k)).collect();
                match (o_only.as_slice(), n_only.as_slice()) {
                    ([], []) => {}
                    ([old1], [new1]) => diff.changed.push(((*old1).clone(), (*new1).clone())),
                    _ => {
                        diff.removed.extend(o_only.into_iter().cloned());
                        diff.added.extend(n_only.into_iter().cloned());
                    }
                }
            }
            (None, None) => {}
        }
    }
    diff
}

/// Adds to `selected` the packages of `all` needed to satisfy the dependencies of the
/// selected packages, transitively. Among candidates the highest version wins; virtual
/// packages are satisfied through `Provides`. Returns the relations nothing satisfies.
fn resolve_dependencies(
    all: &[Arc<PackageRef>],
    selected: &mut BTreeSet<PackageKey>,
    opts: &DepOptions,
) -> Vec<(PackageKey, String)> {
    // name -> candidates: (package, the version it has under that name; None for an
    // unversioned Provides).
    type Candidates<'a> = Vec<(&'a Arc<PackageRef>, Option<Version>)>;
    let mut by_name: BTreeMap<String, Candidates<'_>> = BTreeMap::new();
    for p in all {
        by_name
            .entry(p.key().name().to_string())
            .or_default()
            .push((p, Some(p.key().version().clone())));
        if let Some(Ok(provides)) = p.control().get("Provides").map(Relations::parse) {
            for rel in provides.0.iter().flatten() {
                let v = rel.version.as_ref().map(|(_, v)| v.clone());
                by_name.entry(rel.name.clone()).or_default().push((p, v));
            }
        }
    }
    let snapshot_archs: BTreeSet<&str> = all
        .iter()
        .map(|p| p.key().arch())
        .filter(|a| *a != "all")
        .collect();
    let archs_for = |arch: &str| -> Vec<String> {
        if arch != "all" {
            return vec![arch.to_string()];
        }
        if !opts.architectures.is_empty() {
            return opts.architectures.clone();
        }
        snapshot_archs.iter().map(|a| a.to_string()).collect()
    };
    let by_key: BTreeMap<&PackageKey, &Arc<PackageRef>> =
        all.iter().map(|p| (p.key(), p)).collect();
    let mut fields = vec!["Pre-Depends", "Depends"];
    if opts.recommends {
        fields.push("Recommends");
    }
    if opts.suggests {
        fields.push("Suggests");
    }
    let mut queue: Vec<PackageKey> = selected.iter().cloned().collect();
    let mut unsatisfied = Vec::new();
    while let Some(key) = queue.pop() {
        let Some(p) = by_key.get(&key) else { continue };
        for field in &fields {
            let Some(Ok(relations)) = p.control().get(field).map(Relations::parse) else {
                continue;
            };
            for arch in archs_for(key.arch()) {
                for group in &relations.0 {
                    let mut candidates: Vec<&Arc<PackageRef>> = Vec::new();
                    for rel in group {
                        for (c, provided) in by_name.get(&rel.name).into_iter().flatten() {
                            let c_arch = c.key().arch();
                            let version_ok = match (&rel.version, provided) {
                                (None, _) => true,
                                (Some((op, want)), Some(v)) => op.holds(v.cmp(want)),
                                (Some(_), None) => false,
                            };
                            if (c_arch == arch || c_arch == "all") && version_ok {
                                candidates.push(c);
                            }
                        }
                    }
                    if candidates.iter().any(|c| selected.contains(c.key())) {
                        continue;
                    }
                    let best = candidates
                        .iter()
                        .max_by(|a, b| a.key().version().cmp(b.key().version()));
                    match best {
                        Some(best) => {
                            if selected.insert(best.key().clone()) {
                                queue.push(best.key().clone());
                            }
                        }
                        None => {
                            let text = group
                                .iter()
                                .map(|r| r.to_string())
                                .collect::<Vec<_>>()
                                .join(" | ");
                            let entry = (key.clone(), format!("{field}: {text} [{arch}]"));
                            if !unsatisfied.contains(&entry) {
                                unsatisfied.push(entry);
                            }
                        }
                    }
                }
            }
        }
    }
    unsatisfied
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_deb::control::parse_paragraph;

    /// A catalog from one-line package descriptions: `name version arch [Depends...]`.
    fn catalog(lines: &[&str]) -> (Catalog, Vec<PackageKey>) {
        let mut c = Catalog::new();
        let mut keys = Vec::new();
        for line in lines {
            let mut parts = line.splitn(4, ' ');
            let (n, v, a) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let mut text = format!("Package: {n}\nVersion: {v}\nArchitecture: {a}\n");
            if let Some(rest) = parts.next() {
                for field in rest.split(';') {
                    text.push_str(field.trim());
                    text.push('\n');
                }
            }
            let p = PackageRef::new(
                parse_paragraph(&text).unwrap(),
                spindle_deb::digest::digest_bytes(text.as_bytes()),
                vec![],
            )
            .unwrap();
            keys.push(p.key().clone());
            c.insert(p).unwrap();
        }
        (c, keys)
    }

    fn names(keys: impl IntoIterator<Item = impl std::borrow::Borrow<PackageKey>>) -> Vec<String> {
        keys.into_iter().map(|k| k.borrow().to_string()).collect()
    }

    #[test]
    fn repo_add_remove_copy_move() {
        let (cat, keys) = catalog(&[
            "hello 1.0 amd64",
            "hello 1.0 arm64",
            "hello-doc 1.0 all",
            "libfoo 2.0 amd64",
        ]);
        let mut repo = Repo::new("r1", &["amd64"]).unwrap();
        let err = repo.add(&keys).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not carry architecture `arm64`"),
            "{err}"
        );
        assert!(repo.packages.is_empty(), "a refused add changed the repo");
        let ok: Vec<&PackageKey> = keys.iter().filter(|k| k.arch() != "arm64").collect();
        let report = repo.add(ok.iter().copied()).unwrap();
        assert_eq!(report.added.len(), 3);
        assert_eq!(repo.add(ok.iter().copied()).unwrap().unchanged.len(), 3);

        let mut other = Repo::new("r2", &[]).unwrap();
        let q = Query::parse("Name (% hello*)").unwrap();
        let copied = copy(&repo, &mut other, &q, &cat).unwrap();
        assert_eq!(
            names(&copied.added),
            ["hello_1.0_amd64", "hello-doc_1.0_all"]
        );
        assert_eq!(repo.packages.len(), 3);

        let mut third = Repo::new("r3", &["amd64"]).unwrap();
        let moved = move_packages(
            &mut repo,
            &mut third,
            &Query::parse("libfoo").unwrap(),
            &cat,
        )
        .unwrap();
        assert_eq!(names(&moved.added), ["libfoo_2.0_amd64"]);
        assert_eq!(
            names(&repo.packages),
            ["hello_1.0_amd64", "hello-doc_1.0_all"]
        );

        let removed = repo
            .remove(&Query::parse("$Architecture (all), !hello").unwrap(), &cat)
            .unwrap();
        assert_eq!(names(&removed), ["hello-doc_1.0_all"]);
        assert_eq!(names(&repo.packages), ["hello_1.0_amd64"]);

        let json = serde_json::to_string(&repo).unwrap();
        assert_eq!(serde_json::from_str::<Repo>(&json).unwrap(), repo);
        assert!(Repo::new("../x", &[]).is_err());
    }

    #[test]
    fn snapshot_diff_merge_filter() {
        let (cat, keys) = catalog(&[
            "app 1.0 amd64 Depends: libc6 (>= 2.36), web-server | nginx",
            "app 2.0 amd64 Depends: libc6 (>= 2.36), web-server | nginx",
            "libc6 2.36 amd64",
            "libc6 2.35 amd64",
            "apache2 2.4 amd64 Provides: web-server",
            "tool 1.0 all Depends: missing-thing",
            "old 1.0 amd64",
        ]);
        let k = |s: &str| keys.iter().find(|k| k.to_string() == s).unwrap().clone();
        let mut r = Repo::new("r", &[]).unwrap();
        r.add(
            [
                k("app_1.0_amd64"),
                k("libc6_2.35_amd64"),
                k("old_1.0_amd64"),
            ]
            .iter(),
        )
        .unwrap();
        let s1 = Snapshot::from_repo("s1", &r, "first").unwrap();
        r.add(keys.iter()).unwrap();
        r.packages.remove(&k("old_1.0_amd64"));
        r.packages.remove(&k("app_1.0_amd64"));
        r.packages.remove(&k("libc6_2.35_amd64"));
        let s2 = Snapshot::from_repo("s2", &r, "").unwrap();

        let d = Snapshot::diff(&s1, &s2);
        assert_eq!(names(&d.added), ["apache2_2.4_amd64", "tool_1.0_all"]);
        assert_eq!(names(&d.removed), ["old_1.0_amd64"]);
        let changed: Vec<String> = d
            .changed
            .iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect();
        assert_eq!(
            changed,
            [
                "app_1.0_amd64 -> app_2.0_amd64",
                "libc6_2.35_amd64 -> libc6_2.36_amd64"
            ]
        );

        let latest = Snapshot::merge("m", &[&s1, &s2], MergeMode::LatestWins, "").unwrap();
        assert_eq!(
            names(latest.packages()),
            [
                "apache2_2.4_amd64",
                "app_2.0_amd64",
                "libc6_2.36_amd64",
                "old_1.0_amd64",
                "tool_1.0_all"
            ]
        );
        let all = Snapshot::merge("m", &[&s1, &s2], MergeMode::KeepAll, "").unwrap();
        assert_eq!(all.packages().len(), 7);
        assert!(Snapshot::merge("m", &[], MergeMode::KeepAll, "").is_err());

        let merged = Snapshot::merge("everything", &[&s1, &s2], MergeMode::KeepAll, "").unwrap();
        let q = Query::parse("app (>= 2), tool | app (>= 2)").unwrap();
        let plain = merged.filter("f", &q, "app (>= 2)", None, &cat).unwrap();
        assert_eq!(names(plain.snapshot.packages()), ["app_2.0_amd64"]);
        let q = Query::parse("app (>= 2) | tool").unwrap();
        let with = merged
            .filter(
                "f",
                &q,
                "app (>= 2) | tool",
                Some(&DepOptions::default()),
                &cat,
            )
            .unwrap();
        // libc6: the highest satisfying version; web-server: through apache2's Provides.
        assert_eq!(
            names(with.snapshot.packages()),
            [
                "apache2_2.4_amd64",
                "app_2.0_amd64",
                "libc6_2.36_amd64",
                "tool_1.0_all"
            ]
        );
        assert_eq!(with.unsatisfied.len(), 1, "{:?}", with.unsatisfied);
        assert!(
            with.unsatisfied[0].1.contains("missing-thing"),
            "{:?}",
            with.unsatisfied
        );

        let json = serde_json::to_string(&with.snapshot).unwrap();
        assert_eq!(
            serde_json::from_str::<Snapshot>(&json).unwrap(),
            with.snapshot
        );
    }
}
