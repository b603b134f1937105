//! Instance host names in a VPC's resolver, as AWS's `EnableDnsHostnames` gives them: every
//! address of the VPC's CIDR has the name `ip-A-B-C-D.<domain>` (`ec2.internal` in
//! us-east-1, `<region>.compute.internal` elsewhere) and the matching `in-addr.arpa` pointer.
//! Both are derived from the address, so they need no records and no bookkeeping when
//! instances come and go. Pure: the server asks [`VpcHostnames::lookup`] only for names no
//! zone the VPC sees holds.

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::zone::canonical_name;

/// The host names of one VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcHostnames {
    /// Lower case, without the final dot.
    domain: String,
    base: u32,
    prefix: u8,
}

/// A VPC's host names as its resolver answers them now (`None`: `EnableDnsHostnames` is
/// off). Clones share the value; the daemon sets it when the VPC's setting changes, and the
/// next query sees the change.
#[derive(Debug, Clone, Default)]
pub struct HostnamesCell(Arc<ArcSwapOption<VpcHostnames>>);

impl HostnamesCell {
    pub fn set(&self, hostnames: Option<VpcHostnames>) {
        self.0.store(hostnames.map(Arc::new));
    }

    pub fn get(&self) -> Option<Arc<VpcHostnames>> {
        self.0.load_full()
    }
}

/// What a host-name query finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// `ip-A-B-C-D.<domain>` of an address in the VPC.
    Address(Ipv4Addr),
    /// The reverse name of an address in the VPC: its host name (no final dot).
    Pointer(String),
    /// A name under the domain that is no address of the VPC: NXDOMAIN.
    Missing,
}

impl VpcHostnames {
    /// The names of the VPC with CIDR `base/prefix` under `domain`; `None` if `domain` is no
    /// domain name or `prefix` is over 32.
    pub fn new(domain: &str, base: Ipv4Addr, prefix: u8) -> Option<VpcHostnames> {
        if prefix > 32 {
            return None;
        }
        let domain = canonical_name(domain).ok()?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Some(VpcHostnames {
            domain,
            base: u32::from(base) & mask,
            prefix,
        })
    }

    /// The domain AWS gives instance names in `region`.
    pub fn domain_for(region: &str) -> String {
        if region == "us-east-1" {
            "ec2.internal".into()
        } else {
            format!("{region}.compute.internal")
        }
    }

    /// The domain of the host names (lower case, without the final dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == self.base
    }

    /// `ip`'s host name, if `ip` is in the VPC.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        let [a, b, c, d] = ip.octets();
        self.contains(ip)
            .then(|| format!("ip-{a}-{b}-{c}-{d}.{}", self.domain))
    }

    /// What `name` (lower case, without the final dot) is, if it is a host name of this VPC's
    /// domain or the reverse name of one of its addresses; `None` for any other name (reverse
    /// names of other addresses included: they are no business of this VPC).
    pub fn lookup(&self, name: &str) -> Option<HostName> {
        if let Some(label) = name
            .strip_suffix(&self.domain)
            .and_then(|rest| rest.strip_suffix('.'))
        {
            let ip = label
                .strip_prefix("ip-")
                .and_then(|dashed| parse_octets(dashed.split('-')));
            return Some(match ip {
                Some(ip) if self.contains(ip) => HostName::Address(ip),
                _ => HostName::Missing,
            });
        }
        if name == self.domain {
            return Some(HostName::Missing);
        }
        let reversed = name.strip_suffix(".in-addr.arpa")?;
        let mut labels: Vec<&str> = reversed.split('.').collect();
        labels.reverse();
        let ip = parse_octets(labels.into_iter())?;
        self.name_of(ip).map(HostName::Pointer)
    }
}

/// Exactly four decimal octets without leading zeros.
fn parse_octets<'a>(mut parts: impl Iterator<Item = &'a str>) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty()
            || (p.len() > 1 && p.starts_with('0'))
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pointers_of_the_vpc_only() {
        let h = VpcHostnames::new("ec2.internal", Ipv4Addr::new(10, 40, 0, 0), 16).unwrap();
        let a = |s: &str| Some(HostName::Address(s.parse().unwrap()));
        let ptr = |s: &str| Some(HostName::Pointer(s.into()));
        let cases: &[(&str, Option<HostName>)] = &[
            ("ip-10-40-0-5.ec2.internal", a("10.40.0.5")),
            ("ip-10-40-255-254.ec2.internal", a("10.40.255.254")),
            // Another VPC's address, a malformed label, a deeper name, the domain itself.
            ("ip-10-41-0-5.ec2.internal", Some(HostName::Missing)),
            ("ip-10-40-0-05.ec2.internal", Some(HostName::Missing)),
            ("ip-10-40-0.ec2.internal", Some(HostName::Missing)),
            ("ip-10-40-0-5-6.ec2.internal", Some(HostName::Missing)),
            ("ip-10-40-0-256.ec2.internal", Some(HostName::Missing)),
            ("web.ec2.internal", Some(HostName::Missing)),
            ("x.ip-10-40-0-5.ec2.internal", Some(HostName::Missing)),
            ("ec2.internal", Some(HostName::Missing)),
            ("5.0.40.10.in-addr.arpa", ptr("ip-10-40-0-5.ec2.internal")),
            // Other addresses' and partial reverse names are not this VPC's to answer.
            ("5.0.41.10.in-addr.arpa", None),
            ("0.40.10.in-addr.arpa", None),
            ("ip-10-40-0-5.ec2.internal.example", None),
            ("example.com", None),
            ("notec2.internal", None),
        ];
        for (name, want) in cases {
            assert_eq!(&h.lookup(name), want, "{name}");
        }
    }

    #[test]
    fn the_cidr_is_masked_and_the_domain_follows_the_region() {
        let h = VpcHostnames::new(
            "EU-West-1.Compute.Internal.",
            Ipv4Addr::new(10, 1, 2, 3),
            24,
        )
        .unwrap();
        assert_eq!(
            h.name_of(Ipv4Addr::new(10, 1, 2, 9)).as_deref(),
            Some("ip-10-1-2-9.eu-west-1.compute.internal")
        );
        assert_eq!(h.name_of(Ipv4Addr::new(10, 1, 3, 9)), None);
        assert_eq!(VpcHostnames::domain_for("us-east-1"), "ec2.internal");
        assert_eq!(
            VpcHostnames::domain_for("eu-west-1"),
            "eu-west-1.compute.internal"
        );
        assert!(VpcHostnames::new("bad..name", Ipv4Addr::new(10, 0, 0, 0), 16).is_none());
        assert!(VpcHostnames::new("ec2.internal", Ipv4Addr::new(10, 0, 0, 0), 33).is_none());
    }
}
