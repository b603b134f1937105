//! SSH bastion calls (`/v1/accounts/{account}/ssh`).

use super::{method, seg, Client, ClientError};
use spindle_model::ssh::{BastionInfo, SignSshCertRequest, SignSshCertResponse};

impl Client {
    pub fn describe_bastion(&self, account: &str) -> Result<BastionInfo, ClientError> {
        self.get(&format!("/v1/accounts/{}/ssh", seg(account)))
    }

    pub fn sign_ssh_certificate(
        &self,
        account: &str,
        req: &SignSshCertRequest,
    ) -> Result<SignSshCertResponse, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/ssh/certificates", seg(account)),
            Some(req),
        )
    }
}
