//! Instances through the daemon, as root: import a busybox image, deploy a template with a
//! VPC, subnet, security group and instance, see it through the API, delete it, and find
//! nothing left on the host. Skips (printing why) when not root or the tools are missing.

mod common;

use common::{client_for, Daemon, BIN};
use spindle_model::api::*;
use spindle_model::AccountName;
use std::path::Path;

use spindle_testsupport::templates::WEB_INSTANCE as TEMPLATE;

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_stack_boots_an_instance_from_an_imported_image_and_its_delete_leaves_nothing() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("sc{}", std::process::id() % 100_000_000);
    let _sweep = spindle_runtime::host::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();

    let tarball = d.root().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
        .unwrap();
    let cmd = ["httpd", "-f", "-p", "80", "-h", "/www"]
        .map(String::from)
        .to_vec();
    let image = admin
        .import_image(
            "management",
            &ImportImage {
                path: tarball.display().to_string(),
                tag: Some("busybox:web".into()),
                entrypoint: vec![],
                cmd,
            },
        )
        .unwrap();
    assert!(image.id.starts_with("ami-"), "{image:?}");
    assert_eq!(
        admin.list_images("management").unwrap(),
        vec![image.clone()]
    );

    // Another account doesn't see the image.
    admin
        .create_account(&CreateAccount {
            name: AccountName::parse("prod").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let prod = client_for(
        &d.endpoint,
        &admin.create_key("prod", &CreateKey::default()).unwrap(),
    );
    assert!(prod.list_images("prod").unwrap().is_empty());
    // ... can't inspect, tag or remove it, and can't take its tag.
    for r in [
        prod.describe_image("prod", &image.id).map(|_| ()),
        prod.tag_image("prod", &image.id, "mine:1").map(|_| ()),
        prod.remove_image("prod", "busybox:web").map(|_| ()),
    ] {
        assert!(
            matches!(r, Err(spindle_client::ClientError::Api { status: 404, .. })),
            "{r:?}"
        );
    }
    let taken = prod.import_image(
        "prod",
        &ImportImage {
            path: tarball.display().to_string(),
            tag: Some("busybox:web".into()),
            entrypoint: vec![],
            cmd: vec!["sh".into()],
        },
    );
    assert!(
        matches!(
            &taken,
            Err(spindle_client::ClientError::Api { status: 409, .. })
        ),
        "{taken:?}"
    );
    assert_eq!(
        admin
            .describe_image("management", "busybox:web")
            .unwrap()
            .info
            .id,
        image.id
    );

    let deploy = DeployStack {
        template: TemplateRequest {
            template_body: TEMPLATE.into(),
            template_name: Some("web.yaml".into()),
            parameters: Default::default(),
            ..TemplateRequest::default()
        },
        ..DeployStack::default()
    };
    let r = admin.deploy_stack("management", "web", &deploy).unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let detail = admin.describe_stack("management", "web").unwrap();
    let server = detail
        .resources
        .iter()
        .find(|r| r.logical_id == "Server")
        .unwrap();
    assert!(server.physical_id.starts_with("i-"), "{detail:?}");
    let ip = &detail
        .outputs
        .iter()
        .find(|o| o.name == "Ip")
        .unwrap()
        .value;
    assert!(ip.starts_with("10.214."), "{ip}");
    let netns = spindle_runtime::host::our_netns(&prefix);
    assert_eq!(
        netns.len(),
        2,
        "the VPC's and the instance's namespaces: {netns:?}"
    );

    // The instance, through the instance API: listed for its account only, and reachable.
    let list = admin.list_instances("management").unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (
            list[0].id.as_str(),
            list[0].state.as_str(),
            list[0].private_ip.as_str()
        ),
        (server.physical_id.as_str(), "running", ip.as_str())
    );
    assert!(prod.list_instances("prod").unwrap().is_empty());
    match prod.describe_instance("prod", &server.physical_id) {
        Err(spindle_client::ClientError::Api { status: 404, .. }) => {}
        other => panic!("another account's instance must look missing: {other:?}"),
    }
    // busybox wget from inside the instance to its own httpd: traffic stays in its namespace.
    let wget_inside = |url: &str| {
        d.cli(&[
            "instance",
            "exec",
            &server.physical_id,
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            url,
        ])
    };
    let o = wget_inside("http://127.0.0.1/");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = d.cli(&["instance", "exec", &server.physical_id, "--", "hostname"]);
    assert_eq!(common::stdout(&o).trim(), list[0].hostname);

    // Issue 22: the instance runs under the default seccomp profile, and the daemon's API is
    // not on its network map: its 127.0.0.1 is its own loopback (ECONNREFUSED), while the
    // same URL answers on the host.
    let o = d.cli(&["instance", "describe", &server.physical_id]);
    assert!(
        common::stdout(&o).contains("seccomp profile: default"),
        "{}",
        common::stdout(&o)
    );
    assert_eq!(
        admin
            .describe_instance("management", &server.physical_id)
            .unwrap()
            .seccomp,
        "default"
    );
    // ... and in a user namespace of its own: root inside is an unprivileged host id.
    let map = admin
        .describe_instance("management", &server.physical_id)
        .unwrap()
        .user_namespace
        .expect("the instance has a user namespace");
    assert!(map.starts_with("0 ") && map.ends_with(" 65536"), "{map}");
    assert!(
        common::stdout(&o).contains(&format!("user namespace: uid/gid map {map}")),
        "{}",
        common::stdout(&o)
    );
    let port = d.endpoint.rsplit(':').next().unwrap().trim_end_matches('/');
    let api = format!("http://127.0.0.1:{port}/healthz");
    let host = std::process::Command::new("/bin/busybox")
        .args(["wget", "-q", "-O", "-", &api])
        .output()
        .unwrap();
    assert!(host.status.success(), "the API answers on the host");
    let o = wget_inside(&api);
    let err = common::stderr(&o);
    eprintln!("daemon API from inside: {}", err.trim());
    assert!(
        !o.status.success() && err.contains("Connection refused"),
        "the daemon's API must not answer inside (ECONNREFUSED expected): {err}"
    );

    let del = admin.delete_stack("management", "web").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
    let netns = spindle_runtime::host::our_netns(&prefix);
    assert!(netns.is_empty(), "nothing of ours is left: {netns:?}");
    let report = admin.doctor(false).unwrap();
    assert!(report.leaks.is_empty(), "{report:?}");
    let o = d.cli(&["doctor"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
}
