//! Raft as the model keeps it: elections (a leader that loses a majority steps down; a
//! leaderless cluster elects a voter that reaches one once its timeout has passed; non-voters
//! take no part) and what `GET /status` answers on a host, voter or non-voter.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::{Ctx, Phase, Rqlite, Status};

impl Rqlite {
    /// Elections: a leader that lost touch with a majority steps down; a cluster without a
    /// leader elects, once its election timeout has passed, a voter that reaches a majority.
    /// Returns the clusters whose leader changed.
    pub fn raft_tick(&mut self, rng: &mut SmallRng, ctx: &Ctx) -> Vec<(usize, Option<usize>)> {
        let mut changes = Vec::new();
        for c in 0..self.clusters.len() {
            // Voters by id: a voter at a stale address still votes and may lead, but the others
            // reach it only at its configured address. Non-voters neither vote nor count.
            let voters = self.voter_hosts(c);
            let size = self.clusters[c].voters.len();
            let majority_from = |h: usize| self.reached_from(h, &voters, ctx) * 2 > size;
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
        if let Some(addr) = cluster.non_voters.get(id) {
            // A non-voter follows the leader that replicates to it: at its configured address
            // only. It never counts its peers (`num_peers` 0) and never leads.
            let leader = cluster
                .leader
                .filter(|&l| *addr == self.hosts[host].raft && ctx.net.connected(host, l));
            return Some(Status {
                leader: leader.map(|l| self.hosts[l].id.clone()),
                term: cluster.term,
                ..unattached
            });
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

/// A Raft election timeout: 1–2 s.
pub(super) fn election_timeout(rng: &mut SmallRng) -> Duration {
    Duration::from_millis(rng.random_range(1000..2000))
}
