//! Targets at run time: health, draining, slow start, in-flight counts and their pool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::config::{HealthCheckConfig, Matcher};
use crate::metrics::Series;
use crate::upstream::{Pool, UpstreamConnector};

/// A target's health, with ALB's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum HealthState {
    /// Registered; not yet passed its health checks.
    Initial,
    /// Receiving traffic.
    Healthy,
    /// Failed its health checks.
    Unhealthy,
    /// Deregistered; finishing in-flight requests.
    Draining,
}

impl HealthState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            3 => HealthState::Draining,
            _ => HealthState::Initial,
        }
    }
}

/// While a new target waits for its first passing check, it is probed this often (or at the
/// group's interval, if shorter).
pub const NEW_TARGET_PROBE: Duration = Duration::from_millis(100);

/// The pure part of health checking: consecutive results against thresholds.
///
/// One deliberate difference from ALB: a newly registered target (`Initial`) goes in service
/// on its first passing check instead of after `healthy_threshold` of them, and until then
/// it is probed every [`NEW_TARGET_PROBE`] besides its regular checks; a failed probe counts
/// for nothing ([`HealthTracker::probe`]), so it still takes `unhealthy_threshold` regular
/// checks to call it unhealthy. A target that was healthy once and failed needs the full
/// threshold to come back. This is what lets a fresh instance serve within milliseconds of
/// listening rather than two intervals later.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    state: HealthState,
    ok_run: u32,
    fail_run: u32,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl HealthTracker {
    /// A tracker for a newly registered target.
    pub fn new(healthy_threshold: u32, unhealthy_threshold: u32) -> Self {
        HealthTracker {
            state: HealthState::Initial,
            ok_run: 0,
            fail_run: 0,
            healthy_threshold,
            unhealthy_threshold,
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Records a probe of a new target between its regular checks: a pass counts like a
    /// check, a failure is ignored.
    pub fn probe(&mut self, ok: bool) -> Option<HealthState> {
        if ok {
            self.observe(true)
        } else {
            None
        }
    }

    /// Whether the target still waits for its first passing check (and is probed).
    pub fn probing(&self) -> bool {
        self.state == HealthState::Initial
    }

    /// Records one check; returns the new state when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<HealthState> {
        if ok {
            self.ok_run += 1;
            self.fail_run = 0;
        } else {
            self.fail_run += 1;
            self.ok_run = 0;
        }
        let next = match self.state {
            HealthState::Healthy if self.fail_run >= self.unhealthy_threshold => {
                HealthState::Unhealthy
            }
            HealthState::Initial if self.ok_run >= 1 => HealthState::Healthy,
            HealthState::Unhealthy if self.ok_run >= self.healthy_threshold => HealthState::Healthy,
            HealthState::Initial if self.fail_run >= self.unhealthy_threshold => {
                HealthState::Unhealthy
            }
            s => s,
        };
        (next != self.state).then(|| {
            self.state = next;
            next
        })
    }
}

/// A registered (or draining) target.
pub(crate) struct TargetRt {
    pub(crate) addr: SocketAddr,
    state: AtomicU8,
    draining: AtomicBool,
    pub(crate) in_flight: AtomicU32,
    healthy_since: Mutex<Option<Instant>>,
    pub(crate) pool: Pool,
    pub(crate) series: Arc<Series>,
    pub(crate) health_config: ArcSwap<HealthCheckConfig>,
    pub(crate) health_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Woken when the last in-flight request of a draining target ends.
    idle: tokio::sync::Notify,
    /// Set once the target finished draining. It lives on the target, not in a state
    /// snapshot, so an apply that copies the draining lists can never bring it back.
    drained: tokio::sync::watch::Sender<bool>,
}

/// Resolves once a deregistered target finished draining: its last in-flight request ended,
/// or its deregistration delay passed.
#[derive(Debug)]
pub struct DrainWatch(tokio::sync::watch::Receiver<bool>);

impl DrainWatch {
    /// Waits until the target drained or `deadline` passed; whether it drained.
    pub async fn wait_until(mut self, deadline: Instant) -> bool {
        let done = self.0.wait_for(|d| *d);
        tokio::time::timeout_at(deadline.into(), done)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl TargetRt {
    pub(crate) fn new_sharded(
        shards: usize,
        addr: SocketAddr,
        hc: HealthCheckConfig,
        max_idle: usize,
        series: Arc<Series>,
    ) -> Self {
        let t = TargetRt {
            addr,
            state: AtomicU8::new(0),
            draining: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            healthy_since: Mutex::new(None),
            pool: Pool::new(addr, max_idle, shards),
            series,
            health_config: ArcSwap::from_pointee(hc.clone()),
            health_task: Mutex::new(None),
            idle: tokio::sync::Notify::new(),
            drained: tokio::sync::watch::channel(false).0,
        };
        if !hc.enabled {
            t.set_state(HealthState::Healthy);
        }
        t
    }

    pub(crate) fn state(&self) -> HealthState {
        if self.draining.load(Ordering::Relaxed) {
            HealthState::Draining
        } else {
            HealthState::from_u8(self.state.load(Ordering::Relaxed))
        }
    }

    pub(crate) fn set_state(&self, s: HealthState) {
        let v = match s {
            HealthState::Initial => 0,
            HealthState::Healthy => 1,
            HealthState::Unhealthy => 2,
            HealthState::Draining => 3,
        };
        let old = self.state.swap(v, Ordering::Relaxed);
        if s == HealthState::Healthy && old != 1 {
            *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        if s == HealthState::Unhealthy {
            self.pool.clear();
        }
    }

    pub(crate) fn routable(&self) -> bool {
        self.state() == HealthState::Healthy
    }

    /// Share of traffic during slow start, in (0, 1].
    pub(crate) fn slow_start_factor(&self, slow_start: Duration) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        match *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(since) => {
                (since.elapsed().as_secs_f64() / slow_start.as_secs_f64()).clamp(0.05, 1.0)
            }
            None => 1.0,
        }
    }

    #[cfg(test)]
    pub(crate) fn backdate_healthy_since(&self, by: Duration) {
        *self.healthy_since.lock().unwrap() = Some(Instant::now() - by);
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.stop_health_checks();
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Counts a request sent to the target. `false` (and nothing counted) when the target
    /// started draining meanwhile: the drain may already have seen it idle, so the request
    /// must go elsewhere. Both sides use `SeqCst`, so either the drain sees this request in
    /// flight or this sees the drain.
    pub(crate) fn begin_request(&self) -> bool {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.is_draining() {
            self.end_request();
            return false;
        }
        true
    }

    /// Counts a request to the target as ended; wakes the drain when it was the last one.
    pub(crate) fn end_request(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_draining() {
            self.idle.notify_waiters();
        }
    }

    /// Waits, after `start_draining`, until no request is in flight or `delay` passed; then
    /// marks the target drained.
    pub(crate) async fn drain(&self, delay: Duration) {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a request ending in between still wakes us.
            idle.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.pool.clear();
        self.drained.send_replace(true);
    }

    /// Whether the target finished draining.
    pub(crate) fn is_drained(&self) -> bool {
        *self.drained.borrow()
    }

    /// A watch on the end of this target's draining.
    pub(crate) fn drain_watch(&self) -> DrainWatch {
        DrainWatch(self.drained.subscribe())
    }

    pub(crate) fn stop_health_checks(&self) {
        if let Some(h) = self
            .health_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

/// Runs the health checks of one target until aborted.
pub(crate) fn spawn_health_checks(
    handle: &tokio::runtime::Handle,
    target: Arc<TargetRt>,
    connector: Arc<dyn UpstreamConnector>,
) {
    let hc = target.health_config.load_full();
    if !hc.enabled {
        return;
    }
    let weak = Arc::downgrade(&target);
    let task = handle.spawn(async move {
        let mut tracker = HealthTracker::new(hc.healthy_threshold, hc.unhealthy_threshold);
        // The first check runs at once, at registration: it counts as a regular one.
        let mut next_regular = Instant::now();
        loop {
            let Some(target) = weak.upgrade() else { return };
            let hc = target.health_config.load_full();
            let matcher = Matcher::parse(&hc.matcher).unwrap_or_else(|_| Matcher::parse("200").expect("valid"));
            let started = Instant::now();
            let regular = started >= next_regular;
            if regular {
                next_regular = started + hc.interval;
            }
            let ok = matches!(
                tokio::time::timeout(hc.timeout, check_once(&*connector, target.addr, &hc.path)).await,
                Ok(Some(status)) if matcher.matches(status)
            );
            tracker.healthy_threshold = hc.healthy_threshold;
            tracker.unhealthy_threshold = hc.unhealthy_threshold;
            let changed = if regular {
                tracker.observe(ok)
            } else {
                tracker.probe(ok)
            };
            if let Some(state) = changed {
                tracing::info!(target_addr = %target.addr, ?state, "target health changed");
                target.set_state(state);
            }
            drop(target);
            let next = if tracker.probing() {
                next_regular.min(started + NEW_TARGET_PROBE.min(hc.interval))
            } else {
                next_regular
            };
            tokio::time::sleep_until(next.into()).await;
        }
    });
    *target.health_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
}

async fn check_once(
    connector: &dyn UpstreamConnector,
    addr: SocketAddr,
    path: &str,
) -> Option<u16> {
    let stream = connector.connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    let conn = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, "spindle-lb-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    conn.abort();
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_target_is_healthy_on_its_first_pass_and_probes_only_count_passes() {
        let mut t = HealthTracker::new(3, 2);
        assert!(t.probing());
        assert_eq!(t.observe(false), None);
        for _ in 0..10 {
            assert_eq!(t.probe(false), None, "a failed probe counts for nothing");
        }
        assert_eq!(t.probe(true), Some(HealthState::Healthy));
        assert!(!t.probing());
        let mut t = HealthTracker::new(3, 2);
        assert_eq!(t.observe(true), Some(HealthState::Healthy));
    }

    #[test]
    fn thresholds_drive_transitions() {
        let mut t = HealthTracker::new(2, 3);
        assert_eq!(t.observe(true), Some(HealthState::Healthy));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None, "a success resets the failure run");
        for _ in 0..2 {
            assert_eq!(t.observe(false), None);
        }
        assert_eq!(t.observe(false), Some(HealthState::Unhealthy));
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(HealthState::Healthy));
    }

    #[test]
    fn initial_target_that_fails_becomes_unhealthy() {
        let mut t = HealthTracker::new(2, 2);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(HealthState::Unhealthy));
        assert_eq!(t.state(), HealthState::Unhealthy);
    }
}
