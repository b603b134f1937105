//! Foundation benchmark: daemon start to `/healthz`, authenticated API read latency, idle RSS.
//!
//! Run with `bench/run foundation` (builds in release first). Targets from the foundation
//! issue: start < 100 ms, authenticated read p50 < 1 ms on loopback, idle RSS < 30 MB. This
//! issue names no peer; the figures are printed against their targets.

#[path = "common.rs"]
mod common;

use anyhow::{bail, Context, Result};
use common::{ms, pct, rss_kib, start};
use spindle_client::Client;
use spindle_model::api::{CreateAccount, CreateKey};
use spindle_model::AccountName;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let bin = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/spindle".into()),
    );
    if !bin.exists() {
        bail!(
            "{} not found: build with `cargo build --release` or pass the binary's path",
            bin.display()
        );
    }
    const STARTS: usize = 15;
    let mut first = Vec::new();
    let mut again = Vec::new();
    for _ in 0..STARTS {
        let dir = tempfile::tempdir()?;
        let (d, t) = start(&bin, dir.path())?;
        first.push(t);
        drop(d);
        let (d, t) = start(&bin, dir.path())?;
        again.push(t);
        drop(d);
    }
    first.sort();
    again.sort();

    let dir = tempfile::tempdir()?;
    let (d, _) = start(&bin, dir.path())?;
    std::thread::sleep(Duration::from_secs(1));
    let rss_fresh = rss_kib(d.pid().context("daemon pid")?)?;
    let admin = common::admin(&d, dir.path())?;
    admin.create_account(&CreateAccount {
        name: AccountName::parse("dev")?,
        description: String::new(),
    })?;
    let key = admin.create_key("dev", &CreateKey::default())?;
    let dev = Client::new(
        &d.endpoint,
        Some((key.access_key_id.clone(), key.secret_access_key.as_str())),
    );
    const READS: usize = 5000;
    for _ in 0..200 {
        dev.get_account("dev")?;
    }
    let mut lat = Vec::with_capacity(READS);
    for _ in 0..READS {
        let t = Instant::now();
        dev.get_account("dev")?;
        lat.push(t.elapsed());
    }
    lat.sort();
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(d.pid().context("daemon pid")?)?;

    println!(
        "foundation benchmark ({} starts each, {READS} reads; binary {})",
        STARTS,
        bin.display()
    );
    println!(
        "  start to /healthz, first start (creates admin key):  p50 {}  p90 {}",
        ms(pct(&first, 0.5)),
        ms(pct(&first, 0.9))
    );
    println!(
        "  start to /healthz, existing data dir:                p50 {}  p90 {}   target < 100 ms",
        ms(pct(&again, 0.5)),
        ms(pct(&again, 0.9))
    );
    println!(
        "  signed GET /v1/accounts/dev (keep-alive, client+server): p50 {}  p99 {}  max {}   target p50 < 1 ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().context("no samples")?)
    );
    println!(
        "  idle RSS after start:                                {:.1} MiB",
        rss_fresh as f64 / 1024.0
    );
    println!(
        "  idle RSS after the reads:                            {:.1} MiB   target < 30 MB",
        rss as f64 / 1024.0
    );
    Ok(())
}
