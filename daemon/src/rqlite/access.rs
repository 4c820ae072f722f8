//! How rq4d reaches an rqlited that has authentication (`-auth`) or HTTPS (`-http-cert`) on:
//! which credentials it sends, and which CA it trusts.
//!
//! rq4d reads what it needs from the arguments it passes through to rqlited (after `--`), so a
//! user configures rqlite once: the auth file names the users; rq4d picks one whose
//! permissions cover what it does (`status` for `/status` and `/nodes`, `ready` for `/readyz`,
//! `remove` for `/remove`, `join` and/or `join-read-only` for the `-join-as` it adds), or takes
//! the one `--rqlite-user` names. rqlited's `-join-as` looks the password up in the node's own
//! auth file, so the user must be in it. Every combination that cannot work is refused at the
//! start, naming the flag (`Refusal`), instead of failing on the first poll.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

/// A permission of rqlite's auth file that rq4d's calls need.
pub const STATUS: &str = "status";
/// See [`STATUS`].
pub const READY: &str = "ready";
/// See [`STATUS`].
pub const REMOVE: &str = "remove";
/// See [`STATUS`].
pub const JOIN: &str = "join";
/// See [`STATUS`].
pub const JOIN_READ_ONLY: &str = "join-read-only";
/// Every permission.
const ALL: &str = "all";
/// rqlite's anonymous user: its permissions apply to every request.
const EVERYONE: &str = "*";

/// Basic-auth credentials for rqlited's HTTP API.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.user)
    }
}

/// How rqlited's HTTPS is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// The name rqlited's certificate is checked against instead of the address dialled
    /// (certificates rarely name the ever-changing IPs of containers).
    pub server_name: Option<String>,
}

/// How rq4d talks to rqlited's HTTP API (and to other nodes', configured alike).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Sent with every request when rqlited has `-auth`.
    pub credentials: Option<Credentials>,
    /// Set when rqlited serves HTTPS.
    pub tls: Option<Tls>,
}

impl Access {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// What the user asked for, from rq4d's flags and rqlited's arguments.
#[derive(Debug, Default)]
pub struct Wanted<'a> {
    /// `--rqlite-user`.
    pub user: Option<&'a str>,
    /// `--rqlite-password-file`.
    pub password_file: Option<&'a Path>,
    /// `--rqlite-ca-cert`.
    pub ca_cert: Option<&'a Path>,
    /// `--rqlite-server-name`.
    pub server_name: Option<&'a str>,
    /// The join permissions this node's joins need (`join`, `join-read-only`).
    pub join_perms: &'a [&'static str],
}

/// A setting that cannot work, and the flag to blame.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The flag (rq4d's `--x`, or rqlited's `-x` after `--`).
    pub flag: String,
    pub message: String,
}

fn refuse(flag: &str, message: impl Into<String>) -> Refusal {
    Refusal {
        flag: flag.to_string(),
        message: message.into(),
    }
}

/// How rq4d reaches rqlited, and the `-join-as` user to add (when auth is on).
pub fn settle(
    rqlited_args: &[String],
    wanted: &Wanted<'_>,
) -> Result<(Access, Option<String>), Refusal> {
    let args = GoFlags(rqlited_args);
    let tls = tls(&args, wanted)?;
    let (credentials, join_as) = match args.value("auth") {
        Some(file) => {
            let users = read_auth_file(Path::new(file))?;
            let credentials = credentials(&users, file, wanted)?;
            let join_as = credentials.user.clone();
            (Some(credentials), Some(join_as))
        }
        None => {
            if let Some(user) = wanted.user {
                return Err(refuse(
                    "--rqlite-user",
                    format!(
                        "{user:?} is set but rqlited has no -auth FILE after --: without one rqlited \
                         checks no credentials (pass -auth, or unset --rqlite-user)"
                    ),
                ));
            }
            if wanted.password_file.is_some() {
                return Err(refuse(
                    "--rqlite-password-file",
                    "is set but rqlited has no -auth FILE after --",
                ));
            }
            (None, None)
        }
    };
    Ok((Access { credentials, tls }, join_as))
}

/// HTTPS, when rqlited has `-http-cert` and `-http-key`.
fn tls(args: &GoFlags<'_>, wanted: &Wanted<'_>) -> Result<Option<Tls>, Refusal> {
    let (cert, key) = (args.value("http-cert"), args.value("http-key"));
    if args.set("http-verify-client") {
        return Err(refuse(
            "-http-verify-client",
            "rq4d cannot present a client certificate to rqlited's HTTP API yet; drop \
             -http-verify-client (the API still needs the auth file's credentials)",
        ));
    }
    match (cert, key) {
        (None, None) => {
            if wanted.ca_cert.is_some() {
                return Err(refuse(
                    "--rqlite-ca-cert",
                    "is set but rqlited serves plain HTTP (no -http-cert/-http-key after --)",
                ));
            }
            Ok(None)
        }
        (Some(_), None) => Err(refuse(
            "-http-cert",
            "needs -http-key too (rqlited takes both or neither)",
        )),
        (None, Some(_)) => Err(refuse(
            "-http-key",
            "needs -http-cert too (rqlited takes both or neither)",
        )),
        (Some(_), Some(_)) => {
            let Some(ca) = wanted.ca_cert else {
                return Err(refuse(
                    "--rqlite-ca-cert",
                    "rqlited serves HTTPS (-http-cert): give the CA certificate that signed its \
                     certificate, so that rq4d can verify whom it talks to",
                ));
            };
            let ca_pem = std::fs::read(ca).map_err(|e| {
                refuse(
                    "--rqlite-ca-cert",
                    format!("cannot read {}: {e}", ca.display()),
                )
            })?;
            if reqwest::Certificate::from_pem_bundle(&ca_pem).map_or(true, |c| c.is_empty()) {
                return Err(refuse(
                    "--rqlite-ca-cert",
                    format!("{} holds no PEM certificate", ca.display()),
                ));
            }
            Ok(Some(Tls {
                ca_pem,
                server_name: wanted.server_name.map(str::to_string),
            }))
        }
    }
}

/// One user of rqlite's auth file.
#[derive(Debug, Deserialize)]
struct User {
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    perms: Vec<String>,
}

fn read_auth_file(file: &Path) -> Result<Vec<User>, Refusal> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| refuse("-auth", format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        refuse(
            "-auth",
            format!(
                "{} is not rqlite's auth file (a JSON list of {{\"username\", \"password\", \
                 \"perms\"}}): {e}",
                file.display()
            ),
        )
    })
}

/// The permissions rq4d needs of its user.
fn needed(wanted: &Wanted<'_>) -> BTreeSet<&'static str> {
    [STATUS, READY, REMOVE]
        .into_iter()
        .chain(wanted.join_perms.iter().copied())
        .collect()
}

/// What `user` may do: its own permissions and everyone's (`*`).
fn granted<'a>(users: &'a [User], user: &str) -> BTreeSet<&'a str> {
    users
        .iter()
        .filter(|u| u.username == user || u.username == EVERYONE)
        .flat_map(|u| u.perms.iter().map(String::as_str))
        .collect()
}

fn lacks(users: &[User], user: &str, needed: &BTreeSet<&'static str>) -> Vec<&'static str> {
    let granted = granted(users, user);
    if granted.contains(ALL) {
        return Vec::new();
    }
    needed
        .iter()
        .copied()
        .filter(|p| !granted.contains(p))
        .collect()
}

/// The credentials rq4d uses: `--rqlite-user` (its password from `--rqlite-password-file`, else
/// from the auth file), else the first user of the file whose permissions cover rq4d's needs.
fn credentials(users: &[User], file: &str, wanted: &Wanted<'_>) -> Result<Credentials, Refusal> {
    let needed = needed(wanted);
    let Some(name) = wanted.user else {
        if wanted.password_file.is_some() {
            return Err(refuse(
                "--rqlite-password-file",
                "needs --rqlite-user: whose password is it?",
            ));
        }
        let user = users
            .iter()
            .filter(|u| u.username != EVERYONE)
            .find(|u| lacks(users, &u.username, &needed).is_empty())
            .ok_or_else(|| {
                refuse(
                    "-auth",
                    format!(
                        "no user of {file} may do what rq4d does ({}): add one with these \
                         permissions (or \"all\"), or name one with --rqlite-user",
                        needed.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
        return Ok(Credentials {
            user: user.username.clone(),
            password: user.password.clone(),
        });
    };
    let Some(user) = users.iter().find(|u| u.username == name) else {
        return Err(refuse(
            "--rqlite-user",
            format!(
                "{name:?} is not a user of {file}: rqlited's -join-as, which rq4d sets to this \
                 user, takes the password from that file"
            ),
        ));
    };
    let missing = lacks(users, name, &needed);
    if !missing.is_empty() {
        return Err(refuse(
            "--rqlite-user",
            format!(
                "{name:?} lacks the permission(s) {} in {file} (rq4d polls /status, /nodes and \
                 /readyz, removes dead nodes and joins with -join-as)",
                missing.join(", ")
            ),
        ));
    }
    let password = match wanted.password_file {
        Some(path) => read_password(path)?,
        None => user.password.clone(),
    };
    if password != user.password {
        return Err(refuse(
            "--rqlite-password-file",
            format!("is not {name:?}'s password in {file}"),
        ));
    }
    Ok(Credentials {
        user: name.to_string(),
        password,
    })
}

fn read_password(path: &Path) -> Result<String, Refusal> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        refuse(
            "--rqlite-password-file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// rqlited's arguments read as Go's `flag` package reads them (`-f v`, `-f=v`, `--f v`,
/// booleans bare or `-f=true`), for the few flags rq4d must know.
pub(crate) struct GoFlags<'a>(pub(crate) &'a [String]);

impl GoFlags<'_> {
    /// True when the flag `name` is given at all, in any of Go's spellings.
    pub(crate) fn given(&self, name: &str) -> bool {
        self.0
            .iter()
            .filter_map(|a| split(a))
            .any(|(flag, _)| flag == name)
    }

    /// The value of the string flag `name`, the last one given.
    fn value(&self, name: &str) -> Option<&str> {
        let mut found = None;
        let mut args = self.0.iter();
        while let Some(arg) = args.next() {
            let Some((flag, inline)) = split(arg) else {
                continue;
            };
            if flag == name {
                found = match inline {
                    Some(value) => Some(value),
                    None => args.next().map(String::as_str),
                };
            }
        }
        found
    }

    /// True when the boolean flag `name` is set (bare, or `=true`/`=1`…).
    fn set(&self, name: &str) -> bool {
        self.0
            .iter()
            .filter_map(|a| split(a))
            .fold(false, |set, (flag, inline)| {
                if flag != name {
                    return set;
                }
                inline.is_none_or(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
            })
    }
}

/// `-name[=value]` or `--name[=value]` → (name, value).
fn split(arg: &str) -> Option<(&str, Option<&str>)> {
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    Some(match name.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (name, None),
    })
}

#[cfg(test)]
mod tests;
