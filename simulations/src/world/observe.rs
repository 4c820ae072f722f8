//! The world observing its own run, for the invariants and the figures: every bootstrap with
//! the view it was made from, acknowledgements and downs (to classify double bootstraps), node
//! events, the digest, and whether the cluster has converged. Facts that can break a safety
//! property are handed to the judge at the very transition.

use rq4d_protocol::{Agreement, Decision, Event, NodeId, Waiting};

use super::World;
use super::record::{Bootstrap, Fact, MemberEvent};
use crate::rqlite::Ctx;
use crate::violation::Violation;

impl World {
    pub(super) fn mix(&mut self, value: u64) {
        self.digest = (self.digest ^ value).wrapping_mul(0x0100_0000_01b3);
    }

    pub(super) fn record_bootstrap(&mut self, host: usize) {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return;
        };
        let mut view: Vec<NodeId> = node
            .members()
            .iter()
            .filter(|(_, m)| m.alive)
            .map(|(id, _)| id.clone())
            .collect();
        view.push(self.hosts[host].id.clone());
        view.sort();
        // Read-only replicas take no part in an agreement: the view's other members decide
        // whether it is the initial set's.
        let from_initial_set = view.iter().all(|id| {
            self.host_by_id(id)
                .is_some_and(|h| self.hosts[h].initial || self.hosts[h].read_only)
        });
        let bootstrap = Bootstrap {
            at: self.now,
            host,
            view,
            from_initial_set,
        };
        self.judge(&Fact::Bootstrapped(&bootstrap));
        self.bootstraps.push(bootstrap);
    }

    /// Hands `fact` to the judge and records what it finds: a violation, or a double bootstrap
    /// the seed-isolation window explains (counted apart).
    pub(super) fn judge(&mut self, fact: &Fact<'_>) {
        let Some(v) = (self.judge)(self, fact) else {
            return;
        };
        if v.window {
            self.note(fact.host(), || {
                format!("SEED-ISOLATION WINDOW: {}", v.detail)
            });
            self.windows.push(v);
        } else {
            self.violation(v);
        }
    }

    /// Records a safety violation.
    pub fn violation(&mut self, v: Violation) {
        let text = format!("VIOLATION {}: {}", v.kind, v.detail);
        self.note(None, || text);
        self.violations.push(v);
    }

    pub(super) fn track_agreement(&mut self, host: usize) {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return;
        };
        let agreement = &node.card().agreement;
        if *agreement == self.hosts[host].last_agreement {
            return;
        }
        let agreement = agreement.clone();
        if let Agreement::Ack { seed, .. } = &agreement {
            let seed = seed.clone();
            self.hosts[host].acks.push((self.now, seed.clone()));
            self.note(Some(host), || format!("acknowledges seed {seed}"));
        } else if let Agreement::Propose { .. } = &agreement {
            self.note(Some(host), || "proposes itself as seed".into());
        }
        self.hosts[host].last_agreement = agreement;
    }

    pub(super) fn node_event(&mut self, host: usize, event: Event) {
        match event {
            Event::MemberUp(id) => {
                self.mix(1);
                if self.record_members {
                    self.member_log.push(MemberEvent {
                        at: self.now,
                        observer: host,
                        subject: id.node_id.clone(),
                        up: true,
                    });
                }
                self.noise(Some(host), || format!("sees {} up", id.node_id));
            }
            Event::MemberDown(id) => {
                self.mix(2);
                self.counters.downs += 1;
                // The life declared down is still running (a restart would have a larger
                // generation than any the old life could have been renewed to).
                let really_alive = self.host_by_id(&id.node_id).is_some_and(|h| {
                    self.hosts[h].node.is_some() && self.hosts[h].last_generation <= id.generation
                });
                if really_alive {
                    self.counters.false_downs += 1;
                }
                if self.config.track_agreement {
                    self.hosts[host].downs.push((self.now, id.node_id.clone()));
                }
                if self.record_members {
                    self.member_log.push(MemberEvent {
                        at: self.now,
                        observer: host,
                        subject: id.node_id.clone(),
                        up: false,
                    });
                }
                self.noise(Some(host), || format!("sees {} down", id.node_id));
            }
            Event::Decided(decision) => {
                self.mix(3);
                if let Decision::Bootstrap { cluster_id, .. } = &decision
                    && !self.formations.contains_key(cluster_id)
                    && let Some(node) = self.hosts[host].node.as_ref()
                {
                    // The first founder to decide is the seed: its view is the agreed one. Its
                    // founders are the view's eligible members, under a cap the smallest ids
                    // up to it (never fewer than `expect`), as the agreement picks them.
                    let mut founders: Vec<NodeId> = node
                        .members()
                        .iter()
                        .filter(|(_, m)| m.alive)
                        .map(|(id, _)| id.clone())
                        .chain([self.hosts[host].id.clone()])
                        .filter(|id| self.host_by_id(id).is_none_or(|h| !self.hosts[h].read_only))
                        .collect();
                    founders.sort();
                    if let Some(cap) = self.config.voter_cap {
                        founders.truncate(usize::from(cap.max(self.config.expect)));
                    }
                    self.formations.insert(*cluster_id, founders);
                }
                if matches!(decision, Decision::Bootstrap { .. }) {
                    self.judge(&Fact::DecidedBootstrap { host });
                }
                if matches!(decision, Decision::Wait(Waiting::Cards { .. })) {
                    self.noise(Some(host), || format!("decides: {}", decision.describe()));
                } else {
                    self.note(Some(host), || format!("decides: {}", decision.describe()));
                }
            }
            Event::DuplicateNodeId { addr } => {
                self.note(Some(host), || format!("duplicate node id at {addr}"));
            }
            Event::ClaimRefused(error) => {
                self.judge(&Fact::ClaimRefused {
                    host,
                    error: &error,
                });
            }
            Event::IdentityOutbid { generation } => {
                self.note(Some(host), || {
                    format!("outbids another life of its id: generation {generation}")
                });
            }
            Event::Idle => {}
        }
    }

    /// True when the run has converged: see [`Convergence`].
    pub fn converged(&self) -> bool {
        self.convergence() == Convergence::Settled
    }

    /// How far the run has converged: every live node a member (voter or non-voter) of one Raft
    /// cluster with a live leader all of them see, at least `expect` nodes that are not
    /// read-only live — and then whether its voters are what the cap and the read-only flags
    /// make them.
    pub fn convergence(&self) -> Convergence {
        let live: Vec<usize> = self.live_hosts().collect();
        if self.eligible_live() < usize::from(self.config.expect) {
            return Convergence::Unformed;
        }
        let Some(cluster) = live.first().and_then(|&h| self.rqlite.disks[h].cluster) else {
            return Convergence::Unformed;
        };
        let Some(leader) = self.rqlite.clusters[cluster].leader else {
            return Convergence::Unformed;
        };
        let ctx = Ctx {
            net: &self.net,
            addresses: &self.addresses,
            now: self.now,
        };
        let leader_id = &self.hosts[leader].id;
        // Followers must be reachable at their configured addresses (the leader replicates
        // there); the leader itself only needs to be a voter (Raft knows it by id).
        let formed = live.iter().all(|&h| {
            self.rqlite.disks[h].cluster == Some(cluster)
                && (self.rqlite.follows(h) == Some(cluster)
                    || (h == leader && self.rqlite.participant(h) == Some(cluster)))
                && self
                    .rqlite
                    .status(h, &ctx)
                    .is_some_and(|s| s.leader.as_ref() == Some(leader_id))
        });
        if !formed {
            return Convergence::Unformed;
        }
        match self.unsettled_voters(cluster, &live) {
            Some(why) => Convergence::Formed(why),
            None => Convergence::Settled,
        }
    }

    /// Why the voters of `cluster`, which every live node follows, are not yet what they should
    /// be, if they are not: a read-only voter; without a cap, an eligible live node that does
    /// not vote; under one, a configuration whose voters are not exactly `min(cap, eligible
    /// live nodes)`, all live.
    fn unsettled_voters(&self, cluster: usize, live: &[usize]) -> Option<String> {
        let voters = &self.rqlite.clusters[cluster].voters;
        let votes = |h: usize| voters.contains_key(&self.hosts[h].id);
        if let Some(&h) = live.iter().find(|&&h| self.hosts[h].read_only && votes(h)) {
            return Some(format!("read-only {} votes", self.hosts[h].id));
        }
        let eligible: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&h| !self.hosts[h].read_only)
            .collect();
        let Some(cap) = self.config.voter_cap else {
            return eligible
                .iter()
                .find(|&&h| !votes(h))
                .map(|&h| format!("{} does not vote (no cap)", self.hosts[h].id));
        };
        let live_voters = eligible.iter().filter(|&&h| votes(h)).count();
        let want = usize::from(cap).min(eligible.len());
        (voters.len() != want || live_voters != want).then(|| {
            format!(
                "{} voters in the configuration, {live_voters} of them live; cap {cap} and {} eligible live nodes want {want}",
                voters.len(),
                eligible.len()
            )
        })
    }
}

/// How far a run has converged (see [`World::convergence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Convergence {
    /// Not every live node follows one cluster's leader.
    Unformed,
    /// Every live node does, but the voters have not settled: why.
    Formed(String),
    /// Formed, and the voters settled.
    Settled,
}
