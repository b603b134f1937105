//! Route handlers for stack settings (termination protection, stack policy), named change
//! sets and exports. Like `stack_handlers`, they only translate: planning is
//! `spindle-template`'s, acting the stack engine's, storing the store's.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use crate::stack_handlers::{
    engine_error, fmt_ms, nested_bundle, plan_request, run_deploy, stack_name, view, Planned,
};
use crate::stacks::change_set;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use spindle_model::api::*;
use spindle_model::AccountId;
use spindle_stack::DeployRequest;
use std::collections::BTreeMap;

type Res<T> = Result<T, ApiError>;

fn store_err(e: spindle_store::StoreError) -> ApiError {
    match e {
        spindle_store::StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
        other => ApiError::internal(&other.to_string()),
    }
}

async fn describe(app: &App, account: &AccountId, stack: &str) -> Res<Json<StackDetail>> {
    crate::stack_handlers::describe_view(app, account, stack).map(Json)
}

pub async fn update_termination_protection(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<StackDetail>> {
    let req: UpdateTerminationProtection = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    app.stacks
        .engine(&a.id)
        .update_settings(&stack, |s| s.termination_protection = req.enabled)
        .map_err(engine_error)?;
    describe(&app, &a.id, &stack).await
}

pub async fn set_stack_policy(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<StackDetail>> {
    let req: SetStackPolicy = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    let p = crate::stack_handlers::policy("stack_policy", &req.stack_policy)?;
    app.stacks
        .engine(&a.id)
        .update_settings(&stack, |s| s.policy = Some(p.source().to_owned()))
        .map_err(engine_error)?;
    describe(&app, &a.id, &stack).await
}

/// What the store keeps of a named change set: enough to plan it again on execute and to
/// tell whether the stack changed since.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredChangeSet {
    template: TemplateRequest,
    description: Option<String>,
    created_ms: u64,
    /// The stack's last operation record when the change set was made (0: no stack).
    stack_updated_ms: u64,
    change_set_type: String,
    hash: String,
    changes: Vec<StackChange>,
    /// Parameter values as shown (NoEcho masked).
    shown_parameters: BTreeMap<String, String>,
    /// What executing it would lose (`spindle_stack::dataloss`), as shown.
    #[serde(default)]
    data_loss: Vec<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn change_set_name(s: &str) -> Res<()> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "change set name `{s}` is invalid: 1 to 128 letters, digits and hyphens, starting with a letter"
        )))
    }
}

/// The stack's last operation time, 0 if it doesn't exist.
fn stack_updated_ms(app: &App, account: &AccountId, stack: &str) -> Res<u64> {
    let v = app
        .stacks
        .engine(account)
        .stack(stack)
        .map_err(engine_error)?;
    Ok(if v.exists() { v.last_updated_ms } else { 0 })
}

fn info(
    app: &App,
    account: &AccountId,
    stack: &str,
    name: &str,
    c: StoredChangeSet,
) -> Res<ChangeSetInfo> {
    let obsolete = stack_updated_ms(app, account, stack)? != c.stack_updated_ms;
    Ok(ChangeSetInfo {
        name: name.to_owned(),
        stack: stack.to_owned(),
        change_set_type: c.change_set_type,
        execution_status: if obsolete { "OBSOLETE" } else { "AVAILABLE" }.to_owned(),
        created: fmt_ms(c.created_ms),
        description: c.description,
        parameters: c.shown_parameters,
        changes: c.changes,
        change_set_hash: c.hash,
        data_loss: c.data_loss,
    })
}

fn load(app: &App, account: &AccountId, stack: &str, name: &str) -> Res<StoredChangeSet> {
    let body = app
        .store
        .get_change_set(account, stack, name)
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::not_found(format!("change set `{name}` of stack `{stack}` not found"))
                .with_hint(format!("`spindle stack changeset list {stack}` shows them"))
        })?;
    let mut c: StoredChangeSet = serde_json::from_str(&body).map_err(|e| {
        ApiError::internal(&format!("stored change set `{name}` is malformed: {e}"))
    })?;
    if let Some(sealer) = &app.stacks.sealer {
        for v in c.template.parameters.values_mut() {
            if let Some(plain) = sealer.unseal_str(v) {
                *v = plain.map_err(|e| ApiError::internal(&format!("change set `{name}`: {e}")))?;
            }
        }
    }
    Ok(c)
}

pub async fn create_change_set(
    State(app): State<App>,
    Path((account, stack, cs_name)): Path<(String, String, String)>,
    call: Call,
) -> Res<Json<ChangeSetInfo>> {
    let req: CreateChangeSet = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let name = stack_name(&stack)?;
    change_set_name(&cs_name)?;
    let engine = app.stacks.engine(&a.id);
    let grants = app.admin_grants(&call, &a)?;
    let Planned { plan, cs, .. } =
        plan_request(&app, &a.id, &engine, &name, &req.template, grants)?;
    let (changes, hash) = change_set(&cs);
    let data_loss = engine
        .stack(name.as_str())
        .ok()
        .filter(|v| v.exists())
        .map(|v| spindle_stack::dataloss::of_change_set(&cs, &v.deployed.state, &plan))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let updated = stack_updated_ms(&app, &a.id, &stack)?;
    // NoEcho values are kept sealed, like in the journal.
    let mut template = req.template;
    for p in plan.parameters.values().filter(|p| p.no_echo) {
        if let Some(v) = template.parameters.get_mut(&p.name) {
            let sealer = app.stacks.sealer.as_ref().ok_or_else(|| {
                ApiError::internal("NoEcho values can't be sealed: the sealing key is unavailable")
            })?;
            *v = sealer.seal_str(v);
        }
    }
    let stored = StoredChangeSet {
        shown_parameters: plan
            .parameters
            .values()
            .map(|p| (p.name.clone(), p.display_value()))
            .collect(),
        template,
        description: req.description,
        created_ms: now_ms(),
        stack_updated_ms: updated,
        change_set_type: if updated == 0 { "CREATE" } else { "UPDATE" }.to_owned(),
        hash,
        changes,
        data_loss,
    };
    let body = serde_json::to_string(&stored)
        .map_err(|e| ApiError::internal(&format!("cannot store the change set: {e}")))?;
    app.store
        .put_change_set(&a.id, &stack, &cs_name, &body)
        .map_err(store_err)?;
    Ok(Json(info(&app, &a.id, &stack, &cs_name, stored)?))
}

pub async fn describe_change_set(
    State(app): State<App>,
    Path((account, stack, cs_name)): Path<(String, String, String)>,
    call: Call,
) -> Res<Json<ChangeSetInfo>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let c = load(&app, &a.id, &stack, &cs_name)?;
    Ok(Json(info(&app, &a.id, &stack, &cs_name, c)?))
}

pub async fn list_change_sets(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<ChangeSetInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let rows = app
        .store
        .list_change_sets(&a.id, &stack)
        .map_err(store_err)?;
    let mut out = Vec::new();
    for (n, body) in rows {
        let c: StoredChangeSet = serde_json::from_str(&body).map_err(|e| {
            ApiError::internal(&format!("stored change set `{n}` is malformed: {e}"))
        })?;
        out.push(info(&app, &a.id, &stack, &n, c)?);
    }
    Ok(Json(out))
}

pub async fn delete_change_set(
    State(app): State<App>,
    Path((account, stack, cs_name)): Path<(String, String, String)>,
    call: Call,
) -> Res<StatusCode> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    load(&app, &a.id, &stack, &cs_name)?;
    app.store
        .delete_change_sets(&a.id, &stack, Some(&cs_name))
        .map_err(store_err)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Executes a named change set: refused if the stack changed since it was made, or if
/// planning it again gives a different change set (an import or SSM parameter moved).
/// Afterwards every change set of the stack is gone, as in CloudFormation.
pub async fn execute_change_set(
    State(app): State<App>,
    Path((account, stack, cs_name)): Path<(String, String, String)>,
    call: Call,
) -> Res<Json<DeployResult>> {
    let req: ExecuteChangeSet = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let name = stack_name(&stack)?;
    let stored = load(&app, &a.id, &stack, &cs_name)?;
    let obsolete = |why: String| {
        ApiError::new(StatusCode::CONFLICT, "ChangeSetObsolete", why).with_hint(format!(
            "create the change set again: `spindle stack changeset create NAME {stack} FILE`"
        ))
    };
    if stack_updated_ms(&app, &a.id, &stack)? != stored.stack_updated_ms {
        return Err(obsolete(format!(
            "stack `{stack}` changed after change set `{cs_name}` was created"
        )));
    }
    let engine = app.stacks.engine(&a.id);
    let Planned {
        plan, cs, imports, ..
    } = plan_request(
        &app,
        &a.id,
        &engine,
        &name,
        &stored.template,
        app.admin_grants(&call, &a)?,
    )?;
    let (changes, hash) = change_set(&cs);
    if hash != stored.hash {
        return Err(obsolete(format!(
            "change set `{cs_name}` of stack `{stack}` would now do something else (its inputs changed)"
        )));
    }
    let mut dr = DeployRequest::new(plan);
    dr.change_set = Some(cs);
    dr.disable_rollback = req.disable_rollback;
    dr.allow_data_loss = req.allow_data_loss;
    dr.imports = imports;
    dr.nested_templates = Some(nested_bundle(&stored.template));
    dr.template_body = Some(stored.template.template_body.clone());
    let outcome = run_deploy(&app, &a.id, engine, dr).await?;
    app.store
        .delete_change_sets(&a.id, &stack, None)
        .map_err(store_err)?;
    Ok(Json(DeployResult {
        stack: stack.clone(),
        changes,
        change_set_hash: hash,
        executed: true,
        outputs_changed: false,
        data_loss: Vec::new(),
        status: Some(outcome.status.to_string()),
        reason: outcome.reason,
    }))
}

pub async fn list_exports(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<ExportInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks"))?;
    let engine = app.stacks.engine(&a.id);
    let exports = engine.exports().map_err(engine_error)?;
    Ok(Json(
        exports
            .into_iter()
            .map(|(name, stack, o)| ExportInfo {
                importing_stacks: engine.importers(&name, &stack),
                value: crate::stack_handlers::output_text(&o.value, o.sensitive),
                name,
                exporting_stack: stack,
            })
            .collect(),
    ))
}

/// The template a stack answers, or one of its change sets' (`spindle stack template`,
/// CloudFormation's `GetTemplate`): the text as submitted.
pub async fn stack_template(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    Query(q): Query<StackTemplateQuery>,
    call: Call,
) -> Res<Json<StackTemplate>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let template_body = template_body(&app, &a.id, &stack, q.change_set.as_deref())?;
    Ok(Json(StackTemplate {
        stack,
        change_set: q.change_set,
        template_body,
    }))
}

/// A stack deployed before Spindle kept template text has none to give; saying so beats
/// answering a reconstruction that isn't what the user wrote.
pub(crate) fn template_body(
    app: &App,
    account: &AccountId,
    stack: &str,
    change_set: Option<&str>,
) -> Res<String> {
    if let Some(name) = change_set {
        return Ok(load(app, account, stack, name)?.template.template_body);
    }
    view(app, account, stack)?.deployed.template.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "NoTemplateText",
            format!("stack `{stack}` was last deployed without its template text being kept (before Spindle kept it)"),
        )
        .with_hint("deploy a change to the stack once; from then on its template is kept")
    })
}
