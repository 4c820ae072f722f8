//! What a node keeps beside rqlited's own files (`<data-dir>/rq4d.json` in the daemon): one type
//! with its transitions, so that the daemon, which writes it durably, and the simulator, which
//! keeps it on its model disk, hold the same state and change it by the same rules.
//!
//! The node id must never change for a data directory (rqlited leaves a node with a changed id
//! leaderless), so it is written on first start and wins over the hostname afterwards.
//!
//! `committed` answers a question `raft.db` alone cannot: an rqlited whose `-join` failed leaves
//! a `raft.db` without any configuration, and restarting it without `-join` would bootstrap a
//! second cluster. So rq4d counts rqlited's state as data only once it is committed: once its
//! `/status` shows it a voter of its configuration (a founder of a new cluster and a joiner
//! alike; before that its Raft state holds nothing anyone needs).
//!
//! Before it has data, a node may be *bound*: it is a founder of an agreed formation (cluster id
//! and the number of founders) or decided to join a cluster. The binding is kept too, so a
//! restarted container keeps its word instead of taking part in a second agreement.
//!
//! Every transition returns whether anything changed: the driver persists the state then.

use serde::{Deserialize, Serialize};

use crate::card::{ClusterId, DbState};
use crate::identity::NodeId;

/// The stored state (the daemon's `rq4d.json`; its field names are the file's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The node id this data directory belongs to.
    pub node_id: Option<NodeId>,
    /// The cluster rqlited's state belongs to, or the one this node is bound to.
    #[serde(default)]
    pub cluster_id: Option<u64>,
    /// While bound to the formation of `cluster_id`: how many founders form it. A founder that
    /// restarts must take part again, or the cluster never forms.
    #[serde(default)]
    pub formation: Option<u16>,
    /// The clusters of the proposals this node acknowledged while empty: a founder that
    /// restarts before it saw its seed decide is a founder all the same.
    #[serde(default)]
    pub acked: Vec<u64>,
    /// Voters in the configuration when last seen running.
    #[serde(default)]
    pub last_voters: u16,
    /// rqlited's state is a real member's (see the module docs).
    #[serde(default)]
    pub committed: bool,
    /// The voters (id, Raft address) when last seen running: what a recovery with
    /// `raft/peers.json` needs when every voter comes back at a new address.
    #[serde(default)]
    pub voters: Vec<(String, String)>,
    /// rqlited's state is a non-voter's (read-only, or beyond the voter cap) when last seen
    /// running: a restart joins with the same role, never silently another (a join at a new
    /// address takes the flag it is given).
    #[serde(default)]
    pub non_voter: bool,
}

impl Stored {
    /// True when rqlited's state counts as data: `raft.db` exists and is committed.
    pub fn has_data(&self, raft_db: bool) -> bool {
        raft_db && self.committed
    }

    /// What the disk says while rqlited is not running.
    pub fn db_state(&self, raft_db: bool) -> DbState {
        if self.has_data(raft_db) {
            DbState::HasData {
                last_voters: self.last_voters,
            }
        } else {
            DbState::Empty
        }
    }

    /// The cluster the data belongs to (or the node is bound to).
    pub fn cluster_id(&self) -> Option<ClusterId> {
        self.cluster_id.map(ClusterId)
    }

    /// How many founders form the cluster this node is bound to, while it forms.
    pub fn formation(&self) -> Option<u16> {
        self.formation
    }

    /// The clusters of the proposals this node acknowledged while empty.
    pub fn acked(&self) -> Vec<ClusterId> {
        self.acked.iter().copied().map(ClusterId).collect()
    }

    /// The voters recorded while rqlited ran (entries that are no node id are skipped).
    pub fn voters(&self) -> Vec<(NodeId, String)> {
        self.voters
            .iter()
            .filter_map(|(id, addr)| Some((NodeId::new(id.as_str()).ok()?, addr.clone())))
            .collect()
    }

    /// Records the node id.
    pub fn set_node_id(&mut self, id: &NodeId) -> bool {
        if self.node_id.as_ref() == Some(id) {
            return false;
        }
        self.node_id = Some(id.clone());
        true
    }

    /// Records the proposals acknowledged (nothing once the state is committed).
    pub fn record_acked(&mut self, acked: &[ClusterId]) -> bool {
        let acked: Vec<u64> = acked.iter().map(|c| c.0).collect();
        if self.committed || self.acked == acked {
            return false;
        }
        self.acked = acked;
        true
    }

    /// Records the cluster (and formation) this node is bound to before it has data (it is a
    /// founder of a formation, or decided to join): a restarted container must not forget it
    /// and take part in a second agreement (found by the simulator's search). Refused once the
    /// state is committed: then the cluster is the data's, not a choice.
    pub fn bind(&mut self, cluster: ClusterId, formation: Option<u16>) -> bool {
        if self.committed || (self.cluster_id == Some(cluster.0) && self.formation == formation) {
            return false;
        }
        self.cluster_id = Some(cluster.0);
        self.formation = formation;
        true
    }

    /// Records that rqlited's state is a member's of `cluster` with `voters` voters.
    pub fn commit(&mut self, cluster: Option<ClusterId>, voters: u16) -> bool {
        let next = Self {
            cluster_id: cluster.map(|c| c.0).or(self.cluster_id),
            formation: None,
            acked: Vec::new(),
            last_voters: voters,
            committed: true,
            ..self.clone()
        };
        if next == *self {
            return false;
        }
        *self = next;
        true
    }

    /// Records whether rqlited's state is a voter's (once committed).
    pub fn record_role(&mut self, voter: bool) -> bool {
        let non_voter = !voter;
        if !self.committed || self.non_voter == non_voter {
            return false;
        }
        self.non_voter = !voter;
        true
    }

    /// Records the voters rqlited reports.
    pub fn record_voters(&mut self, voters: &[(NodeId, String)]) -> bool {
        let voters: Vec<(String, String)> = voters
            .iter()
            .map(|(id, addr)| (id.to_string(), addr.clone()))
            .collect();
        if voters == self.voters {
            return false;
        }
        self.voters = voters;
        true
    }

    /// Forgets everything but the node id: rqlited's state was deleted (volatile mode).
    pub fn wiped(&mut self) {
        *self = Self {
            node_id: self.node_id.clone(),
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> NodeId {
        NodeId::new(text).expect("id")
    }

    #[test]
    fn an_uncommitted_raft_db_is_not_data() {
        let mut stored = Stored::default();
        assert_eq!(
            stored.db_state(true),
            DbState::Empty,
            "a failed join leaves no data"
        );
        assert!(stored.commit(Some(ClusterId(5)), 3));
        assert_eq!(stored.db_state(true), DbState::HasData { last_voters: 3 });
        assert_eq!(
            stored.db_state(false),
            DbState::Empty,
            "no raft.db, no data"
        );
        assert_eq!(stored.cluster_id(), Some(ClusterId(5)));
    }

    #[test]
    fn a_committed_cluster_is_never_rebound_and_commit_ends_the_formation() {
        let mut stored = Stored::default();
        assert!(stored.bind(ClusterId(8), Some(3)));
        assert!(
            !stored.bind(ClusterId(8), Some(3)),
            "no change, nothing to persist"
        );
        // Uncommitted: a founder that gave up its formation for another cluster is rebound.
        assert!(stored.bind(ClusterId(9), None));
        assert!(stored.record_acked(&[ClusterId(1)]));
        assert!(stored.commit(None, 3));
        assert_eq!(stored.cluster_id(), Some(ClusterId(9)));
        assert_eq!(stored.formation(), None);
        assert!(stored.acked().is_empty());
        assert!(
            !stored.bind(ClusterId(10), None),
            "the data's cluster is not a choice"
        );
        assert!(!stored.record_acked(&[ClusterId(2)]));
        assert_eq!(stored.cluster_id(), Some(ClusterId(9)));
    }

    #[test]
    fn a_wipe_keeps_only_the_node_id() {
        let mut stored = Stored::default();
        stored.set_node_id(&id("n1"));
        stored.commit(Some(ClusterId(5)), 3);
        stored.record_voters(&[(id("n1"), "10.0.0.1:4002".into())]);
        stored.wiped();
        assert_eq!(
            stored,
            Stored {
                node_id: Some(id("n1")),
                ..Stored::default()
            }
        );
    }

    #[test]
    fn the_file_format_reads_back_and_tolerates_missing_fields() {
        let mut stored = Stored::default();
        stored.set_node_id(&id("n1"));
        stored.commit(Some(ClusterId(5)), 3);
        let text = serde_json::to_string(&stored).expect("json");
        assert_eq!(
            serde_json::from_str::<Stored>(&text).expect("reads"),
            stored
        );
        let old: Stored = serde_json::from_str(r#"{"node_id":"n1"}"#).expect("older file");
        assert_eq!(old.node_id, Some(id("n1")));
        assert!(!old.committed);
    }
}
