//! Read-only replicas and the voter cap: who founds, who joins as what, who changes role — each
//! rule from the side of the node it picks and of the nodes it does not.

use super::*;

fn running(leader: &str, voters: u16, voter: bool) -> DbState {
    DbState::Running(Running {
        leader: Some(NodeId::new(leader).expect("id")),
        term: 2,
        voters,
        voter,
        non_voter: !voter,
    })
}

/// A formed cluster 7 led by `n00`, with `voters` voters in its configuration: the first
/// `live_voters` cards run as voters, the next `non_voters` as non-voters, the rest are empty;
/// every eligible card carries `cap`.
fn formed(
    n: usize,
    voters: u16,
    live_voters: usize,
    non_voters: usize,
    cap: Option<u16>,
) -> Vec<Card> {
    let mut cards = empty_cluster(n, 3);
    for (i, card) in cards.iter_mut().enumerate() {
        card.voter_cap = cap;
        if i < live_voters + non_voters {
            card.db = running("n00", voters, i < live_voters);
            card.cluster_id = Some(ClusterId(7));
        }
    }
    cards
}

#[test]
fn read_only_nodes_are_never_counted_for_expect_nor_founders() {
    let mut cards = empty_cluster(4, 3);
    cards[0].read_only = true;
    cards[3].read_only = true;
    for i in 0..4 {
        let verdict = decide_for(&cards, i, true, 0);
        let want = if cards[i].read_only {
            Decision::Wait(Waiting::ReadOnly)
        } else {
            Decision::Wait(Waiting::Members { up: 2, expect: 3 })
        };
        assert_eq!(verdict.decision, want, "node {i}");
    }
    // A third eligible node: the two read-only ones still wait, the three others found the
    // cluster without them (n00, the smallest id, is read-only and not the seed).
    let mut cards = empty_cluster(5, 3);
    cards[0].read_only = true;
    cards[4].read_only = true;
    let decisions = run_agreement(&mut cards, &[0, 1, 2, 3, 4]);
    let formed = formations(&decisions);
    assert_eq!(formed[0], None);
    assert_eq!(formed[4], None);
    assert!(
        formed[1..4].iter().all(|f| f.is_some_and(|(_, n)| n == 3)),
        "{decisions:?}"
    );
    assert_eq!(decisions[0], Decision::Wait(Waiting::ReadOnly));
    assert!(
        matches!(&decisions[1], Decision::Bootstrap { targets, .. } if !targets.contains(&cards[0].raft_addr))
    );
}

#[test]
fn a_read_only_node_joins_a_live_leader_as_a_non_voter() {
    let mut cards = formed(4, 3, 3, 0, None);
    cards[3].read_only = true;
    let verdict = decide_for(&cards, 3, true, 0);
    assert!(
        matches!(&verdict.decision, Decision::Join { voter: false, targets, .. } if targets[0] == cards[0].raft_addr),
        "{:?}",
        verdict.decision
    );
    // Without a cap any other empty node joins as a voter.
    cards[3].read_only = false;
    let verdict = decide_for(&cards, 3, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Join { voter: true, .. }),
        "{:?}",
        verdict.decision
    );
}

#[test]
fn under_a_cap_the_smallest_ids_found_and_the_others_wait_to_join() {
    let mut cards = empty_cluster(5, 3);
    for card in &mut cards {
        card.voter_cap = Some(3);
    }
    let decisions = run_agreement(&mut cards, &[4, 3, 2, 1, 0]);
    let formed = formations(&decisions);
    let cluster = formed[0].expect("n00 founds").0;
    for (i, formation) in formed.iter().enumerate().take(3) {
        assert_eq!(*formation, Some((cluster, 3)), "founder {i}: {decisions:?}");
    }
    // Before the founders start (after, they wait for the data those have).
    for i in 3..5 {
        assert_eq!(
            decide_for(&cards, i, true, 0).decision,
            Decision::Wait(Waiting::BeyondVoterCap { cap: 3 }),
            "node {i}"
        );
        assert_eq!(
            cards[i].agreement,
            Agreement::None,
            "node {i} acknowledged nothing"
        );
    }
}

#[test]
fn nodes_that_disagree_on_the_cap_agree_on_nothing() {
    let mut cards = empty_cluster(3, 3);
    cards[1].voter_cap = Some(3);
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Conflict(Conflict::VoterCap(_))),
        "{:?}",
        verdict.decision
    );
}

#[test]
fn joiners_take_the_free_slots_in_id_order_and_the_rest_join_as_non_voters() {
    // Cap 5, three voters: two slots for three empty nodes.
    let cards = formed(6, 3, 3, 0, Some(5));
    let roles: Vec<bool> = (3..6)
        .map(|i| match decide_for(&cards, i, true, 0).decision {
            Decision::Join { voter, .. } => voter,
            other => panic!("node {i}: {other:?}"),
        })
        .collect();
    assert_eq!(roles, vec![true, true, false]);
}

#[test]
fn a_reaped_voters_place_goes_to_the_first_non_voter_and_only_to_it() {
    // Cap 3: the configuration is down to two voters (one was reaped); two running non-voters.
    let cards = formed(4, 2, 2, 2, Some(3));
    let promoted = decide_for(&cards, 2, true, 0);
    assert!(
        matches!(&promoted.decision, Decision::ChangeRole { voter: true, targets, .. } if targets[0] == cards[0].raft_addr),
        "{:?}",
        promoted.decision
    );
    assert_eq!(
        decide_for(&cards, 3, true, 0).decision,
        Decision::Run,
        "the second stays"
    );
    for i in 0..2 {
        assert_eq!(
            decide_for(&cards, i, true, 0).decision,
            Decision::Run,
            "voter {i}"
        );
    }
}

#[test]
fn a_dead_voters_place_is_kept_until_it_is_reaped() {
    // Cap 3, three voters configured but one of them is not live (not in the cards): no slot.
    let cards = formed(4, 3, 2, 2, Some(3));
    for i in 2..4 {
        assert_eq!(
            decide_for(&cards, i, true, 0).decision,
            Decision::Run,
            "non-voter {i}"
        );
    }
}

#[test]
fn a_promotion_on_its_way_keeps_its_place() {
    // n02 was chosen and is restarting as a voter — its card says stopped with data, then
    // starting; n03 must not take the slot too at either moment (seen on real processes:
    // two promotions 2 ms apart, then a demotion).
    let mut cards = formed(4, 2, 2, 2, Some(3));
    for on_its_way in [DbState::HasData { last_voters: 0 }, DbState::Starting] {
        cards[2].db = on_its_way;
        assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
    }
}

#[test]
fn extra_voters_step_down_largest_ids_first_never_the_leader() {
    // Cap 3, five live voters, all of the configuration live: n03 and n04 step down.
    let cards = formed(5, 5, 5, 0, Some(3));
    let decisions: Vec<Decision> = (0..5)
        .map(|i| decide_for(&cards, i, true, 0).decision)
        .collect();
    for (i, decision) in decisions.iter().enumerate() {
        let steps_down = matches!(decision, Decision::ChangeRole { voter: false, .. });
        assert_eq!(steps_down, i >= 3, "node {i}: {decision:?}");
    }
    // The leader among the largest ids: the next one steps down in its place.
    let mut cards = formed(5, 5, 5, 0, Some(3));
    for card in &mut cards {
        card.db = running("n04", 5, true);
    }
    let steps_down: Vec<usize> = (0..5)
        .filter(|&i| {
            matches!(
                decide_for(&cards, i, true, 0).decision,
                Decision::ChangeRole { voter: false, .. }
            )
        })
        .collect();
    assert_eq!(steps_down, vec![2, 3]);
}

#[test]
fn no_voter_steps_down_while_a_voter_of_the_configuration_is_not_live() {
    // Cap 3, six voters configured, five live: removing live ones could lose the majority.
    let cards = formed(5, 6, 5, 0, Some(3));
    for i in 0..5 {
        assert_eq!(
            decide_for(&cards, i, true, 0).decision,
            Decision::Run,
            "voter {i}"
        );
    }
}

#[test]
fn a_read_only_node_is_never_promoted() {
    let mut cards = formed(3, 1, 1, 2, Some(3));
    cards[1].read_only = true;
    assert_eq!(decide_for(&cards, 1, true, 0).decision, Decision::Run);
    assert!(matches!(
        decide_for(&cards, 2, true, 0).decision,
        Decision::ChangeRole { voter: true, .. }
    ));
}

#[test]
fn a_non_voter_that_sees_its_leader_is_healthy_and_one_that_does_not_rejoins() {
    let mut cards = formed(4, 3, 3, 1, Some(3));
    assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
    cards[3].db = DbState::Running(Running {
        leader: None,
        term: 2,
        voters: 0,
        voter: false,
        non_voter: true,
    });
    assert!(matches!(
        decide_for(&cards, 3, true, 0).decision,
        Decision::Join { voter: false, .. }
    ));
}

#[test]
fn a_voter_the_leaders_count_has_not_caught_up_with_still_takes_its_slot() {
    // The leader's card still counts 2 voters, but n02 already runs as the third: n03 has no
    // slot.
    let mut cards = formed(4, 2, 2, 2, Some(3));
    cards[2].db = running("n00", 3, true);
    assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
}

#[test]
fn a_voter_outside_the_configuration_that_hears_the_leader_rejoins_and_is_not_promoted() {
    // Seen in a chaos run: a node restarted with its data at the address the configuration
    // still gives a dead node hears the leader's heartbeats but is no voter. Without a cap it
    // is no non-voter to promote: it rejoins (after the supervisor's waits).
    let mut cards = formed(4, 3, 3, 0, None);
    cards[3].db = DbState::Running(Running {
        leader: Some(NodeId::new("n00").expect("id")),
        term: 2,
        voters: 0,
        voter: false,
        non_voter: false,
    });
    cards[3].cluster_id = Some(ClusterId(7));
    assert!(
        matches!(
            decide_for(&cards, 3, true, 0).decision,
            Decision::Join { voter: true, .. }
        ),
        "{:?}",
        decide_for(&cards, 3, true, 0).decision
    );
}

#[test]
fn a_just_promoted_voters_own_count_is_trusted_over_the_leaders_lagging_one() {
    // The simulator's search: cap 3; the configuration held the leader n00 and a dead voter
    // (the leader counts 2); n02 took the one free slot and already counts 3 itself, while the
    // leader's card still says 2 and the live voters are n00 and n02 alone. n03 must not take a
    // slot that is no longer free. (n01 is a read-only replica, out of the running.)
    let mut cards = formed(4, 2, 1, 3, Some(3));
    cards[1].read_only = true;
    cards[2].db = running("n00", 3, true);
    assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
    // Before n02's card arrives (still a non-voter), n02 holds the slot by rank, not n03.
    cards[2].db = running("n00", 2, false);
    assert!(matches!(
        decide_for(&cards, 2, true, 0).decision,
        Decision::ChangeRole { voter: true, .. }
    ));
    assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
}

#[test]
fn founders_still_starting_are_voters_already_and_joiners_take_the_slots_left() {
    // Seen in the Docker chaos run under `--voters 5`: cap 5, a cluster of three founders whose
    // leader n00 runs (it bootstrapped with all three as voters), while n01 and n02 are still
    // starting or have not heard a leader yet. The four empty nodes have two slots, and the
    // founders must not hold them a second time as candidates: else n03 and n04 join as
    // non-voters and are promoted a moment later (a removal and a rejoin each).
    let mut cards = formed(7, 3, 1, 0, Some(5));
    for (i, db) in [
        (1, DbState::Starting),
        (
            2,
            DbState::Running(Running {
                leader: None,
                term: 1,
                voters: 0,
                voter: false,
                non_voter: false,
            }),
        ),
    ] {
        cards[i].db = db;
        cards[i].cluster_id = Some(ClusterId(7));
        cards[i].formation = Some(3);
    }
    cards[0].formation = None;
    let roles: Vec<bool> = (3..7)
        .map(|i| match decide_for(&cards, i, true, 0).decision {
            Decision::Join { voter, .. } => voter,
            other => panic!("node {i}: {other:?}"),
        })
        .collect();
    assert_eq!(roles, vec![true, true, false, false], "joiners n03..n06");
    // From the founders' side: the starting one keeps starting, the one without a leader yet
    // is no candidate for a promotion either (its `-join` would be ignored: rqlited holds its
    // id and address), and both stay founders.
    let starting = decide_for(&cards, 1, true, 0);
    assert_eq!(starting.decision, Decision::Run);
    let leaderless = decide_for(&cards, 2, true, 0);
    assert!(
        matches!(leaderless.decision, Decision::Join { voter: false, .. }),
        "{:?}",
        leaderless.decision
    );
    assert_eq!(
        (starting.formation, leaderless.formation),
        (Some(3), Some(3))
    );
    // Once the two joiners run as voters and the founders too, nobody else has a slot and no
    // voter steps down.
    for card in &mut cards[1..5] {
        card.db = running("n00", 5, true);
        card.cluster_id = Some(ClusterId(7));
        card.formation = None;
    }
    for i in 0..7 {
        let decision = decide_for(&cards, i, true, 0).decision;
        match i {
            0..5 => assert_eq!(decision, Decision::Run, "voter {i}"),
            _ => assert!(
                matches!(decision, Decision::Join { voter: false, .. }),
                "node {i}: {decision:?}"
            ),
        }
    }
}

#[test]
fn a_founder_that_runs_as_a_non_voter_is_past_its_formation_and_a_candidate_again() {
    // Cap 3: a founder reaped during the formation came back; its rqlited follows the leader
    // as a non-voter while its card still names the formation. It is a candidate like any
    // other non-voter, not a voter of the first configuration: its formation ends at once,
    // and the free slot (two voters configured) is its own.
    let mut cards = formed(4, 2, 2, 2, Some(3));
    cards[2].formation = Some(3);
    let verdict = decide_for(&cards, 2, true, 0);
    assert_eq!(verdict.formation, None, "{verdict:?}");
    cards[2].formation = verdict.formation;
    assert!(
        matches!(
            decide_for(&cards, 2, true, 0).decision,
            Decision::ChangeRole { voter: true, .. }
        ),
        "{:?}",
        decide_for(&cards, 2, true, 0).decision
    );
    assert_eq!(decide_for(&cards, 3, true, 0).decision, Decision::Run);
}
