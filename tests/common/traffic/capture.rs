//! Packet capture on hosts' interfaces without tcpdump (a python3 sniffer on a raw socket), so
//! a test can assert that an address, e.g. a care-of address, never reaches any host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::super::ovs_fabric::{python3, OvsFabric};
use super::*;

/// Sniffer: `SNIFFER IFNAME OUT_FILE READY_FILE`. One line per IPv4, ARP or RARP frame seen on
/// IFNAME (both directions): `UNIXTIME in|out ETHERTYPE SRC_MAC DST_MAC SRC DST PROTO TTL HEX`,
/// where for ARP/RARP SRC/DST are the sender/target protocol addresses, PROTO is the opcode
/// and TTL 0; HEX is the whole frame. Stops on SIGTERM after draining its socket.
pub const SNIFFER: &str = include_str!("../../traffic/sniffer.py");

/// One frame a [`Capture`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Unix time it was read.
    pub time: f64,
    /// Arrived on the interface (false: sent from it).
    pub incoming: bool,
    /// 0x0800 IPv4, 0x0806 ARP, 0x8035 RARP, 0x86dd IPv6 (its addresses only in `frame`:
    /// `src` and `dst` are 0.0.0.0, `proto` the next header, `ttl` the hop limit).
    pub ethertype: u16,
    pub src_mac: String,
    pub dst_mac: String,
    /// IPv4 source, or the ARP/RARP sender protocol address.
    pub src: Ipv4Addr,
    /// IPv4 destination, or the ARP/RARP target protocol address.
    pub dst: Ipv4Addr,
    /// IP protocol, or the ARP/RARP opcode.
    pub proto: u16,
    /// IPv4 TTL (0 for ARP/RARP).
    pub ttl: u8,
    /// The whole frame.
    pub frame: Vec<u8>,
}

impl Packet {
    pub fn is_ipv4(&self) -> bool {
        self.ethertype == 0x0800
    }

    /// Whether this is an ICMP echo request to `ip` that the capturing host received.
    pub fn is_echo_request_to(&self, ip: Ipv4Addr) -> bool {
        self.incoming
            && self.is_ipv4()
            && self.proto == 1
            && self.dst == ip
            && self.frame.get(34) == Some(&8)
    }

    /// Whether the address occurs anywhere after the Ethernet header: IP source or
    /// destination, ARP fields, an ICMP error's quoted header, a redirect's gateway, payload.
    pub fn mentions(&self, ip: impl Into<IpAddr>) -> bool {
        let o: Vec<u8> = match ip.into() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        self.frame
            .get(14..)
            .is_some_and(|b| b.windows(o.len()).any(|w| w == o.as_slice()))
    }
}

/// Parses one line of [`SNIFFER`]'s output.
pub fn parse_capture_line(line: &str) -> Option<Packet> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 10 {
        return None;
    }
    let frame = (0..f[9].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(f[9].get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Packet {
        time: f[0].parse().ok()?,
        incoming: match f[1] {
            "in" => true,
            "out" => false,
            _ => return None,
        },
        ethertype: u16::from_str_radix(f[2], 16).ok()?,
        src_mac: f[3].to_string(),
        dst_mac: f[4].to_string(),
        src: f[5].parse().ok()?,
        dst: f[6].parse().ok()?,
        proto: f[7].parse().ok()?,
        ttl: f[8].parse().ok()?,
        frame,
    })
}

/// A sniffer (python3, AF_PACKET) on one host's `eth0` inside its namespace, or on the
/// switch side of its veth, recording every IPv4, ARP and RARP frame in both directions.
pub struct Capture {
    pub host: String,
    /// The interface, as seen where the sniffer runs.
    pub ifname: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Captures on `host`'s `eth0`, inside its namespace: what the host receives and sends.
    pub fn start(fabric: &OvsFabric, host: &str) -> Result<Capture, String> {
        let mut c = Self::spawn(fabric, host, true)?;
        c.wait_ready()?;
        Ok(c)
    }

    /// Captures on the bridge end of `host`'s veth, in the root namespace: the frames exactly
    /// as the host put them on the wire (`incoming`) and as the switch delivers them
    /// (outgoing). Survives [`OvsFabric::move_host`] (the veth stays the same).
    pub fn start_switch_side(fabric: &OvsFabric, host: &str) -> Result<Capture, String> {
        let mut c = Self::spawn(fabric, host, false)?;
        c.wait_ready()?;
        Ok(c)
    }

    /// One capture inside every host's namespace, started together.
    pub fn start_all(fabric: &OvsFabric) -> Result<CaptureSet, String> {
        let mut caps = BTreeMap::new();
        for h in fabric.hosts() {
            caps.insert(h.name.clone(), Self::spawn(fabric, &h.name, true)?);
        }
        for c in caps.values_mut() {
            c.wait_ready()?;
        }
        Ok(CaptureSet { caps })
    }

    fn spawn(fabric: &OvsFabric, host: &str, inside: bool) -> Result<Capture, String> {
        let dir = tempdir(fabric, &format!("cap-{host}"))?;
        let d = dir.path();
        let py = write_script(d, "sniffer.py", SNIFFER)?;
        let (out, ready, err) = (d.join("packets"), d.join("ready"), d.join("sniffer.err"));
        let ifname = if inside {
            "eth0".to_string()
        } else {
            fabric.host(host).veth.clone()
        };
        let args = [python3(), p(&py), &ifname, p(&out), p(&ready)];
        let mut cmd = if inside {
            fabric.command(host, &args)
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file(&err)?)
            .spawn()
            .map_err(|e| format!("starting the sniffer for {host}: {e}"))?;
        Ok(Capture {
            host: host.to_string(),
            ifname,
            child,
            out,
            err,
            _dir: dir,
        })
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let ready = self.out.with_file_name("ready");
        let what = format!("sniffer on {} ({})", self.host, self.ifname);
        wait_for_file(&ready, &mut self.child, Duration::from_secs(10), &what)
            .map_err(|e| format!("{e}: {}", read(&self.err).trim()))
    }

    /// What it recorded so far (it keeps running).
    pub fn packets(&self) -> Vec<Packet> {
        read(&self.out)
            .lines()
            .filter_map(parse_capture_line)
            .collect()
    }

    /// Stops the sniffer (after it drained its socket) and returns everything it recorded.
    pub fn stop(mut self) -> Result<Vec<Packet>, String> {
        let early = self.child.try_wait().ok().flatten();
        let status = terminate(&mut self.child, "TERM", Duration::from_secs(3));
        if early.is_some() || !status.is_some_and(|s| s.success()) {
            return Err(format!(
                "sniffer on {} ({}) {}: {}",
                self.host,
                self.ifname,
                if early.is_some() {
                    format!("died early ({status:?})")
                } else {
                    format!("did not stop cleanly ({status:?})")
                },
                read(&self.err).trim()
            ));
        }
        let text = read(&self.out);
        let drops: u64 = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("# drops "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "sniffer on {} ({}) left no drop count",
                    self.host, self.ifname
                )
            })?;
        if drops > 0 {
            return Err(format!(
                "sniffer on {} ({}) dropped {drops} frames: its capture proves nothing by what it lacks",
                self.host, self.ifname
            ));
        }
        Ok(self.packets())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        terminate(&mut self.child, "KILL", Duration::from_secs(1));
    }
}

/// One [`Capture`] per host ([`Capture::start_all`]).
pub struct CaptureSet {
    caps: BTreeMap<String, Capture>,
}

impl CaptureSet {
    pub fn hosts(&self) -> BTreeSet<String> {
        self.caps.keys().cloned().collect()
    }

    /// Stops every sniffer: host name → its packets.
    pub fn stop(self) -> Result<BTreeMap<String, Vec<Packet>>, String> {
        let mut all = BTreeMap::new();
        let mut errors = Vec::new();
        for (h, c) in self.caps {
            match c.stop() {
                Ok(p) => {
                    all.insert(h, p);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(all)
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// Every (host, packet) of a [`CaptureSet::stop`] result that mentions `ip` anywhere.
pub fn mentioning(
    captures: &BTreeMap<String, Vec<Packet>>,
    ip: impl Into<IpAddr>,
) -> Vec<(String, Packet)> {
    let ip = ip.into();
    captures
        .iter()
        .flat_map(|(h, ps)| {
            ps.iter()
                .filter(|p| p.mentions(ip))
                .map(move |p| (h.clone(), p.clone()))
        })
        .collect()
}
