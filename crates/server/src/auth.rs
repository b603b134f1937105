//! Authentication: turning a signed request into a [`Caller`], as the [`Call`] extractor.

use crate::api::{ApiError, RouteAction};
use crate::app::App;
use crate::audit::AuditCtx;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use spindle_auth::{AuthHeader, ReplayGuard, RequestParts, SigError, SigningKey};
use spindle_model::api::Account;
use spindle_model::ids::AccountRef;
use spindle_model::{AccessKeyId, Action};
use std::sync::Mutex;
use time::OffsetDateTime;

/// The largest request body the API accepts: a 1 MB template, JSON-escaped, fits.
pub const MAX_BODY: usize = 2 << 20;

/// The largest .deb upload (`pkg:Upload` bodies).
pub const MAX_UPLOAD: usize = 512 << 20;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: AccessKeyId,
    pub account: Account,
    pub admin: bool,
    pub allow: Vec<String>,
    pub arn: String,
}

/// The replay memory, shared by all requests.
pub struct ReplayState {
    guard: Mutex<ReplayGuard>,
}

impl ReplayState {
    pub fn new(boot: OffsetDateTime) -> Self {
        Self {
            guard: Mutex::new(ReplayGuard::new(boot)),
        }
    }
}

/// An authenticated API call: the caller, the action its route performs, and the raw body
/// (already covered by the signature). Handlers parse the body with [`Call::json`].
pub struct Call {
    pub caller: Caller,
    pub action: Action,
    pub body: Bytes,
    ctx: AuditCtx,
}

impl Call {
    /// A call authenticated another way (the AWS endpoint's SigV4, `crate::aws`).
    pub(crate) fn new(caller: Caller, action: Action, body: Bytes, ctx: AuditCtx) -> Self {
        Call {
            caller,
            action,
            body,
            ctx,
        }
    }

    /// The same caller and audit record doing `action` with a REST request `body`: how the
    /// AWS endpoint reuses a REST handler for an operation.
    pub(crate) fn derive(&self, action: Action, body: Bytes) -> Self {
        Call {
            caller: self.caller.clone(),
            action,
            body,
            ctx: self.ctx.clone(),
        }
    }

    pub fn set_target(&self, target: String) {
        self.ctx.update(|a| a.target = target);
    }

    pub fn set_target_account(&self, id: spindle_model::AccountId) {
        self.ctx.update(|a| a.target_account_id = Some(id));
    }

    /// Parses the body as JSON, naming the field and position of any mistake.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.is_empty() {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))
    }
}

impl FromRequest<App> for Call {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let ctx = parts
            .extensions
            .get::<AuditCtx>()
            .cloned()
            .unwrap_or_default();
        let action = parts
            .extensions
            .get::<RouteAction>()
            .map(|r| r.0)
            .ok_or_else(|| ApiError::internal("route has no action"))?;
        ctx.update(|a| a.action = action.as_str().to_owned());
        let limit = if action == Action::UploadPackage {
            MAX_UPLOAD
        } else {
            MAX_BODY
        };
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::payload_too_large(limit))?;
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(SigError::Missing)
            .and_then(|v| {
                v.to_str().map_err(|_| SigError::Malformed {
                    reason: "not ASCII".into(),
                })
            })
            .and_then(AuthHeader::parse)
            .map_err(|e| app.auth_failed(e))?;
        ctx.update(|a| a.access_key_id = Some(header.access_key_id.to_string()));
        let req_parts = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            body: &body,
        };
        let caller = app.authenticate(&header, &req_parts)?;
        ctx.update(|a| {
            a.principal = Some(caller.arn.clone());
            a.account_id = Some(caller.account.id.clone());
        });
        Ok(Call {
            caller,
            action,
            body,
            ctx,
        })
    }
}

impl App {
    fn auth_failed(&self, e: SigError) -> ApiError {
        self.metrics.auth_failure(e.code());
        let hint = match &e {
            SigError::Missing | SigError::Malformed { .. } => {
                "sign requests with the spindle CLI or spindle-client"
            }
            SigError::Expired { .. } => "check this machine's clock (timedatectl), then retry",
            SigError::BeforeBoot | SigError::Replayed => {
                "retry the request; each signature is accepted once"
            }
            SigError::Mismatch => "check the secret access key in your credentials file",
        };
        ApiError::unauthenticated(e.code(), e.to_string()).with_hint(hint)
    }

    /// Verifies the signature and loads the credential's principal.
    fn authenticate(
        &self,
        header: &AuthHeader,
        req: &RequestParts<'_>,
    ) -> Result<Caller, ApiError> {
        let invalid = || self.invalid_key(&header.access_key_id);
        let key = self
            .store
            .get_key(&header.access_key_id)?
            .ok_or_else(invalid)?;
        let now = OffsetDateTime::now_utc();
        spindle_auth::verify(header, &SigningKey(key.signing_key), req, now)
            .map_err(|e| self.auth_failed(e))?;
        // Only a correct signature reaches the replay memory, so forgeries can't fill it.
        self.replay
            .guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_and_record(header, now)
            .map_err(|e| self.auth_failed(e))?;
        self.caller_for_key(key, now)
    }

    /// The answer for a key that doesn't exist, is revoked or belongs to a deleted account.
    pub(crate) fn invalid_key(&self, id: &AccessKeyId) -> ApiError {
        self.metrics.auth_failure("InvalidAccessKeyId");
        ApiError::unauthenticated("InvalidAccessKeyId", format!("access key {id} is not valid"))
            .with_hint("it may have been revoked or may have expired; create a new one with `spindle account keys create`")
    }

    /// The principal of a key whose secret or signature has been checked: refused if revoked
    /// or expired.
    pub(crate) fn caller_for_key(
        &self,
        key: spindle_store::KeyRecord,
        now: OffsetDateTime,
    ) -> Result<Caller, ApiError> {
        let invalid = || self.invalid_key(&key.id);
        if !key.active {
            return Err(invalid());
        }
        if let Some(exp) = key.expires_unix {
            if now.unix_timestamp() >= exp {
                self.metrics.auth_failure("ExpiredToken");
                return Err(ApiError::unauthenticated(
                    "ExpiredToken",
                    "these short-lived credentials have expired".into(),
                )
                .with_hint("assume the role again with `spindle assume`"));
            }
        }
        let account = self
            .store
            .find_account(&AccountRef::Id(key.account_id.clone()))?
            .ok_or_else(invalid)?;
        let arn = match &key.role_name {
            Some(role) => format!(
                "arn:spindle:sts::{}:assumed-role/{role}/{}",
                account.id,
                key.session_name.as_deref().unwrap_or("session")
            ),
            None => format!("arn:spindle:iam::{}:key/{}", account.id, key.id),
        };
        Ok(Caller {
            key_id: key.id,
            account,
            admin: key.admin,
            allow: key.allow,
            arn,
        })
    }
}

/// The user and password of an HTTP basic `Authorization` header (git's and apt's clients).
pub(crate) fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        use base64::Engine as _;
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        let v = base64::engine::general_purpose::STANDARD.encode("AKIA1:se:cret");
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Basic {v}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("AKIA1".into(), "se:cret".into()))
        );
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Basic !!".parse().unwrap(),
        );
        assert_eq!(basic_credentials(&h), None);
    }
}
