//! The stored records the daemon keeps beside the engine's own values — publications and
//! mirrors — and the rules about them: what a publication may be named and publish, what a
//! switch may change, who may read a private prefix, which records keep a repository,
//! snapshot or key in use, how a mirror or repository request is checked, what a change
//! reports, and what `db cleanup` may remove. Pure: the daemon reads and writes the records (as JSON, in
//! these serde shapes) and maps [`RuleError`]s to its answers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use spindle_model::apt::{CreateMirror, CreateRepo, MirrorInfo, PackageInfo, PublishSource};
use spindle_model::apt::{CreatePublication, PublicationInfo, RepoChange, RepoInfo};
use spindle_model::apt::{SnapshotDiffInfo, SnapshotInfo};

use crate::package::{PackageKey, PackageRef};
use crate::publish::PublishOptions;
use crate::query::Query;
use crate::repo::{AddReport, Repo, Snapshot, SnapshotDiff, SnapshotSource};
use crate::KnownPackages;

/// Why a request breaks a rule about publications or mirrors.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid prefix `{0}`: its parts must not be `dists` or `pool`")]
    Prefix(String),
    #[error("publication `{0}` already exists; use `publish update` or `publish switch`")]
    PublicationExists(String),
    #[error("prefix `{prefix}` already holds {other_kind} publication `{other}`; {kind} publications need their own prefix (they share its pool/)")]
    PrivacyClash {
        prefix: String,
        other_kind: &'static str,
        other: String,
        kind: &'static str,
    },
    #[error("component `{0}` is given twice")]
    ComponentTwice(String),
    #[error("source kind `{0}` is neither `repo` nor `snapshot`")]
    SourceKind(String),
    #[error("nothing to publish: give at least one repo or snapshot")]
    NoSources,
    #[error("switch to what? name component=snapshot pairs")]
    EmptySwitch,
    #[error("publication `{publication}` has no component `{component}` (it has {has})")]
    NoComponent {
        publication: String,
        component: String,
        has: String,
    },
    #[error("component `{component}` publishes repository `{repo}`, not a snapshot; use `publish update`")]
    NotASnapshot { component: String, repo: String },
    #[error("repository `{name}` is published as `{publication}`; drop that publication first")]
    RepoPublished { name: String, publication: String },
    #[error(
        "snapshot `{name}` is published as `{publication}`; switch or drop that publication first"
    )]
    SnapshotPublished { name: String, publication: String },
    #[error("signing key `{name}` signs publication `{publication}`; drop it first")]
    KeyInUse { name: String, publication: String },
    #[error("mirror URL `{0}` must start with http:// or https://")]
    MirrorUrl(String),
    #[error("invalid distribution `{0}`")]
    Distribution(String),
    #[error("architecture `{arch}`: {reason}")]
    Architecture { arch: String, reason: String },
    #[error("invalid component `{0}`")]
    Component(String),
    #[error("query `{text}`")]
    Query {
        text: String,
        #[source]
        source: crate::query::QueryError,
    },
    #[error(transparent)]
    Keyring(crate::mirror::MirrorError),
    #[error(transparent)]
    Name(#[from] crate::repo::RepoError),
    #[error("mirror `{0}` has not been updated yet; run `spindle mirror update {0}`")]
    MirrorNotUpdated(String),
    #[error("source and destination are both `{0}`")]
    SameRepo(String),
    #[error("package key `{text}`")]
    Key {
        text: String,
        #[source]
        source: crate::package::PackageError,
    },
    #[error("package `{0}` has not been uploaded to this account")]
    NotUploaded(String),
}

impl RuleError {
    /// Whether the request clashes with stored state (rather than being malformed).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            RuleError::PublicationExists(_)
                | RuleError::PrivacyClash { .. }
                | RuleError::RepoPublished { .. }
                | RuleError::SnapshotPublished { .. }
                | RuleError::KeyInUse { .. }
        )
    }

    /// Whether the request names something that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuleError::NotUploaded(_))
    }
}

/// Parses a package query, naming it in the error.
pub fn parse_query(text: &str) -> Result<Query, RuleError> {
    Query::parse(text).map_err(|source| RuleError::Query {
        text: text.to_owned(),
        source,
    })
}

/// A publication's name: `prefix/distribution`, or the distribution alone at the root.
pub fn publication_name(prefix: &str, dist: &str) -> String {
    if prefix.is_empty() {
        dist.to_owned()
    } else {
        format!("{prefix}/{dist}")
    }
}

/// The stored form of a publication.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    pub prefix: String,
    pub distribution: String,
    pub sources: Vec<PublishSource>,
    pub architectures: Vec<String>,
    pub sign_key: String,
    pub private: bool,
    /// SHA-256 of the read token of a private publication.
    pub token_sha256: Option<String>,
    pub origin: Option<String>,
    pub label: Option<String>,
    pub valid_for_secs: Option<u64>,
    pub generation: u64,
    pub published_at: String,
}

/// What a source publishes, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Repo,
    Snapshot,
}

impl Publication {
    /// A new publication from a request, refused if it breaks a rule against the
    /// account's `existing` publications. `token_sha256` is the digest of a private one's
    /// read token.
    pub fn new(
        req: &CreatePublication,
        existing: &[Publication],
        token_sha256: Option<String>,
    ) -> Result<Publication, RuleError> {
        let prefix = req.prefix.trim_matches('/').to_owned();
        check_prefix(&prefix)?;
        check_sources(&req.sources)?;
        if existing
            .iter()
            .any(|p| p.prefix == prefix && p.distribution == req.distribution)
        {
            return Err(RuleError::PublicationExists(publication_name(
                &prefix,
                &req.distribution,
            )));
        }
        let kind = |private: bool| if private { "private" } else { "public" };
        if let Some(other) = existing
            .iter()
            .find(|p| p.prefix == prefix && p.private != req.private)
        {
            return Err(RuleError::PrivacyClash {
                prefix: if prefix.is_empty() { "." } else { &prefix }.to_owned(),
                other_kind: kind(other.private),
                other: publication_name(&other.prefix, &other.distribution),
                kind: kind(req.private),
            });
        }
        Ok(Publication {
            prefix,
            distribution: req.distribution.clone(),
            sources: req.sources.clone(),
            architectures: req.architectures.clone(),
            sign_key: req.sign_key.clone(),
            private: req.private,
            token_sha256,
            origin: req.origin.clone(),
            label: req.label.clone(),
            valid_for_secs: req.valid_for_secs,
            generation: 0,
            published_at: String::new(),
        })
    }

    pub fn name(&self) -> String {
        publication_name(&self.prefix, &self.distribution)
    }

    /// Points snapshot components at other snapshots (`publish switch`); every pair is
    /// checked before any is applied.
    pub fn switch(&mut self, pairs: &[(String, String)]) -> Result<(), RuleError> {
        if pairs.is_empty() {
            return Err(RuleError::EmptySwitch);
        }
        let mut sources = self.sources.clone();
        for (component, snapshot) in pairs {
            let Some(s) = sources.iter_mut().find(|s| &s.component == component) else {
                return Err(RuleError::NoComponent {
                    publication: self.name(),
                    component: component.clone(),
                    has: self
                        .sources
                        .iter()
                        .map(|s| format!("`{}`", s.component))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if s.kind != "snapshot" {
                return Err(RuleError::NotASnapshot {
                    component: component.clone(),
                    repo: s.name.clone(),
                });
            }
            s.name = snapshot.clone();
        }
        self.sources = sources;
        Ok(())
    }

    /// What the API shows of it, with the URL `base_url` serves it at for `account_name`.
    pub fn info(&self, base_url: &str, account_name: &str) -> PublicationInfo {
        let mut url = format!("{base_url}/apt/{account_name}");
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        PublicationInfo {
            prefix: self.prefix.clone(),
            distribution: self.distribution.clone(),
            sources: self.sources.clone(),
            architectures: self.architectures.clone(),
            sign_key: self.sign_key.clone(),
            private: self.private,
            generation: self.generation,
            published_at: self.published_at.clone(),
            url,
            read_token: None,
        }
    }

    /// The options its record asks for, dated `date`. A cold publish leaves `Packages.xz`
    /// and `Contents` to a second swap in the background
    /// ([`crate::publish::DEFER_ABOVE`]), so the call returns once apt can read the tree.
    pub fn publish_options(&self, date: SystemTime) -> PublishOptions {
        let mut o = PublishOptions::new(&self.distribution);
        o.prefix = self.prefix.clone();
        o.architectures = self.architectures.clone();
        o.origin = self.origin.clone();
        o.label = self.label.clone();
        o.valid_for = self.valid_for_secs.map(Duration::from_secs);
        o.date = date;
        o.defer_above = Some(crate::publish::DEFER_ABOVE);
        o
    }

    /// Whether a component publishes the repository or snapshot `name`.
    pub fn publishes(&self, kind: SourceKind, name: &str) -> bool {
        let k = match kind {
            SourceKind::Repo => "repo",
            SourceKind::Snapshot => "snapshot",
        };
        self.sources.iter().any(|s| s.kind == k && s.name == name)
    }
}

/// The digest a private publication keeps of its read token (never the token itself).
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Whether a request for `prefix` may be served: a prefix without private publications
/// to anyone, a private one only with the read token of one of them.
pub fn may_read(publications: &[Publication], prefix: &str, token: Option<&str>) -> bool {
    let mut private = publications
        .iter()
        .filter(|p| p.prefix == prefix && p.private)
        .peekable();
    if private.peek().is_none() {
        return true;
    }
    let Some(token) = token else { return false };
    let digest = token_digest(token);
    private.any(|p| p.token_sha256.as_deref() == Some(digest.as_str()))
}

/// The prefix of a publication must leave `dists/` and `pool/` to the tree itself.
pub fn check_prefix(prefix: &str) -> Result<(), RuleError> {
    if prefix.split('/').any(|p| p == "dists" || p == "pool") {
        return Err(RuleError::Prefix(prefix.to_owned()));
    }
    Ok(())
}

/// Each source's kind, in order; refused if a component is named twice, a kind is unknown
/// or there is no source.
pub fn check_sources(sources: &[PublishSource]) -> Result<Vec<SourceKind>, RuleError> {
    let mut seen = HashSet::new();
    let mut kinds = Vec::with_capacity(sources.len());
    for s in sources {
        if !seen.insert(s.component.as_str()) {
            return Err(RuleError::ComponentTwice(s.component.clone()));
        }
        kinds.push(match s.kind.as_str() {
            "repo" => SourceKind::Repo,
            "snapshot" => SourceKind::Snapshot,
            other => return Err(RuleError::SourceKind(other.to_owned())),
        });
    }
    if kinds.is_empty() {
        return Err(RuleError::NoSources);
    }
    Ok(kinds)
}

/// Refuses to drop a repository or snapshot that a publication publishes.
pub fn check_unpublished(
    publications: &[Publication],
    kind: SourceKind,
    name: &str,
) -> Result<(), RuleError> {
    match publications.iter().find(|p| p.publishes(kind, name)) {
        None => Ok(()),
        Some(p) => {
            let (name, publication) = (name.to_owned(), p.name());
            Err(match kind {
                SourceKind::Repo => RuleError::RepoPublished { name, publication },
                SourceKind::Snapshot => RuleError::SnapshotPublished { name, publication },
            })
        }
    }
}

/// Refuses to delete a signing key that signs a publication.
pub fn check_key_unused(publications: &[Publication], name: &str) -> Result<(), RuleError> {
    match publications.iter().find(|p| p.sign_key == name) {
        None => Ok(()),
        Some(p) => Err(RuleError::KeyInUse {
            name: name.to_owned(),
            publication: p.name(),
        }),
    }
}

/// The stored form of a mirror.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub name: String,
    pub url: String,
    pub distribution: String,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub filter: Option<String>,
    pub with_deps: bool,
    /// ASCII-armored public keys.
    pub keyring: String,
    pub packages: BTreeSet<PackageKey>,
    pub updated_at: String,
    pub unsatisfied: Vec<String>,
}

impl Mirror {
    /// A mirror from a request, every field checked (defaults: component `main`,
    /// architecture `amd64`); it holds no packages until its first update.
    pub fn new(req: &CreateMirror) -> Result<Mirror, RuleError> {
        crate::repo::validate_name(&req.name)?;
        let url = req.url.trim_end_matches('/').to_owned();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(RuleError::MirrorUrl(req.url.clone()));
        }
        if req.distribution.is_empty()
            || req
                .distribution
                .split('/')
                .any(|p| p.is_empty() || p == "..")
        {
            return Err(RuleError::Distribution(req.distribution.clone()));
        }
        let or = |v: &Vec<String>, default: &str| {
            if v.is_empty() {
                vec![default.to_owned()]
            } else {
                v.clone()
            }
        };
        let components = or(&req.components, "main");
        let architectures = or(&req.architectures, "amd64");
        for a in &architectures {
            spindle_deb::names::validate_architecture(a).map_err(|e| RuleError::Architecture {
                arch: a.clone(),
                reason: e.to_string(),
            })?;
        }
        for c in &components {
            if c.is_empty() || c.contains("..") || c.starts_with('/') {
                return Err(RuleError::Component(c.clone()));
            }
        }
        if let Some(f) = &req.filter {
            parse_query(f)?;
        }
        crate::mirror::parse_keyring(req.keyring.as_bytes()).map_err(RuleError::Keyring)?;
        Ok(Mirror {
            name: req.name.clone(),
            url,
            distribution: req.distribution.clone(),
            components,
            architectures,
            filter: req.filter.clone(),
            with_deps: req.with_deps,
            keyring: req.keyring.clone(),
            packages: BTreeSet::new(),
            updated_at: String::new(),
            unsatisfied: Vec::new(),
        })
    }

    /// Records a finished update: what it fetched, what stayed unsatisfied, and when.
    pub fn record_update(
        &mut self,
        packages: impl IntoIterator<Item = PackageKey>,
        unsatisfied: Vec<String>,
        at: String,
    ) {
        self.packages = packages.into_iter().collect();
        self.unsatisfied = unsatisfied;
        self.updated_at = at;
    }

    /// Its packages, for a snapshot; refused before its first update.
    pub fn snapshot_packages(&self) -> Result<BTreeSet<PackageKey>, RuleError> {
        if self.updated_at.is_empty() {
            return Err(RuleError::MirrorNotUpdated(self.name.clone()));
        }
        Ok(self.packages.clone())
    }

    pub fn info(&self) -> MirrorInfo {
        MirrorInfo {
            name: self.name.clone(),
            url: self.url.clone(),
            distribution: self.distribution.clone(),
            components: self.components.clone(),
            architectures: self.architectures.clone(),
            filter: self.filter.clone(),
            with_deps: self.with_deps,
            packages: self.packages.len(),
            updated_at: self.updated_at.clone(),
            unsatisfied: self.unsatisfied.clone(),
        }
    }
}

/// How a snapshot's origin is shown.
pub fn source_text(s: &SnapshotSource) -> String {
    match s {
        SnapshotSource::Repo { name } => format!("repo {name}"),
        SnapshotSource::Merge { sources, latest } => format!(
            "merge {}{}",
            sources.join(", "),
            if *latest { "" } else { " (all versions)" }
        ),
        SnapshotSource::Filter {
            source,
            query,
            with_deps,
        } => format!(
            "filter {source}: {query}{}",
            if *with_deps {
                " (with dependencies)"
            } else {
                ""
            }
        ),
        SnapshotSource::Mirror { name } => format!("mirror {name}"),
    }
}

pub fn package_info(p: &PackageRef) -> PackageInfo {
    let k = p.key();
    PackageInfo {
        key: k.to_string(),
        name: k.name().to_owned(),
        version: k.version_text().to_owned(),
        architecture: k.arch().to_owned(),
        sha256: p.sha256().to_owned(),
        size: p.size(),
    }
}

pub fn snapshot_info(s: &Snapshot) -> SnapshotInfo {
    SnapshotInfo {
        name: s.name().to_owned(),
        description: s.description().to_owned(),
        source: source_text(s.source()),
        packages: s.packages().len(),
        package_list: Vec::new(),
        unsatisfied: Vec::new(),
    }
}

pub fn repo_info(r: &Repo) -> RepoInfo {
    RepoInfo {
        name: r.name.clone(),
        comment: r.comment.clone(),
        architectures: r.architectures.iter().cloned().collect(),
        packages: r.packages.len(),
    }
}

/// A new, empty repository from a request, its architectures checked.
pub fn new_repo(req: &CreateRepo) -> Result<Repo, RuleError> {
    for a in &req.architectures {
        spindle_deb::names::validate_architecture(a).map_err(|e| RuleError::Architecture {
            arch: a.clone(),
            reason: e.to_string(),
        })?;
    }
    let archs: Vec<&str> = req.architectures.iter().map(String::as_str).collect();
    let mut r = Repo::new(&req.name, &archs)?;
    r.comment = req.comment.clone();
    Ok(r)
}

/// Parses the keys a `repo add` names; each must be a package the account uploaded.
pub fn known_keys(
    keys: &[String],
    known: &dyn KnownPackages,
) -> Result<Vec<PackageKey>, RuleError> {
    keys.iter()
        .map(|k| {
            let key = PackageKey::parse(k).map_err(|source| RuleError::Key {
                text: k.clone(),
                source,
            })?;
            match known.sha256_of(&key) {
                Some(_) => Ok(key),
                None => Err(RuleError::NotUploaded(k.clone())),
            }
        })
        .collect()
}

/// A copy or move must name two repositories.
pub fn check_copy(from: &str, to: &str) -> Result<(), RuleError> {
    if from == to {
        return Err(RuleError::SameRepo(from.to_owned()));
    }
    Ok(())
}

fn texts<'a>(keys: impl IntoIterator<Item = &'a PackageKey>) -> Vec<String> {
    keys.into_iter().map(ToString::to_string).collect()
}

/// What a `repo add` or `repo copy` changed in the destination; a move also removed from
/// its source everything it selected (added or already there).
pub fn repo_change(report: &AddReport, moved: bool) -> RepoChange {
    RepoChange {
        added: texts(&report.added),
        removed: if moved {
            texts(report.added.iter().chain(&report.unchanged))
        } else {
            Vec::new()
        },
        unchanged: texts(&report.unchanged),
    }
}

/// What a `repo remove` took out.
pub fn repo_removal(gone: &[PackageKey]) -> RepoChange {
    RepoChange {
        removed: texts(gone),
        ..Default::default()
    }
}

pub fn snapshot_diff_info(d: &SnapshotDiff) -> SnapshotDiffInfo {
    SnapshotDiffInfo {
        added: texts(&d.added),
        removed: texts(&d.removed),
        changed: d
            .changed
            .iter()
            .map(|(o, n)| format!("{o} -> {n}"))
            .collect(),
    }
}

/// How a filter's unsatisfied relations are reported: `package: relation`.
pub fn unsatisfied_text(unsatisfied: &[(PackageKey, String)]) -> Vec<String> {
    unsatisfied
        .iter()
        .map(|(k, rel)| format!("{k}: {rel}"))
        .collect()
}

/// The package keys each account's repositories, snapshots and mirrors reference, which
/// `db cleanup` keeps.
#[derive(Debug, Default)]
pub struct References {
    by_account: HashMap<String, HashSet<String>>,
}

impl References {
    pub fn add<'a>(&mut self, account: &str, keys: impl IntoIterator<Item = &'a PackageKey>) {
        self.by_account
            .entry(account.to_owned())
            .or_default()
            .extend(keys.into_iter().map(ToString::to_string));
    }

    fn contains(&self, account: &str, key: &str) -> bool {
        self.by_account
            .get(account)
            .is_some_and(|r| r.contains(key))
    }
}

/// What `db cleanup` removes, planned from the records before anything changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Unreferenced package record keys, by account id.
    pub forget: BTreeMap<String, Vec<String>>,
    /// `account/key` of each record in `forget`, sorted, for the report.
    pub packages: Vec<String>,
    /// Pool addresses to keep: referenced by a kept record or served by a publication.
    pub keep: HashSet<String>,
    /// Pool addresses nothing keeps, sorted.
    pub pool_files: Vec<String>,
}

/// Plans a cleanup from every package record (`(account, key, sha256)`), what the records
/// reference, the pool addresses published trees still serve (now or in their grace
/// period: no record may name them any more) and the pool's addresses.
pub fn plan_cleanup(
    records: impl IntoIterator<Item = (String, String, String)>,
    references: &References,
    published: impl IntoIterator<Item = String>,
    pool: impl IntoIterator<Item = String>,
) -> CleanupPlan {
    let mut plan = CleanupPlan::default();
    for (account, key, sha) in records {
        if references.contains(&account, &key) {
            plan.keep.insert(sha);
        } else {
            plan.packages.push(format!("{account}/{key}"));
            plan.forget.entry(account).or_default().push(key);
        }
    }
    plan.packages.sort();
    plan.keep.extend(published);
    plan.pool_files = pool
        .into_iter()
        .filter(|sha| !plan.keep.contains(sha))
        .collect();
    plan.pool_files.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(component: &str, kind: &str, name: &str) -> PublishSource {
        PublishSource {
            component: component.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn request(prefix: &str, dist: &str, private: bool) -> CreatePublication {
        CreatePublication {
            distribution: dist.into(),
            prefix: prefix.into(),
            sources: vec![
                source("main", "snapshot", "s1"),
                source("extra", "repo", "r"),
            ],
            architectures: Vec::new(),
            sign_key: "k".into(),
            private,
            origin: None,
            label: None,
            valid_for_secs: None,
        }
    }

    /// Each case: the request, against one existing public publication `a/stable`, gives
    /// this error text (or is accepted).
    #[test]
    fn publication_rules() {
        let existing = [Publication::new(&request("a/", "stable", false), &[], None).unwrap()];
        let mut twice = request("b", "stable", false);
        twice.sources.push(source("main", "repo", "r"));
        let mut kind = request("b", "stable", false);
        kind.sources[0].kind = "mirror".into();
        let mut none = request("b", "stable", false);
        none.sources.clear();
        for (req, want) in [
            (request("b", "stable", false), None),
            (request("a", "other", false), None),
            (
                request("a", "stable", false),
                Some("publication `a/stable` already exists; use `publish update` or `publish switch`"),
            ),
            (
                request("a", "other", true),
                Some("prefix `a` already holds public publication `a/stable`; private publications need their own prefix (they share its pool/)"),
            ),
            (
                request("x/pool", "stable", false),
                Some("invalid prefix `x/pool`: its parts must not be `dists` or `pool`"),
            ),
            (twice, Some("component `main` is given twice")),
            (kind, Some("source kind `mirror` is neither `repo` nor `snapshot`")),
            (none, Some("nothing to publish: give at least one repo or snapshot")),
        ] {
            let got = Publication::new(&req, &existing, None).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{req:?}");
        }
        let e = Publication::new(&request("a", "stable", false), &existing, None).unwrap_err();
        assert!(e.is_conflict());
    }

    #[test]
    fn a_switch_changes_snapshot_components_or_nothing() {
        let mut p = Publication::new(&request("", "stable", false), &[], None).unwrap();
        let pair = |c: &str, s: &str| (c.to_owned(), s.to_owned());
        for (pairs, want) in [
            (vec![], "switch to what? name component=snapshot pairs"),
            (
                vec![pair("main", "s2"), pair("nope", "s3")],
                "publication `stable` has no component `nope` (it has `main`, `extra`)",
            ),
            (
                vec![pair("main", "s2"), pair("extra", "s3")],
                "component `extra` publishes repository `r`, not a snapshot; use `publish update`",
            ),
        ] {
            assert_eq!(p.switch(&pairs).unwrap_err().to_string(), want);
            assert_eq!(p.sources[0].name, "s1", "a refused switch changed nothing");
        }
        p.switch(&[pair("main", "s2")]).unwrap();
        assert_eq!(p.sources[0].name, "s2");
        assert!(p.publishes(SourceKind::Snapshot, "s2"));
        assert!(p.publishes(SourceKind::Repo, "r"));
        assert!(!p.publishes(SourceKind::Repo, "s2"));
        let all = [p];
        assert_eq!(
            check_unpublished(&all, SourceKind::Repo, "r")
                .unwrap_err()
                .to_string(),
            "repository `r` is published as `stable`; drop that publication first"
        );
        assert!(check_unpublished(&all, SourceKind::Snapshot, "s1").is_ok());
        assert_eq!(
            check_key_unused(&all, "k").unwrap_err().to_string(),
            "signing key `k` signs publication `stable`; drop it first"
        );
    }

    #[test]
    fn private_prefixes_need_a_token_of_one_of_their_publications() {
        let mut a = Publication::new(&request("p", "stable", true), &[], None).unwrap();
        a.token_sha256 = Some(token_digest("t1"));
        let mut b = Publication::new(&request("p", "testing", true), &[], None).unwrap();
        b.token_sha256 = Some(token_digest("t2"));
        let open = Publication::new(&request("q", "stable", false), &[], None).unwrap();
        let all = [a, b, open];
        for (prefix, token, want) in [
            ("p", None, false),
            ("p", Some("t1"), true),
            ("p", Some("t2"), true),
            ("p", Some("t3"), false),
            ("q", None, true),
            ("elsewhere", None, true),
        ] {
            assert_eq!(may_read(&all, prefix, token), want, "{prefix} {token:?}");
        }
    }

    #[test]
    fn cleanup_keeps_what_a_record_or_a_publication_references() {
        let key = |k: &str| PackageKey::parse(k).unwrap();
        let mut refs = References::default();
        refs.add("a1", &[key("hello_1.0_amd64")]);
        refs.add("a2", &[key("libx_2.0_amd64")]);
        let records = [
            ("a1", "hello_1.0_amd64", "s1"),
            ("a1", "libx_2.0_amd64", "s2"), // referenced only in the other account
            ("a2", "libx_2.0_amd64", "s2"),
            ("a2", "old_0.1_amd64", "s3"),
            ("a2", "gone_0.1_amd64", "s4"),
        ]
        .map(|(a, k, s)| (a.to_owned(), k.to_owned(), s.to_owned()));
        let pool = ["s1", "s2", "s3", "s4", "s5"].map(String::from);
        let plan = plan_cleanup(records, &refs, ["s4".to_owned()], pool);
        assert_eq!(
            plan.packages,
            ["a1/libx_2.0_amd64", "a2/gone_0.1_amd64", "a2/old_0.1_amd64"]
        );
        assert_eq!(plan.forget["a1"], ["libx_2.0_amd64"]);
        assert_eq!(plan.forget["a2"], ["old_0.1_amd64", "gone_0.1_amd64"]);
        assert_eq!(plan.pool_files, ["s3", "s5"]);
        assert_eq!(
            plan.keep,
            ["s1", "s2", "s4"].map(String::from).into_iter().collect()
        );
    }

    #[test]
    fn a_move_reports_everything_it_selected_as_removed() {
        let key = |k: &str| PackageKey::parse(k).unwrap();
        let report = AddReport {
            added: vec![key("aa_1.0_amd64")],
            unchanged: vec![key("bb_1.0_amd64")],
        };
        assert_eq!(repo_change(&report, false).removed, Vec::<String>::new());
        assert_eq!(
            repo_change(&report, true).removed,
            ["aa_1.0_amd64", "bb_1.0_amd64"]
        );
        assert_eq!(
            check_copy("r", "r").unwrap_err().to_string(),
            "source and destination are both `r`"
        );
    }
}
