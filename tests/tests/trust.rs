//! Only the cluster can change the cluster. Real rq4d processes on loopback, attacked the way
//! anybody who can reach their gossip port could: datagrams crafted from the wire format
//! (`rq4d_tests::forge`), intruding processes, a copied node id. Each test asserts the
//! cluster's state afterwards — voters, leader, every node's decision and `/health` — and that
//! what was refused was counted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use foca::{Member, Message};
use rq4d_protocol::{Card, ClusterId, DbState, Key, Keyring, Running};
use rq4d_tests::cluster::{Cluster, FORM_DEADLINE, Rq4d, alive, child_pids, fresh_ip};
use rq4d_tests::forge::{Forger, identity_of, own_card};
use rq4d_tests::{http_get, wait_until};

fn card(node: &Rq4d) -> Card {
    own_card(&node.members().expect("/members")).expect("own card")
}

/// `series` summed over `ids`.
fn metric_sum(cluster: &Cluster, ids: &[String], series: &str) -> f64 {
    ids.iter()
        .map(|id| cluster.nodes[id].metric(series).unwrap_or(0.0))
        .sum()
}

fn dropped(reason: &str) -> String {
    format!("rq4d_datagrams_dropped_total{{reason=\"{reason}\"}}")
}

/// The voters (id → Raft address) the leader's rqlited lists.
fn voters(cluster: &Cluster, leader: &str) -> Vec<(String, String)> {
    let nodes = http_get(&cluster.nodes[leader].http(), "/nodes?ver=2&nonvoters")
        .expect("nodes")
        .json()
        .expect("json");
    let mut voters: Vec<(String, String)> = nodes["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["voter"].as_bool() == Some(true))
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["addr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    voters.sort();
    voters
}

/// Keeps checking, for `period`, that the cluster stays one healthy cluster of all its
/// running nodes, while `attack` runs every 200 ms.
fn hold_under(cluster: &mut Cluster, period: Duration, mut attack: impl FnMut(&mut Cluster)) {
    let start = Instant::now();
    while start.elapsed() < period {
        attack(cluster);
        if let Err(error) = cluster.check_one_cluster() {
            panic!(
                "the cluster changed under attack after {:?}: {error}\n{}",
                start.elapsed(),
                cluster.report()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_forged_down_from_the_far_future_removes_no_voter_and_starts_no_renewal_storm() {
    let (mut cluster, leader) = Cluster::formed("trust-down", 3, &["--reap-after", "3s"]);
    let victim = cluster.a_follower(&leader);
    let victim_card = card(&cluster.nodes[&victim]);
    let before = voters(&cluster, &leader);
    let mut forger = Forger::new(&fresh_ip(), "rq4d").expect("forger");
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    let sent_before = cluster.nodes[&victim]
        .metric("rq4d_datagrams_sent_total")
        .expect("metrics");
    let mut down = identity_of(&victim_card);
    down.generation = u64::MAX;
    // And a second card handing another member the victim's Raft address ("address taken").
    let mut taker = card(&cluster.nodes[&leader]);
    taker.generation = u64::MAX;
    taker.raft_addr = victim_card.raft_addr.clone();
    let started = Instant::now();
    // Longer than reap-after and two of the reaper's rounds.
    hold_under(&mut cluster, Duration::from_secs(9), |cluster| {
        for id in &ids {
            let node = &cluster.nodes[id];
            let dst = identity_of(&card(node));
            let src = forger.identity("forger");
            let datagram = forger.swim(src, dst, Message::Gossip, &[Member::down(down.clone())]);
            forger.send(&node.gossip(), &datagram);
            let datagram = forger.cards(std::slice::from_ref(&taker));
            forger.send(&node.gossip(), &datagram);
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(voters(&cluster, &leader), before, "{}", cluster.report());
    assert_eq!(metric_sum(&cluster, &ids, "rq4d_removals_total"), 0.0);
    let refused = metric_sum(&cluster, &ids, "rq4d_claims_refused_total")
        + metric_sum(&cluster, &ids, &dropped("claim"));
    assert!(
        refused > 0.0,
        "the forged claims were counted\n{}",
        cluster.report()
    );
    let sent = cluster.nodes[&victim]
        .metric("rq4d_datagrams_sent_total")
        .expect("metrics")
        - sent_before;
    // A renewal storm was ~20 000 datagrams a second; a node gossiping normally sends a few
    // dozen.
    assert!(
        sent / elapsed < 500.0,
        "{victim} sent {sent} datagrams in {elapsed:.1} s\n{}",
        cluster.report()
    );
}

#[test]
fn a_forged_leader_of_another_cluster_from_the_far_future_is_no_split() {
    let (mut cluster, leader) = Cluster::formed("trust-split", 3, &[]);
    let victim = cluster.a_follower(&leader);
    let mut forged = card(&cluster.nodes[&victim]);
    forged.generation = u64::MAX;
    forged.version = u64::MAX;
    forged.cluster_id = Some(ClusterId(0xdead_beef));
    forged.db = DbState::Running(Running {
        leader: Some(forged.node_id.clone()),
        term: 99,
        voters: u16::MAX,
        voter: true,
        non_voter: false,
    });
    let mut forger = Forger::new(&fresh_ip(), "rq4d").expect("forger");
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    hold_under(&mut cluster, Duration::from_secs(5), |cluster| {
        let datagram = forger.cards(std::slice::from_ref(&forged));
        for id in &ids {
            forger.send(&cluster.nodes[id].gossip(), &datagram);
        }
    });
    for id in &ids {
        let node = &cluster.nodes[id];
        for kind in ["conflict", "wipe"] {
            let series = format!("rq4d_decisions_total{{kind=\"{kind}\"}}");
            assert_eq!(node.metric(&series).expect("metrics"), 0.0, "{id} {kind}");
        }
    }
    assert!(metric_sum(&cluster, &ids, &dropped("claim")) > 0.0);
}

#[test]
fn volatile_nodes_with_a_key_wipe_nothing_for_forged_cards_however_plausible() {
    let key = Key::from_bytes([3; 32]).to_base64();
    let (mut cluster, leader) =
        Cluster::formed("trust-volatile", 3, &["--volatile", "--gossip-key", &key]);
    let victim = cluster.a_follower(&leader);
    let real = card(&cluster.nodes[&victim]);
    // Plausible in every field: the victim's own life and address, a later version.
    let mut forged = real.clone();
    forged.version += 1000;
    forged.cluster_id = Some(ClusterId(0xdead_beef));
    forged.db = DbState::Running(Running {
        leader: Some(forged.node_id.clone()),
        term: 99,
        voters: 15,
        voter: true,
        non_voter: false,
    });
    let mut keyless = Forger::new(&fresh_ip(), "rq4d").expect("forger");
    let mut wrong_key = Forger::new(&fresh_ip(), "rq4d")
        .expect("forger")
        .sealing_with(Keyring::single(Key::from_bytes([4; 32])));
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    hold_under(&mut cluster, Duration::from_secs(5), |cluster| {
        for forger in [&mut keyless, &mut wrong_key] {
            let datagram = forger.cards(std::slice::from_ref(&forged));
            for id in &ids {
                forger.send(&cluster.nodes[id].gossip(), &datagram);
            }
        }
    });
    for id in &ids {
        let node = &cluster.nodes[id];
        assert_eq!(
            node.metric("rq4d_decisions_total{kind=\"wipe\"}")
                .expect("metrics"),
            0.0,
            "{id}\n{}",
            cluster.report()
        );
        let data = std::fs::read_dir(node.data_dir.join("rqlite"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(data > 0, "{id}'s data is there");
    }
    assert!(metric_sum(&cluster, &ids, &dropped("auth")) > 0.0);
}

/// Without a key, a stranger on a voter's own IP (a second socket there, as anybody who can
/// spoof that IP on a shared network) gossips a card claiming the voter's Raft address. The
/// leader took such a claim for Docker's reuse of a dead container's address and removed the
/// live voter at once; now it first asks whoever the leader's rqlited reaches at that address
/// who it is, the voter answers as itself, and stays.
#[test]
fn a_strangers_claim_of_a_live_voters_address_removes_nobody() {
    let (mut cluster, leader) = Cluster::formed("trust-claim", 3, &[]);
    let victim = cluster.a_follower(&leader);
    let victim_card = card(&cluster.nodes[&victim]);
    let before = voters(&cluster, &leader);
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    let victim_ip = victim_card.gossip_addr.ip().to_string();
    let mut forger = Forger::new(&victim_ip, "rq4d").expect("a socket on the victim's IP");
    let stranger = forger.identity("stranger");
    let mut claim = card(&cluster.nodes[&leader]);
    claim.node_id = stranger.node_id.clone();
    claim.gossip_addr = stranger.addr;
    claim.generation = stranger.generation;
    claim.version = 1;
    claim.raft_addr = victim_card.raft_addr.clone();
    claim.http_addr = victim_card.http_addr.clone();
    claim.db = DbState::Empty;
    claim.cluster_id = None;
    claim.formation = None;
    let targets: Vec<(String, rq4d_protocol::NodeIdentity)> = ids
        .iter()
        .map(|id| {
            let node = &cluster.nodes[id];
            (node.gossip(), identity_of(&card(node)))
        })
        .collect();
    // Longer than the stranger takes to be a member with a card, and several reaper rounds.
    // (It answers no probe: foca takes it for alive from its pings until suspicion runs out.)
    let mut n = 0u8;
    hold_under(&mut cluster, Duration::from_secs(8), |_| {
        n = n.wrapping_add(1);
        for (gossip, dst) in &targets {
            let hello = forger.swim(stranger.clone(), dst.clone(), Message::Ping(n), &[]);
            forger.send(gossip, &hello);
            let datagram = forger.cards(std::slice::from_ref(&claim));
            forger.send(gossip, &datagram);
        }
    });
    assert_eq!(voters(&cluster, &leader), before, "{}", cluster.report());
    assert_eq!(
        metric_sum(&cluster, &ids, "rq4d_removals_total"),
        0.0,
        "{}",
        cluster.report()
    );
    // The claim did take effect (the leader meant to remove the victim) and was answered.
    let log = cluster.nodes[&leader].log();
    assert!(
        log.contains("answers there as itself"),
        "the leader asked who answers at {} and kept {victim}:\n{}",
        victim_card.raft_addr,
        cluster.report()
    );
}

#[test]
fn forged_moved_cards_during_a_restart_write_no_peers_json() {
    let (mut cluster, leader) = Cluster::formed("trust-moved", 3, &[]);
    let before = voters(&cluster, &leader);
    let cards: Vec<Card> = cluster.nodes.values().map(card).collect();
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    for id in &ids {
        cluster.node(id).terminate();
    }
    for id in &ids {
        cluster
            .node(id)
            .wait_exit(Duration::from_secs(15))
            .expect("stopped");
    }
    let forger_ip = fresh_ip();
    let mut forger = Forger::new(&forger_ip, "rq4d").expect("forger");
    // Every voter "back with its data somewhere else": from the far future, at the forger's
    // address, and at its own gossip address with the forger's Raft address.
    let mut lies = Vec::new();
    for real in &cards {
        let moved = |generation: u64, gossip: std::net::SocketAddr, raft: String| {
            let mut card = real.clone();
            card.generation = generation;
            card.version = 1;
            card.gossip_addr = gossip;
            card.raft_addr = raft;
            card.db = DbState::HasData { last_voters: 3 };
            card
        };
        let elsewhere = format!("{forger_ip}:4002");
        // Half a minute ahead: later than the lives the restarted nodes begin, within the
        // clock skew a generation may have.
        let later = rq4d_tests::forge::now_ms() + 30_000;
        lies.push(moved(u64::MAX, real.gossip_addr, elsewhere.clone()));
        lies.push(moved(later, forger.addr(), elsewhere.clone()));
        lies.push(moved(later, real.gossip_addr, elsewhere));
    }
    for (slot, id) in ids.iter().enumerate() {
        cluster.start(id, slot);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        for real in &cards {
            let datagram = forger.cards(&lies);
            forger.send(&real.gossip_addr.to_string(), &datagram);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let leader = cluster.wait_one_cluster(FORM_DEADLINE);
    assert_eq!(voters(&cluster, &leader), before, "{}", cluster.report());
    for id in &ids {
        let log = cluster.nodes[id].log();
        assert!(
            !log.contains("peers.json"),
            "{id} wrote no peers.json\n{}",
            cluster.report()
        );
    }
}

#[test]
fn spoofed_pings_naming_a_members_id_leave_it_running_and_healthy() {
    let (mut cluster, leader) = Cluster::formed("trust-spoof", 3, &[]);
    let victim = cluster.a_follower(&leader);
    let me = identity_of(&card(&cluster.nodes[&victim]));
    let victim_gossip = cluster.nodes[&victim].gossip();
    let ip = fresh_ip();
    let mut forger = Forger::new(&ip, "rq4d").expect("forger");
    let mut n = 0u8;
    hold_under(&mut cluster, Duration::from_secs(6), |_| {
        n = n.wrapping_add(1);
        // Claiming an address it does not send from: no evidence at all.
        let mut elsewhere = me.clone();
        elsewhere.addr = format!("{ip}:7946").parse().expect("addr");
        elsewhere.generation += 1;
        let datagram = forger.swim(elsewhere, me.clone(), Message::Ping(n), &[]);
        forger.send(&victim_gossip, &datagram);
        // From the very address it claims, as a second process with the id would: evidence,
        // but a running member keeps running.
        let mut here = me.clone();
        here.addr = forger.addr();
        here.generation += 1;
        let datagram = forger.swim(here, me.clone(), Message::Ping(n), &[]);
        forger.send(&victim_gossip, &datagram);
    });
    let node = &cluster.nodes[&victim];
    let (code, body) = node.health().expect("health");
    assert_eq!(code, 200, "{body}");
    assert!(node.metric(&dropped("duplicate_node_id")).expect("metrics") > 0.0);
}

#[test]
fn a_flood_of_invented_members_leaves_every_node_healthy_and_bounded() {
    let (mut cluster, leader) = Cluster::formed("trust-flood", 3, &["--reap-after", "5s"]);
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    let target = cluster.a_follower(&leader);
    let dst = identity_of(&card(&cluster.nodes[&target]));
    let gossip = cluster.nodes[&target].gossip();
    let mut forger = Forger::new(&fresh_ip(), "rq4d").expect("forger");
    // Read once: `/members` grows with the flood.
    let template = card(&cluster.nodes[&target]);
    let mut k = 0u32;
    let mut send_fakes = |how_many: u32| {
        for _ in 0..how_many {
            let fake = forger.identity(&format!("fake-{k}"));
            k += 1;
            // A ping, not an announce: foca refuses an announce that carries an update count.
            let datagram = forger.swim(fake.clone(), dst.clone(), Message::Ping(0), &[]);
            forger.send(&gossip, &datagram);
            let mut hello = template.clone();
            hello.node_id = fake.node_id.clone();
            hello.gossip_addr = fake.addr;
            hello.raft_addr = format!("{}:4002", fake.addr.ip());
            hello.http_addr = format!("{}:4001", fake.addr.ip());
            hello.generation = fake.generation;
            hello.version = 1;
            hello.db = DbState::Empty;
            let datagram = forger.cards(&[hello]);
            forger.send(&gossip, &datagram);
            if k % 100 == 99 {
                // Paced so that the receiver's socket buffer keeps up.
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    };
    let count_members = || {
        let members = cluster.nodes[&target]
            .members()
            .expect("/members answers during the flood");
        members["members"].as_array().map_or(0, Vec::len)
    };
    // Flood until the table is full: on a loaded machine the socket drops part of a burst, so
    // the count of fakes sent says nothing; what the receiver holds does.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < 1000 {
        assert!(
            Instant::now() < deadline,
            "the flood never filled the table: {count} members after {k} fakes"
        );
        send_fakes(500);
        count = count_members();
    }
    // Then as many again: the table goes no further than its cap.
    send_fakes(2000);
    let count = count_members();
    assert!((1000..=1024 + 1).contains(&count), "{count} members");
    let node = &cluster.nodes[&target];
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", node.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    assert!(rss_kb < 64 * 1024, "{target} holds {rss_kb} kB");
    // The fakes die away; the real cluster never lost anyone.
    cluster.wait_one_cluster(FORM_DEADLINE);
    assert_eq!(
        metric_sum(&cluster, &ids, "rq4d_removals_total"),
        0.0,
        "{}",
        cluster.report()
    );
}

/// A copied node id: once the cluster of n1–n3 runs, a fourth process is started with n2's id
/// at another address. `data`: on a copy of n2's data directory (a copied volume), else empty
/// (a copied config). Returns the cluster (the impostor kept as "impostor") and the voters
/// before it started.
fn impostor(label: &str, data: bool, extra: &[&str]) -> (Cluster, String, Vec<(String, String)>) {
    let (mut cluster, leader) = Cluster::formed(label, 3, &[]);
    let before = voters(&cluster, &leader);
    if data {
        let from = cluster.nodes["n2"].data_dir.clone();
        let to = cluster.dir().join("n2-copy");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .expect("cp");
        assert!(status.success());
    }
    cluster.set_args(extra);
    cluster.start_as("impostor", "n2", &fresh_ip(), "n2-copy");
    (cluster, leader, before)
}

fn assert_impostor_refused(cluster: &mut Cluster, leader: &str, before: &[(String, String)]) {
    let real: BTreeSet<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
    let result = wait_until("the impostor refuses", FORM_DEADLINE, || {
        let (code, body) = cluster.nodes["impostor"].health()?;
        if code == 503 && body.contains("in use by a live member") {
            Ok(())
        } else {
            Err(format!("{code} {body}"))
        }
    });
    if let Err(error) = result {
        panic!("{error}\n{}", cluster.report());
    }
    // And it stays so, while the real cluster keeps all three voters where they were.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Err(error) = cluster.check_cluster_of(&real) {
            panic!("the real cluster changed: {error}\n{}", cluster.report());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(voters(cluster, leader), before, "{}", cluster.report());
    let impostor = &cluster.nodes["impostor"];
    for kind in ["join", "resume", "bootstrap"] {
        let series = format!("rq4d_decisions_total{{kind=\"{kind}\"}}");
        assert_eq!(
            impostor.metric(&series).expect("metrics"),
            0.0,
            "{kind}\n{}",
            cluster.report()
        );
    }
    assert!(
        child_pids(impostor.pid()).is_empty(),
        "the impostor started no rqlited\n{}",
        cluster.report()
    );
}

#[test]
fn an_empty_node_with_a_live_members_id_refuses_and_the_member_stays_a_voter() {
    let (mut cluster, leader, before) = impostor("trust-impostor", false, &[]);
    assert_impostor_refused(&mut cluster, &leader, &before);
}

#[test]
fn a_copied_volume_started_beside_its_original_refuses_too() {
    let (mut cluster, leader, before) = impostor("trust-copy", true, &[]);
    assert_impostor_refused(&mut cluster, &leader, &before);
}

/// The line behind gossip's: a member whose rq4d hangs while its rqlited runs on is no process
/// gossip can challenge, but Raft still has it. A process started with its id at another
/// address passes gossip's challenge (nobody answers there), and the supervisor's check — does
/// the cluster list this id elsewhere, and does the node there answer as it? — must refuse
/// before rqlited `-join`s and evicts the member. (The other side, a node back at a new address
/// whose old one is dead and which must join: `a_node_back_*` in `cluster_repair.rs`.)
///
/// Hung, not killed: an rqlited whose rq4d is killed dies of a broken pipe at its next log line.
#[test]
fn a_copied_id_whose_member_runs_with_a_hung_rq4d_is_refused_before_rqlited_starts() {
    let (mut cluster, leader) = Cluster::formed("trust-second-line", 3, &[]);
    let member = cluster.a_follower(&leader);
    let before = voters(&cluster, &leader);
    let children = child_pids(cluster.nodes[&member].pid());
    assert_eq!(children.len(), 1, "rq4d runs one rqlited");
    let _hung = Hung::new(cluster.nodes[&member].pid());
    cluster.start_as("twin", &member, &fresh_ip(), "twin");
    let refusal = format!("node id {member} is in use: the cluster lists it at Raft address");
    let seen = wait_until("the twin refuses to -join", FORM_DEADLINE, || {
        let log = cluster.nodes["twin"].log();
        if log.contains(&refusal) {
            Ok(())
        } else {
            Err(log)
        }
    });
    if let Err(error) = seen {
        panic!("{error}\n{}", cluster.nodes["twin"].log());
    }
    // And it stays so: no rqlited of the twin's, the member a voter where it was.
    let twin = cluster.nodes["twin"].pid();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        assert!(
            child_pids(twin).is_empty(),
            "the twin started rqlited\n{}",
            cluster.nodes["twin"].log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(alive(children[0]), "the member's rqlited runs on");
    assert_eq!(voters(&cluster, &leader), before);
}

/// A process stopped (SIGSTOP) while this lives, continued when it goes.
struct Hung(u32);

impl Hung {
    fn new(pid: u32) -> Self {
        signal(pid, "STOP");
        Self(pid)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

#[test]
fn an_impostor_told_to_exits_with_code_3() {
    let (mut cluster, _, _) = impostor("trust-exit", false, &["--exit-on-conflict", "3s"]);
    let status = cluster
        .node("impostor")
        .wait_exit(FORM_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
    assert_eq!(status.code(), Some(3), "{}", cluster.report());
    cluster.forget("impostor");
    cluster.wait_one_cluster(FORM_DEADLINE);
}

#[test]
fn intruders_without_the_key_or_with_another_never_become_members() {
    let key = Key::from_bytes([5; 32]).to_base64();
    let other = Key::from_bytes([6; 32]).to_base64();
    let (mut cluster, leader) = Cluster::formed("trust-keyed", 3, &["--gossip-key", &key]);
    let before = voters(&cluster, &leader);
    let ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    cluster.set_args(&[]);
    cluster.start_as("keyless", "intruder-a", &fresh_ip(), "intruder-a");
    cluster.set_args(&["--gossip-key", &other]);
    cluster.start_as("wrong-key", "intruder-b", &fresh_ip(), "intruder-b");
    let real: BTreeSet<String> = ids.iter().cloned().collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Err(error) = cluster.check_cluster_of(&real) {
            panic!("{error}\n{}", cluster.report());
        }
        for id in &ids {
            let doc = cluster.nodes[id].members().expect("members");
            let names: Vec<&str> = doc["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["node_id"].as_str())
                .collect();
            assert!(
                names.iter().all(|n| !n.starts_with("intruder")),
                "{id} knows {names:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(voters(&cluster, &leader), before);
    assert!(
        metric_sum(&cluster, &ids, &dropped("auth")) > 0.0,
        "{}",
        cluster.report()
    );
    for intruder in ["keyless", "wrong-key"] {
        let (code, _) = cluster.nodes[intruder].health().expect("health");
        assert_eq!(code, 503);
    }
}

#[test]
fn replayed_and_forged_sealed_datagrams_are_dropped_and_counted() {
    let key = Key::from_bytes([7; 32]).to_base64();
    // A fourth seed slot is the eavesdropper's: members greet it, so it hears genuine sealed
    // datagrams to replay.
    let mut cluster = Cluster::new("trust-replay", 4, 3).with_args(&["--gossip-key", &key]);
    let eavesdropper_ip = cluster.seed_ips()[3].clone();
    let eavesdropper = std::net::UdpSocket::bind((eavesdropper_ip.as_str(), 7946)).expect("bind");
    for slot in 0..3 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    let leader = cluster.wait_one_cluster(FORM_DEADLINE);
    let before = voters(&cluster, &leader);
    eavesdropper
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = vec![0u8; 2048];
    let (len, _) = eavesdropper
        .recv_from(&mut buf)
        .expect("a member greets the seed");
    let genuine = buf[..len].to_vec();
    let target = cluster.nodes[&cluster.a_follower(&leader)].gossip();
    for _ in 0..3 {
        eavesdropper.send_to(&genuine, &target).expect("send");
    }
    let mut forged = genuine.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x55;
    eavesdropper.send_to(&forged, &target).expect("send");
    let target_id = cluster.a_follower(&leader);
    let node = &cluster.nodes[&target_id];
    let counted = wait_until(
        "the replay and the forgery counted",
        Duration::from_secs(10),
        || {
            let replay = node.metric(&dropped("replay"))?;
            let auth = node.metric(&dropped("auth"))?;
            if replay >= 2.0 && auth >= 1.0 {
                Ok(())
            } else {
                Err(format!("replay {replay}, auth {auth}"))
            }
        },
    );
    counted.unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
    cluster.wait_one_cluster(FORM_DEADLINE);
    assert_eq!(voters(&cluster, &leader), before);
}

#[test]
fn a_strangers_digest_draws_no_cards() {
    let (cluster, leader) = Cluster::formed("trust-digest", 3, &[]);
    let node = &cluster.nodes[&leader];
    let mut forger = Forger::new(&fresh_ip(), "rq4d").expect("forger");
    let digest = rq4d_protocol::card::CardMessage::Digest {
        entries: Vec::new(),
        reply: false,
        range: rq4d_protocol::card::DigestRange::default(),
    }
    .encode()
    .expect("encodes");
    let datagram = forger.datagram(rq4d_protocol::wire::Kind::Cards, &digest);
    forger.send(&node.gossip(), &datagram);
    assert_eq!(
        forger.receive(Duration::from_secs(2)),
        None,
        "an open cluster's card table is no answer to a stranger"
    );
    let counted = wait_until("the digest counted", Duration::from_secs(5), || {
        let n = node.metric(&dropped("not_a_member"))?;
        if n >= 1.0 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    });
    counted.unwrap_or_else(|e| panic!("{e}"));
}
