//! Checks of the whole command line that clap cannot express: combinations of flags, and
//! values that parse but cannot work. Every error names the flag — and the environment
//! variable, when the value came from one — and exits 2.

use std::time::Duration;

use clap::CommandFactory;
use clap::error::ErrorKind;
use rq4d_protocol::{Key, Keyring, NodeId};
use tracing_subscriber::EnvFilter;

use super::{Cli, Config, MANAGED_FLAGS, RunArgs, read_keyring};
use crate::rqlite::{Access, access};

/// A configuration error naming the flag; exits 2 like clap's own.
pub fn flag_error(flag: &str, message: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(ErrorKind::ValueValidation, format!("{flag}: {message}"))
}

/// The shortest --reap-after: removing a voter is for the dead, and gossip needs a moment to
/// tell a dead node from a slow one.
const SHORTEST_REAP: Duration = Duration::from_secs(1);

impl RunArgs {
    /// A configuration error about `flag`, naming its environment variable if it came from one.
    fn error(&self, flag: &str, message: impl std::fmt::Display) -> clap::Error {
        flag_error(&self.origins.name(flag), message)
    }

    /// Checks combinations clap cannot express.
    pub fn validate(self) -> Result<Config, clap::Error> {
        let node_id = match &self.node_id {
            Some(id) => Some(NodeId::new(id.clone()).map_err(|e| self.error("--node-id", e))?),
            None => None,
        };
        if self.expect == 0 {
            return Err(self.error("--expect", "must be at least 1"));
        }
        if self.cluster_name.is_empty() {
            return Err(self.error("--cluster-name", "must not be empty"));
        }
        if self.discover.is_empty() && self.seeds.is_empty() && !self.broadcast && self.expect > 1 {
            return Err(self.error(
                "--discover",
                format!(
                    "--expect {} needs a way to find peers: give --discover dns:NAME, --seeds or --broadcast",
                    self.expect
                ),
            ));
        }
        if let Some(ip) = self.advertise
            && ip.is_unspecified()
        {
            return Err(self.error(
                "--advertise",
                format!("{ip} cannot be reached by peers; give this node's own address"),
            ));
        }
        self.check_ports()?;
        if self.reap_after < SHORTEST_REAP {
            return Err(self.error(
                "--reap-after",
                "must be at least 1s: a voter is removed this long after gossip saw it dead, and \
                 gossip needs a moment to tell a dead node from a slow one",
            ));
        }
        if self.settle > Duration::from_secs(600) {
            return Err(self.error("--settle", "at most 10m"));
        }
        for arg in &self.rqlited_args {
            let name = arg.split('=').next().unwrap_or(arg).replacen("--", "-", 1);
            if MANAGED_FLAGS.contains(&name.as_str()) {
                return Err(self.error(
                    "-- (rqlited arguments)",
                    format!("{arg} is set by rq4d itself and cannot be passed through"),
                ));
            }
        }
        let log_filter = self.log_filter()?;
        let keyring = self.keyring()?;
        if self.volatile && keyring.is_none() {
            return Err(self.error(
                "--volatile",
                "needs --gossip-key or --gossip-keyring: volatile mode lets the losing side of a split delete its data, and without a key anyone who can reach the gossip port could claim to be the winning side",
            ));
        }
        if let Some(voters) = self.voters {
            if voters == 0 || voters % 2 == 0 {
                return Err(self.error(
                    "--voters",
                    format!(
                        "{voters} is not an odd number of at least 1: an even voter set \
                         tolerates no more failures than the odd one below it"
                    ),
                ));
            }
            if self.expect > voters && !self.read_only {
                return Err(self.error(
                    "--expect",
                    format!(
                        "{} is more than --voters {voters}: every founder of a new cluster is \
                         a voter",
                        self.expect
                    ),
                ));
            }
        }
        let (access, join_as) = self.access()?;
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
            read_only: self.read_only,
            voters: self.voters,
            access,
            join_as,
            keyring,
            keyring_file: self.gossip_keyring,
            exit_on_conflict: self.exit_on_conflict,
            log_format: self.log_format,
            log_filter,
            api_addr: self.api_addr,
            rqlited_args: self.rqlited_args,
            origins: self.origins,
        })
    }

    /// rqlited's two TCP ports and the status API's must differ (the gossip port is UDP and
    /// may equal any of them).
    fn check_ports(&self) -> Result<(), clap::Error> {
        for (flag, port) in [
            ("--http-port", self.http_port),
            ("--raft-port", self.raft_port),
        ] {
            if port == 0 {
                return Err(self.error(
                    flag,
                    "must not be 0: rqlited needs a fixed port that peers can be told",
                ));
            }
        }
        if self.http_port == self.raft_port {
            return Err(self.error(
                "--raft-port",
                format!(
                    "{} is also --http-port: rqlited's HTTP and Raft ports must differ",
                    self.raft_port
                ),
            ));
        }
        let api = self.api_addr.port();
        for (flag, port) in [
            ("--http-port", self.http_port),
            ("--raft-port", self.raft_port),
        ] {
            if api == port {
                return Err(self.error(
                    "--api-addr",
                    format!("{} uses port {port}, which is rqlited's {flag}; give the status API another port", self.api_addr),
                ));
            }
        }
        Ok(())
    }

    /// How rq4d reaches rqlited (credentials from -auth, HTTPS from -http-cert, after --), and
    /// the -join-as user to add.
    fn access(&self) -> Result<(Access, Option<String>), clap::Error> {
        // A read-only node joins as a non-voter; under --voters any node may.
        let join_perms: &[&'static str] = match (self.read_only, self.voters) {
            (true, _) => &[access::JOIN_READ_ONLY],
            (false, Some(_)) => &[access::JOIN, access::JOIN_READ_ONLY],
            (false, None) => &[access::JOIN],
        };
        let wanted = access::Wanted {
            user: self.rqlite_user.as_deref(),
            password_file: self.rqlite_password_file.as_deref(),
            ca_cert: self.rqlite_ca_cert.as_deref(),
            server_name: self.rqlite_server_name.as_deref(),
            join_perms,
        };
        access::settle(&self.rqlited_args, &wanted).map_err(|refusal| {
            let flag = if refusal.flag.starts_with("--") {
                self.origins.name(&refusal.flag)
            } else {
                format!("{} (rqlited argument after --)", refusal.flag)
            };
            flag_error(&flag, refusal.message)
        })
    }

    /// The log filter: --log's directives when given, else --log-level.
    fn log_filter(&self) -> Result<String, clap::Error> {
        match &self.log_filter {
            Some(directives) => match EnvFilter::builder().parse(directives) {
                Ok(_) => Ok(directives.clone()),
                Err(e) => Err(self.error(
                    "--log",
                    format!(
                        "{directives:?} is not a log filter: {e} (e.g. info, or warn,rq4d=debug)"
                    ),
                )),
            },
            None => Ok(self.log_level.directive().to_string()),
        }
    }

    /// The gossip keyring, from --gossip-key or the --gossip-keyring file.
    fn keyring(&self) -> Result<Option<Keyring>, clap::Error> {
        match (&self.gossip_key, &self.gossip_keyring) {
            (Some(key), _) if key.trim().is_empty() => Err(self.error(
                "--gossip-key",
                "is empty: give a key from `rq4d keygen`, or leave RQ4D_GOSSIP_KEY unset for open gossip",
            )),
            (Some(key), _) => Ok(Some(Keyring::single(
                Key::parse(key).map_err(|e| self.error("--gossip-key", e))?,
            ))),
            (None, Some(file)) => Ok(Some(
                read_keyring(file).map_err(|e| self.error("--gossip-keyring", e))?,
            )),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let cli = super::super::parse_cli(std::iter::once("rq4d").chain(args.iter().copied()))?;
        cli.run.validate()
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
            (&["--broadcast", "--seeds", "::1:7946"], "--seeds"),
            (&["--broadcast", "--raft-port", "0"], "--raft-port"),
            (&["--broadcast", "--http-port", "0"], "--http-port"),
            (&["--broadcast", "--api-addr", "0.0.0.0:4001"], "--api-addr"),
            (&["--broadcast", "--reap-after", "0"], "--reap-after"),
            (
                &["--broadcast", "--reap-after", "100000000000000000000000"],
                "--reap-after",
            ),
            (&["--broadcast", "--expect", "-1"], "--expect"),
            (&["--broadcast", "--log", "garbage[[["], "--log"),
            (&["--broadcast", "--log-level", "loud"], "--log-level"),
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
    fn spellings_users_expect_are_accepted() {
        let config =
            parse(&["--broadcast", "--log-format", "JSON", "--log-level", "WARN"]).expect("valid");
        assert_eq!(config.log_format, super::super::LogFormat::Json);
        assert_eq!(config.log_filter, "warn");
        let config = parse(&["--broadcast", "--reap-after", "1m30s"]).expect("valid");
        assert_eq!(config.reap_after, Duration::from_secs(90));
        let config = parse(&["--broadcast", "--log", "warn,rq4d=debug"]).expect("valid");
        assert_eq!(config.log_filter, "warn,rq4d=debug");
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
