//! Twine's expenses service: a small multi-tenant HTTP/1.1 API with no dependencies.
//!
//! The tenant (a company id) comes from the `X-Tenant-Id` header or a `/t/{tenant}/` path
//! prefix. Routes:
//! - `GET /` (and `GET /t/{tenant}/`) — the landing page: which environment and instance
//!   answered, how tenants are named, and links that work. HTML for browsers; JSON when the
//!   `Accept` header asks for `application/json` and not for `text/html`.
//! - `GET /healthz` — `ok`, for load balancer health checks.
//! - `POST /expenses` — form body `amount=12.34&month=2026-11&category=travel&description=…`.
//! - `GET /expenses?month=2026-11` — the tenant's expenses as JSON.
//! - `GET /report?month=2026-11&rounds=N` — the monthly report (default: this month, UTC):
//!   totals per category and a risk score per expense that costs `rounds` hashing rounds each
//!   (default 20 000), so load shows up as CPU.
//!
//! Every response carries `X-Served-By: <hostname>`, so a load generator can see which
//! instance answered. The environment and instance id on the landing page come from the
//! instance metadata service (IMDSv2 at 169.254.169.254: the instance id and the instance's
//! `env` tag), asked once in the background at start; `TWINE_ENV` overrides the environment,
//! and without either the page says it doesn't know. Limits keep one tenant from exhausting memory: 64 KiB bodies, 10 000
//! expenses per tenant, 1 000 tenants.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_BODY: usize = 64 * 1024;
const MAX_EXPENSES: usize = 10_000;
const MAX_TENANTS: usize = 1_000;
const MAX_ROUNDS: u64 = 2_000_000;

#[derive(Debug, Clone, PartialEq)]
struct Expense {
    id: u64,
    cents: i64,
    month: String,
    category: String,
    description: String,
}

#[derive(Default)]
struct Books {
    tenants: HashMap<String, Vec<Expense>>,
    next_id: u64,
}

/// A response: status, content type, body.
#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// One request as the app sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// The `X-Tenant-Id` header.
    pub tenant: Option<&'a str>,
    /// The `Accept` header.
    pub accept: Option<&'a str>,
    pub body: &'a str,
}

/// Who is answering: shown on the landing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    /// The environment (`dev`, `prod`): `TWINE_ENV`, else the instance's `env` tag.
    pub environment: Option<String>,
    /// The instance id (`i-…`) from the metadata service.
    pub instance_id: Option<String>,
    pub hostname: String,
}

impl Default for About {
    fn default() -> Self {
        About {
            environment: std::env::var("TWINE_ENV").ok().filter(|e| !e.is_empty()),
            instance_id: None,
            hostname: hostname(),
        }
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn error(status: u16, msg: &str) -> Response {
    Response::json(status, format!("{{\"error\":{}}}", json_str(msg)))
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Whether the client wants JSON rather than a page: it asks for `application/json` (or any
/// `+json` type) and not for `text/html`. A browser sends `text/html`; curl sends `*/*` and
/// gets the page.
fn wants_json(accept: Option<&str>) -> bool {
    let a = accept.unwrap_or("").to_ascii_lowercase();
    !a.contains("text/html") && (a.contains("application/json") || a.contains("+json"))
}

/// The month of a Unix time, `YYYY-MM` (UTC; the civil-from-days algorithm, proleptic
/// Gregorian).
fn month_of(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

fn this_month() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    month_of(now)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        && matches!(
            &m[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

/// `12.34` → 1234 cents.
fn parse_amount(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 2
        || whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    Some(w * 100 + f)
}

fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// The risk score of an expense: `rounds` rounds of a 64-bit mix over its fields. Pure CPU.
fn risk(e: &Expense, rounds: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ e.id;
    for b in e.description.bytes().chain(e.category.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= e.cents as u64;
    for _ in 0..rounds {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
    }
    h % 100
}

/// The service's state and request handling, independent of sockets (tested directly).
#[derive(Clone, Default)]
pub struct App {
    books: Arc<Mutex<Books>>,
    about: Arc<Mutex<About>>,
}

impl App {
    /// An app that says it is `about` on its landing page.
    pub fn with_about(about: About) -> App {
        App {
            books: Arc::default(),
            about: Arc::new(Mutex::new(about)),
        }
    }

    /// Who the landing page says is answering.
    pub fn about(&self) -> About {
        self.about.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Handles one request.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        let q = form(query);
        if path == "/healthz" {
            return Response {
                status: 200,
                content_type: "text/plain",
                body: "ok".into(),
            };
        }
        let (tenant, route) = match path.strip_prefix("/t/") {
            Some(rest) => match rest.split_once('/') {
                Some((t, r)) => (Some(t.to_string()), format!("/{r}")),
                None => (Some(rest.to_string()), "/".into()),
            },
            None => (req.tenant.map(str::to_string), path.to_string()),
        };
        if let Some(t) = &tenant {
            if !valid_tenant(t) {
                return error(400, "tenant id must be 1-64 letters, digits, - or _");
            }
        }
        if route == "/" {
            return match req.method {
                "GET" | "HEAD" => self.landing(tenant.as_deref(), wants_json(req.accept)),
                _ => error(405, "method not allowed"),
            };
        }
        let Some(tenant) = tenant else {
            return error(
                400,
                "say which company: an X-Tenant-Id header or a /t/{tenant}/ path (GET / explains)",
            );
        };
        match (req.method, route.as_str()) {
            ("POST", "/expenses") => self.submit(&tenant, &form(req.body)),
            ("GET", "/expenses") => self.list(&tenant, q.get("month").map(String::as_str)),
            ("GET", "/report") => {
                let month = match q.get("month") {
                    None => this_month(),
                    Some(m) if valid_month(m) => m.clone(),
                    Some(_) => return error(400, "month must be YYYY-MM"),
                };
                let rounds = match q.get("rounds").map(|r| r.parse::<u64>()) {
                    None => 20_000,
                    Some(Ok(r)) if r <= MAX_ROUNDS => r,
                    _ => return error(400, &format!("rounds must be a number up to {MAX_ROUNDS}")),
                };
                self.report(&tenant, &month, rounds)
            }
            (_, "/expenses" | "/report") => error(405, "method not allowed"),
            _ => error(404, "no such route (try /, /expenses or /report)"),
        }
    }

    /// The landing page: who answered, how tenants are named, and links to try. `tenant`
    /// (from the path or the header) is the company the links are for; `acme` otherwise.
    fn landing(&self, tenant: Option<&str>, json: bool) -> Response {
        let about = self.about();
        let t = tenant.unwrap_or("acme");
        let links = [
            (format!("/t/{t}/expenses"), "the company's expenses (JSON)"),
            (
                format!("/t/{t}/report"),
                "this month's report: totals per category and risk scores (JSON, CPU-heavy)",
            ),
            (
                "/healthz".to_string(),
                "the health check the load balancer uses",
            ),
        ];
        if json {
            let opt = |v: &Option<String>| v.as_deref().map_or("null".into(), json_str);
            let links: Vec<String> = links
                .iter()
                .map(|(href, what)| {
                    format!(
                        "{{\"href\":{},\"title\":{}}}",
                        json_str(href),
                        json_str(what)
                    )
                })
                .collect();
            return Response::json(
                200,
                format!(
                    "{{\"service\":\"twine\",\"environment\":{},\"instance_id\":{},\"hostname\":{},\"tenant\":{},\"tenant_header\":\"X-Tenant-Id\",\"tenant_path\":\"/t/{{tenant}}/\",\"links\":[{}]}}",
                    opt(&about.environment),
                    opt(&about.instance_id),
                    json_str(&about.hostname),
                    tenant.map_or("null".into(), json_str),
                    links.join(",")
                ),
            );
        }
        let e = html_escape;
        let env = about.environment.as_deref().map_or_else(
            || "an unknown environment (no instance metadata and no TWINE_ENV)".to_string(),
            |v| format!("environment <b>{}</b>", e(v)),
        );
        let instance = match &about.instance_id {
            Some(id) => format!("instance <b>{}</b> (host {})", e(id), e(&about.hostname)),
            None => format!("host <b>{}</b>", e(&about.hostname)),
        };
        let items: String = links
            .iter()
            .map(|(href, what)| {
                format!(
                    "<li><a href=\"{}\"><code>{}</code></a> — {}</li>\n",
                    e(href),
                    e(href),
                    e(what)
                )
            })
            .collect();
        let month = this_month();
        let body = format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Twine ({env_title})</title>
<style>body{{font-family:sans-serif;max-width:42em;margin:2em auto;line-height:1.4}}code{{background:#eee;padding:0 .2em}}</style>
</head>
<body>
<h1>Twine expenses</h1>
<p>This page was served by {instance} in {env}, behind the environment's load balancer.</p>
<h2>Tenants</h2>
<p>Every request names its company (tenant), in one of two ways:</p>
<ul>
<li>a header: <code>X-Tenant-Id: {t}</code> on <code>/expenses</code> and <code>/report</code>, or</li>
<li>a path prefix: <code>/t/{t}/expenses</code>, <code>/t/{t}/report</code>.</li>
</ul>
<p>The load balancer queues each tenant apart, so one company's rush doesn't slow the others.</p>
<h2>Try</h2>
<ul>
{items}</ul>
<form method="post" action="/t/{t}/expenses">
<p>Submit an expense for <code>{t}</code>:
<input name="amount" value="12.34" size="8"> in
<input name="month" value="{month}" size="8">
<input name="category" value="travel" size="10">
<button>Submit</button></p>
</form>
<p>JSON clients get this page as JSON: send <code>Accept: application/json</code>.</p>
</body>
</html>
"#,
            env_title = e(about
                .environment
                .as_deref()
                .unwrap_or("unknown environment")),
            t = e(t),
        );
        Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    fn submit(&self, tenant: &str, f: &BTreeMap<String, String>) -> Response {
        let Some(amount) = f.get("amount").and_then(|a| parse_amount(a)) else {
            return error(
                400,
                "amount must be a positive number with at most 2 decimals, e.g. 12.34",
            );
        };
        let Some(month) = f.get("month").filter(|m| valid_month(m)) else {
            return error(400, "month must be YYYY-MM");
        };
        let category = f.get("category").cloned().unwrap_or_else(|| "other".into());
        let description = f.get("description").cloned().unwrap_or_default();
        if category.len() > 64 || description.len() > 1024 {
            return error(
                400,
                "category is limited to 64 bytes and description to 1024",
            );
        }
        let mut b = self.books.lock().unwrap_or_else(|p| p.into_inner());
        if !b.tenants.contains_key(tenant) && b.tenants.len() >= MAX_TENANTS {
            return error(507, "too many tenants on this instance");
        }
        b.next_id += 1;
        let id = b.next_id;
        let list = b.tenants.entry(tenant.to_string()).or_default();
        if list.len() >= MAX_EXPENSES {
            return error(507, "this tenant has too many expenses on this instance");
        }
        list.push(Expense {
            id,
            cents: amount,
            month: month.clone(),
            category,
            description,
        });
        Response::json(
            201,
            format!("{{\"id\":{id},\"amount\":\"{}\"}}", cents(amount)),
        )
    }

    fn list(&self, tenant: &str, month: Option<&str>) -> Response {
        let b = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let items: Vec<String> = b
            .tenants
            .get(tenant)
            .map(|l| {
                l.iter()
                    .filter(|e| month.is_none_or(|m| e.month == m))
                    .map(|e| format!("{{\"id\":{},\"amount\":\"{}\",\"month\":{},\"category\":{},\"description\":{}}}", e.id, cents(e.cents), json_str(&e.month), json_str(&e.category), json_str(&e.description)))
                    .collect()
            })
            .unwrap_or_default();
        Response::json(
            200,
            format!(
                "{{\"tenant\":{},\"expenses\":[{}]}}",
                json_str(tenant),
                items.join(",")
            ),
        )
    }

    fn report(&self, tenant: &str, month: &str, rounds: u64) -> Response {
        let started = Instant::now();
        let expenses: Vec<Expense> = {
            let b = self.books.lock().unwrap_or_else(|p| p.into_inner());
            b.tenants
                .get(tenant)
                .map(|l| l.iter().filter(|e| e.month == month).cloned().collect())
                .unwrap_or_default()
        };
        let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
        let mut flagged = 0;
        // An empty month still costs the rounds once, so every report request is CPU work.
        let mut score = risk(
            &Expense {
                id: 0,
                cents: 0,
                month: month.into(),
                category: String::new(),
                description: tenant.into(),
            },
            rounds,
        );
        for e in &expenses {
            *totals.entry(e.category.as_str()).or_default() += e.cents;
            let r = risk(e, rounds);
            score = score.max(r);
            if r > 90 {
                flagged += 1;
            }
        }
        let total: i64 = totals.values().sum();
        let by: Vec<String> = totals
            .iter()
            .map(|(k, v)| format!("{}:\"{}\"", json_str(k), cents(*v)))
            .collect();
        Response::json(
            200,
            format!(
                "{{\"tenant\":{},\"month\":{},\"count\":{},\"total\":\"{}\",\"by_category\":{{{}}},\"flagged\":{flagged},\"max_risk\":{score},\"elapsed_ms\":{}}}",
                json_str(tenant),
                json_str(month),
                expenses.len(),
                cents(total),
                by.join(","),
                started.elapsed().as_millis()
            ),
        )
    }
}

/// The HTTP server: a listener and a fixed pool of worker threads.
pub struct Server {
    listener: TcpListener,
    app: App,
    served_by: String,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "twine".into())
}

/// Where an instance asks about itself (IMDSv2, as on EC2).
const METADATA: ([u8; 4], u16) = ([169, 254, 169, 254], 80);

/// One request to the metadata service: the status and body, `None` when it doesn't answer.
fn metadata_call(method: &str, path: &str, header: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(METADATA);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{header}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.trim().to_string()))
}

/// The instance id and `env` tag from the metadata service, if there is one (not on a laptop,
/// nor during the image bake's warm-up run).
fn ask_metadata() -> Option<(String, Option<String>)> {
    let (200, token) = metadata_call(
        "PUT",
        "/latest/api/token",
        "X-aws-ec2-metadata-token-ttl-seconds: 60",
    )?
    else {
        return None;
    };
    let auth = format!("X-aws-ec2-metadata-token: {token}");
    let get = |path: &str| match metadata_call("GET", path, &auth) {
        Some((200, v)) if !v.is_empty() => Some(v),
        _ => None,
    };
    let id = get("/latest/meta-data/instance-id")?;
    Some((id, get("/latest/meta-data/tags/instance/env")))
}

impl Server {
    /// Binds `addr`, then asks the metadata service who this is, in the background (the
    /// landing page shows what it learned; requests never wait for it).
    pub fn bind(addr: &str) -> std::io::Result<Server> {
        let server = Server {
            listener: TcpListener::bind(addr)?,
            app: App::default(),
            served_by: hostname(),
        };
        let about = server.app.about.clone();
        std::thread::spawn(move || {
            // The service may come up a moment after the instance: a few tries, then give up.
            for _ in 0..5 {
                if let Some((id, env)) = ask_metadata() {
                    let mut a = about.lock().unwrap_or_else(|p| p.into_inner());
                    a.instance_id = Some(id);
                    if a.environment.is_none() {
                        a.environment = env;
                    }
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves forever.
    pub fn run(self) {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get() * 8)
            .unwrap_or(16)
            .clamp(8, 64);
        let (tx, rx) = sync_channel::<TcpStream>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx: Arc<Mutex<Receiver<TcpStream>>> = rx.clone();
            let app = self.app.clone();
            let by = self.served_by.clone();
            std::thread::spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                match next {
                    Ok(s) => serve_connection(&app, &by, s),
                    Err(_) => return,
                }
            });
        }
        for s in self.listener.incoming().flatten() {
            // A full queue sheds the connection rather than growing without bound.
            let _ = tx.try_send(s);
        }
    }
}

fn serve_connection(app: &App, served_by: &str, s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_nodelay(true);
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            let _ = write_response(
                &mut w,
                served_by,
                &error(400, "bad request line"),
                false,
                false,
            );
            return;
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut keep_alive = version == "HTTP/1.1";
        let mut length = 0usize;
        let mut tenant = None;
        let mut accept = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.parse().unwrap_or(usize::MAX),
                    "x-tenant-id" => tenant = Some(v.to_string()),
                    "accept" => accept = Some(v.to_string()),
                    "connection" => {
                        keep_alive = v.eq_ignore_ascii_case("keep-alive")
                            || (keep_alive && !v.eq_ignore_ascii_case("close"))
                    }
                    _ => {}
                }
            }
        }
        if length > MAX_BODY {
            let _ = write_response(
                &mut w,
                served_by,
                &error(413, "body larger than 64 KiB"),
                false,
                false,
            );
            return;
        }
        let mut body = vec![0; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let resp = app.handle(&Request {
            method: &method,
            target: &target,
            tenant: tenant.as_deref(),
            accept: accept.as_deref(),
            body: &String::from_utf8_lossy(&body),
        });
        let head_only = method == "HEAD";
        if write_response(&mut w, served_by, &resp, keep_alive, head_only).is_err() || !keep_alive {
            return;
        }
    }
}

fn write_response(
    w: &mut TcpStream,
    served_by: &str,
    r: &Response,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nX-Served-By: {served_by}\r\nConnection: {}\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    w.write_all(head.as_bytes())?;
    if !head_only {
        w.write_all(r.body.as_bytes())?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(app: &App, method: &str, target: &str, tenant: Option<&str>, body: &str) -> Response {
        app.handle(&Request {
            method,
            target,
            tenant,
            accept: None,
            body,
        })
    }

    #[test]
    fn tenants_are_kept_apart() {
        let app = App::default();
        let r = call(
            &app,
            "POST",
            "/expenses",
            Some("acme"),
            "amount=12.5&month=2026-11&category=travel&description=Taxi+to+%22HQ%22",
        );
        assert_eq!(
            r,
            Response {
                status: 201,
                content_type: "application/json",
                body: "{\"id\":1,\"amount\":\"12.50\"}".into()
            }
        );
        call(
            &app,
            "POST",
            "/t/globex/expenses",
            None,
            "amount=3&month=2026-11",
        );
        let r = call(&app, "GET", "/expenses?month=2026-11", Some("acme"), "");
        assert_eq!(r.body, "{\"tenant\":\"acme\",\"expenses\":[{\"id\":1,\"amount\":\"12.50\",\"month\":\"2026-11\",\"category\":\"travel\",\"description\":\"Taxi to \\\"HQ\\\"\"}]}");
        let r = call(&app, "GET", "/t/globex/expenses", None, "");
        assert!(
            r.body.contains("\"amount\":\"3.00\"") && !r.body.contains("acme"),
            "{}",
            r.body
        );
    }

    #[test]
    fn report_totals_and_costs_cpu() {
        let app = App::default();
        for (a, c) in [("10", "travel"), ("2.25", "food"), ("1", "travel")] {
            call(
                &app,
                "POST",
                "/expenses",
                Some("acme"),
                &format!("amount={a}&month=2026-11&category={c}"),
            );
        }
        let r = call(
            &app,
            "GET",
            "/report?month=2026-11&rounds=1000",
            Some("acme"),
            "",
        );
        assert_eq!(r.status, 200);
        assert!(r.body.contains("\"count\":3,\"total\":\"13.25\",\"by_category\":{\"food\":\"2.25\",\"travel\":\"11.00\"}"), "{}", r.body);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let app = App::default();
        let cases = [
            (
                "POST",
                "/expenses",
                None,
                "amount=1&month=2026-11",
                400,
                "X-Tenant-Id",
            ),
            (
                "POST",
                "/expenses",
                Some("a b"),
                "amount=1&month=2026-11",
                400,
                "tenant id",
            ),
            (
                "POST",
                "/expenses",
                Some("acme"),
                "amount=-1&month=2026-11",
                400,
                "amount",
            ),
            (
                "POST",
                "/expenses",
                Some("acme"),
                "amount=1.234&month=2026-11",
                400,
                "amount",
            ),
            (
                "POST",
                "/expenses",
                Some("acme"),
                "amount=1&month=2026-13",
                400,
                "month",
            ),
            (
                "GET",
                "/report?month=2026-1",
                Some("acme"),
                "",
                400,
                "month must be YYYY-MM",
            ),
            ("GET", "/expenses", None, "", 400, "GET / explains"),
            ("POST", "/", None, "", 405, "method"),
            ("GET", "/t/a%20b/", None, "", 400, "tenant id"),
            (
                "GET",
                "/report?month=2026-11&rounds=99999999",
                Some("acme"),
                "",
                400,
                "rounds",
            ),
            ("DELETE", "/expenses", Some("acme"), "", 405, "method"),
            ("GET", "/nope", Some("acme"), "", 404, "no such route"),
        ];
        for (m, t, tenant, body, status, says) in cases {
            let r = call(&app, m, t, tenant, body);
            assert_eq!(r.status, status, "{m} {t}: {}", r.body);
            assert_eq!(r.content_type, "application/json", "{m} {t}");
            assert!(r.body.contains(says), "{m} {t}: {}", r.body);
        }
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }

    fn about() -> About {
        About {
            environment: Some("dev".into()),
            instance_id: Some("i-0123456789abcdef0".into()),
            hostname: "ip-10-40-0-5".into(),
        }
    }

    #[test]
    fn the_landing_page_says_who_answered_and_links_work() {
        let app = App::with_about(about());
        for (target, tenant, links_for) in [
            ("/", None, "acme"),
            ("/", Some("globex"), "globex"),
            ("/t/initech/", None, "initech"),
            ("/t/initech", None, "initech"),
        ] {
            let r = call(&app, "GET", target, tenant, "");
            assert_eq!(r.status, 200, "{target}: {}", r.body);
            assert_eq!(r.content_type, "text/html; charset=utf-8", "{target}");
            assert!(r.body.starts_with("<!DOCTYPE html>"), "{target}");
            for want in [
                "environment <b>dev</b>",
                "instance <b>i-0123456789abcdef0</b> (host ip-10-40-0-5)",
                "X-Tenant-Id",
                "/t/{tenant}/".replace("{tenant}", links_for).as_str(),
                &format!("<a href=\"/t/{links_for}/expenses\">"),
                &format!("<a href=\"/t/{links_for}/report\">"),
            ] {
                assert!(
                    r.body.contains(want),
                    "{target}: no {want:?} in\n{}",
                    r.body
                );
            }
            // Every link on the page answers 200.
            for href in r.body.split("href=\"").skip(1) {
                let href = &href[..href.find('"').unwrap()];
                let linked = call(&app, "GET", href, None, "");
                assert_eq!(linked.status, 200, "{target} links {href}: {}", linked.body);
            }
        }
        // Without metadata, the page says what it doesn't know rather than guessing.
        let r = call(
            &App::with_about(About {
                environment: None,
                instance_id: None,
                hostname: "laptop".into(),
            }),
            "GET",
            "/",
            None,
            "",
        );
        assert!(
            r.body
                .contains("host <b>laptop</b> in an unknown environment"),
            "{}",
            r.body
        );
        // Markup in a name is escaped.
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn json_clients_get_the_landing_page_as_json() {
        let app = App::with_about(about());
        let r = app.handle(&Request {
            method: "GET",
            target: "/",
            accept: Some("application/json"),
            ..Request::default()
        });
        assert_eq!(r.content_type, "application/json");
        assert_eq!(
            r.body,
            "{\"service\":\"twine\",\"environment\":\"dev\",\"instance_id\":\"i-0123456789abcdef0\",\"hostname\":\"ip-10-40-0-5\",\"tenant\":null,\"tenant_header\":\"X-Tenant-Id\",\"tenant_path\":\"/t/{tenant}/\",\"links\":[{\"href\":\"/t/acme/expenses\",\"title\":\"the company's expenses (JSON)\"},{\"href\":\"/t/acme/report\",\"title\":\"this month's report: totals per category and risk scores (JSON, CPU-heavy)\"},{\"href\":\"/healthz\",\"title\":\"the health check the load balancer uses\"}]}"
        );
        // Accept headers as clients send them: JSON only when asked for and HTML is not.
        for (accept, json) in [
            (None, false),
            (Some("*/*"), false),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                false,
            ),
            (Some("application/json"), true),
            (Some("Application/JSON; charset=utf-8"), true),
            (Some("application/problem+json"), true),
            (Some("application/json, text/html"), false),
        ] {
            assert_eq!(wants_json(accept), json, "{accept:?}");
        }
    }

    #[test]
    fn the_report_defaults_to_this_month() {
        for (unix, month) in [
            (0, "1970-01"),
            (951_782_400, "2000-02"),   // 2000-02-29, a leap day
            (1_798_761_599, "2026-12"), // 2026-12-31 23:59:59
            (1_798_761_600, "2027-01"),
        ] {
            assert_eq!(month_of(unix), month, "{unix}");
        }
        let app = App::default();
        let now = this_month();
        call(
            &app,
            "POST",
            "/t/acme/expenses",
            None,
            &format!("amount=5&month={now}"),
        );
        let r = call(&app, "GET", "/t/acme/report?rounds=10", None, "");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains(&format!("\"month\":\"{now}\",\"count\":1")),
            "{}",
            r.body
        );
    }

    #[test]
    fn serves_http_with_keep_alive() {
        let server = Server::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr();
        std::thread::spawn(move || server.run());
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = "amount=7&month=2026-11";
        write!(s, "POST /expenses HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        write!(
            s,
            "GET /expenses HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\n\r\n"
        )
        .unwrap();
        write!(s, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let answers: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 4, "{out}");
        assert!(answers[0].starts_with("201 Created\r\n"), "{out}");
        assert!(out.contains("X-Served-By: "), "{out}");
        assert!(
            answers[1].starts_with("200 OK") && answers[1].contains("\"amount\":\"7.00\""),
            "{out}"
        );
        // HEAD: the page's headers, no body (the next answer follows at once).
        assert!(
            answers[2].starts_with("200 OK")
                && answers[2].contains("Content-Type: text/html; charset=utf-8\r\n")
                && answers[2].ends_with("\r\n\r\n"),
            "{out}"
        );
        assert!(
            answers[3].contains("Content-Type: application/json\r\n")
                && answers[3].contains("\"service\":\"twine\""),
            "{out}"
        );
    }
}
