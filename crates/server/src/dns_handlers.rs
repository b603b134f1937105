//! Route handlers for hosted zones: read-only views of what the `AWS::Route53::*` stack
//! resources made, and a test query answered by the DNS server's own code.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use spindle_dns::{Snapshot, ZoneData};
use spindle_model::dns::{DnsAnswer, HostedZoneInfo, RecordSetInfo};

type Res<T> = Result<T, ApiError>;

pub(crate) fn zone_info(z: &ZoneData) -> HostedZoneInfo {
    HostedZoneInfo {
        id: z.id.clone(),
        name: z.name.clone(),
        owner: z.owner.clone(),
        comment: z.comment.clone(),
        private: z.private,
        vpcs: z.vpcs.clone(),
        serial: z.serial,
        record_sets: z.rrsets.len() + 1,
    }
}

/// The hosted zones `owner` (an account id) owns, by name. The REST routes and the AWS
/// endpoint's Route 53 calls both list through here.
pub(crate) fn owned_zones<'s>(snap: &'s Snapshot, owner: &str) -> Vec<&'s ZoneData> {
    let mut out: Vec<&ZoneData> = snap
        .zones
        .values()
        .map(|z| &z.data)
        .filter(|z| z.owner == owner)
        .collect();
    out.sort_by(|x, y| x.name.cmp(&y.name));
    out
}

/// One of `owner`'s hosted zones, by id or name; another account's zone is not found.
pub(crate) fn owned_zone<'s>(snap: &'s Snapshot, owner: &str, zone: &str) -> Option<&'s ZoneData> {
    let want = zone.trim_end_matches('.').to_ascii_lowercase();
    snap.zones
        .values()
        .map(|z| &z.data)
        .find(|z| z.owner == owner && (z.id == zone || z.name == want))
}

pub async fn zones(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<HostedZoneInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/dns/zones"))?;
    let snap = app.route53.catalog().snapshot();
    Ok(Json(
        owned_zones(&snap, a.id.as_str())
            .into_iter()
            .map(zone_info)
            .collect(),
    ))
}

pub async fn records(
    State(app): State<App>,
    Path((account, zone)): Path<(String, String)>,
    call: Call,
) -> Res<Json<Vec<RecordSetInfo>>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/dns/zones/{zone}"),
    )?;
    let snap = app.route53.catalog().snapshot();
    let z = owned_zone(&snap, a.id.as_str(), &zone).ok_or_else(|| {
        ApiError::not_found(format!("hosted zone `{zone}` not found"))
            .with_hint("`spindle dns zones` shows the account's hosted zones")
    })?;
    Ok(Json(
        z.record_sets()
            .into_iter()
            .map(|r| RecordSetInfo {
                name: r.name,
                rtype: r.rtype.to_string(),
                ttl: r.ttl,
                values: r.values,
                alias: r.alias.map(|a| a.dns_name),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    rtype: String,
}

fn default_type() -> String {
    "A".into()
}

pub async fn test(
    State(app): State<App>,
    Path(account): Path<String>,
    Query(q): Query<TestQuery>,
    call: Call,
) -> Res<Json<DnsAnswer>> {
    app.scope(&call, &account, format!("account/{account}/dns/test"))?;
    let snap = app.route53.catalog().snapshot();
    let t = spindle_dns::test_answer(&snap, &q.name, &q.rtype).map_err(ApiError::bad_request)?;
    Ok(Json(DnsAnswer {
        name: q.name,
        rtype: q.rtype.to_ascii_uppercase(),
        rcode: t.rcode,
        authoritative: t.authoritative,
        answers: t.answers,
        authority: t.authority,
    }))
}
