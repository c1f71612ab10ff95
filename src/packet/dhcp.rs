//! UDP and DHCPv4 (RFC 2131, options RFC 2132), as far as the controller's DHCP server needs:
//! a client's DISCOVER, REQUEST, INFORM, RELEASE and DECLINE read, OFFER, ACK and NAK written.
//! Parsing never panics and refuses what is not well formed.

use std::net::Ipv4Addr;

use ofp13::MacAddr;

use super::{checksum, ip_at, mac_at, u16_at};

pub const PORT_SERVER: u16 = 67;
pub const PORT_CLIENT: u16 = 68;

/// DHCP message types (option 53).
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const DECLINE: u8 = 4;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;
pub const INFORM: u8 = 8;

/// Options (RFC 2132).
pub const OPT_PAD: u8 = 0;
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_RENEWAL_TIME: u8 = 58;
pub const OPT_REBINDING_TIME: u8 = 59;
pub const OPT_END: u8 = 255;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// The broadcast bit of `flags`: the client cannot receive unicast before it is configured.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// The fixed part of a BOOTP message, before the magic cookie.
const FIXED: usize = 236;
/// Replies are padded to BOOTP's minimum message size (RFC 1542 2.1): some clients drop
/// shorter ones.
const MIN_MESSAGE: usize = 300;

/// A UDP datagram's ports and payload (cut to the header's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> Udp<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        let len = usize::from(u16_at(b, 4)?);
        if len < 8 || len > b.len() {
            return None;
        }
        Some(Udp {
            src_port: u16_at(b, 0)?,
            dst_port: u16_at(b, 2)?,
            payload: b.get(8..len)?,
        })
    }
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` with its checksum (over the IPv4
/// pseudo-header; a computed 0 is sent as 0xffff, RFC 768).
pub fn udp_datagram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut d = Vec::with_capacity(usize::from(len));
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12 + d.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, super::IP_UDP]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&d);
    let c = match checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// A client's DHCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp<'a> {
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// The client's hardware address (Ethernet only).
    pub chaddr: MacAddr,
    /// Option 53.
    pub message_type: u8,
    /// The options, after the magic cookie.
    pub options: &'a [u8],
}

impl<'a> Dhcp<'a> {
    /// A BOOTREQUEST over Ethernet with the DHCP magic cookie and a message type; `None` for
    /// anything else (a reply, BOOTP without DHCP, malformed options).
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        if *b.first()? != BOOTREQUEST || *b.get(1)? != 1 || *b.get(2)? != 6 {
            return None;
        }
        if b.get(FIXED..FIXED + 4)? != MAGIC {
            return None;
        }
        let options = b.get(FIXED + 4..)?;
        let message_type = *option_in(options, OPT_MESSAGE_TYPE)?.first()?;
        Some(Dhcp {
            xid: u32::from_be_bytes(b.get(4..8)?.try_into().ok()?),
            secs: u16_at(b, 8)?,
            flags: u16_at(b, 10)?,
            ciaddr: ip_at(b, 12)?,
            giaddr: ip_at(b, 24)?,
            chaddr: mac_at(b, 28)?,
            message_type,
            options,
        })
    }

    /// The value of option `code`, if present and well formed.
    pub fn option(&self, code: u8) -> Option<&'a [u8]> {
        option_in(self.options, code)
    }

    /// Option 50, the address the client asks for.
    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.option(OPT_REQUESTED_IP).and_then(|v| ip_at(v, 0))
    }

    /// Option 54, the server the client chose.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.option(OPT_SERVER_ID).and_then(|v| ip_at(v, 0))
    }
}

/// Finds option `code` in `options`; `None` if it is absent or the options run past their end
/// before it (a malformed list is not read further).
fn option_in(options: &[u8], code: u8) -> Option<&[u8]> {
    let mut i = 0;
    while let Some(&c) = options.get(i) {
        match c {
            OPT_PAD => i += 1,
            OPT_END => return None,
            _ => {
                let len = usize::from(*options.get(i + 1)?);
                let value = options.get(i + 2..i + 2 + len)?;
                if c == code {
                    return Some(value);
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// A server's reply to `req`: message type `ty`, the address given `yiaddr`, from server
/// `server`, with `options` (code, value) after the message type and server identifier.
pub fn reply(
    req: &Dhcp<'_>,
    ty: u8,
    yiaddr: Ipv4Addr,
    server: Ipv4Addr,
    options: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    // secs 0; flags and giaddr echoed (RFC 2131 table 3).
    let ciaddr = if ty == NAK {
        Ipv4Addr::UNSPECIFIED
    } else {
        req.ciaddr
    };
    let mut m = header(BOOTREPLY, req.xid, req.flags, ciaddr, req.chaddr, ty);
    if ty != NAK {
        m[16..20].copy_from_slice(&yiaddr.octets());
    }
    m[24..28].copy_from_slice(&req.giaddr.octets());
    m.extend_from_slice(&[OPT_SERVER_ID, 4]);
    m.extend_from_slice(&server.octets());
    for (code, value) in options {
        // Longer values would be split (RFC 3396); nothing servswitch sends is.
        let Ok(len) = u8::try_from(value.len()) else {
            continue;
        };
        m.extend_from_slice(&[*code, len]);
        m.extend_from_slice(value);
    }
    m.push(OPT_END);
    if m.len() < MIN_MESSAGE {
        m.resize(MIN_MESSAGE, 0);
    }
    m
}

/// A client's message (for tests and the load generator): message type `ty` from `chaddr`
/// with transaction `xid`, `ciaddr`, `flags` and `options`.
pub fn request(
    ty: u8,
    chaddr: MacAddr,
    xid: u32,
    ciaddr: Ipv4Addr,
    flags: u16,
    options: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut m = header(BOOTREQUEST, xid, flags, ciaddr, chaddr, ty);
    for (code, value) in options {
        m.push(*code);
        m.push(value.len() as u8);
        m.extend_from_slice(value);
    }
    m.push(OPT_END);
    m
}

/// A BOOTP message over Ethernet up to its DHCP message type: operation `op`, transaction
/// `xid`, `flags`, `ciaddr`, `chaddr`; other addresses 0.
fn header(op: u8, xid: u32, flags: u16, ciaddr: Ipv4Addr, chaddr: MacAddr, ty: u8) -> Vec<u8> {
    let mut m = vec![0u8; FIXED];
    m[0] = op;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[10..12].copy_from_slice(&flags.to_be_bytes());
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[28..34].copy_from_slice(&chaddr.0);
    m.extend_from_slice(&MAGIC);
    m.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, ty]);
    m
}

/// A server's reply as a client reads it: (message type, yiaddr, options).
pub fn read_reply(b: &[u8]) -> Option<(u8, Ipv4Addr, &[u8])> {
    if *b.first()? != BOOTREPLY || b.get(FIXED..FIXED + 4)? != MAGIC {
        return None;
    }
    let options = b.get(FIXED + 4..)?;
    let ty = *option_in(options, OPT_MESSAGE_TYPE)?.first()?;
    Some((ty, ip_at(b, 16)?, options))
}

/// Option `code` of a reply's options (see [`read_reply`]).
pub fn reply_option(options: &[u8], code: u8) -> Option<&[u8]> {
    option_in(options, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 7]);

    #[test]
    fn a_request_is_read_with_its_options() {
        let b = request(
            REQUEST,
            C,
            0xdead_beef,
            Ipv4Addr::UNSPECIFIED,
            FLAG_BROADCAST,
            &[
                (OPT_REQUESTED_IP, vec![10, 0, 1, 10]),
                (OPT_SERVER_ID, vec![10, 0, 1, 1]),
            ],
        );
        let d = Dhcp::parse(&b).unwrap();
        assert_eq!((d.message_type, d.xid, d.chaddr), (REQUEST, 0xdead_beef, C));
        assert_eq!(d.flags, FLAG_BROADCAST);
        assert_eq!(d.requested_ip(), Some(Ipv4Addr::new(10, 0, 1, 10)));
        assert_eq!(d.server_id(), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(d.option(OPT_DNS), None);
    }

    #[test]
    fn malformed_messages_are_refused_not_read_past_their_end() {
        let good = request(DISCOVER, C, 1, Ipv4Addr::UNSPECIFIED, 0, &[]);
        for n in 0..good.len() {
            // Cut anywhere before the message type's value: refused, never a panic.
            let cut = &good[..n];
            assert!(n > FIXED + 6 || Dhcp::parse(cut).is_none(), "cut at {n}");
        }
        let mut reply_op = good.clone();
        reply_op[0] = BOOTREPLY;
        assert!(Dhcp::parse(&reply_op).is_none());
        let mut no_magic = good.clone();
        no_magic[FIXED] = 0;
        assert!(Dhcp::parse(&no_magic).is_none());
        // An option whose length runs past the end hides everything after it.
        let mut runaway = good[..FIXED + 4].to_vec();
        runaway.extend_from_slice(&[OPT_REQUESTED_IP, 200, 1, 2]);
        assert!(Dhcp::parse(&runaway).is_none());
        for b in [&[][..], &[1u8; 3][..], &[0xffu8; 400][..]] {
            assert!(Dhcp::parse(b).is_none());
            assert!(Udp::parse(b).is_none());
        }
    }

    #[test]
    fn a_reply_carries_the_lease_and_a_udp_checksum_that_verifies() {
        let b = request(DISCOVER, C, 7, Ipv4Addr::UNSPECIFIED, 0, &[]);
        let d = Dhcp::parse(&b).unwrap();
        let gw = Ipv4Addr::new(10, 0, 1, 1);
        let yi = Ipv4Addr::new(10, 0, 1, 10);
        let r = reply(
            &d,
            OFFER,
            yi,
            gw,
            &[(OPT_LEASE_TIME, 3600u32.to_be_bytes().to_vec())],
        );
        assert_eq!(r.len(), MIN_MESSAGE);
        let (ty, addr, opts) = read_reply(&r).unwrap();
        assert_eq!((ty, addr), (OFFER, yi));
        assert_eq!(reply_option(opts, OPT_SERVER_ID), Some(&gw.octets()[..]));
        assert_eq!(
            reply_option(opts, OPT_LEASE_TIME),
            Some(&3600u32.to_be_bytes()[..])
        );
        assert_eq!(&r[28..34], &C.0);
        assert_eq!(u32::from_be_bytes(r[4..8].try_into().unwrap()), 7);

        let dst = Ipv4Addr::BROADCAST;
        let u = udp_datagram(gw, dst, PORT_SERVER, PORT_CLIENT, &r);
        let parsed = Udp::parse(&u).unwrap();
        assert_eq!((parsed.src_port, parsed.dst_port), (67, 68));
        assert_eq!(parsed.payload, &r[..]);
        // The receiver's check: the sum over pseudo-header and datagram is all ones.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&gw.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(u.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&u);
        assert_eq!(checksum(&pseudo), 0);
    }

    #[test]
    fn a_nak_gives_no_address() {
        let b = request(REQUEST, C, 9, Ipv4Addr::new(10, 0, 1, 99), 0, &[]);
        let d = Dhcp::parse(&b).unwrap();
        let r = reply(
            &d,
            NAK,
            Ipv4Addr::new(10, 0, 1, 10),
            Ipv4Addr::new(10, 0, 1, 1),
            &[],
        );
        let (ty, addr, _) = read_reply(&r).unwrap();
        assert_eq!((ty, addr), (NAK, Ipv4Addr::UNSPECIFIED));
        assert_eq!(&r[12..16], &[0; 4]);
    }
}
