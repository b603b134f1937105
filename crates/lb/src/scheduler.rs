//! The tenant scheduler of one target: its adaptive concurrency limit, weighted deficit round
//! robin over per-tenant queues, per-tenant in-flight caps, bounded queues with deadlines, fast
//! refusal of a tenant over its share and optional per-tenant token buckets.
//!
//! Everything here is pure and deterministic: time is passed in, nothing sleeps, spawns or
//! locks. The proxy wraps a [`Scheduler`] in a mutex and maps [`TicketId`]s to wakers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use http::StatusCode;

/// Settings of the schedulers of one target group (each target has its own, with these).
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
    /// Weights of tenants (lower-case names) in the round robin; others weigh 1. A tenant of
    /// weight 3 sends three times the quantum per turn.
    pub weights: BTreeMap<String, u32>,
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
            weights: BTreeMap::new(),
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
        if let Some((t, _)) = self.weights.iter().find(|(_, w)| **w == 0) {
            return Err(format!("the weight of tenant `{t}` must be at least 1"));
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
    /// The tenant is over its share: at the rate it is served, this request would wait past
    /// the queue deadline (429, at once rather than after the wait).
    OverShare,
}

impl RejectReason {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            RejectReason::QueueFull | RejectReason::RateLimited | RejectReason::OverShare => {
                StatusCode::TOO_MANY_REQUESTS
            }
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
            RejectReason::OverShare => "it is over its fair share of the target",
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

/// The adaptive concurrency limit of one target: it finds the target's knee, the concurrency
/// beyond which requests only wait inside the target, from latency alone. Far from the knee
/// it works Vegas style, on an absolute estimate; near it, by steps of one judged against
/// the windows just before them (a gradient), which a machine that is slow for everyone
/// can't fake.
///
/// Per window of completed requests it measures the typical latency (the mean of the fastest
/// 95%) and the average concurrency the requests met (counting themselves). The no-load
/// latency is the lowest 10th percentile of single latencies over the last
/// [`NOLOAD_WINDOWS`], so a target that became slower for good is relearnt. By Little's law
/// the target really serves `in_flight * expected / typical` requests at once (the knee),
/// where `expected` is the no-load latency plus the tolerated queueing; the rest wait inside
/// the target. With `beta` a tenth of the limit, at least one request:
/// - more than `2 * beta` waiting in two windows in a row (clear queueing, as when a flood
///   meets an untested limit): the limit moves down to `knee + alpha` in whole requests, at
///   most by a factor [`MAX_DECREASE`] and at least by one per cut; one slow window is a
///   blip, not a reason. The next cut waits for this one's verdict (below), so coming down
///   from 20 to a pool of 4 takes about a second;
/// - less than `beta` waiting while the limit was reached: a step up (one within
///   [`NEAR_KNEE_WINDOWS`] of a cut, `sqrt(limit)` far from any knee). The second window
///   after it judges it: if the typical latency grew by more than half of what one more
///   request over the knee adds (`1 / limit` of it), the step is undone and the next one
///   waits twice as many windows as the last, up to [`MAX_PROBE_WAIT`] (about a second); a
///   step the target takes clears the wait;
/// - some waiting, too little to cut for, and no step for [`DOWN_PROBE_WAIT`] windows: a
///   step down, kept only if the latency fell in both windows after it and by more than half
///   of one request's share, else undone. This takes the last request out of a small pool's
///   queue, which in a pool of 4 costs every answer a quarter of a service time and is
///   exactly the queueing fairness can't reach.
///
/// Every step is judged against windows at the old limit only: the window after any change
/// is no baseline.
///
/// A cut is judged on throughput, measured from the cut to its verdict against the last
/// [`RATE_WINDOWS`] windows before it: a target that was its own bottleneck answers as many
/// requests with fewer sent (the rest only queued inside it). When it answers fewer by more
/// than half the cut's share, the waiting was not inside the target (a machine short of
/// cores is slow at any limit; fewer requests at the target would only wait in Spindle's
/// queues), so the cut is undone and cuts rest for [`CUT_HOLD_WINDOWS`].
///
/// A slow target only has a larger no-load latency: it is never held below `min`.
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    limit: f64,
    min: f64,
    max: f64,
    tolerance: f64,
    window: Window,
    /// Low percentiles of single latencies of the most recent windows.
    lows: VecDeque<Duration>,
    /// The ratio of typical latency to 10th percentile of the same windows: how much a
    /// typical answer lags a fast one for reasons other than queueing (the target's own variance, threads
    /// waiting for a core on a busy machine). Its minimum is tolerated as not queueing.
    spreads: VecDeque<f64>,
    /// Whether the previous window saw clear queueing.
    over_before: bool,
    /// Whether the limit changed in the last window (the next one is no baseline).
    settling: bool,

    /// Windows since the limit was last cut.
    since_cut: u32,
    /// A step being judged, until [`PROBE_WINDOWS`] windows have closed after it.
    probe: Option<Probe>,
    /// The typical latency (seconds) and the answers per second of the last windows, the
    /// baseline a step is judged on.
    typicals: VecDeque<(f64, f64)>,
    /// Windows to wait before the next step up (doubles with each step that was undone).
    probe_wait: u32,
    /// Windows since the last step up.
    since_probe: u32,
    /// Windows for which cuts rest after one that the latency did not follow.
    cut_hold: u32,
    /// Answers counted so far, and when and at which count the limit last changed: the
    /// throughput at a limit is measured over all of its time, not one bursty window.
    answered: u64,
    /// The time and count of answers at the close of the last [`RATE_WINDOWS`] windows at
    /// the current limit.
    marks: VecDeque<(Instant, u64)>,
    /// The last window's average latency, for the admission's estimate of waiting times.
    recent_rtt: Option<Duration>,
}

/// A step of the limit by one (or more, far from any knee) that the next windows judge by how
/// the typical latency moved, relative to the windows just before it: a machine that is slow
/// for everyone moves both alike, a queue inside the target moves only with the limit.
#[derive(Clone, Copy, Debug)]
struct Probe {
    from: f64,
    /// The typical latency before the step, seconds.
    base: f64,
    /// Answers per second before the step.
    base_rate: f64,
    /// When the step was taken, and the count of answers then.
    start: (Instant, u64),
    seen: u32,
    /// Whether every window judged so far had a lower typical latency than `base`.
    lower: bool,
    /// Whether it is a cut on clear queueing (undone, it holds further cuts off).
    cut: bool,
    /// No verdict before this: requests sent after the step must have been answered, and
    /// those that queued before it take up to the old latency to drain.
    until: Instant,
}

#[derive(Clone, Debug, Default)]
struct Window {
    start: Option<Instant>,
    rtts: Vec<Duration>,
    in_flight_sum: u64,
    max_in_flight: u32,
}

/// A window closes after this long and [`WINDOW_MIN_SAMPLES`] samples.
const WINDOW: Duration = Duration::from_millis(50);
const WINDOW_MIN_SAMPLES: usize = 8;
/// How many windows the no-load latency is remembered for (10 s at full rate, longer when
/// answers are fewer); a target that became slower for good is relearnt after that.
const NOLOAD_WINDOWS: usize = 200;
/// Queueing inside the target that is always tolerated: scheduling noise on a busy machine is
/// of this order, and it bounds what the others can lose to a flood at ~1 ms.
const QUEUE_SLACK: Duration = Duration::from_millis(1);
/// For this many windows after a cut the limit grows by one at a time.
const NEAR_KNEE_WINDOWS: u32 = 40;
/// The most the limit shrinks in one window.
const MAX_DECREASE: f64 = 0.7;
/// The longest wait between probes at a steady knee, in windows (about a second at full
/// rate), so a target that grows is still found within a second or two.
const MAX_PROBE_WAIT: u32 = 16;
/// Windows that judge a step: the first after it mostly holds answers to requests sent
/// before it, so the second decides.
const PROBE_WINDOWS: u32 = 2;
/// Windows between steps down that test whether the limit is over the knee.
const DOWN_PROBE_WAIT: u32 = 6;
/// How long cuts rest after one that the latency did not follow (about 2 s at full rate).
const CUT_HOLD_WINDOWS: u32 = 40;
/// Windows the throughput before a cut is measured over.
const RATE_WINDOWS: usize = 4;

impl AdaptiveLimit {
    /// A limit starting at `initial`, kept within `min..=max`; `tolerance` is the latency
    /// ratio over the no-load latency that still counts as not queueing.
    pub fn new(initial: u32, min: u32, max: u32, tolerance: f64) -> Self {
        AdaptiveLimit {
            limit: initial as f64,
            min: min as f64,
            max: max as f64,
            tolerance,
            window: Window::default(),
            lows: VecDeque::new(),
            spreads: VecDeque::new(),
            over_before: false,
            settling: false,
            since_cut: u32::MAX,
            probe: None,
            typicals: VecDeque::new(),
            probe_wait: 0,
            since_probe: 0,
            cut_hold: 0,
            answered: 0,
            marks: VecDeque::new(),
            recent_rtt: None,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        (self.limit.round() as u32).max(1)
    }

    /// The current no-load latency estimate.
    pub fn rtt_noload(&self) -> Option<Duration> {
        self.lows.iter().min().copied()
    }

    /// The average latency of the last full window.
    pub fn recent_rtt(&self) -> Option<Duration> {
        self.recent_rtt
    }

    /// Records one request's latency; `in_flight` is the number of requests at the target when
    /// it started, itself included.
    pub fn sample(&mut self, rtt: Duration, in_flight: u32, now: Instant) {
        self.answered += 1;
        let w = &mut self.window;
        let start = *w.start.get_or_insert(now);
        w.rtts.push(rtt);
        w.in_flight_sum += u64::from(in_flight.max(1));
        w.max_in_flight = w.max_in_flight.max(in_flight);
        if now.saturating_duration_since(start) < WINDOW || w.rtts.len() < WINDOW_MIN_SAMPLES {
            return;
        }
        let mut w = std::mem::take(&mut self.window);
        w.start = None;
        let n = w.rtts.len();
        let avg = w.rtts.iter().sum::<Duration>() / n as u32;
        let in_flight = w.in_flight_sum as f64 / n as f64;
        // The no-load latency comes from the 10th percentile, not the minimum: one odd fast
        // answer must not make every other request look queued. Queueing is judged on the
        // mean of the fastest 95%: on a busy machine some answers are late because a thread
        // waited for a core, and that tail is not requests waiting inside the target. Not
        // on the median: a small pool one over its knee often runs in step, so most answers
        // find a worker at once and every fourth waits a whole service time, which the median
        // never sees and the mean (Little's law) does.
        w.rtts.sort_unstable();
        let low = w.rtts[n / 10];
        let kept = (n - n / 20).max(1);
        let typical = w.rtts[..kept].iter().sum::<Duration>() / kept as u32;
        self.lows.push_back(low);
        self.spreads
            .push_back(typical.as_secs_f64() / low.as_secs_f64().max(1e-9));
        if self.lows.len() > NOLOAD_WINDOWS {
            self.lows.pop_front();
            self.spreads.pop_front();
        }
        self.recent_rtt = Some(avg);
        let noload = self.rtt_noload().unwrap_or(avg).as_secs_f64();
        let spread = self.spreads.iter().copied().fold(f64::INFINITY, f64::min);
        let expected =
            (noload * self.tolerance.max(spread)).max(noload + QUEUE_SLACK.as_secs_f64());
        let knee = in_flight * (expected / typical.as_secs_f64().max(1e-9)).min(1.0);
        let waiting = in_flight - knee;
        let beta = (0.1 * self.limit).max(1.0);
        // Cuts need clear queueing: near the knee, a machine that is slow for everyone looks
        // like a little queueing too, and only a step judged against the windows just before
        // it tells the two apart.
        let over = waiting > 2.0 * beta;
        self.since_cut = self.since_cut.saturating_add(1);
        self.since_probe = self.since_probe.saturating_add(1);
        let t = typical.as_secs_f64();
        // Answers per second over the last windows at this limit (or since the step being
        // judged): one window alone is too bursty to judge on.
        let since = self
            .probe
            .map(|p| p.start)
            .or_else(|| self.marks.front().copied())
            .unwrap_or((start, self.answered - n as u64));
        let rate = (self.answered - since.1) as f64
            / now
                .saturating_duration_since(since.0)
                .as_secs_f64()
                .max(1e-6);
        // The window after a change of the limit mixes answers from before and after it, so
        // it is no baseline for judging the next step.
        if std::mem::take(&mut self.settling) {
            self.typicals.clear();
        } else {
            self.typicals.push_back((t, rate));
            if self.typicals.len() > PROBE_WINDOWS as usize {
                self.typicals.pop_front();
            }
        }
        let k = self.typicals.len() as f64;
        let base = (!self.typicals.is_empty()).then(|| {
            let (t, r) = self
                .typicals
                .iter()
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            (t / k, r / k)
        });
        let before = self.limit;
        self.decide(now, (t, rate), base, w.max_in_flight, knee, waiting, over);
        self.limit = self.limit.clamp(self.min, self.max);
        self.over_before = over;
        if self.limit != before {
            self.settling = true;
            self.marks.clear();
        }
        self.marks.push_back((now, self.answered));
        if self.marks.len() > RATE_WINDOWS {
            self.marks.pop_front();
        }
    }

    /// Moves the limit after a window: `(t, rate)` are its typical latency and answers per
    /// second, `base` those of the windows before it at the same limit.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        now: Instant,
        (t, rate): (f64, f64),
        base: Option<(f64, f64)>,
        max_in_flight: u32,
        knee: f64,
        waiting: f64,
        over: bool,
    ) {
        let beta = (0.1 * self.limit).max(1.0);
        let alpha = beta / 3.0;
        let full = max_in_flight as f64 >= self.limit.floor();
        if let Some(mut p) = self.probe.take() {
            p.seen += 1;
            if now < p.until && p.seen >= PROBE_WINDOWS {
                p.seen = PROBE_WINDOWS - 1;
            }
            // One request more over the knee makes every answer wait `1 / from` of a service
            // time longer; half of that is the line between queueing and not.
            let share = (self.limit - p.from).abs() / p.from;
            if self.limit > p.from {
                if p.seen >= PROBE_WINDOWS && t > p.base * (1.0 + 0.5 * share) {
                    // The step up went past the knee: undo it now, and probe less often.
                    self.limit = p.from;
                    self.since_cut = 0;
                    self.probe_wait = (self.probe_wait * 2).clamp(1, MAX_PROBE_WAIT);
                    self.since_probe = 0;
                } else if p.seen < PROBE_WINDOWS {
                    self.probe = Some(p);
                } else {
                    self.probe_wait = 0;
                }
            } else if p.seen < PROBE_WINDOWS {
                // A cut from far over the knee shows only once what queued before it has
                // drained; a step of one shows in both windows.
                p.lower &= t < p.base;
                self.probe = Some(p);
            } else if if p.cut {
                // A cut is judged on throughput: a target that was the bottleneck answers as
                // many requests with fewer sent (they only queued inside it), one slowed by
                // something else answers fewer. Its latency is no guide here: it can still
                // be rising from the flood that invited the cut.
                rate >= p.base_rate * (1.0 - 0.5 * share)
            } else {
                p.lower && t < p.base * (1.0 - 0.5 * share)
            } {
                // The step down took waiting out of the target: it was over its knee.
                self.since_cut = 0;
                self.probe_wait = self.probe_wait.max(1);
            } else {
                // The latency did not follow the limit down: it was not queueing inside the
                // target (a machine short of cores is slow at any limit), so fewer requests
                // would only wait in Spindle's queues instead. Cuts rest for a while.
                self.limit = p.from;
                if p.cut {
                    self.cut_hold = CUT_HOLD_WINDOWS;
                }
            }
            return;
        }
        self.cut_hold = self.cut_hold.saturating_sub(1);
        if let (true, true, 0, Some(base)) = (over, self.over_before, self.cut_hold, base) {
            // Whole steps down: a limit left a fraction over the knee rounds up to a
            // request queued inside the target for good.
            let bound = (self.limit * MAX_DECREASE).ceil().min(self.limit - 1.0);
            let cut = (knee + alpha).floor().max(bound).max(self.min);
            if cut < self.limit {
                // Something changed (a flood, a pause): what the probes learnt about the old
                // knee no longer holds, so the next probe comes soon. The cut itself is
                // judged like a step down.
                self.probe = Some(Probe {
                    from: self.limit,
                    base: base.0,
                    base_rate: rate,
                    start: (now, self.answered),
                    seen: 0,
                    lower: true,
                    cut: true,
                    until: now + Duration::from_secs_f64(2.0 * base.0),
                });
                self.limit = cut;
                self.since_cut = 0;
                self.probe_wait = 1;
                self.since_probe = 0;
            }
        } else if let (true, true, true, Some(base)) = (
            full,
            waiting < beta,
            self.since_probe > self.probe_wait.max(PROBE_WINDOWS),
            base,
        ) {
            // Some waiting, or a recent cut, says the knee is near: one step at a time.
            let step = if self.since_cut < NEAR_KNEE_WINDOWS || waiting > alpha / 4.0 {
                1.0
            } else {
                self.limit.sqrt()
            };
            if self.limit + step <= self.max {
                self.probe = Some(Probe {
                    from: self.limit,
                    base: base.0,
                    base_rate: rate,
                    start: (now, self.answered),
                    seen: 0,
                    lower: true,
                    cut: false,
                    until: now + Duration::from_secs_f64(base.0),
                });
            }
            self.limit += step;
            self.since_probe = 0;
        } else if let (true, true, Some(base)) = (full, waiting > alpha, base) {
            if self.since_probe <= DOWN_PROBE_WAIT
                || self.since_cut <= DOWN_PROBE_WAIT
                || self.limit - 1.0 < self.min
            {
                return;
            }
            // Some waiting, too little to cut for: one step down shows whether it is the
            // target's queue (the latency falls) or its own pace (it doesn't).
            self.probe = Some(Probe {
                from: self.limit,
                base: base.0,
                base_rate: rate,
                start: (now, self.answered),
                seen: 0,
                lower: true,
                cut: false,
                until: now + Duration::from_secs_f64(base.0),
            });
            self.limit = (self.limit - 1.0).floor().max(self.min);
            self.since_probe = 0;
        }
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
    weight: u32,
}

/// Weighted deficit round robin over per-tenant queues under one target's adaptive limit.
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

    /// Requests waiting, over all tenants.
    pub fn queued(&self) -> usize {
        self.tickets.len()
    }

    /// The adaptive limit's state (no-load latency and the like).
    pub fn adaptive(&self) -> &AdaptiveLimit {
        &self.limit
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
        let weight = self.cfg.weights.get(tenant).copied().unwrap_or(1).max(1);
        let dispatch_rate = self.dispatch_rate();
        let active_weights: u64 = self
            .active
            .iter()
            .filter_map(|n| self.tenants.get(n))
            .map(|t| u64::from(t.weight))
            .sum();
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
                weight,
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
        let refusal = if t.queue.len() >= self.cfg.max_queue_per_tenant {
            Some((
                RejectReason::QueueFull,
                self.cfg.queue_timeout.max(Duration::from_secs(1)),
            ))
        } else {
            // The tenant's turn comes round at its weight's part of the target's dispatch
            // rate while everyone now waiting stays backlogged. A request that would wait
            // past the deadline is refused now rather than left to expire.
            let weights = active_weights + if t.in_active { 0 } else { u64::from(weight) };
            dispatch_rate
                .map(|r| {
                    let share = r * f64::from(weight) / weights.max(1) as f64;
                    Duration::from_secs_f64((t.queue.len() as f64 + 1.0) / share)
                })
                .filter(|wait| *wait > self.cfg.queue_timeout)
                .map(|wait| (RejectReason::OverShare, wait.max(Duration::from_secs(1))))
        };
        if let Some((reason, retry_after)) = refusal {
            self.forget_idle(tenant);
            return Decision::Reject {
                reason,
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

    /// Requests the target finishes per second at the current limit, once the limit has
    /// measured a latency.
    fn dispatch_rate(&self) -> Option<f64> {
        let rtt = self.limit.recent_rtt()?.as_secs_f64();
        (self.cfg.adaptive && rtt > 0.0).then(|| f64::from(self.limit()) / rtt)
    }

    /// A request of `tenant` finished. `latency` is its time to first response byte when the
    /// target answered, `None` when it failed before that (such requests do not teach the
    /// limit anything). `started_in_flight` is [`Scheduler::in_flight`] right after it was
    /// admitted (so it counts itself).
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
                t.deficit = self.cfg.quantum.saturating_mul(t.weight);
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
    fn weights_give_a_tenant_more_turns() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            weights: [("gold".to_string(), 3)].into(),
            ..cfg(1)
        });
        assert_eq!(s.offer("x", now), Decision::Admit);
        let gold: Vec<_> = (0..6).map(|_| ticket(s.offer("gold", now))).collect();
        (0..6).for_each(|_| {
            ticket(s.offer("tin", now));
        });
        let mut order = Vec::new();
        let mut who = "x".to_string();
        for _ in 0..8 {
            let w = s.complete(&who, None, 1, now);
            who = if gold.contains(&w.dispatched[0]) {
                "gold".into()
            } else {
                "tin".into()
            };
            order.push(who.clone());
        }
        assert_eq!(
            order,
            ["gold", "gold", "gold", "tin", "gold", "gold", "gold", "tin"]
        );
    }

    #[test]
    fn zero_weight_is_refused() {
        let c = SchedulerConfig {
            weights: [("a".to_string(), 0)].into(),
            ..SchedulerConfig::default()
        };
        assert!(c.check().unwrap_err().contains("`a`"));
    }

    /// A scheduler whose limit has learnt that its target answers in 10 ms at a limit of 4:
    /// it dispatches 400 requests per second.
    fn measured(queue_timeout: Duration) -> (Scheduler, Instant) {
        let mut s = Scheduler::new(SchedulerConfig {
            initial_limit: 4,
            min_limit: 4,
            max_limit: 4,
            adaptive: true,
            max_queue_per_tenant: 1000,
            queue_timeout,
            ..SchedulerConfig::default()
        });
        let mut now = Instant::now();
        for _ in 0..20 {
            assert_eq!(s.offer("warm", now), Decision::Admit);
            now += Duration::from_millis(10);
            s.complete("warm", Some(Duration::from_millis(10)), 1, now);
        }
        (s, now)
    }

    #[test]
    fn a_tenant_over_its_share_is_refused_at_once() {
        let (mut s, now) = measured(Duration::from_millis(101));
        for _ in 0..4 {
            assert_eq!(s.offer("flood", now), Decision::Admit);
        }
        // Alone, the flood is served at 400/s: 40 requests fit in the 101 ms deadline.
        let mut queued = 0;
        let refusal = loop {
            match s.offer("flood", now) {
                Decision::Queued(_) => queued += 1,
                Decision::Reject {
                    reason,
                    retry_after,
                } => break (reason, retry_after),
                Decision::Admit => panic!("the limit is full"),
            }
        };
        assert_eq!(queued, 40);
        assert_eq!(refusal.0, RejectReason::OverShare);
        assert_eq!(refusal.0.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refusal.1 >= Duration::from_secs(1));
        // Another tenant gets half the dispatches from now on: its first request waits about
        // 5 ms, well within the deadline, so it queues.
        ticket(s.offer("calm", now));
        // The flood, now sharing, is refused for good until its queue drains.
        assert!(matches!(
            s.offer("flood", now),
            Decision::Reject {
                reason: RejectReason::OverShare,
                ..
            }
        ));
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
