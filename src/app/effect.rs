//! What the application asks the runtime to do beyond answering the switch a message came
//! from: the *effects* of its handlers, and the one place they are carried out.
//!
//! The router's handlers (`Router::handle_message`, `Router::switch_up`, the packet-in path)
//! are synchronous and start nothing themselves: they change the state, push the messages for
//! the switch that spoke onto `out`, and push an [`Effect`] for anything that needs more
//! (a migration installed in phases on several switches, a timer, a switch's table read and
//! reconciled). A test or the fuzz target calls a handler with no runtime and reads the
//! effects it asked for; [`crate::app::driver::Driver`], the application as the runtime sees
//! it, carries each out in a task of its own.

use std::time::{Duration, Instant};

use ofp13::MacAddr;

use crate::fabric::topology::PortRef;
use crate::switch::runtime::SwitchHandle;

/// Work a handler asks for, carried out by [`crate::app::router::Router::carry_out`].
#[derive(Debug, Clone)]
pub enum Effect {
    /// Install a move of the VM `mac` to `to` (in phases, on every switch it changes), then
    /// follow it wherever it was announced meanwhile. `why` is logged when it is not done.
    Migrate {
        mac: MacAddr,
        to: PortRef,
        why: &'static str,
    },
    /// A timer: when `after` has passed, forget the learned host `mac` detached at `since`,
    /// unless it was seen again meanwhile.
    Forget {
        mac: MacAddr,
        since: Instant,
        after: Duration,
    },
    /// Stop copying a (source, destination) pair's packets (or its TCP segments) of the VM
    /// to the controller.
    QuietRedirects {
        mac: MacAddr,
        pair: crate::mobility::flows::QuietPair,
    },
    /// Run the VM's cover task (its `cover_busy` mark is set).
    ChangeCovers { mac: MacAddr },
    /// Probe the place a claimed move took the VM from.
    Probe {
        mac: MacAddr,
        ip: std::net::IpAddr,
        from: (String, u32),
        claim: PortRef,
    },
    /// A timer: reconcile switch `name` after `after`, if it is connected then.
    Reconcile { name: String, after: Duration },
    /// A timer: look again at which links the fabric routes over after `after` (a dampened
    /// link may be used again then, or a disconnected switch's grace is over).
    Replan { after: Duration },
    /// Send LLDP out of these link ends now and every [`crate::app::links::LLDP_FAST`] for
    /// [`crate::app::links::LLDP_FAST_FOR`] (a link that came back up is checked in time).
    LldpBurst { ends: Vec<(String, u32)> },
    /// Send `batch` to switch `switch` (not the one whose message is being handled), if it
    /// is connected: a broadcast of a VM away from home relayed to its home subnet.
    Send {
        switch: String,
        batch: Vec<ofp13::Body>,
    },
    /// Reconcile a switch that just connected, then audit it every `every` while its
    /// session lasts.
    Audit {
        switch: SwitchHandle,
        name: String,
        every: Option<Duration>,
    },
}
