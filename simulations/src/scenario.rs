//! Random scenarios: a cluster size, start order, network quality and a list of faults, all
//! drawn from one seed, and the run that checks the properties on them.
//!
//! A scenario is a plain value: [`Scenario::random`] draws it, [`Scenario::run`] plays it in a
//! fresh [`World`]. The same seed draws the same scenario and plays the same run, which is what
//! `rq4d-sim replay --seed S` relies on.
//!
//! Roles are drawn last (see [`draw_roles`]): in a fraction of the scenarios a voter cap, the
//! same on every node, and in another a few read-only replicas — some of the initial set while
//! enough others remain for `expect`, the rest added beside it.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rq4d_protocol::coordinator::Faults;
use rq4d_protocol::seal::{Key, Keyring};
use rq4d_protocol::{DbState, NodeId};

use crate::invariants;
use crate::network::LinkParams;
use crate::violation::{Kind, Violation};
use crate::world::{Action, Convergence, Forgery, World, WorldConfig};

mod roles;

pub use roles::Roles;
use roles::draw_roles;

/// How long after the last fault the cluster must have formed: every live node a voter of one
/// cluster with a leader. Chosen above the slowest formation the search has seen (see the
/// report) with room for rqlited's own timeouts: a failed `-join` takes ~12 s to give up, the
/// restart backoff reaches 30 s, and a leaderless member waits 15 s before a `-join` restart.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(180);
/// How often convergence is checked once the faults are over.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What the generator may draw.
#[derive(Clone, Debug)]
pub struct Params {
    /// Smallest initial set.
    pub min_size: usize,
    /// Largest initial set.
    pub max_size: usize,
    /// Highest loss rate.
    pub max_loss: f64,
    /// Most faults per scenario.
    pub max_faults: usize,
    /// Deliberately broken rules.
    pub faults: Faults,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_size: 3,
            max_size: 15,
            max_loss: 0.30,
            max_faults: 6,
            faults: Faults::default(),
        }
    }
}

/// One scenario. See the module docs.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Size of the initial set.
    pub size: usize,
    /// Hosts in all (initial set, replacements, scale-ups).
    pub hosts: usize,
    /// `--expect`.
    pub expect: u16,
    /// `--volatile`.
    pub volatile: bool,
    /// Links.
    pub link: LinkParams,
    /// DNS lag.
    pub dns_lag: Duration,
    /// What happens when.
    pub actions: Vec<(Duration, Action)>,
    /// When the last fault is over: the network whole, every container that will run started.
    pub quiet_from: Duration,
    /// Broken rules.
    pub faults: Faults,
    /// Every node seals its gossip with a cluster key (and forgeries may come).
    pub keyed: bool,
    /// The voter cap and the read-only replicas.
    pub roles: Roles,
    /// Each host's IP, as an offset from the first: a permutation, so that the order of the
    /// addresses is not the order of the ids (a rule that took one for the other would pass
    /// every scenario otherwise — `-join` lists sorted by address once put a founder not yet
    /// listening ahead of the seed).
    pub ip_offsets: Vec<usize>,
    /// One line describing the draw.
    pub description: String,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The scenario's seed.
    pub seed: u64,
    /// Initial set size.
    pub size: usize,
    /// Safety and liveness violations.
    pub violations: Vec<Violation>,
    /// Double bootstraps explained by the seed-isolation window.
    pub windows: Vec<Violation>,
    /// Time from the end of the faults to a formed cluster.
    pub converged_after: Option<Duration>,
    /// Why a run that did not converge is excused.
    pub excused: Option<String>,
    /// Events processed.
    pub events: u64,
    /// Its nodes sealed their gossip.
    pub keyed: bool,
    /// Its nodes ran under a voter cap.
    pub capped: bool,
    /// Read-only replicas among its hosts.
    pub read_only: usize,
    /// Members removed by the leaders' reapers.
    pub removals: u64,
    /// Changes of role (a node leaving the configuration to rejoin with the other).
    pub role_changes: u64,
    /// Promotions that left more voters than the cap.
    pub promotions_over_cap: u64,
    /// Forged datagrams handed to its nodes (every one must have been refused).
    pub forged: u64,
    /// Virtual time at the end.
    pub sim_time: Duration,
    /// Hash of everything that happened.
    pub digest: u64,
    /// The readable trace, when asked for.
    pub trace: Vec<String>,
    /// Host summary at the end (for failures).
    pub summary: String,
}

/// The node id of host `h`: zero-padded so that id order is host order.
pub fn node_id(h: usize) -> NodeId {
    NodeId::new(format!("n{h:03}")).unwrap_or_else(|_| unreachable_id())
}

fn unreachable_id() -> NodeId {
    // "n000"-style ids are always valid; this keeps clippy's unwrap rule without a panic path.
    NodeId::new("invalid").unwrap_or_else(|_| unreachable_id())
}

impl Scenario {
    /// Draws a scenario from `seed`.
    pub fn random(seed: u64, params: &Params) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let size = rng.random_range(params.min_size..=params.max_size);
        let expect = rng.random_range(size / 2 + 1..=size);
        let volatile = rng.random_bool(0.15);
        let loss = if rng.random_bool(0.3) {
            0.0
        } else {
            rng.random_range(0.0..params.max_loss)
        };
        let link = LinkParams {
            base_latency: Duration::from_micros(rng.random_range(200..10_000)),
            jitter: Duration::from_micros(rng.random_range(0..10_000)),
            loss,
            duplicate: if rng.random_bool(0.5) {
                0.0
            } else {
                rng.random_range(0.0..0.03)
            },
            reorder: if rng.random_bool(0.5) {
                0.0
            } else {
                rng.random_range(0.0..0.1)
            },
            reorder_delay: Duration::from_millis(rng.random_range(0..100)),
        };
        let dns_lag = Duration::from_millis(rng.random_range(0..5000));
        let mut actions = Vec::new();
        let mut hosts = size;

        // Start order.
        let mut order: Vec<usize> = (0..size).collect();
        let style = rng.random_range(0..4);
        let style_name = match style {
            0 => "together",
            1 => {
                order.reverse();
                "reversed"
            }
            _ => {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                "shuffled"
            }
        };
        let gap_ms = match style {
            0 => 0,
            _ => rng.random_range(0..4000),
        };
        let mut t = Duration::ZERO;
        let mut last_start = Duration::ZERO;
        for &h in &order {
            let at = t + Duration::from_millis(rng.random_range(0..=gap_ms.max(100)));
            actions.push((
                at,
                Action::Start {
                    host: h,
                    new_address: false,
                },
            ));
            last_start = last_start.max(at);
            t += Duration::from_millis(gap_ms);
        }

        // Faults.
        let mut quiet_from = last_start;
        let ends = |end: Duration, quiet: &mut Duration| *quiet = (*quiet).max(end);
        let fault_count = rng.random_range(0..=params.max_faults);
        let mut scaled_down = 0usize;
        let mut notes = Vec::new();
        let window_end = last_start + Duration::from_secs(30);
        for _ in 0..fault_count {
            let at = Duration::from_millis(rng.random_range(0..window_end.as_millis() as u64 + 1));
            let kind = rng.random_range(0..10);
            match kind {
                // Crash and restart (same address, or a new one), possibly the seed.
                0..=2 => {
                    let host = if rng.random_bool(0.3) {
                        0
                    } else {
                        rng.random_range(0..size)
                    };
                    let down = Duration::from_millis(rng.random_range(500..30_000));
                    let new_address = rng.random_bool(0.25);
                    actions.push((at, Action::Crash { host }));
                    actions.push((at + down, Action::Start { host, new_address }));
                    ends(at + down, &mut quiet_from);
                    notes.push(format!("crash n{host:03}"));
                }
                // A partition, possibly isolating the seed right when it bootstraps.
                3 | 4 => {
                    let groups = if rng.random_bool(0.4) {
                        vec![vec![0]]
                    } else {
                        let count = rng.random_range(2..=3);
                        let mut groups = vec![Vec::new(); count];
                        for h in 0..hosts {
                            groups[rng.random_range(0..count)].push(h);
                        }
                        groups
                    };
                    let heal = at + Duration::from_millis(rng.random_range(500..20_000));
                    actions.push((at, Action::Partition { groups }));
                    actions.push((heal, Action::Heal));
                    ends(heal, &mut quiet_from);
                    notes.push("partition".into());
                }
                5 => {
                    let count = rng.random_range(1..=size.div_ceil(2));
                    let cut: Vec<usize> = (0..count).map(|_| rng.random_range(0..hosts)).collect();
                    let heal = at + Duration::from_millis(rng.random_range(500..15_000));
                    actions.push((at, Action::CutOneWay { hosts: cut }));
                    actions.push((heal, Action::Heal));
                    ends(heal, &mut quiet_from);
                    notes.push("one-way cut".into());
                }
                6 => {
                    let host = rng.random_range(0..size);
                    let replacement = hosts;
                    hosts += 1;
                    actions.push((at, Action::Replace { host, replacement }));
                    ends(at, &mut quiet_from);
                    notes.push(format!("replace n{host:03}"));
                }
                7 => {
                    let host = hosts;
                    hosts += 1;
                    actions.push((
                        at,
                        Action::Start {
                            host,
                            new_address: false,
                        },
                    ));
                    ends(at, &mut quiet_from);
                    notes.push("scale up".into());
                }
                8 if hosts - scaled_down > expect => {
                    let host = rng.random_range(0..hosts);
                    scaled_down += 1;
                    actions.push((at, Action::ScaleDown { host }));
                    ends(at, &mut quiet_from);
                    notes.push(format!("scale down n{host:03}"));
                }
                _ => {
                    let burst = at + Duration::from_millis(rng.random_range(1000..10_000));
                    actions.push((at, Action::SetLoss(0.5)));
                    actions.push((burst, Action::SetLoss(loss)));
                    ends(burst, &mut quiet_from);
                    notes.push("loss burst".into());
                }
            }
        }
        // The end of the faults: the network whole, everyone who should run running.
        actions.push((quiet_from, Action::Heal));
        actions.push((quiet_from, Action::SetLoss(loss)));
        for host in 0..hosts {
            actions.push((
                quiet_from,
                Action::Start {
                    host,
                    new_address: false,
                },
            ));
        }
        // Drawn last, so that every earlier draw of a seed stays what it was. Volatile mode
        // needs a key, as the daemon insists; a third of the other scenarios seal too.
        let keyed = volatile || rng.random_bool(0.3);
        if keyed {
            notes.push("sealed".into());
            for _ in 0..rng.random_range(0..=3) {
                let at = Duration::from_millis(
                    rng.random_range(0..quiet_from.as_millis() as u64 + 10_000),
                );
                let forgery = match rng.random_range(0..3) {
                    0 => Forgery::Open,
                    1 => Forgery::WrongKey,
                    _ => Forgery::Replay,
                };
                actions.push((at, Action::Forge(forgery)));
                notes.push(format!("forged {forgery:?}"));
            }
        }
        let roles = draw_roles(&mut rng, size, expect, &mut hosts, quiet_from, &mut actions);
        actions.sort_by_key(|(at, _)| *at);
        let mut ip_offsets: Vec<usize> = (0..hosts).collect();
        for i in (1..ip_offsets.len()).rev() {
            ip_offsets.swap(i, rng.random_range(0..=i));
        }
        let description = format!(
            "seed {seed}: {size} nodes, expect {expect}{}{}, start {style_name} (gap {gap_ms} ms), loss {:.0}%, dup {:.1}%, reorder {:.1}%, latency {:?}+{:?}, dns lag {:?}, faults [{}], quiet from {:.1}s",
            if volatile { ", volatile" } else { "" },
            roles.describe(),
            link.loss * 100.0,
            link.duplicate * 100.0,
            link.reorder * 100.0,
            link.base_latency,
            link.jitter,
            dns_lag,
            notes.join(", "),
            quiet_from.as_secs_f64(),
        );
        Self {
            seed,
            size,
            hosts,
            expect: u16::try_from(expect).unwrap_or(u16::MAX),
            volatile,
            link,
            dns_lag,
            actions,
            quiet_from,
            faults: params.faults,
            keyed,
            roles,
            ip_offsets,
            description,
        }
    }

    /// A fresh world with this scenario's hosts and actions.
    pub fn world(&self, trace: bool) -> World {
        self.world_traced(trace, false)
    }

    /// [`Scenario::world`]; `quiet` leaves the trace's noise out.
    fn world_traced(&self, trace: bool, quiet: bool) -> World {
        let mut config = WorldConfig::daemon_defaults(self.seed, self.expect);
        config.volatile = self.volatile;
        config.voter_cap = self.roles.voter_cap;
        config.faults = self.faults;
        config.keyring = self.keyed.then(|| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&self.seed.to_be_bytes());
            Keyring::single(Key::from_bytes(key))
        });
        config.link = self.link.clone();
        config.dns_lag = self.dns_lag;
        config.trace = trace;
        config.quiet = quiet;
        let mut world = World::new(config, invariants::judge);
        for h in 0..self.hosts {
            let offset = self.ip_offsets.get(h).copied().unwrap_or(h);
            world.add_host_at_offset(node_id(h), h < self.size, DbState::Empty, offset);
        }
        for &h in &self.roles.read_only {
            world.make_read_only(h);
        }
        for (at, action) in &self.actions {
            world.schedule(*at, action.clone());
        }
        world
    }

    /// Plays the scenario and checks the properties.
    pub fn run(&self, trace: bool) -> Outcome {
        self.play(self.world(trace), trace)
    }

    /// [`Scenario::run`] with a trace that leaves the noise out (`rq4d-sim replay --quiet`).
    pub fn run_quiet(&self) -> Outcome {
        self.play(self.world_traced(true, true), true)
    }

    fn play(&self, mut world: World, trace: bool) -> Outcome {
        world.run_until(self.quiet_from);
        let deadline = self.quiet_from + LIVENESS_BOUND;
        let mut converged_after = None;
        let mut last = Convergence::Unformed;
        let mut t = self.quiet_from;
        while t <= deadline {
            world.run_until(t);
            last = world.convergence();
            if last == Convergence::Settled {
                converged_after = Some(t - self.quiet_from);
                break;
            }
            t += CHECK_EVERY;
        }
        let mut excused = None;
        let mut violations = world.violations.clone();
        match &last {
            Convergence::Settled => {}
            // Formed, every live node following one leader: nothing rq4d leaves to a human
            // keeps the voters from settling.
            Convergence::Formed(why) => violations.push(Violation {
                kind: Kind::VotersUnsettled,
                at: world.now,
                detail: format!(
                    "one cluster with a leader, but its voters did not settle {LIVENESS_BOUND:?} after the last fault: {why}"
                ),
                window: false,
            }),
            Convergence::Unformed => {
                excused = invariants::excuse(&world);
                if excused.is_none() {
                    let diagnosis = invariants::diagnose(&world)
                        .map_or_else(String::new, |d| format!(" ({d})"));
                    violations.push(Violation {
                        kind: Kind::NotConverged,
                        at: world.now,
                        detail: format!(
                            "no single cluster with a leader {:?} after the last fault{diagnosis}",
                            LIVENESS_BOUND
                        ),
                        window: false,
                    });
                }
            }
        }
        if trace {
            world.trace.push(format!(
                "{:>10.3}s world    end: {}",
                world.now.as_secs_f64(),
                match (converged_after, &excused) {
                    (Some(after), _) => format!(
                        "one cluster with a leader {:.1}s after the last fault",
                        after.as_secs_f64()
                    ),
                    (None, Some(why)) => format!("not converged, excused: {why}"),
                    (None, None) if matches!(last, Convergence::Formed(_)) => {
                        "ONE CLUSTER, VOTERS UNSETTLED".into()
                    }
                    (None, None) => "NOT CONVERGED".into(),
                }
            ));
        }
        Outcome {
            seed: self.seed,
            size: self.size,
            violations,
            windows: world.windows.clone(),
            converged_after,
            excused,
            events: world.counters.events,
            keyed: self.keyed,
            capped: self.roles.voter_cap.is_some(),
            read_only: self.roles.read_only.len(),
            removals: world.counters.removals,
            role_changes: world.counters.role_changes,
            promotions_over_cap: world.counters.promotions_over_cap,
            forged: world.counters.forged,
            sim_time: world.now,
            digest: world.digest,
            summary: world.summary(),
            trace: std::mem::take(&mut world.trace),
        }
    }
}
