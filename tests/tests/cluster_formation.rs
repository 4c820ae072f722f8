//! Real rq4d processes form one rqlite cluster whatever the start order.
//!
//! Every node gets the same static seed list (the slots' addresses), like replicas of one
//! service; rqlited is `$RQLITED` when set, else the test double.

use std::time::Duration;

use rq4d_tests::cluster::{Cluster, FORM_DEADLINE};

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// A small deterministic generator; the seed is printed so a failing order can be replayed.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

/// The nodes that decided to bootstrap, i.e. the founders of a formation.
fn bootstraps(cluster: &mut Cluster) -> Vec<String> {
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    ids.into_iter()
        .filter(|id| {
            cluster
                .node(id)
                .metric("rq4d_decisions_total{kind=\"bootstrap\"}")
                .unwrap_or(0.0)
                > 0.0
        })
        .collect()
}

/// One formation: every one of the `n` nodes (`expect` = n) founded the cluster, which every
/// node's card names by one cluster id.
fn assert_one_formation_of_all(cluster: &mut Cluster, n: usize, context: &str) {
    let founders = bootstraps(cluster);
    let ids = cluster.cluster_ids();
    assert!(
        founders.len() == n && ids.len() == 1,
        "{context}: founders {founders:?} (want all {n}), cluster ids {ids:?} (want one)\n{}",
        cluster.report()
    );
}

fn all_at_once(n: usize) {
    let mut cluster = Cluster::new(&format!("together-{n}"), n, n as u16);
    for (slot, id) in ids(n).iter().enumerate() {
        cluster.start(id, slot);
    }
    cluster.wait_one_cluster(FORM_DEADLINE);
    assert_one_formation_of_all(&mut cluster, n, "all at once");
}

#[test]
fn three_nodes_started_at_once_form_one_cluster() {
    all_at_once(3);
}

#[test]
fn five_nodes_started_at_once_form_one_cluster() {
    all_at_once(5);
}

/// The start order's seed: `RQ4D_TEST_SEED` when set (to replay a failure), else `default`.
fn start_order_seed(default: u64) -> u64 {
    std::env::var("RQ4D_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(default)
}

fn staggered(n: usize, seed: u64) {
    let seed = start_order_seed(seed);
    eprintln!("start order seed {seed} (replay: RQ4D_TEST_SEED={seed})");
    let mut cluster = Cluster::new(&format!("staggered-{n}"), n, n as u16);
    let names = ids(n);
    let mut x = seed;
    for slot in shuffled(n, seed) {
        cluster.start(&names[slot], slot);
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis((x >> 33) % 2000));
    }
    cluster.wait_one_cluster(FORM_DEADLINE);
    assert_one_formation_of_all(
        &mut cluster,
        n,
        &format!("start order seed {seed}, replay with RQ4D_TEST_SEED={seed}"),
    );
}

#[test]
fn three_nodes_staggered_in_random_order_form_one_cluster() {
    staggered(3, 0x5eed_0003 ^ u64::from(std::process::id()));
}

#[test]
fn five_nodes_staggered_in_random_order_form_one_cluster() {
    staggered(5, 0x5eed_0005 ^ u64::from(std::process::id()));
}

#[test]
fn three_nodes_started_in_reverse_order_form_one_cluster() {
    reversed(3);
}

#[test]
fn five_nodes_started_in_reverse_order_form_one_cluster() {
    reversed(5);
}

fn reversed(n: usize) {
    let mut cluster = Cluster::new(&format!("reversed-{n}"), n, n as u16);
    let names = ids(n);
    for slot in (0..n).rev() {
        cluster.start(&names[slot], slot);
        std::thread::sleep(Duration::from_millis(1500));
    }
    cluster.wait_one_cluster(FORM_DEADLINE);
    assert_one_formation_of_all(&mut cluster, n, "reversed");
}

#[test]
fn a_node_added_to_three_later_joins_and_never_bootstraps() {
    scale_up(3);
}

#[test]
fn a_node_added_to_five_later_joins_and_never_bootstraps() {
    scale_up(5);
}

fn scale_up(n: usize) {
    // n + 1 slots, n expected: the last is a scale-up.
    let mut cluster = Cluster::new(&format!("scale-up-{n}"), n + 1, n as u16);
    for slot in 0..n {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    cluster.wait_one_cluster(FORM_DEADLINE);
    let added = format!("n{}", n + 1);
    cluster.start(&added, n);
    cluster.wait_one_cluster(FORM_DEADLINE);
    let bootstrapped = cluster
        .node(&added)
        .metric("rq4d_decisions_total{kind=\"bootstrap\"}")
        .expect("metrics");
    let joined = cluster
        .node(&added)
        .metric("rq4d_decisions_total{kind=\"join\"}")
        .expect("metrics");
    assert_eq!(bootstrapped, 0.0, "{}", cluster.report());
    assert!(joined >= 1.0, "{}", cluster.report());
    let founders = bootstraps(&mut cluster);
    let ids = cluster.cluster_ids();
    assert!(
        founders.len() == n && ids.len() == 1,
        "founders {founders:?} (want the first {n}), cluster ids {ids:?}\n{}",
        cluster.report()
    );
}
