//! Which dead member the leader's daemon removes from Raft, if any.
//!
//! Only the daemon whose rqlited leads calls this, with the members its rqlited reports, voters
//! and non-voters (read-only replicas, nodes beyond the voter cap) alike. A member is removed
//! when gossip has seen it down for at least `reap_after` — or at once when it is down and a
//! live member with another id now advertises its Raft address (Docker hands a dead
//! container's IP to the next one, and rqlited refuses a joiner whose address a voter holds) —
//! one at a time (the caller waits for the removal to show before asking again), and a voter
//! never when the live voters would then fall short of a majority of the smaller
//! configuration: a removal that loses quorum would stall the cluster instead of healing it. A
//! non-voter's removal changes no quorum.
//!
//! Gossip's "dead" is one witness; the leader's rqlited is another. A member that rqlited's
//! `/nodes` reaches is not dead (unless another node answers at its address), so it never
//! counts as down here. Right after a partition heals, Raft hears from the far side within a
//! heartbeat while gossip takes seconds to see it again: on a two-engine swarm the far side's
//! new leader removed a voter its own Raft had just heard from, on gossip's stale word, and
//! once Swarm stopped the far side's old tasks the rest had lost their quorum for good.

use std::time::Duration;

use crate::identity::NodeId;

/// A member of the Raft configuration as the reaper sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub id: NodeId,
    /// A voter (else a non-voter).
    pub voter: bool,
    /// Since when gossip sees it down; `None` while it is alive.
    pub down_since: Option<Duration>,
    /// A live member with another id advertises this member's Raft address.
    pub address_taken: bool,
}

/// The member to remove now, if any: a down member whose address was taken, else the one down
/// the longest among those down for `reap_after` — a voter only while the live voters keep a
/// majority of the configuration left after its removal.
pub fn pick_removal(members: &[Member], now: Duration, reap_after: Duration) -> Option<NodeId> {
    let voters = members.iter().filter(|m| m.voter).count();
    let live_voters = members
        .iter()
        .filter(|m| m.voter && m.down_since.is_none())
        .count();
    let voter_may_go = voters
        .checked_sub(1)
        .is_some_and(|remaining| live_voters > remaining / 2);
    members
        .iter()
        .filter(|m| !m.voter || voter_may_go)
        .filter_map(|m| m.down_since.map(|since| (!m.address_taken, since, &m.id)))
        .filter(|(waits, since, _)| !waits || now.saturating_sub(*since) >= reap_after)
        .min()
        .map(|(_, _, id)| id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAP: Duration = Duration::from_secs(30);

    fn voter(id: &str, down_since: Option<u64>) -> Member {
        Member {
            id: NodeId::new(id).expect("id"),
            voter: true,
            down_since: down_since.map(Duration::from_secs),
            address_taken: false,
        }
    }

    fn non_voter(id: &str, down_since: Option<u64>) -> Member {
        Member {
            voter: false,
            ..voter(id, down_since)
        }
    }

    #[test]
    fn a_dead_non_voter_is_removed_even_when_a_voter_may_not_be() {
        // Two of three voters dead: no voter may go (one live of two left would be no
        // majority), but the dead non-voter changes no quorum.
        let members = [
            voter("a", None),
            voter("b", Some(0)),
            voter("c", Some(0)),
            non_voter("r", Some(5)),
        ];
        let removed = pick_removal(&members, Duration::from_secs(100), REAP);
        assert_eq!(removed.as_ref().map(NodeId::as_str), Some("r"));
        let briefly = [voter("a", None), non_voter("r", Some(90))];
        assert_eq!(pick_removal(&briefly, Duration::from_secs(100), REAP), None);
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
            downs in proptest::collection::vec((proptest::option::of(0u64..100), any::<bool>(), any::<bool>()), 1..15),
            now in 0u64..200,
        ) {
            let members: Vec<Member> = downs
                .iter()
                .enumerate()
                .map(|(i, (d, taken, is_voter))| Member {
                    address_taken: *taken,
                    voter: *is_voter,
                    ..voter(&format!("n{i}"), *d)
                })
                .collect();
            if let Some(id) = pick_removal(&members, Duration::from_secs(now), REAP) {
                let removed = members.iter().find(|v| v.id == id).expect("a member");
                prop_assert!(removed.down_since.is_some(), "only dead members are removed");
                let voters: Vec<&Member> = members.iter().filter(|m| m.voter).collect();
                let live = voters.iter().filter(|v| v.down_since.is_none()).count();
                if removed.voter {
                    prop_assert!(live > (voters.len() - 1) / 2, "quorum of the new configuration is live");
                }
            }
        }
    }
}
