//! The data of verified, armed and quarantined moves ([`crate::app::trust`] holds what the
//! router does with them): the policy, what started a migration, a claim being checked, an
//! armed move, and the views the API lists. Nothing here knows the router.

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::fabric::topology::PortRef;

/// How long the old place of a moved VM has to answer the probe. A Linux host answers an ARP
/// probe within a millisecond; the window leaves room for a busy host and switch.
pub const PROBE_WINDOW: Duration = Duration::from_millis(300);
/// Probes sent in the window (a lost probe does not let a forged claim stand).
pub(crate) const PROBES: u32 = 3;
/// How long a (switch, port, MAC) whose claim was refused is ignored (`--quarantine`).
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(60);
/// How long an armed move waits for its announcement unless the request says (`ttl_s`).
pub const DEFAULT_ARM_TTL: Duration = Duration::from_secs(120);
/// The longest time to live an armed move may ask for.
pub const MAX_ARM_TTL: Duration = Duration::from_secs(86_400);
/// How many ended moves `GET /api/v1/migrations` keeps.
pub(crate) const RECENT_MOVES: usize = 256;

/// What started a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// `POST /api/v1/migrations` (now).
    Api,
    /// An announcement that nobody armed (RARP, gratuitous ARP, first packet).
    Announced,
    /// The announcement an armed move waited for.
    Armed,
    /// A refused claim undone.
    MoveBack,
}

/// A move armed by the API, waiting for its announcement.
#[derive(Debug, Clone)]
pub(crate) struct Armed {
    pub(crate) id: u64,
    pub(crate) host: String,
    pub(crate) to: (String, u32),
    pub(crate) until: Instant,
    pub(crate) at: f64,
}

/// An armed move or a migration, as `GET /api/v1/migrations` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MoveView {
    pub id: String,
    /// `armed`, `done`, `failed`, `cancelled`, `expired` or `replaced` (by a newer arm).
    pub state: &'static str,
    pub host: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was armed or ended (Unix time, seconds).
    pub at: f64,
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What an announcement that is not expected does (`--announcements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Announcements {
    /// Every announcement moves the VM (no check).
    Trusted,
    /// The move is made at once and checked: the old place is probed, and the move is
    /// undone if the VM answers there.
    #[default]
    Verified,
    /// Announcements move nothing; only the API moves VMs.
    ArmedOnly,
}

impl FromStr for Announcements {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trusted" => Ok(Announcements::Trusted),
            "verified" => Ok(Announcements::Verified),
            "armed-only" => Ok(Announcements::ArmedOnly),
            _ => Err(format!(
                "{s:?} is not an announcement policy (trusted, verified or armed-only)"
            )),
        }
    }
}

impl std::fmt::Display for Announcements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Announcements::Trusted => "trusted",
            Announcements::Verified => "verified",
            Announcements::ArmedOnly => "armed-only",
        })
    }
}

/// A claim being checked: the VM was at `from`, a frame claimed it at `claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verifying {
    pub(crate) from: (String, u32),
    /// The claim being checked (the latest, when one followed another before the answer).
    pub(crate) claim: (String, u32),
    /// Earlier claims of the same VM made while this one was checked: refused with it.
    pub(crate) earlier: Vec<(String, u32)>,
    /// When the first probe went out (None: the tentative move is still being installed).
    pub(crate) probed: Option<Instant>,
}

impl Verifying {
    /// Whether this is the check of a claim at `to`.
    pub(crate) fn is_claim(&self, to: &PortRef) -> bool {
        self.claim.0 == to.switch && self.claim.1 == to.port
    }

    /// Whether the old place is being probed at `now`: an answer from there counts only
    /// then (a record whose probe never went out, or whose window ended long ago, is stale).
    pub(crate) fn probing(&self, now: Instant) -> bool {
        self.probed
            .is_some_and(|t| now.saturating_duration_since(t) < PROBE_WINDOW * 2)
    }
}

/// A quarantined claimant as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuarantineView {
    pub switch: String,
    pub port: u32,
    pub mac: String,
    pub expires_in_s: f64,
}
