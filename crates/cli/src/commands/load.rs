//! `spindle load URL`: a bounded, loopback-only HTTP load generator with a live view and a
//! plot of the run.
//!
//! Open loop: each tenant's requests are scheduled at its rate whatever the server does, as
//! users would send them; a request that finds every connection busy is counted as *shed*
//! (the generator never queues without bound). Each tenant is `tenant-N`, sent as
//! `X-Tenant-Id`. Limits: loopback targets (127.0.0.0/8) only, at most 20 000 requests/s,
//! 100 tenants, 600 s and 512 connections.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// `http://127.0.0.1:PORT/path` (loopback only)
    pub url: String,
    /// Number of tenants (`tenant-1` … `tenant-N`), sent as `X-Tenant-Id`
    #[arg(long, default_value_t = 5)]
    pub tenants: u32,
    /// Total base request rate across tenants, e.g. `200/s`
    #[arg(long, default_value = "100/s")]
    pub rate: String,
    /// A tenant's rate multiplied from a time on: `tenant-1:10x@20s`, optionally for a
    /// while: `tenant-1:10x@20s+15s` (repeatable)
    #[arg(long)]
    pub spike: Vec<String>,
    /// How long to run, e.g. `60s` or `2m`
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Connections (and so requests in flight) at most
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// HTTP method; POST sends a small expense form
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Where to write the plot of the run (SVG)
    #[arg(long, default_value = "spindle-load.svg")]
    pub plot: std::path::PathBuf,
    /// An auto scaling group to show (instances, desired, activities) from the API
    #[arg(long)]
    pub group: Option<String>,
}

/// A parsed, bounded plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub tenants: u32,
    pub rate: f64,
    pub spikes: Vec<Spike>,
    pub duration: Duration,
    pub connections: u32,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    pub tenant: u32,
    pub factor: f64,
    pub start: f64,
    pub length: Option<f64>,
}

fn seconds(s: &str, what: &str) -> Result<f64> {
    let (n, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    match n.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v * mult),
        _ => bail!("{what} `{s}` is not a duration like 20s, 500ms or 2m"),
    }
}

impl Plan {
    pub fn parse(a: &LoadArgs) -> Result<Plan> {
        let rest = a
            .url
            .strip_prefix("http://")
            .with_context(|| format!("URL `{}` must start with http://", a.url))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("port `{p}` in `{}` is not a number", a.url))?,
            ),
            None => (hostport, 80),
        };
        let ip: Ipv4Addr = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse().map_err(|_| anyhow::anyhow!("host `{host}` must be a 127.x.y.z address or localhost: spindle load only sends to loopback"))?
        };
        if !ip.is_loopback() {
            bail!("{ip} is not a loopback address: spindle load only sends to 127.0.0.0/8");
        }
        let rate = a
            .rate
            .strip_suffix("/s")
            .unwrap_or(&a.rate)
            .parse::<f64>()
            .ok()
            .filter(|r| *r > 0.0 && *r <= 20_000.0)
            .with_context(|| format!("--rate `{}` must be like 200/s, at most 20000/s", a.rate))?;
        if a.tenants == 0 || a.tenants > 100 {
            bail!("--tenants {} must be between 1 and 100", a.tenants);
        }
        let duration = seconds(&a.duration, "--duration")?;
        if duration <= 0.0 || duration > 600.0 {
            bail!(
                "--duration {} must be more than 0 and at most 600 s",
                a.duration
            );
        }
        if a.connections == 0 || a.connections > 512 {
            bail!("--connections {} must be between 1 and 512", a.connections);
        }
        let method = a.method.to_ascii_uppercase();
        if method != "GET" && method != "POST" {
            bail!("--method {} must be GET or POST", a.method);
        }
        let mut spikes = Vec::new();
        for s in &a.spike {
            let bad = || {
                anyhow::anyhow!(
                    "--spike `{s}` must look like tenant-1:10x@20s or tenant-1:10x@20s+15s"
                )
            };
            let (t, rest) = s.split_once(':').ok_or_else(bad)?;
            let tenant: u32 = t
                .strip_prefix("tenant-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?;
            if tenant == 0 || tenant > a.tenants {
                bail!(
                    "--spike `{s}`: there are tenants tenant-1 … tenant-{}",
                    a.tenants
                );
            }
            let (f, when) = rest.split_once("x@").ok_or_else(bad)?;
            let factor: f64 = f
                .parse()
                .ok()
                .filter(|f: &f64| *f > 0.0 && *f <= 100.0)
                .ok_or_else(bad)?;
            let (start, length) = match when.split_once('+') {
                Some((a, b)) => (
                    seconds(a, "--spike start")?,
                    Some(seconds(b, "--spike length")?),
                ),
                None => (seconds(when, "--spike start")?, None),
            };
            spikes.push(Spike {
                tenant,
                factor,
                start,
                length,
            });
        }
        let plan = Plan {
            addr: SocketAddr::from((ip, port)),
            host: hostport.to_string(),
            path,
            tenants: a.tenants,
            rate,
            spikes,
            duration: Duration::from_secs_f64(duration),
            connections: a.connections,
            method,
        };
        let peak: f64 = (1..=plan.tenants).map(|t| plan.peak_rate(t)).sum();
        if peak > 20_000.0 {
            bail!("the spikes raise the rate to {peak:.0}/s; at most 20000/s");
        }
        Ok(plan)
    }

    /// Tenant `t`'s rate (requests/s) at `at` seconds into the run.
    pub fn tenant_rate(&self, t: u32, at: f64) -> f64 {
        let base = self.rate / f64::from(self.tenants);
        let mut factor = 1.0f64;
        for s in self.spikes.iter().filter(|s| s.tenant == t) {
            if at >= s.start && s.length.is_none_or(|l| at < s.start + l) {
                factor = factor.max(s.factor);
            }
        }
        base * factor
    }

    fn peak_rate(&self, t: u32) -> f64 {
        let base = self.rate / f64::from(self.tenants);
        self.spikes
            .iter()
            .filter(|s| s.tenant == t)
            .map(|s| base * s.factor)
            .fold(base, f64::max)
    }
}

/// What one second of one tenant looked like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    pub ok: u64,
    pub errors: u64,
    pub shed: u64,
    pub latencies_us: Vec<u32>,
}

/// `q` in 0..=1 of sorted values.
pub fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

type Stats = Arc<Mutex<Vec<BTreeMap<u32, Bucket>>>>;

struct Job {
    tenant: u32,
    second: usize,
}

fn request(
    plan: &Plan,
    conn: &mut Option<BufReader<TcpStream>>,
    tenant: u32,
) -> std::io::Result<u16> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&plan.addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
    }
    let r = conn.as_mut().expect("connected above");
    let body = if plan.method == "POST" {
        "amount=12.34&month=2026-11&category=travel"
    } else {
        ""
    };
    let req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nX-Tenant-Id: tenant-{tenant}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        plan.method,
        plan.path,
        plan.host,
        body.len()
    );
    r.get_mut().write_all(req.as_bytes())?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if read_head_and_body(r)? {
        *conn = None;
    }
    Ok(status)
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut l = String::new();
    if r.read_line(&mut l)? == 0 {
        return Err(eof());
    }
    Ok(l)
}

/// Reads a response's headers (after the status line) and its whole body, by
/// `Content-Length`, chunked, or to the end of the connection; whether the connection is done.
fn read_head_and_body(r: &mut impl BufRead) -> std::io::Result<bool> {
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        let h = read_line(r)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().ends_with("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    if chunked {
        loop {
            let size = read_line(r)?;
            let size = size.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(r)?.trim_end().is_empty() {}
                return Ok(close);
            }
            if size > 16 << 20 {
                return Err(bad("chunk over 16 MiB"));
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
        }
    }
    match length {
        Some(n) => {
            let mut body = vec![0; n.min(16 << 20)];
            r.read_exact(&mut body)?;
            Ok(close)
        }
        // Neither: the body runs to the end of the connection.
        None => {
            std::io::copy(&mut r.take(16 << 20), &mut std::io::sink())?;
            Ok(true)
        }
    }
}

fn worker(plan: Arc<Plan>, rx: Arc<Mutex<Receiver<(Job, Instant)>>>, stats: Stats) {
    let mut conn = None;
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((job, _queued)) = next else { return };
        let started = Instant::now();
        let r = request(&plan, &mut conn, job.tenant);
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if r.is_err() {
            conn = None;
        }
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        let b = s[job.second].entry(job.tenant).or_default();
        match r {
            Ok(st) if (200..400).contains(&st) => {
                b.ok += 1;
                b.latencies_us.push(us);
            }
            _ => b.errors += 1,
        }
    }
}

/// Schedules every tenant's requests at its rate for the plan's duration.
fn dispatch(
    plan: &Plan,
    tx: &SyncSender<(Job, Instant)>,
    stats: &Stats,
    start: Instant,
    stop: &AtomicBool,
) {
    let total = plan.duration.as_secs_f64();
    let mut next: Vec<f64> = (1..=plan.tenants)
        .map(|t| f64::from(t - 1) * 0.001)
        .collect();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // The earliest next send across tenants.
        let (i, at) = next
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::MAX), |a, (i, v)| if v < a.1 { (i, v) } else { a });
        if at >= total {
            return;
        }
        let now = start.elapsed().as_secs_f64();
        if at > now {
            std::thread::sleep(Duration::from_secs_f64((at - now).min(0.05)));
            continue;
        }
        let tenant = i as u32 + 1;
        let second = at as usize;
        match tx.try_send((Job { tenant, second }, Instant::now())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                s[second].entry(tenant).or_default().shed += 1;
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
        let rate = plan.tenant_rate(tenant, at).max(0.01);
        next[i] = at + 1.0 / rate;
    }
}

/// What the group looked like in one second, when `--group` is given.
#[derive(Debug, Clone, Default)]
struct GroupSecond {
    desired: u32,
    in_service: u32,
}

fn fmt_ms(us: Option<u32>) -> String {
    us.map(|u| format!("{:.1}", f64::from(u) / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// Renders the view of the last completed second.
fn view(
    plan: &Plan,
    stats: &[BTreeMap<u32, Bucket>],
    sec: usize,
    group: Option<&(GroupSecond, Vec<String>)>,
) -> String {
    let mut o = format!(
        "spindle load {}{}  t={}s/{}s\n",
        plan.host,
        plan.path,
        sec + 1,
        plan.duration.as_secs()
    );
    o.push_str(&format!(
        "{:<11} {:>8} {:>8} {:>8} {:>7} {:>6}\n",
        "TENANT", "RATE/s", "p50 ms", "p99 ms", "ERRORS", "SHED"
    ));
    for t in 1..=plan.tenants {
        let b = stats[sec].get(&t).cloned().unwrap_or_default();
        let mut l = b.latencies_us.clone();
        l.sort_unstable();
        o.push_str(&format!(
            "{:<11} {:>8} {:>8} {:>8} {:>7} {:>6}\n",
            format!("tenant-{t}"),
            b.ok + b.errors,
            fmt_ms(percentile(&l, 0.5)),
            fmt_ms(percentile(&l, 0.99)),
            b.errors,
            b.shed
        ));
    }
    if let Some((g, acts)) = group {
        o.push_str(&format!(
            "group: {} in service, desired {}\n",
            g.in_service, g.desired
        ));
        for a in acts {
            o.push_str(&format!("  {a}\n"));
        }
    }
    o
}

fn plot(
    plan: &Plan,
    stats: &[BTreeMap<u32, Bucket>],
    groups: &[Option<GroupSecond>],
    path: &std::path::Path,
) -> Result<()> {
    use plotters::prelude::*;
    let secs = stats.len().max(1);
    let rate = |t: u32, s: usize| {
        stats[s]
            .get(&t)
            .map(|b| (b.ok + b.errors) as f64)
            .unwrap_or(0.0)
    };
    let p99 = |t: u32, s: usize| {
        stats[s]
            .get(&t)
            .and_then(|b| {
                let mut l = b.latencies_us.clone();
                l.sort_unstable();
                percentile(&l, 0.99)
            })
            .map(|u| f64::from(u) / 1000.0)
    };
    let max_rate = (0..secs)
        .flat_map(|s| (1..=plan.tenants).map(move |t| (t, s)))
        .map(|(t, s)| rate(t, s))
        .fold(1.0, f64::max);
    let max_p99 = (0..secs)
        .flat_map(|s| (1..=plan.tenants).map(move |t| (t, s)))
        .filter_map(|(t, s)| p99(t, s))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let (top, bottom) = root.split_vertically(350);
    let err = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("plot: {e:?}");
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    {
        let mut c = ChartBuilder::on(&top)
            .caption(
                "requests/s per tenant (instances dashed)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..secs as f64, 0f64..max_rate * 1.1)
            .map_err(err)?;
        c.configure_mesh().x_desc("s").draw().map_err(err)?;
        for t in 1..=plan.tenants {
            let col = colors[(t as usize - 1) % colors.len()];
            c.draw_series(LineSeries::new(
                (0..secs).map(|s| (s as f64, rate(t, s))),
                col,
            ))
            .map_err(err)?
            .label(format!("tenant-{t}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
        }
        if groups.iter().any(Option::is_some) {
            // Instances on the same axis, scaled so the largest count reaches the top.
            let most = groups
                .iter()
                .flatten()
                .map(|g| g.in_service.max(g.desired))
                .max()
                .unwrap_or(1)
                .max(1);
            let k = max_rate / f64::from(most);
            c.draw_series(LineSeries::new(
                groups.iter().enumerate().filter_map(|(s, g)| {
                    g.as_ref().map(|g| (s as f64, f64::from(g.in_service) * k))
                }),
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("in service (×{k:.0} req/s)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.stroke_width(2)));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    {
        let mut c = ChartBuilder::on(&bottom)
            .caption("p99 latency per tenant (ms)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..secs as f64, 0f64..max_p99 * 1.1)
            .map_err(err)?;
        c.configure_mesh().x_desc("s").draw().map_err(err)?;
        for t in 1..=plan.tenants {
            let col = colors[(t as usize - 1) % colors.len()];
            c.draw_series(LineSeries::new(
                (0..secs).filter_map(|s| p99(t, s).map(|v| (s as f64, v))),
                col,
            ))
            .map_err(err)?;
        }
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("plot {}: {e}", path.display()))?;
    Ok(())
}

/// The summary of a run, per tenant (also `--output json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantSummary {
    pub tenant: String,
    pub requests: u64,
    pub errors: u64,
    pub shed: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub fn run(
    args: &LoadArgs,
    group: Option<(&crate::context::Context, String)>,
    json: bool,
) -> Result<()> {
    let plan = Arc::new(Plan::parse(args)?);
    let secs = plan.duration.as_secs_f64().ceil() as usize;
    let stats: Stats = Arc::new(Mutex::new(vec![BTreeMap::new(); secs]));
    let (tx, rx) = sync_channel::<(Job, Instant)>(plan.connections as usize);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..plan.connections)
        .map(|_| {
            let (p, r, s) = (plan.clone(), rx.clone(), stats.clone());
            std::thread::spawn(move || worker(p, r, s))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let dispatcher = {
        let (p, s, st) = (plan.clone(), stats.clone(), stop.clone());
        std::thread::spawn(move || dispatch(&p, &tx, &s, start, &st))
    };
    let tty = std::io::stdout().is_terminal() && !json;
    let mut groups: Vec<Option<GroupSecond>> = Vec::with_capacity(secs);
    for sec in 0..secs {
        let until = start + Duration::from_secs(sec as u64 + 1);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let g = group.as_ref().and_then(|(cx, name)| {
            let c = cx.client().ok()?;
            let account = cx.account().ok()?;
            let d = c.describe_group(&account, name).ok()?;
            let acts = c.group_activities(&account, name).ok().unwrap_or_default();
            let gs = GroupSecond {
                desired: d.desired_capacity,
                in_service: d
                    .instances
                    .iter()
                    .filter(|i| i.lifecycle_state == "InService")
                    .count() as u32,
            };
            let last: Vec<String> = acts
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|a| format!("{} {}", super::asg::clock(a.at), a.cause))
                .collect();
            Some((gs, last))
        });
        groups.push(g.as_ref().map(|(gs, _)| gs.clone()));
        if json {
            continue;
        }
        // The second just finished may still have replies in flight: show the one before.
        let shown = sec.saturating_sub(1);
        let text = view(
            &plan,
            &stats.lock().unwrap_or_else(|p| p.into_inner()),
            shown,
            g.as_ref(),
        );
        if tty {
            print!("\x1b[H\x1b[2J{text}");
        } else {
            let first = text.lines().next().unwrap_or_default();
            println!("{first}");
        }
        let _ = std::io::stdout().flush();
    }
    stop.store(true, Ordering::SeqCst);
    let _ = dispatcher.join();
    // Workers end when the channel closes (the dispatcher dropped its sender).
    for w in workers {
        let _ = w.join();
    }
    let stats = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut summary = Vec::new();
    for t in 1..=plan.tenants {
        let mut all = Bucket::default();
        for s in &stats {
            if let Some(b) = s.get(&t) {
                all.ok += b.ok;
                all.errors += b.errors;
                all.shed += b.shed;
                all.latencies_us.extend(&b.latencies_us);
            }
        }
        all.latencies_us.sort_unstable();
        let ms = |q| percentile(&all.latencies_us, q).map(|u| f64::from(u) / 1000.0);
        summary.push(TenantSummary {
            tenant: format!("tenant-{t}"),
            requests: all.ok + all.errors,
            errors: all.errors,
            shed: all.shed,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        });
    }
    plot(&plan, &stats, &groups, &args.plot)?;
    if json {
        crate::output::json(&summary);
    } else {
        let rows: Vec<Vec<String>> = summary
            .iter()
            .map(|s| {
                let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
                vec![
                    s.tenant.clone(),
                    s.requests.to_string(),
                    f(s.p50_ms),
                    f(s.p99_ms),
                    s.errors.to_string(),
                    s.shed.to_string(),
                ]
            })
            .collect();
        crate::output::table(
            &["TENANT", "REQUESTS", "p50 ms", "p99 ms", "ERRORS", "SHED"],
            &rows,
        );
        println!("plot: {}", args.plot.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> LoadArgs {
        LoadArgs {
            url: url.into(),
            tenants: 5,
            rate: "200/s".into(),
            spike: vec!["tenant-1:10x@20s".into()],
            duration: "60s".into(),
            connections: 64,
            method: "GET".into(),
            plot: "x.svg".into(),
            group: None,
        }
    }

    #[test]
    fn plans_rates_and_spikes() {
        let p = Plan::parse(&args("http://127.0.0.1:8080/report?month=2026-11")).unwrap();
        assert_eq!(p.path, "/report?month=2026-11");
        assert_eq!(p.tenant_rate(1, 10.0), 40.0);
        assert_eq!(p.tenant_rate(1, 20.0), 400.0);
        assert_eq!(p.tenant_rate(2, 30.0), 40.0);
        let mut a = args("http://localhost:9/");
        a.spike = vec!["tenant-2:3x@5s+10s".into()];
        let p = Plan::parse(&a).unwrap();
        assert_eq!(
            (p.tenant_rate(2, 14.9), p.tenant_rate(2, 15.0)),
            (120.0, 40.0)
        );
    }

    #[test]
    fn refuses_what_is_not_loopback_or_not_bounded() {
        let cases = [
            (args("http://10.0.0.1:80/"), "not a loopback address"),
            (
                args("http://example.com/"),
                "must be a 127.x.y.z address or localhost",
            ),
            (args("https://127.0.0.1/"), "must start with http://"),
            (
                LoadArgs {
                    rate: "50000/s".into(),
                    ..args("http://127.0.0.1/")
                },
                "at most 20000/s",
            ),
            (
                LoadArgs {
                    duration: "2h".into(),
                    ..args("http://127.0.0.1/")
                },
                "is not a duration",
            ),
            (
                LoadArgs {
                    duration: "601s".into(),
                    ..args("http://127.0.0.1/")
                },
                "at most 600 s",
            ),
            (
                LoadArgs {
                    spike: vec!["tenant-9:2x@1s".into()],
                    ..args("http://127.0.0.1/")
                },
                "tenant-1 … tenant-5",
            ),
            (
                LoadArgs {
                    spike: vec!["tenant-1:2y1s".into()],
                    ..args("http://127.0.0.1/")
                },
                "must look like",
            ),
            (
                LoadArgs {
                    rate: "19000/s".into(),
                    spike: vec!["tenant-1:10x@1s".into()],
                    ..args("http://127.0.0.1/")
                },
                "at most 20000/s",
            ),
        ];
        for (a, says) in cases {
            let e = Plan::parse(&a).unwrap_err().to_string();
            assert!(e.contains(says), "{}: {e}", a.url);
        }
    }

    #[test]
    fn reads_bodies_by_length_chunks_or_to_the_end() {
        let two = b"Content-Length: 3\r\n\r\nabcHTTP/1.1".to_vec();
        let mut r = std::io::Cursor::new(two);
        assert!(!read_head_and_body(&mut r).unwrap());
        assert_eq!(r.position(), 24, "stops at the next response");
        // A CGI answer passed on chunked (no length): the next response must start clean.
        let chunked =
            b"Transfer-Encoding: chunked\r\n\r\n4;x=1\r\ni-12\r\n1\r\n\n\r\n0\r\n\r\nNEXT";
        let mut r = std::io::Cursor::new(chunked.to_vec());
        assert!(!read_head_and_body(&mut r).unwrap());
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
        let mut r = std::io::Cursor::new(b"Connection: close\r\n\r\nto the end".to_vec());
        assert!(read_head_and_body(&mut r).unwrap());
        let mut r = std::io::Cursor::new(b"Transfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec());
        assert!(read_head_and_body(&mut r).is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
