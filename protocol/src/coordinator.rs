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

/// What this node's rqlited should do now. Data a supervisor acts on and a human reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Do nothing yet.
    Wait(Waiting),
    /// Start rqlited with `-bootstrap-expect expect -join targets`: this node is one of the
    /// `expect` agreed founders of a new cluster. rqlited forms the cluster once every founder
    /// has notified, with all of them as voters, so no founder can form one alone.
    Bootstrap {
        /// The id of the cluster being formed.
        cluster_id: ClusterId,
        /// How many founders were agreed (`-bootstrap-expect`).
        expect: u16,
        /// Raft addresses of the founders known now, this node's own included (rqlited counts
        /// its own notification).
        targets: Vec<String>,
    },
    /// Start (or restart) rqlited with `-join` to these Raft addresses, the leader's first.
    Join {
        /// Raft addresses to pass to `-join`.
        targets: Vec<String>,
        /// The cluster being joined (unknown for a cluster that rq4d did not bootstrap).
        cluster_id: Option<ClusterId>,
    },
    /// Start rqlited on its existing data, with `-join` when the list is not empty.
    Resume {
        /// Raft addresses to pass to `-join` (empty: resume from the stored configuration).
        join: Vec<String>,
        /// When every voter came back at a new address: the configuration to write to
        /// `raft/peers.json` before the start (rqlite's recovery), `(node id, Raft address)`.
        /// Empty otherwise.
        peers: Vec<(NodeId, String)>,
    },
    /// rqlited runs as it should: leave it alone.
    Run,
    /// Volatile mode only: this node's data belongs to the losing side of a split; delete it and
    /// join the live cluster as a fresh node.
    Wipe(Split),
    /// Something only a human should settle; nothing is started, stopped or deleted because of it.
    Conflict(Conflict),
}

/// What a waiting node waits for. `Display` is the line `/health` and the log show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// The node has only just started.
    Starting,
    /// A node with data gives gossip time to show a live leader to join before it resumes
    /// without `-join`.
    LeaderToResume,
    /// A founder of the node's formation has formed the cluster; its leader is not live yet.
    FormedCluster {
        /// Who formed it.
        founder: NodeId,
    },
    /// The node is bound to a cluster whose seed bootstrapped it; its leader is not live yet.
    BoundCluster {
        /// The cluster.
        cluster: ClusterId,
    },
    /// A live node has data and no leader: never bootstrap beside it.
    DataElsewhere {
        /// Who has data.
        holder: NodeId,
    },
    /// Live members whose cards have not arrived.
    Cards {
        /// Whose.
        of: Vec<NodeId>,
    },
    /// Fewer live members than `--expect`.
    Members {
        /// Live members, this node included.
        up: usize,
        /// `--expect`.
        expect: u16,
    },
    /// The membership changed within the settle period.
    Settling,
    /// A member's card shows another view of the membership.
    ViewBehind {
        /// Who.
        member: NodeId,
    },
    /// No member at all.
    NoMembers,
    /// This node is the seed and waits for acknowledgements.
    Acknowledgements {
        /// The view's size.
        members: usize,
        /// Who has not acknowledged yet.
        from: Vec<NodeId>,
    },
    /// This node acknowledged another seed, which still stands.
    AckedOther {
        /// The seed acknowledged.
        acked: NodeId,
        /// The seed of the current view.
        seed: NodeId,
    },
    /// This node acknowledged the seed's proposal; the seed has not decided yet.
    SeedToDecide {
        /// The seed.
        seed: NodeId,
    },
    /// The seed of the view has not proposed yet.
    SeedToPropose {
        /// The seed.
        seed: NodeId,
    },
    /// A rumour placed another life of this node's id somewhere; nothing starts until the
    /// challenge there is settled (see `node/duplicates.rs`).
    IdentityCheck {
        /// This node's id.
        id: NodeId,
        /// The address challenged.
        addr: std::net::SocketAddr,
    },
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |ids: &[NodeId]| {
            ids.iter()
                .map(NodeId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Starting => f.write_str("starting"),
            Self::LeaderToResume => {
                f.write_str("looking for a live leader of this node's cluster before resuming")
            }
            Self::FormedCluster { founder } => write!(
                f,
                "{founder} has formed the cluster I founded; waiting for its leader"
            ),
            Self::BoundCluster { cluster } => write!(
                f,
                "bound to cluster {cluster}, whose seed bootstrapped it; waiting for its leader"
            ),
            Self::DataElsewhere { holder } => write!(
                f,
                "{holder} has data and no leader yet; waiting for it to resume"
            ),
            Self::Cards { of } => write!(f, "waiting for the cards of {}", ids(of)),
            Self::Members { up, expect } => write!(f, "{up} of {expect} expected members are up"),
            Self::Settling => f.write_str("the membership changed recently; letting it settle"),
            Self::ViewBehind { member } => {
                write!(f, "{member} does not see the same membership yet")
            }
            Self::NoMembers => f.write_str("no members"),
            Self::Acknowledgements { members, from } => write!(
                f,
                "seed of {members} members; waiting for acknowledgements from {}",
                ids(from)
            ),
            Self::AckedOther { acked, seed } => write!(
                f,
                "acknowledged {acked} as seed; not acknowledging {seed} while it lives"
            ),
            Self::SeedToDecide { seed } => {
                write!(f, "acknowledged seed {seed}; waiting for it to bootstrap")
            }
            Self::SeedToPropose { seed } => write!(f, "waiting for seed {seed} to propose"),
            Self::IdentityCheck { id, addr } => write!(
                f,
                "checking that node id {id} is not in use by a live process at {addr}"
            ),
        }
    }
}

/// A live leader of another cluster than the one this node's data belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// This node's cluster.
    pub mine: Option<ClusterId>,
    /// The live leader's.
    pub theirs: ClusterId,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mine = self.mine.map_or_else(|| "?".into(), |id| id.to_string());
        write!(
            f,
            "split: this node's data belongs to cluster {mine}, but a live node leads cluster {}",
            self.theirs
        )
    }
}

/// What only a human should settle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// This node's data belongs to another cluster than a live leader's.
    Split(Split),
    /// Live leaders of several clusters, and this empty node belongs to none.
    Leaders(Vec<ClusterId>),
    /// The members were given different `--expect`s.
    Expect(Vec<(NodeId, u16)>),
    /// A live member uses this (not running) node's id.
    IdInUse {
        /// The id.
        id: NodeId,
        /// Where the other process gossips.
        addr: std::net::SocketAddr,
    },
    /// Two running processes use one id.
    IdRunningTwice {
        /// The id.
        id: NodeId,
        /// Where the other process gossips.
        addr: std::net::SocketAddr,
    },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Split(split) => split.fmt(f),
            Self::Leaders(clusters) => {
                let list: Vec<String> = clusters.iter().map(ClusterId::to_string).collect();
                write!(f, "split: live leaders of clusters {}", list.join(", "))
            }
            Self::Expect(expects) => {
                let list: Vec<String> = expects
                    .iter()
                    .map(|(id, expect)| format!("{id}={expect}"))
                    .collect();
                write!(f, "members disagree on --expect ({})", list.join(", "))
            }
            Self::IdInUse { id, addr } => write!(
                f,
                "node id {id} is in use by a live member at {addr}; refusing to start rqlited (give this node its own --node-id, or stop the other)"
            ),
            Self::IdRunningTwice { id, addr } => write!(
                f,
                "node id {id} is used by two running processes, this one and the one at {addr}; stop one of them"
            ),
        }
    }
}

impl Decision {
    /// One line for `/health` and the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Wait(waiting) => format!("waiting: {waiting}"),
            Self::Bootstrap {
                cluster_id,
                expect,
                targets,
            } => format!(
                "forming new cluster {cluster_id} with {expect} founders ({} known: {})",
                targets.len(),
                targets.join(",")
            ),
            Self::Join {
                targets,
                cluster_id,
            } => {
                let cluster = cluster_id.map_or_else(|| "?".into(), |id| id.to_string());
                format!("joining cluster {cluster} via {}", targets.join(","))
            }
            Self::Resume { peers, .. } if !peers.is_empty() => {
                let list: Vec<String> = peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
                format!(
                    "resuming from stored data; every voter moved, recovering with peers.json ({})",
                    list.join(", ")
                )
            }
            Self::Resume { join, .. } if join.is_empty() => "resuming from stored data".into(),
            Self::Resume { join, .. } => {
                format!("resuming from stored data, joining {}", join.join(","))
            }
            Self::Run => "running".into(),
            Self::Wipe(split) => format!("wiping data (volatile mode): {split}"),
            Self::Conflict(conflict) => format!("conflict: {conflict}"),
        }
    }

    /// True for the decisions that start rqlited on a node where it is not running.
    pub fn starts_rqlited(&self) -> bool {
        matches!(
            self,
            Self::Bootstrap { .. } | Self::Join { .. } | Self::Resume { .. }
        )
    }

    /// The kind of decision, without its reasons and targets: what changes of decision are
    /// counted by (a waiting node whose reason changes has not decided anything new).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Wait(_) => "wait",
            Self::Bootstrap { .. } => "bootstrap",
            Self::Join { .. } => "join",
            Self::Resume { .. } => "resume",
            Self::Run => "run",
            Self::Wipe(_) => "wipe",
            Self::Conflict(_) => "conflict",
        }
    }
}

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
    fn founders(&self, cluster: Option<ClusterId>) -> Vec<String> {
        let seed_of = |card: &Card| {
            matches!(card.agreement, Agreement::Propose { .. })
                && agreement_cluster(card) == cluster
        };
        let mut targets: Vec<String> = self
            .peers
            .iter()
            .filter(|card| {
                (card.cluster_id == cluster && card.formation.is_some()) || seed_of(card)
            })
            .map(|card| card.raft_addr.clone())
            .chain([self.me.raft_addr.clone()])
            .collect();
        targets.sort();
        targets.dedup();
        targets
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

/// Rule 1 for a running rqlited (see the module docs).
fn decide_running(
    view: &View<'_>,
    running: &crate::card::Running,
    my_leader: Option<&Card>,
    foreign: &BTreeSet<ClusterId>,
    formation: Option<u16>,
) -> Verdict {
    let me = view.me;
    let verdict = |decision| Verdict {
        decision,
        agreement: me.agreement.clone(),
        cluster_id: me.cluster_id,
        formation,
    };
    if let Some(other) = foreign.first().filter(|_| me.cluster_id.is_some()) {
        return verdict(split(view, *other));
    }
    let healthy = running.voter && running.leader.is_some();
    match my_leader {
        Some(leader) if !healthy => verdict(Decision::Join {
            targets: view.join_targets(leader),
            cluster_id: leader.cluster_id.or(me.cluster_id),
        }),
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

/// Joins `leader`'s cluster, giving up any agreement or formation of mine.
fn join_instead(view: &View<'_>, leader: &Card) -> Verdict {
    Verdict {
        decision: Decision::Join {
            targets: view.join_targets(leader),
            cluster_id: leader.cluster_id,
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
    if stored.is_empty() {
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
    // Bound to a formation: start rqlited as one of its founders, until a leader shows.
    if let (Some(cluster_id), Some(expect)) = (me.cluster_id, me.formation) {
        if let Some(leader) = abandon_formation_for(view, leaders) {
            return join_instead(view, leader);
        }
        return verdict(
            Decision::Bootstrap {
                cluster_id,
                expect,
                targets: view.founders(Some(cluster_id)),
            },
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
            (Some(cluster_id), Some(expect)) => Decision::Bootstrap {
                cluster_id,
                expect,
                targets: view.founders(founder.cluster_id),
            },
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

/// Rule 4: the bootstrap agreement among empty nodes.
fn agree(view: &View<'_>) -> Verdict {
    let me = view.me;
    let live: Vec<&Card> = view.live().collect();
    // An acknowledgement stands while its proposal does: the seed lives and still proposes that
    // round. A dead seed, or one that withdrew (it saw a smaller id, say), frees the
    // acknowledger; a withdrawn round can never bootstrap, since a seed's later proposal is a
    // new round needing new acknowledgements.
    let held_ack = match &me.agreement {
        Agreement::Ack { seed, round, .. }
            if view.live().any(|card| {
                &card.node_id == seed
                    && matches!(card.agreement, Agreement::Propose { round: r, .. } if r == *round)
            }) =>
        {
            me.agreement.clone()
        }
        _ => Agreement::None,
    };
    let wait = |waiting: Waiting, agreement: Agreement| Verdict {
        decision: Decision::Wait(waiting),
        agreement,
        cluster_id: None,
        formation: None,
    };

    if !view.missing.is_empty() {
        let of = view.missing.iter().map(|id| (*id).clone()).collect();
        return wait(Waiting::Cards { of }, held_ack);
    }
    let expects: BTreeSet<u16> = live.iter().map(|card| card.expect).collect();
    if expects.len() > 1 {
        let expects = live
            .iter()
            .map(|card| (card.node_id.clone(), card.expect))
            .collect();
        return Verdict {
            decision: Decision::Conflict(Conflict::Expect(expects)),
            agreement: held_ack,
            cluster_id: None,
            formation: None,
        };
    }
    let expect = usize::from(me.expect);
    if live.len() < expect {
        return wait(
            Waiting::Members {
                up: live.len(),
                expect: me.expect,
            },
            held_ack,
        );
    }
    let digest = ViewDigest::of(live.iter().map(|card| &card.node_id));
    if view.faults.bootstrap_without_agreement
        && live.iter().map(|card| &card.node_id).min() == Some(&me.node_id)
    {
        // Broken on purpose: the seed forms a cluster of its own, alone.
        let round = next_round(me, digest);
        let cluster_id = mint_cluster_id(&me.node_id, round, digest);
        return Verdict {
            decision: Decision::Bootstrap {
                cluster_id,
                expect: 1,
                targets: vec![me.raft_addr.clone()],
            },
            agreement: Agreement::Propose {
                view: digest,
                round,
            },
            cluster_id: Some(cluster_id),
            formation: Some(1),
        };
    }
    if !view.settled {
        return wait(Waiting::Settling, held_ack);
    }
    if let Some(behind) = live.iter().find(|card| card.view != digest) {
        return wait(
            Waiting::ViewBehind {
                member: behind.node_id.clone(),
            },
            held_ack,
        );
    }
    let Some(seed) = live.iter().map(|card| &card.node_id).min() else {
        return wait(Waiting::NoMembers, held_ack);
    };

    if seed == &me.node_id {
        let round = next_round(me, digest);
        let proposal = Agreement::Propose {
            view: digest,
            round,
        };
        let wanted = Agreement::Ack {
            seed: me.node_id.clone(),
            view: digest,
            round,
        };
        let pending: Vec<NodeId> = view
            .peers
            .iter()
            .filter(|card| card.agreement != wanted)
            .map(|card| card.node_id.clone())
            .collect();
        if pending.is_empty() {
            // Every member acknowledged: they are the founders, and each starts rqlited as one
            // once it sees this decision on my card.
            let cluster_id = mint_cluster_id(&me.node_id, round, digest);
            let mut targets: Vec<String> = live.iter().map(|card| card.raft_addr.clone()).collect();
            targets.sort();
            targets.dedup();
            return Verdict {
                decision: Decision::Bootstrap {
                    cluster_id,
                    expect: u16::try_from(live.len()).unwrap_or(u16::MAX),
                    targets,
                },
                agreement: proposal,
                cluster_id: Some(cluster_id),
                formation: Some(u16::try_from(live.len()).unwrap_or(u16::MAX)),
            };
        }
        return wait(
            Waiting::Acknowledgements {
                members: live.len(),
                from: pending,
            },
            proposal,
        );
    }

    if let Agreement::Ack { seed: acked, .. } = &held_ack
        && acked != seed
    {
        let waiting = Waiting::AckedOther {
            acked: acked.clone(),
            seed: seed.clone(),
        };
        return wait(waiting, held_ack);
    }
    let proposed = view.peers.iter().find_map(|card| match card.agreement {
        Agreement::Propose { view: v, round } if &card.node_id == seed && v == digest => {
            Some(round)
        }
        _ => None,
    });
    if let Some(round) = proposed {
        return wait(
            Waiting::SeedToDecide { seed: seed.clone() },
            Agreement::Ack {
                seed: seed.clone(),
                view: digest,
                round,
            },
        );
    }
    wait(Waiting::SeedToPropose { seed: seed.clone() }, held_ack)
}

#[cfg(test)]
mod tests;
