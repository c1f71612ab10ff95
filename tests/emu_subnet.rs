//! Subnet broadcast and multicast, and DHCP that survives a move (issue 17, parts 5 and 6),
//! on the emulated fabric: the paper's testbed with the home subnet's DHCP served by the
//! controller. A frame to a group address reaches the other host ports of its subnet and no
//! other; a VM away from home keeps its broadcasts out of the foreign subnet (they reach its
//! home subnet) and keeps its home lease when it asks for it at the foreign switch.

#[path = "common/shipped.rs"]
mod shipped;
use shipped::topo;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use ofp13::MacAddr;
use servswitch::cli::demo::Lab;
use servswitch::fabric::plan::GATEWAY_MAC;
use servswitch::fabric::topology::Topology;
use servswitch::packet::dhcp::{self, Udp};
use servswitch::packet::{self, Ethernet, Ipv4};

const HOME_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 1);
const D: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 2);
const VM: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 3);
const DNS: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 53);
const HOSTS: [&str; 5] = ["e", "b", "d", "vm", "vm2"];

fn served() -> Topology {
    let mut t = topo("paper-testbed.toml");
    for s in &mut t.subnets {
        if s.name == "home" {
            s.dhcp = true;
            s.dns = vec![DNS];
            s.lease_s = Some(600);
        }
    }
    t
}

fn udp_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp = dhcp::udp_datagram(src, dst, ports.0, ports.1, payload);
    let ip = packet::ipv4_packet(src, dst, packet::IP_UDP, 64, 0, false, &udp);
    packet::eth_frame(dst_mac, src_mac, packet::ETH_IPV4, &ip)
}

/// Option 50: the address a client asks for.
fn requested(a: Ipv4Addr) -> (u8, Vec<u8>) {
    (dhcp::OPT_REQUESTED_IP, a.octets().to_vec())
}

/// `host` broadcasts DHCP message `msg` from address `src` (0.0.0.0 before it has one), in a
/// frame from `mac`.
fn dhcp_broadcast(lab: &Lab, host: &str, mac: MacAddr, src: Ipv4Addr, msg: &[u8]) {
    let f = udp_frame(
        MacAddr::BROADCAST,
        mac,
        src,
        Ipv4Addr::BROADCAST,
        (68, 67),
        msg,
    );
    lab.fabric.send_raw(host, f);
}

/// `host` sends DHCP message `msg` from `src` to the server, its home gateway (a renewal).
fn dhcp_to_server(lab: &Lab, host: &str, mac: MacAddr, src: Ipv4Addr, msg: &[u8]) {
    let f = udp_frame(GATEWAY_MAC, mac, src, HOME_GW, (68, 67), msg);
    lab.fabric.send_raw(host, f);
}

/// A frame to a group address carrying `tag`, from `host`.
fn group_frame(lab: &Lab, host: &str, dst: MacAddr, tag: &[u8]) -> Vec<u8> {
    let h = lab.fabric.host(host);
    let src = h
        .addrs
        .first()
        .map(|a| a.0)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let to = match dst {
        MacAddr::BROADCAST => Ipv4Addr::BROADCAST,
        _ => Ipv4Addr::new(224, 0, 0, 251),
    };
    udp_frame(dst, h.mac, src, to, (5353, 5353), tag)
}

/// The hosts that have received a frame carrying `tag`.
fn saw(lab: &Lab, tag: &[u8]) -> BTreeSet<String> {
    HOSTS
        .iter()
        .filter(|h| {
            lab.fabric
                .received(h)
                .iter()
                .any(|r| r.frame.windows(tag.len()).any(|w| w == tag))
        })
        .map(|h| h.to_string())
        .collect()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// For a step that leaves nothing to wait for (no answer, a frame nobody should get): a
/// pause.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// Waits (at most 5 s, on a loaded machine) until what the next lines assert has arrived:
/// woken by the switches' work, it ends as soon as `cond` holds.
async fn until(lab: &Lab, cond: impl Fn(&Lab) -> bool) {
    lab.fabric
        .wait_until(Duration::from_secs(5), |_| cond(lab))
        .await;
}

/// Whether every host of `want` has received a frame carrying `tag`.
fn all_saw(lab: &Lab, tag: &[u8], want: &[&str]) -> bool {
    names(want).is_subset(&saw(lab, tag))
}

/// The DHCP replies `host` has received with transaction `xid`: (eth dst, ip dst, type,
/// yiaddr, options).
fn replies(lab: &Lab, host: &str, xid: u32) -> Vec<(MacAddr, Ipv4Addr, u8, Ipv4Addr, Vec<u8>)> {
    lab.fabric
        .received(host)
        .iter()
        .filter_map(|r| {
            let eth = Ethernet::parse(&r.frame)?;
            let ip = Ipv4::parse(eth.payload).filter(|_| eth.ethertype == packet::ETH_IPV4)?;
            let udp = Udp::parse(ip.payload).filter(|_| ip.protocol == packet::IP_UDP)?;
            if udp.src_port != 67 || udp.payload.get(4..8)? != xid.to_be_bytes() {
                return None;
            }
            assert_eq!((eth.src, ip.src), (GATEWAY_MAC, HOME_GW));
            let (ty, yi, opts) = dhcp::read_reply(udp.payload)?;
            Some((eth.dst, ip.dst, ty, yi, opts.to_vec()))
        })
        .collect()
}

fn opt(opts: &[u8], code: u8) -> Option<Vec<u8>> {
    dhcp::reply_option(opts, code).map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_multicast_reach_their_subnet_and_no_other() {
    let lab = Lab::start(&served()).await.unwrap();
    lab.wait_planned().await.unwrap();
    let mdns = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    lab.fabric.send_raw(
        "d",
        group_frame(&lab, "d", MacAddr::BROADCAST, b"tag-bcast-d"),
    );
    lab.fabric
        .send_raw("d", group_frame(&lab, "d", mdns, b"tag-mdns-d"));
    // IPv6 neighbour discovery is multicast too: it stays inside the subnet as well.
    let v6 = packet::eth_frame(
        MacAddr([0x33, 0x33, 0xff, 0, 0, 3]),
        lab.fabric.host("vm2").mac,
        0x86dd,
        b"tag-ipv6-vm2",
    );
    lab.fabric.send_raw("vm2", v6);
    // Alone in its subnet: nobody hears it.
    lab.fabric.send_raw(
        "b",
        group_frame(&lab, "b", MacAddr::BROADCAST, b"tag-bcast-b"),
    );
    until(&lab, |l| {
        all_saw(l, b"tag-bcast-d", &["vm", "vm2"])
            && all_saw(l, b"tag-mdns-d", &["vm", "vm2"])
            && all_saw(l, b"tag-ipv6-vm2", &["d", "vm"])
    })
    .await;
    // b's broadcast must reach none of these hosts: nothing to wait for but time.
    settle().await;
    assert_eq!(saw(&lab, b"tag-bcast-d"), names(&["vm", "vm2"]));
    assert_eq!(saw(&lab, b"tag-mdns-d"), names(&["vm", "vm2"]));
    assert_eq!(saw(&lab, b"tag-ipv6-vm2"), names(&["d", "vm"]));
    assert_eq!(saw(&lab, b"tag-bcast-b"), names(&[]));
    // A port that appears joins its subnet's flood; one that goes leaves it.
    let r3 = lab.fabric.switch("r3");
    r3.add_port(servswitch::emu::switch::port(r3.dpid(), 7));
    lab.fabric.plug("vm2", "r3", 7).unwrap();
    // The controller has heard of the port once the port's own flood entry is in (then
    // the whole table is the new plan, the other ports' floods included).
    until(&lab, |l| l.fabric.dump_flows("r3").contains("in_port=7")).await;
    lab.wait_planned().await.unwrap();
    lab.fabric.send_raw(
        "d",
        group_frame(&lab, "d", MacAddr::BROADCAST, b"tag-moved"),
    );
    until(&lab, |l| all_saw(l, b"tag-moved", &["vm", "vm2"])).await;
    assert_eq!(saw(&lab, b"tag-moved"), names(&["vm", "vm2"]));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_gives_a_host_its_lease_and_nobody_anothers() {
    let lab = Lab::start(&served()).await.unwrap();
    lab.wait_planned().await.unwrap();
    let d = lab.fabric.host("d").mac;
    let none = Ipv4Addr::UNSPECIFIED;
    let discover = dhcp::request(dhcp::DISCOVER, d, 1, none, 0, &[]);
    dhcp_broadcast(&lab, "d", d, none, &discover);
    until(&lab, |l| !replies(l, "d", 1).is_empty()).await;
    let got = replies(&lab, "d", 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let (mac, dst, ty, yi, opts) = &got[0];
    assert_eq!((*mac, *dst, *ty, *yi), (d, D, dhcp::OFFER, D));
    assert_eq!(
        opt(opts, dhcp::OPT_SUBNET_MASK),
        Some(vec![255, 255, 255, 0])
    );
    assert_eq!(opt(opts, dhcp::OPT_ROUTER), Some(HOME_GW.octets().to_vec()));
    assert_eq!(opt(opts, dhcp::OPT_DNS), Some(DNS.octets().to_vec()));
    assert_eq!(
        opt(opts, dhcp::OPT_LEASE_TIME),
        Some(600u32.to_be_bytes().to_vec())
    );
    // The DISCOVER went to the controller, not to the subnet.
    assert_eq!(saw(&lab, &discover[..8]), names(&[]));

    let select = dhcp::request(
        dhcp::REQUEST,
        d,
        2,
        none,
        dhcp::FLAG_BROADCAST,
        &[
            requested(D),
            (dhcp::OPT_SERVER_ID, HOME_GW.octets().to_vec()),
        ],
    );
    dhcp_broadcast(&lab, "d", d, none, &select);
    // A renewal is unicast to the server, at the gateway's MAC.
    let renew = dhcp::request(dhcp::REQUEST, d, 3, D, 0, &[]);
    dhcp_to_server(&lab, "d", d, D, &renew);
    // Asking to keep another address: refused.
    let wrong = dhcp::request(dhcp::REQUEST, d, 4, none, 0, &[requested(VM)]);
    dhcp_broadcast(&lab, "d", d, none, &wrong);
    until(&lab, |l| (2..=4).all(|x| !replies(l, "d", x).is_empty())).await;
    let ty = |xid| {
        replies(&lab, "d", xid)
            .iter()
            .map(|r| (r.0, r.1, r.2, r.3))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ty(2),
        [(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, dhcp::ACK, D)]
    );
    assert_eq!(ty(3), [(d, D, dhcp::ACK, D)]);
    assert_eq!(
        ty(4),
        [(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, dhcp::NAK, none)]
    );

    // vm asks in d's name (chaddr d, its own MAC on the wire), and a MAC nobody knows asks:
    // neither gets an answer.
    let vm = lab.fabric.host("vm").mac;
    let forged = dhcp::request(dhcp::DISCOVER, d, 5, none, 0, &[]);
    dhcp_broadcast(&lab, "vm", vm, none, &forged);
    let stranger = MacAddr([0x02, 0xee, 0, 0, 0, 1]);
    let unknown = dhcp::request(dhcp::DISCOVER, stranger, 6, none, 0, &[]);
    dhcp_broadcast(&lab, "vm", stranger, none, &unknown);
    // Malformed DHCP: nothing, and the controller goes on.
    dhcp_broadcast(&lab, "vm", vm, none, &[1, 1, 6, 0]);
    settle().await;
    for h in HOSTS {
        for xid in [5, 6] {
            assert!(
                replies(&lab, h, xid).is_empty(),
                "{h} got an answer to {xid}"
            );
        }
    }
    // The foreign subnet's DHCP is not the controller's: b's DISCOVER is its subnet's
    // broadcast (nobody else there), unanswered.
    let b = lab.fabric.host("b").mac;
    let theirs = dhcp::request(dhcp::DISCOVER, b, 7, none, 0, &[]);
    dhcp_broadcast(&lab, "b", b, none, &theirs);
    settle().await;
    assert!(replies(&lab, "b", 7).is_empty());
    assert!(lab
        .fabric
        .ping("d", HOME_GW, Duration::from_secs(2))
        .await
        .is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_away_keeps_its_home_lease_and_its_broadcasts_go_home() {
    let lab = Lab::start(&served()).await.unwrap();
    lab.wait_planned().await.unwrap();
    // Into the foreign subnet, whose DHCP is not the controller's.
    lab.migrate("vm", "r2", 3).await.unwrap();
    lab.wait_planned().await.unwrap();
    let vm = lab.fabric.host("vm").mac;
    let none = Ipv4Addr::UNSPECIFIED;
    // RENEWING: unicast to the home gateway, which is not this switch's.
    let renew = dhcp::request(dhcp::REQUEST, vm, 11, VM, 0, &[]);
    dhcp_to_server(&lab, "vm", vm, VM, &renew);
    // REBINDING: broadcast, still with its address.
    let rebind = dhcp::request(dhcp::REQUEST, vm, 12, VM, 0, &[]);
    dhcp_broadcast(&lab, "vm", vm, VM, &rebind);
    // INIT-REBOOT after a restart of its client, and a DISCOVER from scratch.
    let reboot = dhcp::request(dhcp::REQUEST, vm, 13, none, 0, &[requested(VM)]);
    dhcp_broadcast(&lab, "vm", vm, none, &reboot);
    let discover = dhcp::request(dhcp::DISCOVER, vm, 14, none, 0, &[]);
    dhcp_broadcast(&lab, "vm", vm, none, &discover);
    until(&lab, |l| (11..=14).all(|x| !replies(l, "vm", x).is_empty())).await;
    for xid in 11..=14 {
        let got = replies(&lab, "vm", xid);
        assert_eq!(got.len(), 1, "xid {xid}: {got:?}");
        let (_, _, ty, yi, opts) = &got[0];
        let want = if xid == 14 { dhcp::OFFER } else { dhcp::ACK };
        assert_eq!((*ty, *yi), (want, VM), "xid {xid}");
        assert_eq!(opt(opts, dhcp::OPT_ROUTER), Some(HOME_GW.octets().to_vec()));
        assert_eq!(
            opt(opts, dhcp::OPT_SUBNET_MASK),
            Some(vec![255, 255, 255, 0])
        );
    }
    // Its DHCP never reached another host.
    for m in [&renew, &rebind, &reboot, &discover] {
        assert_eq!(saw(&lab, &m[..8]), names(&[]));
    }
    // Its broadcast and multicast reach its home subnet, not the foreign one.
    let mdns = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    lab.fabric.send_raw(
        "vm",
        group_frame(&lab, "vm", MacAddr::BROADCAST, b"tag-away-bcast"),
    );
    lab.fabric
        .send_raw("vm", group_frame(&lab, "vm", mdns, b"tag-away-mdns"));
    until(&lab, |l| {
        all_saw(l, b"tag-away-bcast", &["d", "vm2"]) && all_saw(l, b"tag-away-mdns", &["d", "vm2"])
    })
    .await;
    assert_eq!(saw(&lab, b"tag-away-bcast"), names(&["d", "vm2"]));
    assert_eq!(saw(&lab, b"tag-away-mdns"), names(&["d", "vm2"]));
    // The foreign subnet's own broadcast still floods there.
    lab.fabric.send_raw(
        "b",
        group_frame(&lab, "b", MacAddr::BROADCAST, b"tag-foreign"),
    );
    until(&lab, |l| all_saw(l, b"tag-foreign", &["vm"])).await;
    assert_eq!(saw(&lab, b"tag-foreign"), names(&["vm"]));
    // No care-of address reached a host; the VM still works both ways.
    assert!(lab.hosts_that_saw(&lab.care_of_addresses()).is_empty());
    for (from, to) in [("d", VM), ("e", VM)] {
        assert!(
            lab.fabric
                .ping(from, to, Duration::from_secs(3))
                .await
                .is_some(),
            "{from}"
        );
    }
    // Home again: its entries go, its lease is the same.
    lab.migrate("vm", "r3", 3).await.unwrap();
    lab.wait_planned().await.unwrap();
    let back = dhcp::request(dhcp::REQUEST, vm, 15, VM, 0, &[]);
    dhcp_to_server(&lab, "vm", vm, VM, &back);
    lab.fabric.send_raw(
        "vm",
        group_frame(&lab, "vm", MacAddr::BROADCAST, b"tag-home"),
    );
    until(&lab, |l| {
        !replies(l, "vm", 15).is_empty() && all_saw(l, b"tag-home", &["d", "vm2"])
    })
    .await;
    assert_eq!(
        replies(&lab, "vm", 15)
            .iter()
            .map(|r| (r.2, r.3))
            .collect::<Vec<_>>(),
        [(dhcp::ACK, VM)]
    );
    assert_eq!(saw(&lab, b"tag-home"), names(&["d", "vm2"]));
    lab.stop().await;
}
