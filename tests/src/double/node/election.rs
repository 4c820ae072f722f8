//! Elections: pre-vote, then vote, with hashicorp/raft's rejection rules, and the
//! leadership transfer a leader makes on SIGTERM. A node that cannot win never
//! disturbs the cluster's term, because its pre-votes are refused.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::raft::rpc_timeout;
use super::{Core, Role, Shared, majority, voter_count};
use crate::double::log;
use crate::double::wire::{Request, Response, Server};

/// Pre-vote, then vote. `transfer` marks an election requested by the old leader
/// on shutdown, which voters honour even though they still know that leader.
pub(super) async fn election(node: Shared, transfer: bool) {
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
            node.voter_peers(&c),
            voter_count(&c.p.config),
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
        let (addr, req, net) = (t.addr.clone(), req.clone(), node.net.clone());
        set.spawn(async move { net.call(&addr, &req, timeout).await });
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

#[allow(clippy::too_many_arguments)]
pub(super) fn on_vote(
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
    // hashicorp/raft only grants votes to voters; a non-voter never asks anyway.
    if !c.p.config.is_empty() && !c.p.config.iter().any(|s| s.id == id && s.voter) {
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

/// A leader handing over on shutdown asks this voter to stand at once
/// (hashicorp/raft's `TimeoutNow`).
pub(super) fn on_timeout_now(node: &Shared, term: u64) -> Response {
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
            .voter_peers(&c)
            .into_iter()
            .filter_map(|s| c.acks.get(&s.id).map(|t| (*t, s)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s);
        node.step_down(&mut c, "leadership transfer requested on shutdown");
        best.map(|s| (s, term))
    };
    if let Some((s, term)) = target {
        let _ = node
            .net
            .call(
                &s.addr,
                &Request::TimeoutNow { term },
                Duration::from_millis(100),
            )
            .await;
    }
}
