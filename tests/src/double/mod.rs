//! `rqlited-double`: a stand-in for the real `rqlited` (v8) that rq4d's tests can
//! run by the dozen, in milliseconds, without Go, SQLite or a download.
//!
//! It takes rqlited's command line and answers rqlited's HTTP API, and it behaves
//! like rqlited in every situation of the "Corner cases observed on v8.43.3"
//! table of `docs/rqlited.md` that concerns membership, leadership and HTTP.
//! A supervisor that works against the double should therefore work against the
//! real server; anything the double cannot tell you is listed below.
//!
//! # Modelled
//! - **Command line**: Go `flag` syntax (`-flag v`, `-flag=v`, `--flag`, bare
//!   booleans), exit 2 with `flag provided but not defined: -x`; rqlited's defaults
//!   (HTTP `localhost:4001`, Raft `localhost:4002`, id = advertised Raft address,
//!   `-join-attempts` 5, `-join-interval` 3s, `-raft-election-timeout` 1s);
//!   rqlite v8's `Validate` checks with its messages (`fatal: <msg>`, exit 1):
//!   files named by flags must exist, `-http-cert`/`-http-key` and
//!   `-node-cert`/`-node-key` come in pairs, no `-raft-non-voter` with
//!   `-bootstrap-expect`. No argument at all exits 1; flags without a data
//!   directory make the *working directory* the data directory (v8 behaviour,
//!   observed on v8.43.3).
//! - **State**: `<data>/raft.db` exists exactly when the node has state (it is the
//!   double's JSON: id, term, vote, members with their suffrage, log position,
//!   fake tables); `<data>/raft/peers.json` recovery (with `non_voter`), renamed
//!   to `peers.info` afterwards.
//! - **Clustering**: bootstrap of a fresh node without `-join`; joins over the Raft
//!   port through the leader or through a follower (which points at the leader);
//!   rqlite's join rules (same id and address: ignored whatever the voter flag;
//!   same id, new address: old entry removed first and re-added with the *new*
//!   flag; same address, new id: fails with "found duplicate address in
//!   configuration", as rqlite's code does); retries and exit 1; refusal to join
//!   from a single-node cluster; `-bootstrap-expect` with notify, in rqlite v8's
//!   rounds: the first 1–2 ms after the start, then every 2–4 s, each ending at
//!   the first target that does not answer.
//! - **Non-voters** (`-raft-non-voter`): join as non-voters, receive heartbeats
//!   and know the leader, but never vote, never stand, never notify, and count
//!   neither for quorum, commits nor the leader lease. `/status` shows
//!   `voter` false and `num_peers` 0; `/nodes` lists them only with `?nonvoters`.
//!   A brand-new non-voter without `-join` is fatal.
//! - **Leadership**: terms, heartbeats carrying the configuration, pre-vote and
//!   vote with hashicorp/raft's rejection rules (requester not a voter in the
//!   configuration, receiver hears a live leader, receiver's log is newer),
//!   majority elections, leader lease (a leader without a quorum of voters steps
//!   down within ~0.5 s), leadership transfer on SIGTERM, removed nodes that stay
//!   up leaderless.
//! - **HTTP**: `/readyz`, `/status`, `/nodes` (probing reachability), `/leader`,
//!   `DELETE /remove` (forwarded to the leader), `/db/execute` and `/db/query`
//!   (forwarded to the leader; `level=none` served locally).
//! - **Auth** (`-auth FILE`, see [`auth`]): rqlite's file format and rules
//!   (plaintext passwords, `*` checked before the password, `all`), HTTP Basic
//!   auth on every endpoint with rqlite's permission per endpoint (bare 401 on
//!   failure); forwarded requests carry the caller's credentials and the leader
//!   checks them against its own file (401 `remote Execute not authorized` etc.).
//!   `-join-as USER` sends USER's password from the joiner's own file with join,
//!   notify and `-raft-cluster-remove-shutdown`; the receiver demands `join`
//!   (voter), `join-read-only` (non-voter), `join` (notify), `remove`. Without
//!   credentials every failed join attempt logs `(did you forget to set
//!   -join-as?)`.
//! - **TLS** (see [`tls`]): HTTPS with `-http-cert`/`-http-key`, advertised as
//!   `https://<http-adv-addr>` in `/nodes`; mutual TLS with `-http-verify-client`
//!   (needs `-http-ca-cert`). Node TLS with `-node-cert`/`-node-key` wraps the
//!   whole Raft port, listener and every dial, so a node without it cannot talk
//!   to a node with it; `-node-ca-cert`, `-node-no-verify`,
//!   `-node-verify-server-name` and `-node-verify-client` (mutual TLS, needs
//!   `-node-ca-cert`) behave as in Go.
//!
//! # Not modelled
//! - **Replication and SQLite.** A write is committed (a majority acknowledged a
//!   heartbeat) and then applied *only on the leader that took it*, into a tiny
//!   table store (see [`sql`]). Followers hold no data; a new leader does not have
//!   the old leader's rows. Checks that data survives failover, restarts or rejoins
//!   are meaningful only against real rqlited (set `RQLITED` for the test harness).
//! - Log replication, snapshots, discovery modes (`-disco-mode`),
//!   `-raft-reap-node-timeout` and `-raft-reap-read-only-node-timeout` (accepted,
//!   ignored), queued writes (`?queue` is applied synchronously), `/db/request`,
//!   backups/loads, `?associative`, read freshness.
//! - Auth and TLS details: the permissions of endpoints the double does not serve
//!   (`load`, `backup`, `snapshot`, `leader-ops`), CORS headers, reloading of
//!   changed certificate files, the system CA roots (without `-node-ca-cert` the
//!   double trusts no CA; Go would use the system's), mutual TLS without a CA
//!   flag (refused at start), HTTP/2 (the double offers only HTTP/1.1 in ALPN).
//! - Interoperation with real rqlited nodes: the Raft port speaks the double's own
//!   line-delimited JSON (inside TLS with node TLS), so a cluster is all doubles
//!   or all real nodes.
//! - Timing is close to rqlite's on loopback but not identical (a lone bootstrap is
//!   leader after 1–1.5× the election timeout, a join is ready within ~10 ms).

pub mod auth;
pub mod flags;
pub mod http;
pub mod node;
pub mod sql;
pub mod state;
pub mod tls;
pub mod wire;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use auth::{CredentialStore, Credentials};
use flags::{FlagError, Options};
use node::{Node, Settings};
use tls::{NodeTls, NodeTlsFlags, TlsListener};
use wire::Transport;

/// The rqlite version the double imitates, reported where rqlite reports its own.
pub const VERSION: &str = "v8.43.3";

/// One line shown first on every start, so that nobody mistakes a log or a process
/// list entry of the double for the real database.
pub const BANNER: &str =
    "rq4d TEST DOUBLE of rqlited (not rqlite: no replication, no SQLite) — imitating rqlited";

/// Writes a line the way Go's `log` package with a prefix does:
/// `[store] 2024/05/01 10:00:00 message`, on stderr like rqlited.
pub fn log(prefix: &str, msg: &str) {
    eprintln!("[{prefix}] {} {msg}", go_log_time(SystemTime::now()));
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn utc_parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, da) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (
        y,
        mo,
        da,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos(),
    )
}

fn go_log_time(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(t);
    format!("{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

/// RFC 3339 with nanoseconds, as Go marshals `time.Time` in `/status`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ns) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}Z")
}

/// Entry point of the `rqlited-double` binary.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // rqlited's generated parser demands *some* argument; with flags but no data
    // directory it goes on and uses the working directory (see `run`).
    if args.is_empty() {
        eprintln!("failed to parse command-line flags: missing required argument: DataPath");
        return ExitCode::FAILURE;
    }
    let opts = match flags::parse(&args) {
        Ok(o) => o,
        Err(FlagError::Help) => {
            eprint!("{}", flags::usage());
            return ExitCode::SUCCESS;
        }
        Err(FlagError::Bad(msg)) => {
            eprintln!("{msg}");
            eprint!("{}", flags::usage());
            return ExitCode::from(2);
        }
    };
    if opts.version {
        println!("rqlited {VERSION} (rq4d test double, not rqlite)");
        return ExitCode::SUCCESS;
    }
    eprintln!("{BANNER} {VERSION}");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fatal: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(opts)) {
        Ok(code) => code,
        Err(e) => {
            log("rqlited", &format!("fatal: {e:#}"));
            ExitCode::FAILURE
        }
    };
    // Exit at once, without waiting for the runtime to wind down connection tasks:
    // rqlited is gone within ~20 ms of SIGTERM and supervisors may rely on that.
    if code == ExitCode::SUCCESS {
        std::process::exit(0)
    }
    std::process::exit(1)
}

/// True for `0.0.0.0:p`, `[::]:p` and `:p`, which cannot be advertised.
fn unspecified_host(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    matches!(host, "" | "0.0.0.0" | "[::]" | "::")
}

fn fatal(msg: impl AsRef<str>) -> anyhow::Result<ExitCode> {
    log("rqlited", &format!("fatal: {}", msg.as_ref()));
    Ok(ExitCode::FAILURE)
}

/// rqlited's `errorExit(1, msg)`: `fatal: msg` on stderr, exit 1.
fn error_exit(msg: impl AsRef<str>) -> anyhow::Result<ExitCode> {
    eprintln!("fatal: {}", msg.as_ref());
    Ok(ExitCode::FAILURE)
}

/// The credentials `-join-as USER` sends: USER's password from this node's own
/// `-auth` file. rqlite silently falls back to anonymous when there is no file
/// or no such user, and so does the double.
fn join_credentials(o: &Options, store: Option<&CredentialStore>) -> Option<Credentials> {
    if o.join_as.is_empty() {
        return None;
    }
    let password = store?.password(&o.join_as)?;
    Some(Credentials {
        username: o.join_as.clone(),
        password: password.to_string(),
    })
}

fn optional_path(p: &str) -> Option<&std::path::Path> {
    (!p.is_empty()).then(|| std::path::Path::new(p))
}

fn node_tls(o: &Options) -> anyhow::Result<Option<NodeTls>> {
    if o.node_cert.is_empty() {
        return Ok(None);
    }
    let tls = NodeTls::new(NodeTlsFlags {
        cert: std::path::Path::new(&o.node_cert),
        key: std::path::Path::new(&o.node_key),
        ca: optional_path(&o.node_ca_cert),
        no_verify: o.node_no_verify,
        verify_client: o.node_verify_client,
        server_name: (!o.node_verify_server_name.is_empty())
            .then(|| o.node_verify_server_name.clone()),
    })?;
    log(
        "rqlited",
        &format!(
            "enabling node-to-node encryption with cert: {}, key: {}",
            o.node_cert, o.node_key
        ),
    );
    Ok(Some(tls))
}

async fn run(o: Options) -> anyhow::Result<ExitCode> {
    if o.args.len() > 1 {
        eprintln!(
            "arguments after data directory ({}) are not accepted ({:?})",
            o.args[0],
            &o.args[1..]
        );
        return Ok(ExitCode::FAILURE);
    }
    // rqlite v8 takes `filepath.Abs("")` when no directory is given: the working
    // directory becomes the data directory (fixed only in v10).
    let data_dir = match o.args.first() {
        Some(d) => std::path::absolute(d),
        None => std::env::current_dir(),
    }
    .context("failed to determine absolute data path")?;
    if let Err(msg) = flags::validate(&o) {
        return error_exit(msg);
    }
    if !o.disco_mode.is_empty() {
        return fatal("-disco-mode is not supported by the rq4d test double");
    }
    let auth = match optional_path(&o.auth) {
        None => None,
        Some(path) => match CredentialStore::load(path) {
            Ok(store) => Some(store),
            Err(e) => return fatal(format!("failed to load auth file: {e:#}")),
        },
    };
    let join_creds = join_credentials(&o, auth.as_ref());
    let http_tls = if o.http_cert.is_empty() {
        None
    } else {
        match tls::http_acceptor(
            std::path::Path::new(&o.http_cert),
            std::path::Path::new(&o.http_key),
            optional_path(&o.http_ca_cert),
            o.http_verify_client,
        ) {
            Ok(a) => Some(a),
            Err(e) => return fatal(format!("failed to create HTTPS service: {e:#}")),
        }
    };
    let node_tls = match node_tls(&o) {
        Ok(t) => t,
        Err(e) => return fatal(format!("failed to set up node-to-node encryption: {e:#}")),
    };
    let join: Vec<String> = o
        .join
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if o.bootstrap_expect > 0 && join.is_empty() {
        return fatal(
            "bootstrapping only supported with -join (discovery is not supported by the rq4d test double)",
        );
    }
    let http_adv = if o.http_adv_addr.is_empty() {
        o.http_addr.clone()
    } else {
        o.http_adv_addr.clone()
    };
    let raft_adv = if o.raft_adv_addr.is_empty() {
        o.raft_addr.clone()
    } else {
        o.raft_adv_addr.clone()
    };
    if unspecified_host(&raft_adv) {
        return fatal(format!(
            "advertised Raft address is not routable ({raft_adv}), set -raft-adv-addr"
        ));
    }
    if unspecified_host(&http_adv) {
        return fatal(format!(
            "advertised HTTP address is not routable ({http_adv}), set -http-adv-addr"
        ));
    }
    if o.http_addr == o.raft_addr || http_adv == raft_adv {
        return fatal("HTTP and Raft addresses must differ");
    }
    let id = if o.node_id.is_empty() {
        raft_adv.clone()
    } else {
        o.node_id.clone()
    };

    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("create data directory {}", data_dir.display()))?;
    let mut persisted = state::load(&data_dir)?;
    if let Some(p) = persisted.as_mut() {
        if let Some(path) = state::recover_from_peers_json(&data_dir, p)? {
            state::save(&data_dir, p)?;
            log(
                "store",
                &format!("node recovered successfully using {}", path.display()),
            );
        }
    } else {
        // rqlite can also recover a node without a log; the double then starts from
        // peers.json alone.
        let mut fresh = state::Persisted {
            format: state::FORMAT.into(),
            node_id: id.clone(),
            ..Default::default()
        };
        if let Some(path) = state::recover_from_peers_json(&data_dir, &mut fresh)? {
            state::save(&data_dir, &fresh)?;
            log(
                "store",
                &format!("node recovered successfully using {}", path.display()),
            );
            persisted = Some(fresh);
        }
    }
    let has_state = persisted.is_some();
    if !has_state {
        log(
            "store",
            &format!(
                "no preexisting node state detected in {}, node may be bootstrapping",
                data_dir.display()
            ),
        );
    }
    if o.raft_non_voter && !has_state && join.is_empty() {
        return fatal(
            "cannot create a new non-voting node without joining it to an existing cluster",
        );
    }
    if !join.is_empty()
        && let Some(p) = &persisted
        && p.config.len() == 1
        && p.config[0].id == id
    {
        log(
            "rqlited",
            "clustering failure: node is the only node in a single-node cluster, joining other clusters not supported",
        );
        return Ok(ExitCode::FAILURE);
    }

    let raft_listener = TcpListener::bind(&o.raft_addr)
        .await
        .map_err(|e| anyhow!("failed to listen on {}: {e}", o.raft_addr))?;
    let http_listener = TcpListener::bind(&o.http_addr)
        .await
        .map_err(|e| anyhow!("failed to listen on {}: {e}", o.http_addr))?;

    let election_timeout = o.raft_election_timeout.max(Duration::from_millis(20));
    let heartbeat_interval =
        (election_timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let lease = if o.raft_leader_lease_timeout.is_zero() {
        (election_timeout / 2).max(heartbeat_interval * 3)
    } else {
        o.raft_leader_lease_timeout.max(heartbeat_interval * 3)
    };
    let settings = Settings {
        id: id.clone(),
        raft_bind: o.raft_addr.clone(),
        raft_adv: raft_adv.clone(),
        http_bind: o.http_addr.clone(),
        http_adv: http_adv.clone(),
        data_dir: data_dir.clone(),
        election_timeout,
        heartbeat_timeout: o.raft_timeout,
        heartbeat_interval,
        lease,
        reap_timeout: o.raft_reap_node_timeout,
        bootstrap_expect: usize::try_from(o.bootstrap_expect).unwrap_or(0),
        started: SystemTime::now(),
        started_at: Instant::now(),
        https: http_tls.is_some(),
        auth,
        join_creds,
        non_voter: o.raft_non_voter,
    };
    log(
        "store",
        &format!("opening store with node ID {id}, listening on {raft_adv}"),
    );
    log(
        "store",
        &format!("ensuring data directory exists at {}", data_dir.display()),
    );
    let node = Node::new(settings, persisted, Transport::new(node_tls));

    tokio::spawn(node::serve_raft(node.clone(), raft_listener));
    tokio::spawn(node::run_timers(node.clone()));
    let app = http::router(node.clone());
    match http_tls {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(http_listener, app).await {
                    log("http", &format!("HTTP service stopped: {e}"));
                }
            });
        }
        Some(acceptor) => {
            let listener = TlsListener::new(http_listener, acceptor)?;
            log(
                "http",
                &format!(
                    "secure HTTPS server enabled with cert {}, key {}, mutual TLS {}",
                    o.http_cert,
                    o.http_key,
                    if o.http_verify_client {
                        "enabled"
                    } else {
                        "disabled"
                    }
                ),
            );
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    log("http", &format!("HTTP service stopped: {e}"));
                }
            });
        }
    }
    log("http", &format!("service listening on {http_adv}"));

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    if !join.is_empty() && o.bootstrap_expect > 0 {
        let timeout = o.bootstrap_expect_timeout;
        tokio::select! {
            r = node::bootstrap_loop(&node, &join, timeout) => if let Err(e) = r {
                log("rqlited", &format!("clustering failure: {e}"));
                return Ok(ExitCode::FAILURE);
            },
            _ = sigterm.recv() => return Ok(exit_during_clustering()),
            _ = sigint.recv() => return Ok(exit_during_clustering()),
        }
    } else if !join.is_empty() {
        tokio::select! {
            r = node::join_loop(&node, &join, o.join_attempts, o.join_interval) => match r {
                Ok(leader) => log("rqlited", &format!("successfully joined cluster at {leader}")),
                Err(e) => {
                    log("rqlited", &format!("clustering failure: {e}"));
                    return Ok(ExitCode::FAILURE);
                }
            },
            _ = sigterm.recv() => return Ok(exit_during_clustering()),
            _ = sigint.recv() => return Ok(exit_during_clustering()),
        }
    } else if !has_state {
        log("rqlited", "bootstrapping single new node");
        node.bootstrap_self();
    } else {
        log(
            "rqlited",
            "node has existing state, resuming from its stored configuration",
        );
    }

    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
    }
    log("rqlited", "received signal, shutting down");
    if o.raft_cluster_remove_shutdown {
        if node.view().role == node::Role::Leader {
            node::step_down_for_shutdown(&node).await;
        }
        node::remove_self_for_shutdown(&node).await;
    } else {
        node::step_down_for_shutdown(&node).await;
    }
    log("rqlited", "rqlite server stopped");
    Ok(ExitCode::SUCCESS)
}

/// rqlited exits 1 when interrupted while still clustering: the join is cancelled
/// and reported as a clustering failure.
fn exit_during_clustering() -> ExitCode {
    log(
        "rqlited",
        "clustering failure: interrupted by signal while joining cluster",
    );
    ExitCode::FAILURE
}
