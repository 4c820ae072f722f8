//! Where a flag's value came from. A value set by an environment variable is fixed there, not on
//! the command line, so every error about it names the variable too (`--expect (from
//! RQ4D_EXPECT)`): in a container the variable is usually all the user wrote.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches};

use super::Cli;

/// Parses the command line (and the `RQ4D_*` environment). A bad value's error names the
/// environment variable when that is where it came from.
pub fn parse_cli<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|error| name_the_variable(error, &command, &args))?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if cli.command.is_none() {
        cli.run.origins = from_env(&command, &matches);
    }
    Ok(cli)
}

/// The flags whose values came from their environment variable, so that an error about one can
/// name the variable the user has to fix.
#[derive(Debug, Clone, Default)]
pub struct Origins(Vec<(String, String)>);

impl Origins {
    /// How an error names `flag` (`--expect`): with its variable when the value came from it.
    pub fn name(&self, flag: &str) -> String {
        match self.0.iter().find(|(long, _)| long == flag) {
            Some((_, env)) => format!("{flag} (from the environment variable {env})"),
            None => flag.to_string(),
        }
    }
}

/// `(--flag, RQ4D_FLAG)` of every flag whose value came from its environment variable.
fn from_env(command: &Command, matches: &ArgMatches) -> Origins {
    let origins = command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable))
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((format!("--{}", arg.get_long()?), env))
        })
        .collect();
    Origins(origins)
}

/// Adds "(from RQ4D_X)" to clap's own error about a bad value when the flag was not on the
/// command line but its variable is set.
fn name_the_variable(error: clap::Error, command: &Command, args: &[OsString]) -> clap::Error {
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let flag = invalid.split_whitespace().next().unwrap_or(invalid);
    let Some(long) = flag.strip_prefix("--") else {
        return error;
    };
    let on_the_line = args.iter().skip(1).any(|arg| {
        arg.to_str()
            .is_some_and(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    });
    let variable = all_arguments(command)
        .find(|arg| arg.get_long() == Some(long))
        .and_then(Arg::get_env)
        .filter(|env| std::env::var_os(env).is_some());
    let Some(variable) = variable.filter(|_| !on_the_line) else {
        return error;
    };
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let mut command = command.clone();
    command.error(
        error.kind(),
        format!(
            "{message} (from the environment variable {})",
            variable.to_string_lossy()
        ),
    )
}

/// The arguments of the command and of its subcommands.
fn all_arguments(command: &Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(Command::get_arguments))
}
