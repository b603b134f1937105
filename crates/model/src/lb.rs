//! API shapes of load balancers (`spindle lb …`): what `GET /v1/accounts/{a}/load-balancers…`
//! returns. The auto scaler reads [`LbMetricSeries`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A load balancer as `spindle lb list|describe` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoadBalancerInfo {
    pub name: String,
    pub arn: String,
    /// The DNS name recorded for the DNS zone (`name-1234567890.REGION.elb.spindle.internal`).
    pub dns_name: String,
    /// The host address its listeners bind.
    pub address: String,
    /// The VPC whose namespace upstream connections are opened in; `None`: the host's.
    pub vpc_id: Option<String>,
    pub stack: String,
    pub logical_id: String,
    pub listeners: Vec<ListenerInfo>,
    /// Target groups its listeners forward to.
    pub target_groups: Vec<TargetGroupInfo>,
}

/// A listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListenerInfo {
    pub arn: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub port: u16,
    /// The bound socket address (`127.1.2.3:80`).
    pub address: String,
    /// Rules besides the default action.
    pub rules: usize,
}

/// A target group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub name: String,
    pub arn: String,
    pub port: u16,
    /// `round_robin` or `least_outstanding_requests`.
    pub algorithm: String,
    /// How a request names its tenant (`header:X-Tenant-Id`, `host`, `path`), if isolated.
    pub tenant_key: Option<String>,
    /// The health check as people read it (`GET /healthz on the traffic port, expecting 200,
    /// every 5 s, …`); `None` when health checks are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
}

/// One target and its health, like `describe-target-health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetHealthInfo {
    pub target_group: String,
    /// The registered id: `i-…` or an IP address.
    pub id: String,
    pub port: u16,
    /// Where the load balancer connects (`10.0.1.5:80`).
    pub address: String,
    /// `initial`, `healthy`, `unhealthy` or `draining`.
    pub state: String,
    pub in_flight: u32,
}

/// Counts of one second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LbCounts {
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub timeouts: u64,
    pub connect_errors: u64,
    pub bad_responses: u64,
    /// Refused by the tenant scheduler (429/503 with `Retry-After`).
    pub refused: u64,
    /// Waited in a tenant queue before being admitted or refused. Requests admitted are
    /// `requests - refused`.
    #[serde(default)]
    pub queued: u64,
    pub max_in_flight: i64,
}

/// A target's admission under tenant isolation, now.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LbAdmission {
    /// The adaptive concurrency limit in force.
    pub limit: u32,
    /// Requests admitted to the target and not finished.
    pub in_flight: u32,
    /// Requests waiting in the target's tenant queues.
    pub queued: u64,
}

/// One second of one series.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LbSecond {
    pub unix_second: u64,
    #[serde(flatten)]
    pub counts: LbCounts,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The recent seconds of one series: a target (`target_group`, `target` labels) or a tenant
/// (`target_group`, `tenant`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LbMetricSeries {
    pub labels: BTreeMap<String, String>,
    pub in_flight: i64,
    /// Whole seconds, oldest first.
    pub seconds: Vec<LbSecond>,
    pub totals: LbCounts,
    /// For a target of a group with tenant isolation: its limit, in-flight and queue now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<LbAdmission>,
}
