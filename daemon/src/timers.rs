//! One ordered timer heap for everything the node schedules.
//!
//! foca requires its timers to be delivered, and in order (foca issue #26): one heap keyed by
//! (deadline, insertion sequence) gives both, where a task per timer would race.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rq4d_protocol::Timer;

/// Pending timers, earliest first; equal deadlines in insertion order.
#[derive(Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: std::collections::HashMap<u64, Timer>,
    seq: u64,
}

impl TimerHeap {
    /// Schedules `timer` at `at`.
    pub fn push(&mut self, at: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.timers.insert(self.seq, timer);
    }

    /// When the earliest timer is due; far in the future when none is pending.
    pub fn next_deadline(&self) -> Instant {
        self.heap.peek().map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            |Reverse((at, _))| *at,
        )
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let Reverse((at, seq)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.timers.remove(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_out_in_deadline_then_insertion_order() {
        let mut heap = TimerHeap::default();
        let t0 = Instant::now();
        heap.push(t0 + Duration::from_millis(20), Timer::CardSync);
        heap.push(t0 + Duration::from_millis(10), Timer::Tick);
        heap.push(t0 + Duration::from_millis(10), Timer::CardSync);
        assert_eq!(heap.pop_due(t0), None);
        let later = t0 + Duration::from_millis(30);
        let order: Vec<Timer> = std::iter::from_fn(|| heap.pop_due(later)).collect();
        assert_eq!(order, vec![Timer::Tick, Timer::CardSync, Timer::CardSync]);
        assert_eq!(heap.pop_due(later), None);
    }
}
