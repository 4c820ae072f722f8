//! Membership and leadership: a small Raft without a log. The leader heartbeats
//! every voter with its term and the configuration; followers adopt both. Elections
//! use pre-votes, so a node that cannot win (it is not in the others' configuration,
//! or they hear a live leader) never disturbs the cluster's term, as with
//! hashicorp/raft. Configuration changes and writes are "committed" once a majority
//! of the configuration acknowledged a heartbeat sent after the change.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::flags::format_duration;
use super::log;
use super::sql::{Db, Stmt};
use super::state::{self, Persisted};
use super::wire::{Request, Response, Server, call};

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
}

impl Settings {
    /// The HTTP API URL as rqlite advertises it in `/nodes`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.http_adv)
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

/// How hashicorp/raft prints a configuration in its stats.
pub fn config_string(config: &[Server]) -> String {
    let parts: Vec<String> = config
        .iter()
        .map(|s| format!("{{Suffrage:Voter ID:{} Address:{}}}", s.id, s.addr))
        .collect();
    format!("[{}]", parts.join(" "))
}

/// Error text rqlite returns when a write loses leadership before committing.
pub const LEADERSHIP_LOST: &str = "leadership lost while committing log";

impl Node {
    pub fn new(s: Settings, p: Option<Persisted>) -> Shared {
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
        let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let base = self.s.election_timeout;
        let jitter_ns = (base.as_nanos() as u64 / 2).max(1);
        base + Duration::from_nanos(*x % jitter_ns)
    }

    pub fn persist(&self, c: &mut Core) {
        c.p.node_id = self.s.id.clone();
        if let Err(e) = state::save(&self.s.data_dir, &c.p) {
            log("store", &format!("failed to persist state: {e:#}"));
        }
        c.has_state = true;
    }

    pub fn is_voter(&self, c: &Core) -> bool {
        c.p.config.iter().any(|s| s.id == self.s.id)
    }

    /// Voters other than this node (by id and by address, so a stale entry with our
    /// address under another id is not mistaken for a peer to heartbeat ourselves).
    fn peers(&self, c: &Core) -> Vec<Server> {
        c.p.config
            .iter()
            .filter(|s| s.id != self.s.id && s.addr != self.s.raft_adv)
            .cloned()
            .collect()
    }

    fn step_down(&self, c: &mut Core, why: &str) {
        if c.role != Role::Follower {
            log("raft", &format!("[WARN]  {why}"));
            log(
                "raft",
                &format!(
                    "[INFO]  entering follower state: follower=\"Node at {} [Follower]\" leader-address= leader-id=",
                    self.s.raft_adv
                ),
            );
        }
        c.role = Role::Follower;
        c.leader = None;
        c.deadline = Instant::now() + self.random_timeout();
    }

    fn become_leader(&self, c: &mut Core) {
        let now = Instant::now();
        c.role = Role::Leader;
        c.leader = Some((self.s.id.clone(), self.s.raft_adv.clone()));
        c.leader_since = now;
        c.next_heartbeat = now;
        c.acks = c.p.config.iter().map(|s| (s.id.clone(), now)).collect();
        // hashicorp/raft appends a no-op entry on winning an election.
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
        self.persist(c);
        log(
            "raft",
            &format!(
                "[INFO]  election won: term={} tally={}",
                c.p.current_term,
                c.p.config.len()
            ),
        );
        log(
            "raft",
            &format!(
                "[INFO]  entering leader state: leader=\"Node at {} [Leader]\"",
                self.s.raft_adv
            ),
        );
        self.kick.notify_one();
    }

    /// Installs a single-node configuration of this node, as rqlited does for a
    /// fresh node started without `-join`.
    pub fn bootstrap_self(&self) {
        let mut c = self.lock();
        c.p.config = vec![Server {
            id: self.s.id.clone(),
            addr: self.s.raft_adv.clone(),
            api_addr: self.s.api_url(),
        }];
        c.p.last_index = 1;
        c.p.last_term = 1;
        c.p.current_term = c.p.current_term.max(1);
        self.persist(&mut c);
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
            self.config.iter().filter(|s| s.id != id).count()
        } else {
            0
        }
    }
}

// ---------------------------------------------------------------------------
// Timers: elections and heartbeats.

/// Drives the election timer, the leader's heartbeats and its lease check.
pub async fn run_timers(node: Shared) {
    let tick = Duration::from_millis(10).min(node.s.heartbeat_interval);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = node.kick.notified() => {
                let mut c = node.lock();
                c.next_heartbeat = Instant::now();
            }
        }
        let now = Instant::now();
        let mut start_election = false;
        let mut send_heartbeats = false;
        {
            let mut c = node.lock();
            match c.role {
                Role::Leader => {
                    if now >= c.next_heartbeat {
                        c.next_heartbeat = now + node.s.heartbeat_interval;
                        send_heartbeats = true;
                    }
                    check_lease(&node, &mut c, now);
                }
                Role::Follower | Role::Candidate => {
                    if now >= c.deadline && !c.election_running {
                        c.deadline = now + node.random_timeout();
                        if c.leader.take().is_some() && c.role == Role::Follower {
                            log(
                                "raft",
                                "[WARN]  heartbeat timeout reached, starting election",
                            );
                        }
                        if c.p.config.is_empty() {
                            // Fresh node waiting to be joined or bootstrapped.
                        } else if !node.is_voter(&c) {
                            if !c.warned_not_voter {
                                log(
                                    "raft",
                                    "[WARN]  not part of a stable configuration or a non-voter, aborting election",
                                );
                                c.warned_not_voter = true;
                            }
                            c.role = Role::Follower;
                        } else {
                            c.warned_not_voter = false;
                            c.role = Role::Candidate;
                            c.election_running = true;
                            start_election = true;
                        }
                    }
                }
            }
        }
        if start_election {
            tokio::spawn(election(node.clone(), false));
        }
        if send_heartbeats {
            tokio::spawn(heartbeat_round(node.clone()));
        }
    }
}

/// A leader that has not heard from a majority within the lease steps down, as
/// hashicorp/raft's `checkLeaderLease` does ("failed to contact quorum of nodes").
fn check_lease(node: &Node, c: &mut Core, now: Instant) {
    if now.duration_since(c.leader_since) < node.s.lease {
        return;
    }
    let voters = c.p.config.len();
    if voters == 0 {
        return;
    }
    let mut contacted = 0;
    for s in &c.p.config {
        let heard = c
            .acks
            .get(&s.id)
            .is_some_and(|t| now.duration_since(*t) <= node.s.lease);
        if s.id == node.s.id || heard {
            contacted += 1;
        }
    }
    if !node.is_voter(c) {
        node.step_down(c, "removed ourself, transitioning to follower");
    } else if contacted < majority(voters) {
        node.step_down(c, "failed to contact quorum of nodes, stepping down");
    }
}

fn heartbeat_request(node: &Node, c: &Core) -> Request {
    Request::Heartbeat {
        term: c.p.current_term,
        leader_id: node.s.id.clone(),
        leader_addr: node.s.raft_adv.clone(),
        config: c.p.config.clone(),
        last_index: c.p.last_index,
        last_term: c.p.last_term,
    }
}

fn rpc_timeout(node: &Node) -> Duration {
    (node.s.election_timeout / 2).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// One heartbeat to every peer; returns how many acknowledged in the current term.
async fn heartbeat_round(node: Shared) -> usize {
    let (req, targets, term) = {
        let c = node.lock();
        if c.role != Role::Leader {
            return 0;
        }
        (
            heartbeat_request(&node, &c),
            node.peers(&c),
            c.p.current_term,
        )
    };
    let timeout = rpc_timeout(&node);
    let mut set = JoinSet::new();
    for t in targets {
        let req = req.clone();
        set.spawn(async move {
            let r = call(&t.addr, &req, timeout).await;
            (t, r)
        });
    }
    let mut acked = 0;
    while let Some(Ok((target, result))) = set.join_next().await {
        let Ok(Response::HeartbeatAck {
            term: their_term,
            success,
            id,
            api_addr,
        }) = result
        else {
            continue;
        };
        let mut c = node.lock();
        if their_term > c.p.current_term {
            c.p.current_term = their_term;
            c.p.voted_for = None;
            node.persist(&mut c);
            node.step_down(&mut c, "peer has newer term, stopping replication");
            continue;
        }
        if !success || c.role != Role::Leader || c.p.current_term != term {
            continue;
        }
        c.acks.insert(target.id.clone(), Instant::now());
        acked += 1;
        // rqlite keeps each node's HTTP address as metadata; refresh it.
        if id == target.id
            && let Some(s) = c.p.config.iter_mut().find(|s| s.id == id)
            && s.api_addr != api_addr
        {
            s.api_addr = api_addr;
            node.persist(&mut c);
        }
    }
    acked
}

/// Waits until a majority of the current configuration acknowledged a heartbeat
/// sent after this call began, standing in for "the log entry is committed".
pub async fn commit(node: &Shared) -> Result<(), String> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let term = node.lock().p.current_term;
    loop {
        let need = {
            let c = node.lock();
            if c.role != Role::Leader || c.p.current_term != term {
                return Err(LEADERSHIP_LOST.into());
            }
            let self_counts = usize::from(node.is_voter(&c));
            majority(c.p.config.len()).saturating_sub(self_counts)
        };
        if need == 0 {
            return Ok(());
        }
        let acked = heartbeat_round(node.clone()).await;
        {
            let c = node.lock();
            if c.role != Role::Leader || c.p.current_term != term {
                return Err(LEADERSHIP_LOST.into());
            }
        }
        if acked >= need {
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err("timeout waiting for commit".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pre-vote, then vote. `transfer` marks an election requested by the old leader
/// on shutdown, which voters honour even though they still know that leader.
async fn election(node: Shared, transfer: bool) {
    let timeout = rpc_timeout(&node);
    let ask = |pre_vote: bool, term: u64, c: &Core| Request::Vote {
        pre_vote,
        transfer,
        term,
        id: node.s.id.clone(),
        addr: node.s.raft_adv.clone(),
        last_index: c.p.last_index,
        last_term: c.p.last_term,
    };
    let (pre, targets, voters) = {
        let c = node.lock();
        (
            ask(true, c.p.current_term + 1, &c),
            node.peers(&c),
            c.p.config.len(),
        )
    };
    if !transfer {
        let grants = 1 + collect_votes(&node, &targets, &pre, timeout).await;
        if grants < majority(voters) {
            let mut c = node.lock();
            c.election_running = false;
            c.deadline = Instant::now() + node.random_timeout();
            return;
        }
    }
    let (req, term) = {
        let mut c = node.lock();
        if c.role != Role::Candidate {
            c.election_running = false;
            return;
        }
        c.p.current_term += 1;
        c.p.voted_for = Some(node.s.id.clone());
        node.persist(&mut c);
        log(
            "raft",
            &format!(
                "[INFO]  entering candidate state: node=\"Node at {} [Candidate]\" term={}",
                node.s.raft_adv, c.p.current_term
            ),
        );
        (ask(false, c.p.current_term, &c), c.p.current_term)
    };
    let grants = 1 + collect_votes(&node, &targets, &req, timeout).await;
    let mut c = node.lock();
    c.election_running = false;
    if c.role == Role::Candidate && c.p.current_term == term && grants >= majority(voters) {
        node.become_leader(&mut c);
    } else {
        c.deadline = Instant::now() + node.random_timeout();
    }
}

async fn collect_votes(
    node: &Shared,
    targets: &[Server],
    req: &Request,
    timeout: Duration,
) -> usize {
    let mut set = JoinSet::new();
    for t in targets {
        let (addr, req) = (t.addr.clone(), req.clone());
        set.spawn(async move { call(&addr, &req, timeout).await });
    }
    let mut granted = 0;
    while let Some(Ok(result)) = set.join_next().await {
        if let Ok(Response::Vote { term, granted: g }) = result {
            if g {
                granted += 1;
            } else if term > node.lock().p.current_term {
                let mut c = node.lock();
                c.p.current_term = term;
                c.p.voted_for = None;
                node.persist(&mut c);
            }
        }
    }
    granted
}

// ---------------------------------------------------------------------------
// Serving the Raft port.

pub async fn serve_raft(node: Shared, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(handle_conn(node.clone(), stream));
    }
}

async fn handle_conn(node: Shared, stream: TcpStream) {
    stream.set_nodelay(true).ok();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(&node, req).await,
        Err(e) => Response::Error {
            error: format!("bad request: {e}"),
        },
    };
    let Ok(mut out) = serde_json::to_vec(&resp) else {
        return;
    };
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}

async fn handle(node: &Shared, req: Request) -> Response {
    match req {
        Request::Heartbeat {
            term,
            leader_id,
            leader_addr,
            config,
            last_index,
            last_term,
        } => on_heartbeat(
            node,
            term,
            leader_id,
            leader_addr,
            config,
            last_index,
            last_term,
        ),
        Request::Vote {
            pre_vote,
            transfer,
            term,
            id,
            addr,
            last_index,
            last_term,
        } => on_vote(
            node, pre_vote, transfer, term, &id, &addr, last_index, last_term,
        ),
        Request::TimeoutNow { term } => {
            let mut c = node.lock();
            if term >= c.p.current_term && node.is_voter(&c) && !c.election_running {
                log(
                    "raft",
                    "[INFO]  received leadership transfer request, starting election",
                );
                c.role = Role::Candidate;
                c.election_running = true;
                drop(c);
                tokio::spawn(election(node.clone(), true));
            }
            Response::Ok
        }
        Request::Join {
            id,
            addr,
            api_addr,
            voter,
        } => on_join(node, id, addr, api_addr, voter).await,
        Request::Notify { id, addr } => on_notify(node, id, addr),
        Request::Remove { id } => match remove(node, &id).await {
            Ok(()) => Response::Ok,
            Err(r) => r,
        },
        Request::Execute { stmts, transaction } => match execute(node, &stmts, transaction).await {
            Ok(results) => Response::Results {
                results,
                error: None,
            },
            Err(r) => r,
        },
        Request::Query { stmts } => {
            let c = node.lock();
            if c.role != Role::Leader {
                return not_leader(&c);
            }
            Response::Results {
                results: c.p.db.query(&stmts),
                error: None,
            }
        }
        Request::Ping => Response::Pong {
            id: node.s.id.clone(),
            api_addr: node.s.api_url(),
        },
    }
}

fn not_leader(c: &Core) -> Response {
    Response::NotLeader {
        leader: c.leader.as_ref().map(|l| l.1.clone()).unwrap_or_default(),
    }
}

fn on_heartbeat(
    node: &Shared,
    term: u64,
    leader_id: String,
    leader_addr: String,
    config: Vec<Server>,
    last_index: u64,
    last_term: u64,
) -> Response {
    let mut c = node.lock();
    let ack = |c: &Core, success| Response::HeartbeatAck {
        term: c.p.current_term,
        success,
        id: node.s.id.clone(),
        api_addr: node.s.api_url(),
    };
    if term < c.p.current_term {
        return ack(&c, false);
    }
    let mut dirty = false;
    if term > c.p.current_term {
        c.p.current_term = term;
        c.p.voted_for = None;
        dirty = true;
    }
    if c.role != Role::Follower {
        log(
            "raft",
            &format!(
                "[INFO]  entering follower state: follower=\"Node at {} [Follower]\" leader-address={} leader-id={}",
                node.s.raft_adv, leader_addr, leader_id
            ),
        );
        c.role = Role::Follower;
    }
    let new_leader = Some((leader_id.clone(), leader_addr.clone()));
    if c.leader != new_leader {
        log(
            "store",
            &format!("leader is now {leader_id} at {leader_addr}"),
        );
        c.leader = new_leader;
    }
    let now = Instant::now();
    c.last_contact = Some(now);
    c.deadline = now + node.random_timeout();
    if c.p.config != config {
        let was_member = node.is_voter(&c);
        c.p.config = config;
        dirty = true;
        if was_member && !node.is_voter(&c) {
            log(
                "store",
                "this node is no longer a member of the cluster configuration",
            );
        }
    }
    if (c.p.last_index, c.p.last_term) != (last_index, last_term) {
        c.p.last_index = last_index;
        c.p.last_term = last_term;
        dirty = true;
    }
    if dirty {
        node.persist(&mut c);
    }
    ack(&c, true)
}

#[allow(clippy::too_many_arguments)]
fn on_vote(
    node: &Shared,
    pre_vote: bool,
    transfer: bool,
    term: u64,
    id: &str,
    addr: &str,
    last_index: u64,
    last_term: u64,
) -> Response {
    let mut c = node.lock();
    let kind = if pre_vote { "pre-vote" } else { "vote" };
    let reject = |c: &Core| Response::Vote {
        term: c.p.current_term,
        granted: false,
    };
    if term < c.p.current_term {
        return reject(&c);
    }
    if !c.p.config.is_empty() && !c.p.config.iter().any(|s| s.id == id) {
        log(
            "raft",
            &format!(
                "[WARN]  rejecting {kind} request since node is not in configuration: from={addr}"
            ),
        );
        return reject(&c);
    }
    if let Some((leader_id, leader_addr)) = &c.leader
        && leader_addr != addr
        && !transfer
    {
        log(
            "raft",
            &format!(
                "[WARN]  rejecting {kind} request since we have a leader: from={addr} leader={leader_addr} leader-id={leader_id}"
            ),
        );
        return reject(&c);
    }
    if (last_term, last_index) < (c.p.last_term, c.p.last_index) {
        log(
            "raft",
            &format!(
                "[WARN]  rejecting {kind} request since our last index is greater: from={addr}"
            ),
        );
        return reject(&c);
    }
    if pre_vote {
        return Response::Vote {
            term: c.p.current_term,
            granted: true,
        };
    }
    if term > c.p.current_term {
        c.p.current_term = term;
        c.p.voted_for = None;
        if c.role != Role::Follower {
            node.step_down(
                &mut c,
                "lost leadership because received a requestVote with a newer term",
            );
        }
    }
    if c.p.voted_for.as_deref().is_some_and(|v| v != id) {
        node.persist(&mut c);
        return reject(&c);
    }
    c.p.voted_for = Some(id.to_string());
    c.deadline = Instant::now() + node.random_timeout();
    node.persist(&mut c);
    Response::Vote {
        term: c.p.current_term,
        granted: true,
    }
}

/// The leader's side of a join, following rqlite's `Store.Join` line by line,
/// including its quirk: when only the *address* matches, it removes the joiner's
/// id (not the old entry), so the add then fails with a duplicate address.
async fn on_join(
    node: &Shared,
    id: String,
    addr: String,
    api_addr: String,
    voter: bool,
) -> Response {
    let matches: Vec<Server> = {
        let c = node.lock();
        if c.role != Role::Leader {
            return not_leader(&c);
        }
        c.p.config
            .iter()
            .filter(|s| s.id == id || s.addr == addr)
            .cloned()
            .collect()
    };
    if !voter {
        return Response::Error {
            error: "rq4d test double: non-voters are not supported".into(),
        };
    }
    for srv in matches {
        if srv.id == id && srv.addr == addr {
            let mut c = node.lock();
            if let Some(s) = c.p.config.iter_mut().find(|s| s.id == id)
                && s.api_addr != api_addr
            {
                s.api_addr = api_addr.clone();
                node.persist(&mut c);
            }
            log(
                "store",
                &format!("node {id} at {addr} already member of cluster, ignoring join request"),
            );
            return Response::Ok;
        }
        if let Err(e) = remove_from_config(node, &id).await {
            log("store", &format!("failed to remove node {id}: {e}"));
            return Response::Error { error: e };
        }
        log(
            "store",
            &format!("removed node {id} prior to rejoin with changed ID or address"),
        );
    }
    {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return not_leader(&c);
        }
        if c.p.config.iter().any(|s| s.addr == addr) {
            return Response::Error {
                error: format!("found duplicate address in configuration: {addr}"),
            };
        }
        c.p.config.push(Server {
            id: id.clone(),
            addr: addr.clone(),
            api_addr,
        });
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
        c.acks.insert(id.clone(), Instant::now());
        node.persist(&mut c);
    }
    node.kick.notify_one();
    if let Err(e) = commit(node).await {
        return Response::Error { error: e };
    }
    log(
        "store",
        &format!("node with ID {id}, at {addr}, joined successfully as voter"),
    );
    Response::Ok
}

/// Removes `id` from the configuration (a no-op change if it is not a member, as
/// with hashicorp/raft) and waits for the change to commit. A removed peer gets one
/// last heartbeat carrying the new configuration, so it learns it is out — which is
/// why a node removed while running reports `num_peers` 0 and `voter` false.
async fn remove_from_config(node: &Shared, id: &str) -> Result<(), String> {
    let (removed, hb) = {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return Err("not leader".into());
        }
        let removed = c.p.config.iter().find(|s| s.id == id).cloned();
        c.p.config.retain(|s| s.id != id);
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
        c.acks.remove(id);
        node.persist(&mut c);
        (removed, heartbeat_request(node, &c))
    };
    if let Some(r) = removed
        && r.id != node.s.id
    {
        let timeout = rpc_timeout(node);
        tokio::spawn(async move {
            let _ = call(&r.addr, &hb, timeout).await;
        });
    }
    node.kick.notify_one();
    commit(node).await
}

/// `DELETE /remove` on the leader.
pub async fn remove(node: &Shared, id: &str) -> Result<(), Response> {
    {
        let c = node.lock();
        if c.role != Role::Leader {
            return Err(not_leader(&c));
        }
    }
    log("store", &format!("received request to remove node {id}"));
    remove_from_config(node, id)
        .await
        .map_err(|error| Response::Error { error })?;
    log("store", &format!("node {id} removed successfully"));
    let mut c = node.lock();
    if !node.is_voter(&c) && c.role == Role::Leader {
        node.step_down(&mut c, "removed ourself, transitioning to follower");
    }
    Ok(())
}

/// A write on the leader: committed (majority heartbeat) before it is applied, so a
/// write racing the loss of quorum fails the way rqlite's does.
pub async fn execute(
    node: &Shared,
    stmts: &[Stmt],
    transaction: bool,
) -> Result<Vec<Value>, Response> {
    {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return Err(not_leader(&c));
        }
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
    }
    if let Err(e) = commit(node).await {
        return Err(Response::Results {
            results: vec![],
            error: Some(e),
        });
    }
    let mut c = node.lock();
    if c.role != Role::Leader {
        return Err(Response::Results {
            results: vec![],
            error: Some(LEADERSHIP_LOST.into()),
        });
    }
    let results = c.p.db.execute(stmts, transaction);
    node.persist(&mut c);
    Ok(results)
}

/// `-bootstrap-expect`: record a notifying node; once enough have notified,
/// bootstrap with all of them as voters (rqlite's `Store.Notify`).
fn on_notify(node: &Shared, id: String, addr: String) -> Response {
    let mut c = node.lock();
    if node.s.bootstrap_expect == 0 || c.bootstrapped || c.leader.is_some() {
        return Response::Ok;
    }
    c.notified.insert(
        id.clone(),
        Server {
            id,
            addr,
            api_addr: String::new(),
        },
    );
    if c.notified.len() < node.s.bootstrap_expect {
        return Response::Ok;
    }
    log(
        "store",
        &format!(
            "reached expected bootstrap count of {}, starting cluster bootstrap",
            node.s.bootstrap_expect
        ),
    );
    if c.has_state && !c.p.config.is_empty() {
        log(
            "store",
            "cluster bootstrap failed: bootstrap only works on new clusters",
        );
    } else {
        c.p.config = c.notified.values().cloned().collect();
        c.p.last_index = 1;
        c.p.last_term = 1;
        c.p.current_term = c.p.current_term.max(1);
        node.persist(&mut c);
        log(
            "store",
            &format!(
                "cluster bootstrap successful, servers: {}",
                config_string(&c.p.config)
            ),
        );
    }
    c.bootstrapped = true;
    Response::Ok
}

// ---------------------------------------------------------------------------
// Joining.

/// One join through `target`, following a follower's pointer to the leader.
async fn join_via(node: &Shared, target: &str) -> Result<String, String> {
    let req = Request::Join {
        id: node.s.id.clone(),
        addr: node.s.raft_adv.clone(),
        api_addr: node.s.api_url(),
        voter: true,
    };
    let mut addr = target.to_string();
    for _ in 0..5 {
        match call(&addr, &req, Duration::from_secs(10)).await {
            Err(e) => return Err(format!("{e:#}")),
            Ok(Response::Ok) => return Ok(addr),
            Ok(Response::NotLeader { leader }) if !leader.is_empty() && leader != addr => {
                addr = leader
            }
            Ok(Response::NotLeader { .. }) => return Err("no leader".into()),
            Ok(Response::Error { error }) => return Err(error),
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
        }
    }
    Err("too many redirects".into())
}

/// rqlite's joiner: every target in order, `attempts` rounds `interval` apart.
pub async fn join_loop(
    node: &Shared,
    targets: &[String],
    attempts: i64,
    interval: Duration,
) -> Result<String, String> {
    for i in 0..attempts {
        for t in targets {
            match join_via(node, t).await {
                Ok(leader) => return Ok(leader),
                Err(e) => log(
                    "cluster-join",
                    &format!("failed to join via node at {t}: {e}"),
                ),
            }
        }
        if i + 1 < attempts {
            log(
                "cluster-join",
                &format!(
                    "failed to join cluster at {targets:?}, sleeping {} before retry",
                    format_duration(interval)
                ),
            );
            tokio::time::sleep(interval).await;
        }
    }
    log(
        "cluster-join",
        &format!("failed to join cluster at {targets:?}, after {attempts} attempt(s)"),
    );
    Err("failed to join cluster".into())
}

/// rqlite's bootstrapper for `-bootstrap-expect`: try to join; failing that, notify
/// every target; repeat about every second until a leader is known.
pub async fn bootstrap_loop(
    node: &Shared,
    targets: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let give_up = Instant::now() + timeout;
    loop {
        if node.lock().leader.is_some() {
            log("cluster-bootstrap", "boot operation marked done");
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(format!(
                "bootstrap failed: timeout after {}",
                format_duration(timeout)
            ));
        }
        for t in targets {
            if let Ok(leader) = join_via(node, t).await {
                log(
                    "cluster-bootstrap",
                    &format!("succeeded directly joining cluster via node at {leader}"),
                );
                return Ok(());
            }
        }
        let req = Request::Notify {
            id: node.s.id.clone(),
            addr: node.s.raft_adv.clone(),
        };
        for t in targets {
            if let Err(e) = call(t, &req, Duration::from_secs(2)).await {
                log("cluster-bootstrap", &format!("failed to notify {t}: {e:#}"));
            }
        }
        let jitter = node
            .random_timeout()
            .saturating_sub(node.s.election_timeout);
        tokio::time::sleep(Duration::from_millis(500) + jitter.min(Duration::from_millis(500)))
            .await;
    }
}

/// On SIGTERM a leader hands over to the most recently heard voter, so another
/// node leads at once (rqlited: `stepping down as Leader before shutdown`).
pub async fn step_down_for_shutdown(node: &Shared) {
    let target = {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return;
        }
        log("rqlited", "stepping down as Leader before shutdown");
        let term = c.p.current_term;
        let best = node
            .peers(&c)
            .into_iter()
            .filter_map(|s| c.acks.get(&s.id).map(|t| (*t, s)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s);
        node.step_down(&mut c, "leadership transfer requested on shutdown");
        best.map(|s| (s, term))
    };
    if let Some((s, term)) = target {
        let _ = call(
            &s.addr,
            &Request::TimeoutNow { term },
            Duration::from_millis(100),
        )
        .await;
    }
}

/// `-raft-cluster-remove-shutdown`: ask the leader to remove this node.
pub async fn remove_self_for_shutdown(node: &Shared) {
    log("rqlited", "removing this node from cluster before shutdown");
    for _ in 0..20 {
        let leader = node.lock().leader.clone();
        if let Some((_, addr)) = leader {
            let req = Request::Remove {
                id: node.s.id.clone(),
            };
            if let Ok(Response::Ok) = call(&addr, &req, Duration::from_secs(2)).await {
                log("rqlited", "successfully removed this node from the cluster");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log(
        "rqlited",
        "failed to remove this node from the cluster before shutdown",
    );
}

/// Probes a node over the Raft port for `/nodes` and `/readyz`.
pub async fn ping(addr: &str, timeout: Duration) -> Result<(String, Duration), String> {
    let start = Instant::now();
    match call(addr, &Request::Ping, timeout).await {
        Ok(Response::Pong { api_addr, .. }) => Ok((api_addr, start.elapsed())),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Forwards a request to the leader's Raft port.
pub async fn forward(leader_addr: &str, req: &Request) -> Result<Response, String> {
    call(leader_addr, req, Duration::from_secs(10))
        .await
        .map_err(|e| format!("{e:#}"))
}
