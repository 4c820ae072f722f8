//! Roles, terms and the leader's heartbeats: the timer loop that starts elections
//! and sends heartbeats, the leader lease, "commit" as a majority heartbeat, and a
//! follower's answer to a heartbeat. Elections themselves are in `election`.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::election::election;
use super::{Core, LEADERSHIP_LOST, Node, Role, Shared, majority, voter_count};
use crate::double::log;
use crate::double::wire::{Request, Response, Server};

impl Node {
    pub(super) fn step_down(&self, c: &mut Core, why: &str) {
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

    pub(super) fn become_leader(&self, c: &mut Core) {
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
                voter_count(&c.p.config)
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
}

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

/// A leader that has not heard from a majority of the voters within the lease
/// steps down, as hashicorp/raft's `checkLeaderLease` does ("failed to contact
/// quorum of nodes"). Non-voters do not count, however alive.
fn check_lease(node: &Node, c: &mut Core, now: Instant) {
    if now.duration_since(c.leader_since) < node.s.lease {
        return;
    }
    let voters = voter_count(&c.p.config);
    if voters == 0 {
        return;
    }
    let mut contacted = 0;
    for s in c.p.config.iter().filter(|s| s.voter) {
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

pub(super) fn heartbeat_request(node: &Node, c: &Core) -> Request {
    Request::Heartbeat {
        term: c.p.current_term,
        leader_id: node.s.id.clone(),
        leader_addr: node.s.raft_adv.clone(),
        config: c.p.config.clone(),
        last_index: c.p.last_index,
        last_term: c.p.last_term,
    }
}

pub(super) fn rpc_timeout(node: &Node) -> Duration {
    (node.s.election_timeout / 2).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// One heartbeat to every peer, voter or not; returns how many *voters*
/// acknowledged in the current term (what commit and the lease count).
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
        let (req, net) = (req.clone(), node.net.clone());
        set.spawn(async move {
            let r = net.call(&t.addr, &req, timeout).await;
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
        if target.voter {
            acked += 1;
        }
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
            majority(voter_count(&c.p.config)).saturating_sub(self_counts)
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

pub(super) fn on_heartbeat(
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
        let was_member = node.is_member(&c);
        c.p.config = config;
        dirty = true;
        if was_member && !node.is_member(&c) {
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
