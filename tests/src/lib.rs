//! Test harness for rq4d.
//!
//! - [`double`]: the `rqlited-double` binary's implementation, a stand-in for real
//!   `rqlited` (membership, leadership and HTTP; no replication).
//! - Reusable helpers for integration tests that run `rqlited` processes (the double,
//!   or the real server when the `RQLITED` environment variable names its binary):
//!   free loopback ports, temporary directories, polling with deadlines, a minimal
//!   blocking HTTP/1.1 client, and the [`Rqlited`] process launcher. They live in
//!   one file per idea (`scratch`, `wait`, `http`, `rqlited`) and are re-exported
//!   here, so tests import them from the crate root.
//! - [`certs`]: a throw-away CA and per-node certificates (PEM files) for tests of
//!   HTTPS and node TLS, and [`HttpClient`] to call an HTTPS API with Basic auth.
//!
//! The helpers are blocking on purpose: tests read as a sequence of steps, and
//! every wait has a deadline and reports what it last saw, so a failure says why.

pub mod certs;
pub mod cluster;
pub mod double;
pub mod forge;

mod http;
mod rqlited;
mod scratch;
mod wait;

pub use http::{
    HTTP_TIMEOUT, HttpClient, HttpResponse, http_delete, http_get, http_post, http_request,
    url_encode,
};
pub use rqlited::{NodeSpec, Rqlited, double_binary, find_leader, rqlited_binary, start_cluster};
pub use scratch::{TempDir, free_addr, free_port};
pub use wait::wait_until;
