//! The SSH bastion through the daemon (#18): `spindle ssh cert` signs with the account's CA
//! (sealed at rest), and the jump host refuses and audits, with Debian's OpenSSH client, a
//! revoked access key and a credential without `bastion:Connect`. Needs no root: the grant
//! check runs before any target is looked up. Says skipped without `ssh`/`ssh-keygen`.

mod common;

use common::{client_for, stderr, stdout, Daemon, BIN};
use spindle_model::api::*;
use spindle_model::ssh::{SignSshCertRequest, SshKey, SshSession};
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

/// `ssh-keygen -L -f path`: a certificate's listing.
fn ssh_keygen_l(path: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// `SHA256:…` of a public key line, as `ssh-keygen -l` prints it.
fn fingerprint(public_line: &str) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), format!("{public_line}\n")).unwrap();
    let o = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(f.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).split_whitespace().nth(1).unwrap().to_string()
}

/// `ssh -W target` through the bastion at `addr` with key `key` and certificate `cert`.
fn ssh_w(addr: &str, key: &Path, cert: &Path, target: &str) -> (bool, String) {
    ssh_w_with(addr, key, Some(cert), target)
}

/// `ssh -W target` through the bastion at `addr` with key `key`, and certificate `cert` when
/// given (else the plain key alone).
fn ssh_w_with(addr: &str, key: &Path, cert: Option<&Path>, target: &str) -> (bool, String) {
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
        .args(cert.map(|c| format!("-oCertificateFile={}", c.display())))
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
    let listing = ssh_keygen_l(&cert);
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
    let addr = info
        .address
        .clone()
        .expect("the test daemon runs the bastion");
    let known =
        std::fs::read_to_string(home.join(format!(".ssh/spindle-{acct}-known_hosts"))).unwrap();
    // The known_hosts file pins the bastion's host key and trusts the account's host CA
    // (which is not its user CA) for instances.
    let host_ca = info.host_ca_public_key.clone().unwrap();
    assert_ne!(host_ca, info.ca_public_key);
    assert_eq!(
        known,
        format!(
            "[{}]:{} {}\n@cert-authority * {host_ca}\n",
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

    // Sessions are their own grant: a key that may only sign can't list or kill them; the
    // account has none live, and killing an unknown id is a clear 404.
    let c = client_for(&d.endpoint, &sign_only);
    let e = c.list_ssh_sessions("dev").unwrap_err();
    assert!(e.to_string().contains("bastion:ListSessions"), "{e}");
    let e = c.kill_ssh_session("dev", "s-0123456789abcdef").unwrap_err();
    assert!(e.to_string().contains("bastion:KillSession"), "{e}");
    let o = d.cli(&["ssh", "sessions", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let none: Vec<SshSession> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(none.is_empty(), "{none:?}");
    let o = d.cli(&["ssh", "kill", "s-0123456789abcdef"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ssh session `s-0123456789abcdef` not found"),
        "{}",
        stderr(&o)
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

/// Plain public keys as the fallback (item 2): `spindle ssh key add` registers the user's key
/// for the credential, and the jump host accepts it (the login passes and the channel reaches
/// the target lookup, which this daemon without a runtime refuses as `no-runtime`), refuses it
/// while the account has turned the fallback off, and refuses it once removed; each step is
/// audited. Agent forwarding is in a certificate only for a credential granted
/// `bastion:ForwardAgent`.
#[test]
fn a_registered_plain_key_is_accepted_until_removed_or_turned_off_and_audited() {
    if !have_openssh() {
        return;
    }
    let d = Daemon::start(BIN);
    let home = d.root().join("home");
    let key = home.join(".ssh/id_ed25519");
    let public = keygen(&key);
    let who = d.admin().whoami().unwrap();
    let acct = who.account_id.to_string();
    let addr = d.admin().describe_bastion(&acct).unwrap().address.unwrap();
    let target = "i-0123456789abcdef0:22";
    let fp = fingerprint(&public);

    // Unregistered: refused at login.
    let (ok, _) = ssh_w_with(&addr, &key, None, target);
    assert!(!ok);
    connect_record_where(&d, "unregistered-key:", |e| e.target.contains(&fp));

    let o = cli_home(&d, &home, &["ssh", "key", "add", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let added: Vec<SshKey> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].fingerprint, fp);
    assert_eq!(added[0].access_key_id, who.access_key_id.as_str());
    let listed = d.admin().list_ssh_keys(&acct).unwrap();
    assert_eq!(listed, added);
    // The same key again, and a line that is no key: clear errors.
    let e = d.admin().add_ssh_key(&acct, &public).unwrap_err();
    assert!(e.to_string().contains("already registered"), "{e}");
    let e = d
        .admin()
        .add_ssh_key(&acct, "ssh-ed25519 nope")
        .unwrap_err();
    assert!(e.to_string().contains("public_key: expected"), "{e}");

    // Accepted: the login passes as the credential the key was registered for, and the channel
    // is refused only further on (no runtime here).
    let (ok, _) = ssh_w_with(&addr, &key, None, target);
    assert!(!ok);
    let e = connect_record_where(&d, "no-runtime", |e| e.target.contains(&fp));
    assert_eq!(e.access_key_id.as_deref(), Some(who.access_key_id.as_str()));
    assert!(
        e.target
            .contains(&format!("by key:{fp} {acct}/{}", who.access_key_id)),
        "{}",
        e.target
    );

    // The account turns the fallback off: refused at login; on again: accepted again.
    let o = cli_home(&d, &home, &["ssh", "key-fallback", "off"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "plain-key fallback off\n");
    assert_eq!(
        d.admin().describe_bastion(&acct).unwrap().key_fallback,
        Some(false)
    );
    let (ok, _) = ssh_w_with(&addr, &key, None, target);
    assert!(!ok);
    connect_record_where(&d, "key-fallback-off:", |e| e.target.contains(&fp));
    let o = cli_home(&d, &home, &["ssh", "key-fallback", "on"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Removed: refused at login again.
    let o = cli_home(&d, &home, &["ssh", "key", "remove", &added[0].id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.admin().list_ssh_keys(&acct).unwrap().is_empty());
    let before = d
        .admin()
        .audit(None, None, None, Some(1000))
        .unwrap()
        .iter()
        .filter(|e| {
            e.error_code
                .as_deref()
                .is_some_and(|c| c.starts_with("unregistered-key:"))
        })
        .count();
    let (ok, _) = ssh_w_with(&addr, &key, None, target);
    assert!(!ok);
    let mut after = before;
    for _ in 0..100 {
        after = d
            .admin()
            .audit(None, None, None, Some(1000))
            .unwrap()
            .iter()
            .filter(|e| {
                e.error_code
                    .as_deref()
                    .is_some_and(|c| c.starts_with("unregistered-key:"))
            })
            .count();
        if after > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(after > before, "the removed key's refusal was not recorded");
    let e = d.admin().remove_ssh_key(&acct, &added[0].id).unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");

    // Every change is audited with the caller.
    let audit = d.admin().audit(None, None, None, Some(1000)).unwrap();
    for action in [
        "bastion:AddKey",
        "bastion:RemoveKey",
        "bastion:UpdateSettings",
    ] {
        assert!(
            audit.iter().any(|e| e.action == action
                && e.result == "ok"
                && e.access_key_id.as_deref() == Some(who.access_key_id.as_str())),
            "no {action} record"
        );
    }

    // Agent forwarding: the admin credential holds every grant, so its certificate permits
    // it; a credential without `bastion:ForwardAgent` gets a certificate that doesn't.
    let limited = d
        .admin()
        .create_key(
            &acct,
            &CreateKey {
                allow: vec![
                    "bastion:SignCertificate".into(),
                    "bastion:Connect".into(),
                    "bastion:Describe".into(),
                ],
                description: String::new(),
                aws: false,
            },
        )
        .unwrap();
    for (client, want) in [
        (d.admin(), true),
        (client_for(&d.endpoint, &limited), false),
    ] {
        let r = client
            .sign_ssh_certificate(
                &acct,
                &SignSshCertRequest {
                    public_key: public.clone(),
                    ttl_secs: Some(600),
                    principals: vec![],
                },
            )
            .unwrap();
        assert_eq!(r.forward_agent, want);
        let p = home.join("agent-cert.pub");
        std::fs::write(&p, format!("{}\n", r.certificate)).unwrap();
        let listing = ssh_keygen_l(&p);
        assert_eq!(
            listing.contains("permit-agent-forwarding"),
            want,
            "{listing}"
        );
        assert!(listing.contains("permit-port-forwarding"), "{listing}");
    }
}

/// A VPC with an instance (busybox httpd on 8080 serving `/etc`) whose group admits port 22
/// and 8080 from the connect endpoint's group (and 8080 from `AppFrom`); the endpoint itself
/// only when the parameter `Endpoint` is `yes`.
const VPC_TEMPLATE: &str = r#"
Parameters:
  Cidr: {Type: String, Default: 10.215.0.0/20}
  Endpoint: {Type: String, Default: "yes", AllowedValues: ["yes", "no"]}
  AppFrom: {Type: String, Default: 192.0.2.0/32}
Conditions:
  HasEndpoint: !Equals [!Ref Endpoint, "yes"]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !Ref Cidr}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [1, !Cidr [!Ref Cidr, 4, 8]]
  EndpointSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: where the bastion's connections start
      VpcId: !Ref Vpc
  Ssh:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: ssh and the app's port from the connect endpoint only
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, SourceSecurityGroupId: !GetAtt EndpointSg.GroupId}
        - {IpProtocol: tcp, FromPort: 8080, ToPort: 8080, SourceSecurityGroupId: !GetAtt EndpointSg.GroupId}
        - {IpProtocol: tcp, FromPort: 8080, ToPort: 8080, CidrIp: !Ref AppFrom}
  Eice:
    Type: AWS::EC2::InstanceConnectEndpoint
    Condition: HasEndpoint
    Properties:
      SubnetId: !Ref Subnet
      SecurityGroupIds: [!GetAtt EndpointSg.GroupId]
      PreserveClientIp: false
  Box:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: busybox:web
      InstanceType: t3.micro
      SubnetId: !Ref Subnet
      SecurityGroupIds: [!GetAtt Ssh.GroupId]
Outputs:
  Ip: {Value: !GetAtt Box.PrivateIp}
"#;

/// Peers two VPCs of the account.
const PEERING_TEMPLATE: &str = r#"
Parameters: {A: {Type: String}, B: {Type: String}}
Resources:
  Peer:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: {VpcId: !Ref A, PeerVpcId: !Ref B}
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

/// Deploys `VPC_TEMPLATE` as `name` with these parameters; the stack's one instance.
fn deploy_vpc(d: &Daemon, acct: &str, name: &str, params: &[&str]) -> InstanceInfo {
    let tpl = d.root().join("vpc.yaml");
    std::fs::write(&tpl, VPC_TEMPLATE).unwrap();
    let mut args = vec!["stack", "deploy", name, tpl.to_str().unwrap(), "--yes"];
    for p in params {
        args.extend(["--parameter", p]);
    }
    let o = d.cli(&args);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    d.admin()
        .list_instances(acct)
        .unwrap()
        .into_iter()
        .find(|i| {
            i.tags
                .get("aws:cloudformation:stack-name")
                .map(String::as_str)
                == Some(name)
        })
        .expect("the stack's instance")
}

/// `curl ARGS` inside the network namespace `netns` against the instance metadata service
/// (IMDSv2: a token first); the body, or a panic naming the path.
fn imds(netns: &str, path: &str, extra: &[&str]) -> String {
    let curl = |args: &[&str]| {
        let o = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["curl", "-sS", "--fail-with-body", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    };
    let token = curl(&[
        "-X",
        "PUT",
        "-H",
        "X-aws-ec2-metadata-token-ttl-seconds: 60",
        "http://169.254.169.254/latest/api/token",
    ]);
    let header = format!("X-aws-ec2-metadata-token: {token}");
    let url = format!("http://169.254.169.254{path}");
    let mut args = vec!["-H", header.as_str()];
    args.extend(extra);
    args.push(&url);
    curl(&args)
}

/// Debian's sshd on `ip:22` inside the instance's network namespace `netns` (the host's
/// files), trusting the user CA the instance's metadata service names, with the built-in SFTP
/// server for `scp`. Its host key is made here, as an instance makes its own; when `signed`,
/// the instance posts the public half to its metadata service and sshd presents the host
/// certificate it gets back (`HostCertificate`). Returns sshd and the certificate's text.
fn start_sshd(dir: &Path, netns: &str, ip: &str, signed: bool) -> (Started, String) {
    std::fs::create_dir_all(dir).unwrap();
    let host = dir.join("host");
    let _ = std::fs::remove_file(&host);
    let _ = std::fs::remove_file(dir.join("host.pub"));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host)
        .status()
        .unwrap();
    assert!(st.success());
    let ca_line = imds(netns, "/latest/meta-data/spindle/ssh/user-ca-key", &[]);
    std::fs::write(dir.join("ca.pub"), &ca_line).unwrap();
    let mut cert = String::new();
    let mut host_cert = String::new();
    if signed {
        let body = format!("@{}", dir.join("host.pub").display());
        cert = imds(
            netns,
            "/latest/spindle/ssh/host-certificate",
            &["-X", "POST", "--data-binary", &body],
        );
        std::fs::write(dir.join("host-cert.pub"), &cert).unwrap();
        host_cert = format!("HostCertificate {}\n", dir.join("host-cert.pub").display());
    }
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "ListenAddress {ip}:22\nHostKey {h}\n{host_cert}TrustedUserCAKeys {c}\nAuthorizedKeysFile none\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PidFile none\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
            h = host.display(),
            c = dir.join("ca.pub").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = Started(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (sshd, cert)
}

/// An OpenSSH client command (`ssh` or `scp`) with the config block `cfg` alone: both hops
/// check host keys strictly against the known_hosts file `spindle ssh config` wrote.
fn openssh(program: &str, cfg: &Path) -> Command {
    let mut c = Command::new(program);
    c.arg("-F")
        .arg(cfg)
        .args(["-o", "BatchMode=yes"])
        .stdin(Stdio::null());
    c
}

/// A loopback port nothing listens on (for `ssh -L`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from `127.0.0.1:port`, bounded tries while the forward comes up.
fn http_get_local(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut last = String::new();
    for _ in 0..40 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.starts_with("HTTP/1") {
                    return body;
                }
                last = body;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("no answer through the forward on 127.0.0.1:{port}: {last:?}");
}

/// Issue #18's acceptance points, as root, with Debian's OpenSSH client and server: an
/// instance in a VPC the host can't route to, whose group admits only the connect endpoint's
/// group. `ssh -J` (from `spindle ssh config`) and `spindle ssh INSTANCE -- CMD` reach its
/// sshd through the bastion, which opens the connection from the endpoint; `scp` copies a
/// file both ways; `ssh -L` through the bastion forwards a port to the instance's app; a
/// target in a VPC no endpoint reaches (prod, while the endpoint is in dev and nothing is
/// peered) is refused and audited with the reason, as is every target while the account has
/// no endpoint at all (no implicit default); once a bastion VPC with an endpoint is peered
/// with prod, prod's app port (admitted from the bastion's CIDR) is reached through it.
/// Sessions are audited with their bytes.
#[test]
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
fn ssh_jumps_through_the_connect_endpoint_into_a_vpc_the_host_cannot_route_to() {
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
    let mut import = vec![
        "image",
        "import",
        tarball.to_str().unwrap(),
        "--tag",
        "busybox:web",
    ];
    for c in ["httpd", "-f", "-p", "8080", "-h", "/etc"] {
        import.extend(["--cmd", c]);
    }
    let o = d.cli(&import);
    assert!(o.status.success(), "{}", stderr(&o));
    let acct = d.admin().whoami().unwrap().account_id.to_string();
    let home = d.root().join("home");
    let key = home.join(".ssh/id_ed25519");
    keygen(&key);
    let o = cli_home(&d, &home, &["ssh", "cert", "--ttl", "10m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = d.admin().describe_bastion(&acct).unwrap();
    let addr = info.address.clone().unwrap();
    let cert = home.join(format!(".ssh/spindle-{acct}-cert.pub"));

    // prod first, without an endpoint: the account has none, so nothing is reachable.
    let prod = deploy_vpc(
        &d,
        &acct,
        "prod",
        &["Cidr=10.216.0.0/20", "Endpoint=no", "AppFrom=10.217.0.0/20"],
    );
    let prod_target = format!("{}:22", prod.private_ip);
    let (ok, _) = ssh_w(&addr, &key, &cert, &prod_target);
    assert!(!ok, "reached prod without any endpoint");
    let e = connect_record_where(&d, "no-endpoint", |e| e.target.starts_with(&prod_target));
    assert_eq!(e.result, "denied");
    assert!(
        e.error_code
            .as_deref()
            .unwrap()
            .contains("the account has no AWS::EC2::InstanceConnectEndpoint"),
        "{e:?}"
    );

    // dev, with an endpoint; sshd in its instance.
    let dev = deploy_vpc(&d, &acct, "dev", &["Cidr=10.215.0.0/20"]);
    let ip = dev.private_ip.clone();
    let dev_netns = format!("{prefix}-{}", dev.id);
    let (sshd, host_cert) = start_sshd(&d.root().join("sshd"), &dev_netns, &ip, true);
    // The host certificate names the instance, is signed by the account's host CA (not its
    // user CA), and is a host certificate.
    let listing = ssh_keygen_l(&d.root().join("sshd/host-cert.pub"));
    let host_ca_fp = fingerprint(info.host_ca_public_key.as_deref().unwrap());
    assert!(listing.contains("host certificate"), "{listing}");
    assert!(
        listing.contains(&format!("Signing CA: ED25519 {host_ca_fp}")),
        "{listing}"
    );
    assert!(!listing.contains(&info.ca_fingerprint), "{listing}");
    for name in [dev.id.as_str(), ip.as_str()] {
        assert!(
            listing.contains(&format!("\n                {name}\n")),
            "{listing}"
        );
    }
    assert!(
        host_cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{host_cert}"
    );
    let signed = d
        .admin()
        .audit(None, None, None, Some(1000))
        .unwrap()
        .into_iter()
        .find(|e| e.action == "bastion:SignHostCertificate" && e.result == "ok")
        .expect("the host certificate's signing is audited");
    assert!(
        signed
            .target
            .starts_with(&format!("instance/{} serial ", dev.id)),
        "{signed:?}"
    );
    let o = cli_home(&d, &home, &["ssh", "config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = home.join("ssh_config");
    std::fs::write(&cfg, stdout(&o)).unwrap();

    // `ssh -J` through the config block; sshd may need a moment to listen (bounded tries).
    let mut last = String::new();
    let mut reached = false;
    for _ in 0..20 {
        let out = openssh("ssh", &cfg)
            .arg(format!("root@{ip}"))
            .args(["echo", "through-the-bastion"])
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
    let e = connect_record_where(&d, "ok", |e| e.target.starts_with(&format!("{ip}:22")));
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

    // A session held open by a real client is listed (who, serial, source, target, bytes),
    // killed by id, and the client sees its connection end; the kill is audited with the
    // caller, and the session's record says who killed it.
    let mut held = Started(
        openssh("ssh", &cfg)
            .arg(format!("root@{ip}"))
            .args(["sleep", "120"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let target22 = format!("{ip}:22");
    let mut live = Vec::new();
    for _ in 0..100 {
        let o = cli_home(&d, &home, &["ssh", "sessions", "--output", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        live = serde_json::from_str::<Vec<SshSession>>(&stdout(&o)).unwrap();
        if live
            .iter()
            .any(|s| s.targets == [target22.clone()] && s.bytes_down > 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let me = d.admin().whoami().unwrap();
    let s = live
        .iter()
        .find(|s| s.targets == [target22.clone()])
        .unwrap_or_else(|| panic!("the held session is not listed: {live:#?}"));
    assert_eq!(s.key_id, format!("{acct}/{}", me.access_key_id));
    assert_eq!(s.user, "root");
    assert!(s.source.starts_with("127.0.0.1:"), "{s:?}");
    assert!(s.bytes_up > 0 && s.bytes_down > 0, "{s:?}");
    let table = stdout(&cli_home(&d, &home, &["ssh", "sessions"]));
    assert!(
        table.contains(&s.id) && table.contains(&target22),
        "{table}"
    );
    let o = cli_home(&d, &home, &["ssh", "kill", &s.id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("killed {}", s.id)),
        "{}",
        stdout(&o)
    );
    let mut ended = None;
    for _ in 0..200 {
        ended = held.0.try_wait().unwrap();
        if ended.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ended = ended.expect("the client still runs 10 s after its session was killed");
    assert!(!ended.success(), "{ended:?}");
    let e = connect_record_where(&d, "ok: session killed by", |e| {
        e.target.starts_with(&target22)
    });
    assert!(
        e.error_code
            .as_deref()
            .unwrap()
            .contains(me.access_key_id.as_str()),
        "{e:?}"
    );
    let kills: Vec<AuditEvent> = d
        .admin()
        .audit(None, None, None, Some(1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "bastion:KillSession" && e.result == "ok")
        .collect();
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(
        kills[0].access_key_id.as_deref(),
        Some(me.access_key_id.as_str())
    );
    assert!(kills[0].target.ends_with(&s.id), "{:?}", kills[0]);
    let o = cli_home(&d, &home, &["ssh", "sessions", "--output", "json"]);
    let after: Vec<SshSession> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(after.iter().all(|x| x.id != s.id), "{after:#?}");

    // Agent forwarding (`ssh -A`) reaches the instance only with a certificate of a
    // credential granted `bastion:ForwardAgent` (the admin's holds every grant); with one of
    // a credential without it, the instance's sshd refuses the agent.
    let agent_sock = d.root().join("agent.sock");
    let _agent = Started(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&agent_sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if agent_sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent_sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let remote_agent = || {
        let o = openssh("ssh", &cfg)
            .env("SSH_AUTH_SOCK", &agent_sock)
            .arg("-A")
            .arg(format!("root@{ip}"))
            .arg("echo agent:$SSH_AUTH_SOCK")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim_end().to_string()
    };
    let granted = remote_agent();
    assert!(granted.len() > "agent:".len(), "{granted:?}");
    let limited = d
        .admin()
        .create_key(
            &acct,
            &CreateKey {
                allow: vec!["bastion:SignCertificate".into(), "bastion:Connect".into()],
                description: String::new(),
                aws: false,
            },
        )
        .unwrap();
    let r = client_for(&d.endpoint, &limited)
        .sign_ssh_certificate(
            &acct,
            &SignSshCertRequest {
                public_key: std::fs::read_to_string(format!("{}.pub", key.display())).unwrap(),
                ttl_secs: Some(600),
                principals: vec![],
            },
        )
        .unwrap();
    assert!(!r.forward_agent);
    std::fs::write(&cert, format!("{}\n", r.certificate)).unwrap();
    assert_eq!(remote_agent(), "agent:");
    let o = cli_home(&d, &home, &["ssh", "cert", "--ttl", "10m"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // scp both ways through the jump host (sshd runs on the host's files, in the
    // instance's network namespace).
    let files = d.root().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let up = files.join("up.txt");
    let payload: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&up, &payload).unwrap();
    let remote = files.join("remote.txt");
    let o = openssh("scp", &cfg)
        .arg(&up)
        .arg(format!("root@{ip}:{}", remote.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "scp up: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), payload);
    std::fs::write(&remote, "written on the instance's side\n").unwrap();
    let down = files.join("down.txt");
    let o = openssh("scp", &cfg)
        .arg(format!("root@{ip}:{}", remote.display()))
        .arg(&down)
        .output()
        .unwrap();
    assert!(o.status.success(), "scp down: {}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&down).unwrap(),
        "written on the instance's side\n"
    );

    // `ssh -L` through the jump host itself to the instance's app port (8080, admitted only
    // from the endpoint's group): the page is the instance's own /etc/hosts.
    let lport = free_port();
    let (bhost, bport) = addr.rsplit_once(':').unwrap();
    let _forward = Started(
        Command::new("ssh")
            .args(["-F", "/dev/null", "-N", "-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .arg("-L")
            .arg(format!("127.0.0.1:{lport}:{ip}:8080"))
            .args(["-p", bport])
            .arg(format!("root@{bhost}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let page = http_get_local(lport, "/hosts");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(page.contains(&ip), "not the instance's /etc/hosts: {page}");
    connect_record_where(&d, "ok", |e| e.target.starts_with(&format!("{ip}:8080")));

    // dev → prod: the endpoint is in dev, prod is not peered with it: refused, audited.
    let (ok, _) = ssh_w(&addr, &key, &cert, &prod_target);
    assert!(!ok, "reached prod through dev's endpoint");
    let e = connect_record_where(&d, "no-endpoint", |e| {
        e.target.starts_with(&prod_target)
            && e.error_code
                .as_deref()
                .is_some_and(|c| c.contains("no InstanceConnectEndpoint reaches"))
    });
    assert_eq!(e.result, "denied");
    assert!(
        e.error_code.as_deref().unwrap().contains(&prod.vpc_id),
        "the reason names prod's VPC: {e:?}"
    );

    // A bastion VPC with its own endpoint, peered with prod: prod's app port (which admits
    // the bastion VPC's CIDR) is now reached from the bastion's endpoint, the only one whose
    // router forwards to prod. (`ssh -W` to an HTTP port fails the SSH handshake; the
    // channel's record is what counts.)
    let bastion = deploy_vpc(&d, &acct, "bastion", &["Cidr=10.217.0.0/20"]);
    let peer = d.root().join("peer.yaml");
    std::fs::write(&peer, PEERING_TEMPLATE).unwrap();
    let a = format!("A={}", bastion.vpc_id);
    let b = format!("B={}", prod.vpc_id);
    let o = d.cli(&[
        "stack",
        "deploy",
        "peer",
        peer.to_str().unwrap(),
        "--yes",
        "--parameter",
        &a,
        "--parameter",
        &b,
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let prod_app = format!("{}:8080", prod.private_ip);
    let _ = ssh_w(&addr, &key, &cert, &prod_app);
    connect_record_where(&d, "ok", |e| e.target.starts_with(&prod_app));

    // `spindle ssh INSTANCE -- CMD` wraps the user's ssh: the bastion resolves the id.
    let o = cli_home(&d, &home, &["ssh", &dev.id, "--", "echo", "by-id"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "by-id\n");

    // The same instance with a host key its account's host CA did not sign: OpenSSH's client
    // refuses it on the inner hop, both through the config block and `spindle ssh`.
    drop(sshd);
    let (_unsigned, _) = start_sshd(&d.root().join("sshd-unsigned"), &dev_netns, &ip, false);
    let mut refused = String::new();
    for _ in 0..20 {
        let out = openssh("ssh", &cfg)
            .arg(format!("root@{ip}"))
            .args(["echo", "should-not-run"])
            .output()
            .unwrap();
        assert_ne!(
            stdout(&out),
            "should-not-run\n",
            "an unsigned host key was accepted"
        );
        refused = stderr(&out);
        if refused.contains("Host key verification failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        refused.contains("Host key verification failed"),
        "{refused}"
    );
    let o = cli_home(&d, &home, &["ssh", &dev.id, "--", "echo", "should-not-run"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Host key verification failed"),
        "{}",
        stderr(&o)
    );

    for name in ["peer", "bastion", "dev", "prod"] {
        let o = d.cli(&["stack", "delete", name, "--yes"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}
