//! The application: what servswitch knows of hosts and VMs and what it does about packet-ins
//! ([`router`]), migrations in phases ([`migrate`]), bringing switches to the plan
//! ([`reconcile`]) and the state that survives a restart ([`store`]).

pub mod migrate;
pub mod reconcile;
pub mod router;
pub mod store;
