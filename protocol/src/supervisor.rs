//! The supervisor's policy: what a node's rqlited should be doing, as a sans-IO state machine.
//!
//! The coordinator decides *what* the cluster needs of this node ([`Decision`]); this decides
//! *how* rqlited gets there and keeps the cluster true to the membership: which decision starts
//! rqlited with which `-join`, when a leaderless rqlited is restarted, the restart backoff, what is
//! reported back into the node's card, when the state counts as data (through [`Stored`]), and —
//! on the leader — which dead voter to remove. Inputs come with `now`; outputs are [`Action`]s
//! from [`Supervisor::poll_action`], in order. The daemon carries them out with a process, HTTP
//! and files; the simulator applies them to its model of rqlited: both run this code.
//!
//! The driver's half of the contract: it calls [`Supervisor::handle_timeout`] when
//! [`Supervisor::poll_timeout`] says (the supervisor's timer lives here, as the node's does);
//! it answers every [`Action::Poll`] with [`Supervisor::handle_poll`], every
//! [`Action::Start`] with [`Supervisor::handle_started`], every [`Action::Wipe`] with
//! [`Supervisor::handle_wiped`], every [`Action::List`] with [`Supervisor::handle_listing`]
//! (or nothing, if rqlited could not be asked), every [`Action::Remove`] with
//! [`Supervisor::handle_removed`], every [`Action::AskConfiguration`] with
//! [`Supervisor::handle_configuration`]; it reports an rqlited that exited by itself with
//! [`Supervisor::handle_exit`]; and it carries out the actions in the order they come (a `Stop`
//! is complete before the `Start` after it).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::card::{ClusterId, DbState, Running};
use crate::coordinator::Decision;
use crate::identity::NodeId;
use crate::reaper::{self, Member};
use crate::stored::Stored;

mod messages;

pub use messages::{
    Action, Directive, Listed, Listing, Membership, Removal, Report, Status, StopWhy,
};

/// How long a running rqlited may sit without a leader (or removed) while another node leads its
/// cluster before it is restarted with `-join`.
pub const REJOIN_AFTER: Duration = Duration::from_secs(10);
/// How long a member is leaderless before it asks the leader's rqlited whether its
/// configuration still holds it, and how often it asks again (a member removed while paused
/// or cut off rejoins then, not after [`REJOIN_AFTER`]).
pub const ASK_CONFIGURATION_EVERY: Duration = Duration::from_secs(2);
/// rqlited's own join retries take up to ~12 s (13 attempts 1 s apart as rq4d starts it;
/// rqlited's default is 5 attempts 3 s apart); no rejoin restart before that has passed.
pub const REJOIN_NOT_BEFORE: Duration = Duration::from_secs(15);
/// How often rqlited is polled once ready.
pub const POLL_READY: Duration = Duration::from_secs(1);
/// How often rqlited is polled while not ready (so that a founder's leadership reaches its card,
/// and the joiners, quickly).
pub const POLL_STARTING: Duration = Duration::from_millis(200);
/// How often a just-started rqlited is polled until it first answers: a formation's other
/// founders wait for the seed's card to show its rqlited answering (`start_formation` in the
/// coordinator), and rqlited's HTTP comes up 10–60 ms after the spawn. At `POLL_STARTING`,
/// every formation would wait up to 200 ms more; a few requests refused meanwhile cost nothing.
/// Only for [`FIRST_ANSWER_WITHIN`] after the start: an rqlited that does not answer by then
/// (credentials refused, a certificate rq4d cannot verify) is polled at `POLL_STARTING`.
pub const POLL_FIRST_ANSWER: Duration = Duration::from_millis(20);
/// See [`POLL_FIRST_ANSWER`].
pub const FIRST_ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// A poll's timer that fires this late means the process was stopped (`docker pause`, SIGSTOP,
/// a suspended VM) or starved that long: rqlited with it, most likely, and the cluster may have
/// removed the node meanwhile. A busy machine delays a timer by milliseconds, not a second.
pub const FROZEN_AFTER: Duration = Duration::from_secs(1);
/// For this long after such a wake-up ([`FROZEN_AFTER`]) the node polls every
/// [`POLL_STARTING`] and, unless it has asked since, asks the leader's configuration at its
/// first leaderless poll rather than after [`ASK_CONFIGURATION_EVERY`]. rqlited may still
/// hear a leader for a moment after it wakes — Raft messages queued while it was stopped — and
/// its heartbeat timeout (`-raft-timeout`, 1 s, drawn up to twice that) ends it.
pub const THAWED_FOR: Duration = Duration::from_secs(5);
/// The restart backoff's bounds.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// See [`BACKOFF_MIN`].
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run this long resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(60);
/// How long a removal may take to show in `/nodes` before the reaper looks again (the removed
/// node may have come back and rejoined, and then it is listed again for good reason).
pub const PENDING_REMOVAL_FOR: Duration = Duration::from_secs(10);
/// How long a member that answered at its own address as itself ([`Removal::AnsweredThere`])
/// is not removed on another member's claim of that address again.
pub const ANSWERED_HOLDS: Duration = Duration::from_secs(10);
/// How often a healthy rqlited's voters are recorded (and whenever their count changes).
pub const VOTERS_EVERY: Duration = Duration::from_secs(5);
/// How often the leader's supervisor looks for a dead voter to remove.
pub const REAP_EVERY: Duration = Duration::from_secs(2);

/// What the supervisor is configured with.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// This node's Raft address as rqlited advertises it (`-raft-adv-addr`).
    pub raft_addr: String,
    /// Remove voters gossip has seen dead this long (`--reap-after`).
    pub reap_after: Duration,
    /// `--volatile`.
    pub volatile: bool,
    /// `--read-only`: every start is a non-voter's.
    pub read_only: bool,
}

/// An rqlited this supervisor started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Child {
    started_at: Duration,
    /// The formation (cluster id, founders) it was started for, until its state is committed.
    forming_for: Option<(ClusterId, u16)>,
    /// Started as a voter (else with `-raft-non-voter`).
    voter: bool,
    /// It has been a healthy member (a voter that saw a leader): any join it made is over.
    served: bool,
    /// It has answered a poll (`/status`) since its start.
    answered: bool,
}

impl Child {
    /// Past [`REJOIN_NOT_BEFORE`]: rqlited's own join retries are over.
    fn past_join_retries(&self, now: Duration) -> bool {
        now.saturating_sub(self.started_at) >= REJOIN_NOT_BEFORE
    }

    /// No join of its can still succeed: it has served as a member, or its retries are over.
    fn join_over(&self, now: Duration) -> bool {
        self.served || self.past_join_retries(now)
    }
}

/// A change of role under way: this node left the configuration ([`Action::Leave`]) and
/// rejoins with the other role once that is done.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RoleChange {
    voter: bool,
    targets: Vec<String>,
}

/// One node's supervisor policy; see the module docs.
#[derive(Clone, Debug)]
pub struct Supervisor {
    config: SupervisorConfig,
    stored: Stored,
    /// `raft.db` exists (any start creates it).
    raft_db: bool,
    /// When the node started: a voter never seen in gossip counts as down since then.
    started: Duration,
    child: Option<Child>,
    /// A start was asked for and not answered yet.
    starting: Option<Child>,
    leaderless_since: Option<Duration>,
    /// When the leader's configuration was last seen without this node, while leaderless.
    removed_at: Option<Duration>,
    /// When the leader's configuration was last asked for.
    configuration_asked: Option<Duration>,
    /// When the supervisor last woke [`FROZEN_AFTER`] or more after a poll was due (see
    /// [`THAWED_FOR`]).
    thawed_at: Option<Duration>,
    backoff: Duration,
    next_start: Duration,
    db: DbState,
    ready: bool,
    pending_removal: Option<(NodeId, Duration)>,
    /// Members that answered at their own address as themselves, and when: another member's
    /// claim of that address is false (or stale) while [`ANSWERED_HOLDS`] runs.
    answered_there: BTreeMap<NodeId, Duration>,
    last_reap: Duration,
    /// A Raft address was newly claimed, or a member superseded at its own: look for a removal
    /// at the next poll.
    reap_soon: bool,
    last_voters_check: Option<Duration>,
    /// When rqlited is to be polled next (while none runs: when the directive is acted on
    /// again).
    next_poll: Duration,
    /// When the backoff of a failed or ended rqlited expires (the restart is due then).
    restart_at: Option<Duration>,
    directive: Option<Directive>,
    membership: Membership,
    role_change: Option<RoleChange>,
    actions: VecDeque<Action>,
}

impl Supervisor {
    /// The supervisor of a node started at `now` on a data directory holding `stored`, with
    /// `raft_db` telling whether rqlited's `raft.db` exists.
    pub fn new(config: SupervisorConfig, stored: Stored, raft_db: bool, now: Duration) -> Self {
        Self {
            db: stored.db_state(raft_db),
            config,
            stored,
            raft_db,
            started: now,
            child: None,
            starting: None,
            leaderless_since: None,
            removed_at: None,
            configuration_asked: None,
            thawed_at: None,
            backoff: BACKOFF_MIN,
            next_start: now,
            ready: false,
            pending_removal: None,
            answered_there: BTreeMap::new(),
            last_reap: now,
            reap_soon: false,
            last_voters_check: None,
            next_poll: now,
            restart_at: None,
            directive: None,
            membership: Membership::default(),
            role_change: None,
            actions: VecDeque::new(),
        }
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The stored state.
    pub fn stored(&self) -> &Stored {
        &self.stored
    }

    /// True while rqlited runs (started and not stopped or exited).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// rqlited's readiness at the last poll.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// How long between polls now: rarely once ready, often while starting, very often until
    /// a just-started rqlited first answers.
    fn poll_every(&self, now: Duration) -> Duration {
        if self.ready && !self.thawed(now) {
            POLL_READY
        } else if self.child.is_some_and(|child| {
            !child.answered && now.saturating_sub(child.started_at) < FIRST_ANSWER_WITHIN
        }) {
            POLL_FIRST_ANSWER
        } else {
            POLL_STARTING
        }
    }

    /// When [`Supervisor::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Duration {
        self.restart_at
            .map_or(self.next_poll, |at| at.min(self.next_poll))
    }

    /// The timers: a restart whose backoff expired is made; a poll that is due is asked for
    /// ([`Action::Poll`]) while rqlited runs, and while none runs the directive is acted on
    /// again.
    pub fn handle_timeout(&mut self, now: Duration) {
        let restart = self.restart_at.is_some_and(|at| at <= now);
        if restart {
            self.restart_at = None;
        }
        let poll = self.next_poll <= now;
        let late = now.saturating_sub(self.next_poll);
        if poll && self.child.is_some() && late >= FROZEN_AFTER {
            self.thawed_at = Some(now);
            self.actions
                .push_back(Action::Report(Report::Thawed { late }));
        }
        if poll {
            self.next_poll = now + self.poll_every(now);
        }
        if poll && self.child.is_some() {
            self.actions.push_back(Action::Poll);
        } else if poll || restart {
            self.act(now);
        }
    }

    /// The directive last handed in.
    pub fn directive(&self) -> Option<&Directive> {
        self.directive.as_ref()
    }

    /// The gossip membership last handed in.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The node's directive changed: makes rqlited do what it says, if it does not already.
    pub fn handle_directive(&mut self, directive: Directive, now: Duration) {
        self.directive = Some(directive);
        self.act(now);
    }

    /// The gossip membership changed (the reaper reads it). A Raft address newly claimed — by
    /// a new member, or by one that moved — or a member newly superseded at its address makes
    /// the leader poll at once and look for a removal, instead of at its next poll (up to
    /// [`POLL_READY`]) and up to [`REAP_EVERY`] later: when the configuration gives that
    /// address to a member that is gone (Docker hands a dead container's IP to the next one),
    /// the newcomer's join waits on that removal.
    pub fn set_membership(&mut self, membership: Membership, now: Duration) {
        let newly_claimed = membership
            .raft_addrs
            .iter()
            .any(|(addr, holder)| self.membership.raft_addrs.get(addr) != Some(holder));
        let newly_superseded = membership
            .superseded
            .keys()
            .any(|id| !self.membership.superseded.contains_key(id));
        if newly_claimed || newly_superseded {
            self.reap_soon = true;
            if self.leads() {
                self.next_poll = self.next_poll.min(now);
            }
        }
        self.membership = membership;
    }

    /// This node's rqlited ran and led at the last poll.
    fn leads(&self) -> bool {
        self.child.is_some()
            && matches!(&self.db, DbState::Running(running)
                if running.leader.as_ref() == Some(&self.config.node_id))
    }

    /// rqlited's answers to an [`Action::Poll`]: `/readyz` (200 or not) and `/status` (`None`:
    /// no answer). Records what they show, commits the state of a voter, asks for the voters or
    /// a removal when due, and acts on the directive again (rejoin timers expire without any
    /// other input). Answers that arrive after rqlited stopped are ignored.
    pub fn handle_poll(&mut self, ready: bool, status: Option<Status>, now: Duration) {
        if let Some(child) = self.child.as_mut() {
            child.answered |= status.is_some();
            self.set_ready(ready);
            self.next_poll = now + self.poll_every(now);
            if let Some(status) = status {
                self.observe(&status, now);
            }
        }
        self.act(now);
    }

    fn observe(&mut self, status: &Status, now: Duration) {
        let voters = status.voters();
        let running = Running {
            leader: status.leader.clone(),
            term: status.term,
            voters,
            voter: status.voter,
            non_voter: self.child.is_some_and(|child| !child.voter),
        };
        let healthy = running.healthy();
        if status.voter || (running.non_voter && status.leader.is_some()) {
            // In the configuration: from now on this Raft state is a member's, leader or not (a
            // voter that counted itself empty after a crash could withhold the vote its cluster
            // needs — simulator finding). A non-voter by design is in it once it hears the
            // leader; a node started as a voter that hears one without being a voter is not
            // (it may sit at an address the configuration gives another node).
            let cluster = self.directive.as_ref().and_then(|d| d.cluster_id);
            if self.stored.commit(cluster, voters) | self.stored.record_role(status.voter) {
                self.persist();
            }
        }
        if healthy {
            self.leaderless_since = None;
            self.removed_at = None;
            if let Some(child) = self.child.as_mut() {
                child.served = true;
            }
        } else {
            self.leaderless_since.get_or_insert(now);
        }
        self.set_db(DbState::Running(running));
        let count_changed = usize::from(voters) != self.stored.voters.len();
        let due = self
            .last_voters_check
            .is_none_or(|at| now.saturating_sub(at) >= VOTERS_EVERY);
        if healthy && (count_changed || due) {
            self.last_voters_check = Some(now);
            self.actions.push_back(Action::List(Listing::Voters));
        }
        if status.leads && (self.reap_soon || now.saturating_sub(self.last_reap) >= REAP_EVERY) {
            self.last_reap = now;
            self.reap_soon = false;
            self.actions.push_back(Action::List(Listing::Reap));
        }
    }

    /// rqlited's members, as asked for by [`Action::List`].
    pub fn handle_listing(&mut self, listing: Listing, nodes: &[Listed], now: Duration) {
        match listing {
            Listing::Voters => {
                let voters: Vec<(NodeId, String)> = nodes
                    .iter()
                    .filter(|n| n.voter)
                    .map(|n| (n.id.clone(), n.addr.clone()))
                    .collect();
                if self.stored.record_voters(&voters) {
                    self.persist();
                    self.report(Report::Voters(voters));
                }
            }
            Listing::Reap => {
                if let Some(removal) = self.pick_removal(nodes, now) {
                    self.actions.push_back(removal);
                }
            }
        }
        self.mend_own_entry(nodes, now);
    }

    /// The configuration lists this node at another Raft address than the one it advertises: it
    /// resumed at a new address without `-join` (no leader was in sight) and Raft kept the old
    /// entry — even as leader, which it can become that way. The stale entry blocks any node
    /// that now has that address ("found duplicate address in configuration": rqlited removes
    /// only an entry of the joiner's own id before adding it) and sends future vote requests for
    /// this node to the old address. A restart with `-join` to the other live voters makes the
    /// leader re-add it at its address ("removed node … prior to rejoin with changed ID or
    /// address"), data kept — only while those voters hold a majority without it, and not
    /// within [`REJOIN_NOT_BEFORE`] of a start. (Chaos finding: a leader resumed at a new address
    /// kept its old one in the configuration, and a replica that got that address could not join
    /// for 8 minutes, to the end of the run.)
    fn mend_own_entry(&mut self, nodes: &[Listed], now: Duration) {
        let Some(child) = self.child else {
            return;
        };
        if self.starting.is_some() || now.saturating_sub(child.started_at) < REJOIN_NOT_BEFORE {
            return;
        }
        let me = &self.config.node_id;
        let Some(listed) = nodes
            .iter()
            .find(|n| &n.id == me && n.addr != self.config.raft_addr)
        else {
            return;
        };
        let voters = nodes.iter().filter(|n| n.voter).count();
        let targets: Vec<String> = nodes
            .iter()
            .filter(|n| n.voter && &n.id != me && n.reachable)
            .map(|n| n.addr.clone())
            .collect();
        if targets.len() * 2 <= voters {
            return;
        }
        let listed = listed.addr.clone();
        self.stop(StopWhy::StaleAddress { listed });
        self.join(targets, child.voter, now);
    }

    /// One member (voter or non-voter) that gossip has seen dead for `reap_after`, if quorum
    /// allows: the longest dead first, or at once one whose Raft address a live member with
    /// another id advertises. One at a time: the last removal must show in `/nodes` first (or
    /// `PENDING_REMOVAL_FOR` pass). Never one that the leader's rqlited reaches: see
    /// [`crate::reaper`] — unless another member claims its address, and then only if the node
    /// there does not answer as it (the [`Action::Remove`] names where to ask).
    fn pick_removal(&mut self, nodes: &[Listed], now: Duration) -> Option<Action> {
        if let Some((pending, since)) = &self.pending_removal
            && now.saturating_sub(*since) < PENDING_REMOVAL_FOR
            && nodes.iter().any(|n| &n.id == pending)
        {
            return None;
        }
        self.pending_removal = None;
        self.answered_there
            .retain(|_, at| now.saturating_sub(*at) < ANSWERED_HOLDS);
        let members: Vec<Member> = nodes
            .iter()
            .map(|n| {
                let address_taken = !self.answered_there.contains_key(&n.id)
                    && self
                        .membership
                        .raft_addrs
                        .get(&n.addr)
                        .is_some_and(|holder| *holder != n.id);
                // Reached by the leader's rqlited: alive, whatever gossip last heard. (Not when
                // another node holds its address: that one answers in its place.)
                let down_since = if n.id == self.config.node_id || (n.reachable && !address_taken) {
                    None
                } else {
                    match self.membership.members.get(&n.id) {
                        // Alive in gossip, but its address belongs to a member up since: down
                        // from then on, without waiting out gossip's suspicion.
                        Some(None) => self.membership.superseded.get(&n.id).copied(),
                        Some(down) => *down,
                        // Never seen in gossip since this node started.
                        None => Some(self.started),
                    }
                };
                Member {
                    id: n.id.clone(),
                    voter: n.voter,
                    down_since,
                    address_taken,
                }
            })
            .collect();
        let id = reaper::pick_removal(&members, now, self.config.reap_after)?;
        // A claim of its address is gossip's word, and gossip may lie (without a key anybody
        // can gossip). Whoever the leader's rqlited reached at that address says who it is.
        let unless_answering_at = nodes
            .iter()
            .find(|n| n.id == id)
            .filter(|n| n.reachable && !n.api_addr.is_empty())
            .filter(|n| members.iter().any(|m| m.id == n.id && m.address_taken))
            .map(|n| n.api_addr.clone());
        Some(Action::Remove {
            id,
            unless_answering_at,
        })
    }

    /// The answer to [`Action::Remove`].
    pub fn handle_removed(&mut self, id: NodeId, removal: Removal, now: Duration) {
        match removal {
            Removal::Removed => {
                self.pending_removal = Some((id.clone(), now));
                self.report(Report::Removed(id));
            }
            Removal::Failed => {}
            Removal::AnsweredThere => {
                self.answered_there.insert(id, now);
                // The look ended on a false or stale claim and removed nobody, while another
                // member may wait on its own removal (a newcomer at its address cannot join
                // until then): look again at once, not a `REAP_EVERY` later. The member that
                // answered is not picked again while `ANSWERED_HOLDS` runs.
                self.reap_soon = true;
                if self.leads() {
                    self.next_poll = self.next_poll.min(now);
                }
            }
        }
    }

    /// The answer to [`Action::Leave`]: this node left the configuration (`left`), and its
    /// rqlited is restarted with the other role at once; or it could not, and the change is
    /// tried again at a later poll.
    pub fn handle_left(&mut self, left: bool, now: Duration) {
        let Some(change) = self.role_change.take() else {
            return;
        };
        if !left {
            return;
        }
        // Out of the configuration: whatever restarts rqlited next (this start, or a resume
        // after a backoff) joins with the new role.
        if self.stored.record_role(change.voter) {
            self.persist();
        }
        self.stop(StopWhy::ChangeRole {
            voter: change.voter,
        });
        self.report(Report::RoleChanged {
            voter: change.voter,
        });
        self.start(change.targets, None, Vec::new(), None, change.voter, now);
    }

    /// The answer to [`Action::Start`]: started, or why not.
    pub fn handle_started(&mut self, outcome: Result<(), String>, now: Duration) {
        let Some(child) = self.starting.take() else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.child = Some(child);
                self.next_poll = now + POLL_FIRST_ANSWER;
                self.raft_db = true;
                self.leaderless_since = None;
                self.removed_at = None;
                self.set_db(DbState::Starting);
            }
            Err(why) => {
                self.schedule_restart(now, None);
                self.report(Report::StartFailed(why));
            }
        }
    }

    /// rqlited exited by itself: it is restarted after the backoff.
    pub fn handle_exit(&mut self, how: String, now: Duration) {
        let Some(child) = self.child.take() else {
            return;
        };
        self.schedule_restart(now, Some(now.saturating_sub(child.started_at)));
        self.set_ready(false);
        self.set_db(self.stored.db_state(self.raft_db));
        self.report(Report::Exited(how));
    }

    /// The answer to [`Action::Wipe`].
    pub fn handle_wiped(&mut self, wiped: bool) {
        if !wiped {
            return;
        }
        self.stored.wiped();
        self.raft_db = false;
        self.persist();
        self.db = DbState::Empty;
        self.report(Report::Wiped);
    }

    /// Makes rqlited do what the directive says, if it does not already.
    fn act(&mut self, now: Duration) {
        let Some(directive) = self.directive.clone() else {
            return;
        };
        let wipe = matches!(directive.decision, Decision::Wipe { .. });
        if let Some(cluster) = directive.cluster_id
            && !wipe
            && self.stored.bind(cluster, directive.formation)
        {
            self.persist();
        }
        if self.stored.record_acked(&directive.acked) {
            self.persist();
        }
        // The node's first voters (its founders, adopted by the node itself) are persisted;
        // later ones come from the listing, which tells the node.
        if self.stored.voters.is_empty()
            && !directive.voters.is_empty()
            && self.stored.record_voters(&directive.voters)
        {
            self.persist();
        }
        if let Some(Child {
            forming_for: Some((cluster, founders)),
            ..
        }) = self.child
            && (directive.cluster_id, directive.formation) != (Some(cluster), Some(founders))
            && !self.stored.has_data(self.raft_db)
        {
            // The node gave its formation up (for a leader of another cluster): an rqlited
            // still notifying for it could yet form it. Nothing of it is committed here.
            self.stop(StopWhy::FormationGivenUp(cluster));
        }
        let running = self.child.is_some() || self.starting.is_some();
        match directive.decision {
            Decision::Bootstrap {
                cluster_id,
                expect,
                targets,
            } if !running => {
                // Not committed here: nothing exists until every founder has notified, and a
                // founder's state is committed once its rqlited is a voter (see `observe`).
                self.start(
                    targets,
                    Some(expect),
                    Vec::new(),
                    Some((cluster_id, expect)),
                    true,
                    now,
                );
            }
            Decision::Join { targets, voter, .. } if !running => self.join(targets, voter, now),
            Decision::Join { targets, voter, .. } if self.should_rejoin(now) => {
                let leader = targets.first().cloned().unwrap_or_default();
                self.stop(if self.removed_at.is_some() {
                    StopWhy::Removed { leader }
                } else {
                    StopWhy::Rejoin { leader }
                });
                self.join(targets, voter, now);
            }
            Decision::Join { targets, .. } if self.may_ask_configuration(now) => {
                if let Some(http) = targets
                    .first()
                    .and_then(|leader| self.membership.http_addrs.get(leader))
                {
                    self.configuration_asked = Some(now);
                    self.actions
                        .push_back(Action::AskConfiguration { http: http.clone() });
                }
            }
            Decision::ChangeRole { voter, targets, .. }
                if self.child.is_some_and(|child| child.voter != voter)
                    && self.ready
                    && self.role_change.is_none()
                    && !self.config.read_only =>
            {
                // Caught up as far as rqlited tells (ready: leader and store ok): leave the
                // configuration, then rejoin with the other role (`handle_left`).
                self.role_change = Some(RoleChange { voter, targets });
                self.actions.push_back(Action::Leave);
            }
            Decision::Resume { join, peers }
                if running && !peers.is_empty() && self.should_rejoin(now) =>
            {
                self.stop(StopWhy::Recover);
                self.resume(join, peers, now);
            }
            Decision::Resume { join, peers } if !running => self.resume(join, peers, now),
            Decision::Wipe { .. } if self.config.volatile => {
                self.stop(StopWhy::Wipe);
                self.actions.push_back(Action::Wipe);
            }
            _ => {}
        }
    }

    /// Starts rqlited with `-join targets`, as a voter if `voter` and this node is not
    /// read-only.
    fn join(&mut self, targets: Vec<String>, voter: bool, now: Duration) {
        let voter = voter && !self.config.read_only;
        self.start(targets, None, Vec::new(), None, voter, now);
    }

    /// Starts rqlited on its data, with `-join` when `join` is not empty; when `peers` is not
    /// empty (every voter moved), with `raft/peers.json` written first.
    fn resume(&mut self, join: Vec<String>, peers: Vec<(NodeId, String)>, now: Duration) {
        // The role the data had: a non-voter joining at a new address as a voter would be
        // made one by rqlited, beside the cap.
        let voter = !self.stored.non_voter && !self.config.read_only;
        self.start(join, None, peers, None, voter, now);
    }

    /// A running member leaderless [`REJOIN_AFTER`] is restarted with `-join`, never within
    /// [`REJOIN_NOT_BEFORE`] of its start (its own join retries may still succeed); one
    /// leaderless and no longer in the leader's configuration, at once once its join is over.
    fn should_rejoin(&self, now: Duration) -> bool {
        let (Some(child), Some(since)) = (self.child, self.leaderless_since) else {
            return false;
        };
        let removed = self.removed_at.is_some_and(|at| at >= since);
        (child.past_join_retries(now) && now.saturating_sub(since) >= REJOIN_AFTER)
            || (child.join_over(now) && removed)
    }

    /// Leaderless while another node leads its cluster, its join over (past
    /// [`REJOIN_NOT_BEFORE`], or it has served as a member since), and not asked within
    /// [`ASK_CONFIGURATION_EVERY`]: time to ask the leader whether this node is still a member.
    /// Removed (a voter the reaper took while it was paused or cut off, or just as it came
    /// back), its rqlited can never hear the leader again; waiting out `REJOIN_AFTER` cost 10 s,
    /// and `REJOIN_NOT_BEFORE` after a rejoin the reaper's removal overtook, 15 s.
    ///
    /// Not before it has been leaderless for `ASK_CONFIGURATION_EVERY` either: an election takes
    /// 1–3 s, and asking a leader that just died (gossip still shows it) held up the polls that
    /// see the new one (a chaos run's kill-leader recovery grew from 2.3 s to 7.8 s).
    ///
    /// Woken from a freeze ([`THAWED_FOR`]) and not asked since, it asks at its first
    /// leaderless poll: stopped for longer than `reap_after`, it was removed, and it can only
    /// learn so by asking; the wait for an election is no reason here, since the cluster had the
    /// whole freeze to hold one.
    fn may_ask_configuration(&self, now: Duration) -> bool {
        let thawed = self.thawed(now)
            && self
                .configuration_asked
                .zip(self.thawed_at)
                .is_none_or(|(asked, thawed)| asked < thawed);
        self.leaderless_since
            .is_some_and(|since| thawed || now.saturating_sub(since) >= ASK_CONFIGURATION_EVERY)
            && self.removed_at.is_none()
            && self.child.is_some_and(|child| child.join_over(now))
            && (thawed
                || self
                    .configuration_asked
                    .is_none_or(|at| now.saturating_sub(at) >= ASK_CONFIGURATION_EVERY))
    }

    /// Within [`THAWED_FOR`] of a wake-up [`FROZEN_AFTER`] late.
    fn thawed(&self, now: Duration) -> bool {
        self.thawed_at
            .is_some_and(|at| now.saturating_sub(at) < THAWED_FOR)
    }

    /// The answer to [`Action::AskConfiguration`]: the ids the leader's configuration holds
    /// (`None`: no answer). Without this node's id, it was removed: it rejoins now.
    pub fn handle_configuration(&mut self, members: Option<Vec<NodeId>>, now: Duration) {
        if self.leaderless_since.is_some()
            && members.is_some_and(|ids| !ids.contains(&self.config.node_id))
        {
            self.removed_at = Some(now);
            self.act(now);
        }
    }

    fn start(
        &mut self,
        join: Vec<String>,
        bootstrap_expect: Option<u16>,
        peers_json: Vec<(NodeId, String)>,
        forming_for: Option<(ClusterId, u16)>,
        voter: bool,
        now: Duration,
    ) {
        if now < self.next_start || self.starting.is_some() {
            return;
        }
        self.starting = Some(Child {
            served: false,
            answered: false,
            started_at: now,
            forming_for,
            voter,
        });
        self.actions.push_back(Action::Start {
            join,
            bootstrap_expect,
            peers_json,
            voter,
        });
    }

    fn stop(&mut self, why: StopWhy) {
        self.role_change = None;
        if self.child.take().is_none() {
            return;
        }
        self.actions.push_back(Action::Stop(why));
        self.set_ready(false);
        self.set_db(self.stored.db_state(self.raft_db));
    }

    /// The next start waits out the backoff, which doubles up to [`BACKOFF_MAX`] — and starts
    /// over once an rqlited ran for [`STABLE_RUN`] (`ran_for`: how long the one that exited ran;
    /// `None` for a start that failed).
    fn schedule_restart(&mut self, now: Duration, ran_for: Option<Duration>) {
        if ran_for.is_some_and(|ran| ran >= STABLE_RUN) {
            self.backoff = BACKOFF_MIN;
        }
        self.next_start = now + self.backoff;
        self.restart_at = Some(self.next_start);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn set_db(&mut self, db: DbState) {
        if self.db != db {
            self.db = db.clone();
            self.report(Report::Db(db));
        }
    }

    fn set_ready(&mut self, ready: bool) {
        if self.ready != ready {
            self.ready = ready;
            self.report(Report::Ready(ready));
        }
    }

    fn persist(&mut self) {
        self.actions.push_back(Action::Persist(self.stored.clone()));
    }

    fn report(&mut self, report: Report) {
        self.actions.push_back(Action::Report(report));
    }
}

#[cfg(test)]
mod tests;
