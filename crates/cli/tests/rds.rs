//! `AWS::RDS::DBInstance` through the daemon, as root (issue #20 item 1): a stack with a VPC,
//! two subnets, a DB subnet group, a security group and a PostgreSQL DB instance; Debian's
//! `psql` logs in with the password through `Endpoint.Address:Port` from the VPC's router
//! namespace and writes rows; the instance restarted reads them back; `DeletionProtection`
//! refuses the stack's delete until an in-place update lifts it; the delete leaves the data
//! as a named final snapshot. The engine image's bake cache is `target/tmp/rds-bake`, shared
//! with `spindle-rds`'s root test (the first bake of a fresh cache takes minutes).

mod common;

use common::{stderr, stdout, Daemon, BIN};
use spindle_runtime::host::Sweep;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-Horse-battery";

/// The stack, its VPC `10.N.0.0/16`.
fn template(protected: bool, storage: u32, n: u8) -> String {
    let user = "MasterUsername: app\n      MasterUserPassword: !Ref DbPassword\n      DBName: shop";
    template_with(protected, storage, n, user)
}

/// A stack whose DB instance restores snapshot `snap`.
fn restore_template(n: u8, snap: &str) -> String {
    template_with(false, 20, n, &format!("DBSnapshotIdentifier: {snap}"))
}

fn template_with(protected: bool, storage: u32, n: u8, source: &str) -> String {
    format!(
        r#"Parameters:
  DbPassword: {{Type: String, NoEcho: true}}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {{CidrBlock: 10.{n}.0.0/16}}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.{n}.1.0/24}}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.{n}.2.0/24}}
  DbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: postgres from the VPC
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.{n}.0.0/16}}]
  DbSubnets:
    Type: AWS::RDS::DBSubnetGroup
    Properties:
      DBSubnetGroupDescription: the database's subnets
      SubnetIds: [!Ref SubnetA, !Ref SubnetB]
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: postgres
      DBInstanceClass: db.t3.micro
      AllocatedStorage: {storage}
      {source}
      DBSubnetGroupName: !Ref DbSubnets
      VPCSecurityGroups: [!Ref DbSg]
      DeletionProtection: {protected}
Outputs:
  Address: {{Value: !GetAtt Db.Endpoint.Address}}
  Port: {{Value: !GetAtt Db.Endpoint.Port}}
  Arn: {{Value: !GetAtt Db.DBInstanceArn}}
  Id: {{Value: !Ref Db}}
  Vpc: {{Value: !Ref Vpc}}
"#
    )
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = d.cli(args);
    assert!(
        o.status.success(),
        "spindle {args:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn outputs(d: &Daemon, stack: &str) -> BTreeMap<String, String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&ok(d, &["stack", "outputs", stack, "--output", "json"])).unwrap();
    v.iter()
        .map(|o| {
            let key = o["name"].as_str().or(o["OutputKey"].as_str()).unwrap();
            let val = o["value"].as_str().or(o["OutputValue"].as_str()).unwrap();
            (key.to_string(), val.to_string())
        })
        .collect()
}

fn psql_once(netns: &str, host: &str, port: &str, sql: &str) -> Output {
    Command::new("ip")
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
            "host={host} port={port} user=app dbname=shop sslmode=disable connect_timeout=3"
        ))
        .args(["-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("psql runs (postgresql-client)")
}

/// Runs `sql`, retrying for up to 60 s while the server starts (after a restart).
fn psql(netns: &str, host: &str, port: &str, sql: &str) -> String {
    let t = Instant::now();
    loop {
        let o = psql_once(netns, host, port, sql);
        if o.status.success() {
            return String::from_utf8(o.stdout).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "psql {sql}: {o:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_postgres_db_instance_serves_psql_keeps_rows_across_a_restart_and_leaves_a_final_snapshot() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!(
            "skipped: {}: no psql (apt-get install postgresql-client)",
            module_path!()
        );
        return;
    }
    // The daemon inherits it: every test daemon boots the image from one bake cache.
    if std::env::var_os("SPINDLE_RDS_BAKE_DIR").is_none() {
        std::env::set_var(
            "SPINDLE_RDS_BAKE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rds-bake"),
        );
    }
    let prefix = format!("srds{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let file = d.root().join("db.yaml");
    std::fs::write(&file, template(true, 20, 64)).unwrap();
    let param = format!("DbPassword={PASSWORD}");
    let f = file.to_str().unwrap();
    let t = Instant::now();
    ok(&d, &["stack", "deploy", "db", f, "-p", &param, "--yes"]);
    eprintln!("stack with a DB instance deployed in {:?}", t.elapsed());
    let out = outputs(&d, "db");
    let (host, port, id) = (&out["Address"], &out["Port"], &out["Id"]);
    assert_eq!(port, "5432");
    assert!(id.starts_with("db-db-"), "a derived identifier: {id}");
    let account = ok(&d, &["whoami", "--output", "json"]);
    let account: serde_json::Value = serde_json::from_str(&account).unwrap();
    let account = account["account_id"]
        .as_str()
        .or(account["account"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        out["Arn"],
        format!("arn:aws:rds:us-east-1:{account}:db:{id}"),
        "{out:?}"
    );
    let netns = format!("{prefix}-{}", out["Vpc"]);

    psql(
        &netns,
        host,
        port,
        "CREATE TABLE expenses (amount int); INSERT INTO expenses SELECT generate_series(1, 100)",
    );

    // Restart the DB instance's Spindle instance: the rows are on its volume.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["instance", "list", "--output", "json"])).unwrap();
    let inst = list
        .iter()
        .find(|i| i["tags"]["spindle:rds-db-instance"] == id.as_str())
        .unwrap_or_else(|| panic!("no instance of {id} in {list:?}"));
    let inst_id = inst["id"].as_str().unwrap();
    ok(&d, &["instance", "stop", inst_id]);
    ok(&d, &["instance", "start", inst_id]);
    assert_eq!(
        psql(
            &netns,
            host,
            port,
            "SELECT count(*), sum(amount) FROM expenses"
        )
        .trim(),
        "100|5050"
    );

    // The password is nowhere in the data dir in clear (the instance got a SCRAM verifier).
    let grep = Command::new("grep")
        .args(["-r", "-l", "-a", PASSWORD])
        .arg(d.data_dir())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "files holding the password in clear"
    );

    // Lifting DeletionProtection and growing the storage are updates in place: same
    // endpoint, same rows.
    std::fs::write(&file, template(false, 30, 64)).unwrap();
    ok(&d, &["stack", "deploy", "db", f, "-p", &param, "--yes"]);
    assert_eq!(outputs(&d, "db")["Address"], *host);
    assert_eq!(
        psql(&netns, host, port, "SELECT count(*) FROM expenses").trim(),
        "100"
    );

    // Deleting the stack deletes a DB instance: refused as data loss until allowed.
    let refused = d.cli(&["stack", "delete", "db", "--yes"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("data loss"),
        "{}",
        stderr(&refused)
    );
    ok(&d, &["stack", "delete", "db", "--yes", "--allow-data-loss"]);
    let snaps = d.data_dir().join("rds/snapshots").join(&account);
    let names: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap_or_else(|e| panic!("{}: {e}", snaps.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{id}-final-")), "{names:?}");
    assert!(
        snaps.join(&names[0]).join("data/PG_VERSION").is_file(),
        "the final snapshot holds the cluster"
    );
    assert!(
        !d.data_dir()
            .join("rds/volumes")
            .join(&account)
            .join(id)
            .exists(),
        "the volume moved into the snapshot"
    );

    // The final snapshot restores into a new instance (DBSnapshotIdentifier) with the rows,
    // the users and the password it had; the snapshot stays.
    let restored = d.root().join("restored.yaml");
    std::fs::write(&restored, restore_template(66, &names[0])).unwrap();
    ok(
        &d,
        &[
            "stack",
            "deploy",
            "restored",
            restored.to_str().unwrap(),
            "-p",
            &param,
            "--yes",
        ],
    );
    let r = outputs(&d, "restored");
    let rns = format!("{prefix}-{}", r["Vpc"]);
    assert_eq!(
        psql(
            &rns,
            &r["Address"],
            &r["Port"],
            "SELECT count(*), sum(amount) FROM expenses"
        )
        .trim(),
        "100|5050"
    );
    assert!(snaps.join(&names[0]).join("data/PG_VERSION").is_file());

    // Another stack's protected instance: its delete is refused, naming the property, and
    // the instance keeps serving.
    let guard = d.root().join("guard.yaml");
    std::fs::write(&guard, template(true, 20, 65)).unwrap();
    ok(
        &d,
        &[
            "stack",
            "deploy",
            "guard",
            guard.to_str().unwrap(),
            "-p",
            &param,
            "--yes",
        ],
    );
    let g = outputs(&d, "guard");
    let del = d.cli(&["stack", "delete", "guard", "--yes", "--allow-data-loss"]);
    let text = format!("{}{}", stdout(&del), stderr(&del));
    assert!(!del.status.success(), "{text}");
    assert!(
        text.contains("DeletionProtection enabled"),
        "the refusal names DeletionProtection: {text}"
    );
    let gns = format!("{prefix}-{}", g["Vpc"]);
    assert_eq!(
        psql(&gns, &g["Address"], &g["Port"], "SELECT 1").trim(),
        "1"
    );
    // Instances outlive their daemon by design: end this one before the daemon stops, so
    // the sweep finds no process left in its cgroups.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["instance", "list", "--output", "json"])).unwrap();
    for i in list.iter().filter(|i| i["state"] != "terminated") {
        ok(&d, &["instance", "terminate", i["id"].as_str().unwrap()]);
    }
}
