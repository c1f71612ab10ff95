//! Support code shared by integration tests (`mod common;`).

pub mod ovs_fabric;
