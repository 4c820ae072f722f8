//! The double's command line behaves like rqlited's Go `flag` parsing.

mod common;

use std::process::Command;

use std::time::Duration;

use common::{binary, ok, tempdir};
use rq4d_tests::{free_addr, http_get, wait_until};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
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

#[test]
fn missing_data_directory_exits_1() {
    let (code, out) = run(&["-node-id", "n1"]);
    assert_eq!(code, Some(1), "output: {out}");
    assert!(out.contains("no data directory set"), "output: {out}");
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
    let mut child = Command::new(binary())
        .args(["-http-addr", &http, "-raft-addr", &raft, &data])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let id = wait_until("status", Duration::from_secs(3), || {
        let r = http_get(&http, "/status").map_err(|e| e.to_string())?;
        let v = r.json()?;
        v["store"]["node_id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("{v}"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ok(id), raft);
}
