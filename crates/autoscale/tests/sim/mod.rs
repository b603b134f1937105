//! A simulated executor for the planner: launches succeed at once with ids `i-1`, `i-2`, …
//! (or fail while `fail_launches` is set), and every action is recorded.

#![allow(dead_code)]

use std::collections::BTreeSet;

use spindle_autoscale::group::{HealthCheckType, TerminationPolicy};
use spindle_autoscale::{Action, Group, GroupSpec, Rules, Window};

pub fn spec(min: u32, max: u32) -> GroupSpec {
    GroupSpec {
        min,
        max,
        version: 1,
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        health_check_type: HealthCheckType::Ec2,
        grace_period: 0,
        warmup: 0,
        termination_policies: vec![TerminationPolicy::Default],
        protect_new: false,
        max_lifetime: None,
        update_min_healthy_percentage: 100,
        policies: Vec::new(),
        scheduled: Vec::new(),
        hooks: Vec::new(),
        warm_pool: None,
        rules: Rules::default(),
    }
}

pub struct Sim {
    pub group: Group,
    pub now: u64,
    pub next_id: u32,
    pub fail_launches: Option<String>,
    /// Instances the executor has running (launched, not terminated).
    pub running: BTreeSet<String>,
    pub paused: BTreeSet<String>,
    pub registered: BTreeSet<String>,
    /// Every action, with the second it was asked for.
    pub log: Vec<(u64, Action)>,
}

impl Sim {
    pub fn new(spec: GroupSpec, desired: u32) -> Sim {
        Sim {
            group: Group::new("web", spec, desired),
            now: 1_000,
            next_id: 1,
            fail_launches: None,
            running: BTreeSet::new(),
            paused: BTreeSet::new(),
            registered: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    pub fn exec(&mut self, actions: Vec<Action>) -> Vec<Action> {
        for a in &actions {
            self.log.push((self.now, a.clone()));
            match a {
                Action::Launch { request, .. } => {
                    let r = match &self.fail_launches {
                        Some(e) => Err(e.clone()),
                        None => {
                            let id = format!("i-{}", self.next_id);
                            self.next_id += 1;
                            self.running.insert(id.clone());
                            Ok(id)
                        }
                    };
                    self.group.launched(*request, r, self.now);
                }
                Action::Terminate { id } => {
                    self.running.remove(id);
                    self.paused.remove(id);
                    assert!(
                        !self.registered.contains(id),
                        "{id} terminated while registered"
                    );
                }
                Action::Pause { id } => {
                    self.paused.insert(id.clone());
                }
                Action::Resume { id } => {
                    self.paused.remove(id);
                }
                Action::Register { id } => {
                    assert!(
                        self.running.contains(id) && !self.paused.contains(id),
                        "{id} registered but not running"
                    );
                    self.registered.insert(id.clone());
                }
                Action::Deregister { id } => {
                    self.registered.remove(id);
                }
            }
        }
        actions
    }

    /// One second: tick with `w` and execute.
    pub fn step(&mut self, w: &Window) -> Vec<Action> {
        self.now += 1;
        let a = self.group.tick(w, self.now);
        self.exec(a)
    }

    pub fn steps(&mut self, n: u32) {
        let w = Window::new(1);
        for _ in 0..n {
            self.step(&w);
        }
    }

    /// Kills an instance (`kill -9`): the executor sees it gone and reports it.
    pub fn kill(&mut self, id: &str) {
        self.running.remove(id);
        self.group.observe_health(id, false, None);
    }

    pub fn in_service(&self) -> usize {
        self.group.in_service().count()
    }

    pub fn ids(&self, state: &str) -> Vec<String> {
        self.group
            .members
            .iter()
            .filter(|m| m.state.name() == state)
            .map(|m| m.id.clone())
            .collect()
    }

    pub fn causes(&self) -> Vec<String> {
        self.group
            .activities
            .iter()
            .map(|a| format!("{}: {} ({})", a.at - 1_000, a.description, a.cause))
            .collect()
    }
}
