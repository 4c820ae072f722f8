//! The voter cap (`--voters N`) on real processes: extra nodes join as non-voters, and a dead
//! voter's place goes to a non-voter once the voter is reaped, without the configuration ever
//! falling short of a majority of live voters.

use std::collections::BTreeSet;
use std::time::Instant;

use rq4d_tests::cluster::{Cluster, FORM_DEADLINE, RaftRoles};
use rq4d_tests::{url_encode, wait_until};

const ARGS: &[&str] = &["--voters", "3", "--reap-after", "2s"];

fn five_with_a_cap_of_three(label: &str) -> (Cluster, String, RaftRoles) {
    let mut cluster = Cluster::new(label, 5, 3).with_args(ARGS);
    for slot in 0..5 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    let (leader, roles) = cluster.wait_members(3, FORM_DEADLINE);
    (cluster, leader, roles)
}

/// SIGKILLs a voter other than `leader` and stops tracking it; returns its id.
fn kill_a_voter_that_does_not_lead(
    cluster: &mut Cluster,
    leader: &str,
    roles: &RaftRoles,
) -> String {
    let victim = roles
        .voters
        .iter()
        .find(|id| *id != leader)
        .cloned()
        .expect("a voter that does not lead");
    cluster.node(&victim).kill();
    cluster.forget(&victim);
    victim
}

/// One look at the configuration, from whichever running node answers: the live voters must
/// be a majority of the voters configured. `None` when no node knows a leader at this instant
/// (an election), which proves nothing either way.
fn majority_kept(cluster: &mut Cluster) -> Option<Result<(usize, usize), String>> {
    let running = cluster.running_ids();
    let roles = running
        .iter()
        .find_map(|id| cluster.nodes[id].raft_roles().ok())?;
    let live = roles.voters.intersection(&running).count();
    let configured = roles.voters.len();
    Some(if live > configured / 2 {
        Ok((live, configured))
    } else {
        Err(format!("{live} live voters of {configured}: {roles:?}"))
    })
}

#[test]
fn five_nodes_under_a_cap_of_three_are_three_voters_and_two_non_voters() {
    let (cluster, leader, roles) = five_with_a_cap_of_three("cap-form");
    assert_eq!(roles.voters.len(), 3);
    assert_eq!(roles.non_voters.len(), 2);
    assert!(roles.voters.contains(&leader));
    let voters = cluster.nodes[&leader]
        .metric("rq4d_raft_members{role=\"voter\"}")
        .expect("metrics");
    assert_eq!(voters, 3.0, "the leader's gauge counts the voters");
}

#[test]
fn joiners_that_come_during_the_formation_take_the_free_slots_at_once_without_a_promotion() {
    // Cap 5, expect 3, seven nodes started at once: the founders are the members the first
    // agreement saw (three to five of them), and the others join while the formation is
    // still going — the free slots as voters from the start, the rest as non-voters — and
    // nobody is promoted. (Joiners see the leader's card before the other founders' cards
    // say they vote; a founder counted as a candidate held a slot twice, so a joiner joined
    // as a non-voter and was promoted a moment later. Which joiners vote is the smallest ids
    // each saw when it joined: one that has not seen a smaller one yet takes a slot, so the
    // test names no ids.)
    let mut cluster = Cluster::new("cap-joiners", 7, 3).with_args(&["--voters", "5"]);
    for slot in 0..7 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    let (_, roles) = cluster.wait_members(5, FORM_DEADLINE);
    assert_eq!(
        (roles.voters.len(), roles.non_voters.len()),
        (5, 2),
        "{roles:?}"
    );
    // Promotions only: two joiners that each decided before seeing the other's card may both
    // take the last slot, and the larger steps down (a race of its own, rarer, and safe).
    let promotions: Vec<(String, f64)> = cluster
        .nodes
        .iter()
        .map(|(id, n)| {
            let changes = n
                .metric("rq4d_role_changes_total{role=\"voter\"}")
                .unwrap_or(0.0);
            (id.clone(), changes)
        })
        .filter(|(_, changes)| *changes > 0.0)
        .collect();
    assert!(
        promotions.is_empty(),
        "nobody was promoted during the formation: {promotions:?}\n{}",
        cluster.report()
    );
}

#[test]
fn a_killed_voters_place_goes_to_a_non_voter_and_the_majority_holds_throughout() {
    let (mut cluster, leader, before) = five_with_a_cap_of_three("cap-promote");
    let victim = kill_a_voter_that_does_not_lead(&mut cluster, &leader, &before);
    let killed = Instant::now();
    let mut samples = 0;
    let mut lowest = usize::MAX;
    let healed = wait_until("three voters again, the victim gone", FORM_DEADLINE, || {
        if let Some(kept) = majority_kept(&mut cluster) {
            let (live, configured) = kept.map_err(|e| format!("QUORUM LOST: {e}"))?;
            samples += 1;
            lowest = lowest.min(live * 2 - configured);
        }
        cluster.check_members(3)
    });
    let (_, after) = healed.unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
    let promoted: BTreeSet<&String> = after.voters.difference(&before.voters).collect();
    assert_eq!(
        promoted.len(),
        1,
        "one non-voter promoted: {before:?} -> {after:?}"
    );
    assert!(
        before
            .non_voters
            .contains(*promoted.iter().next().expect("one"))
    );
    assert!(!after.voters.contains(&victim) && !after.non_voters.contains(&victim));
    let role_changes: f64 = cluster
        .nodes
        .values()
        .map(|n| {
            n.metric("rq4d_role_changes_total{role=\"voter\"}")
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(
        role_changes,
        1.0,
        "one promotion counted\n{}",
        cluster.report()
    );
    println!(
        "voters back to 3 in {:.1}s after the kill (reap-after 2s); {samples} samples, the live voters' smallest lead over a minority: {lowest}",
        killed.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "needs a real rqlited (the double keeps rows only on the leader that took them): RQLITED=/path/to/rqlited cargo test -- --include-ignored"]
fn a_promoted_non_voter_keeps_its_data() {
    assert!(
        std::env::var_os("RQLITED").is_some(),
        "meaningful only against a real rqlited: set RQLITED=/path/to/rqlited"
    );
    let (mut cluster, leader, before) = five_with_a_cap_of_three("cap-data");
    let http = cluster.nodes[&leader].http();
    for sql in [
        r#"["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]"#,
        r#"[["INSERT INTO t(v) VALUES(?)", "before the promotion"]]"#,
    ] {
        let response = rq4d_tests::http_post(&http, "/db/execute", sql).expect("execute");
        assert_eq!(response.status, 200, "{}", response.body);
    }
    kill_a_voter_that_does_not_lead(&mut cluster, &leader, &before);
    let (_, after) = cluster.wait_members(3, FORM_DEADLINE);
    let promoted = after
        .voters
        .difference(&before.voters)
        .next()
        .cloned()
        .expect("a promoted node");
    // Its own copy, not the leader's: level=none reads the local database.
    let query = format!("/db/query?level=none&q={}", url_encode("SELECT * FROM t"));
    let doc = cluster.nodes[&promoted].rqlite(&query).expect("local read");
    assert_eq!(
        doc["results"][0]["values"][0][1].as_str(),
        Some("before the promotion"),
        "{doc}"
    );
}
