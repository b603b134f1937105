//! Route handlers for templates and stacks. Planning is `spindle-template`'s; acting is the
//! stack engine's; these only translate.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use crate::stacks::{change_set, diagnostic, External, REGION};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use spindle_model::api::TemplateRequest;
use spindle_model::api::*;
use spindle_model::StackName;
use spindle_stack::{DeployRequest, EngineError, StackStatus};
use spindle_template::validate::ResourceRules;
use spindle_template::{Diagnostics, ResourceView, ValidateOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;

pub(crate) fn invalid_template(d: &Diagnostics) -> ApiError {
    let lines: Vec<String> = d.iter().map(|x| diagnostic(x).to_string()).collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidTemplate",
        format!(
            "{} problem(s) in the template:\n  {}",
            lines.len(),
            lines.join("\n  ")
        ),
    )
    .with_hint("`spindle template validate FILE` lists every problem with its position")
}

pub(crate) fn engine_error(e: EngineError) -> ApiError {
    let msg = e.to_string();
    match e {
        EngineError::NotFound { .. } => ApiError::not_found(msg),
        EngineError::Busy { .. }
        | EngineError::InvalidStatus { .. }
        | EngineError::CannotSkip { .. }
        | EngineError::StaleChangeSet { .. } => ApiError::conflict(msg),
        EngineError::NoChanges { .. } => ApiError::new(StatusCode::CONFLICT, "NoChanges", msg),
        EngineError::ExportInUse { .. } | EngineError::ExportExists { .. } => {
            ApiError::new(StatusCode::CONFLICT, "ExportInUse", msg)
        }
        EngineError::TerminationProtected { .. } => {
            ApiError::new(StatusCode::CONFLICT, "TerminationProtected", msg)
        }
        EngineError::PolicyDenied { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "StackPolicyDenied", msg).with_hint(
                "pass a temporary policy for this update (`--stack-policy-during-update FILE`) or change the stack policy",
            )
        }
        EngineError::DataLoss { .. } => ApiError::new(StatusCode::CONFLICT, "DataLoss", msg)
            .with_hint("review what is lost; pass --allow-data-loss to go ahead"),
        EngineError::ChangeSet { diags, .. } => invalid_template(&diags),
        other => {
            tracing::error!(error = %other, "stack engine failure");
            ApiError::internal(&msg)
        }
    }
}

/// Templates come from files, so the limit is the 1 MB AWS allows for a template uploaded
/// through S3 (`aws cloudformation deploy --s3-bucket`), not the 51,200 bytes of an inline body.
pub(crate) fn validate_options<'a>(
    supported: &'a dyn Fn(&str) -> bool,
    rules: &'a ResourceRules<'a>,
) -> ValidateOptions<'a> {
    ValidateOptions {
        supported_type: Some(supported),
        max_body_bytes: spindle_template::template::quota::S3_BODY_BYTES,
        resource_rules: Some(rules),
        registry_schemas: true,
    }
}

pub(crate) fn stack_name(s: &str) -> Res<StackName> {
    StackName::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) fn template_name(req: &TemplateRequest) -> String {
    req.template_name
        .clone()
        .unwrap_or_else(|| "template".into())
}

pub async fn validate_template(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<TemplateReport>> {
    let req: TemplateRequest = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/templates"))?;
    let engine = app.stacks.engine(&a.id);
    let registry = engine.registry();
    let grants = app.admin_grants(&call, &a)?;
    let supported = |ty: &str| registry.supports(ty);
    let refs = app.stacks.references();
    let rules = |v: &ResourceView<'_>| {
        let mut d = with_grant_rules(registry.validate(v), v, &grants);
        d.extend(crate::secrets::reference_rules(&*refs, &a.id, v));
        d
    };
    Ok(Json(template_report(&req, &supported, &rules)))
}

/// The providers' rules plus those about grants the caller doesn't hold (such as a wider
/// seccomp profile), which need the caller and so can't be a provider's own.
pub(crate) fn with_grant_rules(
    mut diags: Vec<spindle_template::Diagnostic>,
    view: &ResourceView<'_>,
    grants: &[String],
) -> Vec<spindle_template::Diagnostic> {
    diags.extend(spindle_providers::rules::grants(view, grants));
    diags
}

/// What `template validate` reports for `req`, given which types can be provisioned and
/// the providers' rules. The daemon answers with it, and `spindle template validate`
/// computes it the same way without a daemon.
pub fn template_report(
    req: &TemplateRequest,
    supported: &dyn Fn(&str) -> bool,
    rules: &ResourceRules<'_>,
) -> TemplateReport {
    let t = match spindle_template::parse(&req.template_body, &template_name(req)) {
        Ok(t) => t,
        Err(d) => return TemplateReport::invalid(d.iter().map(diagnostic).collect()),
    };
    let diags = spindle_template::validate(&t, &validate_options(supported, rules));
    let mut resource_types = BTreeMap::new();
    for r in &t.resources {
        *resource_types.entry(r.type_name.clone()).or_insert(0u32) += 1;
    }
    let unsupported_types = resource_types
        .keys()
        .filter(|ty| !supported(ty))
        .cloned()
        .collect();
    TemplateReport {
        valid: diags.is_empty(),
        diagnostics: diags.iter().map(diagnostic).collect(),
        description: t.description.clone(),
        parameters: t
            .parameters
            .iter()
            .map(|p| TemplateParameterInfo {
                name: p.name.clone(),
                kind: p.type_name.clone(),
                default: if p.no_echo {
                    p.default.as_ref().map(|_| "****".into())
                } else {
                    p.default.clone()
                },
                no_echo: p.no_echo,
                description: p.description.clone(),
            })
            .collect(),
        resource_types,
        unsupported_types,
    }
}

/// `spindle template validate` without a daemon: the same report, for the resource types a
/// daemon of this build provisions ([`crate::stacks::provisionable_types`]) and with the
/// rules their providers add (each provider's `validate` is `spindle_providers::rules::check`).
pub fn template_report_offline(req: &TemplateRequest) -> TemplateReport {
    let types = crate::stacks::provisionable_types();
    let supported = |ty: &str| types.contains(ty);
    let rules = |v: &ResourceView<'_>| spindle_providers::rules::check(v);
    template_report(req, &supported, &rules)
}

/// A template planned for a stack, with the change set a deploy would execute.
pub(crate) struct Planned {
    pub plan: spindle_template::Plan,
    pub cs: spindle_template::ChangeSet,
    pub imports: Vec<String>,
    pub outputs_changed: bool,
}

/// Reads, validates and plans `req` for stack `name`, and computes the change set.
/// `grants` are the admin-granted actions the caller holds ([`App::admin_grants`]):
/// checked by validation here and passed to providers in the plan's context.
pub(crate) fn plan_request(
    app: &App,
    account: &spindle_model::AccountId,
    engine: &spindle_stack::Engine,
    name: &StackName,
    req: &TemplateRequest,
    grants: Vec<String>,
) -> Res<Planned> {
    let t = spindle_template::parse(&req.template_body, &template_name(req))
        .map_err(|d| invalid_template(&d))?;
    let ext = External::new(app.store.clone(), account.clone(), engine);
    let registry = engine.registry();
    let supported = |ty: &str| registry.supports(ty);
    let refs = app.stacks.references();
    let rules = |v: &ResourceView<'_>| {
        let mut d = with_grant_rules(registry.validate(v), v, &grants);
        d.extend(crate::secrets::reference_rules(&*refs, account, v));
        d
    };
    let mut parameters = req.parameters.clone();
    if !req.use_previous_values.is_empty() {
        let v = engine.stack(name.as_str()).map_err(engine_error)?;
        for k in &req.use_previous_values {
            let previous = v
                .exists()
                .then(|| v.deployed.parameters.get(k))
                .flatten()
                .and_then(|p| p.value.scalar_string())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "parameter `{k}`: stack `{name}` has no previous value to use"
                    ))
                })?;
            parameters.insert(k.clone(), previous);
        }
    }
    let mut context = spindle_template::Context::new(account.as_str(), REGION, name.as_str());
    context.grants = grants.clone();
    let input = spindle_template::PlanInput {
        parameters,
        context,
        external: &ext,
        validate: validate_options(&supported, &rules),
    };
    let plan = spindle_template::plan(&t, &input).map_err(|d| invalid_template(&d))?;
    let cs = engine.change_set(&plan, &ext).map_err(engine_error)?;
    let outputs_changed = engine.outputs_change(&plan, &ext);
    Ok(Planned {
        plan,
        cs,
        imports: ext.imported(),
        outputs_changed,
    })
}

pub(crate) fn policy(field: &str, text: &str) -> Res<spindle_stack::policy::StackPolicy> {
    spindle_stack::policy::StackPolicy::parse(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidStackPolicy",
            format!("{field}: {e}"),
        )
    })
}

/// Runs a deploy as its own task: a client that disconnects must not cancel it half-way
/// (that would look like a crash to the engine).
pub(crate) async fn run_deploy(
    app: &App,
    account: &spindle_model::AccountId,
    engine: Arc<spindle_stack::Engine>,
    mut dr: DeployRequest,
) -> Res<spindle_stack::OperationOutcome> {
    dr.external = Arc::new(External::new(app.store.clone(), account.clone(), &engine));
    tokio::spawn(async move { engine.deploy(dr).await })
        .await
        .map_err(|e| ApiError::internal(&format!("stack operation task failed: {e}")))?
        .map_err(engine_error)
}

pub async fn deploy_stack(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<DeployResult>> {
    let req: DeployStack = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    let name = stack_name(&stack)?;
    let engine = app.stacks.engine(&a.id);
    let stack_policy = match &req.stack_policy {
        Some(p) => Some(policy("stack_policy", p)?),
        None => None,
    };
    let policy_override = match &req.stack_policy_during_update {
        Some(p) => Some(policy("stack_policy_during_update", p)?),
        None => None,
    };
    let Planned {
        plan,
        cs,
        imports,
        outputs_changed,
    } = plan_request(
        &app,
        &a.id,
        &engine,
        &name,
        &req.template,
        app.admin_grants(&call, &a)?,
    )?;
    let cs = if req.revert_drift {
        let ext = External::new(app.store.clone(), a.id.clone(), &engine);
        engine
            .change_set_reverting_drift(&plan, &ext)
            .await
            .map_err(engine_error)?
    } else {
        cs
    };
    let (changes, hash) = change_set(&cs);
    let current = engine.stack(name.as_str()).ok().filter(|v| v.exists());
    let mut result = DeployResult {
        stack: name.to_string(),
        changes,
        change_set_hash: hash.clone(),
        executed: false,
        outputs_changed,
        status: current
            .as_ref()
            .and_then(|v| v.status)
            .map(|s| s.to_string()),
        reason: current.as_ref().and_then(|v| v.reason.clone()),
        data_loss: current
            .as_ref()
            .map(|v| spindle_stack::dataloss::of_change_set(&cs, &v.deployed.state, &plan))
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    let settings_change = current.as_ref().is_some_and(|v| {
        req.termination_protection
            .is_some_and(|t| t != v.settings.termination_protection)
            || req
                .stack_policy
                .as_ref()
                .is_some_and(|p| Some(p) != v.settings.policy.as_ref())
    });
    if req.preview || (cs.is_empty() && current.is_some() && !settings_change && !outputs_changed) {
        return Ok(Json(result));
    }
    if let Some(expected) = &req.expected_change_set {
        if expected != &hash {
            return Err(ApiError::conflict(format!(
                "the change set of stack `{name}` is now {hash}, not the {expected} that was reviewed (the stack or its inputs changed)"
            ))
            .with_hint("review the new change set and deploy again"));
        }
    }
    let mut dr = DeployRequest::new(plan);
    dr.change_set = Some(cs);
    dr.disable_rollback = req.disable_rollback;
    dr.termination_protection = req.termination_protection;
    dr.stack_policy = stack_policy;
    dr.policy_override = policy_override;
    dr.imports = imports;
    dr.nested_templates = Some(nested_bundle(&req.template));
    dr.revert_drift = req.revert_drift;
    dr.allow_data_loss = req.allow_data_loss;
    dr.template_body = Some(req.template.template_body.clone());
    let outcome = run_deploy(&app, &a.id, engine, dr).await?;
    result.executed = true;
    result.status = Some(outcome.status.to_string());
    result.reason = outcome.reason;
    Ok(Json(result))
}

/// The nested templates the client sent, keyed as the nested stack provider looks them up.
pub(crate) fn nested_bundle(req: &TemplateRequest) -> Arc<BTreeMap<String, String>> {
    Arc::new(req.nested_templates.clone())
}

pub async fn list_stacks(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<StackSummary>>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks"))?;
    let engine = app.stacks.engine(&a.id);
    let names = engine
        .journal()
        .stacks()
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    // One fold per stack from the engine's cached views; no journal read per stack.
    let mut out = Vec::new();
    for n in names {
        let v = engine.stack(&n).map_err(engine_error)?;
        if !v.exists() {
            continue;
        }
        out.push(StackSummary {
            name: n,
            status: v.status.map(|s| s.to_string()).unwrap_or_default(),
            reason: v.reason,
            last_updated: (v.last_updated_ms > 0).then(|| fmt_ms(v.last_updated_ms)),
        });
    }
    Ok(Json(out))
}

/// An output as CloudFormation shows it: strings plain, lists comma-joined, masked if NoEcho.
pub(crate) fn output_text(v: &spindle_template::Value, sensitive: bool) -> String {
    if sensitive {
        return spindle_template::value::MASK.to_owned();
    }
    v.scalar_string().unwrap_or_else(|| v.render(false))
}

pub(crate) fn fmt_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The stack as its account sees it; a deleted or unknown stack is not found.
pub(crate) fn view(
    app: &App,
    account: &spindle_model::AccountId,
    name: &str,
) -> Res<spindle_stack::StackView> {
    let v = app
        .stacks
        .engine(account)
        .stack(name)
        .map_err(engine_error)?;
    if !v.exists() {
        return Err(ApiError::not_found(format!("stack `{name}` not found"))
            .with_hint("`spindle stack list` shows the account's stacks"));
    }
    Ok(v)
}

pub async fn describe_stack(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<StackDetail>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    describe_view(&app, &a.id, &stack).map(Json)
}

/// The stack as `describe` shows it.
pub(crate) fn describe_view(
    app: &App,
    account: &spindle_model::AccountId,
    stack: &str,
) -> Res<StackDetail> {
    let v = view(app, account, stack)?;
    Ok(StackDetail {
        name: v.name.clone(),
        status: v.status.map(|s| s.to_string()).unwrap_or_default(),
        reason: v.reason.clone(),
        in_progress: v.in_progress,
        outputs: v
            .deployed
            .outputs
            .iter()
            .map(|o| StackOutputInfo {
                name: o.name.clone(),
                value: output_text(&o.value, o.sensitive),
                description: o.description.clone(),
                export_name: o.export_name.clone(),
            })
            .collect(),
        resources: v
            .deployed
            .state
            .resources
            .iter()
            .map(|(l, r)| StackResourceInfo {
                logical_id: l.clone(),
                physical_id: r.physical_id.clone(),
                resource_type: r.type_name.clone(),
            })
            .collect(),
        termination_protection: v.settings.termination_protection,
        stack_policy: v.settings.policy.clone(),
    })
}

pub async fn stack_events(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<StackEventInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    let events = app
        .stacks
        .engine(&a.id)
        .events(&stack)
        .map_err(engine_error)?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| StackEventInfo {
                seq: e.seq,
                time: fmt_ms(e.timestamp_ms),
                logical_id: e.logical_id,
                physical_id: e.physical_id,
                resource_type: e.type_name,
                status: e.status,
                reason: e.reason,
            })
            .collect(),
    ))
}

pub async fn delete_stack(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    Query(q): Query<DeleteStackQuery>,
    call: Call,
) -> Res<Json<StackOperationResult>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    let engine = app.stacks.engine(&a.id);
    let name = stack.clone();
    // As with deploy: a disconnecting client must not cancel the operation half-way.
    let o =
        tokio::spawn(async move { engine.delete_stack_allowing(&name, q.allow_data_loss).await })
            .await
            .map_err(|e| ApiError::internal(&format!("stack operation task failed: {e}")))?
            .map_err(engine_error)?;
    if o.status == StackStatus::DeleteComplete {
        // Change sets of a deleted stack would execute against nothing.
        if let Err(e) = app.store.delete_change_sets(&a.id, &stack, None) {
            tracing::warn!(stack = %stack, error = %e, "cannot delete the change sets of a deleted stack");
        }
    }
    if o.status != StackStatus::DeleteComplete {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DeleteFailed",
            format!(
                "stack `{stack}` is {}: {}",
                o.status,
                o.reason.unwrap_or_default()
            ),
        ));
    }
    Ok(Json(StackOperationResult {
        stack: o.stack,
        status: o.status.to_string(),
        reason: o.reason,
    }))
}

/// Names of the account's stacks that still exist (an account with any can't be deleted).
pub fn live_stacks(app: &App, account: &spindle_model::AccountId) -> Res<Vec<String>> {
    let engine = app.stacks.engine(account);
    let names = engine
        .journal()
        .stacks()
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(names
        .into_iter()
        .filter(|n| engine.stack(n).map(|v| v.exists()).unwrap_or(true))
        .collect())
}

pub async fn stack_drift(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<ResourceDriftInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    let engine = app.stacks.engine(&a.id);
    let name = stack.clone();
    let drift = tokio::spawn(async move { engine.drift(&name).await })
        .await
        .map_err(|e| ApiError::internal(&format!("drift task failed: {e}")))?
        .map_err(engine_error)?;
    Ok(Json(
        drift
            .into_iter()
            .map(|d| ResourceDriftInfo {
                logical_id: d.logical_id,
                resource_type: d.type_name,
                physical_id: d.physical_id,
                status: serde_json::to_value(d.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                differences: d
                    .differences
                    .into_iter()
                    .map(|p| PropertyDrift {
                        name: p.name,
                        expected: p.expected,
                        actual: p.actual,
                    })
                    .collect(),
                reason: d.reason,
            })
            .collect(),
    ))
}

pub async fn continue_rollback(
    State(app): State<App>,
    Path((account, stack)): Path<(String, String)>,
    call: Call,
) -> Res<Json<StackOperationResult>> {
    let req: ContinueRollback = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/stacks/{stack}"))?;
    view(&app, &a.id, &stack)?;
    let engine = app.stacks.engine(&a.id);
    let name = stack.clone();
    let o = tokio::spawn(async move { engine.continue_rollback(&name, &req.skip).await })
        .await
        .map_err(|e| ApiError::internal(&format!("stack operation task failed: {e}")))?
        .map_err(engine_error)?;
    Ok(Json(StackOperationResult {
        stack: o.stack,
        status: o.status.to_string(),
        reason: o.reason,
    }))
}
