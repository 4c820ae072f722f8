//! Every bad input a user tried exits 2 before anything starts, naming the flag — and the
//! environment variable when the value came from one. One row a case, run on the built `rq4d`
//! binary with a deadline: a binary that accepts a bad input and starts running fails its row
//! ("still running") instead of hanging the suite.
//!
//! A value that must be *accepted* is paired with a later error of another flag: the error
//! naming that other flag shows the value got through (rq4d checks flags in one order and
//! stops at the first bad one), without starting a node.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rq4d_tests::TempDir;
use rq4d_tests::cluster::{fresh_ip, rq4d_binary};

/// How long a row may take; every one of them is refused before any network wait.
const DEADLINE: Duration = Duration::from_secs(10);

/// One case: what the user ran, and what the error must say.
struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Every one must appear in the output.
    says: Vec<&'static str>,
    /// Run as this user (the suite runs as root: a user who may not write somewhere).
    uid: Option<u32>,
    /// The rq4d binary to run, when not the build's own (see [`reachable_copies`]).
    program: Option<PathBuf>,
}

fn case(name: &'static str, args: &[&str], says: &[&'static str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        says: says.to_vec(),
        uid: None,
        program: None,
    }
}

impl Case {
    fn env(mut self, name: &'static str, value: &str) -> Case {
        self.env.push((name, value.to_string()));
        self
    }

    /// Runs the row as `uid`, with the copies of the binaries that user can reach.
    fn run_by(mut self, uid: u32, copies: &Copies) -> Case {
        self.uid = Some(uid);
        self.program = Some(copies.rq4d.clone());
        self.args.extend([
            "--rqlited".to_string(),
            copies.rqlited.display().to_string(),
        ]);
        self
    }
}

/// The rq4d and rqlited binaries copied where any user can run them: the build's own sit in
/// the checkout, which may be in a directory only its owner can enter (`/root`, a `mktemp -d`).
struct Copies {
    rq4d: PathBuf,
    rqlited: PathBuf,
}

fn reachable_copies(dir: &Path) -> Copies {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let open = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    open(dir);
    open(&bin);
    let copy = |from: PathBuf, name: &str| {
        let to = bin.join(name);
        std::fs::copy(&from, &to).expect("copy a binary");
        open(&to);
        to
    };
    Copies {
        rq4d: copy(rq4d_binary(), "rq4d"),
        rqlited: copy(env!("CARGO_BIN_EXE_rqlited-double").into(), "rqlited"),
    }
}

/// A node that would run, were it not for the row's one bad input: its own loopback address,
/// a fresh data directory and an rqlited that exists.
fn runnable(dir: &Path) -> Vec<String> {
    let ip = fresh_ip();
    vec![
        "--expect".into(),
        "1".into(),
        "--gossip-bind".into(),
        format!("{ip}:0"),
        "--api-addr".into(),
        format!("{ip}:0"),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--rqlited".into(),
        env!("CARGO_BIN_EXE_rqlited-double").into(),
    ]
}

/// The base flags less those the row sets through their variable: a flag on the command line
/// would win over it.
fn without_the_rows_variables(base: Vec<String>, case: &Case) -> Vec<String> {
    let flags: Vec<String> = case
        .env
        .iter()
        .filter_map(|(name, _)| name.strip_prefix("RQ4D_"))
        .map(|flag| format!("--{}", flag.to_lowercase().replace('_', "-")))
        .collect();
    base.chunks(2)
        .filter(|pair| !flags.contains(&pair[0]))
        .flatten()
        .cloned()
        .collect()
}

/// Runs the row; `None` when it behaved, else what went wrong with the output seen.
fn run(case: &Case, base: &[String]) -> Option<String> {
    let mut command = Command::new(case.program.clone().unwrap_or_else(rq4d_binary));
    command
        .args(base)
        .args(&case.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("RQ4D_")) {
        command.env_remove(name);
    }
    for (name, value) in &case.env {
        command.env(name, value);
    }
    if let Some(uid) = case.uid {
        std::os::unix::process::CommandExt::uid(&mut command, uid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Some(format!("cannot start rq4d: {e}")),
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let out = child.wait_with_output().ok();
                let text = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                return Some(format!(
                    "still running after {DEADLINE:?}: the bad input was accepted; stderr: {}",
                    text.unwrap_or_default()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Some(format!("cannot wait for rq4d: {e}")),
        }
    };
    let out = child.wait_with_output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if status.code() != Some(2) {
        return Some(format!("exit {status} (want 2): {text}"));
    }
    let missing: Vec<_> = case.says.iter().filter(|s| !text.contains(**s)).collect();
    if !missing.is_empty() {
        return Some(format!("the error does not say {missing:?}: {text}"));
    }
    None
}

#[test]
fn every_bad_input_exits_2_naming_the_flag() {
    let dir = TempDir::new("bad-input").expect("temp dir");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").expect("write");
    let file = file.display().to_string();
    let tcp_ip = fresh_ip();
    let held_tcp = TcpListener::bind(format!("{tcp_ip}:0")).expect("bind");
    let tcp_port = held_tcp.local_addr().expect("addr").port().to_string();
    let held_udp = UdpSocket::bind(format!("{}:0", fresh_ip())).expect("bind");
    let udp_addr = held_udp.local_addr().expect("addr").to_string();
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).expect("mkdir");
    std::fs::write(corrupt.join("rq4d.json"), "{ not json").expect("write");
    let corrupt = corrupt.display().to_string();
    // A directory another user owns: as root, a fresh one of root's, tried as nobody (65534);
    // otherwise one of the system's.
    let root = running_as_root();
    let foreign = if root {
        let foreign = dir.join("roots");
        std::fs::create_dir_all(&foreign).expect("mkdir");
        foreign.display().to_string()
    } else {
        "/usr".to_string()
    };

    let cases = vec![
        // Values that do not parse.
        case(
            "huge --reap-after",
            &["--reap-after", "100000000000000000000000"],
            &["--reap-after"],
        ),
        case(
            "huge --settle",
            &["--settle", "100000000000000000000000"],
            &["--settle"],
        ),
        case(
            "--reap-after 0",
            &["--reap-after", "0"],
            &["--reap-after", "at least 1s"],
        ),
        case("a negative --expect", &["--expect", "-1"], &["--expect"]),
        case("--raft-port 0", &["--raft-port", "0"], &["--raft-port"]),
        case(
            "an IPv6 seed without brackets",
            &["--seeds", "::1:7946"],
            &["--seeds", "[::1]:7946"],
        ),
        case(
            "--api-addr on rqlited's HTTP port",
            &["--api-addr", "0.0.0.0:4001"],
            &["--api-addr", "--http-port"],
        ),
        case("a bad --log filter", &["--log", "garbage[[["], &["--log"]),
        case(
            "a bad --log-level",
            &["--log-level", "loud"],
            &["--log-level"],
        ),
        case(
            "members --api with a bad port",
            &["members", "--api", "127.0.0.1:99999"],
            &["--api"],
        ),
        // Values that parse but cannot work here: found before the gossip starts.
        case(
            "--rqlited missing",
            &["--rqlited", "/nonexistent/rqlited"],
            &["--rqlited"],
        ),
        case(
            "--rqlited a directory",
            &["--rqlited", "/tmp"],
            &["--rqlited", "directory"],
        ),
        case(
            "rqlited not on the PATH",
            &["--rqlited", "rqlited"],
            &["--rqlited", "PATH"],
        )
        .env("PATH", "/nonexistent"),
        case(
            "rqlited's HTTP port taken",
            &[
                "--gossip-bind",
                &format!("{tcp_ip}:0"),
                "--http-port",
                &tcp_port,
            ],
            &["--http-port", "in use"],
        ),
        case(
            "--gossip-bind not on this host",
            &["--gossip-bind", "192.0.2.1:7946"],
            &["--gossip-bind", "not an address of this host"],
        ),
        case(
            "--gossip-bind port taken",
            &["--gossip-bind", &udp_addr],
            &["--gossip-bind", "in use"],
        ),
        case(
            "--data-dir under a file",
            &["--data-dir", &format!("{file}/data")],
            &["--data-dir"],
        ),
        case(
            "--data-dir in /proc",
            &["--data-dir", "/proc/rq4d-data"],
            &["--data-dir"],
        ),
        {
            let row = case(
                "--data-dir of another user",
                &["--data-dir", &foreign],
                &["--data-dir", "belongs to uid", "chown"],
            );
            if root {
                row.run_by(65534, &reachable_copies(dir.path()))
            } else {
                row
            }
        },
        case(
            "a corrupt rq4d.json",
            &["--data-dir", &corrupt],
            &["--data-dir", "rq4d.json"],
        ),
        // rqlite's production settings (after --) that cannot work with rq4d.
        case("an even --voters", &["--voters", "4"], &["--voters", "odd"]),
        case(
            "--expect above --voters",
            &["--expect", "5", "--voters", "3", "--broadcast"],
            &["--expect", "--voters"],
        ),
        case(
            "-raft-non-voter passed through",
            &["--", "-raft-non-voter"],
            &["-raft-non-voter", "set by rq4d"],
        ),
        case(
            "-join-as passed through",
            &["--", "-join-as", "bob"],
            &["-join-as", "set by rq4d"],
        ),
        case(
            "-auth file missing",
            &["--", "-auth", "/nonexistent/auth.json"],
            &["-auth", "cannot read"],
        ),
        case(
            "-http-cert without --rqlite-ca-cert",
            &["--", "-http-cert", "c.pem", "-http-key", "k.pem"],
            &["--rqlite-ca-cert", "HTTPS"],
        ),
        case(
            "--rqlite-user without -auth",
            &["--rqlite-user", "ops"],
            &["--rqlite-user", "-auth"],
        ),
        case(
            "-http-verify-client",
            &[
                "--",
                "-http-verify-client",
                "-http-cert",
                "c",
                "-http-key",
                "k",
            ],
            &["-http-verify-client"],
        ),
        case("RQ4D_VOTERS=2", &[], &["--voters", "RQ4D_VOTERS"]).env("RQ4D_VOTERS", "2"),
        // Errors of values from the environment name the variable.
        case("RQ4D_EXPECT=abc", &[], &["--expect", "RQ4D_EXPECT"]).env("RQ4D_EXPECT", "abc"),
        case("RQ4D_LOG=garbage", &[], &["--log", "RQ4D_LOG"]).env("RQ4D_LOG", "garbage[[["),
        case(
            "RQ4D_REAP_AFTER=0",
            &[],
            &["--reap-after", "RQ4D_REAP_AFTER"],
        )
        .env("RQ4D_REAP_AFTER", "0"),
        case(
            "RQ4D_DATA_DIR in /proc",
            &[],
            &["--data-dir", "RQ4D_DATA_DIR"],
        )
        .env("RQ4D_DATA_DIR", "/proc/rq4d"),
        case(
            "RQ4D_VOLATILE=yes without a key",
            &[],
            &["--volatile", "RQ4D_VOLATILE"],
        )
        .env("RQ4D_VOLATILE", "yes"),
        case("RQ4D_API=bad", &["members"], &["--api", "RQ4D_API"]).env("RQ4D_API", "nowhere"),
        // Accepted spellings: the error is the later flag's, so these got through.
        case(
            "RQ4D_BROADCAST=1 accepted",
            &["--reap-after", "0"],
            &["--reap-after"],
        )
        .env("RQ4D_BROADCAST", "1"),
        case(
            "RQ4D_BROADCAST=yes accepted",
            &["--reap-after", "0"],
            &["--reap-after"],
        )
        .env("RQ4D_BROADCAST", "yes"),
        case(
            "RQ4D_LOG_FORMAT=JSON accepted",
            &["--reap-after", "0"],
            &["--reap-after"],
        )
        .env("RQ4D_LOG_FORMAT", "JSON"),
        case(
            "--reap-after 1m30s accepted",
            &["--reap-after", "1m30s", "--raft-port", "0"],
            &["--raft-port"],
        ),
        case(
            "a bad RQ4D_BROADCAST named",
            &[],
            &["--broadcast", "RQ4D_BROADCAST"],
        )
        .env("RQ4D_BROADCAST", "maybe"),
    ];
    let mut failed = Vec::new();
    for case in &cases {
        // `members` takes no node flags.
        let base = if case.args.first().is_some_and(|a| a == "members") {
            Vec::new()
        } else {
            without_the_rows_variables(runnable(&dir.join(&case.name.replace(' ', "-"))), case)
        };
        match run(case, &base) {
            None => println!("ok    {}", case.name),
            Some(why) => {
                println!("FAIL  {}: {why}", case.name);
                failed.push(case.name);
            }
        }
    }
    drop((held_tcp, held_udp));
    assert!(
        failed.is_empty(),
        "{} of {} rows failed: {failed:?}",
        failed.len(),
        cases.len()
    );
}

/// True when the suite runs as root (the owner of `/proc/self`, without a libc call).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
