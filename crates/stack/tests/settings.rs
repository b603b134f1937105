//! Termination protection and stack policies, through the engine with real SSM parameters
//! in a memory parameter store.

use std::sync::Arc;

use spindle_stack::policy::StackPolicy;
use spindle_stack::ssm::{MemoryParamStore, ParamStore};
use spindle_stack::{
    register_builtins, DeployRequest, Engine, EngineError, EngineOptions, MemoryJournal,
    ProviderRegistry, StackStatus,
};
use spindle_template::{parse, plan, Context, Plan, PlanInput};

const ACCT: &str = "123456789012";

fn acct() -> spindle_model::AccountId {
    spindle_model::AccountId::parse(ACCT).unwrap()
}

fn world() -> (Engine, Arc<MemoryParamStore>, Arc<MemoryJournal>) {
    let store = Arc::new(MemoryParamStore::new());
    let journal = Arc::new(MemoryJournal::new());
    let mut r = ProviderRegistry::new();
    register_builtins(&mut r, store.clone());
    let e = Engine::new(journal.clone(), r, EngineOptions::default());
    (e, store, journal)
}

fn plan_of(src: &str, stack: &str) -> Plan {
    let t = parse(src, "stack.yaml").unwrap_or_else(|d| panic!("{d}"));
    let input = PlanInput {
        context: Context::new(ACCT, "eu-west-1", stack),
        ..PlanInput::default()
    };
    plan(&t, &input).unwrap_or_else(|d| panic!("{d}"))
}

fn params(db: &str, web: &str) -> String {
    format!(
        "Resources:\n  Db:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: {db}, Type: String, Value: v1}}\n  Web:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: /web, Type: String, Value: {web}}}\n"
    )
}

#[tokio::test]
async fn termination_protection_refuses_delete_until_disabled() {
    let (e, store, _) = world();
    let mut req = DeployRequest::new(plan_of(&params("/db", "w1"), "app"));
    req.termination_protection = Some(true);
    assert_eq!(
        e.deploy(req).await.unwrap().status,
        StackStatus::CreateComplete
    );
    assert!(e.stack("app").unwrap().settings.termination_protection);
    let err = e.delete_stack("app").await.unwrap_err();
    assert!(
        matches!(err, EngineError::TerminationProtected { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("termination protection"), "{err}");
    // Nothing was touched.
    assert_eq!(
        e.stack("app").unwrap().status,
        Some(StackStatus::CreateComplete)
    );
    assert!(store.get(&acct(), "/db").unwrap().is_some());
    // No event for a settings change.
    let events = e.events("app").unwrap();
    assert!(events.iter().all(|ev| ev.status != "SETTINGS_UPDATED"));

    e.update_settings("app", |s| s.termination_protection = false)
        .unwrap();
    // An engine that reads the journal afresh agrees.
    assert_eq!(
        e.delete_stack("app").await.unwrap().status,
        StackStatus::DeleteComplete
    );
    assert!(store.names().is_empty());
    let missing = e.update_settings("app", |s| s.termination_protection = true);
    assert!(matches!(missing, Err(EngineError::NotFound { .. })));
}

#[tokio::test]
async fn settings_survive_a_restart() {
    let (e, _, journal) = world();
    e.deploy(DeployRequest::new(plan_of(&params("/db", "w1"), "app")))
        .await
        .unwrap();
    e.update_settings("app", |s| s.termination_protection = true)
        .unwrap();
    let mut r = ProviderRegistry::new();
    register_builtins(&mut r, Arc::new(MemoryParamStore::new()));
    let fresh = Engine::new(journal, r, EngineOptions::default());
    assert!(fresh.stack("app").unwrap().settings.termination_protection);
}

const PROTECT_DB: &str = r#"{"Statement":[
  {"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"},
  {"Effect":"Deny","Action":"Update:*","Principal":"*","Resource":"LogicalResourceId/Db"}]}"#;

#[tokio::test]
async fn stack_policy_blocks_updates_to_protected_resources_before_any_call() {
    let (e, store, _) = world();
    let mut req = DeployRequest::new(plan_of(&params("/db", "w1"), "app"));
    req.stack_policy = Some(StackPolicy::parse(PROTECT_DB).unwrap());
    e.deploy(req).await.unwrap();
    let seq = e.stack("app").unwrap().last_seq;

    // Replacing Db (new Name) and changing Web: refused as a whole, naming Db.
    let err = e
        .deploy(DeployRequest::new(plan_of(&params("/db2", "w2"), "app")))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::PolicyDenied { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("Update:Replace on resource `Db`"), "{msg}");
    assert_eq!(
        e.stack("app").unwrap().last_seq,
        seq,
        "nothing was journaled"
    );
    assert_eq!(store.get(&acct(), "/web").unwrap().unwrap().value, "w1");
    assert!(store.get(&acct(), "/db2").unwrap().is_none());

    // Unprotected resources still update.
    let o = e
        .deploy(DeployRequest::new(plan_of(&params("/db", "w2"), "app")))
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::UpdateComplete);
    assert_eq!(store.get(&acct(), "/web").unwrap().unwrap().value, "w2");

    // A temporary override lets this one update through, and leaves the policy in place.
    let mut req = DeployRequest::new(plan_of(&params("/db2", "w2"), "app"));
    req.policy_override = Some(
        StackPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"}]}"#,
        )
        .unwrap(),
    );
    assert_eq!(
        e.deploy(req).await.unwrap().status,
        StackStatus::UpdateComplete
    );
    assert!(store.get(&acct(), "/db2").unwrap().is_some());
    assert_eq!(
        e.stack("app").unwrap().settings.policy.as_deref(),
        Some(PROTECT_DB)
    );
    let err = e
        .deploy(DeployRequest::new(plan_of(&params("/db3", "w2"), "app")))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::PolicyDenied { .. }), "{err}");
}

/// Resolves `Fn::ImportValue` from the engine's exports and records what was imported, as
/// the daemon's resolver does.
struct Imports {
    exports: std::collections::BTreeMap<String, String>,
    used: std::sync::Mutex<Vec<String>>,
}

impl spindle_template::ExternalResolver for Imports {
    fn import_value(&self, name: &str) -> Option<String> {
        self.used.lock().unwrap().push(name.to_owned());
        self.exports.get(name).cloned()
    }
}

async fn deploy_with_imports(
    e: &Engine,
    src: &str,
    stack: &str,
) -> Result<spindle_stack::OperationOutcome, EngineError> {
    let r = Imports {
        exports: e
            .exports()
            .unwrap()
            .into_iter()
            .map(|(n, _, o)| (n, o.value.to_string()))
            .collect(),
        used: Default::default(),
    };
    let t = parse(src, "stack.yaml").unwrap_or_else(|d| panic!("{d}"));
    let input = PlanInput {
        context: Context::new(ACCT, "eu-west-1", stack),
        external: &r,
        ..PlanInput::default()
    };
    let p = plan(&t, &input).unwrap_or_else(|d| panic!("{d}"));
    let mut req = DeployRequest::new(p);
    req.imports = r.used.lock().unwrap().clone();
    let r = Arc::new(r);
    req.external = r;
    e.deploy(req).await
}

fn exporter(value: &str, export: bool) -> String {
    let mut s = format!(
        "Resources:\n  Url:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: /net/url, Type: String, Value: {value}}}\nOutputs:\n  Url:\n    Value: !GetAtt Url.Value\n"
    );
    if export {
        s.push_str("    Export: {Name: !Sub '${AWS::StackName}-url'}\n");
    }
    s
}

const IMPORTER: &str = "Resources:\n  Copy:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /app/url, Type: String, Value: !ImportValue net-url}\n";

#[tokio::test]
async fn exports_in_use_cannot_be_removed_changed_or_deleted() {
    let (e, store, _) = world();
    assert_eq!(
        deploy_with_imports(&e, &exporter("http://a", true), "net")
            .await
            .unwrap()
            .status,
        StackStatus::CreateComplete
    );
    let exports = e.exports().unwrap();
    assert_eq!(exports.len(), 1);
    assert_eq!(
        (exports[0].0.as_str(), exports[0].1.as_str()),
        ("net-url", "net")
    );
    deploy_with_imports(&e, IMPORTER, "app").await.unwrap();
    assert_eq!(
        store.get(&acct(), "/app/url").unwrap().unwrap().value,
        "http://a"
    );
    assert_eq!(e.importers("net-url", ""), vec!["app".to_string()]);

    // A second stack can't take the same export name.
    let err = deploy_with_imports(
        &e,
        &exporter("http://a", true).replace("/net/url", "/x"),
        "net",
    )
    .await;
    assert!(err.is_ok(), "the exporter itself may redeploy: {err:?}");
    let dup = exporter("http://a", true)
        .replace("/net/url", "/other")
        .replace("${AWS::StackName}-url", "net-url");
    let err = deploy_with_imports(&e, &dup, "other").await.unwrap_err();
    assert!(
        err.to_string().contains("already exported by stack `net`"),
        "{err}"
    );

    // Removing the export, changing its value or deleting the stack: refused, naming `app`.
    let err = deploy_with_imports(&e, &exporter("http://a", false), "net")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("imported by stack `app`, so it can't be removed"),
        "{err}"
    );
    // The value is known only after the parameter updates: the update rolls back.
    let o = deploy_with_imports(&e, &exporter("http://b", true), "net")
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::UpdateRollbackComplete, "{o:?}");
    assert!(
        o.reason
            .as_deref()
            .unwrap_or("")
            .contains("in use by stack app"),
        "{o:?}"
    );
    assert_eq!(store.get(&acct(), "/x").unwrap().unwrap().value, "http://a");
    let err = e.delete_stack("net").await.unwrap_err();
    assert!(err.to_string().contains("imported by stack `app`"), "{err}");

    // Once the importer is gone, all of it is allowed.
    e.delete_stack("app").await.unwrap();
    assert!(e.importers("net-url", "").is_empty());
    let o = deploy_with_imports(&e, &exporter("http://b", false), "net")
        .await
        .unwrap();
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    assert!(e.exports().unwrap().is_empty());
}

#[tokio::test]
async fn a_change_set_that_reverts_drift() {
    let (e, store, _) = world();
    let src = params("/db", "w1");
    e.deploy(DeployRequest::new(plan_of(&src, "app")))
        .await
        .unwrap();
    // Someone changes /web behind the stack's back.
    store
        .put(
            &acct(),
            &spindle_stack::ssm::PutParam {
                name: "/web",
                kind: "String",
                value: "by hand",
                description: "",
                token: None,
            },
            true,
        )
        .unwrap();
    let err = e
        .deploy(DeployRequest::new(plan_of(&src, "app")))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NoChanges { .. }), "{err}");

    let plan = plan_of(&src, "app");
    let cs = e
        .change_set_reverting_drift(&plan, &spindle_template::NoExternal)
        .await
        .unwrap();
    assert_eq!(cs.changes.len(), 1, "{}", cs.render());
    let web = &cs.changes[0];
    assert_eq!(web.logical_id, "Web");
    let value = web.details.iter().find(|d| d.name == "Value").unwrap();
    assert_eq!(
        (value.before.as_deref(), value.after.as_deref()),
        (Some("\"by hand\""), Some("\"w1\""))
    );
    let mut req = DeployRequest::new(plan);
    req.change_set = Some(cs);
    req.revert_drift = true;
    let o = e.deploy(req).await.unwrap();
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    assert_eq!(store.get(&acct(), "/web").unwrap().unwrap().value, "w1");
    assert!(e
        .drift("app")
        .await
        .unwrap()
        .iter()
        .all(|d| d.status == spindle_stack::DriftStatus::InSync));
}
