//! The wire format: every datagram rq4d sends is one [`Envelope`].
//!
//! ```text
//!  0      2   3      4              12     13
//!  +------+---+------+--------------+------+------------------------+
//!  | "R4" | v | seal | cluster tag  | kind | body …                 |
//!  +------+---+------+--------------+------+------------------------+
//! ```
//!
//! * `magic` tells rq4d traffic from anything else that reaches the port.
//! * `v` is the protocol version; a peer speaking another version is refused with an error that
//!   names both, so a mixed-version rollout shows up in the logs instead of as silence.
//! * `seal` is the length of the seal prefix after the fixed header: `0` for an open datagram
//!   (no keyring: the body is the payload), [`crate::seal::SEAL_PREFIX`] for one sealed with the
//!   cluster keyring (key id, nonce, then the sealed payload; see [`crate::seal`]).
//! * `cluster tag` is a stable hash of `--cluster-name`: two clusters on one network never mix.
//!   It is a name, not a secret: only a keyring keeps strangers out.
//! * `kind` says who reads the payload: foca ([`Kind::Swim`]) or the card layer ([`Kind::Cards`]).
//!
//! The fixed header is hand-written (not bincode) so the version and cluster checks happen before
//! any payload parsing. Payloads are bincode 2 with an allocation limit proportional to the
//! datagram size ([`DECODE_LIMIT`]), so a hostile length prefix cannot make the decoder reserve
//! memory it was not given bytes for.

use bytes::{Buf, BufMut};
use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// The largest datagram rq4d sends or accepts. Fits an Ethernet MTU with room for IP/UDP headers
/// and VXLAN overlays.
pub const MAX_DATAGRAM: usize = 1400;
/// Magic bytes that open every rq4d datagram.
pub const MAGIC: [u8; 2] = *b"R4";
/// The protocol version this build speaks. 2: cards carry the formation (`Card::formation`).
/// 3: sealed datagrams, and cards carry the key ids of the sender's keyring. 4: cards carry
/// the read-only flag and the voter cap (`Card::read_only`, `Card::voter_cap`). 5: anti-entropy
/// sends a table tally, a digest only when tallies differ (`CardMessage::Summary`).
pub const VERSION: u8 = 5;
/// Size of the fixed envelope header.
pub const HEADER_LEN: usize = 13;
/// The space left for a payload in one datagram: the same whether or not it is sealed, so a
/// cluster behaves the same with and without a keyring.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - HEADER_LEN - crate::seal::SEAL_OVERHEAD;

/// Who reads an envelope's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// SWIM membership traffic, encoded by foca through [`crate::codec::WireCodec`].
    Swim = 1,
    /// Card dissemination and anti-entropy ([`crate::card::CardMessage`]).
    Cards = 2,
}

impl Kind {
    fn from_byte(byte: u8) -> Result<Self, WireError> {
        match byte {
            1 => Ok(Self::Swim),
            2 => Ok(Self::Cards),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

/// Every way a datagram can be refused. The daemon counts each variant separately.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the fixed header.
    #[error("datagram of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes exceeds the {MAX_DATAGRAM}-byte limit")]
    TooLarge(usize),
    /// Not rq4d traffic at all.
    #[error("not an rq4d datagram (bad magic bytes)")]
    BadMagic,
    /// rq4d traffic of another protocol version.
    #[error("protocol version {theirs} is not supported (this node speaks version {ours})")]
    UnsupportedVersion {
        /// The version this build speaks.
        ours: u8,
        /// The version found in the datagram.
        theirs: u8,
    },
    /// rq4d traffic of another cluster name.
    #[error("datagram belongs to another cluster (tag {theirs:#018x}, ours {ours:#018x})")]
    ForeignCluster {
        /// Our cluster tag.
        ours: u64,
        /// The tag found in the datagram.
        theirs: u64,
    },
    /// The seal check failed (see [`crate::seal`]).
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// The kind byte names no known payload.
    #[error("unknown payload kind {0}")]
    UnknownKind(u8),
    /// The payload did not decode.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// An outgoing payload would not fit one datagram.
    #[error("payload of {0} bytes does not fit one datagram")]
    PayloadTooLarge(usize),
}

/// A stable 64-bit tag for a cluster name (FNV-1a): the same on every build and platform, unlike
/// `std`'s hasher.
pub fn cluster_tag(cluster_name: &str) -> u64 {
    fnv1a(cluster_name.as_bytes())
}

/// FNV-1a over bytes; used for cluster tags and view digests, where stability across processes
/// matters and cryptographic strength does not.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// A datagram whose fixed header checked out: its kind, seal and borrowed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Who reads the payload.
    pub kind: Kind,
    /// The length of the seal prefix at the front of the body (0: open, the body is the
    /// payload).
    pub seal: u8,
    /// The bytes after the fixed header.
    pub body: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses and checks the fixed header of `datagram` for cluster `tag`.
    pub fn open(datagram: &'a [u8], tag: u64) -> Result<Self, WireError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(WireError::TooLarge(datagram.len()));
        }
        if datagram.len() < HEADER_LEN {
            return Err(WireError::TooShort(datagram.len()));
        }
        let mut header = &datagram[..HEADER_LEN];
        let mut magic = [0u8; 2];
        header.copy_to_slice(&mut magic);
        if magic != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = header.get_u8();
        if version != VERSION {
            return Err(WireError::UnsupportedVersion {
                ours: VERSION,
                theirs: version,
            });
        }
        let seal = header.get_u8();
        let theirs = header.get_u64();
        if theirs != tag {
            return Err(WireError::ForeignCluster { ours: tag, theirs });
        }
        let kind = Kind::from_byte(header.get_u8())?;
        Ok(Self {
            kind,
            seal,
            body: &datagram[HEADER_LEN..],
        })
    }

    /// Frames `body` as a datagram of `kind` for cluster `tag` with a seal prefix of `seal`
    /// bytes at the front of the body (0: an open datagram). Sealing itself is
    /// [`crate::seal::Sealer`]'s.
    pub fn frame(kind: Kind, tag: u64, seal: u8, body: &[u8]) -> Result<Vec<u8>, WireError> {
        if seal == 0 && body.len() > MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge(body.len()));
        }
        let mut datagram = Vec::with_capacity(HEADER_LEN + body.len());
        datagram.put_slice(&MAGIC);
        datagram.put_u8(VERSION);
        datagram.put_u8(seal);
        datagram.put_u64(tag);
        datagram.put_u8(kind as u8);
        datagram.put_slice(body);
        Ok(datagram)
    }

    /// An open (unsealed) datagram of `kind` for cluster `tag`: what a node without a keyring
    /// sends.
    pub fn unsealed(kind: Kind, tag: u64, payload: &[u8]) -> Result<Vec<u8>, WireError> {
        Self::frame(kind, tag, 0, payload)
    }
}

/// The most a payload decode may allocate. bincode counts claimed *memory* (`len ×
/// size_of::<T>()`), and an in-memory entry (a `String` header, say) is larger than its smallest
/// encoding (one length byte): a 1400-byte datagram of minimal entries legitimately needs about 14×
/// its size in memory. The bound stays proportional to the datagram, so a forged length prefix
/// cannot make the decoder reserve more than this, whatever it claims.
pub const DECODE_LIMIT: usize = 32 * MAX_DATAGRAM;

/// The bincode configuration for every payload: varint integers and [`DECODE_LIMIT`].
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a serde value with rq4d's bincode configuration.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Decodes one serde value from the front of `bytes`; returns it and the number of bytes read.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), WireError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| WireError::Malformed(e.to_string()))
}

/// Decodes one serde value that must fill `bytes` exactly (trailing garbage is an error).
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after the payload",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: u64 = 0x1234_5678_9abc_def0;

    #[test]
    fn a_framed_datagram_opens_to_the_same_kind_and_payload() {
        let datagram = Envelope::unsealed(Kind::Cards, TAG, b"hello").expect("fits");
        let envelope = Envelope::open(&datagram, TAG).expect("opens");
        assert_eq!(envelope.kind, Kind::Cards);
        assert_eq!(envelope.seal, 0);
        assert_eq!(envelope.body, b"hello");
    }

    #[test]
    fn another_version_is_refused_naming_both_versions() {
        let mut datagram = Envelope::unsealed(Kind::Swim, TAG, b"x").expect("fits");
        datagram[2] = 7;
        let err = Envelope::open(&datagram, TAG).expect_err("refused");
        assert_eq!(
            err,
            WireError::UnsupportedVersion {
                ours: VERSION,
                theirs: 7
            }
        );
        let text = err.to_string();
        assert!(
            text.contains('7') && text.contains(&VERSION.to_string()),
            "{text}"
        );
    }

    #[test]
    fn another_cluster_is_refused() {
        let datagram = Envelope::unsealed(Kind::Swim, cluster_tag("a"), b"x").expect("fits");
        let err = Envelope::open(&datagram, cluster_tag("b")).expect_err("refused");
        assert!(matches!(err, WireError::ForeignCluster { .. }));
    }

    #[test]
    fn oversized_payloads_are_refused_on_both_sides() {
        let payload = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            Envelope::unsealed(Kind::Swim, TAG, &payload),
            Err(WireError::PayloadTooLarge(MAX_PAYLOAD + 1))
        );
        let datagram = vec![0u8; MAX_DATAGRAM + 1];
        assert_eq!(
            Envelope::open(&datagram, TAG),
            Err(WireError::TooLarge(MAX_DATAGRAM + 1))
        );
    }

    #[test]
    fn cluster_tags_are_stable_across_builds() {
        // FNV-1a test vector: a changed hash would split every running cluster on upgrade.
        assert_eq!(cluster_tag(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(cluster_tag("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_forged_length_prefix_does_not_allocate_past_the_limit() {
        // A varint length of u64::MAX for a Vec<u8>: must error, not try to allocate.
        let mut bytes = vec![0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_exact::<Vec<u8>>(&bytes).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn random_bytes_never_panic_the_envelope(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Envelope::open(&bytes, TAG);
        }

        #[test]
        fn any_payload_that_fits_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..MAX_PAYLOAD)) {
            let datagram = Envelope::unsealed(Kind::Swim, TAG, &payload).expect("fits");
            let envelope = Envelope::open(&datagram, TAG).expect("opens");
            prop_assert_eq!(envelope.body, &payload[..]);
        }
    }
}
