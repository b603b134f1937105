//! CloudFormation's GetTemplate and drift operations through the real `aws` CLI (v1) and
//! boto3 from the venv `SPINDLE_AWS_VENV` names; without it the tests say they skipped.

mod common;

use common::aws::*;
use common::{Daemon, BIN};

/// YAML with a comment, flow mappings and a blank line: a re-rendering would lose them.
const V1: &str = "# the flag, first version
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Env: {Type: String, Default: dev}

Resources:
  Flag:
    Type: AWS::SSM::Parameter
    Properties:   {Name: !Sub '/${Env}/flag', Type: String, Value: 'on'}
  Other:
    Type: AWS::SSM::Parameter
    Properties: {Name: !Sub '/${Env}/other', Type: String, Value: 'same'}
";

/// The second version, in JSON, kept by a change set.
const V2: &str = "{\"AWSTemplateFormatVersion\": \"2010-09-09\",
 \"Parameters\": {\"Env\": {\"Type\": \"String\", \"Default\": \"dev\"}},
 \"Resources\": {
  \"Flag\":  {\"Type\": \"AWS::SSM::Parameter\", \"Properties\": {\"Name\": {\"Fn::Sub\": \"/${Env}/flag\"}, \"Type\": \"String\", \"Value\": \"off\"}},
  \"Other\": {\"Type\": \"AWS::SSM::Parameter\", \"Properties\": {\"Name\": {\"Fn::Sub\": \"/${Env}/other\"}, \"Type\": \"String\", \"Value\": \"same\"}}}}
";

/// A daemon, a `dev` home, and `V1` deployed as `stack` by `aws cloudformation deploy`;
/// `None` (after saying so) without the venv.
fn deployed(stack: &str, param: &str) -> Option<(Daemon, AwsHome)> {
    let venv = venv_or_skip(module_path!())?;
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let file = home.dir.path().join("flag.yaml");
    std::fs::write(&file, V1).unwrap();
    let (done, out) = home.aws_text(&[
        "cloudformation",
        "deploy",
        "--stack-name",
        stack,
        "--template-file",
        file.to_str().unwrap(),
        "--parameter-overrides",
        param,
    ]);
    assert!(done, "{out}");
    Some((d, home))
}

#[test]
fn get_template_answers_the_text_exactly_as_it_was_deployed_and_each_change_sets_own() {
    let Some((d, home)) = deployed("flag", "Env=dev") else {
        return;
    };

    for stage in ["Original", "Processed"] {
        let t = home
            .aws(&[
                "cloudformation",
                "get-template",
                "--stack-name",
                "flag",
                "--template-stage",
                stage,
            ])
            .unwrap();
        assert_eq!(t["TemplateBody"].as_str(), Some(V1), "{stage}: {t}");
        assert_eq!(
            t["StagesAvailable"],
            serde_json::json!(["Original", "Processed"])
        );
    }
    let printed = ok(&home.spindle(&d, &["--account", "dev", "stack", "template", "flag"]));
    assert_eq!(printed, V1);

    // A change set keeps its own template; the stack's stays the deployed one.
    let (done, out) = home.aws_text(&[
        "cloudformation",
        "create-change-set",
        "--stack-name",
        "flag",
        "--change-set-name",
        "to-json",
        "--template-body",
        V2,
    ]);
    assert!(done, "{out}");
    let t = home
        .aws(&[
            "cloudformation",
            "get-template",
            "--stack-name",
            "flag",
            "--change-set-name",
            "to-json",
        ])
        .unwrap();
    // botocore decodes a JSON template body into a document; the text itself is checked
    // through `spindle stack template` below.
    let sent: serde_json::Value = serde_json::from_str(V2).unwrap();
    assert_eq!(t["TemplateBody"], sent, "{t}");
    let printed = ok(&home.spindle(
        &d,
        &[
            "--account",
            "dev",
            "stack",
            "template",
            "flag",
            "--change-set",
            "to-json",
        ],
    ));
    assert_eq!(printed, V2);
    let t = home
        .aws(&["cloudformation", "get-template", "--stack-name", "flag"])
        .unwrap();
    assert_eq!(t["TemplateBody"].as_str(), Some(V1));

    // Executed, the change set's text becomes the stack's.
    let (done, out) = home.aws_text(&[
        "cloudformation",
        "execute-change-set",
        "--stack-name",
        "flag",
        "--change-set-name",
        "to-json",
    ]);
    assert!(done, "{out}");
    let printed = ok(&home.spindle(&d, &["--account", "dev", "stack", "template", "flag"]));
    assert_eq!(printed, V2);

    home.refused(
        &[
            "cloudformation",
            "get-template",
            "--stack-name",
            "flag",
            "--change-set-name",
            "nope",
        ],
        &["ChangeSetNotFound", "nope"],
    );
    home.refused(
        &["cloudformation", "get-template", "--stack-name", "absent"],
        &["ValidationError", "absent does not exist"],
    );
    home.refused(
        &[
            "cloudformation",
            "get-template",
            "--stack-name",
            "flag",
            "--template-stage",
            "Compiled",
        ],
        &["TemplateStage"],
    );
}

#[test]
fn drift_detection_through_the_aws_cli_sees_a_parameter_changed_and_one_deleted_behind_the_stack() {
    let Some((d, home)) = deployed("drifty", "Env=drifty") else {
        return;
    };

    let detect = |home: &AwsHome| -> serde_json::Value {
        let id = home
            .aws(&[
                "cloudformation",
                "detect-stack-drift",
                "--stack-name",
                "drifty",
            ])
            .unwrap()["StackDriftDetectionId"]
            .as_str()
            .unwrap()
            .to_owned();
        home.aws(&[
            "cloudformation",
            "describe-stack-drift-detection-status",
            "--stack-drift-detection-id",
            &id,
        ])
        .unwrap()
    };
    let s = detect(&home);
    assert_eq!(s["DetectionStatus"], "DETECTION_COMPLETE", "{s}");
    assert_eq!(s["StackDriftStatus"], "IN_SYNC", "{s}");
    assert_eq!(s["DriftedStackResourceCount"], 0, "{s}");

    // Out of band: one value changed, the other parameter deleted.
    home.aws(&[
        "ssm",
        "put-parameter",
        "--name",
        "/drifty/flag",
        "--value",
        "changed",
        "--type",
        "String",
        "--overwrite",
    ])
    .unwrap();
    home.aws(&["ssm", "delete-parameter", "--name", "/drifty/other"])
        .unwrap();
    let s = detect(&home);
    assert_eq!(s["StackDriftStatus"], "DRIFTED", "{s}");
    assert_eq!(s["DriftedStackResourceCount"], 2, "{s}");

    let r = home
        .aws(&[
            "cloudformation",
            "describe-stack-resource-drifts",
            "--stack-name",
            "drifty",
        ])
        .unwrap();
    let drifts = r["StackResourceDrifts"].as_array().unwrap();
    let of = |l: &str| {
        drifts
            .iter()
            .find(|x| x["LogicalResourceId"] == l)
            .unwrap_or_else(|| panic!("{l} not in {r}"))
    };
    assert_eq!(of("Flag")["StackResourceDriftStatus"], "MODIFIED", "{r}");
    assert_eq!(of("Flag")["PhysicalResourceId"], "/drifty/flag", "{r}");
    let diffs = of("Flag")["PropertyDifferences"].as_array().unwrap();
    let value = diffs
        .iter()
        .find(|p| p["PropertyPath"] == "/Value")
        .unwrap_or_else(|| panic!("no /Value difference in {r}"));
    assert_eq!(value["DifferenceType"], "NOT_EQUAL", "{r}");
    assert!(
        value["ExpectedValue"].as_str().unwrap().contains("on"),
        "{r}"
    );
    assert!(
        value["ActualValue"].as_str().unwrap().contains("changed"),
        "{r}"
    );
    assert_eq!(of("Other")["StackResourceDriftStatus"], "DELETED", "{r}");

    // The status filter, and one resource's detection on its own.
    let r = home
        .aws(&[
            "cloudformation",
            "describe-stack-resource-drifts",
            "--stack-name",
            "drifty",
            "--stack-resource-drift-status-filters",
            "DELETED",
        ])
        .unwrap();
    let only: Vec<&str> = r["StackResourceDrifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["LogicalResourceId"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["Other"], "{r}");
    let one = home
        .aws(&[
            "cloudformation",
            "detect-stack-resource-drift",
            "--stack-name",
            "drifty",
            "--logical-resource-id",
            "Flag",
        ])
        .unwrap();
    assert_eq!(
        one["StackResourceDrift"]["StackResourceDriftStatus"], "MODIFIED",
        "{one}"
    );

    // The same detection as `spindle stack drift` makes.
    let o = ok(&home.spindle(
        &d,
        &["--account", "dev", "-o", "json", "stack", "drift", "drifty"],
    ));
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let flag = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["logical_id"] == "Flag")
        .unwrap();
    assert_eq!(flag["status"], "MODIFIED", "{v}");

    home.refused(
        &[
            "cloudformation",
            "describe-stack-drift-detection-status",
            "--stack-drift-detection-id",
            "00000000-0000-0000-0000-000000000000",
        ],
        &["ValidationError", "00000000-0000-0000-0000-000000000000"],
    );
    home.refused(
        &[
            "cloudformation",
            "detect-stack-drift",
            "--stack-name",
            "absent",
        ],
        &["absent does not exist"],
    );
}
