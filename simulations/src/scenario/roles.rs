//! The roles a scenario draws: a voter cap (`--voters N`) the same on every node, and read-only
//! replicas (`--read-only`).
//!
//! Drawn after everything else, so that every earlier draw of a seed stays what it was. The
//! cap is odd and at least `expect` (the daemon refuses anything else), and smaller than the
//! eligible nodes whenever the draw allows, so that some nodes start beyond it. A read-only
//! replica is either one of the initial set — only while the set keeps `expect` eligible nodes,
//! and the hosts still running at the end do too — or a host added beside it, started at a
//! random time and sometimes crashed or scaled away before the faults end (a dead non-voter is
//! reaped like any member).

use std::collections::BTreeSet;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::node_id;
use crate::world::Action;

/// How often a scenario runs under a voter cap.
const CAPPED: f64 = 0.35;
/// How often a scenario has read-only replicas.
const WITH_READ_ONLY: f64 = 0.25;
/// The most read-only replicas a scenario has.
const MOST_READ_ONLY: usize = 3;

/// The roles of a scenario's nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// `--voters` on every node (`None`: every eligible node votes).
    pub voter_cap: Option<u16>,
    /// The read-only hosts, in order.
    pub read_only: Vec<usize>,
}

impl Roles {
    /// The roles in the scenario's one-line description (empty when there are none).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(cap) = self.voter_cap {
            out.push_str(&format!(", voters ≤ {cap}"));
        }
        if !self.read_only.is_empty() {
            let ids: Vec<String> = self
                .read_only
                .iter()
                .map(|&h| node_id(h).to_string())
                .collect();
            out.push_str(&format!(", read-only {}", ids.join(",")));
        }
        out
    }
}

/// Draws the roles of a scenario of `size` initial nodes expecting `expect`, whose `hosts`
/// (initial, replacements and scale-ups) `actions` play until `quiet_from`. Read-only hosts
/// added beside them are appended to `hosts`, with their starts and faults in `actions`.
pub(super) fn draw_roles(
    rng: &mut SmallRng,
    size: usize,
    expect: usize,
    hosts: &mut usize,
    quiet_from: Duration,
    actions: &mut Vec<(Duration, Action)>,
) -> Roles {
    let gone: BTreeSet<usize> = actions
        .iter()
        .filter_map(|(_, action)| match action {
            Action::ScaleDown { host } | Action::Replace { host, .. } => Some(*host),
            _ => None,
        })
        .collect();
    let mut read_only = BTreeSet::new();
    let count = if rng.random_bool(WITH_READ_ONLY) {
        rng.random_range(1..=MOST_READ_ONLY)
    } else {
        0
    };
    for _ in 0..count {
        let candidate = rng.random_range(0..size);
        let eligible_after = |set: &BTreeSet<usize>, hosts: usize| {
            let initial = (0..size)
                .filter(|h| !set.contains(h) && *h != candidate)
                .count();
            let at_end = (0..hosts)
                .filter(|h| !gone.contains(h) && !set.contains(h) && *h != candidate)
                .count();
            initial.min(at_end)
        };
        if rng.random_bool(0.5)
            && !read_only.contains(&candidate)
            && eligible_after(&read_only, *hosts) >= expect
        {
            read_only.insert(candidate);
        } else {
            read_only.insert(add_replica(rng, hosts, quiet_from, actions));
        }
    }
    let voter_cap = rng.random_bool(CAPPED).then(|| {
        let eligible = size - read_only.iter().filter(|&&h| h < size).count();
        // Odd, at least `expect`, and below the eligible nodes when it can be.
        let lowest = expect | 1;
        let highest = lowest.max(eligible.saturating_sub(1));
        let steps = (highest - lowest) / 2;
        let cap = lowest + 2 * rng.random_range(0..=steps);
        u16::try_from(cap).unwrap_or(u16::MAX)
    });
    Roles {
        voter_cap,
        read_only: read_only.into_iter().collect(),
    }
}

/// Adds a read-only host beside the others: started at a random time before the faults end (and
/// again at their end, as every host is), and now and then crashed (back at once or at the end,
/// maybe at a new address) or scaled away for good.
fn add_replica(
    rng: &mut SmallRng,
    hosts: &mut usize,
    quiet_from: Duration,
    actions: &mut Vec<(Duration, Action)>,
) -> usize {
    let host = *hosts;
    *hosts += 1;
    let quiet_ms = quiet_from.as_millis() as u64;
    let start = Duration::from_millis(rng.random_range(0..=quiet_ms));
    actions.push((
        start,
        Action::Start {
            host,
            new_address: false,
        },
    ));
    actions.push((
        quiet_from,
        Action::Start {
            host,
            new_address: false,
        },
    ));
    let fault = rng.random_range(0..10);
    let at = start + (quiet_from - start).mul_f64(rng.random::<f64>());
    if at < quiet_from {
        match fault {
            0..=2 => {
                actions.push((at, Action::Crash { host }));
                let back = at + Duration::from_millis(rng.random_range(500..30_000));
                if back < quiet_from {
                    let new_address = rng.random_bool(0.25);
                    actions.push((back, Action::Start { host, new_address }));
                }
            }
            3 => actions.push((at, Action::ScaleDown { host })),
            _ => {}
        }
    }
    host
}
