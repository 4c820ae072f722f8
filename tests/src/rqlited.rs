//! Launching `rqlited` (the double, or the real server named by `$RQLITED`): how
//! a node is specified, the running process with its log, and small cluster
//! helpers built on them.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{HttpClient, HttpResponse, url_encode};
use crate::scratch::free_addr;
use crate::wait::wait_until;

/// The `rqlited` binary tests run: `$RQLITED` if set (a real rqlited, to check
/// that the tests hold against the genuine article), else the double.
pub fn rqlited_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RQLITED") {
        return PathBuf::from(p);
    }
    double_binary()
}

/// Where cargo put `rqlited-double`: next to the running test executable's
/// directory (`target/<profile>/`, the test itself lives in `target/<profile>/deps/`).
/// Integration tests of this crate may pass `env!("CARGO_BIN_EXE_rqlited-double")`
/// instead; other crates' tests rely on this lookup (build the double first with
/// `cargo build -p rq4d-tests`).
pub fn double_binary() -> PathBuf {
    let name = "rqlited-double";
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

/// How to start one node: identity, addresses, data directory, extra flags.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: String,
    pub http_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub join: Vec<String>,
    /// Further flags, placed before the data directory.
    pub args: Vec<String>,
    /// Binary to run; `None` means [`rqlited_binary`].
    pub binary: Option<PathBuf>,
    /// How the harness calls this node's HTTP API (HTTPS, credentials).
    pub client: HttpClient,
}

impl NodeSpec {
    /// A node with its own free loopback HTTP and Raft ports.
    pub fn new(id: &str, data_dir: impl Into<PathBuf>) -> NodeSpec {
        NodeSpec {
            id: id.to_string(),
            http_addr: free_addr(),
            raft_addr: free_addr(),
            data_dir: data_dir.into(),
            join: vec![],
            args: vec![],
            binary: None,
            client: HttpClient::plain(),
        }
    }

    pub fn join(mut self, targets: &[&str]) -> NodeSpec {
        self.join = targets.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn no_join(mut self) -> NodeSpec {
        self.join.clear();
        self
    }

    pub fn arg(mut self, a: &str) -> NodeSpec {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, a: &[&str]) -> NodeSpec {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    /// Same id and data, fresh HTTP and Raft addresses (a container that came back
    /// with a new IP).
    pub fn at_new_addresses(mut self) -> NodeSpec {
        self.http_addr = free_addr();
        self.raft_addr = free_addr();
        self
    }

    /// Calls this node's API with `client`: needed when the node serves HTTPS
    /// (`-http-cert`) or checks credentials (`-auth`).
    pub fn client(mut self, client: HttpClient) -> NodeSpec {
        self.client = client;
        self
    }

    pub fn binary(mut self, path: impl Into<PathBuf>) -> NodeSpec {
        self.binary = Some(path.into());
        self
    }

    /// The full command line after the program name.
    pub fn command_line(&self) -> Vec<String> {
        let mut v = vec![
            "-node-id".to_string(),
            self.id.clone(),
            "-http-addr".into(),
            self.http_addr.clone(),
            "-raft-addr".into(),
            self.raft_addr.clone(),
        ];
        if !self.join.is_empty() {
            v.push("-join".into());
            v.push(self.join.join(","));
        }
        v.extend(self.args.iter().cloned());
        v.push(self.data_dir.display().to_string());
        v
    }
}

/// A running (or exited) rqlited process. Its stdout and stderr go to
/// `<data dir>.log` (appended across restarts); dropping it kills the process.
pub struct Rqlited {
    spec: NodeSpec,
    child: Child,
    log_path: PathBuf,
    log_offset: u64,
    started: Instant,
    exit: Option<ExitStatus>,
}

impl Rqlited {
    pub fn start(spec: NodeSpec) -> io::Result<Rqlited> {
        let binary = spec.binary.clone().unwrap_or_else(rqlited_binary);
        if let Some(parent) = spec.data_dir.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut log_name = spec.data_dir.as_os_str().to_owned();
        log_name.push(".log");
        let log_path = PathBuf::from(log_name);
        let mut log = File::options().create(true).append(true).open(&log_path)?;
        let log_offset = log.seek(SeekFrom::End(0))?;
        let args = spec.command_line();
        writeln!(
            log,
            "=== rq4d-tests: starting {} {}",
            binary.display(),
            args.join(" ")
        )?;
        let child = Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {}: {e}", binary.display())))?;
        Ok(Rqlited {
            spec,
            child,
            log_path,
            log_offset,
            started: Instant::now(),
            exit: None,
        })
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }
    pub fn id(&self) -> &str {
        &self.spec.id
    }
    pub fn http_addr(&self) -> &str {
        &self.spec.http_addr
    }
    pub fn raft_addr(&self) -> &str {
        &self.spec.raft_addr
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Time since this process was spawned.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything this process printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path)
            && f.seek(SeekFrom::Start(self.log_offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// A one-paragraph account for failure messages: who, where, exited or not,
    /// and the tail of the log.
    pub fn describe(&mut self) -> String {
        let state = match self.try_exit() {
            Some(s) => format!("exited ({s})"),
            None => "running".into(),
        };
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "node {} (http {}, raft {}, {state}); log tail:\n  {}",
            self.spec.id,
            self.spec.http_addr,
            self.spec.raft_addr,
            tail.join("\n  ")
        )
    }

    pub fn get(&self, path_and_query: &str) -> io::Result<HttpResponse> {
        self.spec.client.get(&self.spec.http_addr, path_and_query)
    }

    /// HTTP status of `/readyz`, or `None` when the HTTP server does not answer.
    pub fn readyz(&self) -> Option<u16> {
        self.spec
            .client
            .request(
                "GET",
                &self.spec.http_addr,
                "/readyz",
                None,
                Duration::from_secs(2),
            )
            .ok()
            .map(|r| r.status)
    }

    pub fn is_ready(&self) -> bool {
        self.readyz() == Some(200)
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> Result<Value, String> {
        self.get("/status").map_err(|e| e.to_string())?.json()
    }

    /// `store.raft.state`: "Leader", "Follower", "Candidate".
    pub fn raft_state(&self) -> Result<String, String> {
        let s = self.status()?;
        s["store"]["raft"]["state"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("no store.raft.state in {s}"))
    }

    /// `store.leader.node_id`, `None` when there is no leader.
    pub fn leader_id(&self) -> Result<Option<String>, String> {
        let s = self.status()?;
        Ok(s["store"]["leader"]["node_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(String::from))
    }

    /// `GET /nodes?ver=2&nonvoters` → the `nodes` list.
    pub fn nodes(&self) -> Result<Vec<Value>, String> {
        let r = self
            .get("/nodes?ver=2&nonvoters&timeout=2s")
            .map_err(|e| e.to_string())?;
        let v = r.json()?;
        v["nodes"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no nodes list in {v}"))
    }

    /// `POST /db/execute` with a JSON body such as `["CREATE TABLE t (a)"]`.
    pub fn execute(&self, body: &str) -> io::Result<HttpResponse> {
        self.spec
            .client
            .post(&self.spec.http_addr, "/db/execute", body)
    }

    /// `GET /db/query?q=...` with extra query parameters (e.g. `&level=none`).
    pub fn query(&self, sql: &str, extra: &str) -> io::Result<HttpResponse> {
        self.get(&format!("/db/query?q={}{extra}", url_encode(sql)))
    }

    /// `DELETE /remove` with body `{"id":"<id>"}`.
    pub fn remove(&self, id: &str) -> io::Result<HttpResponse> {
        let body = serde_json::json!({ "id": id }).to_string();
        self.spec
            .client
            .delete(&self.spec.http_addr, "/remove", &body)
    }

    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let r = wait_until(
            &format!("{} /readyz 200", self.spec.id),
            timeout,
            || match self.readyz() {
                Some(200) => Ok(()),
                other => Err(format!("readyz {other:?}")),
            },
        );
        r.map_err(|e| format!("{e}\n{}", self.describe()))
    }

    /// Sends SIGTERM (via `kill`, keeping this crate free of unsafe code).
    pub fn sigterm(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -TERM failed: {status}")))
        }
    }

    /// SIGKILL and reap.
    pub fn sigkill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            if let Ok(s) = self.child.wait() {
                self.exit = Some(s);
            }
        }
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.exit = Some(s);
        }
        self.exit
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let id = self.spec.id.clone();
        let r = wait_until(&format!("{id} to exit"), timeout, || {
            self.try_exit().ok_or_else(|| "still running".to_string())
        });
        r.map_err(|e| format!("{e}\n{}", self.describe()))
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it is still running after 10 s.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        if let Some(s) = self.try_exit() {
            return Ok(s);
        }
        self.sigterm().map_err(|e| e.to_string())?;
        match self.wait_exit(Duration::from_secs(10)) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.sigkill();
                Err(e)
            }
        }
    }
}

impl Drop for Rqlited {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Index of the node that reports itself Leader, if exactly one does.
pub fn find_leader(nodes: &[Rqlited]) -> Result<usize, String> {
    let states: Vec<String> = nodes
        .iter()
        .map(|n| n.raft_state().unwrap_or_else(|e| format!("<{e}>")))
        .collect();
    let leaders: Vec<usize> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_str() == "Leader")
        .map(|(i, _)| i)
        .collect();
    match leaders.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!(
            "expected one leader, states: {:?}",
            nodes
                .iter()
                .map(|n| n.id())
                .zip(states.iter())
                .collect::<Vec<_>>()
        )),
    }
}

/// Starts `specs[0]` as a seed and waits until it is ready, then starts the others
/// one by one, each waited for. A spec without join targets is given
/// `-join <seed raft addr>`.
pub fn start_cluster(specs: Vec<NodeSpec>) -> Result<Vec<Rqlited>, String> {
    let mut nodes: Vec<Rqlited> = Vec::new();
    for (i, mut spec) in specs.into_iter().enumerate() {
        if i > 0 && spec.join.is_empty() {
            spec.join = vec![nodes[0].raft_addr().to_string()];
        }
        let mut n = Rqlited::start(spec).map_err(|e| e.to_string())?;
        n.wait_ready(Duration::from_secs(10))?;
        nodes.push(n);
    }
    Ok(nodes)
}
