//! `rq4d`: the binary users run as PID 1 next to rqlited. See `rq4d --help`.

mod agent;
mod api;
mod config;
mod discovery;
mod members;
mod metrics;
mod naming;
mod orphan;
mod preflight;
mod process;
mod rqlite;
mod state;
mod supervisor;
mod tasks;

use std::io::IsTerminal;
use std::process::ExitCode;

use config::{Command, Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match config::parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
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
            return match runtime.block_on(members::print(api, json)) {
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
            return match runtime.block_on(members::health(api, probe)) {
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
        Some(Command::Completions { shell }) => {
            let mut command = <config::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "rq4d", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            let command = <config::Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rq4d man: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Keyring { api }) => {
            return match runtime.block_on(members::print_keyring(api)) {
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
    init_logging(&config);
    match runtime.block_on(agent::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(refused) = error.downcast_ref::<preflight::Refused>() {
                // Like a bad flag: clap's wording and exit code.
                config::flag_error(&refused.flag, &refused.message).exit();
            }
            tracing::error!("{error:#}");
            if error.downcast_ref::<agent::IdInUse>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs to stderr, in colour only when it is a terminal and NO_COLOR is unset (a log file or
/// `docker logs` gets no escape codes).
fn init_logging(config: &Config) {
    // Checked by `RunArgs::validate`; "info" is never reached.
    let filter = EnvFilter::builder()
        .parse(&config.log_filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
