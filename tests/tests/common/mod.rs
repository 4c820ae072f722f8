//! Shared setup for the double's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rq4d_tests::{NodeSpec, Rqlited, TempDir, start_cluster};

/// `$RQLITED` when set (run these tests against real rqlited), else this crate's double.
pub fn binary() -> PathBuf {
    std::env::var_os("RQLITED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rqlited-double")))
}

/// True when the tests run against the double (its own log lines can be asserted).
pub fn is_double() -> bool {
    std::env::var_os("RQLITED").is_none()
}

pub fn tempdir(label: &str) -> TempDir {
    TempDir::new(label).expect("create temp dir")
}

/// A node with data in `<dir>/<id>` and its own free loopback ports.
pub fn spec(id: &str, dir: &TempDir) -> NodeSpec {
    NodeSpec::new(id, dir.join(id)).binary(binary())
}

pub fn start(spec: NodeSpec) -> Rqlited {
    Rqlited::start(spec).expect("spawn rqlited")
}

/// A ready cluster: the first id bootstraps, the others join it.
pub fn cluster(dir: &TempDir, ids: &[&str]) -> Vec<Rqlited> {
    ok(start_cluster(ids.iter().map(|id| spec(id, dir)).collect()))
}

/// Unwraps a helper result, printing its (multi-line) explanation on failure.
pub fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Panics with `msg` and the state and log tail of every node.
pub fn fail(nodes: &mut [Rqlited], msg: &str) -> ! {
    let all: Vec<String> = nodes.iter_mut().map(|n| n.describe()).collect();
    panic!("{msg}\n\n{}", all.join("\n\n"))
}
