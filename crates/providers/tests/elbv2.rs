//! The ELBv2 providers through the stack engine, without root: IP targets on loopback, the
//! load balancer bound to 127.0.0.1. Instance targets and VPC namespaces are tested as root
//! in the CLI's `lb` tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spindle_providers::{Elb, ElbOptions};
use spindle_stack::{
    DeployRequest, Engine, EngineOptions, MemoryJournal, OperationOutcome, ProviderRegistry,
    StackStatus,
};
use spindle_template::{parse, plan, Context, PlanInput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCOUNT: &str = "123456789012";

fn account() -> spindle_model::AccountId {
    spindle_model::AccountId::parse(ACCOUNT).unwrap()
}

/// A backend answering every request with its name (and `/health` with 200).
async fn backend(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = sock.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request with `Connection: close`; returns the status line's code and the body.
async fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    get_at("127.0.0.1", port, host, path).await
}

async fn get_at(ip: &str, port: u16, host: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect((ip, port)).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn engine(elb: &Arc<Elb>) -> Engine {
    let mut registry = ProviderRegistry::new();
    elb.register(&mut registry);
    Engine::new(
        Arc::new(MemoryJournal::new()),
        registry,
        EngineOptions::default(),
    )
}

async fn deploy(engine: &Engine, src: &str) -> OperationOutcome {
    let template = parse(src, "lb.yaml").unwrap();
    let planned = plan(&template, &plan_input()).unwrap_or_else(|d| panic!("{d}"));
    engine.deploy(DeployRequest::new(planned)).await.unwrap()
}

fn plan_input() -> PlanInput<'static> {
    PlanInput {
        context: Context::new(ACCOUNT, "us-east-1", "web"),
        ..PlanInput::default()
    }
}

fn template(port: u16, a: SocketAddr, b: SocketAddr, fixed: &str) -> String {
    format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Name: web
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Name: web-tg
      Port: {pa}
      TargetType: ip
      HealthCheckIntervalSeconds: 1
      HealthCheckTimeoutSeconds: 1
      Targets:
        - Id: 127.0.0.1
        - Id: 127.0.0.1
          Port: {pb}
      TargetGroupAttributes:
        - Key: deregistration_delay.timeout_seconds
          Value: "1"
        - Key: spindle.tenant.header
          Value: X-Tenant-Id
        - Key: spindle.tenant.weight.Gold
          Value: "3"
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {port}
      Protocol: HTTP
      DefaultActions:
        - Type: forward
          TargetGroupArn: !Ref Tg
  Admin:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions:
        - Field: path-pattern
          Values: ["/admin/*"]
      Actions:
        - Type: fixed-response
          FixedResponseConfig:
            StatusCode: "403"
            ContentType: text/plain
            MessageBody: "{fixed}"
Outputs:
  Dns:
    Value: !GetAtt Lb.DNSName
  LbArn:
    Value: !GetAtt Lb.LoadBalancerArn
"#,
        pa = a.port(),
        pb = b.port(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_updates_refuses_and_restores_load_balancers() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("elbv2.json");
    let opts = ElbOptions {
        address: Some("127.0.0.1".parse().unwrap()),
        io_threads: 0,
    };
    let elb = Elb::open(None, Some(state.clone()), opts.clone()).unwrap();
    let engine = engine(&elb);
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let port = free_port();

    // A timeout not shorter than the interval is refused at deploy, naming the property.
    let bad = template(port, a, b, "no");
    let out = deploy(&engine, &bad).await;
    assert_eq!(out.status, StackStatus::RollbackComplete, "{out:?}");
    let reason = format!("{out:?}");
    assert!(reason.contains("HealthCheckTimeoutSeconds"), "{reason}");
    assert!(
        elb.list(&account()).is_empty(),
        "a failed create leaves nothing"
    );

    let good = bad.replace(
        "HealthCheckIntervalSeconds: 1\n      HealthCheckTimeoutSeconds: 1",
        "HealthCheckIntervalSeconds: 2\n      HealthCheckTimeoutSeconds: 1\n      HealthyThresholdCount: 1",
    );
    assert_ne!(good, bad);
    let out = deploy(&engine, &good).await;
    assert_eq!(out.status, StackStatus::CreateComplete, "{out:?}");
    let view = engine.stack("web").unwrap();
    let outputs = format!("{:?}", view.deployed.outputs);
    assert!(
        outputs.contains(".us-east-1.elb.spindle.internal"),
        "{outputs}"
    );
    assert!(outputs.contains(":loadbalancer/app/web/"), "{outputs}");

    // Both targets get traffic once healthy; the rule answers /admin/*.
    let mut seen = BTreeMap::new();
    for _ in 0..200 {
        let (code, body) = get(port, "x", "/").await;
        if code == 200 {
            *seen.entry(body).or_insert(0) += 1;
        }
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), 2, "both targets answer: {seen:?}");
    assert_eq!(get(port, "x", "/admin/x").await, (403, "no".into()));

    let lbs = elb.list(&account());
    assert_eq!(lbs.len(), 1);
    assert_eq!(lbs[0].name, "web");
    assert_eq!(lbs[0].listeners[0].port, port);
    assert_eq!(
        lbs[0].target_groups[0].tenant_key.as_deref(),
        Some("header:X-Tenant-Id")
    );
    let health = elb.target_health(&account(), "web").unwrap();
    assert_eq!(health.len(), 2);
    assert!(health.iter().all(|h| h.state == "healthy"), "{health:?}");
    assert!(
        elb.target_health(
            &spindle_model::AccountId::parse("999999999999").unwrap(),
            "web"
        )
        .is_none(),
        "scoped by account"
    );
    let metrics = elb.metrics(&account(), "web").unwrap();
    assert!(
        metrics
            .iter()
            .any(|s| s.labels.contains_key("target") && s.totals.requests > 0),
        "per-target series: {metrics:?}"
    );
    // Each target of the isolated group reports its admission: the default initial limit
    // (the group is idle, so the limit has had no latency to move on), nothing in flight or
    // waiting. Tenant series carry no admission.
    let targets: Vec<_> = metrics
        .iter()
        .filter(|s| s.labels.contains_key("target"))
        .collect();
    assert_eq!(targets.len(), 2, "{metrics:?}");
    for s in &targets {
        let a = s
            .admission
            .expect("a target of an isolated group has admission");
        assert_eq!((a.in_flight, a.queued), (0, 0), "{s:?}");
        assert!((2..=1000).contains(&a.limit), "{s:?}");
        assert_eq!(s.totals.queued, 0, "{s:?}");
    }
    assert!(metrics
        .iter()
        .filter(|s| !s.labels.contains_key("target"))
        .all(|s| s.admission.is_none()));

    // An update changes the rule in place.
    let updated = good.replace("MessageBody: \"no\"", "MessageBody: \"nope\"");
    let out = deploy(&engine, &updated).await;
    assert_eq!(out.status, StackStatus::UpdateComplete, "{out:?}");
    assert_eq!(get(port, "x", "/admin/x").await, (403, "nope".into()));

    // An HTTPS listener whose certificate does not match its key is refused, and the running
    // load balancer keeps its config.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let bundle = dir.path().join("bad.pem");
    std::fs::write(
        &bundle,
        format!("{}{}", cert.cert.pem(), other.serialize_pem()),
    )
    .unwrap();
    let tls_port = free_port();
    let https = format!(
        r#"  Https:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {tls_port}
      Protocol: HTTPS
      Certificates:
        - CertificateArn: file:{}
      DefaultActions:
        - Type: forward
          TargetGroupArn: !Ref Tg
"#,
        bundle.display()
    );
    let out = deploy(
        &engine,
        &updated.replace("Outputs:", &format!("{https}Outputs:")),
    )
    .await;
    assert_eq!(out.status, StackStatus::UpdateRollbackComplete, "{out:?}");
    assert!(
        format!("{out:?}").contains("does not match its private key"),
        "{out:?}"
    );
    assert_eq!(get(port, "x", "/admin/x").await, (403, "nope".into()));
    assert_eq!(elb.describe(&account(), "web").unwrap().listeners.len(), 1);

    // A new daemon over (a copy of) the state file restores the load balancer; this one
    // binds 127.0.0.2 so the first keeps running.
    let copy = dir.path().join("copy.json");
    std::fs::copy(&state, &copy).unwrap();
    let other = ElbOptions {
        address: Some("127.0.0.2".parse().unwrap()),
        io_threads: 0,
    };
    let elb2 = Elb::open(None, Some(copy), other).unwrap();
    elb2.restore().await;
    assert_eq!(
        elb2.describe(&account(), "web").unwrap().arn,
        elb.describe(&account(), "web").unwrap().arn
    );
    let mut ok = false;
    for _ in 0..100 {
        if get_at("127.0.0.2", port, "x", "/admin/x").await == (403, "nope".into()) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "restored listener answers");
    drop(elb2);

    // Deleting the stack stops the listener and forgets the records.
    let out = engine.delete_stack("web").await.unwrap();
    assert_eq!(out.status, StackStatus::DeleteComplete, "{out:?}");
    assert!(elb.list(&account()).is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(port, "x", "/").await.0, 0, "listener closed");
    let saved = std::fs::read_to_string(&state).unwrap();
    assert_eq!(saved.trim(), "{}");
}

/// Each bad template is refused at deploy with a message naming the property or attribute,
/// and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_properties_are_refused_naming_what_is_wrong() {
    let elb = Elb::open(
        None,
        None,
        ElbOptions {
            address: Some("127.0.0.1".parse().unwrap()),
            io_threads: 0,
        },
    )
    .unwrap();
    let engine = engine(&elb);
    let port = free_port();
    let base = format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {{Name: bad}}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 8080
      TargetType: ip
      Targets: [{{Id: 127.0.0.1}}]
      TargetGroupAttributes: [{{Key: stickiness.enabled, Value: "false"}}]
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {port}
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Tg}}]
"#
    );
    let cases = [
        (
            "Key: stickiness.enabled, Value: \"false\"",
            "Key: spindle.tenant.bogus, Value: \"1\"",
            "unknown Spindle attribute `spindle.tenant.bogus`",
        ),
        (
            "Key: stickiness.enabled, Value: \"false\"",
            "Key: load_balancing.algorithm.type, Value: random",
            "load_balancing.algorithm.type",
        ),
        (
            "Key: stickiness.enabled, Value: \"false\"",
            "Key: spindle.tenant.max_in_flight, Value: \"4\"",
            "need spindle.tenant.header or spindle.tenant.source",
        ),
        (
            "{Key: stickiness.enabled, Value: \"false\"}",
            "{Key: spindle.tenant.header, Value: X-Tenant-Id}, {Key: spindle.tenant.weight.acme, Value: \"0\"}",
            "spindle.tenant.weight.acme: needs a tenant name and a weight of at least 1",
        ),
        (
            "TargetType: ip",
            "TargetType: lambda",
            "TargetType `lambda`",
        ),
        (
            "Targets: [{Id: 127.0.0.1}]",
            "Targets: [{Id: i-0123}]",
            "is not an IP address",
        ),
        ("Port: 8080", "Port: 70000", "70000"),
        (
            "Properties: {Name: bad}",
            "Properties: {Name: -bad}",
            "Name `-bad`",
        ),
        (
            "Properties: {Name: bad}",
            "Properties: {Name: bad, Type: network}",
            "Type `network`",
        ),
        (
            "DefaultActions: [{Type: forward, TargetGroupArn: !Ref Tg}]",
            "DefaultActions: [{Type: authenticate-oidc}]",
            "action type `authenticate-oidc`",
        ),
        (
            "DefaultActions: [{Type: forward, TargetGroupArn: !Ref Tg}]",
            "DefaultActions: [{Type: redirect, RedirectConfig: {StatusCode: HTTP_307}}]",
            "HTTP_307",
        ),
        (
            "      Port: 8080\n",
            "      Port: 8080\n      Matcher: {HttpCode: 200-99}\n",
            "Matcher.HttpCode",
        ),
        (
            "      Port: 8080\n",
            "      Port: 8080\n      HealthCheckPort: \"9000\"\n",
            "HealthCheckPort",
        ),
        (
            "      Port: 8080\n",
            "      Port: 8080\n      Protocol: TCP\n",
            "Protocol `TCP`",
        ),
        (
            "      Port: 8080\n",
            "      Port: 8080\n      Unknown: 1\n",
            "Unknown",
        ),
        (
            "      DefaultActions",
            "      Protocol: HTTPS\n      DefaultActions",
            "needs Certificates",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(base.contains(from), "{from}");
        let src = base.replace(from, to);
        // What the registry schema already refuses never reaches the provider: the plan
        // refuses it, naming the property, before anything is created.
        let template = parse(&src, "lb.yaml").unwrap();
        if let Err(d) = plan(&template, &plan_input()) {
            let text = d.to_string();
            assert!(text.contains(expect), "{to}: expected `{expect}` in {text}");
            assert!(elb.list(&account()).is_empty(), "{to}: nothing created");
            continue;
        }
        let out = deploy(&engine, &src).await;
        let text = format!("{out:?}");
        assert_eq!(out.status, StackStatus::RollbackComplete, "{to}: {text}");
        assert!(text.contains(expect), "{to}: expected `{expect}` in {text}");
        assert!(
            elb.list(&account()).is_empty(),
            "{to}: nothing left running"
        );
        engine.delete_stack("web").await.unwrap();
    }
    // The base template itself deploys.
    let out = deploy(&engine, &base).await;
    assert_eq!(out.status, StackStatus::CreateComplete, "{out:?}");
}

/// HTTPS listeners take their PEM bundle from a file or from the parameter store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_certificates_come_from_a_file_or_a_parameter() {
    use spindle_stack::ssm::{MemoryParamStore, ParamStore, PutParam};
    let dir = tempfile::tempdir().unwrap();
    let elb = Elb::open(
        None,
        None,
        ElbOptions {
            address: Some("127.0.0.1".parse().unwrap()),
            io_threads: 0,
        },
    )
    .unwrap();
    let params = Arc::new(MemoryParamStore::new());
    elb.set_param_store(params.clone());
    let engine = engine(&elb);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let bundle = format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem());
    let file = dir.path().join("web.pem");
    std::fs::write(&file, &bundle).unwrap();
    params
        .put(
            &account(),
            &PutParam {
                name: "/web/tls",
                kind: "SecureString",
                value: &bundle,
                description: "",
                token: None,
            },
            false,
        )
        .unwrap();
    let (p1, p2) = (free_port(), free_port());
    let listener = |name: &str, port: u16, arn: &str| {
        format!(
            r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {port}
      Protocol: HTTPS
      Certificates: [{{CertificateArn: "{arn}"}}]
      DefaultActions:
        - {{Type: fixed-response, FixedResponseConfig: {{StatusCode: "200"}}}}
"#
        )
    };
    let src = format!(
        "Resources:\n  Lb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n{}{}",
        listener("FromFile", p1, &format!("file:{}", file.display())),
        listener("FromParam", p2, "ssm:/web/tls"),
    );
    let out = deploy(&engine, &src).await;
    assert_eq!(out.status, StackStatus::CreateComplete, "{out:?}");
    let lb = &elb.list(&account())[0];
    let mut ports: Vec<(String, u16)> = lb
        .listeners
        .iter()
        .map(|l| (l.protocol.clone(), l.port))
        .collect();
    ports.sort();
    let mut want = vec![("HTTPS".to_string(), p1), ("HTTPS".to_string(), p2)];
    want.sort();
    assert_eq!(ports, want);
    for p in [p1, p2] {
        tokio::net::TcpStream::connect(("127.0.0.1", p))
            .await
            .expect("HTTPS listener accepts connections");
    }
    // A parameter that doesn't exist is named.
    let bad = src.replace("ssm:/web/tls", "ssm:/web/missing");
    let out = deploy(&engine, &bad).await;
    assert_eq!(out.status, StackStatus::UpdateRollbackComplete, "{out:?}");
    assert!(
        format!("{out:?}").contains("parameter `/web/missing` not found"),
        "{out:?}"
    );
}
