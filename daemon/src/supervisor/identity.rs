//! The supervisor's second line behind gossip's duplicate-id check: before a plain `-join`, ask
//! the cluster whether it lists this node's id at another Raft address, and whether the node
//! there answers as this id. rqlited would let a joiner with a live member's id evict it.
//!
//! Only `/nodes` tells where the node at a Raft address answers HTTP (rqlited asks it over the
//! Raft port), and `/nodes` waits up to [`PROBE_WITHIN`] on every member that does not answer:
//! the node's own old address among them whenever it comes back at a new one, since that
//! address is dead then. Gossip challenges the old address for a second first
//! (`node/duplicates.rs`), and the check used to wait its listing after that. So the listing is
//! asked for when the challenge begins ([`IdentityCheck::prefetch`]), and the check at the
//! start takes its answer if it lists this id where the join target's configuration does: the
//! two lines wait side by side, not one after the other. The question to the node there is
//! asked at the start, fresh.

use std::time::{Duration, Instant};

use rq4d_protocol::NodeId;
use tokio::task::JoinHandle;

#[cfg(doc)]
use crate::rqlite::PROBE_WITHIN;
use crate::rqlite::{Access, RaftNode, Rqlite, RqliteError};

/// How old a listing asked for during the challenge may be when the start comes: the challenge
/// lasts a second, the listing up to [`PROBE_WITHIN`].
const PREFETCH_FRESH: Duration = Duration::from_secs(5);

/// The check, with the listing asked for ahead of it, if any.
pub(super) struct IdentityCheck {
    access: Access,
    node_id: NodeId,
    raft_adv: String,
    prefetch: Option<Prefetch>,
}

/// A `/nodes` listing asked for while gossip's challenge runs.
struct Prefetch {
    asked: Instant,
    task: JoinHandle<Result<Vec<RaftNode>, RqliteError>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl IdentityCheck {
    pub(super) fn new(access: Access, node_id: NodeId, raft_adv: String) -> Self {
        Self {
            access,
            node_id,
            raft_adv,
            prefetch: None,
        }
    }

    /// Gossip challenges another life of this node's id: asks the member at `http` for its
    /// listing now, unless a fresh one is asked already.
    pub(super) fn prefetch(&mut self, http: &str) {
        if self
            .prefetch
            .as_ref()
            .is_some_and(|p| p.asked.elapsed() < PREFETCH_FRESH)
        {
            return;
        }
        let member = Rqlite::new(&self.access, http);
        tracing::debug!(%http, "asking for the members' listing while gossip's identity challenge runs");
        self.prefetch = Some(Prefetch {
            asked: Instant::now(),
            task: tokio::spawn(async move { member.nodes().await }),
        });
    }

    /// Asks the member at `http` (a join target): does the cluster list this node's id at
    /// another Raft address, and does the node there answer as this id? Returns that address
    /// if so. Any failure to ask is no evidence: the check never blocks a join on its own
    /// trouble.
    pub(super) async fn in_use(&mut self, http: &str) -> Option<String> {
        let prefetched = self.prefetch.take();
        let target = Rqlite::new(&self.access, http);
        // First the configuration from `/status`, which probes nobody: only an entry with this
        // id at another address needs a listing, for the address its HTTP answers at.
        let configured = match target.configuration().await {
            Ok(Some(configured)) => Some(
                configured
                    .into_iter()
                    .find(|(id, _)| id == self.node_id.as_str())
                    .map(|(_, addr)| addr)
                    .filter(|addr| *addr != self.raft_adv)?,
            ),
            _ => None,
        };
        let elsewhere = |nodes: Vec<RaftNode>| {
            nodes.into_iter().find(|n| {
                n.id == self.node_id.as_str()
                    && n.addr != self.raft_adv
                    && configured.as_ref().is_none_or(|addr| *addr == n.addr)
            })
        };
        // The listing asked for during the challenge, if it is recent and lists this id where
        // the target's configuration does; else the target's own.
        let from_prefetch = match prefetched {
            Some(mut p) if p.asked.elapsed() < PREFETCH_FRESH => match (&mut p.task).await {
                Ok(Ok(nodes)) => elsewhere(nodes),
                _ => None,
            },
            _ => None,
        };
        let listed = match from_prefetch {
            Some(listed) => listed,
            None => elsewhere(target.nodes().await.ok()?)?,
        };
        if listed.api_addr.is_empty() {
            return None;
        }
        let status = Rqlite::at(&self.access, listed.api_addr.clone())
            .status()
            .await
            .ok()?;
        (status.node_id == self.node_id.as_str()).then_some(listed.addr)
    }
}
