//! What the CLI's integration tests share beyond `spindle-testsupport`: the daemon fixture
//! and the root-test guard come from there; the CLI-only helpers stay here.

#![allow(dead_code)]

use spindle_client::Client;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod aws;

pub const BIN: &str = env!("CARGO_BIN_EXE_spindle");

// Each test binary uses its own subset.
#[allow(unused_imports)]
pub use spindle_testsupport::{root_tests_can_run, Daemon, Sweep};

pub fn client_for(endpoint: &str, c: &spindle_model::api::Credentials) -> Client {
    Client::new(
        endpoint,
        Some((c.access_key_id.clone(), c.secret_access_key.as_str())),
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops a daemon that `spindle up` started, by the PID it published.
pub struct UpDaemon(pub PathBuf);

impl Drop for UpDaemon {
    fn drop(&mut self) {
        let Ok(info) = std::fs::read(self.0.join("server.json")) else {
            return;
        };
        let v: serde_json::Value = serde_json::from_slice(&info).unwrap();
        let pid = v["pid"].as_i64().unwrap() as i32;
        // SAFETY: kill with the PID our own `spindle up` started and published.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.exists() && Instant::now() < deadline && !is_zombie(&proc) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn is_zombie(proc: &Path) -> bool {
    std::fs::read_to_string(proc.join("stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

/// A recipe's project directory: `rootfs/` holding the static busybox, `/bin/sh` and root's
/// passwd entry (what a `scratch` recipe copies in), and the recipe itself as `name`.
pub fn busybox_project(dir: &Path, name: &str, recipe: &str) {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(spindle_runtime::host::BUSYBOX, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(dir.join(name), recipe).unwrap();
}

/// Copies a project as a fresh clone has it: no build outputs (`dist`, `target`).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "dist" || name == "target" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Why this host can't run a test that bakes a Debian base (as `spindle up` does), if it can't:
/// a missing runtime prerequisite or no Debian mirror in its apt sources.
pub fn cannot_bake_debian() -> Option<String> {
    if let Some(why) = spindle_runtime::host::missing_prerequisites() {
        return Some(why.to_string());
    }
    spindle_bake::debian::host_mirror("bookworm")
        .err()
        .map(|why| format!("no Debian mirror for the base: {why}"))
}

/// A stack deploy of `body` (named `file` for messages) with `params`.
pub fn deploy_request(
    file: &str,
    body: &str,
    params: &[(&str, &str)],
) -> spindle_model::api::DeployStack {
    spindle_model::api::DeployStack {
        template: spindle_model::api::TemplateRequest {
            template_body: body.to_owned(),
            template_name: Some(file.to_owned()),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nested_templates: Default::default(),
            use_previous_values: Default::default(),
        },
        ..Default::default()
    }
}

/// Debian's `dig` (bind9-dnsutils) asking `server` (one try, 2 s), its output; `None` when
/// `dig` is not installed.
pub fn dig_at(server: std::net::SocketAddr, args: &[&str]) -> Option<String> {
    let o = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `git` with no user or system configuration and no prompt.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    git_env(dir, args, &[])
}

pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    o
}

/// The clone URL with `key`'s id and secret as basic credentials.
pub fn with_key(url: &str, key: &spindle_model::api::Credentials) -> String {
    let secret: String = key
        .secret_access_key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    url.replacen(
        "http://",
        &format!("http://{}:{secret}@", key.access_key_id),
        1,
    )
}

/// `spindle --account dev ARGS -o json`, its output parsed.
pub fn dev_json<T: serde::de::DeserializeOwned>(
    d: &spindle_testsupport::Daemon,
    args: &[&str],
) -> T {
    let mut all = vec!["--account", "dev"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_slice(&ok(d.cli(&all)).stdout).unwrap()
}
