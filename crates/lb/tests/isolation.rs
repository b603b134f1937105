//! Tenant isolation end to end: one tenant floods, another keeps its latency.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use spindle_lb::scheduler::SchedulerConfig;
use spindle_lb::*;

/// Both tests load the machine's cores and judge latency, so they take turns: run side by
/// side, each one's load shows up in the other's latencies.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_hurt_the_others() {
    let _turn = SERIAL.lock().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_finds_a_backends_hidden_pool_of_four() {
    let _turn = SERIAL.lock().await;
    // A backend with 4 workers at 16 ms and first-come-first-served queueing beyond them,
    // behind exactly what `spindle.tenant.header` alone sets up (an initial limit of 20).
    let a = Backend::start_with("a", Mode::Good, Some((4, Duration::from_millis(16)))).await;
    let mut tg = group("app", &[&a]);
    tg.isolation = Some(IsolationConfig {
        tenant_key: TenantKey::Header("x-tenant-id".into()),
        scheduler: SchedulerConfig::default(),
    });
    let cfg = LbConfig {
        listeners: vec![http_listener("app")],
        target_groups: vec![tg],
        client: ClientSettings::default(),
    };
    let (lb, addr) = start_lb(cfg).await;
    wait_healthy(&lb, &[&a]).await;
    assert_eq!(lb.target_loads("app").unwrap()[0].1.limit, 20);

    // Three tenants, 24 loops in all: far more than 4 at a time. Each loop keeps its
    // connection, so the load measures the backend rather than connection set-up on a busy
    // test machine.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let mut loops = Vec::new();
    for i in 0..24 {
        let (stop, served) = (stop.clone(), served.clone());
        let tenant = ["t1", "t2", "t3"][i % 3];
        loops.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let io = hyper_util::rt::TokioIo::new(s);
            let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get("/")
                    .header("host", "x")
                    .header("x-tenant-id", tenant)
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                let resp = tx.send_request(req).await.unwrap();
                let status = resp.status().as_u16();
                http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .unwrap();
                match status {
                    200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    429 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    // Convergence is expected within a second or two; the limit is read over the third.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut limits = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, g) = lb.target_loads("app").unwrap()[0];
        limits.push(g.limit);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (_, g) = lb.target_loads("app").unwrap()[0];
    eprintln!("limits {limits:?}, no-load latency {:?}", g.rtt_noload);
    // The limit ends within [4, 6]: the median of the readings over the third second. A
    // single reading may be one off, while a step up or down is judged for two windows.
    let mut sorted = limits.clone();
    sorted.sort();
    assert!(
        (4..=6).contains(&sorted[sorted.len() / 2]) && limits.iter().all(|l| (3..=7).contains(l)),
        "limits over the third second: {limits:?}"
    );
    assert!(served.load(Ordering::Relaxed) > 200);
}
