//! Where the service may send requests of its own (webhook deliveries, sync sources,
//! JWKS fetches are the operator's own choice and not checked here). Every outbound
//! request resolves its host first and asks [`OutboundPolicy::permits`] for each address,
//! so a name that resolves to a refused address is refused too.
//!
//! Always refused: link-local addresses (169.254.0.0/16 holds the cloud metadata
//! services, fe80::/10), the unspecified, broadcast and multicast addresses. With
//! `outbound_allow` set (a list of networks, `127.0.0.0/8`), nothing outside those
//! networks is allowed: the API fuzzing in CI runs with `127.0.0.0/8`, so that no
//! generated URL leaves the machine.

use std::net::IpAddr;

/// A network, `address/prefix length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Reads `10.0.0.0/8`, `::1/128`, or a bare address (the host alone).
    pub fn parse(s: &str) -> Result<Network, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{s}' is not a network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix length is 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // Equal in the first `prefix` of `width` bits.
        let same = |n: u128, a: u128, width: u32| {
            let shift = width - u32::from(self.prefix);
            shift >= 128 || n >> shift == a >> shift
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same(u32::from(n).into(), u32::from(a).into(), 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => same(n.into(), a.into(), 128),
            _ => false,
        }
    }
}

/// The outbound rule of the `outbound_allow` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Empty: any address that is not always refused.
    allow: Vec<Network>,
}

impl OutboundPolicy {
    pub fn new(allow: &[String]) -> Result<OutboundPolicy, String> {
        Ok(OutboundPolicy { allow: allow.iter().map(|s| Network::parse(s)).collect::<Result<_, _>>()? })
    }

    /// Whether a request may go to `ip`, and why not.
    pub fn permits(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let refused = match ip {
            IpAddr::V4(v) => v.is_link_local() || v.is_unspecified() || v.is_broadcast() || v.is_multicast(),
            IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80 || v.is_unspecified() || v.is_multicast(),
        };
        if refused {
            return Err(format!("{ip} is a link-local, unspecified or multicast address; requests never go there"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)) {
            return Err(format!("{ip} is outside the networks outbound_allow lists"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses_and_no_others() {
        let n = Network::parse("127.0.0.0/8").unwrap();
        assert!(n.contains(ip("127.0.0.1")) && n.contains(ip("127.255.255.255")));
        assert!(!n.contains(ip("128.0.0.1")) && !n.contains(ip("::1")));
        let n = Network::parse("10.1.2.0/23").unwrap();
        assert!(n.contains(ip("10.1.3.200")) && !n.contains(ip("10.1.4.0")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("::1").unwrap().contains(ip("::1")));
        assert!(!Network::parse("::1").unwrap().contains(ip("::2")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x", ""] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        let open = OutboundPolicy::default();
        for refused in
            ["169.254.169.254", "169.254.0.1", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "::ffff:169.254.169.254"]
        {
            assert!(open.permits(ip(refused)).is_err(), "{refused}");
        }
        for allowed in ["127.0.0.1", "10.0.0.5", "192.168.1.1", "93.184.216.34", "::1"] {
            assert!(open.permits(ip(allowed)).is_ok(), "{allowed}");
        }
        let local = OutboundPolicy::new(&["127.0.0.0/8".into()]).unwrap();
        assert!(local.permits(ip("127.0.0.1")).is_ok());
        assert!(local.permits(ip("::ffff:127.0.0.1")).is_ok());
        assert!(local.permits(ip("10.0.0.5")).is_err());
        assert!(local.permits(ip("93.184.216.34")).is_err());
        assert!(local.permits(ip("169.254.169.254")).is_err());
    }
}
