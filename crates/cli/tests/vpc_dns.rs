//! Issue #19's names inside VPCs, as root, with Debian's `dig` (bind9-dnsutils) run inside
//! instances' network namespaces (`ip netns exec`) and busybox's `nslookup` run in an
//! instance through `spindle instance exec` (which reads the instance's /etc/resolv.conf).
//! Three VPCs: A with a private zone, B with a private twin of a public zone (split
//! horizon, and `EnableDnsHostnames` until the last update), C with `EnableDnsSupport: false`. Traffic stays inside namespaces the test's
//! daemon made, and its public listener on 127.0.0.1. Skips (printing why) when not root or
//! without `dig`.

mod common;

use common::{stderr, stdout, Daemon, BIN};
use spindle_runtime::host::Sweep;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

struct Env {
    d: Daemon,
    prefix: String,
    _sweep: Sweep,
}

impl Env {
    fn new(letter: char) -> Option<Env> {
        if !common::root_tests_can_run(module_path!()) {
            return None;
        }
        if Command::new("dig").arg("-v").output().is_err() {
            println!(
                "skipped: {}: `dig` is not installed (Debian package bind9-dnsutils)",
                module_path!()
            );
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
        env.ok(&[
            "image",
            "import",
            tarball.to_str().unwrap(),
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

    fn ok(&self, args: &[&str]) -> String {
        let o = self.d.cli(args);
        assert!(
            o.status.success(),
            "spindle {args:?} failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    fn deploy(&self, name: &str, body: &str) {
        let path = self.d.root().join(format!("{name}.yaml"));
        std::fs::write(&path, body).unwrap();
        self.ok(&["stack", "deploy", name, path.to_str().unwrap(), "--yes"]);
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

    /// `dig` run inside instance `id`'s network namespace against `server`:53; returns its
    /// output (`+short` answers, or the status line with `+noall +comments`).
    fn dig_in(&self, id: &str, server: &str, args: &[&str]) -> String {
        let ns = format!("{}-{id}", self.prefix);
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "dig", &format!("@{server}")])
            .args(["+time=1", "+tries=2"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn short_in(&self, id: &str, server: &str, name: &str) -> String {
        self.dig_in(id, server, &[name, "A", "+short"])
            .trim()
            .to_owned()
    }

    /// The `status:` of the answer inside `id`, or `no answer` when none came.
    fn status_in(&self, id: &str, server: &str, name: &str) -> String {
        status(&self.dig_in(id, server, &[name, "A", "+noall", "+comments"]))
    }

    fn public_dig(&self, name: &str, how: &str) -> String {
        let addr = self.d.dns_addr().expect("the daemon serves DNS");
        common::dig_at(addr, &[name, "A", how]).unwrap()
    }

    fn public_status(&self, name: &str) -> String {
        status(&self.public_dig(name, "+comments"))
    }

    fn public_short(&self, name: &str) -> String {
        self.public_dig(name, "+short").trim().to_owned()
    }
}

fn status(dig_out: &str) -> String {
    dig_out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_owned()
}

/// VPC A (10.241.0.0/20; its subnet holds the resolver's address, so instances reach it
/// on-link; its group's egress allows only HTTP, which must not block the resolver), VPC B
/// (10.242.0.0/20, resolver through the gateway), VPC C (10.243.0.0/20, DNS support
/// `c_dns`). Zones: private `corp.internal` in A; public `pubtest.test` with a private twin
/// in B. B answers its instances' host names while `b_hosts`.
fn template(c_dns: bool, b_hosts: bool) -> String {
    format!(
        r#"Resources:
  A:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.241.0.0/20, EnableDnsSupport: true}}
  ASubnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref A, CidrBlock: 10.241.0.0/24}}
  ASg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web only
      VpcId: !Ref A
      SecurityGroupIngress: [{{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/8}}]
      SecurityGroupEgress: [{{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/8}}]
  ABox:
    Type: AWS::EC2::Instance
    Properties: {{ImageId: "busybox:web", InstanceType: t3.micro, SubnetId: !Ref ASubnet, SecurityGroupIds: [!Ref ASg]}}
  B:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.242.0.0/20, EnableDnsHostnames: {b_hosts}}}
  BSubnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref B, CidrBlock: 10.242.1.0/24}}
  BBox:
    Type: AWS::EC2::Instance
    Properties: {{ImageId: "busybox:web", InstanceType: t3.micro, SubnetId: !Ref BSubnet}}
  C:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.243.0.0/20, EnableDnsSupport: {c_dns}}}
  CSubnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref C, CidrBlock: 10.243.1.0/24}}
  CBox:
    Type: AWS::EC2::Instance
    Properties: {{ImageId: "busybox:web", InstanceType: t3.micro, SubnetId: !Ref CSubnet}}
  Corp:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: corp.internal
      VPCs: [{{VPCId: !Ref A, VPCRegion: us-east-1}}]
  CorpRecords:
    Type: AWS::Route53::RecordSetGroup
    Properties:
      HostedZoneId: !Ref Corp
      RecordSets:
        - {{Name: db.corp.internal, Type: A, TTL: 60, ResourceRecords: [10.241.0.99]}}
        - {{Name: box.corp.internal, Type: A, TTL: 60, ResourceRecords: [!GetAtt ABox.PrivateIp]}}
  Pub:
    Type: AWS::Route53::HostedZone
    Properties: {{Name: pubtest.test}}
  PubWww:
    Type: AWS::Route53::RecordSet
    Properties: {{HostedZoneId: !Ref Pub, Name: www.pubtest.test, Type: A, TTL: 60, ResourceRecords: [127.0.0.9]}}
  Twin:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: pubtest.test
      VPCs: [{{VPCId: !Ref B, VPCRegion: us-east-1}}]
  TwinWww:
    Type: AWS::Route53::RecordSet
    Properties: {{HostedZoneId: !Ref Twin, Name: www.pubtest.test, Type: A, TTL: 60, ResourceRecords: [10.242.9.9]}}
Outputs:
  ABox: {{Value: !Ref ABox}}
  AIp: {{Value: !GetAtt ABox.PrivateIp}}
  BBox: {{Value: !Ref BBox}}
  BIp: {{Value: !GetAtt BBox.PrivateIp}}
  CBox: {{Value: !Ref CBox}}
"#
    )
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn each_vpc_resolver_answers_its_private_zones_and_the_public_ones_and_survives_a_restart() {
    let Some(mut env) = Env::new('v') else { return };
    env.deploy("names", &template(false, true));
    let out = env.outputs("names");
    let (a, b, c) = (&out["ABox"], &out["BBox"], &out["CBox"]);
    // The resolver's address is never an instance's.
    assert_ne!(out["AIp"], "10.241.0.2", "{out:?}");

    // Instances are told about base + 2, and a lookup through it works from inside one.
    let conf = env.ok(&[
        "instance",
        "exec",
        a,
        "--",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(conf.trim(), "nameserver 10.241.0.2");
    let ns = env.ok(&[
        "instance",
        "exec",
        a,
        "--",
        "busybox",
        "nslookup",
        "db.corp.internal",
    ]);
    assert!(ns.contains("10.241.0.99"), "{ns}");

    // A private name: inside its VPC (UDP and TCP), not in another VPC, not publicly.
    assert_eq!(
        env.short_in(a, "10.241.0.2", "db.corp.internal"),
        "10.241.0.99"
    );
    assert_eq!(
        env.short_in(a, "10.241.0.2", "box.corp.internal"),
        out["AIp"]
    );
    let tcp = env.dig_in(
        a,
        "10.241.0.2",
        &["db.corp.internal", "A", "+short", "+tcp"],
    );
    assert_eq!(tcp.trim(), "10.241.0.99");
    assert_eq!(
        env.status_in(b, "10.242.0.2", "db.corp.internal"),
        "REFUSED"
    );
    assert_eq!(env.public_status("db.corp.internal"), "REFUSED");

    // The public zone answers inside a VPC too; B's private twin of it wins inside B only.
    assert_eq!(
        env.short_in(a, "10.241.0.2", "www.pubtest.test"),
        "127.0.0.9"
    );
    assert_eq!(
        env.short_in(b, "10.242.0.2", "www.pubtest.test"),
        "10.242.9.9"
    );
    assert_eq!(env.public_short("www.pubtest.test"), "127.0.0.9");
    // Names outside every zone are not forwarded.
    assert_eq!(env.status_in(a, "10.241.0.2", "debian.org"), "REFUSED");

    // EnableDnsHostnames in B: its addresses' names and pointers, not A's; none in A.
    let b_ip = &out["BIp"];
    let b_name = format!("ip-{}.ec2.internal", b_ip.replace('.', "-"));
    assert_eq!(env.short_in(b, "10.242.0.2", &b_name), *b_ip);
    let ptr = env.dig_in(b, "10.242.0.2", &["-x", b_ip, "+short"]);
    assert_eq!(ptr.trim(), format!("{b_name}."));
    let a_name = format!("ip-{}.ec2.internal", out["AIp"].replace('.', "-"));
    assert_eq!(env.status_in(b, "10.242.0.2", &a_name), "NXDOMAIN");
    assert_eq!(env.status_in(a, "10.241.0.2", &a_name), "REFUSED");
    assert_eq!(env.public_status(&b_name), "REFUSED");

    // EnableDnsSupport: false: nothing answers at C's base + 2.
    assert_eq!(
        env.status_in(c, "10.243.0.2", "www.pubtest.test"),
        "no answer"
    );

    // A restarted daemon binds every VPC's resolver again.
    env.d.stop();
    env.d.spawn();
    assert_eq!(
        env.short_in(a, "10.241.0.2", "db.corp.internal"),
        "10.241.0.99"
    );
    assert_eq!(
        env.short_in(b, "10.242.0.2", "www.pubtest.test"),
        "10.242.9.9"
    );
    assert_eq!(
        env.status_in(c, "10.243.0.2", "www.pubtest.test"),
        "no answer"
    );
    assert_eq!(env.short_in(b, "10.242.0.2", &b_name), *b_ip);

    // Turning DNS support on, and B's host names off, are in-place updates.
    env.deploy("names", &template(true, false));
    assert_eq!(env.outputs("names")["BBox"], *b, "B's instance stays");
    assert_eq!(env.status_in(b, "10.242.0.2", &b_name), "REFUSED");
    assert_eq!(
        env.short_in(c, "10.243.0.2", "www.pubtest.test"),
        "127.0.0.9"
    );
    assert_eq!(
        env.status_in(c, "10.243.0.2", "db.corp.internal"),
        "REFUSED"
    );

    env.ok(&["stack", "delete", "names", "--yes"]);
}
