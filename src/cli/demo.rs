//! `servswitch demo`, and the eight communication cases of the paper's Fig. 3 as a library the
//! tests share: the controller in process, an emulated OpenFlow 1.3 fabric and Linux-like hosts
//! ([`crate::emu::fabric`]), no root and no Open vSwitch.
//!
//! Roles (paper, section IV.B): C is the VM that moves from its home network H to a foreign
//! network F; D a host of H that stays; B a host of F; E a host elsewhere (the edge network);
//! D* a second VM of H that moves to F too (case 7), and then on to E's network (D**, case 8).
//! Every move is made the way a hypervisor makes it: the host's port moves, then the VM sends
//! QEMU's RARP announcement; nothing tells the controller.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::router::Router;
use crate::emu::fabric::EmuFabric;
use crate::fabric::plan::Fabric;
use crate::fabric::topology::{Tier, Topology};
use crate::packet::{icmp6, ICMP_ECHO_REQUEST};
use crate::switch::runtime::{Controller, RuntimeConfig};

const WAIT: Duration = Duration::from_secs(10);
const PING: Duration = Duration::from_secs(3);

/// The controller and an emulated fabric connected to it.
pub struct Lab {
    pub ctl: Arc<Controller>,
    pub router: Arc<Router>,
    pub fabric: EmuFabric,
    /// The parts of Fig. 3, when the topology has hosts for all of them.
    pub roles: Option<Roles>,
    serve: JoinHandle<std::io::Result<()>>,
}

/// Who plays which part of Fig. 3, and where the VMs move to.
#[derive(Debug, Clone)]
pub struct Roles {
    pub c: String,
    pub d: String,
    pub b: String,
    pub e: String,
    pub d_star: String,
    /// Foreign ports for C and D*, and the third network's port for D**.
    pub c_to: (String, u32),
    pub d_star_to: (String, u32),
    pub d_star_star_to: (String, u32),
}

/// The lowest port of `switch` that no link or host of `t` uses (and not in `skip`).
pub fn free_port(t: &Topology, switch: &str, skip: &[u32]) -> u32 {
    let used: BTreeSet<u32> = t
        .links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .chain(t.hosts.iter().map(|h| &h.at))
        .filter(|p| p.switch == switch)
        .map(|p| p.port)
        .chain(skip.iter().copied())
        .collect();
    (1..).find(|p| !used.contains(p)).unwrap_or(1)
}

impl Roles {
    /// Picks the roles from a topology: H an access subnet with at least three hosts (D, C,
    /// D* in file order), F another access subnet with a host (B), and E a host of a third
    /// subnet (preferably on a core switch, the paper's edge).
    pub fn pick(t: &Topology) -> Result<Roles> {
        let hosts_of = |subnet: &crate::fabric::topology::SubnetConf| -> Vec<String> {
            t.hosts
                .iter()
                .filter(|h| {
                    // Its home: the subnet of its first address (IPv4 if it has one).
                    let first = h.addresses().first().map(|a| IpAddr::from(*a));
                    first
                        .or_else(|| h.addresses6().first().map(|a| IpAddr::from(*a)))
                        .is_some_and(|ip| subnet.contains_addr(ip))
                })
                .filter(|h| h.at.switch == subnet.switch)
                .map(|h| h.name.clone())
                .collect()
        };
        let tier = |sw: &str| t.switches.iter().find(|s| s.name == sw).map(|s| s.tier);
        let access =
            |s: &&crate::fabric::topology::SubnetConf| tier(&s.switch) == Some(Tier::Access);
        let home = t
            .subnets
            .iter()
            .filter(access)
            .find(|s| hosts_of(s).len() >= 3)
            .ok_or_else(|| {
                anyhow!("the demo needs an access subnet with three hosts (D, C and D*)")
            })?;
        let foreign = t
            .subnets
            .iter()
            .filter(access)
            .find(|s| s.switch != home.switch && !hosts_of(s).is_empty())
            .ok_or_else(|| {
                anyhow!("the demo needs a second access switch's subnet with a host (B)")
            })?;
        let mut thirds: Vec<&crate::fabric::topology::SubnetConf> = t
            .subnets
            .iter()
            .filter(|s| {
                s.switch != home.switch && s.switch != foreign.switch && !hosts_of(s).is_empty()
            })
            .collect();
        thirds.sort_by_key(|s| tier(&s.switch) == Some(Tier::Access));
        let third = thirds
            .first()
            .ok_or_else(|| anyhow!("the demo needs a third switch's subnet with a host (E)"))?;
        let h = hosts_of(home);
        let c_port = free_port(t, &foreign.switch, &[]);
        Ok(Roles {
            d: h[0].clone(),
            c: h[1].clone(),
            d_star: h[2].clone(),
            b: hosts_of(foreign)[0].clone(),
            e: hosts_of(third)[0].clone(),
            c_to: (foreign.switch.clone(), c_port),
            d_star_to: (
                foreign.switch.clone(),
                free_port(t, &foreign.switch, &[c_port]),
            ),
            d_star_star_to: (third.switch.clone(), free_port(t, &third.switch, &[])),
        })
    }
}

/// An address family the cases run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(a: IpAddr) -> Family {
        if a.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// One case of Fig. 3 as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub case: u8,
    pub title: &'static str,
    pub from: String,
    pub to: String,
    /// The address pinged (the peer's first home address of the family).
    pub dst: IpAddr,
    /// The source address of the answer the sender got.
    pub reply_from: Option<IpAddr>,
    /// The source addresses the peer saw on the echo requests.
    pub peer_saw: Vec<IpAddr>,
    /// "routed", or "direct" when the last request reached the peer straight from the
    /// sender's MAC with its TTL (hop limit) untouched.
    pub path: &'static str,
    pub ok: bool,
    pub why: String,
}

/// The drain before an update's last phase on the emulated fabric.
pub const EMULATED_DRAIN: Duration = Duration::from_millis(100);

/// How a [`Lab`] differs from the plain one.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Hosts of the topology that the controller is not told of: the emulated fabric has
    /// them, the controller learns them from their traffic.
    pub learned: Vec<String>,
    /// `--detached-grace` (None: the default).
    pub detached_grace: Option<Duration>,
    /// How the emulated hosts behave (None: like Linux with default sysctls).
    pub host: Option<crate::emu::fabric::HostConfig>,
    /// `--cover-idle` (None: the default).
    pub cover_idle: Option<u16>,
    /// The drain before an update's last phase (None: [`EMULATED_DRAIN`]).
    pub drain: Option<Duration>,
    /// Switches (by name) that implement no meters.
    pub without_meters: std::collections::BTreeSet<String>,
    /// How often router advertisements are sent (None: the default).
    pub advertise_every: Option<Duration>,
}

impl Lab {
    /// Starts the controller on a loopback port and the emulated fabric of `t`, and waits
    /// until every switch is connected and holds its planned table.
    pub async fn start(t: &Topology) -> Result<Lab> {
        Lab::start_with(t, LabOptions::default()).await
    }

    /// [`Lab::start`], with options.
    pub async fn start_with(t: &Topology, o: LabOptions) -> Result<Lab> {
        let roles = Roles::pick(t).ok();
        let mut told = t.clone();
        told.hosts.retain(|h| !o.learned.contains(&h.name));
        // The emulated switches have no datapath caches and carry a packet within
        // milliseconds: a short drain before an update's last phase is enough.
        let mut fabric = Fabric::new(&told);
        if let Some(secs) = o.cover_idle {
            fabric = fabric.with_cover_idle(secs);
        }
        let mut router = Router::new(fabric).with_drain(o.drain.unwrap_or(EMULATED_DRAIN));
        if let Some(g) = o.detached_grace {
            router = router.with_detached_grace(g);
        }
        if let Some(every) = o.advertise_every {
            router = router.with_advertise_every(every);
        }
        let (router, ctl) = router.serve_with(told, RuntimeConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let c = Arc::clone(&ctl);
        let serve = tokio::spawn(async move { c.serve(listener, None).await });
        let fabric = EmuFabric::build_with(
            t,
            addr,
            crate::emu::fabric::FabricConfig {
                host: o.host.unwrap_or_default(),
                without_meters: o.without_meters.clone(),
            },
        )
        .await?;
        fabric.wait_connected(WAIT).await.map_err(|e| anyhow!(e))?;
        let lab = Lab {
            ctl,
            router,
            fabric,
            roles,
            serve,
        };
        lab.wait_planned().await?;
        // Hosts with IPv6 take their default router from the advertisement each switch
        // sends once its table is in place.
        let ok = lab
            .fabric
            .wait_until(WAIT, |f| {
                f.hosts()
                    .iter()
                    .all(|h| h.addrs6.is_empty() || h.router6.is_some())
            })
            .await;
        if !ok {
            bail!("hosts with IPv6 got no router advertisement within {WAIT:?}");
        }
        Ok(lab)
    }

    fn switch_names(&self) -> Vec<String> {
        self.fabric
            .topology()
            .switches
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Waits until every switch's table is exactly what the router plans.
    pub async fn wait_planned(&self) -> Result<()> {
        let names = self.switch_names();
        let router = &self.router;
        let ok = self
            .fabric
            .wait_until(WAIT, |f| {
                names.iter().all(|n| {
                    let live: BTreeSet<String> =
                        f.dump_flows(n).lines().map(str::to_string).collect();
                    let want: BTreeSet<String> =
                        router.switch_plan(n).iter().map(|f| f.text()).collect();
                    live == want
                })
            })
            .await;
        if !ok {
            bail!("the switches' tables did not reach the plan within {WAIT:?}");
        }
        Ok(())
    }

    /// Whether a ping from host `from` to `to` is answered within `within`.
    pub async fn reaches(&self, from: &str, to: impl Into<IpAddr>, within: Duration) -> bool {
        self.fabric.ping(from, to, within).await.is_some()
    }

    /// Moves `host` to `switch:port` as a hypervisor does (the port moves, then QEMU's RARP),
    /// and waits until the controller has it there and every table is as planned.
    pub async fn migrate(&self, host: &str, switch: &str, port: u32) -> Result<Duration> {
        let t0 = Instant::now();
        self.fabric.migrate_host(host, switch, port)?;
        let mac = self.fabric.host(host).mac;
        let router = &self.router;
        let ok = self
            .fabric
            .wait_until(WAIT, |_| {
                router
                    .host_states()
                    .iter()
                    .any(|h| h.mac == mac && h.location == (switch.to_string(), port))
                    && !router.is_migrating(mac)
            })
            .await;
        if !ok {
            bail!("the controller did not move {host} to {switch}:{port} within {WAIT:?}");
        }
        self.wait_planned().await?;
        Ok(t0.elapsed())
    }

    /// Every care-of address (IPv4 and IPv6) the controller holds now.
    pub fn care_of_addresses(&self) -> BTreeSet<IpAddr> {
        self.router
            .host_states()
            .into_iter()
            .flat_map(|h| {
                h.care_of
                    .into_iter()
                    .map(IpAddr::from)
                    .chain(h.care_of6.into_iter().map(IpAddr::from))
            })
            .collect()
    }

    /// Hosts that ever received an IPv4 or IPv6 packet from or to one of `addrs`.
    pub fn hosts_that_saw(&self, addrs: &BTreeSet<IpAddr>) -> Vec<String> {
        let seen = |a: IpAddr| addrs.contains(&a);
        self.fabric
            .hosts()
            .into_iter()
            .filter(|h| {
                self.fabric.received(&h.name).iter().any(|r| {
                    r.ipv4()
                        .is_some_and(|ip| seen(ip.src.into()) || seen(ip.dst.into()))
                        || r.ipv6()
                            .is_some_and(|ip| seen(ip.src.into()) || seen(ip.dst.into()))
                })
            })
            .map(|h| h.name)
            .collect()
    }

    /// A host's addresses of one family, in file order.
    fn addresses(&self, host: &str, family: Family) -> Vec<IpAddr> {
        let h = self.fabric.host(host);
        match family {
            Family::V4 => h.addrs.iter().map(|a| IpAddr::from(a.0)).collect(),
            Family::V6 => h.addrs6.iter().map(|a| IpAddr::from(a.0)).collect(),
        }
    }

    /// [`Lab::case_in`] over IPv4.
    pub async fn case(&self, case: u8, title: &'static str, from: &str, to: &str) -> CaseResult {
        self.case_in(Family::V4, case, title, from, to).await
    }

    /// One case in one family: `from` pings `to` (its first address of the family) a few
    /// times; the answers, what the peer saw, and whether the last request came directly.
    pub async fn case_in(
        &self,
        family: Family,
        case: u8,
        title: &'static str,
        from: &str,
        to: &str,
    ) -> CaseResult {
        let dst = self
            .addresses(to, family)
            .first()
            .copied()
            .unwrap_or(match family {
                Family::V4 => std::net::Ipv4Addr::UNSPECIFIED.into(),
                Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
            });
        let src_ips = self.addresses(from, family);
        let from_mac = self.fabric.host(from).mac;
        let before = self.fabric.received(to).len();
        let mut replies = Vec::new();
        // Like `ping -i 0.05`: Linux sends its second redirect no sooner than 20 ms after
        // the first, and the first only makes the host resolve the new next hop.
        for i in 0..4 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            replies.push(self.fabric.ping(from, dst, PING).await);
        }
        let got = self.fabric.received(to);
        // Echo requests to `dst`: (source, TTL or hop limit, Ethernet source).
        let requests: Vec<(IpAddr, u8, ofp13::MacAddr)> = got
            .get(before..)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let eth = r.eth()?.src;
                match family {
                    Family::V4 => r
                        .ipv4()
                        .filter(|ip| ip.dst == dst && r.icmp() == Some((ICMP_ECHO_REQUEST, 0)))
                        .map(|ip| (ip.src.into(), ip.ttl, eth)),
                    Family::V6 => r
                        .ipv6()
                        .filter(|ip| ip.dst == dst && r.icmp6() == Some((icmp6::ECHO_REQUEST, 0)))
                        .map(|ip| (ip.src.into(), ip.hop_limit, eth)),
                }
            })
            .collect();
        let mut peer_saw: Vec<IpAddr> = requests.iter().map(|r| r.0).collect();
        peer_saw.dedup();
        let direct = requests
            .last()
            .is_some_and(|&(_, ttl, eth)| eth == from_mac && ttl == 64);
        let reply_from = replies.iter().flatten().last().map(|r| r.from);
        let answered = replies.iter().filter(|r| r.is_some()).count();
        let mut why = Vec::new();
        if answered < replies.len() {
            why.push(format!(
                "{answered} of {} echo requests answered",
                replies.len()
            ));
        }
        if reply_from.is_some_and(|r| r != dst) {
            why.push(format!("answer came from {reply_from:?}, not {dst}"));
        }
        if peer_saw.iter().any(|a| !src_ips.contains(a)) {
            why.push(format!("{to} saw {peer_saw:?}, not {from}'s own address"));
        }
        CaseResult {
            case,
            title,
            from: from.to_string(),
            to: to.to_string(),
            dst,
            reply_from,
            peer_saw,
            path: if direct { "direct" } else { "routed" },
            ok: why.is_empty(),
            why: why.join("; "),
        }
    }

    /// The families every part of Fig. 3 has an address in (IPv4 first).
    pub fn families(&self, r: &Roles) -> Vec<Family> {
        [Family::V4, Family::V6]
            .into_iter()
            .filter(|f| {
                [&r.c, &r.d, &r.b, &r.e, &r.d_star]
                    .iter()
                    .all(|h| !self.addresses(h, *f).is_empty())
            })
            .collect()
    }

    /// The whole scenario: C moves to F, cases 1 to 6; D* moves to F, case 7 (both ways);
    /// D* moves on to the third network, case 8 (both ways); then both go home and the tables
    /// must be exactly as before. Each case runs in every family all the parts have
    /// addresses in ([`Lab::families`]: IPv4, then IPv6). Returns every case and a list of
    /// failed checks.
    pub async fn run_all(&self) -> Result<(Vec<CaseResult>, Vec<String>)> {
        let mut moves = Vec::new();
        let res = self.run_all_logged(&mut moves).await;
        for m in moves {
            println!("{m}");
        }
        println!();
        res
    }

    async fn moved(&self, moves: &mut Vec<String>, host: &str, sw: &str, port: u32) -> Result<()> {
        let took = self.migrate(host, sw, port).await?;
        let mac = self.fabric.host(host).mac;
        let co = self
            .router
            .host_states()
            .into_iter()
            .find(|h| h.mac == mac)
            .map(|h| {
                let v4 = h.care_of.into_iter().map(IpAddr::from);
                v4.chain(h.care_of6.into_iter().map(IpAddr::from))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        moves.push(format!(
            "{host} moved to {sw}:{port} (RARP only){}: tables converged in {:.1} ms",
            if co.is_empty() {
                ", home again".to_string()
            } else {
                format!(
                    ", care-of {}",
                    co.iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            },
            took.as_secs_f64() * 1e3
        ));
        Ok(())
    }

    async fn run_all_logged(
        &self,
        moves: &mut Vec<String>,
    ) -> Result<(Vec<CaseResult>, Vec<String>)> {
        let r = self.roles.clone().ok_or_else(|| {
            anyhow!(
                "{}",
                Roles::pick(self.fabric.topology())
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            )
        })?;
        let mut failures = Vec::new();
        let names = self.switch_names();
        let tables_before: Vec<String> = names.iter().map(|n| self.fabric.dump_flows(n)).collect();
        let c_home = {
            let h = self.fabric.host(&r.c);
            (h.switch, h.port)
        };
        let d_home = {
            let h = self.fabric.host(&r.d_star);
            (h.switch, h.port)
        };
        let families = self.families(&r);
        if families.is_empty() {
            bail!("the parts of Fig. 3 share no address family");
        }
        let mut out = Vec::new();
        self.moved(moves, &r.c, &r.c_to.0, r.c_to.1).await?;
        for &f in &families {
            out.push(self.case_in(f, 1, "C* -> E", &r.c, &r.e).await);
            out.push(self.case_in(f, 2, "E -> C*", &r.e, &r.c).await);
            out.push(self.case_in(f, 3, "C* -> D", &r.c, &r.d).await);
            out.push(self.case_in(f, 4, "D -> C*", &r.d, &r.c).await);
            out.push(self.case_in(f, 5, "C* -> B", &r.c, &r.b).await);
            out.push(self.case_in(f, 6, "B -> C*", &r.b, &r.c).await);
        }
        self.moved(moves, &r.d_star, &r.d_star_to.0, r.d_star_to.1)
            .await?;
        for &f in &families {
            out.push(self.case_in(f, 7, "C* -> D*", &r.c, &r.d_star).await);
            out.push(self.case_in(f, 7, "D* -> C*", &r.d_star, &r.c).await);
        }
        self.moved(moves, &r.d_star, &r.d_star_star_to.0, r.d_star_star_to.1)
            .await?;
        for &f in &families {
            out.push(self.case_in(f, 8, "C* -> D**", &r.c, &r.d_star).await);
            out.push(self.case_in(f, 8, "D** -> C*", &r.d_star, &r.c).await);
        }
        out.sort_by_key(|c| Family::of(c.dst) == Family::V6);
        let care_of = self.care_of_addresses();
        // Cases 5 to 7 end with the two talking directly, as the paper's redirects intend.
        for c in &out {
            if matches!(c.case, 5..=7) && c.path != "direct" {
                failures.push(format!(
                    "case {} {}: still routed after the ICMP redirect",
                    c.case, c.title
                ));
            }
        }
        self.moved(moves, &r.d_star, &d_home.0, d_home.1).await?;
        self.moved(moves, &r.c, &c_home.0, c_home.1).await?;
        let saw = self.hosts_that_saw(&care_of);
        if !saw.is_empty() {
            failures.push(format!("hosts {saw:?} saw a care-of address ({care_of:?})"));
        }
        let tables_after: Vec<String> = names.iter().map(|n| self.fabric.dump_flows(n)).collect();
        for ((n, b), a) in names.iter().zip(&tables_before).zip(&tables_after) {
            let b: BTreeSet<&str> = b.lines().collect();
            let a: BTreeSet<&str> = a.lines().collect();
            let mut d: Vec<String> = b.difference(&a).map(|l| format!("-{l}")).collect();
            d.extend(a.difference(&b).map(|l| format!("+{l}")));
            if !d.is_empty() {
                failures.push(format!(
                    "{n}: table after returning home differs from before:\n{}",
                    d.join("\n")
                ));
            }
        }
        for c in &out {
            if !c.ok {
                failures.push(format!("case {} {}: {}", c.case, c.title, c.why));
            }
        }
        Ok((out, failures))
    }

    pub async fn stop(self) {
        self.fabric.shutdown().await;
        self.ctl.shutdown(Duration::from_secs(5)).await;
        let _ = self.serve.await;
    }
}

/// Prints the cases as a table.
pub fn table(cases: &[CaseResult]) -> String {
    let width = cases
        .iter()
        .map(|c| c.dst.to_string().len())
        .max()
        .unwrap_or(0)
        .max(15);
    let mut s = String::new();
    s.push_str(&format!(
        "{:<5} {:<10} {:<6} {:<6} {:<w$} {:<w$} {:<w$} {:<7} {}\n",
        "case",
        "",
        "from",
        "to",
        "pinged",
        "answer from",
        "peer saw source",
        "path",
        "result",
        w = width
    ));
    for c in cases {
        s.push_str(&format!(
            "{:<5} {:<10} {:<6} {:<6} {:<w$} {:<w$} {:<w$} {:<7} {}\n",
            c.case,
            c.title,
            c.from,
            c.to,
            c.dst.to_string(),
            c.reply_from.map_or("-".into(), |a| a.to_string()),
            c.peer_saw
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
            c.path,
            if c.ok {
                "pass".to_string()
            } else {
                format!("FAIL: {}", c.why)
            },
            w = width
        ));
    }
    s
}

/// `servswitch demo`: runs the scenario on `topology` and prints the table; Ok(true) when
/// every case passed.
pub fn run(topology: &std::path::Path) -> Result<bool> {
    let t = Topology::load(topology).map_err(|e| anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let r = Roles::pick(&t)?;
        let lab = Lab::start(&t).await?;
        println!(
            "servswitch demo: {} on an emulated fabric ({} switches, {} hosts)",
            topology.display(),
            t.switches.len(),
            t.hosts.len()
        );
        println!(
            "C = {}, D = {}, B = {}, E = {}, D* = {}; C moves to {}:{}, D* to {}:{} then {}:{}\n",
            r.c, r.d, r.b, r.e, r.d_star, r.c_to.0, r.c_to.1, r.d_star_to.0, r.d_star_to.1,
            r.d_star_star_to.0, r.d_star_star_to.1
        );
        let result = lab.run_all().await;
        lab.stop().await;
        let (cases, failures) = result?;
        print!("{}", table(&cases));
        println!();
        if failures.is_empty() {
            println!("all {} cases passed; no host ever saw a care-of address; tables back to their state before", cases.len());
            Ok(true)
        } else {
            for f in &failures {
                println!("FAIL: {f}");
            }
            Ok(false)
        }
    })
}
