//! rq4d's sans-IO core: everything rq4d decides, as deterministic state machines.
//!
//! * [`wire`] — the datagram envelope (magic, version, cluster tag, kind) and bincode payloads.
//! * [`seal`] — the cluster keyring, sealed datagrams and replay protection.
//! * [`identity`] — the node id and foca identity (node id, gossip address, generation).
//! * [`codec`] — foca's codec over bincode.
//! * [`card`] — what each node tells the others, and how cards reach every member.
//! * [`coordinator`] — the decision rules: bootstrap, join, resume, wait, conflict.
//! * [`reaper`] — which dead voter the leader's daemon removes, if any.
//! * [`stored`] — what a node keeps beside rqlited's files, and how it changes.
//! * [`supervisor`] — what a node's rqlited should be doing: starts, restarts, removals.
//! * [`node`] — foca, the card table and the coordinator behind one input/output API.
//!
//! Time is a parameter (`now: Duration` since an epoch the driver picks); nothing here reads a
//! clock, opens a socket, spawns or blocks. The daemon and the simulator drive the same code.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod card;
pub mod claims;
pub mod codec;
pub mod coordinator;
mod hex64;
pub mod identity;
pub mod node;
pub mod reaper;
pub mod seal;
pub mod stored;
pub mod supervisor;
pub mod wire;

pub use card::{Agreement, Card, ClusterId, DbState, Running, ViewDigest};
pub use coordinator::{Conflict, Decision, Split, Waiting};
pub use identity::{NodeId, NodeIdentity};
pub use node::{Event, Node, NodeConfig, Output, Refusal};
pub use seal::{Key, KeyId, Keyring};
