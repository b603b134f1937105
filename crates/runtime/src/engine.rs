//! The engine the daemon composes: [`Runtime`] owns the image store, VPCs, subnets, security
//! groups, peerings and instances of one name prefix, saves them whole after every change in
//! a [`StateDoc`] (the daemon's SQLite store; `state.json` in its data directory by default),
//! and adopts running instances when reopened.
//!
//! Multi-step operations (VPC create, launch, peering) undo what they did when a step fails,
//! so a failed request leaves nothing half-created.
//!
//! This file holds the records, the saved state and `open`; the operations live beside it
//! by verb: `engine/network.rs` (VPCs, subnets, security groups), `peering.rs`, `launch.rs`,
//! `lifecycle.rs` (stop, start, terminate, exec, teardown, doctor) and `usage.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bind::BindMount;
use crate::cgroup::{CgroupError, CgroupLayout, Limits};
use crate::cidr::{CidrError, Ipam, Ipv4Net};
use crate::durable::{DocError, FileDoc, StateDoc};
use crate::image::{ImageError, ImageStore};
use crate::imds::ImdsServer;
use crate::intent::Intent;
use crate::kernel::{Kernel, KernelError, WaitOutcome};
use crate::net::{self, NetError, SecurityGroup};
use crate::seccomp::SeccompProfile;
use crate::userns::IdRange;

pub use endpoint::Endpoint;

mod endpoint;
mod launch;
mod lifecycle;
mod network;
mod peering;
mod resolver;

pub use resolver::{resolver_address, ResolverVpc, VpcResolver};
mod usage;

/// Errors of engine operations.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("kernel call failed")]
    Kernel(#[from] KernelError),
    #[error("the runtime's state could not be read or saved")]
    State(#[source] DocError),
    #[error("image {image} has neither an entrypoint nor a cmd, and the launch gave no command")]
    NoCommand { image: String },
    #[error("image {image}: entrypoint `{program}` does not exist in the image")]
    EntrypointMissing { image: String, program: String },
    #[error("instance type {instance_type} gives {have} MiB but image {image} needs at least {need} MiB")]
    MemoryTooLow {
        instance_type: String,
        have: u64,
        image: String,
        need: u64,
    },
    #[error("user `{user}` is not in image {image}'s /etc/passwd")]
    UnknownUser { user: String, image: String },
    #[error("bind mount: {0}")]
    Bind(#[from] crate::bind::BindError),
    #[error("hostname `{0}` is invalid (letters, digits, `-` and `.`, at most 63 characters)")]
    BadHostname(String),
    #[error("every host id range for user namespaces is taken (the host's table is `{0}`)")]
    NoIdRange(PathBuf),
    #[error("the host-wide table of user-namespace ranges")]
    HostIds(#[from] crate::hostids::HostIdsError),
    #[error("instance `{0}` does not exist")]
    NoInstance(String),
    #[error("the DNS resolver of VPC {vpc} could not start: {detail}")]
    Resolver { vpc: String, detail: String },
    #[error("instance {id} is {state:?}; cannot {action}")]
    BadState {
        id: String,
        state: InstanceState,
        action: &'static str,
    },
    #[error(
        "{kind} id `{id}` is invalid: expected `{kind}-` and 1 to 17 characters of a-z and 0-9"
    )]
    BadId { kind: &'static str, id: String },
    #[error("prefix `{0}` must be 1 to 10 characters of a-z and 0-9")]
    BadPrefix(String),
    #[error("{op} `{path}` failed")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
}

fn ioe<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
    move |err| RuntimeError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// Where the engine keeps its files and how it names what it creates.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Holds `images/` and `instances/` (and `state.json`, unless the state document is
    /// given to [`Runtime::open_with`]).
    pub data_dir: PathBuf,
    /// Every namespace and cgroup the engine creates is named `<prefix>-…` (cgroups live in a
    /// `<prefix>` directory), which is how `doctor` finds leaks.
    pub prefix: String,
    pub cgroup_root: PathBuf,
    /// Holds the host-wide table of user-namespace ranges every engine on the host shares
    /// ([`crate::hostids`]); `SPINDLE_HOST_DIR`, else `/var/lib/spindle-host`.
    pub host_dir: PathBuf,
}

impl RuntimeConfig {
    pub fn new(data_dir: impl Into<PathBuf>, prefix: &str) -> Self {
        RuntimeConfig {
            data_dir: data_dir.into(),
            prefix: prefix.into(),
            cgroup_root: "/sys/fs/cgroup".into(),
            host_dir: crate::hostids::default_host_dir(),
        }
    }
}

/// AWS instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

/// How the instance's main process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The memory cgroup's OOM killer fired during this run.
    pub oom_killed: bool,
    /// Human-readable summary, e.g. `exited with code 0`, `killed by signal 9 (out of memory)`.
    pub reason: String,
}

/// An instance as the engine tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub image_id: String,
    pub instance_type: String,
    pub limits: Limits,
    pub vpc_id: String,
    pub subnet_id: String,
    pub private_ip: Ipv4Addr,
    pub hostname: String,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub user_data: Option<String>,
    pub argv: Vec<String>,
    pub exec_path: String,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    pub state: InstanceState,
    /// Host pid of the instance's init while it runs, and its start time (pid reuse guard).
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
    pub last_exit: Option<ExitInfo>,
    /// Router-side veth name.
    port: String,
    pub launched_at: u64,
    /// When it was terminated (seconds since the epoch); the record goes an hour later.
    #[serde(default)]
    pub terminated_at: Option<u64>,
    /// Host directories bound into the instance, on every boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<BindMount>,
    /// The seccomp filter of every process in it (records from before filters: the default,
    /// which is what their next boot gets).
    #[serde(default)]
    pub seccomp: SeccompProfile,
    /// The host ids its ids map onto (its own user namespace); `None`: the host's user
    /// namespace (a filesystem without idmapped mounts, or a record from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<IdRange>,
}

/// How long a terminated instance stays listed, as in EC2.
pub const TERMINATED_KEPT_SECS: u64 = 3600;

/// What to launch, like `RunInstances`.
#[derive(Debug, Clone, Default)]
pub struct LaunchSpec {
    /// `ami-…` id or `name:tag`.
    pub image: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_groups: Vec<String>,
    /// Defaults to the AWS style `ip-10-200-1-2`.
    pub hostname: Option<String>,
    /// Run with `/bin/sh` before the entrypoint, like cloud-init's user scripts.
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Replaces the image's `cmd` (the entrypoint, if any, stays in front).
    pub command: Option<Vec<String>>,
    /// Extra `KEY=value` pairs on top of the image's environment.
    pub env: Vec<String>,
    /// Overrides the instance type's memory (MiB).
    pub memory_mib: Option<u64>,
    /// Host directories to bind read-write (the developer box's project directory). The
    /// caller decides who may ask for one; [`BindMount::checked`] has checked the paths.
    pub mounts: Vec<BindMount>,
    /// The seccomp filter (see [`crate::seccomp`]). Callers decide who may ask for a wider
    /// one (the daemon: a caller holding `instance:UseSeccompProfile`); the API never asks
    /// for `unconfined`.
    pub seccomp: SeccompProfile,
}

/// Something happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEvent {
    pub instance_id: String,
    pub state: InstanceState,
    pub exit: Option<ExitInfo>,
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: Ipv4Net,
    /// The router's network namespace (a name under `/run/netns`).
    pub netns: String,
    pub subnets: BTreeMap<String, Ipam>,
    next_port: u32,
    /// `EnableDnsSupport`: whether the resolver at base + 2 answers (see `engine/resolver.rs`).
    #[serde(default = "dns_support_default")]
    pub dns_support: bool,
    /// `EnableDnsHostnames`: whether the resolver also answers the instances' host names
    /// (`ip-A-B-C-D.<domain>` and their pointers). Off by default, as for a VPC on AWS.
    #[serde(default)]
    pub dns_hostnames: bool,
}

fn dns_support_default() -> bool {
    true
}

/// A peering connection between two VPC routers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peering {
    pub id: String,
    pub a: String,
    pub b: String,
    /// Selects the link network ([`net::peering_link`]) and the link name `x<index>`.
    pub index: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    vpcs: BTreeMap<String, Vpc>,
    peerings: BTreeMap<String, Peering>,
    groups: BTreeMap<String, SecurityGroup>,
    instances: BTreeMap<String, Instance>,
    next_peer_index: u32,
    /// Kernel objects being created, by the id of what they are for: saved before the first
    /// object exists and removed in the same save that records the finished VPC or instance
    /// (or after a failure is undone). [`Runtime::open`] undoes every intent it finds, so a
    /// crash mid-create leaves no namespace or cgroup that no record accounts for.
    #[serde(default)]
    intents: BTreeMap<String, Intent>,
    /// Connect endpoints by id ([`endpoint`]).
    #[serde(default)]
    endpoints: BTreeMap<String, Endpoint>,
}

impl State {
    fn live(&self) -> impl Iterator<Item = &Instance> {
        self.instances
            .values()
            .filter(|i| i.state != InstanceState::Terminated)
    }

    fn peers_of(&self, vpc: &str) -> Vec<Ipv4Net> {
        self.peerings
            .values()
            .filter_map(|p| {
                let other = if p.a == vpc {
                    &p.b
                } else if p.b == vpc {
                    &p.a
                } else {
                    return None;
                };
                self.vpcs.get(other).map(|v| v.cidr)
            })
            .collect()
    }

    fn members(&self) -> BTreeMap<String, Vec<Ipv4Addr>> {
        let mut m: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for i in self.live() {
            for g in &i.security_groups {
                m.entry(g.clone()).or_default().push(i.private_ip);
            }
        }
        for e in self.endpoints.values() {
            for g in &e.security_groups {
                m.entry(g.clone()).or_default().push(e.ip);
            }
        }
        // Stable rule text regardless of instance id order.
        m.values_mut().for_each(|v| v.sort());
        m
    }

    /// Gives an address back to its subnet (if both still exist).
    fn free_ip(&mut self, subnet: &str, ip: Ipv4Addr) {
        if let Some(ipam) = self
            .vpcs
            .values_mut()
            .find_map(|v| v.subnets.get_mut(subnet))
        {
            let _ = ipam.free(ip);
        }
    }

    fn find_subnet(&self, subnet: &str) -> Option<&Vpc> {
        self.vpcs.values().find(|v| v.subnets.contains_key(subnet))
    }
}

struct Inner {
    kernel: Arc<dyn Kernel>,
    cfg: RuntimeConfig,
    images: ImageStore,
    cgroups: CgroupLayout,
    state: Mutex<State>,
    /// Where `state` is saved after every change.
    doc: Arc<dyn StateDoc>,
    changed: Condvar,
    imds: Mutex<BTreeMap<String, ImdsServer>>,
    /// The daemon's SSH hook for the metadata service (`Runtime::set_imds_ssh`).
    imds_ssh: Mutex<crate::imds::SshHookSlot>,
    /// The daemon's DNS resolver hook, and each VPC's running resolver (its guard).
    resolver: Mutex<Option<Arc<dyn resolver::VpcResolver>>>,
    resolvers: Mutex<BTreeMap<String, Box<dyn Send>>>,
    subscribers: Mutex<Vec<Sender<InstanceEvent>>>,
    /// Whether new instances get user namespaces here (probed at open), or why not.
    userns: Result<(), String>,
    /// The host-wide range table, and this engine's name in it (its canonical data dir).
    host_ids: crate::hostids::HostIds,
    owner: PathBuf,
}

/// The runtime engine. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("prefix", &self.inner.cfg.prefix)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_id(kind: &str, prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{kind}/{prefix}/{}/{}/{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    format!("{kind}-{}", &hex::encode(Sha256::digest(seed))[..17])
}

/// Checks an id given by the caller: it names a network namespace and files, so it must be
/// `kind-` and a short run of lowercase letters and digits (the shape [`new_id`] makes).
fn check_id(kind: &'static str, id: &str) -> Result<(), RuntimeError> {
    let ok = id
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|r| {
            (1..=17).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::BadId {
            kind,
            id: id.into(),
        })
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !h.starts_with('-')
}

impl Runtime {
    /// Opens the engine: loads its state, adopts instances whose init is still running, and
    /// marks the others stopped (their exit as recorded by init, if it got to write it).
    /// Its state is the JSON file `state.json` in the data directory.
    pub fn open(cfg: RuntimeConfig, kernel: Arc<dyn Kernel>) -> Result<Self, RuntimeError> {
        let doc = FileDoc::arc(cfg.data_dir.join("state.json"));
        Self::open_with(cfg, kernel, doc)
    }

    /// Like [`Runtime::open`], with the state kept in `doc` (the daemon's SQLite store).
    pub fn open_with(
        cfg: RuntimeConfig,
        kernel: Arc<dyn Kernel>,
        doc: Arc<dyn StateDoc>,
    ) -> Result<Self, RuntimeError> {
        if cfg.prefix.is_empty()
            || cfg.prefix.len() > 10
            || !cfg
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(RuntimeError::BadPrefix(cfg.prefix.clone()));
        }
        let p = cfg.data_dir.join("instances");
        fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        let owner = fs::canonicalize(&cfg.data_dir).map_err(ioe("resolve", &cfg.data_dir))?;
        let host_ids = crate::hostids::HostIds::new(&cfg.host_dir);
        let images = ImageStore::open(cfg.data_dir.join("images"))?;
        let cgroups = CgroupLayout::detect(kernel.as_ref(), &cfg.cgroup_root);
        let userns = kernel.userns_support(images.root());
        let state: State = match doc.load().map_err(RuntimeError::State)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| RuntimeError::State(DocError::new(doc.name(), e)))?,
            None => State::default(),
        };
        let rt = Runtime {
            inner: Arc::new(Inner {
                kernel,
                cfg,
                images,
                cgroups,
                state: Mutex::new(state),
                doc,
                changed: Condvar::new(),
                imds: Mutex::new(BTreeMap::new()),
                imds_ssh: Mutex::new(None),
                resolver: Mutex::new(None),
                resolvers: Mutex::new(BTreeMap::new()),
                subscribers: Mutex::new(Vec::new()),
                userns,
                host_ids,
                owner,
            }),
        };
        rt.undo_intents()?;
        rt.reconcile_ranges()?;
        for v in rt.vpcs() {
            rt.start_imds(&v);
        }
        rt.adopt();
        Ok(rt)
    }

    /// Makes the host table's entries for this data dir those of its live instances (see
    /// [`crate::hostids`]).
    fn reconcile_ranges(&self) -> Result<(), RuntimeError> {
        let live: Vec<(String, IdRange)> = self
            .lock()
            .live()
            .filter_map(|i| Some((i.id.clone(), i.userns?)))
            .collect();
        let owner = &self.inner.owner;
        self.inner.host_ids.update(|t| t.reconcile(owner, &live))?;
        Ok(())
    }

    /// Gives `id`'s range back to the host table (best effort: a failure leaves the entry
    /// for the next reconcile at open).
    fn free_range(&self, id: &str) {
        let owner = &self.inner.owner;
        let _ = self.inner.host_ids.update(|t| t.free(owner, id));
    }

    /// Removes what creates a killed engine left half done (see [`State::intents`]).
    fn undo_intents(&self) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        if st.intents.is_empty() {
            return Ok(());
        }
        for (id, intent) in std::mem::take(&mut st.intents) {
            intent.undo(
                self.inner.kernel.as_ref(),
                &self.inner.cgroups,
                &self.inner.cfg.prefix,
                &id,
                &self.instance_dir(&id),
            );
            match intent {
                Intent::Instance { subnet, ip, .. } => st.free_ip(&subnet, ip),
                // The routers may have been given the link's wider policy: back to the
                // peerings on record (best effort, as the rest of an undo).
                Intent::Peering { a, b, .. } => {
                    for vpc in [a, b] {
                        if let Some(v) = st.vpcs.get(&vpc) {
                            let rules = net::router_rules(v.cidr, &st.peers_of(&vpc));
                            let _ = self.inner.kernel.nft_apply(Some(&v.netns), &rules);
                        }
                    }
                }
                Intent::Vpc { .. } => {}
            }
        }
        self.save(&st)
    }

    fn adopt(&self) {
        let running: Vec<Instance> = self
            .lock()
            .instances
            .values()
            .filter(|i| i.pid.is_some())
            .cloned()
            .collect();
        for rec in running {
            let pid = rec.pid.expect("filtered");
            let alive = self.inner.kernel.process_start_time(pid);
            if alive.is_some() && alive == rec.pid_start {
                self.watch(rec.id.clone(), pid);
            } else {
                self.inner.on_exit(&rec.id, pid, WaitOutcome::Gone);
            }
        }
    }

    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.cfg
    }

    /// Whether new instances get user namespaces of their own, or why not (see
    /// [`crate::userns`]).
    pub fn userns_support(&self) -> Result<(), &str> {
        self.inner
            .userns
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    pub fn cgroup_layout(&self) -> &CgroupLayout {
        &self.inner.cgroups
    }

    /// Receives every later instance state change (exit, stop, terminate).
    pub fn subscribe(&self) -> Receiver<InstanceEvent> {
        let (tx, rx) = channel();
        self.inner.subscribers.lock().unwrap().push(tx);
        rx
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }

    fn netns_name(&self, id: &str) -> String {
        format!("{}-{id}", self.inner.cfg.prefix)
    }

    fn save(&self, st: &State) -> Result<(), RuntimeError> {
        self.inner.save(st).map_err(RuntimeError::State)
    }
}

/// The search path used when an image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Reads init's status file: `exit N`, `signal N` or `boot-failed STEP`.
fn parse_status(text: &str, waited: WaitOutcome, oom: bool) -> ExitInfo {
    let line = text.lines().next().unwrap_or("").trim();
    let (mut code, mut signal) = (None, None);
    let mut reason = if let Some(n) = line.strip_prefix("exit ") {
        code = n.parse().ok();
        format!("exited with code {n}")
    } else if let Some(n) = line.strip_prefix("signal ") {
        signal = n.parse().ok();
        format!("killed by signal {n}")
    } else if let Some(step) = line.strip_prefix("boot-failed ") {
        code = Some(127);
        format!("boot failed at `{step}` (see the console output)")
    } else if let WaitOutcome::Status(s) = waited {
        // Init itself was killed (stop escalated to SIGKILL, or the pid namespace was torn down).
        if libc::WIFSIGNALED(s) {
            signal = Some(libc::WTERMSIG(s));
            format!("instance killed by signal {}", libc::WTERMSIG(s))
        } else {
            code = Some(libc::WEXITSTATUS(s));
            format!("init exited with code {}", libc::WEXITSTATUS(s))
        }
    } else {
        "found stopped after a daemon restart; exit status unknown".into()
    };
    if oom {
        reason.push_str(" (out of memory)");
    }
    ExitInfo {
        code,
        signal,
        oom_killed: oom,
        reason,
    }
}

impl Inner {
    fn save(&self, st: &State) -> Result<(), DocError> {
        let body = serde_json::to_vec(st).expect("state serializes");
        self.doc.save(&body)
    }

    fn on_exit(&self, id: &str, pid: u32, outcome: WaitOutcome) {
        let mut st = self.state.lock().unwrap();
        let Some(rec) = st.instances.get_mut(id) else {
            return;
        };
        if rec.pid != Some(pid) {
            return;
        }
        let dir = self.cfg.data_dir.join("instances").join(id);
        let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
        let oom = self
            .cgroups
            .oom_kills(self.kernel.as_ref(), &self.cfg.prefix, id)
            > 0;
        rec.last_exit = Some(parse_status(&status, outcome, oom));
        rec.pid = None;
        rec.pid_start = None;
        if rec.state != InstanceState::Terminated {
            rec.state = InstanceState::Stopped;
        }
        let rec = rec.clone();
        self.cgroups
            .remove(self.kernel.as_ref(), &self.cfg.prefix, id);
        // An exit seen here is seen again at the next open (init's status file and the dead
        // pid say the same), so a failed save loses nothing.
        let _ = self.save(&st);
        drop(st);
        self.changed.notify_all();
        self.notify(&rec);
    }

    fn notify(&self, rec: &Instance) {
        let ev = InstanceEvent {
            instance_id: rec.id.clone(),
            state: rec.state,
            exit: rec.last_exit.clone(),
        };
        self.subscribers
            .lock()
            .unwrap()
            .retain(|tx| tx.send(ev.clone()).is_ok());
    }
}
#[cfg(test)]
mod tests;
