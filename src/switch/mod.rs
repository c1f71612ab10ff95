//! The switch side of the controller: an OpenFlow 1.3 session as a sans-io state machine
//! ([`session`]), the tokio runtime that runs one per connection and hands events to the
//! application ([`runtime`]), TLS ([`tls`]) and the connection counters ([`metrics`]).

pub mod metrics;
pub mod runtime;
pub mod session;
pub mod tls;
