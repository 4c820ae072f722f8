//! Removal, loss of quorum and graceful shutdown of the leader.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, fail, is_double, ok, start, tempdir};
use rq4d_tests::{find_leader, start_cluster, wait_until};

#[test]
fn node_removed_while_running_stays_up_without_leader() {
    let dir = tempdir("removed");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);

    // Sent to a follower, the removal is forwarded to the leader.
    let r = nodes[1].remove("n3").expect("remove");
    if r.status != 200 || !r.body.is_empty() {
        fail(
            &mut nodes,
            &format!("DELETE /remove n3 via follower: {r:?}"),
        );
    }
    let n3 = &nodes[2];
    let seen = wait_until(
        "n3 to notice it was removed",
        Duration::from_secs(5),
        || {
            let st = n3.status()?;
            let store = &st["store"];
            let raft = &store["raft"];
            let leaderless = store["leader"]["node_id"]
                .as_str()
                .is_none_or(str::is_empty);
            if leaderless
                && raft["num_peers"] == 0
                && raft["voter"] == false
                && n3.readyz() == Some(500)
            {
                Ok(())
            } else {
                Err(format!(
                    "leader {} num_peers {} voter {} readyz {:?}",
                    store["leader"],
                    raft["num_peers"],
                    raft["voter"],
                    n3.readyz()
                ))
            }
        },
    );
    if let Err(e) = seen {
        fail(&mut nodes, &e);
    }
    // It never exits by itself.
    std::thread::sleep(Duration::from_millis(500));
    if nodes[2].try_exit().is_some() {
        fail(&mut nodes, "removed node exited");
    }
    let w = nodes[2]
        .execute(r#"["CREATE TABLE t (a)"]"#)
        .expect("execute");
    assert_eq!(w.status, 500, "writes on a removed node: {w:?}");
    assert!(
        nodes[2]
            .log()
            .contains("not part of a stable configuration or a non-voter"),
        "{}",
        nodes[2].describe()
    );

    let members = ok(nodes[0].nodes());
    assert_eq!(members.len(), 2, "{members:?}");
    // Removing a non-member is a no-op that still answers 200 with an empty body.
    let r = nodes[0].remove("no-such-node").expect("remove");
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
    // Only exactly {"id": ...} is accepted.
    let bad = rq4d_tests::http_delete(nodes[0].http_addr(), "/remove", r#"{"id":"n2","x":"y"}"#)
        .expect("remove");
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[test]
fn quorum_loss_makes_the_survivor_step_down() {
    let dir = tempdir("quorum");
    let mut nodes = cluster(&dir, &["n1", "n2", "n3"]);
    let leader = ok(find_leader(&nodes));
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let create = nodes[leader]
        .execute(r#"["CREATE TABLE t (a)", "INSERT INTO t(a) VALUES(1)"]"#)
        .expect("execute");
    assert_eq!(create.status, 200, "{create:?}");
    for i in &others {
        nodes[*i].sigkill();
    }
    let t0 = Instant::now();
    let survivor = &nodes[leader];
    // A write racing the loss of quorum: HTTP 200 that is *not* an acknowledgement.
    let racing = survivor
        .execute(r#"["INSERT INTO t(a) VALUES(3)"]"#)
        .expect("execute");
    assert_eq!(racing.status, 200, "{racing:?}");
    assert_eq!(
        racing.json().expect("json"),
        serde_json::json!({"results": [], "error": "leadership lost while committing log"}),
        "{racing:?}"
    );
    let down = wait_until("survivor to step down", Duration::from_secs(3), || {
        match (survivor.readyz(), survivor.raft_state()) {
            (Some(500), Ok(s)) if s != "Leader" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    if let Err(e) = down {
        fail(&mut nodes, &e);
    }
    eprintln!("stepped down after {:?}", t0.elapsed());
    let r = survivor.remove("n2").expect("remove");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("leader not found"), "{r:?}");
    let w = survivor
        .execute(r#"["INSERT INTO t(a) VALUES(2)"]"#)
        .expect("execute");
    assert_eq!(w.status, 500, "{w:?}");
    let q = survivor
        .query("SELECT COUNT(*) FROM t", "&level=none")
        .expect("query");
    assert_eq!(
        q.status, 200,
        "level=none reads are served without a leader: {q:?}"
    );
    let q = survivor.query("SELECT COUNT(*) FROM t", "").expect("query");
    assert_eq!(q.status, 500, "default-level reads need a leader: {q:?}");

    // One dead node back with its data (same address, no -join): quorum again.
    let back = others[0];
    let spec = nodes[back].spec().clone();
    nodes[back] = start(spec);
    for i in [leader, back] {
        ok(nodes[i].wait_ready(Duration::from_secs(6)));
    }
    let states: Vec<String> = [leader, back]
        .iter()
        .map(|i| nodes[*i].raft_state().unwrap_or_default())
        .collect();
    assert!(states.contains(&"Leader".to_string()), "{states:?}");
}

/// The followers' election and heartbeat timeouts: far longer than any wait of the
/// test below, so a follower can only come to lead through the leader's handover.
const NO_ELECTION: [&str; 4] = ["-raft-election-timeout", "600s", "-raft-timeout", "600s"];

#[test]
fn sigterm_to_leader_exits_0_and_hands_leadership_over() {
    let dir = tempdir("sigterm");
    // n1 bootstraps and leads; n2 and n3 never stand by themselves (NO_ELECTION).
    let specs = ["n1", "n2", "n3"]
        .iter()
        .map(|id| match *id {
            "n1" => common::spec(id, &dir),
            _ => common::spec(id, &dir).args(&NO_ELECTION),
        })
        .collect();
    let mut nodes = ok(start_cluster(specs));
    let leader = ok(find_leader(&nodes));
    assert_eq!(nodes[leader].id(), "n1", "only n1 can have been elected");
    let t0 = Instant::now();
    nodes[leader].sigterm().expect("sigterm");
    // The deadlines below only catch a hang.
    let code = ok(nodes[leader].wait_exit(Duration::from_secs(30)));
    let exited = t0.elapsed();
    assert!(code.success(), "{}", nodes[leader].describe());
    assert!(
        nodes[leader]
            .log()
            .contains("stepping down as Leader before shutdown"),
        "{}",
        nodes[leader].describe()
    );
    // Another node leads long before its own election timer could fire, so it was
    // handed leadership by the old leader.
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let next = wait_until("another node to lead", Duration::from_secs(30), || {
        for i in &rest {
            if nodes[*i].raft_state()? == "Leader" && nodes[*i].is_ready() {
                return Ok(*i);
            }
        }
        Err("no leader yet".into())
    });
    let next = match next {
        Ok(i) => i,
        Err(e) => fail(&mut nodes, &e),
    };
    eprintln!(
        "leader exited after {exited:?}; {} leads after {:?}",
        nodes[next].id(),
        t0.elapsed()
    );
    if is_double()
        && !nodes[next]
            .log()
            .contains("received leadership transfer request")
    {
        fail(
            &mut nodes,
            "the new leader did not log the transfer request",
        );
    }
}

#[test]
fn cluster_remove_shutdown_makes_a_node_leave_on_sigterm() {
    let dir = tempdir("remove-shutdown");
    let mut nodes = cluster(&dir, &["n1", "n2"]);
    let leaving = common::spec("n3", &dir)
        .join(&[nodes[0].raft_addr()])
        .arg("-raft-cluster-remove-shutdown");
    let mut n3 = start(leaving);
    ok(n3.wait_ready(Duration::from_secs(3)));
    assert_eq!(ok(nodes[0].nodes()).len(), 3);
    let code = ok(n3.stop());
    assert!(code.success(), "{}", n3.describe());
    let left = wait_until(
        "n3 gone from the configuration",
        Duration::from_secs(3),
        || {
            let v = nodes[0].nodes()?;
            if v.len() == 2 {
                Ok(())
            } else {
                Err(format!("{v:?}"))
            }
        },
    );
    if let Err(e) = left {
        nodes.push(n3);
        fail(&mut nodes, &e);
    }
    // The two remaining nodes still have quorum.
    ok(nodes[0].wait_ready(Duration::from_secs(2)));
}
