//! Auto scaling through the daemon, as root: a stack's group fills to its desired
//! capacity, `spindle asg set-desired` grows it, `spindle asg refresh` replaces every
//! instance, activities say why, and bad input is refused with the property named. Skips
//! (printing why) when not root or the tools are missing. Names start with `sasg`.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const TEMPLATE: &str = r#"
Parameters:
  Min: {Type: Number, Default: 1}
  Max: {Type: Number, Default: 3}
  Image: {Type: String, Default: "busybox:idle"}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.215.0.0/20}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.215.1.0/24}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.215.2.0/24}
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData: {ImageId: !Ref Image, InstanceType: t3.nano}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AutoScalingGroupName: web-asg
      MinSize: !Ref Min
      MaxSize: !Ref Max
      DesiredCapacity: 2
      LaunchTemplate:
        LaunchTemplateId: !Ref Template
        Version: !GetAtt Template.LatestVersionNumber
      VPCZoneIdentifier: [!Ref SubnetA, !Ref SubnetB]
"#;

fn in_service(d: &Daemon) -> BTreeSet<String> {
    let g = d.admin().describe_group("management", "web-asg").unwrap();
    g.instances
        .into_iter()
        .filter(|i| i.lifecycle_state == "InService")
        .map(|i| i.id)
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn deploy(d: &Daemon, params: &[(&str, &str)]) -> DeployResult {
    d.admin()
        .deploy_stack(
            "management",
            "asg",
            &common::deploy_request("asg.yaml", TEMPLATE, params),
        )
        .unwrap()
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_stack_group_fills_grows_refreshes_and_explains_itself() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("sasg{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    let tarball = d.root().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX))
        .unwrap();
    admin
        .import_image(
            "management",
            &ImportImage {
                path: tarball.display().to_string(),
                tag: Some("busybox:idle".into()),
                entrypoint: vec![],
                cmd: vec!["sleep".into(), "3600".into()],
            },
        )
        .unwrap();

    // Min > Max is refused before anything is made, naming the properties.
    let r = deploy(&d, &[("Min", "5"), ("Max", "2")]);
    assert_ne!(r.status.as_deref(), Some("CREATE_COMPLETE"));
    let events = d.cli(&["stack", "events", "asg"]);
    let text = common::stdout(&events);
    assert!(
        text.contains("MinSize 5 is greater than MaxSize 2"),
        "{text}"
    );
    admin.delete_stack("management", "asg").unwrap();
    // So is a launch template whose image is missing, naming the template property.
    let r = deploy(&d, &[("Image", "nosuch:1")]);
    assert_ne!(r.status.as_deref(), Some("CREATE_COMPLETE"));
    let text = common::stdout(&d.cli(&["stack", "events", "asg"]));
    assert!(
        text.contains("LaunchTemplate.LaunchTemplateId lt-") && text.contains("image nosuch:1"),
        "{text}"
    );
    admin.delete_stack("management", "asg").unwrap();

    let r = deploy(&d, &[]);
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    wait_for("2 instances in service", Duration::from_secs(15), || {
        in_service(&d).len() == 2
    });
    let g = admin.describe_group("management", "web-asg").unwrap();
    let subnets: BTreeSet<&str> = g.instances.iter().map(|i| i.subnet_id.as_str()).collect();
    assert_eq!(subnets.len(), 2, "spread over both subnets: {g:?}");
    // The group's instances are the stack's, in `spindle instance list`.
    assert_eq!(admin.list_instances("management").unwrap().len(), 2);

    let o = d.cli(&["asg", "set-desired", "web-asg", "3"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    wait_for("3 instances in service", Duration::from_secs(15), || {
        in_service(&d).len() == 3
    });
    let o = d.cli(&["asg", "set-desired", "web-asg", "9"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("desired capacity 9 is outside MinSize 1 .. MaxSize 3"),
        "{}",
        common::stderr(&o)
    );

    let before = in_service(&d);
    let o = d.cli(&[
        "asg",
        "refresh",
        "web-asg",
        "--min-healthy-percentage",
        "67",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let mut least = usize::MAX;
    wait_for("the refresh to finish", Duration::from_secs(30), || {
        let now = in_service(&d);
        least = least.min(now.len());
        now.len() == 3
            && now.is_disjoint(&before)
            && admin
                .describe_group("management", "web-asg")
                .unwrap()
                .refresh
                .is_none()
    });
    assert_eq!(
        least, 3,
        "in-service capacity never fell below desired during the refresh"
    );

    let o = d.cli(&["asg", "activities", "web-asg"]);
    let text = common::stdout(&o);
    for want in [
        "Launching a new instance",
        "a user set the desired capacity: desired 2 → 3",
        "an instance refresh replaced it",
        "Instance refresh: replaced 3 instances",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    // Lifecycle actions and unknown groups get clear refusals through the API.
    let some = in_service(&d).into_iter().next().unwrap();
    let o = d.cli(&[
        "asg",
        "complete-lifecycle-action",
        "web-asg",
        "--instance-id",
        &some,
        "--hook",
        "drain",
    ]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains(&format!(
            "instance {some} is not waiting on lifecycle hook drain (it is InService)"
        )),
        "{}",
        common::stderr(&o)
    );
    let o = d.cli(&["asg", "describe", "nosuch"]);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(
        err.contains("auto scaling group nosuch not found") && err.contains("spindle asg list"),
        "{err}"
    );

    let o = d.cli(&["asg", "list"]);
    assert!(
        common::stdout(&o).contains("web-asg"),
        "{}",
        common::stdout(&o)
    );

    let del = admin.delete_stack("management", "asg").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
    assert!(admin.list_groups("management").unwrap().is_empty());
    wait_for("the instances to go", Duration::from_secs(15), || {
        admin
            .list_instances("management")
            .unwrap()
            .iter()
            .all(|i| i.state == "terminated")
    });
}
