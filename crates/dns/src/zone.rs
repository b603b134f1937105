//! The zone model: names, record types, record sets with their values in presentation form
//! (as Route 53's `ResourceRecords` hold them), and their parse into wire records.
//!
//! Values are kept as the strings a user wrote and parsed again whenever a zone is compiled,
//! so what is stored is what was asked for; a value that doesn't parse never gets into a zone
//! (change batches are validated first, see `change.rs`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{self, CNAME, MX, NS, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType as WireType};
use serde::{Deserialize, Serialize};

/// The record types a zone holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordType {
    A,
    AAAA,
    CNAME,
    TXT,
    MX,
    SRV,
    NS,
    SOA,
    CAA,
    PTR,
}

impl RecordType {
    pub const ALL: [RecordType; 10] = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::TXT,
        RecordType::MX,
        RecordType::SRV,
        RecordType::NS,
        RecordType::SOA,
        RecordType::CAA,
        RecordType::PTR,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::CNAME => "CNAME",
            RecordType::TXT => "TXT",
            RecordType::MX => "MX",
            RecordType::SRV => "SRV",
            RecordType::NS => "NS",
            RecordType::SOA => "SOA",
            RecordType::CAA => "CAA",
            RecordType::PTR => "PTR",
        }
    }

    /// The wire type of this record type.
    pub fn wire(self) -> WireType {
        match self {
            RecordType::A => WireType::A,
            RecordType::AAAA => WireType::AAAA,
            RecordType::CNAME => WireType::CNAME,
            RecordType::TXT => WireType::TXT,
            RecordType::MX => WireType::MX,
            RecordType::SRV => WireType::SRV,
            RecordType::NS => WireType::NS,
            RecordType::SOA => WireType::SOA,
            RecordType::CAA => WireType::CAA,
            RecordType::PTR => WireType::PTR,
        }
    }

    /// The record type of a wire type, if a zone can hold it.
    pub fn from_wire(t: WireType) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|r| r.wire() == t)
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown record type `{s}` (expected one of {})",
                    RecordType::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

/// A domain name in canonical form: lower case, no trailing dot (`dev.twine.test`).
pub fn canonical_name(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if t.is_empty() {
        return Err("a name is empty".into());
    }
    if t.len() > 253 {
        return Err(format!("`{s}` is longer than 253 characters"));
    }
    for (i, label) in t.split('.').enumerate() {
        if label.is_empty() {
            return Err(format!("`{s}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "`{s}`: label `{label}` is longer than 63 characters"
            ));
        }
        if label == "*" && i == 0 {
            continue;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "`{s}`: label `{label}` may hold only letters, digits, `-` and `_` (`*` only as the whole first label)"
            ));
        }
    }
    Ok(t)
}

/// Whether `name` is `zone` or below it (both canonical).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The name one label up, `None` at the root.
pub fn parent(name: &str) -> Option<&str> {
    name.split_once('.').map(|(_, p)| p)
}

fn wire_name(s: &str) -> Result<Name, String> {
    let c = canonical_name(s)?;
    Name::from_ascii(format!("{c}.")).map_err(|e| format!("`{s}`: {e}"))
}

/// An alias (Route 53's `AliasTarget`): the record answers with the addresses of another
/// name, resolved when the change is made (a load balancer's `DNSName` to its address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub dns_name: String,
    pub hosted_zone_id: String,
}

/// A zone owner's grant: `account` (a name or id) may write records whose names match one
/// of `names` (`api.dev.twine.test`, or `*.dev.twine.test` for every name below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneGrant {
    pub account: String,
    pub names: Vec<String>,
}

/// Whether canonical `name` matches a grant's `pattern`: the name itself, or with a leading
/// `*.`, any name strictly below the rest.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => name != base && in_zone(name, base),
        None => pattern == name,
    }
}

/// One record set: a name, a type, a TTL and its values in presentation form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: RecordType,
    pub ttl: u32,
    pub values: Vec<String>,
    /// Set for an alias record; `values` then hold the addresses it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
}

/// The SOA's fields other than the serial, which the zone owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoaFields {
    pub mname: String,
    pub rname: String,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

/// Parses one value of `rtype` into wire data. The error says what was expected.
pub fn parse_value(rtype: RecordType, value: &str) -> Result<RData, String> {
    let v = value.trim();
    let fields: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str, what: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .map_err(|_| format!("{what} `{s}` is not a number from 0 to 65535"))
    };
    let count = |n: usize, shape: &str| -> Result<(), String> {
        if fields.len() == n {
            Ok(())
        } else {
            Err(format!("`{v}` is not `{shape}`"))
        }
    };
    Ok(match rtype {
        RecordType::A => RData::A(rdata::A(
            Ipv4Addr::from_str(v).map_err(|_| format!("`{v}` is not an IPv4 address"))?,
        )),
        RecordType::AAAA => RData::AAAA(rdata::AAAA(
            Ipv6Addr::from_str(v).map_err(|_| format!("`{v}` is not an IPv6 address"))?,
        )),
        RecordType::CNAME => RData::CNAME(CNAME(wire_name(v)?)),
        RecordType::NS => RData::NS(NS(wire_name(v)?)),
        RecordType::PTR => RData::PTR(PTR(wire_name(v)?)),
        RecordType::MX => {
            count(2, "PREFERENCE EXCHANGE")?;
            RData::MX(MX::new(
                num(fields[0], "preference")?,
                wire_name(fields[1])?,
            ))
        }
        RecordType::SRV => {
            count(4, "PRIORITY WEIGHT PORT TARGET")?;
            RData::SRV(SRV::new(
                num(fields[0], "priority")?,
                num(fields[1], "weight")?,
                num(fields[2], "port")?,
                wire_name(fields[3])?,
            ))
        }
        RecordType::TXT => RData::TXT(TXT::new(txt_strings(v)?)),
        RecordType::CAA => {
            count(3, "FLAGS TAG \"VALUE\"")?;
            let flags: u8 = fields[0]
                .parse()
                .map_err(|_| format!("flags `{}` is not a number from 0 to 255", fields[0]))?;
            let tag = fields[1];
            if !matches!(tag, "issue" | "issuewild" | "iodef") {
                return Err(format!(
                    "CAA tag `{tag}` is not one of issue, issuewild, iodef"
                ));
            }
            let value = txt_strings(fields[2])?.concat();
            let mut raw = vec![flags, tag.len() as u8];
            raw.extend_from_slice(tag.as_bytes());
            raw.extend_from_slice(value.as_bytes());
            RData::Unknown {
                code: WireType::CAA,
                rdata: NULL::with(raw),
            }
        }
        RecordType::SOA => {
            let f = parse_soa(v)?;
            RData::SOA(soa_rdata(&f, 0)?)
        }
    })
}

/// `"one" "two"` or a bare word: the character strings of a TXT value (each up to 255 bytes).
fn txt_strings(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut s = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.push(chars.next().ok_or_else(|| format!("`{v}` ends in `\\`"))?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => s.push(c),
                }
            }
            if !closed {
                return Err(format!("`{v}` has an unclosed quote"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
        }
        if s.len() > 255 {
            return Err(format!(
                "a character string of `{v}` is longer than 255 bytes (split it into quoted strings)"
            ));
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err("a TXT value is empty".into());
    }
    Ok(out)
}

/// `MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM` (the serial is ignored: the zone keeps its
/// own).
pub fn parse_soa(v: &str) -> Result<SoaFields, String> {
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() != 7 {
        return Err(format!(
            "`{v}` is not `MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM`"
        ));
    }
    let int = |s: &str, what: &str| -> Result<i32, String> {
        s.parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{what} `{s}` is not a number of seconds"))
    };
    let fields = SoaFields {
        mname: canonical_name(f[0])?,
        rname: canonical_name(f[1])?,
        refresh: int(f[3], "refresh")?,
        retry: int(f[4], "retry")?,
        expire: int(f[5], "expire")?,
        minimum: int(f[6], "minimum")? as u32,
    };
    f[2].parse::<u32>()
        .map_err(|_| format!("serial `{}` is not a number", f[2]))?;
    Ok(fields)
}

pub(crate) fn soa_rdata(f: &SoaFields, serial: u32) -> Result<SOA, String> {
    Ok(SOA::new(
        wire_name(&f.mname)?,
        wire_name(&f.rname)?,
        serial,
        f.refresh,
        f.retry,
        f.expire,
        f.minimum,
    ))
}

impl SoaFields {
    /// The presentation form with `serial`.
    pub fn render(&self, serial: u32) -> String {
        format!(
            "{}. {}. {serial} {} {} {} {}",
            self.mname, self.rname, self.refresh, self.retry, self.expire, self.minimum
        )
    }

    /// Route 53's defaults for a new zone.
    pub fn default_for(zone: &str) -> Self {
        SoaFields {
            mname: format!("ns1.{zone}"),
            rname: format!("hostmaster.{zone}"),
            refresh: 7200,
            retry: 900,
            expire: 1_209_600,
            minimum: 300,
        }
    }
}

/// A hosted zone as stored: its identity, owner and record sets (SOA kept as fields plus the
/// zone's serial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneData {
    /// `Z` + 13 characters, as Route 53's ids.
    pub id: String,
    /// Canonical, no trailing dot.
    pub name: String,
    /// The account id that owns the zone.
    pub owner: String,
    #[serde(default)]
    pub comment: String,
    /// A private zone (associated with VPCs) is recorded but not served on the public address.
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub vpcs: Vec<String>,
    pub serial: u32,
    pub soa: SoaFields,
    /// Names other accounts may write records for (the owner's explicit grants).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<ZoneGrant>,
    /// Every record set but the SOA, by (name, type).
    #[serde(with = "rrsets_as_list")]
    pub rrsets: BTreeMap<(String, RecordType), RecordSet>,
}

// JSON keys must be strings, so the record sets are stored as a list.
mod rrsets_as_list {
    use super::{RecordSet, RecordType};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Map = BTreeMap<(String, RecordType), RecordSet>;

    pub fn serialize<S: Serializer>(m: &Map, s: S) -> Result<S::Ok, S::Error> {
        m.values().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        Ok(Vec::<RecordSet>::deserialize(d)?
            .into_iter()
            .map(|r| ((r.name.clone(), r.rtype), r))
            .collect())
    }
}

impl ZoneData {
    /// A new zone with Route 53's SOA and NS record sets.
    pub fn new(id: &str, name: &str, owner: &str) -> Result<Self, String> {
        let name = canonical_name(name)?;
        let mut rrsets = BTreeMap::new();
        rrsets.insert(
            (name.clone(), RecordType::NS),
            RecordSet {
                name: name.clone(),
                rtype: RecordType::NS,
                ttl: 172_800,
                values: vec![format!("ns1.{name}.")],
                alias: None,
            },
        );
        Ok(ZoneData {
            id: id.to_owned(),
            soa: SoaFields::default_for(&name),
            name,
            owner: owner.to_owned(),
            comment: String::new(),
            private: false,
            vpcs: Vec::new(),
            serial: 1,
            grants: Vec::new(),
            rrsets,
        })
    }

    /// Every record set, the SOA first, as a user sees them.
    pub fn record_sets(&self) -> Vec<RecordSet> {
        let mut out = vec![RecordSet {
            name: self.name.clone(),
            rtype: RecordType::SOA,
            ttl: 900,
            values: vec![self.soa.render(self.serial)],
            alias: None,
        }];
        out.extend(self.rrsets.values().cloned());
        out
    }

    /// The wire records of one record set.
    pub fn wire_records(&self, set: &RecordSet) -> Result<Vec<Record>, String> {
        let owner = wire_name(&set.name)?;
        set.values
            .iter()
            .map(|v| {
                Ok(Record::from_rdata(
                    owner.clone(),
                    set.ttl,
                    parse_value(set.rtype, v)?,
                ))
            })
            .collect()
    }

    /// The SOA record with the zone's serial.
    pub fn soa_record(&self) -> Result<Record, String> {
        Ok(Record::from_rdata(
            wire_name(&self.name)?,
            900,
            RData::SOA(soa_rdata(&self.soa, self.serial)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_its_presentation_form_and_refuses_garbage_saying_what_it_wanted() {
        let good = [
            (RecordType::A, "192.0.2.1"),
            (RecordType::AAAA, "2001:db8::1"),
            (RecordType::CNAME, "www.example.com."),
            (RecordType::TXT, "\"v=spf1 -all\" \"two\""),
            (RecordType::MX, "10 mail.example.com"),
            (RecordType::SRV, "1 10 5269 xmpp.example.com."),
            (RecordType::NS, "ns1.example.com."),
            (
                RecordType::SOA,
                "ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300",
            ),
            (RecordType::CAA, "0 issue \"letsencrypt.org\""),
            (RecordType::PTR, "host.example.com."),
        ];
        for (t, v) in good {
            let r = parse_value(t, v).unwrap_or_else(|e| panic!("{t} {v}: {e}"));
            assert_eq!(r.record_type(), t.wire(), "{t}");
        }
        let bad = [
            (RecordType::A, "300.1.1.1", "not an IPv4 address"),
            (RecordType::AAAA, "192.0.2.1", "not an IPv6 address"),
            (RecordType::MX, "mail.example.com", "PREFERENCE EXCHANGE"),
            (
                RecordType::MX,
                "99999 mail.example.com",
                "preference `99999`",
            ),
            (RecordType::SRV, "1 10 http x.", "port `http`"),
            (RecordType::TXT, "\"open", "unclosed quote"),
            (RecordType::CAA, "0 bogus \"x\"", "not one of issue"),
            (RecordType::CNAME, "a..b", "empty label"),
            (RecordType::SOA, "a b 1 2", "MNAME RNAME"),
        ];
        for (t, v, want) in bad {
            let e = parse_value(t, v).unwrap_err();
            assert!(e.contains(want), "{t} {v}: {e}");
        }
    }

    #[test]
    fn grant_patterns_match_the_name_or_what_is_below_it() {
        for (p, n, want) in [
            ("*.dev.twine.test", "api.dev.twine.test", true),
            ("*.dev.twine.test", "a.b.dev.twine.test", true),
            ("*.dev.twine.test", "dev.twine.test", false),
            ("*.dev.twine.test", "xdev.twine.test", false),
            ("dev.twine.test", "dev.twine.test", true),
            ("dev.twine.test", "api.dev.twine.test", false),
        ] {
            assert_eq!(name_matches(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn names_are_canonical_and_zone_membership_is_by_label() {
        assert_eq!(canonical_name("Dev.Twine.Test.").unwrap(), "dev.twine.test");
        assert_eq!(
            canonical_name("*.dev.twine.test").unwrap(),
            "*.dev.twine.test"
        );
        assert!(canonical_name("a.*.b").is_err());
        assert!(in_zone("dev.twine.test", "twine.test"));
        assert!(in_zone("twine.test", "twine.test"));
        assert!(!in_zone("xtwine.test", "twine.test"));
        assert_eq!(parent("dev.twine.test"), Some("twine.test"));
        assert_eq!(parent("test"), None);
    }
}
