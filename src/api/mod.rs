//! `servswitch run` from the outside: the REST API's handlers ([`handlers`]) and the wiring of
//! OpenFlow listener, API, logging and signals ([`server`]).

pub mod handlers;
pub mod server;
