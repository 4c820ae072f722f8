//! Test harness for rq4d.
//!
//! - [`double`]: the `rqlited-double` binary's implementation, a stand-in for real
//!   `rqlited` (membership, leadership and HTTP; no replication).
//! - Reusable helpers for integration tests that run `rqlited` processes (the double,
//!   or the real server when the `RQLITED` environment variable names its binary):
//!   free loopback ports, temporary directories, polling with deadlines, a minimal
//!   blocking HTTP/1.1 client, and the [`Rqlited`] process launcher.
//!
//! The helpers are blocking on purpose: tests read as a sequence of steps, and
//! every wait has a deadline and reports what it last saw, so a failure says why.

pub mod cluster;
pub mod double;
pub mod forge;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

// ---------------------------------------------------------------------------
// Ports and directories.

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn pseudo_random() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t
        ^ (u64::from(std::process::id()) << 20)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// A TCP port on 127.0.0.1 that is free right now and that this process has not
/// handed out before.
///
/// Ports are drawn from 20000–32767, below Linux's ephemeral range (32768+), so
/// the many short outgoing connections that nodes make can never occupy a port a
/// test is about to give to a node.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    loop {
        let port = 20_000 + (pseudo_random() % 12_768) as u16;
        if used.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.insert(port);
            return port;
        }
    }
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A directory under the system temp dir, removed on drop. Set
/// `RQ4D_KEEP_TEST_DIRS=1` to keep it for a post-mortem (its path is printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "rq4d-test-{label}-{}-{}",
            std::process::id(),
            pseudo_random() % 1_000_000
        ));
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<name>`, e.g. a node's data directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RQ4D_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping test directory {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// Polling.

/// Calls `probe` every 20 ms until it returns `Ok` or `timeout` passes. The error
/// names `what` and carries the probe's last `Err` text, so an assertion failure
/// shows what the test actually saw instead of a bare "timed out".
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut last;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| {
            format!(
                "status {} body {:?} is not JSON: {e}",
                self.status, self.body
            )
        })
    }
}

/// Sends one request with `Connection: close` and reads the whole answer. Handles
/// `Content-Length` and chunked bodies (real rqlited sends `/status` chunked).
pub fn http_request(
    method: &str,
    addr: &str,
    path_and_query: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let sock = addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {addr}"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rq4d-tests\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_http_response(&raw)
}

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse_http_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad_data("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad_data(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad_data("truncated chunk size"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad_data(format!("bad chunk size {size_text:?}")))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err(bad_data("truncated chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        out
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// Default per-request timeout of the helpers below.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn http_get(addr: &str, path_and_query: &str) -> io::Result<HttpResponse> {
    http_request("GET", addr, path_and_query, None, HTTP_TIMEOUT)
}

pub fn http_post(addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
    http_request("POST", addr, path_and_query, Some(body), HTTP_TIMEOUT)
}

pub fn http_delete(addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
    http_request("DELETE", addr, path_and_query, Some(body), HTTP_TIMEOUT)
}

/// Percent-encodes a query-string value (for `/db/query?q=`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The rqlited launcher.

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
        http_get(&self.spec.http_addr, path_and_query)
    }

    /// HTTP status of `/readyz`, or `None` when the HTTP server does not answer.
    pub fn readyz(&self) -> Option<u16> {
        http_request(
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
        http_post(&self.spec.http_addr, "/db/execute", body)
    }

    /// `GET /db/query?q=...` with extra query parameters (e.g. `&level=none`).
    pub fn query(&self, sql: &str, extra: &str) -> io::Result<HttpResponse> {
        self.get(&format!("/db/query?q={}{extra}", url_encode(sql)))
    }

    /// `DELETE /remove` with body `{"id":"<id>"}`.
    pub fn remove(&self, id: &str) -> io::Result<HttpResponse> {
        let body = serde_json::json!({ "id": id }).to_string();
        http_delete(&self.spec.http_addr, "/remove", &body)
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
