//! Change batches (Route 53's `ChangeResourceRecordSets`): validated all-or-nothing against a
//! zone, every problem reported with the position of its change. [`plan`] is pure: it returns
//! the zone the batch makes (serial one higher) or the problems, and changes nothing.

use serde::{Deserialize, Serialize};

use crate::zone::{
    canonical_name, in_zone, parse_soa, parse_value, RecordSet, RecordType, ZoneData,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Create,
    Upsert,
    Delete,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Create => "CREATE",
            Action::Upsert => "UPSERT",
            Action::Delete => "DELETE",
        })
    }
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub set: RecordSet,
}

/// One problem of a refused batch: which change, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The change's index in the batch (0-based).
    pub index: usize,
    pub name: String,
    pub rtype: RecordType,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Changes[{}] ({} {}): {}",
            self.index, self.name, self.rtype, self.message
        )
    }
}

/// The largest TTL DNS allows (2^31 - 1).
pub const MAX_TTL: u32 = i32::MAX as u32;

/// The zone `batch` makes of `zone`, its serial one higher, or every problem of the batch.
/// Changes apply in order, so a batch may delete a set and create it again.
pub fn plan(zone: &ZoneData, batch: &[Change]) -> Result<ZoneData, Vec<Problem>> {
    let mut next = zone.clone();
    let mut problems = Vec::new();
    if batch.is_empty() {
        problems.push(Problem {
            index: 0,
            name: zone.name.clone(),
            rtype: RecordType::SOA,
            message: "a change batch needs at least one change".into(),
        });
    }
    for (index, change) in batch.iter().enumerate() {
        let mut problem = |name: &str, message: String| {
            problems.push(Problem {
                index,
                name: name.to_owned(),
                rtype: change.set.rtype,
                message,
            })
        };
        let name = match canonical_name(&change.set.name) {
            Ok(n) => n,
            Err(e) => {
                problem(&change.set.name, e);
                continue;
            }
        };
        if let Err(e) = check_set(&next, &name, change) {
            problem(&name, e);
            continue;
        }
        let mut set = change.set.clone();
        set.name = name.clone();
        let key = (name.clone(), set.rtype);
        if set.rtype == RecordType::SOA {
            // The checks above allow only an UPSERT of the apex's one value.
            match parse_soa(&set.values[0]) {
                Ok(f) => next.soa = f,
                Err(e) => problem(&name, e),
            }
            continue;
        }
        match change.action {
            Action::Create => {
                if next.rrsets.contains_key(&key) {
                    problem(
                        &name,
                        "it already exists (use UPSERT to replace it)".to_string(),
                    );
                    continue;
                }
                next.rrsets.insert(key, set);
            }
            Action::Upsert => {
                next.rrsets.insert(key, set);
            }
            Action::Delete => match next.rrsets.get(&key) {
                None => problem(&name, "it does not exist, so it can't be deleted".into()),
                Some(have) if have.ttl != set.ttl || have.values != set.values => problem(
                    &name,
                    format!(
                        "the values and TTL must match the set being deleted (it has TTL {} and {:?})",
                        have.ttl, have.values
                    ),
                ),
                Some(_) => {
                    next.rrsets.remove(&key);
                }
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    next.serial = zone.serial.wrapping_add(1).max(1);
    Ok(next)
}

/// The rules of one change against the zone as the earlier changes left it.
fn check_set(zone: &ZoneData, name: &str, change: &Change) -> Result<(), String> {
    let set = &change.set;
    if !in_zone(name, &zone.name) {
        return Err(format!("the name is not in zone `{}`", zone.name));
    }
    if set.ttl > MAX_TTL {
        return Err(format!("TTL {} is above {MAX_TTL}", set.ttl));
    }
    if set.values.is_empty() {
        return Err(if set.alias.is_some() {
            "the alias target resolved to no address".into()
        } else {
            "a record set needs at least one value".into()
        });
    }
    for (i, v) in set.values.iter().enumerate() {
        parse_value(set.rtype, v).map_err(|e| format!("ResourceRecords[{i}]: {e}"))?;
    }
    let apex = name == zone.name;
    match set.rtype {
        RecordType::SOA if !apex || change.action != Action::Upsert || set.values.len() != 1 => {
            return Err(
                "the SOA can only be changed by an UPSERT of one value at the zone's apex".into(),
            );
        }
        RecordType::NS if apex && change.action == Action::Delete => {
            return Err("the zone's own NS record set can't be deleted".into());
        }
        RecordType::CNAME => {
            if apex {
                return Err("a CNAME can't be at the zone's apex (use an alias record)".into());
            }
            if set.values.len() != 1 {
                return Err("a CNAME record set holds exactly one value".into());
            }
        }
        _ => {}
    }
    if change.action != Action::Delete {
        let others = zone
            .rrsets
            .range((name.to_owned(), RecordType::A)..)
            .take_while(|((n, _), _)| n == name)
            .map(|((_, t), _)| *t)
            .filter(|t| *t != set.rtype);
        for t in others {
            if t == RecordType::CNAME || set.rtype == RecordType::CNAME {
                return Err(format!(
                    "the name already has a {t} record set, and a CNAME can't share its name with other data"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, t: RecordType, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: t,
            ttl: 60,
            values: values.iter().map(|v| v.to_string()).collect(),
            alias: None,
        }
    }

    fn change(action: Action, name: &str, t: RecordType, values: &[&str]) -> Change {
        Change {
            action,
            set: set(name, t, values),
        }
    }

    fn zone() -> ZoneData {
        ZoneData::new("ZTEST", "twine.test", "111111111111").unwrap()
    }

    /// Each case: a batch and the problems it must get (`Changes[i] (name type): substring`),
    /// or `[]` for a batch that applies.
    #[test]
    fn batches_apply_whole_or_report_every_bad_change_with_its_position() {
        use Action::*;
        use RecordType::*;
        let cases: Vec<(Vec<Change>, Vec<&str>)> = vec![
            (vec![change(Create, "www.twine.test", A, &["192.0.2.1"])], vec![]),
            (
                vec![
                    change(Create, "a.twine.test", A, &["192.0.2.1"]),
                    change(Create, "b.twine.test", A, &["192.0.2.999"]),
                    change(Create, "c.twine.test", MX, &["mail"]),
                ],
                vec![
                    "Changes[1] (b.twine.test A): ResourceRecords[0]: `192.0.2.999` is not an IPv4 address",
                    "Changes[2] (c.twine.test MX): ResourceRecords[0]: `mail` is not `PREFERENCE EXCHANGE`",
                ],
            ),
            (
                vec![change(Create, "www.other.test", A, &["192.0.2.1"])],
                vec!["Changes[0] (www.other.test A): the name is not in zone `twine.test`"],
            ),
            (
                vec![
                    change(Create, "x.twine.test", A, &["192.0.2.1"]),
                    change(Create, "x.twine.test", A, &["192.0.2.2"]),
                ],
                vec!["Changes[1] (x.twine.test A): it already exists"],
            ),
            (
                vec![
                    change(Create, "x.twine.test", A, &["192.0.2.1"]),
                    change(Delete, "x.twine.test", A, &["192.0.2.1"]),
                    change(Create, "x.twine.test", CNAME, &["www.twine.test"]),
                ],
                vec![],
            ),
            (
                vec![
                    change(Create, "x.twine.test", A, &["192.0.2.1"]),
                    change(Create, "x.twine.test", CNAME, &["www.twine.test"]),
                ],
                vec!["Changes[1] (x.twine.test CNAME): the name already has a A record set"],
            ),
            (
                vec![change(Create, "twine.test", CNAME, &["www.twine.test"])],
                vec!["Changes[0] (twine.test CNAME): a CNAME can't be at the zone's apex"],
            ),
            (
                vec![change(Delete, "gone.twine.test", A, &["192.0.2.1"])],
                vec!["Changes[0] (gone.twine.test A): it does not exist"],
            ),
            (
                vec![change(Delete, "twine.test", NS, &["ns1.twine.test."])],
                vec!["Changes[0] (twine.test NS): the zone's own NS record set can't be deleted"],
            ),
            (
                vec![change(Create, "twine.test", SOA, &["a. b. 1 2 3 4 5"])],
                vec!["Changes[0] (twine.test SOA): the SOA can only be changed by an UPSERT"],
            ),
            (
                vec![change(Upsert, "twine.test", SOA, &["a.twine.test. b.twine.test. 1 2 3 4 5"])],
                vec![],
            ),
            (
                vec![change(Create, "bad..twine.test", A, &["192.0.2.1"])],
                vec!["Changes[0] (bad..twine.test A): `bad..twine.test` has an empty label"],
            ),
            (vec![], vec!["a change batch needs at least one change"]),
        ];
        for (batch, want) in cases {
            let z = zone();
            match plan(&z, &batch) {
                Ok(next) => {
                    assert!(want.is_empty(), "{batch:?} applied; wanted {want:?}");
                    assert_eq!(next.serial, z.serial + 1);
                }
                Err(problems) => {
                    let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                    assert_eq!(got.len(), want.len(), "{got:#?} vs {want:#?}");
                    for (g, w) in got.iter().zip(&want) {
                        assert!(g.contains(w), "`{g}` should contain `{w}`");
                    }
                }
            }
        }
    }
}
