//! A fresh node without `-join` bootstraps a single-node cluster; a single-node
//! cluster refuses `-join`.

mod common;

use std::time::{Duration, Instant};

use common::{fail, is_double, ok, spec, start, tempdir};
use rq4d_tests::{free_addr, wait_until};
use serde_json::json;

#[test]
fn lone_fresh_node_bootstraps_and_serves_the_api() {
    let dir = tempdir("bootstrap");
    let t0 = Instant::now();
    let mut n1 = start(spec("n1", &dir));

    // HTTP comes up at once, answering "not ready" until the node leads.
    let early = ok(wait_until("HTTP up", Duration::from_secs(3), || {
        n1.get("/readyz").map_err(|e| e.to_string())
    }));
    let up_after = t0.elapsed();
    if early.status != 500 || !early.body.contains("leader not found") {
        fail(
            &mut [n1],
            &format!("after {up_after:?} expected 500 'leader not found' first, got {early:?}"),
        );
    }
    let live = n1.get("/readyz?noleader").expect("readyz?noleader");
    assert_eq!(live.status, 200, "liveness: {live:?}");

    ok(n1.wait_ready(Duration::from_secs(30)));
    let ready_after = t0.elapsed();
    eprintln!("HTTP up after {up_after:?}, ready after {ready_after:?}");
    // It leads by winning an election once its timer fired, not at once. A lower bound: a busy
    // machine only makes it later.
    assert!(
        ready_after >= Duration::from_millis(500),
        "elected too fast: {ready_after:?}"
    );
    let ready = n1.get("/readyz").expect("readyz");
    assert_eq!(ready.body, "[+]node ok\n[+]leader ok\n[+]store ok");
    assert!(
        n1.log().contains("bootstrapping single new node"),
        "{}",
        n1.describe()
    );
    assert!(
        dir.join("n1").join("raft.db").exists(),
        "raft.db marks the node as having state"
    );
    if is_double() {
        assert!(
            n1.log().contains("TEST DOUBLE"),
            "banner missing: {}",
            n1.describe()
        );
    }

    let st = ok(n1.status());
    for key in [
        "build",
        "cluster",
        "extensions",
        "http",
        "mux",
        "network",
        "node",
        "os",
        "runtime",
        "store",
    ] {
        assert!(st.get(key).is_some(), "/status lacks {key}: {st}");
    }
    let store = &st["store"];
    assert_eq!(store["node_id"], "n1");
    assert_eq!(store["addr"], n1.raft_addr());
    assert_eq!(store["ready"], true);
    assert_eq!(
        store["leader"],
        json!({"node_id": "n1", "addr": n1.raft_addr()})
    );
    assert_eq!(store["raft"]["state"], "Leader");
    assert_eq!(store["raft"]["num_peers"], 0);
    assert_eq!(store["raft"]["voter"], true);
    assert!(
        store["raft"]["term"].as_u64().is_some_and(|t| t >= 1),
        "{store}"
    );
    assert!(
        store["raft"]["latest_configuration"]
            .as_str()
            .is_some_and(|c| c.contains("ID:n1")),
        "{store}"
    );

    let nodes = ok(n1.nodes());
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["id"], "n1");
    assert_eq!(nodes[0]["addr"], n1.raft_addr());
    assert_eq!(nodes[0]["api_addr"], format!("http://{}", n1.http_addr()));
    assert_eq!(nodes[0]["reachable"], true);
    assert_eq!(nodes[0]["leader"], true);
    assert_eq!(nodes[0]["voter"], true);
    let keyed = n1.get("/nodes").expect("nodes").json().expect("json");
    assert_eq!(
        keyed["n1"]["addr"],
        n1.raft_addr(),
        "legacy /nodes shape: {keyed}"
    );
    let leader = n1.get("/leader").expect("leader");
    assert_eq!(leader.status, 200);
    assert_eq!(leader.json().expect("json")["id"], "n1");

    // The tiny SQL fake: create, insert with parameters, count, read back, errors.
    let r = n1
        .execute(r#"["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", ["INSERT INTO foo(name) VALUES(?)", "fiona"]]"#)
        .expect("execute");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json().expect("json"),
        json!({"results": [{}, {"last_insert_id": 1, "rows_affected": 1}]})
    );
    let q = n1.query("SELECT COUNT(*) FROM foo", "").expect("query");
    assert_eq!(
        q.json().expect("json")["results"][0]["values"],
        json!([[1]])
    );
    let q = n1.query("SELECT * FROM foo", "").expect("query");
    assert_eq!(
        q.json().expect("json")["results"][0]["values"],
        json!([[1, "fiona"]])
    );
    let e = n1
        .execute(r#"["INSERT INTO nope(a) VALUES(1)"]"#)
        .expect("execute");
    assert_eq!(e.status, 200, "SQL errors are HTTP 200");
    assert!(
        e.json().expect("json")["results"][0]["error"]
            .as_str()
            .is_some_and(|m| m.contains("no such table")),
        "{e:?}"
    );
}

#[test]
fn single_node_cluster_restarted_with_join_exits_1() {
    let dir = tempdir("single");
    let mut n1 = start(spec("n1", &dir));
    ok(n1.wait_ready(Duration::from_secs(5)));
    let code = ok(n1.stop());
    assert!(code.success(), "graceful stop exits 0, got {code}");

    let t0 = Instant::now();
    let target = free_addr();
    let mut again = start(n1.spec().clone().join(&[&target]));
    // The deadline only catches a hang.
    let code = ok(again.wait_exit(Duration::from_secs(30)));
    eprintln!("refused after {:?}", t0.elapsed());
    assert_eq!(code.code(), Some(1), "{}", again.describe());
    let log = again.log();
    assert!(
        log.contains("clustering failure: node is the only node in a single-node cluster, joining other clusters not supported"),
        "{}",
        again.describe()
    );
    // It refuses up front: it never tried to join the target.
    assert!(
        !log.contains(&format!("failed to join via node at {target}")),
        "refused only after trying to join:\n{}",
        again.describe()
    );
}

#[test]
fn bootstrap_expect_forms_a_cluster_from_nodes_started_together() {
    let dir = tempdir("bootstrap-expect");
    let specs: Vec<rq4d_tests::NodeSpec> =
        ["n1", "n2", "n3"].iter().map(|id| spec(id, &dir)).collect();
    let raft: Vec<String> = specs.iter().map(|s| s.raft_addr.clone()).collect();
    let raft: Vec<&str> = raft.iter().map(String::as_str).collect();
    let mut nodes: Vec<rq4d_tests::Rqlited> = specs
        .into_iter()
        .map(|s| start(s.join(&raft).args(&["-bootstrap-expect", "3"])))
        .collect();
    // A first round that finds a target not listening yet waits 2–4 s for the next.
    for i in 0..nodes.len() {
        if let Err(e) = nodes[i].wait_ready(Duration::from_secs(15)) {
            fail(&mut nodes, &e);
        }
    }
    ok(rq4d_tests::find_leader(&nodes));
    let members = ok(nodes[0].nodes());
    assert_eq!(members.len(), 3, "{members:?}");
}

/// rqlited's bootstrapper (v8's `cluster.Bootstrapper`) notifies its `-join` targets in order
/// and ends the round at the first that does not answer, so the targets after it hear nothing
/// — not even the node itself. Here the first target is not started: two nodes that would
/// form a cluster of two between them notify nobody, round after round, until it comes.
#[test]
fn a_bootstrap_round_ends_at_the_first_target_that_does_not_answer() {
    let dir = tempdir("bootstrap-order");
    let specs: Vec<rq4d_tests::NodeSpec> =
        ["n1", "n2", "n3"].iter().map(|id| spec(id, &dir)).collect();
    let raft: Vec<String> = specs.iter().map(|s| s.raft_addr.clone()).collect();
    let raft: Vec<&str> = raft.iter().map(String::as_str).collect();
    let mut specs = specs
        .into_iter()
        .map(|s| s.join(&raft).args(&["-bootstrap-expect", "2"]));
    let first = specs.next().expect("three specs");
    let mut nodes: Vec<rq4d_tests::Rqlited> = specs.map(start).collect();
    let failed_rounds = |node: &rq4d_tests::Rqlited| {
        node.log()
            .lines()
            .filter(|l| l.contains("failed to notify all targets"))
            .count()
    };
    // Two rounds each (the second 2–4 s after the first), every one ended at n1.
    if let Err(e) = wait_until(
        "two failed rounds on n2 and n3",
        Duration::from_secs(10),
        || {
            let rounds: Vec<usize> = nodes.iter().map(failed_rounds).collect();
            if rounds.iter().all(|&r| r >= 2) {
                Ok(())
            } else {
                Err(format!("failed rounds {rounds:?}"))
            }
        },
    ) {
        fail(&mut nodes, &e);
    }
    for node in &nodes {
        let log = node.log();
        if log.contains("reached expected bootstrap count") || log.contains("succeeded notifying") {
            let msg = "a round went past the target that did not answer";
            fail(&mut nodes, msg);
        }
    }
    // With n1 up, rounds go through: a cluster forms.
    nodes.insert(0, start(first));
    for i in 0..nodes.len() {
        if let Err(e) = nodes[i].wait_ready(Duration::from_secs(15)) {
            fail(&mut nodes, &e);
        }
    }
    ok(rq4d_tests::find_leader(&nodes));
}
