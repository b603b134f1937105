//! Issue #21's acceptance on twine's own stacks, as root: the real `aws` CLI (v1) deploys
//! `examples/twine/stacks/config.yaml` and then `stacks/app.yaml` (the files as shipped, with
//! their parameters) with `aws cloudformation deploy`, updates the app stack by a parameter,
//! and reads what runs back through `describe-stacks`, `describe-auto-scaling-groups`,
//! `elbv2 describe-target-health` and `ec2 describe-instances`.
//!
//! The image is not a full twine bake (minutes of Debian packages): the test imports a
//! busybox image whose httpd answers twine's health check (`/healthz` on 8080) and points
//! `/spindle/images/twine/latest` at it, as a bake would.

mod common;

use common::aws::*;
use common::{Daemon, BIN};
use spindle_model::lb::LoadBalancerInfo;
use std::path::PathBuf;

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/twine")
        .join(path)
}

/// The operations an `aws --debug` run sent, in order (botocore logs each request as
/// "Making request for OperationModel(name=X)").
fn requests(debug_log: &str) -> Vec<&str> {
    debug_log
        .lines()
        .filter_map(|l| {
            l.split_once("Making request for OperationModel(name=")?
                .1
                .split_once(')')
        })
        .map(|(name, _)| name)
        .collect()
}

/// `aws --debug cloudformation deploy ARGS`: it succeeds, and its waiters found the change
/// set created and the stack stable at their first look. botocore's waiter sleeps (5 s for
/// the change set, 30 s for the stack) only between two looks, so exactly one
/// DescribeChangeSet and one DescribeStacks after ExecuteChangeSet means it never slept.
fn deploy_without_waiting(home: &AwsHome, args: &[&str]) -> String {
    let mut all = vec!["--debug", "cloudformation", "deploy"];
    all.extend_from_slice(args);
    let (done, out) = home.aws_text(&all);
    assert!(done, "aws {args:?}:\n{}", tail(&out));
    // Before the change set the CLI reads the stack (and, for an update, the template's
    // parameters through GetTemplateSummary); from the change set on, one look per waiter.
    let sent = requests(&out);
    let from = sent
        .iter()
        .position(|r| *r == "CreateChangeSet")
        .unwrap_or_else(|| panic!("no CreateChangeSet in {sent:?}"));
    assert_eq!(
        sent[from..],
        [
            "CreateChangeSet",
            "DescribeChangeSet",
            "ExecuteChangeSet",
            "DescribeStacks"
        ],
        "aws {args:?} made other calls than one look per waiter: {sent:?}"
    );
    assert_eq!(
        out.matches("Waiting complete, waiter matched the success state.")
            .count(),
        2,
        "{}",
        tail(&out)
    );
    out
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(4000)..]
}

/// Polls `f` up to 240 times, 250 ms apart (bounded, no timing asserted).
fn wait_for(what: &str, f: &mut dyn FnMut() -> Option<String>) {
    let mut last = String::new();
    for _ in 0..240 {
        match f() {
            None => return,
            Some(why) => last = why,
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}: {last}");
}

/// One HTTP/1.0 GET through the load balancer's listener: (status, body).
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: twine\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_owned()))
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn aws_cloudformation_deploy_runs_twines_stacks_and_the_aws_cli_sees_them_serve() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let prefix = format!("stwa{}", std::process::id() % 100_000);
    let _sweep = common::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let home = dev_home(&d, venv);

    let image = import_busybox(
        &d,
        "twine:stand-in",
        &[
            "sh",
            "-c",
            "echo ok >/www/healthz && exec httpd -f -p 8080 -h /www",
        ],
    );
    home.aws(&[
        "ssm",
        "put-parameter",
        "--name",
        "/spindle/images/twine/latest",
        "--value",
        &image.id,
        "--type",
        "String",
        "--overwrite",
    ])
    .unwrap();

    let config = example("stacks/config.yaml");
    deploy_without_waiting(
        &home,
        &[
            "--stack-name",
            "twine-config",
            "--template-file",
            config.to_str().unwrap(),
            "--parameter-overrides",
            "Env=dev",
            "LogLevel=debug",
        ],
    );
    let app = example("stacks/app.yaml");
    let app = app.to_str().unwrap();
    // A CIDR of the test's own; no DnsName, so no record in a twine.test zone this daemon
    // doesn't have.
    let params = |min: &str| {
        vec![
            "--stack-name".to_owned(),
            "twine-app".to_owned(),
            "--template-file".to_owned(),
            app.to_owned(),
            "--parameter-overrides".to_owned(),
            "Env=dev".to_owned(),
            "Cidr=10.231.0.0/16".to_owned(),
            "MaxSize=3".to_owned(),
            format!("MinSize={min}"),
        ]
    };
    let args = params("1");
    deploy_without_waiting(&home, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let stack = |home: &AwsHome| {
        home.aws(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            "twine-app",
        ])
        .unwrap()["Stacks"][0]
            .clone()
    };
    let s = stack(&home);
    assert_eq!(s["StackStatus"], "CREATE_COMPLETE", "{s}");
    let output = |s: &serde_json::Value, k: &str| -> String {
        s["Outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["OutputKey"] == k)
            .and_then(|o| o["OutputValue"].as_str())
            .unwrap_or_else(|| panic!("no output {k} in {s}"))
            .to_owned()
    };
    let group = output(&s, "GroupName");
    assert!(output(&s, "Url").starts_with("http://"), "{s}");
    // The template the stack answers is the file, byte for byte.
    let t = home
        .aws(&[
            "cloudformation",
            "get-template",
            "--stack-name",
            "twine-app",
        ])
        .unwrap();
    assert_eq!(
        t["TemplateBody"].as_str(),
        Some(std::fs::read_to_string(app).unwrap().as_str())
    );

    let describe_group = |home: &AwsHome| -> serde_json::Value {
        home.aws(&[
            "autoscaling",
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            &group,
        ])
        .unwrap()["AutoScalingGroups"][0]
            .clone()
    };
    let in_service = |home: &AwsHome| -> Vec<String> {
        describe_group(home)["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["LifecycleState"] == "InService" && i["HealthStatus"] == "Healthy")
            .map(|i| i["InstanceId"].as_str().unwrap().to_owned())
            .collect()
    };
    let tgs = home.aws(&["elbv2", "describe-target-groups"]).unwrap();
    assert_eq!(tgs["TargetGroups"].as_array().unwrap().len(), 1, "{tgs}");
    let tg = tgs["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tgs["TargetGroups"][0]["Port"], 8080, "{tgs}");
    let healthy = |home: &AwsHome| -> Vec<String> {
        let h = home
            .aws(&["elbv2", "describe-target-health", "--target-group-arn", &tg])
            .unwrap();
        h["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["TargetHealth"]["State"] == "healthy")
            .map(|t| t["Target"]["Id"].as_str().unwrap().to_owned())
            .collect()
    };
    // The group's instances in service and healthy are exactly the load balancer's healthy
    // targets (its health checks of /healthz are real HTTP requests into the VPC).
    let both = |n: usize| -> Option<String> {
        let (mut s, mut h) = (in_service(&home), healthy(&home));
        s.sort();
        h.sort();
        (s.len() != n || s != h).then(|| format!("in service {s:?}, healthy {h:?}"))
    };
    wait_for("one instance in service and healthy", &mut || both(1));

    // The instance serves through the load balancer.
    let lbs = home.aws(&["elbv2", "describe-load-balancers"]).unwrap();
    let lb_name = lbs["LoadBalancers"][0]["LoadBalancerName"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = home.spindle(
        &d,
        &["--account", "dev", "-o", "json", "lb", "describe", &lb_name],
    );
    let info: LoadBalancerInfo = serde_json::from_str(&ok(&o)).unwrap();
    let addr = info.listeners[0].address.clone();
    wait_for(
        "the load balancer to answer /healthz",
        &mut || match get(&addr, "/healthz") {
            Some((200, body)) if body.trim() == "ok" => None,
            other => Some(format!("{other:?}")),
        },
    );

    // EC2 sees the group's instance running in the stack's subnets, with the template's tags.
    let running = |home: &AwsHome| -> Vec<serde_json::Value> {
        let r = home
            .aws(&[
                "ec2",
                "describe-instances",
                "--filters",
                "Name=tag:app,Values=twine",
                "Name=instance-state-name,Values=running",
            ])
            .unwrap();
        r["Reservations"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|x| x["Instances"].as_array().unwrap().clone())
            .collect()
    };
    let ids = in_service(&home);
    let r = running(&home);
    assert!(
        r.iter().any(|i| i["InstanceId"] == ids[0].as_str()),
        "{ids:?} not in {r:?}"
    );
    for i in &r {
        assert!(
            i["PrivateIpAddress"]
                .as_str()
                .unwrap()
                .starts_with("10.231."),
            "{i}"
        );
        assert_eq!(i["ImageId"], image.id.as_str(), "{i}");
    }

    // Nothing behind the stack's back: drift detection finds the live stack in sync.
    let det = home
        .aws(&[
            "cloudformation",
            "detect-stack-drift",
            "--stack-name",
            "twine-app",
        ])
        .unwrap();
    let st = home
        .aws(&[
            "cloudformation",
            "describe-stack-drift-detection-status",
            "--stack-drift-detection-id",
            det["StackDriftDetectionId"].as_str().unwrap(),
        ])
        .unwrap();
    assert_ne!(st["StackDriftStatus"], "DRIFTED", "{st}");

    // Update by a parameter: the group's minimum goes to 2, and a second instance comes into
    // service, healthy behind the load balancer.
    let args = params("2");
    deploy_without_waiting(&home, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = stack(&home);
    assert_eq!(s["StackStatus"], "UPDATE_COMPLETE", "{s}");
    let g = describe_group(&home);
    assert_eq!(g["MinSize"], 2, "{g}");
    wait_for("two instances in service and healthy", &mut || both(2));
    assert!(running(&home).len() >= 2);

    // The stacks go in the reverse order; nothing of them is left running.
    for name in ["twine-app", "twine-config"] {
        home.aws(&["cloudformation", "delete-stack", "--stack-name", name])
            .unwrap();
        let (done, out) = home.aws_text(&[
            "cloudformation",
            "wait",
            "stack-delete-complete",
            "--stack-name",
            name,
        ]);
        assert!(done, "{out}");
    }
    assert!(running(&home).is_empty());
    let g = home
        .aws(&["autoscaling", "describe-auto-scaling-groups"])
        .unwrap();
    assert_eq!(g["AutoScalingGroups"], serde_json::json!([]), "{g}");
}
