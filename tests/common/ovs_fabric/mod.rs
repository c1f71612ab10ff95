//! Builds a topology file as a real Open vSwitch fabric: one userspace-datapath bridge per
//! switch, a veth pair per link, one network namespace with a veth per host, with OpenFlow
//! port numbers equal to the topology's.
//!
//! Links are veth pairs, not patch ports, because patch ports are not links: a patch port
//! never goes down (a test cannot cut one: [`OvsFabric::set_link`]), and a packet crossing
//! one is translated within the sending bridge's datapath flow, so a PACKET_OUT that reaches
//! a select group in the next bridge is lost (Open vSwitch 3.1's userspace datapath picks a
//! select group's bucket by recirculating on a datapath hash, which a packet-out crossing a
//! patch port does not survive: measured, docs/failover.md). Over a veth each bridge
//! receives the packet as a switch would. A test whose fabric has no equal-cost paths and
//! that measures outages tight enough for the veths' extra kernel hop per link to show on
//! this 2-core machine (tests/ovs_busy.rs: one outage of 3 pings at 10 ms where it allows 2,
//! seen once in CI) may ask for patch ports ([`Links::Patch`]). Everything it creates is named with a prefix
//! that belongs to one harness instance (`ssfNN…` for bridges and veth ends,
//! `ss-fNN-…` for namespaces) and is removed again on drop, also when a test panics.
//!
//! The two digits NN are a slot, held by binding the abstract Unix socket
//! `servswitch-ovs-fabric-NN`: two harnesses (threads or test binaries) never share a slot, and
//! the kernel releases it when a process dies, so a constructor that gets a slot knows that
//! whatever still carries the slot's prefix is a leftover and removes it first.
//!
//! Nothing here touches a real interface: bridges are `datapath_type=netdev` and get only veth
//! ends whose other side is another bridge of ours or lives in a namespace of ours; no link
//! end has an address (IPv6 off); the bridges' internal ports stay down without addresses;
//! the controller target is always 127.0.0.1.
//!
//! By concern: [`sys`] runs the tools (ovs-vsctl, ip, python3) and says whether they are
//! here; [`slots`] owns the names and their cleanup; this file builds and tears down a
//! fabric; [`observe`] reads it (tables, traces, ports, pings, a host's view); [`moves`]
//! moves hosts and sends their announcements (QEMU's RARP rounds, armed frames).
//!
//! Each test binary compiles this as its own module and uses part of it, hence
//! `allow(dead_code)`.
#![allow(dead_code)]

mod moves;
mod observe;
mod slots;
mod sys;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use servswitch::fabric::topology::Topology;

// What the test binaries use of the submodules, by the paths they used before the split;
// each binary uses some of them.
use slots::*;
use sys::*;
#[allow(unused_imports)]
pub use {
    super::controller::ControllerProcess,
    moves::{rarp_frame, Announcer},
    observe::{parse_ping, HostState},
    slots::leftovers,
    sys::{available, python3, run, run_with_input, unavailable_reason},
};

/// Longest Linux interface name.
pub(super) const IFNAMSIZ: usize = 15;

/// Every ovs-vsctl call gives up after this many seconds instead of hanging.
pub(super) const VSCTL_TIMEOUT: &str = "--timeout=20";

/// Whether the hosts of fabrics built from now on (in this test process) accept router
/// advertisements (and so autoconfigure addresses, which the controller learns from their
/// duplicate address detection). Tests that compare tables with a plan of silent hosts turn
/// it off.
static ACCEPT_RA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// See [`ACCEPT_RA`].
pub fn hosts_accept_router_advertisements(on: bool) {
    ACCEPT_RA.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// One host of the fabric.
#[derive(Debug, Clone)]
pub struct FabricHost {
    pub name: String,
    /// The network namespace, `ss-fNN-<host>`.
    pub ns: String,
    /// The veth end on the bridge (root namespace). Inside the namespace it is `eth0`.
    pub veth: String,
    pub mac: String,
    /// Addresses with the prefix length of their subnet.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses the topology gives it, with their prefix length (configured without
    /// duplicate address detection; its default IPv6 route comes from router advertisements).
    pub addrs6: Vec<(std::net::Ipv6Addr, u8)>,
    pub gateway: Ipv4Addr,
    /// Where it is attached now.
    pub switch: String,
    pub port: u32,
}

/// What joins two bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A veth pair: a real link (it can be cut; each bridge receives what crosses it).
    Veth,
    /// A pair of OVS patch ports: cheaper, but it never goes down, and a PACKET_OUT
    /// crossing it into a select group is lost. Only for fabrics without multipath.
    Patch,
}

/// One end of a link: a veth end (or patch port) on a bridge.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    pub switch: String,
    pub port: u32,
    /// The veth end's name (in the root namespace, on the bridge).
    pub name: String,
}

/// A topology built as Open vSwitch bridges, veths and namespaces.
pub struct OvsFabric {
    topology: Topology,
    slot: u32,
    _lock: UnixListener,
    bridges: BTreeMap<String, String>,
    hosts: BTreeMap<String, FabricHost>,
    links: Vec<(LinkEnd, LinkEnd)>,
    link_kind: Links,
    controller_port: Option<u16>,
    torn_down: bool,
}

/// Picks `preferred` if it is a valid, unused interface name, else `fallback`.
fn pick_name(used: &mut BTreeSet<String>, preferred: String, fallback: String) -> String {
    let ok = preferred.len() <= IFNAMSIZ
        && preferred
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !used.contains(&preferred);
    let name = if ok { preferred } else { fallback };
    assert!(name.len() <= IFNAMSIZ, "{name} is longer than {IFNAMSIZ}");
    assert!(used.insert(name.clone()), "name {name} used twice");
    name
}

impl OvsFabric {
    /// Loads a topology file and builds it; see [`OvsFabric::build`].
    pub fn build_file(path: &Path, controller_port: Option<u16>) -> Result<OvsFabric, String> {
        let t = Topology::load(path).map_err(|e| e.to_string())?;
        Self::build(&t, controller_port)
    }

    /// Builds the fabric. With `controller_port`, every bridge gets the controller
    /// `tcp:127.0.0.1:PORT` (out-of-band, max_backoff 1000 ms). On error everything created so
    /// far is removed again.
    pub fn build(topology: &Topology, controller_port: Option<u16>) -> Result<OvsFabric, String> {
        Self::build_with(topology, controller_port, Links::Veth)
    }

    /// [`OvsFabric::build`] with the given kind of links.
    pub fn build_with(
        topology: &Topology,
        controller_port: Option<u16>,
        link_kind: Links,
    ) -> Result<OvsFabric, String> {
        let (slot, lock) = (0..SLOTS)
            .find_map(|s| slot_lock(s).map(|l| (s, l)))
            .ok_or("ovs_fabric: all 100 slots are taken")?;
        // Leftovers with our own prefix (a run killed before its drop), then those of any slot
        // nobody holds.
        remove_slot(slot).map_err(|e| format!("removing leftovers of slot {slot:02}: {e}"))?;
        sweep_free_slots(slot);

        let p = bridge_prefix(slot);
        let mut used = BTreeSet::new();
        let mut bridges = BTreeMap::new();
        for (i, s) in topology.switches.iter().enumerate() {
            let name = pick_name(&mut used, format!("{p}{}", s.name), format!("{p}_s{i}"));
            bridges.insert(s.name.clone(), name);
        }
        let mut links = Vec::new();
        for (i, l) in topology.links.iter().enumerate() {
            let mut end = |r: &servswitch::fabric::topology::PortRef, side: &str| LinkEnd {
                switch: r.switch.clone(),
                port: r.port,
                name: pick_name(
                    &mut used,
                    format!("{p}{}-{}", r.switch, r.port),
                    format!("{p}_l{i}{side}"),
                ),
            };
            let a = end(&l.a, "a");
            let b = end(&l.b, "b");
            links.push((a, b));
        }
        let np = ns_prefix(slot);
        let mut hosts = BTreeMap::new();
        for (i, h) in topology.hosts.iter().enumerate() {
            let veth = pick_name(&mut used, format!("{p}h{}", h.name), format!("{p}_h{i}"));
            let ns = if h
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                format!("{np}{}", h.name)
            } else {
                format!("{np}h{i}")
            };
            let mut addrs = Vec::new();
            let mut gateway = None;
            for ip in h.addresses() {
                let (prefix, gw) = topology
                    .subnets
                    .iter()
                    .find_map(|s| s.prefix.filter(|p| p.contains(ip)).zip(s.gateway))
                    .ok_or_else(|| format!("host {}: {ip} is in no subnet", h.name))?;
                addrs.push((ip, prefix.len));
                gateway.get_or_insert(gw);
            }
            let mut addrs6 = Vec::new();
            for ip in h.addresses6() {
                let p = topology
                    .subnets
                    .iter()
                    .find_map(|s| s.prefix6.filter(|p| p.contains(ip)))
                    .ok_or_else(|| format!("host {}: {ip} is in no subnet", h.name))?;
                addrs6.push((ip, p.len));
            }
            if addrs.is_empty() && addrs6.is_empty() {
                return Err(format!("host {} has no address", h.name));
            }
            hosts.insert(
                h.name.clone(),
                FabricHost {
                    name: h.name.clone(),
                    ns,
                    veth,
                    mac: h.mac.to_string(),
                    addrs,
                    addrs6,
                    // An IPv6-only host has no IPv4 gateway.
                    gateway: gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    switch: h.at.switch.clone(),
                    port: h.at.port,
                },
            );
        }
        let mut fabric = OvsFabric {
            topology: topology.clone(),
            slot,
            _lock: lock,
            bridges,
            hosts,
            links,
            link_kind,
            controller_port,
            torn_down: false,
        };
        // From here on, an early return drops `fabric`, which removes what was made.
        fabric.create()?;
        Ok(fabric)
    }

    fn create(&mut self) -> Result<(), String> {
        // 1. Namespaces and veth pairs; the namespace end is made inside its namespace,
        //    already named eth0 and carrying the host's MAC, so no eth0 ever exists in the
        //    root namespace.
        let mut lines = Vec::new();
        for h in self.hosts.values() {
            lines.push(format!("netns add {}", h.ns));
            lines.push(format!(
                "link add {} type veth peer name eth0 address {} netns {}",
                h.veth, h.mac, h.ns
            ));
        }
        // The links: a veth pair each, both ends in the root namespace and on bridges.
        let veths = if self.link_kind == Links::Veth {
            self.links.as_slice()
        } else {
            &[]
        };
        for (a, b) in veths {
            lines.push(format!(
                "link add {} type veth peer name {}",
                a.name, b.name
            ));
        }
        ip_batch(&[], &lines, false)?;
        // 2. The bridge ends: no IPv6 (the kernel would send router solicitations and DAD
        //    probes from them straight into the hosts), then up.
        let mut lines = Vec::new();
        for h in self.hosts.values() {
            let sysctl = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", h.veth);
            if Path::new(&sysctl).exists() {
                std::fs::write(&sysctl, "1").map_err(|e| format!("{sysctl}: {e}"))?;
            }
            lines.push(format!("link set {} up", h.veth));
        }
        for end in veths.iter().flat_map(|(a, b)| [a, b]) {
            let sysctl = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", end.name);
            if Path::new(&sysctl).exists() {
                std::fs::write(&sysctl, "1").map_err(|e| format!("{sysctl}: {e}"))?;
            }
            lines.push(format!("link set {} up", end.name));
        }
        ip_batch(&[], &lines, false)?;
        // 3. Inside each namespace: loopback, eth0 with its addresses, default route, and
        //    transmit checksum offload off (the userspace datapath forwards what the veth
        //    hands it; a rewritten TCP packet with a partial checksum would arrive broken).
        for h in self.hosts.values() {
            let mut lines = vec!["link set lo up".to_string(), "link set eth0 up".to_string()];
            for (ip, len) in &h.addrs {
                lines.push(format!("addr add {ip}/{len} dev eth0"));
            }
            for (ip, len) in &h.addrs6 {
                lines.push(format!("addr add {ip}/{len} dev eth0 nodad"));
            }
            if !h.gateway.is_unspecified() {
                lines.push(format!("route add default via {} dev eth0", h.gateway));
            }
            ip_batch(&["-n", &h.ns], &lines, false)?;
            run(
                "ip",
                &["netns", "exec", &h.ns, "ethtool", "-K", "eth0", "tx", "off"],
            )?;
            if !ACCEPT_RA.load(std::sync::atomic::Ordering::SeqCst) && !h.addrs6.is_empty() {
                // Before any switch is connected: no advertisement has arrived yet.
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &h.ns,
                        "sysctl",
                        "-qw",
                        "net.ipv6.conf.eth0.accept_ra=0",
                        "net.ipv6.conf.eth0.autoconf=0",
                    ],
                )?;
            }
        }
        // 4. Bridges, controllers, link ports and host ports in one OVSDB transaction.
        let mut args: Vec<String> = Vec::new();
        let mut push = |v: &[&str]| args.extend(v.iter().map(|s| s.to_string()));
        for (i, sw) in self.topology.switches.iter().enumerate() {
            let br = &self.bridges[&sw.name];
            push(&["--", "add-br", br]);
            push(&[
                "--",
                "set",
                "bridge",
                br,
                "datapath_type=netdev",
                "protocols=OpenFlow13",
                "fail-mode=secure",
                &format!("other-config:datapath-id={:016x}", sw.dpid.0),
                "other-config:disable-in-band=true",
            ]);
            if let Some(port) = self.controller_port {
                let id = format!("@ctl{i}");
                push(&[
                    "--",
                    &format!("--id={id}"),
                    "create",
                    "Controller",
                    &format!("target=\"tcp:127.0.0.1:{port}\""),
                    "connection_mode=out-of-band",
                    "max_backoff=1000",
                ]);
                push(&["--", "set", "bridge", br, &format!("controller={id}")]);
            }
        }
        for (a, b) in &self.links {
            for (me, peer) in [(a, b), (b, a)] {
                let br = &self.bridges[&me.switch];
                push(&["--", "add-port", br, &me.name]);
                let request = format!("ofport_request={}", me.port);
                match self.link_kind {
                    Links::Veth => push(&["--", "set", "interface", &me.name, &request]),
                    Links::Patch => push(&[
                        "--",
                        "set",
                        "interface",
                        &me.name,
                        "type=patch",
                        &format!("options:peer={}", peer.name),
                        &request,
                    ]),
                }
            }
        }
        for h in self.hosts.values() {
            let br = &self.bridges[&h.switch];
            push(&["--", "add-port", br, &h.veth]);
            push(&[
                "--",
                "set",
                "interface",
                &h.veth,
                &format!("ofport_request={}", h.port),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        vsctl(&refs)?;
        // 5. Every port got the number it asked for.
        let mut want: Vec<(String, u32)> = Vec::new();
        for (a, b) in &self.links {
            want.push((a.name.clone(), a.port));
            want.push((b.name.clone(), b.port));
        }
        for h in self.hosts.values() {
            want.push((h.veth.clone(), h.port));
        }
        let have = interface_ofports()?;
        let mut bad = Vec::new();
        for (name, port) in want {
            match have.get(&name) {
                Some((Some(p), _)) if *p == port => {}
                other => bad.push(format!("{name}: wanted ofport {port}, have {other:?}")),
            }
        }
        if !bad.is_empty() {
            return Err(format!("ports not as requested: {}", bad.join("; ")));
        }
        Ok(())
    }

    /// The two digits that make this instance's names unique.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Prefix of every bridge and veth end of this instance (`ssfNN`).
    pub fn prefix(&self) -> String {
        bridge_prefix(self.slot)
    }

    /// Prefix of every namespace of this instance (`ss-fNN-`).
    pub fn ns_prefix(&self) -> String {
        ns_prefix(self.slot)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The OVS bridge of a topology switch.
    pub fn bridge(&self, switch: &str) -> &str {
        self.bridges
            .get(switch)
            .unwrap_or_else(|| panic!("no switch {switch:?} in the fabric"))
    }

    /// Bridge names by switch name.
    pub fn bridges(&self) -> &BTreeMap<String, String> {
        &self.bridges
    }

    /// A host: namespace, veth, MAC, addresses, gateway, where it is now.
    pub fn host(&self, name: &str) -> &FabricHost {
        self.hosts
            .get(name)
            .unwrap_or_else(|| panic!("no host {name:?} in the fabric"))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &FabricHost> {
        self.hosts.values()
    }

    /// The links as pairs of veth ends, in topology order.
    pub fn links(&self) -> &[(LinkEnd, LinkEnd)] {
        &self.links
    }

    /// The veth end of the link at `switch:port`, for a test that changes it (`what`).
    fn veth_end(&self, switch: &str, port: u32, what: &str) -> Result<&LinkEnd, String> {
        if self.link_kind == Links::Patch {
            return Err(format!(
                "a patch port cannot be {what}: build the fabric with veth links"
            ));
        }
        self.links
            .iter()
            .flat_map(|(a, b)| [a, b])
            .find(|e| e.switch == switch && e.port == port)
            .ok_or_else(|| format!("{switch}:{port} is not a link of the fabric"))
    }

    /// Cuts the link at `switch:port` (either end) as a cable is cut, or mends it: the
    /// veth end on that side is set down (its peer loses its carrier: Open vSwitch reports
    /// both ports `LINK_DOWN`) or up again.
    pub fn set_link(&self, switch: &str, port: u32, up: bool) -> Result<(), String> {
        let end = self.veth_end(switch, port, "cut")?;
        run(
            "ip",
            &["link", "set", &end.name, if up { "up" } else { "down" }],
        )
        .map(|_| ())
    }

    /// Deletes a link end's port from its bridge (`present == false`: the switch reports
    /// the port deleted, its peer's end stays up but leads nowhere, as when a hypervisor or
    /// an operator removes an interface) or adds it back with its port number.
    pub fn set_link_port(&self, switch: &str, port: u32, present: bool) -> Result<(), String> {
        let end = self.veth_end(switch, port, "deleted and re-added")?;
        let br = &self.bridges[switch];
        if !present {
            return vsctl(&["del-port", br, &end.name]).map(|_| ());
        }
        let mut args = vec!["--", "add-port", br, &end.name, "--", "set", "interface"];
        let request = format!("ofport_request={port}");
        args.extend([end.name.as_str(), request.as_str()]);
        vsctl(&args).map(|_| ())
    }

    /// The host namespace's name.
    pub fn ns(&self, host: &str) -> &str {
        &self.host(host).ns
    }

    /// `ip netns exec NS args...`, ready to be run, spawned, or given more settings.
    pub fn command(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(host)]).args(args);
        c
    }

    /// Runs a command inside a host's namespace: stdout on exit 0, else the error.
    pub fn exec(&self, host: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(host, args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ip netns exec: {e}"))?;
        output_result(&format!("[{host}] {}", args.join(" ")), out)
    }

    fn bridge_or_name<'a>(&'a self, switch_or_bridge: &'a str) -> &'a str {
        self.bridges
            .get(switch_or_bridge)
            .map(String::as_str)
            .unwrap_or(switch_or_bridge)
    }

    /// Removes everything this instance created and reports what could not be removed.
    /// Dropping does the same, silently.
    pub fn teardown(mut self) -> Result<(), String> {
        self.torn_down = true;
        remove_slot(self.slot)
    }
}

impl Drop for OvsFabric {
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = remove_slot(self.slot) {
                eprintln!("ovs_fabric: cleanup of slot {:02}: {e}", self.slot);
            }
        }
    }
}

/// Starts the real controller on `controller_topology`, builds `fabric_topology` as Open
/// vSwitch, and waits (20 s at most) until every switch holds its whole pipeline: the router
/// sends a switch's table in plan order, and the punt table's miss entry comes last.
pub fn start_routed(
    fabric_topology: &Topology,
    controller_topology: &Path,
) -> (ControllerProcess, OvsFabric) {
    start_routed_with(fabric_topology, controller_topology, &[])
}

/// [`start_routed`] with extra flags for `servswitch run`.
pub fn start_routed_with(
    fabric_topology: &Topology,
    controller_topology: &Path,
    extra: &[&str],
) -> (ControllerProcess, OvsFabric) {
    start_routed_links(fabric_topology, controller_topology, extra, Links::Veth)
}

/// [`start_routed_with`] with the given kind of links.
pub fn start_routed_links(
    fabric_topology: &Topology,
    controller_topology: &Path,
    extra: &[&str],
    links: Links,
) -> (ControllerProcess, OvsFabric) {
    let ctl = ControllerProcess::start(controller_topology, extra);
    let fabric = OvsFabric::build_with(fabric_topology, Some(ctl.of_port), links).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &fabric_topology.switches {
        loop {
            let flows = fabric.dump_flows(&s.name).unwrap_or_default();
            // The punt table's miss entry, planned last.
            let last = format!(
                "table={}, priority=0 actions=CONTROLLER:65535",
                servswitch::fabric::plan::TABLE_PUNT
            );
            if flows.contains(&last) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never got its pipeline:\n{flows}\ncontroller log:\n{}",
                s.name,
                ctl.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (ctl, fabric)
}
