//! Open-loop load from five tenants for the isolation benchmark.
//!
//! `lb_tenants ADDR PHASE_SECONDS [RATE]`: tenants A–E each send RATE req/s (default 194,
//! so five of them use 60% of 1,600 req/s) with `X-Tenant-Id`, for one phase; then A sends
//! ten times its rate for another phase, pushing demand to ~1.7× that capacity. Prints, per
//! phase, the success rate and latency percentiles of A and of B–E together.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

type Sender = SendRequest<Empty<Bytes>>;

#[derive(Default)]
struct Stats {
    ok: u64,
    failed: u64,
    latencies: Vec<Duration>,
}

async fn one(
    addr: std::net::SocketAddr,
    tenant: &'static str,
    pool: Arc<Mutex<Vec<Sender>>>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut tx = loop {
        let pooled = pool.lock().unwrap().pop();
        match pooled {
            Some(mut tx) => {
                if tx.ready().await.is_ok() {
                    break tx;
                }
            }
            None => {
                let s = tokio::net::TcpStream::connect(addr).await.ok()?;
                let _ = s.set_nodelay(true);
                let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .ok()?;
                tokio::spawn(conn);
                break tx;
            }
        }
    };
    let req = http::Request::get("/")
        .header("host", "bench")
        .header("x-tenant-id", tenant)
        .body(Empty::new())
        .ok()?;
    let resp = tx.send_request(req).await.ok()?;
    let ok = resp.status() == 200;
    resp.into_body().collect().await.ok()?;
    pool.lock().unwrap().push(tx);
    ok.then(|| started.elapsed())
}

type Pool = Arc<Mutex<Vec<Sender>>>;

async fn phase(
    addr: std::net::SocketAddr,
    secs: u64,
    rates: [f64; 5],
    pools: &[Pool],
) -> Vec<Stats> {
    let names = ["A", "B", "C", "D", "E"];
    let mut tenants = Vec::new();
    for (i, rate) in rates.into_iter().enumerate() {
        let name = names[i];
        let pool = pools[i].clone();
        tenants.push(tokio::spawn(async move {
            let stats = Arc::new(Mutex::new(Stats::default()));
            let end = Instant::now() + Duration::from_secs(secs);
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let (pool, stats) = (pool.clone(), stats.clone());
                inflight.push(tokio::spawn(async move {
                    let r =
                        tokio::time::timeout(Duration::from_secs(10), one(addr, name, pool)).await;
                    let mut s = stats.lock().unwrap();
                    match r {
                        Ok(Some(l)) => {
                            s.ok += 1;
                            s.latencies.push(l);
                        }
                        _ => s.failed += 1,
                    }
                }));
            }
            for t in inflight {
                let _ = t.await;
            }
            let mut s = stats.lock().unwrap();
            std::mem::take(&mut *s)
        }));
    }
    let mut out = Vec::new();
    for t in tenants {
        out.push(t.await.unwrap_or_default());
    }
    out
}

fn pct(l: &[Duration], q: f64) -> f64 {
    if l.is_empty() {
        return f64::NAN;
    }
    l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1].as_secs_f64() * 1000.0
}

fn report(label: &str, stats: &[Stats]) {
    let a = &stats[0];
    let mut others: Vec<Duration> = stats[1..]
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    others.sort();
    let ok: u64 = stats[1..].iter().map(|s| s.ok).sum();
    let failed: u64 = stats[1..].iter().map(|s| s.failed).sum();
    let mut al = a.latencies.clone();
    al.sort();
    println!(
        "{label}: B-E success {:.1}% ({ok}/{}) p50 {:.1} ms p99 {:.1} ms | A success {:.1}% p99 {:.1} ms",
        100.0 * ok as f64 / (ok + failed).max(1) as f64,
        ok + failed,
        pct(&others, 0.5),
        pct(&others, 0.99),
        100.0 * a.ok as f64 / (a.ok + a.failed).max(1) as f64,
        pct(&al, 0.99),
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:8080", |s| s.as_str())
        .parse()?;
    let secs: u64 = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let rate: f64 = args.get(3).map_or(Ok(194.0), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Connections are kept across phases; a short warm-up opens them before measuring.
        let pools: Vec<Pool> = (0..5).map(|_| Pool::default()).collect();
        phase(addr, 2, [rate; 5], &pools).await;
        let base = phase(addr, secs, [rate; 5], &pools).await;
        report("baseline", &base);
        let spike = phase(addr, secs, [rate * 10.0, rate, rate, rate, rate], &pools).await;
        report("A at 10x", &spike);
        let b = |s: &[Stats]| {
            let mut l: Vec<Duration> = s[1..]
                .iter()
                .flat_map(|s| s.latencies.iter().copied())
                .collect();
            l.sort();
            pct(&l, 0.99)
        };
        println!(
            "B-E p99 spike/baseline = {:.2} (target <= 1.2)",
            b(&spike) / b(&base)
        );
    });
    Ok(())
}
