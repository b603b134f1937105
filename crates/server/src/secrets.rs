//! Secrets Manager in the daemon: the secrets engine (`spindle-secrets`) opened over the
//! `secretsmanager` row of `state.db`, its values sealed with the stacks' sealer
//! (`stack-secrets.key`, outside the database); dynamic references answered from it and
//! from the parameter store; and the `spindle secret` routes. Only `GetSecretValue`
//! (`GET …/secrets/{name}/value`, action `secret:GetValue`) answers with a value.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use spindle_model::secret::*;
use spindle_model::{AccountId, ParamName};
use spindle_providers::SecretsManager;
use spindle_secrets::{Secrets, SecretsError, Select, ValueSource};
use spindle_stack::References;
use spindle_store::Store;
use spindle_template::ast::{Node, NodeKind};
use spindle_template::dynref::{self, DynRef};
use spindle_template::{Diagnostic, ResourceView};

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use crate::sealer::Sealer;

type Res<T> = Result<T, ApiError>;

/// The daemon's sealer, as the secrets engine and the parameter store take it.
pub(crate) struct SealWith(pub(crate) Arc<Sealer>);

impl spindle_secrets::Seal for SealWith {
    fn seal(&self, plain: &str) -> String {
        self.0.seal_str(plain)
    }
    fn open(&self, sealed: &str) -> Result<String, String> {
        match self.0.unseal_str(sealed) {
            Some(r) => r.map_err(|e| e.to_string()),
            None => Err("the stored value is not sealed".into()),
        }
    }
}

impl spindle_store::ValueSeal for SealWith {
    fn seal(&self, plain: &str) -> String {
        self.0.seal_str(plain)
    }
    fn open(&self, stored: &str) -> Option<Result<String, String>> {
        self.0
            .unseal_str(stored)
            .map(|r| r.map_err(|e| e.to_string()))
    }
}

/// Opens the secrets saved in `store`; `None` (and an error in the log) when they can't be
/// read, so the daemon still serves everything else.
pub fn open(store: &Arc<Store>, sealer: Arc<Sealer>) -> Option<Arc<SecretsManager>> {
    let doc = crate::engine_state::SqlDoc::arc(store, spindle_secrets::SECRETS_DOC);
    match Secrets::open(Some(doc), Arc::new(SealWith(sealer)), crate::stacks::REGION) {
        Ok(s) => Some(SecretsManager::new(Arc::new(s))),
        Err(e) => {
            tracing::error!(error = %e, "secrets unreadable; Secrets Manager is off");
            None
        }
    }
}

/// Dynamic references from the secrets and the parameter store.
pub struct DaemonReferences {
    pub secrets: Option<Arc<SecretsManager>>,
    pub store: Arc<Store>,
}

fn json_key(secret: &str, value: &str, key: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(value)
        .map_err(|_| format!("secret `{secret}`'s value is not JSON, so it has no key `{key}`"))?;
    match v.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("secret `{secret}` has no JSON key `{key}`")),
    }
}

impl References for DaemonReferences {
    fn resolve(&self, account: &AccountId, r: &DynRef) -> Result<String, String> {
        match r {
            DynRef::Ssm {
                name,
                version,
                secure,
            } => {
                let n = ParamName::parse(name).map_err(|e| format!("parameter `{name}`: {e}"))?;
                let p = self
                    .store
                    .get_param(account, &n)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("parameter `{name}` not found"))?;
                if let Some(v) = version {
                    if *v as i64 != p.version {
                        return Err(format!(
                            "parameter `{name}` has no version {v} (only its current version {} is kept)",
                            p.version
                        ));
                    }
                }
                match (p.kind == "SecureString", secure) {
                    (true, false) => Err(format!(
                        "parameter `{name}` is a SecureString: reference it with ssm-secure"
                    )),
                    (false, true) => Err(format!(
                        "parameter `{name}` is a {}, not a SecureString: reference it with ssm",
                        p.kind
                    )),
                    _ => Ok(p.value),
                }
            }
            DynRef::SecretsManager {
                secret_id,
                json_key: key,
                version_stage,
                version_id,
            } => {
                let sm = self
                    .secrets
                    .as_ref()
                    .ok_or("Secrets Manager is off (see the daemon's log)")?;
                let select = Select {
                    version_id: version_id.clone(),
                    stage: version_stage.clone(),
                };
                let (_, value) = sm
                    .secrets()
                    .get_value(account, secret_id, &select)
                    .map_err(|e| e.to_string())?;
                match key {
                    Some(k) => json_key(secret_id, &value, k),
                    None => Ok(value),
                }
            }
        }
    }
}

/// Every literal dynamic reference in a resource's properties that doesn't resolve now, as
/// a diagnostic at its string's position. A reference to something a stack creates in the
/// same deploy is not known yet, so only references whose target exists or is certainly
/// missing are judged: a secret the template itself names is left to the deploy.
pub fn reference_rules(
    refs: &dyn References,
    account: &AccountId,
    view: &ResourceView<'_>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(NodeKind::Map(entries)) = view.properties().map(|n| &n.kind) {
        for (k, n) in entries {
            walk(n, &k.name, &mut |node, path, s| {
                for f in dynref::find(s) {
                    let problem = match f.parsed {
                        Err(e) => Some(e.to_string()),
                        Ok(r) if made_here(view, &r) => None,
                        Ok(r) => refs
                            .resolve(account, &r)
                            .err()
                            .map(|e| format!("dynamic reference `{}`: {e}", &s[f.range.clone()])),
                    };
                    if let Some(p) = problem {
                        out.push(view.diag(node.pos, path, p));
                    }
                }
            });
        }
    }
    out
}

/// Whether the template itself makes the secret `r` names (by `Name`).
fn made_here(view: &ResourceView<'_>, r: &DynRef) -> bool {
    let DynRef::SecretsManager { secret_id, .. } = r else {
        return false;
    };
    view.template.resources.iter().any(|x| {
        x.type_name == "AWS::SecretsManager::Secret"
            && matches!(x.properties.as_ref().and_then(|p| p.get("Name")).map(|n| &n.kind), Some(NodeKind::String(n)) if n == secret_id)
    })
}

fn walk(n: &Node, path: &str, f: &mut dyn FnMut(&Node, &str, &str)) {
    match &n.kind {
        NodeKind::String(s) if dynref::has_reference(s) => f(n, path, s),
        NodeKind::List(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), f);
            }
        }
        NodeKind::Map(entries) => {
            for (k, item) in entries {
                walk(item, &format!("{path}.{}", k.name), f);
            }
        }
        NodeKind::Intrinsic(i) => walk(&i.arg, path, f),
        _ => {}
    }
}

// ---- routes

fn sm(app: &App) -> Res<&Arc<SecretsManager>> {
    app.stacks.secrets.as_ref().ok_or_else(|| {
        ApiError::internal(
            "Secrets Manager is off: its sealing key or state is unreadable (see the daemon's log)",
        )
    })
}

fn api_err(e: SecretsError) -> ApiError {
    match e {
        SecretsError::NotFound(_) | SecretsError::NoVersion { .. } => {
            ApiError::not_found(e.to_string())
        }
        SecretsError::Exists(_) => ApiError::conflict(e.to_string()),
        SecretsError::Backend(_) | SecretsError::Unseal { .. } => {
            tracing::error!(error = %e, "secrets");
            ApiError::internal("the secrets store failed (see the daemon's log)")
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn summary(i: spindle_secrets::SecretInfo) -> SecretSummary {
    SecretSummary {
        name: i.name,
        arn: i.arn,
        description: i.description,
        kms_key_id: i.kms_key_id,
        tags: i.tags,
        generated: i.generated,
        created: rfc3339(i.created),
        versions: i
            .versions
            .into_iter()
            .map(|v| SecretVersion {
                version_id: v.id,
                stages: v.stages,
                created: rfc3339(v.created),
            })
            .collect(),
    }
}

pub async fn list_secrets(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<SecretSummary>>> {
    let a = app.scope(&call, &account, format!("account/{account}/secrets"))?;
    Ok(Json(
        sm(&app)?
            .secrets()
            .list(&a.id)
            .into_iter()
            .map(summary)
            .collect(),
    ))
}

pub async fn describe_secret(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SecretSummary>> {
    let a = app.scope(&call, &account, format!("account/{account}/secrets/{name}"))?;
    let i = sm(&app)?
        .secrets()
        .describe(&a.id, &name)
        .map_err(api_err)?;
    Ok(Json(summary(i)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueQuery {
    version_id: Option<String>,
    stage: Option<String>,
}

pub async fn get_secret_value(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    Query(q): Query<ValueQuery>,
    call: Call,
) -> Res<Json<SecretValue>> {
    let a = app.scope(&call, &account, format!("account/{account}/secrets/{name}"))?;
    let s = sm(&app)?.secrets();
    let info = s.describe(&a.id, &name).map_err(api_err)?;
    let select = Select {
        version_id: q.version_id,
        stage: q.stage,
    };
    let (v, value) = s.get_value(&a.id, &name, &select).map_err(api_err)?;
    Ok(Json(SecretValue {
        name: info.name,
        arn: info.arn,
        version_id: v.id,
        stages: v.stages,
        secret_string: value,
    }))
}

pub async fn put_secret_value(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SecretVersionResult>> {
    let req: PutSecretValue = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/secrets/{name}"))?;
    let s = sm(&app)?.secrets();
    let version_id = match s.describe(&a.id, &name) {
        Err(SecretsError::NotFound(_)) if req.create => {
            let info = s
                .create(
                    &a.id,
                    spindle_secrets::NewSecret {
                        name: name.clone(),
                        description: req.description.clone(),
                        kms_key_id: None,
                        tags: Default::default(),
                        value: ValueSource::Given(req.secret_string.clone()),
                        token: None,
                    },
                )
                .map_err(api_err)?;
            info.versions
                .last()
                .map(|v| v.id.clone())
                .unwrap_or_default()
        }
        Err(e @ SecretsError::NotFound(_)) => {
            return Err(api_err(e).with_hint("pass --create to make it"))
        }
        Err(e) => return Err(api_err(e)),
        Ok(_) => s
            .put_value(&a.id, &name, &req.secret_string)
            .map_err(api_err)?,
    };
    let info = s.describe(&a.id, &name).map_err(api_err)?;
    Ok(Json(SecretVersionResult {
        name: info.name,
        arn: info.arn,
        version_id,
    }))
}

pub async fn rotate_secret(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SecretVersionResult>> {
    let a = app.scope(&call, &account, format!("account/{account}/secrets/{name}"))?;
    let s = sm(&app)?.secrets();
    let version_id = s.rotate(&a.id, &name).map_err(api_err)?;
    let info = s.describe(&a.id, &name).map_err(api_err)?;
    Ok(Json(SecretVersionResult {
        name: info.name,
        arn: info.arn,
        version_id,
    }))
}
