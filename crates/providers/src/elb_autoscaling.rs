//! Auto scaling's view of the ELBv2 load balancers: [`ElbAutoScaling`] implements
//! [`LoadBalancing`] over [`Elb`], so an `AWS::AutoScaling::AutoScalingGroup` with
//! `TargetGroupARNs` registers its instances, drains them before terminating them, reads
//! their health and scales on the load balancer's 1-second metrics.
//!
//! - **register** adds the instance (its private IP, the target group's `Port`) to every
//!   target group and returns once each load balancer using them has the new config; the
//!   target then goes through health checks like a template's `Targets` (with a
//!   `HealthCheckPath` it takes traffic once healthy).
//! - **deregister** removes it and blocks until the load balancer signals that the target
//!   drained (its in-flight requests finished, or the group's
//!   `deregistration_delay.timeout_seconds` passed), so the group terminates an instance
//!   only after it drained.
//! - **target_health**: `Some(false)` when any group marks it unhealthy, `Some(true)` when
//!   all mark it healthy (or no running load balancer uses its groups: nothing to wait for),
//!   `None` while a verdict is pending. A group with `HealthCheckType: ELB` counts a new
//!   instance as serving (for launch-before-terminate replacement) only at `Some(true)`.
//! - **second**: requests, target 5xx responses and p50/p95/p99 of the whole group in one
//!   completed second (latency histograms summed over its targets).
//!
//! **Restarts.** Registered instances are kept in the target group's record (`dynamic`, in
//! the `elbv2-providers` state document), so the load balancers restored at daemon start
//! already route to them; an instance that no longer exists is left out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_lb::HealthState;
use spindle_runtime::Instance;

use crate::autoscaling::{LbSecond, LoadBalancing};
use crate::Elb;

/// Slack on top of the deregistration delay before `deregister` gives up waiting.
const DRAIN_SLACK: Duration = Duration::from_secs(2);

/// [`LoadBalancing`] over the daemon's ELBv2 load balancers.
pub struct ElbAutoScaling {
    elb: Arc<Elb>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for ElbAutoScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElbAutoScaling").finish_non_exhaustive()
    }
}

impl ElbAutoScaling {
    /// Auto scaling calls from blocking threads; the load balancers' changes run on
    /// `handle`'s runtime.
    pub fn new(elb: Arc<Elb>, handle: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(ElbAutoScaling { elb, handle })
    }

    /// Runs a future of the ELB state on the runtime from a thread of its own, so it is safe
    /// whatever thread auto scaling calls from.
    fn run<T: Send>(&self, fut: impl std::future::Future<Output = T> + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.handle.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl LoadBalancing for ElbAutoScaling {
    fn register(&self, target_groups: &[String], instance: &Instance) -> Result<(), String> {
        if target_groups.is_empty() {
            return Ok(());
        }
        self.run(self.elb.register_instance(target_groups, &instance.id))
            .map_err(|e| e.to_string())
    }

    fn deregister(&self, target_groups: &[String], instance_id: &str) -> Result<(), String> {
        if target_groups.is_empty() {
            return Ok(());
        }
        let draining = self
            .run(self.elb.deregister_instance(target_groups, instance_id))
            .map_err(|e| e.to_string())?;
        let longest = draining.iter().map(|d| d.delay).max().unwrap_or_default();
        let deadline = Instant::now() + longest + DRAIN_SLACK;
        // The load balancer signals the end of each target's draining (its last request
        // finished, or its delay passed); no polling.
        let watches: Vec<_> = draining.iter().filter_map(|d| d.drain_watch()).collect();
        let drained = self.run(async move {
            for w in watches {
                if !w.wait_until(deadline).await {
                    return false;
                }
            }
            true
        });
        if !drained {
            return Err(format!(
                "{instance_id} still draining in its target groups {longest:?} after the deregistration delay"
            ));
        }
        Ok(())
    }

    fn target_health(&self, target_groups: &[String], instance_id: &str) -> Option<bool> {
        let regs = self.elb.registrations(target_groups, instance_id);
        if regs.is_empty() && !self.elb.in_use(target_groups) {
            // No running load balancer uses these groups: no verdict will come.
            return Some(true);
        }
        let mut all_healthy = !regs.is_empty();
        for r in &regs {
            match r.state().map(|s| s.0) {
                Some(HealthState::Unhealthy) => return Some(false),
                Some(HealthState::Healthy) => {}
                _ => all_healthy = false,
            }
        }
        all_healthy.then_some(true)
    }

    fn second(&self, target_groups: &[String], unix_second: u64) -> Option<LbSecond> {
        let s = self.elb.group_second(target_groups, unix_second)?;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        Some(LbSecond {
            requests: s.counts.requests as f64,
            errors_5xx: s.counts.errors_5xx as f64,
            p50: secs(s.p50),
            p95: secs(s.p95),
            p99: secs(s.p99),
        })
    }
}
