//! Tenant isolation end to end: one tenant floods, another keeps its latency.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use spindle_lb::scheduler::SchedulerConfig;
use spindle_lb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_hurt_the_others() {
    // Two targets that each serve 4 requests at a time, 20 ms each: 400 req/s in all.
    let a = Backend::start_with("a", Mode::Good, Some((4, Duration::from_millis(20)))).await;
    let b = Backend::start_with("b", Mode::Good, Some((4, Duration::from_millis(20)))).await;
    let mut tg = group("app", &[&a, &b]);
    tg.algorithm = Algorithm::LeastOutstandingRequests;
    tg.isolation = Some(IsolationConfig {
        tenant_key: TenantKey::Header("x-tenant-id".into()),
        scheduler: SchedulerConfig {
            initial_limit: 8,
            min_limit: 2,
            max_limit: 64,
            max_queue_per_tenant: 16,
            queue_timeout: Duration::from_millis(500),
            ..SchedulerConfig::default()
        },
    });
    let cfg = LbConfig {
        listeners: vec![http_listener("app")],
        target_groups: vec![tg],
        client: ClientSettings::default(),
    };
    let (lb, addr) = start_lb(cfg).await;
    wait_healthy(&lb, &[&a, &b]).await;

    // Tenant "flood": 48 concurrent loops, far more than the targets can take.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU32::new(0));
    let served = Arc::new(AtomicU32::new(0));
    let mut flooders = Vec::new();
    for _ in 0..48 {
        let (stop, refused, served) = (stop.clone(), refused.clone(), served.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = get_with(addr, "x", "/", &[("x-tenant-id", "flood")]).await;
                match r.status {
                    200 => served.fetch_add(1, Ordering::Relaxed),
                    429 | 503 => {
                        assert!(r.headers.contains_key("retry-after"));
                        refused.fetch_add(1, Ordering::Relaxed);
                        // Back off like a client honouring Retry-After would, only much sooner.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        0
                    }
                    other => panic!("unexpected status {other}"),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Tenant "calm": sequential requests; every one succeeds, quickly.
    let mut latencies = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let r = get_with(addr, "x", "/", &[("x-tenant-id", "calm")]).await;
        assert_eq!(r.status, 200, "calm tenant refused: {:?}", r.headers);
        latencies.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    latencies.sort();
    let p90 = latencies[latencies.len() * 9 / 10];
    // Alone, a request takes ~20 ms. The flood's own queue would add hundreds of ms.
    let limit = lb.tenant_limit("app");
    eprintln!(
        "calm p90 {p90:?}, max {:?}, limit {limit:?}",
        latencies.last()
    );
    assert!(
        p90 < Duration::from_millis(120),
        "calm p90 {p90:?}, limit {limit:?}, all {latencies:?}"
    );
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the flood was never refused"
    );
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "the flood still gets its share"
    );
    let calm = lb
        .metrics()
        .into_iter()
        .find(|s| s.labels.get("tenant").map(String::as_str) == Some("calm"))
        .expect("a tenant series");
    assert_eq!(calm.totals.requests, 30);
    assert_eq!(calm.totals.refused, 0);
}
