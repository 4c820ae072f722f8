//! The restored start of large membership runs gives a working membership: every node knows
//! every other at once, and joins and crashes are seen as after a gossiped warm-up.

use std::time::Duration;

use rq4d_simulations::measure::{self, Knobs, Limits};

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
        n,
        0.0,
        Duration::from_secs(20),
        3,
        &Knobs::daemon(),
        limits(),
        true,
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
    assert!(
        run.false_downs_per_node_hour == 0.0,
        "no loss, no false down: {run:?}"
    );
}

#[test]
fn a_run_too_large_for_the_memory_limit_is_not_attempted_and_says_why() {
    let run = measure::membership(
        10_000,
        0.0,
        Duration::from_secs(60),
        3,
        &Knobs::daemon(),
        limits(),
        true,
    );
    let note = run.note.expect("a note");
    assert!(note.starts_with("not attempted"), "{note}");
    assert!(run.warmup.is_none() && run.spread.iter().all(Option::is_none));
}
