//! The wire format: every datagram rq4d sends is one [`Envelope`].
//!
//! ```text
//!  0      2   3      4              12     13
//!  +------+---+------+--------------+------+------------------------+
//!  | "R4" | v | auth | cluster tag  | kind | payload …              |
//!  +------+---+------+--------------+------+------------------------+
//! ```
//!
//! * `magic` tells rq4d traffic from anything else that reaches the port.
//! * `v` is the protocol version; a peer speaking another version is refused with an error that
//!   names both, so a mixed-version rollout shows up in the logs instead of as silence.
//! * `auth` is the length of an authentication tag that follows the fixed header. Version 1 sends
//!   no tag (`0`); the byte is there so that keyed clusters can be added without a new envelope.
//! * `cluster tag` is a stable hash of `--cluster-name`: two clusters on one network never mix.
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
pub const VERSION: u8 = 2;
/// Size of the fixed envelope header.
pub const HEADER_LEN: usize = 13;
/// The space left for a payload in one datagram.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - HEADER_LEN;

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
    /// The datagram carries an authentication tag but this node has no key to check it.
    #[error("datagram carries a {0}-byte authentication tag; this node has no cluster key")]
    UnexpectedAuthTag(u8),
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

/// A decoded datagram: its kind and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Who reads the payload.
    pub kind: Kind,
    /// The payload bytes, after the header.
    pub payload: &'a [u8],
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
        let auth_len = header.get_u8();
        if auth_len != 0 {
            return Err(WireError::UnexpectedAuthTag(auth_len));
        }
        let theirs = header.get_u64();
        if theirs != tag {
            return Err(WireError::ForeignCluster { ours: tag, theirs });
        }
        let kind = Kind::from_byte(header.get_u8())?;
        Ok(Self {
            kind,
            payload: &datagram[HEADER_LEN..],
        })
    }

    /// Frames `payload` as a datagram of `kind` for cluster `tag`.
    pub fn seal(kind: Kind, tag: u64, payload: &[u8]) -> Result<Vec<u8>, WireError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge(payload.len()));
        }
        let mut datagram = Vec::with_capacity(HEADER_LEN + payload.len());
        datagram.put_slice(&MAGIC);
        datagram.put_u8(VERSION);
        datagram.put_u8(0);
        datagram.put_u64(tag);
        datagram.put_u8(kind as u8);
        datagram.put_slice(payload);
        Ok(datagram)
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
    fn a_sealed_datagram_opens_to_the_same_kind_and_payload() {
        let datagram = Envelope::seal(Kind::Cards, TAG, b"hello").expect("fits");
        let envelope = Envelope::open(&datagram, TAG).expect("opens");
        assert_eq!(envelope.kind, Kind::Cards);
        assert_eq!(envelope.payload, b"hello");
    }

    #[test]
    fn another_version_is_refused_naming_both_versions() {
        let mut datagram = Envelope::seal(Kind::Swim, TAG, b"x").expect("fits");
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
        let datagram = Envelope::seal(Kind::Swim, cluster_tag("a"), b"x").expect("fits");
        let err = Envelope::open(&datagram, cluster_tag("b")).expect_err("refused");
        assert!(matches!(err, WireError::ForeignCluster { .. }));
    }

    #[test]
    fn an_auth_tag_is_refused_until_keys_exist() {
        let mut datagram = Envelope::seal(Kind::Swim, TAG, b"x").expect("fits");
        datagram[3] = 16;
        assert_eq!(
            Envelope::open(&datagram, TAG),
            Err(WireError::UnexpectedAuthTag(16))
        );
    }

    #[test]
    fn oversized_payloads_are_refused_on_both_sides() {
        let payload = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            Envelope::seal(Kind::Swim, TAG, &payload),
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
            let datagram = Envelope::seal(Kind::Swim, TAG, &payload).expect("fits");
            let envelope = Envelope::open(&datagram, TAG).expect("opens");
            prop_assert_eq!(envelope.payload, &payload[..]);
        }
    }
}
