//! The node id a node takes when neither its data directory nor `--node-id` names one: a name
//! a person can read in `rq4d members` and in rqlite's `/nodes`. It is persisted in the data
//! directory once chosen (`DataDir::resolve_node_id`), so whatever happens to the name later,
//! the id stays the data's.
//!
//! * The hostname: a Kubernetes pod's name (`db-0`), the hostname Swarm's stack file templates
//!   (`db-1`), a machine's name.
//! * Except where Docker made the hostname up — the first 12 hex digits of the container id
//!   (`8ba966ce30fc`), which nobody can tell apart. There the container's name is better, and
//!   Docker's DNS gives it for the container's address: Compose names replicas
//!   `<project>_<service>_<n>` (v1) or `<project>-<service>-<n>` (v2), and the reverse lookup
//!   answers `<name>.<network>`; the first label is the id. `/etc/hosts` is not asked, since
//!   Docker writes the made-up hostname there for that very address: the query goes to the
//!   name servers of `/etc/resolv.conf` (Docker's own, 127.0.0.11, in a user-defined network).
//!   No answer (the default bridge network has no DNS of Docker's) keeps the hostname.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use rq4d_protocol::NodeId;
use rq4d_protocol::identity::MAX_NODE_ID;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE};
use tokio::net::UdpSocket;

/// How long one name server gets to answer the reverse lookup.
const ASK_FOR: Duration = Duration::from_secs(1);

/// The id of a node whose data directory and flags name none; see the module docs.
pub async fn default_node_id(advertise: IpAddr) -> anyhow::Result<NodeId> {
    let host = nix::unistd::gethostname().context("cannot read the hostname")?;
    let host = host.to_string_lossy();
    if made_up_by_docker(&host) {
        let servers =
            name_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        for server in servers {
            match reverse_lookup(server, advertise).await {
                Ok(Some(name)) => {
                    if let Some(id) = container_name(&name) {
                        tracing::info!(
                            node = %id, hostname = %host,
                            "node id from the container's name (Docker's DNS: {advertise} is {name})"
                        );
                        return Ok(id);
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%server, %error, "reverse lookup of {advertise} failed");
                }
            }
        }
        tracing::info!(
            hostname = %host,
            "the hostname is Docker's container id and no name server named {advertise}; using it as the node id (--node-id gives a better one)"
        );
    }
    node_id_from(&host).context("the hostname gives no usable node id; pass --node-id")
}

/// True for the hostname Docker gives a container it was not told to name: the first 12 hex
/// digits of its id.
fn made_up_by_docker(host: &str) -> bool {
    host.len() == 12
        && host
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A node id made of `name`: characters a node id cannot hold become '-'.
fn node_id_from(name: &str) -> Option<NodeId> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NODE_ID)
        .collect();
    NodeId::new(cleaned).ok()
}

/// The node id in a reverse lookup's answer: its first label (`rq4d_db_3` of
/// `rq4d_db_3.rq4d_rqlite.`), unless that is the made-up hostname again.
fn container_name(answer: &str) -> Option<NodeId> {
    let first = answer.split('.').next()?;
    if first.is_empty() || made_up_by_docker(first) {
        return None;
    }
    node_id_from(first)
}

/// The `nameserver` lines of a resolv.conf.
fn name_servers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The name `server` gives `ip` (a PTR query), if any.
async fn reverse_lookup(server: SocketAddr, ip: IpAddr) -> anyhow::Result<Option<String>> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).context("no randomness for the query id")?;
    let id = u16::from_le_bytes(id);
    let query = ptr_query(id, ip)?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&query).await?;
    let mut buf = vec![0u8; 1500];
    let deadline = tokio::time::Instant::now() + ASK_FOR;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .context("no answer")??;
        // A stray or late datagram is not the answer; wait for the one with our id.
        if let Some(answer) = ptr_answer(id, &buf[..n]) {
            return Ok(answer);
        }
    }
}

/// A recursive PTR query for `ip` (`3.0.18.172.in-addr.arpa`, or the nibbles of an IPv6
/// address under `ip6.arpa`).
fn ptr_query(id: u16, ip: IpAddr) -> anyhow::Result<Vec<u8>> {
    let name = match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::new();
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    };
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new(&name)?,
        QTYPE::TYPE(TYPE::PTR),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    Ok(packet.build_bytes_vec()?)
}

/// The name a reply to query `id` gives (`Some(None)`: a reply without one); `None` when the
/// bytes are not a reply to that query.
fn ptr_answer(id: u16, bytes: &[u8]) -> Option<Option<String>> {
    let packet = Packet::parse(bytes).ok()?;
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    Some(
        packet
            .answers
            .iter()
            .find_map(|record| match &record.rdata {
                RData::PTR(ptr) => Some(ptr.0.to_string()),
                _ => None,
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dockers_made_up_hostnames_are_replaced() {
        assert!(made_up_by_docker("8ba966ce30fc"));
        assert!(!made_up_by_docker("db-0"));
        assert!(!made_up_by_docker("8ba966ce30fc0"));
        assert!(!made_up_by_docker("8BA966CE30FC"));
        assert!(!made_up_by_docker("build-host01"));
    }

    #[test]
    fn the_first_label_of_the_answer_is_the_id() {
        let id = |s: &str| container_name(s).map(|id| id.to_string());
        assert_eq!(id("rq4d_db_3.rq4d_rqlite."), Some("rq4d_db_3".into()));
        assert_eq!(id("rq4d-db-3.rq4d_default"), Some("rq4d-db-3".into()));
        assert_eq!(id("8ba966ce30fc.net."), None);
        assert_eq!(id(".net."), None);
    }

    #[test]
    fn name_servers_come_from_resolv_conf() {
        let conf =
            "# Docker\nnameserver 127.0.0.11\noptions ndots:0\nnameserver ::1\nnameserver bad\n";
        assert_eq!(
            name_servers(conf),
            vec![
                "127.0.0.11:53".parse::<SocketAddr>().expect("addr"),
                "[::1]:53".parse().expect("addr")
            ]
        );
    }

    /// A name server on loopback that answers one PTR query the way Docker's does; the
    /// lookup sends a well-formed query and reads the answer.
    #[tokio::test]
    async fn a_reverse_lookup_reads_the_name_a_server_answers() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let answering = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).await.expect("query");
            let query = Packet::parse(&buf[..n]).expect("a DNS query");
            let question = query.questions.first().expect("a question").clone();
            assert_eq!(question.qname.to_string(), "3.0.18.172.in-addr.arpa");
            // A stray reply with another id first: it must not be taken for the answer.
            let mut stray = Packet::new_reply(query.id().wrapping_add(1));
            stray.answers.push(simple_dns::ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                600,
                RData::PTR(Name::new_unchecked("wrong.net").into()),
            ));
            server
                .send_to(&stray.build_bytes_vec().expect("bytes"), from)
                .await
                .expect("send");
            let mut reply = Packet::new_reply(query.id());
            reply.questions.push(question.clone());
            reply.answers.push(simple_dns::ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                600,
                RData::PTR(Name::new_unchecked("rq4d_db_3.rq4d_rqlite").into()),
            ));
            server
                .send_to(&reply.build_bytes_vec().expect("bytes"), from)
                .await
                .expect("send");
        });
        let name = reverse_lookup(addr, "172.18.0.3".parse().expect("ip"))
            .await
            .expect("an answer");
        answering.await.expect("server");
        assert_eq!(name.as_deref(), Some("rq4d_db_3.rq4d_rqlite"));
    }

    #[test]
    fn ipv6_addresses_are_asked_by_nibbles() {
        let query = ptr_query(7, "2001:db8::1".parse().expect("ip")).expect("query");
        let packet = Packet::parse(&query).expect("parses");
        let name = packet.questions[0].qname.to_string();
        assert!(name.starts_with("1.0.0.0.0.0.0.0"), "{name}");
        assert!(name.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{name}");
    }
}
