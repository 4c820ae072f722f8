//! The Raft port: the server loop that reads one request line and dispatches it
//! (checking the credentials of the commands rqlite checks), the client calls
//! other parts of the double make to it (ping, forward), and writes, which are
//! committed before they are applied.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::election::{on_timeout_now, on_vote};
use super::membership::{on_join, on_notify, remove};
use super::raft::{commit, on_heartbeat};
use super::{LEADERSHIP_LOST, Role, Shared, not_leader};
use crate::double::auth::{Credentials, allowed, perm};
use crate::double::sql::Stmt;
use crate::double::wire::{Request, Response, UNAUTHORIZED};

/// Accepts connections on the Raft port, one task per connection; with node TLS
/// each connection must complete a TLS handshake first.
pub async fn serve_raft(node: Shared, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let node = node.clone();
        tokio::spawn(async move {
            match node.net.tls() {
                None => handle_conn(node.clone(), stream).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(tls_stream) => handle_conn(node.clone(), tls_stream).await,
                    Err(e) => crate::double::log(
                        "mux",
                        &format!("TLS handshake with {peer} failed: {e:#}"),
                    ),
                },
            }
        });
    }
}

async fn handle_conn<S: AsyncRead + AsyncWrite>(node: Shared, stream: S) {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(&node, req).await,
        Err(e) => Response::Error {
            error: format!("bad request: {e}"),
        },
    };
    let Ok(mut out) = serde_json::to_vec(&resp) else {
        return;
    };
    out.push(b'\n');
    let _ = write.write_all(&out).await;
    let _ = write.flush().await;
    let _ = write.shutdown().await;
}

/// rqlite's `checkCommandPerm`: the receiver's own `-auth` file decides.
fn authorized(node: &Shared, creds: Option<&Credentials>, perm: &str) -> bool {
    allowed(node.s.auth.as_ref(), creds, perm)
}

fn unauthorized() -> Response {
    Response::Error {
        error: UNAUTHORIZED.into(),
    }
}

async fn handle(node: &Shared, req: Request) -> Response {
    match req {
        Request::Heartbeat {
            term,
            leader_id,
            leader_addr,
            config,
            last_index,
            last_term,
        } => on_heartbeat(
            node,
            term,
            leader_id,
            leader_addr,
            config,
            last_index,
            last_term,
        ),
        Request::Vote {
            pre_vote,
            transfer,
            term,
            id,
            addr,
            last_index,
            last_term,
        } => on_vote(
            node, pre_vote, transfer, term, &id, &addr, last_index, last_term,
        ),
        Request::TimeoutNow { term } => on_timeout_now(node, term),
        Request::Join {
            id,
            addr,
            api_addr,
            voter,
            creds,
        } => {
            // A voter needs `join`, a non-voter `join-read-only`; neither implies
            // the other.
            let need = if voter {
                perm::JOIN
            } else {
                perm::JOIN_READ_ONLY
            };
            if !authorized(node, creds.as_ref(), need) {
                return unauthorized();
            }
            on_join(node, id, addr, api_addr, voter).await
        }
        Request::Notify { id, addr, creds } => {
            if !authorized(node, creds.as_ref(), perm::JOIN) {
                return unauthorized();
            }
            on_notify(node, id, addr)
        }
        Request::Remove { id, creds } => {
            if !authorized(node, creds.as_ref(), perm::REMOVE) {
                return unauthorized();
            }
            match remove(node, &id).await {
                Ok(()) => Response::Ok,
                Err(r) => r,
            }
        }
        Request::Execute {
            stmts,
            transaction,
            creds,
        } => {
            if !authorized(node, creds.as_ref(), perm::EXECUTE) {
                return unauthorized();
            }
            match execute(node, &stmts, transaction).await {
                Ok(results) => Response::Results {
                    results,
                    error: None,
                },
                Err(r) => r,
            }
        }
        Request::Query { stmts, creds } => {
            if !authorized(node, creds.as_ref(), perm::QUERY) {
                return unauthorized();
            }
            let c = node.lock();
            if c.role != Role::Leader {
                return not_leader(&c);
            }
            Response::Results {
                results: c.p.db.query(&stmts),
                error: None,
            }
        }
        Request::Ping => Response::Pong {
            id: node.s.id.clone(),
            api_addr: node.s.api_url(),
        },
    }
}

/// A write on the leader: committed (majority heartbeat) before it is applied, so a
/// write racing the loss of quorum fails the way rqlite's does.
pub async fn execute(
    node: &Shared,
    stmts: &[Stmt],
    transaction: bool,
) -> Result<Vec<Value>, Response> {
    {
        let mut c = node.lock();
        if c.role != Role::Leader {
            return Err(not_leader(&c));
        }
        c.p.last_index += 1;
        c.p.last_term = c.p.current_term;
    }
    if let Err(e) = commit(node).await {
        return Err(Response::Results {
            results: vec![],
            error: Some(e),
        });
    }
    let mut c = node.lock();
    if c.role != Role::Leader {
        return Err(Response::Results {
            results: vec![],
            error: Some(LEADERSHIP_LOST.into()),
        });
    }
    let results = c.p.db.execute(stmts, transaction);
    node.persist(&mut c);
    Ok(results)
}

/// Probes a node over the Raft port for `/nodes` and `/readyz` (rqlite's
/// GET_NODE_API_URL, which needs no credentials).
pub async fn ping(
    node: &Shared,
    addr: &str,
    timeout: Duration,
) -> Result<(String, Duration), String> {
    let start = Instant::now();
    match node.net.call(addr, &Request::Ping, timeout).await {
        Ok(Response::Pong { api_addr, .. }) => Ok((api_addr, start.elapsed())),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Forwards a request to the leader's Raft port.
pub async fn forward(node: &Shared, leader_addr: &str, req: &Request) -> Result<Response, String> {
    node.net
        .call(leader_addr, req, Duration::from_secs(10))
        .await
        .map_err(|e| format!("{e:#}"))
}
