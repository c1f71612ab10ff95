//! Builds a topology file as a real Open vSwitch fabric: one userspace-datapath bridge per
//! switch, a pair of patch ports per link, one network namespace with a veth per host, with
//! OpenFlow port numbers equal to the topology's. Everything it creates is named with a prefix
//! that belongs to one harness instance (`ssfNN…` for bridges, patch ports and veth ends,
//! `ss-fNN-…` for namespaces) and is removed again on drop, also when a test panics.
//!
//! The two digits NN are a slot, held by binding the abstract Unix socket
//! `servswitch-ovs-fabric-NN`: two harnesses (threads or test binaries) never share a slot, and
//! the kernel releases it when a process dies, so a constructor that gets a slot knows that
//! whatever still carries the slot's prefix is a leftover and removes it first.
//!
//! Nothing here touches a real interface: bridges are `datapath_type=netdev` and get only patch
//! ports and veth ends whose other side lives in a namespace of ours; the bridges' internal
//! ports stay down without addresses; the controller target is always 127.0.0.1.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use servswitch::fabric::topology::Topology;

pub use super::controller::ControllerProcess;

/// Slots `00`..`99`.
const SLOTS: u32 = 100;
/// Longest Linux interface name.
const IFNAMSIZ: usize = 15;
/// Every ovs-vsctl call gives up after this many seconds instead of hanging.
const VSCTL_TIMEOUT: &str = "--timeout=20";

/// Why the real fabric cannot be built here, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !super::env::is_root() {
        return Some("not running as root".into());
    }
    for (what, cmd, args) in [
        ("Open vSwitch", "ovs-vsctl", &["--timeout=5", "show"][..]),
        ("ovs-ofctl", "ovs-ofctl", &["--version"][..]),
        ("network namespaces", "ip", &["netns", "list"][..]),
        ("ethtool", "ethtool", &["--version"][..]),
        ("ping", "ping", &["-V"][..]),
        ("python3", "python3", &["--version"][..]),
    ] {
        match Command::new(cmd).args(args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "{what} unavailable: `{cmd} {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => return Some(format!("{what} unavailable: cannot run {cmd}: {e}")),
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (the userspace datapath needs it)".into());
    }
    None
}

/// True when the fabric can be built (see [`super::env::runnable`]).
pub fn available(test: &str) -> bool {
    super::env::runnable(test, unavailable_reason())
}

/// Runs a command; its stdout when it exits 0, otherwise one message with the command line,
/// the exit status and its output.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    run_with_input(cmd, args, None)
}

fn run_with_input(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{cmd}: writing stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    output_result(&format!("{cmd} {}", args.join(" ")), out)
}

fn output_result(what: &str, out: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!(" / stdout: {}", stdout.trim())
            }
        ))
    }
}

fn vsctl(args: &[&str]) -> Result<String, String> {
    let mut all = vec![VSCTL_TIMEOUT];
    all.extend_from_slice(args);
    run("ovs-vsctl", &all)
}

/// Runs `ip [pre...] -batch -` with one command per line; `-force` keeps going past errors.
fn ip_batch(pre: &[&str], lines: &[String], force: bool) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args: Vec<&str> = pre.to_vec();
    if force {
        args.push("-force");
    }
    args.extend(["-batch", "-"]);
    let mut text = lines.join("\n");
    text.push('\n');
    run_with_input("ip", &args, Some(&text))
        .map(|_| ())
        .map_err(|e| format!("{e}\nbatch was:\n{text}"))
}

fn slot_lock(slot: u32) -> Option<UnixListener> {
    let name = format!("servswitch-ovs-fabric-{slot:02}");
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).ok()?;
    UnixListener::bind_addr(&addr).ok()
}

fn bridge_prefix(slot: u32) -> String {
    format!("ssf{slot:02}")
}

fn ns_prefix(slot: u32) -> String {
    format!("ss-f{slot:02}-")
}

/// The slot of a name made by this harness: `ssfNN…` or `ss-fNN-…`.
fn slot_of(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix("ssf")
        .or_else(|| name.strip_prefix("ss-f"))?;
    let d = digits.get(..2)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if name.starts_with("ss-f") && digits.as_bytes().get(2) != Some(&b'-') {
        return None;
    }
    d.parse().ok()
}

fn list_bridges() -> Vec<String> {
    vsctl(&["list-br"])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn list_links() -> Vec<String> {
    run("ip", &["-o", "link", "show"])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn list_netns() -> Vec<String> {
    run("ip", &["netns", "list"])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Everything whose name carries `slot`'s prefix: (bridges, interfaces, namespaces).
pub fn leftovers(slot: u32) -> (Vec<String>, Vec<String>, Vec<String>) {
    let bp = bridge_prefix(slot);
    let np = ns_prefix(slot);
    (
        list_bridges()
            .into_iter()
            .filter(|b| b.starts_with(&bp))
            .collect(),
        list_links()
            .into_iter()
            .filter(|l| l.starts_with(&bp))
            .collect(),
        list_netns()
            .into_iter()
            .filter(|n| n.starts_with(&np))
            .collect(),
    )
}

/// Removes every bridge, interface and namespace with `slot`'s prefix. The caller must hold
/// the slot.
fn remove_slot(slot: u32) -> Result<(), String> {
    let (bridges, links, namespaces) = leftovers(slot);
    let mut errors = Vec::new();
    if !bridges.is_empty() {
        let mut args: Vec<&str> = Vec::new();
        for b in &bridges {
            args.extend(["--", "--if-exists", "del-br", b.as_str()]);
        }
        if let Err(e) = vsctl(&args) {
            errors.push(e);
        }
    }
    // Deleting the root end of a veth removes its peer at once; a namespace's own teardown is
    // asynchronous in the kernel, so delete the veths explicitly first.
    let links: Vec<String> = list_links()
        .into_iter()
        .filter(|l| links.contains(l))
        .map(|l| format!("link del {l}"))
        .collect();
    if let Err(e) = ip_batch(&[], &links, true) {
        errors.push(e);
    }
    let ns: Vec<String> = namespaces
        .iter()
        .map(|n| format!("netns del {n}"))
        .collect();
    if let Err(e) = ip_batch(&[], &ns, true) {
        errors.push(e);
    }
    let (b, l, n) = leftovers(slot);
    if !(b.is_empty() && l.is_empty() && n.is_empty()) {
        errors.push(format!(
            "still there after cleanup: bridges {b:?}, interfaces {l:?}, namespaces {n:?}"
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Removes leftovers of every slot nobody holds (a harness killed before its drop ran).
fn sweep_free_slots(own: u32) {
    let mut slots = BTreeSet::new();
    for n in list_bridges()
        .into_iter()
        .chain(list_links())
        .chain(list_netns())
    {
        if let Some(s) = slot_of(&n) {
            if s != own {
                slots.insert(s);
            }
        }
    }
    for s in slots {
        if let Some(lock) = slot_lock(s) {
            if let Err(e) = remove_slot(s) {
                eprintln!("ovs_fabric: removing leftovers of slot {s:02}: {e}");
            }
            drop(lock);
        }
    }
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
    pub gateway: Ipv4Addr,
    /// Where it is attached now.
    pub switch: String,
    pub port: u32,
}

/// One end of a link: a patch port.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    pub switch: String,
    pub port: u32,
    /// The patch port's name.
    pub name: String,
}

/// A topology built as Open vSwitch bridges, patch ports, veths and namespaces.
pub struct OvsFabric {
    topology: Topology,
    slot: u32,
    _lock: UnixListener,
    bridges: BTreeMap<String, String>,
    hosts: BTreeMap<String, FabricHost>,
    links: Vec<(LinkEnd, LinkEnd)>,
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
                let sn = topology
                    .subnets
                    .iter()
                    .find(|s| s.prefix.contains(ip))
                    .ok_or_else(|| format!("host {}: {ip} is in no subnet", h.name))?;
                addrs.push((ip, sn.prefix.len));
                gateway.get_or_insert(sn.gateway);
            }
            hosts.insert(
                h.name.clone(),
                FabricHost {
                    name: h.name.clone(),
                    ns,
                    veth,
                    mac: h.mac.to_string(),
                    addrs,
                    gateway: gateway.ok_or_else(|| format!("host {} has no address", h.name))?,
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
        ip_batch(&[], &lines, false)?;
        // 3. Inside each namespace: loopback, eth0 with its addresses, default route, and
        //    transmit checksum offload off (the userspace datapath forwards what the veth
        //    hands it; a rewritten TCP packet with a partial checksum would arrive broken).
        for h in self.hosts.values() {
            let mut lines = vec!["link set lo up".to_string(), "link set eth0 up".to_string()];
            for (ip, len) in &h.addrs {
                lines.push(format!("addr add {ip}/{len} dev eth0"));
            }
            lines.push(format!("route add default via {} dev eth0", h.gateway));
            ip_batch(&["-n", &h.ns], &lines, false)?;
            run(
                "ip",
                &["netns", "exec", &h.ns, "ethtool", "-K", "eth0", "tx", "off"],
            )?;
        }
        // 4. Bridges, controllers, patch ports and host ports in one OVSDB transaction.
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
                push(&[
                    "--",
                    "set",
                    "interface",
                    &me.name,
                    "type=patch",
                    &format!("options:peer={}", peer.name),
                    &format!("ofport_request={}", me.port),
                ]);
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

    /// Prefix of every bridge, patch port and veth end of this instance (`ssfNN`).
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

    /// The links as pairs of patch ports, in topology order.
    pub fn links(&self) -> &[(LinkEnd, LinkEnd)] {
        &self.links
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

    /// `ping -c COUNT -W 1 -i 0.2 TO` from a host: (transmitted, received). (0, 0) when ping
    /// could not send at all (e.g. no route).
    pub fn ping(&self, from: &str, to: Ipv4Addr, count: u32) -> (u32, u32) {
        let out = self
            .command(
                from,
                &[
                    "ping",
                    "-n",
                    "-c",
                    &count.to_string(),
                    "-W",
                    "1",
                    "-i",
                    "0.2",
                    &to.to_string(),
                ],
            )
            .stdin(Stdio::null())
            .output()
            .expect("running ping");
        parse_ping(&String::from_utf8_lossy(&out.stdout))
    }

    fn bridge_or_name<'a>(&'a self, switch_or_bridge: &'a str) -> &'a str {
        self.bridges
            .get(switch_or_bridge)
            .map(String::as_str)
            .unwrap_or(switch_or_bridge)
    }

    /// The OpenFlow port number of interface `port_name` on a bridge (switch or bridge
    /// name); `None` if the interface is not on that bridge or has no number.
    pub fn ofport_of(&self, switch: &str, port_name: &str) -> Option<u32> {
        let br = self.bridge_or_name(switch);
        let on = vsctl(&["port-to-br", port_name]).ok()?;
        if on.trim() != br {
            return None;
        }
        vsctl(&["get", "interface", port_name, "ofport"])
            .ok()?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| *p > 0)
            .map(|p| p as u32)
    }

    /// `ovs-ofctl -O OpenFlow13 CMD BRIDGE ARGS...` for a switch (or bridge name).
    pub fn ofctl(&self, cmd: &str, switch: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-O", "OpenFlow13", cmd, self.bridge_or_name(switch)];
        all.extend_from_slice(args);
        run("ovs-ofctl", &all)
    }

    /// The switch's flow table as `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints it.
    pub fn dump_flows(&self, switch: &str) -> Result<String, String> {
        run(
            "ovs-ofctl",
            &[
                "-O",
                "OpenFlow13",
                "dump-flows",
                "--no-stats",
                self.bridge_or_name(switch),
            ],
        )
    }

    /// `ovs-appctl ofproto/trace BRIDGE FLOW`: what OVS would do with such a packet (it
    /// follows patch ports into the peer bridges).
    pub fn trace(&self, switch: &str, flow: &str) -> Result<String, String> {
        run(
            "ovs-appctl",
            &["ofproto/trace", self.bridge_or_name(switch), flow],
        )
    }

    /// Points the switch's controller connection at a closed port (`None`) or back at the
    /// fabric's controller (`Some(port)`): cutting one switch off and bringing it back.
    pub fn set_controller_port(&self, switch: &str, port: Option<u16>) -> Result<(), String> {
        let target = format!("target=\"tcp:127.0.0.1:{}\"", port.unwrap_or(1));
        vsctl(&["set", "controller", self.bridge_or_name(switch), &target]).map(|_| ())
    }

    /// Whether the switch's bridge is connected to its controller now.
    pub fn is_connected(&self, switch: &str) -> bool {
        vsctl(&[
            "get",
            "controller",
            self.bridge_or_name(switch),
            "is_connected",
        ])
        .map(|s| s.trim() == "true")
        .unwrap_or(false)
    }

    /// Whether every bridge is connected to its controller now.
    pub fn all_connected(&self) -> bool {
        self.bridges.keys().all(|s| self.is_connected(s))
    }

    /// Waits until every bridge is connected; on timeout the error names the others.
    pub fn wait_connected(&self, deadline: Instant) -> Result<(), String> {
        loop {
            let missing: Vec<&str> = self
                .bridges
                .keys()
                .filter(|s| !self.is_connected(s))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not connected to the controller: {missing:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves a host's veth from its bridge to `to_switch`'s, as OpenFlow port `to_port`, in
    /// one OVSDB transaction. The namespace, MAC, addresses and routes stay as they are (a
    /// live-migrated VM); the old port disappears from the old switch (PORT_STATUS delete)
    /// and the new one appears on the new switch.
    pub fn move_host(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        let veth = self.host(host).veth.clone();
        let br = self
            .bridges
            .get(to_switch)
            .ok_or_else(|| format!("no switch {to_switch:?} in the fabric"))?
            .clone();
        vsctl(&[
            "--",
            "--if-exists",
            "del-port",
            &veth,
            "--",
            "add-port",
            &br,
            &veth,
            "--",
            "set",
            "interface",
            &veth,
            &format!("ofport_request={to_port}"),
        ])?;
        let got = interface_ofports()?.remove(&veth);
        let h = self.hosts.get_mut(host).expect("host exists");
        h.switch = to_switch.to_string();
        match got {
            Some((Some(p), _)) if p == to_port => {
                h.port = to_port;
                Ok(())
            }
            other => {
                if let Some((Some(p), _)) = other {
                    h.port = p;
                }
                Err(format!(
                    "{veth} on {br}: wanted ofport {to_port}, have {other:?}"
                ))
            }
        }
    }

    /// Takes a host's veth off its bridge (the hypervisor deletes the VM's port: the switch
    /// reports the port deleted); [`OvsFabric::plug`] puts it on one again.
    pub fn unplug(&mut self, host: &str) -> Result<(), String> {
        let veth = self.host(host).veth.clone();
        vsctl(&["--", "--if-exists", "del-port", &veth])?;
        Ok(())
    }

    /// Puts an unplugged host's veth on `to_switch`'s bridge as port `to_port`.
    pub fn plug(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        self.move_host(host, to_switch, to_port)
    }

    /// A live migration as a hypervisor performs it: [`OvsFabric::move_host`], then one
    /// QEMU self-announce RARP from inside the host, sent the moment the port is on its new
    /// switch (see [`Announcer`]). Fails if the move changed anything inside the host (MAC,
    /// addresses, routes, link state, transmit checksum offload: see
    /// [`OvsFabric::host_state`]).
    pub fn migrate_host(
        &mut self,
        host: &str,
        to_switch: &str,
        to_port: u32,
    ) -> Result<(), String> {
        let before = self.host_state(host)?;
        let rarp = self.announcer(host)?;
        self.move_host(host, to_switch, to_port)?;
        rarp.send()?;
        let after = self.host_state(host)?;
        if before != after {
            return Err(format!(
                "moving {host} changed its namespace:\nbefore {before:?}\nafter  {after:?}"
            ));
        }
        Ok(())
    }

    /// Sends one RARP exactly as QEMU's `net/announce.c` does after a live migration
    /// ([`rarp_frame`] of the host's MAC) from the host's `eth0`, through an AF_PACKET raw
    /// socket inside its namespace.
    pub fn announce(&self, host: &str) -> Result<(), String> {
        self.announcer(host)?.send()
    }

    /// A RARP made ready to go: a process inside the host's namespace whose raw socket is
    /// bound to `eth0` and whose frame is built, waiting for a line on its stdin.
    ///
    /// QEMU announces as soon as the VM runs at the destination. Starting an interpreter in
    /// a namespace takes 40 to 100 ms on a busy two-core machine; done between the port move
    /// and the RARP, that start was part of every measured outage, and varied with the load
    /// (the cause of a flaky "at most two pings lost"). Armed before the move, the RARP leaves
    /// one pipe write after it.
    pub fn announcer(&self, host: &str) -> Result<Announcer, String> {
        let frame = rarp_frame(&self.host(host).mac)?;
        self.armed_frame(host, &frame)
    }

    /// Like [`OvsFabric::migrate_host`], but the host announces itself as QEMU does by default
    /// (`net/announce.c`: five rounds, at about 0, 50, 200, 450 and 800 ms; see
    /// FIELD-NOTES.md): the first RARP the moment the port is on its new switch, the others
    /// in the background; returns once the first went out.
    ///
    /// Why it matters: Open vSwitch's userspace datapath moves a port to its new bridge
    /// asynchronously, in its main thread, after the OVSDB transaction. While another host
    /// floods the datapath, a frame sent right after the move was seen entering through the
    /// *old* port (1 move in 30); one announcement then tells the controller nothing new, and
    /// QEMU's next rounds are what a real VM has.
    pub fn migrate_host_qemu(
        &mut self,
        host: &str,
        to_switch: &str,
        to_port: u32,
    ) -> Result<Instant, String> {
        let frame = rarp_frame(&self.host(host).mac)?;
        let rarp = self.armed_frame_rounds(host, &frame, &[0, 50, 200, 450, 800])?;
        self.move_host(host, to_switch, to_port)?;
        let first = Instant::now();
        rarp.send()?;
        Ok(first)
    }

    /// Sends any frame, whatever its source MAC, from a host's `eth0` (what a tenant that
    /// forges frames can do).
    pub fn send_frame(&self, host: &str, frame: &[u8]) -> Result<(), String> {
        self.armed_frame(host, frame)?.send()
    }

    /// `frame` made ready to go from a host's `eth0` at each of `at_ms` (milliseconds after
    /// the first); [`Announcer::send`] returns once the first went out, the process sends the
    /// rest by itself and exits.
    pub fn armed_frame_rounds(
        &self,
        host: &str,
        frame: &[u8],
        at_ms: &[u64],
    ) -> Result<Announcer, String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let at: Vec<String> = at_ms.iter().map(u64::to_string).collect();
        let py = "import socket,sys,time\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('eth0',0))\n\
                  f=bytes.fromhex(sys.argv[1])\n\
                  at=[int(a)/1000 for a in sys.argv[2].split(',')]\n\
                  print('ready',flush=True)\n\
                  if sys.stdin.readline()!='send\\n': sys.exit(4)\n\
                  t0=time.monotonic()\n\
                  for i,a in enumerate(at):\n\
                  \x20time.sleep(max(0,t0+a-time.monotonic()))\n\
                  \x20n=s.send(f)\n\
                  \x20if i==0: print('sent' if n==len(f) else 'short',flush=True)\n";
        let child = self
            .command(host, &[python3(), "-c", py, &hex, &at.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("[{host}] cannot start the announcer: {e}"))?;
        let mut a = Announcer {
            host: host.to_string(),
            child: Some(child),
            rounds: true,
        };
        let mut ready = [0u8; 6];
        let read = a
            .child
            .as_mut()
            .and_then(|c| c.stdout.as_mut())
            .expect("stdout is piped")
            .read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            return Err(format!("[{host}] the announcer did not get ready"));
        }
        Ok(a)
    }

    /// `frame` made ready to go from a host's `eth0`: see [`OvsFabric::announcer`].
    pub fn armed_frame(&self, host: &str, frame: &[u8]) -> Result<Announcer, String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let py = "import socket,sys\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('eth0',0))\n\
                  f=bytes.fromhex(sys.argv[1])\n\
                  print('ready',flush=True)\n\
                  if sys.stdin.readline()!='send\\n': sys.exit(4)\n\
                  n=s.send(f)\n\
                  sys.exit(0 if n==len(f) else 3)\n";
        let mut child = self
            .command(host, &[python3(), "-c", py, &hex])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("[{host}] cannot start the announcer: {e}"))?;
        let mut ready = [0u8; 6];
        let read = child
            .stdout
            .as_mut()
            .expect("stdout is piped")
            .read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            let _ = child.kill();
            let out = child.wait_with_output();
            return Err(format!("[{host}] the announcer did not get ready: {out:?}"));
        }
        Ok(Announcer {
            host: host.to_string(),
            child: Some(child),
            rounds: false,
        })
    }

    /// What a move must leave alone inside a host's namespace.
    pub fn host_state(&self, host: &str) -> Result<HostState, String> {
        let ns = self.ns(host).to_string();
        let link = run("ip", &["-n", &ns, "-o", "link", "show", "dev", "eth0"])?;
        let mac = link
            .split("link/ether ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .ok_or_else(|| format!("{host}: no MAC in {link:?}"))?
            .to_string();
        let flags = link
            .split('<')
            .nth(1)
            .and_then(|s| s.split('>').next())
            .unwrap_or("");
        let link_up =
            flags.split(',').any(|f| f == "UP") && flags.split(',').any(|f| f == "LOWER_UP");
        let addrs = run(
            "ip",
            &["-n", &ns, "-o", "-4", "addr", "show", "dev", "eth0"],
        )?
        .lines()
        .filter_map(|l| l.split("inet ").nth(1)?.split_whitespace().next())
        .map(str::to_string)
        .collect();
        let routes = run("ip", &["-n", &ns, "-4", "route", "show", "table", "all"])?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let features = self.exec(host, &["ethtool", "-k", "eth0"])?;
        let tx_checksum_off = features
            .lines()
            .any(|l| l.trim_start().starts_with("tx-checksumming: off"));
        Ok(HostState {
            mac,
            link_up,
            addrs,
            routes,
            tx_checksum_off,
        })
    }

    /// A port's received-packet counter (`ovs-ofctl -O OpenFlow13 dump-ports SWITCH PORT`).
    pub fn port_rx_packets(&self, switch: &str, port: u32) -> Result<u64, String> {
        let out = self.ofctl("dump-ports", switch, &[&port.to_string()])?;
        out.split("rx pkts=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no rx pkts in {out:?}"))
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

/// What a move must leave alone inside a host's namespace ([`OvsFabric::host_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// `eth0`'s MAC.
    pub mac: String,
    /// `eth0` is UP and LOWER_UP.
    pub link_up: bool,
    /// IPv4 addresses of `eth0`, `A.B.C.D/LEN`.
    pub addrs: Vec<String>,
    /// `ip -4 route show table all`, line by line.
    pub routes: Vec<String>,
    /// `ethtool -k eth0` says `tx-checksumming: off`.
    pub tx_checksum_off: bool,
}

/// The frame QEMU sends per NIC after a live migration (`net/announce.c`,
/// `announce_self_create`): broadcast, source MAC = the VM, ethertype 0x8035 (RARP), htype 1,
/// ptype 0x0800, hlen 6, plen 4, opcode 3 (reverse request), sender and target hardware
/// address = the VM's MAC, both protocol addresses 0.0.0.0, zero padding to 60 bytes.
pub fn rarp_frame(mac: &str) -> Result<Vec<u8>, String> {
    let mac: ofp13::MacAddr = mac.parse().map_err(|e| format!("bad MAC {mac:?}: {e}"))?;
    Ok(servswitch::packet::rarp_announce(mac))
}

/// The absolute path of the Python 3 interpreter on `PATH` (resolved once, so a version
/// manager's shim is not between a spawned child's pid and the interpreter).
pub fn python3() -> &'static str {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "python3".to_string())
    })
}

/// ofport (None when unassigned, -1 or empty) and error column of every interface.
#[allow(clippy::type_complexity)]
fn interface_ofports() -> Result<BTreeMap<String, (Option<u32>, String)>, String> {
    let out = vsctl(&[
        "--format=csv",
        "--data=bare",
        "--no-headings",
        "--columns=name,ofport,error",
        "list",
        "interface",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ',');
            let name = f.next()?.trim_matches('"').to_string();
            let port = f
                .next()?
                .parse::<i64>()
                .ok()
                .filter(|p| *p > 0)
                .map(|p| p as u32);
            let err = f.next().unwrap_or("").trim_matches('"').to_string();
            Some((name, (port, err)))
        })
        .collect())
}

/// (transmitted, received) from ping's summary line.
pub fn parse_ping(out: &str) -> (u32, u32) {
    for line in out.lines() {
        if let Some((tx, rest)) = line.split_once(" packets transmitted, ") {
            let rx = rest.split_whitespace().next().unwrap_or("0");
            return (tx.trim().parse().unwrap_or(0), rx.parse().unwrap_or(0));
        }
    }
    (0, 0)
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
    let ctl = ControllerProcess::start(controller_topology, extra);
    let fabric = OvsFabric::build(fabric_topology, Some(ctl.of_port)).unwrap();
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

/// A RARP armed by [`OvsFabric::announcer`]; [`Announcer::send`] sends it. Dropped unsent,
/// it sends nothing: the process is killed.
pub struct Announcer {
    host: String,
    child: Option<Child>,
    /// It sends more than one frame: [`Announcer::send`] returns after the first.
    rounds: bool,
}

impl Announcer {
    /// Sends the frame and waits for the process to say it went out whole.
    pub fn send(mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("sent once");
        let what = format!("[{}] announce", self.host);
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(b"send\n");
        if self.rounds {
            let mut sent = [0u8; 5];
            let read = child
                .stdout
                .as_mut()
                .expect("stdout is piped")
                .read_exact(&mut sent);
            // The rest of the rounds go out by themselves; a thread reaps the process.
            std::thread::spawn(move || child.wait());
            written.map_err(|e| format!("{what}: {e}"))?;
            return match read {
                Ok(()) if &sent == b"sent\n" => Ok(()),
                _ => Err(format!("{what}: the first frame did not go out whole")),
            };
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{what}: {e}"))?;
        written.map_err(|e| format!("{what}: {e}"))?;
        output_result(&what, out).map(|_| ())
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
