//! Updates that span switches, and the order that keeps them invisible to hosts.
//!
//! A migration, a return home, a move on to a third subnet, a cover that grows or shrinks, and
//! a restarted controller's reconciliation all change several switches' tables. Switches apply
//! their flow mods one at a time and independently of each other, so the fabric passes through
//! every mix of old and new entries the order allows. A [`Schedule`] is that order: batches of
//! flow mods, one switch each, where a batch starts only after the batches it names are
//! acknowledged (barrier replies). [`Schedule::phased`] builds the order every update uses, and
//! [`crate::mobility::transitions`] checks, packet by packet, every state a schedule lets the fabric pass
//! through.
//!
//! Every entry servswitch installs plays one of three [`Role`]s for the care-of address M* of a
//! VM away from home:
//! - a *producer* writes M* into packets: the ingress rewrites `nw_dst=M -> M*`, the foreign
//!   switch's source rewrite `nw_src=M -> M*`, the home agent;
//! - a *consumer* takes M* out again before any host can see it: the foreign switch's delivery
//!   `nw_dst=M* -> M`, the cover switches' restores `nw_src=M* -> M`;
//! - everything else (host entries, redirect copies, the pipeline, routes) is *neutral*.
//!
//! A packet carries M* only between a producer and a consumer, so the phases are:
//! 1. consumers in, producers out, and every neutral change;
//! 2. producers in;
//! 3. consumers out.
//!
//! In every mix of states this allows, each producer's consumers are installed before the
//! producer and removed after it, so no host receives M*. See docs/migration.md ("Phases").
//!
//! Within one switch the same order holds: [`difference_in_order`] turns a table (live or
//! planned) and its plan into flow mods in those phases, holding back what the caller does
//! not allow yet; reconciliation (`crate::app::reconcile`) sends it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ofp13::{Action, FlowMod, FlowStats, Instruction, Oxm};

use crate::fabric::plan::{
    delete_strict, is_ours, table_diff, Flow, COOKIE_MASK_KIND, COOKIE_MOBILITY, COOKIE_MOBILITY6,
    COOKIE_REDIRECT, COOKIE_REDIRECT6,
};
use crate::mobility::flows::SwitchDiff;

/// What an entry does with care-of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Writes a care-of address into packets.
    Producer,
    /// Matches a care-of address and writes the home address back.
    Consumer,
    Neutral,
}

/// The role of an entry with this cookie and these instructions. Only servswitch's per-VM
/// entries have one: their cookie carries the VM's home address M (IPv4; the low 32 bits of
/// an IPv6 one, which no care-of address of the VM shares), and an entry that sets an address
/// other than M writes a care-of address (producer), one that sets M takes it out (consumer).
/// An entry that did both would be a producer (none does).
pub fn role(cookie: u64, instructions: &[Instruction]) -> Role {
    let kind = cookie & COOKIE_MASK_KIND;
    if ![
        COOKIE_MOBILITY,
        COOKIE_REDIRECT,
        COOKIE_MOBILITY6,
        COOKIE_REDIRECT6,
    ]
    .contains(&kind)
    {
        return Role::Neutral;
    }
    let mut role = Role::Neutral;
    for (ip, _) in set_addresses(instructions) {
        if !is_home(cookie, ip) {
            return Role::Producer;
        }
        role = Role::Consumer;
    }
    role
}

/// Whether `ip` is the home address the cookie of a per-VM entry names.
fn is_home(cookie: u64, ip: IpAddr) -> bool {
    let v6 = matches!(
        cookie & COOKIE_MASK_KIND,
        COOKIE_MOBILITY6 | COOKIE_REDIRECT6
    );
    match ip {
        IpAddr::V4(a) => !v6 && u32::from(a) == cookie as u32,
        IpAddr::V6(a) => v6 && u128::from(a) as u32 == cookie as u32,
    }
}

/// The role of a planned entry.
pub fn flow_role(f: &Flow) -> Role {
    role(f.cookie, &f.instructions)
}

/// Which address field an address is written to or matched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Src,
    Dst,
}

/// The IPv4 and IPv6 addresses an entry's actions write, with the field.
pub fn set_addresses(instructions: &[Instruction]) -> impl Iterator<Item = (IpAddr, Field)> + '_ {
    instructions
        .iter()
        .flat_map(|i| match i {
            Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } => {
                actions.as_slice()
            }
            _ => &[],
        })
        .filter_map(|a| match a {
            Action::SetField { field } => address_field(field),
            _ => None,
        })
}

fn address_field(f: &Oxm) -> Option<(IpAddr, Field)> {
    match f {
        Oxm::Ipv4Src(ip, None) => Some(((*ip).into(), Field::Src)),
        Oxm::Ipv4Dst(ip, None) => Some(((*ip).into(), Field::Dst)),
        Oxm::Ipv6Src(ip, None) => Some(((*ip).into(), Field::Src)),
        Oxm::Ipv6Dst(ip, None) => Some(((*ip).into(), Field::Dst)),
        _ => None,
    }
}

/// The exact IPv4 and IPv6 addresses a match pins, with the field.
pub fn matched_addresses(m: &ofp13::Match) -> impl Iterator<Item = (IpAddr, Field)> + '_ {
    m.fields.iter().filter_map(address_field)
}

/// The care-of addresses a producer writes, with the field (empty for other entries).
pub fn produced(f: &Flow) -> Vec<(IpAddr, Field)> {
    if flow_role(f) != Role::Producer {
        return Vec::new();
    }
    set_addresses(&f.instructions)
        .filter(|(ip, _)| !is_home(f.cookie, *ip))
        .collect()
}

/// The care-of addresses a consumer takes out, with the field it matches them in.
pub fn consumed(f: &Flow) -> Vec<(IpAddr, Field)> {
    if flow_role(f) != Role::Consumer {
        return Vec::new();
    }
    let written: Vec<Field> = set_addresses(&f.instructions).map(|(_, fl)| fl).collect();
    matched_addresses(&f.match_)
        .filter(|(ip, fl)| !is_home(f.cookie, *ip) && written.contains(fl))
        .collect()
}

/// One switch's flow mods, sent together and acknowledged by one barrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub switch: String,
    /// For people: which phase of the update (1, 2, 3) the batch belongs to.
    pub phase: u8,
    pub mods: Vec<FlowMod>,
    /// Indexes of the batches that must be acknowledged before this one is sent. A switch's
    /// own batches are applied in the order they are listed, whatever this says.
    pub after: Vec<usize>,
    /// Sent only after [`DRAIN`] more: by then no packet that met a switch before the batches
    /// this one waits for were applied is still in the fabric (in flight, or handled by a
    /// datapath cache entry of the old tables).
    pub drain: bool,
}

/// How long the last phase waits after the one before it: longer than any packet stays in the
/// fabric, and than Open vSwitch takes to bring its datapath caches in line with a changed
/// table (its revalidators run on every table change, and at the latest every 500 ms,
/// `other_config:max-revalidator`).
pub const DRAIN: std::time::Duration = std::time::Duration::from_millis(1000);

/// One phase: a batch per switch, and whether it waits for [`DRAIN`].
pub type Phase = (Vec<(String, Vec<FlowMod>)>, bool);

/// An update that spans switches: batches and the order between them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub batches: Vec<Batch>,
}

/// Phase 1's entries of one switch, in the order they are sent: producers out first (less
/// is written from the very first message on), then consumers in, then the neutral changes.
fn phase_one(d: &SwitchDiff) -> Vec<FlowMod> {
    let mut out: Vec<FlowMod> = Vec::new();
    // An entry replaced in place by a non-producer stops producing too.
    let producer_out = d
        .deletes
        .iter()
        .filter(|f| flow_role(f) == Role::Producer)
        .map(crate::fabric::plan::delete_strict);
    out.extend(producer_out);
    out.extend(
        d.adds
            .iter()
            .filter(|f| flow_role(f) == Role::Consumer)
            .map(Flow::add),
    );
    out.extend(
        d.adds
            .iter()
            .filter(|f| flow_role(f) == Role::Neutral)
            .map(Flow::add),
    );
    out.extend(
        d.deletes
            .iter()
            .filter(|f| flow_role(f) == Role::Neutral)
            .map(crate::fabric::plan::delete_strict),
    );
    out
}

impl Schedule {
    /// The order every update uses: phase 1 (consumers in, producers out, neutral changes),
    /// phase 2 (producers in), phase 3 (consumers out), each phase starting when every batch
    /// of the one before has been acknowledged. Switches are in name order within a phase.
    pub fn phased(diff: &BTreeMap<String, SwitchDiff>) -> Schedule {
        let mut phases: [Vec<(String, Vec<FlowMod>)>; 3] = Default::default();
        for (sw, d) in diff {
            let one = phase_one(d);
            let two: Vec<FlowMod> = d
                .adds
                .iter()
                .filter(|f| flow_role(f) == Role::Producer)
                .map(Flow::add)
                .collect();
            let three: Vec<FlowMod> = d
                .deletes
                .iter()
                .filter(|f| flow_role(f) == Role::Consumer)
                .map(crate::fabric::plan::delete_strict)
                .collect();
            for (i, mods) in [one, two, three].into_iter().enumerate() {
                if !mods.is_empty() {
                    phases[i].push((sw.clone(), mods));
                }
            }
        }
        let [one, two, three] = phases;
        Schedule::from_phases(vec![(one, false), (two, false), (three, true)])
    }

    /// Batches in phases: every batch of a phase waits for every batch of the previous
    /// non-empty phase; a phase marked `true` also waits for [`DRAIN`]. Phases are numbered
    /// from 1 in the order given.
    pub fn from_phases(phases: Vec<Phase>) -> Schedule {
        let mut batches: Vec<Batch> = Vec::new();
        let mut previous: Vec<usize> = Vec::new();
        for (i, (phase, drain)) in phases.into_iter().enumerate() {
            let mut this = Vec::new();
            for (switch, mods) in phase {
                if mods.is_empty() {
                    continue;
                }
                this.push(batches.len());
                batches.push(Batch {
                    switch,
                    phase: u8::try_from(i + 1).unwrap_or(u8::MAX),
                    mods,
                    after: previous.clone(),
                    drain,
                });
            }
            if !this.is_empty() {
                previous = this;
            }
        }
        Schedule { batches }
    }

    /// Flow mods in all.
    pub fn flow_mods(&self) -> usize {
        self.batches.iter().map(|b| b.mods.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The batches grouped into waves that can be sent together: a wave's batches wait only
    /// for batches of earlier waves. For a phased schedule, one wave per phase.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let mut wave_of: Vec<usize> = Vec::with_capacity(self.batches.len());
        let mut last_of_switch: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, b) in self.batches.iter().enumerate() {
            let mut w = 0;
            for &a in &b.after {
                if let Some(&wa) = wave_of.get(a) {
                    w = w.max(wa + 1);
                }
            }
            // A switch's batches go out in order; each needs the one before acknowledged.
            if let Some(&prev) = last_of_switch.get(b.switch.as_str()) {
                w = w.max(wave_of[prev] + 1);
            }
            last_of_switch.insert(&b.switch, i);
            wave_of.push(w);
        }
        let n = wave_of.iter().max().map_or(0, |m| m + 1);
        let mut waves = vec![Vec::new(); n];
        for (i, w) in wave_of.into_iter().enumerate() {
            waves[w].push(i);
        }
        waves
    }

    /// The schedule as text: one line per flow mod, grouped by batch.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (i, b) in self.batches.iter().enumerate() {
            s.push_str(&format!(
                "batch {i}: phase {} on {}{}{}\n",
                b.phase,
                b.switch,
                if b.drain { ", drained" } else { "" },
                if b.after.is_empty() {
                    String::new()
                } else {
                    format!(" (after {:?})", b.after)
                }
            ));
            for m in &b.mods {
                s.push_str(&format!("  {}\n", mod_text(m)));
            }
        }
        s
    }
}

/// A flow mod as one line: the command and the entry, in ovs-ofctl syntax.
pub fn mod_text(m: &FlowMod) -> String {
    let verb = match m.command {
        ofp13::OFPFC_ADD => "add",
        ofp13::OFPFC_DELETE_STRICT => "delete_strict",
        ofp13::OFPFC_DELETE => "delete",
        ofp13::OFPFC_MODIFY => "modify",
        ofp13::OFPFC_MODIFY_STRICT => "modify_strict",
        _ => "?",
    };
    let line = ofp13::text::flow_line(&ofp13::text::FlowLine {
        table_id: m.table_id,
        cookie: m.cookie,
        idle_timeout: m.idle_timeout,
        hard_timeout: m.hard_timeout,
        flags: m.flags,
        priority: m.priority,
        match_: &m.match_,
        instructions: &m.instructions,
        stats: None,
    });
    format!("{verb} {line}")
}

/// An update's last phase while it waits for its drain: the consumer entries it deletes
/// (still on the switches) and the care-of addresses it gives back (subnet, address). The
/// VM's next update takes it over: its tables before include those entries, it may take the
/// addresses back, and it deletes what it does not keep in its own last phase.
#[derive(Debug, Clone, Default)]
pub struct PendingCleanup {
    pub id: u64,
    pub flows: BTreeMap<String, Vec<Flow>>,
    pub released: Vec<(String, std::net::IpAddr)>,
}

// --- Within one switch: a table brought to its plan in the same phases ---------------------

/// What one reconciliation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Entries already right.
    pub kept: usize,
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    /// Entries that are not servswitch's (another cookie): left alone.
    pub foreign: usize,
    /// Planned producers not installed yet: a switch with their consumers is not ready.
    pub held: usize,
    /// Consumer entries the plan no longer has, left until the fabric is quiet.
    pub deferred: usize,
    /// Meters added, changed or deleted.
    pub meters: usize,
    /// Groups added, changed or deleted.
    pub groups: usize,
}

impl Reconciled {
    pub fn changed(&self) -> usize {
        self.added + self.modified + self.deleted + self.meters + self.groups
    }
}

/// What a reconciliation may change now, for care-of addresses (see the module's documentation).
pub struct Allow<'a> {
    /// Whether a planned producer may be installed: every switch with its consumers is ready.
    pub producer: &'a dyn Fn(&Flow) -> bool,
    /// Whether consumer entries the plan does not have may be deleted: no switch can still
    /// hold a producer of their address, nor a packet it rewrote be in the fabric.
    pub delete_consumers: bool,
}

/// Everything may change now.
pub const ANY: Allow<'static> = Allow {
    producer: &|_| true,
    delete_consumers: true,
};

/// The difference between a live table and a plan ([`difference_in_order`] with nothing held
/// back).
pub fn difference(live: &[FlowStats], plan: &[Flow]) -> (Vec<FlowMod>, Reconciled) {
    difference_in_order(live, plan, &ANY)
}

/// The difference between a live table and a plan, as flow mods in the order they are sent,
/// the phases of an update within one switch: producers out; consumers in; other adds and
/// modifications (in plan order: the route table's miss entry last, as on a first install);
/// other deletes; producers in (those `allow` lets in; a held one leaves its live entry as
/// it is); consumers out (if `allow` lets them). An entry is right when its cookie and
/// instructions are the planned ones (compared as values, not as text: an audit of a large
/// fabric reads hundreds of thousands of entries).
pub fn difference_in_order(
    live: &[FlowStats],
    plan: &[Flow],
    allow: &Allow<'_>,
) -> (Vec<FlowMod>, Reconciled) {
    let d = table_diff(live, plan);
    // The six steps, in order.
    let mut step: [Vec<FlowMod>; 6] = Default::default();
    let mut r = Reconciled {
        kept: d.kept,
        ..Reconciled::default()
    };
    for (f, old) in d.changes {
        let i = match flow_role(f) {
            Role::Producer if !(allow.producer)(f) => {
                r.held += 1;
                continue;
            }
            Role::Producer => 4,
            Role::Consumer => 1,
            Role::Neutral
                if old.is_some_and(|l| role(l.cookie, &l.instructions) == Role::Producer) =>
            {
                0
            }
            Role::Neutral => 2,
        };
        match old {
            Some(_) => r.modified += 1,
            None => r.added += 1,
        }
        step[i].push(f.add());
    }
    for f in d.extra {
        if !is_ours(f.cookie) {
            r.foreign += 1;
            continue;
        }
        let i = match role(f.cookie, &f.instructions) {
            Role::Producer => 0,
            Role::Consumer if !allow.delete_consumers => {
                r.deferred += 1;
                continue;
            }
            Role::Consumer => 5,
            Role::Neutral => 3,
        };
        r.deleted += 1;
        step[i].push(delete_strict(f));
    }
    (step.into_iter().flatten().collect(), r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::paper_fabric;
    use crate::mobility::flows::{by_switch, default_cover, diff, vm_flows, vms_at_home, Away, Vm};
    use ofp13::{Match, Oxm};
    use std::net::Ipv4Addr;

    fn vm_moves() -> (Vm, Vm) {
        let f = paper_fabric();
        let home = vms_at_home(&f.configured_hosts())
            .into_iter()
            .find(|v| v.ips == [Ipv4Addr::new(192, 168, 11, 3)])
            .unwrap();
        let mut away = home.clone();
        away.switch = "r2".into();
        away.port = 9;
        away.away = Some(Away {
            care_of: vec![Ipv4Addr::new(192, 168, 10, 192)],
            cover: default_cover(&f, "r2", &away.ips, &away.ips6),
            ..Default::default()
        });
        (home, away)
    }

    #[test]
    fn every_per_vm_entry_has_the_role_its_rewrite_gives_it() {
        let f = paper_fabric();
        let (_, away) = vm_moves();
        let mut roles = BTreeMap::new();
        for (sw, fl) in vm_flows(&f, &away) {
            *roles.entry((sw, fl.table_id, flow_role(&fl))).or_insert(0) += 1;
        }
        let get = |sw: &str, t: u8, r: Role| roles.get(&(sw.to_string(), t, r)).copied();
        // The foreign switch delivers M* (consumer), rewrites M -> M* for its own hosts and
        // toward cover subnets (producers).
        assert_eq!(get("r2", 4, Role::Consumer), Some(1));
        assert_eq!(get("r2", 2, Role::Producer), Some(2));
        assert_eq!(
            get("r2", 1, Role::Producer),
            Some(2),
            "DNAT and the redirect copy"
        );
        // Every other cover switch restores (consumer) and rewrites toward M* (producer).
        for sw in ["r1", "r3"] {
            assert_eq!(get(sw, 3, Role::Consumer), Some(1), "{sw}");
            assert_eq!(get(sw, 1, Role::Producer), Some(1), "{sw}");
        }
        assert_eq!(
            get("r3", 4, Role::Producer),
            Some(2),
            "the home agent and its twin"
        );
        for (_, fl) in vm_flows(&f, &away) {
            if flow_role(&fl) == Role::Consumer {
                assert_eq!(consumed(&fl).len(), 1, "{}", fl.text());
            }
            if flow_role(&fl) == Role::Producer {
                assert_eq!(produced(&fl).len(), 1, "{}", fl.text());
            }
        }
    }

    #[test]
    fn phases_put_consumers_first_producers_second_consumer_deletes_last() {
        let f = paper_fabric();
        let (home, away) = vm_moves();
        let b = by_switch(vm_flows(&f, &home));
        let a = by_switch(vm_flows(&f, &away));
        let out = Schedule::phased(&diff(&b, &a));
        let phase_of = |want: Role, add: bool| -> Vec<u8> {
            out.batches
                .iter()
                .flat_map(|bt| {
                    bt.mods
                        .iter()
                        .filter(move |m| {
                            (m.command == ofp13::OFPFC_ADD) == add
                                && role(m.cookie, &m.instructions) == want
                        })
                        .map(move |_| bt.phase)
                })
                .collect()
        };
        assert!(phase_of(Role::Consumer, true).iter().all(|p| *p == 1));
        assert!(phase_of(Role::Producer, true).iter().all(|p| *p == 2));
        assert!(!phase_of(Role::Producer, true).is_empty());
        // Going home: producers go in phase 1 (deletes carry no instructions: their role
        // comes from the entry they delete), consumers last.
        let back = Schedule::phased(&diff(&a, &b));
        assert_eq!(back.batches.iter().map(|b| b.phase).max(), Some(3));
        assert!(
            back.batches.iter().all(|b| b.phase != 2),
            "nothing to produce"
        );
        // Waves follow the phases.
        assert_eq!(out.waves().len(), 2);
        assert_eq!(back.waves().len(), 2);
    }

    fn stats(f: &Flow) -> FlowStats {
        FlowStats {
            table_id: f.table_id,
            duration_sec: 7,
            duration_nsec: 0,
            priority: f.priority,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie: f.cookie,
            packet_count: 3,
            byte_count: 180,
            match_: f.match_.clone(),
            instructions: f.instructions.clone(),
        }
    }

    #[test]
    fn only_the_difference_is_sent() {
        let fabric = crate::fabric::plan::paper_fabric();
        let plan = fabric.switch_plan("r3", &fabric.configured_hosts());
        let live: Vec<FlowStats> = plan.iter().map(stats).collect();
        // The same table (counters and durations aside): nothing to send.
        let (mods, r) = difference(&live, &plan);
        assert!(mods.is_empty());
        assert_eq!(r.kept, plan.len());
        // Match fields reported in another order are the same entry.
        let mut reordered = live.clone();
        for f in &mut reordered {
            f.match_.fields.reverse();
        }
        assert!(difference(&reordered, &plan).0.is_empty());
        // One missing, one changed, one extra (not ours).
        let mut drifted = live.clone();
        drifted.remove(0);
        drifted[3].instructions = vec![Instruction::GotoTable { table_id: 4 }];
        drifted.push(FlowStats {
            cookie: crate::fabric::plan::COOKIE_HOST | 0x0a00_0009,
            match_: Match::new(vec![Oxm::InPort(9, None)]),
            priority: 7,
            ..stats(&plan[0])
        });
        // Someone else's entry is left alone.
        drifted.push(FlowStats {
            cookie: 0x1234,
            match_: Match::new(vec![Oxm::InPort(8, None)]),
            priority: 7,
            ..stats(&plan[0])
        });
        let (mods, r) = difference(&drifted, &plan);
        assert_eq!(
            (r.added, r.modified, r.deleted, r.foreign),
            (1, 1, 1, 1),
            "{r:?}"
        );
        assert_eq!(mods.len(), 3);
        let del = mods.last().unwrap();
        assert_eq!(
            (del.command, del.priority, del.cookie),
            (ofp13::OFPFC_DELETE_STRICT, 7, 0),
            "strict delete of exactly the extra entry of ours, never a blanket one"
        );
        assert!(mods[..2].iter().all(|m| m.command == ofp13::OFPFC_ADD));
    }
}
