//! What the double keeps in its data directory. rqlite's own file names are used
//! where they carry meaning for a supervisor: `raft.db` exists exactly when the node
//! has state (rq4d decides "new node or not" from it), and `raft/peers.json` is
//! rqlite's manual-recovery hook. The content of `raft.db` is the double's own JSON,
//! not BoltDB; a real rqlited data directory is refused with a clear error.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::sql::Db;
use super::wire::Server;

/// Marker so that a foreign `raft.db` is never mistaken for the double's.
pub const FORMAT: &str = "rq4d-rqlited-double/1";

/// Everything a node must remember across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Persisted {
    pub format: String,
    /// The id this data was last written under (informational: rqlite does not
    /// store it either, which is why a changed id on old data goes wrong).
    pub node_id: String,
    pub current_term: u64,
    /// Vote cast in `current_term`, so a restarted node cannot vote twice.
    pub voted_for: Option<String>,
    /// Latest cluster configuration: voters and non-voters.
    pub config: Vec<Server>,
    /// Index and term of the last log entry (config changes, writes, leader no-ops).
    pub last_index: u64,
    pub last_term: u64,
    /// The fake table store. Only the leader that took a write holds it.
    pub db: Db,
}

pub fn raft_db_path(dir: &Path) -> PathBuf {
    dir.join("raft.db")
}

/// Reads `raft.db`; `None` means the node has no state.
pub fn load(dir: &Path) -> anyhow::Result<Option<Persisted>> {
    let path = raft_db_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let p: Persisted = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a data file of the rq4d rqlited double (a real rqlited data directory cannot be used by the double)",
            path.display()
        )
    })?;
    if p.format != FORMAT {
        bail!("{} has unknown format {:?}", path.display(), p.format);
    }
    Ok(Some(p))
}

/// Writes `raft.db` atomically (temp file + rename) so a SIGKILL never leaves a
/// half-written state behind.
pub fn save(dir: &Path, p: &Persisted) -> anyhow::Result<()> {
    let path = raft_db_path(dir);
    let tmp = dir.join("raft.db.tmp");
    let bytes = serde_json::to_vec_pretty(p)?;
    fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PeerEntry {
    id: String,
    address: String,
    #[serde(default)]
    non_voter: bool,
}

/// rqlite's recovery: if `<data>/raft/peers.json` exists, its list replaces the
/// stored configuration and the file is renamed `peers.info`. Returns the path
/// used, for the log line, when a recovery happened.
pub fn recover_from_peers_json(
    dir: &Path,
    state: &mut Persisted,
) -> anyhow::Result<Option<PathBuf>> {
    let raft_dir = dir.join("raft");
    let peers = raft_dir.join("peers.json");
    if !peers.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&peers).with_context(|| format!("read {}", peers.display()))?;
    let entries: Vec<PeerEntry> = serde_json::from_str(&text)
        .with_context(|| format!("failed to read peers file {}", peers.display()))?;
    if entries.is_empty() {
        bail!(
            "failed to recover node: peers file {} lists no servers",
            peers.display()
        );
    }
    let mut config = Vec::new();
    for e in entries {
        // Keep the HTTP address we knew for this id; the next heartbeat refreshes it.
        let api_addr = state
            .config
            .iter()
            .find(|s| s.id == e.id)
            .map(|s| s.api_addr.clone())
            .unwrap_or_default();
        config.push(Server {
            id: e.id,
            addr: e.address,
            api_addr,
            voter: !e.non_voter,
        });
    }
    state.config = config;
    state.last_index += 1;
    fs::rename(&peers, raft_dir.join("peers.info"))
        .with_context(|| format!("failed to move {} after recovery", peers.display()))?;
    Ok(Some(peers))
}
