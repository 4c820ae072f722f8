//! `rq4d-sim`: the simulator's command line.
//!
//! * `rq4d-sim search --scenarios N` — N random scenarios on all cores; prints every violation
//!   with its seed; exits 1 when one is found.
//! * `rq4d-sim replay --seed S` — one scenario, step by step, with a readable trace.
//! * `rq4d-sim report --out simulations/report` — the figures, the table and the SVG plots.
//! * `rq4d-sim bench --nodes 10000 --seconds 60` — wall time, memory and message rate of one
//!   large run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rq4d_protocol::coordinator::Faults;
use rq4d_simulations::measure;
use rq4d_simulations::report::{self, ReportOptions};
use rq4d_simulations::scenario::{Params, Scenario};
use rq4d_simulations::search::{self, Summary};

#[derive(Parser)]
#[command(
    name = "rq4d-sim",
    about = "rq4d's protocol on a simulated network: search, replay, figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs random scenarios and reports every violation with its seed.
    Search {
        /// How many scenarios.
        #[arg(long, default_value_t = 1000)]
        scenarios: usize,
        /// Base seed of the search (scenario k gets a seed derived from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Largest initial set.
        #[arg(long, default_value_t = 15)]
        max_size: usize,
        /// Switch on the deliberately broken rule (bootstrap without agreement).
        #[arg(long)]
        broken: bool,
        /// Stop at the first violation.
        #[arg(long)]
        stop_at_first: bool,
        /// Write every violation (seed, class, detail) to this file.
        #[arg(long)]
        seeds_out: Option<PathBuf>,
    },
    /// Replays one scenario with a readable trace.
    Replay {
        /// The scenario's seed, as printed by `search`.
        #[arg(long)]
        seed: u64,
        /// The deliberately broken rule was on in the search.
        #[arg(long)]
        broken: bool,
        /// Largest initial set the search used.
        #[arg(long, default_value_t = 15)]
        max_size: usize,
        /// Hide membership up/down lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Runs the measurements and writes the report (markdown + SVG).
    Report {
        /// Output directory.
        #[arg(long, default_value = "simulations/report")]
        out: PathBuf,
        /// Cluster sizes for the membership figures.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        sizes: Vec<usize>,
        /// Seeds per formation measurement.
        #[arg(long, default_value_t = 20)]
        formation_runs: usize,
        /// Stop a membership warm-up that takes longer than this many wall seconds.
        #[arg(long, default_value_t = 900)]
        wall_limit: u64,
        /// Card anti-entropy period (seconds) for clusters of 1 000 nodes and more (the
        /// daemon's is 1).
        #[arg(long, default_value_t = 1.0)]
        large_card_sync: f64,
        /// Membership runs of this many nodes and more start with the membership restored
        /// instead of gossiped up from a simultaneous start.
        #[arg(long, default_value_t = measure::RESTORE_FROM)]
        restore_from: usize,
        /// Make the false-down runs at 5, 10 and 20 % loss (and the extra seeds at 0 %) up
        /// to this many nodes.
        #[arg(long, default_value_t = 1000)]
        lossy_up_to: usize,
    },
    /// One large run: wall time, memory, simulated messages per wall second.
    Bench {
        /// Nodes.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Simulated seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Card anti-entropy period in seconds (daemon: 1).
        #[arg(long, default_value_t = 1.0)]
        card_sync: f64,
        /// Push own card changes to everyone up to this many members (daemon: 32).
        #[arg(long, default_value_t = 32)]
        push_all_up_to: usize,
        /// Card relay fanout (daemon: 2).
        #[arg(long, default_value_t = 2)]
        relay_fanout: usize,
        /// Stop after this many wall seconds (the result says how far it got).
        #[arg(long, default_value_t = 600)]
        max_wall: u64,
        /// Start with the membership restored (as the report's runs from 1 000 nodes on)
        /// instead of gossiping it up from a simultaneous start.
        #[arg(long)]
        restore: bool,
    },
}

fn params(max_size: usize, broken: bool) -> Params {
    Params {
        max_size: max_size.max(3),
        faults: Faults {
            bootstrap_without_agreement: broken,
        },
        ..Params::default()
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rq4d-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Search {
            scenarios,
            seed,
            threads,
            max_size,
            broken,
            stop_at_first,
            seeds_out,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let step = (scenarios / 20).max(1);
            let clock = std::time::Instant::now();
            let progress = |k: usize, s: &Summary| {
                if (k + 1).is_multiple_of(step) {
                    eprintln!(
                        "  … {} scenarios, {} violations, {} windows, {:.0} s",
                        s.scenarios,
                        s.failed.len(),
                        s.windows.len(),
                        clock.elapsed().as_secs_f64()
                    );
                }
            };
            let summary = search::search(
                seed,
                scenarios,
                &params(max_size, broken),
                threads,
                stop_at_first,
                Some(&progress),
            );
            print!(
                "{}",
                report::search_markdown(&summary, seed, scenarios, max_size, broken)
            );
            if let Some(path) = seeds_out {
                let mut text = String::new();
                for outcome in &summary.failed {
                    for v in &outcome.violations {
                        text.push_str(&format!(
                            "{} {} {}\n",
                            outcome.seed,
                            report::violation_class(v).replace(' ', "_"),
                            v.detail
                        ));
                    }
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Replay {
            seed,
            broken,
            max_size,
            quiet,
        } => {
            let scenario = Scenario::random(seed, &params(max_size, broken));
            println!("{}", scenario.description);
            let outcome = if quiet {
                scenario.run_quiet()
            } else {
                scenario.run(true)
            };
            for line in &outcome.trace {
                println!("{line}");
            }
            println!("\nfinal state:\n{}", outcome.summary);
            if outcome.violations.is_empty() {
                println!("no violation");
                Ok(ExitCode::SUCCESS)
            } else {
                for v in &outcome.violations {
                    println!(
                        "VIOLATION {} at {:.3}s: {}",
                        v.kind,
                        v.at.as_secs_f64(),
                        v.detail
                    );
                }
                Ok(ExitCode::from(1))
            }
        }
        Command::Report {
            out,
            sizes,
            formation_runs,
            wall_limit,
            large_card_sync,
            restore_from,
            lossy_up_to,
        } => {
            let command = format!(
                "cargo run --release -p rq4d-simulations --bin rq4d-sim -- {}",
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            );
            report::write(&ReportOptions {
                out,
                sizes,
                formation_runs,
                wall_limit: Duration::from_secs(wall_limit),
                large_card_sync: Duration::try_from_secs_f64(large_card_sync)
                    .context("--large-card-sync must be a positive number of seconds")?,
                restore_from,
                lossy_up_to,
                command,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            nodes,
            seconds,
            seed,
            card_sync,
            push_all_up_to,
            relay_fanout,
            max_wall,
            restore,
        } => {
            let knobs = measure::Knobs {
                push_all_up_to,
                relay_fanout,
                card_sync: Duration::try_from_secs_f64(card_sync)
                    .context("--card-sync must be a positive number of seconds")?,
            };
            match measure::bench(
                nodes,
                Duration::from_secs(seconds),
                seed,
                &knobs,
                Duration::from_secs(max_wall),
                restore,
            ) {
                Ok(bench) => {
                    println!("{}", bench.describe());
                    Ok(ExitCode::SUCCESS)
                }
                // Refused for its size: nothing was measured.
                Err(refused) => {
                    println!("{nodes} nodes: {refused}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
