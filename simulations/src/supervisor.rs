//! The daemon's supervisor, carried out against the rqlite model.
//!
//! The policy is `rq4d_protocol::supervisor` — the very code the daemon runs: which decision
//! starts rqlited with which `-join` and which role, when a leaderless rqlited is restarted, the
//! backoff, what is reported into the node's card, when the state counts as data, the leader's
//! reaper, and a change of role. This adapter only executes its actions on the model (a start, a
//! stop, a wipe, `/nodes`, `/remove` of another node or of itself) and feeds the outcomes back,
//! as the daemon's executor does with a process and HTTP.

use std::time::Duration;

use rand::rngs::SmallRng;
use rq4d_protocol::supervisor::{
    self as policy, Action, Directive, Listed, Membership, Removal, StopWhy,
};
use rq4d_protocol::{DbState, NodeId};

use crate::rqlite::{Change, Ctx, Effect, Reconfiguration, Rqlite};

/// What the supervisor did that the world must carry out or record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Feed into the node with `set_db`.
    Db(DbState),
    /// Schedule these model effects.
    Effects(Vec<Effect>),
    /// rqlited was started with this `-join` list (and `-bootstrap-expect`, when not 0), as a
    /// voter or not.
    Started {
        /// `-join`.
        join: Vec<String>,
        /// `-bootstrap-expect` (0: none).
        expect: u16,
        /// Without `-raft-non-voter`.
        voter: bool,
    },
    /// rqlited was stopped, leaderless too long, for a restart with `-join` (or with
    /// `peers.json`).
    Rejoin,
    /// The data was wiped (volatile mode).
    Wiped,
    /// The leader removed a member.
    Removed(NodeId),
    /// This node left the configuration to rejoin with another role (`true`: as a voter).
    RoleChanged(bool),
    /// A cluster's configuration changed at this supervisor's request: judge it.
    Reconfigured(Reconfiguration),
    /// The recorded voters changed: feed into the node with `set_stored_voters`.
    Voters(Vec<(NodeId, String)>),
    /// `raft/peers.json` was written for a recovery.
    PeersJson(Vec<(NodeId, String)>),
}

/// The supervisor of one host's rqlited.
#[derive(Clone, Debug)]
pub struct Supervisor {
    policy: policy::Supervisor,
    /// The directive last acted on.
    pub acted: Option<Directive>,
}

/// What one supervisor call may look at and change.
pub struct SupCtx<'a> {
    /// This host.
    pub host: usize,
    /// The rqlite model.
    pub rqlite: &'a mut Rqlite,
    /// Network, addresses, time.
    pub ctx: Ctx<'a>,
    /// The world's generator (election timeouts on resume).
    pub rng: &'a mut SmallRng,
    /// The node's gossip membership.
    pub membership: Membership,
}

impl Supervisor {
    /// A supervisor for the daemon of `host` (`--read-only` when `read_only`) started at `now`
    /// on what its disk holds.
    pub fn new(
        now: Duration,
        host: usize,
        rqlite: &Rqlite,
        reap_after: Duration,
        volatile: bool,
        read_only: bool,
    ) -> Self {
        let disk = &rqlite.disks[host];
        let config = policy::SupervisorConfig {
            node_id: rqlite.hosts[host].id.clone(),
            raft_addr: rqlite.hosts[host].raft.clone(),
            reap_after,
            volatile,
            read_only,
        };
        Self {
            policy: policy::Supervisor::new(config, disk.stored.clone(), disk.raft_db, now),
            acted: None,
        }
    }

    /// The gossip membership last handed to the policy.
    pub fn seen(&self) -> &Membership {
        self.policy.membership()
    }

    /// Hands the node's gossip membership of now to the policy.
    fn hand_membership(&mut self, s: &SupCtx) {
        self.policy.set_membership(s.membership.clone(), s.ctx.now);
    }

    /// The node's gossip membership changed, as the daemon's membership watch tells it.
    pub fn membership_changed(&mut self, s: &mut SupCtx) -> Vec<Report> {
        self.hand_membership(s);
        self.execute(s)
    }

    /// When [`Supervisor::timeout`] is due next.
    pub fn poll_timeout(&self) -> Duration {
        self.policy.poll_timeout()
    }

    /// The node's directive changed.
    pub fn act(&mut self, directive: &Directive, s: &mut SupCtx) -> Vec<Report> {
        self.hand_membership(s);
        self.policy.handle_directive(directive.clone(), s.ctx.now);
        self.execute(s)
    }

    /// rqlited exited by itself.
    pub fn exited(&mut self, s: &mut SupCtx) -> Vec<Report> {
        self.policy.handle_exit("exited".into(), s.ctx.now);
        self.execute(s)
    }

    /// The policy's timers are due.
    pub fn timeout(&mut self, s: &mut SupCtx) -> Vec<Report> {
        self.policy.handle_timeout(s.ctx.now);
        self.execute(s)
    }

    /// Answers a poll: `/status`, and readiness as rqlited's `/readyz` gives it: a member,
    /// voter or non-voter, that knows a leader it reaches (the model's `/status` names a leader
    /// only then; a removed node names none).
    fn poll(&mut self, s: &mut SupCtx) {
        self.hand_membership(s);
        let status = s.rqlite.status(s.host, &s.ctx);
        let ready = status.as_ref().is_some_and(|st| st.leader.is_some());
        let status = status.map(|st| policy::Status {
            leader: st.leader,
            leads: st.is_leader,
            term: st.term,
            voter: st.voter,
            num_peers: u64::from(st.num_peers),
        });
        self.policy.handle_poll(ready, status, s.ctx.now);
    }

    /// Carries out the policy's actions on the model.
    fn execute(&mut self, s: &mut SupCtx) -> Vec<Report> {
        let mut out = Vec::new();
        let now = s.ctx.now;
        while let Some(action) = self.policy.poll_action() {
            match action {
                Action::Poll => self.poll(s),
                Action::Start {
                    join,
                    bootstrap_expect,
                    peers_json,
                    voter,
                } => {
                    if !peers_json.is_empty() {
                        s.rqlite.disks[s.host].peers_json = Some(peers_json.clone());
                        out.push(Report::PeersJson(peers_json));
                    }
                    let expect = bootstrap_expect.unwrap_or(0);
                    let effects = s.rqlite.start(s.host, &join, expect, voter, s.rng, &s.ctx);
                    out.push(Report::Started {
                        join,
                        expect,
                        voter,
                    });
                    out.push(Report::Effects(effects));
                    self.policy.handle_started(Ok(()), now);
                }
                Action::Stop(why) => {
                    if matches!(
                        why,
                        StopWhy::Rejoin { .. }
                            | StopWhy::Removed { .. }
                            | StopWhy::Recover
                            | StopWhy::StaleAddress { .. }
                    ) {
                        out.push(Report::Rejoin);
                    }
                    s.rqlite.stop(s.host);
                }
                Action::Wipe => {
                    s.rqlite.wipe(s.host);
                    self.policy.handle_wiped(true);
                }
                Action::Persist(stored) => s.rqlite.disks[s.host].stored = stored,
                Action::List(listing) => {
                    let nodes = listed(s.rqlite, s.host, &s.ctx);
                    self.policy.handle_listing(listing, &nodes, now);
                }
                Action::Remove {
                    id: victim,
                    unless_answering_at,
                } => {
                    let answering = unless_answering_at
                        .as_deref()
                        .and_then(|api| answering_at(s.rqlite, s.host, api, &s.ctx));
                    if answering.as_ref() == Some(&victim) {
                        self.policy
                            .handle_removed(victim, Removal::AnsweredThere, now);
                        continue;
                    }
                    let change = s.rqlite.disks[s.host].cluster.and_then(|cluster| {
                        s.rqlite
                            .remove_as(cluster, &victim, Change::Removed, &s.ctx)
                    });
                    let removal = if change.is_some() {
                        Removal::Removed
                    } else {
                        Removal::Failed
                    };
                    out.extend(change.map(Report::Reconfigured));
                    self.policy.handle_removed(victim, removal, now);
                }
                Action::AskConfiguration { http } => {
                    let members = configuration_at(s.rqlite, s.host, &http, &s.ctx);
                    self.policy.handle_configuration(members, now);
                }
                Action::Leave => {
                    // Through this node's own rqlited, which passes it to the leader: fails
                    // (500) when it knows no leader it reaches; an id already out is a 200.
                    let left = s.rqlite.leave(s.host, &s.ctx);
                    if let Ok(Some(change)) = &left {
                        out.push(Report::Reconfigured(change.clone()));
                    }
                    self.policy.handle_left(left.is_ok(), now);
                }
                Action::Report(report) => match report {
                    policy::Report::Db(db) => out.push(Report::Db(db)),
                    policy::Report::Wiped => out.push(Report::Wiped),
                    policy::Report::Removed(id) => out.push(Report::Removed(id)),
                    policy::Report::Voters(voters) => out.push(Report::Voters(voters)),
                    policy::Report::RoleChanged { voter } => out.push(Report::RoleChanged(voter)),
                    policy::Report::Ready(_)
                    | policy::Report::Exited(_)
                    | policy::Report::StartFailed(_)
                    | policy::Report::Thawed { .. } => {}
                },
            }
        }
        out
    }
}

/// The model's `/nodes?nonvoters` on `host`: the voters and the non-voters of its cluster,
/// each reachable when the host holding its Raft address runs rqlited and the network joins the
/// two both ways (rqlited's check is a request and its answer).
fn listed(rqlite: &Rqlite, host: usize, ctx: &Ctx) -> Vec<Listed> {
    let Some(cluster) = rqlite.disks[host].cluster else {
        return Vec::new();
    };
    let cluster = &rqlite.clusters[cluster];
    let voters = cluster.voters.iter().map(|entry| (entry, true));
    let non_voters = cluster.non_voters.iter().map(|entry| (entry, false));
    voters
        .chain(non_voters)
        .map(|((id, addr), voter)| {
            let at = reached(rqlite, host, addr, ctx);
            Listed {
                id: id.clone(),
                addr: addr.clone(),
                voter,
                reachable: at.is_some(),
                api_addr: at
                    .map(|at| format!("http://{}", http_of(&rqlite.hosts[at].raft)))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The host whose rqlited `host`'s reaches at Raft address `raft`: one runs there, and the
/// network joins the two both ways (rqlited's check is a request and its answer).
fn reached(rqlite: &Rqlite, host: usize, raft: &str, ctx: &Ctx) -> Option<usize> {
    ctx.addresses
        .host_of_raft(raft)
        .filter(|&at| rqlite.procs[at].is_some() && ctx.net.connected(host, at))
}

/// A host's HTTP address from its Raft address: the world gives every host `ip:4001` beside
/// `ip:4002`.
fn http_of(raft: &str) -> String {
    let ip = raft.rsplit_once(':').map_or(raft, |(ip, _)| ip);
    format!("{ip}:4001")
}

/// The members (voters and non-voters) of the configuration the rqlited at HTTP address `http`
/// (`ip:port`) holds, as `/status` tells `host`; `None` when it does not answer.
fn configuration_at(rqlite: &Rqlite, host: usize, http: &str, ctx: &Ctx) -> Option<Vec<NodeId>> {
    let at = ctx.addresses.host_of(http.parse().ok()?)?;
    if rqlite.procs[at].is_none() || !ctx.net.connected(host, at) {
        return None;
    }
    let cluster = &rqlite.clusters[rqlite.disks[at].cluster?];
    Some(
        cluster
            .voters
            .iter()
            .chain(&cluster.non_voters)
            .map(|(id, _)| id.clone())
            .collect(),
    )
}

/// Who answers `/status` at HTTP address `api` (a URL) for `host`: the id of the rqlited
/// running on the host holding that IP, when the network joins the two.
fn answering_at(rqlite: &Rqlite, host: usize, api: &str, ctx: &Ctx) -> Option<NodeId> {
    let addr = api.strip_prefix("http://").unwrap_or(api).parse().ok()?;
    let at = ctx.addresses.host_of(addr)?;
    (rqlite.procs[at].is_some() && ctx.net.connected(host, at)).then(|| rqlite.hosts[at].id.clone())
}
