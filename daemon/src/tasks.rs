//! The daemon's background tasks, owned in one place so that shutdown waits for each of them
//! (as mini-redis does) instead of leaving them detached for the runtime to drop mid-step.
//!
//! Every task gets a [`Stop`] and ends soon after it fires; [`Tasks::stop`] fires it and waits,
//! with a deadline, for all of them.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Tells a task that the daemon is shutting down.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Completes once shutdown was asked for (at once if it already was).
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The daemon's background tasks.
pub struct Tasks {
    set: JoinSet<&'static str>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            set: JoinSet::new(),
            stop: watch::channel(false).0,
        }
    }
}

impl Tasks {
    /// The signal handed to tasks.
    pub fn stop_signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Runs `task` in the background under `name` (logged if it has to be aborted).
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.set.spawn(async move {
            task.await;
            name
        });
    }

    /// Asks every task to stop and waits up to `grace` for all of them; the ones still running
    /// then are aborted, and named in the log.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = async {
            while let Some(joined) = self.set.join_next().await {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    tracing::error!(%error, "a background task panicked");
                }
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                tasks = self.set.len(),
                "background tasks did not stop within {grace:?}; aborting them"
            );
            self.set.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_task_to_see_the_signal_and_finish() {
        let mut tasks = Tasks::default();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for name in ["a", "b", "c"] {
            let stop = tasks.stop_signal();
            let done = done_tx.clone();
            tasks.spawn(name, async move {
                stop.requested().await;
                tokio::task::yield_now().await;
                let _ = done.send(name);
            });
        }
        drop(done_tx);
        tasks.stop(Duration::from_secs(30)).await;
        let mut finished = Vec::new();
        while let Ok(name) = done_rx.try_recv() {
            finished.push(name);
        }
        finished.sort_unstable();
        assert_eq!(
            finished,
            ["a", "b", "c"],
            "every task finished before stop returned"
        );
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_signal_is_aborted_after_the_grace() {
        let mut tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("stubborn", async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        tasks.stop(Duration::from_millis(50)).await;
        assert!(
            rx.await.is_err(),
            "the task was dropped, and its sender with it"
        );
    }
}
