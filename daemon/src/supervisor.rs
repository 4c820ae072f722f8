//! The rqlited child, carried out: the supervisor's *policy* is the protocol crate's
//! (`rq4d_protocol::supervisor`, the same code the simulator runs); this task executes its
//! actions — the command line a start implies, spawning and stopping the process, the HTTP calls
//! to rqlited, the files in the data directory — and feeds the outcomes back.
//!
//! It receives the node's `Directive` and a snapshot of the gossip membership through `watch`
//! channels, and sends `Report`s back to the gossip loop, which feeds them into the node.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rq4d_protocol::supervisor::{
    self as policy, Action, Directive, Listed, Listing, Membership, Removal, Report, StopWhy,
};
use rq4d_protocol::{Decision, NodeId, Waiting};
use tokio::sync::{mpsc, watch};

mod identity;

use self::identity::IdentityCheck;
use crate::orphan;
use crate::process::{Child, Exit, Reaper};
use crate::rqlite::access::GoFlags;
use crate::rqlite::{Access, RaftNode, Rqlite, RqliteError};
use crate::state::DataDir;

/// How long rqlited gets to stop after SIGTERM before SIGKILL; Docker waits 10 s in all.
pub const STOP_GRACE: Duration = Duration::from_secs(7);

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
    /// How rq4d reaches rqlited's HTTP API, and other nodes'.
    pub access: Access,
    /// `-join-as`, when rqlited checks credentials.
    pub join_as: Option<String>,
    /// Remove voters gossip has seen dead this long.
    pub reap_after: Duration,
    /// `--volatile`.
    pub volatile: bool,
    /// `--read-only`.
    pub read_only: bool,
}

impl SupervisorConfig {
    /// rqlited's command line for a start that joins `join` (none: resume), or, with
    /// `bootstrap_expect`, that forms a new cluster with the founders `join` lists; as a
    /// non-voter unless `voter`.
    pub fn args(
        &self,
        data_dir: &std::path::Path,
        join: &[String],
        bootstrap_expect: Option<u16>,
        voter: bool,
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
            if bootstrap_expect.is_none() {
                args.extend(self.join_pacing());
            }
        }
        if !voter {
            args.push("-raft-non-voter".into());
        }
        if let Some(user) = &self.join_as {
            // Joins and notifications carry the credentials of this user of the auth file.
            args.push("-join-as".into());
            args.push(user.clone());
        }
        args.extend(self.extra_args.iter().cloned());
        args.push(data_dir.display().to_string());
        args
    }

    /// A join retried every second, over the same ~12 s as rqlited's default five attempts
    /// three seconds apart (so `REJOIN_NOT_BEFORE` still outlasts it): a join refused for a
    /// moment — the address still held by a dead voter the leader is removing, a leader being
    /// elected — succeeds up to two seconds sooner. Flags the user passes after `--` win.
    fn join_pacing(&self) -> Vec<String> {
        let given = GoFlags(&self.extra_args);
        [("join-interval", "1s"), ("join-attempts", "13")]
            .into_iter()
            .filter(|(flag, _)| !given.given(flag))
            .flat_map(|(flag, value)| [format!("-{flag}"), value.to_string()])
            .collect()
    }
}

/// The supervisor task's state: the policy, and what it acts through.
pub struct Supervisor {
    config: SupervisorConfig,
    policy: policy::Supervisor,
    data: DataDir,
    directives: watch::Receiver<Directive>,
    membership: watch::Receiver<Membership>,
    reports: mpsc::Sender<Report>,
    processes: Reaper,
    child: Option<Child>,
    client: Rqlite,
    /// The last poll failure logged (see [`Supervisor::note_poll_error`]).
    poll_error: Option<String>,
    /// The `/nodes` listing in flight, if any (see [`Supervisor::list`]).
    listing: Option<InFlightListing>,
    /// The second line behind gossip's duplicate-id check.
    identity: IdentityCheck,
    /// The daemon's clock origin: the node's `now` and the membership's times count from it.
    epoch: Instant,
}

/// What a `/nodes` listing task gives back.
type ListingResult = Result<Result<Vec<RaftNode>, RqliteError>, tokio::task::JoinError>;

/// A `/nodes` listing running beside the polls (see [`Supervisor::list`]).
struct InFlightListing {
    /// What its answer is for: the listing asked for, and any asked for while it ran.
    listings: Vec<Listing>,
    /// The rqlited it asks: its answer counts only while that one runs.
    pid: Option<i32>,
    task: tokio::task::JoinHandle<Result<Vec<RaftNode>, RqliteError>>,
}

/// Waits for the listing in flight; with none, never.
async fn listing_done(listing: &mut Option<InFlightListing>) -> ListingResult {
    match listing {
        Some(in_flight) => (&mut in_flight.task).await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    /// Prepares a supervisor; [`Supervisor::run`] drives it. `epoch` is the daemon's clock origin,
    /// the one the node's and the membership's times are measured from.
    pub fn new(
        epoch: Instant,
        config: SupervisorConfig,
        data: DataDir,
        directives: watch::Receiver<Directive>,
        membership: watch::Receiver<Membership>,
        reports: mpsc::Sender<Report>,
        processes: Reaper,
    ) -> Self {
        let policy = policy::Supervisor::new(
            policy::SupervisorConfig {
                node_id: config.node_id.clone(),
                raft_addr: config.raft_adv.clone(),
                reap_after: config.reap_after,
                volatile: config.volatile,
                read_only: config.read_only,
            },
            data.stored().clone(),
            data.raft_db_exists(),
            epoch.elapsed(),
        );
        let identity = IdentityCheck::new(
            config.access.clone(),
            config.node_id.clone(),
            config.raft_adv.clone(),
        );
        Self {
            client: Rqlite::new(&config.access, &config.http_adv),
            policy,
            config,
            data,
            directives,
            membership,
            reports,
            processes,
            child: None,
            poll_error: None,
            listing: None,
            identity,
            epoch,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Runs until `shutdown` fires, then stops rqlited (SIGTERM, SIGKILL after [`STOP_GRACE`]).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Option<Exit> {
        let first = self.directives.borrow().clone();
        let now = self.now();
        self.policy.handle_directive(first, now);
        self.prefetch_identity_listing();
        self.execute().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                exit = wait_exit(&mut self.child) => {
                    self.child = None;
                    tracing::warn!(%exit, "rqlited exited; it will be restarted");
                    let now = self.now();
                    self.policy.handle_exit(exit.to_string(), now);
                }
                changed = self.directives.changed() => {
                    if changed.is_err() { break; }
                    let directive = self.directives.borrow_and_update().clone();
                    let now = self.now();
                    self.policy.handle_directive(directive, now);
                    self.prefetch_identity_listing();
                }
                changed = self.membership.changed() => {
                    if changed.is_err() { break; }
                    // A member newly superseded at its address makes the leader poll at once; a
                    // member's HTTP address may be what the identity check's listing waited for.
                    let membership = self.membership.borrow_and_update().clone();
                    let now = self.now();
                    self.policy.set_membership(membership, now);
                    self.prefetch_identity_listing();
                }
                () = tokio::time::sleep_until((self.epoch + self.policy.poll_timeout()).into()) => {
                    let now = self.now();
                    self.policy.handle_timeout(now);
                }
                listed = listing_done(&mut self.listing), if self.listing.is_some() => {
                    if let Some(done) = self.listing.take() {
                        self.listed(done, listed);
                    }
                }
            }
            self.execute().await;
        }
        if let Some(listing) = self.listing.take() {
            listing.task.abort();
        }
        let child = self.child.take()?;
        tracing::info!(pid = child.pid(), "stopping rqlited");
        Some(self.stop_child(child).await)
    }

    /// Asks rqlited what the policy needs at a poll.
    async fn poll(&mut self) {
        let membership = self.membership.borrow_and_update().clone();
        let now = self.now();
        self.policy.set_membership(membership, now);
        // Side by side: `/readyz` may wait on a dead leader for its bound, and `/status`, which
        // probes nobody, names the new leader meanwhile.
        let asked = Instant::now();
        let (ready, status) = tokio::join!(self.client.ready(), self.client.status());
        tracing::debug!(
            took_ms = asked.elapsed().as_millis(),
            ?ready,
            leader = status.as_ref().ok().and_then(|s| s.leader.as_deref()),
            "polled rqlited"
        );
        let ready = ready.unwrap_or(false);
        self.note_poll_error(status.as_ref().err());
        let status = status.ok().map(|s| policy::Status {
            leader: s.leader.as_deref().and_then(|id| NodeId::new(id).ok()),
            leads: s.state == "Leader",
            term: s.term,
            voter: s.voter,
            num_peers: s.num_peers,
        });
        let now = self.now();
        self.policy.handle_poll(ready, status, now);
    }

    /// Logs a poll that failed for a reason a human must fix — a certificate rq4d cannot
    /// verify, credentials rqlited refuses — once per distinct reason; a refused connection
    /// while rqlited starts is no news.
    fn note_poll_error(&mut self, error: Option<&RqliteError>) {
        let Some(error) = error.filter(|e| e.needs_a_human()) else {
            self.poll_error = None;
            return;
        };
        let text = error.to_string();
        if self.poll_error.as_deref() != Some(text.as_str()) {
            tracing::warn!("cannot ask rqlited for its status: {text}");
            self.poll_error = Some(text);
        }
    }

    /// Carries out what the policy asks, feeding the outcomes back, until it asks nothing more.
    async fn execute(&mut self) {
        while let Some(action) = self.policy.poll_action() {
            let (name, started) = (action.name(), Instant::now());
            self.act(action).await;
            let took = started.elapsed();
            if took > Duration::from_millis(100) {
                tracing::debug!(action = name, took_ms = took.as_millis(), "slow action");
            }
        }
    }

    /// Carries out one action of the policy, feeding its outcome back.
    async fn act(&mut self, action: Action) {
        match action {
            Action::Poll => self.poll().await,
            Action::Start {
                join,
                bootstrap_expect,
                peers_json,
                voter,
            } => {
                let outcome = self
                    .start(&join, bootstrap_expect, &peers_json, voter)
                    .await;
                let now = self.now();
                self.policy.handle_started(outcome, now);
            }
            Action::Stop(why) => self.stop(&why).await,
            Action::Wipe => {
                tracing::warn!("deleting this node's rqlite data (volatile mode)");
                let wiped = match self.data.wipe_rqlite() {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::error!("wipe failed: {error:#}");
                        false
                    }
                };
                self.policy.handle_wiped(wiped);
            }
            Action::Persist(stored) => {
                if let Err(error) = self.data.save(&stored) {
                    tracing::error!("cannot record this node's state: {error:#}");
                }
            }
            Action::List(listing) => self.list(listing),
            Action::Remove {
                id: victim,
                unless_answering_at,
            } => {
                let removal = self.remove(&victim, unless_answering_at).await;
                let now = self.now();
                self.policy.handle_removed(victim, removal, now);
            }
            Action::AskConfiguration { http } => {
                let members = self.configuration_at(&http).await;
                let now = self.now();
                self.policy.handle_configuration(members, now);
            }
            Action::Leave => {
                let me = self.config.node_id.clone();
                let left = match self.client.remove(me.as_str()).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot leave the configuration to change role; trying again later");
                        false
                    }
                };
                let now = self.now();
                self.policy.handle_left(left, now);
            }
            Action::Report(report) => {
                let _ = self.reports.send(report).await;
            }
        }
    }

    /// Starts a `/nodes` listing beside the polls. It probes every member, for up to
    /// [`PROBE_WITHIN`](crate::rqlite::PROBE_WITHIN) one that does not answer — just when one
    /// has died. Awaited in line, it held up the polls that see the new leader (a chaos run:
    /// followers ready 1.5–2 s after rqlited had a new leader, each stuck in the voters'
    /// listing that probed the dead one). A listing asked for
    /// while another is in flight takes that one's answer, judged on the gossip of when it
    /// comes: dropped, a look for a removal asked at once for a newly superseded member waited
    /// for the next look, up to [`policy::REAP_EVERY`] and another listing later.
    fn list(&mut self, listing: Listing) {
        if let Some(in_flight) = self.listing.as_mut() {
            tracing::debug!(
                ?listing,
                "a listing is in flight; its answer serves this one too"
            );
            if !in_flight.listings.contains(&listing) {
                in_flight.listings.push(listing);
            }
            return;
        }
        let client = self.client.clone();
        self.listing = Some(InFlightListing {
            listings: vec![listing],
            pid: self.child.as_ref().map(Child::pid),
            task: tokio::spawn(async move { client.nodes().await }),
        });
    }

    /// A listing came back. Judged on the gossip of now, not of the poll that asked for it
    /// (chaos finding: a member back at a new address, up in gossip for 3 s and just
    /// rejoined, was removed on its old life's death); dropped if the rqlited asked is no
    /// longer the one running.
    fn listed(&mut self, done: InFlightListing, listed: ListingResult) {
        let InFlightListing { listings, pid, .. } = done;
        if self.child.as_ref().map(Child::pid) != pid {
            tracing::debug!(?listings, "a listing of an rqlited since stopped; dropped");
            return;
        }
        let nodes = match listed {
            Ok(Ok(nodes)) => nodes,
            Ok(Err(error)) => {
                tracing::debug!(%error, ?listings, "cannot list rqlite nodes");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, ?listings, "the listing task failed");
                return;
            }
        };
        let listed: Vec<Listed> = nodes
            .iter()
            .filter_map(|n| {
                Some(Listed {
                    id: NodeId::new(n.id.as_str()).ok()?,
                    addr: n.addr.clone(),
                    voter: n.voter,
                    reachable: n.reachable,
                    api_addr: n.api_addr.clone(),
                })
            })
            .collect();
        let membership = self.membership.borrow_and_update().clone();
        let now = self.now();
        self.policy.set_membership(membership, now);
        for listing in listings {
            self.policy.handle_listing(listing, &listed, now);
        }
    }

    /// The ids in the configuration of the rqlited at `http` (`/status`, else `/nodes`);
    /// `None` when it does not answer.
    /// Bounded by half a second, since it holds up the polls of a node that may be cut off from
    /// the leader (a LAN `/status` answers in milliseconds; no answer is asked again later).
    async fn configuration_at(&self, http: &str) -> Option<Vec<NodeId>> {
        let leader = Rqlite::new(&self.config.access, http);
        let Ok(asked) =
            tokio::time::timeout(Duration::from_millis(500), leader.configuration()).await
        else {
            return None;
        };
        let ids: Vec<String> = match asked {
            Ok(Some(configured)) => configured.into_iter().map(|(id, _)| id).collect(),
            Ok(None) => tokio::time::timeout(Duration::from_millis(500), leader.nodes())
                .await
                .ok()?
                .ok()?
                .into_iter()
                .map(|n| n.id)
                .collect(),
            Err(error) => {
                tracing::debug!(%http, %error, "cannot ask the leader for its configuration");
                return None;
            }
        };
        // Whether that means a rejoin is the policy's to say (`StopWhy::Removed` logs it).
        Some(ids.iter().filter_map(|id| NodeId::new(id).ok()).collect())
    }

    /// Removes `victim` from the configuration, unless the rqlited at `unless_answering_at`
    /// answers `/status` as `victim`: then gossip's claim that another node holds its address
    /// is false (a stranger's, without a key) or stale, and the member lives.
    async fn remove(&self, victim: &NodeId, unless_answering_at: Option<String>) -> Removal {
        if let Some(api) = unless_answering_at {
            let answer = Rqlite::at(&self.config.access, api.clone()).status().await;
            if let Ok(status) = answer
                && status.node_id == victim.as_str()
            {
                tracing::warn!(
                    node = %victim,
                    at = %api,
                    "gossip says another node holds this member's Raft address, but it answers there as itself; not removing it"
                );
                return Removal::AnsweredThere;
            }
        }
        tracing::warn!(
            node = %victim,
            "removing a member that gossip sees dead (for over {:?}, or its address now belongs to another node)",
            self.config.reap_after
        );
        match self.client.remove(victim.as_str()).await {
            Ok(()) => Removal::Removed,
            Err(error) => {
                tracing::warn!(node = %victim, %error, "removal failed");
                Removal::Failed
            }
        }
    }

    /// Starts rqlited: `raft/peers.json` first when asked, and — before a plain `-join` — the
    /// check that no live node already holds this node's id.
    async fn start(
        &mut self,
        join: &[String],
        bootstrap_expect: Option<u16>,
        peers_json: &[(NodeId, String)],
        voter: bool,
    ) -> Result<(), String> {
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
            return Err(text);
        }
        if !peers_json.is_empty() {
            tracing::warn!(
                "every voter came back at a new address; writing raft/peers.json to recover"
            );
            if let Err(error) = self.data.write_peers_json(peers_json) {
                let text = format!("{error:#}");
                tracing::error!("{text}");
                return Err(text);
            }
        }
        let dir = self.data.rqlite_dir();
        let args = self.config.args(&dir, join, bootstrap_expect, voter);
        tracing::info!(rqlited = %self.config.rqlited.display(), args = %args.join(" "), "starting rqlited");
        let mut command = Command::new(&self.config.rqlited);
        command.args(&args);
        match self.processes.spawn("rqlited", command) {
            Ok(child) => {
                orphan::record(self.data.root(), child.pid());
                self.child = Some(child);
                Ok(())
            }
            Err(error) => {
                let text = format!("{error:#}");
                tracing::error!("{text}");
                Err(text)
            }
        }
    }

    async fn stop(&mut self, why: &StopWhy) {
        match why {
            StopWhy::FormationGivenUp(cluster) => {
                tracing::warn!(%cluster, "formation given up; stopping its rqlited");
            }
            StopWhy::Removed { leader } => tracing::warn!(
                "the leader ({leader}) no longer holds this node in its configuration; restarting rqlited with -join"
            ),
            StopWhy::Rejoin { leader } => tracing::warn!(
                "rqlited has had no leader for {:?} while {leader} leads; restarting it with -join",
                policy::REJOIN_AFTER
            ),
            StopWhy::StaleAddress { listed } => tracing::warn!(
                "the Raft configuration lists this node at {listed}, not at {}; restarting rqlited with -join so that the leader records its address",
                self.config.raft_adv
            ),
            StopWhy::Recover => tracing::warn!(
                "rqlited has had no leader for {:?} and every voter is live at a new address; restarting it",
                policy::REJOIN_AFTER
            ),
            StopWhy::ChangeRole { voter: true } => tracing::info!(
                "left the configuration as a non-voter; restarting rqlited to rejoin as a voter"
            ),
            StopWhy::ChangeRole { voter: false } => tracing::info!(
                "left the configuration as a voter (more live voters than --voters); restarting rqlited to rejoin as a non-voter"
            ),
            StopWhy::Wipe => {
                tracing::warn!(
                    "this node's data belongs to the losing side of a split; stopping rqlited to wipe it (volatile mode)"
                );
            }
        }
        if let Some(child) = self.child.take() {
            self.stop_child(child).await;
        }
    }

    /// Stops rqlited (SIGTERM, SIGKILL after the grace) and forgets its pid.
    async fn stop_child(&mut self, mut child: Child) -> Exit {
        let exit = child.stop(STOP_GRACE).await;
        orphan::forget(self.data.root());
        tracing::info!(%exit, "rqlited stopped");
        exit
    }

    /// Asks the first join target whose HTTP address gossip knows whether a live node holds
    /// this node's id at another Raft address (see [`identity`]); returns that address if so.
    async fn id_in_use(&mut self, join: &[String]) -> Option<String> {
        let http = {
            let membership = self.membership.borrow();
            join.iter()
                .find_map(|raft| membership.http_addrs.get(raft).cloned())?
        };
        self.identity.in_use(&http).await
    }

    /// While gossip challenges another life of this node's id and rqlited does not run, asks
    /// a member for the listing the identity check will need (see [`identity`]): one of the
    /// voters this node recorded, else any live member, whose HTTP address gossip knows.
    fn prefetch_identity_listing(&mut self) {
        let Some(directive) = self.policy.directive() else {
            return;
        };
        if self.child.is_some()
            || !matches!(
                directive.decision,
                Decision::Wait(Waiting::IdentityCheck { .. })
            )
        {
            return;
        }
        let http = {
            let membership = self.membership.borrow();
            let mine = &self.config.raft_adv;
            directive
                .voters
                .iter()
                .map(|(_, raft)| raft)
                .chain(membership.http_addrs.keys())
                .filter(|raft| *raft != mine)
                .find_map(|raft| membership.http_addrs.get(raft).cloned())
        };
        if let Some(http) = http {
            self.identity.prefetch(&http);
        }
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

    /// The command line of a start under `/d`, as one string.
    fn command_line(
        config: &SupervisorConfig,
        join: &[String],
        expect: Option<u16>,
        voter: bool,
    ) -> String {
        config
            .args(std::path::Path::new("/d"), join, expect, voter)
            .join(" ")
    }

    fn config() -> SupervisorConfig {
        SupervisorConfig {
            rqlited: "rqlited".into(),
            node_id: NodeId::new("n1").expect("id"),
            http_bind: "0.0.0.0:4001".into(),
            http_adv: "10.0.0.1:4001".into(),
            raft_bind: "0.0.0.0:4002".into(),
            raft_adv: "10.0.0.1:4002".into(),
            extra_args: vec!["-raft-election-timeout".into(), "2s".into()],
            access: Access::default(),
            join_as: None,
            reap_after: Duration::from_secs(60),
            volatile: false,
            read_only: false,
        }
    }

    #[test]
    fn a_resume_start_has_a_stable_id_addresses_and_no_join() {
        let args = config().args(std::path::Path::new("/data/rqlite"), &[], None, true);
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
        let args = config().args(std::path::Path::new("/d"), &founders, Some(3), true);
        let line = args.join(" ");
        assert!(
            line.contains("-bootstrap-expect 3 -join 10.0.0.1:4002,10.0.0.2:4002,10.0.0.3:4002"),
            "{line}"
        );
    }

    #[test]
    fn a_non_voter_start_says_so_and_auth_adds_the_join_user() {
        let mut config = config();
        config.join_as = Some("ops".into());
        let join = vec!["10.0.0.2:4002".to_string()];
        let line = command_line(&config, &join, None, false);
        assert!(
            line.contains("-raft-non-voter -join-as ops -raft-election-timeout"),
            "{line}"
        );
        let voter = command_line(&config, &join, None, true);
        assert!(!voter.contains("-raft-non-voter"), "{voter}");
        assert!(
            voter.ends_with(" /d"),
            "the data directory comes last: {voter}"
        );
    }

    #[test]
    fn a_join_retries_every_second_over_rqlited_s_twelve_seconds_unless_the_user_says() {
        let join = vec!["10.0.0.2:4002".to_string()];
        let line = command_line(&config(), &join, None, true);
        assert!(
            line.contains("-join 10.0.0.2:4002 -join-interval 1s -join-attempts 13"),
            "{line}"
        );
        let founders = vec!["10.0.0.1:4002".to_string(), "10.0.0.2:4002".to_string()];
        let formation = command_line(&config(), &founders, Some(2), true);
        assert!(!formation.contains("-join-interval"), "{formation}");
        let mut own = config();
        own.extra_args = vec!["-join-interval=5s".into()];
        let line = command_line(&own, &join, None, true);
        assert!(
            line.contains("-join-attempts 13 -join-interval=5s"),
            "the user's interval, rq4d's attempts: {line}"
        );
        own.extra_args = vec!["--join-attempts".into(), "3".into()];
        let line = command_line(&own, &join, None, true);
        assert!(
            line.contains("-join-interval 1s --join-attempts 3") && !line.contains("13"),
            "Go's double dash counts too: {line}"
        );
    }

    #[test]
    fn a_join_start_lists_the_targets_without_this_node() {
        let join = vec!["10.0.0.2:4002".to_string(), "10.0.0.1:4002".to_string()];
        let args = config().args(std::path::Path::new("/d"), &join, None, true);
        let at = args.iter().position(|a| a == "-join").expect("has -join");
        assert_eq!(args[at + 1], "10.0.0.2:4002");
        assert!(!args.iter().any(|a| a.contains("remove-shutdown")));
    }
}
