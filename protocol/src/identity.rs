//! Who a node is in gossip: a stable [`NodeId`], where to reach it, and which life of it this is.
//!
//! ## Why foca's `Addr` is the node id, not the socket address
//!
//! foca keeps one member per [`foca::Identity::addr`] and settles two identities with the same
//! `Addr` through [`foca::Identity::win_addr_conflict`]. In containers the *node id* is what stays
//! (it is persisted in the data volume) and the IP is what changes: a container that comes back
//! with its volume has the same node id at a new address. With `Addr = NodeId` the new identity
//! (higher generation) simply replaces the old one (`Rename`), the old address is forgotten at
//! once, and there is never a ghost member at the old IP waiting to be declared down. Had the
//! socket address been the `Addr`, the old and new lives of one node would be two members, and a
//! new container that happened to reuse a dead one's IP would inherit its identity.
//!
//! The generation is chosen by the daemon at start (wall-clock milliseconds), so a restarted
//! node always wins over its previous life; [`foca::Identity::renew`] bumps it by one so a node
//! wrongly declared down rejoins at once.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest node id accepted, in bytes: it travels in every SWIM message.
pub const MAX_NODE_ID: usize = 64;

/// A node's stable name: the same for a data directory's whole life, and the `-node-id` rqlited
/// gets. Validated on construction and on decode (1–64 bytes of `[A-Za-z0-9._-]`), so it is safe
/// to put on a command line and into a file name.
///
/// Shared (`Arc<str>`), because it is cloned all the time: it is foca's `Addr`, and foca looks a
/// member up by comparing `Identity::addr()` of every member, which returns a clone — with a
/// `String` that was an allocation per member per update (the simulator's profile at 300 nodes
/// spent most of its time there).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

/// Why a string is not a node id.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NodeIdError {
    /// Empty string.
    #[error("node id is empty")]
    Empty,
    /// Longer than [`MAX_NODE_ID`].
    #[error("node id is {0} bytes long; at most {MAX_NODE_ID} are allowed")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("node id contains {0:?}; only letters, digits, '.', '_' and '-' are allowed")]
    BadChar(char),
}

impl NodeId {
    /// Checks and wraps `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, NodeIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if id.len() > MAX_NODE_ID {
            return Err(NodeIdError::TooLong(id.len()));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(NodeIdError::BadChar(bad));
        }
        Ok(Self(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// foca's identity for one life of one node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// The stable name; foca's `Addr`.
    pub node_id: NodeId,
    /// Where this life of the node receives gossip.
    pub addr: SocketAddr,
    /// Which life: larger wins. Set from the start time by the daemon.
    pub generation: u64,
}

impl foca::Identity for NodeIdentity {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> NodeId {
        self.node_id.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Later life wins; the socket address only breaks an exact tie so both sides agree.
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn identity(generation: u64, addr: &str) -> NodeIdentity {
        NodeIdentity {
            node_id: NodeId::new("n1").expect("valid"),
            addr: addr.parse().expect("addr"),
            generation,
        }
    }

    #[test]
    fn a_restarted_node_at_a_new_ip_wins_over_its_old_life() {
        let old = identity(100, "10.0.0.5:7946");
        let new = identity(200, "10.0.0.9:7946");
        assert_eq!(old.addr(), new.addr(), "same member for foca");
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_renewed_identity_wins_over_the_one_declared_down() {
        let down = identity(100, "10.0.0.5:7946");
        let renewed = down.renew().expect("renews");
        assert!(renewed.win_addr_conflict(&down));
    }

    #[test]
    fn node_ids_are_validated() {
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
        assert_eq!(NodeId::new("a".repeat(65)), Err(NodeIdError::TooLong(65)));
        assert_eq!(NodeId::new("a b"), Err(NodeIdError::BadChar(' ')));
        assert!(NodeId::new("rqlite-3.example_1").is_ok());
    }
}
