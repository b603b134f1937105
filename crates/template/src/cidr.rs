//! `Fn::Cidr` subnet arithmetic: split an IPv4 or IPv6 block into `count` consecutive
//! subnets with `cidr_bits` host bits each, as CloudFormation does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not a CIDR block (address/prefix)")]
    BadBlock(String),
    #[error("count must be between 1 and 256, got {0}")]
    BadCount(u64),
    #[error("cidrBits {bits} does not fit a /{prefix} block of {width} bits")]
    BadBits { bits: u32, prefix: u32, width: u32 },
    #[error(
        "a /{prefix} block holds only {available} subnets of /{sub_prefix}, {count} requested"
    )]
    TooMany {
        prefix: u32,
        sub_prefix: u32,
        available: u128,
        count: u64,
    },
}

/// Computes the subnets of `block` (e.g. `10.0.0.0/16`), `count` of them, each with
/// `cidr_bits` host bits (so a /24 from `cidr_bits = 8` on IPv4).
pub fn subnets(block: &str, count: u64, cidr_bits: u32) -> Result<Vec<String>, CidrError> {
    let bad = || CidrError::BadBlock(block.to_string());
    let (addr, prefix) = block.trim().split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > width {
        return Err(bad());
    }
    if !(1..=256).contains(&count) {
        return Err(CidrError::BadCount(count));
    }
    if cidr_bits > width - prefix {
        return Err(CidrError::BadBits {
            bits: cidr_bits,
            prefix,
            width,
        });
    }
    let sub_prefix = width - cidr_bits;
    let room = sub_prefix - prefix;
    let available: u128 = if room >= 127 {
        u128::MAX
    } else {
        1u128 << room
    };
    if u128::from(count) > available {
        return Err(CidrError::TooMany {
            prefix,
            sub_prefix,
            available,
            count,
        });
    }
    let base: u128 = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = width - prefix;
    let host_mask: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let network = base & !host_mask;
    let step: u128 = if cidr_bits >= 128 {
        0
    } else {
        1u128 << cidr_bits
    };
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..u128::from(count) {
        let a = network + i * step;
        let text = if width == 32 {
            Ipv4Addr::from(a as u32).to_string()
        } else {
            Ipv6Addr::from(a).to_string()
        };
        out.push(format!("{text}/{sub_prefix}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_examples_from_the_documentation() {
        assert_eq!(
            subnets("192.168.0.0/24", 6, 5).unwrap(),
            [
                "192.168.0.0/27",
                "192.168.0.32/27",
                "192.168.0.64/27",
                "192.168.0.96/27",
                "192.168.0.128/27",
                "192.168.0.160/27"
            ]
        );
        assert_eq!(
            subnets("10.0.0.0/16", 3, 8).unwrap(),
            ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
        );
    }

    #[test]
    fn ipv6_block() {
        assert_eq!(
            subnets("2001:db8::/56", 2, 64).unwrap(),
            ["2001:db8::/64", "2001:db8:0:1::/64"]
        );
    }

    #[test]
    fn host_bits_are_masked_and_limits_checked() {
        assert_eq!(subnets("10.0.3.7/16", 1, 8).unwrap(), ["10.0.0.0/24"]);
        assert_eq!(subnets("10.0.0.0/0", 1, 32).unwrap(), ["0.0.0.0/0"]);
        assert!(matches!(
            subnets("10.0.0.0/24", 3, 7),
            Err(CidrError::TooMany { available: 2, .. })
        ));
        assert!(matches!(
            subnets("10.0.0.0/24", 1, 9),
            Err(CidrError::BadBits { .. })
        ));
        assert!(matches!(
            subnets("10.0.0.0", 1, 8),
            Err(CidrError::BadBlock(_))
        ));
        assert!(matches!(
            subnets("10.0.0.0/8", 0, 8),
            Err(CidrError::BadCount(0))
        ));
        assert!(matches!(
            subnets("10.0.0.0/8", 257, 8),
            Err(CidrError::BadCount(257))
        ));
    }
}
