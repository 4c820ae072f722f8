//! The reference models the report compares rq4d with, built from published figures: SWIM
//! (Das, Gupta, Motivala 2002), HashiCorp memberlist's LAN defaults and Serf's convergence model.
//!
//! * **Serf's convergence model** — an update spreads like an epidemic: with gossip every
//!   200 ms to 3 members and no loss, the informed fraction after `k` rounds follows the
//!   logistic curve `f(k) = 1 / (1 + (N − 1)·e^(−r·k))` with `r = 1.5` per round (fanout / 2).
//!   This reproduces Serf's convergence figures (99.9 % after 1.54 s at N = 100, 1.84 s at
//!   1 000, 2.15 s at 10 000). Loss scales `r` by `(1 − loss)`.
//! * **memberlist's timeouts** (LAN defaults) — a crash is first detected after
//!   `e/(e−1)` ≈ 1.58 probe periods of 1 s (SWIM), then suspected for `4·max(1, log10 N)` s,
//!   then the "dead" verdict spreads by the model above: 11 s at N = 100, 15 s at 1 000, 20 s at
//!   10 000, end to end.
//! * **memberlist's false suspicions** — a healthy member is suspected when the direct probe
//!   (ping + ack: 2 datagrams) and all 3 indirect probes (4 datagrams each) fail; each member
//!   is probed about once per second. The suspicion becomes a "down" only if not refuted within
//!   the suspicion timeout, so this rate bounds memberlist's false "down" verdicts from above.
//! * **memberlist's steady traffic** — per node and second: one ping sent and one ack sent
//!   (≈ 2 × 60 B with UDP/IP headers), plus TCP push-pull of the full state (≈ 60 B per member
//!   each way) every 30 s, stretched to `30 s × (⌈log2 N − log2 32⌉ + 1)` above 32 members
//!   (memberlist's `pushPullScale`).

use std::time::Duration;

/// Serf's gossip interval.
const GOSSIP_INTERVAL: f64 = 0.2;
/// Logistic growth per round (fanout 3 / 2), calibrated on Serf's convergence figures.
const GROWTH_PER_ROUND: f64 = 1.5;

/// Time for an update to reach fraction `p` of `n` nodes (Serf's model) at `loss`.
pub fn serf_spread(n: usize, p: f64, loss: f64) -> Duration {
    let n = n.max(2) as f64;
    let rate = GROWTH_PER_ROUND * (1.0 - loss);
    let rounds = ((n - 1.0).ln() + (p / (1.0 - p)).ln()) / rate;
    Duration::from_secs_f64((rounds * GOSSIP_INTERVAL).max(0.0))
}

/// memberlist's suspicion timeout at `n` members (LAN defaults, no Lifeguard stretching).
pub fn memberlist_suspicion(n: usize) -> Duration {
    Duration::from_secs_f64(4.0 * (n.max(1) as f64).log10().max(1.0))
}

/// Time for a crash to be known to fraction `p` of `n` nodes: first detection, suspicion,
/// dissemination (memberlist's timeouts with Serf's spread).
pub fn memberlist_detection(n: usize, p: f64) -> Duration {
    let first = Duration::from_secs_f64(std::f64::consts::E / (std::f64::consts::E - 1.0));
    first + memberlist_suspicion(n) + serf_spread(n, p, 0.0)
}

/// Suspicions of healthy members per node-hour at `loss` (memberlist's probe model).
pub fn memberlist_false_suspicions_per_node_hour(loss: f64) -> f64 {
    let ok = 1.0 - loss;
    let direct_fails = 1.0 - ok * ok;
    let indirect_fails = 1.0 - ok.powi(4);
    3600.0 * direct_fails * indirect_fails.powi(3)
}

/// memberlist's steady gossip bytes per node per second at `n` members.
pub fn memberlist_bytes_per_node_sec(n: usize) -> f64 {
    let probe = 2.0 * 60.0;
    let scale = if n <= 32 {
        1.0
    } else {
        ((n as f64).log2() - 32f64.log2()).ceil() + 1.0
    };
    let push_pull = 2.0 * 60.0 * n as f64 / (30.0 * scale);
    probe + push_pull
}

/// rqlite's own `-bootstrap-expect` formation time measured on loopback for 3 nodes
/// (docs/rqlited.md, "Startup": 1.13–1.67 s); the midpoint.
pub const RQLITE_BOOTSTRAP_EXPECT_3: Duration = Duration::from_millis(1400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_model_reproduces_the_figures_of_gossip_md() {
        for (n, expected) in [(100, 1.54), (1000, 1.84), (10_000, 2.15)] {
            let got = serf_spread(n, 0.999, 0.0).as_secs_f64();
            assert!((got - expected).abs() < 0.02, "N={n}: {got}");
        }
    }

    #[test]
    fn the_detection_model_reproduces_the_figures_of_gossip_md() {
        for (n, expected) in [(100, 11.0), (1000, 15.0), (10_000, 20.0)] {
            let got = memberlist_detection(n, 0.999).as_secs_f64();
            assert!((got - expected).abs() < 0.8, "N={n}: {got}");
        }
    }
}
