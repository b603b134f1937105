//! Developer box calls (`/v1/accounts/{account}/devboxes`).

use super::{method, seg, Client, ClientError};
use spindle_model::api::{ExecRequest, ExecResult};
use spindle_model::devbox::{DevboxAttach, DevboxInfo, DevboxResult, PutDevbox};

fn path(account: &str, name: &str, tail: &str) -> String {
    format!("/v1/accounts/{}/devboxes/{}{tail}", seg(account), seg(name))
}

impl Client {
    pub fn list_devboxes(&self, account: &str) -> Result<Vec<DevboxInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/devboxes", seg(account)))
    }

    pub fn describe_devbox(&self, account: &str, name: &str) -> Result<DevboxInfo, ClientError> {
        self.get(&path(account, name, ""))
    }

    pub fn put_devbox(
        &self,
        account: &str,
        name: &str,
        req: &PutDevbox,
    ) -> Result<DevboxResult, ClientError> {
        self.call(method::PUT, &path(account, name, ""), Some(req))
    }

    pub fn delete_devbox(&self, account: &str, name: &str) -> Result<DevboxInfo, ClientError> {
        self.call(method::DELETE, &path(account, name, ""), None::<&()>)
    }

    pub fn exec_devbox(
        &self,
        account: &str,
        name: &str,
        req: &ExecRequest,
    ) -> Result<ExecResult, ClientError> {
        self.call(method::POST, &path(account, name, "/exec"), Some(req))
    }

    pub fn attach_devbox(&self, account: &str, name: &str) -> Result<DevboxAttach, ClientError> {
        self.call(method::POST, &path(account, name, "/attach"), None::<&()>)
    }
}
