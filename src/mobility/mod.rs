//! Service Switching as pure functions (paper, sections IV and V): the flows of a VM away from
//! home ([`flows`]), care-of address pools ([`careof`]), the phased order in which an update
//! reaches the switches ([`update`]) and the checker that proves no intermediate state leaks a
//! care-of address ([`transitions`]). No locks, no sockets, no clock.

pub mod careof;
pub mod flows;
pub mod transitions;
pub mod update;
