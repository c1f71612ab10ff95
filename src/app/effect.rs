//! What the application asks the runtime to do beyond answering the switch a message came
//! from: the *effects* of its handlers, and the one place they are carried out.
//!
//! The router's handlers (`Router::handle_message`, `Router::switch_up`, the packet-in path)
//! are synchronous and start nothing themselves: they change the state, push the messages for
//! the switch that spoke onto `out`, and push an [`Effect`] for anything that needs more
//! (a migration installed in phases on several switches, a timer, a switch's table read and
//! reconciled). A test or the fuzz target calls a handler with no runtime and reads the
//! effects it asked for; [`Driver`], the application as the runtime sees it, carries each
//! out in a task of its own ([`Router::carry_out`]). The tasks reach switches through the
//! router's [`Registry`] (a clone of the controller's, given at construction): no reference
//! back to the controller, none to the router itself.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ofp13::{Body, MacAddr, Message};
use tracing::{debug, info};

use crate::app::router::Router;
use crate::fabric::topology::{PortRef, Topology};
use crate::switch::runtime::{App, Controller, Registry, RuntimeConfig, SwitchHandle};

/// Work a handler asks for, carried out by [`Router::carry_out`].
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
    /// Stop copying a (source, destination) pair's packets of the VM to the controller.
    QuietRedirects {
        mac: MacAddr,
        pair: (Ipv4Addr, Ipv4Addr),
    },
    /// Run the VM's cover task (its `cover_busy` mark is set).
    ChangeCovers { mac: MacAddr },
    /// Probe the place a claimed move took the VM from.
    Probe {
        mac: MacAddr,
        ip: Ipv4Addr,
        from: (String, u32),
        claim: PortRef,
    },
    /// A timer: reconcile switch `name` after `after`, if it is connected then.
    Reconcile { name: String, after: Duration },
    /// Reconcile a switch that just connected, then audit it every `every` while its
    /// session lasts.
    Audit {
        switch: SwitchHandle,
        name: String,
        every: Option<Duration>,
    },
}

impl Router {
    /// Carries out `effect` in a task of the runtime (call from within it).
    pub fn carry_out(self: &Arc<Self>, effect: Effect) {
        let me = self.clone();
        tokio::spawn(async move {
            match effect {
                Effect::Migrate { mac, to, why } => {
                    if let Err(e) = me.migrate_mac(mac, &to).await {
                        info!(%mac, to = %to, error = %e, "{why}");
                    }
                }
                Effect::Forget { mac, since, after } => {
                    tokio::time::sleep(after).await;
                    // Unknown: moved home and forgotten otherwise meanwhile; nothing to do.
                    let _ = me.forget(mac, Some(since)).await;
                }
                Effect::QuietRedirects { mac, pair } => me.quiet_redirects(mac, pair).await,
                Effect::ChangeCovers { mac } => me.change_covers(mac).await,
                Effect::Probe {
                    mac,
                    ip,
                    from,
                    claim,
                } => me.probe(mac, ip, from, claim).await,
                Effect::Reconcile { name, after } => {
                    if !after.is_zero() {
                        tokio::time::sleep(after).await;
                    }
                    me.catch_up(&name).await;
                }
                Effect::Audit {
                    switch,
                    name,
                    every,
                } => me.audit(switch, name, every).await,
            }
        });
    }

    /// Carries out every effect of `effects`, emptying it.
    pub fn carry_out_all(self: &Arc<Self>, effects: &mut Vec<Effect>) {
        for e in effects.drain(..) {
            self.carry_out(e);
        }
    }

    /// The router as the runtime's [`App`].
    pub fn app(self: &Arc<Self>) -> Arc<dyn App> {
        Arc::new(Driver(self.clone()))
    }

    /// A controller for `topology` that runs this router: the controller fills the registry
    /// the router reaches switches through.
    pub fn serve_with(
        self,
        topology: Topology,
        config: RuntimeConfig,
    ) -> (Arc<Router>, Arc<Controller>) {
        let registry = Registry::default();
        let router = Arc::new(self.with_switches(registry.clone()));
        let ctl = Controller::with_registry(topology, config, router.app(), registry);
        (router, ctl)
    }
}

/// The application as the runtime sees it: each event handed to the router's handler, the
/// answers back to the switch, the effects carried out.
pub struct Driver(pub Arc<Router>);

impl App for Driver {
    fn switch_up(&self, sw: &SwitchHandle) -> Vec<Body> {
        let mut effects = Vec::new();
        let out = self.0.switch_up(sw, &mut effects);
        self.0.carry_out_all(&mut effects);
        out
    }

    fn switch_down(&self, dpid: u64) {
        self.0.switch_down(dpid);
    }

    fn message(&self, sw: &SwitchHandle, msg: &Message, out: &mut Vec<Body>) {
        let Some(name) = self.0.name_of(sw) else {
            return;
        };
        let ports = || sw.info.ports().iter().map(|p| p.port_no).collect();
        // Empty unless the message asks for more than an answer: no allocation then.
        let mut effects = Vec::new();
        self.0
            .handle_message(name, &ports, msg, out, &mut effects, self.0.now());
        if !effects.is_empty() {
            self.0.carry_out_all(&mut effects);
        }
    }
}

impl Router {
    /// A reconciliation asked for after a change of readiness: logged when it changed
    /// something.
    async fn catch_up(self: &Arc<Self>, name: &str) {
        let Some(h) = self.switch_handle(name) else {
            return;
        };
        match self.reconcile(&h, name).await {
            Ok(r) if r.changed() > 0 => info!(
                switch = %name,
                added = r.added,
                modified = r.modified,
                deleted = r.deleted,
                held = r.held,
                deferred = r.deferred,
                "caught up with the plan"
            ),
            Ok(_) => {}
            Err(e) => debug!(switch = %name, error = %e, "not caught up"),
        }
    }
}
