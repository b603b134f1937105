//! `AWS::SSM::Parameter` over a [`ParamStore`] (the daemon's SQLite parameter store;
//! [`MemoryParamStore`] for tests and benchmarks).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use spindle_model::AccountId;
use spindle_template::Value;

use crate::provider::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use crate::short_hash;

/// A stored parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParam {
    pub name: String,
    /// `String` or `StringList`.
    pub kind: String,
    pub value: String,
    pub description: String,
    pub version: i64,
    /// The idempotency token of the stack operation that last wrote it (`None` when a
    /// user wrote it). Crash recovery uses it to tell a stack's parameter from a user's.
    pub token: Option<String>,
}

/// A parameter to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutParam<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub description: &'a str,
    pub token: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamStoreError {
    #[error("parameter {name} already exists")]
    Exists { name: String },
    #[error("parameter store failed: {0}")]
    Backend(String),
}

/// The parameter store of one installation, scoped by account.
pub trait ParamStore: Send + Sync {
    fn get(&self, account: &AccountId, name: &str) -> Result<Option<StoredParam>, ParamStoreError>;
    /// Creates or (with `overwrite`) replaces a parameter; returns the new version.
    fn put(
        &self,
        account: &AccountId,
        param: &PutParam<'_>,
        overwrite: bool,
    ) -> Result<i64, ParamStoreError>;
    /// Removes a parameter; `Ok(false)` when there was none.
    fn delete(&self, account: &AccountId, name: &str) -> Result<bool, ParamStoreError>;
}

/// A parameter store in memory.
#[derive(Debug, Default)]
pub struct MemoryParamStore {
    params: Mutex<HashMap<(String, String), StoredParam>>,
}

impl MemoryParamStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `(account, name)` stored, sorted.
    pub fn names(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .params
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn lock_err() -> ParamStoreError {
    ParamStoreError::Backend("lock poisoned".into())
}

impl ParamStore for MemoryParamStore {
    fn get(&self, account: &AccountId, name: &str) -> Result<Option<StoredParam>, ParamStoreError> {
        let p = self.params.lock().map_err(|_| lock_err())?;
        Ok(p.get(&(account.to_string(), name.to_string())).cloned())
    }

    fn put(
        &self,
        account: &AccountId,
        param: &PutParam<'_>,
        overwrite: bool,
    ) -> Result<i64, ParamStoreError> {
        let mut p = self.params.lock().map_err(|_| lock_err())?;
        let key = (account.to_string(), param.name.to_string());
        let version = match p.get(&key) {
            Some(_) if !overwrite => {
                return Err(ParamStoreError::Exists {
                    name: param.name.to_string(),
                })
            }
            Some(old) => old.version + 1,
            None => 1,
        };
        p.insert(
            key,
            StoredParam {
                name: param.name.to_string(),
                kind: param.kind.to_string(),
                value: param.value.to_string(),
                description: param.description.to_string(),
                version,
                token: param.token.map(str::to_string),
            },
        );
        Ok(version)
    }

    fn delete(&self, account: &AccountId, name: &str) -> Result<bool, ParamStoreError> {
        let mut p = self.params.lock().map_err(|_| lock_err())?;
        Ok(p.remove(&(account.to_string(), name.to_string())).is_some())
    }
}

/// The `AWS::SSM::Parameter` provider. `Ref` is the name; `Fn::GetAtt` gives `Type` and
/// `Value`. Without `Name`, the name is `CFN-{LogicalId}-{hash of the token}`, so a
/// create repeated after a crash finds its parameter.
pub struct SsmParameterProvider {
    store: std::sync::Arc<dyn ParamStore>,
}

impl std::fmt::Debug for SsmParameterProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsmParameterProvider")
            .finish_non_exhaustive()
    }
}

/// Standard-tier value limit.
const MAX_VALUE_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 2048;

struct Desired {
    name: String,
    kind: String,
    value: String,
    description: String,
}

fn string_prop(p: &BTreeMap<String, Value>, key: &str) -> Result<Option<String>, ProviderError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.scalar_string().map(Some).ok_or_else(|| {
            ProviderError::InvalidRequest(format!("{key} must be a string, got {v}"))
        }),
    }
}

fn generated_name(cx: &ResourceCx<'_>) -> String {
    format!("CFN-{}-{}", cx.logical_id, short_hash(cx.token))
}

fn check_name(name: &str) -> Result<(), ProviderError> {
    let bad = |why: &str| {
        Err(ProviderError::InvalidRequest(format!(
            "parameter name `{name}` {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return bad("must be 1 to 2048 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return bad("may only contain letters, digits and _ . - /");
    }
    let lower = name.trim_start_matches('/').to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return bad("must not begin with aws or ssm");
    }
    if name.contains('/') && !name.starts_with('/') {
        return bad("must begin with / when it is hierarchical");
    }
    Ok(())
}

fn desired(
    cx: &ResourceCx<'_>,
    p: &BTreeMap<String, Value>,
    name: Option<&str>,
) -> Result<Desired, ProviderError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => string_prop(p, "Name")?.unwrap_or_else(|| generated_name(cx)),
    };
    check_name(&name)?;
    let kind = string_prop(p, "Type")?.ok_or_else(|| {
        ProviderError::InvalidRequest("Type is required (String or StringList)".into())
    })?;
    match kind.as_str() {
        "String" | "StringList" => {}
        "SecureString" => {
            return Err(ProviderError::InvalidRequest(
                "Type SecureString is not supported by CloudFormation; use String or StringList"
                    .into(),
            ))
        }
        other => {
            return Err(ProviderError::InvalidRequest(format!(
                "Type must be String or StringList, got {other}"
            )))
        }
    }
    let value = match p.get("Value") {
        Some(Value::List(items)) if kind == "StringList" => items
            .iter()
            .map(|v| v.scalar_string().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        _ => string_prop(p, "Value")?
            .ok_or_else(|| ProviderError::InvalidRequest("Value is required".into()))?,
    };
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(ProviderError::InvalidRequest(format!(
            "Value must be 1 to {MAX_VALUE_BYTES} bytes, got {}",
            value.len()
        )));
    }
    let description = string_prop(p, "Description")?.unwrap_or_default();
    Ok(Desired {
        name,
        kind,
        value,
        description,
    })
}

fn output(name: &str, kind: &str, value: &str) -> ProviderOutput {
    let mut attributes = BTreeMap::new();
    attributes.insert("Type".to_string(), Value::str(kind));
    attributes.insert("Value".to_string(), Value::str(value));
    ProviderOutput {
        physical_id: name.to_string(),
        attributes,
    }
}

fn store_err(e: ParamStoreError) -> ProviderError {
    match e {
        ParamStoreError::Exists { name } => {
            ProviderError::AlreadyExists(format!("parameter {name}"))
        }
        ParamStoreError::Backend(m) => ProviderError::Failed(m),
    }
}

impl SsmParameterProvider {
    pub fn new(store: std::sync::Arc<dyn ParamStore>) -> Self {
        SsmParameterProvider { store }
    }
}

impl Provider for SsmParameterProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let d = desired(&cx, &req.properties, None)?;
            let account = &cx.account()?;
            if let Some(existing) = self.store.get(account, &d.name).map_err(store_err)? {
                if existing.token.as_deref() == Some(cx.token) {
                    // This very call ran before a crash: the parameter is ours.
                    return Ok(output(&existing.name, &existing.kind, &existing.value));
                }
                return Err(ProviderError::AlreadyExists(format!(
                    "parameter {}",
                    d.name
                )));
            }
            let put = PutParam {
                name: &d.name,
                kind: &d.kind,
                value: &d.value,
                description: &d.description,
                token: Some(cx.token),
            };
            self.store.put(account, &put, false).map_err(store_err)?;
            Ok(output(&d.name, &d.kind, &d.value))
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let d = desired(&cx, &req.properties, Some(&req.physical_id))?;
            let account = &cx.account()?;
            let put = PutParam {
                name: &d.name,
                kind: &d.kind,
                value: &d.value,
                description: &d.description,
                token: Some(cx.token),
            };
            self.store.put(account, &put, true).map_err(store_err)?;
            Ok(output(&d.name, &d.kind, &d.value))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.store
                .delete(&req.cx.account()?, &req.physical_id)
                .map_err(store_err)?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let by_token = req.physical_id.is_none();
            let name = match req.physical_id {
                Some(p) => p,
                None => {
                    string_prop(&req.properties, "Name")?.unwrap_or_else(|| generated_name(&cx))
                }
            };
            let Some(p) = self.store.get(&cx.account()?, &name).map_err(store_err)? else {
                return Ok(None);
            };
            if by_token && p.token.as_deref() != Some(cx.token) {
                return Ok(None);
            }
            let out = output(&p.name, &p.kind, &p.value);
            let mut properties = BTreeMap::new();
            properties.insert("Name".to_string(), Value::str(&p.name));
            properties.insert("Type".to_string(), Value::str(&p.kind));
            properties.insert("Value".to_string(), Value::str(&p.value));
            if !p.description.is_empty() {
                properties.insert("Description".to_string(), Value::str(&p.description));
            }
            Ok(Some(ReadOutput {
                physical_id: out.physical_id,
                properties,
                attributes: out.attributes,
            }))
        })
    }
}
