//! The rqlited child: which command line a decision implies, starting, watching, restarting and
//! stopping it, publishing what it does, and — on the leader — removing dead voters.
//!
//! The supervisor is a task of its own. It receives the node's [`Directive`] (decision + cluster
//! id) and a snapshot of the gossip membership through `watch` channels, and sends [`Report`]s
//! back to the gossip loop, which feeds them into the protocol node. It never decides *what* to
//! do about the cluster — the coordinator does — only *how* to make rqlited do it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rq4d_protocol::reaper::{self, Voter};
use rq4d_protocol::{ClusterId, DbState, Decision, NodeId, Running};
use tokio::sync::{mpsc, watch};

use crate::process::{Child, Exit, Reaper};
use crate::rqlite::{Rqlite, Status};
use crate::state::DataDir;

/// How long rqlited gets to stop after SIGTERM before SIGKILL; Docker waits 10 s in all.
pub const STOP_GRACE: Duration = Duration::from_secs(7);
/// How long a running rqlited may sit without a leader (or removed) while another node leads its
/// cluster before it is restarted with `-join`.
const REJOIN_AFTER: Duration = Duration::from_secs(10);
/// rqlited's own join retries take up to ~12 s; no rejoin restart before that has passed.
const REJOIN_NOT_BEFORE: Duration = Duration::from_secs(15);
/// How often rqlited is polled once ready, and while it is not (so that a seed's leadership
/// reaches its card, and the joiners, quickly).
const POLL_READY: Duration = Duration::from_secs(1);
const POLL_STARTING: Duration = Duration::from_millis(200);
/// Restart backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a removal may take to show in `/nodes` before the reaper looks again.
const PENDING_REMOVAL_FOR: Duration = Duration::from_secs(10);
/// How often a healthy rqlited's voters are recorded.
const VOTERS_EVERY: Duration = Duration::from_secs(5);
/// A run this long resets the backoff.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How to run rqlited.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The rqlited binary.
    pub rqlited: PathBuf,
    /// `-node-id`.
    pub node_id: NodeId,
    /// `-http-addr`.
    pub http_bind: String,
    /// `-http-adv-addr`.
    pub http_adv: String,
    /// `-raft-addr`.
    pub raft_bind: String,
    /// `-raft-adv-addr`.
    pub raft_adv: String,
    /// Passed through after rq4d's own flags.
    pub extra_args: Vec<String>,
    /// Remove voters gossip has seen dead this long.
    pub reap_after: Duration,
    /// `--volatile`.
    pub volatile: bool,
}

impl SupervisorConfig {
    /// rqlited's command line for a start that joins `join` (none: resume), or, with
    /// `bootstrap_expect`, that forms a new cluster with the founders `join` lists.
    pub fn args(
        &self,
        data_dir: &std::path::Path,
        join: &[String],
        bootstrap_expect: Option<u16>,
    ) -> Vec<String> {
        let mut args = vec![
            "-node-id".to_string(),
            self.node_id.to_string(),
            "-http-addr".into(),
            self.http_bind.clone(),
            "-http-adv-addr".into(),
            self.http_adv.clone(),
            "-raft-addr".into(),
            self.raft_bind.clone(),
            "-raft-adv-addr".into(),
            self.raft_adv.clone(),
        ];
        // A plain join never lists this node itself; a formation must (rqlited counts its own
        // notification among the founders).
        let join: Vec<&String> = join
            .iter()
            .filter(|t| bootstrap_expect.is_some() || **t != self.raft_adv)
            .collect();
        if let Some(expect) = bootstrap_expect {
            args.push("-bootstrap-expect".into());
            args.push(expect.to_string());
        }
        if !join.is_empty() {
            args.push("-join".into());
            args.push(
                join.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args.extend(self.extra_args.iter().cloned());
        args.push(data_dir.display().to_string());
        args
    }
}

/// What the node wants rqlited to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The coordinator's decision.
    pub decision: Decision,
    /// The cluster this node belongs to, per its card.
    pub cluster_id: Option<ClusterId>,
    /// The formation of that cluster this node is a founder of, per its card.
    pub formation: Option<u16>,
    /// The clusters of the proposals this node acknowledged (kept until it has data).
    pub acked: Vec<ClusterId>,
    /// The founders of its formation `(id, Raft address)`, once all are known: the formed
    /// cluster's first configuration, recorded as its voters when none are recorded yet.
    pub founders: Vec<(NodeId, String)>,
}

/// The gossip membership as the reaper needs it. Times are on the daemon's clock: durations
/// since the epoch passed to [`Supervisor::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Every member seen: `None` while alive, `Some(since)` once down.
    pub members: BTreeMap<NodeId, Option<Duration>>,
    /// The Raft addresses that live members (this node included) advertise, and whose they are.
    pub raft_addrs: BTreeMap<String, NodeId>,
    /// The HTTP address each of those Raft addresses' owners advertises.
    pub http_addrs: BTreeMap<String, String>,
}

/// What the supervisor tells the gossip loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// rqlited's state changed.
    Db(DbState),
    /// `/readyz` changed.
    Ready(bool),
    /// rqlited ended unexpectedly; it will be restarted.
    Exited(String),
    /// A dead voter was removed.
    Removed(NodeId),
    /// rqlited could not be started.
    StartFailed(String),
    /// The voters (id, Raft address) rqlited reports, when they change.
    Voters(Vec<(NodeId, String)>),
    /// The data was deleted (volatile mode): the node is empty and belongs to no cluster.
    Wiped,
}

/// The supervisor task's state.
pub struct Supervisor {
    config: SupervisorConfig,
    data: DataDir,
    directives: watch::Receiver<Directive>,
    membership: watch::Receiver<Membership>,
    reports: mpsc::Sender<Report>,
    processes: Reaper,
    child: Option<Child>,
    client: Rqlite,
    started_at: Instant,
    daemon_started: Instant,
    leaderless_since: Option<Instant>,
    /// The formation (cluster id, founders) the running rqlited was started for, until its
    /// state is committed.
    forming_for: Option<(ClusterId, u16)>,
    backoff: Duration,
    next_start: Instant,
    db: DbState,
    ready: bool,
    pending_removal: Option<(String, Instant)>,
    last_reap: Instant,
    last_voters_check: Instant,
}

impl Supervisor {
    /// Prepares a supervisor; [`Supervisor::run`] drives it. `epoch` is the daemon's clock origin,
    /// the one [`Membership`] times are measured from.
    pub fn new(
        epoch: Instant,
        config: SupervisorConfig,
        data: DataDir,
        directives: watch::Receiver<Directive>,
        membership: watch::Receiver<Membership>,
        reports: mpsc::Sender<Report>,
        processes: Reaper,
    ) -> Self {
        let now = Instant::now();
        Self {
            client: Rqlite::new(&config.http_adv),
            db: data.db_state(),
            config,
            data,
            directives,
            membership,
            reports,
            processes,
            child: None,
            started_at: now,
            daemon_started: epoch,
            leaderless_since: None,
            forming_for: None,
            backoff: BACKOFF_MIN,
            next_start: now,
            ready: false,
            pending_removal: None,
            last_reap: now,
            last_voters_check: now.checked_sub(VOTERS_EVERY).unwrap_or(now),
        }
    }

    /// Runs until `shutdown` fires, then stops rqlited (SIGTERM, SIGKILL after [`STOP_GRACE`]).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Option<Exit> {
        let mut next_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                exit = wait_exit(&mut self.child) => self.exited(exit).await,
                changed = self.directives.changed() => {
                    if changed.is_err() { break; }
                    self.act().await;
                }
                () = tokio::time::sleep_until(next_poll) => {
                    self.poll().await;
                    self.act().await;
                    let every = if self.ready { POLL_READY } else { POLL_STARTING };
                    next_poll = tokio::time::Instant::now() + every;
                }
            }
        }
        let mut child = self.child.take()?;
        tracing::info!(pid = child.pid(), "stopping rqlited");
        let exit = child.stop(STOP_GRACE).await;
        tracing::info!(%exit, "rqlited stopped");
        Some(exit)
    }

    async fn report(&self, report: Report) {
        let _ = self.reports.send(report).await;
    }

    async fn set_db(&mut self, db: DbState) {
        if self.db != db {
            self.db = db.clone();
            self.report(Report::Db(db)).await;
        }
    }

    async fn set_ready(&mut self, ready: bool) {
        if self.ready != ready {
            self.ready = ready;
            self.report(Report::Ready(ready)).await;
        }
    }

    /// Makes rqlited do what the directive says, if it does not already.
    async fn act(&mut self) {
        let directive = self.directives.borrow().clone();
        if let Some(cluster) = directive.cluster_id
            && !matches!(directive.decision, Decision::Wipe { .. })
            && let Err(error) = self.data.bind(cluster, directive.formation)
        {
            tracing::error!(%error, "cannot record the cluster this node is bound to");
        }
        if let Err(error) = self.data.record_acked(&directive.acked) {
            tracing::error!(%error, "cannot record the proposals this node acknowledged");
        }
        if let Some((cluster, founders)) = self.forming_for
            && self.child.is_some()
            && (directive.cluster_id, directive.formation) != (Some(cluster), Some(founders))
            && !self.data.has_data()
        {
            // The node gave its formation up (for a leader of another cluster): an rqlited
            // still notifying for it could yet form it. Nothing of it is committed here.
            tracing::warn!(%cluster, "formation given up; stopping its rqlited");
            self.stop().await;
        }
        let running = self.child.is_some();
        match directive.decision {
            Decision::Bootstrap {
                cluster_id,
                expect,
                targets,
            } if !running => {
                // Not committed here: nothing exists until every founder has notified, and a
                // founder's state is committed once its rqlited is a voter (see `poll`).
                self.start(&targets, Some(expect)).await;
                if self.child.is_some() {
                    self.forming_for = Some((cluster_id, expect));
                }
            }
            Decision::Join { targets, .. } if !running => self.start(&targets, None).await,
            Decision::Join { targets, .. } if self.should_rejoin() => {
                tracing::warn!(
                    "rqlited has had no leader for {REJOIN_AFTER:?} while {} leads; restarting it with -join",
                    targets.first().map_or("?", String::as_str)
                );
                self.stop().await;
                self.start(&targets, None).await;
            }
            Decision::Resume { join, peers } if running && !peers.is_empty() => {
                if !self.should_rejoin() {
                    return;
                }
                tracing::warn!(
                    "rqlited has had no leader for {REJOIN_AFTER:?} and every voter is live at a new address; restarting it"
                );
                self.stop().await;
                self.resume(&join, &peers).await;
            }
            Decision::Resume { join, peers } if !running => self.resume(&join, &peers).await,
            Decision::Wipe { reason } if self.config.volatile => {
                tracing::warn!("{reason}; deleting this node's rqlite data (volatile mode)");
                self.stop().await;
                match self.data.wipe() {
                    Ok(()) => {
                        self.db = DbState::Empty;
                        self.report(Report::Wiped).await;
                    }
                    Err(error) => tracing::error!(%error, "wipe failed"),
                }
            }
            _ => {}
        }
    }

    /// Starts rqlited on its data, with `-join` when `join` is not empty; when `peers` is not
    /// empty (every voter moved), writes `raft/peers.json` with them first.
    async fn resume(&mut self, join: &[String], peers: &[(NodeId, String)]) {
        if !peers.is_empty() && Instant::now() >= self.next_start {
            tracing::warn!(
                "every voter came back at a new address; writing raft/peers.json to recover"
            );
            if let Err(error) = self.data.write_peers_json(peers) {
                tracing::error!("{error:#}");
                return;
            }
        }
        self.start(join, None).await
    }

    fn should_rejoin(&self) -> bool {
        self.started_at.elapsed() >= REJOIN_NOT_BEFORE
            && self
                .leaderless_since
                .is_some_and(|since| since.elapsed() >= REJOIN_AFTER)
    }

    async fn start(&mut self, join: &[String], bootstrap_expect: Option<u16>) {
        if Instant::now() < self.next_start {
            return;
        }
        if bootstrap_expect.is_none()
            && let Some(other) = self.id_in_use(join).await
        {
            // The second line behind gossip's duplicate check: rqlited would let this node
            // evict a live member with its id.
            let text = format!(
                "node id {} is in use: the cluster lists it at Raft address {other}, and the node there answers as {}; refusing to -join (give this node its own --node-id)",
                self.config.node_id, self.config.node_id
            );
            tracing::error!("{text}");
            self.schedule_restart();
            self.report(Report::StartFailed(text)).await;
            return;
        }
        let dir = self.data.rqlite_dir();
        let args = self.config.args(&dir, join, bootstrap_expect);
        tracing::info!(rqlited = %self.config.rqlited.display(), args = %args.join(" "), "starting rqlited");
        let mut command = Command::new(&self.config.rqlited);
        command.args(&args);
        match self.processes.spawn("rqlited", command) {
            Ok(child) => {
                self.child = Some(child);
                self.started_at = Instant::now();
                self.leaderless_since = None;
                self.set_db(DbState::Starting).await;
            }
            Err(error) => {
                let text = format!("{error:#}");
                tracing::error!("{text}");
                self.schedule_restart();
                self.report(Report::StartFailed(text)).await;
            }
        }
    }

    /// Asks the first join target whose HTTP address gossip knows: does the cluster list this
    /// node's id at another Raft address, and does the node there answer as this id? Returns
    /// that address if so. Any failure to ask is no evidence: the check never blocks a join on
    /// its own trouble.
    async fn id_in_use(&self, join: &[String]) -> Option<String> {
        let http = {
            let membership = self.membership.borrow();
            join.iter()
                .find_map(|raft| membership.http_addrs.get(raft).cloned())?
        };
        let nodes = Rqlite::new(&http).nodes().await.ok()?;
        let listed = nodes
            .into_iter()
            .find(|n| n.id == self.config.node_id.as_str() && n.addr != self.config.raft_adv)?;
        if listed.api_addr.is_empty() {
            return None;
        }
        let status = Rqlite::at(listed.api_addr.clone()).status().await.ok()?;
        (status.node_id == self.config.node_id.as_str()).then_some(listed.addr)
    }

    async fn stop(&mut self) {
        self.forming_for = None;
        if let Some(mut child) = self.child.take() {
            let exit = child.stop(STOP_GRACE).await;
            tracing::info!(%exit, "rqlited stopped");
        }
        self.set_ready(false).await;
        let db = self.data.db_state();
        self.set_db(db).await;
    }

    fn schedule_restart(&mut self) {
        if self.started_at.elapsed() >= STABLE_RUN {
            self.backoff = BACKOFF_MIN;
        }
        self.next_start = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn exited(&mut self, exit: Exit) {
        self.child = None;
        self.forming_for = None;
        tracing::warn!(%exit, "rqlited exited; restarting it after {:?}", self.backoff);
        self.schedule_restart();
        self.set_ready(false).await;
        let db = self.data.db_state();
        self.set_db(db).await;
        self.report(Report::Exited(exit.to_string())).await;
    }

    /// Reads rqlited's state, publishes it, and reaps dead voters when leading.
    async fn poll(&mut self) {
        if self.child.is_none() {
            return;
        }
        let ready = self.client.ready().await.unwrap_or(false);
        self.set_ready(ready).await;
        let Ok(status) = self.client.status().await else {
            return;
        };
        let healthy = status.voter && status.leader.is_some();
        if status.voter {
            // In the configuration: from now on this Raft state is a member's, leader or not (a
            // voter that counted itself empty after a crash could withhold the vote its cluster
            // needs — simulator finding).
            let voters = voters_of(&status);
            let cluster = self.directives.borrow().cluster_id;
            if let Err(error) = self.data.commit(cluster, voters) {
                tracing::error!(%error, "cannot record membership");
            }
            let founders = self.directives.borrow().founders.clone();
            if self.data.voters().is_empty() && !founders.is_empty() {
                // A formed cluster's first configuration is its founders: recorded now, so a
                // recovery is possible even if no leader is ever seen (simulator finding).
                match self.data.record_voters(&founders) {
                    Ok(true) => self.report(Report::Voters(founders)).await,
                    Ok(false) => {}
                    Err(error) => tracing::error!(%error, "cannot record the founders as voters"),
                }
            }
        }
        if healthy {
            self.leaderless_since = None;
        } else {
            self.leaderless_since.get_or_insert_with(Instant::now);
        }
        self.set_db(DbState::Running(Running {
            leader: status.leader.as_deref().and_then(|id| NodeId::new(id).ok()),
            term: status.term,
            voters: voters_of(&status),
            voter: status.voter,
        }))
        .await;
        let count_changed = usize::from(voters_of(&status)) != self.data.voters().len();
        if healthy && (count_changed || self.last_voters_check.elapsed() >= VOTERS_EVERY) {
            self.last_voters_check = Instant::now();
            self.record_voters().await;
        }
        if status.state == "Leader" && self.last_reap.elapsed() >= Duration::from_secs(2) {
            self.last_reap = Instant::now();
            self.reap().await;
        }
    }

    /// Keeps the voters (id, Raft address) in the data directory for a later recovery.
    async fn record_voters(&mut self) {
        let Ok(nodes) = self.client.nodes().await else {
            return;
        };
        let voters: Vec<(NodeId, String)> = nodes
            .iter()
            .filter(|n| n.voter)
            .filter_map(|n| Some((NodeId::new(n.id.as_str()).ok()?, n.addr.clone())))
            .collect();
        match self.data.record_voters(&voters) {
            Ok(true) => self.report(Report::Voters(voters)).await,
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "cannot record the voters"),
        }
    }

    /// Removes one voter that gossip has seen dead for `reap_after`, if quorum allows.
    async fn reap(&mut self) {
        let nodes = match self.client.nodes().await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::debug!(%error, "cannot list rqlite nodes");
                return;
            }
        };
        // One at a time: wait until the last removal shows — but not forever, since the removed
        // node may come back and rejoin, and then it is listed again for good reason.
        if let Some((pending, since)) = &self.pending_removal
            && since.elapsed() < PENDING_REMOVAL_FOR
            && nodes.iter().any(|n| &n.id == pending)
        {
            return;
        }
        self.pending_removal = None;
        let membership = self.membership.borrow().clone();
        let voters: Vec<Voter> = nodes
            .iter()
            .filter(|n| n.voter)
            .filter_map(|n| {
                let id = NodeId::new(n.id.as_str()).ok()?;
                let down_since = if id == self.config.node_id {
                    None
                } else {
                    match membership.members.get(&id) {
                        Some(down) => *down,
                        // Never seen in gossip since this daemon started.
                        None => Some(Duration::ZERO),
                    }
                };
                let address_taken = membership
                    .raft_addrs
                    .get(&n.addr)
                    .is_some_and(|holder| *holder != id);
                Some(Voter {
                    id,
                    down_since,
                    address_taken,
                })
            })
            .collect();
        let now = self.daemon_started.elapsed();
        let Some(victim) = reaper::pick_removal(&voters, now, self.config.reap_after) else {
            return;
        };
        tracing::warn!(node = %victim, "removing a voter that gossip sees dead (for over {:?}, or its address now belongs to another node)", self.config.reap_after);
        match self.client.remove(victim.as_str()).await {
            Ok(()) => {
                self.pending_removal = Some((victim.to_string(), Instant::now()));
                self.report(Report::Removed(victim)).await;
            }
            Err(error) => tracing::warn!(node = %victim, %error, "removal failed"),
        }
    }
}

/// Voters in the configuration as far as `/status` tells: this node and its peers when it votes.
fn voters_of(status: &Status) -> u16 {
    if status.voter {
        u16::try_from(status.num_peers + 1).unwrap_or(u16::MAX)
    } else {
        0
    }
}

async fn wait_exit(child: &mut Option<Child>) -> Exit {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SupervisorConfig {
        SupervisorConfig {
            rqlited: "rqlited".into(),
            node_id: NodeId::new("n1").expect("id"),
            http_bind: "0.0.0.0:4001".into(),
            http_adv: "10.0.0.1:4001".into(),
            raft_bind: "0.0.0.0:4002".into(),
            raft_adv: "10.0.0.1:4002".into(),
            extra_args: vec!["-raft-election-timeout".into(), "2s".into()],
            reap_after: Duration::from_secs(60),
            volatile: false,
        }
    }

    #[test]
    fn a_resume_start_has_a_stable_id_addresses_and_no_join() {
        let args = config().args(std::path::Path::new("/data/rqlite"), &[], None);
        assert_eq!(
            args.join(" "),
            "-node-id n1 -http-addr 0.0.0.0:4001 -http-adv-addr 10.0.0.1:4001 \
             -raft-addr 0.0.0.0:4002 -raft-adv-addr 10.0.0.1:4002 \
             -raft-election-timeout 2s /data/rqlite"
        );
    }

    #[test]
    fn a_formation_start_expects_the_founders_and_lists_them_all_this_node_included() {
        let founders = vec![
            "10.0.0.1:4002".to_string(),
            "10.0.0.2:4002".to_string(),
            "10.0.0.3:4002".to_string(),
        ];
        let args = config().args(std::path::Path::new("/d"), &founders, Some(3));
        let line = args.join(" ");
        assert!(
            line.contains("-bootstrap-expect 3 -join 10.0.0.1:4002,10.0.0.2:4002,10.0.0.3:4002"),
            "{line}"
        );
    }

    #[test]
    fn a_join_start_lists_the_targets_without_this_node() {
        let join = vec!["10.0.0.2:4002".to_string(), "10.0.0.1:4002".to_string()];
        let args = config().args(std::path::Path::new("/d"), &join, None);
        let at = args.iter().position(|a| a == "-join").expect("has -join");
        assert_eq!(args[at + 1], "10.0.0.2:4002");
        assert!(!args.iter().any(|a| a.contains("remove-shutdown")));
    }
}
