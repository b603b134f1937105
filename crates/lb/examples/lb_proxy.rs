//! Runs a `spindle-lb` load balancer for benchmarks.
//!
//! `lb_proxy LISTEN TARGET[,TARGET...] [isolation]`: one HTTP listener forwarding everything
//! to one target group. With `isolation`, tenants are named by `X-Tenant-Id` and share the
//! targets through the tenant schedulers with exactly the settings a target group gets from
//! the `spindle.tenant.header` attribute alone (what users get); each second it prints every
//! target's limit, in-flight and queued requests to stderr.

use std::time::Duration;

use spindle_lb::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen: std::net::SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:8080", |s| s.as_str())
        .parse()?;
    let targets = args
        .get(2)
        .map_or("127.0.0.1:9001", |s| s.as_str())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()?;
    let isolation = args.get(3).is_some_and(|s| s == "isolation");
    // Client connections run on dedicated I/O threads (one per core here); the runtime below
    // only runs health checks and the control side.
    let io_threads: usize = std::env::var("LB_IO_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let workers = if io_threads == 0 { 2 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let lb = LoadBalancer::new(LbOptions {
            io_threads,
            ..LbOptions::new("bench")
        });
        let mut tg = TargetGroupConfig::new("app", targets);
        tg.health_check = HealthCheckConfig {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            ..HealthCheckConfig::default()
        };
        if isolation {
            tg.isolation = Some(IsolationConfig {
                tenant_key: TenantKey::Header("x-tenant-id".into()),
                scheduler: scheduler::SchedulerConfig::default(),
            });
        }
        let cfg = LbConfig {
            listeners: vec![ListenerConfig {
                name: "http".into(),
                bind: listen,
                protocol: ListenerProtocol::Http,
                rules: vec![],
                default_action: Action::Forward {
                    target_group: "app".into(),
                },
            }],
            target_groups: vec![tg],
            client: ClientSettings {
                h2c: std::env::var("LB_H2C").map_or(true, |v| v != "0"),
                ..ClientSettings::default()
            },
        };
        lb.apply(cfg, 1)?;
        for _ in 0..100 {
            if lb
                .target_health()
                .iter()
                .all(|t| t.state == HealthState::Healthy)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("ready on {}", lb.listener_addr("http").unwrap_or(listen));
        if isolation {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for (target, g) in lb.target_loads("app").unwrap_or_default() {
                    eprintln!(
                        "{target} limit {} in_flight {} queued {} noload {:?}",
                        g.limit, g.in_flight, g.queued, g.rtt_noload
                    );
                }
            }
        }
        std::future::pending::<()>().await;
        Ok(())
    })
}
