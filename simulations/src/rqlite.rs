//! A model of rqlited's membership behaviour, as `shared/reference/rqlite.md` records it.
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

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;
use rq4d_protocol::stored::Stored;
use rq4d_protocol::{ClusterId, DbState, NodeId};

use crate::network::{Addresses, Network};

/// HTTP answers this long after rqlited starts.
pub const HTTP_UP_AFTER: Duration = Duration::from_millis(55);
/// The first `-join` attempt.
const FIRST_JOIN_AFTER: Duration = Duration::from_millis(50);
/// `-join-interval`.
const JOIN_INTERVAL: Duration = Duration::from_secs(3);
/// `-join-attempts`.
const JOIN_ATTEMPTS: u8 = 5;
/// A single-node cluster given `-join` exits this fast.
const SINGLE_NODE_REFUSAL_AFTER: Duration = Duration::from_millis(30);
/// `-bootstrap-expect-timeout`.
const BOOTSTRAP_EXPECT_TIMEOUT: Duration = Duration::from_secs(120);

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

    /// Starts rqlited on `host` with `-join join` (empty: none) and `-bootstrap-expect expect`
    /// (0: none).
    pub fn start(
        &mut self,
        host: usize,
        join: &[String],
        expect: u16,
        rng: &mut SmallRng,
        ctx: &Ctx,
    ) -> Vec<Effect> {
        let me = self.hosts[host].raft.clone();
        let join: Vec<String> = join.iter().filter(|t| **t != me).cloned().collect();
        self.next_pid += 1;
        let pid = self.next_pid;
        self.disks[host].raft_db = true;
        if let (Some(peers), Some(cluster)) =
            (self.disks[host].peers_json.take(), self.disks[host].cluster)
        {
            // rqlite's recovery: the configuration is replaced by the file's.
            self.clusters[cluster].voters = peers.into_iter().collect();
        }
        let mut effects = Vec::new();
        let phase = if expect > 0 && self.disks[host].cluster.is_none() {
            effects.push(Effect::FormAttempt {
                host,
                pid,
                after: FIRST_JOIN_AFTER,
            });
            Phase::Forming
        } else if join.is_empty() {
            match self.disks[host].cluster {
                Some(cluster) => {
                    // Resume from the stored configuration.
                    let c = &mut self.clusters[cluster];
                    if c.leader.is_none() {
                        let at = ctx.now + election_timeout(rng);
                        c.election_at = Some(c.election_at.map_or(at, |e| e.max(ctx.now)));
                    }
                    Phase::Member
                }
                None => {
                    let id = self.hosts[host].id.clone();
                    self.clusters.push(RaftCluster {
                        founder: host,
                        founded_at: ctx.now,
                        cluster_id: self.disks[host].stored.cluster_id(),
                        voters: BTreeMap::from([(id, me)]),
                        leader: None,
                        term: 0,
                        election_at: Some(
                            ctx.now + Duration::from_millis(rng.random_range(1200..1800)),
                        ),
                    });
                    let cluster = self.clusters.len() - 1;
                    self.disks[host].cluster = Some(cluster);
                    effects.push(Effect::Bootstrapped { host, cluster });
                    Phase::Member
                }
            }
        } else {
            let single = self.disks[host].cluster.is_some_and(|c| {
                self.clusters[c].voters.len() == 1
                    && self.clusters[c].voters.contains_key(&self.hosts[host].id)
            });
            if single {
                effects.push(Effect::Exit {
                    host,
                    pid,
                    after: SINGLE_NODE_REFUSAL_AFTER,
                    why: "node is the only node in a single-node cluster, joining other clusters not supported",
                });
                Phase::Exiting
            } else {
                effects.push(Effect::JoinAttempt {
                    host,
                    pid,
                    after: FIRST_JOIN_AFTER,
                });
                Phase::Joining { attempts: 0 }
            }
        };
        self.procs[host] = Some(Process {
            pid,
            started_at: ctx.now,
            join,
            expect,
            notified: BTreeMap::new(),
            phase,
        });
        effects
    }

    /// One round of rqlite's bootstrapper (`-bootstrap-expect`): join a target that answers with
    /// a reachable leader; failing that, notify every reachable target still forming, and this
    /// node itself. A node notified by `expect` distinct nodes bootstraps a cluster with all of
    /// them as voters; the notifiers it reaches take that configuration (the new leader would
    /// replicate it to them), the others join it later.
    pub fn form_attempt(
        &mut self,
        host: usize,
        pid: u64,
        rng: &mut SmallRng,
        ctx: &Ctx,
    ) -> Vec<Effect> {
        let Some(proc) = self.procs[host].as_ref().filter(|p| p.pid == pid) else {
            return Vec::new();
        };
        if proc.phase != Phase::Forming {
            return Vec::new();
        }
        if ctx.now.saturating_sub(proc.started_at) >= BOOTSTRAP_EXPECT_TIMEOUT {
            return self.give_up(host, pid, "clustering failure: bootstrap failed: timeout");
        }
        let join = proc.join.clone();
        if let Some(cluster) = self.reachable_leader(host, &join, ctx) {
            return self.admit(host, cluster);
        }
        if let Some(cluster) = self.configured_in(host, ctx) {
            // A cluster formed with this node as a voter while its notification travelled (or
            // while it restarted): its candidates ask this node for votes and its leader
            // replicates the configuration to it, as Raft does with any configured voter.
            self.disks[host].cluster = Some(cluster);
            if let Some(proc) = self.procs[host].as_mut() {
                proc.phase = Phase::Member;
            }
            return vec![Effect::Joined {
                host,
                cluster,
                had_data_of: None,
            }];
        }
        let mut recipients = vec![host];
        for target in &join {
            let Some(t) = ctx.addresses.host_of_raft(target) else {
                continue;
            };
            let forming = self.procs[t]
                .as_ref()
                .is_some_and(|p| p.phase == Phase::Forming);
            if self.hosts[t].raft == *target
                && forming
                && ctx.net.connected(host, t)
                && self.http_up(t, ctx.now)
            {
                recipients.push(t);
            }
        }
        let id = self.hosts[host].id.clone();
        let raft = self.hosts[host].raft.clone();
        let mut effects = Vec::new();
        for t in recipients {
            let Some(proc) = self.procs[t].as_mut().filter(|p| p.phase == Phase::Forming) else {
                continue;
            };
            proc.notified.insert(id.clone(), raft.clone());
            if proc.notified.len() >= usize::from(proc.expect) {
                effects.extend(self.bootstrap_notified(t, rng, ctx));
            }
        }
        effects.push(Effect::FormAttempt {
            host,
            pid,
            after: Duration::from_millis(500 + rng.random_range(0..500)),
        });
        effects
    }

    /// `host` reached its expected count of notifications: a new cluster with every notifier as
    /// a voter.
    fn bootstrap_notified(&mut self, host: usize, rng: &mut SmallRng, ctx: &Ctx) -> Vec<Effect> {
        let Some(proc) = self.procs[host].as_mut() else {
            return Vec::new();
        };
        proc.phase = Phase::Member;
        let voters = proc.notified.clone();
        // Several nodes may reach the count with the same notifiers: they bootstrap the same
        // configuration, which Raft takes as one cluster (rqlite.md).
        let same = (0..self.clusters.len()).find(|&c| {
            self.clusters[c].founder != host
                && self.clusters[c].voters.keys().eq(voters.keys())
                && self.clusters[c].cluster_id == self.disks[host].stored.cluster_id()
        });
        if let Some(cluster) = same {
            self.disks[host].cluster = Some(cluster);
            return vec![Effect::Joined {
                host,
                cluster,
                had_data_of: None,
            }];
        }
        self.clusters.push(RaftCluster {
            founder: host,
            founded_at: ctx.now,
            cluster_id: self.disks[host].stored.cluster_id(),
            voters: voters.clone(),
            leader: None,
            term: 0,
            election_at: Some(ctx.now + election_timeout(rng)),
        });
        let cluster = self.clusters.len() - 1;
        self.disks[host].cluster = Some(cluster);
        for id in voters.keys() {
            let Some(f) = self.hosts.iter().position(|h| h.id == *id) else {
                continue;
            };
            let forming = self.procs[f]
                .as_ref()
                .is_some_and(|p| p.phase == Phase::Forming);
            if f != host && forming && ctx.net.connected(host, f) {
                self.disks[f].cluster = Some(cluster);
                if let Some(proc) = self.procs[f].as_mut() {
                    proc.phase = Phase::Member;
                }
            }
        }
        vec![Effect::Bootstrapped { host, cluster }]
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

    /// One `-join` attempt: the targets in order; the first that answers with a reachable leader
    /// admits this node.
    pub fn join_attempt(&mut self, host: usize, pid: u64, ctx: &Ctx) -> Vec<Effect> {
        let Some(proc) = self.procs[host].as_ref().filter(|p| p.pid == pid) else {
            return Vec::new();
        };
        let Phase::Joining { attempts } = proc.phase else {
            return Vec::new();
        };
        let join = proc.join.clone();
        if let Some(cluster) = self.reachable_leader(host, &join, ctx) {
            return self.admit(host, cluster);
        }
        let attempts = attempts + 1;
        if attempts >= JOIN_ATTEMPTS {
            return self.give_up(host, pid, "clustering failure: failed to join cluster");
        }
        if let Some(proc) = self.procs[host].as_mut() {
            proc.phase = Phase::Joining { attempts };
        }
        vec![Effect::JoinAttempt {
            host,
            pid,
            after: JOIN_INTERVAL,
        }]
    }

    /// The newest cluster whose configuration lists `host` (its id at its current address) and
    /// one of whose running voters `host` can reach.
    fn configured_in(&self, host: usize, ctx: &Ctx) -> Option<usize> {
        let id = &self.hosts[host].id;
        let raft = &self.hosts[host].raft;
        (0..self.clusters.len()).rev().find(|&c| {
            self.clusters[c].voters.get(id) == Some(raft)
                && (0..self.hosts.len()).any(|v| {
                    v != host && self.participant(v) == Some(c) && ctx.net.connected(host, v)
                })
        })
    }

    /// The cluster of the first target in `join` that answers `host` with a leader `host` can
    /// reach: the leader itself admits a joiner (whatever address the configuration holds for
    /// it); a follower answers with the leader's address, so it must hear the leader.
    fn reachable_leader(&self, host: usize, join: &[String], ctx: &Ctx) -> Option<usize> {
        join.iter().find_map(|target| {
            let t = ctx.addresses.host_of_raft(target)?;
            if self.hosts[t].raft != *target
                || !ctx.net.connected(host, t)
                || !self.http_up(t, ctx.now)
            {
                return None;
            }
            let cluster = self.participant(t)?;
            let leader = self.clusters[cluster].leader?;
            if leader != t && (!self.member_ok(t) || !ctx.net.connected(t, leader)) {
                return None;
            }
            ctx.net.connected(host, leader).then_some(cluster)
        })
    }

    /// rqlited gives up clustering and exits at once.
    fn give_up(&mut self, host: usize, pid: u64, why: &'static str) -> Vec<Effect> {
        if let Some(proc) = self.procs[host].as_mut() {
            proc.phase = Phase::Exiting;
        }
        vec![Effect::Exit {
            host,
            pid,
            after: Duration::ZERO,
            why,
        }]
    }

    /// The leader adds `host` to `cluster`, replacing an entry with its id or its address.
    fn admit(&mut self, host: usize, cluster: usize) -> Vec<Effect> {
        let id = self.hosts[host].id.clone();
        let raft = self.hosts[host].raft.clone();
        let disk = &mut self.disks[host];
        let had_data_of = disk
            .cluster
            .filter(|c| *c != cluster && disk.stored.committed);
        disk.cluster = Some(cluster);
        let voters = &mut self.clusters[cluster].voters;
        if voters.get(&id) != Some(&raft) {
            voters.retain(|vid, vaddr| *vid != id && *vaddr != raft);
            voters.insert(id, raft);
        }
        if let Some(proc) = self.procs[host].as_mut() {
            proc.phase = Phase::Member;
        }
        vec![Effect::Joined {
            host,
            cluster,
            had_data_of,
        }]
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

    /// Elections: a leader that lost touch with a majority steps down; a cluster without a
    /// leader elects, once its election timeout has passed, a voter that reaches a majority.
    /// Returns the clusters whose leader changed.
    pub fn raft_tick(&mut self, rng: &mut SmallRng, ctx: &Ctx) -> Vec<(usize, Option<usize>)> {
        let mut changes = Vec::new();
        for c in 0..self.clusters.len() {
            // Voters by id: a voter at a stale address still votes and may lead, but the others
            // reach it only at its configured address.
            let voters: Vec<usize> = self.clusters[c]
                .voters
                .keys()
                .filter_map(|id| self.hosts.iter().position(|h| h.id == *id))
                .filter(|&h| self.participant(h) == Some(c))
                .collect();
            let size = self.clusters[c].voters.len();
            let majority_from = |h: usize| {
                voters
                    .iter()
                    .filter(|&&v| v == h || (self.member_ok(v) && ctx.net.connected(h, v)))
                    .count()
                    * 2
                    > size
            };
            let cluster = &self.clusters[c];
            if let Some(leader) = cluster.leader {
                if voters.contains(&leader) && majority_from(leader) {
                    continue;
                }
                let at = ctx.now + election_timeout(rng);
                let cluster = &mut self.clusters[c];
                cluster.leader = None;
                cluster.election_at = Some(at);
                changes.push((c, None));
                continue;
            }
            if voters.is_empty() {
                continue;
            }
            let Some(at) = cluster.election_at else {
                self.clusters[c].election_at = Some(ctx.now + election_timeout(rng));
                continue;
            };
            if ctx.now < at {
                continue;
            }
            let candidates: Vec<usize> = voters
                .iter()
                .copied()
                .filter(|&h| majority_from(h))
                .collect();
            let cluster = &mut self.clusters[c];
            if candidates.is_empty() {
                cluster.election_at = Some(ctx.now + election_timeout(rng));
                continue;
            }
            let winner = candidates[rng.random_range(0..candidates.len())];
            cluster.leader = Some(winner);
            cluster.term += 1;
            cluster.election_at = None;
            changes.push((c, Some(winner)));
        }
        changes
    }

    /// What `GET /status` answers on `host` (`None`: not running or HTTP not up yet).
    pub fn status(&self, host: usize, ctx: &Ctx) -> Option<Status> {
        if !self.http_up(host, ctx.now) {
            return None;
        }
        let proc = self.procs[host].as_ref()?;
        let id = &self.hosts[host].id;
        let unattached = Status {
            leader: None,
            term: 0,
            num_peers: 0,
            voter: false,
            is_leader: false,
        };
        let Some(c) = self.disks[host].cluster else {
            return Some(unattached);
        };
        let cluster = &self.clusters[c];
        if proc.phase != Phase::Member {
            // Joining with an old log: it serves its stored configuration meanwhile.
            return Some(unattached);
        }
        let Some(addr) = cluster.voters.get(id) else {
            // Removed: `voter: false`, no peers, no leader, forever.
            return Some(Status {
                term: cluster.term,
                ..unattached
            });
        };
        let num_peers = u16::try_from(cluster.voters.len().saturating_sub(1)).unwrap_or(u16::MAX);
        if *addr != self.hosts[host].raft && cluster.leader != Some(host) {
            // Resumed at a new address without -join: the leader replicates to the configured
            // address, so this node hears nothing; a candidate forever.
            return Some(Status {
                leader: None,
                term: cluster.term,
                num_peers,
                voter: true,
                is_leader: false,
            });
        }
        let leader = cluster
            .leader
            .filter(|&l| l == host || ctx.net.connected(host, l));
        Some(Status {
            leader: leader.map(|l| self.hosts[l].id.clone()),
            term: cluster.term,
            num_peers,
            voter: true,
            is_leader: leader == Some(host),
        })
    }
}

fn election_timeout(rng: &mut SmallRng) -> Duration {
    Duration::from_millis(rng.random_range(1000..2000))
}
