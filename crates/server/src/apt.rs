//! The apt repository service: composes the `spindle-apt` engine (pool, repos, snapshots,
//! publisher, signing keys) with the store, per account.
//!
//! Where things live:
//! * package records, repos, snapshots, publications and signing-key metadata: the store
//!   (`apt_packages`, `apt_objects`), changed in one transaction per operation;
//! * .deb files: one content-addressed pool of pack files, `DATA_DIR/apt/pool/packs`,
//!   shared by all accounts (each account binds its own keys to addresses, so accounts
//!   can't see each other's packages);
//! * published trees: `DATA_DIR/apt/public/<account id>/<prefix>/`, served at
//!   `/apt/<account>/<prefix>/…`; they hold the index files, and their `pool/` paths are
//!   served from the pool through each publication's state file;
//! * secret signing keys: `DATA_DIR/apt/keys/<account id>/<fingerprint>.key`, mode 0600.
//!
//! Every mutation of an account's apt state runs under that account's lock (accounts never
//! wait for each other) and validates everything before it writes. A publish writes its tree
//! first (atomically, Release last) and records the publication after; a failure in between
//! undoes the tree of a new publication, or leaves the previous record of an existing one
//! (whose tree is the newer, self-consistent one: the next publish reconciles).

use spindle_apt::publish::{Completion, Pending, SharedPublisher};
use spindle_apt::records::{
    self, check_key_unused, check_unpublished, package_info, publication_name, repo_info,
    snapshot_info, Mirror, Publication, RuleError, SourceKind,
};
use spindle_apt::repo::{self, DepOptions, SnapshotSource};
use spindle_apt::{
    Catalog, ComponentInput, KnownPackages, MergeMode, PackageKey, PackageRef, Pool, PoolError,
    Publisher, PublisherOptions, Query, Repo, SigningKey, Snapshot,
};
use spindle_model::apt::*;
use spindle_model::AccountId;
use spindle_store::{AptChange, AptKind, AptPackage, Expect, Store, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// Why an apt operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

type Res<T> = Result<T, AptError>;

/// Hands the heap's free pages back to the kernel. The transient buffers of an upload batch
/// or a publish are freed between the long-lived records and cached index chunks they were
/// allocated among; glibc only returns memory at the top of a heap by itself, so those
/// holes would otherwise stay resident and add to the daemon's peak.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages to the kernel; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    crate::api::error_chain(e)
}

fn invalid(e: &dyn std::error::Error) -> AptError {
    AptError::Invalid(chain(e))
}

/// Fetches a remote repository's files over HTTP (bounded in time and size).
struct HttpFetch {
    base: String,
    agent: ureq::Agent,
}

impl spindle_apt::mirror::Fetch for HttpFetch {
    fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        const LIMIT: u64 = 1 << 30;
        let url = format!("{}/{path}", self.base);
        let resp = self.agent.get(&url).call().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        resp.into_reader()
            .take(LIMIT + 1)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        if out.len() as u64 > LIMIT {
            return Err(format!("larger than {LIMIT} bytes"));
        }
        Ok(out)
    }
}

/// Package conflicts checked against the account's records before the pool writes.
struct Known<'a> {
    store: &'a Store,
    account: &'a AccountId,
}

impl KnownPackages for Known<'_> {
    fn sha256_of(&self, key: &PackageKey) -> Option<String> {
        // A read error here only loses the early check: the store checks again on insert.
        self.store
            .apt_package_sha(self.account, &key.to_string())
            .ok()
            .flatten()
    }
}

/// The stored form of a package record.
fn package_record(p: &PackageRef) -> AptPackage {
    AptPackage {
        key: p.key().to_string(),
        sha256: p.sha256().to_owned(),
        record: encode(p),
    }
}

fn parse_query(text: &str) -> Res<Query> {
    records::parse_query(text).map_err(AptError::from)
}

impl From<RuleError> for AptError {
    fn from(e: RuleError) -> AptError {
        if e.is_not_found() {
            AptError::NotFound(chain(&e))
        } else if e.is_conflict() {
            AptError::Conflict(chain(&e))
        } else {
            AptError::Invalid(chain(&e))
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Res<T> {
    serde_json::from_str(body)
        .map_err(|e| AptError::Internal(format!("stored {what} is corrupt: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("apt documents serialise")
}

/// The store kind of a cached document type.
trait DocKind {
    const KIND: AptKind;
}

impl DocKind for Repo {
    const KIND: AptKind = AptKind::Repo;
}

impl DocKind for Snapshot {
    const KIND: AptKind = AptKind::Snapshot;
}

/// The apt service of one daemon.
pub struct AptService {
    store: Arc<Store>,
    dir: PathBuf,
    pool: Pool,
    /// Resolves requests for published trees (package files come from the pool).
    published: spindle_apt::publish::PublishedFiles,
    base_url: String,
    /// Per-account locks around mutations, each holding the account's publisher (which
    /// caches rendered indexes between publishes and finishes first publishes' `Contents`
    /// and `Packages.xz` in the background).
    accounts: Mutex<HashMap<AccountId, Arc<SharedPublisher>>>,
    /// Taken shared by uploads (pool file written before its record) and exclusively by
    /// cleanup, so cleanup never removes a file whose record is about to be written.
    gc: RwLock<()>,
    /// Each account's package records, parsed, with the generation they were loaded at.
    /// Only this daemon writes records (it holds the data dir lock), and every write bumps
    /// the account's generation after it commits, so a cached catalog is never stale.
    catalogs: Mutex<HashMap<AccountId, (u64, Arc<Catalog>)>>,
    generations: Mutex<HashMap<AccountId, u64>>,
    /// Decoded repositories and snapshots, so a publish doesn't decode (and parse the keys
    /// of) every package of its sources from JSON.
    docs: Mutex<DocCache>,
}

/// Decoded repositories and snapshots by account and name. A write of a document removes
/// its entry after the commit (in `apply_records`) and bumps the account's generation, so a
/// reader that read the store before the commit can't put the old document back; a writer
/// that has the new document in hand puts it in (`remember_repo`).
#[derive(Default)]
struct DocCache {
    generation: HashMap<AccountId, u64>,
    repos: Docs<Repo>,
    snapshots: Docs<Snapshot>,
}

type Docs<T> = HashMap<(AccountId, String), Arc<T>>;

impl AptService {
    pub fn open(store: Arc<Store>, data_dir: &Path, base_url: &str) -> Result<Self, String> {
        let dir = data_dir.join("apt");
        let pool = Pool::open(dir.join("pool")).map_err(|e| chain(&e))?;
        for d in ["public", "keys"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(d).display()))?;
        }
        Ok(Self {
            store,
            dir,
            published: spindle_apt::publish::PublishedFiles::new(pool.clone()),
            pool,
            base_url: base_url.trim_end_matches('/').to_owned(),
            accounts: Mutex::new(HashMap::new()),
            gc: RwLock::new(()),
            catalogs: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
            docs: Mutex::new(DocCache::default()),
        })
    }

    fn lock(&self, account: &AccountId) -> Arc<SharedPublisher> {
        let mut m = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(account.clone())
            .or_insert_with(|| {
                Arc::new(SharedPublisher::new(Publisher::new(
                    self.public_root(account),
                    self.pool.clone(),
                    PublisherOptions {
                        sync: true,
                        grace: Duration::from_secs(600),
                    },
                )))
            })
            .clone()
    }

    /// The directory published trees of `account` live in.
    pub fn public_root(&self, account: &AccountId) -> PathBuf {
        self.dir.join("public").join(account.as_str())
    }

    fn generation(&self, account: &AccountId) -> u64 {
        let g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        g.get(account).copied().unwrap_or(0)
    }

    /// The account's package records (cached; see `catalogs`).
    fn catalog(&self, account: &AccountId) -> Res<Arc<Catalog>> {
        // The generation is read under the cache's lock, in the order `apply_records` takes
        // them: read outside it, an upload committing in between made a current cache look
        // stale, and the reload (of every record) was cached under the old generation, so
        // the next upload could not update it and every later call reloaded again.
        let generation = {
            let cache = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
            let generation = self.generation(account);
            if let Some((g, c)) = cache.get(account) {
                if *g == generation {
                    return Ok(c.clone());
                }
            }
            generation
        };
        let mut c = Catalog::new();
        for rec in self.store.apt_packages(account)? {
            let p: PackageRef = decode("package record", &rec)?;
            c.insert(p).map_err(|e| AptError::Internal(e.to_string()))?;
        }
        let c = Arc::new(c);
        self.catalogs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.clone(), (generation, c.clone()));
        Ok(c)
    }

    /// A repository, decoded (cached; see `DocCache`).
    fn repo(&self, account: &AccountId, name: &str) -> Res<Arc<Repo>> {
        self.cached_doc(
            account,
            name,
            |d| &mut d.repos,
            |body| {
                let mut r: Repo = decode("repository", body)?;
                r.packages = self.shared_keys(account, std::mem::take(&mut r.packages))?;
                Ok(r)
            },
        )
    }

    /// A snapshot, decoded (cached; see `DocCache`).
    fn snapshot(&self, account: &AccountId, name: &str) -> Res<Arc<Snapshot>> {
        self.cached_doc(
            account,
            name,
            |d| &mut d.snapshots,
            |body| decode("snapshot", body),
        )
    }

    /// The cached document `name` of the map `map` picks, or the stored one decoded with
    /// `decode` (and cached unless a write of the account's documents happened meanwhile).
    fn cached_doc<T: DocKind>(
        &self,
        account: &AccountId,
        name: &str,
        map: fn(&mut DocCache) -> &mut Docs<T>,
        decode: impl FnOnce(&str) -> Res<T>,
    ) -> Res<Arc<T>> {
        let id = (account.clone(), name.to_owned());
        let generation = {
            let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(doc) = map(&mut docs).get(&id) {
                return Ok(doc.clone());
            }
            docs.generation.get(account).copied().unwrap_or(0)
        };
        let doc = Arc::new(decode(&self.store.apt_require(account, T::KIND, name)?)?);
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        if docs.generation.get(account).copied().unwrap_or(0) == generation {
            map(&mut docs).insert(id, doc.clone());
        }
        Ok(doc)
    }

    /// `keys` as clones of the catalog's own keys where it has them, so a cached repository
    /// costs a pointer per package, not a second copy of every key.
    fn shared_keys(
        &self,
        account: &AccountId,
        keys: BTreeSet<PackageKey>,
    ) -> Res<BTreeSet<PackageKey>> {
        let catalog = self.catalog(account)?;
        Ok(keys
            .into_iter()
            .map(|k| catalog.get(&k).map_or(k, |p| p.key().clone()))
            .collect())
    }

    /// Puts a repository just written (by a caller holding the account's lock) in the cache.
    fn remember_repo(&self, account: &AccountId, repo: Repo) {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.repos
            .insert((account.clone(), repo.name.clone()), Arc::new(repo));
    }

    fn publications(&self, account: &AccountId) -> Res<Vec<Publication>> {
        self.decoded(account, AptKind::Publication, "publication")
    }

    /// Every stored record of one kind in an account, decoded (`what` names it in errors).
    fn decoded<T: serde::de::DeserializeOwned>(
        &self,
        account: &AccountId,
        kind: AptKind,
        what: &str,
    ) -> Res<Vec<T>> {
        self.store
            .apt_list(account, kind)?
            .iter()
            .map(|(_, b)| decode(what, b))
            .collect()
    }

    /// Stores a new record, refused if one of that kind and name already exists.
    fn insert_new<T: serde::Serialize>(
        &self,
        account: &AccountId,
        kind: AptKind,
        name: String,
        record: &T,
    ) -> Res<()> {
        self.apply(
            account,
            AptChange {
                put: vec![(kind, name, encode(record), Expect::Absent)],
                ..Default::default()
            },
        )
    }

    fn apply(&self, account: &AccountId, change: AptChange) -> Res<()> {
        self.apply_records(account, change, Vec::new())
    }

    /// Writes `change`; `added` are the parsed records of `change.packages` (or empty), so a
    /// cached catalog is brought up to date in place instead of reloaded from the store.
    fn apply_records(
        &self,
        account: &AccountId,
        change: AptChange,
        added: Vec<PackageRef>,
    ) -> Res<()> {
        let records = !change.packages.is_empty() || !change.forget.is_empty();
        let out = self
            .store
            .apt_apply(account, &change, OffsetDateTime::now_utc());
        let written = change
            .put
            .iter()
            .map(|(kind, name, _, _)| (*kind, name))
            .chain(change.delete.iter().map(|(kind, name)| (*kind, name)))
            .filter(|(kind, _)| matches!(kind, AptKind::Repo | AptKind::Snapshot));
        let mut written = written.peekable();
        if written.peek().is_some() {
            // After the commit (or its failure), like the catalog below.
            let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
            *docs.generation.entry(account.clone()).or_insert(0) += 1;
            for (kind, name) in written {
                let id = (account.clone(), name.clone());
                match kind {
                    AptKind::Repo => drop(docs.repos.remove(&id)),
                    _ => drop(docs.snapshots.remove(&id)),
                }
            }
        }
        if records {
            // After the commit (or its failure): readers that loaded before now reload, unless
            // the catalog they would load is the cached one plus `added`.
            let mut catalogs = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
            let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
            let generation = generations.entry(account.clone()).or_insert(0);
            let before = *generation;
            *generation += 1;
            let complete = change.forget.is_empty() && added.len() == change.packages.len();
            if let (Ok(()), true, Some((g, catalog))) = (&out, complete, catalogs.get_mut(account))
            {
                if *g == before {
                    let c = Arc::make_mut(catalog);
                    // The store accepted each record, so none conflicts with the catalog.
                    added.into_iter().for_each(|p| drop(c.insert(p)));
                    *g = before + 1;
                }
            }
        }
        Ok(out?)
    }

    // ---- packages

    /// Adds a .deb to the pool and the account's package records (idempotent).
    pub fn upload(&self, account: &AccountId, bytes: &[u8]) -> Res<PackageInfo> {
        let mut added = self.add_debs(account, &[bytes], |_| "the upload".to_owned())?;
        Ok(added.remove(0))
    }

    /// Adds every .deb of a tar archive (see `spindle_apt::upload`) in one batch: all are
    /// checked before the pool or the records change, and all are recorded in one
    /// transaction, so the upload is all or nothing.
    pub fn upload_many(&self, account: &AccountId, body: &[u8]) -> Res<Vec<PackageInfo>> {
        let entries = spindle_apt::upload::debs_in_tar(body).map_err(|e| invalid(&e))?;
        let debs: Vec<&[u8]> = entries.iter().map(|e| &body[e.range.clone()]).collect();
        self.add_debs(account, &debs, |i| {
            format!("upload entry `{}`", entries[i].name)
        })
    }

    /// The pool's batched add, then one record write; `label` names the i-th .deb in errors.
    fn add_debs(
        &self,
        account: &AccountId,
        debs: &[&[u8]],
        label: impl Fn(usize) -> String,
    ) -> Res<Vec<PackageInfo>> {
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        // The cached catalog answers the conflict checks (the store checks again on insert)
        // and is kept up to date below, so the next read needs no reload.
        let known = self.catalog(account)?;
        let added = self.pool.add_batch(debs, &*known).map_err(|e| match e {
            PoolError::Conflict { .. } => AptError::Conflict(chain(&e)),
            PoolError::Write { .. } => AptError::Internal(chain(&e)),
            PoolError::Read { index, .. } | PoolError::Identity { index, .. } => AptError::Invalid(
                chain(&e).replace(&format!("package #{index} of the batch"), &label(index)),
            ),
            other => AptError::Invalid(chain(&other)),
        })?;
        drop(known);
        let info = added.iter().map(|a| package_info(&a.package)).collect();
        let change = AptChange {
            packages: added.iter().map(|a| package_record(&a.package)).collect(),
            ..Default::default()
        };
        let added = added.into_iter().map(|a| a.package).collect();
        self.apply_records(account, change, added)?;
        release_free_memory();
        Ok(info)
    }

    // ---- repos

    pub fn create_repo(&self, account: &AccountId, req: &CreateRepo) -> Res<RepoInfo> {
        let r = records::new_repo(req)?;
        self.insert_new(account, AptKind::Repo, r.name.clone(), &r)?;
        Ok(repo_info(&r))
    }

    pub fn list_repos(&self, account: &AccountId) -> Res<Vec<RepoInfo>> {
        Ok(self
            .decoded::<Repo>(account, AptKind::Repo, "repository")?
            .iter()
            .map(repo_info)
            .collect())
    }

    pub fn describe_repo(&self, account: &AccountId, name: &str) -> Res<RepoInfo> {
        Ok(repo_info(&*self.repo(account, name)?))
    }

    pub fn search_repo(&self, account: &AccountId, name: &str, q: &str) -> Res<Vec<PackageInfo>> {
        let query = parse_query(q)?;
        let r = self.repo(account, name)?;
        let found = r
            .search(&query, &*self.catalog(account)?)
            .map_err(|e| AptError::Internal(chain(&e)))?;
        Ok(found.iter().map(|p| package_info(p)).collect())
    }

    pub fn drop_repo(&self, account: &AccountId, name: &str) -> Res<()> {
        let lock = self.lock(account);
        let _g = lock.lock();
        self.repo(account, name)?;
        check_unpublished(&self.publications(account)?, SourceKind::Repo, name)?;
        self.apply(
            account,
            AptChange {
                delete: vec![(AptKind::Repo, name.to_owned())],
                ..Default::default()
            },
        )
    }

    pub fn add_to_repo(&self, account: &AccountId, name: &str, keys: &[String]) -> Res<RepoChange> {
        // Cleanup must not forget a record between the check below and the repo's write.
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        let lock = self.lock(account);
        let _g = lock.lock();
        let catalog = self.catalog(account)?;
        // The catalog's own keys, so the cached repository shares them instead of holding a
        // second parsed copy of every key (4 MiB for 20k packages).
        let parsed: Vec<PackageKey> = records::known_keys(keys, &*catalog)?
            .into_iter()
            .map(|k| catalog.get(&k).map_or(k, |p| p.key().clone()))
            .collect();
        drop(catalog);
        let mut r = Arc::unwrap_or_clone(self.repo(account, name)?);
        let report = r.add(&parsed).map_err(|e| invalid(&e))?;
        self.apply(
            account,
            AptChange {
                put: vec![(AptKind::Repo, r.name.clone(), encode(&r), Expect::Present)],
                ..Default::default()
            },
        )?;
        self.remember_repo(account, r);
        Ok(records::repo_change(&report, false))
    }

    pub fn remove_from_repo(&self, account: &AccountId, name: &str, q: &str) -> Res<RepoChange> {
        let query = parse_query(q)?;
        let lock = self.lock(account);
        let _g = lock.lock();
        let mut r = Arc::unwrap_or_clone(self.repo(account, name)?);
        let gone = r
            .remove(&query, &*self.catalog(account)?)
            .map_err(|e| AptError::Internal(chain(&e)))?;
        self.apply(
            account,
            AptChange {
                put: vec![(AptKind::Repo, r.name.clone(), encode(&r), Expect::Present)],
                ..Default::default()
            },
        )?;
        self.remember_repo(account, r);
        Ok(records::repo_removal(&gone))
    }

    /// Copies (or moves) packages matching a query between repositories.
    pub fn copy(
        &self,
        account: &AccountId,
        from: &str,
        req: &CopyPackages,
        mv: bool,
    ) -> Res<RepoChange> {
        let query = parse_query(&req.query)?;
        records::check_copy(from, &req.to)?;
        let lock = self.lock(account);
        let _g = lock.lock();
        let mut src = Arc::unwrap_or_clone(self.repo(account, from)?);
        let mut dst = Arc::unwrap_or_clone(self.repo(account, &req.to)?);
        let catalog = self.catalog(account)?;
        let report = if mv {
            repo::move_packages(&mut src, &mut dst, &query, &catalog)
        } else {
            repo::copy(&src, &mut dst, &query, &catalog)
        }
        .map_err(|e| invalid(&e))?;
        let mut put = vec![(
            AptKind::Repo,
            dst.name.clone(),
            encode(&dst),
            Expect::Present,
        )];
        if mv {
            put.push((
                AptKind::Repo,
                src.name.clone(),
                encode(&src),
                Expect::Present,
            ));
        }
        self.apply(
            account,
            AptChange {
                put,
                ..Default::default()
            },
        )?;
        self.remember_repo(account, dst);
        if mv {
            self.remember_repo(account, src);
        }
        Ok(records::repo_change(&report, mv))
    }

    // ---- snapshots

    pub fn create_snapshot(&self, account: &AccountId, req: &CreateSnapshot) -> Res<SnapshotInfo> {
        let lock = self.lock(account);
        let _g = lock.lock();
        let mut unsatisfied = Vec::new();
        let snap = match req {
            CreateSnapshot::Repo {
                name,
                repo,
                description,
            } => Snapshot::from_repo(name, &*self.repo(account, repo)?, description)
                .map_err(|e| invalid(&e))?,
            CreateSnapshot::Merge {
                name,
                sources,
                latest,
            } => {
                let snaps = sources
                    .iter()
                    .map(|s| self.snapshot(account, s))
                    .collect::<Res<Vec<_>>>()?;
                let refs: Vec<&Snapshot> = snaps.iter().map(|s| &**s).collect();
                let mode = if *latest {
                    MergeMode::LatestWins
                } else {
                    MergeMode::KeepAll
                };
                Snapshot::merge(name, &refs, mode, "").map_err(|e| invalid(&e))?
            }
            CreateSnapshot::Mirror { name, mirror } => {
                let packages = self.mirror(account, mirror)?.snapshot_packages()?;
                Snapshot::from_packages(
                    name,
                    SnapshotSource::Mirror {
                        name: mirror.clone(),
                    },
                    packages,
                    "",
                )
                .map_err(|e| invalid(&e))?
            }
            CreateSnapshot::Filter {
                name,
                source,
                query,
                with_deps,
            } => {
                let q = parse_query(query)?;
                let src = self.snapshot(account, source)?;
                let deps = with_deps.then(DepOptions::default);
                let f = src
                    .filter(name, &q, query, deps.as_ref(), &*self.catalog(account)?)
                    .map_err(|e| invalid(&e))?;
                unsatisfied = records::unsatisfied_text(&f.unsatisfied);
                f.snapshot
            }
        };
        self.apply(
            account,
            AptChange {
                put: vec![(
                    AptKind::Snapshot,
                    snap.name().to_owned(),
                    encode(&snap),
                    Expect::Absent,
                )],
                ..Default::default()
            },
        )?;
        let mut info = snapshot_info(&snap);
        info.unsatisfied = unsatisfied;
        Ok(info)
    }

    pub fn list_snapshots(&self, account: &AccountId) -> Res<Vec<SnapshotInfo>> {
        Ok(self
            .decoded::<Snapshot>(account, AptKind::Snapshot, "snapshot")?
            .iter()
            .map(snapshot_info)
            .collect())
    }

    pub fn describe_snapshot(
        &self,
        account: &AccountId,
        name: &str,
        query: Option<&str>,
    ) -> Res<SnapshotInfo> {
        let q = query.map(parse_query).transpose()?;
        let s = self.snapshot(account, name)?;
        let catalog = self.catalog(account)?;
        let mut info = snapshot_info(&s);
        let all = Query::parse("Name").ok();
        let q = match (&q, &all) {
            (Some(q), _) => q,
            (None, Some(all)) => all,
            (None, None) => return Err(AptError::Internal("the match-all query".into())),
        };
        info.package_list = s
            .search(q, &catalog)
            .map_err(|e| AptError::Internal(chain(&e)))?
            .iter()
            .map(|p| package_info(p))
            .collect();
        Ok(info)
    }

    pub fn diff_snapshots(
        &self,
        account: &AccountId,
        old: &str,
        new: &str,
    ) -> Res<SnapshotDiffInfo> {
        Ok(records::snapshot_diff_info(&Snapshot::diff(
            &*self.snapshot(account, old)?,
            &*self.snapshot(account, new)?,
        )))
    }

    pub fn drop_snapshot(&self, account: &AccountId, name: &str) -> Res<()> {
        let lock = self.lock(account);
        let _g = lock.lock();
        self.snapshot(account, name)?;
        check_unpublished(&self.publications(account)?, SourceKind::Snapshot, name)?;
        self.apply(
            account,
            AptChange {
                delete: vec![(AptKind::Snapshot, name.to_owned())],
                ..Default::default()
            },
        )
    }

    // ---- signing keys

    fn key_path(&self, account: &AccountId, fingerprint: &str) -> PathBuf {
        self.dir
            .join("keys")
            .join(account.as_str())
            .join(format!("{fingerprint}.key"))
    }

    pub fn create_key(
        &self,
        account: &AccountId,
        account_name: &str,
        req: &CreateSigningKey,
    ) -> Res<SigningKeyInfo> {
        repo::validate_name(&req.name).map_err(|e| invalid(&e))?;
        let user_id = req.user_id.clone().unwrap_or_else(|| {
            format!("Spindle {account_name} {} <apt@spindle.invalid>", req.name)
        });
        let lock = self.lock(account);
        let _g = lock.lock();
        if self
            .store
            .apt_get(account, AptKind::SigningKey, &req.name)?
            .is_some()
        {
            return Err(AptError::Conflict(format!(
                "signing key `{}` already exists",
                req.name
            )));
        }
        let key = SigningKey::generate(&user_id, spindle_apt::KeyAlgorithm::Ed25519)
            .map_err(|e| invalid(&e))?;
        let info = SigningKeyInfo {
            name: req.name.clone(),
            fingerprint: key.fingerprint(),
            key_id: key.key_id(),
            user_id,
            created: crate::app::now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            public_key: None,
        };
        let path = self.key_path(account, &info.fingerprint);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AptError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        key.save_secret(&path)
            .map_err(|e| AptError::Internal(chain(&e)))?;
        if let Err(e) = self.apply(
            account,
            AptChange {
                put: vec![(
                    AptKind::SigningKey,
                    req.name.clone(),
                    encode(&info),
                    Expect::Absent,
                )],
                ..Default::default()
            },
        ) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(info)
    }

    pub fn list_keys(&self, account: &AccountId) -> Res<Vec<SigningKeyInfo>> {
        self.decoded(account, AptKind::SigningKey, "signing key")
    }

    fn key_info(&self, account: &AccountId, name: &str) -> Res<SigningKeyInfo> {
        decode(
            "signing key",
            &self.store.apt_require(account, AptKind::SigningKey, name)?,
        )
    }

    fn load_key(&self, account: &AccountId, name: &str) -> Res<SigningKey> {
        let info = self.key_info(account, name)?;
        SigningKey::load_secret(&self.key_path(account, &info.fingerprint))
            .map_err(|e| AptError::Internal(chain(&e)))
    }

    pub fn export_key(&self, account: &AccountId, name: &str) -> Res<SigningKeyInfo> {
        let mut info = self.key_info(account, name)?;
        let key = self.load_key(account, name)?;
        info.public_key = Some(
            key.public_armored()
                .map_err(|e| AptError::Internal(chain(&e)))?,
        );
        Ok(info)
    }

    pub fn delete_key(&self, account: &AccountId, name: &str) -> Res<()> {
        let lock = self.lock(account);
        let _g = lock.lock();
        let info = self.key_info(account, name)?;
        check_key_unused(&self.publications(account)?, name)?;
        self.apply(
            account,
            AptChange {
                delete: vec![(AptKind::SigningKey, name.to_owned())],
                ..Default::default()
            },
        )?;
        let _ = std::fs::remove_file(self.key_path(account, &info.fingerprint));
        Ok(())
    }

    // ---- publishing

    pub fn list_publications(
        &self,
        account: &AccountId,
        account_name: &str,
    ) -> Res<Vec<PublicationInfo>> {
        Ok(self
            .publications(account)?
            .iter()
            .map(|p| p.info(&self.base_url, account_name))
            .collect())
    }

    /// The packages of each component, as they are now.
    fn components(
        &self,
        account: &AccountId,
        sources: &[PublishSource],
    ) -> Res<Vec<ComponentInput>> {
        let kinds = records::check_sources(sources)?;
        let catalog = self.catalog(account)?;
        let mut out = Vec::new();
        for (s, kind) in sources.iter().zip(kinds) {
            let resolved = match kind {
                SourceKind::Repo => catalog.resolve(&self.repo(account, &s.name)?.packages),
                SourceKind::Snapshot => {
                    catalog.resolve(self.snapshot(account, &s.name)?.packages())
                }
            };
            let packages = resolved.map_err(|e| AptError::Internal(chain(&e)))?;
            out.push(ComponentInput {
                name: s.component.clone(),
                packages,
            });
        }
        Ok(out)
    }

    /// Publishes `p` (new or changed), setting the generation written, and returns what
    /// the publish left for [`AptService::complete_later`].
    fn write_tree(
        &self,
        publisher: &mut Publisher,
        account: &AccountId,
        p: &mut Publication,
    ) -> Res<Option<Pending>> {
        let comps = self.components(account, &p.sources)?;
        let key = self.load_key(account, &p.sign_key)?;
        let o = p.publish_options(std::time::SystemTime::now());
        let report = publisher
            .publish(&o, &comps, Some(&key))
            .map_err(|e| match e {
                spindle_apt::PublishError::Io { .. } | spindle_apt::PublishError::Sign(_) => {
                    AptError::Internal(chain(&e))
                }
                other => invalid(&other),
            })?;
        p.generation = report.generation;
        p.published_at = crate::app::now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(report.pending)
    }

    /// Publishes the `Contents` and `Packages.xz` files a publish left out, in a second
    /// `Release` swap on a background thread (see `SharedPublisher`).
    fn complete_later(lock: &Arc<SharedPublisher>, pending: Option<Pending>) {
        let Some(pending) = pending else { return };
        let generation = pending.generation();
        let spawned = lock.complete_later(pending, move |outcome| match outcome {
            Ok(Completion::Done(r)) => {
                release_free_memory();
                tracing::debug!(
                    generation,
                    indexes = r.indexes_written,
                    "publish completed with Contents and Packages.xz"
                )
            }
            Ok(_) => tracing::debug!(generation, "publish completion superseded"),
            Err(e) => tracing::warn!(
                generation,
                error = %chain(&e),
                "completing a publish with Contents and Packages.xz failed; the next publish retries"
            ),
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the publish completion thread");
        }
    }

    pub fn create_publication(
        &self,
        account: &AccountId,
        account_name: &str,
        req: &CreatePublication,
    ) -> Res<PublicationInfo> {
        let lock = self.lock(account);
        let mut publisher = lock.lock();
        let token = req.private.then(|| hex::encode(rand::random::<[u8; 24]>()));
        let mut p = Publication::new(
            req,
            &self.publications(account)?,
            token.as_deref().map(records::token_digest),
        )?;
        let (prefix, name) = (p.prefix.clone(), p.name());
        let pending = self.write_tree(&mut publisher, account, &mut p)?;
        if let Err(e) = self.apply(
            account,
            AptChange {
                put: vec![(AptKind::Publication, name, encode(&p), Expect::Absent)],
                ..Default::default()
            },
        ) {
            let _ = publisher.drop_publication(&prefix, &req.distribution);
            return Err(e);
        }
        drop(publisher);
        release_free_memory();
        Self::complete_later(&lock, pending);
        let mut info = p.info(&self.base_url, account_name);
        info.read_token = token;
        Ok(info)
    }

    fn publication(&self, account: &AccountId, r: &PublicationRef) -> Res<Publication> {
        let name = publication_name(r.prefix.trim_matches('/'), &r.distribution);
        decode(
            "publication",
            &self
                .store
                .apt_require(account, AptKind::Publication, &name)?,
        )
    }

    /// Republishes with the sources' current contents (`publish update`), or with other
    /// snapshots (`publish switch`).
    pub fn update_publication(
        &self,
        account: &AccountId,
        account_name: &str,
        r: &PublicationRef,
        switch: Option<&[(String, String)]>,
    ) -> Res<PublicationInfo> {
        let lock = self.lock(account);
        let mut publisher = lock.lock();
        let mut p = self.publication(account, r)?;
        if let Some(switch) = switch {
            p.switch(switch)?;
        }
        let pending = self.write_tree(&mut publisher, account, &mut p)?;
        self.apply(
            account,
            AptChange {
                put: vec![(AptKind::Publication, p.name(), encode(&p), Expect::Present)],
                ..Default::default()
            },
        )?;
        drop(publisher);
        release_free_memory();
        Self::complete_later(&lock, pending);
        Ok(p.info(&self.base_url, account_name))
    }

    pub fn drop_publication(&self, account: &AccountId, r: &PublicationRef) -> Res<()> {
        let lock = self.lock(account);
        let mut publisher = lock.lock();
        let p = self.publication(account, r)?;
        publisher
            .drop_publication(&p.prefix, &p.distribution)
            .map_err(|e| AptError::Internal(chain(&e)))?;
        self.apply(
            account,
            AptChange {
                delete: vec![(AptKind::Publication, p.name())],
                ..Default::default()
            },
        )
    }

    /// What `account`'s published tree serves at `path` (index files from disk, package
    /// files from the pool), or `None`.
    pub fn open_published(
        &self,
        account: &AccountId,
        path: &str,
    ) -> Res<Option<spindle_apt::pack::Slice>> {
        self.published
            .open(&self.public_root(account), path)
            .map_err(|e| AptError::Internal(chain(&e)))
    }

    /// Whether a request for `prefix` of `account`'s tree may be served: `Ok(())` for a public
    /// prefix or a matching read token, `Err(realm)` otherwise.
    pub fn may_read(&self, account: &AccountId, prefix: &str, token: Option<&str>) -> Res<bool> {
        Ok(records::may_read(
            &self.publications(account)?,
            prefix,
            token,
        ))
    }

    // ---- mirrors

    fn mirror(&self, account: &AccountId, name: &str) -> Res<Mirror> {
        decode(
            "mirror",
            &self.store.apt_require(account, AptKind::Mirror, name)?,
        )
    }

    pub fn create_mirror(&self, account: &AccountId, req: &CreateMirror) -> Res<MirrorInfo> {
        let m = Mirror::new(req)?;
        self.insert_new(account, AptKind::Mirror, m.name.clone(), &m)?;
        Ok(m.info())
    }

    pub fn list_mirrors(&self, account: &AccountId) -> Res<Vec<MirrorInfo>> {
        Ok(self
            .decoded::<Mirror>(account, AptKind::Mirror, "mirror")?
            .iter()
            .map(Mirror::info)
            .collect())
    }

    pub fn describe_mirror(&self, account: &AccountId, name: &str) -> Res<MirrorInfo> {
        Ok(self.mirror(account, name)?.info())
    }

    pub fn drop_mirror(&self, account: &AccountId, name: &str) -> Res<()> {
        self.apply(
            account,
            AptChange {
                delete: vec![(AptKind::Mirror, name.to_owned())],
                ..Default::default()
            },
        )
    }

    /// Fetches, verifies and downloads the mirror's selection; records it only if all of
    /// that succeeded.
    pub fn update_mirror(&self, account: &AccountId, name: &str) -> Res<MirrorInfo> {
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        let mut m = self.mirror(account, name)?;
        let keyring = spindle_apt::mirror::parse_keyring(m.keyring.as_bytes())
            .map_err(|e| AptError::Internal(chain(&e)))?;
        let fetch = HttpFetch {
            base: m.url.clone(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(600))
                .build(),
        };
        let spec = spindle_apt::mirror::MirrorSpec {
            distribution: m.distribution.clone(),
            components: m.components.clone(),
            architectures: m.architectures.clone(),
            filter: m.filter.clone(),
            with_deps: m.with_deps,
            now: crate::app::now().into(),
        };
        let known = Known {
            store: &self.store,
            account,
        };
        let update = spindle_apt::mirror::update(&spec, &fetch, &keyring, &self.pool, &known)
            .map_err(|e| match e {
                spindle_apt::mirror::MirrorError::Pool(PoolError::Write { .. }) => {
                    AptError::Internal(chain(&e))
                }
                spindle_apt::mirror::MirrorError::Pool(PoolError::Conflict { .. }) => {
                    AptError::Conflict(chain(&e))
                }
                other => AptError::Invalid(format!("mirror `{name}`: {}", chain(&other))),
            })?;
        let lock = self.lock(account);
        let _g = lock.lock();
        m.record_update(
            update.packages.iter().map(|a| a.package.key().clone()),
            update.unsatisfied,
            crate::app::now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        );
        let change = AptChange {
            packages: update
                .packages
                .iter()
                .map(|a| package_record(&a.package))
                .collect(),
            put: vec![(AptKind::Mirror, m.name.clone(), encode(&m), Expect::Present)],
            ..Default::default()
        };
        let added = update.packages.into_iter().map(|a| a.package).collect();
        self.apply_records(account, change, added)?;
        Ok(m.info())
    }

    // ---- housekeeping

    /// Forgets package records no repository or snapshot references and removes pool files
    /// no record references. With `dry_run`, only reports what it would remove.
    pub fn cleanup(&self, dry_run: bool) -> Res<CleanupReport> {
        let _gc = self.gc.write().unwrap_or_else(|p| p.into_inner());
        let mut references = records::References::default();
        for (acct, _, body) in self.store.apt_list_all(AptKind::Repo)? {
            let r: Repo = decode("repository", &body)?;
            references.add(acct.as_str(), &r.packages);
        }
        for (acct, _, body) in self.store.apt_list_all(AptKind::Snapshot)? {
            let s: Snapshot = decode("snapshot", &body)?;
            references.add(acct.as_str(), s.packages());
        }
        for (acct, _, body) in self.store.apt_list_all(AptKind::Mirror)? {
            let m: Mirror = decode("mirror", &body)?;
            references.add(acct.as_str(), &m.packages);
        }
        // Published trees serve package files from the pool: what a publication serves,
        // now or in its grace period, stays even when no record names it any more.
        let published = spindle_apt::publish::referenced_pool_files(&self.dir.join("public"))
            .map_err(|e| AptError::Internal(chain(&e)))?;
        let pool = self
            .pool
            .addresses()
            .map_err(|e| AptError::Internal(chain(&e)))?;
        let plan =
            records::plan_cleanup(self.store.apt_all_packages()?, &references, published, pool);
        if !dry_run {
            for (acct, keys) in plan.forget {
                let id = AccountId::parse(&acct)
                    .map_err(|e| AptError::Internal(format!("account id `{acct}`: {e}")))?;
                self.apply(
                    &id,
                    AptChange {
                        forget: keys,
                        ..Default::default()
                    },
                )?;
            }
            self.pool
                .cleanup(&plan.keep)
                .map_err(|e| AptError::Internal(chain(&e)))?;
        }
        Ok(CleanupReport {
            dry_run,
            packages: plan.packages,
            pool_files: plan.pool_files,
        })
    }
}
