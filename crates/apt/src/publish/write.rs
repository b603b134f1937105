//! The publish executor: the only part of publishing that touches the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{
    plan_with, Cancel, ComponentInput, IndexCache, PlannedIndex, PublishError, PublishOptions,
    PublishPlan, BY_HASH,
};
use crate::fsutil;
use crate::pool::Pool;
use crate::sign::SigningKey;

/// How the executor behaves.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// fsync files and directories before the `Release` swap (on by default; the benchmark
    /// reports both).
    pub sync: bool,
    /// Files dropped from a publication stay at least this long, and at least until the next
    /// publish after the one that dropped them.
    pub grace: Duration,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            sync: true,
            grace: Duration::from_secs(3600),
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    pub generation: u64,
    /// Pool paths this publish added (served from the pool, nothing is copied).
    pub pool_files_added: usize,
    pub indexes_written: usize,
    pub files_removed: usize,
    pub plan_time: Duration,
    pub sign_time: Duration,
    pub write_time: Duration,
    /// Packages per (component, architecture).
    pub counts: BTreeMap<(String, String), usize>,
    /// What this publish left out (`Packages.xz`, `Contents`), for [`Publisher::complete`].
    pub pending: Option<Pending>,
}

/// The rest of a publish that left its costly files for later: everything needed to plan
/// it again in full, and the generation it completes.
#[derive(Debug, Clone)]
pub struct Pending {
    options: PublishOptions,
    components: Vec<ComponentInput>,
    key: Option<SigningKey>,
    generation: u64,
}

impl Pending {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// How [`Publisher::complete`] ended.
#[derive(Debug)]
pub enum Completion {
    /// The full index set is published (a second `Release` swap, same generation).
    Done(Box<PublishReport>),
    /// A newer publish replaced the one to complete; that one completes itself.
    Superseded,
    /// `cancel` said stop; chunks compressed until then stay cached.
    Cancelled,
}

/// What a publication's directory holds, persisted next to it in `.spindle/<dist>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct State {
    generation: u64,
    /// Pool path → sha256, of the current publish.
    pub(super) pool: BTreeMap<String, String>,
    /// Canonical index path (relative to the publication) → sha256 of its content.
    indexes: BTreeMap<String, String>,
    /// by-hash paths referenced by the current publish.
    by_hash: BTreeSet<String>,
    /// Paths no longer referenced: (generation that dropped them, unix time).
    retired: BTreeMap<String, (u64, u64)>,
    /// The content of the retired `pool/` paths, served until they expire.
    #[serde(default)]
    pub(super) retired_pool: BTreeMap<String, String>,
}

/// Publishes into a root directory (what the daemon serves over HTTP). Package files are
/// not copied: the state file names the content of each `pool/` path, and
/// [`super::PublishedFiles`] serves it from the [`Pool`]. Keep one for the daemon's lifetime: it caches rendered indexes
/// and the on-disk state of each publication. Publishes to the same publication must not
/// run concurrently; an advisory lock (`.spindle/<dist>.lock`) enforces it across processes.
#[derive(Debug)]
pub struct Publisher {
    root: PathBuf,
    pool: Pool,
    options: PublisherOptions,
    caches: HashMap<(String, String), IndexCache>,
    states: HashMap<(String, String), State>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Publisher {
    pub fn new(root: impl Into<PathBuf>, pool: Pool, options: PublisherOptions) -> Publisher {
        Publisher {
            root: root.into(),
            pool,
            options,
            caches: HashMap::new(),
            states: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Plans, signs and applies a publish.
    pub fn publish(
        &mut self,
        options: &PublishOptions,
        components: &[ComponentInput],
        key: Option<&SigningKey>,
    ) -> Result<PublishReport, PublishError> {
        let started = Instant::now();
        let cache = self
            .caches
            .entry((
                options.prefix.trim_matches('/').to_string(),
                options.distribution.clone(),
            ))
            .or_default();
        let planned = plan_with(options, components, cache, None)?;
        let plan_time = started.elapsed();
        let mut report = self.apply(&planned, key)?;
        report.plan_time = plan_time;
        if planned.deferred {
            let mut full = options.clone();
            full.defer_above = None;
            report.pending = Some(Pending {
                options: full,
                components: components.to_vec(),
                key: key.cloned(),
                generation: report.generation,
            });
        }
        Ok(report)
    }

    /// Publishes what `pending`'s publish left out, in a second atomic swap of the same
    /// generation: the files apt already reads stay as they are, and `Release` gains
    /// `Packages.xz` and `Contents`. Nothing is written if a newer publish of the same
    /// publication happened meanwhile, or if `cancel` turns true while chunks are compressed
    /// (call it between other work: it only holds `&mut self`).
    pub fn complete(
        &mut self,
        pending: &Pending,
        cancel: Cancel<'_>,
    ) -> Result<Completion, PublishError> {
        let options = &pending.options;
        let id = (
            options.prefix.trim_matches('/').to_string(),
            options.distribution.clone(),
        );
        if self.current_generation(&id)? != pending.generation {
            return Ok(Completion::Superseded);
        }
        let started = Instant::now();
        let cache = self.caches.entry(id).or_default();
        let planned = match plan_with(options, &pending.components, cache, Some(cancel)) {
            Err(PublishError::Cancelled) => return Ok(Completion::Cancelled),
            other => other?,
        };
        let plan_time = started.elapsed();
        match self.apply_at(&planned, pending.key.as_ref(), Some(pending.generation))? {
            Some(mut report) => {
                report.plan_time = plan_time;
                Ok(Completion::Done(Box::new(report)))
            }
            None => Ok(Completion::Superseded),
        }
    }

    fn current_generation(&mut self, id: &(String, String)) -> Result<u64, PublishError> {
        if let Some(s) = self.states.get(id) {
            return Ok(s.generation);
        }
        let base = if id.0.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&id.0)
        };
        let state = load_state(&base.join(".spindle").join(format!("{}.json", id.1)))?;
        let generation = state.generation;
        self.states.insert(id.clone(), state);
        Ok(generation)
    }

    /// Writes a planned publish (see the module docs for the order).
    pub fn apply(
        &mut self,
        plan: &PublishPlan,
        key: Option<&SigningKey>,
    ) -> Result<PublishReport, PublishError> {
        Ok(self
            .apply_at(plan, key, None)?
            .expect("a new generation is always written"))
    }

    /// [`Publisher::apply`] as a new generation (`complete: None`), or as a second swap of
    /// generation `complete`, which is skipped (`None`) once the publication has moved on.
    fn apply_at(
        &mut self,
        plan: &PublishPlan,
        key: Option<&SigningKey>,
        complete: Option<u64>,
    ) -> Result<Option<PublishReport>, PublishError> {
        let sign_started = Instant::now();
        let signed = match key {
            Some(k) => Some((
                k.clearsign(&plan.release).map_err(PublishError::Sign)?,
                k.detach_sign(plan.release.as_bytes())
                    .map_err(PublishError::Sign)?,
            )),
            None => None,
        };
        let sign_time = sign_started.elapsed();
        let started = Instant::now();
        let base = if plan.prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&plan.prefix)
        };
        let meta_dir = base.join(".spindle");
        fs::create_dir_all(&meta_dir).map_err(io_err(&meta_dir))?;
        let _lock = Lock::acquire(&meta_dir.join(format!("{}.lock", plan.distribution)))?;
        let state_path = meta_dir.join(format!("{}.json", plan.distribution));
        let id = (plan.prefix.clone(), plan.distribution.clone());
        let mut state = match self.states.remove(&id) {
            Some(s) => s,
            None => load_state(&state_path)?,
        };
        let generation = match complete {
            None => state.generation + 1,
            Some(g) if g == state.generation => g,
            Some(_) => {
                self.states.insert(id, state);
                return Ok(None);
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut dirty_dirs: BTreeSet<PathBuf> = BTreeSet::new();
        let mut report = PublishReport {
            generation,
            counts: plan.counts.clone(),
            sign_time,
            ..PublishReport::default()
        };

        // 1. Pool paths. The pool/ tree is shared by the publications under one prefix, so
        //    a path another publication serves with other content is refused. The content
        //    must be in the pool; the state written before the swap makes it servable.
        let mut others: Option<OtherPublications> = None;
        let mut new_pool = BTreeMap::new();
        for f in &plan.pool_files {
            if state.pool.get(&f.path) != Some(&f.sha256) {
                if others.is_none() {
                    others = Some(other_publications(&meta_dir, &plan.distribution)?);
                }
                if let Some((dist, sha)) = others.as_ref().and_then(|o| o.current.get(&f.path)) {
                    if sha != &f.sha256 {
                        return Err(PublishError::SharedPoolClash {
                            path: f.path.clone(),
                            other: dist.clone(),
                        });
                    }
                }
                if !self.pool.contains(&f.sha256) {
                    return Err(PublishError::MissingPoolFile {
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                    });
                }
                report.pool_files_added += 1;
            }
            new_pool.insert(f.path.clone(), f.sha256.clone());
        }

        // 2. Index files, by hash first, then under their canonical names.
        let dist_rel = format!("dists/{}", plan.distribution);
        let dist_dir = base.join(&dist_rel);
        let mut new_indexes = BTreeMap::new();
        let mut new_by_hash = BTreeSet::new();
        for index in &plan.indexes {
            let rel = format!("{dist_rel}/{}", index.path);
            let by_hash: Vec<String> = if index.by_hash {
                let dir = index.path.rsplit_once('/').map_or("", |(d, _)| d);
                BY_HASH
                    .iter()
                    .map(|(name, pick)| {
                        format!("{dist_rel}/{dir}/by-hash/{name}/{}", pick(&index.digests))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            new_by_hash.extend(by_hash.iter().cloned());
            if !index.write {
                continue;
            }
            new_indexes.insert(rel.clone(), index.digests.sha256.clone());
            let have_by_hash = by_hash.iter().all(|p| state.by_hash.contains(p));
            if have_by_hash && state.indexes.get(&rel) == Some(&index.digests.sha256) {
                continue;
            }
            self.write_index(&base, &rel, index, &by_hash, &mut dirty_dirs)?;
            report.indexes_written += 1;
        }

        // Make everything durable before the swap.
        if self.options.sync {
            sync_dirs(&base, &dirty_dirs)?;
        }

        // 3. Retire what this publish no longer references; what has been retired for a
        //    whole generation and the grace period expires. The new state is written before
        //    the swap, so every pool path the new Release can lead to is already servable.
        let mut retired = std::mem::take(&mut state.retired);
        let mut retired_pool = std::mem::take(&mut state.retired_pool);
        for (p, sha) in &state.pool {
            if !new_pool.contains_key(p) {
                retired_pool.entry(p.clone()).or_insert_with(|| sha.clone());
            }
        }
        for p in state
            .pool
            .keys()
            .chain(&state.by_hash)
            .chain(state.indexes.keys())
        {
            if !new_pool.contains_key(p) && !new_by_hash.contains(p) && !new_indexes.contains_key(p)
            {
                retired.entry(p.clone()).or_insert((generation, now));
            }
        }
        retired.retain(|p, _| {
            !new_pool.contains_key(p) && !new_by_hash.contains(p) && !new_indexes.contains_key(p)
        });
        let others = match others {
            Some(o) => o,
            None => other_publications(&meta_dir, &plan.distribution)?,
        };
        let grace = self.options.grace.as_secs();
        let mut keep = BTreeMap::new();
        let mut expired_paths = Vec::new();
        for (p, (gen, at)) in retired {
            let expired = gen < generation && now.saturating_sub(at) >= grace;
            if !expired {
                keep.insert(p, (gen, at));
            } else if !others.all.contains(&p) {
                expired_paths.push(p);
            }
        }
        retired_pool.retain(|p, _| keep.contains_key(p));
        let sync = self.options.sync;
        let state = State {
            generation,
            pool: new_pool,
            indexes: new_indexes,
            by_hash: new_by_hash,
            retired: keep,
            retired_pool,
        };
        let json = serde_json::to_vec(&state).map_err(|source| PublishError::State {
            path: state_path.clone(),
            source,
        })?;
        fsutil::write_atomic(&state_path, &json, 0o644, sync).map_err(io_err(&state_path))?;
        if sync {
            fsutil::sync_dir(&meta_dir).map_err(io_err(&meta_dir))?;
        }

        // 4. Release, Release.gpg, InRelease: the swap.
        fs::create_dir_all(&dist_dir).map_err(io_err(&dist_dir))?;
        let write = |name: &str, data: &[u8]| {
            let p = dist_dir.join(name);
            fsutil::write_atomic(&p, data, 0o644, sync).map_err(io_err(&p))
        };
        match &signed {
            Some((inrelease, detached)) => {
                write("Release", plan.release.as_bytes())?;
                write("Release.gpg", detached.as_bytes())?;
                write("InRelease", inrelease.as_bytes())?;
            }
            None => {
                for name in ["InRelease", "Release.gpg"] {
                    let p = dist_dir.join(name);
                    match fs::remove_file(&p) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
                        _ => {}
                    }
                }
                write("Release", plan.release.as_bytes())?;
            }
        }
        if sync {
            fsutil::sync_dir(&dist_dir).map_err(io_err(&dist_dir))?;
        }

        // 5. Remove the expired files (pool paths of old trees were files too).
        for p in expired_paths {
            let path = base.join(&p);
            match fs::remove_file(&path) {
                Ok(()) => report.files_removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        self.states.insert(id, state);
        report.write_time = started.elapsed();
        Ok(Some(report))
    }

    fn write_index(
        &self,
        base: &Path,
        rel: &str,
        index: &PlannedIndex,
        by_hash: &[String],
        dirty: &mut BTreeSet<PathBuf>,
    ) -> Result<(), PublishError> {
        let dest = base.join(rel);
        let dir = dest.parent().unwrap_or(base).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = fsutil::temp_sibling(&dest);
        let existing = by_hash.iter().map(|p| base.join(p)).find(|p| p.is_file());
        match existing {
            Some(src) => {
                fs::hard_link(&src, &tmp).map_err(io_err(&tmp))?;
            }
            None => {
                let mut f = fsutil::create_with_mode(&tmp, 0o644).map_err(io_err(&tmp))?;
                let mut w = io::BufWriter::with_capacity(1 << 20, &mut f);
                for part in &index.parts {
                    w.write_all(part).map_err(io_err(&tmp))?;
                }
                w.flush().map_err(io_err(&tmp))?;
                drop(w);
                if self.options.sync {
                    f.sync_data().map_err(io_err(&tmp))?;
                }
            }
        }
        for p in by_hash {
            let target = base.join(p);
            if target.is_file() {
                continue;
            }
            let hdir = target.parent().unwrap_or(base).to_path_buf();
            fs::create_dir_all(&hdir).map_err(io_err(&hdir))?;
            match fs::hard_link(&tmp, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_err(&target)(e));
                }
            }
            dirty.insert(hdir);
        }
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&dest)(e)
        })?;
        dirty.insert(dir);
        Ok(())
    }

    /// Removes a publication's `dists/<dist>` tree and its state; pool files that no other
    /// publication under the same prefix references are removed too.
    pub fn drop_publication(
        &mut self,
        prefix: &str,
        distribution: &str,
    ) -> Result<(), PublishError> {
        super::check_path_part("distribution", distribution, false)?;
        super::check_path_part("prefix", prefix, true)?;
        let prefix = prefix.trim_matches('/').to_string();
        let base = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&prefix)
        };
        let meta_dir = base.join(".spindle");
        let state_path = meta_dir.join(format!("{distribution}.json"));
        let state = match self
            .states
            .remove(&(prefix.clone(), distribution.to_string()))
        {
            Some(s) => s,
            None => load_state(&state_path)?,
        };
        self.caches.remove(&(prefix, distribution.to_string()));
        let others = other_publications(&meta_dir, distribution)?;
        for p in state.pool.keys().chain(state.retired.keys()) {
            if p.starts_with("pool/") && !others.all.contains(p) {
                let _ = fs::remove_file(base.join(p));
            }
        }
        let dist_dir = base.join("dists").join(distribution);
        match fs::remove_dir_all(&dist_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&dist_dir)(e)),
            _ => {}
        }
        match fs::remove_file(&state_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&state_path)(e)),
            _ => Ok(()),
        }
    }
}

pub(super) fn load_state(path: &Path) -> Result<State, PublishError> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|source| PublishError::State {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// What the other publications under the same prefix reference in the shared `pool/` tree.
struct OtherPublications {
    /// Pool path → (distribution, sha256) of their current publishes.
    current: HashMap<String, (String, String)>,
    /// Every pool path they reference, currently or within their grace period.
    all: HashSet<String>,
}

fn other_publications(
    meta_dir: &Path,
    distribution: &str,
) -> Result<OtherPublications, PublishError> {
    let mut out = OtherPublications {
        current: HashMap::new(),
        all: HashSet::new(),
    };
    let own = format!("{distribution}.json");
    let entries = match fs::read_dir(meta_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(meta_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(meta_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(dist) = name.strip_suffix(".json") else {
            continue;
        };
        if name == own || name.starts_with('.') {
            continue;
        }
        let state = load_state(&entry.path())?;
        out.all
            .extend(state.retired.into_keys().filter(|p| p.starts_with("pool/")));
        for (path, sha) in state.pool {
            out.all.insert(path.clone());
            out.current.insert(path, (dist.to_string(), sha));
        }
    }
    Ok(out)
}

fn sync_dirs(base: &Path, dirs: &BTreeSet<PathBuf>) -> Result<(), PublishError> {
    if dirs.len() > 256 {
        // One syncfs is far cheaper than thousands of directory fsyncs on a first publish.
        use std::os::fd::AsRawFd;
        let f = fs::File::open(base).map_err(io_err(base))?;
        // SAFETY: `f` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(io_err(base)(io::Error::last_os_error()));
        }
        return Ok(());
    }
    for d in dirs {
        fsutil::sync_dir(d).map_err(io_err(d))?;
    }
    Ok(())
}

/// An exclusive advisory lock held for the duration of a publish.
struct Lock {
    _file: fs::File,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, PublishError> {
        use std::os::fd::AsRawFd;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        // SAFETY: `f` is an open descriptor owned by the returned Lock; flock does not
        // touch memory.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(path)(io::Error::last_os_error()));
        }
        Ok(Lock { _file: f })
    }
}
