//! STS `AssumeRole` over Spindle's roles: the same trust, session limits and audit as
//! `spindle assume`, answered with AWS-compatible temporary credentials (an `ASIA…` key whose
//! secret is sealed like every AWS key's, and a session token: an HMAC of the key id under a
//! key derived from the daemon's sealing key) that boto3 and the CLI use as they come.

use super::{AwsError, AwsResult, Input};
use crate::app::App;
use spindle_awsapi::{sigv4, Operation, Value};
use spindle_model::api::AssumeRole;
use spindle_model::RoleName;

pub async fn assume_role(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let arn = input.required("RoleArn")?;
    input.set_target(op, arn);
    let (account, role) = parse_role_arn(arn)?;
    let session = input.required("RoleSessionName")?;
    let duration = input
        .int("DurationSeconds")?
        .map(|d| {
            u32::try_from(d).map_err(|_| {
                AwsError::validation(format!("DurationSeconds: {d} is not a duration"))
            })
        })
        .transpose()?;
    for unsupported in [
        "Policy",
        "SerialNumber",
        "TokenCode",
        "ExternalId",
        "SourceIdentity",
    ] {
        if input.param(unsupported).is_some() {
            return Err(AwsError::validation(format!(
                "{unsupported}: not supported by Spindle (a session has its role's grants)"
            )));
        }
    }
    if input
        .params
        .iter()
        .any(|(k, _)| k.starts_with("PolicyArns.") || k.starts_with("Tags."))
    {
        return Err(AwsError::validation(
            "PolicyArns and Tags: not supported by Spindle (a session has its role's grants)",
        ));
    }
    let req = AssumeRole {
        role,
        account: Some(account.to_owned()),
        duration_seconds: duration,
        session_name: Some(session.to_owned()),
    };
    let mac_key = app
        .aws_secrets
        .as_ref()
        .ok_or_else(|| {
            AwsError::new(
                spindle_awsapi::ErrorKind::Internal,
                "no sealing key for AWS secrets",
            )
        })?
        .mac_key();
    let creds = crate::handlers::assume(app, &input.call, &req, true).await?;
    let key = creds.access_key_id.to_string();
    let expiration = creds
        .expiration
        .as_deref()
        .and_then(|e| {
            time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Ok(Value::fields([
        (
            "Credentials",
            Some(Value::fields([
                ("AccessKeyId", Some(Value::Str(key.clone()))),
                (
                    "SecretAccessKey",
                    Some(Value::Str(creds.secret_access_key.clone())),
                ),
                (
                    "SessionToken",
                    Some(Value::Str(sigv4::session_token_for(&key, mac_key))),
                ),
                ("Expiration", Some(Value::Time(expiration))),
            ])),
        ),
        (
            "AssumedRoleUser",
            Some(Value::fields([
                (
                    "AssumedRoleId",
                    Some(Value::Str(format!("{key}:{session}"))),
                ),
                (
                    "Arn",
                    Some(Value::Str(format!(
                        "arn:spindle:sts::{}:assumed-role/{}/{session}",
                        creds.account_id, req.role
                    ))),
                ),
            ])),
        ),
    ]))
}

/// `arn:aws:iam::ACCOUNT:role/[PATH/]NAME` (or Spindle's `arn:spindle:iam::…`, as `spindle
/// role list` shows it): the role's account (id or name) and name.
fn parse_role_arn(arn: &str) -> Result<(&str, RoleName), AwsError> {
    let bad = || {
        AwsError::validation(format!(
            "RoleArn: `{arn}` is not a role ARN (expected arn:aws:iam::ACCOUNT:role/NAME)"
        ))
    };
    let rest = arn
        .strip_prefix("arn:aws:iam::")
        .or_else(|| arn.strip_prefix("arn:spindle:iam::"))
        .ok_or_else(bad)?;
    let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
    let path = resource.strip_prefix("role/").ok_or_else(bad)?;
    let name = path.rsplit('/').next().unwrap_or(path);
    if account.is_empty() {
        return Err(bad());
    }
    let role = RoleName::parse(name)
        .map_err(|e| AwsError::validation(format!("RoleArn: role name `{name}`: {e}")))?;
    Ok((account, role))
}

#[cfg(test)]
mod tests {
    use super::parse_role_arn;

    /// (ARN, (account, role) or an error fragment)
    type Case = (
        &'static str,
        Result<(&'static str, &'static str), &'static str>,
    );

    #[test]
    fn role_arns_name_an_account_and_a_role() {
        let cases: &[Case] = &[
            (
                "arn:aws:iam::123456789012:role/deployer",
                Ok(("123456789012", "deployer")),
            ),
            (
                "arn:spindle:iam::prod:role/deployer",
                Ok(("prod", "deployer")),
            ),
            (
                "arn:aws:iam::prod:role/ci/deployer",
                Ok(("prod", "deployer")),
            ),
            ("arn:aws:iam::prod:user/deployer", Err("is not a role ARN")),
            ("arn:aws:iam:::role/deployer", Err("is not a role ARN")),
            ("deployer", Err("is not a role ARN")),
            ("arn:aws:iam::prod:role/", Err("role name ``")),
        ];
        for (arn, want) in cases {
            let got = parse_role_arn(arn)
                .map(|(a, r)| (a.to_owned(), r.to_string()))
                .map_err(|e| e.message);
            match (got, want) {
                (Ok((a, r)), Ok((wa, wr))) => assert_eq!((a.as_str(), r.as_str()), (*wa, *wr)),
                (Err(e), Err(w)) => assert!(e.contains(w), "{arn}: {e}"),
                (g, w) => panic!("{arn}: got {g:?}, want {w:?}"),
            }
        }
    }
}
