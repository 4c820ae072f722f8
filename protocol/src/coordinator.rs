//! The decision rules: from my card and the cards of the live members, what should my rqlited do?
//!
//! [`decide`] is a pure function; [`crate::node::Node`] calls it on every change and tick and
//! publishes the agreement part of the [`Verdict`] in its own card. The rules, in order:
//!
//! 1. **Running** — my rqlited runs. With a leader: keep it (`Run`). Without a leader or removed
//!    from the voters while another live node leads *my* cluster: `Join` it again (the daemon
//!    restarts rqlited with `-join`). A voter with no leader anywhere whose stored voters are
//!    all live, at least one at a new address: `Resume` with `peers.json` (the daemon restarts
//!    rqlited with the voters' current addresses). A live leader of *another* cluster is a split.
//! 2. **A cluster exists** — I am empty and a live node leads a cluster: `Join` it.
//! 3. **I have data** — `Resume` my cluster, with `-join` to its live leader if there is one;
//!    without a leader (once the membership has settled and every live card is in), resume from
//!    the stored configuration (no `-join`, which is what lets the voters of a fully restarted
//!    cluster elect among themselves). Data of another cluster than
//!    the live one is a split: reported, never overwritten (volatile mode: `Wipe`).
//! 4. **Everyone is empty** — wait for `expect` members that all carry the same `expect`, a
//!    membership unchanged for the settle period, and the same view digest on every card. The
//!    smallest node id is the seed; it proposes the view; every other member acknowledges the
//!    proposal and will not acknowledge another seed while this one stands. When every member
//!    has acknowledged, the seed decides: the view's members are the *founders* of a new cluster.
//!    Each founder, once it sees that decision, is bound to it and starts rqlited with
//!    `-bootstrap-expect N`, which forms the cluster only when all N founders have notified: no
//!    founder can form one alone. Nodes that come later join it (rule 2).
//!
//! Nothing here reads a clock: "settled" is computed by the caller from `now`.

use std::collections::BTreeSet;

use crate::card::{Agreement, Card, ClusterId, DbState, Round, ViewDigest};
use crate::identity::NodeId;
use crate::wire::fnv1a;

mod agreement;
mod decision;
mod roles;

use agreement::agree;
pub use decision::{Conflict, Decision, Split, Waiting};

/// Deliberately broken rules, for the simulator to prove that its search catches real bugs.
/// Never set outside tests: the daemon always uses `Faults::default()` (all off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The seed bootstraps as soon as it sees `expect` members: no settle period, no
    /// acknowledgements.
    pub bootstrap_without_agreement: bool,
}

/// What [`decide`] sees.
#[derive(Clone, Debug)]
pub struct View<'a> {
    /// My own card.
    pub me: &'a Card,
    /// The current cards of the other live members.
    pub peers: Vec<&'a Card>,
    /// Live members whose current card has not arrived yet.
    pub missing: Vec<&'a NodeId>,
    /// True when the live membership has not changed for the settle period.
    pub settled: bool,
    /// True once this node has been up long enough to have heard from the live members
    /// (`NodeConfig::resume_after`): a node with data never resumes on its own before that.
    pub looked_around: bool,
    /// Volatile mode: data may be deleted to heal a split.
    pub volatile: bool,
    /// Broken rules switched on (tests only).
    pub faults: Faults,
    /// The voters of my cluster as last seen while my rqlited ran: `(node id, Raft address)`.
    pub stored_voters: &'a [(NodeId, String)],
    /// The clusters of every proposal I acknowledged in this life ([`mint_cluster_id`] of its
    /// seed, round and view). My acknowledgement may lapse (I saw the seed down) before I see
    /// it decide; the seed decided only with it, so it counts me among the founders all the
    /// same, and the formation cannot complete without me.
    pub acked: &'a [ClusterId],
}

/// The outcome of [`decide`]: the decision, and what my card should say about the agreement and
/// the cluster I belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What rqlited should do.
    pub decision: Decision,
    /// My part in the agreement, to publish in my card.
    pub agreement: Agreement,
    /// The cluster I belong (or am bound) to, to publish in my card.
    pub cluster_id: Option<ClusterId>,
    /// How many founders form that cluster, while it forms, to publish in my card.
    pub formation: Option<u16>,
}

impl View<'_> {
    fn live(&self) -> impl Iterator<Item = &Card> {
        std::iter::once(self.me).chain(self.peers.iter().copied())
    }

    /// Live cards whose rqlited leads its cluster, by cluster.
    fn leaders(&self) -> Vec<&Card> {
        self.live()
            .filter(|card| card.as_leader().is_some())
            .collect()
    }

    /// True when a live card (mine included) shows a voter of `cluster`, or its data on a
    /// stopped node: proof that the cluster was formed.
    fn formed(&self, cluster: Option<ClusterId>) -> bool {
        self.live().any(|card| {
            card.cluster_id == cluster
                && match &card.db {
                    DbState::Running(running) => running.voter,
                    DbState::HasData { .. } => true,
                    _ => false,
                }
        })
    }

    /// `-join` targets of a formation of `cluster`: my Raft address, every live founder bound to
    /// it, and its seed (recognised by its proposal even before its decision reaches me, so that
    /// every founder's notification reaches at least the seed). Nobody else: rqlited counts any
    /// node's notification, so one sent to a node that later founds *another* cluster would
    /// make that cluster's configuration hold a stranger (simulator finding).
    ///
    /// In the order of the founders' ids, so the seed (the smallest id of the agreement) comes
    /// first in every founder's list: it starts its rqlited before the others
    /// ([`start_formation`]), and rqlited notifies its targets in order, ending a round at the
    /// first that does not answer. Sorted by address, a founder listed ahead of the seed and
    /// not yet listening ended the others' rounds before they reached the seed
    /// (`every_founder_lists_the_seed_first_whatever_the_addresses`).
    fn founders(&self, cluster: Option<ClusterId>) -> Vec<String> {
        let seed_of = |card: &Card| {
            matches!(card.agreement, Agreement::Propose { .. })
                && agreement_cluster(card) == cluster
        };
        let mut founders: Vec<&Card> = self
            .peers
            .iter()
            .copied()
            .filter(|card| {
                (card.cluster_id == cluster && card.formation.is_some()) || seed_of(card)
            })
            .chain([self.me])
            .collect();
        founders.sort_by(|a, b| (&a.node_id, &a.raft_addr).cmp(&(&b.node_id, &b.raft_addr)));
        raft_addrs(founders)
    }

    /// Raft addresses to join `cluster`: its leader first, then its other running members.
    fn join_targets(&self, leader: &Card) -> Vec<String> {
        let mut targets = vec![leader.raft_addr.clone()];
        targets.extend(
            self.peers
                .iter()
                .filter(|card| {
                    card.node_id != leader.node_id
                        && card.cluster_id == leader.cluster_id
                        && card
                            .db
                            .running()
                            .is_some_and(|r| r.voter && r.leader.is_some())
                })
                .map(|card| card.raft_addr.clone()),
        );
        targets
    }
}

/// The cards' Raft addresses in their order, each once.
fn raft_addrs<'a>(cards: impl IntoIterator<Item = &'a Card>) -> Vec<String> {
    let mut addrs: Vec<String> = Vec::new();
    for card in cards {
        if !addrs.contains(&card.raft_addr) {
            addrs.push(card.raft_addr.clone());
        }
    }
    addrs
}

/// The cluster id of a seed's proposal: derived from the seed, the round and the view, so it
/// needs no randomness, is the same on every replay, and every acknowledger can compute the id
/// of the cluster it would found (see `View::acked`).
pub fn mint_cluster_id(seed: &NodeId, round: Round, view: ViewDigest) -> ClusterId {
    let text = format!(
        "{seed}/{}.{}/{:016x}",
        round.generation, round.version, view.0
    );
    ClusterId(fnv1a(text.as_bytes()))
}

/// The cluster `card`'s agreement would found: its own proposal's, or the proposal it
/// acknowledges. Every founder of a formation proposed or acknowledged the proposal that minted
/// its cluster id.
pub fn agreement_cluster(card: &Card) -> Option<ClusterId> {
    match &card.agreement {
        Agreement::None => None,
        Agreement::Propose { view, round } => Some(mint_cluster_id(&card.node_id, *round, *view)),
        Agreement::Ack { seed, view, round } => Some(mint_cluster_id(seed, *round, *view)),
    }
}

/// The round of my proposal of `view`: the standing one if I already propose that view, else a
/// new one named by the card version that will first carry it.
fn next_round(me: &Card, view: ViewDigest) -> Round {
    match me.agreement {
        Agreement::Propose { view: v, round } if v == view => round,
        _ => Round {
            generation: me.generation,
            version: me.version + 1,
        },
    }
}

/// Applies the decision rules (see the module docs).
pub fn decide(view: &View<'_>) -> Verdict {
    if let Some(relabeled) = relabeled_by_my_leader(view) {
        return decide(&View {
            me: &relabeled,
            ..view.clone()
        });
    }
    let me = view.me;
    let keep = |decision| Verdict {
        decision,
        agreement: me.agreement.clone(),
        cluster_id: me.cluster_id,
        formation: me.formation,
    };
    let leaders = view.leaders();
    let mine = |card: &&Card| me.cluster_id.is_none() || card.cluster_id == me.cluster_id;
    let my_leader = leaders
        .iter()
        .copied()
        .find(|card| mine(card) && card.node_id != me.node_id);
    let foreign: BTreeSet<ClusterId> = leaders
        .iter()
        .filter(|card| !mine(card))
        .filter_map(|card| card.cluster_id)
        .collect();

    match &me.db {
        DbState::Running(running) => {
            if running.voter {
                // Formed (or joined): the formation is over.
                return decide_running(view, running, my_leader, &foreign, None);
            }
            if let Some(leader) = abandon_formation_for(view, &leaders) {
                return join_instead(view, leader);
            }
            decide_running(view, running, my_leader, &foreign, me.formation)
        }
        DbState::Starting => keep(Decision::Run),
        DbState::HasData { .. } => {
            if let Some(leader) = my_leader {
                return keep(Decision::Resume {
                    join: view.join_targets(leader),
                    peers: Vec::new(),
                });
            }
            if let Some(other) = foreign.first().filter(|_| me.cluster_id.is_some()) {
                return keep(split(view, *other));
            }
            if !view.looked_around || !view.settled || !view.missing.is_empty() {
                // Resuming without -join at a new address leaves rqlited a Candidate forever;
                // give gossip a settle period to show a leader to join first.
                return keep(Decision::Wait(Waiting::LeaderToResume));
            }
            keep(Decision::Resume {
                join: Vec::new(),
                peers: moved_voters(view),
            })
        }
        DbState::Empty => decide_empty(view, &leaders),
    }
}

/// My card relabeled with the cluster of the leader my own rqlited follows, when that leader's
/// card names another cluster than mine. My rqlited's `/status` is a fact of this host, not a
/// claim from the network: a leader it follows leads the Raft cluster it is in, so the label
/// is stale and there is no split. The same term on both sides guards against a leader id my
/// rqlited has not yet forgotten, now reused by a node of another cluster. (Simulator finding: a
/// founder whose formation never completed kept its rqlited's `-join` retries, which reached a
/// node of the cluster formed meanwhile and made it a voter there; its card kept the old label,
/// every node saw a split, and the cluster's voters never came down to the cap.)
fn relabeled_by_my_leader(view: &View<'_>) -> Option<Card> {
    let me = view.me;
    let DbState::Running(running) = &me.db else {
        return None;
    };
    let leader = running.leader.as_ref().filter(|id| **id != me.node_id)?;
    let card = view
        .leaders()
        .into_iter()
        .find(|card| &card.node_id == leader)?;
    let theirs = card.cluster_id.filter(|id| me.cluster_id != Some(*id))?;
    let led = card.as_leader()?;
    if led.term != running.term {
        return None;
    }
    let mut relabeled = me.clone();
    relabeled.cluster_id = Some(theirs);
    relabeled.agreement = Agreement::None;
    relabeled.formation = None;
    Some(relabeled)
}

/// Rule 1 for a running rqlited (see the module docs).
fn decide_running(
    view: &View<'_>,
    running: &crate::card::Running,
    my_leader: Option<&Card>,
    foreign: &BTreeSet<ClusterId>,
    formation: Option<u16>,
) -> Verdict {
    let me = view.me;
    let healthy = running.healthy();
    // A founder whose rqlited follows a leader is past the formation whatever its role. One
    // that runs as a non-voter (it was reaped during the formation and came back) is a
    // candidate for a slot like any other from now on (see `roles`).
    let formation = formation.filter(|_| !healthy);
    let verdict = |decision| Verdict {
        decision,
        agreement: me.agreement.clone(),
        cluster_id: me.cluster_id,
        formation,
    };
    if let Some(other) = foreign.first().filter(|_| me.cluster_id.is_some()) {
        return verdict(split(view, *other));
    }
    match my_leader {
        Some(leader) if !healthy => verdict(Decision::Join {
            targets: view.join_targets(leader),
            cluster_id: leader.cluster_id.or(me.cluster_id),
            voter: if running.voter {
                true
            } else {
                roles::should_vote(view, leader)
            },
        }),
        // Healthy from here on: a voter, or a non-voter by design.
        Some(leader)
            if !me.read_only
                && if running.voter {
                    roles::should_step_down(view, leader)
                } else {
                    roles::should_vote(view, leader)
                } =>
        {
            verdict(Decision::ChangeRole {
                voter: !running.voter,
                targets: view.join_targets(leader),
                cluster_id: leader.cluster_id.or(me.cluster_id),
            })
        }
        None if running.voter
            && running.leader.is_none()
            && view.settled
            && view.missing.is_empty() =>
        {
            // A voter without a leader anywhere, every stored voter live at a changed address:
            // no election can succeed (votes go to the old addresses), and the nodes that resumed
            // while the others were away never get another chance at the stopped-node recovery
            // (simulator finding: two founders that crashed before their first election and came
            // back at new addresses one at a time sat as candidates for good). The supervisor
            // restarts rqlited with `peers.json` once it has been leaderless for a while.
            let peers = moved_voters(view);
            if peers.is_empty() {
                verdict(Decision::Run)
            } else {
                verdict(Decision::Resume {
                    join: Vec::new(),
                    peers,
                })
            }
        }
        _ => verdict(Decision::Run),
    }
}

/// A founder of `cluster`'s formation of `expect` starts rqlited once the seed's rqlited
/// answers (the seed at once). Safety does not rest on this — rqlited forms the cluster only
/// with every founder's notification, whenever each starts — speed does. The seed heads every
/// founder's `-join` list (`View::founders`), rqlited notifies its targets in order and ends a
/// round at the first that does not answer, and the next round comes 2–4 s later: the seed's
/// rqlited must be listening when the others' first round comes. Its decision alone reaches
/// the others within a datagram's flight, and in Docker that lead was shorter than the spread
/// of the time rqlited takes to start: five containers started at once formed after 4.0 s,
/// against 1.2–1.8 s with a wait. Waiting only for the seed's card to say `Starting` (its
/// process spawned) still lost a round about one formation in five in Docker: a fast founder's
/// first round reached the seed a few milliseconds before its store opened ("connection
/// refused"), and the formation took 4.1 s. So the wait lasts until the seed's card says
/// `Running`: its rqlited answered `/status`, which it serves only with the store open, the
/// store that takes notifications. That costs a card push and the seed's first answered poll
/// (the supervisor polls a just-started rqlited every `POLL_FIRST_ANSWER`). A seed that is
/// not live, or whose rqlited stopped (`HasData`), or a founder whose agreement names no seed
/// of this formation, keeps nobody waiting: nothing would come of it.
fn start_formation(view: &View<'_>, cluster_id: ClusterId, expect: u16) -> Decision {
    let seed = match &view.me.agreement {
        Agreement::Ack { seed, .. } if agreement_cluster(view.me) == Some(cluster_id) => {
            view.peers.iter().find(|card| &card.node_id == seed)
        }
        _ => None,
    };
    if let Some(seed) = seed.filter(|card| {
        matches!(card.db, DbState::Empty | DbState::Starting)
            && card.cluster_id.is_none_or(|c| c == cluster_id)
    }) {
        return Decision::Wait(Waiting::SeedToStart {
            seed: seed.node_id.clone(),
        });
    }
    Decision::Bootstrap {
        cluster_id,
        expect,
        targets: view.founders(Some(cluster_id)),
    }
}

/// A formation this node is bound to may be given up for a live leader of another cluster only
/// while nobody — this node included — is a voter of it or holds its data: then no Raft cluster
/// of it exists that could lose a member, and this node has nothing to lose. This is how the
/// founders of a formation that can no longer complete (its seed was cut off before the others
/// saw it decide, and they formed another cluster) end up in the one cluster.
fn abandon_formation_for<'a>(view: &View<'a>, leaders: &[&'a Card]) -> Option<&'a Card> {
    let me = view.me;
    if me.formation.is_none() || view.formed(me.cluster_id) {
        return None;
    }
    leaders
        .iter()
        .copied()
        .find(|card| card.cluster_id != me.cluster_id && card.node_id != me.node_id)
}

/// Joins `leader`'s cluster, giving up any agreement or formation of mine: as a voter unless
/// read-only or beyond the voter cap (see [`roles`]).
fn join_instead(view: &View<'_>, leader: &Card) -> Verdict {
    Verdict {
        decision: Decision::Join {
            targets: view.join_targets(leader),
            cluster_id: leader.cluster_id,
            voter: roles::should_vote(view, leader),
        },
        agreement: Agreement::None,
        cluster_id: leader.cluster_id,
        formation: None,
    }
}

/// The configuration for `raft/peers.json` when the whole cluster came back at new addresses:
/// every stored voter is live, holds data of my cluster, and at least one Raft address changed.
/// Then no `-join` can help (votes go to the old addresses) and rewriting the configuration with
/// the same members at their new addresses loses nothing. Anything short of *every* voter would
/// be a forced reconfiguration, which could split a cluster whose other voters live elsewhere, so
/// it waits instead (empty result: a plain resume).
fn moved_voters(view: &View<'_>) -> Vec<(NodeId, String)> {
    let stored = view.stored_voters;
    // A non-voter is not in the configuration it would write: it rejoins the recovered
    // cluster instead.
    if !stored.iter().any(|(id, _)| id == &view.me.node_id) {
        return Vec::new();
    }
    let mut current = Vec::with_capacity(stored.len());
    for (id, _) in stored {
        let Some(card) = view.live().find(|card| &card.node_id == id) else {
            return Vec::new();
        };
        if !card.db.has_data() || card.cluster_id != view.me.cluster_id {
            return Vec::new();
        }
        current.push((id.clone(), card.raft_addr.clone()));
    }
    let moved = current
        .iter()
        .zip(stored)
        .any(|((_, now), (_, then))| now != then);
    if moved { current } else { Vec::new() }
}

/// Rules for a live leader of another cluster than mine.
fn split(view: &View<'_>, other: ClusterId) -> Decision {
    let split = Split {
        mine: view.me.cluster_id,
        theirs: other,
    };
    if view.volatile && loses_split(view, other) {
        Decision::Wipe(split)
    } else {
        Decision::Conflict(Conflict::Split(split))
    }
}

/// The side with fewer voters loses (ties: the larger cluster id), so both sides agree on it.
/// A side's voters are the largest count any live card of it reports — a running voter's, or a
/// stopped node's last one — not only its leader's: a node that does not see its own leader
/// would otherwise count its side as empty and wipe the winning side (simulator finding).
fn loses_split(view: &View<'_>, other: ClusterId) -> bool {
    let voters = |cluster: Option<ClusterId>| {
        view.live()
            .filter(|card| card.cluster_id == cluster)
            .filter_map(|card| match &card.db {
                DbState::Running(running) if running.voter => Some(running.voters),
                DbState::HasData { last_voters } => Some(*last_voters),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    };
    let mine = (
        voters(view.me.cluster_id),
        std::cmp::Reverse(view.me.cluster_id),
    );
    let theirs = (voters(Some(other)), std::cmp::Reverse(Some(other)));
    mine < theirs
}

fn decide_empty(view: &View<'_>, leaders: &[&Card]) -> Verdict {
    let me = view.me;
    // An empty node may be bound to a cluster whose seed it saw decide (see below).
    let verdict = |decision, agreement| Verdict {
        decision,
        agreement,
        cluster_id: me.cluster_id,
        formation: me.formation,
    };
    let bound_leader = leaders
        .iter()
        .find(|card| me.cluster_id.is_none() || card.cluster_id == me.cluster_id);
    if let Some(leader) = bound_leader {
        let clusters: BTreeSet<_> = leaders.iter().filter_map(|card| card.cluster_id).collect();
        if clusters.len() > 1 && me.cluster_id.is_none() {
            return verdict(
                Decision::Conflict(Conflict::Leaders(clusters.into_iter().collect())),
                me.agreement.clone(),
            );
        }
        // Joining ends my part in any agreement: a proposal I made is withdrawn (its
        // acknowledgers are freed and join the leader too), a formation is over.
        return join_instead(view, leader);
    }
    if me.read_only {
        // Never a founder, never counted: it joins (as a non-voter) once a cluster has a leader.
        return verdict(Decision::Wait(Waiting::ReadOnly), Agreement::None);
    }
    // Bound to a formation: start rqlited as one of its founders, until a leader shows.
    if let (Some(cluster_id), Some(expect)) = (me.cluster_id, me.formation) {
        if let Some(leader) = abandon_formation_for(view, leaders) {
            return join_instead(view, leader);
        }
        return verdict(
            start_formation(view, cluster_id, expect),
            me.agreement.clone(),
        );
    }
    // A seed whose proposal I acknowledged has decided (its card, or a fellow founder's, shows
    // that proposal's cluster): from now on I am one of its founders and take part in no other
    // agreement, even if the seed dies (the cluster cannot form without me, nor without it).
    if me.cluster_id.is_none()
        && let Some(founder) = view.peers.iter().find(|card| {
            card.cluster_id
                .is_some_and(|cluster| view.acked.contains(&cluster))
        })
    {
        let cluster_id = founder.cluster_id;
        let decision = match (cluster_id, founder.formation) {
            (Some(cluster_id), Some(expect)) => start_formation(view, cluster_id, expect),
            _ => Decision::Wait(Waiting::FormedCluster {
                founder: founder.node_id.clone(),
            }),
        };
        return Verdict {
            decision,
            agreement: me.agreement.clone(),
            cluster_id,
            formation: founder.formation,
        };
    }
    if let Some(cluster) = me.cluster_id {
        return verdict(
            Decision::Wait(Waiting::BoundCluster { cluster }),
            me.agreement.clone(),
        );
    }
    if let Some(busy) = view.peers.iter().find(|card| card.db.has_data()) {
        // Never bootstrap beside a node that has data: it may hold the cluster.
        return verdict(
            Decision::Wait(Waiting::DataElsewhere {
                holder: busy.node_id.clone(),
            }),
            me.agreement.clone(),
        );
    }
    agree(view)
}

#[cfg(test)]
mod tests;
