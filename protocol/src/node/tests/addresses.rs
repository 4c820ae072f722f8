//! A restarted member that Docker hands a just-killed member's address: the killed member's
//! address is taken the moment the new life's card is held, not once gossip's suspicion of the
//! killed member runs out.

use super::*;
use crate::supervisor::Membership;

/// Chaos run, round 14 (the double): `db_5` was killed; `db_4`, restarted at once with its
/// volume, got `db_5`'s IP. The leader's foca still held `db_4`'s old life, alive, so the new
/// life replaced it with a rename, not a "member up" — and the member kept its old "up since".
/// The newest claim of an address holds it, so the killed `db_5`, up more recently than
/// `db_4`'s old life, kept the address: `db_4`'s join was refused ("duplicate address") until
/// gossip called `db_5` down, 7.9 s later.
#[test]
fn a_member_restarted_at_a_killed_members_address_takes_it_before_gossip_calls_that_one_down() {
    let mut harness = super::trust::formed_three();
    // Node 2 came up after node 1 in node 0's eyes: start node 2 once more, later.
    let (restarted, killed) = (1, 2);
    harness.crash(killed);
    let mut config = harness.config(killed);
    config.identity.generation = 2;
    harness.start_on(killed, config, harness.stored[killed].clone(), true);
    harness.run_until(harness.now + Duration::from_secs(20));
    let ids = harness.ids.clone();
    let alive_at = |h: &Harness, who: usize, at: SocketAddr| {
        h.nodes[0].as_ref().is_some_and(|node| {
            node.members()
                .get(&ids[who])
                .is_some_and(|m| m.alive && m.identity.addr == at)
        })
    };
    assert!(
        alive_at(&harness, killed, harness.addrs[killed]),
        "node 2's second life is up:\n{}",
        harness.report()
    );

    // Node 2 is killed; node 1 restarts with its volume at node 2's address.
    let taken_ip = harness.addrs[killed];
    harness.crash(killed);
    harness.crash(restarted);
    harness.addrs[killed] = SocketAddr::from(([10, 0, 0, 99], 7946));
    harness.addrs[restarted] = taken_ip;
    let mut config = harness.config(restarted);
    config.identity.generation = 3;
    config.raft_addr = format!("{}:4002", taken_ip.ip());
    config.http_addr = format!("{}:4001", taken_ip.ip());
    let stored = harness.stored[restarted].clone();
    harness.start_on(restarted, config, stored, true);

    let killed_raft = format!("{}:4002", taken_ip.ip());
    let deadline = harness.now + Duration::from_secs(30);
    loop {
        let node = harness.nodes[0].as_ref().expect("node 0 runs");
        let membership = Membership::of(node);
        let held_by_new_life = membership.raft_addrs.get(&killed_raft) == Some(&ids[restarted]);
        if held_by_new_life {
            assert!(
                membership.superseded.contains_key(&ids[killed]),
                "the killed member is superseded at its address: {membership:?}"
            );
            assert!(
                alive_at(&harness, killed, taken_ip),
                "…before gossip called it down (else this test proves nothing)"
            );
            break;
        }
        assert!(
            alive_at(&harness, killed, taken_ip),
            "node 0 called the killed member down before the new life took its address \
             ({membership:?}):\n{}",
            harness.report()
        );
        assert!(harness.now < deadline, "{}", harness.report());
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
    }
}

/// The other side of the rule above: foca names a rename whatever the lives' states, and a
/// rename between two down lives is no "up". (Taken for one, it kept a gone read-only replica
/// alive in one node's table for good, and that node's bootstrap agreement waited for the gone
/// node's card until the end of the scenario — simulator finding.)
#[test]
fn a_rename_between_two_down_lives_leaves_the_member_down() {
    let mut harness = super::trust::formed_three();
    let gone = harness.nodes[2].as_ref().expect("runs").identity().clone();
    harness.crash(2);
    let deadline = harness.now + Duration::from_secs(60);
    let down_at_0 = |h: &Harness| {
        h.nodes[0]
            .as_ref()
            .is_some_and(|node| node.members().get(&gone.node_id).is_some_and(|m| !m.alive))
    };
    while !down_at_0(&harness) {
        assert!(harness.now < deadline, "{}", harness.report());
        assert!(harness.step(), "the queue ran dry:\n{}", harness.report());
    }

    // A member tells node 0 of a later life of the gone node, down as well (it restarted and
    // died again where node 0 did not see it).
    let later = NodeIdentity {
        generation: gone.generation + 1,
        ..gone.clone()
    };
    let src = harness.nodes[1].as_ref().expect("runs").identity().clone();
    let dst = harness.nodes[0].as_ref().expect("runs").identity().clone();
    let datagram = super::trust::swim(
        src,
        dst,
        foca::Message::Gossip,
        &[foca::Member::down(later.clone())],
    );
    let from = harness.addrs[1];
    super::trust::inject(&mut harness, 0, from, &datagram).expect("a member's gossip is taken");
    harness.run_until(harness.now + Duration::from_secs(10));
    let seen = &harness.nodes[0].as_ref().expect("runs").members()[&gone.node_id];
    assert_eq!(seen.identity, later, "the later life is known");
    assert!(!seen.alive, "and down, as foca holds it: {seen:?}");
}
