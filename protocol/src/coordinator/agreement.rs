//! Rule 4 of [`super`]: the bootstrap agreement among empty nodes — the seed's proposal, the
//! acknowledgements, and the decision that binds the founders of a new cluster.

use std::collections::BTreeSet;

use super::{Conflict, Decision, Verdict, View, Waiting, mint_cluster_id, next_round};
use crate::card::{Agreement, Card, ViewDigest};
use crate::identity::NodeId;

/// Rule 4: the bootstrap agreement among empty nodes.
pub(super) fn agree(view: &View<'_>) -> Verdict {
    let me = view.me;
    let live: Vec<&Card> = view.live().collect();
    // An acknowledgement stands while its proposal does: the seed lives and still proposes that
    // round. A dead seed, or one that withdrew (it saw a smaller id, say), frees the
    // acknowledger; a withdrawn round can never bootstrap, since a seed's later proposal is a
    // new round needing new acknowledgements.
    let held_ack = match &me.agreement {
        Agreement::Ack { seed, round, .. }
            if view.live().any(|card| {
                &card.node_id == seed
                    && matches!(card.agreement, Agreement::Propose { round: r, .. } if r == *round)
            }) =>
        {
            me.agreement.clone()
        }
        _ => Agreement::None,
    };
    let wait = |waiting: Waiting, agreement: Agreement| Verdict {
        decision: Decision::Wait(waiting),
        agreement,
        cluster_id: None,
        formation: None,
    };

    if !view.missing.is_empty() {
        let of = view.missing.iter().map(|id| (*id).clone()).collect();
        return wait(Waiting::Cards { of }, held_ack);
    }
    // Read-only replicas take no part: they are never counted, never founders.
    let eligible: Vec<&Card> = live
        .iter()
        .copied()
        .filter(|card| !card.read_only)
        .collect();
    let conflict = |conflict| Verdict {
        decision: Decision::Conflict(conflict),
        agreement: held_ack.clone(),
        cluster_id: None,
        formation: None,
    };
    let expects: BTreeSet<u16> = eligible.iter().map(|card| card.expect).collect();
    if expects.len() > 1 {
        let expects = eligible
            .iter()
            .map(|card| (card.node_id.clone(), card.expect))
            .collect();
        return conflict(Conflict::Expect(expects));
    }
    let caps: BTreeSet<Option<u16>> = eligible.iter().map(|card| card.voter_cap).collect();
    if caps.len() > 1 {
        let caps = eligible
            .iter()
            .map(|card| (card.node_id.clone(), card.voter_cap))
            .collect();
        return conflict(Conflict::VoterCap(caps));
    }
    let expect = usize::from(me.expect);
    if eligible.len() < expect {
        return wait(
            Waiting::Members {
                up: eligible.len(),
                expect: me.expect,
            },
            held_ack,
        );
    }
    let digest = ViewDigest::of(live.iter().map(|card| &card.node_id));
    if view.faults.bootstrap_without_agreement
        && eligible.iter().map(|card| &card.node_id).min() == Some(&me.node_id)
    {
        // Broken on purpose: the seed forms a cluster of its own, alone.
        let round = next_round(me, digest);
        let cluster_id = mint_cluster_id(&me.node_id, round, digest);
        return Verdict {
            decision: Decision::Bootstrap {
                cluster_id,
                expect: 1,
                targets: vec![me.raft_addr.clone()],
            },
            agreement: Agreement::Propose {
                view: digest,
                round,
            },
            cluster_id: Some(cluster_id),
            formation: Some(1),
        };
    }
    if !view.settled {
        return wait(Waiting::Settling, held_ack);
    }
    if let Some(behind) = live.iter().find(|card| card.view != digest) {
        return wait(
            Waiting::ViewBehind {
                member: behind.node_id.clone(),
            },
            held_ack,
        );
    }
    // The founders: every eligible member, or under a voter cap the smallest ids up to it
    // (every founder is a voter). At least `expect` of them either way (the cap is no smaller),
    // so two formations of one start still share a founder.
    let mut founders = eligible;
    founders.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    if let Some(cap) = me.voter_cap {
        founders.truncate(usize::from(cap).max(expect));
        if !founders.iter().any(|card| card.node_id == me.node_id) {
            return wait(Waiting::BeyondVoterCap { cap }, Agreement::None);
        }
    }
    let Some(seed) = founders.first().map(|card| &card.node_id) else {
        return wait(Waiting::NoMembers, held_ack);
    };

    if seed == &me.node_id {
        let round = next_round(me, digest);
        let proposal = Agreement::Propose {
            view: digest,
            round,
        };
        let wanted = Agreement::Ack {
            seed: me.node_id.clone(),
            view: digest,
            round,
        };
        let pending: Vec<NodeId> = founders
            .iter()
            .filter(|card| card.node_id != me.node_id && card.agreement != wanted)
            .map(|card| card.node_id.clone())
            .collect();
        if pending.is_empty() {
            // Every founder acknowledged; each is bound once it sees this decision on my card,
            // and starts rqlited once my card shows mine started (`start_formation`). The
            // targets in the order of the ids, this seed's first (see `View::founders`).
            let cluster_id = mint_cluster_id(&me.node_id, round, digest);
            let targets = super::raft_addrs(founders.iter().copied());
            let size = u16::try_from(founders.len()).unwrap_or(u16::MAX);
            return Verdict {
                decision: Decision::Bootstrap {
                    cluster_id,
                    expect: size,
                    targets,
                },
                agreement: proposal,
                cluster_id: Some(cluster_id),
                formation: Some(size),
            };
        }
        return wait(
            Waiting::Acknowledgements {
                members: founders.len(),
                from: pending,
            },
            proposal,
        );
    }

    if let Agreement::Ack { seed: acked, .. } = &held_ack
        && acked != seed
    {
        let waiting = Waiting::AckedOther {
            acked: acked.clone(),
            seed: seed.clone(),
        };
        return wait(waiting, held_ack);
    }
    let proposed = view.peers.iter().find_map(|card| match card.agreement {
        Agreement::Propose { view: v, round } if &card.node_id == seed && v == digest => {
            Some(round)
        }
        _ => None,
    });
    if let Some(round) = proposed {
        return wait(
            Waiting::SeedToDecide { seed: seed.clone() },
            Agreement::Ack {
                seed: seed.clone(),
                view: digest,
                round,
            },
        );
    }
    wait(Waiting::SeedToPropose { seed: seed.clone() }, held_ack)
}
