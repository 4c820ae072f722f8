//! The report: markdown tables and SVG plots of the measurements, and the search summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use plotters::prelude::*;

use crate::measure::{self, Knobs, Limits, Membership, MembershipRun};
use crate::reference;
use crate::scenario::LIVENESS_BOUND;
use crate::search::Summary;
use crate::stats::quantile;

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

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{:.1}", d.as_secs_f64()))
}

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

const LOSSES: [f64; 4] = [0.0, 0.05, 0.10, 0.20];
const PCT: [&str; 3] = ["50 %", "99 %", "99.9 %"];
const FRACTIONS: [f64; 3] = [0.5, 0.99, 0.999];

fn ratio(ours: Option<Duration>, reference: Duration) -> String {
    ours.map_or_else(
        || "–".into(),
        |d| format!("{:.2}", d.as_secs_f64() / reference.as_secs_f64().max(1e-9)),
    )
}

/// Seeds per false-down cell: wrong verdicts are rare events, so one seed says little about a
/// cell (at 20 % loss, 100 nodes gave 0 and 17 per node-hour on two seeds). Many where runs
/// are cheap; one at 1 000 nodes, where each costs minutes.
fn false_down_seeds(n: usize) -> u64 {
    match n {
        0..=20 => 10,
        21..=200 => 5,
        _ => 1,
    }
}

/// The false-down figure of one size and loss rate, over the runs of its seeds.
#[derive(Clone, Debug)]
struct FalseDownCell {
    n: usize,
    loss: f64,
    /// The runs that completed.
    runs: Vec<Membership>,
    /// Why the others did not, by seed.
    incomplete: Vec<String>,
}

impl FalseDownCell {
    fn node_hours(&self) -> f64 {
        self.runs.iter().map(Membership::node_hours).sum()
    }

    /// All false downs over all node-hours observed.
    fn per_node_hour(&self) -> f64 {
        let downs: u64 = self.runs.iter().map(|m| m.false_downs).sum();
        downs as f64 / self.node_hours().max(f64::MIN_POSITIVE)
    }

    /// The lowest and highest rate of one seed.
    fn range(&self) -> (f64, f64) {
        self.runs
            .iter()
            .map(Membership::false_downs_per_node_hour)
            .fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }
}

fn steady_for(n: usize) -> Duration {
    match n {
        0..=20 => Duration::from_secs(600),
        21..=200 => Duration::from_secs(300),
        _ => Duration::from_secs(60),
    }
}

/// Runs the measurements and writes `README.md` and the SVG plots into `options.out`.
pub fn write(options: &ReportOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let started = Instant::now();
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
        base.push(run.clone());
        if run.note.is_some() {
            continue;
        }
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
    let mut formation: Vec<(usize, f64, Vec<Option<Duration>>)> = Vec::new();
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

    plot_spread(&options.out.join("spread.svg"), &base)?;
    plot_detect(&options.out.join("detect.svg"), &base)?;
    plot_false_downs(&options.out.join("false-downs.svg"), &lossy)?;
    plot_bytes(&options.out.join("bytes.svg"), &base)?;
    plot_formation(&options.out.join("formation.svg"), &formation)?;

    let markdown = markdown(options, &base, &lossy, &formation, started.elapsed());
    let file = options.out.join("README.md");
    std::fs::write(&file, markdown).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("report written to {}", file.display());
    Ok(())
}

fn markdown(
    options: &ReportOptions,
    base: &[Membership],
    lossy: &[FalseDownCell],
    formation: &[(usize, f64, Vec<Option<Duration>>)],
    took: Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# rq4d in simulation\n");
    let _ = writeln!(
        out,
        "Generated by `rq4d-sim` (crate `simulations/`): many instances of the protocol's `Node` — the code the daemon runs — on a simulated network, driven the way the daemon drives them, against a model of rqlited's membership rules. Deterministic: every figure comes from fixed seeds.\n"
    );
    let _ = writeln!(
        out,
        "Regenerate everything on this page with:\n\n```sh\n{}\n```\n",
        options.command
    );
    let _ = writeln!(
        out,
        "(took {:.0} min on the 2-core development machine).\n",
        took.as_secs_f64() / 60.0
    );
    let card_sync = if options.large_card_sync == Duration::from_secs(1) {
        "`card_sync` 1 s".to_string()
    } else {
        format!(
            "`card_sync` 1 s ({} s from 1 000 nodes up)",
            options.large_card_sync.as_secs_f64()
        )
    };
    let _ = writeln!(
        out,
        "Settings: the daemon's defaults everywhere (tick 250 ms, {card_sync}, `push_all_up_to` 32, `relay_fanout` 2, settle 0, reap-after 60 s) and foca's config from `NodeConfig::swim_config(N)`. Links: 0.5 ms ±50 % per link, 0.2 ms mean exponential jitter; loss as stated. DNS answers hold all records up to 32 nodes, a random sample of 16 above (as real resolvers truncate). Membership runs start every node at once, already a `Running` member of one cluster, so they measure gossip, not bootstrap. From {} nodes on, every node starts with the full membership restored (foca's `apply_many` without broadcast and every card held: `Node::restore_members`), since gossiping it up from nothing costs millions of datagrams before the first figure (bench.md); the figures are taken after a steady window either way.\n",
        options.restore_from
    );

    let _ = writeln!(
        out,
        "## Membership change: a node joins; time until a fraction of the others see it up\n"
    );
    let _ = writeln!(out, "![spread](spread.svg)\n");
    let _ = writeln!(
        out,
        "| N | warm-up (all see all) | rq4d 50 % | 99 % | 99.9 % | Serf model 50 % | 99 % | 99.9 % | ratio 50 % | 99 % | 99.9 % |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for m in base {
        let r = FRACTIONS.map(|p| reference::serf_spread(m.n, p, 0.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            m.n,
            if m.restored {
                "restored".to_string()
            } else {
                secs(m.warmup)
            },
            secs2(m.spread[0]),
            secs2(m.spread[1]),
            secs2(m.spread[2]),
            r[0].as_secs_f64(),
            r[1].as_secs_f64(),
            r[2].as_secs_f64(),
            ratio(m.spread[0], r[0]),
            ratio(m.spread[1], r[1]),
            ratio(m.spread[2], r[2]),
        );
    }
    notes(&mut out, base);

    let _ = writeln!(
        out,
        "\n## Crash detection: a node is killed; time until a fraction of the others see it down\n"
    );
    let _ = writeln!(out, "![detect](detect.svg)\n");
    let _ = writeln!(
        out,
        "| N | rq4d 50 % | 99 % | 99.9 % | memberlist model 50 % | 99 % | 99.9 % | ratio 50 % | 99 % | 99.9 % |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for m in base {
        let r = FRACTIONS.map(|p| reference::memberlist_detection(m.n, p));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            m.n,
            secs2(m.detect[0]),
            secs2(m.detect[1]),
            secs2(m.detect[2]),
            r[0].as_secs_f64(),
            r[1].as_secs_f64(),
            r[2].as_secs_f64(),
            ratio(m.detect[0], r[0]),
            ratio(m.detect[1], r[1]),
            ratio(m.detect[2], r[2]),
        );
    }

    let _ = writeln!(
        out,
        "\n## False \"down\" verdicts per node-hour (no node fails; loss on every link)\n"
    );
    let _ = writeln!(out, "![false downs](false-downs.svg)\n");
    let _ = writeln!(
        out,
        "| N | loss | seeds | node-hours observed | rq4d false downs per node-hour (lowest – highest seed) | memberlist suspicions per node-hour (upper bound of its false downs) | ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for cell in lossy.iter().filter(|c| !c.runs.is_empty()) {
        let r = reference::memberlist_false_suspicions_per_node_hour(cell.loss);
        let ratio = if r > 0.0 {
            format!("{:.2}", cell.per_node_hour() / r)
        } else {
            "–".into()
        };
        let (lo, hi) = cell.range();
        let spread = if cell.runs.len() > 1 {
            format!(" ({lo:.1} – {hi:.1})")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} % | {} | {:.1} | {:.2}{spread} | {:.2} | {ratio} |",
            cell.n,
            cell.loss * 100.0,
            cell.runs.len(),
            cell.node_hours(),
            cell.per_node_hour(),
            r
        );
    }
    let seeds: Vec<String> = options
        .sizes
        .iter()
        .filter(|&&n| n <= options.lossy_up_to)
        .map(|&n| format!("{} at {n} nodes", false_down_seeds(n)))
        .collect();
    let _ = writeln!(
        out,
        "\nSeeds 11, 12, … per cell ({}); the rate is all false downs over all node-hours of the cell. Lossy runs stop after the steady window.",
        seeds.join(", ")
    );
    for cell in lossy {
        for note in &cell.incomplete {
            let _ = writeln!(
                out,
                "\n* N = {}, loss {:.0} %, {note}",
                cell.n,
                cell.loss * 100.0
            );
        }
    }

    let _ = writeln!(
        out,
        "\n## Gossip traffic per node (steady state, no change, no loss)\n"
    );
    let _ = writeln!(out, "![bytes](bytes.svg)\n");
    let _ = writeln!(
        out,
        "| N | rq4d bytes/s per node | datagrams/s per node | memberlist model bytes/s | ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for m in base.iter().filter(|m| m.warmup.is_some()) {
        let r = reference::memberlist_bytes_per_node_sec(m.n);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.0} | {:.2} |",
            m.n,
            m.bytes_per_node_sec,
            m.datagrams_per_node_sec,
            r,
            m.bytes_per_node_sec / r
        );
    }

    let _ = writeln!(
        out,
        "\n## Formation: simultaneous start of N empty nodes (`--expect N`) to one cluster with a leader\n"
    );
    let _ = writeln!(out, "![formation](formation.svg)\n");
    let _ = writeln!(
        out,
        "Median / 90th percentile over {} seeds per cell, in seconds (✗ k: k runs did not form within 300 s). The full world runs: protocol, supervisor and rqlite model (the founders' rqlited notify each other about every second; the first with every founder's notification bootstraps the cluster, whose election takes 1–2 s; joins take ~50 ms).\n",
        options.formation_runs
    );
    let _ = writeln!(out, "| N | loss 0 % | 5 % | 10 % | 20 % |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for n in 3..=15 {
        let cells: Vec<String> = LOSSES
            .iter()
            .map(|&loss| {
                formation
                    .iter()
                    .find(|(fn_, fl, _)| *fn_ == n && *fl == loss)
                    .map_or_else(String::new, |(_, _, times)| {
                        let (median, p90, failed) = measure::formation_summary(times);
                        let fail = if failed > 0 {
                            format!(" ✗ {failed}")
                        } else {
                            String::new()
                        };
                        format!("{} / {}{fail}", secs(median), secs(p90))
                    })
            })
            .collect();
        let _ = writeln!(out, "| {n} | {} |", cells.join(" | "));
    }
    if let Some((_, _, times)) = formation.iter().find(|(n, l, _)| *n == 3 && *l == 0.0) {
        let (median, _, _) = measure::formation_summary(times);
        let _ = writeln!(
            out,
            "\nReference: rqlite's own `-bootstrap-expect 3` forms in 1.13–1.67 s on loopback (rqlite.md); rq4d's median at N = 3, no loss, is {} s: ratio {} against the midpoint 1.4 s. rq4d waits for SWIM to see every member and for a round of acknowledgements; then every founder starts rqlited with `-bootstrap-expect`, as rqlite's own auto-clustering does from the start.",
            secs(median),
            ratio(median, reference::RQLITE_BOOTSTRAP_EXPECT_3)
        );
    }

    let _ = writeln!(
        out,
        "\n## Scenario search, benchmark, reading\n\nThe safety and liveness search (100 000 random scenarios) is in [search.md](search.md), the large-run benchmark in [bench.md](bench.md); each states the command that regenerates it. What the figures say, the sizes not covered and the findings behind the protocol's changes: [analysis.md](analysis.md) (written by hand)."
    );
    out
}

fn secs2(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn notes(out: &mut String, runs: &[Membership]) {
    for m in runs {
        let mem = m.peak_rss.map_or_else(String::new, |b| {
            format!(
                ", peak memory of the process so far {:.2} GiB",
                b as f64 / (1u64 << 30) as f64
            )
        });
        let _ = writeln!(
            out,
            "\n* N = {}: {:.0} s wall, {} events{mem}{}",
            m.n,
            m.wall.as_secs_f64(),
            m.events,
            m.note
                .as_ref()
                .map_or_else(String::new, |n| format!(" — **{n}**")),
        );
    }
}

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[Series],
) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if points.is_empty() {
        return Ok(());
    }
    let x_min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-9;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let draw = |root: &DrawingArea<SVGBackend, plotters::coord::Shift>| -> anyhow::Result<()> {
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                for (label, color, data) in series {
                    let color = *color;
                    chart
                        .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?
                        .label(label.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(data.iter().map(|p| Circle::new(*p, 3, color.filled())))
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }};
        }
        if log_x {
            finish!(
                builder
                    .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0.0..y_max)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
            );
        } else {
            finish!(
                builder
                    .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
            );
        }
        Ok(())
    };
    draw(&root)?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn fraction_series(
    runs: &[Membership],
    pick: impl Fn(&Membership) -> [Option<Duration>; 3],
    model: impl Fn(usize, f64) -> Duration,
    model_name: &str,
) -> Vec<Series> {
    let mut series = Vec::new();
    for (k, label) in PCT.iter().enumerate() {
        let ours: Vec<(f64, f64)> = runs
            .iter()
            .filter_map(|m| pick(m)[k].map(|d| (m.n as f64, d.as_secs_f64())))
            .collect();
        series.push((format!("rq4d {label}"), COLORS[k], ours));
        let theirs: Vec<(f64, f64)> = runs
            .iter()
            .map(|m| (m.n as f64, model(m.n, FRACTIONS[k]).as_secs_f64()))
            .collect();
        series.push((format!("{model_name} {label}"), COLORS[k + 3], theirs));
    }
    series
}

fn plot_spread(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
    let series = fraction_series(
        runs,
        |m| m.spread,
        |n, p| reference::serf_spread(n, p, 0.0),
        "Serf model",
    );
    plot(
        path,
        "A node joins: time until a fraction of nodes see it",
        "nodes (N)",
        "seconds",
        true,
        &series,
    )
}

fn plot_detect(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
    let series = fraction_series(
        runs,
        |m| m.detect,
        reference::memberlist_detection,
        "memberlist model",
    );
    plot(
        path,
        "A node crashes: time until a fraction of nodes see it down",
        "nodes (N)",
        "seconds",
        true,
        &series,
    )
}

fn plot_false_downs(path: &Path, cells: &[FalseDownCell]) -> anyhow::Result<()> {
    let mut sizes: Vec<usize> = cells.iter().map(|c| c.n).collect();
    sizes.dedup();
    let mut series: Vec<Series> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let data = cells
                .iter()
                .filter(|c| c.n == n && !c.runs.is_empty())
                .map(|c| (c.loss * 100.0, c.per_node_hour()))
                .collect();
            (format!("rq4d N = {n}"), COLORS[k % 3], data)
        })
        .collect();
    series.push((
        "memberlist suspicions (bound)".into(),
        COLORS[3],
        LOSSES
            .iter()
            .map(|&l| {
                (
                    l * 100.0,
                    reference::memberlist_false_suspicions_per_node_hour(l),
                )
            })
            .collect(),
    ));
    plot(
        path,
        "False \"down\" verdicts per node-hour",
        "loss (%)",
        "per node-hour",
        false,
        &series,
    )
}

fn plot_bytes(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
    let ours = runs
        .iter()
        .filter(|m| m.warmup.is_some())
        .map(|m| (m.n as f64, m.bytes_per_node_sec))
        .collect();
    let theirs = runs
        .iter()
        .map(|m| (m.n as f64, reference::memberlist_bytes_per_node_sec(m.n)))
        .collect();
    let series = vec![
        ("rq4d".to_string(), COLORS[0], ours),
        ("memberlist model".to_string(), COLORS[3], theirs),
    ];
    plot(
        path,
        "Gossip bytes per second per node (steady state)",
        "nodes (N)",
        "bytes/s",
        true,
        &series,
    )
}

fn plot_formation(
    path: &Path,
    formation: &[(usize, f64, Vec<Option<Duration>>)],
) -> anyhow::Result<()> {
    let mut series: Vec<Series> = LOSSES
        .iter()
        .enumerate()
        .map(|(k, &loss)| {
            let data = formation
                .iter()
                .filter(|(_, l, _)| *l == loss)
                .filter_map(|(n, _, times)| {
                    measure::formation_summary(times)
                        .0
                        .map(|d| (*n as f64, d.as_secs_f64()))
                })
                .collect();
            (
                format!("rq4d median, loss {:.0} %", loss * 100.0),
                COLORS[k],
                data,
            )
        })
        .collect();
    series.push((
        "rqlite -bootstrap-expect (N = 3, loopback)".into(),
        COLORS[4],
        vec![(3.0, reference::RQLITE_BOOTSTRAP_EXPECT_3.as_secs_f64())],
    ));
    plot(
        path,
        "Simultaneous start to one cluster with a leader",
        "nodes (N)",
        "seconds",
        false,
        &series,
    )
}

/// A violation's class for the summary: its kind, and the diagnosis of a liveness failure.
pub fn violation_class(v: &crate::violation::Violation) -> String {
    let diagnosis = v
        .detail
        .split_once(" (")
        .and_then(|(_, rest)| rest.split(':').next())
        .filter(|_| v.kind == crate::violation::Kind::NotConverged)
        .unwrap_or("");
    if diagnosis.is_empty() {
        v.kind.to_string()
    } else {
        format!("{} ({diagnosis})", v.kind)
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
