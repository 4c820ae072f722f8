//! Rotating the gossip key on a running cluster, the way the README tells users to: add the new
//! key to every node's keyring, make it primary on every node, remove the old one — SIGHUP after
//! each edit, one node at a time. Writes go on throughout; no write may fail and no node may
//! ever be seen down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rq4d_protocol::Key;
use rq4d_tests::cluster::{Cluster, FORM_DEADLINE, rq4d_binary};
use rq4d_tests::{http_post, wait_until};

/// `rq4d keyring` of a node, as a user would run it.
fn keyring_table(api: &str) -> Result<String, String> {
    let out = std::process::Command::new(rq4d_binary())
        .args(["keyring", "--api", api])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Waits until every node's `rq4d keyring` says `line` about the live members.
fn wait_for_line(cluster: &mut Cluster, line: &str) {
    let apis: Vec<String> = cluster.nodes.values().map(|n| n.api()).collect();
    let result = wait_until(line, Duration::from_secs(20), || {
        for api in &apis {
            let table = keyring_table(api)?;
            if !table.contains(line) {
                return Err(format!("{api}:\n{table}"));
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}\n{}", cluster.report());
    }
}

#[test]
fn the_key_rotates_on_a_running_cluster_without_a_failed_write_or_a_node_down() {
    let old = Key::from_bytes([0x0a; 32]);
    let new = Key::from_bytes([0x0b; 32]);
    let mut cluster = Cluster::new("rotation", 3, 3);
    let ring = cluster.dir().join("keyring");
    let write_ring = |keys: &[&Key]| {
        let text: String = keys
            .iter()
            .map(|k| format!("{}\n", k.to_base64()))
            .collect();
        std::fs::write(&ring, format!("# primary first\n{text}")).expect("keyring");
    };
    write_ring(&[&old]);
    cluster.set_args(&["--gossip-keyring", &ring.display().to_string()]);
    for slot in 0..3 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    let leader = cluster.wait_one_cluster(FORM_DEADLINE);
    let http = cluster.nodes[&leader].http();
    let create = r#"["CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"]"#;
    assert_eq!(
        http_post(&http, "/db/execute", create)
            .expect("create")
            .status,
        200
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (acked, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let writer = {
        let (stop, acked, failed, http) =
            (stop.clone(), acked.clone(), failed.clone(), http.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!(r#"[["INSERT INTO t(v) VALUES(?)", "row{i}"]]"#);
                let ok = http_post(&http, "/db/execute", &body).is_ok_and(|r| {
                    r.status == 200
                        && r.json().is_ok_and(|doc| {
                            doc["error"].is_null()
                                && doc["results"].as_array().is_some_and(|r| {
                                    !r.is_empty() && r.iter().all(|x| x["error"].is_null())
                                })
                        })
                });
                let counter = if ok { &acked } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let hangup_each = |cluster: &Cluster| {
        for node in cluster.nodes.values() {
            node.hangup();
            std::thread::sleep(Duration::from_millis(700));
        }
    };
    let members = cluster.nodes.len();
    let held = format!(
        "key {}: held by {members} of {members} live members",
        new.id()
    );
    let sent = format!("{held}, sent with by {members}");
    // 1. The new key beside the old one, everywhere; 2. the new key primary, everywhere; 3. the
    // old key gone. Each step waits until every node's `rq4d keyring` shows it done.
    for (ring, done) in [
        (vec![&old, &new], &held),
        (vec![&new, &old], &sent),
        (vec![&new], &sent),
    ] {
        write_ring(&ring);
        hangup_each(&cluster);
        wait_for_line(&mut cluster, done);
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    let (acked, failed) = (
        acked.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(acked > 50, "{acked} writes acknowledged");
    assert_eq!(
        failed,
        0,
        "{failed} of {} writes failed\n{}",
        acked + failed,
        cluster.report()
    );
    cluster.wait_one_cluster(FORM_DEADLINE);
    let report = cluster.report();
    for (id, node) in &cluster.nodes {
        assert!(
            !node.log().contains("member down"),
            "{id} saw a member down during the rotation\n{report}"
        );
        let table = keyring_table(&node.api()).expect("keyring");
        assert!(!table.contains(&old.id().to_string()), "{id}: {table}");
    }
}
