//! Configuration changes: joins (rqlite's `Store.Join` rules), removals,
//! `-bootstrap-expect` notifications, a fresh node's self-bootstrap, and the
//! joiner's and bootstrapper's retry loops. Each change is committed through
//! `raft::commit`.

use std::time::{Duration, Instant};

use super::raft::{commit, heartbeat_request, rpc_timeout};
use super::{Node, Role, Shared, config_string, not_leader};
use crate::double::flags::format_duration;
use crate::double::log;
use crate::double::wire::{Request, Response, Server};

impl Node {
    /// Installs a single-node configuration of this node, as rqlited does for a
    /// fresh node started without `-join`.
    pub fn bootstrap_self(&self) {
        let mut c = self.lock();
        c.p.config = vec![Server {
            id: self.s.id.clone(),
            addr: self.s.raft_adv.clone(),
            api_addr: self.s.api_url(),
            voter: true,
        }];
        c.p.last_index = 1;
        c.p.last_term = 1;
        c.p.current_term = c.p.current_term.max(1);
        self.persist(&mut c);
    }
}

/// The leader's side of a join, following rqlite's `Store.Join` line by line:
/// the same id at the same address is ignored whatever the voter flag (no
/// promotion, no demotion); the same id at a new address is removed and added
/// again with the *new* flag; and its quirk: when only the *address* matches, it
/// removes the joiner's id (not the old entry), so the add then fails with a
/// duplicate address. The caller has checked the joiner's credentials.
pub(super) async fn on_join(
    node: &Shared,
    id: String,
    addr: String,
    api_addr: String,
    voter: bool,
) -> Response {
    let matches: Vec<Server> = {
        let c = node.lock();
        if c.role != Role::Leader {
            return not_leader(&c);
        }
        c.p.config
            .iter()
            .filter(|s| s.id == id || s.addr == addr)
            .cloned()
            .collect()
    };
    for srv in matches {
        if srv.id == id && srv.addr == addr {
            let mut c = node.lock();
            if let Some(s) = c.p.config.iter_mut().find(|s| s.id == id)
                && s.api_addr != api_addr
            {
                s.api_addr = api_addr.clone();
                node.persist(&mut c);
            }
            log(
                "store",
                &format!("node {id} at {addr} already member of cluster, ignoring join request"),
            );
            return Response::Ok;
        }
        if let Err(e) = remove_from_config(node, &id).await {
            log("store", &format!("failed to remove node {id}: {e}"));
            return Response::Error { error: e };
        }
        log(
            "store",
            &format!("removed node {id} prior to rejoin with changed ID or address"),
        );
    }
    {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return not_leader(&c);
        }
        if c.p.config.iter().any(|s| s.addr == addr) {
            return Response::Error {
                error: format!("found duplicate address in configuration: {addr}"),
            };
        }
        c.p.config.push(Server {
            id: id.clone(),
            addr: addr.clone(),
            api_addr,
            voter,
        });
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
        c.acks.insert(id.clone(), Instant::now());
        node.persist(&mut c);
    }
    node.kick.notify_one();
    if let Err(e) = commit(node).await {
        return Response::Error { error: e };
    }
    let suffrage = if voter { "voter" } else { "non-voter" };
    log(
        "store",
        &format!("node with ID {id}, at {addr}, joined successfully as {suffrage}"),
    );
    Response::Ok
}

/// Removes `id` from the configuration (a no-op change if it is not a member, as
/// with hashicorp/raft) and waits for the change to commit. A removed peer gets one
/// last heartbeat carrying the new configuration, so it learns it is out — which is
/// why a node removed while running reports `num_peers` 0 and `voter` false.
async fn remove_from_config(node: &Shared, id: &str) -> Result<(), String> {
    let (removed, hb) = {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return Err("not leader".into());
        }
        let removed = c.p.config.iter().find(|s| s.id == id).cloned();
        c.p.config.retain(|s| s.id != id);
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
        c.acks.remove(id);
        node.persist(&mut c);
        (removed, heartbeat_request(node, &c))
    };
    if let Some(r) = removed
        && r.id != node.s.id
    {
        let (timeout, net) = (rpc_timeout(node), node.net.clone());
        tokio::spawn(async move {
            let _ = net.call(&r.addr, &hb, timeout).await;
        });
    }
    node.kick.notify_one();
    commit(node).await
}

/// `DELETE /remove` on the leader.
pub async fn remove(node: &Shared, id: &str) -> Result<(), Response> {
    {
        let c = node.lock();
        if c.role != Role::Leader {
            return Err(not_leader(&c));
        }
    }
    log("store", &format!("received request to remove node {id}"));
    remove_from_config(node, id)
        .await
        .map_err(|error| Response::Error { error })?;
    log("store", &format!("node {id} removed successfully"));
    let mut c = node.lock();
    if !node.is_voter(&c) && c.role == Role::Leader {
        node.step_down(&mut c, "removed ourself, transitioning to follower");
    }
    Ok(())
}

/// `-bootstrap-expect`: record a notifying node; once enough have notified,
/// bootstrap with all of them as voters (rqlite's `Store.Notify`).
pub(super) fn on_notify(node: &Shared, id: String, addr: String) -> Response {
    let mut c = node.lock();
    if node.s.bootstrap_expect == 0 || c.bootstrapped || c.leader.is_some() {
        return Response::Ok;
    }
    c.notified.insert(
        id.clone(),
        Server {
            id,
            addr,
            api_addr: String::new(),
            voter: true,
        },
    );
    if c.notified.len() < node.s.bootstrap_expect {
        return Response::Ok;
    }
    log(
        "store",
        &format!(
            "reached expected bootstrap count of {}, starting cluster bootstrap",
            node.s.bootstrap_expect
        ),
    );
    if c.has_state && !c.p.config.is_empty() {
        log(
            "store",
            "cluster bootstrap failed: bootstrap only works on new clusters",
        );
    } else {
        c.p.config = c.notified.values().cloned().collect();
        c.p.last_index = 1;
        c.p.last_term = 1;
        c.p.current_term = c.p.current_term.max(1);
        node.persist(&mut c);
        log(
            "store",
            &format!(
                "cluster bootstrap successful, servers: {}",
                config_string(&c.p.config)
            ),
        );
    }
    c.bootstrapped = true;
    Response::Ok
}

/// One join through `target`, following a follower's pointer to the leader.
async fn join_via(node: &Shared, target: &str) -> Result<String, String> {
    let req = Request::Join {
        id: node.s.id.clone(),
        addr: node.s.raft_adv.clone(),
        api_addr: node.s.api_url(),
        voter: !node.s.non_voter,
        creds: node.s.join_creds.clone(),
    };
    let mut addr = target.to_string();
    for _ in 0..5 {
        match node.net.call(&addr, &req, Duration::from_secs(10)).await {
            Err(e) => return Err(format!("{e:#}")),
            Ok(Response::Ok) => return Ok(addr),
            Ok(Response::NotLeader { leader }) if !leader.is_empty() && leader != addr => {
                addr = leader
            }
            Ok(Response::NotLeader { .. }) => return Err("no leader".into()),
            Ok(Response::Error { error }) => return Err(error),
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
        }
    }
    Err("too many redirects".into())
}

/// rqlite's joiner: every target in order, `attempts` rounds `interval` apart.
/// Like rqlite it adds a hint about `-join-as` to every failure when it sent no
/// credentials, whatever the failure was.
pub async fn join_loop(
    node: &Shared,
    targets: &[String],
    attempts: i64,
    interval: Duration,
) -> Result<String, String> {
    let hint = if node.s.join_creds.is_none() {
        " (did you forget to set -join-as?)"
    } else {
        ""
    };
    for i in 0..attempts {
        for t in targets {
            match join_via(node, t).await {
                Ok(leader) => return Ok(leader),
                Err(e) => log(
                    "cluster-join",
                    &format!("failed to join via node at {t}: {e}{hint}"),
                ),
            }
        }
        if i + 1 < attempts {
            log(
                "cluster-join",
                &format!(
                    "failed to join cluster at {targets:?}, sleeping {} before retry",
                    format_duration(interval)
                ),
            );
            tokio::time::sleep(interval).await;
        }
    }
    log(
        "cluster-join",
        &format!("failed to join cluster at {targets:?}, after {attempts} attempt(s)"),
    );
    Err("failed to join cluster".into())
}

/// rqlite's bootstrapper for `-bootstrap-expect` (v8's `cluster.Bootstrapper.Boot`): a first
/// round 1–2 ms after the start, then one every 2–4 s (`random.Jitter` of 2 s) until a leader is
/// known. A round tries one join through each target; failing that, a voter notifies the
/// targets *in order and stops at the first that fails*, so a target not yet listening keeps
/// every target after it from hearing of this node until the next round (a non-voter never
/// counts towards the expected number and does not notify).
pub async fn bootstrap_loop(
    node: &Shared,
    targets: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let give_up = Instant::now() + timeout;
    // Like rqlite's timer, reset at the start of a round: the pause runs from there.
    let mut next = Instant::now() + node.jitter(Duration::from_millis(1));
    loop {
        tokio::time::sleep_until(next.into()).await;
        if node.lock().leader.is_some() {
            log("cluster-bootstrap", "boot operation marked done");
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(format!(
                "bootstrap failed: timeout after {}",
                format_duration(timeout)
            ));
        }
        next = Instant::now() + node.jitter(BOOT_INTERVAL);
        for t in targets {
            if let Ok(leader) = join_via(node, t).await {
                log(
                    "cluster-bootstrap",
                    &format!("succeeded directly joining cluster via node at {leader}"),
                );
                return Ok(());
            }
        }
        if !node.s.non_voter {
            match notify_in_order(node, targets).await {
                Ok(()) => log(
                    "cluster-bootstrap",
                    &format!("succeeded notifying all targets: {targets:?}"),
                ),
                Err(error) => log(
                    "cluster-bootstrap",
                    &format!("failed to notify all targets: {targets:?} ({error}, will retry)"),
                ),
            }
        }
    }
}

/// rqlite's `bootInterval`: the base of the pause between two bootstrap rounds.
const BOOT_INTERVAL: Duration = Duration::from_secs(2);

/// Notifies `targets` one after the other; the first failure ends the round.
async fn notify_in_order(node: &Shared, targets: &[String]) -> Result<(), String> {
    let req = Request::Notify {
        id: node.s.id.clone(),
        addr: node.s.raft_adv.clone(),
        creds: node.s.join_creds.clone(),
    };
    for t in targets {
        match node.net.call(t, &req, Duration::from_secs(5)).await {
            Ok(Response::Ok) => {}
            Ok(Response::Error { error }) => {
                return Err(format!("failed to notify node at {t}: {error}"));
            }
            Ok(other) => {
                return Err(format!(
                    "failed to notify node at {t}: unexpected answer {other:?}"
                ));
            }
            Err(e) => return Err(format!("failed to notify node at {t}: {e:#}")),
        }
    }
    Ok(())
}

/// `-raft-cluster-remove-shutdown`: ask the leader to remove this node, with the
/// `-join-as` credentials (the user needs `remove`).
pub async fn remove_self_for_shutdown(node: &Shared) {
    log("rqlited", "removing this node from cluster before shutdown");
    for _ in 0..20 {
        let leader = node.lock().leader.clone();
        if let Some((_, addr)) = leader {
            let req = Request::Remove {
                id: node.s.id.clone(),
                creds: node.s.join_creds.clone(),
            };
            if let Ok(Response::Ok) = node.net.call(&addr, &req, Duration::from_secs(2)).await {
                log("rqlited", "successfully removed this node from the cluster");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log(
        "rqlited",
        "failed to remove this node from the cluster before shutdown",
    );
}
