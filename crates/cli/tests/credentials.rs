//! Issue 14, "no lock-out": a second installation (another data dir, the same credentials
//! file) adds its admin credential under a profile of its own and leaves the first one's
//! working; `spindle server --new-admin-credential` is the way back in when an admin secret is
//! lost: refused while the daemon runs, it mints a new admin key and revokes nothing.

mod common;

use common::{stderr, stdout, Daemon, BIN};
use spindle_client::{Client, CredentialsFile, Profile};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A daemon on `data` sharing `creds`, its stderr going to `log`; waits until it answers and
/// returns it with its endpoint and the admin profile its `server.json` names.
fn second_daemon(data: &Path, creds: &Path, log: &Path) -> (Stopped, String, Option<String>) {
    let _ = std::fs::remove_file(data.join("server.json"));
    let child = Stopped(
        Command::new(BIN)
            .args([
                "server",
                "--no-runtime",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data)
            .arg("--credentials-file")
            .arg(creds)
            .env("SPINDLE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(info) = std::fs::read(data.join("server.json")) {
            let v: serde_json::Value = serde_json::from_slice(&info).unwrap();
            let endpoint = v["endpoint"].as_str().unwrap().to_owned();
            if Client::new(&endpoint, None).health().is_ok() {
                let profile = v["admin_profile"].as_str().map(str::to_owned);
                return (child, endpoint, profile);
            }
        }
        if Instant::now() >= deadline {
            drop(child);
            panic!(
                "the second daemon did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon this test started, stopped by its PID (SIGTERM, then reaped) when dropped, also
/// when an assertion fails.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill with a PID we spawned and have not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn stop(child: Stopped) {
    drop(child);
}

fn client(endpoint: &str, p: &Profile) -> Client {
    Client::new(
        endpoint,
        Some((
            p.access_key_id.clone().unwrap(),
            p.secret_access_key.as_deref().unwrap(),
        )),
    )
}

fn cli(creds: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--credentials-file")
        .arg(creds)
        .args(args)
        .env_remove("SPINDLE_PROFILE")
        .env_remove("SPINDLE_ENDPOINT")
        .env_remove("SPINDLE_DATA_DIR")
        .output()
        .unwrap()
}

#[test]
fn a_second_installation_leaves_the_first_ones_profile_working() {
    let mut first = Daemon::start(BIN);
    let creds = first.credentials_file();
    let first_key = CredentialsFile::load(&creds).unwrap().profiles["default"].clone();

    let other = tempfile::tempdir().unwrap();
    let data2 = other.path().join("try");
    let log = other.path().join("try.log");
    let (second, endpoint2, profile2) = second_daemon(&data2, &creds, &log);
    assert_eq!(profile2.as_deref(), Some("default-try"));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("Profile [default]") && said.contains("profile [default-try]"),
        "{said}"
    );
    let file = CredentialsFile::load(&creds).unwrap();
    assert_eq!(
        file.profiles["default"], first_key,
        "the first profile is untouched"
    );
    let second_key = file.profiles["default-try"].clone();
    assert_eq!(second_key.endpoint.as_deref(), Some(endpoint2.as_str()));

    // Each profile works against its own installation, and only there.
    assert!(client(&first.endpoint, &first_key).whoami().unwrap().admin);
    assert!(client(&endpoint2, &second_key).whoami().unwrap().admin);
    assert!(client(&endpoint2, &first_key).whoami().is_err());
    let o = cli(&creds, &["--profile", "default-try", "whoami"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A restart finds its profile again (by its key, whatever --profile says) and leaves the
    // first installation's alone.
    stop(second);
    let (second, endpoint2, profile2) = second_daemon(&data2, &creds, &log);
    assert_eq!(profile2.as_deref(), Some("default-try"));
    let file = CredentialsFile::load(&creds).unwrap();
    assert_eq!(file.profiles["default"], first_key);
    assert_eq!(
        file.profiles["default-try"].endpoint.as_deref(),
        Some(endpoint2.as_str())
    );
    assert_eq!(file.profiles.len(), 2);
    stop(second);

    // The way back in, after the old lock-out: [default] holds the second installation's key,
    // so the first one's admin secret is gone from the file.
    let mut lost = file.clone();
    lost.profiles.insert("default".into(), second_key.clone());
    lost.profiles.remove("default-try");
    lost.save(&creds).unwrap();
    let data1 = first.data_dir();
    let recover = |data: &Path| {
        cli(
            &creds,
            &[
                "server",
                "--data-dir",
                data.to_str().unwrap(),
                "--new-admin-credential",
            ],
        )
    };
    // Refused while the daemon runs (it holds the data dir's lock).
    let o = recover(&data1);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another spindle server (pid")
            && stderr(&o).contains("is using the data dir"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        CredentialsFile::load(&creds).unwrap(),
        lost,
        "nothing written"
    );
    // A data dir no daemon ever used is not an installation.
    let o = recover(&other.path().join("nothing"));
    assert!(
        stderr(&o).contains("no Spindle installation in"),
        "{}",
        stderr(&o)
    );
    assert!(!other.path().join("nothing").exists());

    first.stop();
    let o = recover(&data1);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("as profile [default-data]")
            && stdout(&o).contains("no other key was revoked"),
        "{}",
        stdout(&o)
    );
    let file = CredentialsFile::load(&creds).unwrap();
    assert_eq!(
        file.profiles["default"], second_key,
        "[default] was left as it was"
    );
    let new_key = file.profiles["default-data"].clone();
    assert_ne!(new_key.access_key_id, first_key.access_key_id);

    first.spawn();
    let admin = client(&first.endpoint, &new_key);
    assert!(
        admin.whoami().unwrap().admin,
        "the new credential is an admin"
    );
    assert!(
        client(&first.endpoint, &first_key).whoami().unwrap().admin,
        "the old admin key was not revoked"
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data1.join("server.json")).unwrap()).unwrap();
    assert_eq!(info["admin_profile"], "default-data");
    let o = cli(
        &creds,
        &[
            "--endpoint",
            &first.endpoint,
            "--profile",
            "default-data",
            "account",
            "list",
        ],
    );
    assert!(
        stdout(&o).contains("management"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}
