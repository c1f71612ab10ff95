//! `servswitch verify`: every live flow table compared with what the controller plans for it
//! (`GET /api/v1/flows/{switch}?format=text&stats=false` against `GET /api/v1/plan/{switch}`),
//! as sets of `ovs-ofctl dump-flows --no-stats` lines, and its meters and groups likewise
//! (`GET /api/v1/meters/{switch}?format=text` against `GET /api/v1/plan/{switch}/meters`,
//! `GET /api/v1/groups/{switch}?format=text` against `GET /api/v1/plan/{switch}/groups`).
//! Prints one line per switch and, on drift, the entries, meters and groups planned but
//! missing (`-`) and present but not planned (`+`); meters and groups count as entries in the
//! drift line. A switch's ok line names its groups only when it has some.
//!
//! Then the declared links (`GET /api/v1/links`): one that LLDP contradicts (`miswired`,
//! `unverified`) fails the check with a line naming it; one that is `down` is named but does
//! not fail it (the tables are planned around it, and the plan is what is checked).

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, Context, Result};

use crate::cli::client::Api;

fn get(api: &Api, path: &str) -> Result<String> {
    let (status, body) = api.request("GET", path, None)?;
    if status != 200 {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(body);
        bail!("GET {path}: {status}: {msg}");
    }
    Ok(body)
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Compares every switch (or one) and writes the report; Ok(true) when every table is as
/// planned.
pub fn run(api: &Api, only: Option<&str>, out: &mut impl Write) -> Result<bool> {
    let switches: serde_json::Value = serde_json::from_str(&get(api, "/api/v1/switches")?)
        .context("GET /api/v1/switches: not JSON")?;
    let all: Vec<(String, bool)> = switches
        .as_array()
        .context("GET /api/v1/switches: not a list")?
        .iter()
        .filter_map(|s| {
            Some((
                s.get("name")?.as_str()?.to_string(),
                s.get("connected")?.as_bool()?,
            ))
        })
        .collect();
    let chosen: Vec<&(String, bool)> = match only {
        Some(name) => {
            let found: Vec<_> = all.iter().filter(|(n, _)| n == name).collect();
            if found.is_empty() {
                bail!("--switch {name:?}: the controller has no such switch");
            }
            found
        }
        None => all.iter().collect(),
    };
    let mut ok = true;
    for (name, connected) in chosen {
        if !connected {
            writeln!(out, "{name}: not connected")?;
            ok = false;
            continue;
        }
        let mut plan = lines(&get(api, &format!("/api/v1/plan/{name}"))?);
        let mut live = lines(&get(
            api,
            &format!("/api/v1/flows/{name}?format=text&stats=false"),
        )?);
        let entries = plan.len();
        plan.extend(lines(&get(api, &format!("/api/v1/plan/{name}/meters"))?));
        live.extend(lines(&get(
            api,
            &format!("/api/v1/meters/{name}?format=text"),
        )?));
        let meters = plan.len() - entries;
        plan.extend(lines(&get(api, &format!("/api/v1/plan/{name}/groups"))?));
        live.extend(lines(&get(
            api,
            &format!("/api/v1/groups/{name}?format=text"),
        )?));
        let groups = plan.len() - entries - meters;
        let missing: Vec<&String> = plan.difference(&live).collect();
        let extra: Vec<&String> = live.difference(&plan).collect();
        if missing.is_empty() && extra.is_empty() {
            if groups == 0 {
                writeln!(out, "{name}: ok ({entries} entries, {meters} meters)")?;
            } else {
                writeln!(
                    out,
                    "{name}: ok ({entries} entries, {meters} meters, {groups} groups)"
                )?;
            }
            continue;
        }
        ok = false;
        writeln!(
            out,
            "{name}: DRIFT: {} planned entries missing, {} entries not planned",
            missing.len(),
            extra.len()
        )?;
        for l in missing {
            writeln!(out, "  - {l}")?;
        }
        for l in extra {
            writeln!(out, "  + {l}")?;
        }
    }
    ok &= links(api, only, out)?;
    Ok(ok)
}

/// The declared links' lines (those of switch `only`, if given): false when LLDP contradicts
/// one. A controller without the links API (an older one) is not asked.
fn links(api: &Api, only: Option<&str>, out: &mut impl Write) -> Result<bool> {
    let (status, body) = api.request("GET", "/api/v1/links", None)?;
    if status == 404 || status == 503 {
        return Ok(true);
    }
    if status != 200 {
        bail!("GET /api/v1/links: {status}: {body}");
    }
    let links: serde_json::Value =
        serde_json::from_str(&body).context("GET /api/v1/links: not JSON")?;
    let mut ok = true;
    for l in links.as_array().context("GET /api/v1/links: not a list")? {
        let text = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let (a, b, state) = (text("a"), text("b"), text("state"));
        let on =
            |end: &str| only.is_none_or(|sw| end.rsplit_once(':').is_some_and(|(s, _)| s == sw));
        if state == "up" || !(on(a) || on(b)) {
            continue;
        }
        let why = [text("reason"), text("detail")]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        if matches!(state, "miswired" | "unverified") {
            ok = false;
            writeln!(out, "link {a} - {b}: {}: {why}", state.to_uppercase())?;
        } else {
            writeln!(out, "link {a} - {b}: {state} ({why})")?;
        }
    }
    Ok(ok)
}
