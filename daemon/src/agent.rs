//! The gossip loop: one task that owns the protocol node and feeds it everything — datagrams,
//! timers, discovery results, rqlited reports, API questions and signals — through one `select!`.
//!
//! Shutdown has one path (SIGTERM or SIGINT): leave the gossip so peers see this node down at
//! once, stop rqlited (SIGTERM, SIGKILL after a grace period that fits Docker's 10 s), exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rq4d_protocol::coordinator::Faults;
use rq4d_protocol::{Decision, Event, Node, NodeConfig, NodeIdentity, Output, Refusal};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::api::{self, Health, MemberDoc, MembersDoc, Request};
use crate::config::Config;
use crate::discovery::{self, Sources};
use crate::metrics::{self, Metrics};
use crate::process::{self, Reaper};
use crate::state::DataDir;
use crate::supervisor::{Directive, Membership, Report, Supervisor, SupervisorConfig};
use crate::timers::TimerHeap;

/// Runs rq4d until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    process::become_subreaper();
    let processes = Reaper::start()?;
    let mut data = DataDir::open(&config.data_dir)?;
    let node_id = data.resolve_node_id(config.node_id.as_ref())?;

    let socket = UdpSocket::bind(config.gossip_bind)
        .await
        .with_context(|| format!("--gossip-bind {}: cannot bind", config.gossip_bind))?;
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
    let listen_ip = config.gossip_bind.ip();
    let supervisor_config = SupervisorConfig {
        rqlited: config.rqlited.clone(),
        node_id: node_id.clone(),
        http_bind: SocketAddr::new(listen_ip, config.http_port).to_string(),
        http_adv: SocketAddr::new(advertise, config.http_port).to_string(),
        raft_bind: SocketAddr::new(listen_ip, config.raft_port).to_string(),
        raft_adv: SocketAddr::new(advertise, config.raft_port).to_string(),
        extra_args: config.rqlited_args.clone(),
        reap_after: config.reap_after,
        volatile: config.volatile,
    };

    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let epoch = Instant::now();
    let node = Node::new(
        NodeConfig {
            cluster_name: config.cluster_name.clone(),
            identity: NodeIdentity {
                node_id: node_id.clone(),
                addr: gossip_addr,
                generation,
            },
            raft_addr: supervisor_config.raft_adv.clone(),
            http_addr: supervisor_config.http_adv.clone(),
            expect: config.expect,
            db: data.db_state(),
            cluster_id: data.cluster_id(),
            formation: data.formation(),
            settle: config.settle,
            resume_after: Duration::from_secs(2),
            tick: Duration::from_millis(250),
            card_sync: Duration::from_secs(1),
            push_all_up_to: 32,
            relay_fanout: 2,
            volatile: config.volatile,
            swim: NodeConfig::swim_config(u32::from(config.expect.max(3))),
            rng_seed: generation ^ u64::from(std::process::id()).rotate_left(32),
            faults: Faults::default(),
            stored_voters: data.voters(),
            acked: data.acked(),
        },
        Duration::ZERO,
    );
    tracing::info!(
        node = %node_id, gossip = %gossip_addr, raft = %supervisor_config.raft_adv,
        http = %supervisor_config.http_adv, expect = config.expect,
        data = %config.data_dir.display(), "rq4d starting"
    );

    let metrics = Arc::new(Metrics::new());
    let (directive_tx, directive_rx) = watch::channel(Directive {
        decision: node.decision().clone(),
        cluster_id: node.card().cluster_id,
        formation: node.card().formation,
        acked: node.acked().to_vec(),
        founders: node.founders(),
    });
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
    let supervisor = tokio::spawn(supervisor.run(shutdown_rx));

    let (api_tx, api_rx) = mpsc::channel(16);
    api::serve(config.api_addr, api_tx, metrics.clone()).await?;
    let (found_tx, found_rx) = mpsc::channel(4);
    discovery::spawn(sources, gossip_addr, found_tx);

    let mut agent = Agent {
        node,
        socket,
        epoch,
        timers: TimerHeap::default(),
        metrics,
        directive: directive_tx,
        membership: membership_tx,
        ready: false,
        last_failure: None,
        expect: config.expect,
    };
    agent.flush().await;
    agent.run(report_rx, api_rx, found_rx).await?;

    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(9), supervisor).await {
        Ok(Ok(Some(exit))) => tracing::info!(%exit, "rq4d stopped"),
        Ok(_) => tracing::info!("rq4d stopped"),
        Err(_) => tracing::warn!("rqlited did not stop in time"),
    }
    Ok(())
}

struct Agent {
    node: Node,
    socket: UdpSocket,
    epoch: Instant,
    timers: TimerHeap,
    metrics: Arc<Metrics>,
    directive: watch::Sender<Directive>,
    membership: watch::Sender<Membership>,
    ready: bool,
    last_failure: Option<String>,
    expect: u16,
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
        // Larger than any valid datagram, so oversized ones are seen whole and counted.
        let mut buf = vec![0u8; 65_536];
        loop {
            let deadline = tokio::time::Instant::from_std(self.timers.next_deadline());
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.datagram(from, &buf[..len]),
                    Err(error) => tracing::debug!(%error, "gossip socket receive failed"),
                },
                () = tokio::time::sleep_until(deadline) => {
                    while let Some(timer) = self.timers.pop_due(Instant::now()) {
                        let now = self.now();
                        self.node.handle_timer(timer, now);
                    }
                }
                Some(addrs) = found.recv() => self.discovered(addrs),
                Some(report) = reports.recv() => self.report(report),
                Some(request) = api.recv() => self.answer(request),
                _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            }
            self.flush().await;
        }
        let now = self.now();
        self.node.leave(now);
        self.flush().await;
        Ok(())
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.metrics.datagrams_in.inc();
        let now = self.now();
        if let Err(refusal) = self.node.handle_datagram(from, bytes, now) {
            let reason = refusal_label(&refusal);
            self.metrics.dropped(reason);
            tracing::debug!(%from, %refusal, "datagram dropped");
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
            Report::StartFailed(text) => self.last_failure = Some(text),
            Report::Voters(voters) => self.node.set_stored_voters(voters),
        }
    }

    fn answer(&mut self, request: Request) {
        match request {
            Request::Health(reply) => {
                let alive = self.node.members().values().filter(|m| m.alive).count();
                let gossip = alive > 0 || self.expect <= 1;
                let conflict = matches!(self.node.decision(), Decision::Conflict { .. });
                // rqlited's /readyz can say 200 on a node whose join is being refused; a member
                // is healthy only as a voter that sees a leader.
                let member = self
                    .node
                    .card()
                    .db
                    .running()
                    .is_some_and(|r| r.voter && r.leader.is_some());
                let mut decision = self.node.decision().describe();
                if let Some(failure) = &self.last_failure {
                    decision = format!("{decision}; last rqlited failure: {failure}");
                }
                let _ = reply.send(Health {
                    healthy: gossip && self.ready && member && !conflict,
                    gossip,
                    rqlited_ready: self.ready,
                    decision,
                });
            }
            Request::Members(reply) => {
                let me = self.node.card();
                let mut members = vec![MemberDoc {
                    node_id: me.node_id.to_string(),
                    state: "self".into(),
                    gossip_addr: me.gossip_addr.to_string(),
                    card: Some(me.clone()),
                }];
                for (id, member) in self.node.members() {
                    members.push(MemberDoc {
                        node_id: id.to_string(),
                        state: if member.alive { "alive" } else { "down" }.into(),
                        gossip_addr: member.identity.addr.to_string(),
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

    /// Carries out what the node produced: sends, timers, events.
    async fn flush(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, datagram } => match self.socket.send_to(&datagram, to).await {
                    Ok(_) => {
                        self.metrics.datagrams_out.inc();
                    }
                    Err(error) => tracing::debug!(%to, %error, "send failed"),
                },
                Output::Schedule { after, timer } => {
                    self.timers.push(Instant::now() + after, timer)
                }
                Output::Event(event) => self.event(event),
            }
        }
        self.publish_membership();
        let directive = Directive {
            decision: self.node.decision().clone(),
            cluster_id: self.node.card().cluster_id,
            formation: self.node.card().formation,
            acked: self.node.acked().to_vec(),
            founders: self.node.founders(),
        };
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
                self.metrics
                    .decisions
                    .get_or_create(&metrics::Kind {
                        kind: decision_kind(&decision).into(),
                    })
                    .inc();
                match &decision {
                    Decision::Conflict { .. } => tracing::error!("{}", decision.describe()),
                    _ => tracing::info!("{}", decision.describe()),
                }
            }
            Event::DuplicateNodeId { addr } => tracing::error!(
                %addr,
                "another live rq4d uses this node id ({}); rqlited will not be started beside it",
                self.node.card().node_id
            ),
            Event::Idle => tracing::info!("no live peers; announcing to discovery results"),
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
        let mut members = std::collections::BTreeMap::new();
        let mut raft_addrs = std::collections::BTreeMap::new();
        let me = self.node.card();
        raft_addrs.insert(me.raft_addr.clone(), me.node_id.clone());
        for (id, member) in self.node.members() {
            members.insert(id.clone(), (!member.alive).then_some(member.since));
            if let Some(card) = self.node.live_card(id) {
                raft_addrs.insert(card.raft_addr.clone(), id.clone());
            }
        }
        let next = Membership {
            members,
            raft_addrs,
        };
        self.membership.send_if_modified(|current| {
            let changed = *current != next;
            *current = next;
            changed
        });
    }
}

fn decision_kind(decision: &Decision) -> &'static str {
    match decision {
        Decision::Wait { .. } => "wait",
        Decision::Bootstrap { .. } => "bootstrap",
        Decision::Join { .. } => "join",
        Decision::Resume { .. } => "resume",
        Decision::Run => "run",
        Decision::Wipe { .. } => "wipe",
        Decision::Conflict { .. } => "conflict",
    }
}

fn refusal_label(refusal: &Refusal) -> &'static str {
    use rq4d_protocol::wire::WireError;
    match refusal {
        Refusal::Wire(WireError::TooShort(_)) => "too_short",
        Refusal::Wire(WireError::TooLarge(_)) => "too_large",
        Refusal::Wire(WireError::BadMagic) => "bad_magic",
        Refusal::Wire(WireError::UnsupportedVersion { .. }) => "version",
        Refusal::Wire(WireError::ForeignCluster { .. }) => "foreign_cluster",
        Refusal::Wire(WireError::UnexpectedAuthTag(_)) => "auth",
        Refusal::Wire(WireError::UnknownKind(_)) => "unknown_kind",
        Refusal::Wire(WireError::Malformed(_) | WireError::PayloadTooLarge(_)) => "malformed",
        Refusal::Swim(_) => "swim",
        Refusal::FromMyself => "from_self",
        Refusal::DuplicateNodeId(_) => "duplicate_node_id",
    }
}
