//! `spindle up examples/twine` end to end, as root, against a real daemon: a fresh copy of the
//! example is built (app/build.sh, `pkg build`), published to a signed repo in dev, baked into
//! a Debian image by its recipe, and deployed into dev and prod; the dev URL then answers a
//! request served by twine in an instance booted from the baked image. A second `up` changes
//! nothing: no new stack event, package or image. A changed recipe then re-bakes and the new
//! image rolls out to the dev group.
//!
//! `SPINDLE_UP_TEST_BASE=image:NAME:TAG` bakes on another base than the manifest's Debian one
//! (it must have dpkg and apt); by default the test bakes what the manifest says.
//! `SPINDLE_UP_TEST_BAKE_CACHE=DIR` keeps the bake cache in DIR between runs.

mod common;

use common::{copy_tree, stderr, stdout, Daemon, Sweep};
use spindle_client::Client;
use spindle_model::ParamName;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Deletes the app stacks (their instances and load balancers) before the daemon stops.
struct Stacks<'a>(&'a Client);

impl Drop for Stacks<'_> {
    fn drop(&mut self) {
        for account in ["prod", "dev"] {
            let _ = self.0.delete_stack(account, "twine-app");
        }
    }
}

/// One HTTP/1.1 request to `url` (`http://HOST[:PORT]/PATH`); the status line, headers and body.
fn http(url: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let host = url
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let addr = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:80")
    };
    let mut s = std::net::TcpStream::connect(&addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Tenant-Id: acme\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn events(c: &Client, account: &str, stack: &str) -> usize {
    c.stack_events(account, stack).unwrap().len()
}

#[test]
fn up_builds_publishes_bakes_deploys_and_a_second_run_does_nothing() {
    if let Some(why) = common::cannot_bake_debian() {
        eprintln!("SKIPPED {}: {why}", module_path!());
        return;
    }
    let prefix = format!("spup{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(&prefix);
    let admin = d.admin();
    let _stacks = Stacks(&admin);

    let work = tempfile::tempdir().unwrap();
    let proj = work.path().join("twine");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/twine"),
        &proj,
    );
    if let Ok(base) = std::env::var("SPINDLE_UP_TEST_BASE") {
        let m = proj.join("spindle.toml");
        let text = std::fs::read_to_string(&m).unwrap().replace(
            "vars = { base = \"debian:bookworm\" }",
            &format!("vars = {{ base = \"{base}\" }}"),
        );
        std::fs::write(&m, text).unwrap();
    }
    let data = d.data_dir();
    // A developer's knob: keep the bake cache (the Debian base) between runs of this test.
    if let Ok(cache) = std::env::var("SPINDLE_UP_TEST_BAKE_CACHE") {
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&cache, data.join("bake")).unwrap();
    }
    let up = || {
        let started = Instant::now();
        let o = d.cli(&[
            "--output",
            "json",
            "up",
            proj.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        let secs = started.elapsed().as_secs_f64();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        (v, secs)
    };

    let (first, first_secs) = up();
    eprintln!("first `spindle up`: {first_secs:.1} s\n{first:#}");
    let done = strings(&first["done"]);
    for want in [
        "created account dev",
        "created signing key twine in dev",
        "created repo twine in dev",
        "built package twine (twine_0.1.0-1_amd64.deb",
        "published repo twine (1 package(s) new)",
        "baked image twine = ami-",
        "deployed stack twine-app in dev: CREATE_COMPLETE",
        "deployed stack twine-app in prod: CREATE_COMPLETE",
    ] {
        assert!(
            done.iter().any(|d| d.starts_with(want)),
            "no `{want}…` in {done:#?}"
        );
    }

    // The image the bake published is what dev's and prod's parameters name, and both
    // accounts own it.
    let latest = ParamName::parse("/spindle/images/twine/latest").unwrap();
    let image = admin.get_param("dev", &latest, false).unwrap().value;
    assert_eq!(
        admin.get_param("prod", &latest, false).unwrap().value,
        image
    );
    for account in ["dev", "prod"] {
        let owned = admin.list_images(account).unwrap();
        assert!(owned.iter().any(|i| i.id == image), "{account}: {owned:?}");
    }
    // The dev URL answers with twine, from an instance booted from the baked image.
    let urls = first["urls"].as_array().unwrap();
    let url_of = |account: &str| {
        urls.iter()
            .find(|u| u["stack"] == "twine-app" && u["account"] == account)
            .and_then(|u| u["url"].as_str())
            .unwrap_or_else(|| panic!("no twine-app URL for {account} in {urls:?}"))
            .to_string()
    };
    let dev_url = url_of("dev");
    assert_ne!(dev_url, url_of("prod"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let posted = loop {
        match http(
            &dev_url,
            "POST",
            "/expenses",
            "amount=12.34&month=2026-11&category=travel&description=up-test",
        ) {
            Ok(r) if r.starts_with("HTTP/1.1 201") || r.starts_with("HTTP/1.1 200") => break r,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "{dev_url} did not serve twine within 60 s: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let dev_instances = admin.list_instances("dev").unwrap();
    assert!(
        !dev_instances.is_empty() && dev_instances.iter().all(|i| i.image_id == image),
        "{dev_instances:?}"
    );
    let served_by = posted
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-served-by"))
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| panic!("no X-Served-By in {posted}"))
        .trim()
        .to_string();
    assert!(
        dev_instances.iter().any(|i| i.hostname == served_by),
        "served by {served_by}, not one of {dev_instances:?}"
    );
    let listed = http(&dev_url, "GET", "/expenses?month=2026-11", "").unwrap();
    assert!(listed.contains("up-test"), "{listed}");

    // A second run: everything up to date, nothing new anywhere.
    // Stack events (dev app, prod app, dev config), the repo's packages, dev's images.
    let counts = || {
        (
            events(&admin, "dev", "twine-app"),
            events(&admin, "prod", "twine-app"),
            events(&admin, "dev", "twine-config"),
            admin.describe_repo("dev", "twine").unwrap().packages,
            admin.list_images("dev").unwrap().len(),
        )
    };
    let before = counts();
    let (second, second_secs) = up();
    eprintln!("second `spindle up`: {second_secs:.1} s\n{second:#}");
    assert_eq!(second["done"], serde_json::json!([]), "{second:#}");
    let up_to_date = strings(&second["up_to_date"]);
    for want in [
        "package twine",
        "image twine",
        "publication twine/stable in dev",
        "stack twine-app in dev",
        "stack twine-app in prod",
    ] {
        assert!(up_to_date.contains(&want), "{want} not in {up_to_date:?}");
    }
    let after = counts();
    assert_eq!(
        before, after,
        "(dev app, prod app, dev config events, packages, images)"
    );
    assert_eq!(before.3, 1);
    assert_eq!(admin.get_param("dev", &latest, false).unwrap().value, image);
    assert_eq!(second["urls"], first["urls"]);

    // As people read it: one line saying so, then the URLs.
    let o = d.cli(&[
        "up",
        proj.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    eprintln!("{text}");
    assert!(
        text.starts_with("Nothing to do: project twine is up to date"),
        "{text}"
    );
    assert!(
        text.contains(&format!("twine-app dev: {dev_url}")),
        "{text}"
    );

    // A changed recipe re-bakes, and the new image id reaches the groups through the
    // parameter: the deploy updates the launch templates and the groups replace their
    // instances (launch before terminate).
    let recipe = proj.join("images/twine.pkr.hcl");
    let text = std::fs::read_to_string(&recipe).unwrap();
    let changed = format!(
        "{}\n  provisioner \"shell\" {{\n    inline = [\"echo 2 > /etc/twine-release\"]\n  }}\n}}\n",
        text.trim_end().strip_suffix('}').unwrap()
    );
    std::fs::write(&recipe, changed).unwrap();
    let (third, third_secs) = up();
    eprintln!("`spindle up` after a recipe change: {third_secs:.1} s\n{third:#}");
    let done = strings(&third["done"]);
    for want in [
        "baked image twine = ami-",
        "deployed stack twine-app in dev: UPDATE_COMPLETE",
        "deployed stack twine-app in prod: UPDATE_COMPLETE",
    ] {
        assert!(
            done.iter().any(|d| d.starts_with(want)),
            "no `{want}…` in {done:#?}"
        );
    }
    assert!(
        !done.iter().any(|d| d.starts_with("built package")),
        "{done:#?}"
    );
    let new_image = admin.get_param("dev", &latest, false).unwrap().value;
    assert_ne!(new_image, image);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let running: Vec<_> = admin
            .list_instances("dev")
            .unwrap()
            .into_iter()
            .filter(|i| i.state == "running")
            .collect();
        if !running.is_empty() && running.iter().all(|i| i.image_id == new_image) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev did not roll over to {new_image} within 90 s: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let listed = http(&dev_url, "GET", "/healthz", "").unwrap();
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
}

/// Images are owned per account: an account's stack may boot only images it owns, so dev's
/// image is refused in prod until it is imported there too (what `share_with` does).
#[test]
fn an_account_boots_only_images_it_owns() {
    use spindle_model::api::{CreateAccount, DeployStack, ImportImage, TemplateRequest};
    use spindle_model::AccountName;
    if let Some(why) = spindle_runtime::host::missing_prerequisites() {
        eprintln!("SKIPPED {}: {why}", module_path!());
        return;
    }
    let prefix = format!("spuo{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(&prefix);
    let admin = d.admin();
    for name in ["dev", "prod"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(name).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    let tarball = d.dir.path().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
        .unwrap();
    let import = |account: &str, tag: Option<&str>| {
        admin
            .import_image(
                account,
                &ImportImage {
                    path: tarball.display().to_string(),
                    tag: tag.map(str::to_owned),
                    entrypoint: vec![],
                    cmd: vec!["sleep".into(), "3600".into()],
                },
            )
            .unwrap()
            .id
    };
    let id = import("dev", Some("idle:latest"));
    let template = |image: &str| {
        DeployStack {
        template: TemplateRequest {
            template_body: format!(
                "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: {{CidrBlock: 10.216.0.0/20}}\n  Subnet:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.216.1.0/24}}\n  Lt:\n    Type: AWS::EC2::LaunchTemplate\n    Properties:\n      LaunchTemplateData: {{ImageId: {image}, InstanceType: t3.nano}}\n  Box:\n    Type: AWS::EC2::Instance\n    Properties: {{ImageId: {image}, InstanceType: t3.nano, SubnetId: !Ref Subnet}}\n"
            ),
            template_name: Some("box.yaml".into()),
            ..TemplateRequest::default()
        },
        ..DeployStack::default()
    }
    };
    for image in [id.as_str(), "idle:latest"] {
        let r = admin.deploy_stack("prod", "box", &template(image)).unwrap();
        assert_eq!(r.status.as_deref(), Some("ROLLBACK_COMPLETE"), "{r:?}");
        let reason = r.reason.unwrap_or_default();
        assert!(
            reason.contains(&format!("image {image} not found in account")),
            "{reason}"
        );
        assert!(admin.list_instances("prod").unwrap().is_empty());
        admin.delete_stack("prod", "box").unwrap();
    }
    // Shared by importing the same image into prod: the same id, and now prod may boot it.
    assert_eq!(import("prod", None), id);
    let r = admin.deploy_stack("prod", "box", &template(&id)).unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    assert_eq!(admin.list_instances("prod").unwrap().len(), 1);
    admin.delete_stack("prod", "box").unwrap();
}
