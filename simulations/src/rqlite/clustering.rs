//! How rqlited gets into a cluster: a start (resume, bootstrap alone, `-join`,
//! `-bootstrap-expect`, as a voter or with `-raft-non-voter`), the rounds of `-join` attempts and
//! of the bootstrapper's notifications, admission by a leader (rqlite's join rules), and giving
//! up.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::raft::election_timeout;
use super::{
    Change, Ctx, Effect, HTTP_UP_AFTER, Phase, Process, RaftCluster, Reconfiguration, Rqlite,
};

/// The first `-join` attempt.
const FIRST_JOIN_AFTER: Duration = Duration::from_millis(50);
/// `-join-interval` as rq4d starts a joining rqlited (rqlited's default is 3 s).
const JOIN_INTERVAL: Duration = Duration::from_secs(1);
/// `-join-attempts` as rq4d starts a joining rqlited (rqlited's default is 5): about the same
/// 12 s of retries.
const JOIN_ATTEMPTS: u8 = 13;
/// A single-node cluster given `-join` exits this fast.
const SINGLE_NODE_REFUSAL_AFTER: Duration = Duration::from_millis(30);
/// `-bootstrap-expect-timeout`.
const BOOTSTRAP_EXPECT_TIMEOUT: Duration = Duration::from_secs(120);
/// A start its flags make impossible exits this fast.
const FATAL_AFTER: Duration = Duration::from_millis(10);

impl Rqlite {
    /// Starts rqlited on `host` with `-join join` (empty: none), `-bootstrap-expect expect`
    /// (0: none), and `-raft-non-voter` unless `voter`.
    pub fn start(
        &mut self,
        host: usize,
        join: &[String],
        expect: u16,
        voter: bool,
        rng: &mut SmallRng,
        ctx: &Ctx,
    ) -> Vec<Effect> {
        let me = self.hosts[host].raft.clone();
        let notify = join.to_vec();
        let join: Vec<String> = join.iter().filter(|t| **t != me).cloned().collect();
        self.next_pid += 1;
        let pid = self.next_pid;
        self.disks[host].raft_db = true;
        let mut effects = Vec::new();
        if let (Some(peers), Some(cluster)) =
            (self.disks[host].peers_json.take(), self.disks[host].cluster)
        {
            // rqlite's recovery: the configuration is replaced by the file's (rq4d writes its
            // voters only).
            let before = self.majority(cluster, ctx);
            self.clusters[cluster].voters = peers.into_iter().collect();
            self.clusters[cluster].non_voters.clear();
            effects.push(Effect::Reconfigured(Reconfiguration {
                cluster,
                subject: self.hosts[host].id.clone(),
                change: Change::Recovered,
                before,
                after: self.majority(cluster, ctx),
            }));
        }
        let fatal = if voter {
            None
        } else if expect > 0 {
            Some("bootstrapping only applicable to voting nodes")
        } else if join.is_empty() && self.disks[host].cluster.is_none() {
            Some("cannot create a new non-voting node without joining it to an existing cluster")
        } else {
            None
        };
        let phase = if let Some(why) = fatal {
            effects.push(Effect::Exit {
                host,
                pid,
                after: FATAL_AFTER,
                why,
            });
            Phase::Exiting
        } else if expect > 0 && self.disks[host].cluster.is_none() {
            effects.push(Effect::FormAttempt {
                host,
                pid,
                after: HTTP_UP_AFTER + Duration::from_micros(rng.random_range(1000..2000)),
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
                        non_voters: BTreeMap::new(),
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
            // The whole configuration, non-voters included, is this node alone.
            let single = self.disks[host].cluster.is_some_and(|c| {
                self.clusters[c].members() == 1
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
            notify,
            expect,
            notified: BTreeMap::new(),
            voter,
            phase,
        });
        effects
    }

    /// One round of rqlite's bootstrapper (`-bootstrap-expect`, v8's `Bootstrapper.Boot`): join
    /// a target that answers with a reachable leader; failing that, notify the targets in order
    /// up to the first that cannot be reached. The first round comes 1–2 ms after the process
    /// listens, the next 2–4 s later. A node notified by `expect` distinct nodes bootstraps a
    /// cluster with all of them as voters; the notifiers it reaches take that configuration (the
    /// new leader would replicate it to them), the others join it later.
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
            return self.admit(host, cluster, ctx);
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
        // rqlite's bootstrapper notifies its targets in order and ends the round at the first
        // that fails: one not yet listening keeps every target after it from hearing of this
        // node until the next round.
        let mut recipients = Vec::new();
        for target in &proc.notify {
            let Some(t) = ctx.addresses.host_of_raft(target).filter(|&t| {
                self.hosts[t].raft == *target
                    && (t == host || ctx.net.connected(host, t))
                    && self.http_up(t, ctx.now)
            }) else {
                break;
            };
            if self.procs[t]
                .as_ref()
                .is_some_and(|p| p.phase == Phase::Forming)
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
            after: Duration::from_millis(rng.random_range(2000..4000)),
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
        // configuration, which Raft takes as one cluster (docs/rqlited.md, "Startup").
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
            non_voters: BTreeMap::new(),
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
            return self.admit(host, cluster, ctx);
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
    /// it); a follower — voter or non-voter — answers with the leader's address, so it must
    /// hear the leader.
    fn reachable_leader(&self, host: usize, join: &[String], ctx: &Ctx) -> Option<usize> {
        join.iter().find_map(|target| {
            let t = ctx.addresses.host_of_raft(target)?;
            if self.hosts[t].raft != *target
                || !ctx.net.connected(host, t)
                || !self.http_up(t, ctx.now)
            {
                return None;
            }
            let cluster = self.participant(t).or_else(|| self.follows(t))?;
            let leader = self.clusters[cluster].leader?;
            if leader != t && (self.follows(t).is_none() || !ctx.net.connected(t, leader)) {
                return None;
            }
            (ctx.net.connected(host, leader)
                && !self.address_held_by_another(cluster, host)
                && self.commits_join(cluster, leader, host, ctx))
            .then_some(cluster)
        })
    }

    /// True when `cluster`'s configuration holds `host`'s Raft address under another id:
    /// rqlited removes only an entry of the joiner's own id before adding it, and Raft refuses
    /// the duplicate address ("found duplicate address in configuration"), so the join fails
    /// until that entry goes.
    fn address_held_by_another(&self, cluster: usize, host: usize) -> bool {
        let id = &self.hosts[host].id;
        let raft = &self.hosts[host].raft;
        let c = &self.clusters[cluster];
        c.voters
            .iter()
            .chain(c.non_voters.iter())
            .any(|(vid, vaddr)| vid != id && vaddr == raft)
    }

    /// True when `leader` can commit `host`'s admission to `cluster`: it reaches a majority of
    /// the changed configuration's voters. Raft commits a configuration change on a majority of
    /// the new configuration; a leader cut off from one (a partition it has not noticed yet)
    /// takes the request and never commits it, and rqlited's join times out. Admitted at once,
    /// the model charged rq4d with a majority lost by a join that real Raft never makes
    /// (simulator finding: a join requested 8 ms before a partition, admitted after it by the
    /// leader on the smaller side).
    fn commits_join(&self, cluster: usize, leader: usize, host: usize, ctx: &Ctx) -> bool {
        let id = &self.hosts[host].id;
        let raft = &self.hosts[host].raft;
        if self.clusters[cluster].holds(id, raft) {
            return true;
        }
        let voter = self.procs[host].as_ref().is_none_or(|p| p.voter);
        let others: Vec<usize> = self
            .voter_hosts(cluster)
            .into_iter()
            .filter(|&v| v != host)
            .collect();
        let kept = self.clusters[cluster]
            .voters
            .iter()
            .filter(|(vid, vaddr)| *vid != id && *vaddr != raft)
            .count();
        let total = kept + usize::from(voter);
        let reached = self.reached_from(leader, &others, ctx)
            + usize::from(voter && ctx.net.connected(leader, host));
        reached * 2 > total
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

    /// The leader adds `host` to `cluster` with its process's voter flag, by rqlite's join
    /// rules: an id and address the configuration holds (voter or not) is ignored whatever the
    /// flag; otherwise an entry with its id goes, and it is added anew (an address another id
    /// holds was refused before: [`Rqlite::address_held_by_another`]).
    fn admit(&mut self, host: usize, cluster: usize, ctx: &Ctx) -> Vec<Effect> {
        let id = self.hosts[host].id.clone();
        let raft = self.hosts[host].raft.clone();
        let voter = self.procs[host].as_ref().is_none_or(|p| p.voter);
        let disk = &mut self.disks[host];
        let had_data_of = disk
            .cluster
            .filter(|c| *c != cluster && disk.stored.committed);
        disk.cluster = Some(cluster);
        let mut effects = Vec::new();
        if !self.clusters[cluster].holds(&id, &raft) {
            let before = self.majority(cluster, ctx);
            let c = &mut self.clusters[cluster];
            c.voters.retain(|vid, vaddr| *vid != id && *vaddr != raft);
            c.non_voters
                .retain(|vid, vaddr| *vid != id && *vaddr != raft);
            if voter {
                c.voters.insert(id.clone(), raft);
            } else {
                c.non_voters.insert(id.clone(), raft);
            }
            if let Some(proc) = self.procs[host].as_mut() {
                proc.phase = Phase::Member;
            }
            effects.push(Effect::Reconfigured(Reconfiguration {
                cluster,
                subject: id,
                change: Change::Joined { voter },
                before,
                after: self.majority(cluster, ctx),
            }));
        }
        if let Some(proc) = self.procs[host].as_mut() {
            proc.phase = Phase::Member;
        }
        effects.push(Effect::Joined {
            host,
            cluster,
            had_data_of,
        });
        effects
    }
}
