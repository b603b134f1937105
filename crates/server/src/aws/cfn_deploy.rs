//! CloudFormation's mutating operations and change sets, through the REST handlers that
//! `spindle stack` uses (`stack_handlers`, `stack_ops`): each operation becomes that
//! handler's request, run as the same caller with the same audit record, and its answer is
//! reshaped. So `aws cloudformation deploy` gets Spindle's planning, policies and saga.
//!
//! A change set is complete when created, and `ExecuteChangeSet` (like `CreateStack` and
//! `UpdateStack`) answers once the stack is stable, so the CLI's waiters find a finished
//! stack at their first look instead of sleeping 30 s.

use super::cloudformation::{stack_id, stack_name_of, view};
use super::{AwsError, AwsResult, Input};
use crate::api::ApiError;
use crate::app::App;
use crate::stack_handlers as sh;
use crate::stack_ops as so;
use axum::extract::{Path, State};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::api::{
    ChangeSetInfo, CreateChangeSet, DeployStack, ExecuteChangeSet, TemplateRequest,
};
use spindle_model::{AccountId, Action};
use std::collections::BTreeMap;

/// CloudFormation's words for a change set without changes; `aws cloudformation deploy`
/// recognises them and reports "No changes to deploy".
const NO_CHANGES: &str =
    "The submitted information didn't contain changes. Submit different information to create a change set.";

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    let acct = account.to_string();
    match op.name {
        "CreateStack" | "UpdateStack" => {
            let stack = input.required("StackName")?.to_owned();
            input.set_target(op, &stack);
            let exists = view(app, &account, &stack).is_ok();
            if op.name == "CreateStack" && exists {
                return Err(AwsError::new(
                    ErrorKind::Service {
                        code: "AlreadyExistsException",
                        status: 400,
                    },
                    format!("Stack [{stack}] already exists"),
                ));
            }
            if op.name == "UpdateStack" && !exists {
                return Err(AwsError::validation(format!(
                    "Stack [{stack}] does not exist"
                )));
            }
            let req = DeployStack {
                template: template(input)?,
                preview: false,
                expected_change_set: None,
                disable_rollback: input.param("DisableRollback") == Some("true"),
                termination_protection: input
                    .param("EnableTerminationProtection")
                    .map(|v| v == "true"),
                stack_policy: input.param("StackPolicyBody").map(str::to_owned),
                stack_policy_during_update: input
                    .param("StackPolicyDuringUpdateBody")
                    .map(str::to_owned),
                revert_drift: false,
                // AWS has no such switch: a data-losing change is refused on this endpoint.
                allow_data_loss: false,
            };
            let call = derive(input, Action::DeployStack, &req)?;
            let r = sh::deploy_stack(State(app.clone()), Path((acct, stack.clone())), call)
                .await
                .map_err(|e| stack_error(e, &stack))?;
            if op.name == "UpdateStack" && !r.0.executed {
                return Err(AwsError::validation("No updates are to be performed."));
            }
            Ok(Value::fields([(
                "StackId",
                Some(Value::Str(stack_id(&account, &stack))),
            )]))
        }
        "DeleteStack" => {
            let stack = stack_name_of(input.required("StackName")?).to_owned();
            input.set_target(op, &stack);
            // Deleting a stack that doesn't exist succeeds, as in CloudFormation.
            if view(app, &account, &stack).is_err() {
                return Ok(Value::Struct(Vec::new()));
            }
            let call = derive(input, Action::DeleteStack, &())?;
            // The stack's final status is for DescribeStacks to show.
            let _ = sh::delete_stack(
                State(app.clone()),
                Path((acct, stack.clone())),
                axum::extract::Query(Default::default()),
                call,
            )
            .await
            .map_err(|e| stack_error(e, &stack))?;
            Ok(Value::Struct(Vec::new()))
        }
        "CreateChangeSet" => {
            let stack = input.required("StackName")?.to_owned();
            let name = input.required("ChangeSetName")?.to_owned();
            input.set_target(op, &format!("{stack}/{name}"));
            let exists = view(app, &account, &stack).is_ok();
            match (input.param("ChangeSetType").unwrap_or("UPDATE"), exists) {
                ("CREATE", true) => {
                    return Err(AwsError::validation(format!(
                        "Stack [{stack}] already exists and cannot be created again with the changeSet [{name}]."
                    )))
                }
                ("UPDATE", false) => {
                    return Err(AwsError::validation(format!(
                        "Stack [{stack}] does not exist"
                    )))
                }
                ("CREATE" | "UPDATE", _) => {}
                (other, _) => {
                    return Err(AwsError::validation(format!(
                        "ChangeSetType: expected CREATE or UPDATE, got `{other}` (IMPORT is not supported by Spindle)"
                    )))
                }
            }
            let req = CreateChangeSet {
                template: template(input)?,
                description: input.param("Description").map(str::to_owned),
            };
            let call = derive(input, Action::CreateChangeSet, &req)?;
            let _ = so::create_change_set(
                State(app.clone()),
                Path((acct, stack.clone(), name.clone())),
                call,
            )
            .await
            .map_err(|e| stack_error(e, &stack))?;
            Ok(Value::fields([
                (
                    "Id",
                    Some(Value::Str(change_set_id(&account, &name, &stack))),
                ),
                ("StackId", Some(Value::Str(stack_id(&account, &stack)))),
            ]))
        }
        "DescribeChangeSet" => {
            let (stack, name) = change_set_ref(input)?;
            input.set_target(op, &format!("{stack}/{name}"));
            let call = derive(input, Action::DescribeChangeSet, &())?;
            let info = so::describe_change_set(
                State(app.clone()),
                Path((acct, stack.clone(), name.clone())),
                call,
            )
            .await
            .map_err(|e| change_set_error(e, &name))?;
            Ok(change_set(&account, &info.0, true))
        }
        "ListChangeSets" => {
            let stack = stack_name_of(input.required("StackName")?).to_owned();
            input.set_target(op, &stack);
            let call = derive(input, Action::ListChangeSets, &())?;
            let all = so::list_change_sets(State(app.clone()), Path((acct, stack.clone())), call)
                .await
                .map_err(|e| stack_error(e, &stack))?;
            let items = all
                .0
                .iter()
                .map(|c| change_set(&account, c, false))
                .collect();
            Ok(Value::fields([("Summaries", Some(Value::List(items)))]))
        }
        "ExecuteChangeSet" => {
            let (stack, name) = change_set_ref(input)?;
            input.set_target(op, &format!("{stack}/{name}"));
            let req = ExecuteChangeSet {
                disable_rollback: input.param("DisableRollback") == Some("true"),
                allow_data_loss: false,
            };
            let call = derive(input, Action::ExecuteChangeSet, &req)?;
            // Its outcome (a rollback too) shows in DescribeStacks, where the CLI's waiter looks.
            let _ = so::execute_change_set(
                State(app.clone()),
                Path((acct, stack.clone(), name.clone())),
                call,
            )
            .await
            .map_err(|e| change_set_error(e, &name))?;
            Ok(Value::Struct(Vec::new()))
        }
        "DeleteChangeSet" => {
            let (stack, name) = change_set_ref(input)?;
            input.set_target(op, &format!("{stack}/{name}"));
            let call = derive(input, Action::DeleteChangeSet, &())?;
            so::delete_change_set(
                State(app.clone()),
                Path((acct, stack.clone(), name.clone())),
                call,
            )
            .await
            .map_err(|e| change_set_error(e, &name))?;
            Ok(Value::Struct(Vec::new()))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("cloudformation:{} is not implemented by Spindle", op.name),
        )),
    }
}

/// The REST handler's call: the same caller and audit record, with `body` as JSON.
fn derive<T: serde::Serialize>(
    input: &Input,
    action: Action,
    body: &T,
) -> Result<crate::auth::Call, AwsError> {
    let json = serde_json::to_vec(body)
        .map_err(|e| AwsError::new(ErrorKind::Internal, format!("request: {e}")))?;
    Ok(input.call.derive(action, json.into()))
}

/// `TemplateBody` and `Parameters.member.N.{ParameterKey,ParameterValue,UsePreviousValue}`.
fn template(input: &Input) -> Result<TemplateRequest, AwsError> {
    let body = input.param("TemplateBody").ok_or_else(|| {
        AwsError::validation(if input.param("TemplateURL").is_some() {
            "TemplateURL is not supported by Spindle: pass TemplateBody"
        } else {
            "TemplateBody: a value is required"
        })
    })?;
    let mut members: BTreeMap<u32, BTreeMap<&str, &str>> = BTreeMap::new();
    for (k, v) in &input.params {
        let Some(rest) = k.strip_prefix("Parameters.member.") else {
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        let n: u32 = n
            .parse()
            .map_err(|_| AwsError::validation(format!("{k}: not a list member")))?;
        members.entry(n).or_default().insert(field, v);
    }
    let mut req = TemplateRequest {
        template_body: body.to_owned(),
        template_name: Some("template".into()),
        ..Default::default()
    };
    for (n, m) in members {
        let key = m.get("ParameterKey").ok_or_else(|| {
            AwsError::validation(format!(
                "Parameters.member.{n}.ParameterKey: a value is required"
            ))
        })?;
        if m.get("UsePreviousValue") == Some(&"true") {
            req.use_previous_values.push((*key).to_owned());
        } else {
            let value = m.get("ParameterValue").copied().unwrap_or_default();
            req.parameters.insert((*key).to_owned(), value.to_owned());
        }
    }
    Ok(req)
}

/// A change set's id names it and its stack, so either can be passed alone.
fn change_set_id(account: &AccountId, name: &str, stack: &str) -> String {
    format!("arn:aws:cloudformation:us-east-1:{account}:changeSet/{name}/{stack}")
}

/// (stack, change set name) from `ChangeSetName` (a name or an id) and `StackName`.
pub(super) fn change_set_ref(input: &Input) -> Result<(String, String), AwsError> {
    let cs = input.required("ChangeSetName")?;
    if let Some(rest) = cs.strip_prefix("arn:") {
        let tail = rest.split_once(":changeSet/").map(|(_, t)| t);
        if let Some((name, stack)) = tail.and_then(|t| t.split_once('/')) {
            return Ok((stack.to_owned(), name.to_owned()));
        }
        return Err(AwsError::validation(format!(
            "ChangeSetName `{cs}` is not a change set id of this endpoint"
        )));
    }
    let stack = input.param("StackName").ok_or_else(|| {
        AwsError::validation("StackName: required when ChangeSetName is a name, not an id")
    })?;
    Ok((stack_name_of(stack).to_owned(), cs.to_owned()))
}

fn change_set(account: &AccountId, c: &ChangeSetInfo, full: bool) -> Value {
    let (status, reason) = if c.changes.is_empty() {
        ("FAILED", Some(Value::str(NO_CHANGES)))
    } else {
        ("CREATE_COMPLETE", None)
    };
    let execution = if c.changes.is_empty() {
        "UNAVAILABLE"
    } else {
        c.execution_status.as_str()
    };
    let created =
        time::OffsetDateTime::parse(&c.created, &time::format_description::well_known::Rfc3339)
            .ok();
    let changes = full.then(|| {
        Value::List(
            c.changes
                .iter()
                .map(|ch| {
                    Value::fields([
                        ("Type", Some(Value::str("Resource"))),
                        (
                            "ResourceChange",
                            Some(Value::fields([
                                ("Action", Some(Value::Str(ch.action.clone()))),
                                ("LogicalResourceId", Some(Value::Str(ch.logical_id.clone()))),
                                ("PhysicalResourceId", ch.physical_id.clone().map(Value::Str)),
                                ("ResourceType", Some(Value::Str(ch.resource_type.clone()))),
                                ("Replacement", ch.replacement.clone().map(Value::Str)),
                            ])),
                        ),
                    ])
                })
                .collect(),
        )
    });
    let parameters = full.then(|| {
        Value::List(
            c.parameters
                .iter()
                .map(|(k, v)| {
                    Value::fields([
                        ("ParameterKey", Some(Value::Str(k.clone()))),
                        ("ParameterValue", Some(Value::Str(v.clone()))),
                    ])
                })
                .collect(),
        )
    });
    Value::fields([
        ("ChangeSetName", Some(Value::Str(c.name.clone()))),
        (
            "ChangeSetId",
            Some(Value::Str(change_set_id(account, &c.name, &c.stack))),
        ),
        ("StackId", Some(Value::Str(stack_id(account, &c.stack)))),
        ("StackName", Some(Value::Str(c.stack.clone()))),
        ("Description", c.description.clone().map(Value::Str)),
        ("CreationTime", created.map(Value::Time)),
        ("ExecutionStatus", Some(Value::str(execution))),
        ("Status", Some(Value::str(status))),
        ("StatusReason", reason),
        ("Parameters", parameters),
        ("Changes", changes),
    ])
}

/// A REST error about a stack, in CloudFormation's words where its tools read them.
fn stack_error(e: ApiError, stack: &str) -> AwsError {
    if e.code() == "NotFound" {
        return AwsError::validation(format!("Stack with id {stack} does not exist"));
    }
    e.into()
}

fn change_set_error(e: ApiError, name: &str) -> AwsError {
    if e.code() == "NotFound" {
        return change_set_not_found(name);
    }
    e.into()
}

pub(super) fn change_set_not_found(name: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "ChangeSetNotFound",
            status: 404,
        },
        format!("ChangeSet [{name}] does not exist"),
    )
}
