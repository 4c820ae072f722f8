//! The node's timers in one table: foca's and rq4d's own.
//!
//! The driver asks [`Node::poll_timeout`] when the next one is due and calls
//! [`Node::handle_timeout`] then (quinn-proto's shape), so no driver keeps a heap of its own.
//! foca requires its timers to be delivered, and in order (foca issue #26): the table is keyed
//! by (deadline, the order they were set in), and fires every due timer in that order.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Node;
use crate::identity::NodeIdentity;

/// A timer in the node's table (see [`Node::poll_timeout`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// One of foca's timers.
    Swim(foca::Timer<NodeIdentity>),
    /// Re-evaluate the decision (settle periods elapse without any input).
    Tick,
    /// Send a card digest to a random member.
    CardSync,
    /// The settle period of a membership change has passed: re-evaluate at once rather than at
    /// the next tick (cold-start latency).
    Settled,
}

/// Pending timers, earliest first; equal deadlines in the order they were set.
#[derive(Debug, Default)]
pub(super) struct Timers {
    table: BTreeMap<(Duration, u64), Timer>,
    set: u64,
}

impl Timers {
    /// Sets `timer` to fire at `at`.
    pub(super) fn set(&mut self, at: Duration, timer: Timer) {
        self.set += 1;
        self.table.insert((at, self.set), timer);
    }

    /// When the earliest timer is due.
    pub(super) fn next(&self) -> Option<Duration> {
        self.table.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer, if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<Timer> {
        let entry = self.table.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    /// How many are pending.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

impl Node {
    /// When [`Node::handle_timeout`] is due next (on the clock of the `now` arguments). Ask
    /// again after every call into the node: inputs set timers.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.next()
    }

    /// Fires every timer due at `now`, in order.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(timer, now);
        }
    }

    /// Sets `timer` to fire `after` from the `now` of the current input.
    pub(super) fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timers.set(self.now + after, timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_out_in_deadline_then_setting_order_and_only_when_due() {
        let mut timers = Timers::default();
        let ms = Duration::from_millis;
        timers.set(ms(20), Timer::CardSync);
        timers.set(ms(10), Timer::Tick);
        timers.set(ms(10), Timer::Settled);
        assert_eq!(timers.next(), Some(ms(10)));
        assert_eq!(timers.pop_due(ms(9)), None, "nothing is due early");
        let order: Vec<Timer> = std::iter::from_fn(|| timers.pop_due(ms(30))).collect();
        assert_eq!(order, vec![Timer::Tick, Timer::Settled, Timer::CardSync]);
        assert_eq!(timers.len(), 0);
        assert_eq!(timers.next(), None);
    }
}
