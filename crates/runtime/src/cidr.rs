//! IPv4 CIDR arithmetic and the subnet address manager (IPAM). Pure: no I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from parsing CIDRs and allocating addresses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("`{0}` is not an IPv4 CIDR like 10.200.0.0/16")]
    Parse(String),
    #[error("`{cidr}` has host bits set; did you mean {network}?")]
    HostBits { cidr: String, network: String },
    #[error("subnet {cidr} is too small to hold instances (need a prefix of /29 or shorter)")]
    TooSmall { cidr: Ipv4Net },
    #[error("subnet {cidr} has no free addresses")]
    Exhausted { cidr: Ipv4Net },
    #[error("address {addr} is not allocated in subnet {cidr}")]
    NotAllocated { cidr: Ipv4Net, addr: Ipv4Addr },
}

/// An IPv4 network in CIDR notation, always normalised (no host bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// Builds a network, refusing addresses with host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        if prefix > 32 {
            return Err(CidrError::Parse(format!("{addr}/{prefix}")));
        }
        let net = Self::truncating(addr, prefix);
        if net.addr != addr {
            return Err(CidrError::HostBits {
                cidr: format!("{addr}/{prefix}"),
                network: net.to_string(),
            });
        }
        Ok(net)
    }

    /// Builds a network, clearing host bits (for routes printed by the kernel).
    pub fn truncating(addr: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses in the network, including network and broadcast.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains_net(other) || other.contains_net(self)
    }

    /// The n-th address of the network (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        if u64::from(n) >= self.size() {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.addr) + n))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError::Parse(s.to_string());
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Self::new(addr, prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Address allocation inside one subnet.
///
/// Like AWS, the first addresses are reserved: `.0` (network), `.1` (the VPC router's
/// gateway on the bridge), and the broadcast address. Allocation is lowest-free-first so that
/// addresses are predictable in tests and after a restart (the set is persisted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ipam {
    pub cidr: Ipv4Net,
    allocated: BTreeSet<Ipv4Addr>,
}

impl Ipam {
    pub fn new(cidr: Ipv4Net) -> Result<Self, CidrError> {
        if cidr.prefix() > 29 {
            return Err(CidrError::TooSmall { cidr });
        }
        Ok(Self {
            cidr,
            allocated: BTreeSet::new(),
        })
    }

    /// The router's address on this subnet, used as the instances' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.nth(1).expect("prefix <= 29 has a .1")
    }

    pub fn allocate(&mut self) -> Result<Ipv4Addr, CidrError> {
        let last = (self.cidr.size() - 1) as u32;
        for n in 2..last {
            let ip = self.cidr.nth(n).expect("n < size");
            if !self.allocated.contains(&ip) {
                self.allocated.insert(ip);
                return Ok(ip);
            }
        }
        Err(CidrError::Exhausted { cidr: self.cidr })
    }

    /// Marks a specific address as used (adoption after a restart).
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(ip) && self.allocated.insert(ip)
    }

    pub fn free(&mut self, ip: Ipv4Addr) -> Result<(), CidrError> {
        if self.allocated.remove(&ip) {
            Ok(())
        } else {
            Err(CidrError::NotAllocated {
                cidr: self.cidr,
                addr: ip,
            })
        }
    }

    pub fn in_use(&self) -> usize {
        self.allocated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(net("10.200.0.0/16").to_string(), "10.200.0.0/16");
        assert!(matches!(
            "10.200.0.1/16".parse::<Ipv4Net>(),
            Err(CidrError::HostBits { network, .. }) if network == "10.200.0.0/16"
        ));
        assert!("10.200.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.200.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("banana/8".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(net("10.200.0.0/16").overlaps(&net("10.200.5.0/24")));
        assert!(net("10.200.5.0/24").overlaps(&net("10.200.0.0/16")));
        assert!(!net("10.200.1.0/24").overlaps(&net("10.200.2.0/24")));
        assert!(net("10.200.0.0/16").contains_net(&net("10.200.1.0/24")));
        assert!(!net("10.200.1.0/24").contains_net(&net("10.200.0.0/16")));
        assert!(net("0.0.0.0/0").contains("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn ipam_allocates_lowest_free_and_reuses() {
        let mut ipam = Ipam::new(net("10.200.1.0/29")).unwrap();
        assert_eq!(ipam.gateway().to_string(), "10.200.1.1");
        let got: Vec<String> = (0..5)
            .map(|_| ipam.allocate().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.200.1.2",
                "10.200.1.3",
                "10.200.1.4",
                "10.200.1.5",
                "10.200.1.6"
            ]
        );
        assert!(matches!(ipam.allocate(), Err(CidrError::Exhausted { .. })));
        ipam.free("10.200.1.4".parse().unwrap()).unwrap();
        assert_eq!(ipam.allocate().unwrap().to_string(), "10.200.1.4");
        assert!(ipam.free("10.200.9.9".parse().unwrap()).is_err());
        assert!(Ipam::new(net("10.200.1.0/30")).is_err());
    }
}
