//! The SSH bastion through the daemon (#18): `spindle ssh cert` signs with the account's CA
//! (sealed at rest), and the jump host refuses and audits, with Debian's OpenSSH client, a
//! revoked access key and a credential without `bastion:Connect`. Needs no root: the grant
//! check runs before any target is looked up. Says skipped without `ssh`/`ssh-keygen`.

mod common;

use common::{client_for, stderr, stdout, Daemon, BIN};
use spindle_model::api::*;
use spindle_model::ssh::SignSshCertRequest;
use spindle_model::AccountName;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn have_openssh() -> bool {
    let ok = ["ssh", "ssh-keygen"].iter().all(|t| {
        Command::new(t)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !ok {
        eprintln!("skipped: cli::ssh: Debian's openssh-client (ssh, ssh-keygen) is not installed");
    }
    ok
}

fn keygen(path: &Path) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(format!("{}.pub", path.display())).unwrap()
}

/// `spindle …` with HOME pointing at `home`.
fn cli_home(d: &Daemon, home: &Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.env("HOME", home)
        .arg("--endpoint")
        .arg(&d.endpoint)
        .arg("--credentials-file")
        .arg(d.credentials_file())
        .args(args);
    c.output().unwrap()
}

/// `ssh -W target` through the bastion at `addr` with key `key` and certificate `cert`.
fn ssh_w(addr: &str, key: &Path, cert: &Path, target: &str) -> (bool, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args(["-p", port, "-W", target])
        .arg(format!("root@{host}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `bastion:Connect` records of `account`, waiting (bounded) for one whose reason starts
/// with `code`.
fn connect_record(d: &Daemon, code: &str) -> AuditEvent {
    connect_record_where(d, code, |_| true)
}

fn connect_record_where(d: &Daemon, code: &str, also: impl Fn(&AuditEvent) -> bool) -> AuditEvent {
    for _ in 0..100 {
        let events = d.admin().audit(None, None, None, Some(1000)).unwrap();
        if let Some(e) = events.into_iter().find(|e| {
            e.action == "bastion:Connect"
                && e.error_code.as_deref().is_some_and(|c| c.starts_with(code))
                && also(e)
        }) {
            return e;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no bastion:Connect record `{code}`: {:#?}",
        d.admin().audit(None, None, None, Some(1000)).unwrap()
    );
}

#[test]
fn ssh_cert_signs_with_the_accounts_sealed_ca_and_the_bastion_checks_grants_per_connection() {
    if !have_openssh() {
        return;
    }
    let d = Daemon::start(BIN);
    let home = d.root().join("home");
    let key = home.join(".ssh/id_ed25519");
    keygen(&key);
    let who = d.admin().whoami().unwrap();
    let acct = who.account_id.to_string();

    // The CLI signs the user's key and writes the certificate where OpenSSH can use it.
    let o = cli_home(
        &d,
        &home,
        &[
            "ssh",
            "cert",
            "--ttl",
            "2h",
            "--principal",
            "root",
            "--principal",
            "deploy",
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let cert = home.join(format!(".ssh/spindle-{acct}-cert.pub"));
    let l = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert)
        .output()
        .unwrap();
    let listing = stdout(&l);
    let info = d.admin().describe_bastion(&acct).unwrap();
    assert!(
        listing.contains("ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Signing CA: ED25519 {}", info.ca_fingerprint)),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Key ID: \"{acct}/{}\"", who.access_key_id)),
        "{listing}"
    );
    assert!(
        listing.contains("root\n") && listing.contains("deploy\n"),
        "{listing}"
    );
    // The known_hosts file pins the bastion's host key.
    let addr = info
        .address
        .clone()
        .expect("the test daemon runs the bastion");
    let known =
        std::fs::read_to_string(home.join(format!(".ssh/spindle-{acct}-known_hosts"))).unwrap();
    assert_eq!(
        known,
        format!(
            "[{}]:{} {}\n",
            addr.rsplit_once(':').unwrap().0,
            addr.rsplit_once(':').unwrap().1,
            info.host_public_key.clone().unwrap()
        )
    );

    // `ssh config` prints the block that jumps through it.
    let o = cli_home(&d, &home, &["ssh", "config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let block = stdout(&o);
    assert!(
        block.contains(&format!("ProxyJump spindle-bastion-{acct}")),
        "{block}"
    );
    assert!(
        block.contains(&format!("Port {}", addr.rsplit_once(':').unwrap().1)),
        "{block}"
    );

    // Sealed at rest: the database holds no private key in clear.
    let _ = d.admin().describe_bastion(&acct).unwrap();
    for f in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(d.data_dir().join(f)) {
            assert!(
                !bytes.windows(11).any(|w| w == b"OPENSSH PRI"),
                "{f} holds a key in clear"
            );
        }
    }

    // Bad input is refused with the field named.
    let e = d
        .admin()
        .sign_ssh_certificate(
            &acct,
            &SignSshCertRequest {
                public_key: "nope".into(),
                ttl_secs: None,
                principals: vec![],
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("public key: expected"), "{e}");
    let e = d
        .admin()
        .sign_ssh_certificate(
            &acct,
            &SignSshCertRequest {
                public_key: std::fs::read_to_string(format!("{}.pub", key.display())).unwrap(),
                ttl_secs: Some(90_000),
                principals: vec![],
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("ttl: must be between"), "{e}");

    // A credential of another account: its own CA; grants are checked per connection.
    let admin = d.admin();
    admin
        .create_account(&CreateAccount {
            name: AccountName::parse("dev").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let sign_only = admin
        .create_key(
            "dev",
            &CreateKey {
                allow: vec!["bastion:SignCertificate".into()],
                description: String::new(),
                aws: false,
            },
        )
        .unwrap();
    let full = admin
        .create_key(
            "dev",
            &CreateKey {
                allow: vec!["bastion:*".into()],
                description: String::new(),
                aws: false,
            },
        )
        .unwrap();
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let cert_for = |creds: &Credentials, name: &str| {
        let c = client_for(&d.endpoint, creds);
        let r = c
            .sign_ssh_certificate(
                "dev",
                &SignSshCertRequest {
                    public_key: public.clone(),
                    ttl_secs: Some(600),
                    principals: vec![],
                },
            )
            .unwrap();
        let p = home.join(name);
        std::fs::write(&p, format!("{}\n", r.certificate)).unwrap();
        (r, p)
    };
    let (r1, c1) = cert_for(&sign_only, "sign-only-cert.pub");
    assert_ne!(
        r1.bastion.ca_fingerprint, info.ca_fingerprint,
        "each account has its own CA"
    );
    let (ok, err) = ssh_w(&addr, &key, &c1, "i-0123456789abcdef0:22");
    assert!(!ok, "{err}");
    let e = connect_record(&d, "grant:");
    assert_eq!(e.result, "denied");
    assert_eq!(
        e.access_key_id.as_deref(),
        Some(sign_only.access_key_id.as_str())
    );
    assert!(
        e.target
            .starts_with("i-0123456789abcdef0:22 from 127.0.0.1:"),
        "{}",
        e.target
    );

    // A revoked access key: its certificate still verifies, but the bastion refuses it.
    let (_, c2) = cert_for(&full, "full-cert.pub");
    admin.revoke_key("dev", &full.access_key_id).unwrap();
    let (ok, _) = ssh_w(&addr, &key, &c2, "i-0123456789abcdef0:22");
    assert!(!ok);
    let e = connect_record(&d, "revoked-key:");
    assert_eq!(
        e.access_key_id.as_deref(),
        Some(full.access_key_id.as_str())
    );

    // A wrong principal is refused at login and audited with the certificate's serial.
    let o = cli_home(&d, &home, &["ssh", "cert", "--principal", "deploy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (ok, _) = ssh_w(&addr, &key, &cert, "i-0123456789abcdef0:22");
    assert!(!ok);
    let e = connect_record(&d, "wrong-principal:");
    assert!(
        e.target.starts_with("login from 127.0.0.1:"),
        "{}",
        e.target
    );

    // `spindle audit --kind ssh` shows the bastion's records only.
    let o = d.cli(&["audit", "--kind", "ssh", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Vec<AuditEvent> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        shown.iter().all(|e| e.action.starts_with("bastion:")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|e| e
            .error_code
            .as_deref()
            .is_some_and(|c| c.starts_with("wrong-principal:"))),
        "{shown:#?}"
    );

    // Signing is audited as a mutating call.
    let signed = d
        .admin()
        .audit(None, None, None, Some(1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "bastion:SignCertificate" && e.result == "ok")
        .count();
    assert!(signed >= 4, "{signed} signing records");
}

const VPC_TEMPLATE: &str = r#"
Parameters:
  Cidr: {Type: String, Default: 10.215.0.0/20}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !Ref Cidr}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [1, !Cidr [!Ref Cidr, 4, 8]]
  Ssh:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: ssh from inside the VPC (where the bastion opens its connections)
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: !Ref Cidr}
  Box:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: busybox:web
      InstanceType: t3.micro
      SubnetId: !Ref Subnet
      SecurityGroupIds: [!GetAtt Ssh.GroupId]
"#;

/// What a direct connection from the host to `addr` reads within two seconds ("" when it
/// can't connect).
fn direct_banner(addr: &str) -> String {
    use std::io::Read;
    let Ok(mut s) =
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
    else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A process the test started, stopped by its PID when dropped.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue #18's main acceptance point, as root: Debian's sshd listening on an instance's
/// address inside the instance's network namespace, trusting the account's CA; the host has
/// no route to it; `ssh -J` (from `spindle ssh config`) and `spindle ssh INSTANCE -- CMD`
/// reach it through the bastion, which opens the connection inside the VPC; the session is
/// audited with its bytes.
#[test]
fn ssh_jumps_through_the_bastion_into_a_vpc_the_host_cannot_route_to() {
    if !common::root_tests_can_run(module_path!()) || !have_openssh() {
        return;
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipped: cli::ssh: Debian's openssh-server (/usr/sbin/sshd) is not installed");
        return;
    }
    let prefix = format!("ssj{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let tarball = d.root().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
        .unwrap();
    let import = d.cli(&[
        "image",
        "import",
        tarball.to_str().unwrap(),
        "--tag",
        "busybox:web",
        "--cmd",
        "sleep",
        "--cmd",
        "3600",
    ]);
    assert!(import.status.success(), "{}", stderr(&import));
    let tpl = d.root().join("vpc.yaml");
    std::fs::write(&tpl, VPC_TEMPLATE).unwrap();
    let o = d.cli(&["stack", "deploy", "sshvpc", tpl.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let acct = d.admin().whoami().unwrap().account_id.to_string();
    let inst = d
        .admin()
        .list_instances(&acct)
        .unwrap()
        .into_iter()
        .next()
        .expect("one instance");
    let ip = inst.private_ip.clone();

    // sshd in the instance's network namespace, trusting the account's CA.
    let home = d.root().join("home");
    let key = home.join(".ssh/id_ed25519");
    keygen(&key);
    let info = d.admin().describe_bastion(&acct).unwrap();
    let srv = d.root().join("sshd");
    std::fs::create_dir_all(&srv).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(srv.join("host"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(srv.join("ca.pub"), format!("{}\n", info.ca_public_key)).unwrap();
    std::fs::write(
        srv.join("sshd_config"),
        format!(
            "ListenAddress {ip}:22\nHostKey {h}\nTrustedUserCAKeys {c}\nAuthorizedKeysFile none\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PidFile none\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            h = srv.join("host").display(),
            c = srv.join("ca.pub").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let _sshd = Started(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{prefix}-{}", inst.id))
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(srv.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let o = cli_home(&d, &home, &["ssh", "cert", "--ttl", "10m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli_home(&d, &home, &["ssh", "config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = home.join("ssh_config");
    std::fs::write(&cfg, stdout(&o)).unwrap();

    // `ssh -J` through the config block; sshd may need a moment to listen (bounded tries).
    let mut last = String::new();
    let mut reached = false;
    for _ in 0..20 {
        let out = Command::new("ssh")
            .arg("-F")
            .arg(&cfg)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                home.join("instances_known_hosts").display()
            ))
            .arg(format!("root@{ip}"))
            .args(["echo", "through-the-bastion"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() && stdout(&out) == "through-the-bastion\n" {
            reached = true;
            break;
        }
        last = format!("{}{}", stdout(&out), stderr(&out));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(reached, "ssh -J never reached {ip}: {last}");
    // The host has no route in: a direct connection never meets that sshd. (This sandbox may
    // accept any outbound connection through a proxy, so the check is the sshd's banner, not
    // whether connect() succeeds.)
    assert!(
        !direct_banner(&format!("{ip}:22")).starts_with("SSH-2.0-OpenSSH"),
        "the host reached the instance's sshd directly"
    );
    let e = connect_record(&d, "ok");
    assert_eq!(e.result, "ok");
    assert!(
        e.target.starts_with(&format!("{ip}:22 from 127.0.0.1:")),
        "{}",
        e.target
    );
    assert!(
        !e.target.contains(" 0 B up"),
        "no bytes counted: {}",
        e.target
    );

    // `spindle ssh INSTANCE -- CMD` wraps the user's ssh: the bastion resolves the id.
    let o = cli_home(&d, &home, &["ssh", &inst.id, "--", "echo", "by-id"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "by-id\n");

    let o = d.cli(&["stack", "delete", "sshvpc", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
