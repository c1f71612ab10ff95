//! `servswitch`: the command line. Each subcommand parses its flags and calls into the library;
//! every error a user can cause ends in one line on stderr and exit code 1.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use servswitch::cli::codec;

#[derive(Parser)]
#[command(
    name = "servswitch",
    version,
    about = "OpenFlow 1.3 controller for transparent VM migration across IP subnets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller until SIGINT or SIGTERM.
    Run(RunArgs),
    /// The paper's migration and its eight communication cases on an emulated fabric (no root,
    /// no Open vSwitch); prints a table, exits 0 only when every case passes.
    Demo {
        /// The topology file (TOML).
        #[arg(long, default_value = "topologies/dual-stack.toml")]
        topology: PathBuf,
    },
    /// Print a generated three-tier fabric (topology TOML) for benchmarks and tests.
    GenTopology {
        #[arg(long, default_value_t = 500)]
        racks: u32,
        #[arg(long, default_value_t = 40)]
        hosts_per_rack: u32,
        #[arg(long, default_value_t = 2)]
        cores: u32,
        #[arg(long, default_value_t = 2)]
        agg_per_block: u32,
        #[arg(long, default_value_t = 20)]
        racks_per_block: u32,
        /// Dual stack: each rack also gets an IPv6 /64 (fd00:0:0:R::/64, gateway ::1) and
        /// each host an IPv6 address.
        #[arg(long)]
        ipv6: bool,
    },
    /// Print the flow tables the controller would install (ovs-ofctl dump-flows --no-stats
    /// syntax, deterministic order), for every switch or one.
    Plan {
        /// The topology file (TOML).
        #[arg(long)]
        topology: PathBuf,
        /// Only this switch, without a header line (diffable with ovs-ofctl's output).
        #[arg(long)]
        switch: Option<String>,
        /// Print the meters instead of the flow entries, one a line in `ovs-ofctl -O
        /// OpenFlow13 dump-meters` syntax (bands on the meter's line).
        #[arg(long, conflicts_with = "groups")]
        meters: bool,
        /// Print the groups instead of the flow entries (the select groups of routes with
        /// several equal-cost next hops), one a line in `ovs-ofctl -O OpenFlow13 dump-groups`
        /// syntax.
        #[arg(long)]
        groups: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Plan the tables after migrating HOST (name, address or MAC) to SWITCH:PORT;
        /// repeatable, applied in order.
        #[arg(long, value_name = "HOST=SWITCH:PORT")]
        migrate: Vec<String>,
        /// Plan VM HOST (moved by --migrate) with these switches in its cover beyond its
        /// default one (their hosts talk to it): deterministic tables for what a running
        /// controller adds when it sees that traffic; repeatable, applied after --migrate.
        #[arg(long, value_name = "HOST=SWITCH[,SWITCH...]")]
        cover: Vec<String>,
        /// Check every state each update (--migrate, --cover) lets the fabric pass through:
        /// no host sees a care-of address, nothing loops, no other host's traffic is
        /// dropped, the moved host is reachable after it. The report goes to stderr; exit 1
        /// with the first violation.
        #[arg(long)]
        check_transitions: bool,
    },
    /// Compare each live flow table with the controller's plan; exit 1 and a diff on drift.
    Verify {
        /// The controller's REST API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The API token (first token of the file); else $SERVSWITCH_TOKEN.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// For an https:// API: the CA that signed its certificate (PEM); else
        /// $SERVSWITCH_API_CA.
        #[arg(long, value_name = "FILE")]
        api_ca: Option<PathBuf>,
        /// Only this switch.
        #[arg(long)]
        switch: Option<String>,
    },
    /// Migrate a host through a running controller's REST API (POST /api/v1/migrations).
    Migrate {
        /// The host: its name, one of its addresses, or its MAC.
        host: String,
        /// Where it now is: SWITCH:PORT.
        #[arg(long, value_name = "SWITCH:PORT")]
        to: String,
        /// The controller's REST API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The API token (first token of the file); else $SERVSWITCH_TOKEN.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// For an https:// API: the CA that signed its certificate (PEM); else
        /// $SERVSWITCH_API_CA.
        #[arg(long, value_name = "FILE")]
        api_ca: Option<PathBuf>,
        /// `now`: migrate at once; `announced`: arm the move, committed by the host's first
        /// announcement at the new port (what an orchestrator that knows the destination uses).
        #[arg(long, default_value = "now", value_parser = ["now", "announced"])]
        when: String,
        /// How long an armed move waits for its announcement (seconds).
        #[arg(long, value_name = "SECS")]
        ttl: Option<f64>,
    },
    /// Validate a topology file; on error print the bad entry's path and why, exit 1.
    CheckConfig {
        /// The topology file (TOML).
        file: PathBuf,
    },
    /// Decode a stream of binary OpenFlow 1.3 messages to text (ovs-ofctl-like) or JSON.
    Decode {
        /// Print JSON (an array of messages, as `encode` reads it) instead of text.
        #[arg(long)]
        json: bool,
        /// The input file, or - for standard input.
        file: PathBuf,
    },
    /// Encode JSON messages (as printed by `decode --json`) back to binary on standard output.
    Encode {
        /// The input file, or - for standard input.
        file: PathBuf,
    },
}

/// The meters on controller-bound traffic (`run`, and `plan` to plan as `run` would).
#[derive(clap::Args, Clone, Copy)]
struct LimitArgs {
    /// Packets a second each host port may send to the controller (ARP, RARP, pings of the
    /// gateway, unknown sources and destinations), through a meter of its own; 0: no port
    /// meters.
    #[arg(long, default_value_t = servswitch::fabric::plan::DEFAULT_PORT_PPS, value_name = "PPS")]
    port_pps: u32,
    /// Packets a second each switch may send to the controller in all (its `controller`
    /// meter); 0: none.
    #[arg(long, default_value_t = servswitch::fabric::plan::DEFAULT_SWITCH_PPS, value_name = "PPS")]
    switch_pps: u32,
}

impl LimitArgs {
    fn limits(self) -> servswitch::fabric::plan::PacketInLimits {
        servswitch::fabric::plan::PacketInLimits {
            port_pps: self.port_pps,
            switch_pps: self.switch_pps,
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// The topology file (TOML).
    #[arg(long)]
    topology: PathBuf,
    /// OpenFlow listen address [default: the file's [controller].listen, else 0.0.0.0:6653].
    #[arg(long)]
    listen: Option<String>,
    /// REST API address [default: the file's [controller].api, else 127.0.0.1:8080].
    #[arg(long)]
    api: Option<String>,
    /// Directory for state that must survive a restart (created if missing).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Compare each switch's table with the plan every this many seconds and repair any
    /// drift (0: only when a switch connects).
    #[arg(long, default_value_t = 5.0)]
    audit_interval: f64,
    /// Accept switches whose datapath id is not in the topology, as unmanaged.
    #[arg(long)]
    accept_unmanaged: bool,
    /// Threads that serve switch connections and the API [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Probe a switch silent for this many seconds with an echo request.
    #[arg(long, default_value_t = 5.0)]
    echo_interval: f64,
    /// Drop a switch after this many unanswered echo probes in a row.
    #[arg(long, default_value_t = 3)]
    echo_misses: u32,
    /// Ask each switch to make us its master (ROLE_REQUEST) with this generation id.
    #[arg(long)]
    master_generation: Option<u64>,
    /// OpenFlow over TLS: our certificate chain (PEM). Needs --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// OpenFlow over TLS: our private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// OpenFlow over TLS: the CA that signs switch certificates (PEM); switches must present one.
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Keep a learned host whose port went down or away for this many seconds (movable by
    /// announcement or API meanwhile), then forget it with its entries.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    detached_grace: f64,
    /// A switch added to a VM's cover (its hosts talked to the VM) stops rewriting for it
    /// after this many seconds without such traffic (0: never).
    #[arg(long, default_value_t = servswitch::fabric::plan::DEFAULT_COVER_IDLE, value_name = "SECS")]
    cover_idle: u16,
    /// What a host's announcement at a new port (RARP, gratuitous ARP, first packet) does:
    /// `trusted` moves it; `verified` moves it and probes the old port, moving it back and
    /// quarantining the claimant if the host answers there; `armed-only` moves nothing
    /// (only the API moves hosts).
    #[arg(long, default_value = "verified", value_name = "POLICY")]
    announcements: servswitch::app::trust::Announcements,
    /// How long a (switch, port, MAC) whose claim was refused is ignored.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    quarantine: f64,
    /// Whether the controller checks the declared links with LLDP (`check`: a link that
    /// LLDP contradicts is taken out of use) or trusts them as declared (`off`: for links
    /// through devices that drop LLDP).
    #[arg(long, default_value = "check", value_parser = ["check", "off"], value_name = "MODE")]
    lldp: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Tokens for the REST API, one a line: `TOKEN [NAME] [read]`. Every request but
    /// `GET /metrics` and `GET /healthz` then needs `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// HTTPS for the REST API: our certificate chain (PEM). Needs --api-tls-key.
    #[arg(long, value_name = "FILE", requires = "api_tls_key")]
    api_tls_cert: Option<PathBuf>,
    /// HTTPS for the REST API: our private key (PEM).
    #[arg(long, value_name = "FILE", requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

fn run(cli: Cli) -> Result<()> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Run(args) => {
            drop(out);
            return servswitch::api::server::run(args.into_options()?);
        }
        Command::Demo { topology } => {
            drop(out);
            if servswitch::cli::demo::run(&topology)? {
                return Ok(());
            }
            anyhow::bail!("some cases failed");
        }
        Command::GenTopology {
            racks,
            hosts_per_rack,
            cores,
            agg_per_block,
            racks_per_block,
            ipv6,
        } => {
            let spec = servswitch::fabric::gen::GenSpec {
                racks,
                hosts_per_rack,
                cores,
                agg_per_block,
                racks_per_block,
                ipv6,
            };
            spec.validate().map_err(|e| anyhow::anyhow!(e))?;
            out.write_all(spec.toml().as_bytes())?;
        }
        Command::Plan {
            topology,
            switch,
            meters,
            groups,
            limits,
            migrate,
            cover,
            check_transitions,
        } => {
            let t = servswitch::fabric::topology::Topology::load(&topology)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut planner = servswitch::app::planner::Planner::new(
                servswitch::fabric::plan::Fabric::new(&t).with_limits(limits.limits()),
            );
            // Each update in turn, checked if asked; the report goes to stderr, so the
            // tables on stdout stay diffable with ovs-ofctl's output.
            let mut step = |what: &str,
                            host: &str,
                            make: &dyn Fn(
                &mut servswitch::app::planner::Planner,
            ) -> Result<
                servswitch::mobility::update::Schedule,
                servswitch::app::migrate::MigrateError,
            >|
             -> Result<()> {
                if !check_transitions {
                    make(&mut planner).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                    return Ok(());
                }
                let rep = planner
                    .checked(host, make)
                    .map_err(|e| anyhow::anyhow!("{what}: {e}"))?
                    .map_err(|f| anyhow::anyhow!("{what}: {f}"))?;
                eprintln!(
                    "{what}: every transient state checked: {} switches changed, {} positions, \
                     {} packets, {} lookups{}, in {:.1} ms; {} of the moved host's packets can \
                     be lost while it runs",
                    rep.switches,
                    rep.positions,
                    rep.packets,
                    rep.lookups,
                    if rep.all_pairs {
                        ", every pair of hosts"
                    } else {
                        ""
                    },
                    rep.elapsed.as_secs_f64() * 1e3,
                    rep.lossy
                );
                Ok(())
            };
            for m in &migrate {
                let what = format!("--migrate {m}");
                let (host, to) = m
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("{what}: use HOST=SWITCH:PORT"))?;
                let to: servswitch::fabric::topology::PortRef =
                    to.parse().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                step(&what, host, &|r| r.plan_move(host, &to))?;
            }
            for c in &cover {
                let what = format!("--cover {c}");
                let (host, list) = c
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("{what}: use HOST=SWITCH[,SWITCH...]"))?;
                let switches: Vec<String> = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = switches
                    .iter()
                    .find(|s| !t.switches.iter().any(|x| x.name == **s))
                {
                    anyhow::bail!("{what}: no switch {bad:?} in {}", topology.display());
                }
                step(&what, host, &|r| r.plan_cover(host, &switches))?;
            }
            match switch {
                Some(name) => {
                    if !t.switches.iter().any(|s| s.name == name) {
                        anyhow::bail!(
                            "--switch {name:?}: no such switch in {}",
                            topology.display()
                        );
                    }
                    for line in plan_lines(&planner, &name, meters, groups) {
                        writeln!(out, " {line}")?;
                    }
                }
                None => {
                    for s in &t.switches {
                        writeln!(out, "# {} (dpid {}, {})", s.name, s.dpid, s.tier)?;
                        for line in plan_lines(&planner, &s.name, meters, groups) {
                            writeln!(out, " {line}")?;
                        }
                    }
                }
            }
        }
        Command::Verify {
            api,
            switch,
            token_file,
            api_ca,
        } => {
            let api = servswitch::cli::client::Api::new(&api, token_file.as_deref())?
                .with_ca(api_ca.as_deref());
            if !servswitch::cli::verify::run(&api, switch.as_deref(), &mut out)? {
                out.flush()?;
                anyhow::bail!("tables differ from the plan");
            }
        }
        Command::Migrate {
            host,
            to,
            api,
            token_file,
            api_ca,
            when,
            ttl,
        } => {
            let api = servswitch::cli::client::Api::new(&api, token_file.as_deref())?
                .with_ca(api_ca.as_deref());
            let mut body = serde_json::json!({ "host": host, "to": to, "when": when });
            if let Some(t) = ttl {
                body["ttl_s"] = serde_json::json!(t);
            }
            let (status, text) =
                api.request("POST", "/api/v1/migrations", Some(&body.to_string()))?;
            if status != 200 && status != 202 {
                let msg = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or(text);
                anyhow::bail!("migration refused ({status}): {msg}");
            }
            writeln!(out, "{}", text.trim_end())?;
        }
        Command::CheckConfig { file } => {
            let t = servswitch::fabric::topology::Topology::load(&file)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let v6_subnets = t.subnets.iter().filter(|s| s.prefix6.is_some()).count();
            let v6_hosts: usize = t.hosts.iter().map(|h| h.addresses6().len()).sum();
            let v6 = if v6_subnets > 0 {
                format!("; IPv6 in {v6_subnets} subnets, {v6_hosts} host addresses")
            } else {
                String::new()
            };
            writeln!(
                out,
                "{}: ok ({} switches, {} links, {} subnets, {} hosts{v6})",
                file.display(),
                t.switches.len(),
                t.links.len(),
                t.subnets.len(),
                t.hosts.len()
            )?;
        }
        Command::Decode { json, file } => {
            let input = read_input(&file)?;
            if json {
                let msgs = codec::decode_all(&input)?;
                serde_json::to_writer_pretty(&mut out, &msgs)?;
                writeln!(out)?;
            } else {
                codec::decode_text(&input, &mut out)?;
            }
        }
        Command::Encode { file } => {
            let input = read_input(&file)?;
            let text = String::from_utf8(input).context("input is not UTF-8 JSON")?;
            let bytes = codec::encode_json(&text)?;
            out.write_all(&bytes)?;
        }
    }
    out.flush()?;
    Ok(())
}

impl RunArgs {
    fn into_options(self) -> Result<servswitch::api::server::Options> {
        if !(self.echo_interval.is_finite() && self.echo_interval > 0.0) {
            anyhow::bail!("--echo-interval must be a positive number of seconds");
        }
        if !(self.audit_interval.is_finite() && self.audit_interval >= 0.0) {
            anyhow::bail!("--audit-interval must be a number of seconds, 0 or more");
        }
        if self.workers == Some(0) {
            anyhow::bail!("--workers must be at least 1");
        }
        if self.echo_misses == 0 {
            anyhow::bail!("--echo-misses must be at least 1");
        }
        if !(self.detached_grace.is_finite() && self.detached_grace >= 0.0) {
            anyhow::bail!("--detached-grace must be a number of seconds, 0 or more");
        }
        if !(self.quarantine.is_finite() && self.quarantine >= 0.0 && self.quarantine < 1e9) {
            anyhow::bail!("--quarantine must be a number of seconds, 0 or more");
        }
        let tls = match (self.tls_cert, self.tls_key, self.tls_ca) {
            (Some(c), Some(k), Some(a)) => Some((c, k, a)),
            _ => None,
        };
        Ok(servswitch::api::server::Options {
            topology: self.topology,
            listen: self.listen,
            api: self.api,
            state: self.state,
            audit: (self.audit_interval > 0.0)
                .then(|| std::time::Duration::from_secs_f64(self.audit_interval)),
            accept_unmanaged: self.accept_unmanaged,
            workers: self.workers,
            echo_interval: std::time::Duration::from_secs_f64(self.echo_interval),
            echo_misses: self.echo_misses,
            master_generation: self.master_generation,
            tls,
            detached_grace: std::time::Duration::from_secs_f64(self.detached_grace),
            cover_idle: self.cover_idle,
            announcements: self.announcements,
            quarantine: std::time::Duration::from_secs_f64(self.quarantine),
            lldp: self.lldp == "check",
            limits: self.limits.limits(),
            api_tokens: self.api_token_file,
            api_tls: self.api_tls_cert.zip(self.api_tls_key),
        })
    }
}

/// One switch's planned flow entries (or meters, or groups), as `plan` prints them.
fn plan_lines(
    planner: &servswitch::app::planner::Planner,
    switch: &str,
    meters: bool,
    groups: bool,
) -> Vec<String> {
    if groups {
        planner
            .switch_groups(switch)
            .iter()
            .map(|g| g.text())
            .collect()
    } else if meters {
        planner
            .switch_meters(switch)
            .iter()
            .map(|m| m.text())
            .collect()
    } else {
        planner
            .switch_plan(switch)
            .iter()
            .map(|f| f.text())
            .collect()
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A reader of our output that went away (`servswitch decode x | head`) is not an
            // error. Only a bare write error is ours: every other I/O (a socket to the API,
            // a file) carries a context, and a peer that closed a socket is a failure.
            if e.chain().count() == 1
                && e.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("servswitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
