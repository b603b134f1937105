//! The engine on the real kernel, as root: the PostgreSQL image baked from the shipped recipe
//! (once per bake cache: `target/tmp/rds-bake`, shared by every test of a run and by the next
//! run), an instance booting it on a bound volume, a password login with Debian's `psql` from
//! the VPC's router, and the rows still there in a second instance on the same volume.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_rds::{boot, probe, scram, Bootstrap, Init, Volumes};
use spindle_runtime::host::Sweep;
use spindle_runtime::{
    BindMount, Ipv4Net, LaunchSpec, Peer, RealKernel, Runtime, RuntimeConfig, SgRule,
};

/// The bake cache every RDS root test shares (`SPINDLE_RDS_BAKE_DIR` moves it).
fn bake_dir() -> std::path::PathBuf {
    std::env::var_os("SPINDLE_RDS_BAKE_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rds-bake"))
}

fn wait_ready(rt: &Runtime, vpc: &str, addr: &str, user: &str, db: &str) -> Duration {
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < Duration::from_secs(90) {
        match rt.connect_from_vpc(vpc, addr, Duration::from_secs(1)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                match probe::ask(&mut s, user, db) {
                    probe::Reply::Ready => return t.elapsed(),
                    probe::Reply::NotReady(m) => last = m,
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never accepted connections: {last}");
}

fn psql(netns: &str, addr: &str, password: &str, sql: &str) -> String {
    let (host, port) = addr.split_once(':').unwrap();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg(format!(
            "host={host} port={port} user=app dbname=shop sslmode=disable connect_timeout=5"
        ))
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs (postgresql-client)");
    assert!(o.status.success(), "psql {sql}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn postgres_boots_from_the_baked_image_and_keeps_its_rows_on_its_volume() {
    if let Some(reason) = spindle_runtime::host::missing_prerequisites() {
        eprintln!("skipped: {}: {reason}", module_path!());
        return;
    }
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!(
            "skipped: {}: no psql (apt-get install postgresql-client)",
            module_path!()
        );
        return;
    }
    let prefix = format!("srd{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(
        RuntimeConfig::new(dir.path().join("runtime"), &prefix),
        Arc::new(RealKernel),
    )
    .unwrap();
    let image = spindle_rds::ensure_postgres(&rt, &bake_dir()).unwrap();
    eprintln!(
        "engine image {} ({}): {}",
        image.id,
        image.tag,
        match image.baked_seconds {
            Some(s) => format!("baked (or imported from the bake cache) in {s:.1}s"),
            None => "already in the store".into(),
        }
    );
    let again = spindle_rds::ensure_postgres(&rt, &bake_dir()).unwrap();
    assert_eq!(
        (again.id.as_str(), again.baked_seconds),
        (image.id.as_str(), None)
    );

    let vpc = rt.create_vpc(None, "10.62.0.0/16").unwrap();
    let subnet = rt.create_subnet(&vpc.id, None, "10.62.1.0/24").unwrap();
    let cidr: Ipv4Net = "10.62.0.0/16".parse().unwrap();
    let sg = "sg-0000000000000db01";
    rt.put_security_group(sg, &vpc.id, vec![SgRule::tcp(5432, Peer::Cidr(cidr))], None)
        .unwrap();
    let volumes = Volumes::new(dir.path().join("rds"));
    let volume = volumes.ensure_volume("123456789012", "db1").unwrap();
    let password = "correct-horse-battery";
    let boot = Bootstrap {
        init: Some(Init {
            master_user: "app".into(),
            verifier: scram::new_verifier(password),
            db_name: Some("shop".into()),
        }),
        port: 5432,
        allow_cidr: "10.62.0.0/16".into(),
    };
    let launch = || {
        rt.launch(LaunchSpec {
            image: image.id.clone(),
            instance_type: "t3.small".into(),
            subnet_id: subnet.clone(),
            security_groups: vec![sg.into()],
            command: Some(boot.command()),
            mounts: vec![BindMount::checked(volume.to_str().unwrap(), boot::DATA_MOUNT).unwrap()],
            ..Default::default()
        })
        .unwrap()
    };
    boot.write_init_file(&volume).unwrap();
    let verifier = boot.init.as_ref().unwrap().verifier.clone();
    let first = launch();
    let addr = format!("{}:5432", first.private_ip);
    let took = wait_ready(&rt, &vpc.id, &addr, "app", "shop");
    eprintln!("first boot (initdb, user, database) to accepting connections: {took:?}");
    // The verifier reached the engine through the 0600 file, which the first boot removed;
    // no process's argv and nothing the runtime keeps holds it.
    assert!(
        !volume.join(boot::INIT_FILE).exists(),
        "the first boot removes its init file"
    );
    let argv_with_it = spindle_testsupport::pids_whose_cmdline_holds(&verifier);
    assert!(
        argv_with_it.is_empty(),
        "argv holds the verifier: {argv_with_it:?}"
    );
    let grep = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", &verifier])
        .arg(dir.path().join("runtime"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "runtime state holding the verifier"
    );
    psql(
        &vpc.netns,
        &addr,
        password,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3)",
    );
    assert!(
        volume.join("PG_VERSION").is_file(),
        "the cluster is on the host's volume"
    );
    rt.terminate(&first.id, Duration::from_secs(10)).unwrap();

    let second = launch();
    let addr = format!("{}:5432", second.private_ip);
    let took = wait_ready(&rt, &vpc.id, &addr, "app", "shop");
    eprintln!("second boot on the same volume to accepting connections: {took:?}");
    assert_eq!(
        psql(&vpc.netns, &addr, password, "SELECT sum(x) FROM t").trim(),
        "6"
    );
    let wrong = Command::new("ip")
        .args(["netns", "exec", &vpc.netns, "psql", "-X", "-c", "SELECT 1"])
        .arg(format!(
            "host={} port=5432 user=app dbname=shop sslmode=disable",
            second.private_ip
        ))
        .env("PGPASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password is refused");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{wrong:?}"
    );
    assert!(rt.destroy_all(Duration::from_secs(10)).is_empty());
    rt.delete_subnet(&subnet).ok();
    rt.delete_vpc(&vpc.id).ok();
}
