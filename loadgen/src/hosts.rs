//! The switches ofload plays and the hosts and VMs behind their ports, read from the topology.

use crate::*;

/// A configured host at a loaded switch.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) mac: MacAddr,
    pub(crate) ip: Ipv4Addr,
    pub(crate) port: u32,
    pub(crate) gateway: Ipv4Addr,
}

/// A VM of the migration workload: home and foreign place.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub(crate) mac: MacAddr,
    pub(crate) ips: Vec<Ipv4Addr>,
    pub(crate) home: (usize, u32),
    pub(crate) foreign: (usize, u32),
}

pub(crate) const HOME_IDLE: u8 = 0;
pub(crate) const MOVING_AWAY: u8 = 1;
pub(crate) const AWAY_IDLE: u8 = 2;
pub(crate) const MOVING_HOME: u8 = 3;

/// One emulated switch as the topology describes it.
#[derive(Debug, Clone)]
pub(crate) struct SwInfo {
    pub(crate) idx: usize,
    pub(crate) name: String,
    pub(crate) dpid: u64,
    pub(crate) nports: u32,
    /// Ports that are not links: where the controller floods an ARP request.
    pub(crate) host_ports: Vec<u32>,
    pub(crate) hosts: Vec<Host>,
    /// (prefix address, mask, gateway) of the switch's first subnet.
    pub(crate) subnet: Option<(u32, u32, Ipv4Addr)>,
    pub(crate) spare_first: u32,
    pub(crate) loaded: bool,
}

pub(crate) fn ip_u32(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

pub(crate) fn load_switches(topo: &Topology, n: usize, spare: u32) -> Result<Vec<SwInfo>> {
    let mut maxport: HashMap<&str, u32> = HashMap::new();
    let mut links: HashMap<&str, HashSet<u32>> = HashMap::new();
    for l in &topo.links {
        for e in [&l.a, &l.b] {
            let m = maxport.entry(e.switch.as_str()).or_default();
            *m = (*m).max(e.port);
            links.entry(e.switch.as_str()).or_default().insert(e.port);
        }
    }
    for h in &topo.hosts {
        let m = maxport.entry(h.at.switch.as_str()).or_default();
        *m = (*m).max(h.at.port);
    }
    let largest_rack = topo
        .switches
        .iter()
        .map(|s| topo.hosts.iter().filter(|h| h.at.switch == s.name).count())
        .max()
        .unwrap_or(0) as u32;
    let spare = if spare == 0 {
        largest_rack.max(4)
    } else {
        spare
    };
    let mut sws: Vec<_> = topo.switches.iter().collect();
    sws.sort_by_key(|s| s.dpid.0);
    let mut out = Vec::new();
    let mut loaded = 0;
    for s in sws {
        let name = s.name.as_str();
        // The load is IPv4: the switch's first subnet with an IPv4 prefix.
        let sub = topo
            .subnets
            .iter()
            .filter(|x| x.switch == name)
            .find_map(|x| Some((x.prefix?, x.gateway?)));
        let mut hosts = Vec::new();
        for h in topo.hosts.iter().filter(|h| h.at.switch == name) {
            for ip in h.addresses() {
                if let Some(gateway) = topo
                    .subnets
                    .iter()
                    .find(|x| x.switch == name && x.contains(ip))
                    .and_then(|x| x.gateway)
                {
                    hosts.push(Host {
                        mac: h.mac,
                        ip,
                        port: h.at.port,
                        gateway,
                    });
                }
            }
        }
        let max = maxport.get(name).copied().unwrap_or(0);
        let nports = max + spare;
        let lp = links.get(name).cloned().unwrap_or_default();
        let is_loaded = loaded < n && sub.is_some() && !hosts.is_empty();
        if is_loaded {
            loaded += 1;
        }
        out.push(SwInfo {
            idx: out.len(),
            name: name.to_string(),
            dpid: s.dpid.0,
            nports,
            host_ports: (1..=nports).filter(|p| !lp.contains(p)).collect(),
            hosts,
            subnet: sub.map(|(p, g)| (ip_u32(p.addr), p.mask(), g)),
            spare_first: max + 1,
            loaded: is_loaded,
        });
    }
    if loaded < n {
        bail!("the topology has only {loaded} switches with a subnet and hosts; --switches {n} asked for more");
    }
    Ok(out)
}

/// Free addresses of a switch's subnet: not the network, broadcast, gateway or a configured
/// host.
pub(crate) fn free_addresses(sw: &SwInfo, topo_ips: &HashSet<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let Some((net, mask, gw)) = sw.subnet else {
        return Vec::new();
    };
    let size = (!mask).saturating_add(1);
    (1..size.saturating_sub(1))
        .map(|i| Ipv4Addr::from(net + i))
        .filter(|ip| *ip != gw && !topo_ips.contains(ip))
        .collect()
}

pub(crate) fn new_host_mac(dpid: u64, i: usize) -> MacAddr {
    let d = dpid.to_be_bytes();
    let i = (i as u32).to_be_bytes();
    MacAddr([0x0e, d[6], d[7], i[1], i[2], i[3]])
}
