//! The application: what servswitch knows of hosts and VMs and what it does about packet-ins
//! ([`router`]), migrations in phases ([`migrate`]), bringing switches to the plan
//! ([`reconcile`]), checking announcements ([`trust`]), the state that survives a restart
//! ([`store`]), the time every decision reads ([`clock`]) and the work handlers ask the
//! runtime for beyond their answers ([`effect`]); planning with no controller ([`planner`]).

pub mod clock;
pub mod effect;
pub mod migrate;
pub mod planner;
pub mod reconcile;
pub mod router;
pub mod store;
pub mod trust;
