//! Small value types shared by many messages, and the serde forms used by the JSON rendering.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':'")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<Self, BadMac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(|| BadMac(s.to_string()))?;
            if p.is_empty() || p.len() > 2 {
                return Err(BadMac(s.to_string()));
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| BadMac(s.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(BadMac(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for opaque byte strings as lowercase hex (`"0a0b"`), so JSON stays readable and exact.
pub mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::Hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_hex(&s)
            .map(Bytes::from)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid hex string {s:?}")))
    }
}

/// Displays bytes as lowercase hex with no separators.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parses hex digits, ignoring ASCII white space; `None` on an odd count or a non-hex character.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(
        digits
            .chunks(2)
            .map(|p| p.iter().fold(0u8, |acc, d| acc << 4 | d))
            .collect(),
    )
}

/// Reserved port numbers (OpenFlow 1.3.5 section 7.2.1, `enum ofp_port_no`).
pub mod port {
    pub const MAX: u32 = 0xffff_ff00;
    pub const IN_PORT: u32 = 0xffff_fff8;
    pub const TABLE: u32 = 0xffff_fff9;
    pub const NORMAL: u32 = 0xffff_fffa;
    pub const FLOOD: u32 = 0xffff_fffb;
    pub const ALL: u32 = 0xffff_fffc;
    pub const CONTROLLER: u32 = 0xffff_fffd;
    pub const LOCAL: u32 = 0xffff_fffe;
    pub const ANY: u32 = 0xffff_ffff;

    /// The ovs-ofctl name of a reserved port, if it is one.
    pub fn name(p: u32) -> Option<&'static str> {
        Some(match p {
            IN_PORT => "IN_PORT",
            TABLE => "TABLE",
            NORMAL => "NORMAL",
            FLOOD => "FLOOD",
            ALL => "ALL",
            CONTROLLER => "CONTROLLER",
            LOCAL => "LOCAL",
            ANY => "ANY",
            _ => return None,
        })
    }
}

/// Special group numbers (`enum ofp_group`).
pub mod group {
    pub const MAX: u32 = 0xffff_ff00;
    pub const ALL: u32 = 0xffff_fffc;
    pub const ANY: u32 = 0xffff_ffff;
}

/// The buffer id that means "no buffered packet".
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// Table number meaning "all tables" in requests.
pub const TABLE_ALL: u8 = 0xff;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mac_round_trip_and_rejects() {
        let m: MacAddr = "02:00:00:00:11:03".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:11:03");
        for bad in [
            "",
            "02:00",
            "02:00:00:00:11:03:04",
            "zz:00:00:00:11:03",
            "002:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(parse_hex("0a ff"), Some(vec![0x0a, 0xff]));
        assert_eq!(parse_hex("0"), None);
        assert_eq!(parse_hex("0g"), None);
        assert_eq!(Hex(&[1, 0xab]).to_string(), "01ab");
    }
}
