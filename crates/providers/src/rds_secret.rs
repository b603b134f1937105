//! A DB instance's side of Secrets Manager: with `ManageMasterUserPassword: true` the master
//! password is generated here and kept in a secret the instance owns (its value JSON
//! `{"username": …, "password": …}`, as AWS's is; `MasterUserSecret.SecretArn` is its ARN),
//! and `SecretTargetAttachment` with `TargetType: AWS::RDS::DBInstance` gets the instance's
//! connection details from [`SecretTargets`].
//!
//! The password leaves this module only as the SCRAM verifier the engine is given; the
//! secret's value is sealed by the secrets engine. The secret has no generation rules, so
//! `spindle secret rotate` refuses it rather than changing a password the engine doesn't
//! know. It outlives the instance: a final snapshot names it, since the snapshot's users
//! keep that password.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use spindle_model::AccountId;
use spindle_secrets::{NewSecret, Rules, Secrets, Select, ValueSource};
use spindle_stack::{ProviderError, ResourceCx};

use crate::rds::Rds;
use crate::secretsmanager::SecretTargets;
use crate::Kind;

/// The `TargetType` a DB instance answers to.
pub const DB_INSTANCE_TARGET: &str = "AWS::RDS::DBInstance";

/// Characters RDS never puts in a master password (AWS's rule for PostgreSQL, plus the
/// quote and backslash so the value needs no escaping in a shell or a connection string).
const EXCLUDED: &str = "/\"@ '\\";

fn invalid(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidRequest(format!("{}: {message}", Kind::DbInstance.type_name()))
}

/// The secret's name: `rds-db-` and a UUID-shaped digest of the operation's token, so a
/// create repeated after a crash finds the secret it made (AWS names it `rds!db-UUID`; `!`
/// is not a character Secrets Manager lets anyone else use).
fn secret_name(token: &str) -> String {
    let d = hex::encode(Sha256::digest(token.as_bytes()));
    format!(
        "rds-db-{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

/// The password in a managed secret's value.
fn password_of(value: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    v.get("password")?.as_str().map(str::to_string)
}

impl Rds {
    /// Where managed master passwords are kept; without it `ManageMasterUserPassword` is
    /// refused by name.
    pub fn set_secrets(&self, secrets: Arc<Secrets>) {
        let _ = self.secrets.set(secrets);
    }

    /// Makes (or, for a create repeated with the same token, finds) DB instance `id`'s
    /// master secret; returns its ARN and the password.
    pub(crate) fn master_secret(
        &self,
        cx: &ResourceCx<'_>,
        account: &AccountId,
        id: &str,
        user: &str,
    ) -> Result<(String, String), ProviderError> {
        let secrets = self.secrets.get().ok_or_else(|| {
            invalid("ManageMasterUserPassword: Secrets Manager is off in this daemon (it has no sealing key); give MasterUserPassword")
        })?;
        let token = format!("{}/master-user-secret", crate::scoped_token(cx));
        let rules = Rules {
            exclude_characters: EXCLUDED.into(),
            ..Rules::default()
        };
        let fresh = rules
            .generate()
            .map_err(|e| ProviderError::Failed(e.to_string()))?;
        let value = serde_json::json!({ "username": user, "password": fresh }).to_string();
        let mut tags = BTreeMap::new();
        tags.insert(
            "aws:rds:primaryDBInstanceArn".to_string(),
            format!(
                "arn:aws:rds:{}:{}:db:{id}",
                cx.context.region, cx.context.account_id
            ),
        );
        let info = secrets
            .create(
                account,
                NewSecret {
                    name: secret_name(&token),
                    description: format!("The master user's password of DB instance {id}"),
                    kms_key_id: None,
                    tags,
                    value: ValueSource::Given(value),
                    token: Some(token),
                },
            )
            .map_err(|e| ProviderError::Failed(e.to_string()))?;
        let (_, current) = secrets
            .get_value(account, &info.arn, &Select::default())
            .map_err(|e| ProviderError::Failed(e.to_string()))?;
        let password = password_of(&current).ok_or_else(|| {
            ProviderError::Failed(format!("secret {} holds no JSON key `password`", info.name))
        })?;
        Ok((info.arn, password))
    }

    /// Removes a master secret made for a launch that then failed.
    pub(crate) fn forget_master_secret(&self, account: &AccountId, arn: &str) {
        if let Some(s) = self.secrets.get() {
            let _ = s.delete(account, arn);
        }
    }
}

impl SecretTargets for Rds {
    fn fields(
        &self,
        account: &AccountId,
        target_type: &str,
        id: &str,
    ) -> Option<Result<BTreeMap<String, serde_json::Value>, String>> {
        if target_type != DB_INSTANCE_TARGET {
            return None;
        }
        Some(
            self.connection_details(account.as_str(), &id.to_ascii_lowercase())
                .ok_or_else(|| format!("no DB instance `{id}` in this account")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_name_is_stable_per_token_and_a_valid_secret_name() {
        let a = secret_name("111111111111/us-east-1/t1/master-user-secret");
        assert_eq!(
            a,
            secret_name("111111111111/us-east-1/t1/master-user-secret")
        );
        assert_ne!(
            a,
            secret_name("111111111111/us-east-1/t2/master-user-secret")
        );
        assert!(
            a.starts_with("rds-db-") && a.len() == "rds-db-".len() + 36,
            "{a}"
        );
        spindle_secrets::check_name(&a).unwrap();
    }

    #[test]
    fn the_password_is_read_from_the_values_json() {
        assert_eq!(
            password_of(r#"{"username":"app","password":"p4ss"}"#).as_deref(),
            Some("p4ss")
        );
        assert_eq!(password_of(r#"{"username":"app"}"#), None);
        assert_eq!(password_of("not json"), None);
    }
}
