//! What passes between the supervisor, its driver and its node: the node's [`Directive`] and
//! [`Membership`] in, rqlited's answers ([`Status`], [`Listed`]) in, [`Action`]s out, and the
//! [`Report`]s the node takes back.

use std::collections::BTreeMap;
use std::time::Duration;

#[cfg(doc)]
use super::Supervisor;
use crate::card::{ClusterId, DbState};
use crate::coordinator::Decision;
use crate::identity::NodeId;
use crate::node::Node;
use crate::stored::Stored;

/// What the node wants rqlited to do: its decision and what the supervisor records of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The coordinator's decision.
    pub decision: Decision,
    /// The cluster this node belongs (or is bound) to, per its card.
    pub cluster_id: Option<ClusterId>,
    /// The formation of that cluster this node is a founder of, per its card.
    pub formation: Option<u16>,
    /// The clusters of the proposals this node acknowledged (kept until it has data).
    pub acked: Vec<ClusterId>,
    /// The voters `(id, Raft address)` the node holds recorded: its formation's founders once
    /// it is a voter of the formed cluster ([`Node::stored_voters`]), or what the supervisor
    /// listed. Persisted when none are stored yet.
    pub voters: Vec<(NodeId, String)>,
}

impl Directive {
    /// The directive of `node` now.
    pub fn of(node: &Node) -> Self {
        Self {
            decision: node.decision().clone(),
            cluster_id: node.card().cluster_id,
            formation: node.card().formation,
            acked: node.acked().to_vec(),
            voters: node.stored_voters().to_vec(),
        }
    }
}

/// The gossip membership as the reaper needs it. Times are on the node's clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Every member seen: `None` while alive, `Some(since)` once down.
    pub members: BTreeMap<NodeId, Option<Duration>>,
    /// The Raft addresses that live members (this node included) advertise, and whose they are.
    pub raft_addrs: BTreeMap<String, NodeId>,
    /// The HTTP address the owner of each of those Raft addresses advertises.
    pub http_addrs: BTreeMap<String, String>,
    /// Live members whose Raft address a live member with another id, up more recently, now
    /// advertises, with the time that member came up. Two processes cannot listen on one
    /// address: the older claim is stale — its process is gone, and gossip will call it down
    /// once its suspicion runs out (seconds). Docker hands a killed container's address to the
    /// next one at once, and rqlited refuses that one's join while a voter holds the address.
    pub superseded: BTreeMap<NodeId, Duration>,
}

impl Membership {
    /// The membership `node` sees now.
    pub fn of(node: &Node) -> Self {
        let mut membership = Self::default();
        let me = node.card();
        let mut claims = Vec::new();
        let mut http = BTreeMap::new();
        for (id, member) in node.members() {
            membership
                .members
                .insert(id.clone(), (!member.alive).then_some(member.since));
            if let Some(card) = node.live_card(id) {
                claims.push((member.since, id.clone(), card.raft_addr.clone()));
                http.insert(id.clone(), card.http_addr.clone());
            }
        }
        (membership.raft_addrs, membership.superseded) =
            hold_addresses((&me.raft_addr, &me.node_id), claims);
        membership.http_addrs = membership
            .raft_addrs
            .iter()
            .filter_map(|(addr, id)| Some((addr.clone(), http.get(id)?.clone())))
            .collect();
        membership
    }
}

/// Who holds each Raft address that live members claim (`(up since, id, address)`): this node
/// its own for good, else the member that came up last (ties: the larger id, so that every
/// node agrees). Every other claimant is superseded since the holder came up (since its own
/// claim, for a claim on this node's address).
pub(crate) fn hold_addresses(
    (my_addr, my_id): (&String, &NodeId),
    claims: Vec<(Duration, NodeId, String)>,
) -> (BTreeMap<String, NodeId>, BTreeMap<NodeId, Duration>) {
    let mut holders: BTreeMap<String, (Duration, NodeId)> = BTreeMap::new();
    holders.insert(my_addr.clone(), (Duration::MAX, my_id.clone()));
    for (since, id, addr) in &claims {
        let holder = holders.entry(addr.clone()).or_insert((*since, id.clone()));
        if (*since, id) > (holder.0, &holder.1) {
            *holder = (*since, id.clone());
        }
    }
    let mut superseded = BTreeMap::new();
    for (since, id, addr) in claims {
        let (holder_since, holder) = &holders[&addr];
        if *holder != id {
            let came_up = if *holder_since == Duration::MAX {
                since
            } else {
                *holder_since
            };
            superseded.insert(id, came_up);
        }
    }
    let holders = holders
        .into_iter()
        .map(|(addr, (_, id))| (addr, id))
        .collect();
    (holders, superseded)
}

/// What rqlited's `/status` says, as far as the policy needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The leader's node id, when there is one.
    pub leader: Option<NodeId>,
    /// This node leads (`store.raft.state` is `Leader`).
    pub leads: bool,
    /// The Raft term.
    pub term: u64,
    /// This node is a voter of its configuration.
    pub voter: bool,
    /// The other members of the configuration.
    pub num_peers: u64,
}

impl Status {
    /// Voters in the configuration as far as `/status` tells: this node and its peers, when it
    /// votes.
    pub fn voters(&self) -> u16 {
        if self.voter {
            u16::try_from(self.num_peers.saturating_add(1)).unwrap_or(u16::MAX)
        } else {
            0
        }
    }
}

/// One entry of rqlited's `/nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its node id.
    pub id: NodeId,
    /// Its Raft address.
    pub addr: String,
    /// A voter (not a non-voter).
    pub voter: bool,
    /// The leader's rqlited reached it just now (`/nodes` contacts every member): Raft's own
    /// word that it is alive, which can be ahead of gossip's (see [`crate::reaper`]).
    pub reachable: bool,
    /// The HTTP API address that the node rqlited reached at `addr` gave (`api_addr`, a URL):
    /// where whoever holds `addr` now answers. Empty when unreachable or not told.
    pub api_addr: String,
}

/// Why a listing of rqlited's members was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// To record the voters (for a later `peers.json` recovery).
    Voters,
    /// To look for a dead voter to remove (the leader only).
    Reap,
}

/// Why rqlited is stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopWhy {
    /// The node gave its formation up for a leader of another cluster: an rqlited still
    /// notifying for it could yet form it.
    FormationGivenUp(ClusterId),
    /// Leaderless (or removed) too long while `leader` leads its cluster: it is restarted with
    /// `-join`.
    Rejoin {
        /// The Raft address of the live leader.
        leader: String,
    },
    /// Leaderless while `leader` leads its cluster, and the leader's configuration no longer
    /// holds this node (the reaper removed it while it was paused or cut off): it is restarted
    /// with `-join` at once.
    Removed {
        /// The Raft address of the live leader.
        leader: String,
    },
    /// The configuration lists this node at an old Raft address (`listed`): it is restarted
    /// with `-join`, so that the leader re-adds it at its own.
    StaleAddress {
        /// The address the configuration lists.
        listed: String,
    },
    /// Leaderless too long, every voter live at a new address: it is restarted with
    /// `peers.json`.
    Recover,
    /// Volatile mode: its data goes.
    Wipe,
    /// It left the configuration to rejoin with another role (see
    /// [`Decision::ChangeRole`]).
    ChangeRole {
        /// The role it rejoins with.
        voter: bool,
    },
}

/// Something the driver must do or pass on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start rqlited on the data directory: with `-bootstrap-expect` when set (a formation; the
    /// `join` list then names every founder, this node included), with `-join join` otherwise
    /// (none: resume from the stored configuration). With `peers_json`, write
    /// `raft/peers.json` with these voters first, and start only if that worked. Answer with
    /// [`Supervisor::handle_started`].
    Start {
        /// `-join` targets (Raft addresses).
        join: Vec<String>,
        /// `-bootstrap-expect`.
        bootstrap_expect: Option<u16>,
        /// The configuration to write to `raft/peers.json` before the start.
        peers_json: Vec<(NodeId, String)>,
        /// As a voter; `false`: with `-raft-non-voter`.
        voter: bool,
    },
    /// Remove this node from its configuration (`/remove` of its own id, through its own
    /// rqlited, which passes it to the leader): the first step of a change of role. Answer
    /// with [`Supervisor::handle_left`].
    Leave,
    /// Ask rqlited `/readyz` and `/status`; answer with [`Supervisor::handle_poll`].
    Poll,
    /// Stop rqlited (SIGTERM, then SIGKILL after a grace).
    Stop(StopWhy),
    /// Delete rqlited's data (volatile mode, rqlited already stopped); answer with
    /// [`Supervisor::handle_wiped`].
    Wipe,
    /// The stored state changed: write it durably.
    Persist(Stored),
    /// Ask rqlited for its members (`/nodes`); answer with [`Supervisor::handle_listing`].
    List(Listing),
    /// Ask rqlited to remove this member (`/remove`); answer with
    /// [`Supervisor::handle_removed`].
    Remove {
        /// Whom.
        id: NodeId,
        /// First ask the rqlited at this HTTP address (`/status`) who it is, and remove
        /// nobody if it answers as `id`: the member still lives at its address, whatever
        /// gossip claimed (see [`crate::supervisor`], "A claim's second witness").
        unless_answering_at: Option<String>,
    },
    /// Ask the rqlited at this HTTP address (the leader gossip names) which members its
    /// configuration holds (`/status`); answer with [`Supervisor::handle_configuration`].
    AskConfiguration {
        /// The leader's HTTP address (`host:port`).
        http: String,
    },
    /// Pass this on to the node.
    Report(Report),
}

impl Action {
    /// The action's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start { .. } => "start",
            Action::Leave => "leave",
            Action::Poll => "poll",
            Action::Stop(_) => "stop",
            Action::Wipe => "wipe",
            Action::Persist(_) => "persist",
            Action::List(_) => "list",
            Action::Remove { .. } => "remove",
            Action::AskConfiguration { .. } => "ask-configuration",
            Action::Report(_) => "report",
        }
    }
}

/// How an [`Action::Remove`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// rqlited removed the member.
    Removed,
    /// rqlited could not (no leader, an error): the reaper looks again later.
    Failed,
    /// The rqlited at the address asked answered as the member itself: nothing was removed.
    AnsweredThere,
}

/// What the supervisor tells the node (and its observers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// rqlited's state changed: [`Node::set_db`].
    Db(DbState),
    /// rqlited's readiness changed.
    Ready(bool),
    /// rqlited ended by itself; it will be restarted.
    Exited(String),
    /// rqlited could not be started.
    StartFailed(String),
    /// A dead member was removed.
    Removed(NodeId),
    /// This node left the configuration to rejoin with another role (`voter`: the new one).
    RoleChanged {
        /// The role it rejoins with.
        voter: bool,
    },
    /// The recorded voters changed: [`Node::set_stored_voters`].
    Voters(Vec<(NodeId, String)>),
    /// The data was deleted (volatile mode): [`Node::wiped`].
    Wiped,
    /// The supervisor woke `late` after a poll was due: the process was stopped or starved
    /// that long ([`super::FROZEN_AFTER`]), and it checks its membership sooner for a while.
    Thawed {
        /// How late the poll's timer fired.
        late: Duration,
    },
}
