//! A node's receive path, end to end: the first input byte chooses how the rest reaches the
//! node — raw, or framed as a valid SWIM or card envelope (open, or sealed with the node's own
//! key) so the fuzzer gets past the header and the seal into foca, the screen and the cards.
//! Never a panic; the node's own identity never changes to anything but a later life of itself.
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rq4d_protocol::seal::Sealer;
use rq4d_protocol::wire::{self, Envelope, Kind};
use rq4d_protocol::{Key, Keyring, Node, NodeConfig, NodeId, NodeIdentity};

const NOON: Duration = Duration::from_millis(1_796_299_200_000);

fn node(keyed: bool) -> Node {
    let identity = NodeIdentity {
        node_id: NodeId::new("fuzzed").expect("id"),
        addr: "10.0.0.1:7946".parse().expect("addr"),
        generation: NOON.as_millis() as u64,
    };
    let mut config = NodeConfig::new("fuzz", identity, "10.0.0.1:4002", "10.0.0.1:4001", 3);
    config.wall_clock = NOON;
    config.nonce_salt = [9; 16];
    if keyed {
        config.keyring = Some(Keyring::single(Key::from_bytes([5; 32])));
    }
    Node::new(config, Duration::ZERO)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keyed = mode & 1 == 1;
    let kind = if mode & 2 == 0 { Kind::Swim } else { Kind::Cards };
    let mut node = node(keyed);
    let before = node.identity().clone();
    let tag = wire::cluster_tag("fuzz");
    let datagram = match (mode >> 2) & 3 {
        0 => rest.to_vec(),
        _ if keyed => {
            let mut sealer = Sealer::new(Some(Keyring::single(Key::from_bytes([5; 32]))), [4; 16]);
            match sealer.seal(kind, tag, rest, NOON) {
                Ok(datagram) => datagram,
                Err(_) => return,
            }
        }
        _ => match Envelope::unsealed(kind, tag, rest) {
            Ok(datagram) => datagram,
            Err(_) => return,
        },
    };
    let from: SocketAddr = "10.0.0.2:7946".parse().expect("addr");
    for step in 0..2u64 {
        let _ = node.handle_datagram(from, &datagram, Duration::from_millis(10 * step));
        while node.poll_output().is_some() {}
    }
    let after = node.identity();
    assert_eq!(after.node_id, before.node_id);
    assert!(after.generation >= before.generation);
});
