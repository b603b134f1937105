//! Hosted zones from stacks, answered by the daemon's DNS server to Debian's `dig`
//! (bind9-dnsutils): alias records to a load balancer, a bad record refusing the whole
//! deploy, and the same answers after a restart. Says `skipped` without `dig`.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::*;
use spindle_model::lb::LoadBalancerInfo;
use spindle_model::AccountName;
use std::process::Command;

const ACCOUNT: &str = "management";

fn dig_missing(test: &str) -> bool {
    let missing = Command::new("dig").arg("-v").output().is_err();
    if missing {
        println!("skipped: {test}: `dig` is not installed (Debian package bind9-dnsutils)");
    }
    missing
}

fn dig(d: &Daemon, args: &[&str]) -> String {
    let addr = d.dns_addr().expect("the daemon serves DNS");
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn short(d: &Daemon, name: &str, t: &str) -> String {
    dig(d, &[name, t, "+short"]).trim().to_owned()
}

fn deploy(d: &Daemon, account: &str, stack: &str, template: &str) -> DeployResult {
    d.admin()
        .deploy_stack(
            account,
            stack,
            &DeployStack {
                template: TemplateRequest {
                    template_body: template.to_owned(),
                    template_name: Some(format!("{stack}.yaml")),
                    parameters: Default::default(),
                    nested_templates: Default::default(),
                    use_previous_values: Default::default(),
                },
                ..DeployStack::default()
            },
        )
        .unwrap()
}

const ZONE: &str = r#"
Resources:
  Zone:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: twine.test.
      HostedZoneConfig: {Comment: the main zone}
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {Name: dev}
  Dev:
    Type: AWS::Route53::RecordSet
    Properties:
      HostedZoneId: !Ref Zone
      Name: dev.twine.test.
      Type: A
      AliasTarget:
        DNSName: !GetAtt Lb.DNSName
        HostedZoneId: !GetAtt Lb.CanonicalHostedZoneID
  Group:
    Type: AWS::Route53::RecordSetGroup
    Properties:
      HostedZoneName: twine.test.
      RecordSets:
        - {Name: api.twine.test., Type: A, TTL: "60", ResourceRecords: [127.0.0.5]}
        - {Name: www.twine.test., Type: CNAME, TTL: 300, ResourceRecords: [dev.twine.test.]}
        - {Name: twine.test., Type: MX, TTL: 300, ResourceRecords: ["10 mail.twine.test."]}
Outputs:
  ZoneId: {Value: !Ref Zone}
"#;

#[test]
fn stack_zones_are_served_to_dig_refuse_bad_batches_whole_and_survive_a_restart() {
    if dig_missing("stack_zones_are_served_to_dig") {
        return;
    }
    let mut d = Daemon::start(BIN);
    let r = deploy(&d, ACCOUNT, "dns", ZONE);
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let lb: LoadBalancerInfo = d.admin().load_balancer(ACCOUNT, "dev", "").unwrap();
    assert_eq!(
        short(&d, "dev.twine.test", "A"),
        lb.address,
        "the alias answers the LB"
    );
    assert_eq!(short(&d, "api.twine.test", "A"), "127.0.0.5");
    assert_eq!(
        short(&d, "www.twine.test", "A"),
        format!("dev.twine.test.\n{}", lb.address)
    );
    assert_eq!(short(&d, "twine.test", "MX"), "10 mail.twine.test.");
    let serial = |d: &Daemon| -> u32 {
        let soa = short(d, "twine.test", "SOA");
        soa.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let s0 = serial(&d);

    // One bad record in an update: the whole group is refused, nothing changes.
    let bad = ZONE.replace(
        "- {Name: api.twine.test., Type: A, TTL: \"60\", ResourceRecords: [127.0.0.5]}",
        "- {Name: api.twine.test., Type: A, TTL: \"60\", ResourceRecords: [127.0.0.6]}\n        - {Name: new.twine.test., Type: A, TTL: 60, ResourceRecords: [127.0.0.300]}",
    );
    let r = deploy(&d, ACCOUNT, "dns", &bad);
    assert_ne!(r.status.as_deref(), Some("UPDATE_COMPLETE"), "{r:?}");
    let events = d.cli(&["stack", "events", "dns"]);
    let ev = common::stdout(&events);
    assert!(
        ev.contains("RecordSets[1].ResourceRecords[0]: `127.0.0.300` is not an IPv4 address"),
        "the refusal names the bad record: {ev}"
    );
    assert_eq!(short(&d, "api.twine.test", "A"), "127.0.0.5");
    assert!(dig(&d, &["new.twine.test", "A"]).contains("status: NXDOMAIN"));
    assert_eq!(serial(&d), s0, "a refused change leaves the serial");

    // A good update raises the serial.
    let good = ZONE.replace("[127.0.0.5]", "[127.0.0.6]");
    let r = deploy(&d, ACCOUNT, "dns", &good);
    assert_eq!(r.status.as_deref(), Some("UPDATE_COMPLETE"), "{r:?}");
    assert_eq!(short(&d, "api.twine.test", "A"), "127.0.0.6");
    let s1 = serial(&d);
    assert!(s1 > s0, "{s1} > {s0}");

    d.stop();
    d.spawn();
    assert_eq!(
        short(&d, "api.twine.test", "A"),
        "127.0.0.6",
        "after a restart"
    );
    assert_eq!(short(&d, "dev.twine.test", "A"), lb.address);
    assert_eq!(serial(&d), s1);
    let nodata = dig(&d, &["api.twine.test", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0, AUTHORITY: 1"),
        "{nodata}"
    );

    // The CLI: zones, records and a test query, as JSON.
    let o = d.cli(&["dns", "zones", "--output", "json"]);
    let zones: Vec<spindle_model::dns::HostedZoneInfo> =
        serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(zones.len(), 1, "{zones:?}");
    assert_eq!(
        (zones[0].name.as_str(), zones[0].serial),
        ("twine.test", s1)
    );
    assert_eq!(zones[0].comment, "the main zone");
    let o = d.cli(&["dns", "records", "twine.test", "--output", "json"]);
    let records: Vec<spindle_model::dns::RecordSetInfo> =
        serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(records[0].rtype, "SOA");
    let dev = records.iter().find(|r| r.name == "dev.twine.test").unwrap();
    assert_eq!(dev.values, vec![lb.address.clone()]);
    assert_eq!(dev.alias.as_deref(), Some(lb.dns_name.as_str()));
    let o = d.cli(&["dns", "test", "www.twine.test", "--output", "json"]);
    let a: spindle_model::dns::DnsAnswer = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(a.rcode, "NOERROR");
    assert!(a.authoritative);
    assert_eq!(a.answers.len(), 2, "{a:?}");
    assert!(a.answers[1].ends_with(&lb.address), "{a:?}");
    let o = d.cli(&["dns", "test", "nope.twine.test", "--type", "TXT"]);
    let text = common::stdout(&o);
    assert!(text.contains("NXDOMAIN") && text.contains("SOA"), "{text}");
    let o = d.cli(&["dns", "records", "nope.test"]);
    assert!(common::stderr(&o).contains("hosted zone `nope.test` not found"));

    // Deleting the stack empties and removes the zone.
    let o = d.cli(&["stack", "delete", "dns", "--yes"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(dig(&d, &["api.twine.test", "A"]).contains("status: REFUSED"));
}

/// The `dns` account owns `twine.test` and grants `dev` the names below `dev.twine.test`:
/// dev's stack may write there and nowhere else in the zone, and the refusal is audited.
#[test]
fn another_account_writes_into_a_zone_only_through_the_owners_grant_and_refusals_are_audited() {
    if dig_missing("another_account_writes_into_a_zone_only_through_the_owners_grant") {
        return;
    }
    let d = Daemon::start(BIN);
    let admin = d.admin();
    for name in ["dns", "dev"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(name).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    let zone = r#"
Resources:
  Zone:
    Type: AWS::Route53::HostedZone
    Properties:
      Name: twine.test
      HostedZoneTags: [{Key: "spindle:grant:dev", Value: "*.dev.twine.test"}]
"#;
    let r = deploy(&d, "dns", "zone", zone);
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let record = |name: &str| {
        format!(
            "Resources:\n  R:\n    Type: AWS::Route53::RecordSet\n    Properties: {{HostedZoneName: twine.test, Name: {name}, Type: A, TTL: 60, ResourceRecords: [127.0.0.9]}}\n"
        )
    };
    let r = deploy(&d, "dev", "granted", &record("api.dev.twine.test"));
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    assert_eq!(short(&d, "api.dev.twine.test", "A"), "127.0.0.9");

    let r = deploy(&d, "dev", "outside", &record("www.twine.test"));
    assert_ne!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
    let ev = common::stdout(&d.cli(&["--account", "dev", "stack", "events", "outside"]));
    assert!(
        ev.contains("may not write `www.twine.test` into hosted zone `twine.test`"),
        "{ev}"
    );
    assert!(dig(&d, &["www.twine.test", "A"]).contains("status: NXDOMAIN"));
    let audit = admin.audit(Some("dns"), None, None, Some(500)).unwrap();
    let denied: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "dns:ChangeResourceRecordSets")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].result, "denied");
    assert!(
        denied[0].target.ends_with("/records/www.twine.test"),
        "{:?}",
        denied[0]
    );
    // The zone is the dns account's: dev lists none.
    let o = d.cli(&["--account", "dev", "dns", "zones", "--output", "json"]);
    assert_eq!(common::stdout(&o).trim(), "[]");
}
