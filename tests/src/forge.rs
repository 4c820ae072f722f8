//! Datagrams as an attacker on the network would write them. rq4d's wire format is public, so
//! the forger builds them with rq4d's own protocol crate, and sends them from a socket of its
//! own — what anybody who can reach a node's gossip port can do.

use std::net::{SocketAddr, UdpSocket};

use foca::{Header, Member, Message};
use rq4d_protocol::card::CardMessage;
use rq4d_protocol::seal::Sealer;
use rq4d_protocol::wire::{self, Envelope, Kind};
use rq4d_protocol::{Card, Keyring, NodeId, NodeIdentity};
use serde_json::Value;

/// A socket that speaks rq4d's wire format without being a node.
pub struct Forger {
    socket: UdpSocket,
    tag: u64,
    sealer: Option<Sealer>,
}

impl Forger {
    /// A forger at `ip` (any free port) for the cluster named `cluster`, sending open datagrams.
    pub fn new(ip: &str, cluster: &str) -> std::io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind((ip, 0))?,
            tag: wire::cluster_tag(cluster),
            sealer: None,
        })
    }

    /// Seals what it sends with `keyring` (a stolen key, or the wrong one).
    pub fn sealing_with(mut self, keyring: Keyring) -> Self {
        let mut salt = [0u8; rq4d_protocol::seal::SALT_LEN];
        salt[..4].copy_from_slice(
            &self
                .socket
                .local_addr()
                .map_or(0, |a| a.port() as u32)
                .to_be_bytes(),
        );
        self.sealer = Some(Sealer::new(Some(keyring), salt));
        self
    }

    /// Where its datagrams come from.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    /// An identity of the forger itself (a stranger that gossips from its own socket).
    pub fn identity(&self, name: &str) -> NodeIdentity {
        NodeIdentity {
            node_id: NodeId::new(name).expect("id"),
            addr: self.addr(),
            generation: now_ms(),
        }
    }

    /// Frames (and, with a keyring, seals) `payload` of `kind`.
    pub fn datagram(&mut self, kind: Kind, payload: &[u8]) -> Vec<u8> {
        match &mut self.sealer {
            Some(sealer) => sealer
                .seal(
                    kind,
                    self.tag,
                    payload,
                    std::time::Duration::from_millis(now_ms()),
                )
                .expect("fits"),
            None => Envelope::unsealed(kind, self.tag, payload).expect("fits"),
        }
    }

    /// A SWIM message as foca writes it: header, update count, updates.
    pub fn swim(
        &mut self,
        src: NodeIdentity,
        dst: NodeIdentity,
        message: Message<NodeIdentity>,
        updates: &[Member<NodeIdentity>],
    ) -> Vec<u8> {
        let header = Header {
            src,
            src_incarnation: 0,
            dst,
            message,
        };
        let payload = rq4d_protocol::codec::swim_payload(&header, updates).expect("encodes");
        self.datagram(Kind::Swim, &payload)
    }

    /// A push of `cards`.
    pub fn cards(&mut self, cards: &[Card]) -> Vec<u8> {
        let payload = CardMessage::Push {
            cards: cards.to_vec(),
        }
        .encode()
        .expect("encodes");
        self.datagram(Kind::Cards, &payload)
    }

    /// Sends `datagram` to `to` (`ip:port`).
    pub fn send(&self, to: &str, datagram: &[u8]) {
        let _ = self.socket.send_to(datagram, to);
    }

    /// The next datagram that arrives, with its sender, waiting at most `timeout`.
    pub fn receive(&self, timeout: std::time::Duration) -> Option<(SocketAddr, Vec<u8>)> {
        self.socket.set_read_timeout(Some(timeout)).ok()?;
        let mut buf = vec![0u8; 2048];
        let (len, from) = self.socket.recv_from(&mut buf).ok()?;
        buf.truncate(len);
        Some((from, buf))
    }
}

/// The wall clock in ms, what generations are made of.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A node's own card, from its `/members` document.
pub fn own_card(members: &Value) -> Result<Card, String> {
    let own = members["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["state"].as_str() == Some("self"))
        .ok_or_else(|| format!("no own card in {members}"))?;
    serde_json::from_value(own["card"].clone()).map_err(|e| format!("{e}: {own}"))
}

/// A node's gossip identity, from its own card.
pub fn identity_of(card: &Card) -> NodeIdentity {
    NodeIdentity {
        node_id: card.node_id.clone(),
        addr: card.gossip_addr,
        generation: card.generation,
    }
}
