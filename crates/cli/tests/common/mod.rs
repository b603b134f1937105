//! A real daemon for integration tests: the built `spindle` binary on a temporary data dir and
//! a random loopback port, stopped by its own PID when the test ends, pass or fail.

#![allow(dead_code)]

use spindle_client::{Client, CredentialsFile};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_spindle");

pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// Set to run the instance runtime with this prefix.
    pub runtime_prefix: Option<String>,
    pub child: Option<Child>,
    pub endpoint: String,
    /// More `spindle server` arguments.
    pub server_args: Vec<String>,
}

impl Daemon {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// Starts a daemon on a fresh data dir.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Starts a daemon that runs instances, naming what it creates with `prefix`.
    pub fn start_with_runtime(prefix: &str) -> Self {
        Self::start_inner(Some(prefix.to_owned()))
    }

    /// Like [`Daemon::start_with_runtime`], with more `spindle server` arguments.
    pub fn start_with_runtime_args(prefix: &str, args: &[&str]) -> Self {
        Self::start_args(Some(prefix.to_owned()), args)
    }

    fn start_inner(runtime_prefix: Option<String>) -> Self {
        Self::start_args(runtime_prefix, &[])
    }

    fn start_args(runtime_prefix: Option<String>, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Self {
            dir,
            child: None,
            endpoint: String::new(),
            runtime_prefix,
            server_args: args.iter().map(|a| a.to_string()).collect(),
        };
        d.spawn();
        d
    }

    /// `spindle server` on this data dir and credentials file, on a random port.
    pub fn server_command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir())
            .arg("--credentials-file")
            .arg(self.credentials_file());
        match &self.runtime_prefix {
            Some(p) => c.args(["--runtime-prefix", p]),
            // Most tests need no instances; without the runtime they touch nothing on the host.
            None => c.arg("--no-runtime"),
        };
        c.args(&self.server_args);
        c
    }

    /// Starts the binary on this data dir and waits until `/healthz` answers.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data_dir().join("server.json"));
        let child = self
            .server_command()
            .env("SPINDLE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(info) = std::fs::read(self.data_dir().join("server.json")) {
                let v: serde_json::Value = serde_json::from_slice(&info).unwrap();
                self.endpoint = v["endpoint"].as_str().unwrap().to_owned();
                if Client::new(&self.endpoint, None).health().is_ok() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon with SIGTERM (graceful) and returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: kill with a PID we spawned and have not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// A client with the admin credential the first start wrote.
    pub fn admin(&self) -> Client {
        let f = CredentialsFile::load(&self.credentials_file()).unwrap();
        let p = &f.profiles["default"];
        Client::new(
            &self.endpoint,
            Some((
                p.access_key_id.clone().unwrap(),
                p.secret_access_key.as_deref().unwrap(),
            )),
        )
    }

    /// Runs the CLI against this daemon with its credentials file.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--endpoint", &self.endpoint, "--credentials-file"])
            .arg(self.credentials_file())
            .args(args)
            .env_remove("SPINDLE_PROFILE")
            .env_remove("SPINDLE_ACCOUNT")
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

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

/// Removes whatever the runtime left under a test's prefix (namespaces, veths, nftables
/// tables, cgroups), pass or fail: declare it before the daemon, so it drops after it.
pub struct Sweep(pub String);

impl Drop for Sweep {
    fn drop(&mut self) {
        use spindle_runtime::doctor::{doctor, Known};
        use spindle_runtime::{CgroupLayout, Kernel, RealKernel};
        let k = RealKernel;
        let layout = CgroupLayout::detect(&k as &dyn Kernel, Path::new("/sys/fs/cgroup"));
        let r = doctor(&k, &layout, &self.0, &Known::default(), true);
        if !r.unfixed.is_empty() {
            eprintln!("cleanup of {} left {:?}", self.0, r.unfixed);
        }
    }
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
