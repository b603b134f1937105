//! The instance metadata service, answering like IMDSv2 at `169.254.169.254:80`:
//! `PUT /latest/api/token` issues a session token, and every `GET` must carry it in
//! `X-aws-ec2-metadata-token`. As in AWS, the service sits on the VPC's router, not in the
//! instance (where it would take port 80 from the instance's own servers): the daemon opens one
//! listening socket per VPC inside the router's namespace, on `169.254.169.254` on its
//! loopback, and tells instances apart by their source address. Tokens are bound to the
//! address that asked for them.
//!
//! The SSH bastion's part (issue #18) is answered by a hook the daemon registers
//! ([`SshHook`]): `GET /latest/meta-data/spindle/ssh/user-ca-key` and `…/host-ca-key` give the
//! account's CA public keys (for sshd's `TrustedUserCAKeys` and for known_hosts), and
//! `POST /latest/spindle/ssh/host-certificate` with the instance's own host public key as the
//! body answers a host certificate for it, so the private key never leaves the instance.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What an instance may learn about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub local_ipv4: String,
    pub hostname: String,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Issued session tokens and when they expire.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: BTreeMap<String, Instant>,
    counter: u64,
}

/// A parsed request: method, path, the headers we care about and a small body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub ttl: Option<u64>,
    pub body: String,
}

/// The largest request body read (a public key line is well under 1 KiB).
pub const MAX_BODY: usize = 8 * 1024;

/// What the daemon answers for an instance's SSH paths. `Err` is a message for a 400 answer.
pub trait SshHook: Send + Sync {
    /// The instance's account's SSH user CA public key line.
    fn user_ca_key(&self, md: &Metadata) -> Result<String, String>;
    /// The instance's account's SSH host CA public key line.
    fn host_ca_key(&self, md: &Metadata) -> Result<String, String>;
    /// Signs `public_key`, the instance's own host key, as a host certificate naming the
    /// instance (OpenSSH certificate line).
    fn host_certificate(&self, md: &Metadata, public_key: &str) -> Result<String, String>;
}

/// The daemon's hook, when it has registered one.
pub type SshHookSlot = Option<std::sync::Arc<dyn SshHook>>;

/// Answers one request: (status, body). Pure apart from the token table and the hook.
pub fn respond(
    md: &Metadata,
    tokens: &mut Tokens,
    req: &Request,
    now: Instant,
    ssh: Option<&dyn SshHook>,
) -> (u16, String) {
    tokens.issued.retain(|_, exp| *exp > now);
    if req.method == "PUT" && req.path == "/latest/api/token" {
        let ttl = match req.ttl {
            Some(t) if (1..=21600).contains(&t) => t,
            _ => {
                return (
                    400,
                    "missing or invalid X-aws-ec2-metadata-token-ttl-seconds\n".into(),
                )
            }
        };
        tokens.counter += 1;
        let token = hex::encode(Sha256::digest(format!(
            "{}/{}/{:?}",
            md.instance_id, tokens.counter, now
        )));
        tokens
            .issued
            .insert(token.clone(), now + Duration::from_secs(ttl));
        return (200, token);
    }
    let host_cert = req.method == "POST" && req.path == "/latest/spindle/ssh/host-certificate";
    if req.method != "GET" && !host_cert {
        return (405, "method not allowed\n".into());
    }
    match &req.token {
        Some(t) if tokens.issued.contains_key(t) => {}
        _ => {
            return (
                401,
                "unauthorized: PUT /latest/api/token first (IMDSv2)\n".into(),
            )
        }
    }
    let path = req.path.trim_end_matches('/');
    if let Some(answer) = respond_ssh(md, req, path, ssh) {
        return answer;
    }
    let found = match path {
        "/latest/meta-data" => Some(
            [
                "ami-id",
                "hostname",
                "instance-id",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "tags/",
            ]
            .into_iter()
            .chain(ssh.map(|_| "spindle/"))
            .collect::<Vec<_>>()
            .join("\n"),
        ),
        "/latest/meta-data/instance-id" => Some(md.instance_id.clone()),
        "/latest/meta-data/ami-id" => Some(md.image_id.clone()),
        "/latest/meta-data/instance-type" => Some(md.instance_type.clone()),
        "/latest/meta-data/local-ipv4" => Some(md.local_ipv4.clone()),
        "/latest/meta-data/hostname" | "/latest/meta-data/local-hostname" => {
            Some(md.hostname.clone())
        }
        "/latest/meta-data/tags" => Some("instance/".into()),
        "/latest/meta-data/tags/instance" => {
            Some(md.tags.keys().cloned().collect::<Vec<_>>().join("\n"))
        }
        "/latest/user-data" => md.user_data.clone(),
        p => p
            .strip_prefix("/latest/meta-data/tags/instance/")
            .and_then(|k| md.tags.get(k).cloned()),
    };
    match found {
        Some(body) => (200, body),
        None => (404, "not found\n".into()),
    }
}

/// The SSH paths; `None` for any other path.
fn respond_ssh(
    md: &Metadata,
    req: &Request,
    path: &str,
    ssh: Option<&dyn SshHook>,
) -> Option<(u16, String)> {
    let answer = |r: Result<String, String>| match r {
        Ok(line) => (200, format!("{line}\n")),
        Err(e) => (400, format!("{e}\n")),
    };
    let hook = match (path, ssh) {
        ("/latest/meta-data/spindle", Some(_)) => return Some((200, "ssh/".into())),
        ("/latest/meta-data/spindle/ssh", Some(_)) => {
            return Some((200, "host-ca-key\nuser-ca-key".into()))
        }
        (p, Some(h)) if p.starts_with("/latest/meta-data/spindle/") || req.method == "POST" => h,
        (p, None) if p.starts_with("/latest/meta-data/spindle") || req.method == "POST" => {
            return Some((404, "not served: the daemon runs no SSH bastion\n".into()))
        }
        _ => return None,
    };
    Some(match path {
        "/latest/meta-data/spindle/ssh/user-ca-key" => answer(hook.user_ca_key(md)),
        "/latest/meta-data/spindle/ssh/host-ca-key" => answer(hook.host_ca_key(md)),
        "/latest/spindle/ssh/host-certificate" => answer(hook.host_certificate(md, &req.body)),
        _ => (404, "not found\n".into()),
    })
}

fn parse_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.take(16 * 1024));
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut token, mut ttl, mut length) = (None, None, 0usize);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "x-aws-ec2-metadata-token" => token = Some(v.trim().to_string()),
                "x-aws-ec2-metadata-token-ttl-seconds" => ttl = v.trim().parse().ok(),
                "content-length" => length = v.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        token,
        ttl,
        body: String::from_utf8(body).ok()?,
    })
}

/// Finds the metadata of the instance with a given address.
pub type Lookup = Box<dyn Fn(Ipv4Addr) -> Option<Metadata> + Send>;

/// A running metadata server; dropping it stops it.
#[derive(Debug)]
pub struct ImdsServer {
    stop: Arc<AtomicBool>,
    fd: i32,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ImdsServer {
    /// Serves on `listener` (already bound inside a router namespace); `lookup` maps a client's
    /// address to its instance's metadata (`None`: not an instance, answered with 404); `ssh`
    /// gives the daemon's [`SshHook`] at the time of each request.
    pub fn start(
        name: &str,
        listener: TcpListener,
        lookup: Lookup,
        ssh: Box<dyn Fn() -> SshHookSlot + Send>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let fd = listener.as_raw_fd();
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("imds-{name}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                let tokens: Mutex<BTreeMap<Ipv4Addr, Tokens>> = Mutex::new(BTreeMap::new());
                for conn in listener.incoming() {
                    if s2.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let Ok(IpAddr::V4(peer)) = conn.peer_addr().map(|a| a.ip()) else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let Some(req) = parse_request(&conn) else { continue };
                    let (status, body) = match lookup(peer) {
                        Some(md) => {
                            let hook = ssh();
                            respond(&md, tokens.lock().unwrap().entry(peer).or_default(), &req, Instant::now(), hook.as_deref())
                        }
                        None => (404, "not an instance\n".to_string()),
                    };
                    let reason = match status {
                        200 => "OK",
                        400 => "Bad Request",
                        401 => "Unauthorized",
                        404 => "Not Found",
                        405 => "Method Not Allowed",
                        _ => "Error",
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            })
            .expect("spawn imds thread");
        ImdsServer {
            stop,
            fd,
            thread: Some(thread),
        }
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: shutting down the listening socket (still owned by the thread) makes its
        // blocked accept return on Linux; the descriptor is not closed here.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            // The server thread itself may drop the engine's last reference (and so this).
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(md: &Metadata, tokens: &mut Tokens, req: &Request, now: Instant) -> (u16, String) {
        respond(md, tokens, req, now, None)
    }

    #[test]
    fn imdsv2_requires_a_token_and_answers_metadata() {
        let mut md = Metadata {
            instance_id: "i-0abc".into(),
            local_ipv4: "10.200.1.2".into(),
            ..Default::default()
        };
        md.tags.insert("Name".into(), "web".into());
        md.user_data = Some("#!/bin/sh\necho hi\n".into());
        let mut tokens = Tokens::default();
        let now = Instant::now();
        let get = |path: &str, token: Option<&str>| Request {
            method: "GET".into(),
            path: path.into(),
            token: token.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            ask(
                &md,
                &mut tokens,
                &get("/latest/meta-data/instance-id", None),
                now
            )
            .0,
            401
        );
        let put = Request {
            method: "PUT".into(),
            path: "/latest/api/token".into(),
            ttl: Some(60),
            ..Default::default()
        };
        let (st, token) = ask(&md, &mut tokens, &put, now);
        assert_eq!(st, 200);
        let t = Some(token.as_str());
        assert_eq!(
            ask(
                &md,
                &mut tokens,
                &get("/latest/meta-data/instance-id", t),
                now
            ),
            (200, "i-0abc".into())
        );
        assert_eq!(
            ask(
                &md,
                &mut tokens,
                &get("/latest/meta-data/local-ipv4", t),
                now
            )
            .1,
            "10.200.1.2"
        );
        assert_eq!(
            ask(
                &md,
                &mut tokens,
                &get("/latest/meta-data/tags/instance/Name", t),
                now
            )
            .1,
            "web"
        );
        assert_eq!(
            ask(&md, &mut tokens, &get("/latest/user-data", t), now).1,
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(ask(&md, &mut tokens, &get("/latest/nope", t), now).0, 404);
        // Tokens expire.
        assert_eq!(
            ask(
                &md,
                &mut tokens,
                &get("/latest/meta-data/instance-id", t),
                now + Duration::from_secs(61)
            )
            .0,
            401
        );
        let bad_ttl = Request { ttl: None, ..put };
        assert_eq!(ask(&md, &mut tokens, &bad_ttl, now).0, 400);
    }

    /// Records what the daemon was asked; answers a fixed line per path.
    struct Hook;

    impl SshHook for Hook {
        fn user_ca_key(&self, md: &Metadata) -> Result<String, String> {
            Ok(format!("ssh-ed25519 USERCA {}", md.instance_id))
        }
        fn host_ca_key(&self, _: &Metadata) -> Result<String, String> {
            Ok("ssh-ed25519 HOSTCA".into())
        }
        fn host_certificate(&self, md: &Metadata, public_key: &str) -> Result<String, String> {
            match public_key.trim() {
                "ssh-ed25519 GOOD" => Ok(format!("cert for {} of {public_key}", md.instance_id)),
                other => Err(format!("public key: not a key: {other:?}")),
            }
        }
    }

    #[test]
    fn the_ssh_paths_ask_the_daemons_hook_with_a_token_and_only_post_signs() {
        let md = Metadata {
            instance_id: "i-0abc".into(),
            ..Default::default()
        };
        let mut tokens = Tokens::default();
        let now = Instant::now();
        let put = Request {
            method: "PUT".into(),
            path: "/latest/api/token".into(),
            ttl: Some(60),
            ..Default::default()
        };
        let token = Some(respond(&md, &mut tokens, &put, now, Some(&Hook)).1);
        let req = |method: &str, path: &str, body: &str| Request {
            method: method.into(),
            path: path.into(),
            token: token.clone(),
            body: body.into(),
            ..Default::default()
        };
        let post = "/latest/spindle/ssh/host-certificate";
        // (request, with the hook?, expected status, expected body)
        let cases: Vec<(Request, bool, u16, &str)> = vec![
            (req("GET", "/latest/meta-data/", ""), true, 200, "spindle/"),
            (
                req("GET", "/latest/meta-data/spindle/ssh", ""),
                true,
                200,
                "user-ca-key",
            ),
            (
                req("GET", "/latest/meta-data/spindle/ssh/user-ca-key", ""),
                true,
                200,
                "ssh-ed25519 USERCA i-0abc\n",
            ),
            (
                req("GET", "/latest/meta-data/spindle/ssh/host-ca-key", ""),
                true,
                200,
                "ssh-ed25519 HOSTCA\n",
            ),
            (
                req("POST", post, "ssh-ed25519 GOOD\n"),
                true,
                200,
                "cert for i-0abc of ssh-ed25519 GOOD\n\n",
            ),
            (
                req("POST", post, "junk"),
                true,
                400,
                "public key: not a key",
            ),
            (req("GET", post, ""), true, 404, "not found"),
            (
                req("POST", "/latest/meta-data/x", ""),
                true,
                405,
                "not allowed",
            ),
            (
                Request {
                    token: None,
                    ..req("POST", post, "ssh-ed25519 GOOD")
                },
                true,
                401,
                "unauthorized",
            ),
            (
                req("POST", post, "ssh-ed25519 GOOD"),
                false,
                404,
                "no SSH bastion",
            ),
            (
                req("GET", "/latest/meta-data/spindle/ssh/user-ca-key", ""),
                false,
                404,
                "no SSH bastion",
            ),
        ];
        for (r, with_hook, status, body) in cases {
            let hook: Option<&dyn SshHook> = if with_hook { Some(&Hook) } else { None };
            let (st, got) = respond(&md, &mut tokens, &r, now, hook);
            assert_eq!(st, status, "{} {}: {got}", r.method, r.path);
            assert!(
                got.contains(body),
                "{} {}: {got:?} lacks {body:?}",
                r.method,
                r.path
            );
        }
        let (_, listing) = respond(
            &md,
            &mut tokens,
            &req("GET", "/latest/meta-data", ""),
            now,
            None,
        );
        assert!(!listing.contains("spindle"), "{listing}");
    }
}
