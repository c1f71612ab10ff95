//! The controller's DHCPv4 server (issue 17, docs/dualstack.md): static leases for the hosts
//! of subnets with `dhcp = true`, the same wherever the host is. A VM that renews or rebinds
//! after moving to a foreign subnet is given its home address, mask, gateway and DNS again,
//! so the move stays transparent. Pure: [`answer`] decides, [`reply_frame`] writes; the router
//! finds the lease and sends the frame.

use std::net::Ipv4Addr;

use ofp13::MacAddr;

use crate::fabric::plan::GATEWAY_MAC;
use crate::fabric::topology::SubnetConf;
use crate::packet::dhcp::{self, Dhcp};
use crate::packet::{self, Ipv4};

/// The lease time when a subnet names none.
pub const DEFAULT_LEASE_S: u32 = 3600;

/// A host's lease: its address in its home subnet, and that subnet's settings.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub ip: Ipv4Addr,
    pub subnet: &'a SubnetConf,
    gateway: Ipv4Addr,
    mask: u32,
}

impl<'a> Lease<'a> {
    /// `ip`'s lease in `subnet`; `None` if the subnet has no IPv4 prefix and gateway.
    pub fn new(ip: Ipv4Addr, subnet: &'a SubnetConf) -> Option<Lease<'a>> {
        Some(Lease {
            ip,
            subnet,
            gateway: subnet.gateway?,
            mask: subnet.prefix?.mask(),
        })
    }
}

impl Lease<'_> {
    fn lease_s(&self) -> u32 {
        self.subnet.lease_s.unwrap_or(DEFAULT_LEASE_S)
    }

    /// The server identifier: the home gateway's address (a renewal is unicast to it, and
    /// reaches the controller wherever the VM is).
    pub fn server(&self) -> Ipv4Addr {
        self.gateway
    }
}

/// What the server does with a request: the reply's type and address, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    /// An INFORM's acknowledgement: configuration only, no address, no lease time.
    Informed,
    Nak,
    /// Not for this server (the client chose another), or nothing to say (RELEASE,
    /// DECLINE of a static lease).
    Silent,
}

/// RFC 2131 section 4.3, for a static lease.
pub fn answer(req: &Dhcp<'_>, lease: &Lease<'_>) -> Answer {
    let mine = |a: Ipv4Addr| {
        if a == lease.ip {
            Answer::Ack(lease.ip)
        } else {
            Answer::Nak
        }
    };
    match req.message_type {
        dhcp::DISCOVER => Answer::Offer(lease.ip),
        dhcp::REQUEST => match (req.server_id(), req.requested_ip()) {
            // SELECTING: the client answers one server's offer.
            (Some(s), _) if s != lease.server() => Answer::Silent,
            (Some(_), Some(r)) => mine(r),
            (Some(_), None) => Answer::Nak,
            // INIT-REBOOT: it asks to keep an address it remembers.
            (None, Some(r)) if req.ciaddr.is_unspecified() => mine(r),
            // RENEWING or REBINDING: its address is in ciaddr.
            (None, _) if !req.ciaddr.is_unspecified() => mine(req.ciaddr),
            (None, _) => Answer::Nak,
        },
        dhcp::INFORM => Answer::Informed,
        _ => Answer::Silent,
    }
}

/// The frame that carries `answer` to the client of `req` (whose frame came from `client`),
/// or `None` for [`Answer::Silent`]. Addressed as RFC 2131 4.1 says for a server without
/// relay: a NAK broadcast; to `ciaddr` when the client has one; broadcast when it asked so;
/// else to the address given, at the client's MAC.
pub fn reply_frame(
    req: &Dhcp<'_>,
    client: MacAddr,
    lease: &Lease<'_>,
    answer: Answer,
) -> Option<Vec<u8>> {
    let s = lease.subnet;
    let mut options = vec![
        (dhcp::OPT_SUBNET_MASK, lease.mask.to_be_bytes().to_vec()),
        (dhcp::OPT_ROUTER, lease.gateway.octets().to_vec()),
    ];
    if !s.dns.is_empty() {
        options.push((
            dhcp::OPT_DNS,
            s.dns.iter().flat_map(|d| d.octets()).collect(),
        ));
    }
    let timed = |options: &mut Vec<(u8, Vec<u8>)>| {
        let t = lease.lease_s();
        options.push((dhcp::OPT_LEASE_TIME, t.to_be_bytes().to_vec()));
        options.push((dhcp::OPT_RENEWAL_TIME, (t / 2).to_be_bytes().to_vec()));
        options.push((dhcp::OPT_REBINDING_TIME, (t / 8 * 7).to_be_bytes().to_vec()));
    };
    let (ty, yiaddr) = match answer {
        Answer::Silent => return None,
        Answer::Offer(a) => {
            timed(&mut options);
            (dhcp::OFFER, a)
        }
        Answer::Ack(a) => {
            timed(&mut options);
            (dhcp::ACK, a)
        }
        Answer::Informed => (dhcp::ACK, Ipv4Addr::UNSPECIFIED),
        Answer::Nak => {
            options.clear();
            (dhcp::NAK, Ipv4Addr::UNSPECIFIED)
        }
    };
    let dst = if ty == dhcp::NAK {
        Ipv4Addr::BROADCAST
    } else if !req.ciaddr.is_unspecified() {
        req.ciaddr
    } else if req.flags & dhcp::FLAG_BROADCAST != 0 {
        Ipv4Addr::BROADCAST
    } else {
        yiaddr
    };
    let eth_dst = if dst == Ipv4Addr::BROADCAST {
        MacAddr::BROADCAST
    } else {
        client
    };
    let msg = dhcp::reply(req, ty, yiaddr, lease.server(), &options);
    let udp = dhcp::udp_datagram(
        lease.server(),
        dst,
        dhcp::PORT_SERVER,
        dhcp::PORT_CLIENT,
        &msg,
    );
    let ip = packet::ipv4_packet(lease.server(), dst, packet::IP_UDP, 64, 0, false, &udp);
    Some(packet::eth_frame(
        eth_dst,
        GATEWAY_MAC,
        packet::ETH_IPV4,
        &ip,
    ))
}

/// The DHCP message a frame's IPv4 packet carries to a server, if it does.
pub fn request_in<'a>(ip: &Ipv4<'a>) -> Option<Dhcp<'a>> {
    if ip.protocol != packet::IP_UDP {
        return None;
    }
    let udp = dhcp::Udp::parse(ip.payload)?;
    if udp.dst_port != dhcp::PORT_SERVER {
        return None;
    }
    Dhcp::parse(udp.payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::topology::Prefix;

    const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 7]);

    fn subnet() -> SubnetConf {
        SubnetConf {
            name: "s1".into(),
            switch: "r1".into(),
            prefix: Some(Prefix {
                addr: Ipv4Addr::new(10, 0, 1, 0),
                len: 24,
            }),
            gateway: Some(Ipv4Addr::new(10, 0, 1, 1)),
            ports: None,
            care_of_pool: None,
            prefix6: None,
            gateway6: None,
            care_of_pool6: None,
            dhcp: true,
            dns: vec![Ipv4Addr::new(10, 0, 1, 53), Ipv4Addr::new(10, 0, 2, 53)],
            lease_s: Some(600),
        }
    }

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 99);

    fn ask(ty: u8, ciaddr: Ipv4Addr, opts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        dhcp::request(ty, C, 42, ciaddr, 0, opts)
    }

    fn decide(b: &[u8]) -> Answer {
        let s = subnet();
        answer(&Dhcp::parse(b).unwrap(), &Lease::new(ME, &s).unwrap())
    }

    #[test]
    fn every_client_state_gets_what_rfc_2131_says() {
        let none = Ipv4Addr::UNSPECIFIED;
        let req = |a: Ipv4Addr| (dhcp::OPT_REQUESTED_IP, a.octets().to_vec());
        let sid = |a: Ipv4Addr| (dhcp::OPT_SERVER_ID, a.octets().to_vec());
        assert_eq!(decide(&ask(dhcp::DISCOVER, none, &[])), Answer::Offer(ME));
        // Asking for another address in a DISCOVER still gets its own.
        assert_eq!(
            decide(&ask(dhcp::DISCOVER, none, &[req(OTHER)])),
            Answer::Offer(ME)
        );
        // SELECTING.
        assert_eq!(
            decide(&ask(dhcp::REQUEST, none, &[req(ME), sid(GW)])),
            Answer::Ack(ME)
        );
        assert_eq!(
            decide(&ask(dhcp::REQUEST, none, &[req(OTHER), sid(GW)])),
            Answer::Nak
        );
        assert_eq!(
            decide(&ask(dhcp::REQUEST, none, &[req(ME), sid(OTHER)])),
            Answer::Silent
        );
        // INIT-REBOOT: an address remembered from another subnet is refused.
        assert_eq!(
            decide(&ask(dhcp::REQUEST, none, &[req(ME)])),
            Answer::Ack(ME)
        );
        assert_eq!(
            decide(&ask(dhcp::REQUEST, none, &[req(OTHER)])),
            Answer::Nak
        );
        // RENEWING / REBINDING.
        assert_eq!(decide(&ask(dhcp::REQUEST, ME, &[])), Answer::Ack(ME));
        assert_eq!(decide(&ask(dhcp::REQUEST, OTHER, &[])), Answer::Nak);
        assert_eq!(decide(&ask(dhcp::REQUEST, none, &[])), Answer::Nak);
        assert_eq!(decide(&ask(dhcp::INFORM, ME, &[])), Answer::Informed);
        for ty in [dhcp::RELEASE, dhcp::DECLINE, dhcp::OFFER, dhcp::ACK, 99] {
            assert_eq!(decide(&ask(ty, ME, &[])), Answer::Silent, "type {ty}");
        }
    }

    fn sent(b: &[u8], a: Answer) -> (MacAddr, Ipv4Addr, u8, Ipv4Addr, Vec<u8>) {
        let s = subnet();
        let f = reply_frame(&Dhcp::parse(b).unwrap(), C, &Lease::new(ME, &s).unwrap(), a).unwrap();
        let eth = packet::Ethernet::parse(&f).unwrap();
        assert_eq!((eth.src, eth.ethertype), (GATEWAY_MAC, packet::ETH_IPV4));
        let ip = Ipv4::parse(eth.payload).unwrap();
        assert_eq!(ip.src, GW);
        let udp = dhcp::Udp::parse(ip.payload).unwrap();
        assert_eq!((udp.src_port, udp.dst_port), (67, 68));
        let (ty, yi, opts) = dhcp::read_reply(udp.payload).unwrap();
        (eth.dst, ip.dst, ty, yi, opts.to_vec())
    }

    #[test]
    fn replies_carry_the_home_lease_and_are_addressed_as_the_client_can_receive_them() {
        let none = Ipv4Addr::UNSPECIFIED;
        let (mac, dst, ty, yi, opts) = sent(&ask(dhcp::DISCOVER, none, &[]), Answer::Offer(ME));
        assert_eq!((mac, dst, ty, yi), (C, ME, dhcp::OFFER, ME));
        let o = |c| dhcp::reply_option(&opts, c).map(<[u8]>::to_vec);
        assert_eq!(o(dhcp::OPT_SUBNET_MASK), Some(vec![255, 255, 255, 0]));
        assert_eq!(o(dhcp::OPT_ROUTER), Some(GW.octets().to_vec()));
        assert_eq!(o(dhcp::OPT_DNS), Some(vec![10, 0, 1, 53, 10, 0, 2, 53]));
        assert_eq!(o(dhcp::OPT_SERVER_ID), Some(GW.octets().to_vec()));
        assert_eq!(o(dhcp::OPT_LEASE_TIME), Some(600u32.to_be_bytes().to_vec()));
        assert_eq!(
            o(dhcp::OPT_RENEWAL_TIME),
            Some(300u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            o(dhcp::OPT_REBINDING_TIME),
            Some(525u32.to_be_bytes().to_vec())
        );

        let bcast = dhcp::request(dhcp::DISCOVER, C, 1, none, dhcp::FLAG_BROADCAST, &[]);
        let (mac, dst, ..) = sent(&bcast, Answer::Offer(ME));
        assert_eq!((mac, dst), (MacAddr::BROADCAST, Ipv4Addr::BROADCAST));
        let (mac, dst, ty, ..) = sent(&ask(dhcp::REQUEST, ME, &[]), Answer::Ack(ME));
        assert_eq!((mac, dst, ty), (C, ME, dhcp::ACK));
        let (mac, dst, ty, yi, opts) = sent(&ask(dhcp::REQUEST, OTHER, &[]), Answer::Nak);
        assert_eq!(
            (mac, dst, ty, yi),
            (MacAddr::BROADCAST, Ipv4Addr::BROADCAST, dhcp::NAK, none)
        );
        assert_eq!(dhcp::reply_option(&opts, dhcp::OPT_LEASE_TIME), None);
        let (_, _, ty, yi, opts) = sent(&ask(dhcp::INFORM, ME, &[]), Answer::Informed);
        assert_eq!((ty, yi), (dhcp::ACK, none));
        assert_eq!(dhcp::reply_option(&opts, dhcp::OPT_LEASE_TIME), None);
        assert!(dhcp::reply_option(&opts, dhcp::OPT_ROUTER).is_some());
    }
}
