//! servswitch: an OpenFlow 1.3 controller that keeps virtual machines reachable when they
//! live-migrate across IP subnets (Service Switching, Bifulco et al.).
//!
//! The wire codec is the `ofp13` crate (proto/); this crate holds the controller, in layers
//! that import only downwards (docs/architecture.md draws them):
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 7 | [`cli`] | the subcommands that are not `run`: demo, verify, codec, the API client |
//! | 6 | [`api`] | `servswitch run`: the REST API and the wiring of listener, API and signals |
//! | 5 | [`app`] | the application: hosts, packet-ins, migrations, reconciliation, durable state |
//! | 4 | [`switch`] | OpenFlow sessions (sans-io), the tokio runtime that runs them, TLS, counters |
//! | 3 | [`mobility`] | Service Switching as pure functions: a VM's flows, care-of pools, phased updates and their checker |
//! | 2 | [`emu`] | the emulator: flow-table engine, emulated switch, emulated fabric (imports only layers 0-1) |
//! | 1 | [`fabric`] | the topology file, the base pipeline planned from it, generated fabrics |
//! | 0 | [`packet`] | Ethernet, ARP and IPv4 frames: parse and build |

pub mod api;
pub mod app;
pub mod cli;
pub mod emu;
pub mod fabric;
pub mod mobility;
pub mod packet;
pub mod switch;
