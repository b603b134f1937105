//! `spindle devbox` end to end, as root, against a real daemon: bake a busybox recipe and run
//! it as a box with the project directory bind-mounted; a file written on the host is seen
//! inside and one written inside is seen on the host; `up` again is a no-op and `up` of a
//! changed recipe replaces the instance; `down` removes the instance, its cgroups and its
//! network. A scoped credential asking for a bind mount is refused, and bad mount paths are
//! refused naming the flag (or the field, through the API) before anything runs.

mod common;

use common::Daemon;
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

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}\n{}",
        common::stdout(o),
        common::stderr(o)
    );
    serde_json::from_str(&common::stdout(o)).unwrap()
}

#[test]
fn devbox_mounts_the_project_both_ways_replaces_on_a_new_image_and_goes_down_cleanly() {
    if let Some(why) = spindle_runtime::host::missing_prerequisites() {
        eprintln!("SKIPPED {}: {why}", module_path!());
        return;
    }
    // The runtime prefix allows only a-z and 0-9: `spdbx` stands for this area's `sp-dbx-`.
    let prefix = format!("spdbx{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let mut d = Daemon::start_with_runtime(&prefix);
    let admin = d.admin();
    let proj = tempfile::tempdir().unwrap();
    common::busybox_project(proj.path(), "box.pkr.hcl", RECIPE);
    let proj_dir = fs::canonicalize(proj.path()).unwrap();
    let recipe = proj.path().join("box.pkr.hcl");
    let cache = d.dir.path().join("bake");
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
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("mount: a host bind mount") && refused.contains("admin credential"),
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
