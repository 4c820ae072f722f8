//! The doubles' private protocol on the Raft port: one JSON request line, one JSON
//! response line, then the connection closes. It only needs to be understood by
//! other doubles; real rqlited nodes cannot be mixed into a double cluster (and
//! vice versa), which the module docs state.

use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::sql::Stmt;

/// One member of a cluster configuration. `api_addr` is rqlite's metadata (the
/// HTTP address a node advertises), carried here with the Raft configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    pub addr: String,
    #[serde(default)]
    pub api_addr: String,
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
    TimeoutNow {
        term: u64,
    },
    Join {
        id: String,
        addr: String,
        api_addr: String,
        voter: bool,
    },
    Notify {
        id: String,
        addr: String,
    },
    Remove {
        id: String,
    },
    Execute {
        stmts: Vec<Stmt>,
        transaction: bool,
    },
    Query {
        stmts: Vec<Stmt>,
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

/// Sends one request and waits for its answer, all within `timeout`.
pub async fn call(addr: &str, req: &Request, timeout: Duration) -> anyhow::Result<Response> {
    tokio::time::timeout(timeout, call_inner(addr, req))
        .await
        .map_err(|_| anyhow!("i/o timeout talking to {addr}"))?
}

async fn call_inner(addr: &str, req: &Request) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("dial tcp {addr}"))?;
    stream.set_nodelay(true).ok();
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(anyhow!("connection to {addr} closed without an answer"));
    }
    Ok(serde_json::from_str(&answer)?)
}
