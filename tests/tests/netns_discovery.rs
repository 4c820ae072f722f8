//! Three "hosts" (network namespaces on one bridge) find each other — by UDP broadcast alone, or
//! by a DNS name that resolves to all three (through the system resolver, with a per-namespace
//! `/etc/hosts` as `ip netns exec` provides) — with gossip bound to 0.0.0.0 and the advertised
//! address detected, and form one cluster.
//!
//! Needs root and `ip netns` (as on CI); elsewhere it says it skipped and passes, because the
//! machine, not rq4d, lacks what it tests.

use std::process::{Command, Stdio};

use rq4d_tests::cluster::{FORM_DEADLINE, rq4d_binary};
use rq4d_tests::{TempDir, rqlited_binary, wait_until};
use serde_json::Value;

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A hub namespace holding a bridge, and one namespace per host with a veth into it.
struct Hosts {
    tag: String,
    names: Vec<String>,
}

impl Hosts {
    fn create(label: &str, n: usize) -> Result<Self, String> {
        let tag = format!("r4{}{label}", std::process::id() % 100_000);
        let hosts = Self {
            names: (0..n).map(|i| format!("{tag}h{i}")).collect(),
            tag,
        };
        let hub = hosts.hub();
        sh(&["ip", "netns", "add", &hub])?;
        sh(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        for (i, name) in hosts.names.iter().enumerate() {
            sh(&["ip", "netns", "add", name])?;
            let outer = format!("v{i}");
            sh(&[
                "ip", "-n", &hub, "link", "add", &outer, "type", "veth", "peer", "name", "eth0",
                "netns", name,
            ])?;
            sh(&[
                "ip", "-n", &hub, "link", "set", &outer, "master", "br0", "up",
            ])?;
            let addr = format!("10.77.{}.{}/24", std::process::id() % 200, i + 1);
            sh(&[
                "ip", "-n", name, "addr", "add", &addr, "brd", "+", "dev", "eth0",
            ])?;
            sh(&["ip", "-n", name, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    fn hub(&self) -> String {
        format!("{}hub", self.tag)
    }

    fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", std::process::id() % 200, i + 1)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
        for name in self.names.iter().chain([&self.hub()]) {
            let _ = Command::new("ip")
                .args(["netns", "pids", name])
                .output()
                .map(|out| {
                    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", pid]).status();
                    }
                });
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn members(hosts: &Hosts, i: usize) -> Result<Value, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &hosts.names[i]])
        .arg(rq4d_binary())
        .args([
            "members",
            "--json",
            "--api",
            &format!("{}:7947", hosts.ip(i)),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn hosts_on_one_bridge_find_each_other_by_broadcast_and_form_one_cluster() {
    form("b", &["--broadcast"], false);
}

#[test]
fn hosts_find_each_other_through_a_dns_name_listing_them_all() {
    form("d", &["--discover", "dns:db"], true);
}

fn form(label: &str, discovery: &[&str], dns: bool) {
    let hosts = match Hosts::create(label, 3) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("SKIPPED: network namespaces unavailable here ({error})");
            return;
        }
    };
    if dns {
        // `ip netns exec` bind-mounts /etc/netns/<name>/hosts over /etc/hosts.
        let lines: String = (0..3).map(|i| format!("{} db\n", hosts.ip(i))).collect();
        for name in &hosts.names {
            let dir = format!("/etc/netns/{name}");
            if let Err(error) = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(format!("{dir}/hosts"), &lines))
            {
                eprintln!("SKIPPED: cannot write {dir}/hosts ({error})");
                return;
            }
        }
    }
    let dir = TempDir::new("netns").expect("temp dir");
    let mut children = Vec::new();
    for i in 0..3 {
        let log = std::fs::File::create(dir.join(&format!("h{i}.log"))).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &hosts.names[i]])
            .arg(rq4d_binary())
            .args(["--node-id", &format!("h{i}"), "--expect", "3"])
            .args(discovery)
            .arg("--rqlited")
            .arg(rqlited_binary())
            .arg("--data-dir")
            .arg(dir.join(&format!("h{i}")))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rq4d starts");
        children.push(child);
    }
    let result = wait_until("one cluster of three", FORM_DEADLINE, || {
        let mut leaders = std::collections::BTreeSet::new();
        for i in 0..3 {
            let doc = members(&hosts, i)?;
            let me = &doc["members"][0]["card"];
            let advertised = me["gossip_addr"].as_str().unwrap_or_default();
            if advertised != format!("{}:7946", hosts.ip(i)) {
                return Err(format!("h{i} advertises {advertised}"));
            }
            let leader = me["db"]["Running"]["leader"].as_str().unwrap_or_default();
            if leader.is_empty() {
                return Err(format!("h{i}: {}", doc["decision"]));
            }
            leaders.insert(leader.to_string());
        }
        if leaders.len() == 1 {
            Ok(())
        } else {
            Err(format!("leaders {leaders:?}"))
        }
    });
    if let Err(error) = result {
        let logs: String = (0..3)
            .map(|i| std::fs::read_to_string(dir.join(&format!("h{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n");
        panic!("{error}\n{logs}");
    }
    drop(hosts);
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
