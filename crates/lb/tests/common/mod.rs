//! Test backends and a small client, all on 127.0.0.1 and stopped on drop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use spindle_lb::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a backend misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Answers normally.
    Good,
    /// Closes every connection at once.
    Reset,
    /// Answers bytes that aren't HTTP.
    Garbage,
}

/// A backend that names itself in `x-backend`, echoes forwarding headers, and serves
/// `/health` (200 unless failing), `/sleep/MS` and `/echo-body`.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub healthy: Arc<AtomicBool>,
    pub hits: Arc<AtomicUsize>,
    /// Connections that carried at least one proxied (non-health-check) request.
    pub data_conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &str, mode: Mode) -> Backend {
        Self::start_with(name, mode, None).await
    }

    /// `capacity`: (slots, cost) — every non-health request holds a slot for `cost`.
    pub async fn start_with(
        name: &str,
        mode: Mode,
        capacity: Option<(usize, Duration)>,
    ) -> Backend {
        let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let data_conns = Arc::new(AtomicUsize::new(0));
        let dc = data_conns.clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(capacity.map_or(1000, |c| c.0)));
        let cost = capacity.map(|c| c.1);
        let (h, n, nm) = (healthy.clone(), hits.clone(), name.to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = sock.accept().await else {
                    return;
                };
                match mode {
                    Mode::Reset => {
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        drop(s);
                        continue;
                    }
                    Mode::Garbage => {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 1024];
                            let _ = s.read(&mut buf).await;
                            let _ = s.write_all(b"this is not http\r\n\r\n").await;
                        });
                        continue;
                    }
                    Mode::Good => {}
                }
                let (h, n, nm, sem) = (h.clone(), n.clone(), nm.clone(), sem.clone());
                let (dc, counted) = (dc.clone(), Arc::new(AtomicBool::new(false)));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (h, n, nm, sem) = (h.clone(), n.clone(), nm.clone(), sem.clone());
                            let (dc, counted) = (dc.clone(), counted.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                let mut resp =
                                    hyper::Response::builder().header("x-backend", nm.as_str());
                                if path == "/health" {
                                    let status = if h.load(Ordering::SeqCst) { 200 } else { 500 };
                                    return Ok::<_, Infallible>(
                                        resp.status(status).body(Full::new(Bytes::new())).unwrap(),
                                    );
                                }
                                n.fetch_add(1, Ordering::SeqCst);
                                if !counted.swap(true, Ordering::SeqCst) {
                                    dc.fetch_add(1, Ordering::SeqCst);
                                }
                                for k in [
                                    "x-forwarded-for",
                                    "x-forwarded-proto",
                                    "x-forwarded-port",
                                    "host",
                                    "x-tenant-id",
                                ] {
                                    if let Some(v) = req.headers().get(k) {
                                        resp = resp.header(format!("echo-{k}"), v.clone());
                                    }
                                }
                                if let Some(c) = cost {
                                    let _slot = sem.acquire().await;
                                    tokio::time::sleep(c).await;
                                }
                                if let Some((_, ms)) = path.split_once("/sleep/") {
                                    tokio::time::sleep(Duration::from_millis(
                                        ms.parse().unwrap_or(0),
                                    ))
                                    .await;
                                }
                                let body = if path == "/echo-body" {
                                    req.into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default()
                                } else {
                                    Bytes::from(nm.clone())
                                };
                                Ok(resp.body(Full::new(body)).unwrap())
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Backend {
            addr,
            name: name.to_string(),
            healthy,
            hits,
            data_conns,
            task,
        }
    }
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Sends one request on a new connection.
pub async fn send(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> anyhow::Result<Resp> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    let conn = tokio::spawn(conn);
    let resp = tx.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    conn.abort();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    get_with(addr, host, path, &[]).await
}

pub async fn get_with(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::get(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

/// A health check that reacts quickly.
pub fn fast_health() -> HealthCheckConfig {
    HealthCheckConfig {
        enabled: true,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(80),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        path: "/health".into(),
        matcher: "200-299".into(),
    }
}

pub fn group(name: &str, targets: &[&Backend]) -> TargetGroupConfig {
    let mut tg = TargetGroupConfig::new(name, targets.iter().map(|b| b.addr).collect());
    tg.health_check = fast_health();
    tg.deregistration_delay = Duration::from_secs(5);
    tg.target_timeout = Duration::from_secs(5);
    tg.connect_timeout = Duration::from_secs(1);
    tg
}

pub fn http_listener(default_tg: &str) -> ListenerConfig {
    ListenerConfig {
        name: "http".into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        protocol: ListenerProtocol::Http,
        rules: vec![],
        default_action: Action::Forward {
            target_group: default_tg.into(),
        },
    }
}

/// Waits (bounded) until every target of the load balancer has one of the given states.
pub async fn wait_for(
    lb: &LoadBalancer,
    want: &HashMap<SocketAddr, HealthState>,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let now: HashMap<_, _> = lb
            .target_health()
            .into_iter()
            .map(|t| (t.target, t.state))
            .collect();
        if want.iter().all(|(a, s)| now.get(a) == Some(s)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

pub async fn wait_healthy(lb: &LoadBalancer, backends: &[&Backend]) {
    let want = backends
        .iter()
        .map(|b| (b.addr, HealthState::Healthy))
        .collect();
    assert!(
        wait_for(lb, &want, Duration::from_secs(5)).await,
        "targets never became healthy: {:?}",
        lb.target_health()
    );
}

/// A load balancer with one HTTP listener; returns it with its address.
pub async fn start_lb(cfg: LbConfig) -> (LoadBalancer, SocketAddr) {
    let lb = LoadBalancer::new(LbOptions::new("test"));
    lb.apply(cfg, 1).unwrap();
    let addr = lb.listener_addr("http").unwrap();
    (lb, addr)
}
