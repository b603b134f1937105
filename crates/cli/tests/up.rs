//! `spindle up examples/twine` end to end, as root, against a real daemon, run as the README
//! writes it: from the repository root with the relative path (issue #14). The example is built
//! (app/build.sh, `pkg build`), published to a signed repo in dev, baked into a Debian image by
//! its recipe, and deployed into dev and prod. `up` returns only once the dev URL serves: the
//! first request after it gets twine's landing page (HTML; JSON for `Accept:
//! application/json`), served by an instance booted from the baked image. A second `up` (by
//! absolute path, and as `up .` from inside the project) changes nothing: no new stack event,
//! package or image. A copy with a changed recipe re-bakes and the new image rolls out to the
//! dev group. `spindle down examples/twine --yes` then deletes the stacks and leaves no
//! instance, network namespace or leak (`spindle doctor` clean); a second `down` does nothing;
//! `up` brings it all back, and `down --all` also removes images, repo and records.
//!
//! `SPINDLE_UP_TEST_BAKE_CACHE=DIR` keeps the bake cache in DIR between runs. The twine binary
//! is built into `target/up-test` (kept between runs, and apart from the test run's own
//! target directory).

mod common;

use common::{copy_tree, stderr, stdout, Daemon, Sweep, BIN};
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

/// One HTTP/1.1 request to `url` (`http://HOST[:PORT]/PATH`) as tenant acme; the status line,
/// headers and body.
fn http(url: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    http_raw(
        url,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {{host}}\r\nX-Tenant-Id: acme\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Asserts that, for each of `wants`, some line of `have` starts with it.
fn starts_all(have: &[&str], wants: &[&str]) {
    for want in wants {
        assert!(
            have.iter().any(|d| d.starts_with(want)),
            "no `{want}…` in {have:#?}"
        );
    }
}

fn events(c: &Client, account: &str, stack: &str) -> usize {
    c.stack_events(account, stack).unwrap().len()
}

/// Sends `req` (a whole HTTP/1.1 request, `{host}` standing for the URL's host) to `url`'s
/// host; the status line, headers and body.
fn http_raw(url: &str, req: &str) -> std::io::Result<String> {
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
    s.write_all(req.replace("{host}", &host).as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.split("\r\n\r\n").next()?.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

/// `spindle ARGS` against `d` from `cwd`, as a person would type it there, but with no
/// terminal on stdin; builds (twine's `build.sh`) go to `target_dir` if given. Whether it
/// succeeded, its stdout and its stderr.
fn spindle_in(
    d: &Daemon,
    cwd: &Path,
    args: &[&str],
    target_dir: Option<&Path>,
) -> (bool, String, String) {
    let mut c = std::process::Command::new(common::BIN);
    c.args(["--endpoint", &d.endpoint, "--credentials-file"])
        .arg(d.credentials_file())
        .args(args)
        .current_dir(cwd)
        .env_remove("SPINDLE_PROFILE")
        .env_remove("SPINDLE_ACCOUNT")
        .stdin(std::process::Stdio::null());
    if let Some(t) = target_dir {
        c.env("CARGO_TARGET_DIR", t);
    }
    let o = c.output().unwrap();
    (o.status.success(), stdout(&o), stderr(&o))
}

/// `GET /` of `url` asking for `accept`: it answers 200 with `content_type`. The response.
fn get_root(url: &str, accept: &str, content_type: &str) -> String {
    let r = http_raw(
        url,
        &format!(
            "GET / HTTP/1.1\r\nHost: {{host}}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        ),
    )
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 200 "), "{accept}: {r}");
    assert_eq!(header(&r, "content-type"), Some(content_type), "{r}");
    r
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn up_from_the_repository_root_serves_the_landing_page_and_down_takes_it_all_away() {
    if let Some(why) = common::cannot_bake_debian() {
        eprintln!("SKIPPED {}: {why}", module_path!());
        return;
    }
    let prefix = format!("spup{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    let _stacks = Stacks(&admin);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let example = root.join("examples/twine");
    let data = d.data_dir();
    // A developer's knob: keep the bake cache (the Debian base) between runs of this test.
    if let Ok(cache) = std::env::var("SPINDLE_UP_TEST_BAKE_CACHE") {
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&cache, data.join("bake")).unwrap();
    }
    let target_dir = root.join("target/up-test");
    let run = |cwd: &Path, args: &[&str]| spindle_in(&d, cwd, args, Some(&target_dir));
    let up = |cwd: &Path, dir: &str| {
        let started = Instant::now();
        let (ok, out, err) = run(
            cwd,
            &[
                "--output",
                "json",
                "up",
                dir,
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        let secs = started.elapsed().as_secs_f64();
        assert!(ok, "up {dir} from {}: {out}{err}", cwd.display());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (v, secs)
    };

    // The README's command: the relative path, from the repository root.
    let (first, first_secs) = up(&root, "examples/twine");
    eprintln!("first `spindle up examples/twine`: {first_secs:.1} s\n{first:#}");
    let done = strings(&first["done"]);
    starts_all(
        &done,
        &[
            "created account dev",
            "created signing key twine in dev",
            "created repo twine in dev",
            "built package twine (twine_0.1.0-1_amd64.deb",
            "published repo twine (1 package(s) new)",
            "baked image twine = ami-",
            "deployed stack twine-dns in dns: CREATE_COMPLETE",
            "deployed stack twine-app in dev: CREATE_COMPLETE",
            "deployed stack twine-app in prod: CREATE_COMPLETE",
        ],
    );

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
    // The names the app stacks published in the dns account's zone answer each load
    // balancer's address (Debian's dig, when installed).
    if let Some(dns) = d.dns_addr() {
        for (name, account) in [("dev.twine.test", "dev"), ("twine.test", "prod")] {
            let Some(answer) = common::dig_at(dns, &[name, "A", "+short"]) else {
                eprintln!("skipped the dig of {name}: `dig` is not installed (bind9-dnsutils)");
                continue;
            };
            let host = url_of(account)
                .trim_start_matches("http://")
                .split([':', '/'])
                .next()
                .unwrap()
                .to_owned();
            assert_eq!(answer.trim(), host, "{name}");
        }
    }
    // The command is typed as this binary is found from the root: by its path, as
    // `scripts/up` leaves it.
    let bin = Path::new(common::BIN).canonicalize().unwrap();
    let me = bin
        .strip_prefix(&root)
        .unwrap_or(&bin)
        .display()
        .to_string();
    let load = first["load_command"].as_str().unwrap();
    assert!(
        load.starts_with(&format!(
            "{me} --account dev load {}/report --tenants 5",
            dev_url.trim_end_matches('/')
        )) && load.contains(" --group "),
        "{load}"
    );

    // `up` returned only once the URL serves: the very first request gets the landing page,
    // from an instance booted from the baked image, with no retry.
    let page = get_root(&dev_url, "text/html", "text/html; charset=utf-8");
    let dev_instances = admin.list_instances("dev").unwrap();
    assert!(
        !dev_instances.is_empty() && dev_instances.iter().all(|i| i.image_id == image),
        "{dev_instances:?}"
    );
    let served_by = header(&page, "x-served-by").unwrap_or_else(|| panic!("{page}"));
    let answered = dev_instances
        .iter()
        .find(|i| i.hostname == served_by)
        .unwrap_or_else(|| panic!("served by {served_by}, not one of {dev_instances:?}"));
    for want in [
        "<!DOCTYPE html>".to_string(),
        "environment <b>dev</b>".to_string(),
        format!("instance <b>{}</b>", answered.id),
        "X-Tenant-Id".to_string(),
        "<a href=\"/t/acme/expenses\">".to_string(),
        "<a href=\"/t/acme/report\">".to_string(),
    ] {
        assert!(page.contains(&want), "no {want:?} in\n{page}");
    }
    // The same URL as JSON, and the page's links work through the load balancer.
    let json = get_root(&dev_url, "application/json", "application/json");
    let body: serde_json::Value =
        serde_json::from_str(json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["service"], "twine", "{body}");
    assert_eq!(body["environment"], "dev", "{body}");
    assert_eq!(body["tenant_header"], "X-Tenant-Id", "{body}");
    let posted = http(
        &dev_url,
        "POST",
        "/t/acme/expenses",
        "amount=12.34&month=2026-11&category=travel&description=up-test",
    )
    .unwrap();
    assert!(posted.starts_with("HTTP/1.1 201"), "{posted}");
    for link in ["/t/acme/expenses", "/t/acme/report"] {
        let r = http(&dev_url, "GET", link, "").unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{link}: {r}");
    }

    // A second run, by absolute path, and a third as `up .` from inside the project: all up to
    // date, nothing new anywhere. Stack events (dev app, prod app, dev config), the repo's
    // packages, dev's images.
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
    let (second, second_secs) = up(Path::new("/"), example.to_str().unwrap());
    eprintln!("second `spindle up` (absolute): {second_secs:.1} s\n{second:#}");
    assert_eq!(second["done"], serde_json::json!([]), "{second:#}");
    let up_to_date = strings(&second["up_to_date"]);
    for want in [
        "package twine",
        "image twine",
        "publication twine/stable in dev",
        "stack twine-dns in dns",
        "stack twine-app in dev",
        "stack twine-app in prod",
    ] {
        assert!(up_to_date.contains(&want), "{want} not in {up_to_date:?}");
    }
    let (third, _) = up(&example, ".");
    assert_eq!(third["done"], serde_json::json!([]), "{third:#}");
    assert_eq!(
        counts(),
        before,
        "(dev app, prod app, dev config events, packages, images)"
    );
    assert_eq!(before.3, 1);
    assert_eq!(admin.get_param("dev", &latest, false).unwrap().value, image);
    assert_eq!(second["urls"], first["urls"]);

    // As people read it: one line saying so, the URLs, how to see it scale, how to undo it.
    let (ok, text, err) = run(
        &root,
        &["up", "examples/twine", "--data-dir", data.to_str().unwrap()],
    );
    eprintln!("{text}");
    assert!(ok, "{text}{err}");
    assert!(
        text.starts_with("Nothing to do: project twine is up to date"),
        "{text}"
    );
    for want in [
        format!("twine-app dev: {dev_url}"),
        format!("  {load}\n"),
        format!("Take it down: {me} down examples/twine"),
    ] {
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }

    // A fresh clone elsewhere with a changed recipe re-bakes (nothing else: the same sources
    // are current wherever they are), and the new image id reaches the groups through the
    // parameter: the deploy updates the launch templates and the groups replace their
    // instances (launch before terminate).
    let work = tempfile::tempdir().unwrap();
    let proj = work.path().join("twine");
    copy_tree(&example, &proj);
    let recipe = proj.join("images/twine.pkr.hcl");
    let text = std::fs::read_to_string(&recipe).unwrap();
    let changed = format!(
        "{}\n  provisioner \"shell\" {{\n    inline = [\"echo 2 > /etc/twine-release\"]\n  }}\n}}\n",
        text.trim_end().strip_suffix('}').unwrap()
    );
    std::fs::write(&recipe, changed).unwrap();
    let (changed, changed_secs) = up(work.path(), "twine");
    eprintln!("`spindle up` after a recipe change: {changed_secs:.1} s\n{changed:#}");
    let done = strings(&changed["done"]);
    starts_all(
        &done,
        &[
            "baked image twine = ami-",
            "deployed stack twine-app in dev: UPDATE_COMPLETE",
            "deployed stack twine-app in prod: UPDATE_COMPLETE",
        ],
    );
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

    // `spindle down` asks; without a terminal and without --yes it refuses and deletes nothing.
    let (ok, out, err) = run(&root, &["down", "examples/twine"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("delete stack twine-app in prod (UPDATE_COMPLETE)")
            && err.contains("stdin is not a terminal")
            && err.contains("--yes"),
        "{out}{err}"
    );
    assert_eq!(admin.list_stacks("dev").unwrap().len(), 2);

    // Down, from the repository root: the five stacks in reverse order; repo, package and
    // image stay. Nothing of the app is left running, and nothing leaked.
    let (ok, out, err) = run(
        &root,
        &["--output", "json", "down", "examples/twine", "--yes"],
    );
    assert!(ok, "{out}{err}");
    let down: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        strings(&down["deleted"]),
        [
            "delete stack twine-app in prod (UPDATE_COMPLETE)",
            "delete stack twine-app in dev (UPDATE_COMPLETE)",
            "delete stack twine-dns in dns (CREATE_COMPLETE)",
            "delete stack twine-config in prod (CREATE_COMPLETE)",
            "delete stack twine-config in dev (CREATE_COMPLETE)",
        ],
        "{down:#}"
    );
    let kept = strings(&down["kept"]).join("; ");
    assert!(
        kept.contains("repo twine in dev with package twine")
            && kept.contains(&format!("image twine ({new_image}) in prod")),
        "{kept}"
    );
    for account in ["dev", "prod"] {
        assert_eq!(admin.list_stacks(account).unwrap(), vec![], "{account}");
        let left: Vec<_> = admin
            .list_instances(account)
            .unwrap()
            .into_iter()
            .filter(|i| i.state != "terminated")
            .collect();
        assert_eq!(left, vec![], "{account}");
        assert!(admin.list_load_balancers(account).unwrap().is_empty());
    }
    let netns = spindle_runtime::host::our_netns(&prefix);
    assert!(netns.is_empty(), "left behind: {netns:?}");
    let (ok, out, err) = run(&root, &["doctor"]);
    assert!(ok && out.starts_with("Nothing leaked"), "{out}{err}");
    assert_eq!(admin.describe_repo("dev", "twine").unwrap().packages, 1);
    // A second down does nothing.
    let (ok, out, err) = run(&root, &["down", "examples/twine", "--yes"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("Nothing to take down: project twine"),
        "{out}"
    );

    // `up` after `down` brings it all back (the image is re-baked for this recipe: its layers
    // are cached), and serves again.
    let (back, back_secs) = up(&root, "examples/twine");
    eprintln!("`spindle up` after `down`: {back_secs:.1} s\n{back:#}");
    let done = strings(&back["done"]);
    starts_all(
        &done,
        &[
            "deployed stack twine-config in dev: CREATE_COMPLETE",
            "deployed stack twine-app in dev: CREATE_COMPLETE",
            "deployed stack twine-app in prod: CREATE_COMPLETE",
        ],
    );
    let back_image = admin.get_param("dev", &latest, false).unwrap().value;
    let back_url = back["urls"][0]["url"].as_str().unwrap().to_string();
    let page = http(&back_url, "GET", "/", "").unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    // `down --all` also removes what up built: images, publication, repo, key and records.
    let (ok, out, err) = run(
        &root,
        &[
            "--output",
            "json",
            "down",
            "examples/twine",
            "--yes",
            "--all",
        ],
    );
    assert!(ok, "{out}{err}");
    let down: serde_json::Value = serde_json::from_str(&out).unwrap();
    let deleted = strings(&down["deleted"]);
    starts_all(
        &deleted,
        &[
            "remove image twine (",
            "drop publication twine/stable in dev",
            "drop repo twine in dev",
            "delete signing key twine in dev",
            "delete parameter /spindle/images/twine/latest in prod",
        ],
    );
    assert!(admin.list_repos("dev").unwrap().is_empty());
    // The image `up` recorded is gone from both accounts (images of superseded bakes are not
    // `up`'s to remove: `spindle image rm`).
    let last = back_image;
    for account in ["dev", "prod"] {
        let left = admin.list_images(account).unwrap();
        assert!(!left.iter().any(|i| i.id == last), "{account}: {left:?}");
        assert!(
            admin.get_param(account, &latest, false).is_err(),
            "{account}"
        );
    }
    let (ok, out, _) = run(&root, &["down", "examples/twine", "--yes", "--all"]);
    assert!(ok && out.starts_with("Nothing to take down"), "{out}");
    assert!(spindle_runtime::host::our_netns(&prefix).is_empty());
}

/// Images are owned per account: an account's stack may boot only images it owns, so dev's
/// image is refused in prod until it is imported there too (what `share_with` does).
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn an_account_boots_only_images_it_owns() {
    use spindle_model::api::{CreateAccount, DeployStack, ImportImage, TemplateRequest};
    use spindle_model::AccountName;
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("spuo{}", std::process::id() % 100_000);
    let _sweep = Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    for name in ["dev", "prod"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(name).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    let tarball = d.root().join("busybox.tar");
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

/// Issue #14 without root: a project of a package and two parameter stacks, brought up by a
/// relative path from its parent, by its absolute path from `/`, and as `.` from inside it,
/// each time with changed sources, so the package's build command (a script that works
/// relative to the project directory) runs from every form. Then `down`: refused without a
/// terminal, the stacks in reverse order with `--yes`, nothing the second time, everything back
/// with `up`, and `--all` also drops the repo and what `up` recorded.
#[test]
fn every_path_form_builds_and_down_undoes_up() {
    let d = Daemon::start(BIN);
    let admin = d.admin();
    let work = tempfile::tempdir().unwrap();
    let work = work.path().canonicalize().unwrap();
    let proj = work.join("proj");
    let write = |rel: &str, text: &str| {
        let p = proj.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    };
    write(
        "spindle.toml",
        r#"[project]
name = "paths"
[accounts.dev]
[repos.tool]
account = "dev"
[packages.tool]
spec = "packages/tool.toml"
build = "tools/build.sh"
inputs = ["src", "tools"]
repo = "tool"
[[stacks]]
name = "cfg-a"
account = "dev"
template = "stacks/params.yaml"
parameters = { Name = "a" }
[[stacks]]
name = "cfg-b"
account = "dev"
template = "stacks/params.yaml"
parameters = { Name = "b" }
"#,
    );
    write(
        "stacks/params.yaml",
        "Parameters:\n  Name: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: !Sub \"/paths/${Name}\", Type: String, Value: !Ref Name}\n",
    );
    // Relative to its working directory, which must be the project's.
    write(
        "tools/build.sh",
        "#!/bin/sh\nset -e\nmkdir -p dist\ncp src/tool.sh dist/tool\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        proj.join("tools/build.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let release = |n: u32| {
        write("src/tool.sh", &format!("#!/bin/sh\necho {n}\n"));
        write(
            "packages/tool.toml",
            &format!("[package]\nname = \"tool\"\nversion = \"0.{n}\"\narchitecture = \"amd64\"\nmaintainer = \"T <t@example.invalid>\"\ndescription = \"t\"\n\n[[files]]\nsource = \"../dist/tool\"\ndest = \"/usr/bin/tool\"\nmode = \"0755\"\n"),
        );
    };
    let data = d.data_dir();
    let run = |cwd: &Path, args: &[&str]| spindle_in(&d, cwd, args, None);
    let up = |cwd: &Path, dir: &str| {
        let (ok, out, err) = run(
            cwd,
            &[
                "-o",
                "json",
                "up",
                dir,
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        assert!(ok, "up {dir} from {}: {out}{err}", cwd.display());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        strings(&v["done"])
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let proj_abs = proj.display().to_string();
    for (n, cwd, dir) in [
        (1, work.as_path(), "proj"),
        (2, Path::new("/"), proj_abs.as_str()),
        (3, proj.as_path(), "."),
    ] {
        release(n);
        let done = up(cwd, dir);
        assert!(
            done.iter()
                .any(|d| d.starts_with(&format!("built package tool (tool_0.{n}_amd64.deb"))),
            "{dir}: {done:#?}"
        );
        assert!(
            done.iter()
                .any(|d| d.starts_with("published repo tool (1 package(s) new)")),
            "{dir}: {done:#?}"
        );
    }
    let param = |name: &str| {
        admin
            .get_param("dev", &ParamName::parse(name).unwrap(), false)
            .map(|p| p.value)
    };
    assert_eq!(param("/paths/b").unwrap(), "b");

    let (ok, out, err) = run(&work, &["down", "proj"]);
    assert!(!ok, "{out}");
    assert!(
        out.starts_with(
            "spindle down paths will:\n  delete stack cfg-b in dev (CREATE_COMPLETE)\n  delete stack cfg-a in dev (CREATE_COMPLETE)\nand keep repo tool in dev with package tool; accounts dev (`--all` deletes all but the accounts).\n"
        ) && err.contains("refusing to delete without confirmation: stdin is not a terminal"),
        "{out}{err}"
    );
    assert_eq!(admin.list_stacks("dev").unwrap().len(), 2);

    let (ok, out, err) = run(&work, &["-o", "json", "down", "proj", "--yes"]);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        strings(&report["deleted"]),
        [
            "delete stack cfg-b in dev (CREATE_COMPLETE)",
            "delete stack cfg-a in dev (CREATE_COMPLETE)"
        ]
    );
    assert!(admin.list_stacks("dev").unwrap().is_empty());
    assert!(param("/paths/a").is_err(), "the stack's parameter is gone");
    let (ok, out, _) = run(&proj, &["down", ".", "--yes"]);
    assert!(ok);
    assert_eq!(
        out,
        "Nothing to take down: project paths has no stack left.\n"
    );

    // Back up: only the stacks are redone; the package is current.
    let done = up(&work, "proj");
    assert_eq!(
        done.iter()
            .map(|d| d.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        ["deployed stack cfg-a in dev", "deployed stack cfg-b in dev"],
        "{done:#?}"
    );
    assert_eq!(param("/paths/a").unwrap(), "a");

    let (ok, out, err) = run(&work, &["-o", "json", "down", "proj", "--yes", "--all"]);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        strings(&report["deleted"]),
        [
            "delete stack cfg-b in dev (CREATE_COMPLETE)",
            "delete stack cfg-a in dev (CREATE_COMPLETE)",
            "drop publication tool/stable in dev",
            "drop repo tool in dev",
            "delete signing key tool in dev",
            "delete parameter /spindle/up/paths/packages/tool in dev",
        ]
    );
    assert_eq!(strings(&report["kept"]), ["accounts dev"]);
    assert!(admin.list_repos("dev").unwrap().is_empty());
    let (ok, out, _) = run(&work, &["down", "proj", "--yes", "--all"]);
    assert!(ok && out.starts_with("Nothing to take down"), "{out}");
    // And `up` builds and publishes it all again.
    let done = up(&work, "proj");
    assert!(
        done.iter().any(|d| d.starts_with("built package tool")),
        "{done:#?}"
    );
}
