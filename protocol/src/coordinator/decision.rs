//! What a node's rqlited should do — the [`Decision`] — and the typed reasons it carries: why a
//! node waits, the split it sees, the conflict it refuses. Data a supervisor acts on and a human
//! reads; change detection compares these values, never their text.

use std::net::SocketAddr;

use crate::card::ClusterId;
use crate::identity::NodeId;

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
        /// As a voter; `false`: as a non-voter (`-raft-non-voter`: read-only, or beyond the
        /// voter cap).
        voter: bool,
    },
    /// The running rqlited should vote (`voter`), or stop voting: it leaves the configuration
    /// (`/remove` of itself, through its own rqlited) and rejoins with the other role —
    /// rqlited ignores a join whose id and address it holds, whatever the voter flag.
    ChangeRole {
        /// The role to take.
        voter: bool,
        /// Raft addresses to pass to `-join` on the way back, the leader's first.
        targets: Vec<String>,
        /// The cluster.
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
    /// A read-only replica waits for a cluster to join: it never founds one.
    ReadOnly,
    /// More empty nodes than the voter cap agree on a formation; this one is not among the
    /// founders and joins the cluster they form.
    BeyondVoterCap {
        /// `--voters`.
        cap: u16,
    },
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
    /// A founder waits for the seed of its formation to start rqlited first: the seed heads
    /// every founder's `-join` list (see `coordinator::start_formation`).
    SeedToStart {
        /// The seed.
        seed: NodeId,
    },
    /// A rumour placed another life of this node's id somewhere; nothing starts until the
    /// challenge there is settled (see `node/duplicates.rs`).
    IdentityCheck {
        /// This node's id.
        id: NodeId,
        /// The address challenged.
        addr: SocketAddr,
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
            Self::ReadOnly => f.write_str(
                "read-only replica: waiting for a cluster with a live leader to join as a non-voter",
            ),
            Self::BeyondVoterCap { cap } => write!(
                f,
                "beyond the {cap} voters a new cluster is founded with; joining it once it has a leader"
            ),
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
            Self::SeedToStart { seed } => write!(
                f,
                "bound to the formation; waiting for seed {seed} to start its rqlited first"
            ),
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
    /// The members were given different `--voters` caps.
    VoterCap(Vec<(NodeId, Option<u16>)>),
    /// A live member uses this (not running) node's id.
    IdInUse {
        /// The id.
        id: NodeId,
        /// Where the other process gossips.
        addr: SocketAddr,
    },
    /// Two running processes use one id.
    IdRunningTwice {
        /// The id.
        id: NodeId,
        /// Where the other process gossips.
        addr: SocketAddr,
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
            Self::VoterCap(caps) => {
                let list: Vec<String> = caps
                    .iter()
                    .map(|(id, cap)| match cap {
                        Some(cap) => format!("{id}={cap}"),
                        None => format!("{id}=unlimited"),
                    })
                    .collect();
                write!(f, "members disagree on --voters ({})", list.join(", "))
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
                voter,
            } => {
                let cluster = cluster_id.map_or_else(|| "?".into(), |id| id.to_string());
                let role = if *voter { "" } else { " as a non-voter" };
                format!("joining cluster {cluster}{role} via {}", targets.join(","))
            }
            Self::ChangeRole { voter: true, .. } => {
                "promoting to voter (leaving and rejoining the configuration)".into()
            }
            Self::ChangeRole { voter: false, .. } => {
                "stepping down to non-voter: more live voters than --voters".into()
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
            Self::ChangeRole { .. } => "change-role",
            Self::Resume { .. } => "resume",
            Self::Run => "run",
            Self::Wipe(_) => "wipe",
            Self::Conflict(_) => "conflict",
        }
    }
}
