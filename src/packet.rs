//! The few packet formats the controller reads and writes itself: Ethernet, ARP (and QEMU's
//! RARP announcement), IPv4, ICMP, LLDP, and UDP with DHCPv4 ([`dhcp`]). Parsing never panics; building computes checksums.

use std::net::Ipv4Addr;

use ofp13::MacAddr;

pub mod dhcp;
pub mod icmp6;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_RARP: u16 = 0x8035;
pub const ETH_VLAN: u16 = 0x8100;
/// IEEE 802.1AB Link Layer Discovery Protocol.
pub const ETH_LLDP: u16 = 0x88cc;
/// The nearest-bridge group address LLDP is sent to (no bridge forwards it).
pub const LLDP_MULTICAST: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]);
pub const IP_ICMP: u8 = 1;
pub const IP_TCP: u8 = 6;
pub const IP_UDP: u8 = 17;
pub const IP_ICMPV6: u8 = 58;
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;
/// RARP "reverse request", what QEMU sends to announce a migrated VM.
pub const RARP_REQUEST: u16 = 3;
pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_REDIRECT: u8 = 5;
/// Code "redirect datagrams for the host" of [`ICMP_REDIRECT`] (RFC 792).
pub const ICMP_REDIRECT_HOST: u8 = 1;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// Frames shorter than this are padded (Ethernet minimum without FCS).
pub const MIN_FRAME: usize = 60;

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(b.get(at..at + 6)?.try_into().ok()?))
}
fn ip_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// An Ethernet frame's header and payload (one 802.1Q tag is skipped over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ethernet<'a> {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

impl<'a> Ethernet<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        let dst = mac_at(b, 0)?;
        let src = mac_at(b, 6)?;
        let mut ethertype = u16_at(b, 12)?;
        let mut off = 14;
        if ethertype == ETH_VLAN {
            ethertype = u16_at(b, 16)?;
            off = 18;
        }
        Some(Ethernet {
            dst,
            src,
            ethertype,
            payload: b.get(off..)?,
        })
    }
}

/// An ARP or RARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// Parses the ARP body; `None` unless it is Ethernet/IPv4 with the right sizes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if u16_at(b, 0)? != 1 || u16_at(b, 2)? != ETH_IPV4 || *b.get(4)? != 6 || *b.get(5)? != 4 {
            return None;
        }
        Some(Arp {
            op: u16_at(b, 6)?,
            sha: mac_at(b, 8)?,
            spa: ip_at(b, 14)?,
            tha: mac_at(b, 18)?,
            tpa: ip_at(b, 24)?,
        })
    }

    /// A request from (`sha`, `spa`) for `tpa` (target hardware address zero).
    pub fn request(sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Arp {
        Arp {
            op: ARP_REQUEST,
            sha,
            spa,
            tha: MacAddr::ZERO,
            tpa,
        }
    }

    /// A reply from (`sha`, `spa`) to (`tha`, `tpa`).
    pub fn reply(sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Arp {
        Arp {
            op: ARP_REPLY,
            sha,
            spa,
            tha,
            tpa,
        }
    }

    /// The frame a host sends this in: from `sha`; a request broadcast, anything else to
    /// `tha`.
    pub fn to_frame(&self) -> Vec<u8> {
        self.to_frame_array().to_vec()
    }

    /// [`Arp::to_frame`] on the stack (no heap allocation: the common ARP answer).
    pub fn to_frame_array(&self) -> [u8; MIN_FRAME] {
        let dst = if self.op == ARP_REQUEST {
            MacAddr::BROADCAST
        } else {
            self.tha
        };
        self.frame_array(dst, self.sha, ETH_ARP)
    }

    /// A gratuitous ARP: sender and target address are the same.
    pub fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa && !self.spa.is_unspecified()
    }

    /// The whole Ethernet frame carrying this ARP (`ethertype` ARP or RARP), padded to 60.
    pub fn frame(&self, eth_dst: MacAddr, eth_src: MacAddr, ethertype: u16) -> Vec<u8> {
        self.frame_array(eth_dst, eth_src, ethertype).to_vec()
    }

    /// [`Arp::frame`] on the stack: the Ethernet header, the ARP body and the padding.
    pub fn frame_array(
        &self,
        eth_dst: MacAddr,
        eth_src: MacAddr,
        ethertype: u16,
    ) -> [u8; MIN_FRAME] {
        let mut f = [0u8; MIN_FRAME];
        let parts: [&[u8]; 9] = [
            &eth_dst.0,
            &eth_src.0,
            &ethertype.to_be_bytes(),
            &[0, 1, 8, 0, 6, 4],
            &self.op.to_be_bytes(),
            &self.sha.0,
            &self.spa.octets(),
            &self.tha.0,
            &self.tpa.octets(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = f.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        f
    }
}

/// An IPv4 header (options kept as part of the header length) and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4<'a> {
    pub header_len: usize,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The header bytes, options included.
    pub header: &'a [u8],
    /// The payload, cut to the header's total length.
    pub payload: &'a [u8],
}

impl<'a> Ipv4<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        let vihl = *b.first()?;
        if vihl >> 4 != 4 {
            return None;
        }
        let header_len = ((vihl & 0x0f) as usize) * 4;
        let total = u16_at(b, 2)? as usize;
        if header_len < 20 || total < header_len || total > b.len() {
            return None;
        }
        Some(Ipv4 {
            header_len,
            ttl: *b.get(8)?,
            protocol: *b.get(9)?,
            src: ip_at(b, 12)?,
            dst: ip_at(b, 16)?,
            header: b.get(..header_len)?,
            payload: b.get(header_len..total)?,
        })
    }
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame around `payload`, padded to the minimum size.
pub fn eth_frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity((14 + payload.len()).max(MIN_FRAME));
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// An IPv4 packet (no options) with its header checksum.
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    dont_fragment: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[if dont_fragment { 0x40 } else { 0 }, 0, ttl, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p);
    if let Some(s) = p.get_mut(10..12) {
        s.copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}

/// An Ethernet frame with an IPv4 packet (no options, DF clear, TTL 64) around `payload`.
pub fn ipv4_frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload: &[u8],
) -> Vec<u8> {
    let ip = ipv4_packet(src, dst, protocol, 64, 0, false, payload);
    eth_frame(eth_dst, eth_src, ETH_IPV4, &ip)
}

/// An ICMP message (type, code, 4 bytes of rest-of-header, data) with its checksum.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + data.len());
    m.extend_from_slice(&[ty, code, 0, 0]);
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(&m);
    if let Some(s) = m.get_mut(2..4) {
        s.copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// What QEMU (`net/announce.c`, `qemu_announce_self`) broadcasts for a NIC after a live
/// migration: a 60-byte RARP "reverse request" (opcode 3) from `mac`, with `mac` as sender and
/// target hardware address, both protocol addresses 0.0.0.0, zero padding. It carries no IP
/// address: whoever reads it must already know which addresses `mac` has.
pub fn rarp_announce(mac: MacAddr) -> Vec<u8> {
    Arp {
        op: RARP_REQUEST,
        sha: mac,
        spa: Ipv4Addr::UNSPECIFIED,
        tha: mac,
        tpa: Ipv4Addr::UNSPECIFIED,
    }
    .frame(MacAddr::BROADCAST, mac, ETH_RARP)
}

/// Who sent an LLDP frame: the switch (its datapath id) and port the controller sent it
/// out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LldpFrom {
    pub dpid: u64,
    pub port: u32,
}

const LLDP_CHASSIS: u8 = 1;
const LLDP_PORT: u8 = 2;
const LLDP_TTL: u8 = 3;
const LLDP_SYSTEM_NAME: u8 = 5;
/// Chassis and port ID subtype "locally assigned" (IEEE 802.1AB 8.5.2.2, 8.5.3.2).
const LLDP_LOCAL: u8 = 7;

fn lldp_tlv(f: &mut Vec<u8>, ty: u8, value: &[u8]) {
    // 7 bits of type, 9 of length; callers' values are far below 512 bytes.
    let head = (u16::from(ty) << 9) | (value.len() as u16 & 0x1ff);
    f.extend_from_slice(&head.to_be_bytes());
    f.extend_from_slice(value);
}

/// The LLDP frame the controller sends out of `port` of the switch `dpid` (named `name`) to
/// check a declared link: chassis ID `dpid:` and the datapath id in 16 hex digits, port ID
/// the port number in decimal (both "locally assigned", as Open vSwitch's own LLDP and
/// Faucet's carry their identities), time to live `ttl_s`, the switch's name as system name.
pub fn lldp(src: MacAddr, dpid: u64, port: u32, ttl_s: u16, name: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + name.len());
    f.extend_from_slice(&LLDP_MULTICAST.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETH_LLDP.to_be_bytes());
    let chassis = format!("\u{7}dpid:{dpid:016x}");
    lldp_tlv(&mut f, LLDP_CHASSIS, chassis.as_bytes());
    let port = format!("\u{7}{port}");
    lldp_tlv(&mut f, LLDP_PORT, port.as_bytes());
    lldp_tlv(&mut f, LLDP_TTL, &ttl_s.to_be_bytes());
    let name = name.as_bytes();
    lldp_tlv(&mut f, LLDP_SYSTEM_NAME, &name[..name.len().min(255)]);
    lldp_tlv(&mut f, 0, &[]);
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// The sender of an LLDP payload (after the Ethernet header) as [`lldp`] writes it; None for
/// a malformed one or one another speaker sent (other subtypes, other identities).
pub fn lldp_from(payload: &[u8]) -> Option<LldpFrom> {
    let (mut dpid, mut port) = (None, None);
    let mut rest = payload;
    while rest.len() >= 2 {
        let head = u16::from_be_bytes([rest[0], rest[1]]);
        let (ty, len) = ((head >> 9) as u8, usize::from(head & 0x1ff));
        let value = rest.get(2..2 + len)?;
        rest = &rest[2 + len..];
        match (ty, value.split_first()) {
            (0, _) => break,
            (LLDP_CHASSIS, Some((&LLDP_LOCAL, id))) => {
                let hex = std::str::from_utf8(id).ok()?.strip_prefix("dpid:")?;
                if hex.len() != 16 {
                    return None;
                }
                dpid = Some(u64::from_str_radix(hex, 16).ok()?);
            }
            (LLDP_PORT, Some((&LLDP_LOCAL, id))) => {
                let text = std::str::from_utf8(id).ok()?;
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                port = Some(text.parse().ok()?);
            }
            (LLDP_CHASSIS | LLDP_PORT, _) => return None,
            _ => {}
        }
    }
    Some(LldpFrom {
        dpid: dpid?,
        port: port?,
    })
}

/// The part of an offending datagram an ICMP error quotes: its header and 8 bytes of payload.
pub fn icmp_quote(ip: &Ipv4<'_>) -> Vec<u8> {
    let mut q = ip.header.to_vec();
    q.extend_from_slice(ip.payload.get(..8).unwrap_or(ip.payload));
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lldp_round_trip_and_foreign_or_broken_frames() {
        let src = MacAddr([2, 0, 0, 0, 0, 9]);
        let f = lldp(src, 0x0000_0000_0000_0a01, 3, 5, "a1");
        let eth = Ethernet::parse(&f).unwrap();
        assert_eq!(
            (eth.dst, eth.src, eth.ethertype),
            (LLDP_MULTICAST, src, ETH_LLDP)
        );
        assert_eq!(
            lldp_from(eth.payload),
            Some(LldpFrom {
                dpid: 0xa01,
                port: 3
            })
        );
        // Every truncation is refused, never a panic; so is another speaker's identity.
        for n in 0..eth.payload.len() {
            let _ = lldp_from(&eth.payload[..n]);
        }
        assert_eq!(lldp_from(&eth.payload[..10]), None);
        let mut mac_chassis = Vec::new();
        lldp_tlv(&mut mac_chassis, LLDP_CHASSIS, &[4, 2, 0, 0, 0, 0, 9]);
        lldp_tlv(&mut mac_chassis, LLDP_PORT, b"\x073");
        assert_eq!(lldp_from(&mac_chassis), None);
        let mut big_port = Vec::new();
        lldp_tlv(&mut big_port, LLDP_CHASSIS, b"\x07dpid:0000000000000001");
        lldp_tlv(&mut big_port, LLDP_PORT, b"\x0799999999999");
        assert_eq!(lldp_from(&big_port), None);
    }

    #[test]
    fn arp_round_trip_and_rarp() {
        let a = Arp {
            op: ARP_REQUEST,
            sha: MacAddr([2, 0, 0, 0, 0x11, 3]),
            spa: Ipv4Addr::new(192, 168, 11, 3),
            tha: MacAddr::ZERO,
            tpa: Ipv4Addr::new(192, 168, 11, 1),
        };
        let f = a.frame(MacAddr::BROADCAST, a.sha, ETH_ARP);
        assert_eq!(f.len(), 60);
        let e = Ethernet::parse(&f).unwrap();
        assert_eq!(e.ethertype, ETH_ARP);
        assert_eq!(Arp::parse(e.payload), Some(a));
        assert!(!a.is_gratuitous());
        // QEMU's announcement (net/announce.c): RARP, opcode 3, both MACs the VM, IPs zero.
        let vm = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let rarp = Arp {
            op: RARP_REQUEST,
            sha: vm,
            spa: Ipv4Addr::UNSPECIFIED,
            tha: vm,
            tpa: Ipv4Addr::UNSPECIFIED,
        };
        let f = rarp.frame(MacAddr::BROADCAST, vm, ETH_RARP);
        let e = Ethernet::parse(&f).unwrap();
        assert_eq!((e.ethertype, e.src), (ETH_RARP, vm));
        assert_eq!(Arp::parse(e.payload).unwrap().op, RARP_REQUEST);
        assert!(Arp::parse(&f[14..20]).is_none());
    }

    #[test]
    fn rarp_announce_is_qemus_frame_byte_for_byte() {
        let vm = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let f = rarp_announce(vm);
        // net/announce.c: eth header, then htype 1, ptype 0x0800, hlen 6, plen 4, op 3,
        // sha = mac, spa = 0, tha = mac, tpa = 0, zero padding to 60 bytes.
        let mut want = vec![0xff; 6];
        want.extend_from_slice(&vm.0);
        want.extend_from_slice(&[0x80, 0x35, 0, 1, 8, 0, 6, 4, 0, 3]);
        want.extend_from_slice(&vm.0);
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&vm.0);
        want.extend_from_slice(&[0; 4]);
        want.resize(60, 0);
        assert_eq!(f, want);
        let e = Ethernet::parse(&f).unwrap();
        assert_eq!(
            (e.dst, e.src, e.ethertype),
            (MacAddr::BROADCAST, vm, ETH_RARP)
        );
        let a = Arp::parse(e.payload).unwrap();
        assert_eq!((a.op, a.sha, a.tha), (RARP_REQUEST, vm, vm));
        assert!(a.spa.is_unspecified() && a.tpa.is_unspecified());
        assert!(!a.is_gratuitous(), "0.0.0.0 announces no address");
    }

    #[test]
    fn ipv4_icmp_checksums() {
        let body = icmp(ICMP_ECHO_REQUEST, 0, [0, 1, 0, 2], b"abcdefgh");
        assert_eq!(checksum(&body), 0, "a correct checksum sums to zero");
        let f = ipv4_frame(
            MacAddr::BROADCAST,
            MacAddr::ZERO,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IP_ICMP,
            &body,
        );
        let e = Ethernet::parse(&f).unwrap();
        let ip = Ipv4::parse(e.payload).unwrap();
        assert_eq!(checksum(ip.header), 0);
        assert_eq!((ip.ttl, ip.protocol, ip.payload), (64, IP_ICMP, &body[..]));
        assert_eq!(icmp_quote(&ip).len(), 28);
    }

    #[test]
    fn malformed_is_none_not_panic() {
        for n in 0..40 {
            let junk = vec![0x45u8; n];
            let _ = Ethernet::parse(&junk);
            let _ = Arp::parse(&junk);
            let _ = Ipv4::parse(&junk);
        }
        // total length beyond the buffer
        let mut h = vec![0x45, 0, 0, 200];
        h.resize(20, 0);
        assert!(Ipv4::parse(&h).is_none());
    }
}
