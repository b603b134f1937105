//! Hosted zones and DNS answers as the API shows them (`/v1/accounts/{account}/dns/...`).

use serde::{Deserialize, Serialize};

/// One hosted zone the account owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedZoneInfo {
    pub id: String,
    pub name: String,
    /// The owning account's id.
    pub owner: String,
    #[serde(default)]
    pub comment: String,
    /// Associated with VPCs: recorded, not served on the public address.
    pub private: bool,
    #[serde(default)]
    pub vpcs: Vec<String>,
    /// The SOA serial: one higher after every applied change batch.
    pub serial: u32,
    /// Record sets, the SOA included.
    pub record_sets: usize,
}

/// One record set of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSetInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub values: Vec<String>,
    /// An alias record's target (`DNSName`); `values` hold what it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// What the daemon's DNS server answers for a name (Route 53's `TestDNSAnswer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, …
    pub rcode: String,
    pub authoritative: bool,
    /// Answer records in presentation form (`name TTL IN TYPE value`).
    pub answers: Vec<String>,
    /// The authority section (the SOA of a negative answer).
    pub authority: Vec<String>,
}
