//! The twine example's names, without root: `examples/twine/stacks/dns.yaml` as shipped in
//! the dns account, and in dev and prod the `Name` record of `stacks/app.yaml` (cut from the
//! shipped file, with its parameter and condition) beside a load balancer; Debian's `dig`
//! then gets each load balancer's address for `dev.twine.test` and `twine.test`. The full
//! `spindle up examples/twine` (as root) checks the same in `up.rs`. Says `skipped` without
//! `dig`.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::CreateAccount;
use spindle_model::lb::LoadBalancerInfo;
use spindle_model::AccountName;
use std::path::Path;
use std::process::Command;

fn example(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/twine")
            .join(path),
    )
    .unwrap()
}

fn deploy(d: &Daemon, account: &str, stack: &str, body: &str, params: &[(&str, &str)]) {
    let req = common::deploy_request(&format!("{stack}.yaml"), body, params);
    let r = d.admin().deploy_stack(account, stack, &req).unwrap();
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"), "{r:?}");
}

/// The lines of `text` from the one equal to `first` up to the next blank line.
fn block(text: &str, first: &str) -> String {
    let mut lines = text.lines().skip_while(|l| *l != first);
    let mut out = String::new();
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    assert!(!out.is_empty(), "no `{first}` block in app.yaml");
    out
}

#[test]
fn the_twine_zone_answers_each_environments_load_balancer_name() {
    if Command::new("dig").arg("-v").output().is_err() {
        println!(
            "skipped: {}: `dig` is not installed (Debian package bind9-dnsutils)",
            module_path!()
        );
        return;
    }
    let d = Daemon::start(BIN);
    let admin = d.admin();
    for name in ["dns", "dev", "prod"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(name).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    deploy(&d, "dns", "twine-dns", &example("stacks/dns.yaml"), &[]);
    let app = example("stacks/app.yaml");
    let param = block(&app, "  DnsName:");
    let condition = block(&app, "Conditions:");
    let record = block(&app, "  Name:");
    assert!(record.contains("AWS::Route53::RecordSet"), "{record}");
    let template = format!(
        "Parameters:\n{param}{condition}\nResources:\n  LoadBalancer:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n    Properties: {{Name: twine}}\n{record}"
    );
    // As spindle.toml deploys them.
    deploy(
        &d,
        "dev",
        "twine-app",
        &template,
        &[("DnsName", "dev.twine.test")],
    );
    deploy(
        &d,
        "prod",
        "twine-app",
        &template,
        &[("DnsName", "twine.test")],
    );

    let addr = d.dns_addr().expect("the daemon serves DNS");
    let dig = |name: &str| {
        common::dig_at(addr, &[name, "A", "+short"])
            .unwrap()
            .trim()
            .to_owned()
    };
    for (account, name) in [("dev", "dev.twine.test"), ("prod", "twine.test")] {
        let lb: LoadBalancerInfo = admin.load_balancer(account, "twine", "").unwrap();
        assert!(!lb.address.is_empty(), "{lb:?}");
        assert_eq!(
            dig(name),
            lb.address,
            "{name} answers {account}'s load balancer"
        );
    }
    // An empty DnsName publishes nothing (the template stays deployable on its own).
    deploy(
        &d,
        "dev",
        "bare",
        &template.replace("Name: twine", "Name: bare"),
        &[],
    );
    assert_eq!(dig("dev.twine.test").lines().count(), 1);
}
