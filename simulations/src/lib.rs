//! rq4d-sim: many instances of rq4d's protocol node on a simulated network, against a model of
//! rqlited's membership rules, driven the way the daemon drives rqlited.
//!
//! * [`queue`] — virtual time and the total order of events.
//! * [`network`] — addresses, latency, loss, duplication, reordering, partitions.
//! * [`dns`] — the service name that lists the containers, with a lag.
//! * [`rqlite`] — rqlited's membership behaviour (bootstrap, join, elections, removal, disks,
//!   voters and non-voters).
//! * [`supervisor`] — the daemon's supervisor, rule for rule, against the model.
//! * [`world`] — hosts, the event loop, scenario actions, the trace.
//! * [`violation`] — what a failed property is (its kind, when, what happened).
//! * [`invariants`] — the safety and liveness properties and how failures are classified.
//! * [`scenario`] — random scenarios from a seed, and the checked run.
//! * [`search`] — many scenarios on all cores.
//! * [`measure`] — the measurements behind the report's figures.
//! * [`reference`] — the reference models (Serf's convergence, memberlist's timeouts).
//! * [`report`] — the markdown report and its SVG plots.
//! * [`stats`] — quantiles of measured durations.
//!
//! Everything is deterministic: one seed gives one run, event for event.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dns;
pub mod invariants;
pub mod measure;
pub mod network;
pub mod queue;
pub mod reference;
pub mod report;
pub mod rqlite;
pub mod scenario;
pub mod search;
pub mod stats;
pub mod supervisor;
pub mod violation;
pub mod world;
