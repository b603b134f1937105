//! # spindle-stack: the stack engine
//!
//! Executes CloudFormation change sets against Spindle's resources: creates, updates and
//! deletes in dependency order and in parallel, rolls back on failure, and recovers from a
//! crash without orphaning a resource. The pure half (reading, evaluating, planning,
//! classifying a change set) is `spindle-template`; this crate is the half that acts.
//!
//! ## Entry points
//! - [`Engine::new`] with a [`Journal`], a [`ProviderRegistry`] and [`EngineOptions`].
//! - [`Engine::deploy`]: create or update a stack to a [`spindle_template::Plan`]
//!   ([`DeployRequest`]; the change set is computed, or the one shown to the user is
//!   passed in). [`Engine::change_set`] computes it without acting.
//! - [`Engine::delete_stack`], [`Engine::continue_rollback`].
//! - [`Engine::recover`]: call once at startup; finishes every operation the journal shows
//!   in progress.
//! - [`Engine::stack`] (status, reason, resources, outputs), [`Engine::events`],
//!   [`Engine::subscribe`] (live records), [`Engine::signal`] (wait condition handles),
//!   [`Engine::drift`].
//! - Providers: the [`Provider`] trait; built in: [`ssm::SsmParameterProvider`] over a
//!   [`ssm::ParamStore`], [`wait`] conditions and handles, [`nested::NestedStackProvider`];
//!   [`register_builtins`] registers them all. [`testing::FakeProvider`] for tests.
//!
//! ## Wiring it into the daemon
//! - Implement [`Journal`] over SQLite: `append`/`append_all` in one transaction each,
//!   `(stack, seq)` unique. The journal is also the stack store: [`Engine::stack`] folds it
//!   (and caches the result, so one engine per journal).
//! - Implement [`ssm::ParamStore`] over the parameter table, keeping the `token` column.
//! - Call [`Engine::recover`] at startup. Run operations in their own task
//!   (`tokio::spawn`): dropping an operation's future abandons it mid-way, like a crash,
//!   and leaves it for the next recovery.
//! - Journal records and [`StackView`] hold `NoEcho` values in clear (providers need
//!   them): a backend that stores records should seal them ([`Record::secrets_mut`] visits
//!   each one). Show [`StackEvent`]s, and mask properties named in
//!   `DeployedResource::sensitive` and outputs marked `sensitive`.
//! - Settings: termination protection and [`policy::StackPolicy`] ([`DeployRequest`] sets
//!   them, [`Engine::update_settings`] changes them); exports and imports across the
//!   engine's stacks ([`Engine::exports`], [`Engine::importers`]); nested templates sent
//!   with a request ([`DeployRequest::nested_templates`]); reverting drift
//!   ([`Engine::change_set_reverting_drift`], [`DeployRequest::revert_drift`]).
//!
//! ## Invariants
//! - Planning is pure (`spindle-template`); the executor here is the only code that calls
//!   providers.
//! - Every transition is journaled: an [`journal::Entry::Intent`] before each provider call
//!   and an [`journal::Entry::Outcome`] after it, stack statuses in between. The
//!   executor's view of a stack is the fold of its journal ([`StackView::apply`]), so a
//!   restarted engine knows exactly what the stopped one knew.
//! - Every provider call carries an idempotency token; after a crash, a create without an
//!   outcome is looked up by its token ([`Provider::read`]) and adopted (then rolled back)
//!   or declared not made. Nothing a provider made is ever unrecorded.
//! - A resource the stack stops pointing at (replaced, removed, created by a failed
//!   update) is *retired*, and stays recorded until its delete succeeds or its `Retain`
//!   policy skips it.
//! - Every operation ends in a stable status (`*_COMPLETE` or `*_FAILED`), except when the
//!   journal itself fails or a provider cannot answer whether a create happened; then the
//!   operation stays in progress for the next [`Engine::recover`].
//!
//! ## Example
//! ```
//! use std::sync::Arc;
//! use spindle_stack::{register_builtins, DeployRequest, Engine, EngineOptions, MemoryJournal,
//!                     ProviderRegistry, StackStatus, ssm::MemoryParamStore};
//! use spindle_template::{parse, plan, Context, PlanInput};
//!
//! let store = Arc::new(MemoryParamStore::new());
//! let mut registry = ProviderRegistry::new();
//! register_builtins(&mut registry, store.clone());
//! let engine = Engine::new(Arc::new(MemoryJournal::new()), registry, EngineOptions::default());
//!
//! let src = "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /app/url, Type: String, Value: hello}\n";
//! let template = parse(src, "app.yaml").unwrap();
//! let input = PlanInput { context: Context::new("123456789012", "eu-west-1", "app"), ..PlanInput::default() };
//! let planned = plan(&template, &input).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let outcome = rt.block_on(engine.deploy(DeployRequest::new(planned))).unwrap();
//! assert_eq!(outcome.status, StackStatus::CreateComplete);
//! assert_eq!(engine.stack("app").unwrap().deployed.state.resources["P"].physical_id, "/app/url");
//! ```

pub mod dataloss;
pub mod drift;
pub mod dynrefs;
pub mod engine;
pub mod journal;
pub mod nested;
pub mod policy;
pub mod provider;
pub mod ssm;
pub mod status;
pub mod testing;
pub mod wait;

pub use dataloss::{DataLoss, STATEFUL_TYPES};
pub use drift::{DriftStatus, ResourceDrift};
pub use dynrefs::References;
pub use engine::{DeployRequest, Engine, EngineError, EngineOptions, OperationOutcome};
pub use journal::{
    events, Deployed, FileJournal, Journal, JournalError, MemoryJournal, Record, StackEvent,
    StackOutput, StackParameter, StackSettings, StackView,
};
pub use nested::{nested_stack_rules, register_builtins, BUILTIN_TYPES};
pub use provider::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput,
    ProviderRegistry, ReadOutput, ReadRequest, ResourceCx, UpdateRequest,
};
pub use status::{ResourceStatus, StackStatus};
pub use wait::{Signal, SignalError, SignalStatus};

use sha2::{Digest, Sha256};

/// Twelve hex digits of SHA-256: stable names derived from idempotency tokens.
pub(crate) fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..6]).to_uppercase()
}

impl Engine {
    /// Delivers a `cfn-signal` for a resource with a `CreationPolicy` (what
    /// `SignalResource` does in CloudFormation).
    pub fn signal_resource(
        &self,
        stack: &str,
        logical_id: &str,
        signal: Signal,
    ) -> Result<(), SignalError> {
        self.waits()
            .signal(&engine::resource_signal_id(stack, logical_id), signal)
    }

    /// Delivers a signal to a wait condition handle (its URL or id).
    pub fn signal(&self, handle: &str, signal: Signal) -> Result<(), SignalError> {
        self.waits().signal(wait::handle_id_of(handle), signal)
    }
}
