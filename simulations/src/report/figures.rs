//! The measurements behind the report: which runs make each figure (sizes, seeds, loss rates,
//! steady windows), run in order, and the figures they give.

use std::path::PathBuf;
use std::time::Duration;

use crate::measure::{self, Knobs, Limits, Membership, MembershipRun};

/// What `rq4d-sim report` writes.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Cluster sizes for the membership figures.
    pub sizes: Vec<usize>,
    /// Seeds per formation measurement.
    pub formation_runs: usize,
    /// Stop a membership run that takes longer than this (wall).
    pub wall_limit: Duration,
    /// `card_sync` for clusters of 1 000 nodes and more (the daemon's 1 s elsewhere).
    pub large_card_sync: Duration,
    /// Membership runs of this many nodes and more start with the membership restored
    /// (`World::restore_full_membership`) instead of gossiped up.
    pub restore_from: usize,
    /// The false-down runs at 5, 10 and 20 % loss, and the extra seeds at 0 %, are made up to
    /// this many nodes (at 1 000 nodes the 20 % run alone takes 20 minutes on the 2-core
    /// machine).
    pub lossy_up_to: usize,
    /// The command line that regenerates the report.
    pub command: String,
}

/// The false-down runs that only measure a steady window (every cell's runs but the first
/// seed of the lossless one, which is also the spread and detection run) start with the
/// membership restored from this size on: how the members came to know each other does not
/// change the steady state they measure, and each gossiped-up warm-up of 1 000 nodes costs tens
/// of wall minutes on the 2-core machine.
pub(super) const STEADY_RESTORED_FROM: usize = 1000;

/// The loss rates of the false-down and formation figures.
pub(super) const LOSSES: [f64; 4] = [0.0, 0.05, 0.10, 0.20];
/// The fractions of the spread and detection figures, as their labels…
pub(super) const PCT: [&str; 3] = ["50 %", "99 %", "99.9 %"];
/// … and as fractions.
pub(super) const FRACTIONS: [f64; 3] = [0.5, 0.99, 0.999];

/// Seeds per false-down cell: wrong verdicts are rare events, so one seed says little about a
/// cell (at 20 % loss, 100 nodes gave 0 and 17 per node-hour on two seeds). Many where runs
/// are cheap; one at 1 000 nodes, where each costs minutes.
pub(super) fn false_down_seeds(n: usize) -> u64 {
    match n {
        0..=20 => 10,
        21..=200 => 5,
        _ => 1,
    }
}

/// Seeds per spread and detection figure: where in the probe cycle a crash falls moves the
/// time to see it down by seconds (at 10 nodes 5.0–8.5 s over 12 seeds, at 100 nodes 9.5–15.6
/// s over 4), so one run says little; many where runs are cheap.
pub(super) fn event_seeds(n: usize) -> u64 {
    match n {
        0..=20 => 20,
        21..=200 => 10,
        _ => 1,
    }
}

/// The false-down figure of one size and loss rate, over the runs of its seeds.
#[derive(Clone, Debug)]
pub(super) struct FalseDownCell {
    /// Nodes.
    pub(super) n: usize,
    /// Loss on every link.
    pub(super) loss: f64,
    /// The runs that completed.
    pub(super) runs: Vec<Membership>,
    /// Why the others did not, by seed.
    pub(super) incomplete: Vec<String>,
}

impl FalseDownCell {
    /// Node-hours observed over the runs.
    pub(super) fn node_hours(&self) -> f64 {
        self.runs.iter().map(Membership::node_hours).sum()
    }

    /// All false downs over all node-hours observed.
    pub(super) fn per_node_hour(&self) -> f64 {
        let downs: u64 = self.runs.iter().map(|m| m.false_downs).sum();
        downs as f64 / self.node_hours().max(f64::MIN_POSITIVE)
    }

    /// The lowest and highest rate of one seed.
    pub(super) fn range(&self) -> (f64, f64) {
        self.runs
            .iter()
            .map(Membership::false_downs_per_node_hour)
            .fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }
}

/// The steady window of a membership run of `n` nodes: long where runs are cheap.
fn steady_for(n: usize) -> Duration {
    match n {
        0..=20 => Duration::from_secs(600),
        21..=200 => Duration::from_secs(300),
        _ => Duration::from_secs(60),
    }
}

/// What the report shows, measured.
pub(super) struct Figures {
    /// One membership run per size (the first seed, lossless, with a join and a crash).
    pub(super) base: Vec<Membership>,
    /// The false-down cells, by size and loss rate.
    pub(super) lossy: Vec<FalseDownCell>,
    /// Formation times by size and loss rate, one per seed (`None`: did not form).
    pub(super) formation: Vec<Formation>,
}

/// Formation times of one size and loss rate.
pub(super) type Formation = (usize, f64, Vec<Option<Duration>>);

/// Runs the measurements of the report, saying on stderr what it is doing.
pub(super) fn measure(options: &ReportOptions) -> Figures {
    let limits = Limits {
        memory: 16u64 << 30,
        wall: options.wall_limit,
    };

    let mut base: Vec<Membership> = Vec::new();
    let mut lossy: Vec<FalseDownCell> = Vec::new();
    for &n in &options.sizes {
        eprintln!("membership, {n} nodes …");
        let knobs = if n >= 1000 {
            Knobs {
                card_sync: options.large_card_sync,
                ..Knobs::daemon()
            }
        } else {
            Knobs::daemon()
        };
        let spec = MembershipRun {
            n,
            loss: 0.0,
            steady: steady_for(n),
            seed: 11,
            restore: n >= options.restore_from,
            join_and_crash: true,
        };
        let run = measure::membership(&spec, &knobs, limits);
        eprintln!(
            "  done in {:.0} s{}",
            run.wall.as_secs_f64(),
            run.note
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})"))
        );
        if run.note.is_some() {
            base.push(run);
            continue;
        }
        // The join and the crash again on more seeds, pooled into the spread and detection
        // figures of `base` (the steady figures stay the first seed's).
        let mut pooled = run.clone();
        for seed in spec.seed + 1..spec.seed + event_seeds(n) {
            eprintln!("  join and crash, seed {seed} …");
            let again = measure::membership(
                &MembershipRun {
                    seed,
                    ..spec.clone()
                },
                &knobs,
                limits,
            );
            if again.note.is_none() {
                pooled.pool(&again);
            }
        }
        base.push(pooled);
        // The run above is the first seed of the lossless cell; beyond `lossy_up_to`, the
        // only run of it.
        let (losses, seeds) = if n <= options.lossy_up_to {
            (&LOSSES[..], false_down_seeds(n))
        } else {
            (&LOSSES[..1], 1)
        };
        for &loss in losses {
            let mut cell = FalseDownCell {
                n,
                loss,
                runs: Vec::new(),
                incomplete: Vec::new(),
            };
            for seed in spec.seed..spec.seed + seeds {
                let m = if loss == 0.0 && seed == spec.seed {
                    run.clone()
                } else {
                    eprintln!("  false downs, loss {:.0} %, seed {seed} …", loss * 100.0);
                    let steady_only = MembershipRun {
                        loss,
                        seed,
                        join_and_crash: false,
                        restore: spec.restore || n >= STEADY_RESTORED_FROM,
                        ..spec.clone()
                    };
                    measure::membership(&steady_only, &knobs, limits)
                };
                match m.note {
                    None => cell.runs.push(m),
                    Some(note) => cell.incomplete.push(format!("seed {seed}: {note}")),
                }
            }
            lossy.push(cell);
        }
    }
    let mut formation: Vec<Formation> = Vec::new();
    for n in 3..=15 {
        for &loss in &LOSSES {
            eprintln!("formation, {n} nodes, loss {:.0} % …", loss * 100.0);
            formation.push((
                n,
                loss,
                measure::formation_times(n, loss, options.formation_runs, 5),
            ));
        }
    }
    Figures {
        base,
        lossy,
        formation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, steady_secs: u64, false_downs: u64) -> Membership {
        Membership {
            n,
            steady: Duration::from_secs(steady_secs),
            false_downs,
            ..Membership::default()
        }
    }

    #[test]
    fn a_false_down_cell_pools_its_seeds_and_keeps_their_range() {
        // 10 nodes × 360 s = 1 node-hour per seed.
        let cell = FalseDownCell {
            n: 10,
            loss: 0.2,
            runs: vec![run(10, 360, 0), run(10, 360, 6), run(10, 360, 3)],
            incomplete: Vec::new(),
        };
        assert!((cell.node_hours() - 3.0).abs() < 1e-9);
        assert!(
            (cell.per_node_hour() - 3.0).abs() < 1e-9,
            "9 over 3 node-hours"
        );
        assert_eq!(cell.range(), (0.0, 6.0));
    }
}
