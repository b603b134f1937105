//! A real daemon for tests and benchmarks: the built `spindle` binary on a data dir of its own
//! and a random loopback port, stopped by its own PID when dropped, pass or fail.

use spindle_client::{Client, CredentialsFile};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer `/healthz` before a start fails.
const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not start `{}`", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon exited before it answered /healthz: {0}")]
    ExitedEarly(ExitStatus),
    #[error("the daemon did not answer /healthz within {} s", START_TIMEOUT.as_secs())]
    Timeout,
    #[error("`{}` is not the daemon's server info (expected JSON with a string `endpoint`)", path.display())]
    ServerInfo { path: PathBuf },
    #[error("the admin credential in `{}`", path.display())]
    Credentials {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("waiting on the daemon")]
    Wait(#[source] std::io::Error),
}

/// Whether the daemon runs instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `--no-runtime`: most tests need no instances, and then touch nothing on the host.
    Off,
    /// The runtime with its default name prefix (the benchmarks).
    Default,
    /// The runtime, naming everything it creates with this prefix (`--runtime-prefix`).
    Prefix(String),
}

/// How a [`Daemon`] starts.
#[derive(Clone, Debug)]
pub struct Options {
    pub runtime: Runtime,
    /// More `spindle server` arguments.
    pub args: Vec<String>,
    /// Pass the daemon's stderr through (tests) or drop it (benchmarks, whose output is data).
    pub stderr: bool,
    /// Write the daemon's log here instead (at level `info`), for tests that read it.
    pub log_file: Option<PathBuf>,
    /// How often to look for `/healthz` while starting; the benchmarks time the start, so they
    /// look often.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime: Runtime::Off,
            args: Vec::new(),
            stderr: true,
            log_file: None,
            poll: Duration::from_millis(10),
        }
    }
}

pub struct Daemon {
    bin: PathBuf,
    /// Holds `data/` and `credentials`.
    root: PathBuf,
    /// The temporary directory `root` is in, when the daemon owns it; removed after the stop.
    _temp: Option<tempfile::TempDir>,
    pub options: Options,
    pub child: Option<Child>,
    pub endpoint: String,
}

impl Daemon {
    /// Starts a daemon without the instance runtime on a fresh temporary dir.
    pub fn start(bin: impl AsRef<Path>) -> Self {
        Self::start_opts(bin, Options::default())
    }

    /// Starts a daemon that runs instances, naming what it creates with `prefix`.
    pub fn start_with_runtime(bin: impl AsRef<Path>, prefix: &str) -> Self {
        Self::start_with_runtime_args(bin, prefix, &[])
    }

    /// Like [`Daemon::start_with_runtime`], with more `spindle server` arguments.
    pub fn start_with_runtime_args(bin: impl AsRef<Path>, prefix: &str, args: &[&str]) -> Self {
        Self::start_opts(
            bin,
            Options {
                runtime: Runtime::Prefix(prefix.to_owned()),
                args: args.iter().map(|a| a.to_string()).collect(),
                ..Options::default()
            },
        )
    }

    /// Starts a daemon on a fresh temporary dir that it removes when dropped; panics when it
    /// can't, as a test should.
    pub fn start_opts(bin: impl AsRef<Path>, options: Options) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut d = Self::new(bin.as_ref(), temp.path(), options);
        d._temp = Some(temp);
        d.spawn();
        d
    }

    /// Starts a daemon on `root` (which the caller keeps, so a second daemon can start on the
    /// same data) and returns it with the time from spawn to the first `/healthz` answer.
    pub fn try_start_in(
        bin: &Path,
        root: &Path,
        options: Options,
    ) -> Result<(Self, Duration), Error> {
        let mut d = Self::new(bin, root, options);
        let took = d.try_spawn()?;
        Ok((d, took))
    }

    fn new(bin: &Path, root: &Path, options: Options) -> Self {
        Self {
            bin: bin.to_owned(),
            root: root.to_owned(),
            _temp: None,
            options,
            child: None,
            endpoint: String::new(),
        }
    }

    /// The directory holding the data dir and the credentials file; tests put their own files
    /// beside them.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.root.join("credentials")
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The daemon's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The address the daemon's DNS server answers on (from its `server.json`), while it runs.
    pub fn dns_addr(&self) -> Option<std::net::SocketAddr> {
        let info = std::fs::read(self.data_dir().join("server.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&info).ok()?;
        v["dns"].as_str()?.parse().ok()
    }

    /// `spindle server` on this data dir and credentials file, on a random port (and the AWS
    /// endpoint and the DNS server on others).
    pub fn server_command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(["server", "--listen", "127.0.0.1:0"])
            .args([
                "--aws-listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(self.data_dir())
            .arg("--credentials-file")
            .arg(self.credentials_file())
            // The SSH bastion on a port of its own, so daemons side by side don't compete.
            .args(["--ssh-listen", "127.0.0.1:0"]);
        match &self.options.runtime {
            Runtime::Off => {
                c.arg("--no-runtime");
            }
            Runtime::Default => {}
            Runtime::Prefix(p) => {
                c.args(["--runtime-prefix", p]);
            }
        }
        c.args(&self.options.args);
        c
    }

    /// Starts the binary on this data dir and waits until `/healthz` answers; panics when it
    /// can't.
    pub fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{}", error_chain(&e));
        }
    }

    /// Starts the binary on this data dir and returns the time until `/healthz` answered.
    pub fn try_spawn(&mut self) -> Result<Duration, Error> {
        let info_path = self.data_dir().join("server.json");
        let _ = std::fs::remove_file(&info_path);
        let t0 = Instant::now();
        let (level, stderr) = match &self.options.log_file {
            Some(path) => (
                "info",
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(Stdio::from)
                    .map_err(|source| Error::Spawn {
                        bin: path.clone(),
                        source,
                    })?,
            ),
            None if self.options.stderr => ("warn", Stdio::inherit()),
            None => ("warn", Stdio::null()),
        };
        let child = self
            .server_command()
            .env("SPINDLE_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        // Held by `self` from here on, so a failed start still stops it on drop.
        self.child = Some(child);
        self.endpoint.clear();
        loop {
            if self.endpoint.is_empty() {
                if let Ok(bytes) = std::fs::read(&info_path) {
                    self.endpoint = endpoint_of(&bytes).ok_or_else(|| Error::ServerInfo {
                        path: info_path.clone(),
                    })?;
                }
            }
            if !self.endpoint.is_empty() && Client::new(&self.endpoint, None).health().is_ok() {
                return Ok(t0.elapsed());
            }
            let child = self.child.as_mut().expect("spawned above");
            if let Some(status) = child.try_wait().map_err(Error::Wait)? {
                self.child = None;
                return Err(Error::ExitedEarly(status));
            }
            if t0.elapsed() > START_TIMEOUT {
                return Err(Error::Timeout);
            }
            std::thread::sleep(self.options.poll);
        }
    }

    /// Stops the daemon with SIGTERM (graceful) and returns its exit status code; SIGKILL
    /// after 10 s.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: kill with a PID we spawned and have not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
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

    /// A client with the admin credential the first start wrote; panics when there is none.
    pub fn admin(&self) -> Client {
        self.try_admin()
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)))
    }

    /// A client with the admin credential the first start wrote.
    pub fn try_admin(&self) -> Result<Client, Error> {
        let path = self.credentials_file();
        let err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Credentials {
            path: path.clone(),
            source,
        };
        let f = CredentialsFile::load(&path).map_err(|e| err(e.into()))?;
        let p = f
            .profiles
            .get("default")
            .ok_or_else(|| err("no `default` profile".into()))?;
        let key = p
            .access_key_id
            .clone()
            .ok_or_else(|| err("no access key id".into()))?;
        let secret = p
            .secret_access_key
            .as_deref()
            .ok_or_else(|| err("no secret access key".into()))?;
        Ok(Client::new(&self.endpoint, Some((key, secret))))
    }

    /// Runs the CLI against this daemon with its credentials file.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
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

impl Daemon {
    /// The AWS-compatible endpoint (`http://127.0.0.1:PORT`) from the daemon's `server.json`.
    pub fn aws_endpoint(&self) -> Option<String> {
        let bytes = std::fs::read(self.data_dir().join("server.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v.get("aws_endpoint")?.as_str().map(str::to_owned)
    }
}

/// The `endpoint` of a daemon's `server.json`.
fn endpoint_of(info: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(info).ok()?;
    Some(v["endpoint"].as_str()?.to_owned())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_info_endpoint_is_read_or_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"endpoint":"http://127.0.0.1:5","pid":1}"#,
                Some("http://127.0.0.1:5"),
            ),
            (r#"{"endpoint":5}"#, None),
            (r#"{"pid":1}"#, None),
            ("{", None),
        ];
        for (json, want) in cases {
            assert_eq!(endpoint_of(json.as_bytes()).as_deref(), *want, "{json}");
        }
    }

    #[test]
    fn the_runtime_option_becomes_server_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (Runtime::Off, vec!["--no-runtime"]),
            (Runtime::Default, vec![]),
            (Runtime::Prefix("tp".into()), vec!["--runtime-prefix", "tp"]),
        ];
        for (runtime, want) in cases {
            let d = Daemon::new(
                Path::new("/nonexistent/spindle"),
                dir.path(),
                Options {
                    runtime: runtime.clone(),
                    args: vec!["--x".into()],
                    ..Options::default()
                },
            );
            let args: Vec<String> = d
                .server_command()
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .skip(13)
                .collect();
            let mut expected: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            expected.push("--x".into());
            assert_eq!(args, expected, "{runtime:?}");
        }
    }

    #[test]
    fn a_binary_that_is_not_there_is_a_spawn_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Daemon::try_start_in(
            Path::new("/nonexistent/spindle"),
            dir.path(),
            Options::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("/nonexistent/spindle"), "{err}");
    }

    #[test]
    fn a_binary_that_exits_at_once_is_reported_as_exited_early() {
        let dir = tempfile::tempdir().unwrap();
        let err = Daemon::try_start_in(Path::new("/bin/false"), dir.path(), Options::default())
            .err()
            .unwrap();
        assert!(matches!(err, Error::ExitedEarly(_)), "{err}");
    }
}
