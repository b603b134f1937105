//! The served zones: an immutable [`Snapshot`] that readers load with one atomic pointer read,
//! and [`Catalog`], which makes the next snapshot from a change and swaps it in whole, so no
//! query ever sees half a batch.
//!
//! Writers are serialized by one lock. A write computes the next state, hands it to the
//! caller's `persist` (the daemon saves it to its store), and swaps it in only if that
//! succeeded: a failed save changes neither what is stored nor what is served.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hickory_proto::rr::Record;
use serde::{Deserialize, Serialize};

use crate::change::{plan, Change};
use crate::zone::{in_zone, parent, RecordType, ZoneData};
use crate::DnsError;

/// A name's record sets, each as its wire records.
pub(crate) type Node = Vec<(RecordType, Arc<[Record]>)>;

/// One zone ready to answer from: its data and its records by owner name.
#[derive(Debug)]
pub struct CompiledZone {
    pub data: ZoneData,
    pub(crate) nodes: HashMap<String, Node>,
    /// Names that own no records but have descendants that do (empty non-terminals):
    /// a query for one is NODATA, not NXDOMAIN.
    pub(crate) empty_non_terminals: HashSet<String>,
    pub(crate) soa: Record,
}

impl CompiledZone {
    /// `next` compiled from `prev`: only the names a batch touched are parsed again, so a
    /// small batch on a big zone costs little more than the batch.
    fn recompile(
        prev: &CompiledZone,
        next: ZoneData,
        changes: &[Change],
    ) -> Result<Self, DnsError> {
        let bad = |detail: String| DnsError::Corrupt {
            zone: next.name.clone(),
            detail,
        };
        let mut nodes = prev.nodes.clone();
        let mut touched: Vec<String> = changes
            .iter()
            .filter_map(|c| crate::zone::canonical_name(&c.set.name).ok())
            .collect();
        touched.sort();
        touched.dedup();
        for name in &touched {
            let mut node: Node = Vec::new();
            for set in next
                .rrsets
                .range((name.clone(), RecordType::A)..)
                .take_while(|((n, _), _)| n == name)
                .map(|(_, s)| s)
            {
                node.push((set.rtype, next.wire_records(set).map_err(bad)?.into()));
            }
            if node.is_empty() {
                nodes.remove(name);
            } else {
                nodes.insert(name.clone(), node);
            }
        }
        let empty_non_terminals = empty_non_terminals(&nodes, &next.name);
        let soa = next.soa_record().map_err(bad)?;
        Ok(CompiledZone {
            data: next,
            nodes,
            empty_non_terminals,
            soa,
        })
    }

    pub fn compile(data: ZoneData) -> Result<Self, DnsError> {
        let bad = |detail: String| DnsError::Corrupt {
            zone: data.name.clone(),
            detail,
        };
        let mut nodes: HashMap<String, Node> = HashMap::new();
        for set in data.rrsets.values() {
            let records = data.wire_records(set).map_err(bad)?;
            nodes
                .entry(set.name.clone())
                .or_default()
                .push((set.rtype, records.into()));
        }
        let empty_non_terminals = empty_non_terminals(&nodes, &data.name);
        let soa = data.soa_record().map_err(bad)?;
        Ok(CompiledZone {
            data,
            nodes,
            empty_non_terminals,
            soa,
        })
    }
}

/// Names that own nothing but are ancestors (within the zone) of names that do.
fn empty_non_terminals(nodes: &HashMap<String, Node>, zone: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for name in nodes.keys() {
        let mut p = parent(name);
        while let Some(n) = p {
            if !in_zone(n, zone) || nodes.contains_key(n) || !out.insert(n.to_owned()) {
                break;
            }
            p = parent(n);
        }
    }
    out
}

/// Who is asking, which decides the zones that answer: the public listener sees public zones
/// only; a VPC's resolver sees the private zones associated with that VPC first, then the
/// public ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    Public,
    /// The resolver of the VPC with this id.
    Vpc(String),
}

/// Every served zone, as one immutable value.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// By zone id.
    pub zones: BTreeMap<String, Arc<CompiledZone>>,
    /// Public zones by name (private ones are never answered on the public listener).
    by_name: HashMap<String, Arc<CompiledZone>>,
    /// Private zones by associated VPC id, then by name.
    private: HashMap<String, HashMap<String, Arc<CompiledZone>>>,
}

impl Snapshot {
    fn from_zones(zones: BTreeMap<String, Arc<CompiledZone>>) -> Self {
        let by_name = zones
            .values()
            .filter(|z| !z.data.private)
            .map(|z| (z.data.name.clone(), z.clone()))
            .collect();
        let mut private: HashMap<String, HashMap<String, Arc<CompiledZone>>> = HashMap::new();
        for z in zones.values().filter(|z| z.data.private) {
            for vpc in &z.data.vpcs {
                private
                    .entry(vpc.clone())
                    .or_default()
                    .entry(z.data.name.clone())
                    .or_insert_with(|| z.clone());
            }
        }
        Snapshot {
            zones,
            by_name,
            private,
        }
    }

    /// The most specific public zone holding `name` (canonical).
    pub fn zone_for(&self, name: &str) -> Option<&Arc<CompiledZone>> {
        most_specific(&self.by_name, name)
    }

    /// The zone that answers `name` (canonical) for `view`. Inside a VPC, as Route 53
    /// Resolver does, the most specific private zone associated with the VPC wins whenever
    /// one holds the name, even if a public zone is more specific, and a name missing from
    /// that private zone is NXDOMAIN there (split horizon: the public zone of the same name
    /// is not consulted).
    pub fn zone_in(&self, view: &View, name: &str) -> Option<&Arc<CompiledZone>> {
        if let View::Vpc(vpc) = view {
            if let Some(z) = self.private.get(vpc).and_then(|m| most_specific(m, name)) {
                return Some(z);
            }
        }
        self.zone_for(name)
    }

    /// A zone by id.
    pub fn zone(&self, id: &str) -> Option<&ZoneData> {
        self.zones.get(id).map(|z| &z.data)
    }
}

fn most_specific<'s>(
    by_name: &'s HashMap<String, Arc<CompiledZone>>,
    name: &str,
) -> Option<&'s Arc<CompiledZone>> {
    let mut n = Some(name);
    while let Some(cur) = n {
        if let Some(z) = by_name.get(cur) {
            return Some(z);
        }
        n = parent(cur);
    }
    None
}

/// A zone that `zone` may not coexist with: a public zone of the same name (one name, one
/// public zone) or a private zone of the same name associated with one of the same VPCs
/// (Route 53's `ConflictingDomainExists`). A private and a public zone of one name coexist.
fn conflicts(zones: &BTreeMap<String, Arc<CompiledZone>>, zone: &ZoneData) -> bool {
    zones.values().any(|z| {
        z.data.id != zone.id
            && z.data.name == zone.name
            && z.data.private == zone.private
            && (!zone.private || z.data.vpcs.iter().any(|v| zone.vpcs.contains(v)))
    })
}

/// What the catalog stores: every zone's data.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    zones: Vec<ZoneData>,
}

/// The zones being served, changed only by whole-snapshot swaps.
#[derive(Debug, Default)]
pub struct Catalog {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
}

/// Saves the catalog's next state; an error keeps the current one.
pub type Persist<'a> = &'a dyn Fn(&[u8]) -> Result<(), String>;

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog from what [`Catalog::to_json`] (through `persist`) saved.
    pub fn from_json(body: &[u8]) -> Result<Self, DnsError> {
        let stored: Stored = serde_json::from_slice(body).map_err(|e| DnsError::Stored {
            detail: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        let mut zones = BTreeMap::new();
        for z in stored.zones {
            zones.insert(z.id.clone(), Arc::new(CompiledZone::compile(z)?));
        }
        Ok(Catalog {
            current: ArcSwap::from_pointee(Snapshot::from_zones(zones)),
            writer: Mutex::new(()),
        })
    }

    /// The current snapshot: one atomic load, never half a change.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Creates a zone. A public zone's name must not be served already.
    pub fn create_zone(&self, zone: ZoneData, persist: Persist<'_>) -> Result<(), DnsError> {
        self.write(persist, |zones| {
            if zones.contains_key(&zone.id) {
                return Err(DnsError::ZoneExists {
                    name: zone.name.clone(),
                });
            }
            if conflicts(zones, &zone) {
                return Err(DnsError::ZoneExists {
                    name: zone.name.clone(),
                });
            }
            zones.insert(zone.id.clone(), Arc::new(CompiledZone::compile(zone)?));
            Ok(())
        })
    }

    /// Replaces a zone's settings (comment, VPCs), keeping its records.
    pub fn update_zone(
        &self,
        id: &str,
        persist: Persist<'_>,
        f: impl FnOnce(&mut ZoneData),
    ) -> Result<(), DnsError> {
        self.write(persist, |zones| {
            let mut data = zones
                .get(id)
                .ok_or_else(|| DnsError::NoSuchZone { id: id.to_owned() })?
                .data
                .clone();
            f(&mut data);
            if conflicts(zones, &data) {
                return Err(DnsError::ZoneExists { name: data.name });
            }
            zones.insert(id.to_owned(), Arc::new(CompiledZone::compile(data)?));
            Ok(())
        })
    }

    /// Deletes a zone. Deleting a zone that is gone succeeds.
    pub fn delete_zone(&self, id: &str, persist: Persist<'_>) -> Result<(), DnsError> {
        if !self.snapshot().zones.contains_key(id) {
            return Ok(());
        }
        self.write(persist, |zones| {
            zones.remove(id);
            Ok(())
        })
    }

    /// Applies a change batch to zone `id`, all or nothing; returns the zone's new serial.
    pub fn change(
        &self,
        id: &str,
        batch: &[Change],
        persist: Persist<'_>,
    ) -> Result<u32, DnsError> {
        let mut serial = 0;
        self.write(persist, |zones| {
            let cur = zones
                .get(id)
                .ok_or_else(|| DnsError::NoSuchZone { id: id.to_owned() })?;
            let next = plan(&cur.data, batch).map_err(|problems| DnsError::Refused {
                zone: cur.data.name.clone(),
                problems,
            })?;
            serial = next.serial;
            let compiled = CompiledZone::recompile(cur, next, batch)?;
            zones.insert(id.to_owned(), Arc::new(compiled));
            Ok(())
        })?;
        Ok(serial)
    }

    /// The whole state as stored.
    pub fn to_json(&self) -> Vec<u8> {
        encode(&self.snapshot().zones)
    }

    fn write(
        &self,
        persist: Persist<'_>,
        f: impl FnOnce(&mut BTreeMap<String, Arc<CompiledZone>>) -> Result<(), DnsError>,
    ) -> Result<(), DnsError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut zones = self.current.load().zones.clone();
        f(&mut zones)?;
        persist(&encode(&zones)).map_err(|detail| DnsError::Save { detail })?;
        self.current.store(Arc::new(Snapshot::from_zones(zones)));
        Ok(())
    }
}

fn encode(zones: &BTreeMap<String, Arc<CompiledZone>>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        zones: Vec<&'a ZoneData>,
    }
    serde_json::to_vec(&Out {
        zones: zones.values().map(|z| &z.data).collect(),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Action;
    use crate::zone::RecordSet;

    fn ok(_: &[u8]) -> Result<(), String> {
        Ok(())
    }

    fn a(name: &str, ip: &str) -> Change {
        Change {
            action: Action::Create,
            set: RecordSet {
                name: name.into(),
                rtype: RecordType::A,
                ttl: 60,
                values: vec![ip.into()],
                alias: None,
            },
        }
    }

    #[test]
    fn a_failed_save_or_a_bad_batch_changes_nothing_and_a_good_one_raises_the_serial() {
        let c = Catalog::new();
        c.create_zone(ZoneData::new("Z1", "twine.test", "1").unwrap(), &ok)
            .unwrap();
        let before = c.snapshot();
        let fail = |_: &[u8]| Err("disk full".to_string());
        let e = c.change("Z1", &[a("www.twine.test", "192.0.2.1")], &fail);
        assert!(matches!(e, Err(DnsError::Save { .. })), "{e:?}");
        let e = c.change(
            "Z1",
            &[a("www.twine.test", "192.0.2.1"), a("x.twine.test", "nope")],
            &ok,
        );
        assert!(matches!(e, Err(DnsError::Refused { .. })), "{e:?}");
        assert!(
            Arc::ptr_eq(&before, &c.snapshot()),
            "nothing was swapped in"
        );
        assert_eq!(
            c.change("Z1", &[a("www.twine.test", "192.0.2.1")], &ok)
                .unwrap(),
            2
        );
        assert_eq!(
            c.change("Z1", &[a("v.twine.test", "192.0.2.1")], &ok)
                .unwrap(),
            3
        );
        let again = Catalog::from_json(&c.to_json()).unwrap();
        assert_eq!(again.snapshot().zone("Z1"), c.snapshot().zone("Z1"));
        assert!(again.snapshot().zone_for("a.b.www.twine.test").is_some());
        assert!(again.snapshot().zone_for("twine.example").is_none());
    }

    #[test]
    fn an_incremental_recompile_equals_a_full_compile() {
        let c = Catalog::new();
        c.create_zone(ZoneData::new("Z1", "twine.test", "1").unwrap(), &ok)
            .unwrap();
        let del = |name: &str, ip: &str| Change {
            action: Action::Delete,
            ..a(name, ip)
        };
        let batches = [
            vec![
                a("x.a.b.twine.test", "192.0.2.1"),
                a("www.twine.test", "192.0.2.2"),
            ],
            vec![
                a("b.twine.test", "192.0.2.3"),
                del("www.twine.test", "192.0.2.2"),
            ],
            vec![del("x.a.b.twine.test", "192.0.2.1")],
        ];
        for batch in batches {
            c.change("Z1", &batch, &ok).unwrap();
            let snap = c.snapshot();
            let inc = &snap.zones["Z1"];
            let full = CompiledZone::compile(inc.data.clone()).unwrap();
            let keys = |z: &CompiledZone| {
                let mut k: Vec<(String, Vec<String>)> = z
                    .nodes
                    .iter()
                    .map(|(n, sets)| {
                        (
                            n.clone(),
                            sets.iter()
                                .flat_map(|(_, r)| r.iter().map(|r| r.to_string()))
                                .collect(),
                        )
                    })
                    .collect();
                k.sort();
                k
            };
            assert_eq!(keys(inc), keys(&full));
            assert_eq!(inc.empty_non_terminals, full.empty_non_terminals);
        }
        let snap = c.snapshot();
        assert!(
            snap.zones["Z1"].empty_non_terminals.is_empty(),
            "a.b is gone with its only child"
        );
    }

    #[test]
    fn a_public_zone_name_is_served_once() {
        let c = Catalog::new();
        c.create_zone(ZoneData::new("Z1", "twine.test", "1").unwrap(), &ok)
            .unwrap();
        let e = c.create_zone(ZoneData::new("Z2", "Twine.Test.", "2").unwrap(), &ok);
        assert!(matches!(e, Err(DnsError::ZoneExists { .. })), "{e:?}");
        let mut private = ZoneData::new("Z3", "twine.test", "2").unwrap();
        private.private = true;
        c.create_zone(private, &ok).unwrap();
        assert_eq!(c.snapshot().zone_for("twine.test").unwrap().data.id, "Z1");
    }
}
