//! The end of `spindle up`: a URL is printed only once it serves. For a URL that names a load
//! balancer, wait until every target group behind it has a healthy target and the URL itself
//! answers without a server error; on timeout, say which group, its health check and how each
//! target stands. The decision ([`verdict`]) is pure; the polling around it is thin.

use spindle_model::lb::{LoadBalancerInfo, TargetHealthInfo};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Where waiting for one load balancer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every target group has a healthy target.
    Healthy,
    /// Not yet: a line of progress, naming the first group without a healthy target.
    Waiting { group: String, progress: String },
}

/// Whether every target group of `lb` has a healthy target, from `targets` (its
/// `describe-target-health`).
pub fn verdict(lb: &LoadBalancerInfo, targets: &[TargetHealthInfo]) -> Verdict {
    for g in &lb.target_groups {
        let mine: Vec<&TargetHealthInfo> = targets
            .iter()
            .filter(|t| t.target_group == g.name)
            .collect();
        if mine.iter().any(|t| t.state == "healthy") {
            continue;
        }
        let progress = if mine.is_empty() {
            format!("target group {}: no target registered yet", g.name)
        } else {
            let states: Vec<String> = mine
                .iter()
                .map(|t| format!("{} {}", t.id, t.state))
                .collect();
            format!("target group {}: {}", g.name, states.join(", "))
        };
        return Verdict::Waiting {
            group: g.name.clone(),
            progress,
        };
    }
    Verdict::Healthy
}

/// The error when the wait timed out: the URL, the group, its health check and its targets.
pub fn timeout_message(
    url: &str,
    lb: &LoadBalancerInfo,
    targets: &[TargetHealthInfo],
    answer: Option<&str>,
    waited: Duration,
) -> String {
    let secs = waited.as_secs();
    match verdict(lb, targets) {
        Verdict::Waiting { group, progress } => {
            let check = lb
                .target_groups
                .iter()
                .find(|g| g.name == group)
                .and_then(|g| g.health_check.clone())
                .unwrap_or_else(|| "no health check".into());
            format!(
                "{url} does not serve after {secs} s: no healthy target in target group {group} of load balancer {} (health check: {check}); {progress}",
                lb.name
            )
        }
        Verdict::Healthy => format!(
            "{url} does not serve after {secs} s: its targets are healthy, but it answers {}",
            answer.unwrap_or("nothing")
        ),
    }
}

/// The status line of a `GET` of `url` (`http://HOST[:PORT]/PATH`), or why there is none. One
/// request with a short timeout; std only, like the load generator.
pub fn http_status(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let sock: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr} is not an address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // One write: `write!` on an unbuffered stream sends each piece of the format as its own
    // segment, and a server that reads once would see only "GET ".
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: spindle-up\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let head = read_status_line(&mut s).map_err(|e| format!("read: {e}"))?;
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}

/// Reads up to the end of the first line (or 256 bytes, or the end of the stream): one `read`
/// may return less than a line.
fn read_status_line(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// Polls until `lb` has a healthy target in every group and `url` answers below 500, calling
/// `say` with progress; `Err` with [`timeout_message`] after `limit`.
pub fn wait_until_serving(
    client: &spindle_client::Client,
    account: &str,
    lb: &LoadBalancerInfo,
    url: &str,
    limit: Duration,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let targets: Vec<TargetHealthInfo> = client
            .load_balancer(account, &lb.name, "/targets")
            .unwrap_or_default();
        let mut answer = None;
        match verdict(lb, &targets) {
            Verdict::Waiting { progress, .. } => say(&progress),
            Verdict::Healthy => match http_status(url) {
                Ok(code) if code < 500 => return Ok(()),
                Ok(code) => {
                    answer = Some(format!("HTTP {code}"));
                    say(&format!("targets healthy; {url} answers HTTP {code}"));
                }
                Err(e) => {
                    say(&format!("targets healthy; {url}: {e}"));
                    answer = Some(e);
                }
            },
        }
        if started.elapsed() >= limit {
            return Err(timeout_message(
                url,
                lb,
                &targets,
                answer.as_deref(),
                started.elapsed(),
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_model::lb::TargetGroupInfo;

    fn lb(groups: &[&str]) -> LoadBalancerInfo {
        LoadBalancerInfo {
            name: "twine-app-LoadBalancer".into(),
            arn: String::new(),
            dns_name: String::new(),
            address: "127.0.0.9".into(),
            vpc_id: None,
            stack: "twine-app".into(),
            logical_id: "LoadBalancer".into(),
            listeners: Vec::new(),
            target_groups: groups
                .iter()
                .map(|g| TargetGroupInfo {
                    name: (*g).into(),
                    arn: String::new(),
                    port: 8080,
                    algorithm: "round_robin".into(),
                    tenant_key: None,
                    health_check: Some(
                        "GET /healthz on the traffic port, expecting 200, every 5 s".into(),
                    ),
                })
                .collect(),
        }
    }

    fn target(group: &str, id: &str, state: &str) -> TargetHealthInfo {
        TargetHealthInfo {
            target_group: group.into(),
            id: id.into(),
            port: 8080,
            address: "10.40.0.5:8080".into(),
            state: state.into(),
            in_flight: 0,
        }
    }

    #[test]
    fn every_group_needs_a_healthy_target() {
        let waiting = |group: &str, progress: &str| Verdict::Waiting {
            group: group.into(),
            progress: progress.into(),
        };
        let cases: Vec<(&[&str], Vec<TargetHealthInfo>, Verdict)> = vec![
            (
                &["tg"],
                vec![],
                waiting("tg", "target group tg: no target registered yet"),
            ),
            (
                &["tg"],
                vec![
                    target("tg", "i-1", "initial"),
                    target("tg", "i-2", "unhealthy"),
                ],
                waiting("tg", "target group tg: i-1 initial, i-2 unhealthy"),
            ),
            (
                &["tg"],
                vec![
                    target("tg", "i-1", "draining"),
                    target("tg", "i-2", "healthy"),
                ],
                Verdict::Healthy,
            ),
            (
                &["a", "b"],
                vec![target("a", "i-1", "healthy"), target("b", "i-2", "initial")],
                waiting("b", "target group b: i-2 initial"),
            ),
            (&[], vec![], Verdict::Healthy),
        ];
        for (groups, targets, want) in cases {
            assert_eq!(
                verdict(&lb(groups), &targets),
                want,
                "{groups:?} {targets:?}"
            );
        }
    }

    #[test]
    fn a_timeout_names_the_group_and_its_health_check() {
        let m = timeout_message(
            "http://127.0.0.9/",
            &lb(&["tg"]),
            &[target("tg", "i-1", "unhealthy")],
            None,
            Duration::from_secs(120),
        );
        assert_eq!(
            m,
            "http://127.0.0.9/ does not serve after 120 s: no healthy target in target group tg of load balancer twine-app-LoadBalancer (health check: GET /healthz on the traffic port, expecting 200, every 5 s); target group tg: i-1 unhealthy"
        );
        let m = timeout_message(
            "http://127.0.0.9/",
            &lb(&["tg"]),
            &[target("tg", "i-1", "healthy")],
            Some("HTTP 503"),
            Duration::from_secs(120),
        );
        assert!(
            m.ends_with("its targets are healthy, but it answers HTTP 503"),
            "{m}"
        );
    }

    #[test]
    fn http_status_reads_the_status_line() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /x HTTP/1.1\r\n"), "{got:?}");
            s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(http_status(&format!("http://{addr}/x")), Ok(204));
        server.join().unwrap();
        assert!(http_status("https://127.0.0.1/").is_err());
    }
}
