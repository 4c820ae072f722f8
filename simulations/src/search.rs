//! The scenario search: many random scenarios on all cores, every violation with its seed.
//!
//! Scenario `k` of a search with base seed `B` has seed `mix(B, k)`, so a search is as
//! reproducible as one run, and any failing scenario replays alone with
//! `rq4d-sim replay --seed S`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::scenario::{Outcome, Params, Scenario};

/// Called after each scenario with its index and the summary so far.
pub type Progress<'a> = dyn Fn(usize, &Summary) + Sync + 'a;

/// The seed of scenario `k` of a search with base seed `base`.
pub fn scenario_seed(base: u64, k: u64) -> u64 {
    let mut z = base.wrapping_add(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a search found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Scenarios run.
    pub scenarios: usize,
    /// Scenarios with a violation (outcome kept, trace empty).
    pub failed: Vec<Outcome>,
    /// Scenarios with a seed-isolation window split.
    pub windows: Vec<u64>,
    /// Scenarios that did not converge but are excused, with the reason.
    pub excused: Vec<(u64, String)>,
    /// Time from the last fault to a formed cluster, per converged scenario.
    pub convergence: Vec<Duration>,
    /// Events processed in all.
    pub events: u64,
    /// Virtual time simulated in all.
    pub sim_time: Duration,
    /// Scenarios whose nodes sealed their gossip.
    pub keyed: usize,
    /// Forged datagrams handed to nodes in all.
    pub forged: u64,
    /// Scenarios under a voter cap.
    pub capped: usize,
    /// Scenarios with read-only replicas.
    pub with_read_only: usize,
    /// Members removed by reapers in all.
    pub removals: u64,
    /// Changes of role in all.
    pub role_changes: u64,
    /// Promotions that left more voters than the cap, in all.
    pub promotions_over_cap: u64,
    /// Scenarios with at least one of those.
    pub over_cap: Vec<u64>,
    /// Wall time.
    pub wall: Duration,
    /// Index (0-based) of the first failing scenario.
    pub first_failure: Option<usize>,
}

/// Runs `count` scenarios from `base` on `threads` threads. With `stop_at_first`, stops once a
/// violation is found (the broken-rule check).
pub fn search(
    base: u64,
    count: usize,
    params: &Params,
    threads: usize,
    stop_at_first: bool,
    progress: Option<&Progress<'_>>,
) -> Summary {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let stop = AtomicUsize::new(usize::MAX);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count || k > stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let scenario = Scenario::random(scenario_seed(base, k as u64), params);
                    let outcome = scenario.run(false);
                    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                    s.scenarios += 1;
                    s.events += outcome.events;
                    s.keyed += usize::from(outcome.keyed);
                    s.forged += outcome.forged;
                    s.capped += usize::from(outcome.capped);
                    s.with_read_only += usize::from(outcome.read_only > 0);
                    s.removals += outcome.removals;
                    s.role_changes += outcome.role_changes;
                    s.promotions_over_cap += outcome.promotions_over_cap;
                    if outcome.promotions_over_cap > 0 {
                        s.over_cap.push(outcome.seed);
                    }
                    s.sim_time += outcome.sim_time;
                    if let Some(after) = outcome.converged_after {
                        s.convergence.push(after);
                    }
                    if !outcome.windows.is_empty() {
                        s.windows.push(outcome.seed);
                    }
                    if let Some(why) = &outcome.excused {
                        s.excused.push((outcome.seed, why.clone()));
                    }
                    if !outcome.violations.is_empty() {
                        s.first_failure = Some(s.first_failure.map_or(k, |f| f.min(k)));
                        if stop_at_first {
                            stop.fetch_min(k, Ordering::Relaxed);
                        }
                        s.failed.push(outcome);
                    }
                    if let Some(report) = progress {
                        report(k, &s);
                    }
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.failed.sort_by_key(|o| o.seed);
    summary.wall = started.elapsed();
    summary
}
