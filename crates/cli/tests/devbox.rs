//! `spindle devbox` end to end, as root, against a real daemon: bake a busybox recipe and run
//! it as a box with the project directory bind-mounted; a file written on the host is seen
//! inside and one written inside is seen on the host; `up` again is a no-op and `up` of a
//! changed recipe replaces the instance; `down` removes the instance, its cgroups and its
//! network. A scoped credential asking for a bind mount is refused, and bad mount paths are
//! refused naming the flag (or the field, through the API) before anything runs.

mod common;

use common::{Daemon, BIN};
use spindle_model::devbox::{DevboxMount, PutDevbox};
use spindle_runtime::host::{our_netns, Sweep};
use std::fs;
use std::path::Path;

const RECIPE: &str = r#"
variable "release" {
  default = "one"
}
source "spindle" "box" {
  base = "scratch"
}
build {
  sources = ["source.spindle.box"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = ["/bin/busybox --install -s /bin", "echo ${var.release} > /etc/release"]
  }
}
"#;

/// Processes on this host with a mount of `dir` in their mount namespace (from the root field
/// of `/proc/PID/mountinfo`, which names the bound directory).
fn processes_mounting(dir: &Path) -> Vec<u32> {
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|m| {
                m.lines().any(|l| {
                    l.split(' ')
                        .nth(3)
                        .is_some_and(|root| root.ends_with(&name))
                })
            })
        })
        .collect()
}

/// The terminal side of an interactive command: `spindle ARGS` as the session leader of a new
/// pseudo-terminal (its controlling terminal, `rows`×`cols`), as a user's terminal runs it.
struct Pty {
    master: fs::File,
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Pty {
    fn spawn(d: &Daemon, args: &[&str], rows: u16, cols: u16) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut m, mut s) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors we then own; the name is not asked for.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just returned by openpty and nothing else owns them.
        let (master, slave) = unsafe { (fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["--endpoint", &d.endpoint, "--credentials-file"])
            .arg(d.credentials_file())
            .args(args)
            .env("TERM", "dumb")
            .env_remove("SPINDLE_PROFILE")
            .env_remove("SPINDLE_ACCOUNT")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe and allocate nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd); // closes our copies of the slave, so reads end when the command does
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut r, out) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pty {
            master,
            child,
            seen,
        }
    }

    fn send(&mut self, text: &str) {
        use std::io::Write;
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Waits (up to `secs`) until the terminal has shown `want`.
    fn expect(&self, want: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.seen.lock().unwrap().contains(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal did not show {want:?} within {secs} s:\n{}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the descriptor is ours.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The command's exit code, waiting at most `secs`.
    fn exit_code(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the shell did not exit:\n{}", self.seen.lock().unwrap());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}\n{}",
        common::stdout(o),
        common::stderr(o)
    );
    serde_json::from_str(&common::stdout(o)).unwrap()
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn devbox_mounts_the_project_both_ways_replaces_on_a_new_image_and_goes_down_cleanly() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    // The runtime prefix allows only a-z and 0-9: `spdbx` stands for this area's `sp-dbx-`.
    let prefix = format!("spdbx{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let mut d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    let proj = tempfile::tempdir().unwrap();
    common::busybox_project(proj.path(), "box.pkr.hcl", RECIPE);
    let proj_dir = fs::canonicalize(proj.path()).unwrap();
    let recipe = proj.path().join("box.pkr.hcl");
    let cache = d.root().join("bake");
    let recipe_s = recipe.to_str().unwrap();
    let cache_s = cache.to_str().unwrap();
    let up = |d: &Daemon, extra: &[&str]| {
        let mut args = vec!["--output", "json", "devbox", "up", recipe_s];
        args.extend_from_slice(&["-cache-dir", cache_s]);
        args.extend_from_slice(extra);
        json(&d.cli(&args))
    };
    let exec = |d: &Daemon, cmd: &[&str]| {
        let mut args = vec!["devbox", "exec", "box", "--"];
        args.extend_from_slice(cmd);
        d.cli(&args)
    };

    // Bad mount paths are refused naming the flag, before anything is baked or launched.
    let file = proj.path().join("box.pkr.hcl");
    for (mount, want) in [
        (
            "relative/dir:/project".to_string(),
            "host path `relative/dir` must be absolute",
        ),
        ("/:/project".to_string(), "is the root directory"),
        (
            "/nonexistent-sp-dbx:/project".to_string(),
            "host path `/nonexistent-sp-dbx` does not exist",
        ),
        (format!("{}:/project", file.display()), "is not a directory"),
        (format!("{}:/", proj_dir.display()), "guest path `/`"),
        (format!("{}:../x", proj_dir.display()), "guest path `../x`"),
    ] {
        let o = d.cli(&["devbox", "up", "--mount", &mount, recipe_s]);
        let err = common::stderr(&o);
        assert!(!o.status.success(), "{mount}");
        assert!(
            err.contains("--mount: ") && err.contains(want),
            "{mount}: {err}"
        );
    }
    assert!(!cache.exists(), "nothing was baked for a refused mount");
    assert!(admin.list_devboxes("management").unwrap().is_empty());

    // Up: the recipe's directory is mounted at /project by default.
    let first = up(&d, &[]);
    assert_eq!(first["change"], "created", "{first}");
    let b = &first["devbox"];
    assert_eq!(b["name"], "box");
    assert_eq!(b["state"], "running");
    assert_eq!(
        b["mount"].as_str().unwrap(),
        format!("{}:/project", proj_dir.display())
    );
    let first_id = b["instance_id"].as_str().unwrap().to_string();
    let image_one = b["image_id"].as_str().unwrap().to_string();
    assert_eq!(
        admin.list_images("management").unwrap()[0].id,
        image_one,
        "the bake imported the image the box runs"
    );

    // Host → box.
    fs::write(proj.path().join("from-host.txt"), "written on the host\n").unwrap();
    let o = exec(&d, &["cat", "/project/from-host.txt"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(common::stdout(&o), "written on the host\n");
    // Box → host (read-write), and the box runs the baked image.
    let o = exec(
        &d,
        &[
            "sh",
            "-c",
            "echo written in the box > /project/from-box.txt",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(
        fs::read_to_string(proj.path().join("from-box.txt")).unwrap(),
        "written in the box\n"
    );
    assert_eq!(common::stdout(&exec(&d, &["cat", "/etc/release"])), "one\n");
    // A failing command's exit code reaches the CLI.
    let o = exec(&d, &["sh", "-c", "exit 3"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("code 3"),
        "{}",
        common::stderr(&o)
    );

    // An interactive shell on a terminal (issue 14): it starts in the project directory, sees
    // the terminal's size and its changes, Ctrl-C interrupts the running command (not the
    // shell), and the shell's exit code is the command's.
    let mut pty = Pty::spawn(&d, &["devbox", "shell", "box"], 33, 101);
    pty.send("stty size; echo in-$PWD-$((40+2))\n");
    pty.expect("33 101", 20);
    pty.expect("in-/project-42", 5);
    pty.resize(40, 120);
    pty.send("stty size; cat /project/from-host.txt\n");
    pty.expect("40 120", 5);
    pty.expect("written on the host", 5);
    pty.send("sleep 60\n");
    std::thread::sleep(std::time::Duration::from_millis(500));
    pty.send("\x03");
    pty.send("echo after-$((1+1))\n");
    pty.expect("after-2", 10);
    pty.send("exit 3\n");
    assert_eq!(pty.exit_code(10), Some(3));
    drop(pty);
    // A command instead of the shell, on the same terminal; the box is still running.
    let mut pty = Pty::spawn(
        &d,
        &[
            "devbox",
            "shell",
            "box",
            "--",
            "sh",
            "-c",
            "test -t 0 && echo tty-yes; exit 7",
        ],
        24,
        80,
    );
    pty.expect("tty-yes", 20);
    assert_eq!(pty.exit_code(10), Some(7));
    drop(pty);
    // A box that doesn't exist is refused by name.
    let o = d.cli(&["devbox", "shell", "nope"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("devbox `nope` not found"),
        "{}",
        common::stderr(&o)
    );

    // The bind lives in the box's own mount namespace: the host's has no such mount.
    let mounting = processes_mounting(&proj_dir);
    assert!(
        !mounting.is_empty(),
        "the box's processes mount the project"
    );
    assert!(!mounting.contains(&std::process::id()));
    assert!(!fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .contains(proj_dir.file_name().unwrap().to_str().unwrap()));

    // List shows name, image, state, address and mount; the text table too.
    let list = json(&d.cli(&["--output", "json", "devbox", "list"]));
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["image_id"], image_one.as_str());
    assert!(rows[0]["private_ip"]
        .as_str()
        .unwrap()
        .parse::<std::net::Ipv4Addr>()
        .is_ok());
    let table = common::stdout(&d.cli(&["devbox", "list"]));
    assert!(
        table.contains("NAME") && table.contains("box") && table.contains("/project"),
        "{table}"
    );
    // A box is not one of the account's stack instances.
    assert!(admin.list_instances("management").unwrap().is_empty());

    // Up again with the same image: nothing changes.
    let again = up(&d, &[]);
    assert_eq!(again["change"], "unchanged", "{again}");
    assert_eq!(again["devbox"]["instance_id"], first_id.as_str());

    // A box whose command ended (here: the idle shell, pid 2 after init, told to stop) is
    // started again by `up`, on the same disk.
    exec(&d, &["kill", "-TERM", "2"]);
    let mut state = String::new();
    for _ in 0..100 {
        state = admin.describe_devbox("management", "box").unwrap().state;
        if state == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state, "stopped");
    let restarted = up(&d, &[]);
    assert_eq!(restarted["change"], "started", "{restarted}");
    assert_eq!(restarted["devbox"]["instance_id"], first_id.as_str());
    assert_eq!(
        common::stdout(&exec(&d, &["cat", "/project/from-host.txt"])),
        "written on the host\n",
        "mounted again on start"
    );

    // A new image replaces the instance in the same network; the project stays mounted.
    let second = up(&d, &["-var", "release=two"]);
    assert_eq!(second["change"], "replaced", "{second}");
    let second_id = second["devbox"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second_id, first_id);
    assert_ne!(second["devbox"]["image_id"], image_one.as_str());
    assert_eq!(second["devbox"]["vpc_id"], first["devbox"]["vpc_id"]);
    assert_eq!(common::stdout(&exec(&d, &["cat", "/etc/release"])), "two\n");
    assert_eq!(
        common::stdout(&exec(&d, &["cat", "/project/from-box.txt"])),
        "written in the box\n"
    );
    assert_eq!(our_netns(&prefix).len(), 2, "one VPC router and one box");
    // The image the box runs can't be removed from under it, and says who uses it.
    let image_two = second["devbox"]["image_id"].as_str().unwrap();
    let e = admin
        .remove_image("management", image_two)
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use by devbox box"), "{e}");

    // The daemon supervises the box: killed with -9 and restarted, it adopts it, still running.
    d.kill9();
    d.spawn();
    let admin = d.admin();
    let list = json(&d.cli(&["--output", "json", "devbox", "list"]));
    assert_eq!(list[0]["instance_id"], second_id.as_str(), "{list}");
    assert_eq!(list[0]["state"], "running", "{list}");
    assert_eq!(common::stdout(&exec(&d, &["cat", "/etc/release"])), "two\n");

    // Through the API, the admin's bad paths are refused naming the field.
    let bad = admin
        .put_devbox(
            "management",
            "other",
            &PutDevbox {
                image: image_one.clone(),
                mount: Some(DevboxMount {
                    host: "/".into(),
                    guest: "/project".into(),
                }),
                instance_type: None,
                seccomp_profile: None,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("mount: host path `/` is the root directory"),
        "{bad}"
    );

    // A scoped credential may not ask for a bind mount (a clear refusal, nothing launched),
    // but may run a box without one.
    let o = d.cli(&[
        "account",
        "keys",
        "create",
        "--allow",
        "devbox:*",
        "--allow",
        "image:*",
        "--allow",
        "param:*",
        "--save-profile",
        "scoped",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = d.cli(&[
        "--profile",
        "scoped",
        "devbox",
        "up",
        "--name",
        "scoped",
        recipe_s,
        "-cache-dir",
        cache_s,
    ]);
    let err = common::stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("mount: a host bind mount") && err.contains("admin credential"),
        "{err}"
    );
    assert!(!err.contains("==>"), "refused before baking: {err}");
    // The daemon refuses it too, whatever the client checked.
    let creds = spindle_client::CredentialsFile::load(&d.credentials_file()).unwrap();
    let p = &creds.profiles["scoped"];
    let scoped_client = spindle_client::Client::new(
        &d.endpoint,
        Some((
            p.access_key_id.clone().unwrap(),
            p.secret_access_key.as_deref().unwrap(),
        )),
    );
    let refused = scoped_client
        .put_devbox(
            "management",
            "scoped",
            &PutDevbox {
                image: image_one.clone(),
                mount: Some(DevboxMount {
                    host: proj_dir.display().to_string(),
                    guest: "/project".into(),
                }),
                instance_type: None,
                seccomp_profile: None,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("mount: a host bind mount") && refused.contains("admin credential"),
        "{refused}"
    );
    // Issue 22: a wider seccomp profile needs the admin-granted grant, which a scoped
    // credential (allowed `devbox:*`) doesn't hold.
    let refused = scoped_client
        .put_devbox(
            "management",
            "scoped",
            &PutDevbox {
                image: image_one.clone(),
                mount: None,
                instance_type: None,
                seccomp_profile: Some("devbox".into()),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "seccomp_profile: the `devbox` profile needs the grant `instance:UseSeccompProfile`"
        ),
        "{refused}"
    );
    // A profile name the daemon doesn't know is refused by name, before any grant check.
    let refused = scoped_client
        .put_devbox(
            "management",
            "scoped",
            &PutDevbox {
                image: image_one.clone(),
                mount: None,
                instance_type: None,
                seccomp_profile: Some("unconfined".into()),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "seccomp_profile: `unconfined` is not a seccomp profile a box can ask for (expected one of: default, devbox)"
        ),
        "{refused}"
    );
    assert_eq!(our_netns(&prefix).len(), 2, "the refusals launched nothing");
    let o = d.cli(&[
        "--profile",
        "scoped",
        "--output",
        "json",
        "devbox",
        "up",
        "--name",
        "scoped",
        "--no-mount",
        recipe_s,
        "-cache-dir",
        cache_s,
    ]);
    let scoped = json(&o);
    assert_eq!(scoped["change"], "created");
    assert!(scoped["devbox"]["mount"].is_null());
    // Attaching is the installation admin's, even for a credential allowed `devbox:*`.
    let refused = scoped_client
        .attach_devbox("management", "scoped")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("devbox:Attach"), "{refused}");
    let o = d.cli(&["--profile", "scoped", "devbox", "down", "scoped"]);
    assert!(o.status.success(), "{}", common::stderr(&o));

    // Down removes the instance, its cgroups and its network; the project stays on the host.
    let o = d.cli(&["--output", "json", "devbox", "down", "box"]);
    let gone = json(&o);
    assert_eq!(gone["state"], "terminated", "{gone}");
    assert!(admin.list_devboxes("management").unwrap().is_empty());
    assert!(our_netns(&prefix).is_empty(), "{:?}", our_netns(&prefix));
    let layout = spindle_runtime::CgroupLayout::detect(
        &spindle_runtime::RealKernel as &dyn spindle_runtime::Kernel,
        Path::new("/sys/fs/cgroup"),
    );
    for p in layout.procs_files(&prefix, &second_id) {
        assert!(!p.exists(), "{} is left", p.display());
    }
    let doctor = json(&d.cli(&["--output", "json", "doctor"]));
    assert_eq!(doctor["leaks"], serde_json::json!([]), "{doctor}");
    assert_eq!(
        processes_mounting(&proj_dir),
        Vec::<u32>::new(),
        "no process is left with the project mounted"
    );
    assert!(proj.path().join("from-box.txt").exists());
    let o = d.cli(&["devbox", "down", "box"]);
    assert!(common::stderr(&o).contains("devbox `box` not found"));
}

/// Issue 14: `spindle devbox up examples/twine` from the project, as `spindle up` would make
/// the image (the package built and published to the project's repo, the recipe baked with
/// `repo_url` and `repo_keyring`), with the project's root — not the recipe's folder — at
/// /project. Bakes a Debian base: minutes on a cold cache (`SPINDLE_UP_TEST_BAKE_CACHE=DIR`
/// keeps it between runs, as for the `up` test).
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn devbox_up_from_the_twine_project_runs_its_image_with_the_project_mounted() {
    if let Some(why) = common::cannot_bake_debian() {
        eprintln!("SKIPPED {}: {why}", module_path!());
        return;
    }
    let prefix = format!("spdbt{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let work = tempfile::tempdir().unwrap();
    let proj = work.path().join("twine");
    common::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/twine"),
        &proj,
    );
    let proj_dir = fs::canonicalize(&proj).unwrap();
    let data = d.data_dir();
    if let Ok(cache) = std::env::var("SPINDLE_UP_TEST_BAKE_CACHE") {
        fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&cache, data.join("bake")).unwrap();
    }
    let (proj_s, data_s) = (proj.to_str().unwrap(), data.to_str().unwrap());

    // The recipe alone lacks the repository: each missing variable is reported once, as
    // declared without a value (not also as undeclared).
    let recipe = proj.join("images/twine.pkr.hcl");
    let o = d.cli(&[
        "devbox",
        "up",
        recipe.to_str().unwrap(),
        "-cache-dir",
        data_s,
    ]);
    let err = common::stderr(&o);
    assert!(!o.status.success());
    for var in ["repo_url", "repo_keyring"] {
        let said = format!("variable `{var}` has no default and no value");
        assert_eq!(err.matches(&said).count(), 1, "{err}");
    }
    assert!(!err.contains("declare it"), "{err}");

    // From the project: the image `spindle up` bakes, in its account, the project mounted.
    let up = || {
        json(&d.cli(&[
            "--output",
            "json",
            "devbox",
            "up",
            "--data-dir",
            data_s,
            proj_s,
        ]))
    };
    let first = up();
    assert_eq!(first["change"], "created", "{first}");
    let b = &first["devbox"];
    assert_eq!(b["name"], "twine");
    assert_eq!(
        b["mount"].as_str().unwrap(),
        format!("{}:/project", proj_dir.display())
    );
    let admin = d.admin();
    let latest = spindle_model::ParamName::parse("/spindle/images/twine/latest").unwrap();
    assert_eq!(
        admin.get_param("dev", &latest, false).unwrap().value,
        b["image_id"].as_str().unwrap()
    );
    let o = d.cli(&[
        "--account",
        "dev",
        "devbox",
        "exec",
        "twine",
        "--",
        "sh",
        "-c",
        "command -v twine && head -n 1 /project/spindle.toml && ls /project/images",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(out.contains("/usr/bin/twine\n"), "{out}");
    assert!(out.contains("# Twine: an HR and expenses web app"), "{out}");
    assert!(out.contains("twine.pkr.hcl"), "{out}");

    // Again: the image is reused (every step up to date) and the box left as it is.
    let again = up();
    assert_eq!(again["change"], "unchanged", "{again}");
    assert_eq!(again["devbox"]["image_id"], b["image_id"]);

    let o = d.cli(&["--account", "dev", "devbox", "down", "twine"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(our_netns(&prefix).is_empty(), "{:?}", our_netns(&prefix));
}
