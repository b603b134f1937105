use serde::de::DeserializeOwned;
use serde::Serialize;
use spindle_auth::{derive_signing_key, sign, RequestParts, SigningKey};
use spindle_model::api::*;
use spindle_model::{AccessKeyId, ParamName};
use std::time::Duration;

mod stacks;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7420";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Spindle daemon at {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },
    #[error("{}", body.message)]
    Api { status: u16, body: ErrorDetail },
    #[error("unexpected response from {endpoint} (HTTP {status}): {detail}")]
    Decode {
        endpoint: String,
        status: u16,
        detail: String,
    },
    #[error("this command needs credentials: no access key in the selected profile")]
    NoCredentials,
}

impl ClientError {
    /// The API's error code, if the daemon answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Api { body, .. } => body.hint.clone(),
            Self::Connect { .. } => Some(
                "start it with `spindle server` (or `spindle up DIR`), or pass --endpoint".into(),
            ),
            Self::NoCredentials => Some(
                "pass --profile NAME, or run `spindle up` once to create the admin credential"
                    .into(),
            ),
            Self::Decode { .. } => {
                Some("is the endpoint a Spindle daemon of the same version?".into())
            }
        }
    }
}

/// A client bound to one endpoint and, usually, one credential.
pub struct Client {
    endpoint: String,
    agent: ureq::Agent,
    credential: Option<(AccessKeyId, SigningKey)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for `endpoint`. With a secret, derives the signing key now (tens of
    /// milliseconds, once per process).
    pub fn new(endpoint: &str, credential: Option<(AccessKeyId, &str)>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(Duration::from_secs(300))
            .build();
        let credential = credential.map(|(id, secret)| {
            let key = derive_signing_key(&id, secret);
            (id, key)
        });
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            agent,
            credential,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn access_key_id(&self) -> Option<&AccessKeyId> {
        self.credential.as_ref().map(|c| &c.0)
    }

    /// The API error an error response's body holds.
    pub(crate) fn error_body(&self, status: u16, bytes: &[u8]) -> Result<ErrorBody, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status,
            detail: format!(
                "{e}: {}",
                String::from_utf8_lossy(bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        })
    }

    /// A request to `path_query`, signed over `body` when `signed`.
    pub(crate) fn request(
        &self,
        method: &str,
        path_query: &str,
        body: &[u8],
        signed: bool,
    ) -> Result<ureq::Request, ClientError> {
        let url = format!("{}{}", self.endpoint, path_query);
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let mut req = self
            .agent
            .request(method, &url)
            .set("content-type", "application/json");
        if signed {
            let (id, key) = self.credential.as_ref().ok_or(ClientError::NoCredentials)?;
            let nonce = hex::encode(rand::random::<[u8; 16]>());
            let auth = sign(
                id,
                key,
                &RequestParts {
                    method,
                    path,
                    query,
                    body,
                },
                time::OffsetDateTime::now_utc(),
                &nonce,
            );
            req = req.set("authorization", &auth);
        }
        Ok(req)
    }

    /// Sends one request; `path_query` is the path and optional query, already encoded.
    pub(crate) fn raw(
        &self,
        method: &str,
        path_query: &str,
        body: &[u8],
        signed: bool,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        // One retry, for a request signed in the second before the daemon (re)started.
        for attempt in 0..2 {
            let req = self.request(method, path_query, body, signed)?;
            let resp = match req.send_bytes(body) {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(ClientError::Connect {
                        endpoint: self.endpoint.clone(),
                        detail: t.to_string(),
                    })
                }
            };
            let status = resp.status();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).map_err(|e| {
                ClientError::Connect {
                    endpoint: self.endpoint.clone(),
                    detail: e.to_string(),
                }
            })?;
            if status >= 400 {
                let body = self.error_body(status, &bytes)?;
                if attempt == 0 && body.error.code == "SignatureBeforeBoot" {
                    std::thread::sleep(Duration::from_millis(1100));
                    continue;
                }
                return Err(ClientError::Api {
                    status,
                    body: body.error,
                });
            }
            return Ok((status, bytes));
        }
        unreachable!("the loop returns on its second pass")
    }

    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path_query: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("API bodies serialise"))
            .unwrap_or_default();
        let (status, out) = self.raw(method, path_query, &bytes, true)?;
        let out = if out.is_empty() {
            b"null".to_vec()
        } else {
            out
        };
        serde_json::from_slice(&out).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status,
            detail: e.to_string(),
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path_query: &str) -> Result<T, ClientError> {
        self.call(method::GET, path_query, None::<&()>)
    }

    /// `/healthz`, unauthenticated.
    pub fn health(&self) -> Result<Health, ClientError> {
        let (status, bytes) = self.raw("GET", "/healthz", b"", false)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status,
            detail: e.to_string(),
        })
    }

    /// A signed GET of any API path, returning the JSON as is (for `spindle api`).
    pub fn get_json(&self, path_query: &str) -> Result<serde_json::Value, ClientError> {
        self.get(path_query)
    }

    pub fn whoami(&self) -> Result<CallerIdentity, ClientError> {
        self.get("/v1/whoami")
    }

    pub fn list_accounts(&self) -> Result<Vec<Account>, ClientError> {
        self.get("/v1/accounts")
    }

    pub fn create_account(&self, req: &CreateAccount) -> Result<Account, ClientError> {
        self.call(method::POST, "/v1/accounts", Some(req))
    }

    pub fn get_account(&self, account: &str) -> Result<Account, ClientError> {
        self.get(&format!("/v1/accounts/{}", seg(account)))
    }

    pub fn delete_account(&self, account: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}", seg(account)),
            None::<&()>,
        )
    }

    pub fn list_keys(&self, account: &str) -> Result<Vec<AccessKey>, ClientError> {
        self.get(&format!("/v1/accounts/{}/keys", seg(account)))
    }

    pub fn create_key(&self, account: &str, req: &CreateKey) -> Result<Credentials, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/keys", seg(account)),
            Some(req),
        )
    }

    pub fn revoke_key(&self, account: &str, key: &AccessKeyId) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/keys/{}", seg(account), seg(key.as_str())),
            None::<&()>,
        )
    }

    pub fn list_roles(&self, account: &str) -> Result<Vec<Role>, ClientError> {
        self.get(&format!("/v1/accounts/{}/roles", seg(account)))
    }

    pub fn create_role(&self, account: &str, req: &CreateRole) -> Result<Role, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/roles", seg(account)),
            Some(req),
        )
    }

    pub fn get_role(&self, account: &str, name: &str) -> Result<Role, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/roles/{}",
            seg(account),
            seg(name)
        ))
    }

    pub fn delete_role(&self, account: &str, name: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/roles/{}", seg(account), seg(name)),
            None::<&()>,
        )
    }

    pub fn assume_role(&self, req: &AssumeRole) -> Result<Credentials, ClientError> {
        self.call(method::POST, "/v1/assume-role", Some(req))
    }

    pub fn list_deny_rules(&self, account: &str) -> Result<Vec<DenyRule>, ClientError> {
        self.get(&format!("/v1/accounts/{}/deny-rules", seg(account)))
    }

    pub fn add_deny_rule(&self, account: &str, req: &AddDenyRule) -> Result<DenyRule, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/deny-rules", seg(account)),
            Some(req),
        )
    }

    pub fn remove_deny_rule(&self, account: &str, id: i64) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/deny-rules/{id}", seg(account)),
            None::<&()>,
        )
    }

    /// Audit records; `account` narrows to one account, `since` is RFC 3339.
    pub fn audit(
        &self,
        account: Option<&str>,
        since: Option<&str>,
        after_seq: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEvent>, ClientError> {
        let mut q = Vec::new();
        if let Some(a) = account {
            q.push(format!("account={}", seg(a)));
        }
        if let Some(s) = since {
            q.push(format!("since={}", seg(s)));
        }
        if let Some(s) = after_seq {
            q.push(format!("after={s}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let qs = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get(&format!("/v1/audit{qs}"))
    }

    pub fn list_params(&self, account: &str, prefix: &str) -> Result<Vec<Param>, ClientError> {
        let q = if prefix.is_empty() {
            String::new()
        } else {
            format!("?prefix={}", seg(prefix))
        };
        self.get(&format!("/v1/accounts/{}/params{q}", seg(account)))
    }

    pub fn get_param(
        &self,
        account: &str,
        name: &ParamName,
        decrypt: bool,
    ) -> Result<Param, ClientError> {
        let q = if decrypt { "?decrypt=true" } else { "" };
        self.get(&format!(
            "/v1/accounts/{}/params/{}{q}",
            seg(account),
            seg(name.as_str())
        ))
    }

    pub fn put_param(
        &self,
        account: &str,
        name: &ParamName,
        req: &PutParam,
    ) -> Result<Param, ClientError> {
        self.call(
            method::PUT,
            &format!(
                "/v1/accounts/{}/params/{}",
                seg(account),
                seg(name.as_str())
            ),
            Some(req),
        )
    }

    pub fn delete_param(&self, account: &str, name: &ParamName) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!(
                "/v1/accounts/{}/params/{}",
                seg(account),
                seg(name.as_str())
            ),
            None::<&()>,
        )
    }
}

impl Client {
    pub fn validate_template(
        &self,
        account: &str,
        req: &TemplateRequest,
    ) -> Result<TemplateReport, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/templates/validate", seg(account)),
            Some(req),
        )
    }

    pub fn list_stacks(&self, account: &str) -> Result<Vec<StackSummary>, ClientError> {
        self.get(&format!("/v1/accounts/{}/stacks", seg(account)))
    }

    pub fn describe_stack(&self, account: &str, stack: &str) -> Result<StackDetail, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/stacks/{}",
            seg(account),
            seg(stack)
        ))
    }

    /// Previews (`req.preview`) or executes a change set; executing waits for a stable status.
    pub fn deploy_stack(
        &self,
        account: &str,
        stack: &str,
        req: &DeployStack,
    ) -> Result<DeployResult, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/stacks/{}", seg(account), seg(stack)),
            Some(req),
        )
    }

    pub fn stack_events(
        &self,
        account: &str,
        stack: &str,
    ) -> Result<Vec<StackEventInfo>, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/stacks/{}/events",
            seg(account),
            seg(stack)
        ))
    }

    pub fn stack_drift(
        &self,
        account: &str,
        stack: &str,
    ) -> Result<Vec<ResourceDriftInfo>, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/stacks/{}/drift",
            seg(account),
            seg(stack)
        ))
    }

    /// The stack's template as submitted, or one of its change sets' (`change_set`).
    pub fn stack_template(
        &self,
        account: &str,
        stack: &str,
        change_set: Option<&str>,
    ) -> Result<StackTemplate, ClientError> {
        let query = change_set
            .map(|c| format!("?change_set={}", seg(c)))
            .unwrap_or_default();
        self.get(&format!(
            "/v1/accounts/{}/stacks/{}/template{query}",
            seg(account),
            seg(stack)
        ))
    }

    pub fn continue_rollback(
        &self,
        account: &str,
        stack: &str,
        req: &ContinueRollback,
    ) -> Result<StackOperationResult, ClientError> {
        self.call(
            method::POST,
            &format!(
                "/v1/accounts/{}/stacks/{}/continue-rollback",
                seg(account),
                seg(stack)
            ),
            Some(req),
        )
    }

    pub fn import_image(&self, account: &str, req: &ImportImage) -> Result<ImageInfo, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/images", seg(account)),
            Some(req),
        )
    }

    pub fn list_images(&self, account: &str) -> Result<Vec<ImageInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/images", seg(account)))
    }

    pub fn describe_image(&self, account: &str, image: &str) -> Result<ImageDetail, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/images/{}",
            seg(account),
            seg(image)
        ))
    }

    pub fn tag_image(
        &self,
        account: &str,
        image: &str,
        tag: &str,
    ) -> Result<ImageInfo, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/images/{}/tags", seg(account), seg(image)),
            Some(&TagImage { tag: tag.into() }),
        )
    }

    pub fn remove_image(&self, account: &str, image: &str) -> Result<ImageInfo, ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/images/{}", seg(account), seg(image)),
            None::<&()>,
        )
    }

    pub fn export_image(
        &self,
        account: &str,
        image: &str,
        req: &ExportImage,
    ) -> Result<ImageInfo, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/images/{}/export", seg(account), seg(image)),
            Some(req),
        )
    }

    pub fn list_load_balancers(
        &self,
        account: &str,
    ) -> Result<Vec<spindle_model::lb::LoadBalancerInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/load-balancers", seg(account)))
    }

    /// `part` is `""` (the load balancer), `"/targets"` or `"/metrics"`.
    pub fn load_balancer<T: serde::de::DeserializeOwned>(
        &self,
        account: &str,
        name: &str,
        part: &str,
    ) -> Result<T, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/load-balancers/{}{part}",
            seg(account),
            seg(name)
        ))
    }

    pub fn list_instances(&self, account: &str) -> Result<Vec<InstanceInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/instances", seg(account)))
    }

    pub fn describe_instance(&self, account: &str, id: &str) -> Result<InstanceInfo, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/instances/{}",
            seg(account),
            seg(id)
        ))
    }

    pub fn instance_console(&self, account: &str, id: &str) -> Result<ConsoleOutput, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/instances/{}/console",
            seg(account),
            seg(id)
        ))
    }

    pub fn exec_instance(
        &self,
        account: &str,
        id: &str,
        req: &ExecRequest,
    ) -> Result<ExecResult, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/accounts/{}/instances/{}/exec", seg(account), seg(id)),
            Some(req),
        )
    }

    /// `action` is `stop`, `start` or `terminate`.
    pub fn instance_action(
        &self,
        account: &str,
        id: &str,
        action: &str,
    ) -> Result<InstanceInfo, ClientError> {
        let path = format!("/v1/accounts/{}/instances/{}", seg(account), seg(id));
        match action {
            "terminate" => self.call(method::DELETE, &path, None::<&()>),
            other => self.call(method::POST, &format!("{path}/{other}"), None::<&()>),
        }
    }

    /// `fix` removes what it finds.
    pub fn doctor(&self, fix: bool) -> Result<DoctorReport, ClientError> {
        if fix {
            self.call(method::POST, "/v1/doctor", None::<&()>)
        } else {
            self.get("/v1/doctor")
        }
    }

    pub fn delete_stack(
        &self,
        account: &str,
        stack: &str,
    ) -> Result<StackOperationResult, ClientError> {
        self.call(
            method::DELETE,
            &format!("/v1/accounts/{}/stacks/{}", seg(account), seg(stack)),
            None::<&()>,
        )
    }
}

mod asg;
mod devbox;
mod dns;
mod git;
mod pipeline_events;
mod rds;
pub use pipeline_events::{LogEvent, LogEvents};
mod secret;
mod ssh;

pub(crate) mod method {
    pub const GET: &str = "GET";
    pub const POST: &str = "POST";
    pub const PUT: &str = "PUT";
    pub const DELETE: &str = "DELETE";
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_encoded() {
        assert_eq!(super::seg("/app/db name"), "%2Fapp%2Fdb%20name");
        assert_eq!(super::seg("dev-1_x.y~"), "dev-1_x.y~");
    }
}
