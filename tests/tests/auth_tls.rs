//! rqlite with authentication, HTTPS and node TLS under rq4d, on real processes: rq4d reads the
//! credentials from the auth file it passes through, verifies rqlited's certificate with the CA
//! it is given, and adds `-join-as`; the cluster forms, takes a fourth node and reaps a killed
//! one as without them.

use std::time::Duration;

use rq4d_tests::HttpClient;
use rq4d_tests::certs::TestPki;
use rq4d_tests::cluster::{Cluster, FORM_DEADLINE};
use rq4d_tests::{TempDir, http_get};

const AUTH: &str = r#"[
  {"username": "app", "password": "app-secret", "perms": ["execute", "query"]},
  {"username": "rq4d", "password": "rq4d-secret", "perms": ["status", "ready", "remove", "join"]}
]"#;

#[test]
fn a_cluster_with_auth_https_and_node_tls_forms_grows_and_reaps() {
    let files = TempDir::new("secure-files").expect("temp dir");
    let auth = files.join("auth.json");
    std::fs::write(&auth, AUTH).expect("auth file");
    let cluster = Cluster::new("secure", 4, 3);
    let pki = TestPki::new(files.join("pki")).expect("test CA");
    let ips = cluster.seed_ips();
    let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    // One certificate naming every slot's address (and the service name "db"), for the HTTP
    // API and the Raft port alike.
    let cert = pki.issue("node", &ip_refs, &["db"]).expect("certificate");
    let args = [
        "--reap-after",
        "2s",
        "--rqlite-ca-cert",
        pki.ca_pem_str(),
        "--",
        "-auth",
        auth.to_str().expect("utf-8 path"),
        "-http-cert",
        cert.cert_str(),
        "-http-key",
        cert.key_str(),
        "-node-cert",
        cert.cert_str(),
        "-node-key",
        cert.key_str(),
        "-node-ca-cert",
        pki.ca_pem_str(),
    ];
    let client = HttpClient::https(pki.ca_pem_path()).basic_auth("rq4d", "rq4d-secret");
    let mut cluster = cluster.with_args(&args).with_client(client.clone());
    for slot in 0..3 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    let leader = cluster.wait_one_cluster(FORM_DEADLINE);

    // It really is on: plain HTTP gets no answer, HTTPS without credentials a 401.
    let http = cluster.nodes[&leader].http();
    assert!(
        http_get(&http, "/status").is_err(),
        "rqlited speaks HTTPS only"
    );
    let anonymous = client
        .clone()
        .anonymous()
        .get(&http, "/status")
        .expect("https");
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let log = cluster.nodes["n1"].log();
    assert!(log.contains("-join-as rq4d"), "rq4d adds -join-as: {log}");

    cluster.start("n4", 3);
    let leader = cluster.wait_one_cluster(FORM_DEADLINE);
    let victim = cluster.a_follower(&leader);
    cluster.node(&victim).kill();
    cluster.forget(&victim);
    cluster.wait_one_cluster(Duration::from_secs(60));
    for node in cluster.nodes.values() {
        let (code, body) = node.health().expect("/health");
        assert_eq!(code, 200, "{}: {body}", node.id);
    }
}

#[test]
fn a_certificate_naming_the_service_is_verified_by_that_name() {
    let files = TempDir::new("secure-name-files").expect("temp dir");
    let auth = files.join("auth.json");
    std::fs::write(&auth, AUTH).expect("auth file");
    let pki = TestPki::new(files.join("pki")).expect("test CA");
    // No IP in the certificate: only --rqlite-server-name db lets rq4d verify it.
    let cert = pki.issue("service", &[], &["db"]).expect("certificate");
    let args = [
        "--rqlite-ca-cert",
        pki.ca_pem_str(),
        "--rqlite-server-name",
        "db",
        "--rqlite-user",
        "rq4d",
        "--",
        "-auth",
        auth.to_str().expect("utf-8 path"),
        "-http-cert",
        cert.cert_str(),
        "-http-key",
        cert.key_str(),
    ];
    let client = HttpClient::https(pki.ca_pem_path())
        .server_name("db")
        .basic_auth("rq4d", "rq4d-secret");
    let mut cluster = Cluster::new("secure-name", 3, 3)
        .with_args(&args)
        .with_client(client);
    for slot in 0..3 {
        cluster.start(&format!("n{}", slot + 1), slot);
    }
    // Formed and healthy: rq4d verified every rqlited by the name (without the flag it
    // warns "certificate not valid for name" and no node gets ready).
    cluster.wait_one_cluster(FORM_DEADLINE);
}
