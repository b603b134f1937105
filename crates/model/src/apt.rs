//! API shapes of the apt repository service (`spindle repo|snapshot|publish|key|db`): what
//! Aptly's API did, scoped per account.

use serde::{Deserialize, Serialize};

/// A package the daemon knows, as uploads, searches and snapshot listings return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// `name_version_arch`, aptly's package key.
    pub key: String,
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRepo {
    pub name: String,
    #[serde(default)]
    pub comment: String,
    /// Architectures the repository accepts besides `all`; empty accepts any.
    #[serde(default)]
    pub architectures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    pub comment: String,
    pub architectures: Vec<String>,
    pub packages: usize,
}

/// Packages to add to a repository, by key (upload them first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPackages {
    pub packages: Vec<String>,
}

/// A package query in aptly's syntax (`Name (>= 1.2)`, `$Architecture (amd64)`, `|`, `,`, `!`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageQuery {
    pub query: String,
}

/// Copy or move the packages of a repository matching `query` into `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPackages {
    pub to: String,
    pub query: String,
}

/// What a repository change did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepoChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// How to make a snapshot: from a repository, by merging snapshots, or by filtering one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum CreateSnapshot {
    Repo {
        name: String,
        repo: String,
        #[serde(default)]
        description: String,
    },
    Merge {
        name: String,
        sources: Vec<String>,
        /// Keep only the newest version of each package (aptly's default); else keep all.
        #[serde(default = "yes")]
        latest: bool,
    },
    Filter {
        name: String,
        source: String,
        query: String,
        #[serde(default)]
        with_deps: bool,
    },
    /// What the mirror's last update fetched.
    Mirror { name: String, mirror: String },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub description: String,
    /// Where it came from, e.g. `repo main`, `merge a, b`, `filter a: Name (>= 1)`.
    pub source: String,
    pub packages: usize,
    /// Only in `describe`: the packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_list: Vec<PackageInfo>,
    /// Only after a filter with dependencies: relations nothing in the source satisfies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsatisfied: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotDiffInfo {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// `old -> new`.
    pub changed: Vec<String>,
}

/// One component of a publication and where its packages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSource {
    pub component: String,
    /// `repo` or `snapshot`.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePublication {
    pub distribution: String,
    #[serde(default)]
    pub prefix: String,
    pub sources: Vec<PublishSource>,
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The signing key's name (`spindle key create`).
    pub sign_key: String,
    /// Serve only to clients presenting the read token (apt's `auth.conf`).
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// `Valid-Until` is `Date` plus this many seconds.
    #[serde(default)]
    pub valid_for_secs: Option<u64>,
}

/// Names a publication: `prefix` (empty for the root) and distribution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicationRef {
    #[serde(default)]
    pub prefix: String,
    pub distribution: String,
}

/// Points a snapshot publication's components at other snapshots, atomically.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchPublication {
    #[serde(default)]
    pub prefix: String,
    pub distribution: String,
    /// Component → snapshot; components not named keep theirs.
    pub snapshots: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicationInfo {
    pub prefix: String,
    pub distribution: String,
    pub sources: Vec<PublishSource>,
    pub architectures: Vec<String>,
    pub sign_key: String,
    pub private: bool,
    pub generation: u64,
    pub published_at: String,
    /// Where apt finds it: `deb URL DIST COMPONENTS`.
    pub url: String,
    /// Only in the answer to a private publish's creation: the read token for `auth.conf`
    /// (login `spindle`). Not stored in clear; shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSigningKey {
    pub name: String,
    /// The OpenPGP user id, e.g. `Example Repo <repo@example.com>`.
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    pub name: String,
    pub fingerprint: String,
    pub key_id: String,
    pub user_id: String,
    pub created: String,
    /// Only in `export`: the ASCII-armored public key (apt's `signed-by=` accepts it as a
    /// `.asc` file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    /// Package records no repository or snapshot references.
    pub packages: Vec<String>,
    /// Pool files (sha256) no package record references.
    pub pool_files: Vec<String>,
}

/// A mirror of a remote apt repository (fetched by `update`, not at creation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMirror {
    pub name: String,
    /// The repository's base URL (`http://…`; the one before `dists/`).
    pub url: String,
    pub distribution: String,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Only packages matching this query (aptly syntax); none takes everything.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub with_deps: bool,
    /// ASCII-armored public key(s) that must have signed `InRelease`.
    pub keyring: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorInfo {
    pub name: String,
    pub url: String,
    pub distribution: String,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub filter: Option<String>,
    pub with_deps: bool,
    /// Packages the last update fetched.
    pub packages: usize,
    /// When the last update finished; empty before the first.
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsatisfied: Vec<String>,
}
