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
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::router::Router;
use crate::emu::fabric::EmuFabric;
use crate::fabric::plan::Fabric;
use crate::fabric::topology::{Tier, Topology};
use crate::packet::ICMP_ECHO_REQUEST;
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
                    h.addresses()
                        .first()
                        .is_some_and(|ip| subnet.prefix.contains(*ip))
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

/// One case of Fig. 3 as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub case: u8,
    pub title: &'static str,
    pub from: String,
    pub to: String,
    /// The address pinged (the peer's home address).
    pub dst: Ipv4Addr,
    /// The source address of the answer the sender got.
    pub reply_from: Option<Ipv4Addr>,
    /// The source addresses the peer saw on the echo requests.
    pub peer_saw: Vec<Ipv4Addr>,
    /// "routed", or "direct" when the last request reached the peer straight from the
    /// sender's MAC with its TTL untouched.
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
    pub async fn reaches(&self, from: &str, to: Ipv4Addr, within: Duration) -> bool {
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

    /// Every care-of address the controller holds now.
    pub fn care_of_addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.router
            .host_states()
            .into_iter()
            .flat_map(|h| h.care_of)
            .collect()
    }

    /// Hosts that ever received a packet from or to one of `addrs`.
    pub fn hosts_that_saw(&self, addrs: &BTreeSet<Ipv4Addr>) -> Vec<String> {
        self.fabric
            .hosts()
            .into_iter()
            .filter(|h| {
                self.fabric.received(&h.name).iter().any(|r| {
                    r.ipv4()
                        .is_some_and(|ip| addrs.contains(&ip.src) || addrs.contains(&ip.dst))
                })
            })
            .map(|h| h.name)
            .collect()
    }

    /// One case: `from` pings `to` (its first address) a few times; the answers, what the
    /// peer saw, and whether the last request came directly.
    pub async fn case(&self, case: u8, title: &'static str, from: &str, to: &str) -> CaseResult {
        let dst = self
            .fabric
            .host(to)
            .addrs
            .first()
            .map_or(Ipv4Addr::UNSPECIFIED, |a| a.0);
        let src_ips: Vec<Ipv4Addr> = self.fabric.host(from).addrs.iter().map(|a| a.0).collect();
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
        let requests: Vec<_> = got
            .get(before..)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.icmp() == Some((ICMP_ECHO_REQUEST, 0)))
            .filter(|r| r.ipv4().is_some_and(|ip| ip.dst == dst))
            .collect();
        let mut peer_saw: Vec<Ipv4Addr> = requests
            .iter()
            .filter_map(|r| r.ipv4().map(|ip| ip.src))
            .collect();
        peer_saw.dedup();
        let direct = requests.last().is_some_and(|r| {
            r.eth().is_some_and(|e| e.src == from_mac) && r.ipv4().is_some_and(|ip| ip.ttl == 64)
        });
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

    /// The whole scenario: C moves to F, cases 1 to 6; D* moves to F, case 7 (both ways);
    /// D* moves on to the third network, case 8 (both ways); then both go home and the tables
    /// must be exactly as before. Returns every case and a list of failed checks.
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
            .map(|h| h.care_of)
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
        self.moved(moves, &r.c, &r.c_to.0, r.c_to.1).await?;
        let mut out = vec![
            self.case(1, "C* -> E", &r.c, &r.e).await,
            self.case(2, "E -> C*", &r.e, &r.c).await,
            self.case(3, "C* -> D", &r.c, &r.d).await,
            self.case(4, "D -> C*", &r.d, &r.c).await,
            self.case(5, "C* -> B", &r.c, &r.b).await,
            self.case(6, "B -> C*", &r.b, &r.c).await,
        ];
        self.moved(moves, &r.d_star, &r.d_star_to.0, r.d_star_to.1)
            .await?;
        out.push(self.case(7, "C* -> D*", &r.c, &r.d_star).await);
        out.push(self.case(7, "D* -> C*", &r.d_star, &r.c).await);
        self.moved(moves, &r.d_star, &r.d_star_star_to.0, r.d_star_star_to.1)
            .await?;
        out.push(self.case(8, "C* -> D**", &r.c, &r.d_star).await);
        out.push(self.case(8, "D** -> C*", &r.d_star, &r.c).await);
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
    let mut s = String::new();
    s.push_str(&format!(
        "{:<5} {:<10} {:<6} {:<6} {:<15} {:<15} {:<20} {:<7} {}\n",
        "case", "", "from", "to", "pinged", "answer from", "peer saw source", "path", "result"
    ));
    for c in cases {
        s.push_str(&format!(
            "{:<5} {:<10} {:<6} {:<6} {:<15} {:<15} {:<20} {:<7} {}\n",
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
            }
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
