//! The simulated world: hosts running `rq4d_protocol::Node`, the network between them, the DNS
//! name that lists them, and (optionally) each host's rqlited under the daemon's supervisor.
//!
//! Everything happens through one [`EventQueue`] in virtual time; all randomness comes from one
//! generator seeded by the scenario, and every collection that is iterated is ordered, so a seed
//! gives one run, event for event. The world plays the daemon's part for each node exactly as
//! `daemon/src/agent.rs` does: datagrams in, one wake-up per host at the earliest of its node's and
//! its supervisor's timeouts, discovery every 3 s to the addresses that are not live members
//! already, supervisor reports fed back with `set_db`.
//!
//! This file is the event loop: the world's state, the events, delivery, discovery, the node's
//! outputs, and the scenario's actions (start, crash, scale down, replace, the network). The rest
//! of the world, one idea a file:
//!
//! * `config` — how the world is set up ([`WorldConfig`]) and what a scenario does to it
//!   ([`Action`]);
//! * `record` — what a run leaves on record for the invariants and the figures, and the
//!   [`Fact`]s handed to the judge;
//! * `observe` — recording them at the very transitions: bootstraps, agreements, node events,
//!   the digest, convergence;
//! * `supervise` — each host's rqlited under the daemon's supervisor, the host's timeouts, and the
//!   Raft model's ticks;
//! * `describe` — the readable trace, the host summary, descriptions of states and actions.

mod config;
mod describe;
mod forgery;
mod observe;
mod record;
mod supervise;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rq4d_protocol::{
    Agreement, ClusterId, DbState, Node, NodeConfig, NodeId, NodeIdentity, Output, Refusal,
};

use crate::dns::Dns;
use crate::network::{self, Addresses, Network};
use crate::queue::EventQueue;
use crate::rqlite::{Effect, HostInfo, Rqlite};
use crate::supervisor::Supervisor;
use crate::violation::Violation;

pub use config::{Action, Forgery, WorldConfig};
pub use observe::Convergence;
pub use record::{Bootstrap, Counters, Fact, MemberEvent};

/// As in the daemon: discovery runs every 3 s.
pub const DISCOVERY_EVERY: Duration = Duration::from_secs(3);
/// How often the rqlite model runs its elections.
const RAFT_TICK: Duration = Duration::from_millis(100);

enum Ev {
    Deliver {
        to: SocketAddr,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// The host's next timeout, its node's or its supervisor's (stale unless it is the one
    /// armed: see [`Host::wake_at`]).
    Wake {
        host: usize,
        life: u32,
    },
    Discover {
        host: usize,
        life: u32,
    },
    Rqlite(Effect),
    RaftTick,
    Action(Action),
}

/// One container slot: a stable node id and volume, and the node while it runs.
pub struct Host {
    /// Its node id.
    pub id: NodeId,
    /// Its current IP.
    pub ip: Ipv4Addr,
    /// Bumped at every start and stop: timers and polls of an older life are ignored.
    pub life: u32,
    /// The protocol node while the container runs.
    pub node: Option<Node>,
    /// The daemon's supervisor (rqlite mode).
    pub sup: Supervisor,
    /// When the armed wake-up is due: the earliest of the node's and the supervisor's
    /// timeouts when it was armed.
    wake_at: Option<Duration>,
    /// Part of the initial set.
    pub initial: bool,
    /// `--read-only`: never counted for `--expect`, never a founder, never a voter.
    pub read_only: bool,
    /// Left the configuration to rejoin as a voter, and not yet back.
    promoting: bool,
    /// Gone for good (scaled down or its volume lost).
    pub gone: bool,
    /// Started at least once.
    pub ever_started: bool,
    /// The database state when rqlited is not modelled.
    pub static_db: DbState,
    last_generation: u64,
    last_agreement: Agreement,
    /// When this host acknowledged which seed.
    pub acks: Vec<(Duration, NodeId)>,
    /// When this host's gossip declared whom down.
    pub downs: Vec<(Duration, NodeId)>,
    /// The last datagram its node received (keyed worlds only: what a replay sends again).
    captured: Option<forgery::Captured>,
}

/// Judges a fact at the moment it happens: the violation it is, if any. The world is given one
/// when it is built (the crate's properties: `invariants::judge`), so that the world need not
/// know the properties, nor they be checked after the fact.
pub type Judge = fn(&World, &Fact<'_>) -> Option<Violation>;

/// The world. See the module docs.
pub struct World {
    /// Virtual time.
    pub now: Duration,
    /// The configuration.
    pub config: WorldConfig,
    queue: EventQueue<Ev>,
    rng: SmallRng,
    /// The hosts, by index.
    pub hosts: Vec<Host>,
    by_id: BTreeMap<NodeId, usize>,
    /// Who holds which IP.
    pub addresses: Addresses,
    /// The network.
    pub net: Network,
    dns: Dns,
    /// rqlited processes, disks and clusters.
    pub rqlite: Rqlite,
    /// Bootstraps carried out, in order.
    pub bootstraps: Vec<Bootstrap>,
    /// Safety violations found.
    pub violations: Vec<Violation>,
    /// Double bootstraps explained by the seed-isolation window (see ARCHITECTURE.md).
    pub windows: Vec<Violation>,
    /// Agreed formations by cluster id: the founders, as the seed saw them when it decided.
    pub formations: BTreeMap<ClusterId, Vec<NodeId>>,
    /// The readable trace (when enabled).
    pub trace: Vec<String>,
    /// Membership events (when `record_members` is on).
    pub member_log: Vec<MemberEvent>,
    /// Record membership events.
    pub record_members: bool,
    /// Counters.
    pub counters: Counters,
    /// A running hash of everything that happened: equal digests, equal runs.
    pub digest: u64,
    judge: Judge,
}

impl World {
    /// An empty world, whose transitions `judge` judges (the crate's properties:
    /// `invariants::judge`).
    pub fn new(config: WorldConfig, judge: Judge) -> Self {
        let rng = SmallRng::seed_from_u64(config.seed ^ 0x51_u64.rotate_left(40));
        let mut world = Self {
            now: Duration::ZERO,
            queue: EventQueue::default(),
            net: Network::new(config.link.clone(), config.seed),
            dns: Dns::new(config.dns_lag, config.dns_limit),
            rng,
            hosts: Vec::new(),
            by_id: BTreeMap::new(),
            addresses: Addresses::default(),
            rqlite: Rqlite::default(),
            bootstraps: Vec::new(),
            violations: Vec::new(),
            windows: Vec::new(),
            formations: BTreeMap::new(),
            trace: Vec::new(),
            member_log: Vec::new(),
            record_members: false,
            counters: Counters::default(),
            digest: 0xcbf2_9ce4_8422_2325,
            judge,
            config,
        };
        if world.config.rqlite {
            world.queue.push(Duration::ZERO, Ev::RaftTick);
        }
        world
    }

    /// Adds a host (not started). `initial`: part of the initial set the safety property is
    /// about.
    pub fn add_host(&mut self, id: NodeId, initial: bool, static_db: DbState) -> usize {
        let ip = self.addresses.allocate(self.hosts.len());
        self.add_host_at(id, initial, static_db, ip)
    }

    /// [`World::add_host`] at the IP `offset` places after the first (see
    /// [`Addresses::allocate_at`]): a scenario gives its hosts IPs in another order than their
    /// ids, as containers get theirs in the order they start.
    pub fn add_host_at_offset(
        &mut self,
        id: NodeId,
        initial: bool,
        static_db: DbState,
        offset: usize,
    ) -> usize {
        let ip = self.addresses.allocate_at(self.hosts.len(), offset);
        self.add_host_at(id, initial, static_db, ip)
    }

    fn add_host_at(
        &mut self,
        id: NodeId,
        initial: bool,
        static_db: DbState,
        ip: Ipv4Addr,
    ) -> usize {
        let index = self.hosts.len();
        self.by_id.insert(id.clone(), index);
        self.rqlite.add_host(HostInfo {
            id: id.clone(),
            raft: network::raft_addr(ip),
        });
        self.hosts.push(Host {
            id,
            ip,
            life: 0,
            node: None,
            sup: Supervisor::new(
                Duration::ZERO,
                index,
                &self.rqlite,
                self.config.reap_after,
                self.config.volatile,
                false,
            ),
            initial,
            read_only: false,
            promoting: false,
            gone: false,
            ever_started: false,
            static_db,
            wake_at: None,
            captured: None,
            last_generation: 0,
            last_agreement: Agreement::None,
            acks: Vec::new(),
            downs: Vec::new(),
        });
        index
    }

    /// Makes a host a read-only replica (`--read-only`), before its first start.
    pub fn make_read_only(&mut self, host: usize) {
        self.hosts[host].read_only = true;
    }

    /// The number of hosts in the initial set that count for `--expect` (read-only replicas
    /// do not): the set the one-bootstrap property is about.
    pub fn initial_size(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.initial && !h.read_only)
            .count()
    }

    /// Live hosts that may vote: not read-only.
    pub fn eligible_live(&self) -> usize {
        self.live_hosts()
            .filter(|&h| !self.hosts[h].read_only)
            .count()
    }

    /// The host with node id `id`.
    pub fn host_by_id(&self, id: &NodeId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Schedules `action` at `at`.
    pub fn schedule(&mut self, at: Duration, action: Action) {
        self.queue.push(at, Ev::Action(action));
    }

    /// Hosts whose container runs now.
    pub fn live_hosts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.hosts.len()).filter(|&h| self.hosts[h].node.is_some())
    }

    /// The nodes of the hosts whose container runs now.
    pub fn live_nodes(&self) -> impl Iterator<Item = &Node> + '_ {
        self.hosts.iter().filter_map(|host| host.node.as_ref())
    }

    /// Every live node takes every other live node as a known, alive member with its current
    /// card (`Node::restore_members`): the membership a gossip warm-up would end with, without
    /// its O(N²) datagrams. Then every node takes the cards again (`Node::restore_cards`), as
    /// the first pass left them (each node's view digest, hence its card, changed in it), so
    /// that anti-entropy finds nothing to catch up afterwards. Large membership runs start this
    /// way.
    pub fn restore_full_membership(&mut self) {
        let hosts: Vec<usize> = self.live_hosts().collect();
        let known: Vec<(NodeIdentity, rq4d_protocol::Card)> = hosts
            .iter()
            .filter_map(|&h| self.hosts[h].node.as_ref())
            .map(|node| (node.identity().clone(), node.card().clone()))
            .collect();
        let now = self.now;
        for &h in &hosts {
            if let Some(node) = self.hosts[h].node.as_mut() {
                node.restore_members(known.clone(), now);
            }
            self.settle(h);
        }
        let cards: Vec<rq4d_protocol::Card> = hosts
            .iter()
            .filter_map(|&h| self.hosts[h].node.as_ref())
            .map(|node| node.card().clone())
            .collect();
        for &h in &hosts {
            if let Some(node) = self.hosts[h].node.as_mut() {
                node.restore_cards(cards.iter().cloned());
            }
            self.settle(h);
        }
    }

    /// Runs events until none is due at or before `until`; returns false when the queue is empty.
    pub fn run_until(&mut self, until: Duration) -> bool {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                self.now = until;
                return true;
            }
            self.step();
        }
        self.now = self.now.max(until);
        false
    }

    /// Processes the next event.
    pub fn step(&mut self) {
        let Some((at, event)) = self.queue.pop() else {
            return;
        };
        self.now = at;
        self.counters.events += 1;
        self.mix(at.as_nanos() as u64);
        match event {
            Ev::Deliver { to, from, bytes } => self.deliver(to, from, &bytes),
            Ev::Wake { host, life } => {
                if self.hosts[host].life == life && self.hosts[host].wake_at == Some(at) {
                    self.hosts[host].wake_at = None;
                    self.wake(host);
                }
            }
            Ev::Discover { host, life } => {
                if self.hosts[host].life == life && self.hosts[host].node.is_some() {
                    self.discover(host);
                    self.queue
                        .push(at + DISCOVERY_EVERY, Ev::Discover { host, life });
                }
            }
            Ev::Rqlite(effect) => self.rqlite_effect(effect),
            Ev::RaftTick => {
                self.raft_tick();
                self.queue.push(at + RAFT_TICK, Ev::RaftTick);
            }
            Ev::Action(action) => self.act(action),
        }
    }

    fn deliver(&mut self, to: SocketAddr, from: SocketAddr, bytes: &[u8]) {
        let Some(host) = self.addresses.host_of(to) else {
            return;
        };
        let now = self.now;
        let life = self.hosts[host].life;
        let keyed = self.config.keyring.is_some();
        let h = &mut self.hosts[host];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        if keyed {
            h.captured = Some(forgery::Captured {
                from,
                bytes: bytes.to_vec(),
                life,
            });
        }
        match node.handle_datagram(from, bytes, now) {
            Ok(()) => {}
            Err(Refusal::Claim(error)) => {
                self.counters.refused += 1;
                self.judge(&Fact::ClaimRefused {
                    host,
                    error: &error,
                });
            }
            Err(_) => self.counters.refused += 1,
        }
        self.settle(host);
    }

    /// The daemon's discovery round: hello to every address found that is not a live member.
    fn discover(&mut self, host: usize) {
        let found = self.dns.answer(self.now, &mut self.rng);
        let now = self.now;
        let me = network::gossip_addr(self.hosts[host].ip);
        let mut hello = Vec::new();
        if let Some(node) = self.hosts[host].node.as_ref() {
            for addr in found {
                if addr == me {
                    continue;
                }
                let known = self
                    .addresses
                    .host_of(addr)
                    .and_then(|h| node.members().get(&self.hosts[h].id))
                    .is_some_and(|m| m.alive && m.identity.addr == addr);
                if !known {
                    hello.push(addr);
                }
            }
        }
        if let Some(node) = self.hosts[host].node.as_mut() {
            for addr in hello {
                node.discover(addr, now);
            }
        }
        self.settle(host);
    }

    /// Drains one node's outputs: datagrams onto the network, timers into the queue, events
    /// into the log.
    fn drain(&mut self, host: usize) {
        let now = self.now;
        let mut events = Vec::new();
        {
            let Self {
                hosts,
                queue,
                net,
                addresses,
                ..
            } = self;
            let from = network::gossip_addr(hosts[host].ip);
            let Some(node) = hosts[host].node.as_mut() else {
                return;
            };
            while let Some(output) = node.poll_output() {
                match output {
                    Output::Send { to, datagram } => {
                        net.stats.bytes_by_kind.count(&datagram);
                        let Some(dest) = addresses.host_of(to) else {
                            net.stats.sent += 1;
                            net.stats.bytes_sent += datagram.len() as u64;
                            net.stats.unroutable += 1;
                            continue;
                        };
                        let (delays, count) = net.transmit(host, dest, &datagram);
                        let mut datagram = Some(datagram);
                        for (k, delay) in delays.into_iter().flatten().enumerate() {
                            let bytes = if k + 1 == count {
                                datagram.take().unwrap_or_default()
                            } else {
                                datagram.clone().unwrap_or_default()
                            };
                            queue.push(now + delay, Ev::Deliver { to, from, bytes });
                        }
                    }
                    Output::Event(event) => events.push(event),
                }
            }
        }
        for event in events {
            self.node_event(host, event);
        }
        if self.config.track_agreement {
            self.track_agreement(host);
        }
    }

    fn act(&mut self, action: Action) {
        self.note_action(&action);
        match action {
            Action::Start { host, new_address } => self.start(host, new_address),
            Action::Crash { host } => self.crash(host),
            Action::ScaleDown { host } => {
                let now = self.now;
                if let Some(node) = self.hosts[host].node.as_mut() {
                    node.leave(now);
                }
                self.drain(host);
                self.crash(host);
                self.hosts[host].gone = true;
            }
            Action::Replace { host, replacement } => {
                self.crash(host);
                self.hosts[host].gone = true;
                self.start(replacement, false);
            }
            Action::Partition { groups } => self.net.partition(&groups),
            Action::CutOneWay { hosts } => self.net.cut_one_way(&hosts),
            Action::Heal => self.net.heal(),
            Action::SetLoss(loss) => self.net.params.loss = loss,
            Action::Forge(forgery) => self.forge(forgery),
        }
    }

    /// Starts a host's container: a new protocol node (new generation), discovery and the
    /// supervisor, on whatever its volume holds.
    fn start(&mut self, host: usize, new_address: bool) {
        if self.hosts[host].node.is_some() || self.hosts[host].gone {
            return;
        }
        if new_address && self.hosts[host].ever_started {
            self.addresses.release(self.hosts[host].ip);
            let ip = self.addresses.allocate(host);
            self.hosts[host].ip = ip;
            self.rqlite.hosts[host].raft = network::raft_addr(ip);
        }
        let now = self.now;
        let hosts = self.hosts.len();
        let h = &mut self.hosts[host];
        h.ever_started = true;
        h.life += 1;
        let generation =
            (self.config.generation_base + now.as_millis() as u64 + 1).max(h.last_generation + 1);
        h.last_generation = generation;
        let ip = h.ip;
        let mut config = NodeConfig::new(
            "sim",
            NodeIdentity {
                node_id: h.id.clone(),
                addr: network::gossip_addr(ip),
                generation,
            },
            network::raft_addr(ip),
            format!("{ip}:4001"),
            self.config.expect,
        );
        if self.config.rqlite {
            let disk = &self.rqlite.disks[host];
            config.restore(&disk.stored, disk.raft_db);
        } else {
            config.db = h.static_db.clone();
        }
        config.settle = self.config.settle;
        config.card_sync = self.config.card_sync;
        config.push_all_up_to = self.config.push_all_up_to;
        config.relay_fanout = self.config.relay_fanout;
        config.volatile = self.config.volatile;
        config.read_only = h.read_only;
        config.voter_cap = self.config.voter_cap;
        config.rng_seed = self.config.seed ^ (host as u64).rotate_left(24) ^ generation;
        config.faults = self.config.faults;
        // Generations are the simulated start time in ms past `generation_base`: the wall
        // clock of the simulated world.
        config.wall_clock = Duration::from_millis(self.config.generation_base);
        // The daemon's cap is for real clusters; the simulator's largest runs exceed it.
        config.max_members = NodeConfig::MAX_MEMBERS.max(2 * hosts);
        config.keyring = self.config.keyring.clone();
        // One salt per life, as the daemon draws one per process.
        let life = h.life;
        config.nonce_salt[..8].copy_from_slice(&(host as u64).to_be_bytes());
        config.nonce_salt[8..12].copy_from_slice(&life.to_be_bytes());
        h.node = Some(Node::new(config, now));
        h.sup = Supervisor::new(
            now,
            host,
            &self.rqlite,
            self.config.reap_after,
            self.config.volatile,
            h.read_only,
        );
        h.last_agreement = Agreement::None;
        self.dns.register(network::gossip_addr(ip), now);
        // The daemon's first discovery round happens at start.
        let jitter = Duration::from_millis(self.rng.random_range(0..50));
        self.queue.push(now + jitter, Ev::Discover { host, life });
        self.hosts[host].wake_at = None;
        self.settle(host);
    }

    /// Kills a host's container: the node vanishes, rqlited dies, the volume stays.
    fn crash(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        if h.node.take().is_none() {
            return;
        }
        h.life += 1;
        let addr = network::gossip_addr(h.ip);
        self.dns.unregister(addr, self.now);
        if self.config.rqlite {
            self.rqlite.stop(host);
        }
    }

    /// Events waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}
