//! foca's [`foca::Codec`] over bincode 2 (foca 2 ships none for bincode).
//!
//! foca writes a header and then member updates into one buffer and reads them back one item at
//! a time, so the codec must report how many bytes each item used and must never leave a partial
//! item in a buffer that is too small.

use bytes::{Buf, BufMut};
use foca::{Header, Member};

use crate::identity::NodeIdentity;
use crate::wire::{self, WireError};

/// The codec foca uses for every SWIM message. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireCodec;

impl WireCodec {
    fn put<T: serde::Serialize>(value: &T, mut buf: impl BufMut) -> Result<(), WireError> {
        let bytes = wire::encode(value)?;
        if bytes.len() > buf.remaining_mut() {
            // foca treats this as "no room for more updates"; the buffer stays clean.
            return Err(WireError::PayloadTooLarge(bytes.len()));
        }
        buf.put_slice(&bytes);
        Ok(())
    }

    fn take<T: serde::de::DeserializeOwned>(mut buf: impl Buf) -> Result<T, WireError> {
        // foca guarantees the buffer is contiguous, so the first chunk is all of it.
        let (value, used) = wire::decode_prefix(buf.chunk())?;
        buf.advance(used);
        Ok(value)
    }
}

impl foca::Codec<NodeIdentity> for WireCodec {
    type Error = WireError;

    fn encode_header(
        &mut self,
        header: &Header<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Self::put(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<NodeIdentity>, Self::Error> {
        Self::take(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Self::put(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<NodeIdentity>, Self::Error> {
        Self::take(buf)
    }
}

/// A SWIM payload as foca lays one out: the header, then a big-endian `u16` count and the
/// member updates. foca writes its own; this is for tools and tests that craft SWIM datagrams
/// (what `Node`'s screen reads back).
pub fn swim_payload(
    header: &Header<NodeIdentity>,
    updates: &[Member<NodeIdentity>],
) -> Result<Vec<u8>, WireError> {
    use foca::Codec;
    let mut payload = Vec::new();
    WireCodec.encode_header(header, &mut payload)?;
    let count =
        u16::try_from(updates.len()).map_err(|_| WireError::PayloadTooLarge(updates.len()))?;
    payload.put_u16(count);
    for update in updates {
        WireCodec.encode_member(update, &mut payload)?;
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeId;
    use foca::{Codec, Incarnation, Message, State};
    use proptest::prelude::*;

    fn identity() -> impl Strategy<Value = NodeIdentity> {
        (
            "[a-z0-9._-]{1,64}",
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u64>(),
        )
            .prop_map(|(id, ip, port, generation)| NodeIdentity {
                node_id: NodeId::new(id).expect("strategy makes valid ids"),
                addr: std::net::SocketAddr::from((ip, port)),
                generation,
            })
    }

    fn message() -> impl Strategy<Value = Message<NodeIdentity>> {
        prop_oneof![
            any::<u8>().prop_map(Message::Ping),
            any::<u8>().prop_map(Message::Ack),
            (identity(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq {
                target,
                probe_number
            }),
            (identity(), any::<u8>()).prop_map(|(origin, probe_number)| Message::IndirectPing {
                origin,
                probe_number
            }),
            (identity(), any::<u8>()).prop_map(|(target, probe_number)| Message::IndirectAck {
                target,
                probe_number
            }),
            (identity(), any::<u8>()).prop_map(|(origin, probe_number)| Message::ForwardedAck {
                origin,
                probe_number
            }),
            Just(Message::Announce),
            Just(Message::Feed),
            Just(Message::Gossip),
            Just(Message::Broadcast),
            Just(Message::TurnUndead),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn headers_round_trip(src in identity(), dst in identity(), inc in any::<Incarnation>(), message in message()) {
            let header = Header { src, src_incarnation: inc, dst, message };
            let mut buf = Vec::new();
            WireCodec.encode_header(&header, &mut buf).expect("encodes");
            let mut slice = &buf[..];
            let back = WireCodec.decode_header(&mut slice).expect("decodes");
            prop_assert_eq!(back, header);
            prop_assert!(slice.is_empty(), "the codec consumed exactly one header");
        }

        #[test]
        fn members_round_trip(id in identity(), inc in any::<Incarnation>(), state in prop_oneof![Just(State::Alive), Just(State::Suspect), Just(State::Down)]) {
            let member = Member::new(id, inc, state);
            let mut buf = Vec::new();
            WireCodec.encode_member(&member, &mut buf).expect("encodes");
            let mut slice = &buf[..];
            prop_assert_eq!(WireCodec.decode_member(&mut slice).expect("decodes"), member);
        }

        #[test]
        fn garbage_never_panics_the_codec(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = WireCodec.decode_header(&bytes[..]);
            let _ = WireCodec.decode_member(&bytes[..]);
        }
    }

    #[test]
    fn a_full_buffer_is_left_clean() {
        let member = Member::alive(NodeIdentity {
            node_id: NodeId::new("n1").expect("valid"),
            addr: "10.0.0.1:7946".parse().expect("addr"),
            generation: 1,
        });
        let mut storage = [0u8; 4];
        let mut buf = &mut storage[..];
        assert!(WireCodec.encode_member(&member, &mut buf).is_err());
        assert_eq!(storage, [0u8; 4]);
    }
}
