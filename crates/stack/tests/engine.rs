//! Executor tests with the recording fake provider: fault injection (fail or crash at each
//! provider call of a 20-resource create and update), parallelism, rollback, continue
//! rollback, retain, events, nested stacks, wait conditions and SSM parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use spindle_stack::journal::Journal;
use spindle_stack::ssm::{MemoryParamStore, ParamStore, PutParam};
use spindle_stack::testing::{CrashPoint, FakeProvider};
use spindle_stack::{
    register_builtins, DeployRequest, Engine, EngineError, EngineOptions, FileJournal,
    MemoryJournal, OperationOutcome, ProviderRegistry, Signal, SignalStatus, StackStatus,
};
use spindle_template::{parse, plan, Context, Plan, PlanInput, Value};

const FAKE: &str = "Spindle::Test::Thing";
/// Served by the fake too; `QueueName` is create-only in the registry schemas, so changing
/// it forces a replacement.
const QUEUE: &str = "AWS::SQS::Queue";

struct World {
    journal: Arc<MemoryJournal>,
    fake: Arc<FakeProvider>,
    store: Arc<MemoryParamStore>,
    options: EngineOptions,
}

impl World {
    fn new() -> World {
        World {
            journal: Arc::new(MemoryJournal::new()),
            fake: Arc::new(FakeProvider::new()),
            store: Arc::new(MemoryParamStore::new()),
            options: EngineOptions::default(),
        }
    }

    /// A fresh engine on the same journal, providers' world and store: a restart.
    fn engine(&self) -> Engine {
        let mut r = ProviderRegistry::new();
        register_builtins(&mut r, self.store.clone());
        r.register(FAKE, self.fake.clone())
            .register(QUEUE, self.fake.clone());
        Engine::new(self.journal.clone(), r, self.options.clone())
    }

    /// Every fake resource belongs to some stack (pointed at or retired), and every stack
    /// is in a stable status.
    fn check_no_orphans(&self, engine: &Engine) {
        let mut owned = BTreeSet::new();
        for name in self.journal.stacks().unwrap() {
            let v = engine.stack(&name).unwrap();
            let status = v.status.expect("a stack with records has a status");
            assert!(status.is_stable(), "stack {name} left in {status}");
            assert!(!v.in_progress, "stack {name} still in progress");
            for (_, p) in v.deployed.physical_ids() {
                owned.insert(p);
            }
        }
        for (id, r) in self.fake.world() {
            assert!(
                owned.contains(&id),
                "orphan: {id} ({} of stack {}) is not recorded by any stack",
                r.logical_id,
                r.stack
            );
        }
    }

    /// Every resource the stack points at exists with the recorded properties.
    fn check_world_matches(&self, engine: &Engine, stack: &str) {
        let world = self.fake.world();
        let v = engine.stack(stack).unwrap();
        for (l, r) in &v.deployed.state.resources {
            if r.type_name != FAKE && r.type_name != QUEUE {
                continue;
            }
            let w = world.get(&r.physical_id).unwrap_or_else(|| {
                panic!("{l} ({}) is recorded but does not exist", r.physical_id)
            });
            assert_eq!(w.properties, r.properties, "{l} differs from its record");
        }
    }
}

fn plan_of(src: &str, stack: &str) -> Plan {
    plan_file(src, stack, "stack.yaml")
}

fn plan_file(src: &str, stack: &str, file: &str) -> Plan {
    let t = parse(src, file).unwrap_or_else(|d| panic!("{d}"));
    let input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", stack),
        // The fakes serve real type names (for their replacement rules) with made-up
        // properties; the registry-schema check is tested in spindle-template.
        validate: spindle_template::ValidateOptions {
            registry_schemas: false,
            ..Default::default()
        },
        ..PlanInput::default()
    };
    plan(&t, &input).unwrap_or_else(|d| panic!("{d}"))
}

/// Runs `fut` until it finishes or the fake "crashes" (then the future is dropped, as a
/// killed process would stop).
async fn run_or_crash<F: Future>(fake: &FakeProvider, fut: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = fake.crashed() => None,
        r = fut => Some(r),
    }
}

/// A 20-resource template: a tree (each resource references its parent), a mix of fake
/// things and queues. `version` changes values (in-place updates), queue names
/// (replacements), removes two leaves and adds two resources.
fn twenty(version: u32) -> String {
    let mut s = String::from("Resources:\n");
    for i in 0..20 {
        if version == 2 && (i == 18 || i == 19) {
            continue;
        }
        let ty = if i % 5 == 3 { QUEUE } else { FAKE };
        s.push_str(&format!("  R{i}:\n    Type: {ty}\n    Properties:\n"));
        let value = if version == 2 && i % 4 == 1 {
            format!("v2-{i}")
        } else {
            format!("v1-{i}")
        };
        s.push_str(&format!("      Value: {value}\n"));
        if ty == QUEUE {
            let qname = if version == 2 && i == 8 {
                format!("q{i}-v2")
            } else {
                format!("q{i}")
            };
            s.push_str(&format!("      QueueName: {qname}\n"));
        }
        if i > 0 {
            s.push_str(&format!("      Parent: !GetAtt R{}.Arn\n", (i - 1) / 2));
        }
    }
    if version == 2 {
        s.push_str("  N1:\n    Type: Spindle::Test::Thing\n    Properties:\n      Value: new\n      Parent: !Ref R1\n");
        s.push_str(
            "  N2:\n    Type: Spindle::Test::Thing\n    Properties:\n      Value: !GetAtt R8.Arn\n",
        );
    }
    s.push_str("Outputs:\n  Root:\n    Value: !Ref R0\n");
    s
}

async fn deploy(engine: &Engine, src: &str, stack: &str) -> OperationOutcome {
    engine
        .deploy(DeployRequest::new(plan_of(src, stack)))
        .await
        .unwrap()
}

#[tokio::test]
async fn create_and_update_twenty_cleanly() {
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, &twenty(1), "app").await;
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    assert_eq!(w.fake.world().len(), 20);
    w.check_world_matches(&e, "app");
    // Every provider call was journaled before it was made and answered after.
    let records = w.journal.records("app").unwrap();
    let intents = records
        .iter()
        .filter(|r| matches!(r.entry, spindle_stack::journal::Entry::Intent(_)))
        .count();
    let answered = records
        .iter()
        .filter(
            |r| matches!(&r.entry, spindle_stack::journal::Entry::Outcome(o) if o.token.is_some()),
        )
        .count();
    assert_eq!((intents, answered), (w.fake.calls(), w.fake.calls()));
    let o = deploy(&e, &twenty(2), "app").await;
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    assert_eq!(w.fake.world().len(), 20, "2 removed, 2 added, R8 replaced");
    w.check_world_matches(&e, "app");
    let v = e.stack("app").unwrap();
    assert!(v.deployed.retired.is_empty());
    assert!(!v.deployed.state.resources.contains_key("R18"));
    // R17's parent R8 was replaced, so R17 was updated with the new Arn.
    let r8 = &v.deployed.state.resources["R8"];
    assert_eq!(
        v.deployed.state.resources["R17"].properties["Parent"],
        r8.attributes["Arn"]
    );
    w.check_no_orphans(&e);
    // A change set made before another update is refused.
    let mut req = DeployRequest::new(plan_of(&twenty(1), "app"));
    req.change_set = Some(spindle_template::ChangeSet::default());
    let refused = e.deploy(req).await;
    assert!(
        matches!(refused, Err(EngineError::StaleChangeSet { .. })),
        "{refused:?}"
    );
    // Deploying the same template again is "no updates".
    let again = e
        .deploy(DeployRequest::new(plan_of(&twenty(2), "app")))
        .await;
    assert!(
        matches!(again, Err(EngineError::NoChanges { .. })),
        "{again:?}"
    );
    let o = e.delete_stack("app").await.unwrap();
    assert_eq!(o.status, StackStatus::DeleteComplete);
    assert!(w.fake.world().is_empty());
}

/// Calls of a clean run: the number of fault points to try.
async fn clean_calls(update: bool) -> usize {
    let w = World::new();
    let e = w.engine();
    deploy(&e, &twenty(1), "app").await;
    if !update {
        return w.fake.calls();
    }
    let before = w.fake.calls();
    deploy(&e, &twenty(2), "app").await;
    w.fake.calls() - before
}

#[tokio::test]
async fn create_fails_at_each_call_and_rolls_back() {
    let total = clean_calls(false).await;
    assert_eq!(total, 20);
    for n in 1..=total {
        let w = World::new();
        let e = w.engine();
        w.fake.fail_at(n);
        let o = deploy(&e, &twenty(1), "app").await;
        assert_eq!(
            o.status,
            StackStatus::RollbackComplete,
            "fail at {n}: {o:?}"
        );
        let reason = o.reason.unwrap();
        assert!(
            reason.starts_with("Resource R")
                && reason.contains(&format!("CREATE_FAILED: injected failure at call {n}")),
            "fail at {n}: {reason}"
        );
        assert!(
            w.fake.world().is_empty(),
            "fail at {n}: rollback left {:?}",
            w.fake.world()
        );
        w.check_no_orphans(&e);
    }
}

#[tokio::test]
async fn create_with_disable_rollback_keeps_what_was_made() {
    let w = World::new();
    let e = w.engine();
    w.fake.fail_at(7);
    let mut req = DeployRequest::new(plan_of(&twenty(1), "app"));
    req.disable_rollback = true;
    let o = e.deploy(req).await.unwrap();
    assert_eq!(o.status, StackStatus::CreateFailed);
    assert!(!w.fake.world().is_empty());
    w.check_no_orphans(&e);
    w.check_world_matches(&e, "app");
    // Then an update from CREATE_FAILED is refused and a delete cleans up.
    let o = e.delete_stack("app").await.unwrap();
    assert_eq!(o.status, StackStatus::DeleteComplete);
    assert!(w.fake.world().is_empty());
}

#[tokio::test]
async fn create_crashes_at_each_call_and_recovers() {
    let total = clean_calls(false).await;
    for n in 1..=total {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let w = World::new();
            {
                let e = w.engine();
                w.fake.crash_at(n, point);
                let r = run_or_crash(&w.fake, deploy(&e, &twenty(1), "app")).await;
                assert!(r.is_none(), "crash at {n} {point:?} did not happen");
            }
            w.fake.clear_faults();
            let e = w.engine();
            let outcomes = e.recover().await.unwrap();
            assert_eq!(outcomes.len(), 1, "crash at {n} {point:?}");
            assert_eq!(
                outcomes[0].status,
                StackStatus::RollbackComplete,
                "crash at {n} {point:?}: {outcomes:?}"
            );
            assert!(
                w.fake.world().is_empty(),
                "crash at {n} {point:?}: left {:?}",
                w.fake.world()
            );
            w.check_no_orphans(&e);
            let adopted = e.events("app").unwrap().iter().any(|ev| {
                ev.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("adopted on restart"))
            });
            // (Before: a call running alongside may still have made its resource.)
            if point == CrashPoint::After {
                assert!(adopted, "crash at {n} {point:?}: nothing adopted");
            }
            // The stack can be created again afterwards.
            let o = deploy(&e, &twenty(1), "app").await;
            assert_eq!(
                o.status,
                StackStatus::CreateComplete,
                "crash at {n} {point:?}"
            );
        }
    }
}

/// Deploys v1 cleanly in a fresh world, then resets the call counter baseline.
async fn with_v1() -> (World, Engine) {
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, &twenty(1), "app").await;
    assert_eq!(o.status, StackStatus::CreateComplete);
    (w, e)
}

fn v1_state_props(e: &Engine) -> BTreeMap<String, BTreeMap<String, Value>> {
    e.stack("app")
        .unwrap()
        .deployed
        .state
        .resources
        .into_iter()
        .map(|(l, r)| (l, r.properties))
        .collect()
}

#[tokio::test]
async fn update_fails_at_each_call_and_rolls_back() {
    let total = clean_calls(true).await;
    assert!(total >= 10, "update makes {total} calls");
    let (mut rolled_back, mut completed) = (0, 0);
    for n in 1..=total {
        let (w, e) = with_v1().await;
        let v1 = v1_state_props(&e);
        w.fake.fail_at(n);
        let o = deploy(&e, &twenty(2), "app").await;
        match o.status {
            StackStatus::UpdateRollbackComplete => {
                assert!(
                    o.reason.as_deref().unwrap().contains("injected failure"),
                    "{o:?}"
                );
                assert_eq!(v1_state_props(&e), v1, "fail at {n}: state not rolled back");
                rolled_back += 1;
            }
            // The failure hit a cleanup delete: the update stands and the copy stays retired.
            StackStatus::UpdateComplete => {
                // (A failed dependent also keeps what it depends on: R18 holds R8's old copy.)
                let retired = e.stack("app").unwrap().deployed.retired.len();
                assert!((1..=2).contains(&retired), "fail at {n}: {retired} retired");
                completed += 1;
            }
            other => panic!("fail at {n}: {other} {o:?}"),
        }
        w.check_world_matches(&e, "app");
        w.check_no_orphans(&e);
        // A later delete removes everything, leftovers included.
        let o = e.delete_stack("app").await.unwrap();
        assert_eq!(o.status, StackStatus::DeleteComplete, "fail at {n}");
        assert!(w.fake.world().is_empty(), "fail at {n}");
    }
    // Three cleanup deletes (R8's old copy, R18, R19); every other call is forward.
    assert_eq!((rolled_back, completed), (total - 3, 3));
}

#[tokio::test]
async fn update_crashes_at_each_call_and_recovers() {
    let total = clean_calls(true).await;
    let mut adopted = 0;
    for n in 1..=total {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let (w, e) = with_v1().await;
            let v1 = v1_state_props(&e);
            w.fake.crash_at(n, point);
            let r = run_or_crash(&w.fake, deploy(&e, &twenty(2), "app")).await;
            assert!(r.is_none(), "crash at {n} {point:?} did not happen");
            drop(e);
            w.fake.clear_faults();
            let e = w.engine();
            let outcomes = e.recover().await.unwrap();
            assert_eq!(outcomes.len(), 1);
            match outcomes[0].status {
                StackStatus::UpdateRollbackComplete => {
                    assert_eq!(
                        v1_state_props(&e),
                        v1,
                        "crash at {n} {point:?}: not rolled back"
                    )
                }
                StackStatus::UpdateComplete => {}
                other => panic!("crash at {n} {point:?}: {other} {outcomes:?}"),
            }
            w.check_world_matches(&e, "app");
            w.check_no_orphans(&e);
            adopted += e
                .events("app")
                .unwrap()
                .iter()
                .filter(|ev| {
                    ev.reason
                        .as_deref()
                        .is_some_and(|r| r.contains("adopted on restart"))
                })
                .count();
            let o = e.delete_stack("app").await.unwrap();
            assert_eq!(o.status, StackStatus::DeleteComplete);
            assert!(w.fake.world().is_empty(), "crash at {n} {point:?}");
        }
    }
    // Crashing after a create's effect makes recovery adopt it by its token.
    assert!(adopted >= 3, "{adopted}");
}

/// A failure in the forward phase, then a crash at each call of the rollback.
#[tokio::test]
async fn update_crashes_during_rollback_and_recovers() {
    // Count the calls of a rollback after a failure at call 2.
    let (w, e) = with_v1().await;
    w.fake.fail_at(2);
    let before = w.fake.calls();
    let o = deploy(&e, &twenty(2), "app").await;
    assert_eq!(o.status, StackStatus::UpdateRollbackComplete);
    let total = w.fake.calls() - before;
    assert!(total > 4, "{total}");
    for n in 3..=total {
        let (w, e) = with_v1().await;
        let v1 = v1_state_props(&e);
        w.fake.fail_at(2);
        w.fake.crash_at(n, CrashPoint::After);
        assert!(run_or_crash(&w.fake, deploy(&e, &twenty(2), "app"))
            .await
            .is_none());
        drop(e);
        w.fake.clear_faults();
        let e = w.engine();
        let outcomes = e.recover().await.unwrap();
        assert_eq!(
            outcomes[0].status,
            StackStatus::UpdateRollbackComplete,
            "crash at {n}"
        );
        assert_eq!(v1_state_props(&e), v1);
        w.check_world_matches(&e, "app");
        w.check_no_orphans(&e);
    }
}

#[tokio::test]
async fn independent_resources_run_in_parallel_within_the_bound() {
    let mut src = String::from("Resources:\n");
    for i in 0..6 {
        src.push_str(&format!(
            "  I{i}:\n    Type: {FAKE}\n    Properties: {{Value: x}}\n"
        ));
    }
    src.push_str(&format!(
        "  Join:\n    Type: {FAKE}\n    Properties:\n      Value: !Join [',', [!Ref I0, !Ref I1, !Ref I2, !Ref I3, !Ref I4, !Ref I5]]\n"
    ));
    let mut w = World::new();
    w.options.max_concurrency = 4;
    let e = w.engine();
    assert_eq!(
        deploy(&e, &src, "par").await.status,
        StackStatus::CreateComplete
    );
    let log = w.fake.log();
    let (join, independent): (Vec<_>, Vec<_>) = log.iter().partition(|c| c.logical_id == "Join");
    let overlap = |a: &spindle_stack::testing::CallRecord,
                   b: &spindle_stack::testing::CallRecord| {
        a.start < b.end.unwrap() && b.start < a.end.unwrap()
    };
    let pairs = independent
        .iter()
        .enumerate()
        .flat_map(|(i, a)| independent[i + 1..].iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| overlap(a, b))
        .count();
    assert!(pairs > 0, "independent creates never overlapped: {log:?}");
    // Never more than 4 at once.
    for c in &log {
        let at_once = log
            .iter()
            .filter(|d| d.start <= c.start && c.start < d.end.unwrap())
            .count();
        assert!(at_once <= 4, "{at_once} calls at once: {log:?}");
    }
    // The dependent starts after every dependency finished.
    let last_end = independent.iter().map(|c| c.end.unwrap()).max().unwrap();
    assert!(join[0].start > last_end);
}

#[tokio::test(start_paused = true)]
async fn a_dependent_starts_as_soon_as_its_dependency_is_done() {
    let src = format!(
        "Resources:\n  A:\n    Type: {FAKE}\n    Properties: {{Value: a}}\n  B:\n    Type: {FAKE}\n    Properties: {{Value: !Ref A}}\n  Slow:\n    Type: {FAKE}\n    Properties: {{Value: s, DelayMs: 5000}}\n"
    );
    let w = World::new();
    let e = w.engine();
    assert_eq!(
        deploy(&e, &src, "eager").await.status,
        StackStatus::CreateComplete
    );
    let log = w.fake.log();
    let find = |l: &str| log.iter().find(|c| c.logical_id == l).unwrap().clone();
    assert!(
        find("B").start < find("Slow").end.unwrap(),
        "B waited for Slow: {log:?}"
    );
}

#[tokio::test]
async fn failure_reason_names_the_first_failed_resource_and_events_follow_aws() {
    let src = format!(
        "Resources:\n  Base:\n    Type: {FAKE}\n    Properties: {{Value: b}}\n  Web:\n    Type: {FAKE}\n    Properties: {{Value: !Ref Base, FailOn: create}}\n"
    );
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, &src, "web").await;
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert_eq!(
        o.reason.as_deref(),
        Some("Resource Web failed: CREATE_FAILED: Web was told to fail")
    );
    let events: Vec<String> = e
        .events("web")
        .unwrap()
        .iter()
        .map(|ev| format!("{} {}", ev.logical_id, ev.status))
        .collect();
    assert_eq!(
        events,
        [
            "web CREATE_IN_PROGRESS",
            "Base CREATE_IN_PROGRESS",
            "Base CREATE_COMPLETE",
            "Web CREATE_IN_PROGRESS",
            "Web CREATE_FAILED",
            "web ROLLBACK_IN_PROGRESS",
            "Base DELETE_IN_PROGRESS",
            "Base DELETE_COMPLETE",
            "web ROLLBACK_COMPLETE",
        ]
    );
    assert!(e
        .events("web")
        .unwrap()
        .windows(2)
        .all(|p| p[0].timestamp_ms <= p[1].timestamp_ms));
}

#[tokio::test]
async fn update_rollback_failed_then_continue_rollback() {
    let v1 = format!("Resources:\n  X:\n    Type: {FAKE}\n    Properties: {{Value: one}}\n");
    let v2 = format!(
        "Resources:\n  X:\n    Type: {FAKE}\n    Properties: {{Value: two}}\n  Y:\n    Type: {FAKE}\n    Properties: {{Value: y, FailOn: create}}\n"
    );
    for skip in [false, true] {
        let w = World::new();
        let e = w.engine();
        deploy(&e, &v1, "s").await;
        // Calls: update X, create Y (fails), then the revert of X, which fails too.
        w.fake.fail_at(3);
        let o = deploy(&e, &v2, "s").await;
        assert_eq!(o.status, StackStatus::UpdateRollbackFailed, "{o:?}");
        let reason = o.reason.unwrap();
        assert!(
            reason.starts_with("Resource Y failed: CREATE_FAILED"),
            "{reason}"
        );
        assert!(
            reason.contains("the rollback failed: Resource X failed: UPDATE_FAILED"),
            "{reason}"
        );
        w.check_no_orphans(&e);
        // Deploying is refused until the rollback is finished.
        let refused = e.deploy(DeployRequest::new(plan_of(&v1, "s"))).await;
        assert!(
            matches!(refused, Err(EngineError::InvalidStatus { .. })),
            "{refused:?}"
        );
        let bad = e.continue_rollback("s", &["Y".to_string()]).await;
        assert!(
            matches!(bad, Err(EngineError::CannotSkip { .. })),
            "{bad:?}"
        );
        let skip_list = if skip {
            vec!["X".to_string()]
        } else {
            Vec::new()
        };
        let o = e.continue_rollback("s", &skip_list).await.unwrap();
        assert_eq!(o.status, StackStatus::UpdateRollbackComplete, "{o:?}");
        let x = &e.stack("s").unwrap().deployed.state.resources["X"];
        let world_value = w.fake.world()[&x.physical_id].properties["Value"].clone();
        // Skipping records X as rolled back without touching it.
        assert_eq!(world_value, Value::str(if skip { "two" } else { "one" }));
        assert!(w.fake.world().values().all(|r| r.logical_id != "Y"));
        w.check_no_orphans(&e);
    }
}

#[tokio::test]
async fn retain_policy_skips_deletes() {
    let src = format!(
        "Resources:\n  Keep:\n    Type: {FAKE}\n    DeletionPolicy: Retain\n    Properties: {{Value: k}}\n  Drop:\n    Type: {FAKE}\n    Properties: {{Value: d}}\n"
    );
    let w = World::new();
    let e = w.engine();
    deploy(&e, &src, "r").await;
    let o = e.delete_stack("r").await.unwrap();
    assert_eq!(o.status, StackStatus::DeleteComplete);
    let world = w.fake.world();
    assert_eq!(world.len(), 1);
    assert_eq!(world.values().next().unwrap().logical_id, "Keep");
    let skipped = e
        .events("r")
        .unwrap()
        .into_iter()
        .find(|ev| ev.status == "DELETE_SKIPPED")
        .unwrap();
    assert_eq!(skipped.logical_id, "Keep");
}

#[tokio::test]
async fn timeouts_fail_the_resource() {
    let src = format!(
        "Resources:\n  Slow:\n    Type: {FAKE}\n    Properties: {{Value: s, DelayMs: 2000}}\n"
    );
    let mut w = World::new();
    w.options.default_timeout = Duration::from_millis(50);
    let e = w.engine();
    let o = deploy(&e, &src, "t").await;
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .contains("Resource Slow failed: CREATE_FAILED: timed out after 0.05s"),
        "{o:?}"
    );
    w.check_no_orphans(&e);
}

#[tokio::test]
async fn file_journal_survives_reopen_and_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let fake = Arc::new(FakeProvider::new());
    let registry = || {
        let mut r = ProviderRegistry::new();
        r.register(FAKE, fake.clone());
        r
    };
    let src = format!("Resources:\n  A:\n    Type: {FAKE}\n    Properties: {{Value: a}}\n");
    let view = {
        let j = Arc::new(FileJournal::open(&path, true).unwrap());
        let e = Engine::new(j, registry(), EngineOptions::default());
        deploy(&e, &src, "f").await;
        e.stack("f").unwrap()
    };
    // A crash mid-write leaves half a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"stack\":\"f\",\"se"))
        .unwrap();
    let j = Arc::new(FileJournal::open(&path, false).unwrap());
    let e = Engine::new(j, registry(), EngineOptions::default());
    assert_eq!(e.stack("f").unwrap(), view);
    assert_eq!(
        e.delete_stack("f").await.unwrap().status,
        StackStatus::DeleteComplete
    );
    let j = FileJournal::open(&path, false).unwrap();
    assert_eq!(
        j.records("f").unwrap().len() as u64,
        e.stack("f").unwrap().last_seq
    );
}

#[test]
fn runs_on_a_multi_thread_runtime_from_spawned_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = World::new();
    let e = Arc::new(w.engine());
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(async move {
                    e.deploy(DeployRequest::new(plan_of(&twenty(1), &format!("s{i}"))))
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap().status);
        }
        out
    });
    assert_eq!(results, [StackStatus::CreateComplete; 3]);
    assert_eq!(w.fake.world().len(), 60);
    w.check_no_orphans(&e);
}

#[tokio::test]
async fn one_operation_per_stack_at_a_time() {
    let src = format!(
        "Resources:\n  Slow:\n    Type: {FAKE}\n    Properties: {{Value: s, DelayMs: 200}}\n"
    );
    let w = World::new();
    let e = w.engine();
    let (a, b) = tokio::join!(deploy(&e, &src, "busy"), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        e.delete_stack("busy").await
    });
    assert_eq!(a.status, StackStatus::CreateComplete);
    assert!(matches!(b, Err(EngineError::Busy { .. })), "{b:?}");
}

#[test]
fn deploy_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let w = World::new();
    let e = w.engine();
    let f = e.deploy(DeployRequest::new(plan_of(&twenty(1), "s")));
    assert_send(&f);
    let r = e.recover();
    assert_send(&r);
}

#[test]
fn registry_answers_supported_types() {
    let w = World::new();
    let e = w.engine();
    let r = e.registry();
    assert!(r.supports("AWS::SSM::Parameter"));
    assert!(r.supports("AWS::CloudFormation::Stack"));
    assert!(!r.supports("AWS::EC2::Instance"));
    let src = "Resources:\n  I:\n    Type: AWS::EC2::Instance\n    Properties: {ImageId: ami-1}\n";
    let t = parse(src, "x.yaml").unwrap();
    let supported = |t: &str| r.supports(t);
    let diags = spindle_template::validate(
        &t,
        &spindle_template::ValidateOptions {
            supported_type: Some(&supported),
            ..Default::default()
        },
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.contains("AWS::EC2::Instance"),
        "{}",
        diags[0]
    );
}

// ---- SSM parameters ----

#[tokio::test]
async fn ssm_parameters_create_update_replace_delete() {
    let v1 = "Resources:\n  Named:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /app/db, Type: String, Value: one, Description: the db}\n  Anon:\n    Type: AWS::SSM::Parameter\n    Properties: {Type: StringList, Value: [a, b]}\n  Copy:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /app/copy, Type: String, Value: !GetAtt Named.Value}\nOutputs:\n  AnonName: {Value: !Ref Anon}\n";
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, v1, "p").await;
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    let acct = &spindle_model::AccountId::parse("123456789012").unwrap();
    let db = w.store.get(acct, "/app/db").unwrap().unwrap();
    assert_eq!(
        (db.value.as_str(), db.version, db.description.as_str()),
        ("one", 1, "the db")
    );
    assert_eq!(
        w.store.get(acct, "/app/copy").unwrap().unwrap().value,
        "one"
    );
    let v = e.stack("p").unwrap();
    let anon = v.deployed.outputs[0].value.to_string();
    assert!(anon.starts_with("CFN-Anon-"), "{anon}");
    assert_eq!(w.store.get(acct, &anon).unwrap().unwrap().value, "a,b");

    // Value changes in place (version 2); a new Name replaces the parameter.
    let v2 = v1
        .replace("Value: one", "Value: two")
        .replace("/app/copy", "/app/copy2");
    let o = deploy(&e, &v2, "p").await;
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    let db = w.store.get(acct, "/app/db").unwrap().unwrap();
    assert_eq!((db.value.as_str(), db.version), ("two", 2));
    assert!(w.store.get(acct, "/app/copy").unwrap().is_none());
    assert_eq!(
        w.store.get(acct, "/app/copy2").unwrap().unwrap().value,
        "two"
    );

    assert_eq!(
        e.delete_stack("p").await.unwrap().status,
        StackStatus::DeleteComplete
    );
    assert!(w.store.names().is_empty(), "{:?}", w.store.names());
}

#[tokio::test]
async fn ssm_parameter_errors_are_named() {
    let w = World::new();
    let e = w.engine();
    let secure = "Resources:\n  S:\n    Type: AWS::SSM::Parameter\n    Properties: {Type: SecureString, Value: x}\n";
    let o = deploy(&e, secure, "a").await;
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert!(o
        .reason
        .unwrap()
        .contains("Resource S failed: CREATE_FAILED: invalid request: Type SecureString"));
    let acct = &spindle_model::AccountId::parse("123456789012").unwrap();
    w.store
        .put(
            acct,
            &PutParam {
                name: "/taken",
                kind: "String",
                value: "mine",
                description: "",
                token: None,
            },
            false,
        )
        .unwrap();
    let taken = "Resources:\n  T:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /taken, Type: String, Value: x}\n";
    let o = deploy(&e, taken, "b").await;
    assert_eq!(
        o.reason.as_deref(),
        Some("Resource T failed: CREATE_FAILED: parameter /taken already exists")
    );
    // The user's parameter is untouched by the rollback.
    assert_eq!(w.store.get(acct, "/taken").unwrap().unwrap().value, "mine");
}

#[tokio::test]
async fn ssm_create_crash_is_adopted_by_token_then_rolled_back() {
    let src = "Resources:\n  A:\n    Type: AWS::SSM::Parameter\n    Properties: {Type: String, Value: a}\n  B:\n    Type: Spindle::Test::Thing\n    Properties: {Value: !Ref A}\n";
    let w = World::new();
    {
        let e = w.engine();
        // Crash at B's create: A's parameter exists, B's does not.
        w.fake.crash_at(1, CrashPoint::Before);
        assert!(run_or_crash(&w.fake, deploy(&e, src, "c")).await.is_none());
    }
    assert_eq!(w.store.names().len(), 1);
    w.fake.clear_faults();
    let e = w.engine();
    let out = e.recover().await.unwrap();
    assert_eq!(out[0].status, StackStatus::RollbackComplete);
    assert!(w.store.names().is_empty());
    assert!(w.fake.world().is_empty());
}

#[tokio::test]
async fn drift_detects_changed_and_deleted_parameters() {
    let src = "Resources:\n  A:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /d/a, Type: String, Value: a}\n  B:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /d/b, Type: String, Value: b}\n  C:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /d/c, Type: String, Value: c}\n";
    let w = World::new();
    let e = w.engine();
    deploy(&e, src, "d").await;
    let acct = &spindle_model::AccountId::parse("123456789012").unwrap();
    w.store
        .put(
            acct,
            &PutParam {
                name: "/d/b",
                kind: "String",
                value: "changed",
                description: "",
                token: None,
            },
            true,
        )
        .unwrap();
    w.store.delete(acct, "/d/c").unwrap();
    let drift = e.drift("d").await.unwrap();
    let by: BTreeMap<_, _> = drift.iter().map(|d| (d.logical_id.as_str(), d)).collect();
    assert_eq!(by["A"].status, spindle_stack::DriftStatus::InSync);
    assert_eq!(by["B"].status, spindle_stack::DriftStatus::Modified);
    assert_eq!(
        by["B"].differences[0].actual.as_deref(),
        Some("\"changed\"")
    );
    assert_eq!(by["C"].status, spindle_stack::DriftStatus::Deleted);
}

// ---- wait conditions ----

fn wait_template(count: u32, timeout: u32) -> String {
    format!(
        "Resources:\n  Handle:\n    Type: AWS::CloudFormation::WaitConditionHandle\n  Wait:\n    Type: AWS::CloudFormation::WaitCondition\n    Properties:\n      Handle: !Ref Handle\n      Timeout: '{timeout}'\n      Count: {count}\nOutputs:\n  Data:\n    Value: !GetAtt Wait.Data\n"
    )
}

/// Signals the handle of `stack` once it exists.
async fn signal_when_ready(e: &Engine, stack: &str, signals: Vec<Signal>) {
    let url = loop {
        let v = e.stack(stack).unwrap();
        if let Some(h) = v.deployed.state.resources.get("Handle") {
            break h.physical_id.clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        url.starts_with("http://127.0.0.1:7420/v1/wait-conditions/"),
        "{url}"
    );
    for s in signals {
        e.signal(&url, s).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn sig(status: SignalStatus, id: &str, data: &str) -> Signal {
    Signal {
        status,
        reason: "because".into(),
        unique_id: id.into(),
        data: data.into(),
    }
}

#[tokio::test]
async fn wait_condition_completes_on_enough_signals() {
    let w = World::new();
    let e = w.engine();
    let src = wait_template(2, 60);
    let (o, ()) = tokio::join!(
        deploy(&e, &src, "w"),
        signal_when_ready(
            &e,
            "w",
            vec![
                Signal::from_json(
                    r#"{"Status":"SUCCESS","Reason":"ok","UniqueId":"i-1","Data":"one"}"#
                )
                .unwrap(),
                // The same UniqueId again replaces, it doesn't count twice.
                sig(SignalStatus::Success, "i-1", "one again"),
                sig(SignalStatus::Success, "i-2", "two"),
            ]
        )
    );
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    let data = e.stack("w").unwrap().deployed.outputs[0].value.to_string();
    assert_eq!(data, r#"{"i-1":"one again","i-2":"two"}"#);
    assert!(Signal::from_json(r#"{"Status":"MAYBE","UniqueId":"x"}"#).is_err());
}

#[tokio::test]
async fn wait_condition_fails_on_a_failure_signal() {
    let w = World::new();
    let e = w.engine();
    let src = wait_template(1, 60);
    let (o, ()) = tokio::join!(
        deploy(&e, &src, "w"),
        signal_when_ready(&e, "w", vec![sig(SignalStatus::Failure, "i-9", "")])
    );
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert_eq!(
        o.reason.as_deref(),
        Some("Resource Wait failed: CREATE_FAILED: WaitCondition received failed message: 'because' for uniqueId: i-9")
    );
    // The handle was deleted by the rollback: signals to it are refused.
    let url = e
        .events("w")
        .unwrap()
        .into_iter()
        .find_map(|ev| {
            (ev.logical_id == "Handle")
                .then_some(ev.physical_id)
                .flatten()
        })
        .unwrap();
    assert!(e
        .signal(&url, sig(SignalStatus::Success, "late", ""))
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn wait_condition_times_out() {
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, &wait_template(1, 600), "w").await;
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert_eq!(
        o.reason.as_deref(),
        Some("Resource Wait failed: CREATE_FAILED: WaitCondition timed out. Received 0 conditions when expecting 1")
    );
}

// ---- nested stacks ----

const CHILD: &str = "Parameters:\n  Prefix: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: !Sub '/${Prefix}/child', Type: String, Value: !Sub 'from-${Prefix}'}\n  T:\n    Type: Spindle::Test::Thing\n    Properties: {Value: !Ref P}\nOutputs:\n  Name: {Value: !Ref P}\n  Thing: {Value: !GetAtt T.Arn}\n";

fn parent(prefix: &str, extra: &str) -> String {
    format!(
        "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: nested/child.yaml\n      Parameters: {{Prefix: {prefix}}}\n  Use:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: /parent/use, Type: String, Value: !GetAtt Child.Outputs.Name}}\n{extra}Outputs:\n  ChildId: {{Value: !Ref Child}}\n"
    )
}

#[tokio::test]
async fn nested_stack_create_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/child.yaml"), CHILD).unwrap();
    let file = dir
        .path()
        .join("parent.yaml")
        .to_string_lossy()
        .into_owned();
    let w = World::new();
    let e = w.engine();
    let o = e
        .deploy(DeployRequest::new(plan_file(
            &parent("a", ""),
            "top",
            &file,
        )))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    let acct = &spindle_model::AccountId::parse("123456789012").unwrap();
    assert_eq!(
        w.store.get(acct, "/parent/use").unwrap().unwrap().value,
        "/a/child"
    );
    let top = e.stack("top").unwrap();
    let child_id = top.deployed.outputs[0].value.to_string();
    assert!(
        child_id.starts_with("arn:aws:cloudformation:eu-west-1:123456789012:stack/top-Child-"),
        "{child_id}"
    );
    let child_name = child_id.split('/').nth(1).unwrap().to_string();
    let child = e.stack(&child_name).unwrap();
    assert_eq!(child.status, Some(StackStatus::CreateComplete));
    assert_eq!(child.operation.unwrap().parent.as_deref(), Some("top"));

    // New parameters update the child in place (its parameter is replaced: new name).
    let o = e
        .deploy(DeployRequest::new(plan_file(
            &parent("b", ""),
            "top",
            &file,
        )))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    assert_eq!(
        e.stack(&child_name).unwrap().status,
        Some(StackStatus::UpdateComplete)
    );
    assert_eq!(
        w.store.get(acct, "/parent/use").unwrap().unwrap().value,
        "/b/child"
    );
    assert!(w.store.get(acct, "/a/child").unwrap().is_none());

    // A failure elsewhere in the parent rolls the child's update back too.
    let failing = format!("  Bad:\n    Type: {FAKE}\n    DependsOn: Use\n    Properties: {{Value: x, FailOn: create}}\n");
    let o = e
        .deploy(DeployRequest::new(plan_file(
            &parent("c", &failing),
            "top",
            &file,
        )))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::UpdateRollbackComplete, "{o:?}");
    assert_eq!(
        w.store.get(acct, "/parent/use").unwrap().unwrap().value,
        "/b/child"
    );
    assert!(w.store.get(acct, "/b/child").unwrap().is_some());
    assert!(w.store.get(acct, "/c/child").unwrap().is_none());

    assert_eq!(
        e.delete_stack("top").await.unwrap().status,
        StackStatus::DeleteComplete
    );
    assert_eq!(
        e.stack(&child_name).unwrap().status,
        Some(StackStatus::DeleteComplete)
    );
    assert!(w.store.names().is_empty());
    assert!(w.fake.world().is_empty());
}

#[tokio::test]
async fn nested_stack_failure_rolls_back_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    let failing_child = CHILD.replace(
        "Properties: {Value: !Ref P}",
        "Properties: {Value: !Ref P, FailOn: create}",
    );
    std::fs::write(dir.path().join("nested/child.yaml"), failing_child).unwrap();
    let file = dir
        .path()
        .join("parent.yaml")
        .to_string_lossy()
        .into_owned();
    let w = World::new();
    let e = w.engine();
    let o = e
        .deploy(DeployRequest::new(plan_file(
            &parent("a", ""),
            "top",
            &file,
        )))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::RollbackComplete);
    let reason = o.reason.unwrap();
    assert!(
        reason.starts_with("Resource Child failed: CREATE_FAILED: nested stack top-Child-"),
        "{reason}"
    );
    assert!(
        reason.contains("Resource T failed: CREATE_FAILED: T was told to fail"),
        "{reason}"
    );
    assert!(w.store.names().is_empty());
    w.check_no_orphans(&e);

    // A missing nested template is a named failure, not a crash.
    std::fs::remove_file(dir.path().join("nested/child.yaml")).unwrap();
    let o = e
        .deploy(DeployRequest::new(plan_file(
            &parent("a", ""),
            "top2",
            &file,
        )))
        .await
        .unwrap();
    assert!(o.reason.unwrap().contains("cannot read nested template"));
}

#[tokio::test]
async fn nested_stack_crash_recovers_parent_and_child() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/child.yaml"), CHILD).unwrap();
    let file = dir
        .path()
        .join("parent.yaml")
        .to_string_lossy()
        .into_owned();
    for point in [CrashPoint::Before, CrashPoint::After] {
        let w = World::new();
        {
            let e = w.engine();
            // The child's fake Thing is the first fake call.
            w.fake.crash_at(1, point);
            let fut = e.deploy(DeployRequest::new(plan_file(
                &parent("a", ""),
                "top",
                &file,
            )));
            assert!(run_or_crash(&w.fake, fut).await.is_none());
        }
        w.fake.clear_faults();
        let e = w.engine();
        let out = e.recover().await.unwrap();
        assert!(!out.is_empty());
        assert_eq!(
            e.stack("top").unwrap().status,
            Some(StackStatus::RollbackComplete),
            "{point:?} {out:?}"
        );
        assert!(
            w.store.names().is_empty(),
            "{point:?}: {:?}",
            w.store.names()
        );
        w.check_no_orphans(&e);
        assert!(w.fake.world().is_empty());
    }
}

#[tokio::test]
async fn delete_crashes_at_each_call_and_recovers() {
    for n in 1..=20 {
        let (w, e) = with_v1().await;
        w.fake.crash_at(n, CrashPoint::After);
        assert!(run_or_crash(&w.fake, e.delete_stack("app")).await.is_none());
        drop(e);
        w.fake.clear_faults();
        let e = w.engine();
        let out = e.recover().await.unwrap();
        assert_eq!(out[0].status, StackStatus::DeleteComplete, "crash at {n}");
        assert!(w.fake.world().is_empty(), "crash at {n}");
        w.check_no_orphans(&e);
    }
}

/// The engine crashes during a create, then again while recovering (at each rollback
/// delete in turn); a third start finishes the job.
#[tokio::test]
async fn recovery_itself_survives_a_crash() {
    for m in 1..=6 {
        let w = World::new();
        {
            let e = w.engine();
            w.fake.crash_at(10, CrashPoint::After);
            assert!(run_or_crash(&w.fake, deploy(&e, &twenty(1), "app"))
                .await
                .is_none());
        }
        w.fake.clear_faults();
        {
            let e = w.engine();
            w.fake.crash_at(m, CrashPoint::Before);
            assert!(
                run_or_crash(&w.fake, e.recover()).await.is_none(),
                "second crash at {m}"
            );
        }
        w.fake.clear_faults();
        let e = w.engine();
        let out = e.recover().await.unwrap();
        assert_eq!(
            out[0].status,
            StackStatus::RollbackComplete,
            "second crash at {m}"
        );
        assert!(w.fake.world().is_empty());
        w.check_no_orphans(&e);
    }
}

#[tokio::test]
async fn a_template_that_includes_itself_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let src = "Resources:\n  Again:\n    Type: AWS::CloudFormation::Stack\n    Properties: {TemplateURL: self.yaml}\n";
    std::fs::write(dir.path().join("self.yaml"), src).unwrap();
    let file = dir.path().join("self.yaml").to_string_lossy().into_owned();
    let w = World::new();
    let e = w.engine();
    let o = e
        .deploy(DeployRequest::new(plan_file(src, "loop", &file)))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .contains("the most allowed (does a template include itself?)"),
        "{o:?}"
    );
    // Every nested stack was rolled back and deleted.
    for name in w.journal.stacks().unwrap() {
        let v = e.stack(&name).unwrap();
        assert!(
            matches!(
                v.status,
                Some(StackStatus::RollbackComplete | StackStatus::DeleteComplete)
            ),
            "{name}: {:?}",
            v.status
        );
        assert!(v.deployed.physical_ids().is_empty(), "{name}");
    }
    assert_eq!(w.journal.stacks().unwrap().len(), 9);
}

fn creation_policy_template(count: u32, timeout: &str) -> String {
    format!(
        "Resources:\n  Server:\n    Type: {FAKE}\n    CreationPolicy:\n      ResourceSignal: {{Count: {count}, Timeout: {timeout}}}\n    Properties: {{Value: s}}\n  Ready:\n    Type: AWS::CloudFormation::WaitCondition\n    DependsOn: Server\n    CreationPolicy:\n      ResourceSignal: {{Timeout: PT1H}}\n"
    )
}

#[tokio::test]
async fn creation_policy_waits_for_resource_signals() {
    let w = World::new();
    let e = w.engine();
    let src = creation_policy_template(2, "PT10M");
    let signals = async {
        // Signals arriving while the resource is still being made count too.
        while e.stack("cp").unwrap().pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for id in ["a", "b"] {
            e.signal_resource("cp", "Server", sig(SignalStatus::Success, id, ""))
                .unwrap();
        }
        while !e
            .stack("cp")
            .unwrap()
            .deployed
            .state
            .resources
            .contains_key("Server")
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        e.signal_resource("cp", "Ready", sig(SignalStatus::Success, "r", ""))
            .unwrap();
    };
    let (o, ()) = tokio::join!(deploy(&e, &src, "cp"), signals);
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    // Once created, the resource no longer takes signals.
    assert!(e
        .signal_resource("cp", "Server", sig(SignalStatus::Success, "late", ""))
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn creation_policy_timeout_fails_and_rolls_back_the_made_resource() {
    let w = World::new();
    let e = w.engine();
    let o = deploy(&e, &creation_policy_template(1, "PT2M"), "cp").await;
    assert_eq!(o.status, StackStatus::RollbackComplete);
    assert_eq!(
        o.reason.as_deref(),
        Some("Resource Server failed: CREATE_FAILED: Failed to receive 1 resource signal(s) within the specified duration (received 0)")
    );
    assert!(
        w.fake.world().is_empty(),
        "the made resource was rolled back"
    );
    let bad = deploy(&e, &creation_policy_template(1, "15 minutes"), "bad").await;
    assert!(bad.reason.unwrap().contains("must be an ISO 8601 duration"));
}

#[tokio::test]
async fn type_changes_replace_and_attribute_changes_call_no_provider() {
    let v1 = format!(
        "Resources:\n  X:\n    Type: {FAKE}\n    Properties: {{Value: x}}\n  Y:\n    Type: {FAKE}\n    Properties: {{Value: y}}\n"
    );
    let v2 = format!(
        "Resources:\n  X:\n    Type: {QUEUE}\n    Properties: {{Value: x}}\n  Y:\n    Type: {FAKE}\n    DeletionPolicy: Retain\n    Properties: {{Value: y}}\n"
    );
    let w = World::new();
    let e = w.engine();
    deploy(&e, &v1, "t").await;
    let before = e.stack("t").unwrap().deployed.state.resources;
    let calls = w.fake.calls();
    let o = deploy(&e, &v2, "t").await;
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    let after = e.stack("t").unwrap().deployed.state.resources;
    assert_ne!(after["X"].physical_id, before["X"].physical_id);
    assert_eq!(after["X"].type_name, QUEUE);
    assert_eq!(after["Y"].physical_id, before["Y"].physical_id);
    assert_eq!(after["Y"].deletion_policy, "Retain");
    // One create for the new X, one delete for the old; nothing for Y.
    let log = w.fake.log();
    let ops: Vec<(&str, &str)> = log[calls..]
        .iter()
        .map(|c| (c.op, c.logical_id.as_str()))
        .collect();
    assert_eq!(ops, [("create", "X"), ("delete", "X")]);
    w.check_no_orphans(&e);
}

#[tokio::test]
async fn update_with_disable_rollback_stops_in_update_failed_and_can_be_fixed() {
    let v1 = format!("Resources:\n  X:\n    Type: {FAKE}\n    Properties: {{Value: one}}\n");
    let v2 = format!(
        "Resources:\n  X:\n    Type: {FAKE}\n    Properties: {{Value: two}}\n  Y:\n    Type: {FAKE}\n    DependsOn: X\n    Properties: {{Value: y, FailOn: create}}\n"
    );
    let w = World::new();
    let e = w.engine();
    deploy(&e, &v1, "u").await;
    let mut req = DeployRequest::new(plan_of(&v2, "u"));
    req.disable_rollback = true;
    let o = e.deploy(req).await.unwrap();
    assert_eq!(o.status, StackStatus::UpdateFailed, "{o:?}");
    w.check_world_matches(&e, "u");
    // A fixed template deploys from UPDATE_FAILED.
    let fixed = v2.replace(", FailOn: create", "");
    let o = deploy(&e, &fixed, "u").await;
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    w.check_world_matches(&e, "u");
    w.check_no_orphans(&e);
}
