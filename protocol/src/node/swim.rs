//! The screen between the network and foca: every SWIM payload is read here first, and foca
//! sees only what passes.
//!
//! foca trusts what it is told — that is SWIM's design — so the claims it must not act on are
//! taken out before it sees them: identities from the future (see [`crate::claims`]), members
//! beyond the table's cap, news about other lives of this node's own id (evidence for the
//! duplicate check, never something for foca to fight over), and "you are down" within
//! [`RENEW_EVERY`] of the last renewal. The payload's layout is foca's: a header, then (for
//! messages that piggyback) a big-endian `u16` count and that many member updates; rq4d sends
//! no custom broadcasts, so nothing may follow.

use std::net::SocketAddr;
use std::time::Duration;

use foca::{Header, Member, Message, State};

use super::{Event, Node, Output, Refusal};
use crate::claims::{Bounds, ClaimError};
use crate::identity::NodeIdentity;
use crate::wire::{self, WireError};

/// A node renews its identity (after being declared down) at most this often. foca renews on
/// every "you are down" it hears; a member that keeps a life of this node's id down for good
/// (a forged or duplicate identity) would otherwise get a renewal — and a burst of datagrams —
/// back for every message, thousands a second.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

impl Node {
    /// Checks a SWIM payload from `from` and returns what foca may see: the payload itself, or
    /// a copy without the updates that were taken out. Refuses the whole datagram when its
    /// sender or header is out of bounds.
    pub(super) fn screen_swim<'a>(
        &mut self,
        from: SocketAddr,
        payload: &'a [u8],
        now: Duration,
    ) -> Result<std::borrow::Cow<'a, [u8]>, Refusal> {
        let (header, header_len) =
            wire::decode_prefix::<Header<NodeIdentity>>(payload).map_err(Refusal::Wire)?;
        let mine = self.foca.identity().clone();
        if header.src.node_id == mine.node_id {
            if header.src == mine {
                return Err(Refusal::FromMyself);
            }
            // Evidence of a second process with this id only when the datagram comes from
            // the address it names: a header is just bytes anyone can write.
            if from == header.src.addr {
                self.report_duplicate(from, false, now);
            }
            return Err(Refusal::DuplicateNodeId(from));
        }
        let bounds = Bounds::at(self.wall());
        for identity in header_identities(&header) {
            bounds
                .generation(&identity.node_id, identity.generation)
                .map_err(Refusal::Claim)?;
        }
        self.admit(&header.src.node_id).map_err(Refusal::Claim)?;
        // No renewal within RENEW_EVERY of the last, nor while another process may hold this
        // id and this one is not running (a renewal would fight it for the id).
        let renewing = self
            .last_renewal
            .is_some_and(|at| now.saturating_sub(at) < RENEW_EVERY)
            || self.yielding(now);
        if renewing && header.message == Message::TurnUndead {
            return Err(Refusal::Renewing);
        }

        let mut rest = &payload[header_len..];
        if rest.len() < 2 || header.message == Message::Broadcast {
            // No piggybacked updates (foca itself refuses a single trailing byte).
            return Ok(std::borrow::Cow::Borrowed(payload));
        }
        let count = u16::from_be_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        let mut kept: Vec<&[u8]> = Vec::with_capacity(usize::from(count));
        let mut taken_out = false;
        for _ in 0..count {
            let (update, used) =
                wire::decode_prefix::<Member<NodeIdentity>>(rest).map_err(Refusal::Wire)?;
            let bytes = &rest[..used];
            rest = &rest[used..];
            match self.screen_update(&update, &mine, &bounds, renewing, now) {
                Ok(()) => kept.push(bytes),
                Err(error) => {
                    taken_out = true;
                    if let Some(error) = error {
                        self.outputs
                            .push_back(Output::Event(Event::ClaimRefused(error)));
                    }
                }
            }
        }
        if !rest.is_empty() {
            return Err(Refusal::Wire(WireError::Malformed(format!(
                "{} bytes after the member updates",
                rest.len()
            ))));
        }
        if !taken_out {
            return Ok(std::borrow::Cow::Borrowed(payload));
        }
        let mut screened = Vec::with_capacity(payload.len());
        screened.extend_from_slice(&payload[..header_len]);
        screened.extend_from_slice(&u16::try_from(kept.len()).unwrap_or(0).to_be_bytes());
        for bytes in kept {
            screened.extend_from_slice(bytes);
        }
        Ok(std::borrow::Cow::Owned(screened))
    }

    /// `Ok` keeps a member update; `Err(Some(_))` takes out an impossible claim (reported),
    /// `Err(None)` one that is merely not foca's business.
    fn screen_update(
        &mut self,
        update: &Member<NodeIdentity>,
        mine: &NodeIdentity,
        bounds: &Bounds,
        renewing: bool,
        now: Duration,
    ) -> Result<(), Option<ClaimError>> {
        let id = update.id();
        bounds
            .generation(&id.node_id, id.generation)
            .map_err(Some)?;
        if id.node_id == mine.node_id {
            if id == mine {
                // About this very life: foca refutes a suspicion itself; a "down" it answers
                // by renewing, at most once per RENEW_EVERY.
                return if renewing && update.state() == State::Down {
                    Err(None)
                } else {
                    Ok(())
                };
            }
            // Another life of this id, told by a third party: foca would declare it down and
            // start a fight over the id; the duplicate check weighs it instead.
            self.other_life_rumoured(id, update.state() != State::Down, now);
            return Err(None);
        }
        self.admit(&id.node_id).map_err(Some)
    }
}

/// Every identity a header names besides the receiver.
fn header_identities(header: &Header<NodeIdentity>) -> impl Iterator<Item = &NodeIdentity> {
    let carried = match &header.message {
        Message::PingReq { target, .. } | Message::IndirectAck { target, .. } => Some(target),
        Message::IndirectPing { origin, .. } | Message::ForwardedAck { origin, .. } => Some(origin),
        _ => None,
    };
    std::iter::once(&header.src).chain(carried)
}
