//! Joining: through the leader, through a follower, and failing joins.

mod common;

use std::time::{Duration, Instant};

use common::{fail, ok, spec, start, tempdir};
use rq4d_tests::{free_addr, wait_until};
use serde_json::json;

#[test]
fn joins_via_leader_and_via_follower() {
    let dir = tempdir("join");
    let mut n1 = start(spec("n1", &dir));
    ok(n1.wait_ready(Duration::from_secs(5)));

    // A join into a healthy cluster succeeds at its first attempt: with
    // `-join-attempts 1` a join that needed a retry would exit 1 instead of
    // becoming ready. The deadlines only catch a hang.
    let first_attempt = ["-join-attempts", "1"];
    let t0 = Instant::now();
    let mut n2 = start(
        spec("n2", &dir)
            .join(&[n1.raft_addr()])
            .args(&first_attempt),
    );
    if let Err(e) = n2.wait_ready(Duration::from_secs(30)) {
        fail(&mut [n1, n2], &format!("n2 joining via the leader: {e}"));
    }
    let n2_after = t0.elapsed();

    // n3 joins through the follower n2, which points it at the leader.
    let t0 = Instant::now();
    let mut n3 = start(
        spec("n3", &dir)
            .join(&[n2.raft_addr()])
            .args(&first_attempt),
    );
    if let Err(e) = n3.wait_ready(Duration::from_secs(30)) {
        fail(
            &mut [n1, n2, n3],
            &format!("n3 joining via the follower n2: {e}"),
        );
    }
    let n3_after = t0.elapsed();
    eprintln!("n2 ready after {n2_after:?}, n3 (via follower) after {n3_after:?}");

    let log = n1.log();
    let lines: Vec<String> = [("n2", n2.raft_addr()), ("n3", n3.raft_addr())]
        .iter()
        .map(|(id, addr)| format!("node with ID {id}, at {addr}, joined successfully as voter"))
        .collect();
    for line in lines {
        if !log.contains(&line) {
            fail(&mut [n1, n2, n3], &format!("leader log lacks {line:?}"));
        }
    }

    let nodes = ok(wait_until(
        "n3 sees 3 reachable nodes",
        Duration::from_secs(3),
        || {
            let nodes = n3.nodes()?;
            if nodes.len() == 3 && nodes.iter().all(|n| n["reachable"] == true) {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    ));
    let leaders: Vec<&str> = nodes
        .iter()
        .filter(|n| n["leader"] == true)
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(leaders, vec!["n1"], "{nodes:?}");
    for n in [&n2, &n3] {
        let st = ok(n.status());
        assert_eq!(st["store"]["raft"]["state"], "Follower", "{st}");
        assert_eq!(st["store"]["raft"]["num_peers"], 2, "{st}");
        assert_eq!(st["store"]["leader"]["node_id"], "n1", "{st}");
    }

    // Writes and reads sent to followers are forwarded to the leader.
    let r = n3
        .execute(r#"["CREATE TABLE t (a INTEGER)", ["INSERT INTO t(a) VALUES(?)", 7]]"#)
        .expect("execute");
    assert_eq!(r.status, 200, "{r:?}");
    let q = n2.query("SELECT COUNT(*) FROM t", "").expect("query");
    assert_eq!(
        q.json().expect("json")["results"][0]["values"],
        json!([[1]]),
        "{q:?}"
    );
}

#[test]
fn unreachable_join_target_retries_then_exits_1() {
    let dir = tempdir("join-unreachable");
    let target = free_addr(); // nothing listens there
    let t0 = Instant::now();
    let mut n = start(spec("n1", &dir).join(&[&target]).args(&[
        "-join-attempts",
        "3",
        "-join-interval",
        "400ms",
    ]));
    // While it retries, HTTP answers "not ready".
    let status = ok(wait_until(
        "HTTP up while joining",
        Duration::from_secs(2),
        || n.readyz().ok_or_else(|| "no answer".to_string()),
    ));
    assert_eq!(status, 500, "readyz while joining");
    let code = ok(n.wait_exit(Duration::from_secs(30)));
    let gave_up_after = t0.elapsed();
    eprintln!("gave up after {gave_up_after:?}");
    assert_eq!(code.code(), Some(1), "{}", n.describe());
    let log = n.log();
    assert!(
        log.contains("clustering failure: failed to join cluster"),
        "{}",
        n.describe()
    );
    // Three attempts are two intervals apart. A lower bound: a busy machine only makes it
    // later.
    assert!(
        gave_up_after >= Duration::from_millis(800),
        "gave up too early: {gave_up_after:?}\n{}",
        n.describe()
    );
}

#[test]
fn sigterm_during_join_retries_exits_1() {
    let dir = tempdir("join-sigterm");
    let mut n = start(spec("n1", &dir).join(&[&free_addr()]).args(&[
        "-join-attempts",
        "100",
        "-join-interval",
        "200ms",
    ]));
    ok(wait_until(
        "HTTP up while joining",
        Duration::from_secs(2),
        || n.readyz().ok_or_else(|| "no answer".to_string()),
    ));
    n.sigterm().expect("sigterm");
    let code = ok(n.wait_exit(Duration::from_secs(3)));
    assert_eq!(code.code(), Some(1), "{}", n.describe());
}

#[test]
fn join_list_is_tried_in_order_and_the_first_that_accepts_wins() {
    let dir = tempdir("join-order");
    let mut a = start(spec("a", &dir));
    let mut b = start(spec("b", &dir));
    ok(a.wait_ready(Duration::from_secs(5)));
    ok(b.wait_ready(Duration::from_secs(5)));
    let dead = free_addr();
    let mut n = start(spec("n", &dir).join(&[&dead, a.raft_addr(), b.raft_addr()]));
    ok(n.wait_ready(Duration::from_secs(3)));
    let leader = ok(n.leader_id());
    if leader.as_deref() != Some("a") {
        fail(&mut [a, b, n], &format!("joined {leader:?}, expected a"));
    }
    assert!(
        !b.log().contains("node with ID n,"),
        "b must not have admitted n"
    );
}
