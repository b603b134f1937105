//! Route handlers. Each one: scope and authorize, call one store function, convert.

use crate::api::ApiError;
use crate::app::{now, App};
use crate::auth::Call;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use spindle_model::action::pattern_is_known;
use spindle_model::api::*;
use spindle_model::ids::AccountRef;
use spindle_model::{AccessKeyId, AccountId, ParamName, RoleName};
use spindle_store::{AuditFilter, NewKey};

type Res<T> = Result<T, ApiError>;

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub async fn metrics(
    State(app): State<App>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render() + &app.elb.prometheus(),
    )
}

pub async fn whoami(State(app): State<App>, call: Call) -> Res<Json<CallerIdentity>> {
    app.check_own(&call, "self".into())?;
    let c = &call.caller;
    Ok(Json(CallerIdentity {
        account_id: c.account.id.clone(),
        account_name: c.account.name.clone(),
        access_key_id: c.key_id.clone(),
        arn: c.arn.clone(),
        admin: c.admin,
    }))
}

// ---- accounts

pub async fn list_accounts(State(app): State<App>, call: Call) -> Res<Json<Vec<Account>>> {
    app.check_own(&call, "accounts".into())?;
    let all = app.store.list_accounts()?;
    let visible = all
        .into_iter()
        .filter(|a| call.caller.admin || a.id == call.caller.account.id)
        .collect();
    Ok(Json(visible))
}

pub async fn create_account(
    State(app): State<App>,
    call: Call,
) -> Res<(StatusCode, Json<Account>)> {
    let req: CreateAccount = call.json()?;
    app.check_own(&call, format!("account/{}", req.name))?;
    let a = app
        .store
        .create_account(&req.name, &req.description, false, now())?;
    Ok((StatusCode::CREATED, Json(a)))
}

pub async fn describe_account(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Account>> {
    Ok(Json(app.scope(
        &call,
        &account,
        format!("account/{account}"),
    )?))
}

pub async fn delete_account(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(&call, &account, format!("account/{account}"))?;
    if a.management {
        return Err(ApiError::bad_request(
            "the management account holds the admin credential and can't be deleted".into(),
        ));
    }
    let live = crate::stack_handlers::live_stacks(&app, &a.id)?;
    if !live.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotEmpty",
            format!("account {account} still has stacks: {}", live.join(", ")),
        )
        .with_hint("delete its stacks first (spindle stack delete)"));
    }
    app.store.delete_account(&a.id)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- keys

/// Refuses grants that are unknown, or wider than the caller's own (no privilege escalation
/// through creating keys or roles).
fn check_grants(call: &Call, allow: &[String]) -> Res<()> {
    for p in allow {
        if !pattern_is_known(p) {
            return Err(ApiError::bad_request(format!(
                "allow pattern `{p}` names no known service (expected `*` or `service:Action`, e.g. `param:Get`, `stack:*`)"
            )));
        }
        let c = &call.caller;
        if !c.admin
            && spindle_model::Action::parse(p).is_some_and(spindle_model::Action::admin_granted)
        {
            return Err(ApiError::access_denied(format!(
                "can't grant `{p}`: only the installation's admin credential can grant it"
            )));
        }
        if !c.admin && !c.allow.iter().any(|a| a == "*" || a == p) {
            return Err(ApiError::access_denied(format!(
                "can't grant `{p}`: a credential can only grant patterns it holds itself"
            )));
        }
    }
    Ok(())
}

pub async fn list_keys(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<AccessKey>>> {
    let a = app.scope(&call, &account, format!("account/{account}/keys"))?;
    Ok(Json(app.store.list_keys(&a.id)?))
}

pub async fn create_key(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<Credentials>)> {
    let req: CreateKey = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/keys"))?;
    let allow = if req.allow.is_empty() {
        vec!["*".to_string()]
    } else {
        req.allow.clone()
    };
    check_grants(&call, &allow)?;
    let creds = issue_key(
        &app,
        &a,
        &allow,
        &req.description,
        None,
        &call.caller.key_id,
        req.aws,
    )
    .await?;
    call.set_target(format!("account/{account}/keys/{}", creds.access_key_id));
    Ok((StatusCode::CREATED, Json(creds)))
}

/// A role session: which role, for how long.
struct Session<'a> {
    role: &'a RoleName,
    name: &'a str,
    expires_unix: i64,
}

/// Generates a key and its secret, stores the derived signing key, returns the secret once.
/// An `aws` key also keeps its secret, sealed, for SigV4 (`crate::aws`).
async fn issue_key(
    app: &App,
    a: &Account,
    allow: &[String],
    description: &str,
    session: Option<Session<'_>>,
    source: &AccessKeyId,
    aws: bool,
) -> Res<Credentials> {
    let (id, secret) = {
        let mut rng = rand::thread_rng();
        (
            AccessKeyId::generate(&mut rng, session.is_some()),
            spindle_auth::generate_secret(&mut rng),
        )
    };
    let (id2, secret2) = (id.clone(), secret.clone());
    // Key derivation is deliberately slow; keep it off the async workers.
    let key = tokio::task::spawn_blocking(move || spindle_auth::derive_signing_key(&id2, &secret2))
        .await
        .map_err(|_| ApiError::internal("key derivation failed"))?;
    let new_key = NewKey {
        id: &id,
        account_id: &a.id,
        signing_key: &key.0,
        admin: false,
        allow,
        description,
        expires_unix: session.as_ref().map(|s| s.expires_unix),
        role_name: session.as_ref().map(|s| s.role.as_str()),
        session_name: session.as_ref().map(|s| s.name),
        source_key_id: Some(source),
    };
    if aws {
        let sealer = app.aws_secrets.as_ref().ok_or_else(|| {
            ApiError::internal("this daemon has no sealing key for AWS-compatible secrets")
        })?;
        app.store
            .insert_aws_key(&new_key, &sealer.seal_str(&secret), now())?;
    } else {
        app.store.insert_key(&new_key, now())?;
    }
    let expiration = session.map(|s| {
        time::OffsetDateTime::from_unix_timestamp(s.expires_unix)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    });
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: secret,
        account_id: a.id.clone(),
        account_name: a.name.clone(),
        expiration,
        aws_endpoint: if aws { app.aws_endpoint.clone() } else { None },
    })
}

pub async fn revoke_key(
    State(app): State<App>,
    Path((account, key)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(&call, &account, format!("account/{account}/keys/{key}"))?;
    let id = AccessKeyId::parse(&key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    app.store.revoke_key(&a.id, &id, now())?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- roles

pub async fn list_roles(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<Role>>> {
    let a = app.scope(&call, &account, format!("account/{account}/roles"))?;
    Ok(Json(app.store.list_roles(&a.id)?))
}

/// The longest session a role may grant, as AWS's 12 hours.
const MAX_SESSION_SECONDS: u32 = 43_200;
const DEFAULT_SESSION_SECONDS: u32 = 3_600;

pub async fn create_role(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<Role>)> {
    let req: CreateRole = call.json()?;
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/roles/{}", req.name),
    )?;
    if req.allow.is_empty() {
        return Err(ApiError::bad_request(
            "a role needs at least one allow pattern (e.g. `stack:*`)".into(),
        ));
    }
    check_grants(&call, &req.allow)?;
    let max = req.max_session_seconds.unwrap_or(DEFAULT_SESSION_SECONDS);
    if !(1..=MAX_SESSION_SECONDS).contains(&max) {
        return Err(ApiError::bad_request(format!(
            "max_session_seconds must be 1-{MAX_SESSION_SECONDS}, got {max}"
        )));
    }
    let mut trust = Vec::with_capacity(req.trust.len());
    for t in &req.trust {
        trust.push(resolve_trusted(&app, &call, t)?);
    }
    if trust.is_empty() {
        return Err(ApiError::bad_request(
            "a role needs at least one trusted account".into(),
        ));
    }
    let role = app
        .store
        .create_role(&a.id, &req.name, &trust, &req.allow, max, now())?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// A trusted account for a role. Only the admin may name other accounts by name; others give
/// the 12-digit id, which is not checked, so creating a role reveals nothing about accounts.
fn resolve_trusted(app: &App, call: &Call, t: &str) -> Res<AccountId> {
    match AccountRef::parse(t).map_err(|e| ApiError::bad_request(e.to_string()))? {
        AccountRef::Id(id) => Ok(id),
        AccountRef::Name(n) if n == call.caller.account.name => Ok(call.caller.account.id.clone()),
        AccountRef::Name(n) if call.caller.admin => Ok(app
            .store
            .find_account(&AccountRef::Name(n.clone()))?
            .ok_or_else(|| ApiError::not_found(format!("account `{n}` not found")))?
            .id),
        AccountRef::Name(n) => Err(ApiError::bad_request(format!(
            "name the trusted account `{n}` by its 12-digit id: other accounts' names are not visible to this credential"
        ))),
    }
}

pub async fn describe_role(
    State(app): State<App>,
    Path((account, role)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Role>> {
    let a = app.scope(&call, &account, format!("account/{account}/roles/{role}"))?;
    let name = RoleName::parse(&role).map_err(|e| ApiError::bad_request(e.to_string()))?;
    app.store
        .get_role(&a.id, &name)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("role `{role}` not found")))
}

pub async fn delete_role(
    State(app): State<App>,
    Path((account, role)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(&call, &account, format!("account/{account}/roles/{role}"))?;
    let name = RoleName::parse(&role).map_err(|e| ApiError::bad_request(e.to_string()))?;
    app.store.delete_role(&a.id, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn assume_role(State(app): State<App>, call: Call) -> Res<Json<Credentials>> {
    let req: AssumeRole = call.json()?;
    Ok(Json(assume(&app, &call, &req, false).await?))
}

/// Assumes `req.role` for the caller: the session's credentials (an AWS-compatible key when
/// `aws`, for the AWS endpoint's `sts:AssumeRole`).
pub(crate) async fn assume(
    app: &App,
    call: &Call,
    req: &AssumeRole,
    aws: bool,
) -> Res<Credentials> {
    app.check_own(call, format!("role/{}", req.role))?;
    let not_found = || {
        ApiError::not_found(format!(
            "role `{}` not found, or it does not trust this account",
            req.role
        ))
        .with_hint(
            "the role's account must list this account in its trust (spindle role create --trust)",
        )
    };
    let mut roles = app
        .store
        .roles_trusting(&req.role, &call.caller.account.id)?;
    if let Some(acct) = &req.account {
        let r = AccountRef::parse(acct).map_err(|_| not_found())?;
        roles.retain(|role| match &r {
            AccountRef::Id(id) => &role.account_id == id,
            AccountRef::Name(n) => app
                .store
                .find_account(&AccountRef::Id(role.account_id.clone()))
                .ok()
                .flatten()
                .is_some_and(|a| &a.name == n),
        });
    }
    let role = match roles.len() {
        0 => return Err(not_found().denied()),
        1 => roles.remove(0),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{} roles named `{}` trust this account",
                roles.len(),
                req.role
            ))
            .with_hint("pass --account to choose one"))
        }
    };
    call.set_target(role.arn.clone());
    let target = app
        .store
        .find_account(&AccountRef::Id(role.account_id.clone()))?
        .ok_or_else(not_found)?;
    call.set_target_account(target.id.clone());
    let duration = req
        .duration_seconds
        .unwrap_or(DEFAULT_SESSION_SECONDS.min(role.max_session_seconds));
    if duration == 0 || duration > role.max_session_seconds {
        return Err(ApiError::bad_request(format!(
            "duration_seconds must be 1-{} for role `{}`, got {duration}",
            role.max_session_seconds, role.name
        )));
    }
    let session_name = req
        .session_name
        .clone()
        .unwrap_or_else(|| call.caller.key_id.to_string());
    if session_name.is_empty()
        || session_name.len() > 64
        || !session_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(ApiError::bad_request(
            "session_name must be 1-64 characters of A-Z, a-z, 0-9 and +=,.@_-".into(),
        ));
    }
    let expires_unix = now().unix_timestamp() + i64::from(duration);
    let session = Session {
        role: &role.name,
        name: &session_name,
        expires_unix,
    };
    issue_key(
        app,
        &target,
        &role.allow,
        &format!("session of role {}", role.name),
        Some(session),
        &call.caller.key_id,
        aws,
    )
    .await
}

// ---- deny rules

pub async fn list_deny_rules(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<DenyRule>>> {
    let a = app.scope(&call, &account, format!("account/{account}/deny-rules"))?;
    Ok(Json(app.store.list_deny_rules(&a.id)?))
}

pub async fn add_deny_rule(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<(StatusCode, Json<DenyRule>)> {
    let req: AddDenyRule = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/deny-rules"))?;
    if !pattern_is_known(&req.pattern) {
        return Err(ApiError::bad_request(format!(
            "deny pattern `{}` names no known service",
            req.pattern
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(
            app.store
                .add_deny_rule(&a.id, &req.pattern, &req.reason, now())?,
        ),
    ))
}

pub async fn remove_deny_rule(
    State(app): State<App>,
    Path((account, id)): Path<(String, i64)>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/deny-rules/{id}"),
    )?;
    app.store.remove_deny_rule(&a.id, id)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    account: Option<String>,
    since: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

pub async fn read_audit(
    State(app): State<App>,
    Query(q): Query<AuditQuery>,
    call: Call,
) -> Res<Json<Vec<AuditEvent>>> {
    let account = match &q.account {
        Some(a) => Some(app.scope(&call, a, format!("audit/{a}"))?.id),
        None if call.caller.admin => {
            app.check_own(&call, "audit".into())?;
            None
        }
        None => {
            app.check_own(&call, "audit".into())?;
            Some(call.caller.account.id.clone())
        }
    };
    let since = q
        .since
        .as_deref()
        .map(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(format!(
                "since: expected an RFC 3339 time like 2026-11-27T08:00:00Z ({e})"
            ))
        })?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut events = app.store.query_audit(&AuditFilter {
        account: account.clone(),
        since,
        after_seq: q.after,
        limit,
    })?;
    if !call.caller.admin {
        // The caller's own probes of other accounts show as plain "not found": the target
        // account stays hidden, exactly as the API answered.
        for e in &mut events {
            if e.target_account_id.is_some() && e.target_account_id != account {
                e.target_account_id = None;
            }
        }
    }
    Ok(Json(events))
}

// ---- parameters

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParamsQuery {
    prefix: Option<String>,
}

pub async fn list_params(
    State(app): State<App>,
    Path(account): Path<String>,
    Query(q): Query<ListParamsQuery>,
    call: Call,
) -> Res<Json<Vec<Param>>> {
    let a = app.scope(&call, &account, format!("account/{account}/params"))?;
    let mut ps = app
        .store
        .list_params(&a.id, q.prefix.as_deref().unwrap_or(""))?;
    ps.iter_mut().for_each(mask);
    Ok(Json(ps))
}

fn mask(p: &mut Param) {
    if p.kind == "SecureString" {
        p.value = "****".into();
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParamQuery {
    decrypt: Option<bool>,
}

fn param_name(name: &str) -> Res<ParamName> {
    ParamName::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn get_param(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    Query(q): Query<GetParamQuery>,
    call: Call,
) -> Res<Json<Param>> {
    let a = app.scope(&call, &account, format!("account/{account}/params/{name}"))?;
    let n = param_name(&name)?;
    let mut p = app
        .store
        .get_param(&a.id, &n)?
        .ok_or_else(|| ApiError::not_found(format!("parameter `{name}` not found")))?;
    if !q.decrypt.unwrap_or(false) {
        mask(&mut p);
    }
    Ok(Json(p))
}

pub async fn put_param(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Param>> {
    let req: PutParam = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/params/{name}"))?;
    let n = param_name(&name)?;
    if !PARAM_TYPES.contains(&req.kind.as_str()) {
        return Err(ApiError::bad_request(format!(
            "type: expected one of {}, got `{}`",
            PARAM_TYPES.join(", "),
            req.kind
        )));
    }
    if req.value.is_empty() || req.value.len() > 8192 {
        return Err(ApiError::bad_request(format!(
            "value must be 1-8192 bytes, got {}",
            req.value.len()
        )));
    }
    app.store
        .put_param(
            &a.id,
            &n,
            &req.kind,
            &req.value,
            &req.description,
            req.overwrite,
            None,
            now(),
        )
        .map_err(|e| match e {
            spindle_store::StoreError::Conflict { .. } => {
                ApiError::conflict(format!("parameter `{name}` already exists"))
                    .with_hint("pass --overwrite to replace its value")
            }
            other => other.into(),
        })?;
    let mut p = app
        .store
        .get_param(&a.id, &n)?
        .ok_or_else(|| ApiError::internal("parameter vanished after write"))?;
    mask(&mut p);
    Ok(Json(p))
}

pub async fn delete_param(
    State(app): State<App>,
    Path((account, name)): Path<(String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(&call, &account, format!("account/{account}/params/{name}"))?;
    app.store.delete_param(&a.id, &param_name(&name)?)?;
    Ok(StatusCode::NO_CONTENT)
}
