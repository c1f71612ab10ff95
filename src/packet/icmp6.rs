//! IPv6 and ICMPv6 as far as the controller's IPv6 gateway needs (RFC 8200, 4443, 4861):
//! neighbour solicitations and advertisements read and written, router solicitations read and
//! advertisements written, echo replies and time exceeded written. Parsing never panics and
//! refuses neighbour discovery that RFC 4861 section 7.1 says to discard (hop limit not 255,
//! code not 0, options of length 0).

use std::net::Ipv6Addr;

use ofp13::MacAddr;

use super::{checksum, mac_at, u16_at, IP_ICMPV6};

pub const DEST_UNREACHABLE: u8 = 1;
/// Code "address unreachable" of [`DEST_UNREACHABLE`] (neighbour discovery failed).
pub const ADDRESS_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const TIME_EXCEEDED: u8 = 3;
pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;
pub const NEIGHBOR_SOLICITATION: u8 = 135;
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
pub const REDIRECT: u8 = 137;
/// Multicast listener reports, MLDv1 (RFC 2710) and MLDv2 (RFC 3810).
pub const MLD_REPORT: u8 = 131;
pub const MLD2_REPORT: u8 = 143;

pub const OPT_SOURCE_LLA: u8 = 1;
pub const OPT_TARGET_LLA: u8 = 2;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_REDIRECTED_HEADER: u8 = 4;
const OPT_MTU: u8 = 5;

/// The all-nodes multicast address and its MAC.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An IPv6 packet without extension headers the controller reads (neighbour discovery and
/// echo requests carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next: u8,
    pub hop_limit: u8,
    /// The header and payload, cut to the payload length.
    pub packet: &'a [u8],
    pub payload: &'a [u8],
}

fn ip6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

impl<'a> Ipv6<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        if b.first()? >> 4 != 6 {
            return None;
        }
        let end = 40 + usize::from(u16_at(b, 4)?);
        Some(Ipv6 {
            src: ip6_at(b, 8)?,
            dst: ip6_at(b, 24)?,
            next: *b.get(6)?,
            hop_limit: *b.get(7)?,
            packet: b.get(..end)?,
            payload: b.get(40..end)?,
        })
    }
}

/// The multicast MAC of an IPv6 multicast address (RFC 2464 section 7).
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The solicited-node multicast address of `a` (RFC 4291 section 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from(
        u128::from(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0))
            | u128::from_be_bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, o[13], o[14], o[15]]),
    )
}

/// The link-local address of a MAC by modified EUI-64 (RFC 4291 appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// An ICMPv6 message from `src` to `dst` (type, code, body after the checksum) with its
/// checksum over the pseudo-header.
pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(body);
    let mut pseudo = Vec::with_capacity(40 + m.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IP_ICMPV6]);
    pseudo.extend_from_slice(&m);
    let c = checksum(&pseudo);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Whether an ICMPv6 message's checksum (over the pseudo-header) is right.
pub fn checksum_ok(ip: &Ipv6<'_>) -> bool {
    let mut pseudo = Vec::with_capacity(40 + ip.payload.len());
    pseudo.extend_from_slice(&ip.src.octets());
    pseudo.extend_from_slice(&ip.dst.octets());
    pseudo.extend_from_slice(&(ip.payload.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ip.next]);
    pseudo.extend_from_slice(ip.payload);
    checksum(&pseudo) == 0
}

/// The link-layer address option of kind `kind` ([`OPT_SOURCE_LLA`] or [`OPT_TARGET_LLA`])
/// among neighbour discovery options; `None` if absent or the options are malformed.
pub fn lla_option(mut opts: &[u8], kind: u8) -> Option<MacAddr> {
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 {
            return None;
        }
        let o = opts.get(..len)?;
        if o[0] == kind && len == 8 {
            return mac_at(o, 2);
        }
        opts = &opts[len..];
    }
    None
}

/// An IPv6 packet (no extension headers) around `payload`.
pub fn ipv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    p.extend_from_slice(&[next, hop_limit]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An Ethernet frame with an IPv6 packet (no extension headers) around `payload`.
pub fn ipv6_frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let p = ipv6_packet(src, dst, next, hop_limit, payload);
    super::eth_frame(eth_dst, eth_src, super::ETH_IPV6, &p)
}

/// An ICMPv6 message in a frame (hop limit 255, as neighbour discovery requires).
pub fn icmp6_frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    body: &[u8],
) -> Vec<u8> {
    let m = icmp6(src, dst, ty, code, body);
    ipv6_frame(eth_dst, eth_src, src, dst, IP_ICMPV6, 255, &m)
}

/// A neighbour solicitation or advertisement, or a router solicitation, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nd {
    pub ty: u8,
    /// The target (unspecified for a router solicitation).
    pub target: Ipv6Addr,
    /// The source (solicitation) or target (advertisement) link-layer address option.
    pub lla: Option<MacAddr>,
    /// An advertisement's router, solicited and override flags.
    pub flags: u8,
}

impl Nd {
    /// Neighbour discovery from `ip`, valid by RFC 4861 7.1.1, 7.1.2 and 6.1.1 (the checksum
    /// is the switch's and the sender's business: OVS forwards what it received).
    pub fn parse(ip: &Ipv6<'_>) -> Option<Nd> {
        let m = ip.payload;
        if ip.next != IP_ICMPV6 || ip.hop_limit != 255 || *m.get(1)? != 0 {
            return None;
        }
        let ty = *m.first()?;
        let (target, flags, opts) = match ty {
            NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT => {
                let t = ip6_at(m, 8)?;
                if t.is_multicast() {
                    return None;
                }
                (t, *m.get(4)? >> 5, m.get(24..)?)
            }
            ROUTER_SOLICITATION => (Ipv6Addr::UNSPECIFIED, 0, m.get(8..)?),
            _ => return None,
        };
        let want = if ty == NEIGHBOR_ADVERTISEMENT {
            OPT_TARGET_LLA
        } else {
            OPT_SOURCE_LLA
        };
        let mut lla = None;
        let mut i = 0;
        while i < opts.len() {
            let len = usize::from(*opts.get(i + 1)?) * 8;
            if len == 0 {
                return None;
            }
            let o = opts.get(i..i + len)?;
            if o[0] == want && len == 8 {
                lla = mac_at(o, 2);
            }
            i += len;
        }
        // A solicitation from the unspecified address (duplicate address detection) carries
        // no source link-layer address; one that does is invalid.
        if ty != NEIGHBOR_ADVERTISEMENT && ip.src.is_unspecified() && lla.is_some() {
            return None;
        }
        Some(Nd {
            ty,
            target,
            lla,
            flags,
        })
    }

    pub fn is_dad(&self, ip: &Ipv6<'_>) -> bool {
        self.ty == NEIGHBOR_SOLICITATION && ip.src.is_unspecified()
    }
}

/// A neighbour advertisement's body for `target` at `mac`, with the router, solicited and
/// override flags.
pub fn na_body(target: Ipv6Addr, mac: MacAddr, router: bool, solicited: bool) -> Vec<u8> {
    let flags = (u8::from(router) << 7) | (u8::from(solicited) << 6) | (1 << 5);
    let mut b = vec![flags, 0, 0, 0];
    b.extend_from_slice(&target.octets());
    b.extend_from_slice(&[OPT_TARGET_LLA, 1]);
    b.extend_from_slice(&mac.0);
    b
}

/// An unsolicited neighbour advertisement (override set) that `target` is at `mac`, from
/// `mac` to all nodes: IPv6's gratuitous ARP.
pub fn unsolicited_na(target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    icmp6_frame(
        multicast_mac(ALL_NODES),
        mac,
        target,
        ALL_NODES,
        NEIGHBOR_ADVERTISEMENT,
        0,
        &na_body(target, mac, false, false),
    )
}

/// A redirect's body (RFC 4861 4.5): a better first hop `target` for `dest` (the same
/// address: the destination is on the link), its link-layer address if known, and the
/// redirected packet, cut so that the whole redirect stays within the minimum MTU (1280).
pub fn redirect_body(
    target: Ipv6Addr,
    dest: Ipv6Addr,
    tlla: Option<MacAddr>,
    packet: &[u8],
) -> Vec<u8> {
    const MIN_MTU: usize = 1280;
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(&target.octets());
    b.extend_from_slice(&dest.octets());
    if let Some(m) = tlla {
        b.extend_from_slice(&[OPT_TARGET_LLA, 1]);
        b.extend_from_slice(&m.0);
    }
    // IPv6 header, ICMPv6 header, what is there, the option's own 8 bytes.
    let room = (MIN_MTU - 40 - 4 - b.len() - 8) / 8 * 8;
    let quoted = &packet[..packet.len().min(room)];
    let padded = quoted.len().div_ceil(8) * 8;
    b.push(OPT_REDIRECTED_HEADER);
    b.push(u8::try_from(1 + padded / 8).unwrap_or(u8::MAX));
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(quoted);
    b.resize(b.len() + (padded - quoted.len()), 0);
    b
}

/// A neighbour solicitation's body for `target`, from a sender at `mac`.
pub fn ns_body(target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(&target.octets());
    b.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
    b.extend_from_slice(&mac.0);
    b
}

/// What a router advertisement announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// The on-link prefix hosts autoconfigure addresses in (its length must be 64 for SLAAC).
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// Seconds the sender is a default router.
    pub router_lifetime: u16,
    pub valid_s: u32,
    pub preferred_s: u32,
    pub mtu: Option<u32>,
    pub mac: MacAddr,
}

/// A router advertisement's body (RFC 4861 4.2): hop limit 64, no managed/other flags, the
/// source link-layer address, the MTU and one prefix, on-link and autonomous.
pub fn ra_body(a: &Advert) -> Vec<u8> {
    let mut b = vec![64, 0];
    b.extend_from_slice(&a.router_lifetime.to_be_bytes());
    b.extend_from_slice(&[0; 8]); // reachable time, retransmission timer: unspecified
    b.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
    b.extend_from_slice(&a.mac.0);
    if let Some(mtu) = a.mtu {
        b.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        b.extend_from_slice(&mtu.to_be_bytes());
    }
    b.extend_from_slice(&[OPT_PREFIX_INFO, 4, a.prefix_len, 0xc0]);
    b.extend_from_slice(&a.valid_s.to_be_bytes());
    b.extend_from_slice(&a.preferred_s.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&a.prefix.octets());
    b
}

/// The start of `packet` that an ICMPv6 error may quote (the error fits the minimum MTU of
/// 1280 bytes, RFC 4443 2.4 (c)).
pub fn quote(packet: &[u8]) -> &[u8] {
    &packet[..packet.len().min(1280 - 48)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    #[test]
    fn a_redirect_fits_the_minimum_mtu_with_its_options_in_whole_octets() {
        let (t, d) = (a("fd00:0:0:10::2"), a("fd00:0:0:11::3"));
        for len in [0usize, 5, 48, 1500, 9000] {
            let packet = vec![0xab; len];
            for lla in [None, Some(M)] {
                let body = redirect_body(t, d, lla, &packet);
                let frame = icmp6_frame(M, M, GATEWAY_LL_TEST, d, REDIRECT, 0, &body);
                assert!(
                    frame.len() - 14 <= 1280,
                    "{len}: {} bytes",
                    frame.len() - 14
                );
                assert_eq!((body.len() - 36) % 8, 0, "options in units of 8 octets");
                assert_eq!(&body[4..20], &t.octets());
                assert_eq!(&body[20..36], &d.octets());
                let rh = if lla.is_some() { 44 } else { 36 };
                assert_eq!(body[rh], 4, "the redirected header option");
                assert_eq!(usize::from(body[rh + 1]) * 8, body.len() - rh);
                let quoted = (body.len() - rh - 8).min(len);
                assert!(body[rh + 8..rh + 8 + quoted].iter().all(|b| *b == 0xab));
            }
        }
    }

    const GATEWAY_LL_TEST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x53, 0x53ff, 0xfe00, 1);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn parsed(f: &[u8]) -> Ipv6<'_> {
        let e = crate::packet::Ethernet::parse(f).unwrap();
        assert_eq!(e.ethertype, crate::packet::ETH_IPV6);
        Ipv6::parse(e.payload).unwrap()
    }

    /// The receiver's check: the sum over pseudo-header and message is all ones.
    fn checksum_ok(ip: &Ipv6<'_>) -> bool {
        let mut v = ip.src.octets().to_vec();
        v.extend_from_slice(&ip.dst.octets());
        v.extend_from_slice(&(ip.payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, ip.next]);
        v.extend_from_slice(ip.payload);
        checksum(&v) == 0
    }

    #[test]
    fn addresses_derived_as_the_rfcs_say() {
        assert_eq!(link_local(M), a("fe80::5054:ff:fe12:3456"));
        assert_eq!(
            link_local(MacAddr([0x02, 0x53, 0x53, 0, 0, 1])),
            a("fe80::53:53ff:fe00:1")
        );
        assert_eq!(
            solicited_node(a("fd00::1:2:3:4567:89ab")),
            a("ff02::1:ff67:89ab")
        );
        assert_eq!(
            multicast_mac(a("ff02::1:ff67:89ab")),
            MacAddr([0x33, 0x33, 0xff, 0x67, 0x89, 0xab])
        );
    }

    #[test]
    fn neighbour_discovery_is_read_and_invalid_messages_are_refused() {
        let (me, gw) = (a("fd00:0:0:1::10"), a("fd00:0:0:1::1"));
        let dst = solicited_node(gw);
        let ns = icmp6_frame(
            multicast_mac(dst),
            M,
            me,
            dst,
            NEIGHBOR_SOLICITATION,
            0,
            &ns_body(gw, M),
        );
        let ip = parsed(&ns);
        assert!(checksum_ok(&ip));
        let nd = Nd::parse(&ip).unwrap();
        assert_eq!(
            (nd.ty, nd.target, nd.lla),
            (NEIGHBOR_SOLICITATION, gw, Some(M))
        );
        assert!(!nd.is_dad(&ip));
        // Duplicate address detection: from ::, no link-layer option.
        let dad = icmp6_frame(
            multicast_mac(solicited_node(me)),
            M,
            Ipv6Addr::UNSPECIFIED,
            solicited_node(me),
            NEIGHBOR_SOLICITATION,
            0,
            &ns_body(me, M)[..20],
        );
        let ip = parsed(&dad);
        let nd = Nd::parse(&ip).unwrap();
        assert!(nd.is_dad(&ip) && nd.lla.is_none() && nd.target == me);
        let na = icmp6_frame(
            M,
            M,
            me,
            gw,
            NEIGHBOR_ADVERTISEMENT,
            0,
            &na_body(me, M, false, true),
        );
        let nd = Nd::parse(&parsed(&na)).unwrap();
        assert_eq!(
            (nd.ty, nd.target, nd.lla, nd.flags),
            (136, me, Some(M), 0b011)
        );
        // Invalid: a hop limit that is not 255 (sent from off-link), a code, a zero-length
        // option, a multicast target, a truncated message, a DAD with a source address.
        let mut hop = ns.clone();
        hop[21] = 64;
        assert!(Nd::parse(&parsed(&hop)).is_none());
        let coded = icmp6_frame(M, M, me, dst, NEIGHBOR_SOLICITATION, 1, &ns_body(gw, M));
        assert!(Nd::parse(&parsed(&coded)).is_none());
        let mut body = ns_body(gw, M);
        body[21] = 0;
        let zero = icmp6_frame(M, M, me, dst, NEIGHBOR_SOLICITATION, 0, &body);
        assert!(Nd::parse(&parsed(&zero)).is_none());
        let mcast = icmp6_frame(M, M, me, dst, NEIGHBOR_SOLICITATION, 0, &ns_body(dst, M));
        assert!(Nd::parse(&parsed(&mcast)).is_none());
        let short = icmp6_frame(M, M, me, dst, NEIGHBOR_SOLICITATION, 0, &[0; 10]);
        assert!(Nd::parse(&parsed(&short)).is_none());
        let bad_dad = icmp6_frame(
            M,
            M,
            Ipv6Addr::UNSPECIFIED,
            dst,
            NEIGHBOR_SOLICITATION,
            0,
            &ns_body(me, M),
        );
        assert!(Nd::parse(&parsed(&bad_dad)).is_none());
        for n in 0..ns.len() {
            // Any truncation: refused or read, never a panic.
            if let Some(e) = crate::packet::Ethernet::parse(&ns[..n]) {
                if let Some(ip) = Ipv6::parse(e.payload) {
                    let _ = Nd::parse(&ip);
                }
            }
        }
    }

    #[test]
    fn a_router_advertisement_carries_the_prefix_for_autoconfiguration() {
        let ll = a("fe80::53:53ff:fe00:1");
        let ad = Advert {
            prefix: a("fd00:0:0:1::"),
            prefix_len: 64,
            router_lifetime: 1800,
            valid_s: 86400,
            preferred_s: 14400,
            mtu: Some(1500),
            mac: MacAddr([2, 0x53, 0x53, 0, 0, 1]),
        };
        let f = icmp6_frame(
            multicast_mac(ALL_NODES),
            ad.mac,
            ll,
            ALL_NODES,
            ROUTER_ADVERTISEMENT,
            0,
            &ra_body(&ad),
        );
        let ip = parsed(&f);
        assert!(checksum_ok(&ip));
        assert_eq!((ip.hop_limit, ip.payload[0]), (255, ROUTER_ADVERTISEMENT));
        let m = ip.payload;
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1800);
        // Options: source link-layer address, MTU, prefix (L and A set).
        assert_eq!(&m[16..24], &[1, 1, 2, 0x53, 0x53, 0, 0, 1]);
        assert_eq!(&m[24..32], &[5, 1, 0, 0, 0, 0, 5, 0xdc]);
        assert_eq!(&m[32..36], &[3, 4, 64, 0xc0]);
        assert_eq!(&m[48..64], &a("fd00:0:0:1::").octets());
    }
}
