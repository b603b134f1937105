//! The jump host against Debian's OpenSSH client: `ssh -W` through the gate to a loopback echo
//! server, and each refusal reason, each recorded once with its code. The backend here stands
//! in for the daemon (which CA belongs to which account, where a target is); the SSH server,
//! the client and the certificates are real. Runs as any user; says skipped without `ssh`.

use spindle_sshgate::ssh_key::ssh_key::certificate::CertType;
use spindle_sshgate::ssh_key::{Algorithm, PrivateKey};
use spindle_sshgate::{Attempt, Backend, BoxFuture, CertRequest, Gate, Identity, UserCa};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a refusal case is called, how its credential is made, and the code it is recorded with.
type Refusal<'a> = (&'a str, Box<dyn Fn() + 'a>, &'static str);

struct TestBackend {
    ca_fingerprint: String,
    records: Mutex<Vec<Attempt>>,
}

impl Backend for TestBackend {
    fn authority(&self, fp: &str) -> Option<String> {
        (fp == self.ca_fingerprint).then(|| "123456789012".to_string())
    }
    fn open<'a>(
        &'a self,
        _who: &'a Identity,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, String>> {
        Box::pin(async move {
            if host != "127.0.0.1" {
                return Err(format!("grant: `{host}` is outside this identity's grants"));
            }
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))
        })
    }
    fn record(&self, a: Attempt) {
        self.records.lock().unwrap().push(a);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An echo server on loopback: every connection gets back what it sent, then EOF.
async fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                let _ = s.write_all(&buf).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

struct Client {
    dir: tempfile::TempDir,
    known_hosts: String,
    port: u16,
}

impl Client {
    /// A fresh ed25519 key pair made by ssh-keygen; returns its public line.
    fn keygen(&self) -> String {
        let key = self.dir.path().join("id");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(self.dir.path().join("id-cert.pub"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read_to_string(self.dir.path().join("id.pub")).unwrap()
    }

    fn write_cert(&self, text: &str) {
        std::fs::write(self.dir.path().join("id-cert.pub"), text).unwrap();
    }

    /// `ssh -W HOST:PORT USER@gate`, sending `input`; returns (success, stdout, stderr).
    fn run(&self, user: &str, target: &str, input: &[u8]) -> (bool, Vec<u8>, String) {
        let mut child = self.spawn(user, target);
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ssh -W HOST:PORT USER@gate` with its standard streams piped.
    fn spawn(&self, user: &str, target: &str) -> std::process::Child {
        let d = self.dir.path();
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts))
            .arg("-i")
            .arg(d.join("id"))
            .arg("-o")
            .arg(format!(
                "CertificateFile={}",
                d.join("id-cert.pub").display()
            ))
            .args(["-p", &self.port.to_string(), "-W", target])
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Waits (bounded) for a record whose reason starts with `code`.
async fn record_with(backend: &TestBackend, code: &str) -> Attempt {
    for _ in 0..100 {
        if let Some(a) = backend
            .records
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.reason.starts_with(code))
        {
            return a.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no record with reason {code}; have {:#?}",
        backend.records.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_reaches_through_the_gate_and_every_refusal_is_recorded() {
    if !have("ssh") || !have("ssh-keygen") {
        eprintln!("skipped: openssh: Debian's openssh-client (ssh, ssh-keygen) is not installed");
        return;
    }
    let ca = UserCa::generate();
    let other = UserCa::generate();
    let backend = Arc::new(TestBackend {
        ca_fingerprint: ca.fingerprint(),
        records: Mutex::new(Vec::new()),
    });
    let host_key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap();
    let host_line = host_key.public_key().to_openssh().unwrap();
    let gate = Gate::start("127.0.0.1:0", host_key, backend.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let port = gate.local_addr.port();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_line}\n")).unwrap();
    let client = Arc::new(Client {
        dir,
        known_hosts: known_hosts.display().to_string(),
        port,
    });
    let echo_port = echo().await;
    let target = format!("127.0.0.1:{echo_port}");
    let root = vec!["root".to_string()];

    // Runs ssh off the runtime's threads (the gate serves on them).
    let ssh = |user: &'static str, target: String, input: &'static [u8]| {
        let c = client.clone();
        async move {
            tokio::task::spawn_blocking(move || c.run(user, &target, input))
                .await
                .unwrap()
        }
    };
    let sign = |ca: &UserCa, ty: CertType, after: u64, before: u64, serial: u64| {
        let public = client.keygen();
        let subject = spindle_sshgate::ssh_key::PublicKey::from_openssh(public.trim()).unwrap();
        let req = CertRequest {
            public_key: &public,
            key_id: "123456789012/AKIATEST",
            principals: &root,
            serial,
            valid_after: after,
            ttl_secs: 0,
        };
        let cert = ca
            .sign_unchecked(subject.key_data().clone(), ty, &req, after, before)
            .unwrap();
        client.write_cert(&cert.to_openssh().unwrap());
    };
    let t = now();

    // Through: bytes arrive at the echo server and come back; the record counts them.
    sign(&ca, CertType::User, t - 60, t + 3600, 1);
    let (ok, out, err) = ssh("root", target.clone(), b"hello through the bastion\n").await;
    assert!(ok, "ssh failed: {err}");
    assert_eq!(out, b"hello through the bastion\n");
    let a = record_with(&backend, "ok").await;
    assert!(a.allowed);
    assert_eq!(a.target, target);
    assert_eq!(a.credential, "cert:1 123456789012/AKIATEST");
    assert_eq!((a.bytes_up, a.bytes_down), (26, 26));

    // A target the backend refuses: the channel is refused and recorded with its reason.
    let (ok, _, _) = ssh("root", "10.9.9.9:22".into(), b"").await;
    assert!(!ok);
    let a = record_with(&backend, "grant:").await;
    assert!(!a.allowed && a.target == "10.9.9.9:22", "{a:?}");

    // Refusals at login, one per reason. A host certificate, an expired one and one not yet
    // valid never reach the policy through OpenSSH (the client or russh drops them first), so
    // they are recorded as a connection on which no certificate was acceptable; the policy's
    // own table covers those reasons for clients that do send them.
    let refusals: Vec<Refusal<'_>> = vec![
        (
            "another CA",
            Box::new(|| sign(&other, CertType::User, t - 60, t + 3600, 2)),
            "unknown-ca",
        ),
        (
            "a host certificate",
            Box::new(|| sign(&ca, CertType::Host, t - 60, t + 3600, 3)),
            "no-acceptable-credential",
        ),
        (
            "an expired certificate",
            Box::new(|| sign(&ca, CertType::User, t - 7200, t - 3600, 4)),
            "no-acceptable-credential",
        ),
        (
            "a certificate not yet valid",
            Box::new(|| sign(&ca, CertType::User, t + 3600, t + 7200, 5)),
            "no-acceptable-credential",
        ),
        (
            "an unregistered plain key",
            Box::new(|| {
                client.keygen();
            }),
            "unregistered-key",
        ),
    ];
    for (what, make, code) in refusals {
        backend.records.lock().unwrap().clear();
        make();
        let (ok, _, err) = ssh("root", target.clone(), b"").await;
        assert!(!ok, "{what} was let through");
        assert!(err.contains("Permission denied"), "{what}: {err}");
        let a = record_with(&backend, code).await;
        assert!(!a.allowed, "{what}: {a:?}");
    }
    // A principal the certificate doesn't name.
    backend.records.lock().unwrap().clear();
    sign(&ca, CertType::User, t - 60, t + 3600, 6);
    let (ok, _, _) = ssh("admin", target.clone(), b"").await;
    assert!(!ok);
    let a = record_with(&backend, "wrong-principal").await;
    assert_eq!(a.credential, "cert:6 123456789012/AKIATEST");
    assert!(Path::new(&client.known_hosts).exists());
    gate.stop();
}

/// A loopback server that echoes each read back at once (for a session held open).
async fn live_echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A session held open by a real OpenSSH client is listed with its identity, source, target
/// and bytes so far; killing it ends the client's connection, takes it off the list, and the
/// channel's record says who killed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_is_listed_and_killing_it_ends_the_clients_connection() {
    if !have("ssh") || !have("ssh-keygen") {
        eprintln!("skipped: openssh: Debian's openssh-client (ssh, ssh-keygen) is not installed");
        return;
    }
    let ca = UserCa::generate();
    let backend = Arc::new(TestBackend {
        ca_fingerprint: ca.fingerprint(),
        records: Mutex::new(Vec::new()),
    });
    let host_key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap();
    let host_line = host_key.public_key().to_openssh().unwrap();
    let gate = Gate::start("127.0.0.1:0", host_key, backend.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let port = gate.local_addr.port();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_line}\n")).unwrap();
    let client = Client {
        dir,
        known_hosts: known_hosts.display().to_string(),
        port,
    };
    let public = client.keygen();
    let root = vec!["root".to_string()];
    let cert = ca
        .sign(&CertRequest {
            public_key: &public,
            key_id: "123456789012/AKIALIVE",
            principals: &root,
            serial: 77,
            valid_after: now() - 60,
            ttl_secs: 600,
        })
        .unwrap();
    client.write_cert(&cert.to_openssh().unwrap());
    assert!(gate.sessions().is_empty());

    let target = format!("127.0.0.1:{}", live_echo().await);
    let mut child = client.spawn("root", &target);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let line = b"still here\n";
    let echoed = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        stdin.write_all(line).unwrap();
        stdin.flush().unwrap();
        let mut got = vec![0u8; line.len()];
        stdout.read_exact(&mut got).unwrap();
        (got, stdin, stdout)
    })
    .await
    .unwrap();
    assert_eq!(echoed.0, line);

    // Listed, with the bytes that crossed so far (bounded wait for the counters).
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = gate.sessions();
        if listed.len() == 1 && listed[0].bytes_down == line.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let s = &listed[0];
    assert!(s.id.starts_with("s-") && s.id.len() == 18, "{s:?}");
    assert_eq!(s.identity.key_id, "123456789012/AKIALIVE");
    assert_eq!((s.identity.serial, s.identity.user.as_str()), (77, "root"));
    assert_eq!(s.targets, vec![target.clone()]);
    assert!(s.source.starts_with("127.0.0.1:"), "{s:?}");
    assert_eq!((s.bytes_up, s.bytes_down), (11, 11));
    assert!(s.started <= now() && s.started + 60 > now());

    // Killing an unknown id does nothing; killing the session ends the client.
    assert!(gate.kill("s-0000000000000000", "AKIAADMIN").is_none());
    let killed = gate.kill(&s.id, "AKIAADMIN").expect("the session is live");
    assert_eq!(killed.id, s.id);
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    })
    .await
    .unwrap();
    let status = status.expect("the client still runs 10 s after its session was killed");
    assert!(!status.success(), "{status:?}");
    drop(echoed);
    let a = record_with(&backend, "ok: session killed by AKIAADMIN").await;
    assert_eq!(a.target, target);
    assert_eq!(a.credential, "cert:77 123456789012/AKIALIVE");
    for _ in 0..100 {
        if gate.sessions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gate.sessions().is_empty(), "{:#?}", gate.sessions());
    gate.stop();
}
