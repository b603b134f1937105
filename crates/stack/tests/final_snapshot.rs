//! The final-snapshot hook (issue #20): before the engine deletes a stateful resource — the
//! old one of a replacement, or one deleted with its stack — it asks the provider for a
//! final snapshot, and the delete's event names it. A failed snapshot fails the delete and
//! keeps the resource.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, DeployRequest, Engine, EngineError, EngineOptions,
    MemoryJournal, Provider, ProviderError, ProviderOutput, ProviderRegistry, StackStatus,
};
use spindle_template::{parse, plan, Context, PlanInput};

const DB: &str = "AWS::RDS::DBInstance";

/// A DB "provider" that keeps its resources and snapshots in memory.
#[derive(Default)]
struct Dbs {
    live: Mutex<BTreeMap<String, String>>,
    snapshots: Mutex<Vec<String>>,
    fail_snapshot: Mutex<bool>,
    made: Mutex<u32>,
}

impl Provider for Dbs {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let mut n = self.made.lock().unwrap();
            *n += 1;
            let id = format!("db-{n}");
            let name = req.properties["DBName"].scalar_string().unwrap_or_default();
            self.live.lock().unwrap().insert(id.clone(), name);
            Ok(ProviderOutput {
                physical_id: id,
                attributes: BTreeMap::new(),
            })
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.live.lock().unwrap().remove(&req.physical_id);
            Ok(())
        })
    }

    fn final_snapshot<'a>(
        &'a self,
        req: &'a DeleteRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            if *self.fail_snapshot.lock().unwrap() {
                return Err(ProviderError::Failed("the volume is busy".into()));
            }
            let name = format!("{}-final-{}", req.physical_id, req.cx.token.len());
            self.snapshots.lock().unwrap().push(name.clone());
            Ok(Some(name))
        })
    }
}

fn template(db_name: &str) -> String {
    format!("Resources:\n  Db:\n    Type: {DB}\n    Properties:\n      DBName: {db_name}\n")
}

fn request(src: &str, allow: bool) -> DeployRequest {
    let t = parse(src, "db.yaml").unwrap_or_else(|d| panic!("{d}"));
    let input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", "db"),
        validate: spindle_template::ValidateOptions {
            registry_schemas: false,
            ..Default::default()
        },
        ..PlanInput::default()
    };
    let mut req = DeployRequest::new(plan(&t, &input).unwrap_or_else(|d| panic!("{d}")));
    req.allow_data_loss = allow;
    req
}

fn reasons(e: &Engine) -> Vec<String> {
    e.events("db")
        .unwrap()
        .into_iter()
        .filter(|ev| ev.status == "DELETE_COMPLETE" && ev.logical_id == "Db")
        .map(|ev| ev.reason.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_replacement_and_a_stack_delete_each_leave_a_named_final_snapshot() {
    let dbs = Arc::new(Dbs::default());
    let mut r = ProviderRegistry::new();
    r.register(DB, dbs.clone());
    let e = Engine::new(Arc::new(MemoryJournal::new()), r, EngineOptions::default());
    let o = e.deploy(request(&template("shop"), false)).await.unwrap();
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");

    // A DBName change replaces the instance: refused as data loss, then allowed.
    let refused = e.deploy(request(&template("store"), false)).await;
    assert!(
        matches!(refused, Err(EngineError::DataLoss { .. })),
        "{refused:?}"
    );
    assert!(dbs.snapshots.lock().unwrap().is_empty());
    let o = e.deploy(request(&template("store"), true)).await.unwrap();
    assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");
    let snaps = dbs.snapshots.lock().unwrap().clone();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0].starts_with("db-1-final-"), "{snaps:?}");
    assert_eq!(
        reasons(&e),
        vec![format!(
            "final snapshot {} taken before the delete",
            snaps[0]
        )]
    );

    // A snapshot that fails fails the delete, and the instance stays.
    *dbs.fail_snapshot.lock().unwrap() = true;
    let o = e.delete_stack_allowing("db", true).await.unwrap();
    assert_eq!(o.status, StackStatus::DeleteFailed, "{o:?}");
    assert!(dbs.live.lock().unwrap().contains_key("db-2"));
    *dbs.fail_snapshot.lock().unwrap() = false;
    let o = e.delete_stack_allowing("db", true).await.unwrap();
    assert_eq!(o.status, StackStatus::DeleteComplete, "{o:?}");
    assert!(dbs.live.lock().unwrap().is_empty());
    let snaps = dbs.snapshots.lock().unwrap().clone();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(snaps[1].starts_with("db-2-final-"), "{snaps:?}");
    assert!(reasons(&e).contains(&format!(
        "final snapshot {} taken before the delete",
        snaps[1]
    )));
}
