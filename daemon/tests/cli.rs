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

/// The long flags `--help` lists, each once.
fn long_flags_of_help() -> Vec<String> {
    let out = rq4d(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            word.split(['=', '<', '`', '.', ')', '\''])
                .next()
                .unwrap_or(word)
                .to_string()
        })
        .filter(|flag| {
            flag.len() > 2
                && flag[2..]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn the_manual_page_documents_every_flag_of_help() {
    let out = rq4d(&["man"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // roff escapes a dash as `\-`.
    let page = String::from_utf8_lossy(&out.stdout).replace("\\-", "-");
    assert!(page.contains(".TH rq4d 1"), "a section-1 page: {page}");
    let flags = long_flags_of_help();
    assert!(flags.len() > 15, "--help lists the flags: {flags:?}");
    for flag in &flags {
        assert!(page.contains(flag.as_str()), "the manual page lacks {flag}");
    }
}

#[test]
fn completion_scripts_know_every_flag_for_each_shell() {
    let flags = long_flags_of_help();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = rq4d(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        for flag in &flags {
            // fish spells a long flag `-l name`.
            let known =
                script.contains(flag.as_str()) || script.contains(&format!("-l {}", &flag[2..]));
            assert!(known, "{shell} completion lacks {flag}");
        }
    }
    let out = rq4d(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a bad flag");
}

#[test]
fn the_readme_documents_every_flag_of_help() {
    let readme = include_str!("../../README.md");
    let undocumented: Vec<String> = long_flags_of_help()
        .into_iter()
        .filter(|flag| !["--help", "--version"].contains(&flag.as_str()))
        .filter(|flag| {
            !readme.contains(&format!("`{flag}")) && !readme.contains(&format!("{flag} "))
        })
        .collect();
    assert!(undocumented.is_empty(), "README.md lacks {undocumented:?}");
}
