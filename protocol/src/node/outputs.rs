//! What a node gives its driver: datagrams to send and [`Event`]s through
//! [`Node::poll_output`](super::Node::poll_output), and the [`Refusal`] of a datagram it drops.

use std::net::SocketAddr;

use thiserror::Error;

use crate::claims::ClaimError;
use crate::coordinator::Decision;
use crate::identity::NodeIdentity;
use crate::wire::WireError;

/// Something the driver must do or may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `datagram` to `to` over UDP.
    Send {
        /// Destination.
        to: SocketAddr,
        /// A complete datagram.
        datagram: Vec<u8>,
    },
    /// Something happened.
    Event(Event),
}

/// What a node reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member became reachable.
    MemberUp(NodeIdentity),
    /// A member was declared down.
    MemberDown(NodeIdentity),
    /// The decision changed.
    Decided(Decision),
    /// Another live process uses this node's id: a human must settle it. Reported once per
    /// offending address.
    DuplicateNodeId {
        /// Where the impostor gossips from.
        addr: SocketAddr,
    },
    /// foca knows no live member: the driver should announce to its discovery targets.
    Idle,
    /// A claim no honest node makes was taken out of a datagram (the rest of it was used).
    ClaimRefused(ClaimError),
    /// This running node took a generation above another life of its id, so that the members
    /// keep it rather than the other process.
    IdentityOutbid {
        /// The new generation.
        generation: u64,
    },
}

/// Why a datagram was dropped. Every variant is counted by the daemon.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The envelope or a card payload was malformed, foreign or of another version.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// foca refused the SWIM payload.
    #[error("swim: {0}")]
    Swim(String),
    /// The datagram came from this very node (e.g. its own address came back from discovery).
    #[error("datagram from this node itself")]
    FromMyself,
    /// The datagram came from another process using this node's id.
    #[error("datagram from another process with this node's id at {0}")]
    DuplicateNodeId(SocketAddr),
    /// The datagram claims what no honest node can (see [`crate::claims`]).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// A card digest from an address no live member gossips from.
    #[error("card digest from {0}, which is not a live member's address")]
    NotAMember(SocketAddr),
    /// "You are down" within [`RENEW_EVERY`](super::RENEW_EVERY) of the last renewal, or while another live
    /// process may hold this node's id: not answered with another renewal.
    #[error("a renewal of this node's identity is not due")]
    Renewing,
}
