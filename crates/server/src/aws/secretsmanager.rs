//! Secrets Manager operations over the daemon's secrets (the ones `spindle secret` and
//! `AWS::SecretsManager::Secret` use). JSON 1.1 protocol. Only `GetSecretValue` answers with
//! a value; its action is `secret:GetValue`, as for `spindle secret get --value`.

use super::{AwsError, AwsResult, Input};
use crate::app::App;
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_secrets::{NewSecret, SecretInfo, SecretsError, Select, ValueSource};

pub fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    let sm = app.stacks.secrets.as_ref().ok_or_else(|| {
        AwsError::new(
            ErrorKind::Internal,
            "Secrets Manager is off: its sealing key or state is unreadable (see the daemon's log)",
        )
    })?;
    let s = sm.secrets();
    match op.name {
        "GetSecretValue" => {
            let id = input.json_required("SecretId")?;
            input.set_target(op, id);
            let select = Select {
                version_id: input.json_str("VersionId")?.map(str::to_owned),
                stage: input.json_str("VersionStage")?.map(str::to_owned),
            };
            let info = s.describe(&account, id).map_err(err)?;
            let (v, value) = s.get_value(&account, id, &select).map_err(err)?;
            Ok(Value::fields([
                ("ARN", Some(Value::Str(info.arn))),
                ("Name", Some(Value::Str(info.name))),
                ("VersionId", Some(Value::Str(v.id))),
                ("SecretString", Some(Value::Str(value))),
                ("VersionStages", Some(strs(v.stages))),
                ("CreatedDate", time(v.created)),
            ]))
        }
        "DescribeSecret" => {
            let id = input.json_required("SecretId")?;
            input.set_target(op, id);
            Ok(describe(s.describe(&account, id).map_err(err)?))
        }
        "ListSecrets" => {
            input.set_target(op, "*");
            let list = s.list(&account).into_iter().map(describe).collect();
            Ok(Value::fields([("SecretList", Some(Value::List(list)))]))
        }
        "CreateSecret" => {
            let name = input.json_required("Name")?;
            input.set_target(op, name);
            let value = input.json_required("SecretString")?;
            let info = s
                .create(
                    &account,
                    NewSecret {
                        name: name.to_owned(),
                        description: input.json_str("Description")?.unwrap_or("").to_owned(),
                        kms_key_id: input.json_str("KmsKeyId")?.map(str::to_owned),
                        tags: Default::default(),
                        value: ValueSource::Given(value.to_owned()),
                        token: None,
                    },
                )
                .map_err(err)?;
            let version = info
                .versions
                .last()
                .map(|v| v.id.clone())
                .unwrap_or_default();
            Ok(Value::fields([
                ("ARN", Some(Value::Str(info.arn))),
                ("Name", Some(Value::Str(info.name))),
                ("VersionId", Some(Value::Str(version))),
            ]))
        }
        "PutSecretValue" => {
            let id = input.json_required("SecretId")?;
            input.set_target(op, id);
            let value = input.json_required("SecretString")?;
            let version = s.put_value(&account, id, value).map_err(err)?;
            let info = s.describe(&account, id).map_err(err)?;
            Ok(Value::fields([
                ("ARN", Some(Value::Str(info.arn))),
                ("Name", Some(Value::Str(info.name))),
                ("VersionId", Some(Value::Str(version))),
                (
                    "VersionStages",
                    Some(strs(vec![spindle_secrets::CURRENT.into()])),
                ),
            ]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("secretsmanager:{} is not implemented by Spindle", op.name),
        )),
    }
}

fn strs(v: Vec<String>) -> Value {
    Value::List(v.into_iter().map(Value::Str).collect())
}

fn time(secs: i64) -> Option<Value> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .map(Value::Time)
}

fn describe(i: SecretInfo) -> Value {
    let stages = Value::Struct(
        i.versions
            .iter()
            .map(|v| (v.id.clone(), strs(v.stages.clone())))
            .collect(),
    );
    Value::fields([
        ("ARN", Some(Value::Str(i.arn))),
        ("Name", Some(Value::Str(i.name))),
        ("Description", Some(Value::Str(i.description))),
        ("KmsKeyId", i.kms_key_id.map(Value::Str)),
        ("CreatedDate", time(i.created)),
        ("VersionIdsToStages", Some(stages)),
    ])
}

fn err(e: SecretsError) -> AwsError {
    let (code, status) = match &e {
        SecretsError::NotFound(_) | SecretsError::NoVersion { .. } => {
            ("ResourceNotFoundException", 400)
        }
        SecretsError::Exists(_) => ("ResourceExistsException", 400),
        SecretsError::Backend(_) | SecretsError::Unseal { .. } => {
            tracing::error!(error = %e, "secrets");
            return AwsError::new(ErrorKind::Internal, "the secrets store failed");
        }
        _ => ("InvalidParameterException", 400),
    };
    AwsError::new(ErrorKind::Service { code, status }, e.to_string())
}
