//! The topologies shipped in `topologies/`, for tests: `#[path]`-included by the emulated
//! tests (so they carry no other common module), part of `common` for the others.

#![allow(dead_code)]

use servswitch::fabric::topology::{HostConf, PortRef, Topology};

/// The topology file `topologies/NAME`, loaded and validated.
pub fn topo(name: &str) -> Topology {
    Topology::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("topologies/{name}: {e:#}"))
}

/// A tenant `x` of the paper testbed's foreign subnet on r2:7, a port nobody else uses: the
/// attacker of the trust tests (told to the controller or not, as the test decides).
pub fn attacker() -> HostConf {
    HostConf {
        name: "x".into(),
        mac: ofp13::MacAddr([2, 0, 0, 0, 0x10, 0x66]),
        ip: Some(std::net::Ipv4Addr::new(192, 168, 10, 66)),
        ips: None,
        at: PortRef {
            switch: "r2".into(),
            port: 7,
        },
    }
}
