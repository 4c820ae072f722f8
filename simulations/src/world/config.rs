//! How a world is set up, and what a scenario does to it from outside: the plain values the
//! scenarios and measurements build worlds from, apart from the loop that runs them.

use std::time::Duration;

use rq4d_protocol::coordinator::Faults;
use rq4d_protocol::{Keyring, NodeConfig};

use crate::network::LinkParams;

/// How the world is set up.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// `--expect` on every node.
    pub expect: u16,
    /// `--voters` on every node (`None`: every node that is not read-only votes).
    pub voter_cap: Option<u16>,
    /// `--volatile` on every node.
    pub volatile: bool,
    /// Deliberately broken rules (tests of the search only).
    pub faults: Faults,
    /// How links behave.
    pub link: LinkParams,
    /// DNS lag.
    pub dns_lag: Duration,
    /// DNS answers hold at most this many records.
    pub dns_limit: Option<usize>,
    /// `--settle`.
    pub settle: Duration,
    /// Card anti-entropy period.
    pub card_sync: Duration,
    /// Card pushes go to everyone up to this many members.
    pub push_all_up_to: usize,
    /// Card relay fanout.
    pub relay_fanout: usize,
    /// `--reap-after`.
    pub reap_after: Duration,
    /// Run rqlited (model) under the supervisor; off: each host's database state is fixed.
    pub rqlite: bool,
    /// Keep a readable trace.
    pub trace: bool,
    /// Leave the trace's noise out: who sees whom up or down, and nodes waiting for cards.
    pub quiet: bool,
    /// Record who acknowledged which seed and who saw whom down (to classify double
    /// bootstraps).
    pub track_agreement: bool,
    /// Added to every generation (the start time in milliseconds): the daemon's generations
    /// are wall-clock milliseconds, about 1.7 × 10¹², whose varints are 4–5 bytes longer on
    /// the wire than a small simulated clock's. The membership figures set it so that their
    /// byte counts are the daemon's; the scenario search leaves it at 0.
    pub generation_base: u64,
    /// The cluster keyring every node seals its gossip with (`--gossip-key`); `None`: open
    /// gossip. Volatile mode needs one, as the daemon insists.
    pub keyring: Option<Keyring>,
}

impl WorldConfig {
    /// The daemon's defaults, for a cluster expecting `expect` nodes.
    pub fn daemon_defaults(seed: u64, expect: u16) -> Self {
        Self {
            seed,
            expect,
            voter_cap: None,
            volatile: false,
            faults: Faults::default(),
            link: LinkParams::lan(),
            dns_lag: Duration::ZERO,
            dns_limit: None,
            // The daemon's `--settle` default: safety does not rest on it.
            settle: Duration::ZERO,
            card_sync: NodeConfig::CARD_SYNC,
            push_all_up_to: NodeConfig::PUSH_ALL_UP_TO,
            relay_fanout: NodeConfig::RELAY_FANOUT,
            reap_after: Duration::from_secs(60),
            rqlite: true,
            trace: false,
            quiet: false,
            track_agreement: true,
            generation_base: 0,
            keyring: None,
        }
    }
}

/// Something done to the world from outside (a scenario step).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Starts a host's container (its first start, or after a `Crash`).
    Start {
        /// Host.
        host: usize,
        /// Restart at a new IP (same id, same volume).
        new_address: bool,
    },
    /// Kills a host's container: no goodbye, rqlited killed, the volume kept.
    Crash {
        /// Host.
        host: usize,
    },
    /// Stops a host for good, gracefully (scale-down): leaves the gossip, stops rqlited.
    ScaleDown {
        /// Host.
        host: usize,
    },
    /// Loses a host's volume: the host is gone; `replacement` (a new id, empty volume) starts.
    Replace {
        /// The host whose volume is lost.
        host: usize,
        /// The new host that takes its place.
        replacement: usize,
    },
    /// Splits the hosts into groups that cannot reach each other.
    Partition {
        /// The groups.
        groups: Vec<Vec<usize>>,
    },
    /// These hosts cannot send to the others (but still receive).
    CutOneWay {
        /// The muted hosts.
        hosts: Vec<usize>,
    },
    /// Removes every partition.
    Heal,
    /// Changes the loss rate of every link.
    SetLoss(f64),
    /// A sender outside the cluster sends every live node a forgery (see `world/forgery.rs`).
    Forge(Forgery),
}

/// What a sender without the cluster's key can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Open datagrams: SWIM gossip declaring every live member down in a later life, and a card
    /// push naming a leader of another cluster.
    Open,
    /// The same, sealed with a key that is not the cluster's.
    WrongKey,
    /// A datagram the node really received, sent again from its sender's address.
    Replay,
}
