//! The world in words: the readable trace (notes, and the noise a quiet trace leaves out), the
//! one-line-per-host summary for failures, and short descriptions of database states and
//! scenario actions.

use rq4d_protocol::DbState;

use super::config::Action;
use super::{Host, World};

impl World {
    /// A line of the readable trace (when it is kept): the time, the host (or the world) and the
    /// text, made only when kept.
    pub(super) fn note(&mut self, host: Option<usize>, text: impl FnOnce() -> String) {
        if self.config.trace {
            let who = host.map_or_else(|| "world".to_string(), |h| self.hosts[h].id.to_string());
            let line = format!("{:>10.3}s {who:<8} {}", self.now.as_secs_f64(), text());
            self.trace.push(line);
        }
    }

    /// A note the quiet trace leaves out.
    pub(super) fn noise(&mut self, host: Option<usize>, text: impl FnOnce() -> String) {
        if !self.config.quiet {
            self.note(host, text);
        }
    }

    /// Notes a scenario action in the trace.
    pub(super) fn note_action(&mut self, action: &Action) {
        if self.config.trace {
            let text = describe_action(action, &self.hosts);
            self.note(None, || format!("scenario: {text}"));
        }
    }

    /// A one-line summary per host, for reports on failure.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (h, host) in self.hosts.iter().enumerate() {
            let disk = &self.rqlite.disks[h];
            let state = match &host.node {
                None if host.gone => "gone".to_string(),
                None => "down".to_string(),
                Some(node) => format!(
                    "up as generation {}, {} live members ({}), card {}, decision: {}",
                    node.identity().generation,
                    node.members().values().filter(|m| m.alive).count(),
                    node.members()
                        .iter()
                        .map(|(id, m)| format!(
                            "{id}@{} {}",
                            m.identity.generation,
                            if m.alive { "up" } else { "down" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    describe_db(&node.card().db),
                    node.decision().describe()
                ),
            };
            out.push_str(&format!(
                "  {} ({}): {state}; disk: cluster {:?} committed {} id {:?}; rqlited {}\n",
                host.id,
                host.ip,
                disk.cluster,
                disk.stored.committed,
                disk.stored.cluster_id(),
                if self.rqlite.member_ok(h) {
                    "member"
                } else if self.rqlite.procs[h].is_some() {
                    "running (not a member)"
                } else {
                    "stopped"
                },
            ));
        }
        for (c, cluster) in self.rqlite.clusters.iter().enumerate() {
            let voters: Vec<String> = cluster.voters.keys().map(|id| id.to_string()).collect();
            out.push_str(&format!(
                "  Raft cluster #{c}: founded by {} at {:.3}s, leader {:?}, voters [{}]\n",
                self.hosts[cluster.founder].id,
                cluster.founded_at.as_secs_f64(),
                cluster.leader.map(|l| self.hosts[l].id.to_string()),
                voters.join(", ")
            ));
        }
        out
    }
}

/// A short description of a database state.
pub(super) fn describe_db(db: &DbState) -> String {
    match db {
        DbState::Empty => "empty".into(),
        DbState::HasData { last_voters } => format!("has data ({last_voters} voters)"),
        DbState::Starting => "starting".into(),
        DbState::Running(r) => format!(
            "running (leader {}, term {}, {} voters{})",
            r.leader.as_ref().map_or("none", |l| l.as_str()),
            r.term,
            r.voters,
            if r.voter { "" } else { ", not a voter" }
        ),
    }
}

fn describe_action(action: &Action, hosts: &[Host]) -> String {
    let name = |h: &usize| hosts.get(*h).map_or("?".to_string(), |h| h.id.to_string());
    let names = |hs: &Vec<usize>| hs.iter().map(name).collect::<Vec<_>>().join(",");
    match action {
        Action::Start { host, new_address } => format!(
            "start {}{}",
            name(host),
            if *new_address {
                " at a new address"
            } else {
                ""
            }
        ),
        Action::Crash { host } => format!("crash {}", name(host)),
        Action::ScaleDown { host } => format!("scale down {}", name(host)),
        Action::Replace { host, replacement } => format!(
            "{} loses its volume; {} replaces it",
            name(host),
            name(replacement)
        ),
        Action::Partition { groups } => format!(
            "partition [{}]",
            groups.iter().map(names).collect::<Vec<_>>().join("] [")
        ),
        Action::CutOneWay { hosts } => format!("{} can no longer send", names(hosts)),
        Action::Heal => "network healed".into(),
        Action::SetLoss(loss) => format!("loss set to {:.0}%", loss * 100.0),
        Action::Forge(forgery) => format!("a stranger sends every live node: {forgery:?}"),
    }
}
