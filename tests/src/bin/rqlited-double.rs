//! `rqlited-double`: the rq4d test double of `rqlited`. It accepts rqlited's command
//! line and serves its HTTP API, modelling membership and leadership but not
//! replication; see [`rq4d_tests::double`] for exactly what is and is not modelled.

fn main() -> std::process::ExitCode {
    rq4d_tests::double::main()
}
