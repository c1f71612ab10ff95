//! Reading a fabric: OpenFlow port numbers, tables and traces through ovs-ofctl, controller
//! connections, port counters, pings, and a host's own view (its ARP cache, its routes).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::sys::*;
use super::OvsFabric;

impl OvsFabric {
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

    /// `ovs-ofctl -O OpenFlow13 dump-groups`: one group a line, after a reply header line.
    pub fn dump_groups(&self, switch: &str) -> Result<String, String> {
        run(
            "ovs-ofctl",
            &[
                "-O",
                "OpenFlow13",
                "dump-groups",
                self.bridge_or_name(switch),
            ],
        )
    }

    /// `ovs-appctl ofproto/trace BRIDGE FLOW`: what OVS would do with such a packet in that
    /// bridge (it ends where the packet leaves it: links are veth pairs).
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
