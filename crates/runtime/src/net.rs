//! Network planning: VPC routers, instance links, peering, and the nftables rule sets for
//! security groups and non-transitive peering. Everything here is pure text generation; the
//! engine feeds the result to [`crate::Kernel::ip_batch`] and [`crate::Kernel::nft_apply`].
//!
//! Shape of a VPC:
//! ```text
//!  instance netns                router netns (one per VPC)                 peer router
//!  eth0 10.200.1.2 ──veth── pN ── br0 (10.200.1.1/24, 10.200.2.1/24, …) ── xK ─ /30 ─ xK
//!  table inet spindle (SGs)        lo 169.254.169.254 (metadata), ip_forward=1,
//!                                  table inet spindle (forwarding policy)
//! ```
//! The router's `forward` chain accepts only traffic between its own VPC CIDR and the CIDRs of
//! VPCs it is *directly* peered with — never from one peer to another — so peering stays
//! non-transitive even if someone adds a route. Security groups are a `table inet spindle` in
//! each instance's own namespace (instances lose CAP_NET_ADMIN, so they can't change it); the
//! kernel here has no bridge conntrack, so stateful filtering on the bridge is not an option.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Net;

/// The nftables table name used in router and instance namespaces.
pub const TABLE: &str = "spindle";

/// Errors in network requests.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("VPC CIDR {cidr} collides with the host's route to {route}")]
    HostRouteCollision { cidr: Ipv4Net, route: Ipv4Net },
    #[error("VPC CIDR {cidr} must be between /16 and /28")]
    BadVpcSize { cidr: Ipv4Net },
    #[error("subnet {subnet} is not inside VPC {vpc} ({cidr})")]
    SubnetOutsideVpc {
        subnet: Ipv4Net,
        vpc: String,
        cidr: Ipv4Net,
    },
    #[error("subnet {subnet} overlaps subnet {other_id} ({other}) in VPC {vpc}")]
    SubnetOverlap {
        subnet: Ipv4Net,
        other_id: String,
        other: Ipv4Net,
        vpc: String,
    },
    #[error("cannot peer {a} ({a_cidr}) with {b} ({b_cidr}): {reason}")]
    BadPeering {
        a: String,
        a_cidr: Ipv4Net,
        b: String,
        b_cidr: Ipv4Net,
        reason: &'static str,
    },
    #[error("{kind} `{id}` does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    Exists { kind: &'static str, id: String },
    #[error("{kind} `{id}` is still used by {users}")]
    InUse {
        kind: &'static str,
        id: String,
        users: String,
    },
    #[error("security group {sg} belongs to VPC {sg_vpc}, not {vpc}")]
    WrongVpc {
        sg: String,
        sg_vpc: String,
        vpc: String,
    },
    #[error("port range {from}-{to} is invalid")]
    BadPorts { from: u16, to: u16 },
}

/// A transport protocol in a security group rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// AWS's `-1`: every protocol and port.
    All,
}

/// Where traffic may come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Cidr(Ipv4Net),
    /// Members of another security group (`sg-…`), by their current addresses.
    Group(String),
}

/// One security group rule, like `AWS::EC2::SecurityGroupIngress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgRule {
    pub protocol: Protocol,
    #[serde(default)]
    pub from_port: u16,
    #[serde(default)]
    pub to_port: u16,
    pub peer: Peer,
}

impl SgRule {
    pub fn tcp(port: u16, peer: Peer) -> Self {
        SgRule {
            protocol: Protocol::Tcp,
            from_port: port,
            to_port: port,
            peer,
        }
    }

    pub fn all(peer: Peer) -> Self {
        SgRule {
            protocol: Protocol::All,
            from_port: 0,
            to_port: 0,
            peer,
        }
    }

    pub fn validate(&self) -> Result<(), NetError> {
        if matches!(self.protocol, Protocol::Tcp | Protocol::Udp)
            && (self.from_port > self.to_port || self.to_port == 0)
        {
            return Err(NetError::BadPorts {
                from: self.from_port,
                to: self.to_port,
            });
        }
        Ok(())
    }
}

/// A security group: stateful ingress and egress allow-lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub ingress: Vec<SgRule>,
    /// AWS's default is one rule allowing all egress.
    pub egress: Vec<SgRule>,
}

impl SecurityGroup {
    pub fn default_egress() -> Vec<SgRule> {
        vec![SgRule::all(Peer::Cidr(Ipv4Net::truncating(
            Ipv4Addr::UNSPECIFIED,
            0,
        )))]
    }
}

/// Checks a VPC CIDR against the host's routes (default routes are already excluded).
pub fn check_vpc_cidr(cidr: Ipv4Net, host_routes: &[Ipv4Net]) -> Result<(), NetError> {
    if !(16..=28).contains(&cidr.prefix()) {
        return Err(NetError::BadVpcSize { cidr });
    }
    match host_routes.iter().find(|r| r.overlaps(&cidr)) {
        Some(route) => Err(NetError::HostRouteCollision {
            cidr,
            route: *route,
        }),
        None => Ok(()),
    }
}

/// The /30 link network for the `index`-th peering, inside 169.254.0.0/16 (link-local, which
/// the host never routes). Returns (network, address of side A, address of side B).
pub fn peering_link(index: u32) -> (Ipv4Net, Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(169, 254, 0, 0)) + (index % 16384) * 4;
    let net = Ipv4Net::truncating(Ipv4Addr::from(base), 30);
    (net, Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// `ip -batch` for a new VPC router: loopback, the bridge, and one gateway per subnet.
pub fn router_setup(gateways: &[(Ipv4Addr, u8)]) -> String {
    let mut s = String::from("link set lo up\naddr add 169.254.169.254/32 dev lo\nlink add br0 type bridge\nlink set br0 up\n");
    for (gw, len) in gateways {
        let _ = writeln!(s, "addr add {gw}/{len} dev br0");
    }
    s
}

/// The router's forwarding policy: own CIDR ↔ own CIDR, own ↔ directly peered CIDRs, nothing else.
pub fn router_rules(own: Ipv4Net, peers: &[Ipv4Net]) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    let _ = writeln!(
        s,
        "  set own {{ type ipv4_addr; flags interval; elements = {{ {own} }} }}"
    );
    if peers.is_empty() {
        let _ = writeln!(s, "  set peers {{ type ipv4_addr; flags interval; }}");
    } else {
        let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            s,
            "  set peers {{ type ipv4_addr; flags interval; elements = {{ {} }} }}",
            list.join(", ")
        );
    }
    s.push_str(
        "  chain forward {\n    type filter hook forward priority 0; policy drop;\n    ct state established,related accept\n    ip saddr @own ip daddr @own accept\n    ip saddr @own ip daddr @peers accept\n    ip saddr @peers ip daddr @own accept\n  }\n}\n",
    );
    s
}

/// `ip -batch` in the instance namespace: a veth `eth0` whose far end (`port`) lands in the
/// router, loopback, eth0's address and the default route via the router. One process for
/// the whole instance side; the router then puts `port` on its bridge
/// ([`crate::Kernel::bridge_port_up`]).
///
/// `eth0`'s MAC address is derived from its IP ([`instance_mac`]): an address freed by a
/// terminated instance and given to a new one keeps its MAC, so the router's neighbour entry
/// for it (still `REACHABLE` for up to a minute) stays right. With a random MAC the router
/// kept sending to the old one and the new instance was unreachable until the entry went
/// stale, which failed its first health checks after a scale-in and scale-out (issue #7).
pub fn instance_setup(
    port: &str,
    router_netns: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> String {
    let mac = instance_mac(ip);
    format!("link add eth0 address {mac} type veth peer name {port} netns {router_netns}\nlink set lo up\naddr add {ip}/{prefix} dev eth0\nlink set eth0 up\nroute add default via {gateway}\n")
}

/// A locally administered unicast MAC holding the IPv4 address: `02:53:a:b:c:d`.
pub fn instance_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:53:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// `ip -batch` in router A to create the peering link to router B.
pub fn peering_setup(
    link: &str,
    peer_netns: &str,
    a_ip: Ipv4Addr,
    b_cidr: Ipv4Net,
    b_ip: Ipv4Addr,
) -> String {
    format!(
        "link add {link} type veth peer name {link} netns {peer_netns}\naddr add {a_ip}/30 dev {link}\nlink set {link} up\nroute add {b_cidr} via {b_ip} dev {link}\n"
    )
}

/// `ip -batch` in router B to finish the peering link.
pub fn peering_finish(link: &str, b_ip: Ipv4Addr, a_cidr: Ipv4Net, a_ip: Ipv4Addr) -> String {
    format!("addr add {b_ip}/30 dev {link}\nlink set {link} up\nroute add {a_cidr} via {a_ip} dev {link}\n")
}

/// The instance's firewall from its security groups. `members` maps a group id to the current
/// addresses of its instances (for group-referenced rules). The metadata service is always
/// reachable, as in AWS; an instance in no group may send anything and receive nothing new.
pub fn instance_rules(
    groups: &[&SecurityGroup],
    members: &BTreeMap<String, Vec<Ipv4Addr>>,
    resolver: Option<Ipv4Addr>,
) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    s.push_str("  chain input {\n    type filter hook input priority 0; policy drop;\n    iif lo accept\n    ct state established,related accept\n    ct state invalid drop\n");
    for g in groups {
        for r in &g.ingress {
            rule_line(&mut s, r, "saddr", members, &g.id);
        }
    }
    let policy = if groups.is_empty() { "accept" } else { "drop" };
    let _ = write!(s, "  }}\n  chain output {{\n    type filter hook output priority 0; policy {policy};\n    oif lo accept\n    ct state established,related accept\n    ip daddr 169.254.169.254 tcp dport 80 accept\n");
    // As in AWS, security groups don't filter the VPC's resolver.
    if let Some(r) = resolver {
        let _ = writeln!(
            s,
            "    ip daddr {r} udp dport 53 accept\n    ip daddr {r} tcp dport 53 accept"
        );
    }
    for g in groups {
        for r in &g.egress {
            rule_line(&mut s, r, "daddr", members, &g.id);
        }
    }
    s.push_str("  }\n}\n");
    s
}

fn rule_line(
    s: &mut String,
    r: &SgRule,
    dir: &str,
    members: &BTreeMap<String, Vec<Ipv4Addr>>,
    sg: &str,
) {
    let addr = match &r.peer {
        Peer::Cidr(c) if c.prefix() == 0 => String::new(),
        Peer::Cidr(c) => format!("ip {dir} {c} "),
        Peer::Group(g) => match members.get(g).filter(|m| !m.is_empty()) {
            Some(m) => {
                let list: Vec<String> = m.iter().map(|a| a.to_string()).collect();
                format!("ip {dir} {{ {} }} ", list.join(", "))
            }
            None => {
                let _ = writeln!(s, "    # {sg}: group {g} has no members yet");
                return;
            }
        },
    };
    let ports = if r.from_port == r.to_port {
        r.from_port.to_string()
    } else {
        format!("{}-{}", r.from_port, r.to_port)
    };
    let what = match r.protocol {
        Protocol::Tcp => format!("tcp dport {ports} "),
        Protocol::Udp => format!("udp dport {ports} "),
        Protocol::Icmp => "meta l4proto icmp ".to_string(),
        Protocol::All => String::new(),
    };
    let _ = writeln!(s, "    {addr}{what}accept comment \"{sg}\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn vpc_cidr_checks() {
        let routes = [net("192.0.2.0/24"), net("10.200.64.0/18")];
        assert!(check_vpc_cidr(net("10.201.0.0/16"), &routes).is_ok());
        let e = check_vpc_cidr(net("10.200.0.0/16"), &routes)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "VPC CIDR 10.200.0.0/16 collides with the host's route to 10.200.64.0/18"
        );
        assert!(matches!(
            check_vpc_cidr(net("10.0.0.0/8"), &[]),
            Err(NetError::BadVpcSize { .. })
        ));
    }

    #[test]
    fn peering_links_are_distinct_link_local_slash_30s() {
        let (n0, a0, b0) = peering_link(0);
        let (n1, a1, _) = peering_link(1);
        assert_eq!(
            (n0.to_string(), a0.to_string(), b0.to_string()),
            (
                "169.254.0.0/30".into(),
                "169.254.0.1".into(),
                "169.254.0.2".into()
            )
        );
        assert_eq!(
            (n1.to_string(), a1.to_string()),
            ("169.254.0.4/30".into(), "169.254.0.5".into())
        );
    }

    #[test]
    fn router_forwards_only_own_and_direct_peers() {
        let text = router_rules(
            net("10.200.0.0/20"),
            &[net("10.200.16.0/20"), net("10.200.32.0/20")],
        );
        let expected = "table inet spindle
delete table inet spindle
table inet spindle {
  set own { type ipv4_addr; flags interval; elements = { 10.200.0.0/20 } }
  set peers { type ipv4_addr; flags interval; elements = { 10.200.16.0/20, 10.200.32.0/20 } }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ip saddr @own ip daddr @own accept
    ip saddr @own ip daddr @peers accept
    ip saddr @peers ip daddr @own accept
  }
}
";
        assert_eq!(text, expected);
        // No rule has peers on both sides: that is what makes peering non-transitive.
        assert!(!text.contains("ip saddr @peers ip daddr @peers"));
    }

    #[test]
    fn security_group_rules_by_cidr_and_group() {
        let web = SecurityGroup {
            id: "sg-web".into(),
            vpc_id: "vpc-1".into(),
            ingress: vec![
                SgRule::tcp(80, Peer::Cidr(net("10.200.0.0/16"))),
                SgRule {
                    protocol: Protocol::Tcp,
                    from_port: 8000,
                    to_port: 8080,
                    peer: Peer::Group("sg-bastion".into()),
                },
                SgRule {
                    protocol: Protocol::Icmp,
                    from_port: 0,
                    to_port: 0,
                    peer: Peer::Group("sg-empty".into()),
                },
            ],
            egress: SecurityGroup::default_egress(),
        };
        let mut members = BTreeMap::new();
        members.insert(
            "sg-bastion".to_string(),
            vec![
                "10.200.32.2".parse().unwrap(),
                "10.200.32.3".parse().unwrap(),
            ],
        );
        let text = instance_rules(&[&web], &members, None);
        let expected = "table inet spindle
delete table inet spindle
table inet spindle {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    ct state invalid drop
    ip saddr 10.200.0.0/16 tcp dport 80 accept comment \"sg-web\"
    ip saddr { 10.200.32.2, 10.200.32.3 } tcp dport 8000-8080 accept comment \"sg-web\"
    # sg-web: group sg-empty has no members yet
  }
  chain output {
    type filter hook output priority 0; policy drop;
    oif lo accept
    ct state established,related accept
    ip daddr 169.254.169.254 tcp dport 80 accept
    accept comment \"sg-web\"
  }
}
";
        assert_eq!(text, expected);
        assert!(SgRule {
            protocol: Protocol::Tcp,
            from_port: 90,
            to_port: 80,
            peer: Peer::Group("x".into())
        }
        .validate()
        .is_err());
    }

    #[test]
    fn link_scripts() {
        assert!(instance_setup(
            "p3",
            "spx-vpc-1",
            "10.200.1.2".parse().unwrap(),
            24,
            "10.200.1.1".parse().unwrap()
        )
        .ends_with("route add default via 10.200.1.1\n"));
        assert!(instance_setup(
            "p3",
            "spx-vpc-1",
            "10.200.1.2".parse().unwrap(),
            24,
            "10.200.1.1".parse().unwrap()
        )
        .starts_with("link add eth0 address 02:53:0a:c8:01:02 type veth peer name p3"));
        assert_eq!(
            router_setup(&[("10.200.1.1".parse().unwrap(), 24)])
                .lines()
                .last(),
            Some("addr add 10.200.1.1/24 dev br0")
        );
    }
}
