//! Transcripts of several nodes on the harness of [`harness`]: each node with the real
//! supervisor policy and a model of rqlited, in virtual time.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::*;
use crate::card::Running;
use crate::seal::{Key, Keyring, Sealer};
use crate::wire::{Envelope, WireError};

mod addresses;
mod anti_entropy;
mod harness;

use harness::{Delivery, Harness, WALL};

impl Harness {
    /// Every bootstrap decision names one cluster, formed once; returns its id.
    fn assert_one_formation(&self) -> ClusterId {
        let clusters: BTreeSet<ClusterId> = self
            .decisions
            .iter()
            .flatten()
            .filter_map(|d| match d {
                Decision::Bootstrap { cluster_id, .. } => Some(*cluster_id),
                _ => None,
            })
            .collect();
        assert_eq!(clusters.len(), 1, "one formation:\n{}", self.report());
        let formed = self.formations.values().filter(|f| f.2).count();
        assert_eq!(formed, 1, "formed once:\n{}", self.report());
        clusters.into_iter().next().expect("one")
    }

    /// The properties every start order must end with: the smallest id's agreement forms the
    /// one cluster (its founders all decided to bootstrap it, the seed first), and every node
    /// that was not a founder — there is one only where a node starts after the formation
    /// (`a_node_added_later_joins_and_never_bootstraps`) — joined it.
    fn assert_one_formation_seeded_by_the_smallest_id(&self) {
        let cluster = self.assert_one_formation();
        let (_, founders, _) = &self.formations[&cluster];
        assert_eq!(
            founders.first(),
            Some(&0),
            "the smallest id decides first:\n{}",
            self.report()
        );
        for i in 0..self.nodes.len() {
            if founders.contains(&i) {
                continue;
            }
            let joined = self.decisions[i]
                .iter()
                .any(|d| matches!(d, Decision::Join { .. }));
            let bootstrapped = self.decisions[i]
                .iter()
                .any(|d| matches!(d, Decision::Bootstrap { .. }));
            assert!(
                joined && !bootstrapped,
                "{} joined and never bootstrapped:\n{}",
                self.ids[i],
                self.report()
            );
        }
        let clusters: Vec<Option<ClusterId>> = self
            .nodes
            .iter()
            .map(|n| n.as_ref().and_then(|n| n.card().cluster_id))
            .collect();
        assert!(
            clusters.iter().all(|c| c.is_some() && *c == clusters[0]),
            "one cluster id everywhere: {clusters:?}\n{}",
            self.report()
        );
    }
}

fn start_in_order(n: usize, order: &[usize], gap: Duration) -> Harness {
    let mut harness = Harness::new(n);
    for (k, &i) in order.iter().enumerate() {
        harness.at(gap * k as u32, i, Delivery::Start);
    }
    harness
}

const SIZES: [usize; 3] = [3, 5, 9];
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn all_started_together_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).collect();
        let mut harness = start_in_order(n, &order, Duration::ZERO);
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

/// The agreement moves on every card that changes what it waits for (a member's view, a
/// proposal, an acknowledgement), not on the next tick: with the tick an hour long, nodes
/// started together still form within their settle period and a few deliveries. (A view-only
/// change of a card waited for the tick, up to 250 ms a round of the agreement.)
#[test]
fn the_agreement_waits_for_no_tick() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).collect();
        let mut harness = start_in_order(n, &order, Duration::ZERO);
        harness.tick = Some(Duration::from_secs(3600));
        harness.settle = Duration::ZERO; // the daemon's default
        harness.run_until_formed(Duration::from_secs(60));
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn every_founder_knows_all_founders_and_records_them_as_its_voters_once_formed() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).collect();
        let mut harness = start_in_order(n, &order, Duration::ZERO);
        harness.run_until_formed(DEADLINE);
        let cluster = harness.assert_one_formation();
        let (size, founders, _) = harness.formations[&cluster].clone();
        let expected: Vec<(NodeId, String)> = founders
            .iter()
            .map(|&i| (harness.ids[i].clone(), format!("10.0.0.{}:4002", i + 1)))
            .collect();
        assert_eq!(usize::from(size), expected.len());
        for &i in &founders {
            let node = harness.nodes[i].as_ref().expect("started");
            let mut known = node.founders();
            known.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(known, want, "{}:\n{}", harness.ids[i], harness.report());
            // A voter of the formed cluster takes them as its first voters, and its supervisor
            // persists them.
            let mut adopted = node.stored_voters().to_vec();
            adopted.sort();
            assert_eq!(
                adopted,
                want,
                "{} adopted:\n{}",
                harness.ids[i],
                harness.report()
            );
            let mut stored = harness.stored[i].voters();
            stored.sort();
            assert_eq!(
                stored,
                want,
                "{} persisted:\n{}",
                harness.ids[i],
                harness.report()
            );
        }
    }
}

#[test]
fn staggered_starts_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        // A scrambled order with 700 ms between starts.
        let order: Vec<usize> = (0..n).map(|k| (k * 7 + 3) % n).collect();
        let mut harness = start_in_order(n, &order, Duration::from_millis(700));
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn reversed_starts_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).rev().collect();
        let mut harness = start_in_order(n, &order, Duration::from_millis(1500));
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn a_node_added_later_joins_and_never_bootstraps() {
    let mut harness = Harness::new(4);
    harness.expect = 3;
    for i in 0..3 {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    harness.at(Duration::from_secs(20), 3, Delivery::Start);
    harness.run_until_formed(DEADLINE);
    assert!(harness.now > Duration::from_secs(20));
    harness.assert_one_formation_seeded_by_the_smallest_id();
}

#[test]
fn smaller_ids_arriving_during_the_agreement_do_not_deadlock_it() {
    // Five nodes, three expected, no settle period: the three largest ids start the agreement,
    // then two smaller ids arrive while it runs and become the seed. The acknowledgements given
    // to the first seed must be released when it withdraws.
    for arrival_ms in [0, 1, 2, 5, 10, 20, 50, 100, 300] {
        let mut harness = Harness::new(5);
        harness.expect = 3;
        harness.settle = Duration::ZERO;
        for i in 2..5 {
            harness.at(Duration::ZERO, i, Delivery::Start);
        }
        for i in 0..2 {
            harness.at(Duration::from_millis(arrival_ms), i, Delivery::Start);
        }
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation();
    }
}

#[test]
fn cards_reach_a_node_that_arrives_after_they_were_pushed() {
    // Two nodes gossip; their cards change; a third arrives later and must learn the current
    // cards through the digest exchange, not just the pushes it missed.
    let mut harness = Harness::new(3);
    harness.at(Duration::ZERO, 0, Delivery::Start);
    harness.at(Duration::ZERO, 1, Delivery::Start);
    harness.at(Duration::from_secs(10), 2, Delivery::Start);
    while harness.now < Duration::from_secs(20) {
        assert!(harness.step());
    }
    let late = harness.nodes[2].as_ref().expect("started");
    for i in 0..2 {
        let held = late.cards().get(&harness.ids[i]).map(Card::stamp);
        let current = harness.nodes[i].as_ref().map(|n| n.card().stamp());
        assert_eq!(
            held, current,
            "{} is current at the late node",
            harness.ids[i]
        );
    }
}

#[test]
fn foreign_and_garbage_datagrams_are_refused_and_change_nothing() {
    let harness = Harness::new(1);
    let mut node = Node::new(harness.config(0), Duration::ZERO);
    while node.poll_output().is_some() {}
    let before = node.card().clone();
    let from: SocketAddr = "10.9.9.9:7946".parse().expect("addr");
    let foreign = Envelope::unsealed(Kind::Cards, wire::cluster_tag("other"), b"x").expect("fits");
    assert!(matches!(
        node.handle_datagram(from, &foreign, Duration::from_millis(5)),
        Err(Refusal::Wire(WireError::ForeignCluster { .. }))
    ));
    assert!(
        node.handle_datagram(from, b"garbage", Duration::from_millis(6))
            .is_err()
    );
    let bad_cards =
        Envelope::unsealed(Kind::Cards, wire::cluster_tag("test"), &[9, 9, 9]).expect("fits");
    assert!(
        node.handle_datagram(from, &bad_cards, Duration::from_millis(7))
            .is_err()
    );
    let bad_swim =
        Envelope::unsealed(Kind::Swim, wire::cluster_tag("test"), &[1, 2, 3]).expect("fits");
    assert!(
        node.handle_datagram(from, &bad_swim, Duration::from_millis(8))
            .is_err()
    );
    assert_eq!(node.card(), &before);
    assert!(node.members().is_empty());
}

#[test]
fn a_second_process_with_my_node_id_is_a_conflict_and_one_stray_datagram_is_not() {
    let harness = Harness::new(2);
    let mut a = Node::new(harness.config(0), Duration::ZERO);
    let mut impostor_config = harness.config(0);
    impostor_config.identity.addr = harness.addrs[1];
    impostor_config.identity.generation = 2;
    impostor_config.raft_addr = "10.0.0.2:4002".into();
    impostor_config.http_addr = "10.0.0.2:4001".into();
    let mut impostor = Node::new(impostor_config, Duration::ZERO);
    while a.poll_output().is_some() {}
    while impostor.poll_output().is_some() {}
    let mut hello_from_impostor = |a: &mut Node, at: Duration| {
        impostor.discover(harness.addrs[0], at);
        let mut refused = Vec::new();
        while let Some(output) = impostor.poll_output() {
            if let Output::Send { datagram, .. } = output {
                refused.push(a.handle_datagram(harness.addrs[1], &datagram, at));
            }
        }
        // A tick is due by then: the node weighs what it heard.
        a.handle_timeout(at + NodeConfig::TICK);
        refused
    };
    let refused = hello_from_impostor(&mut a, Duration::from_millis(10));
    assert!(
        refused.contains(&Err(Refusal::DuplicateNodeId(harness.addrs[1]))),
        "{refused:?}"
    );
    assert!(
        !matches!(a.decision(), Decision::Conflict { .. }),
        "one stray datagram is no proof: {:?}",
        a.decision()
    );
    for ms in [700, 1400] {
        hello_from_impostor(&mut a, Duration::from_millis(ms));
    }
    assert!(
        matches!(a.decision(), Decision::Conflict { .. }),
        "{:?}",
        a.decision()
    );
    let events: Vec<Output> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(events.contains(&Output::Event(Event::DuplicateNodeId {
        addr: harness.addrs[1]
    })));
    // The impostor goes away: the conflict lapses.
    a.handle_timeout(Duration::from_secs(40));
    assert!(
        !matches!(a.decision(), Decision::Conflict { .. }),
        "{:?}",
        a.decision()
    );
}

#[test]
fn the_same_inputs_give_the_same_run() {
    let run = || {
        let mut harness = start_in_order(5, &[4, 2, 0, 3, 1], Duration::from_millis(300));
        harness.run_until_formed(DEADLINE);
        (harness.now, harness.decisions.clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_wiped_node_forgets_its_cluster_and_its_proposal() {
    let harness = Harness::new(1);
    let mut config = harness.config(0);
    config.volatile = true;
    config.db = DbState::HasData { last_voters: 1 };
    config.cluster_id = Some(ClusterId(7));
    config.stored_voters = vec![(harness.ids[0].clone(), "10.0.0.1:4002".into())];
    let now = Duration::from_secs(1);
    let mut node = Node::new(config, now);
    let before = node.card().version;
    node.wiped(now);
    let card = node.card();
    assert_eq!(card.db, DbState::Empty);
    assert_eq!(card.cluster_id, None, "a wiped node is bound to no cluster");
    assert_eq!(card.agreement, Agreement::None);
    assert!(card.version > before, "the change is published");
    assert!(
        !matches!(node.decision(), Decision::Bootstrap { .. }),
        "{:?}",
        node.decision()
    );
}

#[test]
fn restored_members_are_known_alive_with_their_cards_without_a_datagram() {
    let n = 40;
    let mut harness = Harness::created(n);
    let known = harness.known();
    for node in harness.nodes.iter_mut().flatten() {
        // What `Node::new` queued (its timers) is not the restore's doing.
        while node.poll_output().is_some() {}
        node.restore_members(known.clone(), Duration::ZERO);
        let mut sent = 0;
        while let Some(output) = node.poll_output() {
            sent += usize::from(matches!(output, Output::Send { .. }));
        }
        assert_eq!(sent, 0, "a restore sends nothing");
        let alive = node.members().values().filter(|m| m.alive).count();
        assert_eq!(alive, n - 1, "every other node is a live member");
        for (identity, card) in &known {
            if identity.node_id != node.card().node_id {
                assert_eq!(node.live_card(&identity.node_id), Some(card));
            }
        }
    }
}

#[test]
fn restored_cards_replace_older_ones_without_a_datagram_and_never_the_own_card() {
    let n = 4;
    let mut harness = Harness::created(n);
    let known = harness.known();
    for node in harness.nodes.iter_mut().flatten() {
        node.restore_members(known.clone(), Duration::ZERO);
        while node.poll_output().is_some() {}
    }
    // The cards as the restore left them (each node's view digest changed in it).
    let cards: Vec<Card> = harness
        .nodes
        .iter()
        .flatten()
        .map(|node| node.card().clone())
        .collect();
    let node = harness.nodes[0].as_mut().expect("started");
    let own = node.card().clone();
    let mut forged = own.clone();
    forged.version += 10;
    node.restore_cards(cards.iter().cloned().chain([forged]));
    assert!(
        !std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Send { .. })),
        "restoring cards sends nothing"
    );
    assert_eq!(node.card(), &own, "its own card is its own to write");
    for card in &cards[1..] {
        assert_eq!(node.live_card(&card.node_id), Some(card));
        assert_ne!(
            Some(card),
            known
                .iter()
                .find(|(id, _)| id.node_id == card.node_id)
                .map(|(_, c)| c),
            "the card held is the newer one"
        );
    }
}

#[test]
fn a_restored_membership_gossips_on_and_detects_a_crash() {
    let n = 5;
    let mut harness = Harness::new(n);
    for i in 0..n {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    // Start the nodes without delivering anything, then restore their membership.
    while harness
        .queue
        .peek()
        .is_some_and(|Reverse((at, ..))| at.is_zero())
    {
        let Some(Reverse((_, _, i, delivery))) = harness.queue.pop() else {
            break;
        };
        if matches!(delivery, Delivery::Start) {
            harness.nodes[i] = Some(Node::new(harness.config(i), Duration::ZERO));
            harness.drain(i);
        }
    }
    let known = harness.known();
    for i in 0..n {
        if let Some(node) = harness.nodes[i].as_mut() {
            node.restore_members(known.clone(), Duration::ZERO);
        }
        harness.drain(i);
    }
    // Node 4 vanishes; the others must see it down, by probing, within a generous bound.
    harness.nodes[4] = None;
    let deadline = Duration::from_secs(60);
    let gone = harness.ids[4].clone();
    let down_everywhere = |h: &Harness| {
        h.nodes[..4].iter().flatten().all(|node| {
            node.members()
                .get(&gone)
                .is_some_and(|member| !member.alive)
        })
    };
    while !down_everywhere(&harness) {
        assert!(
            harness.now < deadline,
            "not seen down:\n{}",
            harness.report()
        );
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
    }
}

#[test]
fn foca_is_sized_to_the_live_membership_never_below_the_configured_floor() {
    // Twelve nodes started as the daemon starts them with `--expect 3`: foca configured for
    // three members. Sized from that for good, each change would be passed on twice and a
    // suspicion would last 4 s, whatever the membership grew to.
    let n = 12;
    let floor = NodeConfig::swim_config(3);
    let grown = NodeConfig::swim_config(n as u32);
    assert!(
        grown.max_transmissions > floor.max_transmissions
            && grown.suspect_to_down_after > floor.suspect_to_down_after,
        "the test needs sizes whose configurations differ"
    );
    let mut harness = Harness::new(n);
    for i in 0..n {
        let mut config = harness.config(i);
        config.swim = floor.clone();
        harness.nodes[i] = Some(Node::new(config, Duration::ZERO));
    }
    let fits = |node: &Node, want: &foca::Config| {
        node.swim().max_transmissions == want.max_transmissions
            && node.swim().suspect_to_down_after == want.suspect_to_down_after
    };
    for node in harness.nodes.iter().flatten() {
        assert!(fits(node, &floor), "{:?}", node.swim());
    }
    let known = harness.known();
    for i in 0..n {
        if let Some(node) = harness.nodes[i].as_mut() {
            node.restore_members(known.clone(), Duration::ZERO);
        }
        harness.drain(i);
    }
    for node in harness.nodes.iter().flatten() {
        assert!(
            fits(node, &grown),
            "sized for {n} live members: {:?}",
            node.swim()
        );
    }
    // Nine vanish: once node 0 sees them down, it is back at the floor, not below it.
    for slot in &mut harness.nodes[3..] {
        *slot = None;
    }
    let gone: Vec<NodeId> = harness.ids[3..].to_vec();
    let deadline = Duration::from_secs(120);
    let all_down = |h: &Harness| {
        let node = h.nodes[0].as_ref().expect("node 0 runs");
        gone.iter()
            .all(|id| node.members().get(id).is_some_and(|m| !m.alive))
    };
    while !all_down(&harness) {
        assert!(
            harness.now < deadline,
            "not seen down:\n{}",
            harness.report()
        );
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
    }
    let node = harness.nodes[0].as_ref().expect("node 0 runs");
    assert!(fits(node, &floor), "back at the floor: {:?}", node.swim());
}

mod trust;
