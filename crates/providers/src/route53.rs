//! `AWS::Route53::{HostedZone, RecordSet, RecordSetGroup}` on the DNS engine
//! (`spindle-dns`).
//!
//! | Type | `Ref` | `Fn::GetAtt` | Changes in place |
//! |---|---|---|---|
//! | `HostedZone` | its id (`Z…`) | `Id`, `NameServers` | `HostedZoneConfig`, `VPCs`, `HostedZoneTags` |
//! | `RecordSet` | the record's name | — | everything (a new name, type or zone is a delete and a create in one batch) |
//! | `RecordSetGroup` | a derived id | — | `RecordSets` (one batch: sets no longer listed are deleted) |
//!
//! Every resource's change is one change batch, validated whole and applied atomically (see
//! `spindle_dns::Catalog`); the zones are saved as one document (`route53` in the daemon's
//! store) before the new snapshot is served, so a failed save changes nothing.
//!
//! **Aliases.** `AliasTarget.DNSName` naming a load balancer's `DNSName` answers with the
//! load balancer's address (resolved when the record is written; an A alias needs an IPv4
//! address). **Zones of other accounts.** The account that creates a hosted zone owns it;
//! another account may write a record into it only if [`ZoneAccess::may_write`] says so (the
//! daemon matches the zone's grants: `HostedZoneTags` keyed `spindle:grant:ACCOUNT`, the
//! value the names, `*.dev.twine.test` for all below it), and a refusal is reported to
//! [`ZoneAccess::refused`] (the daemon's audit log). A private zone (`VPCs` given) is recorded but not served on the
//! public address. Not built yet: routing policies and health checks (refused by name).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use spindle_dns::{Action, Alias, Catalog, Change, RecordSet, RecordType, ZoneData};
use spindle_model::AccountId;
use spindle_runtime::StateDoc;
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput,
    ProviderRegistry, ReadOutput, ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

mod changes;
pub use changes::RecordChangeError;

use crate::route53_spec::{GroupSpec, RecordSetSpec, SetSpec, ZoneRef, ZoneSpec};
use crate::{derived_id, scoped_token, Elb, Kind};

/// The name of the providers' state document.
pub const ROUTE53_DOC: &str = "route53";

/// Who may write into a zone another account owns, and where refusals are recorded.
pub trait ZoneAccess: Send + Sync {
    /// Whether `writer` may write record `name` into `zone` (owned by another account).
    fn may_write(&self, writer: &AccountId, zone: &ZoneData, name: &str) -> bool;
    /// A change refused because `writer` may not write `name` into `zone`.
    fn refused(&self, writer: &AccountId, zone: &ZoneData, name: &str, reason: &str);
}

/// The hosted zones and the providers over them.
pub struct Route53 {
    catalog: Arc<Catalog>,
    doc: Option<Arc<dyn StateDoc>>,
    elb: OnceLock<Arc<Elb>>,
    access: OnceLock<Arc<dyn ZoneAccess>>,
    /// One resource change at a time: each reads the zones, then changes them.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Route53 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53")
            .field("doc", &self.doc)
            .finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Failed(e.to_string())
}

impl Route53 {
    /// Opens the zones saved in `doc` (none: an empty catalog kept in memory only).
    pub fn open_with(doc: Option<Arc<dyn StateDoc>>) -> Result<Arc<Self>, ProviderError> {
        let catalog = match doc.as_ref().map(|d| d.load()).transpose() {
            Err(e) => return Err(failed(e)),
            Ok(Some(Some(body))) => {
                Catalog::from_json(&body).map_err(|e| failed(format!("{}: {e}", ROUTE53_DOC)))?
            }
            Ok(_) => Catalog::new(),
        };
        Ok(Arc::new(Route53 {
            catalog: Arc::new(catalog),
            doc,
            elb: OnceLock::new(),
            access: OnceLock::new(),
            lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The served zones (the DNS server answers from this).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    /// Alias targets resolve through these load balancers.
    pub fn set_elb(&self, elb: Arc<Elb>) {
        let _ = self.elb.set(elb);
    }

    /// Cross-account writes are decided (and refusals recorded) by `access`.
    pub fn set_access(&self, access: Arc<dyn ZoneAccess>) {
        let _ = self.access.set(access);
    }

    pub fn register(self: &Arc<Self>, registry: &mut ProviderRegistry) {
        for kind in crate::kind::kinds_of(crate::Group::Route53) {
            registry.register(
                kind.type_name(),
                Arc::new(Route53Provider {
                    r53: self.clone(),
                    kind,
                }),
            );
        }
    }

    fn save(&self, body: &[u8]) -> Result<(), String> {
        match &self.doc {
            Some(d) => d.save(body).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The zone a record goes in: by id, or by name (the caller's own zone first).
    fn find_zone(&self, account: &AccountId, zone: &ZoneRef) -> Result<ZoneData, ProviderError> {
        let snap = self.catalog.snapshot();
        let found = match zone {
            ZoneRef::Id(id) => snap.zone(id).cloned(),
            ZoneRef::Name(n) => {
                let mut named: Vec<&ZoneData> = snap
                    .zones
                    .values()
                    .map(|z| &z.data)
                    .filter(|z| &z.name == n)
                    .collect();
                named.sort_by_key(|z| (z.owner != account.as_str(), z.private));
                named.first().map(|z| (*z).clone())
            }
        };
        found.ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "no hosted zone {}",
                match zone {
                    ZoneRef::Id(id) => format!("with id `{id}`"),
                    ZoneRef::Name(n) => format!("named `{n}`"),
                }
            ))
        })
    }

    /// Refuses (and reports) a name `account` may not write into `zone`.
    fn check_access(
        &self,
        account: &AccountId,
        zone: &ZoneData,
        name: &str,
    ) -> Result<(), ProviderError> {
        if zone.owner == account.as_str() {
            return Ok(());
        }
        if let Some(a) = self.access.get() {
            if a.may_write(account, zone, name) {
                return Ok(());
            }
        }
        let reason = format!(
            "account {account} may not write `{name}` into hosted zone `{}` ({}), which account {} owns: the owner must grant it `route53:ChangeResourceRecordSets` on that name",
            zone.name, zone.id, zone.owner
        );
        if let Some(a) = self.access.get() {
            a.refused(account, zone, name, &reason);
        }
        Err(ProviderError::InvalidRequest(reason))
    }

    /// The record set a spec makes, with an alias resolved to its load balancer's address.
    fn record_set(&self, s: &SetSpec) -> Result<RecordSet, ProviderError> {
        let Some(alias) = &s.alias else {
            return Ok(RecordSet {
                name: s.name.clone(),
                rtype: s.rtype,
                ttl: s.ttl,
                values: s.values.clone(),
                alias: None,
            });
        };
        let addr = self
            .elb
            .get()
            .and_then(|e| e.address_of_dns_name(&alias.dns_name))
            .ok_or_else(|| {
                ProviderError::InvalidRequest(format!(
                    "{}: AliasTarget.DNSName `{}` is no load balancer's DNSName",
                    s.name, alias.dns_name
                ))
            })?;
        let fits = matches!(
            (s.rtype, addr),
            (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_))
        );
        if !fits {
            return Err(ProviderError::InvalidRequest(format!(
                "{}: the load balancer's address {addr} doesn't fit a {} record",
                s.name, s.rtype
            )));
        }
        Ok(RecordSet {
            name: s.name.clone(),
            rtype: s.rtype,
            ttl: 60,
            values: vec![addr.to_string()],
            alias: Some(Alias {
                dns_name: alias.dns_name.clone(),
                hosted_zone_id: alias.hosted_zone_id.clone(),
            }),
        })
    }

    fn apply(&self, zone: &ZoneData, batch: &[Change]) -> Result<(), ProviderError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.catalog
            .change(&zone.id, batch, &|b| self.save(b))
            .map(|_| ())
            .map_err(|e| match e {
                spindle_dns::DnsError::Refused { .. } => {
                    ProviderError::InvalidRequest(e.to_string())
                }
                other => failed(other),
            })
    }

    /// The batch that makes `zone` hold `want` where it held `had` (sets of this resource).
    fn diff(zone: &ZoneData, had: &[(String, RecordType)], want: &[RecordSet]) -> Vec<Change> {
        let mut batch = Vec::new();
        for key in had {
            if want.iter().any(|w| (&w.name, w.rtype) == (&key.0, key.1)) {
                continue;
            }
            if let Some(cur) = zone.rrsets.get(key) {
                batch.push(Change {
                    action: Action::Delete,
                    set: cur.clone(),
                });
            }
        }
        for w in want {
            if zone.rrsets.get(&(w.name.clone(), w.rtype)) != Some(w) {
                batch.push(Change {
                    action: Action::Upsert,
                    set: w.clone(),
                });
            }
        }
        batch
    }
}

/// `Z` and 13 characters from the scoped token, Route 53's id shape.
fn zone_id(cx: &ResourceCx<'_>) -> String {
    let d = Sha256::digest(format!("hostedzone/{}", scoped_token(cx)).as_bytes());
    format!("Z{}", &hex::encode_upper(d)[..13])
}

struct Route53Provider {
    r53: Arc<Route53>,
    kind: Kind,
}

fn invalid(e: String) -> ProviderError {
    ProviderError::InvalidRequest(e)
}

/// What one resource's properties ask for: its zone and its record sets.
fn wanted(
    kind: Kind,
    props: &BTreeMap<String, Value>,
) -> Result<(ZoneRef, Vec<SetSpec>), ProviderError> {
    match kind {
        Kind::RecordSet => RecordSetSpec::parse(props).map(|s| (s.zone, vec![s.set])),
        _ => GroupSpec::parse(props).map(|s| (s.zone, s.sets)),
    }
    .map_err(invalid)
}

impl Route53Provider {
    fn zone_output(&self, z: &ZoneData) -> ProviderOutput {
        let mut attributes = BTreeMap::new();
        attributes.insert("Id".into(), Value::str(&z.id));
        attributes.insert(
            "NameServers".into(),
            Value::List(vec![Value::String(format!("ns1.{}", z.name))]),
        );
        ProviderOutput {
            physical_id: z.id.clone(),
            attributes,
        }
    }

    async fn create_zone(
        &self,
        cx: &ResourceCx<'_>,
        props: &BTreeMap<String, Value>,
    ) -> Result<ProviderOutput, ProviderError> {
        let spec = ZoneSpec::parse(props).map_err(invalid)?;
        let id = zone_id(cx);
        if let Some(z) = self.r53.catalog.snapshot().zone(&id) {
            return Ok(self.zone_output(z));
        }
        let account = cx.account()?;
        let mut z = ZoneData::new(&id, &spec.name, account.as_str()).map_err(invalid)?;
        z.comment = spec.comment;
        z.grants = spec.grants;
        z.private = !spec.vpcs.is_empty();
        z.vpcs = spec.vpcs;
        self.r53
            .catalog
            .create_zone(z.clone(), &|b| self.r53.save(b))
            .map_err(|e| match e {
                spindle_dns::DnsError::ZoneExists { .. } => {
                    ProviderError::AlreadyExists(e.to_string())
                }
                other => failed(other),
            })?;
        Ok(self.zone_output(&z))
    }

    /// Writes a record resource: the sets it held before (`had`) become `props`' sets.
    async fn write_sets(
        &self,
        cx: &ResourceCx<'_>,
        props: &BTreeMap<String, Value>,
        old: Option<&BTreeMap<String, Value>>,
    ) -> Result<ProviderOutput, ProviderError> {
        let account = cx.account()?;
        let (zref, specs) = wanted(self.kind, props)?;
        let zone = self.r53.find_zone(&account, &zref)?;
        let mut want = Vec::new();
        for s in &specs {
            self.r53.check_access(&account, &zone, &s.name)?;
            want.push(self.r53.record_set(s)?);
        }
        let mut had = Vec::new();
        if let Some(old) = old {
            if let Ok((old_ref, old_specs)) = wanted(self.kind, old) {
                let old_zone = self.r53.find_zone(&account, &old_ref).ok();
                if let Some(oz) = old_zone.filter(|oz| oz.id != zone.id) {
                    // Moving to another zone: delete from the old one first.
                    let keys: Vec<_> = old_specs
                        .iter()
                        .map(|s| (s.name.clone(), s.rtype))
                        .collect();
                    self.r53.apply(&oz, &Route53::diff(&oz, &keys, &[]))?;
                } else {
                    had = old_specs
                        .iter()
                        .map(|s| (s.name.clone(), s.rtype))
                        .collect();
                }
            }
        }
        // A create must not take over a set someone else made.
        if old.is_none() {
            for w in &want {
                if let Some(cur) = zone.rrsets.get(&(w.name.clone(), w.rtype)) {
                    if cur != w {
                        return Err(ProviderError::AlreadyExists(format!(
                            "record set {} {} in zone `{}`",
                            w.name, w.rtype, zone.name
                        )));
                    }
                }
            }
        }
        self.r53.apply(&zone, &Route53::diff(&zone, &had, &want))?;
        Ok(ProviderOutput {
            physical_id: match self.kind {
                Kind::RecordSet => specs[0].name.clone(),
                _ => derived_id("rrsetgroup", cx),
            },
            attributes: BTreeMap::new(),
        })
    }

    async fn delete_sets(
        &self,
        cx: &ResourceCx<'_>,
        props: &BTreeMap<String, Value>,
    ) -> Result<(), ProviderError> {
        let account = cx.account()?;
        let Ok((zref, specs)) = wanted(self.kind, props) else {
            return Ok(());
        };
        let Ok(zone) = self.r53.find_zone(&account, &zref) else {
            return Ok(());
        };
        let keys: Vec<_> = specs.iter().map(|s| (s.name.clone(), s.rtype)).collect();
        self.r53.apply(&zone, &Route53::diff(&zone, &keys, &[]))
    }
}

impl Provider for Route53Provider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let _g = self.r53.lock.lock().await;
            match self.kind {
                Kind::HostedZone => self.create_zone(&req.cx, &req.properties).await,
                _ => self.write_sets(&req.cx, &req.properties, None).await,
            }
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let _g = self.r53.lock.lock().await;
            if self.kind != Kind::HostedZone {
                return self
                    .write_sets(&req.cx, &req.properties, Some(&req.previous_properties))
                    .await;
            }
            let spec = ZoneSpec::parse(&req.properties).map_err(invalid)?;
            let cur = self
                .r53
                .catalog
                .snapshot()
                .zone(&req.physical_id)
                .cloned()
                .ok_or_else(|| {
                    ProviderError::NotFound(format!("hosted zone {}", req.physical_id))
                })?;
            if spec.name != cur.name {
                return Err(ProviderError::InvalidRequest(format!(
                    "a hosted zone's Name can't change in place (`{}` to `{}`): replace the resource",
                    cur.name, spec.name
                )));
            }
            self.r53
                .catalog
                .update_zone(&req.physical_id, &|b| self.r53.save(b), |z| {
                    z.comment = spec.comment.clone();
                    z.grants = spec.grants.clone();
                    z.private = !spec.vpcs.is_empty();
                    z.vpcs = spec.vpcs.clone();
                })
                .map_err(failed)?;
            let z = self
                .r53
                .catalog
                .snapshot()
                .zone(&req.physical_id)
                .cloned()
                .unwrap_or(cur);
            Ok(self.zone_output(&z))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let _g = self.r53.lock.lock().await;
            if self.kind != Kind::HostedZone {
                return self.delete_sets(&req.cx, &req.properties).await;
            }
            let snap = self.r53.catalog.snapshot();
            let Some(z) = snap.zone(&req.physical_id) else {
                return Ok(());
            };
            let held = z
                .rrsets
                .keys()
                .filter(|(n, t)| !(n == &z.name && *t == RecordType::NS))
                .count();
            if held > 0 {
                return Err(ProviderError::Failed(format!(
                    "hosted zone `{}` still holds {held} record set(s); delete them first (Route 53's HostedZoneNotEmpty)",
                    z.name
                )));
            }
            self.r53
                .catalog
                .delete_zone(&req.physical_id, &|b| self.r53.save(b))
                .map_err(failed)
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let snap = self.r53.catalog.snapshot();
            if self.kind == Kind::HostedZone {
                let id = req.physical_id.clone().unwrap_or_else(|| zone_id(&req.cx));
                return Ok(snap.zone(&id).map(|z| {
                    let out = self.zone_output(z);
                    ReadOutput {
                        physical_id: out.physical_id,
                        properties: req.properties.clone(),
                        attributes: out.attributes,
                    }
                }));
            }
            let account = req.cx.account()?;
            let (zref, specs) = wanted(self.kind, &req.properties)?;
            let Ok(zone) = self.r53.find_zone(&account, &zref) else {
                return Ok(None);
            };
            let present = specs
                .iter()
                .all(|s| zone.rrsets.contains_key(&(s.name.clone(), s.rtype)));
            Ok(present.then(|| ReadOutput {
                physical_id: match self.kind {
                    Kind::RecordSet => specs[0].name.clone(),
                    _ => derived_id("rrsetgroup", &req.cx),
                },
                properties: req.properties.clone(),
                attributes: BTreeMap::new(),
            }))
        })
    }
}
