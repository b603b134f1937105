//! `spindle ssh`: short-lived certificates from the account's SSH CA, an `~/.ssh/config` block
//! for the bastion, and `spindle ssh INSTANCE [-- CMD]`, which runs the user's own `ssh`
//! through the bastion (`ProxyJump`).

use crate::context::{api_err, hinted, parse_duration, Context};
use crate::output;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use spindle_model::ssh::{
    BastionInfo, SignSshCertRequest, SignSshCertResponse, SshSession, SshSettings,
};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SshArgs {
    #[command(subcommand)]
    pub cmd: Option<SshCmd>,
    /// The instance to log in to (its id or private address), through the bastion
    pub instance: Option<String>,
    /// The login name on the instance (a principal of the certificate)
    #[arg(short = 'l', long, default_value = "root")]
    pub login: String,
    /// Your key pair: the private key (its `.pub` is what gets signed)
    #[arg(long, short = 'i', value_name = "PATH")]
    pub identity: Option<PathBuf>,
    /// The command to run on the instance (after `--`)
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SshCmd {
    /// Sign your public key with the account's SSH CA and write ~/.ssh/spindle-<account>-cert.pub
    Cert {
        /// How long the certificate is valid (90s, 15m, 8h; at most 24h)
        #[arg(long, default_value = "8h")]
        ttl: String,
        /// A login name the certificate allows (repeat for more) [default: root]
        #[arg(long = "principal", value_name = "P")]
        principals: Vec<String>,
        /// Your private key (its `.pub` is signed) [default: ~/.ssh/id_ed25519]
        #[arg(long, short = 'i', value_name = "PATH")]
        identity: Option<PathBuf>,
    },
    /// Print an ~/.ssh/config block (the bastion as a host, ProxyJump through it for instances)
    /// and write ~/.ssh/spindle-<account>-known_hosts (the bastion's key, the host CA)
    Config {
        /// Your private key [default: ~/.ssh/id_ed25519]
        #[arg(long, short = 'i', value_name = "PATH")]
        identity: Option<PathBuf>,
    },
    /// List the account's live sessions through the bastion
    Sessions,
    /// Plain public keys registered for your credential: the fallback to certificates
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Whether the bastion accepts the account's registered plain keys (certificates always)
    KeyFallback {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// End a live session (its connection and every channel on it)
    Kill {
        /// The session's id (`s-…`, from `spindle ssh sessions`)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Register a public key for your credential [default: ~/.ssh/id_ed25519.pub]
    Add {
        /// The public key file
        #[arg(value_name = "PUBLIC_KEY_FILE")]
        file: Option<PathBuf>,
    },
    /// List the account's registered keys
    List,
    /// Remove a registered key by its id (`key-…`)
    Remove { id: String },
}

fn ssh_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| {
        hinted(
            "HOME is not set",
            "set HOME, or pass --identity with a full path",
        )
    })?;
    Ok(PathBuf::from(home).join(".ssh"))
}

fn identity(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None => Ok(ssh_dir()?.join("id_ed25519")),
    }
}

/// Where `spindle ssh cert` writes the certificate and the bastion's known_hosts line.
fn cert_path(account: &str) -> Result<PathBuf> {
    Ok(cert_in(&ssh_dir()?, account))
}

fn known_hosts_path(account: &str) -> Result<PathBuf> {
    Ok(known_hosts_in(&ssh_dir()?, account))
}

fn cert_in(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("spindle-{account}-cert.pub"))
}

fn known_hosts_in(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("spindle-{account}-known_hosts"))
}

/// `host:port` → the `[host]:port` form known_hosts uses (plain `host` for port 22).
fn known_host_name(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((h, "22")) => h.to_string(),
        Some((h, p)) => format!("[{h}]:{p}"),
        None => addr.to_string(),
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // Write then rename, so a reader never sees half a certificate.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))
}

/// Signs the key and writes the certificate and the bastion's known_hosts file.
fn sign(
    cx: &Context,
    account: &str,
    key: &Path,
    ttl_secs: u64,
    principals: Vec<String>,
) -> Result<SignSshCertResponse> {
    let public_path = PathBuf::from(format!("{}.pub", key.display()));
    let public_key = std::fs::read_to_string(&public_path).map_err(|e| {
        hinted(
            format!("cannot read your public key {}: {e}", public_path.display()),
            "make a key pair with `ssh-keygen -t ed25519`, or pass --identity PATH",
        )
    })?;
    let resp = cx
        .client()?
        .sign_ssh_certificate(
            account,
            &SignSshCertRequest {
                public_key,
                ttl_secs: Some(ttl_secs),
                principals,
            },
        )
        .map_err(api_err)?;
    write_private(&cert_path(account)?, &format!("{}\n", resp.certificate))?;
    write_private(
        &known_hosts_path(account)?,
        &known_hosts_text(&resp.bastion),
    )?;
    Ok(resp)
}

/// The account's known_hosts file: the jump host's own key, and a `@cert-authority` line for
/// the account's host CA, which signs every instance's host key. The file is named only by
/// the `Host` blocks `spindle ssh config` prints (and by `spindle ssh INSTANCE`), so the CA
/// line's `*` pattern vouches for nothing else.
fn known_hosts_text(info: &BastionInfo) -> String {
    let mut text = String::new();
    if let (Some(addr), Some(host)) = (&info.address, &info.host_public_key) {
        text.push_str(&format!("{} {host}\n", known_host_name(addr)));
    }
    if let Some(ca) = &info.host_ca_public_key {
        text.push_str(&format!("@cert-authority * {ca}\n"));
    }
    text
}

/// The `~/.ssh/config` block for `account`'s bastion.
fn config_block(account: &str, info: &BastionInfo, key: &Path, dir: &Path) -> Result<String> {
    let addr = info.address.as_deref().ok_or_else(|| {
        hinted(
            "the daemon runs no SSH bastion",
            "start it with --ssh-listen ADDR (default 127.0.0.1:2222)",
        )
    })?;
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "22"));
    let cert = cert_in(dir, account);
    let known = known_hosts_in(dir, account);
    Ok(format!(
        "# Spindle SSH bastion for account {account} (CA {fp}).\n\
         # `spindle ssh cert` refreshes {cert}.\n\
         Host spindle-bastion-{account}\n    \
             HostName {host}\n    \
             Port {port}\n    \
             User root\n    \
             IdentityFile {key}\n    \
             CertificateFile {cert}\n    \
             IdentitiesOnly yes\n    \
             UserKnownHostsFile {known}\n    \
             StrictHostKeyChecking yes\n\
         Host i-* 10.*\n    \
             ProxyJump spindle-bastion-{account}\n    \
             IdentityFile {key}\n    \
             CertificateFile {cert}\n    \
             IdentitiesOnly yes\n    \
             UserKnownHostsFile {known}\n    \
             StrictHostKeyChecking yes\n",
        fp = info.ca_fingerprint,
        cert = cert.display(),
        key = key.display(),
        known = known.display(),
    ))
}

pub fn run(cx: &Context, args: SshArgs) -> Result<()> {
    let account = cx.account()?;
    match args.cmd {
        Some(SshCmd::Cert {
            ttl,
            principals,
            identity: id,
        }) => {
            let key = identity(id)?;
            let resp = sign(cx, &account, &key, parse_duration(&ttl)?, principals)?;
            if cx.json() {
                output::json(&resp);
            } else {
                output::fields(&[
                    ("certificate", cert_path(&account)?.display().to_string()),
                    ("serial", resp.serial.to_string()),
                    ("key id", resp.key_id.clone()),
                    ("principals", resp.principals.join(", ")),
                    ("valid before", resp.valid_before.to_string()),
                    (
                        "agent forwarding",
                        if resp.forward_agent {
                            "permitted"
                        } else {
                            "off"
                        }
                        .into(),
                    ),
                    (
                        "bastion",
                        resp.bastion.address.clone().unwrap_or_else(|| "off".into()),
                    ),
                ]);
            }
            Ok(())
        }
        Some(SshCmd::Config { identity: id }) => {
            let key = identity(id)?;
            let info = cx.client()?.describe_bastion(&account).map_err(api_err)?;
            let block = config_block(&account, &info, &key, &ssh_dir()?)?;
            write_private(&known_hosts_path(&account)?, &known_hosts_text(&info))?;
            print!("{block}");
            Ok(())
        }
        Some(SshCmd::Sessions) => {
            let sessions = cx.client()?.list_ssh_sessions(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&sessions);
            } else {
                output::table(
                    &[
                        "ID", "WHO", "SERIAL", "SOURCE", "TARGETS", "STARTED", "UP", "DOWN",
                    ],
                    &sessions.iter().map(session_row).collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
        Some(SshCmd::Key { cmd }) => run_key(cx, &account, cmd),
        Some(SshCmd::KeyFallback { state }) => {
            let s = cx
                .client()?
                .put_bastion_settings(
                    &account,
                    &SshSettings {
                        key_fallback: state == "on",
                    },
                )
                .map_err(api_err)?;
            if cx.json() {
                output::json(&s);
            } else {
                println!(
                    "plain-key fallback {}",
                    if s.key_fallback { "on" } else { "off" }
                );
            }
            Ok(())
        }
        Some(SshCmd::Kill { id }) => {
            let s = cx
                .client()?
                .kill_ssh_session(&account, &id)
                .map_err(api_err)?;
            if cx.json() {
                output::json(&s);
            } else {
                println!("killed {} ({} from {})", s.id, s.key_id, s.source);
            }
            Ok(())
        }
        None => {
            let Some(instance) = args.instance else {
                return Err(hinted(
                    "name an instance: spindle ssh INSTANCE [-- CMD]",
                    "or `spindle ssh cert` / `spindle ssh config`",
                ));
            };
            let key = identity(args.identity)?;
            let resp = sign(cx, &account, &key, 3600, vec![args.login.clone()])?;
            let addr = resp.bastion.address.clone().ok_or_else(|| {
                hinted(
                    "the daemon runs no SSH bastion",
                    "start it with --ssh-listen ADDR",
                )
            })?;
            let cert = cert_path(&account)?;
            let known = known_hosts_path(&account)?;
            // Both hops check strictly against the account's known_hosts file: the bastion's
            // own key, and the host CA that signs instances' host certificates.
            let jump = format!(
                "ssh -F none -i {k} -o CertificateFile={c} -o IdentitiesOnly=yes \
                 -o UserKnownHostsFile={h} -o StrictHostKeyChecking=yes -W %h:%p -l {l} -p {p} {a}",
                k = key.display(),
                c = cert.display(),
                h = known.display(),
                l = args.login,
                p = addr.rsplit_once(':').map_or("22", |x| x.1),
                a = addr.rsplit_once(':').map_or(addr.as_str(), |x| x.0),
            );
            let status = std::process::Command::new("ssh")
                .arg("-i")
                .arg(&key)
                .arg("-o")
                .arg(format!("CertificateFile={}", cert.display()))
                .args(["-o", "IdentitiesOnly=yes"])
                .arg("-o")
                .arg(format!("ProxyCommand={jump}"))
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known.display()))
                .args(["-o", "StrictHostKeyChecking=yes"])
                .arg(format!("{}@{instance}", args.login))
                .args(&args.command)
                .status()
                .map_err(|e| hinted(format!("cannot run ssh: {e}"), "install openssh-client"))?;
            std::process::exit(status.code().unwrap_or(255));
        }
    }
}

fn run_key(cx: &Context, account: &str, cmd: KeyCmd) -> Result<()> {
    let client = cx.client()?;
    let shown = match cmd {
        KeyCmd::Add { file } => {
            let file = match file {
                Some(f) => f,
                None => ssh_dir()?.join("id_ed25519.pub"),
            };
            let text = std::fs::read_to_string(&file).map_err(|e| {
                hinted(
                    format!("cannot read the public key {}: {e}", file.display()),
                    "make a key pair with `ssh-keygen -t ed25519`, or name the .pub file",
                )
            })?;
            vec![client.add_ssh_key(account, &text).map_err(api_err)?]
        }
        KeyCmd::List => client.list_ssh_keys(account).map_err(api_err)?,
        KeyCmd::Remove { id } => vec![client.remove_ssh_key(account, &id).map_err(api_err)?],
    };
    if cx.json() {
        output::json(&shown);
    } else {
        output::table(
            &["ID", "FINGERPRINT", "ACCESS KEY", "ADDED"],
            &shown
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        k.fingerprint.clone(),
                        k.access_key_id.clone(),
                        unix_time(k.added),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    Ok(())
}

/// Unix seconds as RFC 3339.
fn unix_time(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// One `spindle ssh sessions` row.
fn session_row(s: &SshSession) -> Vec<String> {
    let started = unix_time(s.started);
    vec![
        s.id.clone(),
        s.key_id.clone(),
        s.serial.to_string(),
        s.source.clone(),
        if s.targets.is_empty() {
            "-".into()
        } else {
            s.targets.join(",")
        },
        started,
        s.bytes_up.to_string(),
        s.bytes_down.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_names_follow_openssh() {
        assert_eq!(known_host_name("127.0.0.1:2222"), "[127.0.0.1]:2222");
        assert_eq!(known_host_name("bastion:22"), "bastion");
    }

    #[test]
    fn the_config_block_jumps_through_the_bastion() {
        let info = BastionInfo {
            ca_public_key: "ssh-ed25519 AAAA".into(),
            ca_fingerprint: "SHA256:x".into(),
            host_ca_public_key: Some("ssh-ed25519 HOSTCA".into()),
            address: Some("127.0.0.1:2222".into()),
            host_public_key: Some("ssh-ed25519 BBBB".into()),
            key_fallback: Some(true),
        };
        let dir = Path::new("/home/u/.ssh");
        let block = config_block("123456789012", &info, &dir.join("id_ed25519"), dir).unwrap();
        for want in [
            "Host spindle-bastion-123456789012\n",
            "    HostName 127.0.0.1\n    Port 2222\n",
            "    CertificateFile /home/u/.ssh/spindle-123456789012-cert.pub\n",
            "    UserKnownHostsFile /home/u/.ssh/spindle-123456789012-known_hosts\n",
            "    ProxyJump spindle-bastion-123456789012\n",
        ] {
            assert!(block.contains(want), "{want:?} missing from\n{block}");
        }
        // Both Host blocks check host keys strictly against the account's file.
        assert_eq!(
            block.matches("StrictHostKeyChecking yes\n").count(),
            2,
            "{block}"
        );
        assert_eq!(
            block
                .matches("UserKnownHostsFile /home/u/.ssh/spindle-123456789012-known_hosts\n")
                .count(),
            2,
            "{block}"
        );
        assert_eq!(
            known_hosts_text(&info),
            "[127.0.0.1]:2222 ssh-ed25519 BBBB\n@cert-authority * ssh-ed25519 HOSTCA\n"
        );
        let off = BastionInfo {
            address: None,
            ..info
        };
        assert!(config_block("1", &off, Path::new("k"), dir).is_err());
    }
}
