//! Each host's rqlited under the daemon's supervisor: the directive the node's decision gives,
//! the supervisor's reports carried out on the node and the rqlite model, the model's delayed
//! effects, the host's timeouts, and the Raft model's election ticks.

use rq4d_protocol::supervisor::{Directive, Membership};

use super::describe::describe_db;
use super::record::Fact;
use super::{Ev, World};
use crate::rqlite::{Change, Ctx, Effect, Reconfiguration};
use crate::supervisor::{Report, SupCtx, Supervisor};

impl World {
    /// Drains a node's outputs, and lets the supervisor act on a changed directive or
    /// membership, until all are quiet (the daemon's `flush`, and its directive and membership
    /// watches); then arms the host's next wake-up.
    pub(super) fn settle(&mut self, host: usize) {
        self.settle_outputs(host);
        self.arm(host);
    }

    /// Schedules the host's wake-up for the earliest timeout of its node and supervisor,
    /// unless one is armed for that time already.
    fn arm(&mut self, host: usize) {
        let h = &self.hosts[host];
        let Some(node) = h.node.as_ref() else {
            return;
        };
        let supervisor =
            (self.config.rqlite && h.sup.acted.is_some()).then(|| h.sup.poll_timeout());
        let next = node.poll_timeout().into_iter().chain(supervisor).min();
        if next != h.wake_at
            && let Some(at) = next
        {
            let life = h.life;
            self.hosts[host].wake_at = next;
            self.queue.push(at.max(self.now), Ev::Wake { host, life });
        }
    }

    fn settle_outputs(&mut self, host: usize) {
        loop {
            self.drain(host);
            if !self.config.rqlite {
                return;
            }
            let Some(node) = self.hosts[host].node.as_ref() else {
                return;
            };
            let directive = Directive::of(node);
            let reports = if self.hosts[host].sup.acted.as_ref() != Some(&directive) {
                self.hosts[host].sup.acted = Some(directive.clone());
                self.with_supervisor(host, |sup, s| sup.act(&directive, s))
            } else if *self.hosts[host].sup.seen() != Membership::of(node) {
                // The daemon's membership watch: an address newly claimed makes a leader poll.
                self.with_supervisor(host, |sup, s| sup.membership_changed(s))
            } else {
                return;
            };
            if !self.apply_reports(host, reports) {
                return;
            }
        }
    }

    fn with_supervisor<T>(
        &mut self,
        host: usize,
        f: impl FnOnce(&mut Supervisor, &mut SupCtx) -> T,
    ) -> T {
        let Self {
            hosts,
            rqlite,
            net,
            addresses,
            rng,
            now,
            ..
        } = self;
        let h = &mut hosts[host];
        let membership = h.node.as_ref().map(Membership::of).unwrap_or_default();
        let mut s = SupCtx {
            host,
            rqlite,
            ctx: Ctx {
                net,
                addresses,
                now: *now,
            },
            rng,
            membership,
        };
        f(&mut h.sup, &mut s)
    }

    /// Carries out supervisor reports; true when the node's state changed (so it may decide
    /// again).
    fn apply_reports(&mut self, host: usize, reports: Vec<Report>) -> bool {
        let mut changed = false;
        for report in reports {
            match report {
                Report::Db(db) => {
                    self.note(Some(host), || {
                        format!("rqlited state: {}", describe_db(&db))
                    });
                    let now = self.now;
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.set_db(db, now);
                        changed = true;
                    }
                }
                Report::Effects(effects) => {
                    for effect in effects {
                        self.schedule_effect(effect);
                    }
                }
                Report::Started {
                    join,
                    expect,
                    voter,
                } => self.note(Some(host), || {
                    let role = if voter { "" } else { " -raft-non-voter" };
                    if expect > 0 {
                        format!(
                            "starts rqlited{role} -bootstrap-expect {expect} -join {}",
                            join.join(",")
                        )
                    } else if join.is_empty() {
                        format!("starts rqlited{role} without -join")
                    } else {
                        format!("starts rqlited{role} -join {}", join.join(","))
                    }
                }),
                Report::Rejoin => self.note(Some(host), || {
                    "rqlited leaderless too long: restarting it".into()
                }),
                Report::Wiped => {
                    self.note(Some(host), || "wipes its data (volatile mode)".into());
                    let now = self.now;
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.wiped(now);
                        changed = true;
                    }
                    self.judge(&Fact::Wiped { host });
                }
                Report::Removed(id) => {
                    self.counters.removals += 1;
                    self.note(Some(host), || format!("leader removes member {id}"));
                }
                Report::RoleChanged(voter) => {
                    self.counters.role_changes += 1;
                    self.hosts[host].promoting = voter;
                    self.note(Some(host), || {
                        let role = if voter { "a voter" } else { "a non-voter" };
                        format!("left the configuration; rejoins as {role}")
                    });
                }
                Report::Reconfigured(change) => self.reconfigured(host, &change),
                Report::Voters(voters) => {
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.set_stored_voters(voters);
                        changed = true;
                    }
                }
                Report::PeersJson(peers) => self.note(Some(host), || {
                    let list: Vec<String> =
                        peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
                    format!("writes raft/peers.json: {}", list.join(", "))
                }),
            }
        }
        changed
    }

    /// Notes a change of a configuration that `host`'s rq4d asked for, and hands it to the
    /// judge at once.
    fn reconfigured(&mut self, host: usize, change: &Reconfiguration) {
        self.note(Some(host), || {
            format!(
                "Raft cluster #{}: {} {:?} (voters reached {}/{} → {}/{})",
                change.cluster,
                change.subject,
                change.change,
                change.before.reached,
                change.before.voters,
                change.after.reached,
                change.after.voters,
            )
        });
        let subject = self.host_by_id(&change.subject);
        if let (Change::Joined { voter: true }, Some(h)) = (change.change, subject)
            && std::mem::take(&mut self.hosts[h].promoting)
            && self
                .config
                .voter_cap
                .is_some_and(|cap| change.after.voters > usize::from(cap))
        {
            self.counters.promotions_over_cap += 1;
        }
        self.judge(&Fact::Reconfigured { host, change });
    }

    fn schedule_effect(&mut self, effect: Effect) {
        match effect {
            Effect::JoinAttempt { after, .. }
            | Effect::FormAttempt { after, .. }
            | Effect::Exit { after, .. } => {
                self.queue.push(self.now + after, Ev::Rqlite(effect));
            }
            Effect::Bootstrapped { host, cluster } => {
                self.note(Some(host), || {
                    format!("rqlited bootstraps new Raft cluster #{cluster}")
                });
                self.record_bootstrap(host);
                self.judge(&Fact::ClusterFounded { cluster });
            }
            Effect::Reconfigured(change) => {
                // The joiner's (or the recovering node's) rq4d asked for it.
                let host = self
                    .host_by_id(&change.subject)
                    .unwrap_or(self.rqlite.clusters[change.cluster].founder);
                self.reconfigured(host, &change);
            }
            Effect::Joined {
                host,
                cluster,
                had_data_of,
            } => {
                self.note(Some(host), || {
                    format!("rqlited joined Raft cluster #{cluster}")
                });
                self.judge(&Fact::Joined {
                    host,
                    cluster,
                    had_data_of,
                });
            }
        }
    }

    pub(super) fn rqlite_effect(&mut self, effect: Effect) {
        match effect {
            Effect::JoinAttempt { host, pid, .. } | Effect::FormAttempt { host, pid, .. } => {
                let ctx = Ctx {
                    net: &self.net,
                    addresses: &self.addresses,
                    now: self.now,
                };
                let effects = if matches!(effect, Effect::FormAttempt { .. }) {
                    self.rqlite.form_attempt(host, pid, &mut self.rng, &ctx)
                } else {
                    self.rqlite.join_attempt(host, pid, &ctx)
                };
                for effect in effects {
                    self.schedule_effect(effect);
                }
            }
            Effect::Exit { host, pid, why, .. } => {
                if self.rqlite.exit(host, pid) {
                    self.note(Some(host), || format!("rqlited exits: {why}"));
                    if self.hosts[host].node.is_some() {
                        let reports = self.with_supervisor(host, |sup, s| sup.exited(s));
                        self.apply_reports(host, reports);
                        self.settle(host);
                    }
                }
            }
            other => self.schedule_effect(other),
        }
    }

    /// The host's timeouts: the node's, its outputs carried out, then (once it acted) the
    /// supervisor's — as the daemon's two tasks do: what the node decided at its timeout is
    /// seen before anything the supervisor then reports changes the node (simulator finding: a
    /// decision judged against a card the next report had already changed).
    pub(super) fn wake(&mut self, host: usize) {
        let now = self.now;
        if let Some(node) = self.hosts[host].node.as_mut() {
            node.handle_timeout(now);
        }
        self.settle(host);
        if self.config.rqlite && self.hosts[host].sup.acted.is_some() {
            let reports = self.with_supervisor(host, |sup, s| sup.timeout(s));
            self.apply_reports(host, reports);
        }
        self.settle(host);
    }

    pub(super) fn raft_tick(&mut self) {
        let changes = {
            let ctx = Ctx {
                net: &self.net,
                addresses: &self.addresses,
                now: self.now,
            };
            self.rqlite.raft_tick(&mut self.rng, &ctx)
        };
        for (cluster, leader) in changes {
            match leader {
                Some(h) => {
                    let term = self.rqlite.clusters[cluster].term;
                    self.note(Some(h), || {
                        format!("becomes leader of Raft cluster #{cluster} (term {term})")
                    });
                }
                None => self.note(None, || format!("Raft cluster #{cluster} lost its leader")),
            }
        }
    }
}
