//! Care-of addresses (the paper's M*): when a VM moves to a foreign subnet it is given an
//! address there that only the fabric sees. They come from the subnet's `care_of_pool` (or the
//! whole subnet), never collide with an address a host uses, are held while the VM is away and
//! released when it returns. Allocation is deterministic (the lowest free address), and a
//! request that cannot be met in full takes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::fabric::topology::{Prefix, SubnetConf};

/// Why no care-of address could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CareOfError {
    #[error("care-of pool {pool} of subnet {subnet:?} is exhausted: {need} addresses needed, {free} free")]
    Exhausted {
        subnet: String,
        pool: Prefix,
        need: usize,
        free: usize,
    },
    #[error("no subnet named {0:?}")]
    UnknownSubnet(String),
}

/// The care-of addresses of every subnet: which are held, and by which VM (its MAC, as text).
#[derive(Debug, Clone, Default)]
pub struct CareOfPools {
    pools: BTreeMap<String, Pool>,
}

#[derive(Debug, Clone)]
struct Pool {
    range: Prefix,
    /// Never handed out: the gateway, the network and broadcast addresses.
    reserved: BTreeSet<Ipv4Addr>,
    held: BTreeMap<Ipv4Addr, String>,
}

impl CareOfPools {
    /// One pool per subnet: its `care_of_pool`, or the whole prefix.
    pub fn new<'a>(subnets: impl IntoIterator<Item = &'a SubnetConf>) -> Self {
        let pools = subnets
            .into_iter()
            .map(|s| {
                let range = s.care_of_pool.unwrap_or(s.prefix);
                let mut reserved = BTreeSet::from([s.gateway]);
                let net = u32::from(s.prefix.addr);
                if s.prefix.len < 31 {
                    reserved.insert(Ipv4Addr::from(net));
                    reserved.insert(Ipv4Addr::from(net | !s.prefix.mask()));
                }
                (
                    s.name.clone(),
                    Pool {
                        range,
                        reserved,
                        held: BTreeMap::new(),
                    },
                )
            })
            .collect();
        CareOfPools { pools }
    }

    /// Takes `n` addresses of `subnet` for `owner`, skipping any address `in_use` says a host
    /// has; all or nothing.
    pub fn take(
        &mut self,
        subnet: &str,
        owner: &str,
        n: usize,
        in_use: impl Fn(Ipv4Addr) -> bool,
    ) -> Result<Vec<Ipv4Addr>, CareOfError> {
        let pool = self
            .pools
            .get_mut(subnet)
            .ok_or_else(|| CareOfError::UnknownSubnet(subnet.to_string()))?;
        let first = u32::from(pool.range.addr);
        let last = first | !pool.range.mask();
        let free: Vec<Ipv4Addr> = (first..=last)
            .map(Ipv4Addr::from)
            .filter(|a| !pool.reserved.contains(a) && !pool.held.contains_key(a) && !in_use(*a))
            .take(n)
            .collect();
        if free.len() < n {
            let total_free = (first..=last)
                .map(Ipv4Addr::from)
                .filter(|a| !pool.reserved.contains(a) && !pool.held.contains_key(a) && !in_use(*a))
                .count();
            return Err(CareOfError::Exhausted {
                subnet: subnet.to_string(),
                pool: pool.range,
                need: n,
                free: total_free,
            });
        }
        for a in &free {
            pool.held.insert(*a, owner.to_string());
        }
        Ok(free)
    }

    /// Gives back every address `owner` holds in `subnet`; returns them.
    pub fn release(&mut self, subnet: &str, owner: &str) -> Vec<Ipv4Addr> {
        let Some(pool) = self.pools.get_mut(subnet) else {
            return Vec::new();
        };
        let mine: Vec<Ipv4Addr> = pool
            .held
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(a, _)| *a)
            .collect();
        for a in &mine {
            pool.held.remove(a);
        }
        mine
    }

    /// Marks addresses as held (restoring state after a restart); false if one is taken.
    pub fn restore(&mut self, subnet: &str, owner: &str, addrs: &[Ipv4Addr]) -> bool {
        let Some(pool) = self.pools.get_mut(subnet) else {
            return false;
        };
        if addrs
            .iter()
            .any(|a| pool.held.get(a).is_some_and(|o| o != owner) || !pool.range.contains(*a))
        {
            return false;
        }
        for a in addrs {
            pool.held.insert(*a, owner.to_string());
        }
        true
    }

    /// Who holds `addr`, if anyone.
    pub fn holder(&self, addr: Ipv4Addr) -> Option<&str> {
        self.pools
            .values()
            .find_map(|p| p.held.get(&addr).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::topology::Topology;

    fn pools() -> CareOfPools {
        let t = Topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/paper-testbed.toml"
        )))
        .unwrap();
        CareOfPools::new(&t.subnets)
    }

    #[test]
    fn lowest_free_address_of_the_pool_never_a_live_one() {
        let mut p = pools();
        // foreign's pool is 192.168.10.192/26; .192 is free, .193 is "in use" by a host.
        let used = |a: Ipv4Addr| a == Ipv4Addr::new(192, 168, 10, 193);
        let a = p.take("foreign", "02:00:00:00:11:03", 2, used).unwrap();
        assert_eq!(
            a,
            [
                Ipv4Addr::new(192, 168, 10, 192),
                Ipv4Addr::new(192, 168, 10, 194)
            ]
        );
        assert_eq!(p.holder(a[0]), Some("02:00:00:00:11:03"));
        let b = p.take("foreign", "vm2", 1, |_| false).unwrap();
        assert_eq!(b, [Ipv4Addr::new(192, 168, 10, 193)]);
        assert_eq!(p.release("foreign", "02:00:00:00:11:03"), a.to_vec());
        assert_eq!(p.holder(a[0]), None);
    }

    #[test]
    fn without_a_pool_the_subnet_is_used_minus_gateway_network_broadcast() {
        let mut p = pools();
        let a = p.take("external", "x", 1, |_| false).unwrap();
        assert_eq!(
            a,
            [Ipv4Addr::new(10, 0, 0, 2)],
            "10.0.0.0 and the gateway .1 are skipped"
        );
        let all = p.take("external", "y", 252, |_| false).unwrap();
        assert_eq!(
            all.last(),
            Some(&Ipv4Addr::new(10, 0, 0, 254)),
            ".255 is never given"
        );
    }

    #[test]
    fn exhaustion_takes_nothing() {
        let mut p = pools();
        // The /26 holds 64 addresses; its last, 192.168.10.255, is the subnet's broadcast.
        let e = p.take("foreign", "big", 64, |_| false).unwrap_err();
        assert!(
            matches!(
                e,
                CareOfError::Exhausted {
                    need: 64,
                    free: 63,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("192.168.10.192/26"));
        assert_eq!(p.take("foreign", "small", 63, |_| false).unwrap().len(), 63);
        assert!(p.take("foreign", "one more", 1, |_| false).is_err());
        assert!(matches!(
            p.take("nowhere", "x", 1, |_| false),
            Err(CareOfError::UnknownSubnet(_))
        ));
    }

    #[test]
    fn restore_refuses_conflicts() {
        let mut p = pools();
        let a = p.take("foreign", "vm", 1, |_| false).unwrap();
        assert!(p.restore("foreign", "vm", &a));
        assert!(!p.restore("foreign", "other", &a));
        assert!(!p.restore("foreign", "other", &[Ipv4Addr::new(10, 0, 0, 9)]));
    }
}
