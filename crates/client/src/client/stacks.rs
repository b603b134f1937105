//! Stack settings, named change sets and exports.

use super::{method, seg, Client, ClientError};
use spindle_model::api::*;

fn stack_path(account: &str, stack: &str) -> String {
    format!("/v1/accounts/{}/stacks/{}", seg(account), seg(stack))
}

impl Client {
    pub fn update_termination_protection(
        &self,
        account: &str,
        stack: &str,
        enabled: bool,
    ) -> Result<StackDetail, ClientError> {
        self.call(
            method::POST,
            &format!("{}/termination-protection", stack_path(account, stack)),
            Some(&UpdateTerminationProtection { enabled }),
        )
    }

    pub fn set_stack_policy(
        &self,
        account: &str,
        stack: &str,
        policy: &str,
    ) -> Result<StackDetail, ClientError> {
        self.call(
            method::PUT,
            &format!("{}/policy", stack_path(account, stack)),
            Some(&SetStackPolicy {
                stack_policy: policy.to_owned(),
            }),
        )
    }

    pub fn create_change_set(
        &self,
        account: &str,
        stack: &str,
        name: &str,
        req: &CreateChangeSet,
    ) -> Result<ChangeSetInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/change-sets/{}", stack_path(account, stack), seg(name)),
            Some(req),
        )
    }

    pub fn describe_change_set(
        &self,
        account: &str,
        stack: &str,
        name: &str,
    ) -> Result<ChangeSetInfo, ClientError> {
        self.get(&format!(
            "{}/change-sets/{}",
            stack_path(account, stack),
            seg(name)
        ))
    }

    pub fn list_change_sets(
        &self,
        account: &str,
        stack: &str,
    ) -> Result<Vec<ChangeSetInfo>, ClientError> {
        self.get(&format!("{}/change-sets", stack_path(account, stack)))
    }

    pub fn delete_change_set(
        &self,
        account: &str,
        stack: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("{}/change-sets/{}", stack_path(account, stack), seg(name)),
            None::<&()>,
        )
    }

    /// Executes a named change set and waits for a stable status.
    pub fn execute_change_set(
        &self,
        account: &str,
        stack: &str,
        name: &str,
        req: &ExecuteChangeSet,
    ) -> Result<DeployResult, ClientError> {
        self.call(
            method::POST,
            &format!(
                "{}/change-sets/{}/execute",
                stack_path(account, stack),
                seg(name)
            ),
            Some(req),
        )
    }

    pub fn list_exports(&self, account: &str) -> Result<Vec<ExportInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/exports", seg(account)))
    }
}
