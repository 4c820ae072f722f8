//! Real `rq4d` processes on loopback, each on its own 127.x.y.z address (so every node uses the
//! default ports, like containers do), with rqlited from `$RQLITED` or the test double.
//!
//! The harness only starts, stops and observes; every check is a condition polled with a
//! deadline, and a failure prints every node's members table and log tail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{HttpClient, TempDir, http_get, rqlited_binary, wait_until};

/// Generous: a 2-core machine running other tests in parallel.
pub const FORM_DEADLINE: Duration = Duration::from_secs(90);

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A loopback address no other node of this test process uses. The second octet is derived from
/// the process id so that test binaries running one after another do not meet old sockets.
pub fn fresh_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let second = 20 + std::process::id() % 200;
    format!("127.{second}.{}.{}", n / 250, n % 250 + 1)
}

/// The `rq4d` binary: `$RQ4D_BIN`, else next to the running test executable (cargo puts both in
/// `target/<profile>/`).
pub fn rq4d_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RQ4D_BIN") {
        return PathBuf::from(path);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let candidate = dir.join("rq4d");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("rq4d")
}

/// One rq4d process.
pub struct Rq4d {
    /// Its node id.
    pub id: String,
    /// Its loopback address (gossip :7946, rqlited :4001/:4002, API :7947).
    pub ip: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// How its rqlited is reached (HTTPS and credentials when rqlited has them on).
    pub client: HttpClient,
    log: PathBuf,
    child: Child,
}

impl Rq4d {
    /// The status API address.
    pub fn api(&self) -> String {
        format!("{}:7947", self.ip)
    }

    /// rqlited's HTTP address.
    pub fn http(&self) -> String {
        format!("{}:4001", self.ip)
    }

    /// The gossip address.
    pub fn gossip(&self) -> String {
        format!("{}:7946", self.ip)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/members` as JSON.
    pub fn members(&self) -> Result<Value, String> {
        let response = http_get(&self.api(), "/members").map_err(|e| e.to_string())?;
        response.json()
    }

    /// `/health`: status code and body.
    pub fn health(&self) -> Result<(u16, String), String> {
        let response = http_get(&self.api(), "/health").map_err(|e| e.to_string())?;
        Ok((response.status, response.body))
    }

    /// `/metrics` text.
    pub fn metrics(&self) -> Result<String, String> {
        let response = http_get(&self.api(), "/metrics").map_err(|e| e.to_string())?;
        Ok(response.body)
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64, String> {
        let text = self.metrics()?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// rqlited's `/status` through its HTTP address.
    pub fn rqlite_status(&self) -> Result<Value, String> {
        self.rqlite("/status")
    }

    /// A GET of rqlited's HTTP API, as JSON.
    pub fn rqlite(&self, path: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(&self.http(), path)
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("{path}: {} {}", response.status, response.body));
        }
        response.json()
    }

    /// The Raft members rqlited lists (`/nodes?nonvoters`): voters and non-voters by id.
    pub fn raft_roles(&self) -> Result<RaftRoles, String> {
        let nodes = self.rqlite("/nodes?ver=2&nonvoters")?;
        let mut roles = RaftRoles::default();
        for node in nodes["nodes"].as_array().into_iter().flatten() {
            let id = node["id"].as_str().unwrap_or_default().to_string();
            if node["voter"].as_bool() == Some(true) {
                roles.voters.insert(id);
            } else {
                roles.non_voters.insert(id);
            }
        }
        Ok(roles)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL (a crash); its rqlited child is killed too, as in a container.
    pub fn kill(&mut self) {
        let children = child_pids(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in children {
            signal(pid, "KILL");
        }
    }

    /// SIGKILL of rq4d alone, as `kill -9` does outside a container: its rqlited is left running.
    pub fn kill_alone(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM.
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }

    /// SIGHUP (re-read the keyring file).
    pub fn hangup(&self) {
        signal(self.pid(), "HUP");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                return Err(format!("{} still running after {timeout:?}", self.id));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Rq4d {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
    }
}

/// Pids of the direct children of `pid` (from /proc).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// True when a process with `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// The members of a Raft configuration, by role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftRoles {
    /// Voters' ids.
    pub voters: BTreeSet<String>,
    /// Non-voters' ids.
    pub non_voters: BTreeSet<String>,
}

/// A set of rq4d nodes that find each other through a static seed list.
pub struct Cluster {
    dir: TempDir,
    /// Nodes by id.
    pub nodes: BTreeMap<String, Rq4d>,
    seeds: Vec<String>,
    expect: u16,
    extra: Vec<String>,
    client: HttpClient,
}

impl Cluster {
    /// Prepares `slots` addresses (the seed list every node gets) for nodes expecting `expect`.
    pub fn new(label: &str, slots: usize, expect: u16) -> Self {
        let seeds = (0..slots).map(|_| format!("{}:7946", fresh_ip())).collect();
        Self {
            dir: TempDir::new(label).expect("temp dir"),
            nodes: BTreeMap::new(),
            seeds,
            expect,
            extra: Vec::new(),
            client: HttpClient::plain(),
        }
    }

    /// How the nodes started from now on reach their rqlited (HTTPS, credentials).
    pub fn with_client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }

    /// `n` nodes `n1`… expecting `n`, started together with `args`, formed into one cluster;
    /// returns the cluster and its leader (panics with the report if it does not form).
    pub fn formed(label: &str, n: usize, args: &[&str]) -> (Self, String) {
        let mut cluster = Self::new(label, n, n as u16).with_args(args);
        for slot in 0..n {
            cluster.start(&format!("n{}", slot + 1), slot);
        }
        let leader = cluster.wait_one_cluster(FORM_DEADLINE);
        (cluster, leader)
    }

    /// Extra rq4d flags for every node started from now on.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Replaces the extra rq4d flags for nodes started from now on.
    pub fn set_args(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|a| a.to_string()).collect();
    }

    /// Gives every slot a new address (a whole cluster coming back on new IPs); nodes started
    /// from now on get the new seed list.
    pub fn renumber(&mut self) {
        self.seeds = (0..self.seeds.len())
            .map(|_| format!("{}:7946", fresh_ip()))
            .collect();
    }

    /// The seed slot addresses.
    pub fn seed_ips(&self) -> Vec<String> {
        self.seeds
            .iter()
            .map(|s| s.trim_end_matches(":7946").to_string())
            .collect()
    }

    /// Starts node `id` at `ip` with data in `<dir>/<data>`.
    pub fn start_at(&mut self, id: &str, ip: &str, data: &str) -> &mut Rq4d {
        self.start_as(id, id, ip, data)
    }

    /// Starts a process with node id `id` at `ip`, data in `<dir>/<data>`, kept under `key`
    /// (another than its id when it copies a live member's id).
    pub fn start_as(&mut self, key: &str, id: &str, ip: &str, data: &str) -> &mut Rq4d {
        let data_dir = self.dir.join(data);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let log = self.dir.join(&format!("{key}-{ip}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(rq4d_binary());
        command
            .arg("--node-id")
            .arg(id)
            .arg("--expect")
            .arg(self.expect.to_string())
            .arg("--gossip-bind")
            .arg(format!("{ip}:7946"))
            .arg("--api-addr")
            .arg(format!("{ip}:7947"))
            .arg("--seeds")
            .arg(self.seeds.join(","))
            .arg("--rqlited")
            .arg(rqlited_binary())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.extra)
            // `RQ4D_TEST_LOG=info` keeps rqlited's own lines in the node logs
            // (with `RQ4D_KEEP_TEST_DIRS=1`, for a post-mortem of its notification rounds).
            .env(
                "RQ4D_LOG",
                std::env::var("RQ4D_TEST_LOG").unwrap_or_else(|_| "info,rqlited=warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); build it with `cargo build -p rq4d` or set RQ4D_BIN",
                rq4d_binary().display()
            )
        });
        let node = Rq4d {
            id: id.to_string(),
            ip: ip.to_string(),
            data_dir,
            client: self.client.clone(),
            log,
            child,
        };
        self.nodes.insert(key.to_string(), node);
        self.nodes.get_mut(key).expect("just inserted")
    }

    /// The seed list every node is given (`ip:7946`, comma-separated).
    pub fn seed_list(&self) -> String {
        self.seeds.join(",")
    }

    /// The directory the cluster's data and logs live in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops tracking the process under `key` without killing it (it was already stopped), so
    /// that checks over the running nodes no longer see it.
    pub fn forget(&mut self, key: &str) -> Option<Rq4d> {
        self.nodes.remove(key)
    }

    /// Starts node `id` in seed slot `slot`, data in `<dir>/<id>`.
    pub fn start(&mut self, id: &str, slot: usize) -> &mut Rq4d {
        let ip = self.seed_ips()[slot].clone();
        self.start_at(id, &ip, id)
    }

    /// A node other than `leader` (the first by id).
    pub fn a_follower(&self, leader: &str) -> String {
        self.nodes
            .keys()
            .find(|id| *id != leader)
            .cloned()
            .expect("a follower")
    }

    /// The node with `id`.
    pub fn node(&mut self, id: &str) -> &mut Rq4d {
        self.nodes.get_mut(id).expect("known node")
    }

    /// Ids of the nodes whose process runs.
    pub fn running_ids(&mut self) -> BTreeSet<String> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, node)| node.running().then(|| id.clone()))
            .collect()
    }

    /// Checks once: every running node's rqlited is ready, all report one leader, and the
    /// leader's voters are exactly the running nodes. Returns the leader's id.
    pub fn check_one_cluster(&mut self) -> Result<String, String> {
        let running = self.running_ids();
        self.check_cluster_of(&running)
    }

    /// [`Cluster::check_one_cluster`] over the nodes kept under `keys` only (each a node id):
    /// every one healthy and seeing one leader, whose voters are exactly these.
    pub fn check_cluster_of(&mut self, keys: &BTreeSet<String>) -> Result<String, String> {
        let leader = self.one_leader(keys)?;
        let voters = self.nodes[&leader].raft_roles()?.voters;
        if voters != *keys {
            return Err(format!(
                "voters {voters:?} are not the running nodes {keys:?}"
            ));
        }
        Ok(leader)
    }

    /// The one leader the nodes kept under `keys` see, each of them healthy; the leader is one
    /// of them.
    fn one_leader(&self, keys: &BTreeSet<String>) -> Result<String, String> {
        let mut leaders = BTreeSet::new();
        for id in keys {
            let node = &self.nodes[id];
            let (code, body) = node.health()?;
            if code != 200 {
                return Err(format!("{id} /health {code}: {body}"));
            }
            let status = node.rqlite_status()?;
            let leader = status["store"]["leader"]["node_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if leader.is_empty() {
                return Err(format!("{id} sees no leader"));
            }
            leaders.insert(leader);
        }
        if leaders.len() != 1 {
            return Err(format!("more than one leader seen: {leaders:?}"));
        }
        let leader = leaders.into_iter().next().unwrap_or_default();
        if !keys.contains(&leader) {
            return Err(format!(
                "the leader {leader} is not one of the running nodes"
            ));
        }
        Ok(leader)
    }

    /// Checks once, for clusters with non-voters (read-only replicas, a voter cap): every
    /// running node is healthy and sees one leader, whose configuration holds exactly the
    /// running nodes, `voters` of them as voters. Returns the leader and the roles.
    pub fn check_members(&mut self, voters: usize) -> Result<(String, RaftRoles), String> {
        let running = self.running_ids();
        let leader = self.one_leader(&running)?;
        let roles = self.nodes[&leader].raft_roles()?;
        let members: BTreeSet<String> = roles.voters.union(&roles.non_voters).cloned().collect();
        if members != running {
            return Err(format!(
                "members {roles:?} are not the running nodes {running:?}"
            ));
        }
        if roles.voters.len() != voters {
            return Err(format!(
                "{} voters, not {voters}: {roles:?}",
                roles.voters.len()
            ));
        }
        Ok((leader, roles))
    }

    /// Waits until [`Cluster::check_members`] holds; panics with every node's table and log.
    pub fn wait_members(&mut self, voters: usize, deadline: Duration) -> (String, RaftRoles) {
        let result = wait_until(
            &format!("one cluster of the running nodes, {voters} of them voters"),
            deadline,
            || self.check_members(voters),
        );
        result.unwrap_or_else(|e| panic!("{e}\n{}", self.report()))
    }

    /// Waits until [`Cluster::check_one_cluster`] holds; panics with every node's table and log.
    pub fn wait_one_cluster(&mut self, deadline: Duration) -> String {
        let result = wait_until("one cluster of all running nodes", deadline, || {
            self.check_one_cluster()
        });
        match result {
            Ok(leader) => leader,
            Err(error) => panic!("{error}\n{}", self.report()),
        }
    }

    /// Waits until a running node sees a leader other than `gone` (after `gone` died or left);
    /// panics with the report otherwise.
    pub fn wait_leader_besides(&mut self, gone: &str, deadline: Duration) -> String {
        let observer = self
            .running_ids()
            .into_iter()
            .find(|id| id != gone)
            .expect("a running node");
        let result = wait_until("a leader among the rest", deadline, || {
            let status = self.nodes[&observer].rqlite_status()?;
            match status["store"]["leader"]["node_id"].as_str() {
                Some(id) if !id.is_empty() && id != gone => Ok(id.to_string()),
                other => Err(format!("{observer} sees leader {other:?}")),
            }
        });
        result.unwrap_or_else(|e| panic!("{e}\n{}", self.report()))
    }

    /// The cluster ids the running nodes' own cards name (`null` for none).
    pub fn cluster_ids(&mut self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for id in self.running_ids() {
            let Ok(doc) = self.nodes[&id].members() else {
                ids.insert(format!("{id}: no /members"));
                continue;
            };
            let own = doc["members"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["state"].as_str() == Some("self"))
                .map(|m| m["card"]["cluster_id"].to_string());
            ids.insert(own.unwrap_or_else(|| format!("{id}: no own card")));
        }
        ids
    }

    /// Every node's members table (from its API) and log tail.
    pub fn report(&mut self) -> String {
        let mut out = String::new();
        for (id, node) in &mut self.nodes {
            let state = if node.running() { "running" } else { "stopped" };
            out.push_str(&format!("==== {id} at {} ({state})\n", node.ip));
            if state == "running" {
                match node.members() {
                    Ok(doc) => out.push_str(&members_table(&doc)),
                    Err(e) => out.push_str(&format!("(no /members: {e})\n")),
                }
            }
            let log = node.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            for line in tail.into_iter().rev() {
                out.push_str("   | ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// A compact members table from a `/members` document.
pub fn members_table(doc: &Value) -> String {
    let mut out = format!("decision: {}\n", doc["decision"].as_str().unwrap_or("?"));
    for member in doc["members"].as_array().into_iter().flatten() {
        let card = &member["card"];
        let db = match &card["db"] {
            Value::String(s) => s.clone(),
            Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(","),
            _ => "?".into(),
        };
        let leader = card["db"]["Running"]["leader"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "  {:<10} {:<18} {:<6} db={:<9} leader={:<8} cluster={}\n",
            member["node_id"].as_str().unwrap_or("?"),
            member["gossip_addr"].as_str().unwrap_or("?"),
            member["state"].as_str().unwrap_or("?"),
            db,
            leader,
            card["cluster_id"]
        ));
    }
    out
}

/// Sends `count` datagrams of random bytes (some rq4d-shaped) to `target`.
pub fn flood(target: &str, count: usize) -> std::io::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let mut x: u64 = 0x1234_5678_9abc_def1 ^ u64::from(std::process::id());
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..count {
        let len = (next() % 1500) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && bytes.len() >= 13 {
            // Valid magic and version, garbage after: reaches deeper parsing.
            bytes[0] = b'R';
            bytes[1] = b'4';
            bytes[2] = rq4d_protocol::wire::VERSION;
            bytes[3] = if i % 2 == 0 {
                0
            } else {
                rq4d_protocol::seal::SEAL_PREFIX as u8
            };
        }
        let _ = socket.send_to(&bytes, target);
    }
    Ok(())
}
