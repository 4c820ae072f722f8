//! A sender outside the cluster, without its key, and the check that nothing it sends is taken.
//!
//! In a keyed world (every node seals with the cluster keyring, as the compose files require and
//! `--volatile` insists), [`Action::Forge`](super::Action::Forge) makes a stranger send every live
//! node, from an address no host holds — or, for a replay, from the real sender's:
//!
//! * [`Forgery::Open`] — open datagrams that would be believed without a key: SWIM gossip that
//!   declares every live member down in its next life, and a card push in which a live member,
//!   at the stranger's address, leads another cluster;
//! * [`Forgery::WrongKey`] — the same, sealed with a key that is not the cluster's;
//! * [`Forgery::Replay`] — the last datagram the node really received in this life, sent again.
//!
//! Each must be refused by the seal and leave the node as it was — card, decision, members, and
//! nothing to send or schedule — which [`Fact::Forged`] hands to the judge at once.

use std::net::SocketAddr;
use std::time::Duration;

use foca::{Header, Member, Message};
use rq4d_protocol::card::CardMessage;
use rq4d_protocol::seal::{Key, Keyring, SALT_LEN, Sealer};
use rq4d_protocol::wire::{self, Kind};
use rq4d_protocol::{Card, ClusterId, NodeId, NodeIdentity, Running};
use rq4d_protocol::{DbState, Node};

use super::World;
use super::config::Forgery;
use super::record::Fact;

/// Where the stranger sends from: outside the hosts' range.
const STRANGER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 66)),
    7946,
);

/// A datagram a node received, kept for a replay: from whom, what, in which life of the node.
#[derive(Clone, Debug)]
pub(super) struct Captured {
    pub(super) from: SocketAddr,
    pub(super) bytes: Vec<u8>,
    pub(super) life: u32,
}

/// What of a node a forgery must not change.
#[derive(PartialEq)]
struct Observed {
    card: Card,
    decision: rq4d_protocol::Decision,
    members: Vec<(NodeId, NodeIdentity, bool)>,
    timeout: Option<Duration>,
}

impl Observed {
    fn of(node: &Node) -> Self {
        Self {
            card: node.card().clone(),
            decision: node.decision().clone(),
            members: node
                .members()
                .iter()
                .map(|(id, m)| (id.clone(), m.identity.clone(), m.alive))
                .collect(),
            timeout: node.poll_timeout(),
        }
    }
}

impl World {
    /// Sends every live node the forgery.
    pub(super) fn forge(&mut self, forgery: Forgery) {
        let live: Vec<usize> = self.live_hosts().collect();
        for host in live {
            let datagrams = match forgery {
                Forgery::Open => self.lies(host, None),
                Forgery::WrongKey => {
                    let stranger = Keyring::single(Key::from_bytes([0xEE; 32]));
                    self.lies(host, Some(stranger))
                }
                Forgery::Replay => match &self.hosts[host].captured {
                    Some(c) if c.life == self.hosts[host].life => vec![(c.from, c.bytes.clone())],
                    _ => Vec::new(),
                },
            };
            for (from, bytes) in datagrams {
                self.deliver_forged(host, forgery, from, &bytes);
            }
        }
    }

    /// Open lies about `host`'s cluster, sealed with `keyring` when given.
    fn lies(&self, host: usize, keyring: Option<Keyring>) -> Vec<(SocketAddr, Vec<u8>)> {
        let Some(target) = self.hosts[host].node.as_ref() else {
            return Vec::new();
        };
        let stranger = NodeIdentity {
            node_id: NodeId::new("stranger").unwrap_or_else(|_| target.identity().node_id.clone()),
            addr: STRANGER,
            generation: self.now.as_millis() as u64 + 1,
        };
        // Every live member down, one life later: believable, were it sealed.
        let downs: Vec<Member<NodeIdentity>> = target
            .members()
            .values()
            .filter(|m| m.alive)
            .map(|m| {
                Member::down(NodeIdentity {
                    generation: m.identity.generation + 1,
                    ..m.identity.clone()
                })
            })
            .collect();
        let header = Header {
            src: stranger,
            src_incarnation: 0,
            dst: target.identity().clone(),
            message: Message::Gossip,
        };
        // A live member, moved to the stranger's address, leads another cluster.
        let mut card = target.card().clone();
        card.gossip_addr = STRANGER;
        card.raft_addr = format!("{}:4002", STRANGER.ip());
        card.http_addr = format!("{}:4001", STRANGER.ip());
        card.generation += 1;
        card.cluster_id = Some(ClusterId(0xF0F0));
        card.db = DbState::Running(Running {
            leader: Some(card.node_id.clone()),
            term: 99,
            voters: 3,
            voter: true,
            non_voter: false,
        });
        let tag = wire::cluster_tag("sim");
        let mut sealer = keyring.map(|k| Sealer::new(Some(k), [0x66; SALT_LEN]));
        let wall = self.wall_clock();
        let mut frame = |kind, payload: Vec<u8>| match sealer.as_mut() {
            Some(sealer) => sealer.seal(kind, tag, &payload, wall).ok(),
            None => wire::Envelope::unsealed(kind, tag, &payload).ok(),
        };
        let swim = rq4d_protocol::codec::swim_payload(&header, &downs).ok();
        let cards = CardMessage::Push { cards: vec![card] }.encode().ok();
        [
            swim.and_then(|p| frame(Kind::Swim, p)),
            cards.and_then(|p| frame(Kind::Cards, p)),
        ]
        .into_iter()
        .flatten()
        .map(|bytes| (STRANGER, bytes))
        .collect()
    }

    /// The simulated wall clock (what sealed datagrams are stamped with).
    fn wall_clock(&self) -> Duration {
        Duration::from_millis(self.config.generation_base) + self.now
    }

    /// Hands one forged datagram to `host`'s node and the outcome to the judge.
    fn deliver_forged(&mut self, host: usize, forgery: Forgery, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
        let before = Observed::of(node);
        let outcome = node.handle_datagram(from, bytes, now);
        let produced = node.poll_output().is_some();
        let changed = produced || Observed::of(node) != before;
        self.counters.forged += 1;
        self.judge(&Fact::Forged {
            host,
            forgery,
            outcome: &outcome,
            changed,
        });
        self.settle(host);
    }
}
