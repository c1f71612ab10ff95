//! The application: what servswitch knows of hosts and VMs and what it does about packet-ins
//! ([`router`]), migrations in phases ([`migrate`]), bringing switches to the plan
//! ([`reconcile`]), checking announcements ([`trust`], its data in [`claims`]), the state
//! that survives a restart ([`store`]), the time every decision is given ([`clock`]), the
//! work handlers ask for beyond their answers ([`effect`]) and the driver that carries it out
//! ([`driver`]); planning with no controller ([`planner`]); which links are in use
//! ([`links`]) and the re-plan when that changes ([`replan`]); the DHCP server's decisions
//! ([`dhcp`]); the IPv6 gateway ([`ipv6`]).
//!
//! Inside the folder, too, imports run one way: `claims`, `effect`, `clock`, `dhcp` and `links` know
//! nothing of the router; `router` (the state and the packet-in path) uses them; `trust`,
//! `migrate`, `reconcile`, `replan` and `ipv6` add to the router's behaviour; `planner` and `driver`
//! sit on top.

pub mod claims;
pub mod clock;
pub mod dhcp;
pub mod driver;
pub mod effect;
pub mod ipv6;
pub mod links;
pub mod migrate;
pub mod planner;
pub mod reconcile;
pub mod replan;
pub mod router;
pub mod store;
pub mod trust;
