//! Which zones answer whom: the public listener sees public zones only; a VPC's resolver sees
//! the private zones associated with it first, then the public ones (split horizon). One
//! table of (view, name, expected answer), checked through `test_answer_in`.

use spindle_dns::{
    test_answer_in, test_answer_with, Action, Catalog, Change, DnsError, RecordSet, RecordType,
    View, VpcHostnames, ZoneData,
};

fn ok(_: &[u8]) -> Result<(), String> {
    Ok(())
}

fn a(name: &str, ip: &str) -> Change {
    Change {
        action: Action::Upsert,
        set: RecordSet {
            name: name.into(),
            rtype: RecordType::A,
            ttl: 60,
            values: vec![ip.into()],
            alias: None,
        },
    }
}

fn zone(c: &Catalog, id: &str, name: &str, vpcs: &[&str], records: &[(&str, &str)]) {
    let mut z = ZoneData::new(id, name, "111111111111").unwrap();
    z.private = !vpcs.is_empty();
    z.vpcs = vpcs.iter().map(|v| v.to_string()).collect();
    c.create_zone(z, &ok).unwrap();
    let batch: Vec<Change> = records.iter().map(|(n, ip)| a(n, ip)).collect();
    if !batch.is_empty() {
        c.change(id, &batch, &ok).unwrap();
    }
}

fn catalog() -> Catalog {
    let c = Catalog::new();
    zone(
        &c,
        "ZPUB",
        "corp.test",
        &[],
        &[("www.corp.test", "192.0.2.1")],
    );
    zone(
        &c,
        "ZPRIV",
        "corp.test",
        &["vpc-a"],
        &[("www.corp.test", "10.0.0.5"), ("db.corp.test", "10.0.0.6")],
    );
    zone(
        &c,
        "ZAPP",
        "pub.test",
        &[],
        &[("app.pub.test", "192.0.2.9")],
    );
    zone(
        &c,
        "ZSHARED",
        "internal",
        &["vpc-a", "vpc-b"],
        &[("svc.internal", "10.9.9.9")],
    );
    zone(&c, "ZINNER", "inner.test", &["vpc-a"], &[]);
    zone(
        &c,
        "ZSUB",
        "sub.inner.test",
        &[],
        &[("x.sub.inner.test", "192.0.2.7")],
    );
    c
}

/// `rcode answer-addresses` as the view sees `name`'s A records.
fn ask(c: &Catalog, view: &View, name: &str) -> String {
    let t = test_answer_in(&c.snapshot(), view, name, "A").unwrap();
    let mut out = t.rcode;
    for r in &t.answers {
        out.push(' ');
        out.push_str(r.split_whitespace().last().unwrap_or_default());
    }
    out
}

#[test]
fn each_view_sees_its_own_zones_private_first() {
    let c = catalog();
    let public = View::Public;
    let (va, vb, vc) = (
        View::Vpc("vpc-a".into()),
        View::Vpc("vpc-b".into()),
        View::Vpc("vpc-c".into()),
    );
    let cases: &[(&View, &str, &str)] = &[
        // Split horizon: one name, two zones.
        (&public, "www.corp.test", "NOERROR 192.0.2.1"),
        (&va, "www.corp.test", "NOERROR 10.0.0.5"),
        (&vb, "www.corp.test", "NOERROR 192.0.2.1"),
        // A name only in the private zone: not leaked to the public listener or other VPCs,
        // which see the public zone's NXDOMAIN.
        (&public, "db.corp.test", "NXDOMAIN"),
        (&va, "db.corp.test", "NOERROR 10.0.0.6"),
        (&vb, "db.corp.test", "NXDOMAIN"),
        // Public zones answer inside every VPC.
        (&va, "app.pub.test", "NOERROR 192.0.2.9"),
        (&vc, "app.pub.test", "NOERROR 192.0.2.9"),
        // A private zone with no public twin: REFUSED outside its VPCs, as Route 53's public
        // name servers answer for a zone they don't host.
        (&public, "svc.internal", "REFUSED"),
        (&vc, "svc.internal", "REFUSED"),
        (&va, "svc.internal", "NOERROR 10.9.9.9"),
        (&vb, "svc.internal", "NOERROR 10.9.9.9"),
        // The private zone holding the name wins over a more specific public one.
        (&public, "x.sub.inner.test", "NOERROR 192.0.2.7"),
        (&va, "x.sub.inner.test", "NXDOMAIN"),
        (&vb, "x.sub.inner.test", "NOERROR 192.0.2.7"),
        // Outside every zone: not forwarded (see the crate docs), REFUSED everywhere.
        (&va, "debian.org", "REFUSED"),
        (&public, "debian.org", "REFUSED"),
    ];
    let mut wrong = Vec::new();
    for (view, name, want) in cases {
        let got = ask(&c, view, name);
        if got != *want {
            wrong.push(format!("{view:?} {name}: got `{got}`, want `{want}`"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_private_zone_conflicts_only_with_its_own_name_in_a_shared_vpc() {
    let c = catalog();
    let make = |id: &str, name: &str, vpcs: &[&str]| {
        let mut z = ZoneData::new(id, name, "111111111111").unwrap();
        z.private = !vpcs.is_empty();
        z.vpcs = vpcs.iter().map(|v| v.to_string()).collect();
        c.create_zone(z, &ok)
    };
    // Same name, a VPC already associated with a private `corp.test`.
    let e = make("Z2", "corp.test", &["vpc-b", "vpc-a"]);
    assert!(matches!(e, Err(DnsError::ZoneExists { .. })), "{e:?}");
    // Same name, other VPCs: fine (each VPC sees one).
    make("Z3", "corp.test", &["vpc-b"]).unwrap();
    assert_eq!(
        ask(&c, &View::Vpc("vpc-b".into()), "www.corp.test"),
        "NXDOMAIN"
    );
    // A second public zone of one name is refused as before.
    let e = make("Z4", "pub.test", &[]);
    assert!(matches!(e, Err(DnsError::ZoneExists { .. })), "{e:?}");
    // Associating an existing zone with a VPC that already sees that name is refused, and
    // changes nothing.
    let e = c.update_zone("Z3", &ok, |z| z.vpcs.push("vpc-a".into()));
    assert!(matches!(e, Err(DnsError::ZoneExists { .. })), "{e:?}");
    assert_eq!(
        ask(&c, &View::Vpc("vpc-a".into()), "www.corp.test"),
        "NOERROR 10.0.0.5"
    );
}

/// A VPC with `EnableDnsHostnames` answers its addresses' host names and pointers, not
/// authoritatively; zones it sees still win, and without host names those names are REFUSED.
#[test]
fn host_names_answer_after_the_zones_a_vpc_sees() {
    let c = catalog();
    zone(
        &c,
        "ZEC2",
        "ec2.internal",
        &["vpc-b"],
        &[("ip-10-0-0-5.ec2.internal", "10.9.9.1")],
    );
    let names = VpcHostnames::new("ec2.internal", "10.0.0.0".parse().unwrap(), 16).unwrap();
    let vpc_a = View::Vpc("vpc-a".into());
    let ask_with = |view: &View, h: Option<&VpcHostnames>, name: &str, t: &str| {
        let r = test_answer_with(&c.snapshot(), view, h, name, t).unwrap();
        let mut out = format!("{}{}", r.rcode, if r.authoritative { " aa" } else { "" });
        for a in &r.answers {
            out.push(' ');
            out.push_str(a.split_whitespace().last().unwrap_or_default());
        }
        out
    };
    let table: &[(&View, Option<&VpcHostnames>, &str, &str, &str)] = &[
        (
            &vpc_a,
            Some(&names),
            "ip-10-0-0-5.ec2.internal",
            "A",
            "NOERROR 10.0.0.5",
        ),
        (
            &vpc_a,
            Some(&names),
            "IP-10-0-3-4.EC2.INTERNAL.",
            "A",
            "NOERROR 10.0.3.4",
        ),
        (
            &vpc_a,
            Some(&names),
            "ip-10-0-0-5.ec2.internal",
            "AAAA",
            "NOERROR",
        ),
        (
            &vpc_a,
            Some(&names),
            "ip-10-1-0-5.ec2.internal",
            "A",
            "NXDOMAIN",
        ),
        (&vpc_a, Some(&names), "web.ec2.internal", "A", "NXDOMAIN"),
        (
            &vpc_a,
            Some(&names),
            "5.0.0.10.in-addr.arpa",
            "PTR",
            "NOERROR ip-10-0-0-5.ec2.internal.",
        ),
        (
            &vpc_a,
            Some(&names),
            "5.0.1.11.in-addr.arpa",
            "PTR",
            "REFUSED",
        ),
        // Other names answer from zones as before; a zone of the host names' own domain (or
        // below it) wins over them, a wider one (vpc-a's private `internal`) does not.
        (
            &vpc_a,
            Some(&names),
            "svc.internal",
            "A",
            "NOERROR aa 10.9.9.9",
        ),
        (
            &vpc_a,
            Some(&names),
            "www.corp.test",
            "A",
            "NOERROR aa 10.0.0.5",
        ),
        (
            &vpc_a,
            Some(&names),
            "app.pub.test",
            "A",
            "NOERROR aa 192.0.2.9",
        ),
        (
            &View::Vpc("vpc-b".into()),
            Some(&names),
            "ip-10-0-0-5.ec2.internal",
            "A",
            "NOERROR aa 10.9.9.1",
        ),
        // Without host names (EnableDnsHostnames false, or the public listener): REFUSED.
        (
            &View::Vpc("vpc-c".into()),
            None,
            "ip-10-0-0-5.ec2.internal",
            "A",
            "REFUSED",
        ),
        (&vpc_a, None, "ip-10-0-0-5.ec2.internal", "A", "NXDOMAIN aa"),
        (
            &View::Public,
            None,
            "5.0.0.10.in-addr.arpa",
            "PTR",
            "REFUSED",
        ),
    ];
    for (view, h, name, t, want) in table {
        assert_eq!(&ask_with(view, *h, name, t), want, "{view:?} {name} {t}");
    }
}
