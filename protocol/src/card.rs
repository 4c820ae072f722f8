//! Cards: what each node tells the others about itself, and how cards reach everyone.
//!
//! foca says *who is alive*; a card says *what that node is doing*: its addresses, the `expect`
//! it was started with, its database state, its part in the bootstrap agreement and the cluster
//! it belongs to. Cards are versioned per node (`generation`, then `version`): a newer card
//! replaces an older one, an older one is ignored, so cards can arrive in any order, twice, or
//! late.
//!
//! Dissemination has two paths, because foca's piggybacked broadcasts reach only the members
//! present while the item is hot and never a node that arrives later:
//!
//! * **push** — when a card changes, its owner sends it to live members at once, and a node that
//!   learns something new passes it on to a few random members (rumour mongering);
//! * **anti-entropy** — every sync period each node sends a [`TableTally`] (a count and a hash
//!   of the stamps it holds for its live members) to one random live member. Equal tallies end
//!   there, which is nearly always: cards change rarely. A receiver whose tally differs answers
//!   with its digest (`node id, generation, version`), the sender then pushes the cards the
//!   receiver lacks and, when it is itself behind, sends its own digest so the receiver pushes
//!   back (push-pull anti-entropy). This is what lets a node that joins later, or lost
//!   datagrams, catch up.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::{MAX_NODE_ID, NodeId};
use crate::seal::KeyId;
use crate::wire::{self, MAX_PAYLOAD, WireError};

/// The id of one rqlite cluster, minted by the seed that bootstrapped it and adopted by every
/// node that joins it. Two ids among the live members is a split.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(#[serde(with = "crate::hex64")] pub u64);

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterId({self})")
    }
}

/// A hash of the sorted ids of a set of live members: two nodes with the same digest see the same
/// membership.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ViewDigest(#[serde(with = "crate::hex64")] pub u64);

impl ViewDigest {
    /// The digest of no members: what the card of a node with data carries, since it takes no
    /// part in the bootstrap agreement (see `Node::publish_view`).
    pub const NONE: Self = Self(0);

    /// The digest of a set of node ids (order does not matter; each id must appear once).
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a NodeId>) -> Self {
        ids.into_iter()
            .fold(Self(0), |digest, id| digest.toggled(id))
    }

    /// The digest with `id` added if absent, removed if present: the XOR of the ids' hashes, so
    /// a node keeps its view digest up to date in O(1) per membership change.
    pub fn toggled(self, id: &NodeId) -> Self {
        Self(self.0 ^ wire::fnv1a(id.as_str().as_bytes()))
    }
}

/// What a node's rqlited is doing, as its daemon last saw it.
///
/// A crashed or failing rqlited is reported as `Empty` or `HasData`, whichever the disk says:
/// for the decision rules only "is there Raft state here" matters; the failure itself is the
/// daemon's to show on `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbState {
    /// No data directory state: a fresh node.
    Empty,
    /// State on disk, rqlited not running.
    HasData {
        /// How many voters the stored configuration had when rq4d last saw it running; `1`
        /// means a single-node cluster, which rqlited refuses to `-join` anywhere.
        last_voters: u16,
    },
    /// rqlited launched, not ready yet.
    Starting,
    /// rqlited answers `/status`.
    Running(Running),
}

impl DbState {
    /// True when the node has (or is creating) Raft state on disk.
    pub fn has_data(&self) -> bool {
        !matches!(self, Self::Empty)
    }

    /// The running state, if rqlited is up.
    pub fn running(&self) -> Option<&Running> {
        match self {
            Self::Running(running) => Some(running),
            _ => None,
        }
    }
}

/// rqlited's view of Raft, from its `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The leader's node id, when there is one.
    pub leader: Option<NodeId>,
    /// The current Raft term.
    pub term: u64,
    /// Voters in the latest configuration. A count, not the ids: the ids of a 15-voter cluster
    /// would not fit a datagram beside the rest of the card, and the leader's daemon reads them
    /// from its own rqlited when it needs them.
    pub voters: u16,
    /// Whether this node is itself a voter (false after it was removed while running).
    pub voter: bool,
    /// Started as a non-voter (`-raft-non-voter`: read-only, or beyond the voter cap): `voter`
    /// false is then its role, not its removal. A node started as a voter that `/status` shows
    /// as none (removed, or at an address the configuration gives another node) is not a
    /// non-voter by design, even while it hears the leader.
    pub non_voter: bool,
}

impl Running {
    /// In the configuration with the role it was started for, and hearing its leader: a voter
    /// that sees a leader, or a non-voter by design that does.
    pub fn healthy(&self) -> bool {
        self.leader.is_some() && (self.voter || self.non_voter)
    }
}

impl Running {
    /// True when this running node is the leader.
    pub fn is_leader_of(&self, me: &NodeId) -> bool {
        self.leader.as_ref() == Some(me)
    }
}

/// One proposal of one seed: the seed's generation and the card version that first carried it.
/// An acknowledgement names the round it acknowledges, so an acknowledgement given to an earlier
/// proposal of the same seed can never count for a later one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Round {
    /// The seed's generation.
    pub generation: u64,
    /// The seed's card version when it proposed.
    pub version: u64,
}

/// A node's part in the bootstrap agreement of an all-empty membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Agreement {
    /// Nothing proposed or acknowledged.
    #[default]
    None,
    /// I am the seed of this view and propose to bootstrap it.
    Propose {
        /// The view proposed.
        view: ViewDigest,
        /// Which proposal.
        round: Round,
    },
    /// I acknowledge `seed`'s proposal of `view` in `round`, and no other while that proposal
    /// stands (the seed lives and still proposes it).
    Ack {
        /// The seed acknowledged.
        seed: NodeId,
        /// The view acknowledged.
        view: ViewDigest,
        /// The proposal acknowledged.
        round: Round,
    },
}

/// What one node tells the others about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Whose card.
    pub node_id: NodeId,
    /// The life of the node that wrote it (see [`crate::identity::NodeIdentity::generation`]).
    pub generation: u64,
    /// Bumped on every change within one life.
    pub version: u64,
    /// Where it gossips.
    pub gossip_addr: SocketAddr,
    /// rqlited's advertised Raft address (`host:port`), the one `-join` needs.
    pub raft_addr: String,
    /// rqlited's advertised HTTP address (`host:port`).
    pub http_addr: String,
    /// The `--expect` it was started with; all must agree.
    pub expect: u16,
    /// A read-only replica (`--read-only`): never a founder, never counted for `expect`,
    /// joins as a non-voter.
    pub read_only: bool,
    /// The `--voters` cap it was started with (`None`: every node votes); all must agree.
    pub voter_cap: Option<u16>,
    /// What its database is doing.
    pub db: DbState,
    /// Its part in the bootstrap agreement.
    pub agreement: Agreement,
    /// The cluster its data belongs to, once it has one (or the one it is bound to).
    pub cluster_id: Option<ClusterId>,
    /// While its cluster is being formed: how many agreed founders form it (rqlited's
    /// `-bootstrap-expect`). Cleared once its rqlited is a voter.
    pub formation: Option<u16>,
    /// The digest of the live membership it sees.
    pub view: ViewDigest,
    /// The ids of the keys in its keyring, primary first (empty without one): what an operator
    /// rotating keys checks before making a new key primary or removing an old one.
    pub keys: Vec<KeyId>,
}

impl Card {
    /// True when `other` says the same as this card about everything but its version and view
    /// digest: a change worth passing on at once (view digests change with every membership
    /// event and travel by anti-entropy only).
    pub fn same_state(&self, other: &Card) -> bool {
        self.node_id == other.node_id
            && self.generation == other.generation
            && self.gossip_addr == other.gossip_addr
            && self.raft_addr == other.raft_addr
            && self.http_addr == other.http_addr
            && self.expect == other.expect
            && self.read_only == other.read_only
            && self.voter_cap == other.voter_cap
            && self.db == other.db
            && self.agreement == other.agreement
            && self.cluster_id == other.cluster_id
            && self.formation == other.formation
            && self.keys == other.keys
    }

    /// `(generation, version)`: the order in which cards replace each other.
    pub fn stamp(&self) -> (u64, u64) {
        (self.generation, self.version)
    }

    /// The running state, when this node's rqlited is up and reports itself leader.
    pub fn as_leader(&self) -> Option<&Running> {
        self.db
            .running()
            .filter(|running| running.is_leader_of(&self.node_id) && running.voter)
    }
}

/// One entry of a digest: whose card, and which stamp the sender holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// Whose card.
    pub node_id: NodeId,
    /// The generation held.
    pub generation: u64,
    /// The version held.
    pub version: u64,
}

/// A summary of a card table, as [`CardMessage::Summary`] carries it: how many entries and an
/// order-independent hash of their stamps. Two nodes with equal tallies hold the same stamps
/// for the same members (up to a 64-bit hash collision, which would only delay a card until
/// either table changes again); any difference of membership view or card version shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableTally {
    /// Entries counted.
    pub count: u32,
    /// The wrapping sum of each entry's mixed hash.
    pub hash: u64,
}

impl TableTally {
    /// Counts one entry: whose card and the stamp held (`(0, 0)` for a member whose card has
    /// not arrived). Entries may come in any order; each id must come once.
    pub fn add(&mut self, node_id: &NodeId, (generation, version): (u64, u64)) {
        let mut bytes = Vec::with_capacity(node_id.as_str().len() + 17);
        bytes.extend_from_slice(node_id.as_str().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&generation.to_le_bytes());
        bytes.extend_from_slice(&version.to_le_bytes());
        self.count = self.count.wrapping_add(1);
        self.hash = self.hash.wrapping_add(mix(wire::fnv1a(&bytes)));
    }
}

/// splitmix64's finalizer: spreads FNV-1a's output over all 64 bits before the entries are
/// summed, so that similar entries do not cancel out in the low bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The payload of a [`crate::wire::Kind::Cards`] datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardMessage {
    /// Cards the receiver may not have.
    Push {
        /// The cards.
        cards: Vec<Card>,
    },
    /// A sync period's message while nothing is known to differ: the tally of what the sender
    /// would offer. A receiver whose own tally differs answers with a [`CardMessage::Digest`];
    /// an equal tally is the end of it. Cards change rarely, so a full digest every period was
    /// nearly all of rq4d's gossip bytes (simulator: 336 of 470 B/s per node at 10 nodes, 1 552
    /// of 1 722 at 100).
    Summary {
        /// The sender's tally.
        tally: TableTally,
    },
    /// What the sender holds, so the receiver can send what it lacks.
    Digest {
        /// The entries, ordered by node id.
        entries: Vec<DigestEntry>,
        /// True for a digest sent in reply to a digest (never answered with another digest, so
        /// two nodes cannot ping-pong).
        reply: bool,
        /// The node ids this digest speaks for: `[from, to)`, unbounded where `None`. A table
        /// too large for one datagram goes in chunks, and a chunk must be answered only for
        /// its own range — answered as a whole table, every chunk drew nearly every card, every
        /// second, from every node (simulator finding).
        range: DigestRange,
    },
}

/// The node ids a digest chunk covers: `from` (inclusive) to `to` (exclusive), unbounded where
/// `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRange {
    /// The first id covered, if bounded below.
    pub from: Option<NodeId>,
    /// The first id no longer covered, if bounded above.
    pub to: Option<NodeId>,
}

impl DigestRange {
    /// True when `id` is in the range.
    pub fn covers(&self, id: &NodeId) -> bool {
        self.from.as_ref().is_none_or(|from| id >= from)
            && self.to.as_ref().is_none_or(|to| id < to)
    }
}

impl CardMessage {
    /// Encodes as a payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        wire::encode(self)
    }

    /// Decodes a payload; trailing bytes are an error.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        wire::decode_exact(payload)
    }

    /// Splits `cards` into as few `Push` payloads as fit one datagram each. A card too large to
    /// fit alone is skipped (card fields are bounded so that this cannot happen in practice).
    pub fn pushes<'a>(cards: impl IntoIterator<Item = &'a Card>) -> Vec<Vec<u8>> {
        let wrap = |cards| Self::Push { cards };
        Self::batches(cards.into_iter().cloned(), &wrap)
            .into_iter()
            .filter_map(|cards| wrap(cards).encode().ok())
            .collect()
    }

    /// Splits digest entries into payloads that fit one datagram each: contiguous ranges of
    /// node ids, each naming the range it covers (the first from the lowest id, the last to the
    /// highest, so together they cover every id).
    pub fn digests(entries: impl IntoIterator<Item = DigestEntry>, reply: bool) -> Vec<Vec<u8>> {
        let mut entries: Vec<DigestEntry> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        // Sized with the widest possible bounds, so that adding the real ones never overflows.
        let widest = NodeId::new("x".repeat(MAX_NODE_ID)).ok();
        let sizing = |entries| Self::Digest {
            entries,
            reply,
            range: DigestRange {
                from: widest.clone(),
                to: widest.clone(),
            },
        };
        let chunks = Self::batches(entries.into_iter(), &sizing);
        let firsts: Vec<Option<NodeId>> = chunks
            .iter()
            .map(|chunk| chunk.first().map(|e| e.node_id.clone()))
            .collect();
        let last = chunks.len().saturating_sub(1);
        chunks
            .into_iter()
            .enumerate()
            .filter_map(|(i, entries)| {
                let range = DigestRange {
                    from: if i == 0 { None } else { firsts[i].clone() },
                    to: if i == last {
                        None
                    } else {
                        firsts[i + 1].clone()
                    },
                };
                Self::Digest {
                    entries,
                    reply,
                    range,
                }
                .encode()
                .ok()
            })
            .collect()
    }

    /// Groups items greedily into batches whose message (`wrap`) is at most [`MAX_PAYLOAD`]
    /// bytes. bincode writes a sequence as a varint length followed by the items, so a batch's
    /// size is the empty message's size plus the items' sizes plus at most two more bytes of
    /// length prefix. An item too large to fit alone is skipped.
    fn batches<T: Serialize>(
        items: impl Iterator<Item = T>,
        wrap: &impl Fn(Vec<T>) -> Self,
    ) -> Vec<Vec<T>> {
        const LENGTH_GROWTH: usize = 2;
        let empty = wrap(Vec::new()).encode().map_or(0, |bytes| bytes.len());
        let budget = MAX_PAYLOAD.saturating_sub(empty + LENGTH_GROWTH);
        let mut batches = Vec::new();
        let mut batch: Vec<T> = Vec::new();
        let mut used = 0;
        for item in items {
            let Ok(size) = wire::encode(&item).map(|bytes| bytes.len()) else {
                continue;
            };
            if size > budget {
                continue;
            }
            if used + size > budget {
                batches.push(std::mem::take(&mut batch));
                used = 0;
            }
            used += size;
            batch.push(item);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }
}

/// Every card this node knows, newest per node.
#[derive(Clone, Debug, Default)]
pub struct CardTable {
    cards: BTreeMap<NodeId, Card>,
}

impl CardTable {
    /// Stores `card` if it is newer than the one held; returns whether it was.
    pub fn merge(&mut self, card: Card) -> bool {
        match self.cards.get(&card.node_id) {
            Some(held) if held.stamp() >= card.stamp() => false,
            _ => {
                self.cards.insert(card.node_id.clone(), card);
                true
            }
        }
    }

    /// Forgets the card of `id` (a member evicted at the cap).
    pub fn remove(&mut self, id: &NodeId) -> Option<Card> {
        self.cards.remove(id)
    }

    /// The card held for `id`.
    pub fn get(&self, id: &NodeId) -> Option<&Card> {
        self.cards.get(id)
    }

    /// All cards, ordered by node id.
    pub fn iter(&self) -> impl Iterator<Item = &Card> {
        self.cards.values()
    }

    /// Number of cards held.
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// True when no card is held.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The digest of what is held.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.cards
            .values()
            .map(|card| DigestEntry {
                node_id: card.node_id.clone(),
                generation: card.generation,
                version: card.version,
            })
            .collect()
    }

    /// Answers a peer's digest of `range`: the cards of that range it lacks or holds older
    /// versions of, and whether the peer holds something newer than this table (so it should be
    /// asked to push).
    pub fn answer(&self, entries: &[DigestEntry], range: &DigestRange) -> (Vec<&Card>, bool) {
        let theirs: BTreeMap<&NodeId, (u64, u64)> = entries
            .iter()
            .map(|e| (&e.node_id, (e.generation, e.version)))
            .collect();
        let newer_here = self
            .cards
            .values()
            .filter(|card| {
                range.covers(&card.node_id)
                    && theirs
                        .get(&card.node_id)
                        .is_none_or(|stamp| *stamp < card.stamp())
            })
            .collect();
        let newer_there = entries.iter().any(|e| {
            self.cards
                .get(&e.node_id)
                .is_none_or(|card| card.stamp() < (e.generation, e.version))
        });
        (newer_here, newer_there)
    }
}

#[cfg(test)]
pub(crate) mod tests;
