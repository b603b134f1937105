//! `AWS::AutoScaling::*` over the pure planner (`spindle-autoscale`) and the runtime.
//!
//! [`AutoScaling`] holds every group (keyed by account and group name) and is the
//! executor of the planner: [`AutoScaling::tick`], called once a second by the daemon,
//! samples each group's metrics (CPU from the runtime, load balancer figures through
//! [`LoadBalancing`]), observes instance health, runs [`Group::tick`] and carries out the
//! actions — launching from the group's launch template version like `AWS::EC2::Instance`
//! does, terminating, pausing warm-pool instances, registering with target groups.
//!
//! The load balancer is reached only through the [`LoadBalancing`] trait: the daemon plugs
//! in its load balancer when it has one; [`CgroupOnly`] (the default) registers nothing and
//! reports no request metrics, so only CPU policies have data.
//!
//! `ScalingPolicy`, `ScheduledAction`, `LifecycleHook` and `WarmPool` resources attach to the
//! group named by their `AutoScalingGroupName` (the group's `Ref`); creating or deleting one
//! changes the group's spec in place.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use spindle_autoscale::group::{Hook, HookResult, WarmPool};
use spindle_autoscale::schedule::ScheduledAction;
use spindle_autoscale::spec::{self, GroupProps, SpecError};
use spindle_autoscale::{Action, Activity, Group, GroupSpec, Policy, Rules, Sample, Window};
use spindle_model::AccountId;
use spindle_runtime::{FileDoc, Instance, InstanceState, StateDoc};
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::instance::version_number;
use crate::{derived_id, Ec2, Kind, LaunchOverrides};

/// The tag naming an instance's group (as on AWS).
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// How long a scaled-in instance gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// One second of a target group set's traffic, as the load balancer measured it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LbSecond {
    pub requests: f64,
    pub errors_5xx: f64,
    /// Response time percentiles in seconds.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// What auto scaling needs from the load balancer. Every method has a no-op default, so an
/// implementation starts small; the daemon's load balancer wiring implements it.
pub trait LoadBalancing: Send + Sync {
    /// Adds an instance to the target groups (ARNs) and returns once it may receive
    /// traffic.
    fn register(&self, _target_groups: &[String], _instance: &Instance) -> Result<(), String> {
        Ok(())
    }
    /// Removes an instance and returns once its connections have drained (or the target
    /// group's deregistration delay has passed).
    fn deregister(&self, _target_groups: &[String], _instance_id: &str) -> Result<(), String> {
        Ok(())
    }
    /// The target groups' health verdict on an instance, if they have one.
    fn target_health(&self, _target_groups: &[String], _instance_id: &str) -> Option<bool> {
        None
    }
    /// The target groups' traffic in the (completed) second `unix_second`.
    fn second(&self, _target_groups: &[String], _unix_second: u64) -> Option<LbSecond> {
        None
    }
}

/// No load balancer: CPU metrics only.
#[derive(Debug, Default)]
pub struct CgroupOnly;

impl LoadBalancing for CgroupOnly {}

/// A group's resources besides itself, by the physical id of the attaching resource.
#[derive(Debug, Clone)]
enum Attachment {
    Policy(String, Policy),
    Scheduled(ScheduledAction),
    Hook(Hook),
    WarmPool(WarmPool),
    /// A policy with `Enabled: false`: kept, not evaluated.
    Disabled,
}

/// What the state file keeps of an attachment: enough to read it again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RawAttachment {
    #[serde(with = "attachment_kind")]
    kind: Kind,
    logical_id: String,
    props: Json,
}

/// One group in the state file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    account: String,
    token: String,
    name: String,
    props: Json,
    stack_tags: BTreeMap<String, String>,
    template_id: String,
    version: u32,
    desired: u32,
    attachments: BTreeMap<String, RawAttachment>,
    /// Unix seconds the group was created; 0 in state written before it was kept.
    #[serde(default)]
    created_at: u64,
}

struct Entry {
    /// Unix seconds the group was created (`CreatedTime`).
    created_at: u64,
    raw_props: Json,
    raw_attachments: BTreeMap<String, RawAttachment>,
    account: String,
    /// CloudFormation's tags for the instances (stack name, logical id, stack id).
    stack_tags: BTreeMap<String, String>,
    token: String,
    props: GroupProps,
    template_id: String,
    group: Group,
    window: Window,
    attachments: BTreeMap<String, Attachment>,
    /// Last CPU reading per instance: cumulative usage and when it was read.
    cpu: HashMap<String, (Duration, Instant)>,
    /// Set while the group is deleted: a tick that already holds the entry leaves it alone.
    deleted: bool,
}

/// A group as `spindle asg describe` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub launch_template: String,
    pub version: u32,
    pub target_groups: Vec<String>,
    pub instances: Vec<InstanceInfo>,
    pub refresh: Option<String>,
    pub policies: Vec<String>,
    /// `EC2` or `ELB`.
    pub health_check_type: &'static str,
    pub health_check_grace_period: u64,
    pub subnets: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Instance refreshes, newest last (kept in memory: a daemon restart forgets them).
    pub refreshes: Vec<RefreshInfo>,
}

/// One instance refresh, as `DescribeInstanceRefreshes` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefreshInfo {
    pub id: String,
    /// `InProgress` or `Successful`.
    pub status: &'static str,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub min_healthy_percentage: u32,
    pub percentage_complete: u32,
    /// Instances still to replace.
    pub instances_to_update: u32,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceInfo {
    pub id: String,
    pub lifecycle_state: String,
    pub health: String,
    pub version: u32,
    pub protected: bool,
    pub subnet: String,
}

/// All auto scaling groups of one runtime, and their executor.
pub struct AutoScaling {
    ec2: Arc<Ec2>,
    lb: RwLock<Arc<dyn LoadBalancing>>,
    groups: Mutex<BTreeMap<String, Arc<Mutex<Entry>>>>,
    rules: Rules,
    state: Option<Arc<dyn StateDoc>>,
    /// Serializes writes of the state document.
    save_lock: Mutex<()>,
}

impl std::fmt::Debug for AutoScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoScaling").finish_non_exhaustive()
    }
}

fn key(account: &str, name: &str) -> String {
    format!("{account}/{name}")
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn spec_error(e: SpecError) -> ProviderError {
    ProviderError::InvalidRequest(e.to_string())
}

fn json(p: &BTreeMap<String, Value>) -> Json {
    Value::Map(p.clone()).to_json()
}

impl AutoScaling {
    /// Auto scaling over `ec2`'s runtime and launch templates, with the stabilization
    /// `rules` (use `Rules::default()` outside tests).
    pub fn new(ec2: Arc<Ec2>, rules: Rules) -> Arc<Self> {
        Arc::new(AutoScaling {
            ec2,
            lb: RwLock::new(Arc::new(CgroupOnly)),
            groups: Mutex::new(BTreeMap::new()),
            rules,
            state: None,
            save_lock: Mutex::new(()),
        })
    }

    /// Like [`AutoScaling::new`], keeping the groups in `state_file` so a restarted daemon
    /// finds them again: each group is read back with its attachments, and the running
    /// instances tagged with its name are adopted in service (ones that stopped meanwhile
    /// are replaced on the first tick).
    pub fn open(
        ec2: Arc<Ec2>,
        rules: Rules,
        state_file: std::path::PathBuf,
    ) -> Result<Arc<Self>, String> {
        Self::open_with(ec2, rules, FileDoc::arc(state_file))
    }

    /// Like [`AutoScaling::open`], with the groups kept in `doc` (the daemon's store).
    pub fn open_with(
        ec2: Arc<Ec2>,
        rules: Rules,
        doc: Arc<dyn StateDoc>,
    ) -> Result<Arc<Self>, String> {
        let records: Vec<Record> = match doc.load().map_err(|e| e.to_string())? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", doc.name()))?,
            None => Vec::new(),
        };
        let me = AutoScaling {
            ec2,
            lb: RwLock::new(Arc::new(CgroupOnly)),
            groups: Mutex::new(BTreeMap::new()),
            rules,
            state: Some(doc),
            save_lock: Mutex::new(()),
        };
        let now = now_unix();
        let instances = me.ec2.runtime.list();
        for r in records {
            match me.restore(r, &instances, now) {
                Ok((k, e)) => {
                    me.groups
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(k, Arc::new(Mutex::new(e)));
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not restore an auto scaling group")
                }
            }
        }
        Ok(Arc::new(me))
    }

    fn restore(
        &self,
        r: Record,
        instances: &[Instance],
        now: u64,
    ) -> Result<(String, Entry), String> {
        let p = spec::group_props(&r.props).map_err(|e| e.to_string())?;
        let mut attachments = BTreeMap::new();
        for (id, a) in &r.attachments {
            let (_, att, _) =
                read_attachment(a.kind, &a.logical_id, &a.props).map_err(|e| e.to_string())?;
            attachments.insert(id.clone(), att);
        }
        let spec = self.build_spec(&p, r.version, &attachments);
        let mut group = Group::new(&r.name, spec, r.desired);
        for i in instances.iter().filter(|i| {
            i.state != InstanceState::Terminated
                && i.tags.get(GROUP_TAG) == Some(&r.name)
                && spindle_model::instance_owner(&i.tags).is_some_and(|o| o.as_str() == r.account)
        }) {
            group.members.push(spindle_autoscale::Member {
                id: i.id.clone(),
                subnet: i.subnet_id.clone(),
                version: r.version,
                state: spindle_autoscale::State::InService,
                launched_at: i.launched_at,
                in_service_at: Some(now),
                protected: false,
                ec2_healthy: i.state == InstanceState::Running,
                elb_healthy: None,
                outdated: false,
            });
        }
        let window = Window::new(
            self.rules
                .scale_in_seconds
                .max(self.rules.scale_out_seconds) as usize
                + 5,
        );
        let e = Entry {
            // State from before creation times were kept: the load is the earliest known.
            created_at: if r.created_at == 0 { now } else { r.created_at },
            raw_props: r.props,
            raw_attachments: r.attachments,
            account: r.account.clone(),
            stack_tags: r.stack_tags,
            token: r.token,
            props: p,
            template_id: r.template_id,
            group,
            window,
            attachments,
            cpu: HashMap::new(),
            deleted: false,
        };
        Ok((key(&r.account, &r.name), e))
    }

    /// Writes every group to the state document (when there is one).
    fn save(&self) {
        let Some(doc) = &self.state else { return };
        let _guard = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let entries: Vec<Arc<Mutex<Entry>>> = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let records: Vec<Record> = entries
            .iter()
            .map(|e| {
                let e = e.lock().unwrap_or_else(|p| p.into_inner());
                Record {
                    account: e.account.clone(),
                    token: e.token.clone(),
                    name: e.group.name.clone(),
                    props: e.raw_props.clone(),
                    stack_tags: e.stack_tags.clone(),
                    template_id: e.template_id.clone(),
                    version: e.group.spec.version,
                    desired: e.group.desired,
                    attachments: e.raw_attachments.clone(),
                    created_at: e.created_at,
                }
            })
            .collect();
        let r = serde_json::to_vec(&records)
            .map_err(|e| e.to_string())
            .and_then(|b| doc.save(&b).map_err(|e| e.to_string()));
        if let Err(err) = r {
            tracing::error!(doc = %doc.name(), error = %err, "could not save the auto scaling groups");
        }
    }

    /// Plugs in the load balancer.
    pub fn set_load_balancing(&self, lb: Arc<dyn LoadBalancing>) {
        *self.lb.write().unwrap_or_else(|p| p.into_inner()) = lb;
    }

    fn lb(&self) -> Arc<dyn LoadBalancing> {
        self.lb.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers every type in [`crate::AUTOSCALING_TYPES`].
    pub fn register(self: &Arc<Self>, registry: &mut spindle_stack::ProviderRegistry) {
        for kind in crate::kind::kinds_of(crate::Group::AutoScaling) {
            registry.register(
                kind.type_name(),
                Arc::new(AsgProvider {
                    asg: self.clone(),
                    kind,
                }) as Arc<dyn Provider>,
            );
        }
    }

    fn entry(&self, account: &str, name: &str) -> Option<Arc<Mutex<Entry>>> {
        let g = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&key(account, name)).cloned()
    }

    fn with_group<T>(
        &self,
        account: &str,
        name: &str,
        f: impl FnOnce(&mut Entry) -> Result<T, String>,
    ) -> Result<T, String> {
        let e = self
            .entry(account, name)
            .ok_or_else(|| format!("auto scaling group {name} not found"))?;
        let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut e)
    }

    /// Resolves the group's launch template to `(lt-id, version)` and checks that the
    /// version's image exists, naming the template property on failure.
    fn resolve_template(&self, p: &GroupProps) -> Result<(String, u32), String> {
        let r = &p.launch_template;
        let prop = if r.template.starts_with("lt-") {
            "LaunchTemplate.LaunchTemplateId"
        } else {
            "LaunchTemplate.LaunchTemplateName"
        };
        let (id, n) = {
            let t = self.ec2.store.lock();
            let rec = t
                .launch_templates
                .get(&r.template)
                .or_else(|| t.launch_templates.values().find(|x| x.name == r.template))
                .ok_or_else(|| format!("{prop} {}: launch template not found", r.template))?;
            let n = version_number(rec, r.version.as_deref()).map_err(|_| {
                format!(
                    "LaunchTemplate.Version {}: no such version of {}",
                    r.version.as_deref().unwrap_or("$Default"),
                    rec.id
                )
            })?;
            (rec.id.clone(), n)
        };
        let spec = self
            .ec2
            .launch_spec_from_template(&id, Some(&n.to_string()), &LaunchOverrides::default())
            .map_err(|e| format!("{prop} {}: {e}", r.template))?;
        self.ec2
            .runtime
            .images()
            .resolve(&spec.image)
            .map_err(|e| {
                format!(
                    "{prop} {} version {n}: image {}: {e}",
                    r.template, spec.image
                )
            })?;
        Ok((id, n))
    }

    fn build_spec(
        &self,
        p: &GroupProps,
        version: u32,
        att: &BTreeMap<String, Attachment>,
    ) -> GroupSpec {
        let mut s = GroupSpec {
            min: p.min,
            max: p.max,
            version,
            subnets: p.subnets.clone(),
            health_check_type: p.health_check_type,
            grace_period: p.grace_period,
            warmup: p.warmup.unwrap_or(0),
            termination_policies: p.termination_policies.clone(),
            protect_new: p.protect_new,
            max_lifetime: p.max_lifetime,
            update_min_healthy_percentage: 100,
            policies: Vec::new(),
            scheduled: Vec::new(),
            hooks: Vec::new(),
            warm_pool: None,
            rules: self.rules.clone(),
        };
        for a in att.values() {
            match a {
                Attachment::Policy(n, pol) => s.policies.push((n.clone(), pol.clone())),
                Attachment::Scheduled(x) => s.scheduled.push(x.clone()),
                Attachment::Hook(h) => s.hooks.push(h.clone()),
                Attachment::WarmPool(w) => s.warm_pool = Some(w.clone()),
                Attachment::Disabled => {}
            }
        }
        s
    }

    fn account_entries(&self, account: &str) -> Vec<Arc<Mutex<Entry>>> {
        let g = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .filter(|(k, _)| k.starts_with(&format!("{account}/")))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every group of `account`.
    pub fn list(&self, account: &AccountId) -> Vec<GroupInfo> {
        let entries = self.account_entries(account.as_str());
        entries
            .iter()
            .map(|e| info(&e.lock().unwrap_or_else(|p| p.into_inner())))
            .collect()
    }

    /// One group.
    pub fn describe(&self, account: &AccountId, name: &str) -> Result<GroupInfo, String> {
        self.with_group(account.as_str(), name, |e| Ok(info(e)))
    }

    /// A group's activities, oldest first.
    pub fn activities(&self, account: &AccountId, name: &str) -> Result<Vec<Activity>, String> {
        self.with_group(account.as_str(), name, |e| Ok(e.group.activities.clone()))
    }

    /// `set-desired-capacity`.
    pub fn set_desired(&self, account: &AccountId, name: &str, n: u32) -> Result<(), String> {
        self.with_group(account.as_str(), name, |e| {
            e.group.set_desired(n, now_unix(), "a user")
        })?;
        self.save();
        Ok(())
    }

    /// `start-instance-refresh`; the new refresh's id.
    pub fn start_refresh(
        &self,
        account: &AccountId,
        name: &str,
        min_healthy: u32,
    ) -> Result<String, String> {
        self.with_group(account.as_str(), name, |e| {
            e.group.start_refresh(min_healthy, now_unix())?;
            Ok(e.group
                .refreshes
                .last()
                .map(|r| r.id.clone())
                .unwrap_or_default())
        })
    }

    /// `complete-lifecycle-action`.
    pub fn complete_lifecycle_action(
        &self,
        account: &AccountId,
        name: &str,
        instance: &str,
        hook: &str,
        result: HookResult,
    ) -> Result<(), String> {
        let (actions, tgs) = self.with_group(account.as_str(), name, |e| {
            let a = e
                .group
                .complete_lifecycle_action(instance, hook, result, now_unix())?;
            Ok((a, e.props.target_groups.clone()))
        })?;
        let drain = draining(&actions);
        for a in actions {
            self.execute(&tgs, a, &drain);
        }
        Ok(())
    }

    /// One second of every group (blocking: launches happen here). `now` is unix seconds.
    pub fn tick(&self, now: u64) {
        let entries: Vec<Arc<Mutex<Entry>>> = {
            let g = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            g.values().cloned().collect()
        };
        let lb = self.lb();
        let mut changed = false;
        for e in entries {
            let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
            if e.deleted {
                continue;
            }
            let before = (e.group.desired, e.group.spec.min, e.group.spec.max);
            self.tick_group(&mut e, lb.as_ref(), now);
            changed |= before != (e.group.desired, e.group.spec.min, e.group.spec.max);
        }
        if changed {
            self.save();
        }
    }

    fn tick_group(&self, e: &mut Entry, lb: &dyn LoadBalancing, now: u64) {
        let rt = &self.ec2.runtime;
        let tgs = e.props.target_groups.clone();
        // Health and CPU of each instance.
        let mut cpu_sum = 0.0;
        let mut cpu_n = 0u32;
        let mut seen = Vec::new();
        for m in e.group.members.clone() {
            let inst = rt.describe(&m.id).ok();
            let running = inst.as_ref().is_some_and(|i| match i.state {
                // A launch still booting is not a failed health check.
                InstanceState::Pending => true,
                InstanceState::Running => i.pid.is_some(),
                _ => false,
            });
            let elb = lb.target_health(&tgs, &m.id);
            e.group.observe_health(&m.id, running, elb);
            if !running || !e.group.is_ready(&m, now) {
                continue;
            }
            seen.push(m.id.clone());
            let (Ok(Some(used)), Ok(allow)) = (rt.cpu_usage(&m.id), rt.cpu_allowance(&m.id)) else {
                continue;
            };
            let at = Instant::now();
            if let Some((prev, prev_at)) = e.cpu.insert(m.id.clone(), (used, at)) {
                let secs = at.duration_since(prev_at).as_secs_f64();
                if secs > 0.2 && allow > 0.0 {
                    let pct = used.saturating_sub(prev).as_secs_f64() / secs / allow * 100.0;
                    cpu_sum += pct.min(100.0);
                    cpu_n += 1;
                }
            }
        }
        e.cpu.retain(|id, _| seen.contains(id));
        let in_service = e.group.in_service().count() as u32;
        let mut sample = Sample {
            t: now,
            in_service,
            ready: cpu_n,
            cpu: (cpu_n > 0).then(|| cpu_sum / f64::from(cpu_n)),
            ..Default::default()
        };
        if let Some(s) = lb.second(&tgs, now.saturating_sub(1)) {
            sample.requests = Some(s.requests);
            sample.custom.insert("RequestCount".into(), s.requests);
            sample
                .custom
                .insert("HTTPCode_Target_5XX_Count".into(), s.errors_5xx);
            for (k, v) in [("p50", s.p50), ("p95", s.p95), ("p99", s.p99)] {
                if let Some(v) = v {
                    sample.custom.insert(format!("TargetResponseTime:{k}"), v);
                }
            }
        }
        if let Some(c) = sample.cpu {
            sample.custom.insert("CPUUtilization".into(), c);
        }
        tracing::trace!(group = %e.group.name, ?sample, "auto scaling sample");
        e.window.push(sample);
        let actions = e.group.tick(&e.window, now);
        // Instances deregistered and terminated in the same second: terminated only once
        // drained (see `execute`).
        let draining = draining(&actions);
        for a in actions {
            if let Action::Launch {
                request,
                subnet,
                version,
                ..
            } = &a
            {
                let mut tags = BTreeMap::new();
                tags.insert(GROUP_TAG.to_string(), e.group.name.clone());
                tags.insert(spindle_model::ACCOUNT_TAG.to_string(), e.account.clone());
                tags.extend(e.stack_tags.clone());
                let o = LaunchOverrides {
                    subnet_id: subnet.clone(),
                    tags,
                    ..Default::default()
                };
                let r = self
                    .ec2
                    .launch_from_template(&e.template_id, Some(&version.to_string()), &o)
                    .map(|i| i.id)
                    .map_err(|err| err.to_string());
                e.group.launched(*request, r, now);
            } else {
                self.execute(&tgs, a, &draining);
            }
        }
        // Launched instances enter service (and register) now rather than next second.
        for a in e.group.admit_pending(now) {
            self.execute(&tgs, a, &draining);
        }
    }

    /// Carries out one action (`draining`: the batch's ids from [`draining`]). Deregistering waits for connections to drain, so it runs
    /// off the controller's thread; an instance in `draining` (deregistered this second) is
    /// terminated by the same thread once drained, so no request in flight is cut.
    fn execute(&self, tgs: &[String], a: Action, draining: &[String]) {
        let rt = self.ec2.runtime.clone();
        let lb = self.lb();
        let tgs = tgs.to_vec();
        match a {
            Action::Launch { .. } => {}
            Action::Register { id } => {
                if let Ok(i) = rt.describe(&id) {
                    if let Err(err) = lb.register(&tgs, &i) {
                        tracing::warn!(instance = %id, error = %err, "could not register with the target groups");
                    }
                }
            }
            // Deregistered and terminated together by the `Terminate`.
            Action::Deregister { id } if draining.contains(&id) => {}
            Action::Deregister { id } => {
                std::thread::spawn(move || {
                    if let Err(err) = lb.deregister(&tgs, &id) {
                        tracing::warn!(instance = %id, error = %err, "could not deregister from the target groups");
                    }
                });
            }
            Action::Terminate { id } => {
                let drain = draining.contains(&id);
                std::thread::spawn(move || {
                    if drain {
                        if let Err(err) = lb.deregister(&tgs, &id) {
                            tracing::warn!(instance = %id, error = %err, "could not deregister from the target groups");
                        }
                    }
                    // A paused (warm pool) instance gets SIGTERM only once resumed.
                    let _ = rt.set_paused(&id, false);
                    let _ = rt.terminate(&id, TERMINATE_GRACE);
                });
            }
            Action::Pause { id } => {
                let _ = rt.set_paused(&id, true);
            }
            Action::Resume { id } => {
                let _ = rt.set_paused(&id, false);
            }
        }
    }

    fn create_group(
        &self,
        cx: &ResourceCx<'_>,
        props: &BTreeMap<String, Value>,
    ) -> Result<ProviderOutput, ProviderError> {
        let p = spec::group_props(&json(props)).map_err(spec_error)?;
        let account = cx.context.account_id.clone();
        let name = p.name.clone().unwrap_or_else(|| {
            let id = derived_id("asg", cx);
            format!("{}-{}-{}", cx.stack_name, cx.logical_id, &id[4..12])
        });
        if let Some(e) = self.entry(&account, &name) {
            let e = e.lock().unwrap_or_else(|p| p.into_inner());
            if e.token == cx.token {
                return Ok(group_output(&e));
            }
            return Err(ProviderError::AlreadyExists(format!(
                "auto scaling group {name}"
            )));
        }
        let (template_id, version) = self
            .resolve_template(&p)
            .map_err(ProviderError::InvalidRequest)?;
        let spec = self.build_spec(&p, version, &BTreeMap::new());
        let desired = p.desired.unwrap_or(p.min);
        let stack_tags = [
            ("aws:cloudformation:stack-name", cx.stack_name.to_string()),
            ("aws:cloudformation:logical-id", cx.logical_id.to_string()),
            ("aws:cloudformation:stack-id", cx.context.stack_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let entry = Entry {
            created_at: now_unix(),
            raw_props: json(props),
            raw_attachments: BTreeMap::new(),
            account: account.clone(),
            stack_tags,
            token: cx.token.to_string(),
            template_id,
            group: Group::new(&name, spec, desired),
            window: Window::new(
                self.rules
                    .scale_in_seconds
                    .max(self.rules.scale_out_seconds) as usize
                    + 5,
            ),
            props: p,
            attachments: BTreeMap::new(),
            cpu: HashMap::new(),
            deleted: false,
        };
        let out = group_output(&entry);
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(&account, &name), Arc::new(Mutex::new(entry)));
        self.save();
        Ok(out)
    }

    fn update_group(&self, req: &UpdateRequest<'_>) -> Result<ProviderOutput, ProviderError> {
        let p = spec::group_props(&json(&req.properties)).map_err(spec_error)?;
        if p.name.as_deref().is_some_and(|n| n != req.physical_id) {
            return Err(ProviderError::InvalidRequest(
                "AutoScalingGroupName cannot change in place".into(),
            ));
        }
        let (template_id, version) = self
            .resolve_template(&p)
            .map_err(ProviderError::InvalidRequest)?;
        let account = req.cx.context.account_id.clone();
        let desired_changed = req.changed.iter().any(|c| c == "DesiredCapacity");
        self.with_group(&account, &req.physical_id, |e| {
            let spec = self.build_spec(&p, version, &e.attachments);
            let desired = if desired_changed { p.desired } else { None };
            e.template_id = template_id;
            e.props = p;
            e.raw_props = json(&req.properties);
            e.group.update_spec(spec, desired, now_unix());
            Ok(group_output(e))
        })
        .map_err(ProviderError::NotFound)
        .inspect(|_| self.save())
    }

    /// Terminates the group's instances, then drops its record: a daemon killed in between
    /// finds the group again at its next start (with the instances still running adopted),
    /// and the stack's recovery deletes it again; dropping the record first left instances
    /// no group owned, which kept the subnet from being deleted.
    fn delete_group(&self, account: &str, name: &str) {
        let Some(entry) = self.entry(account, name) else {
            return;
        };
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        e.deleted = true;
        let lb = self.lb();
        for m in &e.group.members {
            let _ = lb.deregister(&e.props.target_groups, &m.id);
            let _ = self.ec2.runtime.set_paused(&m.id, false);
            let _ = self.ec2.runtime.terminate(&m.id, TERMINATE_GRACE);
        }
        drop(e);
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(account, name));
        self.save();
    }

    fn attach(
        &self,
        account: &str,
        group: &str,
        id: &str,
        a: Attachment,
        raw: RawAttachment,
    ) -> Result<(), ProviderError> {
        self.with_group(account, group, |e| {
            e.attachments.insert(id.to_string(), a);
            e.raw_attachments.insert(id.to_string(), raw);
            let spec = self.build_spec(&e.props, e.group.spec.version, &e.attachments);
            e.group.update_spec(spec, None, now_unix());
            Ok(())
        })
        .map_err(|m| ProviderError::InvalidRequest(format!("AutoScalingGroupName: {m}")))?;
        self.save();
        Ok(())
    }

    fn detach(&self, account: &str, id: &str) {
        let entries = self.account_entries(account);
        for e in entries {
            let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
            e.raw_attachments.remove(id);
            if e.attachments.remove(id).is_some() {
                let spec = self.build_spec(&e.props, e.group.spec.version, &e.attachments);
                e.group.update_spec(spec, None, now_unix());
            }
        }
        self.save();
    }
}

fn info(e: &Entry) -> GroupInfo {
    let g = &e.group;
    GroupInfo {
        name: g.name.clone(),
        min: g.spec.min,
        max: g.spec.max,
        desired: g.desired,
        launch_template: e.template_id.clone(),
        version: g.spec.version,
        target_groups: e.props.target_groups.clone(),
        instances: g
            .members
            .iter()
            .map(|m| InstanceInfo {
                id: m.id.clone(),
                lifecycle_state: m.state.name().to_string(),
                health: if m.ec2_healthy && m.elb_healthy != Some(false) {
                    "Healthy"
                } else {
                    "Unhealthy"
                }
                .into(),
                version: m.version,
                protected: m.protected,
                subnet: m.subnet.clone(),
            })
            .collect(),
        refresh: g.refresh.as_ref().map(|r| {
            format!(
                "InProgress: {} to replace, {}% healthy",
                r.to_replace, r.min_healthy_percentage
            )
        }),
        policies: g.spec.policies.iter().map(|(n, _)| n.clone()).collect(),
        health_check_type: match g.spec.health_check_type {
            spindle_autoscale::group::HealthCheckType::Ec2 => "EC2",
            spindle_autoscale::group::HealthCheckType::Elb => "ELB",
        },
        health_check_grace_period: g.spec.grace_period,
        subnets: g.spec.subnets.clone(),
        created_at: e.created_at,
        refreshes: g.refreshes.iter().map(|r| refresh_info(g, r)).collect(),
    }
}

/// A refresh's progress: the share of the instances it set out to replace that are replaced.
fn refresh_info(g: &Group, r: &spindle_autoscale::RefreshRecord) -> RefreshInfo {
    let running = r.status == spindle_autoscale::RefreshStatus::InProgress;
    let left = if running {
        g.members.iter().filter(|m| m.outdated).count() as u32
    } else {
        0
    };
    let done = r.to_replace.saturating_sub(left);
    RefreshInfo {
        id: r.id.clone(),
        status: if running { "InProgress" } else { "Successful" },
        started_at: r.started_at,
        ended_at: r.ended_at,
        min_healthy_percentage: r.min_healthy_percentage,
        percentage_complete: (done * 100)
            .checked_div(r.to_replace)
            .unwrap_or(if running { 0 } else { 100 }),
        instances_to_update: left,
    }
}

fn group_output(e: &Entry) -> ProviderOutput {
    ProviderOutput {
        physical_id: e.group.name.clone(),
        attributes: [(
            "AutoScalingGroupName".to_string(),
            Value::str(&e.group.name),
        )]
        .into_iter()
        .collect(),
    }
}

/// The instances a batch of actions both deregisters and terminates.
fn draining(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deregister { id }
                if actions
                    .iter()
                    .any(|b| matches!(b, Action::Terminate { id: t } if t == id)) =>
            {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}

/// Reads an attachment's properties: `(group, attachment, name)`.
fn read_attachment(
    kind: Kind,
    logical_id: &str,
    j: &Json,
) -> Result<(String, Attachment, String), ProviderError> {
    Ok(match kind {
        Kind::ScalingPolicy => {
            let x = spec::policy_props(j).map_err(spec_error)?;
            let name = logical_id.to_string();
            let a = if x.enabled {
                Attachment::Policy(name.clone(), x.policy)
            } else {
                Attachment::Disabled
            };
            (x.group, a, name)
        }
        Kind::ScheduledAction => {
            let (g, a) = spec::scheduled_props(j, logical_id).map_err(spec_error)?;
            let name = a.name.clone();
            (g, Attachment::Scheduled(a), name)
        }
        Kind::LifecycleHook => {
            let (g, h) = spec::hook_props(j, logical_id).map_err(spec_error)?;
            let name = h.name.clone();
            (g, Attachment::Hook(h), name)
        }
        Kind::WarmPool => {
            let (g, w) = spec::warm_pool_props(j).map_err(spec_error)?;
            (g, Attachment::WarmPool(w), "warmpool".into())
        }
        other => {
            return Err(ProviderError::Failed(format!(
                "{other} is not an auto scaling group's attachment"
            )))
        }
    })
}

/// Attachment kinds as the state file spells them (`policy`, `scheduled`, `hook`,
/// `warmpool`; anything else was read as a warm pool, and still is).
mod attachment_kind {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Kind;

    pub fn serialize<S: Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match kind {
            Kind::ScalingPolicy => "policy",
            Kind::ScheduledAction => "scheduled",
            Kind::LifecycleHook => "hook",
            _ => "warmpool",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "policy" => Kind::ScalingPolicy,
            "scheduled" => Kind::ScheduledAction,
            "hook" => Kind::LifecycleHook,
            _ => Kind::WarmPool,
        })
    }
}

struct AsgProvider {
    asg: Arc<AutoScaling>,
    kind: Kind,
}

impl AsgProvider {
    /// The attachment a resource describes and the group it attaches to.
    fn attachment(
        &self,
        cx: &ResourceCx<'_>,
        p: &BTreeMap<String, Value>,
    ) -> Result<(String, String, Attachment, RawAttachment), ProviderError> {
        let j = json(p);
        let (group, a, name) = read_attachment(self.kind, cx.logical_id, &j)?;
        let raw = RawAttachment {
            kind: self.kind,
            logical_id: cx.logical_id.to_string(),
            props: j,
        };
        let id = format!(
            "arn:aws:autoscaling:{}:{}:{}:{}:autoScalingGroupName/{group}:{name}",
            cx.context.region,
            cx.context.account_id,
            match self.kind {
                Kind::ScalingPolicy => "scalingPolicy",
                Kind::ScheduledAction => "scheduledUpdateGroupAction",
                Kind::LifecycleHook => "lifecycleHook",
                _ => "warmPool",
            },
            &derived_id("x", cx)[2..],
        );
        Ok((group, id, a, raw))
    }
}

impl Provider for AsgProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            if self.kind == Kind::AutoScalingGroup {
                return self.asg.create_group(&cx, &req.properties);
            }
            let (group, id, a, raw) = self.attachment(&cx, &req.properties)?;
            self.asg
                .attach(&cx.context.account_id, &group, &id, a, raw)?;
            let mut attributes = BTreeMap::new();
            if self.kind == Kind::ScalingPolicy {
                attributes.insert("Arn".into(), Value::str(&id));
                attributes.insert("PolicyName".into(), Value::str(cx.logical_id));
            }
            Ok(ProviderOutput {
                physical_id: id,
                attributes,
            })
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            if self.kind == Kind::AutoScalingGroup {
                return self.asg.update_group(&req);
            }
            let cx = req.cx;
            let (group, _, a, raw) = self.attachment(&cx, &req.properties)?;
            self.asg.detach(&cx.context.account_id, &req.physical_id);
            self.asg
                .attach(&cx.context.account_id, &group, &req.physical_id, a, raw)?;
            Ok(ProviderOutput {
                physical_id: req.physical_id.clone(),
                attributes: req.previous_attributes.clone(),
            })
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let account = req.cx.context.account_id.clone();
            if self.kind == Kind::AutoScalingGroup {
                let asg = self.asg.clone();
                let name = req.physical_id.clone();
                tokio::task::spawn_blocking(move || asg.delete_group(&account, &name))
                    .await
                    .map_err(|e| ProviderError::Failed(e.to_string()))?;
            } else {
                self.asg.detach(&account, &req.physical_id);
            }
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let account = &req.cx.context.account_id;
            if self.kind != Kind::AutoScalingGroup {
                let found = req.physical_id.as_ref().is_some_and(|id| {
                    let g = self.asg.groups.lock().unwrap_or_else(|p| p.into_inner());
                    g.values().any(|e| {
                        e.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .attachments
                            .contains_key(id)
                    })
                });
                return Ok(found.then(|| ReadOutput {
                    physical_id: req.physical_id.clone().unwrap_or_default(),
                    properties: req.properties.clone(),
                    attributes: BTreeMap::new(),
                }));
            }
            let e = match &req.physical_id {
                Some(name) => self.asg.entry(account, name),
                None => {
                    let g = self.asg.groups.lock().unwrap_or_else(|p| p.into_inner());
                    g.values()
                        .find(|e| e.lock().unwrap_or_else(|p| p.into_inner()).token == req.cx.token)
                        .cloned()
                }
            };
            Ok(e.map(|e| {
                let e = e.lock().unwrap_or_else(|p| p.into_inner());
                let out = group_output(&e);
                ReadOutput {
                    physical_id: out.physical_id,
                    properties: req.properties.clone(),
                    attributes: out.attributes,
                }
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instances_deregistered_and_terminated_together_drain_first() {
        let d = |id: &str| Action::Deregister { id: id.into() };
        let t = |id: &str| Action::Terminate { id: id.into() };
        let batch = [d("i-a"), t("i-a"), d("i-b"), t("i-c")];
        assert_eq!(draining(&batch), vec!["i-a".to_string()]);
        assert!(draining(&[]).is_empty());
    }
}
