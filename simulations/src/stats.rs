//! Small statistics over measured durations, shared by the measurements and the report.
//!
//! A leaf module: it exists so that `measure` need not import `report` (which imports
//! `measure`) for a quantile.

use std::time::Duration;

/// The `p`-quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
