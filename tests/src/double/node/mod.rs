//! Membership and leadership: a small Raft without a log. The leader heartbeats
//! every voter with its term and the configuration; followers adopt both. Elections
//! use pre-votes, so a node that cannot win (it is not in the others' configuration,
//! or they hear a live leader) never disturbs the cluster's term, as with
//! hashicorp/raft. Configuration changes and writes are "committed" once a majority
//! of the configuration acknowledged a heartbeat sent after the change.
//!
//! This file holds what every part shares: the node's settings, its state behind
//! one mutex, and the snapshot HTTP reports from. The behaviour lives in
//! `raft` (roles, heartbeats, lease, commit), `election` (pre-vote, vote,
//! leadership transfer), `membership` (join, notify, remove, bootstrap) and
//! `rpc` (the Raft port: serving requests, forwarding, writes).

mod election;
mod membership;
mod raft;
mod rpc;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::auth::{CredentialStore, Credentials};
use super::log;
use super::sql::Db;
use super::state::{self, Persisted};
use super::wire::{Response, Server, Transport};

pub use election::step_down_for_shutdown;
pub use membership::{bootstrap_loop, join_loop, remove, remove_self_for_shutdown};
pub use raft::{commit, run_timers};
pub use rpc::{execute, forward, ping, serve_raft};

/// Fixed facts about this node, decided from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: String,
    pub raft_bind: String,
    pub raft_adv: String,
    pub http_bind: String,
    pub http_adv: String,
    pub data_dir: PathBuf,
    pub election_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub lease: Duration,
    pub reap_timeout: Duration,
    pub bootstrap_expect: usize,
    pub started: SystemTime,
    pub started_at: Instant,
    /// `-http-cert`/`-http-key` given: the API is HTTPS and advertised so.
    pub https: bool,
    /// `-auth`: who may do what, over HTTP and over the Raft port.
    pub auth: Option<CredentialStore>,
    /// `-join-as`: credentials sent with join, notify and remove (`None`:
    /// anonymous, also when the user is not in this node's own `-auth` file).
    pub join_creds: Option<Credentials>,
    /// `-raft-non-voter`: join as a non-voter.
    pub non_voter: bool,
}

impl Settings {
    /// The HTTP API URL as rqlite advertises it in `/nodes`: `https://` with
    /// `-http-cert`, and always the advertised address.
    pub fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.http_adv)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "Follower",
            Role::Candidate => "Candidate",
            Role::Leader => "Leader",
        }
    }
}

/// Mutable node state, behind one mutex that is never held across an await.
#[derive(Debug)]
pub struct Core {
    pub p: Persisted,
    pub has_state: bool,
    pub role: Role,
    /// (id, raft addr) of the leader this node currently follows (itself when Leader).
    pub leader: Option<(String, String)>,
    pub last_contact: Option<Instant>,
    /// When the election timer fires next.
    pub deadline: Instant,
    pub election_running: bool,
    /// Leader only: last successful heartbeat acknowledgement per voter id.
    pub acks: HashMap<String, Instant>,
    pub leader_since: Instant,
    pub next_heartbeat: Instant,
    pub warned_not_voter: bool,
    /// `-bootstrap-expect`: nodes that notified us, and whether we bootstrapped.
    pub notified: BTreeMap<String, Server>,
    pub bootstrapped: bool,
}

pub struct Node {
    pub s: Settings,
    /// Plain or TLS Raft port, for every dial and for the listener.
    pub net: Transport,
    core: Mutex<Core>,
    /// Wakes the heartbeat sender early (after a configuration change).
    kick: Notify,
    rng: Mutex<u64>,
}

pub type Shared = Arc<Node>;

/// Majority of a configuration with `n` voters.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// How many voters a configuration has: only they elect, and only they count
/// for quorum and the leader lease.
pub fn voter_count(config: &[Server]) -> usize {
    config.iter().filter(|s| s.voter).count()
}

/// hashicorp/raft's name for a server's suffrage.
pub fn suffrage(s: &Server) -> &'static str {
    if s.voter { "Voter" } else { "Nonvoter" }
}

/// How hashicorp/raft prints a configuration in its stats.
pub fn config_string(config: &[Server]) -> String {
    let parts: Vec<String> = config
        .iter()
        .map(|s| {
            format!(
                "{{Suffrage:{} ID:{} Address:{}}}",
                suffrage(s),
                s.id,
                s.addr
            )
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// Error text rqlite returns when a write loses leadership before committing.
pub const LEADERSHIP_LOST: &str = "leadership lost while committing log";

impl Node {
    pub fn new(s: Settings, p: Option<Persisted>, net: Transport) -> Shared {
        let now = Instant::now();
        let has_state = p.is_some();
        let p = p.unwrap_or_else(|| Persisted {
            format: state::FORMAT.into(),
            node_id: s.id.clone(),
            ..Persisted::default()
        });
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        let node = Arc::new(Node {
            core: Mutex::new(Core {
                p,
                has_state,
                role: Role::Follower,
                leader: None,
                last_contact: None,
                deadline: now,
                election_running: false,
                acks: HashMap::new(),
                leader_since: now,
                next_heartbeat: now,
                warned_not_voter: false,
                notified: BTreeMap::new(),
                bootstrapped: false,
            }),
            kick: Notify::new(),
            rng: Mutex::new(seed),
            s,
            net,
        });
        let d = node.random_timeout();
        node.lock().deadline = now + d;
        node
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Election timeout plus up to 50% jitter, so that nodes started together do
    /// not all stand at once (hashicorp/raft adds up to 100%; the brief asks ~1–1.5 s).
    pub fn random_timeout(&self) -> Duration {
        let base = self.s.election_timeout;
        base + Duration::from_nanos(self.random() % (base.as_nanos() as u64 / 2).max(1))
    }

    /// A duration between `d` and `2d`, as rqlite's `random.Jitter`.
    pub fn jitter(&self, d: Duration) -> Duration {
        d + Duration::from_nanos(self.random() % (d.as_nanos() as u64).max(1))
    }

    fn random(&self) -> u64 {
        let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    pub fn persist(&self, c: &mut Core) {
        c.p.node_id = self.s.id.clone();
        if let Err(e) = state::save(&self.s.data_dir, &c.p) {
            log("store", &format!("failed to persist state: {e:#}"));
        }
        c.has_state = true;
    }

    /// This node is in the configuration as a voter.
    pub fn is_voter(&self, c: &Core) -> bool {
        c.p.config.iter().any(|s| s.id == self.s.id && s.voter)
    }

    /// This node is in the configuration, voter or not.
    pub fn is_member(&self, c: &Core) -> bool {
        c.p.config.iter().any(|s| s.id == self.s.id)
    }

    /// Members other than this node, voters and non-voters: whom the leader
    /// heartbeats (by id and by address, so a stale entry with our address under
    /// another id is not mistaken for a peer to heartbeat ourselves).
    fn peers(&self, c: &Core) -> Vec<Server> {
        c.p.config
            .iter()
            .filter(|s| s.id != self.s.id && s.addr != self.s.raft_adv)
            .cloned()
            .collect()
    }

    /// Voters other than this node: whom a candidate asks for votes.
    fn voter_peers(&self, c: &Core) -> Vec<Server> {
        self.peers(c).into_iter().filter(|s| s.voter).collect()
    }
    /// Snapshot of what HTTP handlers need, taken under the lock.
    pub fn view(&self) -> View {
        let c = self.lock();
        View {
            role: c.role,
            leader: c.leader.clone(),
            term: c.p.current_term,
            last_index: c.p.last_index,
            last_term: c.p.last_term,
            config: c.p.config.clone(),
            voter: self.is_voter(&c),
            last_contact: c.last_contact,
        }
    }

    pub fn db_snapshot(&self) -> Db {
        self.lock().p.db.clone()
    }
}

/// A consistent copy of the node's state for reporting.
#[derive(Debug, Clone)]
pub struct View {
    pub role: Role,
    pub leader: Option<(String, String)>,
    pub term: u64,
    pub last_index: u64,
    pub last_term: u64,
    pub config: Vec<Server>,
    pub voter: bool,
    pub last_contact: Option<Instant>,
}

impl View {
    /// hashicorp/raft counts the *other* voters, and 0 when we are not one.
    pub fn num_peers(&self, id: &str) -> usize {
        if self.voter {
            self.config.iter().filter(|s| s.id != id && s.voter).count()
        } else {
            0
        }
    }
}

fn not_leader(c: &Core) -> Response {
    Response::NotLeader {
        leader: c.leader.as_ref().map(|l| l.1.clone()).unwrap_or_default(),
    }
}
