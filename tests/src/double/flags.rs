//! Command-line parsing that behaves like Go's `flag` package, because a supervisor
//! written against the double must build exactly the command lines that the real
//! `rqlited` accepts (single-dash long flags, `-flag value` and `-flag=value`, boolean
//! flags that never consume the next argument, exit code 2 on a bad flag).

use std::time::Duration;

/// Every option the double understands, with rqlited's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_id: String,
    pub http_addr: String,
    pub http_adv_addr: String,
    pub raft_addr: String,
    pub raft_adv_addr: String,
    pub join: String,
    pub join_attempts: i64,
    pub join_interval: Duration,
    pub join_as: String,
    pub raft_election_timeout: Duration,
    pub raft_timeout: Duration,
    pub raft_leader_lease_timeout: Duration,
    pub raft_reap_node_timeout: Duration,
    pub raft_cluster_remove_shutdown: bool,
    pub raft_remove_shutdown: bool,
    pub raft_non_voter: bool,
    pub bootstrap_expect: i64,
    pub bootstrap_expect_timeout: Duration,
    pub disco_mode: String,
    pub disco_key: String,
    pub disco_config: String,
    pub auth: String,
    pub http_cert: String,
    pub http_key: String,
    pub http_ca_cert: String,
    pub http_verify_client: bool,
    pub node_cert: String,
    pub node_key: String,
    pub node_ca_cert: String,
    pub node_no_verify: bool,
    pub node_verify_client: bool,
    pub node_verify_server_name: String,
    pub version: bool,
    /// Positional arguments left after the flags (the first is the data directory).
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_id: String::new(),
            http_addr: "localhost:4001".into(),
            http_adv_addr: String::new(),
            raft_addr: "localhost:4002".into(),
            raft_adv_addr: String::new(),
            join: String::new(),
            join_attempts: 5,
            join_interval: Duration::from_secs(3),
            join_as: String::new(),
            raft_election_timeout: Duration::from_secs(1),
            raft_timeout: Duration::from_secs(1),
            raft_leader_lease_timeout: Duration::ZERO,
            raft_reap_node_timeout: Duration::ZERO,
            raft_cluster_remove_shutdown: false,
            raft_remove_shutdown: false,
            raft_non_voter: false,
            bootstrap_expect: 0,
            bootstrap_expect_timeout: Duration::from_secs(120),
            disco_mode: String::new(),
            disco_key: "rqlite".into(),
            disco_config: String::new(),
            auth: String::new(),
            http_cert: String::new(),
            http_key: String::new(),
            http_ca_cert: String::new(),
            http_verify_client: false,
            node_cert: String::new(),
            node_key: String::new(),
            node_ca_cert: String::new(),
            node_no_verify: false,
            node_verify_client: false,
            node_verify_server_name: String::new(),
            version: false,
            args: Vec::new(),
        }
    }
}

/// How parsing ended when it did not produce options.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` / `-help`: Go prints usage and exits 0.
    Help,
    /// Any other problem: Go prints the message and usage, then exits 2.
    Bad(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Dur,
    Bool,
}

/// (name, kind, help). Flags the double accepts but does not model are listed too,
/// so that a command line valid for rqlited is not rejected by the double; their
/// help text says so.
const FLAGS: &[(&str, Kind, &str)] = &[
    (
        "node-id",
        Kind::Str,
        "Unique ID for node. If not set, set to advertised Raft address",
    ),
    ("http-addr", Kind::Str, "HTTP server bind address"),
    (
        "http-adv-addr",
        Kind::Str,
        "Advertised HTTP address. If not set, same as HTTP server bind address",
    ),
    ("raft-addr", Kind::Str, "Raft communication bind address"),
    (
        "raft-adv-addr",
        Kind::Str,
        "Advertised Raft communication address. If not set, same as Raft bind address",
    ),
    (
        "join",
        Kind::Str,
        "Comma-delimited list of Raft addresses of nodes through which a cluster can be joined",
    ),
    (
        "join-attempts",
        Kind::Int,
        "Number of join attempts to make",
    ),
    ("join-interval", Kind::Dur, "Period between join attempts"),
    (
        "join-as",
        Kind::Str,
        "Username in authentication file to join as. If not set, joining anonymously",
    ),
    ("raft-election-timeout", Kind::Dur, "Raft election timeout"),
    ("raft-timeout", Kind::Dur, "Raft heartbeat timeout"),
    (
        "raft-leader-lease-timeout",
        Kind::Dur,
        "Raft leader lease timeout. Use 0s for Raft default",
    ),
    (
        "raft-reap-node-timeout",
        Kind::Dur,
        "Time after which a non-reachable voting node will be reaped (ignored by the double)",
    ),
    (
        "raft-reap-read-only-node-timeout",
        Kind::Dur,
        "Time after which a non-reachable non-voting node will be reaped (ignored by the double)",
    ),
    (
        "raft-cluster-remove-shutdown",
        Kind::Bool,
        "Node removes itself from cluster on graceful shutdown",
    ),
    (
        "raft-remove-shutdown",
        Kind::Bool,
        "Shutdown Raft if node removed from cluster (the real node never exits either)",
    ),
    ("raft-non-voter", Kind::Bool, "Configure as non-voting node"),
    (
        "bootstrap-expect",
        Kind::Int,
        "Minimum number of nodes required for a bootstrap",
    ),
    (
        "bootstrap-expect-timeout",
        Kind::Dur,
        "Maximum time for bootstrap process",
    ),
    (
        "disco-mode",
        Kind::Str,
        "Choose clustering discovery mode (not supported by the double)",
    ),
    (
        "disco-key",
        Kind::Str,
        "Key prefix for cluster discovery service",
    ),
    (
        "disco-config",
        Kind::Str,
        "Set discovery config, or path to cluster discovery config file",
    ),
    (
        "auth",
        Kind::Str,
        "Path to authentication and authorization file. If not set, not enabled",
    ),
    ("http-cert", Kind::Str, "Path to HTTPS X.509 certificate"),
    ("http-key", Kind::Str, "Path to HTTPS X.509 private key"),
    (
        "http-ca-cert",
        Kind::Str,
        "Path to X.509 CA certificate for HTTPS, used to verify client certificates",
    ),
    (
        "http-verify-client",
        Kind::Bool,
        "Enable mutual TLS for HTTPS",
    ),
    (
        "node-cert",
        Kind::Str,
        "Path to X.509 certificate for node-to-node encryption",
    ),
    (
        "node-key",
        Kind::Str,
        "Path to X.509 private key for node-to-node encryption",
    ),
    (
        "node-ca-cert",
        Kind::Str,
        "Path to X.509 CA certificate for node-to-node encryption",
    ),
    (
        "node-no-verify",
        Kind::Bool,
        "Skip verification of any node-node certificate",
    ),
    (
        "node-verify-client",
        Kind::Bool,
        "Enable mutual TLS for node-to-node communication",
    ),
    (
        "node-verify-server-name",
        Kind::Str,
        "Hostname to verify on certificate returned by a node",
    ),
    ("version", Kind::Bool, "Show version information and exit"),
    (
        "raft-log-level",
        Kind::Str,
        "Minimum log level for Raft module (ignored by the double)",
    ),
    (
        "raft-snap",
        Kind::Int,
        "Number of outstanding log entries which triggers snapshot (ignored)",
    ),
    (
        "raft-snap-int",
        Kind::Dur,
        "Snapshot threshold check interval (ignored)",
    ),
    (
        "raft-apply-timeout",
        Kind::Dur,
        "Raft apply timeout (ignored)",
    ),
    (
        "fk",
        Kind::Bool,
        "Enable SQLite foreign key constraints (ignored)",
    ),
    (
        "on-disk-path",
        Kind::Str,
        "Path for SQLite on-disk database file (ignored)",
    ),
    (
        "http-allow-origin",
        Kind::Str,
        "Value to set for Access-Control-Allow-Origin HTTP header (ignored)",
    ),
    (
        "write-queue-capacity",
        Kind::Int,
        "QueuedWrites queue capacity (ignored)",
    ),
    (
        "write-queue-batch-size",
        Kind::Int,
        "QueuedWrites queue batch size (ignored)",
    ),
    (
        "write-queue-timeout",
        Kind::Dur,
        "QueuedWrites queue timeout (ignored)",
    ),
    (
        "cluster-connect-timeout",
        Kind::Dur,
        "Timeout for initial connection to other nodes (ignored)",
    ),
];

/// Usage text in Go's format, printed after a flag error and for `-h`.
pub fn usage() -> String {
    let mut out = String::from(
        "rq4d TEST DOUBLE of rqlited (not rqlite)\n\nUsage: rqlited-double [flags] <data directory>\n",
    );
    for (name, kind, help) in FLAGS {
        let ty = match kind {
            Kind::Str => " string",
            Kind::Int => " int",
            Kind::Dur => " duration",
            Kind::Bool => "",
        };
        out.push_str(&format!("  -{name}{ty}\n    \t{help}\n"));
    }
    out
}

/// Parses `args` (without the program name) the way Go's `flag.Parse` does:
/// flags stop at the first non-flag argument or at `--`.
pub fn parse(args: &[String]) -> Result<Options, FlagError> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        let mut minuses = 1;
        if s.as_bytes()[1] == b'-' {
            minuses = 2;
            if s.len() == 2 {
                i += 1;
                break;
            }
        }
        let body = &s[minuses..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Bad(format!("bad flag syntax: {s}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        i += 1;
        let Some((_, kind, _)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Bad(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match kind {
            Kind::Bool => match inline {
                None => "true".to_string(),
                Some(v) => {
                    if parse_bool(&v).is_none() {
                        return Err(FlagError::Bad(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        )));
                    }
                    v
                }
            },
            _ => match inline {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(i) else {
                        return Err(FlagError::Bad(format!("flag needs an argument: -{name}")));
                    };
                    i += 1;
                    v.clone()
                }
            },
        };
        set(&mut o, name, *kind, &value).map_err(|e| {
            FlagError::Bad(format!("invalid value {value:?} for flag -{name}: {e}"))
        })?;
    }
    o.args = args[i..].to_vec();
    Ok(o)
}

fn set(o: &mut Options, name: &str, kind: Kind, v: &str) -> Result<(), String> {
    let int = || v.parse::<i64>().map_err(|_| "parse error".to_string());
    let dur = || parse_duration(v);
    let boolean = || parse_bool(v).ok_or_else(|| "parse error".to_string());
    match name {
        "node-id" => o.node_id = v.into(),
        "http-addr" => o.http_addr = v.into(),
        "http-adv-addr" => o.http_adv_addr = v.into(),
        "raft-addr" => o.raft_addr = v.into(),
        "raft-adv-addr" => o.raft_adv_addr = v.into(),
        "join" => o.join = v.into(),
        "join-attempts" => o.join_attempts = int()?,
        "join-interval" => o.join_interval = dur()?,
        "join-as" => o.join_as = v.into(),
        "raft-election-timeout" => o.raft_election_timeout = dur()?,
        "raft-timeout" => o.raft_timeout = dur()?,
        "raft-leader-lease-timeout" => o.raft_leader_lease_timeout = dur()?,
        "raft-reap-node-timeout" => o.raft_reap_node_timeout = dur()?,
        "raft-cluster-remove-shutdown" => o.raft_cluster_remove_shutdown = boolean()?,
        "raft-remove-shutdown" => o.raft_remove_shutdown = boolean()?,
        "raft-non-voter" => o.raft_non_voter = boolean()?,
        "bootstrap-expect" => o.bootstrap_expect = int()?,
        "bootstrap-expect-timeout" => o.bootstrap_expect_timeout = dur()?,
        "disco-mode" => o.disco_mode = v.into(),
        "disco-key" => o.disco_key = v.into(),
        "disco-config" => o.disco_config = v.into(),
        "auth" => o.auth = v.into(),
        "http-cert" => o.http_cert = v.into(),
        "http-key" => o.http_key = v.into(),
        "http-ca-cert" => o.http_ca_cert = v.into(),
        "http-verify-client" => o.http_verify_client = boolean()?,
        "node-cert" => o.node_cert = v.into(),
        "node-key" => o.node_key = v.into(),
        "node-ca-cert" => o.node_ca_cert = v.into(),
        "node-no-verify" => o.node_no_verify = boolean()?,
        "node-verify-client" => o.node_verify_client = boolean()?,
        "node-verify-server-name" => o.node_verify_server_name = v.into(),
        "version" => o.version = boolean()?,
        // Accepted for command-line compatibility; they change nothing the double models.
        _ => match kind {
            Kind::Str => {}
            Kind::Int => {
                int()?;
            }
            Kind::Dur => {
                dur()?;
            }
            Kind::Bool => {
                boolean()?;
            }
        },
    }
    Ok(())
}

/// The checks of rqlite's `Config.Validate` that concern the flags the double
/// models, in rqlite's order, with rqlite's messages (printed as `fatal: <msg>`,
/// exit 1): files named by flags must exist, certificate and key come in pairs,
/// and a non-voter cannot take part in `-bootstrap-expect`.
pub fn validate(o: &Options) -> Result<(), String> {
    let files = [
        &o.auth,
        &o.http_cert,
        &o.http_key,
        &o.http_ca_cert,
        &o.node_cert,
        &o.node_key,
        &o.node_ca_cert,
    ];
    for f in files {
        if !f.is_empty() && !std::path::Path::new(f).exists() {
            return Err(format!("{f} does not exist"));
        }
    }
    if o.http_cert.is_empty() != o.http_key.is_empty() {
        return Err("either both -http-cert and -http-key must be set, or neither".into());
    }
    if o.node_cert.is_empty() != o.node_key.is_empty() {
        return Err("either both -node-cert and -node-key must be set, or neither".into());
    }
    if o.bootstrap_expect > 0 && o.raft_non_voter {
        return Err("bootstrapping only applicable to voting nodes".into());
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {orig:?}");
    let mut s = s;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        // Negative durations make no sense for any rqlited flag.
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {orig:?}"))?;
        let (num, rest) = s.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_end);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {orig:?}")),
        };
        total += n * nanos_per;
        s = rest;
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Go's `time.Duration.String()`, so `/status` and `/nodes` print durations the
/// way rqlited does (`1s`, `500ms`, `408ns`, `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let secs_total = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    let sec = trim_fraction(s * 1_000_000_000 + frac, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// `value / unit` printed with the shortest exact decimal fraction.
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_flags() {
        let o = parse(&args(&[
            "-node-id",
            "n1",
            "--http-addr=127.0.0.1:1",
            "-raft-cluster-remove-shutdown",
            "-join-interval",
            "200ms",
            "data",
            "-x",
        ]))
        .expect("parse");
        assert_eq!(o.node_id, "n1");
        assert_eq!(o.http_addr, "127.0.0.1:1");
        assert!(o.raft_cluster_remove_shutdown);
        assert_eq!(o.join_interval, Duration::from_millis(200));
        assert_eq!(o.args, args(&["data", "-x"]));
    }

    #[test]
    fn go_style_errors() {
        assert_eq!(
            parse(&args(&["-x"])).err(),
            Some(FlagError::Bad("flag provided but not defined: -x".into()))
        );
        assert_eq!(
            parse(&args(&["-node-id"])).err(),
            Some(FlagError::Bad("flag needs an argument: -node-id".into()))
        );
        assert_eq!(parse(&args(&["-h"])).err(), Some(FlagError::Help));
        assert!(parse(&args(&["-join-attempts", "x"])).is_err());
    }

    #[test]
    fn validation_messages_are_rqlites() {
        let check = |v: &[&str]| validate(&parse(&args(v)).expect("parse"));
        assert_eq!(
            check(&["-http-cert", "/", "data"]),
            Err("either both -http-cert and -http-key must be set, or neither".into())
        );
        assert_eq!(
            check(&["-node-key", "/", "data"]),
            Err("either both -node-cert and -node-key must be set, or neither".into())
        );
        assert_eq!(
            check(&["-auth", "/no/such/file", "data"]),
            Err("/no/such/file does not exist".into())
        );
        assert_eq!(
            check(&["-raft-non-voter", "-bootstrap-expect", "3", "data"]),
            Err("bootstrapping only applicable to voting nodes".into())
        );
        assert_eq!(check(&["-raft-non-voter", "data"]), Ok(()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("3x").is_err());
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_nanos(408)), "408ns");
        assert_eq!(format_duration(Duration::from_nanos(1_234_000)), "1.234ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
