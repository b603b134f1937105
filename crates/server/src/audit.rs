//! The audit layer: wraps every API route, and records each mutating call and each call that
//! failed. Handlers only add detail (target, target account) to the [`AuditCtx`] their request
//! carries; they cannot skip the record.
//!
//! A mutating call runs in a [`spindle_store::AuditScope`]: the first store transaction it
//! commits on its own task carries its pending audit record, so the change and a record of it
//! commit together. When the response is known the final record (result and status) replaces
//! the pending one in one transaction; a daemon killed in between finishes the pending record
//! at its next start (`Store::finish_pending_audit`).

use crate::api::ErrorCode;
use crate::app::App;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use spindle_model::AccountId;
use spindle_store::{AuditRecord, AuditScope};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What is known about a call while it is handled.
#[derive(Debug, Default, Clone)]
pub struct AuditInfo {
    pub action: String,
    pub target: String,
    pub access_key_id: Option<String>,
    pub principal: Option<String>,
    pub account_id: Option<AccountId>,
    pub target_account_id: Option<AccountId>,
}

/// Shared between the layer and the request's extractor and handler.
#[derive(Debug, Default, Clone)]
pub struct AuditCtx(Arc<Mutex<AuditInfo>>);

impl AuditCtx {
    pub fn update(&self, f: impl FnOnce(&mut AuditInfo)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn take(&self) -> AuditInfo {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The request id, set on the request and echoed in `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn layer(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ctx = AuditCtx::default();
    let request_id = format!("req-{}", hex::encode(rand::random::<[u8; 8]>()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    ctx.update(|a| {
        a.action = format!("{method} {route}");
        a.target = req.uri().path().to_owned();
    });
    req.extensions_mut().insert(ctx.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut resp = if method == Method::GET {
        next.run(req).await
    } else {
        let (ctx, request_id) = (ctx.clone(), request_id.clone());
        let scope = AuditScope::new(move || {
            let info = ctx.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            record(info, request_id.clone(), "ok", 0, None)
        });
        scope.run(next.run(req)).await
    };
    let status = resp.status().as_u16();
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    app.metrics
        .request(method.as_str(), &route, status, started.elapsed());
    if method != Method::GET || status >= 400 {
        let info = ctx.take();
        let code = resp.extensions().get::<ErrorCode>().cloned();
        let result = match &code {
            None if status < 400 => "ok",
            Some(c) if c.denied => "denied",
            _ if status == 401 || status == 403 => "denied",
            _ => "error",
        };
        let rec = record(info, request_id, result, status, code.map(|c| c.code));
        match app.store.append_audit_final(&rec) {
            Ok(()) => app.metrics.audit_record(result),
            Err(e) => {
                tracing::error!(error = %e, request_id = %rec.request_id, "cannot write the audit record")
            }
        }
    }
    resp
}

fn record(
    info: AuditInfo,
    request_id: String,
    result: &'static str,
    status: u16,
    error_code: Option<String>,
) -> AuditRecord {
    AuditRecord {
        time: crate::app::now(),
        request_id,
        access_key_id: info.access_key_id,
        principal: info.principal,
        account_id: info.account_id,
        target_account_id: info.target_account_id,
        action: info.action,
        target: info.target,
        result,
        status,
        error_code,
    }
}
