//! The command line as a user meets it: help, and bad flags exiting 2 with the flag's name.

use std::process::Command;

fn rq4d(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rq4d"))
        .args(args)
        .env_remove("RQ4D_EXPECT")
        .output()
        .expect("rq4d runs")
}

#[test]
fn help_reads_like_a_manual() {
    let out = rq4d(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--discover",
        "--expect",
        "RQ4D_EXPECT",
        "EXAMPLES",
        "EXIT CODES",
    ] {
        assert!(text.contains(needle), "--help mentions {needle}:\n{text}");
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--expect", "3"], "--discover"),
        (&["--expect", "x"], "--expect"),
        (&["--broadcast", "--reap-after", "soon"], "--reap-after"),
        (&["--broadcast", "--node-id", "bad id"], "--node-id"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, flag) in cases {
        let out = rq4d(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
    }
}

#[test]
fn environment_variables_configure_like_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_rq4d"))
        .env("RQ4D_EXPECT", "0")
        .arg("--broadcast")
        .output()
        .expect("rq4d runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expect"));
}
