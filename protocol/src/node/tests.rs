//! Several `Node`s wired through an in-memory network with a fake clock: no sockets, no sleeps.
//!
//! The harness plays the daemon's part: it delivers datagrams and timers in time order, announces
//! to every started node (a DNS name listing the replicas), and turns decisions into database
//! states the way the supervisor would (Bootstrap: Starting, and once every founder of the
//! formation has started, the first founder leads and the others follow after 1.5 s, as rqlited's
//! `-bootstrap-expect` does; Join: Starting, then follower of the leader after 100 ms).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::*;
use crate::card::Running;
use crate::seal::{Key, Keyring, Sealer};
use crate::wire::Envelope;

const LATENCY: Duration = Duration::from_millis(1);
/// The harness's wall clock at time zero (2026-12-03 12:00 UTC); generations are small numbers
/// far in its past.
const WALL: Duration = Duration::from_millis(1_796_299_200_000);
const DISCOVERY_EVERY: Duration = Duration::from_secs(2);
const BOOTSTRAP_TAKES: Duration = Duration::from_millis(1500);
const JOIN_TAKES: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Start,
    Datagram { from: SocketAddr, bytes: Vec<u8> },
    Timer(TimerKey),
    Discover,
    Db(DbKey),
}

/// `Timer` is not `Ord`; the queue orders by (time, sequence) and never compares payloads,
/// but `BinaryHeap` needs the bound, so timers ride in a wrapper that compares equal.
#[derive(Debug)]
struct TimerKey(Timer);
impl PartialEq for TimerKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerKey {}
impl PartialOrd for TimerKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

#[derive(Debug)]
struct DbKey(DbState);
impl PartialEq for DbKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DbKey {}
impl PartialOrd for DbKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DbKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

struct Harness {
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, usize, Delivery)>>,
    nodes: Vec<Option<Node>>,
    addrs: Vec<SocketAddr>,
    ids: Vec<NodeId>,
    decisions: Vec<Vec<Decision>>,
    expect: u16,
    settle: Duration,
    /// Formations in progress or done: cluster id → (expected founders, founders started in
    /// order, formed).
    formations: BTreeMap<ClusterId, (u16, Vec<usize>, bool)>,
    /// Per node: the slots its discovery finds (`None`: every started node).
    discovery: Vec<Option<Vec<usize>>>,
    /// Every node's keyring (`None`: open gossip).
    keyring: Option<Keyring>,
    /// Every node in volatile mode.
    volatile: bool,
    /// Refused datagrams, by receiving node; any refusal fails a test unless tolerated.
    refusals: Vec<(usize, Refusal)>,
    tolerate_refusals: bool,
}

impl Harness {
    fn new(n: usize) -> Self {
        Self {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: (0..n).map(|_| None).collect(),
            addrs: (0..n)
                .map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946)))
                .collect(),
            ids: (0..n)
                .map(|i| NodeId::new(format!("node-{i:02}")).expect("id"))
                .collect(),
            decisions: vec![Vec::new(); n],
            expect: n as u16,
            settle: Duration::from_secs(1),
            formations: BTreeMap::new(),
            discovery: vec![None; n],
            keyring: None,
            volatile: false,
            refusals: Vec::new(),
            tolerate_refusals: false,
        }
    }

    fn at(&mut self, when: Duration, node: usize, delivery: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((when, self.seq, node, delivery)));
    }

    fn config(&self, i: usize) -> NodeConfig {
        let n = self.nodes.len();
        let identity = NodeIdentity {
            node_id: self.ids[i].clone(),
            addr: self.addrs[i],
            generation: 1,
        };
        let mut config = NodeConfig::new(
            "test",
            identity,
            format!("10.0.0.{}:4002", i + 1),
            format!("10.0.0.{}:4001", i + 1),
            self.expect,
        );
        config.settle = self.settle;
        config.swim = NodeConfig::swim_config(n as u32);
        config.rng_seed = 42 + i as u64;
        config.nonce_salt = [i as u8 + 1; crate::seal::SALT_LEN];
        config.keyring = self.keyring.clone();
        config.volatile = self.volatile;
        config.wall_clock = WALL;
        config
    }

    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            let Some(output) = node.poll_output() else {
                return;
            };
            match output {
                Output::Send { to, datagram } => {
                    if let Some(j) = self.addrs.iter().position(|a| *a == to)
                        && self.nodes[j].is_some()
                    {
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
                Output::Schedule { after, timer } => {
                    self.at(self.now + after, i, Delivery::Timer(TimerKey(timer)))
                }
                Output::Event(Event::Decided(decision)) => {
                    self.decisions[i].push(decision.clone());
                    self.supervise(i, decision);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// What the daemon's supervisor would do with a decision.
    fn supervise(&mut self, i: usize, decision: Decision) {
        let now = self.now;
        let running = |leader: &NodeId, voters| {
            DbState::Running(Running {
                leader: Some(leader.clone()),
                term: 1,
                voters,
                voter: true,
            })
        };
        match decision {
            Decision::Bootstrap {
                cluster_id, expect, ..
            } => {
                let (wanted, founders, formed) =
                    self.formations
                        .entry(cluster_id)
                        .or_insert((expect, Vec::new(), false));
                assert_eq!(
                    *wanted, expect,
                    "founders of one cluster expect the same count"
                );
                if founders.contains(&i) {
                    return;
                }
                founders.push(i);
                let late = *formed;
                let complete = !late && founders.len() >= usize::from(expect);
                let founders = founders.clone();
                self.at(now, i, Delivery::Db(DbKey(DbState::Starting)));
                if late {
                    let leader = self.ids[founders[0]].clone();
                    self.at(
                        now + JOIN_TAKES,
                        i,
                        Delivery::Db(DbKey(running(&leader, expect))),
                    );
                } else if complete {
                    if let Some(f) = self.formations.get_mut(&cluster_id) {
                        f.2 = true;
                    }
                    let leader = self.ids[founders[0]].clone();
                    for j in founders {
                        self.at(
                            now + BOOTSTRAP_TAKES,
                            j,
                            Delivery::Db(DbKey(running(&leader, expect))),
                        );
                    }
                }
            }
            Decision::Join { targets, .. } => {
                let leader = (0..self.ids.len())
                    .find(|j| format!("10.0.0.{}:4002", j + 1) == targets[0])
                    .map(|j| self.ids[j].clone())
                    .expect("targets name a node");
                self.at(now, i, Delivery::Db(DbKey(DbState::Starting)));
                self.at(
                    now + JOIN_TAKES,
                    i,
                    Delivery::Db(DbKey(running(&leader, 2))),
                );
            }
            _ => {}
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((when, _, i, delivery))) = self.queue.pop() else {
            return false;
        };
        self.now = when;
        match delivery {
            Delivery::Start => {
                self.nodes[i] = Some(Node::new(self.config(i), self.now));
                self.at(self.now, i, Delivery::Discover);
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
                    for addr in started {
                        node.discover(addr, now);
                    }
                }
                self.at(now + DISCOVERY_EVERY, i, Delivery::Discover);
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
            Delivery::Timer(TimerKey(timer)) => {
                let now = self.now;
                if let Some(node) = self.nodes[i].as_mut() {
                    node.handle_timer(timer, now);
                }
            }
            Delivery::Db(DbKey(db)) => {
                let now = self.now;
                if let Some(node) = self.nodes[i].as_mut() {
                    node.set_db(db, now);
                }
            }
        }
        self.drain(i);
        true
    }

    /// True when one node leads and every other node runs as its follower.
    fn formed(&self) -> bool {
        let running: Vec<&Running> = self
            .nodes
            .iter()
            .filter_map(|n| n.as_ref().and_then(|n| n.card().db.running()))
            .collect();
        running.len() == self.nodes.len() && running.iter().all(|r| r.leader == running[0].leader)
    }

    fn run_until_formed(&mut self, deadline: Duration) {
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
    fn created(n: usize) -> Self {
        let mut harness = Self::new(n);
        for i in 0..n {
            harness.nodes[i] = Some(Node::new(harness.config(i), Duration::ZERO));
        }
        harness
    }

    /// Every started node's identity and card, as `Node::restore_members` takes them.
    fn known(&self) -> Vec<(NodeIdentity, Card)> {
        self.nodes
            .iter()
            .flatten()
            .map(|node| (node.identity().clone(), node.card().clone()))
            .collect()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else {
                out.push_str(&format!("{}: not started\n", self.ids[i]));
                continue;
            };
            out.push_str(&format!(
                "{}: db={:?} agreement={:?} members={} decision={}\n   decisions: {:?}\n",
                self.ids[i],
                node.card().db,
                node.card().agreement,
                node.members().values().filter(|m| m.alive).count(),
                node.decision().describe(),
                self.decisions[i],
            ));
        }
        out
    }

    /// Every bootstrap decision names one cluster, formed once; returns its id.
    fn assert_one_formation(&self) -> ClusterId {
        let clusters: BTreeSet<ClusterId> = self
            .decisions
            .iter()
            .flatten()
            .filter_map(|d| match d {
                Decision::Bootstrap { cluster_id, .. } => Some(*cluster_id),
                _ => None,
            })
            .collect();
        assert_eq!(clusters.len(), 1, "one formation:\n{}", self.report());
        let formed = self.formations.values().filter(|f| f.2).count();
        assert_eq!(formed, 1, "formed once:\n{}", self.report());
        clusters.into_iter().next().expect("one")
    }

    /// The properties every start order must end with: the smallest id's agreement forms the
    /// one cluster (its founders all decided to bootstrap it, the seed first), and every node
    /// that was not a founder — there is one only where a node starts after the formation
    /// (`a_node_added_later_joins_and_never_bootstraps`) — joined it.
    fn assert_one_formation_seeded_by_the_smallest_id(&self) {
        let cluster = self.assert_one_formation();
        let (_, founders, _) = &self.formations[&cluster];
        assert_eq!(
            founders.first(),
            Some(&0),
            "the smallest id decides first:\n{}",
            self.report()
        );
        for i in 0..self.nodes.len() {
            if founders.contains(&i) {
                continue;
            }
            let joined = self.decisions[i]
                .iter()
                .any(|d| matches!(d, Decision::Join { .. }));
            let bootstrapped = self.decisions[i]
                .iter()
                .any(|d| matches!(d, Decision::Bootstrap { .. }));
            assert!(
                joined && !bootstrapped,
                "{} joined and never bootstrapped:\n{}",
                self.ids[i],
                self.report()
            );
        }
        let clusters: Vec<Option<ClusterId>> = self
            .nodes
            .iter()
            .map(|n| n.as_ref().and_then(|n| n.card().cluster_id))
            .collect();
        assert!(
            clusters.iter().all(|c| c.is_some() && *c == clusters[0]),
            "one cluster id everywhere: {clusters:?}\n{}",
            self.report()
        );
    }
}

fn start_in_order(n: usize, order: &[usize], gap: Duration) -> Harness {
    let mut harness = Harness::new(n);
    for (k, &i) in order.iter().enumerate() {
        harness.at(gap * k as u32, i, Delivery::Start);
    }
    harness
}

const SIZES: [usize; 3] = [3, 5, 9];
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn all_started_together_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).collect();
        let mut harness = start_in_order(n, &order, Duration::ZERO);
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn every_founder_knows_all_founders_once_the_cluster_formed() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).collect();
        let mut harness = start_in_order(n, &order, Duration::ZERO);
        harness.run_until_formed(DEADLINE);
        let cluster = harness.assert_one_formation();
        let (size, founders, _) = harness.formations[&cluster].clone();
        let expected: Vec<(NodeId, String)> = founders
            .iter()
            .map(|&i| (harness.ids[i].clone(), format!("10.0.0.{}:4002", i + 1)))
            .collect();
        assert_eq!(usize::from(size), expected.len());
        for &i in &founders {
            let node = harness.nodes[i].as_ref().expect("started");
            let mut known = node.founders();
            known.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(known, want, "{}:\n{}", harness.ids[i], harness.report());
        }
    }
}

#[test]
fn staggered_starts_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        // A scrambled order with 700 ms between starts.
        let order: Vec<usize> = (0..n).map(|k| (k * 7 + 3) % n).collect();
        let mut harness = start_in_order(n, &order, Duration::from_millis(700));
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn reversed_starts_found_one_cluster_seeded_by_the_smallest_id() {
    for n in SIZES {
        let order: Vec<usize> = (0..n).rev().collect();
        let mut harness = start_in_order(n, &order, Duration::from_millis(1500));
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation_seeded_by_the_smallest_id();
    }
}

#[test]
fn a_node_added_later_joins_and_never_bootstraps() {
    let mut harness = Harness::new(4);
    harness.expect = 3;
    for i in 0..3 {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    harness.at(Duration::from_secs(20), 3, Delivery::Start);
    harness.run_until_formed(DEADLINE);
    assert!(harness.now > Duration::from_secs(20));
    harness.assert_one_formation_seeded_by_the_smallest_id();
}

#[test]
fn smaller_ids_arriving_during_the_agreement_do_not_deadlock_it() {
    // Five nodes, three expected, no settle period: the three largest ids start the agreement,
    // then two smaller ids arrive while it runs and become the seed. The acknowledgements given
    // to the first seed must be released when it withdraws.
    for arrival_ms in [0, 1, 2, 5, 10, 20, 50, 100, 300] {
        let mut harness = Harness::new(5);
        harness.expect = 3;
        harness.settle = Duration::ZERO;
        for i in 2..5 {
            harness.at(Duration::ZERO, i, Delivery::Start);
        }
        for i in 0..2 {
            harness.at(Duration::from_millis(arrival_ms), i, Delivery::Start);
        }
        harness.run_until_formed(DEADLINE);
        harness.assert_one_formation();
    }
}

#[test]
fn cards_reach_a_node_that_arrives_after_they_were_pushed() {
    // Two nodes gossip; their cards change; a third arrives later and must learn the current
    // cards through the digest exchange, not just the pushes it missed.
    let mut harness = Harness::new(3);
    harness.at(Duration::ZERO, 0, Delivery::Start);
    harness.at(Duration::ZERO, 1, Delivery::Start);
    harness.at(Duration::from_secs(10), 2, Delivery::Start);
    while harness.now < Duration::from_secs(20) {
        assert!(harness.step());
    }
    let late = harness.nodes[2].as_ref().expect("started");
    for i in 0..2 {
        let held = late.cards().get(&harness.ids[i]).map(Card::stamp);
        let current = harness.nodes[i].as_ref().map(|n| n.card().stamp());
        assert_eq!(
            held, current,
            "{} is current at the late node",
            harness.ids[i]
        );
    }
}

#[test]
fn foreign_and_garbage_datagrams_are_refused_and_change_nothing() {
    let harness = Harness::new(1);
    let mut node = Node::new(harness.config(0), Duration::ZERO);
    while node.poll_output().is_some() {}
    let before = node.card().clone();
    let from: SocketAddr = "10.9.9.9:7946".parse().expect("addr");
    let foreign = Envelope::unsealed(Kind::Cards, wire::cluster_tag("other"), b"x").expect("fits");
    assert!(matches!(
        node.handle_datagram(from, &foreign, Duration::from_millis(5)),
        Err(Refusal::Wire(WireError::ForeignCluster { .. }))
    ));
    assert!(
        node.handle_datagram(from, b"garbage", Duration::from_millis(6))
            .is_err()
    );
    let bad_cards =
        Envelope::unsealed(Kind::Cards, wire::cluster_tag("test"), &[9, 9, 9]).expect("fits");
    assert!(
        node.handle_datagram(from, &bad_cards, Duration::from_millis(7))
            .is_err()
    );
    let bad_swim =
        Envelope::unsealed(Kind::Swim, wire::cluster_tag("test"), &[1, 2, 3]).expect("fits");
    assert!(
        node.handle_datagram(from, &bad_swim, Duration::from_millis(8))
            .is_err()
    );
    assert_eq!(node.card(), &before);
    assert!(node.members().is_empty());
}

#[test]
fn a_second_process_with_my_node_id_is_a_conflict_and_one_stray_datagram_is_not() {
    let harness = Harness::new(2);
    let mut a = Node::new(harness.config(0), Duration::ZERO);
    let mut impostor_config = harness.config(0);
    impostor_config.identity.addr = harness.addrs[1];
    impostor_config.identity.generation = 2;
    impostor_config.raft_addr = "10.0.0.2:4002".into();
    impostor_config.http_addr = "10.0.0.2:4001".into();
    let mut impostor = Node::new(impostor_config, Duration::ZERO);
    while a.poll_output().is_some() {}
    while impostor.poll_output().is_some() {}
    let mut hello_from_impostor = |a: &mut Node, at: Duration| {
        impostor.discover(harness.addrs[0], at);
        let mut refused = Vec::new();
        while let Some(output) = impostor.poll_output() {
            if let Output::Send { datagram, .. } = output {
                refused.push(a.handle_datagram(harness.addrs[1], &datagram, at));
            }
        }
        a.handle_timer(Timer::Tick, at);
        refused
    };
    let refused = hello_from_impostor(&mut a, Duration::from_millis(10));
    assert!(
        refused.contains(&Err(Refusal::DuplicateNodeId(harness.addrs[1]))),
        "{refused:?}"
    );
    assert!(
        !matches!(a.decision(), Decision::Conflict { .. }),
        "one stray datagram is no proof: {:?}",
        a.decision()
    );
    for ms in [700, 1400] {
        hello_from_impostor(&mut a, Duration::from_millis(ms));
    }
    assert!(
        matches!(a.decision(), Decision::Conflict { .. }),
        "{:?}",
        a.decision()
    );
    let events: Vec<Output> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(events.contains(&Output::Event(Event::DuplicateNodeId {
        addr: harness.addrs[1]
    })));
    // The impostor goes away: the conflict lapses.
    a.handle_timer(Timer::Tick, Duration::from_secs(40));
    assert!(
        !matches!(a.decision(), Decision::Conflict { .. }),
        "{:?}",
        a.decision()
    );
}

#[test]
fn the_same_inputs_give_the_same_run() {
    let run = || {
        let mut harness = start_in_order(5, &[4, 2, 0, 3, 1], Duration::from_millis(300));
        harness.run_until_formed(DEADLINE);
        (harness.now, harness.decisions.clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_wiped_node_forgets_its_cluster_and_its_proposal() {
    let harness = Harness::new(1);
    let mut config = harness.config(0);
    config.volatile = true;
    config.db = DbState::HasData { last_voters: 1 };
    config.cluster_id = Some(ClusterId(7));
    config.stored_voters = vec![(harness.ids[0].clone(), "10.0.0.1:4002".into())];
    let now = Duration::from_secs(1);
    let mut node = Node::new(config, now);
    let before = node.card().version;
    node.wiped(now);
    let card = node.card();
    assert_eq!(card.db, DbState::Empty);
    assert_eq!(card.cluster_id, None, "a wiped node is bound to no cluster");
    assert_eq!(card.agreement, Agreement::None);
    assert!(card.version > before, "the change is published");
    assert!(
        !matches!(node.decision(), Decision::Bootstrap { .. }),
        "{:?}",
        node.decision()
    );
}

#[test]
fn restored_members_are_known_alive_with_their_cards_without_a_datagram() {
    let n = 40;
    let mut harness = Harness::created(n);
    let known = harness.known();
    for node in harness.nodes.iter_mut().flatten() {
        // What `Node::new` queued (its timers) is not the restore's doing.
        while node.poll_output().is_some() {}
        node.restore_members(known.clone(), Duration::ZERO);
        let mut sent = 0;
        while let Some(output) = node.poll_output() {
            sent += usize::from(matches!(output, Output::Send { .. }));
        }
        assert_eq!(sent, 0, "a restore sends nothing");
        let alive = node.members().values().filter(|m| m.alive).count();
        assert_eq!(alive, n - 1, "every other node is a live member");
        for (identity, card) in &known {
            if identity.node_id != node.card().node_id {
                assert_eq!(node.live_card(&identity.node_id), Some(card));
            }
        }
    }
}

#[test]
fn restored_cards_replace_older_ones_without_a_datagram_and_never_the_own_card() {
    let n = 4;
    let mut harness = Harness::created(n);
    let known = harness.known();
    for node in harness.nodes.iter_mut().flatten() {
        node.restore_members(known.clone(), Duration::ZERO);
        while node.poll_output().is_some() {}
    }
    // The cards as the restore left them (each node's view digest changed in it).
    let cards: Vec<Card> = harness
        .nodes
        .iter()
        .flatten()
        .map(|node| node.card().clone())
        .collect();
    let node = harness.nodes[0].as_mut().expect("started");
    let own = node.card().clone();
    let mut forged = own.clone();
    forged.version += 10;
    node.restore_cards(cards.iter().cloned().chain([forged]));
    assert!(
        !std::iter::from_fn(|| node.poll_output()).any(|o| matches!(o, Output::Send { .. })),
        "restoring cards sends nothing"
    );
    assert_eq!(node.card(), &own, "its own card is its own to write");
    for card in &cards[1..] {
        assert_eq!(node.live_card(&card.node_id), Some(card));
        assert_ne!(
            Some(card),
            known
                .iter()
                .find(|(id, _)| id.node_id == card.node_id)
                .map(|(_, c)| c),
            "the card held is the newer one"
        );
    }
}

#[test]
fn a_restored_membership_gossips_on_and_detects_a_crash() {
    let n = 5;
    let mut harness = Harness::new(n);
    for i in 0..n {
        harness.at(Duration::ZERO, i, Delivery::Start);
    }
    // Start the nodes without delivering anything, then restore their membership.
    while harness
        .queue
        .peek()
        .is_some_and(|Reverse((at, ..))| at.is_zero())
    {
        let Some(Reverse((_, _, i, delivery))) = harness.queue.pop() else {
            break;
        };
        if matches!(delivery, Delivery::Start) {
            harness.nodes[i] = Some(Node::new(harness.config(i), Duration::ZERO));
            harness.drain(i);
        }
    }
    let known = harness.known();
    for i in 0..n {
        if let Some(node) = harness.nodes[i].as_mut() {
            node.restore_members(known.clone(), Duration::ZERO);
        }
        harness.drain(i);
    }
    // Node 4 vanishes; the others must see it down, by probing, within a generous bound.
    harness.nodes[4] = None;
    let deadline = Duration::from_secs(60);
    let gone = harness.ids[4].clone();
    let down_everywhere = |h: &Harness| {
        h.nodes[..4].iter().flatten().all(|node| {
            node.members()
                .get(&gone)
                .is_some_and(|member| !member.alive)
        })
    };
    while !down_everywhere(&harness) {
        assert!(
            harness.now < deadline,
            "not seen down:\n{}",
            harness.report()
        );
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
    }
}

mod trust;
