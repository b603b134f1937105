//! Twine's expenses service: a small multi-tenant HTTP/1.1 API with no dependencies.
//!
//! The tenant (a company id) comes from the `X-Tenant-Id` header or a `/t/{tenant}/` path
//! prefix. Routes:
//! - `GET /healthz` — `ok`, for load balancer health checks.
//! - `POST /expenses` — form body `amount=12.34&month=2026-11&category=travel&description=…`.
//! - `GET /expenses?month=2026-11` — the tenant's expenses as JSON.
//! - `GET /report?month=2026-11&rounds=N` — the monthly report: totals per category and a
//!   risk score per expense that costs `rounds` hashing rounds each (default 20 000), so
//!   load shows up as CPU.
//!
//! Every response carries `X-Served-By: <hostname>`, so a load generator can see which
//! instance answered. Limits keep one tenant from exhausting memory: 64 KiB bodies, 10 000
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
    pub body: String,
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
    Response {
        status,
        body: format!("{{\"error\":{}}}", json_str(msg)),
    }
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
}

impl App {
    /// Handles one request. `tenant_header` is the `X-Tenant-Id` value, if any.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        tenant_header: Option<&str>,
        body: &str,
    ) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let q = form(query);
        if path == "/healthz" {
            return Response {
                status: 200,
                body: "ok".into(),
            };
        }
        let (tenant, route) = match path.strip_prefix("/t/") {
            Some(rest) => match rest.split_once('/') {
                Some((t, r)) => (Some(t.to_string()), format!("/{r}")),
                None => (Some(rest.to_string()), "/".into()),
            },
            None => (tenant_header.map(str::to_string), path.to_string()),
        };
        let Some(tenant) = tenant else {
            return error(
                400,
                "say which company: an X-Tenant-Id header or a /t/{tenant}/ path",
            );
        };
        if !valid_tenant(&tenant) {
            return error(400, "tenant id must be 1-64 letters, digits, - or _");
        }
        match (method, route.as_str()) {
            ("POST", "/expenses") => self.submit(&tenant, &form(body)),
            ("GET", "/expenses") => self.list(&tenant, q.get("month").map(String::as_str)),
            ("GET", "/report") => {
                let Some(month) = q.get("month").filter(|m| valid_month(m)) else {
                    return error(400, "month=YYYY-MM is required");
                };
                let rounds = match q.get("rounds").map(|r| r.parse::<u64>()) {
                    None => 20_000,
                    Some(Ok(r)) if r <= MAX_ROUNDS => r,
                    _ => return error(400, &format!("rounds must be a number up to {MAX_ROUNDS}")),
                };
                self.report(&tenant, month, rounds)
            }
            (_, "/expenses" | "/report") => error(405, "method not allowed"),
            _ => error(404, "no such route (try /expenses or /report)"),
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
        Response {
            status: 201,
            body: format!("{{\"id\":{id},\"amount\":\"{}\"}}", cents(amount)),
        }
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
        Response {
            status: 200,
            body: format!(
                "{{\"tenant\":{},\"expenses\":[{}]}}",
                json_str(tenant),
                items.join(",")
            ),
        }
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
        Response {
            status: 200,
            body: format!(
                "{{\"tenant\":{},\"month\":{},\"count\":{},\"total\":\"{}\",\"by_category\":{{{}}},\"flagged\":{flagged},\"max_risk\":{score},\"elapsed_ms\":{}}}",
                json_str(tenant),
                json_str(month),
                expenses.len(),
                cents(total),
                by.join(","),
                started.elapsed().as_millis()
            ),
        }
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

impl Server {
    pub fn bind(addr: &str) -> std::io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            app: App::default(),
            served_by: hostname(),
        })
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
            let _ = write_response(&mut w, served_by, &error(400, "bad request line"), false);
            return;
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut keep_alive = version == "HTTP/1.1";
        let mut length = 0usize;
        let mut tenant = None;
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
            );
            return;
        }
        let mut body = vec![0; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let resp = app.handle(
            &method,
            &target,
            tenant.as_deref(),
            &String::from_utf8_lossy(&body),
        );
        if write_response(&mut w, served_by, &resp, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

fn write_response(
    w: &mut TcpStream,
    served_by: &str,
    r: &Response,
    keep_alive: bool,
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
    let ctype = if r.body.starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nX-Served-By: {served_by}\r\nConnection: {}\r\n\r\n",
        r.status,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    w.write_all(head.as_bytes())?;
    w.write_all(r.body.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_kept_apart() {
        let app = App::default();
        let r = app.handle(
            "POST",
            "/expenses",
            Some("acme"),
            "amount=12.5&month=2026-11&category=travel&description=Taxi+to+%22HQ%22",
        );
        assert_eq!(
            r,
            Response {
                status: 201,
                body: "{\"id\":1,\"amount\":\"12.50\"}".into()
            }
        );
        app.handle("POST", "/t/globex/expenses", None, "amount=3&month=2026-11");
        let r = app.handle("GET", "/expenses?month=2026-11", Some("acme"), "");
        assert_eq!(r.body, "{\"tenant\":\"acme\",\"expenses\":[{\"id\":1,\"amount\":\"12.50\",\"month\":\"2026-11\",\"category\":\"travel\",\"description\":\"Taxi to \\\"HQ\\\"\"}]}");
        let r = app.handle("GET", "/t/globex/expenses", None, "");
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
            app.handle(
                "POST",
                "/expenses",
                Some("acme"),
                &format!("amount={a}&month=2026-11&category={c}"),
            );
        }
        let r = app.handle("GET", "/report?month=2026-11&rounds=1000", Some("acme"), "");
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
            ("GET", "/report", Some("acme"), "", 400, "month=YYYY-MM"),
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
            let r = app.handle(m, t, tenant, body);
            assert_eq!(r.status, status, "{m} {t}: {}", r.body);
            assert!(r.body.contains(says), "{m} {t}: {}", r.body);
        }
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
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
            "GET /expenses HTTP/1.1\r\nHost: x\r\nX-Tenant-Id: acme\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
        assert!(out.contains("X-Served-By: "), "{out}");
        assert!(
            out.contains("HTTP/1.1 200 OK") && out.contains("\"amount\":\"7.00\""),
            "{out}"
        );
    }
}
