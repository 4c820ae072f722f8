//! How a node is set up, and the daemon's defaults.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::card::{ClusterId, DbState};
use crate::coordinator::Faults;
use crate::identity::{NodeId, NodeIdentity};
use crate::seal::{Keyring, SALT_LEN};
use crate::stored::Stored;
use crate::wire::MAX_PAYLOAD;

/// How a node is set up. Built by the daemon from flags, by the simulator from a scenario;
/// [`NodeConfig::new`] gives the daemon's defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `--cluster-name`, hashed into every datagram.
    pub cluster_name: String,
    /// Who this node is in gossip (node id, gossip address, generation).
    pub identity: NodeIdentity,
    /// rqlited's advertised Raft address.
    pub raft_addr: String,
    /// rqlited's advertised HTTP address.
    pub http_addr: String,
    /// `--expect`.
    pub expect: u16,
    /// `--read-only`: a non-voter that never founds a cluster.
    pub read_only: bool,
    /// `--voters`: at most this many voters (`None`: every node that is not read-only votes).
    pub voter_cap: Option<u16>,
    /// What the data directory holds at start.
    pub db: DbState,
    /// The cluster the data directory belongs to, or is bound to, if known.
    pub cluster_id: Option<ClusterId>,
    /// With `cluster_id`: how many founders form that cluster, if this node is bound to its
    /// formation (persisted with the binding, so a restarted founder takes part again).
    pub formation: Option<u16>,
    /// How long the live membership must stay unchanged before an all-empty view may bootstrap.
    pub settle: Duration,
    /// How long a node with data listens to gossip after its start before it may resume without
    /// `-join` (a live leader found in that time is joined instead).
    pub resume_after: Duration,
    /// How often decisions are re-evaluated without any input.
    pub tick: Duration,
    /// How often a digest is sent to one random member (card anti-entropy).
    pub card_sync: Duration,
    /// Own card changes are pushed to every live member up to this many; beyond, to a random
    /// `relay_fanout` of them (the digest covers the rest).
    pub push_all_up_to: usize,
    /// How many random members a newly learnt card is passed on to.
    pub relay_fanout: usize,
    /// Volatile mode: the losing side of a split may delete its data.
    pub volatile: bool,
    /// foca's configuration; [`NodeConfig::swim_config`] gives rq4d's default. Its
    /// retransmissions and suspicion timeout are a floor: the node raises them as its live
    /// membership grows (see [`NodeConfig::swim_for_size`]).
    pub swim: foca::Config,
    /// Seed for this node's randomness (member selection in foca and card relays).
    pub rng_seed: u64,
    /// Deliberately broken rules (simulator tests only; the daemon leaves them off).
    pub faults: Faults,
    /// The voters of this node's cluster as last seen while its rqlited ran (`(id, Raft
    /// address)`), from the data directory; see [`Decision::Resume`](crate::coordinator::Decision::Resume)'s `peers`.
    pub stored_voters: Vec<(NodeId, String)>,
    /// The clusters of the proposals this node acknowledged before its data directory had
    /// data ([`Node::acked`](super::Node::acked), persisted by the driver): a founder that restarts before it saw
    /// its seed decide must still take part in the formation.
    pub acked: Vec<ClusterId>,
    /// The cluster keyring: with one, every datagram is sealed and only sealed ones are
    /// accepted (see [`crate::seal`]); without, gossip is open to anyone who can send to it.
    pub keyring: Option<Keyring>,
    /// The salt at the front of every nonce this node seals with. It must differ between any
    /// two processes that ever share a key, so the daemon draws it from the operating system
    /// at every start; never derive it from the time, the pid or the node id.
    pub nonce_salt: [u8; SALT_LEN],
    /// The wall clock (since the UNIX epoch) at the driver's epoch, `now` = 0: sealed datagrams
    /// are stamped with it, and generations are bounded by it. The daemon corrects it with
    /// [`Node::set_wall_clock`](super::Node::set_wall_clock) when the system clock is stepped.
    pub wall_clock: Duration,
    /// The most members (and cards) a node keeps. At the cap, a newcomer takes the place of
    /// the member down the longest, or is not admitted while every member is alive: a flood of
    /// invented members cannot grow a node's memory without bound.
    pub max_members: usize,
}

impl NodeConfig {
    /// How often decisions are re-evaluated without input, by default.
    pub const TICK: Duration = Duration::from_millis(250);
    /// How often card digests are exchanged, by default.
    pub const CARD_SYNC: Duration = Duration::from_secs(1);
    /// How long a node with data listens before resuming without `-join`, by default.
    pub const RESUME_AFTER: Duration = Duration::from_secs(2);
    /// Own card changes go to every live member up to this many, by default.
    pub const PUSH_ALL_UP_TO: usize = 32;
    /// How many members a newly learnt card is relayed to, by default.
    pub const RELAY_FANOUT: usize = 2;
    /// The member cap, by default: far beyond the voters of any rqlite cluster, read-only
    /// replicas included, and small enough that a full table costs a few megabytes.
    pub const MAX_MEMBERS: usize = 1024;

    /// A node of cluster `cluster_name` with the daemon's defaults: empty, keyless, no settle
    /// period, foca's LAN preset for `expect` (at least 3) members. Drivers set the rest.
    pub fn new(
        cluster_name: impl Into<String>,
        identity: NodeIdentity,
        raft_addr: impl Into<String>,
        http_addr: impl Into<String>,
        expect: u16,
    ) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            identity,
            raft_addr: raft_addr.into(),
            http_addr: http_addr.into(),
            expect,
            read_only: false,
            voter_cap: None,
            db: DbState::Empty,
            cluster_id: None,
            formation: None,
            settle: Duration::ZERO,
            resume_after: Self::RESUME_AFTER,
            tick: Self::TICK,
            card_sync: Self::CARD_SYNC,
            push_all_up_to: Self::PUSH_ALL_UP_TO,
            relay_fanout: Self::RELAY_FANOUT,
            volatile: false,
            swim: Self::swim_config(u32::from(expect.max(3))),
            rng_seed: 0,
            faults: Faults::default(),
            stored_voters: Vec::new(),
            acked: Vec::new(),
            keyring: None,
            nonce_salt: [0; SALT_LEN],
            wall_clock: Duration::ZERO,
            max_members: Self::MAX_MEMBERS,
        }
    }

    /// Takes what the data directory holds: its state (`raft_db`: rqlited's `raft.db` exists),
    /// the cluster it belongs or is bound to, the formation, the recorded voters and the
    /// acknowledged proposals. The daemon, the simulator and the tests start a node on its
    /// disk through this one function.
    pub fn restore(&mut self, stored: &Stored, raft_db: bool) {
        self.db = stored.db_state(raft_db);
        self.cluster_id = stored.cluster_id();
        self.formation = stored.formation();
        self.stored_voters = stored.voters();
        self.acked = stored.acked();
    }

    /// foca's LAN preset for `cluster_size`, with the datagram budget left by the envelope and
    /// notifications for down members (foca tells a member it declared down, so a wrongly
    /// declared one renews its identity at once).
    pub fn swim_config(cluster_size: u32) -> foca::Config {
        let mut config =
            foca::Config::new_lan(NonZeroU32::MIN.saturating_add(cluster_size.max(1) - 1));
        config.max_packet_size = MAX_PAYLOAD.try_into().unwrap_or(config.max_packet_size);
        config.notify_down_members = true;
        config
    }

    /// `base` with the retransmissions and suspicion timeout of foca's LAN preset for a
    /// membership of `size`, where those are larger; the suspicion timeout scaled to `base`'s
    /// probe period. memberlist sizes both from the members it knows, at every use: a change
    /// must be passed on about log N times to reach N members, and a suspicion must last about
    /// log N probe periods for the suspect to hear of it and refute it. Sized once from
    /// `--expect`, a node of a 100-member cluster started with `--expect 3` passed each change
    /// on twice (8 times is log N's share) and called members down after 4 s (8 s): slower
    /// news and more false "down" verdicts than the report's figures, which size foca by N.
    pub fn swim_for_size(base: &foca::Config, size: u32) -> foca::Config {
        let sized = Self::swim_config(size);
        let scale = base.probe_period.as_secs_f64() / sized.probe_period.as_secs_f64();
        let mut config = base.clone();
        config.max_transmissions = base.max_transmissions.max(sized.max_transmissions);
        config.suspect_to_down_after = base
            .suspect_to_down_after
            .max(sized.suspect_to_down_after.mul_f64(scale));
        config
    }
}
