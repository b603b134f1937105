//! SSM Parameter Store operations over Spindle's parameter store (the one `spindle param` and
//! `AWS::SSM::Parameter` use). JSON 1.1 protocol.

use super::{AwsError, AwsResult, Input};
use crate::app::{now, App};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::api::{Param, PARAM_TYPES};
use spindle_model::ParamName;

/// The most parameters one `GetParametersByPath` page returns (AWS's maximum).
const PAGE: usize = 10;

pub fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    match op.name {
        "GetParameter" => {
            let name = input.json_required("Name")?;
            input.set_target(op, name);
            let decrypt = input.json_bool("WithDecryption")?;
            let p = app
                .store
                .get_param(&account, &param_name(name)?)?
                .ok_or_else(|| not_found(name))?;
            Ok(Value::fields([(
                "Parameter",
                Some(parameter(&account, p, decrypt)),
            )]))
        }
        "GetParameters" => {
            let names = string_list(input, "Names")?;
            input.set_target(op, &names.join(","));
            let decrypt = input.json_bool("WithDecryption")?;
            let (mut found, mut invalid) = (Vec::new(), Vec::new());
            for n in names {
                let p = match ParamName::parse(&n) {
                    Ok(name) => app.store.get_param(&account, &name)?,
                    Err(_) => None,
                };
                match p {
                    Some(p) => found.push(parameter(&account, p, decrypt)),
                    None => invalid.push(Value::Str(n)),
                }
            }
            Ok(Value::fields([
                ("Parameters", Some(Value::List(found))),
                ("InvalidParameters", Some(Value::List(invalid))),
            ]))
        }
        "GetParametersByPath" => {
            let path = input.json_required("Path")?;
            input.set_target(op, path);
            if !path.starts_with('/') {
                return Err(AwsError::validation(format!(
                    "Path `{path}`: a hierarchy path must begin with `/`"
                )));
            }
            let recursive = input.json_bool("Recursive")?;
            let decrypt = input.json_bool("WithDecryption")?;
            let page = match input.json.get("MaxResults") {
                None | Some(serde_json::Value::Null) => PAGE,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=PAGE as u64).contains(n))
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        AwsError::validation(format!("MaxResults: expected 1-{PAGE}, got {v}"))
                    })?,
            };
            let start = match input.json_str("NextToken")? {
                None => 0,
                Some(t) => t
                    .parse::<usize>()
                    .map_err(|_| AwsError::validation(format!("NextToken `{t}` is not valid")))?,
            };
            let prefix = if path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            };
            let all: Vec<Param> = app
                .store
                .list_params(&account, &prefix)?
                .into_iter()
                .filter(|p| recursive || !p.name.as_str()[prefix.len()..].contains('/'))
                .collect();
            let next = (start + page < all.len()).then(|| Value::Str((start + page).to_string()));
            let items = all
                .into_iter()
                .skip(start)
                .take(page)
                .map(|p| parameter(&account, p, decrypt))
                .collect();
            Ok(Value::fields([
                ("Parameters", Some(Value::List(items))),
                ("NextToken", next),
            ]))
        }
        "PutParameter" => {
            let name = input.json_required("Name")?;
            input.set_target(op, name);
            let n = param_name(name)?;
            let value = input.json_required("Value")?;
            let overwrite = input.json_bool("Overwrite")?;
            let existing = app.store.get_param(&account, &n)?;
            let kind = match (input.json_str("Type")?, &existing) {
                (Some(t), _) => t.to_owned(),
                (None, Some(p)) => p.kind.clone(),
                (None, None) => "String".to_owned(),
            };
            if !PARAM_TYPES.contains(&kind.as_str()) {
                return Err(AwsError::validation(format!(
                    "Type: expected one of {}, got `{kind}`",
                    PARAM_TYPES.join(", ")
                )));
            }
            if value.is_empty() || value.len() > 8192 {
                return Err(AwsError::validation(format!(
                    "Value: must be 1-8192 bytes, got {}",
                    value.len()
                )));
            }
            let description = input.json_str("Description")?.unwrap_or_default();
            let version = app
                .store
                .put_param(
                    &account,
                    &n,
                    &kind,
                    value,
                    description,
                    overwrite,
                    None,
                    now(),
                )
                .map_err(|e| match e {
                    spindle_store::StoreError::Conflict { .. } => AwsError::new(
                        ErrorKind::Service {
                            code: "ParameterAlreadyExists",
                            status: 400,
                        },
                        format!("the parameter `{name}` already exists; pass Overwrite to replace its value"),
                    ),
                    other => other.into(),
                })?;
            Ok(Value::fields([
                ("Version", Some(Value::Int(version))),
                ("Tier", Some(Value::str("Standard"))),
            ]))
        }
        "DeleteParameter" => {
            let name = input.json_required("Name")?;
            input.set_target(op, name);
            app.store
                .delete_param(&account, &param_name(name)?)
                .map_err(|e| match e {
                    spindle_store::StoreError::NotFound { .. } => not_found(name),
                    other => other.into(),
                })?;
            Ok(Value::Struct(Vec::new()))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("ssm:{} is not implemented by Spindle", op.name),
        )),
    }
}

fn param_name(name: &str) -> Result<ParamName, AwsError> {
    ParamName::parse(name).map_err(|e| AwsError::validation(format!("Name: {e}")))
}

fn not_found(name: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "ParameterNotFound",
            status: 400,
        },
        format!("parameter `{name}` not found"),
    )
}

fn string_list(input: &Input, name: &str) -> Result<Vec<String>, AwsError> {
    let bad = || AwsError::validation(format!("{name}: expected a list of strings"));
    match input.json.get(name) {
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

fn parameter(account: &spindle_model::AccountId, p: Param, decrypt: bool) -> Value {
    let value = if p.kind == "SecureString" && !decrypt {
        "****".to_owned()
    } else {
        p.value
    };
    let modified = time::OffsetDateTime::parse(
        &p.last_modified,
        &time::format_description::well_known::Rfc3339,
    )
    .ok();
    let name = p.name.to_string();
    let arn_name = name.trim_start_matches('/');
    Value::fields([
        ("Name", Some(Value::Str(name.clone()))),
        ("Type", Some(Value::Str(p.kind))),
        ("Value", Some(Value::Str(value))),
        ("Version", Some(Value::Int(p.version))),
        ("LastModifiedDate", modified.map(Value::Time)),
        (
            "ARN",
            Some(Value::Str(format!(
                "arn:aws:ssm:us-east-1:{account}:parameter/{arn_name}"
            ))),
        ),
        ("DataType", Some(Value::str("text"))),
    ])
}
