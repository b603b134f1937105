//! CloudFormation operations over the account's stack engine (`crate::stacks`): the same
//! validation, views and status names as `spindle stack`. Query protocol.

use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::stack_handlers::{engine_error, output_text, template_report, with_grant_rules};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::api::TemplateRequest;
use spindle_model::AccountId;
use spindle_stack::StackView;
use spindle_template::ResourceView;

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    match op.name {
        "CreateStack" | "UpdateStack" | "DeleteStack" | "CreateChangeSet" | "DescribeChangeSet"
        | "ExecuteChangeSet" | "DeleteChangeSet" | "ListChangeSets" => {
            super::cfn_deploy::dispatch(app, op, input).await
        }
        "ValidateTemplate" => validate(app, op, input),
        "GetTemplate" => get_template(app, op, input),
        "DetectStackDrift"
        | "DescribeStackDriftDetectionStatus"
        | "DescribeStackResourceDrifts"
        | "DetectStackResourceDrift" => super::cfn_drift::dispatch(app, op, input).await,
        "ListExports" => {
            input.set_target(op, "*");
            let exports = app
                .stacks
                .engine(&account)
                .exports()
                .map_err(|e| AwsError::from(engine_error(e)))?;
            let (exports, next) = super::page::page(
                exports,
                |(name, _, _)| name.as_str(),
                None,
                // AWS pages exports 100 at a time, with no size parameter.
                100,
                input.param("NextToken"),
                "NextToken",
            )?;
            let items = exports
                .into_iter()
                .map(|(name, stack, o)| {
                    Value::fields([
                        (
                            "ExportingStackId",
                            Some(Value::Str(stack_id(&account, &stack))),
                        ),
                        ("Name", Some(Value::Str(name))),
                        (
                            "Value",
                            Some(Value::Str(output_text(&o.value, o.sensitive))),
                        ),
                    ])
                })
                .collect();
            Ok(Value::fields([
                ("Exports", Some(Value::List(items))),
                ("NextToken", next.map(Value::Str)),
            ]))
        }
        "UpdateTerminationProtection" => {
            let name = stack_name_of(input.required("StackName")?);
            input.set_target(op, name);
            let enabled = match input.required("EnableTerminationProtection")? {
                "true" => true,
                "false" => false,
                other => {
                    return Err(AwsError::validation(format!(
                        "EnableTerminationProtection: expected true or false, got `{other}`"
                    )))
                }
            };
            view(app, &account, name)?;
            app.stacks
                .engine(&account)
                .update_settings(name, |s| s.termination_protection = enabled)
                .map_err(|e| AwsError::from(engine_error(e)))?;
            Ok(Value::fields([(
                "StackId",
                Some(Value::Str(stack_id(&account, name))),
            )]))
        }
        "GetTemplateSummary" => match input.param("StackName") {
            // A deployed stack: the parameters it was deployed with.
            Some(n) => {
                input.set_target(op, n);
                let v = view(app, &account, stack_name_of(n))?;
                let params = v
                    .deployed
                    .parameters
                    .iter()
                    .map(|(k, p)| {
                        Value::fields([
                            ("ParameterKey", Some(Value::Str(k.clone()))),
                            ("NoEcho", Some(Value::Bool(p.no_echo))),
                        ])
                    })
                    .collect();
                Ok(Value::fields([("Parameters", Some(Value::List(params)))]))
            }
            None => validate(app, op, input),
        },
        "DescribeStacks" => {
            let name = input.param("StackName");
            input.set_target(op, name.unwrap_or("*"));
            let views = match name {
                Some(n) => vec![view(app, &account, stack_name_of(n))?],
                None => live_views(app, &account)?,
            };
            let stacks = views.iter().map(|v| stack(&account, v)).collect();
            Ok(Value::fields([("Stacks", Some(Value::List(stacks)))]))
        }
        "DescribeStackEvents" => {
            let name = stack_name_of(input.required("StackName")?);
            input.set_target(op, name);
            let v = view(app, &account, name)?;
            let events = app
                .stacks
                .engine(&account)
                .events(name)
                .map_err(|e| AwsError::from(engine_error(e)))?;
            let id = stack_id(&account, name);
            // Newest first, as CloudFormation lists them.
            let items = events
                .into_iter()
                .rev()
                .map(|e| {
                    Value::fields([
                        ("StackId", Some(Value::Str(id.clone()))),
                        ("EventId", Some(Value::Str(format!("{}-{}", v.name, e.seq)))),
                        ("StackName", Some(Value::Str(v.name.clone()))),
                        ("LogicalResourceId", Some(Value::Str(e.logical_id))),
                        ("PhysicalResourceId", e.physical_id.map(Value::Str)),
                        ("ResourceType", Some(Value::Str(e.type_name))),
                        ("Timestamp", Some(Value::Time(ms(e.timestamp_ms)))),
                        ("ResourceStatus", Some(Value::Str(e.status))),
                        ("ResourceStatusReason", e.reason.map(Value::Str)),
                    ])
                })
                .collect();
            Ok(Value::fields([("StackEvents", Some(Value::List(items)))]))
        }
        "DescribeStackResources" | "ListStackResources" => {
            let name = stack_name_of(input.required("StackName")?);
            input.set_target(op, name);
            let v = view(app, &account, name)?;
            // A resource's status is the stack's last operation's outcome for it.
            let resource_status = if v
                .status
                .map(|s| s.to_string())
                .is_some_and(|s| s.starts_with("UPDATE"))
            {
                "UPDATE_COMPLETE"
            } else {
                "CREATE_COMPLETE"
            };
            let items = v
                .deployed
                .state
                .resources
                .iter()
                .map(|(logical, r)| {
                    let mut fields = vec![
                        ("LogicalResourceId".to_owned(), Value::Str(logical.clone())),
                        (
                            "PhysicalResourceId".to_owned(),
                            Value::Str(r.physical_id.clone()),
                        ),
                        ("ResourceType".to_owned(), Value::Str(r.type_name.clone())),
                        ("ResourceStatus".to_owned(), Value::str(resource_status)),
                    ];
                    let when = ("Timestamp", "LastUpdatedTimestamp");
                    if op.name == "DescribeStackResources" {
                        fields.insert(0, ("StackName".to_owned(), Value::Str(v.name.clone())));
                        fields.insert(
                            0,
                            (
                                "StackId".to_owned(),
                                Value::Str(stack_id(&account, &v.name)),
                            ),
                        );
                        fields.push((when.0.to_owned(), Value::Time(updated(&v))));
                    } else {
                        fields.push((when.1.to_owned(), Value::Time(updated(&v))));
                    }
                    Value::Struct(fields)
                })
                .collect();
            let member = if op.name == "DescribeStackResources" {
                "StackResources"
            } else {
                "StackResourceSummaries"
            };
            Ok(Value::fields([(member, Some(Value::List(items)))]))
        }
        "ListStacks" => {
            input.set_target(op, "*");
            let filter: Vec<&str> = input
                .params
                .iter()
                .filter(|(k, _)| k.starts_with("StackStatusFilter.member."))
                .map(|(_, v)| v.as_str())
                .collect();
            let summaries = live_views(app, &account)?
                .iter()
                .filter(|v| filter.is_empty() || filter.contains(&status(v).as_str()))
                .map(|v| {
                    Value::fields([
                        ("StackId", Some(Value::Str(stack_id(&account, &v.name)))),
                        ("StackName", Some(Value::Str(v.name.clone()))),
                        ("CreationTime", Some(Value::Time(updated(v)))),
                        ("LastUpdatedTime", Some(Value::Time(updated(v)))),
                        ("StackStatus", Some(Value::Str(status(v)))),
                        ("StackStatusReason", v.reason.clone().map(Value::Str)),
                    ])
                })
                .collect();
            Ok(Value::fields([(
                "StackSummaries",
                Some(Value::List(summaries)),
            )]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("cloudformation:{} is not implemented by Spindle", op.name),
        )),
    }
}

/// `ValidateTemplate`: every problem `spindle template validate` finds, in one
/// `ValidationError`; else the template's parameters and description.
fn validate(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    input.set_target(op, "template");
    let body = input.param("TemplateBody").ok_or_else(|| {
        AwsError::validation(if input.param("TemplateURL").is_some() {
            "TemplateURL is not supported by Spindle: pass TemplateBody (aws cloudformation validate-template --template-body file://FILE)"
        } else {
            "TemplateBody: a value is required"
        })
    })?;
    let req = TemplateRequest {
        template_body: body.to_owned(),
        template_name: Some("template".into()),
        ..Default::default()
    };
    let acct = input.caller().account.clone();
    let engine = app.stacks.engine(&acct.id);
    let registry = engine.registry();
    let grants = app.admin_grants(&input.call, &acct)?;
    let supported = |ty: &str| registry.supports(ty);
    let rules = |v: &ResourceView<'_>| with_grant_rules(registry.validate(v), v, &grants);
    let report = template_report(&req, &supported, &rules);
    if !report.valid {
        let problems: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
        return Err(AwsError::validation(format!(
            "Template format error: {}",
            problems.join("; ")
        )));
    }
    let params = report
        .parameters
        .iter()
        .map(|p| {
            Value::fields([
                ("ParameterKey", Some(Value::Str(p.name.clone()))),
                ("DefaultValue", p.default.clone().map(Value::Str)),
                ("NoEcho", Some(Value::Bool(p.no_echo))),
                ("Description", p.description.clone().map(Value::Str)),
            ])
        })
        .collect();
    Ok(Value::fields([
        ("Parameters", Some(Value::List(params))),
        ("Description", report.description.map(Value::Str)),
        ("Capabilities", Some(Value::List(Vec::new()))),
    ]))
}

/// `GetTemplate`: the text as submitted. Spindle runs no transforms, so the `Processed`
/// stage is the `Original` text.
fn get_template(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let stage = input.param("TemplateStage").unwrap_or("Original");
    if !matches!(stage, "Original" | "Processed") {
        return Err(AwsError::validation(format!(
            "TemplateStage: expected Original or Processed, got `{stage}`"
        )));
    }
    let account = input.caller().account.id.clone();
    let (stack, change_set) = match input.param("ChangeSetName") {
        Some(_) => {
            let (stack, name) = super::cfn_deploy::change_set_ref(input)?;
            (stack, Some(name))
        }
        None => (stack_name_of(input.required("StackName")?).to_owned(), None),
    };
    input.set_target(op, &stack);
    if change_set.is_none() {
        view(app, &account, &stack)?;
    }
    let body = crate::stack_ops::template_body(app, &account, &stack, change_set.as_deref())
        .map_err(|e| match &change_set {
            Some(name) if e.code() == "NotFound" => super::cfn_deploy::change_set_not_found(name),
            _ => AwsError::from(e),
        })?;
    Ok(Value::fields([
        ("TemplateBody", Some(Value::Str(body))),
        (
            "StagesAvailable",
            Some(Value::List(vec![
                Value::str("Original"),
                Value::str("Processed"),
            ])),
        ),
    ]))
}

/// A stack id (its ARN) names the stack by its last segment but one; accept either form.
pub(super) fn stack_name_of(s: &str) -> &str {
    if s.starts_with("arn:") {
        s.rsplit('/').nth(1).unwrap_or(s)
    } else {
        s
    }
}

pub(super) fn stack_id(account: &AccountId, name: &str) -> String {
    format!("arn:aws:cloudformation:us-east-1:{account}:stack/{name}/spindle")
}

fn status(v: &StackView) -> String {
    v.status.map(|s| s.to_string()).unwrap_or_default()
}

fn updated(v: &StackView) -> time::OffsetDateTime {
    ms(v.last_updated_ms)
}

fn ms(ms: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The stack as the account sees it; CloudFormation's waiters read "does not exist" from a
/// `ValidationError`.
pub(super) fn view(app: &App, account: &AccountId, name: &str) -> Result<StackView, AwsError> {
    let v = app
        .stacks
        .engine(account)
        .stack(name)
        .map_err(|e| AwsError::from(engine_error(e)))?;
    if !v.exists() {
        return Err(AwsError::validation(format!(
            "Stack with id {name} does not exist"
        )));
    }
    Ok(v)
}

pub(super) fn live_views(app: &App, account: &AccountId) -> Result<Vec<StackView>, AwsError> {
    let engine = app.stacks.engine(account);
    let names = engine
        .journal()
        .stacks()
        .map_err(|e| AwsError::new(ErrorKind::Internal, e.to_string()))?;
    let mut out = Vec::new();
    for n in names {
        let v = engine
            .stack(&n)
            .map_err(|e| AwsError::from(engine_error(e)))?;
        if v.exists() {
            out.push(v);
        }
    }
    Ok(out)
}

fn stack(account: &AccountId, v: &StackView) -> Value {
    let outputs = v
        .deployed
        .outputs
        .iter()
        .map(|o| {
            Value::fields([
                ("OutputKey", Some(Value::Str(o.name.clone()))),
                (
                    "OutputValue",
                    Some(Value::Str(output_text(&o.value, o.sensitive))),
                ),
                ("Description", o.description.clone().map(Value::Str)),
                ("ExportName", o.export_name.clone().map(Value::Str)),
            ])
        })
        .collect();
    Value::fields([
        ("StackId", Some(Value::Str(stack_id(account, &v.name)))),
        ("StackName", Some(Value::Str(v.name.clone()))),
        ("CreationTime", Some(Value::Time(updated(v)))),
        ("LastUpdatedTime", Some(Value::Time(updated(v)))),
        ("StackStatus", Some(Value::Str(status(v)))),
        ("StackStatusReason", v.reason.clone().map(Value::Str)),
        ("Outputs", Some(Value::List(outputs))),
        (
            "EnableTerminationProtection",
            Some(Value::Bool(v.settings.termination_protection)),
        ),
    ])
}
