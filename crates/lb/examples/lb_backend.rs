//! A tiny HTTP backend for benchmarks and manual tests.
//!
//! `lb_backend ADDR [COST_MS CONCURRENCY]`: answers every request with `ok`. With a cost,
//! each request holds one of CONCURRENCY slots for COST_MS milliseconds, like an app server
//! with a fixed worker pool.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:9001", |s| s.as_str())
        .parse()?;
    let cost = Duration::from_millis(args.get(2).map_or(Ok(0), |s| s.parse())?);
    let slots: usize = args.get(3).map_or(Ok(1024), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sock = tokio::net::TcpListener::bind(addr).await?;
        let sem = Arc::new(tokio::sync::Semaphore::new(slots));
        println!("listening on {}", sock.local_addr()?);
        loop {
            let (s, _) = sock.accept().await?;
            let _ = s.set_nodelay(true);
            let sem = sem.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let sem = sem.clone();
                    async move {
                        if !cost.is_zero() {
                            let _p = sem.acquire().await;
                            tokio::time::sleep(cost).await;
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}
