//! The search summary: what `rq4d-sim search` prints (and `search.md` holds), and the class of
//! a violation it groups them by.

use std::fmt::Write as _;

use super::markdown::secs;
use crate::scenario::LIVENESS_BOUND;
use crate::search::Summary;
use crate::stats::quantile;
use crate::violation::{Kind, Violation};

/// The search summary as markdown.
pub fn search_markdown(
    summary: &Summary,
    seed: u64,
    scenarios: usize,
    max_size: usize,
    broken: bool,
) -> String {
    let mut out = String::new();
    let broken_flag = if broken { " --broken" } else { "" };
    let _ = writeln!(
        out,
        "Command: `rq4d-sim search --scenarios {scenarios} --seed {seed} --max-size {max_size}{broken_flag}`\n"
    );
    let mut convergence = summary.convergence.clone();
    convergence.sort();
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| scenarios run | {} |", summary.scenarios);
    let _ = writeln!(out, "| violations | {} |", summary.failed.len());
    let _ = writeln!(
        out,
        "| seed-isolation window splits (counted apart) | {} |",
        summary.windows.len()
    );
    let _ = writeln!(
        out,
        "| not converged, excused (a situation left to a human by design, or one rqlite cannot leave; classes below) | {} |",
        summary.excused.len()
    );
    let _ = writeln!(
        out,
        "| converged after the last fault: median / p99 / max (s) | {} / {} / {} (bound {} s) |",
        secs(quantile(&convergence, 0.5)),
        secs(quantile(&convergence, 0.99)),
        secs(convergence.last().copied()),
        LIVENESS_BOUND.as_secs()
    );
    let _ = writeln!(
        out,
        "| sealed scenarios / forged datagrams from outside, each refused and changing nothing | {} / {} |",
        summary.keyed, summary.forged
    );
    let _ = writeln!(
        out,
        "| scenarios under a voter cap / with read-only replicas | {} / {} |",
        summary.capped, summary.with_read_only
    );
    let _ = writeln!(
        out,
        "| members removed by reapers / changes of role | {} / {} |",
        summary.removals, summary.role_changes
    );
    let _ = writeln!(
        out,
        "| promotions that left more voters than the cap (undone by a step-down or a reap) / in scenarios | {} / {} |",
        summary.promotions_over_cap,
        summary.over_cap.len()
    );
    let _ = writeln!(
        out,
        "| simulated time / events / wall | {:.1} h / {} / {:.0} s |",
        summary.sim_time.as_secs_f64() / 3600.0,
        summary.events,
        summary.wall.as_secs_f64()
    );
    if let Some(first) = summary.first_failure {
        let _ = writeln!(out, "| first violation at scenario | #{} |", first + 1);
    }
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, why) in &summary.excused {
        let key = why.split(" (").next().unwrap_or(why);
        let key: String = key
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *reasons.entry(key).or_default() += 1;
    }
    if !reasons.is_empty() {
        let _ = writeln!(out, "\nExcused runs by reason:\n");
        for (why, count) in reasons {
            let _ = writeln!(out, "* {count} × {why}");
        }
        let examples: Vec<String> = summary
            .excused
            .iter()
            .take(5)
            .map(|(s, _)| s.to_string())
            .collect();
        let _ = writeln!(out, "\nExample seeds: {}", examples.join(", "));
    }
    if !summary.over_cap.is_empty() {
        let mut seeds = summary.over_cap.clone();
        seeds.sort_unstable();
        let list: Vec<String> = seeds.iter().take(5).map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "\nPromotions beyond the cap, e.g. seeds: {}",
            list.join(", ")
        );
    }
    if !summary.windows.is_empty() {
        let list: Vec<String> = summary
            .windows
            .iter()
            .take(20)
            .map(u64::to_string)
            .collect();
        let _ = writeln!(out, "\nSeed-isolation window seeds: {}", list.join(", "));
    }
    if !summary.failed.is_empty() {
        let mut classes: std::collections::BTreeMap<String, (usize, Vec<u64>)> = Default::default();
        for outcome in &summary.failed {
            let mut seen = std::collections::BTreeSet::new();
            for v in &outcome.violations {
                let class = violation_class(v);
                if seen.insert(class.clone()) {
                    let entry = classes.entry(class).or_default();
                    entry.0 += 1;
                    if entry.1.len() < 5 {
                        entry.1.push(outcome.seed);
                    }
                }
            }
        }
        let _ = writeln!(out, "\nViolations by class (scenarios; example seeds):\n");
        for (class, (count, seeds)) in &classes {
            let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "* {count} × {class} — e.g. {}", seeds.join(", "));
        }
        let _ = writeln!(
            out,
            "\nFirst violations in detail (replay with `rq4d-sim replay --seed S{broken_flag}`):\n"
        );
        for outcome in summary.failed.iter().take(12) {
            for v in outcome.violations.iter().take(3) {
                let _ = writeln!(
                    out,
                    "* seed {} ({} nodes): {} at {:.3}s — {}",
                    outcome.seed,
                    outcome.size,
                    v.kind,
                    v.at.as_secs_f64(),
                    v.detail
                );
            }
        }
    }
    out
}

/// A violation's class for the summary: its kind, and the diagnosis of a liveness failure.
pub fn violation_class(v: &Violation) -> String {
    let diagnosis = v
        .detail
        .split_once(" (")
        .and_then(|(_, rest)| rest.split(':').next())
        .filter(|_| v.kind == Kind::NotConverged)
        .unwrap_or("");
    if diagnosis.is_empty() {
        v.kind.to_string()
    } else {
        format!("{} ({diagnosis})", v.kind)
    }
}
