//! What a sender who lies can make a node do: the keyring keeps strangers out, the bounds keep
//! impossible claims out, and a copied node id is refused by the process that copied it.

use foca::{Header, Member, Message};

use super::*;
use crate::card::CardMessage;
use crate::claims::ClaimError;
use crate::seal::SealError;

const STRANGER: &str = "10.9.9.9:7946";

fn stranger() -> SocketAddr {
    STRANGER.parse().expect("addr")
}

/// An identity for the stranger that forges datagrams (a plausible one: born at `WALL`).
fn forger() -> NodeIdentity {
    NodeIdentity {
        node_id: NodeId::new("forger").expect("id"),
        addr: stranger(),
        generation: WALL.as_millis() as u64,
    }
}

/// A SWIM datagram as foca would write it: header, update count, updates.
pub(super) fn swim(
    src: NodeIdentity,
    dst: NodeIdentity,
    message: Message<NodeIdentity>,
    updates: &[Member<NodeIdentity>],
) -> Vec<u8> {
    let header = Header {
        src,
        src_incarnation: 0,
        dst,
        message,
    };
    let payload = crate::codec::swim_payload(&header, updates).expect("encodes");
    Envelope::unsealed(Kind::Swim, wire::cluster_tag("test"), &payload).expect("fits")
}

fn cards(cards: &[Card]) -> Vec<u8> {
    let payload = CardMessage::Push {
        cards: cards.to_vec(),
    }
    .encode()
    .expect("encodes");
    Envelope::unsealed(Kind::Cards, wire::cluster_tag("test"), &payload).expect("fits")
}

/// Delivers a datagram from outside the harness to node `i` now, and drains what it does.
pub(super) fn inject(
    harness: &mut Harness,
    i: usize,
    from: SocketAddr,
    datagram: &[u8],
) -> Result<(), Refusal> {
    let now = harness.now;
    let result = harness.nodes[i]
        .as_mut()
        .expect("started")
        .handle_datagram(from, datagram, now);
    harness.drain(i);
    result
}

/// Three nodes started together, run until they form one cluster.
pub(super) fn formed_three() -> Harness {
    let mut harness = start_in_order(3, &[0, 1, 2], Duration::ZERO);
    harness.run_until_formed(DEADLINE);
    harness
}

/// Every node sees every other alive at its real address, and every node runs as a member of
/// one cluster with one leader.
fn assert_intact(harness: &Harness) {
    assert!(harness.formed(), "still formed:\n{}", harness.report());
    for (i, node) in harness.nodes.iter().enumerate() {
        let Some(node) = node else { continue };
        for (j, other) in harness.nodes.iter().enumerate() {
            if i == j || other.is_none() {
                continue;
            }
            let member = node.members().get(&harness.ids[j]);
            assert!(
                member.is_some_and(|m| m.alive && m.identity.addr == harness.addrs[j]),
                "{} sees {} alive at {}: {member:?}\n{}",
                harness.ids[i],
                harness.ids[j],
                harness.addrs[j],
                harness.report()
            );
        }
        assert_eq!(node.decision(), &Decision::Run, "{}", harness.report());
    }
}

#[test]
fn a_forged_down_update_from_the_far_future_changes_nothing() {
    let mut harness = formed_three();
    let victim = harness.nodes[2]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let forged = NodeIdentity {
        generation: u64::MAX,
        ..victim.clone()
    };
    let dst = harness.nodes[0]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let datagram = swim(forger(), dst, Message::Gossip, &[Member::down(forged)]);
    inject(&mut harness, 0, stranger(), &datagram).expect("the rest of the datagram is used");
    let until = harness.now + Duration::from_secs(20);
    harness.run_until(until);
    assert_intact(&harness);
    let seen = &harness.nodes[0].as_ref().expect("started").members()[&victim.node_id];
    assert_eq!(seen.identity, victim, "the real identity stands");
}

#[test]
fn a_header_from_the_far_future_is_refused_whole() {
    let mut harness = formed_three();
    let dst = harness.nodes[0]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let src = NodeIdentity {
        generation: u64::MAX,
        ..forger()
    };
    let datagram = swim(src, dst, Message::Ping(1), &[]);
    let result = inject(&mut harness, 0, stranger(), &datagram);
    assert!(
        matches!(
            result,
            Err(Refusal::Claim(ClaimError::FutureGeneration { .. }))
        ),
        "{result:?}"
    );
    let node = harness.nodes[0].as_ref().expect("started");
    assert!(!node.members().contains_key(&forger().node_id));
}

#[test]
fn a_forged_leader_card_from_the_far_future_wipes_nothing_even_in_volatile_mode() {
    // Volatile mode: the losing side of a split may wipe. A forged "bigger cluster" must not
    // make it the losing side.
    let mut harness = Harness::new(3);
    harness.volatile = true;
    for i in 0..3 {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    harness.run_until_formed(DEADLINE);
    let mut forged = harness.nodes[2].as_ref().expect("started").card().clone();
    forged.generation = u64::MAX;
    forged.version = u64::MAX;
    forged.cluster_id = Some(ClusterId(0xdead_beef));
    forged.db = DbState::Running(Running {
        leader: Some(forged.node_id.clone()),
        term: 99,
        voters: u16::MAX,
        voter: true,
        non_voter: false,
    });
    let result = inject(&mut harness, 0, stranger(), &cards(&[forged]));
    assert!(matches!(result, Err(Refusal::Claim(_))), "{result:?}");
    let until = harness.now + Duration::from_secs(10);
    harness.run_until(until);
    assert_intact(&harness);
    assert!(
        harness
            .decisions
            .iter()
            .flatten()
            .all(|d| !matches!(d, Decision::Wipe { .. } | Decision::Conflict { .. })),
        "{}",
        harness.report()
    );
}

#[test]
fn a_card_alone_cannot_move_a_member() {
    let mut harness = formed_three();
    let real = harness.nodes[2].as_ref().expect("started").card().clone();
    // Plausible: a later life, a version in bounds, somewhere the forger listens.
    let mut forged = real.clone();
    forged.generation = real.generation + 10;
    forged.version = 1;
    forged.gossip_addr = stranger();
    forged.raft_addr = "10.9.9.9:4002".into();
    forged.http_addr = "10.9.9.9:4001".into();
    inject(&mut harness, 0, stranger(), &cards(&[forged])).expect("a card it may hold");
    let node = harness.nodes[0].as_ref().expect("started");
    assert_ne!(
        node.live_card(&real.node_id).map(|c| c.raft_addr.clone()),
        Some("10.9.9.9:4002".to_string()),
        "a card at an address gossip does not know the member at does not count"
    );
}

#[test]
fn a_card_of_a_later_life_gossip_has_not_confirmed_does_not_mask_the_real_one() {
    let mut harness = formed_three();
    let real = harness.nodes[2].as_ref().expect("started").card().clone();
    // Plausible in every field: the member's own addresses, a later life within the skew.
    let mut forged = real.clone();
    forged.generation = real.generation + 10;
    forged.version = 1;
    forged.db = DbState::Empty;
    let held = harness.nodes[0]
        .as_ref()
        .expect("started")
        .cards()
        .get(&real.node_id)
        .cloned();
    inject(&mut harness, 0, stranger(), &cards(&[forged])).expect("not refused, not taken");
    let node = harness.nodes[0].as_ref().expect("started");
    assert_eq!(node.cards().get(&real.node_id), held.as_ref());
    let until = harness.now + Duration::from_secs(5);
    harness.run_until(until);
    assert_intact(&harness);
}

/// A card of node 1's id, as another life at `addr` with `generation` would send it.
fn other_life_of_node_1(harness: &Harness, addr: SocketAddr, generation: u64) -> Card {
    let mut card = harness.nodes[1].as_ref().expect("started").card().clone();
    card.gossip_addr = addr;
    card.raft_addr = format!("{}:4002", addr.ip());
    card.http_addr = format!("{}:4001", addr.ip());
    card.generation = generation;
    card.version = 1;
    card.db = DbState::Empty;
    card
}

#[test]
fn a_rumour_of_another_life_is_challenged_and_outbids_nothing() {
    let mut harness = formed_three();
    let before = harness.nodes[1]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let elsewhere: SocketAddr = "10.0.0.77:7946".parse().expect("addr");
    let rumour = other_life_of_node_1(&harness, elsewhere, before.generation + 10);
    let now = harness.now;
    let node = harness.nodes[1].as_mut().expect("started");
    node.handle_datagram(stranger(), &cards(&[rumour]), now)
        .expect("a relayed card is no refusal");
    let challenged = std::iter::from_fn(|| node.poll_output())
        .any(|o| matches!(o, Output::Send { to, .. } if to == elsewhere));
    assert!(challenged, "the rumoured address is asked");
    assert_eq!(
        node.identity(),
        &before,
        "a rumour alone changes no identity"
    );
}

#[test]
fn a_running_node_does_not_outbid_a_claim_far_ahead_of_its_clock() {
    let mut harness = formed_three();
    let before = harness.nodes[1]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let at: SocketAddr = "10.0.0.77:7946".parse().expect("addr");
    let ahead = (WALL + harness.now + Duration::from_secs(50)).as_millis() as u64;
    let claim = other_life_of_node_1(&harness, at, ahead);
    let now = harness.now;
    let node = harness.nodes[1].as_mut().expect("started");
    // Direct: from the very address it names, within the bounds of a generation.
    let _ = node.handle_datagram(at, &cards(&[claim]), now);
    assert_eq!(
        node.identity().generation,
        before.generation,
        "its next life after a restart must not be shadowed"
    );
}

#[test]
fn pings_naming_my_id_from_another_socket_are_no_evidence() {
    let mut harness = formed_three();
    let me = harness.nodes[1]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let claimed = NodeIdentity {
        addr: "10.0.0.77:7946".parse().expect("addr"),
        generation: me.generation + 1,
        ..me.clone()
    };
    for k in 0..8 {
        harness.now += Duration::from_millis(400);
        let datagram = swim(claimed.clone(), me.clone(), Message::Ping(k), &[]);
        let result = inject(&mut harness, 1, stranger(), &datagram);
        assert_eq!(result, Err(Refusal::DuplicateNodeId(stranger())));
    }
    let node = harness.nodes[1].as_ref().expect("started");
    assert_eq!(node.duplicate(harness.now), None, "{}", harness.report());
    assert_eq!(node.decision(), &Decision::Run);
}

#[test]
fn a_flood_of_invented_members_stays_within_the_cap() {
    let mut harness = Harness::new(1);
    let mut config = harness.config(0);
    config.max_members = 8;
    harness.nodes[0] = Some(Node::new(config, Duration::ZERO));
    harness.drain(0);
    let dst = harness.nodes[0]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    for k in 0..200u32 {
        harness.now += Duration::from_millis(5);
        let addr = SocketAddr::from(([10, 8, (k / 250) as u8, (k % 250) as u8 + 1], 7946));
        let fake = NodeIdentity {
            node_id: NodeId::new(format!("fake-{k}")).expect("id"),
            addr,
            generation: 1,
        };
        let _ = inject(
            &mut harness,
            0,
            addr,
            &swim(fake.clone(), dst.clone(), Message::Announce, &[]),
        );
        let mut card = crate::card::tests::sample(fake.node_id.as_str(), 1, 1);
        card.gossip_addr = addr;
        let _ = inject(&mut harness, 0, addr, &cards(&[card]));
    }
    let node = harness.nodes[0].as_ref().expect("started");
    assert!(
        node.members().len() <= 8,
        "{} members",
        node.members().len()
    );
    assert!(node.cards().len() <= 8, "{} cards", node.cards().len());
}

#[test]
fn a_node_told_it_is_down_over_and_over_renews_once_per_interval() {
    let mut harness = formed_three();
    let me = harness.nodes[0]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let peer = harness.nodes[1]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let start = harness.now;
    let mut generations = BTreeSet::new();
    for k in 0..200u64 {
        harness.now = start + Duration::from_millis(10 * k);
        let current = harness.nodes[0]
            .as_ref()
            .expect("started")
            .identity()
            .clone();
        generations.insert(current.generation);
        let _ = inject(
            &mut harness,
            0,
            peer.addr,
            &swim(peer.clone(), current, Message::TurnUndead, &[]),
        );
    }
    // 2 s of "you are down" 100 times a second: at most one renewal per RENEW_EVERY.
    let renewals = generations.len() - 1;
    assert!(
        renewals <= 3,
        "{renewals} renewals in 2 s (generations {generations:?}, from {})",
        me.generation
    );
    assert!(renewals >= 1, "a node told it is down does renew");
}

#[test]
fn a_strangers_digest_or_tally_draws_no_cards() {
    let digest = CardMessage::Digest {
        entries: Vec::new(),
        reply: false,
        range: crate::card::DigestRange::default(),
    };
    // A tally that differs from every member's: a member's answer would be its digest.
    let summary = CardMessage::Summary {
        tally: crate::card::TableTally::default(),
    };
    for message in [digest, summary] {
        let mut harness = formed_three();
        let payload = message.encode().expect("encodes");
        let datagram =
            Envelope::unsealed(Kind::Cards, wire::cluster_tag("test"), &payload).expect("fits");
        let now = harness.now;
        let node = harness.nodes[0].as_mut().expect("started");
        assert_eq!(
            node.handle_datagram(stranger(), &datagram, now),
            Err(Refusal::NotAMember(stranger())),
            "{message:?}"
        );
        let sent_to_stranger = std::iter::from_fn(|| node.poll_output())
            .filter(|o| matches!(o, Output::Send { to, .. } if *to == stranger()))
            .count();
        assert_eq!(sent_to_stranger, 0, "{message:?}");
    }
}

fn keyring(byte: u8) -> Keyring {
    Keyring::single(Key::from_bytes([byte; crate::seal::KEY_LEN]))
}

#[test]
fn a_keyed_cluster_forms_and_drops_keyless_and_foreign_key_datagrams() {
    let mut harness = Harness::new(3);
    harness.keyring = Some(keyring(1));
    for i in 0..3 {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    harness.run_until_formed(DEADLINE);
    harness.assert_one_formation_seeded_by_the_smallest_id();
    let dst = harness.nodes[0]
        .as_ref()
        .expect("started")
        .identity()
        .clone();
    let open = swim(forger(), dst.clone(), Message::Announce, &[]);
    assert_eq!(
        inject(&mut harness, 0, stranger(), &open),
        Err(Refusal::Wire(WireError::Seal(SealError::Unsealed)))
    );
    let mut other = Sealer::new(Some(keyring(2)), [9; crate::seal::SALT_LEN]);
    let payload = &open[crate::wire::HEADER_LEN..];
    let foreign = other
        .seal(
            Kind::Swim,
            wire::cluster_tag("test"),
            payload,
            WALL + harness.now,
        )
        .expect("seals");
    assert!(matches!(
        inject(&mut harness, 0, stranger(), &foreign),
        Err(Refusal::Wire(WireError::Seal(SealError::UnknownKey(_))))
    ));
    let node = harness.nodes[0].as_ref().expect("started");
    assert!(!node.members().contains_key(&forger().node_id));
    assert_eq!(
        node.card().keys,
        vec![keyring(1).primary().id()],
        "the card names the keys held"
    );
}

#[test]
fn a_replayed_datagram_of_a_member_is_dropped() {
    let mut harness = Harness::new(2);
    harness.keyring = Some(keyring(1));
    harness.tolerate_refusals = true;
    harness.at(Duration::ZERO, 0, Delivery::Start);
    harness.at(Duration::ZERO, 1, Delivery::Start);
    // Capture what node 1 sends node 0, and deliver the first datagram twice.
    let mut first = None;
    while harness.step() && harness.now < Duration::from_secs(1) {
        if first.is_none()
            && let Some(Reverse((_, _, 0, Delivery::Datagram { from, bytes }))) =
                harness.queue.peek()
        {
            first = Some((*from, bytes.clone()));
        }
    }
    let (from, bytes) = first.expect("node 1 spoke to node 0");
    let result = inject(&mut harness, 0, from, &bytes);
    assert_eq!(
        result,
        Err(Refusal::Wire(WireError::Seal(SealError::Replayed)))
    );
}

/// Runs until slots 0–2 run rqlited with a leader (slot 3 is started later, or not at all).
fn run_until_three_run(harness: &mut Harness) {
    let three_running = |h: &Harness| {
        (0..3).all(|i| {
            h.nodes[i]
                .as_ref()
                .and_then(|n| n.card().db.running())
                .is_some_and(|r| r.leader.is_some())
        })
    };
    while !three_running(harness) {
        assert!(harness.now < DEADLINE, "formed:\n{}", harness.report());
        assert!(harness.step());
    }
}

/// Slots 0–2 formed and running rqlited; slot 3, not started, has slot 1's id.
fn three_running_and_a_twin() -> Harness {
    let mut harness = Harness::new(4);
    harness.expect = 3;
    harness.tolerate_refusals = true;
    harness.ids[3] = harness.ids[1].clone();
    for i in 0..3 {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    run_until_three_run(&mut harness);
    harness
}

/// A copied node id: slot 3 is a second process with the id of slot 1, started once the
/// cluster of slots 0–2 runs. `discovers_all`: its discovery finds every node (the real member
/// included); else only slot 0, so all it hears of the real member is relayed.
fn impostor(discovers_all: bool) -> Harness {
    impostor_with(discovers_all, false)
}

/// [`impostor`]; with `data`, the impostor starts on a copy of the member's volume.
fn impostor_with(discovers_all: bool, data: bool) -> Harness {
    let mut harness = three_running_and_a_twin();
    if !discovers_all {
        harness.discovery[3] = Some(vec![0]);
    }
    let start = harness.now + Duration::from_secs(5);
    if data {
        harness.run_until(start);
        let copied = harness.nodes[1].as_ref().expect("started").card().clone();
        let mut config = harness.config(3);
        config.identity.generation = copied.generation + 5_000;
        let volume = harness.stored[1].clone();
        assert!(volume.committed, "the member's volume holds data");
        harness.start_on(3, config, volume, true);
    } else {
        harness.at(start, 3, Delivery::Start);
    }
    harness.run_until(start + Duration::from_secs(30));
    harness
}

fn assert_impostor_refused(harness: &Harness) {
    let report = harness.report();
    assert!(
        harness.decisions[3].iter().all(|d| !d.starts_rqlited()),
        "the impostor never starts rqlited:\n{report}"
    );
    let impostor = harness.nodes[3].as_ref().expect("started");
    assert!(
        matches!(
            impostor.decision(),
            Decision::Conflict(crate::coordinator::Conflict::IdInUse { .. })
        ),
        "the impostor refuses:\n{report}"
    );
    let real = harness.nodes[1].as_ref().expect("started");
    assert_eq!(real.decision(), &Decision::Run, "{report}");
    assert!(real.card().db.running().is_some_and(|r| r.voter));
    for i in [0, 2] {
        let node = harness.nodes[i].as_ref().expect("started");
        let member = &node.members()[&harness.ids[1]];
        assert!(
            member.alive && member.identity.addr == harness.addrs[1],
            "{} keeps the real {} at {}: {member:?}\n{report}",
            harness.ids[i],
            harness.ids[1],
            harness.addrs[1]
        );
        assert_eq!(node.decision(), &Decision::Run, "{report}");
    }
}

#[test]
fn an_impostor_that_greets_the_real_member_refuses_and_the_member_keeps_its_place() {
    assert_impostor_refused(&impostor(true));
}

#[test]
fn an_impostor_that_hears_of_the_real_member_only_through_others_refuses_too() {
    assert_impostor_refused(&impostor(false));
}

#[test]
fn a_copied_volume_that_greets_the_real_member_refuses_without_resuming() {
    assert_impostor_refused(&impostor_with(true, true));
}

#[test]
fn a_copied_volume_that_hears_of_the_real_member_only_through_others_refuses_too() {
    assert_impostor_refused(&impostor_with(false, true));
}

#[test]
fn a_node_back_with_its_volume_at_a_new_address_is_not_an_impostor() {
    // The real member crashes and comes back elsewhere with its data before the others saw
    // it down: the rumours of its old life name a dead address, and it resumes.
    let mut harness = three_running_and_a_twin();
    let card = harness.nodes[1].as_ref().expect("started").card().clone();
    harness.crash(1);
    let mut config = harness.config(3);
    config.identity.generation = card.generation + 1000;
    let volume = harness.stored[1].clone();
    assert!(volume.committed, "the member's volume holds data");
    harness.start_on(3, config, volume, true);
    let until = harness.now + Duration::from_secs(20);
    harness.run_until(until);
    let moved = &harness.decisions[3];
    assert!(
        moved.iter().any(|d| matches!(d, Decision::Resume { .. })),
        "it resumes:\n{}",
        harness.report()
    );
    assert!(
        moved
            .iter()
            .all(|d| !matches!(d, Decision::Conflict { .. })),
        "{}",
        harness.report()
    );
}

mod random_input {
    //! The stable twin of `fuzz/fuzz_targets/node_receive.rs`: the same entry point fed random
    //! bytes — raw, and framed as valid SWIM and card envelopes, open and sealed — inside
    //! `cargo test`.
    use proptest::prelude::*;

    use super::*;

    fn fed(keyed: bool, kind: Kind, framed: bool, bytes: &[u8]) -> Node {
        let mut harness = Harness::new(1);
        if keyed {
            harness.keyring = Some(keyring(1));
        }
        let mut node = Node::new(harness.config(0), Duration::ZERO);
        let before = node.identity().clone();
        let tag = wire::cluster_tag("test");
        let datagram = match (framed, keyed) {
            (false, _) => bytes.to_vec(),
            (true, true) => {
                let mut sealer = Sealer::new(Some(keyring(1)), [0xee; crate::seal::SALT_LEN]);
                match sealer.seal(kind, tag, bytes, WALL) {
                    Ok(datagram) => datagram,
                    Err(_) => return node,
                }
            }
            (true, false) => match Envelope::unsealed(kind, tag, bytes) {
                Ok(datagram) => datagram,
                Err(_) => return node,
            },
        };
        for step in 0..2u64 {
            let _ = node.handle_datagram(stranger(), &datagram, Duration::from_millis(5 * step));
            while node.poll_output().is_some() {}
        }
        assert_eq!(node.identity().node_id, before.node_id);
        assert!(node.identity().generation >= before.generation);
        node
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn random_datagrams_never_panic_a_node_nor_change_who_it_is(
            bytes in proptest::collection::vec(any::<u8>(), 0..1400),
            keyed in any::<bool>(),
            swim in any::<bool>(),
            framed in any::<bool>(),
        ) {
            let kind = if swim { Kind::Swim } else { Kind::Cards };
            fed(keyed, kind, framed, &bytes);
        }
    }
}

/// Two processes of one id, from both sides: the member that kept the id (it outbid the other's
/// generation) leaves for good, the other renews once onto the same generation and wins foca's
/// tie-break by address — and from then on its own card, not the gone process's, is the one its
/// peers hold. (Seen on a two-engine swarm: every peer kept the gone process's card, with a
/// higher version, and counted the member as missing for good.)
#[test]
fn the_process_that_kept_an_id_leaves_and_the_other_takes_it_with_its_own_card() {
    let mut harness = three_running_and_a_twin();
    // B: the same id, empty, started 25 s after A on the wall clock.
    let mut config = harness.config(3);
    let born = harness.nodes[1].as_ref().expect("a").identity().generation + 25_000;
    config.identity.generation = born;
    harness.start_on(3, config, crate::stored::Stored::default(), false);
    let until = harness.now + Duration::from_secs(30);
    harness.run_until(until);
    // The side that stays: A keeps its place by outbidding B; B refuses.
    assert_impostor_refused(&harness);
    let a = harness.nodes[1].as_ref().expect("a");
    assert_eq!(a.identity().generation, born + 1, "A outbid B");
    // A's card moves on within its life (as rqlited's terms move it), past any version B's
    // fresh card will reach soon.
    for _ in 0..10 {
        let now = harness.now;
        harness.nodes[1].as_mut().expect("a").set_keyring(None, now);
        harness.drain(1);
    }
    let now = harness.now;
    harness.nodes[1].as_mut().expect("a").leave(now);
    harness.drain(1);
    harness.crash(1);
    // Longer than the 30 s a sighting of A keeps B yielding.
    let until = harness.now + Duration::from_secs(50);
    harness.run_until(until);
    let report = harness.report();
    let b = harness.nodes[3].as_ref().expect("b");
    assert!(
        !matches!(b.decision(), Decision::Conflict(_)),
        "B no longer yields:\n{report}"
    );
    assert_eq!(
        b.identity().generation,
        born + 1,
        "precondition: B renewed once, onto A's generation:\n{report}"
    );
    // The side that goes on: B's own card (at B's address; A's named A's) is the member's card
    // at every peer, whatever B's rqlited has done since (it may have joined already).
    for i in [0, 2] {
        let node = harness.nodes[i].as_ref().expect("peer");
        let member = &node.members()[&harness.ids[1]];
        assert_eq!(member.identity.addr, harness.addrs[3], "{report}");
        let live = node.live_card(&harness.ids[1]).map(|c| c.gossip_addr);
        assert_eq!(
            live,
            Some(harness.addrs[3]),
            "{} holds B's card:\n{report}",
            harness.ids[i]
        );
    }
}
