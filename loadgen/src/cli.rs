//! The command line: workloads, modes and their options.

use crate::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// ARP request for the gateway -> PACKET_OUT with the ARP reply (gateway MAC) to the port.
    Arp,
    /// IPv4 to an unknown address of the subnet -> PACKET_OUT with the gateway's ARP request
    /// out of every host port.
    Unresolved,
    /// First packet of a new host to a host of another rack -> its 3 host FLOW_MODs.
    Newflow,
    /// RARP of a known VM at a new port (foreign rack, then home again) -> on the switch that
    /// sent the RARP, a flow entry that delivers the VM out of that port (installed after the
    /// RARP: the switch's table had none at some point since), then a BARRIER_REQUEST.
    Migration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// `--window` requests in flight per switch.
    Throughput,
    /// One request in flight per switch.
    Latency,
}

/// A cbench-like OpenFlow 1.3 load generator that checks every response.
#[derive(Parser, Debug)]
#[command(name = "ofload", version)]
pub(crate) struct Args {
    /// The controller's OpenFlow address.
    #[arg(long, default_value = "127.0.0.1:6653")]
    pub(crate) controller: String,
    /// The topology file (the controller's TOML): datapath ids, subnets, gateways, hosts.
    #[arg(long)]
    pub(crate) topology: PathBuf,
    /// How many switches send load: the first N switches (by dpid) owning a subnet and hosts.
    #[arg(long, default_value_t = 16)]
    pub(crate) switches: usize,
    #[arg(long, value_enum, default_value_t = Workload::Arp)]
    pub(crate) workload: Workload,
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    pub(crate) mode: Mode,
    /// Requests in flight per switch in throughput mode; 0: unbounded (as many as the
    /// socket takes, cbench's throughput mode).
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) seconds: f64,
    /// Seconds of load before measuring starts (after every switch is up).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Worker threads of the generator (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// A request unanswered this long is counted as timed out and its slot freed.
    #[arg(long, default_value_t = 1000)]
    pub(crate) timeout_ms: u64,
    /// Also connect every other switch of the topology (idle: they only answer). Always on
    /// for `migration`, whose flow mods go to other switches too.
    #[arg(long)]
    pub(crate) all_switches: bool,
    /// Free host ports added to each switch after its highest configured port (for new
    /// hosts and migrated VMs); 0: as many as the largest rack has hosts (at least 4).
    #[arg(long, default_value_t = 0)]
    pub(crate) spare_ports: u32,
}
