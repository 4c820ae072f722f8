//! rqlite's `-auth` file and its checks (`auth/credential_store.go`), so that a
//! supervisor written against the double sends credentials where rqlited
//! demands them: HTTP Basic auth on the API, and `-join-as` credentials on
//! joins, notifications and removals over the Raft port.
//!
//! The rules copied from rqlite v8: passwords are plaintext and compared as
//! strings; the user `*` grants its permissions to every caller, checked
//! *before* any password; `all` stands for every permission.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The user whose permissions apply to every request.
pub const ALL_USERS: &str = "*";

/// Permission names the double checks (rqlite has a few more, for endpoints the
/// double does not serve).
pub mod perm {
    pub const ALL: &str = "all";
    pub const EXECUTE: &str = "execute";
    pub const QUERY: &str = "query";
    pub const STATUS: &str = "status";
    pub const READY: &str = "ready";
    pub const JOIN: &str = "join";
    pub const JOIN_READ_ONLY: &str = "join-read-only";
    pub const REMOVE: &str = "remove";
}

/// A caller's username and password, as HTTP Basic auth carries them and as
/// rqlite's cluster commands carry them (`cluster.Credentials`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// Parses an `Authorization` header the way Go's `Request.BasicAuth` does:
    /// scheme `Basic` in any case, standard base64, split at the first colon.
    pub fn from_basic_header(value: &str) -> Option<Credentials> {
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = BASE64.decode(encoded).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// The users of an `-auth` file.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    passwords: HashMap<String, String>,
    perms: HashMap<String, HashSet<String>>,
}

impl CredentialStore {
    /// Reads an `-auth` file: a JSON array of `{"username", "password", "perms"}`.
    ///
    /// rqlite decodes every entry into the same variable, so an entry that
    /// leaves a field out inherits the previous entry's value; the double does
    /// the same rather than "fixing" it.
    pub fn load(path: &Path) -> anyhow::Result<CredentialStore> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        CredentialStore::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<CredentialStore> {
        let entries: Vec<Value> = serde_json::from_str(text)?;
        let mut store = CredentialStore::default();
        let (mut username, mut password, mut perms) = (String::new(), String::new(), Vec::new());
        for entry in entries {
            let Value::Object(m) = entry else {
                bail!("an entry is not a JSON object: {entry}");
            };
            if let Some(v) = m.get("username") {
                username = serde_json::from_value(v.clone()).context("username")?;
            }
            if let Some(v) = m.get("password") {
                password = serde_json::from_value(v.clone()).context("password")?;
            }
            if let Some(v) = m.get("perms") {
                perms = serde_json::from_value::<Vec<String>>(v.clone()).context("perms")?;
            }
            store.passwords.insert(username.clone(), password.clone());
            store
                .perms
                .insert(username.clone(), perms.iter().cloned().collect());
        }
        Ok(store)
    }

    /// The password the file gives `username` (`-join-as` looks it up in the
    /// joiner's own file).
    pub fn password(&self, username: &str) -> Option<&str> {
        self.passwords.get(username).map(String::as_str)
    }

    fn has_perm(&self, username: &str, perm: &str) -> bool {
        let grants = |u: &str| {
            self.perms
                .get(u)
                .is_some_and(|p| p.contains(perm) || p.contains(perm::ALL))
        };
        grants(username) || grants(ALL_USERS)
    }

    /// rqlite's `AA`: authenticated and authorised for `perm`. Anonymous callers
    /// pass `None`.
    pub fn allows(&self, caller: Option<&Credentials>, perm: &str) -> bool {
        if self.has_perm(ALL_USERS, perm) {
            return true;
        }
        let Some(c) = caller.filter(|c| !c.username.is_empty()) else {
            return false;
        };
        if self.passwords.get(&c.username) != Some(&c.password) {
            return false;
        }
        self.has_perm(&c.username, perm)
    }
}

/// `Some(store)` allows what `store` allows; `None` (no `-auth`) allows everything.
pub fn allowed(store: Option<&CredentialStore>, caller: Option<&Credentials>, perm: &str) -> bool {
    store.is_none_or(|s| s.allows(caller, perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn rqlite_rules() {
        let s = CredentialStore::parse(
            r#"[{"username":"bob","password":"secret1","perms":["all"]},
                {"username":"mary","password":"secret2","perms":["query","join"]},
                {"username":"*","perms":["status","ready"]}]"#,
        )
        .expect("parse");
        assert!(s.allows(Some(&creds("bob", "secret1")), perm::REMOVE));
        assert!(!s.allows(Some(&creds("bob", "wrong")), perm::REMOVE));
        assert!(s.allows(Some(&creds("mary", "secret2")), perm::JOIN));
        assert!(!s.allows(Some(&creds("mary", "secret2")), perm::JOIN_READ_ONLY));
        // `*` is checked before the password: a wrong password still gets status.
        assert!(s.allows(Some(&creds("bob", "wrong")), perm::STATUS));
        assert!(s.allows(None, perm::READY));
        assert!(!s.allows(None, perm::EXECUTE));
        // The `*` entry left out its password and inherited mary's.
        assert_eq!(s.password("*"), Some("secret2"));
    }

    #[test]
    fn basic_header() {
        let h = format!("basic {}", BASE64.encode("u:p:q"));
        assert_eq!(Credentials::from_basic_header(&h), Some(creds("u", "p:q")));
        assert_eq!(Credentials::from_basic_header("Bearer x"), None);
    }
}
