//! Sealed datagrams: the cluster keyring, authenticated encryption and replay protection.
//!
//! With a keyring, every datagram a node sends — SWIM and cards alike — is sealed with
//! XChaCha20-Poly1305 under the ring's *primary* key, and a datagram is accepted only if it
//! opens under one of the ring's keys. Memberlist and Serf (Consul's `encrypt`) work the same
//! way, so the procedure users know carries over: add a key everywhere, make it primary
//! everywhere, remove the old one.
//!
//! ```text
//!  fixed header (13 bytes, see crate::wire)   seal prefix (28 bytes)        body
//!  +-------------------------------------+----------+-------------------+----------------------------+
//!  | "R4" | v | 28 | cluster tag | kind  | key id 4 | nonce 24          | AEAD(stamp 8 | payload) 16 |
//!  +-------------------------------------+----------+-------------------+----------------------------+
//!            associated data: the fixed header, the key id and the nonce
//! ```
//!
//! * The **key id** (the first 4 bytes of SHA-256 over a label and the key) says which key
//!   sealed the datagram, so a receiver tries one key, not all, and an operator can see which
//!   key each member sends with. It is not secret.
//! * The **nonce** is this process's random 16-byte salt followed by a 64-bit counter: unique
//!   for every datagram any process ever seals, as long as every process draws its salt from
//!   the operating system (a nonce used twice under one key would let an eavesdropper forge).
//!   The 24-byte nonce of XChaCha20 leaves room for a salt long enough that processes never
//!   collide by chance, which the 12 bytes of AES-GCM or ChaCha20-Poly1305 would not.
//! * The **stamp** is the sender's wall clock in milliseconds, inside the sealed part. A
//!   receiver drops a datagram stamped more than [`REPLAY_WINDOW`] away from its own clock, and
//!   remembers, for the last [`REMEMBERED_SENDERS`] salts it heard from, the highest counter and
//!   which of the 64 below it arrived: within the window, a datagram replayed from a sender it
//!   remembers is dropped too.
//!
//! Nothing here reads a clock or draws randomness: the wall clock and the salt are the driver's
//! to give.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::wire::{Envelope, HEADER_LEN, Kind, MAX_DATAGRAM, WireError};

/// Bytes in a cluster key.
pub const KEY_LEN: usize = 32;
/// Bytes in a key id.
pub const KEY_ID_LEN: usize = 4;
/// Bytes in a nonce: the sender's salt, then its counter.
pub const NONCE_LEN: usize = 24;
/// Bytes of the sender's salt at the front of every nonce.
pub const SALT_LEN: usize = 16;
/// What follows the fixed header of a sealed datagram before its body: key id and nonce.
pub const SEAL_PREFIX: usize = KEY_ID_LEN + NONCE_LEN;
const STAMP_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// How much larger a sealed datagram is than an open one with the same payload.
pub const SEAL_OVERHEAD: usize = SEAL_PREFIX + STAMP_LEN + TAG_LEN;
/// A sealed datagram stamped further than this from the receiver's clock, either way, is
/// dropped. It is also the most the clocks of two hosts may disagree by.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);
/// The most keys a ring may hold.
pub const MAX_KEYS: usize = 16;
/// How many senders' counters a receiver remembers (the least recently heard is forgotten).
pub const REMEMBERED_SENDERS: usize = 1024;
/// The label hashed with a key into its id, so the id says nothing about other uses of a key.
const KEY_ID_LABEL: &[u8] = b"rq4d gossip key id v1";

/// The public name of a key: the first 4 bytes of SHA-256 over a label and the key. Written as
/// 8 hex digits, which is also its form in JSON; on the wire it is 4 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; KEY_ID_LEN]>::deserialize(deserializer).map(Self)
        }
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a key id (8 hex digits)");
        if text.len() != 2 * KEY_ID_LEN || !text.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(id))
    }
}

impl KeyId {
    fn of(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_LABEL)
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// One cluster key: 32 bytes, written as standard base64 (what `rq4d keygen` prints). Its
/// `Debug` shows the id only, so a key never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; KEY_LEN],
    id: KeyId,
}

/// Why a text is not a key.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not standard base64.
    #[error("not base64 (a key is 32 random bytes in base64, as `rq4d keygen` prints)")]
    NotBase64,
    /// Base64 of the wrong number of bytes.
    #[error("decodes to {0} bytes; a key is {KEY_LEN}")]
    WrongLength(usize),
}

impl Key {
    /// A key from its bytes (the driver draws them from the operating system).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id: KeyId::of(&bytes),
            bytes,
        }
    }

    /// Parses a key written in base64 (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let bytes: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in base64.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// Its public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// The keys a node accepts, the first of which (the *primary*) it seals with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why a keyring cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// No key at all.
    #[error("the keyring holds no key")]
    Empty,
    /// More than [`MAX_KEYS`].
    #[error("the keyring holds {0} keys; at most {MAX_KEYS} are allowed")]
    TooMany(usize),
    /// A line is not a key.
    #[error("line {line}: {error}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: KeyError,
    },
    /// The same key (or two keys with one id) twice.
    #[error("line {line}: key {id} is already in the keyring")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// The repeated id.
        id: KeyId,
    },
}

impl Keyring {
    /// A ring of `keys`, the first primary: at least one, at most [`MAX_KEYS`], no id twice.
    pub fn new(keys: Vec<Key>) -> Result<Self, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyringError::TooMany(keys.len()));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Duplicate {
                    line: i + 1,
                    id: key.id,
                });
            }
        }
        Ok(Self { keys })
    }

    /// A ring of one key.
    pub fn single(key: Key) -> Self {
        Self { keys: vec![key] }
    }

    /// Parses a keyring file: one base64 key a line, the first primary; blank lines and lines
    /// starting with `#` are skipped. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let key = Key::parse(trimmed).map_err(|error| KeyringError::Line {
                line: line_no,
                error,
            })?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Duplicate {
                    line: line_no,
                    id: key.id,
                });
            }
            keys.push(key);
        }
        Self::new(keys)
    }

    /// The key datagrams are sealed with.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// The ids of every key, primary first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(Key::id).collect()
    }

    fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|key| key.id == id)
    }
}

/// Why a datagram failed the seal check. Each variant is counted by the daemon.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SealError {
    /// An open datagram reached a node with a keyring.
    #[error("datagram is not sealed; this node accepts only sealed gossip")]
    Unsealed,
    /// A sealed datagram reached a node without a keyring.
    #[error("datagram is sealed; this node has no gossip key")]
    NoKeyring,
    /// Sealed with a key this node does not hold.
    #[error("datagram is sealed with key {0}, which is not in this node's keyring")]
    UnknownKey(KeyId),
    /// The authentication tag does not match: forged, corrupted, or sealed with another key
    /// that happens to share the id.
    #[error("datagram does not open under key {0}: forged or corrupted")]
    Forged(KeyId),
    /// The seal byte of the header names no known seal.
    #[error("unknown seal of {0} bytes")]
    UnknownSeal(u8),
    /// Too short to hold a seal.
    #[error("sealed datagram of {0} bytes is too short")]
    Truncated(usize),
    /// Stamped too far from this node's clock (a replay, or clocks out of step).
    #[error(
        "datagram is stamped {skew_ms} ms from this node's clock (more than {}s: a replay, or the hosts' clocks disagree)",
        REPLAY_WINDOW.as_secs()
    )]
    Stale {
        /// Sender's stamp minus the receiver's clock, in milliseconds.
        skew_ms: i64,
    },
    /// Already received (same sender and counter), or older than the sender's window.
    #[error("datagram was already received (a replay)")]
    Replayed,
}

/// An opened datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Who reads the payload.
    pub kind: Kind,
    /// The payload.
    pub payload: Cow<'a, [u8]>,
    /// The key it was sealed with; `None` for an open datagram (no keyring).
    pub key: Option<KeyId>,
}

/// The counters of one sender (one salt) a receiver has seen.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The highest counter accepted.
    highest: u64,
    /// Bit `i` set: counter `highest - 1 - i` was accepted.
    below: u64,
    /// When this sender was last heard (receiver's wall clock), for forgetting.
    heard: Duration,
}

impl Window {
    /// Accepts `counter` unless it was seen or is older than the 64 below the highest.
    fn accept(&mut self, counter: u64) -> bool {
        if counter > self.highest {
            let shift = counter - self.highest;
            // Every accepted counter moves `shift` further from the highest; the old highest
            // itself becomes bit `shift - 1`. Whatever moves past bit 63 is forgotten.
            let moved = if shift >= 64 { 0 } else { self.below << shift };
            let old_highest = if shift <= 64 { 1u64 << (shift - 1) } else { 0 };
            self.below = moved | old_highest;
            self.highest = counter;
            return true;
        }
        let back = self.highest - counter;
        if back == 0 || back > 64 {
            return false;
        }
        let bit = 1u64 << (back - 1);
        if self.below & bit != 0 {
            return false;
        }
        self.below |= bit;
        true
    }
}

/// Seals outgoing and opens incoming datagrams for one node; see the module docs.
pub struct Sealer {
    keyring: Option<Keyring>,
    salt: [u8; SALT_LEN],
    counter: u64,
    senders: BTreeMap<[u8; SALT_LEN], Window>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keyring", &self.keyring)
            .field("counter", &self.counter)
            .field("senders", &self.senders.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer with `keyring` (none: datagrams go open and only open ones are accepted) and
    /// this process's `salt`, which must be drawn from the operating system for every process.
    pub fn new(keyring: Option<Keyring>, salt: [u8; SALT_LEN]) -> Self {
        Self {
            keyring,
            salt,
            counter: 0,
            senders: BTreeMap::new(),
        }
    }

    /// The keyring in use.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// Replaces the keyring (a re-read keyring file). Counters of senders are kept: they do
    /// not depend on the key.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) {
        self.keyring = keyring;
    }

    /// Frames `payload` as a datagram of `kind` for cluster `tag`, sealed under the primary key
    /// when there is a keyring. `wall` is the sender's wall clock (since the UNIX epoch).
    pub fn seal(
        &mut self,
        kind: Kind,
        tag: u64,
        payload: &[u8],
        wall: Duration,
    ) -> Result<Vec<u8>, WireError> {
        let Some(keyring) = &self.keyring else {
            return Envelope::frame(kind, tag, 0, payload);
        };
        if HEADER_LEN + SEAL_OVERHEAD + payload.len() > MAX_DATAGRAM {
            return Err(WireError::PayloadTooLarge(payload.len()));
        }
        let key = keyring.primary();
        self.counter += 1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..SALT_LEN].copy_from_slice(&self.salt);
        nonce[SALT_LEN..].copy_from_slice(&self.counter.to_be_bytes());
        let mut prefix = [0u8; SEAL_PREFIX];
        prefix[..KEY_ID_LEN].copy_from_slice(&key.id.0);
        prefix[KEY_ID_LEN..].copy_from_slice(&nonce);
        let mut datagram = Envelope::frame(kind, tag, SEAL_PREFIX as u8, &prefix)?;
        let mut plain = Vec::with_capacity(STAMP_LEN + payload.len());
        plain.extend_from_slice(&millis(wall).to_be_bytes());
        plain.extend_from_slice(payload);
        let sealed = key
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &datagram,
                },
            )
            .map_err(|_| WireError::PayloadTooLarge(payload.len()))?;
        datagram.extend_from_slice(&sealed);
        Ok(datagram)
    }

    /// Checks and opens a datagram for cluster `tag` at the receiver's wall clock `wall`.
    pub fn open<'a>(
        &mut self,
        datagram: &'a [u8],
        tag: u64,
        wall: Duration,
    ) -> Result<Opened<'a>, WireError> {
        let envelope = Envelope::open(datagram, tag)?;
        let keyring = match (&self.keyring, envelope.seal) {
            (None, 0) => {
                return Ok(Opened {
                    kind: envelope.kind,
                    payload: Cow::Borrowed(envelope.body),
                    key: None,
                });
            }
            (None, _) => return Err(SealError::NoKeyring.into()),
            (Some(_), 0) => return Err(SealError::Unsealed.into()),
            (Some(keyring), seal) if usize::from(seal) == SEAL_PREFIX => keyring,
            (Some(_), other) => return Err(SealError::UnknownSeal(other).into()),
        };
        let body = envelope.body;
        if body.len() < SEAL_PREFIX + STAMP_LEN + TAG_LEN {
            return Err(SealError::Truncated(datagram.len()).into());
        }
        let (prefix, sealed) = body.split_at(SEAL_PREFIX);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&prefix[..KEY_ID_LEN]);
        let id = KeyId(id);
        let key = keyring.get(id).ok_or(SealError::UnknownKey(id))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&prefix[KEY_ID_LEN..]);
        let aad = &datagram[..HEADER_LEN + SEAL_PREFIX];
        let plain = key
            .cipher()
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| SealError::Forged(id))?;
        let (stamp, payload) = plain.split_at(STAMP_LEN);
        let mut stamp_bytes = [0u8; STAMP_LEN];
        stamp_bytes.copy_from_slice(stamp);
        let stamp = u64::from_be_bytes(stamp_bytes);
        let now = millis(wall);
        let skew_ms = i64::try_from(i128::from(stamp) - i128::from(now)).unwrap_or(i64::MAX);
        if skew_ms.unsigned_abs() > millis(REPLAY_WINDOW) {
            return Err(SealError::Stale { skew_ms }.into());
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&nonce[..SALT_LEN]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&nonce[SALT_LEN..]);
        if !self.accept(salt, u64::from_be_bytes(counter), wall) {
            return Err(SealError::Replayed.into());
        }
        Ok(Opened {
            kind: envelope.kind,
            payload: Cow::Owned(payload.to_vec()),
            key: Some(id),
        })
    }

    /// Records an authenticated `(salt, counter)`; false when it was seen before.
    fn accept(&mut self, salt: [u8; SALT_LEN], counter: u64, wall: Duration) -> bool {
        if let Some(window) = self.senders.get_mut(&salt) {
            window.heard = wall;
            return window.accept(counter);
        }
        if self.senders.len() >= REMEMBERED_SENDERS
            && let Some(oldest) = self
                .senders
                .iter()
                .min_by_key(|(_, window)| window.heard)
                .map(|(salt, _)| *salt)
        {
            self.senders.remove(&oldest);
        }
        self.senders.insert(
            salt,
            Window {
                highest: counter,
                below: 0,
                heard: wall,
            },
        );
        true
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
