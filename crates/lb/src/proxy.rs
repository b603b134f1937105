//! The request path: routing, tenant admission, target choice, forwarding and the bodies.
//!
//! Nothing here panics on client input: every parse of a client value has a fallback, and
//! every failure becomes an ALB-style status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::oneshot;

use crate::config::{Algorithm, ClientSettings, Condition, TargetGroupConfig, TenantKey};
use crate::error::ProxyError;
use crate::metrics::{Outcome, Registry, Series};
use crate::scheduler::{Cancelled, Decision, RejectReason, Scheduler, TicketId, Wakeups};
use crate::target::TargetRt;
use crate::upstream::{SendError, UpstreamBody, UpstreamConnector};

/// One access log line.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccessLogEntry {
    /// When the request arrived.
    pub time: SystemTime,
    /// Listener name.
    pub listener: String,
    /// Client address.
    pub client: SocketAddr,
    /// Request method.
    pub method: String,
    /// Host the client asked for.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Status sent to the client.
    pub status: u16,
    /// Target that served it, if any.
    pub target: Option<SocketAddr>,
    /// Target group, if forwarded.
    pub target_group: Option<String>,
    /// Tenant, when the target group isolates tenants.
    pub tenant: Option<String>,
    /// Time from arrival to the end of the response body.
    pub total: Duration,
    /// Time the target took to send its response head.
    pub target_latency: Option<Duration>,
    /// Why the load balancer answered itself, if it did because of a failure.
    pub error: Option<String>,
}

/// Where access log lines go. The daemon writes them to a file or its log.
pub trait AccessLog: Send + Sync + 'static {
    /// Called once per request, when its response has been sent or abandoned.
    fn record(&self, entry: AccessLogEntry);
}

/// Errors of bodies flowing through the proxy.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's body grew past the limit.
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client paused its body for too long.
    #[error("client sent no body data for {timeout:?}")]
    Timeout { timeout: Duration },
    /// Reading from the client or target failed.
    #[error("reading the body failed")]
    Io(#[source] hyper::Error),
}

pin_project_lite::pin_project! {
    /// A client's request body on its way to a target, with size and pause limits.
    pub struct ClientBody {
        #[pin]
        inner: Incoming,
        remaining: u64,
        limit: u64,
        timeout: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: *this.limit })));
                    }
                    *this.remaining -= len;
                }
                if let Some(s) = this.sleep.as_mut() {
                    s.as_mut()
                        .reset(tokio::time::Instant::now() + *this.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Io(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = *this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Timeout { timeout }))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What happens when a forwarded response is finished or abandoned.
struct Done {
    guard: RequestGuard,
    sender: Option<SendRequest<UpstreamBody>>,
    target: Arc<TargetRt>,
    ended: bool,
}

impl Drop for Done {
    fn drop(&mut self) {
        if self.ended {
            if let Some(s) = self.sender.take() {
                self.target.pool.put(s);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body the proxy sends to clients.
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        /// A body the load balancer made.
        Full { data: Option<Bytes> },
        /// A target's body, streamed.
        Upstream { #[pin] inner: Incoming, done: Option<Box<Done>> },
    }
}

impl ProxyBody {
    fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody::Full {
            data: Some(b.into()),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            ProxyBodyProj::Full { data } => Poll::Ready(
                data.take()
                    .filter(|d| !d.is_empty())
                    .map(|d| Ok(Frame::data(d))),
            ),
            ProxyBodyProj::Upstream { mut inner, done } => {
                let r = inner.as_mut().poll_frame(cx);
                // hyper stops polling once the body says it has ended, so the end is also
                // seen here, after the last frame, not only as `None`.
                let ended = matches!(&r, Poll::Ready(Some(Ok(_)))) && inner.is_end_stream();
                match &r {
                    Poll::Ready(None) => {
                        if let Some(mut d) = done.take() {
                            d.ended = true;
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if ended => {
                        if let Some(mut d) = done.take() {
                            d.ended = true;
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(d) = done.as_mut() {
                            d.guard.outcome = Outcome::BadResponse;
                            d.guard.error = Some("target failed while sending its body".into());
                        }
                        done.take();
                    }
                    _ => {}
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full { data } => data.as_ref().is_none_or(|d| d.is_empty()),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

/// Per-tenant admission to one target: the pure [`Scheduler`] plus the wakers of the requests
/// waiting in it.
pub(crate) struct Gate {
    inner: Mutex<GateInner>,
}

struct GateInner {
    sched: Scheduler,
    waiters: HashMap<TicketId, oneshot::Sender<bool>>,
}

impl GateInner {
    fn wake(&mut self, w: Wakeups) {
        for id in w.dispatched {
            if let Some(tx) = self.waiters.remove(&id) {
                let _ = tx.send(true);
            }
        }
        for id in w.expired {
            if let Some(tx) = self.waiters.remove(&id) {
                let _ = tx.send(false);
            }
        }
    }
}

/// Admission of one request; released when the request ends.
struct Permit {
    gate: Arc<Gate>,
    tenant: String,
    started_in_flight: u32,
}

struct Waiting<'a> {
    gate: &'a Arc<Gate>,
    tenant: &'a str,
    id: TicketId,
    rx: Option<oneshot::Receiver<bool>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let mut g = self.gate.lock();
        if g.sched.cancel(self.id) == Cancelled::NotQueued && rx.try_recv() == Ok(true) {
            // Dispatched, but the client left before it could go: give the slot back.
            let w = g.sched.complete(self.tenant, None, 0, Instant::now());
            g.wake(w);
        }
        g.waiters.remove(&self.id);
    }
}

impl Gate {
    pub(crate) fn new(sched: Scheduler) -> Self {
        Gate {
            inner: Mutex::new(GateInner {
                sched,
                waiters: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current concurrency limit, requests in flight and requests waiting.
    pub(crate) fn load(&self) -> GateLoad {
        let g = self.lock();
        GateLoad {
            limit: g.sched.limit(),
            in_flight: g.sched.in_flight(),
            queued: g.sched.queued(),
            rtt_noload: g.sched.adaptive().rtt_noload(),
        }
    }

    pub(crate) fn config(&self) -> crate::scheduler::SchedulerConfig {
        self.lock().sched.config().clone()
    }

    /// Admits a request of `tenant`, waiting in its queue if need be; `on_queue` runs when it
    /// has to wait.
    async fn acquire(
        self: &Arc<Self>,
        tenant: &str,
        on_queue: impl FnOnce(),
    ) -> Result<Permit, (RejectReason, Duration)> {
        let (id, rx, timeout) = {
            let mut g = self.lock();
            match g.sched.offer(tenant, Instant::now()) {
                Decision::Admit => {
                    return Ok(Permit {
                        gate: self.clone(),
                        tenant: tenant.to_owned(),
                        started_in_flight: g.sched.in_flight(),
                    })
                }
                Decision::Reject {
                    reason,
                    retry_after,
                } => return Err((reason, retry_after)),
                Decision::Queued(id) => {
                    on_queue();
                    let (tx, rx) = oneshot::channel();
                    g.waiters.insert(id, tx);
                    (id, rx, g.sched.config().queue_timeout)
                }
            }
        };
        let mut waiting = Waiting {
            gate: self,
            tenant,
            id,
            rx: Some(rx),
        };
        let rx = waiting.rx.as_mut().expect("just set");
        let granted = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(granted)) => granted,
            Ok(Err(_)) => false,
            Err(_) => {
                let mut g = self.lock();
                if g.sched.cancel(id) == Cancelled::WasQueued {
                    g.waiters.remove(&id);
                    false
                } else {
                    waiting
                        .rx
                        .as_mut()
                        .is_some_and(|rx| rx.try_recv() == Ok(true))
                }
            }
        };
        waiting.rx = None;
        if granted {
            let in_flight = self.lock().sched.in_flight();
            Ok(Permit {
                gate: self.clone(),
                tenant: tenant.to_owned(),
                started_in_flight: in_flight,
            })
        } else {
            Err((RejectReason::QueueTimeout, Duration::from_secs(1)))
        }
    }
}

/// A snapshot of one target's admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateLoad {
    /// The adaptive concurrency limit now in force.
    pub limit: u32,
    /// Requests admitted to the target and not finished.
    pub in_flight: u32,
    /// Requests waiting in the target's tenant queues.
    pub queued: usize,
    /// The no-load latency the limit measured, once it has.
    pub rtt_noload: Option<Duration>,
}

/// A target group at run time.
pub(crate) struct GroupRt {
    pub(crate) cfg: TargetGroupConfig,
    pub(crate) targets: Vec<Arc<TargetRt>>,
    pub(crate) draining: Mutex<Vec<Arc<TargetRt>>>,
    /// With tenant isolation, one gate per target, in the order of `targets`.
    pub(crate) gates: Vec<Arc<Gate>>,
    rr: AtomicUsize,
    sticky_ids: Vec<u64>,
}

const STICKY_COOKIE: &str = "SPINDLELB";

fn sticky_id(group: &str, addr: SocketAddr) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    group.hash(&mut h);
    addr.hash(&mut h);
    h.finish()
}

impl GroupRt {
    pub(crate) fn new(
        cfg: TargetGroupConfig,
        targets: Vec<Arc<TargetRt>>,
        gates: Vec<Arc<Gate>>,
    ) -> Self {
        let sticky_ids = targets
            .iter()
            .map(|t| sticky_id(&cfg.name, t.addr))
            .collect();
        GroupRt {
            cfg,
            targets,
            draining: Mutex::new(Vec::new()),
            gates,
            rr: AtomicUsize::new(0),
            sticky_ids,
        }
    }

    fn pick(&self, sticky: Option<u64>) -> Option<(usize, &Arc<TargetRt>)> {
        if let Some(id) = sticky {
            if let Some(i) = self.sticky_ids.iter().position(|&s| s == id) {
                if self.targets[i].routable() {
                    return Some((i, &self.targets[i]));
                }
            }
        }
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let slow = self.cfg.slow_start;
        if self.gates.len() == n {
            // With a queue in front of each target, round robin would leave a request waiting
            // behind a slow target while another has room: the least loaded relative to its
            // limit goes first.
            let mut best: Option<(f64, usize)> = None;
            for k in 0..n {
                let i = (start + k) % n;
                if !self.targets[i].routable() {
                    continue;
                }
                let g = self.gates[i].load();
                let load = (g.in_flight as f64 + g.queued as f64 + 1.0)
                    / f64::from(g.limit.max(1))
                    / self.targets[i].slow_start_factor(slow);
                if best.is_none_or(|(b, _)| load < b) {
                    best = Some((load, i));
                }
            }
            return best.map(|(_, i)| (i, &self.targets[i]));
        }
        match self.cfg.algorithm {
            Algorithm::RoundRobin => {
                let mut fallback = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    let t = &self.targets[i];
                    if !t.routable() {
                        continue;
                    }
                    let f = t.slow_start_factor(slow);
                    if f < 1.0 && unit_random(start as u64 ^ (k as u64) << 32) > f {
                        fallback.get_or_insert((i, t));
                        continue;
                    }
                    return Some((i, t));
                }
                fallback
            }
            Algorithm::LeastOutstandingRequests => {
                let mut best: Option<(f64, usize)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    let t = &self.targets[i];
                    if !t.routable() {
                        continue;
                    }
                    let load = (t.in_flight.load(Ordering::Relaxed) as f64 + 1.0)
                        / t.slow_start_factor(slow);
                    if best.is_none_or(|(b, _)| load < b) {
                        best = Some((load, i));
                    }
                }
                best.map(|(_, i)| (i, &self.targets[i]))
            }
        }
    }
}

fn unit_random(seed: u64) -> f64 {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A compiled rule action.
pub(crate) enum RouteAction {
    Forward(Arc<GroupRt>),
    Fixed {
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
    },
    Redirect {
        protocol: Option<String>,
        host: Option<String>,
        port: Option<String>,
        path: Option<String>,
        query: Option<String>,
        status: StatusCode,
    },
}

pub(crate) struct RouteRule {
    pub(crate) conditions: Vec<Condition>,
    pub(crate) action: RouteAction,
}

/// A listener at run time (rules compiled against the current target groups).
pub(crate) struct ListenerRt {
    pub(crate) name: String,
    pub(crate) rules: Vec<RouteRule>,
    pub(crate) default_action: RouteAction,
}

/// The whole routing state swapped by `apply`.
pub(crate) struct State {
    pub(crate) listeners: HashMap<String, Arc<ListenerRt>>,
    pub(crate) groups: HashMap<String, Arc<GroupRt>>,
    pub(crate) client: ClientSettings,
    pub(crate) tls: HashMap<String, Arc<rustls::ServerConfig>>,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) lb_name: String,
    pub(crate) state: arc_swap::ArcSwap<State>,
    pub(crate) connector: Arc<dyn UpstreamConnector>,
    pub(crate) access_log: Option<Arc<dyn AccessLog>>,
    pub(crate) registry: Arc<Registry>,
}

/// Per-connection facts.
pub(crate) struct ConnInfo {
    pub(crate) listener: String,
    pub(crate) peer: SocketAddr,
    pub(crate) local_port: u16,
    pub(crate) https: bool,
    /// The peer's IP and the local port as header values, made once per connection rather
    /// than once per request.
    peer_ip: String,
    port_value: HeaderValue,
}

impl ConnInfo {
    pub(crate) fn new(listener: String, peer: SocketAddr, local_port: u16, https: bool) -> Self {
        ConnInfo {
            listener,
            peer,
            local_port,
            https,
            peer_ip: peer.ip().to_string(),
            port_value: HeaderValue::from(local_port),
        }
    }

    /// X-Forwarded-For for a request that arrived with `prev` (ALB appends the peer).
    fn forwarded_for(&self, prev: Option<&HeaderValue>) -> Option<HeaderValue> {
        match prev.and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", self.peer_ip)).ok(),
            None => HeaderValue::from_str(&self.peer_ip).ok(),
        }
    }
}

/// Wildcard match with `*` (any run) and `?` (one character).
pub(crate) fn glob(pattern: &[u8], text: &[u8], case_insensitive: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if case_insensitive {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while t < text.len() {
        if p < pattern.len()
            && (pattern[p] == b'?' || (pattern[p] != b'*' && eq(pattern[p], text[t])))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

fn request_host<B>(req: &Request<B>) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

fn matches(cond: &Condition, host: &str, path: &str) -> bool {
    match cond {
        Condition::HostHeader(pats) => pats
            .iter()
            .any(|p| glob(p.as_bytes(), host.as_bytes(), true)),
        Condition::PathPattern(pats) => pats
            .iter()
            .any(|p| glob(p.as_bytes(), path.as_bytes(), false)),
    }
}

impl ListenerRt {
    pub(crate) fn route(&self, host: &str, path: &str) -> &RouteAction {
        let host = strip_port(host);
        self.rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| matches(c, host, path)))
            .map_or(&self.default_action, |r| &r.action)
    }
}

fn tenant_of<B>(key: &TenantKey, req: &Request<B>) -> String {
    let raw = match key {
        TenantKey::Header(name) => req
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        TenantKey::HostSubdomain => {
            let host = strip_port(request_host(req));
            match host.split_once('.') {
                Some((first, _)) => first,
                None => "",
            }
        }
        TenantKey::PathPrefix => req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or(""),
    };
    let t: String = raw
        .chars()
        .take(128)
        .collect::<String>()
        .to_ascii_lowercase();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// A target's count of a request that has not reached the [`RequestGuard`] yet.
struct Claim(Option<Arc<TargetRt>>);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.end_request();
        }
    }
}

/// Metrics, in-flight counts, tenant permit and access log of one request, settled on drop.
struct RequestGuard {
    shared: Arc<Shared>,
    entry: Option<AccessLogEntry>,
    started: Instant,
    target: Option<Arc<TargetRt>>,
    tenant_series: Option<Arc<Series>>,
    permit: Option<Permit>,
    outcome: Outcome,
    latency: Option<Duration>,
    error: Option<String>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.target {
            t.end_request();
            t.series.finish(self.outcome, self.latency);
        }
        if let Some(s) = &self.tenant_series {
            s.finish(self.outcome, self.latency);
        }
        if let Some(p) = self.permit.take() {
            // Only answers from the target teach the limit about its latency.
            let mut g = p.gate.lock();
            let w = g
                .sched
                .complete(&p.tenant, self.latency, p.started_in_flight, Instant::now());
            g.wake(w);
        }
        if let (Some(log), Some(mut e)) = (&self.shared.access_log, self.entry.take()) {
            e.status = match self.outcome {
                Outcome::Status(s) => s,
                Outcome::Timeout => 504,
                Outcome::ConnectError | Outcome::BadResponse => 502,
                Outcome::Refused => e.status,
            };
            e.target = self.target.as_ref().map(|t| t.addr);
            e.total = self.started.elapsed();
            e.target_latency = self.latency;
            e.error = self.error.take();
            log.record(e);
        }
    }
}

fn simple(status: StatusCode, extra: Option<(HeaderName, HeaderValue)>) -> Response<ProxyBody> {
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some((k, v)) = extra {
        r.headers_mut().insert(k, v);
    }
    r
}

fn retry_after(d: Duration) -> (HeaderName, HeaderValue) {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    (header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(c) = h.get(header::CONNECTION).cloned() {
        if let Ok(c) = c.to_str() {
            for name in c.split(',') {
                if let Ok(n) = HeaderName::from_bytes(name.trim().as_bytes()) {
                    h.remove(n);
                }
            }
        }
    }
    for n in &HOP_BY_HOP {
        if h.contains_key(n) {
            h.remove(n);
        }
    }
}

fn sticky_from(h: &HeaderMap) -> Option<u64> {
    for v in h.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for c in v.split(';') {
            if let Some((k, val)) = c.trim().split_once('=') {
                if k == STICKY_COOKIE {
                    return u64::from_str_radix(val, 16).ok();
                }
            }
        }
    }
    None
}

/// Serves one request. Never fails: every failure is a response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (listener, client) = {
        let state = shared.state.load();
        let Some(listener) = state.listeners.get(&conn.listener).cloned() else {
            return Ok(simple(StatusCode::SERVICE_UNAVAILABLE, None));
        };
        (listener, state.client.clone())
    };
    let started = Instant::now();
    let entry = shared.access_log.as_ref().map(|_| AccessLogEntry {
        time: SystemTime::now(),
        listener: listener.name.clone(),
        client: conn.peer,
        method: req.method().to_string(),
        host: request_host(&req).to_owned(),
        path: req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        status: 0,
        target: None,
        target_group: None,
        tenant: None,
        total: Duration::ZERO,
        target_latency: None,
        error: None,
    });
    let mut guard = RequestGuard {
        shared: shared.clone(),
        entry,
        started,
        target: None,
        tenant_series: None,
        permit: None,
        outcome: Outcome::Status(200),
        latency: None,
        error: None,
    };
    let action = listener.route(request_host(&req), req.uri().path());
    let resp = match action {
        RouteAction::Fixed {
            status,
            content_type,
            body,
        } => {
            let mut r = Response::new(ProxyBody::full(body.clone()));
            *r.status_mut() = *status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
            r
        }
        RouteAction::Redirect {
            protocol,
            host: h,
            port,
            path: p,
            query,
            status,
        } => redirect(&req, &conn, protocol, h, port, p, query, *status),
        RouteAction::Forward(group) => {
            let group = group.clone();
            return Ok(forward(&shared, &client, &conn, &group, req, guard).await);
        }
    };
    guard.outcome = Outcome::Status(resp.status().as_u16());
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
fn redirect<B>(
    req: &Request<B>,
    conn: &ConnInfo,
    protocol: &Option<String>,
    host: &Option<String>,
    port: &Option<String>,
    path: &Option<String>,
    query: &Option<String>,
    status: StatusCode,
) -> Response<ProxyBody> {
    let req_proto = if conn.https { "HTTPS" } else { "HTTP" };
    let req_host = strip_port(request_host(req)).to_owned();
    let req_port = conn.local_port.to_string();
    let req_path = req.uri().path().to_owned();
    let req_query = req.uri().query().unwrap_or("").to_owned();
    let fill = |v: &Option<String>, default: &str| -> String {
        v.as_deref()
            .unwrap_or(default)
            .replace("#{protocol}", req_proto)
            .replace("#{host}", &req_host)
            .replace("#{port}", &req_port)
            .replace("#{path}", &req_path)
            .replace("#{query}", &req_query)
    };
    let proto = fill(protocol, "#{protocol}").to_ascii_lowercase();
    let host = fill(host, "#{host}");
    let port = fill(port, "#{port}");
    let path = fill(path, "#{path}");
    let query = fill(query, "#{query}");
    let default_port = (proto == "https" && port == "443") || (proto == "http" && port == "80");
    let mut location = format!("{proto}://{host}");
    if !default_port {
        location.push(':');
        location.push_str(&port);
    }
    location.push_str(&path);
    if !query.is_empty() {
        location.push('?');
        location.push_str(&query);
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut r = Response::new(ProxyBody::full(Bytes::new()));
            *r.status_mut() = status;
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => simple(StatusCode::BAD_REQUEST, None),
    }
}

fn body_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(b) = c.downcast_ref::<BodyError>() {
            return Some(b);
        }
        cur = c.source();
    }
    None
}

async fn forward(
    shared: &Arc<Shared>,
    client: &ClientSettings,
    conn: &ConnInfo,
    group: &Arc<GroupRt>,
    req: Request<Incoming>,
    mut guard: RequestGuard,
) -> Response<ProxyBody> {
    if let Some(e) = guard.entry.as_mut() {
        e.target_group = Some(group.cfg.name.clone());
    }
    // Reject bodies that announce themselves as too large before anything else.
    if req.body().size_hint().lower() > client.max_body_bytes {
        guard.outcome = Outcome::Status(413);
        guard.error = Some(
            ProxyError::BodyTooLarge {
                limit: client.max_body_bytes,
            }
            .to_string(),
        );
        return simple(StatusCode::PAYLOAD_TOO_LARGE, None);
    }
    let tenant = group.cfg.isolation.as_ref().map(|iso| {
        let tenant = tenant_of(&iso.tenant_key, &req);
        let series = shared
            .registry
            .tenant_series(&shared.lb_name, &group.cfg.name, &tenant);
        series.start();
        guard.tenant_series = Some(series);
        if let Some(e) = guard.entry.as_mut() {
            e.tenant = Some(tenant.clone());
        }
        tenant
    });
    let sticky = group
        .cfg
        .stickiness
        .as_ref()
        .and_then(|_| sticky_from(req.headers()));
    // A target that starts draining between the pick and the count is skipped: its drain
    // may already have found it idle. Each retry sees one more draining target, so this ends.
    let mut picked = None;
    for _ in 0..=group.targets.len() {
        match group.pick(sticky) {
            Some((i, t)) if t.begin_request() => {
                picked = Some((i, t.clone()));
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    let Some((idx, target)) = picked else {
        let err = ProxyError::NoHealthyTarget {
            target_group: group.cfg.name.clone(),
        };
        guard.outcome = Outcome::Status(503);
        guard.error = Some(err.to_string());
        return simple(err.status(), None);
    };
    if let (Some(tenant), Some(gate)) = (tenant, group.gates.get(idx)) {
        // The target counts this request from the pick (so a drain waits for it) while it
        // waits in the target's queue; whatever ends the wait, the count is given back.
        let mut claim = Claim(Some(target.clone()));
        let series = guard.tenant_series.clone();
        let acquired = gate
            .acquire(&tenant, || {
                if let Some(s) = series {
                    s.note_queued();
                }
            })
            .await;
        match acquired {
            Ok(p) => {
                claim.0 = None;
                guard.permit = Some(p);
            }
            Err((reason, after)) => {
                drop(claim);
                let err = ProxyError::TenantRefused {
                    tenant,
                    reason,
                    retry_after: after,
                };
                guard.outcome = Outcome::Refused;
                if let Some(e) = guard.entry.as_mut() {
                    e.status = err.status().as_u16();
                }
                guard.error = Some(err.to_string());
                return simple(err.status(), Some(retry_after(after)));
            }
        }
    }
    target.series.start();
    guard.target = Some(target.clone());

    let (mut parts, body) = req.into_parts();
    let had_host = parts.headers.contains_key(header::HOST);
    strip_hop_by_hop(&mut parts.headers);
    if !had_host {
        if let Some(a) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        }
    }
    if let Some(v) = conn.forwarded_for(parts.headers.get("x-forwarded-for")) {
        parts
            .headers
            .insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    parts.headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if conn.https { "https" } else { "http" }),
    );
    parts.headers.insert(
        HeaderName::from_static("x-forwarded-port"),
        conn.port_value.clone(),
    );
    // Targets get origin form. A request that is already in it (every HTTP/1 request but
    // absolute-form ones) keeps its URI rather than being parsed again.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = parts.uri.path_and_query().map_or_else(
            || http::Uri::from_static("/"),
            |pq| http::Uri::try_from(pq.as_str()).unwrap_or_else(|_| http::Uri::from_static("/")),
        );
    } else if parts.uri.path_and_query().is_none() {
        parts.uri = http::Uri::from_static("/");
    }
    parts.version = http::Version::HTTP_11;
    let body: UpstreamBody = if body.is_end_stream() {
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        ClientBody {
            inner: body,
            remaining: client.max_body_bytes,
            limit: client.max_body_bytes,
            timeout: client.body_read_timeout,
            sleep: None,
        }
        .boxed_unsync()
    };
    let upstream_req = Request::from_parts(parts, body);

    let sent_at = Instant::now();
    let timeout = group.cfg.target_timeout;
    let res = tokio::time::timeout(
        timeout,
        target
            .pool
            .send(&*shared.connector, group.cfg.connect_timeout, upstream_req),
    )
    .await;
    let (resp, sender) = match res {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            let err = match e {
                SendError::Connect(source) => ProxyError::Connect {
                    target: target.addr,
                    source,
                },
                SendError::ConnectTimeout => ProxyError::ConnectTimeout {
                    target: target.addr,
                    timeout: group.cfg.connect_timeout,
                },
                SendError::Http(source) => match body_error_in(&source) {
                    Some(BodyError::TooLarge { limit }) => {
                        ProxyError::BodyTooLarge { limit: *limit }
                    }
                    Some(BodyError::Timeout { timeout }) => {
                        ProxyError::ClientBodyTimeout { timeout: *timeout }
                    }
                    _ => ProxyError::BadResponse {
                        target: target.addr,
                        source,
                    },
                },
            };
            guard.outcome = match &err {
                ProxyError::Connect { .. } => Outcome::ConnectError,
                ProxyError::ConnectTimeout { .. } => Outcome::Timeout,
                ProxyError::BadResponse { .. } => Outcome::BadResponse,
                other => Outcome::Status(other.status().as_u16()),
            };
            tracing::debug!(error = %err, party = ?err.party(), retry_safe = err.retry_safe(), "proxy error");
            guard.error = Some(err.to_string());
            return simple(err.status(), None);
        }
        Err(_) => {
            let err = ProxyError::TargetTimeout {
                target: target.addr,
                timeout,
            };
            guard.outcome = Outcome::Timeout;
            guard.error = Some(err.to_string());
            return simple(err.status(), None);
        }
    };
    guard.latency = Some(sent_at.elapsed());
    guard.outcome = Outcome::Status(resp.status().as_u16());
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(st) = &group.cfg.stickiness {
        if sticky != Some(group.sticky_ids[idx]) {
            let cookie = format!(
                "{STICKY_COOKIE}={:016x}; Max-Age={}; Path=/; HttpOnly",
                group.sticky_ids[idx],
                st.duration.as_secs()
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                parts.headers.append(header::SET_COOKIE, v);
            }
        }
    }
    let ended = body.is_end_stream();
    let done = Box::new(Done {
        guard,
        sender: Some(sender),
        target,
        ended,
    });
    Response::from_parts(
        parts,
        ProxyBody::Upstream {
            inner: body,
            done: Some(done),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_alb() {
        assert!(glob(b"/api/*", b"/api/v1/x", false));
        assert!(!glob(b"/api/*", b"/API/v1", false));
        assert!(glob(b"*.example.com", b"ACME.example.com", true));
        assert!(glob(b"/img/???.png", b"/img/abc.png", false));
        assert!(!glob(b"/img/???.png", b"/img/abcd.png", false));
        assert!(glob(b"*", b"", false));
        assert!(!glob(b"a", b"", false));
    }

    #[test]
    fn slow_start_gives_a_new_target_a_small_share_and_draining_none() {
        use crate::config::HealthCheckConfig;
        let hc = HealthCheckConfig {
            enabled: false,
            ..HealthCheckConfig::default()
        };
        let target = |port: u16| {
            let series = Arc::new(Series::new(Default::default(), 5));
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            Arc::new(TargetRt::new_sharded(1, addr, hc.clone(), 4, series))
        };
        let (old, new) = (target(1), target(2));
        old.backdate_healthy_since(Duration::from_secs(60));
        for algorithm in [Algorithm::RoundRobin, Algorithm::LeastOutstandingRequests] {
            let mut cfg = TargetGroupConfig::new("g", vec![old.addr, new.addr]);
            cfg.slow_start = Duration::from_secs(30);
            cfg.algorithm = algorithm;
            let g = GroupRt::new(cfg, vec![old.clone(), new.clone()], vec![]);
            let picks_new = (0..1000)
                .filter(|_| g.pick(None).unwrap().1.addr == new.addr)
                .count();
            assert!(
                picks_new < 150,
                "{algorithm:?}: new target got {picks_new} of 1000"
            );
            if algorithm == Algorithm::RoundRobin {
                assert!(picks_new > 0, "new target got nothing");
            }
        }
        // Under least outstanding requests the new target counts as 20 times as loaded at
        // first (5% share), so it gets requests once the old one is busier than that.
        old.in_flight.store(30, Ordering::Relaxed);
        let mut cfg = TargetGroupConfig::new("g", vec![old.addr, new.addr]);
        cfg.slow_start = Duration::from_secs(30);
        cfg.algorithm = Algorithm::LeastOutstandingRequests;
        let g = GroupRt::new(cfg, vec![old.clone(), new.clone()], vec![]);
        assert_eq!(g.pick(None).unwrap().1.addr, new.addr);
        old.in_flight.store(0, Ordering::Relaxed);

        new.start_draining();
        let g = GroupRt::new(
            TargetGroupConfig::new("g", vec![]),
            vec![old.clone(), new.clone()],
            vec![],
        );
        assert!((0..100).all(|_| g.pick(None).unwrap().1.addr == old.addr));
    }

    #[test]
    fn port_is_stripped_from_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn tenant_comes_from_header_subdomain_or_path() {
        let req = Request::get("/acme/expenses")
            .header("host", "globex.example.com:80")
            .header("x-tenant-id", "Initech")
            .body(())
            .unwrap();
        assert_eq!(
            tenant_of(&TenantKey::Header("x-tenant-id".into()), &req),
            "initech"
        );
        assert_eq!(tenant_of(&TenantKey::HostSubdomain, &req), "globex");
        assert_eq!(tenant_of(&TenantKey::PathPrefix, &req), "acme");
        let bare = Request::get("/").body(()).unwrap();
        assert_eq!(
            tenant_of(&TenantKey::Header("x-tenant-id".into()), &bare),
            "-"
        );
    }
}
