//! A model of rqlited's membership behaviour, as `docs/rqlited.md` records it.
//!
//! What is modelled is what decides whether rq4d makes one cluster: which start creates a
//! cluster, which joins succeed, when a cluster has a leader, what survives a restart, and the
//! corners the reference observed (a single-node cluster refuses `-join`; a node resumed at a new
//! address without `-join` stays a candidate; a node removed while running sits leaderless; a
//! join that finds nobody gives up after ~12 s), and `-bootstrap-expect N -join …`: each such
//! node tries to join, else notifies every target (itself included) about every second; a node
//! that has been notified by N distinct nodes bootstraps a cluster with all of them as voters,
//! and gives up after `-bootstrap-expect-timeout` (120 s). SQL, logs and snapshots are not modelled: a
//! node's data is the Raft cluster its disk belongs to.
//!
//! Raft traffic follows the network's partitions but not its random loss (TCP retransmits).
//!
//! This file holds the model's state — disks, processes, Raft clusters, what `/status` says —
//! and the plain transitions (stop, exit, wipe, remove); how rqlited gets into a cluster is in
//! `clustering`, and Raft's elections and `/status` in `raft`.

mod clustering;
mod raft;

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
    /// `-bootstrap-expect` (0: none).
    pub expect: u16,
    /// The nodes that notified it, by id, with their Raft addresses (`-bootstrap-expect`).
    pub notified: BTreeMap<NodeId, String>,
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
    /// The current leader's host.
    pub leader: Option<usize>,
    /// Raft term.
    pub term: u64,
    /// When the next election may succeed (election timeout).
    pub election_at: Option<Duration>,
}

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

    /// Removes `id` from `cluster`'s configuration (`DELETE /remove` on the leader).
    pub fn remove(&mut self, cluster: usize, id: &NodeId) -> bool {
        let removed = self.clusters[cluster].voters.remove(id).is_some();
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
