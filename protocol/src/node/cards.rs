//! The card layer of a node: pushes and digests in, relays and answers out, the member and card
//! tables' cap, and the greeting that turns a stranger's card into a SWIM announcement.

use std::net::SocketAddr;
use std::time::Duration;

use super::{GREET_EVERY, MAX_GREETED, Node, Refusal};
use crate::card::{Card, CardMessage, DigestEntry, DigestRange, TableTally};
use crate::claims::{Bounds, ClaimError};
use crate::identity::{NodeId, NodeIdentity};
use crate::wire::Kind;

impl Node {
    pub(super) fn handle_cards(
        &mut self,
        from: SocketAddr,
        payload: &[u8],
        now: Duration,
    ) -> Result<(), Refusal> {
        match CardMessage::decode(payload)? {
            CardMessage::Push { cards } => {
                let mut news = Vec::new();
                let mut evaluate = false;
                let mut duplicate = false;
                let mut refused = None;
                let bounds = Bounds::at(self.wall());
                for card in cards {
                    if let Err(error) = bounds.card(&card) {
                        refused = Some(error);
                        continue;
                    }
                    if card.node_id == self.me.node_id {
                        duplicate |= self.own_id_card(from, &card, now);
                        continue;
                    }
                    if let Err(error) = self.admit(&card.node_id) {
                        refused = Some(error);
                        continue;
                    }
                    if from == card.gossip_addr {
                        self.notice_newcomer(from, &card, now);
                    }
                    self.greet(&card, now);
                    if self.members.get(&card.node_id).is_some_and(|m| {
                        card.generation > m.identity.generation
                            || (card.generation == m.identity.generation
                                && card.gossip_addr != m.identity.addr)
                    }) {
                        // A life gossip has not confirmed yet (the greeting asks foca to): its
                        // card is taken once foca knows it — it comes again, pushed on the
                        // member's way up or drawn by a digest. Taken now, a card could claim
                        // any later life and mask the member's real card for good. Likewise a
                        // card of the life that lost foca's tie-break (same generation, another
                        // address: two processes of one id).
                        continue;
                    }
                    let held = self.cards.get(&card.node_id);
                    let significant = held.is_none_or(|held| !held.same_state(&card));
                    // A view alone matters to an empty node: its bootstrap agreement waits for
                    // every card to show the view it sees. (Not relayed: see `view_changed`.)
                    let view_news =
                        !self.me.db.has_data() && held.is_some_and(|held| held.view != card.view);
                    if self.cards.merge(card.clone()) {
                        self.dirty = true;
                        evaluate |= significant || view_news;
                        if significant {
                            news.push(card);
                        }
                    }
                }
                if evaluate {
                    // A real change (agreement, database state, an empty node's view) is rare
                    // and may be what a decision waits for: evaluate now, not at the next tick
                    // (a tick's wait a round of the agreement).
                    self.reevaluate(now);
                }
                if !news.is_empty() {
                    let targets = self.random_live(self.config.relay_fanout, Some(from));
                    for to in targets {
                        self.send_cards(to, news.iter());
                    }
                }
                if duplicate {
                    return Err(Refusal::DuplicateNodeId(from));
                }
                if let Some(error) = refused {
                    return Err(Refusal::Claim(error));
                }
            }
            CardMessage::Summary { tally } => {
                // Answered with a digest, which names every member: members only, as below.
                self.check_member(from)?;
                if tally != self.tally() {
                    self.send_digest_chunk(from);
                }
            }
            CardMessage::Digest {
                entries,
                reply,
                range,
            } => {
                // The card table is for members: a stranger's digest (anybody can send one to
                // an open cluster) would draw every card, every identity a forger needs.
                self.check_member(from)?;
                let (newer_here, newer_there) = self.answer_digest(&entries, &range);
                let newer_here: Vec<Card> = newer_here.into_iter().cloned().collect();
                self.send_cards(from, newer_here.iter());
                if newer_there && !reply {
                    for payload in CardMessage::digests(self.full_digest(), true) {
                        self.send(from, Kind::Cards, &payload);
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes room for `id` in the member and card tables if it is new: at the cap, the member
    /// down the longest (or a card of no member) goes; while every member is alive, a new one
    /// is not admitted.
    pub(super) fn admit(&mut self, id: &NodeId) -> Result<(), ClaimError> {
        let cap = self.config.max_members;
        if !self.members.contains_key(id) && self.members.len() >= cap {
            let longest_down = self
                .members
                .iter()
                .filter(|(_, m)| !m.alive)
                .min_by_key(|(_, m)| m.since)
                .map(|(id, _)| id.clone());
            let Some(gone) = longest_down else {
                return Err(ClaimError::MemberCap {
                    node: id.clone(),
                    cap,
                });
            };
            self.members.remove(&gone);
            self.cards.remove(&gone);
            self.greeted.remove(&gone);
        }
        if self.cards.get(id).is_none() && self.cards.len() >= cap {
            let stray = self
                .cards
                .iter()
                .find(|card| self.members.get(&card.node_id).is_none_or(|m| !m.alive))
                .map(|card| card.node_id.clone());
            let Some(stray) = stray else {
                return Err(ClaimError::MemberCap {
                    node: id.clone(),
                    cap,
                });
            };
            self.cards.remove(&stray);
        }
        Ok(())
    }

    /// Announces to the node a card describes when foca does not know that life of it yet; at
    /// most once a second per node, since cards arrive often.
    pub(super) fn greet(&mut self, card: &Card, now: Duration) {
        let known = self
            .members
            .get(&card.node_id)
            .is_some_and(|m| m.alive && m.identity.generation >= card.generation);
        if known {
            return;
        }
        let recently = self
            .greeted
            .get(&card.node_id)
            .is_some_and(|at| now.saturating_sub(*at) < GREET_EVERY);
        if recently {
            return;
        }
        if self.greeted.len() >= MAX_GREETED {
            self.greeted
                .retain(|_, at| now.saturating_sub(*at) < GREET_EVERY);
        }
        self.greeted.insert(card.node_id.clone(), now);
        let identity = NodeIdentity {
            node_id: card.node_id.clone(),
            addr: card.gossip_addr,
            generation: card.generation,
        };
        let _ = self.foca.announce(identity, &mut self.runtime);
    }

    /// Like [`CardTable::answer`], with this node's own card counted as held.
    pub(super) fn answer_digest(
        &self,
        entries: &[DigestEntry],
        range: &DigestRange,
    ) -> (Vec<&Card>, bool) {
        let (mut newer_here, newer_there) = self.cards.answer(entries, range);
        let mine = entries.iter().find(|e| e.node_id == self.me.node_id);
        if range.covers(&self.me.node_id)
            && mine.is_none_or(|e| (e.generation, e.version) < self.me.stamp())
        {
            newer_here.push(&self.me);
        }
        newer_here.retain(|card| {
            // Only send cards of members believed alive (or our own): dead members' cards would
            // only resurrect stale state elsewhere.
            card.node_id == self.me.node_id
                || self.members.get(&card.node_id).is_some_and(|m| m.alive)
        });
        (newer_here, newer_there)
    }

    pub(super) fn full_digest(&self) -> Vec<DigestEntry> {
        let mut entries = self.cards.digest();
        entries.push(DigestEntry {
            node_id: self.me.node_id.clone(),
            generation: self.me.generation,
            version: self.me.version,
        });
        entries
    }

    /// Refuses `from` unless it is the address of a live member.
    fn check_member(&self, from: SocketAddr) -> Result<(), Refusal> {
        let from_member = self
            .members
            .values()
            .any(|m| m.alive && m.identity.addr == from);
        if from_member {
            Ok(())
        } else {
            Err(Refusal::NotAMember(from))
        }
    }

    /// The tally of what this node would offer a peer: its own card's stamp and, for every
    /// member it believes alive, the stamp of the card it holds (`(0, 0)` when none has come).
    /// Cards of dead members are left out, as [`Node::answer_digest`] never sends them.
    pub(super) fn tally(&self) -> TableTally {
        let mut tally = TableTally::default();
        tally.add(&self.me.node_id, self.me.stamp());
        for (id, member) in &self.members {
            if member.alive {
                let stamp = self.cards.get(id).map_or((0, 0), Card::stamp);
                tally.add(id, stamp);
            }
        }
        tally
    }

    /// Anti-entropy: this node's tally to one random live member, who answers with a digest
    /// only if its own differs.
    pub(super) fn sync_cards(&mut self) {
        let Some(to) = self.random_live(1, None).into_iter().next() else {
            return;
        };
        let summary = CardMessage::Summary {
            tally: self.tally(),
        };
        if let Ok(payload) = summary.encode() {
            self.send(to, Kind::Cards, &payload);
        }
    }

    /// One chunk of this node's digest to `to`: large tables go in rotating chunks of one
    /// datagram each, so that a difference costs one datagram a period, not the whole table.
    fn send_digest_chunk(&mut self, to: SocketAddr) {
        let chunks = CardMessage::digests(self.full_digest(), false);
        if chunks.is_empty() {
            return;
        }
        let chunk = chunks[self.sync_round % chunks.len()].clone();
        self.sync_round = self.sync_round.wrapping_add(1);
        self.send(to, Kind::Cards, &chunk);
    }

    /// Bumps the card's version and, with `push`, sends it out.
    pub(super) fn card_changed(&mut self, push: bool) {
        self.me.version += 1;
        if !push {
            return;
        }
        let live: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| m.alive)
            .map(|m| m.identity.addr)
            .collect();
        let targets = if live.len() <= self.config.push_all_up_to {
            live
        } else {
            self.random_live(self.config.relay_fanout, None)
        };
        let me = self.me.clone();
        for to in targets {
            self.send_cards(to, [&me]);
        }
    }

    pub(super) fn send_cards<'a>(
        &mut self,
        to: SocketAddr,
        cards: impl IntoIterator<Item = &'a Card>,
    ) {
        for payload in CardMessage::pushes(cards) {
            self.send(to, Kind::Cards, &payload);
        }
    }
}
