//! Whole-cluster restarts: same addresses, new addresses (no recovery), and
//! `peers.json` recovery.

mod common;

use std::time::Duration;

use common::{cluster, fail, ok, start, tempdir};
use rq4d_tests::{NodeSpec, Rqlited, find_leader, wait_until};

fn stop_all(nodes: &mut [Rqlited]) -> Vec<NodeSpec> {
    nodes
        .iter_mut()
        .map(|n| {
            let code = ok(n.stop());
            assert!(code.success(), "{code}");
            n.spec().clone()
        })
        .collect()
}

#[test]
fn full_restart_at_same_addresses_elects_a_leader() {
    let dir = tempdir("restart-same");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let specs = stop_all(&mut nodes);
    let mut nodes: Vec<Rqlited> = specs.into_iter().map(|s| start(s.no_join())).collect();
    for i in 0..nodes.len() {
        if let Err(e) = nodes[i].wait_ready(Duration::from_secs(6)) {
            fail(&mut nodes, &e);
        }
    }
    ok(find_leader(&nodes));
}

#[test]
fn follower_restarted_in_place_without_join_becomes_ready_under_the_same_leader() {
    let dir = tempdir("restart-one");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let leader = ok(find_leader(&nodes));
    let f = (leader + 1) % 3;
    ok(nodes[f].stop());
    let spec = nodes[f].spec().clone().no_join();
    let t0 = std::time::Instant::now();
    nodes[f] = start(spec);
    // The deadline only catches a hang; the leader must be the same one afterwards.
    if let Err(e) = nodes[f].wait_ready(Duration::from_secs(30)) {
        fail(&mut nodes, &e);
    }
    eprintln!("restarted follower ready after {:?}", t0.elapsed());
    assert_eq!(
        ok(find_leader(&nodes)),
        leader,
        "a follower restart must not disturb the leader"
    );
}

#[test]
fn full_restart_at_new_addresses_with_join_cannot_recover() {
    let dir = tempdir("restart-new");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let specs: Vec<NodeSpec> = stop_all(&mut nodes)
        .into_iter()
        .map(NodeSpec::at_new_addresses)
        .collect();
    let raft: Vec<String> = specs.iter().map(|s| s.raft_addr.clone()).collect();
    let mut nodes: Vec<Rqlited> = specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let others: Vec<&str> = raft
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.as_str())
                .collect();
            start(
                s.join(&others)
                    .args(&["-join-attempts", "2", "-join-interval", "300ms"]),
            )
        })
        .collect();
    for i in 0..nodes.len() {
        let code = ok(nodes[i].wait_exit(Duration::from_secs(8)));
        if code.code() != Some(1)
            || !nodes[i]
                .log()
                .contains("clustering failure: failed to join cluster")
        {
            fail(
                &mut nodes,
                &format!("node {i} should fail to join and exit 1, got {code}"),
            );
        }
    }
}

#[test]
fn peers_json_recovers_a_cluster_moved_to_new_addresses() {
    let dir = tempdir("peers-json");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let specs: Vec<NodeSpec> = stop_all(&mut nodes)
        .into_iter()
        .map(|s| s.at_new_addresses().no_join())
        .collect();
    let peers: Vec<serde_json::Value> = specs
        .iter()
        .map(|s| serde_json::json!({"id": s.id, "address": s.raft_addr, "non_voter": false}))
        .collect();
    let peers = serde_json::Value::Array(peers).to_string();
    for s in &specs {
        let raft_dir = s.data_dir.join("raft");
        std::fs::create_dir_all(&raft_dir).expect("mkdir raft");
        std::fs::write(raft_dir.join("peers.json"), &peers).expect("write peers.json");
    }
    let mut nodes: Vec<Rqlited> = specs.into_iter().map(start).collect();
    for i in 0..nodes.len() {
        if let Err(e) = nodes[i].wait_ready(Duration::from_secs(6)) {
            fail(&mut nodes, &e);
        }
    }
    ok(find_leader(&nodes));
    for n in &mut nodes {
        let data = n.spec().data_dir.clone();
        if !n.log().contains("node recovered successfully using")
            || data.join("raft/peers.json").exists()
        {
            let d = n.describe();
            panic!("peers.json should be applied and moved away: {d}");
        }
        assert!(data.join("raft/peers.info").exists());
    }
    let view = ok(wait_until(
        "3 reachable members",
        Duration::from_secs(3),
        || {
            let v = nodes[0].nodes()?;
            if v.len() == 3 && v.iter().all(|n| n["reachable"] == true) {
                Ok(v)
            } else {
                Err(format!("{v:?}"))
            }
        },
    ));
    eprintln!("{view:?}");
}
