//! Voter caps and read-only replicas on the simulated network, step by step: who votes after a
//! formation, after a voter dies and is reaped, and after it comes back; and that read-only
//! replicas are never counted for `--expect`. Every transition is judged as in the search (a
//! violation fails the test), and the voters' majority is checked between the steps too.

use std::collections::BTreeSet;
use std::time::Duration;

use rq4d_protocol::{DbState, Decision};
use rq4d_simulations::invariants;
use rq4d_simulations::rqlite::Ctx;
use rq4d_simulations::scenario::node_id;
use rq4d_simulations::world::{Action, Convergence, World, WorldConfig};

/// A traced world of `n` empty hosts expecting `expect`, under `cap`, with `read_only` hosts.
fn world(n: usize, expect: u16, cap: Option<u16>, read_only: &[usize]) -> World {
    let mut config = WorldConfig::daemon_defaults(7, expect);
    config.voter_cap = cap;
    config.reap_after = Duration::from_secs(20);
    config.trace = true;
    config.quiet = true;
    let mut world = World::new(config, invariants::judge);
    for h in 0..n {
        world.add_host(node_id(h), true, DbState::Empty);
    }
    for &h in read_only {
        world.make_read_only(h);
    }
    world
}

fn start(world: &mut World, at: Duration, hosts: impl IntoIterator<Item = usize>) {
    for host in hosts {
        world.schedule(
            at,
            Action::Start {
                host,
                new_address: false,
            },
        );
    }
}

/// The trace and the hosts, for a failed assertion.
fn story(world: &World) -> String {
    format!("{}\n{}", world.trace.join("\n"), world.summary())
}

/// Runs until the world has converged (voters settled), within `limit` from now.
fn settle(world: &mut World, limit: Duration) {
    let deadline = world.now + limit;
    while world.now < deadline {
        let next = world.now + Duration::from_millis(500);
        world.run_until(next);
        assert!(world.violations.is_empty(), "{}", story(world));
        if world.convergence() == Convergence::Settled {
            return;
        }
    }
    panic!(
        "not settled within {limit:?}: {:?}\n{}",
        world.convergence(),
        story(world)
    );
}

/// Runs for `span`, checking between steps of 100 ms that the cluster's voters keep a live
/// majority; returns every distinct voter count seen, in order.
fn run_keeping_majority(world: &mut World, cluster: usize, span: Duration) -> Vec<usize> {
    let mut counts = Vec::new();
    let end = world.now + span;
    while world.now < end {
        let next = world.now + Duration::from_millis(100);
        world.run_until(next);
        assert!(world.violations.is_empty(), "{}", story(world));
        let ctx = Ctx {
            net: &world.net,
            addresses: &world.addresses,
            now: world.now,
        };
        let majority = world.rqlite.majority(cluster, &ctx);
        assert!(
            majority.holds(),
            "majority lost at {:?}: {majority:?}\n{}",
            world.now,
            story(world)
        );
        if counts.last() != Some(&majority.voters) {
            counts.push(majority.voters);
        }
    }
    counts
}

/// The voters and the non-voters of the only cluster, by host.
fn roles(world: &World) -> (BTreeSet<usize>, BTreeSet<usize>) {
    assert_eq!(world.rqlite.clusters.len(), 1, "{}", story(world));
    let cluster = &world.rqlite.clusters[0];
    let hosts = |ids: &mut dyn Iterator<Item = &rq4d_protocol::NodeId>| {
        ids.filter_map(|id| world.host_by_id(id))
            .collect::<BTreeSet<usize>>()
    };
    (
        hosts(&mut cluster.voters.keys()),
        hosts(&mut cluster.non_voters.keys()),
    )
}

#[test]
fn five_nodes_under_a_cap_of_three_form_three_voters_and_two_non_voters() {
    let mut world = world(5, 3, Some(3), &[]);
    start(&mut world, Duration::ZERO, 0..5);
    settle(&mut world, Duration::from_secs(60));
    let (voters, non_voters) = roles(&world);
    assert_eq!(voters, BTreeSet::from([0, 1, 2]), "{}", story(&world));
    assert_eq!(non_voters, BTreeSet::from([3, 4]), "{}", story(&world));
    assert_eq!(
        world.counters.role_changes, 0,
        "formed with the right roles"
    );
}

/// Five nodes under a cap of three, formed; then voter n001 dies.
fn capped_five_losing_a_voter() -> World {
    let mut world = world(5, 3, Some(3), &[]);
    start(&mut world, Duration::ZERO, 0..5);
    settle(&mut world, Duration::from_secs(60));
    let crash_at = world.now + Duration::from_secs(1);
    world.schedule(crash_at, Action::Crash { host: 1 });
    world
}

#[test]
fn a_dead_voter_is_reaped_and_the_first_non_voter_takes_its_place() {
    let mut world = capped_five_losing_a_voter();
    // reap_after (20 s), then the promotion: voters 3 → 2 → 3, a majority live throughout.
    let counts = run_keeping_majority(&mut world, 0, Duration::from_secs(60));
    assert_eq!(counts[..3], [3, 2, 3], "{}", story(&world));
    assert!(counts.iter().all(|&c| c >= 2), "{counts:?}");
    let (voters, non_voters) = roles(&world);
    assert_eq!(voters, BTreeSet::from([0, 2, 3]), "{}", story(&world));
    assert_eq!(non_voters, BTreeSet::from([4]), "{}", story(&world));
    assert_eq!(world.counters.removals, 1);
    assert_eq!(
        world.convergence(),
        Convergence::Settled,
        "{}",
        story(&world)
    );

    // The reaped voter comes back with its data and rejoins as the voter it was: one voter too
    // many, so the largest id that does not lead steps down, the majority kept.
    let back_at = world.now + Duration::from_secs(1);
    start(&mut world, back_at, [1]);
    run_keeping_majority(&mut world, 0, Duration::from_secs(60));
    settle(&mut world, Duration::from_secs(30));
    let (voters, non_voters) = roles(&world);
    assert_eq!(voters.len(), 3, "{}", story(&world));
    assert!(voters.contains(&1), "{}", story(&world));
    assert_eq!(non_voters.len(), 2, "{}", story(&world));
}

/// The place of a reaped voter is given once. It was given twice: when n003's card showed it a
/// voter before the leader's card counted it (the leader polls once a second), n003 was neither
/// counted by the leader nor a candidate any more, so `roles::should_vote` offered its slot to
/// n004 too — 4 voters until n004 stepped down again (t = 31.601 s of this world). The slots now
/// count the live voters when the leader's count lags.
#[test]
fn a_reaped_voters_place_is_given_once() {
    let mut world = capped_five_losing_a_voter();
    let counts = run_keeping_majority(&mut world, 0, Duration::from_secs(60));
    assert_eq!(counts, [3, 2, 3], "{}", story(&world));
    assert_eq!(world.counters.promotions_over_cap, 0, "{}", story(&world));
    assert_eq!(world.counters.role_changes, 1, "{}", story(&world));
}

#[test]
fn read_only_replicas_are_never_counted_for_expect_and_join_as_non_voters() {
    // n000 (the smallest id, the seed it would otherwise be) and n004 are read-only.
    let mut world = world(5, 3, None, &[0, 4]);
    start(&mut world, Duration::ZERO, [0, 1, 2, 4]);
    // Four live nodes, two of them eligible: nobody founds a cluster.
    world.run_until(Duration::from_secs(30));
    assert!(world.rqlite.clusters.is_empty(), "{}", story(&world));
    for h in [0, 1, 2, 4] {
        let decision = world.hosts[h].node.as_ref().map(|n| n.decision().clone());
        assert!(
            matches!(decision, Some(Decision::Wait(_))),
            "{h} waits: {decision:?}"
        );
    }
    start(&mut world, Duration::from_secs(30), [3]);
    settle(&mut world, Duration::from_secs(60));
    let (voters, non_voters) = roles(&world);
    assert_eq!(voters, BTreeSet::from([1, 2, 3]), "{}", story(&world));
    assert_eq!(non_voters, BTreeSet::from([0, 4]), "{}", story(&world));
    let founders: Vec<_> = world.formations.values().flatten().cloned().collect();
    assert_eq!(founders, vec![node_id(1), node_id(2), node_id(3)]);
}

#[test]
fn a_dead_read_only_replica_is_reaped_without_touching_the_voters() {
    let mut world = world(4, 3, None, &[3]);
    start(&mut world, Duration::ZERO, 0..4);
    settle(&mut world, Duration::from_secs(60));
    let crash_at = world.now + Duration::from_secs(1);
    world.schedule(crash_at, Action::ScaleDown { host: 3 });
    let counts = run_keeping_majority(&mut world, 0, Duration::from_secs(40));
    assert_eq!(counts, vec![3], "{}", story(&world));
    let (voters, non_voters) = roles(&world);
    assert_eq!(voters, BTreeSet::from([0, 1, 2]), "{}", story(&world));
    assert!(non_voters.is_empty(), "reaped: {}", story(&world));
    assert_eq!(world.counters.removals, 1);
}

#[test]
fn the_judge_sees_a_lost_majority_and_a_read_only_voter() {
    use rq4d_simulations::invariants::Kind;
    use rq4d_simulations::rqlite::{Change, Majority, Reconfiguration};
    use rq4d_simulations::world::Fact;

    let mut world = world(4, 3, None, &[3]);
    start(&mut world, Duration::ZERO, 0..4);
    settle(&mut world, Duration::from_secs(60));
    let lost = Reconfiguration {
        cluster: 0,
        subject: node_id(1),
        change: Change::Left,
        before: Majority {
            reached: 2,
            voters: 3,
        },
        after: Majority {
            reached: 1,
            voters: 2,
        },
    };
    let fact = Fact::Reconfigured {
        host: 1,
        change: &lost,
    };
    let verdict = invariants::judge(&world, &fact).map(|v| v.kind);
    assert_eq!(verdict, Some(Kind::MajorityLost));
    // Already short before the change: a fault's doing, not rq4d's.
    let short = Reconfiguration {
        before: Majority {
            reached: 1,
            voters: 3,
        },
        ..lost.clone()
    };
    let fact = Fact::Reconfigured {
        host: 1,
        change: &short,
    };
    assert_eq!(invariants::judge(&world, &fact).map(|v| v.kind), None);

    let read_only = world.rqlite.hosts[3].raft.clone();
    world.rqlite.clusters[0]
        .voters
        .insert(node_id(3), read_only);
    let fact = Fact::ClusterFounded { cluster: 0 };
    assert_eq!(
        invariants::judge(&world, &fact).map(|v| v.kind),
        Some(Kind::ReadOnlyVoter)
    );
    assert!(matches!(world.convergence(), Convergence::Formed(_)));
}
