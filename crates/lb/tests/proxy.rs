//! The data plane against real sockets on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use spindle_lb::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cfg(listener: ListenerConfig, groups: Vec<TargetGroupConfig>) -> LbConfig {
    LbConfig {
        listeners: vec![listener],
        target_groups: groups,
        client: ClientSettings::default(),
    }
}

#[tokio::test]
async fn routes_by_host_and_path_with_fixed_responses_and_redirects() {
    let api = Backend::start("api", Mode::Good).await;
    let web = Backend::start("web", Mode::Good).await;
    let mut l = http_listener("web");
    l.rules = vec![
        RuleConfig {
            priority: 20,
            conditions: vec![Condition::PathPattern(vec!["/api/*".into()])],
            action: Action::Forward {
                target_group: "api".into(),
            },
        },
        // Lower priority number wins over the path rule for this host.
        RuleConfig {
            priority: 10,
            conditions: vec![
                Condition::HostHeader(vec!["*.status.example.com".into()]),
                Condition::PathPattern(vec!["/api/*".into(), "/ping".into()]),
            ],
            action: Action::FixedResponse {
                status: 418,
                content_type: "text/plain".into(),
                body: "teapot".into(),
            },
        },
        RuleConfig {
            priority: 30,
            conditions: vec![Condition::HostHeader(vec!["old.example.com".into()])],
            action: Action::Redirect {
                protocol: Some("HTTPS".into()),
                host: Some("new.example.com".into()),
                port: Some("443".into()),
                path: Some("/moved#{path}".into()),
                query: None,
                status: 301,
            },
        },
    ];
    let (lb, addr) = start_lb(cfg(l, vec![group("api", &[&api]), group("web", &[&web])])).await;
    wait_healthy(&lb, &[&api, &web]).await;

    let r = get(addr, "example.com", "/api/users?x=1").await;
    assert_eq!((r.status, r.body.as_str()), (200, "api"));
    let r = get(addr, "example.com", "/index.html").await;
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    let r = get(addr, "EU.Status.example.com:8080", "/api/x").await;
    assert_eq!((r.status, r.body.as_str()), (418, "teapot"));
    let r = get(addr, "eu.status.example.com", "/other").await;
    assert_eq!(r.body, "web", "both conditions must match");
    let r = get(addr, "old.example.com", "/a/b?q=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers["location"],
        "https://new.example.com/moved/a/b?q=1"
    );
}

#[tokio::test]
async fn forwards_headers_and_balances_round_robin() {
    let a = Backend::start("a", Mode::Good).await;
    let b = Backend::start("b", Mode::Good).await;
    let (lb, addr) = start_lb(cfg(http_listener("app"), vec![group("app", &[&a, &b])])).await;
    wait_healthy(&lb, &[&a, &b]).await;
    let r = get_with(
        addr,
        "app.example.com",
        "/",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(r.headers["echo-x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(r.headers["echo-x-forwarded-proto"], "http");
    assert_eq!(
        r.headers["echo-x-forwarded-port"],
        addr.port().to_string().as_str()
    );
    assert_eq!(r.headers["echo-host"], "app.example.com");
    let mut seen = HashMap::new();
    for _ in 0..20 {
        *seen.entry(get(addr, "x", "/").await.body).or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
    // One series per target, counted.
    let total: u64 = lb
        .metrics()
        .iter()
        .filter(|s| s.labels.contains_key("target"))
        .map(|s| s.totals.requests)
        .sum();
    assert_eq!(total, 21);
    let text = lb.prometheus();
    assert!(text.contains(&format!("target=\"{}\"", a.addr)), "{text}");
}

#[tokio::test]
async fn keep_alive_client_connection_serves_many_requests() {
    let a = Backend::start("a", Mode::Good).await;
    let (lb, addr) = start_lb(cfg(http_listener("app"), vec![group("app", &[&a])])).await;
    wait_healthy(&lb, &[&a]).await;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    for _ in 0..50 {
        let req = http::Request::get("/")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
    }
    conn.abort();
}

#[tokio::test]
async fn health_checks_take_a_failing_target_out_and_put_it_back() {
    let a = Backend::start("a", Mode::Good).await;
    let b = Backend::start("b", Mode::Good).await;
    let (lb, addr) = start_lb(cfg(http_listener("app"), vec![group("app", &[&a, &b])])).await;
    wait_healthy(&lb, &[&a, &b]).await;

    b.healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let want = HashMap::from([
        (b.addr, HealthState::Unhealthy),
        (a.addr, HealthState::Healthy),
    ]);
    assert!(wait_for(&lb, &want, Duration::from_secs(3)).await);
    // Configured window: unhealthy_threshold × interval plus one timeout, with slack for CI.
    assert!(
        started.elapsed() < Duration::from_millis(2 * 100 + 80 + 400),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..10 {
        assert_eq!(get(addr, "x", "/").await.body, "a");
    }

    b.healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_healthy(&lb, &[&a, &b]).await;
    let bodies: Vec<String> = futures_bodies(addr, 10).await;
    assert!(bodies.iter().any(|x| x == "b"), "{bodies:?}");
}

async fn futures_bodies(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr, "x", "/").await.body);
    }
    out
}

#[tokio::test]
async fn deregistration_drains_without_failures() {
    let a = Backend::start("a", Mode::Good).await;
    let b = Backend::start("b", Mode::Good).await;
    let lb = LoadBalancer::new(LbOptions::new("test"));
    lb.apply(cfg(http_listener("app"), vec![group("app", &[&a])]), 1)
        .unwrap();
    let addr = lb.listener_addr("http").unwrap();
    wait_healthy(&lb, &[&a]).await;

    let long = tokio::spawn(async move { get(addr, "x", "/sleep/600").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    lb.apply(cfg(http_listener("app"), vec![group("app", &[&b])]), 2)
        .unwrap();
    let draining = lb
        .target_health()
        .into_iter()
        .find(|t| t.target == a.addr)
        .unwrap();
    assert_eq!(
        (draining.state, draining.in_flight),
        (HealthState::Draining, 1)
    );
    wait_healthy(&lb, &[&b]).await;
    let hits_a = a.hits.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..10 {
        let r = get(addr, "x", "/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "b"));
    }
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits_a,
        "no new request reached the draining target"
    );
    let r = long.await.unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "a"),
        "the long request finished"
    );
    // Once idle, the drained target is forgotten.
    let deadline = Instant::now() + Duration::from_secs(2);
    while lb.target_health().iter().any(|t| t.target == a.addr) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!lb.target_health().iter().any(|t| t.target == a.addr));
}

/// Regression (issue #7): a target deregistered while idle finished draining before the
/// apply that removed it had published its new state, so its drain cleaned the old state and
/// the new one listed it as draining forever, which stalled the auto scaler's scale-in. Its
/// drain now ends on the target itself, and the end is a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_deregistered_target_is_forgotten_even_when_applies_follow_at_once() {
    let a = Backend::start("a", Mode::Good).await;
    let b = Backend::start("b", Mode::Good).await;
    let lb = LoadBalancer::new(LbOptions::new("test"));
    let mut generation = 0;
    let mut apply = |targets: &[&Backend]| {
        generation += 1;
        lb.apply(
            cfg(http_listener("app"), vec![group("app", targets)]),
            generation,
        )
        .unwrap();
    };
    for round in 0..200 {
        apply(&[&a, &b]);
        apply(&[&b]);
        let watch = lb.drain_watch("app", a.addr);
        // A second change right after the deregistration, as the auto scaler makes when it
        // registers another instance.
        apply(&[&b]);
        if let Some(w) = watch {
            let deadline = Instant::now() + Duration::from_secs(2);
            assert!(w.wait_until(deadline).await, "round {round}: never drained");
        }
        let listed: Vec<_> = lb
            .target_health()
            .into_iter()
            .filter(|t| t.target == a.addr)
            .collect();
        assert!(listed.is_empty(), "round {round}: still listed: {listed:?}");
        assert!(lb.drain_watch("app", a.addr).is_none(), "round {round}");
    }
    let _ = &mut apply;
}

#[tokio::test]
async fn misbehaving_targets_get_alb_status_codes() {
    let reset = Backend::start("reset", Mode::Reset).await;
    let garbage = Backend::start("garbage", Mode::Garbage).await;
    let slow = Backend::start("slow", Mode::Good).await;
    let sick = Backend::start("sick", Mode::Good).await;
    sick.healthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let no_hc = |mut tg: TargetGroupConfig| {
        tg.health_check.enabled = false;
        tg
    };
    let mut slow_tg = group("slow", &[&slow]);
    slow_tg.target_timeout = Duration::from_millis(200);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut l = http_listener("sick");
    let rule = |p: u32, path: &str, tg: &str| RuleConfig {
        priority: p,
        conditions: vec![Condition::PathPattern(vec![path.into()])],
        action: Action::Forward {
            target_group: tg.into(),
        },
    };
    l.rules = vec![
        rule(1, "/reset*", "reset"),
        rule(2, "/garbage*", "garbage"),
        rule(3, "/slow*", "slow"),
        rule(4, "/closed*", "closed"),
    ];
    let groups = vec![
        no_hc(group("reset", &[&reset])),
        no_hc(group("garbage", &[&garbage])),
        slow_tg,
        group("sick", &[&sick]),
        no_hc(TargetGroupConfig {
            targets: vec![closed],
            ..group("closed", &[])
        }),
    ];
    let log = Arc::new(Collect::default());
    let lb = LoadBalancer::new(LbOptions {
        access_log: Some(log.clone()),
        ..LbOptions::new("test")
    });
    lb.apply(cfg(l, groups), 1).unwrap();
    let addr = lb.listener_addr("http").unwrap();
    wait_healthy(&lb, &[&slow]).await;

    assert_eq!(get(addr, "x", "/reset").await.status, 502);
    assert_eq!(get(addr, "x", "/garbage").await.status, 502);
    let t = Instant::now();
    assert_eq!(get(addr, "x", "/slow/sleep/3000").await.status, 504);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(get(addr, "x", "/closed").await.status, 502);
    assert_eq!(
        get(addr, "x", "/anything").await.status,
        503,
        "no healthy target"
    );
    // The slow target still answers within its timeout.
    assert_eq!(get(addr, "x", "/slow/sleep/10").await.status, 200);

    let entries = log.0.lock().unwrap();
    let statuses: Vec<u16> = entries.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![502, 502, 504, 502, 503, 200]);
    // A reset can land while the connect completes or after the request went out; both are
    // the target's fault and both are 502.
    assert!(
        entries[0]
            .error
            .as_deref()
            .unwrap()
            .contains(&reset.addr.to_string()),
        "{:?}",
        entries[0]
    );
    assert!(
        entries[1]
            .error
            .as_deref()
            .unwrap()
            .contains("invalid response"),
        "{:?}",
        entries[1]
    );
    assert!(entries[3]
        .error
        .as_deref()
        .unwrap()
        .contains("connecting to target"));
    let errs: u64 = lb
        .metrics()
        .iter()
        .filter(|s| s.labels.get("target_group").map(String::as_str) == Some("garbage"))
        .map(|s| s.totals.bad_responses)
        .sum();
    assert_eq!(errs, 1);
}

#[derive(Default)]
struct Collect(Mutex<Vec<AccessLogEntry>>);

impl AccessLog for Collect {
    fn record(&self, entry: AccessLogEntry) {
        self.0.lock().unwrap().push(entry);
    }
}

#[tokio::test]
async fn header_and_body_limits() {
    let a = Backend::start("a", Mode::Good).await;
    let mut c = cfg(http_listener("app"), vec![group("app", &[&a])]);
    c.client.max_header_bytes = 8192;
    c.client.max_body_bytes = 1000;
    let (lb, addr) = start_lb(c).await;
    wait_healthy(&lb, &[&a]).await;

    let big = "x".repeat(20_000);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    let req = |body: Vec<u8>| {
        http::Request::post("/echo-body")
            .header("host", "x")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    assert_eq!(send(addr, req(vec![b'a'; 1001])).await.unwrap().status, 413);
    let ok = send(addr, req(vec![b'a'; 1000])).await.unwrap();
    assert_eq!((ok.status, ok.body.len()), (200, 1000));

    // A chunked body without a length is cut off when it passes the limit.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 600, "b".repeat(600));
    s.write_all(format!("POST /echo-body HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn slow_clients_time_out() {
    let a = Backend::start("a", Mode::Good).await;
    let mut c = cfg(http_listener("app"), vec![group("app", &[&a])]);
    c.client.header_read_timeout = Duration::from_millis(300);
    c.client.body_read_timeout = Duration::from_millis(300);
    let (lb, addr) = start_lb(c).await;
    wait_healthy(&lb, &[&a]).await;

    // Half a request head, then silence: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));

    // A body that stalls gets 408.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo-body HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn stickiness_keeps_a_client_on_one_target() {
    let a = Backend::start("a", Mode::Good).await;
    let b = Backend::start("b", Mode::Good).await;
    let mut tg = group("app", &[&a, &b]);
    tg.stickiness = Some(Stickiness {
        duration: Duration::from_secs(60),
    });
    let (lb, addr) = start_lb(cfg(http_listener("app"), vec![tg])).await;
    wait_healthy(&lb, &[&a, &b]).await;
    let first = get(addr, "x", "/").await;
    let cookie = first.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for _ in 0..6 {
        let r = get_with(addr, "x", "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.body, first.body);
        assert!(!r.headers.contains_key("set-cookie"));
    }
}

#[tokio::test]
async fn apply_refuses_old_generations_and_bad_configs() {
    let a = Backend::start("a", Mode::Good).await;
    let lb = LoadBalancer::new(LbOptions::new("test"));
    let good = cfg(http_listener("app"), vec![group("app", &[&a])]);
    lb.apply(good.clone(), 5).unwrap();
    lb.apply(good.clone(), 5).unwrap();
    assert!(matches!(
        lb.apply(good.clone(), 4),
        Err(ApplyError::StaleGeneration {
            current: 5,
            offered: 4
        })
    ));

    let mut bad = good.clone();
    bad.listeners[0].default_action = Action::Forward {
        target_group: "nope".into(),
    };
    bad.target_groups[0].health_check.matcher = "20x".into();
    bad.target_groups[0].health_check.timeout = Duration::from_secs(100);
    match lb.apply(bad, 6) {
        Err(ApplyError::Invalid(errs)) => assert_eq!(errs.len(), 3, "{errs:?}"),
        other => panic!("expected every error, got {other:?}"),
    }
    assert_eq!(lb.generation(), Some(5));

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let mut tls = good.clone();
    tls.listeners[0].protocol = ListenerProtocol::Https {
        cert_pem: cert.cert.pem(),
        key_pem: other.key_pair.serialize_pem(),
    };
    match lb.apply(tls.clone(), 7) {
        Err(ApplyError::Invalid(errs)) => {
            assert_eq!(
                errs,
                vec![ConfigError::CertKeyMismatch {
                    listener: "http".into()
                }]
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    tls.listeners[0].protocol = ListenerProtocol::Https {
        cert_pem: cert.cert.pem(),
        key_pem: cert.key_pair.serialize_pem(),
    };
    lb.apply(tls, 8).unwrap();
}

#[tokio::test]
async fn io_threads_serve_and_everything_stops_on_drop() {
    let a = Backend::start("a", Mode::Good).await;
    let lb = LoadBalancer::new(LbOptions {
        io_threads: 2,
        ..LbOptions::new("test")
    });
    lb.apply(cfg(http_listener("app"), vec![group("app", &[&a])]), 1)
        .unwrap();
    let addr = lb.listener_addr("http").unwrap();
    wait_healthy(&lb, &[&a]).await;
    for _ in 0..4 {
        assert_eq!(get(addr, "x", "/").await.body, "a");
    }
    // An idle keep-alive connection is closed when the load balancer goes away.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(lb);
    let n = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf))
        .await
        .expect("connection closed after drop")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );
}
