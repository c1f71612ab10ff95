//! The topologies shipped in `topologies/`, for tests (`#[path]`-included by the tests that
//! use it, so no other test binary carries it).

use servswitch::fabric::topology::Topology;

/// The topology file `topologies/NAME`, loaded and validated.
pub fn topo(name: &str) -> Topology {
    Topology::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("topologies/{name}: {e:#}"))
}
