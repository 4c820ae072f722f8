//! The simulated network: addresses, per-link latency, loss, duplication, reordering, partitions.
//!
//! Every datagram a node sends goes through [`Network::transmit`], which decides from a seeded
//! generator whether it arrives, when, and how many times: one generator per layer (SWIM, the
//! rest), so that sending fewer card datagrams leaves the fates of SWIM's datagrams as they were
//! and a change to the card layer cannot move SWIM's false-down figures by chance. Partitions
//! are groups of hosts plus a set of one-way cuts between groups, so "A cannot hear B but B hears
//! A" is as easy to express as a clean split. Raft traffic (in the rqlite model) uses the same cuts but
//! not the loss: TCP retransmits what UDP would lose.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// rq4d's gossip port, rqlited's Raft port: the same on every host, as in compose.
pub const GOSSIP_PORT: u16 = 7946;
/// rqlited's Raft port.
pub const RAFT_PORT: u16 = 4002;
const FIRST_IP: u32 = u32::from_be_bytes([10, 0, 0, 0]);

/// How links behave. One set per scenario; the per-link part of the latency comes from a hash
/// of the pair, so some links are consistently slower than others.
#[derive(Clone, Debug)]
pub struct LinkParams {
    /// Median one-way latency of a link (each link gets 0.5–1.5× this).
    pub base_latency: Duration,
    /// Mean of the exponential extra delay added to every datagram.
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram arrives twice.
    pub duplicate: f64,
    /// Probability a datagram is held back by up to `reorder_delay` (so later ones overtake it).
    pub reorder: f64,
    /// The longest hold-back of a reordered datagram.
    pub reorder_delay: Duration,
}

impl LinkParams {
    /// A clean LAN: 0.5 ms links, a little jitter, nothing lost.
    pub fn lan() -> Self {
        Self {
            base_latency: Duration::from_micros(500),
            jitter: Duration::from_micros(200),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }
}

/// Counters over a whole run.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
    /// Datagrams delivered (duplicates counted).
    pub delivered: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub cut: u64,
    /// Datagrams sent to an address nobody holds.
    pub unroutable: u64,
    /// Bytes handed to the network by the envelope's kind byte: SWIM (foca) and cards; the
    /// split says which layer a change of the traffic comes from.
    pub bytes_by_kind: KindBytes,
}

/// Bytes sent, split by the envelope's kind (`rq4d_protocol::wire::Kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindBytes {
    /// foca's SWIM messages.
    pub swim: u64,
    /// The card layer's pushes and digests.
    pub cards: u64,
}

impl KindBytes {
    /// Counts one datagram by the kind byte of its envelope header.
    pub fn count(&mut self, datagram: &[u8]) {
        let len = datagram.len() as u64;
        if is_cards(datagram) {
            self.cards += len;
        } else {
            self.swim += len;
        }
    }
}

/// Whether the envelope's kind byte says the card layer (anything else counts as SWIM).
fn is_cards(datagram: &[u8]) -> bool {
    datagram.get(rq4d_protocol::wire::HEADER_LEN - 1)
        == Some(&(rq4d_protocol::wire::Kind::Cards as u8))
}

/// The generators that decide datagrams' fates, one per layer.
struct Fates {
    swim: SmallRng,
    cards: SmallRng,
}

impl Fates {
    fn new(seed: u64) -> Self {
        Self {
            swim: SmallRng::seed_from_u64(seed ^ 0x5357_494d_5357_494d),
            cards: SmallRng::seed_from_u64(seed ^ 0x4341_5244_4341_5244),
        }
    }

    fn of(&mut self, datagram: &[u8]) -> &mut SmallRng {
        if is_cards(datagram) {
            &mut self.cards
        } else {
            &mut self.swim
        }
    }
}

/// Addresses and hosts: which host holds which IP now. A host that restarts at a new address
/// gets a fresh IP; the old one then routes nowhere (as when a container is replaced).
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    /// By IP offset: the host holding it.
    holders: Vec<Option<usize>>,
}

impl Addresses {
    /// A fresh IP for `host`.
    pub fn allocate(&mut self, host: usize) -> Ipv4Addr {
        self.holders.push(Some(host));
        let offset = u32::try_from(self.holders.len()).unwrap_or(u32::MAX);
        Ipv4Addr::from(FIRST_IP + offset)
    }

    /// The IP `offset` places after the first for `host` (the slots before it stay free for
    /// [`Addresses::allocate_at`]; [`Addresses::allocate`] takes the first after all of them).
    pub fn allocate_at(&mut self, host: usize, offset: usize) -> Ipv4Addr {
        if self.holders.len() <= offset {
            self.holders.resize(offset + 1, None);
        }
        self.holders[offset] = Some(host);
        let offset = u32::try_from(offset + 1).unwrap_or(u32::MAX);
        Ipv4Addr::from(FIRST_IP + offset)
    }

    /// `ip` no longer routes anywhere.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(slot) = Self::offset(ip).and_then(|o| self.holders.get_mut(o)) {
            *slot = None;
        }
    }

    /// The host that holds the IP of `addr`, if any.
    pub fn host_of(&self, addr: SocketAddr) -> Option<usize> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        Self::offset(*v4.ip()).and_then(|o| self.holders.get(o).copied().flatten())
    }

    /// The host whose Raft address is `raft` (`ip:port` text), if any.
    pub fn host_of_raft(&self, raft: &str) -> Option<usize> {
        raft.parse::<SocketAddr>()
            .ok()
            .and_then(|addr| self.host_of(addr))
    }

    fn offset(ip: Ipv4Addr) -> Option<usize> {
        u32::from(ip)
            .checked_sub(FIRST_IP + 1)
            .and_then(|o| usize::try_from(o).ok())
    }
}

/// The gossip address of an IP.
pub fn gossip_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, GOSSIP_PORT))
}

/// The Raft address (as rqlited advertises it) of an IP.
pub fn raft_addr(ip: Ipv4Addr) -> String {
    format!("{ip}:{RAFT_PORT}")
}

/// The network between hosts.
pub struct Network {
    /// How links behave now.
    pub params: LinkParams,
    salt: u64,
    fates: Fates,
    group: Vec<u16>,
    cuts: BTreeSet<(u16, u16)>,
    /// Counters.
    pub stats: NetStats,
}

impl Network {
    /// A whole network; `seed` varies the per-link latencies and the datagrams' fates between
    /// scenarios.
    pub fn new(params: LinkParams, seed: u64) -> Self {
        Self {
            params,
            salt: seed,
            fates: Fates::new(seed),
            group: Vec::new(),
            cuts: BTreeSet::new(),
            stats: NetStats::default(),
        }
    }

    fn group_of(&self, host: usize) -> u16 {
        self.group.get(host).copied().unwrap_or(0)
    }

    /// True when nothing cuts `from → to`.
    pub fn reachable(&self, from: usize, to: usize) -> bool {
        self.cuts.is_empty()
            || !self
                .cuts
                .contains(&(self.group_of(from), self.group_of(to)))
    }

    /// True when both directions are open.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.reachable(a, b) && self.reachable(b, a)
    }

    /// True when no partition is in force.
    pub fn whole(&self) -> bool {
        self.cuts.is_empty()
    }

    /// Splits the hosts into `groups` (hosts not listed stay in group 0) that cannot reach each
    /// other in either direction.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.heal();
        for (g, hosts) in groups.iter().enumerate() {
            let g = u16::try_from(g + 1).unwrap_or(u16::MAX);
            for &host in hosts {
                self.set_group(host, g);
            }
        }
        let count = u16::try_from(groups.len()).unwrap_or(u16::MAX);
        for a in 0..=count {
            for b in 0..=count {
                if a != b {
                    self.cuts.insert((a, b));
                }
            }
        }
    }

    /// Cuts `hosts → everyone else` only: they still hear the others.
    pub fn cut_one_way(&mut self, hosts: &[usize]) {
        self.heal();
        for &host in hosts {
            self.set_group(host, 1);
        }
        self.cuts.insert((1, 0));
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.cuts.clear();
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    fn set_group(&mut self, host: usize, group: u16) {
        if self.group.len() <= host {
            self.group.resize(host + 1, 0);
        }
        self.group[host] = group;
    }

    /// Decides the fate of one datagram: the delays after which it arrives (none: lost or cut;
    /// two: duplicated).
    pub fn transmit(
        &mut self,
        from: usize,
        to: usize,
        datagram: &[u8],
    ) -> ([Option<Duration>; 2], usize) {
        self.stats.sent += 1;
        self.stats.bytes_sent += datagram.len() as u64;
        if !self.reachable(from, to) {
            self.stats.cut += 1;
            return ([None, None], 0);
        }
        let rng = self.fates.of(datagram);
        if self.params.loss > 0.0 && rng.random::<f64>() < self.params.loss {
            self.stats.lost += 1;
            return ([None, None], 0);
        }
        let first = Some(delay(&self.params, self.salt, rng, from, to));
        let second = (self.params.duplicate > 0.0 && rng.random::<f64>() < self.params.duplicate)
            .then(|| delay(&self.params, self.salt, rng, from, to));
        let count = 1 + usize::from(second.is_some());
        self.stats.delivered += count as u64;
        ([first, second], count)
    }
}

/// The fixed part of one link's latency.
fn link_latency(params: &LinkParams, salt: u64, a: usize, b: usize) -> Duration {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let mut h = salt ^ ((lo as u64) << 32 | hi as u64);
    // splitmix64 finaliser: a well-spread hash of the pair.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let factor = 0.5 + (h % 1000) as f64 / 1000.0;
    params.base_latency.mul_f64(factor)
}

/// One datagram's delay on the link `from → to`: the link's fixed part and the draws.
fn delay(params: &LinkParams, salt: u64, rng: &mut SmallRng, from: usize, to: usize) -> Duration {
    let mut delay = link_latency(params, salt, from, to);
    if !params.jitter.is_zero() {
        let u: f64 = rng.random::<f64>();
        let extra = -(1.0 - u).ln() * params.jitter.as_secs_f64();
        delay += Duration::from_secs_f64(extra.min(10.0));
    }
    if params.reorder > 0.0 && rng.random::<f64>() < params.reorder {
        delay += params.reorder_delay.mul_f64(rng.random::<f64>());
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cut_blocks_only_one_direction() {
        let mut net = Network::new(LinkParams::lan(), 1);
        net.cut_one_way(&[2]);
        assert!(!net.reachable(2, 0));
        assert!(net.reachable(0, 2));
        net.heal();
        assert!(net.connected(0, 2));
    }

    #[test]
    fn a_partition_separates_groups_both_ways() {
        let mut net = Network::new(LinkParams::lan(), 1);
        net.partition(&[vec![0, 1], vec![2]]);
        assert!(net.connected(0, 1));
        assert!(!net.reachable(0, 2) && !net.reachable(2, 0));
        assert!(!net.reachable(3, 0), "unlisted hosts form their own group");
    }

    #[test]
    fn loss_is_close_to_its_rate() {
        let mut params = LinkParams::lan();
        params.loss = 0.2;
        let mut net = Network::new(params, 7);
        let arrived = (0..10_000)
            .filter(|_| net.transmit(0, 1, &[0; 100]).1 > 0)
            .count();
        assert!((7_700..8_300).contains(&arrived), "{arrived}");
    }

    #[test]
    fn addresses_route_to_their_current_holder_only() {
        let mut addresses = Addresses::default();
        let a = addresses.allocate(0);
        let b = addresses.allocate(0);
        addresses.release(a);
        assert_eq!(addresses.host_of(gossip_addr(a)), None);
        assert_eq!(addresses.host_of(gossip_addr(b)), Some(0));
        assert_eq!(addresses.host_of_raft(&raft_addr(b)), Some(0));
    }
}
