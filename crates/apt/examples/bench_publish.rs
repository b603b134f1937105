//! Issue 3's publishing benchmark: add N generated packages, first signed publish,
//! republish after adding one package, peak RSS — for Spindle and, with `--peers`, for
//! aptly and reprepro on the same .debs in the same run (ratios printed).
//!
//! With `--spindle BIN` (what `bench/apt.sh` passes) Spindle is measured the way a user
//! runs it, like the peers' command lines: the `spindle` CLI against a release daemon
//! (`repo add bench DIR`, `publish repo`, `repo add` + `publish update`), each command's wall
//! time, and the peak RSS of the daemon and of the CLI. `--engine` also measures the library
//! calls underneath, in this process.
//!
//! ```text
//! cargo run --release -p spindle-apt --example bench_publish -- [--packages 20000] [--peers]
//!     [--spindle BIN] [--engine] [--dir DIR] [--no-sync] [--xz-preset N | --no-xz]
//!     [--no-contents] [--gzip-level N] [--runs N]
//! ```
//!
//! Each tool runs `--runs` times (3 by default), alternating (the order rotates every run,
//! so no tool always runs first or last on a machine whose load changes), and the table
//! shows each figure's median with the load average before and after each run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spindle_apt::publish::CompressionOptions;
use spindle_apt::{
    Catalog, ComponentInput, KeyAlgorithm, Pool, PublishOptions, Publisher, PublisherOptions, Repo,
    SigningKey, Snapshot,
};
use spindle_deb::builder::{build_deb, BuildOptions, Entry, EntryData, Package};
use spindle_deb::control::Paragraph;
use spindle_deb::Compression;

struct Args {
    packages: usize,
    peers: bool,
    spindle: Option<PathBuf>,
    engine: bool,
    dir: Option<PathBuf>,
    sync: bool,
    xz_preset: Option<u32>,
    gzip_level: u32,
    contents: bool,
    runs: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        packages: 20_000,
        peers: false,
        spindle: None,
        engine: false,
        dir: None,
        sync: true,
        xz_preset: Some(CompressionOptions::default().xz_preset.unwrap_or(6)),
        gzip_level: CompressionOptions::default().gzip_level,
        runs: 3,
        contents: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--packages" => {
                a.packages = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--packages N")
            }
            "--peers" => a.peers = true,
            "--engine" => a.engine = true,
            "--spindle" => a.spindle = Some(it.next().map(PathBuf::from).expect("--spindle BIN")),
            "--no-sync" => a.sync = false,
            "--no-xz" => a.xz_preset = None,
            "--no-contents" => a.contents = false,
            "--xz-preset" => a.xz_preset = it.next().and_then(|v| v.parse().ok()),
            "--gzip-level" => {
                a.gzip_level = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--gzip-level N")
            }
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--runs" => {
                a.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--runs N (at least 1)")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn make_deb(i: usize, version: &str) -> Vec<u8> {
    let name = format!("bench-pkg{i:05}");
    let mut c = Paragraph::new();
    c.set("Package", name.as_str()).unwrap();
    c.set("Version", version).unwrap();
    c.set(
        "Architecture",
        if i.is_multiple_of(10) { "all" } else { "amd64" },
    )
    .unwrap();
    c.set("Maintainer", "Bench <bench@example.invalid>")
        .unwrap();
    c.set("Section", "misc").unwrap();
    c.set("Priority", "optional").unwrap();
    if i > 0 {
        c.set(
            "Depends",
            format!("bench-pkg{:05} (>= 1.0), libc6 (>= 2.36)", i / 2),
        )
        .unwrap();
    }
    c.set(
        "Description",
        format!("benchmark package {i}\n A generated package used to measure publishing speed.\n It installs two small files."),
    )
    .unwrap();
    let entries = vec![
        Entry {
            path: format!("/usr/share/{name}/README"),
            data: EntryData::File(format!("{name} {version}\n").into_bytes()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Entry {
            path: format!("/usr/bin/{name}"),
            data: EntryData::File(b"#!/bin/sh\necho hi\n".to_vec()),
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    ];
    let p = Package {
        control: c,
        entries,
        ..Package::default()
    };
    build_deb(
        &p,
        &BuildOptions {
            compression: Compression::Gzip,
            source_date_epoch: 1_700_000_000,
        },
    )
    .unwrap()
    .bytes
}

/// Reads every file under `dir` once, so that whichever tool runs first does not pay for
/// reading the packages from a cold page cache (after another job evicted them, the first
/// tool's add took twice as long as the same add run warm).
fn warm(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let _ = fs::read(e.unwrap().path());
    }
}

fn generate(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    if fs::read_dir(dir).unwrap().count() == n {
        warm(dir);
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    let bytes = make_deb(i, "1.0-1");
                    let path = dir.join(format!("bench-pkg{i:05}_1.0-1.deb"));
                    fs::write(path, bytes).unwrap();
                }
            });
        }
    });
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: zeroed rusage is valid; getrusage writes only into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn vm_hwm_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    add: Duration,
    first_publish: Duration,
    /// Until `Release` also lists `Contents` (Spindle builds it after the first swap).
    complete: Option<Duration>,
    republish: Duration,
    rss_mib: f64,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn bench_spindle(work: &Path, debs: &Path, extra: &Path, args: &Args) -> Figures {
    let mut pool = Pool::open(work.join("spindle/pool")).unwrap();
    pool.set_sync(args.sync);
    let mut catalog = Catalog::new();
    let mut repo = Repo::new("bench", &["amd64"]).unwrap();
    let mut files: Vec<PathBuf> = fs::read_dir(debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();

    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let bytes: Vec<Vec<u8>> = files[..1000].iter().map(|p| fs::read(p).unwrap()).collect();
        let t = Instant::now();
        for b in &bytes {
            Pool::inspect(b).unwrap();
        }
        println!("    inspect x1000 (one thread): {}", secs(t.elapsed()));
    }
    let cpu0 = cpu_time();
    let t = Instant::now();
    // One call for the whole directory, like `aptly repo add DIR`: files are read, checked
    // and written on worker threads, and made durable with two syncfs for the whole set.
    let added = pool.add_files(&files, &catalog).unwrap();
    let keys: Vec<_> = added.iter().map(|a| a.package.key().clone()).collect();
    for a in added {
        catalog.insert(a.package).unwrap();
    }
    repo.add(keys.iter()).unwrap();
    let add = t.elapsed();
    println!(
        "    add: {} wall, {} CPU (peak RSS so far {:.1} MiB)",
        secs(add),
        secs(cpu_time() - cpu0),
        vm_hwm_kib() as f64 / 1024.0
    );

    let key = SigningKey::generate("Bench <bench@example.invalid>", KeyAlgorithm::Ed25519).unwrap();
    let mut publisher = Publisher::new(
        work.join("spindle/public"),
        pool.clone(),
        PublisherOptions {
            sync: args.sync,
            ..PublisherOptions::default()
        },
    );
    let mut options = PublishOptions::new("stable");
    options.architectures = vec!["amd64".into()];
    options.origin = Some("bench".into());
    options.compression.xz_preset = args.xz_preset;
    options.compression.gzip_level = args.gzip_level;
    options.contents = args.contents;
    // As the daemon does: xz and Contents of a cold publish go to a second swap.
    options.defer_above = Some(spindle_apt::publish::DEFER_ABOVE);
    println!(
        "    compression: {:?}, contents: {}",
        options.compression, options.contents
    );
    let publish = |publisher: &mut Publisher, repo: &Repo, catalog: &Catalog| {
        let snap = Snapshot::from_repo("s", repo, "").unwrap();
        let packages = catalog.resolve(snap.packages()).unwrap();
        let comps = [ComponentInput {
            name: "main".into(),
            packages,
        }];
        let t = Instant::now();
        let cpu0 = cpu_time();
        let report = publisher.publish(&options, &comps, Some(&key)).unwrap();
        let d = t.elapsed();
        if let Some(pending) = &report.pending {
            let t = Instant::now();
            let cpu0 = cpu_time();
            let done = publisher.complete(pending, &|| false).unwrap();
            let spindle_apt::publish::Completion::Done(r) = done else {
                panic!("completion did not finish: {done:?}")
            };
            println!(
                "    completion (xz, Contents; second swap): {} wall, {} CPU = plan {} sign {} write {}",
                secs(t.elapsed()),
                secs(cpu_time() - cpu0),
                secs(r.plan_time),
                secs(r.sign_time),
                secs(r.write_time),
            );
        }
        println!(
            "    publish: {} wall, {} CPU = plan {} sign {} write {} | pool paths added {} indexes written {}",
            secs(d),
            secs(cpu_time() - cpu0),
            secs(report.plan_time),
            secs(report.sign_time),
            secs(report.write_time),
            report.pool_files_added,
            report.indexes_written
        );
        d
    };
    let first_publish = publish(&mut publisher, &repo, &catalog);
    println!(
        "    first publish: {} (peak RSS so far {:.1} MiB)",
        secs(first_publish),
        vm_hwm_kib() as f64 / 1024.0
    );
    let mut republish = Duration::ZERO;
    for round in 0..3 {
        let bytes = if round == 0 {
            fs::read(extra).unwrap()
        } else {
            make_deb(900_000 + round, "1.0-1")
        };
        let added = pool.add(&bytes, &catalog).unwrap();
        let k = added.package.key().clone();
        catalog.insert(added.package).unwrap();
        repo.add([&k]).unwrap();
        let d = publish(&mut publisher, &repo, &catalog);
        if round == 0 {
            republish = d;
        }
        println!("    republish after +1 (round {round}): {}", secs(d));
    }
    let dist = work.join("spindle/public/dists/stable/main/binary-amd64");
    for f in ["Packages", "Packages.gz", "Packages.xz"] {
        let size = fs::metadata(dist.join(f)).map(|m| m.len()).unwrap_or(0);
        println!("    {f}: {:.1} MiB", size as f64 / 1048576.0);
    }
    Figures {
        add,
        first_publish,
        complete: None,
        republish,
        rss_mib: vm_hwm_kib() as f64 / 1024.0,
    }
}

/// Runs a command under GNU time, returning its wall time and peak RSS in MiB. (A child's
/// own `ru_maxrss` would include this process's RSS, which Linux keeps across `execve`.)
fn run(cmd: &mut Command, log: &Path) -> Result<(Duration, f64), String> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let rss_file = log.with_extension("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    let t = Instant::now();
    let status = timed
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let d = t.elapsed();
    if !status.success() {
        return Err(format!("{cmd:?} failed ({status}); see {}", log.display()));
    }
    let kib: f64 = fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0.0);
    Ok((d, kib / 1024.0))
}

/// The peak RSS (`VmHWM`) of a live process, in MiB.
fn process_hwm_mib(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// A release daemon on a temporary data dir, stopped (SIGTERM, then waited for) on drop.
struct Daemon {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals only the child this struct spawned (and still owns, unreaped).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Spindle as a user runs it: the CLI against the daemon, timed per command like the peers.
fn bench_spindle_cli(
    work: &Path,
    debs: &Path,
    extra: &Path,
    bin: &Path,
) -> Result<Figures, String> {
    let root = work.join("spindle-cli");
    fs::create_dir_all(&root).unwrap();
    let data = root.join("data");
    let creds = root.join("credentials");
    let log = work.join("spindle-cli.log");
    let child = Command::new(bin)
        .args([
            "server",
            "--no-runtime",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--credentials-file")
        .arg(&creds)
        .env("SPINDLE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap(),
        ))
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut daemon = Daemon {
        child,
        endpoint: String::new(),
    };
    let t = Instant::now();
    while daemon.endpoint.is_empty() {
        if let Ok(b) = fs::read_to_string(data.join("server.json")) {
            if let Some(e) = b
                .split("\"endpoint\":")
                .nth(1)
                .and_then(|r| r.split('"').nth(1))
            {
                daemon.endpoint = e.to_owned();
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("the daemon did not start; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(["--endpoint", &daemon.endpoint, "--credentials-file"])
            .arg(&creds)
            .args(args)
            .env_remove("SPINDLE_PROFILE")
            .env_remove("SPINDLE_ACCOUNT");
        c
    };
    // The first call also waits for the API to answer.
    loop {
        let ok = cli(&["repo", "create", "bench", "--architectures", "amd64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("the daemon did not answer; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let debs = debs.display().to_string();
    let (add, r1) = run(&mut cli(&["repo", "add", "bench", &debs]), &log)?;
    let after_add = process_hwm_mib(daemon.child.id());
    run(&mut cli(&["key", "create", "k"]), &log)?;
    let t_first = Instant::now();
    let (first, r2) = run(
        &mut cli(&[
            "publish",
            "repo",
            "bench",
            "--distribution",
            "stable",
            "--architectures",
            "amd64",
            "--origin",
            "bench",
            "--sign-key",
            "k",
        ]),
        &log,
    )?;
    // The daemon publishes Contents and Packages.xz after the first swap, in the
    // background: wait for the second swap, so the republish below measures the steady
    // incremental path and the peak RSS includes the background step.
    let published = data.join("apt/public");
    let complete = wait_for_contents(&published, t_first, Duration::from_secs(120));
    let after_publish = process_hwm_mib(daemon.child.id());
    run(
        &mut cli(&["repo", "add", "bench", &extra.display().to_string()]),
        &log,
    )?;
    let (again, r3) = run(&mut cli(&["publish", "update", "stable"]), &log)?;
    let _ = wait_for_contents(&published, Instant::now(), Duration::from_secs(120));
    let daemon_rss = process_hwm_mib(daemon.child.id());
    let cli_rss = r1.max(r2).max(r3);
    println!(
        "    add {} | first publish {} (Contents and Packages.xz listed after {}) | republish \
         (+1) {}",
        secs(add),
        secs(first),
        complete.map_or("never".into(), secs),
        secs(again)
    );
    println!(
        "    daemon peak RSS {daemon_rss:.1} MiB (after add {after_add:.1}, after first publish \
         {after_publish:.1}); CLI peak RSS {cli_rss:.1} MiB"
    );
    Ok(Figures {
        add,
        first_publish: first,
        complete,
        republish: again,
        rss_mib: daemon_rss.max(cli_rss),
    })
}

/// Time from `since` until every `Release` under `root` lists a `Contents` file and no
/// publish is still running, or `None` after `limit`.
fn wait_for_contents(root: &Path, since: Instant, limit: Duration) -> Option<Duration> {
    let releases = || -> Vec<PathBuf> {
        let mut out = Vec::new();
        for account in fs::read_dir(root).into_iter().flatten().flatten() {
            for dist in fs::read_dir(account.path().join("dists"))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(dist.path().join("Release"));
            }
        }
        out
    };
    loop {
        let all = releases();
        if !all.is_empty()
            && all.iter().all(|r| {
                fs::read_to_string(r).is_ok_and(|t| t.contains("Contents-") && t.contains(".xz"))
            })
        {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn gpg_key(home: &Path) -> Option<String> {
    fs::create_dir_all(home).ok()?;
    let mut perms = fs::metadata(home).ok()?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    fs::set_permissions(home, perms).ok()?;
    let ok = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Bench Peer <peer@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--with-colons", "--list-secret-keys"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9).map(str::to_string))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn bench_aptly(
    work: &Path,
    debs: &Path,
    extra: &Path,
    gnupg: &Path,
    key: &str,
) -> Result<Figures, String> {
    let root = work.join("aptly");
    fs::create_dir_all(&root).unwrap();
    let conf = root.join("aptly.conf");
    fs::write(
        &conf,
        format!(
            r#"{{"rootDir": "{}", "architectures": ["amd64"], "gpgProvider": "gpg2"}}"#,
            root.display()
        ),
    )
    .unwrap();
    let log = work.join("aptly.log");
    let aptly = |args: &[&str]| {
        let mut c = Command::new("aptly");
        c.env("GNUPGHOME", gnupg)
            .arg(format!("-config={}", conf.display()))
            .args(args);
        c
    };
    run(
        &mut aptly(&[
            "repo",
            "create",
            "-distribution=stable",
            "-component=main",
            "bench",
        ]),
        &log,
    )?;
    let (add, r1) = run(
        &mut aptly(&["repo", "add", "bench", &debs.display().to_string()]),
        &log,
    )?;
    let (first, r2) = run(
        &mut aptly(&[
            "publish",
            "repo",
            "-architectures=amd64",
            &format!("-gpg-key={key}"),
            "bench",
        ]),
        &log,
    )?;
    run(
        &mut aptly(&["repo", "add", "bench", &extra.display().to_string()]),
        &log,
    )?;
    let (again, r3) = run(
        &mut aptly(&["publish", "update", &format!("-gpg-key={key}"), "stable"]),
        &log,
    )?;
    Ok(Figures {
        add,
        first_publish: first,
        complete: None,
        republish: again,
        rss_mib: r1.max(r2).max(r3),
    })
}

fn bench_reprepro(
    work: &Path,
    debs: &Path,
    extra: &Path,
    gnupg: &Path,
    key: &str,
) -> Result<Figures, String> {
    let root = work.join("reprepro");
    fs::create_dir_all(root.join("conf")).unwrap();
    fs::write(
        root.join("conf/distributions"),
        format!("Codename: stable\nArchitectures: amd64\nComponents: main\nSignWith: {key}\n"),
    )
    .unwrap();
    let log = work.join("reprepro.log");
    let mut files: Vec<String> = fs::read_dir(debs)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let reprepro = |args: &[&str]| {
        let mut c = Command::new("reprepro");
        c.env("GNUPGHOME", gnupg).arg("-b").arg(&root).args(args);
        c
    };
    let mut add_cmd = reprepro(&["--export=never", "includedeb", "stable"]);
    add_cmd.args(&files);
    let (add, r1) = run(&mut add_cmd, &log)?;
    let (first, r2) = run(&mut reprepro(&["export", "stable"]), &log)?;
    run(
        &mut reprepro(&[
            "--export=never",
            "includedeb",
            "stable",
            &extra.display().to_string(),
        ]),
        &log,
    )?;
    let (again, r3) = run(&mut reprepro(&["export", "stable"]), &log)?;
    Ok(Figures {
        add,
        first_publish: first,
        complete: None,
        republish: again,
        rss_mib: r1.max(r2).max(r3),
    })
}

type Bench<'a> = Box<dyn Fn(&Path) -> Result<Figures, String> + 'a>;

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Removes what a previous run of any tool left in `work` (the generated .debs stay).
fn clean(work: &Path) {
    for sub in [
        "spindle",
        "spindle-cli",
        "spindle-cli.log",
        "aptly",
        "reprepro",
        "aptly.log",
        "reprepro.log",
    ] {
        let p = work.join(sub);
        let _ = fs::remove_dir_all(&p);
        let _ = fs::remove_file(&p);
    }
}

fn main() {
    let args = parse_args();
    let tmp;
    let work = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    clean(&work);
    let _ = fs::remove_dir_all(work.join("gnupg"));
    let debs = work.join("debs");
    let t = Instant::now();
    generate(&debs, args.packages);
    let extra = work.join("extra_1.0-1.deb");
    fs::write(&extra, make_deb(args.packages + 1, "1.0-1")).unwrap();
    println!(
        "generated {} packages in {} (not measured below)",
        args.packages,
        secs(t.elapsed())
    );

    let gnupg = work.join("gnupg");
    let (debs, extra, gnupg) = (&debs, &extra, &gnupg);
    let mut tools: Vec<(&str, Bench)> = Vec::new();
    if let Some(bin) = &args.spindle {
        tools.push((
            "spindle",
            Box::new(move |w: &Path| bench_spindle_cli(w, debs, extra, bin)),
        ));
    }
    if args.engine || args.spindle.is_none() {
        let name = if args.spindle.is_some() {
            "engine"
        } else {
            "spindle"
        };
        let a = &args;
        tools.push((
            name,
            Box::new(move |w: &Path| Ok(bench_spindle(w, debs, extra, a))),
        ));
    }
    if args.peers {
        match gpg_key(gnupg) {
            None => println!("peers skipped: could not create a gpg key"),
            Some(key) => {
                for name in ["aptly", "reprepro"] {
                    if !have(name) {
                        println!("{name}: not installed (apt-get install {name})");
                        continue;
                    }
                    let key = key.clone();
                    let f: Bench = if name == "aptly" {
                        Box::new(move |w: &Path| bench_aptly(w, debs, extra, gnupg, &key))
                    } else {
                        Box::new(move |w: &Path| bench_reprepro(w, debs, extra, gnupg, &key))
                    };
                    tools.push((name, f));
                }
            }
        }
    }

    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); tools.len()];
    for run in 0..args.runs {
        for k in 0..tools.len() {
            let i = (run + k) % tools.len();
            let (name, f) = &tools[i];
            clean(&work);
            let before = load_average();
            println!(
                "run {}/{}: {name} (load average {before})",
                run + 1,
                args.runs
            );
            match f(&work) {
                Ok(fig) => {
                    println!(
                        "    add {} | first publish {} | republish {} | peak RSS {:.1} MiB \
                         (load average after {})",
                        secs(fig.add),
                        secs(fig.first_publish),
                        secs(fig.republish),
                        fig.rss_mib,
                        load_average()
                    );
                    results[i].push(fig);
                }
                Err(e) if *name == "spindle" || *name == "engine" => {
                    panic!("{name} failed: {e}")
                }
                Err(e) => println!("    {name} failed: {e}"),
            }
        }
    }
    clean(&work);

    println!();
    println!(
        "medians of {} alternating runs (load average now {}):",
        args.runs,
        load_average()
    );
    println!(
        "{:<10} {:>10} {:>14} {:>18} {:>16} {:>10}",
        "", "add", "first publish", "+Contents, xz", "republish (+1)", "peak RSS"
    );
    let medians: Vec<Option<Figures>> = results
        .iter()
        .map(|r| {
            (!r.is_empty()).then(|| Figures {
                add: median(r.iter().map(|f| f.add).collect()),
                first_publish: median(r.iter().map(|f| f.first_publish).collect()),
                complete: r
                    .iter()
                    .map(|f| f.complete)
                    .collect::<Option<Vec<_>>>()
                    .map(median),
                republish: median(r.iter().map(|f| f.republish).collect()),
                rss_mib: median_f(r.iter().map(|f| f.rss_mib).collect()),
            })
        })
        .collect();
    for ((name, _), m) in tools.iter().zip(&medians) {
        match m {
            Some(f) => println!(
                "{:<10} {:>10} {:>14} {:>18} {:>16} {:>6.1} MiB",
                name,
                secs(f.add),
                secs(f.first_publish),
                f.complete.map_or("-".into(), secs),
                secs(f.republish),
                f.rss_mib
            ),
            None => println!("{name:<10} failed in every run"),
        }
    }
    let Some(s) = medians[0] else { return };
    for ((name, _), m) in tools.iter().zip(&medians).skip(1) {
        if *name == "engine" {
            continue;
        }
        if let Some(p) = m {
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
            println!(
                "{name}/spindle (medians): add {:.2}x, first publish {:.2}x, republish {:.2}x",
                ratio(p.add, s.add),
                ratio(p.first_publish, s.first_publish),
                ratio(p.republish, s.republish)
            );
        }
    }
}
