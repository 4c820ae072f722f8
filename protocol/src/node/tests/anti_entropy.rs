//! Anti-entropy by tallies: a settled cluster sends tallies and nothing else; a card one node
//! lacks is drawn by the first tally that differs.

use super::*;
use crate::card::CardMessage;
use crate::stored::Stored;

/// Three nodes formed, then left alone for 30 s so that the formation's own pushes are over.
fn settled_three() -> Harness {
    let mut harness = start_in_order(3, &[0, 1, 2], Duration::ZERO);
    harness.run_until_formed(DEADLINE);
    let settled = harness.now + Duration::from_secs(30);
    harness.run_until(settled);
    harness
}

fn describe(log: &[(Duration, usize, usize, CardMessage)]) -> String {
    log.iter()
        .map(|(at, from, to, message)| {
            let what = match message {
                CardMessage::Summary { .. } => "summary".to_string(),
                CardMessage::Digest { entries, .. } => format!("digest of {}", entries.len()),
                CardMessage::Push { cards } => format!("push of {}", cards.len()),
            };
            format!("  {:.3} s {from} → {to}: {what}\n", at.as_secs_f64())
        })
        .collect()
}

#[test]
fn a_settled_cluster_sends_tallies_and_nothing_else() {
    let mut harness = settled_three();
    let from = harness.now;
    harness.card_log = Some(Vec::new());
    harness.run_until(from + Duration::from_secs(30));
    let log = harness.card_log.take().unwrap_or_default();
    let others: Vec<_> = log
        .iter()
        .filter(|(_, _, _, m)| !matches!(m, CardMessage::Summary { .. }))
        .cloned()
        .collect();
    assert!(
        others.is_empty(),
        "only tallies between nodes that hold the same cards:\n{}",
        describe(&others)
    );
    for i in 0..3 {
        let sent = log.iter().filter(|(_, from, _, _)| *from == i).count();
        // One a sync period (1 s) over 30 s; a margin for the window's edges.
        assert!(
            (28..=31).contains(&sent),
            "node {i} sent {sent} tallies in 30 s:\n{}",
            describe(&log)
        );
    }
}

#[test]
fn a_card_a_node_lacks_is_drawn_by_the_first_tally_that_differs() {
    let mut harness = settled_three();
    let lost = harness.ids[0].clone();
    let stamp = harness.nodes[0].as_ref().expect("started").card().stamp();
    let tally_of =
        |harness: &Harness, i: usize| harness.nodes[i].as_ref().expect("started").tally();
    let before = tally_of(&harness, 2);
    // As if every push of node 0's card to node 2 had been lost.
    harness.nodes[2]
        .as_mut()
        .expect("started")
        .cards
        .remove(&lost)
        .expect("node 2 held node 0's card");
    assert_ne!(
        tally_of(&harness, 2),
        before,
        "the tally shows a card missing"
    );

    harness.card_log = Some(Vec::new());
    let from = harness.now;
    harness.run_until(from + Duration::from_secs(10));
    let log = harness.card_log.take().unwrap_or_default();
    let held = harness.nodes[2]
        .as_ref()
        .expect("started")
        .cards()
        .get(&lost)
        .map(Card::stamp);
    assert_eq!(
        held,
        Some(stamp),
        "node 2 holds node 0's card again:\n{}",
        describe(&log)
    );
    let digests = log
        .iter()
        .filter(|(_, _, _, m)| matches!(m, CardMessage::Digest { .. }))
        .count();
    let pushed_to_2 = log.iter().any(|(_, _, to, m)| {
        *to == 2
            && matches!(m, CardMessage::Push { cards } if cards.iter().any(|c| c.node_id == lost))
    });
    assert!(
        digests >= 1 && pushed_to_2,
        "a differing tally drew a digest, and the digest the card:\n{}",
        describe(&log)
    );
    assert_eq!(tally_of(&harness, 2), before, "the tallies agree again");
}

/// Before nodes with data stopped publishing their view, every death changed every survivor's
/// card by its view digest alone; at 1 000 nodes the tallies then differed for minutes.
#[test]
fn a_running_cluster_changes_no_card_for_a_death_alone() {
    let mut harness = settled_three();
    let leader = harness.nodes[0]
        .as_ref()
        .and_then(|node| node.card().db.running())
        .and_then(|running| running.leader.clone())
        .expect("formed with a leader");
    let dead = (0..3)
        .find(|&i| harness.ids[i] != leader)
        .expect("a follower");
    let watchers: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let card_of =
        |harness: &Harness, i: usize| harness.nodes[i].as_ref().expect("started").card().clone();
    let mut last: Vec<Card> = watchers.iter().map(|&i| card_of(&harness, i)).collect();
    for card in &last {
        assert_eq!(
            card.view,
            ViewDigest::NONE,
            "a node with data publishes no view:\n{}",
            harness.report()
        );
    }
    let dead_id = harness.ids[dead].clone();
    harness.crash(dead);
    // Until both survivors have seen the death, and 5 s more: every change of a survivor's
    // card must change something besides its version and view (the model's rqlited reports
    // one voter fewer at once, a real change).
    let mut seen_at = None;
    let deadline = harness.now + Duration::from_secs(30);
    while seen_at.is_none_or(|at| harness.now < at + Duration::from_secs(5)) {
        assert!(
            harness.now < deadline,
            "the death was not seen:\n{}",
            harness.report()
        );
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
        for (k, &i) in watchers.iter().enumerate() {
            let card = card_of(&harness, i);
            assert!(
                card.version == last[k].version || !card.same_state(&last[k]),
                "node {i}'s card changed by its version alone:\n  before {:?}\n  after  {:?}",
                last[k],
                card
            );
            last[k] = card;
        }
        let seen = watchers.iter().all(|&i| {
            harness.nodes[i]
                .as_ref()
                .and_then(|node| node.members().get(&dead_id))
                .is_some_and(|member| !member.alive)
        });
        if seen && seen_at.is_none() {
            seen_at = Some(harness.now);
        }
    }
}

#[test]
fn an_empty_node_publishes_the_view_it_sees() {
    let mut harness = Harness::new(3);
    harness.expect = 4; // never enough to form: every node stays empty
    for i in 0..3 {
        let config = harness.config(i);
        harness.start_on(i, config, Stored::default(), false);
    }
    harness.run_until(Duration::from_secs(10));
    let everyone = ViewDigest::of(harness.ids.iter());
    for i in 0..3 {
        assert_eq!(
            harness.nodes[i].as_ref().expect("started").card().view,
            everyone,
            "node {i} publishes the live view of all three:\n{}",
            harness.report()
        );
    }
}
