//! The command line: every flag also an `RQ4D_*` environment variable, checked before anything
//! starts. A bad value exits 2 with a message naming the flag (clap's usage-error convention).

mod origin;
mod validate;
mod values;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rq4d_protocol::{Keyring, NodeId};

use crate::rqlite::Access;

pub use origin::{Origins, parse_cli};
pub use validate::flag_error;
use values::{parse_api, parse_discovery, parse_duration, parse_seed};

/// Forms and keeps an rqlite cluster out of containers that come and go.
///
/// rq4d runs as PID 1 in every rqlite container and starts rqlited as its
/// child. The nodes find each other (DNS name, seed list or UDP broadcast),
/// gossip with SWIM, agree on the members that found the cluster together
/// (rqlited's -bootstrap-expect, with the count and addresses agreed), and
/// then keep Raft's membership true to the gossip: dead voters removed after
/// --reap-after, new nodes joined, moved nodes re-joined.
///
/// Every flag can also be set by an environment variable (RQ4D_<FLAG>, shown
/// with each flag). Arguments after `--` are passed to rqlited unchanged.
///
/// EXAMPLES:
///
///   # one of three replicas of a compose service called "db"
///   rq4d --expect 3 --discover dns:db --data-dir /data
///
///   # three nodes on one machine, one per loopback address
///   rq4d --expect 3 --gossip-bind 127.0.0.2:7946 \
///        --seeds 127.0.0.1:7946,127.0.0.3:7946 --data-dir d2
///
///   # the members table of a running node; its health as an exit code
///   rq4d members --api 127.0.0.1:7947
///   rq4d health --api 127.0.0.1:7947
///
/// EXIT CODES: 0 clean shutdown; 1 runtime failure; 2 bad command line or
/// configuration (a flag, or a setting this host cannot honour: rqlited
/// missing, a port in use, a data directory that cannot be written);
/// 3 node id in use by another live process (only with --exit-on-conflict).
#[derive(Debug, Parser)]
#[command(
    name = "rq4d",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    // The last of a repeated flag wins, as with rqlited's Go flags: an image's CMD and a
    // user's arguments can both set one.
    args_override_self = true,
    max_term_width = 80
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the members table of a running rq4d (like `consul members`).
    Members {
        /// The status API of the rq4d to ask.
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947", value_parser = parse_api)]
        api: SocketAddr,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when a running rq4d is ready (a voter that sees a leader), 1 otherwise; with
    /// --live, when it is live (its process and gossip work, whatever the cluster's state).
    /// For HEALTHCHECKs in an image without a shell or curl: the image's uses --live.
    Health {
        /// The status API of the rq4d to ask.
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947", value_parser = parse_api)]
        api: SocketAddr,
        /// Ask /health/live instead of /health/ready. Swarm keeps a task out of its service's
        /// DNS until its HEALTHCHECK passes, and peers find each other through that DNS: a
        /// readiness check there would keep a cluster from ever forming.
        #[arg(long)]
        live: bool,
    },
    /// Print a new random gossip key (32 bytes, base64), for --gossip-key or a keyring file.
    Keygen,
    /// Show which gossip keys a running rq4d and its members hold and send with (key
    /// rotation: make a new key primary once every member holds it, remove the old one once
    /// no member sends with it).
    Keyring {
        /// The status API of the rq4d to ask.
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947", value_parser = parse_api)]
        api: SocketAddr,
    },
    /// Print a shell completion script: `rq4d completions bash > /etc/bash_completion.d/rq4d`
    /// (zsh: into a directory of $fpath as `_rq4d`; fish: ~/.config/fish/completions/rq4d.fish).
    Completions {
        /// The shell.
        #[arg(value_enum, ignore_case = true)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `rq4d man > /usr/local/share/man/man1/rq4d.1`.
    Man,
}

/// How to find peers; several may be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// A DNS name resolving to every replica (a compose service name), re-resolved every few
    /// seconds; the port defaults to the gossip port.
    Dns { name: String, port: Option<u16> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The filter directive of this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// This node's stable id, passed to rqlited as -node-id. Default: the id persisted in the
    /// data directory, else the hostname — except where Docker made the hostname up (the
    /// container id): there the container's name, from Docker's DNS (rq4d_db_3 in Compose).
    /// Persisted once chosen: a data directory's id never changes, and a different --node-id
    /// on existing data is refused.
    #[arg(long, env = "RQ4D_NODE_ID", help_heading = "Cluster")]
    pub node_id: Option<String>,

    /// Name of the cluster; nodes with another name ignore each other on the same network.
    #[arg(
        long,
        env = "RQ4D_CLUSTER_NAME",
        help_heading = "Cluster",
        default_value = "rq4d"
    )]
    pub cluster_name: String,

    /// How many empty nodes must see each other before a new cluster is bootstrapped. Must be the
    /// same on every node, and more than half of the nodes you start with.
    #[arg(
        long,
        env = "RQ4D_EXPECT",
        help_heading = "Cluster",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub expect: u16,

    /// Find peers through a DNS name that resolves to every replica: dns:NAME[:PORT]
    /// (re-resolved every few seconds; Docker's 600 s TTL is not trusted). Repeatable.
    #[arg(long, env = "RQ4D_DISCOVER", help_heading = "Discovery and gossip", value_delimiter = ',', value_parser = parse_discovery)]
    pub discover: Vec<Discovery>,

    /// Find peers at fixed gossip addresses: host:port,host:port (hosts re-resolved too).
    #[arg(long, env = "RQ4D_SEEDS", help_heading = "Discovery and gossip", value_delimiter = ',', value_parser = parse_seed)]
    pub seeds: Vec<String>,

    /// Find peers by UDP broadcast on the local subnets (same bridge network only).
    #[arg(long, env = "RQ4D_BROADCAST", help_heading = "Discovery and gossip", value_parser = BoolishValueParser::new())]
    pub broadcast: bool,

    /// Where gossip listens (UDP).
    #[arg(
        long,
        env = "RQ4D_GOSSIP_BIND",
        help_heading = "Discovery and gossip",
        default_value = "0.0.0.0:7946"
    )]
    pub gossip_bind: SocketAddr,

    /// The IP others reach this node at, for gossip and rqlited alike. Default: the bind IP if it
    /// is specific, else the local interface address that the discovery answer contains, else the
    /// address the route to a peer leaves from. Never 0.0.0.0.
    #[arg(long, env = "RQ4D_ADVERTISE", help_heading = "Discovery and gossip")]
    pub advertise: Option<IpAddr>,

    /// The rqlited binary to run: a path, or a name looked up on the PATH. Checked at the
    /// start: a missing or non-executable one exits 2.
    #[arg(
        long,
        env = "RQ4D_RQLITED",
        help_heading = "rqlited",
        default_value = "rqlited"
    )]
    pub rqlited: PathBuf,

    /// rqlited's data directory; rq4d keeps its node id and cluster id in it too. Created if
    /// missing; one that cannot be written exits 2.
    #[arg(
        long,
        env = "RQ4D_DATA_DIR",
        help_heading = "rqlited",
        default_value = "/data"
    )]
    pub data_dir: PathBuf,

    /// rqlited's HTTP port.
    #[arg(
        long,
        env = "RQ4D_HTTP_PORT",
        help_heading = "rqlited",
        default_value_t = 4001
    )]
    pub http_port: u16,

    /// rqlited's Raft port.
    #[arg(
        long,
        env = "RQ4D_RAFT_PORT",
        help_heading = "rqlited",
        default_value_t = 4002
    )]
    pub raft_port: u16,

    /// The user rq4d authenticates as when rqlited has -auth FILE (after --). Default: the
    /// first user of that file allowed status, ready, remove and join (join-read-only for
    /// read-only nodes and under --voters). rq4d also passes it to rqlited as -join-as.
    #[arg(long, env = "RQ4D_RQLITE_USER", help_heading = "rqlited")]
    pub rqlite_user: Option<String>,

    /// A file holding the password of --rqlite-user (default: the one in the -auth file).
    #[arg(long, env = "RQ4D_RQLITE_PASSWORD_FILE", help_heading = "rqlited")]
    pub rqlite_password_file: Option<PathBuf>,

    /// The CA certificate (PEM) that signed rqlited's HTTPS certificate; needed when rqlited
    /// has -http-cert (after --). No system roots are trusted.
    #[arg(long, env = "RQ4D_RQLITE_CA_CERT", help_heading = "rqlited")]
    pub rqlite_ca_cert: Option<PathBuf>,

    /// The name rqlited's HTTPS certificate is checked against, when it names the service
    /// rather than each container's address (e.g. db).
    #[arg(long, env = "RQ4D_RQLITE_SERVER_NAME", help_heading = "rqlited")]
    pub rqlite_server_name: Option<String>,

    /// Remove a Raft voter once gossip has seen it dead this long (only the leader's rq4d removes,
    /// one at a time, never below quorum). At least 1s. Durations here and below are written
    /// as Go writes them (500ms, 90s, 1m30s, 2h) or as a number of seconds.
    #[arg(long, env = "RQ4D_REAP_AFTER", help_heading = "Cluster", default_value = "60s", value_parser = parse_duration)]
    pub reap_after: Duration,

    /// How long the membership must stay unchanged before empty nodes agree on a seed. Safety
    /// does not rest on it (every member must acknowledge the same proposal of the same view),
    /// and a proposal overturned by a node still arriving is withdrawn and redone; a debounce
    /// only spares that churn when nodes trickle in.
    #[arg(long, env = "RQ4D_SETTLE", help_heading = "Cluster", default_value = "0s", value_parser = parse_duration)]
    pub settle: Duration,

    /// A read-only replica: rqlited runs as a non-voter (-raft-non-voter), which serves reads
    /// without slowing the Raft quorum. It never counts towards --expect and never founds a
    /// cluster: it waits, saying so, until a cluster exists and then joins it. Reaped like a
    /// voter when dead.
    #[arg(long, env = "RQ4D_READ_ONLY", help_heading = "Cluster", value_parser = BoolishValueParser::new())]
    pub read_only: bool,

    /// At most this many voters (odd). Live nodes beyond it join as non-voters; when a voter is
    /// reaped, a caught-up non-voter is promoted in its place, and extra voters are demoted, so
    /// the voter set heals itself without ever dropping below a majority. The same on every
    /// node. Default: every node votes.
    #[arg(long, env = "RQ4D_VOTERS", help_heading = "Cluster")]
    pub voters: Option<u16>,

    /// Data is disposable: the losing side of a split may delete its data and rejoin. Off by
    /// default: without it rq4d never deletes anything. Needs a gossip key, so that only
    /// members of the cluster can ever bring a node to that decision.
    #[arg(long, env = "RQ4D_VOLATILE", help_heading = "Cluster", value_parser = BoolishValueParser::new())]
    pub volatile: bool,

    /// The cluster's gossip key (base64, from `rq4d keygen`), the same on every node: every
    /// datagram is sealed with it and only sealed ones are accepted, so nobody without the key
    /// can join, forge or read the gossip. Without a key or keyring, gossip is open to anyone
    /// who can reach the port: fine on loopback, not on a network anybody else can reach.
    #[arg(
        long,
        env = "RQ4D_GOSSIP_KEY",
        help_heading = "Discovery and gossip",
        hide_env_values = true,
        conflicts_with = "gossip_keyring"
    )]
    pub gossip_key: Option<String>,

    /// A keyring file instead of --gossip-key (a Docker or Kubernetes secret can be one): one
    /// base64 key a line, the first used to send, all accepted; '#' starts a comment. Re-read
    /// on SIGHUP, which is how keys are rotated without downtime.
    #[arg(
        long,
        env = "RQ4D_GOSSIP_KEYRING",
        help_heading = "Discovery and gossip"
    )]
    pub gossip_keyring: Option<PathBuf>,

    /// Exit with code 3 once this node's id has been in use by another live process for this
    /// long, instead of staying up unhealthy until it goes away (the default). Under a restart
    /// policy the container then restarts, with a growing delay, and checks again; in Swarm
    /// or Kubernetes the task or pod shows as failing.
    #[arg(long, env = "RQ4D_EXIT_ON_CONFLICT", help_heading = "Cluster", value_parser = parse_duration)]
    pub exit_on_conflict: Option<Duration>,

    /// Log format.
    #[arg(long, env = "RQ4D_LOG_FORMAT", help_heading = "Logging and status", value_enum, ignore_case = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The least severe log lines shown, rq4d's and rqlited's alike (rqlited's own levels are
    /// kept: its [WARN] lines are warnings).
    #[arg(long, env = "RQ4D_LOG_LEVEL", help_heading = "Logging and status", value_enum, ignore_case = true, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// A finer log filter instead of --log-level, in tracing's directive syntax: e.g.
    /// `info,rq4d::supervisor=debug` or `warn,rqlited=error`.
    #[arg(
        long = "log",
        env = "RQ4D_LOG",
        help_heading = "Logging and status",
        value_name = "DIRECTIVES"
    )]
    pub log_filter: Option<String>,

    /// Where the status API listens (/health/live, /health/ready, /members, /metrics); not
    /// on rqlited's ports.
    #[arg(
        long,
        env = "RQ4D_API_ADDR",
        help_heading = "Logging and status",
        default_value = "0.0.0.0:7947"
    )]
    pub api_addr: SocketAddr,

    /// Extra arguments for rqlited, after `--`.
    #[arg(last = true, value_name = "RQLITED_ARGS")]
    pub rqlited_args: Vec<String>,

    /// Which flags came from their environment variable (filled by [`parse_cli`]).
    #[arg(skip)]
    pub origins: Origins,
}

/// rqlited flags rq4d sets itself; passing them after `--` would fight the supervisor.
const MANAGED_FLAGS: &[&str] = &[
    "-node-id",
    "-join",
    "-http-addr",
    "-http-adv-addr",
    "-raft-addr",
    "-raft-adv-addr",
    "-bootstrap-expect",
    "-disco-mode",
    "-raft-cluster-remove-shutdown",
    "-raft-non-voter",
    "-join-as",
];

/// The validated configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: Option<NodeId>,
    pub cluster_name: String,
    pub expect: u16,
    pub discover: Vec<Discovery>,
    pub seeds: Vec<String>,
    pub broadcast: bool,
    pub gossip_bind: SocketAddr,
    pub advertise: Option<IpAddr>,
    pub rqlited: PathBuf,
    pub data_dir: PathBuf,
    pub http_port: u16,
    pub raft_port: u16,
    pub reap_after: Duration,
    pub settle: Duration,
    pub volatile: bool,
    pub read_only: bool,
    pub voters: Option<u16>,
    /// How rq4d reaches rqlited's HTTP API (credentials, HTTPS).
    pub access: Access,
    /// The `-join-as` user rq4d adds when rqlited has `-auth`.
    pub join_as: Option<String>,
    pub keyring: Option<Keyring>,
    pub keyring_file: Option<PathBuf>,
    pub exit_on_conflict: Option<Duration>,
    pub log_format: LogFormat,
    /// The log filter, already checked to parse (from --log, else --log-level).
    pub log_filter: String,
    pub api_addr: SocketAddr,
    pub rqlited_args: Vec<String>,
    /// Which flags came from their environment variable, for errors found later (preflight).
    pub origins: Origins,
}

/// Reads and parses a keyring file; the error names the file and, for a bad key, the line.
pub fn read_keyring(file: &std::path::Path) -> Result<Keyring, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Keyring::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}
