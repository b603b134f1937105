//! The group state machine, driven through a simulated executor: capacity, health
//! replacement, termination policies, protection, refresh, warm pools, hooks, schedules,
//! lifetime and launch failures.

mod sim;

use spindle_autoscale::group::{
    HealthCheckType, Hook, HookResult, PoolState, TerminationPolicy, Transition, WarmPool,
};
use spindle_autoscale::schedule::{parse_time, Cron, ScheduledAction};
use spindle_autoscale::{Action, ActivityStatus, RefreshStatus, Window};

use sim::{spec, Sim};

fn launches(a: &[Action]) -> usize {
    a.iter()
        .filter(|a| matches!(a, Action::Launch { .. }))
        .count()
}

fn terminated(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|a| match a {
            Action::Terminate { id } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn fills_to_desired_across_subnets() {
    let mut s = Sim::new(spec(1, 5), 3);
    let a = s.step(&Window::new(1));
    assert_eq!(launches(&a), 3);
    let subnets: Vec<&str> = a
        .iter()
        .filter_map(|a| match a {
            Action::Launch { subnet, .. } => Some(subnet.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(subnets, vec!["subnet-a", "subnet-b", "subnet-a"]);
    s.steps(1);
    assert_eq!(s.in_service(), 3);
    assert_eq!(s.registered.len(), 3);
    s.steps(5);
    assert_eq!(s.group.members.len(), 3, "steady: nothing more launched");
}

#[test]
fn launched_instances_can_enter_service_in_the_second_they_were_launched() {
    let mut s = Sim::new(spec(1, 5), 2);
    let a = s.step(&Window::new(1));
    assert_eq!(launches(&a), 2);
    assert_eq!(s.in_service(), 0);
    // The executor admits them right after reporting the launches, as the daemon does.
    let now = s.now;
    let admitted = s.group.admit_pending(now);
    let admitted = s.exec(admitted);
    assert_eq!(
        admitted,
        vec![
            Action::Register { id: "i-1".into() },
            Action::Register { id: "i-2".into() }
        ]
    );
    assert_eq!(s.in_service(), 2);
    assert!(
        s.group.admit_pending(now).is_empty(),
        "nothing pending twice"
    );
    s.steps(1);
    assert_eq!(
        s.registered.len(),
        2,
        "the next tick registers nothing again"
    );
}

#[test]
fn a_killed_instance_is_replaced_in_the_same_second() {
    let mut s = Sim::new(spec(1, 5), 2);
    s.steps(2);
    s.kill("i-1");
    let a = s.step(&Window::new(1));
    assert_eq!(a[0], Action::Deregister { id: "i-1".into() });
    assert_eq!(a[1], Action::Terminate { id: "i-1".into() });
    assert_eq!(launches(&a), 1);
    assert!(
        s.causes().iter().any(|c| c
            .contains("instance i-1 was taken out of service in response to an EC2 health check")),
        "{:?}",
        s.causes()
    );
    s.steps(1);
    assert_eq!(s.in_service(), 2);
}

#[test]
fn elb_health_waits_for_the_grace_period() {
    let mut sp = spec(1, 5);
    sp.health_check_type = HealthCheckType::Elb;
    sp.grace_period = 10;
    let mut s = Sim::new(sp, 1);
    s.steps(2);
    s.group.observe_health("i-1", true, Some(false));
    s.steps(5);
    assert_eq!(s.ids("InService"), vec!["i-1"], "inside the grace period");
    s.steps(6);
    assert!(
        terminated(&s.log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>())
            .contains(&"i-1".to_string())
    );
    assert_eq!(s.ids("InService"), vec!["i-2"]);
}

#[test]
fn with_elb_health_a_refresh_keeps_the_old_instance_until_the_new_one_is_healthy() {
    let mut sp = spec(1, 5);
    sp.health_check_type = HealthCheckType::Elb;
    let mut s = Sim::new(sp, 1);
    s.steps(2);
    s.group.start_refresh(100, s.now).unwrap();
    s.steps(5);
    // i-2 is in service but the load balancer has no verdict yet: i-1 keeps serving.
    assert_eq!(s.ids("InService"), vec!["i-1", "i-2"]);
    assert!(s.registered.contains("i-1"));
    s.group.observe_health("i-2", true, Some(true));
    s.steps(2);
    assert_eq!(s.ids("InService"), vec!["i-2"]);
    assert!(!s.registered.contains("i-1"));
}

#[test]
fn scale_in_follows_termination_policies_and_protection() {
    let mut sp = spec(1, 6);
    sp.termination_policies = vec![TerminationPolicy::NewestInstance];
    sp.subnets = vec!["subnet-a".into()];
    // One launch per second, so launch times differ.
    let mut s2 = Sim::new(sp, 1);
    s2.steps(1);
    s2.group.set_desired(2, s2.now, "test").unwrap();
    s2.steps(1);
    s2.group.set_desired(3, s2.now, "test").unwrap();
    s2.steps(1);
    s2.group.set_desired(2, s2.now, "test").unwrap();
    let a = s2.step(&Window::new(1));
    assert_eq!(terminated(&a), vec!["i-3"], "the newest goes");
    // Protected instances are never chosen; with all protected, nothing goes.
    let mut sp = spec(1, 6);
    sp.protect_new = true;
    let mut s3 = Sim::new(sp, 3);
    s3.steps(2);
    s3.group.set_desired(1, s3.now, "test").unwrap();
    let a = s3.step(&Window::new(1));
    assert!(terminated(&a).is_empty());
    assert_eq!(s3.in_service(), 3);
    assert!(s3
        .group
        .set_desired(9, s3.now, "test")
        .unwrap_err()
        .contains("outside MinSize 1 .. MaxSize 6"));
}

#[test]
fn instance_refresh_never_drops_below_desired() {
    let mut s = Sim::new(spec(1, 8), 4);
    s.steps(2);
    s.group.spec.version = 2;
    s.group.start_refresh(50, s.now).unwrap();
    assert!(
        s.group.start_refresh(50, s.now).is_err(),
        "one refresh at a time"
    );
    let mut min_serving = usize::MAX;
    let mut max_members = 0;
    for _ in 0..20 {
        s.steps(1);
        min_serving = min_serving.min(s.registered.len());
        max_members = max_members.max(s.group.members.len());
    }
    assert_eq!(
        min_serving, 4,
        "capacity in service never fell below desired"
    );
    assert_eq!(max_members, 6, "batches of desired − 50% = 2 above desired");
    assert!(s.group.refresh.is_none());
    // The history keeps the one refresh, finished; a second one gets its own id.
    let first = s.group.refreshes.clone();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].status, RefreshStatus::Successful);
    assert_eq!(first[0].to_replace, 4);
    assert!(first[0].ended_at.is_some_and(|e| e > first[0].started_at));
    s.group.start_refresh(100, s.now).unwrap();
    let second = &s.group.refreshes[1];
    assert_eq!(second.status, RefreshStatus::InProgress);
    assert_eq!(second.ended_at, None);
    assert_ne!(second.id, first[0].id);
    assert_eq!(second.id.len(), 36, "UUID-shaped: {}", second.id);
    s.steps(20);
    assert_eq!(s.group.refreshes[1].status, RefreshStatus::Successful);
    assert!(s
        .group
        .members
        .iter()
        .all(|m| m.version == 2 && !m.outdated));
    assert!(
        s.causes()
            .last()
            .unwrap()
            .contains("Instance refresh: replaced 4 instances"),
        "{:?}",
        s.causes()
    );
}

#[test]
fn launch_template_change_rolls_by_update_policy() {
    let mut s = Sim::new(spec(1, 8), 2);
    s.steps(2);
    let mut sp = s.group.spec.clone();
    sp.version = 3;
    sp.update_min_healthy_percentage = 100;
    s.group.update_spec(sp, None, s.now);
    for _ in 0..10 {
        s.steps(1);
        assert!(s.registered.len() >= 2);
        assert!(s.group.members.len() <= 3, "one at a time at 100%");
    }
    assert!(s.group.members.iter().all(|m| m.version == 3));
}

#[test]
fn launch_hook_holds_until_completed_or_timeout() {
    let mut sp = spec(1, 4);
    sp.hooks = vec![Hook {
        name: "warm-cache".into(),
        transition: Transition::Launching,
        timeout: 5,
        default_result: HookResult::Abandon,
    }];
    let mut s = Sim::new(sp, 2);
    s.steps(2);
    assert_eq!(s.ids("Pending:Wait"), vec!["i-1", "i-2"]);
    assert!(s.registered.is_empty());
    let a = s
        .group
        .complete_lifecycle_action("i-1", "warm-cache", HookResult::Continue, s.now)
        .unwrap();
    s.exec(a);
    assert_eq!(s.ids("InService"), vec!["i-1"]);
    assert!(s
        .group
        .complete_lifecycle_action("i-1", "warm-cache", HookResult::Continue, s.now)
        .unwrap_err()
        .contains("not waiting"));
    s.steps(6);
    // i-2 timed out with ABANDON: terminated, and a replacement waits on the hook.
    assert!(!s.running.contains("i-2"));
    assert!(s.causes().iter().any(
        |c| c.contains("lifecycle hook warm-cache timed out after 5 s; default result ABANDON")
    ));
    assert_eq!(s.ids("Pending:Wait"), vec!["i-3"]);
}

#[test]
fn terminate_hook_waits_then_terminates() {
    let mut sp = spec(1, 4);
    sp.hooks = vec![Hook {
        name: "drain".into(),
        transition: Transition::Terminating,
        timeout: 3,
        default_result: HookResult::Continue,
    }];
    let mut s = Sim::new(sp, 2);
    s.steps(2);
    s.group.set_desired(1, s.now, "test").unwrap();
    let a = s.step(&Window::new(1));
    assert!(a.iter().any(|a| matches!(a, Action::Deregister { .. })));
    assert!(terminated(&a).is_empty());
    assert_eq!(s.ids("Terminating:Wait").len(), 1);
    s.steps(3);
    assert_eq!(s.group.members.len(), 1);
    assert_eq!(s.running.len(), 1);
}

#[test]
fn warm_pool_instances_join_without_a_boot() {
    let mut sp = spec(1, 4);
    sp.warm_pool = Some(WarmPool {
        min_size: 2,
        max_prepared: Some(3),
        state: PoolState::Stopped,
    });
    let mut s = Sim::new(sp, 1);
    s.steps(3);
    assert_eq!(s.ids("Warmed:Stopped").len(), 2);
    assert_eq!(s.paused.len(), 2);
    s.group.set_desired(2, s.now, "test").unwrap();
    let a = s.step(&Window::new(1));
    assert_eq!(a[0], Action::Resume { id: "i-2".into() });
    assert_eq!(a[1], Action::Register { id: "i-2".into() });
    assert_eq!(s.in_service(), 2, "in service within the same second");
    // The pool is refilled to max(MinSize 2, 3 − desired 2) = 2.
    s.steps(2);
    assert_eq!(s.ids("Warmed:Stopped").len(), 2);
}

#[test]
fn failed_launches_back_off_and_say_why() {
    let mut s = Sim::new(spec(1, 4), 1);
    s.fail_launches = Some("image ami-0000 not found".into());
    let mut tries = Vec::new();
    for _ in 0..20 {
        let a = s.step(&Window::new(1));
        if launches(&a) > 0 {
            tries.push(s.now - 1_000);
        }
    }
    assert_eq!(tries, vec![1, 2, 4, 8, 16], "1, 2, 4, 8 s apart");
    let failed = s
        .group
        .activities
        .iter()
        .filter(|a| a.status == ActivityStatus::Failed)
        .count();
    assert_eq!(failed, 5);
    assert!(s.causes()[0].contains("launch failed: image ami-0000 not found; retrying in 1 s"));
    s.fail_launches = None;
    s.steps(20);
    assert_eq!(s.in_service(), 1, "recovers once launches work");
}

#[test]
fn max_instance_lifetime_replaces_old_instances() {
    let mut sp = spec(1, 4);
    sp.max_lifetime = Some(60);
    let mut s = Sim::new(sp, 2);
    s.steps(2);
    s.steps(59);
    assert_eq!(s.ids("InService"), vec!["i-1", "i-2"]);
    for _ in 0..6 {
        s.steps(1);
        assert!(s.registered.len() >= 2);
    }
    assert!(
        !s.running.contains("i-1") && !s.running.contains("i-2"),
        "{:?}",
        s.running
    );
}

#[test]
fn scheduled_action_sets_capacity() {
    let mut sp = spec(1, 4);
    let at = 1_005;
    sp.scheduled = vec![ScheduledAction {
        name: "morning".into(),
        recurrence: None,
        start: Some(at),
        end: None,
        min: Some(2),
        max: Some(6),
        desired: Some(5),
    }];
    let mut s = Sim::new(sp, 1);
    s.steps(4);
    assert_eq!(s.group.desired, 1);
    s.steps(2);
    assert_eq!(
        (s.group.spec.min, s.group.spec.max, s.group.desired),
        (2, 6, 5)
    );
    assert!(s
        .causes()
        .iter()
        .any(|c| c.contains("scheduled action morning: desired 1 → 5")));
    // A recurring action's cron is read in UTC.
    let c = Cron::parse("0 9 * * *").unwrap();
    assert!(c.matches(parse_time("2026-11-27T09:00:00Z").unwrap()));
}
