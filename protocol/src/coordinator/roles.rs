//! Who votes: read-only replicas never do, and under a voter cap (`--voters N`) at most N nodes
//! do, the set healing itself — what Consul's autopilot does for its servers, and what neither
//! rqlite nor its charts do.
//!
//! Every node computes the same function of the same live cards, so no node has to be told its
//! role, and two leaders in a row cannot fight over it (the leader plays no part in the choice
//! but for never being demoted itself):
//!
//! * **slots**: the cap less the voters of the configuration, as the largest count a voter's
//!   card gives (the leader's, or a just-added voter's, whichever polled later) — dead voters
//!   included, so a voter's place is refilled only once the reaper has removed it, and one that
//!   comes back before that finds its place still its own — or less the live voters, when more
//!   run than any count (a poll behind) says;
//! * **candidates** for the slots, in node-id order: the eligible (not read-only) live nodes of
//!   the cluster that do not vote (a founder of the cluster votes from its first configuration
//!   on, whatever its card says yet) — running non-voters, nodes on their way in (stopped with
//!   data, starting), and empty nodes about to join. The order does not depend on their
//!   state, so a candidate on its way from non-voter to voter keeps its place and nobody
//!   overtakes it (a stopped voter not yet reaped holds a rank too, and its slot stays free
//!   until it is back: a promotion waits a restart rather than risk two);
//! * **demotions**: with more live voters than the cap and every voter of the configuration
//!   live, the voters with the largest ids step down (never the leader), so that removing them
//!   cannot leave the configuration short of a majority.
//!
//! A node acts only on its own role: a non-voter chosen for a slot removes itself and rejoins
//! as a voter (rqlited ignores a join whose id and address it already holds, whatever the voter
//! flag, so a change of role is a removal and a join); a voter chosen to step down does the
//! same as a non-voter. The supervisor makes each change only once its rqlited has caught up.
//!
//! Nodes that disagree on the cap join as non-voters and change no role: two caps would make
//! two choices. (Empty nodes that disagree refuse to agree on a formation at all, as with
//! `--expect`.)

use std::collections::BTreeSet;

use super::View;
use crate::card::{Card, DbState};
use crate::identity::NodeId;

/// What the cards say about the voters of `leader`'s cluster.
struct Voting<'v> {
    /// The cap all eligible live members of the cluster agree on (`None`: no cap).
    cap: Option<u16>,
    /// Voters of the configuration, as the largest count a voter's card gives (dead ones
    /// included).
    configured: u16,
    /// Live voters, by id.
    live_voters: Vec<&'v NodeId>,
    /// Candidates for a slot, by id.
    candidates: Vec<&'v NodeId>,
}

/// The cap the eligible members agree on (`Some(None)`: no cap), or `None` when they disagree.
fn agreed_cap(members: &[&Card]) -> Option<Option<u16>> {
    let caps: BTreeSet<Option<u16>> = members
        .iter()
        .filter(|card| !card.read_only)
        .map(|card| card.voter_cap)
        .collect();
    match caps.len() {
        0 => Some(None),
        1 => caps.into_iter().next(),
        _ => None,
    }
}

/// The voting of `leader`'s cluster, or `None` when its members disagree on the cap.
fn voting<'v>(view: &'v View<'_>, leader: &'v Card) -> Option<Voting<'v>> {
    let cluster = leader.cluster_id;
    let members: Vec<&Card> = view
        .live()
        .filter(|card| {
            card.cluster_id == cluster || (card.cluster_id.is_none() && card.db == DbState::Empty)
        })
        .collect();
    let cap = agreed_cap(&members)?;
    // Every voter's card counts the configuration as its own last poll saw it; the leader's
    // may lag one that has just joined (which counts itself), and the live voters alone miss
    // the dead ones still configured. The largest count is the one to trust: too large only
    // delays a promotion by a poll, too small gives a slot twice (the simulator's search:
    // a just-promoted voter seen before the leader's next poll, beside a dead voter not yet
    // reaped).
    let configured = members
        .iter()
        .filter_map(|card| card.db.running().filter(|running| running.voter))
        .map(|running| running.voters)
        .chain(leader.db.running().map(|running| running.voters))
        .max()
        .unwrap_or(0);
    let mut live_voters = Vec::new();
    let mut candidates = Vec::new();
    for card in &members {
        match &card.db {
            DbState::Running(running) if running.voter => live_voters.push(&card.node_id),
            // A founder is a voter of the first configuration whatever its card says yet: the
            // seed bootstrapped only once every founder had notified it, with all of them as
            // voters. As a candidate it would hold a second slot, and a joiner would join as a
            // non-voter only to be promoted a moment later.
            _ if card.formation.is_some() && card.cluster_id == cluster => {
                live_voters.push(&card.node_id)
            }
            _ if card.read_only => {}
            // Every other state a candidate keeps its place in: a non-voter changing role is
            // stopped (its card says it has data) and then starting for a moment, and a node
            // that overtook it there would be promoted too.
            _ => candidates.push(&card.node_id),
        }
    }
    live_voters.sort();
    candidates.sort();
    Some(Voting {
        cap,
        configured,
        live_voters,
        candidates,
    })
}

/// Whether `me`, not a voter of `leader`'s cluster (empty, starting, or a running non-voter),
/// should vote: never when read-only; without a cap, always; under one, when it holds one of
/// the free slots.
pub(super) fn should_vote(view: &View<'_>, leader: &Card) -> bool {
    let me = view.me;
    if me.read_only {
        return false;
    }
    let Some(voting) = voting(view, leader) else {
        // Caps disagree: join as a non-voter (nothing is lost: a voter can be made of it once
        // they agree).
        return false;
    };
    let Some(cap) = voting.cap else {
        return true;
    };
    // The counts lag the configuration by a poll: a voter just added already runs as one
    // (seen on real processes: a second promotion into the slot the first had just taken).
    let voters = usize::from(voting.configured).max(voting.live_voters.len());
    let slots = usize::from(cap).saturating_sub(voters);
    voting
        .candidates
        .iter()
        .take(slots)
        .any(|id| *id == &me.node_id)
}

/// Whether `me`, a running voter of `leader`'s cluster, should step down: more live voters
/// than the cap, every voter of the configuration live, and `me` among the largest ids
/// (never the leader).
pub(super) fn should_step_down(view: &View<'_>, leader: &Card) -> bool {
    let me = view.me;
    if me.node_id == leader.node_id {
        return false;
    }
    let Some(Voting {
        cap: Some(cap),
        configured,
        live_voters,
        ..
    }) = voting(view, leader)
    else {
        return false;
    };
    let live = live_voters.len();
    let cap = usize::from(cap);
    if live <= cap || live != usize::from(configured) {
        return false;
    }
    live_voters
        .iter()
        .rev()
        .filter(|id| **id != &leader.node_id)
        .take(live - cap)
        .any(|id| *id == &me.node_id)
}
