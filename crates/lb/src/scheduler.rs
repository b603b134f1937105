//! The tenant scheduler: an adaptive concurrency limit shared by a target group, deficit round
//! robin over per-tenant queues, per-tenant in-flight caps, bounded queues with deadlines and
//! optional per-tenant token buckets.
//!
//! Everything here is pure and deterministic: time is passed in, nothing sleeps, spawns or
//! locks. The proxy wraps a [`Scheduler`] in a mutex and maps [`TicketId`]s to wakers.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use http::StatusCode;

/// Settings of the scheduler of one target group.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// Concurrency limit to start from.
    pub initial_limit: u32,
    /// The adaptive limit never goes below this.
    pub min_limit: u32,
    /// The adaptive limit never goes above this.
    pub max_limit: u32,
    /// Whether the limit adapts to latency; when false it stays at `initial_limit`.
    pub adaptive: bool,
    /// Latency ratio tolerated over the no-load latency before the limit shrinks.
    pub tolerance: f64,
    /// Requests one tenant may have in flight at once.
    pub max_in_flight_per_tenant: Option<u32>,
    /// Requests one tenant may have waiting; more are refused with 429.
    pub max_queue_per_tenant: usize,
    /// Longest wait in a queue; then the request is refused with 503.
    pub queue_timeout: Duration,
    /// Requests a tenant may send per turn of the round robin.
    pub quantum: u32,
    /// Optional rate limit per tenant.
    pub token_bucket: Option<TokenBucketConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            initial_limit: 20,
            min_limit: 2,
            max_limit: 1000,
            adaptive: true,
            tolerance: 1.1,
            max_in_flight_per_tenant: None,
            max_queue_per_tenant: 64,
            queue_timeout: Duration::from_secs(1),
            quantum: 1,
            token_bucket: None,
        }
    }
}

impl SchedulerConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.min_limit == 0 || self.min_limit > self.max_limit {
            return Err("limits must satisfy 1 <= min_limit <= max_limit".into());
        }
        if !(self.min_limit..=self.max_limit).contains(&self.initial_limit) {
            return Err("initial_limit must lie between min_limit and max_limit".into());
        }
        if self.quantum == 0 {
            return Err("quantum must be at least 1".into());
        }
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            return Err("tolerance must be at least 1.0".into());
        }
        if let Some(tb) = &self.token_bucket {
            if !(tb.rate_per_sec > 0.0 && tb.rate_per_sec.is_finite()) || tb.burst == 0 {
                return Err("token bucket needs a positive rate and burst".into());
            }
        }
        if self.max_in_flight_per_tenant == Some(0) {
            return Err("max_in_flight_per_tenant must be at least 1".into());
        }
        Ok(())
    }
}

/// A per-tenant token bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucketConfig {
    /// Tokens added per second.
    pub rate_per_sec: f64,
    /// Bucket size.
    pub burst: u32,
}

/// Identifies a queued request.
pub type TicketId = u64;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The tenant's queue is full (429).
    QueueFull,
    /// The tenant's token bucket is empty (429).
    RateLimited,
    /// The request waited in its queue past the deadline (503).
    QueueTimeout,
}

impl RejectReason {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            RejectReason::QueueFull | RejectReason::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            RejectReason::QueueTimeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RejectReason::QueueFull => "its queue is full",
            RejectReason::RateLimited => "it is over its request rate",
            RejectReason::QueueTimeout => "it waited in its queue past the deadline",
        })
    }
}

/// The scheduler's answer to a new request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go now; call [`Scheduler::complete`] when done.
    Admit,
    /// Wait for this ticket to be dispatched (or expired).
    Queued(TicketId),
    /// Refuse.
    Reject {
        reason: RejectReason,
        retry_after: Duration,
    },
}

/// What the caller must do after [`Scheduler::complete`] or [`Scheduler::poll`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// These tickets may go now; each must later call `complete`.
    pub dispatched: Vec<TicketId>,
    /// These tickets waited too long and must be answered 503.
    pub expired: Vec<TicketId>,
}

/// What [`Scheduler::cancel`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The ticket was still waiting and is gone now.
    WasQueued,
    /// The ticket was no longer waiting (dispatched or expired before).
    NotQueued,
}

/// An adaptive concurrency limit in the spirit of Netflix's gradient limit: the limit follows
/// `limit * min(1, tolerance * rtt_noload / rtt_recent)`, plus a little headroom while that
/// ratio is 1, where `rtt_noload` is the
/// lowest recent window average. When latency grows because targets queue, the limit shrinks
/// towards the targets' real concurrency; when latency stays at its floor it grows.
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    limit: f64,
    min: f64,
    max: f64,
    tolerance: f64,
    window_start: Option<Instant>,
    window_sum: Duration,
    window_count: u32,
    window_max_in_flight: u32,
    /// Averages of the most recent windows; their minimum is the no-load latency.
    history: VecDeque<Duration>,
}

const WINDOW: Duration = Duration::from_millis(100);
const WINDOW_MIN_SAMPLES: u32 = 8;
const HISTORY: usize = 100;
const SMOOTHING: f64 = 0.3;

impl AdaptiveLimit {
    /// A limit starting at `initial`.
    pub fn new(initial: u32, min: u32, max: u32, tolerance: f64) -> Self {
        AdaptiveLimit {
            limit: initial as f64,
            min: min as f64,
            max: max as f64,
            tolerance,
            window_start: None,
            window_sum: Duration::ZERO,
            window_count: 0,
            window_max_in_flight: 0,
            history: VecDeque::new(),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit.round() as u32
    }

    /// The current no-load latency estimate.
    pub fn rtt_noload(&self) -> Option<Duration> {
        self.history.iter().min().copied()
    }

    /// Records one request's latency; `in_flight` is the count when it started.
    pub fn sample(&mut self, rtt: Duration, in_flight: u32, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        self.window_sum += rtt;
        self.window_count += 1;
        self.window_max_in_flight = self.window_max_in_flight.max(in_flight);
        if now.duration_since(start) < WINDOW || self.window_count < WINDOW_MIN_SAMPLES {
            return;
        }
        let avg = self.window_sum / self.window_count;
        let busy = self.window_max_in_flight as f64 >= self.limit / 2.0;
        self.window_start = Some(now);
        self.window_sum = Duration::ZERO;
        self.window_count = 0;
        self.window_max_in_flight = 0;
        self.history.push_back(avg);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let noload = self.rtt_noload().unwrap_or(avg).as_secs_f64().max(1e-6);
        let gradient = (self.tolerance * noload / avg.as_secs_f64().max(1e-6)).clamp(0.5, 1.0);
        // Probe upwards only while latency is within tolerance; once targets queue, the
        // gradient alone pulls the limit back to where they stop queueing.
        let headroom = if gradient >= 1.0 {
            self.limit.sqrt().min(4.0)
        } else {
            0.0
        };
        let mut target = self.limit * gradient + headroom;
        if !busy {
            // Targets that are not kept busy say nothing about how much more they could take.
            target = target.min(self.limit);
        }
        self.limit =
            (self.limit * (1.0 - SMOOTHING) + target * SMOOTHING).clamp(self.min, self.max);
    }
}

#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct Tenant {
    in_flight: u32,
    deficit: u32,
    queue: VecDeque<(TicketId, Instant)>,
    bucket: Option<TokenBucket>,
    in_active: bool,
}

/// Deficit round robin over per-tenant queues under a shared adaptive limit.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    limit: AdaptiveLimit,
    in_flight: u32,
    tenants: HashMap<String, Tenant>,
    /// Tenants with waiting requests, in round-robin order.
    active: VecDeque<String>,
    /// Where each waiting ticket sits.
    tickets: HashMap<TicketId, String>,
    next_ticket: TicketId,
}

impl Scheduler {
    /// A scheduler with nothing in flight.
    pub fn new(cfg: SchedulerConfig) -> Self {
        let limit = AdaptiveLimit::new(
            cfg.initial_limit,
            cfg.min_limit,
            cfg.max_limit,
            cfg.tolerance,
        );
        Scheduler {
            cfg,
            limit,
            in_flight: 0,
            tenants: HashMap::new(),
            active: VecDeque::new(),
            tickets: HashMap::new(),
            next_ticket: 1,
        }
    }

    /// The config it runs with.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// The concurrency limit now in force.
    pub fn limit(&self) -> u32 {
        if self.cfg.adaptive {
            self.limit.limit()
        } else {
            self.cfg.initial_limit
        }
    }

    /// Requests admitted and not completed.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// A tenant's requests in flight.
    pub fn tenant_in_flight(&self, tenant: &str) -> u32 {
        self.tenants.get(tenant).map_or(0, |t| t.in_flight)
    }

    /// A tenant's waiting requests.
    pub fn tenant_queued(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.queue.len())
    }

    /// Number of tenants the scheduler keeps state for.
    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    fn tenant_cap(&self) -> u32 {
        self.cfg.max_in_flight_per_tenant.unwrap_or(u32::MAX)
    }

    /// A new request from `tenant` arrives.
    pub fn offer(&mut self, tenant: &str, now: Instant) -> Decision {
        let rate = self.cfg.token_bucket.clone();
        let cap = self.tenant_cap();
        let room = self.in_flight < self.limit();
        let t = self
            .tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Tenant {
                in_flight: 0,
                deficit: 0,
                queue: VecDeque::new(),
                bucket: rate.as_ref().map(|r| TokenBucket {
                    tokens: r.burst as f64,
                    last: now,
                }),
                in_active: false,
            });
        if let (Some(r), Some(b)) = (rate.as_ref(), t.bucket.as_mut()) {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * r.rate_per_sec).min(r.burst as f64);
            b.last = now;
            if b.tokens < 1.0 {
                let wait = Duration::from_secs_f64((1.0 - b.tokens) / r.rate_per_sec);
                return Decision::Reject {
                    reason: RejectReason::RateLimited,
                    retry_after: wait,
                };
            }
            b.tokens -= 1.0;
        }
        // Waiting tenants are all blocked by their own caps (dispatch runs whenever a slot
        // frees), so a tenant with an empty queue and room under its cap may go first.
        if room && t.queue.is_empty() && t.in_flight < cap {
            t.in_flight += 1;
            self.in_flight += 1;
            return Decision::Admit;
        }
        if t.queue.len() >= self.cfg.max_queue_per_tenant {
            let retry_after = self.cfg.queue_timeout.max(Duration::from_secs(1));
            return Decision::Reject {
                reason: RejectReason::QueueFull,
                retry_after,
            };
        }
        let id = self.next_ticket;
        self.next_ticket += 1;
        t.queue.push_back((id, now + self.cfg.queue_timeout));
        if !t.in_active {
            t.in_active = true;
            self.active.push_back(tenant.to_owned());
        }
        self.tickets.insert(id, tenant.to_owned());
        Decision::Queued(id)
    }

    /// A request of `tenant` finished. `latency` is its time to first response byte when the
    /// target answered, `None` when it failed before that (such requests do not teach the
    /// limit anything). `started_in_flight` is [`Scheduler::in_flight`] when it was admitted.
    pub fn complete(
        &mut self,
        tenant: &str,
        latency: Option<Duration>,
        started_in_flight: u32,
        now: Instant,
    ) -> Wakeups {
        if let Some(t) = self.tenants.get_mut(tenant) {
            if t.in_flight > 0 {
                t.in_flight -= 1;
                self.in_flight = self.in_flight.saturating_sub(1);
            }
        }
        if let (Some(rtt), true) = (latency, self.cfg.adaptive) {
            self.limit.sample(rtt, started_in_flight, now);
        }
        let w = self.poll(now);
        self.forget_idle(tenant);
        w
    }

    /// A waiting request gave up (its client left or its own timer fired).
    pub fn cancel(&mut self, ticket: TicketId) -> Cancelled {
        let Some(tenant) = self.tickets.remove(&ticket) else {
            return Cancelled::NotQueued;
        };
        if let Some(t) = self.tenants.get_mut(&tenant) {
            t.queue.retain(|(id, _)| *id != ticket);
            if t.queue.is_empty() && t.in_active {
                t.in_active = false;
                t.deficit = 0;
                self.active.retain(|n| n != &tenant);
            }
        }
        self.forget_idle(&tenant);
        Cancelled::WasQueued
    }

    /// Expires waiting requests past their deadline and dispatches what fits.
    pub fn poll(&mut self, now: Instant) -> Wakeups {
        let mut w = Wakeups::default();
        // Expire first, so an expired request never takes a slot.
        for name in &self.active {
            let Some(t) = self.tenants.get_mut(name) else {
                continue;
            };
            while let Some(&(id, deadline)) = t.queue.front() {
                if deadline > now {
                    break;
                }
                t.queue.pop_front();
                self.tickets.remove(&id);
                w.expired.push(id);
            }
        }
        self.drop_empty_from_active();
        let cap = self.tenant_cap();
        let mut blocked_in_a_row = 0;
        while self.in_flight < self.limit() && !self.active.is_empty() {
            if blocked_in_a_row >= self.active.len() {
                break;
            }
            let name = self.active.front().cloned().expect("active is not empty");
            let t = self.tenants.get_mut(&name).expect("active tenants exist");
            if t.in_flight >= cap {
                blocked_in_a_row += 1;
                self.active.rotate_left(1);
                continue;
            }
            if t.deficit == 0 {
                t.deficit = self.cfg.quantum;
            }
            let (id, _) = t.queue.pop_front().expect("active tenants have a queue");
            self.tickets.remove(&id);
            t.deficit -= 1;
            t.in_flight += 1;
            self.in_flight += 1;
            w.dispatched.push(id);
            blocked_in_a_row = 0;
            if t.queue.is_empty() {
                t.in_active = false;
                t.deficit = 0;
                self.active.pop_front();
            } else if t.deficit == 0 {
                self.active.rotate_left(1);
            }
        }
        w
    }

    fn drop_empty_from_active(&mut self) {
        let tenants = &mut self.tenants;
        self.active.retain(|name| match tenants.get_mut(name) {
            Some(t) if !t.queue.is_empty() => true,
            Some(t) => {
                t.in_active = false;
                t.deficit = 0;
                false
            }
            None => false,
        });
    }

    /// Drops a tenant's state once it holds nothing worth keeping, so tenant names sent by
    /// clients can't grow memory without bound.
    fn forget_idle(&mut self, tenant: &str) {
        let burst = self.cfg.token_bucket.as_ref().map(|b| b.burst as f64);
        if let Some(t) = self.tenants.get(tenant) {
            let bucket_full = match (&t.bucket, burst) {
                (Some(b), Some(burst)) => b.tokens >= burst,
                _ => true,
            };
            if t.in_flight == 0 && t.queue.is_empty() && bucket_full {
                self.tenants.remove(tenant);
            }
        }
    }

    /// The earliest queue deadline, so the caller knows when to call [`Scheduler::poll`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter_map(|n| {
                self.tenants
                    .get(n)
                    .and_then(|t| t.queue.front().map(|q| q.1))
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(limit: u32) -> SchedulerConfig {
        SchedulerConfig {
            initial_limit: limit,
            min_limit: 1,
            max_limit: 100,
            adaptive: false,
            max_queue_per_tenant: 100,
            queue_timeout: Duration::from_secs(1),
            ..SchedulerConfig::default()
        }
    }

    fn ticket(d: Decision) -> TicketId {
        match d {
            Decision::Queued(id) => id,
            other => panic!("expected a ticket, got {other:?}"),
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_queues() {
        let now = Instant::now();
        let mut s = Scheduler::new(cfg(2));
        assert_eq!(s.offer("a", now), Decision::Admit);
        assert_eq!(s.offer("b", now), Decision::Admit);
        let t = ticket(s.offer("a", now));
        assert_eq!(s.in_flight(), 2);
        let w = s.complete("b", Some(Duration::from_millis(5)), 1, now);
        assert_eq!(w.dispatched, vec![t]);
        assert_eq!(s.tenant_in_flight("a"), 2);
    }

    #[test]
    fn round_robin_between_backlogged_tenants() {
        let now = Instant::now();
        let mut s = Scheduler::new(cfg(1));
        assert_eq!(s.offer("flood", now), Decision::Admit);
        let flood: Vec<_> = (0..5).map(|_| ticket(s.offer("flood", now))).collect();
        let calm1 = ticket(s.offer("calm", now));
        let calm2 = ticket(s.offer("calm", now));
        let mut order = Vec::new();
        let mut who = String::from("flood");
        for _ in 0..7 {
            let w = s.complete(&who, Some(Duration::from_millis(1)), 1, now);
            assert_eq!(w.dispatched.len(), 1);
            let id = w.dispatched[0];
            order.push(id);
            who = if flood.contains(&id) {
                "flood".into()
            } else {
                "calm".into()
            };
        }
        // The calm tenant's two requests come out within its first two turns, interleaved
        // with the flood, not after the flood's five.
        let pos1 = order.iter().position(|&i| i == calm1).unwrap();
        let pos2 = order.iter().position(|&i| i == calm2).unwrap();
        assert!(pos1 <= 1 && pos2 <= 3, "order {order:?}");
    }

    #[test]
    fn quantum_lets_a_tenant_send_several_per_turn() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            quantum: 2,
            ..cfg(1)
        });
        assert_eq!(s.offer("x", now), Decision::Admit);
        let a: Vec<_> = (0..4).map(|_| ticket(s.offer("a", now))).collect();
        (0..4).for_each(|_| {
            ticket(s.offer("b", now));
        });
        let mut order = Vec::new();
        let mut who = "x".to_string();
        for _ in 0..8 {
            let w = s.complete(&who, None, 1, now);
            let id = w.dispatched[0];
            who = if a.contains(&id) {
                "a".into()
            } else {
                "b".into()
            };
            order.push(who.clone());
        }
        assert_eq!(order, ["a", "a", "b", "b", "a", "a", "b", "b"]);
    }

    #[test]
    fn per_tenant_cap_lets_others_pass() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            max_in_flight_per_tenant: Some(1),
            ..cfg(3)
        });
        assert_eq!(s.offer("a", now), Decision::Admit);
        let queued_a = ticket(s.offer("a", now));
        // "a" is at its cap, so "b" goes straight through although "a" waits.
        assert_eq!(s.offer("b", now), Decision::Admit);
        assert_eq!(s.tenant_queued("a"), 1);
        let w = s.complete("a", None, 2, now);
        assert_eq!(w.dispatched, vec![queued_a]);
    }

    #[test]
    fn bounded_queue_rejects_with_429_and_retry_after() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            max_queue_per_tenant: 2,
            ..cfg(1)
        });
        assert_eq!(s.offer("a", now), Decision::Admit);
        ticket(s.offer("a", now));
        ticket(s.offer("a", now));
        match s.offer("a", now) {
            Decision::Reject {
                reason,
                retry_after,
            } => {
                assert_eq!(reason, RejectReason::QueueFull);
                assert_eq!(reason.status(), StatusCode::TOO_MANY_REQUESTS);
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        // Another tenant still gets a place in its own queue.
        ticket(s.offer("b", now));
    }

    #[test]
    fn queue_deadline_expires_waiting_requests() {
        let now = Instant::now();
        let mut s = Scheduler::new(cfg(1));
        assert_eq!(s.offer("a", now), Decision::Admit);
        let t = ticket(s.offer("b", now));
        assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(s.poll(now + Duration::from_millis(999)), Wakeups::default());
        let w = s.poll(now + Duration::from_secs(1));
        assert_eq!(w.expired, vec![t]);
        assert!(w.dispatched.is_empty());
        assert_eq!(s.cancel(t), Cancelled::NotQueued);
        // An expired request never takes the slot that frees up later.
        let w = s.complete("a", None, 1, now + Duration::from_secs(2));
        assert_eq!(w, Wakeups::default());
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn cancel_removes_a_waiting_request() {
        let now = Instant::now();
        let mut s = Scheduler::new(cfg(1));
        assert_eq!(s.offer("a", now), Decision::Admit);
        let t1 = ticket(s.offer("b", now));
        let t2 = ticket(s.offer("c", now));
        assert_eq!(s.cancel(t1), Cancelled::WasQueued);
        let w = s.complete("a", None, 1, now);
        assert_eq!(w.dispatched, vec![t2]);
    }

    #[test]
    fn token_bucket_limits_rate_per_tenant() {
        let now = Instant::now();
        let tb = TokenBucketConfig {
            rate_per_sec: 10.0,
            burst: 2,
        };
        let mut s = Scheduler::new(SchedulerConfig {
            token_bucket: Some(tb),
            ..cfg(100)
        });
        assert_eq!(s.offer("a", now), Decision::Admit);
        assert_eq!(s.offer("a", now), Decision::Admit);
        match s.offer("a", now) {
            Decision::Reject {
                reason: RejectReason::RateLimited,
                retry_after,
            } => {
                assert_eq!(retry_after, Duration::from_millis(100));
            }
            other => panic!("expected rate limiting, got {other:?}"),
        }
        assert_eq!(s.offer("b", now), Decision::Admit);
        assert_eq!(
            s.offer("a", now + Duration::from_millis(100)),
            Decision::Admit
        );
    }

    #[test]
    fn idle_tenants_are_forgotten() {
        let now = Instant::now();
        let mut s = Scheduler::new(cfg(10));
        for i in 0..50 {
            let name = format!("t{i}");
            assert_eq!(s.offer(&name, now), Decision::Admit);
            s.complete(&name, None, 1, now);
        }
        assert_eq!(s.tenant_count(), 0);
    }

    #[test]
    fn adaptive_limit_shrinks_when_latency_grows_and_grows_back() {
        let start = Instant::now();
        let mut l = AdaptiveLimit::new(8, 2, 200, 1.1);
        let mut now = start;
        // Targets that serve 16 at a time with 10 ms each: latency grows with concurrency
        // beyond that. Starting below capacity, the limit finds the floor and then the knee.
        let latency = |limit: u32| Duration::from_micros(10_000 * (limit.max(16) as u64) / 16);
        for _ in 0..3000 {
            now += Duration::from_millis(2);
            let lim = l.limit();
            l.sample(latency(lim), lim, now);
        }
        let settled = l.limit();
        assert!((16..=24).contains(&settled), "limit settled at {settled}");
        // Capacity doubles (the auto scaler added targets): the limit follows.
        let latency2 = |limit: u32| Duration::from_micros(10_000 * (limit.max(32) as u64) / 32);
        for _ in 0..3000 {
            now += Duration::from_millis(2);
            let lim = l.limit();
            l.sample(latency2(lim), lim, now);
        }
        let grown = l.limit();
        assert!((32..=44).contains(&grown), "limit grew to {grown}");
    }
}
