use super::*;
use proptest::prelude::*;

pub(crate) fn node_id() -> impl Strategy<Value = NodeId> {
    "[a-z0-9._-]{1,64}".prop_map(|id| NodeId::new(id).expect("strategy makes valid ids"))
}

fn running() -> impl Strategy<Value = Running> {
    (
        proptest::option::of(node_id()),
        any::<u64>(),
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(leader, term, voters, voter, non_voter)| Running {
            leader,
            term,
            voters,
            voter,
            non_voter,
        })
}

fn db_state() -> impl Strategy<Value = DbState> {
    prop_oneof![
        Just(DbState::Empty),
        any::<u16>().prop_map(|last_voters| DbState::HasData { last_voters }),
        Just(DbState::Starting),
        running().prop_map(DbState::Running),
    ]
}

fn agreement() -> impl Strategy<Value = Agreement> {
    prop_oneof![
        Just(Agreement::None),
        (any::<u64>(), any::<(u64, u64)>()).prop_map(|(v, (g, r))| Agreement::Propose {
            view: ViewDigest(v),
            round: Round {
                generation: g,
                version: r
            },
        }),
        (node_id(), any::<u64>(), any::<(u64, u64)>()).prop_map(|(seed, v, (g, r))| {
            Agreement::Ack {
                seed,
                view: ViewDigest(v),
                round: Round {
                    generation: g,
                    version: r,
                },
            }
        }),
    ]
}

pub(crate) fn card() -> impl Strategy<Value = Card> {
    let keys =
        proptest::collection::vec(any::<[u8; 4]>().prop_map(KeyId), 0..=crate::seal::MAX_KEYS);
    (
        (
            node_id(),
            any::<u64>(),
            any::<u64>(),
            any::<([u8; 4], u16)>(),
            "[a-z0-9.:-]{1,60}",
            "[a-z0-9.:-]{1,60}",
            any::<u16>(),
            db_state(),
            agreement(),
            proptest::option::of(any::<u64>().prop_map(ClusterId)),
            proptest::option::of(any::<u16>()),
            any::<u64>().prop_map(ViewDigest),
        ),
        keys,
        any::<bool>(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(
            |(
                (
                    node_id,
                    generation,
                    version,
                    addr,
                    raft_addr,
                    http_addr,
                    expect,
                    db,
                    agreement,
                    cluster_id,
                    formation,
                    view,
                ),
                keys,
                read_only,
                voter_cap,
            )| Card {
                node_id,
                generation,
                version,
                gossip_addr: SocketAddr::from(addr),
                raft_addr,
                http_addr,
                expect,
                read_only,
                voter_cap,
                db,
                agreement,
                cluster_id,
                formation,
                view,
                keys,
            },
        )
}

fn digest_entry() -> impl Strategy<Value = DigestEntry> {
    (node_id(), any::<u64>(), any::<u64>()).prop_map(|(node_id, generation, version)| DigestEntry {
        node_id,
        generation,
        version,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pushes_round_trip_and_fit_a_datagram(cards in proptest::collection::vec(card(), 0..12)) {
        let payloads = CardMessage::pushes(&cards);
        let mut back = Vec::new();
        for payload in payloads {
            prop_assert!(payload.len() <= MAX_PAYLOAD);
            match CardMessage::decode(&payload).expect("decodes") {
                CardMessage::Push { cards } => back.extend(cards),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(back, cards);
    }

    #[test]
    fn digests_round_trip_and_fit_a_datagram(entries in proptest::collection::vec(digest_entry(), 0..80), reply in any::<bool>()) {
        let mut back = Vec::new();
        for payload in CardMessage::digests(entries.clone(), reply) {
            prop_assert!(payload.len() <= MAX_PAYLOAD);
            match CardMessage::decode(&payload).expect("decodes") {
                CardMessage::Digest { entries, reply: r, .. } => { prop_assert_eq!(r, reply); back.extend(entries) }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        let mut sorted = entries;
        sorted.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        prop_assert_eq!(back, sorted);
    }

    #[test]
    fn a_tally_ignores_order_and_shows_any_one_entry_changed_added_or_missing(
        entries in proptest::collection::btree_map(node_id(), (any::<u64>(), any::<u64>()), 1..40),
        pick in any::<proptest::sample::Index>(),
        bump in 1..u64::MAX,
    ) {
        let tally = |entries: &mut dyn Iterator<Item = (&NodeId, &(u64, u64))>| {
            let mut tally = TableTally::default();
            for (id, stamp) in entries {
                tally.add(id, *stamp);
            }
            tally
        };
        let forward = tally(&mut entries.iter());
        prop_assert_eq!(forward, tally(&mut entries.iter().rev()));
        let (id, &(generation, version)) = entries.iter().nth(pick.index(entries.len())).expect("one");
        let mut changed = entries.clone();
        changed.insert(id.clone(), (generation, version.wrapping_add(bump)));
        prop_assert_ne!(forward, tally(&mut changed.iter()));
        let mut missing = entries.clone();
        missing.remove(id);
        prop_assert_ne!(forward, tally(&mut missing.iter()));
        let stranger = NodeId::new("stranger-node").expect("id");
        let mut added = entries.clone();
        if added.insert(stranger, (0, 0)).is_none() {
            prop_assert_ne!(forward, tally(&mut added.iter()));
        }
    }

    #[test]
    fn garbage_never_panics_the_card_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let _ = CardMessage::decode(&bytes);
    }

    #[test]
    fn truncated_messages_are_errors(cards in proptest::collection::vec(card(), 1..4), cut in any::<proptest::sample::Index>()) {
        let payload = CardMessage::Push { cards }.encode().expect("encodes");
        let cut = cut.index(payload.len());
        prop_assert!(CardMessage::decode(&payload[..cut]).is_err());
    }

    #[test]
    fn the_table_keeps_the_newest_card_in_any_arrival_order(mut cards in proptest::collection::vec(card(), 1..10), seed in any::<u64>()) {
        // Same node for all: the table must end with the max stamp whatever the order.
        let id = cards[0].node_id.clone();
        for card in &mut cards { card.node_id = id.clone(); }
        let newest = cards.iter().map(Card::stamp).max().expect("non-empty");
        let mut rng = seed;
        let mut table = CardTable::default();
        while !cards.is_empty() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let card = cards.swap_remove((rng >> 33) as usize % cards.len());
            table.merge(card);
        }
        prop_assert_eq!(table.get(&id).map(Card::stamp), Some(newest));
    }
}

#[test]
fn each_chunk_of_a_large_digest_is_answered_only_for_its_own_range() {
    // 300 members: the digest needs several datagrams.
    let mut table = CardTable::default();
    for i in 0..300 {
        table.merge(sample(&format!("node-{i:04}"), 1, 1));
    }
    let chunks = CardMessage::digests(table.digest(), false);
    assert!(chunks.len() > 1, "the digest is chunked");
    let mut covered = Vec::new();
    for payload in &chunks {
        let Ok(CardMessage::Digest { entries, range, .. }) = CardMessage::decode(payload) else {
            panic!("a digest");
        };
        // A peer holding the same table has nothing to send for any chunk.
        let (to_send, ask) = table.answer(&entries, &range);
        assert!(to_send.is_empty() && !ask, "{} cards drawn", to_send.len());
        covered.extend(
            table
                .iter()
                .filter(|card| range.covers(&card.node_id))
                .map(|card| card.node_id.clone()),
        );
    }
    // A peer lacking one card is sent exactly it, by exactly one chunk.
    let mut lacking = table.clone();
    let missing = NodeId::new("node-0150").expect("id");
    lacking.cards.remove(&missing);
    let mut sent = Vec::new();
    for payload in &chunks {
        let Ok(CardMessage::Digest { entries, range, .. }) = CardMessage::decode(payload) else {
            panic!("a digest");
        };
        // The answer of the full table to the lacking peer's digest chunks:
        let theirs: Vec<DigestEntry> = entries
            .into_iter()
            .filter(|e| lacking.get(&e.node_id).is_some())
            .collect();
        sent.extend(
            table
                .answer(&theirs, &range)
                .0
                .into_iter()
                .map(|c| c.node_id.clone()),
        );
    }
    assert_eq!(sent, vec![missing]);
    covered.sort();
    covered.dedup();
    assert_eq!(covered.len(), 300, "the chunks' ranges cover every id");
}

#[test]
fn a_digest_answer_sends_what_the_peer_lacks_and_asks_for_what_it_has() {
    let mut mine = CardTable::default();
    let mut a = sample("a", 1, 5);
    mine.merge(a.clone());
    mine.merge(sample("b", 1, 1));
    a.version = 9;
    let theirs = vec![
        DigestEntry {
            node_id: a.node_id.clone(),
            generation: 1,
            version: 9,
        },
        DigestEntry {
            node_id: NodeId::new("c").expect("id"),
            generation: 1,
            version: 1,
        },
    ];
    let (to_send, ask) = mine.answer(&theirs, &DigestRange::default());
    let sent: Vec<&str> = to_send.iter().map(|c| c.node_id.as_str()).collect();
    assert_eq!(sent, vec!["b"], "b is unknown to the peer, a is older here");
    assert!(ask, "the peer holds a newer a and an unknown c");
}

pub(crate) fn sample(id: &str, generation: u64, version: u64) -> Card {
    Card {
        node_id: NodeId::new(id).expect("id"),
        generation,
        version,
        gossip_addr: "127.0.0.1:7946".parse().expect("addr"),
        raft_addr: "127.0.0.1:4002".into(),
        http_addr: "127.0.0.1:4001".into(),
        expect: 3,
        read_only: false,
        voter_cap: None,
        db: DbState::Empty,
        agreement: Agreement::None,
        cluster_id: None,
        formation: None,
        view: ViewDigest(0),
        keys: Vec::new(),
    }
}
