//! The report's SVG plots: one line chart per figure, rq4d's series beside the reference
//! models'.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use super::figures::{FRACTIONS, FalseDownCell, Formation, LOSSES, PCT};
use crate::measure::{self, Membership};
use crate::reference;

type Series = (String, RGBColor, Vec<(f64, f64)>);

/// One line chart with a point per value, written to `path` (nothing when there is no point).
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

/// `spread.svg`: a node joins; time until a fraction of the others see it, against Serf.
pub(super) fn plot_spread(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
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

/// `detect.svg`: a node crashes; time until a fraction of the others see it down, against
/// memberlist.
pub(super) fn plot_detect(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
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

/// `false-downs.svg`: false downs per node-hour by loss rate, against memberlist's suspicions.
pub(super) fn plot_false_downs(path: &Path, cells: &[FalseDownCell]) -> anyhow::Result<()> {
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

/// `bytes.svg`: gossip bytes per second per node, against memberlist.
pub(super) fn plot_bytes(path: &Path, runs: &[Membership]) -> anyhow::Result<()> {
    let ours = runs
        .iter()
        .filter(|m| m.quiet.is_some())
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

/// `formation.svg`: the median formation time by size and loss rate, against rqlite's own.
pub(super) fn plot_formation(path: &Path, formation: &[Formation]) -> anyhow::Result<()> {
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
