//! The jump host: an SSH server that authenticates user certificates with [`crate::check`] and
//! forwards `direct-tcpip` channels (what `ssh -J` and `-L` open) to sockets the [`Backend`]
//! opens. It has no shell: sessions, X11 and remote forwards are refused.
//!
//! Every attempt is handed to [`Backend::record`] once: a refused certificate or key (with its
//! reason), a refused or finished channel (with bytes each way and duration), and a connection
//! that ended without any credential reaching the policy. russh refuses a certificate outside
//! its validity window or with a bad signature before the gate is asked, so such a connection
//! is recorded with the code `no-acceptable-credential`.
//!
//! Each authenticated connection is a live session ([`Gate::sessions`]) until it ends or
//! [`Gate::kill`] ends it; its channels' bytes are counted as they flow.

use crate::policy::{check, Expect};
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, MethodKind, MethodSet};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        err: std::io::Error,
    },
}

/// Who a certificate the policy passed speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account whose CA signed the certificate.
    pub account: String,
    /// The certificate's key id (the daemon writes `ACCOUNT/ACCESS_KEY_ID`).
    pub key_id: String,
    pub serial: u64,
    /// The login name on the bastion, one of the certificate's principals.
    pub user: String,
}

/// One attempt, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account, when a CA was recognised.
    pub account: Option<String>,
    /// `cert:SERIAL key-id` or `key:SHA256:…`.
    pub credential: String,
    pub source: String,
    /// `HOST:PORT` for a channel; empty for a login attempt.
    pub target: String,
    pub allowed: bool,
    /// A refusal code (`expired`, `unknown-ca`, `grant`, …) and its message; `ok` when allowed.
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration: Duration,
}

/// What the gate asks of the daemon.
pub trait Backend: Send + Sync + 'static {
    /// The account whose SSH user CA has this `SHA256:…` fingerprint.
    fn authority(&self, ca_fingerprint: &str) -> Option<String>;
    /// Checks `who` may reach `host:port` and opens the connection from where the target's
    /// network allows; `Err` carries a refusal code and message (`grant: …`).
    fn open<'a>(
        &'a self,
        who: &'a Identity,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, String>>;
    fn record(&self, attempt: Attempt);
    /// The identity a registered plain public key (`SHA256:…`) speaks for, as
    /// `(account, key id)`; `Err` carries the refusal code and message. By default no plain key
    /// is registered.
    fn key_owner(&self, fingerprint: &str) -> Result<(String, String), String> {
        let _ = fingerprint;
        Err("unregistered-key: plain public keys are not registered with the bastion".into())
    }
}

/// A live session: one authenticated connection, as `spindle ssh sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `s-` and 16 hex digits.
    pub id: String,
    pub identity: Identity,
    /// The client's `address:port`.
    pub source: String,
    /// `HOST:PORT` of each channel open now.
    pub targets: Vec<String>,
    /// Unix seconds.
    pub started: u64,
    /// Bytes client → targets and back, over every channel so far.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What a connection shares with its channels' copy tasks and with [`Gate::kill`].
#[derive(Default)]
struct Shared {
    up: AtomicU64,
    down: AtomicU64,
    targets: Mutex<Vec<String>>,
    /// Who ended the session, when it was killed.
    killed_by: Mutex<Option<String>>,
    kill: Notify,
}

/// The live sessions by id.
#[derive(Default)]
struct Registry {
    live: Mutex<BTreeMap<String, (SessionInfo, Arc<Shared>)>>,
}

impl Registry {
    fn snapshot(info: &SessionInfo, shared: &Shared) -> SessionInfo {
        SessionInfo {
            targets: shared.targets.lock().unwrap().clone(),
            bytes_up: shared.up.load(Ordering::Relaxed),
            bytes_down: shared.down.load(Ordering::Relaxed),
            ..info.clone()
        }
    }
}

/// A running jump host; dropping it leaves it running, [`Gate::stop`] ends it.
pub struct Gate {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    registry: Arc<Registry>,
}

impl Gate {
    /// Listens on `addr` and serves until stopped.
    pub async fn start(
        addr: &str,
        host_key: PrivateKey,
        backend: Arc<dyn Backend>,
    ) -> Result<Gate, GateError> {
        let listen_err = |err| GateError::Listen {
            addr: addr.to_string(),
            err,
        };
        let listener = TcpListener::bind(addr).await.map_err(listen_err)?;
        let local_addr = listener.local_addr().map_err(listen_err)?;
        let config = Arc::new(russh::server::Config {
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            // Refusals still take a fixed minimum time, so timing says little about why.
            auth_rejection_time: Duration::from_millis(100),
            auth_rejection_time_initial: Some(Duration::from_millis(0)),
            keys: vec![host_key],
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(60)),
            nodelay: true,
            ..Default::default()
        });
        let (stop, mut stopped) = watch::channel(false);
        let registry = Arc::new(Registry::default());
        let reg = registry.clone();
        tokio::spawn(async move {
            loop {
                let (sock, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "bastion accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stopped.changed() => return,
                };
                let _ = sock.set_nodelay(true);
                let shared = Arc::new(Shared::default());
                let handler = Conn::new(backend.clone(), peer, reg.clone(), shared.clone());
                let config = config.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    match russh::server::run_stream(config, sock, handler).await {
                        Ok(session) => {
                            let handle = session.handle();
                            tokio::pin!(session);
                            tokio::select! {
                                r = &mut session => if let Err(e) = r {
                                    tracing::debug!(error = %e, %peer, "bastion session ended");
                                },
                                _ = stopped.changed() => {
                                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "bastion stopping".into(), "en".into()).await;
                                }
                                _ = shared.kill.notified() => {
                                    let by = shared.killed_by.lock().unwrap().clone().unwrap_or_default();
                                    let _ = handle.disconnect(russh::Disconnect::ByApplication, format!("session killed by {by}"), "en".into()).await;
                                    // Let the disconnect reach the client, then drop the connection.
                                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut session).await;
                                }
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, %peer, "bastion handshake failed"),
                    }
                });
            }
        });
        Ok(Gate {
            local_addr,
            stop,
            registry,
        })
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The live sessions, oldest first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let live = self.registry.live.lock().unwrap();
        let mut all: Vec<SessionInfo> = live
            .values()
            .map(|(info, shared)| Registry::snapshot(info, shared))
            .collect();
        all.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        all
    }

    /// Ends session `id` (its connection, with every channel), saying `by` killed it; the
    /// session as it was, or `None` when no such session is live.
    pub fn kill(&self, id: &str, by: &str) -> Option<SessionInfo> {
        let live = self.registry.live.lock().unwrap();
        let (info, shared) = live.get(id)?;
        *shared.killed_by.lock().unwrap() = Some(by.to_string());
        shared.kill.notify_one();
        Some(Registry::snapshot(info, shared))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One client connection.
struct Conn {
    backend: Arc<dyn Backend>,
    peer: SocketAddr,
    identity: Option<Identity>,
    /// Whether a certificate reached the policy (else the drop records why none did).
    judged: bool,
    started: Instant,
    registry: Arc<Registry>,
    shared: Arc<Shared>,
    /// The session's id once a credential is accepted.
    session: Option<String>,
    /// How the accepted credential is written in records: `cert:SERIAL KEY-ID` or
    /// `key:SHA256:… KEY-ID`.
    credential: String,
}

impl Conn {
    fn new(
        backend: Arc<dyn Backend>,
        peer: SocketAddr,
        registry: Arc<Registry>,
        shared: Arc<Shared>,
    ) -> Conn {
        Conn {
            backend,
            peer,
            identity: None,
            judged: false,
            started: Instant::now(),
            registry,
            shared,
            session: None,
            credential: String::new(),
        }
    }

    /// Accepts `who`: the connection becomes a live session.
    fn accept(&mut self, who: Identity) {
        let id = format!("s-{:016x}", rand::random::<u64>());
        let info = SessionInfo {
            id: id.clone(),
            identity: who.clone(),
            source: self.peer.to_string(),
            targets: Vec::new(),
            started: unix_now(),
            bytes_up: 0,
            bytes_down: 0,
        };
        self.registry
            .live
            .lock()
            .unwrap()
            .insert(id.clone(), (info, self.shared.clone()));
        self.identity = Some(who);
        self.session = Some(id);
    }

    fn refuse_login(&self, account: Option<String>, credential: String, reason: String) {
        self.backend.record(Attempt {
            account,
            credential,
            source: self.peer.to_string(),
            target: String::new(),
            allowed: false,
            reason,
            bytes_up: 0,
            bytes_down: 0,
            duration: self.started.elapsed(),
        });
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(id) = &self.session {
            self.registry.live.lock().unwrap().remove(id);
        }
        if self.identity.is_none() && !self.judged {
            self.backend.record(Attempt {
                account: None,
                credential: String::new(),
                source: self.peer.to_string(),
                target: String::new(),
                allowed: false,
                reason: "no-acceptable-credential: no certificate reached the policy (the SSH \
                         layer refuses one outside its validity window or with a bad signature \
                         first)"
                    .into(),
                bytes_up: 0,
                bytes_down: 0,
                duration: self.started.elapsed(),
            });
        }
    }
}

fn cert_credential(cert: &Certificate) -> String {
    format!("cert:{} {}", cert.serial(), cert.key_id())
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        if !crate::ca::algorithm_accepted(&key.algorithm()) {
            self.refuse_login(
                None,
                format!("key:{fp}"),
                format!("key-algorithm: {} is not accepted", key.algorithm()),
            );
            return Ok(Auth::reject());
        }
        match self.backend.key_owner(&fp) {
            Ok((account, key_id)) => {
                self.judged = true;
                self.credential = format!("key:{fp} {key_id}");
                self.accept(Identity {
                    account,
                    key_id,
                    serial: 0,
                    user: user.to_string(),
                });
                Ok(Auth::Accept)
            }
            Err(reason) => {
                self.refuse_login(None, format!("key:{fp}"), reason);
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let ca = cert
            .signature_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let account = self.backend.authority(&ca);
        let trusted: Vec<String> = account.iter().map(|_| ca.clone()).collect();
        let verdict = check(
            cert,
            &Expect {
                trusted_cas: &trusted,
                user,
                now: unix_now(),
                peer: Some(self.peer.ip()),
            },
        );
        match (verdict, account) {
            (Ok(()), Some(account)) => {
                self.judged = true;
                self.credential = cert_credential(cert);
                self.accept(Identity {
                    account,
                    key_id: cert.key_id().to_string(),
                    serial: cert.serial(),
                    user: user.to_string(),
                });
                Ok(Auth::Accept)
            }
            (Err(r), account) => {
                self.judged = true;
                self.refuse_login(account, cert_credential(cert), format!("{}: {r}", r.code()));
                Ok(Auth::reject())
            }
            (Ok(()), None) => unreachable!("the policy refuses a CA no account trusts"),
        }
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(who) = self.identity.clone() else {
            return Ok(false);
        };
        let started = Instant::now();
        let base = Attempt {
            account: Some(who.account.clone()),
            credential: self.credential.clone(),
            source: self.peer.to_string(),
            target: format!("{host}:{port}"),
            allowed: false,
            reason: String::new(),
            bytes_up: 0,
            bytes_down: 0,
            duration: Duration::ZERO,
        };
        let Ok(port) = u16::try_from(port) else {
            self.backend.record(Attempt {
                reason: "bad-target: port out of range".into(),
                ..base
            });
            return Ok(false);
        };
        match self.backend.open(&who, host, port).await {
            Err(reason) => {
                self.backend.record(Attempt {
                    reason,
                    duration: started.elapsed(),
                    ..base
                });
                Ok(false)
            }
            Ok(upstream) => {
                let backend = self.backend.clone();
                let shared = self.shared.clone();
                let target = base.target.clone();
                shared.targets.lock().unwrap().push(target.clone());
                tokio::spawn(async move {
                    let (cr, cw) = tokio::io::split(channel.into_stream());
                    let (ur, uw) = upstream.into_split();
                    let ((up, e1), (dn, e2)) =
                        tokio::join!(pump(cr, uw, &shared.up), pump(ur, cw, &shared.down));
                    {
                        let mut targets = shared.targets.lock().unwrap();
                        if let Some(i) = targets.iter().position(|t| *t == target) {
                            targets.remove(i);
                        }
                    }
                    let killed = shared.killed_by.lock().unwrap().clone();
                    let reason = match (killed, e1.or(e2)) {
                        (Some(by), _) => format!("ok: session killed by {by}"),
                        (None, None) => "ok".to_string(),
                        (None, Some(e)) => format!("ok: ended by {e}"),
                    };
                    backend.record(Attempt {
                        allowed: true,
                        reason,
                        bytes_up: up,
                        bytes_down: dn,
                        duration: started.elapsed(),
                        ..base
                    });
                });
                Ok(true)
            }
        }
    }
}

/// Copies `from` to `to` until EOF or an error, then shuts `to` down; returns the bytes
/// copied (counted even when the copy ends in an error, and added to `live` as they go) and
/// the error.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    live: &AtomicU64,
) -> (u64, Option<std::io::Error>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let err = loop {
        match from.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => {
                if let Err(e) = to.write_all(&buf[..n]).await {
                    break Some(e);
                }
                total += n as u64;
                live.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => break Some(e),
        }
    };
    let _ = to.shutdown().await;
    (total, err)
}
