//! The properties every run must keep, and how a failure is classified.
//!
//! Safety is checked at the very transitions that can break it, which is the same as checking
//! after every step (nothing else changes a disk or creates a cluster): the world records each
//! such transition as a [`Fact`] and hands it, at that moment, to the judge it was built with;
//! [`judge`] is this module's:
//!
//! * **one bootstrap** — from one initial set with `expect` > half of it, at most one Raft
//!   cluster is bootstrapped by nodes of that set. A second one is a violation, unless it is
//!   the seed-isolation window of ARCHITECTURE.md (every node the two views share acknowledged
//!   the first seed and then saw it declared down before the second bootstrap), which is
//!   counted separately;
//! * **data is kept** — a node whose state counts as data never joins another cluster as a fresh
//!   node, never loses its data outside volatile mode, and never decides to bootstrap;
//! * **honest claims pass** — every simulated node is honest, so a claim refused by the bounds
//!   of `rq4d_protocol::claims` is a bound that misfires (a generation, version or address an
//!   honest node does produce).
//! * **nobody outside changes anything** — in a keyed world, every datagram of a sender without
//!   the key (open, sealed with another key, or a replay of a real one) is refused by the seal
//!   and leaves the node as it was (see `world/forgery.rs`);
//! * **the voters never lose their majority by rq4d's hand** — no change of configuration that
//!   rq4d asks for (the reaper's removal, a node leaving to change its role, a join) turns a
//!   cluster some voter of which reaches a live majority into one none of whose voters does
//!   (a `peers.json` recovery is left out: see [`majority_lost`]). The model measures the majority just before and just after the change,
//!   under the same processes and network: a crash or a partition is never the change, so a
//!   cluster that faults had already left short is no violation, and one rq4d cut short is;
//! * **read-only replicas never vote** — never in a configuration as voters (at a founding or
//!   after any change), and never deciding to found a cluster.
//!
//! Liveness is checked at the end of a scenario: once the network is whole and at least
//! `expect` nodes that are not read-only are up, every live node must be a member (voter or
//! non-voter) of one cluster with a leader all of them see, within
//! [`crate::scenario::LIVENESS_BOUND`]; and the voters must have settled: without a cap, every
//! live node that is not read-only votes; under `--voters N`, the configuration holds exactly
//! `min(N, eligible live nodes)` voters, all of them live (so never more than the cap). A run
//! that does not form is a violation unless it is a situation rq4d leaves to a human by design —
//! fewer than `expect` eligible nodes up, a formation one of whose founders is gone for good, a
//! split outside volatile mode — or one rqlite itself cannot leave: a majority of the
//! configuration not up at its configured addresses while not every voter is back
//! (`peers.json` needs every voter), or it follows a window split. A run that forms and whose
//! voters do not settle has no excuse.

use rq4d_protocol::claims::ClaimError;
use rq4d_protocol::wire::WireError;
use rq4d_protocol::{Agreement, ClusterId, DbState, NodeId, Refusal};

use crate::rqlite::{Change, Reconfiguration};
pub use crate::violation::{Kind, Violation};
use crate::world::{Bootstrap, Fact, Forgery, World};

/// The judge of the properties above: a fact the world records at a transition, judged at that
/// very moment (the world hands it over before it goes on). `None`: the fact breaks nothing.
pub fn judge(world: &World, fact: &Fact<'_>) -> Option<Violation> {
    match *fact {
        Fact::Bootstrapped(bootstrap) => check_bootstrap(world, bootstrap),
        Fact::ClusterFounded { cluster } => {
            check_cluster_id(world, cluster).or_else(|| read_only_voter(world, cluster))
        }
        Fact::Reconfigured { host, change } => {
            majority_lost(world, host, change).or_else(|| read_only_voter(world, change.cluster))
        }
        Fact::Joined {
            host,
            cluster,
            had_data_of,
        } => had_data_of.map(|old| data_joined_other(world, host, old, cluster)),
        Fact::Wiped { host } => (!world.config.volatile).then(|| data_lost(world, host)),
        Fact::DecidedBootstrap { host } => {
            let card_db = world.hosts[host].node.as_ref().map(|n| &n.card().db);
            card_db
                .is_some_and(|db| *db != DbState::Empty)
                .then(|| bootstrap_with_data(world, host))
                .or_else(|| {
                    world.hosts[host]
                        .read_only
                        .then(|| read_only_founder(world, host))
                })
        }
        Fact::ClaimRefused { host, error } => Some(honest_claim_refused(world, host, error)),
        Fact::Forged {
            host,
            forgery,
            outcome,
            changed,
        } => forgery_taken(world, host, forgery, outcome, changed),
    }
}

fn ids(view: &[NodeId]) -> String {
    view.iter()
        .map(NodeId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A forged datagram must be refused by the seal and change nothing.
fn forgery_taken(
    world: &World,
    host: usize,
    forgery: Forgery,
    outcome: &Result<(), Refusal>,
    changed: bool,
) -> Option<Violation> {
    let sealed_out = matches!(outcome, Err(Refusal::Wire(WireError::Seal(_))));
    if sealed_out && !changed {
        return None;
    }
    Some(Violation {
        kind: Kind::ForgeryTaken,
        at: world.now,
        detail: format!(
            "{} {} a forgery ({forgery:?}): {outcome:?}",
            world.hosts[host].id,
            if changed { "was changed by" } else { "took" },
        ),
        window: false,
    })
}

/// A change rq4d asked for took a cluster from a live majority of its voters to none. Only the
/// change differs between the two measures (see [`Reconfiguration`]), so this is rq4d's doing.
///
/// A `peers.json` recovery is not judged: the model applies it to the cluster's one
/// configuration, where rqlited applies it to the recovering node's own log only, and a leader
/// elected meanwhile overwrites it. Judged here, a recovery that races a leader already elected
/// would be charged for the model's shortcut, not for anything rq4d does to the cluster.
fn majority_lost(world: &World, host: usize, change: &Reconfiguration) -> Option<Violation> {
    let what = match change.change {
        Change::Removed => "the leader's reaper removed",
        Change::Left => "a change of role removed",
        Change::Joined { voter: true } => "a join as a voter admitted",
        Change::Joined { voter: false } => "a join as a non-voter admitted",
        Change::Recovered => return None,
    };
    if !change.before.holds() || change.after.holds() {
        return None;
    }
    Some(Violation {
        kind: Kind::MajorityLost,
        at: world.now,
        detail: format!(
            "{what} {} at {}'s request: Raft cluster #{} went from {} of {} voters reached to {} of {}",
            change.subject,
            world.hosts[host].id,
            change.cluster,
            change.before.reached,
            change.before.voters,
            change.after.reached,
            change.after.voters,
        ),
        window: false,
    })
}

/// A read-only replica among a cluster's voters.
fn read_only_voter(world: &World, cluster: usize) -> Option<Violation> {
    let voters = &world.rqlite.clusters.get(cluster)?.voters;
    let id = voters.keys().find(|id| {
        world
            .host_by_id(id)
            .is_some_and(|h| world.hosts[h].read_only)
    })?;
    Some(Violation {
        kind: Kind::ReadOnlyVoter,
        at: world.now,
        detail: format!("read-only {id} is a voter of Raft cluster #{cluster}"),
        window: false,
    })
}

/// A read-only replica decided to found a cluster.
fn read_only_founder(world: &World, host: usize) -> Violation {
    Violation {
        kind: Kind::ReadOnlyVoter,
        at: world.now,
        detail: format!(
            "read-only {} decided to bootstrap a cluster",
            world.hosts[host].id
        ),
        window: false,
    }
}

/// Checks a new bootstrap against the earlier ones.
pub fn check_bootstrap(world: &World, new: &Bootstrap) -> Option<Violation> {
    let n = world.initial_size();
    if usize::from(world.config.expect) * 2 <= n || !new.from_initial_set {
        return None;
    }
    let earlier = world.bootstraps.iter().find(|b| b.from_initial_set)?;
    let first_seed = world.hosts[earlier.host].id.clone();
    let second_seed = world.hosts[new.host].id.clone();
    // Read-only replicas acknowledge no seed: only the eligible shared nodes tell a window.
    let shared: Vec<&NodeId> = earlier
        .view
        .iter()
        .filter(|id| new.view.contains(id) && **id != first_seed && **id != second_seed)
        .filter(|id| {
            world
                .host_by_id(id)
                .is_none_or(|h| !world.hosts[h].read_only)
        })
        .collect();
    // The window: each shared node acknowledged the first seed, then saw it down, before this.
    let window = !shared.is_empty()
        && shared.iter().all(|id| {
            let Some(h) = world.host_by_id(id) else {
                return false;
            };
            let host = &world.hosts[h];
            let acked = host
                .acks
                .iter()
                .filter(|(_, seed)| *seed == first_seed)
                .map(|(at, _)| *at)
                .next();
            acked.is_some_and(|acked| {
                host.downs
                    .iter()
                    .any(|(at, who)| *who == first_seed && *at >= acked && *at <= new.at)
            })
        });
    Some(Violation {
        kind: Kind::DoubleBootstrap,
        at: world.now,
        detail: format!(
            "{second_seed} bootstrapped a second cluster at {:.3}s (view {}) after {first_seed} bootstrapped one at {:.3}s (view {}); expect {} of {n}",
            new.at.as_secs_f64(),
            ids(&new.view),
            earlier.at.as_secs_f64(),
            ids(&earlier.view),
            world.config.expect,
        ),
        window,
    })
}

/// A node with committed data of one cluster was admitted into another.
pub fn data_joined_other(world: &World, host: usize, old: usize, new: usize) -> Violation {
    Violation {
        kind: Kind::DataJoinedOther,
        at: world.now,
        detail: format!(
            "{} held data of Raft cluster #{old} and joined cluster #{new} as a fresh node",
            world.hosts[host].id
        ),
        window: false,
    }
}

/// A node's data was wiped outside volatile mode.
pub fn data_lost(world: &World, host: usize) -> Violation {
    Violation {
        kind: Kind::DataLost,
        at: world.now,
        detail: format!(
            "{} deleted its data outside volatile mode",
            world.hosts[host].id
        ),
        window: false,
    }
}

/// A node refused a claim; every simulated node is honest.
pub fn honest_claim_refused(world: &World, host: usize, error: &ClaimError) -> Violation {
    Violation {
        kind: Kind::HonestClaimRefused,
        at: world.now,
        detail: format!("{} refused an honest claim: {error}", world.hosts[host].id),
        window: false,
    }
}

/// A node whose card shows data decided to bootstrap.
pub fn bootstrap_with_data(world: &World, host: usize) -> Violation {
    Violation {
        kind: Kind::BootstrapWithData,
        at: world.now,
        detail: format!(
            "{} decided to bootstrap although it has data",
            world.hosts[host].id
        ),
        window: false,
    }
}

/// Why a run that did not converge is excused, if it is: situations rqlite itself cannot leave.
pub fn excuse(world: &World) -> Option<String> {
    let live: Vec<usize> = world.live_hosts().collect();
    // Read-only replicas never count for `--expect`.
    let eligible = world.eligible_live();
    if eligible < usize::from(world.config.expect) {
        return Some(format!(
            "only {eligible} nodes up, expect {}",
            world.config.expect
        ));
    }
    // A formation that never formed and one of whose agreed founders is gone for good (its
    // volume lost, or scaled away): rqlited cannot form it without that founder, and rq4d waits
    // rather than risk a second cluster beside one that may have formed unseen (as it waited
    // for a lost seed before); a human must step in.
    for (cluster_id, founders) in &world.formations {
        let formed = world
            .rqlite
            .clusters
            .iter()
            .any(|c| c.cluster_id == Some(*cluster_id));
        let lost = founders
            .iter()
            .find(|id| world.host_by_id(id).is_some_and(|h| world.hosts[h].gone));
        if !formed && lost.is_some() {
            return Some(
                "a founder of the agreed formation is gone for good (rq4d waits for it rather than risk a second cluster)".into(),
            );
        }
    }
    // A cluster formed by founders not all of the initial set, beside the initial set's: nodes
    // added (or left out of the first formation) while a partition hid every member of the
    // existing cluster from them, at least `expect` of them. They cannot know about it; outside
    // volatile mode the split is reported and left to a human (ARCHITECTURE.md).
    let outsiders = world.bootstraps.iter().any(|b| !b.from_initial_set);
    if outsiders && world.bootstraps.len() > 1 && !world.config.volatile {
        return Some(
            "split: a partition hid the existing cluster from at least `expect` nodes outside it, which formed another (left to a human)".into(),
        );
    }
    if !world.windows.is_empty() && !world.config.volatile {
        // Outside volatile mode a split is reported and left to a human, by design.
        return Some(
            "split left by a seed-isolation window (not volatile: left to a human)".into(),
        );
    }
    // Clusters some live node holds committed data of, or is bound to (it acknowledged the seed
    // and saw it start: it waits for that cluster forever rather than risk a second one).
    let bound: Vec<ClusterId> = live
        .iter()
        .filter_map(|&h| world.hosts[h].node.as_ref()?.card().cluster_id)
        .collect();
    let mut clusters: Vec<usize> = live
        .iter()
        .filter(|&&h| world.rqlite.disks[h].has_data())
        .filter_map(|&h| world.rqlite.disks[h].cluster)
        .chain((0..world.rqlite.clusters.len()).filter(|&c| {
            world.rqlite.clusters[c]
                .cluster_id
                .is_some_and(|id| bound.contains(&id))
        }))
        .collect();
    clusters.sort_unstable();
    clusters.dedup();
    for c in clusters {
        let cluster = &world.rqlite.clusters[c];
        let reachable = cluster
            .voters
            .values()
            .filter(|addr| {
                world
                    .addresses
                    .host_of_raft(addr)
                    .is_some_and(|h| world.hosts[h].node.is_some())
            })
            .count();
        // When every voter is up (only moved), rq4d's peers.json recovery must bring the
        // cluster back: no excuse then.
        let all_up = cluster.voters.keys().all(|id| {
            world
                .host_by_id(id)
                .is_some_and(|h| world.hosts[h].node.is_some())
        });
        if reachable * 2 <= cluster.voters.len() && !all_up {
            return Some(format!(
                "Raft cluster #{c} has only {reachable} of {} voters up at their configured addresses and not every voter is up (rq4d waits rather than force a reconfiguration)",
                cluster.voters.len()
            ));
        }
    }
    None
}

/// A diagnosis of a run that did not converge, for the report.
///
/// * stale-ack deadlock: a live node still holds an acknowledgement for a live seed that no
///   longer proposes (it acknowledges a smaller seed itself), so no seed can collect every
///   acknowledgement;
/// * uncommitted voter: a node that rqlite counts as a voter (it joined) counts itself empty
///   (it never saw itself healthy before it was cut off or crashed), so it waits instead of
///   giving the cluster back its quorum.
pub fn diagnose(world: &World) -> Option<String> {
    for h in world.live_hosts() {
        let disk = &world.rqlite.disks[h];
        let counted = disk.cluster.is_some_and(|c| {
            world.rqlite.clusters[c]
                .voters
                .contains_key(&world.hosts[h].id)
        });
        if counted && !disk.stored.committed && world.rqlite.procs[h].is_none() {
            return Some(format!(
                "uncommitted voter: {} is a voter of Raft cluster #{} but its state is not committed, so rq4d treats it as empty",
                world.hosts[h].id,
                disk.cluster.unwrap_or_default()
            ));
        }
    }
    for h in world.live_hosts() {
        let node = world.hosts[h].node.as_ref()?;
        let Agreement::Ack { seed, .. } = &node.card().agreement else {
            continue;
        };
        let Some(s) = world.host_by_id(seed) else {
            continue;
        };
        let Some(seed_node) = world.hosts[s].node.as_ref() else {
            continue;
        };
        if let Agreement::Ack { seed: other, .. } = &seed_node.card().agreement {
            return Some(format!(
                "stale-ack deadlock: {} holds its acknowledgement of {seed}, which itself acknowledges {other}",
                world.hosts[h].id
            ));
        }
    }
    None
}

/// A bootstrap under the rq4d cluster id of an earlier Raft cluster.
pub fn check_cluster_id(world: &World, cluster: usize) -> Option<Violation> {
    let new = &world.rqlite.clusters[cluster];
    let id = new.cluster_id?;
    let earlier = world.rqlite.clusters[..cluster]
        .iter()
        .position(|c| c.cluster_id == Some(id))?;
    Some(Violation {
        kind: Kind::ClusterIdReused,
        at: world.now,
        detail: format!(
            "{} bootstrapped Raft cluster #{cluster} under cluster id {id}, the id of Raft cluster #{earlier} founded by {}: two clusters rq4d takes for one",
            world.hosts[new.founder].id, world.hosts[world.rqlite.clusters[earlier].founder].id
        ),
        window: false,
    })
}
