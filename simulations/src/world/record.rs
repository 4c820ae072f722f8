//! What a run leaves on record for the invariants and the figures — bootstraps, membership
//! events, counters — and the facts the world hands to its judge at the very transitions.
//!
//! Plain values (this module imports nothing of the world but its configuration), so that the world's state can hold
//! them and `invariants` can read them without the world knowing the invariants.

use std::time::Duration;

use rq4d_protocol::claims::ClaimError;
use rq4d_protocol::{NodeId, Refusal};

use super::config::Forgery;
use crate::rqlite::Reconfiguration;

/// A bootstrap that rqlited carried out: a new Raft cluster.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// When.
    pub at: Duration,
    /// The seed's host.
    pub host: usize,
    /// The seed and the live members it saw.
    pub view: Vec<NodeId>,
    /// Every node of the view belongs to the initial set.
    pub from_initial_set: bool,
}

/// What happened at a transition that can break a safety property: recorded by the world at that
/// very moment and handed to its judge (`super::Judge`) before the run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Fact<'a> {
    /// rqlited carried out a bootstrap (handed over before it joins `World::bootstraps`).
    Bootstrapped(&'a Bootstrap),
    /// A new Raft cluster exists (an index into the model's clusters), under the rq4d cluster id
    /// its founder recorded.
    ClusterFounded {
        /// The cluster.
        cluster: usize,
    },
    /// A host's rqlited was added to a cluster's configuration.
    Joined {
        /// Host.
        host: usize,
        /// The cluster it joined.
        cluster: usize,
        /// The cluster its disk held committed data of before, if another one.
        had_data_of: Option<usize>,
    },
    /// A cluster's configuration changed at the request of `host`'s rq4d: its reaper removed a
    /// member, it left to change its role, it was admitted by a join, or its `peers.json`
    /// replaced the configuration.
    Reconfigured {
        /// The host whose rq4d asked.
        host: usize,
        /// The change, with the cluster's majority just before and just after.
        change: &'a Reconfiguration,
    },
    /// A host's supervisor deleted its data.
    Wiped {
        /// Host.
        host: usize,
    },
    /// A host's node decided to bootstrap.
    DecidedBootstrap {
        /// Host.
        host: usize,
    },
    /// A datagram of a sender outside the cluster (no key, another key, or a replay) reached
    /// a host's node.
    Forged {
        /// Host.
        host: usize,
        /// What was forged.
        forgery: Forgery,
        /// The node's answer.
        outcome: &'a Result<(), Refusal>,
        /// Something of the node changed (its card, decision, members, outputs or timeout).
        changed: bool,
    },
    /// A host's node refused a claim.
    ClaimRefused {
        /// Host.
        host: usize,
        /// Why.
        error: &'a ClaimError,
    },
}

impl Fact<'_> {
    /// The host the fact is about, when there is one.
    pub(super) fn host(&self) -> Option<usize> {
        match *self {
            Self::Bootstrapped(bootstrap) => Some(bootstrap.host),
            Self::ClusterFounded { .. } => None,
            Self::Joined { host, .. }
            | Self::Reconfigured { host, .. }
            | Self::Wiped { host }
            | Self::DecidedBootstrap { host }
            | Self::Forged { host, .. }
            | Self::ClaimRefused { host, .. } => Some(host),
        }
    }
}

/// Membership events observed by nodes (for the figures).
#[derive(Clone, Debug)]
pub struct MemberEvent {
    /// When.
    pub at: Duration,
    /// Which host saw it.
    pub observer: usize,
    /// About whom.
    pub subject: NodeId,
    /// Up (true) or down.
    pub up: bool,
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Events processed.
    pub events: u64,
    /// Datagrams refused by nodes.
    pub refused: u64,
    /// `MemberDown` about a member whose container was running that life.
    pub false_downs: u64,
    /// All `MemberDown` events.
    pub downs: u64,
    /// Forged datagrams handed to nodes.
    pub forged: u64,
    /// Members the leaders' reapers removed.
    pub removals: u64,
    /// Nodes that left the configuration to change their role.
    pub role_changes: u64,
    /// Promotions whose join left more voters than the cap (a step-down, or the reaping of a
    /// dead voter, undoes each).
    pub promotions_over_cap: u64,
}
