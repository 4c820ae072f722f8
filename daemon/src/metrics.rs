//! Prometheus metrics, served as text on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A label with one value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why (a datagram was dropped) or which (decision, member state).
    pub reason: String,
}

/// Members by gossip state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    /// `alive` or `down`.
    pub state: String,
}

/// Decisions by kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// `wait`, `bootstrap`, `join`, …
    pub kind: String,
}

/// What was built: `rq4d_build_info{version, revision} 1`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Build {
    /// The crate version.
    pub version: String,
    /// The git revision built (`unknown` outside a checkout).
    pub revision: String,
}

/// Raft members by role.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Role {
    /// `voter` or `non_voter`.
    pub role: String,
}

/// Every metric rq4d exports.
pub struct Metrics {
    registry: Registry,
    /// Datagrams received.
    pub datagrams_in: Counter,
    /// Datagrams sent.
    pub datagrams_out: Counter,
    /// Datagrams dropped, by reason.
    pub datagrams_dropped: Family<Reason, Counter>,
    /// Impossible claims taken out of datagrams that were otherwise used.
    pub claims_refused: Counter,
    /// Members by state (this node included as alive).
    pub members: Family<State, Gauge>,
    /// Decisions taken, by kind.
    pub decisions: Family<Kind, Counter>,
    /// Unexpected rqlited exits.
    pub rqlited_restarts: Counter,
    /// Dead members (voters or not) removed by this node.
    pub removals: Counter,
    /// Changes of this node's own role, by the role taken.
    pub role_changes: Family<Role, Counter>,
    /// 1 while rqlited is ready.
    pub rqlited_ready: Gauge,
    /// 1 while this node's rqlited leads.
    pub leader: Gauge,
    /// Live Raft members of this node's cluster by role, as this node's gossip sees them.
    pub raft_members: Family<Role, Gauge>,
    /// Always 1, labelled with what was built.
    pub build_info: Family<Build, Gauge>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rq4d");
        let metrics = Self {
            datagrams_in: Counter::default(),
            datagrams_out: Counter::default(),
            datagrams_dropped: Family::default(),
            claims_refused: Counter::default(),
            members: Family::default(),
            decisions: Family::default(),
            rqlited_restarts: Counter::default(),
            removals: Counter::default(),
            role_changes: Family::default(),
            rqlited_ready: Gauge::default(),
            leader: Gauge::default(),
            raft_members: Family::default(),
            build_info: Family::default(),
            registry: Registry::default(),
        };
        metrics
            .build_info
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION").into(),
                revision: env!("RQ4D_REVISION").into(),
            })
            .set(1);
        registry.register(
            "datagrams_received",
            "Gossip datagrams received",
            metrics.datagrams_in.clone(),
        );
        registry.register(
            "datagrams_sent",
            "Gossip datagrams sent",
            metrics.datagrams_out.clone(),
        );
        registry.register(
            "datagrams_dropped",
            "Gossip datagrams dropped, by reason",
            metrics.datagrams_dropped.clone(),
        );
        registry.register(
            "claims_refused",
            "Impossible claims (future generations, overlong versions, members past the cap) taken out of gossip",
            metrics.claims_refused.clone(),
        );
        registry.register(
            "members",
            "Gossip members by state",
            metrics.members.clone(),
        );
        registry.register(
            "decisions",
            "Coordinator decisions taken, by kind",
            metrics.decisions.clone(),
        );
        registry.register(
            "rqlited_restarts",
            "Unexpected rqlited exits",
            metrics.rqlited_restarts.clone(),
        );
        registry.register(
            "removals",
            "Dead members (voters and non-voters) removed from Raft by this node",
            metrics.removals.clone(),
        );
        registry.register(
            "role_changes",
            "Changes of this node's Raft role under --voters, by the role taken",
            metrics.role_changes.clone(),
        );
        registry.register(
            "rqlited_ready",
            "1 while rqlited answers /readyz",
            metrics.rqlited_ready.clone(),
        );
        registry.register(
            "leader",
            "1 while this node's rqlited leads its cluster",
            metrics.leader.clone(),
        );
        registry.register(
            "raft_members",
            "Live Raft members of this node's cluster by role, as its gossip sees them",
            metrics.raft_members.clone(),
        );
        registry.register(
            "build_info",
            "rq4d's version and git revision",
            metrics.build_info.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Creates the labelled series that would otherwise appear only with their first event:
    /// the drop reasons and both roles, at 0.
    pub fn show_from_the_start(&self, drop_reasons: &[&str]) {
        for reason in drop_reasons {
            let _series = self.datagrams_dropped.get_or_create(&Reason {
                reason: reason.to_string(),
            });
        }
        for role in ["voter", "non_voter"] {
            let _series = self.role_changes.get_or_create(&Role { role: role.into() });
        }
    }

    /// Counts a dropped datagram.
    pub fn dropped(&self, reason: &str) {
        self.datagrams_dropped
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
