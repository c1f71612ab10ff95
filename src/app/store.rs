//! The state that must survive a controller restart (`--state DIR`): which VMs are away from
//! home, where, and with which care-of addresses. Small (one record per migrated VM), so it is
//! one JSON document, replaced atomically: written to a temporary file, flushed to disk,
//! renamed over the old one, and the directory flushed — a crash at any point leaves either the
//! old or the new state, never a mix. `save` returns only once the new state is durable, so
//! callers write it before sending any flow.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The file inside the state directory.
pub const STATE_FILE: &str = "servswitch-state.json";
const TMP_FILE: &str = "servswitch-state.json.tmp";
/// The format version this build reads and writes.
pub const FORMAT: u32 = 1;

/// A switch port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub switch: String,
    pub port: u32,
}

/// One VM that is away from home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub mac: ofp13::MacAddr,
    pub ips: Vec<Ipv4Addr>,
    pub home_subnet: String,
    pub home: Place,
    pub location: Place,
    /// The foreign subnet the care-of addresses belong to.
    pub care_of_subnet: String,
    pub care_of: Vec<Ipv4Addr>,
    /// Its IPv6 addresses, and their care-of addresses in the same order (none when the
    /// foreign subnet has no prefix6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips6: Vec<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_of6: Vec<Ipv6Addr>,
    /// Switches that rewrite for it beyond the default (correspondents' switches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cover: Vec<String>,
}

/// Everything kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format: u32,
    /// Migrated VMs by MAC (text form).
    pub vms: BTreeMap<String, VmRecord>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a servswitch state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: state format {found} is newer than this servswitch ({FORMAT}); refusing to overwrite it")]
    TooNew { path: PathBuf, found: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the directory and reads the state in it; an absent file is an empty
    /// state. A leftover temporary file from a crash mid-write is ignored and removed.
    pub fn open(dir: &Path) -> Result<(Store, Snapshot), StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = dir.join(TMP_FILE);
        if tmp.exists() {
            fs::remove_file(&tmp).map_err(io(&tmp))?;
        }
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let state: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if state.format > FORMAT {
                    return Err(StoreError::TooNew {
                        path,
                        found: state.format,
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot {
                format: FORMAT,
                ..Snapshot::default()
            },
            Err(e) => return Err(io(&path)(e)),
        };
        Ok((
            Store {
                dir: dir.to_path_buf(),
            },
            state,
        ))
    }

    /// Replaces the stored state; durable when this returns.
    pub fn save(&self, state: &Snapshot) -> Result<(), StoreError> {
        let tmp = self.dir.join(TMP_FILE);
        let path = self.dir.join(STATE_FILE);
        let mut text = serde_json::to_vec_pretty(&Snapshot {
            format: FORMAT,
            vms: state.vms.clone(),
        })
        .map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
}

/// The state store with the version last written, so a slow writer never overwrites a newer
/// state with an older one.
pub struct Durable {
    store: Store,
    written: Mutex<u64>,
}

impl Durable {
    pub fn new(store: Store) -> Durable {
        Durable {
            store,
            written: Mutex::new(0),
        }
    }

    /// Writes `snapshot`, the state at `version`, unless a newer one was written already.
    pub(crate) fn save(&self, snapshot: &Snapshot, version: u64) -> Result<(), StoreError> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if version > *written {
            self.store.save(snapshot)?;
            *written = version;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> VmRecord {
        VmRecord {
            name: "vm".into(),
            mac: "02:00:00:00:11:03".parse().unwrap(),
            ips: vec![Ipv4Addr::new(192, 168, 11, 3)],
            home_subnet: "home".into(),
            home: Place {
                switch: "r3".into(),
                port: 3,
            },
            location: Place {
                switch: "r2".into(),
                port: 3,
            },
            care_of_subnet: "foreign".into(),
            care_of: vec![Ipv4Addr::new(192, 168, 10, 192)],
            ips6: vec!["fd00:0:0:11::3".parse().unwrap()],
            care_of6: vec!["fd00:0:0:10::ff01".parse().unwrap()],
            cover: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = Store::open(dir.path()).unwrap();
        assert!(state.vms.is_empty());
        let mut s = state.clone();
        s.vms.insert("02:00:00:00:11:03".into(), vm());
        store.save(&s).unwrap();
        let (_, back) = Store::open(dir.path()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_crash_mid_write_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut s) = Store::open(dir.path()).unwrap();
        s.vms.insert("a".into(), vm());
        store.save(&s).unwrap();
        // A crash after writing half of the next state to the temporary file.
        fs::write(
            dir.path().join(TMP_FILE),
            b"{\"format\": 1, \"vms\": {\"b\":",
        )
        .unwrap();
        let (_, back) = Store::open(dir.path()).unwrap();
        assert_eq!(back, s);
        assert!(!dir.path().join(TMP_FILE).exists());
    }

    #[test]
    fn corrupt_or_newer_files_are_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        fs::write(&path, b"not json").unwrap();
        let e = Store::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a servswitch state file"), "{e}");
        fs::write(&path, b"{\"format\": 9, \"vms\": {}}").unwrap();
        let e = Store::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("newer than this servswitch"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"{\"format\": 9, \"vms\": {}}");
    }
}
