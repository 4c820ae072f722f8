//! The data directory: rq4d's state file beside rqlited's own files.
//!
//! ```text
//! <data-dir>/rq4d.json   rq4d's state (`rq4d_protocol::stored::Stored`: node id, cluster id,
//!                        binding, whether rqlited's state is committed, the voters)
//! <data-dir>/rqlite/     rqlited's data directory (raft.db, db.sqlite, …)
//! ```
//!
//! What the state means and how it changes is the protocol crate's; this module reads it, writes
//! it durably whenever a transition changed it, and owns the files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rq4d_protocol::NodeId;
use rq4d_protocol::stored::Stored;

/// The data directory and rq4d's file in it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    stored: Stored,
}

/// rqlited's own directory inside a data directory `root`.
pub fn rqlite_dir_in(root: &Path) -> PathBuf {
    root.join("rqlite")
}

impl DataDir {
    /// Opens (creating if needed) the data directory. A state file a crash left empty or
    /// half-written is recovered from the temporary copy `save` writes first, if that one is
    /// whole; otherwise the start is refused with what to do — never guessed, never deleted.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join("rqlite"))
            .with_context(|| format!("cannot create data directory {}", root.display()))?;
        let file = root.join(STATE_FILE);
        let tmp = root.join(STATE_TMP);
        // (state, whether a state file existed, whether it came from the copy)
        let (stored, existed, recovered) = match read_stored(&file)? {
            Read::Whole(stored) => (stored, true, false),
            Read::Missing => match read_stored(&tmp)? {
                // A crash between the first write of the copy and its rename.
                Read::Whole(stored) => (stored, true, true),
                _ => (Stored::default(), false, false),
            },
            Read::Damaged(error) => match read_stored(&tmp)? {
                Read::Whole(stored) => {
                    tracing::warn!(
                        "{} was damaged ({error}); recovered it from {}",
                        file.display(),
                        tmp.display()
                    );
                    (stored, true, true)
                }
                _ => bail!(
                    "{} is empty or damaged ({error}), and {} holds no whole copy either. \
                     It records this node's id and cluster; rq4d will not guess them. Restore \
                     the file from a backup, or, if this node's data may be discarded, move the \
                     data directory {} aside and start afresh",
                    file.display(),
                    tmp.display(),
                    root.display()
                ),
            },
        };
        let mut dir = Self {
            root: root.to_path_buf(),
            stored,
        };
        if recovered {
            dir.write()?;
        }
        if !existed && dir.raft_db_exists() {
            // rqlited state from before rq4d looked after this directory: take it as real.
            dir.stored.committed = true;
        }
        Ok(dir)
    }

    /// rqlited's data directory.
    pub fn rqlite_dir(&self) -> PathBuf {
        rqlite_dir_in(&self.root)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when rqlited's `raft.db` exists.
    pub fn raft_db_exists(&self) -> bool {
        self.rqlite_dir().join("raft.db").exists()
    }

    /// Persists the state when a transition changed it.
    fn saved(&self, changed: bool) -> anyhow::Result<()> {
        if changed { self.write() } else { Ok(()) }
    }

    /// True when neither the directory nor `flag` names this node: [`DataDir::resolve_node_id`]
    /// then needs a default (`naming::default_node_id`).
    pub fn needs_default_id(&self, flag: Option<&NodeId>) -> bool {
        self.stored.node_id.is_none() && flag.is_none()
    }

    /// Settles the node id: the stored one, else `--node-id`, else `default`. A `--node-id`
    /// that contradicts the stored id of a directory with data is refused.
    pub fn resolve_node_id(
        &mut self,
        flag: Option<&NodeId>,
        default: Option<NodeId>,
    ) -> anyhow::Result<NodeId> {
        let id = match (&self.stored.node_id, flag) {
            (Some(stored), Some(flag)) if stored != flag && self.has_data() => bail!(
                "{flag} is not the id of this data: the data directory {} holds the state of \
                 node {stored}, and a node's id cannot change once it has data",
                self.root.display()
            ),
            (_, Some(flag)) => flag.clone(),
            (Some(stored), None) => stored.clone(),
            (None, None) => default.context("no node id: pass --node-id")?,
        };
        let changed = self.stored.set_node_id(&id);
        self.saved(changed)?;
        Ok(id)
    }

    /// The stored state as read (or recovered) at open, kept up to date by [`DataDir::save`].
    pub fn stored(&self) -> &Stored {
        &self.stored
    }

    /// True when rqlited's state counts as data.
    pub fn has_data(&self) -> bool {
        self.stored.has_data(self.raft_db_exists())
    }

    /// Writes `stored` durably as the directory's state (the supervisor's policy changed it).
    pub fn save(&mut self, stored: &Stored) -> anyhow::Result<()> {
        self.stored = stored.clone();
        self.write()
    }

    /// Writes `raft/peers.json` so rqlited starts with this configuration (rqlite's recovery for
    /// a cluster whose every voter moved); rqlited deletes the file once applied.
    pub fn write_peers_json(&self, peers: &[(NodeId, String)]) -> anyhow::Result<()> {
        let dir = self.rqlite_dir().join("raft");
        std::fs::create_dir_all(&dir)?;
        let doc: Vec<serde_json::Value> = peers
            .iter()
            .map(|(id, addr)| serde_json::json!({"id": id.as_str(), "address": addr, "non_voter": false}))
            .collect();
        let file = dir.join("peers.json");
        std::fs::write(&file, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", file.display()))
    }

    /// Volatile mode only: deletes rqlited's state. rq4d's own state is the policy's to change
    /// (`Stored::wiped` keeps the node id), and comes back through [`DataDir::save`].
    pub fn wipe_rqlite(&mut self) -> anyhow::Result<()> {
        let dir = self.rqlite_dir();
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot wipe {}", dir.display()))?;
        std::fs::create_dir_all(&dir)?;
        Ok(())
    }

    /// Writes the state durably: the copy first (written and fsynced), then renamed over the
    /// file, then the directory fsynced so the rename itself survives a power cut. A crash at
    /// any point leaves either file whole.
    fn write(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let file = self.root.join(STATE_FILE);
        let tmp = self.root.join(STATE_TMP);
        let text = serde_json::to_string_pretty(&self.stored)?;
        let write = || -> std::io::Result<()> {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()
        };
        write().with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))?;
        std::fs::File::open(&self.root)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", self.root.display()))
    }
}

/// rq4d's state file in the data directory, and the copy written before it is replaced.
const STATE_FILE: &str = "rq4d.json";
const STATE_TMP: &str = "rq4d.json.tmp";

/// What reading a state file found.
enum Read {
    Whole(Stored),
    Missing,
    /// Empty, cut short or not JSON: why.
    Damaged(String),
}

fn read_stored(file: &Path) -> anyhow::Result<Read> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => Ok(Read::Damaged("empty".into())),
        Ok(text) => Ok(match serde_json::from_str(&text) {
            Ok(stored) => Read::Whole(stored),
            Err(error) => Read::Damaged(error.to_string()),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rq4d_protocol::{ClusterId, DbState};

    fn temp() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rq4d-state-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn id(text: &str) -> NodeId {
        NodeId::new(text).expect("id")
    }

    /// Applies a transition of the stored state the way the supervisor does: persisted when it
    /// changed something.
    fn change(dir: &mut DataDir, transition: impl FnOnce(&mut Stored) -> bool) {
        let mut stored = dir.stored().clone();
        if transition(&mut stored) {
            dir.save(&stored).expect("save");
        }
    }

    #[test]
    fn the_node_id_is_persisted_and_wins_over_the_default() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        assert_eq!(
            dir.resolve_node_id(Some(&id("n1")), None).expect("ok"),
            id("n1")
        );
        let mut again = DataDir::open(&root).expect("opens");
        assert!(!again.needs_default_id(None));
        assert_eq!(
            again.resolve_node_id(None, Some(id("other"))).expect("ok"),
            id("n1")
        );
    }

    #[test]
    fn a_default_id_is_taken_once_and_kept() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        assert!(dir.needs_default_id(None));
        assert!(!dir.needs_default_id(Some(&id("n1"))));
        assert_eq!(
            dir.resolve_node_id(None, Some(id("rq4d_db_2")))
                .expect("ok"),
            id("rq4d_db_2")
        );
        let mut again = DataDir::open(&root).expect("opens");
        assert!(!again.needs_default_id(None));
        assert_eq!(
            again.resolve_node_id(None, None).expect("ok"),
            id("rq4d_db_2")
        );
    }

    #[test]
    fn a_changed_node_id_on_data_is_refused() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        std::fs::write(dir.rqlite_dir().join("raft.db"), b"x").expect("write");
        change(&mut dir, |s| s.commit(Some(ClusterId(5)), 3));
        let mut again = DataDir::open(&root).expect("opens");
        let err = again
            .resolve_node_id(Some(&id("n2")), None)
            .expect_err("refused");
        assert!(
            err.to_string().contains("holds the state of node n1"),
            "{err}"
        );
    }

    #[test]
    fn an_uncommitted_raft_db_is_not_data() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        std::fs::write(dir.rqlite_dir().join("raft.db"), b"x").expect("write");
        assert_eq!(
            dir.stored().db_state(dir.raft_db_exists()),
            DbState::Empty,
            "a failed join leaves no data"
        );
        change(&mut dir, |s| s.commit(Some(ClusterId(5)), 3));
        assert_eq!(
            dir.stored().db_state(dir.raft_db_exists()),
            DbState::HasData { last_voters: 3 }
        );
        assert_eq!(
            DataDir::open(&root).expect("opens").stored().cluster_id(),
            Some(ClusterId(5))
        );
    }

    #[test]
    fn a_binding_survives_a_restart_without_counting_as_data() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        change(&mut dir, |s| s.bind(ClusterId(8), Some(3)));
        let again = DataDir::open(&root).expect("opens");
        assert_eq!(again.stored().cluster_id(), Some(ClusterId(8)));
        assert_eq!(again.stored().formation(), Some(3));
        assert_eq!(
            again.stored().db_state(again.raft_db_exists()),
            DbState::Empty
        );
    }

    #[test]
    fn a_state_file_a_crash_left_empty_is_recovered_from_the_whole_copy() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        change(&mut dir, |s| s.bind(ClusterId(8), Some(3)));
        let whole = std::fs::read(root.join(STATE_FILE)).expect("read");
        std::fs::write(root.join(STATE_TMP), &whole).expect("copy");
        std::fs::write(root.join(STATE_FILE), b"").expect("truncate");
        let again = DataDir::open(&root).expect("recovered");
        assert_eq!(again.stored().cluster_id(), Some(ClusterId(8)));
        assert_eq!(
            std::fs::read(root.join(STATE_FILE)).expect("read"),
            whole,
            "the file is whole again"
        );
    }

    #[test]
    fn a_damaged_state_file_without_a_whole_copy_is_refused_and_nothing_is_deleted() {
        let root = temp();
        let mut dir = DataDir::open(&root).expect("opens");
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        std::fs::write(dir.rqlite_dir().join("raft.db"), b"x").expect("write");
        std::fs::write(root.join(STATE_FILE), b"{\"node_id\": \"n").expect("cut short");
        let _ = std::fs::remove_file(root.join(STATE_TMP));
        let error = DataDir::open(&root).expect_err("refused").to_string();
        assert!(
            error.contains("rq4d.json") && error.contains("backup"),
            "{error}"
        );
        assert!(
            root.join("rqlite/raft.db").exists(),
            "the data is untouched"
        );
        assert_eq!(
            std::fs::read(root.join(STATE_FILE)).expect("read"),
            b"{\"node_id\": \"n",
            "the damaged file is left for a human"
        );
    }

    #[test]
    fn state_from_before_rq4d_counts_as_data() {
        let root = temp();
        std::fs::create_dir_all(root.join("rqlite")).expect("dir");
        std::fs::write(root.join("rqlite/raft.db"), b"x").expect("write");
        let mut dir = DataDir::open(&root).expect("opens");
        assert!(dir.has_data());
        dir.resolve_node_id(Some(&id("n1")), None).expect("ok");
        assert!(
            DataDir::open(&root).expect("opens").has_data(),
            "still data once rq4d.json exists"
        );
    }
}
