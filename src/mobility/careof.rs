//! Care-of addresses (the paper's M*): when a VM moves to a foreign subnet it is given an
//! address there that only the fabric sees. They come from the subnet's `care_of_pool` (or the
//! whole subnet), never collide with an address a host uses, are held while the VM is away and
//! released when it returns. Allocation is deterministic (the lowest free address), and a
//! request that cannot be met in full takes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::fabric::topology::{Prefix, Prefix6, SubnetConf};

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
    #[error("care-of pool {pool} of subnet {subnet:?} is exhausted: {need} IPv6 addresses needed, {free} free")]
    Exhausted6 {
        subnet: String,
        pool: Prefix6,
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
    /// The IPv6 pools of the subnets with a `prefix6`.
    pools6: BTreeMap<String, Pool6>,
}

/// A subnet's IPv6 care-of addresses: its `care_of_pool6` or its whole prefix, from the
/// lowest address up (a /64 is never scanned whole: addresses are taken in order, so the
/// scan stops after the held ones and those hosts use).
#[derive(Debug, Clone)]
struct Pool6 {
    range: Prefix6,
    /// The gateway and the subnet-router anycast address (RFC 4291 2.6.1).
    reserved: BTreeSet<Ipv6Addr>,
    held: BTreeMap<Ipv6Addr, String>,
}

#[derive(Debug, Clone)]
struct Pool {
    range: Prefix,
    /// Never handed out: the gateway, the network and broadcast addresses.
    reserved: BTreeSet<Ipv4Addr>,
    held: BTreeMap<Ipv4Addr, String>,
}

impl CareOfPools {
    /// One pool per subnet with an IPv4 prefix: its `care_of_pool`, or the whole prefix; and
    /// one per subnet with an IPv6 prefix.
    pub fn new<'a>(subnets: impl IntoIterator<Item = &'a SubnetConf>) -> Self {
        let subnets: Vec<&SubnetConf> = subnets.into_iter().collect();
        let pools = subnets
            .iter()
            .filter_map(|s| {
                let (prefix, gateway) = (s.prefix?, s.gateway?);
                let range = s.care_of_pool.unwrap_or(prefix);
                let mut reserved = BTreeSet::from([gateway]);
                let net = u32::from(prefix.addr);
                if prefix.len < 31 {
                    reserved.insert(Ipv4Addr::from(net));
                    reserved.insert(Ipv4Addr::from(net | !prefix.mask()));
                }
                Some((
                    s.name.clone(),
                    Pool {
                        range,
                        reserved,
                        held: BTreeMap::new(),
                    },
                ))
            })
            .collect();
        let pools6 = subnets
            .iter()
            .filter_map(|s| {
                let prefix = s.prefix6?;
                let mut reserved = BTreeSet::from([prefix.addr]);
                reserved.extend(s.gateway6);
                Some((
                    s.name.clone(),
                    Pool6 {
                        range: s.care_of_pool6.unwrap_or(prefix),
                        reserved,
                        held: BTreeMap::new(),
                    },
                ))
            })
            .collect();
        CareOfPools { pools, pools6 }
    }

    /// Whether `subnet` has IPv4 care-of addresses to give (it has a `prefix`).
    pub fn has_ipv4(&self, subnet: &str) -> bool {
        self.pools.contains_key(subnet)
    }

    /// Whether `subnet` has IPv6 care-of addresses to give (it has a `prefix6`).
    pub fn has_ipv6(&self, subnet: &str) -> bool {
        self.pools6.contains_key(subnet)
    }

    /// Takes `n` IPv6 addresses of `subnet` for `owner`, the lowest free ones, skipping any
    /// address `in_use` says is taken; all or nothing.
    pub fn take6(
        &mut self,
        subnet: &str,
        owner: &str,
        n: usize,
        in_use: impl Fn(Ipv6Addr) -> bool,
    ) -> Result<Vec<Ipv6Addr>, CareOfError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let pool = self
            .pools6
            .get_mut(subnet)
            .ok_or_else(|| CareOfError::UnknownSubnet(subnet.to_string()))?;
        let first = u128::from(pool.range.addr);
        let last = first | !pool.range.mask();
        let free =
            |a: &Ipv6Addr| !pool.reserved.contains(a) && !pool.held.contains_key(a) && !in_use(*a);
        let mut got = Vec::with_capacity(n);
        let mut a = first;
        while got.len() < n {
            if free(&Ipv6Addr::from(a)) {
                got.push(Ipv6Addr::from(a));
            }
            if a == last {
                break;
            }
            a += 1;
        }
        if got.len() < n {
            // Only a small pool runs out: every address of it was looked at.
            return Err(CareOfError::Exhausted6 {
                subnet: subnet.to_string(),
                pool: pool.range,
                need: n,
                free: got.len(),
            });
        }
        hold(&mut pool.held, owner, &got);
        Ok(got)
    }

    /// Gives back every IPv6 address `owner` holds in `subnet`; returns them.
    pub fn release6(&mut self, subnet: &str, owner: &str) -> Vec<Ipv6Addr> {
        let Some(pool) = self.pools6.get_mut(subnet) else {
            return Vec::new();
        };
        give_up(&mut pool.held, owner)
    }

    /// Marks IPv6 addresses as held (restoring state); false if one is taken or outside.
    pub fn restore6(&mut self, subnet: &str, owner: &str, addrs: &[Ipv6Addr]) -> bool {
        if addrs.is_empty() {
            return true;
        }
        let Some(pool) = self.pools6.get_mut(subnet) else {
            return false;
        };
        if !pool.fits(owner, addrs) {
            return false;
        }
        hold(&mut pool.held, owner, addrs);
        true
    }

    /// Who holds IPv6 care-of address `addr`, if anyone.
    pub fn holder6(&self, addr: Ipv6Addr) -> Option<&str> {
        self.pools6
            .values()
            .find_map(|p| p.held.get(&addr).map(String::as_str))
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
        if n == 0 {
            return Ok(Vec::new());
        }
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
        hold(&mut pool.held, owner, &free);
        Ok(free)
    }

    /// Gives back every address `owner` holds in `subnet`; returns them.
    pub fn release(&mut self, subnet: &str, owner: &str) -> Vec<Ipv4Addr> {
        let Some(pool) = self.pools.get_mut(subnet) else {
            return Vec::new();
        };
        give_up(&mut pool.held, owner)
    }

    /// Marks addresses as held (restoring state after a restart); false if one is taken.
    pub fn restore(&mut self, subnet: &str, owner: &str, addrs: &[Ipv4Addr]) -> bool {
        if addrs.is_empty() {
            return true; // nothing to hold (a subnet without IPv4 has no pool)
        }
        let Some(pool) = self.pools.get_mut(subnet) else {
            return false;
        };
        if !pool.fits(owner, addrs) {
            return false;
        }
        hold(&mut pool.held, owner, addrs);
        true
    }

    /// Marks addresses of either family as held ([`CareOfPools::restore`],
    /// [`CareOfPools::restore6`]); false, with nothing held, if one is taken.
    pub fn restore_any(&mut self, subnet: &str, owner: &str, addrs: &[IpAddr]) -> bool {
        let (v4, v6) = split(addrs);
        if !self.can_restore(subnet, owner, addrs) {
            return false;
        }
        self.restore(subnet, owner, &v4) && self.restore6(subnet, owner, &v6)
    }

    /// Whether [`CareOfPools::restore_any`] would succeed (changes nothing).
    pub fn can_restore(&self, subnet: &str, owner: &str, addrs: &[IpAddr]) -> bool {
        let (v4, v6) = split(addrs);
        let ok4 = v4.is_empty() || self.pools.get(subnet).is_some_and(|p| p.fits(owner, &v4));
        let ok6 = v6.is_empty() || self.pools6.get(subnet).is_some_and(|p| p.fits(owner, &v6));
        ok4 && ok6
    }

    /// Gives back the addresses `addrs` of `subnet` (those `owner` holds).
    pub fn give_back(&mut self, subnet: &str, owner: &str, addrs: &[IpAddr]) {
        let (v4, v6) = split(addrs);
        if let Some(p) = self.pools.get_mut(subnet) {
            p.held.retain(|a, o| !(o == owner && v4.contains(a)));
        }
        if let Some(p) = self.pools6.get_mut(subnet) {
            p.held.retain(|a, o| !(o == owner && v6.contains(a)));
        }
    }

    /// Who holds `addr`, if anyone.
    pub fn holder(&self, addr: Ipv4Addr) -> Option<&str> {
        self.pools
            .values()
            .find_map(|p| p.held.get(&addr).map(String::as_str))
    }
}

impl Pool {
    /// Whether `owner` may hold `addrs` here: inside the range, nobody else's.
    fn fits(&self, owner: &str, addrs: &[Ipv4Addr]) -> bool {
        addrs
            .iter()
            .all(|a| self.held.get(a).is_none_or(|o| o == owner) && self.range.contains(*a))
    }
}

impl Pool6 {
    /// Whether `owner` may hold `addrs` here: inside the range, not reserved, nobody else's.
    fn fits(&self, owner: &str, addrs: &[Ipv6Addr]) -> bool {
        addrs.iter().all(|a| {
            self.held.get(a).is_none_or(|o| o == owner)
                && self.range.contains(*a)
                && !self.reserved.contains(a)
        })
    }
}

/// Marks `addrs` as held by `owner`.
fn hold<A: Ord + Copy>(held: &mut BTreeMap<A, String>, owner: &str, addrs: &[A]) {
    for a in addrs {
        held.insert(*a, owner.to_string());
    }
}

/// Takes every address `owner` holds out of `held`; returns them.
fn give_up<A: Ord + Copy>(held: &mut BTreeMap<A, String>, owner: &str) -> Vec<A> {
    let mine: Vec<A> = held
        .iter()
        .filter(|(_, o)| o.as_str() == owner)
        .map(|(a, _)| *a)
        .collect();
    for a in &mine {
        held.remove(a);
    }
    mine
}

/// Addresses by family.
fn split(addrs: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in addrs {
        match a {
            IpAddr::V4(a) => v4.push(*a),
            IpAddr::V6(a) => v6.push(*a),
        }
    }
    (v4, v6)
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

    fn dual() -> CareOfPools {
        let t = Topology::parse(include_str!("../../topologies/dual-stack.toml")).unwrap();
        CareOfPools::new(&t.subnets)
    }

    #[test]
    fn ipv6_care_of_addresses_are_the_lowest_free_of_the_pool() {
        let mut p = dual();
        let t = Topology::parse(include_str!("../../topologies/dual-stack.toml")).unwrap();
        let foreign = t.subnets.iter().find(|s| s.name == "foreign").unwrap();
        let prefix = foreign.prefix6.unwrap();
        let pool = foreign.care_of_pool6.unwrap_or(prefix);
        let base = u128::from(pool.addr);
        let skipped = |a: Ipv6Addr| a == Ipv6Addr::from(base + 2);
        let a = p.take6("foreign", "vm", 2, skipped).unwrap();
        for x in &a {
            assert!(pool.contains(*x) && Some(*x) != foreign.gateway6 && *x != prefix.addr);
            assert!(!skipped(*x));
        }
        assert!(a[0] < a[1]);
        assert_eq!(p.holder6(a[0]), Some("vm"));
        let b = p.take6("foreign", "other", 1, |_| false).unwrap();
        assert!(!a.contains(&b[0]));
        assert!(!p.restore6("foreign", "third", &b), "held by another");
        assert_eq!(p.release6("foreign", "vm"), a);
        assert_eq!(p.holder6(a[0]), None);
        assert!(p.restore6("foreign", "vm", &a));
        assert!(matches!(
            p.take6("nowhere", "x", 1, |_| false),
            Err(CareOfError::UnknownSubnet(_))
        ));
    }

    #[test]
    fn a_small_ipv6_pool_runs_out_and_takes_nothing() {
        let mut t = Topology::parse(include_str!("../../topologies/dual-stack.toml")).unwrap();
        let s = t.subnets.iter_mut().find(|s| s.name == "foreign").unwrap();
        let p6 = s.prefix6.unwrap();
        s.care_of_pool6 = Some(crate::fabric::topology::Prefix6 {
            addr: Ipv6Addr::from(u128::from(p6.addr) | 0x100),
            len: 126,
        });
        let mut p = CareOfPools::new(&t.subnets);
        let e = p.take6("foreign", "big", 5, |_| false).unwrap_err();
        assert!(
            matches!(
                e,
                CareOfError::Exhausted6 {
                    need: 5,
                    free: 4,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(p.take6("foreign", "small", 4, |_| false).unwrap().len(), 4);
        assert!(p.take6("foreign", "more", 1, |_| false).is_err());
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
