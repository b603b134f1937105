//! Load balancers through the daemon, as root, with real instances: a template with a VPC,
//! subnet, security group, two busybox instances, a target group, a listener and a load
//! balancer. Requests reach both instances; health checks take a failing target out and put
//! it back within the configured window; deregistration drains without failures; a tenant
//! at 10x doesn't cost the other four a single request. Skips (printing why) when not root or
//! the tools are missing.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::*;
use spindle_model::lb::{LoadBalancerInfo, TargetHealthInfo};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "management";

use spindle_testsupport::templates::WEB_PAIR_LB as TEMPLATE;

/// One request with `Connection: close`: the status code (0 when the connection failed) and
/// the body.
fn get(addr: SocketAddr, path: &str, tenant: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: web\r\nX-Tenant-Id: {tenant}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).to_string();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.trim().to_string())
        .unwrap_or_default();
    (code, body)
}

fn health(d: &Daemon) -> BTreeMap<String, String> {
    let t: Vec<TargetHealthInfo> = d.admin().load_balancer(ACCOUNT, "web", "/targets").unwrap();
    t.into_iter().map(|t| (t.id, t.state)).collect()
}

/// Waits until `id` is in `state`; returns how long that took.
fn wait_state(d: &Daemon, id: &str, state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let h = health(d);
        if h.get(id).map(String::as_str) == Some(state) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{id} not {state} within {limit:?}: {h:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exec(d: &Daemon, id: &str, cmd: &[&str]) {
    let mut args = vec!["instance", "exec", id, "--"];
    args.extend_from_slice(cmd);
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", common::stderr(&o));
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_load_balancer_in_front_of_real_instances() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("lbt{}", std::process::id() % 10_000_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    let tarball = d.root().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
        .unwrap();
    admin
        .import_image(
            ACCOUNT,
            &ImportImage {
                path: tarball.display().to_string(),
                tag: Some("busybox:web".into()),
                entrypoint: vec![],
                cmd: ["httpd", "-f", "-p", "80", "-h", "/www"]
                    .map(String::from)
                    .to_vec(),
            },
        )
        .unwrap();
    let deploy = |body: &str| DeployStack {
        template: TemplateRequest {
            template_body: body.into(),
            template_name: Some("web.yaml".into()),
            parameters: Default::default(),
            nested_templates: Default::default(),
            use_previous_values: Default::default(),
        },
        ..DeployStack::default()
    };
    let r = admin
        .deploy_stack(ACCOUNT, "web", &deploy(TEMPLATE))
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let detail = admin.describe_stack(ACCOUNT, "web").unwrap();
    let id = |l: &str| {
        detail
            .resources
            .iter()
            .find(|r| r.logical_id == l)
            .unwrap()
            .physical_id
            .clone()
    };
    let (a, b) = (id("A"), id("B"));
    let dns = &detail
        .outputs
        .iter()
        .find(|o| o.name == "Dns")
        .unwrap()
        .value;
    assert!(dns.ends_with(".us-east-1.elb.spindle.internal"), "{dns}");

    // The CLI shows it; the listener is bound to the load balancer's own loopback address.
    let o = d.cli(&["lb", "describe", "web", "--output", "json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let info: LoadBalancerInfo = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert!(info.vpc_id.as_deref().unwrap_or("").starts_with("vpc-"));
    let addr: SocketAddr = info.listeners[0].address.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() == 80, "{addr}");
    let o = d.cli(&["lb", "list"]);
    assert!(common::stdout(&o).contains("web"), "{}", common::stdout(&o));

    // Both instances become healthy and both answer through the listener.
    wait_state(&d, &a, "healthy", Duration::from_secs(30));
    wait_state(&d, &b, "healthy", Duration::from_secs(30));
    let o = d.cli(&["lb", "targets", "web"]);
    assert!(common::stdout(&o).contains(&a), "{}", common::stdout(&o));
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        let (code, body) = get(addr, "/who.txt", "t0");
        assert_eq!(code, 200, "{body}");
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "requests reach both instances: {seen:?}");

    // A failing health check takes B out within interval x threshold (+ timeout and one poll
    // of slack), and back in the same way once it passes again.
    let window = Duration::from_secs(2 * 2 + 1 + 2);
    exec(&d, &b, &["sh", "-c", "rm /www/health.txt"]);
    let took = wait_state(&d, &b, "unhealthy", window);
    eprintln!("B unhealthy after {took:?}");
    let bodies: Vec<String> = (0..10).map(|_| get(addr, "/who.txt", "t0").1).collect();
    assert_eq!(
        bodies
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "only A answers: {bodies:?}"
    );
    exec(&d, &b, &["sh", "-c", "echo ok > /www/health.txt"]);
    let took = wait_state(&d, &b, "healthy", window);
    eprintln!("B healthy again after {took:?}");

    // Five tenants; t1 sends ten times what each of the others does. The others lose nothing.
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (tenant, threads) in [("t1", 20), ("t2", 2), ("t3", 2), ("t4", 2), ("t5", 2)] {
        for _ in 0..threads {
            let stop = stop.clone();
            handles.push(std::thread::spawn(move || {
                let mut codes: BTreeMap<u16, u32> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    *codes
                        .entry(get(addr, "/cgi-bin/work", tenant).0)
                        .or_default() += 1;
                }
                (tenant, codes)
            }));
        }
    }
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let mut per_tenant: BTreeMap<&str, BTreeMap<u16, u32>> = BTreeMap::new();
    for h in handles {
        let (t, codes) = h.join().unwrap();
        let e = per_tenant.entry(t).or_default();
        for (c, n) in codes {
            *e.entry(c).or_default() += n;
        }
    }
    eprintln!("tenant status counts: {per_tenant:?}");
    for t in ["t2", "t3", "t4", "t5"] {
        let codes = &per_tenant[t];
        assert!(
            codes.keys().all(|c| *c == 200) && codes.get(&200).copied().unwrap_or(0) > 10,
            "tenant {t} must keep a 100% success rate: {codes:?}"
        );
    }
    // The per-tenant series are in the API's metrics.
    let o = d.cli(&["lb", "metrics", "web", "--output", "json"]);
    let m: Vec<spindle_model::lb::LbMetricSeries> =
        serde_json::from_str(&common::stdout(&o)).unwrap();
    assert!(
        m.iter()
            .any(|s| s.labels.get("tenant").map(String::as_str) == Some("t2")
                && s.totals.requests > 0),
        "per-tenant metrics: {m:?}"
    );
    // Each target reports its adaptive limit; t1's flood waited in (or was refused from) its
    // queue, and the table shows the same.
    let targets: Vec<_> = m.iter().filter_map(|s| s.admission).collect();
    eprintln!("admission: {targets:?}");
    assert_eq!(targets.len(), 2, "per-target admission: {m:?}");
    assert!(targets.iter().all(|a| a.limit >= 1), "{targets:?}");
    assert!(
        m.iter()
            .any(|s| s.labels.get("tenant").map(String::as_str) == Some("t1")
                && s.totals.queued + s.totals.refused > 0),
        "t1 queued or refused: {m:?}"
    );
    let o = d.cli(&["lb", "metrics", "web"]);
    let table = common::stdout(&o);
    assert!(
        table.contains("QUEUED") && table.contains("LIMIT") && table.contains("IN FLIGHT"),
        "{table}"
    );

    // Deregistering B drains it: long requests in flight finish, new ones go to A, none fail.
    let slow: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/cgi-bin/slow", "t0")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let steady = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                out.push(get(addr, "/who.txt", "t0"));
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let only_a = TEMPLATE.replace("        - Id: !Ref B\n", "");
    let r = admin
        .deploy_stack(ACCOUNT, "web", &deploy(&only_a))
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("UPDATE_COMPLETE"), "{r:?}");
    let h = health(&d);
    assert!(
        matches!(h.get(&b).map(String::as_str), Some("draining") | None),
        "{h:?}"
    );
    let slow: Vec<(u16, String)> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(slow.iter().all(|(c, _)| *c == 200), "{slow:?}");
    assert!(
        slow.iter().any(|(_, body)| !body.is_empty()),
        "long requests finished: {slow:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let steady = steady.join().unwrap();
    assert!(steady.iter().all(|(c, _)| *c == 200), "{steady:?}");
    let a_name = get(addr, "/who.txt", "t0").1;
    let last: Vec<&String> = steady.iter().rev().take(5).map(|(_, b)| b).collect();
    assert!(
        last.iter().all(|b| **b == a_name),
        "new requests go to A: {last:?}"
    );

    // (Restoring after a daemon restart is tested without root in the providers crate:
    // restarting a daemon with running instances needs the runtime's init to stop holding
    // the daemon's descriptors, including the data dir lock.)
    let del = d.admin().delete_stack(ACCOUNT, "web").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
    assert_eq!(get(addr, "/who.txt", "t0").0, 0, "the listener is gone");
}

/// A backend on 127.0.0.1 answering every request with `hello`; runs until the test ends.
fn backend() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
                    }
                }
            });
        }
    });
    port
}

/// The API and CLI without the instance runtime (IP targets on the host), scoping by
/// account, and the load balancer coming back after a daemon restart.
#[test]
fn load_balancers_through_the_api_survive_a_restart() {
    let mut d = Daemon::start(BIN);
    let target = backend();
    let port = common::free_port();
    let template = format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {{Name: api}}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: {target}
      TargetType: ip
      HealthCheckIntervalSeconds: 2
      HealthCheckTimeoutSeconds: 1
      HealthyThresholdCount: 1
      Targets: [{{Id: 127.0.0.1}}]
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {port}
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Tg}}]
"#
    );
    let admin = d.admin();
    let r = admin
        .deploy_stack(
            ACCOUNT,
            "api",
            &DeployStack {
                template: TemplateRequest {
                    template_body: template,
                    template_name: Some("api.yaml".into()),
                    parameters: Default::default(),
                    nested_templates: Default::default(),
                    use_previous_values: Default::default(),
                },
                ..DeployStack::default()
            },
        )
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let info: LoadBalancerInfo = admin.load_balancer(ACCOUNT, "api", "").unwrap();
    let addr: SocketAddr = info.listeners[0].address.parse().unwrap();
    assert_eq!(addr.port(), port);
    let wait_ok = |addr: SocketAddr| {
        for _ in 0..100 {
            if get(addr, "/", "t") == (200, "hello".into()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(wait_ok(addr), "requests reach the target");

    let o = d.cli(&["lb", "health", "api", "--output", "json"]);
    let h: Vec<TargetHealthInfo> = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].address, format!("127.0.0.1:{target}"));
    assert_eq!(h[0].state, "healthy");
    let o = d.cli(&["lb", "metrics", "api"]);
    assert!(
        common::stdout(&o).contains(&format!("target=127.0.0.1:{target}")),
        "{}",
        common::stdout(&o)
    );
    let o = d.cli(&["lb", "describe", "nope"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("load balancer `nope` not found"),
        "{}",
        common::stderr(&o)
    );
    // Another account sees nothing of it.
    admin
        .create_account(&CreateAccount {
            name: spindle_model::AccountName::parse("other").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let other = common::client_for(
        &d.endpoint,
        &admin.create_key("other", &CreateKey::default()).unwrap(),
    );
    assert!(other.list_load_balancers("other").unwrap().is_empty());
    match other.load_balancer::<LoadBalancerInfo>("other", "api", "") {
        Err(spindle_client::ClientError::Api { status: 404, .. }) => {}
        r => panic!("{r:?}"),
    }

    // The daemon restarts and the load balancer is back on the same address.
    d.stop();
    assert_eq!(get(addr, "/", "t").0, 0, "stopped with the daemon");
    d.spawn();
    assert!(wait_ok(addr), "restored after the restart");
    let del = d.admin().delete_stack(ACCOUNT, "api").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
    assert_eq!(get(addr, "/", "t").0, 0, "the listener is gone");
}
