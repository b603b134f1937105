//! Answering one query from a [`Snapshot`]: pure, bytes in and bytes out.
//!
//! Authoritative answers only: a name outside every zone the asker sees ([`View`]) is
//! REFUSED; a private zone is seen only by the resolvers of the VPCs it is associated with. A name that
//! doesn't exist is NXDOMAIN and one that exists without the asked type is NODATA (NOERROR,
//! empty answer), both with the zone's SOA in the authority section for negative caching
//! (its TTL the SOA's minimum, RFC 2308). CNAMEs are followed within the zone; wildcards
//! (`*.name`) answer at their closest encloser. EDNS0: the answer carries an OPT record when
//! the query did, and a UDP answer larger than the client's buffer (512 bytes without EDNS)
//! comes back empty with TC set, so the client retries over TCP.

use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType as WireType};

use crate::catalog::{CompiledZone, Snapshot, View};
use crate::hostnames::{HostName, VpcHostnames};
use crate::zone::{in_zone, parent, RecordType};

/// The UDP payload size this server offers in its OPT record (the DNS flag day's figure).
pub const SERVER_UDP_PAYLOAD: u16 = 1232;
/// How many CNAMEs one answer follows.
const MAX_CHAIN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The public listener's answer to the query in `req` (see [`respond_in`]).
pub fn respond(snap: &Snapshot, req: &[u8], transport: Transport) -> Option<Vec<u8>> {
    respond_in(snap, &View::Public, req, transport)
}

/// The answer to the query in `req` as `view` sees the zones, or `None` for something not to
/// answer at all (not a query, or too short to carry an id).
pub fn respond_in(
    snap: &Snapshot,
    view: &View,
    req: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    respond_with(snap, view, None, req, transport)
}

/// [`respond_in`] for a VPC's resolver that also answers its instances' host names
/// (`hostnames`, when the VPC has `EnableDnsHostnames`) for names no zone it sees holds.
pub fn respond_with(
    snap: &Snapshot,
    view: &View,
    hostnames: Option<&VpcHostnames>,
    req: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let query = match Message::from_vec(req) {
        Ok(m) => m,
        Err(_) if req.len() >= 12 && req[2] & 0x80 == 0 => {
            let id = u16::from_be_bytes([req[0], req[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
        Err(_) => return None,
    };
    if query.message_type() != MessageType::Query {
        return None;
    }
    let mut resp = Message::new();
    resp.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .add_queries(query.queries().iter().cloned());
    let limit = match (transport, query.extensions().as_ref()) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(e)) => e.max_payload().clamp(512, SERVER_UDP_PAYLOAD) as usize,
    };
    if let Some(e) = query.extensions().as_ref() {
        let mut out = Edns::new();
        out.set_max_payload(SERVER_UDP_PAYLOAD);
        resp.set_edns(out);
        if e.version() > 0 {
            resp.set_response_code(ResponseCode::BADVERS);
            return encode(resp, limit);
        }
    }
    let code = if query.op_code() != OpCode::Query {
        ResponseCode::NotImp
    } else if query.queries().len() != 1 {
        ResponseCode::FormErr
    } else {
        lookup(snap, view, hostnames, &query, &mut resp)
    };
    resp.set_response_code(code);
    encode(resp, limit)
}

fn encode(mut resp: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    resp.take_answers();
    resp.take_name_servers();
    resp.take_additionals();
    resp.set_truncated(true);
    resp.to_vec().ok()
}

fn lookup(
    snap: &Snapshot,
    view: &View,
    hostnames: Option<&VpcHostnames>,
    query: &Message,
    resp: &mut Message,
) -> ResponseCode {
    let q = &query.queries()[0];
    if q.query_class() != DNSClass::IN && q.query_class() != DNSClass::ANY {
        return ResponseCode::Refused;
    }
    // Zone transfers are for grants, which come later.
    if matches!(q.query_type(), WireType::AXFR | WireType::IXFR) {
        return ResponseCode::Refused;
    }
    let qname = q.name().to_ascii().to_ascii_lowercase();
    let mut name = qname.trim_end_matches('.').to_owned();
    let zone = snap.zone_in(view, &name);
    // Host names act as a zone of their own domain: a zone the VPC sees answers instead only
    // if it is that domain or below it (the most specific zone wins, as in a VPC on AWS).
    let host = hostnames.filter(|h| {
        zone.is_none_or(|z| h.domain() != z.data.name && in_zone(h.domain(), &z.data.name))
    });
    if let Some(found) = host.and_then(|h| h.lookup(&name)) {
        return host_name(found, q, resp);
    }
    let Some(zone) = zone else {
        return ResponseCode::Refused;
    };
    resp.set_authoritative(true);
    let qtype = q.query_type();
    for _ in 0..MAX_CHAIN {
        let (sets, synth) = match find(zone, &name) {
            Found::Node(sets, synth) => (sets, synth),
            Found::Empty => return negative(zone, resp, ResponseCode::NoError),
            Found::Missing => return negative(zone, resp, ResponseCode::NXDomain),
        };
        let owner = || q.name().clone();
        let add = |resp: &mut Message, records: &[Record]| {
            for r in records {
                let mut r = r.clone();
                if synth {
                    r.set_name(owner());
                }
                resp.add_answer(r);
            }
        };
        if qtype == WireType::ANY {
            for (_, records) in sets {
                add(resp, records);
            }
            if name == zone.data.name {
                resp.add_answer(zone.soa.clone());
            }
            return ResponseCode::NoError;
        }
        if qtype == WireType::SOA && name == zone.data.name {
            resp.add_answer(zone.soa.clone());
            return ResponseCode::NoError;
        }
        if let Some((_, records)) = sets.iter().find(|(t, _)| t.wire() == qtype) {
            add(resp, records);
            return ResponseCode::NoError;
        }
        let Some((_, cname)) = sets.iter().find(|(t, _)| *t == RecordType::CNAME) else {
            return negative(zone, resp, ResponseCode::NoError);
        };
        add(resp, cname);
        let target = match cname.first().map(|r| r.data()) {
            Some(RData::CNAME(c)) => c.0.to_ascii().to_ascii_lowercase(),
            _ => return ResponseCode::NoError,
        };
        let target = target.trim_end_matches('.');
        if !in_zone(target, &zone.data.name) {
            return ResponseCode::NoError;
        }
        name = target.to_owned();
    }
    ResponseCode::NoError
}

/// How long resolvers may cache a host name (they follow the address, which never changes).
const HOST_NAME_TTL: u32 = 60;

/// The answer for an instance host name or its pointer: not authoritative (as AWS's resolver
/// answers them), NXDOMAIN for a name of the domain that is no address of the VPC, NODATA for
/// another type.
fn host_name(found: HostName, q: &hickory_proto::op::Query, resp: &mut Message) -> ResponseCode {
    use hickory_proto::rr::rdata::{A, PTR};
    use hickory_proto::rr::Name;
    let wanted = |t: WireType| q.query_type() == t || q.query_type() == WireType::ANY;
    let data = match found {
        HostName::Missing => return ResponseCode::NXDomain,
        HostName::Address(ip) if wanted(WireType::A) => RData::A(A(ip)),
        HostName::Pointer(target) if wanted(WireType::PTR) => {
            match Name::from_ascii(format!("{target}.")) {
                Ok(n) => RData::PTR(PTR(n)),
                Err(_) => return ResponseCode::ServFail,
            }
        }
        _ => return ResponseCode::NoError,
    };
    resp.add_answer(Record::from_rdata(q.name().clone(), HOST_NAME_TTL, data));
    ResponseCode::NoError
}

enum Found<'z> {
    /// The name's record sets, and whether they come from a wildcard.
    Node(&'z [(RecordType, Arc<[Record]>)], bool),
    /// An empty non-terminal: the name exists, with no records.
    Empty,
    Missing,
}

fn find<'z>(zone: &'z CompiledZone, name: &str) -> Found<'z> {
    if let Some(sets) = zone.nodes.get(name) {
        return Found::Node(sets, false);
    }
    if zone.empty_non_terminals.contains(name) {
        return Found::Empty;
    }
    // The closest encloser: the longest existing ancestor; its wildcard answers.
    let mut p = parent(name);
    while let Some(anc) = p {
        if !in_zone(anc, &zone.data.name) {
            break;
        }
        if zone.nodes.contains_key(anc) || zone.empty_non_terminals.contains(anc) {
            return match zone.nodes.get(&format!("*.{anc}")) {
                Some(sets) => Found::Node(sets, true),
                None => Found::Missing,
            };
        }
        p = parent(anc);
    }
    Found::Missing
}

/// NXDOMAIN or NODATA: the SOA in the authority section, its TTL the negative-caching TTL.
fn negative(zone: &CompiledZone, resp: &mut Message, code: ResponseCode) -> ResponseCode {
    let mut soa = zone.soa.clone();
    soa.set_ttl(zone.data.soa.minimum.min(soa.ttl()));
    resp.add_name_server(soa);
    code
}

/// What [`respond`] answers for `name` and `rtype`, decoded: the response code, whether it is
/// authoritative, and the answer and authority records in presentation form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    pub rcode: String,
    pub authoritative: bool,
    pub answers: Vec<String>,
    pub authority: Vec<String>,
}

/// Asks the snapshot as a client of the public listener over TCP would (no size limit), for
/// `spindle dns test`.
pub fn test_answer(snap: &Snapshot, name: &str, rtype: &str) -> Result<Tested, String> {
    test_answer_in(snap, &View::Public, name, rtype)
}

/// [`test_answer`] as `view` sees the zones.
pub fn test_answer_in(
    snap: &Snapshot,
    view: &View,
    name: &str,
    rtype: &str,
) -> Result<Tested, String> {
    test_answer_with(snap, view, None, name, rtype)
}

/// [`test_answer_in`] for a VPC resolver that answers `hostnames` too (see [`respond_with`]).
pub fn test_answer_with(
    snap: &Snapshot,
    view: &View,
    hostnames: Option<&VpcHostnames>,
    name: &str,
    rtype: &str,
) -> Result<Tested, String> {
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    let t: WireType = rtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("unknown record type `{rtype}`"))?;
    let qname = Name::from_ascii(if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    })
    .map_err(|e| format!("`{name}` is not a domain name: {e}"))?;
    let mut q = Message::new();
    q.set_id(1).add_query(Query::query(qname, t));
    let req = q.to_vec().map_err(|e| e.to_string())?;
    let bytes = respond_with(snap, view, hostnames, &req, Transport::Tcp).ok_or("no answer")?;
    let m = Message::from_vec(&bytes).map_err(|e| e.to_string())?;
    let text = |rs: &[Record]| rs.iter().map(|r| r.to_string()).collect();
    Ok(Tested {
        rcode: format!("{:?}", m.response_code()).to_ascii_uppercase(),
        authoritative: m.authoritative(),
        answers: text(m.answers()),
        authority: text(m.name_servers()),
    })
}
