//! The template text a stack answers (`GetTemplate`): kept exactly as submitted, replaced
//! when an operation begins, restored by a rollback, and read back by a restarted engine.

use std::sync::Arc;

use spindle_stack::testing::FakeProvider;
use spindle_stack::{DeployRequest, Engine, EngineOptions, MemoryJournal, ProviderRegistry};
use spindle_stack::{OperationOutcome, StackStatus};
use spindle_template::{parse, plan, Context, PlanInput};

const FAKE: &str = "Spindle::Test::Thing";

/// The same template twice over, in YAML with a comment and odd spacing, and in JSON: the
/// text kept must be the one sent, not a re-rendering.
const V1: &str = "# first version\nResources:\n  A:\n    Type: Spindle::Test::Thing\n    Properties:   {Value: one}\n";
const V2: &str = "{\n  \"Resources\": {\"A\": {\"Type\": \"Spindle::Test::Thing\",\n    \"Properties\": {\"Value\": \"two\"}}}\n}\n";

fn engine(journal: &Arc<MemoryJournal>, fake: &Arc<FakeProvider>) -> Engine {
    let mut r = ProviderRegistry::new();
    r.register(FAKE, fake.clone());
    Engine::new(journal.clone(), r, EngineOptions::default())
}

async fn deploy(e: &Engine, src: &str, body: bool) -> OperationOutcome {
    let t = parse(src, "stack.yaml").unwrap_or_else(|d| panic!("{d}"));
    let input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", "app"),
        ..PlanInput::default()
    };
    let mut req = DeployRequest::new(plan(&t, &input).unwrap_or_else(|d| panic!("{d}")));
    req.template_body = body.then(|| src.to_owned());
    e.deploy(req).await.unwrap()
}

fn kept(e: &Engine) -> Option<String> {
    e.stack("app").unwrap().deployed.template
}

#[tokio::test]
async fn the_template_text_follows_the_stack_through_updates_rollbacks_and_restarts() {
    let journal = Arc::new(MemoryJournal::new());
    let fake = Arc::new(FakeProvider::new());
    let e = engine(&journal, &fake);

    assert_eq!(
        deploy(&e, V1, true).await.status,
        StackStatus::CreateComplete
    );
    assert_eq!(kept(&e).as_deref(), Some(V1));

    // A failed update rolls back to the first version, and so does the text.
    fake.fail_at(1);
    let o = deploy(&e, V2, true).await;
    assert_eq!(o.status, StackStatus::UpdateRollbackComplete, "{o:?}");
    assert_eq!(kept(&e).as_deref(), Some(V1));

    assert_eq!(
        deploy(&e, V2, true).await.status,
        StackStatus::UpdateComplete
    );
    assert_eq!(kept(&e).as_deref(), Some(V2));

    // A restarted engine folds the same text out of the journal.
    let again = engine(&journal, &fake);
    assert_eq!(kept(&again).as_deref(), Some(V2));

    // A deploy that brings no text leaves the stack without one rather than a stale one.
    assert_eq!(
        deploy(&again, V1, false).await.status,
        StackStatus::UpdateComplete
    );
    assert_eq!(kept(&again), None);
}

#[tokio::test]
async fn a_create_that_rolled_back_still_answers_the_template_it_was_given() {
    let journal = Arc::new(MemoryJournal::new());
    let fake = Arc::new(FakeProvider::new());
    let e = engine(&journal, &fake);
    fake.fail_at(1);
    let o = deploy(&e, V1, true).await;
    assert_eq!(o.status, StackStatus::RollbackComplete, "{o:?}");
    assert_eq!(kept(&e).as_deref(), Some(V1));
}
