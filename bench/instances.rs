//! Instances benchmark (issue 5): time from `Runtime::launch` to the first HTTP 200 from busybox
//! httpd inside a fresh instance, VPC create time, and the host memory of many idle instances;
//! against peers in the same run: the same server started by `unshare` in fresh namespaces (the
//! floor: no image, overlay, cgroup or veth), and `docker run` when a Docker daemon answers.
//!
//! Run as root: `bench/run instances [--launches N] [--idle M]` (defaults 20 and 200).
//! Needs `iproute2`, `nftables`, `busybox-static`. Targets: launch -> 200 median < 50 ms,
//! VPC create < 100 ms, 200 idle instances on a 2-core machine.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
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
    // `bench/run` passes the spindle binary first; this benchmark drives the engine directly.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let n = flag("--launches", 20).max(1);
    let idle = flag("--idle", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = format!("spxb{}", std::process::id() % 100_000);
    let rt = Runtime::open(
        RuntimeConfig::new(dir.path().join("data"), &prefix),
        Arc::new(RealKernel),
    )
    .expect("open runtime");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ours = run(&rt, dir.path(), n);
        peers(dir.path(), n, ours);
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

/// Returns the median of launch -> first HTTP 200.
fn run(rt: &Runtime, dir: &Path, n: usize) -> Duration {
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
    let median = median(&to_200);
    summary("launch -> first HTTP 200", to_200);
    summary("terminate", terminate);
    println!("targets: launch -> 200 median < 50 ms; VPC create < 100 ms");
    median
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// The same busybox httpd, started in fresh namespaces by `unshare` and polled from inside
/// them until it answers 200; and `docker run` when a daemon answers. Prints each median and
/// its ratio to ours.
fn peers(dir: &Path, n: usize, ours: Duration) {
    let www = dir.join("peer-www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello\n").expect("index");
    // The server and the poller share the new network namespace; the script exits at the
    // first 200, and unshare's --kill-child takes the server down with it.
    let script = format!(
        "ip link set lo up; busybox httpd -f -p 127.0.0.1:80 -h {} & \
         until busybox wget -q -O /dev/null http://127.0.0.1/; do :; done",
        www.display()
    );
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let st = Command::new("unshare")
            .args([
                "--net",
                "--pid",
                "--mount",
                "--uts",
                "--ipc",
                "--fork",
                "--kill-child",
            ])
            .args(["sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match st {
            Ok(s) if s.success() => times.push(t.elapsed()),
            other => {
                println!("peer unshare: not measured ({other:?})");
                return;
            }
        }
    }
    let peer = median(&times);
    summary("peer: unshare + httpd -> first 200", times);
    println!(
        "ratio spindle / unshare floor: {:.2}x (the floor has no image, overlay, cgroups or veth)",
        ours.as_secs_f64() / peer.as_secs_f64()
    );
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !docker.is_ok_and(|s| s.success()) {
        println!("peer docker run: not measured (no Docker daemon answers on this machine)");
    }
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
