//! # spindle-dns: hosted zones and an authoritative DNS server
//!
//! Route 53's job on one machine. A pure core — the zone model (`zone.rs`), change batches
//! validated all-or-nothing with the position of every bad change (`change.rs`), answering
//! one query from an immutable snapshot (`answer.rs`) — and two thin edges: the catalog that
//! swaps whole snapshots in and hands each new state to the caller to save (`catalog.rs`),
//! and the UDP/TCP server (`server.rs`). A VPC's resolver also answers its instances' host
//! names, derived from the address (`hostnames.rs`).
//!
//! **Invariants.** A reader sees one snapshot for a whole answer, so no query sees half a
//! batch; a zone's SOA serial rises by one with every applied batch; a refused batch or a
//! failed save changes neither what is served nor what is stored. Wire encoding is
//! hickory-proto's; this crate speaks no SQL and knows nothing of accounts (the daemon checks
//! who may change what before it calls [`Catalog::change`]).
//!
//! Not here yet: zone transfers (AXFR is REFUSED), NOTIFY, DNSSEC, delegation referrals
//! below the apex, health-checked routing.

mod answer;
mod catalog;
mod change;
mod hostnames;
mod server;
mod zone;

pub use answer::{
    respond, respond_in, respond_with, test_answer, test_answer_in, test_answer_with, Tested,
    Transport, SERVER_UDP_PAYLOAD,
};
pub use catalog::{Catalog, CompiledZone, Persist, Snapshot, View};
pub use change::{plan, Action, Change, Problem, MAX_TTL};
pub use hickory_proto;
pub use hostnames::{HostName, HostnamesCell, VpcHostnames};
pub use server::{bind, Bound, DnsHandle};
pub use zone::{
    canonical_name, in_zone, name_matches, parse_value, Alias, RecordSet, RecordType, SoaFields,
    ZoneData, ZoneGrant,
};

use std::net::SocketAddr;

/// Why a DNS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("change batch for zone `{zone}` refused, nothing changed: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Refused {
        zone: String,
        problems: Vec<Problem>,
    },
    #[error("no hosted zone `{id}`")]
    NoSuchZone { id: String },
    #[error("a hosted zone named `{name}` is already served (publicly, or privately to one of the same VPCs)")]
    ZoneExists { name: String },
    #[error("zone `{zone}` holds a record that doesn't compile: {detail}")]
    Corrupt { zone: String, detail: String },
    #[error("stored zones unreadable: {detail}")]
    Stored { detail: String },
    #[error("saving the zones failed, nothing changed: {detail}")]
    Save { detail: String },
    #[error("cannot bind the DNS server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
