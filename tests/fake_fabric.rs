//! Behaviour through flow tables, with no sockets (Faucet's style): the router's planned
//! tables and its answers to packet-ins run in the flow-table engine (checked against Open
//! vSwitch by tests/flowtable_vs_ovs.rs), and each test asks where a packet arrives and what
//! it looks like there. See tests/common/fake_fabric.rs.

#[path = "common/fake_fabric.rs"]
mod fake_fabric;
#[path = "common/shipped.rs"]
mod shipped;

use std::net::Ipv4Addr;

use fake_fabric::{Delivery, FakeFabric};
use ofp13::MacAddr;
use servswitch::fabric::plan::GATEWAY_MAC;
use servswitch::fabric::topology::Topology;
use servswitch::packet::{self, Arp, Ethernet, Ipv4};

fn paper() -> Topology {
    shipped::topo("paper-testbed.toml")
}

struct Host {
    switch: String,
    port: u32,
    mac: MacAddr,
    ip: Ipv4Addr,
}

/// Host `name` of the topology, where the file puts it.
fn host(t: &Topology, name: &str) -> Host {
    let h = t
        .hosts
        .iter()
        .find(|h| h.name == name)
        .expect("a host of the file");
    Host {
        switch: h.at.switch.clone(),
        port: h.at.port,
        mac: h.mac,
        ip: h.addresses()[0],
    }
}

fn arp_request(from: &Host, tpa: Ipv4Addr) -> Vec<u8> {
    Arp::request(from.mac, from.ip, tpa).to_frame()
}

/// An ICMP echo request from `from` to `dst`, sent to `dst_mac` (the gateway or a neighbour).
fn ping(from: &Host, dst: Ipv4Addr, dst_mac: MacAddr) -> Vec<u8> {
    let icmp = packet::icmp(packet::ICMP_ECHO_REQUEST, 0, [0, 7, 0, 1], b"fake");
    packet::ipv4_frame(dst_mac, from.mac, from.ip, dst, packet::IP_ICMP, &icmp)
}

/// The one delivery, as (switch, port, ethernet dst, src, ip src, dst, ttl).
fn arrived(d: &[Delivery]) -> (String, u32, MacAddr, MacAddr, Ipv4Addr, Ipv4Addr, u8) {
    assert_eq!(d.len(), 1, "exactly one delivery: {d:?}");
    let eth = Ethernet::parse(&d[0].frame).expect("ethernet");
    let ip = Ipv4::parse(eth.payload).expect("ipv4");
    (
        d[0].switch.clone(),
        d[0].port,
        eth.dst,
        eth.src,
        ip.src,
        ip.dst,
        ip.ttl,
    )
}

#[test]
fn a_host_resolves_its_gateway_and_reaches_a_host_of_another_subnet() {
    let t = paper();
    let mut f = FakeFabric::new(&t);
    let (edge, foreign) = (host(&t, "e"), host(&t, "b"));
    let d = f.send(
        &foreign.switch,
        foreign.port,
        &arp_request(&foreign, Ipv4Addr::new(192, 168, 10, 1)),
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].switch.as_str(), d[0].port),
        (foreign.switch.as_str(), foreign.port)
    );
    let eth = Ethernet::parse(&d[0].frame).unwrap();
    let a = Arp::parse(eth.payload).unwrap();
    assert_eq!(
        (a.op, a.sha, a.spa, a.tpa, eth.dst),
        (
            packet::ARP_REPLY,
            GATEWAY_MAC,
            Ipv4Addr::new(192, 168, 10, 1),
            foreign.ip,
            foreign.mac
        )
    );
    // Routed through r2 and r1: two hops, Ethernet rewritten for E, TTL down by two.
    let d = f.send(
        &foreign.switch,
        foreign.port,
        &ping(&foreign, edge.ip, GATEWAY_MAC),
    );
    assert_eq!(
        arrived(&d),
        (
            edge.switch.clone(),
            edge.port,
            edge.mac,
            GATEWAY_MAC,
            foreign.ip,
            edge.ip,
            62
        )
    );
}

#[test]
fn the_first_packet_to_a_silent_host_is_held_asked_for_and_delivered() {
    let mut topo = paper();
    let (edge, home) = (host(&topo, "e"), host(&topo, "d"));
    // D is not in the file: the fabric learns it.
    topo.hosts.retain(|h| h.name != "d");
    let mut f = FakeFabric::new(&topo);
    f.add_port(home.switch.as_str(), home.port);
    // E's ping for D: r3 has no entry for D, asks for it out of its host ports.
    let d = f.send(&edge.switch, edge.port, &ping(&edge, home.ip, GATEWAY_MAC));
    let asked: Vec<(String, u32)> = d.iter().map(|d| (d.switch.clone(), d.port)).collect();
    assert!(asked.contains(&("r3".into(), home.port)), "{asked:?}");
    for d in &d {
        let a = Arp::parse(Ethernet::parse(&d.frame).unwrap().payload).unwrap();
        assert_eq!(
            (a.op, a.tpa, a.sha),
            (packet::ARP_REQUEST, home.ip, GATEWAY_MAC)
        );
    }
    // D answers; the held ping goes on to it, as routed.
    let reply = Arp::reply(
        home.mac,
        home.ip,
        GATEWAY_MAC,
        Ipv4Addr::new(192, 168, 11, 1),
    )
    .to_frame();
    let d = f.send(&home.switch, home.port, &reply);
    assert_eq!(
        arrived(&d),
        (
            home.switch.clone(),
            home.port,
            home.mac,
            GATEWAY_MAC,
            edge.ip,
            home.ip,
            62
        )
    );
    // Learned: the next ping is forwarded by the tables, without the controller.
    let before = f.packet_ins;
    let d = f.send(&edge.switch, edge.port, &ping(&edge, home.ip, GATEWAY_MAC));
    assert_eq!(arrived(&d).1, home.port);
    assert_eq!(f.packet_ins, before);
}

#[test]
fn a_migrated_vm_keeps_its_address_and_its_gateway_and_no_host_sees_a_care_of_address() {
    let t = paper();
    let mut f = FakeFabric::new(&t);
    let (edge, home, vm) = (host(&t, "e"), host(&t, "d"), host(&t, "vm"));
    // The paper's move: VM from r3 (home) to r2 (foreign), port 3.
    f.migrate("vm", "r2", 3);
    let care_of: Vec<Ipv4Addr> = f.router.care_of_addresses().into_iter().collect();
    assert!(!care_of.is_empty());
    let before = f.packet_ins;
    // E (edge) to VM, by its home address: delivered at its new port, as its home address.
    let d = f.send(&edge.switch, edge.port, &ping(&edge, vm.ip, GATEWAY_MAC));
    assert_eq!(
        arrived(&d),
        ("r2".into(), 3, vm.mac, GATEWAY_MAC, edge.ip, vm.ip, 62)
    );
    // VM to E and to D (its home network, now across the fabric): from its home address.
    let d = f.send("r2", 3, &ping(&vm, edge.ip, GATEWAY_MAC));
    assert_eq!(
        arrived(&d),
        (
            edge.switch.clone(),
            edge.port,
            edge.mac,
            GATEWAY_MAC,
            vm.ip,
            edge.ip,
            62
        )
    );
    let d = f.send("r2", 3, &ping(&vm, home.ip, GATEWAY_MAC));
    let (sw, port, _, _, src, dst, _) = arrived(&d);
    assert_eq!(
        (sw.as_str(), port, src, dst),
        (home.switch.as_str(), home.port, vm.ip, home.ip)
    );
    // D (home network) to VM: through its home switch, delivered as itself.
    let d = f.send(&home.switch, home.port, &ping(&home, vm.ip, GATEWAY_MAC));
    let (sw, port, _, _, src, dst, _) = arrived(&d);
    assert_eq!((sw.as_str(), port, src, dst), ("r2", 3, home.ip, vm.ip));
    assert_eq!(f.packet_ins, before, "all of it in the tables");
    // The VM asks for its home gateway at the foreign switch: the gateway MAC, as at home.
    let d = f.send("r2", 3, &arp_request(&vm, Ipv4Addr::new(192, 168, 11, 1)));
    assert_eq!(d.len(), 1);
    let a = Arp::parse(Ethernet::parse(&d[0].frame).unwrap().payload).unwrap();
    assert_eq!(
        (a.op, a.sha, a.tpa),
        (packet::ARP_REPLY, GATEWAY_MAC, vm.ip)
    );
    // D asks for the VM on the home network: the gateway answers for it (the VM is away).
    let d = f.send(&home.switch, home.port, &arp_request(&home, vm.ip));
    assert_eq!(d.len(), 1);
    let a = Arp::parse(Ethernet::parse(&d[0].frame).unwrap().payload).unwrap();
    assert_eq!(
        (a.op, a.sha, a.spa),
        (packet::ARP_REPLY, GATEWAY_MAC, vm.ip)
    );
    // No frame delivered to a host in all of this carried a care-of address, in IPv4 or ARP.
    assert!(f.delivered.len() >= 6, "{}", f.delivered.len());
    for d in &f.delivered {
        let eth = Ethernet::parse(&d.frame).unwrap();
        let addrs = match (Ipv4::parse(eth.payload), Arp::parse(eth.payload)) {
            (Some(ip), _) if eth.ethertype == packet::ETH_IPV4 => [ip.src, ip.dst],
            (_, Some(a)) => [a.spa, a.tpa],
            _ => continue,
        };
        for co in &care_of {
            assert!(!addrs.contains(co), "{co} seen at {}:{}", d.switch, d.port);
        }
    }
}

#[test]
fn a_vm_announced_at_a_new_port_is_moved_there_by_the_router_and_traffic_follows() {
    let t = paper();
    let mut f = FakeFabric::new(&t);
    let (edge, vm) = (host(&t, "e"), host(&t, "vm"));
    f.add_port("r2", 3);
    // QEMU's RARP from the new port: the router asks for the move, the fabric carries it out.
    let d = f.send("r2", 3, &packet::rarp_announce(vm.mac));
    assert!(d.is_empty(), "the RARP itself goes nowhere: {d:?}");
    assert!(
        f.effects.is_empty(),
        "nothing asked for but the move: {:?}",
        f.effects
    );
    assert_eq!(
        f.router.care_of_addresses().len(),
        1,
        "away, with a care-of address"
    );
    // E reaches the VM at its new port by its home address, as itself, in the tables alone.
    let before = f.packet_ins;
    let d = f.send(&edge.switch, edge.port, &ping(&edge, vm.ip, GATEWAY_MAC));
    assert_eq!(
        arrived(&d),
        ("r2".into(), 3, vm.mac, GATEWAY_MAC, edge.ip, vm.ip, 62)
    );
    assert_eq!(f.packet_ins, before);
    // Announced again at home: moved back, its care-of address given back.
    f.send(&vm.switch, vm.port, &packet::rarp_announce(vm.mac));
    assert!(f.router.care_of_addresses().is_empty());
    let d = f.send(&edge.switch, edge.port, &ping(&edge, vm.ip, GATEWAY_MAC));
    assert_eq!((arrived(&d).0, arrived(&d).1), (vm.switch.clone(), vm.port));
}
