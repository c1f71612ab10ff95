//! Slots: the names one harness instance owns (`ssfNN…`, `ss-fNN-…`), held by an abstract
//! Unix socket, and the cleanup of whatever a dead instance left with its slot's prefix.

use std::collections::BTreeSet;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};

use super::sys::*;

/// Slots `00`..`99`.
pub(super) const SLOTS: u32 = 100;

pub(super) fn slot_lock(slot: u32) -> Option<UnixListener> {
    let name = format!("servswitch-ovs-fabric-{slot:02}");
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).ok()?;
    UnixListener::bind_addr(&addr).ok()
}

pub(super) fn bridge_prefix(slot: u32) -> String {
    format!("ssf{slot:02}")
}

pub(super) fn ns_prefix(slot: u32) -> String {
    format!("ss-f{slot:02}-")
}

/// The slot of a name made by this harness: `ssfNN…` or `ss-fNN-…`.
pub(super) fn slot_of(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix("ssf")
        .or_else(|| name.strip_prefix("ss-f"))?;
    let d = digits.get(..2)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if name.starts_with("ss-f") && digits.as_bytes().get(2) != Some(&b'-') {
        return None;
    }
    d.parse().ok()
}

pub(super) fn list_bridges() -> Vec<String> {
    vsctl(&["list-br"])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn list_links() -> Vec<String> {
    run("ip", &["-o", "link", "show"])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn list_netns() -> Vec<String> {
    run("ip", &["netns", "list"])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Everything whose name carries `slot`'s prefix: (bridges, interfaces, namespaces).
pub fn leftovers(slot: u32) -> (Vec<String>, Vec<String>, Vec<String>) {
    let bp = bridge_prefix(slot);
    let np = ns_prefix(slot);
    (
        list_bridges()
            .into_iter()
            .filter(|b| b.starts_with(&bp))
            .collect(),
        list_links()
            .into_iter()
            .filter(|l| l.starts_with(&bp))
            .collect(),
        list_netns()
            .into_iter()
            .filter(|n| n.starts_with(&np))
            .collect(),
    )
}

/// Removes every bridge, interface and namespace with `slot`'s prefix. The caller must hold
/// the slot.
pub(super) fn remove_slot(slot: u32) -> Result<(), String> {
    let (bridges, links, namespaces) = leftovers(slot);
    let mut errors = Vec::new();
    if !bridges.is_empty() {
        let mut args: Vec<&str> = Vec::new();
        for b in &bridges {
            args.extend(["--", "--if-exists", "del-br", b.as_str()]);
        }
        if let Err(e) = vsctl(&args) {
            errors.push(e);
        }
    }
    // Deleting the root end of a veth removes its peer at once; a namespace's own teardown is
    // asynchronous in the kernel, so delete the veths explicitly first.
    let links: Vec<String> = list_links()
        .into_iter()
        .filter(|l| links.contains(l))
        .map(|l| format!("link del {l}"))
        .collect();
    // Both ends of a link's veth are ours: deleting one removes the other, so the batch
    // fails on the second. What counts is what is left.
    if let Err(e) = ip_batch(&[], &links, true) {
        if !leftovers(slot).1.is_empty() {
            errors.push(e);
        }
    }
    let ns: Vec<String> = namespaces
        .iter()
        .map(|n| format!("netns del {n}"))
        .collect();
    if let Err(e) = ip_batch(&[], &ns, true) {
        errors.push(e);
    }
    let (b, l, n) = leftovers(slot);
    if !(b.is_empty() && l.is_empty() && n.is_empty()) {
        errors.push(format!(
            "still there after cleanup: bridges {b:?}, interfaces {l:?}, namespaces {n:?}"
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Removes leftovers of every slot nobody holds (a harness killed before its drop ran).
pub(super) fn sweep_free_slots(own: u32) {
    let mut slots = BTreeSet::new();
    for n in list_bridges()
        .into_iter()
        .chain(list_links())
        .chain(list_netns())
    {
        if let Some(s) = slot_of(&n) {
            if s != own {
                slots.insert(s);
            }
        }
    }
    for s in slots {
        if let Some(lock) = slot_lock(s) {
            if let Err(e) = remove_slot(s) {
                eprintln!("ovs_fabric: removing leftovers of slot {s:02}: {e}");
            }
            drop(lock);
        }
    }
}
