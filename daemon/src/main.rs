//! `rq4d`: the binary users run as PID 1 next to rqlited. See `rq4d --help`.

mod agent;
mod api;
mod config;
mod discovery;
mod members;
mod metrics;
mod process;
mod rqlite;
mod state;
mod supervisor;
mod tasks;

use std::process::ExitCode;

use clap::Parser;
use config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rq4d: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Members { api, json }) => {
            return match runtime.block_on(members::print(&api, json)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rq4d members: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Health { api, live }) => {
            let probe = if live {
                api::Probe::Live
            } else {
                api::Probe::Ready
            };
            return match runtime.block_on(members::health(&api, probe)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("rq4d health: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Keygen) => {
            let mut bytes = [0u8; rq4d_protocol::seal::KEY_LEN];
            if let Err(error) = getrandom::fill(&mut bytes) {
                eprintln!("rq4d keygen: cannot read randomness from the operating system: {error}");
                return ExitCode::FAILURE;
            }
            println!("{}", rq4d_protocol::Key::from_bytes(bytes).to_base64());
            return ExitCode::SUCCESS;
        }
        Some(Command::Keyring { api }) => {
            return match runtime.block_on(members::print_keyring(&api)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rq4d keyring: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    let config = match cli.run.validate() {
        Ok(config) => config,
        Err(error) => error.exit(),
    };
    init_logging(config.log_format);
    match runtime.block_on(agent::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            if error.downcast_ref::<agent::IdInUse>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RQ4D_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
