//! IPv4 and IPv6 addresses and CIDR blocks for `ISSUBSET`/`ISSUPERSET` (STIX 2.1 §9.4).

use std::net::{Ipv4Addr, Ipv6Addr};

/// An address block: an address with a prefix length. A plain address is
/// the block of its full length (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub v6: bool,
    pub addr: u128,
    pub prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or `ipv6/n`.
    /// Addresses use the strict textual forms (dotted quad without leading
    /// zeros; RFC 4291 §2.2 for IPv6).
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, Some(p.parse::<u8>().ok()?))
            }
            None => (s, None),
        };
        if let Ok(v4) = addr.parse::<Ipv4Addr>() {
            let prefix = prefix.unwrap_or(32);
            (prefix <= 32).then_some(IpNet {
                v6: false,
                addr: u128::from(u32::from(v4)),
                prefix,
            })
        } else if let Ok(v6) = addr.parse::<Ipv6Addr>() {
            let prefix = prefix.unwrap_or(128);
            (prefix <= 128).then_some(IpNet {
                v6: true,
                addr: u128::from(v6),
                prefix,
            })
        } else {
            None
        }
    }

    /// 32 for IPv4, 128 for IPv6.
    pub fn width(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    /// The address with every bit past `prefix` cleared.
    pub fn masked(&self, prefix: u8) -> u128 {
        let w = u32::from(self.width());
        let p = u32::from(prefix);
        if p == 0 {
            return 0;
        }
        let mask_w = if w == 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        };
        let mask = mask_w & !((1u128 << (w - p)).wrapping_sub(1));
        // For p == w the shift above is 1 << 0 == 1, so the mask is all ones.
        self.addr & mask
    }

    /// Whether `self` lies within `container` (same family, at least as
    /// long a prefix, same network bits).
    pub fn within(&self, container: &IpNet) -> bool {
        self.v6 == container.v6
            && container.prefix <= self.prefix
            && self.masked(container.prefix) == container.masked(container.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::IpNet;

    #[test]
    fn containment() {
        let c = |a: &str, b: &str| IpNet::parse(a).unwrap().within(&IpNet::parse(b).unwrap());
        assert!(c("11.22.33.44", "11.22.33.44/20"));
        assert!(c("11.22.32.0/21", "11.22.33.44/20"));
        assert!(!c("11.22.33.44/19", "11.22.33.44/20"));
        assert!(c("1.2.3.4", "0.0.0.0/0"));
        assert!(c("2001:db8::1", "2001:db8::/32"));
        assert!(!c("2001:db9::1", "2001:db8::/32"));
        assert!(!c("1.2.3.4", "::/0"));
        assert!(IpNet::parse("1.2.3.4/33").is_none());
        assert!(IpNet::parse("1.2.3").is_none());
    }
}
