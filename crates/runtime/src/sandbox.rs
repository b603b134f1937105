//! Running one command inside a directory tree, for image baking: a private mount, pid, uts
//! and ipc namespace (and a network namespace with only a loopback device unless the step
//! needs the network), an overlayfs whose upper directory collects every change the command
//! makes, and `/proc` and a small `/dev` inside. The host's own filesystem is never written:
//! all mounts live in the private mount namespace and vanish with it.
//!
//! The namespaces are made by util-linux `unshare`; the mounts by a short host shell script
//! run inside them; the command by `chroot` into the merged tree. A baking step is code the
//! operator wrote, so `chroot` (not `pivot_root` with dropped capabilities, as instances get) is
//! the boundary: it keeps the host unchanged, it does not contain a hostile step.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::kernel::KernelError;

/// What to run and over which tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRun {
    /// Read-only layer trees, lowest first; at least one (an empty directory will do).
    pub lower: Vec<PathBuf>,
    /// Receives every change; must be empty at the first run of a step.
    pub upper: PathBuf,
    /// overlayfs's work directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Where the merged tree is mounted inside the private namespace (an empty directory).
    pub merged: PathBuf,
    /// The command, resolved inside the tree.
    pub argv: Vec<String>,
    /// `KEY=value` pairs; nothing else from the host's environment is passed in.
    pub env: Vec<String>,
    /// Share the host's network (and `/etc/resolv.conf`) instead of a private loopback-only one.
    pub network: bool,
    /// Where stdout and stderr go; `None` inherits the caller's terminal, stdin included
    /// (for a debugging shell).
    pub log: Option<PathBuf>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeExit {
    /// The exit code, or 128 + signal number when a signal ended it.
    pub code: i32,
}

impl TreeRun {
    /// The `unshare` command line, one argument per element (used by the fake kernel too).
    pub fn command_line(&self) -> Vec<String> {
        let mut v: Vec<String> = ["unshare", "--mount", "--pid", "--fork", "--uts", "--ipc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !self.network {
            v.push("--net".into());
        }
        v.extend(["--kill-child".into(), "--".into(), "/bin/sh".into()]);
        v.extend(["-c".into(), MOUNT_SCRIPT.into(), "spindle-bake".into()]);
        let lower: Vec<String> = self
            .lower
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        v.push(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        ));
        v.push(self.merged.display().to_string());
        v.push(if self.network { "net" } else { "nonet" }.into());
        v.extend(self.argv.iter().cloned());
        v
    }
}

/// Runs inside the new namespaces with `$1` = overlay options, `$2` = mount point, `$3` =
/// `net`/`nonet`, the rest the command. Only files under `$2` are touched, and only through
/// mounts that die with the namespace.
const MOUNT_SCRIPT: &str = r#"set -e
opts=$1; m=$2; net=$3; shift 3
mount -t overlay overlay -o "$opts" "$m"
if [ -d "$m/proc" ]; then mount -t proc proc "$m/proc"; fi
if [ -d "$m/dev" ]; then
  mount -t tmpfs -o mode=0755,nosuid dev "$m/dev"
  for n in null zero full random urandom tty; do
    : > "$m/dev/$n"; mount --bind "/dev/$n" "$m/dev/$n"
  done
  ln -s /proc/self/fd "$m/dev/fd"
  mkdir -p "$m/dev/pts" "$m/dev/shm"
fi
if [ -d "$m/tmp" ]; then mount -t tmpfs -o mode=1777 tmp "$m/tmp"; fi
if [ "$net" = net ] && [ -f "$m/etc/resolv.conf" ] && [ -f /etc/resolv.conf ]; then
  mount --bind /etc/resolv.conf "$m/etc/resolv.conf"
fi
if [ "$net" = nonet ]; then ip link set lo up 2>/dev/null || true; fi
exec chroot "$m" "$@"
"#;

/// Carries out a [`TreeRun`] with the real kernel.
pub(crate) fn run_real(spec: &TreeRun) -> Result<TreeExit, KernelError> {
    if spec.argv.is_empty() {
        return Err(KernelError::Command {
            cmd: "run in tree".into(),
            stderr: "no command given".into(),
        });
    }
    for d in [&spec.upper, &spec.work, &spec.merged] {
        fs::create_dir_all(d).map_err(|e| KernelError::io(format!("create {}", d.display()), e))?;
    }
    let line = spec.command_line();
    let mut cmd = Command::new(&line[0]);
    cmd.args(&line[1..]);
    cmd.env_clear();
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    for kv in &spec.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    match &spec.log {
        Some(log) => {
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| KernelError::io(format!("open {}", log.display()), e))?;
            let f2 = f
                .try_clone()
                .map_err(|e| KernelError::io(format!("open {}", log.display()), e))?;
            cmd.stdin(Stdio::null()).stdout(f).stderr(f2);
        }
        None => {
            cmd.stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        }
    }
    let status = cmd
        .status()
        .map_err(|e| KernelError::io("spawn unshare (util-linux)", e))?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    Ok(TreeExit { code })
}
