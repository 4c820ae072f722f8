//! The restored start of large membership runs gives a working membership: every node knows
//! every other at once, and joins and crashes are seen as after a gossiped warm-up.

use std::time::Duration;

use rq4d_simulations::measure::{self, Knobs, Limits, MembershipRun};

fn limits() -> Limits {
    Limits {
        memory: 4 << 30,
        wall: Duration::from_secs(300),
    }
}

#[test]
fn a_restored_membership_sees_a_join_and_a_crash_everywhere() {
    let n = 60;
    let run = measure::membership(
        &MembershipRun {
            n,
            loss: 0.0,
            steady: Duration::from_secs(20),
            seed: 3,
            restore: true,
            join_and_crash: true,
        },
        &Knobs::daemon(),
        limits(),
    );
    assert!(run.restored && run.note.is_none(), "{run:?}");
    assert_eq!(
        run.warmup,
        Some(Duration::from_secs(1)),
        "complete at the first check"
    );
    assert!(run.spread.iter().all(Option::is_some), "join seen: {run:?}");
    assert!(
        run.detect.iter().all(Option::is_some),
        "crash seen: {run:?}"
    );
    assert!(run.false_downs == 0, "no loss, no false down: {run:?}");
}

#[test]
fn a_run_too_large_for_the_memory_limit_is_not_attempted_and_says_why() {
    let run = measure::membership(
        &MembershipRun {
            n: 10_000,
            loss: 0.0,
            steady: Duration::from_secs(60),
            seed: 3,
            restore: true,
            join_and_crash: true,
        },
        &Knobs::daemon(),
        limits(),
    );
    let note = run.note.expect("a note");
    assert!(note.starts_with("not attempted"), "{note}");
    assert!(run.warmup.is_none() && run.spread.iter().all(Option::is_none));
}

#[test]
fn a_run_without_join_and_crash_measures_the_steady_window_only() {
    let run = measure::membership(
        &MembershipRun {
            n: 30,
            loss: 0.05,
            steady: Duration::from_secs(20),
            seed: 3,
            restore: true,
            join_and_crash: false,
        },
        &Knobs::daemon(),
        limits(),
    );
    assert!(run.note.is_none(), "{run:?}");
    assert!(
        run.bytes_per_node_sec > 0.0 && run.datagrams_per_node_sec > 0.0,
        "the steady window is measured: {run:?}"
    );
    assert!(
        run.spread.iter().chain(&run.detect).all(Option::is_none),
        "no join, no crash: {run:?}"
    );
}

#[test]
fn a_bench_too_large_for_memory_is_refused_with_its_size_and_limit() {
    let refused = measure::bench(
        10_000,
        Duration::from_secs(60),
        1,
        &Knobs::daemon(),
        Duration::from_secs(10),
        true,
    )
    .expect_err("10 000 full memberships do not fit in 18 GiB");
    assert_eq!(refused.nodes, 10_000);
    let text = refused.to_string();
    assert!(
        text.starts_with("not attempted: 10000 nodes") && text.contains("18 GiB"),
        "{text}"
    );
}

/// The steady window measures the steady state however the membership came about: it opens
/// only once the start's traffic has died down (every card held everywhere, SWIM's backlog
/// empty), so a gossiped start and a restored one count the same bytes. Opened at "all see
/// all", the gossiped run counted the start's backlog too (4.3 kB/s per node at 1 000 nodes).
#[test]
fn a_gossiped_start_and_a_restored_one_measure_the_same_steady_bytes() {
    let n = 150;
    let measured = |restore| {
        measure::membership(
            &MembershipRun {
                n,
                loss: 0.0,
                steady: Duration::from_secs(30),
                seed: 5,
                restore,
                join_and_crash: false,
            },
            &Knobs::daemon(),
            limits(),
        )
    };
    let gossiped = measured(false);
    let restored = measured(true);
    assert!(gossiped.note.is_none() && restored.note.is_none());
    let (warm, quiet) = (
        gossiped.warmup.expect("warm"),
        gossiped.quiet.expect("quiet"),
    );
    assert!(
        quiet > warm,
        "the start's backlog outlasts 'all see all': {gossiped:?}"
    );
    let (g, r) = (
        gossiped.swim_cards_per_node_sec,
        restored.swim_cards_per_node_sec,
    );
    for (layer, g, r) in [("SWIM", g.0, r.0), ("cards", g.1, r.1)] {
        assert!(
            (g - r).abs() <= 0.1 * r,
            "{layer}: gossiped {g:.0} B/s against restored {r:.0} B/s per node"
        );
    }
}
