//! Real-kernel test: a CloudFormation template deployed through the stack engine onto the
//! runtime (VPC, subnet, security group, busybox httpd instance), reached inside its VPC,
//! then deleted with nothing left behind. Needs root, `ip`, `nft`, `nsenter` and a static
//! busybox; prints SKIPPED and passes without them. Traffic goes only to the instance's
//! address, from inside the VPC namespace this test created.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_providers::register_ec2;
use spindle_runtime::{
    build_busybox_rootfs, ImageConfig, InstanceState, RealKernel, Runtime, RuntimeConfig,
};
use spindle_stack::{
    DeployRequest, Engine, EngineOptions, MemoryJournal, ProviderRegistry, StackStatus,
};
use spindle_template::{parse, plan, Context, PlanInput};

/// A runtime with a unique prefix; on drop (also when the test fails) destroys whatever is
/// left and removes leaks, so a failed run leaves nothing on the host.
struct Env {
    rt: Arc<Runtime>,
    prefix: String,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let prefix = format!("spp{}{}", std::process::id() % 100_000, nanos % 100);
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::open(
            RuntimeConfig::new(dir.path().join("data"), &prefix),
            Arc::new(RealKernel),
        )
        .unwrap();
        let tarball = dir.path().join("busybox.tar");
        build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX)).unwrap();
        let cfg = ImageConfig {
            cmd: vec![
                "httpd".into(),
                "-f".into(),
                "-p".into(),
                "80".into(),
                "-h".into(),
                "/www".into(),
            ],
            ..Default::default()
        };
        rt.images()
            .import(&tarball, cfg, Some("busybox:web"))
            .unwrap();
        Env {
            rt: Arc::new(rt),
            prefix,
            _dir: dir,
        }
    }

    fn our_netns(&self) -> Vec<String> {
        spindle_runtime::host::our_netns(&self.prefix)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let errors = self.rt.destroy_all(Duration::from_secs(2));
        let report = self.rt.doctor(true);
        let stateless = spindle_runtime::host::sweep(&self.prefix);
        if !std::thread::panicking() {
            assert!(errors.is_empty(), "teardown errors: {errors:?}");
            assert!(report.is_clean(), "leaks at teardown: {report:?}");
            assert!(stateless.is_clean(), "leaks at teardown: {stateless:?}");
            assert!(self.our_netns().is_empty());
        }
    }
}

/// One HTTP/1.0 GET on a connected stream: (status, body).
fn http_get(mut s: std::net::TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// GETs `path` from the instance at `addr`, from inside its VPC's router namespace,
/// retrying for a few seconds while httpd starts.
fn get_in_vpc(rt: &Runtime, vpc: &str, addr: &str, path: &str) -> Option<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = rt.connect_from_vpc(vpc, addr, Duration::from_millis(300)) {
            if let Ok(r) = http_get(s, path) {
                return Some(r);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const TEMPLATE: &str = r#"
Description: one web server in its own VPC
Parameters:
  Cidr: {Type: String, Default: 10.213.0.0/20}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !Ref Cidr}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [1, !Cidr [!Ref Cidr, 4, 8]]
  Web:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: http from inside the VPC
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: !Ref Cidr}
  Server:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: busybox:web
      InstanceType: t3.micro
      SubnetId: !Ref Subnet
      SecurityGroupIds: [!GetAtt Web.GroupId]
      UserData:
        Fn::Base64: !Sub |
          #!/bin/sh
          echo "${AWS::StackName} provisioned" > /www/provisioned.txt
      Tags: [{Key: Name, Value: web}]
Outputs:
  Ip: {Value: !GetAtt Server.PrivateIp}
"#;

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_template_deploys_a_reachable_web_server_and_its_delete_leaves_nothing() {
    if !spindle_testsupport::root_tests_can_run(module_path!()) {
        return;
    }
    let env = Env::new();
    let rt = env.rt.clone();
    let mut registry = ProviderRegistry::new();
    register_ec2(&mut registry, rt.clone()).unwrap();
    let engine = Engine::new(
        Arc::new(MemoryJournal::new()),
        registry,
        EngineOptions::default(),
    );
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let template = parse(TEMPLATE, "web.yaml").unwrap();
    let input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", "web"),
        ..PlanInput::default()
    };
    let planned = plan(&template, &input).unwrap();
    let started = Instant::now();
    let out = tokio_rt
        .block_on(engine.deploy(DeployRequest::new(planned)))
        .unwrap();
    assert_eq!(out.status, StackStatus::CreateComplete, "{:?}", out.reason);
    eprintln!("stack created in {:?}", started.elapsed());

    let view = engine.stack("web").unwrap();
    let res = &view.deployed.state.resources;
    let vpc = res["Vpc"].physical_id.clone();
    let server = res["Server"].physical_id.clone();
    let inst = rt.describe(&server).unwrap();
    assert_eq!(inst.state, InstanceState::Running);
    assert_eq!(inst.subnet_id, res["Subnet"].physical_id);
    assert_eq!(inst.vpc_id, vpc);
    let ip = view.deployed.outputs[0].value.scalar_string().unwrap();
    assert_eq!(ip, inst.private_ip.to_string());
    assert!(ip.starts_with("10.213.1."), "{ip}");

    let addr = format!("{ip}:80");
    let (status, body) = get_in_vpc(&rt, &vpc, &addr, "/").unwrap_or_else(|| {
        panic!(
            "httpd does not answer: {:?}\nconsole:\n{}",
            rt.describe(&server).unwrap().last_exit,
            rt.console_output(&server).unwrap_or_default()
        )
    });
    assert_eq!((status, body.as_str()), (200, "hello from spindle\n"));
    let (status, body) = get_in_vpc(&rt, &vpc, &addr, "/provisioned.txt").unwrap();
    assert_eq!(
        (status, body.trim()),
        (200, "web provisioned"),
        "UserData was decoded from base64 and ran at boot"
    );

    let out = tokio_rt.block_on(engine.delete_stack("web")).unwrap();
    assert_eq!(out.status, StackStatus::DeleteComplete, "{:?}", out.reason);
    // The terminated instance stays listed (as in EC2), also after its VPC went.
    assert_eq!(
        rt.describe(&server).unwrap().state,
        InstanceState::Terminated
    );
    assert!(rt.vpcs().is_empty(), "{:?}", rt.vpcs());
    // Everything the stack made is gone.
    let report = rt.doctor(false);
    assert!(report.is_clean(), "the stack's delete left {report:?}");
    assert!(env.our_netns().is_empty(), "{:?}", env.our_netns());
}
