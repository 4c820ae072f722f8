//! The DNS model: a name that lists the containers of the service, with a lag.
//!
//! Docker's embedded DNS (and Kubernetes' headless services) add a container's address some time
//! after it starts and drop it some time after it stops; rq4d re-resolves every few seconds and
//! says hello to what it finds. Large answers are truncated in practice (a UDP answer holds a few
//! dozen records), so the model can cap an answer to a random sample, which is also what keeps
//! discovery from costing O(N²) per round in the 10 000-node runs.

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

#[derive(Clone, Debug)]
struct Record {
    addr: SocketAddr,
    up_at: Duration,
    down_at: Option<Duration>,
}

/// The service name's records.
#[derive(Clone, Debug)]
pub struct Dns {
    lag: Duration,
    limit: Option<usize>,
    records: Vec<Record>,
}

impl Dns {
    /// A name whose records appear and disappear `lag` after the container does; answers hold
    /// at most `limit` records (a random sample) when set.
    pub fn new(lag: Duration, limit: Option<usize>) -> Self {
        Self {
            lag,
            limit,
            records: Vec::new(),
        }
    }

    /// A container holding `addr` started at `now`.
    pub fn register(&mut self, addr: SocketAddr, now: Duration) {
        self.records.push(Record {
            addr,
            up_at: now,
            down_at: None,
        });
    }

    /// The container holding `addr` stopped at `now`.
    pub fn unregister(&mut self, addr: SocketAddr, now: Duration) {
        for record in self
            .records
            .iter_mut()
            .filter(|r| r.addr == addr && r.down_at.is_none())
        {
            record.down_at = Some(now);
        }
        let lag = self.lag;
        self.records
            .retain(|r| r.down_at.is_none_or(|down| down + lag + lag > now));
    }

    fn visible(&self, record: &Record, now: Duration) -> bool {
        record.up_at + self.lag <= now && record.down_at.is_none_or(|down| down + self.lag > now)
    }

    /// What a lookup returns at `now`.
    pub fn answer(&self, now: Duration, rng: &mut SmallRng) -> Vec<SocketAddr> {
        match self.limit {
            Some(limit) if self.records.len() > limit => {
                let mut out = Vec::with_capacity(limit);
                for _ in 0..limit * 2 {
                    let record = &self.records[rng.random_range(0..self.records.len())];
                    if self.visible(record, now) && !out.contains(&record.addr) {
                        out.push(record.addr);
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                out
            }
            _ => self
                .records
                .iter()
                .filter(|r| self.visible(r, now))
                .map(|r| r.addr)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn records_appear_and_disappear_with_the_lag() {
        let mut dns = Dns::new(Duration::from_secs(2), None);
        let mut rng = SmallRng::seed_from_u64(1);
        let addr: SocketAddr = "10.0.0.1:7946".parse().expect("addr");
        dns.register(addr, Duration::ZERO);
        assert!(dns.answer(Duration::from_secs(1), &mut rng).is_empty());
        assert_eq!(dns.answer(Duration::from_secs(2), &mut rng), vec![addr]);
        dns.unregister(addr, Duration::from_secs(5));
        assert_eq!(dns.answer(Duration::from_secs(6), &mut rng), vec![addr]);
        assert!(dns.answer(Duration::from_secs(7), &mut rng).is_empty());
    }
}
