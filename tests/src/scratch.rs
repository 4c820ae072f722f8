//! What a test borrows from the machine: loopback ports no other test of this
//! process was given, and temporary directories that clean up after themselves.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn pseudo_random() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t
        ^ (u64::from(std::process::id()) << 20)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// A TCP port on 127.0.0.1 that is free right now and that this process has not
/// handed out before.
///
/// Ports are drawn from 20000–32767, below Linux's ephemeral range (32768+), so
/// the many short outgoing connections that nodes make can never occupy a port a
/// test is about to give to a node.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    loop {
        let port = 20_000 + (pseudo_random() % 12_768) as u16;
        if used.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.insert(port);
            return port;
        }
    }
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A directory under the system temp dir, removed on drop. Set
/// `RQ4D_KEEP_TEST_DIRS=1` to keep it for a post-mortem (its path is printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "rq4d-test-{label}-{}-{}",
            std::process::id(),
            pseudo_random() % 1_000_000
        ));
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<name>`, e.g. a node's data directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RQ4D_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping test directory {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
