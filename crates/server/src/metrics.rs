//! Prometheus metrics, kept by hand: a few counters and one latency histogram, rendered in the
//! text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    auth_failures: BTreeMap<String, u64>,
    audit_records: BTreeMap<String, u64>,
}

pub struct Metrics {
    boot: OffsetDateTime,
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new(boot: OffsetDateTime) -> Self {
        Self {
            boot,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.with(|m| {
            *m.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            let h = m
                .latency
                .entry(route.to_owned())
                .or_insert_with(|| Histogram {
                    counts: vec![0; BUCKETS.len()],
                    ..Default::default()
                });
            let secs = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        });
    }

    pub fn auth_failure(&self, reason: &str) {
        self.with(|m| *m.auth_failures.entry(reason.to_owned()).or_default() += 1);
    }

    pub fn audit_record(&self, result: &str) {
        self.with(|m| *m.audit_records.entry(result.to_owned()).or_default() += 1);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            s,
            "# HELP spindle_build_info Build information.\n# TYPE spindle_build_info gauge"
        );
        let _ = writeln!(
            s,
            "spindle_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(s, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge");
        let _ = writeln!(
            s,
            "process_start_time_seconds {}",
            self.boot.unix_timestamp()
        );
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(s, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge");
            let _ = writeln!(s, "process_resident_memory_bytes {rss}");
        }
        let _ = writeln!(s, "# HELP spindle_http_requests_total API requests by method, route and status.\n# TYPE spindle_http_requests_total counter");
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(s, "spindle_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}", escape(route));
        }
        let _ = writeln!(s, "# HELP spindle_http_request_duration_seconds API request latency by route.\n# TYPE spindle_http_request_duration_seconds histogram");
        for (route, h) in &m.latency {
            let r = escape(route);
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    s,
                    "spindle_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                s,
                "spindle_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "spindle_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "spindle_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(s, "# HELP spindle_auth_failures_total Refused authentications by reason.\n# TYPE spindle_auth_failures_total counter");
        for (reason, n) in &m.auth_failures {
            let _ = writeln!(s, "spindle_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP spindle_audit_records_total Audit records written by result.\n# TYPE spindle_audit_records_total counter");
        for (result, n) in &m.audit_records {
            let _ = writeln!(s, "spindle_audit_records_total{{result=\"{result}\"}} {n}");
        }
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Resident set size from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is a valid name.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new(OffsetDateTime::UNIX_EPOCH);
        m.request("GET", "/v1/accounts", 200, Duration::from_micros(700));
        m.request("GET", "/v1/accounts", 200, Duration::from_millis(30));
        m.auth_failure("SignatureDoesNotMatch");
        let s = m.render();
        assert!(s.contains("spindle_http_requests_total{method=\"GET\",route=\"/v1/accounts\",status=\"200\"} 2"), "{s}");
        assert!(s.contains("spindle_http_request_duration_seconds_bucket{route=\"/v1/accounts\",le=\"0.001\"} 1"), "{s}");
        assert!(s.contains("spindle_http_request_duration_seconds_bucket{route=\"/v1/accounts\",le=\"0.05\"} 2"), "{s}");
        assert!(
            s.contains("spindle_auth_failures_total{reason=\"SignatureDoesNotMatch\"} 1"),
            "{s}"
        );
    }
}
