//! `spindle template validate` and the change-set preview refuse a bad template before
//! anything is created (issue #15 part 1), with and without a daemon (issue #14 items 5, 6).

mod common;

use common::{stderr, stdout, Daemon, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The template of issue #15's "Why": three mistakes.
const ISSUE_15: &str = include_str!("../../template/tests/data/issue15.yaml");

/// Types every daemon provisions (no root needed): mistakes of every kind.
const NO_ROOT: &str = r#"Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: { Scheme: internal, Typ: application }
  L1:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: 80
      Protocol: HTTP
      DefaultActions: [{ Type: fixed-response, FixedResponseConfig: { StatusCode: "200" } }]
  L2:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: 80
      Protocol: HTTPS
      DefaultActions: [{ Type: fixed-respons }]
  P:
    Type: AWS::SSM::Parameter
    Properties: { Type: SecureString, Value: x, Bogus: 1 }
"#;

/// The CLI with no daemon to ask: no `--endpoint` and no credentials.
fn offline(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--credentials-file")
        .arg(dir.join("no-credentials"))
        .args(args)
        .env_remove("SPINDLE_ENDPOINT")
        .env_remove("SPINDLE_PROFILE")
        .env_remove("SPINDLE_ACCOUNT")
        .env_remove("SPINDLE_CREDENTIALS_FILE")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// `line:column path: category: message` of each diagnostic, without the file.
fn lines(report: &Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{} {}: {}: {}",
                d["line"],
                d["column"],
                d["path"].as_str().unwrap(),
                d["category"].as_str().unwrap(),
                d["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_template_of_issue_15_fails_with_three_positioned_diagnostics_offline() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, ISSUE_15).unwrap();
    let o = offline(dir.path(), &["template", "validate", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    let file = f.display().to_string();
    assert_eq!(
        got,
        [
            format!("{file}:4:19: Resources.Vpc.Properties.CidrBlok: property: unknown property `CidrBlok` for AWS::EC2::VPC; did you mean `CidrBlock`?"),
            format!("{file}:8:13: Resources.Tg.Properties.Port: property: Port must be an integer, not the string \"eighty\""),
            format!("{file}:12:18: Resources.Tg.Properties.TargetGroupAttributes.0.Key: provider-rule: unknown Spindle target group attribute `spindle.tenant.headr`; did you mean `spindle.tenant.header`?"),
        ]
    );
    assert!(stderr(&o).contains("3 problem(s)"), "{}", stderr(&o));
}

#[test]
fn with_and_without_a_daemon_the_diagnostics_are_the_same() {
    let d = Daemon::start(BIN);
    for (name, body) in [("no-root.yaml", NO_ROOT), ("issue15.yaml", ISSUE_15)] {
        let f = d.root().join(name);
        std::fs::write(&f, body).unwrap();
        let f = f.to_str().unwrap();
        let with = d.cli(&["-o", "json", "template", "validate", f]);
        let without = offline(d.root(), &["-o", "json", "template", "validate", f]);
        assert!(!with.status.success() && !without.status.success());
        let (with, without) = (json(&with), json(&without));
        assert_eq!(with["valid"], false);
        assert_eq!(without["valid"], false);
        let mut daemon = lines(&with);
        // A daemon without root doesn't provision EC2 types; it says so, and the rest is
        // the same as the offline report (which has this build's types).
        let unsupported: Vec<String> = daemon
            .iter()
            .filter(|l| l.contains("unsupported-resource-type"))
            .cloned()
            .collect();
        daemon.retain(|l| !l.contains("unsupported-resource-type"));
        assert_eq!(daemon, lines(&without), "{name}");
        if name == "no-root.yaml" {
            assert!(unsupported.is_empty(), "{unsupported:?}");
            assert_eq!(with, without, "the whole report is the same");
            let got = lines(&without);
            assert_eq!(got.len(), 5, "{got:#?}");
            for want in [
                "unknown property `Typ`",
                "Type must be one of",
                "port 80 is already used by listener L1",
                "not `SecureString`",
                "unknown property `Bogus`",
            ] {
                assert!(got.iter().any(|l| l.contains(want)), "{want}: {got:#?}");
            }
        } else {
            // The test daemon runs without the instance runtime (`--no-runtime`), so the
            // VPC is the one type it can't provision; the offline report has every type.
            assert_eq!(unsupported.len(), 1, "{unsupported:?}");
            assert!(unsupported[0].contains("AWS::EC2::VPC"), "{unsupported:?}");
        }
    }
}

#[test]
fn stack_deploy_refuses_the_template_before_creating_anything() {
    let d = Daemon::start(BIN);
    let f = d.root().join("bad.yaml");
    std::fs::write(&f, ISSUE_15).unwrap();
    let o = d.cli(&["stack", "deploy", "issue15", f.to_str().unwrap(), "--yes"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for want in [
        ":4:19: Resources.Vpc.Properties.CidrBlok",
        ":8:13: Resources.Tg.Properties.Port",
        ":12:18: Resources.Tg.Properties.TargetGroupAttributes.0.Key",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // Nothing was created: no stack, no events, no load balancer.
    let admin = d.admin();
    assert!(admin.list_stacks("management").unwrap().is_empty());
    let o = d.cli(&["-o", "json", "stack", "list"]);
    assert_eq!(json(&o), serde_json::json!([]));
    let o = d.cli(&[
        "stack",
        "changeset",
        "create",
        "cs1",
        "issue15",
        f.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("CidrBlok"), "{}", stderr(&o));
    assert!(admin.list_stacks("management").unwrap().is_empty());
}

#[test]
fn json_output_is_json_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let cases = [
        (
            "placeholder.yaml",
            "Resources:\n  Net:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: <TEMPLATE_URL>\n",
            "5:20 Resources.Net.Properties.TemplateURL: nested-template:",
        ),
        (
            "s3.yaml",
            "Resources:\n  Net:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: s3://bucket/net.yaml\n",
            "5:20 Resources.Net.Properties.TemplateURL: provider-rule: TemplateURL `s3://bucket/net.yaml` is remote",
        ),
        (
            "syntax.yaml",
            "Resources:\n  A: [\n",
            "syntax",
        ),
    ];
    for (name, body, want) in cases {
        let f = p.join(name);
        std::fs::write(&f, body).unwrap();
        let o = offline(
            p,
            &["-o", "json", "template", "validate", f.to_str().unwrap()],
        );
        assert!(!o.status.success(), "{name}");
        let r = json(&o);
        assert_eq!(r["valid"], false, "{name}");
        let got = lines(&r);
        assert!(got.iter().any(|l| l.contains(want)), "{name}: {got:#?}");
    }
    // A file that isn't there: still a JSON report.
    let o = offline(
        p,
        &["-o", "json", "template", "validate", "/nonexistent/t.yaml"],
    );
    assert!(!o.status.success());
    let r = json(&o);
    assert_eq!(r["valid"], false);
    assert!(lines(&r)[0].contains("cannot read"), "{r}");
}

#[test]
fn every_example_template_the_project_ships_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for e in std::fs::read_dir(root.join("examples/twine/stacks")).unwrap() {
        let f = e.unwrap().path();
        if !matches!(
            f.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            continue;
        }
        let o = offline(
            dir.path(),
            &["-o", "json", "template", "validate", f.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}: {}", f.display(), stdout(&o));
        assert_eq!(json(&o)["valid"], true);
        checked += 1;
    }
    assert!(checked > 0, "no example templates found");
}

#[test]
fn up_refuses_a_project_with_a_bad_template_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("spindle.toml"),
        "[project]\nname = \"bad\"\n\n[accounts.dev]\ndescription = \"x\"\n\n[[stacks]]\nname = \"bad\"\naccount = \"dev\"\ntemplate = \"bad.yaml\"\n",
    )
    .unwrap();
    std::fs::write(proj.join("bad.yaml"), ISSUE_15).unwrap();
    let data = dir.path().join("data");
    let port = common::free_port().to_string();
    let o = offline(
        dir.path(),
        &[
            "up",
            proj.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("3 problem(s)"), "{err}");
    for want in ["bad.yaml:4:19:", "bad.yaml:8:13:", "bad.yaml:12:18:"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // No daemon was started: it would have made its data dir.
    assert!(!data.exists(), "a daemon was started");
}
