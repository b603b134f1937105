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
  Sg: {{Value: !Ref DbSg}}
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

fn psql_once_as(netns: &str, host: &str, port: &str, password: &str, sql: &str) -> Output {
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
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs (postgresql-client)")
}

/// Runs `sql`, retrying for up to 60 s while the server starts (after a restart).
fn psql(netns: &str, host: &str, port: &str, sql: &str) -> String {
    psql_as(netns, host, port, PASSWORD, sql)
}

fn psql_as(netns: &str, host: &str, port: &str, password: &str, sql: &str) -> String {
    let t = Instant::now();
    loop {
        let o = psql_once_as(netns, host, port, password, sql);
        if o.status.success() {
            return String::from_utf8(o.stdout).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "psql {sql}: {o:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether this root test can run here (root, and Debian's psql), saying `skipped` when not;
/// points every test daemon at one engine-image bake cache, which the daemons inherit.
fn can_run(test: &str) -> bool {
    if !common::root_tests_can_run(test) {
        return false;
    }
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!("skipped: {test}: no psql (apt-get install postgresql-client)");
        return false;
    }
    if std::env::var_os("SPINDLE_RDS_BAKE_DIR").is_none() {
        std::env::set_var(
            "SPINDLE_RDS_BAKE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rds-bake"),
        );
    }
    true
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_postgres_db_instance_serves_psql_keeps_rows_across_a_restart_and_leaves_a_final_snapshot() {
    if !can_run(module_path!()) {
        return;
    }
    let prefix = format!("srds{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let file = d.root().join("db.yaml");
    // Unprotected, so that its engine can be restarted through the instance API (which
    // refuses to stop a protected DB's engine; the guard stack below checks that).
    std::fs::write(&file, template(false, 20, 64)).unwrap();
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

    // Growing the storage is an update in place: same endpoint, same rows.
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
    let gns = format!("{prefix}-{}", g["Vpc"]);
    // Its engine's instance can't be stopped or terminated through the instance API.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["instance", "list", "--output", "json"])).unwrap();
    let engine = list
        .iter()
        .find(|i| i["tags"]["spindle:rds-db-instance"] == g["Id"].as_str())
        .unwrap_or_else(|| panic!("no instance of {} in {list:?}", g["Id"]));
    let engine = engine["id"].as_str().unwrap().to_string();
    for what in ["stop", "terminate"] {
        let o = d.cli(&["instance", what, &engine]);
        assert!(!o.status.success(), "{what} of a protected DB's engine");
        assert!(
            stderr(&o).contains("DeletionProtection"),
            "{what}: {}",
            stderr(&o)
        );
    }
    let del = d.cli(&["stack", "delete", "guard", "--yes", "--allow-data-loss"]);
    let text = format!("{}{}", stdout(&del), stderr(&del));
    assert!(!del.status.success(), "{text}");
    assert!(
        text.contains("DeletionProtection enabled"),
        "the refusal names DeletionProtection: {text}"
    );
    assert_eq!(
        psql(&gns, &g["Address"], &g["Port"], "SELECT 1").trim(),
        "1"
    );
    // Instances outlive their daemon by design: end the others before the daemon stops.
    // The protected engine can't be ended through the API (its stack is DELETE_FAILED,
    // so its protection can't be lifted either): the prefix's sweep ends it.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["instance", "list", "--output", "json"])).unwrap();
    for i in list
        .iter()
        .filter(|i| i["state"] != "terminated" && i["id"] != engine.as_str())
    {
        ok(&d, &["instance", "terminate", i["id"].as_str().unwrap()]);
    }
}

/// A stack whose DB instance keeps its master password in Secrets Manager
/// (`ManageMasterUserPassword`), with a `SecretTargetAttachment` adding the connection
/// details to that secret.
fn managed_template(n: u8, db: &str) -> String {
    let source =
        format!("MasterUsername: app\n      ManageMasterUserPassword: true\n      DBName: {db}");
    template_with(false, 20, n, &source).replace(
        "Outputs:\n",
        "  Attach:
    Type: AWS::SecretsManager::SecretTargetAttachment
    Properties:
      SecretId: !GetAtt Db.MasterUserSecret.SecretArn
      TargetId: !Ref Db
      TargetType: AWS::RDS::DBInstance
Outputs:
  SecretArn: {Value: !GetAtt Db.MasterUserSecret.SecretArn}
",
    )
}

/// Every file under `dir` holding `needle` (fixed string), skipping directories named in
/// `skip`.
fn files_holding(dir: &std::path::Path, needle: &str, skip: &[&str]) -> String {
    let mut c = Command::new("grep");
    c.args(["-r", "-l", "-a", "-F"]);
    for s in skip {
        c.arg(format!("--exclude-dir={s}"));
    }
    let o = c.arg("--").arg(needle).arg(dir).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Issue #20's secret and data-loss acceptance, through the daemon as root: the master
/// password is generated into the instance's own secret; psql logs in with what `spindle
/// secret get` reads back; the password and the SCRAM verifier appear in no file of the
/// data dir (but the cluster's own catalog), the daemon's log, any process's argv or the API's
/// replies. A `DBName` change is refused as data loss; allowed, it replaces the instance and
/// leaves a final snapshot that the deploy names and that a new stack restores, rows and all.
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_managed_password_stays_secret_and_a_db_name_change_leaves_a_final_snapshot_that_restores() {
    if !can_run(module_path!()) {
        return;
    }
    let prefix = format!("srdm{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("daemon.log");
    let d = common::Daemon::start_opts(
        BIN,
        spindle_testsupport::Options {
            runtime: spindle_testsupport::Runtime::Prefix(prefix.clone()),
            log_file: Some(log.clone()),
            ..Default::default()
        },
    );
    let file = d.root().join("managed.yaml");
    std::fs::write(&file, managed_template(67, "shop")).unwrap();
    let f = file.to_str().unwrap();
    let param = "DbPassword=not-used-here";
    ok(&d, &["stack", "deploy", "db", f, "-p", param, "--yes"]);
    let out = outputs(&d, "db");
    let (host, port, arn) = (&out["Address"], &out["Port"], &out["SecretArn"]);
    assert!(arn.contains(":secret:rds-db-"), "{out:?}");
    let value: serde_json::Value =
        serde_json::from_str(ok(&d, &["secret", "get", arn, "--value"]).trim()).unwrap();
    assert_eq!(value["username"], "app", "{value}");
    assert_eq!(
        value["host"],
        host.as_str(),
        "the attachment added the host"
    );
    assert_eq!(value["port"], 5432);
    assert_eq!(value["engine"], "postgres");
    assert_eq!(value["dbname"], "shop");
    let password = value["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 20, "a generated password");
    let netns = format!("{prefix}-{}", out["Vpc"]);
    psql_as(
        &netns,
        host,
        port,
        &password,
        "CREATE TABLE expenses (amount int); INSERT INTO expenses SELECT generate_series(1, 100)",
    );

    // Nowhere in clear: files, the log, argv, the API's replies.
    // What every verifier of this password starts with (the salt and keys follow); the
    // engine's binaries hold only the prefix without the iteration count.
    let verifier = "SCRAM-SHA-256$4096:";
    assert_eq!(files_holding(&d.data_dir(), &password, &[]), "");
    assert_eq!(
        files_holding(&d.data_dir(), verifier, &["volumes", "snapshots"]),
        "",
        "only the cluster's own catalog holds the verifier"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.is_empty(), "the daemon logs at info");
    assert!(!logged.contains(&password) && !logged.contains(verifier));
    assert_eq!(
        spindle_testsupport::pids_whose_cmdline_holds(verifier),
        Vec::<u32>::new()
    );
    let mut replies = String::new();
    for args in [
        &["stack", "describe", "db", "--output", "json"][..],
        &["stack", "events", "db", "--output", "json"],
        &["stack", "outputs", "db", "--output", "json"],
        &["secret", "list", "--output", "json"],
        &["secret", "get", arn, "--output", "json"],
        &["instance", "list", "--output", "json"],
    ] {
        replies.push_str(&ok(&d, args));
    }
    assert!(replies.contains(arn.as_str()), "the replies were read");
    assert!(
        !replies.contains(&password),
        "an API reply holds the password"
    );
    assert!(
        !replies.contains(verifier),
        "an API reply holds the verifier"
    );

    // `spindle rds`: the instance is listed; a manual snapshot stops the engine for the copy
    // and starts it again; rows written after it are not in its restore; it can be deleted.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["rds", "instances", "--output", "json"])).unwrap();
    let db = list
        .iter()
        .find(|i| i["id"] == out["Id"].as_str())
        .unwrap_or_else(|| panic!("{list:?}"));
    assert_eq!(db["status"], "available", "{db}");
    assert_eq!(db["master_user_secret"], arn.as_str(), "{db}");
    assert_eq!(db["db_name"], "shop", "{db}");
    let group = db["subnet_group"].as_str().unwrap().to_string();
    ok(&d, &["rds", "snapshot", "create", &out["Id"], "manual-1"]);
    psql_as(
        &netns,
        host,
        port,
        &password,
        "INSERT INTO expenses SELECT generate_series(1, 50)",
    );
    let restored_manual = ok(
        &d,
        &[
            "rds",
            "snapshot",
            "restore",
            "manual-1",
            "--stack",
            "manual",
            "--subnet-group",
            &group,
            "--security-group",
            &out["Sg"],
        ],
    );
    assert!(
        restored_manual.contains("CREATE_COMPLETE"),
        "{restored_manual}"
    );
    let m = outputs(&d, "manual");
    assert_eq!(
        psql_as(
            &netns,
            &m["Address"],
            &m["Port"],
            &password,
            "SELECT count(*), sum(amount) FROM expenses"
        )
        .trim(),
        "100|5050",
        "the manual snapshot holds the rows before it"
    );
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["rds", "snapshot", "list", "--output", "json"])).unwrap();
    assert!(
        snaps
            .iter()
            .any(|s| s["id"] == "manual-1" && s["kind"] == "manual"),
        "{snaps:?}"
    );
    ok(&d, &["rds", "snapshot", "delete", "manual-1", "--yes"]);
    let snaps = ok(&d, &["rds", "snapshot", "list", "--output", "json"]);
    assert!(!snaps.contains("manual-1"), "{snaps}");
    let again = d.cli(&["rds", "snapshot", "delete", "manual-1", "--yes"]);
    assert!(!again.status.success(), "a deleted snapshot is gone");

    // A DBName change replaces the instance: refused as data loss, then done on purpose,
    // leaving a named final snapshot.
    std::fs::write(&file, managed_template(67, "store")).unwrap();
    let refused = d.cli(&["stack", "deploy", "db", f, "-p", param, "--yes"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("data loss"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        psql_as(
            &netns,
            host,
            port,
            &password,
            "SELECT count(*) FROM expenses"
        )
        .trim(),
        "150",
        "the refused change left the instance serving"
    );
    let done = ok(
        &d,
        &[
            "stack",
            "deploy",
            "db",
            f,
            "-p",
            param,
            "--yes",
            "--allow-data-loss",
        ],
    );
    let line = done
        .lines()
        .find(|l| l.starts_with("Final snapshot "))
        .unwrap_or_else(|| panic!("the deploy names its final snapshot:\n{done}"));
    let snap = line.split_whitespace().nth(2).unwrap().to_string();
    assert!(snap.contains("-final-"), "{line}");
    let events = ok(&d, &["stack", "events", "db", "--output", "json"]);
    assert!(
        events.contains(&format!("final snapshot {snap} taken before the delete")),
        "{events}"
    );
    let replaced = outputs(&d, "db");
    assert_ne!(
        replaced["SecretArn"], *arn,
        "the new instance has its own secret"
    );

    // The snapshot restores into a new stack's instance, with the old password's users.
    let restored = d.root().join("restored.yaml");
    std::fs::write(&restored, restore_template(68, &snap)).unwrap();
    ok(
        &d,
        &[
            "stack",
            "deploy",
            "restored",
            restored.to_str().unwrap(),
            "-p",
            param,
            "--yes",
        ],
    );
    let r = outputs(&d, "restored");
    let rns = format!("{prefix}-{}", r["Vpc"]);
    assert_eq!(
        psql_as(
            &rns,
            &r["Address"],
            &r["Port"],
            &password,
            "SELECT count(*), sum(amount) FROM expenses"
        )
        .trim(),
        "150|6325"
    );
    for stack in ["restored", "manual", "db"] {
        ok(
            &d,
            &["stack", "delete", stack, "--yes", "--allow-data-loss"],
        );
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&d, &["instance", "list", "--output", "json"])).unwrap();
    for i in list.iter().filter(|i| i["state"] != "terminated") {
        ok(&d, &["instance", "terminate", i["id"].as_str().unwrap()]);
    }
}
