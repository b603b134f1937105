//! Error types: configuration errors (refused at build time) and proxy-path errors.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

/// One problem in an [`crate::LbConfig`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Two target groups share a name.
    #[error("target group `{name}` is defined twice")]
    DuplicateTargetGroup { name: String },
    /// Two listeners share a name.
    #[error("listener `{name}` is defined twice")]
    DuplicateListener { name: String },
    /// Two rules of a listener share a priority.
    #[error("listener `{listener}` has two rules with priority {priority}")]
    DuplicatePriority { listener: String, priority: u32 },
    /// A rule has no condition.
    #[error("listener `{listener}`: rule {priority} has no condition")]
    RuleWithoutCondition { listener: String, priority: u32 },
    /// A forward action names a target group that doesn't exist.
    #[error("listener `{listener}` forwards to unknown target group `{target_group}`")]
    UnknownTargetGroup {
        listener: String,
        target_group: String,
    },
    /// A fixed response or redirect has an unusable status.
    #[error("listener `{listener}`: status {status} is not allowed here")]
    BadStatus { listener: String, status: u16 },
    /// A fixed response's content type is not a valid header value.
    #[error("listener `{listener}`: fixed response content type is not a valid header value")]
    BadContentType { listener: String },
    /// A redirect path doesn't start with `/`.
    #[error("listener `{listener}`: redirect path `{path}` must start with `/`")]
    BadRedirectPath { listener: String, path: String },
    /// A health check matcher can't be parsed.
    #[error("target group `{target_group}`: bad health check matcher: {reason}")]
    BadMatcher {
        target_group: String,
        reason: String,
    },
    /// Health check timeout not shorter than its interval.
    #[error(
        "target group `{target_group}`: health check timeout must be shorter than its interval"
    )]
    HealthCheckTiming { target_group: String },
    /// A zero threshold.
    #[error("target group `{target_group}`: health check thresholds must be at least 1")]
    HealthCheckThreshold { target_group: String },
    /// The health check path is not an absolute path.
    #[error("target group `{target_group}`: health check path `{path}` is not an absolute path")]
    HealthCheckPath { target_group: String, path: String },
    /// A zero target or connect timeout.
    #[error("target group `{target_group}`: timeouts must not be zero")]
    ZeroTimeout { target_group: String },
    /// Isolation settings are inconsistent.
    #[error("target group `{target_group}`: tenant isolation: {reason}")]
    Scheduler {
        target_group: String,
        reason: String,
    },
    /// The certificate or key PEM can't be read.
    #[error("listener `{listener}`: {reason}")]
    BadPem { listener: String, reason: String },
    /// The certificate doesn't belong to the key.
    #[error("listener `{listener}`: the certificate does not match its private key")]
    CertKeyMismatch { listener: String },
}

/// Why [`crate::LoadBalancer::apply`] refused a config; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The config has errors; all of them are listed.
    #[error("invalid load balancer config: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigError>),
    /// A newer (or equal but different) generation is already applied.
    #[error("generation {offered} is older than the applied generation {current}")]
    StaleGeneration { current: u64, offered: u64 },
    /// A listener's address could not be bound.
    #[error("listener `{listener}` could not bind {addr}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Who caused a proxy-path failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    /// The client sent something unacceptable or too slowly.
    Client,
    /// The target failed or was too slow.
    Target,
    /// The load balancer itself chose to refuse (no capacity, tenant over share).
    LoadBalancer,
}

/// A failure on the proxy path, turned into ALB's status codes.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No healthy target to send to.
    #[error("target group `{target_group}` has no healthy target")]
    NoHealthyTarget { target_group: String },
    /// TCP connect failed.
    #[error("connecting to target {target} failed")]
    Connect {
        target: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// TCP connect did not finish in time.
    #[error("connecting to target {target} timed out after {timeout:?}")]
    ConnectTimeout {
        target: SocketAddr,
        timeout: Duration,
    },
    /// The target did not send a response head in time.
    #[error("target {target} did not answer within {timeout:?}")]
    TargetTimeout {
        target: SocketAddr,
        timeout: Duration,
    },
    /// The target reset the connection or sent something that isn't HTTP.
    #[error("target {target} reset the connection or sent an invalid response")]
    BadResponse {
        target: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    /// The client's body was larger than allowed.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The client stopped sending its body.
    #[error("client sent no body data for {timeout:?}")]
    ClientBodyTimeout { timeout: Duration },
    /// The tenant is over its share, queue or rate.
    #[error("tenant `{tenant}` refused: {reason}")]
    TenantRefused {
        tenant: String,
        reason: crate::scheduler::RejectReason,
        retry_after: Duration,
    },
}

impl ProxyError {
    /// Who failed.
    pub fn party(&self) -> Party {
        match self {
            ProxyError::NoHealthyTarget { .. } | ProxyError::TenantRefused { .. } => {
                Party::LoadBalancer
            }
            ProxyError::Connect { .. }
            | ProxyError::ConnectTimeout { .. }
            | ProxyError::TargetTimeout { .. }
            | ProxyError::BadResponse { .. } => Party::Target,
            ProxyError::BodyTooLarge { .. } | ProxyError::ClientBodyTimeout { .. } => Party::Client,
        }
    }

    /// Whether the client may safely send the same request again: true when the target
    /// cannot have acted on it.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            ProxyError::NoHealthyTarget { .. }
                | ProxyError::Connect { .. }
                | ProxyError::ConnectTimeout { .. }
                | ProxyError::TenantRefused { .. }
        )
    }

    /// The status ALB would answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoHealthyTarget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::ConnectTimeout { .. } | ProxyError::TargetTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::TenantRefused { reason, .. } => reason.status(),
        }
    }
}
