//! The gossip loop: one task that owns the protocol node and feeds it everything — datagrams,
//! timers, discovery results, rqlited reports, API questions and signals — through one `select!`.
//!
//! Shutdown has one path (SIGTERM or SIGINT): leave the gossip so peers see this node down at
//! once, stop rqlited (SIGTERM, SIGKILL after a grace period that fits Docker's 10 s), exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rq4d_protocol::seal::SALT_LEN;
use rq4d_protocol::{Decision, Event, Keyring, Node, NodeConfig, NodeIdentity, Output, Refusal};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::api::{self, Health, MemberDoc, MembersDoc, Request};
use crate::config::Config;
use crate::discovery::{self, Sources};
use crate::metrics::{self, Metrics};
use crate::naming;
use crate::orphan;
use crate::preflight::{self, Refused};
use crate::process::{self, Reaper};
use crate::state::DataDir;
use crate::supervisor::{Supervisor, SupervisorConfig};
use crate::tasks::Tasks;
use rq4d_protocol::supervisor::{Directive, Membership, Report};

/// Runs rq4d until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Before the port checks: a leftover rqlited of this directory holds its ports.
    orphan::stop_leftover(&config.data_dir).await;
    let checked = preflight::check(&config)?;
    process::become_subreaper();
    let mut tasks = Tasks::default();
    let processes = Reaper::start(&mut tasks)?;
    let mut data = DataDir::open(&config.data_dir)
        .map_err(|e| Refused::new(&config, "--data-dir", format!("{e:#}")))?;
    let socket =
        UdpSocket::from_std(checked.gossip).context("cannot register the gossip socket")?;
    if config.broadcast {
        socket
            .set_broadcast(true)
            .context("cannot enable UDP broadcast")?;
    }
    let bind = socket.local_addr()?;
    let sources = Sources {
        dns: config.discover.clone(),
        seeds: config.seeds.clone(),
        broadcast: config.broadcast,
        gossip_port: bind.port(),
    };
    let advertise = match config.advertise {
        Some(ip) => ip,
        None => discovery::choose_advertise(bind.ip(), &sources.resolve().await),
    };
    let gossip_addr = SocketAddr::new(advertise, bind.port());
    // The id, once the address is known: where Docker made the hostname up, the default is
    // the container's name, which its DNS gives for that address.
    let default_id = if data.needs_default_id(config.node_id.as_ref()) {
        Some(
            naming::default_node_id(advertise)
                .await
                .map_err(|e| Refused::new(&config, "--node-id", format!("{e:#}")))?,
        )
    } else {
        None
    };
    let node_id = data
        .resolve_node_id(config.node_id.as_ref(), default_id)
        .map_err(|e| Refused::new(&config, "--node-id", format!("{e:#}")))?;
    let listen_ip = config.gossip_bind.ip();
    let supervisor_config = SupervisorConfig {
        rqlited: checked.rqlited,
        node_id: node_id.clone(),
        http_bind: SocketAddr::new(listen_ip, config.http_port).to_string(),
        http_adv: SocketAddr::new(advertise, config.http_port).to_string(),
        raft_bind: SocketAddr::new(listen_ip, config.raft_port).to_string(),
        raft_adv: SocketAddr::new(advertise, config.raft_port).to_string(),
        extra_args: config.rqlited_args.clone(),
        access: config.access.clone(),
        join_as: config.join_as.clone(),
        reap_after: config.reap_after,
        volatile: config.volatile,
        read_only: config.read_only,
    };

    let epoch = Instant::now();
    let wall_clock = wall_clock_at(epoch);
    let generation = u64::try_from(wall_clock.as_millis()).unwrap_or(u64::MAX);
    let mut node_config = NodeConfig::new(
        config.cluster_name.clone(),
        NodeIdentity {
            node_id: node_id.clone(),
            addr: gossip_addr,
            generation,
        },
        supervisor_config.raft_adv.clone(),
        supervisor_config.http_adv.clone(),
        config.expect,
    );
    node_config.restore(data.stored(), data.raft_db_exists());
    node_config.settle = config.settle;
    node_config.volatile = config.volatile;
    node_config.read_only = config.read_only;
    node_config.voter_cap = config.voters;
    node_config.keyring = config.keyring.clone();
    node_config.wall_clock = wall_clock;
    // Never from the time or the pid: every container is pid 1, and containers started in the
    // same millisecond would share a nonce salt under one key.
    let mut entropy = [0u8; SALT_LEN + 8];
    getrandom::fill(&mut entropy).context("cannot read randomness from the operating system")?;
    node_config.nonce_salt.copy_from_slice(&entropy[..SALT_LEN]);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&entropy[SALT_LEN..]);
    node_config.rng_seed = u64::from_le_bytes(seed);
    let node = Node::new(node_config, Duration::ZERO);
    tracing::info!(
        node = %node_id, gossip = %gossip_addr, raft = %supervisor_config.raft_adv,
        http = %supervisor_config.http_adv, expect = config.expect,
        data = %config.data_dir.display(), "rq4d starting"
    );
    match &config.keyring {
        Some(keyring) => tracing::info!(
            keys = %key_list(keyring), "gossip is sealed with the cluster keyring (primary first)"
        ),
        None => tracing::warn!("{UNAUTHENTICATED}"),
    }

    let metrics = Arc::new(Metrics::new());
    metrics.show_from_the_start(&DROP_REASONS);
    let (directive_tx, directive_rx) = watch::channel(Directive::of(&node));
    let (membership_tx, membership_rx) = watch::channel(Membership::default());
    let (report_tx, report_rx) = mpsc::channel(64);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let supervisor = Supervisor::new(
        epoch,
        supervisor_config,
        data,
        directive_rx,
        membership_rx,
        report_tx,
        processes,
    );
    let mut supervisor = tokio::spawn(supervisor.run(shutdown_rx));

    let (api_tx, api_rx) = mpsc::channel(16);
    api::serve(&mut tasks, config.api_addr, api_tx, metrics.clone()).await?;
    let (found_tx, found_rx) = mpsc::channel(4);
    discovery::spawn(&mut tasks, sources, gossip_addr, found_tx);

    let mut agent = Agent {
        node,
        socket,
        epoch,
        metrics,
        directive: directive_tx,
        membership: membership_tx,
        ready: false,
        last_failure: None,
        expect: config.expect,
        keyring_file: config.keyring_file.clone(),
        drop_log: DropLog::default(),
        claim_log: None,
        exit_on_conflict: config.exit_on_conflict,
        conflict_since: None,
        last_kind: None,
    };
    agent.count_members();
    agent.flush().await;
    let outcome = agent.run(report_rx, api_rx, found_rx).await;

    // rqlited first (the reaper must still run to see it exit), then everything else.
    let _ = shutdown_tx.send(true);
    let exit = match tokio::time::timeout(Duration::from_secs(9), &mut supervisor).await {
        Ok(Ok(exit)) => exit,
        Ok(Err(error)) => {
            tracing::error!(%error, "the supervisor task failed");
            None
        }
        Err(_) => {
            tracing::warn!("rqlited did not stop in time");
            supervisor.abort();
            let _ = supervisor.await;
            None
        }
    };
    tasks.stop(Duration::from_secs(2)).await;
    match exit {
        Some(exit) => tracing::info!(%exit, "rq4d stopped"),
        None => tracing::info!("rq4d stopped"),
    }
    outcome
}

struct Agent {
    node: Node,
    socket: UdpSocket,
    epoch: Instant,
    metrics: Arc<Metrics>,
    directive: watch::Sender<Directive>,
    membership: watch::Sender<Membership>,
    ready: bool,
    last_failure: Option<String>,
    expect: u16,
    /// `--gossip-keyring`, re-read on SIGHUP.
    keyring_file: Option<std::path::PathBuf>,
    drop_log: DropLog,
    /// When a refused claim was last logged.
    claim_log: Option<Instant>,
    /// `--exit-on-conflict`.
    exit_on_conflict: Option<Duration>,
    /// Since when this node refuses to start because another process uses its id.
    conflict_since: Option<Instant>,
    /// The kind of the last decision counted in `rq4d_decisions_total`.
    last_kind: Option<&'static str>,
}

/// rq4d exited because another live process kept using its node id (`--exit-on-conflict`).
#[derive(Debug, thiserror::Error)]
#[error(
    "node id {id} has been in use by the live rq4d at {addr} for {after:?}; exiting (--exit-on-conflict)"
)]
pub struct IdInUse {
    id: rq4d_protocol::NodeId,
    addr: SocketAddr,
    after: Duration,
}

/// What `/health` and the start log say when there is no keyring.
const UNAUTHENTICATED: &str = "gossip is not authenticated: anyone who can reach the gossip port \
    can join, forge or read the membership (give every node --gossip-key or --gossip-keyring; \
    `rq4d keygen` makes a key)";

/// The wall clock at `epoch`: what the node stamps sealed datagrams and bounds generations with.
fn wall_clock_at(epoch: Instant) -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(epoch.elapsed())
}

fn key_list(keyring: &Keyring) -> String {
    keyring
        .ids()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Logs dropped datagrams of the kinds an operator should hear about (sealed wrong, stale,
/// replayed, impossible claims) at most once a minute per source IP; the rest are counted only.
#[derive(Default)]
struct DropLog {
    last: std::collections::BTreeMap<std::net::IpAddr, Instant>,
}

impl DropLog {
    const EVERY: Duration = Duration::from_secs(60);
    const SOURCES: usize = 256;

    fn should_log(&mut self, from: std::net::IpAddr) -> bool {
        let now = Instant::now();
        if self
            .last
            .get(&from)
            .is_some_and(|at| now.duration_since(*at) < Self::EVERY)
        {
            return false;
        }
        if self.last.len() >= Self::SOURCES {
            self.last
                .retain(|_, at| now.duration_since(*at) < Self::EVERY);
            if self.last.len() >= Self::SOURCES {
                return false;
            }
        }
        self.last.insert(from, now);
        true
    }
}

impl Agent {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn run(
        &mut self,
        mut reports: mpsc::Receiver<Report>,
        mut api: mpsc::Receiver<Request>,
        mut found: mpsc::Receiver<Vec<SocketAddr>>,
    ) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        // Larger than any valid datagram, so oversized ones are seen whole and counted.
        let mut buf = vec![0u8; 65_536];
        let mut outcome = Ok(());
        loop {
            // The node keeps its timers; an hour stands for "none" (it always has some).
            let deadline = self.node.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |at| self.epoch + at,
            );
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.datagram(from, &buf[..len]),
                    Err(error) => tracing::debug!(%error, "gossip socket receive failed"),
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    // A stepped system clock must not stamp datagrams out of the replay window.
                    self.node.set_wall_clock(wall_clock_at(self.epoch));
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
                Some(addrs) = found.recv() => self.discovered(addrs),
                Some(report) = reports.recv() => self.report(report),
                Some(request) = api.recv() => self.answer(request),
                _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = sighup.recv() => self.reload_keyring(),
            }
            self.flush().await;
            if let Err(in_use) = self.check_id_in_use() {
                outcome = Err(in_use.into());
                break;
            }
        }
        let now = self.now();
        self.node.leave(now);
        self.flush().await;
        outcome
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.metrics.datagrams_in.inc();
        let now = self.now();
        if let Err(refusal) = self.node.handle_datagram(from, bytes, now) {
            let reason = refusal_label(&refusal);
            self.metrics.dropped(reason);
            if matches!(reason, "auth" | "stale" | "replay" | "claim")
                && self.drop_log.should_log(from.ip())
            {
                tracing::warn!(
                    %from, %refusal,
                    "datagram dropped (more from this address are only counted, in rq4d_datagrams_dropped_total, for a minute)"
                );
            } else {
                tracing::debug!(%from, %refusal, "datagram dropped");
            }
        }
    }

    /// `--exit-on-conflict`: gives up once another process has held this node's id that long.
    fn check_id_in_use(&mut self) -> Result<(), IdInUse> {
        let Some(limit) = self.exit_on_conflict else {
            return Ok(());
        };
        let refusing = matches!(self.node.decision(), Decision::Conflict { .. });
        let Some((addr, _)) = self.node.duplicate(self.now()).filter(|_| refusing) else {
            self.conflict_since = None;
            return Ok(());
        };
        let since = *self.conflict_since.get_or_insert_with(Instant::now);
        if since.elapsed() < limit {
            return Ok(());
        }
        Err(IdInUse {
            id: self.node.card().node_id.clone(),
            addr,
            after: limit,
        })
    }

    /// SIGHUP: re-reads `--gossip-keyring`. A bad file is refused and the ring in use kept.
    fn reload_keyring(&mut self) {
        let Some(file) = self.keyring_file.clone() else {
            tracing::warn!("SIGHUP: no --gossip-keyring file to re-read; nothing changed");
            return;
        };
        match crate::config::read_keyring(&file) {
            Ok(keyring) => {
                tracing::info!(keys = %key_list(&keyring), "SIGHUP: keyring re-read (primary first)");
                let now = self.now();
                self.node.set_keyring(Some(keyring), now);
            }
            Err(error) => tracing::error!("SIGHUP: {error}; keeping the keyring in use"),
        }
    }

    /// Says hello to discovered addresses that are not live members already.
    fn discovered(&mut self, addrs: Vec<SocketAddr>) {
        let now = self.now();
        for addr in addrs {
            let known = self
                .node
                .members()
                .values()
                .any(|m| m.alive && m.identity.addr == addr);
            if !known {
                self.node.discover(addr, now);
            }
        }
    }

    fn report(&mut self, report: Report) {
        let now = self.now();
        match report {
            Report::Db(db) => self.node.set_db(db, now),
            Report::Wiped => self.node.wiped(now),
            Report::Ready(ready) => {
                self.ready = ready;
                self.metrics.rqlited_ready.set(i64::from(ready));
                if ready {
                    self.last_failure = None;
                    tracing::info!("rqlited is ready");
                }
            }
            Report::Exited(how) => {
                self.metrics.rqlited_restarts.inc();
                self.last_failure = Some(format!("rqlited exited ({how})"));
            }
            Report::Removed(id) => {
                self.metrics.removals.inc();
                tracing::info!(node = %id, "removed from the Raft configuration");
            }
            Report::RoleChanged { voter } => {
                let role = if voter { "voter" } else { "non_voter" };
                self.metrics
                    .role_changes
                    .get_or_create(&metrics::Role { role: role.into() })
                    .inc();
                tracing::info!(role, "changing Raft role (--voters)");
            }
            Report::StartFailed(text) => self.last_failure = Some(text),
            Report::Voters(voters) => self.node.set_stored_voters(voters),
            Report::Thawed { late } => tracing::warn!(
                late_ms = late.as_millis(),
                "the supervisor woke long after a poll was due: this process (and rqlited with \
                 it, most likely) was stopped or starved; checking sooner whether the cluster \
                 still holds this node"
            ),
        }
    }

    fn answer(&mut self, request: Request) {
        match request {
            Request::Health(reply) => {
                let alive = self.node.members().values().filter(|m| m.alive).count();
                let gossip = alive > 0 || self.expect <= 1;
                let conflict = matches!(self.node.decision(), Decision::Conflict { .. });
                // rqlited's /readyz can say 200 on a node whose join is being refused; a member
                // is healthy only as a voter that sees a leader, or a non-voter by design that
                // does (`Running::healthy`).
                let member = self
                    .node
                    .card()
                    .db
                    .running()
                    .is_some_and(rq4d_protocol::Running::healthy);
                let mut decision = self.node.decision().describe();
                if let Some(failure) = &self.last_failure {
                    decision = format!("{decision}; last rqlited failure: {failure}");
                }
                let authenticated = self.node.keyring().is_some();
                let mut warnings = Vec::new();
                if !authenticated {
                    warnings.push(UNAUTHENTICATED.to_string());
                }
                if let Some((addr, _)) = self.node.duplicate(self.now()).filter(|_| !conflict) {
                    warnings.push(format!(
                        "another rq4d at {addr} uses this node's id; it refuses to start rqlited, but give it its own --node-id"
                    ));
                }
                let _ = reply.send(Health {
                    healthy: gossip && self.ready && member && !conflict,
                    live: true,
                    gossip,
                    gossip_authenticated: authenticated,
                    rqlited_ready: self.ready,
                    decision,
                    warnings,
                });
            }
            Request::Gauges(reply) => {
                self.refresh_gauges();
                let _ = reply.send(());
            }
            Request::Members(reply) => {
                let me = self.node.card();
                let mut members = vec![MemberDoc {
                    node_id: me.node_id.to_string(),
                    state: "self".into(),
                    gossip_addr: me.gossip_addr.to_string(),
                    sends_with: self.node.keyring().map(|ring| ring.primary().id()),
                    card: Some(me.clone()),
                }];
                for (id, member) in self.node.members() {
                    members.push(MemberDoc {
                        node_id: id.to_string(),
                        state: if member.alive { "alive" } else { "down" }.into(),
                        gossip_addr: member.identity.addr.to_string(),
                        sends_with: self.node.sender_key(&member.identity.addr),
                        card: self.node.cards().get(id).cloned(),
                    });
                }
                let _ = reply.send(MembersDoc {
                    node_id: me.node_id.to_string(),
                    decision: self.node.decision().describe(),
                    members,
                });
            }
        }
    }

    /// Carries out what the node produced: sends and events.
    async fn flush(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, datagram } => match self.socket.send_to(&datagram, to).await {
                    Ok(_) => {
                        self.metrics.datagrams_out.inc();
                    }
                    Err(error) => tracing::debug!(%to, %error, "send failed"),
                },
                Output::Event(event) => self.event(event),
            }
        }
        self.publish_membership();
        let directive = Directive::of(&self.node);
        self.directive.send_if_modified(|current| {
            let changed = *current != directive;
            *current = directive;
            changed
        });
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::MemberUp(id) => {
                tracing::info!(node = %id.node_id, addr = %id.addr, "member up");
                self.count_members();
            }
            Event::MemberDown(id) => {
                tracing::warn!(node = %id.node_id, addr = %id.addr, "member down");
                self.count_members();
            }
            Event::Decided(decision) => {
                // Counted when the kind changes: a waiting node whose reason moves on ("2 of 3
                // members are up", "3 of 3 …") has decided nothing new.
                let kind = decision.kind();
                if self.last_kind != Some(kind) {
                    self.last_kind = Some(kind);
                    self.metrics
                        .decisions
                        .get_or_create(&metrics::Kind { kind: kind.into() })
                        .inc();
                }
                match &decision {
                    Decision::Conflict { .. } => tracing::error!("{}", decision.describe()),
                    _ => tracing::info!("{}", decision.describe()),
                }
            }
            Event::DuplicateNodeId { addr } => {
                let id = &self.node.card().node_id;
                if self.node.card().db.running().is_some() {
                    tracing::error!(
                        %addr,
                        "another rq4d at {addr} uses this node's id ({id}); this node keeps running, the other must not start rqlited — give it its own --node-id"
                    );
                } else {
                    tracing::error!(
                        %addr,
                        "node id {id} is in use by a live rq4d at {addr}; rqlited will not be started here"
                    );
                }
            }
            Event::ClaimRefused(error) => {
                self.metrics.claims_refused.inc();
                if self
                    .claim_log
                    .is_none_or(|at| at.elapsed() >= DropLog::EVERY)
                {
                    self.claim_log = Some(Instant::now());
                    tracing::warn!(
                        "{error} (further refused claims are only counted, in rq4d_claims_refused_total, for a minute)"
                    );
                }
            }
            Event::IdentityOutbid { generation } => tracing::warn!(
                generation,
                "another process uses this node's id; took a later gossip generation so the members keep this node"
            ),
            Event::Idle => tracing::info!("no live peers; announcing to discovery results"),
        }
    }

    /// The gauges that describe the cluster as this node sees it: whether it leads, and the
    /// live voters and non-voters of its cluster (from the cards).
    fn refresh_gauges(&self) {
        let me = self.node.card();
        let leads = me.as_leader().is_some();
        self.metrics.leader.set(i64::from(leads));
        let mut counts = [0i64; 2];
        let live = self
            .node
            .members()
            .iter()
            .filter(|(_, m)| m.alive)
            .filter_map(|(id, _)| self.node.live_card(id));
        for card in std::iter::once(me).chain(live) {
            if me.cluster_id.is_some()
                && card.cluster_id == me.cluster_id
                && let Some(running) = card.db.running()
                && running.healthy()
            {
                counts[usize::from(!running.voter)] += 1;
            }
        }
        for (role, count) in [("voter", counts[0]), ("non_voter", counts[1])] {
            self.metrics
                .raft_members
                .get_or_create(&metrics::Role { role: role.into() })
                .set(count);
        }
    }

    fn count_members(&self) {
        let alive = self.node.members().values().filter(|m| m.alive).count();
        let down = self.node.members().len() - alive;
        for (state, count) in [("alive", alive + 1), ("down", down)] {
            self.metrics
                .members
                .get_or_create(&metrics::State {
                    state: state.into(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Publishes the membership the reaper needs when it changed: who is down since when, and
    /// which Raft addresses live members advertise (their cards arrive after their `MemberUp`).
    fn publish_membership(&self) {
        let next = Membership::of(&self.node);
        self.membership.send_if_modified(|current| {
            let changed = *current != next;
            *current = next;
            changed
        });
    }
}

/// Every label [`refusal_label`] gives, so that `rq4d_datagrams_dropped_total` shows each reason
/// at 0 from the start (a dashboard's rate of a series that appears with its first drop misses
/// that drop).
const DROP_REASONS: [&str; 16] = [
    "too_short",
    "too_large",
    "bad_magic",
    "version",
    "foreign_cluster",
    "stale",
    "replay",
    "auth",
    "unknown_kind",
    "malformed",
    "swim",
    "from_self",
    "duplicate_node_id",
    "claim",
    "not_a_member",
    "renew_cooldown",
];

fn refusal_label(refusal: &Refusal) -> &'static str {
    use rq4d_protocol::seal::SealError;
    use rq4d_protocol::wire::WireError;
    match refusal {
        Refusal::Wire(WireError::TooShort(_)) => "too_short",
        Refusal::Wire(WireError::TooLarge(_)) => "too_large",
        Refusal::Wire(WireError::BadMagic) => "bad_magic",
        Refusal::Wire(WireError::UnsupportedVersion { .. }) => "version",
        Refusal::Wire(WireError::ForeignCluster { .. }) => "foreign_cluster",
        Refusal::Wire(WireError::Seal(SealError::Stale { .. })) => "stale",
        Refusal::Wire(WireError::Seal(SealError::Replayed)) => "replay",
        Refusal::Wire(WireError::Seal(_)) => "auth",
        Refusal::Wire(WireError::UnknownKind(_)) => "unknown_kind",
        Refusal::Wire(WireError::Malformed(_) | WireError::PayloadTooLarge(_)) => "malformed",
        Refusal::Swim(_) => "swim",
        Refusal::FromMyself => "from_self",
        Refusal::DuplicateNodeId(_) => "duplicate_node_id",
        Refusal::Claim(_) => "claim",
        Refusal::NotAMember(_) => "not_a_member",
        Refusal::Renewing => "renew_cooldown",
    }
}
