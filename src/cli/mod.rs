//! Subcommands other than `run`: the API client ([`client`]), `verify` ([`verify`]), the codec
//! tools ([`codec`]) and the in-process lab behind `demo` and the emulated tests ([`demo`]).

pub mod client;
pub mod codec;
pub mod demo;
pub mod verify;
