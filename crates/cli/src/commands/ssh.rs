//! `spindle ssh`: short-lived certificates from the account's SSH CA, an `~/.ssh/config` block
//! for the bastion, and `spindle ssh INSTANCE [-- CMD]`, which runs the user's own `ssh`
//! through the bastion (`ProxyJump`).

use crate::context::{api_err, hinted, parse_duration, Context};
use crate::output;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use spindle_model::ssh::{BastionInfo, SignSshCertRequest, SignSshCertResponse};
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
    /// Print an ~/.ssh/config block: the bastion as a host, and ProxyJump through it for instances
    Config {
        /// Your private key [default: ~/.ssh/id_ed25519]
        #[arg(long, short = 'i', value_name = "PATH")]
        identity: Option<PathBuf>,
    },
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
    if let (Some(addr), Some(host)) = (&resp.bastion.address, &resp.bastion.host_public_key) {
        write_private(
            &known_hosts_path(account)?,
            &format!("{} {host}\n", known_host_name(addr)),
        )?;
    }
    Ok(resp)
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
             IdentitiesOnly yes\n",
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
            print!("{}", config_block(&account, &info, &key, &ssh_dir()?)?);
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
            // The bastion hop: its host key pinned in the account's known_hosts file. The
            // instance hop: instances carry no host certificates yet, so its key is learnt
            // on first use into the same file.
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
                .args(["-o", "StrictHostKeyChecking=accept-new"])
                .arg(format!("{}@{instance}", args.login))
                .args(&args.command)
                .status()
                .map_err(|e| hinted(format!("cannot run ssh: {e}"), "install openssh-client"))?;
            std::process::exit(status.code().unwrap_or(255));
        }
    }
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
            address: Some("127.0.0.1:2222".into()),
            host_public_key: Some("ssh-ed25519 BBBB".into()),
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
        let off = BastionInfo {
            address: None,
            ..info
        };
        assert!(config_block("1", &off, Path::new("k"), dir).is_err());
    }
}
