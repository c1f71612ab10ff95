//! servswitch: an OpenFlow 1.3 controller that keeps virtual machines reachable when they
//! live-migrate across IP subnets (Service Switching, Bifulco et al.).
//!
//! The wire codec is the `ofp13` crate (proto/); this crate holds the controller.

pub mod api;
pub mod careof;
pub mod client;
pub mod codec_cli;
pub mod demo;
pub mod emu;
pub mod emu_fabric;
pub mod flowtable;
pub mod gen;
pub mod metrics;
pub mod migrate;
pub mod mobility;
pub mod packet;
pub mod plan;
pub mod reconcile;
pub mod router;
pub mod runtime;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod topology;
pub mod transitions;
pub mod update;
pub mod verify;
