//! The doubles' private protocol on the Raft port: one JSON request line, one JSON
//! response line, then the connection closes. It only needs to be understood by
//! other doubles; real rqlited nodes cannot be mixed into a double cluster (and
//! vice versa), which the module docs state. With node TLS the whole exchange
//! runs inside TLS, as rqlite's whole Raft port does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::auth::Credentials;
use super::sql::Stmt;
use super::tls::NodeTls;

/// One member of a cluster configuration. `api_addr` is rqlite's metadata (the
/// HTTP address a node advertises), carried here with the Raft configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    pub addr: String,
    #[serde(default)]
    pub api_addr: String,
    /// Voter or non-voter (hashicorp/raft's suffrage). Older state files have no
    /// such field: everyone was a voter then.
    #[serde(default = "voter_by_default")]
    pub voter: bool,
}

fn voter_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Leader → member: "I lead `term`; this is the configuration; log is at `index`".
    Heartbeat {
        term: u64,
        leader_id: String,
        leader_addr: String,
        config: Vec<Server>,
        last_index: u64,
        last_term: u64,
    },
    /// Candidate → voter. `pre_vote` asks without disturbing anybody; `transfer` is
    /// set when the old leader handed leadership over, which overrides "we have a
    /// leader" as in hashicorp/raft's leadership transfer.
    Vote {
        pre_vote: bool,
        transfer: bool,
        term: u64,
        id: String,
        addr: String,
        last_index: u64,
        last_term: u64,
    },
    /// Leader → chosen follower on graceful shutdown: start an election now.
    TimeoutNow { term: u64 },
    // The requests below carry the caller's credentials, as rqlite's cluster
    // commands do: `-join-as` for join, notify and remove, the HTTP caller's for
    // forwarded requests. The receiver checks them against its own `-auth` file.
    Join {
        id: String,
        addr: String,
        api_addr: String,
        voter: bool,
        #[serde(default)]
        creds: Option<Credentials>,
    },
    Notify {
        id: String,
        addr: String,
        #[serde(default)]
        creds: Option<Credentials>,
    },
    Remove {
        id: String,
        #[serde(default)]
        creds: Option<Credentials>,
    },
    Execute {
        stmts: Vec<Stmt>,
        transaction: bool,
        #[serde(default)]
        creds: Option<Credentials>,
    },
    Query {
        stmts: Vec<Stmt>,
        #[serde(default)]
        creds: Option<Credentials>,
    },
    /// Used by `/nodes` to test reachability and learn a node's HTTP address.
    Ping,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    HeartbeatAck {
        term: u64,
        success: bool,
        id: String,
        api_addr: String,
    },
    Vote {
        term: u64,
        granted: bool,
    },
    Ok,
    /// The receiver is not the leader; the leader's Raft address is given when known.
    NotLeader {
        leader: String,
    },
    Error {
        error: String,
    },
    /// Results of an execute or query, already in rqlite's `results` shape.
    Results {
        results: Vec<Value>,
        error: Option<String>,
    },
    Pong {
        id: String,
        api_addr: String,
    },
}

/// rqlite's answer to a command whose credentials the receiver refused.
pub const UNAUTHORIZED: &str = "unauthorized";

/// How this node reaches other nodes' Raft ports, and is reached on its own:
/// plain TCP, or TLS with `-node-cert` (both ways, like rqlite's mux).
#[derive(Clone, Default)]
pub struct Transport {
    tls: Option<Arc<NodeTls>>,
}

impl Transport {
    pub fn new(tls: Option<NodeTls>) -> Transport {
        Transport {
            tls: tls.map(Arc::new),
        }
    }

    pub fn tls(&self) -> Option<&NodeTls> {
        self.tls.as_deref()
    }

    /// Sends one request and waits for its answer, all within `timeout`.
    pub async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> anyhow::Result<Response> {
        tokio::time::timeout(timeout, self.call_inner(addr, req))
            .await
            .map_err(|_| anyhow!("i/o timeout talking to {addr}"))?
    }

    async fn call_inner(&self, addr: &str, req: &Request) -> anyhow::Result<Response> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("dial tcp {addr}"))?;
        stream.set_nodelay(true).ok();
        match &self.tls {
            None => exchange(stream, addr, req).await,
            Some(tls) => exchange(tls.connect(addr, stream).await?, addr, req).await,
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    addr: &str,
    req: &Request,
) -> anyhow::Result<Response> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(&line).await?;
    stream.get_mut().flush().await?;
    let mut answer = String::new();
    stream.read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(anyhow!("connection to {addr} closed without an answer"));
    }
    serde_json::from_str(&answer)
        .with_context(|| format!("unintelligible answer from {addr} (node TLS on one side only?)"))
}
