//! `spindle bake build` end to end, as root: bake a busybox web server from a recipe, import it
//! into the daemon, publish its id to `/spindle/images/NAME/latest`, deploy a template that reads
//! the image id through an SSM parameter type, and fetch the baked page from the instance.
//! Re-baking after a change to the last step reuses every earlier layer.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::*;
use spindle_model::ParamName;
use std::fs;

const RECIPE: &str = r#"
variable "page" {
  default = "one"
}
source "spindle" "web" {
  base = "scratch"
  cmd  = ["httpd", "-f", "-p", "80", "-h", "/www"]
}
build {
  sources = ["source.spindle.web"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = ["/bin/busybox --install -s /bin"]
  }
  provisioner "shell" {
    inline = ["mkdir -p /www", "echo baked-${var.page} > /www/index.html"]
  }
  post-processor "manifest" {
    output = "manifest.json"
  }
}
"#;

const TEMPLATE: &str = r#"
Parameters:
  Ami:
    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>
    Default: /spindle/images/web/latest
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.215.0.0/20}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.215.1.0/24}
  Server:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: !Ref Ami
      InstanceType: t3.micro
      SubnetId: !Ref Subnet
"#;

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn bake_imports_publishes_and_a_stack_boots_the_image() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("bk{}", std::process::id() % 100_000_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    let proj = tempfile::tempdir().unwrap();
    common::busybox_project(proj.path(), "web.pkr.hcl", RECIPE);
    let recipe = proj.path().join("web.pkr.hcl");
    let cache = d.root().join("bake");
    let bake = |extra: &[&str]| {
        let mut args = vec![
            "--output",
            "json",
            "bake",
            "build",
            "-cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(recipe.to_str().unwrap());
        let o = d.cli(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
        v[0].clone()
    };

    let first = bake(&[]);
    let id = first["image"].as_str().unwrap().to_string();
    assert_eq!(
        first["imported"],
        id.as_str(),
        "the daemon's id is the bake's id"
    );
    let images = admin.list_images("management").unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.id == id && i.tags == ["web:latest"]),
        "{images:?}"
    );
    let p = admin
        .get_param(
            "management",
            &ParamName::parse("/spindle/images/web/latest").unwrap(),
            false,
        )
        .unwrap();
    assert_eq!(p.value, id);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(proj.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["builds"][0]["artifact_id"], id.as_str());

    // The stack reads the image id from the parameter and boots it.
    let deploy = DeployStack {
        template: TemplateRequest {
            template_body: TEMPLATE.into(),
            template_name: Some("web.yaml".into()),
            parameters: Default::default(),
            nested_templates: Default::default(),
            use_previous_values: Default::default(),
        },
        ..DeployStack::default()
    };
    let r = admin.deploy_stack("management", "web", &deploy).unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let list = admin.list_instances("management").unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let mut page = String::new();
    for _ in 0..50 {
        let o = d.cli(&[
            "instance",
            "exec",
            &list[0].id,
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1/",
        ]);
        page = common::stdout(&o);
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(page, "baked-one\n");

    // Change only the last step: the earlier layers are reused, digest for digest.
    let second = bake(&["-var", "page=two"]);
    let cached: Vec<bool> = second["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cached"].as_bool().unwrap())
        .collect();
    assert_eq!(cached, [true, true, false]);
    let digests = |v: &serde_json::Value| -> Vec<String> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["diff_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(digests(&first)[..2], digests(&second)[..2]);
    assert_ne!(digests(&first)[2], digests(&second)[2]);
    let p = admin
        .get_param(
            "management",
            &ParamName::parse("/spindle/images/web/latest").unwrap(),
            false,
        )
        .unwrap();
    assert_eq!(p.value, second["image"].as_str().unwrap());

    let del = admin.delete_stack("management", "web").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
}
