//! Spindle's load balancer engine: an ALB-compatible HTTP(S) data plane with health checks,
//! draining, per-tenant fairness and 1-second metrics, built on hyper 1 and rustls.
//!
//! # Role
//! The daemon turns `AWS::ElasticLoadBalancingV2::*` resources into an [`LbConfig`] and hands
//! it to a [`LoadBalancer`]; this crate does everything on the wire. It never talks to the
//! store, the API or the runtime: targets are plain socket addresses, and the
//! [`UpstreamConnector`] trait is how the daemon makes upstream sockets inside a VPC's
//! network namespace.
//!
//! # Entry points
//! - [`LoadBalancer::new`] with [`LbOptions`] (name, connector, access log sink).
//! - [`LoadBalancer::apply`]`(config, generation)`: whole-state updates. The new state is
//!   swapped in atomically; older generations are refused; an invalid config is refused with
//!   every error at once (including a certificate that doesn't match its key).
//! - [`LoadBalancer::target_health`], [`LoadBalancer::metrics`] (ring buffers of the last N
//!   seconds per target and per tenant) and [`LoadBalancer::prometheus`].
//! - [`LoadBalancer::drain_watch`]: a [`DrainWatch`] that resolves when a deregistered target
//!   finished draining (no polling; the auto scaler terminates an instance only then).
//! - [`scheduler::Scheduler`]: the tenant scheduler on its own, for tests and simulations.
//!
//! # Invariants
//! - The scheduler ([`scheduler`]) and the health threshold logic ([`HealthTracker`]) are
//!   pure: time is passed in, they do no I/O and are deterministic.
//! - The proxy never panics on client input: every client value is parsed with a fallback
//!   and every failure becomes a status (400/408/413/431 for the client's faults, 502/503/504
//!   with ALB's meanings for the targets', 429/503 with `Retry-After` for a tenant over its
//!   share). `tests/fuzz.rs` throws random bytes at a listener.
//! - Only this crate knows the proxy's HTTP: hop-by-hop headers, `X-Forwarded-*`, keep-alive
//!   pooling and the status mapping live here and nowhere else.
//! - State never moves backwards: each [`LoadBalancer::apply`] carries a generation.
//! - A drained target stays gone: the end of a drain is marked on the target itself, so a
//!   state built concurrently from an older snapshot never lists it again.
//! - A new target takes traffic from its first passing health check ([`HealthTracker`]);
//!   a target that failed needs `healthy_threshold` passes to come back.
//! - Dropping a [`LoadBalancer`] stops its listeners, connections and health checks.
//!
//! # Deliberately not here
//! Resource parsing (CloudFormation), persistence, the REST API, DNS names, and instance
//! lookup: the daemon does those and passes the results in.

pub mod config;
pub mod error;
mod lb;
pub mod metrics;
mod proxy;
pub mod scheduler;
mod target;
mod upstream;

pub use config::*;
pub use error::{ApplyError, ConfigError, Party, ProxyError};
pub use lb::{LbOptions, LoadBalancer, TargetHealth};
pub use proxy::{AccessLog, AccessLogEntry, BodyError, GateLoad};
pub use target::{DrainWatch, HealthState, HealthTracker, NEW_TARGET_PROBE};
pub use upstream::{BoxFuture, TcpConnector, UpstreamConnector};
