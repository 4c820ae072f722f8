//! Read-only replicas (`--read-only`) on real processes: never counted for `--expect`, never
//! founders, joined as non-voters once a cluster exists, serving reads, and reaped when dead.

use std::process::Command;
use std::time::Duration;

use rq4d_tests::cluster::{Cluster, FORM_DEADLINE, rq4d_binary};
use rq4d_tests::{url_encode, wait_until};

/// The decision line a node's `/health` shows.
fn decision(cluster: &Cluster, id: &str) -> String {
    cluster.nodes[id]
        .health()
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|doc| doc["decision"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn a_read_only_replica_is_not_counted_joins_as_a_non_voter_serves_reads_and_is_reaped() {
    let mut cluster = Cluster::new("read-only", 4, 3).with_args(&["--reap-after", "2s"]);
    cluster.start("n1", 0);
    cluster.start("n2", 1);
    cluster.set_args(&["--reap-after", "2s", "--read-only"]);
    cluster.start("r1", 2);
    cluster.set_args(&["--reap-after", "2s"]);
    // Three members see each other, but only two count: nobody forms a cluster.
    let waiting = wait_until("2 of 3 counted, the replica waiting", FORM_DEADLINE, || {
        let lines: Vec<String> = ["n1", "n2", "r1"]
            .iter()
            .map(|id| decision(&cluster, id))
            .collect();
        let counted = lines[..2]
            .iter()
            .all(|l| l.contains("2 of 3 expected members are up"));
        let replica = lines[2].contains("read-only replica");
        if counted && replica {
            Ok(())
        } else {
            Err(format!("{lines:?}"))
        }
    });
    waiting.unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
    for id in ["n1", "n2", "r1"] {
        let status = cluster.nodes[id].rqlite_status();
        assert!(
            status.is_err(),
            "{id}'s rqlited must not run yet: {status:?}"
        );
    }

    cluster.start("n3", 3);
    let (leader, roles) = cluster.wait_members(3, FORM_DEADLINE);
    assert_eq!(roles.non_voters.iter().collect::<Vec<_>>(), vec!["r1"]);
    let status = cluster.nodes["r1"].rqlite_status().expect("status");
    assert_eq!(status["store"]["raft"]["voter"], serde_json::json!(false));

    // The replica serves a read of what the cluster wrote.
    let http = cluster.nodes[&leader].http();
    for sql in [
        r#"["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]"#,
        r#"[["INSERT INTO t(v) VALUES(?)", "written"]]"#,
    ] {
        let response = rq4d_tests::http_post(&http, "/db/execute", sql).expect("execute");
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(!response.body.contains("error"), "{}", response.body);
    }
    let query = format!("/db/query?q={}", url_encode("SELECT * FROM t"));
    let read = wait_until("a read on the replica", FORM_DEADLINE, || {
        let doc = cluster.nodes["r1"].rqlite(&query)?;
        match doc["results"][0]["values"][0][1].as_str() {
            Some(v) => Ok(v.to_string()),
            None => Err(doc.to_string()),
        }
    });
    assert_eq!(read.unwrap_or_else(|e| panic!("{e}")), "written");

    // The members table and the metrics say what it is.
    let table = Command::new(rq4d_binary())
        .args(["members", "--api", &cluster.nodes["r1"].api()])
        .output()
        .expect("rq4d members");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("r1 ") && l.contains("read-only")),
        "{table}"
    );
    let non_voters = cluster.nodes[&leader]
        .metric("rq4d_raft_members{role=\"non_voter\"}")
        .expect("metrics");
    assert_eq!(non_voters, 1.0);

    // Killed, it is reaped like a voter.
    cluster.node("r1").kill();
    cluster.forget("r1");
    let (_, roles) = cluster.wait_members(3, Duration::from_secs(60));
    assert!(roles.non_voters.is_empty(), "{roles:?}");
}
