//! Route handlers for hosted zones: read-only views of what the `AWS::Route53::*` stack
//! resources made, and a test query answered by the DNS server's own code.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use spindle_dns::ZoneData;
use spindle_model::dns::{DnsAnswer, HostedZoneInfo, RecordSetInfo};

type Res<T> = Result<T, ApiError>;

fn zone_info(z: &ZoneData) -> HostedZoneInfo {
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

pub async fn zones(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<HostedZoneInfo>>> {
    let a = app.scope(&call, &account, format!("account/{account}/dns/zones"))?;
    let snap = app.route53.catalog().snapshot();
    let mut out: Vec<HostedZoneInfo> = snap
        .zones
        .values()
        .filter(|z| z.data.owner == a.id.as_str())
        .map(|z| zone_info(&z.data))
        .collect();
    out.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(Json(out))
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
    let want = zone.trim_end_matches('.').to_ascii_lowercase();
    let z = snap
        .zones
        .values()
        .map(|z| &z.data)
        .find(|z| z.owner == a.id.as_str() && (z.id == zone || z.name == want))
        .ok_or_else(|| {
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
