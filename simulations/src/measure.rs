//! The measurements behind the report's figures, and the large-run benchmark.
//!
//! Membership figures run nodes whose database state is fixed (already `Running` members of one
//! cluster), so they measure gossip, not bootstrap. Formation figures run the full world: the
//! rqlite model, the supervisor and the protocol, from a simultaneous start to one cluster.

use std::time::{Duration, Instant};

use rq4d_protocol::{DbState, NodeConfig, NodeId, Running};

use crate::invariants;
use crate::network::LinkParams;
use crate::scenario::node_id;
use crate::stats::quantile;
use crate::world::{Action, World, WorldConfig};

/// Nodes above this size hear of only a sample of the DNS answer (as real resolvers truncate).
const DNS_SAMPLE_ABOVE: usize = 32;
/// Records per DNS answer for large clusters.
const DNS_SAMPLE: usize = 16;

/// From this size on, membership runs start with the membership restored
/// ([`World::restore_full_membership`]) instead of gossiping it up from nothing: above 1 000
/// nodes a simultaneous start costs millions of datagrams, each an O(N) scan of foca's member
/// list, before any figure can be taken (bench.md). The report's sizes (up to 1 000) are all
/// gossiped up.
pub const RESTORE_FROM: usize = 1001;

/// Membership runs of this many nodes and more print a progress line per simulated second of
/// their warm-up (at 1 000 nodes one costs minutes of wall time).
const PROGRESS_FROM: usize = 500;

/// Memory one (node, member) pair costs in a membership run: measured 0.92 GiB for the
/// 10⁶ pairs of 1 000 restored nodes (foca's member, the node's member map, the card table).
pub const BYTES_PER_PAIR: u64 = 990;

/// The memory `n` nodes that each know every other need, by [`BYTES_PER_PAIR`].
pub fn full_membership_bytes(n: usize) -> u64 {
    (n as u64)
        .saturating_mul(n as u64)
        .saturating_mul(BYTES_PER_PAIR)
}

/// A run refused before it starts: the full membership of its nodes would not fit in memory.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "not attempted: {nodes} nodes that each know every other need about {:.0} GB ({nodes}² pairs × {BYTES_PER_PAIR} bytes, measured at 1 000 nodes), past this run's limit of {} GiB",
    full_membership_bytes(*nodes) as f64 / 1e9,
    limit >> 30
)]
pub struct TooLarge {
    /// Nodes asked for.
    pub nodes: usize,
    /// The memory limit of the run (bytes).
    pub limit: u64,
}

/// Refuses a run of `n` nodes that [`full_membership_bytes`] puts past `memory_limit`.
fn check_size(n: usize, memory_limit: u64) -> Result<(), TooLarge> {
    if full_membership_bytes(n) > memory_limit {
        Err(TooLarge {
            nodes: n,
            limit: memory_limit,
        })
    } else {
        Ok(())
    }
}

/// The knobs a large run sets (stated in the report).
#[derive(Clone, Debug)]
pub struct Knobs {
    /// `push_all_up_to`.
    pub push_all_up_to: usize,
    /// `relay_fanout`.
    pub relay_fanout: usize,
    /// `card_sync`.
    pub card_sync: Duration,
}

impl Knobs {
    /// The daemon's values (`NodeConfig`'s defaults) for every size: the figures show the
    /// shipped defaults.
    pub fn daemon() -> Self {
        Self {
            push_all_up_to: NodeConfig::PUSH_ALL_UP_TO,
            relay_fanout: NodeConfig::RELAY_FANOUT,
            card_sync: NodeConfig::CARD_SYNC,
        }
    }
}

/// A world of `n` nodes already members of one running cluster, not started yet.
fn membership_world(n: usize, loss: f64, seed: u64, knobs: &Knobs) -> World {
    let mut config = WorldConfig::daemon_defaults(seed, 3);
    config.rqlite = false;
    config.track_agreement = false;
    // 2023-11-14 in Unix milliseconds: the size of the daemon's generations on the wire.
    config.generation_base = 1_700_000_000_000;
    config.dns_limit = (n > DNS_SAMPLE_ABOVE).then_some(DNS_SAMPLE);
    config.link = LinkParams {
        loss,
        ..LinkParams::lan()
    };
    config.push_all_up_to = knobs.push_all_up_to;
    config.relay_fanout = knobs.relay_fanout;
    config.card_sync = knobs.card_sync;
    let mut world = World::new(config, invariants::judge);
    let leader = node_id(0);
    let voters = u16::try_from(n.min(5)).unwrap_or(5);
    for h in 0..n + 1 {
        let db = DbState::Running(Running {
            leader: Some(leader.clone()),
            term: 1,
            voters,
            voter: h < usize::from(voters),
            non_voter: false,
        });
        world.add_host(node_id(h), h < n, db);
    }
    world
}

/// The membership figures of one cluster size.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    /// Nodes.
    pub n: usize,
    /// Loss rate of the run.
    pub loss: f64,
    /// Time for every node to see every other alive after a simultaneous start.
    pub warmup: Option<Duration>,
    /// Time until the start's traffic has died down ([`quiet`]): the steady window of a
    /// lossless run opens then (a lossy run's at `warmup`).
    pub quiet: Option<Duration>,
    /// The membership was restored at the start instead of gossiped up ([`RESTORE_FROM`]).
    pub restored: bool,
    /// Time for a joining node to be seen up by 50 %, 99 %, 99.9 % of the nodes (of every
    /// node in every pooled run: see [`Membership::pool`]).
    pub spread: [Option<Duration>; 3],
    /// Time for a crashed node to be seen down by 50 %, 99 %, 99.9 % of the nodes.
    pub detect: [Option<Duration>; 3],
    /// The runs whose join and crash the two figures above pool.
    pub seeds: usize,
    /// Each observer's time to see the joiner up, of every pooled run, and how many observed.
    pub(crate) spread_times: (Vec<Duration>, usize),
    /// Each observer's time to see the crashed node down, likewise.
    pub(crate) detect_times: (Vec<Duration>, usize),
    /// Wrong "down" verdicts in the steady window (one per observer and subject).
    pub false_downs: u64,
    /// Gossip bytes sent per node per second in the steady window (all datagrams).
    pub bytes_per_node_sec: f64,
    /// Of those bytes, per node per second: foca's SWIM messages and the card layer's.
    pub swim_cards_per_node_sec: (f64, f64),
    /// Datagrams sent per node per second in the steady window.
    pub datagrams_per_node_sec: f64,
    /// Length of the steady window.
    pub steady: Duration,
    /// Wall time of the run.
    pub wall: Duration,
    /// Events processed.
    pub events: u64,
    /// Peak resident memory of the process after the run (bytes).
    pub peak_rss: Option<u64>,
    /// Why the run stopped early, if it did.
    pub note: Option<String>,
}

impl Membership {
    /// Adds the join and the crash of `other` (a run of the same size on another seed) to the
    /// spread and detection figures: one run's crash is one draw of where in the probe cycle
    /// it falls (at 10 nodes, 5.0 to 8.5 s to be seen down over 12 seeds), too few to compare
    /// two versions of the code by.
    pub fn pool(&mut self, other: &Membership) {
        for (mine, theirs) in [
            (&mut self.spread_times, &other.spread_times),
            (&mut self.detect_times, &other.detect_times),
        ] {
            mine.0.extend_from_slice(&theirs.0);
            mine.1 += theirs.1;
        }
        self.seeds += other.seeds;
        self.spread = fractions(self.spread_times.0.clone(), self.spread_times.1);
        self.detect = fractions(self.detect_times.0.clone(), self.detect_times.1);
    }

    /// Node-hours observed in the steady window.
    pub fn node_hours(&self) -> f64 {
        self.steady.as_secs_f64() * self.n as f64 / 3600.0
    }

    /// [`Membership::false_downs`] per node-hour.
    pub fn false_downs_per_node_hour(&self) -> f64 {
        self.false_downs as f64 / self.node_hours().max(f64::MIN_POSITIVE)
    }
}

const FRACTIONS: [f64; 3] = [0.5, 0.99, 0.999];

fn fractions(mut times: Vec<Duration>, population: usize) -> [Option<Duration>; 3] {
    times.sort();
    FRACTIONS.map(|p| {
        let needed = ((p * population as f64).ceil() as usize).max(1);
        (needed <= times.len()).then(|| times[needed - 1])
    })
}

fn alive_views_complete(world: &World, n: usize) -> bool {
    world.live_hosts().all(|h| {
        world.hosts[h]
            .node
            .as_ref()
            .is_some_and(|node| node.members().values().filter(|m| m.alive).count() + 1 >= n)
    })
}

/// The start is over for the network: every live node holds every card ([`cards_settled`]) and
/// SWIM has piggybacked every update as often as it passes one on ([`Node::swim_backlog`]).
/// Until then the traffic is the start's, not the steady state's: a simultaneous start of
/// 1 000 nodes leaves each node a thousand updates to pass on and a thousand cards to fetch,
/// seconds after the last node has seen the last member (the window that opened at "all see
/// all" measured 4.3 kB/s per node, mostly that backlog).
///
/// [`Node::swim_backlog`]: rq4d_protocol::node::Node::swim_backlog
pub fn quiet(world: &World) -> bool {
    world.live_nodes().all(|node| node.swim_backlog() == 0) && cards_settled(world)
}

/// How many live members a node of `n` sees, on average (for progress lines and notes).
fn mean_live_view(world: &World, n: usize) -> f64 {
    world
        .live_nodes()
        .map(|node| node.members().values().filter(|m| m.alive).count() as f64)
        .sum::<f64>()
        / n.max(1) as f64
}

/// What is left of the start's traffic, for progress lines.
fn start_traffic(world: &World) -> String {
    let backlog: usize = world.live_nodes().map(|node| node.swim_backlog()).sum();
    format!(
        "SWIM backlog {backlog} updates, {} cards missing",
        unsettled_cards(world)
    )
}

/// Every live node holds, for every other live node, the card that node currently carries:
/// the card layer has nothing left to carry, as the membership has nothing left to tell.
/// (Anti-entropy's tallies are then equal everywhere, and the steady state is steady for cards
/// as well as for SWIM.)
pub fn cards_settled(world: &World) -> bool {
    unsettled_cards(world) == 0
}

/// How many (holder, subject) pairs of live nodes lack the subject's current card.
pub fn unsettled_cards(world: &World) -> usize {
    let current: Vec<&rq4d_protocol::card::Card> =
        world.live_nodes().map(|node| node.card()).collect();
    world
        .live_nodes()
        .map(|holder| {
            current
                .iter()
                .filter(|card| card.node_id != holder.card().node_id)
                .filter(|card| {
                    holder
                        .cards()
                        .get(&card.node_id)
                        .is_none_or(|held| held.stamp() != card.stamp())
                })
                .count()
        })
        .sum()
}

/// Where a membership run stops early (and says so).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Resident memory of the process.
    pub memory: u64,
    /// Wall time of the warm-up.
    pub wall: Duration,
}

/// What one membership run does.
#[derive(Clone, Debug)]
pub struct MembershipRun {
    /// Nodes.
    pub n: usize,
    /// Loss rate on every link.
    pub loss: f64,
    /// The window in which bytes and false verdicts are counted.
    pub steady: Duration,
    /// The world's seed.
    pub seed: u64,
    /// Restore the membership at the start instead of gossiping it up.
    pub restore: bool,
    /// After the steady window, a node joins and then another crashes (the spread and
    /// detection figures: 150 simulated seconds more). The lossy runs, which only count false
    /// verdicts, skip it.
    pub join_and_crash: bool,
}

/// Runs the membership measurements `run` names; `limits` stop the run early (reported), and a
/// run too large for the memory limit is not attempted.
pub fn membership(run: &MembershipRun, knobs: &Knobs, limits: Limits) -> Membership {
    let MembershipRun {
        n,
        loss,
        steady,
        seed,
        restore,
        join_and_crash,
    } = *run;
    let Limits {
        memory: memory_limit,
        wall: wall_limit,
    } = limits;
    let started = Instant::now();
    let mut out = Membership {
        n,
        loss,
        steady,
        ..Membership::default()
    };
    if let Err(refused) = check_size(n, memory_limit) {
        out.note = Some(refused.to_string());
        return out;
    }
    let mut world = membership_world(n, loss, seed, knobs);
    if restore {
        start_restored(&mut world, n);
        out.restored = true;
    } else {
        start_gossiped(&mut world, n);
    }
    // Warm-up: everyone sees everyone; then the quiet, before the steady window opens.
    let warm_limit = Duration::from_secs(600);
    let mut t = Duration::from_secs(1);
    while t <= warm_limit {
        world.run_until(t);
        if out.warmup.is_none() && alive_views_complete(&world, n) {
            out.warmup = Some(t);
        }
        // A lossless run's window waits for the quiet; a lossy one never gets quiet (each
        // wrong verdict and its renewal are news to pass on) and counts only false downs,
        // from "all see all" on.
        if out.warmup.is_some() && (loss > 0.0 || quiet(&world)) {
            out.quiet = (loss == 0.0).then_some(t);
            break;
        }
        if n >= PROGRESS_FROM {
            eprintln!(
                "  … N = {n}: {:.0} simulated s, {:.0} wall s; {}",
                t.as_secs_f64(),
                started.elapsed().as_secs_f64(),
                start_traffic(&world)
            );
        }
        if rss_bytes().is_some_and(|rss| rss > memory_limit) {
            out.note = Some(format!(
                "stopped during warm-up at {:.0} simulated s: the process passed {} GiB",
                t.as_secs_f64(),
                memory_limit >> 30
            ));
            return finish(out, &world, started);
        }
        if started.elapsed() > wall_limit {
            let mean = mean_live_view(&world, n);
            out.note = Some(format!(
                "stopped during warm-up after {:.0} wall s at {:.0} simulated s, each node seeing {mean:.0} of {n} members on average",
                started.elapsed().as_secs_f64(),
                t.as_secs_f64()
            ));
            return finish(out, &world, started);
        }
        t += Duration::from_secs(1);
    }
    if out.warmup.is_none() {
        out.note = Some("membership did not complete within 600 s".into());
        return finish(out, &world, started);
    }
    if out.quiet.is_none() && loss == 0.0 {
        out.note = Some("the start's traffic did not die down within 600 s".into());
        return finish(out, &world, started);
    }
    // Steady window: no change at all; count bytes and wrong verdicts.
    let bytes_before = world.net.stats.bytes_sent;
    let kinds_before = world.net.stats.bytes_by_kind;
    let sent_before = world.net.stats.sent;
    let false_before = world.counters.false_downs;
    let from = world.now;
    world.run_until(from + steady);
    let secs = steady.as_secs_f64() * n as f64;
    out.bytes_per_node_sec = (world.net.stats.bytes_sent - bytes_before) as f64 / secs;
    out.datagrams_per_node_sec = (world.net.stats.sent - sent_before) as f64 / secs;
    let kinds = world.net.stats.bytes_by_kind;
    out.swim_cards_per_node_sec = (
        (kinds.swim - kinds_before.swim) as f64 / secs,
        (kinds.cards - kinds_before.cards) as f64 / secs,
    );
    out.false_downs = world.counters.false_downs - false_before;

    if !join_and_crash {
        return finish(out, &world, started);
    }

    // A node joins: how fast do the others see it?
    world.record_members = true;
    let joiner = n;
    let joined_at = world.now;
    world.schedule(
        joined_at,
        Action::Start {
            host: joiner,
            new_address: false,
        },
    );
    world.run_until(joined_at + Duration::from_secs(60));
    let joiner_id = node_id(joiner);
    out.spread_times = (first_seen(&world, &joiner_id, true, joined_at), n);
    out.spread = fractions(out.spread_times.0.clone(), n);

    // A node crashes: how fast do the others see it down?
    world.member_log.clear();
    let victim = 1;
    let crashed_at = world.now;
    world.schedule(crashed_at, Action::Crash { host: victim });
    world.run_until(crashed_at + Duration::from_secs(90));
    let victim_id = node_id(victim);
    out.detect_times = (first_seen(&world, &victim_id, false, crashed_at), n - 1);
    out.detect = fractions(out.detect_times.0.clone(), n - 1);
    out.seeds = 1;
    finish(out, &world, started)
}

/// Starts `n` hosts within the first simulated second, evenly spread; they gossip their
/// membership up from nothing.
fn start_gossiped(world: &mut World, n: usize) {
    for h in 0..n {
        let at = Duration::from_millis((h as u64 * 1000) / n.max(1) as u64);
        world.schedule(
            at,
            Action::Start {
                host: h,
                new_address: false,
            },
        );
    }
}

/// Starts `n` hosts at time zero and restores the full membership in each before any
/// datagram is delivered.
fn start_restored(world: &mut World, n: usize) {
    for h in 0..n {
        world.schedule(
            Duration::ZERO,
            Action::Start {
                host: h,
                new_address: false,
            },
        );
    }
    world.run_until(Duration::ZERO);
    world.restore_full_membership();
}

fn finish(mut out: Membership, world: &World, started: Instant) -> Membership {
    out.wall = started.elapsed();
    out.events = world.counters.events;
    out.peak_rss = peak_rss_bytes();
    out
}

/// For each observer, the delay from `since` to its first up (or down) event about `subject`.
fn first_seen(world: &World, subject: &NodeId, up: bool, since: Duration) -> Vec<Duration> {
    let mut first: std::collections::BTreeMap<usize, Duration> = Default::default();
    for event in &world.member_log {
        if event.up == up && event.subject == *subject && event.at >= since {
            first.entry(event.observer).or_insert(event.at - since);
        }
    }
    first.into_values().collect()
}

/// Time from a simultaneous start to one formed cluster, for one size and loss rate.
pub fn formation(n: usize, loss: f64, seed: u64) -> Option<Duration> {
    let mut config = WorldConfig::daemon_defaults(seed, u16::try_from(n).unwrap_or(u16::MAX));
    config.link = LinkParams {
        loss,
        ..LinkParams::lan()
    };
    let mut world = World::new(config, invariants::judge);
    for h in 0..n {
        world.add_host(node_id(h), true, DbState::Empty);
        world.schedule(
            Duration::ZERO,
            Action::Start {
                host: h,
                new_address: false,
            },
        );
    }
    let mut t = Duration::ZERO;
    let step = Duration::from_millis(100);
    while t < Duration::from_secs(300) {
        t += step;
        world.run_until(t);
        if world.converged() {
            return Some(t);
        }
    }
    None
}

/// Formation times over `runs` seeds: sorted.
pub fn formation_times(n: usize, loss: f64, runs: usize, seed: u64) -> Vec<Option<Duration>> {
    let mut times: Vec<Option<Duration>> = (0..runs)
        .map(|k| {
            formation(
                n,
                loss,
                seed ^ ((n as u64) << 32) ^ (k as u64) << 8 ^ (loss * 1000.0) as u64,
            )
        })
        .collect();
    times.sort_by_key(|t| t.unwrap_or(Duration::MAX));
    times
}

/// The median and 90th percentile of formation times (`None`: some run never formed).
pub fn formation_summary(
    times: &[Option<Duration>],
) -> (Option<Duration>, Option<Duration>, usize) {
    let formed: Vec<Duration> = times.iter().flatten().copied().collect();
    let failed = times.len() - formed.len();
    (quantile(&formed, 0.5), quantile(&formed, 0.9), failed)
}

/// The large-run benchmark.
#[derive(Clone, Debug)]
pub struct Bench {
    /// Nodes.
    pub nodes: usize,
    /// Simulated time reached.
    pub simulated: Duration,
    /// Wall time.
    pub wall: Duration,
    /// Events processed.
    pub events: u64,
    /// Datagrams simulated.
    pub datagrams: u64,
    /// Peak resident memory (bytes).
    pub peak_rss: Option<u64>,
    /// Mean live members seen per node at the end.
    pub mean_view: f64,
    /// Bytes per node per second over the run's second half (SWIM, cards).
    pub swim_cards_per_node_sec: (f64, f64),
    /// Why it stopped early.
    pub note: Option<String>,
}

impl Bench {
    /// One paragraph.
    pub fn describe(&self) -> String {
        let mem = self.peak_rss.map_or_else(
            || "?".into(),
            |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        );
        format!(
            "{} nodes, {:.0} simulated s in {:.1} wall s; peak memory {mem}; {} events, {} datagrams ({:.0} datagrams per wall second); mean live members seen per node at the end {:.0}; bytes per node per second over the second half: {:.0} SWIM + {:.0} cards{}",
            self.nodes,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.events,
            self.datagrams,
            self.datagrams as f64 / self.wall.as_secs_f64().max(1e-9),
            self.mean_view,
            self.swim_cards_per_node_sec.0,
            self.swim_cards_per_node_sec.1,
            self.note
                .as_ref()
                .map_or_else(String::new, |n| format!("; {n}")),
        )
    }
}

/// `nodes` nodes started together (already cluster members), run for `duration` simulated
/// time with the daemon's knobs; with `restore`, their membership restored at the start
/// instead of gossiped up. Refused when the membership cannot fit in 18 GiB of memory; stops
/// early (and says so) past it.
pub fn bench(
    nodes: usize,
    duration: Duration,
    seed: u64,
    knobs: &Knobs,
    wall_limit: Duration,
    restore: bool,
) -> Result<Bench, TooLarge> {
    let started = Instant::now();
    let limit = 18u64 << 30;
    check_size(nodes, limit)?;
    let mut world = membership_world(nodes, 0.0, seed, knobs);
    if restore {
        start_restored(&mut world, nodes);
        eprintln!(
            "  … membership of {nodes} nodes restored in {:.0} wall s, rss {} MiB",
            started.elapsed().as_secs_f64(),
            rss_bytes().unwrap_or(0) >> 20
        );
    } else {
        start_gossiped(&mut world, nodes);
    }
    let mut note = None;
    let mut t = Duration::ZERO;
    // Small steps, so that the wall-time limit is honoured even when one simulated second costs
    // minutes.
    let step = Duration::from_millis(100);
    let mut half = None;
    while t < duration {
        t += step;
        world.run_until(t);
        if half.is_none() && t >= duration / 2 {
            half = Some((t, world.net.stats.bytes_by_kind));
        }
        if t.as_millis().is_multiple_of(10_000) {
            eprintln!(
                "  … {:.0} simulated s, {:.0} wall s, {} datagrams, rss {} MiB; {}",
                t.as_secs_f64(),
                started.elapsed().as_secs_f64(),
                world.net.stats.sent,
                rss_bytes().unwrap_or(0) >> 20,
                start_traffic(&world)
            );
        }
        if rss_bytes().is_some_and(|rss| rss > limit) {
            note = Some(format!(
                "stopped at {:.0} simulated s: the process passed {} GiB",
                t.as_secs_f64(),
                limit >> 30
            ));
            break;
        }
        if started.elapsed() > wall_limit {
            note = Some(format!(
                "stopped at {:.0} simulated s: the wall-time limit of {:.0} s was reached",
                t.as_secs_f64(),
                wall_limit.as_secs_f64()
            ));
            break;
        }
    }
    let mean_view = mean_live_view(&world, nodes);
    let swim_cards_per_node_sec = half.map_or((0.0, 0.0), |(at, before)| {
        let kinds = world.net.stats.bytes_by_kind;
        let secs = (world.now.saturating_sub(at)).as_secs_f64().max(1e-9) * nodes.max(1) as f64;
        (
            (kinds.swim - before.swim) as f64 / secs,
            (kinds.cards - before.cards) as f64 / secs,
        )
    });
    Ok(Bench {
        nodes,
        simulated: world.now,
        wall: started.elapsed(),
        events: world.counters.events,
        datagrams: world.net.stats.sent,
        peak_rss: peak_rss_bytes(),
        mean_view,
        swim_cards_per_node_sec,
        note,
    })
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok()
}

/// Resident memory now (Linux).
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident memory (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crashed(seconds: &[u64], observers: usize) -> Membership {
        let times: Vec<Duration> = seconds.iter().map(|s| Duration::from_secs(*s)).collect();
        Membership {
            detect: fractions(times.clone(), observers),
            detect_times: (times, observers),
            seeds: 1,
            ..Membership::default()
        }
    }

    #[test]
    fn pooled_runs_give_percentiles_over_every_observer_of_every_run() {
        // Two runs of 4 observers: one fast, one slow. The median of the 8 is the fast run's
        // slowest; the 99th percentile the slow run's slowest.
        let mut pooled = crashed(&[5, 5, 6, 6], 4);
        pooled.pool(&crashed(&[8, 8, 9, 9], 4));
        assert_eq!(pooled.seeds, 2);
        assert_eq!(
            pooled.detect,
            [Some(6), Some(9), Some(9)].map(|s| s.map(Duration::from_secs))
        );
        // An observer that never saw it counts against the fraction.
        let mut missing = crashed(&[5, 5, 6, 6], 4);
        missing.pool(&crashed(&[8, 8, 9], 4));
        assert_eq!(missing.detect[1], None, "7 of 8 saw it: not 99 %");
    }
}
