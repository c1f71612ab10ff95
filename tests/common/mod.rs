//! Support code shared by integration tests (`mod common;`).

pub mod certs;
pub mod controller;
pub mod env;
pub mod ovs_fabric;
pub mod shipped;
pub mod traffic;
