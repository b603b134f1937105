//! Route 53 over REST-XML (issue #21 item 1, on the DNS engine of #19), driven by the real
//! `aws` CLI (v1) and boto3 against a daemon, with Debian's `dig` asking the daemon's DNS
//! server what a change made. Says `skipped` without the venv (`SPINDLE_AWS_VENV`) or `dig`.

mod common;

use common::aws::{dev_home, venv_or_skip, AwsHome, BOTOCORE_CHECK};
use common::{deploy_request, dig_at, Daemon, BIN};
use spindle_model::api::CreateAccount;
use spindle_model::AccountName;

const ZONE: &str = r#"
Resources:
  Zone:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: r53.test.
      HostedZoneConfig: {Comment: through the aws CLI}
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Name: r53lb}
  Seed:
    Type: AWS::Route53::RecordSetGroup
    Properties:
      HostedZoneId: !Ref Zone
      RecordSets:
        - {Name: a.r53.test., Type: A, TTL: 60, ResourceRecords: [127.0.0.10]}
        - {Name: b.r53.test., Type: A, TTL: 60, ResourceRecords: [127.0.0.11]}
        - {Name: c.r53.test., Type: TXT, TTL: 60, ResourceRecords: ['"hello"']}
"#;

const OTHER_ZONE: &str = r#"
Resources:
  Zone:
    Type: AWS::Route53::HostedZone
    Properties: {Name: other.test.}
"#;

/// `dig +short` of `name` and `rtype` at the daemon's DNS server.
fn short(d: &Daemon, name: &str, rtype: &str) -> String {
    let addr = d.dns_addr().expect("the daemon serves DNS");
    dig_at(addr, &[name, rtype, "+short"])
        .expect("dig runs")
        .trim()
        .to_owned()
}

fn soa_serial(d: &Daemon) -> u32 {
    let soa = short(d, "r53.test", "SOA");
    soa.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in `{soa}`"))
}

/// Writes a change batch for `--change-batch file://…`.
fn batch_file(home: &AwsHome, name: &str, changes: serde_json::Value) -> String {
    let path = home.dir.path().join(name);
    std::fs::write(&path, serde_json::json!({ "Changes": changes }).to_string()).unwrap();
    format!("file://{}", path.display())
}

fn a_change(action: &str, name: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "Action": action,
        "ResourceRecordSet": {
            "Name": name, "Type": "A", "TTL": 60,
            "ResourceRecords": [{"Value": ip}]
        }
    })
}

/// The record sets as `(name, type)`, in the order listed.
fn names(list: &serde_json::Value) -> Vec<(String, String)> {
    list["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Name"].as_str().unwrap().to_owned(),
                r["Type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn route53_through_the_aws_cli_changes_what_dig_sees_all_or_nothing_and_only_in_own_zones() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        println!(
            "skipped: {}: `dig` is not installed (bind9-dnsutils)",
            module_path!()
        );
        return;
    }
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let admin = d.admin();
    let r = admin
        .deploy_stack("dev", "zone", &deploy_request("zone.yaml", ZONE, &[]))
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    admin
        .create_account(&CreateAccount {
            name: AccountName::parse("ops").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let r = admin
        .deploy_stack("ops", "zone", &deploy_request("zone.yaml", OTHER_ZONE, &[]))
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let r53 = |args: &[&str]| {
        let mut a = vec!["route53"];
        a.extend_from_slice(args);
        home.aws(&a)
    };
    // `change-resource-record-sets` of a batch written to `file`.
    let change = |zone: &str, file: &str, changes: serde_json::Value| {
        let file = batch_file(&home, file, changes);
        r53(&[
            "change-resource-record-sets",
            "--hosted-zone-id",
            zone,
            "--change-batch",
            &file,
        ])
    };

    // The account sees its own zone only.
    let zones = r53(&["list-hosted-zones"]).unwrap();
    let list = zones["HostedZones"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{zones}");
    assert_eq!(list[0]["Name"], "r53.test.");
    assert_eq!(list[0]["Config"]["Comment"], "through the aws CLI");
    assert_eq!(
        list[0]["ResourceRecordSetCount"], 5,
        "SOA, NS and three seeded"
    );
    let zone_id = list[0]["Id"].as_str().unwrap().to_owned();
    assert!(zone_id.starts_with("/hostedzone/Z"), "{zone_id}");
    let by_name = r53(&["list-hosted-zones-by-name", "--dns-name", "r53.test"]).unwrap();
    assert_eq!(
        by_name["HostedZones"][0]["Id"],
        zone_id.as_str(),
        "{by_name}"
    );
    let got = r53(&["get-hosted-zone", "--id", &zone_id]).unwrap();
    assert_eq!(
        got["DelegationSet"]["NameServers"],
        serde_json::json!(["ns1.r53.test"]),
        "{got}"
    );

    // A batch of three kinds of change, live for dig when the reply comes.
    let s0 = soa_serial(&d);
    let changed = change(
        &zone_id,
        "good.json",
        serde_json::json!([
            a_change("CREATE", "www.r53.test", "127.0.0.7"),
            a_change("UPSERT", "a.r53.test.", "127.0.0.12"),
            {"Action": "DELETE", "ResourceRecordSet": {
                "Name": "c.r53.test", "Type": "TXT", "TTL": 60,
                "ResourceRecords": [{"Value": "\"hello\""}]}},
        ]),
    )
    .unwrap();
    assert_eq!(changed["ChangeInfo"]["Status"], "INSYNC", "{changed}");
    let change_id = changed["ChangeInfo"]["Id"].as_str().unwrap().to_owned();
    assert_eq!(short(&d, "www.r53.test", "A"), "127.0.0.7");
    assert_eq!(short(&d, "a.r53.test", "A"), "127.0.0.12");
    assert_eq!(short(&d, "c.r53.test", "TXT"), "");
    assert_eq!(soa_serial(&d), s0 + 1, "one batch, one serial");
    let status = r53(&["get-change", "--id", &change_id]).unwrap();
    assert_eq!(status["ChangeInfo"]["Status"], "INSYNC", "{status}");
    let (waited, out) = home.aws_text(&[
        "route53",
        "wait",
        "resource-record-sets-changed",
        "--id",
        &change_id,
    ]);
    assert!(waited, "{out}");
    let (code, err) = r53(&["get-change", "--id", "/change/CNOPE"]).unwrap_err();
    assert_ne!(code, 0);
    assert!(err.contains("NoSuchChange"), "{err}");

    // Paging: by 2 through boto3 by hand and through the CLI's paginator, the same sets in
    // the same order as one page.
    let full = r53(&[
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--no-paginate",
    ])
    .unwrap();
    let all = names(&full);
    assert_eq!(
        all.iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect::<Vec<_>>(),
        [
            "r53.test. NS",
            "r53.test. SOA",
            "a.r53.test. A",
            "b.r53.test. A",
            "www.r53.test. A"
        ],
        "{full}"
    );
    assert_eq!(full["IsTruncated"], false);
    let paged = r53(&[
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--page-size",
        "2",
    ])
    .unwrap();
    assert_eq!(names(&paged), all, "{paged}");
    let pages = home.boto3(
        r#"
import json, os, boto3
c = boto3.client("route53")
kw, pages, sets = {"HostedZoneId": os.environ["ZONE"], "MaxItems": "2"}, 0, []
while True:
    r = c.list_resource_record_sets(**kw)
    pages += 1
    sets += [[s["Name"], s["Type"]] for s in r["ResourceRecordSets"]]
    if not r["IsTruncated"]:
        break
    kw["StartRecordName"], kw["StartRecordType"] = r["NextRecordName"], r["NextRecordType"]
print(json.dumps({"pages": pages, "sets": sets}))
"#,
        &[("ZONE", &zone_id)],
    );
    assert_eq!(pages["pages"], 3, "{pages}");
    assert_eq!(
        pages["sets"],
        serde_json::to_value(all.iter().map(|(n, t)| [n, t]).collect::<Vec<_>>()).unwrap()
    );

    // A batch with one bad change is refused naming it, and changes nothing.
    let (_, err) = change(
        &zone_id,
        "bad.json",
        serde_json::json!([
            a_change("CREATE", "d.r53.test", "127.0.0.20"),
            a_change("CREATE", "e.r53.test", "127.0.0.300"),
        ]),
    )
    .unwrap_err();
    assert!(err.contains("InvalidChangeBatch"), "{err}");
    assert!(
        err.contains("Changes[1] (e.r53.test A)") && err.contains("127.0.0.300"),
        "{err}"
    );
    assert_eq!(
        short(&d, "d.r53.test", "A"),
        "",
        "the good change was not applied"
    );
    assert_eq!(soa_serial(&d), s0 + 1);
    let after = r53(&["list-resource-record-sets", "--hosted-zone-id", &zone_id]).unwrap();
    assert_eq!(names(&after), all);
    let (_, err) = change(
        &zone_id,
        "routing.json",
        serde_json::json!([{"Action": "CREATE", "ResourceRecordSet": {
            "Name": "w.r53.test", "Type": "A", "TTL": 60, "SetIdentifier": "one", "Weight": 1,
            "ResourceRecords": [{"Value": "127.0.0.1"}]}}]),
    )
    .unwrap_err();
    assert!(
        err.contains("Changes[0]: ResourceRecordSet.SetIdentifier: not supported by Spindle"),
        "{err}"
    );

    // Another account's zone: not found to read, refused (and audited) to write.
    let ops_zones = home.spindle(&d, &["--account", "ops", "-o", "json", "dns", "zones"]);
    let ops_zones: serde_json::Value = serde_json::from_slice(&ops_zones.stdout).unwrap();
    let other = ops_zones[0]["id"].as_str().unwrap().to_owned();
    for args in [
        vec!["get-hosted-zone", "--id", other.as_str()],
        vec![
            "list-resource-record-sets",
            "--hosted-zone-id",
            other.as_str(),
        ],
    ] {
        let (_, err) = r53(&args).unwrap_err();
        assert!(err.contains("NoSuchHostedZone"), "{args:?}: {err}");
    }
    let (_, err) = change(
        &other,
        "other.json",
        serde_json::json!([a_change("CREATE", "x.other.test", "127.0.0.9")]),
    )
    .unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    let addr = d.dns_addr().unwrap();
    assert_eq!(
        dig_at(addr, &["x.other.test", "A", "+short"])
            .unwrap()
            .trim(),
        ""
    );
    let audit = admin.audit(None, None, None, Some(1000)).unwrap();
    let denied = audit
        .iter()
        .find(|e| {
            e.action == "dns:ChangeResourceRecordSets"
                && e.result == "denied"
                && e.target.contains(&format!(
                    "aws:route53:ChangeResourceRecordSets hostedzone/{other}"
                ))
        })
        .unwrap_or_else(|| {
            panic!("no denied audit record for the write into ops' zone: {audit:#?}")
        });
    assert_eq!(denied.error_code.as_deref(), Some("AccessDenied"));
    assert!(
        audit
            .iter()
            .any(|e| e.action == "dns:ChangeResourceRecordSets"
                && e.result == "ok"
                && e.target
                    .contains("aws:route53:ChangeResourceRecordSets hostedzone/")),
        "the good batch is audited"
    );

    // An alias to a load balancer answers with its address, as from a template (the alias's
    // zone id is recorded, not checked; Spindle's DescribeLoadBalancers has none to copy).
    let lbs = home.aws(&["elbv2", "describe-load-balancers"]).unwrap();
    let lb = &lbs["LoadBalancers"][0];
    let lb_info: spindle_model::lb::LoadBalancerInfo =
        admin.load_balancer("dev", "r53lb", "").unwrap();
    change(
        &zone_id,
        "alias.json",
        serde_json::json!([{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": "app.r53.test", "Type": "A",
            "AliasTarget": {"HostedZoneId": "ZSPINDLELB", "DNSName": lb["DNSName"],
                            "EvaluateTargetHealth": false}}}]),
    )
    .unwrap();
    assert_eq!(short(&d, "app.r53.test", "A"), lb_info.address);
    let sets = r53(&[
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--start-record-name",
        "app.r53.test",
        "--max-items",
        "1",
    ])
    .unwrap();
    let app = &sets["ResourceRecordSets"][0];
    assert_eq!(app["Name"], "app.r53.test.", "{sets}");
    assert_eq!(app["AliasTarget"]["DNSName"], lb["DNSName"], "{sets}");

    // What Spindle doesn't do is said so, in Route 53's error shape.
    for (args, op) in [
        (
            vec![
                "create-hosted-zone",
                "--name",
                "new.test",
                "--caller-reference",
                "r1",
            ],
            "CreateHostedZone",
        ),
        (
            vec!["delete-hosted-zone", "--id", zone_id.as_str()],
            "DeleteHostedZone",
        ),
        (vec!["list-health-checks"], "ListHealthChecks"),
    ] {
        let (_, err) = r53(&args).unwrap_err();
        assert!(
            err.contains(&format!("route53:{op} is not implemented by Spindle")),
            "{err}"
        );
    }
    assert_eq!(
        short(&d, "www.r53.test", "A"),
        "127.0.0.7",
        "the zone is still there"
    );
}

/// Each Route 53 operation Spindle answers, called through boto3 and its reply checked
/// against botocore's model (the same check as aws_endpoint.rs's conformance run).
#[test]
fn route53_replies_conform_to_botocores_model() {
    let Some(venv) = venv_or_skip(module_path!()) else {
        return;
    };
    let d = Daemon::start(BIN);
    let home = dev_home(&d, venv);
    let r = d
        .admin()
        .deploy_stack("dev", "zone", &deploy_request("zone.yaml", ZONE, &[]))
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let ops: Vec<String> = spindle_awsapi::OPERATIONS
        .iter()
        .filter(|o| o.service == "route53")
        .map(|o| format!("{}.{}", o.service, o.name))
        .collect();
    let r = home.boto3(&format!("{BOTOCORE_CHECK}{CONFORMANCE}"), &[]);
    assert_eq!(
        r["problems"],
        serde_json::json!([]),
        "replies that break the model"
    );
    let mut checked: Vec<String> = serde_json::from_value(r["checked"].clone()).unwrap();
    checked.sort();
    checked.dedup();
    let mut want = ops.clone();
    want.sort();
    assert_eq!(checked, want);
}

const CONFORMANCE: &str = r#"
r53 = "route53."
z = call(r53 + "ListHostedZones", MaxItems="1")
zid = z["HostedZones"][0]["Id"]
call(r53 + "ListHostedZonesByName", DNSName="r53.test", MaxItems="1")
call(r53 + "GetHostedZone", Id=zid)
call(r53 + "ListResourceRecordSets", HostedZoneId=zid, MaxItems="2")
c = call(r53 + "ChangeResourceRecordSets", HostedZoneId=zid, ChangeBatch={"Comment": "conformance", "Changes": [
    {"Action": "UPSERT", "ResourceRecordSet": {"Name": "conf.r53.test.", "Type": "A", "TTL": 30, "ResourceRecords": [{"Value": "127.0.0.3"}]}}]})
call(r53 + "GetChange", Id=c["ChangeInfo"]["Id"])
print(json.dumps({"problems": problems, "checked": checked}))
"#;
