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
//!   `-join-attempts` 5, `-join-interval` 3s, `-raft-election-timeout` 1s).
//! - **State**: `<data>/raft.db` exists exactly when the node has state (it is the
//!   double's JSON: id, term, vote, voters, log position, fake tables);
//!   `<data>/raft/peers.json` recovery, renamed to `peers.info` afterwards.
//! - **Clustering**: bootstrap of a fresh node without `-join`; joins over the Raft
//!   port through the leader or through a follower (which points at the leader);
//!   rqlite's join rules (same id and address: ignored; same id, new address: old
//!   entry removed first; same address, new id: fails with "found duplicate
//!   address in configuration", as rqlite's code does); retries and exit 1;
//!   refusal to join from a single-node cluster; `-bootstrap-expect` with notify.
//! - **Leadership**: terms, heartbeats carrying the configuration, pre-vote and
//!   vote with hashicorp/raft's rejection rules (requester not in configuration,
//!   receiver hears a live leader, receiver's log is newer), majority elections,
//!   leader lease (a leader without quorum steps down within ~0.5 s), leadership
//!   transfer on SIGTERM, removed nodes that stay up leaderless.
//! - **HTTP**: `/readyz`, `/status`, `/nodes` (probing reachability), `/leader`,
//!   `DELETE /remove` (forwarded to the leader), `/db/execute` and `/db/query`
//!   (forwarded to the leader; `level=none` served locally).
//!
//! # Not modelled
//! - **Replication and SQLite.** A write is committed (a majority acknowledged a
//!   heartbeat) and then applied *only on the leader that took it*, into a tiny
//!   table store (see [`sql`]). Followers hold no data; a new leader does not have
//!   the old leader's rows. Checks that data survives failover, restarts or rejoins
//!   are meaningful only against real rqlited (set `RQLITED` for the test harness).
//! - Log replication, snapshots, non-voters (`-raft-non-voter`), auth, TLS,
//!   discovery modes (`-disco-mode`), `-raft-reap-node-timeout` (accepted, ignored),
//!   queued writes (`?queue` is applied synchronously), `/db/request`,
//!   backups/loads, `?associative`, read freshness.
//! - Interoperation with real rqlited nodes: the Raft port speaks the double's own
//!   line-delimited JSON, so a cluster is all doubles or all real nodes.
//! - Timing is close to rqlite's on loopback but not identical (a lone bootstrap is
//!   leader after 1–1.5× the election timeout, a join is ready within ~10 ms).

pub mod flags;
pub mod http;
pub mod node;
pub mod sql;
pub mod state;
pub mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use flags::{FlagError, Options};
use node::{Node, Settings};

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

async fn run(o: Options) -> anyhow::Result<ExitCode> {
    let Some(data_dir) = o.args.first().map(PathBuf::from) else {
        eprintln!("fatal: no data directory set");
        return Ok(ExitCode::FAILURE);
    };
    if !o.disco_mode.is_empty() {
        return fatal("-disco-mode is not supported by the rq4d test double");
    }
    if !o.auth.is_empty() {
        return fatal("-auth is not supported by the rq4d test double");
    }
    if o.raft_non_voter {
        return fatal("-raft-non-voter is not supported by the rq4d test double");
    }
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
    };
    log(
        "store",
        &format!("opening store with node ID {id}, listening on {raft_adv}"),
    );
    log(
        "store",
        &format!("ensuring data directory exists at {}", data_dir.display()),
    );
    let node = Node::new(settings, persisted);

    tokio::spawn(node::serve_raft(node.clone(), raft_listener));
    tokio::spawn(node::run_timers(node.clone()));
    let app = http::router(node.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http_listener, app).await {
            log("http", &format!("HTTP service stopped: {e}"));
        }
    });
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
