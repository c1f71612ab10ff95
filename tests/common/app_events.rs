//! Arbitrary bytes read as a sequence of events for the application (the router): packet-ins
//! (frames built from the fabric's own addresses so that the deep paths are reached, and raw
//! frames), port-status and flow-removed messages (built, or parsed from raw bytes by the
//! codec), time passing, and API calls. Shared by the cargo-fuzz target
//! `fuzz/fuzz_targets/app_events.rs` and by `tests/app_events.rs` (random inputs on every test
//! run, and every regression input). The one property: nothing panics.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ofp13::{Body, FlowRemoved, MacAddr, Match, Message, PacketIn, Port, PortStatus};
use servswitch::app::clock::ManualClock;
use servswitch::app::router::Router;
use servswitch::app::trust::Announcements;
use servswitch::fabric::plan::{
    Fabric, COOKIE_HOST, COOKIE_MOBILITY, COOKIE_PIPELINE, COOKIE_REDIRECT, GATEWAY_MAC,
};
use servswitch::fabric::topology::{PortRef, Topology};
use servswitch::packet;
use servswitch::packet::{dhcp, icmp6};

/// The paper's testbed in dual stack (its IPv4 is the paper's; IPv6, an IPv6-only host and
/// DHCP on the home subnet reach the IPv6 and DHCP paths too).
const TOPOLOGY: &str = include_str!("../../topologies/dual-stack.toml");

/// A router on the paper's testbed with a clock the input moves.
pub struct Harness {
    pub router: Router,
    clock: Arc<ManualClock>,
    switches: Vec<String>,
    macs: Vec<MacAddr>,
    ips: Vec<Ipv4Addr>,
    ips6: Vec<Ipv6Addr>,
    /// Where each declared host is (a frame is sometimes sent from there, to get past the
    /// checks of where a host may speak from).
    homes: Vec<(MacAddr, String, u32)>,
}

/// Reads the input a byte at a time; zeros once it runs out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_be_bytes(b)
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        // Parsed and planned once: a fuzzer runs millions of inputs, each on a fresh router.
        static FABRIC: std::sync::OnceLock<(Topology, Fabric)> = std::sync::OnceLock::new();
        let (t, fabric) = FABRIC.get_or_init(|| {
            let t = Topology::parse(TOPOLOGY).expect("the paper's testbed");
            let f = Fabric::new(&t);
            (t, f)
        });
        let clock = ManualClock::new();
        let router = Router::new(fabric.clone())
            .with_clock(clock.clone())
            .with_announcements(Announcements::Verified);
        let mut macs: Vec<MacAddr> = t.hosts.iter().map(|h| h.mac).collect();
        macs.extend([
            GATEWAY_MAC,
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0x10, 0x66]),
        ]);
        let mut ips: Vec<Ipv4Addr> = t.hosts.iter().flat_map(|h| h.addresses()).collect();
        ips.extend(t.subnets.iter().filter_map(|s| s.gateway));
        ips.extend([
            Ipv4Addr::new(192, 168, 10, 192), // care-of pools
            Ipv4Addr::new(192, 168, 11, 192),
            Ipv4Addr::new(192, 168, 10, 77), // unknown, local to r2
            Ipv4Addr::new(8, 8, 8, 8),       // nowhere
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
        ]);
        let mut ips6: Vec<Ipv6Addr> = t.hosts.iter().flat_map(|h| h.addresses6()).collect();
        ips6.extend(t.subnets.iter().filter_map(|s| s.gateway6));
        ips6.extend([
            servswitch::fabric::plan::GATEWAY_LL,
            "fd00:0:0:10::ff01".parse().unwrap(), // a care-of pool
            "fd00:0:0:11::77".parse().unwrap(),   // unknown, local to r3
            "fe80::1".parse().unwrap(),
            icmp6::ALL_NODES,
            Ipv6Addr::UNSPECIFIED,
        ]);
        Harness {
            router,
            clock,
            switches: t.switches.iter().map(|s| s.name.clone()).collect(),
            macs,
            ips,
            ips6,
            homes: t
                .hosts
                .iter()
                .map(|h| (h.mac, h.at.switch.clone(), h.at.port))
                .collect(),
        }
    }

    /// Feeds every event the input describes.
    pub fn run(&mut self, data: &[u8]) {
        let mut input = Input { data };
        let mut steps = 0;
        while !input.is_empty() && steps < 64 {
            steps += 1;
            self.step(&mut input);
        }
    }

    fn mac(&self, b: u8) -> MacAddr {
        self.macs[usize::from(b) % self.macs.len()]
    }

    fn ip(&self, b: u8) -> Ipv4Addr {
        self.ips[usize::from(b) % self.ips.len()]
    }

    fn ip6(&self, b: u8) -> Ipv6Addr {
        self.ips6[usize::from(b) % self.ips6.len()]
    }

    fn port(b: u8) -> u32 {
        match b {
            250 => ofp13::port::LOCAL,
            251 => ofp13::port::CONTROLLER,
            252 => ofp13::port::ANY,
            253 => ofp13::port::MAX,
            254 => 0,
            _ => u32::from(b % 12),
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let kind = input.byte() % 8;
        let mut sw = self.switches[usize::from(input.byte()) % self.switches.len()].clone();
        let ports = || (1..=11).chain([ofp13::port::LOCAL]).collect();
        let mut out = Vec::new();
        let msg = match kind {
            0..=3 => {
                let in_port = Self::port(input.byte());
                let reason = input.byte() % 4;
                let table_id = input.byte() % 6;
                let cookie = match input.byte() % 5 {
                    0 => u64::MAX,
                    1 => COOKIE_PIPELINE,
                    2 => COOKIE_REDIRECT | u64::from(u32::from(self.ip(input.byte()))),
                    3 => COOKIE_MOBILITY | u64::from(u32::from(self.ip(input.byte()))),
                    _ => input.u64(),
                };
                let frame = self.frame(kind, input);
                let mut in_port = in_port;
                if input.byte().is_multiple_of(2) {
                    // From where its sender is declared to be.
                    let src = packet::Ethernet::parse(&frame).map(|e| e.src);
                    if let Some((_, s, p)) = self.homes.iter().find(|h| Some(h.0) == src) {
                        sw = s.clone();
                        in_port = *p;
                    }
                }
                let mut pi = PacketIn::unbuffered(in_port, reason, frame);
                pi.table_id = table_id;
                pi.cookie = cookie;
                Body::PacketIn(pi)
            }
            4 => {
                let mut desc = Port {
                    port_no: Self::port(input.byte()),
                    hw_addr: self.mac(input.byte()),
                    name: "p".into(),
                    ..Default::default()
                };
                let b = input.byte();
                desc.config = u32::from(b & 1);
                desc.state = u32::from(b >> 1 & 1);
                Body::PortStatus(PortStatus {
                    reason: input.byte() % 4,
                    desc,
                })
            }
            5 => {
                let cookie = match input.byte() % 4 {
                    0 => COOKIE_REDIRECT | u64::from(u32::from(self.ip(input.byte()))),
                    1 => COOKIE_MOBILITY | u64::from(u32::from(self.ip(input.byte()))),
                    2 => COOKIE_HOST | u64::from(u32::from(self.ip(input.byte()))),
                    _ => input.u64(),
                };
                Body::FlowRemoved(FlowRemoved {
                    cookie,
                    priority: u16::from(input.byte()) << 4,
                    reason: input.byte() % 5,
                    table_id: input.byte() % 6,
                    duration_sec: 0,
                    duration_nsec: 0,
                    idle_timeout: u16::from(input.byte()),
                    hard_timeout: u16::from(input.byte()),
                    packet_count: 0,
                    byte_count: 0,
                    match_: Match::default(),
                })
            }
            6 => {
                // Any bytes the codec accepts as a PACKET_IN, FLOW_REMOVED or PORT_STATUS.
                let msg_type = [10u8, 11, 12][usize::from(input.byte()) % 3];
                let len = usize::from(input.byte());
                let body = input.bytes(len);
                let mut wire = Vec::with_capacity(8 + body.len());
                wire.extend_from_slice(&[4, msg_type]);
                wire.extend_from_slice(&u16::try_from(8 + body.len()).unwrap_or(0).to_be_bytes());
                wire.extend_from_slice(&[0, 0, 0, 1]);
                wire.extend_from_slice(body);
                match Message::parse_slice(&wire) {
                    Ok(m) => m.body,
                    Err(_) => return,
                }
            }
            _ => {
                self.side_step(input);
                return;
            }
        };
        // The effects (migrations, timers, cover tasks) need a runtime to run in; a router
        // on its own only asks for them.
        let mut effects = Vec::new();
        self.router.handle_message(
            &sw,
            &ports,
            &Message::new(0, msg),
            &mut out,
            &mut effects,
            std::time::Instant::now(),
        );
        // Every answer must be a message the codec can write.
        for b in out {
            let _ = Message::new(1, b).to_bytes();
        }
    }

    /// A frame: built from the fabric's addresses (ARP, RARP, IPv4 with ICMP, TCP or UDP),
    /// or raw.
    fn frame(&self, kind: u8, input: &mut Input<'_>) -> Vec<u8> {
        let src = self.mac(input.byte());
        match kind {
            0 => {
                let op = match input.byte() % 4 {
                    0 => packet::ARP_REQUEST,
                    1 => packet::ARP_REPLY,
                    _ => u16::from(input.byte()),
                };
                let arp = packet::Arp {
                    op,
                    sha: if input.byte().is_multiple_of(4) {
                        self.mac(input.byte())
                    } else {
                        src
                    },
                    spa: self.ip(input.byte()),
                    tha: self.mac(input.byte()),
                    tpa: self.ip(input.byte()),
                };
                let dst = if input.byte().is_multiple_of(2) {
                    MacAddr::BROADCAST
                } else {
                    self.mac(input.byte())
                };
                arp.frame(dst, src, packet::ETH_ARP)
            }
            1 => packet::rarp_announce(src),
            2 => {
                let (s, d) = (self.ip(input.byte()), self.ip(input.byte()));
                let proto = [packet::IP_ICMP, 6, 17, input.byte()][usize::from(input.byte()) % 4];
                let ttl = input.byte();
                let len = usize::from(input.byte() % 64);
                let payload = input.bytes(len).to_vec();
                let payload = if proto == packet::IP_ICMP && input.byte().is_multiple_of(2) {
                    packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 1, 0, 1], &payload)
                } else {
                    payload
                };
                let ip = packet::ipv4_packet(s, d, proto, ttl, 0, false, &payload);
                let dst = self.mac(input.byte());
                packet::eth_frame(dst, src, packet::ETH_IPV4, &ip)
            }
            _ => match input.byte() % 4 {
                0 => self.dhcp_frame(src, input),
                1 => self.nd_frame(src, input),
                2 => {
                    let (s, d) = (self.ip6(input.byte()), self.ip6(input.byte()));
                    let next =
                        [packet::IP_ICMPV6, 6, 17, input.byte()][usize::from(input.byte()) % 4];
                    let hops = input.byte();
                    let len = usize::from(input.byte() % 64);
                    let body = input.bytes(len).to_vec();
                    let payload = if next == packet::IP_ICMPV6 && input.byte().is_multiple_of(2) {
                        icmp6::icmp6(s, d, icmp6::ECHO_REQUEST, 0, &body)
                    } else {
                        body
                    };
                    let dst = self.mac(input.byte());
                    icmp6::ipv6_frame(dst, src, s, d, next, hops, &payload)
                }
                _ => {
                    let len = usize::from(input.byte());
                    input.bytes(len).to_vec()
                }
            },
        }
    }

    /// A DHCP request (any message type, its own or another's chaddr, options from the
    /// fabric's addresses), broadcast or to an address.
    fn dhcp_frame(&self, src: MacAddr, input: &mut Input<'_>) -> Vec<u8> {
        // Mostly what clients send (DISCOVER, REQUEST, INFORM), sometimes anything.
        let ty = [dhcp::DISCOVER, dhcp::REQUEST, dhcp::INFORM, input.byte()]
            [usize::from(input.byte()) % 4];
        let chaddr = if input.byte().is_multiple_of(4) {
            self.mac(input.byte())
        } else {
            src
        };
        let mut options = Vec::new();
        if input.byte().is_multiple_of(2) {
            options.push((
                dhcp::OPT_REQUESTED_IP,
                self.ip(input.byte()).octets().to_vec(),
            ));
        }
        if input.byte().is_multiple_of(2) {
            options.push((dhcp::OPT_SERVER_ID, self.ip(input.byte()).octets().to_vec()));
        }
        let flags = u16::from(input.byte()) << 8;
        let mut msg = dhcp::request(ty, chaddr, 7, self.ip(input.byte()), flags, &options);
        // Cut short sometimes: a malformed message.
        if input.byte().is_multiple_of(8) {
            msg.truncate(usize::from(input.byte()));
        }
        let (s, d) = (self.ip(input.byte()), self.ip(input.byte()));
        let udp = dhcp::udp_datagram(s, d, 68, 67, &msg);
        let ip = packet::ipv4_packet(s, d, packet::IP_UDP, 64, 0, false, &udp);
        packet::eth_frame(self.mac(input.byte()), src, packet::ETH_IPV4, &ip)
    }

    /// Neighbour discovery: a router solicitation, a solicitation (duplicate address
    /// detection too) or an advertisement, for the fabric's addresses, with its own or
    /// another's link-layer address, hop limit 255 or not.
    fn nd_frame(&self, src: MacAddr, input: &mut Input<'_>) -> Vec<u8> {
        let ty = [
            icmp6::ROUTER_SOLICITATION,
            icmp6::NEIGHBOR_SOLICITATION,
            icmp6::NEIGHBOR_ADVERTISEMENT,
        ][usize::from(input.byte()) % 3];
        let (from, target) = (self.ip6(input.byte()), self.ip6(input.byte()));
        let lla = if input.byte().is_multiple_of(4) {
            self.mac(input.byte())
        } else {
            src
        };
        let mut body = match ty {
            icmp6::NEIGHBOR_ADVERTISEMENT => icmp6::na_body(target, lla, false, true),
            icmp6::NEIGHBOR_SOLICITATION => icmp6::ns_body(target, lla),
            _ => vec![0; 4],
        };
        body.truncate(body.len() - usize::from(input.byte() % 3) * 4 % body.len());
        let to = icmp6::solicited_node(target);
        let hops = if input.byte().is_multiple_of(4) {
            input.byte()
        } else {
            255
        };
        let m = icmp6::icmp6(from, to, ty, 0, &body);
        icmp6::ipv6_frame(
            icmp6::multicast_mac(to),
            src,
            from,
            to,
            packet::IP_ICMPV6,
            hops,
            &m,
        )
    }

    /// Time passing, and the calls the API makes.
    fn side_step(&mut self, input: &mut Input<'_>) {
        match input.byte() % 8 {
            0 => self
                .clock
                .advance(Duration::from_millis(u64::from(input.byte()) * 50)),
            1 => self
                .clock
                .advance(Duration::from_secs(u64::from(input.byte()))),
            2 => {
                let host = self.mac(input.byte()).to_string();
                let to = PortRef {
                    switch: self.switches[usize::from(input.byte()) % self.switches.len()].clone(),
                    port: Self::port(input.byte()),
                };
                let ttl = Duration::from_millis(u64::from(input.byte()) * 100 + 1);
                let _ = self.router.arm(&host, &to, ttl);
            }
            3 => {
                let id = input.byte().to_string();
                let _ = self.router.cancel_move(&id);
            }
            4 => {
                let _ = self.router.moves();
                let _ = self.router.quarantine_list();
            }
            5 => {
                let _ = self.router.clear_quarantine();
            }
            6 => {
                let _ = self.router.metrics_text();
                let _ = self.router.host_states();
            }
            _ => {
                let _ = self.router.tables();
            }
        }
    }
}
