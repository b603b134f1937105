//! Live pipeline logs (issue #17 item 4): a run's (or one job's) step logs and step statuses
//! as server-sent events, read from the store as the executor appends whole lines, with
//! `Last-Event-ID` resume.
//!
//! The store is the only source: a stream reads each step's log from the position it has
//! sent so far, so what a reader is sent is exactly the stored log, and a reader that
//! reconnects with the last id it saw continues at the next line. The executor calls
//! [`changed`] after each write, which wakes the streams of that run at once; a stream also
//! looks every second, so a missed wake-up costs at most that.
//!
//! Events:
//! - `line`: `{"job", "step", "text"}`, `text` one line with its `\n` (the last line of a
//!   step may have none); its id is the stream's position after it.
//! - `step`: `{"job", "step", "name", "status", "exit_code"}` when a step's status changes
//!   (sent again after a reconnect; readers keep what they printed).
//! - `end`: `{"status"}`, the run's final status; the stream closes after it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use spindle_model::pipeline::RunStatus;
use spindle_store::Store;
use tokio::sync::broadcast;

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;

/// Run ids whose logs or statuses changed.
static CHANGED: LazyLock<broadcast::Sender<i64>> = LazyLock::new(|| broadcast::channel(1024).0);

/// How long a stream waits without a wake-up before it looks again.
const RECHECK: Duration = Duration::from_secs(1);
/// A comment is sent after this long without events, so proxies and clients see a live
/// connection.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Wakes the live streams of `run` (its logs or a status changed).
pub fn changed(run: i64) {
    let _ = CHANGED.send(run);
}

/// Where a stream stands: for each job, the step it is in and the bytes of that step's log
/// sent. Written as the event id: `job:step:offset` pairs joined by `,` (job ids have neither
/// character).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, (u32, u64)>);

impl Cursor {
    /// The cursor a `Last-Event-ID` names; an id this daemon didn't write is an error.
    pub fn parse(id: &str) -> Result<Cursor, String> {
        let mut map = BTreeMap::new();
        for part in id.split(',').filter(|p| !p.is_empty()) {
            let mut it = part.rsplitn(3, ':');
            let (Some(off), Some(step), Some(job)) = (it.next(), it.next(), it.next()) else {
                return Err(format!(
                    "Last-Event-ID `{id}`: expected job:step:offset pairs"
                ));
            };
            let step: u32 = step
                .parse()
                .map_err(|_| format!("Last-Event-ID `{id}`: step `{step}` is not a number"))?;
            let off: u64 = off
                .parse()
                .map_err(|_| format!("Last-Event-ID `{id}`: offset `{off}` is not a number"))?;
            map.insert(job.to_string(), (step, off));
        }
        Ok(Cursor(map))
    }

    /// Bytes of step `index` of `job` already sent: all of a step before the cursor's, none
    /// of one after it.
    pub fn sent(&self, job: &str, index: u32) -> u64 {
        match self.0.get(job) {
            Some((s, off)) if *s == index => *off,
            Some((s, _)) if *s > index => u64::MAX,
            _ => 0,
        }
    }

    fn advance(&mut self, job: &str, index: u32, offset: u64) {
        self.0.insert(job.to_string(), (index, offset));
    }

    pub fn id(&self) -> String {
        self.0
            .iter()
            .map(|(j, (s, o))| format!("{j}:{s}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One SSE event's bytes. `data` is JSON (one line).
fn event(kind: &str, id: Option<&str>, data: &serde_json::Value) -> String {
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    format!("event: {kind}\n{id}data: {data}\n\n")
}

/// What one look at the store found to send, and whether the stream is over.
fn look(
    store: &Store,
    run: i64,
    job: Option<&str>,
    cursor: &mut Cursor,
    statuses: &mut HashMap<(String, u32), (RunStatus, Option<i32>)>,
) -> Result<(String, bool), String> {
    let found = store
        .step_log_tails(run, job, &|j, i| cursor.sent(j, i))
        .map_err(|e| crate::api::error_chain(&e))?;
    let Some((status, tails)) = found else {
        return Err(format!("pipeline run {run} is gone"));
    };
    let mut out = String::new();
    for t in tails {
        let mut at = t.from;
        for line in t.text.split_inclusive('\n') {
            at += line.len() as u64;
            cursor.advance(&t.job, t.index, at);
            out.push_str(&event(
                "line",
                Some(&cursor.id()),
                &serde_json::json!({"job": t.job, "step": t.index, "text": line}),
            ));
        }
        let key = (t.job.clone(), t.index);
        let now = (t.status, t.exit_code);
        if t.status != RunStatus::Queued && statuses.get(&key) != Some(&now) {
            statuses.insert(key, now);
            out.push_str(&event(
                "step",
                None,
                &serde_json::json!({"job": t.job, "step": t.index, "name": t.name,
                    "status": t.status, "exit_code": t.exit_code}),
            ));
        }
    }
    let done = status.is_final();
    if done {
        out.push_str(&event("end", None, &serde_json::json!({"status": status})));
    }
    Ok((out, done))
}

/// The `text/event-stream` response of run `run` (only `job` when given) from `cursor` on;
/// it ends after the run has ended and everything was sent.
pub fn stream(store: Arc<Store>, run: i64, job: Option<String>, cursor: Cursor) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(8);
    let mut wake = CHANGED.subscribe();
    tokio::spawn(async move {
        let mut cursor = cursor;
        let mut statuses = HashMap::new();
        let mut quiet = Duration::ZERO;
        loop {
            let (s, j) = (store.clone(), job.clone());
            let mut c = cursor.clone();
            let mut st = std::mem::take(&mut statuses);
            let r = tokio::task::spawn_blocking(move || {
                let r = look(&s, run, j.as_deref(), &mut c, &mut st);
                (r, c, st)
            })
            .await;
            let Ok((r, c, st)) = r else { return };
            (cursor, statuses) = (c, st);
            let (text, done) = match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(run, error = %e, "pipeline log stream ended");
                    return;
                }
            };
            if !text.is_empty() {
                quiet = Duration::ZERO;
                if tx.send(Ok(text)).await.is_err() {
                    return; // The reader went away.
                }
            }
            if done {
                return;
            }
            // Wait for a change of this run, or look again after a while anyway.
            let waited = tokio::time::timeout(RECHECK, async {
                loop {
                    match wake.recv().await {
                        Ok(r) if r == run => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
            if waited.is_err() {
                quiet += RECHECK;
                if quiet >= KEEPALIVE {
                    quiet = Duration::ZERO;
                    if tx.send(Ok(": keep-alive\n\n".into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The cursor a request resumes from: its `Last-Event-ID` header (the browser's
/// `EventSource` sends it on reconnect), else a `lastEventId` query value, else the start.
pub fn resume_from(headers: &HeaderMap, query: Option<&str>) -> Result<Cursor, ApiError> {
    let id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query)
        .unwrap_or("");
    Cursor::parse(id).map_err(ApiError::bad_request)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    job: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// `GET /v1/accounts/{account}/pipeline-runs/{run}/logs`: the run's logs as server-sent
/// events (`?job=J` for one job's).
pub async fn logs(
    State(app): State<App>,
    Path((account, run)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
    headers: HeaderMap,
    call: Call,
) -> Result<Response, ApiError> {
    let acct = app.scope(&call, &account, format!("pipeline-runs/{run}"))?;
    let missing = || crate::git_handlers::run_missing(&run, &acct);
    let id: i64 = run.parse().map_err(|_| missing())?;
    let found = app.store.get_run(&acct.id, id)?.ok_or_else(missing)?;
    if let Some(j) = &q.job {
        if !found.jobs.iter().any(|x| &x.id == j) {
            let have: Vec<&str> = found.jobs.iter().map(|x| x.id.as_str()).collect();
            return Err(ApiError::not_found(format!("run {id} has no job `{j}`"))
                .with_hint(format!("its jobs: {}", have.join(", "))));
        }
    }
    let cursor = resume_from(&headers, q.last_event_id.as_deref())?;
    Ok(stream(app.store.clone(), id, q.job, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_say_what_was_sent() {
        let c = Cursor::parse("build:2:40,test-x:0:7").unwrap();
        assert_eq!(c.id(), "build:2:40,test-x:0:7");
        for (job, step, want) in [
            ("build", 1, u64::MAX),
            ("build", 2, 40),
            ("build", 3, 0),
            ("test-x", 0, 7),
            ("other", 0, 0),
        ] {
            assert_eq!(c.sent(job, step), want, "{job} {step}");
        }
        assert_eq!(Cursor::parse("").unwrap(), Cursor::default());
        for bad in ["x", "a:b:1", "a:1:-1", "a:1"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_are_one_json_line_each() {
        let e = event(
            "line",
            Some("a:0:6"),
            &serde_json::json!({"text": "<b>\n</b>"}),
        );
        assert_eq!(
            e,
            "event: line\nid: a:0:6\ndata: {\"text\":\"<b>\\n</b>\"}\n\n"
        );
    }
}
