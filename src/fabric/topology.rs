//! The topology file (../shared/INTERFACE.md): switches, links, subnets and known hosts.
//!
//! Parsing is serde with unknown keys rejected; [`Topology::validate`] then checks what serde
//! cannot and names the offending entry (`switch[2].dpid: ...`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use ofp13::MacAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An OpenFlow datapath id, written as an integer or as `00:00:00:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Dpid(pub u64);

impl fmt::Display for Dpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        let parts: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        write!(f, "{}", parts.join(":"))
    }
}

impl FromStr for Dpid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(h) = s.strip_prefix("0x") {
            return u64::from_str_radix(h, 16)
                .map(Dpid)
                .map_err(|_| format!("invalid datapath id {s:?}"));
        }
        if s.contains(':') {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() != 8 || parts.iter().any(|p| p.len() != 2) {
                return Err(format!(
                    "invalid datapath id {s:?}: expected 8 hex octets like 00:00:00:00:00:00:00:01"
                ));
            }
            let mut v = 0u64;
            for p in parts {
                let o =
                    u8::from_str_radix(p, 16).map_err(|_| format!("invalid datapath id {s:?}"))?;
                v = v << 8 | o as u64;
            }
            return Ok(Dpid(v));
        }
        s.parse::<u64>()
            .map(Dpid)
            .map_err(|_| format!("invalid datapath id {s:?}"))
    }
}

impl<'de> Deserialize<'de> for Dpid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(Dpid(v)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Serde through the text form (`Display` / `FromStr`), as the topology file writes it.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(PortRef);
serde_as_text!(Prefix);
serde_as_text!(Prefix6);

/// `[controller]`: listen addresses, overridable by flags.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    pub listen: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

/// A switch's place in the fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Core,
    Aggregation,
    Access,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Core => "core",
            Tier::Aggregation => "aggregation",
            Tier::Access => "access",
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConf {
    pub name: String,
    pub dpid: Dpid,
    pub tier: Tier,
}

/// A `switch:port` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    pub switch: String,
    pub port: u32,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.switch, self.port)
    }
}

impl FromStr for PortRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (sw, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not SWITCH:PORT"))?;
        let port: u32 = port
            .parse()
            .map_err(|_| format!("{s:?}: port {port:?} is not a number"))?;
        if sw.is_empty() || port == 0 || port > ofp13::port::MAX {
            return Err(format!(
                "{s:?} is not SWITCH:PORT with a port from 1 to 0xffffff00"
            ));
        }
        Ok(PortRef {
            switch: sw.to_string(),
            port,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConf {
    pub a: PortRef,
    pub b: PortRef,
}

/// An IPv4 prefix `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        }
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    pub fn overlaps(&self, o: &Prefix) -> bool {
        let m = self.mask() & o.mask();
        u32::from(self.addr) & m == u32::from(o.addr) & m
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv4 prefix like 192.168.11.0/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0 to 32"))?;
        let p = Prefix { addr, len };
        if u32::from(addr) & !p.mask() != 0 {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}?)",
                Prefix {
                    addr: Ipv4Addr::from(u32::from(addr) & p.mask()),
                    len
                }
            ));
        }
        Ok(p)
    }
}

/// An IPv6 prefix `a:b::/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Prefix6 {
    pub fn mask(&self) -> u128 {
        if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        }
    }
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr)
    }
    pub fn overlaps(&self, o: &Prefix6) -> bool {
        let m = self.mask() & o.mask();
        u128::from(self.addr) & m == u128::from(o.addr) & m
    }
}

impl fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv6 prefix like fd00:11::/64"))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv6 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 128)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0 to 128"))?;
        let p = Prefix6 { addr, len };
        if u128::from(addr) & !p.mask() != 0 {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}?)",
                Prefix6 {
                    addr: Ipv6Addr::from(u128::from(addr) & p.mask()),
                    len
                }
            ));
        }
        Ok(p)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConf {
    pub name: String,
    pub switch: String,
    /// The subnet's IPv4 prefix, with `gateway` (a subnet of an IPv6-only fabric has none,
    /// and `prefix6` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ports: Option<Vec<u32>>,
    #[serde(default)]
    pub care_of_pool: Option<Prefix>,
    /// The subnet's IPv6 prefix (dual stack), with `gateway6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix6: Option<Prefix6>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// Where IPv6 care-of addresses of VMs moved here come from (inside `prefix6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_of_pool6: Option<Prefix6>,
    /// The controller answers DHCPv4 for the subnet's known hosts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
    /// DNS servers DHCP offers (only with `dhcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv4Addr>,
    /// The DHCP lease time, seconds (only with `dhcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConf {
    pub name: String,
    pub mac: MacAddr,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// IPv4 and IPv6 addresses.
    #[serde(default)]
    pub ips: Option<Vec<IpAddr>>,
    pub at: PortRef,
}

impl SubnetConf {
    /// Whether `ip` lies in the subnet's IPv4 prefix (never, without one).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.prefix.is_some_and(|p| p.contains(ip))
    }

    /// Whether `ip` lies in the subnet's IPv6 prefix (never, without one).
    pub fn contains6(&self, ip: Ipv6Addr) -> bool {
        self.prefix6.is_some_and(|p| p.contains(ip))
    }

    /// Whether `ip` lies in the subnet's prefix of its family.
    pub fn contains_addr(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains(a),
            IpAddr::V6(a) => self.contains6(a),
        }
    }
}

impl HostConf {
    /// The host's IPv4 addresses (`ip` and those of `ips` together).
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.ip.into_iter().collect();
        v.extend(self.ips.iter().flatten().filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        }));
        v
    }

    /// The host's IPv6 addresses (from `ips`).
    pub fn addresses6(&self) -> Vec<Ipv6Addr> {
        self.ips
            .iter()
            .flatten()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
            .collect()
    }
}

/// A whole topology file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(default)]
    pub controller: ControllerConfig,
    #[serde(default, rename = "switch")]
    pub switches: Vec<SwitchConf>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkConf>,
    #[serde(default, rename = "subnet")]
    pub subnets: Vec<SubnetConf>,
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostConf>,
}

/// A topology file that cannot be used, with the path of the bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

fn err(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        reason: reason.into(),
    }
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(|e| ConfigError {
            path: format!("{}: {}", path.display(), e.path),
            reason: e.reason,
        })
    }

    /// Parses and validates topology text.
    pub fn parse(text: &str) -> Result<Topology, ConfigError> {
        let t: Topology = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text.get(..s.start).map_or(0, |p| p.lines().count().max(1));
                    format!("line {line}")
                })
                .unwrap_or_else(|| "file".to_string());
            err(at, e.message().to_string())
        })?;
        t.validate()?;
        Ok(t)
    }

    /// Checks the cross-references serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashMap::new();
        let mut dpids = HashMap::new();
        for (i, s) in self.switches.iter().enumerate() {
            if s.name.is_empty() {
                return Err(err(format!("switch[{i}].name"), "must not be empty"));
            }
            if let Some(j) = names.insert(s.name.as_str(), i) {
                return Err(err(
                    format!("switch[{i}].name"),
                    format!("duplicate switch name {:?} (also switch[{j}])", s.name),
                ));
            }
            if let Some(j) = dpids.insert(s.dpid, i) {
                return Err(err(
                    format!("switch[{i}].dpid"),
                    format!("duplicate datapath id {} (also switch[{j}])", s.dpid),
                ));
            }
        }
        let mut used: HashMap<&PortRef, String> = HashMap::new();
        for (i, l) in self.links.iter().enumerate() {
            for (end, p) in [("a", &l.a), ("b", &l.b)] {
                let path = format!("link[{i}].{end}");
                if !names.contains_key(p.switch.as_str()) {
                    return Err(err(path, format!("unknown switch {:?}", p.switch)));
                }
                if let Some(other) = used.insert(p, path.clone()) {
                    return Err(err(path, format!("port {p} is already used by {other}")));
                }
            }
            if l.a.switch == l.b.switch {
                return Err(err(
                    format!("link[{i}]"),
                    "a link must join two different switches",
                ));
            }
        }
        let mut subnet_names = HashSet::new();
        for (i, s) in self.subnets.iter().enumerate() {
            let path = format!("subnet[{i}]");
            if !subnet_names.insert(s.name.as_str()) {
                return Err(err(
                    format!("{path}.name"),
                    format!("duplicate subnet name {:?}", s.name),
                ));
            }
            if !names.contains_key(s.switch.as_str()) {
                return Err(err(
                    format!("{path}.switch"),
                    format!("unknown switch {:?}", s.switch),
                ));
            }
            self.validate_subnet4(i, s)?;
            self.validate_subnet6(i, s)?;
            if !s.dhcp && (!s.dns.is_empty() || s.lease_s.is_some()) {
                return Err(err(
                    format!(
                        "{path}.{}",
                        if s.dns.is_empty() { "lease_s" } else { "dns" }
                    ),
                    "only means something with dhcp = true",
                ));
            }
            if s.lease_s == Some(0) {
                return Err(err(format!("{path}.lease_s"), "must be at least 1 second"));
            }
            for (k, port) in s.ports.iter().flatten().enumerate() {
                let r = PortRef {
                    switch: s.switch.clone(),
                    port: *port,
                };
                if let Some(link) = used.get(&r) {
                    return Err(err(
                        format!("{path}.ports[{k}]"),
                        format!("{r} is a link port ({link})"),
                    ));
                }
            }
            for (j, o) in self.subnets.iter().enumerate().take(i) {
                if let (Some(p), Some(q)) = (s.prefix, o.prefix) {
                    if p.overlaps(&q) {
                        return Err(err(
                            format!("{path}.prefix"),
                            format!("{p} overlaps subnet[{j}] {:?} ({q})", o.name),
                        ));
                    }
                }
            }
        }
        let mut host_names = HashSet::new();
        let mut macs = HashMap::new();
        let mut ips = HashMap::new();
        let mut ips6 = HashMap::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let path = format!("host[{i}]");
            if !host_names.insert(h.name.as_str()) {
                return Err(err(
                    format!("{path}.name"),
                    format!("duplicate host name {:?}", h.name),
                ));
            }
            if let Some(j) = macs.insert(h.mac, i) {
                return Err(err(
                    format!("{path}.mac"),
                    format!("MAC {} is also host[{j}]'s", h.mac),
                ));
            }
            if h.addresses().is_empty() && h.addresses6().is_empty() {
                return Err(err(path.clone(), "a host needs ip or ips"));
            }
            for ip in h.addresses6() {
                let Some(sn) = self
                    .subnets
                    .iter()
                    .find(|s| s.prefix6.is_some_and(|p| p.contains(ip)))
                else {
                    return Err(err(
                        format!("{path}.ips"),
                        format!("{ip} is in no subnet's prefix6"),
                    ));
                };
                if Some(ip) == sn.gateway6 {
                    return Err(err(
                        format!("{path}.ips"),
                        format!("{ip} is the IPv6 gateway of subnet {:?}", sn.name),
                    ));
                }
                if let Some(j) = ips6.insert(ip, i) {
                    return Err(err(
                        format!("{path}.ips"),
                        format!("{ip} is also host[{j}]'s address"),
                    ));
                }
            }
            if !names.contains_key(h.at.switch.as_str()) {
                return Err(err(
                    format!("{path}.at"),
                    format!("unknown switch {:?}", h.at.switch),
                ));
            }
            if let Some(link) = used.get(&h.at) {
                return Err(err(
                    format!("{path}.at"),
                    format!("{} is a link port ({link})", h.at),
                ));
            }
            for ip in h.addresses() {
                let Some(sn) = self.subnets.iter().find(|s| s.contains(ip)) else {
                    return Err(err(format!("{path}.ip"), format!("{ip} is in no subnet")));
                };
                if Some(ip) == sn.gateway {
                    return Err(err(
                        format!("{path}.ip"),
                        format!("{ip} is the gateway of subnet {:?}", sn.name),
                    ));
                }
                if let Some(j) = ips.insert(ip, i) {
                    return Err(err(
                        format!("{path}.ip"),
                        format!("{ip} is also host[{j}]'s address"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A subnet's IPv4 part: `prefix` and `gateway` together, the gateway a host address of
    /// the prefix, the pool inside it; a subnet without them needs `prefix6` and has no
    /// IPv4 settings (care-of pool, DHCP).
    fn validate_subnet4(&self, i: usize, s: &SubnetConf) -> Result<(), ConfigError> {
        let path = format!("subnet[{i}]");
        let (prefix, gateway) = match (s.prefix, s.gateway) {
            (Some(p), Some(g)) => (p, g),
            (Some(_), None) => return Err(err(format!("{path}.gateway"), "prefix needs one")),
            (None, Some(_)) => return Err(err(format!("{path}.prefix"), "gateway needs one")),
            (None, None) => {
                if s.prefix6.is_none() {
                    return Err(err(
                        format!("{path}.prefix"),
                        "a subnet needs prefix and gateway, or prefix6 and gateway6, or both",
                    ));
                }
                let v4_only = if s.care_of_pool.is_some() {
                    Some("care_of_pool")
                } else if s.dhcp {
                    Some("dhcp")
                } else {
                    None
                };
                if let Some(key) = v4_only {
                    return Err(err(
                        format!("{path}.{key}"),
                        "is for IPv4 and needs prefix and gateway",
                    ));
                }
                return Ok(());
            }
        };
        if !prefix.contains(gateway) {
            return Err(err(
                format!("{path}.gateway"),
                format!("{gateway} is outside the subnet's prefix {prefix}"),
            ));
        }
        if gateway == prefix.addr
            || (prefix.len < 31 && u32::from(gateway) == u32::from(prefix.addr) | !prefix.mask())
        {
            return Err(err(
                format!("{path}.gateway"),
                format!("{gateway} is the network or broadcast address of {prefix}"),
            ));
        }
        if let Some(pool) = &s.care_of_pool {
            if !prefix.contains(pool.addr) || pool.len < prefix.len {
                return Err(err(
                    format!("{path}.care_of_pool"),
                    format!("{pool} is not inside the subnet's prefix {prefix}"),
                ));
            }
        }
        Ok(())
    }

    /// A subnet's IPv6 part: `prefix6` and `gateway6` together, the gateway a host address
    /// of the prefix, the pool inside it, no prefix overlapping an earlier subnet's.
    fn validate_subnet6(&self, i: usize, s: &SubnetConf) -> Result<(), ConfigError> {
        let path = format!("subnet[{i}]");
        let (p, gw) = match (s.prefix6, s.gateway6) {
            (None, None) => {
                if s.care_of_pool6.is_some() {
                    return Err(err(format!("{path}.care_of_pool6"), "needs prefix6"));
                }
                return Ok(());
            }
            (Some(p), Some(gw)) => (p, gw),
            (Some(_), None) => return Err(err(format!("{path}.gateway6"), "prefix6 needs one")),
            (None, Some(_)) => return Err(err(format!("{path}.prefix6"), "gateway6 needs one")),
        };
        if p.len > 126 {
            return Err(err(
                format!("{path}.prefix6"),
                format!("{p} leaves no room for hosts (at most /126)"),
            ));
        }
        if !p.contains(gw) {
            return Err(err(
                format!("{path}.gateway6"),
                format!("{gw} is outside the subnet's prefix6 {p}"),
            ));
        }
        if gw == p.addr {
            return Err(err(
                format!("{path}.gateway6"),
                format!("{gw} is the subnet-router anycast address of {p}"),
            ));
        }
        if let Some(pool) = &s.care_of_pool6 {
            if !p.contains(pool.addr) || pool.len < p.len {
                return Err(err(
                    format!("{path}.care_of_pool6"),
                    format!("{pool} is not inside the subnet's prefix6 {p}"),
                ));
            }
            if pool.contains(gw) {
                return Err(err(
                    format!("{path}.care_of_pool6"),
                    format!("{pool} holds the gateway {gw}"),
                ));
            }
        }
        for (j, o) in self.subnets.iter().enumerate().take(i) {
            if let Some(op) = o.prefix6.filter(|op| p.overlaps(op)) {
                return Err(err(
                    format!("{path}.prefix6"),
                    format!("{p} overlaps subnet[{j}] {:?} ({op})", o.name),
                ));
            }
        }
        Ok(())
    }

    /// The switch with this datapath id.
    pub fn switch_by_dpid(&self, dpid: u64) -> Option<&SwitchConf> {
        self.switches.iter().find(|s| s.dpid.0 == dpid)
    }

    /// Switch names by datapath id.
    pub fn names_by_dpid(&self) -> BTreeMap<u64, String> {
        self.switches
            .iter()
            .map(|s| (s.dpid.0, s.name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: &str = r#"
[[switch]]
name = "r1"
dpid = 1
tier = "core"
[[switch]]
name = "r3"
dpid = "00:00:00:00:00:00:00:03"
tier = "access"
[[link]]
a = "r1:1"
b = "r3:1"
[[subnet]]
name = "home"
switch = "r3"
prefix = "192.168.11.0/24"
gateway = "192.168.11.1"
[[host]]
name = "vm"
mac = "02:00:00:00:11:03"
ip = "192.168.11.3"
at = "r3:3"
"#;

    #[test]
    fn parses_the_interface_example() {
        let t = Topology::parse(PAPER).unwrap();
        assert_eq!(t.switches[1].dpid, Dpid(3));
        assert_eq!(t.switches[1].dpid.to_string(), "00:00:00:00:00:00:00:03");
        assert_eq!(t.switch_by_dpid(3).unwrap().name, "r3");
        // Written back, ports and prefixes keep their text form and parse again.
        let text = toml::to_string(&t).unwrap();
        assert!(
            text.contains("a = \"r1:1\"") && text.contains("prefix = \"192.168.11.0/24\""),
            "{text}"
        );
        let again = Topology::parse(&text).unwrap();
        assert_eq!(again.links[0].b, t.links[0].b);
        assert_eq!(again.subnets[0].prefix, t.subnets[0].prefix);
    }

    #[test]
    fn rejections_name_the_entry() {
        let cases = [
            (
                PAPER.replace("dpid = 1", "dpid = 3"),
                "switch[1].dpid: duplicate datapath id",
            ),
            (
                PAPER.replace("name = \"r1\"", "name = \"r3\""),
                "switch[1].name: duplicate switch name",
            ),
            (
                PAPER.replace("b = \"r3:1\"", "b = \"r9:1\""),
                "link[0].b: unknown switch",
            ),
            (
                PAPER.replace("gateway = \"192.168.11.1\"", "gateway = \"192.168.12.1\""),
                "subnet[0].gateway",
            ),
            (
                PAPER.replace("at = \"r3:3\"", "at = \"r3:1\""),
                "host[0].at: r3:1 is a link port",
            ),
            (
                PAPER.replace("ip = \"192.168.11.3\"", "ip = \"10.0.0.3\""),
                "host[0].ip: 10.0.0.3 is in no subnet",
            ),
            (PAPER.replace("tier = \"core\"", "tier = \"spine\""), "line"),
            (
                PAPER.replace("tier = \"core\"", "tier = \"core\"\ncolour = 1"),
                "unknown field",
            ),
            (
                PAPER.replace("192.168.11.0/24", "192.168.11.1/24"),
                "host bits set",
            ),
        ];
        for (text, want) in cases {
            let e = Topology::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "expected {want:?} in {e:?}");
        }
    }

    /// The paper testbed's home subnet made dual stack, the VM with an IPv6 address too.
    fn dual(subnet6: &str, vm: &str) -> String {
        PAPER
            .replace(
                "gateway = \"192.168.11.1\"",
                &format!("gateway = \"192.168.11.1\"\n{subnet6}"),
            )
            .replace("ip = \"192.168.11.3\"", vm)
    }

    const V6: &str = "prefix6 = \"fd00:11::/64\"\ngateway6 = \"fd00:11::1\"";

    #[test]
    fn dual_stack_subnets_and_hosts_parse_and_write_back() {
        let text = dual(
            &format!("{V6}\ncare_of_pool6 = \"fd00:11::ff00/120\"\ndhcp = true\ndns = [\"192.168.11.53\"]\nlease_s = 3600"),
            "ips = [\"192.168.11.3\", \"fd00:11::3\"]",
        );
        let t = Topology::parse(&text).unwrap();
        let home = &t.subnets[0];
        assert_eq!(home.prefix6.unwrap().to_string(), "fd00:11::/64");
        assert_eq!(home.gateway6, Some("fd00:11::1".parse().unwrap()));
        assert!(home.dhcp && home.lease_s == Some(3600) && home.dns.len() == 1);
        let vm = &t.hosts[0];
        assert_eq!(vm.addresses(), vec![Ipv4Addr::new(192, 168, 11, 3)]);
        assert_eq!(
            vm.addresses6(),
            vec!["fd00:11::3".parse::<Ipv6Addr>().unwrap()]
        );
        let again = Topology::parse(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(again.subnets[0].care_of_pool6, home.care_of_pool6);
        assert_eq!(again.hosts[0].addresses6(), vm.addresses6());
        // An IPv4-only file writes back without any of the new keys.
        let plain = toml::to_string(&Topology::parse(PAPER).unwrap()).unwrap();
        for key in ["prefix6", "gateway6", "dhcp", "dns", "lease_s"] {
            assert!(!plain.contains(key), "{key} in {plain}");
        }
    }

    #[test]
    fn dual_stack_rejections_name_the_entry() {
        let v4 = "ip = \"192.168.11.3\"";
        let cases = [
            (
                dual("prefix6 = \"fd00:11::/64\"", v4),
                "subnet[0].gateway6: prefix6 needs one",
            ),
            (
                dual("gateway6 = \"fd00:11::1\"", v4),
                "subnet[0].prefix6: gateway6 needs one",
            ),
            (
                dual("prefix6 = \"fd00:11::/64\"\ngateway6 = \"fd00:12::1\"", v4),
                "subnet[0].gateway6: fd00:12::1 is outside",
            ),
            (
                dual("prefix6 = \"fd00:11::/64\"\ngateway6 = \"fd00:11::\"", v4),
                "subnet-router anycast",
            ),
            (
                dual("prefix6 = \"fd00:11::1/64\"\ngateway6 = \"fd00:11::1\"", v4),
                "host bits set",
            ),
            (
                dual("prefix6 = \"fd00:11::/129\"\ngateway6 = \"fd00:11::1\"", v4),
                "0 to 128",
            ),
            (
                dual(&format!("{V6}\ncare_of_pool6 = \"fd00:12::/120\""), v4),
                "subnet[0].care_of_pool6: fd00:12::/120 is not inside",
            ),
            (
                dual(&format!("{V6}\ncare_of_pool6 = \"fd00:11::/120\""), v4),
                "holds the gateway",
            ),
            (
                dual("care_of_pool6 = \"fd00:11::/120\"", v4),
                "needs prefix6",
            ),
            (
                dual(V6, "ips = [\"192.168.11.3\", \"fd00:99::3\"]"),
                "host[0].ips: fd00:99::3 is in no subnet's prefix6",
            ),
            (
                dual(V6, "ips = [\"192.168.11.3\", \"fd00:11::1\"]"),
                "is the IPv6 gateway",
            ),
            (dual(V6, "ips = [\"192.168.11.3\", \"zz::1\"]"), "line"),
            (
                dual("dns = [\"192.168.11.53\"]", v4),
                "subnet[0].dns: only means something with dhcp",
            ),
            (
                dual("lease_s = 60", v4),
                "subnet[0].lease_s: only means something with dhcp",
            ),
            (
                dual("dhcp = true\nlease_s = 0", v4),
                "subnet[0].lease_s: must be at least 1",
            ),
        ];
        for (text, want) in cases {
            let e = Topology::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "expected {want:?} in {e:?}");
        }
        // Two subnets whose IPv6 prefixes overlap.
        let both = dual(V6, v4)
            + "[[subnet]]\nname = \"other\"\nswitch = \"r1\"\nprefix = \"10.0.0.0/24\"\n\
               gateway = \"10.0.0.1\"\nprefix6 = \"fd00::/16\"\ngateway6 = \"fd00::1\"\n";
        let e = Topology::parse(&both).unwrap_err().to_string();
        assert!(
            e.contains("subnet[1].prefix6") && e.contains("overlaps subnet[0]"),
            "{e}"
        );
        // A host with IPv6 addresses only is accepted; the same address twice is not.
        let only6 = dual(V6, "ips = [\"fd00:11::3\"]");
        assert!(Topology::parse(&only6).is_ok());
    }

    /// The paper testbed's home subnet with IPv6 only (no `prefix`, no `gateway`), the VM
    /// with an IPv6 address only.
    fn only6(subnet: &str) -> String {
        PAPER
            .replace(
                "prefix = \"192.168.11.0/24\"\ngateway = \"192.168.11.1\"",
                subnet,
            )
            .replace("ip = \"192.168.11.3\"", "ips = [\"fd00:11::3\"]")
    }

    #[test]
    fn a_subnet_may_have_ipv6_only_and_writes_back_without_ipv4_keys() {
        let text = only6(V6);
        assert!(!text.contains("192.168.11."), "{text}");
        let t = Topology::parse(&text).unwrap();
        let home = &t.subnets[0];
        assert_eq!((home.prefix, home.gateway), (None, None));
        assert!(home.contains6("fd00:11::3".parse().unwrap()));
        assert!(!home.contains(Ipv4Addr::new(192, 168, 11, 3)));
        let back = toml::to_string(&t).unwrap();
        let again = Topology::parse(&back).unwrap();
        assert_eq!(
            (again.subnets[0].prefix, again.subnets[0].gateway),
            (None, None)
        );
        assert_eq!(again.subnets[0].prefix6, home.prefix6);
        let cases = [
            (
                only6(""),
                "subnet[0].prefix: a subnet needs prefix and gateway, or prefix6",
            ),
            (
                only6(&format!("{V6}\nprefix = \"192.168.11.0/24\"")),
                "subnet[0].gateway: prefix needs one",
            ),
            (
                only6(&format!("{V6}\ngateway = \"192.168.11.1\"")),
                "subnet[0].prefix: gateway needs one",
            ),
            (
                only6(&format!("{V6}\ncare_of_pool = \"192.168.11.192/26\"")),
                "subnet[0].care_of_pool: is for IPv4",
            ),
            (
                only6(&format!("{V6}\ndhcp = true")),
                "subnet[0].dhcp: is for IPv4",
            ),
            // An IPv4 address for a subnet that has none.
            (
                only6(V6).replace(
                    "ips = [\"fd00:11::3\"]",
                    "ips = [\"192.168.11.3\", \"fd00:11::3\"]",
                ),
                "host[0].ip: 192.168.11.3 is in no subnet",
            ),
        ];
        for (text, want) in cases {
            let e = Topology::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "expected {want:?} in {e:?}");
        }
    }
}
