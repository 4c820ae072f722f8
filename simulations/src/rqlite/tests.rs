//! The model's non-voter rules, as `docs/rqlited.md` ("Auth, TLS and non-voters") records
//! rqlited's: a non-voter joins with the flag off and counts for nothing; a join of an id and
//! address the configuration holds is ignored whatever the flag; the same id at a new address
//! is re-added with the new flag; `/remove` takes either; a removed node stays up, leaderless.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rq4d_protocol::NodeId;

use super::{Change, Ctx, Effect, HostInfo, LeaderNotFound, Rqlite};
use crate::network::{self, Addresses, LinkParams, Network};

/// A model of `n` hosts on a whole network, with a clock and a generator.
struct Bench {
    rqlite: Rqlite,
    net: Network,
    addresses: Addresses,
    rng: SmallRng,
    now: Duration,
}

impl Bench {
    fn new(n: usize) -> Self {
        let mut addresses = Addresses::default();
        let mut rqlite = Rqlite::default();
        for h in 0..n {
            let ip = addresses.allocate(h);
            let id = NodeId::new(format!("n{h}")).expect("a valid id");
            rqlite.add_host(HostInfo {
                id,
                raft: network::raft_addr(ip),
            });
        }
        Self {
            rqlite,
            net: Network::new(LinkParams::lan(), 1),
            addresses,
            rng: SmallRng::seed_from_u64(1),
            now: Duration::ZERO,
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            net: &self.net,
            addresses: &self.addresses,
            now: self.now,
        }
    }

    fn raft(&self, host: usize) -> String {
        self.rqlite.hosts[host].raft.clone()
    }

    fn id(&self, host: usize) -> NodeId {
        self.rqlite.hosts[host].id.clone()
    }

    /// Starts `host` and carries out its effects until they are quiet, the elections ticking
    /// every 100 ms, and until its HTTP answers: what the world does, without the nodes.
    fn start(&mut self, host: usize, join: &[usize], voter: bool) -> Vec<Effect> {
        let join: Vec<String> = join.iter().map(|&h| self.raft(h)).collect();
        let ctx = Ctx {
            net: &self.net,
            addresses: &self.addresses,
            now: self.now,
        };
        let effects = self
            .rqlite
            .start(host, &join, 0, voter, &mut self.rng, &ctx);
        let seen = self.play(effects);
        self.advance_to(self.now + Duration::from_millis(100));
        seen
    }

    /// Plays delayed effects in time order (elections in between); returns every effect seen.
    fn play(&mut self, mut pending: Vec<Effect>) -> Vec<Effect> {
        let mut seen = Vec::new();
        let mut queue: Vec<(Duration, Effect)> = Vec::new();
        loop {
            for effect in pending.drain(..) {
                let after = match &effect {
                    Effect::JoinAttempt { after, .. }
                    | Effect::FormAttempt { after, .. }
                    | Effect::Exit { after, .. } => *after,
                    _ => {
                        seen.push(effect);
                        continue;
                    }
                };
                queue.push((self.now + after, effect));
            }
            queue.sort_by_key(|(at, _)| *at);
            if queue.is_empty() {
                return seen;
            }
            let (at, effect) = queue.remove(0);
            self.advance_to(at);
            let ctx = Ctx {
                net: &self.net,
                addresses: &self.addresses,
                now: self.now,
            };
            pending = match effect {
                Effect::JoinAttempt { host, pid, .. } => self.rqlite.join_attempt(host, pid, &ctx),
                Effect::Exit { host, pid, why, .. } => {
                    self.rqlite.exit(host, pid);
                    seen.push(Effect::Exit {
                        host,
                        pid,
                        after: Duration::ZERO,
                        why,
                    });
                    Vec::new()
                }
                other => {
                    seen.push(other);
                    Vec::new()
                }
            };
        }
    }

    /// Runs the elections every 100 ms up to `at`.
    fn advance_to(&mut self, at: Duration) {
        while self.now + Duration::from_millis(100) <= at {
            self.now += Duration::from_millis(100);
            let ctx = Ctx {
                net: &self.net,
                addresses: &self.addresses,
                now: self.now,
            };
            self.rqlite.raft_tick(&mut self.rng, &ctx);
        }
        self.now = self.now.max(at);
    }

    /// A cluster of voters `0..voters` led by host 0.
    fn cluster_of(voters: usize, n: usize) -> Self {
        let mut bench = Self::new(n);
        bench.start(0, &[], true);
        bench.advance_to(Duration::from_secs(3));
        assert_eq!(bench.rqlite.clusters[0].leader, Some(0), "host 0 leads");
        for h in 1..voters {
            bench.start(h, &[0], true);
        }
        bench
    }
}

#[test]
fn a_non_voter_joins_beside_the_voters_and_follows_the_leader() {
    let mut bench = Bench::cluster_of(3, 4);
    let effects = bench.start(3, &[0], false);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Reconfigured(r) if r.change == Change::Joined { voter: false }
    )));
    let cluster = &bench.rqlite.clusters[0];
    assert_eq!(cluster.voters.len(), 3);
    assert_eq!(cluster.non_voters.get(&bench.id(3)), Some(&bench.raft(3)));
    assert!(bench.rqlite.non_voter_ok(3) && !bench.rqlite.member_ok(3));
    assert_eq!(bench.rqlite.participant(3), None, "a non-voter never votes");
    let status = bench.rqlite.status(3, &bench.ctx()).expect("HTTP is up");
    assert!(!status.voter && !status.is_leader);
    assert_eq!(status.num_peers, 0);
    assert_eq!(status.leader, Some(bench.id(0)));
}

#[test]
fn non_voters_count_for_no_quorum_and_never_lead() {
    let mut bench = Bench::cluster_of(3, 5);
    bench.start(3, &[0], false);
    bench.start(4, &[0], false);
    // Two of the three voters die: the non-voters do not make up the majority.
    bench.rqlite.stop(1);
    bench.rqlite.stop(2);
    let majority = bench.rqlite.majority(0, &bench.ctx());
    assert_eq!((majority.reached, majority.voters), (1, 3));
    assert!(!majority.holds());
    bench.advance_to(bench.now + Duration::from_secs(10));
    assert_eq!(
        bench.rqlite.clusters[0].leader, None,
        "no leader without a majority"
    );
    let status = bench.rqlite.status(3, &bench.ctx()).expect("HTTP is up");
    assert_eq!(status.leader, None);
    // With host 0 gone too, the non-voters never stand.
    bench.rqlite.stop(0);
    bench.advance_to(bench.now + Duration::from_secs(10));
    assert_eq!(bench.rqlite.clusters[0].leader, None);
}

#[test]
fn a_join_of_an_id_and_address_held_is_ignored_whatever_the_flag() {
    let mut bench = Bench::cluster_of(3, 4);
    bench.start(3, &[0], false);
    bench.rqlite.stop(3);
    let effects = bench.start(3, &[0], true);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Reconfigured(_))),
        "nothing changed: {effects:?}"
    );
    let cluster = &bench.rqlite.clusters[0];
    assert!(cluster.non_voters.contains_key(&bench.id(3)));
    assert!(
        !cluster.voters.contains_key(&bench.id(3)),
        "no promotion by a join"
    );
    // Nor a demotion.
    bench.rqlite.stop(2);
    bench.start(2, &[0], false);
    assert!(bench.rqlite.clusters[0].voters.contains_key(&bench.id(2)));
}

#[test]
fn the_same_id_at_a_new_address_is_added_again_with_the_new_flag() {
    let mut bench = Bench::cluster_of(3, 4);
    bench.start(3, &[0], false);
    bench.rqlite.stop(3);
    bench.addresses.release(bench.addresses_ip(3));
    let ip = bench.addresses.allocate(3);
    bench.rqlite.hosts[3].raft = network::raft_addr(ip);
    bench.start(3, &[0], true);
    let cluster = &bench.rqlite.clusters[0];
    assert_eq!(cluster.voters.get(&bench.id(3)), Some(&bench.raft(3)));
    assert!(!cluster.non_voters.contains_key(&bench.id(3)));
}

#[test]
fn a_change_of_role_is_a_removal_and_a_join() {
    let mut bench = Bench::cluster_of(3, 4);
    bench.start(3, &[0], false);
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    let left = bench.rqlite.leave(3, &ctx).expect("a leader it reaches");
    let change = left.expect("it was a member");
    assert_eq!(change.change, Change::Left);
    assert_eq!(
        change.before, change.after,
        "a non-voter's leaving moves no quorum"
    );
    // Removed while running: up, leaderless, not a voter, no peers.
    let status = bench.rqlite.status(3, &bench.ctx()).expect("HTTP is up");
    assert!(status.leader.is_none() && !status.voter && status.num_peers == 0);
    bench.rqlite.stop(3);
    bench.start(3, &[0], true);
    assert!(bench.rqlite.member_ok(3), "back as a voter");
    assert_eq!(bench.rqlite.clusters[0].voters.len(), 4);
}

#[test]
fn leaving_needs_a_leader_it_reaches_and_an_id_already_out_is_no_error() {
    let mut bench = Bench::cluster_of(3, 4);
    bench.start(3, &[0], false);
    bench.net.partition(&[vec![3]]);
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    assert_eq!(
        bench.rqlite.leave(3, &ctx),
        Err(LeaderNotFound),
        "rqlited's 500: no leader"
    );
    bench.net.heal();
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    assert!(bench.rqlite.remove(0, &bench.rqlite.hosts[3].id.clone()));
    // Removed, it knows no leader any more: the leave fails like any without one.
    assert_eq!(bench.rqlite.leave(3, &ctx), Err(LeaderNotFound));
    assert!(!bench.rqlite.remove(0, &bench.rqlite.hosts[3].id.clone()));
}

#[test]
fn a_non_voter_answers_a_join_with_its_leader() {
    let mut bench = Bench::cluster_of(1, 3);
    bench.start(1, &[0], false);
    bench.start(2, &[1], true);
    assert!(bench.rqlite.member_ok(2), "admitted through the non-voter");
}

#[test]
fn a_non_voter_cannot_bootstrap_nor_start_a_new_node_without_join() {
    let mut bench = Bench::new(2);
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    let targets = vec![bench.raft(0), bench.raft(1)];
    let effects = bench
        .rqlite
        .start(0, &targets, 2, false, &mut bench.rng, &ctx);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Exit { why, .. }] if why.contains("voting nodes")
    ));
    let effects = bench.rqlite.start(1, &[], 0, false, &mut bench.rng, &ctx);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Exit { why, .. }] if why.contains("without joining")
    ));
    assert!(bench.rqlite.clusters.is_empty());
}

#[test]
fn removing_a_live_voter_that_the_majority_needs_is_seen() {
    let mut bench = Bench::cluster_of(3, 3);
    bench.rqlite.stop(2);
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    let id = bench.id(1);
    let change = bench
        .rqlite
        .remove_as(0, &id, Change::Removed, &ctx)
        .expect("a member");
    assert!(change.before.holds() && !change.after.holds(), "{change:?}");
}

impl Bench {
    fn addresses_ip(&self, host: usize) -> std::net::Ipv4Addr {
        let raft: std::net::SocketAddr = self.raft(host).parse().expect("an address");
        match raft {
            std::net::SocketAddr::V4(v4) => *v4.ip(),
            std::net::SocketAddr::V6(_) => unreachable!("the model hands out IPv4"),
        }
    }
}

/// Starts `host` with `-join` to host 0 and makes its first join attempt at once, without an
/// election tick in between: the leader has not noticed a partition made just before.
fn join_before_the_leader_notices(bench: &mut Bench, host: usize) -> Vec<Effect> {
    let join = vec![bench.raft(0)];
    let ctx = Ctx {
        net: &bench.net,
        addresses: &bench.addresses,
        now: bench.now,
    };
    let started = bench
        .rqlite
        .start(host, &join, 0, true, &mut bench.rng, &ctx);
    let pid = started
        .iter()
        .find_map(|e| match e {
            Effect::JoinAttempt { pid, .. } => Some(*pid),
            _ => None,
        })
        .expect("a join start schedules an attempt");
    assert_eq!(
        bench.rqlite.clusters[0].leader,
        Some(0),
        "host 0 still leads"
    );
    bench.rqlite.join_attempt(host, pid, &ctx)
}

#[test]
fn a_leader_admits_a_voter_only_with_a_majority_of_the_new_configuration() {
    // Cut off with one other voter of five, host 0 reaches 3 of the 6 voters the join would
    // make (itself, host 1 and the joiner): Raft could not commit the change.
    let mut bench = Bench::cluster_of(5, 7);
    bench.net.partition(&[vec![0, 1, 5]]);
    let effects = join_before_the_leader_notices(&mut bench, 5);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Reconfigured(_) | Effect::Joined { .. })),
        "not admitted: {effects:?}"
    );
    assert_eq!(bench.rqlite.clusters[0].voters.len(), 5);

    // With three of five on its side, it reaches 4 of 6: admitted.
    let mut bench = Bench::cluster_of(5, 7);
    bench.net.partition(&[vec![0, 1, 2, 5]]);
    let effects = join_before_the_leader_notices(&mut bench, 5);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Joined { .. })),
        "admitted: {effects:?}"
    );
    assert_eq!(bench.rqlite.clusters[0].voters.len(), 6);
}

/// rqlite's bootstrapper notifies its `-join` targets in order and ends a round at the first
/// that does not answer (v8's `Bootstrapper.notify`): a first target started late keeps every
/// node that reached it first from notifying anyone, itself included, until its next round
/// 2–4 s later.
#[test]
fn a_bootstrap_round_stops_at_the_first_target_not_listening() {
    let mut bench = Bench::new(3);
    let join: Vec<String> = (0..3).map(|h| bench.raft(h)).collect();
    let mut rounds = Vec::new();
    for (host, at) in [(1, 0), (2, 0), (0, 10)] {
        bench.now = Duration::from_millis(at);
        let ctx = Ctx {
            net: &bench.net,
            addresses: &bench.addresses,
            now: bench.now,
        };
        for effect in bench
            .rqlite
            .start(host, &join, 3, true, &mut bench.rng, &ctx)
        {
            if let Effect::FormAttempt { host, pid, after } = effect {
                rounds.push((bench.now + after, host, pid));
            }
        }
    }
    let mut formed_at = None;
    while formed_at.is_none() {
        rounds.sort();
        let (at, host, pid) = rounds.remove(0);
        assert!(
            at < Duration::from_secs(5),
            "no cluster after every second round"
        );
        bench.now = at;
        let ctx = Ctx {
            net: &bench.net,
            addresses: &bench.addresses,
            now: bench.now,
        };
        for effect in bench.rqlite.form_attempt(host, pid, &mut bench.rng, &ctx) {
            match effect {
                Effect::FormAttempt { host, pid, after } => rounds.push((at + after, host, pid)),
                Effect::Bootstrapped { .. } => formed_at = Some(at),
                _ => {}
            }
        }
    }
    let formed_at = formed_at.expect("formed");
    // Hosts 1 and 2 found host 0 not listening in their first rounds (at about 56 ms) and
    // notified nobody; host 0's own first round reached all three with its one notification.
    assert!(
        formed_at >= Duration::from_secs(2),
        "formed in the first rounds, at {formed_at:?}"
    );
}
