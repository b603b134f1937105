//! Secrets Manager calls (`/v1/accounts/{account}/secrets`) and the stack delete that may
//! lose data.

use super::{method, seg, Client, ClientError};
use spindle_model::api::StackOperationResult;
use spindle_model::secret::{PutSecretValue, SecretSummary, SecretValue, SecretVersionResult};

impl Client {
    pub fn list_secrets(&self, account: &str) -> Result<Vec<SecretSummary>, ClientError> {
        self.get(&format!("/v1/accounts/{}/secrets", seg(account)))
    }

    /// A secret's metadata and versions (no value); `id` is its name or ARN.
    pub fn describe_secret(&self, account: &str, id: &str) -> Result<SecretSummary, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/secrets/{}",
            seg(account),
            seg(id)
        ))
    }

    /// One version's value: `AWSCURRENT` unless a version id or stage is given.
    pub fn get_secret_value(
        &self,
        account: &str,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, ClientError> {
        let mut q = Vec::new();
        if let Some(v) = version_id {
            q.push(format!("version_id={}", seg(v)));
        }
        if let Some(s) = stage {
            q.push(format!("stage={}", seg(s)));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get(&format!(
            "/v1/accounts/{}/secrets/{}/value{q}",
            seg(account),
            seg(id)
        ))
    }

    pub fn put_secret_value(
        &self,
        account: &str,
        id: &str,
        req: &PutSecretValue,
    ) -> Result<SecretVersionResult, ClientError> {
        self.call(
            method::PUT,
            &format!("/v1/accounts/{}/secrets/{}/value", seg(account), seg(id)),
            Some(req),
        )
    }

    pub fn rotate_secret(
        &self,
        account: &str,
        id: &str,
    ) -> Result<SecretVersionResult, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/secrets/{}/rotate", seg(account), seg(id)),
            None::<&()>,
        )
    }

    /// Deletes a stack; with `allow_data_loss`, even if that deletes stateful resources.
    pub fn delete_stack_allowing(
        &self,
        account: &str,
        stack: &str,
        allow_data_loss: bool,
    ) -> Result<StackOperationResult, ClientError> {
        let q = if allow_data_loss {
            "?allow_data_loss=true"
        } else {
            ""
        };
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/stacks/{}{q}", seg(account), seg(stack)),
            None::<&()>,
        )
    }
}
