//! The `spindle` command as users run it: `spindle up` twice, errors as one line plus a hint,
//! JSON output, completions, and the daemon refusing what it must refuse.

mod common;

use common::{free_port, stderr, stdout, Daemon, UpDaemon, BIN};
use std::path::Path;
use std::process::Command;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The accounts and configuration stacks of examples/twine, without its packages, images and
/// app stacks (those need root and take minutes: `tests/up.rs` runs the whole example).
fn config_project(dir: &Path) -> std::path::PathBuf {
    let proj = dir.join("twine");
    std::fs::create_dir_all(proj.join("stacks")).unwrap();
    std::fs::copy(
        examples().join("twine/stacks/config.yaml"),
        proj.join("stacks/config.yaml"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(examples().join("twine/spindle.toml")).unwrap();
    let accounts_and_config: Vec<&str> = manifest
        .split("\n\n")
        .filter(|part| {
            part.contains("[project]")
                || part.contains("[accounts.")
                || part.contains("stacks/config.yaml")
        })
        .collect();
    std::fs::write(proj.join("spindle.toml"), accounts_and_config.join("\n\n")).unwrap();
    proj
}

#[test]
fn up_twice_second_run_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = config_project(dir.path());
    let _daemon = UpDaemon(data.clone());
    let listen = format!("127.0.0.1:{}", free_port());
    let up = || {
        Command::new(BIN)
            .args(["up"])
            .arg(&project)
            .args(["--listen", &listen, "--data-dir"])
            .arg(&data)
            .env("SPINDLE_CREDENTIALS_FILE", dir.path().join("credentials"))
            .env_remove("SPINDLE_ENDPOINT")
            .env_remove("SPINDLE_PROFILE")
            .output()
            .unwrap()
    };
    let first = up();
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let out = stdout(&first);
    assert!(out.contains("started the daemon"), "{out}");
    for acct in ["dev", "prod", "bastion", "dns"] {
        assert!(out.contains(&format!("created account {acct} (")), "{out}");
    }
    for acct in ["dev", "prod"] {
        assert!(
            out.contains(&format!(
                "deployed stack twine-config in {acct}: CREATE_COMPLETE (3 change(s))"
            )),
            "{out}"
        );
    }
    let second = up();
    assert!(second.status.success(), "{}", stderr(&second));
    let out2 = stdout(&second);
    assert!(
        out2.starts_with("Nothing to do: project twine is up to date"),
        "{out2}"
    );
    assert!(
        !out2.contains("created") && !out2.contains("started"),
        "{out2}"
    );
    assert!(data.join("spindle.log").exists());

    let json = Command::new(BIN)
        .args(["up", "--output", "json"])
        .arg(&project)
        .args(["--listen", &listen, "--data-dir"])
        .arg(&data)
        .env("SPINDLE_CREDENTIALS_FILE", dir.path().join("credentials"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["done"], serde_json::json!([]));
    assert_eq!(v["daemon_started"], false);
    assert_eq!(v["up_to_date"].as_array().unwrap().len(), 6, "{v}");

    // The same template went to dev and prod with different parameters.
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(["--endpoint", &format!("http://{listen}"), "-o", "json"])
            .args(args)
            .env("SPINDLE_CREDENTIALS_FILE", dir.path().join("credentials"))
            .output()
            .unwrap()
    };
    for (acct, level, workers) in [("dev", "debug", "2"), ("prod", "info", "8")] {
        let o = cli(&["--account", acct, "param", "list", "--prefix", "/twine/"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let get = |n: &str| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == format!("/twine/{acct}/{n}"))
                .map(|p| p["value"].clone())
        };
        assert_eq!(get("log-level"), Some(serde_json::json!(level)), "{v}");
        assert_eq!(
            get("report-workers"),
            Some(serde_json::json!(workers)),
            "{v}"
        );
    }
}

#[test]
fn bad_manifest_is_one_positioned_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spindle.toml"),
        "[project]\nname = \"x\"\n\n[accounts.Prod]\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("up")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    let want = format!(
        "error: {}:4:11: accounts.Prod: account name `Prod` is not valid",
        dir.path().join("spindle.toml").display()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "a bad manifest starts nothing"
    );
}

#[test]
fn daemon_refuses_a_shared_data_dir_and_a_newer_schema() {
    let mut d = Daemon::start(BIN);
    let o = d.server_command().output().unwrap();
    assert!(!o.status.success());
    let pid = d.child.as_ref().unwrap().id();
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "another spindle server (pid {pid}) is using the data dir"
        )),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    d.stop();

    // Bump the schema version as a newer Spindle would.
    let db = d.data_dir().join("state.db");
    let status = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version=99'); c.commit()"])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let o = d.server_command().output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("has schema version 99, newer than this build of Spindle knows"),
        "{err}"
    );
}

#[test]
fn cli_errors_json_and_completions() {
    let d = Daemon::start(BIN);
    let o = d.cli(&["account", "describe", "nosuch"]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o), "error: account `nosuch` not found\nhint: `spindle account list` shows the accounts your credential can see\n");

    let o = d.cli(&["--output", "json", "account", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "management");

    let o = d.cli(&["account", "create", "dev"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&[
        "--account",
        "dev",
        "account",
        "keys",
        "create",
        "--save-profile",
        "dev",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["--profile", "dev", "-o", "json", "whoami"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["account_name"], "dev");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.credentials_file())
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let o = d.cli(&["--profile", "dev", "param", "put", "/app/colour", "blue"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["--profile", "dev", "param", "put", "/app/colour", "red"]);
    assert_eq!(stderr(&o), "error: parameter `/app/colour` already exists\nhint: pass --overwrite to replace its value\n");
    let o = d.cli(&["--profile", "nosuch", "whoami"]);
    assert!(
        stderr(&o).starts_with("error: no profile `nosuch` in "),
        "{}",
        stderr(&o)
    );

    let o = d.cli(&["account", "list", "--colour"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: unexpected argument '--colour' found"),
        "{}",
        stderr(&o)
    );

    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            o.status.success() && stdout(&o).contains("spindle"),
            "{shell}"
        );
    }

    let down = Command::new(BIN)
        .args(["--endpoint", "http://127.0.0.1:1", "--credentials-file"])
        .arg(d.credentials_file())
        .arg("whoami")
        .output()
        .unwrap();
    let e = stderr(&down);
    assert!(
        e.starts_with("error: cannot reach the Spindle daemon at http://127.0.0.1:1"),
        "{e}"
    );
    assert!(e.contains("\nhint: start it with `spindle server`"), "{e}");
}

#[test]
fn pkg_build_is_reproducible_and_dpkg_reads_it() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deb/tests/fixtures/hello.toml");
    let out = tempfile::tempdir().unwrap();
    let build = |dir: &Path| {
        let o = Command::new(BIN)
            .args(["pkg", "build"])
            .arg(&spec)
            .arg("--output-dir")
            .arg(dir)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(dir.join("spindle-hello_1.2.3~rc1-1_all.deb")).unwrap()
    };
    let a = build(&out.path().join("a"));
    let b = build(&out.path().join("b"));
    assert!(a == b, "two builds with the same SOURCE_DATE_EPOCH differ");
    let deb = out.path().join("a/spindle-hello_1.2.3~rc1-1_all.deb");
    let info = Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .arg("Package")
        .output()
        .unwrap();
    assert_eq!(stdout(&info).trim(), "spindle-hello");
    let o = Command::new(BIN)
        .args(["pkg", "inspect", "--contents"])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Version: 1:1.2.3~rc1-1")
            && stdout(&o).contains("./usr/bin/spindle-hello"),
        "{}",
        stdout(&o)
    );

    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "[package]\nname = \"Bad_Name\"\nversion = \"1.0\"\narchitecture = \"all\"\nmaintainer = \"x <x@y>\"\ndescription = \"d\"\n").unwrap();
    let o = Command::new(BIN)
        .args(["pkg", "build"])
        .arg(&bad)
        .arg("-d")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("{}:2:8:", bad.display())), "{e}");
}

/// The daemon's listener flags refuse a bad value before anything starts: exit 2 with the flag
/// and the value named, and no data dir made.
#[test]
fn server_listen_flags_refuse_bad_values_before_starting() {
    let cases: &[(&str, &str)] = &[
        ("--ssh-listen", "nonsense"),
        ("--ssh-listen", "127.0.0.1"),
        ("--aws-listen", "localhost:4566"),
        ("--aws-listen", "127.0.0.1:99999"),
        ("--dns-listen", "off-ish"),
    ];
    for (flag, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let o = std::process::Command::new(BIN)
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                flag,
                value,
                "--data-dir",
            ])
            .arg(&data)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && err.contains(value),
            "{flag} {value}: {err}"
        );
        assert!(!data.exists(), "{flag} {value}: the data dir was made");
    }
}
