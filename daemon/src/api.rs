//! The status API: `/health/live` and `/health/ready` for the orchestrator's probes (`/health`
//! is `/health/ready`), `/members` as JSON, `/metrics` for Prometheus. Handlers never touch the
//! node: they ask the gossip loop through a channel and get a snapshot back, so the node stays
//! owned by one task — which is also what makes `/health/live` mean something: it answers only
//! while that loop runs.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rq4d_protocol::{Card, KeyId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::tasks::Tasks;

/// The answer of `/health/live` and `/health/ready`; which of its verdicts sets the status
/// code depends on the path ([`Probe`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Ready: rqlited is a member (a voter, or a non-voter by design) that sees a leader, and
    /// nothing conflicts (`/health/ready`'s 200). Named `healthy` because `/health` has always meant this.
    pub healthy: bool,
    /// Live: the gossip loop answered, so the process and its gossip work (`/health/live`'s
    /// 200). True in every answer: a loop that is stuck does not answer at all, and the probe
    /// times out. It never depends on the cluster: a node waiting for its peers, or in a
    /// cluster without quorum, is live — restarting it would only make things worse.
    #[serde(default)]
    pub live: bool,
    /// Gossip socket up and at least this node known.
    pub gossip: bool,
    /// Gossip is sealed with a cluster keyring.
    pub gossip_authenticated: bool,
    /// rqlited's `/readyz` answered 200 at the last poll.
    pub rqlited_ready: bool,
    /// The current decision, for humans.
    pub decision: String,
    /// What an operator should know that does not make the node unhealthy.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One row of `/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberDoc {
    /// Node id.
    pub node_id: String,
    /// `self`, `alive` or `down`.
    pub state: String,
    /// Gossip address.
    pub gossip_addr: String,
    /// The key its latest datagram was sealed with (for this node itself: its primary).
    #[serde(default)]
    pub sends_with: Option<KeyId>,
    /// Its current card, if known.
    pub card: Option<Card>,
}

/// `/members`' answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersDoc {
    /// The answering node.
    pub node_id: String,
    /// Its decision.
    pub decision: String,
    /// Every member it knows, itself first.
    pub members: Vec<MemberDoc>,
}

/// A question for the gossip loop.
pub enum Request {
    /// For `/health`.
    Health(oneshot::Sender<Health>),
    /// For `/members`.
    Members(oneshot::Sender<MembersDoc>),
    /// For `/metrics`: bring the gauges that describe the cluster up to date (they are
    /// computed when scraped, not on every card).
    Gauges(oneshot::Sender<()>),
}

#[derive(Clone)]
struct Shared {
    requests: mpsc::Sender<Request>,
    metrics: Arc<Metrics>,
}

/// Binds the API and serves it among `tasks` until the daemon stops.
pub async fn serve(
    tasks: &mut Tasks,
    addr: SocketAddr,
    requests: mpsc::Sender<Request>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--api-addr {addr}: cannot listen"))?;
    let app = Router::new()
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/members", get(members))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { requests, metrics });
    let stop = tasks.stop_signal().requested();
    tasks.spawn("status API", async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "status API stopped");
        }
    });
    Ok(())
}

async fn ask<T>(shared: &Shared, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    shared.requests.send(make(tx)).await.ok()?;
    rx.await.ok()
}

/// Which verdict of [`Health`] a probe answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/health/live`: the process and its gossip work. For Swarm's and Kubernetes' liveness,
    /// and the image's HEALTHCHECK, since Swarm keeps a task out of the DNS its peers discover
    /// each other through until it passes.
    Live,
    /// `/health/ready` (and `/health`): a member that sees a leader. For Kubernetes' readiness
    /// and Compose's healthcheck.
    Ready,
}

impl Probe {
    /// The path that answers it.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Live => "/health/live",
            Probe::Ready => "/health/ready",
        }
    }

    /// Whether `health` passes it.
    pub fn passes(self, health: &Health) -> bool {
        match self {
            Probe::Live => health.live,
            Probe::Ready => health.healthy,
        }
    }
}

async fn ready(State(shared): State<Shared>) -> Response {
    probe(&shared, Probe::Ready).await
}

async fn live(State(shared): State<Shared>) -> Response {
    probe(&shared, Probe::Live).await
}

async fn probe(shared: &Shared, probe: Probe) -> Response {
    match ask(shared, Request::Health).await {
        Some(health) => {
            let code = if probe.passes(&health) {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (code, axum::Json(health)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    }
}

async fn members(State(shared): State<Shared>) -> Response {
    match ask(&shared, Request::Members).await {
        Some(doc) => axum::Json(doc).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    }
}

async fn metrics_text(State(shared): State<Shared>) -> Response {
    // While shutting down the gauges stay as they were; the counters are still worth a scrape.
    let _ = ask(&shared, Request::Gauges).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}
