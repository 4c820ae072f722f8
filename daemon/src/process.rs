//! Child processes and PID-1 duties: one reaper for every child, orphans included.
//!
//! As PID 1 of a container (or as a child subreaper elsewhere, see [`become_subreaper`]) rq4d
//! inherits every orphaned process; nothing else would ever `wait` for them. So rq4d reaps *all*
//! children itself with `waitpid(-1, WNOHANG)` on every SIGCHLD (and once a second, since signals
//! coalesce), and hands the exit status of the children it started to whoever waits for them.
//! Children are therefore spawned with `std::process` and never waited for through it.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Level;

use crate::tasks::Tasks;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// Reaps every child and delivers the exits of watched ones.
#[derive(Clone, Default)]
pub struct Reaper {
    watched: Arc<Mutex<HashMap<i32, oneshot::Sender<Exit>>>>,
}

/// A running child started through [`Reaper::spawn`].
pub struct Child {
    pid: Pid,
    exit: oneshot::Receiver<Exit>,
    /// The tasks relaying its stdout and stderr.
    relays: Vec<JoinHandle<()>>,
}

/// How long the relays may take to log a child's last lines once it exited.
const RELAY_DRAIN: Duration = Duration::from_secs(1);

impl Reaper {
    /// Starts the reaping task among `tasks` (it reaps until the daemon stops).
    pub fn start(tasks: &mut Tasks) -> anyhow::Result<Self> {
        let reaper = Self::default();
        let mut sigchld = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
        let task = reaper.clone();
        let stop = tasks.stop_signal().requested();
        tasks.spawn("reaper", async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(1));
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = sweep.tick() => {}
                    () = &mut stop => break,
                }
                task.reap();
            }
            task.reap();
        });
        Ok(reaper)
    }

    fn reap(&self) {
        let Ok(mut watched) = self.watched.lock() else {
            return;
        };
        loop {
            let (pid, exit) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Exit::Signal(signal as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            match watched.remove(&pid.as_raw()) {
                Some(waiter) => {
                    let _ = waiter.send(exit);
                }
                None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped an orphaned process"),
            }
        }
    }

    /// Spawns `command` with its output relayed to the log under `name`.
    pub fn spawn(&self, name: &'static str, mut command: Command) -> anyhow::Result<Child> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Registered under the lock: the reaper cannot deliver this child's exit before the
        // waiter is in place.
        let mut watched = self
            .watched
            .lock()
            .map_err(|_| anyhow::anyhow!("reaper lock poisoned"))?;
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        let (tx, exit) = oneshot::channel();
        watched.insert(pid.as_raw(), tx);
        drop(watched);
        let relays = [
            child.stdout.take().and_then(|out| relay(name, out)),
            child.stderr.take().and_then(|err| relay(name, err)),
        ]
        .into_iter()
        .flatten()
        .collect();
        // `child` is dropped without waiting: the reaper owns the wait.
        Ok(Child { pid, exit, relays })
    }
}

/// Relays a child's output line by line into rq4d's log, until the pipe closes.
fn relay(name: &'static str, pipe: impl Into<std::os::fd::OwnedFd>) -> Option<JoinHandle<()>> {
    let fd: std::os::fd::OwnedFd = pipe.into();
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
    Some(tokio::spawn(async move {
        let mut lines = BufReader::new(receiver).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match level_of(&line) {
                Level::ERROR => tracing::error!(target: "rqlited", child = name, "{line}"),
                Level::WARN => tracing::warn!(target: "rqlited", child = name, "{line}"),
                Level::DEBUG | Level::TRACE => {
                    tracing::debug!(target: "rqlited", child = name, "{line}");
                }
                _ => tracing::info!(target: "rqlited", child = name, "{line}"),
            }
        }
    }))
}

/// The level of one line of rqlited's output: the tag it carries (`[WARN]`, `[ERROR]`, ...;
/// hashicorp/raft's logger writes them), else info — so that a warning of rqlited's is one
/// of rq4d's log too.
fn level_of(line: &str) -> Level {
    const TAGS: [(&str, Level); 6] = [
        ("[ERROR]", Level::ERROR),
        ("[ERR]", Level::ERROR),
        ("[WARN]", Level::WARN),
        ("[INFO]", Level::INFO),
        ("[DEBUG]", Level::DEBUG),
        ("[TRACE]", Level::TRACE),
    ];
    TAGS.iter()
        .filter_map(|(tag, level)| line.find(tag).map(|at| (at, *level)))
        .min_by_key(|(at, _)| *at)
        .map_or(Level::INFO, |(_, level)| level)
}

impl Child {
    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Waits for the child to end, and for the relays of its output to drain.
    pub async fn wait(&mut self) -> Exit {
        let exit = (&mut self.exit).await.unwrap_or(Exit::Code(-1));
        self.drain_relays().await;
        exit
    }

    /// The exit, if it has already happened.
    pub fn try_exit(&mut self) -> Option<Exit> {
        self.exit.try_recv().ok()
    }

    /// Waits a moment for the relays to log the child's last lines: its pipes close with it,
    /// unless a descendant still holds them, and then the relays are left to end with it.
    async fn drain_relays(&mut self) {
        for relay in self.relays.drain(..) {
            let _ = tokio::time::timeout(RELAY_DRAIN, relay).await;
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid, signal);
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Some(exit) = self.try_exit() {
            self.drain_relays().await;
            return exit;
        }
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid(),
                    "did not stop within {grace:?}; killing it"
                );
                self.signal(Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// Makes orphaned descendants (rqlited's own children, say) this process's children even when it
/// is not PID 1, so they are reaped here too and tests can check for orphans.
pub fn become_subreaper() {
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!(%error, "cannot become a child subreaper");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rqlited_lines_keep_their_level() {
        let cases = [
            (
                "2026-12-04T10:00:00.000Z [WARN]  raft: heartbeat timeout reached",
                Level::WARN,
            ),
            (
                "[raft] 2026/12/04 10:00:00 [ERROR] raft: failed to contact",
                Level::ERROR,
            ),
            (
                "2026-12-04T10:00:00.000Z [DEBUG] raft: vote granted",
                Level::DEBUG,
            ),
            (
                "[store] 2026/12/04 10:00:00 opening store with node ID db-1",
                Level::INFO,
            ),
            (
                "2026-12-04T10:00:00.000Z [INFO]  raft: a message quoting [WARN]",
                Level::INFO,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(level_of(line), want, "{line}");
        }
    }
}
