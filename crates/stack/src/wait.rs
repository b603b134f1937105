//! `AWS::CloudFormation::WaitConditionHandle` and `AWS::CloudFormation::WaitCondition`:
//! a handle is a URL that instances (or scripts) signal; a wait condition holds the stack
//! until enough success signals arrive, fails on a failure signal, and times out.
//!
//! The daemon serves the handle URLs (`{EngineOptions::wait_url_base}/{id}`) and passes
//! each signal body to [`crate::Engine::signal`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle_template::Value;
use tokio::sync::Notify;

use crate::provider::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, UpdateRequest,
};
use crate::short_hash;

/// What `cfn-signal` or `curl -T` sends to a handle URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Signal {
    pub status: SignalStatus,
    #[serde(default)]
    pub reason: String,
    pub unique_id: String,
    #[serde(default)]
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignalStatus {
    Success,
    Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("no wait condition handle `{0}`")]
    UnknownHandle(String),
    #[error("the signal is not valid JSON of the form {{\"Status\", \"Reason\", \"UniqueId\", \"Data\"}}")]
    Malformed(#[source] serde_json::Error),
}

impl Signal {
    pub fn from_json(text: &str) -> Result<Signal, SignalError> {
        serde_json::from_str(text).map_err(SignalError::Malformed)
    }
}

#[derive(Debug, Default)]
struct Handle {
    signals: Mutex<Vec<Signal>>,
    notify: Notify,
}

/// Live handles and the signals they received.
#[derive(Debug, Default)]
pub struct WaitRegistry {
    handles: Mutex<HashMap<String, Arc<Handle>>>,
}

impl WaitRegistry {
    pub fn register(&self, id: &str) {
        if let Ok(mut h) = self.handles.lock() {
            h.entry(id.to_string()).or_default();
        }
    }

    pub fn unregister(&self, id: &str) {
        if let Ok(mut h) = self.handles.lock() {
            h.remove(id);
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.handles.lock().is_ok_and(|h| h.contains_key(id))
    }

    fn get(&self, id: &str) -> Option<Arc<Handle>> {
        self.handles.lock().ok()?.get(id).cloned()
    }

    /// Records a signal for handle `id` (a signal with a `UniqueId` seen before replaces
    /// the earlier one) and wakes its waiters.
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), SignalError> {
        let h = self
            .get(id)
            .ok_or_else(|| SignalError::UnknownHandle(id.to_string()))?;
        if let Ok(mut s) = h.signals.lock() {
            s.retain(|x| x.unique_id != signal.unique_id);
            s.push(signal);
        }
        h.notify.notify_waiters();
        Ok(())
    }

    /// The signals handle `id` has received.
    pub fn signals(&self, id: &str) -> Option<Vec<Signal>> {
        let h = self.get(id)?;
        let s = h.signals.lock().ok()?;
        Some(s.clone())
    }

    /// Waits until `count` success signals (by distinct `UniqueId`) or a failure signal
    /// arrive at handle `id`, or `timeout` passes.
    pub async fn wait(
        &self,
        id: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Signal>, WaitError> {
        let h = self
            .get(id)
            .ok_or_else(|| WaitError::UnknownHandle(id.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = h.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let signals = h.signals.lock().map(|s| s.clone()).unwrap_or_default();
            if let Some(f) = signals.iter().find(|s| s.status == SignalStatus::Failure) {
                return Err(WaitError::Failed {
                    unique_id: f.unique_id.clone(),
                    reason: f.reason.clone(),
                });
            }
            if signals.len() >= count {
                return Ok(signals);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(WaitError::TimedOut {
                    received: signals.len(),
                    expected: count,
                });
            }
        }
    }
}

/// Why a wait ended without success; the messages are CloudFormation's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("no wait condition handle `{0}`")]
    UnknownHandle(String),
    #[error("WaitCondition received failed message: '{reason}' for uniqueId: {unique_id}")]
    Failed { unique_id: String, reason: String },
    #[error("WaitCondition timed out. Received {received} conditions when expecting {expected}")]
    TimedOut { received: usize, expected: usize },
}

fn handle_id(stack: &str, logical_id: &str, token: &str) -> String {
    format!("{stack}-{logical_id}-{}", short_hash(token))
}

/// The handle id at the end of a handle URL (or the id itself).
pub fn handle_id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// `AWS::CloudFormation::WaitConditionHandle`: `Ref` is the URL to signal.
#[derive(Debug, Default)]
pub struct WaitConditionHandleProvider;

impl Provider for WaitConditionHandleProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let id = handle_id(cx.stack_name, cx.logical_id, cx.token);
            cx.engine.waits().register(&id);
            let base = cx.engine.options().wait_url_base.trim_end_matches('/');
            Ok(ProviderOutput {
                physical_id: format!("{base}/{id}"),
                attributes: BTreeMap::new(),
            })
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            Ok(ProviderOutput {
                physical_id: req.physical_id,
                attributes: req.previous_attributes,
            })
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            req.cx
                .engine
                .waits()
                .unregister(handle_id_of(&req.physical_id));
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let id = match &req.physical_id {
                Some(p) => handle_id_of(p).to_string(),
                None => handle_id(cx.stack_name, cx.logical_id, cx.token),
            };
            if !cx.engine.waits().contains(&id) {
                return Ok(None);
            }
            let base = cx.engine.options().wait_url_base.trim_end_matches('/');
            Ok(Some(ReadOutput {
                physical_id: format!("{base}/{id}"),
                properties: BTreeMap::new(),
                attributes: BTreeMap::new(),
            }))
        })
    }
}

/// `AWS::CloudFormation::WaitCondition` with `Handle`, `Timeout` (seconds, at most 43200)
/// and `Count` (default 1). `Fn::GetAtt Data` is a JSON object of `UniqueId` → `Data`.
/// Without `Handle`, the resource's `CreationPolicy` (which the engine applies to every
/// resource type) does the waiting, through [`crate::Engine::signal_resource`].
#[derive(Debug, Default)]
pub struct WaitConditionProvider;

const MAX_WAIT_SECS: u64 = 43_200;

fn number(v: Option<&Value>, what: &str) -> Result<Option<u64>, ProviderError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .scalar_string()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ProviderError::InvalidRequest(format!("{what} must be a whole number, got {v}"))
            }),
    }
}

fn wait_settings(p: &BTreeMap<String, Value>) -> Result<(String, usize, Duration), ProviderError> {
    let handle = p.get("Handle").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::InvalidRequest(
            "Handle is required (the URL of a WaitConditionHandle)".into(),
        )
    })?;
    let timeout = number(p.get("Timeout"), "Timeout")?
        .ok_or_else(|| ProviderError::InvalidRequest("Timeout is required (seconds)".into()))?;
    if timeout > MAX_WAIT_SECS {
        return Err(ProviderError::InvalidRequest(format!(
            "Timeout must be at most {MAX_WAIT_SECS} seconds, got {timeout}"
        )));
    }
    let count = number(p.get("Count"), "Count")?.unwrap_or(1).max(1) as usize;
    Ok((
        handle_id_of(handle).to_string(),
        count,
        Duration::from_secs(timeout),
    ))
}

impl Provider for WaitConditionProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            if !req.properties.contains_key("Handle") {
                // The modern form: a `CreationPolicy` instead of a handle. The engine waits
                // for the resource signals after this returns.
                let mut attributes = BTreeMap::new();
                attributes.insert("Data".to_string(), Value::str("{}"));
                return Ok(ProviderOutput {
                    physical_id: format!("{}-{}", req.cx.stack_name, req.cx.logical_id),
                    attributes,
                });
            }
            let (id, count, timeout) = wait_settings(&req.properties)?;
            let signals = req
                .cx
                .engine
                .waits()
                .wait(&id, count, timeout)
                .await
                .map_err(|e| ProviderError::Failed(e.to_string()))?;
            let data: serde_json::Map<String, serde_json::Value> = signals
                .into_iter()
                .map(|s| (s.unique_id, serde_json::Value::String(s.data)))
                .collect();
            let mut attributes = BTreeMap::new();
            attributes.insert(
                "Data".to_string(),
                Value::String(serde_json::Value::Object(data).to_string()),
            );
            Ok(ProviderOutput {
                physical_id: format!("{}-{}", req.cx.stack_name, req.cx.logical_id),
                attributes,
            })
        })
    }

    /// CloudFormation doesn't update wait conditions; neither do we.
    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            Ok(ProviderOutput {
                physical_id: req.physical_id,
                attributes: req.previous_attributes,
            })
        })
    }

    fn delete<'a>(&'a self, _req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { Ok(()) })
    }

    /// A wait condition leaves nothing behind, so an interrupted one counts as not made.
    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            Ok(req.physical_id.map(|p| ReadOutput {
                physical_id: p,
                properties: BTreeMap::new(),
                attributes: BTreeMap::new(),
            }))
        })
    }

    /// The engine's limit must not cut the condition's own `Timeout` short.
    fn timeout(&self, properties: &BTreeMap<String, Value>) -> Option<Duration> {
        wait_settings(properties)
            .ok()
            .map(|(_, _, t)| t + Duration::from_secs(30))
    }
}
