//! The executor: runs a change set as a saga of provider calls, journaled before and after
//! each call, with automatic rollback, cleanup phases and crash recovery.
//!
//! Phases and the statuses they write (CloudFormation's):
//! - create: `CREATE_IN_PROGRESS` → `CREATE_COMPLETE`, or on failure `ROLLBACK_IN_PROGRESS`
//!   (delete what was made) → `ROLLBACK_COMPLETE` / `ROLLBACK_FAILED`; with
//!   `disable_rollback`, `CREATE_FAILED`.
//! - update: `UPDATE_IN_PROGRESS` (creates, in-place updates and the new copies of replaced
//!   resources, in dependency order, in parallel) → `UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`
//!   (delete replaced copies and removed resources) → `UPDATE_COMPLETE`; on failure
//!   `UPDATE_ROLLBACK_IN_PROGRESS` (revert updates, point back at the previous copies) →
//!   `UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS` (delete what the update created) →
//!   `UPDATE_ROLLBACK_COMPLETE`, or `UPDATE_ROLLBACK_FAILED` when a revert fails (then
//!   [`Engine::continue_rollback`]).
//! - delete: `DELETE_IN_PROGRESS` → `DELETE_COMPLETE` / `DELETE_FAILED`; `Retain` gives
//!   `DELETE_SKIPPED`.
//!
//! A failed cleanup delete never fails the stack (as in CloudFormation) but, unlike
//! CloudFormation, the resource stays in [`crate::journal::Deployed::retired`] and every later operation
//! tries again, so it is never forgotten.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use spindle_template::changeset::{Action, DeployedResource, ResourceChange};
use spindle_template::{
    classify, ChangeSet, Context, Diagnostics, ExternalResolver, NoExternal, Plan, Replacement,
    ResourceResolver, ResourceSchemas, StackState, Value,
};
use tokio::sync::broadcast;

use crate::journal::{
    now_ms, Effect, Entry, Intent, Journal, JournalError, Operation, OperationKind, Outcome,
    Record, Retired, StackEvent, StackOutput, StackView, Step,
};
use crate::provider::{
    changed_properties, BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError,
    ProviderOutput, ProviderRegistry, ReadOutput, ReadRequest, ResourceCx, UpdateRequest,
};
use crate::status::{ResourceStatus, StackStatus};
use crate::wait::WaitRegistry;

mod delete;
mod exports;
mod recover;
mod rollback;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many provider calls of one operation may run at once.
    pub max_concurrency: usize,
    /// The limit for one provider call when the provider names none.
    pub default_timeout: Duration,
    /// Where wait condition handles are signalled: handle URLs are `{base}/{id}`.
    pub wait_url_base: String,
    /// Which property changes force a replacement.
    pub schemas: &'static ResourceSchemas,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrency: 16,
            default_timeout: Duration::from_secs(30 * 60),
            wait_url_base: "http://127.0.0.1:7420/v1/wait-conditions".into(),
            schemas: ResourceSchemas::bundled(),
        }
    }
}

/// Why an operation could not run (or stopped without reaching a stable status). Resource
/// failures are not errors: they end in a failed or rolled-back status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("stack `{stack}` is busy with another operation")]
    Busy { stack: String },
    #[error("stack `{stack}` does not exist")]
    NotFound { stack: String },
    #[error("stack `{stack}` is {status}; {action} is not allowed in that status")]
    InvalidStatus {
        stack: String,
        status: StackStatus,
        action: &'static str,
    },
    #[error("stack `{stack}` has termination protection enabled; disable it (`spindle stack update-termination-protection {stack} --disable`) before deleting the stack")]
    TerminationProtected { stack: String },
    #[error("stack `{stack}`: the update was refused before any change was made: {denied}")]
    PolicyDenied {
        stack: String,
        denied: crate::policy::Denied,
    },
    #[error("stack `{stack}`: export `{export}` is imported by stack `{importer}`, so it can't be {what}")]
    ExportInUse {
        stack: String,
        export: String,
        importer: String,
        what: &'static str,
    },
    #[error("stack `{stack}`: export `{export}` is already exported by stack `{exporter}`")]
    ExportExists {
        stack: String,
        export: String,
        exporter: String,
    },
    #[error("stack `{stack}`: refused because it would lose data ({}); allow data loss (`--allow-data-loss`) to go ahead", crate::dataloss::describe(.losses))]
    DataLoss {
        stack: String,
        losses: Vec<crate::dataloss::DataLoss>,
    },
    #[error("no updates are to be performed on stack `{stack}`")]
    NoChanges { stack: String },
    #[error("stack `{stack}` changed since the change set was created; create it again")]
    StaleChangeSet { stack: String },
    #[error("the plan has no stack name (set `Context::stack_name`)")]
    NoStackName,
    #[error("the change set for stack `{stack}` could not be computed")]
    ChangeSet {
        stack: String,
        #[source]
        diags: Diagnostics,
    },
    #[error("resource `{logical_id}` of stack `{stack}` cannot be skipped: {why}")]
    CannotSkip {
        stack: String,
        logical_id: String,
        why: &'static str,
    },
    #[error("journal of stack `{stack}` failed; the operation stopped and will be recovered")]
    Journal {
        stack: String,
        #[source]
        err: JournalError,
    },
    /// After a crash or a timeout, the provider could not say whether a create happened;
    /// the operation stays in progress and the next [`Engine::recover`] asks again.
    #[error("cannot tell whether `{logical_id}` of stack `{stack}` was created")]
    Reconcile {
        stack: String,
        logical_id: String,
        #[source]
        err: ProviderError,
    },
}

/// Where an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationOutcome {
    pub stack: String,
    pub status: StackStatus,
    pub reason: Option<String>,
}

/// Deploy (create or update) a stack to a plan.
pub struct DeployRequest {
    /// The new template evaluated with its parameters; `plan.context.stack_name` names the
    /// stack.
    pub plan: Plan,
    /// The change set shown to the user, if any: the deploy refuses to run
    /// ([`EngineError::StaleChangeSet`]) when the stack has changed so that the change set
    /// computed now differs from it.
    pub change_set: Option<ChangeSet>,
    pub disable_rollback: bool,
    /// Resolves `Fn::ImportValue` and SSM parameter types at apply time.
    pub external: Arc<dyn ExternalResolver + Send + Sync>,
    /// The owning stack, for nested stacks.
    pub parent: Option<String>,
    /// Set termination protection (on create: the initial value, default off).
    pub termination_protection: Option<bool>,
    /// A new stack policy (JSON text): checked, then kept for later updates.
    pub stack_policy: Option<crate::policy::StackPolicy>,
    /// The policy that governs this update only, instead of the stack's (CloudFormation's
    /// `StackPolicyDuringUpdateBody`).
    pub policy_override: Option<crate::policy::StackPolicy>,
    /// Export names the new template imports (what `external` answered
    /// `import_value` for while planning); they can't be removed while this stack uses them.
    pub imports: Vec<String>,
    /// Nested stack templates sent with the request, by
    /// [`spindle_template::nested_template_path`]. `Some`: nested stacks of this deploy
    /// come only from here (the daemon never reads a client's files); `None`: from files.
    pub nested_templates: Option<Arc<BTreeMap<String, String>>>,
    /// Also update every resource whose provider reads back something other than what
    /// the stack recorded, back to the template's values (a change set that reverts
    /// drift). The change set shown must be [`Engine::change_set_reverting_drift`]'s.
    pub revert_drift: bool,
    /// Go ahead even if a stateful resource is replaced or deleted
    /// ([`crate::dataloss`]); refused otherwise.
    pub allow_data_loss: bool,
    /// The template text as submitted, kept for `GetTemplate` (`None`: not known).
    pub template_body: Option<String>,
}

impl DeployRequest {
    pub fn new(plan: Plan) -> Self {
        DeployRequest {
            plan,
            change_set: None,
            disable_rollback: false,
            external: Arc::new(NoExternal),
            parent: None,
            termination_protection: None,
            stack_policy: None,
            policy_override: None,
            imports: Vec::new(),
            nested_templates: None,
            revert_drift: false,
            allow_data_loss: false,
            template_body: None,
        }
    }
}

/// The stack engine. Share it (`Arc`) between the API handlers and background tasks.
pub struct Engine {
    journal: Arc<dyn Journal>,
    registry: ProviderRegistry,
    options: EngineOptions,
    waits: WaitRegistry,
    busy: Mutex<HashSet<String>>,
    views: Mutex<HashMap<String, StackView>>,
    events: broadcast::Sender<Record>,
    /// The nested templates of each running deploy that was sent some, by stack.
    bundles: Mutex<HashMap<String, Arc<BTreeMap<String, String>>>>,
    /// Resolves dynamic references just before each provider call.
    references: std::sync::OnceLock<Arc<dyn crate::dynrefs::References>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Removes a deploy's nested templates when it ends, however it ends.
struct BundleGuard<'e> {
    engine: &'e Engine,
    stack: String,
}

impl Drop for BundleGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.engine.bundles.lock() {
            b.remove(&self.stack);
        }
    }
}

struct BusyGuard<'e> {
    engine: &'e Engine,
    stack: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.engine.busy.lock() {
            b.remove(&self.stack);
        }
    }
}

/// Names a running operation's provider calls share.
struct OpNames {
    stack: String,
    template_file: String,
    context: Context,
}

/// One operation in progress: the journal-backed view and the write path.
///
/// Records are *staged* (applied to the view at once, so later decisions see them) and
/// *flushed* to the journal in one [`Journal::append_all`]. The executor flushes before
/// every provider call and before returning, so no provider is ever called on the strength
/// of a record that isn't durable; batching the records of calls that finish together
/// (group commit) keeps the number of journal transactions per deploy small.
struct Op<'e> {
    engine: &'e Engine,
    view: StackView,
    names: Arc<OpNames>,
    staged: Vec<Record>,
    /// For a deploy that reverts drift: the resources as their providers read them back
    /// (what updates start from), where they differ from the record.
    actual: Option<StackState>,
}

impl Op<'_> {
    /// Applies `entry` to the view; it reaches the journal with the next [`Op::flush`].
    fn stage(&mut self, entry: Entry) {
        let record = Record {
            stack: self.view.name.clone(),
            seq: self.view.last_seq + 1,
            timestamp_ms: now_ms(),
            entry,
        };
        self.view.apply(&record);
        self.staged.push(record);
    }

    /// Makes every staged record durable, then publishes them.
    fn flush(&mut self) -> Result<(), EngineError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.engine.journal.append_all(&self.staged) {
            // What the journal holds is unknown now: read it again next time.
            self.engine.forget(&self.view.name);
            return Err(EngineError::Journal {
                stack: self.view.name.clone(),
                err,
            });
        }
        self.engine.remember(&self.view.name, &self.staged);
        for record in self.staged.drain(..) {
            // Nobody listening is fine.
            let _ = self.engine.events.send(record);
        }
        Ok(())
    }

    /// Stages and flushes one entry.
    fn write(&mut self, entry: Entry) -> Result<(), EngineError> {
        self.stage(entry);
        self.flush()
    }

    fn operation(&self) -> &Operation {
        self.view
            .operation
            .as_ref()
            .expect("an op exists only after Begin")
    }

    fn outcome(&self) -> OperationOutcome {
        OperationOutcome {
            stack: self.view.name.clone(),
            status: self.view.status.unwrap_or(StackStatus::DeleteComplete),
            reason: self.view.reason.clone(),
        }
    }

    fn next_token(&self, logical_id: &str) -> String {
        format!(
            "{}-{}-{}",
            self.view.name,
            self.view.last_seq + 1,
            logical_id
        )
    }
}

/// Resolves `Ref` / `Fn::GetAtt` from what the stack points at now.
struct StateLookup<'a>(&'a StackState);

impl ResourceResolver for StateLookup<'_> {
    fn physical_id(&self, id: &str) -> Option<String> {
        self.0.resources.get(id).map(|r| r.physical_id.clone())
    }
    fn attribute(&self, id: &str, attr: &str) -> Option<Value> {
        self.0.resources.get(id)?.attributes.get(attr).cloned()
    }
}

/// A provider call ready to be made.
struct Call {
    token: String,
    logical_id: String,
    type_name: String,
    step: Step,
    provider: Arc<dyn Provider>,
    physical_id: Option<String>,
    properties: BTreeMap<String, Value>,
    previous_properties: BTreeMap<String, Value>,
    previous_attributes: BTreeMap<String, Value>,
    desired: Option<DeployedResource>,
    timeout: Duration,
    /// `CreationPolicy.ResourceSignal`: after the create, wait for this many signals
    /// within this long.
    signals: Option<(usize, Duration)>,
}

enum CallError {
    Provider(ProviderError),
    /// The resource was made, but its creation policy's signals did not arrive.
    Signals {
        made: ProviderOutput,
        why: String,
    },
    /// The call took too long; for creates, `found` says whether the resource exists.
    Timeout {
        after: Duration,
        found: Option<Result<Option<ReadOutput>, ProviderError>>,
    },
}

struct CallDone {
    call: Call,
    result: Result<ProviderOutput, CallError>,
}

enum Prepared {
    /// Nothing to call (unchanged, or recorded without a provider call).
    Done,
    /// Failed before any call.
    Failed,
    Call(Box<Call>),
}

fn is_create(step: Step) -> bool {
    matches!(step, Step::Add | Step::Replace | Step::Recreate)
}

fn statuses(step: Step) -> (ResourceStatus, ResourceStatus, ResourceStatus) {
    use ResourceStatus::*;
    match step {
        Step::Add | Step::Recreate => (CreateInProgress, CreateComplete, CreateFailed),
        Step::Replace | Step::Modify | Step::Revert => {
            (UpdateInProgress, UpdateComplete, UpdateFailed)
        }
        Step::Delete => (DeleteInProgress, DeleteComplete, DeleteFailed),
    }
}

/// What a successful create or update changes in the stack.
fn success_effects(
    view: &StackView,
    step: Step,
    logical_id: &str,
    r: DeployedResource,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    if matches!(step, Step::Replace | Step::Recreate) {
        if let Some(cur) = view.deployed.state.resources.get(logical_id) {
            effects.push(Effect::Retire(Retired {
                logical_id: logical_id.to_string(),
                resource: cur.clone(),
                retain: step == Step::Replace && r.update_replace_policy == "Retain",
            }));
        }
    }
    effects.push(Effect::Set {
        logical_id: logical_id.to_string(),
        resource: r,
    });
    effects
}

/// Retires every resource the stack points at (for a stack delete or a create rollback).
fn retire_all(state: &StackState) -> Vec<Effect> {
    retire_unless(state, |_| false)
}

/// Retires (and unsets) every resource the stack points at whose logical id `keep` refuses:
/// those an update or an update rollback no longer has.
fn retire_unless(state: &StackState, keep: impl Fn(&str) -> bool) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (l, r) in state.resources.iter().filter(|(l, _)| !keep(l)) {
        effects.push(Effect::Retire(Retired {
            logical_id: l.clone(),
            resource: r.clone(),
            retain: r.deletion_policy == "Retain",
        }));
        effects.push(Effect::Unset {
            logical_id: l.clone(),
        });
    }
    effects
}

/// Whether a create-only property (top-level name of a `createOnlyProperties` path)
/// differs. Nested paths are compared at their top level, which may replace where a
/// finer comparison would update; never the other way round.
fn create_only_changed(
    schemas: &ResourceSchemas,
    type_name: &str,
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> bool {
    let Some(schema) = schemas.get(type_name) else {
        return false;
    };
    schema.create_only.iter().any(|p| {
        let top = p.split('.').next().unwrap_or(p);
        before.get(top) != after.get(top)
    })
}

/// The dependency graph of retired resources, keyed by their index in `retired` (one
/// logical id may have several copies).
fn retired_graph(retired: &[Retired]) -> spindle_template::Graph {
    let mut by_logical: HashMap<&str, Vec<String>> = HashMap::new();
    for (i, r) in retired.iter().enumerate() {
        by_logical
            .entry(r.logical_id.as_str())
            .or_default()
            .push(i.to_string());
    }
    spindle_template::Graph::new(retired.iter().enumerate().map(|(i, r)| {
        let me = i.to_string();
        let deps: Vec<String> = r
            .resource
            .dependencies
            .iter()
            .flat_map(|d| by_logical.get(d.as_str()).cloned().unwrap_or_default())
            .filter(|k| *k != me)
            .collect();
        (me, deps)
    }))
}

fn render_outputs(
    plan: &Plan,
    state: &StackState,
    external: &dyn ExternalResolver,
) -> Result<Vec<StackOutput>, String> {
    let outs = plan
        .resolve_outputs(&StateLookup(state), external)
        .map_err(|d| d.to_string())?;
    Ok(outs
        .into_iter()
        .map(|o| StackOutput {
            name: o.name,
            value: o.value,
            description: o.description,
            export_name: o.export_name.and_then(|v| v.scalar_string()),
            sensitive: o.sensitive,
        })
        .collect())
}

/// The wait registry id signals for a resource's creation policy go to.
pub(crate) fn resource_signal_id(stack: &str, logical_id: &str) -> String {
    format!("resource:{stack}:{logical_id}")
}

/// `CreationPolicy: {ResourceSignal: {Count, Timeout}}` → (count, timeout). CloudFormation's
/// defaults: one signal, `PT5M`.
fn resource_signals(policy: Option<&Value>) -> Result<Option<(usize, Duration)>, String> {
    let Some(Value::Map(p)) = policy else {
        return Ok(None);
    };
    let Some(rs) = p.get("ResourceSignal") else {
        return Ok(None);
    };
    let Value::Map(rs) = rs else {
        return Err(format!(
            "CreationPolicy.ResourceSignal must be a mapping, got {rs}"
        ));
    };
    let count = match rs.get("Count") {
        None => 1,
        Some(v) => v
            .scalar_string()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| {
                format!("CreationPolicy.ResourceSignal.Count must be a number, got {v}")
            })?,
    };
    let timeout = match rs.get("Timeout") {
        None => Duration::from_secs(300),
        Some(v) => v
            .scalar_string()
            .and_then(|s| iso8601_duration(&s))
            .ok_or_else(|| {
                format!("CreationPolicy.ResourceSignal.Timeout must be an ISO 8601 duration such as PT15M, got {v}")
            })?,
    };
    Ok(Some((count, timeout)))
}

/// `PT#H#M#S` (what CloudFormation accepts; at most 12 hours).
fn iso8601_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut secs = 0u64;
    let mut num = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        secs += match c {
            'H' => n.checked_mul(3600)?,
            'M' => n.checked_mul(60)?,
            'S' => n,
            _ => return None,
        };
    }
    (num.is_empty() && secs <= 43_200).then(|| Duration::from_secs(secs))
}

fn signal_failure(e: crate::wait::WaitError, count: usize) -> String {
    match e {
        crate::wait::WaitError::TimedOut { received, .. } => format!(
            "Failed to receive {count} resource signal(s) within the specified duration (received {received})"
        ),
        crate::wait::WaitError::Failed { unique_id, reason } => {
            format!("Received FAILURE signal with UniqueId {unique_id}: {reason}")
        }
        other => other.to_string(),
    }
}

const INTERRUPTED: &str =
    "interrupted: the stack engine stopped during the operation and recovered on restart";

impl Engine {
    pub fn new(
        journal: Arc<dyn Journal>,
        registry: ProviderRegistry,
        options: EngineOptions,
    ) -> Engine {
        let (events, _) = broadcast::channel(4096);
        Engine {
            journal,
            registry,
            options,
            waits: WaitRegistry::default(),
            busy: Mutex::new(HashSet::new()),
            views: Mutex::new(HashMap::new()),
            events,
            bundles: Mutex::new(HashMap::new()),
            references: std::sync::OnceLock::new(),
        }
    }

    /// Dynamic references in properties resolve through `refs` (without it they reach
    /// providers as written).
    pub fn set_references(&self, refs: Arc<dyn crate::dynrefs::References>) {
        let _ = self.references.set(refs);
    }

    pub fn registry(&self) -> &ProviderRegistry {
        &self.registry
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// The nested templates sent with the deploy of `stack` now running, if any.
    pub fn nested_templates(&self, stack: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.bundles.lock().ok()?.get(stack).cloned()
    }

    /// Wait condition handles and their signals.
    pub fn waits(&self) -> &WaitRegistry {
        &self.waits
    }

    /// Every journal record as it is written (stack and resource events live).
    pub fn subscribe(&self) -> broadcast::Receiver<Record> {
        self.events.subscribe()
    }

    /// A stack as the journal describes it (an empty view with `status: None` if unknown).
    ///
    /// Views are cached: the journal is read once per stack, then every record this engine
    /// writes is applied to the cached view. So an engine must be the only writer of its
    /// journal (one daemon; one engine per journal).
    pub fn stack(&self, name: &str) -> Result<StackView, EngineError> {
        if let Some(v) = self.views.lock().ok().and_then(|v| v.get(name).cloned()) {
            return Ok(v);
        }
        let records = self
            .journal
            .records(name)
            .map_err(|err| EngineError::Journal {
                stack: name.to_string(),
                err,
            })?;
        let view = StackView::from_owned_records(name, records);
        if let Ok(mut v) = self.views.lock() {
            v.insert(name.to_string(), view.clone());
        }
        Ok(view)
    }

    /// Applies records just made durable to the cached view of their stack.
    fn remember(&self, name: &str, records: &[Record]) {
        if let Ok(mut views) = self.views.lock() {
            if let Some(v) = views.get_mut(name) {
                if records.first().is_some_and(|r| r.seq == v.last_seq + 1) {
                    records.iter().for_each(|r| v.apply(r));
                } else {
                    views.remove(name);
                }
            }
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut views) = self.views.lock() {
            views.remove(name);
        }
    }

    /// A stack's events, oldest first.
    pub fn events(&self, name: &str) -> Result<Vec<StackEvent>, EngineError> {
        let records = self
            .journal
            .records(name)
            .map_err(|err| EngineError::Journal {
                stack: name.to_string(),
                err,
            })?;
        Ok(crate::journal::events(&records))
    }

    /// The change set a deploy of `plan` would execute.
    pub fn change_set(
        &self,
        plan: &Plan,
        external: &dyn ExternalResolver,
    ) -> Result<ChangeSet, EngineError> {
        let name = &plan.context.stack_name;
        let view = self.stack(name)?;
        classify(&view.deployed.state, plan, self.options.schemas, external).map_err(|diags| {
            EngineError::ChangeSet {
                stack: name.clone(),
                diags,
            }
        })
    }

    /// The change set that deploys `plan` and also reverts drift: resources whose provider
    /// reads back other values than recorded are compared by what they really are.
    pub async fn change_set_reverting_drift(
        &self,
        plan: &Plan,
        external: &(dyn ExternalResolver + Sync),
    ) -> Result<ChangeSet, EngineError> {
        let name = &plan.context.stack_name;
        let view = self.stack(name)?;
        if !view.exists() {
            return self.change_set(plan, external);
        }
        let state = self.drifted_state(&view).await;
        classify(&state, plan, self.options.schemas, external).map_err(|diags| {
            EngineError::ChangeSet {
                stack: name.clone(),
                diags,
            }
        })
    }

    /// Whether deploying `plan` would change the existing stack's outputs (values known
    /// now; a value that can't be computed yet counts as a change).
    pub fn outputs_change(&self, plan: &Plan, external: &dyn ExternalResolver) -> bool {
        let Ok(view) = self.stack(&plan.context.stack_name) else {
            return false;
        };
        if !view.exists() {
            return false;
        }
        render_outputs(plan, &view.deployed.state, external)
            .map_or(true, |o| o != view.deployed.outputs)
    }

    fn lock(&self, stack: &str) -> Result<BusyGuard<'_>, EngineError> {
        let mut b = self.busy.lock().map_err(|_| EngineError::Busy {
            stack: stack.to_string(),
        })?;
        if !b.insert(stack.to_string()) {
            return Err(EngineError::Busy {
                stack: stack.to_string(),
            });
        }
        Ok(BusyGuard {
            engine: self,
            stack: stack.to_string(),
        })
    }

    fn op_for(&self, view: StackView) -> Op<'_> {
        let names = match &view.operation {
            Some(o) => {
                let mut context = Context::new(&o.account_id, &o.region, &view.name);
                context.stack_id = o.stack_id.clone();
                OpNames {
                    stack: view.name.clone(),
                    template_file: o.template_file.clone(),
                    context,
                }
            }
            None => OpNames {
                stack: view.name.clone(),
                template_file: String::new(),
                context: Context::default(),
            },
        };
        Op {
            engine: self,
            view,
            names: Arc::new(names),
            staged: Vec::new(),
            actual: None,
        }
    }

    /// Creates the stack, or updates it to `req.plan`.
    pub async fn deploy(&self, req: DeployRequest) -> Result<OperationOutcome, EngineError> {
        let name = req.plan.context.stack_name.clone();
        if name.is_empty() {
            return Err(EngineError::NoStackName);
        }
        let _guard = self.lock(&name)?;
        let _bundle = req.nested_templates.clone().map(|b| {
            if let Ok(mut m) = self.bundles.lock() {
                m.insert(name.clone(), b);
            }
            BundleGuard {
                engine: self,
                stack: name.clone(),
            }
        });
        let mut view = self.stack(&name)?;
        if view.in_progress {
            self.recover_locked(view).await?;
            view = self.stack(&name)?;
        }
        let kind = match view.status {
            None | Some(StackStatus::DeleteComplete | StackStatus::RollbackComplete) => {
                OperationKind::Create
            }
            Some(s) if s.can_update() => OperationKind::Update,
            Some(status) => {
                return Err(EngineError::InvalidStatus {
                    stack: name,
                    status,
                    action: "deploy",
                })
            }
        };
        if kind == OperationKind::Create {
            // A stack re-created after ROLLBACK_COMPLETE or DELETE_COMPLETE starts empty;
            // anything it still owns stays retired until deleted.
            view.deployed.state = StackState::default();
            view.deployed.outputs.clear();
        }
        let plan = &req.plan;
        let drifted = if req.revert_drift && kind == OperationKind::Update {
            Some(self.drifted_state(&view).await)
        } else {
            None
        };
        let cs = classify(
            drifted.as_ref().unwrap_or(&view.deployed.state),
            plan,
            self.options.schemas,
            &*req.external,
        )
        .map_err(|diags| EngineError::ChangeSet {
            stack: name.clone(),
            diags,
        })?;
        if req.change_set.as_ref().is_some_and(|shown| *shown != cs) {
            // The stack changed since the change set was made: executing it would do
            // something other than what the user approved.
            return Err(EngineError::StaleChangeSet { stack: name });
        }
        if kind == OperationKind::Update {
            // The override, or the policy the stack had before this deploy, governs it.
            let stored = match &view.settings.policy {
                Some(text) => Some(crate::policy::StackPolicy::parse(text).map_err(|e| {
                    EngineError::Journal {
                        stack: name.clone(),
                        err: JournalError::Backend(e.to_string()),
                    }
                })?),
                None => None,
            };
            if let Some(policy) = req.policy_override.as_ref().or(stored.as_ref()) {
                if let Some(denied) = policy.check(&cs) {
                    return Err(EngineError::PolicyDenied {
                        stack: name,
                        denied,
                    });
                }
            }
        }
        if !req.allow_data_loss {
            let losses = crate::dataloss::of_change_set(&cs, &view.deployed.state, plan);
            if !losses.is_empty() {
                return Err(EngineError::DataLoss {
                    stack: name,
                    losses,
                });
            }
        }
        self.check_exports(&name, &view, plan)?;
        let mut settings = if kind == OperationKind::Create {
            crate::journal::StackSettings::default()
        } else {
            view.settings.clone()
        };
        if let Some(on) = req.termination_protection {
            settings.termination_protection = on;
        }
        if let Some(p) = &req.stack_policy {
            settings.policy = Some(p.source().to_owned());
        }
        let settings_changed = settings != view.settings;
        if kind == OperationKind::Update
            && !settings_changed
            && cs.is_empty()
            && view.deployed.retired.is_empty()
        {
            let outputs = render_outputs(plan, &view.deployed.state, &*req.external);
            if outputs.as_ref().is_ok_and(|o| *o == view.deployed.outputs) {
                return Err(EngineError::NoChanges { stack: name });
            }
        }
        let operation = Operation {
            kind,
            previous: view.deployed.clone(),
            disable_rollback: req.disable_rollback,
            template_file: plan.template.file.clone(),
            account_id: plan.context.account_id.clone(),
            region: plan.context.region.clone(),
            stack_id: plan.context.stack_id.clone(),
            parent: req.parent.clone(),
        };
        let mut op = self.op_for(view);
        op.names = Arc::new(OpNames {
            stack: name.clone(),
            template_file: plan.template.file.clone(),
            context: plan.context.clone(),
        });
        op.actual = drifted;
        if settings_changed {
            op.stage(Entry::Settings(settings));
        }
        // Until the operation ends, both the old and the new imports are in use.
        let mut imports: Vec<String> = op.view.deployed.imports.clone();
        imports.extend(req.imports.iter().cloned());
        imports.sort();
        imports.dedup();
        op.write(Entry::Begin {
            operation,
            status: if kind == OperationKind::Create {
                StackStatus::CreateInProgress
            } else {
                StackStatus::UpdateInProgress
            },
            effects: vec![
                Effect::Imports { imports },
                Effect::Template {
                    body: req.template_body.clone(),
                },
            ],
        })?;
        let mut ok = self.run_forward(&mut op, plan, &cs, &*req.external).await?;
        let mut outputs_failure = None;
        let mut outputs = Vec::new();
        if ok {
            match render_outputs(plan, &op.view.deployed.state, &*req.external) {
                Ok(o) => outputs = o,
                Err(e) => {
                    ok = false;
                    outputs_failure = Some(format!("Outputs could not be resolved: {e}"));
                }
            }
        }
        if ok {
            // Values known only now (they depend on what this update changed).
            if let Some(why) =
                self.changed_export_in_use(&name, &op.view.deployed.outputs, &outputs)
            {
                ok = false;
                outputs_failure = Some(why);
            }
        }
        let new_parameters = Effect::Parameters {
            parameters: plan
                .parameters
                .values()
                .map(|p| {
                    (
                        p.name.clone(),
                        crate::journal::StackParameter {
                            value: Value::String(p.supplied.clone()),
                            no_echo: p.no_echo,
                        },
                    )
                })
                .collect(),
        };
        let new_imports = Effect::Imports {
            imports: {
                let mut i = req.imports.clone();
                i.sort();
                i.dedup();
                i
            },
        };
        if ok {
            if kind == OperationKind::Create {
                op.write(Entry::End {
                    status: StackStatus::CreateComplete,
                    reason: None,
                    effects: vec![Effect::Outputs { outputs }, new_imports, new_parameters],
                })?;
            } else {
                let mut effects = vec![Effect::Outputs { outputs }, new_imports, new_parameters];
                effects.extend(retire_unless(&op.view.deployed.state, |l| {
                    plan.resource(l).is_some()
                }));
                op.write(Entry::Status {
                    status: StackStatus::UpdateCompleteCleanupInProgress,
                    reason: None,
                    effects,
                })?;
                self.delete_retired(&mut op).await?;
                op.write(Entry::End {
                    status: StackStatus::UpdateComplete,
                    reason: None,
                    effects: Vec::new(),
                })?;
            }
        } else {
            let reason = op
                .view
                .first_failure
                .clone()
                .or(outputs_failure)
                .unwrap_or_else(|| "the operation failed".into());
            self.fail(&mut op, reason).await?;
        }
        Ok(op.outcome())
    }

    /// The forward phase: creates, updates and replacement copies in dependency order,
    /// up to `max_concurrency` at once. Returns whether every resource succeeded.
    async fn run_forward(
        &self,
        op: &mut Op<'_>,
        plan: &Plan,
        cs: &ChangeSet,
        external: &(dyn ExternalResolver + Send + Sync),
    ) -> Result<bool, EngineError> {
        let changes: HashMap<&str, &ResourceChange> = cs
            .changes
            .iter()
            .filter(|c| c.action != Action::Remove)
            .map(|c| (c.logical_id.as_str(), c))
            .collect();
        let mut sched = plan.graph.scheduler();
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut running: FuturesUnordered<BoxFuture<'_, CallDone>> = FuturesUnordered::new();
        let max = self.options.max_concurrency.max(1);
        let mut failed = false;
        loop {
            let mut launch = Vec::new();
            loop {
                if !failed {
                    queue.extend(sched.take_ready().into_iter().map(str::to_string));
                }
                if failed || running.len() + launch.len() >= max {
                    break;
                }
                let Some(name) = queue.pop_front() else { break };
                match self.prepare(op, plan, &changes, &name, external)? {
                    Prepared::Done => sched.complete(&name),
                    Prepared::Failed => failed = true,
                    Prepared::Call(call) => launch.push(*call),
                }
            }
            // Intents (and the outcomes that made them ready) are durable before the calls.
            op.flush()?;
            for call in launch {
                running.push(self.invoke(op.names.clone(), call));
            }
            let Some(done) = running.next().await else {
                break;
            };
            let mut batch = vec![done];
            while let Some(Some(more)) = running.next().now_or_never() {
                batch.push(more);
            }
            for done in batch {
                let name = done.call.logical_id.clone();
                if self.finish(op, done)? {
                    sched.complete(&name);
                } else {
                    failed = true;
                }
            }
        }
        op.flush()?;
        Ok(!failed && sched.finished())
    }

    /// Decides what to do for one resource and journals the intent.
    fn prepare(
        &self,
        op: &mut Op<'_>,
        plan: &Plan,
        changes: &HashMap<&str, &ResourceChange>,
        name: &str,
        external: &dyn ExternalResolver,
    ) -> Result<Prepared, EngineError> {
        let Some(change) = changes.get(name) else {
            return Ok(Prepared::Done);
        };
        let current = op
            .actual
            .as_ref()
            .and_then(|a| a.resources.get(name))
            .or_else(|| op.view.deployed.state.resources.get(name))
            .cloned();
        let is_add = change.action == Action::Add || current.is_none();
        let fail_status = if is_add {
            ResourceStatus::CreateFailed
        } else {
            ResourceStatus::UpdateFailed
        };
        let type_name = plan
            .resource(name)
            .map(|r| r.type_name.clone())
            .unwrap_or_default();
        let fail = |op: &mut Op<'_>, reason: String| -> Result<Prepared, EngineError> {
            op.stage(Entry::Outcome(Outcome {
                token: None,
                logical_id: name.to_string(),
                type_name: type_name.clone(),
                physical_id: None,
                status: fail_status,
                reason: Some(reason),
                effects: Vec::new(),
            }));
            Ok(Prepared::Failed)
        };
        let resolved =
            match plan.resolve_resource(name, &StateLookup(&op.view.deployed.state), external) {
                Ok(r) => r,
                Err(d) => return fail(op, d.to_string()),
            };
        let Some(provider) = self.registry.get(&resolved.type_name).cloned() else {
            return fail(
                op,
                format!("no provider supports resource type {}", resolved.type_name),
            );
        };
        let desired = DeployedResource::from_resolved(&resolved, "", BTreeMap::new());
        let timeout = provider
            .timeout(&resolved.properties)
            .unwrap_or(self.options.default_timeout);
        let token = op.next_token(name);
        let mut call = Call {
            token,
            logical_id: name.to_string(),
            type_name: resolved.type_name.clone(),
            step: Step::Add,
            provider,
            physical_id: None,
            properties: resolved.properties.clone(),
            previous_properties: BTreeMap::new(),
            previous_attributes: BTreeMap::new(),
            desired: Some(desired),
            timeout,
            signals: None,
        };
        if let (false, Some(cur)) = (is_add, &current) {
            let replace = cur.type_name != resolved.type_name
                || match change.replacement {
                    Some(Replacement::True) => true,
                    Some(Replacement::Conditional) => create_only_changed(
                        self.options.schemas,
                        &resolved.type_name,
                        &cur.properties,
                        &resolved.properties,
                    ),
                    _ => false,
                };
            if replace {
                call.step = Step::Replace;
            } else if cur.properties == resolved.properties {
                // Only resource attributes (metadata, policies) or nothing changed: record
                // without calling the provider.
                let mut r = call.desired.take().expect("set above");
                r.physical_id = cur.physical_id.clone();
                r.attributes = cur.attributes.clone();
                if r != *cur {
                    op.stage(Entry::Outcome(Outcome {
                        token: None,
                        logical_id: name.to_string(),
                        type_name: r.type_name.clone(),
                        physical_id: Some(r.physical_id.clone()),
                        status: ResourceStatus::UpdateComplete,
                        reason: Some("only resource attributes changed".into()),
                        effects: vec![Effect::Set {
                            logical_id: name.to_string(),
                            resource: r,
                        }],
                    }));
                }
                return Ok(Prepared::Done);
            } else {
                call.step = Step::Modify;
                call.physical_id = Some(cur.physical_id.clone());
                call.previous_properties = cur.properties.clone();
                call.previous_attributes = cur.attributes.clone();
            }
        }
        if is_create(call.step) {
            match resource_signals(resolved.creation_policy.as_ref()) {
                Ok(Some(signals)) => {
                    // Registered before the create, so a signal that arrives early counts.
                    let id = resource_signal_id(&op.view.name, name);
                    self.waits.unregister(&id);
                    self.waits.register(&id);
                    call.signals = Some(signals);
                }
                Ok(None) => {}
                Err(e) => return fail(op, e),
            }
        }
        self.stage_intent(op, &call);
        Ok(Prepared::Call(Box::new(call)))
    }

    fn stage_intent(&self, op: &mut Op<'_>, call: &Call) {
        op.stage(Entry::Intent(Intent {
            token: call.token.clone(),
            logical_id: call.logical_id.clone(),
            type_name: call.type_name.clone(),
            step: call.step,
            physical_id: call.physical_id.clone(),
            desired: call.desired.clone(),
            status: statuses(call.step).0,
        }));
    }

    /// Makes one provider call with its timeout. Never touches the journal.
    fn invoke<'e>(&'e self, names: Arc<OpNames>, call: Call) -> BoxFuture<'e, CallDone> {
        Box::pin(async move {
            let cx = ResourceCx {
                engine: self,
                stack_name: &names.stack,
                logical_id: &call.logical_id,
                type_name: &call.type_name,
                token: &call.token,
                template_file: &names.template_file,
                context: &names.context,
            };
            let provider = call.provider.clone();
            let limit = call.timeout;
            let mut revealed = Vec::new();
            let (properties, previous_properties) = match crate::dynrefs::for_call(
                self.references.get(),
                &names.context,
                (&call.properties, &call.previous_properties),
                call.step == Step::Delete,
                &mut revealed,
            ) {
                Ok(p) => p,
                Err(e) => {
                    return CallDone {
                        call,
                        result: Err(CallError::Provider(e)),
                    }
                }
            };
            let result = if is_create(call.step) {
                let fut = provider.create(CreateRequest {
                    cx,
                    properties: properties.clone(),
                });
                match tokio::time::timeout(limit, fut).await {
                    Ok(Ok(out)) => match call.signals {
                        None => Ok(out),
                        Some((count, within)) => {
                            let id = resource_signal_id(&names.stack, &call.logical_id);
                            let waited = self.waits.wait(&id, count, within).await;
                            self.waits.unregister(&id);
                            match waited {
                                Ok(_) => Ok(out),
                                Err(e) => Err(CallError::Signals {
                                    made: out,
                                    why: signal_failure(e, count),
                                }),
                            }
                        }
                    },
                    Ok(Err(e)) => Err(CallError::Provider(e)),
                    Err(_) => {
                        // The create may have happened: look for it by its token.
                        let found = provider
                            .read(ReadRequest {
                                cx,
                                physical_id: None,
                                properties: properties.clone(),
                            })
                            .await;
                        Err(CallError::Timeout {
                            after: limit,
                            found: Some(found),
                        })
                    }
                }
            } else if call.step == Step::Delete {
                let req = DeleteRequest {
                    cx,
                    physical_id: call.physical_id.clone().unwrap_or_default(),
                    properties,
                };
                let fut = async {
                    let mut snapshot = None;
                    if crate::dataloss::is_stateful(&call.type_name) {
                        snapshot = provider.final_snapshot(&req).await?;
                        if let Some(s) = &snapshot {
                            tracing::info!(stack = %names.stack, resource = %call.logical_id, snapshot = %s, "final snapshot taken before delete");
                        }
                    }
                    provider.delete(req).await.map(|()| snapshot)
                };
                match tokio::time::timeout(limit, fut).await {
                    Ok(r) => r
                        .map(|snapshot| ProviderOutput {
                            physical_id: call.physical_id.clone().unwrap_or_default(),
                            // The delete's event names it (see `finish`).
                            attributes: snapshot
                                .map(|s| {
                                    (
                                        crate::dataloss::FINAL_SNAPSHOT.to_string(),
                                        Value::String(s),
                                    )
                                })
                                .into_iter()
                                .collect(),
                        })
                        .map_err(CallError::Provider),
                    Err(_) => Err(CallError::Timeout {
                        after: limit,
                        found: None,
                    }),
                }
            } else {
                let fut = provider.update(UpdateRequest {
                    cx,
                    physical_id: call.physical_id.clone().unwrap_or_default(),
                    properties,
                    previous_properties,
                    changed: changed_properties(&call.previous_properties, &call.properties),
                    previous_attributes: call.previous_attributes.clone(),
                });
                match tokio::time::timeout(limit, fut).await {
                    Ok(r) => r.map_err(CallError::Provider),
                    Err(_) => Err(CallError::Timeout {
                        after: limit,
                        found: None,
                    }),
                }
            };
            let result = match result {
                Ok(mut out) => {
                    crate::dynrefs::scrub(&mut out.attributes, &revealed);
                    Ok(out)
                }
                Err(CallError::Provider(e)) => Err(CallError::Provider(
                    crate::dynrefs::scrub_error(e, &revealed),
                )),
                Err(other) => Err(other),
            };
            CallDone { call, result }
        })
    }

    /// Stages a call's outcome. Returns whether it succeeded.
    fn finish(&self, op: &mut Op<'_>, done: CallDone) -> Result<bool, EngineError> {
        let CallDone { call, result } = done;
        let (_, ok_status, fail_status) = statuses(call.step);
        let with = |out: &ProviderOutput| -> DeployedResource {
            let mut r = call.desired.clone().unwrap_or_else(|| DeployedResource {
                type_name: call.type_name.clone(),
                physical_id: String::new(),
                properties: call.properties.clone(),
                sensitive: Default::default(),
                attributes: BTreeMap::new(),
                metadata: None,
                metadata_sensitive: false,
                dependencies: Vec::new(),
                deletion_policy: "Delete".into(),
                update_replace_policy: "Delete".into(),
                update_policy: None,
                creation_policy: None,
            });
            r.physical_id = out.physical_id.clone();
            r.attributes = out.attributes.clone();
            r
        };
        let (status, reason, effects, physical_id, ok) = match &result {
            Ok(out) => {
                let effects = if call.step == Step::Delete {
                    vec![Effect::Unretire {
                        logical_id: call.logical_id.clone(),
                        physical_id: out.physical_id.clone(),
                    }]
                } else {
                    success_effects(&op.view, call.step, &call.logical_id, with(out))
                };
                let reason = match out.attributes.get(crate::dataloss::FINAL_SNAPSHOT) {
                    Some(Value::String(s)) if call.step == Step::Delete => {
                        Some(format!("final snapshot {s} taken before the delete"))
                    }
                    _ => None,
                };
                (
                    ok_status,
                    reason,
                    effects,
                    Some(out.physical_id.clone()),
                    true,
                )
            }
            Err(CallError::Provider(e)) => (
                fail_status,
                Some(e.to_string()),
                Vec::new(),
                call.physical_id.clone(),
                false,
            ),
            Err(CallError::Signals { made, why }) => (
                fail_status,
                Some(why.clone()),
                // Recorded, so that the rollback deletes it.
                success_effects(&op.view, call.step, &call.logical_id, with(made)),
                Some(made.physical_id.clone()),
                false,
            ),
            Err(CallError::Timeout { after, found }) => {
                let reason = format!("timed out after {}s", after.as_secs_f64());
                match (call.step, found) {
                    (s, Some(Ok(Some(f)))) if is_create(s) => {
                        let out = ProviderOutput {
                            physical_id: f.physical_id.clone(),
                            attributes: f.attributes.clone(),
                        };
                        (
                            fail_status,
                            Some(format!("{reason}; the resource was made and is recorded so that rollback removes it")),
                            success_effects(&op.view, call.step, &call.logical_id, with(&out)),
                            Some(f.physical_id.clone()),
                            false,
                        )
                    }
                    (s, Some(Err(e))) if is_create(s) => {
                        return Err(EngineError::Reconcile {
                            stack: op.view.name.clone(),
                            logical_id: call.logical_id.clone(),
                            err: e.clone(),
                        })
                    }
                    (Step::Modify, _) => {
                        // The update may have been applied: record it as applied so a
                        // rollback reverts it (reverting unchanged properties is harmless).
                        let mut r = with(&ProviderOutput {
                            physical_id: call.physical_id.clone().unwrap_or_default(),
                            attributes: call.previous_attributes.clone(),
                        });
                        r.physical_id = call.physical_id.clone().unwrap_or_default();
                        (
                            fail_status,
                            Some(reason),
                            vec![Effect::Set {
                                logical_id: call.logical_id.clone(),
                                resource: r,
                            }],
                            call.physical_id.clone(),
                            false,
                        )
                    }
                    _ => (
                        fail_status,
                        Some(reason),
                        Vec::new(),
                        call.physical_id.clone(),
                        false,
                    ),
                }
            }
        };
        op.stage(Entry::Outcome(Outcome {
            token: Some(call.token.clone()),
            logical_id: call.logical_id.clone(),
            type_name: call.type_name.clone(),
            physical_id,
            status,
            reason,
            effects,
        }));
        Ok(ok)
    }

    /// Makes one call and journals its outcome (for the sequential phases).
    async fn call_one(&self, op: &mut Op<'_>, call: Call) -> Result<bool, EngineError> {
        self.stage_intent(op, &call);
        op.flush()?;
        let done = self.invoke(op.names.clone(), call).await;
        let ok = self.finish(op, done)?;
        op.flush()?;
        Ok(ok)
    }

    /// After a failed forward phase: roll back, or stop in a failed status.
    async fn fail(&self, op: &mut Op<'_>, reason: String) -> Result<(), EngineError> {
        let o = op.operation().clone();
        if o.disable_rollback {
            let status = if o.kind == OperationKind::Create {
                StackStatus::CreateFailed
            } else {
                StackStatus::UpdateFailed
            };
            return op.write(Entry::End {
                status,
                reason: Some(reason),
                effects: Vec::new(),
            });
        }
        if o.kind == OperationKind::Create {
            self.rollback_create(op, reason).await
        } else {
            self.rollback_update(op, reason).await
        }
    }

    /// Changes a stack's settings (termination protection, stack policy) without an
    /// operation. Refused while an operation runs on the stack.
    pub fn update_settings(
        &self,
        name: &str,
        change: impl FnOnce(&mut crate::journal::StackSettings),
    ) -> Result<crate::journal::StackSettings, EngineError> {
        let _guard = self.lock(name)?;
        let view = self.stack(name)?;
        if !view.exists() {
            return Err(EngineError::NotFound {
                stack: name.to_string(),
            });
        }
        let mut settings = view.settings.clone();
        change(&mut settings);
        if settings != view.settings {
            let mut op = self.op_for(view);
            op.write(Entry::Settings(settings.clone()))?;
        }
        Ok(settings)
    }
}
