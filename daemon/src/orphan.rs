//! An rqlited left running by an rq4d that was killed where nothing takes its children down
//! with it (`kill -9` outside a container; in one, rq4d is PID 1 and the kernel does). rq4d
//! records its rqlited's pid in the data directory, and the next rq4d on that directory finds
//! the process by that pid *and* its command line — an rqlited serving this very directory —
//! and stops it before starting its own, which would otherwise fail on the ports for ever.
//!
//! Why not `PR_SET_PDEATHSIG` on the child: it has to be set between fork and exec
//! (`Command::pre_exec`, unsafe), and it fires when the forking *thread* exits, not the process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The file, beside rqlited's own directory.
const PID_FILE: &str = "rqlited.pid";

/// How long a leftover rqlited gets to stop on SIGTERM before SIGKILL (rq4d's own grace).
const GRACE: Duration = Duration::from_secs(7);

fn pid_file(data_dir: &Path) -> PathBuf {
    data_dir.join(PID_FILE)
}

/// Records the pid of the rqlited just started. A failure only costs the cleanup after a
/// `kill -9`, so it is logged, not fatal.
pub fn record(data_dir: &Path, pid: i32) {
    if let Err(error) = std::fs::write(pid_file(data_dir), format!("{pid}\n")) {
        tracing::warn!(
            "cannot record rqlited's pid in {}: {error}",
            pid_file(data_dir).display()
        );
    }
}

/// Forgets the pid of an rqlited that has stopped.
pub fn forget(data_dir: &Path) {
    let _ = std::fs::remove_file(pid_file(data_dir));
}

/// Stops the rqlited an earlier rq4d left running on `data_dir`, if there is one; returns its
/// pid. A pid that now belongs to another process is left alone.
pub async fn stop_leftover(data_dir: &Path) -> Option<i32> {
    let rqlite_dir = &crate::state::rqlite_dir_in(data_dir);
    let text = std::fs::read_to_string(pid_file(data_dir)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    if pid == std::process::id() as i32 || !serves(pid, rqlite_dir) {
        forget(data_dir);
        return None;
    }
    tracing::warn!(
        pid,
        "an rqlited of this data directory ({}) is still running, left by an earlier rq4d; stopping it",
        rqlite_dir.display()
    );
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(pid) {
        tracing::warn!(
            pid,
            "the leftover rqlited ignored SIGTERM for {GRACE:?}; killing it"
        );
        let _ = kill(target, Signal::SIGKILL);
        while alive(pid) && Instant::now() < deadline + GRACE {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    forget(data_dir);
    Some(pid)
}

/// True when process `pid` runs with `rqlite_dir` as one of its arguments.
fn serves(pid: i32, rqlite_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let dir = rqlite_dir.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == dir)
}

/// True while `pid` exists and is no zombie (an orphan that exited waits as a zombie for its
/// new parent to reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_leftover_process_of_this_directory_is_stopped_and_no_other() {
        let data = std::env::temp_dir().join(format!("rq4d-orphan-{}", std::process::id()));
        let rqlite = crate::state::rqlite_dir_in(&data);
        std::fs::create_dir_all(&rqlite).expect("mkdir");
        // A stand-in for an rqlited serving the directory: the directory is one of its
        // arguments (two commands, so that sh stays the process instead of exec-ing sleep).
        let mut leftover = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "sh", rqlite.to_str().expect("utf-8")])
            .spawn()
            .expect("spawn");
        let other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        // Until the child has exec'd, its command line is still this test's.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !serves(leftover.id() as i32, &rqlite) {
            assert!(
                Instant::now() < deadline,
                "the stand-in never showed its arguments"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        record(&data, other.id() as i32);
        assert_eq!(
            stop_leftover(&data).await,
            None,
            "another process is left alone"
        );
        assert!(alive(other.id() as i32));

        record(&data, leftover.id() as i32);
        assert_eq!(stop_leftover(&data).await, Some(leftover.id() as i32));
        let status = leftover.wait().expect("wait");
        assert!(!status.success(), "stopped by a signal: {status}");
        assert!(!pid_file(&data).exists(), "the record is gone with it");

        let mut other = other;
        let _ = other.kill();
        let _ = other.wait();
        let _ = std::fs::remove_dir_all(&data);
    }
}
