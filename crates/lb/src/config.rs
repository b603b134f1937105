//! The load balancer's desired state, shaped like ALB's resources, and its validation.
//!
//! A [`LbConfig`] is always applied whole (see [`crate::LoadBalancer::apply`]). Validation
//! returns every problem at once so a template author can fix them in one pass.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

use crate::error::ConfigError;
use crate::scheduler::SchedulerConfig;

/// The whole desired state of one load balancer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LbConfig {
    /// Listeners, each bound to its own address.
    pub listeners: Vec<ListenerConfig>,
    /// Target groups that rules forward to, by name.
    pub target_groups: Vec<TargetGroupConfig>,
    /// Limits and timeouts towards clients.
    pub client: ClientSettings,
}

/// Limits and timeouts on the client side of the proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSettings {
    /// Time a client has to send a complete request head. For HTTP/1 this also bounds how long
    /// a keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Longest pause allowed between two chunks of a request body.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_bytes: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub max_body_bytes: u64,
    /// HTTP/2 connections without any frame for this long are closed.
    pub idle_timeout: Duration,
    /// Accept HTTP/2 with prior knowledge (h2c) on plain HTTP listeners.
    pub h2c: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(20),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            h2c: true,
        }
    }
}

/// `AWS::ElasticLoadBalancingV2::Listener` with its `ListenerRule`s.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerConfig {
    /// Unique name; the identity of the listener across updates.
    pub name: String,
    /// Address to bind; port 0 picks a free port (see [`crate::LoadBalancer::listener_addr`]).
    pub bind: SocketAddr,
    /// HTTP or HTTPS.
    pub protocol: ListenerProtocol,
    /// Rules, evaluated by ascending priority; the first whose conditions all match wins.
    pub rules: Vec<RuleConfig>,
    /// Action when no rule matches.
    pub default_action: Action,
}

/// The listener protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 (and h2c when [`ClientSettings::h2c`]).
    Http,
    /// TLS with HTTP/2 and HTTP/1.1 offered through ALPN.
    Https {
        /// Certificate chain, PEM.
        cert_pem: String,
        /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
        key_pem: String,
    },
}

/// `AWS::ElasticLoadBalancingV2::ListenerRule`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    /// Lower numbers are evaluated first; unique within a listener.
    pub priority: u32,
    /// All conditions must match.
    pub conditions: Vec<Condition>,
    /// What to do with a matching request.
    pub action: Action,
}

/// A rule condition; a condition matches when any of its values does.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Host header patterns, case-insensitive, with `*` and `?` wildcards; the port is ignored.
    HostHeader(Vec<String>),
    /// Path patterns, case-sensitive, with `*` and `?` wildcards; the query is not part of it.
    PathPattern(Vec<String>),
}

/// A rule's action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Forward to the named target group.
    Forward {
        /// Name of a target group in the same config.
        target_group: String,
    },
    /// Answer directly.
    FixedResponse {
        /// Status code, 200–599.
        status: u16,
        /// Content-Type of the body.
        content_type: String,
        /// Body text.
        body: String,
    },
    /// Redirect. Each part may use ALB's `#{protocol}`, `#{host}`, `#{port}`, `#{path}` and
    /// `#{query}` placeholders; `None` keeps the request's own value.
    Redirect {
        /// `HTTP`, `HTTPS` or `#{protocol}`.
        protocol: Option<String>,
        /// Host name.
        host: Option<String>,
        /// Port.
        port: Option<String>,
        /// Path, starting with `/`.
        path: Option<String>,
        /// Query without the leading `?`.
        query: Option<String>,
        /// 301 or 302.
        status: u16,
    },
}

/// Target selection algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// Each healthy target in turn.
    #[default]
    RoundRobin,
    /// The healthy target with the fewest requests in flight.
    LeastOutstandingRequests,
}

/// `AWS::ElasticLoadBalancingV2::TargetGroup`.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetGroupConfig {
    /// Unique name.
    pub name: String,
    /// Registered targets. A target removed from this list drains.
    pub targets: Vec<SocketAddr>,
    /// Health checking.
    pub health_check: HealthCheckConfig,
    /// How long a deregistered target may finish its in-flight requests.
    pub deregistration_delay: Duration,
    /// A target that becomes healthy gets a linearly growing share over this time; zero is off.
    pub slow_start: Duration,
    /// Target selection.
    pub algorithm: Algorithm,
    /// Cookie stickiness, if any.
    pub stickiness: Option<Stickiness>,
    /// Time to wait for a target's response head before answering 504.
    pub target_timeout: Duration,
    /// Time to wait for a TCP connection to a target before answering 504.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per target.
    pub max_idle_per_target: usize,
    /// Per-tenant fairness; `None` forwards without scheduling.
    pub isolation: Option<IsolationConfig>,
}

impl TargetGroupConfig {
    /// A target group with ALB's defaults (except shorter timeouts suitable for tests).
    pub fn new(name: impl Into<String>, targets: Vec<SocketAddr>) -> Self {
        TargetGroupConfig {
            name: name.into(),
            targets,
            health_check: HealthCheckConfig::default(),
            deregistration_delay: Duration::from_secs(300),
            slow_start: Duration::ZERO,
            algorithm: Algorithm::RoundRobin,
            stickiness: None,
            target_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_idle_per_target: 256,
            isolation: None,
        }
    }
}

/// Load-balancer generated cookie stickiness.
#[derive(Clone, Debug, PartialEq)]
pub struct Stickiness {
    /// Cookie lifetime.
    pub duration: Duration,
}

/// Health check settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheckConfig {
    /// When false every registered target counts as healthy.
    pub enabled: bool,
    /// Time between checks of one target.
    pub interval: Duration,
    /// Time a check may take; must be shorter than the interval.
    pub timeout: Duration,
    /// Consecutive successes that make a target healthy (ALB allows 2–10; 1 is accepted).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy.
    pub unhealthy_threshold: u32,
    /// Path and query requested with GET.
    pub path: String,
    /// Success codes: `"200"`, `"200,202"` or `"200-299"`.
    pub matcher: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            path: "/".into(),
            matcher: "200".into(),
        }
    }
}

/// How a request names its tenant.
#[derive(Clone, Debug, PartialEq)]
pub enum TenantKey {
    /// The value of this header (e.g. `X-Tenant-Id`).
    Header(String),
    /// The first label of the host name (`acme.example.com` → `acme`).
    HostSubdomain,
    /// The first path segment (`/acme/expenses` → `acme`).
    PathPrefix,
}

/// Per-tenant fairness for one target group.
#[derive(Clone, Debug, PartialEq)]
pub struct IsolationConfig {
    /// How a request names its tenant; requests naming none share the tenant `-`.
    pub tenant_key: TenantKey,
    /// Limits, queues and rates.
    pub scheduler: SchedulerConfig,
}

/// Success codes parsed from a matcher string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    /// Parses `"200"`, `"200,202"` or `"200-299"`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let lo: u16 = lo
                .parse()
                .map_err(|_| format!("`{part}` is not a status code"))?;
            let hi: u16 = hi
                .parse()
                .map_err(|_| format!("`{part}` is not a status code"))?;
            if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
                return Err(format!("`{part}` is not a range of status codes"));
            }
            ranges.push((lo, hi));
        }
        Ok(Matcher(ranges))
    }

    /// Whether `status` counts as success.
    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= status && status <= hi)
    }
}

/// Checks everything that can be checked without binding sockets; returns every error.
pub(crate) fn validate(cfg: &LbConfig) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for tg in &cfg.target_groups {
        if !names.insert(tg.name.as_str()) {
            errs.push(ConfigError::DuplicateTargetGroup {
                name: tg.name.clone(),
            });
        }
        let hc = &tg.health_check;
        if let Err(reason) = Matcher::parse(&hc.matcher) {
            errs.push(ConfigError::BadMatcher {
                target_group: tg.name.clone(),
                reason,
            });
        }
        if hc.enabled {
            if hc.timeout >= hc.interval || hc.interval.is_zero() {
                errs.push(ConfigError::HealthCheckTiming {
                    target_group: tg.name.clone(),
                });
            }
            if hc.healthy_threshold == 0 || hc.unhealthy_threshold == 0 {
                errs.push(ConfigError::HealthCheckThreshold {
                    target_group: tg.name.clone(),
                });
            }
            if !hc.path.starts_with('/') || hc.path.parse::<http::Uri>().is_err() {
                errs.push(ConfigError::HealthCheckPath {
                    target_group: tg.name.clone(),
                    path: hc.path.clone(),
                });
            }
        }
        if tg.target_timeout.is_zero() || tg.connect_timeout.is_zero() {
            errs.push(ConfigError::ZeroTimeout {
                target_group: tg.name.clone(),
            });
        }
        if let Some(iso) = &tg.isolation {
            if let Err(reason) = iso.scheduler.check() {
                errs.push(ConfigError::Scheduler {
                    target_group: tg.name.clone(),
                    reason,
                });
            }
            if let TenantKey::Header(h) = &iso.tenant_key {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    errs.push(ConfigError::Scheduler {
                        target_group: tg.name.clone(),
                        reason: format!("`{h}` is not a header name"),
                    });
                }
            }
        }
    }
    let mut listener_names = std::collections::HashSet::new();
    for l in &cfg.listeners {
        if !listener_names.insert(l.name.as_str()) {
            errs.push(ConfigError::DuplicateListener {
                name: l.name.clone(),
            });
        }
        let mut prios = std::collections::HashSet::new();
        for r in &l.rules {
            if !prios.insert(r.priority) {
                errs.push(ConfigError::DuplicatePriority {
                    listener: l.name.clone(),
                    priority: r.priority,
                });
            }
            if r.conditions.is_empty() {
                errs.push(ConfigError::RuleWithoutCondition {
                    listener: l.name.clone(),
                    priority: r.priority,
                });
            }
            check_action(cfg, &l.name, &r.action, &mut errs);
        }
        check_action(cfg, &l.name, &l.default_action, &mut errs);
    }
    errs
}

fn check_action(cfg: &LbConfig, listener: &str, action: &Action, errs: &mut Vec<ConfigError>) {
    match action {
        Action::Forward { target_group } => {
            if !cfg.target_groups.iter().any(|t| &t.name == target_group) {
                errs.push(ConfigError::UnknownTargetGroup {
                    listener: listener.into(),
                    target_group: target_group.clone(),
                });
            }
        }
        Action::FixedResponse {
            status,
            content_type,
            ..
        } => {
            if StatusCode::from_u16(*status).is_err() || *status < 200 {
                errs.push(ConfigError::BadStatus {
                    listener: listener.into(),
                    status: *status,
                });
            }
            if http::HeaderValue::from_str(content_type).is_err() {
                errs.push(ConfigError::BadContentType {
                    listener: listener.into(),
                });
            }
        }
        Action::Redirect { status, path, .. } => {
            if *status != 301 && *status != 302 {
                errs.push(ConfigError::BadStatus {
                    listener: listener.into(),
                    status: *status,
                });
            }
            if let Some(p) = path {
                if !p.starts_with('/') {
                    errs.push(ConfigError::BadRedirectPath {
                        listener: listener.into(),
                        path: p.clone(),
                    });
                }
            }
        }
    }
}
