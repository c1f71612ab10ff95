//! `ofload`: a cbench-like load generator for OpenFlow 1.3 controllers.
//!
//! N emulated switches connect to a controller over real TCP and complete a real handshake
//! (HELLO, FEATURES_REPLY with the topology's datapath id, PORT_DESC, BARRIER), answer what
//! the controller sends afterwards (ECHO, BARRIER, ROLE, GET_CONFIG, GET_ASYNC, flow-stats
//! with an empty table, aggregate stats with flow_count 0, DESC; FLOW_MODs are accepted,
//! counted and otherwise ignored, except that the migration workload keeps the entries naming
//! its VMs to check against), and send PACKET_INs of one workload. Every response is checked
//! (type, output port, addresses); wrong ones are counted apart. See docs/loadgen.md.
//!
//! By concern: [`cli`] (the command line), [`hosts`] (switches, hosts and VMs from the
//! topology), [`workload`] (what each switch sends), [`responder`] (the switch side of the
//! protocol), [`table`] (the migration workload's fake table), [`check`] (every response
//! checked), [`hist`] (latencies and counters), [`driver`] (one switch's task); this file
//! holds the shared context and `main`. The modules share the imports and items of this root
//! (`use crate::*`): they are one program cut by concern, not a library.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use ofp13::{
    Action, AggregateStats, Body, Desc, ErrorMsg, FlowMod, Instruction, MacAddr, Message,
    MultipartReply, MultipartReplyBody, MultipartRequestBody, Oxm, PacketIn, PacketOut, Port,
    SwitchConfig, SwitchFeatures, MAX_MESSAGE_LEN,
};
use servswitch::fabric::plan::{self, FastMap, GATEWAY_MAC};
use servswitch::fabric::topology::Topology;
use servswitch::packet::{self, Arp, Ethernet};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

mod check;
mod cli;
mod driver;
mod hist;
mod hosts;
mod responder;
mod table;
mod workload;

use check::*;
use cli::*;
use driver::*;
use hist::*;
use hosts::*;
use responder::*;
use table::*;
use workload::*;

/// How long servswitch holds packets for an unresolved address (router.rs `HOLD_FOR`, 3 s)
/// plus a margin: an address is asked for again only after this long.
const UNRESOLVED_REUSE: Duration = Duration::from_millis(3200);
/// Bytes of requests made but not yet taken by the socket, beyond which no more are made.
const UNSENT_MAX: usize = 64 * 1024;
/// The controller counts as done with what it was sending after this long without a message.
const QUIET: Duration = Duration::from_millis(100);
struct Ctx {
    addr: SocketAddr,
    workload: Workload,
    window: usize,
    timeout: Duration,
    /// Every switch is up: requests may be sent.
    go: AtomicBool,
    measuring: AtomicBool,
    /// The measured period is over: no new requests; those in flight are answered or time out.
    draining: AtomicBool,
    /// Switches with nothing in flight while draining.
    drained: AtomicUsize,
    /// When any switch last received a message (µs since `t0`): the run ends when the
    /// controller has gone quiet, not in the middle of what it is sending.
    last_rx_us: AtomicU64,
    t0: Instant,
    stop: AtomicBool,
    up: AtomicUsize,
    switches: Vec<SwInfo>,
    vms: Vec<Vm>,
    vm_state: Vec<AtomicU8>,
    /// A host of another rack, per loaded switch (newflow's destination).
    far_host: HashMap<usize, Ipv4Addr>,
    /// Per switch: wakes its task when a VM it may move next became free (migration).
    wake: Vec<tokio::sync::Notify>,
}

impl Ctx {
    /// How long no switch has received anything.
    fn quiet_for(&self) -> Duration {
        let last = self.t0 + Duration::from_micros(self.last_rx_us.load(Relaxed));
        last.elapsed()
    }

    /// Sets VM `k`'s state and wakes both switches that may move it next.
    fn vm_done(&self, k: usize, state: u8) {
        if let (Some(s), Some(vm)) = (self.vm_state.get(k), self.vms.get(k)) {
            s.store(state, Relaxed);
            for i in [vm.home.0, vm.foreign.0] {
                if let Some(w) = self.wake.get(i) {
                    w.notify_one();
                }
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let topo = Topology::load(&args.topology)
        .with_context(|| format!("loading {}", args.topology.display()))?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&args.controller)?
        .next()
        .context("controller address")?;
    let switches = load_switches(&topo, args.switches, args.spare_ports)?;
    let topo_ips: HashSet<Ipv4Addr> = topo.hosts.iter().flat_map(|h| h.addresses()).collect();
    let loaded: Vec<usize> = switches
        .iter()
        .filter(|s| s.loaded)
        .map(|s| s.idx)
        .collect();
    let mut vms = Vec::new();
    if args.workload == Workload::Migration {
        let n = loaded.len();
        if n < 2 {
            bail!("migration needs at least 2 loaded switches");
        }
        for (i, &s) in loaded.iter().enumerate() {
            let f = *loaded.get((i + n / 2) % n).context("foreign")?;
            let sw = switches.get(s).context("switch")?;
            let fsw = switches.get(f).context("switch")?;
            let mut seen = HashSet::new();
            for h in &sw.hosts {
                if !seen.insert(h.mac) {
                    continue;
                }
                let k = seen.len() as u32 - 1;
                if fsw.spare_first + k > fsw.nports {
                    break;
                }
                let ips = sw
                    .hosts
                    .iter()
                    .filter(|x| x.mac == h.mac)
                    .map(|x| x.ip)
                    .collect();
                vms.push(Vm {
                    mac: h.mac,
                    ips,
                    home: (s, h.port),
                    foreign: (f, fsw.spare_first + k),
                });
            }
        }
    }
    let mut far_host = HashMap::new();
    for (i, &s) in loaded.iter().enumerate() {
        let other = *loaded.get((i + 1) % loaded.len()).context("rack")?;
        if let Some(h) = switches.get(other).and_then(|x| x.hosts.first()) {
            if other != s {
                far_host.insert(s, h.ip);
            }
        }
    }
    let window = match args.mode {
        Mode::Throughput if args.window == 0 => usize::MAX,
        Mode::Throughput => args.window,
        Mode::Latency => 1,
    };
    let connect_all = args.all_switches || args.workload == Workload::Migration;
    let ctx = Arc::new(Ctx {
        addr,
        workload: args.workload,
        window,
        timeout: Duration::from_millis(args.timeout_ms),
        go: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        drained: AtomicUsize::new(0),
        last_rx_us: AtomicU64::new(0),
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        up: AtomicUsize::new(0),
        vm_state: vms.iter().map(|_| AtomicU8::new(HOME_IDLE)).collect(),
        vms,
        wake: switches
            .iter()
            .map(|_| tokio::sync::Notify::new())
            .collect(),
        switches,
        far_host,
    });
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let stats = rt.block_on(async {
        let mut tasks = Vec::new();
        for sw in ctx.switches.iter().filter(|s| s.loaded || connect_all) {
            let gen = make_gen(&ctx, sw, &topo_ips);
            tasks.push(tokio::spawn(switch(ctx.clone(), sw.idx, gen)));
        }
        let total = tasks.len();
        let t0 = Instant::now();
        while ctx.up.load(Relaxed) < total {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!(
                    "only {} of {total} switches came up in 20 s",
                    ctx.up.load(Relaxed)
                );
            }
            if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
                let _ = t;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Load starts when every switch is up (a migration's flow mods go to other switches)
        // and the controller has installed their tables (it has sent nothing for a while): a
        // migration's check needs the switch's entries from before the RARP (an initial
        // table computed before a move but arriving after the next RARP would otherwise look
        // like that move's entries).
        let settle = Instant::now() + Duration::from_secs(2);
        while Instant::now() < settle && ctx.quiet_for() < QUIET {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ctx.go.store(true, Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
        ctx.measuring.store(true, Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        ctx.draining.store(true, Relaxed);
        ctx.measuring.store(false, Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        // Drain: what is in flight is answered (or times out, counted), then the controller
        // finishes what it was sending (a migration's second step, its barriers) before the
        // switches disconnect, so a run never ends in the middle of the controller's work.
        let give_up = Instant::now() + ctx.timeout + Duration::from_secs(2);
        while Instant::now() < give_up {
            if ctx.drained.load(Relaxed) >= total && ctx.quiet_for() >= QUIET {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ctx.stop.store(true, Relaxed);
        let mut all = Stats::new();
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(2), t).await {
                Ok(Ok(Ok(s))) => all.merge(&s),
                Ok(Ok(Err(e))) => bail!("switch failed: {e:#}"),
                Ok(Err(e)) => bail!("switch task: {e}"),
                Err(_) => bail!("a switch did not stop"),
            }
        }
        // newflow runs out of new addresses: its rate is over the time it had work.
        let elapsed = match (args.workload, all.last_ok) {
            (Workload::Newflow, Some(t)) => t.duration_since(start).as_secs_f64().min(elapsed),
            _ => elapsed,
        };
        Ok((all, elapsed, total))
    })?;
    let (st, elapsed, total) = stats;
    let rate = st.ok as f64 / elapsed;
    println!(
        "ofload: workload {:?}, {:?} mode ({} in flight per switch), {} loaded switches ({} connected), {:.1} s measured after {:.1} s warm-up, controller {}",
        args.workload,
        args.mode,
        if window == usize::MAX { "unbounded".to_string() } else { window.to_string() },
        loaded.len(),
        total,
        elapsed,
        args.warmup,
        addr
    );
    println!(
        "checked responses: {} ({:.0}/s); wrong {}; timed out {}; requests sent {}",
        st.ok, rate, st.wrong, st.timeouts, st.sent
    );
    println!(
        "latency: p50 {} us, p99 {} us, max {} us",
        st.percentile(0.5),
        st.percentile(0.99),
        st.max_us
    );
    println!(
        "also received (whole run): {} flow/group/meter mods, {} barriers, {} flow/aggregate stats requests, {} other",
        st.flow_mods, st.barriers, st.stats_requests, st.other
    );
    if let Some(w) = &st.first_wrong {
        println!("first wrong response: {w}");
    }
    println!(
        "RESULT workload={:?} mode={:?} switches={} responses_per_s={:.0} p50_us={} p99_us={} wrong={} timeouts={}",
        args.workload,
        args.mode,
        loaded.len(),
        rate,
        st.percentile(0.5),
        st.percentile(0.99),
        st.wrong,
        st.timeouts
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ofp13::Match;

    const VM_MAC: MacAddr = MacAddr([2, 0, 0, 1, 0, 0]);
    const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);

    fn sw_info(idx: usize, name: &str) -> SwInfo {
        SwInfo {
            idx,
            name: name.into(),
            dpid: idx as u64 + 1,
            nports: 8,
            // Ports 1 and 2 are links.
            host_ports: (3..=8).collect(),
            hosts: Vec::new(),
            subnet: None,
            spare_first: 5,
            loaded: true,
        }
    }

    #[test]
    fn the_wire_check_of_arp_replies_takes_only_exact_answers() {
        let host = Host {
            ip: Ipv4Addr::new(10, 0, 1, 5),
            mac: MacAddr([2, 0, 0, 1, 0, 5]),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            port: 4,
        };
        let mut sw = sw_info(0, "t1");
        sw.hosts.push(host.clone());
        let by_ip: FastMap<Ipv4Addr, usize> = [(host.ip, 0)].into_iter().collect();
        let reply = |port: u32, sha: MacAddr, extra: Option<Action>| {
            let frame = Arp {
                op: packet::ARP_REPLY,
                sha,
                spa: host.gateway,
                tha: host.mac,
                tpa: host.ip,
            }
            .frame(host.mac, sha, packet::ETH_ARP);
            let mut actions = vec![Action::output(port)];
            actions.extend(extra);
            let mut out = Vec::new();
            Message::new(
                7,
                Body::PacketOut(PacketOut {
                    buffer_id: ofp13::NO_BUFFER,
                    in_port: ofp13::port::CONTROLLER,
                    actions: actions.into(),
                    data: Bytes::from(frame),
                }),
            )
            .emit(&mut out);
            out
        };
        assert_eq!(
            good_arp_reply(&sw, &by_ip, &reply(4, GATEWAY_MAC, None)),
            Some(0)
        );
        // Wrong port, wrong sender: not taken (the full check then counts them wrong).
        assert_eq!(
            good_arp_reply(&sw, &by_ip, &reply(3, GATEWAY_MAC, None)),
            None
        );
        let other = MacAddr([2, 0, 0, 9, 9, 9]);
        assert_eq!(good_arp_reply(&sw, &by_ip, &reply(4, other, None)), None);
        // A second action: left to the full check, which reads every action.
        let two = reply(4, GATEWAY_MAC, Some(Action::output(5)));
        assert_eq!(good_arp_reply(&sw, &by_ip, &two), None);
        // Cut short anywhere before the end of the ARP body: never a panic, never taken
        // (the Ethernet padding after it carries nothing).
        let good = reply(4, GATEWAY_MAC, None);
        for n in 0..24 + 16 + 14 + 28 {
            assert_eq!(good_arp_reply(&sw, &by_ip, good.get(..n).unwrap()), None);
        }
    }

    /// Two switches; one VM at home at port 3 of t1, moving to port 5 of t2.
    fn ctx() -> Ctx {
        let switches = vec![sw_info(0, "t1"), sw_info(1, "t2")];
        Ctx {
            addr: "127.0.0.1:1".parse().unwrap(),
            workload: Workload::Migration,
            window: 8,
            timeout: Duration::from_secs(1),
            go: AtomicBool::new(true),
            measuring: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            drained: AtomicUsize::new(0),
            last_rx_us: AtomicU64::new(0),
            t0: Instant::now(),
            stop: AtomicBool::new(false),
            up: AtomicUsize::new(0),
            vms: vec![Vm {
                mac: VM_MAC,
                ips: vec![VM_IP],
                home: (0, 3),
                foreign: (1, 5),
            }],
            vm_state: vec![AtomicU8::new(HOME_IDLE)],
            far_host: HashMap::new(),
            wake: switches
                .iter()
                .map(|_| tokio::sync::Notify::new())
                .collect(),
            switches,
        }
    }

    /// servswitch's switching entry for the VM at `port` (table 1, eth_dst -> output).
    fn switching(command: u8, port: u32) -> Message {
        Message::new(
            0,
            Body::FlowMod(FlowMod {
                command,
                table_id: 1,
                priority: 500,
                match_: Match::new(vec![Oxm::EthDst(VM_MAC, None)]),
                instructions: vec![Instruction::ApplyActions {
                    actions: vec![Action::output(port)],
                }],
                ..FlowMod::default()
            }),
        )
    }

    /// servswitch's source entry (in_port, eth_src): names the port but delivers nothing.
    fn source(command: u8, port: u32) -> Message {
        Message::new(
            0,
            Body::FlowMod(FlowMod {
                command,
                table_id: 0,
                priority: 100,
                match_: Match::new(vec![Oxm::InPort(port, None), Oxm::EthSrc(VM_MAC, None)]),
                instructions: vec![Instruction::GotoTable { table_id: 1 }],
                ..FlowMod::default()
            }),
        )
    }

    fn barrier() -> Message {
        Message::new(0, Body::BarrierRequest)
    }

    /// Switch `idx` sends the VM's RARP; then it receives `msgs`. Returns its stats, and
    /// whether the move is still in flight.
    fn run(ctx: &Ctx, idx: usize, before: &[Message], msgs: &[Message]) -> (Stats, bool) {
        let sw = &ctx.switches[idx];
        let mut gen = make_gen(ctx, sw, &HashSet::new());
        let mut fl = InFlight(VecDeque::new());
        let mut st = Stats::new();
        let now = Instant::now();
        for m in before {
            check(ctx, sw, &mut gen, &mut fl, m, &mut st, now);
        }
        let (k, _) = gen.next(ctx, sw, now).expect("a RARP to send");
        fl.0.push_back((k, now));
        for m in msgs {
            check(ctx, sw, &mut gen, &mut fl, m, &mut st, now);
        }
        (st, !fl.0.is_empty())
    }

    #[test]
    fn delivery_at_the_new_port_then_a_barrier_completes_the_move() {
        let ctx = ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &[],
            &[
                source(ofp13::OFPFC_ADD, 5),
                switching(ofp13::OFPFC_ADD, 5),
                barrier(),
            ],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        assert_eq!(ctx.vm_state[0].load(Relaxed), AWAY_IDLE);
    }

    #[test]
    fn no_barrier_no_completion_and_deletes_are_no_delivery() {
        let ctx = ctx();
        let (st, pending) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 5)]);
        assert_eq!((st.ok, pending), (0, true));
        // The old rule's false positive: strict deletes naming the port (the VM leaving it).
        let ctx = self::ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &[],
            &[
                source(ofp13::OFPFC_DELETE_STRICT, 5),
                switching(ofp13::OFPFC_DELETE_STRICT, 5),
                barrier(),
            ],
        );
        assert_eq!((st.ok, pending), (0, true));
        // Only a source entry: the port is named, but nothing is delivered there.
        let ctx = self::ctx();
        let (st, pending) = run(&ctx, 1, &[], &[source(ofp13::OFPFC_ADD, 5), barrier()]);
        assert_eq!((st.ok, pending), (0, true));
    }

    #[test]
    fn a_leftover_delivery_counts_only_once_removed_and_installed_again() {
        // Back home: t1 still has the VM's home entries (the previous move's second step,
        // which removes them, is not in yet), and an audit re-sends them.
        let ctx = ctx();
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let home = [switching(ofp13::OFPFC_ADD, 3)];
        let (st, pending) = run(&ctx, 0, &home, &[switching(ofp13::OFPFC_ADD, 3), barrier()]);
        assert_eq!(
            (st.ok, pending),
            (0, true),
            "nothing was installed for this move"
        );
        let ctx = self::ctx();
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let (st, pending) = run(
            &ctx,
            0,
            &home,
            &[
                // The previous move's second step: the VM leaves t1.
                switching(ofp13::OFPFC_DELETE_STRICT, 3),
                barrier(),
                // This move's first step.
                switching(ofp13::OFPFC_ADD, 3),
                barrier(),
            ],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        assert_eq!(ctx.vm_state[0].load(Relaxed), HOME_IDLE);
    }

    #[test]
    fn a_new_delivery_beside_a_leftover_one_completes_the_move() {
        // Back at t2 within the drain of its previous stay there: the delivery of its previous
        // care-of address is still in the table when the RARP comes; the delivery of the new
        // one (another match) is installed for this move.
        let delivery = |care_of: [u8; 4], command: u8| {
            Message::new(
                0,
                Body::FlowMod(FlowMod {
                    command,
                    table_id: 4,
                    priority: 1032,
                    match_: Match::new(vec![
                        Oxm::EthType(0x0800, None),
                        Oxm::Ipv4Dst(care_of.into(), None),
                    ]),
                    instructions: vec![Instruction::ApplyActions {
                        actions: vec![
                            Action::SetField {
                                field: Oxm::EthDst(VM_MAC, None),
                            },
                            Action::output(5),
                        ],
                    }],
                    ..FlowMod::default()
                }),
            )
        };
        let ctx = ctx();
        let leftover = [delivery([10, 0, 2, 2], ofp13::OFPFC_ADD)];
        let (st, pending) = run(
            &ctx,
            1,
            &leftover,
            &[delivery([10, 0, 2, 3], ofp13::OFPFC_ADD), barrier()],
        );
        assert_eq!((st.ok, st.wrong, pending), (1, 0, false));
        // The leftover alone, sent again, installs nothing.
        let ctx = self::ctx();
        let (st, pending) = run(
            &ctx,
            1,
            &leftover,
            &[delivery([10, 0, 2, 2], ofp13::OFPFC_ADD), barrier()],
        );
        assert_eq!((st.ok, pending), (0, true));
    }

    #[test]
    fn a_non_strict_delete_removes_what_it_covers() {
        let ctx = ctx();
        let del_all = Message::new(
            0,
            Body::FlowMod(FlowMod {
                command: ofp13::OFPFC_DELETE,
                table_id: TABLE_ALL,
                ..FlowMod::default()
            }),
        );
        ctx.vm_state[0].store(AWAY_IDLE, Relaxed);
        let home = [switching(ofp13::OFPFC_ADD, 3)];
        let (st, _) = run(
            &ctx,
            0,
            &home,
            &[del_all, switching(ofp13::OFPFC_ADD, 3), barrier()],
        );
        assert_eq!(st.ok, 1);
    }

    #[test]
    fn delivery_at_another_host_port_is_wrong() {
        let ctx = ctx();
        let (st, pending) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 6), barrier()]);
        assert_eq!((st.ok, st.wrong, pending), (0, 1, true));
        // A link port (the home agent's tunnel toward the VM) is not a host port.
        let ctx = self::ctx();
        let (st, _) = run(&ctx, 1, &[], &[switching(ofp13::OFPFC_ADD, 2)]);
        assert_eq!(st.wrong, 0);
    }
}
