//! The fabric's L3 routing app: each subnet's gateway switch answers ARP and ping for the
//! gateway address, learns its hosts, resolves unknown ones itself (holding the first packets
//! until the answer comes), and has host delivery flows installed; routes between subnets come
//! from [`crate::fabric::plan`]. Handlers are pure in the Faucet sense: an event in, the OpenFlow
//! messages for that switch out.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use ofp13::{port, AsyncConfig, Body, Message};
use tracing::{debug, info};

use crate::app::clock::{Clock, SystemClock};
use crate::app::dhcp;
use crate::app::effect::Effect;
use crate::fabric::plan::{
    packet_out, reinject, Fabric, FastMap, FastSet, HostLoc, SwitchCtx, SwitchId, COOKIE_MASK_KIND,
    COOKIE_PIPELINE, COOKIE_REDIRECT, GATEWAY_MAC,
};
use crate::mobility;
use crate::mobility::careof::CareOfPools;
use crate::mobility::flows::Vm;
use crate::packet::{self, Arp, Ethernet, Ipv4};
use crate::switch::runtime::{Answers, Registry, SwitchHandle};

/// How many packets are held per unresolved address, and for how long.
const HOLD_MAX: usize = 16;
const HOLD_FOR: Duration = Duration::from_secs(3);
/// ICMP redirects per (sender, destination): at most one per interval, and a burst of this
/// many, then silence for the quiet period (Linux's ip_rt_redirect_* in spirit: a host that
/// ignores redirects is not flooded with them).
const REDIRECT_INTERVAL: Duration = Duration::from_millis(20);
const REDIRECT_BURST: u32 = 10;
use crate::mobility::flows::REDIRECT_QUIET;
/// Above this many remembered (sender, destination) pairs, quiet ones are forgotten.
const REDIRECT_PAIRS: usize = 4096;
/// How long ordinary frames of a VM at the port it left are taken for its last words there
/// rather than a move back (announcements, RARP or gratuitous ARP, always count).
pub(crate) const PREVIOUS_GRACE: Duration = Duration::from_secs(10);
/// How long a released care-of address is still treated as one (packets in flight).
const CARE_OF_AFTERLIFE: Duration = Duration::from_secs(60);
/// How often a connected switch's table is compared with the plan (ONOS polls every 5 s).
pub const DEFAULT_AUDIT: Duration = Duration::from_secs(5);
/// How long a learned host whose port went away is kept (`--detached-grace`).
pub const DEFAULT_DETACHED_GRACE: Duration = Duration::from_secs(600);
/// How often every host port gets an unsolicited router advertisement (RFC 4861's default
/// MaxRtrAdvInterval, 600 s, leaves a host three chances within the router lifetime; a
/// third of it, so that a lost one or two never let a host's default route expire).
pub const DEFAULT_ADVERTISE_EVERY: Duration = Duration::from_secs(200);
/// How long before a switch that could not be added to a VM's cover is tried again.
const COVER_RETRY: Duration = Duration::from_secs(5);

/// Where a binding came from: the topology file's are fixed; learned ones can be forgotten
/// when their port goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Configured,
    Learned,
}

#[derive(Debug, Clone)]
struct Held {
    since: Instant,
    packets: Vec<(u32, Bytes)>,
}

/// A VM away from the switch of its home subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwayState {
    pub(crate) away: mobility::flows::Away,
    /// Where it was at home (shown by the API; a return may be to any port of that switch).
    pub(crate) home: (String, u32),
    /// The subnet its care-of addresses come from.
    pub(crate) care_of_subnet: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// Every address's binding: where the host with that address is now. Change it only
    /// through [`State::bind`] and [`State::unbind`], which keep `macs` in step.
    pub(crate) hosts: FastMap<Ipv4Addr, (HostLoc, Origin)>,
    /// Every IPv6 address's binding (declared, or learned from neighbour discovery).
    pub(crate) hosts6: FastMap<std::net::Ipv6Addr, (crate::fabric::plan::HostLoc6, Origin)>,
    /// The IPv6 addresses of each MAC (kept in step with `hosts6` by [`State::bind6`]).
    macs6: FastMap<ofp13::MacAddr, std::collections::BTreeSet<std::net::Ipv6Addr>>,
    /// The addresses of each MAC (the packet-in path looks hosts up by MAC).
    macs: FastMap<ofp13::MacAddr, std::collections::BTreeSet<Ipv4Addr>>,
    /// Which hosts are at each port of each switch (several behind one port: a hypervisor's
    /// bridge, hosts on a hub).
    at: FastMap<
        String,
        std::collections::BTreeMap<u32, std::collections::BTreeSet<ofp13::MacAddr>>,
    >,
    /// VMs away from home, by MAC.
    pub(crate) away: FastMap<ofp13::MacAddr, AwayState>,
    pub(crate) pools: CareOfPools,
    /// Migrations installed, and refused or failed.
    pub(crate) migrations_done: u64,
    pub(crate) migrations_failed: u64,
    /// Bumped by every migration (the store writes only newer states).
    pub(crate) version: u64,
    /// Where each VM was before its last migration, and when it left: until
    /// [`PREVIOUS_GRACE`] has passed, ordinary frames from there do not move it back (an
    /// orchestrator may call the API before the hypervisor switches over).
    pub(crate) previous: FastMap<ofp13::MacAddr, ((String, u32), Instant)>,
    /// Care-of addresses given back, and when: for a while packets in flight may still
    /// carry them, and nobody may be asked for them.
    pub(crate) released_care_of: FastMap<std::net::IpAddr, Instant>,
    /// The same, oldest first, to forget them in order (amortised O(1) per release).
    released_order: std::collections::VecDeque<(Instant, std::net::IpAddr)>,
    /// Where a VM was announced while its migration was being installed: the next move.
    pub(crate) next_move: FastMap<ofp13::MacAddr, (String, u32)>,
    /// When a switch was last added to a VM's cover (or tried).
    pub(crate) cover_tried: FastMap<(ofp13::MacAddr, String), Instant>,
    /// Switches whose hosts talk to a VM through its home agent, to be added to its cover.
    pub(crate) cover_wanted: FastMap<ofp13::MacAddr, std::collections::BTreeSet<String>>,
    /// Switches whose hosts stopped talking to a VM (its rewrite there idled out), to be
    /// taken out of its cover.
    pub(crate) cover_unwanted: FastMap<ofp13::MacAddr, std::collections::BTreeSet<String>>,
    /// VMs whose cover a task is changing now (it takes what is wanted until nothing is).
    pub(crate) cover_busy: FastSet<ofp13::MacAddr>,
    /// Learned hosts whose port went away (down or deleted), and since when: still bound to
    /// their last place, movable by announcement or API, forgotten when the detached grace
    /// has passed.
    pub(crate) detached: FastMap<ofp13::MacAddr, Instant>,
    /// VMs whose migration is being installed (repeated announcements are ignored).
    pub(crate) migrating: FastSet<ofp13::MacAddr>,
    /// Claims being checked, by VM (see [`crate::app::trust`]).
    pub(crate) verifying: FastMap<ofp13::MacAddr, crate::app::claims::Verifying>,
    /// (switch, port, MAC) whose claim was refused, and until when it is ignored.
    pub(crate) quarantine: FastMap<(String, u32, ofp13::MacAddr), Instant>,
    /// Claims refused since start.
    pub(crate) announcements_refused: u64,
    /// Moves armed by the API, waiting for their announcement, by VM.
    pub(crate) armed: FastMap<ofp13::MacAddr, crate::app::claims::Armed>,
    /// Ended moves (armed ones and migrations), newest first.
    pub(crate) recent: std::collections::VecDeque<crate::app::claims::MoveView>,
    /// The last id given to a move.
    pub(crate) move_ids: u64,
    /// What started each VM's next migration (and the armed move's id).
    pub(crate) triggers: FastMap<ofp13::MacAddr, (crate::app::claims::Trigger, Option<u64>)>,
    /// Switches connected and reconciled since they connected.
    pub(crate) reconciled: FastSet<String>,
    /// Per (switch, VM), updates whose consumer entries there are not acknowledged yet.
    installing: FastMap<ofp13::MacAddr, std::collections::BTreeMap<String, u32>>,
    /// Switches whose planned producers wait for the switches with their consumers to be
    /// ready (they are reconciled when one becomes ready).
    pub(crate) waiting: FastSet<String>,
    /// Switches with consumer entries no longer planned, waiting until no producer of their
    /// address can be left (see [`State::quiet`]; they are reconciled once it is).
    pub(crate) stale: FastSet<String>,
    /// Since when every switch of the fabric is ready (None: one is not).
    pub(crate) quiet_since: Option<Instant>,
    /// Care-of addresses given back by updates whose last phase has not run yet: nobody
    /// gets them meanwhile (that phase deletes entries that match them).
    pub(crate) draining: FastSet<std::net::IpAddr>,
    /// Updates being installed, their drained last phase included (the audit waits).
    pub(crate) updates: u32,
    /// Per VM, the last phase of its latest update while it waits for its drain: the VM's
    /// next update takes it over (its tables before include those entries).
    pub(crate) cleanups: FastMap<ofp13::MacAddr, crate::mobility::update::PendingCleanup>,
    /// Numbers the pending cleanups.
    pub(crate) next_cleanup: u64,
    /// ICMP redirects sent, by (sender, destination, for a TCP segment): when the last was,
    /// and how many.
    redirects: FastMap<(std::net::IpAddr, std::net::IpAddr, bool), (Instant, u32)>,
    /// Packets waiting for an address to be resolved, by (switch, address).
    held: FastMap<(String, std::net::IpAddr), Held>,
    /// The host ports each switch reported (when it connected, and by port status since):
    /// each gets its meter and entries toward the controller.
    pub(crate) ports: FastMap<String, std::collections::BTreeSet<u32>>,
    /// Switches that implement no meters (they said so): planned without meters or per-port
    /// entries, their controller-bound traffic unbounded.
    pub(crate) unmetered: FastSet<String>,
}

impl State {
    /// The state of a fabric nobody has talked to: its declared hosts at home, every
    /// care-of pool free.
    pub fn new(fabric: &Fabric) -> State {
        let mut st = State {
            pools: CareOfPools::new(&fabric.topology.subnets),
            ..State::default()
        };
        for h in fabric.configured_hosts() {
            st.bind(h, Origin::Configured);
        }
        for h in fabric.configured_hosts6() {
            st.bind6(h, Origin::Configured);
        }
        st
    }

    /// Every switch's whole planned table.
    pub fn tables(
        &self,
        fabric: &Fabric,
    ) -> std::collections::BTreeMap<String, Vec<crate::fabric::plan::Flow>> {
        fabric
            .topology
            .switches
            .iter()
            .map(|s| (s.name.clone(), self.switch_plan(fabric, &s.name)))
            .collect()
    }

    /// One switch's whole planned table.
    pub fn switch_plan(&self, fabric: &Fabric, switch: &str) -> Vec<crate::fabric::plan::Flow> {
        // Every host is a VM here, those with IPv6 addresses only included.
        let vms = self.vms_for(switch);
        mobility::flows::switch_plan(fabric, switch, &vms, &self.plan_ports(fabric, switch))
    }

    /// The host ports of `switch` as its plan uses them: every one it reported (before it ever
    /// connected, those the topology file names), and those of them that get a meter.
    pub(crate) fn plan_ports(&self, fabric: &Fabric, switch: &str) -> mobility::flows::HostPorts {
        let host = match self.ports.get(switch) {
            Some(p) => p.clone(),
            None => fabric.declared_ports(switch),
        };
        let metered = if self.unmetered.contains(switch) {
            Default::default()
        } else {
            host.clone()
        };
        mobility::flows::HostPorts { host, metered }
    }

    /// Every care-of address held.
    pub fn care_of_addresses(&self) -> std::collections::BTreeSet<Ipv4Addr> {
        self.away
            .values()
            .flat_map(|a| a.away.care_of.iter().copied())
            .collect()
    }

    /// The VM a per-VM entry (cookie and match) belongs to: its cookie names an IPv4 home
    /// address; an IPv6 entry's match pins one of the VM's IPv6 addresses.
    pub(crate) fn owner_of(&self, cookie: u64, m: &ofp13::Match) -> Option<ofp13::MacAddr> {
        match cookie & COOKIE_MASK_KIND {
            crate::fabric::plan::COOKIE_MOBILITY6 => crate::mobility::update::matched_addresses(m)
                .find_map(|(a, _)| self.binding(a).filter(|_| a.is_ipv6()).map(|(mac, _)| mac)),
            _ => self
                .hosts
                .get(&Ipv4Addr::from(cookie as u32))
                .map(|(h, _)| h.mac),
        }
    }

    /// The host an address (of either family) is bound to: its MAC and switch.
    pub(crate) fn binding(&self, ip: std::net::IpAddr) -> Option<(ofp13::MacAddr, &str)> {
        match ip {
            std::net::IpAddr::V4(a) => self.hosts.get(&a).map(|(h, _)| (h.mac, h.switch.as_str())),
            std::net::IpAddr::V6(a) => self.hosts6.get(&a).map(|(h, _)| (h.mac, h.switch.as_str())),
        }
    }

    /// Every care-of address held, IPv4 and IPv6.
    pub fn care_of_all(&self) -> std::collections::BTreeSet<std::net::IpAddr> {
        self.away
            .values()
            .flat_map(|a| {
                let v4 = a.away.care_of.iter().map(|c| std::net::IpAddr::from(*c));
                v4.chain(a.away.care_of6.iter().map(|c| std::net::IpAddr::from(*c)))
            })
            .collect()
    }

    /// Binds an address to a host (replacing any earlier binding of that address).
    pub(crate) fn bind(&mut self, loc: HostLoc, origin: Origin) {
        self.unbind(loc.ip);
        self.macs.entry(loc.mac).or_default().insert(loc.ip);
        self.place(&loc.switch, loc.port, loc.mac);
        self.hosts.insert(loc.ip, (loc, origin));
    }

    /// Holds a packet (that came in at `in_port`) for `ip`, unresolved at `switch`: the
    /// newest [`HOLD_MAX`] per address, for [`HOLD_FOR`]. Whether it is the first held (the
    /// address is to be asked for now).
    pub(crate) fn hold(
        &mut self,
        switch: &str,
        ip: std::net::IpAddr,
        in_port: u32,
        frame: Bytes,
        now: Instant,
    ) -> bool {
        self.held
            .retain(|_, h| now.duration_since(h.since) < HOLD_FOR);
        let e = self
            .held
            .entry((switch.to_string(), ip))
            .or_insert_with(|| Held {
                since: now,
                packets: Vec::new(),
            });
        if e.packets.len() >= HOLD_MAX {
            e.packets.remove(0);
        }
        e.packets.push((in_port, frame));
        e.packets.len() == 1
    }

    /// The packets held for `ip` at `switch`, sent on through the pipeline (the address is
    /// resolved: its delivery entry goes before them).
    pub(crate) fn release(&mut self, switch: &str, ip: std::net::IpAddr) -> Vec<Body> {
        self.held
            .remove(&(switch.to_string(), ip))
            .map(|h| {
                h.packets
                    .into_iter()
                    .map(|(in_port, data)| reinject(in_port, data))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets every IPv6 address of `mac`.
    pub(crate) fn unbind6_all(&mut self, mac: ofp13::MacAddr) {
        let mut last = None;
        for ip in self.macs6.remove(&mac).into_iter().flatten() {
            if let Some((h, _)) = self.hosts6.remove(&ip) {
                last = Some((h.switch, h.port));
            }
        }
        // A host with IPv6 addresses only leaves its place with them.
        if let (Some((sw, port)), false) = (last, self.macs.contains_key(&mac)) {
            self.unplace(&sw, port, mac);
        }
    }

    /// Binds an IPv6 address to a host (an address bound already keeps its binding: IPv6
    /// bindings never move by a claim).
    pub(crate) fn bind6(&mut self, loc: crate::fabric::plan::HostLoc6, origin: Origin) -> bool {
        if self.hosts6.contains_key(&loc.ip) {
            return false;
        }
        if !self.macs.contains_key(&loc.mac) && !self.macs6.contains_key(&loc.mac) {
            self.place(&loc.switch, loc.port, loc.mac);
        }
        self.macs6.entry(loc.mac).or_default().insert(loc.ip);
        self.hosts6.insert(loc.ip, (loc, origin));
        true
    }

    fn place(&mut self, switch: &str, port: u32, mac: ofp13::MacAddr) {
        self.at
            .entry(switch.to_string())
            .or_default()
            .entry(port)
            .or_default()
            .insert(mac);
    }

    fn unplace(&mut self, switch: &str, port: u32, mac: ofp13::MacAddr) {
        if let Some(ports) = self.at.get_mut(switch) {
            if let Some(set) = ports.get_mut(&port) {
                set.remove(&mac);
                if set.is_empty() {
                    ports.remove(&port);
                }
            }
        }
    }

    /// Moves every address of `mac` to (`switch`, `port`).
    pub(crate) fn relocate(&mut self, mac: ofp13::MacAddr, switch: &str, port: u32) {
        if !self.knows_mac(mac) {
            return;
        }
        let mut old = Vec::new();
        for ip in self.macs.get(&mac).into_iter().flatten() {
            if let Some((h, _)) = self.hosts.get_mut(ip) {
                old.push((h.switch.clone(), h.port));
                h.switch = switch.to_string();
                h.port = port;
            }
        }
        for ip in self.macs6.get(&mac).into_iter().flatten() {
            if let Some((h, _)) = self.hosts6.get_mut(ip) {
                old.push((h.switch.clone(), h.port));
                h.switch = switch.to_string();
                h.port = port;
            }
        }
        for (sw, p) in old {
            self.unplace(&sw, p, mac);
        }
        self.place(switch, port, mac);
    }

    /// The hosts at (`switch`, `port`).
    pub(crate) fn hosts_at(&self, switch: &str, port: u32) -> Vec<ofp13::MacAddr> {
        self.at
            .get(switch)
            .and_then(|p| p.get(&port))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The VMs whose entries may be on `switch`: those there, and every VM away from home.
    pub(crate) fn vms_for(&self, switch: &str) -> Vec<Vm> {
        let mut macs: Vec<ofp13::MacAddr> = self
            .at
            .get(switch)
            .map(|p| p.values().flatten().copied().collect())
            .unwrap_or_default();
        macs.extend(self.away.keys().copied());
        macs.sort();
        macs.dedup();
        macs.into_iter().filter_map(|m| self.vm(m)).collect()
    }

    /// The host ports of `switch` the plan meters: those it reported, or before it ever
    /// connected, those the topology file names ([`Fabric::declared_ports`]); none on a
    /// switch without meters.
    ///
    /// [`Fabric::declared_ports`]: crate::fabric::plan::Fabric::declared_ports
    pub(crate) fn host_ports(
        &self,
        fabric: &crate::fabric::plan::Fabric,
        switch: &str,
    ) -> std::collections::BTreeSet<u32> {
        self.plan_ports(fabric, switch).metered
    }

    /// The meters planned on `switch`: those of its host ports and its controller meter; none
    /// on a switch without meters.
    pub(crate) fn meters(
        &self,
        fabric: &crate::fabric::plan::Fabric,
        switch: &str,
    ) -> Vec<crate::fabric::plan::Meter> {
        if self.unmetered.contains(switch) {
            return Vec::new();
        }
        fabric.meters(switch, &self.host_ports(fabric, switch))
    }

    /// Forgets an address's binding.
    pub(crate) fn unbind(&mut self, ip: Ipv4Addr) -> Option<(HostLoc, Origin)> {
        let old = self.hosts.remove(&ip)?;
        if let Some(set) = self.macs.get_mut(&old.0.mac) {
            set.remove(&ip);
            if set.is_empty() {
                self.macs.remove(&old.0.mac);
                // A host that keeps IPv6 addresses stays where it is.
                if !self.macs6.contains_key(&old.0.mac) {
                    self.unplace(&old.0.switch, old.0.port, old.0.mac);
                }
            }
        }
        Some(old)
    }

    /// Whether a switch holds every consumer entry of the VM with this MAC that its plan
    /// has: connected, reconciled since, and no update of the VM's consumers there
    /// unacknowledged. The VM's producers elsewhere are installed only once it is.
    pub(crate) fn ready_for(&self, switch: &str, mac: ofp13::MacAddr) -> bool {
        self.reconciled.contains(switch)
            && self
                .installing
                .get(&mac)
                .is_none_or(|m| !m.contains_key(switch))
    }

    /// An update of this VM adds consumers on `switch`: not ready for it until acknowledged.
    pub(crate) fn mark_installing(&mut self, mac: ofp13::MacAddr, switch: &str) {
        *self
            .installing
            .entry(mac)
            .or_default()
            .entry(switch.to_string())
            .or_default() += 1;
    }

    /// That update's consumers on `switch` are acknowledged (or it was not sent).
    pub(crate) fn unmark_installing(&mut self, mac: ofp13::MacAddr, switch: &str) {
        if let Some(m) = self.installing.get_mut(&mac) {
            if let Some(n) = m.get_mut(switch) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(switch);
                }
            }
            if m.is_empty() {
                self.installing.remove(&mac);
            }
        }
    }

    /// Whether a switch holds every consumer entry of its plan.
    pub(crate) fn ready(&self, switch: &str) -> bool {
        self.reconciled.contains(switch)
            && !self.installing.values().any(|m| m.contains_key(switch))
    }

    /// Whether every switch has been ready for at least `drain`: then no switch can hold a
    /// producer that the plan does not have, nor can a packet it rewrote still be in the
    /// fabric, and consumer entries the plan does not have may go.
    pub(crate) fn quiet(&self, now: Instant, drain: Duration) -> bool {
        self.quiet_since
            .is_some_and(|t| now.saturating_duration_since(t) >= drain)
    }

    /// Brings [`State::quiet_since`] up to date after a switch's readiness or the number of
    /// updates changed; true when the fabric has just become quiet.
    pub(crate) fn refresh_quiet(
        &mut self,
        switches: &[crate::fabric::topology::SwitchConf],
        now: Instant,
    ) -> bool {
        // Every switch ready (all reconciled: only topology switches are; no update's
        // consumers unacknowledged anywhere) and no update running, its drained last phase
        // included (its consumers go then, not before). O(1): it runs at every wave.
        if self.reconciled.len() >= switches.len()
            && self.installing.is_empty()
            && self.updates == 0
        {
            let began = self.quiet_since.is_none();
            self.quiet_since.get_or_insert(now);
            began
        } else {
            self.quiet_since = None;
            false
        }
    }

    /// Whether this MAC is detached (its port went away).
    pub(crate) fn is_detached(&self, mac: ofp13::MacAddr) -> bool {
        !self.detached.is_empty() && self.detached.contains_key(&mac)
    }

    /// Whether `ip` is a care-of address at `now`, or was one a short while before.
    pub(crate) fn is_care_of(&self, ip: impl Into<std::net::IpAddr>, now: Instant) -> bool {
        let ip = ip.into();
        let held = match ip {
            std::net::IpAddr::V4(a) => self.pools.holder(a).is_some(),
            std::net::IpAddr::V6(a) => self.pools.holder6(a).is_some(),
        };
        held || self
            .released_care_of
            .get(&ip)
            .is_some_and(|t| now.duration_since(*t) < CARE_OF_AFTERLIFE)
    }

    /// Gives back the care-of addresses `owner` holds in `subnet` at `now` (IPv4, then IPv6),
    /// remembering them.
    pub(crate) fn release_care_of(
        &mut self,
        subnet: &str,
        owner: &str,
        now: Instant,
    ) -> Vec<std::net::IpAddr> {
        let mut gone: Vec<std::net::IpAddr> = self
            .pools
            .release(subnet, owner)
            .into_iter()
            .map(Into::into)
            .collect();
        gone.extend(
            self.pools
                .release6(subnet, owner)
                .into_iter()
                .map(std::net::IpAddr::from),
        );
        while let Some(&(t, a)) = self.released_order.front() {
            if now.duration_since(t) < CARE_OF_AFTERLIFE {
                break;
            }
            self.released_order.pop_front();
            if self.released_care_of.get(&a) == Some(&t) {
                self.released_care_of.remove(&a);
            }
        }
        for a in &gone {
            self.released_order.push_back((now, *a));
            self.released_care_of.insert(*a, now);
        }
        gone
    }

    /// Where the host with this MAC is, without building its [`Vm`].
    pub(crate) fn location(&self, mac: ofp13::MacAddr) -> Option<(&str, u32)> {
        if let Some(ip) = self.macs.get(&mac).and_then(|s| s.iter().next()) {
            return self.hosts.get(ip).map(|(h, _)| (h.switch.as_str(), h.port));
        }
        let ip = self.macs6.get(&mac)?.iter().next()?;
        self.hosts6
            .get(ip)
            .map(|(h, _)| (h.switch.as_str(), h.port))
    }

    /// How a host came to be known: its first IPv4 address's origin; for a host with IPv6
    /// addresses only, declared if any of them is.
    pub(crate) fn origin(&self, mac: ofp13::MacAddr) -> Option<Origin> {
        if let Some(ip) = self.macs.get(&mac).and_then(|s| s.iter().next()) {
            return self.hosts.get(ip).map(|(_, o)| *o);
        }
        let ips = self.macs6.get(&mac)?;
        Some(
            if ips.iter().any(|ip| {
                self.hosts6
                    .get(ip)
                    .is_some_and(|(_, o)| *o == Origin::Configured)
            }) {
                Origin::Configured
            } else {
                Origin::Learned
            },
        )
    }

    /// The addresses bound to this MAC, ascending.
    pub(crate) fn ips_of(&self, mac: ofp13::MacAddr) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.macs.get(&mac).into_iter().flatten().copied()
    }

    /// Whether any address (IPv4 or IPv6) is bound to this MAC.
    pub(crate) fn knows_mac(&self, mac: ofp13::MacAddr) -> bool {
        self.macs.contains_key(&mac) || self.macs6.contains_key(&mac)
    }

    /// Whether an IPv4 address is bound to this MAC.
    pub(crate) fn has_ipv4(&self, mac: ofp13::MacAddr) -> bool {
        self.macs.contains_key(&mac)
    }

    /// How many hosts (MACs) are known.
    pub(crate) fn host_count(&self) -> usize {
        self.macs.len()
            + self
                .macs6
                .keys()
                .filter(|m| !self.macs.contains_key(m))
                .count()
    }

    /// The VM with this MAC: its addresses (ascending), location and care-of addresses.
    pub(crate) fn vm(&self, mac: ofp13::MacAddr) -> Option<Vm> {
        let ips: Vec<Ipv4Addr> = self
            .macs
            .get(&mac)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let ips6: Vec<std::net::Ipv6Addr> = self
            .macs6
            .get(&mac)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let (switch, port) = self.location(mac)?;
        Some(Vm {
            mac,
            switch: switch.to_string(),
            port,
            ips,
            ips6,
            away: self.away.get(&mac).map(|a| a.away.clone()),
        })
    }

    /// Every host as a VM, by MAC.
    pub(crate) fn vms(&self) -> Vec<Vm> {
        let mut macs: Vec<ofp13::MacAddr> =
            self.macs.keys().chain(self.macs6.keys()).copied().collect();
        macs.sort();
        macs.dedup();
        macs.into_iter().filter_map(|m| self.vm(m)).collect()
    }
}

/// One host as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub mac: ofp13::MacAddr,
    pub ips: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (declared and learned).
    pub ips6: Vec<std::net::Ipv6Addr>,
    pub origin: Origin,
    /// False for a learned host whose port went away (kept for the detached grace).
    pub attached: bool,
    pub location: (String, u32),
    pub home: (String, u32),
    pub care_of: Vec<Ipv4Addr>,
    /// Its IPv6 care-of addresses (in the order of `ips6`).
    pub care_of6: Vec<std::net::Ipv6Addr>,
}

/// What an ordinary frame tells the router about where its sender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// The VM answered the probe at the place a claim took it from.
    Refutes,
    Moved,
    Back,
    Nothing,
}

/// Where and when a packet-in's frame arrived: its switch (resolved once per message), the
/// switch's ports, the port, and the time the event was given.
#[derive(Clone, Copy)]
struct At<'a, 's> {
    sw: &'a SwitchCtx<'s>,
    ports: Ports<'a>,
    in_port: u32,
    now: Instant,
}

/// How an ARP request is answered.
enum ArpAnswer {
    Mac(ofp13::MacAddr),
    /// Unknown address of a local subnet: the gateway (this address) asks for it.
    Resolve(Ipv4Addr),
    Nothing,
}

/// The switch's port numbers, asked for only when a packet must go out of every host port
/// (reading them clones the port table, which the hot path avoids).
pub type Ports<'a> = &'a dyn Fn() -> Vec<u32>;

/// The routing and mobility app.
pub struct Router {
    pub fabric: Fabric,
    /// The fabric's switches by datapath id, resolved once per message.
    pub(crate) by_dpid: FastMap<u64, SwitchId>,
    /// Sharded for readers: a packet-in's shared read touches only its thread's shard, so
    /// the runtime's workers do not pass one lock word back and forth (a plain `RwLock`'s
    /// reader count took 10 % of the controller's time under ofload's ARP load).
    pub(crate) state: ShardedLock<State>,
    /// Where migrations are recorded before any flow is sent (`--state DIR`).
    pub(crate) store: Option<crate::app::store::Durable>,
    /// The connected switches (the controller's registry), to reach other switches than
    /// the one an event came from. None: a router used on its own (`plan`, unit tests),
    /// which installs nothing.
    pub(crate) switches: Option<Registry>,
    /// Configured hosts' names by MAC, and MACs by name.
    pub(crate) names_by_mac: FastMap<ofp13::MacAddr, String>,
    pub(crate) macs_by_name: FastMap<String, ofp13::MacAddr>,
    /// How often each switch's table is compared with the plan after its first
    /// reconciliation (None: only on connect).
    pub(crate) audit: Option<Duration>,
    /// One per switch: its reconciliation and the batches updates send it never interleave.
    pub(crate) switch_locks: FastMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// One per VM: its migrations and cover changes run one at a time, in arrival order.
    pub(crate) vm_locks: std::sync::Mutex<FastMap<ofp13::MacAddr, Arc<tokio::sync::Mutex<()>>>>,
    /// How long the drained last phase of an update waits ([`crate::mobility::update::DRAIN`]).
    pub(crate) drain: Duration,
    /// How long a learned host whose port went away is kept.
    pub(crate) detached_grace: Duration,
    /// What an unexpected announcement does (`--announcements`).
    pub(crate) announcements: crate::app::claims::Announcements,
    /// How long a refused claimant is ignored (`--quarantine`).
    pub(crate) quarantine: Duration,
    /// Woken when an update ends (care-of addresses it gave back are free again).
    pub(crate) updates_done: tokio::sync::Notify,
    /// Where the router reads the time; its state is given the time by its callers.
    clock: Arc<dyn Clock>,
    /// How often the state was locked for writing (the packet-in path writes only when
    /// something changes).
    writes: std::sync::atomic::AtomicU64,
    /// Each switch's meter statistics as last read (by the audit, or `GET /api/v1/meters`):
    /// what `/metrics` reports as packets dropped on their way to the controller.
    pub(crate) meter_stats:
        std::sync::Mutex<std::collections::BTreeMap<String, Vec<ofp13::MeterStats>>>,
    /// Which link ends are down, which switches gone, which links flap
    /// ([`crate::app::replan`]).
    pub(crate) links: std::sync::Mutex<crate::app::links::LinkWatch>,
    /// How often the routes were planned again because links changed.
    pub(crate) replans: std::sync::atomic::AtomicU64,
    /// Switches the re-plans reconciled (those whose routes changed).
    pub(crate) replan_reconciles: std::sync::atomic::AtomicU64,
    /// LLDP frames received from the controller's own LLDP (link checks).
    pub(crate) lldp_heard: std::sync::atomic::AtomicU64,
    /// DHCP replies sent, by [`DHCP_REPLIES`] kind, and requests left unanswered.
    dhcp: [std::sync::atomic::AtomicU64; DHCP_REPLIES.len()],
    /// Broadcast and multicast frames of VMs away relayed to their home subnets.
    relayed: std::sync::atomic::AtomicU64,
    /// Whether the declared links are checked with LLDP ([`crate::app::links`]).
    pub(crate) lldp: bool,
    /// How often each switch's host ports get unsolicited router advertisements
    /// ([`DEFAULT_ADVERTISE_EVERY`]).
    pub(crate) advertise_every: Duration,
    /// Packet-ins handled, by kind ([`PACKET_IN_KINDS`]).
    packet_ins: crate::switch::metrics::ShardedCounts<{ PACKET_IN_KINDS.len() }>,
}

/// The kinds of `servswitch_dhcp_total`: replies by type, then requests not answered.
const DHCP_REPLIES: [&str; 4] = ["offer", "ack", "nak", "unanswered"];

/// The kinds of packet-in `/metrics` counts (`servswitch_packet_ins_total{kind=...}`): by
/// ethertype, and `other` for anything else (or no Ethernet header).
pub const PACKET_IN_KINDS: [&str; 6] = ["arp", "rarp", "ipv4", "ipv6", "lldp", "other"];

fn packet_in_kind(ethertype: Option<u16>) -> usize {
    match ethertype {
        Some(packet::ETH_ARP) => 0,
        Some(packet::ETH_RARP) => 1,
        Some(packet::ETH_IPV4) => 2,
        Some(packet::ETH_IPV6) => 3,
        Some(packet::ETH_LLDP) => 4,
        _ => 5,
    }
}

impl Router {
    pub fn new(fabric: Fabric) -> Router {
        let st = State::new(&fabric);
        let by_dpid = fabric
            .topology
            .switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.dpid.0, SwitchId(i as u32)))
            .collect();
        let fabric_switch_locks = fabric
            .topology
            .switches
            .iter()
            .map(|s| (s.name.clone(), Arc::default()))
            .collect();
        let names_by_mac = fabric
            .topology
            .hosts
            .iter()
            .map(|h| (h.mac, h.name.clone()))
            .collect();
        let macs_by_name = fabric
            .topology
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.mac))
            .collect();
        let links = crate::app::links::LinkWatch::new(fabric.topology.links.iter().map(|l| {
            (
                (l.a.switch.clone(), l.a.port),
                (l.b.switch.clone(), l.b.port),
            )
        }));
        Router {
            fabric,
            by_dpid,
            names_by_mac,
            macs_by_name,
            state: ShardedLock::new(st),
            store: None,
            switches: None,
            audit: Some(DEFAULT_AUDIT),
            switch_locks: fabric_switch_locks,
            vm_locks: Default::default(),
            drain: crate::mobility::update::DRAIN,
            detached_grace: DEFAULT_DETACHED_GRACE,
            announcements: Default::default(),
            quarantine: crate::app::claims::DEFAULT_QUARANTINE,
            updates_done: tokio::sync::Notify::new(),
            clock: Arc::new(SystemClock),
            writes: std::sync::atomic::AtomicU64::new(0),
            meter_stats: Default::default(),
            links: std::sync::Mutex::new(links),
            replans: Default::default(),
            lldp_heard: Default::default(),
            dhcp: Default::default(),
            relayed: Default::default(),
            replan_reconciles: Default::default(),
            packet_ins: Default::default(),
            lldp: true,
            advertise_every: DEFAULT_ADVERTISE_EVERY,
        }
    }

    /// Sets how long the last phase of an update waits (the default, [`crate::mobility::update::DRAIN`],
    /// covers Open vSwitch's datapath caches; an emulated fabric has none).
    pub fn with_drain(mut self, drain: Duration) -> Router {
        self.drain = drain;
        self
    }

    /// Sets the clock every time-dependent decision reads (tests move a
    /// [`crate::app::clock::ManualClock`] by hand).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Router {
        self.clock = clock;
        self
    }

    /// The time, as this router's clock has it (what its driver gives each event).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The time of an event the runtime read at `read` ([`Clock::event_time`]).
    pub fn event_time(&self, read: Instant) -> Instant {
        self.clock.event_time(read)
    }

    /// Whether the declared links are checked with LLDP (on by default); off, they are
    /// trusted as declared and only port status and connections take them out of use.
    pub fn with_lldp(mut self, check: bool) -> Router {
        self.lldp = check;
        self
    }

    /// Sets how often unsolicited router advertisements are sent (tests shorten it).
    pub fn with_advertise_every(mut self, every: Duration) -> Router {
        self.advertise_every = every;
        self
    }

    /// Sets how long a learned host whose port went away is kept (`--detached-grace`).
    pub fn with_detached_grace(mut self, grace: Duration) -> Router {
        self.detached_grace = grace;
        self
    }

    /// Sets the audit interval (None: reconcile only when a switch connects).
    pub fn with_audit(mut self, every: Option<Duration>) -> Router {
        self.audit = every;
        self
    }

    /// How many switches are connected and have had their table reconciled since they
    /// connected (and not lost it since: a switch that missed an update's batch is
    /// reconciled again when it reconnects).
    pub fn reconciled_switches(&self) -> usize {
        self.read().reconciled.len()
    }

    /// Whether any update (a migration, a cover change, the drained last phase of one) is
    /// being installed now.
    pub fn migrations_in_progress(&self) -> bool {
        let st = self.read();
        !st.migrating.is_empty() || st.updates > 0
    }

    /// Lets the router reach the switches the controller connects: `registry` is the one
    /// the controller is built with ([`crate::switch::runtime::Controller::with_registry`]).
    pub fn with_switches(mut self, registry: Registry) -> Router {
        self.switches = Some(registry);
        self
    }

    /// The session of the switch `name`, if it is connected.
    pub(crate) fn switch_handle(&self, name: &str) -> Option<SwitchHandle> {
        let dpid = self.fabric.dpid_of(name)?;
        self.switches.as_ref()?.get(dpid)
    }

    /// The state, to change it.
    pub(crate) fn lock(&self) -> ShardedLockWriteGuard<'_, State> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// How often the state has been locked for writing.
    pub fn state_writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The state, to read it (packet-ins that change nothing share it).
    pub(crate) fn read(&self) -> ShardedLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every host as the API shows it: addresses, where it is, where home is, care-of.
    pub fn host_states(&self) -> Vec<HostState> {
        let st = self.read();
        let mut v: Vec<HostState> = st
            .vms()
            .into_iter()
            .map(|vm| {
                let origin = st.origin(vm.mac).unwrap_or(Origin::Learned);
                let a = st.away.get(&vm.mac);
                HostState {
                    mac: vm.mac,
                    origin,
                    attached: !st.detached.contains_key(&vm.mac),
                    location: (vm.switch.clone(), vm.port),
                    home: a.map_or((vm.switch.clone(), vm.port), |a| a.home.clone()),
                    care_of: a.map(|a| a.away.care_of.clone()).unwrap_or_default(),
                    care_of6: a.map(|a| a.away.care_of6.clone()).unwrap_or_default(),
                    ips: vm.ips,
                    ips6: vm.ips6,
                }
            })
            .collect();
        v.sort_by_key(|h| (h.ips.first().copied(), h.ips6.first().copied()));
        v
    }

    /// The switches that rewrite for a VM away from home (None when it is at home).
    pub fn cover_of(&self, mac: ofp13::MacAddr) -> Option<std::collections::BTreeSet<String>> {
        self.read().away.get(&mac).map(|a| a.away.cover.clone())
    }

    /// Migrations installed since start (`servswitch_migrations_total`).
    pub fn migrations_done(&self) -> u64 {
        self.read().migrations_done
    }

    /// One asynchronous message from switch `name` (whose ports `ports` lists): the answers
    /// pushed onto `out`, the work it asks for beyond them onto `effects`. What
    /// [`crate::app::driver::Driver`] calls once it has the switch's name; callable without
    /// a runtime (tests, the fuzz target), which then read the effects.
    pub fn handle_message(
        &self,
        name: &str,
        ports: Ports<'_>,
        msg: &Message,
        out: &mut Vec<Body>,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        self.by_name(name, out, |sw, answers| {
            self.handle_message_at(sw, ports, msg, answers, effects, now)
        });
    }

    /// Runs `f` at switch `name` with a list of answers, then appends them to `out` as
    /// messages: the entry points by name that tests and tools call.
    fn by_name(
        &self,
        name: &str,
        out: &mut Vec<Body>,
        f: impl FnOnce(SwitchCtx<'_>, &mut Answers),
    ) {
        if let Some(sw) = self.fabric.switch_ctx(name) {
            let mut answers = Answers::default();
            f(sw, &mut answers);
            out.extend(answers.drain_bodies());
        }
    }

    /// [`Router::handle_message`] for a switch already resolved (the driver's path).
    pub fn handle_message_at(
        &self,
        sw: SwitchCtx<'_>,
        ports: Ports<'_>,
        msg: &Message,
        out: &mut Answers,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let name = sw.name;
        match &msg.body {
            Body::PacketIn(pi) => self.packet_in_at(sw, ports, &pi.view(), out, effects, now),
            Body::PortStatus(ps) if self.fabric.is_link_port(name, ps.desc.port_no) => {
                let up = ps.reason != ofp13::OFPPR_DELETE && ps.desc.is_up();
                self.link_port(name, ps.desc.port_no, up, effects, now);
            }
            Body::PortStatus(ps) => {
                let gone = ps.reason == ofp13::OFPPR_DELETE || !ps.desc.is_up();
                self.port_meter(name, ps.desc.port_no, ps.reason, out);
                self.port_changed(name, ps.desc.port_no, gone, effects, now);
            }
            Body::FlowRemoved(fr) => self.flow_removed(name, fr, effects),
            _ => {}
        }
    }

    /// A host port added or deleted: its meter and entries toward the controller follow it,
    /// and its subnet's flood lists ([`crate::fabric::plan::Fabric::subnet_flows`]).
    /// A new port's meter is deleted first (an `OFPMC_ADD` of a meter the switch still has
    /// would fail), then added, then its entries; a deleted port's entries go, then its meter.
    fn port_meter(&self, name: &str, port: u32, reason: u8, out: &mut Answers) {
        use crate::fabric::plan::Meter;
        let added = match reason {
            ofp13::OFPPR_ADD => true,
            ofp13::OFPPR_DELETE => false,
            _ => return,
        };
        let (unmetered, before, after) = {
            let mut st = self.lock();
            let unmetered = st.unmetered.contains(name);
            let declared = self.fabric.declared_ports(name);
            let ports = st.ports.entry(name.to_string()).or_insert(declared);
            let known = ports.contains(&port);
            if added == known || self.fabric.is_link_port(name, port) || port > port::MAX {
                return;
            }
            let before = ports.clone();
            if added {
                ports.insert(port);
            } else {
                ports.remove(&port);
            }
            (unmetered, before, ports.clone())
        };
        // The subnet's flood lists change on every port of it; a new port's entries come
        // after its meter, a deleted port's go before it.
        let subnet = {
            let before = self.fabric.subnet_flows(name, &before);
            let after = self.fabric.subnet_flows(name, &after);
            let d = crate::fabric::plan::table_diff(&before, &after);
            let mut v: Vec<Body> = d
                .changes
                .iter()
                .map(|(f, _)| Body::FlowMod(f.add()))
                .collect();
            v.extend(
                d.extra
                    .iter()
                    .map(|f| Body::FlowMod(crate::fabric::plan::delete_strict(*f))),
            );
            v
        };
        let meter = (!unmetered)
            .then(|| self.fabric.port_meter(name, port))
            .flatten();
        let Some(meter) = meter else {
            out.extend(subnet);
            return;
        };
        let flows = self.fabric.port_flows(name, port);
        if added {
            out.push(Body::MeterMod(Meter::delete(port)));
            out.push(Body::MeterMod(meter.meter_mod(ofp13::OFPMC_ADD)));
            out.extend(flows.iter().map(|f| Body::FlowMod(f.add())));
            out.extend(subnet);
        } else {
            out.extend(subnet);
            out.extend(
                flows
                    .iter()
                    .map(|f| Body::FlowMod(crate::fabric::plan::delete_strict(f))),
            );
            out.push(Body::MeterMod(Meter::delete(port)));
        }
    }

    /// Whether a migration of this MAC is being installed.
    pub fn is_migrating(&self, mac: ofp13::MacAddr) -> bool {
        self.read().migrating.contains(&mac)
    }

    /// Keeps a switch's meter statistics for `/metrics`.
    pub fn record_meter_stats(&self, switch: &str, stats: Vec<ofp13::MeterStats>) {
        if let Ok(mut m) = self.meter_stats.lock() {
            m.insert(switch.to_string(), stats);
        }
    }

    /// `servswitch_meter_dropped_packets_total`: per switch and meter, the packets on their
    /// way to the controller that the meter dropped (as last read from the switch).
    fn meter_metrics(&self) -> String {
        use std::fmt::Write;
        let mut s = String::from(
            "# HELP servswitch_meter_dropped_packets_total Packets on their way to the controller that a meter dropped (meter: a host port's number, or controller: the switch's bound on all its packet-ins), as last read from the switch.\n# TYPE servswitch_meter_dropped_packets_total counter\n",
        );
        if let Ok(m) = self.meter_stats.lock() {
            for (switch, stats) in m.iter() {
                for st in stats {
                    let dropped = st.dropped();
                    let _ = writeln!(
                        s,
                        "servswitch_meter_dropped_packets_total{{switch=\"{switch}\",meter=\"{}\"}} {dropped}",
                        ofp13::text::meter_id_text(st.meter_id)
                    );
                }
            }
        }
        s
    }

    /// Packet-ins handled so far, by kind ([`PACKET_IN_KINDS`]).
    pub fn packet_ins(&self) -> [(&'static str, u64); PACKET_IN_KINDS.len()] {
        std::array::from_fn(|i| (PACKET_IN_KINDS[i], self.packet_ins.get(i)))
    }

    /// The router's lines for `/metrics` (Prometheus text format).
    pub fn metrics_text(&self) -> String {
        let mut meters = self.meter_metrics();
        meters.push_str(
            "# HELP servswitch_packet_ins_total Packet-ins the application handled, by ethertype (lldp: the controller's link checks).\n# TYPE servswitch_packet_ins_total counter\n",
        );
        for (kind, n) in self.packet_ins() {
            meters.push_str(&format!(
                "servswitch_packet_ins_total{{kind=\"{kind}\"}} {n}\n"
            ));
        }
        meters.push_str(
            "# HELP servswitch_dhcp_total DHCP requests the controller handled, by the reply sent (unanswered: another's name, an unknown host or place, an unserved subnet, a release).\n# TYPE servswitch_dhcp_total counter\n",
        );
        for (kind, n) in DHCP_REPLIES.iter().zip(&self.dhcp) {
            meters.push_str(&format!(
                "servswitch_dhcp_total{{reply=\"{kind}\"}} {}\n",
                n.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        meters.push_str(&format!(
            "# HELP servswitch_broadcasts_relayed_total Broadcast and multicast frames of VMs away from home sent on to their home subnets.\n# TYPE servswitch_broadcasts_relayed_total counter\nservswitch_broadcasts_relayed_total {}\n",
            self.relayed.load(std::sync::atomic::Ordering::Relaxed)
        ));
        let links = self.link_states(self.now());
        let count = |f: &dyn Fn(crate::app::links::Unused) -> bool| {
            links.iter().filter(|l| l.unused.is_some_and(f)).count()
        };
        let links_down = count(&|_| true);
        let miswired = count(&|u| u == crate::app::links::Unused::Miswired);
        let unverified = count(&|u| u == crate::app::links::Unused::Silent);
        let st = self.read();
        meters + &format!(
            "# HELP servswitch_migrations_total Migrations installed.\n# TYPE servswitch_migrations_total counter\nservswitch_migrations_total {}\n\
             # HELP servswitch_migrations_failed_total Migrations refused or not installed.\n# TYPE servswitch_migrations_failed_total counter\nservswitch_migrations_failed_total {}\n\
             # HELP servswitch_vms_away VMs away from their home subnet.\n# TYPE servswitch_vms_away gauge\nservswitch_vms_away {}\n\
             # HELP servswitch_hosts Known hosts (one per MAC).\n# TYPE servswitch_hosts gauge\nservswitch_hosts {}\n\
             # HELP servswitch_updates_in_progress Updates being installed (migrations, cover changes, their drained last phases): the tables equal the plan when it is 0.\n# TYPE servswitch_updates_in_progress gauge\nservswitch_updates_in_progress {}\n\
             # HELP servswitch_hosts_detached Learned hosts whose port went away, kept for the detached grace.\n# TYPE servswitch_hosts_detached gauge\nservswitch_hosts_detached {}\n\
             # HELP servswitch_announcements_refused_total Claims of a host's MAC at a new port refused because the host answered at its old one.\n# TYPE servswitch_announcements_refused_total counter\nservswitch_announcements_refused_total {}\n\
             # HELP servswitch_quarantined Switch ports and MACs whose claims are ignored after a refusal.\n# TYPE servswitch_quarantined gauge\nservswitch_quarantined {}\n\
             # HELP servswitch_state_writes_total Times the application state was locked for writing (a packet-in that changes nothing takes a shared read only).\n# TYPE servswitch_state_writes_total counter\nservswitch_state_writes_total {}\n\
             # HELP servswitch_replans_total Times the routes were planned again because links went out of use or back into use.\n# TYPE servswitch_replans_total counter\nservswitch_replans_total {}\n\
             # HELP servswitch_replan_reconciles_total Switches reconciled after re-plans (only those whose routes changed).\n# TYPE servswitch_replan_reconciles_total counter\nservswitch_replan_reconciles_total {}\n\
             # HELP servswitch_links_down Declared links out of use (a port down, a switch disconnected, dampened, contradicted by LLDP).\n# TYPE servswitch_links_down gauge\nservswitch_links_down {}\n\
             # HELP servswitch_links_miswired Declared links out of use because LLDP arrived from another port.\n# TYPE servswitch_links_miswired gauge\nservswitch_links_miswired {}\n\
             # HELP servswitch_links_unverified Declared links out of use because LLDP did not arrive while their ports are up.\n# TYPE servswitch_links_unverified gauge\nservswitch_links_unverified {}\n\
             # HELP servswitch_lldp_received_total LLDP frames of the controller's link checks received back.\n# TYPE servswitch_lldp_received_total counter\nservswitch_lldp_received_total {}\n",
            st.migrations_done,
            st.migrations_failed,
            st.away.len(),
            st.host_count(),
            st.updates.max(st.migrating.len() as u32),
            st.detached.len(),
            st.announcements_refused,
            {
                let now = self.now();
                st.quarantine.values().filter(|u| now < **u).count()
            },
            self.state_writes(),
            self.replans(),
            self.replan_reconciles(),
            links_down,
            miswired,
            unverified,
            self.lldp_heard.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// One switch's whole planned table given everything the router knows now.
    pub fn switch_plan(&self, switch: &str) -> Vec<crate::fabric::plan::Flow> {
        self.read().switch_plan(&self.fabric, switch)
    }

    /// One switch's planned meters (the controller meter, one per host port).
    pub fn switch_meters(&self, switch: &str) -> Vec<crate::fabric::plan::Meter> {
        self.read().meters(&self.fabric, switch)
    }

    /// One switch's planned groups (the multipath routes' select groups).
    pub fn switch_groups(&self, switch: &str) -> Vec<crate::fabric::plan::Group> {
        self.fabric.groups(switch)
    }

    /// Whether `switch` said it implements no meters.
    pub fn is_unmetered(&self, switch: &str) -> bool {
        self.read().unmetered.contains(switch)
    }

    /// Records whether `switch` implements meters (what its last reconciliation found); the
    /// first time it has none, says so.
    pub(crate) fn set_metered(&self, switch: &str, metered: bool) {
        let mut st = self.lock();
        if metered {
            st.unmetered.remove(switch);
        } else if st.unmetered.insert(switch.to_string()) {
            tracing::warn!(%switch, "the switch implements no meters: its traffic to the controller is not bounded (planned without meters)");
        }
    }

    /// Every switch's whole planned table given everything the router knows now.
    pub fn tables(&self) -> std::collections::BTreeMap<String, Vec<crate::fabric::plan::Flow>> {
        self.read().tables(&self.fabric)
    }

    /// Every care-of address held now.
    pub fn care_of_addresses(&self) -> std::collections::BTreeSet<Ipv4Addr> {
        self.read().care_of_addresses()
    }

    /// Every care-of address held, IPv4 and IPv6.
    pub fn care_of_all(&self) -> std::collections::BTreeSet<std::net::IpAddr> {
        self.read().care_of_all()
    }

    /// Every known host binding.
    pub fn hosts(&self) -> Vec<(HostLoc, Origin)> {
        let st = self.read();
        let mut v: Vec<_> = st.hosts.values().cloned().collect();
        v.sort_by_key(|(h, _)| h.ip);
        v
    }

    /// The switch a connected switch's handle is (one lookup by datapath id).
    pub(crate) fn switch_of(&self, sw: &SwitchHandle) -> Option<SwitchCtx<'_>> {
        self.by_dpid
            .get(&sw.dpid().0)
            .and_then(|&id| self.fabric.ctx(id))
    }

    /// The name of a connected switch.
    pub(crate) fn name_of(&self, sw: &SwitchHandle) -> Option<&str> {
        self.name_by_dpid(sw.dpid().0)
    }

    /// The name of the switch whose datapath id is `dpid`.
    pub(crate) fn name_by_dpid(&self, dpid: u64) -> Option<&str> {
        let &id = self.by_dpid.get(&dpid)?;
        self.fabric.ctx(id).map(|c| c.name)
    }

    /// The switch's ports that face hosts (not links, not reserved).
    fn host_ports(&self, name: &str, ports: Ports<'_>) -> Vec<u32> {
        ports()
            .into_iter()
            .filter(|&p| p <= port::MAX && !self.fabric.is_link_port(name, p))
            .collect()
    }

    /// Whether [`Router::learn`] would bind `ip` (checked under a shared read first): it is
    /// not a care-of address and not bound yet. A claim for an address bound elsewhere is
    /// logged and ignored.
    fn would_learn(
        &self,
        st: &State,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        ip: Ipv4Addr,
        mac: ofp13::MacAddr,
    ) -> bool {
        // Bound already is the common case: one lookup decides it.
        if let Some((h, _)) = st.hosts.get(&ip) {
            if h.port != in_port || h.mac != mac || h.switch != sw.name {
                debug!(%ip, claimed_by = %mac, port = in_port, bound_to = %h.mac, bound_port = h.port,
                    "ignoring a claim for an address bound elsewhere");
            }
            return false;
        }
        if st.pools.holder(ip).is_some() {
            debug!(%ip, claimed_by = %mac, "ignoring a claim for a care-of address");
            return false;
        }
        true
    }

    /// Whether `ip` is an address `name` learns hosts of: one of its subnets', not a gateway's,
    /// from a host port.
    fn learnable(&self, sw: &SwitchCtx<'_>, in_port: u32, ip: Ipv4Addr) -> bool {
        !ip.is_unspecified()
            && !sw.is_link_port(in_port)
            && sw
                .subnets()
                .any(|s| s.contains(ip) && s.gateway != Some(ip))
    }

    /// Learns `ip` at (`name`, `in_port`) unless the address is bound elsewhere (a spoofed or
    /// stale claim never moves a binding). Returns the messages that follow: the host's
    /// delivery flow and the release of any packets held for it.
    fn learn(
        &self,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        ip: Ipv4Addr,
        mac: ofp13::MacAddr,
    ) -> Vec<Body> {
        let name = sw.name;
        if !self.learnable(sw, in_port, ip) {
            return Vec::new();
        }
        // Known hosts are the common case: a shared read decides; the write lock only binds.
        if !self.would_learn(&self.read(), sw, in_port, ip, mac) {
            return Vec::new();
        }
        let mut st = self.lock();
        if !self.would_learn(&st, sw, in_port, ip, mac) {
            return Vec::new(); // bound meanwhile
        }
        let loc = HostLoc {
            ip,
            mac,
            switch: name.to_string(),
            port: in_port,
        };
        info!(switch = name, %ip, %mac, port = in_port, "host learned");
        let mut out: Vec<Body> = self
            .fabric
            .host_flows(&loc)
            .iter()
            .map(|f| Body::FlowMod(f.add()))
            .collect();
        st.bind(loc, Origin::Learned);
        out.extend(st.release(name, ip.into()));
        out
    }

    fn on_arp(&self, at: At<'_, '_>, eth: &Ethernet<'_>, arp: &Arp) -> Vec<Body> {
        let (sw, ports, in_port, now) = (at.sw, at.ports, at.in_port, at.now);
        if eth.src != arp.sha {
            return Vec::new(); // inconsistent frame: a spoof or a broken host; ignore.
        }
        if !matches!(arp.op, packet::ARP_REQUEST | packet::ARP_REPLY) {
            return Vec::new(); // not a request or reply (Linux drops these too); learn nothing.
        }
        let mut out = self.learn(sw, in_port, arp.spa, arp.sha);
        if arp.op != packet::ARP_REQUEST || arp.is_gratuitous() {
            return out;
        }
        let answer = self.arp_answer(&self.read(), sw, arp, now);
        out.extend(self.arp_reply(sw.name, ports, in_port, arp, answer));
        out
    }

    /// What answers an ARP request from `in_port`, once [`Router::arp_answer`] has decided.
    fn arp_reply(
        &self,
        name: &str,
        ports: Ports<'_>,
        in_port: u32,
        arp: &Arp,
        answer: ArpAnswer,
    ) -> Option<Body> {
        match answer {
            ArpAnswer::Mac(mac) => {
                let reply = Arp::reply(mac, arp.tpa, arp.sha, arp.spa);
                Some(packet_out([in_port], reply.to_frame()))
            }
            ArpAnswer::Resolve(gateway) => self.resolve(name, ports, gateway, arp.tpa),
            ArpAnswer::Nothing => None,
        }
    }

    /// Who answers an ARP request at switch `name`, in this order:
    /// 1. a host that is at this switch now (any subnet: migrated VMs included, so two VMs of
    ///    one home network on the same foreign switch, or a VM and a foreign host after an ICMP
    ///    redirect, talk directly): its own MAC;
    /// 2. a gateway of this switch's subnets: the gateway MAC;
    /// 3. the asker is a VM away from home here, asking for an address of its home network
    ///    (its gateway, or any other host there, cases 1 and 3): the gateway MAC (proxy);
    /// 4. a VM of this switch's subnets that is away (case 4): the gateway MAC (proxy);
    /// 5. an unknown address of this switch's subnets: the gateway asks for it;
    /// 6. a known host elsewhere, outside the asker's subnet (the asker holds an ICMP
    ///    redirect to it from before one of them moved): the gateway MAC, so it is routed.
    fn arp_answer(&self, st: &State, sw: &SwitchCtx<'_>, arp: &Arp, now: Instant) -> ArpAnswer {
        let name = sw.name;
        let target = st.hosts.get(&arp.tpa).map(|(h, _)| h);
        if let Some(h) = target {
            if h.switch == name {
                return if h.mac == arp.sha {
                    ArpAnswer::Nothing
                } else {
                    ArpAnswer::Mac(h.mac)
                };
            }
        }
        let local = sw.subnets().find(|s| s.contains(arp.tpa));
        if local.is_some_and(|s| s.gateway == Some(arp.tpa)) {
            return ArpAnswer::Mac(GATEWAY_MAC);
        }
        let asker_away_here = st.away.contains_key(&arp.sha)
            && st
                .hosts
                .get(&arp.spa)
                .is_some_and(|(h, _)| h.mac == arp.sha && h.switch == name);
        if asker_away_here
            && self
                .fabric
                .subnet_of(arp.spa)
                .is_some_and(|s| s.contains(arp.tpa))
        {
            return ArpAnswer::Mac(GATEWAY_MAC);
        }
        if target.is_none() && st.is_care_of(arp.tpa, now) {
            return ArpAnswer::Nothing; // no host has it; asking would show it to them
        }
        match (local, target) {
            (Some(_), Some(h)) if st.away.contains_key(&h.mac) => ArpAnswer::Mac(GATEWAY_MAC),
            (Some(_), Some(_)) => ArpAnswer::Nothing, // bound elsewhere, not here
            (Some(s), None) => s.gateway.map_or(ArpAnswer::Nothing, ArpAnswer::Resolve),
            // A known host outside the asker's subnet, elsewhere: the asker holds a redirect
            // to it (cases 5 and 6) that outlived the move of one of them. Routed, it works.
            (None, Some(_))
                if self
                    .fabric
                    .subnet_of(arp.spa)
                    .is_some_and(|s| !s.contains(arp.tpa)) =>
            {
                ArpAnswer::Mac(GATEWAY_MAC)
            }
            (None, _) => ArpAnswer::Nothing,
        }
    }

    /// An ARP request from the gateway for `ip`, out of every host port of the switch.
    fn resolve(
        &self,
        name: &str,
        ports: Ports<'_>,
        gateway: Ipv4Addr,
        ip: Ipv4Addr,
    ) -> Option<Body> {
        let ports = self.host_ports(name, ports);
        (!ports.is_empty())
            .then(|| packet_out(ports, Arp::request(GATEWAY_MAC, gateway, ip).to_frame()))
    }

    fn on_ipv4(
        &self,
        at: At<'_, '_>,
        eth: &Ethernet<'_>,
        ip: &Ipv4<'_>,
        frame: &[u8],
    ) -> Vec<Body> {
        let (sw, ports, in_port, now) = (at.sw, at.ports, at.in_port, at.now);
        let name = sw.name;
        let mut out = self.learn(sw, in_port, ip.src, eth.src);
        // Ping to one of this switch's gateway addresses.
        if sw.subnets().any(|s| s.gateway == Some(ip.dst)) {
            if ip.protocol == packet::IP_ICMP
                && ip.payload.first() == Some(&packet::ICMP_ECHO_REQUEST)
            {
                let rest: [u8; 4] = ip
                    .payload
                    .get(4..8)
                    .and_then(|r| r.try_into().ok())
                    .unwrap_or([0; 4]);
                let data = ip.payload.get(8..).unwrap_or_default();
                let icmp = packet::icmp(packet::ICMP_ECHO_REPLY, 0, rest, data);
                let reply = packet::ipv4_frame(
                    eth.src,
                    GATEWAY_MAC,
                    ip.dst,
                    self.fabric_address(name, in_port, ip.src),
                    packet::IP_ICMP,
                    &icmp,
                );
                out.push(packet_out([in_port], reply));
            }
            return out;
        }
        // An address of a local subnet: deliver if known (the flow raced this packet), else
        // hold the packet and ask for the address.
        if let Some(s) = sw.subnets().find(|s| s.contains(ip.dst)) {
            let known = {
                let st = self.read();
                let known = st.hosts.get(&ip.dst).map(|(h, _)| h.switch == name);
                if known.is_none() && st.is_care_of(ip.dst, now) {
                    // A packet for a care-of address that is no longer delivered here (the
                    // VM moved on while it was in flight): dropped. Never asked for by ARP,
                    // which would show the address to the hosts.
                    return out;
                }
                known
            };
            match known {
                Some(true) => out.push(reinject(in_port, Bytes::copy_from_slice(frame))),
                Some(false) => {} // bound elsewhere: the route flows will carry later packets.
                None => {
                    // Copied before the write lock is taken, not under it.
                    let held = Bytes::copy_from_slice(frame);
                    let first = self.lock().hold(name, ip.dst.into(), in_port, held, now);
                    if first {
                        out.extend(s.gateway.and_then(|g| self.resolve(name, ports, g, ip.dst)));
                    }
                }
            }
        }
        out
    }

    /// A packet-in at switch `name` whose ports are `ports`: the messages to send back (the
    /// effects it asks for are dropped: for tests of the answers alone).
    pub fn packet_in(&self, name: &str, ports: Ports<'_>, pi: &ofp13::PacketIn) -> Vec<Body> {
        let mut out = Vec::new();
        self.packet_in_into(name, ports, pi, &mut out, &mut Vec::new(), self.now());
        out
    }

    /// [`Router::packet_in`], its answers pushed onto `out` (the runtime's reused buffer: the
    /// common ARP answer allocates no list), the work it asks for onto `effects`.
    pub fn packet_in_into(
        &self,
        name: &str,
        ports: Ports<'_>,
        pi: &ofp13::PacketIn,
        out: &mut Vec<Body>,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        self.by_name(name, out, |sw, answers| {
            self.packet_in_at(sw, ports, &pi.view(), answers, effects, now)
        });
    }

    /// [`Router::packet_in_into`] at a switch already resolved: the one decision of a
    /// packet-in, read in place by the runtime ([`ofp13::PacketInView::parse`]) or viewed
    /// from a parsed message ([`ofp13::PacketIn::view`]).
    pub fn packet_in_at(
        &self,
        sw: SwitchCtx<'_>,
        ports: Ports<'_>,
        pi: &ofp13::PacketInView<'_>,
        out: &mut Answers,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let name = sw.name;
        let eth = Ethernet::parse(pi.data);
        self.packet_ins
            .add(packet_in_kind(eth.map(|e| e.ethertype)), 1);
        let Some(in_port) = pi.in_port else {
            return;
        };
        let Some(eth) = eth else {
            return;
        };
        if pi.reason == ofp13::OFPR_INVALID_TTL {
            if let Some(ip) = Ipv4::parse(eth.payload).filter(|_| eth.ethertype == packet::ETH_IPV4)
            {
                out.extend(self.time_exceeded(name, in_port, &eth, &ip));
            } else if eth.ethertype == packet::ETH_IPV6 {
                out.extend(self.time_exceeded6(name, in_port, &eth));
            }
            return;
        }
        // The switch was resolved once for the whole message; each header is parsed once.
        let host_port = in_port <= port::MAX && !sw.is_link_port(in_port);
        if eth.ethertype == packet::ETH_LLDP {
            // Only link ports send LLDP to the controller (table 0); a host's is dropped.
            if !host_port && in_port <= port::MAX {
                self.lldp_heard(name, in_port, &eth, effects, now);
            }
            return;
        }
        let at = At {
            sw: &sw,
            ports,
            in_port,
            now,
        };
        let arp = match eth.ethertype {
            packet::ETH_ARP => Arp::parse(eth.payload),
            _ => None,
        };
        let announced = match eth.ethertype {
            packet::ETH_RARP => true,
            packet::ETH_ARP => {
                eth.dst == ofp13::MacAddr::BROADCAST && arp.as_ref().is_some_and(Arp::is_gratuitous)
            }
            _ => false,
        };
        if let Some(arp) = &arp {
            // The common ARP request (a host at its port asking for its gateway or a
            // neighbour) changes nothing: it is decided and answered under one shared read.
            // Anything that changes state (a move, a host attached again, a binding) takes
            // the general path, each change under the write lock.
            let valid =
                eth.src == arp.sha && matches!(arp.op, packet::ARP_REQUEST | packet::ARP_REPLY);
            let st = self.read();
            let moves = host_port && self.heard(&st, &sw, in_port, eth.src, now) != Heard::Nothing;
            let learns = valid
                && self.would_learn(&st, &sw, in_port, arp.spa, arp.sha)
                && self.learnable(&sw, in_port, arp.spa);
            let unchanged = !(announced || moves || learns);
            if unchanged {
                if !valid || arp.op != packet::ARP_REQUEST || arp.is_gratuitous() {
                    return;
                }
                let answer = self.arp_answer(&st, &sw, arp, now);
                drop(st);
                match answer {
                    // The common answer, built on the stack and encoded straight into the
                    // connection's write buffer: no heap allocation from request to reply.
                    ArpAnswer::Mac(mac) => {
                        let reply = Arp::reply(mac, arp.tpa, arp.sha, arp.spa).to_frame_array();
                        match crate::fabric::plan::packet_out_inline(in_port, &reply) {
                            Some(p) => out.push_packet_out(p),
                            None => out.push(packet_out([in_port], reply.to_vec())),
                        }
                    }
                    answer => out.extend(self.arp_reply(name, ports, in_port, arp, answer)),
                }
                return;
            }
        }
        // A known VM's frame on a host port where it is not: it has moved (QEMU's RARP, Xen's
        // gratuitous ARP, or any first packet); the migration runs in its own task.
        if host_port {
            if announced {
                debug!(switch = %name, port = in_port, mac = %eth.src, "announcement heard");
            }
            self.detect_move(at, &eth, announced, effects);
        }
        // From the punt table: a host's DHCP (its port's subnet is served, or it is a VM away
        // from a served home subnet; a renewal unicast to a gateway too), and the broadcast
        // and multicast of a VM away from home.
        if pi.table_id == crate::fabric::plan::TABLE_PUNT && host_port {
            if eth.ethertype == packet::ETH_IPV4 {
                if let Some(req) = Ipv4::parse(eth.payload).and_then(|ip| dhcp::request_in(&ip)) {
                    let reply = self.on_dhcp(name, in_port, &eth, &req);
                    let kind = match &reply {
                        Some((dhcp::Answer::Offer(_), _)) => 0,
                        Some((dhcp::Answer::Nak, _)) => 2,
                        Some(_) => 1,
                        None => 3,
                    };
                    self.dhcp[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some((_, reply)) = reply {
                        out.push(reply);
                        return;
                    }
                }
            }
            if eth.dst.0[0] & 1 == 1
                && !matches!(eth.ethertype, packet::ETH_ARP | packet::ETH_RARP)
                && !is_neighbour_discovery(&eth)
                && self.relay_home(name, in_port, &eth, pi.data, effects)
            {
                return;
            }
        }
        let answers = match eth.ethertype {
            packet::ETH_ARP => match &arp {
                Some(arp) => self.on_arp(at, &eth, arp),
                None => Vec::new(),
            },
            packet::ETH_IPV4 => match Ipv4::parse(eth.payload) {
                // A copy from table 0 (an IPv4 source the switch does not know at that port)
                // only teaches; the packet itself went on through the pipeline.
                Some(ip)
                    if pi.table_id == crate::fabric::plan::TABLE_CLASSIFY
                        && pi.cookie == COOKIE_PIPELINE =>
                {
                    self.learn(&sw, in_port, ip.src, eth.src)
                }
                Some(ip) if pi.cookie & COOKIE_MASK_KIND == COOKIE_REDIRECT => {
                    self.redirect(at, &eth, &ip, pi.cookie, effects)
                }
                Some(ip)
                    if pi.cookie & COOKIE_MASK_KIND == crate::fabric::plan::COOKIE_MOBILITY =>
                {
                    self.home_agent_copy(ip.src.into(), ip.dst.into(), effects, now);
                    Vec::new()
                }
                Some(ip) => self.on_ipv4(at, &eth, &ip, pi.data),
                None => Vec::new(),
            },
            packet::ETH_IPV6
                if pi.cookie & COOKIE_MASK_KIND == crate::fabric::plan::COOKIE_REDIRECT6 =>
            {
                match crate::packet::icmp6::Ipv6::parse(eth.payload) {
                    Some(ip) => self.redirect6(at, &eth, &ip, pi.cookie, effects),
                    None => Vec::new(),
                }
            }
            packet::ETH_IPV6
                if pi.cookie & COOKIE_MASK_KIND == crate::fabric::plan::COOKIE_MOBILITY6 =>
            {
                // The home agent's copy of a packet for a VM away (route optimisation).
                if let Some(ip) = crate::packet::icmp6::Ipv6::parse(eth.payload) {
                    self.home_agent_copy(ip.src.into(), ip.dst.into(), effects, now);
                }
                Vec::new()
            }
            packet::ETH_IPV6 => self.on_ipv6(&sw, in_port, host_port, &eth, pi.data, now),
            _ => Vec::new(),
        };
        out.extend(answers);
    }

    /// A DHCP request from `eth.src` at `name`:`in_port`: the reply with its home lease (its
    /// first IPv4 address, that subnet's mask, gateway, DNS and lease time), or `None` when
    /// its home subnet's DHCP is not the controller's, its address is unknown, it asks in
    /// another's name (`chaddr` is not the sender), or it is not where the controller knows
    /// it to be (a move not yet installed, or refused: it asks again).
    fn on_dhcp(
        &self,
        name: &str,
        in_port: u32,
        eth: &Ethernet<'_>,
        req: &packet::dhcp::Dhcp<'_>,
    ) -> Option<(dhcp::Answer, Body)> {
        if req.chaddr != eth.src {
            debug!(switch = %name, port = in_port, src = %eth.src, chaddr = %req.chaddr,
                "DHCP in another's name: not answered");
            return None;
        }
        let ip = {
            let st = self.read();
            if st.location(eth.src) != Some((name, in_port)) {
                debug!(switch = %name, port = in_port, mac = %eth.src,
                    "DHCP from a host not known there: not answered");
                return None;
            }
            let declared = self
                .fabric
                .topology
                .hosts
                .iter()
                .find(|h| h.mac == eth.src)
                .and_then(|h| h.addresses().first().copied());
            declared.or_else(|| st.ips_of(eth.src).next())?
        };
        let subnet = self.fabric.subnet_of(ip).filter(|s| s.dhcp)?;
        let lease = dhcp::Lease::new(ip, subnet)?;
        let answer = dhcp::answer(req, &lease);
        match answer {
            dhcp::Answer::Nak => info!(switch = %name, port = in_port, mac = %eth.src, %ip,
                "DHCP: refused an address that is not the host's"),
            _ => debug!(switch = %name, port = in_port, mac = %eth.src, %ip, ?answer, "DHCP"),
        }
        let frame = dhcp::reply_frame(req, eth.src, &lease, answer)?;
        Some((answer, packet_out([in_port], frame)))
    }

    /// A broadcast or multicast frame of a VM away from home (table 0 sends them here, not to
    /// the foreign subnet): sent on to the host ports of its home subnet. Whether the frame
    /// was such a VM's (other group frames reach the controller as copies to learn from).
    fn relay_home(
        &self,
        name: &str,
        in_port: u32,
        eth: &Ethernet<'_>,
        frame: &[u8],
        effects: &mut Vec<Effect>,
    ) -> bool {
        let (home, ports) = {
            let st = self.read();
            let Some(ip) = st.ips_of(eth.src).next() else {
                return false;
            };
            let Some(home) = self.fabric.subnet_of(ip) else {
                return false;
            };
            let here = st.location(eth.src) == Some((name, in_port));
            if !here || !st.away.contains_key(&eth.src) {
                return false;
            }
            let ports: Vec<u32> = st
                .plan_ports(&self.fabric, &home.switch)
                .host
                .into_iter()
                .filter(|&p| {
                    self.fabric
                        .subnet_at(&home.switch, p)
                        .is_some_and(|s| s.name == home.name)
                })
                .collect();
            (home, ports)
        };
        if !ports.is_empty() {
            self.relayed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            effects.push(Effect::Send {
                switch: home.switch.clone(),
                batch: vec![packet_out(ports, Bytes::copy_from_slice(frame))],
            });
        }
        true
    }

    /// The destination address for a packet the controller sends to `dst` out of `port` of
    /// `name`: a VM away from home is reached through the fabric by its care-of address (a
    /// link does not know its home address; the foreign switch rewrites it back).
    fn fabric_address(&self, name: &str, port: u32, dst: Ipv4Addr) -> Ipv4Addr {
        if !self.fabric.is_link_port(name, port) {
            return dst;
        }
        let st = self.read();
        let Some((h, _)) = st.hosts.get(&dst) else {
            return dst;
        };
        let Some(a) = st.away.get(&h.mac) else {
            return dst;
        };
        st.vm(h.mac)
            .and_then(|vm| vm.ips.iter().position(|ip| *ip == dst))
            .and_then(|i| a.away.care_of.get(i).copied())
            .unwrap_or(dst)
    }

    /// A host port went away (`gone`) or came back. Learned hosts there are detached: kept,
    /// bound to this place, movable by announcement or API, and forgotten with their entries
    /// when [`Router::detached_grace`] has passed unless they were seen again meanwhile
    /// (declared hosts stay as they are). A port that comes back attaches them again.
    fn port_changed(
        &self,
        name: &str,
        port: u32,
        gone: bool,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        if self.fabric.is_link_port(name, port) {
            return;
        }
        let detached: Vec<ofp13::MacAddr> = {
            let mut st = self.lock();
            let here = st.hosts_at(name, port);
            if !gone {
                for mac in here {
                    if st.detached.remove(&mac).is_some() {
                        info!(switch = %name, port, %mac, "host attached again: its port is back");
                    }
                }
                return;
            }
            // Learned hosts of either family (a host with IPv6 only too).
            let learned: Vec<ofp13::MacAddr> = here
                .into_iter()
                .filter(|m| st.origin(*m) == Some(Origin::Learned))
                .filter(|m| !st.detached.contains_key(m))
                .collect();
            for m in &learned {
                st.detached.insert(*m, now);
                info!(switch = %name, port, mac = %m, grace_s = self.detached_grace.as_secs(),
                    "host detached: its port went away; kept until it shows up elsewhere or the grace ends");
            }
            learned
        };
        effects.extend(detached.into_iter().map(|mac| Effect::Forget {
            mac,
            since: now,
            after: self.detached_grace,
        }));
    }

    /// The redirects of a (source, destination) pair of the VM whose redirect copies carry
    /// `cookie` are spent: its task stops the pair's copies.
    fn quiet_pair(
        &self,
        cookie: u64,
        (src, dst, tcp_only): (std::net::IpAddr, std::net::IpAddr, bool),
        effects: &mut Vec<Effect>,
    ) {
        let pair = mobility::flows::QuietPair { src, dst, tcp_only };
        let st = self.read();
        // The VM is the end of the pair whose home address the cookie names.
        let names = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => u32::from(a) == cookie as u32,
            std::net::IpAddr::V6(a) => u128::from(a) as u32 == cookie as u32,
        };
        let mac = [src, dst]
            .into_iter()
            .filter(|a| names(*a))
            .find_map(|a| st.binding(a).map(|(mac, _)| mac))
            .filter(|m| st.away.contains_key(m));
        if let Some(mac) = mac {
            effects.push(Effect::QuietRedirects { mac, pair });
        }
    }

    /// A switch removed an entry of ours: a quiet redirect pair whose time is up, or the
    /// rewrite toward a VM on a switch beyond its
    /// default cover idled out: the switch's hosts stopped talking to the VM, and the VM's
    /// cover task takes it out of the cover (its other entries go in the phases of any
    /// update); the next packet they send brings it back.
    fn flow_removed(&self, name: &str, fr: &ofp13::FlowRemoved, effects: &mut Vec<Effect>) {
        let redirect_kind = matches!(
            fr.cookie & COOKIE_MASK_KIND,
            COOKIE_REDIRECT | crate::fabric::plan::COOKIE_REDIRECT6
        );
        if fr.reason == ofp13::OFPRR_HARD_TIMEOUT && redirect_kind {
            // A quiet pair's time is up: its packets are copied (and redirected) again.
            use crate::mobility::update::{matched_addresses, Field};
            let (mut src, mut dst) = (None, None);
            for (a, field) in matched_addresses(&fr.match_) {
                match field {
                    Field::Src => src = Some(a),
                    Field::Dst => dst = Some(a),
                }
            }
            let tcp_only = fr
                .match_
                .fields
                .iter()
                .any(|f| matches!(f, ofp13::Oxm::IpProto(packet::IP_TCP, _)));
            if let (Some(src), Some(dst)) = (src, dst) {
                let pair = mobility::flows::QuietPair { src, dst, tcp_only };
                let mut st = self.lock();
                for a in st.away.values_mut() {
                    a.away.quiet.remove(&pair);
                }
            }
            return;
        }
        let kind = fr.cookie & COOKIE_MASK_KIND;
        if fr.reason != ofp13::OFPRR_IDLE_TIMEOUT
            || (kind != crate::fabric::plan::COOKIE_MOBILITY
                && kind != crate::fabric::plan::COOKIE_MOBILITY6)
            || fr.table_id != crate::fabric::plan::TABLE_FROM_HOST
        {
            return;
        }
        let mac = {
            let mut st = self.lock();
            let Some(mac) = st.owner_of(fr.cookie, &fr.match_) else {
                return;
            };
            let Some(vm) = st.vm(mac) else { return };
            let beyond = vm.away.as_ref().is_some_and(|a| {
                a.cover.contains(name)
                    && !mobility::flows::default_cover(&self.fabric, &vm.switch, &vm.ips, &vm.ips6)
                        .contains(name)
            });
            if !beyond {
                return; // a leftover of an earlier cover
            }
            info!(switch = %name, %mac, idle_s = fr.idle_timeout, "cover entry idled out: the switch's hosts stopped talking to the VM");
            st.cover_unwanted
                .entry(mac)
                .or_default()
                .insert(name.to_string());
            // Its hosts may start again at once: no waiting before it is added back.
            st.cover_tried.remove(&(mac, name.to_string()));
            if !st.cover_busy.insert(mac) {
                return;
            }
            mac
        };
        effects.push(Effect::ChangeCovers { mac });
    }

    /// A packet the home agent forwarded to a VM away from home: the switch it came from is
    /// added to the VM's cover (once; a failed attempt is retried after a while), by the VM's
    /// cover task, which takes every switch wanted meanwhile in one update.
    pub(crate) fn home_agent_copy(
        &self,
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) {
        let mac = {
            let mut st = self.lock();
            let Some((mac, _)) = st.binding(dst) else {
                return;
            };
            // The sender's switch: where it is if it is a known host, else its subnet's.
            let from = st.binding(src).map(|(_, sw)| sw.to_string()).or_else(|| {
                match src {
                    std::net::IpAddr::V4(s) => self.fabric.subnet_of(s),
                    std::net::IpAddr::V6(s) => self.fabric.subnet_of6(s),
                }
                .map(|s| s.switch.clone())
            });
            let Some(from) = from else { return };
            if st
                .away
                .get(&mac)
                .is_some_and(|a| a.away.cover.contains(&from))
            {
                // Being installed there, or idled out (its FLOW_REMOVED takes it out).
                return;
            }
            let key = (mac, from.clone());
            if st
                .cover_tried
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < COVER_RETRY)
            {
                return;
            }
            st.cover_tried.insert(key, now);
            st.cover_wanted.entry(mac).or_default().insert(from);
            if !st.cover_busy.insert(mac) {
                return; // its task takes it
            }
            mac
        };
        effects.push(Effect::ChangeCovers { mac });
    }

    /// What an ordinary frame (not an announcement) from `mac` at `name:in_port` tells the
    /// router: that the host moved there ([`seen_elsewhere`]), that a detached host is back
    /// at its port, or nothing. Read-only: [`Router::packet_in`] asks it under its shared read.
    fn heard(
        &self,
        st: &State,
        sw: &SwitchCtx<'_>,
        in_port: u32,
        mac: ofp13::MacAddr,
        now: Instant,
    ) -> Heard {
        let name = sw.name;
        if mac.is_multicast() || !sw.has_subnets() {
            return Heard::Nothing;
        }
        if !st.verifying.is_empty()
            && st
                .verifying
                .get(&mac)
                .is_some_and(|v| (v.from.0.as_str(), v.from.1) == (name, in_port) && v.probing(now))
        {
            return Heard::Refutes;
        }
        if seen_elsewhere(st, name, in_port, mac, false, now) {
            Heard::Moved
        } else if st.is_detached(mac) && st.location(mac) == Some((name, in_port)) {
            Heard::Back
        } else {
            Heard::Nothing
        }
    }

    /// Starts a migration when `eth` comes from a known host's MAC on a host port of a switch
    /// where that host is not (a repeat of an announcement already being handled does
    /// nothing). `announced`: the frame is a hypervisor's announcement of a moved VM, QEMU's
    /// RARP or a broadcast gratuitous ARP (Xen); a host's unicast reply to a request for its
    /// own address is not one.
    fn detect_move(
        &self,
        at: At<'_, '_>,
        eth: &Ethernet<'_>,
        announced: bool,
        effects: &mut Vec<Effect>,
    ) {
        let (sw, in_port, now) = (at.sw, at.in_port, at.now);
        let name = sw.name;
        if eth.src.is_multicast() || !sw.has_subnets() {
            return;
        }
        {
            let st = self.read();
            if Self::answers_probe(&st, sw, in_port, eth, now) {
                drop(st);
                self.refuse_claim(eth.src, effects, now);
                return;
            }
            if Self::quarantined(&st, name, in_port, eth.src, now)
                && !Self::armed_here(&st, eth.src, (name, in_port), now)
            {
                // A refused claimant: its frames move nothing until the quarantine ends.
                debug!(switch = %name, port = in_port, mac = %eth.src, "quarantined: ignored");
                return;
            }
        }
        let moved = if announced {
            // An announcement may change what is queued: under the write lock.
            let mut st = self.lock();
            if st.location(eth.src).is_none() {
                return;
            }
            if st.migrating.contains(&eth.src) {
                // From somewhere else while a move is installed: the VM moved again (or the
                // move was announced before an API call finished); it is followed once the
                // current one is done, and checked as any claim.
                if self.admit_claim(&mut st, eth.src, (name, in_port), now) {
                    debug!(switch = %name, port = in_port, mac = %eth.src, "announced while a move is installed: queued");
                    st.next_move.insert(eth.src, (name.to_string(), in_port));
                }
                return;
            }
            // The VM's latest word on where it is: a location queued while an earlier move
            // was installing is older, and must not be followed after this one (the move
            // that queued it may not have taken it yet).
            st.next_move.remove(&eth.src);
            let moved = seen_elsewhere(&st, name, in_port, eth.src, true, now);
            if !moved
                && st.location(eth.src) == Some((name, in_port))
                && st.detached.remove(&eth.src).is_some()
            {
                info!(switch = %name, port = in_port, mac = %eth.src, "host attached again: announced at its port");
            }
            moved
        } else {
            // Every other ARP and IPv4 packet-in passes here: a shared read, no allocation.
            let heard = self.heard(&self.read(), sw, in_port, eth.src, now);
            if heard == Heard::Back {
                // A detached host heard from where it was: its port works again.
                self.lock().detached.remove(&eth.src);
                info!(switch = %name, port = in_port, mac = %eth.src, "host attached again: heard from its port");
            }
            heard == Heard::Moved
        };
        if !moved || !self.admit_claim(&mut self.lock(), eth.src, (name, in_port), now) {
            return;
        }
        let to = crate::fabric::topology::PortRef {
            switch: name.to_string(),
            port: in_port,
        };
        let mac = eth.src;
        let kind = match eth.ethertype {
            packet::ETH_RARP => "rarp",
            packet::ETH_ARP => "arp",
            _ => "frame",
        };
        info!(%mac, to = %to, trigger = kind, "host seen at a new port: migrating");
        effects.push(Effect::Migrate {
            mac,
            to,
            why: "migration not done",
        });
    }

    /// An ICMP redirect for a packet between a VM and a host of the foreign subnet it is in
    /// (cases 5 and 6): from the sender's gateway, naming the destination itself as the
    /// better first hop, so the two talk directly (Linux accepts a redirect to an address
    /// outside its subnet with the default shared_media=1).
    ///
    /// A pair whose burst is spent (the sender ignores redirects, or a TCP segment it quotes
    /// was acknowledged already) is no longer copied to the controller at all for
    /// [`REDIRECT_QUIET`]: the VM's task installs, above the copy, the same rewrite without
    /// it ([`mobility::flows::Away::quiet`]).
    fn redirect(
        &self,
        at: At<'_, '_>,
        eth: &Ethernet<'_>,
        ip: &Ipv4<'_>,
        cookie: u64,
        effects: &mut Vec<Effect>,
    ) -> Vec<Body> {
        let (name, in_port, now) = (at.sw.name, at.in_port, at.now);
        let Some(gw) = self.fabric.subnet_of(ip.src).and_then(|s| s.gateway) else {
            return Vec::new();
        };
        let tcp = ip.protocol == packet::IP_TCP;
        if !self.may_redirect(cookie, (ip.src.into(), ip.dst.into(), tcp), now, effects) {
            return Vec::new();
        }
        debug!(switch = name, from = %ip.src, to = %ip.dst, "ICMP redirect");
        let icmp = packet::icmp(
            packet::ICMP_REDIRECT,
            1, // for the host
            ip.dst.octets(),
            &packet::icmp_quote(ip),
        );
        let f = packet::ipv4_frame(eth.src, GATEWAY_MAC, gw, ip.src, packet::IP_ICMP, &icmp);
        vec![packet_out([in_port], f)]
    }

    /// Whether a redirect may be sent to the sender of a (source, destination) pair now: at
    /// most one per [`REDIRECT_INTERVAL`], [`REDIRECT_BURST`] of them, then silence for
    /// [`REDIRECT_QUIET`] (the pair's copies stop meanwhile: its VM's task is asked to).
    /// Redirects for TCP segments and for other packets are counted apart (`pair.2`: for a
    /// TCP segment; see [`mobility::flows::QuietPair`]).
    fn may_redirect(
        &self,
        cookie: u64,
        pair: (std::net::IpAddr, std::net::IpAddr, bool),
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let spent = {
            let mut st = self.lock();
            if st.redirects.len() >= REDIRECT_PAIRS {
                // Forget pairs that have been quiet long enough to start afresh anyway.
                st.redirects
                    .retain(|_, (last, _)| now.duration_since(*last) < REDIRECT_QUIET);
            }
            let e = st.redirects.entry(pair).or_insert((now, 0));
            if e.1 > 0 {
                let since = now.duration_since(e.0);
                if e.1 >= REDIRECT_BURST && since < REDIRECT_QUIET {
                    return false;
                }
                if since < REDIRECT_INTERVAL {
                    return false;
                }
                if since >= REDIRECT_QUIET {
                    e.1 = 0;
                }
            }
            *e = (now, e.1 + 1);
            e.1 >= REDIRECT_BURST
        };
        if spent {
            self.quiet_pair(cookie, pair, effects);
        }
        true
    }

    /// An ICMPv6 redirect (RFC 4861 section 8) for a copied packet between a VM away and a
    /// host of the foreign switch's subnets (cases 5 and 6): its destination is on the link,
    /// at the MAC the controller knows for it there. Sent from the fabric's link-local
    /// gateway, the sender's default router (a host accepts a redirect only from its
    /// current first hop), with as much of the packet as fits in 1280 bytes.
    fn redirect6(
        &self,
        at: At<'_, '_>,
        eth: &Ethernet<'_>,
        ip: &crate::packet::icmp6::Ipv6<'_>,
        cookie: u64,
        effects: &mut Vec<Effect>,
    ) -> Vec<Body> {
        use crate::packet::icmp6;
        if ip.dst.is_multicast() || ip.src.is_unspecified() {
            return Vec::new();
        }
        let tcp = ip.next == packet::IP_TCP;
        if !self.may_redirect(cookie, (ip.src.into(), ip.dst.into(), tcp), at.now, effects) {
            return Vec::new();
        }
        let tlla = self
            .read()
            .binding(ip.dst.into())
            .filter(|(_, sw)| *sw == at.sw.name)
            .map(|(mac, _)| mac);
        debug!(switch = at.sw.name, from = %ip.src, to = %ip.dst, "ICMPv6 redirect");
        let body = icmp6::redirect_body(ip.dst, ip.dst, tlla, ip.packet);
        let f = icmp6::icmp6_frame(
            eth.src,
            GATEWAY_MAC,
            crate::fabric::plan::GATEWAY_LL,
            ip.src,
            icmp6::REDIRECT,
            0,
            &body,
        );
        vec![packet_out([at.in_port], f)]
    }

    /// ICMP time exceeded for a packet whose TTL ran out at this switch.
    fn time_exceeded(
        &self,
        name: &str,
        in_port: u32,
        eth: &Ethernet<'_>,
        ip: &Ipv4<'_>,
    ) -> Vec<Body> {
        if ip.protocol == packet::IP_ICMP
            && ip.payload.first().is_some_and(|t| ![0u8, 8].contains(t))
        {
            return Vec::new(); // never answer an ICMP error with another
        }
        let from = self
            .fabric
            .subnets_of(name)
            .find(|s| s.contains(ip.src))
            .or_else(|| self.fabric.subnets_of(name).find(|s| s.gateway.is_some()))
            .or_else(|| self.fabric.subnet_of(ip.src))
            .and_then(|s| s.gateway);
        let Some(from) = from else {
            return Vec::new();
        };
        let icmp = packet::icmp(
            packet::ICMP_TIME_EXCEEDED,
            0,
            [0; 4],
            &packet::icmp_quote(ip),
        );
        let dst_mac = if self.fabric.is_link_port(name, in_port) {
            GATEWAY_MAC
        } else {
            eth.src
        };
        let to = self.fabric_address(name, in_port, ip.src);
        let f = packet::ipv4_frame(dst_mac, GATEWAY_MAC, from, to, packet::IP_ICMP, &icmp);
        vec![packet_out([in_port], f)]
    }
}

/// Whether a known host's frame at `name:in_port` shows it moved there: it is bound
/// elsewhere and not being moved already; an ordinary frame (not an announcement) from where
/// it was before its last move is a straggler for [`PREVIOUS_GRACE`], not a move back.
/// Whether a frame is IPv6 neighbour or router discovery (ICMPv6 133 to 137): the
/// controller answers it wherever the sender is, never relays it (a VM away from home asks the
/// fabric for its home neighbours, and the fabric answers for them).
fn is_neighbour_discovery(eth: &Ethernet<'_>) -> bool {
    eth.ethertype == packet::ETH_IPV6
        && crate::packet::icmp6::Ipv6::parse(eth.payload).is_some_and(|ip| {
            ip.next == packet::IP_ICMPV6
                && ip.payload.first().is_some_and(|t| (133..=137).contains(t))
        })
}

fn seen_elsewhere(
    st: &State,
    name: &str,
    in_port: u32,
    mac: ofp13::MacAddr,
    announced: bool,
    now: Instant,
) -> bool {
    let Some(at) = st.location(mac) else {
        return false;
    };
    if st.migrating.contains(&mac) || at == (name, in_port) {
        return false;
    }
    let straggler = !announced
        && st.previous.get(&mac).is_some_and(|((sw, port), left)| {
            (sw.as_str(), *port) == (name, in_port) && now.duration_since(*left) < PREVIOUS_GRACE
        });
    !straggler
}

/// The switch events the runtime hands the application ([`crate::app::driver::Driver`]).
impl Router {
    /// A switch finished its handshake: its asynchronous configuration now; its table is
    /// reconciled by the effect pushed onto `effects` (read, then only the difference sent,
    /// then audited).
    pub fn switch_up(
        &self,
        sw: &SwitchHandle,
        effects: &mut Vec<Effect>,
        now: Instant,
    ) -> Vec<Body> {
        let Some(name) = self.name_of(sw) else {
            return Vec::new();
        };
        // Its links as it reports them: in use again if it was gone, out of use if down.
        let up: std::collections::BTreeSet<u32> = sw
            .info
            .ports()
            .iter()
            .filter(|p| p.is_up())
            .map(|p| p.port_no)
            .collect();
        self.link_switch(name, Some(&up), effects, now);
        let host_ports = self.host_ports(name, &|| {
            sw.info.ports().iter().map(|p| p.port_no).collect()
        });
        self.lock()
            .ports
            .insert(name.to_string(), host_ports.into_iter().collect());
        effects.push(Effect::Audit {
            switch: sw.clone(),
            name: name.to_string(),
            every: self.audit,
        });
        vec![Body::SetAsync(AsyncConfig {
            // no_match, action and invalid_ttl packet-ins; every port status; every removal.
            packet_in_mask: [0b111, 0],
            port_status_mask: [0b111, 0b111],
            flow_removed_mask: [0b1111, 0],
        })]
    }

    /// A switch's session ended (at `now`): the fabric is routed around it.
    pub fn switch_down(&self, dpid: u64, now: Instant, effects: &mut Vec<Effect>) {
        let Some(name) = self.name_by_dpid(dpid) else {
            return;
        };
        {
            let mut st = self.lock();
            st.reconciled.remove(name);
            st.refresh_quiet(&self.fabric.topology.switches, now);
        }
        self.link_switch(name, None, effects, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ofp13::{Action, MacAddr, PacketIn, PacketOut};

    fn router() -> Router {
        Router::new(crate::fabric::plan::paper_fabric())
    }

    fn pin(in_port: u32, reason: u8, frame: Vec<u8>) -> PacketIn {
        PacketIn::unbuffered(in_port, reason, frame)
    }

    const X_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 5]);
    const X_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 5);
    fn r2_ports() -> Vec<u32> {
        vec![1, 2, 5, port::LOCAL]
    }

    #[test]
    fn a_host_port_gets_its_meter_and_entries_when_it_appears_and_loses_them_when_it_goes() {
        use crate::fabric::plan::{Meter, COOKIE_PORT, COOKIE_SUBNET, TABLE_PUNT};
        let r = router();
        let status = |reason, port_no| {
            Body::PortStatus(ofp13::PortStatus {
                reason,
                desc: crate::emu::switch::port(2, port_no),
            })
        };
        let (out, fx) = from_r2(&r, status(ofp13::OFPPR_ADD, 9));
        assert!(fx.is_empty(), "{fx:?}");
        let meter = Meter {
            id: 9,
            pps: crate::fabric::plan::DEFAULT_PORT_PPS,
            burst: crate::fabric::plan::DEFAULT_PORT_PPS,
        };
        assert_eq!(out[0], Body::MeterMod(Meter::delete(9)));
        assert_eq!(out[1], Body::MeterMod(meter.meter_mod(ofp13::OFPMC_ADD)));
        let adds: Vec<&ofp13::FlowMod> = out[2..]
            .iter()
            .filter_map(|b| match b {
                Body::FlowMod(fm) if fm.command == ofp13::OFPFC_ADD => Some(fm),
                _ => None,
            })
            .collect();
        // Its two entries toward the controller, then its subnet's flood: its own, and every
        // other port of the subnet now floods to it too.
        let declared = r.fabric.declared_ports("r2");
        assert_eq!(adds.len(), 2 + 1 + declared.len(), "{out:?}");
        assert!(adds
            .iter()
            .any(|f| f.table_id == TABLE_PUNT && f.cookie == COOKIE_PORT | 9));
        for f in adds
            .iter()
            .filter(|f| f.cookie & COOKIE_MASK_KIND == COOKIE_SUBNET)
        {
            let outs: Vec<u32> = f
                .instructions
                .iter()
                .flat_map(|i| match i {
                    ofp13::Instruction::ApplyActions { actions } => actions.clone(),
                    _ => Vec::new(),
                })
                .filter_map(|a| match a {
                    Action::Output { port, .. } => Some(port),
                    _ => None,
                })
                .collect();
            let me = (f.cookie & 0xffff_ffff) as u32;
            let want: Vec<u32> = declared
                .iter()
                .chain([&9])
                .copied()
                .filter(|&p| p != me)
                .collect();
            assert_eq!(outs, want, "{f:?}");
        }
        assert!(r.switch_meters("r2").contains(&meter));
        assert!(r
            .switch_plan("r2")
            .iter()
            .any(|f| f.cookie == COOKIE_PORT | 9));
        // Told twice: nothing more. A link port or a port change: nothing.
        for (reason, port_no) in [
            (ofp13::OFPPR_ADD, 9),
            (ofp13::OFPPR_ADD, 1),
            (ofp13::OFPPR_MODIFY, 9),
        ] {
            let again = from_r2(&r, status(reason, port_no));
            assert!(again.0.is_empty() && again.1.is_empty(), "{again:?}");
        }
        // Gone: its entries, then its meter.
        let (out, fx) = from_r2(&r, status(ofp13::OFPPR_DELETE, 9));
        // No host was at the port: nothing to forget later.
        assert!(fx.is_empty(), "{fx:?}");
        assert_eq!(out.last(), Some(&Body::MeterMod(Meter::delete(9))));
        assert_eq!(
            out.iter()
                .filter(
                    |b| matches!(b, Body::FlowMod(fm) if fm.command == ofp13::OFPFC_DELETE_STRICT)
                )
                .count(),
            2 + 1
        );
        assert!(!r.switch_meters("r2").iter().any(|m| m.id == 9));
        assert_eq!(
            r.switch_plan("r2")
                .iter()
                .filter(|f| f.cookie & COOKIE_MASK_KIND == COOKIE_SUBNET)
                .count(),
            declared.len()
        );
        assert!(!r
            .switch_plan("r2")
            .iter()
            .any(|f| f.cookie == COOKIE_PORT | 9));
    }

    fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        Arp {
            op,
            sha,
            spa,
            tha: MacAddr::ZERO,
            tpa,
        }
        .frame(MacAddr::BROADCAST, sha, packet::ETH_ARP)
    }

    fn packet_outs(out: &[Body]) -> Vec<&PacketOut> {
        out.iter()
            .filter_map(|b| match b {
                Body::PacketOut(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn flow_mods(out: &[Body]) -> usize {
        out.iter().filter(|b| matches!(b, Body::FlowMod(_))).count()
    }

    #[test]
    fn answers_arp_for_the_gateway_and_learns_the_asker() {
        let r = router();
        let f = arp(
            packet::ARP_REQUEST,
            X_MAC,
            X_IP,
            Ipv4Addr::new(192, 168, 10, 1),
        );
        let out = r.packet_in("r2", &r2_ports, &pin(5, 0, f));
        assert_eq!(
            flow_mods(&out),
            3,
            "source, switching and routing entries for the new host"
        );
        let po = packet_outs(&out);
        assert_eq!(po.len(), 1);
        assert_eq!(po[0].actions[..], [Action::output(5)]);
        let eth = Ethernet::parse(&po[0].data).unwrap();
        let a = Arp::parse(eth.payload).unwrap();
        assert_eq!(
            (a.op, a.sha, a.spa, a.tpa),
            (
                packet::ARP_REPLY,
                GATEWAY_MAC,
                Ipv4Addr::new(192, 168, 10, 1),
                X_IP
            )
        );
        assert_eq!(eth.dst, X_MAC);
        assert!(r
            .hosts()
            .iter()
            .any(|(h, o)| h.ip == X_IP && h.port == 5 && *o == Origin::Learned));
    }

    /// One message from r2: its answers and the effects it asks for.
    fn from_r2(r: &Router, msg: Body) -> (Vec<Body>, Vec<Effect>) {
        let (mut out, mut fx) = (Vec::new(), Vec::new());
        r.handle_message(
            "r2",
            &r2_ports,
            &Message::new(0, msg),
            &mut out,
            &mut fx,
            r.now(),
        );
        (out, fx)
    }

    #[test]
    fn a_learned_host_whose_port_goes_arms_a_timer_to_forget_it_and_a_port_back_disarms_it() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock).with_detached_grace(Duration::from_secs(30));
        let ask = arp(
            packet::ARP_REQUEST,
            X_MAC,
            X_IP,
            Ipv4Addr::new(192, 168, 10, 1),
        );
        let (_, fx) = from_r2(&r, Body::PacketIn(pin(5, 0, ask)));
        assert!(
            fx.is_empty(),
            "learning asks for nothing beyond its entries: {fx:?}"
        );
        let status = |reason| {
            Body::PortStatus(ofp13::PortStatus {
                reason,
                desc: crate::emu::switch::port(2, 5),
            })
        };
        clock.advance(Duration::from_secs(3));
        let since = r.now();
        let (_, fx) = from_r2(&r, status(ofp13::OFPPR_DELETE));
        match &fx[..] {
            [Effect::Forget {
                mac,
                since: s,
                after,
            }] => {
                assert_eq!((*mac, *s, *after), (X_MAC, since, Duration::from_secs(30)));
            }
            other => panic!("one timer to forget the host: {other:?}"),
        }
        // Told again: its timer runs already.
        assert!(from_r2(&r, status(ofp13::OFPPR_DELETE)).1.is_empty());
        // Its port back before the timer fires: nothing new asked for, and no longer detached
        // since then, which is what the timer's `forget` checks before it forgets anything.
        assert!(from_r2(&r, status(ofp13::OFPPR_ADD)).1.is_empty());
        assert_eq!(r.read().detached.get(&X_MAC), None);
    }

    #[test]
    fn a_vm_announced_at_a_new_port_asks_for_its_migration_and_nothing_else_does() {
        let r = router();
        let vm = r
            .fabric
            .configured_hosts()
            .into_iter()
            .find(|h| h.switch == "r3")
            .unwrap();
        let (_, fx) = from_r2(&r, Body::PacketIn(pin(5, 0, packet::rarp_announce(vm.mac))));
        match &fx[..] {
            [Effect::Migrate { mac, to, .. }] => {
                assert_eq!((*mac, to.to_string().as_str()), (vm.mac, "r2:5"));
            }
            other => panic!("one migration: {other:?}"),
        }
        // Its state is unchanged until the effect runs: a router on its own installs nothing.
        assert_eq!(r.read().location(vm.mac), Some(("r3", vm.port)));
        // A host asking for its gateway, at home: an answer, no effect.
        let ask = arp(
            packet::ARP_REQUEST,
            X_MAC,
            X_IP,
            Ipv4Addr::new(192, 168, 10, 1),
        );
        let (out, fx) = from_r2(&r, Body::PacketIn(pin(5, 0, ask.clone())));
        assert!(!out.is_empty() && fx.is_empty(), "{fx:?}");
    }

    #[test]
    fn a_common_arp_request_is_answered_under_a_shared_read_as_the_general_path_answers() {
        let r = router();
        let b_mac = MacAddr([2, 0, 0, 0, 0x10, 2]);
        let b_ip = Ipv4Addr::new(192, 168, 10, 2);
        let c_ip = Ipv4Addr::new(192, 168, 10, 3);
        // b is configured at r2:2. Every target it may ask for: the gateway, a host of its
        // subnet, a free address (resolved), a host elsewhere.
        for tpa in [
            Ipv4Addr::new(192, 168, 10, 1),
            c_ip,
            Ipv4Addr::new(192, 168, 10, 77),
            Ipv4Addr::new(10, 0, 0, 2),
        ] {
            let f = arp(packet::ARP_REQUEST, b_mac, b_ip, tpa);
            let before = r.state_writes();
            let common = r.packet_in("r2", &r2_ports, &pin(2, 0, f.clone()));
            assert_eq!(
                r.state_writes(),
                before,
                "asking for {tpa}: nothing written"
            );
            let eth = Ethernet::parse(&f).unwrap();
            let r2 = r.fabric.switch_ctx("r2").unwrap();
            let at = At {
                sw: &r2,
                ports: &r2_ports,
                in_port: 2,
                now: r.now(),
            };
            let general = r.on_arp(at, &eth, &Arp::parse(eth.payload).unwrap());
            assert_eq!(common, general, "asking for {tpa}");
        }
        // A known host's ping to its gateway writes nothing either.
        let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"ping");
        let ping = packet::ipv4_frame(
            GATEWAY_MAC,
            b_mac,
            b_ip,
            Ipv4Addr::new(192, 168, 10, 1),
            packet::IP_ICMP,
            &icmp,
        );
        let before = r.state_writes();
        assert_eq!(
            packet_outs(&r.packet_in("r2", &r2_ports, &pin(2, 0, ping))).len(),
            1
        );
        assert_eq!(r.state_writes(), before);
        // What changes state takes the write lock: a new host is learned...
        let before = r.state_writes();
        let f = arp(
            packet::ARP_REQUEST,
            X_MAC,
            X_IP,
            Ipv4Addr::new(192, 168, 10, 1),
        );
        assert_eq!(flow_mods(&r.packet_in("r2", &r2_ports, &pin(5, 0, f))), 3);
        assert!(r.state_writes() > before);
        // ... and a known host heard at another port is moved (recorded as a move only with a
        // runtime to run it; here the decision is what counts: it leaves the shared read).
        let st = r.read();
        let r2 = r.fabric.switch_ctx("r2").unwrap();
        assert_eq!(r.heard(&st, &r2, 7, b_mac, r.now()), Heard::Moved);
        assert_eq!(r.heard(&st, &r2, 2, b_mac, r.now()), Heard::Nothing);
    }

    #[test]
    fn an_announcement_outside_a_move_drops_an_older_queued_move() {
        // b (configured at r2:2) was announced at r3:9 while an earlier move was installing;
        // that move has ended, and before it took the queued location b announces itself
        // at r2:2 again. The queued location is older than that word: it must go.
        let r = router();
        let b_mac = MacAddr([2, 0, 0, 0, 0x10, 2]);
        r.lock().next_move.insert(b_mac, ("r3".to_string(), 9));
        let out = r.packet_in("r2", &r2_ports, &pin(2, 0, packet::rarp_announce(b_mac)));
        assert!(out.is_empty());
        assert_eq!(r.lock().next_move.get(&b_mac), None);
        // While a move is installing, an announcement elsewhere is queued, not dropped.
        r.lock().migrating.insert(b_mac);
        r.packet_in("r2", &r2_ports, &pin(5, 0, packet::rarp_announce(b_mac)));
        assert_eq!(r.lock().next_move.get(&b_mac), Some(&("r2".to_string(), 5)));
    }

    #[test]
    fn a_host_asking_for_a_known_host_outside_its_subnet_gets_the_gateway() {
        // b (192.168.10.2 at r2:2) holds a redirect to vm (192.168.11.3, home at r3) from
        // when vm was at r2; vm has gone home. b's ARP for vm is answered with the gateway
        // MAC, so b's packets are routed to it.
        let r = router();
        let b_mac = MacAddr([2, 0, 0, 0, 0x10, 2]);
        let f = arp(
            packet::ARP_REQUEST,
            b_mac,
            Ipv4Addr::new(192, 168, 10, 2),
            Ipv4Addr::new(192, 168, 11, 3),
        );
        let out = r.packet_in("r2", &r2_ports, &pin(2, 0, f));
        let po = packet_outs(&out);
        assert_eq!(po.len(), 1);
        let a = Arp::parse(Ethernet::parse(&po[0].data).unwrap().payload).unwrap();
        assert_eq!((a.op, a.sha), (packet::ARP_REPLY, GATEWAY_MAC));
        // An unknown address outside b's subnet: no answer (nothing says where it is).
        let f = arp(
            packet::ARP_REQUEST,
            b_mac,
            Ipv4Addr::new(192, 168, 10, 2),
            Ipv4Addr::new(192, 168, 11, 99),
        );
        assert!(packet_outs(&r.packet_in("r2", &r2_ports, &pin(2, 0, f))).is_empty());
    }

    #[test]
    fn spoofed_arp_never_moves_a_binding() {
        let r = router();
        // b (192.168.10.2) is configured at r2:2; a claim from port 5 changes nothing.
        let evil = MacAddr([2, 0xee, 0, 0, 0, 1]);
        let b_ip = Ipv4Addr::new(192, 168, 10, 2);
        for f in [
            arp(
                packet::ARP_REPLY,
                evil,
                b_ip,
                Ipv4Addr::new(192, 168, 10, 1),
            ),
            arp(packet::ARP_REQUEST, evil, b_ip, b_ip), // gratuitous
        ] {
            let out = r.packet_in("r2", &r2_ports, &pin(5, 0, f));
            assert_eq!(flow_mods(&out), 0);
        }
        let b = r.hosts().into_iter().find(|(h, _)| h.ip == b_ip).unwrap().0;
        assert_eq!((b.port, b.mac), (2, MacAddr([2, 0, 0, 0, 0x10, 2])));
        // A frame whose Ethernet source disagrees with the ARP sender is ignored outright.
        let mut f = arp(
            packet::ARP_REQUEST,
            X_MAC,
            X_IP,
            Ipv4Addr::new(192, 168, 10, 1),
        );
        f[6..12].copy_from_slice(&evil.0);
        assert!(r.packet_in("r2", &r2_ports, &pin(5, 0, f)).is_empty());
        // Malformed frames do nothing.
        for n in [0, 10, 14, 20, 41] {
            let f = arp(
                packet::ARP_REQUEST,
                X_MAC,
                X_IP,
                Ipv4Addr::new(192, 168, 10, 1),
            );
            assert!(r
                .packet_in("r2", &r2_ports, &pin(5, 0, f[..n].to_vec()))
                .is_empty());
        }
        assert!(r.hosts().iter().all(|(h, _)| h.ip != X_IP));
    }

    #[test]
    fn first_packet_to_a_silent_host_is_held_then_delivered() {
        let r = router();
        let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"ping");
        let e_ip = Ipv4Addr::new(10, 0, 0, 2);
        let frame =
            packet::ipv4_frame(GATEWAY_MAC, GATEWAY_MAC, e_ip, X_IP, packet::IP_ICMP, &icmp);
        // Arrives from the link to r1 (port 1), hits "local subnet, unknown host".
        let out = r.packet_in("r2", &r2_ports, &pin(1, 0, frame.clone()));
        let po = packet_outs(&out);
        assert_eq!(po.len(), 1, "one ARP request");
        assert_eq!(
            po[0].actions[..],
            [Action::output(2), Action::output(5)],
            "host ports only"
        );
        let a = Arp::parse(Ethernet::parse(&po[0].data).unwrap().payload).unwrap();
        assert_eq!(
            (a.op, a.spa, a.tpa),
            (packet::ARP_REQUEST, Ipv4Addr::new(192, 168, 10, 1), X_IP)
        );
        // A second packet is held too, without a second request.
        assert!(packet_outs(&r.packet_in("r2", &r2_ports, &pin(1, 0, frame.clone()))).is_empty());
        // The answer: flows, then both packets re-injected where they came in.
        let reply = Arp::reply(X_MAC, X_IP, GATEWAY_MAC, Ipv4Addr::new(192, 168, 10, 1)).to_frame();
        let out = r.packet_in("r2", &r2_ports, &pin(5, 0, reply));
        assert_eq!(flow_mods(&out), 3);
        let po = packet_outs(&out);
        assert_eq!(po.len(), 2);
        for p in po {
            assert_eq!(
                (p.in_port, &p.actions[..]),
                (1, &[Action::output(port::TABLE)][..])
            );
            assert_eq!(&p.data[..], &frame[..]);
        }
    }

    #[test]
    fn a_care_of_address_is_never_asked_for() {
        let r = router();
        let co = Ipv4Addr::new(192, 168, 10, 192);
        let taken = r.lock().pools.take("foreign", "vm", 1, |_| false).unwrap();
        assert_eq!(taken, [co]);
        let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"late");
        let late = packet::ipv4_frame(
            GATEWAY_MAC,
            GATEWAY_MAC,
            Ipv4Addr::new(10, 0, 0, 2),
            co,
            packet::IP_ICMP,
            &icmp,
        );
        let ask = arp(
            packet::ARP_REQUEST,
            MacAddr([2, 0, 0, 0, 0x10, 2]),
            Ipv4Addr::new(192, 168, 10, 2),
            co,
        );
        for held in [true, false] {
            if !held {
                // Given back: packets in flight may still carry it.
                assert_eq!(r.lock().release_care_of("foreign", "vm", r.now()), [co]);
            }
            // A packet that reached the old foreign switch after the VM moved on is dropped,
            // and nobody is asked for the address (the hosts would see it).
            let out = r.packet_in("r2", &r2_ports, &pin(1, 0, late.clone()));
            assert!(packet_outs(&out).is_empty(), "held={held}");
            let out = r.packet_in("r2", &r2_ports, &pin(2, 0, ask.clone()));
            assert!(packet_outs(&out).is_empty(), "held={held}");
        }
    }

    #[test]
    fn ping_to_gateway_and_ttl_exceeded() {
        let r = router();
        let d_mac = MacAddr([2, 0, 0, 0, 0x11, 2]);
        let d_ip = Ipv4Addr::new(192, 168, 11, 2);
        let gw = Ipv4Addr::new(192, 168, 11, 1);
        let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 7, 0, 1], b"abcd");
        let f = packet::ipv4_frame(GATEWAY_MAC, d_mac, d_ip, gw, packet::IP_ICMP, &icmp);
        let out = r.packet_in("r3", &|| vec![1, 2, 3, 4], &pin(2, 0, f.clone()));
        let po = packet_outs(&out);
        let eth = Ethernet::parse(&po[0].data).unwrap();
        let ip = Ipv4::parse(eth.payload).unwrap();
        assert_eq!((ip.src, ip.dst, eth.dst), (gw, d_ip, d_mac));
        assert_eq!(ip.payload[0], packet::ICMP_ECHO_REPLY);
        assert_eq!(&ip.payload[4..8], &[0, 7, 0, 1], "id and sequence echoed");
        assert_eq!(packet::checksum(ip.payload), 0);

        let f = packet::ipv4_frame(
            GATEWAY_MAC,
            d_mac,
            d_ip,
            Ipv4Addr::new(10, 0, 0, 2),
            packet::IP_ICMP,
            &icmp,
        );
        let out = r.packet_in(
            "r3",
            &|| vec![1, 2, 3, 4],
            &pin(2, ofp13::OFPR_INVALID_TTL, f),
        );
        let po = packet_outs(&out);
        assert_eq!(po[0].actions[..], [Action::output(2)]);
        let ip = Ipv4::parse(Ethernet::parse(&po[0].data).unwrap().payload).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.payload[0]),
            (gw, d_ip, packet::ICMP_TIME_EXCEEDED)
        );
        assert_eq!(packet::checksum(ip.payload), 0);
    }

    // --- Timers, with a clock moved by hand -------------------------------------------------

    fn router_at(clock: &std::sync::Arc<crate::app::clock::ManualClock>) -> Router {
        router().with_clock(clock.clone())
    }

    fn icmp_frame(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], b"ping");
        packet::ipv4_frame(GATEWAY_MAC, GATEWAY_MAC, src, dst, packet::IP_ICMP, &icmp)
    }

    #[test]
    fn held_packets_are_kept_for_hold_for_and_at_most_hold_max() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock);
        let frame = icmp_frame(Ipv4Addr::new(10, 0, 0, 2), X_IP);
        let asks = |r: &Router| {
            packet_outs(&r.packet_in("r2", &r2_ports, &pin(1, 0, frame.clone()))).len()
        };
        assert_eq!(asks(&r), 1, "the first packet asks");
        clock.advance(HOLD_FOR - Duration::from_millis(1));
        assert_eq!(asks(&r), 0, "still held: no second request");
        clock.advance(Duration::from_millis(1));
        assert_eq!(asks(&r), 1, "the hold expired: the next packet asks again");
        for _ in 0..2 * HOLD_MAX {
            assert_eq!(asks(&r), 0);
        }
        let reply = Arp::reply(X_MAC, X_IP, GATEWAY_MAC, Ipv4Addr::new(192, 168, 10, 1)).to_frame();
        let out = r.packet_in("r2", &r2_ports, &pin(5, 0, reply));
        assert_eq!(
            packet_outs(&out).len(),
            HOLD_MAX,
            "the newest HOLD_MAX packets go on"
        );
    }

    /// The redirects `frame`, copied to the controller at r2's port 5 now, brings.
    fn redirected(r: &Router, frame: &[u8]) -> usize {
        let eth = Ethernet::parse(frame).unwrap();
        let ip = Ipv4::parse(eth.payload).unwrap();
        let r2 = r.fabric.switch_ctx("r2").unwrap();
        let at = At {
            sw: &r2,
            ports: &r2_ports,
            in_port: 5,
            now: r.now(),
        };
        r.redirect(at, &eth, &ip, COOKIE_REDIRECT, &mut Vec::new())
            .len()
    }

    #[test]
    fn redirects_keep_their_interval_burst_and_quiet_period() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock);
        let frame = icmp_frame(X_IP, Ipv4Addr::new(192, 168, 10, 2));
        let sent = |r: &Router| redirected(r, &frame);
        assert_eq!(sent(&r), 1);
        clock.advance(REDIRECT_INTERVAL - Duration::from_millis(1));
        assert_eq!(sent(&r), 0, "within the interval");
        let mut total = 1;
        while total < REDIRECT_BURST as usize {
            clock.advance(REDIRECT_INTERVAL);
            assert_eq!(sent(&r), 1, "one per interval within the burst");
            total += 1;
        }
        // The burst is spent at the last one sent: silence for the quiet period from there.
        clock.advance(REDIRECT_INTERVAL);
        assert_eq!(sent(&r), 0, "the burst is spent");
        clock.advance(REDIRECT_QUIET - REDIRECT_INTERVAL - Duration::from_millis(1));
        assert_eq!(sent(&r), 0, "still within the quiet period after the last");
        clock.advance(Duration::from_millis(1));
        assert_eq!(sent(&r), 1, "after the quiet period, a new burst");
    }

    /// A TCP stream spends its own redirects (Linux ignores those quoting acknowledged
    /// segments), not those of the pair's other packets: a ping between the same two
    /// addresses is still redirected at once.
    #[test]
    fn tcp_segments_and_other_packets_of_a_pair_have_their_own_redirects() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock);
        let (src, dst) = (X_IP, Ipv4Addr::new(192, 168, 10, 2));
        let tcp = packet::ipv4_frame(GATEWAY_MAC, GATEWAY_MAC, src, dst, packet::IP_TCP, &[0; 20]);
        let icmp = icmp_frame(src, dst);
        let sent = redirected;
        for _ in 0..REDIRECT_BURST {
            assert_eq!(sent(&r, &tcp), 1);
            clock.advance(REDIRECT_INTERVAL);
        }
        assert_eq!(sent(&r, &tcp), 0, "the TCP segments' burst is spent");
        assert_eq!(sent(&r, &icmp), 1, "the ping's is not");
        clock.advance(REDIRECT_INTERVAL - Duration::from_millis(1));
        assert_eq!(sent(&r, &icmp), 0, "and keeps its own interval");
    }

    #[test]
    fn a_released_care_of_address_stays_one_for_its_afterlife_only() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock);
        let co = Ipv4Addr::new(192, 168, 10, 192);
        assert_eq!(
            r.lock().pools.take("foreign", "vm", 1, |_| false).unwrap(),
            [co]
        );
        assert_eq!(r.lock().release_care_of("foreign", "vm", r.now()), [co]);
        let late = icmp_frame(Ipv4Addr::new(10, 0, 0, 2), co);
        clock.advance(CARE_OF_AFTERLIFE - Duration::from_millis(1));
        assert!(r.read().is_care_of(co, clock.now()));
        assert!(packet_outs(&r.packet_in("r2", &r2_ports, &pin(1, 0, late.clone()))).is_empty());
        clock.advance(Duration::from_millis(1));
        assert!(!r.read().is_care_of(co, clock.now()));
        // An ordinary unknown address of the subnet now: asked for like any other.
        assert_eq!(
            packet_outs(&r.packet_in("r2", &r2_ports, &pin(1, 0, late))).len(),
            1
        );
    }

    #[test]
    fn frames_from_where_a_vm_was_are_stragglers_for_the_previous_grace() {
        let clock = crate::app::clock::ManualClock::new();
        let r = router_at(&clock);
        // b, configured at r2:2; it was at r2:7 before.
        let c_mac = MacAddr([2, 0, 0, 0, 0x10, 2]);
        r.lock()
            .previous
            .insert(c_mac, (("r2".to_string(), 7), clock.now()));
        let st = r.read();
        assert!(
            !seen_elsewhere(&st, "r2", 7, c_mac, false, clock.now()),
            "a straggler"
        );
        assert!(
            seen_elsewhere(&st, "r2", 7, c_mac, true, clock.now()),
            "an announcement always counts"
        );
        assert!(
            seen_elsewhere(&st, "r2", 8, c_mac, false, clock.now()),
            "another port is a move"
        );
        drop(st);
        clock.advance(PREVIOUS_GRACE);
        assert!(
            seen_elsewhere(&r.read(), "r2", 7, c_mac, false, clock.now()),
            "the grace is over"
        );
    }
}
