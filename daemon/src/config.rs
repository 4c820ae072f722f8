//! The command line: every flag also an `RQ4D_*` environment variable, checked before anything
//! starts. A bad value exits 2 with a message naming the flag (clap's usage-error convention).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use rq4d_protocol::{Key, Keyring, NodeId};

/// rq4d — forms and keeps an rqlite cluster out of containers that come and go.
///
/// rq4d runs as PID 1 in every rqlite container and starts rqlited as its child. The nodes find
/// each other (DNS name, seed list or UDP broadcast), gossip with SWIM, agree on the members that
/// found the cluster together (rqlited's -bootstrap-expect, with the count and addresses agreed),
/// and afterwards keep Raft's membership true to the gossip: dead voters removed after
/// --reap-after, new nodes joined, moved nodes re-joined.
///
/// Every flag can also be set by an environment variable (RQ4D_<FLAG>, shown with each flag).
/// Arguments after `--` are passed to rqlited unchanged.
///
/// EXAMPLES:
///
///   # one of three replicas of a compose service called "db"
///   rq4d --expect 3 --discover dns:db --data-dir /data
///
///   # a fixed seed list, three nodes on one machine (one per loopback address)
///   rq4d --expect 3 --gossip-bind 127.0.0.2:7946 --seeds 127.0.0.1:7946,127.0.0.3:7946 --data-dir d2
///
///   # the members table of a running node; its health as an exit code
///   rq4d members --api 127.0.0.1:7947
///   rq4d health --api 127.0.0.1:7947
///
/// EXIT CODES: 0 clean shutdown; 1 runtime failure; 2 bad command line or configuration;
/// 3 node id in use by another live process (only with --exit-on-conflict).
#[derive(Debug, Parser)]
#[command(
    name = "rq4d",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
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
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947")]
        api: String,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when a running rq4d is ready (a voter that sees a leader), 1 otherwise; with
    /// --live, when it is live (its process and gossip work, whatever the cluster's state).
    /// For HEALTHCHECKs in an image without a shell or curl: the image's uses --live.
    Health {
        /// The status API of the rq4d to ask.
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947")]
        api: String,
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
        #[arg(long, env = "RQ4D_API", default_value = "127.0.0.1:7947")]
        api: String,
    },
}

/// How to find peers; several may be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// A DNS name resolving to every replica (a compose service name), re-resolved every few
    /// seconds; the port defaults to the gossip port.
    Dns { name: String, port: Option<u16> },
}

fn parse_discovery(text: &str) -> Result<Discovery, String> {
    let Some(rest) = text.strip_prefix("dns:") else {
        return Err(format!("{text:?}: expected dns:NAME[:PORT]"));
    };
    let (name, port) = match rest.rsplit_once(':') {
        Some((name, port)) => (
            name,
            Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{text:?}: {port:?} is not a port"))?,
            ),
        ),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("{text:?}: the DNS name is empty"));
    }
    Ok(Discovery::Dns {
        name: name.to_string(),
        port,
    })
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 30s, 5m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// This node's stable id, passed to rqlited as -node-id. Default: the id persisted in the
    /// data directory, else the hostname. Once a data directory has state its id never changes;
    /// a different --node-id on existing data is refused.
    #[arg(long, env = "RQ4D_NODE_ID")]
    pub node_id: Option<String>,

    /// Name of the cluster; nodes with another name ignore each other on the same network.
    #[arg(long, env = "RQ4D_CLUSTER_NAME", default_value = "rq4d")]
    pub cluster_name: String,

    /// How many empty nodes must see each other before a new cluster is bootstrapped. Must be the
    /// same on every node, and more than half of the nodes you start with.
    #[arg(long, env = "RQ4D_EXPECT", default_value_t = 3)]
    pub expect: u16,

    /// Find peers through a DNS name that resolves to every replica: dns:NAME[:PORT]
    /// (re-resolved every few seconds; Docker's 600 s TTL is not trusted). Repeatable.
    #[arg(long, env = "RQ4D_DISCOVER", value_delimiter = ',', value_parser = parse_discovery)]
    pub discover: Vec<Discovery>,

    /// Find peers at fixed gossip addresses: host:port,host:port (hosts re-resolved too).
    #[arg(long, env = "RQ4D_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,

    /// Find peers by UDP broadcast on the local subnets (same bridge network only).
    #[arg(long, env = "RQ4D_BROADCAST")]
    pub broadcast: bool,

    /// Where gossip listens (UDP).
    #[arg(long, env = "RQ4D_GOSSIP_BIND", default_value = "0.0.0.0:7946")]
    pub gossip_bind: SocketAddr,

    /// The IP others reach this node at, for gossip and rqlited alike. Default: the bind IP if it
    /// is specific, else the local interface address that the discovery answer contains, else the
    /// address the route to a peer leaves from. Never 0.0.0.0.
    #[arg(long, env = "RQ4D_ADVERTISE")]
    pub advertise: Option<IpAddr>,

    /// The rqlited binary to run.
    #[arg(long, env = "RQ4D_RQLITED", default_value = "rqlited")]
    pub rqlited: PathBuf,

    /// rqlited's data directory; rq4d keeps its node id and cluster id in it too.
    #[arg(long, env = "RQ4D_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,

    /// rqlited's HTTP port.
    #[arg(long, env = "RQ4D_HTTP_PORT", default_value_t = 4001)]
    pub http_port: u16,

    /// rqlited's Raft port.
    #[arg(long, env = "RQ4D_RAFT_PORT", default_value_t = 4002)]
    pub raft_port: u16,

    /// Remove a Raft voter once gossip has seen it dead this long (only the leader's rq4d removes,
    /// one at a time, never below quorum).
    #[arg(long, env = "RQ4D_REAP_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub reap_after: Duration,

    /// How long the membership must stay unchanged before empty nodes agree on a seed. Safety
    /// does not rest on it (every member must acknowledge the same proposal of the same view),
    /// and a proposal overturned by a node still arriving is withdrawn and redone; a debounce
    /// only spares that churn when nodes trickle in.
    #[arg(long, env = "RQ4D_SETTLE", default_value = "0s", value_parser = parse_duration)]
    pub settle: Duration,

    /// Data is disposable: the losing side of a split may delete its data and rejoin. Off by
    /// default: without it rq4d never deletes anything. Needs a gossip key, so that only
    /// members of the cluster can ever bring a node to that decision.
    #[arg(long, env = "RQ4D_VOLATILE")]
    pub volatile: bool,

    /// The cluster's gossip key (base64, from `rq4d keygen`), the same on every node: every
    /// datagram is sealed with it and only sealed ones are accepted, so nobody without the key
    /// can join, forge or read the gossip. Without a key or keyring, gossip is open to anyone
    /// who can reach the port: fine on loopback, not on a network anybody else can reach.
    #[arg(
        long,
        env = "RQ4D_GOSSIP_KEY",
        hide_env_values = true,
        conflicts_with = "gossip_keyring"
    )]
    pub gossip_key: Option<String>,

    /// A keyring file instead of --gossip-key (a Docker or Kubernetes secret can be one): one
    /// base64 key a line, the first used to send, all accepted; '#' starts a comment. Re-read
    /// on SIGHUP, which is how keys are rotated without downtime.
    #[arg(long, env = "RQ4D_GOSSIP_KEYRING")]
    pub gossip_keyring: Option<PathBuf>,

    /// Exit with code 3 once this node's id has been in use by another live process for this
    /// long, instead of staying up unhealthy until it goes away (the default). Under a restart
    /// policy the container then restarts, with a growing delay, and checks again; in Swarm
    /// or Kubernetes the task or pod shows as failing.
    #[arg(long, env = "RQ4D_EXIT_ON_CONFLICT", value_parser = parse_duration)]
    pub exit_on_conflict: Option<Duration>,

    /// Log format.
    #[arg(long, env = "RQ4D_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where the status API listens (/health, /members, /metrics).
    #[arg(long, env = "RQ4D_API_ADDR", default_value = "0.0.0.0:7947")]
    pub api_addr: SocketAddr,

    /// Extra arguments for rqlited, after `--`.
    #[arg(last = true, value_name = "RQLITED_ARGS")]
    pub rqlited_args: Vec<String>,
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
    pub keyring: Option<Keyring>,
    pub keyring_file: Option<PathBuf>,
    pub exit_on_conflict: Option<Duration>,
    pub log_format: LogFormat,
    pub api_addr: SocketAddr,
    pub rqlited_args: Vec<String>,
}

/// Reads and parses a keyring file; the error names the file and, for a bad key, the line.
pub fn read_keyring(file: &std::path::Path) -> Result<Keyring, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Keyring::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// A configuration error naming the flag; exits 2 like clap's own.
pub fn flag_error(flag: &str, message: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(ErrorKind::ValueValidation, format!("{flag}: {message}"))
}

impl RunArgs {
    /// Checks combinations clap cannot express.
    pub fn validate(self) -> Result<Config, clap::Error> {
        let node_id = self
            .node_id
            .map(|id| NodeId::new(id).map_err(|e| flag_error("--node-id", e)))
            .transpose()?;
        if self.expect == 0 {
            return Err(flag_error("--expect", "must be at least 1"));
        }
        if self.cluster_name.is_empty() {
            return Err(flag_error("--cluster-name", "must not be empty"));
        }
        if self.discover.is_empty() && self.seeds.is_empty() && !self.broadcast && self.expect > 1 {
            return Err(flag_error(
                "--discover",
                format!(
                    "--expect {} needs a way to find peers: give --discover dns:NAME, --seeds or --broadcast",
                    self.expect
                ),
            ));
        }
        for seed in &self.seeds {
            let ok = seed
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(flag_error("--seeds", format!("{seed:?} is not host:port")));
            }
        }
        if let Some(ip) = self.advertise
            && ip.is_unspecified()
        {
            return Err(flag_error(
                "--advertise",
                format!("{ip} cannot be reached by peers; give this node's own address"),
            ));
        }
        if self.http_port == self.raft_port {
            return Err(flag_error(
                "--raft-port",
                "rqlited's HTTP and Raft ports must differ",
            ));
        }
        if self.http_port == 0 || self.raft_port == 0 {
            return Err(flag_error("--http-port", "ports must not be 0"));
        }
        if self.settle > Duration::from_secs(600) {
            return Err(flag_error("--settle", "at most 10m"));
        }
        for arg in &self.rqlited_args {
            let name = arg.split('=').next().unwrap_or(arg).replacen("--", "-", 1);
            if MANAGED_FLAGS.contains(&name.as_str()) {
                return Err(flag_error(
                    "-- (rqlited arguments)",
                    format!("{arg} is set by rq4d itself and cannot be passed through"),
                ));
            }
        }
        let keyring = match (&self.gossip_key, &self.gossip_keyring) {
            (Some(key), _) if key.trim().is_empty() => {
                return Err(flag_error(
                    "--gossip-key",
                    "is empty: give a key from `rq4d keygen`, or leave RQ4D_GOSSIP_KEY unset for open gossip",
                ));
            }
            (Some(key), _) => Some(Keyring::single(
                Key::parse(key).map_err(|e| flag_error("--gossip-key", e))?,
            )),
            (None, Some(file)) => {
                Some(read_keyring(file).map_err(|e| flag_error("--gossip-keyring", e))?)
            }
            (None, None) => None,
        };
        if self.volatile && keyring.is_none() {
            return Err(flag_error(
                "--volatile",
                "needs --gossip-key or --gossip-keyring: volatile mode lets the losing side of a split delete its data, and without a key anyone who can reach the gossip port could claim to be the winning side",
            ));
        }
        Ok(Config {
            node_id,
            cluster_name: self.cluster_name,
            expect: self.expect,
            discover: self.discover,
            seeds: self.seeds,
            broadcast: self.broadcast,
            gossip_bind: self.gossip_bind,
            advertise: self.advertise,
            rqlited: self.rqlited,
            data_dir: self.data_dir,
            http_port: self.http_port,
            raft_port: self.raft_port,
            reap_after: self.reap_after,
            settle: self.settle,
            volatile: self.volatile,
            keyring,
            keyring_file: self.gossip_keyring,
            exit_on_conflict: self.exit_on_conflict,
            log_format: self.log_format,
            api_addr: self.api_addr,
            rqlited_args: self.rqlited_args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("rq4d").chain(args.iter().copied()))?;
        cli.run.validate()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn discovery_specs_parse() {
        assert_eq!(
            parse_discovery("dns:db:7000"),
            Ok(Discovery::Dns {
                name: "db".into(),
                port: Some(7000)
            })
        );
        assert_eq!(
            parse_discovery("dns:db"),
            Ok(Discovery::Dns {
                name: "db".into(),
                port: None
            })
        );
        assert!(parse_discovery("db").is_err());
        assert!(parse_discovery("dns:db:x").is_err());
    }

    #[test]
    fn bad_combinations_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--expect", "3"], "--discover"),
            (&["--expect", "0", "--broadcast"], "--expect"),
            (&["--broadcast", "--node-id", "a b"], "--node-id"),
            (&["--broadcast", "--advertise", "0.0.0.0"], "--advertise"),
            (
                &["--broadcast", "--http-port", "5", "--raft-port", "5"],
                "--raft-port",
            ),
            (&["--broadcast", "--seeds", "nohost"], "--seeds"),
            (&["--broadcast", "--", "-join", "x:1"], "-join"),
            (&["--broadcast", "--reap-after", "soon"], "--reap-after"),
            (&["--broadcast", "--gossip-key", "secret"], "--gossip-key"),
            (&["--broadcast", "--volatile"], "--volatile"),
            (&["--broadcast", "--gossip-key", "AAAA"], "--gossip-key"),
            (&["--broadcast", "--gossip-key", ""], "--gossip-key"),
            (
                &["--broadcast", "--gossip-keyring", "/nonexistent/ring"],
                "--gossip-keyring",
            ),
            (
                &["--broadcast", "--gossip-key", KEY, "--gossip-keyring", "/k"],
                "--gossip-keyring",
            ),
        ];
        for (args, flag) in cases {
            let err = parse(args).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }

    /// A valid key (32 zero bytes).
    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn a_gossip_key_or_a_keyring_file_gives_the_keyring() {
        let config = parse(&["--broadcast", "--gossip-key", KEY]).expect("valid");
        assert_eq!(config.keyring.map(|r| r.ids().len()), Some(1));
        let file = std::env::temp_dir().join(format!("rq4d-ring-{}", std::process::id()));
        let other = rq4d_protocol::Key::from_bytes([7; 32]).to_base64();
        std::fs::write(
            &file,
            format!("# rotation: new key first\n{other}\n{KEY}\n"),
        )
        .expect("write");
        let config = parse(&[
            "--broadcast",
            "--gossip-keyring",
            &file.display().to_string(),
        ])
        .expect("valid");
        let ring = config.keyring.expect("a keyring");
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.primary().to_base64(), other);
        std::fs::write(&file, format!("{KEY}\nnot a key\n")).expect("write");
        let err = parse(&[
            "--broadcast",
            "--gossip-keyring",
            &file.display().to_string(),
        ])
        .expect_err("refused");
        assert!(err.to_string().contains("line 2"), "{err}");
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn a_single_node_needs_no_discovery() {
        let config = parse(&["--expect", "1"]).expect("valid");
        assert_eq!(config.expect, 1);
    }

    #[test]
    fn rqlited_arguments_pass_through() {
        let config = parse(&["--broadcast", "--", "-raft-election-timeout", "2s"]).expect("valid");
        assert_eq!(config.rqlited_args, vec!["-raft-election-timeout", "2s"]);
    }
}
