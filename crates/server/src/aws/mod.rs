//! The AWS-compatible endpoint (issue #21): its own listener (default `127.0.0.1:4566`) where
//! the `aws` CLI and boto3 talk SigV4 and AWS's protocols. A request is authenticated with the
//! sealed secret of an AWS-compatible key, routed by `spindle_awsapi::route`, authorized as the
//! Spindle action the operation table names (the same grants and deny rules as the REST API),
//! audited by the same layer, and answered in its protocol's shape.
//!
//! Every call acts in the key's own account, as in AWS.

mod autoscaling;
mod cfn_deploy;
mod cfn_drift;
mod cloudformation;
mod ec2;
mod ec2_network;
mod elbv2;
mod page;
mod rest;
mod route53;
mod secretsmanager;
mod ssm;
mod sts;

use crate::api::{ApiError, ErrorCode};
use crate::app::App;
use crate::audit::{AuditCtx, RequestId};
use crate::auth::{Call, Caller, MAX_BODY};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use spindle_awsapi::{sigv4, ErrorKind, Operation, Protocol, RouteError, SigV4Error, Value};
use spindle_model::AccessKeyId;
use time::OffsetDateTime;

/// An operation's failure, before it is rendered in the protocol's shape.
#[derive(Debug)]
pub struct AwsError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AwsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
}

/// Spindle's own errors as AWS ones: refusals stay refusals, bad input is a validation error.
impl From<ApiError> for AwsError {
    fn from(e: ApiError) -> Self {
        let kind = match e.code() {
            _ if e.is_denial() => ErrorKind::AccessDenied,
            "InvalidAccessKeyId" => ErrorKind::InvalidKey,
            "ExpiredToken" => ErrorKind::Service {
                code: "ExpiredToken",
                status: 403,
            },
            _ if e.status().is_server_error() => ErrorKind::Internal,
            _ => ErrorKind::Validation,
        };
        Self::new(kind, e.message())
    }
}

impl From<spindle_store::StoreError> for AwsError {
    fn from(e: spindle_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

pub type AwsResult = Result<Value, AwsError>;

/// The endpoint's router; the daemon serves it on its own listener, under the audit layer.
pub fn router(app: App) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::audit::layer,
        ))
        .with_state(app)
}

/// What a handler gets: the authenticated call (its action already allowed), and the
/// operation's input as query parameters or a JSON document.
pub struct Input {
    pub call: Call,
    pub params: Vec<(String, String)>,
    pub json: serde_json::Value,
}

impl Input {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.param(name)
            .ok_or_else(|| AwsError::validation(format!("{name}: a value is required")))
    }

    /// A JSON member that must be a string.
    pub fn json_str(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.json.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(AwsError::validation(format!(
                "{name}: expected a string, got {other}"
            ))),
        }
    }

    pub fn json_required(&self, name: &str) -> Result<&str, AwsError> {
        self.json_str(name)?
            .ok_or_else(|| AwsError::validation(format!("{name}: a value is required")))
    }

    pub fn json_bool(&self, name: &str) -> Result<bool, AwsError> {
        match self.json.get(name) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(AwsError::validation(format!(
                "{name}: expected a boolean, got {other}"
            ))),
        }
    }

    /// A query list's values (`Name.member.N`), in order.
    pub fn members(&self, name: &str) -> Vec<&str> {
        self.indexed(&format!("{name}.member."))
    }

    /// The values of parameters `PREFIX1`, `PREFIX2`, … in numeric order (EC2 lists are
    /// `Name.N`, the other query lists `Name.member.N`).
    pub fn indexed(&self, prefix: &str) -> Vec<&str> {
        let mut v: Vec<(u32, &str)> = self
            .params
            .iter()
            .filter_map(|(k, val)| {
                k.strip_prefix(prefix)
                    .and_then(|n| n.parse().ok())
                    .map(|n| (n, val.as_str()))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// An optional integer parameter.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        self.param(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    AwsError::validation(format!("{name}: expected an integer, got `{v}`"))
                })
            })
            .transpose()
    }

    pub fn caller(&self) -> &Caller {
        &self.call.caller
    }

    /// Names the resource for the audit log.
    pub fn set_target(&self, op: &Operation, resource: &str) {
        self.call
            .set_target(format!("aws:{}:{} {resource}", op.service, op.name));
    }
}

async fn handle(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let ctx = parts
        .extensions
        .get::<AuditCtx>()
        .cloned()
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Until the scope names the service, answer in the shape the request looks like.
    let mut protocol = if target.is_some() {
        Protocol::Json11
    } else {
        Protocol::Query
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = AwsError::validation(format!("request body is larger than {MAX_BODY} bytes"));
            return render_error(protocol, &e, &request_id);
        }
    };
    let result = serve(
        &app,
        &parts,
        &headers,
        target.as_deref(),
        body,
        ctx,
        &mut protocol,
    )
    .await;
    match result {
        Ok((svc, op, value)) => {
            let r = spindle_awsapi::reply::success(
                svc.protocol,
                svc.namespace,
                op.name,
                &value,
                &request_id,
            );
            respond(r, &request_id)
        }
        Err(e) => render_error(protocol, &e, &request_id),
    }
}

async fn serve(
    app: &App,
    parts: &axum::http::request::Parts,
    headers: &[(String, String)],
    target: Option<&str>,
    body: bytes::Bytes,
    ctx: AuditCtx,
    protocol: &mut Protocol,
) -> Result<(&'static spindle_awsapi::Service, &'static Operation, Value), AwsError> {
    let sreq = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body: &body,
    };
    let signed = sigv4::parse(&sreq).map_err(|e| {
        app.metrics.auth_failure("aws-signature");
        sig_error(e)
    })?;
    ctx.update(|a| {
        a.action = format!("aws:{}", signed.scope.service);
        a.access_key_id = Some(signed.access_key_id.clone());
    });
    if let Some(svc) = spindle_awsapi::ops::service(&signed.scope.service) {
        *protocol = svc.protocol;
    }
    let caller = authenticate(app, &signed, &sreq)?;
    ctx.update(|a| {
        a.principal = Some(caller.arn.clone());
        a.account_id = Some(caller.account.id.clone());
    });
    // Form bodies carry the query protocols' parameters; the URL may carry them too.
    let mut params = sigv4::query_pairs(sreq.query);
    let is_form = sreq
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(sigv4::query_pairs(&String::from_utf8_lossy(&body)));
    }
    let rest = rest::decode(&signed.scope.service, parts, &params, headers, &body);
    let (svc, op, json) = match rest {
        Some(r) => r?,
        None => {
            let (svc, op) = spindle_awsapi::route(&signed.scope.service, target, &params)
                .map_err(route_error)?;
            let json = if svc.protocol == Protocol::Json11 {
                if body.is_empty() {
                    serde_json::Value::Object(Default::default())
                } else {
                    serde_json::from_slice(&body)
                        .map_err(|e| AwsError::validation(format!("request body: {e}")))?
                }
            } else {
                serde_json::Value::Null
            };
            (svc, op, json)
        }
    };
    ctx.update(|a| a.action = op.action.as_str().to_owned());
    let call = Call::new(caller, op.action, body, ctx);
    call.set_target(format!("aws:{}:{}", op.service, op.name));
    app.check(&call, &call.caller.account.clone())
        .map_err(|e| AwsError::new(ErrorKind::AccessDenied, e.message().to_owned()))?;
    let input = Input { call, params, json };
    let value = dispatch(app, op, &input).await?;
    Ok((svc, op, value))
}

/// A routing failure as the client sees it.
fn route_error(e: RouteError) -> AwsError {
    match e {
        RouteError::UnknownService { .. } | RouteError::NotImplemented { .. } => {
            AwsError::new(ErrorKind::NotImplemented, e.to_string())
        }
        RouteError::NoOperation | RouteError::WrongTarget { .. } => {
            AwsError::validation(e.to_string())
        }
    }
}

async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    match (op.service, op.name) {
        ("sts", "GetCallerIdentity") => {
            let c = input.caller();
            input.set_target(op, "self");
            Ok(Value::fields([
                ("UserId", Some(Value::str(c.key_id.as_str()))),
                ("Account", Some(Value::str(c.account.id.as_str()))),
                ("Arn", Some(Value::str(c.arn.clone()))),
            ]))
        }
        ("sts", "AssumeRole") => sts::assume_role(app, op, input).await,
        ("ssm", _) => ssm::dispatch(app, op, input),
        ("secretsmanager", _) => secretsmanager::dispatch(app, op, input),
        ("route53", _) => route53::dispatch(app, op, input).await,
        ("cloudformation", _) => cloudformation::dispatch(app, op, input).await,
        ("elasticloadbalancing", _) => elbv2::dispatch(app, op, input),
        ("autoscaling", _) => autoscaling::dispatch(app, op, input).await,
        (
            "ec2",
            "DescribeVpcs" | "DescribeSubnets" | "DescribeSecurityGroups" | "DescribeImages",
        ) => ec2_network::dispatch(app, op, input),
        ("ec2", _) => ec2::dispatch(app, op, input).await,
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("{}:{} is not implemented by Spindle", op.service, op.name),
        )),
    }
}

/// Verifies the signature with the key's unsealed secret and loads its principal.
fn authenticate(
    app: &App,
    signed: &spindle_awsapi::Signed,
    req: &sigv4::Request<'_>,
) -> Result<Caller, AwsError> {
    let unknown = || {
        app.metrics.auth_failure("InvalidClientTokenId");
        AwsError::new(
            ErrorKind::InvalidKey,
            format!(
                "the security token included in the request is invalid: {} is not an active AWS-compatible Spindle key (create one with `spindle account keys create --aws`)",
                signed.access_key_id
            ),
        )
    };
    let id = AccessKeyId::parse(&signed.access_key_id).map_err(|_| unknown())?;
    let key = app.store.get_key(&id)?.ok_or_else(unknown)?;
    let sealed = app.store.aws_secret(&id)?.ok_or_else(unknown)?;
    let sealer = app
        .aws_secrets
        .as_ref()
        .ok_or_else(|| AwsError::new(ErrorKind::Internal, "no sealing key for AWS secrets"))?;
    let secret = match sealer.unseal_str(&sealed) {
        Some(Ok(s)) => s,
        _ => {
            return Err(AwsError::new(
                ErrorKind::Internal,
                "the key's secret can't be unsealed (was aws-secrets.key replaced?)",
            ))
        }
    };
    let now = OffsetDateTime::now_utc();
    sigv4::verify(signed, req, &secret, now).map_err(|e| {
        app.metrics.auth_failure("aws-signature");
        sig_error(e)
    })?;
    // Temporary credentials (a role session) are valid only with their session token, and a
    // long-term key never sends one, as on AWS.
    let token = sigv4::session_token(req);
    let token_problem = match (&key.role_name, token) {
        (Some(_), Some(t))
            if sigv4::session_token_matches(&signed.access_key_id, sealer.mac_key(), &t) =>
        {
            None
        }
        (Some(_), Some(_)) => Some("the session token does not belong to these credentials"),
        (Some(_), None) => {
            Some("temporary credentials need their session token (X-Amz-Security-Token)")
        }
        (None, Some(_)) => Some("a session token was sent with a long-term access key"),
        (None, None) => None,
    };
    if let Some(why) = token_problem {
        app.metrics.auth_failure("InvalidClientTokenId");
        return Err(AwsError::new(
            ErrorKind::InvalidKey,
            format!("the security token included in the request is invalid: {why}"),
        ));
    }
    Ok(app.caller_for_key(key, now)?)
}

fn sig_error(e: SigV4Error) -> AwsError {
    let kind = match &e {
        SigV4Error::Missing => ErrorKind::MissingAuth,
        SigV4Error::Skewed { .. } | SigV4Error::Expired { .. } => ErrorKind::Expired,
        SigV4Error::Malformed { .. } | SigV4Error::PayloadHash { .. } | SigV4Error::Mismatch => {
            ErrorKind::BadSignature
        }
    };
    AwsError::new(kind, e.to_string())
}

fn render_error(protocol: Protocol, e: &AwsError, request_id: &str) -> Response {
    let r = spindle_awsapi::reply::error(protocol, &e.kind, &e.message, request_id);
    let (code, _) = e.kind.code(protocol);
    let mut resp = respond(r, request_id);
    resp.extensions_mut().insert(ErrorCode {
        code: code.to_owned(),
        denied: e.kind.is_denial(),
    });
    resp
}

fn respond(r: spindle_awsapi::Reply, request_id: &str) -> Response {
    let status = axum::http::StatusCode::from_u16(r.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            (axum::http::header::CONTENT_TYPE, r.content_type.to_owned()),
            (
                axum::http::HeaderName::from_static("x-amzn-requestid"),
                request_id.to_owned(),
            ),
        ],
        r.body,
    )
        .into_response()
}
