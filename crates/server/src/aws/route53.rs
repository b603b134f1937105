//! Route 53 over REST-XML, on the hosted zones Spindle serves (`spindle_dns` through the
//! `Route53` providers' engine). Reads list through the same helpers as the REST API's `dns`
//! routes (an account sees its own zones; another account's zone is `NoSuchHostedZone`).
//! `ChangeResourceRecordSets` goes through `Route53::change_records`: the zone lock, the
//! cross-account grant check with its audited refusal, and one all-or-nothing batch.
//!
//! Zones are created and deleted by stacks (`AWS::Route53::HostedZone`): `CreateHostedZone`
//! and `DeleteHostedZone` answer "not implemented by Spindle" (the router names them).
//!
//! A batch is served (the DNS server's snapshot swapped) before the reply is sent, so its
//! `ChangeInfo` is `INSYNC` at once. A change id holds its zone, the serial the batch made and
//! the submission time, so `GetChange` needs no stored state and survives a restart.

use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::dns_handlers::{owned_zone, owned_zones};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_dns::{Action, Alias, Change, RecordSet, RecordType, ZoneData};
use spindle_providers::RecordChangeError;
use time::OffsetDateTime;

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    match op.name {
        "ListHostedZones" => list_hosted_zones(app, op, input),
        "ListHostedZonesByName" => list_hosted_zones_by_name(app, op, input),
        "GetHostedZone" => get_hosted_zone(app, op, input),
        "ListResourceRecordSets" => list_record_sets(app, op, input),
        "ChangeResourceRecordSets" => change_record_sets(app, op, input).await,
        "GetChange" => get_change(app, op, input),
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("route53:{} is not implemented by Spindle", op.name),
        )),
    }
}

fn no_such_zone(id: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "NoSuchHostedZone",
            status: 404,
        },
        format!("No hosted zone found with ID: {id}"),
    )
}

/// A zone id as clients send it: `Z…` or `/hostedzone/Z…`.
fn bare_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// `MaxItems` (a string in Route 53's model) between 1 and `limit`, `limit` if absent.
fn max_items(input: &Input, limit: usize) -> Result<usize, AwsError> {
    match input.json_str("MaxItems")? {
        None => Ok(limit),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=limit).contains(&n) => Ok(n),
            _ => Err(AwsError::validation(format!(
                "MaxItems: `{s}` is not a number between 1 and {limit}"
            ))),
        },
    }
}

/// A name as Route 53 writes it: with the trailing dot.
fn fqdn(name: &str) -> String {
    format!("{name}.")
}

/// The key Route 53 orders names by: labels reversed (`test.twine.www`), so a zone's names
/// sort under their parents.
fn reversed(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

/// `(page, next item)`: the items from the first whose key is at least `start`, `max` long.
fn page<T: Clone, K: Ord>(
    items: &[T],
    key: impl Fn(&T) -> K,
    start: Option<K>,
    max: usize,
) -> (Vec<T>, Option<T>) {
    let from = start.map_or(0, |s| items.partition_point(|i| key(i) < s));
    let rest = &items[from.min(items.len())..];
    (
        rest.iter().take(max).cloned().collect(),
        rest.get(max).cloned(),
    )
}

fn zone_value(z: &ZoneData) -> Value {
    let info = crate::dns_handlers::zone_info(z);
    Value::fields([
        ("Id", Some(Value::str(format!("/hostedzone/{}", info.id)))),
        ("Name", Some(Value::str(fqdn(&info.name)))),
        // Spindle's zones are made by stacks, which send no caller reference: the id stands in.
        ("CallerReference", Some(Value::str(info.id.clone()))),
        (
            "Config",
            Some(Value::fields([
                (
                    "Comment",
                    (!info.comment.is_empty()).then(|| Value::str(info.comment.clone())),
                ),
                ("PrivateZone", Some(Value::Bool(info.private))),
            ])),
        ),
        (
            "ResourceRecordSetCount",
            Some(Value::Int(info.record_sets as i64)),
        ),
    ])
}

fn list_hosted_zones(app: &App, op: &Operation, input: &Input) -> AwsResult {
    input.set_target(op, "hostedzone");
    if input.json_str("DelegationSetId")?.is_some() {
        return Err(AwsError::validation(
            "DelegationSetId: Spindle has no reusable delegation sets",
        ));
    }
    let private_only = match input.json_str("HostedZoneType")? {
        None => false,
        Some("PrivateHostedZone") => true,
        Some(other) => {
            return Err(AwsError::validation(format!(
                "HostedZoneType: `{other}` is not PrivateHostedZone"
            )))
        }
    };
    let max = max_items(input, 100)?;
    let snap = app.route53.catalog().snapshot();
    let mut zones: Vec<&ZoneData> = owned_zones(&snap, input.caller().account.id.as_str())
        .into_iter()
        .filter(|z| !private_only || z.private)
        .collect();
    zones.sort_by(|a, b| a.id.cmp(&b.id));
    let marker = input.json_str("Marker")?;
    let (items, next) = page(
        &zones,
        |z| z.id.clone(),
        marker.map(|m| bare_id(m).to_owned()),
        max,
    );
    Ok(Value::fields([
        (
            "HostedZones",
            Some(Value::List(items.iter().map(|z| zone_value(z)).collect())),
        ),
        ("Marker", Some(Value::str(marker.unwrap_or("")))),
        ("IsTruncated", Some(Value::Bool(next.is_some()))),
        ("NextMarker", next.map(|z| Value::str(z.id.clone()))),
        ("MaxItems", Some(Value::str(max.to_string()))),
    ]))
}

fn list_hosted_zones_by_name(app: &App, op: &Operation, input: &Input) -> AwsResult {
    input.set_target(op, "hostedzone");
    let max = max_items(input, 100)?;
    let dns_name = input.json_str("DNSName")?;
    let zone_id = input.json_str("HostedZoneId")?;
    if zone_id.is_some() && dns_name.is_none() {
        return Err(AwsError::validation(
            "HostedZoneId: a value needs DNSName as well",
        ));
    }
    let start = dns_name
        .map(|n| {
            spindle_dns::canonical_name(n)
                .map_err(|e| AwsError::validation(format!("DNSName: {e}")))
        })
        .transpose()?;
    let snap = app.route53.catalog().snapshot();
    let mut zones = owned_zones(&snap, input.caller().account.id.as_str());
    let key = |z: &&ZoneData| (reversed(&z.name), z.id.clone());
    zones.sort_by_key(key);
    let from = start.map(|n| (reversed(&n), zone_id.map(bare_id).unwrap_or("").to_owned()));
    let (items, next) = page(&zones, key, from, max);
    Ok(Value::fields([
        (
            "HostedZones",
            Some(Value::List(items.iter().map(|z| zone_value(z)).collect())),
        ),
        ("DNSName", dns_name.map(Value::str)),
        ("HostedZoneId", zone_id.map(Value::str)),
        ("IsTruncated", Some(Value::Bool(next.is_some()))),
        ("NextDNSName", next.map(|z| Value::str(fqdn(&z.name)))),
        ("NextHostedZoneId", next.map(|z| Value::str(z.id.clone()))),
        ("MaxItems", Some(Value::str(max.to_string()))),
    ]))
}

/// The caller's own zone named by the `member` id, or `NoSuchHostedZone`.
fn own_zone(app: &App, op: &Operation, input: &Input, member: &str) -> Result<ZoneData, AwsError> {
    let id = bare_id(input.json_required(member)?).to_owned();
    input.set_target(op, &format!("hostedzone/{id}"));
    let snap = app.route53.catalog().snapshot();
    owned_zone(&snap, input.caller().account.id.as_str(), &id)
        .filter(|z| z.id == id)
        .cloned()
        .ok_or_else(|| no_such_zone(&id))
}

fn get_hosted_zone(app: &App, op: &Operation, input: &Input) -> AwsResult {
    let z = own_zone(app, op, input, "Id")?;
    let vpcs = z
        .vpcs
        .iter()
        .map(|v| {
            Value::fields([
                ("VPCRegion", Some(Value::str("us-east-1"))),
                ("VPCId", Some(Value::str(v.clone()))),
            ])
        })
        .collect::<Vec<_>>();
    Ok(Value::fields([
        ("HostedZone", Some(zone_value(&z))),
        (
            "DelegationSet",
            (!z.private).then(|| {
                Value::fields([(
                    "NameServers",
                    Some(Value::List(vec![Value::str(format!("ns1.{}", z.name))])),
                )])
            }),
        ),
        ("VPCs", (!vpcs.is_empty()).then_some(Value::List(vpcs))),
    ]))
}

fn record_value(r: &RecordSet) -> Value {
    let records = || {
        Value::List(
            r.values
                .iter()
                .map(|v| Value::fields([("Value", Some(Value::str(v.clone())))]))
                .collect(),
        )
    };
    match &r.alias {
        Some(a) => Value::fields([
            ("Name", Some(Value::str(fqdn(&r.name)))),
            ("Type", Some(Value::str(r.rtype.to_string()))),
            (
                "AliasTarget",
                Some(Value::fields([
                    ("HostedZoneId", Some(Value::str(a.hosted_zone_id.clone()))),
                    ("DNSName", Some(Value::str(a.dns_name.clone()))),
                    ("EvaluateTargetHealth", Some(Value::Bool(false))),
                ])),
            ),
        ]),
        None => Value::fields([
            ("Name", Some(Value::str(fqdn(&r.name)))),
            ("Type", Some(Value::str(r.rtype.to_string()))),
            ("TTL", Some(Value::Int(r.ttl.into()))),
            ("ResourceRecords", Some(records())),
        ]),
    }
}

fn list_record_sets(app: &App, op: &Operation, input: &Input) -> AwsResult {
    let z = own_zone(app, op, input, "HostedZoneId")?;
    let max = max_items(input, 300)?;
    if input.json_str("StartRecordIdentifier")?.is_some() {
        return Err(AwsError::validation(
            "StartRecordIdentifier: Spindle has no routing policies, so no set identifiers",
        ));
    }
    let name = input.json_str("StartRecordName")?;
    let rtype = input.json_str("StartRecordType")?;
    let start = match (name, rtype) {
        (None, Some(_)) => {
            return Err(AwsError::validation(
                "StartRecordType: a value needs StartRecordName as well",
            ))
        }
        (None, None) => None,
        (Some(n), t) => {
            let n = spindle_dns::canonical_name(n)
                .map_err(|e| AwsError::validation(format!("StartRecordName: {e}")))?;
            if let Some(t) = t {
                t.parse::<RecordType>()
                    .map_err(|e| AwsError::validation(format!("StartRecordType: {e}")))?;
            }
            Some((reversed(&n), t.unwrap_or("").to_owned()))
        }
    };
    let mut sets = z.record_sets();
    let key = |r: &RecordSet| (reversed(&r.name), r.rtype.to_string());
    sets.sort_by_key(key);
    let (items, next) = page(&sets, key, start, max);
    Ok(Value::fields([
        (
            "ResourceRecordSets",
            Some(Value::List(items.iter().map(record_value).collect())),
        ),
        ("IsTruncated", Some(Value::Bool(next.is_some()))),
        (
            "NextRecordName",
            next.as_ref().map(|r| Value::str(fqdn(&r.name))),
        ),
        (
            "NextRecordType",
            next.as_ref().map(|r| Value::str(r.rtype.to_string())),
        ),
        ("MaxItems", Some(Value::str(max.to_string()))),
    ]))
}

/// Members of a record set that choose a routing policy, which Spindle doesn't build yet.
const ROUTING: &[&str] = &[
    "SetIdentifier",
    "Weight",
    "Region",
    "Failover",
    "MultiValueAnswer",
    "HealthCheckId",
    "TrafficPolicyInstanceId",
];

/// The batch a request's `ChangeBatch` asks for, or every problem with its position.
fn batch(input: &Input) -> Result<Vec<Change>, Vec<String>> {
    let changes = input.json["ChangeBatch"]["Changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if changes.is_empty() {
        return Err(vec![
            "ChangeBatch.Changes: at least one change is required".into()
        ]);
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let at = format!("Changes[{i}]");
        let mut bad = |m: String| problems.push(format!("{at}: {m}"));
        let action = match c["Action"].as_str() {
            Some("CREATE") => Action::Create,
            Some("UPSERT") => Action::Upsert,
            Some("DELETE") => Action::Delete,
            other => {
                bad(format!("Action: {other:?} is not CREATE, UPSERT or DELETE"));
                continue;
            }
        };
        let r = &c["ResourceRecordSet"];
        let Some(name) = r["Name"].as_str() else {
            bad("ResourceRecordSet.Name: a value is required".into());
            continue;
        };
        let rtype = match r["Type"].as_str().map(str::parse::<RecordType>) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                bad(format!("ResourceRecordSet.Type: {e}"));
                continue;
            }
            None => {
                bad("ResourceRecordSet.Type: a value is required".into());
                continue;
            }
        };
        if let Some(k) = ROUTING.iter().find(|k| r.get(**k).is_some()) {
            bad(format!(
                "ResourceRecordSet.{k}: not supported by Spindle (weighted, failover, latency, multivalue routing and health checks are not built yet)"
            ));
            continue;
        }
        let values: Vec<String> = r["ResourceRecords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v["Value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let alias = r.get("AliasTarget").map(|a| Alias {
            dns_name: a["DNSName"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_owned(),
            hosted_zone_id: a["HostedZoneId"].as_str().unwrap_or("").to_owned(),
        });
        let ttl = match (r["TTL"].as_i64(), &alias) {
            (Some(t), None) => match u32::try_from(t) {
                Ok(t) => t,
                Err(_) => {
                    bad(format!(
                        "ResourceRecordSet.TTL: {t} is not between 0 and {}",
                        spindle_dns::MAX_TTL
                    ));
                    continue;
                }
            },
            (None, None) => {
                bad(
                    "ResourceRecordSet.TTL: a value is required unless AliasTarget is given".into(),
                );
                continue;
            }
            (Some(_), Some(_)) => {
                bad("ResourceRecordSet: TTL and AliasTarget exclude each other".into());
                continue;
            }
            (None, Some(_)) => 60,
        };
        if alias.is_some() && !values.is_empty() {
            bad("ResourceRecordSet: ResourceRecords and AliasTarget exclude each other".into());
            continue;
        }
        out.push(Change {
            action,
            set: RecordSet {
                name: name.to_owned(),
                rtype,
                ttl,
                values,
                alias,
            },
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn invalid_batch(problems: &[String]) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "InvalidChangeBatch",
            status: 400,
        },
        format!(
            "the change batch was refused and nothing changed: {}",
            problems.join("; ")
        ),
    )
}

/// `C` + the zone id without its `Z` + the serial and the submission time (8 hex digits
/// each).
fn change_id(zone_id: &str, serial: u32, at: OffsetDateTime) -> String {
    format!(
        "C{}{serial:08X}{:08X}",
        zone_id.trim_start_matches('Z'),
        at.unix_timestamp() as u32
    )
}

/// The zone id, serial and time a change id holds.
fn parse_change_id(id: &str) -> Option<(String, u32, OffsetDateTime)> {
    let body = id.trim_start_matches("/change/").strip_prefix('C')?;
    if body.len() <= 16 || !body.is_ascii() {
        return None;
    }
    let (zone, tail) = body.split_at(body.len() - 16);
    let serial = u32::from_str_radix(&tail[..8], 16).ok()?;
    let at = u32::from_str_radix(&tail[8..], 16).ok()?;
    Some((
        format!("Z{zone}"),
        serial,
        OffsetDateTime::from_unix_timestamp(at.into()).ok()?,
    ))
}

fn change_info(id: String, at: OffsetDateTime, comment: Option<&str>) -> Value {
    Value::fields([(
        "ChangeInfo",
        Some(Value::fields([
            ("Id", Some(Value::str(format!("/change/{id}")))),
            ("Status", Some(Value::str("INSYNC"))),
            ("SubmittedAt", Some(Value::Time(at))),
            ("Comment", comment.map(Value::str)),
        ])),
    )])
}

async fn change_record_sets(app: &App, op: &Operation, input: &Input) -> AwsResult {
    let id = bare_id(input.json_required("HostedZoneId")?).to_owned();
    input.set_target(op, &format!("hostedzone/{id}"));
    let changes = batch(input).map_err(|p| invalid_batch(&p))?;
    let account = input.caller().account.id.clone();
    let at = OffsetDateTime::now_utc();
    let serial = app
        .route53
        .change_records(&account, &id, changes)
        .await
        .map_err(|e| match e {
            RecordChangeError::NoSuchZone { id } => no_such_zone(&id),
            RecordChangeError::Denied { reason } => AwsError::new(ErrorKind::AccessDenied, reason),
            RecordChangeError::Refused { problems } => {
                invalid_batch(&problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            }
            RecordChangeError::Failed { detail } => AwsError::new(ErrorKind::Internal, detail),
        })?;
    let comment = input.json["ChangeBatch"]["Comment"].as_str();
    Ok(change_info(change_id(&id, serial, at), at, comment))
}

fn get_change(app: &App, op: &Operation, input: &Input) -> AwsResult {
    let id = input.json_required("Id")?;
    let id = id.trim_start_matches("/change/");
    input.set_target(op, &format!("change/{id}"));
    let no_such = || {
        AwsError::new(
            ErrorKind::Service {
                code: "NoSuchChange",
                status: 404,
            },
            format!("A change with the specified change ID does not exist: {id}"),
        )
    };
    let (zone, serial, at) = parse_change_id(id).ok_or_else(no_such)?;
    let snap = app.route53.catalog().snapshot();
    let account = input.caller().account.id.as_str();
    // The zone's owner, or an account with a grant in it (which may have made the change).
    let z = snap
        .zone(&zone)
        .filter(|z| {
            z.owner == account
                || z.grants.iter().any(|g| {
                    g.account == account || g.account == input.caller().account.name.as_str()
                })
        })
        .ok_or_else(no_such)?;
    if z.serial < serial {
        return Err(no_such());
    }
    Ok(change_info(id.to_owned(), at, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_round_trip_and_others_are_refused() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_644_800).unwrap();
        let id = change_id("Z0123456789ABC", 7, at);
        assert_eq!(id.len(), 30, "within Route 53's 32 characters");
        assert_eq!(
            parse_change_id(&format!("/change/{id}")),
            Some(("Z0123456789ABC".to_owned(), 7, at))
        );
        for bad in ["", "C", "X0123", "C12345678", "CZZ0000000G00000000"] {
            assert_eq!(parse_change_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_start_at_the_first_key_at_or_after_the_start() {
        let items = ["a", "b", "c", "d"];
        /// (start, max, the page, the next page's first item)
        type Case<'a> = (Option<&'a str>, usize, &'a [&'a str], Option<&'a str>);
        let cases: &[Case] = &[
            (None, 2, &["a", "b"], Some("c")),
            (Some("b"), 2, &["b", "c"], Some("d")),
            (Some("bb"), 5, &["c", "d"], None),
            (Some("z"), 1, &[], None),
        ];
        for (start, max, want, next) in cases {
            let (got, n) = page(&items, |s| s.to_string(), start.map(str::to_owned), *max);
            assert_eq!((got.as_slice(), n), (*want, *next), "{start:?} {max}");
        }
    }

    #[test]
    fn names_sort_by_reversed_labels() {
        let mut names = vec![
            "www.twine.test",
            "twine.test",
            "a.twine.test",
            "b.a.twine.test",
        ];
        names.sort_by_key(|n| reversed(n));
        assert_eq!(
            names,
            [
                "twine.test",
                "a.twine.test",
                "b.a.twine.test",
                "www.twine.test"
            ]
        );
    }
}
