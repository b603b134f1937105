//! [`LoadBalancer`]: owns listeners, target groups and health checks, and applies configs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{self, Action, LbConfig, ListenerConfig, ListenerProtocol};
use crate::error::{ApplyError, ConfigError};
use crate::metrics::{Registry, SeriesSnapshot};
use crate::proxy::{
    self, AccessLog, ConnInfo, Gate, GateLoad, GroupRt, ListenerRt, RouteAction, RouteRule, Shared,
    State,
};
use crate::scheduler::Scheduler;
use crate::target::{spawn_health_checks, DrainWatch, HealthState, TargetRt};
use crate::upstream::{TcpConnector, UpstreamConnector};

/// Options fixed for the life of a load balancer.
pub struct LbOptions {
    /// Name used in metric labels (the ALB name or ARN).
    pub name: String,
    /// Opens connections to targets.
    pub connector: Arc<dyn UpstreamConnector>,
    /// Receives one entry per request.
    pub access_log: Option<Arc<dyn AccessLog>>,
    /// Seconds of metrics history kept per series.
    pub metrics_seconds: usize,
    /// Threads dedicated to client connections, each with its own single-threaded runtime and
    /// its own share of the upstream pools, so a request never hops threads. Accepted
    /// connections are dealt to them in turn. Zero serves connections on the runtime that
    /// created the load balancer.
    pub io_threads: usize,
}

impl LbOptions {
    /// Options with plain TCP to targets, no access log and 60 s of metrics.
    pub fn new(name: impl Into<String>) -> Self {
        LbOptions {
            name: name.into(),
            connector: Arc::new(TcpConnector),
            access_log: None,
            metrics_seconds: 60,
            io_threads: 0,
        }
    }
}

/// A target's state as `describe-target-health` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TargetHealth {
    /// Target group name.
    pub target_group: String,
    /// Target address.
    pub target: SocketAddr,
    /// State.
    pub state: HealthState,
    /// Requests in flight to it.
    pub in_flight: u32,
}

struct ListenerHandle {
    addr: SocketAddr,
    bind: SocketAddr,
    tls: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A thread running a single-threaded runtime for client connections.
struct IoThread {
    handle: tokio::runtime::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A running load balancer. Dropping it stops its listeners, connections and health checks.
pub struct LoadBalancer {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    io: Vec<IoThread>,
    apply_lock: Mutex<()>,
    listeners: Mutex<HashMap<String, ListenerHandle>>,
    shutdown: watch::Sender<bool>,
    applied: Mutex<Option<(u64, LbConfig)>>,
}

impl LoadBalancer {
    /// A load balancer with nothing configured. Must be called inside a Tokio runtime; its
    /// tasks run on that runtime.
    pub fn new(opts: LbOptions) -> Self {
        let registry = Arc::new(Registry::new(opts.metrics_seconds));
        let state = State {
            listeners: HashMap::new(),
            groups: HashMap::new(),
            client: config::ClientSettings::default(),
            tls: HashMap::new(),
        };
        let shutdown = watch::channel(false).0;
        let io = (0..opts.io_threads)
            .filter_map(|i| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                let handle = rt.handle().clone();
                let mut stop = shutdown.subscribe();
                let thread = std::thread::Builder::new()
                    .name(format!("lb-io-{i}"))
                    .spawn(move || {
                        crate::upstream::set_shard(i);
                        rt.block_on(async move {
                            let _ = stop.changed().await;
                        });
                    })
                    .ok()?;
                Some(IoThread {
                    handle,
                    thread: Some(thread),
                })
            })
            .collect();
        LoadBalancer {
            shared: Arc::new(Shared {
                lb_name: opts.name,
                state: ArcSwap::from_pointee(state),
                connector: opts.connector,
                access_log: opts.access_log,
                registry,
            }),
            handle: tokio::runtime::Handle::current(),
            io,
            apply_lock: Mutex::new(()),
            listeners: Mutex::new(HashMap::new()),
            shutdown,
            applied: Mutex::new(None),
        }
    }

    /// The generation applied last, if any.
    pub fn generation(&self) -> Option<u64> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|a| a.0)
    }

    /// Replaces the whole configuration. Refuses a generation older than the applied one (an
    /// equal generation with the same config is a no-op), an invalid config (listing every
    /// error) and listeners that can't bind; on refusal nothing changes. Targets that left a
    /// target group drain: they get no new requests and are dropped once their in-flight
    /// requests end or the deregistration delay passes.
    pub fn apply(&self, cfg: LbConfig, generation: u64) -> Result<(), ApplyError> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((current, applied)) = &*self.applied.lock().unwrap_or_else(|e| e.into_inner()) {
            if generation < *current || (generation == *current && applied != &cfg) {
                return Err(ApplyError::StaleGeneration {
                    current: *current,
                    offered: generation,
                });
            }
            if generation == *current {
                return Ok(());
            }
        }
        let mut errors = config::validate(&cfg);
        let mut tls = HashMap::new();
        for l in &cfg.listeners {
            if let ListenerProtocol::Https { cert_pem, key_pem } = &l.protocol {
                match tls_config(&l.name, cert_pem, key_pem) {
                    Ok(c) => {
                        tls.insert(l.name.clone(), Arc::new(c));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApplyError::Invalid(errors));
        }
        let _enter = self.handle.enter();

        // Bind new listeners first, so a bind failure leaves everything as it was.
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = HashMap::new();
        for l in &cfg.listeners {
            let https = matches!(l.protocol, ListenerProtocol::Https { .. });
            if let Some(h) = listeners.get(&l.name) {
                if h.bind == l.bind && h.tls == https {
                    continue;
                }
            }
            let bound = bind(l.bind).map_err(|source| ApplyError::Bind {
                listener: l.name.clone(),
                addr: l.bind,
                source,
            });
            match bound {
                Ok(s) => {
                    fresh.insert(l.name.clone(), (s, https));
                }
                Err(e) => {
                    // Rebinding the same address after the old listener stops is a later
                    // apply's job; here nothing changed yet.
                    return Err(e);
                }
            }
        }

        let old = self.shared.state.load_full();
        let state = self.build_state(&cfg, &old, tls);
        self.shared.state.store(Arc::new(state));

        // Stop listeners that went away or changed, start the fresh ones.
        let keep: HashMap<&str, &ListenerConfig> =
            cfg.listeners.iter().map(|l| (l.name.as_str(), l)).collect();
        listeners.retain(|name, h| {
            let stays = keep
                .get(name.as_str())
                .is_some_and(|l| !fresh.contains_key(&l.name));
            if !stays {
                h.tasks.iter().for_each(|t| t.abort());
            }
            stays
        });
        for (name, (sock, https)) in fresh {
            let bind_addr = keep[name.as_str()].bind;
            let _enter = self.handle.enter();
            let sock = match TcpListener::from_std(sock) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(listener = %name, error = %e, "listener could not join the runtime");
                    continue;
                }
            };
            let addr = sock.local_addr().unwrap_or(bind_addr);
            let tasks = vec![self.handle.spawn(accept_loop(
                self.shared.clone(),
                sock,
                name.clone(),
                https,
                self.shutdown.subscribe(),
                self.io.iter().map(|t| t.handle.clone()).collect(),
            ))];
            listeners.insert(
                name,
                ListenerHandle {
                    addr,
                    bind: bind_addr,
                    tls: https,
                    tasks,
                },
            );
        }
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, cfg));
        Ok(())
    }

    fn build_state(
        &self,
        cfg: &LbConfig,
        old: &State,
        tls: HashMap<String, Arc<rustls::ServerConfig>>,
    ) -> State {
        let mut groups = HashMap::new();
        for tg in &cfg.target_groups {
            let prev = old.groups.get(&tg.name);
            let mut targets = Vec::new();
            for &addr in &tg.targets {
                let existing = prev
                    .and_then(|p| p.targets.iter().find(|t| t.addr == addr))
                    .cloned();
                let t = match existing {
                    Some(t) => {
                        let hc_changed = *t.health_config.load_full() != tg.health_check;
                        if hc_changed {
                            t.health_config.store(Arc::new(tg.health_check.clone()));
                            t.stop_health_checks();
                            if !tg.health_check.enabled {
                                t.set_state(HealthState::Healthy);
                            }
                            spawn_health_checks(
                                &self.handle,
                                t.clone(),
                                self.shared.connector.clone(),
                            );
                        }
                        t
                    }
                    None => {
                        let addr_s = addr.to_string();
                        let series = self.shared.registry.series(&[
                            ("lb", &self.shared.lb_name),
                            ("target_group", &tg.name),
                            ("target", &addr_s),
                        ]);
                        let t = Arc::new(TargetRt::new_sharded(
                            self.io.len().max(1),
                            addr,
                            tg.health_check.clone(),
                            tg.max_idle_per_target,
                            series,
                        ));
                        spawn_health_checks(&self.handle, t.clone(), self.shared.connector.clone());
                        t
                    }
                };
                targets.push(t);
            }
            // Each target keeps its scheduler (and the limit it learnt) across applies that
            // leave the scheduler settings alone.
            let gates = match &tg.isolation {
                None => Vec::new(),
                Some(iso) => targets
                    .iter()
                    .map(|t| {
                        prev.and_then(|p| {
                            let i = p.targets.iter().position(|pt| pt.addr == t.addr)?;
                            p.gates.get(i).filter(|g| g.config() == iso.scheduler)
                        })
                        .cloned()
                        .unwrap_or_else(|| {
                            Arc::new(Gate::new(Scheduler::new(iso.scheduler.clone())))
                        })
                    })
                    .collect(),
            };
            let group = GroupRt::new(tg.clone(), targets, gates);
            if let Some(p) = prev {
                let mut draining = group.draining.lock().unwrap_or_else(|e| e.into_inner());
                // A target whose drain ended while this state was being built is left out
                // here: its drain task cleaned the state that was current then, not this one.
                draining.extend(
                    p.draining
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .filter(|d| !d.is_drained())
                        .cloned(),
                );
                for t in &p.targets {
                    if !tg.targets.contains(&t.addr) {
                        draining.push(t.clone());
                        self.drain(t.clone(), tg.deregistration_delay);
                    }
                }
                draining.retain(|d| !tg.targets.contains(&d.addr));
            }
            groups.insert(tg.name.clone(), Arc::new(group));
        }
        // Target groups that disappeared drain all their targets.
        for (name, g) in &old.groups {
            if !groups.contains_key(name) {
                for t in &g.targets {
                    self.drain(t.clone(), g.cfg.deregistration_delay);
                }
            }
        }
        let listeners = cfg
            .listeners
            .iter()
            .map(|l| {
                let compile = |a: &Action| compile_action(a, &groups);
                let mut rules: Vec<_> = l.rules.iter().collect();
                rules.sort_by_key(|r| r.priority);
                let rt = ListenerRt {
                    name: l.name.clone(),
                    rules: rules
                        .into_iter()
                        .map(|r| RouteRule {
                            conditions: r.conditions.clone(),
                            action: compile(&r.action),
                        })
                        .collect(),
                    default_action: compile(&l.default_action),
                };
                (l.name.clone(), Arc::new(rt))
            })
            .collect();
        State {
            listeners,
            groups,
            client: cfg.client.clone(),
            tls,
        }
    }

    fn drain(&self, t: Arc<TargetRt>, delay: Duration) {
        t.start_draining();
        let shared = self.shared.clone();
        self.handle.spawn(async move {
            t.drain(delay).await;
            // Forget it in whichever group still lists it as draining. An apply building a
            // new state right now may copy it once more; `is_drained` hides it there and
            // the next apply drops it.
            for g in shared.state.load().groups.values() {
                g.draining
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|d| !Arc::ptr_eq(d, &t));
            }
        });
    }

    /// The address a listener is bound to (useful with port 0).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|h| h.addr)
    }

    /// Health of every registered and draining target.
    pub fn target_health(&self) -> Vec<TargetHealth> {
        let state = self.shared.state.load();
        let mut out = Vec::new();
        let mut names: Vec<_> = state.groups.keys().collect();
        names.sort();
        for name in names {
            let g = &state.groups[name];
            let draining = g.draining.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let draining = draining.iter().filter(|t| !t.is_drained());
            for t in g.targets.iter().chain(draining) {
                out.push(TargetHealth {
                    target_group: name.clone(),
                    target: t.addr,
                    state: t.state(),
                    in_flight: t.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                });
            }
        }
        out
    }

    /// A watch on the end of a deregistered target's draining; `None` when the group lists no
    /// draining target at `addr` (it finished draining, or was never removed).
    pub fn drain_watch(&self, target_group: &str, addr: SocketAddr) -> Option<DrainWatch> {
        let state = self.shared.state.load();
        let g = state.groups.get(target_group)?;
        let draining = g.draining.lock().unwrap_or_else(|e| e.into_inner());
        draining
            .iter()
            .find(|t| t.addr == addr && !t.is_drained())
            .map(|t| t.drain_watch())
    }

    /// The concurrency limits and in-flight counts of a target group's tenant schedulers,
    /// summed over its registered targets; `None` without tenant isolation.
    pub fn tenant_limit(&self, target_group: &str) -> Option<(u32, u32)> {
        let loads = self.target_loads(target_group)?;
        Some(
            loads
                .iter()
                .fold((0, 0), |(l, f), (_, g)| (l + g.limit, f + g.in_flight)),
        )
    }

    /// Each registered target's admission (limit, in flight, queued) in a target group with
    /// tenant isolation; `None` when the group has none.
    pub fn target_loads(&self, target_group: &str) -> Option<Vec<(SocketAddr, GateLoad)>> {
        let state = self.shared.state.load();
        let g = state.groups.get(target_group)?;
        g.cfg.isolation.as_ref()?;
        Some(
            g.targets
                .iter()
                .zip(&g.gates)
                .map(|(t, gate)| (t.addr, gate.load()))
                .collect(),
        )
    }

    /// One completed second of a target group's traffic, over all its targets (those
    /// registered now and those removed since), with percentiles of all its requests.
    pub fn group_second(
        &self,
        target_group: &str,
        unix_second: u64,
    ) -> Option<crate::metrics::SecondSnapshot> {
        let series = self.shared.registry.matching(|l| {
            l.get("target_group").map(String::as_str) == Some(target_group)
                && l.contains_key("target")
        });
        crate::metrics::merged_second(&series, unix_second)
    }

    /// Per-target and per-tenant metrics: the last seconds of each series.
    pub fn metrics(&self) -> Vec<SeriesSnapshot> {
        self.shared.registry.snapshot()
    }

    /// The same metrics in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        crate::metrics::render_prometheus("spindle_lb", &self.metrics())
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &mut self.io {
            if let Some(th) = t.thread.take() {
                // The thread ends as soon as it sees the shutdown signal; joining it here would
                // block a runtime thread if the LB is dropped inside one, so it is detached.
                drop(th);
            }
        }
        for (_, h) in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            h.tasks.iter().for_each(|t| t.abort());
        }
        let state = self.shared.state.load();
        for g in state.groups.values() {
            for t in g
                .targets
                .iter()
                .chain(g.draining.lock().unwrap_or_else(|e| e.into_inner()).iter())
            {
                t.stop_health_checks();
                t.pool.clear();
            }
        }
    }
}

fn compile_action(a: &Action, groups: &HashMap<String, Arc<GroupRt>>) -> RouteAction {
    match a {
        Action::Forward { target_group } => match groups.get(target_group) {
            Some(g) => RouteAction::Forward(g.clone()),
            // Validation guarantees the group exists; answer 503 rather than panic anyway.
            None => RouteAction::Fixed {
                status: StatusCode::SERVICE_UNAVAILABLE,
                content_type: HeaderValue::from_static("text/plain"),
                body: Bytes::from_static(b"no such target group\n"),
            },
        },
        Action::FixedResponse {
            status,
            content_type,
            body,
        } => RouteAction::Fixed {
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            content_type: HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("text/plain")),
            body: Bytes::from(body.clone()),
        },
        Action::Redirect {
            protocol,
            host,
            port,
            path,
            query,
            status,
        } => RouteAction::Redirect {
            protocol: protocol.clone(),
            host: host.clone(),
            port: port.clone(),
            path: path.clone(),
            query: query.clone(),
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
        },
    }
}

/// Binds a listening socket.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

fn tls_config(
    listener: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, ConfigError> {
    let bad = |reason: String| ConfigError::BadPem {
        listener: listener.into(),
        reason,
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the certificate PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| bad(format!("key PEM: {e}")))?
        .ok_or_else(|| bad("no private key in the key PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| bad(format!("private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing);
    certified
        .keys_match()
        .map_err(|_| ConfigError::CertKeyMismatch {
            listener: listener.into(),
        })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

async fn accept_loop(
    shared: Arc<Shared>,
    sock: TcpListener,
    name: String,
    https: bool,
    mut shutdown: watch::Receiver<bool>,
    io: Vec<tokio::runtime::Handle>,
) {
    let local_port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            r = sock.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnInfo::new(name.clone(), peer, local_port, https));
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        if io.is_empty() {
            tokio::spawn(async move {
                tokio::select! {
                    _ = serve(shared, conn, stream) => {}
                    _ = shutdown.changed() => {}
                }
            });
            continue;
        }
        // Hand connections to the I/O threads in turn (SO_REUSEPORT hashing would leave them
        // uneven with few long-lived connections). The socket moves to that thread's reactor.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        next = next.wrapping_add(1);
        io[next % io.len()].spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return;
            };
            tokio::select! {
                _ = serve(shared, conn, stream) => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve(shared: Arc<Shared>, conn: Arc<ConnInfo>, stream: tokio::net::TcpStream) {
    let state = shared.state.load_full();
    let client = state.client.clone();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(client.header_read_timeout)
        .max_buf_size(client.max_header_bytes.max(8192))
        // Small heads and bodies: one copy into the write buffer beats a writev of pieces.
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(client.max_header_bytes.min(u32::MAX as usize) as u32)
        .keep_alive_interval(Some(client.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    let svc_shared = shared.clone();
    let svc_conn = conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        proxy::handle(svc_shared.clone(), svc_conn.clone(), req)
    });
    if conn.https {
        let Some(tls) = state.tls.get(&conn.listener).cloned() else {
            return;
        };
        drop(state);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let Ok(Ok(tls_stream)) =
            tokio::time::timeout(client.header_read_timeout, acceptor.accept(stream)).await
        else {
            return;
        };
        let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls_stream);
        let builder = if h2 {
            builder.http2_only()
        } else {
            builder.http1_only()
        };
        let _ = builder.serve_connection(io, svc).await;
    } else {
        drop(state);
        let builder = if client.h2c {
            builder
        } else {
            builder.http1_only()
        };
        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
    }
}
