//! Non-voters (`-raft-non-voter`): how they join, what `/status`, `/nodes` and
//! `/readyz` say about them, that they never count for quorum, and rqlite's
//! `Store.Join` rules when a member joins again. Facts from rqlite v8's source
//! (docs/rqlited.md, "Auth, TLS and non-voters"); set `RQLITED` to run these
//! against a real rqlited.

mod common;

use std::time::Duration;

use common::{cluster, fail, is_double, ok, spec, start, tempdir};
use rq4d_tests::{Rqlited, TempDir, wait_until};
use serde_json::Value;

/// `/status` numbers may come as JSON numbers or numeric strings.
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `(id, voter)` of every member `/nodes?nonvoters` lists on `n`, sorted.
fn suffrages(n: &Rqlited) -> Result<Vec<(String, bool)>, String> {
    let mut v: Vec<(String, bool)> = n
        .nodes()?
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default().to_string(),
                m["voter"] == true,
            )
        })
        .collect();
    v.sort();
    Ok(v)
}

fn expect_suffrages(n: &Rqlited, expected: &[(&str, bool)]) -> Result<(), String> {
    let want: Vec<(String, bool)> = expected.iter().map(|(i, v)| (i.to_string(), *v)).collect();
    wait_until(
        &format!("/nodes?nonvoters on {} to list {want:?}", n.id()),
        Duration::from_secs(10),
        || {
            let seen = suffrages(n)?;
            if seen == want {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
}

/// Two voters (n1 leads) and the non-voter n3.
fn two_voters_and_a_non_voter(dir: &TempDir) -> Vec<Rqlited> {
    let mut nodes = cluster(dir, &["n1", "n2"]);
    let mut n3 = start(
        spec("n3", dir)
            .join(&[nodes[0].raft_addr()])
            .arg("-raft-non-voter"),
    );
    let ready = n3.wait_ready(Duration::from_secs(10));
    nodes.push(n3);
    if let Err(e) = ready {
        fail(&mut nodes, &format!("non-voter joining: {e}"));
    }
    nodes
}

#[test]
fn a_non_voter_follows_the_leader_and_is_listed_only_on_request() {
    let dir = tempdir("nonvoter-join");
    let mut nodes = two_voters_and_a_non_voter(&dir);
    let st = ok(nodes[2].status());
    let raft = &st["store"]["raft"];
    assert_eq!(raft["voter"], false, "{st}");
    assert_eq!(raft["state"], "Follower", "{st}");
    assert_eq!(number(&raft["num_peers"]), Some(0), "{st}");
    assert_eq!(st["store"]["leader"]["node_id"], "n1", "{st}");
    assert_eq!(st["store"]["leader"]["addr"], nodes[0].raft_addr(), "{st}");
    // The voters' view of their peers leaves the non-voter out.
    let leader_st = ok(nodes[0].status());
    assert_eq!(
        number(&leader_st["store"]["raft"]["num_peers"]),
        Some(1),
        "{leader_st}"
    );

    if let Err(e) = expect_suffrages(&nodes[0], &[("n1", true), ("n2", true), ("n3", false)]) {
        fail(&mut nodes, &e);
    }
    let voters_only = nodes[0]
        .get("/nodes?ver=2&timeout=2s")
        .expect("GET /nodes")
        .json()
        .expect("json");
    let ids: Vec<&str> = voters_only["nodes"]
        .as_array()
        .expect("nodes list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["n1", "n2"], "{voters_only}");

    let ready = nodes[2].get("/readyz").expect("readyz");
    assert_eq!(ready.status, 200, "{ready:?}");
    if is_double() {
        let line = format!(
            "node with ID n3, at {}, joined successfully as non-voter",
            nodes[2].raft_addr()
        );
        assert!(nodes[0].log().contains(&line), "{}", nodes[0].describe());
    }
}

/// With two voters and one non-voter, losing the other voter loses quorum: the
/// non-voter's acknowledgements do not keep the leader in office.
#[test]
fn a_non_voter_does_not_count_for_quorum() {
    let dir = tempdir("nonvoter-quorum");
    let mut nodes = two_voters_and_a_non_voter(&dir);
    nodes[1].sigkill();
    let stepped_down = wait_until(
        "n1 to give up leadership with only the non-voter left",
        Duration::from_secs(10),
        || match nodes[0].raft_state()?.as_str() {
            "Leader" => Err("still Leader".to_string()),
            other => Ok(other.to_string()),
        },
    );
    if let Err(e) = stepped_down {
        fail(&mut nodes, &e);
    }
    let stays_out = wait_until(
        "the non-voter to report no leader",
        Duration::from_secs(10),
        || match nodes[2].readyz() {
            Some(200) => Err("readyz 200".to_string()),
            other => Ok(other),
        },
    );
    if let Err(e) = stays_out {
        fail(&mut nodes, &e);
    }
    assert!(nodes[2].try_exit().is_none(), "{}", nodes[2].describe());
}

/// rqlite's `Store.Join`: the same id at the same address is ignored whatever
/// the voter flag, so a non-voter restarted as a voter stays a non-voter;
/// removed first, it comes back as a voter.
#[test]
fn suffrage_changes_only_through_remove_and_rejoin() {
    let dir = tempdir("nonvoter-rejoin");
    let mut nodes = two_voters_and_a_non_voter(&dir);
    let as_voter = nodes[2].spec().clone();
    let as_voter = rq4d_tests::NodeSpec {
        args: as_voter
            .args
            .iter()
            .filter(|a| a.as_str() != "-raft-non-voter")
            .cloned()
            .collect(),
        ..as_voter
    };
    ok(nodes[2].stop());
    nodes[2] = start(as_voter.clone());
    if let Err(e) = nodes[2].wait_ready(Duration::from_secs(10)) {
        fail(&mut nodes, &format!("n3 back with -join as a voter: {e}"));
    }
    if let Err(e) = expect_suffrages(&nodes[0], &[("n1", true), ("n2", true), ("n3", false)]) {
        fail(
            &mut nodes,
            &format!("a same-id same-address join must be ignored: {e}"),
        );
    }
    if is_double() {
        let line = format!(
            "node n3 at {} already member of cluster, ignoring join request",
            as_voter.raft_addr
        );
        assert!(nodes[0].log().contains(&line), "{}", nodes[0].describe());
    }

    ok(nodes[2].stop());
    let removed = nodes[0].remove("n3").expect("DELETE /remove");
    assert_eq!(removed.status, 200, "{removed:?}");
    if let Err(e) = expect_suffrages(&nodes[0], &[("n1", true), ("n2", true)]) {
        fail(&mut nodes, &e);
    }
    nodes[2] = start(as_voter);
    if let Err(e) = nodes[2].wait_ready(Duration::from_secs(10)) {
        fail(&mut nodes, &format!("n3 rejoining after its removal: {e}"));
    }
    if let Err(e) = expect_suffrages(&nodes[0], &[("n1", true), ("n2", true), ("n3", true)]) {
        fail(&mut nodes, &e);
    }
    let st = ok(nodes[2].status());
    assert_eq!(st["store"]["raft"]["voter"], true, "{st}");
}

#[test]
fn a_non_voter_cannot_bootstrap() {
    let dir = tempdir("nonvoter-flags");
    let mut alone = start(spec("n1", &dir).arg("-raft-non-voter"));
    let code = ok(alone.wait_exit(Duration::from_secs(10)));
    assert_eq!(code.code(), Some(1), "{}", alone.describe());
    assert!(
        alone.log().contains(
            "cannot create a new non-voting node without joining it to an existing cluster"
        ),
        "{}",
        alone.describe()
    );

    let mut expecting = start(spec("n2", &dir).join(&["127.0.0.1:1"]).args(&[
        "-raft-non-voter",
        "-bootstrap-expect",
        "2",
    ]));
    let code = ok(expecting.wait_exit(Duration::from_secs(10)));
    assert_eq!(code.code(), Some(1), "{}", expecting.describe());
    assert!(
        expecting
            .log()
            .contains("bootstrapping only applicable to voting nodes"),
        "{}",
        expecting.describe()
    );
}
