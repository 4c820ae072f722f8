//! A small client for the parts of rqlited's HTTP API a supervisor needs: `/readyz`, `/status`,
//! `/nodes` and `/remove` (shapes in `docs/rqlited.md`, "HTTP API"), over HTTP or HTTPS, with
//! rqlite's credentials when it checks them ([`access`]).

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub mod access;

pub use access::Access;
use access::Credentials;

/// Why a call to rqlited failed.
#[derive(Debug, Error)]
pub enum RqliteError {
    /// Connection refused, timeout, …
    #[error("rqlited unreachable: {}", Chain(.0))]
    Unreachable(#[from] reqwest::Error),
    /// An answer that is not what the API documents.
    #[error("rqlited answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The body, trimmed.
        body: String,
    },
}

impl RqliteError {
    /// True for a failure rq4d cannot wait out: rqlited refuses the credentials (401, 403),
    /// or its certificate does not verify. The full chain of causes is searched, since
    /// reqwest wraps the TLS error.
    pub fn needs_a_human(&self) -> bool {
        match self {
            Self::Refused { status, .. } => matches!(status, 401 | 403),
            Self::Unreachable(error) => {
                let mut source: Option<&dyn std::error::Error> = Some(error);
                while let Some(e) = source {
                    let text = e.to_string().to_lowercase();
                    if text.contains("certificate") || text.contains("handshake") {
                        return true;
                    }
                    source = e.source();
                }
                false
            }
        }
    }
}

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source: Option<&dyn std::error::Error> = Some(self.0);
        let mut first = true;
        while let Some(e) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{e}")?;
            first = false;
            source = e.source();
        }
        Ok(())
    }
}

/// An error with its causes, `a: b: c` (reqwest's own message hides the TLS reason).
pub struct Chain<'a>(pub &'a dyn std::error::Error);

/// What rq4d reads from `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `store.node_id`: who answers.
    pub node_id: String,
    /// `store.leader.node_id`, when there is a leader.
    pub leader: Option<String>,
    /// `store.raft.state`: Leader, Follower, Candidate…
    pub state: String,
    /// `store.raft.term`.
    pub term: u64,
    /// `store.raft.voter`.
    pub voter: bool,
    /// `store.raft.num_peers`.
    pub num_peers: u64,
}

/// One entry of `/nodes?ver=2`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RaftNode {
    /// Node id.
    pub id: String,
    /// Raft address.
    #[serde(default)]
    pub addr: String,
    /// Its HTTP API (`http://host:port`), when the answering node reached it.
    #[serde(default)]
    pub api_addr: String,
    /// Voter or non-voter.
    #[serde(default)]
    pub voter: bool,
    /// Whether the answering node reached it.
    #[serde(default)]
    pub reachable: bool,
    /// Whether it leads.
    #[serde(default)]
    pub leader: bool,
}

#[derive(Deserialize)]
struct NodesV2 {
    nodes: Vec<RaftNode>,
}

#[derive(Deserialize)]
struct StatusDoc {
    store: StoreDoc,
}

#[derive(Deserialize)]
struct StoreDoc {
    #[serde(default)]
    node_id: String,
    #[serde(default)]
    leader: Option<LeaderDoc>,
    raft: RaftDoc,
    /// The configuration as this node's Raft holds it (`store.nodes`), without probing anyone.
    /// rqlited's store puts its `Nodes()` there, each `{"id", "addr", "suffrage"}` (rqlite's
    /// `store/store.go`, `Stats`); optional all the same, so that a server without it falls
    /// back to `/nodes` rather than failing.
    #[serde(default)]
    nodes: Option<Vec<ConfiguredDoc>>,
}

/// One entry of `store.nodes`.
#[derive(Deserialize)]
struct ConfiguredDoc {
    #[serde(default)]
    id: String,
    #[serde(default)]
    addr: String,
}

#[derive(Deserialize)]
struct LeaderDoc {
    #[serde(default)]
    node_id: String,
}

#[derive(Deserialize)]
struct RaftDoc {
    #[serde(default)]
    state: String,
    #[serde(default, deserialize_with = "number_or_string")]
    term: u64,
    #[serde(default)]
    voter: bool,
    #[serde(default, deserialize_with = "number_or_string")]
    num_peers: u64,
}

/// rqlited reports some Raft counters as strings ("term": "3"), others as numbers.
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// A client for one rqlited.
#[derive(Debug, Clone)]
pub struct Rqlite {
    http: reqwest::Client,
    base: String,
    credentials: Option<Credentials>,
}

impl Rqlite {
    /// A client for the rqlited whose HTTP API is at `addr` (`host:port`), reached as `access`
    /// says (scheme, credentials, CA).
    pub fn new(access: &Access, addr: &str) -> Self {
        Self::at(access, format!("{}://{addr}", access.scheme()))
    }

    /// A client for the rqlited whose HTTP API is at `base` (`http[s]://host:port`, as
    /// `/nodes` gives it).
    pub fn at(access: &Access, base: String) -> Self {
        let mut base = base.trim_end_matches('/').to_string();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1));
        if let Some(tls) = &access.tls {
            builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
            for ca in reqwest::Certificate::from_pem_bundle(&tls.ca_pem).unwrap_or_default() {
                builder = builder.add_root_certificate(ca);
            }
            // The certificate names the service, not the container's address: dial the
            // address, verify the name.
            if let Some(name) = &tls.server_name
                && let Some((scheme, host)) = base.split_once("://")
                && let Ok(addr) = host.parse::<std::net::SocketAddr>()
            {
                builder = builder.resolve(name, addr);
                base = format!("{scheme}://{name}:{}", addr.port());
            }
        }
        let http = builder.build().unwrap_or_default();
        Self {
            http,
            base,
            credentials: access.credentials.clone(),
        }
    }

    /// A request to `path`, with the credentials when rqlited checks them.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.credentials {
            Some(c) => request.basic_auth(&c.user, Some(&c.password)),
            None => request,
        }
    }

    /// `GET /readyz`: true on 200. rqlited answers 500 (not the documented 503) without a leader,
    /// so any other status is "not ready".
    ///
    /// rqlited answers only once it has reached the leader it knows, for up to 30 s by default;
    /// a leader just killed is a dead address, and a dial to it in Docker fails only when
    /// ARP gives up, 1–3 s later. The supervisor waited that long (up to the client's 3 s) at every
    /// poll, and saw a new leader up to 3 s after rqlited had it (a chaos run: a killed
    /// leader's followers were ready 2.8 s after the new leader). So rqlited is asked to give
    /// up after [`READY_WITHIN`] (`timeout`, which rqlite v8 honours), and the client stops
    /// waiting a little later (newer rqlited bound it by the request's own life). A live
    /// leader answers such a probe in milliseconds.
    pub async fn ready(&self) -> Result<bool, RqliteError> {
        let path = format!("/readyz?timeout={}ms", READY_WITHIN.as_millis());
        let response = self
            .request(reqwest::Method::GET, &path)
            .timeout(READY_WITHIN + Duration::from_millis(500))
            .send()
            .await?;
        Ok(response.status().is_success())
    }

    /// `GET /status`'s `store.nodes`: the configuration's `(id, Raft address)` as this node's
    /// Raft holds it. Unlike `/nodes` it probes nobody, so it answers at once whoever is dead.
    /// `None` when the answer has no such list.
    pub async fn configuration(&self) -> Result<Option<Vec<(String, String)>>, RqliteError> {
        let response = self.request(reqwest::Method::GET, "/status").send().await?;
        let doc: StatusDoc = Self::json(response).await?;
        Ok(doc
            .store
            .nodes
            .map(|nodes| nodes.into_iter().map(|n| (n.id, n.addr)).collect()))
    }

    /// `GET /status`, the fields rq4d needs.
    pub async fn status(&self) -> Result<Status, RqliteError> {
        let response = self.request(reqwest::Method::GET, "/status").send().await?;
        let doc: StatusDoc = Self::json(response).await?;
        Ok(Status {
            node_id: doc.store.node_id,
            leader: doc
                .store
                .leader
                .map(|l| l.node_id)
                .filter(|id| !id.is_empty()),
            state: doc.store.raft.state,
            term: doc.store.raft.term,
            voter: doc.store.raft.voter,
            num_peers: doc.store.raft.num_peers,
        })
    }

    /// `GET /nodes?ver=2&nonvoters`: the cluster's members as this node sees them, each probed
    /// over the Raft port for up to [`PROBE_WITHIN`].
    pub async fn nodes(&self) -> Result<Vec<RaftNode>, RqliteError> {
        let path = format!(
            "/nodes?ver=2&nonvoters&timeout={}ms",
            PROBE_WITHIN.as_millis()
        );
        let response = self.request(reqwest::Method::GET, &path).send().await?;
        let doc: NodesV2 = Self::json(response).await?;
        Ok(doc.nodes)
    }

    /// `DELETE /remove` with `{"id": …}`.
    pub async fn remove(&self, id: &str) -> Result<(), RqliteError> {
        let response = self
            .request(reqwest::Method::DELETE, "/remove")
            .json(&serde_json::json!({ "id": id }))
            .send()
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::refused(response).await)
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, RqliteError> {
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        let status = response.status().as_u16();
        let body = response.text().await?;
        serde_json::from_str(&body).map_err(|e| RqliteError::Refused {
            status,
            body: format!("unreadable JSON ({e}): {}", truncate(&body)),
        })
    }

    async fn refused(response: reqwest::Response) -> RqliteError {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        RqliteError::Refused {
            status,
            body: truncate(&body),
        }
    }
}

fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// How long rqlited may take to reach its leader before `/readyz` counts as "not ready".
pub const READY_WITHIN: Duration = Duration::from_secs(1);

/// How long a member may take to answer `/nodes`' probe before it counts as unreachable. A
/// live member answers in milliseconds, and a member that does not answer in a second is one
/// Raft's own heartbeats (rqlited's `-raft-timeout`, 1 s) count as out of contact too. A dead
/// member takes the whole bound, and each listing waits on it: the identity check of a node
/// back at a new address (its old one is dead), the leader's look for a removal when a member
/// dies. It was 2 s, and the slowest restarts of a chaos run waited on two such listings one
/// after the other.
pub const PROBE_WITHIN: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-request rqlited on loopback: its address, and the accepted connection with the
    /// request's first line once a client has sent one.
    async fn one_request_server() -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<(tokio::net::TcpStream, String)>,
    ) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut head = vec![0u8; 1024];
            let n = stream.read(&mut head).await.expect("read");
            let line = String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            (stream, line)
        });
        (addr, accepted)
    }

    /// Answers the one request `accepted` takes with 200 and `body`; gives the request's first
    /// line.
    fn answer_200(
        accepted: tokio::task::JoinHandle<(tokio::net::TcpStream, String)>,
        body: &'static str,
    ) -> tokio::task::JoinHandle<String> {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut stream, line) = accepted.await.expect("accepted");
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.expect("write");
            line
        })
    }

    /// A leader that does not answer (a dead address) holds a readiness check for about
    /// [`READY_WITHIN`], not for the client's 3 s nor rqlited's 30 s: rqlited is told the
    /// bound, and the client gives up soon after it.
    #[tokio::test]
    async fn a_readiness_check_gives_up_soon_after_its_bound() {
        // An rqlited stuck dialling its leader: takes the request, never answers (the
        // connection stays open until the test ends).
        let (addr, server) = one_request_server().await;
        let client = Rqlite::new(&Access::default(), &addr.to_string());
        let started = std::time::Instant::now();
        let answer = client.ready().await;
        let took = started.elapsed();
        assert!(answer.is_err(), "no answer is no readiness: {answer:?}");
        assert!(
            took < Duration::from_secs(3),
            "gave up after {took:?}, not soon after {READY_WITHIN:?}"
        );
        assert!(took >= READY_WITHIN, "gave up before the bound: {took:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_readiness_check_tells_rqlited_its_bound() {
        let (addr, accepted) = one_request_server().await;
        let server = answer_200(accepted, "[+]node ok\n[+]leader ok\n[+]store ok");
        let client = Rqlite::new(&Access::default(), &addr.to_string());
        assert!(client.ready().await.expect("answered"), "200 is ready");
        let line = server.await.expect("server");
        assert_eq!(line, "GET /readyz?timeout=1000ms HTTP/1.1");
    }

    /// `/nodes` probes every member and waits on a dead one for its `timeout` (rqlited's own
    /// default is 30 s): the listing tells it [`PROBE_WITHIN`].
    #[tokio::test]
    async fn a_listing_tells_rqlited_its_probe_bound() {
        let (addr, accepted) = one_request_server().await;
        let server = answer_200(
            accepted,
            r#"{"nodes":[{"id":"n1","addr":"127.0.0.1:4002","reachable":true}]}"#,
        );
        let client = Rqlite::new(&Access::default(), &addr.to_string());
        let nodes = client.nodes().await.expect("answered");
        assert_eq!(nodes.len(), 1);
        let line = server.await.expect("server");
        assert_eq!(line, "GET /nodes?ver=2&nonvoters&timeout=1000ms HTTP/1.1");
    }

    #[test]
    fn status_documents_of_rqlited_parse() {
        let doc = r#"{"store":{"node_id":"n1","leader":{"node_id":"n1","addr":"127.0.0.1:4002"},
            "raft":{"state":"Leader","term":"3","voter":true,"num_peers":"2"}},"build":{}}"#;
        let parsed: StatusDoc = serde_json::from_str(doc).expect("parses");
        assert_eq!(parsed.store.raft.term, 3);
        assert_eq!(parsed.store.raft.num_peers, 2);
        let numbers = r#"{"store":{"leader":{"node_id":"","addr":""},"raft":{"state":"Candidate","term":7,"voter":false,"num_peers":0}}}"#;
        let parsed: StatusDoc = serde_json::from_str(numbers).expect("parses");
        assert_eq!(parsed.store.raft.term, 7);
        assert_eq!(parsed.store.leader.map(|l| l.node_id), Some(String::new()));
        assert!(
            parsed.store.nodes.is_none(),
            "no store.nodes: the probing listing decides"
        );
        let configured = r#"{"store":{"raft":{"state":"Follower","term":2},
            "nodes":[{"id":"n1","addr":"10.0.0.1:4002","suffrage":"Voter"},
                     {"id":"r1","addr":"10.0.0.9:4002","suffrage":"Nonvoter"}]}}"#;
        let parsed: StatusDoc = serde_json::from_str(configured).expect("parses");
        let nodes: Vec<(String, String)> = parsed
            .store
            .nodes
            .expect("store.nodes")
            .into_iter()
            .map(|n| (n.id, n.addr))
            .collect();
        assert_eq!(
            nodes,
            vec![
                ("n1".to_string(), "10.0.0.1:4002".to_string()),
                ("r1".to_string(), "10.0.0.9:4002".to_string())
            ]
        );
    }

    #[test]
    fn nodes_documents_parse() {
        let doc = r#"{"nodes":[{"id":"n1","api_addr":"http://127.0.0.1:4001","addr":"127.0.0.1:4002",
            "version":"v8.43.3","voter":true,"reachable":true,"leader":true,"time":3.5e-7,"time_s":"408ns"},
            {"id":"n2","addr":"127.0.0.2:4002","voter":true,"reachable":false,"leader":false,"error":"x"}]}"#;
        let parsed: NodesV2 = serde_json::from_str(doc).expect("parses");
        assert_eq!(parsed.nodes.len(), 2);
        assert!(!parsed.nodes[1].reachable);
    }
}
