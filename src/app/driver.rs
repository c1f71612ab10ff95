//! The application as the runtime sees it ([`Driver`]: `impl App`), and the one place the
//! effects its handlers ask for are carried out ([`Router::carry_out`]).
//!
//! The driver reads the router's clock once per event, calls the handler with that time,
//! hands the answers back to the runtime for the switch that spoke, and runs each effect in
//! a task. The tasks reach switches through the router's [`Registry`] (a clone of the
//! controller's, given when both are built: [`Router::serve_with`]): no reference back to
//! the controller, none to the router itself.

use std::sync::Arc;
use std::time::Instant;

use ofp13::{Body, Message};
use tracing::info;

use crate::app::effect::Effect;
use crate::app::router::{Ports, Router};
use crate::fabric::plan::SwitchCtx;
use crate::fabric::topology::Topology;
use crate::switch::runtime::{Answers, App, Controller, Registry, RuntimeConfig, SwitchHandle};

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
                Effect::Replan { after } => {
                    tokio::time::sleep(after).await;
                    let mut effects = Vec::new();
                    me.replan(&mut effects, me.now());
                    me.carry_out_all(&mut effects);
                }
                Effect::LldpBurst { ends } => me.lldp_burst(ends).await,
                Effect::Send { switch, batch } => {
                    if let Some(h) = me.switch_handle(&switch) {
                        let _ = h.send(batch).await;
                    }
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
        let out = self.0.switch_up(sw, &mut effects, self.0.now());
        self.0.carry_out_all(&mut effects);
        out
    }

    fn switch_down(&self, dpid: u64) {
        let mut effects = Vec::new();
        self.0.switch_down(dpid, self.0.now(), &mut effects);
        self.0.carry_out_all(&mut effects);
    }

    fn message(&self, sw: &SwitchHandle, msg: &Message, read: Instant, out: &mut Answers) {
        self.at_switch(sw, read, |at, ports, effects, now| {
            self.0.handle_message_at(at, ports, msg, out, effects, now);
        });
    }

    fn packet_in(
        &self,
        sw: &SwitchHandle,
        _msg: &[u8],
        pi: &ofp13::PacketInView<'_>,
        read: Instant,
        out: &mut Answers,
    ) {
        self.at_switch(sw, read, |at, ports, effects, now| {
            self.0.packet_in_at(at, ports, pi, out, effects, now);
        });
    }
}

impl Driver {
    /// Runs a handler at the connected switch, resolved once by datapath id (no name is
    /// hashed per message), at the event's time; then carries out the effects it asked for
    /// (none, and no allocation, for a message that needs only an answer).
    fn at_switch(
        &self,
        sw: &SwitchHandle,
        read: Instant,
        f: impl FnOnce(SwitchCtx<'_>, Ports<'_>, &mut Vec<Effect>, Instant),
    ) {
        let Some(at) = self.0.switch_of(sw) else {
            return;
        };
        let ports = || sw.info.ports().iter().map(|p| p.port_no).collect();
        let mut effects = Vec::new();
        f(at, &ports, &mut effects, self.0.event_time(read));
        if !effects.is_empty() {
            self.0.carry_out_all(&mut effects);
        }
    }
}
