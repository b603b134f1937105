//! What the API reads of the running load balancers: lists, descriptions, target health,
//! metrics and Prometheus text, from the view [`Elb`] keeps beside its records (so a read
//! never waits for a deploy in progress).

use std::collections::HashMap;
use std::time::Duration;

use spindle_lb::{Algorithm, HealthState, TenantKey};
use spindle_model::lb::{
    LbAdmission, LbCounts, LbMetricSeries, LbSecond, ListenerInfo, LoadBalancerInfo,
    TargetGroupInfo, TargetHealthInfo,
};
use spindle_model::AccountId;

use super::{dns_name, Elb, View};

impl Elb {
    fn find(&self, account: &AccountId, name: &str) -> Option<View> {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values()
            .find(|v| &v.rec.account == account && (v.rec.name == name || v.arn == name))
            .cloned()
    }

    /// Every load balancer of `account`, by name.
    pub fn list(&self, account: &AccountId) -> Vec<LoadBalancerInfo> {
        let mut views: Vec<View> = {
            let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
            view.values()
                .filter(|v| &v.rec.account == account)
                .cloned()
                .collect()
        };
        views.sort_by(|a, b| a.rec.name.cmp(&b.rec.name));
        views.iter().map(info).collect()
    }

    /// One load balancer by name or ARN.
    pub fn describe(&self, account: &AccountId, name: &str) -> Option<LoadBalancerInfo> {
        self.find(account, name).map(|v| info(&v))
    }

    /// Registered targets of one load balancer's target groups with their health.
    pub fn target_health(&self, account: &AccountId, name: &str) -> Option<Vec<TargetHealthInfo>> {
        let v = self.find(account, name)?;
        let health = v.lb.target_health();
        let mut out = Vec::new();
        for h in health {
            let registered = v
                .compiled
                .targets
                .get(&h.target_group)
                .and_then(|ts| ts.iter().find(|t| t.2 == h.target));
            let (id, port) = match registered {
                Some((id, port, _)) => (id.clone(), *port),
                None => (h.target.ip().to_string(), h.target.port()),
            };
            out.push(TargetHealthInfo {
                target_group: h.target_group,
                id,
                port,
                address: h.target.to_string(),
                state: match h.state {
                    HealthState::Initial => "initial",
                    HealthState::Healthy => "healthy",
                    HealthState::Unhealthy => "unhealthy",
                    HealthState::Draining => "draining",
                }
                .into(),
                in_flight: h.in_flight,
            });
        }
        Some(out)
    }

    /// The 1-second metrics of one load balancer, per target and per tenant.
    pub fn metrics(&self, account: &AccountId, name: &str) -> Option<Vec<LbMetricSeries>> {
        let v = self.find(account, name)?;
        let mut loads = HashMap::new();
        for g in v.compiled.targets.keys() {
            for (addr, l) in v.lb.target_loads(g).unwrap_or_default() {
                let a = LbAdmission {
                    limit: l.limit,
                    in_flight: l.in_flight,
                    queued: l.queued as u64,
                };
                loads.insert((g.clone(), addr.to_string()), a);
            }
        }
        Some(
            v.lb.metrics()
                .into_iter()
                .map(|s| series(s, &loads))
                .collect(),
        )
    }

    /// Prometheus text of every running load balancer.
    pub fn prometheus(&self) -> String {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values().map(|v| v.lb.prometheus()).collect()
    }
}

fn counts(c: &spindle_lb::metrics::Counts) -> LbCounts {
    LbCounts {
        requests: c.requests,
        errors_4xx: c.errors_4xx,
        errors_5xx: c.errors_5xx,
        timeouts: c.timeouts,
        connect_errors: c.connect_errors,
        bad_responses: c.bad_responses,
        refused: c.refused,
        queued: c.queued,
        max_in_flight: c.max_in_flight,
    }
}

/// A metrics series with, for a target of an isolated group, its admission from `loads`.
fn series(
    s: spindle_lb::metrics::SeriesSnapshot,
    loads: &HashMap<(String, String), LbAdmission>,
) -> LbMetricSeries {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let admission = match (s.labels.get("target_group"), s.labels.get("target")) {
        (Some(g), Some(t)) => loads.get(&(g.clone(), t.clone())).copied(),
        _ => None,
    };
    LbMetricSeries {
        admission,
        labels: s.labels,
        in_flight: s.in_flight,
        seconds: s
            .seconds
            .iter()
            .map(|x| LbSecond {
                unix_second: x.unix_second,
                counts: counts(&x.counts),
                p50_ms: ms(x.p50),
                p95_ms: ms(x.p95),
                p99_ms: ms(x.p99),
            })
            .collect(),
        totals: counts(&s.totals),
    }
}

fn info(v: &View) -> LoadBalancerInfo {
    let lb = &v.lb;
    LoadBalancerInfo {
        name: v.rec.name.clone(),
        arn: v.arn.clone(),
        dns_name: dns_name(&v.rec.name, &v.arn, &v.rec.region),
        address: v
            .rec
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
        vpc_id: v.vpc_id.clone(),
        stack: v.rec.stack.clone(),
        logical_id: v.rec.logical_id.clone(),
        listeners: v
            .compiled
            .listeners
            .iter()
            .map(|(arn, protocol, port, rules)| ListenerInfo {
                arn: arn.clone(),
                protocol: protocol.clone(),
                port: *port,
                address: lb
                    .listener_addr(arn)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                rules: *rules,
            })
            .collect(),
        target_groups: v
            .compiled
            .config
            .target_groups
            .iter()
            .map(|tg| TargetGroupInfo {
                name: tg.name.clone(),
                arn: v
                    .compiled
                    .group_arns
                    .get(&tg.name)
                    .cloned()
                    .unwrap_or_default(),
                port: tg.targets.first().map(|a| a.port()).unwrap_or(0),
                algorithm: match tg.algorithm {
                    Algorithm::RoundRobin => "round_robin",
                    Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
                }
                .into(),
                tenant_key: tg.isolation.as_ref().map(|i| match &i.tenant_key {
                    TenantKey::Header(h) => format!("header:{h}"),
                    TenantKey::HostSubdomain => "host".into(),
                    TenantKey::PathPrefix => "path".into(),
                }),
                health_check: tg.health_check.enabled.then(|| {
                    let hc = &tg.health_check;
                    format!(
                        "GET {} on the traffic port, expecting {}, every {} s (timeout {} s; unhealthy after {} failures)",
                        hc.path,
                        hc.matcher,
                        hc.interval.as_secs_f64(),
                        hc.timeout.as_secs_f64(),
                        hc.unhealthy_threshold
                    )
                }),
            })
            .collect(),
    }
}
