//! `spindle server`: the daemon in the foreground.

use crate::cli::{DaemonArgs, Global, Listen, LogFormat, ServerArgs};
use anyhow::{Context as _, Result};
use spindle_client::CredentialsFile;
use spindle_server::{Server, ServerConfig};
use std::path::PathBuf;

/// `/var/lib/spindle` as root; `$XDG_STATE_HOME/spindle` or `~/.local/state/spindle` otherwise.
pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/spindle");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("spindle");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/spindle")
}

pub fn data_dir(args: &DaemonArgs) -> PathBuf {
    args.data_dir.clone().unwrap_or_else(default_data_dir)
}

pub fn run(args: &ServerArgs, global: &Global) -> Result<()> {
    if args.new_admin_credential {
        return new_admin_credential(args, global);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPINDLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let config = ServerConfig {
        listen: args.daemon.listen,
        data_dir: data_dir(&args.daemon),
        credentials_file: credentials_file(global)?,
        admin_profile: global.profile.clone(),
        runtime_prefix: (!args.no_runtime).then(|| args.runtime_prefix.clone()),
        lb_address: args.lb_address,
        asg_scale_in_seconds: args.asg_scale_in_seconds,
        aws_listen: match args.aws_listen {
            None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 4566))),
            Some(Listen::Off) => None,
            Some(Listen::At(a)) => Some(a),
        },
        aws_listen_required: args.aws_listen.is_some(),
        ssh_listen: match args.ssh_listen {
            Listen::Off => None,
            Listen::At(a) => Some(a.to_string()),
        },
        dns_listen: (!args.no_dns).then(|| {
            args.dns_listen
                .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 5353)))
        }),
        dns_optional: args.dns_listen.is_none(),
    };
    // Key derivation allocates 19 MiB at a time. A fixed mmap threshold makes glibc hand such
    // blocks back to the kernel when freed, instead of keeping them in the heap, so an idle
    // daemon stays small after creating keys.
    // glibc also gives each new thread its own arena (up to 8 per core), and every arena
    // keeps the memory freed in it: requests run on many blocking-pool threads, so the
    // long-lived apt catalog and index caches end up spread over many half-empty arenas. Two
    // arenas (one per core of the machines Spindle targets) took the 20k-package apt bench's
    // daemon peak from 108-110 MiB to 92-98 MiB (three runs each).
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Two workers match the machines Spindle targets; the API's work is short.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = rt.block_on(async {
        let server = Server::bind(&config).await?;
        server.serve(spindle_server::shutdown_signal()).await
    });
    shut_down(rt);
    served?;
    Ok(())
}

/// How long the daemon waits, once it stopped serving, for work it handed to blocking threads
/// (an instance's stop, a health probe) before it exits anyway. Everything it stores is
/// committed in transactions and intents, so what is cut short is finished or undone at the
/// next start, as after a crash.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Drops the tasks still spawned and waits for blocking work, at most [`SHUTDOWN_GRACE`]; says
/// so in the log when that took long, so a slow exit is visible instead of a silent wait.
fn shut_down(rt: tokio::runtime::Runtime) {
    let started = std::time::Instant::now();
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    let took = started.elapsed();
    if took >= SHUTDOWN_GRACE {
        tracing::warn!(
            waited_ms = took.as_millis() as u64,
            "background work still running at exit was abandoned; the next start finishes or undoes it"
        );
    } else if took >= std::time::Duration::from_secs(1) {
        tracing::info!(
            waited_ms = took.as_millis() as u64,
            "background work finished"
        );
    }
}

fn credentials_file(global: &Global) -> Result<PathBuf> {
    Ok(match &global.credentials_file {
        Some(p) => p.clone(),
        None => CredentialsFile::default_path()?,
    })
}

/// `spindle server --new-admin-credential`: the documented way back in. Whoever may read the
/// data dir can sign as the admin anyway (the database holds the derived keys), so the bar is
/// the same: root, or the data dir's owner, on its host.
fn new_admin_credential(args: &ServerArgs, global: &Global) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = data_dir(&args.daemon);
    // A missing data dir is reported by the server crate as no installation.
    let owner = match std::fs::metadata(&dir) {
        Ok(meta) => Some(meta.uid()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the data dir `{}`", dir.display()))
        }
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && owner.is_some_and(|uid| uid != euid) {
        anyhow::bail!(
            "--new-admin-credential: run it as root (or as the owner of `{}`) on the daemon's host",
            dir.display()
        );
    }
    let made =
        spindle_server::new_admin_credential(&dir, &credentials_file(global)?, &global.profile)?;
    println!(
        "Wrote a new admin credential {} for {} to {} as profile [{}]; no other key was revoked.",
        made.access_key_id,
        dir.display(),
        made.credentials_file.display(),
        made.profile
    );
    if made.profile != global.profile {
        println!(
            "Profile [{}] holds another credential and was left as it was: use --profile {}.",
            global.profile, made.profile
        );
    }
    Ok(())
}
