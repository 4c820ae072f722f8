//! Authentication (`-auth`, `-join-as`), HTTPS and node TLS, as rqlite v8
//! implements them (facts from rqlite's source, see docs/rqlited.md, "Auth, TLS
//! and non-voters"). Every wait has a deadline; set `RQLITED` to run these
//! against a real rqlited.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fail, is_double, ok, spec, start, tempdir};
use rq4d_tests::certs::TestPki;
use rq4d_tests::{HttpClient, NodeSpec, Rqlited, TempDir, find_leader, wait_until};

/// Users of the tests' clusters. `*` may only ask `/readyz`.
const USERS: &str = r#"[
    {"username": "admin", "password": "pw-admin", "perms": ["all"]},
    {"username": "reader", "password": "pw-reader", "perms": ["status", "query"]},
    {"username": "joiner", "password": "pw-joiner", "perms": ["join", "join-read-only", "remove"]},
    {"username": "voters-only", "password": "pw-v", "perms": ["join"]},
    {"username": "*", "password": "", "perms": ["ready"]}
]"#;

fn write_auth(dir: &TempDir, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).expect("write auth file");
    path
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn admin() -> HttpClient {
    HttpClient::plain().basic_auth("admin", "pw-admin")
}

/// A node with `-auth` whose harness calls use the admin's credentials.
fn auth_spec(id: &str, dir: &TempDir, auth: &Path) -> NodeSpec {
    spec(id, dir)
        .args(&["-auth", path_arg(auth)])
        .client(admin())
}

/// A node with auth, HTTPS and node TLS, its certificate issued for 127.0.0.1
/// (every node of these tests listens there).
fn secure_spec(id: &str, dir: &TempDir, auth: &Path, pki: &TestPki) -> NodeSpec {
    let cert = pki
        .issue(id, &["127.0.0.1"], &[])
        .expect("issue certificate");
    spec(id, dir)
        .args(&["-auth", path_arg(auth)])
        .args(&["-http-cert", cert.cert_str(), "-http-key", cert.key_str()])
        .args(&["-node-cert", cert.cert_str(), "-node-key", cert.key_str()])
        .args(&["-node-ca-cert", pki.ca_pem_str()])
        .client(HttpClient::https(pki.ca_pem_path()).basic_auth("admin", "pw-admin"))
}

fn status_code(client: &HttpClient, addr: &str, path: &str) -> u16 {
    client
        .request("GET", addr, path, None, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
        .status
}

#[test]
fn every_endpoint_checks_its_permission() {
    let dir = tempdir("auth-endpoints");
    let auth = write_auth(&dir, "users.json", USERS);
    let mut n1 = start(auth_spec("n1", &dir, &auth));
    ok(n1.wait_ready(Duration::from_secs(10)));
    let addr = n1.http_addr().to_string();
    let anonymous = HttpClient::plain();
    let reader = HttpClient::plain().basic_auth("reader", "pw-reader");

    let denied = anonymous.get(&addr, "/status").expect("GET /status");
    assert_eq!(denied.status, 401, "{denied:?}");
    assert_eq!(denied.body, "", "a refusal has an empty body");
    assert_eq!(status_code(&admin(), &addr, "/status"), 200);
    let wrong = HttpClient::plain().basic_auth("admin", "not-it");
    assert_eq!(status_code(&wrong, &addr, "/status"), 401);
    assert_eq!(status_code(&anonymous, &addr, "/nodes"), 401);
    assert_eq!(status_code(&reader, &addr, "/nodes"), 200);
    // `*` has `ready`: probes need no credentials.
    assert_eq!(status_code(&anonymous, &addr, "/readyz"), 200);
    assert_eq!(
        status_code(&anonymous, &addr, "/db/query?q=SELECT%201"),
        401
    );
    assert_eq!(status_code(&reader, &addr, "/db/query?q=SELECT%201"), 200);
    let write = reader
        .post(&addr, "/db/execute", r#"["CREATE TABLE t (a)"]"#)
        .expect("execute");
    assert_eq!(write.status, 401, "reader may not write: {write:?}");
    let write = admin()
        .post(&addr, "/db/execute", r#"["CREATE TABLE t (a)"]"#)
        .expect("execute");
    assert_eq!(write.status, 200, "{write:?}");
    let remove = reader
        .delete(&addr, "/remove", r#"{"id":"nobody"}"#)
        .expect("remove");
    assert_eq!(remove.status, 401, "{remove:?}");
    // Unknown paths are not checked.
    assert_eq!(status_code(&anonymous, &addr, "/nope"), 404);

    let st = ok(n1.status());
    assert_eq!(st["http"]["auth"], "enabled", "{st}");
}

#[test]
fn missing_auth_file_is_fatal() {
    let dir = tempdir("auth-missing");
    let missing = dir.join("no-such-file.json");
    let mut n = start(spec("n1", &dir).args(&["-auth", path_arg(&missing)]));
    let code = ok(n.wait_exit(Duration::from_secs(10)));
    assert_eq!(code.code(), Some(1), "{}", n.describe());
    let expected = format!("{} does not exist", missing.display());
    assert!(n.log().contains(&expected), "{}", n.describe());
}

/// A follower forwards a write with the caller's credentials, and the *leader*
/// decides with its own file: a user only the follower knows is refused there.
#[test]
fn forwarded_requests_are_checked_by_the_leader() {
    let dir = tempdir("auth-forward");
    let leader_auth = write_auth(&dir, "leader.json", USERS);
    let follower_users = USERS.replace(
        r#"{"username": "*""#,
        r#"{"username": "stranger", "password": "pw-s", "perms": ["all"]},
    {"username": "*""#,
    );
    let follower_auth = write_auth(&dir, "follower.json", &follower_users);
    let mut n1 = start(auth_spec("n1", &dir, &leader_auth));
    ok(n1.wait_ready(Duration::from_secs(10)));
    let mut n2 = start(
        auth_spec("n2", &dir, &follower_auth)
            .join(&[n1.raft_addr()])
            .args(&["-join-as", "joiner"]),
    );
    if let Err(e) = n2.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, n2], &e);
    }
    let follower = n2.http_addr().to_string();
    let w = admin()
        .post(&follower, "/db/execute", r#"["CREATE TABLE t (a)"]"#)
        .expect("execute via follower");
    assert_eq!(w.status, 200, "{w:?}");
    assert!(!w.body.contains("error"), "{w:?}");
    let stranger = HttpClient::plain().basic_auth("stranger", "pw-s");
    let w = stranger
        .post(&follower, "/db/execute", r#"["CREATE TABLE u (a)"]"#)
        .expect("execute via follower");
    assert_eq!(w.status, 401, "{w:?}");
    assert_eq!(w.body.trim(), "remote Execute not authorized", "{w:?}");
}

#[test]
fn secure_cluster_forms_and_a_fourth_node_joins_with_join_as() {
    let dir = tempdir("auth-secure");
    let pki = TestPki::new(dir.join("pki")).expect("test CA");
    let auth = write_auth(&dir, "users.json", USERS);
    let mut specs: Vec<NodeSpec> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| secure_spec(id, &dir, &auth, &pki))
        .collect();
    let targets: Vec<String> = specs.iter().map(|s| s.raft_addr.clone()).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    for s in specs.iter_mut() {
        *s = s
            .clone()
            .join(&targets)
            .args(&["-bootstrap-expect", "3", "-join-as", "joiner"]);
    }
    let mut nodes: Vec<Rqlited> = specs.into_iter().map(start).collect();
    for i in 0..nodes.len() {
        if let Err(e) = nodes[i].wait_ready(Duration::from_secs(30)) {
            fail(&mut nodes, &format!("secure bootstrap: {e}"));
        }
    }
    let leader = ok(find_leader(&nodes));

    let mut n4 = start(
        secure_spec("n4", &dir, &auth, &pki)
            .join(&[nodes[leader].raft_addr()])
            .args(&["-join-as", "joiner", "-join-attempts", "3"]),
    );
    if let Err(e) = n4.wait_ready(Duration::from_secs(30)) {
        nodes.push(n4);
        fail(&mut nodes, &format!("n4 joining with -join-as: {e}"));
    }
    let listed = ok(wait_until(
        "four reachable nodes, advertised over HTTPS",
        Duration::from_secs(10),
        || {
            let nodes = n4.nodes()?;
            let ok = nodes.len() == 4
                && nodes.iter().all(|n| {
                    n["reachable"] == true
                        && n["api_addr"]
                            .as_str()
                            .is_some_and(|a| a.starts_with("https://127.0.0.1:"))
                });
            if ok {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    ));
    let n4_entry = listed.iter().find(|n| n["id"] == "n4").expect("n4 listed");
    assert_eq!(
        n4_entry["api_addr"],
        format!("https://{}", n4.http_addr()),
        "{listed:?}"
    );
    // Plain HTTP to the HTTPS port gets no answer from the API.
    let plain = HttpClient::plain().basic_auth("admin", "pw-admin").request(
        "GET",
        n4.http_addr(),
        "/status",
        None,
        Duration::from_secs(3),
    );
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP on an HTTPS port: {plain:?}"
    );
}

#[test]
fn joiner_without_join_as_is_refused_and_exits_1() {
    let dir = tempdir("auth-refused");
    let auth = write_auth(&dir, "users.json", USERS);
    let mut n1 = start(auth_spec("n1", &dir, &auth));
    ok(n1.wait_ready(Duration::from_secs(10)));
    let mut n2 = start(auth_spec("n2", &dir, &auth).join(&[n1.raft_addr()]).args(&[
        "-join-attempts",
        "2",
        "-join-interval",
        "200ms",
    ]));
    let code = ok(n2.wait_exit(Duration::from_secs(30)));
    assert_eq!(code.code(), Some(1), "{}", n2.describe());
    let expected = format!(
        "failed to join via node at {}: unauthorized (did you forget to set -join-as?)",
        n1.raft_addr()
    );
    assert!(n2.log().contains(&expected), "{}", n2.describe());
    assert!(
        n2.log().contains("failed to join cluster"),
        "{}",
        n2.describe()
    );
}

/// A voter needs `join`, a non-voter `join-read-only`: a user with only `join`
/// cannot add a non-voter.
#[test]
fn a_non_voter_needs_join_read_only() {
    let dir = tempdir("auth-read-only");
    let auth = write_auth(&dir, "users.json", USERS);
    let mut n1 = start(auth_spec("n1", &dir, &auth));
    ok(n1.wait_ready(Duration::from_secs(10)));
    let quick = ["-join-attempts", "1", "-raft-non-voter"];
    let mut refused = start(
        auth_spec("n2", &dir, &auth)
            .join(&[n1.raft_addr()])
            .args(&quick)
            .args(&["-join-as", "voters-only"]),
    );
    let code = ok(refused.wait_exit(Duration::from_secs(30)));
    assert_eq!(code.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.log().contains("unauthorized"),
        "{}",
        refused.describe()
    );
    assert!(
        !refused.log().contains("did you forget to set -join-as"),
        "credentials were sent: {}",
        refused.describe()
    );
    let mut n3 = start(
        auth_spec("n3", &dir, &auth)
            .join(&[n1.raft_addr()])
            .args(&quick)
            .args(&["-join-as", "joiner"]),
    );
    if let Err(e) = n3.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, n3], &e);
    }
}

#[test]
fn a_node_without_node_tls_cannot_join_a_tls_cluster() {
    let dir = tempdir("auth-mixed-tls");
    let pki = TestPki::new(dir.join("pki")).expect("test CA");
    let cert = pki.issue("n1", &["127.0.0.1"], &[]).expect("issue");
    let node_tls = [
        "-node-cert",
        cert.cert_str(),
        "-node-key",
        cert.key_str(),
        "-node-ca-cert",
        pki.ca_pem_str(),
    ];
    let mut n1 = start(spec("n1", &dir).args(&node_tls));
    ok(n1.wait_ready(Duration::from_secs(10)));
    let mut plain = start(spec("n2", &dir).join(&[n1.raft_addr()]).args(&[
        "-join-attempts",
        "2",
        "-join-interval",
        "200ms",
    ]));
    let code = ok(plain.wait_exit(Duration::from_secs(30)));
    assert_eq!(code.code(), Some(1), "{}", plain.describe());
    assert!(
        plain.log().contains("failed to join cluster"),
        "{}",
        plain.describe()
    );
    // The same node with node TLS joins: the refusal was about TLS alone.
    let cert2 = pki.issue("n3", &["127.0.0.1"], &[]).expect("issue");
    let mut n3 = start(spec("n3", &dir).join(&[n1.raft_addr()]).args(&[
        "-node-cert",
        cert2.cert_str(),
        "-node-key",
        cert2.key_str(),
        "-node-ca-cert",
        pki.ca_pem_str(),
    ]));
    if let Err(e) = n3.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, n3], &e);
    }
    if is_double() {
        assert!(
            n1.log().contains("TLS handshake"),
            "the leader should have logged the failed handshakes: {}",
            n1.describe()
        );
    }
}

/// `-node-verify-server-name` checks peers' certificates against a name instead
/// of the dialled IP; a certificate without that name is refused.
#[test]
fn node_verify_server_name_is_checked() {
    let dir = tempdir("auth-server-name");
    let pki = TestPki::new(dir.join("pki")).expect("test CA");
    // Certificates carry only the DNS name "db", not 127.0.0.1.
    let c1 = pki.issue("n1", &[], &["db"]).expect("issue");
    let c2 = pki.issue("n2", &[], &["db"]).expect("issue");
    let tls = |c: &rq4d_tests::certs::CertPaths, name: &str| -> Vec<String> {
        [
            "-node-cert",
            c.cert_str(),
            "-node-key",
            c.key_str(),
            "-node-ca-cert",
            pki.ca_pem_str(),
            "-node-verify-server-name",
            name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut n1_spec = spec("n1", &dir);
    n1_spec.args.extend(tls(&c1, "db"));
    let mut n1 = start(n1_spec);
    ok(n1.wait_ready(Duration::from_secs(10)));

    let mut wrong = spec("n2", &dir)
        .join(&[n1.raft_addr()])
        .args(&["-join-attempts", "1"]);
    wrong.args.extend(tls(&c2, "not-db"));
    let mut wrong = start(wrong);
    let code = ok(wrong.wait_exit(Duration::from_secs(30)));
    assert_eq!(code.code(), Some(1), "{}", wrong.describe());

    let mut right = spec("n3", &dir).join(&[n1.raft_addr()]);
    right.args.extend(tls(&c2, "db"));
    let mut right = start(right);
    if let Err(e) = right.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, right], &e);
    }
}

/// `-http-verify-client`: the API accepts only clients with a certificate from
/// `-http-ca-cert`.
#[test]
fn http_mutual_tls_demands_a_client_certificate() {
    let dir = tempdir("auth-http-mtls");
    let pki = TestPki::new(dir.join("pki")).expect("test CA");
    let server = pki.issue("n1", &["127.0.0.1"], &[]).expect("issue");
    let client_cert = pki.issue("client", &[], &["client"]).expect("issue");
    let with_cert =
        HttpClient::https(pki.ca_pem_path()).client_cert(&client_cert.cert, &client_cert.key);
    let mut n1 = start(
        spec("n1", &dir)
            .args(&[
                "-http-cert",
                server.cert_str(),
                "-http-key",
                server.key_str(),
            ])
            .args(&["-http-ca-cert", pki.ca_pem_str(), "-http-verify-client"])
            .client(with_cert.clone()),
    );
    ok(n1.wait_ready(Duration::from_secs(10)));
    let without = HttpClient::https(pki.ca_pem_path()).request(
        "GET",
        n1.http_addr(),
        "/status",
        None,
        Duration::from_secs(3),
    );
    assert!(
        without.as_ref().map_or(true, |r| r.status != 200),
        "a client without a certificate was served: {without:?}"
    );
    assert_eq!(status_code(&with_cert, n1.http_addr(), "/status"), 200);
}

/// `-node-verify-client` (mutual node TLS) still lets nodes with certificates
/// from the CA join, and `-node-no-verify` lets a joiner skip checking the
/// server's certificate (it still presents its own).
#[test]
fn node_mutual_tls_and_no_verify() {
    let dir = tempdir("auth-node-mtls");
    let pki = TestPki::new(dir.join("pki")).expect("test CA");
    let node_tls = |id: &str| -> Vec<String> {
        let c = pki.issue(id, &["127.0.0.1"], &[]).expect("issue");
        [
            "-node-cert",
            c.cert_str(),
            "-node-key",
            c.key_str(),
            "-node-ca-cert",
            pki.ca_pem_str(),
            "-node-verify-client",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut n1_spec = spec("n1", &dir);
    n1_spec.args.extend(node_tls("n1"));
    let mut n1 = start(n1_spec);
    ok(n1.wait_ready(Duration::from_secs(10)));
    let mut n2_spec = spec("n2", &dir).join(&[n1.raft_addr()]);
    n2_spec.args.extend(node_tls("n2"));
    let mut n2 = start(n2_spec);
    if let Err(e) = n2.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, n2], &format!("mutual node TLS: {e}"));
    }
    // n3 has a certificate from the CA but no CA to check n1's with.
    let c3 = pki.issue("n3", &["127.0.0.1"], &[]).expect("issue");
    let mut n3 = start(spec("n3", &dir).join(&[n1.raft_addr()]).args(&[
        "-node-cert",
        c3.cert_str(),
        "-node-key",
        c3.key_str(),
        "-node-no-verify",
    ]));
    if let Err(e) = n3.wait_ready(Duration::from_secs(10)) {
        fail(&mut [n1, n2, n3], &format!("-node-no-verify joiner: {e}"));
    }
}
