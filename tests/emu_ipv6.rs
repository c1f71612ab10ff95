//! IPv6 routing on the emulated fabric (issue 17, part 2): topologies/dual-stack.toml with the
//! controller, the emulated switches running the IPv6 pipeline (their flow tables read IPv6
//! as Open vSwitch does, tests/flowtable_vs_ovs.rs). The paper's eight cases run in both
//! families with the emulated hosts' own IPv6 stack (neighbour discovery, router
//! advertisements, echo, redirects, like Linux's); the other tests have the hosts send raw
//! frames and read what arrives. Solicitations of the gateways are
//! answered, packets are routed between subnets with their hop limit decremented and the
//! gateway's MAC, an address learned from duplicate address detection is delivered to, and a
//! claim for another host's address changes nothing.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;

use std::net::Ipv6Addr;
use std::time::Duration;

use ofp13::MacAddr;
use servswitch::cli::demo::Lab;
use servswitch::fabric::plan::{GATEWAY_LL, GATEWAY_MAC};
use servswitch::packet::icmp6::{self, Ipv6, Nd};
use servswitch::packet::{Ethernet, ETH_IPV6, IP_ICMPV6};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// How long a packet or a learning step may take on a loaded machine: the waits below end
/// as soon as what they wait for is there.
const WAIT: Duration = Duration::from_secs(5);

/// For a step that leaves nothing to wait for (a claim refused): a pause.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// Waits until the controller lists `addr` among its hosts' addresses: a learning step done
/// before the next step, which depends on it.
async fn until_known(lab: &Lab, addr: Ipv6Addr) {
    let addr = addr.to_string();
    let known = lab
        .fabric
        .wait_until(WAIT, |_| {
            servswitch::api::handlers::hosts(&lab.router)
                .iter()
                .any(|h| h.ips.contains(&addr))
        })
        .await;
    assert!(known, "the controller never learned {addr}");
}

/// The IPv6 packets `host` received: (eth src, eth dst, ip src, ip dst, hop limit, first
/// payload byte).
fn received6(lab: &Lab, host: &str) -> Vec<(MacAddr, MacAddr, Ipv6Addr, Ipv6Addr, u8, u8)> {
    lab.fabric
        .received(host)
        .iter()
        .filter_map(|r| {
            let e = Ethernet::parse(&r.frame).filter(|e| e.ethertype == ETH_IPV6)?;
            let ip = Ipv6::parse(e.payload)?;
            Some((
                e.src,
                e.dst,
                ip.src,
                ip.dst,
                ip.hop_limit,
                *ip.payload.first()?,
            ))
        })
        .collect()
}

fn echo(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, tag: u8) -> Vec<u8> {
    let m = icmp6::icmp6(src, dst, icmp6::ECHO_REQUEST, 0, &[0, 7, 0, tag, tag, tag]);
    icmp6::ipv6_frame(dst_mac, src_mac, src, dst, IP_ICMPV6, 64, &m)
}

fn solicit(mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = icmp6::solicited_node(target);
    let body = if src.is_unspecified() {
        icmp6::ns_body(target, mac)[..20].to_vec()
    } else {
        icmp6::ns_body(target, mac)
    };
    icmp6::icmp6_frame(
        icmp6::multicast_mac(group),
        mac,
        src,
        group,
        icmp6::NEIGHBOR_SOLICITATION,
        0,
        &body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_is_routed_and_the_gateways_answer_on_the_emulated_fabric() {
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    lab.wait_planned().await.unwrap();
    let d = lab.fabric.host("d").mac;
    let b = lab.fabric.host("b").mac;
    let (d6, b6) = (a("fd00:0:0:11::2"), a("fd00:0:0:10::2"));
    // The gateways, global and link-local, answer d's solicitations with the gateway MAC.
    for gw in [a("fd00:0:0:11::1"), GATEWAY_LL] {
        lab.fabric.send_raw("d", solicit(d, d6, gw));
    }
    let answers = |lab: &Lab| -> Vec<Ipv6Addr> {
        lab.fabric
            .received("d")
            .iter()
            .filter_map(|r| {
                let e = Ethernet::parse(&r.frame).filter(|e| e.ethertype == ETH_IPV6)?;
                let ip = Ipv6::parse(e.payload)?;
                let nd = Nd::parse(&ip).filter(|n| n.ty == icmp6::NEIGHBOR_ADVERTISEMENT)?;
                (nd.lla == Some(GATEWAY_MAC) && e.dst == d).then_some(nd.target)
            })
            .collect()
    };
    lab.fabric
        .wait_until(WAIT, |_| answers(&lab).len() >= 2)
        .await;
    assert_eq!(answers(&lab), [a("fd00:0:0:11::1"), GATEWAY_LL]);
    // Routed from d's subnet to b's, from the gateway MAC to b's.
    lab.fabric.send_raw("d", echo(d, GATEWAY_MAC, d6, b6, 1));
    let at_b = |lab: &Lab| -> Vec<_> {
        received6(lab, "b")
            .into_iter()
            .filter(|p| p.2 == d6 && p.5 == icmp6::ECHO_REQUEST)
            .collect()
    };
    lab.fabric
        .wait_until(WAIT, |_| !at_b(&lab).is_empty())
        .await;
    let at_b = at_b(&lab);
    // r3, r1 and r2 each route it.
    assert_eq!(at_b, [(GATEWAY_MAC, b, d6, b6, 61, icmp6::ECHO_REQUEST)]);
    // The gateway's echo reply.
    lab.fabric
        .send_raw("d", echo(d, GATEWAY_MAC, d6, a("fd00:0:0:11::1"), 2));
    assert!(
        lab.fabric
            .wait_until(WAIT, |_| received6(&lab, "d")
                .iter()
                .any(|p| p.2 == a("fd00:0:0:11::1")
                    && p.3 == d6
                    && p.5 == icmp6::ECHO_REPLY))
            .await
    );
    // b autoconfigures an address: its duplicate address detection teaches the controller,
    // and d's packets reach it.
    let slaac = a("fd00:0:0:10:0:ff:fe00:1002");
    lab.fabric
        .send_raw("b", solicit(b, Ipv6Addr::UNSPECIFIED, slaac));
    until_known(&lab, slaac).await;
    lab.fabric.send_raw("d", echo(d, GATEWAY_MAC, d6, slaac, 3));
    assert!(
        lab.fabric
            .wait_until(WAIT, |_| received6(&lab, "b")
                .iter()
                .any(|p| p.3 == slaac && p.4 == 61))
            .await
    );
    // vm claims d's address: d still gets what is sent to it, vm nothing of it.
    let vm = lab.fabric.host("vm").mac;
    let claim = icmp6::icmp6_frame(
        icmp6::multicast_mac(icmp6::ALL_NODES),
        vm,
        d6,
        icmp6::ALL_NODES,
        icmp6::NEIGHBOR_ADVERTISEMENT,
        0,
        &icmp6::na_body(d6, vm, false, false),
    );
    lab.fabric.send_raw("vm", claim);
    settle().await;
    lab.fabric.send_raw("b", echo(b, GATEWAY_MAC, b6, d6, 4));
    assert!(
        lab.fabric
            .wait_until(WAIT, |_| received6(&lab, "d")
                .iter()
                .any(|p| p.2 == b6 && p.3 == d6))
            .await
    );
    assert!(!received6(&lab, "vm").iter().any(|p| p.2 == b6 && p.3 == d6));
    // The API lists both families: d's IPv6 address after its IPv4 one, b's learned SLAAC
    // address, and v6only, which has IPv6 only.
    let view = servswitch::api::handlers::hosts(&lab.router);
    let ips = |name: &str| {
        view.iter()
            .find(|h| h.name == name)
            .map(|h| h.ips.clone())
            .unwrap_or_default()
    };
    assert_eq!(ips("d"), ["192.168.11.2", "fd00:0:0:11::2"]);
    assert!(ips("b").contains(&slaac.to_string()), "{:?}", ips("b"));
    assert_eq!(ips("v6only"), ["fd00:0:0:11::5"]);
    let v6only = view.iter().find(|h| h.name == "v6only").unwrap();
    assert_eq!(v6only.home.subnet.as_deref(), Some("home"));
    // A host with IPv6 addresses only moves like any other (its port, then its RARP): a
    // care-of address from the foreign prefix, reached by its address there, and reaching.
    let only6 = a("fd00:0:0:11::5");
    lab.migrate("v6only", "r2", 4).await.unwrap();
    let moved = servswitch::api::handlers::hosts(&lab.router)
        .into_iter()
        .find(|h| h.name == "v6only")
        .unwrap();
    assert_eq!(
        (moved.location.switch.as_str(), moved.location.port),
        ("r2", 4)
    );
    assert_eq!(moved.care_of.len(), 1, "{:?}", moved.care_of);
    assert!(
        moved.care_of[0].starts_with("fd00:0:0:10::"),
        "{:?}",
        moved.care_of
    );
    let v6only = lab.fabric.host("v6only").mac;
    lab.fabric.send_raw("d", echo(d, GATEWAY_MAC, d6, only6, 5));
    lab.fabric
        .send_raw("v6only", echo(v6only, GATEWAY_MAC, only6, b6, 6));
    let both = |lab: &Lab| {
        received6(lab, "v6only")
            .iter()
            .any(|p| (p.1, p.2, p.3) == (v6only, d6, only6))
            && received6(lab, "b")
                .iter()
                .any(|p| (p.1, p.2, p.3) == (b, only6, b6))
    };
    assert!(lab.fabric.wait_until(WAIT, |_| both(&lab)).await);
    // The tables are the plan throughout (the learned address's delivery included).
    lab.wait_planned().await.unwrap();
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_host_takes_its_ipv6_addresses_and_entries_with_it() {
    use servswitch::cli::demo::LabOptions;
    let lab = Lab::start_with(
        &topo("dual-stack.toml"),
        LabOptions {
            learned: vec!["vm".into()],
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.wait_planned().await.unwrap();
    // Learned from its IPv4 traffic, then its IPv6 address from its DAD.
    let vm = lab.fabric.host("vm").mac;
    let e4 = "10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap();
    assert!(lab
        .fabric
        .ping("vm", e4, Duration::from_secs(3))
        .await
        .is_some());
    let vm6 = a("fd00:0:0:11::3");
    lab.fabric
        .send_raw("vm", solicit(vm, Ipv6Addr::UNSPECIFIED, vm6));
    until_known(&lab, vm6).await;
    lab.wait_planned().await.unwrap();
    let has = |lab: &Lab| {
        lab.fabric
            .dump_flows("r3")
            .contains("ipv6_dst=fd00:0:0:11::3")
    };
    assert!(has(&lab), "{}", lab.fabric.dump_flows("r3"));
    // Forgotten (what DELETE /api/v1/hosts/{host} does): its IPv6 delivery goes too, and
    // the plan does not bring it back.
    lab.router.forget(vm, None).await.unwrap();
    lab.wait_planned().await.unwrap();
    assert!(!has(&lab), "{}", lab.fabric.dump_flows("r3"));
    assert!(!servswitch::api::handlers::hosts(&lab.router)
        .iter()
        .any(|h| h.ips.contains(&vm6.to_string())));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_advertisements_are_repeated_so_no_default_route_expires() {
    use servswitch::cli::demo::LabOptions;
    let every = Duration::from_millis(200);
    let lab = Lab::start_with(
        &topo("dual-stack.toml"),
        LabOptions {
            advertise_every: Some(every),
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.wait_planned().await.unwrap();
    tokio::time::sleep(every * 5).await;
    // Unsolicited, to all nodes, from the link-local gateway, with the subnet's prefix: on
    // every host port of a dual-stack subnet, again and again.
    for (host, prefix) in [
        ("d", "fd00:0:0:11::"),
        ("b", "fd00:0:0:10::"),
        ("e", "fd00:0:0:a::"),
    ] {
        let ads: Vec<_> = lab
            .fabric
            .received(host)
            .iter()
            .filter_map(|r| {
                let e = Ethernet::parse(&r.frame).filter(|e| e.ethertype == ETH_IPV6)?;
                let ip = Ipv6::parse(e.payload)?;
                (ip.payload.first() == Some(&icmp6::ROUTER_ADVERTISEMENT)
                    && ip.src == GATEWAY_LL
                    && ip.dst == icmp6::ALL_NODES)
                    .then(|| ip.payload.get(40..56).map(<[u8]>::to_vec))?
            })
            .collect();
        assert!(
            ads.len() >= 3,
            "{host}: {} advertisements in {:?}",
            ads.len(),
            every * 5
        );
        assert!(
            ads.iter().all(|p| p.as_slice() == a(prefix).octets()),
            "{host}"
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_ipv6_only_host_can_be_forgotten_a_declared_one_not() {
    use servswitch::app::migrate::ForgetError;
    use servswitch::cli::demo::LabOptions;
    let lab = Lab::start_with(
        &topo("dual-stack.toml"),
        LabOptions {
            learned: vec!["v6only".into()],
            ..LabOptions::default()
        },
    )
    .await
    .unwrap();
    lab.wait_planned().await.unwrap();
    let mac = lab.fabric.host("v6only").mac;
    let me = a("fd00:0:0:11::5");
    lab.fabric
        .send_raw("v6only", solicit(mac, Ipv6Addr::UNSPECIFIED, me));
    until_known(&lab, me).await;
    lab.wait_planned().await.unwrap();
    let mentions = |lab: &Lab| {
        let t = lab.fabric.dump_flows("r3");
        t.contains("ipv6_dst=fd00:0:0:11::5") || t.contains(&format!("dl_dst={mac}"))
    };
    assert!(mentions(&lab), "{}", lab.fabric.dump_flows("r3"));
    // Selected by its address, as DELETE /api/v1/hosts/{host} does.
    let found = lab.router.find_host("fd00:0:0:11::5").unwrap();
    lab.router.forget(found, None).await.unwrap();
    lab.wait_planned().await.unwrap();
    assert!(!mentions(&lab), "{}", lab.fabric.dump_flows("r3"));
    assert!(lab.router.find_host("fd00:0:0:11::5").is_none());
    lab.stop().await;
    // Declared: refused, nothing changes.
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    lab.wait_planned().await.unwrap();
    let mac = lab.router.find_host("fd00:0:0:11::5").unwrap();
    assert_eq!(
        lab.router.forget(mac, None).await,
        Err(ForgetError::Declared)
    );
    lab.wait_planned().await.unwrap();
    assert!(lab
        .fabric
        .dump_flows("r3")
        .contains("ipv6_dst=fd00:0:0:11::5"));
    lab.stop().await;
}

/// Issue 17, part 3 on the emulated fabric: the dual-stack VM moves to the foreign subnet
/// (its port moves, then its RARP) with its IPv6 address; the eight cases' IPv6 traffic
/// arrives with the addresses it was sent with, in both directions; its home network hears
/// an unsolicited advertisement of it at the gateway's MAC and is answered so when it asks;
/// no host ever sees the IPv6 care-of address; back home, all is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_vm_moves_with_its_ipv6_address() {
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    lab.wait_planned().await.unwrap();
    let mac = |h: &str| lab.fabric.host(h).mac;
    let (vm6, d6, b6, e6, only6) = (
        a("fd00:0:0:11::3"),
        a("fd00:0:0:11::2"),
        a("fd00:0:0:10::2"),
        a("fd00:0:0:a::2"),
        a("fd00:0:0:11::5"),
    );
    let peers = [("e", e6), ("d", d6), ("b", b6), ("v6only", only6)];
    let before = lab.router.tables();
    lab.migrate("vm", "r2", 3).await.unwrap();
    let co: Vec<Ipv6Addr> = lab
        .router
        .host_states()
        .into_iter()
        .flat_map(|h| h.care_of6)
        .collect();
    assert_eq!(co.len(), 1, "{co:?}");
    // The home network heard it is at the gateway's MAC now.
    let told = |host: &str| {
        lab.fabric.received(host).iter().any(|r| {
            let Some(e) = Ethernet::parse(&r.frame).filter(|e| e.ethertype == ETH_IPV6) else {
                return false;
            };
            let Some(ip) = Ipv6::parse(e.payload) else {
                return false;
            };
            Nd::parse(&ip).is_some_and(|nd| {
                nd.ty == icmp6::NEIGHBOR_ADVERTISEMENT
                    && nd.target == vm6
                    && nd.lla == Some(GATEWAY_MAC)
                    && ip.dst == icmp6::ALL_NODES
            })
        })
    };
    // They go out once the update is in, which the move's wait does not cover.
    let heard = lab
        .fabric
        .wait_until(Duration::from_secs(2), |_| told("d") && told("v6only"))
        .await;
    assert!(heard, "unsolicited advertisements at home");
    assert!(!told("b") && !told("e"), "only at home");
    for round in 0..2u8 {
        // Cases 2, 4, 6 (and a host with IPv6 only): to the VM, wherever it is.
        for (i, (h, src)) in peers.iter().enumerate() {
            let tag = 10 * round + i as u8;
            lab.fabric
                .send_raw(h, echo(mac(h), GATEWAY_MAC, *src, vm6, tag));
        }
        // Cases 1, 3, 5: from the VM.
        for (i, (_, dst)) in peers.iter().enumerate() {
            let tag = 100 + 10 * round + i as u8;
            lab.fabric
                .send_raw("vm", echo(mac("vm"), GATEWAY_MAC, vm6, *dst, tag));
        }
        // Each round's echoes by their tag (the sequence number's low byte): the packets
        // of round 0 must not stand for those of round 1.
        // Sent with these addresses, received with them, at the host's own MAC.
        let got = |lab: &Lab, host: &str, (src, dst): (Ipv6Addr, Ipv6Addr), tag: u8| {
            lab.fabric.received(host).iter().any(|r| {
                Ethernet::parse(&r.frame)
                    .filter(|e| e.ethertype == ETH_IPV6 && e.dst == mac(host))
                    .and_then(|e| Ipv6::parse(e.payload))
                    .is_some_and(|ip| {
                        (ip.src, ip.dst) == (src, dst)
                            && ip.payload.first() == Some(&icmp6::ECHO_REQUEST)
                            && ip.payload.get(7) == Some(&tag)
                    })
            })
        };
        let all_there = |lab: &Lab| {
            peers.iter().enumerate().all(|(i, (h, src))| {
                got(lab, "vm", (*src, vm6), 10 * round + i as u8)
                    && got(lab, h, (vm6, *src), 100 + 10 * round + i as u8)
            })
        };
        lab.fabric.wait_until(WAIT, |_| all_there(&lab)).await;
        for (i, (h, src)) in peers.iter().enumerate() {
            assert!(
                got(&lab, "vm", (*src, vm6), 10 * round + i as u8),
                "round {round}: {h} -> vm: {:?}",
                received6(&lab, "vm")
            );
            assert!(
                got(&lab, h, (vm6, *src), 100 + 10 * round + i as u8),
                "round {round}: vm -> {h}: {:?}",
                received6(&lab, h)
            );
        }
        if round == 0 {
            // Its home neighbour asked for at the foreign switch: the gateway's MAC.
            lab.fabric.send_raw("vm", solicit(mac("vm"), vm6, d6));
            assert!(
                lab.fabric
                    .wait_until(WAIT, |f| f.received("vm").iter().any(|r| {
                        Ethernet::parse(&r.frame)
                            .and_then(|e| Ipv6::parse(e.payload))
                            .and_then(|ip| Nd::parse(&ip))
                            .is_some_and(|nd| nd.target == d6 && nd.lla == Some(GATEWAY_MAC))
                    }))
                    .await
            );
            // Cases 5 and 6: b and the VM, on one link now, are told by ICMPv6 redirects
            // from the link-local gateway that the other is on the link, and at which MAC.
            let redirected = |host: &str, dest: Ipv6Addr, lla: MacAddr| {
                lab.fabric.received(host).iter().any(|r| {
                    let Some(e) = Ethernet::parse(&r.frame) else {
                        return false;
                    };
                    let Some(ip) = Ipv6::parse(e.payload) else {
                        return false;
                    };
                    let m = ip.payload;
                    ip.src == GATEWAY_LL
                        && ip.hop_limit == 255
                        && m.first() == Some(&icmp6::REDIRECT)
                        && m.get(8..24) == Some(&dest.octets()[..])
                        && m.get(24..40) == Some(&dest.octets()[..])
                        && m.get(40..48) == Some(&[&[2u8, 1][..], &lla.0[..]].concat()[..])
                        && m.get(48) == Some(&4) // the redirected header follows
                })
            };
            // The redirects follow the echoes (the controller sends them from the packet-in
            // of a redirect entry), so they are waited for on their own.
            lab.fabric
                .wait_until(WAIT, |_| {
                    redirected("b", vm6, mac("vm")) && redirected("vm", b6, mac("b"))
                })
                .await;
            assert!(
                redirected("b", vm6, mac("vm")),
                "case 6: b told the VM is on its link"
            );
            assert!(
                redirected("vm", b6, mac("b")),
                "case 5: the VM told b is on its link"
            );
            lab.migrate("vm", "r3", 3).await.unwrap();
        }
    }
    // No host ever saw the care-of address.
    for h in lab.fabric.hosts().into_iter().map(|h| h.name) {
        for r in lab.fabric.received(&h) {
            let o = co[0].octets();
            assert!(
                !r.frame.windows(16).any(|w| w == o),
                "{h} received the care-of address {}",
                co[0]
            );
        }
    }
    assert!(lab.router.care_of_all().is_empty());
    assert_eq!(
        lab.router.tables(),
        before,
        "home again: the plan as it was"
    );
    lab.stop().await;
}

/// A move seen from IPv6 alone (issue 17, part 3): a VM that shows up at a new port and
/// says nothing but an unsolicited neighbour advertisement, or an MLD report (with its
/// hop-by-hop header), is moved there, all its addresses with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_seen_from_a_neighbour_advertisement_or_an_mld_report() {
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    lab.wait_planned().await.unwrap();
    let at = |h: &str| {
        servswitch::api::handlers::hosts(&lab.router)
            .into_iter()
            .find(|v| v.name == h)
            .map(|v| (v.location.switch, v.location.port))
            .unwrap()
    };
    let wait_at = |h: &'static str, place: (&'static str, u32)| {
        let lab = &lab;
        async move {
            for _ in 0..100 {
                if at(h) == (place.0.to_string(), place.1)
                    && !lab.router.is_migrating(lab.fabric.host(h).mac)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("{h} not moved to {place:?}: at {:?}", at(h));
        }
    };
    // vm: its port moves to r2:3, then an unsolicited advertisement of its address.
    let vm = lab.fabric.host("vm").mac;
    lab.fabric.move_host("vm", "r2", 3).unwrap();
    lab.fabric.send_raw(
        "vm",
        icmp6::icmp6_frame(
            icmp6::multicast_mac(icmp6::ALL_NODES),
            vm,
            a("fd00:0:0:11::3"),
            icmp6::ALL_NODES,
            icmp6::NEIGHBOR_ADVERTISEMENT,
            0,
            &icmp6::na_body(a("fd00:0:0:11::3"), vm, false, false),
        ),
    );
    wait_at("vm", ("r2", 3)).await;
    // v6only: its port moves to r2:4, then an MLDv2 report from its link-local address.
    let v6only = lab.fabric.host("v6only").mac;
    lab.fabric.move_host("v6only", "r2", 4).unwrap();
    let group = a("ff02::16");
    let mut payload = vec![IP_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
    let mut report = vec![icmp6::MLD2_REPORT, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
    report.extend_from_slice(&icmp6::solicited_node(a("fd00:0:0:11::5")).octets());
    payload.extend_from_slice(&report);
    lab.fabric.send_raw(
        "v6only",
        icmp6::ipv6_frame(
            icmp6::multicast_mac(group),
            v6only,
            icmp6::link_local(v6only),
            group,
            0, // hop-by-hop options first, as MLD requires (router alert)
            1,
            &payload,
        ),
    );
    wait_at("v6only", ("r2", 4)).await;
    let co: Vec<Ipv6Addr> = lab
        .router
        .host_states()
        .into_iter()
        .flat_map(|h| h.care_of6)
        .collect();
    assert_eq!(co.len(), 2, "one IPv6 care-of address each: {co:?}");
    lab.wait_planned().await.unwrap();
    lab.stop().await;
}

/// The demo's scenario on the dual-stack fabric: every case in IPv4 and in IPv6, the VMs
/// moved by RARP only; no host ever sees a care-of address of either family, cases 5 to 7
/// end direct after the ICMPv6 redirects as after ICMP's, and the tables are as before once
/// both VMs are home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eight_cases_pass_in_both_families_and_home_restores_every_table() {
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    let (cases, failures) = lab.run_all().await.unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    let v6: Vec<_> = cases.iter().filter(|c| c.dst.is_ipv6()).collect();
    assert_eq!((cases.len(), v6.len()), (20, 10));
    for c in &v6 {
        assert!(c.peer_saw.iter().all(|a| a.is_ipv6()), "{c:?}");
        assert_eq!(c.reply_from, Some(c.dst), "{c:?}");
    }
    let direct: Vec<u8> = v6
        .iter()
        .filter(|c| c.path == "direct")
        .map(|c| c.case)
        .collect();
    assert_eq!(direct, [5, 6, 7, 7]);
    assert!(lab.care_of_addresses().is_empty(), "all released at home");
    lab.stop().await;
}

/// The same on a fabric with IPv6 only (topologies/ipv6-only.toml): no subnet has an IPv4
/// prefix, no host an IPv4 address, and the VMs still move by QEMU's RARP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eight_cases_pass_on_a_fabric_with_ipv6_only() {
    let lab = Lab::start(&topo("ipv6-only.toml")).await.unwrap();
    let (cases, failures) = lab.run_all().await.unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(cases.len(), 10);
    assert!(cases.iter().all(|c| c.dst.is_ipv6() && c.ok), "{cases:#?}");
    // No host ever sent or received IPv4 or ARP.
    for h in lab.fabric.hosts() {
        let v4 = lab
            .fabric
            .received(&h.name)
            .iter()
            .filter(|r| r.ipv4().is_some() || r.arp().is_some())
            .count();
        assert_eq!(v4, 0, "{} received IPv4 or ARP", h.name);
    }
    assert!(lab.care_of_addresses().is_empty(), "all released at home");
    lab.stop().await;
}

/// Case 7 when the two VMs knew each other at home: there, the controller's announcements
/// turned each one's cache entry for the other into the gateway's MAC when the first left;
/// when the second arrives at the same foreign switch, each is told the other's own MAC
/// (gratuitous ARP, unsolicited advertisement with override), so they talk directly at
/// once in both families rather than through the gateway until the entry is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_that_knew_each_other_at_home_talk_directly_abroad() {
    use servswitch::cli::demo::Family;
    let lab = Lab::start(&topo("dual-stack.toml")).await.unwrap();
    let wait = Duration::from_secs(3);
    for (to4, to6) in [
        ("192.168.11.3", "fd00:0:0:11::3"),
        ("192.168.11.4", "fd00:0:0:11::4"),
    ] {
        let from = if to4.ends_with(".3") { "vm2" } else { "vm" };
        let to4: std::net::Ipv4Addr = to4.parse().unwrap();
        assert!(lab.fabric.ping(from, to4, wait).await.is_some());
        assert!(lab.fabric.ping(from, a(to6), wait).await.is_some());
    }
    lab.migrate("vm", "r2", 3).await.unwrap();
    // vm2, still at home, now has vm at the gateway's MAC.
    let told = lab
        .fabric
        .wait_until(wait, |f| {
            f.arp_cache("vm2").get(&"192.168.11.3".parse().unwrap()) == Some(&GATEWAY_MAC)
        })
        .await;
    assert!(told, "{:?}", lab.fabric.arp_cache("vm2"));
    lab.migrate("vm2", "r2", 4).await.unwrap();
    // The news goes out after the move's tables: wait until both caches have it.
    let (vm_mac, vm2_mac) = (lab.fabric.host("vm").mac, lab.fabric.host("vm2").mac);
    let knows = |f: &servswitch::emu::fabric::EmuFabric, who: &str, ip4: &str, ip6: &str, mac| {
        f.arp_cache(who).get(&ip4.parse().unwrap()) == Some(&mac)
            && f.neighbours6(who).get(&a(ip6)) == Some(&mac)
    };
    let told = lab
        .fabric
        .wait_until(wait, |f| {
            knows(f, "vm2", "192.168.11.3", "fd00:0:0:11::3", vm_mac)
                && knows(f, "vm", "192.168.11.4", "fd00:0:0:11::4", vm2_mac)
        })
        .await;
    assert!(
        told,
        "{:?} {:?}",
        lab.fabric.neighbours6("vm2"),
        lab.fabric.arp_cache("vm2")
    );
    for family in [Family::V4, Family::V6] {
        for (from, to) in [("vm2", "vm"), ("vm", "vm2")] {
            let c = lab.case_in(family, 7, "case 7", from, to).await;
            assert!(c.ok, "{c:?}");
            assert_eq!(c.path, "direct", "{family:?} {from} -> {to}: {c:?}");
        }
    }
    lab.stop().await;
}
