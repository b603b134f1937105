//! The journal: every transition of every stack operation, written before and after each
//! provider call, from which a stack's state, status and events are folded.
//!
//! The executor never changes its in-memory view of a stack without first appending the
//! record that describes the change, and it builds that view with the same fold
//! ([`StackView::apply`]) that recovery uses. So what a restarted engine reads back is
//! exactly what the stopped one knew, and a provider call whose [`Entry::Intent`] has no
//! [`Entry::Outcome`] is the only thing recovery has to find out about.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use spindle_template::changeset::DeployedResource;
use spindle_template::{StackState, Value};

use crate::status::{ResourceStatus, StackStatus};

/// Where journal records are kept. The daemon implements it over SQLite, one transaction
/// per [`Journal::append`]; [`MemoryJournal`] and [`FileJournal`] serve tests and tools.
pub trait Journal: Send + Sync {
    /// Stores one record durably before returning. Records of one stack arrive with
    /// consecutive `seq` numbers; an implementation may reject a duplicate `(stack, seq)`.
    fn append(&self, record: &Record) -> Result<(), JournalError>;

    /// Stores several records of one stack, in order. Implementations should make this one
    /// transaction (the executor batches the records of calls that finish together); the
    /// default appends them one by one, which is also correct, only slower, since every
    /// prefix of the batch is a valid journal.
    fn append_all(&self, records: &[Record]) -> Result<(), JournalError> {
        records.iter().try_for_each(|r| self.append(r))
    }

    /// Every record of a stack in `seq` order. Records before the last [`Entry::End`] that
    /// precedes an [`Entry::Begin`] only matter for event history and may be compacted away.
    fn records(&self, stack: &str) -> Result<Vec<Record>, JournalError>;

    /// The names of every stack with at least one record.
    fn stacks(&self) -> Result<Vec<String>, JournalError>;
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("failed to write the journal at `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("journal record {seq} of stack `{stack}` is malformed")]
    Malformed {
        stack: String,
        seq: u64,
        #[source]
        err: serde_json::Error,
    },
    #[error("journal record {seq} of stack `{stack}` is out of order (expected {expected})")]
    OutOfOrder {
        stack: String,
        seq: u64,
        expected: u64,
    },
    /// A backend-specific failure (the daemon's SQLite store).
    #[error("journal backend failed: {0}")]
    Backend(String),
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub stack: String,
    /// 1, 2, 3, ... per stack.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub entry: Entry,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// An operation starts; the stack enters `status`.
    Begin {
        operation: Operation,
        status: StackStatus,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        effects: Vec<Effect>,
    },
    /// The stack moves to another phase.
    Status {
        status: StackStatus,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        effects: Vec<Effect>,
    },
    /// A provider call is about to be made.
    Intent(Intent),
    /// A provider call returned (or a step finished without one).
    Outcome(Outcome),
    /// The stack's settings changed (termination protection, stack policy). Not an
    /// operation and not an event; the newest one holds.
    Settings(StackSettings),
    /// The operation is over; `status` is stable.
    End {
        status: StackStatus,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        effects: Vec<Effect>,
    },
}

/// Per-stack settings that outlive operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSettings {
    /// While set, the stack can't be deleted.
    #[serde(default)]
    pub termination_protection: bool,
    /// The stack policy (JSON text, already checked by [`crate::policy::StackPolicy::parse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// The operation a [`Entry::Begin`] starts, with what recovery needs to finish it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub kind: OperationKind,
    /// What the stack looked like when the operation (for a continued rollback: the
    /// update being rolled back) started: the rollback target.
    pub previous: Deployed,
    pub disable_rollback: bool,
    /// The template file (nested stacks resolve paths against it).
    pub template_file: String,
    pub account_id: String,
    pub region: String,
    pub stack_id: String,
    /// The stack that owns this one as a nested stack.
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Create,
    Update,
    Delete,
    ContinueRollback,
}

/// What the stack owns: resources it points at, resources it no longer points at but
/// still has to delete, and its outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    pub state: StackState,
    /// Replaced copies and removed resources waiting for a cleanup phase; kept across
    /// operations until deleted, so a failed cleanup never forgets a resource.
    pub retired: Vec<Retired>,
    pub outputs: Vec<StackOutput>,
    /// Export names the stack's template imports (`Fn::ImportValue`): while an operation
    /// runs, those of the old and the new template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// The parameter values the stack was last deployed with (for `UsePreviousValue`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, StackParameter>,
    /// The template text exactly as submitted (YAML or JSON) for the state the stack is in
    /// or moving to: set when an operation begins, restored by a rollback. `None` for a
    /// stack last deployed before the text was kept, or through a path that had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A parameter value as supplied, and whether the template marks it `NoEcho`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackParameter {
    pub value: Value,
    #[serde(default)]
    pub no_echo: bool,
}

impl Deployed {
    /// Every `(logical id, physical id)` the stack owns.
    pub fn physical_ids(&self) -> BTreeSet<(String, String)> {
        self.state
            .resources
            .iter()
            .map(|(l, r)| (l.clone(), r.physical_id.clone()))
            .chain(
                self.retired
                    .iter()
                    .map(|r| (r.logical_id.clone(), r.resource.physical_id.clone())),
            )
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    pub logical_id: String,
    pub resource: DeployedResource,
    /// `Retain` policy: leave it in place (`DELETE_SKIPPED`) instead of deleting it.
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackOutput {
    pub name: String,
    pub value: Value,
    pub description: Option<String>,
    pub export_name: Option<String>,
    /// Computed from a `NoEcho` parameter: show [`spindle_template::value::MASK`].
    pub sensitive: bool,
}

/// A provider call about to be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub token: String,
    pub logical_id: String,
    pub type_name: String,
    pub step: Step,
    /// The resource acted on (update, delete).
    pub physical_id: Option<String>,
    /// What the resource will be recorded as if the call succeeds (create, update); the
    /// physical id and attributes are filled in from the provider's answer.
    pub desired: Option<DeployedResource>,
    /// `*_IN_PROGRESS`.
    pub status: ResourceStatus,
}

/// Why a provider call is made, which decides what its success changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Create a resource new in the template.
    Add,
    /// Create the new copy of a resource that needs replacement.
    Replace,
    /// Update in place.
    Modify,
    /// Rollback: update back to the previous properties.
    Revert,
    /// Rollback: create again a previous resource that no longer exists.
    Recreate,
    /// Delete a retired resource.
    Delete,
}

/// The result of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The intent this answers; `None` for steps without a provider call.
    pub token: Option<String>,
    pub logical_id: String,
    pub type_name: String,
    pub physical_id: Option<String>,
    pub status: ResourceStatus,
    pub reason: Option<String>,
    pub effects: Vec<Effect>,
}

/// A change to what the stack owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Effect {
    /// The stack now points at this resource for `logical_id`.
    Set {
        logical_id: String,
        resource: DeployedResource,
    },
    /// The stack no longer points at anything for `logical_id`.
    Unset {
        logical_id: String,
    },
    /// Add to the resources waiting for deletion.
    Retire(Retired),
    /// Remove from the resources waiting for deletion (deleted, skipped or restored).
    Unretire {
        logical_id: String,
        physical_id: String,
    },
    Outputs {
        outputs: Vec<StackOutput>,
    },
    Imports {
        imports: Vec<String>,
    },
    Parameters {
        parameters: BTreeMap<String, StackParameter>,
    },
    /// The template text the stack now answers (`GetTemplate`).
    Template {
        body: Option<String>,
    },
}

/// A stack as the journal describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackView {
    pub name: String,
    /// `None` before the first record.
    pub status: Option<StackStatus>,
    pub reason: Option<String>,
    pub deployed: Deployed,
    /// The last operation begun.
    pub operation: Option<Operation>,
    /// True while `operation` has no [`Entry::End`].
    pub in_progress: bool,
    /// Provider calls begun without an outcome (only non-empty after a crash).
    pub pending: BTreeMap<String, Intent>,
    /// The first resource failure of the current operation ("Resource X failed: ...").
    pub first_failure: Option<String>,
    /// Every resource failure of the current operation: (logical id, description).
    pub failures: Vec<(String, String)>,
    pub last_seq: u64,
    /// When the last operation record was written (settings changes don't count).
    pub last_updated_ms: u64,
    pub settings: StackSettings,
}

impl StackView {
    /// Folds records (in order) into a view.
    pub fn from_records(name: &str, records: &[Record]) -> StackView {
        let mut v = StackView {
            name: name.to_string(),
            ..StackView::default()
        };
        for r in records {
            v.apply(r);
        }
        v
    }

    /// The newest failure of `logical_id` in this operation, worded like `first_failure`.
    pub fn last_failure_of(&self, logical_id: &str) -> Option<String> {
        self.failures
            .iter()
            .rev()
            .find(|(l, _)| l == logical_id)
            .map(|(_, f)| f.clone())
    }

    /// True when the stack exists (has not been deleted).
    pub fn exists(&self) -> bool {
        !matches!(self.status, None | Some(StackStatus::DeleteComplete))
    }

    /// Folds owned records (no copies of the resources they carry).
    pub fn from_owned_records(name: &str, records: Vec<Record>) -> StackView {
        let mut v = StackView {
            name: name.to_string(),
            ..StackView::default()
        };
        for r in records {
            v.apply_owned(r);
        }
        v
    }

    /// Applies one record. The executor and recovery both use this, so their views agree.
    pub fn apply(&mut self, r: &Record) {
        self.apply_owned(r.clone());
    }

    /// [`StackView::apply`] for a record the caller no longer needs.
    pub fn apply_owned(&mut self, r: Record) {
        self.last_seq = r.seq;
        if !matches!(r.entry, Entry::Settings(_)) {
            self.last_updated_ms = r.timestamp_ms;
        }
        match r.entry {
            Entry::Settings(s) => self.settings = s,
            Entry::Begin {
                operation,
                status,
                effects,
            } => {
                self.operation = Some(operation);
                self.in_progress = true;
                self.status = Some(status);
                self.reason = None;
                self.first_failure = None;
                self.failures.clear();
                self.pending.clear();
                self.apply_effects(effects);
            }
            Entry::Status {
                status,
                reason,
                effects,
            } => {
                self.status = Some(status);
                if reason.is_some() {
                    self.reason = reason;
                }
                self.apply_effects(effects);
            }
            Entry::Intent(i) => {
                self.pending.insert(i.token.clone(), i);
            }
            Entry::Outcome(o) => {
                if let Some(t) = &o.token {
                    self.pending.remove(t);
                }
                if is_failure(o.status) {
                    let f = format!(
                        "Resource {} failed: {}: {}",
                        o.logical_id,
                        o.status,
                        o.reason.as_deref().unwrap_or("no reason given")
                    );
                    self.first_failure.get_or_insert_with(|| f.clone());
                    self.failures.push((o.logical_id.clone(), f));
                }
                self.apply_effects(o.effects);
            }
            Entry::End {
                status,
                reason,
                effects,
            } => {
                self.status = Some(status);
                self.reason = reason;
                self.in_progress = false;
                self.pending.clear();
                self.apply_effects(effects);
            }
        }
    }

    fn apply_effects(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Set {
                    logical_id,
                    resource,
                } => {
                    self.deployed.state.resources.insert(logical_id, resource);
                }
                Effect::Unset { logical_id } => {
                    self.deployed.state.resources.remove(&logical_id);
                }
                Effect::Retire(r) => {
                    let dup = self.deployed.retired.iter().any(|x| {
                        x.logical_id == r.logical_id
                            && x.resource.physical_id == r.resource.physical_id
                    });
                    if !dup {
                        self.deployed.retired.push(r);
                    }
                }
                Effect::Unretire {
                    logical_id,
                    physical_id,
                } => self.deployed.retired.retain(|x| {
                    !(x.logical_id == logical_id && x.resource.physical_id == physical_id)
                }),
                Effect::Outputs { outputs } => self.deployed.outputs = outputs,
                Effect::Imports { imports } => self.deployed.imports = imports,
                Effect::Parameters { parameters } => self.deployed.parameters = parameters,
                Effect::Template { body } => self.deployed.template = body,
            }
        }
    }
}

fn is_failure(s: ResourceStatus) -> bool {
    matches!(
        s,
        ResourceStatus::CreateFailed | ResourceStatus::UpdateFailed | ResourceStatus::DeleteFailed
    )
}

/// A stack or resource event, as `spindle stack events` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackEvent {
    pub stack: String,
    pub seq: u64,
    pub timestamp_ms: u64,
    /// The stack name for stack events.
    pub logical_id: String,
    pub physical_id: Option<String>,
    /// `AWS::CloudFormation::Stack` for stack events.
    pub type_name: String,
    pub status: String,
    pub reason: Option<String>,
}

impl Record {
    /// The user-visible event this record stands for.
    pub fn event(&self) -> StackEvent {
        let stack_event = |status: StackStatus, reason: &Option<String>| StackEvent {
            stack: self.stack.clone(),
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            logical_id: self.stack.clone(),
            physical_id: None,
            type_name: "AWS::CloudFormation::Stack".into(),
            status: status.to_string(),
            reason: reason.clone(),
        };
        match &self.entry {
            Entry::Begin { status, .. } => stack_event(*status, &Some("User Initiated".into())),
            Entry::Status { status, reason, .. } | Entry::End { status, reason, .. } => {
                stack_event(*status, reason)
            }
            Entry::Intent(i) => StackEvent {
                stack: self.stack.clone(),
                seq: self.seq,
                timestamp_ms: self.timestamp_ms,
                logical_id: i.logical_id.clone(),
                physical_id: i.physical_id.clone(),
                type_name: i.type_name.clone(),
                status: i.status.to_string(),
                reason: None,
            },
            Entry::Settings(_) => StackEvent {
                stack: self.stack.clone(),
                seq: self.seq,
                timestamp_ms: self.timestamp_ms,
                logical_id: self.stack.clone(),
                physical_id: None,
                type_name: "AWS::CloudFormation::Stack".into(),
                status: "SETTINGS_UPDATED".into(),
                reason: None,
            },
            Entry::Outcome(o) => StackEvent {
                stack: self.stack.clone(),
                seq: self.seq,
                timestamp_ms: self.timestamp_ms,
                logical_id: o.logical_id.clone(),
                physical_id: o.physical_id.clone(),
                type_name: o.type_name.clone(),
                status: o.status.to_string(),
                reason: o.reason.clone(),
            },
        }
    }
}

/// Events of a stack, oldest first.
pub fn events(records: &[Record]) -> Vec<StackEvent> {
    records
        .iter()
        .filter(|r| !matches!(r.entry, Entry::Settings(_)))
        .map(Record::event)
        .collect()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_order(
    stacks: &BTreeMap<String, Vec<Record>>,
    record: &Record,
) -> Result<(), JournalError> {
    let expected = stacks
        .get(&record.stack)
        .and_then(|v| v.last())
        .map(|r| r.seq + 1)
        .unwrap_or(1);
    if record.seq != expected {
        return Err(JournalError::OutOfOrder {
            stack: record.stack.clone(),
            seq: record.seq,
            expected,
        });
    }
    Ok(())
}

/// A journal in memory. Share it (`Arc`) between a "crashed" engine and a fresh one.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    stacks: Mutex<BTreeMap<String, Vec<Record>>>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total records stored.
    pub fn len(&self) -> usize {
        self.stacks
            .lock()
            .map(|s| s.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned() -> JournalError {
    JournalError::Backend("journal lock poisoned".into())
}

/// Checks that `records` continue the journal `stacks` without gaps.
fn check_batch(
    stacks: &BTreeMap<String, Vec<Record>>,
    records: &[Record],
) -> Result<(), JournalError> {
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for record in records {
        let next = match expected.get(record.stack.as_str()) {
            Some(n) => *n,
            None => {
                check_order(stacks, record)?;
                record.seq
            }
        };
        if record.seq != next {
            return Err(JournalError::OutOfOrder {
                stack: record.stack.clone(),
                seq: record.seq,
                expected: next,
            });
        }
        expected.insert(&record.stack, next + 1);
    }
    Ok(())
}

impl Journal for MemoryJournal {
    fn append(&self, record: &Record) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// All or nothing.
    fn append_all(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut s = self.stacks.lock().map_err(|_| poisoned())?;
        check_batch(&s, records)?;
        for record in records {
            s.entry(record.stack.clone())
                .or_default()
                .push(record.clone());
        }
        Ok(())
    }

    fn records(&self, stack: &str) -> Result<Vec<Record>, JournalError> {
        let s = self.stacks.lock().map_err(|_| poisoned())?;
        Ok(s.get(stack).cloned().unwrap_or_default())
    }

    fn stacks(&self) -> Result<Vec<String>, JournalError> {
        let s = self.stacks.lock().map_err(|_| poisoned())?;
        Ok(s.keys().cloned().collect())
    }
}

/// A journal in one JSON-lines file, appended to and (with `sync`) flushed to disk on
/// every record. A torn last line (a crash mid-write) is ignored when the file is opened.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    sync: bool,
    inner: Mutex<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    file: File,
    stacks: BTreeMap<String, Vec<Record>>,
}

impl FileJournal {
    /// Opens (creating if needed) the journal at `path`. With `sync`, every append is
    /// `fsync`ed before it returns.
    pub fn open(path: &Path, sync: bool) -> Result<FileJournal, JournalError> {
        let io = |err| JournalError::Io {
            path: path.to_path_buf(),
            err,
        };
        let mut stacks: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let mut offset = 0usize;
            let mut good_end = 0usize;
            let mut lines = text.split_inclusive('\n').peekable();
            let mut n = 0u64;
            while let Some(line) = lines.next() {
                n += 1;
                offset += line.len();
                if line.trim().is_empty() {
                    good_end = offset;
                    continue;
                }
                match (serde_json::from_str::<Record>(line), line.ends_with('\n')) {
                    (Ok(r), true) => {
                        stacks.entry(r.stack.clone()).or_default().push(r);
                        good_end = offset;
                    }
                    // The last line may be torn by a crash: cut it off so appends continue
                    // on a clean line. Anything earlier is corruption.
                    (_, _) if lines.peek().is_none() => {}
                    (Ok(_), false) => {}
                    (Err(err), _) => {
                        return Err(JournalError::Malformed {
                            stack: String::new(),
                            seq: n,
                            err,
                        })
                    }
                }
            }
            if good_end < text.len() {
                let f = OpenOptions::new().write(true).open(path).map_err(io)?;
                f.set_len(good_end as u64).map_err(io)?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(FileJournal {
            path: path.to_path_buf(),
            sync,
            inner: Mutex::new(FileInner { file, stacks }),
        })
    }
}

impl Journal for FileJournal {
    fn append(&self, record: &Record) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// One write and (with `sync`) one `fsync` for the whole batch.
    fn append_all(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        check_batch(&inner.stacks, records)?;
        let mut text = String::new();
        for record in records {
            let line = serde_json::to_string(record).map_err(|err| JournalError::Malformed {
                stack: record.stack.clone(),
                seq: record.seq,
                err,
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        let io = |err| JournalError::Io {
            path: self.path.clone(),
            err,
        };
        inner.file.write_all(text.as_bytes()).map_err(io)?;
        if self.sync {
            inner.file.sync_data().map_err(io)?;
        }
        for record in records {
            inner
                .stacks
                .entry(record.stack.clone())
                .or_default()
                .push(record.clone());
        }
        Ok(())
    }

    fn records(&self, stack: &str) -> Result<Vec<Record>, JournalError> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.stacks.get(stack).cloned().unwrap_or_default())
    }

    fn stacks(&self) -> Result<Vec<String>, JournalError> {
        let inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(inner.stacks.keys().cloned().collect())
    }
}

/// Values computed from `NoEcho` parameters, wherever a record carries them: properties a
/// resource marks `sensitive` (and its metadata if `metadata_sensitive`), every attribute of
/// such a resource (a provider may echo a property back), and `sensitive` outputs.
fn deployed_resource_secrets(r: &mut DeployedResource, f: &mut dyn FnMut(&mut Value)) {
    let any = !r.sensitive.is_empty() || r.metadata_sensitive;
    for (k, v) in r.properties.iter_mut() {
        if r.sensitive.contains(k) {
            f(v);
        }
    }
    if r.metadata_sensitive {
        if let Some(m) = r.metadata.as_mut() {
            f(m);
        }
    }
    if any {
        r.attributes.values_mut().for_each(&mut *f);
    }
}

fn outputs_secrets(outputs: &mut [StackOutput], f: &mut dyn FnMut(&mut Value)) {
    for o in outputs.iter_mut().filter(|o| o.sensitive) {
        f(&mut o.value);
    }
}

fn parameters_secrets(p: &mut BTreeMap<String, StackParameter>, f: &mut dyn FnMut(&mut Value)) {
    for sp in p.values_mut().filter(|sp| sp.no_echo) {
        f(&mut sp.value);
    }
}

fn effects_secrets(effects: &mut [Effect], f: &mut dyn FnMut(&mut Value)) {
    for e in effects {
        match e {
            Effect::Parameters { parameters } => parameters_secrets(parameters, f),
            Effect::Set { resource, .. } => deployed_resource_secrets(resource, f),
            Effect::Retire(r) => deployed_resource_secrets(&mut r.resource, f),
            Effect::Outputs { outputs } => outputs_secrets(outputs, f),
            Effect::Unset { .. }
            | Effect::Unretire { .. }
            | Effect::Imports { .. }
            | Effect::Template { .. } => {}
        }
    }
}

impl Record {
    /// Calls `f` on every value in the record that was computed from a `NoEcho` parameter,
    /// so a journal backend can seal them before storing and unseal them after reading.
    pub fn secrets_mut(&mut self, f: &mut dyn FnMut(&mut Value)) {
        match &mut self.entry {
            Entry::Begin {
                operation, effects, ..
            } => {
                let prev = &mut operation.previous;
                prev.state
                    .resources
                    .values_mut()
                    .for_each(|r| deployed_resource_secrets(r, f));
                prev.retired
                    .iter_mut()
                    .for_each(|r| deployed_resource_secrets(&mut r.resource, f));
                outputs_secrets(&mut prev.outputs, f);
                parameters_secrets(&mut prev.parameters, f);
                effects_secrets(effects, f);
            }
            Entry::Status { effects, .. } | Entry::End { effects, .. } => {
                effects_secrets(effects, f)
            }
            Entry::Intent(i) => {
                if let Some(d) = i.desired.as_mut() {
                    deployed_resource_secrets(d, f);
                }
            }
            Entry::Outcome(o) => effects_secrets(&mut o.effects, f),
            Entry::Settings(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str) -> DeployedResource {
        DeployedResource {
            type_name: "T".into(),
            physical_id: id.into(),
            properties: BTreeMap::new(),
            sensitive: BTreeSet::new(),
            attributes: BTreeMap::new(),
            metadata: None,
            metadata_sensitive: false,
            dependencies: Vec::new(),
            deletion_policy: "Delete".into(),
            update_replace_policy: "Delete".into(),
            update_policy: None,
            creation_policy: None,
        }
    }

    fn rec(seq: u64, entry: Entry) -> Record {
        Record {
            stack: "s".into(),
            seq,
            timestamp_ms: seq * 10,
            entry,
        }
    }

    fn begin() -> Entry {
        Entry::Begin {
            operation: Operation {
                kind: OperationKind::Create,
                previous: Deployed::default(),
                disable_rollback: false,
                template_file: "t.yaml".into(),
                account_id: "123456789012".into(),
                region: "eu-west-1".into(),
                stack_id: "id".into(),
                parent: None,
            },
            status: StackStatus::CreateInProgress,
            effects: Vec::new(),
        }
    }

    fn intent(token: &str) -> Entry {
        Entry::Intent(Intent {
            token: token.into(),
            logical_id: "A".into(),
            type_name: "T".into(),
            step: Step::Add,
            physical_id: None,
            desired: Some(resource("")),
            status: ResourceStatus::CreateInProgress,
        })
    }

    /// The fold: pending intents, effects, first failure, end of operation.
    #[test]
    fn fold_tracks_pending_calls_effects_and_failures() {
        let mut records = vec![rec(1, begin()), rec(2, intent("t2")), rec(3, intent("t3"))];
        let v = StackView::from_records("s", &records);
        assert!(v.in_progress);
        assert_eq!(v.pending.keys().collect::<Vec<_>>(), ["t2", "t3"]);
        records.push(rec(
            4,
            Entry::Outcome(Outcome {
                token: Some("t2".into()),
                logical_id: "A".into(),
                type_name: "T".into(),
                physical_id: Some("p-1".into()),
                status: ResourceStatus::CreateComplete,
                reason: None,
                effects: vec![Effect::Set {
                    logical_id: "A".into(),
                    resource: resource("p-1"),
                }],
            }),
        ));
        records.push(rec(
            5,
            Entry::Outcome(Outcome {
                token: Some("t3".into()),
                logical_id: "B".into(),
                type_name: "T".into(),
                physical_id: None,
                status: ResourceStatus::CreateFailed,
                reason: Some("boom".into()),
                effects: Vec::new(),
            }),
        ));
        let v = StackView::from_records("s", &records);
        assert!(v.pending.is_empty());
        assert_eq!(v.deployed.state.resources["A"].physical_id, "p-1");
        assert_eq!(
            v.first_failure.as_deref(),
            Some("Resource B failed: CREATE_FAILED: boom")
        );
        records.push(rec(
            6,
            Entry::Status {
                status: StackStatus::RollbackInProgress,
                reason: Some("why".into()),
                effects: vec![
                    Effect::Retire(Retired {
                        logical_id: "A".into(),
                        resource: resource("p-1"),
                        retain: false,
                    }),
                    Effect::Unset {
                        logical_id: "A".into(),
                    },
                ],
            },
        ));
        let v = StackView::from_records("s", &records);
        assert!(v.deployed.state.resources.is_empty());
        assert_eq!(
            v.deployed.physical_ids().into_iter().collect::<Vec<_>>(),
            [("A".to_string(), "p-1".to_string())]
        );
        records.push(rec(
            7,
            Entry::End {
                status: StackStatus::RollbackComplete,
                reason: Some("why".into()),
                effects: vec![Effect::Unretire {
                    logical_id: "A".into(),
                    physical_id: "p-1".into(),
                }],
            },
        ));
        let v = StackView::from_records("s", &records);
        assert!(!v.in_progress);
        assert!(v.deployed.physical_ids().is_empty());
        assert_eq!(v.status, Some(StackStatus::RollbackComplete));
        let ev = events(&records);
        assert_eq!(ev[0].reason.as_deref(), Some("User Initiated"));
        assert_eq!(ev[4].status, "CREATE_FAILED");
        assert_eq!(ev[4].reason.as_deref(), Some("boom"));
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = rec(2, intent("tok"));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"kind\":\"intent\""), "{text}");
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }

    #[test]
    fn journals_refuse_gaps_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileJournal::open(&dir.path().join("j"), false).unwrap();
        let mem = MemoryJournal::new();
        for j in [&file as &dyn Journal, &mem as &dyn Journal] {
            j.append(&rec(1, begin())).unwrap();
            assert!(matches!(
                j.append(&rec(3, intent("x"))),
                Err(JournalError::OutOfOrder { expected: 2, .. })
            ));
            assert!(j.append(&rec(1, begin())).is_err());
            j.append_all(&[rec(2, intent("a")), rec(3, intent("b"))])
                .unwrap();
            assert!(j
                .append_all(&[rec(4, intent("c")), rec(6, intent("d"))])
                .is_err());
            assert_eq!(j.records("s").unwrap().len(), 3);
            assert_eq!(j.stacks().unwrap(), ["s"]);
        }
        // What the file holds survives a reopen.
        let again = FileJournal::open(&dir.path().join("j"), false).unwrap();
        assert_eq!(again.records("s").unwrap(), file.records("s").unwrap());
    }

    #[test]
    fn a_corrupt_line_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let good = serde_json::to_string(&rec(1, begin())).unwrap();
        std::fs::write(&path, format!("not json\n{good}\n")).unwrap();
        assert!(matches!(
            FileJournal::open(&path, false),
            Err(JournalError::Malformed { seq: 1, .. })
        ));
    }
}
