use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    #[error("cannot open the state database `{}`", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: spindle_store::StoreError,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no Spindle installation in `{}`: no daemon has started on this data dir", path.display())]
    NoInstallation { path: PathBuf },
    #[error("cannot create the admin credential")]
    Bootstrap {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start the instance runtime (pass --no-runtime to run without it)")]
    Runtime {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot move the state file `{}` into the state database: {detail}", path.display())]
    StateImport { path: PathBuf, detail: String },
    #[error("cannot open the apt repository store: {detail}")]
    Apt { detail: String },
    #[error("cannot open the git repositories: {detail}")]
    Git { detail: String },
    #[error("cannot serve DNS on {addr} (choose another with --dns-listen, or --no-dns)")]
    DnsBind {
        addr: SocketAddr,
        #[source]
        source: spindle_dns::DnsError,
    },
    #[error("cannot open the hosted zones")]
    Dns {
        #[source]
        source: spindle_stack::ProviderError,
    },
    #[error("the HTTP server failed")]
    Serve {
        #[source]
        source: std::io::Error,
    },
}
