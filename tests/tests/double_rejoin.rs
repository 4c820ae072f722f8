//! Nodes coming back with state: at a new address, with a changed id, and an
//! impostor using a live member's id.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, fail, ok, spec, start, tempdir};
use rq4d_tests::{Rqlited, wait_until};

/// The leader's view of members: (id, raft addr, reachable).
fn members(leader: &Rqlited) -> Result<Vec<(String, String, bool)>, String> {
    Ok(leader
        .nodes()?
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["addr"].as_str().unwrap_or_default().to_string(),
                n["reachable"] == true,
            )
        })
        .collect())
}

#[test]
fn restart_at_new_address_stays_candidate_without_join_and_rejoins_with_it() {
    let dir = tempdir("rejoin");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let old_addr = nodes[2].raft_addr().to_string();
    let code = ok(nodes[2].stop());
    assert!(code.success(), "{code}");

    // Same id and data at a new address, no -join: it can never win an election
    // (the others hear a live leader and reject its pre-votes).
    let moved = nodes[2].spec().clone().at_new_addresses().no_join();
    nodes[2] = start(moved);
    let n3 = &nodes[2];
    ok(wait_until(
        "moved n3 to become Candidate",
        Duration::from_secs(5),
        || match n3.raft_state()?.as_str() {
            "Candidate" => Ok(()),
            s => Err(s.to_string()),
        },
    ));
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        let (state, ready) = (n3.raft_state(), n3.readyz());
        if ready != Some(500) || state.as_deref() != Ok("Candidate") {
            fail(
                &mut nodes,
                &format!(
                    "moved node without -join must stay a non-ready Candidate, saw {state:?} {ready:?}"
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let view = ok(members(&nodes[0]));
    if !view.contains(&("n3".to_string(), old_addr.clone(), false)) {
        fail(
            &mut nodes,
            &format!("leader should keep n3 at its old address, unreachable: {view:?}"),
        );
    }
    let rejections = nodes
        .iter()
        .any(|n| n.log().contains("rejecting pre-vote request"));
    if !rejections {
        fail(&mut nodes, "nobody logged a rejected pre-vote");
    }
    ok(nodes[2].stop());

    // Now with -join the leader: the old entry is replaced.
    let leader_raft = nodes[0].raft_addr().to_string();
    let rejoining = nodes[2]
        .spec()
        .clone()
        .at_new_addresses()
        .join(&[&leader_raft]);
    let t0 = Instant::now();
    nodes[2] = start(rejoining);
    ok(nodes[2].wait_ready(Duration::from_secs(3)));
    eprintln!("rejoined after {:?}", t0.elapsed());
    let new_addr = nodes[2].raft_addr().to_string();
    let log = nodes[0].log();
    let removed = log.find("removed node n3 prior to rejoin with changed ID or address");
    let joined = log.find(&format!(
        "node with ID n3, at {new_addr}, joined successfully as voter"
    ));
    match (removed, joined) {
        (Some(r), Some(j)) if r < j => {}
        _ => fail(
            &mut nodes,
            "leader should log the removal of the old n3, then its join",
        ),
    }
    let leader = &nodes[0];
    let view = ok(wait_until(
        "leader sees n3 at its new address only",
        Duration::from_secs(3),
        || {
            let v = members(leader)?;
            let ok = v.len() == 3
                && v.contains(&("n3".to_string(), new_addr.clone(), true))
                && !v.iter().any(|(_, a, _)| *a == old_addr);
            if ok { Ok(v) } else { Err(format!("{v:?}")) }
        },
    ));
    eprintln!("members: {view:?}");
}

#[test]
fn changed_id_on_old_data_cannot_join_but_looks_ready() {
    let dir = tempdir("changed-id");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    ok(nodes[2].stop());
    let leader_raft = nodes[0].raft_addr().to_string();
    let mut renamed = nodes[2].spec().clone().join(&[&leader_raft]);
    renamed.id = "n3-renamed".into();
    renamed.args = vec![
        "-join-attempts".into(),
        "3".into(),
        "-join-interval".into(),
        "500ms".into(),
    ];
    nodes[2] = start(renamed);

    // It follows the leader's heartbeats (sent to its address) so /readyz says 200,
    // but every join fails on the duplicate address, and it finally exits 1.
    let mut saw_ready = false;
    let code = ok(wait_until(
        "renamed node to exit",
        Duration::from_secs(8),
        || {
            saw_ready |= nodes[2].readyz() == Some(200);
            nodes[2].try_exit().ok_or_else(|| "running".to_string())
        },
    ));
    assert_eq!(code.code(), Some(1), "{}", nodes[2].describe());
    let log = nodes[2].log();
    assert!(
        log.contains("found duplicate address in configuration"),
        "{}",
        nodes[2].describe()
    );
    assert!(
        log.contains("clustering failure: failed to join cluster"),
        "{}",
        nodes[2].describe()
    );
    assert!(
        saw_ready,
        "readyz should have (misleadingly) said 200 meanwhile: {}",
        nodes[2].describe()
    );
}

#[test]
fn impostor_with_a_live_members_id_evicts_it() {
    let dir = tempdir("impostor");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let leader_raft = nodes[0].raft_addr().to_string();
    let real_n2_addr = nodes[1].raft_addr().to_string();
    let impostor = spec("n2", &dir);
    let impostor = rq4d_tests::NodeSpec {
        data_dir: dir.join("impostor"),
        ..impostor
    }
    .join(&[&leader_raft]);
    let mut imp = start(impostor);
    ok(imp.wait_ready(Duration::from_secs(3)));
    let imp_addr = imp.raft_addr().to_string();
    let view = ok(wait_until(
        "leader lists the impostor as n2",
        Duration::from_secs(3),
        || {
            let v = members(&nodes[0])?;
            if v.contains(&("n2".to_string(), imp_addr.clone(), true))
                && !v.iter().any(|(_, a, _)| *a == real_n2_addr)
            {
                Ok(v)
            } else {
                Err(format!("{v:?}"))
            }
        },
    ));
    eprintln!("members: {view:?}");
    // The real n2 is orphaned: out of the configuration and, soon, leaderless.
    let real = &nodes[1];
    ok(wait_until(
        "real n2 orphaned",
        Duration::from_secs(5),
        || {
            let st = real.status()?;
            let raft = &st["store"]["raft"];
            if raft["voter"] == false && raft["num_peers"] == 0 && real.readyz() == Some(500) {
                Ok(())
            } else {
                Err(format!("{raft}"))
            }
        },
    ));
    assert!(nodes[1].try_exit().is_none(), "the orphan keeps running");
}

#[test]
fn node_removed_while_stopped_needs_join_to_come_back() {
    let dir = tempdir("removed-stopped");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    ok(nodes[2].stop());
    let r = nodes[0].remove("n3").expect("remove");
    assert_eq!(r.status, 200, "{r:?}");

    // Without -join it still believes it is a member, but nobody votes for it.
    let spec3 = nodes[2].spec().clone().no_join();
    nodes[2] = start(spec3.clone());
    let n3 = &nodes[2];
    ok(wait_until(
        "n3 to stand as Candidate",
        Duration::from_secs(5),
        || match n3.raft_state()?.as_str() {
            "Candidate" => Ok(()),
            s => Err(s.to_string()),
        },
    ));
    ok(wait_until(
        "leader to reject n3's pre-vote",
        Duration::from_secs(3),
        || {
            if nodes[0]
                .log()
                .contains("rejecting pre-vote request since node is not in configuration")
            {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    ));
    assert_eq!(nodes[2].readyz(), Some(500));
    ok(nodes[2].stop());

    // With -join the leader it is admitted again.
    let leader_raft = nodes[0].raft_addr().to_string();
    nodes[2] = start(spec3.join(&[&leader_raft]));
    if let Err(e) = nodes[2].wait_ready(Duration::from_secs(3)) {
        fail(&mut nodes, &e);
    }
    assert_eq!(ok(nodes[0].nodes()).len(), 3);
}
