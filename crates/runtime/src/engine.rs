//! The engine the daemon composes: [`Runtime`] owns the image store, VPCs, subnets, security
//! groups, peerings and instances of one name prefix, saves them whole after every change in
//! a [`StateDoc`] (the daemon's SQLite store; `state.json` in its data directory by default),
//! and adopts running instances when reopened.
//!
//! Multi-step operations (VPC create, launch, peering) undo what they did when a step fails,
//! so a failed request leaves nothing half-created.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bind::{check_guest_in_layers, BindMount};
use crate::boot::{plan_boot, BootSpec};
use crate::cgroup::{instance_type, CgroupError, CgroupLayout, Limits};
use crate::cidr::{CidrError, Ipam, Ipv4Net};
use crate::durable::{DocError, FileDoc, StateDoc};
use crate::image::{Image, ImageError, ImageStore};
use crate::imds::{ImdsServer, Metadata};
use crate::intent::Intent;
use crate::kernel::{Kernel, KernelError, WaitOutcome, NETNS_DIR};
use crate::net::{self, NetError, SecurityGroup, SgRule};
use crate::seccomp::SeccompProfile;
use crate::userns::IdRange;
use std::sync::Weak;

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
            if let Intent::Instance { subnet, ip, .. } = intent {
                st.free_ip(&subnet, ip);
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

    // ----------------------------------------------------------------------------- networks

    /// Creates a VPC: a router namespace with a bridge and a forwarding policy.
    pub fn create_vpc(&self, id: Option<&str>, cidr: &str) -> Result<Vpc, RuntimeError> {
        if let Some(id) = id {
            check_id("vpc", id)?;
        }
        let cidr: Ipv4Net = cidr.parse()?;
        let k = &self.inner.kernel;
        net::check_vpc_cidr(cidr, &k.host_routes()?)?;
        let mut st = self.lock();
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("vpc", &self.inner.cfg.prefix));
        if st.vpcs.contains_key(&id) {
            return Err(NetError::Exists { kind: "VPC", id }.into());
        }
        let netns = self.netns_name(&id);
        st.intents.insert(
            id.clone(),
            Intent::Vpc {
                netns: netns.clone(),
            },
        );
        if let Err(e) = self.save(&st) {
            st.intents.remove(&id);
            return Err(e);
        }
        let res = (|| -> Result<(), RuntimeError> {
            k.netns_create(&netns)?;
            k.ip_batch(Some(&netns), &net::router_setup(&[]))?;
            k.sysctl(&netns, "net.ipv4.ip_forward", "1")?;
            k.nft_apply(Some(&netns), &net::router_rules(cidr, &[]))?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = k.netns_delete(&netns);
            st.intents.remove(&id);
            let _ = self.save(&st);
            return Err(e);
        }
        st.intents.remove(&id);
        let vpc = Vpc {
            id: id.clone(),
            cidr,
            netns,
            subnets: BTreeMap::new(),
            next_port: 0,
        };
        st.vpcs.insert(id, vpc.clone());
        self.save(&st)?;
        drop(st);
        self.start_imds(&vpc);
        Ok(vpc)
    }

    /// Deletes a VPC with its subnets and security groups. Refused while instances or
    /// peerings use it.
    pub fn delete_vpc(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let vpc = st
            .vpcs
            .get(id)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: id.into(),
            })?
            .clone();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.vpc_id == id)
            .map(|i| i.id.clone())
            .chain(
                st.peerings
                    .values()
                    .filter(|p| p.a == id || p.b == id)
                    .map(|p| p.id.clone()),
            )
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "VPC",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        let server = self.inner.imds.lock().unwrap().remove(id);
        self.inner.kernel.netns_delete(&vpc.netns)?;
        st.vpcs.remove(id);
        st.groups.retain(|_, g| g.vpc_id != id);
        // Terminated instances keep their records (as EC2 lists them for a while after).
        self.save(&st)?;
        drop(st);
        // Stopping the server joins its thread, which may be waiting for the state lock.
        drop(server);
        Ok(())
    }

    pub fn vpcs(&self) -> Vec<Vpc> {
        self.lock().vpcs.values().cloned().collect()
    }

    /// Adds a subnet (its gateway goes on the VPC's bridge).
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        id: Option<&str>,
        cidr: &str,
    ) -> Result<String, RuntimeError> {
        if let Some(id) = id {
            check_id("subnet", id)?;
        }
        let cidr: Ipv4Net = cidr.parse()?;
        let mut st = self.lock();
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("subnet", &self.inner.cfg.prefix));
        if st.find_subnet(&id).is_some() {
            return Err(NetError::Exists { kind: "subnet", id }.into());
        }
        let vpc = st.vpcs.get_mut(vpc_id).ok_or_else(|| NetError::NotFound {
            kind: "VPC",
            id: vpc_id.into(),
        })?;
        if !vpc.cidr.contains_net(&cidr) {
            return Err(NetError::SubnetOutsideVpc {
                subnet: cidr,
                vpc: vpc_id.into(),
                cidr: vpc.cidr,
            }
            .into());
        }
        if let Some((oid, o)) = vpc.subnets.iter().find(|(_, s)| s.cidr.overlaps(&cidr)) {
            return Err(NetError::SubnetOverlap {
                subnet: cidr,
                other_id: oid.clone(),
                other: o.cidr,
                vpc: vpc_id.into(),
            }
            .into());
        }
        let ipam = Ipam::new(cidr)?;
        self.inner.kernel.ip_batch(
            Some(&vpc.netns),
            &format!("addr add {}/{} dev br0\n", ipam.gateway(), cidr.prefix()),
        )?;
        vpc.subnets.insert(id.clone(), ipam);
        self.save(&st)?;
        Ok(id)
    }

    pub fn delete_subnet(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.subnet_id == id)
            .map(|i| i.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "subnet",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        let vpc = st
            .vpcs
            .values_mut()
            .find(|v| v.subnets.contains_key(id))
            .ok_or_else(|| NetError::NotFound {
                kind: "subnet",
                id: id.into(),
            })?;
        let ipam = &vpc.subnets[id];
        self.inner.kernel.ip_batch(
            Some(&vpc.netns),
            &format!(
                "addr del {}/{} dev br0\n",
                ipam.gateway(),
                ipam.cidr.prefix()
            ),
        )?;
        vpc.subnets.remove(id);
        self.save(&st)
    }

    /// Creates or replaces a security group's rules, re-applying them to every instance that
    /// is a member or references the group. `egress: None` means AWS's allow-all default.
    pub fn put_security_group(
        &self,
        id: &str,
        vpc_id: &str,
        ingress: Vec<SgRule>,
        egress: Option<Vec<SgRule>>,
    ) -> Result<SecurityGroup, RuntimeError> {
        check_id("sg", id)?;
        for r in ingress.iter().chain(egress.iter().flatten()) {
            r.validate()?;
        }
        let mut st = self.lock();
        if !st.vpcs.contains_key(vpc_id) {
            return Err(NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            }
            .into());
        }
        if let Some(old) = st.groups.get(id) {
            if old.vpc_id != vpc_id {
                return Err(NetError::WrongVpc {
                    sg: id.into(),
                    sg_vpc: old.vpc_id.clone(),
                    vpc: vpc_id.into(),
                }
                .into());
            }
        }
        let sg = SecurityGroup {
            id: id.into(),
            vpc_id: vpc_id.into(),
            ingress,
            egress: egress.unwrap_or_else(SecurityGroup::default_egress),
        };
        let previous = st.groups.insert(id.into(), sg.clone());
        if let Err(e) = self.refresh_rules(&st, &[id.to_string()], true) {
            // Put the old rules back where they were applied.
            match previous {
                Some(p) => st.groups.insert(id.into(), p),
                None => st.groups.remove(id),
            };
            let _ = self.refresh_rules(&st, &[id.to_string()], true);
            return Err(e);
        }
        self.save(&st)?;
        Ok(sg)
    }

    pub fn delete_security_group(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.security_groups.iter().any(|g| g == id))
            .map(|i| i.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "security group",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        st.groups.remove(id).ok_or_else(|| NetError::NotFound {
            kind: "security group",
            id: id.into(),
        })?;
        self.refresh_rules(&st, &[id.to_string()], true)?;
        self.save(&st)
    }

    pub fn security_group(&self, id: &str) -> Option<SecurityGroup> {
        self.lock().groups.get(id).cloned()
    }

    /// Re-applies the firewall of every live instance whose rules reference one of `groups`
    /// (their membership changed) and, with `members`, of every instance in one of them (their
    /// rules changed).
    fn refresh_rules(
        &self,
        st: &State,
        groups: &[String],
        members: bool,
    ) -> Result<(), RuntimeError> {
        let addrs = st.members();
        for inst in st.live() {
            let own: Vec<&SecurityGroup> = inst
                .security_groups
                .iter()
                .filter_map(|g| st.groups.get(g))
                .collect();
            let affected = (members && inst.security_groups.iter().any(|g| groups.contains(g)))
                || own.iter().any(|g| {
                    g.ingress
                        .iter()
                        .chain(&g.egress)
                        .any(|r| matches!(&r.peer, net::Peer::Group(x) if groups.contains(x)))
                });
            if affected {
                self.inner.kernel.nft_apply(
                    Some(&self.netns_name(&inst.id)),
                    &net::instance_rules(&own, &addrs),
                )?;
            }
        }
        Ok(())
    }

    /// Peers two VPCs: a veth link between their routers, a route each way, and each router's
    /// forwarding policy widened to the other's CIDR (and only that).
    pub fn create_peering(
        &self,
        id: Option<&str>,
        a: &str,
        b: &str,
    ) -> Result<Peering, RuntimeError> {
        if let Some(id) = id {
            check_id("pcx", id)?;
        }
        let mut st = self.lock();
        let va = st
            .vpcs
            .get(a)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: a.into(),
            })?
            .clone();
        let vb = st
            .vpcs
            .get(b)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: b.into(),
            })?
            .clone();
        let bad = |reason| NetError::BadPeering {
            a: a.into(),
            a_cidr: va.cidr,
            b: b.into(),
            b_cidr: vb.cidr,
            reason,
        };
        if a == b {
            return Err(bad("a VPC cannot peer with itself").into());
        }
        if va.cidr.overlaps(&vb.cidr) {
            return Err(bad("their CIDRs overlap").into());
        }
        if st
            .peerings
            .values()
            .any(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
        {
            return Err(bad("they are already peered").into());
        }
        if st.peers_of(a).iter().any(|c| c.overlaps(&vb.cidr))
            || st.peers_of(b).iter().any(|c| c.overlaps(&va.cidr))
        {
            return Err(bad("one of them is already peered with an overlapping CIDR").into());
        }
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("pcx", &self.inner.cfg.prefix));
        if st.peerings.contains_key(&id) {
            return Err(NetError::Exists {
                kind: "peering",
                id,
            }
            .into());
        }
        let index = st.next_peer_index;
        let (_, a_ip, b_ip) = net::peering_link(index);
        let link = format!("x{index}");
        let k = &self.inner.kernel;
        k.ip_batch(
            Some(&va.netns),
            &net::peering_setup(&link, &vb.netns, a_ip, vb.cidr, b_ip),
        )?;
        let p = Peering {
            id: id.clone(),
            a: a.into(),
            b: b.into(),
            index,
        };
        st.peerings.insert(id.clone(), p.clone());
        let res = (|| -> Result<(), RuntimeError> {
            k.ip_batch(
                Some(&vb.netns),
                &net::peering_finish(&link, b_ip, va.cidr, a_ip),
            )?;
            k.nft_apply(
                Some(&va.netns),
                &net::router_rules(va.cidr, &st.peers_of(a)),
            )?;
            k.nft_apply(
                Some(&vb.netns),
                &net::router_rules(vb.cidr, &st.peers_of(b)),
            )?;
            Ok(())
        })();
        if let Err(e) = res {
            st.peerings.remove(&id);
            let _ = k.ip_batch(Some(&va.netns), &format!("link del {link}\n"));
            let _ = k.nft_apply(
                Some(&va.netns),
                &net::router_rules(va.cidr, &st.peers_of(a)),
            );
            let _ = k.nft_apply(
                Some(&vb.netns),
                &net::router_rules(vb.cidr, &st.peers_of(b)),
            );
            return Err(e);
        }
        st.next_peer_index += 1;
        self.save(&st)?;
        Ok(p)
    }

    pub fn delete_peering(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let p = st.peerings.remove(id).ok_or_else(|| NetError::NotFound {
            kind: "peering",
            id: id.into(),
        })?;
        let k = &self.inner.kernel;
        let (va, vb) = (st.vpcs[&p.a].clone(), st.vpcs[&p.b].clone());
        k.ip_batch(Some(&va.netns), &format!("link del x{}\n", p.index))?;
        k.nft_apply(
            Some(&va.netns),
            &net::router_rules(va.cidr, &st.peers_of(&p.a)),
        )?;
        k.nft_apply(
            Some(&vb.netns),
            &net::router_rules(vb.cidr, &st.peers_of(&p.b)),
        )?;
        self.save(&st)
    }

    pub fn peerings(&self) -> Vec<Peering> {
        self.lock().peerings.values().cloned().collect()
    }

    /// Runs `ip -batch` commands in a VPC's router namespace (routes, diagnostics).
    pub fn router_ip(&self, vpc_id: &str, script: &str) -> Result<(), RuntimeError> {
        let ns = self
            .lock()
            .vpcs
            .get(vpc_id)
            .map(|v| v.netns.clone())
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            })?;
        Ok(self.inner.kernel.ip_batch(Some(&ns), script)?)
    }

    /// Opens a TCP connection from inside a VPC's router namespace (for the load balancer and
    /// the bastion, which live in the daemon).
    pub fn connect_from_vpc(
        &self,
        vpc_id: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, RuntimeError> {
        let ns = self
            .lock()
            .vpcs
            .get(vpc_id)
            .map(|v| v.netns.clone())
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            })?;
        Ok(self.inner.kernel.tcp_connect_in(&ns, addr, timeout)?)
    }

    /// Opens a TCP connection from inside an instance's network namespace, as the instance would.
    pub fn connect_from_instance(
        &self,
        id: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, RuntimeError> {
        if !self.lock().instances.contains_key(id) {
            return Err(RuntimeError::NoInstance(id.into()));
        }
        Ok(self
            .inner
            .kernel
            .tcp_connect_in(&self.netns_name(id), addr, timeout)?)
    }

    // ---------------------------------------------------------------------------- instances

    fn resolve_exec(
        &self,
        image: &Image,
        command: Option<&Vec<String>>,
        env: &[String],
    ) -> Result<(String, Vec<String>), RuntimeError> {
        let mut argv = image.config.entrypoint.clone();
        argv.extend(command.cloned().unwrap_or_else(|| image.config.cmd.clone()));
        let Some(prog) = argv.first().cloned() else {
            return Err(RuntimeError::NoCommand {
                image: image.id.clone(),
            });
        };
        let missing = || RuntimeError::EntrypointMissing {
            image: image.id.clone(),
            program: prog.clone(),
        };
        let store = &self.inner.images;
        let exec_path = if prog.contains('/') {
            store.resolve_in_image(image, &prog).ok_or_else(missing)?;
            prog.clone()
        } else {
            let path = env
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|d| format!("{}/{prog}", d.trim_end_matches('/')))
                .find(|p| store.resolve_in_image(image, p).is_some())
                .ok_or_else(missing)?
        };
        Ok((exec_path, argv))
    }

    fn resolve_user(&self, image: &Image) -> Result<(u32, u32), RuntimeError> {
        let user = image.config.user.trim();
        if user.is_empty() {
            return Ok((0, 0));
        }
        let (u, g) = user
            .split_once(':')
            .map(|(u, g)| (u, Some(g)))
            .unwrap_or((user, None));
        let unknown = || RuntimeError::UnknownUser {
            user: user.into(),
            image: image.id.clone(),
        };
        let (uid, pw_gid) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => {
                let passwd = self
                    .inner
                    .images
                    .read_in_image(image, "/etc/passwd")
                    .ok_or_else(unknown)?;
                passwd
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 3 && f[0] == u)
                    .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                    .ok_or_else(unknown)?
            }
        };
        let gid = match g {
            Some(g) => g.parse().map_err(|_| unknown())?,
            None => pw_gid,
        };
        Ok((uid, gid))
    }

    /// Launches an instance and returns once its init process has started.
    pub fn launch(&self, spec: LaunchSpec) -> Result<Instance, RuntimeError> {
        let image = self.inner.images.inspect(&spec.image)?;
        let itype = instance_type(&spec.instance_type)?;
        let limits = Limits::from_type(&itype, spec.memory_mib);
        let have = limits.memory_bytes >> 20;
        if image.config.min_memory_mib > have {
            return Err(RuntimeError::MemoryTooLow {
                instance_type: itype.name.into(),
                have,
                image: image.id.clone(),
                need: image.config.min_memory_mib,
            });
        }
        let mut env = image.config.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(spec.env.iter().cloned());
        let (exec_path, argv) = self.resolve_exec(&image, spec.command.as_ref(), &env)?;
        let (uid, gid) = self.resolve_user(&image)?;
        let layers = self.inner.images.layer_dirs(&image);
        for m in &spec.mounts {
            check_guest_in_layers(&m.guest, &layers)?;
        }
        if let Some(h) = &spec.hostname {
            if !valid_hostname(h) {
                return Err(RuntimeError::BadHostname(h.clone()));
            }
        }
        let mut st = self.lock();
        let vpc = st
            .find_subnet(&spec.subnet_id)
            .ok_or_else(|| NetError::NotFound {
                kind: "subnet",
                id: spec.subnet_id.clone(),
            })?
            .clone();
        for g in &spec.security_groups {
            let sg = st.groups.get(g).ok_or_else(|| NetError::NotFound {
                kind: "security group",
                id: g.clone(),
            })?;
            if sg.vpc_id != vpc.id {
                return Err(NetError::WrongVpc {
                    sg: g.clone(),
                    sg_vpc: sg.vpc_id.clone(),
                    vpc: vpc.id.clone(),
                }
                .into());
            }
        }
        let id = new_id("i", &self.inner.cfg.prefix);
        let vpc_mut = st.vpcs.get_mut(&vpc.id).expect("found above");
        let ipam = vpc_mut
            .subnets
            .get_mut(&spec.subnet_id)
            .expect("found above");
        let ip = ipam.allocate()?;
        let port = format!("p{}", vpc_mut.next_port);
        vpc_mut.next_port += 1;
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| format!("ip-{}", ip.to_string().replace('.', "-")));
        env.push(format!("HOSTNAME={hostname}"));
        let userns = match &self.inner.userns {
            Ok(()) => {
                let owner = &self.inner.owner;
                let range = match self.inner.host_ids.update(|t| {
                    t.forget_missing(|dir| dir.join("instances").is_dir());
                    t.allocate(owner, &id)
                }) {
                    Ok(Some(r)) => Ok(r),
                    Ok(None) => Err(RuntimeError::NoIdRange(self.inner.host_ids.path())),
                    Err(e) => Err(RuntimeError::from(e)),
                };
                match range {
                    Ok(r) => Some(r),
                    Err(e) => {
                        if let Some(ipam) = st
                            .vpcs
                            .get_mut(&vpc.id)
                            .and_then(|v| v.subnets.get_mut(&spec.subnet_id))
                        {
                            let _ = ipam.free(ip);
                        }
                        return Err(e);
                    }
                }
            }
            Err(_) => None,
        };
        let workdir = if image.config.workdir.is_empty() {
            "/".to_string()
        } else {
            image.config.workdir.clone()
        };
        let mut rec = Instance {
            id: id.clone(),
            image_id: image.id.clone(),
            instance_type: itype.name.into(),
            limits,
            vpc_id: vpc.id.clone(),
            subnet_id: spec.subnet_id.clone(),
            private_ip: ip,
            hostname,
            security_groups: spec.security_groups.clone(),
            tags: spec.tags.clone(),
            user_data: spec.user_data.clone(),
            argv,
            exec_path,
            env,
            workdir,
            uid,
            gid,
            state: InstanceState::Pending,
            pid: None,
            pid_start: None,
            last_exit: None,
            port,
            launched_at: now_secs(),
            terminated_at: None,
            mounts: spec.mounts.clone(),
            seccomp: spec.seccomp,
            userns,
        };
        st.intents.insert(
            id.clone(),
            Intent::Instance {
                netns: self.netns_name(&id),
                subnet: spec.subnet_id.clone(),
                ip,
            },
        );
        if let Err(e) = self.save(&st) {
            st.intents.remove(&id);
            st.free_ip(&spec.subnet_id, ip);
            return Err(e);
        }
        // Membership is part of the rules of this and other instances: count the new one in.
        st.instances.insert(id.clone(), rec.clone());
        let res = self.provision(&st, &rec, &image, &vpc);
        st.intents.remove(&id);
        match res {
            Ok(pid) => {
                rec.pid = Some(pid);
                rec.pid_start = self.inner.kernel.process_start_time(pid);
                rec.state = InstanceState::Running;
                st.instances.insert(id.clone(), rec.clone());
                let _ = self.refresh_rules(&st, &rec.security_groups, false);
                self.save(&st)?;
                drop(st);
                self.watch(id, pid);
                Ok(rec)
            }
            Err(e) => {
                st.instances.remove(&id);
                st.free_ip(&spec.subnet_id, ip);
                self.release(&rec);
                if rec.userns.is_some() {
                    self.free_range(&id);
                }
                let _ = self.save(&st);
                Err(e)
            }
        }
    }

    fn instance_dir(&self, id: &str) -> PathBuf {
        self.inner.cfg.data_dir.join("instances").join(id)
    }

    /// Everything a launch creates, in order; `release` undoes it.
    fn provision(
        &self,
        st: &State,
        rec: &Instance,
        image: &Image,
        vpc: &Vpc,
    ) -> Result<u32, RuntimeError> {
        let dir = self.instance_dir(&rec.id);
        for d in [
            "upper/etc",
            "upper/var/lib/cloud/instance",
            "work",
            "rootfs",
        ] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        }
        let gw = vpc.subnets[&rec.subnet_id].gateway();
        let files = [
            ("upper/etc/hostname", format!("{}\n", rec.hostname)),
            (
                "upper/etc/hosts",
                format!(
                    "127.0.0.1\tlocalhost\n{}\t{}\n",
                    rec.private_ip, rec.hostname
                ),
            ),
            // The VPC router address; a DNS service may answer there later.
            ("upper/etc/resolv.conf", format!("nameserver {gw}\n")),
        ];
        for (name, content) in files {
            let p = dir.join(name);
            fs::write(&p, content).map_err(ioe("write", &p))?;
        }
        let ud_path = "/var/lib/cloud/instance/user-data.txt";
        if let Some(ud) = &rec.user_data {
            let p = dir.join("upper").join(&ud_path[1..]);
            fs::write(&p, ud).map_err(ioe("write", &p))?;
        }
        // What is written above belongs to the instance's root.
        let k = self.inner.kernel.as_ref();
        if let Some(range) = rec.userns {
            k.chown_tree(&dir.join("upper"), range)?;
        }
        let ns = self.netns_name(&rec.id);
        k.netns_create(&ns)?;
        let prefix_len = vpc.subnets[&rec.subnet_id].cidr.prefix();
        let own: Vec<&SecurityGroup> = rec
            .security_groups
            .iter()
            .filter_map(|g| st.groups.get(g))
            .collect();
        let rules = net::instance_rules(&own, &st.members());
        // The links, the firewall, the cgroups and init's root are independent: set them up
        // in parallel (each `ip`/`nft` run is a process start). Init waits for the network
        // (`ready`) before it runs anything from the image.
        std::thread::scope(|s| {
            let links = s.spawn(|| -> Result<(), KernelError> {
                k.ip_batch(
                    Some(&ns),
                    &net::instance_setup(&rec.port, &vpc.netns, rec.private_ip, prefix_len, gw),
                )?;
                k.bridge_port_up(&vpc.netns, "br0", &rec.port)
            });
            let firewall = s.spawn(|| k.nft_apply(Some(&ns), &rules));
            let mut network = Some((links, firewall));
            let mut ready = || -> Result<(), KernelError> {
                let Some((links, firewall)) = network.take() else {
                    return Ok(());
                };
                let joined = |r: std::thread::Result<Result<(), KernelError>>| {
                    r.unwrap_or_else(|_| {
                        Err(KernelError::io(
                            "network setup",
                            io::Error::other("thread panicked"),
                        ))
                    })
                };
                // Wait for both, so neither still runs when the caller cleans up.
                let (l, f) = (joined(links.join()), joined(firewall.join()));
                l.and(f)
            };
            let booted = self
                .inner
                .cgroups
                .create(k, &self.inner.cfg.prefix, &rec.id, &rec.limits)
                .map_err(RuntimeError::from)
                .and_then(|()| self.spawn_init(rec, image, true, &mut ready));
            // When the cgroups or the clone failed, `ready` never ran: still wait for the
            // network threads (the scope would, but their errors don't matter then).
            let _ = ready();
            booted
        })
    }

    /// Creates the cgroups and clones init. Used by start.
    fn boot(&self, rec: &Instance, image: &Image) -> Result<u32, RuntimeError> {
        let prefix = &self.inner.cfg.prefix;
        self.inner
            .cgroups
            .create(self.inner.kernel.as_ref(), prefix, &rec.id, &rec.limits)?;
        self.spawn_init(rec, image, false, &mut || Ok(()))
    }

    /// Clones init; removes the instance's cgroups if that fails. User data runs on the first
    /// boot only, as cloud-init runs user scripts once per instance.
    fn spawn_init(
        &self,
        rec: &Instance,
        image: &Image,
        first_boot: bool,
        ready: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<u32, RuntimeError> {
        let prefix = &self.inner.cfg.prefix;
        let cg = &self.inner.cgroups;
        let dir = self.instance_dir(&rec.id);
        let spec = BootSpec {
            hostname: &rec.hostname,
            netns_path: Path::new(NETNS_DIR).join(self.netns_name(&rec.id)),
            cgroup_procs: cg.procs_files(prefix, &rec.id),
            layers: self.inner.images.layer_dirs(image),
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            console_log: dir.join("console.log"),
            status_file: dir.join("status"),
            user_data_path: rec
                .user_data
                .as_ref()
                .filter(|_| first_boot)
                .map(|_| "/var/lib/cloud/instance/user-data.txt"),
            exec_path: rec.exec_path.clone(),
            argv: rec.argv.clone(),
            env: rec.env.clone(),
            workdir: rec.workdir.clone(),
            uid: rec.uid,
            gid: rec.gid,
            mounts: rec.mounts.clone(),
            seccomp: rec.seccomp,
            userns: rec.userns.map(|r| (r, dir.join("lower"))),
        };
        match self.inner.kernel.spawn_instance(&plan_boot(&spec), ready) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                cg.remove(self.inner.kernel.as_ref(), prefix, &rec.id);
                Err(e.into())
            }
        }
    }

    /// Removes everything `provision` may have created for `rec` (best effort, idempotent).
    fn release(&self, rec: &Instance) {
        let k = &self.inner.kernel;
        if let Some(pid) = rec.pid {
            let _ = k.signal(pid, libc::SIGKILL);
        }
        let _ = k.netns_delete(&self.netns_name(&rec.id));
        self.inner
            .cgroups
            .remove(k.as_ref(), &self.inner.cfg.prefix, &rec.id);
        let _ = fs::remove_dir_all(self.instance_dir(&rec.id));
    }

    /// Starts the VPC's metadata service on its router (see [`crate::imds`]).
    fn start_imds(&self, vpc: &Vpc) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let vpc_id = vpc.id.clone();
        let lookup = Box::new(move |ip: Ipv4Addr| {
            let inner = weak.upgrade()?;
            let st = inner.state.lock().unwrap();
            let rec = st
                .live()
                .find(|i| i.vpc_id == vpc_id && i.private_ip == ip && i.pid.is_some())?;
            Some(Metadata {
                instance_id: rec.id.clone(),
                image_id: rec.image_id.clone(),
                instance_type: rec.instance_type.clone(),
                local_ipv4: rec.private_ip.to_string(),
                hostname: rec.hostname.clone(),
                user_data: rec.user_data.clone(),
                tags: rec.tags.clone(),
            })
        });
        // The metadata service is a convenience; instances run without it.
        if let Ok(l) = self
            .inner
            .kernel
            .tcp_listen_in(&vpc.netns, "169.254.169.254:80")
        {
            self.inner
                .imds
                .lock()
                .unwrap()
                .insert(vpc.id.clone(), ImdsServer::start(&vpc.id, l, lookup));
        }
    }

    fn watch(&self, id: String, pid: u32) {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("wait-{id}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let outcome = inner.kernel.wait_exit(pid).unwrap_or(WaitOutcome::Gone);
                inner.on_exit(&id, pid, outcome);
            })
            .expect("spawn waiter thread");
    }

    /// Stops a running instance: SIGTERM to its entrypoint, SIGKILL to the whole instance after
    /// `grace`. Its disk (upper dir), address and network stay.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<Instance, RuntimeError> {
        let pid = {
            let mut st = self.lock();
            let rec = st
                .instances
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NoInstance(id.into()))?;
            match (rec.state, rec.pid) {
                (InstanceState::Stopped, _) => return Ok(rec.clone()),
                (InstanceState::Running | InstanceState::Stopping, Some(pid)) => {
                    rec.state = InstanceState::Stopping;
                    pid
                }
                (state, _) => {
                    return Err(RuntimeError::BadState {
                        id: id.into(),
                        state,
                        action: "stop",
                    })
                }
            }
        };
        self.inner.kernel.signal(pid, libc::SIGTERM)?;
        if !self.wait_stopped(id, grace) {
            self.inner.kernel.signal(pid, libc::SIGKILL)?;
            self.wait_stopped(id, Duration::from_secs(10));
        }
        self.describe(id)
    }

    fn wait_stopped(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.instances.get(id).is_none_or(|i| i.pid.is_none()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.inner.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Starts a stopped instance again from its own disk.
    pub fn start(&self, id: &str) -> Result<Instance, RuntimeError> {
        let mut st = self.lock();
        let rec = st
            .instances
            .get(id)
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))?
            .clone();
        if rec.state != InstanceState::Stopped {
            return Err(RuntimeError::BadState {
                id: id.into(),
                state: rec.state,
                action: "start",
            });
        }
        let image = self.inner.images.inspect(&rec.image_id)?;
        let pid = self.boot(&rec, &image)?;
        let rec = st.instances.get_mut(id).expect("present");
        rec.pid = Some(pid);
        rec.pid_start = self.inner.kernel.process_start_time(pid);
        rec.state = InstanceState::Running;
        let rec = rec.clone();
        self.save(&st)?;
        drop(st);
        self.watch(id.into(), pid);
        self.inner.notify(&rec);
        Ok(rec)
    }

    /// Terminates an instance: stops it, then removes its network, cgroups and disk and frees
    /// its address. The record stays, in state `terminated`.
    pub fn terminate(&self, id: &str, grace: Duration) -> Result<Instance, RuntimeError> {
        let state = self.describe(id)?.state;
        match state {
            InstanceState::Terminated => return self.describe(id),
            InstanceState::Running | InstanceState::Stopping => {
                self.stop(id, grace)?;
            }
            _ => {}
        }
        let mut st = self.lock();
        let rec = st
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))?;
        if rec.pid.is_some() {
            return Err(RuntimeError::BadState {
                id: id.into(),
                state: rec.state,
                action: "terminate (it did not stop)",
            });
        }
        self.release(&rec);
        if let Some(ipam) = st
            .vpcs
            .get_mut(&rec.vpc_id)
            .and_then(|v| v.subnets.get_mut(&rec.subnet_id))
        {
            let _ = ipam.free(rec.private_ip);
        }
        if rec.userns.is_some() {
            self.free_range(id);
        }
        let now = now_secs();
        let r = st.instances.get_mut(id).expect("present");
        r.state = InstanceState::Terminated;
        r.terminated_at = Some(now);
        let r = r.clone();
        st.instances.retain(|_, i| {
            i.terminated_at
                .is_none_or(|t| now.saturating_sub(t) < TERMINATED_KEPT_SECS)
        });
        let _ = self.refresh_rules(&st, &r.security_groups, false);
        self.save(&st)?;
        drop(st);
        self.inner.notify(&r);
        Ok(r)
    }

    pub fn describe(&self, id: &str) -> Result<Instance, RuntimeError> {
        self.lock()
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))
    }

    pub fn list(&self) -> Vec<Instance> {
        self.lock().instances.values().cloned().collect()
    }

    /// The instance's console output so far.
    pub fn console_output(&self, id: &str) -> Result<String, RuntimeError> {
        self.describe(id)?;
        let p = self.instance_dir(id).join("console.log");
        match fs::read(&p) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(RuntimeError::Io {
                op: "read",
                path: p,
                err: e,
            }),
        }
    }

    /// Runs a command inside a running instance (its namespaces and cgroups) and waits for it.
    pub fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let rec = self.describe(id)?;
        let pid = rec.pid.ok_or(RuntimeError::BadState {
            id: id.into(),
            state: rec.state,
            action: "exec",
        })?;
        let procs = self.inner.cgroups.procs_files(&self.inner.cfg.prefix, id);
        Ok(self
            .inner
            .kernel
            .exec_in(pid, &procs, argv, timeout, rec.seccomp)?)
    }

    /// Where a running instance is, for [`crate::attach()`] by a root process on this host.
    pub fn attach_target(&self, id: &str) -> Result<crate::AttachTarget, RuntimeError> {
        let rec = self.describe(id)?;
        let bad = || RuntimeError::BadState {
            id: id.into(),
            state: rec.state,
            action: "attach",
        };
        let pid = rec.pid.ok_or_else(bad)?;
        let pid_start = rec
            .pid_start
            .or_else(|| self.inner.kernel.process_start_time(pid))
            .ok_or_else(bad)?;
        Ok(crate::AttachTarget {
            pid,
            pid_start,
            cgroup_procs: self.inner.cgroups.procs_files(&self.inner.cfg.prefix, id),
            seccomp: rec.seccomp,
        })
    }

    /// Terminates every instance and deletes every peering and VPC of this engine.
    pub fn destroy_all(&self, grace: Duration) -> Vec<RuntimeError> {
        let mut errors = Vec::new();
        for i in self.list() {
            if let Err(e) = self.terminate(&i.id, grace) {
                errors.push(e);
            }
        }
        for p in self.peerings() {
            if let Err(e) = self.delete_peering(&p.id) {
                errors.push(e);
            }
        }
        for v in self.vpcs() {
            if let Err(e) = self.delete_vpc(&v.id) {
                errors.push(e);
            }
        }
        for d in self.inner.cgroups.prefix_dirs(&self.inner.cfg.prefix) {
            if self.inner.kernel.path_exists(&d) {
                let _ = self.inner.kernel.cgroup_remove(&d);
            }
        }
        errors
    }

    /// Reports (and with `fix` removes) what exists under this engine's prefix but is not in
    /// its state: namespaces, mounts, veths and nftables tables in the host namespace, cgroups.
    pub fn doctor(&self, fix: bool) -> crate::doctor::DoctorReport {
        let st = self.lock();
        let mut known = crate::doctor::Known {
            engine_open: true,
            ..Default::default()
        };
        for v in st.vpcs.values() {
            known.netns.insert(v.netns.clone());
        }
        for i in st.live() {
            known.netns.insert(self.netns_name(&i.id));
            if i.pid.is_some() {
                known.cgroups.insert(i.id.clone());
            }
        }
        // A create under way has its intent on record; what it makes is accounted for.
        for (id, intent) in &st.intents {
            intent.known(id, &mut known);
        }
        drop(st);
        crate::doctor::doctor(
            self.inner.kernel.as_ref(),
            &self.inner.cgroups,
            &self.inner.cfg.prefix,
            &known,
            fix,
        )
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
mod tests {
    use super::*;
    use crate::image::ImageConfig;
    use crate::kernel::FakeKernel;
    use crate::net::Peer;

    struct Fixture {
        _dir: tempfile::TempDir,
        kernel: Arc<FakeKernel>,
        rt: Runtime,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::new().with_routes(&["192.0.2.0/24", "10.9.0.0/16"]));
        let mut cfg = RuntimeConfig::new(dir.path().join("data"), "spxt");
        cfg.cgroup_root = dir.path().join("cg");
        cfg.host_dir = dir.path().join("host");
        let rt = Runtime::open(cfg, kernel.clone()).unwrap();
        // A tiny image: /bin/busybox with a /bin/sh symlink.
        let mut tb = tar::Builder::new(Vec::new());
        let mut h = crate::image::new_header();
        h.set_size(4);
        h.set_mode(0o755);
        tb.append_data(&mut h, "bin/busybox", &b"\x7fELF"[..])
            .unwrap();
        let mut h = crate::image::new_header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        tb.append_link(&mut h, "bin/sh", "/bin/busybox").unwrap();
        let tarball = dir.path().join("rootfs.tar");
        fs::write(&tarball, tb.into_inner().unwrap()).unwrap();
        let cfg = ImageConfig {
            cmd: vec!["sh".into()],
            min_memory_mib: 100,
            ..Default::default()
        };
        rt.images().import(&tarball, cfg, Some("tiny:1")).unwrap();
        Fixture {
            _dir: dir,
            kernel,
            rt,
        }
    }

    fn spec(subnet: &str) -> LaunchSpec {
        LaunchSpec {
            image: "tiny:1".into(),
            instance_type: "t3.small".into(),
            subnet_id: subnet.into(),
            ..Default::default()
        }
    }

    #[test]
    fn vpc_subnet_validation() {
        let f = fixture();
        let e =
            f.rt.create_vpc(Some("vpc-bad"), "10.9.0.0/16")
                .unwrap_err()
                .to_string();
        assert_eq!(
            e,
            "VPC CIDR 10.9.0.0/16 collides with the host's route to 10.9.0.0/16"
        );
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        let e =
            f.rt.create_subnet("vpc-a", Some("subnet-2"), "10.200.1.128/25")
                .unwrap_err()
                .to_string();
        assert_eq!(
            e,
            "subnet 10.200.1.128/25 overlaps subnet subnet-1 (10.200.1.0/24) in VPC vpc-a"
        );
        assert!(f
            .rt
            .create_subnet("vpc-a", Some("subnet-3"), "10.201.1.0/24")
            .unwrap_err()
            .to_string()
            .contains("not inside VPC"));
        let calls = f.kernel.take_calls();
        assert_eq!(calls[0], "netns add spxt-vpc-a");
        assert!(calls.contains(&"sysctl (in spxt-vpc-a) net.ipv4.ip_forward=1".to_string()));
        assert!(
            calls.contains(&"ip -n spxt-vpc-a addr add 10.200.1.1/24 dev br0".to_string()),
            "{calls:#?}"
        );
    }

    #[test]
    fn caller_ids_are_checked_before_anything_is_created() {
        let f = fixture();
        for bad in [
            "vpc-../x",
            "vpc-",
            "VPC-1",
            "vpc-A",
            "subnet-1",
            "vpc-0123456789abcdef01",
        ] {
            let e = f.rt.create_vpc(Some(bad), "10.200.0.0/20").unwrap_err();
            assert!(
                matches!(e, RuntimeError::BadId { kind: "vpc", .. }),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            f.rt.create_vpc(Some("vpc-a/b"), "10.200.0.0/20")
                .unwrap_err()
                .to_string(),
            "vpc id `vpc-a/b` is invalid: expected `vpc-` and 1 to 17 characters of a-z and 0-9"
        );
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        assert!(f
            .rt
            .create_subnet("vpc-a", Some("subnet-x y"), "10.200.1.0/24")
            .is_err());
        assert!(f
            .rt
            .put_security_group("sg_1", "vpc-a", vec![], None)
            .is_err());
        f.rt.create_vpc(Some("vpc-b"), "10.201.0.0/20").unwrap();
        assert!(f
            .rt
            .create_peering(Some("pcx-../a"), "vpc-a", "vpc-b")
            .is_err());
        assert_eq!(f.rt.vpcs().len(), 2);
        assert!(f.rt.peerings().is_empty());
        assert!(f.rt.security_group("sg_1").is_none());
        let calls = f.kernel.take_calls();
        assert!(
            calls
                .iter()
                .all(|c| !c.contains("..") && !c.contains("x y")),
            "{calls:#?}"
        );
    }

    #[test]
    fn delete_vpc_keeps_terminated_instance_records() {
        let f = fixture();
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        let i = f.rt.launch(spec("subnet-1")).unwrap();
        assert!(f
            .rt
            .delete_vpc("vpc-a")
            .unwrap_err()
            .to_string()
            .contains(&i.id));
        f.rt.terminate(&i.id, Duration::from_millis(10)).unwrap();
        f.rt.delete_subnet("subnet-1").unwrap();
        f.rt.delete_vpc("vpc-a").unwrap();
        assert_eq!(
            f.rt.describe(&i.id).unwrap().state,
            InstanceState::Terminated
        );
        assert_eq!(f.rt.list().len(), 1);
    }

    #[test]
    fn failed_vpc_create_leaves_nothing() {
        let f = fixture();
        f.kernel.fail_on("ip_forward");
        assert!(f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").is_err());
        assert!(f.rt.vpcs().is_empty());
        assert!(f
            .kernel
            .take_calls()
            .contains(&"netns del spxt-vpc-a".to_string()));
    }

    #[test]
    fn launch_bad_input_is_refused_with_clear_errors() {
        let f = fixture();
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        let err = |s: LaunchSpec| f.rt.launch(s).unwrap_err().to_string();
        assert_eq!(
            err(LaunchSpec { instance_type: "m9.huge".into(), ..spec("subnet-1") }),
            "unknown instance type `m9.huge`; known types: t3.nano, t3.micro, t3.small, t3.medium, t3.large, t3.xlarge"
        );
        assert!(err(LaunchSpec {
            instance_type: "t3.nano".into(),
            ..spec("subnet-1")
        })
        .contains("gives 64 MiB but image"));
        assert!(err(LaunchSpec {
            command: Some(vec!["httpd".into()]),
            ..spec("subnet-1")
        })
        .contains("entrypoint `httpd` does not exist"));
        assert!(err(LaunchSpec {
            command: Some(vec!["/bin/nope".into()]),
            ..spec("subnet-1")
        })
        .contains("`/bin/nope` does not exist"));
        assert_eq!(err(spec("subnet-9")), "subnet `subnet-9` does not exist");
        assert!(err(LaunchSpec {
            security_groups: vec!["sg-x".into()],
            ..spec("subnet-1")
        })
        .contains("security group `sg-x`"));
        assert!(f.rt.list().is_empty());
    }

    #[test]
    fn launch_plans_network_cgroups_boot_and_rolls_back_on_failure() {
        let f = fixture();
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        f.rt.put_security_group(
            "sg-web",
            "vpc-a",
            vec![SgRule::tcp(80, Peer::Group("sg-web".into()))],
            None,
        )
        .unwrap();
        f.kernel.take_calls();
        let i =
            f.rt.launch(LaunchSpec {
                security_groups: vec!["sg-web".into()],
                user_data: Some("echo hi".into()),
                ..spec("subnet-1")
            })
            .unwrap();
        assert_eq!(i.private_ip.to_string(), "10.200.1.2");
        assert_eq!(i.hostname, "ip-10-200-1-2");
        assert_eq!(
            i.exec_path,
            "/usr/local/sbin/sh".replace("/usr/local/sbin", "/bin")
        );
        let calls = f.kernel.take_calls().join("\n");
        let ns = format!("spxt-{}", i.id);
        assert!(
            calls.contains(&format!(
                "ip -n {ns} link add eth0 address 02:53:0a:c8:01:02 type veth peer name p0 netns spxt-vpc-a"
            )),
            "{calls}"
        );
        assert!(calls.contains(&format!("ip -n {ns} route add default via 10.200.1.1")));
        assert!(
            calls.contains("ip saddr { 10.200.1.2 } tcp dport 80 accept"),
            "group rule includes the member itself: {calls}"
        );
        assert!(calls.contains("cpu.cfs_quota_us = 100000"));
        assert!(calls.contains("run user data"));
        let hosts = fs::read_to_string(f.rt.instance_dir(&i.id).join("upper/etc/hosts")).unwrap();
        assert!(hosts.contains("10.200.1.2\tip-10-200-1-2"));

        // A second member changes the first one's rules.
        let j =
            f.rt.launch(LaunchSpec {
                security_groups: vec!["sg-web".into()],
                ..spec("subnet-1")
            })
            .unwrap();
        let calls = f.kernel.take_calls().join("\n");
        assert!(
            calls.contains(&format!("nft (in spxt-{}):", i.id)),
            "{calls}"
        );
        assert!(calls.contains("ip saddr { 10.200.1.2, 10.200.1.3 } tcp dport 80 accept"));

        // Failing the boot undoes the network and cgroups and frees the address.
        f.kernel.fail_on("spawn instance");
        assert!(f.rt.launch(spec("subnet-1")).is_err());
        let calls = f.kernel.take_calls();
        assert!(
            calls.iter().any(|c| c.starts_with("netns del spxt-i-")),
            "{calls:#?}"
        );
        assert!(calls
            .iter()
            .any(|c| c.starts_with("rmdir ") && c.contains("/memory/spxt/i-")));
        // So does a network that fails while init waits for it: init never runs the image.
        f.kernel.fail_on("route add default");
        let e = f.rt.launch(spec("subnet-1")).unwrap_err();
        assert!(matches!(e, RuntimeError::Kernel(_)), "{e}");
        let calls = f.kernel.take_calls();
        assert!(
            calls.iter().any(|c| c.starts_with("spawn instance")),
            "{calls:#?}"
        );
        assert!(calls.iter().any(|c| c.starts_with("netns del spxt-i-")));
        f.kernel.fail_on("never-matches");
        assert_eq!(
            f.rt.launch(spec("subnet-1"))
                .unwrap()
                .private_ip
                .to_string(),
            "10.200.1.4"
        );

        // Terminate: SIGTERM, then everything goes and the address is free again.
        let t = f.rt.terminate(&j.id, Duration::from_secs(2)).unwrap();
        assert_eq!(t.state, InstanceState::Terminated);
        assert_eq!(t.last_exit.as_ref().unwrap().signal, Some(libc::SIGTERM));
        assert_eq!(
            f.rt.launch(spec("subnet-1"))
                .unwrap()
                .private_ip
                .to_string(),
            "10.200.1.3"
        );
        assert!(f
            .rt
            .delete_vpc("vpc-a")
            .unwrap_err()
            .to_string()
            .contains("still used by"));
    }

    #[test]
    fn state_survives_reopen_and_dead_instances_are_marked_stopped() {
        let f = fixture();
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        let i = f.rt.launch(spec("subnet-1")).unwrap();
        let cfg = f.rt.config().clone();
        // The fake reports no process start times, so the reopened engine finds init gone.
        let again = Runtime::open(cfg, f.kernel.clone()).unwrap();
        let d = again.describe(&i.id).unwrap();
        assert_eq!(d.state, InstanceState::Stopped);
        assert!(d.last_exit.unwrap().reason.contains("daemon restart"));
        assert_eq!(again.vpcs().len(), 1);
    }

    /// Two engines (data dirs) on one host table: distinct ranges, a terminated instance's
    /// range reused by the other, stale entries reconciled away when an engine opens.
    #[test]
    fn ranges_come_from_the_host_table_shared_by_data_dirs() {
        let f = fixture();
        let host = f.rt.config().host_dir.clone();
        let mut cfg = RuntimeConfig::new(f._dir.path().join("data2"), "spxu");
        cfg.cgroup_root = f._dir.path().join("cg2");
        cfg.host_dir = host.clone();
        let other = Runtime::open(cfg, f.kernel.clone()).unwrap();
        let image = ImageConfig {
            cmd: vec!["sh".into()],
            min_memory_mib: 100,
            ..Default::default()
        };
        other
            .images()
            .import(&f._dir.path().join("rootfs.tar"), image, Some("tiny:1"))
            .unwrap();
        for rt in [&f.rt, &other] {
            rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
            rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
                .unwrap();
        }
        let a1 = f.rt.launch(spec("subnet-1")).unwrap();
        let b1 = other.launch(spec("subnet-1")).unwrap();
        let a2 = f.rt.launch(spec("subnet-1")).unwrap();
        let bases: Vec<u32> = [&a1, &b1, &a2]
            .iter()
            .map(|i| i.userns.unwrap().base)
            .collect();
        let slot = |n: u32| IdRange::slot(n).base;
        assert_eq!(bases, vec![slot(0), slot(1), slot(2)]);
        f.rt.terminate(&a1.id, Duration::from_secs(2)).unwrap();
        let b2 = other.launch(spec("subnet-1")).unwrap();
        assert_eq!(b2.userns.unwrap().base, slot(0), "freed, then reused");
        let table = crate::hostids::HostIds::new(&host);
        let owners = table
            .update(|t| {
                t.entries
                    .iter()
                    .map(|e| (e.instance.clone(), e.base))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap();
        let want: BTreeMap<String, u32> = [(&b1, 1), (&a2, 2), (&b2, 0)]
            .into_iter()
            .map(|(i, n)| (i.id.clone(), slot(n)))
            .collect();
        assert_eq!(owners, want);
        // A crash between the table and the state file leaves an entry for an instance the
        // data dir doesn't have; the engine frees it when it opens.
        let me = fs::canonicalize(f.rt.config().data_dir.clone()).unwrap();
        table.update(|t| t.allocate(&me, "i-lost")).unwrap();
        let cfg = f.rt.config().clone();
        drop(Runtime::open(cfg, f.kernel.clone()).unwrap());
        let left = table
            .update(|t| t.entries.iter().any(|e| e.instance == "i-lost"))
            .unwrap();
        assert!(!left, "reconciled at open");
        // A data dir that is gone loses its entries at the next allocation anywhere.
        drop(other);
        fs::remove_dir_all(f._dir.path().join("data2")).unwrap();
        let a3 = f.rt.launch(spec("subnet-1")).unwrap();
        assert_eq!(a3.userns.unwrap().base, slot(0));
    }

    #[test]
    fn peering_is_checked_and_widens_both_routers() {
        let f = fixture();
        f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        f.rt.create_vpc(Some("vpc-b"), "10.200.16.0/20").unwrap();
        f.rt.create_vpc(Some("vpc-c"), "10.200.0.0/22").unwrap();
        assert!(f
            .rt
            .create_peering(None, "vpc-a", "vpc-c")
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        f.kernel.take_calls();
        f.rt.create_peering(Some("pcx-1"), "vpc-a", "vpc-b")
            .unwrap();
        let calls = f.kernel.take_calls().join("\n");
        assert!(
            calls.contains("ip -n spxt-vpc-a link add x0 type veth peer name x0 netns spxt-vpc-b"),
            "{calls}"
        );
        assert!(calls.contains("ip -n spxt-vpc-a route add 10.200.16.0/20 via 169.254.0.2 dev x0"));
        assert!(calls.contains("ip -n spxt-vpc-b route add 10.200.0.0/20 via 169.254.0.1 dev x0"));
        assert!(calls.contains("elements = { 10.200.16.0/20 }"));
        assert!(f
            .rt
            .create_peering(None, "vpc-b", "vpc-a")
            .unwrap_err()
            .to_string()
            .contains("already peered"));
        assert!(f
            .rt
            .create_peering(None, "vpc-b", "vpc-c")
            .unwrap_err()
            .to_string()
            .contains("overlapping"));
    }

    #[test]
    fn users_resolve_from_the_image_passwd() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let mut tb = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("bin/app", "x"),
            (
                "etc/passwd",
                "root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
            ),
        ] {
            let mut h = crate::image::new_header();
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            tb.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        let tarball = dir.path().join("r.tar");
        fs::write(&tarball, tb.into_inner().unwrap()).unwrap();
        let user = |u: &str| {
            let cfg = ImageConfig {
                cmd: vec!["/bin/app".into()],
                user: u.into(),
                ..Default::default()
            };
            let img = f.rt.images().import(&tarball, cfg, None).unwrap();
            f.rt.resolve_user(&img).map_err(|e| e.to_string())
        };
        assert_eq!(user("web"), Ok((1000, 1001)));
        assert_eq!(user("web:7"), Ok((1000, 7)));
        assert_eq!(user("33"), Ok((33, 33)));
        assert!(user("nobody")
            .unwrap_err()
            .contains("user `nobody` is not in image"));
    }

    #[test]
    fn status_file_parsing() {
        assert_eq!(
            parse_status("exit 3\n", WaitOutcome::Gone, false).code,
            Some(3)
        );
        let oom = parse_status("signal 9\n", WaitOutcome::Gone, true);
        assert_eq!(
            (oom.signal, oom.oom_killed, oom.reason.as_str()),
            (Some(9), true, "killed by signal 9 (out of memory)")
        );
        assert!(
            parse_status("boot-failed mount\n", WaitOutcome::Gone, false)
                .reason
                .contains("boot failed at `mount`")
        );
        assert_eq!(
            parse_status("", WaitOutcome::Status(libc::SIGKILL), false).signal,
            Some(9)
        );
    }

    /// Every body saved, in order (the last one is what `load` returns).
    #[derive(Debug, Default)]
    struct Saves(Mutex<Vec<Vec<u8>>>);

    impl StateDoc for Saves {
        fn name(&self) -> String {
            "saves".into()
        }
        fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
            Ok(self.0.lock().unwrap().last().cloned())
        }
        fn save(&self, body: &[u8]) -> Result<(), DocError> {
            self.0.lock().unwrap().push(body.to_vec());
            Ok(())
        }
    }

    /// Issue #15: a daemon killed between an intent and its record leaves a namespace (and
    /// for an instance cgroups and a process) that no record names. Every state saved while
    /// a create was under way names its intent, and opening the engine on it removes what
    /// the intent covers and clears it.
    #[test]
    fn every_intent_a_killed_create_left_is_undone_at_the_next_open() {
        let f = fixture();
        let cfg = f.rt.config().clone();
        let saves = Arc::new(Saves::default());
        let rt = Runtime::open_with(cfg.clone(), f.kernel.clone(), saves.clone()).unwrap();
        rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
        let i = rt.launch(spec("subnet-1")).unwrap();
        let bodies = saves.0.lock().unwrap().clone();
        let states: Vec<State> = bodies
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        let pending: Vec<&State> = states.iter().filter(|s| !s.intents.is_empty()).collect();
        let want = [
            ("vpc-a".to_string(), "spxt-vpc-a".to_string()),
            (i.id.clone(), format!("spxt-{}", i.id)),
        ];
        assert_eq!(pending.len(), want.len(), "{pending:?}");
        assert!(states.last().unwrap().intents.is_empty());
        for (st, (id, netns)) in pending.iter().zip(&want) {
            assert_eq!(st.intents.keys().collect::<Vec<_>>(), vec![id]);
            // The intent is saved before the create is recorded.
            assert!(!st.vpcs.contains_key(id) && !st.instances.contains_key(id));
            let body = serde_json::to_vec(st).unwrap();
            let doc = Arc::new(Saves::default());
            doc.save(&body).unwrap();
            f.kernel.take_calls();
            let again = Runtime::open_with(cfg.clone(), f.kernel.clone(), doc.clone()).unwrap();
            let calls = f.kernel.take_calls();
            assert!(
                calls.contains(&format!("netns del {netns}")),
                "{id}: {calls:?}"
            );
            let after: State = serde_json::from_slice(&doc.load().unwrap().unwrap()).unwrap();
            assert!(after.intents.is_empty(), "{id}");
            drop(again);
        }
    }
}
