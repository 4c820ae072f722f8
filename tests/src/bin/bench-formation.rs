//! Benchmark (a report, not a test): cold start to a ready cluster, and rq4d's idle cost.
//!
//! ```text
//! cargo build --release -p rq4d -p rq4d-tests --bins
//! target/release/bench-formation [--runs 5] [--sizes 3,5] [--idle-secs 30] [--rq4d-args '--settle 250ms']
//! ```
//!
//! For each N: N rq4d processes started at once on their own loopback addresses; the time from
//! the first spawn until every node's rqlited answers `/readyz` with 200, and rq4d's own part of
//! it: from the first spawn until the last node started its rqlited (from each node's log), the
//! gossip and the bootstrap agreement. Beside it, rqlited's own
//! auto-clustering: N rqlited started at once with `-bootstrap-expect N` and a static `-join`
//! list of all of them, timed the same way; and the formation an operator makes by hand, with one
//! bootstrapper as rq4d has: a lone seed started without `-join`, and once it is ready the others
//! with `-join` to it, timed from the seed's spawn. Raft elects the first leader when the first
//! election timer of a bootstrapped node runs out: `-bootstrap-expect` started at once
//! bootstraps every node and draws the earliest of N timers, one seed has one timer, so the lone
//! seed is the floor for any formation with one bootstrapper. rqlited is `$RQLITED` when set;
//! otherwise the test double, whose timings imitate rqlited's but are not rqlited's — the table
//! says which ran. Then the idle RSS and CPU of one rq4d process of a formed 3-node cluster.

use std::time::{Duration, Instant, SystemTime};

use rq4d_tests::cluster::{Cluster, child_pids, fresh_ip};
use rq4d_tests::{NodeSpec, Rqlited, TempDir, http_get, rqlited_binary, wait_until};

struct Options {
    /// Extra rq4d flags (e.g. `--settle 250ms`).
    rq4d_args: Vec<String>,
    runs: usize,
    sizes: Vec<usize>,
    idle_secs: u64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        rq4d_args: Vec::new(),
        runs: 5,
        sizes: vec![3, 5],
        idle_secs: 30,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rq4d-args" => {
                options.rq4d_args = value.split_whitespace().map(str::to_string).collect()
            }
            "--runs" => options.runs = value.parse().map_err(|_| "--runs: a number")?,
            "--idle-secs" => {
                options.idle_secs = value.parse().map_err(|_| "--idle-secs: a number")?
            }
            "--sizes" => {
                options.sizes = value
                    .split(',')
                    .map(|s| {
                        s.parse()
                            .map_err(|_| "--sizes: numbers like 3,5".to_string())
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

fn ready(http: &str) -> Result<(), String> {
    match http_get(http, "/readyz") {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("{http} readyz {}", r.status)),
        Err(e) => Err(format!("{http}: {e}")),
    }
}

/// Waits until every rqlited in `https` answers `/readyz` with 200.
fn all_ready(https: &[String]) -> Result<(), String> {
    wait_until("every rqlited ready", Duration::from_secs(60), || {
        https.iter().try_for_each(|h| ready(h))
    })
}

/// A bare rqlited `n{i+1}` on `ip` (HTTP 4001, Raft 4002), data under `dir`.
fn bare_spec(dir: &TempDir, i: usize, ip: &str) -> NodeSpec {
    let mut spec = NodeSpec::new(&format!("n{}", i + 1), dir.join(&format!("n{i}")));
    spec.http_addr = format!("{ip}:4001");
    spec.raft_addr = format!("{ip}:4002");
    spec
}

/// One rq4d formation: until every rqlited is ready, and until the last rqlited was started.
struct Formed {
    ready: Duration,
    started: Duration,
}

/// rq4d: spawn N at once, time until every rqlited is ready.
fn rq4d_run(n: usize, args: &[String]) -> Result<Formed, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cluster = Cluster::new("bench", n, n as u16).with_args(&args);
    let wall = SystemTime::now();
    let start = Instant::now();
    // Ids in the reverse order of the addresses: Docker hands out IPs in the order containers
    // start, so the smallest id (the agreement's seed) may well hold the largest address.
    for slot in 0..n {
        cluster.start(&format!("n{}", n - slot), slot);
    }
    let https: Vec<String> = cluster.nodes.values().map(|n| n.http()).collect();
    all_ready(&https)?;
    let ready = start.elapsed();
    let mut started = Duration::ZERO;
    for node in cluster.nodes.values() {
        let at = rqlited_started_at(&node.log())
            .ok_or_else(|| format!("{}: no \"starting rqlited\" in its log", node.id))?;
        started = started.max(at.duration_since(wall).unwrap_or_default());
    }
    Ok(Formed { ready, started })
}

/// When a node's log says it started rqlited (its first `starting rqlited` line's timestamp).
fn rqlited_started_at(log: &str) -> Option<SystemTime> {
    let line = log.lines().find(|l| l.contains("starting rqlited"))?;
    humantime::parse_rfc3339_weak(line.split_whitespace().next()?.trim_end_matches('Z')).ok()
}

/// rqlited's own: `-bootstrap-expect N -join <all>`, spawned at once.
fn bootstrap_expect_run(n: usize) -> Result<Duration, String> {
    let dir = TempDir::new("bench-expect").map_err(|e| e.to_string())?;
    let ips: Vec<String> = (0..n).map(|_| fresh_ip()).collect();
    let joins: Vec<String> = ips.iter().map(|ip| format!("{ip}:4002")).collect();
    let join_refs: Vec<&str> = joins.iter().map(String::as_str).collect();
    let expect = n.to_string();
    let start = Instant::now();
    let mut nodes = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let spec = bare_spec(&dir, i, ip)
            .join(&join_refs)
            .args(&["-bootstrap-expect", &expect]);
        nodes.push(Rqlited::start(spec).map_err(|e| e.to_string())?);
    }
    let https: Vec<String> = ips.iter().map(|ip| format!("{ip}:4001")).collect();
    all_ready(&https)?;
    Ok(start.elapsed())
}

/// By hand, one bootstrapper: a lone seed without `-join`; once it is ready, the others at once
/// with `-join` to it. Timed from the seed's spawn until every rqlited is ready.
fn lone_seed_run(n: usize) -> Result<Duration, String> {
    let dir = TempDir::new("bench-seed").map_err(|e| e.to_string())?;
    let ips: Vec<String> = (0..n).map(|_| fresh_ip()).collect();
    let seed_raft = format!("{}:4002", ips[0]);
    let https: Vec<String> = ips.iter().map(|ip| format!("{ip}:4001")).collect();
    let start = Instant::now();
    let mut nodes = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let mut spec = bare_spec(&dir, i, ip);
        if i > 0 {
            spec = spec.join(&[&seed_raft]);
        }
        nodes.push(Rqlited::start(spec).map_err(|e| e.to_string())?);
        if i == 0 {
            wait_until("the seed ready", Duration::from_secs(60), || {
                ready(&https[0])
            })?;
        }
    }
    all_ready(&https)?;
    Ok(start.elapsed())
}

fn summary(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let secs = |d: Duration| d.as_secs_f64();
    let median = secs(samples[samples.len() / 2]);
    (secs(samples[0]), median, secs(samples[samples.len() - 1]))
}

/// Memory (kB) and CPU seconds (utime + stime) of a process.
struct Usage {
    /// VmRSS: every resident page, the binary's and libc's included.
    rss: u64,
    /// RssAnon: the pages this process alone owns (heap, stacks, relocated data). The rest of
    /// the RSS is file-backed: the code of the binary and of libc, shared by every process
    /// that maps the same file and dropped by the kernel under pressure.
    anon: u64,
    cpu: f64,
}

fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(Usage {
        rss: kb("VmRSS:")?,
        anon: kb("RssAnon:")?,
        cpu: ticks / 100.0,
    })
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-formation: {e}");
            std::process::exit(2);
        }
    };
    let which = if std::env::var_os("RQLITED").is_some() {
        format!("real rqlited ({})", rqlited_binary().display())
    } else {
        "the rqlited TEST DOUBLE (set RQLITED=/path/to/rqlited for real figures)".to_string()
    };
    println!(
        "rqlited: {which}; {} runs per size; rq4d flags: {:?}\n",
        options.runs, options.rq4d_args
    );
    println!(
        "| N | rq4d min / median / max (s) | -bootstrap-expect min / median / max (s) | ratio of medians | ratio of maxima | lone seed, then -join: min / median / max (s) | ratio of medians to it | rq4d's part: spawn → last rqlited started, median / max (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &options.sizes {
        let mut ours = Vec::new();
        let mut ours_started = Vec::new();
        let mut theirs = Vec::new();
        let mut by_hand = Vec::new();
        for _ in 0..options.runs {
            match rq4d_run(n, &options.rq4d_args) {
                Ok(formed) => {
                    ours.push(formed.ready);
                    ours_started.push(formed.started);
                }
                Err(e) => eprintln!("rq4d run failed: {e}"),
            }
            match bootstrap_expect_run(n) {
                Ok(d) => theirs.push(d),
                Err(e) => eprintln!("-bootstrap-expect run failed: {e}"),
            }
            match lone_seed_run(n) {
                Ok(d) => by_hand.push(d),
                Err(e) => eprintln!("lone seed run failed: {e}"),
            }
        }
        if ours.is_empty() || theirs.is_empty() || by_hand.is_empty() {
            println!("| {n} | failed | failed | - | - | failed | - | - |");
            continue;
        }
        let (a0, a1, a2) = summary(&mut ours);
        let (b0, b1, b2) = summary(&mut theirs);
        let (c0, c1, c2) = summary(&mut by_hand);
        let (_, s1, s2) = summary(&mut ours_started);
        println!(
            "| {n} | {a0:.2} / {a1:.2} / {a2:.2} | {b0:.2} / {b1:.2} / {b2:.2} | {:.2} | {:.2} | {c0:.2} / {c1:.2} / {c2:.2} | {:.2} | {s1:.3} / {s2:.3} |",
            a1 / b1,
            a2 / b2,
            a1 / c1
        );
    }

    let mut cluster = Cluster::new("bench-idle", 3, 3);
    for slot in 0..3 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    cluster.wait_one_cluster(Duration::from_secs(60));
    let node = cluster.node("n1");
    let pid = node.pid();
    let child = child_pids(pid).first().copied();
    std::thread::sleep(Duration::from_secs(5));
    let Some(before) = usage(pid) else {
        eprintln!("cannot read /proc/{pid}");
        return;
    };
    std::thread::sleep(Duration::from_secs(options.idle_secs));
    let Some(after) = usage(pid) else {
        return;
    };
    let share = (after.cpu - before.cpu) / options.idle_secs as f64 * 100.0;
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "\nidle rq4d (3-node cluster, {}s window): RSS {:.1} MB, of which its own (anonymous) {:.1} MB \
         and file-backed (the binary's and libc's code, shared) {:.1} MB; CPU {share:.2} % of one core",
        options.idle_secs,
        mb(after.rss),
        mb(after.anon),
        mb(after.rss - after.anon),
    );
    if let Some(child) = child.and_then(usage) {
        println!(
            "its rqlited child (for scale): RSS {:.1} MB, its own {:.1} MB",
            mb(child.rss),
            mb(child.anon)
        );
    }
}
