//! The AWS-compatible endpoint (issue #21) driven by the real `aws` CLI (v1) and boto3 from
//! PyPI, in the venv `scripts/lib.sh` (`aws_tools`) makes and names in `SPINDLE_AWS_VENV`.
//! Without it the tests say they skipped.
//!
//! The key is made and saved the way a user would: `spindle account keys create --aws
//! --save-aws-profile dev`, into `~/.aws` files of the test's own (through
//! `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`).

mod common;

use common::aws::*;
use common::{Daemon, BIN};
use spindle_model::api::*;
use spindle_model::AccountName;

const TEMPLATE: &str = "AWSTemplateFormatVersion: '2010-09-09'
Description: a parameter and its name
Parameters:
  Env:
    Type: String
    Default: dev
    Description: which environment
Resources:
  Flag:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /${Env}/flag
      Type: String
      Value: 'on'
";

#[test]
fn the_aws_cli_and_boto3_work_against_spindle_and_refusals_are_shaped_and_audited() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let aws_endpoint = d
        .aws_endpoint()
        .expect("server.json names the AWS endpoint");
    let admin = d.admin();
    let mut ids = std::collections::BTreeMap::new();
    for name in ["dev", "prod"] {
        let a = admin
            .create_account(&CreateAccount {
                name: AccountName::parse(name).unwrap(),
                description: String::new(),
            })
            .unwrap();
        ids.insert(name, a.id.to_string());
    }
    let home = AwsHome {
        dir: tempfile::tempdir().unwrap(),
        venv,
    };

    // The key as a user makes it: saved as an aws profile with Spindle's endpoint_url.
    ok(&home.spindle(
        &d,
        &[
            "--account",
            "dev",
            "account",
            "keys",
            "create",
            "--save-aws-profile",
            "dev",
        ],
    ));
    let config = std::fs::read_to_string(home.dir.path().join(".aws/config")).unwrap();
    assert!(
        config.contains(&format!(
            "[profile dev]\nregion = us-east-1\nendpoint_url = {aws_endpoint}\n"
        )),
        "{config}"
    );

    let who = home.aws(&["sts", "get-caller-identity"]).unwrap();
    assert_eq!(who["Account"], ids["dev"], "{who}");
    assert!(who["UserId"].as_str().unwrap().starts_with("AKIA"), "{who}");

    // SSM through the CLI lands in Spindle's parameter store, and back.
    let put = home
        .aws(&[
            "ssm",
            "put-parameter",
            "--name",
            "/app/db",
            "--value",
            "v1",
            "--type",
            "String",
        ])
        .unwrap();
    assert_eq!(put["Version"], 1, "{put}");
    let (code, err) = home
        .aws(&["ssm", "put-parameter", "--name", "/app/db", "--value", "v2"])
        .unwrap_err();
    assert!(err.contains("ParameterAlreadyExists"), "{code}: {err}");
    home.aws(&[
        "ssm",
        "put-parameter",
        "--name",
        "/app/db",
        "--value",
        "v2",
        "--overwrite",
    ])
    .unwrap();
    let got = home
        .aws(&["ssm", "get-parameter", "--name", "/app/db"])
        .unwrap();
    assert_eq!(got["Parameter"]["Value"], "v2", "{got}");
    assert_eq!(got["Parameter"]["Version"], 2, "{got}");
    let spindle_view = ok(&home.spindle(&d, &["--account", "dev", "param", "get", "/app/db"]));
    assert!(spindle_view.contains("v2"), "{spindle_view}");
    for (i, name) in ["/app/x/a", "/app/x/b", "/app/x/deep/c"].iter().enumerate() {
        home.aws(&[
            "ssm",
            "put-parameter",
            "--name",
            name,
            "--value",
            &i.to_string(),
        ])
        .unwrap();
    }
    let by_path = home
        .aws(&[
            "ssm",
            "get-parameters-by-path",
            "--path",
            "/app/x",
            "--page-size",
            "1",
        ])
        .unwrap();
    let names: Vec<&str> = by_path["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    // The CLI followed NextToken page by page; not recursive, so `deep/c` is not there.
    assert_eq!(names, ["/app/x/a", "/app/x/b"], "{by_path}");
    let many = home
        .aws(&["ssm", "get-parameters", "--names", "/app/db", "/nope"])
        .unwrap();
    assert_eq!(
        many["InvalidParameters"],
        serde_json::json!(["/nope"]),
        "{many}"
    );
    home.aws(&["ssm", "delete-parameter", "--name", "/app/x/a"])
        .unwrap();
    home.refused(
        &["ssm", "get-parameter", "--name", "/app/x/a"],
        &["ParameterNotFound"],
    );

    // CloudFormation: validate-template reads the template as `spindle template validate`.
    let t = home.dir.path().join("t.yaml");
    std::fs::write(&t, TEMPLATE).unwrap();
    let body = format!("file://{}", t.display());
    let v = home
        .aws(&[
            "cloudformation",
            "validate-template",
            "--template-body",
            &body,
        ])
        .unwrap();
    assert_eq!(v["Description"], "a parameter and its name", "{v}");
    assert_eq!(v["Parameters"][0]["ParameterKey"], "Env", "{v}");
    assert_eq!(v["Parameters"][0]["DefaultValue"], "dev", "{v}");
    let bad = home.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "Resources:\n  X:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Nme: x\n",
    )
    .unwrap();
    home.refused(
        &[
            "cloudformation",
            "validate-template",
            "--template-body",
            &format!("file://{}", bad.display()),
        ],
        &["ValidationError", "Nme"],
    );
    let stacks = home.aws(&["cloudformation", "describe-stacks"]).unwrap();
    assert_eq!(stacks["Stacks"], serde_json::json!([]), "{stacks}");
    home.refused(
        &["cloudformation", "describe-stacks", "--stack-name", "nope"],
        &["ValidationError", "Stack with id nope does not exist"],
    );
    // A stack deployed with spindle shows through the aws CLI.
    ok(&home.spindle(
        &d,
        &[
            "--account",
            "dev",
            "stack",
            "deploy",
            "flags",
            t.to_str().unwrap(),
            "--yes",
        ],
    ));
    let stacks = home
        .aws(&["cloudformation", "describe-stacks", "--stack-name", "flags"])
        .unwrap();
    assert_eq!(stacks["Stacks"][0]["StackName"], "flags", "{stacks}");
    assert_eq!(
        stacks["Stacks"][0]["StackStatus"], "CREATE_COMPLETE",
        "{stacks}"
    );
    let listed = home
        .aws(&[
            "cloudformation",
            "list-stacks",
            "--stack-status-filter",
            "CREATE_COMPLETE",
        ])
        .unwrap();
    assert_eq!(
        listed["StackSummaries"][0]["StackName"], "flags",
        "{listed}"
    );

    // `aws cloudformation deploy`: a change set, then its execution; create, update, no-op.
    let deploy = |env: &str, extra: &[&str]| {
        let started = std::time::Instant::now();
        let mut args = vec![
            "cloudformation",
            "deploy",
            "--stack-name",
            "cli",
            "--template-file",
            t.to_str().unwrap(),
            "--parameter-overrides",
        ];
        let env_arg = format!("Env={env}");
        args.push(&env_arg);
        args.extend_from_slice(extra);
        let r = home.aws_text(&args);
        eprintln!(
            "aws cloudformation deploy Env={env}: {:?}",
            started.elapsed()
        );
        r
    };
    let (done, out) = deploy("cli", &[]);
    assert!(done, "{out}");
    let flag = |name: &str| home.aws(&["ssm", "get-parameter", "--name", name]);
    assert_eq!(flag("/cli/flag").unwrap()["Parameter"]["Value"], "on");
    let events = home
        .aws(&[
            "cloudformation",
            "describe-stack-events",
            "--stack-name",
            "cli",
        ])
        .unwrap();
    let first = &events["StackEvents"][0];
    assert_eq!(
        (&first["LogicalResourceId"], &first["ResourceStatus"]),
        (
            &serde_json::json!("cli"),
            &serde_json::json!("CREATE_COMPLETE")
        ),
        "newest first: {events}"
    );
    for (cmd, member) in [
        ("list-stack-resources", "StackResourceSummaries"),
        ("describe-stack-resources", "StackResources"),
    ] {
        let r = home
            .aws(&["cloudformation", cmd, "--stack-name", "cli"])
            .unwrap();
        let flag = &r[member][0];
        assert_eq!(flag["LogicalResourceId"], "Flag", "{r}");
        assert_eq!(flag["PhysicalResourceId"], "/cli/flag", "{r}");
        assert_eq!(flag["ResourceType"], "AWS::SSM::Parameter", "{r}");
    }
    let (done, out) = deploy("cli2", &[]);
    assert!(done, "{out}");
    let s = home
        .aws(&["cloudformation", "describe-stacks", "--stack-name", "cli"])
        .unwrap();
    assert_eq!(s["Stacks"][0]["StackStatus"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(flag("/cli2/flag").unwrap()["Parameter"]["Value"], "on");
    assert!(
        flag("/cli/flag").is_err(),
        "the update replaced the parameter"
    );
    let (done, out) = deploy("cli2", &["--no-fail-on-empty-changeset"]);
    assert!(done && out.contains("No changes to deploy"), "{out}");
    let changes = home
        .aws(&["cloudformation", "list-change-sets", "--stack-name", "cli"])
        .unwrap();
    assert_eq!(
        changes["Summaries"].as_array().map(Vec::len),
        Some(1),
        "{changes}"
    );
    home.aws(&["cloudformation", "delete-stack", "--stack-name", "cli"])
        .unwrap();
    home.refused(
        &["cloudformation", "describe-stacks", "--stack-name", "cli"],
        &["does not exist"],
    );
    assert!(
        flag("/cli2/flag").is_err(),
        "deleting the stack removed its parameter"
    );

    // Refusals, through boto3: each in its protocol's shape, each audited.
    let (dev_id, dev_secret) = aws_key(&home, &d, "dev", &[]);
    let (prod_id, prod_secret) = aws_key(&home, &d, "prod", &[]);
    let (ro_id, ro_secret) = aws_key(&home, &d, "dev", &["--allow", "param:Get"]);
    let results = home.boto3(
        BOTO3_REFUSALS,
        &[
            ("EP", &aws_endpoint),
            ("DEV_ID", &dev_id),
            ("DEV_SECRET", &dev_secret),
            ("PROD_ID", &prod_id),
            ("PROD_SECRET", &prod_secret),
            ("RO_ID", &ro_id),
            ("RO_SECRET", &ro_secret),
        ],
    );
    // (case, error code, HTTP status, audit result, audit error code)
    let want: &[(&str, &str, u64, &str)] = &[
        ("wrong_secret_query", "SignatureDoesNotMatch", 403, "denied"),
        (
            "wrong_secret_json",
            "InvalidSignatureException",
            400,
            "denied",
        ),
        ("expired_query", "RequestExpired", 400, "denied"),
        ("expired_json", "InvalidSignatureException", 400, "denied"),
        ("unknown_key", "InvalidClientTokenId", 403, "denied"),
        ("other_account", "ParameterNotFound", 400, "error"),
        ("denied_action", "AccessDeniedException", 400, "denied"),
        (
            "not_implemented_json",
            "UnknownOperationException",
            400,
            "error",
        ),
        ("not_implemented_query", "InvalidAction", 400, "error"),
    ];
    let audit = admin.audit(None, None, None, Some(1000)).unwrap();
    for (case, code, status, result) in want {
        let r = &results[*case];
        assert_eq!(r["code"], *code, "{case}: {r}");
        assert_eq!(r["status"], *status, "{case}: {r}");
        let rid = r["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: no request id: {r}"));
        let rec = audit
            .iter()
            .find(|e| e.request_id == rid)
            .unwrap_or_else(|| panic!("{case}: no audit record for {rid}"));
        assert_eq!(rec.result, *result, "{case}: {rec:?}");
        assert_eq!(rec.error_code.as_deref(), Some(*code), "{case}: {rec:?}");
    }
    let presigned = results["presigned"]["body"].as_str().unwrap();
    assert!(
        presigned.contains(&format!("<Account>{}</Account>", ids["dev"])),
        "{presigned}"
    );
    let tampered = &results["presigned_tampered"];
    assert_eq!(tampered["status"], 403, "{tampered}");
    assert!(
        tampered["body"]
            .as_str()
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>"),
        "{tampered}"
    );
    assert!(results["not_implemented_json"]["message"]
        .as_str()
        .unwrap()
        .contains("ssm:DescribeParameters is not implemented by Spindle"));
    // The other account's key acted in its own account: the dev parameter stayed dev's.
    let rec = audit
        .iter()
        .find(|e| e.request_id == results["other_account"]["request_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        rec.account_id.as_ref().map(|a| a.to_string()),
        Some(ids["prod"].clone())
    );
    // A mutating call through the endpoint is audited as the Spindle action it maps to.
    assert!(
        audit.iter().any(|e| e.action == "param:Put"
            && e.result == "ok"
            && e.target.contains("aws:ssm:PutParameter /app/db")),
        "no param:Put record for the aws CLI's put-parameter"
    );
}

/// Each refusal as boto3 sees it: `{case: {code, status, request_id, message}}`.
const BOTO3_REFUSALS: &str = r#"
import datetime, json, os
from unittest import mock
import boto3, botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

ep = os.environ["EP"]
cfg = Config(retries={"max_attempts": 1})
def client(svc, kid, secret):
    return boto3.client(svc, endpoint_url=ep, region_name="us-east-1",
                        aws_access_key_id=kid, aws_secret_access_key=secret, config=cfg)
def outcome(fn):
    try:
        fn()
        return {"code": None}
    except ClientError as e:
        r = e.response
        return {"code": r["Error"]["Code"], "message": r["Error"].get("Message", ""),
                "status": r["ResponseMetadata"]["HTTPStatusCode"],
                "request_id": r["ResponseMetadata"].get("RequestId")}

def expired(fn):
    # botocore reads the clock through botocore.auth.datetime; an hour back is well past
    # the 15 minutes allowed.
    real = datetime.datetime
    class Past(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() - datetime.timedelta(hours=1)
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - datetime.timedelta(hours=1)
    with mock.patch.object(botocore.auth.datetime, "datetime", Past):
        return outcome(fn)

dev, prod, ro = (os.environ["DEV_ID"], os.environ["DEV_SECRET"]), (os.environ["PROD_ID"], os.environ["PROD_SECRET"]), (os.environ["RO_ID"], os.environ["RO_SECRET"])
bad = (dev[0], dev[1][:-1] + ("A" if dev[1][-1] != "A" else "B"))
out = {
    "wrong_secret_query": outcome(lambda: client("sts", *bad).get_caller_identity()),
    "wrong_secret_json": outcome(lambda: client("ssm", *bad).get_parameter(Name="/app/db")),
    "expired_query": expired(lambda: client("cloudformation", *dev).describe_stacks()),
    "expired_json": expired(lambda: client("ssm", *dev).get_parameter(Name="/app/db")),
    "unknown_key": outcome(lambda: client("sts", "AKIAAAAAAAAAAAAAAAAA", "x" * 40).get_caller_identity()),
    "other_account": outcome(lambda: client("ssm", *prod).get_parameter(Name="/app/db")),
    "denied_action": outcome(lambda: client("ssm", *ro).put_parameter(Name="/app/ro", Value="x", Type="String")),
    "not_implemented_json": outcome(lambda: client("ssm", *dev).describe_parameters()),
    "not_implemented_query": outcome(lambda: client("cloudformation", *dev).list_stack_sets()),
}
# A presigned URL (the query-string form of SigV4). botocore signs a query API's URL with
# the operation's method, POST, over an empty body.
import urllib.request, urllib.error
url = client("sts", *dev).generate_presigned_url("get_caller_identity", ExpiresIn=60)
post = lambda u: urllib.request.urlopen(urllib.request.Request(u, data=b"", method="POST"))
try:
    out["presigned"] = {"body": post(url).read().decode()}
except urllib.error.HTTPError as e:
    out["presigned"] = {"body": f"HTTP {e.code}: {e.read().decode()}"}
try:
    post(url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
    out["presigned_tampered"] = {"code": None}
except urllib.error.HTTPError as e:
    out["presigned_tampered"] = {"status": e.code, "body": e.read().decode()}
# The read-only key may read.
assert client("ssm", *ro).get_parameter(Name="/app/db")["Parameter"]["Value"] == "v2"
print(json.dumps(out))
"#;

/// An HTTP backend on loopback answering 200 to anything, for the load balancer's health
/// checks; it lives as long as the test process.
fn backend() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut r = BufReader::new(&s);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = (&s).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            });
        }
    });
    port
}

#[test]
fn elbv2_describe_calls_show_the_load_balancer_spindle_runs_and_its_real_target_health() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let (target, port) = (backend(), common::free_port());
    let t = home.dir.path().join("lb.yaml");
    std::fs::write(
        &t,
        format!(
            "Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {{Name: web}}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Name: web-tg
      Port: {target}
      TargetType: ip
      HealthCheckIntervalSeconds: 2
      HealthCheckTimeoutSeconds: 1
      HealthyThresholdCount: 1
      Targets: [{{Id: 127.0.0.1}}]
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {port}
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Tg}}]
"
        ),
    )
    .unwrap();
    let (done, out) = home.aws_text(&[
        "cloudformation",
        "deploy",
        "--stack-name",
        "web",
        "--template-file",
        t.to_str().unwrap(),
    ]);
    if !done {
        let events = home.aws_text(&[
            "cloudformation",
            "describe-stack-events",
            "--stack-name",
            "web",
        ]);
        panic!("{out}\n{}", events.1);
    }
    let lbs = home
        .aws(&["elbv2", "describe-load-balancers", "--names", "web"])
        .unwrap();
    let lb = &lbs["LoadBalancers"][0];
    assert_eq!(lb["LoadBalancerName"], "web", "{lbs}");
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap().to_owned();
    let listeners = home
        .aws(&[
            "elbv2",
            "describe-listeners",
            "--load-balancer-arn",
            &lb_arn,
        ])
        .unwrap();
    assert_eq!(listeners["Listeners"][0]["Port"], port, "{listeners}");
    let tgs = home
        .aws(&[
            "elbv2",
            "describe-target-groups",
            "--load-balancer-arn",
            &lb_arn,
        ])
        .unwrap();
    let tg_arn = tgs["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tgs["TargetGroups"][0]["Port"], target, "{tgs}");
    // The health checks run for real: the target turns healthy within a few intervals.
    let mut state = String::new();
    for _ in 0..40 {
        let h = home
            .aws(&[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                &tg_arn,
            ])
            .unwrap();
        assert_eq!(
            h["TargetHealthDescriptions"][0]["Target"]["Id"], "127.0.0.1",
            "{h}"
        );
        state = h["TargetHealthDescriptions"][0]["TargetHealth"]["State"]
            .as_str()
            .unwrap()
            .to_owned();
        if state == "healthy" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(state, "healthy");
    home.refused(
        &["elbv2", "describe-load-balancers", "--names", "nope"],
        &["LoadBalancerNotFound"],
    );
    home.aws(&["cloudformation", "delete-stack", "--stack-name", "web"])
        .unwrap();
    let lbs = home.aws(&["elbv2", "describe-load-balancers"]).unwrap();
    assert_eq!(lbs["LoadBalancers"], serde_json::json!([]), "{lbs}");
}

/// Operations the conformance run doesn't call, each with where it is covered instead.
const NOT_IN_CONFORMANCE: &[(&str, &str)] = &[
    (
        "elasticloadbalancing.DescribeTargetHealth",
        "needs a running target group: elbv2_describe_calls_... checks it",
    ),
    (
        "autoscaling.SetDesiredCapacity",
        "needs a running group: aws_asg.rs checks it as root",
    ),
    (
        "autoscaling.StartInstanceRefresh",
        "needs a running group: aws_asg.rs checks it as root",
    ),
    (
        "autoscaling.CompleteLifecycleAction",
        "needs a group with a lifecycle hook: the REST API's test covers the engine",
    ),
    (
        "ec2.StopInstances",
        "needs a running instance: aws_asg.rs checks it as root",
    ),
    (
        "ec2.StartInstances",
        "needs a running instance: aws_asg.rs checks it as root",
    ),
    (
        "ec2.TerminateInstances",
        "needs a running instance: aws_asg.rs checks it as root",
    ),
    ("route53.ListHostedZones", ROUTE53),
    ("route53.ListHostedZonesByName", ROUTE53),
    ("route53.GetHostedZone", ROUTE53),
    ("route53.ListResourceRecordSets", ROUTE53),
    ("route53.ChangeResourceRecordSets", ROUTE53),
    ("route53.GetChange", ROUTE53),
];

const ROUTE53: &str = "needs a hosted zone: aws_route53.rs runs the same check on each";

#[test]
fn secrets_through_the_aws_cli_are_the_ones_spindle_secret_sees() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let sm = |args: &[&str]| {
        let mut a = vec!["secretsmanager"];
        a.extend_from_slice(args);
        home.aws(&a)
    };
    let made = sm(&[
        "create-secret",
        "--name",
        "app/api-key",
        "--secret-string",
        "first",
    ])
    .unwrap();
    let arn = made["ARN"].as_str().unwrap().to_owned();
    assert!(arn.contains(":secret:app/api-key-"), "{made}");
    sm(&[
        "put-secret-value",
        "--secret-id",
        &arn,
        "--secret-string",
        "second",
    ])
    .unwrap();
    let got = sm(&["get-secret-value", "--secret-id", "app/api-key"]).unwrap();
    assert_eq!(got["SecretString"], "second");
    assert_eq!(got["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    let prev = sm(&[
        "get-secret-value",
        "--secret-id",
        "app/api-key",
        "--version-stage",
        "AWSPREVIOUS",
    ])
    .unwrap();
    assert_eq!(prev["SecretString"], "first");
    let list = sm(&["list-secrets"]).unwrap();
    assert_eq!(list["SecretList"][0]["ARN"], arn.as_str());
    assert!(!list.to_string().contains("second"), "{list}");
    let (code, err) = sm(&["get-secret-value", "--secret-id", "nope"]).unwrap_err();
    assert_ne!(code, 0);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    // The same secret through spindle.
    let o = home.spindle(
        &d,
        &[
            "--account",
            "dev",
            "secret",
            "get",
            "app/api-key",
            "--value",
        ],
    );
    assert_eq!(ok(&o).trim(), "second");
}

#[test]
fn replies_of_every_implemented_operation_conform_to_botocores_models() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    // A role the conformance run assumes (dev trusting itself).
    ok(&home.spindle(
        &d,
        &[
            "--account",
            "dev",
            "role",
            "create",
            "self",
            "--trust",
            "dev",
            "--allow",
            "*",
        ],
    ));
    let ops: Vec<String> = spindle_awsapi::OPERATIONS
        .iter()
        .map(|o| format!("{}.{}", o.service, o.name))
        .collect();
    let r = home.boto3(
        &format!("{BOTOCORE_CHECK}{CONFORMANCE}"),
        &[
            ("OPS", &serde_json::to_string(&ops).unwrap()),
            ("TEMPLATE", TEMPLATE),
        ],
    );
    assert_eq!(
        r["unknown"],
        serde_json::json!([]),
        "operations botocore's models don't have"
    );
    assert_eq!(
        r["problems"],
        serde_json::json!([]),
        "replies that break the models"
    );
    let checked: Vec<&str> = r["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for op in &ops {
        let skipped = NOT_IN_CONFORMANCE.iter().any(|(o, _)| o == op);
        assert_eq!(
            checked.contains(&op.as_str()),
            !skipped,
            "{op}: called by the conformance run ({checked:?})"
        );
    }
}

/// Calls each implemented operation through boto3 (whose parsers reject malformed XML and
/// JSON) and checks the parsed reply against the operation's output shape in botocore's
/// model (`call` and `check` of [`BOTOCORE_CHECK`], which runs first).
const CONFORMANCE: &str = r#"
ops = json.loads(os.environ["OPS"])
template = os.environ["TEMPLATE"]
unknown = [o for o in ops if o.split(".")[1] not in session.get_service_model(model_name(o.split(".")[0])).operation_names]

p = lambda env: [{"ParameterKey": "Env", "ParameterValue": env}]
cf = "cloudformation."
call(cf + "CreateStack", StackName="conf", TemplateBody=template, Parameters=p("conf"))
call(cf + "DescribeStacks", StackName="conf")
call(cf + "ListStacks")
call(cf + "GetTemplateSummary", StackName="conf")
call(cf + "DescribeStackEvents", StackName="conf")
call(cf + "DescribeStackResources", StackName="conf")
call(cf + "ListStackResources", StackName="conf")
call(cf + "ValidateTemplate", TemplateBody=template)
call(cf + "CreateChangeSet", StackName="conf", ChangeSetName="cs1", TemplateBody=template, Parameters=p("conf2"), ChangeSetType="UPDATE")
call(cf + "DescribeChangeSet", StackName="conf", ChangeSetName="cs1")
call(cf + "ListChangeSets", StackName="conf")
call(cf + "DeleteChangeSet", StackName="conf", ChangeSetName="cs1")
cs = client("cloudformation").create_change_set(StackName="conf", ChangeSetName="cs2", TemplateBody=template, Parameters=p("conf3"), ChangeSetType="UPDATE")
call(cf + "ExecuteChangeSet", ChangeSetName=cs["Id"])
call(cf + "UpdateStack", StackName="conf", TemplateBody=template, Parameters=p("conf4"))
call(cf + "GetTemplate", StackName="conf", TemplateStage="Original")
det = call(cf + "DetectStackDrift", StackName="conf")
if det:
    call(cf + "DescribeStackDriftDetectionStatus", StackDriftDetectionId=det["StackDriftDetectionId"])
call(cf + "DescribeStackResourceDrifts", StackName="conf")
call(cf + "DetectStackResourceDrift", StackName="conf", LogicalResourceId="Flag")
call("ssm.PutParameter", Name="/x/b", Value="v", Type="String", Overwrite=True)
call("ssm.GetParameter", Name="/conf4/flag")
call("ssm.GetParameters", Names=["/conf4/flag", "/nope"])
call("ssm.GetParametersByPath", Path="/conf4")
call("ssm.DeleteParameter", Name="/x/b")
call("sts.GetCallerIdentity")
call("sts.AssumeRole", RoleArn="arn:aws:iam::dev:role/self", RoleSessionName="conf")
call("elasticloadbalancing.DescribeLoadBalancers")
call("elasticloadbalancing.DescribeTargetGroups")
call("elasticloadbalancing.DescribeListeners", ListenerArns=["arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/none/0/0"])
# Without the instance runtime there are no groups or instances: the lists are empty, and
# their shape is still the model's (aws_asg.rs checks full replies as root).
call("autoscaling.DescribeAutoScalingGroups", MaxRecords=10)
call("autoscaling.DescribeScalingActivities")
call("autoscaling.DescribeInstanceRefreshes", AutoScalingGroupName="none")
call("ec2.DescribeInstances", Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
call("ec2.DescribeVpcs")
call("ec2.DescribeSubnets")
call("ec2.DescribeSecurityGroups")
call("ec2.DescribeImages", Owners=["self"])
call("secretsmanager.CreateSecret", Name="conf/db", SecretString='{"username":"admin","password":"s3cret-conf"}', Description="conformance")
call("secretsmanager.PutSecretValue", SecretId="conf/db", SecretString='{"username":"admin","password":"s3cret-two"}')
call("secretsmanager.GetSecretValue", SecretId="conf/db", VersionStage="AWSPREVIOUS")
call("secretsmanager.DescribeSecret", SecretId="conf/db")
call("secretsmanager.ListSecrets")
call(cf + "ListExports")
call(cf + "UpdateTerminationProtection", StackName="conf", EnableTerminationProtection=True)
try:
    client("cloudformation").delete_stack(StackName="conf")
    problems.append("DeleteStack of a stack with termination protection succeeded")
except botocore.exceptions.ClientError:
    pass
client("cloudformation").update_termination_protection(StackName="conf", EnableTerminationProtection=False)
call(cf + "DeleteStack", StackName="conf")
print(json.dumps({"unknown": unknown, "problems": problems, "checked": checked}))
"#;

const ASG_TEMPLATE: &str = "Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.216.0.0/20}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.216.1.0/24}
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData: {ImageId: 'busybox:idle', InstanceType: t3.nano}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AutoScalingGroupName: aws-asg
      MinSize: '1'
      MaxSize: '3'
      DesiredCapacity: '2'
      LaunchTemplate:
        LaunchTemplateId: !Ref Template
        Version: !GetAtt Template.LatestVersionNumber
      VPCZoneIdentifier: [!Ref Subnet]
  Web:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: http
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.216.0.0/20}
  Solo:
    Type: AWS::EC2::Instance
    Properties: {ImageId: 'busybox:idle', InstanceType: t3.nano, SubnetId: !Ref Subnet}
";

/// As root, with instances: the real `aws` CLI deploys an auto scaling group, then drives and
/// reads it and its instances through the Auto Scaling and EC2 calls: real lifecycle states,
/// desired capacity, an instance refresh to `Successful`, activities, filters and pages of
/// `describe-instances`, stop/start/terminate, and the errors a script would branch on.
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn the_aws_cli_drives_a_running_auto_scaling_group_and_its_instances() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let prefix = format!("saws{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let home = dev_home(&d, venv);
    import_busybox(&d, "busybox:idle", &["sleep", "3600"]);
    let t = home.dir.path().join("asg.yaml");
    std::fs::write(&t, ASG_TEMPLATE).unwrap();
    let (done, out) = home.aws_text(&[
        "cloudformation",
        "deploy",
        "--stack-name",
        "asg",
        "--template-file",
        t.to_str().unwrap(),
    ]);
    assert!(done, "{out}");

    let group = |home: &AwsHome| {
        let g = home
            .aws(&[
                "autoscaling",
                "describe-auto-scaling-groups",
                "--auto-scaling-group-names",
                "aws-asg",
            ])
            .unwrap();
        g["AutoScalingGroups"][0].clone()
    };
    let in_service = |g: &serde_json::Value| -> Vec<String> {
        g["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["LifecycleState"] == "InService")
            .map(|i| i["InstanceId"].as_str().unwrap().to_owned())
            .collect()
    };
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        for _ in 0..120 {
            if f() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("timed out waiting for {what}");
    };
    wait("2 instances in service", &mut || {
        in_service(&group(&home)).len() == 2
    });
    let g = group(&home);
    assert_eq!(g["DesiredCapacity"], 2, "{g}");
    assert_eq!(g["MinSize"], 1);
    assert_eq!(g["HealthCheckType"], "EC2");
    assert!(
        g["Instances"][0]["HealthStatus"] == "Healthy",
        "{}",
        g["Instances"]
    );

    // The stack's network and the account's images, as EC2 describes them.
    let vpcs = home.aws(&["ec2", "describe-vpcs"]).unwrap();
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 1, "{vpcs}");
    assert_eq!(vpcs["Vpcs"][0]["CidrBlock"], "10.216.0.0/20", "{vpcs}");
    let vpc = vpcs["Vpcs"][0]["VpcId"].as_str().unwrap().to_owned();
    let subnets = home.aws(&["ec2", "describe-subnets"]).unwrap();
    assert_eq!(
        subnets["Subnets"][0]["CidrBlock"], "10.216.1.0/24",
        "{subnets}"
    );
    assert_eq!(subnets["Subnets"][0]["VpcId"], vpc.as_str(), "{subnets}");
    let sgs = home.aws(&["ec2", "describe-security-groups"]).unwrap();
    let web = &sgs["SecurityGroups"][0];
    assert_eq!(web["VpcId"], vpc.as_str(), "{sgs}");
    assert_eq!(web["IpPermissions"][0]["FromPort"], 80, "{sgs}");
    assert_eq!(
        web["IpPermissions"][0]["IpRanges"][0]["CidrIp"], "10.216.0.0/20",
        "{sgs}"
    );
    let images = home
        .aws(&["ec2", "describe-images", "--owners", "self"])
        .unwrap();
    assert_eq!(images["Images"][0]["Name"], "busybox:idle", "{images}");
    assert!(images["Images"][0]["ImageId"]
        .as_str()
        .unwrap()
        .starts_with("ami-"));
    home.refused(
        &["ec2", "describe-vpcs", "--vpc-ids", "vpc-00000000"],
        &["InvalidVpcID.NotFound"],
    );
    home.refused(
        &["ec2", "describe-images", "--image-ids", "ami-00000000"],
        &["InvalidAMIID.NotFound"],
    );

    // EC2 sees the same instances, running, with the group's tag; filters narrow them.
    let first = in_service(&g)[0].clone();
    let r = home
        .aws(&[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag:aws:autoscaling:groupName,Values=aws-asg",
            "Name=instance-state-name,Values=running",
        ])
        .unwrap();
    let ids: Vec<&str> = r["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["Instances"][0]["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{r}");
    assert!(ids.contains(&first.as_str()), "{r}");
    let one = &r["Reservations"][0]["Instances"][0];
    assert_eq!(one["State"]["Name"], "running", "{one}");
    assert_eq!(one["State"]["Code"], 16);
    assert!(one["PrivateIpAddress"]
        .as_str()
        .unwrap()
        .starts_with("10.216.1."));
    // Pages of one (the CLI follows NextToken) give the same two instances.
    let paged = home
        .aws(&[
            "ec2",
            "describe-instances",
            "--page-size",
            "5",
            "--filters",
            "Name=tag-key,Values=aws:autoscaling:groupName",
        ])
        .unwrap();
    assert_eq!(paged["Reservations"].as_array().unwrap().len(), 2);
    let groups_paged = home
        .aws(&[
            "autoscaling",
            "describe-auto-scaling-groups",
            "--page-size",
            "1",
        ])
        .unwrap();
    assert_eq!(
        groups_paged["AutoScalingGroups"].as_array().unwrap().len(),
        1
    );
    home.refused(
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=availability-zone,Values=x",
        ],
        &["availability-zone", "not a filter Spindle applies"],
    );
    home.refused(
        &[
            "ec2",
            "describe-instances",
            "--instance-ids",
            "i-00000000deadbeef",
        ],
        &["InvalidInstanceID.NotFound"],
    );

    // Desired capacity: out of range is a ValidationError; in range grows the group.
    home.refused(
        &[
            "autoscaling",
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "aws-asg",
            "--desired-capacity",
            "9",
        ],
        &["ValidationError", "outside MinSize 1 .. MaxSize 3"],
    );
    home.aws(&[
        "autoscaling",
        "set-desired-capacity",
        "--auto-scaling-group-name",
        "aws-asg",
        "--desired-capacity",
        "3",
    ])
    .unwrap();
    wait("3 instances in service", &mut || {
        in_service(&group(&home)).len() == 3
    });

    // An instance refresh replaces every instance and reports Successful at 100 %.
    let before = in_service(&group(&home));
    home.refused(
        &[
            "autoscaling",
            "start-instance-refresh",
            "--auto-scaling-group-name",
            "aws-asg",
            "--preferences",
            "SkipMatching=true",
        ],
        &["Preferences.SkipMatching"],
    );
    // Two starts a moment apart (one process: the CLI's start-up would let a quick refresh
    // finish in between): the second finds the first in progress.
    let started = home.boto3(
        r#"
import json, boto3, botocore.exceptions
asg = boto3.client("autoscaling")
first = asg.start_instance_refresh(AutoScalingGroupName="aws-asg", Preferences={"MinHealthyPercentage": 100})
try:
    asg.start_instance_refresh(AutoScalingGroupName="aws-asg")
    second = None
except botocore.exceptions.ClientError as e:
    second = e.response["Error"]["Code"]
print(json.dumps({"id": first["InstanceRefreshId"], "second": second}))
"#,
        &[],
    );
    assert_eq!(started["second"], "InstanceRefreshInProgress", "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let mut last = serde_json::Value::Null;
    wait("the refresh to succeed", &mut || {
        last = home
            .aws(&[
                "autoscaling",
                "describe-instance-refreshes",
                "--auto-scaling-group-name",
                "aws-asg",
            ])
            .unwrap();
        last["InstanceRefreshes"][0]["Status"] == "Successful"
    });
    let r = &last["InstanceRefreshes"][0];
    assert_eq!(r["InstanceRefreshId"], id.as_str(), "{last}");
    assert_eq!(r["PercentageComplete"], 100, "{last}");
    assert!(r.get("EndTime").is_some(), "{last}");
    let after = in_service(&group(&home));
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|i| !before.contains(i)),
        "every instance was replaced: {before:?} → {after:?}"
    );
    let acts = home
        .aws(&[
            "autoscaling",
            "describe-scaling-activities",
            "--auto-scaling-group-name",
            "aws-asg",
        ])
        .unwrap();
    let descriptions: Vec<&str> = acts["Activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Description"].as_str().unwrap())
        .collect();
    assert!(
        descriptions[0].starts_with("Instance refresh: replaced 3 instances")
            || descriptions
                .iter()
                .any(|d| d.starts_with("Instance refresh: replaced 3")),
        "{descriptions:?}"
    );
    assert!(
        descriptions
            .iter()
            .any(|d| d.contains("Launching a new instance")),
        "{descriptions:?}"
    );
    // Pages of two, followed by the CLI through NextToken, give the same list in order.
    let paged = home
        .aws(&[
            "autoscaling",
            "describe-scaling-activities",
            "--auto-scaling-group-name",
            "aws-asg",
            "--page-size",
            "2",
        ])
        .unwrap();
    assert!(descriptions.len() > 2, "{descriptions:?}");
    assert_eq!(paged["Activities"], acts["Activities"]);

    // Stop and start the stack's own instance through EC2 (a group would replace a stopped
    // member, as on AWS); terminate a member, and the group replaces it.
    let solo = home
        .aws(&[
            "cloudformation",
            "describe-stack-resources",
            "--stack-name",
            "asg",
            "--logical-resource-id",
            "Solo",
        ])
        .unwrap();
    let solo = solo["StackResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["LogicalResourceId"] == "Solo")
        .unwrap()["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let stopped = home
        .aws(&["ec2", "stop-instances", "--instance-ids", &solo])
        .unwrap();
    assert_eq!(
        stopped["StoppingInstances"][0]["PreviousState"]["Name"], "running",
        "{stopped}"
    );
    assert_eq!(
        stopped["StoppingInstances"][0]["CurrentState"]["Name"], "stopped",
        "{stopped}"
    );
    let started = home
        .aws(&["ec2", "start-instances", "--instance-ids", &solo])
        .unwrap();
    let victim = after[0].clone();
    assert_eq!(
        started["StartingInstances"][0]["CurrentState"]["Name"], "running",
        "{started}"
    );
    let gone = home
        .aws(&["ec2", "terminate-instances", "--instance-ids", &victim])
        .unwrap();
    assert_eq!(
        gone["TerminatingInstances"][0]["CurrentState"]["Name"], "terminated",
        "{gone}"
    );
    wait("the group to replace the terminated instance", &mut || {
        let now = in_service(&group(&home));
        now.len() == 3 && !now.contains(&victim)
    });

    home.aws(&["cloudformation", "delete-stack", "--stack-name", "asg"])
        .unwrap();
    let g = home
        .aws(&["autoscaling", "describe-auto-scaling-groups"])
        .unwrap();
    assert_eq!(g["AutoScalingGroups"], serde_json::json!([]), "{g}");
}

/// `sts assume-role` from the real CLI gives temporary credentials of the role's account that
/// boto3 uses as they come (key, secret and session token); the session has the role's grants
/// only, needs its own token, and a role that doesn't trust the caller is refused.
#[test]
fn sts_assume_role_gives_session_credentials_that_boto3_uses_as_they_come() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let prod = d
        .admin()
        .create_account(&CreateAccount {
            name: AccountName::parse("prod").unwrap(),
            description: String::new(),
        })
        .unwrap();
    ok(&home.spindle(
        &d,
        &[
            "--account",
            "prod",
            "role",
            "create",
            "deployer",
            "--trust",
            "dev",
            "--allow",
            "param:*",
            "--allow",
            "sts:GetCallerIdentity",
        ],
    ));
    ok(&home.spindle(
        &d,
        &[
            "--account",
            "prod",
            "role",
            "create",
            "private",
            "--trust",
            "prod",
            "--allow",
            "*",
        ],
    ));
    home.refused(
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::prod:role/private",
            "--role-session-name",
            "ci-1",
        ],
        &["AccessDenied"],
    );
    home.refused(
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::prod:user/deployer",
            "--role-session-name",
            "ci-1",
        ],
        &["ValidationError", "is not a role ARN"],
    );
    let creds = home
        .aws(&[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{}:role/deployer", prod.id),
            "--role-session-name",
            "ci-1",
            "--duration-seconds",
            "900",
        ])
        .unwrap();
    let c = &creds["Credentials"];
    assert!(
        c["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{creds}"
    );
    assert!(
        creds["AssumedRoleUser"]["Arn"]
            .as_str()
            .unwrap()
            .ends_with(":assumed-role/deployer/ci-1"),
        "{creds}"
    );
    let r = home.boto3(
        ASSUMED,
        &[("CREDS", &c.to_string()), ("PROD", prod.id.as_str())],
    );
    assert_eq!(r["account"], prod.id.as_str(), "{r}");
    assert!(
        r["arn"]
            .as_str()
            .unwrap()
            .ends_with("assumed-role/deployer/ci-1"),
        "{r}"
    );
    assert_eq!(r["param"], "v", "{r}");
    assert_eq!(r["stacks"], "AccessDenied", "{r}");
    assert_eq!(r["no_token"], "InvalidClientTokenId", "{r}");
    assert_eq!(r["wrong_token"], "InvalidClientTokenId", "{r}");
    // The dev key itself never sends a token; one added is refused.
    assert_eq!(r["long_term_with_token"], "InvalidClientTokenId", "{r}");
}

const ASSUMED: &str = r#"
import json, os
import boto3, botocore.exceptions

c = json.loads(os.environ["CREDS"])
def client(svc, token=c["SessionToken"], key=c["AccessKeyId"], secret=c["SecretAccessKey"]):
    return boto3.client(svc, aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)
def code(f):
    try:
        f()
        return None
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
out = {}
me = client("sts").get_caller_identity()
out["account"], out["arn"] = me["Account"], me["Arn"]
client("ssm").put_parameter(Name="/app/flag", Value="v", Type="String")
out["param"] = client("ssm").get_parameter(Name="/app/flag")["Parameter"]["Value"]
out["stacks"] = code(lambda: client("cloudformation").list_stacks())
out["no_token"] = code(lambda: client("sts", token=None).get_caller_identity())
out["wrong_token"] = code(lambda: client("sts", token="0" * 64).get_caller_identity())
dev = boto3.session.Session().get_credentials()
out["long_term_with_token"] = code(lambda: client("sts", token="0" * 64, key=dev.access_key, secret=dev.secret_key).get_caller_identity())
print(json.dumps(out))
"#;
