//! Two live processes with one node id: a copied volume, a copied config, a mistyped
//! `--node-id`. rqlited takes the id at face value — a node that joins with a live member's id
//! replaces that member at the new Raft address — so the second process must refuse *before*
//! its rqlited starts, and the first must keep its place in gossip.
//!
//! The rules, from the side of each process:
//!
//! * **Evidence** is a card with this node's id from another life, received from the very
//!   address it names (*direct*), or the same heard from a third party, or a SWIM update about
//!   another life of this id (*rumours*). A rumour naming this node's own gossip address is a
//!   previous life of this process at the same address: stale, ignored.
//! * A rumour is **challenged**: this node sends its card to the address the rumour names, a
//!   few times over [`CHALLENGE_FOR`]. A live process there answers with its own card — direct
//!   evidence — and a dead one (a previous life that moved, not yet seen down by everyone)
//!   stays silent. A first direct sighting is challenged the same way. A node that is not
//!   running rqlited starts nothing while a challenge is open and its evidence not counted.
//! * Direct evidence is answered (this node's card to the sender, at most every
//!   [`ANSWER_EVERY`]), and counts once it is [`Sighting::MIN_COUNT`] sightings over
//!   [`Sighting::MIN_SPAN`]: one stray datagram proves nothing. It lapses after
//!   [`Sighting::LAPSE`] of silence.
//! * A node **not running** rqlited with counted evidence is in `Conflict` and starts nothing;
//!   it also stops renewing its gossip identity, so it never fights the other process for the
//!   id. A node **running** rqlited keeps running (it is the member the cluster knows) and
//!   takes a generation above the other life's when it meets one directly (a rumour is
//!   challenged, and the other process answers), so that the members, which briefly took the
//!   newcomer for this node moving, take this node back. Two running
//!   processes are both in `Conflict`: a human must stop one.
//! * A member that receives the hello card of a life of `X` while it holds another, live life
//!   of `X` at another address *notices* the newcomer: it sends back the card it holds, so the
//!   newcomer hears of the other life at once instead of after the members took it for `X`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Event, Node, Output};
use crate::card::{Card, DbState};
use crate::identity::{NodeId, NodeIdentity};

/// How far ahead of this node's clock another life's generation may be for this node to outbid
/// it (a clock skew between hosts, not a claim of a life yet to begin).
pub const OUTBID_AHEAD: Duration = Duration::from_secs(5);
/// How long a challenge stays open without an answer.
pub const CHALLENGE_FOR: Duration = Duration::from_secs(1);
/// How often an open challenge is repeated.
pub const CHALLENGE_EVERY: Duration = Duration::from_millis(250);
/// The most often this node answers one address that uses its id.
pub const ANSWER_EVERY: Duration = Duration::from_millis(200);
/// How long after a challenge opened the same address may be challenged again.
const REOPEN_AFTER: Duration = Duration::from_secs(15);
/// How often a member notices one newcomer using a live member's id.
const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// Addresses tracked per table (sightings, challenges, answers, notices); beyond, the oldest
/// entries go.
const TRACKED: usize = 16;

/// Direct evidence of another live process with this node's id at one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sighting {
    first: Duration,
    last: Duration,
    count: u32,
    /// Its latest card said its rqlited runs.
    running: bool,
}

impl Sighting {
    /// Sightings needed, and over how long, before they count; the silence that ends them.
    pub const MIN_COUNT: u32 = 2;
    /// See [`Sighting::MIN_COUNT`].
    pub const MIN_SPAN: Duration = Duration::from_millis(200);
    /// See [`Sighting::MIN_COUNT`].
    pub const LAPSE: Duration = Duration::from_secs(30);

    fn active(&self, now: Duration) -> bool {
        self.count >= Self::MIN_COUNT
            && self.last.saturating_sub(self.first) >= Self::MIN_SPAN
            && now.saturating_sub(self.last) < Self::LAPSE
    }
}

/// A challenge sent to an address a rumour placed another life of this id at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Challenge {
    first: Duration,
    last_sent: Duration,
}

/// What this node knows about other processes with its id.
#[derive(Debug, Default)]
pub(super) struct Duplicates {
    sightings: BTreeMap<SocketAddr, Sighting>,
    challenges: BTreeMap<SocketAddr, Challenge>,
    answered: BTreeMap<SocketAddr, Duration>,
    noticed: BTreeMap<NodeId, Duration>,
}

/// The first sighting, challenge or answer that is the oldest by `at`, to make room.
fn oldest<K: Clone + Ord, V>(table: &BTreeMap<K, V>, at: impl Fn(&V) -> Duration) -> Option<K> {
    table
        .iter()
        .min_by_key(|(_, value)| at(value))
        .map(|(key, _)| key.clone())
}

impl Node {
    /// True while this node's rqlited has been launched (starting or running).
    pub(super) fn running(&self) -> bool {
        matches!(self.me.db, DbState::Starting | DbState::Running(_))
    }

    /// A card with this node's id arrived from `from`. Returns true when it is direct evidence
    /// of another process (the datagram is then refused and counted as such).
    pub(super) fn own_id_card(&mut self, from: SocketAddr, card: &Card, now: Duration) -> bool {
        let mine = self.foca.identity().clone();
        if card.gossip_addr == mine.addr {
            // This life's card echoed back, or a previous life's at this very address: no
            // second process can hold the address this one is bound to.
            return false;
        }
        if from != card.gossip_addr {
            self.challenge(card.gossip_addr, now);
            return false;
        }
        self.outbid(card.generation, now);
        let running = matches!(card.db, DbState::Starting | DbState::Running(_));
        self.report_duplicate(from, running, now);
        self.answer_duplicate(from, now);
        // One sighting proves nothing yet; asked again, a live process answers again.
        self.challenge(from, now);
        true
    }

    /// A SWIM update told of another life of this node's id.
    pub(super) fn other_life_rumoured(&mut self, life: &NodeIdentity, alive: bool, now: Duration) {
        if !alive || life.addr == self.foca.identity().addr {
            return;
        }
        self.challenge(life.addr, now);
    }

    /// Counts a direct sighting of another process with this node's id at `addr`.
    pub(super) fn report_duplicate(&mut self, addr: SocketAddr, running: bool, now: Duration) {
        let table = &mut self.duplicates.sightings;
        if !table.contains_key(&addr)
            && table.len() >= TRACKED
            && let Some(old) = oldest(table, |s| s.last)
        {
            table.remove(&old);
        }
        let sighting = table.entry(addr).or_insert(Sighting {
            first: now,
            last: now,
            count: 0,
            running,
        });
        if now.saturating_sub(sighting.last) >= Sighting::LAPSE {
            // A new episode: the old one proved nothing about now.
            sighting.first = now;
            sighting.count = 0;
        }
        let was_active = sighting.active(now);
        sighting.last = now;
        sighting.count += 1;
        sighting.running = running;
        if sighting.active(now) && !was_active {
            self.dirty = true;
            self.outputs
                .push_back(Output::Event(Event::DuplicateNodeId { addr }));
        }
    }

    /// Sends this node's card to a process that uses its id, so it learns of this one directly.
    fn answer_duplicate(&mut self, to: SocketAddr, now: Duration) {
        let table = &mut self.duplicates.answered;
        if table
            .get(&to)
            .is_some_and(|at| now.saturating_sub(*at) < ANSWER_EVERY)
        {
            return;
        }
        if !table.contains_key(&to)
            && table.len() >= TRACKED
            && let Some(old) = oldest(table, |at| *at)
        {
            table.remove(&old);
        }
        table.insert(to, now);
        let me = self.me.clone();
        self.send_cards(to, [&me]);
    }

    /// Opens (or repeats) a challenge to `addr`: this node's card, which a live process with
    /// this id there answers.
    fn challenge(&mut self, addr: SocketAddr, now: Duration) {
        let table = &mut self.duplicates.challenges;
        let challenge = match table.get(&addr) {
            // Closed: a rumour that keeps circulating about the address does not hold this
            // node up again for a while (half the lapse, so that a live process there is
            // challenged, and answers, again before its sighting lapses).
            Some(c)
                if now.saturating_sub(c.first) < REOPEN_AFTER
                    && now.saturating_sub(c.first) >= CHALLENGE_FOR =>
            {
                return;
            }
            Some(c) if now.saturating_sub(c.first) < CHALLENGE_FOR => {
                if now.saturating_sub(c.last_sent) < CHALLENGE_EVERY {
                    return;
                }
                Challenge {
                    first: c.first,
                    last_sent: now,
                }
            }
            _ => Challenge {
                first: now,
                last_sent: now,
            },
        };
        if !table.contains_key(&addr)
            && table.len() >= TRACKED
            && let Some(old) = oldest(table, |c| c.first)
        {
            table.remove(&old);
        }
        table.insert(addr, challenge);
        self.dirty = true;
        let me = self.me.clone();
        self.send_cards(addr, [&me]);
    }

    /// Repeats the open challenges that are due (from the tick).
    pub(super) fn repeat_challenges(&mut self, now: Duration) {
        let due: Vec<SocketAddr> = self
            .duplicates
            .challenges
            .iter()
            .filter(|(_, c)| {
                now.saturating_sub(c.first) < CHALLENGE_FOR
                    && now.saturating_sub(c.last_sent) >= CHALLENGE_EVERY
            })
            .map(|(addr, _)| *addr)
            .collect();
        for addr in due {
            self.challenge(addr, now);
        }
    }

    /// An address whose challenge is still open and not settled (no counted evidence from it
    /// yet): a node that is not running must not start rqlited before it is.
    pub(super) fn open_challenge(&self, now: Duration) -> Option<SocketAddr> {
        self.duplicates
            .challenges
            .iter()
            .find(|(addr, c)| {
                now.saturating_sub(c.first) < CHALLENGE_FOR
                    && !self
                        .duplicates
                        .sightings
                        .get(addr)
                        .is_some_and(|s| s.active(now))
            })
            .map(|(addr, _)| *addr)
    }

    /// The address of another live process with this node's id, if the evidence counts, and
    /// whether its rqlited runs.
    pub fn duplicate(&self, now: Duration) -> Option<(SocketAddr, bool)> {
        self.duplicates
            .sightings
            .iter()
            .find(|(_, sighting)| sighting.active(now))
            .map(|(addr, sighting)| (*addr, sighting.running))
    }

    /// True when this node must not take part in a fight over its id: it is not running and
    /// another life of its id may be live (counted evidence, or a challenge still open).
    pub(super) fn yielding(&self, now: Duration) -> bool {
        !self.running() && (self.duplicate(now).is_some() || self.open_challenge(now).is_some())
    }

    /// A running node that meets another life of its id at `generation` — directly: a rumour
    /// is challenged first, and the other process answers — takes a generation above it, so the
    /// members keep this node rather than the newcomer; at most once per renewal interval,
    /// never while both run, and only above a generation of the last [`OUTBID_AHEAD`]: a
    /// newcomer's generation is its start, and a claim far ahead would push this node's own
    /// generation ahead, shadowing its next life after a restart.
    fn outbid(&mut self, generation: u64, now: Duration) {
        let mine = self.foca.identity().clone();
        let renewed_lately = self
            .last_renewal
            .is_some_and(|at| now.saturating_sub(at) < super::swim::RENEW_EVERY);
        let both_running = self.duplicate(now).is_some_and(|(_, running)| running);
        if !self.running() || generation < mine.generation || renewed_lately || both_running {
            return;
        }
        let next = generation.saturating_add(1);
        let wall = u64::try_from(self.wall().as_millis()).unwrap_or(u64::MAX);
        let ahead = u64::try_from(OUTBID_AHEAD.as_millis()).unwrap_or(u64::MAX);
        if next > wall.saturating_add(ahead) {
            return;
        }
        let renewed = NodeIdentity {
            generation: next,
            ..mine
        };
        if self
            .foca
            .change_identity(renewed.clone(), &mut self.runtime)
            .is_ok()
        {
            self.last_renewal = Some(now);
            self.outputs
                .push_back(Output::Event(Event::IdentityOutbid { generation: next }));
            self.new_life(renewed.generation);
        }
    }

    /// A member holding a live life of `card.node_id` at another address than `card`'s sends
    /// that life's card back to `from`, so a newcomer using a live member's id hears of it at
    /// once (see the module docs).
    pub(super) fn notice_newcomer(&mut self, from: SocketAddr, card: &Card, now: Duration) {
        let Some(held) = self.live_card(&card.node_id).cloned() else {
            return;
        };
        if held.gossip_addr == card.gossip_addr {
            // The same life, or a new one at the same address: the old one is gone.
            return;
        }
        let table = &mut self.duplicates.noticed;
        if table
            .get(&card.node_id)
            .is_some_and(|at| now.saturating_sub(*at) < NOTICE_EVERY)
        {
            return;
        }
        if !table.contains_key(&card.node_id)
            && table.len() >= TRACKED
            && let Some(old) = oldest(table, |at| *at)
        {
            table.remove(&old);
        }
        table.insert(card.node_id.clone(), now);
        self.send_cards(from, [&held]);
    }
}
