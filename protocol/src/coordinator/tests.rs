//! Properties of the decision rules over generated card sets and arrival orders.

use super::*;
use crate::card::tests::{card, sample};
use crate::card::{Round, Running};
use proptest::prelude::*;
use proptest::sample::Index;

/// A just-started founder's rqlited as its card shows it once it answers `/status`: no leader
/// yet, not in any configuration.
fn answering() -> DbState {
    DbState::Running(Running {
        leader: None,
        term: 0,
        voters: 0,
        voter: false,
        non_voter: false,
    })
}

/// `n` empty cards `n0..n{n-1}` that all see each other, with `expect`.
fn empty_cluster(n: usize, expect: u16) -> Vec<Card> {
    let ids: Vec<NodeId> = (0..n)
        .map(|i| NodeId::new(format!("n{i:02}")).expect("id"))
        .collect();
    let digest = ViewDigest::of(&ids);
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let mut card = sample(id.as_str(), 1, 1);
            card.raft_addr = format!("10.0.0.{i}:4002");
            card.expect = expect;
            card.view = digest;
            card
        })
        .collect()
}

/// Decides for `cards[i]` with the others as live peers, in a shuffled arrival order.
fn decide_for(cards: &[Card], i: usize, settled: bool, shuffle: u64) -> Verdict {
    let mut peers: Vec<&Card> = cards
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, c)| c)
        .collect();
    let len = peers.len();
    if len > 1 {
        peers.rotate_left((shuffle as usize) % len);
        if shuffle & 1 == 1 {
            peers.reverse();
        }
    }
    // Like `Node`, the node remembers the proposal it acknowledges.
    let acked: Vec<ClusterId> = match &cards[i].agreement {
        Agreement::Ack { seed, view, round } => vec![mint_cluster_id(seed, *round, *view)],
        _ => Vec::new(),
    };
    decide(&View {
        peers,
        acked: &acked,
        ..view_of(&cards[i], &[], settled)
    })
}

/// A view of `me` among live `peers`, everything else at its plain default; tests change the
/// fields they are about with `..view_of(..)`.
fn view_of<'a>(me: &'a Card, peers: &'a [Card], settled: bool) -> View<'a> {
    View {
        me,
        peers: peers.iter().collect(),
        missing: Vec::new(),
        settled,
        looked_around: true,
        volatile: false,
        faults: Faults::default(),
        stored_voters: &[],
        acked: &[],
    }
}

/// Runs the agreement among `cards` to a fixpoint: every node re-decides with what the others
/// published, in the order given by `order`, until nothing changes.
fn run_agreement(cards: &mut [Card], order: &[usize]) -> Vec<Decision> {
    for _round in 0..10 {
        let mut changed = false;
        for &i in order {
            let verdict = decide_for(cards, i, true, i as u64);
            if verdict.agreement != cards[i].agreement
                || verdict.cluster_id != cards[i].cluster_id
                || verdict.formation != cards[i].formation
            {
                cards[i].agreement = verdict.agreement;
                cards[i].cluster_id = verdict.cluster_id;
                cards[i].formation = verdict.formation;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // The supervisors start the founders that decided to: the seed at once, the others once its
    // card shows its rqlited answering (`start_formation`). Each node's decision is taken with
    // the rqlited of every other node that decided to bootstrap answering.
    let first: Vec<Decision> = (0..cards.len())
        .map(|i| decide_for(cards, i, true, 0).decision)
        .collect();
    let started: Vec<Card> = cards
        .iter()
        .zip(&first)
        .map(|(card, decision)| {
            let mut card = card.clone();
            if matches!(decision, Decision::Bootstrap { .. }) {
                card.db = answering();
            }
            card
        })
        .collect();
    (0..cards.len())
        .map(|i| {
            let mut seen = started.clone();
            seen[i] = cards[i].clone();
            decide_for(&seen, i, true, 0).decision
        })
        .collect()
}

/// The cluster ids of the bootstrap decisions, by node (`None`: not a bootstrap).
fn formations(decisions: &[Decision]) -> Vec<Option<(ClusterId, u16)>> {
    decisions
        .iter()
        .map(|d| match d {
            Decision::Bootstrap {
                cluster_id, expect, ..
            } => Some((*cluster_id, *expect)),
            _ => None,
        })
        .collect()
}

/// Three empty nodes (`--expect 3`) that reached the agreement, deciding in `order`: their
/// cards, and the cluster of 3 the seed (node 0) decided to form.
fn agreed_three(order: &[usize]) -> (Vec<Card>, ClusterId) {
    let mut cards = empty_cluster(3, 3);
    let decisions = run_agreement(&mut cards, order);
    let Some((cluster_id, 3)) = formations(&decisions)[0] else {
        panic!("the seed forms a cluster of 3: {decisions:?}");
    };
    (cards, cluster_id)
}

fn arrival_order(n: usize, picks: &[Index]) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    let mut order = Vec::new();
    for pick in picks.iter().take(n) {
        order.push(pool.remove(pick.index(pool.len())));
    }
    order.extend(pool);
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_member_founds_one_cluster_when_expect_is_met_and_agreement_reached(
        n in 1usize..12,
        expect_cut in any::<Index>(),
        picks in proptest::collection::vec(any::<Index>(), 12),
    ) {
        let expect = 1 + expect_cut.index(n) as u16;
        let mut cards = empty_cluster(n, expect);
        let order = arrival_order(n, &picks);
        let decisions = run_agreement(&mut cards, &order);
        let found = formations(&decisions);
        let first = found[0];
        prop_assert!(first.is_some(), "decisions: {:?}", decisions);
        prop_assert!(
            found.iter().all(|f| *f == first),
            "every member founds the same cluster: {:?}", decisions
        );
        prop_assert_eq!(first.map(|(_, e)| e), Some(n as u16), "every member is a founder");
    }

    #[test]
    fn nobody_bootstraps_before_the_membership_settles(n in 1usize..8) {
        let cards = empty_cluster(n, 1);
        for i in 0..n {
            let verdict = decide_for(&cards, i, false, 0);
            prop_assert!(matches!(verdict.decision, Decision::Wait { .. }), "{:?}", verdict);
        }
    }

    #[test]
    fn a_node_with_data_never_bootstraps(
        me in card(),
        peers in proptest::collection::vec(card(), 0..8),
        settled in any::<bool>(),
        volatile in any::<bool>(),
    ) {
        prop_assume!(me.db.has_data());
        let view = View { looked_around: settled, volatile, ..view_of(&me, &peers, settled) };
        let verdict = decide(&view);
        prop_assert!(!matches!(verdict.decision, Decision::Bootstrap { .. }), "{:?}", verdict);
    }

    #[test]
    fn a_node_beside_a_node_with_data_never_bootstraps(
        n in 2usize..8,
        holder in any::<Index>(),
        picks in proptest::collection::vec(any::<Index>(), 8),
    ) {
        let mut cards = empty_cluster(n, 1);
        let holder = holder.index(n);
        cards[holder].db = DbState::HasData { last_voters: 3 };
        let decisions = run_agreement(&mut cards, &arrival_order(n, &picks));
        prop_assert!(decisions.iter().all(|d| !matches!(d, Decision::Bootstrap { .. })), "{:?}", decisions);
    }

    #[test]
    fn an_empty_node_joins_a_running_cluster_with_a_live_leader(
        n in 2usize..10,
        leader_at in any::<Index>(),
        running_at in proptest::collection::vec(any::<bool>(), 10),
        shuffle in any::<u64>(),
    ) {
        let mut cards = empty_cluster(n, n as u16);
        let cluster = ClusterId(7);
        let leader = 1 + leader_at.index(n - 1);
        let leader_id = cards[leader].node_id.clone();
        for (i, card) in cards.iter_mut().enumerate().skip(1) {
            if i == leader || running_at[i] {
                card.db = DbState::Running(Running { leader: Some(leader_id.clone()), term: 2, voters: 3, voter: true, non_voter: false });
                card.cluster_id = Some(cluster);
            }
        }
        let verdict = decide_for(&cards, 0, shuffle % 2 == 0, shuffle);
        match verdict.decision {
            Decision::Join { targets, cluster_id, voter } => {
                prop_assert!(voter, "without a cap every joiner votes");
                prop_assert_eq!(&targets[0], &cards[leader].raft_addr, "the leader comes first");
                prop_assert_eq!(cluster_id, Some(cluster));
                prop_assert_eq!(verdict.cluster_id, Some(cluster), "the joiner adopts the cluster id");
            }
            other => prop_assert!(false, "expected Join, got {:?}", other),
        }
    }

    #[test]
    fn mismatched_expect_is_a_conflict_not_a_guess(n in 2usize..8, odd in any::<Index>(), shuffle in any::<u64>()) {
        let mut cards = empty_cluster(n, 2);
        cards[odd.index(n)].expect = 5;
        for i in 0..n {
            let verdict = decide_for(&cards, i, true, shuffle);
            prop_assert!(matches!(verdict.decision, Decision::Conflict { .. }), "{:?}", verdict);
        }
    }

    #[test]
    fn fewer_than_expect_members_wait(n in 1usize..8, extra in 1u16..4, shuffle in any::<u64>()) {
        let cards = empty_cluster(n, n as u16 + extra);
        for i in 0..n {
            let verdict = decide_for(&cards, i, true, shuffle);
            prop_assert!(matches!(&verdict.decision, Decision::Wait(Waiting::Members { .. })), "{:?}", verdict);
        }
    }
}

const ROUND: Round = Round {
    generation: 1,
    version: 7,
};

#[test]
fn an_acknowledgement_is_not_given_to_a_second_seed_while_the_first_still_proposes() {
    let mut cards = empty_cluster(4, 2);
    // n02 proposes and n03 acknowledged it; n00 (smaller) now proposes too.
    cards[2].agreement = Agreement::Propose {
        view: cards[2].view,
        round: ROUND,
    };
    cards[3].agreement = Agreement::Ack {
        seed: cards[2].node_id.clone(),
        view: cards[3].view,
        round: ROUND,
    };
    cards[0].agreement = Agreement::Propose {
        view: cards[0].view,
        round: ROUND,
    };
    let verdict = decide_for(&cards, 3, true, 0);
    assert_eq!(verdict.agreement, cards[3].agreement, "{verdict:?}");
}

#[test]
fn a_withdrawn_proposal_releases_its_acknowledgers_so_a_smaller_seed_can_gather_them() {
    // The deadlock this prevents: nodes acknowledged a seed, then a node with a smaller id
    // arrived; the old seed stops proposing, and its acknowledgers must be free to follow.
    let mut cards = empty_cluster(4, 2);
    cards[3].agreement = Agreement::Ack {
        seed: cards[2].node_id.clone(),
        view: cards[3].view,
        round: ROUND,
    };
    // n02 withdrew (its card no longer proposes).
    let decisions = run_agreement(&mut cards, &[3, 2, 1, 0]);
    assert!(
        matches!(decisions[0], Decision::Bootstrap { .. }),
        "the smallest id gathers every acknowledgement: {decisions:?}"
    );
}

#[test]
fn an_acknowledgement_of_an_earlier_round_does_not_count() {
    let mut cards = empty_cluster(2, 2);
    let stale = Round {
        generation: 1,
        version: 1,
    };
    cards[1].agreement = Agreement::Ack {
        seed: cards[0].node_id.clone(),
        view: cards[1].view,
        round: stale,
    };
    cards[0].version = 5;
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Wait { .. }),
        "a new proposal needs new acknowledgements: {verdict:?}"
    );
}

#[test]
fn a_dead_seed_releases_its_acknowledgers() {
    let mut cards = empty_cluster(3, 2);
    cards[2].agreement = Agreement::Ack {
        seed: NodeId::new("gone").expect("id"),
        view: cards[2].view,
        round: ROUND,
    };
    let verdict = decide_for(&cards, 2, true, 0);
    assert_ne!(verdict.agreement, cards[2].agreement);
}

#[test]
fn an_acknowledger_is_bound_to_its_seeds_formation_as_soon_as_the_seed_decides() {
    let (mut cards, cluster_id) = agreed_three(&[0, 1, 2]);
    // Node 1 as it was when the seed's decision reached it: acknowledging, not yet bound. It is
    // bound at once, and starts rqlited once the seed has (`start_formation`).
    cards[1].cluster_id = None;
    cards[1].formation = None;
    let verdict = decide_for(&cards, 1, true, 0);
    assert_eq!(verdict.cluster_id, Some(cluster_id), "{verdict:?}");
    assert_eq!(verdict.formation, Some(3), "{verdict:?}");
    assert_eq!(
        verdict.decision,
        Decision::Wait(Waiting::SeedToStart {
            seed: cards[0].node_id.clone()
        })
    );
    cards[0].db = answering();
    let verdict = decide_for(&cards, 1, true, 0);
    assert!(
        matches!(&verdict.decision, Decision::Bootstrap { expect: 3, targets, .. } if targets.contains(&cards[1].raft_addr)),
        "{verdict:?}"
    );
}

#[test]
fn a_founder_stays_bound_to_its_formation_when_the_seed_dies() {
    let (cards, cluster_id) = agreed_three(&[0, 1, 2]);
    // The seed dies: the founders take part in no other agreement; they keep forming theirs
    // (which needs the seed back: a cluster of 3 founders cannot form without one of them).
    let survivors = [cards[1].clone(), cards[2].clone()];
    let verdict = decide(&view_of(&survivors[0], &survivors[1..], true));
    assert_eq!(verdict.cluster_id, Some(cluster_id));
    assert!(
        matches!(verdict.decision, Decision::Bootstrap { cluster_id: c, expect: 3, .. } if c == cluster_id),
        "{verdict:?}"
    );
}

#[test]
fn a_seed_keeps_its_bootstrap_decision_when_a_founder_dies() {
    let (cards, cluster_id) = agreed_three(&[2, 1, 0]);
    // A founder dies, the view is unsettled: the seed's decision stands, with the founders it
    // still sees as targets.
    let seed_only = [cards[0].clone(), cards[1].clone()];
    let verdict = decide(&view_of(&seed_only[0], &seed_only[1..], false));
    assert_eq!(
        verdict.decision,
        Decision::Bootstrap {
            cluster_id,
            expect: 3,
            targets: vec![cards[0].raft_addr.clone(), cards[1].raft_addr.clone()],
        }
    );
}

#[test]
fn founders_of_a_formation_that_cannot_complete_join_a_leader_of_another_cluster() {
    // The seed-isolation case: node 0 is bound to formation A of 3 founders, one of which was
    // cut off; the others formed B meanwhile. Nobody holds anything of A: node 0 joins B.
    let mut cards = empty_cluster(3, 3);
    cards[0].cluster_id = Some(ClusterId(1));
    cards[0].formation = Some(3);
    cards[1].cluster_id = Some(ClusterId(2));
    cards[1].db = DbState::Running(Running {
        leader: Some(cards[1].node_id.clone()),
        term: 1,
        voters: 2,
        voter: true,
        non_voter: false,
    });
    let verdict = decide_for(&cards[..2], 0, true, 0);
    assert!(
        matches!(
            &verdict.decision,
            Decision::Join {
                cluster_id: Some(ClusterId(2)),
                ..
            }
        ),
        "{verdict:?}"
    );
    assert_eq!(verdict.formation, None);
    // Same with its rqlited running in the formation (not a voter): it is given up too.
    cards[0].db = DbState::Running(Running {
        leader: None,
        term: 0,
        voters: 0,
        voter: false,
        non_voter: false,
    });
    let verdict = decide_for(&cards[..2], 0, true, 0);
    assert!(
        matches!(
            &verdict.decision,
            Decision::Join {
                cluster_id: Some(ClusterId(2)),
                ..
            }
        ),
        "{verdict:?}"
    );
    // But once a live node is a voter of A, A exists: never abandoned for B.
    cards[0].db = DbState::Empty;
    cards[2].cluster_id = Some(ClusterId(1));
    cards[2].db = DbState::Running(Running {
        leader: None,
        term: 1,
        voters: 3,
        voter: true,
        non_voter: false,
    });
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        !matches!(&verdict.decision, Decision::Join { .. }),
        "{verdict:?}"
    );
}

#[test]
fn a_proposal_and_a_cluster_id_on_the_card_are_not_a_bootstrap_decision() {
    // Simulator finding: a proposing seed that saw a leader adopted the leader's cluster id while
    // keeping its proposal; when the join failed and the leader vanished, the pair read as "I
    // decided to bootstrap" and it bootstrapped a second Raft cluster under the leader's id.
    let mut cards = empty_cluster(3, 3);
    run_agreement(&mut cards, &[2, 1, 0]);
    assert!(matches!(cards[0].agreement, Agreement::Propose { .. }));
    // What the seed's card looked like after adopting a leader's cluster id (not a formation).
    cards[0].cluster_id = Some(ClusterId(77));
    cards[0].formation = None;
    let verdict = decide_for(&cards[..1], 0, true, 0);
    assert!(
        !matches!(verdict.decision, Decision::Bootstrap { .. }),
        "{verdict:?}"
    );
}

#[test]
fn a_proposing_seed_that_joins_a_leader_withdraws_its_proposal() {
    let mut cards = empty_cluster(3, 3);
    cards[0].agreement = Agreement::Propose {
        view: cards[0].view,
        round: ROUND,
    };
    cards[2].db = DbState::Running(Running {
        leader: Some(cards[2].node_id.clone()),
        term: 1,
        voters: 1,
        voter: true,
        non_voter: false,
    });
    cards[2].cluster_id = Some(ClusterId(5));
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Join { .. }),
        "{verdict:?}"
    );
    assert_eq!(verdict.agreement, Agreement::None);
    assert_eq!(verdict.cluster_id, Some(ClusterId(5)));
}

#[test]
fn a_removed_node_rejoins_its_clusters_leader() {
    let mut cards = empty_cluster(2, 2);
    let cluster = Some(ClusterId(1));
    cards[0].db = DbState::Running(Running {
        leader: None,
        term: 3,
        voters: 0,
        voter: false,
        non_voter: false,
    });
    cards[0].cluster_id = cluster;
    cards[1].db = DbState::Running(Running {
        leader: Some(cards[1].node_id.clone()),
        term: 3,
        voters: 2,
        voter: true,
        non_voter: false,
    });
    cards[1].cluster_id = cluster;
    let verdict = decide_for(&cards, 0, true, 0);
    assert_eq!(
        verdict.decision,
        Decision::Join {
            targets: vec![cards[1].raft_addr.clone()],
            cluster_id: cluster,
            voter: true,
        }
    );
}

#[test]
fn data_of_another_cluster_is_a_conflict_and_only_volatile_mode_wipes_the_smaller_side() {
    let mut cards = empty_cluster(3, 3);
    cards[0].db = DbState::HasData { last_voters: 1 };
    cards[0].cluster_id = Some(ClusterId(1));
    for card in &mut cards[1..] {
        card.db = DbState::Running(Running {
            leader: Some(NodeId::new("n01").expect("id")),
            term: 1,
            voters: 2,
            voter: true,
            non_voter: false,
        });
        card.cluster_id = Some(ClusterId(2));
    }
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Conflict { .. }),
        "{verdict:?}"
    );
    let volatile = decide(&View {
        volatile: true,
        ..view_of(&cards[0], &cards[1..], true)
    });
    assert!(
        matches!(volatile.decision, Decision::Wipe { .. }),
        "{volatile:?}"
    );
}

#[test]
fn a_cluster_back_at_new_addresses_recovers_with_peers_json_only_when_every_voter_is_back() {
    let mut cards = empty_cluster(3, 3);
    let cluster = Some(ClusterId(9));
    for card in &mut cards {
        card.db = DbState::HasData { last_voters: 3 };
        card.cluster_id = cluster;
    }
    let stored: Vec<(NodeId, String)> = cards
        .iter()
        .map(|c| (c.node_id.clone(), format!("old-{}", c.raft_addr)))
        .collect();
    let decide_with = |cards: &[Card], stored: &[(NodeId, String)]| {
        decide(&View {
            stored_voters: stored,
            ..view_of(&cards[0], &cards[1..], true)
        })
        .decision
    };
    match decide_with(&cards, &stored) {
        Decision::Resume { join, peers } => {
            assert!(join.is_empty());
            let expected: Vec<(NodeId, String)> = cards
                .iter()
                .map(|c| (c.node_id.clone(), c.raft_addr.clone()))
                .collect();
            assert_eq!(peers, expected);
        }
        other => panic!("expected a recovery, got {other:?}"),
    }
    // One voter missing: no forced reconfiguration.
    match decide_with(&cards[..2], &stored) {
        Decision::Resume { peers, .. } => assert!(peers.is_empty()),
        other => panic!("expected a plain resume, got {other:?}"),
    }
    // Same addresses as stored: a plain resume elects by itself.
    let same: Vec<(NodeId, String)> = cards
        .iter()
        .map(|c| (c.node_id.clone(), c.raft_addr.clone()))
        .collect();
    match decide_with(&cards, &same) {
        Decision::Resume { peers, .. } => assert!(peers.is_empty()),
        other => panic!("expected a plain resume, got {other:?}"),
    }
}

#[test]
fn a_leaderless_running_voter_recovers_with_peers_json_when_every_voter_moved() {
    let mut cards = empty_cluster(2, 2);
    let cluster = Some(ClusterId(9));
    for card in &mut cards {
        card.db = DbState::Running(Running {
            leader: None,
            term: 0,
            voters: 2,
            voter: true,
            non_voter: false,
        });
        card.cluster_id = cluster;
    }
    let moved: Vec<(NodeId, String)> = cards
        .iter()
        .map(|c| (c.node_id.clone(), format!("old-{}", c.raft_addr)))
        .collect();
    let decide_with = |cards: &[Card], stored: &[(NodeId, String)], settled: bool| {
        decide(&View {
            stored_voters: stored,
            ..view_of(&cards[0], &cards[1..], settled)
        })
        .decision
    };
    let current: Vec<(NodeId, String)> = cards
        .iter()
        .map(|c| (c.node_id.clone(), c.raft_addr.clone()))
        .collect();
    assert_eq!(
        decide_with(&cards, &moved, true),
        Decision::Resume {
            join: Vec::new(),
            peers: current.clone(),
        }
    );
    // Not before the membership settled, not with a voter missing, not when nobody moved.
    assert_eq!(decide_with(&cards, &moved, false), Decision::Run);
    assert_eq!(decide_with(&cards[..1], &moved, true), Decision::Run);
    assert_eq!(decide_with(&cards, &current, true), Decision::Run);
    // Nor while a live voter of the cluster leads: then joining it is the way back.
    cards[1].db = DbState::Running(Running {
        leader: Some(cards[1].node_id.clone()),
        term: 1,
        voters: 2,
        voter: true,
        non_voter: false,
    });
    assert!(matches!(
        decide_with(&cards, &moved, true),
        Decision::Join { .. }
    ));
}

#[test]
fn a_node_with_data_looks_around_before_resuming_alone() {
    let mut cards = empty_cluster(1, 1);
    cards[0].db = DbState::HasData { last_voters: 3 };
    cards[0].cluster_id = Some(ClusterId(3));
    let stored = [(cards[0].node_id.clone(), "elsewhere:4002".to_string())];
    let verdict = decide(&View {
        looked_around: false,
        stored_voters: &stored,
        ..view_of(&cards[0], &[], true)
    });
    assert!(
        matches!(verdict.decision, Decision::Wait { .. }),
        "{verdict:?}"
    );
}

#[test]
fn a_node_that_does_not_see_its_own_leader_still_counts_its_side_in_a_split() {
    // Simulator finding: the voters of my side were read from live *leader* cards only, so a
    // node that did not see its own leader counted its side as 0 and wiped the larger side.
    let mut cards = empty_cluster(2, 2);
    cards[0].cluster_id = Some(ClusterId(1));
    cards[0].db = DbState::Running(Running {
        leader: Some(NodeId::new("n09").expect("id")),
        term: 4,
        voters: 3,
        voter: true,
        non_voter: false,
    });
    cards[1].cluster_id = Some(ClusterId(2));
    cards[1].db = DbState::Running(Running {
        leader: Some(cards[1].node_id.clone()),
        term: 1,
        voters: 2,
        voter: true,
        non_voter: false,
    });
    let larger = decide(&View {
        volatile: true,
        ..view_of(&cards[0], &cards[1..2], true)
    });
    assert!(
        matches!(larger.decision, Decision::Conflict { .. }),
        "the side of 3 voters must not wipe: {larger:?}"
    );
}

#[test]
fn an_acknowledger_whose_acknowledgement_lapsed_is_still_a_founder() {
    // Simulator finding: n003 acknowledged the seed, then was cut off and saw it down (its
    // acknowledgement lapsed) before the seed's decision reached it. The seed decided with that
    // acknowledgement, so the formation waits for n003; n003 must take part.
    let (mut cards, cluster_id) = agreed_three(&[0, 1, 2]);
    cards[2].agreement = Agreement::None;
    cards[2].cluster_id = None;
    cards[2].formation = None;
    let with = |acked: &[ClusterId]| {
        decide(&View {
            acked,
            ..view_of(&cards[2], &cards[..2], true)
        })
    };
    let remembered = with(&[cluster_id]);
    assert!(
        matches!(remembered.decision, Decision::Bootstrap { cluster_id: c, expect: 3, .. } if c == cluster_id),
        "{remembered:?}"
    );
    assert_eq!(remembered.formation, Some(3));
    let forgotten = with(&[]);
    assert!(
        !matches!(forgotten.decision, Decision::Bootstrap { .. }),
        "a node that never acknowledged it is no founder: {forgotten:?}"
    );
}

mod roles;

#[test]
fn a_voter_whose_own_rqlited_follows_a_leader_of_another_label_takes_that_label_and_no_split() {
    // Simulator finding: a founder's rqlited, started for a formation that never completed,
    // joined the cluster formed meanwhile through its `-join` retries; its card kept the old
    // label and every node saw a split.
    let mut cards = empty_cluster(2, 2);
    let follower = |leader: &NodeId, term| {
        DbState::Running(Running {
            leader: Some(leader.clone()),
            term,
            voters: 2,
            voter: true,
            non_voter: false,
        })
    };
    let leader_id = cards[1].node_id.clone();
    cards[0].cluster_id = Some(ClusterId(1));
    cards[0].formation = Some(3);
    cards[0].db = follower(&leader_id, 2);
    cards[1].cluster_id = Some(ClusterId(2));
    cards[1].db = follower(&leader_id, 2);
    let verdict = decide_for(&cards, 0, true, 0);
    assert_eq!(verdict.decision, Decision::Run, "{verdict:?}");
    assert_eq!(verdict.cluster_id, Some(ClusterId(2)));
    assert_eq!(verdict.formation, None);

    // The leader's card: another term, so my rqlited's leader id may be one it has not yet
    // forgotten, now taken by a node of another cluster: still a split.
    cards[1].db = follower(&leader_id, 1);
    let verdict = decide_for(&cards, 0, true, 0);
    assert!(
        matches!(verdict.decision, Decision::Conflict(Conflict::Split(_))),
        "{verdict:?}"
    );
    assert_eq!(verdict.cluster_id, Some(ClusterId(1)));
}

#[test]
fn every_founder_lists_the_seed_first_whatever_the_addresses() {
    // The seed (the smallest id) at the largest address: sorted by address, it came last.
    let mut cards = empty_cluster(4, 4);
    for (i, card) in cards.iter_mut().enumerate() {
        card.raft_addr = format!("10.0.0.{}:4002", 9 - i);
    }
    let seed = cards[0].raft_addr.clone();
    let decisions = run_agreement(&mut cards, &[3, 2, 1, 0]);
    for (i, decision) in decisions.iter().enumerate() {
        let Decision::Bootstrap { targets, .. } = decision else {
            panic!("{} does not bootstrap: {decision:?}", cards[i].node_id);
        };
        assert_eq!(targets.len(), 4, "{decision:?}");
        assert_eq!(targets[0], seed, "{}: {targets:?}", cards[i].node_id);
    }
    // A founder that has seen only the seed and itself bound lists the seed first too.
    let mut partial = [cards[0].clone(), cards[3].clone()];
    partial[0].db = answering();
    let verdict = decide(&view_of(&partial[1], &partial[..1], true));
    let Decision::Bootstrap { targets, .. } = verdict.decision else {
        panic!("{verdict:?}");
    };
    assert_eq!(targets, vec![seed, cards[3].raft_addr.clone()]);
}

#[test]
fn a_founder_starts_rqlited_once_the_seed_has() {
    let (mut cards, cluster_id) = agreed_three(&[0, 1, 2]);
    // The seed starts at once; the others wait until its card shows its rqlited answering, so
    // that it listens when their first notification round, which it heads, comes.
    assert!(matches!(
        decide_for(&cards, 0, true, 0).decision,
        Decision::Bootstrap { .. }
    ));
    let seed = Decision::Wait(Waiting::SeedToStart {
        seed: cards[0].node_id.clone(),
    });
    for i in [1, 2] {
        assert_eq!(decide_for(&cards, i, true, 0).decision, seed, "node {i}");
    }
    // Spawned is not enough: its store may not be open yet, and a round that finds it closed
    // ends there (seen in Docker: a formation of 4.1 s instead of 1.3 s).
    cards[0].db = DbState::Starting;
    for i in [1, 2] {
        assert_eq!(decide_for(&cards, i, true, 0).decision, seed, "node {i}");
    }
    cards[0].db = answering();
    for i in [1, 2] {
        let decision = decide_for(&cards, i, true, 0).decision;
        assert!(
            matches!(&decision, Decision::Bootstrap { cluster_id: c, targets, .. } if *c == cluster_id && targets[0] == cards[0].raft_addr),
            "node {i}: {decision:?}"
        );
    }
    // A seed that is no longer live keeps nobody waiting: nothing would come of it.
    let survivors = [cards[1].clone(), cards[2].clone()];
    assert!(matches!(
        decide(&view_of(&survivors[0], &survivors[1..], true)).decision,
        Decision::Bootstrap { .. }
    ));
}
