use super::*;

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn uri_templates_match_labels_greedy_labels_and_constant_query() {
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    // (template, path, query, labels or None)
    let cases: &[(&str, &str, Pairs, Option<Pairs>)] = &[
        (
            "/2013-04-01/hostedzone",
            "/2013-04-01/hostedzone",
            &[],
            Some(&[]),
        ),
        (
            "/2013-04-01/hostedzone",
            "/2013-04-01/hostedzone/Z1",
            &[],
            None,
        ),
        (
            "/2013-04-01/hostedzone/{Id}",
            "/2013-04-01/hostedzone/Z1",
            &[],
            Some(&[("Id", "Z1")]),
        ),
        (
            "/2013-04-01/hostedzone/{Id}/rrset/",
            "/2013-04-01/hostedzone/Z1/rrset/",
            &[],
            Some(&[("Id", "Z1")]),
        ),
        (
            "/2013-04-01/hostedzone/{Id}/rrset/",
            "/2013-04-01/hostedzone/Z1/rrset",
            &[],
            Some(&[("Id", "Z1")]),
        ),
        (
            "/2013-04-01/hostedzone/{Id}",
            "/2013-04-01/hostedzone/",
            &[],
            None,
        ),
        ("/x/{a}", "/x/a%20b%2Fc", &[], Some(&[("a", "a b/c")])),
        (
            "/g/{foo}/baz/{baz+}",
            "/g/hello/baz/there/guy",
            &[],
            Some(&[("foo", "hello"), ("baz", "there/guy")]),
        ),
        ("/g/{baz+}/end", "/g/a/b/end", &[], Some(&[("baz", "a/b")])),
        ("/g/{baz+}/end", "/g/end", &[], None),
        (
            "/c?foo=bar",
            "/c",
            &[("foo", "bar"), ("baz", "1")],
            Some(&[]),
        ),
        ("/c?foo=bar", "/c", &[("foo", "nope")], None),
        ("/c?tagging", "/c", &[("tagging", "")], Some(&[])),
        ("/c?tagging", "/c", &[], None),
        ("/x/{a}", "/x/%zz", &[], None),
    ];
    for (template, path, query, want) in cases {
        let got = match_uri(template, path, &q(query));
        let want = want.map(q);
        assert_eq!(got, want, "{template} ~ {path}");
    }
}

#[test]
fn the_route53_model_reads_and_routes_by_method_and_path() {
    let m = model("route53").unwrap();
    assert!(model("s3").is_none());
    let cases = [
        ("GET", "/2013-04-01/hostedzone", Some("ListHostedZones")),
        ("POST", "/2013-04-01/hostedzone", Some("CreateHostedZone")),
        ("GET", "/2013-04-01/hostedzone/Z1", Some("GetHostedZone")),
        (
            "DELETE",
            "/2013-04-01/hostedzone/Z1",
            Some("DeleteHostedZone"),
        ),
        (
            "GET",
            "/2013-04-01/hostedzone/Z1/rrset",
            Some("ListResourceRecordSets"),
        ),
        (
            "POST",
            "/2013-04-01/hostedzone/Z1/rrset/",
            Some("ChangeResourceRecordSets"),
        ),
        ("GET", "/2013-04-01/change/C1", Some("GetChange")),
        (
            "GET",
            "/2013-04-01/hostedzonesbyname",
            Some("ListHostedZonesByName"),
        ),
        ("PUT", "/2013-04-01/hostedzone", None),
        ("GET", "/2013-04-01/nothing", None),
    ];
    for (method, path, want) in cases {
        let got = m.route(method, path, &[]).map(|(o, _)| o.name.as_str());
        assert_eq!(got, want, "{method} {path}");
    }
    let svc = crate::ops::service("route53").unwrap();
    let e = route(svc, "POST", "/2013-04-01/hostedzone", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "route53:CreateHostedZone is not implemented by Spindle"
    );
    let e = route(svc, "GET", "/2013-04-01/nothing", &[]).unwrap_err();
    assert!(e.to_string().contains("GET /2013-04-01/nothing"), "{e}");
    let (op, _, labels) = route(svc, "GET", "/2013-04-01/change/C1", &[]).unwrap();
    assert_eq!((op.name, labels), ("GetChange", q(&[("Id", "C1")])));
}

const BATCH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeBatch>
    <Comment>a &amp; b</Comment>
    <Changes>
      <Change>
        <Action>CREATE</Action>
        <ResourceRecordSet>
          <Name>www.twine.test</Name><Type>A</Type><TTL>60</TTL>
          <ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords>
        </ResourceRecordSet>
      </Change>
    </Changes>
  </ChangeBatch>
</ChangeResourceRecordSetsRequest>"#;

#[test]
fn a_change_batch_decodes_into_the_models_member_names() {
    let m = model("route53").unwrap();
    let op = m.operation("ChangeResourceRecordSets").unwrap();
    let got = m
        .decode(op, &q(&[("Id", "Z1")]), &[], &[], BATCH.as_bytes())
        .unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "HostedZoneId": "Z1",
            "ChangeBatch": {
                "Comment": "a & b",
                "Changes": [{
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "www.twine.test", "Type": "A", "TTL": 60,
                        "ResourceRecords": [{"Value": "192.0.2.1"}]
                    }
                }]
            }
        })
    );
    let op = m.operation("ListResourceRecordSets").unwrap();
    let got = m
        .decode(
            op,
            &q(&[("Id", "Z1")]),
            &q(&[("maxitems", "2"), ("name", "a.")]),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(
        got,
        serde_json::json!({"HostedZoneId": "Z1", "MaxItems": "2", "StartRecordName": "a."})
    );
}

#[test]
fn bad_bodies_are_refused_naming_the_member_and_position() {
    let m = model("route53").unwrap();
    let op = m.operation("ChangeResourceRecordSets").unwrap();
    let cases = [
        (BATCH.replace("<TTL>60</TTL>", "<TTL>soon</TTL>"), "ChangeResourceRecordSetsRequest.ChangeBatch.Changes[0].ResourceRecordSet.TTL: line 9 column"),
        (BATCH.replace("<Comment>", "<Colour>x</Colour><Comment>"), "ChangeBatch.Colour: line 4 column 5: not a member of ChangeBatch"),
        (BATCH.replace("ChangeResourceRecordSetsRequest", "Other"), "the root element is <Other>, expected <ChangeResourceRecordSetsRequest>"),
        (BATCH.replace("</Changes>", ""), "not well-formed XML"),
        (BATCH.replace("<Change>", "<Chang>").replace("</Change>", "</Chang>"), "<Chang> in a list of <Change>"),
    ];
    for (body, want) in cases {
        let e = m
            .decode(op, &q(&[("Id", "Z1")]), &[], &[], body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "`{e}` should contain `{want}`");
    }
}

#[test]
fn replies_are_named_by_the_output_shape_with_list_member_elements() {
    let m = model("route53").unwrap();
    let op = m.operation("ListHostedZones").unwrap();
    let zone = Value::fields([
        ("Id", Some(Value::str("/hostedzone/Z1"))),
        ("Name", Some(Value::str("twine.test."))),
        ("ResourceRecordSetCount", Some(Value::Int(2))),
    ]);
    let v = Value::fields([
        ("HostedZones", Some(Value::List(vec![zone]))),
        ("IsTruncated", Some(Value::Bool(false))),
        ("MaxItems", Some(Value::str("100"))),
    ]);
    let (status, headers, body) = m.encode(op, &v).unwrap();
    assert_eq!((status, headers), (200, vec![]));
    assert_eq!(
        body,
        "<ListHostedZonesResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><HostedZones><HostedZone><Id>/hostedzone/Z1</Id><Name>twine.test.</Name><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone></HostedZones><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems></ListHostedZonesResponse>"
    );
    let bad = Value::fields([("Nope", Some(Value::Int(1)))]);
    let r = success(
        "https://route53.amazonaws.com/doc/2013-04-01/",
        "ListHostedZones",
        &bad,
        "rid",
    );
    assert_eq!(r.status, 500);
    assert!(
        r.body
            .contains("ListHostedZonesResponse.Nope: not a member"),
        "{}",
        r.body
    );
}
