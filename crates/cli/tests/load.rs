//! `spindle load` against a local HTTP server (the twine app, in this process): rates per
//! tenant follow the plan and the spike, nothing fails, the plot is written; anything but a
//! loopback target is refused.

mod common;

use std::process::Command;

#[test]
fn load_follows_the_plan_against_a_local_server_and_plots_it() {
    let server = twine_app::Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let o = Command::new(common::BIN)
        .args([
            "load",
            &format!("http://{addr}/report?month=2026-11&rounds=2000"),
        ])
        .args([
            "--tenants",
            "3",
            "--rate",
            "90/s",
            "--spike",
            "tenant-1:4x@2s",
            "--duration",
            "4s",
            "-o",
            "json",
            "--plot",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    let get = |t: usize, k: &str| summary[t][k].as_u64().unwrap();
    // Planned: tenant-2 and tenant-3 at 30/s for 4 s; tenant-1 at 30/s for 2 s, then 120/s.
    for (t, planned) in [(0, 300), (1, 120), (2, 120)] {
        let n = get(t, "requests");
        assert!(
            n * 10 >= planned * 9 && n <= planned + 2,
            "tenant-{}: {n} requests of {planned} planned",
            t + 1
        );
        assert_eq!(get(t, "errors"), 0);
        assert_eq!(get(t, "shed"), 0);
        assert!(summary[t]["p99_ms"].as_f64().unwrap() > 0.0);
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("tenant-1") && plot.contains("p99 latency"),
        "{}",
        &plot[..plot.len().min(300)]
    );
}

#[test]
fn load_refuses_targets_off_loopback() {
    for (url, says) in [
        ("http://10.1.2.3:80/", "not a loopback address"),
        ("http://example.com/", "loopback"),
    ] {
        let o = Command::new(common::BIN)
            .args(["load", url, "--duration", "1s"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(
            common::stderr(&o).contains(says),
            "{url}: {}",
            common::stderr(&o)
        );
    }
}
