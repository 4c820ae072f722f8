//! The simulator's own acceptance tests: a bounded search finds nothing, the deliberately
//! broken rule is caught, and a seed always plays the same run.

use rq4d_protocol::coordinator::Faults;
use rq4d_simulations::scenario::{Params, Scenario};
use rq4d_simulations::search::{scenario_seed, search};

fn small(faults: Faults) -> Params {
    Params {
        min_size: 3,
        max_size: 6,
        faults,
        ..Params::default()
    }
}

fn describe(summary: &rq4d_simulations::search::Summary) -> String {
    summary
        .failed
        .iter()
        .flat_map(|o| {
            o.violations
                .iter()
                .map(move |v| format!("seed {}: {} — {}", o.seed, v.kind, v.detail))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_bounded_search_of_small_clusters_finds_no_violation() {
    let summary = search(2024, 300, &small(Faults::default()), 2, false, None);
    assert_eq!(summary.scenarios, 300);
    assert!(
        summary.failed.is_empty(),
        "violations (replay with `rq4d-sim replay --seed S --max-size 6`):\n{}",
        describe(&summary)
    );
}

#[test]
fn the_search_catches_the_broken_bootstrap_rule() {
    let broken = Faults {
        bootstrap_without_agreement: true,
    };
    let summary = search(2024, 200, &small(broken), 2, true, None);
    let first = summary
        .first_failure
        .expect("bootstrapping without agreement must be caught within 200 scenarios");
    assert!(
        summary.failed.iter().any(|o| o
            .violations
            .iter()
            .any(|v| v.kind == rq4d_simulations::invariants::Kind::DoubleBootstrap)),
        "the broken rule shows as a double bootstrap:\n{}",
        describe(&summary)
    );
    eprintln!("broken rule caught at scenario #{}", first + 1);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let params = Params::default();
    for k in 0..3 {
        let scenario = Scenario::random(scenario_seed(99, k), &params);
        let first = scenario.run(true);
        let second = Scenario::random(scenario_seed(99, k), &params).run(true);
        assert!(!first.trace.is_empty());
        assert_eq!(first.trace, second.trace, "{}", scenario.description);
        assert_eq!(first.digest, second.digest);
        assert_eq!(first.events, second.events);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let params = Params::default();
    let a = Scenario::random(scenario_seed(5, 0), &params).run(false);
    let b = Scenario::random(scenario_seed(5, 1), &params).run(false);
    assert_ne!(a.digest, b.digest);
}

/// Scenarios the 100 000-scenario search of 2026-11-25 failed (report/preliminary/FINDINGS.md),
/// replayed on today's protocol: each must now end in one cluster with a leader.
#[test]
fn the_findings_of_the_first_large_search_stay_fixed() {
    assert_replays_pass(&[
        (
            17941162488596595689,
            "2: a volatile wipe looped and wiped the winning side",
        ),
        (
            7413536532565176684,
            "5: gossip never healed after a mutual down",
        ),
        (
            5363549957447548224,
            "6: an uncommitted voter counted itself empty",
        ),
        (
            7763438544644338010,
            "6: an uncommitted voter counted itself empty",
        ),
        (
            12095729889005408763,
            "6: an uncommitted voter counted itself empty",
        ),
        (4586034707907364831, "not converged"),
        (6671799500152260042, "not converged"),
    ]);
}

/// Scenarios that failed while the formation by every founder was built (analysis.md, findings
/// 10–14), replayed: each must now end without a violation.
#[test]
fn the_findings_of_the_formation_design_stay_fixed() {
    assert_replays_pass(&[
        (
            17365003321207344491,
            "10: a lapsed acknowledgement left a founder unbound",
        ),
        (
            16073233977741239344,
            "11: founders' -join targets too narrow to form",
        ),
        (
            6014186093624381044,
            "12: a founder counted while away never took the configuration",
        ),
        (
            5205876317762206462,
            "12: two founders bootstrapping one configuration",
        ),
        (
            16496985348243755035,
            "13: a notification to a founder of another formation",
        ),
        (
            14489587003442065020,
            "13: a formation given up kept its rqlited notifying",
        ),
        (
            1280927518041003566,
            "14: founders crashed before the first election, back at new addresses",
        ),
    ]);
}

/// Scenarios that failed while recovery was made faster (issue 16), replayed.
#[test]
fn the_findings_of_the_recovery_work_stay_fixed() {
    assert_replays_pass(&[(
        16061647540113758075,
        "a rename between two down lives taken for an up kept a gone replica alive",
    )]);
}

/// Replays each scenario (seed, what it once found) and asserts it ends without a violation.
fn assert_replays_pass(cases: &[(u64, &str)]) {
    let params = Params::default();
    for &(seed, finding) in cases {
        let outcome = Scenario::random(seed, &params).run(false);
        assert!(
            outcome.violations.is_empty(),
            "seed {seed} (finding {finding}) fails: {:?}",
            outcome
                .violations
                .iter()
                .map(|v| format!("{} — {}", v.kind, v.detail))
                .collect::<Vec<_>>()
        );
    }
}

/// The first of the search's scenarios that seal their gossip and bring forgeries of each kind.
fn forged_scenarios() -> Vec<Scenario> {
    use rq4d_simulations::world::Action;
    (0..200)
        .map(|k| Scenario::random(scenario_seed(7, k), &small(Faults::default())))
        .filter(|s| s.keyed && s.actions.iter().any(|(_, a)| matches!(a, Action::Forge(_))))
        .take(20)
        .collect()
}

#[test]
fn forgeries_from_outside_a_sealed_cluster_are_all_refused_and_change_nothing() {
    let scenarios = forged_scenarios();
    assert!(scenarios.len() >= 10, "enough scenarios with forgeries");
    let mut forged = 0;
    for scenario in &scenarios {
        let outcome = scenario.run(false);
        forged += outcome.forged;
        assert!(
            outcome.violations.is_empty(),
            "seed {}: {:?}",
            scenario.seed,
            outcome.violations
        );
    }
    assert!(forged > 0, "forged datagrams reached the nodes");
}

#[test]
fn the_same_forgeries_at_an_open_cluster_are_caught() {
    use rq4d_simulations::invariants::Kind;
    let caught = forged_scenarios()
        .into_iter()
        .map(|mut scenario| {
            scenario.keyed = false;
            scenario.run(false)
        })
        .filter(|o| o.violations.iter().any(|v| v.kind == Kind::ForgeryTaken))
        .count();
    assert!(
        caught > 0,
        "without a key, open forgeries are taken, and the check must say so"
    );
}
