//! rqlited's HTTP API surface as far as a supervisor uses it, with the status codes
//! and bodies observed on real rqlited v8.43.3 (see `docs/rqlited.md`, "HTTP API"),
//! and rqlite's permission check in front of every endpoint when `-auth` is set.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, Request as HttpRequest, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use super::auth::{Credentials, perm};
use super::flags::{format_duration, parse_duration};
use super::node::{self, Role, Shared, config_string, suffrage};
use super::sql::{self, Db, Stmt};
use super::wire::{self, Request, UNAUTHORIZED};
use super::{VERSION, rfc3339};

type Params = Query<HashMap<String, String>>;

/// rqlited answers a missing leader this way in v8.43.3 (Go's `http.Error` adds the
/// newline).
const NO_LEADER: &str = "leader address: leader not found\n";

pub fn router(node: Shared) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/nodes", get(nodes))
        .route("/leader", get(leader))
        .route("/remove", delete(remove))
        .route("/db/execute", post(execute))
        .route("/db/query", get(query).post(query))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(node.clone(), check_perm))
        .layer(middleware::map_response(version_header))
        .with_state(node)
}

/// The permission rqlite's handler for `path` checks first thing (matched by
/// prefix, as rqlite's mux does); `None` for paths it serves without a check
/// (`/` and unknown paths). `/leader` is taken to need `status` (not confirmed
/// from rqlite's source).
fn required_perm(path: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("/db/execute", perm::EXECUTE),
        ("/db/query", perm::QUERY),
        ("/remove", perm::REMOVE),
        ("/status", perm::STATUS),
        ("/nodes", perm::STATUS),
        ("/readyz", perm::READY),
        ("/leader", perm::STATUS),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|(_, p)| *p)
}

/// The caller's Basic credentials, if the request carries an `Authorization:
/// Basic` header (the only way rqlite accepts credentials).
pub struct Caller(pub Option<Credentials>);

impl Caller {
    fn from_headers(headers: &HeaderMap) -> Caller {
        Caller(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(Credentials::from_basic_header),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        Ok(Caller::from_headers(&parts.headers))
    }
}

/// rqlite answers OPTIONS with 200 and no check, and a failed check with a bare
/// 401: no body, no `WWW-Authenticate`. The check comes before the method check,
/// so a wrong method without credentials is 401, not 405.
async fn check_perm(State(node): State<Shared>, req: HttpRequest, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    if let (Some(store), Some(perm)) = (node.s.auth.as_ref(), required_perm(req.uri().path())) {
        let caller = Caller::from_headers(req.headers());
        if !store.allows(caller.0.as_ref(), perm) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    next.run(req).await
}

/// A forwarded request the leader refused for its credentials: 401 with
/// rqlite's wording for that endpoint.
fn remote_denied(what: &str) -> Response {
    text(
        StatusCode::UNAUTHORIZED,
        format!("remote {what} not authorized\n"),
    )
}

async fn version_header(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("X-RQLITE-VERSION", HeaderValue::from_static(VERSION));
    resp
}

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn json_response(code: StatusCode, v: Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn no_leader() -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, NO_LEADER)
}

fn timeout_param(q: &HashMap<String, String>, default: Duration) -> Duration {
    q.get("timeout")
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(default)
}

async fn root() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/status")]).into_response()
}

async fn readyz(State(node): State<Shared>, Query(q): Params) -> Response {
    if q.contains_key("noleader") {
        return text(StatusCode::OK, "[+]node ok");
    }
    let Some((_, leader_addr)) = node.view().leader else {
        return no_leader();
    };
    let timeout = timeout_param(&q, Duration::from_secs(30));
    if let Err(e) = node::ping(&node, &leader_addr, timeout).await {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[+]node ok\n[+]leader not contactable: {e}"),
        );
    }
    text(StatusCode::OK, "[+]node ok\n[+]leader ok\n[+]store ok")
}

async fn status(State(node): State<Shared>) -> Response {
    let v = node.view();
    let s = &node.s;
    let (leader_id, leader_addr) = v.leader.clone().unwrap_or_default();
    let last_contact = match (v.role, v.last_contact) {
        (Role::Leader, _) => json!(0),
        (_, None) => json!("never"),
        (_, Some(t)) => json!(format_duration(t.elapsed())),
    };
    let nodes: Vec<Value> = {
        let mut c = v.config.clone();
        c.sort_by(|a, b| a.id.cmp(&b.id));
        c.iter()
            .map(|s| json!({"id": s.id, "addr": s.addr, "suffrage": suffrage(s)}))
            .collect()
    };
    let dir_size = std::fs::metadata(super::state::raft_db_path(&s.data_dir))
        .map(|m| m.len())
        .unwrap_or(0);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let raft = json!({
        "state": v.role.as_str(),
        "term": v.term,
        "commit_index": v.last_index,
        "applied_index": v.last_index,
        "last_log_index": v.last_index,
        "last_log_term": v.last_term,
        "last_snapshot_index": 0,
        "last_snapshot_term": 0,
        "fsm_pending": 0,
        "last_contact": last_contact,
        "num_peers": v.num_peers(&s.id),
        "voter": v.voter,
        "latest_configuration": config_string(&v.config),
        "latest_configuration_index": 0,
        "protocol_version": 3,
        "protocol_version_max": 3,
        "protocol_version_min": 0,
        "snapshot_version_max": 1,
        "snapshot_version_min": 0,
        "log_size": dir_size,
    });
    let store = json!({
        "open": true,
        "node_id": s.id,
        "addr": s.raft_adv,
        "dir": s.data_dir.display().to_string(),
        "dir_size": dir_size,
        "ready": v.leader.is_some(),
        "leader": {"node_id": leader_id, "addr": leader_addr},
        "apply_timeout": "10s",
        "heartbeat_timeout": format_duration(s.heartbeat_timeout),
        "election_timeout": format_duration(s.election_timeout),
        "reap_timeout": format_duration(s.reap_timeout),
        "nodes": nodes,
        "fsm_index": v.last_index,
        "db_applied_index": v.last_index,
        "raft": raft,
    });
    let runtime = json!({
        "GOARCH": std::env::consts::ARCH,
        "GOOS": std::env::consts::OS,
        "GOMAXPROCS": cpus,
        "num_cpu": cpus,
        "num_goroutine": 0,
        "version": "rq4d-test-double",
    });
    let os = json!({
        "executable": std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        "hostname": hostname,
        "page_size": 4096,
        "pid": std::process::id(),
    });
    let body = json!({
        "build": {
            "version": VERSION,
            "commit": "rq4d-test-double",
            "branch": "rq4d-test-double",
            "build_time": "",
            "compiler": "rustc",
        },
        "cluster": {"addr": s.raft_adv, "api_addr": s.http_adv, "https": s.https.to_string()},
        "extensions": {},
        "http": {
            "bind_addr": s.http_bind,
            "auth": if s.auth.is_some() { "enabled" } else { "disabled" },
            "cluster": {"local_node_addr": s.raft_adv},
            "tls": {"enabled": s.https.to_string()},
        },
        "mux": {"addr": s.raft_bind, "timeout": "30s"},
        "network": {"interfaces": {}},
        "node": {
            "start_time": rfc3339(s.started),
            "current_time": rfc3339(SystemTime::now()),
            "uptime": format_duration(s.started_at.elapsed()),
        },
        "os": os,
        "runtime": runtime,
        "store": store,
    });
    json_response(StatusCode::OK, body)
}

/// One `/nodes` entry, probed over the Raft port like rqlite's `Node.Test`.
async fn probe(node: Shared, server: wire::Server, is_leader: bool, timeout: Duration) -> Value {
    let wire::Server {
        id, addr, voter, ..
    } = server;
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("addr".into(), json!(addr));
    m.insert("voter".into(), json!(voter));
    m.insert("version".into(), json!(VERSION));
    match node::ping(&node, &addr, timeout).await {
        Ok((api_addr, took)) => {
            m.insert("api_addr".into(), json!(api_addr));
            m.insert("reachable".into(), json!(true));
            m.insert("leader".into(), json!(is_leader));
            m.insert("time".into(), json!(took.as_secs_f64()));
            m.insert("time_s".into(), json!(format_duration(took)));
        }
        Err(e) => {
            m.insert("reachable".into(), json!(false));
            m.insert("leader".into(), json!(false));
            m.insert("time".into(), json!(0.0));
            m.insert("time_s".into(), json!("0s"));
            m.insert("error".into(), json!(e));
        }
    }
    Value::Object(m)
}

async fn nodes(State(node): State<Shared>, Query(q): Params) -> Response {
    let v = node.view();
    let leader_addr = v.leader.map(|l| l.1).unwrap_or_default();
    let timeout = timeout_param(&q, Duration::from_secs(30));
    let mut servers = v.config;
    // rqlite lists only voters unless asked for `?nonvoters`.
    if !q.contains_key("nonvoters") {
        servers.retain(|s| s.voter);
    }
    servers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut set = JoinSet::new();
    for (i, s) in servers.into_iter().enumerate() {
        let is_leader = s.addr == leader_addr;
        let node = node.clone();
        set.spawn(async move { (i, probe(node, s, is_leader, timeout).await) });
    }
    let mut probed: Vec<(usize, Value)> = Vec::new();
    while let Some(Ok(r)) = set.join_next().await {
        probed.push(r);
    }
    probed.sort_by_key(|(i, _)| *i);
    let list: Vec<Value> = probed.into_iter().map(|(_, v)| v).collect();
    if q.get("ver").map(String::as_str) == Some("2") {
        return json_response(StatusCode::OK, json!({ "nodes": list }));
    }
    let mut by_id = Map::new();
    for n in list {
        let id = n["id"].as_str().unwrap_or_default().to_string();
        by_id.insert(id, n);
    }
    json_response(StatusCode::OK, Value::Object(by_id))
}

async fn leader(State(node): State<Shared>, Query(q): Params) -> Response {
    let v = node.view();
    let Some((id, addr)) = v.leader else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "leader not found\n");
    };
    let server = v
        .config
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or(wire::Server {
            id,
            addr,
            api_addr: String::new(),
            voter: true,
        });
    let timeout = timeout_param(&q, Duration::from_secs(30));
    json_response(
        StatusCode::OK,
        probe(node.clone(), server, true, timeout).await,
    )
}

/// Maps an answer from the leader (or from our own leader-side code) to HTTP.
fn leader_error(r: wire::Response) -> Response {
    match r {
        wire::Response::NotLeader { .. } => no_leader(),
        wire::Response::Error { error } => {
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
        }
        other => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer {other:?}\n"),
        ),
    }
}

/// `?redirect`: rqlite answers 301 with the leader's HTTP URL instead of forwarding.
fn redirect(node: &Shared, leader_addr: &str, path_and_query: &str) -> Response {
    let api = node
        .view()
        .config
        .into_iter()
        .find(|s| s.addr == leader_addr)
        .map(|s| s.api_addr)
        .unwrap_or_default();
    if api.is_empty() {
        return no_leader();
    }
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, format!("{api}{path_and_query}"))],
    )
        .into_response()
}

async fn remove(
    State(node): State<Shared>,
    Query(q): Params,
    Caller(creds): Caller,
    body: Bytes,
) -> Response {
    // rqlite decodes into map[string]string and insists on exactly the key "id".
    let id = match serde_json::from_slice::<HashMap<String, String>>(&body) {
        Ok(m) if m.len() == 1 && m.contains_key("id") => m["id"].clone(),
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    let v = node.view();
    if v.role == Role::Leader {
        return match node::remove(&node, &id).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(r) => leader_error(r),
        };
    }
    let Some((_, leader_addr)) = v.leader else {
        return no_leader();
    };
    if q.contains_key("redirect") {
        return redirect(&node, &leader_addr, "/remove");
    }
    match node::forward(&node, &leader_addr, &Request::Remove { id, creds }).await {
        Ok(wire::Response::Error { error }) if error == UNAUTHORIZED => {
            remote_denied("remove node")
        }
        Ok(wire::Response::Ok) => {
            let mut resp = StatusCode::OK.into_response();
            if let Ok(h) = HeaderValue::from_str(&leader_addr) {
                resp.headers_mut().insert("X-RQLITE-SERVED-BY", h);
            }
            resp
        }
        Ok(other) => leader_error(other),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn results_body(results: Vec<Value>, error: Option<String>, started: Option<Instant>) -> Value {
    let mut m = Map::new();
    m.insert("results".into(), Value::Array(results));
    if let Some(e) = error {
        m.insert("error".into(), json!(e));
    }
    if let Some(t) = started {
        m.insert("time".into(), json!(t.elapsed().as_secs_f64()));
    }
    Value::Object(m)
}

async fn execute(
    State(node): State<Shared>,
    Query(q): Params,
    Caller(creds): Caller,
    body: Bytes,
) -> Response {
    let started = q.contains_key("timings").then(Instant::now);
    let stmts = match sql::parse_body(&body) {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let transaction = q.contains_key("transaction");
    let v = node.view();
    let answer = if v.role == Role::Leader {
        match node::execute(&node, &stmts, transaction).await {
            Ok(results) => wire::Response::Results {
                results,
                error: None,
            },
            Err(r) => r,
        }
    } else {
        let Some((_, leader_addr)) = v.leader else {
            return no_leader();
        };
        if q.contains_key("redirect") {
            return redirect(&node, &leader_addr, "/db/execute");
        }
        let req = Request::Execute {
            stmts,
            transaction,
            creds,
        };
        match node::forward(&node, &leader_addr, &req).await {
            Ok(wire::Response::Error { error }) if error == UNAUTHORIZED => {
                return remote_denied("Execute");
            }
            Ok(r) => r,
            Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        }
    };
    match answer {
        wire::Response::Results { results, error } => {
            json_response(StatusCode::OK, results_body(results, error, started))
        }
        other => leader_error(other),
    }
}

async fn query(
    State(node): State<Shared>,
    Query(q): Params,
    Caller(creds): Caller,
    body: Bytes,
) -> Response {
    let started = q.contains_key("timings").then(Instant::now);
    let stmts = if let Some(sql) = q.get("q") {
        vec![Stmt {
            sql: sql.clone(),
            params: vec![],
        }]
    } else if !body.is_empty() {
        match sql::parse_body(&body) {
            Ok(s) => s,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    } else {
        return text(StatusCode::BAD_REQUEST, "SQL statement missing\n");
    };
    let level = q.get("level").map(String::as_str).unwrap_or("weak");
    let v = node.view();
    // level=none reads whatever this node holds, with or without a leader.
    if level == "none" || (v.role == Role::Leader && Db::read_only(&stmts)) {
        if (level == "strong" || level == "linearizable")
            && let Err(e) = node::commit(&node).await
        {
            return json_response(StatusCode::OK, results_body(vec![], Some(e), started));
        }
        let results = node.db_snapshot().query(&stmts);
        return json_response(StatusCode::OK, results_body(results, None, started));
    }
    let Some((_, leader_addr)) = v.leader else {
        return no_leader();
    };
    if v.role == Role::Leader {
        let results = node.db_snapshot().query(&stmts);
        return json_response(StatusCode::OK, results_body(results, None, started));
    }
    if q.contains_key("redirect") {
        return redirect(&node, &leader_addr, "/db/query");
    }
    match node::forward(&node, &leader_addr, &Request::Query { stmts, creds }).await {
        Ok(wire::Response::Error { error }) if error == UNAUTHORIZED => remote_denied("query"),
        Ok(wire::Response::Results { results, error }) => {
            json_response(StatusCode::OK, results_body(results, error, started))
        }
        Ok(other) => leader_error(other),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}
