use super::*;
use crate::wire::{self, MAX_PAYLOAD};
use proptest::prelude::*;

const TAG: u64 = 0x0123_4567_89ab_cdef;
/// 2026-12-03 12:00:00 UTC, in ms: any fixed wall clock does.
const NOON: Duration = Duration::from_millis(1_796_299_200_000);

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; KEY_LEN])
}

fn ring(keys: &[u8]) -> Keyring {
    Keyring::new(keys.iter().map(|b| key(*b)).collect()).expect("valid ring")
}

fn sealer(keys: &[u8], salt: u8) -> Sealer {
    let keyring = (!keys.is_empty()).then(|| ring(keys));
    Sealer::new(keyring, [salt; SALT_LEN])
}

#[test]
fn a_sealed_datagram_opens_under_the_same_key_to_the_same_kind_and_payload() {
    let mut alice = sealer(&[1], 0xa);
    let mut bob = sealer(&[1], 0xb);
    let datagram = alice.seal(Kind::Cards, TAG, b"hello", NOON).expect("seals");
    assert_eq!(datagram.len(), HEADER_LEN + SEAL_OVERHEAD + 5);
    assert!(
        !datagram.windows(5).any(|w| w == b"hello"),
        "the payload is encrypted"
    );
    let opened = bob.open(&datagram, TAG, NOON).expect("opens");
    assert_eq!(opened.kind, Kind::Cards);
    assert_eq!(&opened.payload[..], b"hello");
    assert_eq!(opened.key, Some(key(1).id()));
}

#[test]
fn without_keyrings_datagrams_go_open_and_carry_no_key() {
    let mut alice = sealer(&[], 0xa);
    let mut bob = sealer(&[], 0xb);
    let datagram = alice.seal(Kind::Swim, TAG, b"ping", NOON).expect("frames");
    assert_eq!(datagram.len(), HEADER_LEN + 4);
    let opened = bob.open(&datagram, TAG, NOON).expect("opens");
    assert_eq!(&opened.payload[..], b"ping");
    assert_eq!(opened.key, None);
}

#[test]
fn a_keyed_node_refuses_open_datagrams_and_a_keyless_one_sealed_ones() {
    let open = sealer(&[], 0xa)
        .seal(Kind::Swim, TAG, b"x", NOON)
        .expect("frames");
    let sealed = sealer(&[1], 0xa)
        .seal(Kind::Swim, TAG, b"x", NOON)
        .expect("seals");
    assert_eq!(
        sealer(&[1], 0xb).open(&open, TAG, NOON),
        Err(WireError::Seal(SealError::Unsealed))
    );
    assert_eq!(
        sealer(&[], 0xb).open(&sealed, TAG, NOON),
        Err(WireError::Seal(SealError::NoKeyring))
    );
}

#[test]
fn another_key_is_refused_by_its_id_and_a_tampered_datagram_does_not_open() {
    let sealed = sealer(&[1], 0xa)
        .seal(Kind::Cards, TAG, b"card", NOON)
        .expect("seals");
    assert_eq!(
        sealer(&[2], 0xb).open(&sealed, TAG, NOON),
        Err(WireError::Seal(SealError::UnknownKey(key(1).id())))
    );
    // Every byte matters: the header, key id and nonce are associated data, the rest is sealed.
    for at in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[at] ^= 0x01;
        let result = sealer(&[1], 0xb).open(&tampered, TAG, NOON);
        assert!(result.is_err(), "a flipped byte {at} was accepted");
    }
}

#[test]
fn a_receiver_with_two_keys_opens_either_and_seals_with_the_first() {
    let from_old = sealer(&[1], 0xa)
        .seal(Kind::Swim, TAG, b"a", NOON)
        .expect("seals");
    let from_new = sealer(&[2], 0xc)
        .seal(Kind::Swim, TAG, b"b", NOON)
        .expect("seals");
    let mut both = sealer(&[2, 1], 0xb);
    assert_eq!(
        both.open(&from_old, TAG, NOON).expect("opens").key,
        Some(key(1).id())
    );
    assert_eq!(
        both.open(&from_new, TAG, NOON).expect("opens").key,
        Some(key(2).id())
    );
    let mine = both.seal(Kind::Swim, TAG, b"c", NOON).expect("seals");
    assert_eq!(
        sealer(&[1, 2], 0xd)
            .open(&mine, TAG, NOON)
            .expect("opens")
            .key,
        Some(key(2).id()),
        "sealed with the primary"
    );
}

#[test]
fn a_stamp_outside_the_window_is_refused_either_way_and_inside_it_accepted() {
    let window = REPLAY_WINDOW.as_millis() as u64;
    for (offset_ms, ahead, accepted) in [
        (window - 1_000, true, true),
        (window - 1_000, false, true),
        (window + 1_000, true, false),
        (window + 1_000, false, false),
    ] {
        let offset = Duration::from_millis(offset_ms);
        let sent_at = if ahead { NOON + offset } else { NOON - offset };
        let datagram = sealer(&[1], 0xa)
            .seal(Kind::Swim, TAG, b"x", sent_at)
            .expect("seals");
        let result = sealer(&[1], 0xb).open(&datagram, TAG, NOON);
        if accepted {
            assert!(result.is_ok(), "{offset_ms} ms (ahead {ahead}): {result:?}");
        } else {
            let skew = if ahead {
                offset_ms as i64
            } else {
                -(offset_ms as i64)
            };
            assert_eq!(
                result,
                Err(WireError::Seal(SealError::Stale { skew_ms: skew })),
                "{offset_ms} ms (ahead {ahead})"
            );
        }
    }
}

#[test]
fn a_replayed_datagram_is_refused_and_reordered_ones_are_not() {
    let mut alice = sealer(&[1], 0xa);
    let mut bob = sealer(&[1], 0xb);
    let sent: Vec<Vec<u8>> = (0..70)
        .map(|i| alice.seal(Kind::Swim, TAG, &[i], NOON).expect("seals"))
        .collect();
    // Arrival order 1, 0, 2: reordering is not a replay.
    assert!(bob.open(&sent[1], TAG, NOON).is_ok());
    assert!(bob.open(&sent[0], TAG, NOON).is_ok());
    assert!(bob.open(&sent[2], TAG, NOON).is_ok());
    for replay in [&sent[0], &sent[1], &sent[2]] {
        assert_eq!(
            bob.open(replay, TAG, NOON),
            Err(WireError::Seal(SealError::Replayed))
        );
    }
    // Counter 70 arrives; 3 is now 67 below it, beyond the 64 remembered: refused, as is 2.
    assert!(bob.open(&sent[69], TAG, NOON).is_ok());
    assert_eq!(
        bob.open(&sent[3], TAG, NOON),
        Err(WireError::Seal(SealError::Replayed))
    );
    // 10 was never seen and is within 64 of the highest: accepted once.
    assert!(bob.open(&sent[10], TAG, NOON).is_ok());
    assert!(bob.open(&sent[10], TAG, NOON).is_err());
}

#[test]
fn a_receiver_remembers_a_bounded_number_of_senders() {
    let mut bob = sealer(&[1], 0xb);
    for n in 0..(REMEMBERED_SENDERS + 50) {
        let mut salt = [0u8; SALT_LEN];
        salt[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let mut sender = Sealer::new(Some(ring(&[1])), salt);
        let datagram = sender.seal(Kind::Swim, TAG, b"x", NOON).expect("seals");
        bob.open(&datagram, TAG, NOON + Duration::from_millis(n as u64))
            .expect("opens");
    }
    assert_eq!(bob.senders.len(), REMEMBERED_SENDERS);
}

#[test]
fn a_forged_datagram_leaves_no_trace_in_the_replay_table() {
    let mut bob = sealer(&[1], 0xb);
    let mut forged = sealer(&[1], 0xa)
        .seal(Kind::Swim, TAG, b"x", NOON)
        .expect("seals");
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    assert!(bob.open(&forged, TAG, NOON).is_err());
    assert!(bob.senders.is_empty(), "only authenticated datagrams count");
}

#[test]
fn key_ids_are_stable_across_builds() {
    // A changed derivation would make every running node drop its peers' datagrams as sealed
    // under an unknown key.
    assert_eq!(key(0).id().to_string(), KEY_ID_ZEROS);
    assert_ne!(key(0).id(), key(1).id());
}

/// The id of the all-zero key: SHA-256 of the label and 32 zero bytes, computed independently
/// (`python3 -c "import hashlib; print(hashlib.sha256(b'rq4d gossip key id v1'+bytes(32)).hexdigest()[:8])"`).
const KEY_ID_ZEROS: &str = "59fd5fd9";

#[test]
fn key_ids_read_back_from_their_hex_form() {
    let id = key(3).id();
    assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
    assert!("xyz".parse::<KeyId>().is_err());
    assert!("0123456g".parse::<KeyId>().is_err());
}

#[test]
fn keys_parse_from_base64_and_never_show_in_debug_output() {
    let text = key(7).to_base64();
    let parsed = Key::parse(&format!("  {text}\n")).expect("parses");
    assert_eq!(parsed, key(7));
    assert!(!format!("{parsed:?}").contains(&text));
    assert_eq!(Key::parse("not base64!"), Err(KeyError::NotBase64));
    assert_eq!(Key::parse("AAAA"), Err(KeyError::WrongLength(3)));
}

#[test]
fn a_keyring_file_skips_comments_and_names_the_bad_line() {
    let (a, b) = (key(1).to_base64(), key(2).to_base64());
    let ring = Keyring::parse(&format!("# new key first\n{b}\n\n{a}\n")).expect("parses");
    assert_eq!(ring.ids(), vec![key(2).id(), key(1).id()]);
    assert_eq!(ring.primary(), &key(2));
    assert_eq!(
        Keyring::parse(&format!("{a}\n# c\nxyz\n")),
        Err(KeyringError::Line {
            line: 3,
            error: KeyError::NotBase64
        })
    );
    assert_eq!(
        Keyring::parse(&format!("{a}\n{a}\n")),
        Err(KeyringError::Duplicate {
            line: 2,
            id: key(1).id()
        })
    );
    assert_eq!(Keyring::parse("# nothing\n\n"), Err(KeyringError::Empty));
    let many: String = (0..=MAX_KEYS as u8)
        .map(|b| format!("{}\n", key(b).to_base64()))
        .collect();
    assert_eq!(
        Keyring::parse(&many),
        Err(KeyringError::TooMany(MAX_KEYS + 1))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic_the_opener(
        bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        keyed in any::<bool>(),
    ) {
        let mut bob = sealer(if keyed { &[1] } else { &[] }, 0xb);
        let _ = bob.open(&bytes, TAG, NOON);
    }

    #[test]
    fn rq4d_shaped_garbage_is_refused_by_a_keyed_node(
        body in proptest::collection::vec(any::<u8>(), 0..1400),
        kind in 1u8..=2,
    ) {
        let mut datagram = wire::Envelope::frame(Kind::Swim, TAG, SEAL_PREFIX as u8, &[]).expect("frames");
        datagram[HEADER_LEN - 1] = kind;
        datagram.extend_from_slice(&body);
        datagram.truncate(MAX_DATAGRAM);
        prop_assert!(sealer(&[1], 0xb).open(&datagram, TAG, NOON).is_err());
    }

    #[test]
    fn any_payload_that_fits_round_trips_sealed(
        payload in proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
    ) {
        let datagram = sealer(&[1], 0xa).seal(Kind::Cards, TAG, &payload, NOON).expect("fits");
        prop_assert!(datagram.len() <= MAX_DATAGRAM);
        let opened = sealer(&[1], 0xb).open(&datagram, TAG, NOON).expect("opens");
        prop_assert_eq!(&opened.payload[..], &payload[..]);
    }
}
