//! `rq4d members` (the membership of a running node as a table, like `consul members`) and
//! `rq4d health` (its health as an exit code).

use std::net::SocketAddr;

use std::time::Duration;

use anyhow::Context;
use rq4d_protocol::{Card, DbState, KeyId};

use crate::api::{MemberDoc, MembersDoc, Probe};

/// Fetches `/members` from `api` and prints it.
pub async fn print(api: SocketAddr, json: bool) -> anyhow::Result<()> {
    let body = fetch_members(api).await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    print!("{}", table(&parse_members(api, &body)?));
    Ok(())
}

/// Fetches `/members` from `api` and prints the keys each member holds and sends with.
pub async fn print_keyring(api: SocketAddr) -> anyhow::Result<()> {
    let body = fetch_members(api).await?;
    print!("{}", keyring_table(&parse_members(api, &body)?));
    Ok(())
}

async fn fetch_members(api: SocketAddr) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("http client")?;
    client
        .get(format!("http://{api}/members"))
        .send()
        .await
        .with_context(|| format!("cannot reach rq4d at {api} (is it running? see --api)"))?
        .text()
        .await
        .context("reading /members")
}

fn parse_members(api: SocketAddr, body: &str) -> anyhow::Result<MembersDoc> {
    serde_json::from_str(body)
        .with_context(|| format!("http://{api}/members did not answer rq4d's members document"))
}

/// The keys table: what every live member holds (from its card) and sends with (seen by the
/// answering node), then, per key, how many hold it and send with it.
pub fn keyring_table(doc: &MembersDoc) -> String {
    let live: Vec<&MemberDoc> = doc.members.iter().filter(|m| m.state != "down").collect();
    let ids = |keys: &[KeyId]| {
        if keys.is_empty() {
            "-".to_string()
        } else {
            keys.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let held = |m: &MemberDoc| m.card.as_ref().map(|c| c.keys.clone()).unwrap_or_default();
    let mut rows = vec![[
        "NODE".to_string(),
        "STATUS".into(),
        "HOLDS (primary first)".into(),
        "SENDS WITH".into(),
    ]];
    for member in &live {
        rows.push([
            member.node_id.clone(),
            member.state.clone(),
            ids(&held(member)),
            member.sends_with.map_or("-".into(), |k| k.to_string()),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let mut all: Vec<KeyId> = live.iter().flat_map(|m| held(m)).collect();
    all.sort();
    all.dedup();
    if all.is_empty() {
        out.push_str("\nno member has a gossip key: gossip is not authenticated\n");
        return out;
    }
    out.push('\n');
    for key in all {
        let holders = live.iter().filter(|m| held(m).contains(&key)).count();
        let senders = live.iter().filter(|m| m.sends_with == Some(key)).count();
        out.push_str(&format!(
            "key {key}: held by {holders} of {} live members, sent with by {senders}\n",
            live.len()
        ));
    }
    out
}

/// Asks the `probe`'s path; prints its answer; `Ok(true)` on 200.
pub async fn health(api: SocketAddr, probe: Probe) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .context("http client")?;
    let response = client
        .get(format!("http://{api}{}", probe.path()))
        .send()
        .await
        .with_context(|| format!("cannot reach rq4d at {api}"))?;
    let healthy = response.status().is_success();
    println!("{}", response.text().await.unwrap_or_default());
    Ok(healthy)
}

/// Renders the members table.
pub fn table(doc: &MembersDoc) -> String {
    let header = [
        "NODE", "GOSSIP", "STATUS", "DB", "ROLE", "LEADER", "TERM", "CLUSTER",
    ];
    let rows: Vec<[String; 8]> = doc.members.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out.push_str(&format!("\n{}: {}\n", doc.node_id, doc.decision));
    out
}

fn row(member: &MemberDoc) -> [String; 8] {
    // A down member's card is its last word, not its state: show none of it but the cluster.
    let card = member.card.as_ref().filter(|_| member.state != "down");
    let (db, role, leader, term) = match card.map(|c| &c.db) {
        Some(DbState::Running(r)) => {
            let read_only = card.is_some_and(|c| c.read_only);
            let role = match (r.voter, card.is_some_and(|c| r.is_leader_of(&c.node_id))) {
                (_, true) => "leader",
                (true, false) if r.leader.is_some() => "follower",
                (true, false) => "candidate",
                (false, _) if r.healthy() && read_only => "read-only",
                (false, _) if r.healthy() => "non-voter",
                (false, _) => "removed",
            };
            let leader = r.leader.as_ref().map_or("-".into(), ToString::to_string);
            (
                "running".to_string(),
                role.to_string(),
                leader,
                r.term.to_string(),
            )
        }
        Some(DbState::Starting) => ("starting".into(), "-".into(), "-".into(), "-".into()),
        Some(DbState::HasData { .. }) => ("stopped".into(), "-".into(), "-".into(), "-".into()),
        Some(DbState::Empty) => ("empty".into(), "-".into(), "-".into(), "-".into()),
        None if member.state == "down" => ("-".into(), "-".into(), "-".into(), "-".into()),
        None => ("?".into(), "-".into(), "-".into(), "-".into()),
    };
    let cluster = member
        .card
        .as_ref()
        .and_then(|c: &Card| c.cluster_id)
        .map_or("-".into(), |id| id.to_string());
    [
        member.node_id.clone(),
        member.gossip_addr.clone(),
        member.state.clone(),
        db,
        role,
        leader,
        term,
        cluster,
    ]
}
