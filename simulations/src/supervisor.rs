//! The daemon's supervisor, replayed against the rqlite model.
//!
//! This mirrors `daemon/src/supervisor.rs` rule for rule — which decision starts rqlited with
//! which `-join`, when a leaderless rqlited is restarted with `-join`, the restart backoff, what
//! is reported back into the node's card, when the state counts as data (`daemon/src/state.rs`'s
//! `commit`), and the leader's reaper — so the simulation checks the protocol together with the
//! supervisor the daemon actually runs. Keep the constants equal to the daemon's.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rq4d_protocol::node::MemberInfo;
use rq4d_protocol::reaper::{self, Voter};
use rq4d_protocol::{ClusterId, DbState, Decision, NodeId, Running};

use crate::rqlite::{Ctx, Effect, Rqlite, Status};

/// As in the daemon: a running rqlited may sit without a leader this long before a `-join` restart.
const REJOIN_AFTER: Duration = Duration::from_secs(10);
/// As in the daemon: no rejoin restart before rqlited's own join retries are over.
const REJOIN_NOT_BEFORE: Duration = Duration::from_secs(15);
/// As in the daemon: poll period once ready.
pub const POLL_READY: Duration = Duration::from_secs(1);
/// As in the daemon: poll period while not ready.
pub const POLL_STARTING: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const STABLE_RUN: Duration = Duration::from_secs(60);
const REAP_EVERY: Duration = Duration::from_secs(2);
/// As in the daemon: how often a healthy rqlited's voters are recorded.
const VOTERS_EVERY: Duration = Duration::from_secs(5);
/// As in the daemon: how long the reaper waits for its last removal to show before moving on
/// (the removed node may have come back and rejoined).
const PENDING_REMOVAL_FOR: Duration = Duration::from_secs(10);

/// What the node wants rqlited to do (the daemon's `Directive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The coordinator's decision.
    pub decision: Decision,
    /// The cluster this node belongs to, per its card.
    pub cluster_id: Option<ClusterId>,
    /// The formation of that cluster this node is a founder of, per its card.
    pub formation: Option<u16>,
    /// The proposals this node acknowledged.
    pub acked: Vec<ClusterId>,
    /// The founders of its formation, once all are known (`Node::founders`).
    pub founders: Vec<(NodeId, String)>,
}

/// What the supervisor did that the world must carry out or record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Feed into the node with `set_db`.
    Db(DbState),
    /// Schedule these model effects.
    Effects(Vec<Effect>),
    /// rqlited was started with this `-join` list (and `-bootstrap-expect`, when not 0).
    Started(Vec<String>, u16),
    /// rqlited was stopped, leaderless too long, for a restart with `-join` (or, with no
    /// targets, with `peers.json`).
    Rejoin,
    /// The data was wiped (volatile mode).
    Wiped,
    /// The leader removed a voter.
    Removed(NodeId),
    /// The recorded voters changed: feed into the node with `set_stored_voters`.
    Voters(Vec<(NodeId, String)>),
    /// `raft/peers.json` was written for a recovery.
    PeersJson(Vec<(NodeId, String)>),
}

/// The supervisor of one host's rqlited.
#[derive(Clone, Debug)]
pub struct Supervisor {
    started_at: Duration,
    daemon_started: Duration,
    leaderless_since: Option<Duration>,
    backoff: Duration,
    next_start: Duration,
    db: DbState,
    /// `/readyz` answered 200 at the last poll.
    pub ready: bool,
    pending_removal: Option<(NodeId, Duration)>,
    last_reap: Duration,
    last_voters_check: Option<Duration>,
    /// The directive last acted on.
    pub acted: Option<Directive>,
    /// As in the daemon: the formation the running rqlited was started for.
    forming_for: Option<(ClusterId, u16)>,
}

/// What one supervisor call may look at and change.
pub struct SupCtx<'a> {
    /// This host.
    pub host: usize,
    /// The rqlite model.
    pub rqlite: &'a mut Rqlite,
    /// Network, addresses, time.
    pub ctx: Ctx<'a>,
    /// The world's generator (election timeouts on resume).
    pub rng: &'a mut SmallRng,
    /// `--volatile`.
    pub volatile: bool,
    /// `--reap-after`.
    pub reap_after: Duration,
    /// The node's gossip membership.
    pub members: &'a BTreeMap<NodeId, MemberInfo>,
}

impl Supervisor {
    /// A supervisor for a daemon started at `now` on a disk in state `db`.
    pub fn new(now: Duration, db: DbState) -> Self {
        Self {
            started_at: now,
            daemon_started: now,
            leaderless_since: None,
            backoff: BACKOFF_MIN,
            next_start: now,
            db,
            ready: false,
            pending_removal: None,
            last_reap: now,
            last_voters_check: None,
            acted: None,
            forming_for: None,
        }
    }

    /// When to poll next.
    pub fn poll_every(&self) -> Duration {
        if self.ready {
            POLL_READY
        } else {
            POLL_STARTING
        }
    }

    fn set_db(&mut self, db: DbState, out: &mut Vec<Report>) {
        if self.db != db {
            self.db = db.clone();
            out.push(Report::Db(db));
        }
    }

    /// The daemon's `act`: makes rqlited do what the directive says, if it does not already.
    pub fn act(&mut self, directive: &Directive, s: &mut SupCtx) -> Vec<Report> {
        let mut out = Vec::new();
        // As in the daemon: the cluster (and formation) this node is bound to is recorded
        // before it has data, so a restarted container does not forget it; never once committed.
        let stored = &mut s.rqlite.disks[s.host].stored;
        if let Some(cluster) = directive.cluster_id
            && !matches!(directive.decision, Decision::Wipe { .. })
        {
            stored.bind(cluster, directive.formation);
        }
        stored.record_acked(&directive.acked);
        if let Some((cluster, founders)) = self.forming_for
            && s.rqlite.procs[s.host].is_some()
            && (directive.cluster_id, directive.formation) != (Some(cluster), Some(founders))
            && !s.rqlite.disks[s.host].has_data()
        {
            // As in the daemon: a formation given up stops its rqlited.
            self.stop(s, &mut out);
        }
        let running = s.rqlite.procs[s.host].is_some();
        match &directive.decision {
            Decision::Bootstrap {
                cluster_id,
                expect,
                targets,
            } if !running => {
                // As in the daemon: not committed before the start (nothing exists until every
                // founder has notified); committed once a voter.
                self.start(targets, *expect, s, &mut out);
                if s.rqlite.procs[s.host].is_some() {
                    self.forming_for = Some((*cluster_id, *expect));
                }
            }
            Decision::Join { targets, .. } if !running => self.start(targets, 0, s, &mut out),
            Decision::Join { targets, .. } if self.should_rejoin(s.ctx.now) => {
                out.push(Report::Rejoin);
                self.stop(s, &mut out);
                self.start(targets, 0, s, &mut out);
            }
            Decision::Resume { join, peers } if !running => self.resume(join, peers, s, &mut out),
            Decision::Resume { join, peers }
                if !peers.is_empty() && self.should_rejoin(s.ctx.now) =>
            {
                // As in the daemon: a leaderless voter whose voters all moved restarts with
                // `peers.json`.
                out.push(Report::Rejoin);
                self.stop(s, &mut out);
                self.resume(join, peers, s, &mut out);
            }
            Decision::Wipe { .. } if s.volatile => {
                self.stop(s, &mut out);
                s.rqlite.wipe(s.host);
                out.push(Report::Wiped);
                self.set_db(DbState::Empty, &mut out);
            }
            _ => {}
        }
        out
    }

    /// As in the daemon: starts rqlited on its data, writing `raft/peers.json` first when every
    /// voter moved.
    fn resume(
        &mut self,
        join: &[String],
        peers: &[(NodeId, String)],
        s: &mut SupCtx,
        out: &mut Vec<Report>,
    ) {
        if !peers.is_empty() && s.ctx.now >= self.next_start {
            s.rqlite.disks[s.host].peers_json = Some(peers.to_vec());
            out.push(Report::PeersJson(peers.to_vec()));
        }
        self.start(join, 0, s, out);
    }

    fn should_rejoin(&self, now: Duration) -> bool {
        now.saturating_sub(self.started_at) >= REJOIN_NOT_BEFORE
            && self
                .leaderless_since
                .is_some_and(|since| now.saturating_sub(since) >= REJOIN_AFTER)
    }

    fn start(&mut self, join: &[String], expect: u16, s: &mut SupCtx, out: &mut Vec<Report>) {
        if s.ctx.now < self.next_start {
            return;
        }
        let effects = s.rqlite.start(s.host, join, expect, s.rng, &s.ctx);
        out.push(Report::Started(join.to_vec(), expect));
        out.push(Report::Effects(effects));
        self.started_at = s.ctx.now;
        self.leaderless_since = None;
        self.set_db(DbState::Starting, out);
    }

    fn stop(&mut self, s: &mut SupCtx, out: &mut Vec<Report>) {
        self.forming_for = None;
        s.rqlite.stop(s.host);
        self.ready = false;
        let db = s.rqlite.disks[s.host].db_state();
        self.set_db(db, out);
    }

    fn schedule_restart(&mut self, now: Duration) {
        if now.saturating_sub(self.started_at) >= STABLE_RUN {
            self.backoff = BACKOFF_MIN;
        }
        self.next_start = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// rqlited exited by itself: restart later with backoff; report what the disk says.
    pub fn exited(&mut self, s: &mut SupCtx) -> Vec<Report> {
        self.forming_for = None;
        let mut out = Vec::new();
        self.schedule_restart(s.ctx.now);
        self.ready = false;
        let db = s.rqlite.disks[s.host].db_state();
        self.set_db(db, &mut out);
        out
    }

    /// The daemon's `poll`: reads `/status`, publishes it, commits, and reaps when leading.
    pub fn poll(&mut self, directive: &Directive, s: &mut SupCtx) -> Vec<Report> {
        let mut out = Vec::new();
        if s.rqlite.procs[s.host].is_none() {
            return out;
        }
        let status = s.rqlite.status(s.host, &s.ctx);
        self.ready = status
            .as_ref()
            .is_some_and(|st| st.leader.is_some() && st.voter);
        let Some(status) = status else {
            return out;
        };
        let healthy = status.voter && status.leader.is_some();
        let now = s.ctx.now;
        if status.voter {
            // As in the daemon: a voter's state is committed, leader or not.
            let stored = &mut s.rqlite.disks[s.host].stored;
            stored.commit(directive.cluster_id, voters_of(&status));
            if stored.voters.is_empty()
                && !directive.founders.is_empty()
                && stored.record_voters(&directive.founders)
            {
                // As in the daemon: a formed cluster's first configuration is its founders.
                out.push(Report::Voters(directive.founders.clone()));
            }
        }
        if healthy {
            self.leaderless_since = None;
        } else {
            self.leaderless_since.get_or_insert(now);
        }
        self.set_db(
            DbState::Running(Running {
                leader: status.leader.clone(),
                term: status.term,
                voters: voters_of(&status),
                voter: status.voter,
            }),
            &mut out,
        );
        let due = self
            .last_voters_check
            .is_none_or(|at| now.saturating_sub(at) >= VOTERS_EVERY);
        if healthy && due {
            self.last_voters_check = Some(now);
            if let Some(cluster) = s.rqlite.disks[s.host].cluster {
                let voters: Vec<(NodeId, String)> = s.rqlite.clusters[cluster]
                    .voters
                    .iter()
                    .map(|(id, addr)| (id.clone(), addr.clone()))
                    .collect();
                if s.rqlite.disks[s.host].stored.record_voters(&voters) {
                    out.push(Report::Voters(voters));
                }
            }
        }
        if status.is_leader && now.saturating_sub(self.last_reap) >= REAP_EVERY {
            self.last_reap = now;
            if let Some(removed) = self.reap(s) {
                out.push(Report::Removed(removed));
            }
        }
        out
    }

    /// Removes one voter that gossip has seen dead for `reap_after`, if quorum allows.
    fn reap(&mut self, s: &mut SupCtx) -> Option<NodeId> {
        let cluster = s.rqlite.disks[s.host].cluster?;
        let config: Vec<NodeId> = s.rqlite.clusters[cluster].voters.keys().cloned().collect();
        if let Some((pending, since)) = &self.pending_removal
            && s.ctx.now.saturating_sub(*since) < PENDING_REMOVAL_FOR
            && config.contains(pending)
        {
            return None;
        }
        self.pending_removal = None;
        let me = s.rqlite.hosts[s.host].id.clone();
        let voters: Vec<Voter> = config
            .into_iter()
            .map(|id| {
                let down_since = if id == me {
                    None
                } else {
                    match s.members.get(&id) {
                        Some(m) if m.alive => None,
                        Some(m) => Some(m.since),
                        None => Some(self.daemon_started),
                    }
                };
                // The model's rqlite does not refuse joiners at a taken address, so the
                // daemon's address-taken shortcut has nothing to speed up here.
                Voter {
                    id,
                    down_since,
                    address_taken: false,
                }
            })
            .collect();
        let victim = reaper::pick_removal(&voters, s.ctx.now, s.reap_after)?;
        if s.rqlite.remove(cluster, &victim) {
            self.pending_removal = Some((victim.clone(), s.ctx.now));
            return Some(victim);
        }
        None
    }
}

/// As in the daemon: this node and its peers when it votes.
fn voters_of(status: &Status) -> u16 {
    if status.voter {
        status.num_peers.saturating_add(1)
    } else {
        0
    }
}
