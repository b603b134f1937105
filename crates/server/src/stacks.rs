//! Stacks: the stack engine (`spindle-stack`) wired to the store. One engine per account, so
//! stack names are scoped by account, each with a journal and a parameter store backed by
//! SQLite. Nothing here decides what to deploy: that is `spindle-template`'s planner and the
//! engine's saga.

use crate::sealer::Sealer;
use spindle_model::api::{StackChange, StackPropertyChange, TemplateDiagnostic};
use spindle_model::{AccountId, ParamName};
use spindle_stack::journal::{Journal, JournalError, Record};
use spindle_stack::ssm::{ParamStore, ParamStoreError, PutParam, StoredParam};
use spindle_stack::{register_builtins, Engine, EngineOptions, ProviderRegistry};
use spindle_store::Store;
use spindle_template::changeset::{Cause, ChangeSet};
use spindle_template::{Diagnostic, ExternalResolver};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The region stacks see as `AWS::Region`.
pub const REGION: &str = "us-east-1";

/// The journal of one account's stacks, in the `stack_journal` table.
///
/// Values computed from `NoEcho` parameters are sealed before they are stored and unsealed
/// when read (see `sealer.rs`), so the table never holds them in clear.
struct SqlJournal {
    store: Arc<Store>,
    account: AccountId,
    sealer: Option<Arc<Sealer>>,
}

impl SqlJournal {
    /// The record as stored: JSON with its secrets sealed.
    fn stored(&self, record: &Record) -> Result<String, JournalError> {
        let mut sealed = record.clone();
        let mut secrets = 0;
        match &self.sealer {
            Some(s) => sealed.secrets_mut(&mut |v| {
                s.seal(v);
                secrets += 1;
            }),
            None => sealed.secrets_mut(&mut |_| secrets += 1),
        }
        if secrets > 0 && self.sealer.is_none() {
            return Err(JournalError::Backend(
                "NoEcho values can't be sealed: the sealing key is unavailable (see the daemon's log)"
                    .into(),
            ));
        }
        serde_json::to_string(&sealed).map_err(|e| JournalError::Backend(e.to_string()))
    }
}

impl Journal for SqlJournal {
    fn append(&self, record: &Record) -> Result<(), JournalError> {
        let json = self.stored(record)?;
        self.store
            .append_journal(&self.account, &record.stack, record.seq, &json)
            .map_err(|e| JournalError::Backend(e.to_string()))
    }

    fn append_all(&self, records: &[Record]) -> Result<(), JournalError> {
        let rows = records
            .iter()
            .map(|r| Ok((r.stack.as_str(), r.seq, self.stored(r)?)))
            .collect::<Result<Vec<_>, JournalError>>()?;
        self.store
            .append_journal_batch(&self.account, &rows)
            .map_err(|e| JournalError::Backend(e.to_string()))
    }

    fn records(&self, stack: &str) -> Result<Vec<Record>, JournalError> {
        let rows = self
            .store
            .journal_records(&self.account, stack)
            .map_err(|e| JournalError::Backend(e.to_string()))?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut record: Record =
                    serde_json::from_str(r).map_err(|err| JournalError::Malformed {
                        stack: stack.to_owned(),
                        seq: i as u64 + 1,
                        err,
                    })?;
                if let Some(s) = &self.sealer {
                    let mut failed = None;
                    record.secrets_mut(&mut |v| {
                        if let Err(e) = s.unseal(v) {
                            failed = Some(e);
                        }
                    });
                    if let Some(e) = failed {
                        return Err(JournalError::Backend(format!(
                            "record {} of stack `{stack}`: {e}",
                            i + 1
                        )));
                    }
                }
                Ok(record)
            })
            .collect()
    }

    fn stacks(&self) -> Result<Vec<String>, JournalError> {
        self.store
            .journal_stacks(&self.account)
            .map_err(|e| JournalError::Backend(e.to_string()))
    }
}

/// `AWS::SSM::Parameter` resources land in the same parameter store as `spindle param`.
struct SqlParamStore {
    store: Arc<Store>,
}

/// A template's parameter name, checked as `spindle param` checks it.
fn param_name(name: &str) -> Result<ParamName, ParamStoreError> {
    ParamName::parse(name).map_err(|e| ParamStoreError::Backend(e.to_string()))
}

impl ParamStore for SqlParamStore {
    fn get(&self, account: &AccountId, name: &str) -> Result<Option<StoredParam>, ParamStoreError> {
        let n = param_name(name)?;
        let found = self
            .store
            .get_param_with_token(account, &n)
            .map_err(|e| ParamStoreError::Backend(e.to_string()))?;
        Ok(found.map(|(p, token)| StoredParam {
            name: p.name.to_string(),
            kind: p.kind,
            value: p.value,
            description: p.description,
            version: p.version,
            token,
        }))
    }

    fn put(
        &self,
        account: &AccountId,
        param: &PutParam<'_>,
        overwrite: bool,
    ) -> Result<i64, ParamStoreError> {
        let n = param_name(param.name)?;
        self.store
            .put_param(
                account,
                &n,
                param.kind,
                param.value,
                param.description,
                overwrite,
                param.token,
                crate::app::now(),
            )
            .map_err(|e| match e {
                spindle_store::StoreError::Conflict { .. } => ParamStoreError::Exists {
                    name: param.name.to_owned(),
                },
                other => ParamStoreError::Backend(other.to_string()),
            })
    }

    fn delete(&self, account: &AccountId, name: &str) -> Result<bool, ParamStoreError> {
        let n = param_name(name)?;
        match self.store.delete_param(account, &n) {
            Ok(()) => Ok(true),
            Err(spindle_store::StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(ParamStoreError::Backend(e.to_string())),
        }
    }
}

/// Resolves `AWS::SSM::Parameter::Value<…>` parameter types from the account's parameters
/// and `Fn::ImportValue` from the exports of the account's stacks, and records which exports
/// a template imported (they can't be removed while it uses them).
pub struct External {
    pub store: Arc<Store>,
    pub account: AccountId,
    exports: BTreeMap<String, String>,
    imported: Mutex<BTreeSet<String>>,
}

impl External {
    pub fn new(store: Arc<Store>, account: AccountId, engine: &Engine) -> Self {
        let exports = engine
            .exports()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _, o)| {
                let v = o
                    .value
                    .scalar_string()
                    .unwrap_or_else(|| o.value.render(false));
                (name, v)
            })
            .collect();
        External {
            store,
            account,
            exports,
            imported: Mutex::new(BTreeSet::new()),
        }
    }

    /// Export names `import_value` was asked for so far.
    pub fn imported(&self) -> Vec<String> {
        self.imported
            .lock()
            .map(|i| i.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl ExternalResolver for External {
    fn ssm_parameter(&self, name: &str) -> Option<String> {
        let n = ParamName::parse(name).ok()?;
        self.store
            .get_param(&self.account, &n)
            .ok()
            .flatten()
            .map(|p| p.value)
    }

    fn import_value(&self, export_name: &str) -> Option<String> {
        if let Ok(mut i) = self.imported.lock() {
            i.insert(export_name.to_owned());
        }
        self.exports.get(export_name).cloned()
    }
}

/// Every resource type a daemon of this build registers in each account's engine
/// ([`Stacks::engine`]) when it runs as root (without root, the EC2 and auto scaling types
/// are off): the same lists the registering functions iterate. `spindle template validate`
/// without a daemon checks templates against these.
pub fn provisionable_types() -> BTreeSet<&'static str> {
    spindle_stack::BUILTIN_TYPES
        .iter()
        .chain(spindle_providers::EC2_TYPES)
        .chain(spindle_providers::ELBV2_TYPES)
        .chain(spindle_providers::AUTOSCALING_TYPES)
        .chain(spindle_providers::ROUTE53_TYPES)
        .chain(spindle_providers::RDS_TYPES)
        .copied()
        .collect()
}

/// The engines, one per account, created on first use.
pub struct Stacks {
    store: Arc<Store>,
    /// Seals NoEcho values in the journal and in stored change sets.
    pub sealer: Option<Arc<Sealer>>,
    params: Arc<SqlParamStore>,
    engines: Mutex<HashMap<AccountId, Arc<Engine>>>,
    wait_url_base: String,
    ec2: Option<Arc<spindle_providers::Ec2>>,
    elb: Arc<spindle_providers::Elb>,
    autoscaling: Option<Arc<spindle_providers::AutoScaling>>,
    route53: Option<Arc<spindle_providers::Route53>>,
    /// Secrets Manager (`None` without the sealing key).
    pub secrets: Option<Arc<spindle_providers::SecretsManager>>,
    rds: Option<Arc<spindle_providers::Rds>>,
}

impl Stacks {
    /// Registers the `AWS::AutoScaling::*` providers in every account's engine.
    pub fn with_autoscaling(mut self, a: Option<Arc<spindle_providers::AutoScaling>>) -> Self {
        self.autoscaling = a;
        self
    }

    /// Registers the `AWS::RDS::*` providers in every account's engine (as root only).
    pub fn with_rds(mut self, r: Option<Arc<spindle_providers::Rds>>) -> Self {
        // Managed master passwords live in Secrets Manager, and DB instances are targets
        // of `SecretTargetAttachment`.
        if let (Some(rds), Some(sm)) = (&r, &self.secrets) {
            rds.set_secrets(sm.secrets().clone());
            sm.set_targets(rds.clone());
        }
        self.rds = r;
        self
    }

    /// The RDS providers (for `spindle rds`), when this daemon runs them.
    pub fn rds(&self) -> Option<&Arc<spindle_providers::Rds>> {
        self.rds.as_ref()
    }

    /// Registers the `AWS::Route53::*` providers in every account's engine.
    pub fn with_route53(mut self, r: Arc<spindle_providers::Route53>) -> Self {
        self.route53 = Some(r);
        self
    }

    pub fn new(
        store: Arc<Store>,
        endpoint: &str,
        ec2: Option<Arc<spindle_providers::Ec2>>,
        elb: Arc<spindle_providers::Elb>,
    ) -> Self {
        let params = Arc::new(SqlParamStore {
            store: store.clone(),
        });
        elb.set_param_store(params.clone());
        let key = store.path().with_file_name("stack-secrets.key");
        let sealer = match Sealer::open(&key) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::error!(error = %e, "stacks with NoEcho parameters can't be deployed");
                None
            }
        };
        // The parameter store seals SecureString values with the same key.
        if let Some(s) = &sealer {
            match store.seal_params_with(Arc::new(crate::secrets::SealWith(s.clone()))) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    parameters = n,
                    "SecureString values kept in clear are now sealed"
                ),
                Err(e) => tracing::error!(error = %e, "sealing SecureString parameters failed"),
            }
        }
        let secrets = sealer.clone().and_then(|s| crate::secrets::open(&store, s));
        Self {
            secrets,
            sealer,
            ec2,
            elb,
            autoscaling: None,
            route53: None,
            rds: None,
            params,
            store,
            engines: Mutex::new(HashMap::new()),
            wait_url_base: format!("{endpoint}/v1/wait-conditions"),
        }
    }

    pub fn engine(&self, account: &AccountId) -> Arc<Engine> {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        engines
            .entry(account.clone())
            .or_insert_with(|| {
                let mut registry = ProviderRegistry::new();
                register_builtins(&mut registry, self.params.clone());
                if let Some(ec2) = &self.ec2 {
                    ec2.register(&mut registry);
                }
                self.elb.register(&mut registry);
                if let Some(a) = &self.autoscaling {
                    a.register(&mut registry);
                }
                if let Some(r) = &self.route53 {
                    r.register(&mut registry);
                }
                if let Some(s) = &self.secrets {
                    s.register(&mut registry);
                }
                if let Some(r) = &self.rds {
                    r.register(&mut registry);
                }
                let journal = Arc::new(SqlJournal {
                    store: self.store.clone(),
                    account: account.clone(),
                    sealer: self.sealer.clone(),
                });
                let options = EngineOptions {
                    wait_url_base: self.wait_url_base.clone(),
                    ..EngineOptions::default()
                };
                let engine = Engine::new(journal, registry, options);
                engine.set_references(self.references());
                Arc::new(engine)
            })
            .clone()
    }

    /// Dynamic references from the secrets and the parameter store.
    pub fn references(&self) -> Arc<crate::secrets::DaemonReferences> {
        Arc::new(crate::secrets::DaemonReferences {
            secrets: self.secrets.clone(),
            store: self.store.clone(),
        })
    }

    /// Finishes every operation a previous daemon left in progress (crash recovery), the
    /// accounts side by side.
    pub async fn recover_all(self: Arc<Self>) {
        let accounts = match self.store.accounts_with_journal() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list stacks to recover");
                return;
            }
        };
        let tasks: Vec<_> = accounts
            .into_iter()
            .map(|account| {
                let engine = self.engine(&account);
                tokio::spawn(async move {
                    match engine.recover().await {
                        Ok(outcomes) => {
                            for o in outcomes {
                                tracing::info!(account = %account, stack = %o.stack, status = %o.status, "recovered stack operation");
                            }
                        }
                        Err(e) => tracing::error!(account = %account, error = %e, "stack recovery failed"),
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The API shape of a template diagnostic.
pub fn diagnostic(d: &Diagnostic) -> TemplateDiagnostic {
    TemplateDiagnostic {
        file: d.file.clone(),
        line: d.pos.line,
        column: d.pos.col,
        path: d.path.clone(),
        category: d.category.as_str().to_owned(),
        message: d.message.clone(),
    }
}

/// The API shape of a change set, and its hash (what the user saw, so execute can check it).
pub fn change_set(cs: &ChangeSet) -> (Vec<StackChange>, String) {
    use sha2::Digest;
    let hash = hex::encode(
        &sha2::Sha256::digest(serde_json::to_vec(cs).expect("change sets serialise"))[..12],
    );
    let changes = cs
        .changes
        .iter()
        .map(|c| StackChange {
            action: format!("{:?}", c.action),
            logical_id: c.logical_id.clone(),
            resource_type: c.type_name.clone(),
            replacement: c.replacement.map(|r| format!("{r:?}")),
            physical_id: c.physical_id.clone(),
            details: c
                .details
                .iter()
                .map(|d| StackPropertyChange {
                    name: d.name.clone(),
                    target: d.target.clone(),
                    before: d.before.clone(),
                    after: d.after.clone(),
                    requires_recreation: format!("{:?}", d.requires_recreation),
                    cause: match &d.cause {
                        Cause::Direct => "Direct".into(),
                        Cause::Dynamic(from) => format!("depends on {}", from.join(", ")),
                    },
                })
                .collect(),
        })
        .collect();
    (changes, hash)
}
