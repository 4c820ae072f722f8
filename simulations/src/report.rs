//! The report: markdown tables and SVG plots of the measurements, and the search summary.
//!
//! One idea a file: `figures` — which runs make each figure, and running them; `markdown` — the
//! page; `plots` — the SVG charts; `search_summary` — the scenario search's summary.

mod figures;
mod markdown;
mod plots;
mod search_summary;

use std::time::Instant;

use anyhow::Context;

pub use figures::ReportOptions;
pub use search_summary::{search_markdown, violation_class};

/// Runs the measurements and writes `README.md` and the SVG plots into `options.out`.
pub fn write(options: &ReportOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let started = Instant::now();
    let figures::Figures {
        base,
        lossy,
        formation,
    } = figures::measure(options);

    plots::plot_spread(&options.out.join("spread.svg"), &base)?;
    plots::plot_detect(&options.out.join("detect.svg"), &base)?;
    plots::plot_false_downs(&options.out.join("false-downs.svg"), &lossy)?;
    plots::plot_bytes(&options.out.join("bytes.svg"), &base)?;
    plots::plot_formation(&options.out.join("formation.svg"), &formation)?;

    let markdown = markdown::markdown(options, &base, &lossy, &formation, started.elapsed());
    let file = options.out.join("README.md");
    std::fs::write(&file, markdown).with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("report written to {}", file.display());
    Ok(())
}
