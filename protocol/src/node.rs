//! One rq4d node as a state machine: foca, the card table and the coordinator behind one API.
//!
//! Inputs: [`Node::handle_datagram`], [`Node::handle_timeout`], [`Node::discover`],
//! [`Node::set_db`], [`Node::leave`] — each with `now`, the time since an arbitrary epoch chosen
//! by the driver. Outputs: [`Node::poll_output`] yields datagrams to send and [`Event`]s
//! (membership changes, new decisions), in the order they were produced, and
//! [`Node::poll_timeout`] says when the node wants [`Node::handle_timeout`] next: the timers
//! live in the node. The daemon drives it with a UDP socket and one sleep; the simulator with a
//! virtual network and clock. Nothing here reads a clock, touches a socket or spawns.
//!
//! The parts, each an `impl Node` block of its own: `config` (how a node is set up), `cards`
//! (pushes, digests, the table's cap), `membership` (what foca reports), `swim` (the screen in
//! front of foca), `duplicates` (another process with this id), `timers` (the timer table),
//! `outputs` (what the driver gets back); this file holds the node's state, its inputs and the
//! decision.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::card::{Agreement, Card, CardTable, ClusterId, DbState, ViewDigest};
use crate::codec::WireCodec;
use crate::coordinator::{self, Conflict, Decision, View, Waiting};
use crate::identity::{NodeId, NodeIdentity};
use crate::seal::{KeyId, Keyring, Sealer};
use crate::wire::{self, Kind};

/// How often a node announces to one peer it learnt of from a card but foca does not know yet.
const GREET_EVERY: Duration = Duration::from_secs(1);
/// How many known members a node that foca left without a probe cycle announces to, per
/// `card_sync` period.
const RECONNECT_FANOUT: usize = 3;
/// How many acknowledged proposals a node remembers (see `View::acked`).
const MAX_ACKED: usize = 16;
/// How many greetings a node remembers (each for [`GREET_EVERY`]).
const MAX_GREETED: usize = 256;

mod cards;
mod config;
mod duplicates;
mod membership;
mod outputs;
mod swim;
mod timers;

pub use config::NodeConfig;
pub use duplicates::{ANSWER_EVERY, CHALLENGE_EVERY, CHALLENGE_FOR};
pub use outputs::{Event, Output, Refusal};
pub use swim::RENEW_EVERY;
use timers::Timer;

/// A member as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its current identity.
    pub identity: NodeIdentity,
    /// Alive (or suspect) in foca.
    pub alive: bool,
    /// When it last changed between alive and down.
    pub since: Duration,
}

/// The founders of one formation as cards show them: every node that proposed or acknowledged
/// the proposal that minted its cluster id, or is bound to it.
#[derive(Clone, Debug)]
struct Founders {
    cluster: ClusterId,
    size: u16,
    known: BTreeMap<NodeId, String>,
}

/// One rq4d node. See the module docs.
pub struct Node {
    config: NodeConfig,
    tag: u64,
    sealer: Sealer,
    /// The `now` of the latest input: the time outgoing datagrams are stamped with.
    now: Duration,
    /// The key the latest datagram from each address was sealed with (what `rq4d keyring`
    /// shows, so an operator knows when an old key is no longer used).
    sender_keys: BTreeMap<SocketAddr, KeyId>,
    foca: Foca<NodeIdentity, WireCodec, SmallRng, NoCustomBroadcast>,
    /// The configuration foca runs with: `config.swim` sized to the live membership
    /// (`Node::fit_swim`). foca does not show its own.
    swim: foca::Config,
    runtime: AccumulatingRuntime<NodeIdentity>,
    rng: SmallRng,
    me: Card,
    cards: CardTable,
    members: BTreeMap<NodeId, MemberInfo>,
    /// How many of `members` are alive (kept with it: counting on every membership event made
    /// filling a large membership quadratic per node).
    live: usize,
    /// The digest of the live membership, kept current on every membership event. The card
    /// carries it only while the node is empty (see [`Node::publish_view`]).
    live_view: ViewDigest,
    view_changed_at: Duration,
    started_at: Duration,
    decision: Decision,
    /// Other processes with this node's id (see `duplicates`).
    duplicates: duplicates::Duplicates,
    /// When this node last renewed its identity (foca's rejoin, or outbidding another life).
    last_renewal: Option<Duration>,
    greeted: BTreeMap<NodeId, Duration>,
    /// foca is probing (it said `Active` and not `Idle`, `Defunct` or `Rejoin` since).
    connected: bool,
    /// The clusters of the proposals this node acknowledged in this life (see `View::acked`).
    acked: Vec<ClusterId>,
    /// The founders of the formation this node is bound to (or was: kept after the formation
    /// completes, until the node belongs to another cluster or is wiped), `(node id, Raft
    /// address)`, with the formation's cluster and size. Complete once it holds exactly that
    /// many: see [`Node::founders`].
    founders: Option<Founders>,
    /// Something the decision depends on changed since the last evaluation.
    dirty: bool,
    sync_round: usize,
    timers: timers::Timers,
    outputs: VecDeque<Output>,
}

impl Node {
    /// Creates a node with its periodic timers set (drain [`Node::poll_output`], then ask
    /// [`Node::poll_timeout`]).
    pub fn new(config: NodeConfig, now: Duration) -> Self {
        let identity = config.identity.clone();
        let identity_id = identity.node_id.clone();
        let me = Card {
            node_id: identity.node_id.clone(),
            generation: identity.generation,
            version: 0,
            gossip_addr: identity.addr,
            raft_addr: config.raft_addr.clone(),
            http_addr: config.http_addr.clone(),
            expect: config.expect,
            read_only: config.read_only,
            voter_cap: config.voter_cap,
            db: config.db.clone(),
            agreement: Agreement::None,
            cluster_id: config.cluster_id,
            formation: config.formation.filter(|_| config.cluster_id.is_some()),
            view: if config.db.has_data() {
                ViewDigest::NONE
            } else {
                ViewDigest::of([&identity.node_id])
            },
            keys: config
                .keyring
                .as_ref()
                .map(Keyring::ids)
                .unwrap_or_default(),
        };
        let foca = Foca::new(
            identity,
            config.swim.clone(),
            SmallRng::seed_from_u64(config.rng_seed),
            WireCodec,
        );
        let mut node = Self {
            tag: wire::cluster_tag(&config.cluster_name),
            sealer: Sealer::new(config.keyring.clone(), config.nonce_salt),
            now,
            sender_keys: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(config.rng_seed.rotate_left(17) ^ 0x5eed),
            foca,
            swim: config.swim.clone(),
            runtime: AccumulatingRuntime::new(),
            me,
            cards: CardTable::default(),
            members: BTreeMap::new(),
            live: 0,
            live_view: ViewDigest::of([&identity_id]),
            view_changed_at: now,
            started_at: now,
            decision: Decision::Wait(Waiting::Starting),
            duplicates: duplicates::Duplicates::default(),
            last_renewal: None,
            greeted: BTreeMap::new(),
            connected: false,
            acked: config.acked.clone(),
            founders: None,
            dirty: true,
            sync_round: 0,
            timers: timers::Timers::default(),
            outputs: VecDeque::new(),
            config,
        };
        node.schedule(node.config.tick, Timer::Tick);
        node.schedule(node.config.card_sync, Timer::CardSync);
        node.reevaluate(now);
        node
    }

    /// The next thing the driver must do, in order of production.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// This node's own card.
    pub fn card(&self) -> &Card {
        &self.me
    }

    /// Every card known, including stale ones of dead members.
    pub fn cards(&self) -> &CardTable {
        &self.cards
    }

    /// Every member ever seen in this life, alive or down, by node id (this node excluded).
    pub fn members(&self) -> &BTreeMap<NodeId, MemberInfo> {
        &self.members
    }

    /// The current decision.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The clusters of the proposals this node acknowledged (the driver persists them beside
    /// the binding; see `NodeConfig::acked`).
    pub fn acked(&self) -> &[ClusterId] {
        &self.acked
    }

    /// The founders of the formation this node took part in, `(node id, Raft address)` — once
    /// every one of them is known, else empty. rqlited's `-bootstrap-expect` forms the cluster
    /// with exactly the founders that notified, so this is the cluster's first configuration:
    /// the driver records it as the stored voters when none are recorded yet. Without it, a
    /// cluster whose founders all crashed before its first election had no recorded voters,
    /// and no `peers.json` recovery once they came back at new addresses (simulator finding).
    pub fn founders(&self) -> Vec<(NodeId, String)> {
        match &self.founders {
            Some(f) if f.known.len() == usize::from(f.size) => f
                .known
                .iter()
                .map(|(id, raft)| (id.clone(), raft.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Membership updates SWIM still has to piggyback (foca's backlog): zero once every change
    /// this node heard has been passed on as often as foca passes a change on. A measurement's
    /// steady state begins only then (a simultaneous start of N nodes leaves N updates to carry).
    pub fn swim_backlog(&self) -> usize {
        self.foca.updates_backlog()
    }

    /// The SWIM configuration foca runs with now: `NodeConfig::swim`, sized to the live
    /// membership ([`NodeConfig::swim_for_size`]).
    pub fn swim(&self) -> &foca::Config {
        &self.swim
    }

    /// This node's current gossip identity.
    pub fn identity(&self) -> &NodeIdentity {
        self.foca.identity()
    }

    /// The current card of a live member (a card from an older life does not count).
    /// The card must be of the member's current life or a later one, *and* name the address
    /// gossip knows the member at: a card alone cannot move a member somewhere else (a forged
    /// "moved" card would otherwise choose where a `peers.json` recovery points).
    pub fn live_card(&self, id: &NodeId) -> Option<&Card> {
        let member = self.members.get(id).filter(|m| m.alive)?;
        self.cards.get(id).filter(|card| {
            card.generation >= member.identity.generation
                && card.gossip_addr == member.identity.addr
        })
    }

    /// Says hello to an address found by discovery: sends it this node's card. foca cannot
    /// announce to a bare address (it needs the peer's identity, and ours is keyed by node id),
    /// so the card is the hello: a node that receives the card of a stranger announces to the
    /// identity the card names, and SWIM takes it from there.
    pub fn discover(&mut self, to: SocketAddr, now: Duration) {
        self.now = now;
        if to == self.me.gossip_addr {
            return;
        }
        let me = self.me.clone();
        self.send_cards(to, [&me]);
        self.drain_swim(now);
    }

    /// Leaves the gossip gracefully (on shutdown): peers see `down` at once instead of after the
    /// suspicion timeout.
    pub fn leave(&mut self, now: Duration) {
        self.now = now;
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain_swim(now);
    }

    /// Takes `members` as known and alive, with their cards, without a datagram: foca's
    /// `apply_many` without broadcast (its "restoring knowledge" use), the cards merged as if
    /// received, and no card sent to the members (they are assumed to hold this node's). The
    /// simulator starts its large clusters this way: a gossip warm-up of N nodes from nothing
    /// costs O(N²) datagrams, each an O(N) scan of foca's member list, before any figure can be
    /// taken. The daemon learns its members from the network and never calls it.
    pub fn restore_members(&mut self, members: Vec<(NodeIdentity, Card)>, now: Duration) {
        self.now = now;
        let mut updates = Vec::with_capacity(members.len());
        let mut cards = Vec::with_capacity(members.len());
        for (identity, card) in members {
            if identity.node_id != self.me.node_id {
                updates.push(foca::Member::alive(identity));
                cards.push(card);
            }
        }
        self.restore_cards(cards);
        let _ = self
            .foca
            .apply_many(updates.into_iter(), false, &mut self.runtime);
        self.drain_swim_with(now, false);
    }

    /// Merges `cards` as if received, without a datagram and without telling foca anything:
    /// the cards of members [`Node::restore_members`] already restored, after their view
    /// digests changed. Handing foca the identities again would find nothing new, at the cost
    /// of a scan of its member list per identity. Its own card is ignored.
    pub fn restore_cards(&mut self, cards: impl IntoIterator<Item = Card>) {
        for card in cards {
            if card.node_id != self.me.node_id && self.cards.merge(card) {
                self.dirty = true;
            }
        }
    }

    /// Replaces the keyring (the keyring file was re-read): datagrams are sealed with the new
    /// primary from now on, any key of the new ring opens, and the card tells the members which
    /// keys this node holds.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>, now: Duration) {
        self.now = now;
        self.me.keys = keyring.as_ref().map(Keyring::ids).unwrap_or_default();
        self.sealer.set_keyring(keyring);
        self.card_changed(true);
    }

    /// The keyring in use.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.sealer.keyring()
    }

    /// The key the latest datagram from `addr` was sealed with.
    pub fn sender_key(&self, addr: &SocketAddr) -> Option<KeyId> {
        self.sender_keys.get(addr).copied()
    }

    /// Corrects the wall clock at the driver's epoch (see `NodeConfig::wall_clock`); the
    /// daemon calls it when the system clock was stepped.
    pub fn set_wall_clock(&mut self, wall_clock: Duration) {
        self.config.wall_clock = wall_clock;
    }

    /// Records the voters of this node's cluster, as its rqlited reports them while running.
    pub fn set_stored_voters(&mut self, voters: Vec<(NodeId, String)>) {
        if self.config.stored_voters != voters {
            self.config.stored_voters = voters;
            self.dirty = true;
        }
    }

    /// Records what rqlited is doing now and re-evaluates.
    pub fn set_db(&mut self, db: DbState, now: Duration) {
        self.now = now;
        if self.me.db != db {
            self.me.db = db;
            self.publish_view();
            self.card_changed(true);
        }
        self.adopt_founders();
        self.reevaluate(now);
    }

    /// The voters recorded for this node's cluster (see [`NodeConfig::stored_voters`]).
    pub fn stored_voters(&self) -> &[(NodeId, String)] {
        &self.config.stored_voters
    }

    /// A founder whose rqlited is a voter of the formed cluster, with no voters recorded yet,
    /// takes the founders as them: `-bootstrap-expect` forms the cluster with exactly the
    /// founders, so they are its first configuration, and a cluster whose founders all crash
    /// before its first election can still be recovered with `peers.json` (simulator finding
    /// 14). The supervisor persists them from the directive.
    fn adopt_founders(&mut self) {
        let voter = self.me.db.running().is_some_and(|r| r.voter);
        if voter && self.config.stored_voters.is_empty() {
            let founders = self.founders();
            if !founders.is_empty() {
                self.config.stored_voters = founders;
                self.dirty = true;
            }
        }
    }

    /// The driver deleted this node's data (volatile mode, after [`Decision::Wipe`]): the node
    /// is empty and belongs to no cluster. Without this, a wiped seed whose card still carried
    /// its cluster id kept acting on it (simulator finding: a wiped seed bootstrapped again
    /// under its old id, and a wiped joiner stayed bound to the dead cluster forever).
    pub fn wiped(&mut self, now: Duration) {
        self.now = now;
        self.config.stored_voters.clear();
        self.acked.clear();
        self.founders = None;
        self.me.db = DbState::Empty;
        self.me.cluster_id = None;
        self.me.formation = None;
        self.me.agreement = Agreement::None;
        self.publish_view();
        self.card_changed(true);
        self.reevaluate(now);
    }

    /// Handles a datagram received from `from`. A refused datagram changes nothing; count it.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Duration,
    ) -> Result<(), Refusal> {
        self.now = now;
        let opened = self.sealer.open(datagram, self.tag, self.wall())?;
        if let Some(key) = opened.key {
            self.note_sender_key(from, key);
        }
        let result = match opened.kind {
            Kind::Swim => self.handle_swim(from, &opened.payload, now),
            Kind::Cards => self.handle_cards(from, &opened.payload, now),
        };
        self.drain_swim(now);
        result
    }

    /// Carries out a timer that is due.
    fn fire(&mut self, timer: Timer, now: Duration) {
        self.now = now;
        match timer {
            Timer::Swim(timer) => {
                let _ = self.foca.handle_timer(timer, &mut self.runtime);
                self.drain_swim(now);
            }
            Timer::Tick => {
                self.schedule(self.config.tick, Timer::Tick);
                self.repeat_challenges(now);
                // Decisions are re-evaluated once per tick at most, not per datagram: with
                // thousands of members an evaluation per message would dominate. A waiting
                // node re-evaluates every tick, since settle periods elapse without input.
                let waiting = matches!(self.decision, Decision::Wait(_) | Decision::Conflict(_));
                if self.dirty || waiting {
                    self.reevaluate(now);
                }
            }
            Timer::CardSync => {
                self.sync_cards();
                self.reconnect(now);
                self.schedule(self.config.card_sync, Timer::CardSync);
            }
            Timer::Settled => {
                if matches!(self.decision, Decision::Wait(_)) {
                    self.reevaluate(now);
                }
            }
        }
    }

    fn handle_swim(
        &mut self,
        from: SocketAddr,
        payload: &[u8],
        now: Duration,
    ) -> Result<(), Refusal> {
        let screened = self.screen_swim(from, payload, now)?;
        self.foca
            .handle_data(&screened, &mut self.runtime)
            .map_err(|error| Refusal::Swim(error.to_string()))
    }

    fn reevaluate(&mut self, now: Duration) {
        self.dirty = false;
        let verdict = {
            let mut peers = Vec::new();
            let mut missing = Vec::new();
            for id in self
                .members
                .iter()
                .filter(|(_, m)| m.alive)
                .map(|(id, _)| id)
            {
                match self.live_card(id) {
                    Some(card) => peers.push(card),
                    None => missing.push(id),
                }
            }
            let view = View {
                me: &self.me,
                peers,
                missing,
                settled: now.saturating_sub(self.view_changed_at) >= self.config.settle,
                looked_around: now.saturating_sub(self.started_at) >= self.config.resume_after,
                volatile: self.config.volatile,
                faults: self.config.faults,
                stored_voters: &self.config.stored_voters,
                acked: &self.acked,
            };
            coordinator::decide(&view)
        };
        if let Agreement::Ack { seed, view, round } = &verdict.agreement {
            let cluster = coordinator::mint_cluster_id(seed, *round, *view);
            if !self.acked.contains(&cluster) {
                // A handful is plenty: an agreement is over once its seed decides.
                if self.acked.len() >= MAX_ACKED {
                    self.acked.remove(0);
                }
                self.acked.push(cluster);
            }
        }
        let decision = self.guard_identity(verdict.decision, now);
        if verdict.agreement != self.me.agreement
            || verdict.cluster_id != self.me.cluster_id
            || verdict.formation != self.me.formation
        {
            self.me.agreement = verdict.agreement;
            self.me.cluster_id = verdict.cluster_id;
            self.me.formation = verdict.formation;
            self.card_changed(true);
        }
        self.track_founders();
        if decision != self.decision {
            self.decision = decision.clone();
            self.outputs
                .push_back(Output::Event(Event::Decided(decision)));
        }
    }

    /// The duplicate-id rules over the coordinator's decision (see `duplicates`): a node that
    /// is not running starts nothing while another live process may hold its id, and refuses
    /// once the evidence counts; two running processes with one id are a conflict; a running
    /// node whose id another, idle process uses keeps running.
    fn guard_identity(&self, decision: Decision, now: Duration) -> Decision {
        let id = self.me.node_id.clone();
        match self.duplicate(now) {
            Some((addr, _)) if !self.running() => {
                Decision::Conflict(Conflict::IdInUse { id, addr })
            }
            Some((addr, true)) => Decision::Conflict(Conflict::IdRunningTwice { id, addr }),
            _ => match self.open_challenge(now) {
                Some(addr) if !self.running() && decision.starts_rqlited() => {
                    Decision::Wait(Waiting::IdentityCheck { id, addr })
                }
                _ => decision,
            },
        }
    }

    /// Collects the founders of the formation this node is bound to from the live cards. Kept
    /// after the formation completes (the card's `formation` is cleared then) until the node
    /// belongs to another cluster or is wiped.
    fn track_founders(&mut self) {
        let cluster = self.me.cluster_id;
        if self.founders.as_ref().map(|f| Some(f.cluster)) != Some(cluster) {
            self.founders = None;
        }
        if let (Some(cluster), Some(size)) = (cluster, self.me.formation) {
            let founder = |card: &Card| {
                (card.cluster_id == Some(cluster) && card.formation.is_some())
                    || coordinator::agreement_cluster(card) == Some(cluster)
            };
            let seen: Vec<(NodeId, String)> = self
                .members
                .iter()
                .filter(|(_, m)| m.alive)
                .filter_map(|(id, _)| self.live_card(id).filter(|card| founder(card)))
                .map(|card| (card.node_id.clone(), card.raft_addr.clone()))
                .chain([(self.me.node_id.clone(), self.me.raft_addr.clone())])
                .collect();
            let founders = self.founders.get_or_insert_with(|| Founders {
                cluster,
                size,
                known: BTreeMap::new(),
            });
            founders.size = size;
            founders.known.extend(seen);
        }
    }

    fn send(&mut self, to: SocketAddr, kind: Kind, payload: &[u8]) {
        let wall = self.wall();
        if let Ok(datagram) = self.sealer.seal(kind, self.tag, payload, wall) {
            self.outputs.push_back(Output::Send { to, datagram });
        }
    }

    /// The wall clock at the latest input.
    fn wall(&self) -> Duration {
        self.config.wall_clock + self.now
    }

    /// Remembers the key `from` sealed with. Bounded: when the table outgrows the membership
    /// (addresses change), entries of addresses no member uses any more are dropped.
    fn note_sender_key(&mut self, from: SocketAddr, key: KeyId) {
        if self.sender_keys.insert(from, key).is_none()
            && self.sender_keys.len() > 2 * self.members.len() + 16
        {
            let members: std::collections::BTreeSet<SocketAddr> =
                self.members.values().map(|m| m.identity.addr).collect();
            self.sender_keys
                .retain(|addr, _| *addr == from || members.contains(addr));
        }
    }
}

#[cfg(test)]
mod tests;
