//! SSH bastion calls (`/v1/accounts/{account}/ssh`).

use super::{method, seg, Client, ClientError};
use spindle_model::ssh::{
    AddSshKeyRequest, BastionInfo, SignSshCertRequest, SignSshCertResponse, SshKey, SshSession,
    SshSettings,
};

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

    pub fn list_ssh_sessions(&self, account: &str) -> Result<Vec<SshSession>, ClientError> {
        self.get(&format!("/v1/accounts/{}/ssh/sessions", seg(account)))
    }

    pub fn kill_ssh_session(&self, account: &str, id: &str) -> Result<SshSession, ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/ssh/sessions/{}", seg(account), seg(id)),
            None::<&()>,
        )
    }

    pub fn list_ssh_keys(&self, account: &str) -> Result<Vec<SshKey>, ClientError> {
        self.get(&format!("/v1/accounts/{}/ssh/keys", seg(account)))
    }

    pub fn add_ssh_key(&self, account: &str, public_key: &str) -> Result<SshKey, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/ssh/keys", seg(account)),
            Some(&AddSshKeyRequest {
                public_key: public_key.to_string(),
            }),
        )
    }

    pub fn remove_ssh_key(&self, account: &str, id: &str) -> Result<SshKey, ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/ssh/keys/{}", seg(account), seg(id)),
            None::<&()>,
        )
    }

    pub fn put_bastion_settings(
        &self,
        account: &str,
        settings: &SshSettings,
    ) -> Result<SshSettings, ClientError> {
        self.call(
            method::PUT,
            &format!("/v1/accounts/{}/ssh/settings", seg(account)),
            Some(settings),
        )
    }
}
