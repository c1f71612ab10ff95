//! servswitch: an OpenFlow 1.3 controller that keeps virtual machines reachable when they
//! live-migrate across IP subnets (Service Switching, Bifulco et al.).
//!
//! The wire codec is the `ofp13` crate (proto/); this crate holds the controller.

pub mod codec_cli;
