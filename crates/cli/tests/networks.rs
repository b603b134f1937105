//! Issue #5's acceptance tests, as root, through the daemon and the CLI only: CloudFormation
//! templates deployed with `spindle stack deploy`, instances reached with `spindle instance
//! exec` (traffic goes only between namespaces the test's daemon created). Each test runs its
//! own daemon with its own name prefix (`srt…`) and a guard that sweeps the prefix even when
//! the test fails. Skips (printing why) when not root or the tools are missing.

mod common;

use common::{stderr, stdout, Daemon, BIN};
use spindle_model::api::InstanceInfo;
use spindle_runtime::host::{our_netns, Sweep};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

/// A daemon running instances under a fresh prefix, with the busybox image imported as
/// `busybox:web` (httpd on port 80) through `spindle image import`.
struct Env {
    d: Daemon,
    prefix: String,
    // Declared last: the daemon stops before the sweep runs.
    _sweep: Sweep,
}

impl Env {
    /// `None` (after printing why) when this host can't run instances.
    fn new(letter: char) -> Option<Env> {
        if !common::root_tests_can_run(module_path!()) {
            return None;
        }
        let prefix = format!("srt{letter}{}", std::process::id() % 100_000);
        let sweep = Sweep(prefix.clone());
        let d = Daemon::start_with_runtime(BIN, &prefix);
        let env = Env {
            d,
            prefix,
            _sweep: sweep,
        };
        let tarball = env.d.root().join("busybox.tar");
        spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
            .unwrap();
        let t = tarball.to_str().unwrap();
        env.ok(&[
            "image",
            "import",
            t,
            "--tag",
            "busybox:web",
            "--cmd",
            "httpd",
            "--cmd",
            "-f",
            "--cmd",
            "-p",
            "--cmd",
            "80",
            "--cmd",
            "-h",
            "--cmd",
            "/www",
        ]);
        Some(env)
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.d.cli(args)
    }

    /// Runs the CLI and asserts it succeeded; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "spindle {args:?} failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// `spindle stack deploy NAME FILE --yes` of `body`.
    fn deploy(&self, name: &str, body: &str) -> String {
        let path = self.d.root().join(format!("{name}.yaml"));
        std::fs::write(&path, body).unwrap();
        self.ok(&["stack", "deploy", name, path.to_str().unwrap(), "--yes"])
    }

    fn outputs(&self, stack: &str) -> BTreeMap<String, String> {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&self.ok(&["stack", "outputs", stack, "--output", "json"]))
                .unwrap();
        v.iter()
            .map(|o| {
                let key = o["name"].as_str().or(o["OutputKey"].as_str()).unwrap();
                let val = o["value"].as_str().or(o["OutputValue"].as_str()).unwrap();
                (key.to_string(), val.to_string())
            })
            .collect()
    }

    fn describe(&self, id: &str) -> InstanceInfo {
        serde_json::from_str(&self.ok(&["instance", "describe", id, "--output", "json"])).unwrap()
    }

    /// Whether instance `from` gets a page from `ip`:80 within three tries (busybox wget under a
    /// 2 s `timeout`: this busybox's `wget -T` crashes), run inside `from` with `spindle instance exec`.
    fn reaches(&self, from: &str, ip: &str) -> bool {
        (0..3).any(|_| self.get(from, ip))
    }

    /// Whether one try of `from` -> `ip`:80 fails (2 s timeout).
    fn blocked(&self, from: &str, ip: &str) -> bool {
        !self.get(from, ip)
    }

    fn get(&self, from: &str, ip: &str) -> bool {
        let url = format!("http://{ip}/");
        let o = self.cli(&[
            "instance", "exec", from, "--", "busybox", "timeout", "2", "wget", "-q", "-O", "-",
            &url,
        ]);
        let ok = o.status.success() && stdout(&o).contains("hello from spindle");
        if !ok {
            eprintln!("{from} -> {url}: {}{}", stdout(&o), stderr(&o));
        }
        ok
    }

    /// After everything is deleted: the daemon's doctor and the CLI find nothing, and `ip
    /// netns list` holds nothing of the prefix.
    fn assert_nothing_left(&self) {
        let netns = our_netns(&self.prefix);
        assert!(netns.is_empty(), "namespaces left: {netns:?}");
        let report = self.d.admin().doctor(false).unwrap();
        assert!(report.leaks.is_empty(), "{report:?}");
        let out = self.ok(&["doctor"]);
        assert!(out.starts_with("Nothing leaked"), "{out}");
    }
}

/// Three VPCs; the bastion peered with dev and with prod. Every group admits port 80 from
/// 10.0.0.0/8 except prod's, whose rule the update adds (`ProdOpen`).
fn peering_template(prod_open: bool) -> String {
    let prod_ingress = if prod_open {
        "[{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/8}]"
    } else {
        "[]"
    };
    let mut t = String::from("Resources:\n");
    for (name, n) in [("Dev", 1), ("Prod", 2), ("Bastion", 3)] {
        let ingress = if name == "Prod" {
            prod_ingress
        } else {
            "[{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/8}]"
        };
        t += &format!(
            r#"  {name}:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.23{n}.0.0/20}}
  {name}Subnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref {name}, CidrBlock: 10.23{n}.1.0/24}}
  {name}Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      VpcId: !Ref {name}
      SecurityGroupIngress: {ingress}
  {name}Box:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: busybox:web
      InstanceType: t3.micro
      SubnetId: !Ref {name}Subnet
      SecurityGroupIds: [!Ref {name}Sg]
"#
        );
    }
    t += r#"  BastionDev:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: {VpcId: !Ref Bastion, PeerVpcId: !Ref Dev}
  BastionProd:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: {VpcId: !Ref Bastion, PeerVpcId: !Ref Prod}
Outputs:
"#;
    for name in ["Dev", "Prod", "Bastion"] {
        t += &format!(
            "  {name}Vpc: {{Value: !Ref {name}}}\n  {name}Box: {{Value: !Ref {name}Box}}\n  {name}Ip: {{Value: !GetAtt {name}Box.PrivateIp}}\n"
        );
    }
    t
}

/// A template with VPC `10.N.0.0/20` (`Vpc`) and subnet `10.N.1.0/24` (`Subnet`), then `rest`.
fn one_vpc(n: u8, rest: &str) -> String {
    format!(
        "Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.{n}.0.0/20}}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.{n}.1.0/24}}
{rest}"
    )
}

/// A route added by hand in a VPC's router namespace (what "someone adds a route" means).
fn router_route(ns: &str, args: &str) {
    let o = std::process::Command::new("ip")
        .args(["-n", ns, "route", "add"])
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(o.status.success(), "ip -n {ns} route add {args}: {o:?}");
}

/// The next hop of `ns`'s route to `cidr` (the peering link's far end).
fn via(ns: &str, cidr: &str) -> String {
    let o = std::process::Command::new("ip")
        .args(["-n", ns, "route", "show", cidr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == "via")
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no route to {cidr} in {ns}: {text}"))
        .to_string()
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn peering_is_non_transitive_a_stack_update_opens_a_port_and_a_killed_daemon_adopts_instances() {
    let Some(mut env) = Env::new('a') else { return };
    env.deploy("net", &peering_template(false));
    let out = env.outputs("net");
    let (dev, prod, bastion) = (&out["DevBox"], &out["ProdBox"], &out["BastionBox"]);
    let (dev_ip, prod_ip, bastion_ip) = (&out["DevIp"], &out["ProdIp"], &out["BastionIp"]);

    // Peering: the bastion and dev reach each other; prod's group admits nothing yet.
    assert!(env.reaches(bastion, dev_ip), "bastion -> dev");
    assert!(env.reaches(dev, bastion_ip), "dev -> bastion");
    assert!(env.reaches(prod, bastion_ip), "prod -> bastion");
    assert!(env.blocked(bastion, prod_ip), "prod's group blocks port 80");

    // A stack update adds the ingress rule; the same instance now answers.
    let upd = env.deploy("net", &peering_template(true));
    assert!(upd.contains("UPDATE_COMPLETE"), "{upd}");
    assert_eq!(env.outputs("net")["ProdBox"], *prod, "updated in place");
    assert!(
        env.reaches(bastion, prod_ip),
        "bastion -> prod after the update"
    );

    // Non-transitive: dev and prod don't reach each other through the bastion, even after
    // someone adds routes to each other's CIDR via the bastion in both routers.
    let ns = |vpc: &str| format!("{}-{}", env.prefix, out[vpc]);
    let dev_via = via(&ns("DevVpc"), "10.233.0.0/20");
    let prod_via = via(&ns("ProdVpc"), "10.233.0.0/20");
    router_route(&ns("DevVpc"), &format!("10.232.0.0/20 via {dev_via}"));
    router_route(&ns("ProdVpc"), &format!("10.231.0.0/20 via {prod_via}"));
    assert!(env.blocked(dev, prod_ip), "dev must not reach prod");
    assert!(env.blocked(prod, dev_ip), "prod must not reach dev");
    assert!(
        env.reaches(bastion, prod_ip),
        "the bastion still reaches prod"
    );

    // `kill -9` of the daemon; meanwhile prod's instance dies. The restarted daemon adopts
    // the running instances (still reachable) and marks the dead one stopped.
    env.d.kill9();
    let pids = kill_instance(&env.prefix, prod);
    assert!(!pids.is_empty(), "prod's instance had processes");
    env.d.spawn();
    assert_eq!(env.describe(dev).state, "running");
    assert_eq!(env.describe(bastion).state, "running");
    assert!(
        env.reaches(bastion, dev_ip),
        "dev is still reachable after the restart"
    );
    let p = env.describe(prod);
    assert_eq!(p.state, "stopped", "{p:?}");
    assert!(p.last_exit.is_some(), "{p:?}");

    // Deleting the stack leaves nothing behind.
    let del = env.ok(&["stack", "delete", "net", "--yes"]);
    assert!(del.contains("DELETE_COMPLETE"), "{del}");
    assert_eq!(env.describe(dev).state, "terminated");
    env.assert_nothing_left();
}

/// SIGKILLs every process in an instance's cgroups (the instance dies while no daemon runs).
fn kill_instance(prefix: &str, id: &str) -> Vec<i32> {
    let k = spindle_runtime::RealKernel;
    let layout = spindle_runtime::CgroupLayout::detect(&k, Path::new("/sys/fs/cgroup"));
    let mut pids: Vec<i32> = layout
        .procs_files(prefix, id)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort();
    pids.dedup();
    for &pid in &pids {
        // SAFETY: kill has no memory-safety preconditions; the pids are in the cgroup of an
        // instance this test's daemon launched.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    pids
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_memory_limit_is_enforced_and_the_oom_kill_shows_on_the_instance() {
    let Some(env) = Env::new('m') else { return };
    // The same rootfs as an image that allocates ~200 MB; t3.nano gives 64 MiB.
    let tarball = env.d.root().join("busybox.tar");
    env.ok(&[
        "image",
        "import",
        tarball.to_str().unwrap(),
        "--tag",
        "busybox:hog",
        "--cmd",
        "sh",
        "--cmd",
        "-c",
        "--cmd",
        "echo start; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    env.deploy(
        "hog",
        &one_vpc(
            234,
            "  Hog:
    Type: AWS::EC2::Instance
    Properties: {ImageId: busybox:hog, InstanceType: t3.nano, SubnetId: !Ref Subnet}
Outputs:
  Hog: {Value: !Ref Hog}
",
        ),
    );
    let id = &env.outputs("hog")["Hog"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let info = loop {
        let i = env.describe(id);
        if i.state == "stopped" || std::time::Instant::now() > deadline {
            break i;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(info.state, "stopped", "{info:?}");
    assert!(info.oom_killed, "{info:?}");
    assert_eq!(info.state_reason.as_deref(), Some("Server.OutOfMemory"));
    let text = env.ok(&["instance", "describe", id]);
    assert!(text.contains("state reason: Server.OutOfMemory"), "{text}");
    let logs = env.ok(&["instance", "logs", id]);
    assert!(
        logs.contains("start") && !logs.contains("survived"),
        "{logs}"
    );

    env.ok(&["stack", "delete", "hog", "--yes"]);
    env.assert_nothing_left();
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn images_are_inspected_tagged_exported_and_removed_only_when_unused() {
    let Some(env) = Env::new('i') else { return };
    let inspect = |what: &str| -> serde_json::Value {
        serde_json::from_str(&env.ok(&["image", "inspect", what, "--output", "json"])).unwrap()
    };
    let img = inspect("busybox:web");
    let id = img["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ami-"), "{img}");
    assert_eq!(img["cmd"][0], "httpd");
    assert_eq!(img["used_by"], serde_json::json!([]));

    env.ok(&["image", "tag", &id, "web:v2"]);
    assert_eq!(
        inspect("web:v2")["tags"],
        serde_json::json!(["busybox:web", "web:v2"])
    );
    let o = env.cli(&["image", "tag", &id, "bad tag"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`bad tag` is not a valid tag"),
        "{}",
        stderr(&o)
    );

    // Export in each format; a second export to the same path is refused.
    let dir = env.d.root();
    for (name, format) in [
        ("root.tar", "rootfs"),
        ("layout", "oci"),
        ("img.oci.tar", "oci-archive"),
    ] {
        let out = dir.join(name);
        env.ok(&[
            "image",
            "export",
            "web:v2",
            out.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(out.exists(), "{name}");
    }
    let o = env.cli(&[
        "image",
        "export",
        "web:v2",
        dir.join("root.tar").to_str().unwrap(),
    ]);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // The flattened rootfs holds busybox and the web root.
    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(dir.join("root.tar")).unwrap())
        .entries()
        .unwrap()
    {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    // The OCI layout imports back as the same image.
    let again = env.ok(&["image", "import", dir.join("layout").to_str().unwrap()]);
    assert!(again.contains(&id), "{again}");

    // A launch template naming the image by tag keeps it from being removed.
    env.deploy(
        "lt",
        r#"Resources:
  Lt:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateName: web-lt
      LaunchTemplateData: {ImageId: web:v2, InstanceType: t3.micro}
"#,
    );
    assert_eq!(
        inspect(&id)["used_by"],
        serde_json::json!(["launch template web-lt version 1"])
    );
    let o = env.cli(&["image", "rm", &id]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("in use by launch template web-lt version 1"),
        "{}",
        stderr(&o)
    );
    assert!(env.ok(&["image", "list"]).contains(&id), "still there");

    env.ok(&["stack", "delete", "lt", "--yes"]);
    let rm = env.ok(&["image", "rm", "web:v2"]);
    assert!(rm.contains(&id), "{rm}");
    assert!(!env.ok(&["image", "list"]).contains(&id));
    let o = env.cli(&["image", "inspect", "busybox:web"]);
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    env.assert_nothing_left();
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn bad_network_input_fails_the_deploy_clearly_and_rolls_back_to_nothing() {
    let Some(env) = Env::new('b') else { return };
    let deploy_fails = |name: &str, body: &str, want: &str| {
        let path = env.d.root().join(format!("{name}.yaml"));
        std::fs::write(&path, body).unwrap();
        let o = env.cli(&["stack", "deploy", name, path.to_str().unwrap(), "--yes"]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!o.status.success(), "{all}");
        assert!(all.contains(want), "want `{want}` in:\n{all}");
        // Overlapping subnets are a provider rule of validation: refused before any stack
        // exists. The rest is found by the provider while creating, and rolled back.
        if name == "overlap" {
            assert!(all.contains("problem(s) in the template"), "{all}");
            let o = env.cli(&["stack", "describe", name]);
            assert!(!o.status.success(), "{name} exists: {}", stdout(&o));
        } else {
            let events = env.ok(&["stack", "events", name]);
            assert!(events.contains("ROLLBACK_COMPLETE"), "{events}");
        }
        assert!(
            our_netns(&env.prefix).is_empty(),
            "{:?}",
            our_netns(&env.prefix)
        );
    };
    deploy_fails(
        "overlap",
        r#"Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.235.0.0/20}
  A:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.235.1.0/24}
  B:
    Type: AWS::EC2::Subnet
    DependsOn: A
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.235.1.128/25}
"#,
        "overlaps subnet",
    );
    deploy_fails(
        "hungry",
        &one_vpc(
            235,
            "  Box:
    Type: AWS::EC2::Instance
    Properties: {ImageId: busybox:web, InstanceType: t3.mega, SubnetId: !Ref Subnet}
",
        ),
        "unknown instance type `t3.mega`",
    );
    // A VPC over one of the host's own routes would hijack it.
    let host = spindle_runtime::RealKernel;
    let routes = spindle_runtime::Kernel::host_routes(&host).unwrap();
    if let Some(r) = routes.iter().find(|r| r.prefix() >= 8) {
        deploy_fails(
            "collide",
            &format!(
                "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: {{CidrBlock: {r}}}\n"
            ),
            "collides with the host's route",
        );
    } else {
        eprintln!("no host route to collide with: {routes:?}");
    }
    env.assert_nothing_left();
}
