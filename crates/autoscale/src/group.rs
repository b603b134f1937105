//! The group controller as a pure state machine: observed state + metrics + time → actions.
//!
//! [`Group::tick`] is called once a second with the metrics window; it updates the group's
//! own bookkeeping and returns the [`Action`]s for the executor (launch, terminate, pause,
//! resume, register, deregister). The executor reports back with [`Group::launched`],
//! [`Group::observe_health`] and [`Group::complete_lifecycle_action`]; nothing here does
//! I/O or reads a clock.
//!
//! ## Rules
//! - **Capacity.** Instances that count are those pending, waiting on a launch hook or in
//!   service. Fewer than desired: take warm-pool instances first (a resume, milliseconds),
//!   then launch into the subnet with the fewest instances. More than desired: terminate by
//!   the termination policies, never a protected instance.
//! - **Health.** An instance whose process is gone is replaced at once (EC2 check). With
//!   `HealthCheckType: ELB` an instance the load balancer reports unhealthy is replaced once
//!   its `HealthCheckGracePeriod` has passed since launch.
//! - **Replacement is launch-before-terminate.** Outdated instances (an instance refresh, a
//!   launch template version change, `MaxInstanceLifetime`) are replaced in batches of
//!   `desired − ceil(desired × MinHealthyPercentage / 100)` (at least 1): the batch is
//!   launched above desired capacity, and an old instance is deregistered and terminated
//!   only when a new one is in service, so serving capacity never drops below desired. With
//!   `HealthCheckType: ELB` a new instance counts as serving only once the load balancer
//!   reports it healthy (a target still in its first health checks takes no traffic).
//! - **Launch failures** (a missing image, an exhausted subnet) record a failed activity
//!   with the reason and back off (1, 2, 4 … 30 s), so the group is never stuck and never
//!   spins.
//! - **Lifecycle hooks** hold an instance in `Pending:Wait` / `Terminating:Wait` until
//!   `complete_lifecycle_action` or `HeartbeatTimeout`, then apply the result (or the
//!   `DefaultResult`); `ABANDON` on launch terminates the instance.
//! - **Warm pool.** Kept at `max(MinSize, MaxGroupPreparedCapacity − desired)` instances,
//!   booted then paused (`Stopped`/`Hibernated` pools) or left running (`Running`).

use std::collections::BTreeMap;

use crate::metrics::Window;
use crate::policy::{decide, GroupView, Policy, Rules};
use crate::schedule::ScheduledAction;

/// `HealthCheckType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckType {
    Ec2,
    Elb,
}

/// `TerminationPolicies` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationPolicy {
    Default,
    OldestInstance,
    NewestInstance,
    OldestLaunchTemplate,
    OldestLaunchConfiguration,
    ClosestToNextInstanceHour,
    AllocationStrategy,
}

/// `LifecycleTransition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Launching,
    Terminating,
}

/// `CONTINUE` or `ABANDON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookResult {
    Continue,
    Abandon,
}

/// An `AWS::AutoScaling::LifecycleHook`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub name: String,
    pub transition: Transition,
    pub timeout: u64,
    pub default_result: HookResult,
}

/// `PoolState` of a warm pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    /// Paused (freezer): no CPU, memory kept. `Hibernated` means the same here.
    Stopped,
    Running,
}

/// An `AWS::AutoScaling::WarmPool`.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmPool {
    pub min_size: u32,
    pub max_prepared: Option<u32>,
    pub state: PoolState,
}

/// The group's configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub min: u32,
    pub max: u32,
    /// Launch template version the group launches now (a change starts a rolling update).
    pub version: u32,
    pub subnets: Vec<String>,
    pub health_check_type: HealthCheckType,
    pub grace_period: u64,
    pub warmup: u64,
    pub termination_policies: Vec<TerminationPolicy>,
    pub protect_new: bool,
    pub max_lifetime: Option<u64>,
    /// `MinInstancesInService` of `AutoScalingRollingUpdate`, as a percentage, for updates
    /// started by a launch template change.
    pub update_min_healthy_percentage: u32,
    pub policies: Vec<(String, Policy)>,
    pub scheduled: Vec<ScheduledAction>,
    pub hooks: Vec<Hook>,
    pub warm_pool: Option<WarmPool>,
    pub rules: Rules,
}

/// AWS lifecycle states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Pending,
    PendingWait {
        hook: String,
        deadline: u64,
    },
    InService,
    TerminatingWait {
        hook: String,
        deadline: u64,
    },
    /// Booted into the warm pool, waiting to be paused.
    WarmedPending,
    /// In the warm pool (paused unless the pool is `Running`).
    Warmed,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::PendingWait { .. } => "Pending:Wait",
            State::InService => "InService",
            State::TerminatingWait { .. } => "Terminating:Wait",
            State::WarmedPending => "Warmed:Pending",
            State::Warmed => "Warmed:Stopped",
        }
    }

    fn counts(&self) -> bool {
        matches!(
            self,
            State::Pending | State::PendingWait { .. } | State::InService
        )
    }
}

/// One instance of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub subnet: String,
    pub version: u32,
    pub state: State,
    pub launched_at: u64,
    pub in_service_at: Option<u64>,
    pub protected: bool,
    /// Whether the process runs (EC2 status check).
    pub ec2_healthy: bool,
    /// The load balancer's verdict, when it has one.
    pub elb_healthy: Option<bool>,
    /// Marked for replacement (refresh, lifetime).
    pub outdated: bool,
}

/// What the executor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Launch one instance; report with [`Group::launched`] and this request number.
    Launch {
        request: u64,
        subnet: String,
        version: u32,
        warm: bool,
    },
    Terminate {
        id: String,
    },
    /// Freeze a warm-pool instance.
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Add to the group's target groups.
    Register {
        id: String,
    },
    Deregister {
        id: String,
    },
}

/// `Successful`, `Failed`, `InProgress`, `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityStatus {
    Successful,
    Failed,
    InProgress,
}

/// A scaling activity, as `spindle asg activities` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub at: u64,
    pub description: String,
    pub cause: String,
    pub status: ActivityStatus,
}

/// An instance refresh in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    pub started_at: u64,
    pub min_healthy_percentage: u32,
    pub to_replace: u32,
}

/// Instance refreshes kept per group, newest last (`DescribeInstanceRefreshes` reads them).
pub const REFRESH_HISTORY_LIMIT: usize = 50;

/// How an instance refresh stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStatus {
    InProgress,
    Successful,
}

/// One instance refresh of the group, running or finished.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshRecord {
    /// Unique within the group: a UUID-shaped string from the group's name, the start time
    /// and a sequence number, so the planner stays free of randomness.
    pub id: String,
    pub status: RefreshStatus,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub min_healthy_percentage: u32,
    pub to_replace: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct PendingLaunch {
    request: u64,
    subnet: String,
    version: u32,
    warm: bool,
}

/// A group's state: the planner's memory between ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub spec: GroupSpec,
    pub desired: u32,
    pub members: Vec<Member>,
    pub activities: Vec<Activity>,
    pub refresh: Option<Refresh>,
    /// Refreshes started, newest last (at most [`REFRESH_HISTORY_LIMIT`]).
    pub refreshes: Vec<RefreshRecord>,
    pub last_activity: Option<u64>,
    pub policy_last: BTreeMap<String, u64>,
    launching: Vec<PendingLaunch>,
    next_request: u64,
    launch_failures: u32,
    next_launch_at: u64,
    last_tick: Option<u64>,
}

/// Activities kept per group (the oldest are dropped).
pub const ACTIVITY_LIMIT: usize = 1000;

/// A refresh id: `gggggggg-tttt-tttt-ssss-ssssssssssss` from a hash of the group's name (g), the
/// start time (t) and the sequence number (s), shaped like AWS's UUIDs.
fn refresh_id(group: &str, now: u64, seq: u64) -> String {
    let g = group.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!(
        "{g:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (now >> 16) & 0xffff,
        now & 0xffff,
        (seq >> 48) & 0xffff,
        seq & 0xffff_ffff_ffff
    )
}

/// The sequence number back from a [`refresh_id`].
fn refresh_seq(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

impl Group {
    /// A new group at `desired` (the caller has validated it lies in `[min, max]`).
    pub fn new(name: &str, spec: GroupSpec, desired: u32) -> Group {
        Group {
            name: name.to_string(),
            spec,
            desired,
            members: Vec::new(),
            activities: Vec::new(),
            refresh: None,
            refreshes: Vec::new(),
            last_activity: None,
            policy_last: BTreeMap::new(),
            launching: Vec::new(),
            next_request: 1,
            launch_failures: 0,
            next_launch_at: 0,
            last_tick: None,
        }
    }

    fn activity(&mut self, at: u64, description: String, cause: String, status: ActivityStatus) {
        self.activities.push(Activity {
            at,
            description,
            cause,
            status,
        });
        if self.activities.len() > ACTIVITY_LIMIT {
            let n = self.activities.len() - ACTIVITY_LIMIT;
            self.activities.drain(..n);
        }
    }

    /// Sets the desired capacity, recording an activity with `why` when it changes.
    fn change_desired(&mut self, n: u32, now: u64, why: &str) {
        if n == self.desired {
            return;
        }
        let from = self.desired;
        self.desired = n;
        self.last_activity = Some(now);
        self.activity(
            now,
            format!("Setting desired capacity from {from} to {n}"),
            format!("{why}: desired {from} → {n}"),
            ActivityStatus::Successful,
        );
    }

    /// Members counting toward capacity.
    pub fn capacity(&self) -> u32 {
        (self.members.iter().filter(|m| m.state.counts()).count()
            + self.launching.iter().filter(|l| !l.warm).count()) as u32
    }

    /// Members in service.
    pub fn in_service(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.state == State::InService)
    }

    /// Whether an in-service member is past its warm-up at `now`.
    pub fn is_ready(&self, m: &Member, now: u64) -> bool {
        m.state == State::InService && m.in_service_at.is_some_and(|t| now >= t + self.spec.warmup)
    }

    /// Sets the desired capacity by hand (`set-desired`). Refused outside `[min, max]`.
    pub fn set_desired(&mut self, n: u32, now: u64, who: &str) -> Result<(), String> {
        if n < self.spec.min || n > self.spec.max {
            return Err(format!(
                "desired capacity {n} is outside MinSize {} .. MaxSize {}",
                self.spec.min, self.spec.max
            ));
        }
        self.change_desired(n, now, &format!("{who} set the desired capacity"));
        Ok(())
    }

    /// Starts an instance refresh: every instance launched before now is replaced.
    pub fn start_refresh(&mut self, min_healthy_percentage: u32, now: u64) -> Result<(), String> {
        if min_healthy_percentage > 100 {
            return Err(format!(
                "MinHealthyPercentage {min_healthy_percentage} must be between 0 and 100"
            ));
        }
        if self.refresh.is_some() {
            return Err(format!(
                "an instance refresh of {} is already in progress",
                self.name
            ));
        }
        let mut n = 0;
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.state.counts() || m.state == State::Warmed)
        {
            m.outdated = true;
            n += 1;
        }
        self.refresh = Some(Refresh {
            started_at: now,
            min_healthy_percentage,
            to_replace: n,
        });
        let seq = self.refreshes.last().map_or(1, |r| refresh_seq(&r.id) + 1);
        self.refreshes.push(RefreshRecord {
            id: refresh_id(&self.name, now, seq),
            status: RefreshStatus::InProgress,
            started_at: now,
            ended_at: None,
            min_healthy_percentage,
            to_replace: n,
        });
        if self.refreshes.len() > REFRESH_HISTORY_LIMIT {
            let n = self.refreshes.len() - REFRESH_HISTORY_LIMIT;
            self.refreshes.drain(..n);
        }
        self.activity(now, format!("Instance refresh: replacing {n} instances, at least {min_healthy_percentage}% healthy"), "an instance refresh was started".into(), ActivityStatus::InProgress);
        Ok(())
    }

    /// The executor's report for a [`Action::Launch`].
    pub fn launched(&mut self, request: u64, result: Result<String, String>, now: u64) {
        let Some(i) = self.launching.iter().position(|l| l.request == request) else {
            return;
        };
        let l = self.launching.remove(i);
        match result {
            Ok(id) => {
                self.launch_failures = 0;
                let warm = l.warm;
                self.members.push(Member {
                    id: id.clone(),
                    subnet: l.subnet,
                    version: l.version,
                    state: if warm {
                        State::WarmedPending
                    } else {
                        State::Pending
                    },
                    launched_at: now,
                    in_service_at: None,
                    protected: self.spec.protect_new && !warm,
                    ec2_healthy: true,
                    elb_healthy: None,
                    outdated: false,
                });
                let into = if warm { "into the warm pool" } else { "" };
                self.activity(
                    now,
                    format!("Launching a new instance {into}: {id}").replace("  ", " "),
                    format!(
                        "the group's capacity is {} of desired {}",
                        self.capacity(),
                        self.desired
                    ),
                    ActivityStatus::Successful,
                );
            }
            Err(reason) => {
                self.launch_failures += 1;
                let backoff = 1u64 << (self.launch_failures - 1).min(5);
                self.next_launch_at = now + backoff.min(30);
                self.activity(
                    now,
                    "Launching a new instance".into(),
                    format!("launch failed: {reason}; retrying in {} s", backoff.min(30)),
                    ActivityStatus::Failed,
                );
            }
        }
    }

    /// The executor's report of an instance's health. An unknown id is ignored.
    pub fn observe_health(&mut self, id: &str, ec2_healthy: bool, elb_healthy: Option<bool>) {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            m.ec2_healthy = ec2_healthy;
            m.elb_healthy = elb_healthy;
        }
    }

    /// `complete-lifecycle-action`: ends the wait of `id` on `hook`.
    pub fn complete_lifecycle_action(
        &mut self,
        id: &str,
        hook: &str,
        result: HookResult,
        now: u64,
    ) -> Result<Vec<Action>, String> {
        let m = self
            .members
            .iter()
            .position(|m| m.id == id)
            .ok_or_else(|| format!("instance {id} is not in group {}", self.name))?;
        let waiting = match &self.members[m].state {
            State::PendingWait { hook: h, .. } | State::TerminatingWait { hook: h, .. } => {
                h == hook
            }
            _ => false,
        };
        if !waiting {
            return Err(format!(
                "instance {id} is not waiting on lifecycle hook {hook} (it is {})",
                self.members[m].state.name()
            ));
        }
        let cause = format!(
            "lifecycle hook {hook} completed with {}",
            if result == HookResult::Continue {
                "CONTINUE"
            } else {
                "ABANDON"
            }
        );
        Ok(self.finish_wait(m, result, now, cause))
    }

    fn finish_wait(
        &mut self,
        i: usize,
        result: HookResult,
        now: u64,
        cause: String,
    ) -> Vec<Action> {
        let id = self.members[i].id.clone();
        match self.members[i].state {
            State::PendingWait { .. } if result == HookResult::Continue => {
                self.members[i].state = State::InService;
                self.members[i].in_service_at = Some(now);
                self.activity(
                    now,
                    format!("Instance {id} entered service"),
                    cause,
                    ActivityStatus::Successful,
                );
                vec![Action::Register { id }]
            }
            _ => {
                self.members.remove(i);
                self.activity(
                    now,
                    format!("Terminating instance {id}"),
                    cause,
                    ActivityStatus::Successful,
                );
                vec![Action::Terminate { id }]
            }
        }
    }

    fn hook(&self, t: Transition) -> Option<&Hook> {
        self.spec.hooks.iter().find(|h| h.transition == t)
    }

    /// Removes member `i` from service: straight to termination, or into `Terminating:Wait`.
    fn retire(&mut self, i: usize, now: u64, cause: String) -> Vec<Action> {
        let id = self.members[i].id.clone();
        let mut out = Vec::new();
        if self.members[i].state == State::InService {
            out.push(Action::Deregister { id: id.clone() });
        }
        match self.hook(Transition::Terminating).cloned() {
            Some(h) if self.members[i].ec2_healthy && self.members[i].state.counts() => {
                self.members[i].state = State::TerminatingWait {
                    hook: h.name.clone(),
                    deadline: now + h.timeout,
                };
                self.activity(
                    now,
                    format!(
                        "Terminating instance {id}: waiting on lifecycle hook {}",
                        h.name
                    ),
                    cause,
                    ActivityStatus::InProgress,
                );
            }
            _ => {
                self.members.remove(i);
                self.activity(
                    now,
                    format!("Terminating instance {id}"),
                    cause,
                    ActivityStatus::Successful,
                );
                out.push(Action::Terminate { id });
            }
        }
        out
    }

    /// The member index scale-in should remove next among `candidates`, by AZ balance and
    /// then the termination policies in order; ties go to the lowest id.
    fn victim(&self, candidates: &[usize]) -> Option<usize> {
        let mut per_subnet: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.iter().filter(|m| m.state.counts()) {
            *per_subnet.entry(m.subnet.as_str()).or_default() += 1;
        }
        let mut c: Vec<usize> = candidates.to_vec();
        let most = c
            .iter()
            .map(|i| {
                per_subnet
                    .get(self.members[*i].subnet.as_str())
                    .copied()
                    .unwrap_or(0)
            })
            .max()?;
        c.retain(|i| {
            per_subnet
                .get(self.members[*i].subnet.as_str())
                .copied()
                .unwrap_or(0)
                == most
        });
        let policies = if self.spec.termination_policies.is_empty() {
            vec![TerminationPolicy::Default]
        } else {
            self.spec.termination_policies.clone()
        };
        for p in policies {
            let key = |i: &usize| -> i64 {
                let m = &self.members[*i];
                match p {
                    TerminationPolicy::OldestInstance => -(m.launched_at as i64),
                    TerminationPolicy::NewestInstance => m.launched_at as i64,
                    TerminationPolicy::OldestLaunchTemplate
                    | TerminationPolicy::OldestLaunchConfiguration
                    | TerminationPolicy::Default => -i64::from(m.version),
                    TerminationPolicy::ClosestToNextInstanceHour => (m.launched_at % 3600) as i64,
                    TerminationPolicy::AllocationStrategy => 0,
                }
            };
            let best = c.iter().map(key).max()?;
            c.retain(|i| key(i) == best);
            if p == TerminationPolicy::Default {
                let k2 = |i: &usize| (self.members[*i].launched_at % 3600) as i64;
                let best = c.iter().map(k2).max()?;
                c.retain(|i| k2(i) == best);
            }
        }
        c.into_iter()
            .min_by(|a, b| self.members[*a].id.cmp(&self.members[*b].id))
    }

    fn launch(&mut self, warm: bool) -> Action {
        let mut per_subnet: BTreeMap<&str, usize> =
            self.spec.subnets.iter().map(|s| (s.as_str(), 0)).collect();
        for m in self.members.iter().filter(|m| m.state.counts()) {
            if let Some(n) = per_subnet.get_mut(m.subnet.as_str()) {
                *n += 1;
            }
        }
        for l in &self.launching {
            if let Some(n) = per_subnet.get_mut(l.subnet.as_str()) {
                *n += 1;
            }
        }
        let subnet = self
            .spec
            .subnets
            .iter()
            .min_by_key(|s| per_subnet.get(s.as_str()).copied().unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        let request = self.next_request;
        self.next_request += 1;
        self.launching.push(PendingLaunch {
            request,
            subnet: subnet.clone(),
            version: self.spec.version,
            warm,
        });
        Action::Launch {
            request,
            subnet,
            version: self.spec.version,
            warm,
        }
    }

    /// Applies a new spec (a template update). A changed launch template version marks
    /// every instance for a rolling replacement; the desired capacity is clamped into the
    /// new bounds.
    pub fn update_spec(&mut self, spec: GroupSpec, desired: Option<u32>, now: u64) {
        let version_changed = spec.version != self.spec.version;
        self.spec = spec;
        let want = desired
            .unwrap_or(self.desired)
            .clamp(self.spec.min, self.spec.max);
        self.change_desired(want, now, "the group's configuration was updated");
        if version_changed && self.refresh.is_none() {
            let p = self.spec.update_min_healthy_percentage;
            let _ = self.start_refresh(p, now);
        }
    }

    /// Pending instances enter service (or wait on the launch hook). Part of every
    /// [`Group::tick`]; the executor also calls it right after reporting launches with
    /// [`Group::launched`], so a launched instance is registered in the same second instead
    /// of the next one. (Instances launched into the warm pool are paused by the next tick,
    /// which leaves them a second to boot.)
    pub fn admit_pending(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let launch_hook = self.hook(Transition::Launching).cloned();
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.state == State::Pending)
        {
            if let Some(h) = &launch_hook {
                m.state = State::PendingWait {
                    hook: h.name.clone(),
                    deadline: now + h.timeout,
                };
            } else {
                m.state = State::InService;
                m.in_service_at = Some(now);
                out.push(Action::Register { id: m.id.clone() });
            }
        }
        out
    }

    /// One second of the controller: everything the group should do now.
    pub fn tick(&mut self, w: &Window, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let after = self.last_tick.unwrap_or(now.saturating_sub(1));
        self.last_tick = Some(now);

        // 1. Scheduled actions.
        for a in self.spec.scheduled.clone() {
            if !a.fires(after, now) {
                continue;
            }
            if let Some(m) = a.min {
                self.spec.min = m;
            }
            if let Some(m) = a.max {
                self.spec.max = m;
            }
            let from = self.desired;
            let to = a
                .desired
                .unwrap_or(self.desired)
                .clamp(self.spec.min, self.spec.max.max(self.spec.min));
            self.desired = to;
            self.last_activity = Some(now);
            self.activity(
                now,
                format!(
                    "Scheduled action {} ran: MinSize {} MaxSize {}",
                    a.name, self.spec.min, self.spec.max
                ),
                format!("scheduled action {}: desired {from} → {to}", a.name),
                ActivityStatus::Successful,
            );
        }

        // 2. Lifecycle hook timeouts.
        let mut i = 0;
        while i < self.members.len() {
            let expired = match &self.members[i].state {
                State::PendingWait { hook, deadline }
                | State::TerminatingWait { hook, deadline }
                    if now >= *deadline =>
                {
                    Some(hook.clone())
                }
                _ => None,
            };
            if let Some(hook) = expired {
                let default = self
                    .spec
                    .hooks
                    .iter()
                    .find(|h| h.name == hook)
                    .map(|h| h.default_result)
                    .unwrap_or(HookResult::Abandon);
                let timeout = self
                    .spec
                    .hooks
                    .iter()
                    .find(|h| h.name == hook)
                    .map(|h| h.timeout)
                    .unwrap_or(0);
                let before = self.members.len();
                let cause = format!(
                    "lifecycle hook {hook} timed out after {timeout} s; default result {}",
                    if default == HookResult::Continue {
                        "CONTINUE"
                    } else {
                        "ABANDON"
                    }
                );
                out.extend(self.finish_wait(i, default, now, cause));
                if self.members.len() < before {
                    continue;
                }
            }
            i += 1;
        }

        // 3. Health: the process gone, or the load balancer's verdict after the grace period.
        let mut i = 0;
        while i < self.members.len() {
            let m = &self.members[i];
            let elb_bad = self.spec.health_check_type == HealthCheckType::Elb
                && m.state == State::InService
                && m.elb_healthy == Some(false)
                && m.in_service_at
                    .is_some_and(|t| now >= t + self.spec.grace_period);
            let gone = !m.ec2_healthy && !matches!(m.state, State::TerminatingWait { .. });
            if gone || elb_bad {
                let id = m.id.clone();
                let why = if gone {
                    "an EC2 health check indicating it has been terminated or stopped"
                } else {
                    "an ELB health check indicating it failed"
                };
                let cause = format!("instance {id} was taken out of service in response to {why}");
                let deregister = m.state == State::InService;
                self.members.remove(i);
                if deregister {
                    out.push(Action::Deregister { id: id.clone() });
                }
                self.activity(
                    now,
                    format!("Terminating instance {id}"),
                    cause,
                    ActivityStatus::Successful,
                );
                out.push(Action::Terminate { id });
                continue;
            }
            i += 1;
        }

        // 4. Pending instances enter service (or wait on the launch hook); warm ones pause.
        out.extend(self.admit_pending(now));
        let pool_state = self.spec.warm_pool.as_ref().map(|p| p.state);
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.state == State::WarmedPending)
        {
            m.state = State::Warmed;
            if pool_state != Some(PoolState::Running) {
                out.push(Action::Pause { id: m.id.clone() });
            }
        }

        // 5. Lifetime.
        if let Some(life) = self.spec.max_lifetime {
            for m in self.members.iter_mut().filter(|m| {
                m.state == State::InService && !m.outdated && now >= m.launched_at + life
            }) {
                m.outdated = true;
            }
        }

        // 6. Policies.
        let warming = self
            .members
            .iter()
            .filter(|m| {
                matches!(m.state, State::Pending | State::PendingWait { .. })
                    || (m.state == State::InService
                        && m.in_service_at.is_none_or(|t| now < t + self.spec.warmup))
            })
            .count() as u32
            + self.launching.iter().filter(|l| !l.warm).count() as u32;
        let view = GroupView {
            now,
            desired: self.desired,
            min: self.spec.min,
            max: self.spec.max,
            warming,
            last_activity: self.last_activity,
            policy_last: self.policy_last.clone(),
        };
        let clamped = self
            .desired
            .clamp(self.spec.min, self.spec.max.max(self.spec.min));
        if clamped != self.desired {
            let from = self.desired;
            self.desired = clamped;
            self.last_activity = Some(now);
            self.activity(now, format!("Setting desired capacity from {from} to {clamped}"), format!("desired capacity {from} was outside MinSize {} .. MaxSize {}: desired {from} → {clamped}", self.spec.min, self.spec.max), ActivityStatus::Successful);
        } else if let Some(d) = decide(&self.spec.policies, &self.spec.rules, w, &view) {
            self.desired = d.to;
            self.last_activity = Some(now);
            self.policy_last.insert(d.policy.clone(), now);
            let verb = if d.to > d.from {
                "Scaling out"
            } else {
                "Scaling in"
            };
            self.activity(
                now,
                format!(
                    "{verb}: policy {} set desired capacity from {} to {}",
                    d.policy, d.from, d.to
                ),
                d.cause,
                ActivityStatus::Successful,
            );
        }

        // 7. Capacity.
        out.extend(self.reconcile(now));

        // 8. Refresh completion.
        if let Some(r) = &self.refresh {
            if !self.members.iter().any(|m| m.outdated) && self.launching.is_empty() {
                let took = now - r.started_at;
                let n = r.to_replace;
                self.refresh = None;
                if let Some(rec) = self
                    .refreshes
                    .last_mut()
                    .filter(|r| r.status == RefreshStatus::InProgress)
                {
                    rec.status = RefreshStatus::Successful;
                    rec.ended_at = Some(now);
                }
                self.activity(
                    now,
                    format!("Instance refresh: replaced {n} instances"),
                    format!("the instance refresh finished in {took} s"),
                    ActivityStatus::Successful,
                );
            }
        }
        out
    }

    fn reconcile(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let desired = self.desired;
        let counts = |g: &Group, outdated: bool| {
            g.members
                .iter()
                .filter(|m| m.state.counts() && m.outdated == outdated)
                .count() as u32
        };
        let pending_new = self.launching.iter().filter(|l| !l.warm).count() as u32;
        let old = counts(self, true);
        let elb = self.spec.health_check_type == HealthCheckType::Elb;
        let good_in_service = self
            .members
            .iter()
            .filter(|m| {
                m.state == State::InService && !m.outdated && (!elb || m.elb_healthy == Some(true))
            })
            .count() as u32;

        // Old instances go once enough new ones serve.
        let surplus = (good_in_service + old).saturating_sub(desired).min(old);
        for _ in 0..surplus {
            let cands: Vec<usize> = (0..self.members.len())
                .filter(|i| self.members[*i].outdated && self.members[*i].state.counts())
                .collect();
            if let Some(v) = self.victim(&cands) {
                let cause = match &self.refresh {
                    Some(_) => "an instance refresh replaced it".to_string(),
                    None => {
                        "it was replaced (launch template changed or MaxInstanceLifetime reached)"
                            .to_string()
                    }
                };
                out.extend(self.retire(v, now, cause));
            }
        }

        // Scale in.
        let good_now = counts(self, false) + pending_new;
        let old_now = counts(self, true);
        if old_now == 0 && good_now > desired {
            let mut excess = good_now - desired;
            // Launch requests can't be cancelled; what they bring is removed next tick.
            while excess > 0 {
                let cands: Vec<usize> = (0..self.members.len())
                    .filter(|i| self.members[*i].state.counts() && !self.members[*i].protected)
                    .collect();
                let Some(v) = self.victim(&cands) else { break };
                let cause =
                    format!("the desired capacity is {desired} and the group had {good_now}");
                out.extend(self.retire(v, now, cause));
                excess -= 1;
            }
        }

        // Scale out (and replacements above desired, by batch).
        let batch = if old > 0 {
            let p = self
                .refresh
                .as_ref()
                .map(|r| r.min_healthy_percentage)
                .unwrap_or(self.spec.update_min_healthy_percentage);
            desired
                .saturating_sub((u64::from(desired) * u64::from(p)).div_ceil(100) as u32)
                .max(1)
        } else {
            0
        };
        let total = counts(self, false) + counts(self, true) + pending_new;
        let good = counts(self, false) + pending_new;
        let want = desired
            .saturating_sub(good)
            .min((desired + batch).saturating_sub(total));
        for _ in 0..want {
            // Warm pool first: a resume, no boot.
            let warm = self
                .members
                .iter()
                .position(|m| m.state == State::Warmed && !m.outdated);
            if let Some(i) = warm {
                let m = &mut self.members[i];
                m.state = State::InService;
                m.in_service_at = Some(now);
                m.protected = self.spec.protect_new;
                let id = m.id.clone();
                if self
                    .spec
                    .warm_pool
                    .as_ref()
                    .is_none_or(|p| p.state != PoolState::Running)
                {
                    out.push(Action::Resume { id: id.clone() });
                }
                out.push(Action::Register { id: id.clone() });
                self.activity(
                    now,
                    format!("Instance {id} left the warm pool and entered service"),
                    format!("the group's capacity was below desired {desired}"),
                    ActivityStatus::Successful,
                );
                continue;
            }
            if now < self.next_launch_at {
                break;
            }
            out.push(self.launch(false));
        }

        // Warm pool: outdated pool instances go; the pool is refilled to its size.
        if let Some(pool) = self.spec.warm_pool.clone() {
            let stale: Vec<String> = self
                .members
                .iter()
                .filter(|m| matches!(m.state, State::Warmed | State::WarmedPending) && m.outdated)
                .map(|m| m.id.clone())
                .collect();
            for id in stale {
                self.members.retain(|m| m.id != id);
                self.activity(
                    now,
                    format!("Terminating warm pool instance {id}"),
                    "it was launched from an outdated launch template".into(),
                    ActivityStatus::Successful,
                );
                out.push(Action::Terminate { id });
            }
            let prepared = pool.max_prepared.unwrap_or(self.spec.max);
            let size = pool.min_size.max(prepared.saturating_sub(self.desired));
            let have = self
                .members
                .iter()
                .filter(|m| matches!(m.state, State::Warmed | State::WarmedPending))
                .count() as u32
                + self.launching.iter().filter(|l| l.warm).count() as u32;
            if have < size && now >= self.next_launch_at {
                for _ in have..size {
                    out.push(self.launch(true));
                }
            } else if have > size {
                for _ in size..have {
                    if let Some(i) = self.members.iter().rposition(|m| m.state == State::Warmed) {
                        let id = self.members.remove(i).id;
                        self.activity(
                            now,
                            format!("Terminating warm pool instance {id}"),
                            format!("the warm pool holds {size}"),
                            ActivityStatus::Successful,
                        );
                        out.push(Action::Terminate { id });
                    }
                }
            }
        }
        out
    }
}
