//! What the benchmarks share: starting a release daemon on a temporary data dir, and
//! percentiles.

#![allow(dead_code)]

use anyhow::{Context, Result};
use spindle_client::Client;
use std::path::Path;
use std::time::Duration;

pub use spindle_testsupport::Daemon;
use spindle_testsupport::{Options, Runtime};

/// Starts the daemon (with the instance runtime, its stderr dropped) on `dir` and returns it
/// with the time from spawn to the first `/healthz` answer.
pub fn start(bin: &Path, dir: &Path) -> Result<(Daemon, Duration)> {
    start_with(bin, dir, &[])
}

/// [`start`] with more `spindle server` arguments.
pub fn start_with(bin: &Path, dir: &Path, extra: &[&str]) -> Result<(Daemon, Duration)> {
    let options = Options {
        runtime: Runtime::Default,
        args: extra.iter().map(|a| a.to_string()).collect(),
        stderr: false,
        log_file: None,
        // The start is what foundation times, so look often.
        poll: Duration::from_micros(200),
    };
    Ok(Daemon::try_start_in(bin, dir, options)?)
}

pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The admin client of a daemon started by [`start`].
pub fn admin(d: &Daemon, _dir: &Path) -> Result<Client> {
    Ok(d.try_admin()?)
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
