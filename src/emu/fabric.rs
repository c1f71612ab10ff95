//! An emulated fabric, in process: one emulated OpenFlow 1.3 switch ([`crate::emu::switch`]) per switch
//! of a topology, connected to a controller over real sockets; links that carry frames between
//! them; and one emulated host per topology host, with a tiny IPv4 and IPv6 stack that behaves
//! like a Linux host for what the fabric cares about. Used by tests (`tests/emu_routing.rs`, and
//! `tests/emu_vs_ovs.rs`, which runs the same scenario on Open vSwitch and compares what every
//! host receives) and meant for `servswitch demo`.
//!
//! **Wiring.** Every switch gets every port the topology names for it: each link end and each
//! host port (`r1:1` ... ), numbered as in the file. A frame a switch outputs on a link port
//! enters the peer switch on the peer port; on a host port it is handed to that host's stack;
//! on any other port it is dropped. One task (the fabric's) moves frames between switches and
//! runs the hosts; each switch runs its datapath in its own task ([`crate::emu::switch::connect_wired`]).
//!
//! **Hosts** ([`HostStack`], sans-io; like Linux with default sysctls):
//! - an address (or several) with the prefix length of its subnet, and a default gateway (the
//!   gateway of its first address's subnet);
//! - answers ARP requests for its addresses (to the requester's MAC), and then holds an entry for
//!   the requester (Linux's `neigh_event_ns`);
//! - an ARP cache whose entries live [`HostConfig::arp_lifetime`]; any other ARP packet (replies,
//!   gratuitous ARP, requests for someone else) updates an *existing* entry only (Linux's
//!   `arp_accept=0`), and a different MAC replaces a valid entry only if it is gratuitous or the
//!   entry is older than [`HostConfig::arp_locktime`];
//! - sends directly to destinations inside one of its prefixes and via the gateway otherwise;
//!   an unresolved next hop is asked for (broadcast ARP request, [`HostConfig::arp_tries`] times
//!   [`HostConfig::arp_retrans`] apart) while the packets wait in a queue; when the tries run
//!   out the queue is dropped and a local probe learns "destination host unreachable" from the
//!   host's own address (what `ping` prints);
//! - drops frames for other MACs, IPv4 with a bad header or ICMP checksum, and packets for
//!   addresses that are not its own (no forwarding);
//! - answers ICMP echo requests (TTL 64, from the address that was pinged) and matches echo
//!   replies and ICMP errors (time exceeded, unreachable) to its own probes by identifier and
//!   sequence number, as `ping` does;
//! - accepts ICMP redirects as Linux does (`accept_redirects=1`, `shared_media=1`): codes 0-3
//!   alike, for the destination D of the quoted datagram (which it sent), only from D's current
//!   gateway, to a new gateway G that is unicast and not the old one (not necessarily on-link).
//!   With a valid ARP entry for G it installs a route exception "D via G" (same source address)
//!   for [`HostConfig::redirect_timeout`] ([`EmuFabric::redirects`]); without one it only asks
//!   for G, and a later redirect installs the exception;
//! - ignores RARP (counted as dropped) and never answers ARP for an address not its own;
//! - records every frame delivered to its port, for its own MAC or not ([`EmuFabric::received`]);
//! - IPv6 (the host's IPv6 addresses from the topology, with their subnet's prefix length,
//!   and the link-local address of its MAC): neighbour discovery in the same cache and with
//!   the same retries as ARP (solicitations to the solicited-node group; it answers those for
//!   its addresses and takes the asker's address; an advertisement updates an existing entry
//!   only, a different address only with the override flag, as `ndisc_recv_na`); the default
//!   router from router advertisements (from a link-local address, hop limit 255; lifetime 0
//!   removes it; no prefixes taken: its addresses are configured); echo requests answered
//!   with hop limit 64; echo replies, time exceeded and unreachable (address unreachable
//!   when neighbour discovery gave up) matched to its probes; ICMPv6 redirects taken as
//!   Linux takes them (link-local source, hop limit 255, only from the destination's current
//!   first hop, target link-local or the destination itself; the target link-layer option
//!   resolves the target at once, unlike IPv4's redirect); other IPv6 packets are ignored.
//!
//! **Migration.** [`EmuFabric::migrate_host`] moves a host's port like a live-migrated VM and
//! has it broadcast QEMU's RARP announcement (`net/announce.c`) from the new port, as QEMU does
//! when the VM resumes; [`EmuFabric::announce`] sends one more (QEMU sends about five, at 0,
//! 50, 200, 450 and 800 ms; the fabric sends them when told, without timers).
//!
//! **Determinism.** No randomness: probe identifiers count up, ARP timers are fixed. Nothing
//! waits on a fixed sleep: [`EmuFabric::wait_until`] re-checks its condition whenever a switch
//! or the fabric task has done some work. The order in which concurrent frames interleave is
//! up to the scheduler, as on a real network.
//!
//! **Stopping.** [`EmuFabric::shutdown`] closes every switch connection and ends the fabric's
//! task, and waits for all of them; dropping an [`EmuFabric`] aborts them instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use ofp13::{FlowStats, MacAddr};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::switch::{self, Egress, EmuConfig, EmuSwitch, Injector, SwitchSpec, Wire};
use crate::fabric::topology::Topology;
use crate::packet::icmp6::{self, Ipv6, Nd};
use crate::packet::{
    self, checksum, eth_frame, ipv4_packet, Arp, Ethernet, Ipv4, ARP_REPLY, ARP_REQUEST, ETH_ARP,
    ETH_IPV4, ETH_IPV6, ETH_RARP, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_REDIRECT,
    ICMP_TIME_EXCEEDED, IP_ICMP, IP_ICMPV6, IP_TCP, IP_UDP,
};

/// ICMP destination unreachable.
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
/// Code "host unreachable" of [`ICMP_DEST_UNREACHABLE`].
pub const ICMP_HOST_UNREACHABLE: u8 = 1;

// ---------------------------------------------------------------------------------------------
// Host stack

/// How the emulated hosts behave (defaults like Linux's).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// How long a resolved ARP entry is used before the address is asked for again (Linux: an
    /// entry stays reachable for 15 to 45 s, a random time; fixed here).
    pub arp_lifetime: Duration,
    /// A valid entry is not replaced by a non-gratuitous answer within this time of its last
    /// update (Linux: `locktime`, 1 s).
    pub arp_locktime: Duration,
    /// Time between ARP requests for an unresolved address (Linux: `retrans_time_ms`, 1 s).
    pub arp_retrans: Duration,
    /// ARP requests sent before giving up (Linux: `mcast_solicit`, 3).
    pub arp_tries: u32,
    /// Packets queued per unresolved address; the oldest goes first (Linux: `unres_qlen`, 101).
    pub arp_queue: usize,
    /// TTL of the packets the host originates (Linux: `ip_default_ttl`, 64).
    pub ttl: u8,
    /// Whether ICMP redirects are honoured (Linux: `accept_redirects`, on for a host that does
    /// not forward).
    pub accept_redirects: bool,
    /// How long the route exception a redirect installs lasts (Linux: `ip_rt_gc_timeout`,
    /// sysctl `net.ipv4.route.gc_timeout`, 300 s); a later redirect for the same destination
    /// restarts it.
    pub redirect_timeout: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            arp_lifetime: Duration::from_secs(30),
            arp_locktime: Duration::from_secs(1),
            arp_retrans: Duration::from_secs(1),
            arp_tries: 3,
            arp_queue: 101,
            ttl: 64,
            accept_redirects: true,
            redirect_timeout: Duration::from_secs(300),
        }
    }
}

/// An answer to an echo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReply {
    /// The reply's TTL (hop limit) as it arrived.
    pub ttl: u8,
    /// The reply's source address.
    pub from: IpAddr,
    pub rtt: Duration,
}

/// What became of one probe (an echo request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Reply(PingReply),
    /// An ICMP error about the probe: time exceeded (11) or destination unreachable (3), from
    /// a router, or from the host itself when its next hop did not answer ARP; for IPv6,
    /// time exceeded (3) or destination unreachable (1).
    Error {
        from: IpAddr,
        icmp_type: u8,
        code: u8,
    },
    /// Nothing came back in time.
    Timeout,
}

impl ProbeOutcome {
    pub fn reply(&self) -> Option<PingReply> {
        match self {
            ProbeOutcome::Reply(r) => Some(*r),
            _ => None,
        }
    }
}

/// A frame a host received, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    pub frame: Vec<u8>,
}

impl Received {
    pub fn eth(&self) -> Option<Ethernet<'_>> {
        Ethernet::parse(&self.frame)
    }
    /// The IPv4 packet, if the frame carries one.
    pub fn ipv4(&self) -> Option<Ipv4<'_>> {
        let e = self.eth()?;
        (e.ethertype == ETH_IPV4).then(|| Ipv4::parse(e.payload))?
    }
    /// The ARP packet, if the frame carries one.
    pub fn arp(&self) -> Option<Arp> {
        let e = self.eth()?;
        (e.ethertype == ETH_ARP).then(|| Arp::parse(e.payload))?
    }
    /// The IPv6 packet, if the frame carries one.
    pub fn ipv6(&self) -> Option<Ipv6<'_>> {
        let e = self.eth()?;
        (e.ethertype == ETH_IPV6).then(|| Ipv6::parse(e.payload))?
    }
    /// ICMPv6 (type, code) of an IPv6 packet whose next header is ICMPv6.
    pub fn icmp6(&self) -> Option<(u8, u8)> {
        let ip = self.ipv6()?;
        if ip.next != IP_ICMPV6 {
            return None;
        }
        Some((*ip.payload.first()?, *ip.payload.get(1)?))
    }
    /// ICMP (type, code) of an IPv4 ICMP packet.
    pub fn icmp(&self) -> Option<(u8, u8)> {
        let ip = self.ipv4()?;
        if ip.protocol != IP_ICMP {
            return None;
        }
        Some((*ip.payload.first()?, *ip.payload.get(1)?))
    }
}

#[derive(Debug)]
enum Neigh {
    /// Asked for; packets wait.
    Incomplete {
        queue: VecDeque<Vec<u8>>,
        sent: u32,
        next: Instant,
        /// The sender address of the requests (that of the first one).
        src: IpAddr,
    },
    Valid {
        mac: MacAddr,
        updated: Instant,
    },
}

/// A route exception installed by an ICMP redirect (Linux: a `fib_nh_exception`).
#[derive(Debug, Clone, Copy)]
struct RouteException {
    gateway: IpAddr,
    expires: Instant,
}

/// Where a packet for one destination goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route<A> {
    /// The neighbour its frame is addressed to.
    hop: A,
    /// The source address of packets the host originates for it.
    src: A,
    /// Whether `hop` is a gateway (the default one or a redirect's), not the destination.
    via_gateway: bool,
}

#[derive(Debug)]
struct Waiter {
    sent: Instant,
    /// The probe's source address (an unreachable error names it).
    src: IpAddr,
    reply: Option<oneshot::Sender<ProbeOutcome>>,
}

/// One emulated host's IPv4 and IPv6 stack, sans-io: frames and time in, frames out.
#[derive(Debug)]
pub struct HostStack {
    name: String,
    mac: MacAddr,
    addrs: Vec<(Ipv4Addr, u8)>,
    gateway: Option<Ipv4Addr>,
    /// IPv6 addresses besides the link-local one, with their prefix lengths.
    addrs6: Vec<(Ipv6Addr, u8)>,
    /// The IPv6 default router, from router advertisements.
    router6: Option<Ipv6Addr>,
    cfg: HostConfig,
    /// ARP and neighbour discovery entries, both families.
    neigh: HashMap<IpAddr, Neigh>,
    /// Route exceptions from redirects: destination -> gateway.
    redirects: BTreeMap<IpAddr, RouteException>,
    received: Vec<Received>,
    probes: HashMap<(u16, u16), Waiter>,
    ip_id: u16,
    dropped: u64,
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn same_prefix(a: Ipv4Addr, b: Ipv4Addr, len: u8) -> bool {
    u32::from(a) & mask(len) == u32::from(b) & mask(len)
}

fn same_prefix6(a: Ipv6Addr, b: Ipv6Addr, len: u8) -> bool {
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    };
    u128::from(a) & m == u128::from(b) & m
}

/// The two bytes at `at` as a big-endian number (0 if absent).
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_be_bytes([x[0], x[1]]))
}

fn ip6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    Some(Ipv6Addr::from(
        <[u8; 16]>::try_from(b.get(at..at + 16)?).ok()?,
    ))
}

/// What `ping` (iputils) puts in an echo request: 8 bytes of timestamp, then 0x10, 0x11, ...
fn ping_data(seq: u16) -> Vec<u8> {
    let mut d = Vec::with_capacity(56);
    d.extend_from_slice(&u64::from(seq).to_be_bytes());
    d.extend((0x10u8..).take(48));
    d
}

impl HostStack {
    /// A host with addresses (and their prefix lengths) and a default gateway.
    pub fn new(
        name: &str,
        mac: MacAddr,
        addrs: Vec<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
        cfg: HostConfig,
    ) -> HostStack {
        HostStack {
            name: name.to_string(),
            mac,
            addrs,
            gateway,
            addrs6: Vec::new(),
            router6: None,
            cfg,
            neigh: HashMap::new(),
            redirects: BTreeMap::new(),
            received: Vec::new(),
            probes: HashMap::new(),
            ip_id: 0,
            dropped: 0,
        }
    }

    /// The host with IPv6 addresses too (and their prefix lengths); its default router comes
    /// from router advertisements.
    pub fn with_ipv6(mut self, addrs6: Vec<(Ipv6Addr, u8)>) -> HostStack {
        self.addrs6 = addrs6;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn addrs6(&self) -> &[(Ipv6Addr, u8)] {
        &self.addrs6
    }
    /// The IPv6 default router a router advertisement named, if any.
    pub fn router6(&self) -> Option<Ipv6Addr> {
        self.router6
    }
    pub fn mac(&self) -> MacAddr {
        self.mac
    }
    pub fn addrs(&self) -> &[(Ipv4Addr, u8)] {
        &self.addrs
    }
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }
    /// Every frame delivered to the host's port, in order.
    pub fn received(&self) -> &[Received] {
        &self.received
    }
    /// Frames it threw away (for another MAC, bad checksum, not its address, ...).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn is_mine(&self, ip: Ipv4Addr) -> bool {
        self.addrs.iter().any(|(a, _)| *a == ip)
    }

    /// QEMU's announcement of this host after a live migration ([`packet::rarp_announce`]).
    pub fn announce(&self) -> Vec<u8> {
        packet::rarp_announce(self.mac)
    }

    /// The route exceptions ICMP redirects installed: destination -> new gateway. Expired ones
    /// are removed by the next [`HostStack::on_timeout`], [`HostStack::receive`] or
    /// [`HostStack::start_probe`] (and are not used from their expiry on).
    pub fn redirects(&self) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
        self.redirects
            .iter()
            .filter_map(|(d, r)| match (d, r.gateway) {
                (IpAddr::V4(d), IpAddr::V4(g)) => Some((*d, g)),
                _ => None,
            })
            .collect()
    }

    /// The route exceptions ICMPv6 redirects installed: destination -> new first hop (the
    /// destination itself when the redirect said it is on the link).
    pub fn redirects6(&self) -> BTreeMap<Ipv6Addr, Ipv6Addr> {
        self.redirects
            .iter()
            .filter_map(|(d, r)| match (d, r.gateway) {
                (IpAddr::V6(d), IpAddr::V6(g)) => Some((*d, g)),
                _ => None,
            })
            .collect()
    }

    fn expire_redirects(&mut self, now: Instant) {
        self.redirects.retain(|_, r| now < r.expires);
    }

    /// Whether `ip` is a unicast address from this host's point of view (Linux:
    /// `inet_addr_type(ip) == RTN_UNICAST`): not 0.0.0.0/8, multicast, 255.255.255.255,
    /// loopback, one of its own addresses, or the network or broadcast address of one of its
    /// prefixes (shorter than /31).
    fn is_unicast(&self, ip: Ipv4Addr) -> bool {
        let directed_broadcast = self.addrs.iter().any(|(a, l)| {
            let host = u32::from(ip) & !mask(*l);
            *l < 31 && same_prefix(*a, ip, *l) && (host == 0 || host == !mask(*l))
        });
        !(ip.octets()[0] == 0
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_loopback()
            || self.is_mine(ip)
            || directed_broadcast)
    }

    /// The resolved ARP entries valid at `now`, by address.
    pub fn arp_cache(&self, now: Instant) -> BTreeMap<Ipv4Addr, MacAddr> {
        self.neighbours(now)
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V4(ip) => Some((ip, mac)),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// The resolved neighbour discovery entries valid at `now`, by address.
    pub fn neighbours6(&self, now: Instant) -> BTreeMap<Ipv6Addr, MacAddr> {
        self.neighbours(now)
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V6(ip) => Some((ip, mac)),
                IpAddr::V4(_) => None,
            })
            .collect()
    }

    fn neighbours(&self, now: Instant) -> impl Iterator<Item = (IpAddr, MacAddr)> + '_ {
        self.neigh.iter().filter_map(move |(ip, n)| match n {
            Neigh::Valid { mac, updated } if !self.expired(*updated, now) => Some((*ip, *mac)),
            _ => None,
        })
    }

    fn expired(&self, updated: Instant, now: Instant) -> bool {
        now.saturating_duration_since(updated) >= self.cfg.arp_lifetime
    }

    /// The next hop for `dst` and the source address to use: on-link destinations directly,
    /// everything else via the gateway, or via the gateway a redirect named for `dst` (a route
    /// exception, valid until it expires; the source address stays that of the route). `None`
    /// when there is no route.
    fn route(&self, dst: Ipv4Addr, now: Instant) -> Option<Route<Ipv4Addr>> {
        if let Some((a, _)) = self.addrs.iter().find(|(a, l)| same_prefix(*a, dst, *l)) {
            return Some(Route {
                hop: dst,
                src: *a,
                via_gateway: false,
            });
        }
        let gw = self.gateway?;
        let (a, _) = self
            .addrs
            .iter()
            .find(|(a, l)| same_prefix(*a, gw, *l))
            .or(self.addrs.first())?;
        let hop = match self.redirects.get(&IpAddr::V4(dst)) {
            Some(RouteException {
                gateway: IpAddr::V4(g),
                expires,
            }) if now < *expires => *g,
            _ => gw,
        };
        Some(Route {
            hop,
            src: *a,
            via_gateway: true,
        })
    }

    /// An ARP request for `target` (IPv4), or a neighbour solicitation to its
    /// solicited-node group (IPv6), from `src`.
    fn solicit(&self, src: IpAddr, target: IpAddr) -> Vec<u8> {
        match (src, target) {
            (IpAddr::V4(src), IpAddr::V4(target)) => Arp::request(self.mac, src, target).to_frame(),
            (src, target) => {
                let src = match src {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(_) => icmp6::link_local(self.mac),
                };
                let target = match target {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                };
                let group = icmp6::solicited_node(target);
                icmp6::icmp6_frame(
                    icmp6::multicast_mac(group),
                    self.mac,
                    src,
                    group,
                    icmp6::NEIGHBOR_SOLICITATION,
                    0,
                    &icmp6::ns_body(target, self.mac),
                )
            }
        }
    }

    /// The Ethernet type of packets to `ip`'s family.
    fn ethertype(ip: IpAddr) -> u16 {
        if ip.is_ipv4() {
            ETH_IPV4
        } else {
            ETH_IPV6
        }
    }

    /// Sends an IP packet towards `next_hop` (an IPv4 or an IPv6 neighbour: the packet's
    /// family), soliciting it from `src` first if it is not resolved.
    fn send_ip(
        &mut self,
        next_hop: impl Into<IpAddr>,
        src: impl Into<IpAddr>,
        pkt: Vec<u8>,
        now: Instant,
    ) -> Vec<Vec<u8>> {
        let (next_hop, src) = (next_hop.into(), src.into());
        let valid = match self.neigh.get(&next_hop) {
            Some(Neigh::Valid { mac, updated }) if !self.expired(*updated, now) => Some(*mac),
            _ => None,
        };
        if let Some(mac) = valid {
            return vec![eth_frame(mac, self.mac, Self::ethertype(next_hop), &pkt)];
        }
        let limit = self.cfg.arp_queue.max(1);
        match self.neigh.get_mut(&next_hop) {
            Some(Neigh::Incomplete { queue, .. }) => {
                if queue.len() >= limit {
                    queue.pop_front();
                }
                queue.push_back(pkt);
                Vec::new()
            }
            _ => {
                self.neigh.insert(
                    next_hop,
                    Neigh::Incomplete {
                        queue: VecDeque::from([pkt]),
                        sent: 1,
                        next: now + self.cfg.arp_retrans,
                        src,
                    },
                );
                vec![self.solicit(src, next_hop)]
            }
        }
    }

    /// Builds and sends an ICMP packet from this host.
    fn originate_icmp(
        &mut self,
        src: Option<Ipv4Addr>,
        dst: Ipv4Addr,
        ttl: u8,
        df: bool,
        payload: &[u8],
        now: Instant,
    ) -> Vec<Vec<u8>> {
        let Some(Route {
            hop,
            src: route_src,
            ..
        }) = self.route(dst, now)
        else {
            self.dropped += 1;
            return Vec::new();
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let pkt = ipv4_packet(
            src.unwrap_or(route_src),
            dst,
            IP_ICMP,
            ttl,
            self.ip_id,
            df,
            payload,
        );
        self.send_ip(hop, route_src, pkt, now)
    }

    /// Sends an echo request (`ping -t ttl`) with identifier `id` and sequence `seq`; the
    /// outcome goes to `reply` when it is known. Returns the frames to send.
    /// For an IPv6 `dst`, an ICMPv6 echo request (`ping -6 -t hop_limit`).
    pub fn start_probe(
        &mut self,
        dst: impl Into<IpAddr>,
        ttl: u8,
        id: u16,
        seq: u16,
        reply: oneshot::Sender<ProbeOutcome>,
        now: Instant,
    ) -> Vec<Vec<u8>> {
        let dst = dst.into();
        self.probes
            .retain(|_, w| w.reply.as_ref().is_some_and(|r| !r.is_closed()));
        self.expire_redirects(now);
        let mine = match dst {
            IpAddr::V4(d) => self.is_mine(d),
            IpAddr::V6(d) => self.is_mine6(d),
        };
        if mine {
            // Answered by the host itself, over loopback.
            let _ = reply.send(ProbeOutcome::Reply(PingReply {
                ttl: self.cfg.ttl,
                from: dst,
                rtt: Duration::ZERO,
            }));
            return Vec::new();
        }
        let dst = match dst {
            IpAddr::V4(d) => d,
            IpAddr::V6(d) => return self.start_probe6(d, ttl, id, seq, reply, now),
        };
        let Some(Route { src, .. }) = self.route(dst, now) else {
            let _ = reply.send(ProbeOutcome::Timeout);
            return Vec::new();
        };
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        let icmp = packet::icmp(ICMP_ECHO_REQUEST, 0, rest, &ping_data(seq));
        self.probes.insert(
            (id, seq),
            Waiter {
                sent: now,
                src: src.into(),
                reply: Some(reply),
            },
        );
        self.originate_icmp(Some(src), dst, ttl, true, &icmp, now)
    }

    fn start_probe6(
        &mut self,
        dst: Ipv6Addr,
        hop_limit: u8,
        id: u16,
        seq: u16,
        reply: oneshot::Sender<ProbeOutcome>,
        now: Instant,
    ) -> Vec<Vec<u8>> {
        let Some(Route { src, .. }) = self.route6(dst, now) else {
            let _ = reply.send(ProbeOutcome::Timeout);
            return Vec::new();
        };
        let mut body = Vec::with_capacity(60);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend(ping_data(seq));
        self.probes.insert(
            (id, seq),
            Waiter {
                sent: now,
                src: src.into(),
                reply: Some(reply),
            },
        );
        self.originate6(Some(src), dst, hop_limit, icmp6::ECHO_REQUEST, &body, now)
    }

    fn finish_probe(&mut self, id: u16, seq: u16, outcome: impl FnOnce(&Waiter) -> ProbeOutcome) {
        if let Some(mut w) = self.probes.remove(&(id, seq)) {
            let o = outcome(&w);
            if let Some(tx) = w.reply.take() {
                let _ = tx.send(o);
            }
        }
    }

    /// A frame arrives on the host's port. Returns the frames the host sends in response.
    pub fn receive(&mut self, frame: &[u8], now: Instant) -> Vec<Vec<u8>> {
        self.received.push(Received {
            at: now,
            frame: frame.to_vec(),
        });
        self.expire_redirects(now);
        let Some(eth) = Ethernet::parse(frame) else {
            self.dropped += 1;
            return Vec::new();
        };
        // IPv6 multicast frames are for it if their group is (see `on_ipv6`).
        let multicast6 = eth.ethertype == ETH_IPV6 && eth.dst.0[..2] == [0x33, 0x33];
        if eth.dst != self.mac && eth.dst != MacAddr::BROADCAST && !multicast6 {
            self.dropped += 1;
            return Vec::new();
        }
        match eth.ethertype {
            ETH_ARP => match Arp::parse(eth.payload) {
                Some(a) if matches!(a.op, ARP_REQUEST | ARP_REPLY) => self.on_arp(&a, now),
                _ => {
                    self.dropped += 1;
                    Vec::new()
                }
            },
            ETH_IPV4 => self.on_ipv4(eth.payload, now),
            ETH_IPV6 => self.on_ipv6(&eth, now),
            // Linux has no RARP handler: a migrated VM's announcement is not for the host.
            ETH_RARP => {
                self.dropped += 1;
                Vec::new()
            }
            _ => {
                self.dropped += 1;
                Vec::new()
            }
        }
    }

    /// The entry for `ip` now says `mac`: queued packets go out.
    fn resolve(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, now: Instant) -> Vec<Vec<u8>> {
        let ip = ip.into();
        let old = self.neigh.insert(ip, Neigh::Valid { mac, updated: now });
        match old {
            Some(Neigh::Incomplete { queue, .. }) => queue
                .into_iter()
                .map(|p| eth_frame(mac, self.mac, Self::ethertype(ip), &p))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn on_arp(&mut self, a: &Arp, now: Instant) -> Vec<Vec<u8>> {
        if a.sha == self.mac || a.sha.is_multicast() {
            return Vec::new();
        }
        let for_me = a.op == ARP_REQUEST && self.is_mine(a.tpa);
        let mut out = Vec::new();
        if for_me {
            // Linux: the asker gets an entry (neigh_event_ns), then the reply.
            if !a.spa.is_unspecified() {
                out.extend(self.resolve(a.spa, a.sha, now));
            }
            let reply = Arp {
                op: ARP_REPLY,
                sha: self.mac,
                spa: a.tpa,
                tha: a.sha,
                tpa: a.spa,
            };
            out.push(reply.frame(a.sha, self.mac, ETH_ARP));
            return out;
        }
        // Anything else only updates an entry that exists (arp_accept=0).
        let gratuitous = a.spa == a.tpa;
        let update = match self.neigh.get(&IpAddr::V4(a.spa)) {
            None => false,
            Some(Neigh::Incomplete { .. }) => true,
            Some(Neigh::Valid { mac, updated }) => {
                *mac == a.sha
                    || gratuitous
                    || self.expired(*updated, now)
                    || now.saturating_duration_since(*updated) >= self.cfg.arp_locktime
            }
        };
        if update {
            out.extend(self.resolve(a.spa, a.sha, now));
        }
        out
    }

    fn on_ipv4(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        let Some(ip) = Ipv4::parse(bytes) else {
            self.dropped += 1;
            return Vec::new();
        };
        if checksum(ip.header) != 0 || !self.is_mine(ip.dst) {
            self.dropped += 1;
            return Vec::new();
        }
        if ip.protocol != IP_ICMP {
            return Vec::new();
        }
        if checksum(ip.payload) != 0 || ip.payload.len() < 8 {
            self.dropped += 1;
            return Vec::new();
        }
        let ty = ip.payload[0];
        let code = ip.payload[1];
        let id = u16::from_be_bytes([ip.payload[4], ip.payload[5]]);
        let seq = u16::from_be_bytes([ip.payload[6], ip.payload[7]]);
        match ty {
            ICMP_ECHO_REQUEST => {
                let rest: [u8; 4] = [ip.payload[4], ip.payload[5], ip.payload[6], ip.payload[7]];
                let icmp = packet::icmp(ICMP_ECHO_REPLY, 0, rest, &ip.payload[8..]);
                let ttl = self.cfg.ttl;
                self.originate_icmp(Some(ip.dst), ip.src, ttl, false, &icmp, now)
            }
            ICMP_ECHO_REPLY => {
                let (from, ttl) = (ip.src, ip.ttl);
                self.finish_probe(id, seq, |w| {
                    ProbeOutcome::Reply(PingReply {
                        ttl,
                        from: from.into(),
                        rtt: now.saturating_duration_since(w.sent),
                    })
                });
                Vec::new()
            }
            ICMP_REDIRECT => self.on_redirect(ip.src, ip.payload, now),
            ICMP_TIME_EXCEEDED | ICMP_DEST_UNREACHABLE => {
                // The quote: the offending datagram's header and first 8 bytes.
                let quote = &ip.payload[8..];
                let ihl = usize::from(quote.first().map_or(0, |b| b & 0x0f)) * 4;
                let inner = quote.get(ihl..ihl + 8);
                let proto = quote.get(9).copied();
                if let (Some(inner), Some(IP_ICMP), true) = (inner, proto, ihl >= 20) {
                    if inner[0] == ICMP_ECHO_REQUEST {
                        let id = u16::from_be_bytes([inner[4], inner[5]]);
                        let seq = u16::from_be_bytes([inner[6], inner[7]]);
                        let from = ip.src;
                        self.finish_probe(id, seq, |_| ProbeOutcome::Error {
                            from: from.into(),
                            icmp_type: ty,
                            code,
                        });
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The redirect's destination, new gateway and route source address if Linux would act
    /// on it (`__ip_do_redirect`, net/ipv4/route.c); `None` if it would ignore it.
    fn check_redirect(
        &self,
        from: Ipv4Addr,
        icmp: &[u8],
        now: Instant,
    ) -> Option<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> {
        // Net, host, and their TOS variants, alike (Linux looks at `code & 7`).
        if !self.cfg.accept_redirects || icmp.get(1)? & 7 > 3 {
            return None;
        }
        let new_gw = Ipv4Addr::from(<[u8; 4]>::try_from(icmp.get(4..8)?).ok()?);
        // The quote: the redirected datagram's header and 8 bytes (`icmp_socket_deliver`),
        // from this host, of a protocol whose error handler acts on redirects.
        let quote = icmp.get(8..)?;
        let ihl = usize::from(quote.first()? & 0x0f) * 4;
        if quote.len() < ihl.max(20) + 8 {
            return None;
        }
        if !matches!(quote[9], IP_ICMP | IP_TCP | IP_UDP) {
            return None;
        }
        let src = Ipv4Addr::from(<[u8; 4]>::try_from(&quote[12..16]).ok()?);
        let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&quote[16..20]).ok()?);
        if !src.is_unspecified() && !self.is_mine(src) {
            return None; // the output route lookup fails for a foreign source
        }
        // Only the current gateway of `dst` may redirect it; on-link destinations have none.
        let route = self.route(dst, now)?;
        if !route.via_gateway || route.hop != from || new_gw == from {
            return None;
        }
        // shared_media=1: the new gateway need not be on-link, only unicast.
        if !self.is_unicast(new_gw) {
            return None;
        }
        Some((dst, new_gw, route.src))
    }

    /// An ICMP redirect from `from`. If Linux would act on it: with a valid neighbour entry
    /// for the new gateway, the route exception "`dst` via new gateway" is installed (or
    /// renewed); without one, none is, and the new gateway is asked for (`neigh_event_send`),
    /// so only a later redirect, once it is resolved, installs the exception. Ignored
    /// redirects count as dropped.
    fn on_redirect(&mut self, from: Ipv4Addr, icmp: &[u8], now: Instant) -> Vec<Vec<u8>> {
        let Some((dst, gateway, src)) = self.check_redirect(from, icmp, now) else {
            self.dropped += 1;
            return Vec::new();
        };
        let (dst, gateway, src) = (IpAddr::V4(dst), IpAddr::V4(gateway), IpAddr::V4(src));
        match self.neigh.get(&gateway) {
            // NUD_VALID includes STALE: an entry past its lifetime still counts.
            Some(Neigh::Valid { .. }) => {
                let expires = now + self.cfg.redirect_timeout;
                self.redirects
                    .insert(dst, RouteException { gateway, expires });
                Vec::new()
            }
            // Already being resolved.
            Some(Neigh::Incomplete { .. }) => Vec::new(),
            None => {
                self.neigh.insert(
                    gateway,
                    Neigh::Incomplete {
                        queue: VecDeque::new(),
                        sent: 1,
                        next: now + self.cfg.arp_retrans,
                        src,
                    },
                );
                vec![self.solicit(src, gateway)]
            }
        }
    }

    // --- IPv6 -----------------------------------------------------------------------------

    fn is_mine6(&self, ip: Ipv6Addr) -> bool {
        ip == icmp6::link_local(self.mac) || self.addrs6.iter().any(|(a, _)| *a == ip)
    }

    /// The multicast groups it has joined: all-nodes and the solicited-node group of each of
    /// its addresses.
    fn listens6(&self, group: Ipv6Addr) -> bool {
        group == icmp6::ALL_NODES
            || group == icmp6::solicited_node(icmp6::link_local(self.mac))
            || self
                .addrs6
                .iter()
                .any(|(a, _)| icmp6::solicited_node(*a) == group)
    }

    /// The next hop for `dst` and the source address: link-local and on-link destinations
    /// directly, everything else via the default router, or via the first hop a redirect
    /// named (directly, when it named the destination itself).
    fn route6(&self, dst: Ipv6Addr, now: Instant) -> Option<Route<Ipv6Addr>> {
        let ll = icmp6::link_local(self.mac);
        if dst.is_unicast_link_local() {
            return Some(Route {
                hop: dst,
                src: ll,
                via_gateway: false,
            });
        }
        if let Some((a, _)) = self.addrs6.iter().find(|(a, l)| same_prefix6(*a, dst, *l)) {
            return Some(Route {
                hop: dst,
                src: *a,
                via_gateway: false,
            });
        }
        let router = self.router6?;
        let src = self.addrs6.first().map_or(ll, |a| a.0);
        let hop = match self.redirects.get(&IpAddr::V6(dst)) {
            Some(RouteException {
                gateway: IpAddr::V6(g),
                expires,
            }) if now < *expires => *g,
            _ => router,
        };
        Some(Route {
            hop,
            src,
            via_gateway: hop != dst,
        })
    }

    /// Builds and sends an ICMPv6 message from this host.
    fn originate6(
        &mut self,
        src: Option<Ipv6Addr>,
        dst: Ipv6Addr,
        hop_limit: u8,
        ty: u8,
        body: &[u8],
        now: Instant,
    ) -> Vec<Vec<u8>> {
        let Some(Route {
            hop,
            src: route_src,
            ..
        }) = self.route6(dst, now)
        else {
            self.dropped += 1;
            return Vec::new();
        };
        let src = src.unwrap_or(route_src);
        let m = icmp6::icmp6(src, dst, ty, 0, body);
        let pkt = icmp6::ipv6_packet(src, dst, IP_ICMPV6, hop_limit, &m);
        self.send_ip(hop, src, pkt, now)
    }

    fn on_ipv6(&mut self, eth: &Ethernet<'_>, now: Instant) -> Vec<Vec<u8>> {
        let Some(ip) = Ipv6::parse(eth.payload) else {
            self.dropped += 1;
            return Vec::new();
        };
        let for_me = if ip.dst.is_multicast() {
            self.listens6(ip.dst)
        } else {
            self.is_mine6(ip.dst)
        };
        if !for_me {
            self.dropped += 1;
            return Vec::new();
        }
        if ip.next != IP_ICMPV6 {
            return Vec::new();
        }
        let m = ip.payload;
        if m.len() < 8 || !icmp6::checksum_ok(&ip) {
            self.dropped += 1;
            return Vec::new();
        }
        let (ty, code) = (m[0], m[1]);
        match ty {
            icmp6::ECHO_REQUEST if !ip.dst.is_multicast() => {
                let ttl = self.cfg.ttl;
                self.originate6(Some(ip.dst), ip.src, ttl, icmp6::ECHO_REPLY, &m[4..], now)
            }
            icmp6::ECHO_REPLY => {
                let (from, ttl) = (ip.src, ip.hop_limit);
                self.finish_probe(be16(m, 4), be16(m, 6), |w| {
                    ProbeOutcome::Reply(PingReply {
                        ttl,
                        from: from.into(),
                        rtt: now.saturating_duration_since(w.sent),
                    })
                });
                Vec::new()
            }
            icmp6::TIME_EXCEEDED | icmp6::DEST_UNREACHABLE => {
                // The quote: as much of the offending packet as fits; an echo request of ours
                // is 40 bytes of header, then the ICMPv6 header with identifier and sequence.
                let q = &m[8..];
                if q.len() >= 48 && q[6] == IP_ICMPV6 && q[40] == icmp6::ECHO_REQUEST {
                    let from = ip.src;
                    self.finish_probe(be16(q, 44), be16(q, 46), |_| ProbeOutcome::Error {
                        from: from.into(),
                        icmp_type: ty,
                        code,
                    });
                }
                Vec::new()
            }
            icmp6::NEIGHBOR_SOLICITATION => self.on_ns(eth, &ip, now),
            icmp6::NEIGHBOR_ADVERTISEMENT => self.on_na(&ip, now),
            icmp6::ROUTER_ADVERTISEMENT => self.on_ra(&ip, now),
            icmp6::REDIRECT => self.on_redirect6(&ip, now),
            _ => Vec::new(),
        }
    }

    /// A solicitation for one of its addresses is answered (solicited, override; to the
    /// unsolicited all-nodes group for duplicate address detection), and its sender's
    /// link-layer address is taken into the cache (Linux's `ndisc_recv_ns`).
    fn on_ns(&mut self, eth: &Ethernet<'_>, ip: &Ipv6<'_>, now: Instant) -> Vec<Vec<u8>> {
        let Some(nd) = Nd::parse(ip) else {
            self.dropped += 1;
            return Vec::new();
        };
        if !self.is_mine6(nd.target) {
            return Vec::new();
        }
        let dad = ip.src.is_unspecified();
        let mut out = Vec::new();
        if let (false, Some(mac)) = (dad, nd.lla) {
            out.extend(self.resolve(ip.src, mac, now));
        }
        let (to, to_mac) = if dad {
            (icmp6::ALL_NODES, icmp6::multicast_mac(icmp6::ALL_NODES))
        } else {
            (ip.src, nd.lla.unwrap_or(eth.src))
        };
        out.push(icmp6::icmp6_frame(
            to_mac,
            self.mac,
            nd.target,
            to,
            icmp6::NEIGHBOR_ADVERTISEMENT,
            0,
            &icmp6::na_body(nd.target, self.mac, false, !dad),
        ));
        out
    }

    /// An advertisement updates an entry that exists (it never creates one, as Linux's
    /// `ndisc_recv_na`): an incomplete one with its address, a valid one when the address is
    /// the same or the override flag is set (the controller's unsolicited advertisements set
    /// it, as IPv6's gratuitous ARP).
    fn on_na(&mut self, ip: &Ipv6<'_>, now: Instant) -> Vec<Vec<u8>> {
        let Some(nd) = Nd::parse(ip) else {
            self.dropped += 1;
            return Vec::new();
        };
        let Some(mac) = nd.lla else {
            return Vec::new();
        };
        let over = nd.flags & 0b001 != 0;
        let update = match self.neigh.get(&IpAddr::V6(nd.target)) {
            None => false,
            Some(Neigh::Incomplete { .. }) => true,
            Some(Neigh::Valid { mac: old, .. }) => *old == mac || over,
        };
        if update {
            self.resolve(nd.target, mac, now)
        } else {
            Vec::new()
        }
    }

    /// A router advertisement (RFC 4861 6.1.2: from a link-local address, hop limit 255, code
    /// 0) makes its sender the default router while its router lifetime is not 0 (0 removes
    /// it), and its source link-layer address resolves the router. The emulated host takes
    /// no prefix from it (its addresses are configured, as with `autoconf=0`), and the
    /// lifetime does not run out (the controller repeats its advertisements).
    fn on_ra(&mut self, ip: &Ipv6<'_>, now: Instant) -> Vec<Vec<u8>> {
        let m = ip.payload;
        if !ip.src.is_unicast_link_local() || ip.hop_limit != 255 || m.len() < 16 || m[1] != 0 {
            self.dropped += 1;
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(mac) = icmp6::lla_option(&m[16..], icmp6::OPT_SOURCE_LLA) {
            out.extend(self.resolve(ip.src, mac, now));
        }
        if be16(m, 6) > 0 {
            self.router6 = Some(ip.src);
        } else if self.router6 == Some(ip.src) {
            self.router6 = None;
        }
        out
    }

    /// An ICMPv6 redirect, as Linux takes it (`ndisc_redirect_rcv`, `rt6_do_redirect`): from
    /// a link-local address with hop limit 255 and code 0, for a unicast destination whose
    /// current first hop is the sender, to a target that is link-local or the destination
    /// itself (on the link). The target link-layer option, if any, resolves the target; the
    /// route exception "destination via target" lasts [`HostConfig::redirect_timeout`].
    /// Ignored redirects count as dropped.
    fn on_redirect6(&mut self, ip: &Ipv6<'_>, now: Instant) -> Vec<Vec<u8>> {
        let m = ip.payload;
        let parsed = (m.len() >= 40).then(|| (ip6_at(m, 8), ip6_at(m, 24)));
        let (Some((Some(target), Some(dest))), true) = (parsed, self.cfg.accept_redirects) else {
            self.dropped += 1;
            return Vec::new();
        };
        let current = self.route6(dest, now);
        let acceptable = ip.src.is_unicast_link_local()
            && ip.hop_limit == 255
            && m[1] == 0
            && !dest.is_multicast()
            && (target.is_unicast_link_local() || target == dest)
            && current.is_some_and(|r| r.via_gateway && r.hop == ip.src);
        if !acceptable {
            self.dropped += 1;
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(mac) = icmp6::lla_option(&m[40..], icmp6::OPT_TARGET_LLA) {
            out.extend(self.resolve(target, mac, now));
        }
        let expires = now + self.cfg.redirect_timeout;
        self.redirects.insert(
            dest.into(),
            RouteException {
                gateway: target.into(),
                expires,
            },
        );
        out
    }

    /// When [`HostStack::on_timeout`] next has something to do (an ARP retransmission or
    /// give-up, or a route exception's expiry).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.neigh
            .values()
            .filter_map(|n| match n {
                Neigh::Incomplete { next, .. } => Some(*next),
                Neigh::Valid { .. } => None,
            })
            .chain(self.redirects.values().map(|r| r.expires))
            .min()
    }

    /// ARP retransmissions and give-ups due at `now`, and route exceptions that expire. Returns
    /// the frames to send.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.expire_redirects(now);
        let mut out = Vec::new();
        let mut failed = Vec::new();
        let due: Vec<IpAddr> = self
            .neigh
            .iter()
            .filter(|(_, n)| matches!(n, Neigh::Incomplete { next, .. } if *next <= now))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in due {
            let tries = self.cfg.arp_tries;
            let retrans = self.cfg.arp_retrans;
            if let Some(Neigh::Incomplete {
                sent, next, src, ..
            }) = self.neigh.get_mut(&ip)
            {
                if *sent < tries {
                    *sent += 1;
                    *next = now + retrans;
                    let src = *src;
                    out.push(self.solicit(src, ip));
                    continue;
                }
            }
            if let Some(Neigh::Incomplete { queue, .. }) = self.neigh.remove(&ip) {
                failed.extend(queue);
            }
        }
        // Local senders of what was queued learn "host unreachable" (IPv6: "address
        // unreachable"), what ping prints.
        for p in failed {
            let probe = if let Some(ip) = Ipv4::parse(&p) {
                (ip.protocol == IP_ICMP && ip.payload.first() == Some(&ICMP_ECHO_REQUEST))
                    .then_some((ip.payload, ICMP_DEST_UNREACHABLE, ICMP_HOST_UNREACHABLE))
            } else if let Some(ip) = Ipv6::parse(&p) {
                let echo = ip.next == IP_ICMPV6 && ip.payload.first() == Some(&icmp6::ECHO_REQUEST);
                echo.then_some((
                    ip.payload,
                    icmp6::DEST_UNREACHABLE,
                    icmp6::ADDRESS_UNREACHABLE,
                ))
            } else {
                None
            };
            if let Some((icmp, icmp_type, code)) = probe {
                if icmp.len() >= 8 {
                    let (id, seq) = (be16(icmp, 4), be16(icmp, 6));
                    self.finish_probe(id, seq, |w| ProbeOutcome::Error {
                        from: w.src,
                        icmp_type,
                        code,
                    });
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The fabric

/// How the fabric is built.
#[derive(Debug, Clone, Default)]
pub struct FabricConfig {
    pub host: HostConfig,
    /// Switches (by name) that have no meters, as a switch that implements none answers
    /// (see [`SwitchSpec::without_meters`]).
    pub without_meters: std::collections::BTreeSet<String>,
}

/// Where a host is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub name: String,
    pub mac: MacAddr,
    pub addrs: Vec<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 addresses (not the link-local one) and their prefix lengths.
    pub addrs6: Vec<(Ipv6Addr, u8)>,
    /// The IPv6 default router, once an advertisement named one.
    pub router6: Option<Ipv6Addr>,
    /// Where it is plugged in (or was last, when it is not).
    pub switch: String,
    pub port: u32,
    pub plugged: bool,
}

struct HostSlot {
    stack: HostStack,
    /// (switch index, port): where it is plugged in, or was last.
    at: (usize, u32),
    /// Whether its port exists (a host is unplugged between a hypervisor deleting its port
    /// and adding it elsewhere).
    plugged: bool,
}

struct Net {
    hosts: Vec<HostSlot>,
    /// (switch index, port) -> the hosts plugged in there (several behind one port act as
    /// on a hub: each hears what the others send).
    host_at: HashMap<(usize, u32), Vec<usize>>,
    next_probe_id: u16,
}

impl Net {
    /// Takes host `h` off its port; true when the port has nobody left (it goes away).
    fn unplug(&mut self, h: usize) -> bool {
        let slot = &mut self.hosts[h];
        if !slot.plugged {
            return false;
        }
        slot.plugged = false;
        let at = slot.at;
        let left = self.host_at.get_mut(&at).map(|v| {
            v.retain(|x| *x != h);
            v.is_empty()
        });
        if left == Some(true) {
            self.host_at.remove(&at);
        }
        left.unwrap_or(false)
    }

    /// Plugs host `h` in at `at`; true when the port is new (it appears).
    fn plug(&mut self, h: usize, at: (usize, u32)) -> bool {
        let slot = &mut self.hosts[h];
        slot.at = at;
        slot.plugged = true;
        let v = self.host_at.entry(at).or_default();
        let new = v.is_empty();
        if !v.contains(&h) {
            v.push(h);
        }
        new
    }
}

impl Net {
    fn next_timeout(&self) -> Option<Instant> {
        self.hosts
            .iter()
            .filter_map(|h| h.stack.poll_timeout())
            .min()
    }
}

struct Shared {
    net: Mutex<Net>,
    activity: Arc<watch::Sender<u64>>,
}

impl Shared {
    fn net(&self) -> MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }
}

enum FabricCmd {
    Probe {
        host: usize,
        dst: IpAddr,
        ttl: u8,
        reply: oneshot::Sender<ProbeOutcome>,
    },
    Raw {
        host: usize,
        frame: Vec<u8>,
    },
}

struct SwitchSlot {
    name: String,
    dpid: u64,
    sw: EmuSwitch,
}

/// A topology as emulated switches and hosts, connected to a controller.
pub struct EmuFabric {
    topology: Topology,
    switches: Vec<SwitchSlot>,
    switch_index: HashMap<String, usize>,
    host_index: HashMap<String, usize>,
    /// (switch index, port) -> (switch index, port)
    links: Arc<HashMap<(usize, u32), (usize, u32)>>,
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<FabricCmd>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EmuFabric {
    /// Builds `topology` with default settings; see [`EmuFabric::build_with`].
    pub async fn build(topology: &Topology, controller: SocketAddr) -> anyhow::Result<EmuFabric> {
        Self::build_with(topology, controller, FabricConfig::default()).await
    }

    /// Connects one emulated switch per topology switch to `controller` (with every link end
    /// and host port of the topology as its ports), wires the links and attaches the hosts.
    /// Returns once every switch has connected (not necessarily finished its handshake: see
    /// [`EmuFabric::wait_connected`]).
    pub async fn build_with(
        topology: &Topology,
        controller: SocketAddr,
        cfg: FabricConfig,
    ) -> anyhow::Result<EmuFabric> {
        let switch_index: HashMap<String, usize> = topology
            .switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let idx = |name: &str| {
            switch_index
                .get(name)
                .copied()
                .ok_or_else(|| anyhow!("unknown switch {name:?}"))
        };
        let mut ports: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); topology.switches.len()];
        let mut links = HashMap::new();
        for l in &topology.links {
            let a = (idx(&l.a.switch)?, l.a.port);
            let b = (idx(&l.b.switch)?, l.b.port);
            ports[a.0].insert(a.1);
            ports[b.0].insert(b.1);
            links.insert(a, b);
            links.insert(b, a);
        }
        let mut hosts = Vec::new();
        let mut host_at = HashMap::new();
        let mut host_index = HashMap::new();
        for h in &topology.hosts {
            let at = (idx(&h.at.switch)?, h.at.port);
            if links.contains_key(&at) {
                bail!("host {}: {} is a link port", h.name, h.at);
            }
            let mut addrs = Vec::new();
            let mut gateway = None;
            for ip in h.addresses() {
                let (prefix, gw) = topology
                    .subnets
                    .iter()
                    .find_map(|s| s.prefix.filter(|p| p.contains(ip)).zip(s.gateway))
                    .ok_or_else(|| anyhow!("host {}: {ip} is in no subnet", h.name))?;
                addrs.push((ip, prefix.len));
                gateway.get_or_insert(gw);
            }
            let mut addrs6 = Vec::new();
            for ip in h.addresses6() {
                let len = topology
                    .subnets
                    .iter()
                    .find_map(|s| s.prefix6.filter(|p| p.contains(ip)))
                    .ok_or_else(|| anyhow!("host {}: {ip} is in no subnet's prefix6", h.name))?
                    .len;
                addrs6.push((ip, len));
            }
            ports[at.0].insert(at.1);
            host_at.entry(at).or_insert_with(Vec::new).push(hosts.len());
            host_index.insert(h.name.clone(), hosts.len());
            hosts.push(HostSlot {
                stack: HostStack::new(&h.name, h.mac, addrs, gateway, cfg.host.clone())
                    .with_ipv6(addrs6),
                at,
                plugged: true,
            });
        }

        let activity = Arc::new(watch::channel(0u64).0);
        let (egress_tx, egress_rx) = mpsc::unbounded_channel();
        let mut switches = Vec::new();
        for (i, s) in topology.switches.iter().enumerate() {
            let mut spec = SwitchSpec::new(s.dpid.0);
            spec.meters = !cfg.without_meters.contains(&s.name);
            spec.ports = ports[i]
                .iter()
                .map(|&no| switch::port(s.dpid.0, no))
                .collect();
            let wire = Wire {
                egress: Some(egress_tx.clone()),
                activity: Some(Arc::clone(&activity)),
            };
            let sw = switch::connect_wired(EmuConfig::new(controller, spec), wire)
                .await
                .with_context(|| format!("connecting switch {} to {controller}", s.name))?;
            switches.push(SwitchSlot {
                name: s.name.clone(),
                dpid: s.dpid.0,
                sw,
            });
        }
        drop(egress_tx);
        let shared = Arc::new(Shared {
            net: Mutex::new(Net {
                hosts,
                host_at,
                next_probe_id: 0,
            }),
            activity,
        });
        let links = Arc::new(links);
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::clone(&shared),
            switches.iter().map(|s| s.sw.injector()).collect(),
            switches
                .iter()
                .enumerate()
                .map(|(i, s)| (s.dpid, i))
                .collect(),
            Arc::clone(&links),
            egress_rx,
            cmd_rx,
            cancel.clone(),
        ));
        Ok(EmuFabric {
            topology: topology.clone(),
            switches,
            switch_index,
            host_index,
            links,
            shared,
            cmd,
            cancel,
            task: Some(task),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn sw(&self, name: &str) -> anyhow::Result<usize> {
        self.switch_index
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("no switch {name:?} in the fabric"))
    }

    fn host_idx(&self, name: &str) -> usize {
        *self
            .host_index
            .get(name)
            .unwrap_or_else(|| panic!("no host {name:?} in the fabric"))
    }

    /// The emulated switch of a topology switch. Panics if there is none.
    pub fn switch(&self, name: &str) -> &EmuSwitch {
        let i = self.sw(name).unwrap_or_else(|e| panic!("{e}"));
        &self.switches[i].sw
    }

    /// Waits until every switch has finished its handshake with the controller (see
    /// [`crate::emu::switch`] on what "up" means); the error names those that did not.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut missing = Vec::new();
        for s in &self.switches {
            match tokio::time::timeout_at(deadline, s.sw.wait_until_up()).await {
                Ok(Ok(())) => {}
                Ok(Err(c)) => missing.push(format!("{} (closed: {})", s.name, c.reason)),
                Err(_) => missing.push(format!("{} (not up yet)", s.name)),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("switches not connected: {}", missing.join(", ")))
        }
    }

    /// Waits until `cond` holds, re-checking it whenever a switch or the fabric did some work
    /// (no polling on a timer). Returns whether it held before `timeout`.
    pub async fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.activity.subscribe();
        loop {
            rx.borrow_and_update();
            if cond(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return cond(self),
            }
        }
    }

    /// One echo request from `from` to `to` with the host's default TTL; the reply, if one
    /// came within `timeout`.
    pub async fn ping(
        &self,
        from: &str,
        to: impl Into<IpAddr>,
        timeout: Duration,
    ) -> Option<PingReply> {
        let ttl = self.shared.net().hosts[self.host_idx(from)].stack.cfg.ttl;
        self.probe(from, to, ttl, timeout).await.reply()
    }

    /// One echo request with TTL `ttl` (`ping -c 1 -t TTL -W TIMEOUT`): the reply, an ICMP
    /// error about it, or a timeout.
    pub async fn probe(
        &self,
        from: &str,
        to: impl Into<IpAddr>,
        ttl: u8,
        timeout: Duration,
    ) -> ProbeOutcome {
        let host = self.host_idx(from);
        let (reply, rx) = oneshot::channel();
        if self
            .cmd
            .send(FabricCmd::Probe {
                host,
                dst: to.into(),
                ttl,
                reply,
            })
            .is_err()
        {
            return ProbeOutcome::Timeout;
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(o)) => o,
            _ => ProbeOutcome::Timeout,
        }
    }

    /// Every frame delivered to the host's port so far, in order.
    pub fn received(&self, host: &str) -> Vec<Received> {
        let h = self.host_idx(host);
        self.shared.net().hosts[h].stack.received.clone()
    }

    /// The host's valid ARP entries now.
    pub fn arp_cache(&self, host: &str) -> BTreeMap<Ipv4Addr, MacAddr> {
        let h = self.host_idx(host);
        self.shared.net().hosts[h].stack.arp_cache(Instant::now())
    }

    /// The host's valid IPv6 neighbour entries now.
    pub fn neighbours6(&self, host: &str) -> BTreeMap<Ipv6Addr, MacAddr> {
        let h = self.host_idx(host);
        self.shared.net().hosts[h].stack.neighbours6(Instant::now())
    }

    /// What a host is and where it is now.
    pub fn host(&self, name: &str) -> HostInfo {
        let net = self.shared.net();
        let h = &net.hosts[self.host_idx(name)];
        HostInfo {
            name: name.to_string(),
            mac: h.stack.mac,
            addrs: h.stack.addrs.clone(),
            gateway: h.stack.gateway,
            addrs6: h.stack.addrs6.clone(),
            router6: h.stack.router6,
            switch: self.switches[h.at.0].name.clone(),
            port: h.at.1,
            plugged: h.plugged,
        }
    }

    /// Every host, in topology order.
    pub fn hosts(&self) -> Vec<HostInfo> {
        self.topology
            .hosts
            .iter()
            .map(|h| self.host(&h.name))
            .collect()
    }

    /// The host sends `frame` as it is (spoofed, malformed, anything).
    pub fn send_raw(&self, host: &str, frame: Vec<u8>) {
        let host = self.host_idx(host);
        let _ = self.cmd.send(FabricCmd::Raw { host, frame });
    }

    /// A switch's flow entries with counters, in lookup order.
    pub fn flows(&self, switch: &str) -> Vec<FlowStats> {
        self.switch(switch).flows()
    }

    /// A switch's flow entries as `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints them
    /// (one per line, without the header).
    pub fn dump_flows(&self, switch: &str) -> String {
        self.flows(switch)
            .iter()
            .map(|f| format!("{}\n", ofp13::text::flow_stats_line(f, false)))
            .collect()
    }

    /// Moves a host to `to_switch`'s port `to_port` (a new port there): its old port is deleted
    /// (PORT_STATUS DELETE to the old switch's controller connection), the new one added
    /// (PORT_STATUS ADD). The host keeps its MAC, addresses and ARP cache, like a live-migrated
    /// VM.
    pub fn move_host(&self, host: &str, to_switch: &str, to_port: u32) -> anyhow::Result<()> {
        let h = self.host_idx(host);
        let to = (self.sw(to_switch)?, to_port);
        self.check_port(to)?;
        {
            let net = self.shared.net();
            if net.hosts[h].plugged && net.hosts[h].at == to {
                return Ok(());
            }
        }
        self.unplug(host);
        self.plug(host, to_switch, to_port)
    }

    fn check_port(&self, at: (usize, u32)) -> anyhow::Result<()> {
        if at.1 == 0 || at.1 > ofp13::port::MAX {
            bail!("port {} is not a valid port number", at.1);
        }
        if self.links.contains_key(&at) {
            bail!("{}:{} is a link port", self.switches[at.0].name, at.1);
        }
        Ok(())
    }

    /// A link goes down (`up == false`, both ends `LINK_DOWN`, as a cable cut) or comes up
    /// again; `switch:port` names either end.
    pub fn set_link(&self, switch: &str, port: u32, up: bool) -> anyhow::Result<()> {
        self.link_to(switch, port, up, true)
    }

    /// [`EmuFabric::set_link`] without telling the controller (no PORT_STATUS from either
    /// end): what the switches do on their own before the controller reacts (local repair
    /// by their groups), held open for as long as a test looks.
    pub fn set_link_untold(&self, switch: &str, port: u32, up: bool) -> anyhow::Result<()> {
        self.link_to(switch, port, up, false)
    }

    fn link_to(&self, switch: &str, port: u32, up: bool, tell: bool) -> anyhow::Result<()> {
        let at = (self.sw(switch)?, port);
        let Some(&(peer, peer_port)) = self.links.get(&at) else {
            bail!("{switch}:{port} is not a link port");
        };
        for (i, p) in [(at.0, port), (peer, peer_port)] {
            let sw = &self.switches[i].sw;
            if tell {
                sw.set_link(p, up);
            } else {
                sw.set_link_untold(p, up);
            }
        }
        Ok(())
    }

    /// Takes a host off its port, as a hypervisor deletes a VM's port: the port goes away
    /// (PORT_STATUS DELETE) unless other hosts are behind it. The host sends and receives
    /// nothing until it is plugged in again.
    pub fn unplug(&self, host: &str) {
        let h = self.host_idx(host);
        let (gone, at) = {
            let mut net = self.shared.net();
            let at = net.hosts[h].at;
            (net.unplug(h), at)
        };
        if gone {
            self.switches[at.0].sw.delete_port(at.1);
        }
    }

    /// The host is at `switch:port` from now on, without any port appearing or going away
    /// (a test drives the ports itself, with [`EmuSwitch::add_port`] and
    /// [`EmuSwitch::delete_port`], to put a hypervisor's events in any order).
    pub fn reattach(&self, host: &str, switch: &str, port: u32) -> anyhow::Result<()> {
        let h = self.host_idx(host);
        let to = (self.sw(switch)?, port);
        self.check_port(to)?;
        let mut net = self.shared.net();
        net.unplug(h);
        net.plug(h, to);
        Ok(())
    }

    /// Plugs a host in at `switch:port` (the port appears, PORT_STATUS ADD, unless other
    /// hosts are behind it already).
    pub fn plug(&self, host: &str, switch: &str, port: u32) -> anyhow::Result<()> {
        let h = self.host_idx(host);
        let to = (self.sw(switch)?, port);
        self.check_port(to)?;
        let new = self.shared.net().plug(h, to);
        if new {
            let dpid = self.switches[to.0].dpid;
            self.switches[to.0].sw.add_port(switch::port(dpid, port));
        }
        Ok(())
    }

    /// Live-migrates a host to `to_switch`'s port `to_port`, as QEMU/KVM does: the port moves
    /// ([`EmuFabric::move_host`]), then the host broadcasts QEMU's RARP announcement
    /// ([`packet::rarp_announce`]) from its new port, the first of QEMU's rounds (it sends
    /// about five, at 0, 50, 200, 450 and 800 ms: [`EmuFabric::announce`] sends the others).
    /// The RARP enters the new switch after its PORT_STATUS ADD.
    pub fn migrate_host(&self, host: &str, to_switch: &str, to_port: u32) -> anyhow::Result<()> {
        self.move_host(host, to_switch, to_port)?;
        self.announce(host);
        Ok(())
    }

    /// The host broadcasts one more RARP announcement from where it is now (one of QEMU's
    /// repeated rounds after a migration).
    pub fn announce(&self, host: &str) {
        let h = self.host_idx(host);
        let frame = self.shared.net().hosts[h].stack.announce();
        let _ = self.cmd.send(FabricCmd::Raw { host: h, frame });
    }

    /// The host's route exceptions from ICMP redirects: destination -> gateway.
    pub fn redirects(&self, host: &str) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
        let h = self.host_idx(host);
        self.shared.net().hosts[h].stack.redirects()
    }

    /// Closes every switch connection, ends the fabric's task and waits for all of them.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        for s in &mut self.switches {
            s.sw.close().await;
        }
    }
}

impl Drop for EmuFabric {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
        // The switches' handles abort their tasks when dropped.
    }
}

/// The fabric's task: frames between switches and hosts, host timers, commands.
async fn run(
    shared: Arc<Shared>,
    injectors: Vec<Injector>,
    by_dpid: HashMap<u64, usize>,
    links: Arc<HashMap<(usize, u32), (usize, u32)>>,
    mut egress: mpsc::UnboundedReceiver<Egress>,
    mut cmds: mpsc::UnboundedReceiver<FabricCmd>,
    cancel: CancellationToken,
) {
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let wake = shared
            .net()
            .next_timeout()
            .map_or_else(far, tokio::time::Instant::from_std);
        // Frames a host sends: (switch, port, frame).
        let mut out: Vec<(usize, u32, Vec<u8>)> = Vec::new();
        tokio::select! {
            e = egress.recv() => {
                let Some(e) = e else { break };
                let Some(&sw) = by_dpid.get(&e.dpid) else { continue };
                if let Some(&(peer, port)) = links.get(&(sw, e.port)) {
                    injectors[peer].inject(port, e.frame);
                } else {
                    let mut net = shared.net();
                    let here = net.host_at.get(&(sw, e.port)).cloned().unwrap_or_default();
                    for h in here {
                        let slot = &mut net.hosts[h];
                        let at = slot.at;
                        for f in slot.stack.receive(&e.frame, Instant::now()) {
                            out.push((at.0, at.1, f));
                        }
                    }
                }
            }
            c = cmds.recv() => {
                let Some(c) = c else { break };
                let mut net = shared.net();
                match c {
                    FabricCmd::Probe { host, dst, ttl, reply } => {
                        net.next_probe_id = net.next_probe_id.wrapping_add(1);
                        let id = net.next_probe_id;
                        let slot = &mut net.hosts[host];
                        let at = slot.at;
                        let frames = slot.stack.start_probe(dst, ttl, id, 1, reply, Instant::now());
                        if slot.plugged {
                            out.extend(frames.into_iter().map(|f| (at.0, at.1, f)));
                        }
                    }
                    FabricCmd::Raw { host, frame } => {
                        let slot = &net.hosts[host];
                        if slot.plugged {
                            out.push((slot.at.0, slot.at.1, frame));
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                let mut net = shared.net();
                for slot in &mut net.hosts {
                    let at = slot.at;
                    let frames = slot.stack.on_timeout(now);
                    if slot.plugged {
                        out.extend(frames.into_iter().map(|f| (at.0, at.1, f)));
                    }
                }
            }
            _ = cancel.cancelled() => break,
        }
        // What a host sends goes to its switch, and to the other hosts behind its port (a
        // hub), whose answers go the same way.
        let mut queue: VecDeque<(usize, u32, Vec<u8>)> = out.into();
        let mut budget = 1024;
        while let Some((sw, port, f)) = queue.pop_front() {
            {
                let mut net = shared.net();
                let here = net.host_at.get(&(sw, port)).cloned().unwrap_or_default();
                if here.len() > 1 && budget > 0 {
                    let src = Ethernet::parse(&f).map(|e| e.src);
                    for h in here {
                        let slot = &mut net.hosts[h];
                        if Some(slot.stack.mac) == src {
                            continue;
                        }
                        budget -= 1;
                        for r in slot.stack.receive(&f, Instant::now()) {
                            queue.push_back((sw, port, r));
                        }
                    }
                }
            }
            injectors[sw].inject(port, f);
        }
        shared.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::GATEWAY_MAC;
    use crate::packet::{ICMP_REDIRECT_HOST, RARP_REQUEST};

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 2]);
    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 2);
    const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 3);
    const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 3]);
    const FAR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn host() -> HostStack {
        HostStack::new("b", MAC, vec![(ME, 24)], Some(GW), HostConfig::default())
    }

    fn arp(
        op: u16,
        sha: MacAddr,
        spa: Ipv4Addr,
        tha: MacAddr,
        tpa: Ipv4Addr,
        dst: MacAddr,
    ) -> Vec<u8> {
        Arp {
            op,
            sha,
            spa,
            tha,
            tpa,
        }
        .frame(dst, sha, ETH_ARP)
    }

    fn parse_arp(f: &[u8]) -> (MacAddr, Arp) {
        let e = Ethernet::parse(f).unwrap();
        assert_eq!(e.ethertype, ETH_ARP);
        (e.dst, Arp::parse(e.payload).unwrap())
    }

    fn parse_ip(f: &[u8]) -> (MacAddr, Ipv4Addr, Ipv4Addr, u8, Vec<u8>) {
        let e = Ethernet::parse(f).unwrap();
        assert_eq!(e.ethertype, ETH_IPV4);
        let ip = Ipv4::parse(e.payload).unwrap();
        assert_eq!(checksum(ip.header), 0);
        (e.dst, ip.src, ip.dst, ip.ttl, ip.payload.to_vec())
    }

    #[test]
    fn answers_arp_for_its_address_and_learns_the_asker() {
        let mut h = host();
        let now = Instant::now();
        let out = h.receive(
            &arp(
                ARP_REQUEST,
                GATEWAY_MAC,
                GW,
                MacAddr::ZERO,
                ME,
                MacAddr::BROADCAST,
            ),
            now,
        );
        assert_eq!(out.len(), 1);
        let (dst, a) = parse_arp(&out[0]);
        assert_eq!(
            (dst, a.op, a.sha, a.spa, a.tha, a.tpa),
            (GATEWAY_MAC, ARP_REPLY, MAC, ME, GATEWAY_MAC, GW)
        );
        assert_eq!(h.arp_cache(now).get(&GW), Some(&GATEWAY_MAC));
        // A request for someone else is not answered and teaches nothing new.
        let out = h.receive(
            &arp(
                ARP_REQUEST,
                PEER_MAC,
                PEER,
                MacAddr::ZERO,
                FAR,
                MacAddr::BROADCAST,
            ),
            now,
        );
        assert!(out.is_empty());
        assert!(!h.arp_cache(now).contains_key(&PEER));
        // Frames for another MAC are recorded but dropped.
        let out = h.receive(
            &arp(ARP_REQUEST, PEER_MAC, PEER, MacAddr::ZERO, ME, PEER_MAC),
            now,
        );
        assert!(out.is_empty());
        assert_eq!(h.received().len(), 3);
    }

    #[test]
    fn gratuitous_arp_updates_only_existing_entries_and_entries_expire() {
        let mut h = host();
        let t0 = Instant::now();
        let evil = MacAddr([2, 0xee, 0, 0, 0, 1]);
        // Unknown address: a gratuitous ARP or an unsolicited reply creates nothing.
        h.receive(
            &arp(
                ARP_REQUEST,
                evil,
                PEER,
                MacAddr::ZERO,
                PEER,
                MacAddr::BROADCAST,
            ),
            t0,
        );
        h.receive(&arp(ARP_REPLY, evil, PEER, MAC, ME, MAC), t0);
        assert!(h.arp_cache(t0).is_empty());
        // Known address: a gratuitous ARP replaces it at once; a plain reply only after locktime.
        h.receive(
            &arp(
                ARP_REQUEST,
                GATEWAY_MAC,
                GW,
                MacAddr::ZERO,
                ME,
                MacAddr::BROADCAST,
            ),
            t0,
        );
        h.receive(
            &arp(ARP_REPLY, evil, GW, MAC, ME, MAC),
            t0 + Duration::from_millis(100),
        );
        assert_eq!(h.arp_cache(t0).get(&GW), Some(&GATEWAY_MAC), "locktime");
        h.receive(
            &arp(ARP_REQUEST, evil, GW, MacAddr::ZERO, GW, MacAddr::BROADCAST),
            t0 + Duration::from_millis(200),
        );
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(h.arp_cache(t1).get(&GW), Some(&evil), "gratuitous");
        let later = t1 + HostConfig::default().arp_lifetime;
        assert!(h.arp_cache(later).is_empty(), "expired");
    }

    #[test]
    fn resolves_the_next_hop_queueing_packets_and_retries_then_gives_up() {
        let mut h = host();
        let t0 = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        // Off-subnet: ARP for the gateway, the echo request waits.
        let out = h.start_probe(FAR, 64, 7, 1, tx, t0);
        assert_eq!(out.len(), 1);
        let (dst, a) = parse_arp(&out[0]);
        assert_eq!(
            (dst, a.op, a.spa, a.tpa),
            (MacAddr::BROADCAST, ARP_REQUEST, ME, GW)
        );
        assert_eq!(h.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        // The answer releases it, addressed to the gateway's MAC, TTL 64.
        let out = h.receive(&arp(ARP_REPLY, GATEWAY_MAC, GW, MAC, ME, MAC), t0);
        assert_eq!(out.len(), 1);
        let (dst, src, to, ttl, icmp) = parse_ip(&out[0]);
        assert_eq!(
            (dst, src, to, ttl, icmp[0]),
            (GATEWAY_MAC, ME, FAR, 64, ICMP_ECHO_REQUEST)
        );
        assert_eq!(
            Ipv4::parse(&out[0][14..]).unwrap().payload.len(),
            64,
            "like ping: 56 data bytes"
        );
        // The echo reply resolves the probe.
        let reply = packet::icmp(ICMP_ECHO_REPLY, 0, [0, 7, 0, 1], &icmp[8..]);
        let pkt = ipv4_packet(FAR, ME, IP_ICMP, 62, 1, false, &reply);
        h.receive(
            &eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &pkt),
            t0 + Duration::from_millis(3),
        );
        match rx.try_recv().unwrap() {
            ProbeOutcome::Reply(r) => {
                assert_eq!(
                    (r.from, r.ttl, r.rtt),
                    (FAR.into(), 62, Duration::from_millis(3))
                )
            }
            o => panic!("{o:?}"),
        }
        // On-link, nobody answers: 3 requests one second apart, then unreachable.
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(h.start_probe(PEER, 64, 8, 1, tx, t0).len(), 1);
        let mut requests = 1;
        let mut t = t0;
        while let Some(next) = h.poll_timeout() {
            t = next;
            requests += h.on_timeout(t).len();
        }
        assert_eq!(requests, 3);
        assert_eq!(t, t0 + Duration::from_secs(3));
        assert_eq!(
            rx.try_recv().unwrap(),
            ProbeOutcome::Error {
                from: ME.into(),
                icmp_type: ICMP_DEST_UNREACHABLE,
                code: ICMP_HOST_UNREACHABLE
            }
        );
    }

    #[test]
    fn answers_echo_and_matches_time_exceeded_to_its_probe() {
        let mut h = host();
        let t0 = Instant::now();
        h.receive(
            &arp(
                ARP_REQUEST,
                GATEWAY_MAC,
                GW,
                MacAddr::ZERO,
                ME,
                MacAddr::BROADCAST,
            ),
            t0,
        );
        // An echo request from afar is answered via the gateway, from the pinged address.
        let req = packet::icmp(ICMP_ECHO_REQUEST, 0, [0, 9, 0, 4], b"abcdefgh");
        let pkt = ipv4_packet(FAR, ME, IP_ICMP, 61, 1, true, &req);
        let out = h.receive(&eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &pkt), t0);
        let (dst, src, to, ttl, icmp) = parse_ip(&out[0]);
        assert_eq!((dst, src, to, ttl), (GATEWAY_MAC, ME, FAR, 64));
        assert_eq!(
            (icmp[0], &icmp[4..8], &icmp[8..]),
            (ICMP_ECHO_REPLY, &[0, 9, 0, 4][..], &b"abcdefgh"[..])
        );
        assert_eq!(checksum(&icmp), 0);
        // A corrupted header checksum is dropped.
        let mut bad = pkt.clone();
        bad[10] ^= 1;
        assert!(h
            .receive(&eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &bad), t0)
            .is_empty());
        // TTL 1 probe: the gateway's time exceeded, quoting it, ends the probe.
        let (tx, mut rx) = oneshot::channel();
        let out = h.start_probe(FAR, 1, 11, 1, tx, t0);
        let sent = Ipv4::parse(&out[0][14..]).unwrap();
        assert_eq!(sent.ttl, 1);
        let te = packet::icmp(ICMP_TIME_EXCEEDED, 0, [0; 4], &packet::icmp_quote(&sent));
        let pkt = ipv4_packet(GW, ME, IP_ICMP, 64, 1, false, &te);
        h.receive(&eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &pkt), t0);
        assert_eq!(
            rx.try_recv().unwrap(),
            ProbeOutcome::Error {
                from: GW.into(),
                icmp_type: ICMP_TIME_EXCEEDED,
                code: 0
            }
        );
    }
    // --- ICMP redirects, RARP ------------------------------------------------------------------

    /// The gateway of the neighbouring subnet: off-link for the host (shared_media=1).
    const G: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 1);
    const G_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 0xfe]);
    const SEC: Duration = Duration::from_secs(1);

    /// `ip` asks the host for its address: the host answers and holds an entry for `ip`.
    fn learn(h: &mut HostStack, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        let req = arp(ARP_REQUEST, mac, ip, MacAddr::ZERO, ME, MacAddr::BROADCAST);
        assert_eq!(h.receive(&req, now).len(), 1);
    }

    /// Sends an echo request to `dst` whose next hop is resolved; returns its frame.
    fn probe(h: &mut HostStack, dst: Ipv4Addr, id: u16, now: Instant) -> Vec<u8> {
        let (tx, _rx) = oneshot::channel();
        let out = h.start_probe(dst, 64, id, 1, tx, now);
        assert_eq!(out.len(), 1);
        out.into_iter().next().unwrap()
    }

    /// The IPv4 packet of a frame.
    fn ip_of(frame: &[u8]) -> Vec<u8> {
        let e = Ethernet::parse(frame).unwrap();
        let ip = Ipv4::parse(e.payload).unwrap();
        [ip.header, ip.payload].concat()
    }

    /// An ICMP echo request from `src` to `dst`, as the quoted datagram of a redirect.
    fn datagram(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Vec<u8> {
        let echo = packet::icmp(ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], &ping_data(1));
        ipv4_packet(src, dst, protocol, 64, 1, true, &echo)
    }

    /// A redirect (type 5, `code`) from `from` to the host: `new_gw` for the quoted datagram.
    fn redirect(from: Ipv4Addr, code: u8, new_gw: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        let q = packet::icmp_quote(&Ipv4::parse(quoted).unwrap());
        let icmp = packet::icmp(ICMP_REDIRECT, code, new_gw.octets(), &q);
        let pkt = ipv4_packet(from, ME, IP_ICMP, 64, 9, false, &icmp);
        eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &pkt)
    }

    #[test]
    fn redirect_to_an_unresolved_gateway_asks_for_it_and_a_second_redirect_installs_it() {
        let t0 = Instant::now();
        let mut h = host();
        learn(&mut h, GW, GATEWAY_MAC, t0);
        let sent = probe(&mut h, FAR, 1, t0);
        assert_eq!(parse_ip(&sent).0, GATEWAY_MAC);
        let sent = ip_of(&sent);
        let dropped = h.dropped();

        // G has no entry: Linux installs nothing, it asks for G (from D's route's source).
        let out = h.receive(&redirect(GW, ICMP_REDIRECT_HOST, G, &sent), t0);
        assert_eq!(out.len(), 1);
        let (dst, a) = parse_arp(&out[0]);
        assert_eq!(
            (dst, a.op, a.sha, a.spa, a.tpa),
            (MacAddr::BROADCAST, ARP_REQUEST, MAC, ME, G)
        );
        assert!(h.redirects().is_empty());
        assert_eq!(parse_ip(&probe(&mut h, FAR, 2, t0)).0, GATEWAY_MAC);
        // The same redirect while G is being resolved asks for nothing more.
        assert!(h
            .receive(&redirect(GW, ICMP_REDIRECT_HOST, G, &sent), t0)
            .is_empty());
        assert!(h.redirects().is_empty());

        // G answers (nothing was queued for it); the next redirect installs the exception.
        let t1 = t0 + Duration::from_millis(5);
        assert!(h
            .receive(&arp(ARP_REPLY, G_MAC, G, MAC, ME, MAC), t1)
            .is_empty());
        assert_eq!(h.arp_cache(t1).get(&G), Some(&G_MAC));
        assert!(h
            .receive(&redirect(GW, ICMP_REDIRECT_HOST, G, &sent), t1)
            .is_empty());
        assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]));
        assert_eq!(h.dropped(), dropped, "none of them was ignored");

        // FAR now goes to G's MAC, still from ME; other destinations via the gateway.
        let (dst, src, to, ..) = parse_ip(&probe(&mut h, FAR, 3, t1));
        assert_eq!((dst, src, to), (G_MAC, ME, FAR));
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(parse_ip(&probe(&mut h, other, 4, t1)).0, GATEWAY_MAC);

        // FAR's gateway is G now: the old gateway's redirects are ignored, G's are not.
        let elsewhere = Ipv4Addr::new(192, 168, 10, 9);
        assert!(h
            .receive(&redirect(GW, ICMP_REDIRECT_HOST, elsewhere, &sent), t1)
            .is_empty());
        assert_eq!(h.dropped(), dropped + 1);
        assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]));
        let t2 = t1 + 10 * SEC;
        assert!(h
            .receive(&redirect(G, ICMP_REDIRECT_HOST, GW, &sent), t2)
            .is_empty());
        assert_eq!(h.redirects(), BTreeMap::from([(FAR, GW)]));
        assert!(h
            .receive(&redirect(GW, ICMP_REDIRECT_HOST, G, &sent), t2)
            .is_empty());
        assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]));

        // The exception lasts ip_rt_gc_timeout (300 s) from the last redirect.
        let expires = t2 + HostConfig::default().redirect_timeout;
        assert_eq!(h.poll_timeout(), Some(expires));
        assert_eq!(h.route(FAR, expires - SEC).unwrap().hop, G);
        assert!(h.on_timeout(expires - SEC).is_empty());
        assert_eq!(h.redirects().len(), 1);
        assert_eq!(h.route(FAR, expires).unwrap().hop, GW);
        assert!(h.on_timeout(expires).is_empty());
        assert!(h.redirects().is_empty());
        assert_eq!(h.poll_timeout(), None);
    }

    #[test]
    fn redirect_codes_0_to_3_alike_and_a_stale_entry_counts_as_valid() {
        let t0 = Instant::now();
        for code in 0..=3 {
            let mut h = host();
            learn(&mut h, GW, GATEWAY_MAC, t0);
            learn(&mut h, G, G_MAC, t0);
            // A minute later both entries are past their lifetime (Linux: STALE, still
            // NUD_VALID).
            let t = t0 + 60 * SEC;
            assert!(h.arp_cache(t).is_empty());
            let q = datagram(ME, FAR, IP_ICMP);
            assert!(h.receive(&redirect(GW, code, G, &q), t).is_empty());
            assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]), "code {code}");
            let r = h.route(FAR, t).unwrap();
            assert_eq!((r.hop, r.src, r.via_gateway), (G, ME, true));
        }
        // UDP and TCP datagrams are redirected too.
        for proto in [IP_UDP, IP_TCP] {
            let mut h = host();
            learn(&mut h, G, G_MAC, t0);
            let q = datagram(ME, FAR, proto);
            h.receive(&redirect(GW, ICMP_REDIRECT_HOST, G, &q), t0);
            assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]));
        }
    }

    #[test]
    fn redirects_linux_ignores() {
        let t0 = Instant::now();
        // An unresolved, acceptable new gateway: accepting would send an ARP request for it.
        let g2 = Ipv4Addr::new(192, 168, 11, 77);
        let far = datagram(ME, FAR, IP_ICMP);
        let truncated = {
            let q = packet::icmp_quote(&Ipv4::parse(&far).unwrap());
            let icmp = packet::icmp(ICMP_REDIRECT, 1, g2.octets(), &q[..24]);
            let pkt = ipv4_packet(GW, ME, IP_ICMP, 64, 9, false, &icmp);
            eth_frame(MAC, GATEWAY_MAC, ETH_IPV4, &pkt)
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not from D's gateway", redirect(PEER, 1, g2, &far)),
            ("code 4", redirect(GW, 4, g2, &far)),
            ("new gateway = old", redirect(GW, 1, GW, &far)),
            ("0.0.0.0", redirect(GW, 1, Ipv4Addr::UNSPECIFIED, &far)),
            ("0/8", redirect(GW, 1, Ipv4Addr::new(0, 1, 2, 3), &far)),
            (
                "multicast",
                redirect(GW, 1, Ipv4Addr::new(224, 0, 0, 5), &far),
            ),
            ("broadcast", redirect(GW, 1, Ipv4Addr::BROADCAST, &far)),
            ("loopback", redirect(GW, 1, Ipv4Addr::LOCALHOST, &far)),
            ("its own address", redirect(GW, 1, ME, &far)),
            (
                "subnet broadcast",
                redirect(GW, 1, Ipv4Addr::new(192, 168, 10, 255), &far),
            ),
            (
                "subnet address",
                redirect(GW, 1, Ipv4Addr::new(192, 168, 10, 0), &far),
            ),
            (
                "on-link destination (no gateway)",
                redirect(GW, 1, g2, &datagram(ME, PEER, IP_ICMP)),
            ),
            (
                "on-link destination, from itself",
                redirect(PEER, 1, g2, &datagram(ME, PEER, IP_ICMP)),
            ),
            (
                "quoted source not its own",
                redirect(GW, 1, g2, &datagram(PEER, FAR, IP_ICMP)),
            ),
            (
                "quoted protocol without a handler (GRE)",
                redirect(GW, 1, g2, &datagram(ME, FAR, 47)),
            ),
            ("quote without its 8 bytes", truncated),
        ];
        for (why, frame) in cases {
            let mut h = host();
            learn(&mut h, GW, GATEWAY_MAC, t0);
            let dropped = h.dropped();
            assert!(h.receive(&frame, t0).is_empty(), "{why}");
            assert!(h.redirects().is_empty(), "{why}");
            assert_eq!(h.dropped(), dropped + 1, "{why}");
            assert_eq!(h.poll_timeout(), None, "{why}: nothing asked for");
        }
        // accept_redirects=0
        let cfg = HostConfig {
            accept_redirects: false,
            ..HostConfig::default()
        };
        let mut h = HostStack::new("b", MAC, vec![(ME, 24)], Some(GW), cfg);
        learn(&mut h, G, G_MAC, t0);
        assert!(h.receive(&redirect(GW, 1, G, &far), t0).is_empty());
        assert!(h.redirects().is_empty());
    }

    #[test]
    fn redirect_arp_uses_the_source_address_of_the_redirected_route() {
        let t0 = Instant::now();
        // The first address is elsewhere; D's route (via GW) has source ME.
        let other = Ipv4Addr::new(172, 16, 0, 5);
        let mut h = HostStack::new(
            "b",
            MAC,
            vec![(other, 16), (ME, 24)],
            Some(GW),
            HostConfig::default(),
        );
        learn(&mut h, GW, GATEWAY_MAC, t0);
        let q = datagram(ME, FAR, IP_ICMP);
        let mut requests = h.receive(&redirect(GW, 1, G, &q), t0);
        let mut t = t0;
        while let Some(next) = h.poll_timeout() {
            t = next;
            requests.extend(h.on_timeout(t));
        }
        assert_eq!(requests.len(), 3, "arp_tries");
        assert_eq!(t, t0 + 3 * SEC);
        for r in &requests {
            let (_, a) = parse_arp(r);
            assert_eq!((a.spa, a.tpa), (ME, G));
        }
        // G never answered: no exception; a new redirect asks again.
        assert!(h.redirects().is_empty());
        assert_eq!(h.receive(&redirect(GW, 1, G, &q), t).len(), 1);
    }

    #[test]
    fn ignores_rarp_and_answers_arp_only_for_its_own_addresses() {
        let t0 = Instant::now();
        let mut h = host();
        learn(&mut h, GW, GATEWAY_MAC, t0);
        learn(&mut h, G, G_MAC, t0);
        h.receive(&redirect(GW, 1, G, &datagram(ME, FAR, IP_ICMP)), t0);
        assert_eq!(h.redirects(), BTreeMap::from([(FAR, G)]));
        assert_eq!(h.announce(), packet::rarp_announce(MAC));
        let (cache, seen, dropped) = (h.arp_cache(t0), h.received().len(), h.dropped());

        // QEMU's announcement of another VM, of itself, RARP opcodes in ARP frames: ignored.
        let rarp_reply = Arp {
            op: 4,
            sha: PEER_MAC,
            spa: PEER,
            tha: MAC,
            tpa: ME,
        };
        let frames = [
            packet::rarp_announce(PEER_MAC),
            h.announce(),
            rarp_reply.frame(MAC, PEER_MAC, ETH_RARP),
            rarp_reply.frame(MAC, PEER_MAC, ETH_ARP),
            arp(
                RARP_REQUEST,
                PEER_MAC,
                PEER,
                PEER_MAC,
                ME,
                MacAddr::BROADCAST,
            ),
        ];
        for f in &frames {
            assert!(h.receive(f, t0).is_empty());
        }
        assert_eq!(h.dropped(), dropped + frames.len() as u64);
        assert_eq!(h.received().len(), seen + frames.len(), "still recorded");
        assert_eq!(h.arp_cache(t0), cache);

        // ARP requests for any address but its own go unanswered (gateways, the redirect's
        // destination and new gateway, neighbours, broadcast, nothing).
        for target in [
            GW,
            G,
            FAR,
            PEER,
            Ipv4Addr::new(192, 168, 10, 255),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
        ] {
            let req = arp(
                ARP_REQUEST,
                PEER_MAC,
                PEER,
                MacAddr::ZERO,
                target,
                MacAddr::BROADCAST,
            );
            assert!(h.receive(&req, t0).is_empty(), "{target}");
            let unicast = arp(ARP_REQUEST, PEER_MAC, PEER, MAC, target, MAC);
            assert!(h.receive(&unicast, t0).is_empty(), "{target}");
        }
        assert!(!h.arp_cache(t0).contains_key(&PEER));
        // Its own address is answered.
        let req = arp(
            ARP_REQUEST,
            PEER_MAC,
            PEER,
            MacAddr::ZERO,
            ME,
            MacAddr::BROADCAST,
        );
        assert_eq!(parse_arp(&h.receive(&req, t0)[0]).1.spa, ME);
    }

    /// Records what the switches send the controller; installs a table-miss entry that sends
    /// to the controller and floods.
    struct Recorder(watch::Sender<Vec<(u64, ofp13::Message)>>);

    impl crate::switch::runtime::App for Recorder {
        fn switch_up(&self, _sw: &crate::switch::runtime::SwitchHandle) -> Vec<ofp13::Body> {
            let actions = vec![
                ofp13::Action::output(ofp13::port::CONTROLLER),
                ofp13::Action::output(ofp13::port::FLOOD),
            ];
            vec![ofp13::Body::FlowMod(ofp13::FlowMod {
                priority: 0,
                instructions: vec![ofp13::Instruction::ApplyActions { actions }],
                ..ofp13::FlowMod::default()
            })]
        }
        fn message(
            &self,
            sw: &crate::switch::runtime::SwitchHandle,
            msg: &ofp13::Message,
            _read: std::time::Instant,
            _out: &mut crate::switch::runtime::Answers,
        ) {
            self.0.send_modify(|v| v.push((sw.dpid().0, msg.clone())));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_host_announces_from_the_new_port_and_repeats_are_harmless() {
        use ofp13::Body;
        const WAIT: Duration = Duration::from_secs(10);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join("paper-testbed.toml");
        let t = Topology::load(&path).unwrap();
        let (tx, mut seen) = watch::channel(Vec::new());
        let ctl = crate::switch::runtime::Controller::new(
            t.clone(),
            crate::switch::runtime::RuntimeConfig::default(),
            Arc::new(Recorder(tx)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Arc::clone(&ctl);
        let serve = tokio::spawn(async move { c.serve(listener, None).await });
        let f = EmuFabric::build(&t, addr).await.unwrap();
        f.wait_connected(WAIT).await.unwrap();
        let switches = ["r1", "r2", "r3"];
        assert!(
            f.wait_until(WAIT, |f| switches.iter().all(|s| f.flows(s).len() == 1))
                .await
        );

        let vm = f.host("vm");
        assert_eq!((vm.switch.as_str(), vm.port), ("r3", 3));
        assert!(f.migrate_host("vm", "r2", 1).is_err(), "a link port");
        f.migrate_host("vm", "r2", 5).unwrap();
        let moved = f.host("vm");
        assert_eq!((moved.switch.as_str(), moved.port), ("r2", 5));
        // QEMU's four further rounds.
        for _ in 0..4 {
            f.announce("vm");
        }
        let rarp = packet::rarp_announce(vm.mac);

        // Flooded over the tree: every other host gets all five, ignores them, sends nothing.
        let others = ["e", "b", "d", "vm2"];
        assert!(
            f.wait_until(WAIT, |f| others.iter().all(|h| f.received(h).len() >= 5))
                .await
        );
        // Each switch hands each copy to the controller: r2 from the VM's new port, r1 and r3
        // from their link ports.
        let packet_ins = |v: &[(u64, ofp13::Message)], dpid: u64| -> Vec<(u32, Vec<u8>)> {
            v.iter()
                .filter(|(d, _)| *d == dpid)
                .filter_map(|(_, m)| match &m.body {
                    Body::PacketIn(p) => Some((p.in_port().unwrap_or(0), p.data.to_vec())),
                    _ => None,
                })
                .collect()
        };
        let all = tokio::time::timeout(
            WAIT,
            seen.wait_for(|v| (1..=3).all(|d| packet_ins(v, d).len() >= 5)),
        )
        .await
        .expect("packet-ins")
        .unwrap()
        .clone();
        for (dpid, in_port) in [(1, 1), (2, 5), (3, 1)] {
            assert_eq!(
                packet_ins(&all, dpid),
                vec![(in_port, rarp.clone()); 5],
                "dpid {dpid}"
            );
        }
        // The old port went away before, the new one came before the first RARP.
        let port_status = |dpid: u64, port_no: u32, reason: u8| {
            all.iter().position(|(d, m)| {
                *d == dpid
                    && matches!(&m.body, Body::PortStatus(p)
                        if p.desc.port_no == port_no && p.reason == reason)
            })
        };
        let first_in = all
            .iter()
            .position(|(d, m)| *d == 2 && matches!(m.body, Body::PacketIn(_)));
        assert!(port_status(3, 3, ofp13::OFPPR_DELETE).is_some());
        assert!(port_status(2, 5, ofp13::OFPPR_ADD).unwrap() < first_in.unwrap());

        for h in others {
            let r = f.received(h);
            assert_eq!(r.len(), 5, "{h}");
            assert!(r.iter().all(|r| r.frame == rarp), "{h}");
            let dropped = f.shared.net().hosts[f.host_idx(h)].stack.dropped();
            assert_eq!(dropped, 5, "{h}");
            assert!(f.arp_cache(h).is_empty(), "{h}");
        }
        assert!(
            f.received("vm").is_empty(),
            "flooding skips the ingress port"
        );
        assert!(f.redirects("vm").is_empty());

        f.shutdown().await;
        ctl.shutdown(Duration::from_secs(5)).await;
        let _ = serve.await;
    }
}

#[cfg(test)]
mod tests6 {
    use super::*;
    use crate::fabric::plan::{GATEWAY_LL, GATEWAY_MAC};

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 2]);
    const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 3]);
    const OTHER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x10, 4]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn me() -> Ipv6Addr {
        a("fd00:0:0:10::2")
    }
    fn peer() -> Ipv6Addr {
        a("fd00:0:0:10::3")
    }
    fn far() -> Ipv6Addr {
        a("fd00:0:0:a::2")
    }

    fn host() -> HostStack {
        HostStack::new("b", MAC, Vec::new(), None, HostConfig::default())
            .with_ipv6(vec![(me(), 64)])
    }

    /// (Ethernet destination, IPv6 source, destination, hop limit, ICMPv6 message), with the
    /// checksum checked.
    fn parse(f: &[u8]) -> (MacAddr, Ipv6Addr, Ipv6Addr, u8, Vec<u8>) {
        let e = Ethernet::parse(f).unwrap();
        assert_eq!(e.ethertype, ETH_IPV6);
        let ip = Ipv6::parse(e.payload).unwrap();
        assert_eq!(ip.next, IP_ICMPV6);
        assert!(icmp6::checksum_ok(&ip), "ICMPv6 checksum");
        (e.dst, ip.src, ip.dst, ip.hop_limit, ip.payload.to_vec())
    }

    fn na(from: MacAddr, target: Ipv6Addr, to: Ipv6Addr, solicited: bool, over: bool) -> Vec<u8> {
        let mut body = icmp6::na_body(target, from, false, solicited);
        if !over {
            body[0] &= !0x20;
        }
        icmp6::icmp6_frame(
            MAC,
            from,
            target,
            to,
            icmp6::NEIGHBOR_ADVERTISEMENT,
            0,
            &body,
        )
    }

    fn ra(src: Ipv6Addr, lifetime: u16) -> Vec<u8> {
        let body = icmp6::ra_body(&icmp6::Advert {
            prefix: a("fd00:0:0:10::"),
            prefix_len: 64,
            router_lifetime: lifetime,
            valid_s: 86400,
            preferred_s: 14400,
            mtu: None,
            mac: GATEWAY_MAC,
        });
        let all = icmp6::ALL_NODES;
        icmp6::icmp6_frame(
            icmp6::multicast_mac(all),
            GATEWAY_MAC,
            src,
            all,
            icmp6::ROUTER_ADVERTISEMENT,
            0,
            &body,
        )
    }

    fn echo_reply(from: Ipv6Addr, id: u16, seq: u16, hop_limit: u8) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&seq.to_be_bytes());
        let m = icmp6::icmp6(from, me(), icmp6::ECHO_REPLY, 0, &body);
        icmp6::ipv6_frame(MAC, PEER_MAC, from, me(), IP_ICMPV6, hop_limit, &m)
    }

    #[test]
    fn solicits_an_on_link_neighbour_then_sends_what_waited_and_matches_the_reply() {
        let mut h = host();
        let t0 = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        let out = h.start_probe(peer(), 64, 7, 1, tx, t0);
        assert_eq!(out.len(), 1);
        let (dst, src, to, hop, m) = parse(&out[0]);
        let group = icmp6::solicited_node(peer());
        assert_eq!(
            (dst, src, to, hop, m[0]),
            (icmp6::multicast_mac(group), me(), group, 255, 135)
        );
        assert_eq!(&m[8..24], &peer().octets());
        assert_eq!(
            icmp6::lla_option(&m[24..], icmp6::OPT_SOURCE_LLA),
            Some(MAC)
        );
        // The answer releases the queued echo request, straight to the peer's MAC.
        let out = h.receive(&na(PEER_MAC, peer(), me(), true, true), t0);
        assert_eq!(out.len(), 1);
        let (dst, src, to, hop, m) = parse(&out[0]);
        assert_eq!((dst, src, to, hop, m[0]), (PEER_MAC, me(), peer(), 64, 128));
        assert_eq!((be16(&m, 4), be16(&m, 6)), (7, 1));
        h.receive(&echo_reply(peer(), 7, 1, 64), t0 + Duration::from_millis(2));
        let r = rx.try_recv().unwrap().reply().unwrap();
        assert_eq!((r.from, r.ttl), (IpAddr::from(peer()), 64));
        assert_eq!(h.neighbours6(t0).get(&peer()), Some(&PEER_MAC));
    }

    #[test]
    fn answers_solicitations_for_its_addresses_only_and_learns_the_asker() {
        let mut h = host();
        let t0 = Instant::now();
        let ns = |target: Ipv6Addr, src: Ipv6Addr| {
            let body = if src.is_unspecified() {
                let mut b = vec![0; 4];
                b.extend_from_slice(&target.octets());
                b
            } else {
                icmp6::ns_body(target, PEER_MAC)
            };
            let group = icmp6::solicited_node(target);
            icmp6::icmp6_frame(
                icmp6::multicast_mac(group),
                PEER_MAC,
                src,
                group,
                icmp6::NEIGHBOR_SOLICITATION,
                0,
                &body,
            )
        };
        let out = h.receive(&ns(me(), peer()), t0);
        assert_eq!(out.len(), 1);
        let (dst, src, to, _, m) = parse(&out[0]);
        assert_eq!((dst, src, to, m[0]), (PEER_MAC, me(), peer(), 136));
        assert_eq!(m[4] & 0b0110_0000, 0b0110_0000, "solicited and override");
        assert_eq!(h.neighbours6(t0).get(&peer()), Some(&PEER_MAC));
        // Its link-local address too; not someone else's.
        let ll = icmp6::link_local(MAC);
        assert_eq!(h.receive(&ns(ll, peer()), t0).len(), 1);
        assert!(h.receive(&ns(a("fd00:0:0:10::9"), peer()), t0).is_empty());
        // Duplicate address detection for its address: the answer goes to all nodes.
        let out = h.receive(&ns(me(), Ipv6Addr::UNSPECIFIED), t0);
        let (dst, _, to, _, m) = parse(&out[0]);
        assert_eq!(
            (dst, to),
            (icmp6::multicast_mac(icmp6::ALL_NODES), icmp6::ALL_NODES)
        );
        assert_eq!(m[4] & 0b0100_0000, 0, "not solicited");
    }

    #[test]
    fn an_advertisement_updates_an_existing_entry_only_and_a_different_address_needs_override() {
        let mut h = host();
        let t0 = Instant::now();
        // No entry: an unsolicited advertisement creates none.
        h.receive(&na(PEER_MAC, peer(), icmp6::ALL_NODES, false, true), t0);
        assert!(h.neighbours6(t0).is_empty());
        let (tx, _rx) = oneshot::channel();
        h.start_probe(peer(), 64, 1, 1, tx, t0);
        h.receive(&na(PEER_MAC, peer(), me(), true, true), t0);
        // Another address without override: kept; with override (IPv6's gratuitous ARP):
        // replaced.
        h.receive(&na(OTHER_MAC, peer(), icmp6::ALL_NODES, false, false), t0);
        assert_eq!(h.neighbours6(t0).get(&peer()), Some(&PEER_MAC));
        h.receive(&na(OTHER_MAC, peer(), icmp6::ALL_NODES, false, true), t0);
        assert_eq!(h.neighbours6(t0).get(&peer()), Some(&OTHER_MAC));
    }

    #[test]
    fn the_default_router_comes_from_an_advertisement_from_a_link_local_address() {
        let mut h = host();
        let t0 = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        assert!(h.start_probe(far(), 64, 1, 1, tx, t0).is_empty());
        assert_eq!(rx.try_recv().unwrap(), ProbeOutcome::Timeout, "no route");
        // From a global address: ignored.
        h.receive(&ra(a("fd00:0:0:10::1"), 1800), t0);
        assert_eq!(h.router6(), None);
        h.receive(&ra(GATEWAY_LL, 1800), t0);
        assert_eq!(h.router6(), Some(GATEWAY_LL));
        // Its source link-layer option resolved the router: the echo goes straight out.
        let (tx, _rx) = oneshot::channel();
        let out = h.start_probe(far(), 64, 2, 1, tx, t0);
        let (dst, src, to, _, _) = parse(&out[0]);
        assert_eq!((dst, src, to), (GATEWAY_MAC, me(), far()));
        // Router lifetime 0: no longer the default router.
        h.receive(&ra(GATEWAY_LL, 0), t0);
        assert_eq!(h.router6(), None);
    }

    #[test]
    fn a_redirect_is_taken_only_from_the_current_first_hop_as_linux_does() {
        let t0 = Instant::now();
        let redirect = |src: Ipv6Addr, hop_limit: u8, target: Ipv6Addr, tlla: Option<MacAddr>| {
            let body = icmp6::redirect_body(target, far(), tlla, &[0x60; 48]);
            let m = icmp6::icmp6(src, me(), icmp6::REDIRECT, 0, &body);
            icmp6::ipv6_frame(MAC, GATEWAY_MAC, src, me(), IP_ICMPV6, hop_limit, &m)
        };
        let routed = || {
            let mut h = host();
            h.receive(&ra(GATEWAY_LL, 1800), t0);
            h
        };
        let ignored = [
            // Not from a link-local address.
            redirect(a("fd00:0:0:10::1"), 255, far(), Some(PEER_MAC)),
            // Not from the current first hop.
            redirect(a("fe80::99"), 255, far(), Some(PEER_MAC)),
            // Hop limit not 255: not from the link.
            redirect(GATEWAY_LL, 64, far(), Some(PEER_MAC)),
            // A global target other than the destination.
            redirect(GATEWAY_LL, 255, peer(), Some(PEER_MAC)),
        ];
        for f in ignored {
            let mut h = routed();
            let dropped = h.dropped();
            h.receive(&f, t0);
            assert!(h.redirects6().is_empty());
            assert_eq!(h.dropped(), dropped + 1);
        }
        // The destination is on the link, at PEER_MAC: echo requests go there directly.
        let mut h = routed();
        h.receive(&redirect(GATEWAY_LL, 255, far(), Some(PEER_MAC)), t0);
        assert_eq!(h.redirects6().get(&far()), Some(&far()));
        let (tx, _rx) = oneshot::channel();
        let out = h.start_probe(far(), 64, 3, 1, tx, t0);
        assert_eq!(parse(&out[0]).0, PEER_MAC);
        // Only the current first hop may redirect again: now that is the destination.
        let mut ignored = h.dropped();
        h.receive(&redirect(GATEWAY_LL, 255, far(), Some(OTHER_MAC)), t0);
        ignored += 1;
        assert_eq!(h.dropped(), ignored);
        // The exception runs out.
        h.on_timeout(t0 + HostConfig::default().redirect_timeout);
        assert!(h.redirects6().is_empty());
    }

    #[test]
    fn an_unanswered_solicitation_ends_in_address_unreachable() {
        let mut h = host();
        let t0 = Instant::now();
        let cfg = HostConfig::default();
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(h.start_probe(peer(), 64, 9, 1, tx, t0).len(), 1);
        // The second and third solicitations, then the give-up.
        let mut again = 0;
        for i in 1..=cfg.arp_tries {
            assert!(
                rx.try_recv().is_err(),
                "still waiting after {i} solicitations"
            );
            again += h.on_timeout(t0 + cfg.arp_retrans * i).len();
        }
        assert_eq!(again, cfg.arp_tries as usize - 1);
        assert_eq!(
            rx.try_recv().unwrap(),
            ProbeOutcome::Error {
                from: me().into(),
                icmp_type: icmp6::DEST_UNREACHABLE,
                code: icmp6::ADDRESS_UNREACHABLE,
            }
        );
    }
}
