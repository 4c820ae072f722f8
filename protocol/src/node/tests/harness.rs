//! Several `Node`s, each with the real supervisor policy, wired through an in-memory network
//! and a small model of rqlited, with a fake clock: no sockets, no sleeps.
//!
//! The harness plays the daemon's part: it delivers datagrams and timers in time order,
//! announces to every started node (a DNS name listing the replicas), hands each node's
//! directive to its [`Supervisor`] and carries out the supervisor's actions on the model. The
//! model is rqlited at its simplest: a `-bootstrap-expect` start notifies, and once every founder
//! of the formation has started the first founder leads and the others follow after 1.5 s; a
//! `-join` start follows the leader of its target after 100 ms (or exits, if the target has no
//! leader); a start on data without `-join` follows whichever leader runs (or leads alone).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::*;
use crate::card::Running;
use crate::seal::Keyring;
use crate::stored::Stored;
use crate::supervisor::{
    Action, Directive, Listed, Membership, Removal, Report, Status, Supervisor, SupervisorConfig,
};

pub(super) const LATENCY: Duration = Duration::from_millis(1);
/// The harness's wall clock at time zero (2026-12-03 12:00 UTC); generations are small numbers
/// far in its past.
pub(super) const WALL: Duration = Duration::from_millis(1_796_299_200_000);
const DISCOVERY_EVERY: Duration = Duration::from_secs(2);
const BOOTSTRAP_TAKES: Duration = Duration::from_millis(1500);
const JOIN_TAKES: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Delivery {
    Start,
    Datagram {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// The slot's next timeout, its node's or its supervisor's, whichever comes first (stale
    /// when it moved since it was armed).
    Wake,
    Discover,
    /// The model's rqlited of this run (see [`Harness::runs`]) changes state.
    Rqlited {
        run: u64,
        to: Ordered<Rqlited>,
    },
}

/// A payload the queue never compares: the queue orders by (time, sequence), but
/// `BinaryHeap` needs the bound.
#[derive(Debug)]
pub(super) struct Ordered<T>(T);
impl<T> PartialEq for Ordered<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Ordered<T> {}
impl<T> PartialOrd for Ordered<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Ordered<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The model of one node's rqlited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Rqlited {
    /// Not running.
    Off,
    /// Started, no leader yet (notifying, joining, or resuming).
    Starting,
    /// Joining through the node in this slot: follows its leader, or exits.
    Joins(usize),
    /// A voter following the leader in this slot (itself, when it leads).
    Member { leader: usize },
}

pub(super) struct Harness {
    pub(super) now: Duration,
    seq: u64,
    pub(super) queue: BinaryHeap<Reverse<(Duration, u64, usize, Delivery)>>,
    pub(super) nodes: Vec<Option<Node>>,
    supervisors: Vec<Option<Supervisor>>,
    /// Each slot's armed wake-up (see [`Delivery::Wake`]).
    wake_at: Vec<Option<Duration>>,
    /// Each slot's last directive handed to its supervisor.
    directives: Vec<Option<Directive>>,
    /// Each slot's rqlited, and how many times it was started (a change scheduled for an
    /// earlier run is dropped).
    rqlited: Vec<Rqlited>,
    runs: Vec<u64>,
    /// What each slot's supervisor persisted last.
    pub(super) stored: Vec<Stored>,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) ids: Vec<NodeId>,
    pub(super) decisions: Vec<Vec<Decision>>,
    pub(super) expect: u16,
    pub(super) settle: Duration,
    /// Every node's `tick` (`None`: the default).
    pub(super) tick: Option<Duration>,
    /// Formations started by the model: cluster id → (expected founders, founders started in
    /// order, formed).
    pub(super) formations: BTreeMap<ClusterId, (u16, Vec<usize>, bool)>,
    /// Per node: the slots its discovery finds (`None`: every started node).
    pub(super) discovery: Vec<Option<Vec<usize>>>,
    /// Every node's keyring (`None`: open gossip).
    pub(super) keyring: Option<Keyring>,
    /// Every node in volatile mode.
    pub(super) volatile: bool,
    /// Refused datagrams, by receiving node; any refusal fails a test unless tolerated.
    pub(super) refusals: Vec<(usize, Refusal)>,
    pub(super) tolerate_refusals: bool,
    /// With `Some`, every open card message sent: (when, from slot, to slot, message).
    pub(super) card_log: Option<Vec<(Duration, usize, usize, crate::card::CardMessage)>>,
}

impl Harness {
    pub(super) fn new(n: usize) -> Self {
        Self {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: (0..n).map(|_| None).collect(),
            supervisors: (0..n).map(|_| None).collect(),
            wake_at: vec![None; n],
            directives: vec![None; n],
            rqlited: vec![Rqlited::Off; n],
            runs: vec![0; n],
            stored: vec![Stored::default(); n],
            addrs: (0..n)
                .map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946)))
                .collect(),
            ids: (0..n)
                .map(|i| NodeId::new(format!("node-{i:02}")).expect("id"))
                .collect(),
            decisions: vec![Vec::new(); n],
            expect: n as u16,
            settle: Duration::from_secs(1),
            tick: None,
            formations: BTreeMap::new(),
            discovery: vec![None; n],
            keyring: None,
            volatile: false,
            refusals: Vec::new(),
            tolerate_refusals: false,
            card_log: None,
        }
    }

    pub(super) fn at(&mut self, when: Duration, node: usize, delivery: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((when, self.seq, node, delivery)));
    }

    fn raft_addr(i: usize) -> String {
        format!("10.0.0.{}:4002", i + 1)
    }

    pub(super) fn config(&self, i: usize) -> NodeConfig {
        let n = self.nodes.len();
        let identity = NodeIdentity {
            node_id: self.ids[i].clone(),
            addr: self.addrs[i],
            generation: 1,
        };
        let mut config = NodeConfig::new(
            "test",
            identity,
            Self::raft_addr(i),
            format!("10.0.0.{}:4001", i + 1),
            self.expect,
        );
        config.settle = self.settle;
        if let Some(tick) = self.tick {
            config.tick = tick;
        }
        config.swim = NodeConfig::swim_config(n as u32);
        config.rng_seed = 42 + i as u64;
        config.nonce_salt = [i as u8 + 1; crate::seal::SALT_LEN];
        config.keyring = self.keyring.clone();
        config.volatile = self.volatile;
        config.wall_clock = WALL;
        config
    }

    /// Starts slot `i` now as the daemon does on a data directory holding `stored` (`raft_db`:
    /// rqlited's `raft.db` exists): its node from `config` restored from the disk, and its
    /// supervisor on the same disk.
    pub(super) fn start_on(
        &mut self,
        i: usize,
        mut config: NodeConfig,
        stored: Stored,
        raft_db: bool,
    ) {
        config.restore(&stored, raft_db);
        let now = self.now;
        let supervisor = SupervisorConfig {
            node_id: config.identity.node_id.clone(),
            raft_addr: Self::raft_addr(i),
            reap_after: Duration::from_secs(60),
            volatile: config.volatile,
            read_only: config.read_only,
        };
        self.supervisors[i] = Some(Supervisor::new(supervisor, stored.clone(), raft_db, now));
        self.stored[i] = stored;
        self.directives[i] = None;
        self.wake_at[i] = None;
        self.nodes[i] = Some(Node::new(config, now));
        self.at(now, i, Delivery::Discover);
        self.drain(i);
    }

    /// Stops slot `i` at once, node, supervisor and rqlited (a crash).
    pub(super) fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.wake_at[i] = None;
        self.supervisors[i] = None;
        self.rqlited[i] = Rqlited::Off;
        self.runs[i] += 1;
    }

    /// Carries out slot `i`'s outputs: the node's, then its supervisor's, until both are quiet.
    pub(super) fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            if let Some(output) = node.poll_output() {
                self.node_output(i, output);
                continue;
            }
            let directive = Directive::of(node);
            if self.directives[i].as_ref() != Some(&directive) {
                self.directives[i] = Some(directive.clone());
                let now = self.now;
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.set_membership(Membership::of(node), now);
                    supervisor.handle_directive(directive, now);
                }
            }
            let Some(action) = self.supervisors[i]
                .as_mut()
                .and_then(Supervisor::poll_action)
            else {
                self.arm(i);
                return;
            };
            self.execute(i, action);
        }
    }

    /// Schedules slot `i`'s wake-up for its next timeout, unless already armed for it.
    fn arm(&mut self, i: usize) {
        let node = self.nodes[i].as_ref().and_then(Node::poll_timeout);
        let supervisor = self.supervisors[i].as_ref().map(Supervisor::poll_timeout);
        let next = node.into_iter().chain(supervisor).min();
        if next != self.wake_at[i]
            && let Some(at) = next
        {
            self.wake_at[i] = next;
            self.at(at.max(self.now), i, Delivery::Wake);
        }
    }

    fn node_output(&mut self, i: usize, output: Output) {
        match output {
            Output::Send { to, datagram } => {
                if let Some(j) = self.addrs.iter().position(|a| *a == to)
                    && self.nodes[j].is_some()
                {
                    self.log_cards(i, j, &datagram);
                    let from = self.addrs[i];
                    self.at(
                        self.now + LATENCY,
                        j,
                        Delivery::Datagram {
                            from,
                            bytes: datagram,
                        },
                    );
                }
            }
            Output::Event(Event::Decided(decision)) => self.decisions[i].push(decision),
            Output::Event(_) => {}
        }
    }

    /// Records an open card message from slot `i` to slot `j` in [`Harness::card_log`].
    fn log_cards(&mut self, i: usize, j: usize, datagram: &[u8]) {
        let now = self.now;
        let Some(log) = self.card_log.as_mut() else {
            return;
        };
        let Ok(envelope) = crate::wire::Envelope::open(datagram, crate::wire::cluster_tag("test"))
        else {
            return;
        };
        if envelope.kind == Kind::Cards
            && envelope.seal == 0
            && let Ok(message) = crate::card::CardMessage::decode(envelope.body)
        {
            log.push((now, i, j, message));
        }
    }

    /// Carries out one supervisor action on the model, as the daemon's executor does with a
    /// process, files and HTTP.
    fn execute(&mut self, i: usize, action: Action) {
        let now = self.now;
        match action {
            Action::Poll => self.answer_poll(i),
            Action::Start {
                join,
                bootstrap_expect,
                ..
            } => {
                self.runs[i] += 1;
                self.rqlited[i] = Rqlited::Starting;
                self.start_rqlited(i, &join, bootstrap_expect);
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_started(Ok(()), now);
                }
            }
            Action::Stop(_) => {
                self.runs[i] += 1;
                self.rqlited[i] = Rqlited::Off;
            }
            Action::Wipe => {
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_wiped(true);
                }
            }
            Action::Persist(stored) => self.stored[i] = stored,
            Action::List(listing) => {
                let listed = self.listing(i);
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_listing(listing, &listed, now);
                }
            }
            Action::Remove {
                id,
                unless_answering_at,
            } => {
                // Every slot keeps its address: the rqlited at one answers as that slot's id.
                let answers = unless_answering_at.is_some_and(|api| {
                    (0..self.ids.len()).any(|j| {
                        self.ids[j] == id
                            && self.rqlited[j] != Rqlited::Off
                            && api == format!("http://10.0.0.{}:4001", j + 1)
                    })
                });
                let removal = if answers {
                    Removal::AnsweredThere
                } else {
                    Removal::Removed
                };
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_removed(id, removal, now);
                }
            }
            Action::AskConfiguration { http } => {
                let members = (0..self.ids.len())
                    .find(|&j| http == format!("10.0.0.{}:4001", j + 1))
                    .filter(|&j| self.rqlited[j] != Rqlited::Off)
                    .map(|j| self.listing(j).into_iter().map(|n| n.id).collect());
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_configuration(members, now);
                }
            }
            // The harness's nodes all vote (no cap, none read-only): no role ever changes.
            Action::Leave => {
                if let Some(supervisor) = self.supervisors[i].as_mut() {
                    supervisor.handle_left(false, now);
                }
            }
            Action::Report(report) => {
                let Some(node) = self.nodes[i].as_mut() else {
                    return;
                };
                match report {
                    Report::Db(db) => node.set_db(db, now),
                    Report::Voters(voters) => node.set_stored_voters(voters),
                    Report::Wiped => node.wiped(now),
                    Report::Ready(_)
                    | Report::Exited(_)
                    | Report::StartFailed(_)
                    | Report::Removed(_)
                    | Report::RoleChanged { .. }
                    | Report::Thawed { .. } => {}
                }
            }
        }
    }

    /// What the model's rqlited does once started.
    fn start_rqlited(&mut self, i: usize, join: &[String], bootstrap_expect: Option<u16>) {
        let now = self.now;
        let run = self.runs[i];
        let change = |to| Delivery::Rqlited {
            run,
            to: Ordered(to),
        };
        if let Some(expect) = bootstrap_expect {
            let Some(Decision::Bootstrap { cluster_id, .. }) = self.supervisors[i]
                .as_ref()
                .and_then(Supervisor::directive)
                .map(|d| d.decision.clone())
            else {
                panic!("{} started to bootstrap without deciding to", self.ids[i]);
            };
            let (wanted, founders, formed) =
                self.formations
                    .entry(cluster_id)
                    .or_insert((expect, Vec::new(), false));
            assert_eq!(
                *wanted, expect,
                "founders of one cluster expect the same count"
            );
            if !founders.contains(&i) {
                founders.push(i);
            }
            let late = *formed;
            let complete = !late && founders.len() >= usize::from(expect);
            let founders = founders.clone();
            if late {
                self.at(now + JOIN_TAKES, i, change(Rqlited::Joins(founders[0])));
            } else if complete {
                if let Some(f) = self.formations.get_mut(&cluster_id) {
                    f.2 = true;
                }
                for j in founders.iter().copied() {
                    let run = self.runs[j];
                    self.at(
                        now + BOOTSTRAP_TAKES,
                        j,
                        Delivery::Rqlited {
                            run,
                            to: Ordered(Rqlited::Member {
                                leader: founders[0],
                            }),
                        },
                    );
                }
            }
        } else if let Some(target) = join.first() {
            let j = (0..self.ids.len())
                .find(|&j| Self::raft_addr(j) == *target)
                .expect("targets name a node");
            self.at(now + JOIN_TAKES, i, change(Rqlited::Joins(j)));
        } else {
            // On its data without `-join`: it rejoins the configuration it holds.
            let leader = self
                .rqlited
                .iter()
                .find_map(|r| match r {
                    Rqlited::Member { leader } => Some(*leader),
                    _ => None,
                })
                .unwrap_or(i);
            self.at(now + JOIN_TAKES, i, change(Rqlited::Member { leader }));
        }
    }

    fn rqlited_changes(&mut self, i: usize, run: u64, to: Rqlited) {
        if run != self.runs[i] || self.rqlited[i] == Rqlited::Off {
            return;
        }
        self.rqlited[i] = match to {
            Rqlited::Joins(j) => match self.rqlited[j] {
                Rqlited::Member { leader } => Rqlited::Member { leader },
                _ => {
                    // rqlited gives a join up and exits.
                    self.rqlited[i] = Rqlited::Off;
                    let now = self.now;
                    if let Some(supervisor) = self.supervisors[i].as_mut() {
                        supervisor.handle_exit("join failed".into(), now);
                    }
                    return;
                }
            },
            other => other,
        };
    }

    /// The model's `/status` of slot `i`.
    fn status(&self, i: usize) -> Option<Status> {
        match self.rqlited[i] {
            Rqlited::Off => None,
            Rqlited::Starting | Rqlited::Joins(_) => Some(Status {
                leader: None,
                leads: false,
                term: 0,
                voter: false,
                num_peers: 0,
            }),
            Rqlited::Member { leader } => Some(Status {
                leader: Some(self.ids[leader].clone()),
                leads: leader == i,
                term: 1,
                voter: true,
                num_peers: self.listing(i).len().saturating_sub(1) as u64,
            }),
        }
    }

    /// The model's `/nodes` of slot `i`: every member following its leader.
    fn listing(&self, i: usize) -> Vec<Listed> {
        let Rqlited::Member { leader } = self.rqlited[i] else {
            return Vec::new();
        };
        (0..self.ids.len())
            .filter(|&j| self.rqlited[j] == Rqlited::Member { leader })
            .map(|j| Listed {
                id: self.ids[j].clone(),
                addr: Self::raft_addr(j),
                voter: true,
                // Only members that follow the leader are listed: they answer.
                reachable: true,
                api_addr: format!("http://10.0.0.{}:4001", j + 1),
            })
            .collect()
    }

    /// Answers the supervisor's poll with the model's `/readyz` and `/status`.
    fn answer_poll(&mut self, i: usize) {
        let now = self.now;
        let status = self.status(i);
        let ready = status
            .as_ref()
            .is_some_and(|s| s.voter && s.leader.is_some());
        let Some(node) = self.nodes[i].as_ref() else {
            return;
        };
        let membership = Membership::of(node);
        let Some(supervisor) = self.supervisors[i].as_mut() else {
            return;
        };
        supervisor.set_membership(membership, now);
        supervisor.handle_poll(ready, status, now);
    }

    pub(super) fn step(&mut self) -> bool {
        let Some(Reverse((when, _, i, delivery))) = self.queue.pop() else {
            return false;
        };
        self.now = when;
        match delivery {
            Delivery::Start => {
                let config = self.config(i);
                self.start_on(i, config, Stored::default(), false);
            }
            Delivery::Discover => {
                let started: Vec<SocketAddr> = (0..self.nodes.len())
                    .filter(|j| self.nodes[*j].is_some())
                    .filter(|j| {
                        self.discovery[i]
                            .as_ref()
                            .is_none_or(|only| only.contains(j))
                    })
                    .map(|j| self.addrs[j])
                    .collect();
                let now = self.now;
                if let Some(node) = self.nodes[i].as_mut() {
                    // As the daemon: hello only to addresses that are not live members.
                    for addr in started {
                        let known = node
                            .members()
                            .values()
                            .any(|m| m.alive && m.identity.addr == addr);
                        if !known {
                            node.discover(addr, now);
                        }
                    }
                    self.at(now + DISCOVERY_EVERY, i, Delivery::Discover);
                }
            }
            Delivery::Datagram { from, bytes } => {
                let now = self.now;
                if let Some(node) = self.nodes[i].as_mut()
                    && let Err(refusal) = node.handle_datagram(from, &bytes, now)
                {
                    assert!(
                        self.tolerate_refusals,
                        "nodes of one cluster understand each other: {} refused {refusal}",
                        self.ids[i]
                    );
                    self.refusals.push((i, refusal));
                }
            }
            Delivery::Wake => {
                let now = self.now;
                if self.wake_at[i] == Some(when)
                    && let Some(node) = self.nodes[i].as_mut()
                {
                    self.wake_at[i] = None;
                    node.handle_timeout(now);
                    if let Some(supervisor) = self.supervisors[i].as_mut() {
                        supervisor.handle_timeout(now);
                    }
                }
            }
            Delivery::Rqlited {
                run,
                to: Ordered(to),
            } => self.rqlited_changes(i, run, to),
        }
        self.drain(i);
        true
    }

    /// True when one node leads and every other node runs as its follower.
    pub(super) fn formed(&self) -> bool {
        let running: Vec<&Running> = self
            .nodes
            .iter()
            .filter_map(|n| n.as_ref().and_then(|n| n.card().db.running()))
            .collect();
        running.len() == self.nodes.len()
            && running
                .iter()
                .all(|r| r.leader.is_some() && r.leader == running[0].leader)
    }

    /// Delivers everything due before `until` (or until the queue runs dry).
    pub(super) fn run_until(&mut self, until: Duration) {
        while self.now < until && self.step() {}
    }

    pub(super) fn run_until_formed(&mut self, deadline: Duration) {
        while !self.formed() {
            assert!(
                self.now < deadline,
                "not formed by {deadline:?}:\n{}",
                self.report()
            );
            assert!(self.step(), "the queue ran dry:\n{}", self.report());
        }
    }

    /// A harness whose `n` nodes are all created at time zero, nothing delivered yet.
    pub(super) fn created(n: usize) -> Self {
        let mut harness = Self::new(n);
        for i in 0..n {
            harness.nodes[i] = Some(Node::new(harness.config(i), Duration::ZERO));
        }
        harness
    }

    /// Every started node's identity and card, as `Node::restore_members` takes them.
    pub(super) fn known(&self) -> Vec<(NodeIdentity, Card)> {
        self.nodes
            .iter()
            .flatten()
            .map(|node| (node.identity().clone(), node.card().clone()))
            .collect()
    }

    pub(super) fn report(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else {
                out.push_str(&format!("{}: not started\n", self.ids[i]));
                continue;
            };
            out.push_str(&format!(
                "{}: db={:?} rqlited={:?} agreement={:?} members={} decision={}\n   decisions: {:?}\n",
                self.ids[i],
                node.card().db,
                self.rqlited[i],
                node.card().agreement,
                node.members().values().filter(|m| m.alive).count(),
                node.decision().describe(),
                self.decisions[i],
            ));
        }
        out
    }
}
