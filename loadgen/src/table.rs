//! The fake flow table the migration workload keeps: the entries naming its VMs, to check moves against.

use crate::*;

/// One modelled flow entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) vm: usize,
    pub(crate) cookie: u64,
    pub(crate) fields: Vec<Oxm>,
    /// The ports its actions output to.
    pub(crate) outputs: Vec<u32>,
}

/// The entries of one emulated switch's table that name a VM of the migration workload (by
/// its MAC or one of its addresses, in the match or in a set-field action), kept as an
/// OpenFlow 1.3 switch applies FLOW_MODs: ADD replaces an identical entry, MODIFY changes
/// instructions, DELETE_STRICT removes exactly one entry, DELETE every entry it covers.
#[derive(Debug, Default)]
pub(crate) struct VmTable {
    pub(crate) entries: HashMap<plan::Key, Entry>,
}

pub(crate) const TABLE_ALL: u8 = 0xff;

impl VmTable {
    /// Whether an entry delivers VM `vm` out of `port`.
    pub(crate) fn delivers(&self, vm: usize, port: u32) -> bool {
        self.entries
            .values()
            .any(|e| e.vm == vm && e.outputs.contains(&port))
    }

    /// Whether a non-strict FLOW_MOD (its table, cookie and match) covers entry `e`.
    pub(crate) fn covers(fm: &FlowMod, key: &plan::Key, e: &Entry) -> bool {
        (fm.table_id == TABLE_ALL || fm.table_id == key.0)
            && (e.cookie & fm.cookie_mask) == (fm.cookie & fm.cookie_mask)
            && fm.match_.fields.iter().all(|f| e.fields.contains(f))
    }

    /// Whether a delete's out_port filter lets it remove `e`.
    pub(crate) fn out_port_allows(fm: &FlowMod, e: &Entry) -> bool {
        fm.out_port == ofp13::port::ANY || e.outputs.contains(&fm.out_port)
    }

    /// Applies a FLOW_MOD that names `named` (a VM of this switch, if any); returns the VMs
    /// whose entries changed.
    pub(crate) fn apply(&mut self, fm: &FlowMod, named: Option<usize>) -> Vec<usize> {
        let mut changed = Vec::new();
        let key = plan::key(fm.table_id, fm.priority, &fm.match_);
        match fm.command {
            ofp13::OFPFC_ADD => {
                let old = match named {
                    Some(vm) => {
                        changed.push(vm);
                        self.entries.insert(
                            key,
                            Entry {
                                vm,
                                cookie: fm.cookie,
                                fields: fm.match_.fields.to_vec(),
                                outputs: instruction_outputs(&fm.instructions),
                            },
                        )
                    }
                    // Replaced by an entry that names none of them.
                    None => self.entries.remove(&key),
                };
                changed.extend(old.map(|e| e.vm));
            }
            ofp13::OFPFC_MODIFY_STRICT => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.outputs = instruction_outputs(&fm.instructions);
                    changed.push(e.vm);
                }
            }
            ofp13::OFPFC_MODIFY => {
                for (k, e) in self.entries.iter_mut() {
                    if fm.table_id == k.0 && Self::covers(fm, k, e) {
                        e.outputs = instruction_outputs(&fm.instructions);
                        changed.push(e.vm);
                    }
                }
            }
            ofp13::OFPFC_DELETE_STRICT
                if self
                    .entries
                    .get(&key)
                    .is_some_and(|e| Self::out_port_allows(fm, e)) =>
            {
                changed.extend(self.entries.remove(&key).map(|e| e.vm));
            }
            ofp13::OFPFC_DELETE => {
                self.entries.retain(|k, e| {
                    let gone = Self::covers(fm, k, e) && Self::out_port_allows(fm, e);
                    if gone {
                        changed.push(e.vm);
                    }
                    !gone
                });
            }
            _ => {}
        }
        changed
    }
}

/// The output ports of a flow entry's actions.
pub(crate) fn instruction_outputs(instructions: &[Instruction]) -> Vec<u32> {
    let mut v = Vec::new();
    for ins in instructions {
        if let Instruction::ApplyActions { actions } | Instruction::WriteActions { actions } = ins {
            for a in actions {
                if let Action::Output { port, .. } = a {
                    v.push(*port);
                }
            }
        }
    }
    v
}
