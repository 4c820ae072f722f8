//! The simulated world: hosts running `rq4d_protocol::Node`, the network between them, the DNS
//! name that lists them, and (optionally) each host's rqlited under the daemon's supervisor.
//!
//! Everything happens through one [`EventQueue`] in virtual time; all randomness comes from one
//! generator seeded by the scenario, and every collection that is iterated is ordered, so a seed
//! gives one run, event for event. The world plays the daemon's part for each node exactly as
//! `daemon/src/agent.rs` does: datagrams in, timers from one heap, discovery every 3 s to the
//! addresses that are not live members already, supervisor reports fed back with `set_db`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rq4d_protocol::claims::ClaimError;
use rq4d_protocol::coordinator::Faults;
use rq4d_protocol::{
    Agreement, ClusterId, DbState, Decision, Event, Node, NodeConfig, NodeId, NodeIdentity, Output,
    Refusal, Timer, Waiting,
};

use crate::dns::Dns;
use crate::network::{self, Addresses, LinkParams, Network};
use crate::queue::EventQueue;
use crate::rqlite::{Ctx, Effect, HostInfo, Rqlite};
use crate::supervisor::{Report, SupCtx, Supervisor};
use crate::violation::Violation;
use rq4d_protocol::supervisor::{Directive, Membership};

/// As in the daemon: discovery runs every 3 s.
pub const DISCOVERY_EVERY: Duration = Duration::from_secs(3);
/// How often the rqlite model runs its elections.
const RAFT_TICK: Duration = Duration::from_millis(100);

/// How the world is set up.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// `--expect` on every node.
    pub expect: u16,
    /// `--volatile` on every node.
    pub volatile: bool,
    /// Deliberately broken rules (tests of the search only).
    pub faults: Faults,
    /// How links behave.
    pub link: LinkParams,
    /// DNS lag.
    pub dns_lag: Duration,
    /// DNS answers hold at most this many records.
    pub dns_limit: Option<usize>,
    /// `--settle`.
    pub settle: Duration,
    /// Card anti-entropy period.
    pub card_sync: Duration,
    /// Card pushes go to everyone up to this many members.
    pub push_all_up_to: usize,
    /// Card relay fanout.
    pub relay_fanout: usize,
    /// foca's config is `NodeConfig::swim_config(swim_size)`; `None`: the daemon's
    /// `expect.max(3)`.
    pub swim_size: Option<u32>,
    /// `--reap-after`.
    pub reap_after: Duration,
    /// Run rqlited (model) under the supervisor; off: each host's database state is fixed.
    pub rqlite: bool,
    /// Keep a readable trace.
    pub trace: bool,
    /// Leave the trace's noise out: who sees whom up or down, and nodes waiting for cards.
    pub quiet: bool,
    /// Record who acknowledged which seed and who saw whom down (to classify double
    /// bootstraps).
    pub track_agreement: bool,
    /// Added to every generation (the start time in milliseconds): the daemon's generations
    /// are wall-clock milliseconds, about 1.7 × 10¹², whose varints are 4–5 bytes longer on
    /// the wire than a small simulated clock's. The membership figures set it so that their
    /// byte counts are the daemon's; the scenario search leaves it at 0.
    pub generation_base: u64,
}

impl WorldConfig {
    /// The daemon's defaults, for a cluster expecting `expect` nodes.
    pub fn daemon_defaults(seed: u64, expect: u16) -> Self {
        Self {
            seed,
            expect,
            volatile: false,
            faults: Faults::default(),
            link: LinkParams::lan(),
            dns_lag: Duration::ZERO,
            dns_limit: None,
            // The daemon's `--settle` default: safety does not rest on it.
            settle: Duration::ZERO,
            card_sync: NodeConfig::CARD_SYNC,
            push_all_up_to: NodeConfig::PUSH_ALL_UP_TO,
            relay_fanout: NodeConfig::RELAY_FANOUT,
            swim_size: None,
            reap_after: Duration::from_secs(60),
            rqlite: true,
            trace: false,
            quiet: false,
            track_agreement: true,
            generation_base: 0,
        }
    }
}

/// Something done to the world from outside (a scenario step).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Starts a host's container (its first start, or after a `Crash`).
    Start {
        /// Host.
        host: usize,
        /// Restart at a new IP (same id, same volume).
        new_address: bool,
    },
    /// Kills a host's container: no goodbye, rqlited killed, the volume kept.
    Crash {
        /// Host.
        host: usize,
    },
    /// Stops a host for good, gracefully (scale-down): leaves the gossip, stops rqlited.
    ScaleDown {
        /// Host.
        host: usize,
    },
    /// Loses a host's volume: the host is gone; `replacement` (a new id, empty volume) starts.
    Replace {
        /// The host whose volume is lost.
        host: usize,
        /// The new host that takes its place.
        replacement: usize,
    },
    /// Splits the hosts into groups that cannot reach each other.
    Partition {
        /// The groups.
        groups: Vec<Vec<usize>>,
    },
    /// These hosts cannot send to the others (but still receive).
    CutOneWay {
        /// The muted hosts.
        hosts: Vec<usize>,
    },
    /// Removes every partition.
    Heal,
    /// Changes the loss rate of every link.
    SetLoss(f64),
}

enum Ev {
    Deliver {
        to: SocketAddr,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Timer {
        host: usize,
        life: u32,
        timer: Timer,
    },
    Discover {
        host: usize,
        life: u32,
    },
    Poll {
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
    /// Part of the initial set.
    pub initial: bool,
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
}

/// A bootstrap that rqlited carried out: a new Raft cluster.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// When.
    pub at: Duration,
    /// The seed's host.
    pub host: usize,
    /// The seed and the live members it saw.
    pub view: Vec<NodeId>,
    /// Every node of the view belongs to the initial set.
    pub from_initial_set: bool,
}

/// What happened at a transition that can break a safety property: recorded by the world at that
/// very moment and handed to its [`Judge`] before the run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Fact<'a> {
    /// rqlited carried out a bootstrap (handed over before it joins [`World::bootstraps`]).
    Bootstrapped(&'a Bootstrap),
    /// A new Raft cluster exists (an index into the model's clusters), under the rq4d cluster id
    /// its founder recorded.
    ClusterFounded {
        /// The cluster.
        cluster: usize,
    },
    /// A host's rqlited was added to a cluster's configuration.
    Joined {
        /// Host.
        host: usize,
        /// The cluster it joined.
        cluster: usize,
        /// The cluster its disk held committed data of before, if another one.
        had_data_of: Option<usize>,
    },
    /// A host's supervisor deleted its data.
    Wiped {
        /// Host.
        host: usize,
    },
    /// A host's node decided to bootstrap.
    DecidedBootstrap {
        /// Host.
        host: usize,
    },
    /// A host's node refused a claim.
    ClaimRefused {
        /// Host.
        host: usize,
        /// Why.
        error: &'a ClaimError,
    },
}

impl Fact<'_> {
    /// The host the fact is about, when there is one.
    fn host(&self) -> Option<usize> {
        match *self {
            Self::Bootstrapped(bootstrap) => Some(bootstrap.host),
            Self::ClusterFounded { .. } => None,
            Self::Joined { host, .. }
            | Self::Wiped { host }
            | Self::DecidedBootstrap { host }
            | Self::ClaimRefused { host, .. } => Some(host),
        }
    }
}

/// Judges a fact at the moment it happens: the violation it is, if any. The world is given one
/// when it is built (the crate's properties: `invariants::judge`), so that the world need not
/// know the properties, nor they be checked after the fact.
pub type Judge = fn(&World, &Fact<'_>) -> Option<Violation>;

/// Membership events observed by nodes (for the figures).
#[derive(Clone, Debug)]
pub struct MemberEvent {
    /// When.
    pub at: Duration,
    /// Which host saw it.
    pub observer: usize,
    /// About whom.
    pub subject: NodeId,
    /// Up (true) or down.
    pub up: bool,
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Events processed.
    pub events: u64,
    /// Datagrams refused by nodes.
    pub refused: u64,
    /// `MemberDown` about a member whose container was running that life.
    pub false_downs: u64,
    /// All `MemberDown` events.
    pub downs: u64,
}

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
    initial_size: usize,
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
            initial_size: 0,
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
        let index = self.hosts.len();
        let ip = self.addresses.allocate(index);
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
            ),
            initial,
            gone: false,
            ever_started: false,
            static_db,
            last_generation: 0,
            last_agreement: Agreement::None,
            acks: Vec::new(),
            downs: Vec::new(),
        });
        if initial {
            self.initial_size += 1;
        }
        index
    }

    /// The number of hosts in the initial set.
    pub fn initial_size(&self) -> usize {
        self.initial_size
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

    fn note(&mut self, host: Option<usize>, text: impl FnOnce() -> String) {
        if self.config.trace {
            let who = host.map_or_else(|| "world".to_string(), |h| self.hosts[h].id.to_string());
            let line = format!("{:>10.3}s {who:<8} {}", self.now.as_secs_f64(), text());
            self.trace.push(line);
        }
    }

    /// A note the quiet trace leaves out.
    fn noise(&mut self, host: Option<usize>, text: impl FnOnce() -> String) {
        if !self.config.quiet {
            self.note(host, text);
        }
    }

    fn mix(&mut self, value: u64) {
        self.digest = (self.digest ^ value).wrapping_mul(0x0100_0000_01b3);
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
            Ev::Timer { host, life, timer } => {
                if self.hosts[host].life == life
                    && let Some(node) = self.hosts[host].node.as_mut()
                {
                    node.handle_timer(timer, at);
                    self.settle(host);
                }
            }
            Ev::Discover { host, life } => {
                if self.hosts[host].life == life && self.hosts[host].node.is_some() {
                    self.discover(host);
                    self.queue
                        .push(at + DISCOVERY_EVERY, Ev::Discover { host, life });
                }
            }
            Ev::Poll { host, life } => {
                if self.hosts[host].life == life && self.hosts[host].node.is_some() {
                    self.poll(host);
                    let every = self.hosts[host].sup.poll_every();
                    self.queue.push(at + every, Ev::Poll { host, life });
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
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
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

    /// Drains a node's outputs, and lets the supervisor act on a changed directive, until both
    /// are quiet (the daemon's `flush` and its directive watch).
    fn settle(&mut self, host: usize) {
        loop {
            self.drain(host);
            if !self.config.rqlite {
                return;
            }
            let Some(node) = self.hosts[host].node.as_ref() else {
                return;
            };
            let directive = Directive::of(node);
            if self.hosts[host].sup.acted.as_ref() == Some(&directive) {
                return;
            }
            self.hosts[host].sup.acted = Some(directive.clone());
            let reports = self.with_supervisor(host, |sup, s| sup.act(&directive, s));
            if !self.apply_reports(host, reports) {
                return;
            }
        }
    }

    fn with_supervisor<T>(
        &mut self,
        host: usize,
        f: impl FnOnce(&mut Supervisor, &mut SupCtx) -> T,
    ) -> T {
        let Self {
            hosts,
            rqlite,
            net,
            addresses,
            rng,
            now,
            ..
        } = self;
        let h = &mut hosts[host];
        let membership = h.node.as_ref().map(Membership::of).unwrap_or_default();
        let mut s = SupCtx {
            host,
            rqlite,
            ctx: Ctx {
                net,
                addresses,
                now: *now,
            },
            rng,
            membership,
        };
        f(&mut h.sup, &mut s)
    }

    /// Carries out supervisor reports; true when the node's state changed (so it may decide
    /// again).
    fn apply_reports(&mut self, host: usize, reports: Vec<Report>) -> bool {
        let mut changed = false;
        for report in reports {
            match report {
                Report::Db(db) => {
                    self.note(Some(host), || {
                        format!("rqlited state: {}", describe_db(&db))
                    });
                    let now = self.now;
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.set_db(db, now);
                        changed = true;
                    }
                }
                Report::Effects(effects) => {
                    for effect in effects {
                        self.schedule_effect(effect);
                    }
                }
                Report::Started(join, expect) => self.note(Some(host), || {
                    if expect > 0 {
                        format!(
                            "starts rqlited -bootstrap-expect {expect} -join {}",
                            join.join(",")
                        )
                    } else if join.is_empty() {
                        "starts rqlited without -join".into()
                    } else {
                        format!("starts rqlited -join {}", join.join(","))
                    }
                }),
                Report::Rejoin => self.note(Some(host), || {
                    "rqlited leaderless too long: restarting it".into()
                }),
                Report::Wiped => {
                    self.note(Some(host), || "wipes its data (volatile mode)".into());
                    let now = self.now;
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.wiped(now);
                        changed = true;
                    }
                    self.judge(&Fact::Wiped { host });
                }
                Report::Removed(id) => {
                    self.note(Some(host), || format!("leader removes voter {id}"));
                }
                Report::Voters(voters) => {
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.set_stored_voters(voters);
                        changed = true;
                    }
                }
                Report::PeersJson(peers) => self.note(Some(host), || {
                    let list: Vec<String> =
                        peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
                    format!("writes raft/peers.json: {}", list.join(", "))
                }),
            }
        }
        changed
    }

    fn schedule_effect(&mut self, effect: Effect) {
        match effect {
            Effect::JoinAttempt { after, .. }
            | Effect::FormAttempt { after, .. }
            | Effect::Exit { after, .. } => {
                self.queue.push(self.now + after, Ev::Rqlite(effect));
            }
            Effect::Bootstrapped { host, cluster } => {
                self.note(Some(host), || {
                    format!("rqlited bootstraps new Raft cluster #{cluster}")
                });
                self.record_bootstrap(host);
                self.judge(&Fact::ClusterFounded { cluster });
            }
            Effect::Joined {
                host,
                cluster,
                had_data_of,
            } => {
                self.note(Some(host), || {
                    format!("rqlited joined Raft cluster #{cluster}")
                });
                self.judge(&Fact::Joined {
                    host,
                    cluster,
                    had_data_of,
                });
            }
        }
    }

    fn record_bootstrap(&mut self, host: usize) {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return;
        };
        let mut view: Vec<NodeId> = node
            .members()
            .iter()
            .filter(|(_, m)| m.alive)
            .map(|(id, _)| id.clone())
            .collect();
        view.push(self.hosts[host].id.clone());
        view.sort();
        let from_initial_set = view
            .iter()
            .all(|id| self.host_by_id(id).is_some_and(|h| self.hosts[h].initial));
        let bootstrap = Bootstrap {
            at: self.now,
            host,
            view,
            from_initial_set,
        };
        self.judge(&Fact::Bootstrapped(&bootstrap));
        self.bootstraps.push(bootstrap);
    }

    /// Hands `fact` to the judge and records what it finds: a violation, or a double bootstrap
    /// the seed-isolation window explains (counted apart).
    fn judge(&mut self, fact: &Fact<'_>) {
        let Some(v) = (self.judge)(self, fact) else {
            return;
        };
        if v.window {
            self.note(fact.host(), || {
                format!("SEED-ISOLATION WINDOW: {}", v.detail)
            });
            self.windows.push(v);
        } else {
            self.violation(v);
        }
    }

    /// Records a safety violation.
    pub fn violation(&mut self, v: Violation) {
        let text = format!("VIOLATION {}: {}", v.kind, v.detail);
        self.note(None, || text);
        self.violations.push(v);
    }

    fn rqlite_effect(&mut self, effect: Effect) {
        match effect {
            Effect::JoinAttempt { host, pid, .. } | Effect::FormAttempt { host, pid, .. } => {
                let ctx = Ctx {
                    net: &self.net,
                    addresses: &self.addresses,
                    now: self.now,
                };
                let effects = if matches!(effect, Effect::FormAttempt { .. }) {
                    self.rqlite.form_attempt(host, pid, &mut self.rng, &ctx)
                } else {
                    self.rqlite.join_attempt(host, pid, &ctx)
                };
                for effect in effects {
                    self.schedule_effect(effect);
                }
            }
            Effect::Exit { host, pid, why, .. } => {
                if self.rqlite.exit(host, pid) {
                    self.note(Some(host), || format!("rqlited exits: {why}"));
                    if self.hosts[host].node.is_some() {
                        let reports = self.with_supervisor(host, |sup, s| sup.exited(s));
                        self.apply_reports(host, reports);
                        self.settle(host);
                    }
                }
            }
            other => self.schedule_effect(other),
        }
    }

    fn poll(&mut self, host: usize) {
        if !self.config.rqlite {
            return;
        }
        if self.hosts[host].sup.acted.is_none() {
            return;
        }
        // The policy acts again after every poll (rejoin timers, backoff expiry).
        let reports = self.with_supervisor(host, |sup, s| sup.poll(s));
        self.apply_reports(host, reports);
        self.settle(host);
    }

    fn raft_tick(&mut self) {
        let changes = {
            let ctx = Ctx {
                net: &self.net,
                addresses: &self.addresses,
                now: self.now,
            };
            self.rqlite.raft_tick(&mut self.rng, &ctx)
        };
        for (cluster, leader) in changes {
            match leader {
                Some(h) => {
                    let term = self.rqlite.clusters[cluster].term;
                    self.note(Some(h), || {
                        format!("becomes leader of Raft cluster #{cluster} (term {term})")
                    });
                }
                None => self.note(None, || format!("Raft cluster #{cluster} lost its leader")),
            }
        }
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
                rng,
                ..
            } = self;
            let life = hosts[host].life;
            let from = network::gossip_addr(hosts[host].ip);
            let Some(node) = hosts[host].node.as_mut() else {
                return;
            };
            while let Some(output) = node.poll_output() {
                match output {
                    Output::Send { to, datagram } => {
                        let Some(dest) = addresses.host_of(to) else {
                            net.stats.sent += 1;
                            net.stats.bytes_sent += datagram.len() as u64;
                            net.stats.unroutable += 1;
                            continue;
                        };
                        let (delays, count) = net.transmit(rng, host, dest, datagram.len());
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
                    Output::Schedule { after, timer } => {
                        queue.push(now + after, Ev::Timer { host, life, timer });
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

    fn track_agreement(&mut self, host: usize) {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return;
        };
        let agreement = &node.card().agreement;
        if *agreement == self.hosts[host].last_agreement {
            return;
        }
        let agreement = agreement.clone();
        if let Agreement::Ack { seed, .. } = &agreement {
            let seed = seed.clone();
            self.hosts[host].acks.push((self.now, seed.clone()));
            self.note(Some(host), || format!("acknowledges seed {seed}"));
        } else if let Agreement::Propose { .. } = &agreement {
            self.note(Some(host), || "proposes itself as seed".into());
        }
        self.hosts[host].last_agreement = agreement;
    }

    fn node_event(&mut self, host: usize, event: Event) {
        match event {
            Event::MemberUp(id) => {
                self.mix(1);
                if self.record_members {
                    self.member_log.push(MemberEvent {
                        at: self.now,
                        observer: host,
                        subject: id.node_id.clone(),
                        up: true,
                    });
                }
                self.noise(Some(host), || format!("sees {} up", id.node_id));
            }
            Event::MemberDown(id) => {
                self.mix(2);
                self.counters.downs += 1;
                // The life declared down is still running (a restart would have a larger
                // generation than any the old life could have been renewed to).
                let really_alive = self.host_by_id(&id.node_id).is_some_and(|h| {
                    self.hosts[h].node.is_some() && self.hosts[h].last_generation <= id.generation
                });
                if really_alive {
                    self.counters.false_downs += 1;
                }
                if self.config.track_agreement {
                    self.hosts[host].downs.push((self.now, id.node_id.clone()));
                }
                if self.record_members {
                    self.member_log.push(MemberEvent {
                        at: self.now,
                        observer: host,
                        subject: id.node_id.clone(),
                        up: false,
                    });
                }
                self.noise(Some(host), || format!("sees {} down", id.node_id));
            }
            Event::Decided(decision) => {
                self.mix(3);
                if let Decision::Bootstrap { cluster_id, .. } = &decision
                    && !self.formations.contains_key(cluster_id)
                    && let Some(node) = self.hosts[host].node.as_ref()
                {
                    // The first founder to decide is the seed: its view is the agreed one.
                    let mut founders: Vec<NodeId> = node
                        .members()
                        .iter()
                        .filter(|(_, m)| m.alive)
                        .map(|(id, _)| id.clone())
                        .chain([self.hosts[host].id.clone()])
                        .collect();
                    founders.sort();
                    self.formations.insert(*cluster_id, founders);
                }
                if matches!(decision, Decision::Bootstrap { .. }) {
                    self.judge(&Fact::DecidedBootstrap { host });
                }
                if matches!(decision, Decision::Wait(Waiting::Cards { .. })) {
                    self.noise(Some(host), || format!("decides: {}", decision.describe()));
                } else {
                    self.note(Some(host), || format!("decides: {}", decision.describe()));
                }
            }
            Event::DuplicateNodeId { addr } => {
                self.note(Some(host), || format!("duplicate node id at {addr}"));
            }
            Event::ClaimRefused(error) => {
                self.judge(&Fact::ClaimRefused {
                    host,
                    error: &error,
                });
            }
            Event::IdentityOutbid { generation } => {
                self.note(Some(host), || {
                    format!("outbids another life of its id: generation {generation}")
                });
            }
            Event::Idle => {}
        }
    }

    fn act(&mut self, action: Action) {
        if self.config.trace {
            let text = describe_action(&action, &self.hosts);
            self.note(None, || format!("scenario: {text}"));
        }
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
        let (db, cluster_id, formation, stored_voters, acked) = if self.config.rqlite {
            let disk = &self.rqlite.disks[host];
            (
                disk.db_state(),
                disk.stored.cluster_id(),
                disk.stored.formation(),
                disk.stored.voters(),
                disk.stored.acked(),
            )
        } else {
            (h.static_db.clone(), None, None, Vec::new(), Vec::new())
        };
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
        config.db = db.clone();
        config.cluster_id = cluster_id;
        config.formation = formation;
        config.settle = self.config.settle;
        config.card_sync = self.config.card_sync;
        config.push_all_up_to = self.config.push_all_up_to;
        config.relay_fanout = self.config.relay_fanout;
        config.volatile = self.config.volatile;
        if let Some(size) = self.config.swim_size {
            config.swim = NodeConfig::swim_config(size);
        }
        config.rng_seed = self.config.seed ^ (host as u64).rotate_left(24) ^ generation;
        config.faults = self.config.faults;
        config.stored_voters = stored_voters;
        config.acked = acked;
        // Generations are the simulated start time in ms past `generation_base`: the wall
        // clock of the simulated world.
        config.wall_clock = Duration::from_millis(self.config.generation_base);
        // The daemon's cap is for real clusters; the simulator's largest runs exceed it.
        config.max_members = NodeConfig::MAX_MEMBERS.max(2 * hosts);
        h.node = Some(Node::new(config, now));
        h.sup = Supervisor::new(
            now,
            host,
            &self.rqlite,
            self.config.reap_after,
            self.config.volatile,
        );
        h.last_agreement = Agreement::None;
        let life = h.life;
        self.dns.register(network::gossip_addr(ip), now);
        // The daemon's first discovery round and first poll happen at start.
        let jitter = Duration::from_millis(self.rng.random_range(0..50));
        self.queue.push(now + jitter, Ev::Discover { host, life });
        if self.config.rqlite {
            self.queue.push(now, Ev::Poll { host, life });
        }
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

    /// True when every live node is a running voter of one Raft cluster that has a live leader
    /// all of them see, and at least `expect` nodes are live.
    pub fn converged(&self) -> bool {
        let live: Vec<usize> = self.live_hosts().collect();
        if live.len() < usize::from(self.config.expect) {
            return false;
        }
        let Some(cluster) = live.first().and_then(|&h| self.rqlite.disks[h].cluster) else {
            return false;
        };
        let Some(leader) = self.rqlite.clusters[cluster].leader else {
            return false;
        };
        let ctx = Ctx {
            net: &self.net,
            addresses: &self.addresses,
            now: self.now,
        };
        let leader_id = &self.hosts[leader].id;
        // Followers must be reachable at their configured addresses (the leader replicates
        // there); the leader itself only needs to be a voter (Raft knows it by id).
        live.iter().all(|&h| {
            self.rqlite.disks[h].cluster == Some(cluster)
                && (self.rqlite.member_ok(h)
                    || (h == leader && self.rqlite.participant(h) == Some(cluster)))
                && self
                    .rqlite
                    .status(h, &ctx)
                    .is_some_and(|s| s.leader.as_ref() == Some(leader_id))
        })
    }

    /// A one-line summary per host, for reports on failure.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (h, host) in self.hosts.iter().enumerate() {
            let disk = &self.rqlite.disks[h];
            let state = match &host.node {
                None if host.gone => "gone".to_string(),
                None => "down".to_string(),
                Some(node) => format!(
                    "up as generation {}, {} live members ({}), card {}, decision: {}",
                    node.identity().generation,
                    node.members().values().filter(|m| m.alive).count(),
                    node.members()
                        .iter()
                        .map(|(id, m)| format!(
                            "{id}@{} {}",
                            m.identity.generation,
                            if m.alive { "up" } else { "down" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    describe_db(&node.card().db),
                    node.decision().describe()
                ),
            };
            out.push_str(&format!(
                "  {} ({}): {state}; disk: cluster {:?} committed {} id {:?}; rqlited {}\n",
                host.id,
                host.ip,
                disk.cluster,
                disk.stored.committed,
                disk.stored.cluster_id(),
                if self.rqlite.member_ok(h) {
                    "member"
                } else if self.rqlite.procs[h].is_some() {
                    "running (not a member)"
                } else {
                    "stopped"
                },
            ));
        }
        for (c, cluster) in self.rqlite.clusters.iter().enumerate() {
            let voters: Vec<String> = cluster.voters.keys().map(|id| id.to_string()).collect();
            out.push_str(&format!(
                "  Raft cluster #{c}: founded by {} at {:.3}s, leader {:?}, voters [{}]\n",
                self.hosts[cluster.founder].id,
                cluster.founded_at.as_secs_f64(),
                cluster.leader.map(|l| self.hosts[l].id.to_string()),
                voters.join(", ")
            ));
        }
        out
    }

    /// Events waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// A short description of a database state.
pub fn describe_db(db: &DbState) -> String {
    match db {
        DbState::Empty => "empty".into(),
        DbState::HasData { last_voters } => format!("has data ({last_voters} voters)"),
        DbState::Starting => "starting".into(),
        DbState::Running(r) => format!(
            "running (leader {}, term {}, {} voters{})",
            r.leader.as_ref().map_or("none", |l| l.as_str()),
            r.term,
            r.voters,
            if r.voter { "" } else { ", not a voter" }
        ),
    }
}

fn describe_action(action: &Action, hosts: &[Host]) -> String {
    let name = |h: &usize| hosts.get(*h).map_or("?".to_string(), |h| h.id.to_string());
    let names = |hs: &Vec<usize>| hs.iter().map(name).collect::<Vec<_>>().join(",");
    match action {
        Action::Start { host, new_address } => format!(
            "start {}{}",
            name(host),
            if *new_address {
                " at a new address"
            } else {
                ""
            }
        ),
        Action::Crash { host } => format!("crash {}", name(host)),
        Action::ScaleDown { host } => format!("scale down {}", name(host)),
        Action::Replace { host, replacement } => format!(
            "{} loses its volume; {} replaces it",
            name(host),
            name(replacement)
        ),
        Action::Partition { groups } => format!(
            "partition [{}]",
            groups.iter().map(names).collect::<Vec<_>>().join("] [")
        ),
        Action::CutOneWay { hosts } => format!("{} can no longer send", names(hosts)),
        Action::Heal => "network healed".into(),
        Action::SetLoss(loss) => format!("loss set to {:.0}%", loss * 100.0),
    }
}
