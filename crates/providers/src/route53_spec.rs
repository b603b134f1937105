//! The Route 53 resources' properties, parsed once into typed records, every problem at once
//! with its property path (`RecordSets[1].ResourceRecords[0]`).

use spindle_dns::{canonical_name, parse_value, RecordType};
use spindle_template::Value;

use crate::props::{Problems, Props, Shape};
use crate::Kind;

/// Routing policies and health checks are later work of the DNS issue.
const ROUTING: &str =
    "weighted, failover, latency, geo and multivalue routing and health checks are not built yet";

const ROUTING_KEYS: &[&str] = &[
    "SetIdentifier",
    "Weight",
    "Failover",
    "HealthCheckId",
    "MultiValueAnswer",
    "Region",
    "GeoLocation",
    "GeoProximityLocation",
    "CidrRoutingConfig",
];

/// Which zone a record set goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZoneRef {
    Id(String),
    /// Canonical, no trailing dot.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AliasSpec {
    pub dns_name: String,
    pub hosted_zone_id: String,
}

/// One record set (a `RecordSet`'s own properties or one item of `RecordSets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetSpec {
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    pub values: Vec<String>,
    pub alias: Option<AliasSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZoneSpec {
    pub name: String,
    pub comment: String,
    pub vpcs: Vec<String>,
    /// From `HostedZoneTags` keyed `spindle:grant:ACCOUNT`.
    pub grants: Vec<spindle_dns::ZoneGrant>,
}

/// The tag key prefix of a zone's grants (Spindle's extension; the value is the names,
/// separated by spaces or commas).
pub(crate) const GRANT_TAG: &str = "spindle:grant:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSetSpec {
    pub zone: ZoneRef,
    pub set: SetSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSpec {
    pub zone: ZoneRef,
    pub sets: Vec<SetSpec>,
}

/// Every property of `p` that is neither used nor ignored, as a problem at its path.
fn unknown(problems: &mut Problems, prefix: &str, p: &Props, used: &[&str], ignored: &[&str]) {
    for (k, v) in p {
        if matches!(v, Value::Null | Value::NoValue)
            || used.contains(&k.as_str())
            || ignored.contains(&k.as_str())
        {
            continue;
        }
        let why = if ROUTING_KEYS.contains(&k.as_str()) {
            ROUTING.to_string()
        } else {
            format!("expected one of {}", used.join(", "))
        };
        problems.add(
            format!("{prefix}{k}"),
            format!("not supported by Spindle ({why})"),
        );
    }
}

fn shape(kind: Kind) -> Shape {
    Shape {
        type_name: kind.type_name(),
        used: &[],
        ignored: &[],
        hints: &[],
    }
}

impl ZoneSpec {
    pub fn parse(p: &Props) -> Result<Self, String> {
        let kind = Kind::HostedZone;
        let s = shape(kind);
        let mut problems = Problems::new(kind);
        unknown(
            &mut problems,
            "",
            p,
            &["Name", "HostedZoneConfig", "VPCs", "HostedZoneTags"],
            &[],
        );
        let name = problems
            .take("", s.req_str(p, "Name"))
            .and_then(|n| canonical_name(&n).map_err(|e| problems.add("Name", e)).ok());
        let mut comment = String::new();
        if let Some(Value::Map(c)) = p.get("HostedZoneConfig") {
            unknown(&mut problems, "HostedZoneConfig.", c, &["Comment"], &[]);
            comment = problems
                .take("HostedZoneConfig", s.opt_str(c, "Comment"))
                .flatten()
                .unwrap_or_default();
        }
        let mut vpcs = Vec::new();
        for (i, v) in problems
            .take("", s.map_list(p, "VPCs"))
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            unknown(
                &mut problems,
                &format!("VPCs[{i}]."),
                v,
                &["VPCId", "VPCRegion"],
                &[],
            );
            // Both are required, as in CloudFormation; Spindle has one region, so any
            // region name is accepted.
            problems.take(format!("VPCs[{i}]"), s.req_str(v, "VPCRegion"));
            let Some(id) = problems.take(format!("VPCs[{i}]"), s.req_str(v, "VPCId")) else {
                continue;
            };
            if !id.starts_with("vpc-") {
                problems.add(
                    format!("VPCs[{i}].VPCId"),
                    format!("`{id}` is not a VPC id (vpc-…)"),
                );
            } else if vpcs.contains(&id) {
                problems.add(
                    format!("VPCs[{i}].VPCId"),
                    format!("{id} is associated twice"),
                );
            } else {
                vpcs.push(id);
            }
        }
        let mut grants = Vec::new();
        let tags = problems
            .take("", s.map_list(p, "HostedZoneTags"))
            .flatten()
            .unwrap_or_default();
        for (i, t) in tags.into_iter().enumerate() {
            let at = format!("HostedZoneTags[{i}]");
            let (Some(key), value) = (
                problems.take(&at, s.req_str(t, "Key")),
                problems
                    .take(&at, s.opt_str(t, "Value"))
                    .flatten()
                    .unwrap_or_default(),
            ) else {
                continue;
            };
            let Some(account) = key.strip_prefix(GRANT_TAG) else {
                continue;
            };
            let mut names = Vec::new();
            for pat in value.split([' ', ',']).filter(|x| !x.is_empty()) {
                match canonical_name(pat) {
                    Ok(n)
                        if name.as_ref().is_some_and(|z| {
                            spindle_dns::in_zone(n.trim_start_matches("*."), z)
                        }) =>
                    {
                        names.push(n)
                    }
                    Ok(n) => {
                        problems.add(format!("{at}.Value"), format!("`{n}` is not in the zone"))
                    }
                    Err(e) => problems.add(format!("{at}.Value"), e),
                }
            }
            if account.is_empty() || names.is_empty() {
                problems.add(
                    &at,
                    format!(
                        "a grant is `{GRANT_TAG}ACCOUNT` with the names it may write as its value"
                    ),
                );
                continue;
            }
            grants.push(spindle_dns::ZoneGrant {
                account: account.to_owned(),
                names,
            });
        }
        problems.finish(name.map(|name| ZoneSpec {
            name,
            comment,
            vpcs,
            grants,
        }))
    }
}

fn zone_ref(problems: &mut Problems, s: &Shape, p: &Props) -> Option<ZoneRef> {
    let id = problems.take("", s.opt_str(p, "HostedZoneId")).flatten();
    let name = problems.take("", s.opt_str(p, "HostedZoneName")).flatten();
    match (id, name) {
        (Some(id), None) => Some(ZoneRef::Id(id)),
        (None, Some(n)) => match canonical_name(&n) {
            Ok(n) => Some(ZoneRef::Name(n)),
            Err(e) => {
                problems.add("HostedZoneName", e);
                None
            }
        },
        (Some(_), Some(_)) => {
            problems.add("", "give HostedZoneId or HostedZoneName, not both");
            None
        }
        (None, None) => {
            problems.add("", "HostedZoneId or HostedZoneName is required");
            None
        }
    }
}

/// One record set's own properties (`prefix` is its path, `RecordSets[2].`).
fn set_spec(
    problems: &mut Problems,
    s: &Shape,
    prefix: &str,
    p: &Props,
    extra: &[&str],
) -> Option<SetSpec> {
    let mut used = vec!["Name", "Type", "TTL", "ResourceRecords", "AliasTarget"];
    used.extend_from_slice(extra);
    unknown(problems, prefix, p, &used, &["Comment"]);
    let before = problems.count();
    let name = problems.take(prefix, s.req_str(p, "Name")).and_then(|n| {
        canonical_name(&n)
            .map_err(|e| problems.add(format!("{prefix}Name"), e))
            .ok()
    });
    let rtype = problems.take(prefix, s.req_str(p, "Type")).and_then(|t| {
        t.parse::<RecordType>()
            .map_err(|e| problems.add(format!("{prefix}Type"), e))
            .ok()
    });
    let ttl = problems.take(prefix, s.opt_int(p, "TTL")).flatten();
    let values = problems
        .take(prefix, s.str_list(p, "ResourceRecords"))
        .unwrap_or_default();
    let alias = match p.get("AliasTarget") {
        Some(Value::Map(a)) => {
            unknown(
                problems,
                &format!("{prefix}AliasTarget."),
                a,
                &["DNSName", "HostedZoneId"],
                &["EvaluateTargetHealth"],
            );
            let at = format!("{prefix}AliasTarget");
            let dns_name = problems.take(&at, s.req_str(a, "DNSName")).and_then(|n| {
                canonical_name(&n)
                    .map_err(|e| problems.add(format!("{at}.DNSName"), e))
                    .ok()
            });
            let zone = problems.take(&at, s.req_str(a, "HostedZoneId"));
            dns_name
                .zip(zone)
                .map(|(dns_name, hosted_zone_id)| AliasSpec {
                    dns_name,
                    hosted_zone_id,
                })
        }
        None | Some(Value::Null | Value::NoValue) => None,
        Some(v) => {
            problems.add(
                format!("{prefix}AliasTarget"),
                format!("must be a map, got {v}"),
            );
            None
        }
    };
    let has_alias = p
        .get("AliasTarget")
        .is_some_and(|v| !matches!(v, Value::Null | Value::NoValue));
    if has_alias {
        if !values.is_empty() {
            problems.add(prefix, "give ResourceRecords or AliasTarget, not both");
        }
        if ttl.is_some() {
            problems.add(
                format!("{prefix}TTL"),
                "an alias record takes its TTL from its target; leave TTL out",
            );
        }
        if let Some(t) = rtype {
            if !matches!(t, RecordType::A | RecordType::AAAA) {
                problems.add(
                    format!("{prefix}Type"),
                    format!("an alias to a load balancer is an A or AAAA record, not {t}"),
                );
            }
        }
    } else {
        if values.is_empty() {
            problems.add(prefix, "ResourceRecords (or AliasTarget) is required");
        }
        if ttl.is_none() {
            problems.add(
                format!("{prefix}TTL"),
                "TTL is required with ResourceRecords",
            );
        }
        if let Some(t) = rtype {
            for (i, v) in values.iter().enumerate() {
                if let Err(e) = parse_value(t, v) {
                    problems.add(format!("{prefix}ResourceRecords[{i}]"), e);
                }
            }
        }
    }
    let ttl = match ttl {
        Some(t) if !(0..=spindle_dns::MAX_TTL as i64).contains(&t) => {
            problems.add(
                format!("{prefix}TTL"),
                format!("{t} is not from 0 to {}", spindle_dns::MAX_TTL),
            );
            0
        }
        Some(t) => t as u32,
        None => 60,
    };
    if problems.count() > before {
        return None;
    }
    Some(SetSpec {
        name: name?,
        rtype: rtype?,
        ttl,
        values,
        alias,
    })
}

impl RecordSetSpec {
    pub fn parse(p: &Props) -> Result<Self, String> {
        let kind = Kind::RecordSet;
        let s = shape(kind);
        let mut problems = Problems::new(kind);
        let zone = zone_ref(&mut problems, &s, p);
        let set = set_spec(
            &mut problems,
            &s,
            "",
            p,
            &["HostedZoneId", "HostedZoneName"],
        );
        problems.finish(zone.zip(set).map(|(zone, set)| RecordSetSpec { zone, set }))
    }
}

impl GroupSpec {
    pub fn parse(p: &Props) -> Result<Self, String> {
        let kind = Kind::RecordSetGroup;
        let s = shape(kind);
        let mut problems = Problems::new(kind);
        unknown(
            &mut problems,
            "",
            p,
            &["HostedZoneId", "HostedZoneName", "RecordSets"],
            &["Comment"],
        );
        let zone = zone_ref(&mut problems, &s, p);
        let items = problems
            .take("", s.map_list(p, "RecordSets"))
            .flatten()
            .unwrap_or_default();
        if items.is_empty() {
            problems.add("RecordSets", "at least one record set is required");
        }
        let mut sets = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if let Some(set) = set_spec(&mut problems, &s, &format!("RecordSets[{i}]."), item, &[])
            {
                if sets
                    .iter()
                    .any(|o: &SetSpec| o.name == set.name && o.rtype == set.rtype)
                {
                    problems.add(
                        format!("RecordSets[{i}]"),
                        format!("{} {} is in the group twice", set.name, set.rtype),
                    );
                }
                sets.push(set);
            }
        }
        problems.finish(zone.map(|zone| GroupSpec { zone, sets }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn props(json: serde_json::Value) -> Props {
        fn conv(v: serde_json::Value) -> Value {
            match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Bool(b),
                serde_json::Value::Number(n) => Value::Number(n.to_string()),
                serde_json::Value::String(s) => Value::String(s),
                serde_json::Value::Array(a) => Value::List(a.into_iter().map(conv).collect()),
                serde_json::Value::Object(o) => {
                    Value::Map(o.into_iter().map(|(k, v)| (k, conv(v))).collect())
                }
            }
        }
        match conv(json) {
            Value::Map(m) => m,
            _ => BTreeMap::new(),
        }
    }

    #[test]
    fn a_record_set_group_reports_every_problem_with_its_path() {
        let e = GroupSpec::parse(&props(serde_json::json!({
            "HostedZoneName": "twine.test.",
            "RecordSets": [
                {"Name": "ok.twine.test", "Type": "A", "TTL": "60", "ResourceRecords": ["127.0.0.1"]},
                {"Name": "bad.twine.test", "Type": "A", "TTL": 60, "ResourceRecords": ["127.0.0.1", "nope"]},
                {"Name": "w.twine.test", "Type": "A", "TTL": 60, "ResourceRecords": ["127.0.0.1"], "Weight": 10},
                {"Name": "x.twine.test", "Type": "MX", "AliasTarget": {"DNSName": "lb.example", "HostedZoneId": "Z"}},
                {"Name": "y.twine.test", "Type": "BOGUS", "TTL": 60, "ResourceRecords": ["1"]},
                {"Name": "z.twine.test", "Type": "TXT", "ResourceRecords": ["\"x\""]}
            ]
        })))
        .unwrap_err();
        for want in [
            "AWS::Route53::RecordSetGroup: ",
            "RecordSets[1].ResourceRecords[1]: `nope` is not an IPv4 address",
            "RecordSets[2].Weight: not supported by Spindle (weighted, failover",
            "RecordSets[3].Type: an alias to a load balancer is an A or AAAA record, not MX",
            "RecordSets[4].Type: unknown record type `BOGUS`",
            "RecordSets[5].TTL: TTL is required with ResourceRecords",
        ] {
            assert!(e.contains(want), "`{want}` missing from {e}");
        }
        assert!(!e.contains("RecordSets[0]"), "{e}");
    }

    #[test]
    fn record_sets_and_zones_parse_into_their_specs() {
        let r = RecordSetSpec::parse(&props(serde_json::json!({
            "HostedZoneId": "Z123",
            "Name": "Dev.Twine.Test.",
            "Type": "A",
            "AliasTarget": {"DNSName": "web-1.us-east-1.elb.spindle.internal", "HostedZoneId": "ZSPINDLEELB0001", "EvaluateTargetHealth": false}
        })))
        .unwrap();
        assert_eq!(r.zone, ZoneRef::Id("Z123".into()));
        assert_eq!(r.set.name, "dev.twine.test");
        assert_eq!(
            r.set.alias.unwrap().dns_name,
            "web-1.us-east-1.elb.spindle.internal"
        );
        let e = RecordSetSpec::parse(&props(serde_json::json!({"Name": "a.twine.test", "Type": "A", "TTL": 60, "ResourceRecords": ["127.0.0.1"]}))).unwrap_err();
        assert!(
            e.contains("HostedZoneId or HostedZoneName is required"),
            "{e}"
        );
        let z = ZoneSpec::parse(&props(serde_json::json!({"Name": "twine.test", "HostedZoneConfig": {"Comment": "main"}, "VPCs": [{"VPCId": "vpc-1", "VPCRegion": "us-east-1"}]}))).unwrap();
        assert_eq!(
            (z.name.as_str(), z.comment.as_str(), z.vpcs.len()),
            ("twine.test", "main", 1)
        );
        let e = ZoneSpec::parse(&props(
            serde_json::json!({"Name": "corp.internal", "VPCs": [
                {"VPCId": "vpc-1", "VPCRegion": "us-east-1"},
                {"VPCId": "vpc-1", "VPCRegion": "us-east-1"},
                {"VPCId": "subnet-2", "VPCRegion": "us-east-1"},
                {"VPCId": "vpc-3"},
                {"VPCRegion": "us-east-1", "Zone": "a"}
            ]}),
        ))
        .unwrap_err();
        for want in [
            "VPCs[1].VPCId: vpc-1 is associated twice",
            "VPCs[2].VPCId: `subnet-2` is not a VPC id",
            "VPCs[3]: VPCRegion is required",
            "VPCs[4]: VPCId is required",
            "VPCs[4].Zone: not supported by Spindle",
        ] {
            assert!(e.contains(want), "`{want}` missing from {e}");
        }
        assert!(!e.contains("VPCs[0]"), "{e}");
        let e = ZoneSpec::parse(&props(
            serde_json::json!({"Name": "a..b", "QueryLoggingConfig": {}}),
        ))
        .unwrap_err();
        assert!(
            e.contains("Name: `a..b` has an empty label")
                && e.contains("QueryLoggingConfig: not supported"),
            "{e}"
        );
    }
}
