//! The double's command line behaves like rqlited's Go `flag` parsing.
//!
//! Every child here runs under a deadline: a real rqlited (`RQLITED=...`) that
//! behaves differently must fail a test, never hang the suite.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, ok, tempdir};
use rq4d_tests::{HttpClient, free_addr, wait_until};

/// Longest any command of this file may run before it counts as hanging.
const DEADLINE: Duration = Duration::from_secs(15);

/// A child process killed (and reaped) when dropped, so a failed assertion
/// never leaves it running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary in `cwd` with its output going to `<cwd>/out.log`.
fn spawn(args: &[&str], cwd: &Path) -> Guard {
    let log = File::create(cwd.join("out.log")).expect("create log");
    let child = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    Guard(child)
}

fn output(cwd: &Path) -> String {
    std::fs::read_to_string(cwd.join("out.log")).unwrap_or_default()
}

/// Runs the binary to its end within [`DEADLINE`] (in a scratch working
/// directory, so that a server that takes the working directory as its data
/// directory writes nowhere that matters); kills it and fails with what it
/// printed if it is still running then.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let cwd = tempdir("cli-run");
    let mut child = spawn(args, cwd.path());
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return (status.code(), output(cwd.path()));
        }
        if started.elapsed() > DEADLINE {
            drop(child);
            panic!(
                "{args:?} still running after {DEADLINE:?}; it printed:\n{}",
                output(cwd.path())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn unknown_flag_exits_2_like_go() {
    let dir = tempdir("cli");
    let data = dir.join("data").display().to_string();
    let (code, out) = run(&["-x", &data]);
    assert_eq!(code, Some(2), "output: {out}");
    assert!(
        out.contains("flag provided but not defined: -x"),
        "output: {out}"
    );
    assert!(
        !dir.join("data").exists(),
        "no data dir may be created on a flag error"
    );
}

#[test]
fn flag_without_its_value_exits_2() {
    let (code, out) = run(&["-node-id"]);
    assert_eq!(code, Some(2), "output: {out}");
    assert!(
        out.contains("flag needs an argument: -node-id"),
        "output: {out}"
    );
}

#[test]
fn bad_duration_exits_2() {
    let (code, out) = run(&["-join-interval", "3", "data"]);
    assert_eq!(code, Some(2), "output: {out}");
    assert!(
        out.contains("invalid value \"3\" for flag -join-interval"),
        "output: {out}"
    );
}

/// rqlited v8.43.3 given flags but no data directory does not exit: it takes
/// the working directory as its data directory and bootstraps a one-node
/// cluster there (observed; see docs/rqlited.md).
#[test]
fn without_a_data_directory_the_working_directory_becomes_the_data_directory() {
    let cwd = tempdir("cli-no-data-dir");
    let (http, raft) = (free_addr(), free_addr());
    let mut child = spawn(
        &["-node-id", "n1", "-http-addr", &http, "-raft-addr", &raft],
        cwd.path(),
    );
    let seen = wait_until(
        "a leader serving from the working directory",
        DEADLINE,
        || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("exited ({status}); output:\n{}", output(cwd.path()));
            }
            let r = HttpClient::plain()
                .request("GET", &http, "/readyz", None, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("readyz {} {:?}", r.status, r.body))
            }
        },
    );
    if let Err(e) = seen {
        panic!("{e}\noutput:\n{}", output(cwd.path()));
    }
    assert!(
        cwd.join("raft.db").exists(),
        "no raft.db in the working directory {}; output:\n{}",
        cwd.path().display(),
        output(cwd.path())
    );
    let log = output(cwd.path());
    let expected = format!(
        "no preexisting node state detected in {}",
        cwd.path().display()
    );
    assert!(log.contains(&expected), "log lacks {expected:?}:\n{log}");
}

/// With no argument at all rqlited's generated flag parser refuses to start
/// (from rqlite's source: `missing required argument: DataPath`).
#[test]
fn no_arguments_at_all_exits_1() {
    let (code, out) = run(&[]);
    assert_eq!(code, Some(1), "output: {out}");
    assert!(out.contains("missing required argument"), "output: {out}");
}

#[test]
fn arguments_after_the_data_directory_exit_1() {
    let (code, out) = run(&["-node-id", "n1", "data", "extra"]);
    assert_eq!(code, Some(1), "output: {out}");
    assert!(
        out.contains("arguments after data directory"),
        "output: {out}"
    );
}

#[test]
fn same_http_and_raft_address_is_refused() {
    let dir = tempdir("cli");
    let data = dir.join("data").display().to_string();
    let (code, out) = run(&["-http-addr", "127.0.0.1:1", "-raft-addr=127.0.0.1:1", &data]);
    assert_eq!(code, Some(1), "output: {out}");
}

#[test]
fn node_id_defaults_to_the_advertised_raft_address() {
    let dir = tempdir("cli-default-id");
    let (http, raft) = (free_addr(), free_addr());
    let data = dir.join("data").display().to_string();
    let _child = spawn(
        &["-http-addr", &http, "-raft-addr", &raft, &data],
        dir.path(),
    );
    let id = wait_until("status", DEADLINE, || {
        let r = HttpClient::plain()
            .request("GET", &http, "/status", None, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        let v = r.json()?;
        v["store"]["node_id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("{v}"))
    });
    assert_eq!(ok(id), raft);
}
