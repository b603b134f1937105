//! The Spindle daemon: the REST API, authentication, authorization and the audit log, wired to
//! the engines. **Invariants:** this is the only crate that serves HTTP, and the only place
//! where subsystems are composed; handlers are thin (parse, call one store or engine function,
//! convert); every request passes the audit layer, so no mutating or refused call goes
//! unrecorded.
//!
//! Entry point: [`Server::bind`] then [`Server::serve`].

mod api;
mod app;
mod apt;
mod apt_handlers;
mod asg_handlers;
mod audit;
mod auth;
mod aws;
mod bastion;
mod bastion_host;
mod bastion_keys;
mod bastion_sessions;
mod bootstrap;
mod datadir;
mod devbox_handlers;
mod dns;
mod dns_handlers;
mod engine_state;
mod error;
mod git;
mod git_handlers;
mod git_http;
mod handlers;
mod lb_handlers;
mod metrics;
mod pipeline_handlers;
mod pipeline_logs;
mod pipeline_rerun;
mod pipeline_runner;
mod rds;
mod rds_handlers;
mod runtime_handlers;
mod sealer;
mod secrets;
mod stack_handlers;
mod stack_ops;
mod stacks;
mod ui;
mod vpc_dns;

pub use api::route_table;
pub use bootstrap::{new_admin_credential, NewAdminCredential};
pub use datadir::{DataDir, DataDirError, ServerInfo};
pub use error::ServerError;
pub use stack_handlers::template_report_offline;
pub use stacks::provisionable_types;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the first start writes the admin credential.
    pub credentials_file: PathBuf,
    /// The profile name the admin credential is written under.
    pub admin_profile: String,
    /// Run instances and networks, naming every host object `<prefix>-…`; `None` turns the
    /// runtime off (EC2 resource types are then unsupported). Needs root.
    pub runtime_prefix: Option<String>,
    /// Bind every load balancer's listeners to this address instead of each its own
    /// `127.a.b.c`.
    pub lb_address: Option<std::net::IpAddr>,
    /// Auto scaling's scale-in stabilization ([`spindle_autoscale::Rules::scale_in_seconds`]);
    /// `None`: the default (60 s).
    pub asg_scale_in_seconds: Option<u64>,
    /// The AWS-compatible endpoint's address (`crate::aws`); `None` turns it off.
    pub aws_listen: Option<SocketAddr>,
    /// Whether failing to bind `aws_listen` stops the start (an address the user asked for)
    /// or only warns (the default address, which another daemon on this host may hold).
    pub aws_listen_required: bool,
    /// Where the SSH bastion's jump host listens (`127.0.0.1:2222` from the CLI); `None`: off.
    pub ssh_listen: Option<String>,
    /// Serve the public hosted zones here (UDP and TCP); `None`: no DNS server.
    pub dns_listen: Option<SocketAddr>,
    /// A DNS address that can't be bound is logged and skipped (the default address) rather
    /// than stopping the start (an address asked for).
    pub dns_optional: bool,
}

/// A daemon that holds its data dir and has bound its socket, ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    aws_listener: Option<tokio::net::TcpListener>,
    app: app::App,
    _data_dir: DataDir,
    local_addr: SocketAddr,
    dns: Option<spindle_dns::Bound>,
}

impl Server {
    /// Takes the data dir lock, opens and migrates the database, creates the admin credential
    /// on first start, and binds the listener. Nothing is served yet.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        let started = std::time::Instant::now();
        let boot = time::OffsetDateTime::now_utc();
        let data_dir = DataDir::lock(&config.data_dir)?;
        let store = Arc::new(spindle_store::Store::open(&data_dir.db_path()).map_err(
            |source| ServerError::Store {
                path: data_dir.db_path(),
                source,
            },
        )?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let endpoint = format!("http://{local_addr}");
        let admin_profile = bootstrap::ensure_admin(
            &store,
            &config.credentials_file,
            &config.admin_profile,
            &endpoint,
            data_dir.path(),
            boot,
        )?;
        // Calls whose change committed but whose response a killed daemon never sent.
        let finished = store
            .finish_pending_audit()
            .map_err(|source| ServerError::Store {
                path: data_dir.db_path(),
                source,
            })?;
        if finished > 0 {
            tracing::warn!(
                records = finished,
                "audit records of calls interrupted by a stop finished"
            );
        }
        // The JSON state files of a daemon before schema version 5 move into state.db first.
        engine_state::import_json_files(&store, data_dir.path())?;
        let (runtime, ec2) = open_runtime(config, data_dir.path(), &store)?;
        let elb = spindle_providers::Elb::open_with(
            runtime.as_ref().map(|r| r.as_ref().clone()),
            Some(engine_state::SqlDoc::arc(&store, engine_state::ELBV2)),
            spindle_providers::ElbOptions {
                address: config.lb_address,
                io_threads: 2,
            },
        )
        .map_err(|e| ServerError::Runtime {
            source: Box::new(e),
        })?;
        let route53 = dns::open(&store, &elb)?;
        if let Some(rt) = &runtime {
            vpc_dns::start(rt, route53.catalog());
        }
        let dns = dns::bind(config).await?;
        let apt = apt::AptService::open(store.clone(), data_dir.path(), &endpoint)
            .map_err(|detail| ServerError::Apt { detail })?;
        // Pipeline runs a stopped daemon left running can't finish: say so.
        let interrupted =
            store
                .interrupt_running_runs(app::now())
                .map_err(|source| ServerError::Store {
                    path: data_dir.db_path(),
                    source,
                })?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "pipeline runs interrupted by a stop marked cancelled"
            );
        }
        // Git repositories: what an interrupted create or drop left is removed first.
        spindle_git::Repos::open(&data_dir.path().join("git")).map_err(|e| ServerError::Git {
            detail: api::error_chain(&e),
        })?;
        let mut app = app::App::new(
            store,
            boot,
            &endpoint,
            runtime,
            ec2,
            elb.clone(),
            Arc::new(apt),
            config.asg_scale_in_seconds,
            route53,
        );
        let aws_secrets = data_dir.path().join("aws-secrets.key");
        app.aws_secrets = Some(Arc::new(sealer::Sealer::open(&aws_secrets).map_err(
            |e| ServerError::Bootstrap {
                source: Box::new(e),
            },
        )?));
        let aws_listener = bind_aws(config).await?;
        let aws_endpoint = aws_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| format!("http://{a}"));
        app.aws_endpoint = aws_endpoint.clone();
        // Auto scaling groups register their instances with the target groups, drain them
        // before terminating them and scale on the load balancers' 1-second metrics.
        if let Some(asg) = &app.autoscaling {
            asg.set_load_balancing(spindle_providers::ElbAutoScaling::new(
                elb.clone(),
                tokio::runtime::Handle::current(),
            ));
        }
        if let Some(addr) = &config.ssh_listen {
            app.bastion.start_gate(addr).await;
        }
        // Load balancers come back before stack recovery, which may change them.
        elb.restore().await;
        // Finish what a previous daemon left in progress, in the background: a stack that
        // waits on a long WaitCondition must not keep the API down. Until its recovery ends
        // the stack shows its *_IN_PROGRESS status, and operations on it answer "busy".
        let stacks = app.stacks.clone();
        tokio::spawn(async move { stacks.recover_all().await });
        data_dir.write_info(&ServerInfo {
            pid: std::process::id(),
            endpoint: endpoint.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            admin_profile,
            aws_endpoint,
            dns: dns.as_ref().map(|d| d.local_addr().to_string()),
        })?;
        tracing::info!(%endpoint, data_dir = %config.data_dir.display(), startup_ms = started.elapsed().as_millis() as u64, "spindle server listening");
        Ok(Self {
            listener,
            aws_listener,
            app,
            _data_dir: data_dir,
            local_addr,
            dns,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let controller = self
            .app
            .autoscaling
            .clone()
            .map(asg_handlers::spawn_controller);
        // One shutdown for both listeners: the AWS endpoint stops when the API does.
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let aws = self.aws_listener.map(|l| {
            let router = aws::router(self.app.clone());
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(l, router).with_graceful_shutdown(stop).await {
                    tracing::error!(error = %e, "the AWS-compatible endpoint failed");
                }
            })
        });
        let bastion = self.app.bastion.clone();
        let pipelines = pipeline_runner::spawn(self.app.clone());
        let runtime = self.app.runtime.clone();
        // The DNS server's tasks stop when this is dropped, after the API has stopped.
        let _dns = self.dns.map(|d| d.serve(self.app.route53.catalog()));
        let router = api::router(self.app);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        let _ = stop_tx.send(true);
        if let Some(task) = aws {
            let _ = task.await;
        }
        served.map_err(|source| ServerError::Serve { source })?;
        if let Some(c) = controller {
            c.abort();
        }
        bastion.stop_gate();
        pipelines
            .stop(runtime.as_deref(), std::time::Duration::from_secs(10))
            .await;
        tracing::info!("spindle server stopped");
        Ok(())
    }
}

/// Binds the AWS-compatible endpoint's listener. The default address may be held by another
/// daemon on this host: then the endpoint is off, with a warning.
async fn bind_aws(config: &ServerConfig) -> Result<Option<tokio::net::TcpListener>, ServerError> {
    let Some(addr) = config.aws_listen else {
        return Ok(None);
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) if config.aws_listen_required => Err(ServerError::Bind { addr, source }),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the AWS-compatible endpoint is off: its default address is taken (pass --aws-listen ADDR)");
            Ok(None)
        }
    }
}

/// Opens the instance runtime and the EC2 providers over it, when configured and root.
#[allow(clippy::type_complexity)]
fn open_runtime(
    config: &ServerConfig,
    data_dir: &std::path::Path,
    store: &Arc<spindle_store::Store>,
) -> Result<
    (
        Option<Arc<spindle_runtime::Runtime>>,
        Option<Arc<spindle_providers::Ec2>>,
    ),
    ServerError,
> {
    let Some(prefix) = &config.runtime_prefix else {
        return Ok((None, None));
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        tracing::warn!(
            "not running as root: instances and networks are off (EC2 resource types unsupported)"
        );
        return Ok((None, None));
    }
    let dir = data_dir.join("runtime");
    let rt = spindle_runtime::Runtime::open_with(
        spindle_runtime::RuntimeConfig::new(&dir, prefix),
        Arc::new(spindle_runtime::RealKernel),
        engine_state::SqlDoc::arc(store, engine_state::RUNTIME),
    )
    .map_err(|e| ServerError::Runtime {
        source: Box::new(e),
    })?;
    let ec2 = spindle_providers::Ec2::open_with(
        rt.clone(),
        Some(engine_state::SqlDoc::arc(store, engine_state::EC2)),
    )
    .map_err(|e| ServerError::Runtime {
        source: Box::new(e),
    })?;
    Ok((Some(Arc::new(rt)), Some(ec2)))
}

/// Resolves when the process gets SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stopping only on SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
