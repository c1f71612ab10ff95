//! The emulator: an OpenFlow 1.3 switch and a fabric of them with Linux-like hosts, in process,
//! so every behaviour can be tested without root or Open vSwitch. It imports nothing of the
//! controller: only the codec (`ofp13`), frames ([`crate::packet`]) and the topology file
//! ([`crate::fabric::topology`]) that says what to build. See docs/emulator.md.
//!
//! - [`flowtable`]: the flow-table engine (match, priorities, instructions, actions, timeouts),
//!   checked against Open vSwitch by tests/flowtable_vs_ovs.rs;
//! - [`switch`]: one emulated switch: its OpenFlow session towards a controller and its datapath;
//! - [`fabric`]: a topology's switches, links and hosts, connected to a controller.

pub mod fabric;
pub mod flowtable;
pub mod switch;
