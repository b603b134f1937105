//! Open-loop Poisson load from five tenants for the isolation benchmark.
//!
//! `lb_tenants ADDR [CALM_SECONDS SPIKE_SECONDS RATE]`: tenants A–E each send Poisson
//! arrivals at RATE req/s (default 60) with `X-Tenant-Id` for CALM_SECONDS (default 10); then A
//! sends ten times its rate for SPIKE_SECONDS (default 20). The generator never waits for
//! replies: each request is sent at its scheduled time on a free keep-alive connection (a new
//! one if none is free), a request without its answer 2 s after its scheduled time counts as
//! timed out, and latency is counted from the scheduled time, so a slow proxy cannot slow the
//! load down and hide its own queueing.
//!
//! Prints, per phase, B–E's success rate and latency percentiles, A's fate (served, refused at
//! once, timed out), and a last `result` line with the figures `bench/lb.sh` compares.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

type Sender = SendRequest<Empty<Bytes>>;
type Pool = Arc<Mutex<Vec<Sender>>>;

const TIMEOUT: Duration = Duration::from_secs(2);
const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];

#[derive(Default)]
struct Stats {
    ok: u64,
    refused: u64,
    timed_out: u64,
    failed: u64,
    latencies: Vec<Duration>,
}

enum Fate {
    Ok,
    Refused,
    Failed,
}

async fn one(addr: std::net::SocketAddr, tenant: &'static str, pool: Pool) -> Fate {
    let mut tx = loop {
        let pooled = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(mut tx) => {
                if tx.ready().await.is_ok() {
                    break tx;
                }
            }
            None => {
                let Ok(s) = tokio::net::TcpStream::connect(addr).await else {
                    return Fate::Failed;
                };
                let _ = s.set_nodelay(true);
                let Ok((tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await
                else {
                    return Fate::Failed;
                };
                tokio::spawn(conn);
                break tx;
            }
        }
    };
    let Ok(req) = http::Request::get("/")
        .header("host", "bench")
        .header("x-tenant-id", tenant)
        .body(Empty::new())
    else {
        return Fate::Failed;
    };
    let Ok(resp) = tx.send_request(req).await else {
        return Fate::Failed;
    };
    let status = resp.status().as_u16();
    if resp.into_body().collect().await.is_err() {
        return Fate::Failed;
    }
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
    match status {
        200 => Fate::Ok,
        429 | 503 => Fate::Refused,
        _ => Fate::Failed,
    }
}

/// A small deterministic generator (splitmix64) for the arrival times.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn phase(
    addr: std::net::SocketAddr,
    secs: f64,
    rates: [f64; 5],
    pools: &[Pool],
    seed: u64,
) -> Vec<Stats> {
    let mut tenants = Vec::new();
    for (i, rate) in rates.into_iter().enumerate() {
        let name = NAMES[i];
        let pool = pools[i].clone();
        tenants.push(tokio::spawn(async move {
            let stats = Arc::new(Mutex::new(Stats::default()));
            let mut rng = Rng(seed * 31 + i as u64);
            let start = Instant::now();
            let end = start + Duration::from_secs_f64(secs);
            let mut at = start;
            let mut inflight = Vec::new();
            loop {
                // Exponential gaps: Poisson arrivals at `rate`.
                at += Duration::from_secs_f64(-(1.0 - rng.unit()).ln() / rate);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let (pool, stats) = (pool.clone(), stats.clone());
                let scheduled = at;
                inflight.push(tokio::spawn(async move {
                    let r =
                        tokio::time::timeout_at(scheduled + TIMEOUT, one(addr, name, pool)).await;
                    let elapsed = scheduled.elapsed();
                    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                    match r {
                        Ok(Fate::Ok) => {
                            s.ok += 1;
                            s.latencies.push(elapsed);
                        }
                        Ok(Fate::Refused) => s.refused += 1,
                        Ok(Fate::Failed) => s.failed += 1,
                        Err(_) => s.timed_out += 1,
                    }
                }));
            }
            for t in inflight {
                let _ = t.await;
            }
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
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

/// B–E together: (success %, p50 ms, p99 ms).
fn others(stats: &[Stats]) -> (f64, f64, f64) {
    let mut l: Vec<Duration> = stats[1..]
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    l.sort();
    let ok: u64 = stats[1..].iter().map(|s| s.ok).sum();
    let all: u64 = stats[1..]
        .iter()
        .map(|s| s.ok + s.refused + s.timed_out + s.failed)
        .sum();
    (
        100.0 * ok as f64 / all.max(1) as f64,
        pct(&l, 0.5),
        pct(&l, 0.99),
    )
}

fn report(label: &str, stats: &[Stats]) {
    let (ok, p50, p99) = others(stats);
    let a = &stats[0];
    let all = (a.ok + a.refused + a.timed_out + a.failed).max(1) as f64;
    let mut al = a.latencies.clone();
    al.sort();
    println!(
        "{label}: B-E success {ok:.1}% p50 {p50:.1} ms p99 {p99:.1} ms | A served {:.1}% (p99 {:.1} ms), refused {:.1}%, timed out {:.1}%, failed {:.1}%",
        100.0 * a.ok as f64 / all,
        pct(&al, 0.99),
        100.0 * a.refused as f64 / all,
        100.0 * a.timed_out as f64 / all,
        100.0 * a.failed as f64 / all,
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:8080", |s| s.as_str())
        .parse()?;
    let calm: f64 = args.get(2).map_or(Ok(10.0), |s| s.parse())?;
    let spike: f64 = args.get(3).map_or(Ok(20.0), |s| s.parse())?;
    let rate: f64 = args.get(4).map_or(Ok(60.0), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Connections are kept across phases; a short warm-up opens them before measuring.
        let pools: Vec<Pool> = (0..5).map(|_| Pool::default()).collect();
        phase(addr, 2.0, [rate; 5], &pools, 1).await;
        let base = phase(addr, calm, [rate; 5], &pools, 2).await;
        report("calm", &base);
        let rates = [rate * 10.0, rate, rate, rate, rate];
        let hot = phase(addr, spike, rates, &pools, 3).await;
        report("A at 10x", &hot);
        let (_, _, calm_p99) = others(&base);
        let (ok, _, hot_p99) = others(&hot);
        println!(
            "result: B-E p99 calm {calm_p99:.1} ms spike {hot_p99:.1} ms ratio {:.2} success {ok:.1}%",
            hot_p99 / calm_p99
        );
    });
    Ok(())
}
