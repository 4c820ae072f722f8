//! Finding peers: DNS names re-resolved every few seconds, static seeds, UDP broadcast.
//!
//! Discovery only produces addresses to say hello to; gossip does the rest. It runs as its own
//! task, so a slow resolver never stalls the gossip loop, and it keeps trying for as long as rq4d
//! runs: DNS lists containers as they start and stop, and Docker's embedded DNS answers with a
//! 600 s TTL that must not be trusted. Names are resolved through the system resolver
//! (`getaddrinfo`), which caches nothing, so every round sees the current replicas.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::Discovery;
use crate::tasks::Tasks;

/// How often discovery runs.
pub const EVERY: Duration = Duration::from_secs(3);
/// How often "still nothing found" is logged.
const COMPLAIN_EVERY: Duration = Duration::from_secs(30);

/// Where to look.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `--discover dns:NAME[:PORT]`.
    pub dns: Vec<Discovery>,
    /// `--seeds`.
    pub seeds: Vec<String>,
    /// `--broadcast`: the subnets' broadcast addresses.
    pub broadcast: bool,
    /// The default port for names given without one.
    pub gossip_port: u16,
}

impl Sources {
    /// Resolves every source once.
    pub async fn resolve(&self) -> BTreeSet<SocketAddr> {
        let mut found = BTreeSet::new();
        for Discovery::Dns { name, port } in &self.dns {
            let port = port.unwrap_or(self.gossip_port);
            match tokio::net::lookup_host((name.as_str(), port)).await {
                Ok(addrs) => found.extend(addrs),
                Err(error) => tracing::debug!(%name, %error, "DNS lookup failed"),
            }
        }
        for seed in &self.seeds {
            match tokio::net::lookup_host(seed.as_str()).await {
                Ok(addrs) => found.extend(addrs),
                Err(error) => tracing::debug!(%seed, %error, "seed lookup failed"),
            }
        }
        if self.broadcast {
            found.extend(
                broadcast_addrs()
                    .into_iter()
                    .map(|ip| SocketAddr::new(IpAddr::V4(ip), self.gossip_port)),
            );
        }
        found
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .dns
            .iter()
            .map(|Discovery::Dns { name, .. }| format!("dns:{name}"))
            .collect();
        if !self.seeds.is_empty() {
            parts.push(format!("seeds {}", self.seeds.join(",")));
        }
        if self.broadcast {
            parts.push("broadcast".into());
        }
        parts.join(", ")
    }
}

/// Runs discovery among `tasks` until the daemon stops, sending every round's addresses (never
/// this node's own).
pub fn spawn(
    tasks: &mut Tasks,
    sources: Sources,
    me: SocketAddr,
    found: mpsc::Sender<Vec<SocketAddr>>,
) {
    let stop = tasks.stop_signal().requested();
    tasks.spawn("discovery", async move {
        let mut round = tokio::time::interval(EVERY);
        let mut last_complaint: Option<Instant> = None;
        let started = Instant::now();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = round.tick() => {}
                () = &mut stop => return,
            }
            let addrs: Vec<SocketAddr> = sources
                .resolve()
                .await
                .into_iter()
                .filter(|addr| *addr != me)
                .collect();
            if addrs.is_empty() {
                let due = last_complaint.is_none_or(|at| at.elapsed() >= COMPLAIN_EVERY);
                if due && started.elapsed() >= EVERY * 3 {
                    tracing::info!(
                        "waiting for peers: nothing found yet through {}",
                        sources.describe()
                    );
                    last_complaint = Some(Instant::now());
                }
            }
            if found.send(addrs).await.is_err() {
                return;
            }
        }
    });
}

/// The IPv4 broadcast addresses of the up, non-loopback interfaces.
fn broadcast_addrs() -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|ifa| {
            !ifa.flags
                .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
        })
        .filter_map(|ifa| ifa.broadcast?.as_sockaddr_in().map(|sin| sin.ip()))
        .collect()
}

/// The IP addresses of this machine's interfaces.
pub fn local_ips() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let addr = ifa.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// Picks the address peers reach this node at (see `--advertise`): the bind IP when specific;
/// else a local address that discovery returned (a compose service name lists this replica
/// too); else the source address of the route to a discovered peer; else the first
/// non-loopback interface address; else loopback.
pub fn choose_advertise(bind: IpAddr, discovered: &BTreeSet<SocketAddr>) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    let local = local_ips();
    if let Some(addr) = discovered.iter().find(|a| local.contains(&a.ip())) {
        return addr.ip();
    }
    for peer in discovered {
        let probe = UdpSocket::bind(SocketAddr::new(unspecified_like(peer.ip()), 0))
            .and_then(|socket| socket.connect(peer).map(|()| socket))
            .and_then(|socket| socket.local_addr());
        if let Ok(addr) = probe
            && !addr.ip().is_unspecified()
        {
            return addr.ip();
        }
    }
    local
        .iter()
        .copied()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_bind_address_is_advertised() {
        let ip: IpAddr = "127.0.0.3".parse().expect("ip");
        assert_eq!(choose_advertise(ip, &BTreeSet::new()), ip);
    }

    #[test]
    fn a_discovered_local_address_is_advertised() {
        let found: BTreeSet<SocketAddr> = ["127.0.0.1:7946".parse().expect("addr")].into();
        let ip = choose_advertise("0.0.0.0".parse().expect("ip"), &found);
        assert_eq!(ip, "127.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn never_advertises_the_unspecified_address() {
        let ip = choose_advertise("0.0.0.0".parse().expect("ip"), &BTreeSet::new());
        assert!(!ip.is_unspecified());
    }
}
