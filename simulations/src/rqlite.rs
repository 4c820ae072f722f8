//! A model of rqlited's membership behaviour, as `docs/rqlited.md` records it.
//!
//! What is modelled is what decides whether rq4d makes one cluster: which start creates a
//! cluster, which joins succeed, when a cluster has a leader, what survives a restart, and the
//! corners the reference observed (a single-node cluster refuses `-join`; a node resumed at a new
//! address without `-join` stays a candidate; a node removed while running sits leaderless; a
//! join that finds nobody gives up after ~12 s), and `-bootstrap-expect N -join …`: each such
//! node tries to join, else notifies its targets in order, up to the first it cannot reach, in
//! rounds 2–4 s apart (the first as soon as it listens); a node that has been notified by N
//! distinct nodes bootstraps a cluster with all of them as voters, and gives up after
//! `-bootstrap-expect-timeout` (120 s). SQL, logs and snapshots are not modelled: a
//! node's data is the Raft cluster its disk belongs to.
//!
//! Non-voters (`-raft-non-voter`) sit beside the voters in a configuration
//! ([`RaftCluster::non_voters`]): they join with the voter flag off, follow the leader, and count
//! for nothing — no vote, no candidacy, no quorum, no `-bootstrap-expect` notification. A join
//! of an id and address the configuration holds is ignored whatever the flag, so a change of
//! role is a removal and a join (`docs/rqlited.md`, "Auth, TLS and non-voters").
//!
//! Raft traffic follows the network's partitions but not its random loss (TCP retransmits).
//!
//! This file holds the model's state — disks, processes, Raft clusters, what `/status` says —
//! and the plain transitions (stop, exit, wipe, remove); how rqlited gets into a cluster is in
//! `clustering`, and Raft's elections and `/status` in `raft`.

mod clustering;
mod raft;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use rq4d_protocol::stored::Stored;
use rq4d_protocol::{ClusterId, DbState, NodeId};

use crate::network::{Addresses, Network};

/// HTTP answers this long after rqlited starts.
pub const HTTP_UP_AFTER: Duration = Duration::from_millis(55);

/// What a data directory holds: rqlited's state and rq4d's `rq4d.json` beside it — the same
/// [`Stored`] state, changed by the same transitions, as the daemon keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// `raft.db` exists (any start creates it, even a failed join).
    pub raft_db: bool,
    /// The Raft cluster whose log this is (index into [`Rqlite::clusters`]).
    pub cluster: Option<usize>,
    /// rq4d's state file.
    pub stored: Stored,
    /// `raft/peers.json`, written by the supervisor for a recovery; applied and deleted by the
    /// next start.
    pub peers_json: Option<Vec<(NodeId, String)>>,
}

impl Disk {
    /// [`Stored::has_data`] of this disk.
    pub fn has_data(&self) -> bool {
        self.stored.has_data(self.raft_db)
    }

    /// [`Stored::db_state`] of this disk.
    pub fn db_state(&self) -> DbState {
        self.stored.db_state(self.raft_db)
    }
}

/// Where a running rqlited is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Trying `-join`; `attempts` made so far.
    Joining {
        /// Attempts made.
        attempts: u8,
    },
    /// `-bootstrap-expect`: joining or notifying until a cluster forms.
    Forming,
    /// Running on a Raft log (bootstrapped, resumed or joined).
    Member,
    /// About to exit (refused or gave up); the exit event is scheduled.
    Exiting,
}

/// One rqlited process.
#[derive(Clone, Debug)]
pub struct Process {
    /// Distinguishes lives, so stale events of a stopped process are ignored.
    pub pid: u64,
    /// When it was started.
    pub started_at: Duration,
    /// Its `-join` list (own address removed).
    pub join: Vec<String>,
    /// Its `-join` list as given, in order: whom `-bootstrap-expect`'s rounds notify.
    pub notify: Vec<String>,
    /// `-bootstrap-expect` (0: none).
    pub expect: u16,
    /// The nodes that notified it, by id, with their Raft addresses (`-bootstrap-expect`).
    pub notified: BTreeMap<NodeId, String>,
    /// Started as a voter (`false`: `-raft-non-voter`): the flag its joins carry.
    pub voter: bool,
    /// What it is doing.
    pub phase: Phase,
}

/// One Raft cluster: created by a bootstrap, joined by others.
#[derive(Clone, Debug)]
pub struct RaftCluster {
    /// Host whose rqlited bootstrapped it.
    pub founder: usize,
    /// When.
    pub founded_at: Duration,
    /// The rq4d cluster id the founder recorded before starting (its seed's minted id).
    pub cluster_id: Option<ClusterId>,
    /// The configuration: voter id → Raft address.
    pub voters: BTreeMap<NodeId, String>,
    /// The configuration's non-voters, id → Raft address: replicated to, never counted.
    pub non_voters: BTreeMap<NodeId, String>,
    /// The current leader's host.
    pub leader: Option<usize>,
    /// Raft term.
    pub term: u64,
    /// When the next election may succeed (election timeout).
    pub election_at: Option<Duration>,
}

impl RaftCluster {
    /// Whether `id` is in the configuration at `addr`, as a voter or a non-voter: a join of it
    /// from there changes nothing.
    pub fn holds(&self, id: &NodeId, addr: &str) -> bool {
        self.voters.get(id).map(String::as_str) == Some(addr)
            || self.non_voters.get(id).map(String::as_str) == Some(addr)
    }

    /// Members of the configuration, voters and non-voters.
    pub fn members(&self) -> usize {
        self.voters.len() + self.non_voters.len()
    }
}

/// What rq4d asked of a cluster's configuration (for the judge: see [`Reconfiguration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The leader's reaper removed a member (`/remove`).
    Removed,
    /// A node removed itself to change its role (`/remove` of its own id).
    Left,
    /// A node was admitted by a join (`voter`: with the voter flag).
    Joined {
        /// The joiner's flag.
        voter: bool,
    },
    /// `raft/peers.json` replaced the configuration at a start.
    Recovered,
}

/// A change of a cluster's configuration made at rq4d's request, with whether the cluster
/// could keep or elect a leader just before and just after it — under the same processes and
/// the same network, so that the difference is the change's alone, never a fault's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconfiguration {
    /// The cluster.
    pub cluster: usize,
    /// The node whose membership changed.
    pub subject: NodeId,
    /// What was done.
    pub change: Change,
    /// [`Rqlite::majority`] before.
    pub before: Majority,
    /// [`Rqlite::majority`] after.
    pub after: Majority,
}

/// How much of a cluster's configuration a voter can gather: the most voters that any running
/// voter reaches (itself included), out of the configuration's voters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Majority {
    /// The most live voters one running voter reaches, itself included.
    pub reached: usize,
    /// Voters in the configuration.
    pub voters: usize,
}

impl Majority {
    /// More than half the configuration: the cluster can keep or elect a leader.
    pub fn holds(&self) -> bool {
        self.reached * 2 > self.voters
    }
}

/// rqlited's 500 to a `/remove` it cannot pass on (`leader address: leader not found`): it
/// knows no leader it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderNotFound;

/// What `/status` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The leader's node id, as this node sees it.
    pub leader: Option<NodeId>,
    /// Raft term.
    pub term: u64,
    /// Other voters in the configuration this node believes in.
    pub num_peers: u16,
    /// Whether this node votes.
    pub voter: bool,
    /// `store.raft.state == "Leader"`.
    pub is_leader: bool,
}

/// Something the model needs done later, or wants the world to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Call [`Rqlite::form_attempt`] for this process after the delay.
    FormAttempt {
        /// Host.
        host: usize,
        /// Process.
        pid: u64,
        /// Delay.
        after: Duration,
    },
    /// Call [`Rqlite::join_attempt`] for this process after the delay.
    JoinAttempt {
        /// Host.
        host: usize,
        /// Process.
        pid: u64,
        /// Delay.
        after: Duration,
    },
    /// The process exits after the delay (call [`Rqlite::exit`]).
    Exit {
        /// Host.
        host: usize,
        /// Process.
        pid: u64,
        /// Delay.
        after: Duration,
        /// Why, for the trace.
        why: &'static str,
    },
    /// A cluster was bootstrapped.
    Bootstrapped {
        /// Host.
        host: usize,
        /// Cluster.
        cluster: usize,
    },
    /// A cluster's configuration changed at rq4d's request (a join, a `peers.json`).
    Reconfigured(Reconfiguration),
    /// A node was added to a cluster's configuration by a join.
    Joined {
        /// Host.
        host: usize,
        /// Cluster.
        cluster: usize,
        /// The cluster its disk held before, if it was committed data of another cluster.
        had_data_of: Option<usize>,
    },
}

/// Identity of the hosts as rqlited knows them.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// `-node-id`.
    pub id: NodeId,
    /// `-raft-adv-addr`.
    pub raft: String,
}

/// All rqlited processes, disks and clusters of a world.
#[derive(Default)]
pub struct Rqlite {
    /// By host.
    pub hosts: Vec<HostInfo>,
    /// By host.
    pub disks: Vec<Disk>,
    /// By host.
    pub procs: Vec<Option<Process>>,
    /// Every cluster ever bootstrapped.
    pub clusters: Vec<RaftCluster>,
    next_pid: u64,
}

/// The parts of the world the model looks at.
pub struct Ctx<'a> {
    /// Partitions.
    pub net: &'a Network,
    /// Who holds which address.
    pub addresses: &'a Addresses,
    /// Virtual time.
    pub now: Duration,
}

impl Rqlite {
    /// Adds a host with an empty disk.
    pub fn add_host(&mut self, info: HostInfo) -> usize {
        self.hosts.push(info);
        self.disks.push(Disk::default());
        self.procs.push(None);
        self.hosts.len() - 1
    }

    /// True when `host`'s rqlited runs and is, at its current address, a voter of the cluster its
    /// disk holds: the nodes that count for a quorum.
    pub fn member_ok(&self, host: usize) -> bool {
        let Some(Some(proc)) = self.procs.get(host) else {
            return false;
        };
        if proc.phase != Phase::Member {
            return false;
        }
        let Some(cluster) = self.disks[host].cluster else {
            return false;
        };
        self.clusters[cluster].voters.get(&self.hosts[host].id) == Some(&self.hosts[host].raft)
    }

    /// The cluster `host`'s rqlited runs as a voter of: on its log, and listed by id in the
    /// configuration. Such a voter votes and may lead even at a stale address (Raft knows
    /// members by id); only the others reach it through the configured address.
    pub fn participant(&self, host: usize) -> Option<usize> {
        let proc = self.procs.get(host)?.as_ref()?;
        if proc.phase != Phase::Member {
            return None;
        }
        let cluster = self.disks[host].cluster?;
        self.clusters[cluster]
            .voters
            .contains_key(&self.hosts[host].id)
            .then_some(cluster)
    }

    /// True when `host`'s rqlited runs and is, at its current address, a non-voter of the
    /// cluster its disk holds: it follows the leader and serves reads, and counts for nothing.
    pub fn non_voter_ok(&self, host: usize) -> bool {
        let Some(Some(proc)) = self.procs.get(host) else {
            return false;
        };
        if proc.phase != Phase::Member {
            return false;
        }
        let Some(cluster) = self.disks[host].cluster else {
            return false;
        };
        self.clusters[cluster].non_voters.get(&self.hosts[host].id) == Some(&self.hosts[host].raft)
    }

    /// The cluster `host`'s rqlited follows as a member at its current address, voter or
    /// non-voter: the members a leader replicates to.
    pub fn follows(&self, host: usize) -> Option<usize> {
        (self.member_ok(host) || self.non_voter_ok(host))
            .then(|| self.disks[host].cluster)
            .flatten()
    }

    /// The hosts that run as voters of `cluster` (by id: see [`Rqlite::participant`]).
    pub(crate) fn voter_hosts(&self, cluster: usize) -> Vec<usize> {
        self.clusters[cluster]
            .voters
            .keys()
            .filter_map(|id| self.hosts.iter().position(|h| h.id == *id))
            .filter(|&h| self.participant(h) == Some(cluster))
            .collect()
    }

    /// The live voters voter `h` reaches, itself included: those at their configured address
    /// that the network joins to it both ways (Raft's requests and answers).
    fn reached_from(&self, h: usize, voters: &[usize], ctx: &Ctx) -> usize {
        voters
            .iter()
            .filter(|&&v| v == h || (self.member_ok(v) && ctx.net.connected(h, v)))
            .count()
    }

    /// How much of `cluster`'s configuration its best-placed running voter gathers now: the
    /// count Raft's elections and its leader's lease rest on.
    pub fn majority(&self, cluster: usize, ctx: &Ctx) -> Majority {
        let voters = self.voter_hosts(cluster);
        Majority {
            reached: voters
                .iter()
                .map(|&h| self.reached_from(h, &voters, ctx))
                .max()
                .unwrap_or(0),
            voters: self.clusters[cluster].voters.len(),
        }
    }

    /// `DELETE /remove` of `host`'s own id, sent to its own rqlited, which passes it to the
    /// leader it knows: `Err` (rqlited's 500) when it knows none it can reach; `Ok(None)` when
    /// the id was not in the configuration (rqlited's 200 with nothing done).
    pub fn leave(
        &mut self,
        host: usize,
        ctx: &Ctx,
    ) -> Result<Option<Reconfiguration>, LeaderNotFound> {
        let known = self.status(host, ctx).is_some_and(|s| s.leader.is_some());
        let Some(cluster) = self.disks[host].cluster.filter(|_| known) else {
            return Err(LeaderNotFound);
        };
        let id = self.hosts[host].id.clone();
        Ok(self.remove_as(cluster, &id, Change::Left, ctx))
    }

    /// [`Rqlite::remove`], recorded as `change` with the majority before and after.
    pub fn remove_as(
        &mut self,
        cluster: usize,
        id: &NodeId,
        change: Change,
        ctx: &Ctx,
    ) -> Option<Reconfiguration> {
        let before = self.majority(cluster, ctx);
        if !self.remove(cluster, id) {
            return None;
        }
        Some(Reconfiguration {
            cluster,
            subject: id.clone(),
            change,
            before,
            after: self.majority(cluster, ctx),
        })
    }

    /// Stops (or kills) `host`'s rqlited. A leader steps down at once.
    pub fn stop(&mut self, host: usize) {
        self.procs[host] = None;
        for cluster in &mut self.clusters {
            if cluster.leader == Some(host) {
                cluster.leader = None;
            }
        }
    }

    /// The process exits by itself (refusal, failed joins).
    pub fn exit(&mut self, host: usize, pid: u64) -> bool {
        if self.procs[host].as_ref().is_some_and(|p| p.pid == pid) {
            self.stop(host);
            return true;
        }
        false
    }

    /// Deletes rqlited's state (volatile wipe, or a lost volume).
    pub fn wipe(&mut self, host: usize) {
        self.disks[host] = Disk::default();
    }

    /// Removes `id`, voter or non-voter, from `cluster`'s configuration (`DELETE /remove` on
    /// the leader).
    pub fn remove(&mut self, cluster: usize, id: &NodeId) -> bool {
        let removed = self.clusters[cluster].voters.remove(id).is_some()
            | self.clusters[cluster].non_voters.remove(id).is_some();
        if removed
            && let Some(leader) = self.clusters[cluster].leader
            && self.hosts[leader].id == *id
        {
            self.clusters[cluster].leader = None;
        }
        removed
    }

    fn http_up(&self, host: usize, now: Duration) -> bool {
        self.procs[host]
            .as_ref()
            .is_some_and(|p| now >= p.started_at + HTTP_UP_AFTER)
    }
}
