//! `servswitch run` from the outside: the REST API's handlers ([`handlers`]), who may call
//! it ([`access`]), HTTPS ([`tls`]) and the wiring of OpenFlow listener, API, logging and
//! signals ([`server`]).

pub mod access;
pub mod handlers;
pub mod server;
pub mod tls;
