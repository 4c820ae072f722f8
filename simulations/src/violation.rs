//! What a failed property is: its kind, when, and what happened.
//!
//! A leaf module (it imports nothing of the crate), so that the world, which records violations,
//! and the invariants, which find them, both depend on it and not on each other.

use std::fmt;
use std::time::Duration;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Two clusters bootstrapped from one initial set.
    DoubleBootstrap,
    /// A node with data joined another cluster as a fresh node.
    DataJoinedOther,
    /// A node's data was deleted outside volatile mode.
    DataLost,
    /// A node with data decided to bootstrap.
    BootstrapWithData,
    /// A second Raft cluster was bootstrapped under the rq4d cluster id of an existing one: a
    /// split that rq4d's split detection (which compares cluster ids) cannot see.
    ClusterIdReused,
    /// The cluster did not form within the bound.
    NotConverged,
    /// A node refused a claim of an honest node (a bound too tight).
    HonestClaimRefused,
    /// A node took a datagram of a sender without the cluster's key, or one changed it.
    ForgeryTaken,
    /// A change of configuration rq4d asked for (a removal, a change of role, a join) left a
    /// cluster whose voters had a live majority without one.
    MajorityLost,
    /// A read-only replica became a voter, or decided to found a cluster.
    ReadOnlyVoter,
    /// The cluster formed, but its voters never became what the cap and the read-only flags
    /// make them: more than the cap, fewer than the eligible live nodes allow, or an eligible
    /// node left out without a cap.
    VotersUnsettled,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DoubleBootstrap => "double-bootstrap",
            Self::DataJoinedOther => "data-joined-other-cluster",
            Self::DataLost => "data-lost",
            Self::BootstrapWithData => "bootstrap-with-data",
            Self::ClusterIdReused => "cluster-id-reused",
            Self::NotConverged => "not-converged",
            Self::HonestClaimRefused => "honest-claim-refused",
            Self::ForgeryTaken => "forgery-taken",
            Self::MajorityLost => "majority-lost-by-reconfiguration",
            Self::ReadOnlyVoter => "read-only-voter",
            Self::VotersUnsettled => "voters-unsettled",
        })
    }
}

/// One failure of a property.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Which property.
    pub kind: Kind,
    /// When.
    pub at: Duration,
    /// What happened, readable.
    pub detail: String,
    /// A double bootstrap explained by the seed-isolation window.
    pub window: bool,
}
