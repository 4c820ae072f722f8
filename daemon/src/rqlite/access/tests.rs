use super::*;

struct Files(PathBuf);

use std::path::PathBuf;

impl Files {
    fn new(label: &str) -> Files {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rq4d-access-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Files(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const AUTH: &str = r#"[
  {"username": "app", "password": "a", "perms": ["execute", "query"]},
  {"username": "ops", "password": "o", "perms": ["status", "ready", "remove", "join"]},
  {"username": "root", "password": "r", "perms": ["all"]},
  {"username": "*", "perms": ["status", "ready"]}
]"#;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const VOTER: &[&str] = &[JOIN];

#[test]
fn without_auth_or_https_nothing_changes() {
    let (access, join_as) =
        settle(&args(&["-raft-election-timeout", "2s"]), &Wanted::default()).expect("ok");
    assert_eq!(access, Access::default());
    assert_eq!(access.scheme(), "http");
    assert_eq!(join_as, None);
}

#[test]
fn the_first_user_who_may_do_everything_rq4d_does_is_taken_and_joins() {
    let files = Files::new("first");
    let auth = files.write("auth.json", AUTH);
    for form in [vec!["-auth", auth.as_str()], vec!["--auth", auth.as_str()]] {
        let wanted = Wanted {
            join_perms: VOTER,
            ..Wanted::default()
        };
        let (access, join_as) = settle(&args(&form), &wanted).expect("ok");
        let credentials = access.credentials.expect("credentials");
        assert_eq!(credentials.user, "ops");
        assert_eq!(credentials.password, "o");
        assert_eq!(join_as.as_deref(), Some("ops"));
    }
    let inline = format!("-auth={auth}");
    let (access, _) = settle(&args(&[&inline]), &Wanted::default()).expect("ok");
    assert!(access.credentials.is_some());
}

#[test]
fn a_read_only_node_needs_join_read_only_which_only_all_grants_here() {
    let files = Files::new("ro");
    let auth = files.write("auth.json", AUTH);
    let wanted = Wanted {
        join_perms: &[JOIN_READ_ONLY],
        ..Wanted::default()
    };
    let (access, _) = settle(&args(&["-auth", &auth]), &wanted).expect("ok");
    assert_eq!(access.credentials.expect("credentials").user, "root");
}

#[test]
fn everyones_permissions_count_for_every_user() {
    let files = Files::new("everyone");
    let auth = files.write(
        "auth.json",
        r#"[{"username":"u","password":"p","perms":["remove","join"]},
            {"username":"*","perms":["status","ready"]}]"#,
    );
    let wanted = Wanted {
        join_perms: VOTER,
        ..Wanted::default()
    };
    let (access, _) = settle(&args(&["-auth", &auth]), &wanted).expect("ok");
    assert_eq!(access.credentials.expect("credentials").user, "u");
}

#[test]
fn a_named_user_takes_its_password_from_the_file_or_a_matching_password_file() {
    let files = Files::new("named");
    let auth = files.write("auth.json", AUTH);
    let password = files.write("password", "r\n");
    let wrong = files.write("wrong", "x\n");
    let base = Wanted {
        user: Some("root"),
        join_perms: VOTER,
        ..Wanted::default()
    };
    let (access, join_as) = settle(&args(&["-auth", &auth]), &base).expect("ok");
    assert_eq!(access.credentials.expect("c").password, "r");
    assert_eq!(join_as.as_deref(), Some("root"));
    let with_file = Wanted {
        password_file: Some(Path::new(&password)),
        ..base
    };
    let (access, _) = settle(&args(&["-auth", &auth]), &with_file).expect("ok");
    assert_eq!(access.credentials.expect("c").password, "r");
    let with_wrong = Wanted {
        user: Some("root"),
        password_file: Some(Path::new(&wrong)),
        join_perms: VOTER,
        ..Wanted::default()
    };
    let err = settle(&args(&["-auth", &auth]), &with_wrong).expect_err("refused");
    assert_eq!(err.flag, "--rqlite-password-file");
}

#[test]
fn every_combination_that_cannot_work_is_refused_naming_its_flag() {
    let files = Files::new("refused");
    let auth = files.write("auth.json", AUTH);
    let weak = files.write(
        "weak.json",
        r#"[{"username":"app","password":"a","perms":["query"]}]"#,
    );
    let garbage = files.write("garbage.json", "{ users: 1 }");
    let ca = files.write("ca.pem", "not a certificate");
    let missing = files.0.join("nope").display().to_string();
    let voter = |user: Option<&'static str>| Wanted {
        user,
        join_perms: VOTER,
        ..Wanted::default()
    };
    let cases: Vec<(Vec<String>, Wanted<'_>, &str)> = vec![
        (args(&["-auth", &missing]), voter(None), "-auth"),
        (args(&["-auth", &garbage]), voter(None), "-auth"),
        (args(&["-auth", &weak]), voter(None), "-auth"),
        (
            args(&["-auth", &auth]),
            voter(Some("nobody")),
            "--rqlite-user",
        ),
        (args(&["-auth", &auth]), voter(Some("app")), "--rqlite-user"),
        (args(&[]), voter(Some("ops")), "--rqlite-user"),
        (
            args(&["-auth", &auth]),
            Wanted {
                password_file: Some(Path::new(&auth)),
                join_perms: VOTER,
                ..Wanted::default()
            },
            "--rqlite-password-file",
        ),
        (args(&["-http-cert", "c.pem"]), voter(None), "-http-cert"),
        (args(&["-http-key", "k.pem"]), voter(None), "-http-key"),
        (
            args(&["-http-cert", "c.pem", "-http-key", "k.pem"]),
            voter(None),
            "--rqlite-ca-cert",
        ),
        (
            args(&["-http-cert", "c.pem", "-http-key", "k.pem"]),
            Wanted {
                ca_cert: Some(Path::new(&ca)),
                ..Wanted::default()
            },
            "--rqlite-ca-cert",
        ),
        (
            args(&[]),
            Wanted {
                ca_cert: Some(Path::new(&ca)),
                ..Wanted::default()
            },
            "--rqlite-ca-cert",
        ),
        (
            args(&["-http-verify-client", "-http-cert", "c", "-http-key", "k"]),
            voter(None),
            "-http-verify-client",
        ),
    ];
    for (args, wanted, flag) in cases {
        let err = settle(&args, &wanted).expect_err(&format!("{args:?} is refused"));
        assert_eq!(err.flag, flag, "{args:?}: {}", err.message);
    }
}

#[test]
fn go_flags_are_read_as_go_reads_them() {
    let list = args(&[
        "-fk",
        "-auth",
        "a.json",
        "-http-verify-client=false",
        "--auth=b.json",
    ]);
    let flags = GoFlags(&list);
    assert_eq!(flags.value("auth"), Some("b.json"), "the last one wins");
    assert!(!flags.set("http-verify-client"));
    assert!(flags.set("fk"));
    assert!(!flags.set("node-no-verify"));
    assert_eq!(flags.value("http-cert"), None);
}
