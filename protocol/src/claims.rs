//! Bounds on what a datagram may claim, checked before anything acts on it.
//!
//! A keyring keeps strangers out; these bounds keep *members* honest — a buggy build, a host
//! with a wild clock, or a sender without a key on an open cluster — so that no claim can put
//! a node where no later, correct claim can get it out:
//!
//! * a **generation** is its life's start time in ms (plus one per renewal), so one from
//!   further than [`MAX_CLOCK_AHEAD`] in the receiver's future is impossible. Without the
//!   bound, a `u64::MAX` generation outbid every later life of a node for ever (an identity
//!   nobody could replace, a card nobody could overwrite);
//! * a card's **version** is bumped once per change within one life, and a node makes far
//!   fewer than one change per millisecond, so a version above the life's length in ms plus
//!   [`VERSION_SLACK`] is impossible too;
//! * a card lists at most [`crate::seal::MAX_KEYS`] key ids;
//! * a card's Raft and HTTP addresses are on its gossip IP: rq4d advertises one IP for all
//!   three, so a card pointing Raft somewhere else is a lie — the one a forged "moved" card
//!   needs to steer a `peers.json` recovery, since a card only counts at the gossip address
//!   foca knows its member at.
//!
//! What the bounds cannot do is tell a plausible lie from the truth: only the keyring does
//! that (ARCHITECTURE.md, "Trust").

use std::time::Duration;

use thiserror::Error;

use crate::card::Card;
use crate::identity::NodeId;
use crate::seal::{MAX_KEYS, REPLAY_WINDOW};

/// How far in the receiver's future a generation may be: the clock skew hosts may have, the
/// same as the replay window of sealed datagrams.
pub const MAX_CLOCK_AHEAD: Duration = REPLAY_WINDOW;
/// Card versions a life may use beyond one per millisecond of its length.
pub const VERSION_SLACK: u64 = 1_000_000;

/// A claim no honest node can make.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// A generation further in the future than [`MAX_CLOCK_AHEAD`].
    #[error(
        "node {node} claims generation {generation}, {ahead_ms} ms ahead of this host's clock (a wild clock or a forged identity)"
    )]
    FutureGeneration {
        /// Whose.
        node: NodeId,
        /// The generation claimed.
        generation: u64,
        /// How far ahead of the receiver's clock, in ms.
        ahead_ms: u64,
    },
    /// A card version its life is too short for.
    #[error("node {node} claims card version {version}; its life allows at most {bound}")]
    VersionTooHigh {
        /// Whose.
        node: NodeId,
        /// The version claimed.
        version: u64,
        /// The most its life allows.
        bound: u64,
    },
    /// More key ids than a keyring may hold.
    #[error("node {node} claims {count} keys; a keyring holds at most {MAX_KEYS}")]
    TooManyKeys {
        /// Whose.
        node: NodeId,
        /// How many.
        count: usize,
    },
    /// Raft or HTTP address on another IP than the gossip address.
    #[error(
        "node {node} claims Raft address {raft} and HTTP address {http} apart from its gossip address {gossip}"
    )]
    AddressesApart {
        /// Whose.
        node: NodeId,
        /// The gossip address claimed.
        gossip: std::net::SocketAddr,
        /// The Raft address claimed.
        raft: String,
        /// The HTTP address claimed.
        http: String,
    },
    /// A new member while the member table is full of live ones.
    #[error("member table full ({cap} members): {node} not admitted")]
    MemberCap {
        /// Who was not admitted.
        node: NodeId,
        /// The cap.
        cap: usize,
    },
}

/// The bounds as of one moment of the receiver's wall clock.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    wall_ms: u64,
}

impl Bounds {
    /// The bounds at the receiver's wall clock `wall` (since the UNIX epoch).
    pub fn at(wall: Duration) -> Self {
        Self {
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The latest generation a life can have now.
    pub fn latest_generation(&self) -> u64 {
        self.wall_ms
            .saturating_add(u64::try_from(MAX_CLOCK_AHEAD.as_millis()).unwrap_or(u64::MAX))
    }

    /// Checks a generation claimed for `node`.
    pub fn generation(&self, node: &NodeId, generation: u64) -> Result<(), ClaimError> {
        if generation <= self.latest_generation() {
            return Ok(());
        }
        Err(ClaimError::FutureGeneration {
            node: node.clone(),
            generation,
            ahead_ms: generation - self.wall_ms,
        })
    }

    /// The highest card version a life of `generation` can have reached now.
    pub fn latest_version(&self, generation: u64) -> u64 {
        self.latest_generation()
            .saturating_sub(generation)
            .saturating_add(VERSION_SLACK)
    }

    /// Checks every bounded claim of a card.
    pub fn card(&self, card: &Card) -> Result<(), ClaimError> {
        self.generation(&card.node_id, card.generation)?;
        let bound = self.latest_version(card.generation);
        if card.version > bound {
            return Err(ClaimError::VersionTooHigh {
                node: card.node_id.clone(),
                version: card.version,
                bound,
            });
        }
        if card.keys.len() > MAX_KEYS {
            return Err(ClaimError::TooManyKeys {
                node: card.node_id.clone(),
                count: card.keys.len(),
            });
        }
        let on_gossip_ip = |addr: &str| {
            addr.parse::<std::net::SocketAddr>()
                .is_ok_and(|addr| addr.ip() == card.gossip_addr.ip())
        };
        if !on_gossip_ip(&card.raft_addr) || !on_gossip_ip(&card.http_addr) {
            return Err(ClaimError::AddressesApart {
                node: card.node_id.clone(),
                gossip: card.gossip_addr,
                raft: card.raft_addr.clone(),
                http: card.http_addr.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::tests::sample;

    const NOON: Duration = Duration::from_millis(1_796_299_200_000);

    #[test]
    fn a_generation_from_the_far_future_is_refused_and_one_within_the_skew_is_not() {
        let bounds = Bounds::at(NOON);
        let id = NodeId::new("n3").expect("id");
        let now_ms = NOON.as_millis() as u64;
        assert!(bounds.generation(&id, now_ms + 59_000).is_ok());
        assert!(bounds.generation(&id, 1).is_ok(), "the past is fine");
        assert_eq!(
            bounds.generation(&id, u64::MAX),
            Err(ClaimError::FutureGeneration {
                node: id.clone(),
                generation: u64::MAX,
                ahead_ms: u64::MAX - now_ms
            })
        );
        assert!(bounds.generation(&id, now_ms + 61_000).is_err());
    }

    #[test]
    fn a_card_version_beyond_its_life_is_refused() {
        let bounds = Bounds::at(NOON);
        let born = NOON.as_millis() as u64 - 10_000;
        let mut card = sample("n3", born, 5);
        assert!(bounds.card(&card).is_ok());
        card.version = 10_000 + 60_000 + VERSION_SLACK;
        assert!(bounds.card(&card).is_ok(), "at the bound");
        card.version += 1;
        assert!(matches!(
            bounds.card(&card),
            Err(ClaimError::VersionTooHigh { .. })
        ));
        card.version = u64::MAX;
        assert!(bounds.card(&card).is_err());
    }

    #[test]
    fn a_card_pointing_raft_away_from_its_gossip_ip_is_refused() {
        let bounds = Bounds::at(NOON);
        let mut card = sample("n3", 1, 1);
        assert!(bounds.card(&card).is_ok(), "{card:?}");
        card.raft_addr = "10.9.9.9:4002".into();
        assert!(matches!(
            bounds.card(&card),
            Err(ClaimError::AddressesApart { .. })
        ));
        card.raft_addr = "db-3:4002".into();
        assert!(bounds.card(&card).is_err(), "a name proves nothing");
    }

    #[test]
    fn a_card_with_more_keys_than_a_ring_holds_is_refused() {
        let bounds = Bounds::at(NOON);
        let mut card = sample("n3", 1, 1);
        card.keys = vec![crate::seal::KeyId([1; 4]); MAX_KEYS + 1];
        assert!(matches!(
            bounds.card(&card),
            Err(ClaimError::TooManyKeys { .. })
        ));
    }
}
