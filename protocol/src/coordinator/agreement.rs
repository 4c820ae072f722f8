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
    let expects: BTreeSet<u16> = live.iter().map(|card| card.expect).collect();
    if expects.len() > 1 {
        let expects = live
            .iter()
            .map(|card| (card.node_id.clone(), card.expect))
            .collect();
        return Verdict {
            decision: Decision::Conflict(Conflict::Expect(expects)),
            agreement: held_ack,
            cluster_id: None,
            formation: None,
        };
    }
    let expect = usize::from(me.expect);
    if live.len() < expect {
        return wait(
            Waiting::Members {
                up: live.len(),
                expect: me.expect,
            },
            held_ack,
        );
    }
    let digest = ViewDigest::of(live.iter().map(|card| &card.node_id));
    if view.faults.bootstrap_without_agreement
        && live.iter().map(|card| &card.node_id).min() == Some(&me.node_id)
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
    let Some(seed) = live.iter().map(|card| &card.node_id).min() else {
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
        let pending: Vec<NodeId> = view
            .peers
            .iter()
            .filter(|card| card.agreement != wanted)
            .map(|card| card.node_id.clone())
            .collect();
        if pending.is_empty() {
            // Every member acknowledged: they are the founders, and each starts rqlited as one
            // once it sees this decision on my card.
            let cluster_id = mint_cluster_id(&me.node_id, round, digest);
            let mut targets: Vec<String> = live.iter().map(|card| card.raft_addr.clone()).collect();
            targets.sort();
            targets.dedup();
            return Verdict {
                decision: Decision::Bootstrap {
                    cluster_id,
                    expect: u16::try_from(live.len()).unwrap_or(u16::MAX),
                    targets,
                },
                agreement: proposal,
                cluster_id: Some(cluster_id),
                formation: Some(u16::try_from(live.len()).unwrap_or(u16::MAX)),
            };
        }
        return wait(
            Waiting::Acknowledgements {
                members: live.len(),
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
