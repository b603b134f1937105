//! Launch benchmark: time from `Runtime::launch` to the first HTTP 200 from busybox httpd inside
//! a fresh instance (median over 20 launches), and VPC create time.
//!
//! Run as root: `cargo run --release -p spindle-runtime --example launch_bench [N] [--idle M]`
//! (N timed launches, default 20; with `--idle M`, also M idle instances at once, reporting
//! host memory per instance).
//! Needs `iproute2`, `nftables`, `busybox-static`. Targets (issue 5): launch < 50 ms median,
//! VPC create < 100 ms. Floors measured on this machine class: process start 1–3 ms,
//! namespaces +2–4 ms, overlay mount ~6 ms; `docker run` 300–1,000 ms.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_runtime::{
    build_busybox_rootfs, ImageConfig, LaunchSpec, Peer, RealKernel, Runtime, RuntimeConfig, SgRule,
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| ms(v[((v.len() - 1) as f64 * p).round() as usize]);
    println!(
        "{name:<34} n={:<3} median {:>7.2} ms   p90 {:>7.2} ms   min {:>7.2} ms   max {:>7.2} ms",
        v.len(),
        pct(0.5),
        pct(0.9),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
}

fn first_200(rt: &Runtime, vpc: &str, addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(mut s) = rt.connect_from_vpc(vpc, addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            if write!(s, "GET / HTTP/1.0\r\n\r\n").is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"HTTP/1.0 200")
                        || buf[..n].starts_with(b"HTTP/1.1 200")
                    {
                        return true;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    false
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/bin/busybox").exists() {
        println!(
            "SKIPPED launch_bench: needs root and /bin/busybox (apt-get install busybox-static)"
        );
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `launch_bench [N] [--idle M]`: N timed launches (default 20), then M idle instances.
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let idle: usize = args
        .iter()
        .position(|a| a == "--idle")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = format!("spxb{}", std::process::id() % 100_000);
    let rt = Runtime::open(
        RuntimeConfig::new(dir.path().join("data"), &prefix),
        Arc::new(RealKernel),
    )
    .expect("open runtime");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&rt, dir.path(), n);
        if idle > 0 {
            run_idle(&rt, idle);
        }
    }));
    let errors = rt.destroy_all(Duration::from_secs(1));
    let report = rt.doctor(true);
    println!(
        "cleanup: {} errors, doctor clean: {}",
        errors.len(),
        report.is_clean()
    );
    if result.is_err() {
        std::process::exit(1);
    }
}

fn run(rt: &Runtime, dir: &Path, n: usize) {
    let tarball = dir.join("busybox.tar");
    build_busybox_rootfs(&tarball, Path::new("/bin/busybox")).expect("build rootfs");
    let cfg = ImageConfig {
        cmd: ["httpd", "-f", "-p", "80", "-h", "/www"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    rt.images()
        .import(&tarball, cfg, Some("busybox:bench"))
        .expect("import");

    let mut vpc_times = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        let v = rt
            .create_vpc(Some(&format!("vpc-b{i}")), "10.200.0.0/20")
            .expect("create vpc");
        vpc_times.push(t.elapsed());
        rt.delete_vpc(&v.id).expect("delete vpc");
    }

    let vpc = rt
        .create_vpc(Some("vpc-bench"), "10.200.0.0/20")
        .expect("vpc");
    let subnet = rt
        .create_subnet(&vpc.id, Some("subnet-bench"), "10.200.1.0/24")
        .expect("subnet");
    rt.put_security_group(
        "sg-web",
        &vpc.id,
        vec![SgRule::tcp(
            80,
            Peer::Cidr("10.200.0.0/16".parse().unwrap()),
        )],
        None,
    )
    .expect("sg");
    let spec = LaunchSpec {
        image: "busybox:bench".into(),
        instance_type: "t3.micro".into(),
        subnet_id: subnet,
        security_groups: vec!["sg-web".into()],
        ..Default::default()
    };
    let (mut to_200, mut to_return, mut terminate) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let inst = rt.launch(spec.clone()).expect("launch");
        to_return.push(t.elapsed());
        assert!(
            first_200(rt, &vpc.id, &format!("{}:80", inst.private_ip)),
            "no HTTP 200 from {}",
            inst.id
        );
        to_200.push(t.elapsed());
        let t = Instant::now();
        rt.terminate(&inst.id, Duration::from_secs(2))
            .expect("terminate");
        terminate.push(t.elapsed());
    }
    println!(
        "spindle-runtime launch benchmark ({} cgroup layout)",
        match rt.cgroup_layout() {
            spindle_runtime::CgroupLayout::V1 { .. } => "v1",
            spindle_runtime::CgroupLayout::V2 { .. } => "v2",
        }
    );
    summary("VPC create", vpc_times);
    summary("launch() returns", to_return);
    summary("launch -> first HTTP 200", to_200);
    summary("terminate", terminate);
    println!("targets: launch -> 200 median < 50 ms; VPC create < 100 ms; docker run 300-1000 ms");
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Many idle instances at once (`sleep` as the entrypoint): launch time and memory cost.
fn run_idle(rt: &Runtime, m: usize) {
    let subnet = rt
        .create_subnet("vpc-bench", Some("subnet-idle"), "10.200.4.0/22")
        .expect("subnet");
    let spec = LaunchSpec {
        image: "busybox:bench".into(),
        instance_type: "t3.nano".into(),
        subnet_id: subnet,
        command: Some(vec!["sleep".into(), "100000".into()]),
        ..Default::default()
    };
    let before = mem_available_kib();
    let t = Instant::now();
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..m {
        let t1 = Instant::now();
        ids.push(rt.launch(spec.clone()).expect("launch idle").id);
        times.push(t1.elapsed());
    }
    let total = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let running = ids
        .iter()
        .filter(|i| rt.describe(i).map(|d| d.pid.is_some()).unwrap_or(false))
        .count();
    let used = before.saturating_sub(mem_available_kib());
    summary(&format!("launch() with up to {m} idle running"), times);
    println!(
        "{m} idle instances: {running} running after 1 s, launched in {:.2} s, host memory used {:.1} MiB ({:.0} KiB each)",
        total.as_secs_f64(),
        used as f64 / 1024.0,
        used as f64 / m as f64
    );
    let t = Instant::now();
    for id in &ids {
        rt.terminate(id, Duration::from_secs(1))
            .expect("terminate idle");
    }
    println!(
        "terminated {m} idle instances in {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
