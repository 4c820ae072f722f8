//! Which dead voter the leader's daemon removes from Raft, if any.
//!
//! Only the daemon whose rqlited leads calls this, with the voters its rqlited reports. A voter is
//! removed when gossip has seen it down for at least `reap_after` — or at once when it is down and
//! a live member with another id now advertises its Raft address (Docker hands a dead
//! container's IP to the next one, and rqlited refuses a joiner whose address a voter holds) —
//! one at a time (the caller waits for the removal to show before asking again), and never when
//! the live voters would then fall short of a majority of the smaller configuration: a removal
//! that loses quorum would stall the cluster instead of healing it.
//!
//! Gossip's "dead" is one witness; the leader's rqlited is another. A voter that rqlited's
//! `/nodes` reaches is not dead (unless another node answers at its address), so it never
//! counts as down here. Right after a partition heals, Raft hears from the far side within a
//! heartbeat while gossip takes seconds to see it again: on a two-engine swarm the far side's
//! new leader removed a voter its own Raft had just heard from, on gossip's stale word, and
//! once Swarm stopped the far side's old tasks the rest had lost their quorum for good.

use std::time::Duration;

use crate::identity::NodeId;

/// A Raft voter as the reaper sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    /// Its node id.
    pub id: NodeId,
    /// Since when gossip sees it down; `None` while it is alive.
    pub down_since: Option<Duration>,
    /// A live member with another id advertises this voter's Raft address.
    pub address_taken: bool,
}

/// The voter to remove now, if any: a down voter whose address was taken, else the one down the
/// longest among those down for `reap_after`.
pub fn pick_removal(voters: &[Voter], now: Duration, reap_after: Duration) -> Option<NodeId> {
    let live = voters.iter().filter(|v| v.down_since.is_none()).count();
    let remaining = voters.len().checked_sub(1)?;
    let majority = remaining / 2 + 1;
    if live < majority {
        return None;
    }
    voters
        .iter()
        .filter_map(|v| v.down_since.map(|since| (!v.address_taken, since, &v.id)))
        .filter(|(waits, since, _)| !waits || now.saturating_sub(*since) >= reap_after)
        .min()
        .map(|(_, _, id)| id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAP: Duration = Duration::from_secs(30);

    fn voter(id: &str, down_since: Option<u64>) -> Voter {
        Voter {
            id: NodeId::new(id).expect("id"),
            down_since: down_since.map(Duration::from_secs),
            address_taken: false,
        }
    }

    #[test]
    fn a_dead_voter_whose_address_was_taken_goes_at_once() {
        let mut taken = voter("c", Some(29));
        taken.address_taken = true;
        let voters = [
            voter("a", None),
            voter("b", None),
            taken,
            voter("d", Some(0)),
        ];
        let removed = pick_removal(&voters, Duration::from_secs(30), REAP);
        assert_eq!(removed.as_ref().map(NodeId::as_str), Some("c"));
    }

    #[test]
    fn a_voter_dead_long_enough_is_removed() {
        let voters = [voter("a", None), voter("b", None), voter("c", Some(0))];
        let removed = pick_removal(&voters, Duration::from_secs(31), REAP);
        assert_eq!(removed.as_ref().map(NodeId::as_str), Some("c"));
    }

    #[test]
    fn a_voter_dead_briefly_is_kept() {
        let voters = [voter("a", None), voter("b", None), voter("c", Some(10))];
        assert_eq!(pick_removal(&voters, Duration::from_secs(31), REAP), None);
    }

    #[test]
    fn the_longest_dead_goes_first() {
        let voters = [
            voter("a", None),
            voter("b", None),
            voter("c", None),
            voter("d", Some(5)),
            voter("e", Some(1)),
        ];
        let removed = pick_removal(&voters, Duration::from_secs(100), REAP);
        assert_eq!(removed.as_ref().map(NodeId::as_str), Some("e"));
    }

    proptest! {
        #[test]
        fn a_removal_never_leaves_the_live_voters_short_of_a_majority(
            downs in proptest::collection::vec((proptest::option::of(0u64..100), any::<bool>()), 1..15),
            now in 0u64..200,
        ) {
            let voters: Vec<Voter> = downs
                .iter()
                .enumerate()
                .map(|(i, (d, taken))| Voter { address_taken: *taken, ..voter(&format!("n{i}"), *d) })
                .collect();
            if let Some(id) = pick_removal(&voters, Duration::from_secs(now), REAP) {
                let removed = voters.iter().find(|v| v.id == id).expect("a voter");
                prop_assert!(removed.down_since.is_some(), "only dead voters are removed");
                let live = voters.iter().filter(|v| v.down_since.is_none()).count();
                prop_assert!(live > (voters.len() - 1) / 2, "quorum of the new configuration is live");
            }
        }
    }
}
