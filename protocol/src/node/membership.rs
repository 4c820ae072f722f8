//! What foca tells a node about the membership, turned into its member table, its view digest
//! and its card; and the reconnection that heals gossip after a renewal nobody heard.

use std::net::SocketAddr;
use std::time::Duration;

use foca::OwnedNotification;
use rand::seq::IndexedRandom;

use super::{Event, MemberInfo, Node, NodeConfig, Output, RECONNECT_FANOUT, Timer};
use crate::card::ViewDigest;
use crate::identity::{NodeId, NodeIdentity};
use crate::wire::Kind;

impl Node {
    /// While foca is not probing, announces to a few known members, alive or down. foca stops
    /// its probe cycle when it renews its identity or runs out of live members, and only starts
    /// it again when a message addressed to its *new* identity arrives; if the one gossip that
    /// carried the renewal was lost, nobody ever sends one, and both sides keep a stale view for
    /// good (simulator finding: two nodes each holding the other down, 180 s after the network
    /// healed). An announcement is accepted under any life of the receiver's id, and its reply
    /// (a feed, or "you are down", which renews us) is addressed to our current identity.
    pub(super) fn reconnect(&mut self, now: Duration) {
        if self.connected || self.members.is_empty() {
            return;
        }
        let known: Vec<NodeIdentity> = self.members.values().map(|m| m.identity.clone()).collect();
        let chosen: Vec<NodeIdentity> = known
            .sample(&mut self.rng, RECONNECT_FANOUT)
            .cloned()
            .collect();
        for identity in chosen {
            let _ = self.foca.announce(identity, &mut self.runtime);
        }
        self.drain_swim(now);
    }

    /// Turns what foca queued into outputs and membership bookkeeping.
    pub(super) fn drain_swim(&mut self, now: Duration) {
        self.drain_swim_with(now, true);
    }

    /// [`Node::drain_swim`]; `greet` sends this node's card to every member that comes up.
    pub(super) fn drain_swim_with(&mut self, now: Duration, greet: bool) {
        while let Some((to, data)) = self.runtime.to_send() {
            self.send(to.addr, Kind::Swim, &data);
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.schedule(after, Timer::Swim(timer));
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => self.member_up(id, now, greet),
                OwnedNotification::MemberDown(id) => self.member_down(id, now),
                OwnedNotification::Rename(_, new) => self.renamed(new, now, greet),
                OwnedNotification::Rejoin(id) => {
                    // foca renewed our identity after being declared down: our card follows.
                    self.last_renewal = Some(now);
                    self.new_life(id.generation);
                }
                OwnedNotification::Active => self.connected = true,
                OwnedNotification::Defunct => self.connected = false,
                OwnedNotification::Idle => {
                    self.connected = false;
                    self.outputs.push_back(Output::Event(Event::Idle));
                }
            }
        }
    }

    /// This node's identity changed to `generation` (a renewal): the card follows, its version
    /// starting over (a new generation orders after any version of the old one, and versions
    /// stay within the bound of their life's length), and foca waits for a message to the new
    /// identity before it probes again.
    pub(super) fn new_life(&mut self, generation: u64) {
        self.me.generation = generation;
        self.me.version = 0;
        self.card_changed(true);
        self.connected = false;
    }

    /// Drops the held card of `id`'s node when it names another address at the same or a later
    /// generation: the card of another process with this id, whose life foca just ranked below
    /// `id` (its tie-break orders equal generations by address). Cards order by (generation,
    /// version) alone, so left in place it would outrank the current life's cards — whose
    /// version starts over — for good. Seen on a two-engine swarm: the process that had kept
    /// the id (by outbidding the other's generation) left, the other renewed once onto the same
    /// generation and won foca's tie, and every peer kept the gone process's card.
    fn forget_replaced_card(&mut self, id: &NodeIdentity) {
        if self
            .cards
            .get(&id.node_id)
            .is_some_and(|held| held.gossip_addr != id.addr && held.generation >= id.generation)
        {
            self.cards.remove(&id.node_id);
            self.dirty = true;
        }
    }

    /// foca replaced a member's identity with a newer one of the same node id: a restart,
    /// perhaps at another address, or a renewal. foca names the rename whatever the states, and
    /// tells a change of the live set apart (a `MemberUp` or `MemberDown` follows), except for
    /// one case: a live member whose new life is live too. That is a life that came up *now*,
    /// as after a down: kept as the old life's, the "up since" made a member restarted onto a
    /// just-killed member's IP lose that address to the killed member, up more recently than
    /// the old life, until gossip called the killed member down (a chaos run: 7.9 s of refused
    /// joins). (Taken for an "up" whatever foca's state, a rename between two down lives kept a
    /// gone member alive here for good — simulator finding.)
    fn renamed(&mut self, new: NodeIdentity, now: Duration, greet: bool) {
        let was_alive = self.members.get(&new.node_id).is_some_and(|m| m.alive);
        let live_now = was_alive && self.foca.iter_members().any(|m| *m.id() == new);
        if live_now {
            self.member_up(new, now, greet);
            return;
        }
        self.forget_replaced_card(&new);
        if let Some(member) = self.members.get_mut(&new.node_id) {
            member.identity = new;
            self.dirty = true;
        }
    }

    pub(super) fn member_up(&mut self, id: NodeIdentity, now: Duration, greet: bool) {
        self.forget_replaced_card(&id);
        let addr = id.addr;
        let node_id = id.node_id.clone();
        let was_alive = self
            .members
            .insert(
                node_id.clone(),
                MemberInfo {
                    identity: id.clone(),
                    alive: true,
                    since: now,
                },
            )
            .is_some_and(|m| m.alive);
        self.outputs.push_back(Output::Event(Event::MemberUp(id)));
        self.dirty = true;
        if !was_alive {
            self.live += 1;
            self.view_changed(&node_id, now, greet);
        }
        if greet {
            // A newcomer learns this node's card at once; it does the same for us.
            let me = self.me.clone();
            self.send_cards(addr, [&me]);
        }
    }

    pub(super) fn member_down(&mut self, id: NodeIdentity, now: Duration) {
        let mut was_alive = false;
        if let Some(member) = self.members.get_mut(&id.node_id) {
            was_alive = member.alive;
            member.alive = false;
            member.since = now;
        }
        self.outputs
            .push_back(Output::Event(Event::MemberDown(id.clone())));
        self.dirty = true;
        if was_alive {
            self.live -= 1;
            self.view_changed(&id.node_id, now, true);
        }
    }

    /// `id` joined or left the live view: the digest toggles it. An empty node's card carries
    /// the digest (the agreement compares views); small clusters push the new view at once,
    /// large ones let anti-entropy carry it, since every membership event would otherwise flood
    /// every card everywhere. A node with data publishes no view, so its card does not change.
    /// With `push` false (members restored, not met) the card changes without being sent.
    pub(super) fn view_changed(&mut self, id: &NodeId, now: Duration, push: bool) {
        self.view_changed_at = now;
        self.live_view = self.live_view.toggled(id);
        debug_assert_eq!(
            self.live,
            self.members.values().filter(|m| m.alive).count(),
            "the live count follows the member map"
        );
        self.fit_swim();
        let small = push && self.live <= self.config.push_all_up_to;
        if small {
            self.schedule(self.config.settle, Timer::Settled);
        }
        if self.publish_view() {
            self.card_changed(small);
        }
    }

    /// Sizes foca's retransmissions and suspicion timeout to the live membership, this node
    /// included ([`NodeConfig::swim_for_size`]); the configured values are the floor. A
    /// suspicion already running keeps the timeout it started with.
    fn fit_swim(&mut self) {
        let size = u32::try_from(self.live + 1).unwrap_or(u32::MAX);
        let fitted = NodeConfig::swim_for_size(&self.config.swim, size);
        if fitted.max_transmissions != self.swim.max_transmissions
            || fitted.suspect_to_down_after != self.swim.suspect_to_down_after
        {
            self.swim = fitted.clone();
            // Only a change of probe period, probe RTT or a periodic task enabled is refused,
            // and `fitted` keeps those of the configuration foca started with.
            let result = self.foca.set_config(fitted);
            debug_assert!(result.is_ok(), "foca refused a resized config: {result:?}");
        }
    }

    /// Puts the view this node's card should carry on it, and says whether that changed it.
    /// Only empty nodes take part in the bootstrap agreement, and nobody runs it beside a
    /// member with data (rule 4 waits for `DataElsewhere` first), so a card with data carries
    /// the zero digest: in a running cluster no membership event changes any card, and
    /// anti-entropy's tallies stay equal (at 1 000 nodes, every join or death had kept the
    /// tallies differing for minutes).
    pub(super) fn publish_view(&mut self) -> bool {
        let view = if self.me.db.has_data() {
            ViewDigest::NONE
        } else {
            self.live_view
        };
        let changed = self.me.view != view;
        self.me.view = view;
        changed
    }

    /// Up to `n` random live members' addresses, never `except`.
    pub(super) fn random_live(&mut self, n: usize, except: Option<SocketAddr>) -> Vec<SocketAddr> {
        let live: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| m.alive && Some(m.identity.addr) != except)
            .map(|m| m.identity.addr)
            .collect();
        live.sample(&mut self.rng, n).copied().collect()
    }
}
