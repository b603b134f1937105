//! What the benchmarks share: starting a release daemon on a temporary data dir, and
//! percentiles.

#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use spindle_client::{Client, CredentialsFile};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub endpoint: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Starts the daemon and returns it with the time from spawn to the first `/healthz` answer.
pub fn start(bin: &Path, dir: &Path) -> Result<(Daemon, Duration)> {
    start_with(bin, dir, &[])
}

/// [`start`] with more `spindle server` arguments.
pub fn start_with(bin: &Path, dir: &Path, extra: &[&str]) -> Result<(Daemon, Duration)> {
    let _ = std::fs::remove_file(dir.join("data/server.json"));
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--credentials-file")
        .arg(dir.join("credentials"))
        .args(extra)
        .env("SPINDLE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut d = Daemon {
        child,
        endpoint: String::new(),
    };
    loop {
        if d.endpoint.is_empty() {
            if let Ok(b) = std::fs::read(dir.join("data/server.json")) {
                let v: serde_json::Value = serde_json::from_slice(&b)?;
                d.endpoint = v["endpoint"].as_str().context("endpoint")?.to_owned();
            }
        }
        if !d.endpoint.is_empty() && Client::new(&d.endpoint, None).health().is_ok() {
            return Ok((d, t0.elapsed()));
        }
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("daemon did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The admin client of a daemon started by [`start`] in `dir`.
pub fn admin(d: &Daemon, dir: &Path) -> Result<Client> {
    let creds = CredentialsFile::load(&dir.join("credentials"))?;
    let p = &creds.profiles["default"];
    Ok(Client::new(
        &d.endpoint,
        Some((
            p.access_key_id.clone().context("key")?,
            p.secret_access_key.as_deref().context("secret")?,
        )),
    ))
}

/// The resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}
