//! Metrics at 1-second resolution, per target and per tenant.
//!
//! Each [`Series`] keeps a ring of the last N whole seconds plus running totals. The auto
//! scaler reads [`SeriesSnapshot`]s; `/metrics` renders [`render_prometheus`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Number of latency buckets; bucket `i` holds latencies up to `100 µs × 1.25^i`.
const BUCKETS: usize = 64;

fn bucket_of(latency: Duration) -> usize {
    let us = latency.as_micros() as f64;
    if us <= 100.0 {
        return 0;
    }
    (((us / 100.0).ln() / 1.25f64.ln()).ceil() as usize).min(BUCKETS - 1)
}

fn bucket_upper(i: usize) -> Duration {
    Duration::from_secs_f64(100e-6 * 1.25f64.powi(i as i32))
}

/// How a request ended, for error counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target (or a fixed response) answered with this status.
    Status(u16),
    /// The target did not answer in time (504).
    Timeout,
    /// The target could not be connected to.
    ConnectError,
    /// The target reset or answered garbage (502).
    BadResponse,
    /// The tenant scheduler refused the request (429/503).
    Refused,
}

/// Counts of one second (or of all time).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    /// Requests completed.
    pub requests: u64,
    /// Responses 4xx from the target.
    pub errors_4xx: u64,
    /// Responses 5xx from the target.
    pub errors_5xx: u64,
    /// Target timeouts.
    pub timeouts: u64,
    /// Connect errors.
    pub connect_errors: u64,
    /// Resets and invalid responses.
    pub bad_responses: u64,
    /// Requests refused by the tenant scheduler.
    pub refused: u64,
    /// Requests that waited in a tenant queue before they were admitted (or refused there).
    pub queued: u64,
    /// Most requests in flight at once during the period.
    pub max_in_flight: i64,
}

#[derive(Clone, Debug)]
struct Second {
    at: u64,
    counts: Counts,
    hist: [u32; BUCKETS],
}

impl Second {
    fn new(at: u64) -> Self {
        Second {
            at,
            counts: Counts::default(),
            hist: [0; BUCKETS],
        }
    }
}

/// One second as the snapshot API shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SecondSnapshot {
    /// Unix time of the start of this second.
    pub unix_second: u64,
    /// Counts.
    pub counts: Counts,
    /// Latency percentiles of the requests that got a response, if any.
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

/// A series' recent history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeriesSnapshot {
    /// Labels identifying the series (target group, target or tenant).
    pub labels: BTreeMap<String, String>,
    /// Requests in flight now.
    pub in_flight: i64,
    /// Completed seconds, oldest first; seconds without traffic are present with zeros.
    pub seconds: Vec<SecondSnapshot>,
    /// Totals since the series was created.
    pub totals: Counts,
    /// Sum of all latencies since creation, for Prometheus' `_sum`.
    pub latency_sum: Duration,
}

fn percentile(hist: &[u32; BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = hist.iter().map(|&c| c as u64).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        seen += c as u64;
        if seen >= rank {
            return Some(bucket_upper(i));
        }
    }
    Some(bucket_upper(BUCKETS - 1))
}

struct Inner {
    current: Second,
    ring: VecDeque<Second>,
    totals: Counts,
    latency_sum: Duration,
}

/// One metrics series with a ring of the last `capacity` seconds.
pub struct Series {
    labels: BTreeMap<String, String>,
    capacity: usize,
    in_flight: AtomicI64,
    inner: Mutex<Inner>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Series {
    /// A series with these labels keeping `capacity` seconds.
    pub fn new(labels: BTreeMap<String, String>, capacity: usize) -> Self {
        Series {
            labels,
            capacity: capacity.max(1),
            in_flight: AtomicI64::new(0),
            inner: Mutex::new(Inner {
                current: Second::new(unix_now()),
                ring: VecDeque::new(),
                totals: Counts::default(),
                latency_sum: Duration::ZERO,
            }),
        }
    }

    /// Labels of this series.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    fn rotate(&self, inner: &mut Inner, now: u64) {
        if now <= inner.current.at {
            return;
        }
        let gap = (now - inner.current.at).min(self.capacity as u64 + 1);
        let first_empty = now - gap + 1;
        let done = std::mem::replace(&mut inner.current, Second::new(now));
        inner.ring.push_back(done);
        for at in first_empty..now {
            inner.ring.push_back(Second::new(at));
        }
        while inner.ring.len() > self.capacity {
            inner.ring.pop_front();
        }
    }

    /// A request starts.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ends; `latency` is its time to the response head when there was one. The
    /// second's `max_in_flight` is sampled here (the count including this request), so the
    /// request path takes the lock once per request, not twice.
    pub fn finish(&self, outcome: Outcome, latency: Option<Duration>) {
        let n = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record_at(outcome, latency, n, unix_now());
    }

    /// Records a completed request at `now` (unix seconds) that saw `in_flight` requests in
    /// flight, without touching the gauge; exposed for deterministic tests.
    pub fn record_at(&self, outcome: Outcome, latency: Option<Duration>, in_flight: i64, now: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut inner, now);
        inner.current.counts.max_in_flight = inner.current.counts.max_in_flight.max(in_flight);
        let Inner {
            current,
            totals,
            latency_sum,
            ..
        } = &mut *inner;
        for c in [&mut current.counts, totals] {
            c.requests += 1;
            match outcome {
                Outcome::Status(s) if (400..500).contains(&s) => c.errors_4xx += 1,
                Outcome::Status(s) if s >= 500 => c.errors_5xx += 1,
                Outcome::Status(_) => {}
                Outcome::Timeout => c.timeouts += 1,
                Outcome::ConnectError => c.connect_errors += 1,
                Outcome::BadResponse => c.bad_responses += 1,
                Outcome::Refused => c.refused += 1,
            }
        }
        if let Some(l) = latency {
            current.hist[bucket_of(l)] += 1;
            *latency_sum += l;
        }
    }

    /// A request starts waiting in a tenant queue.
    pub fn note_queued(&self) {
        self.note_queued_at(unix_now());
    }

    /// [`Series::note_queued`] at `now` (unix seconds), for deterministic tests.
    pub fn note_queued_at(&self, now: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut inner, now);
        inner.current.counts.queued += 1;
        inner.totals.queued += 1;
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The last completed seconds, oldest first.
    pub fn snapshot(&self) -> SeriesSnapshot {
        self.snapshot_at(unix_now())
    }

    /// [`Series::snapshot`] as seen at `now` (unix seconds).
    pub fn snapshot_at(&self, now: u64) -> SeriesSnapshot {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut inner, now);
        let in_flight = self.in_flight();
        let seconds = inner
            .ring
            .iter()
            .map(|s| SecondSnapshot {
                unix_second: s.at,
                counts: Counts {
                    max_in_flight: s.counts.max_in_flight.max(0),
                    ..s.counts.clone()
                },
                p50: percentile(&s.hist, 0.50),
                p95: percentile(&s.hist, 0.95),
                p99: percentile(&s.hist, 0.99),
            })
            .collect();
        SeriesSnapshot {
            labels: self.labels.clone(),
            in_flight,
            seconds,
            totals: inner.totals.clone(),
            latency_sum: inner.latency_sum,
        }
    }

    /// The counts and latency histogram of the completed second `at`, if still kept.
    fn second_at(&self, at: u64, now: u64) -> Option<(Counts, [u32; BUCKETS])> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut inner, now);
        inner
            .ring
            .iter()
            .find(|s| s.at == at)
            .map(|s| (s.counts.clone(), s.hist))
    }
}

/// One completed second of several series merged: counts summed, percentiles from the summed
/// latency histograms (so a group's p99 is the p99 of all its requests, not a max of maxima).
/// `None` when no series keeps that second.
pub fn merged_second(series: &[Arc<Series>], at: u64) -> Option<SecondSnapshot> {
    merged_second_at(series, at, unix_now())
}

fn merged_second_at(series: &[Arc<Series>], at: u64, now: u64) -> Option<SecondSnapshot> {
    let mut counts = Counts::default();
    let mut hist = [0u32; BUCKETS];
    let mut any = false;
    for s in series {
        let Some((c, h)) = s.second_at(at, now) else {
            continue;
        };
        any = true;
        counts.requests += c.requests;
        counts.errors_4xx += c.errors_4xx;
        counts.errors_5xx += c.errors_5xx;
        counts.timeouts += c.timeouts;
        counts.connect_errors += c.connect_errors;
        counts.bad_responses += c.bad_responses;
        counts.refused += c.refused;
        counts.queued += c.queued;
        counts.max_in_flight += c.max_in_flight.max(0);
        for (a, b) in hist.iter_mut().zip(h.iter()) {
            *a += b;
        }
    }
    any.then(|| SecondSnapshot {
        unix_second: at,
        counts,
        p50: percentile(&hist, 0.50),
        p95: percentile(&hist, 0.95),
        p99: percentile(&hist, 0.99),
    })
}

/// Renders snapshots in Prometheus' text format: running totals as counters, in-flight as a
/// gauge, and the latency percentiles of the last complete second as a summary.
pub fn render_prometheus(prefix: &str, snapshots: &[SeriesSnapshot]) -> String {
    let mut out = String::new();
    let label = |s: &SeriesSnapshot, extra: Option<(&str, &str)>| {
        let mut parts: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if let Some((k, v)) = extra {
            parts.push(format!("{k}=\"{v}\""));
        }
        format!("{{{}}}", parts.join(","))
    };
    let _ = writeln!(out, "# TYPE {prefix}_requests_total counter");
    for s in snapshots {
        let _ = writeln!(
            out,
            "{prefix}_requests_total{} {}",
            label(s, None),
            s.totals.requests
        );
    }
    let _ = writeln!(out, "# TYPE {prefix}_errors_total counter");
    for s in snapshots {
        let t = &s.totals;
        for (class, v) in [
            ("4xx", t.errors_4xx),
            ("5xx", t.errors_5xx),
            ("timeout", t.timeouts),
            ("connect", t.connect_errors),
            ("bad_response", t.bad_responses),
            ("refused", t.refused),
        ] {
            let _ = writeln!(
                out,
                "{prefix}_errors_total{} {v}",
                label(s, Some(("class", class)))
            );
        }
    }
    let _ = writeln!(out, "# TYPE {prefix}_in_flight gauge");
    for s in snapshots {
        let _ = writeln!(out, "{prefix}_in_flight{} {}", label(s, None), s.in_flight);
    }
    let _ = writeln!(out, "# TYPE {prefix}_latency_seconds summary");
    for s in snapshots {
        if let Some(last) = s.seconds.last() {
            for (q, v) in [("0.5", last.p50), ("0.95", last.p95), ("0.99", last.p99)] {
                if let Some(v) = v {
                    let _ = writeln!(
                        out,
                        "{prefix}_latency_seconds{} {}",
                        label(s, Some(("quantile", q))),
                        v.as_secs_f64()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "{prefix}_latency_seconds_sum{} {}",
            label(s, None),
            s.latency_sum.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{prefix}_latency_seconds_count{} {}",
            label(s, None),
            s.totals.requests
        );
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Label pairs in a fixed order: the key of a series.
type LabelKey = Vec<(String, String)>;

/// All series of one load balancer, created on first use.
#[derive(Default)]
pub struct Registry {
    capacity: usize,
    series: Mutex<BTreeMap<LabelKey, Arc<Series>>>,
}

/// Most tenant series kept per target group; further tenants share the series `~other`.
pub const MAX_TENANT_SERIES: usize = 1000;

impl Registry {
    /// A registry whose series keep `seconds` seconds.
    pub fn new(seconds: usize) -> Self {
        Registry {
            capacity: seconds,
            series: Mutex::default(),
        }
    }

    /// The series for these labels, created when missing.
    pub fn series(&self, labels: &[(&str, &str)]) -> Arc<Series> {
        let key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.clone())
            .or_insert_with(|| Arc::new(Series::new(key.into_iter().collect(), self.capacity)))
            .clone()
    }

    /// The series for a tenant of a target group, folding tenants past
    /// [`MAX_TENANT_SERIES`] into `~other`.
    pub fn tenant_series(&self, lb: &str, target_group: &str, tenant: &str) -> Arc<Series> {
        let count = {
            let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
            let key: Vec<(String, String)> = vec![
                ("lb".into(), lb.into()),
                ("target_group".into(), target_group.into()),
                ("tenant".into(), tenant.into()),
            ];
            if let Some(s) = map.get(&key) {
                return s.clone();
            }
            map.keys()
                .filter(|k| k.len() == 3 && k[1].1 == target_group && k[2].0 == "tenant")
                .count()
        };
        let tenant = if count >= MAX_TENANT_SERIES {
            "~other"
        } else {
            tenant
        };
        self.series(&[
            ("lb", lb),
            ("target_group", target_group),
            ("tenant", tenant),
        ])
    }

    /// Every series whose labels satisfy `keep`.
    pub fn matching(&self, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> Vec<Arc<Series>> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| keep(&s.labels))
            .cloned()
            .collect()
    }

    /// Snapshots of every series.
    pub fn snapshot(&self) -> Vec<SeriesSnapshot> {
        let all: Vec<Arc<Series>> = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.iter().map(|s| s.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series::new(
            [("target".to_string(), "t1".to_string())]
                .into_iter()
                .collect(),
            5,
        )
    }

    #[test]
    fn merged_second_sums_counts_and_histograms() {
        let t0 = unix_now() + 10;
        let a = Arc::new(series());
        let b = Arc::new(series());
        for _ in 0..90 {
            a.record_at(Outcome::Status(200), Some(Duration::from_millis(1)), 1, t0);
        }
        for _ in 0..10 {
            b.record_at(
                Outcome::Status(502),
                Some(Duration::from_millis(100)),
                1,
                t0,
            );
        }
        let m = merged_second_at(&[a.clone(), b], t0, t0 + 1).expect("second kept");
        assert_eq!(m.counts.requests, 100);
        assert_eq!(m.counts.errors_5xx, 10);
        assert!(m.p50.unwrap() < Duration::from_millis(2));
        assert!(m.p95.unwrap() >= Duration::from_millis(100));
        assert!(merged_second_at(&[a], t0 - 100, t0 + 1).is_none());
    }

    #[test]
    fn seconds_roll_over_and_gaps_are_zero() {
        let s = series();
        let t0 = unix_now() + 10;
        for i in 0..100u64 {
            s.record_at(
                Outcome::Status(200),
                Some(Duration::from_micros(1000 + i * 10)),
                1 + (i as i64 % 7),
                t0,
            );
        }
        s.record_at(
            Outcome::Status(503),
            Some(Duration::from_millis(50)),
            2,
            t0 + 2,
        );
        s.record_at(Outcome::Timeout, None, 1, t0 + 2);
        let snap = s.snapshot_at(t0 + 3);
        let secs: Vec<u64> = snap.seconds.iter().map(|x| x.unix_second).collect();
        assert_eq!(&secs[secs.len() - 3..], &[t0, t0 + 1, t0 + 2]);
        let first = &snap.seconds[secs.len() - 3];
        assert_eq!(first.counts.requests, 100);
        assert_eq!(first.counts.max_in_flight, 7);
        let p50 = first.p50.unwrap();
        assert!(
            p50 >= Duration::from_micros(1400) && p50 <= Duration::from_micros(1900),
            "{p50:?}"
        );
        assert_eq!(snap.seconds[secs.len() - 2].counts, Counts::default());
        let last = &snap.seconds[secs.len() - 1].counts;
        assert_eq!(
            (
                last.requests,
                last.errors_5xx,
                last.timeouts,
                last.max_in_flight
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(snap.totals.requests, 102);
        // Only `capacity` seconds are kept.
        assert_eq!(s.snapshot_at(t0 + 100).seconds.len(), 5);
    }

    #[test]
    fn prometheus_text_has_counters_and_quantiles() {
        let s = series();
        let t0 = unix_now();
        s.record_at(Outcome::Status(200), Some(Duration::from_millis(2)), 1, t0);
        s.record_at(Outcome::ConnectError, None, 1, t0);
        let text = render_prometheus("spindle_lb", &[s.snapshot_at(t0 + 1)]);
        assert!(
            text.contains("spindle_lb_requests_total{target=\"t1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("spindle_lb_errors_total{target=\"t1\",class=\"connect\"} 1\n"));
        assert!(text.contains("spindle_lb_latency_seconds{target=\"t1\",quantile=\"0.99\"} 0.002"));
        assert!(text.contains("spindle_lb_in_flight{target=\"t1\"} 0\n"));
    }

    #[test]
    fn buckets_are_monotonic_and_cover_the_value() {
        for us in [1u64, 100, 101, 999, 12_345, 1_000_000, 90_000_000] {
            let d = Duration::from_micros(us);
            let b = bucket_of(d);
            assert!(bucket_upper(b) >= d || b == BUCKETS - 1, "{us}");
            assert!(b == 0 || bucket_upper(b - 1) < d, "{us}");
        }
    }
}
