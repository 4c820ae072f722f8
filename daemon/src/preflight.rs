//! Checks that need the world, made before the gossip starts: is rqlited there and runnable,
//! are its ports and the status API's free, can the data directory be written. A node that
//! cannot work says so at once and exits 2 naming the flag, instead of retrying forever with
//! only `/health` saying why.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// A setting that cannot work on this host; exits 2 like a bad flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct Refused {
    /// The flag, and its environment variable when the value came from one.
    pub flag: String,
    pub message: String,
}

impl Refused {
    /// A refusal about `flag` of `config`.
    pub fn new(config: &Config, flag: &str, message: impl std::fmt::Display) -> Refused {
        Refused {
            flag: config.origins.name(flag),
            message: message.to_string(),
        }
    }
}

/// What the checks found: the rqlited binary, and the gossip socket, bound (first, since
/// rqlited listens on its IP too) and kept for the agent.
pub struct Checked {
    pub rqlited: PathBuf,
    pub gossip: std::net::UdpSocket,
}

/// Every check, in the order a user would fix them.
pub fn check(config: &Config) -> Result<Checked, Refused> {
    let rqlited =
        find_executable(&config.rqlited).map_err(|m| Refused::new(config, "--rqlited", m))?;
    let gossip =
        bind_gossip(config.gossip_bind).map_err(|m| Refused::new(config, "--gossip-bind", m))?;
    let listen = config.gossip_bind.ip();
    for (flag, port) in [
        ("--http-port", config.http_port),
        ("--raft-port", config.raft_port),
    ] {
        port_free(SocketAddr::new(listen, port)).map_err(|m| Refused::new(config, flag, m))?;
    }
    port_free(config.api_addr).map_err(|m| Refused::new(config, "--api-addr", m))?;
    writable(&config.data_dir).map_err(|m| Refused::new(config, "--data-dir", m))?;
    Ok(Checked { rqlited, gossip })
}

/// The executable `program` names: a path, or a name looked up on the PATH.
fn find_executable(program: &Path) -> Result<PathBuf, String> {
    if program.as_os_str().is_empty() {
        return Err("is empty: give the path of rqlited".into());
    }
    if program.components().count() > 1 {
        return executable(program).map(|()| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "{} is not on the PATH ({}): install rqlited, or give its path with --rqlited",
        program.display(),
        path.to_string_lossy()
    ))
}

fn executable(file: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if meta.is_dir() {
        return Err(format!("{} is a directory, not rqlited", file.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable (chmod +x)", file.display()));
    }
    Ok(())
}

/// Binds the gossip's UDP socket, non-blocking, for tokio to take over.
fn bind_gossip(addr: SocketAddr) -> Result<std::net::UdpSocket, String> {
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| why_not(addr, &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make {addr} non-blocking: {e}"))?;
    Ok(socket)
}

/// Why `addr` cannot be listened on, for the user.
fn why_not(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "{addr} is in use by another process (an rqlited left running by an earlier rq4d? \
             `ss -lntup` shows which)"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{addr}: {} is not an address of this host", addr.ip())
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// Binds `addr` for a moment. (std sets SO_REUSEADDR, so a port left in TIME_WAIT by the
/// previous rqlited counts as free, as it is for rqlited.)
fn port_free(addr: SocketAddr) -> Result<(), String> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| why_not(addr, &e))
}

/// Creates the directory if need be and writes (and removes) a file in it.
fn writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(".rq4d-write-check");
    std::fs::write(&probe, b"").map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => not_ours(dir, &e),
        _ => format!("cannot write in {}: {e}", dir.display()),
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Why a directory this process may not write in is refused, with the fix: the image runs as
/// uid 10001, and a volume made while earlier images ran as root is root's.
fn not_ours(dir: &Path, e: &std::io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid();
    let my_group = nix::unistd::getegid();
    let owner = std::fs::metadata(dir).map(|m| (m.uid(), m.gid()));
    match owner {
        Ok((uid, gid)) if uid != me.as_raw() => format!(
            "cannot write in {} ({e}): it belongs to uid {uid}:{gid} and rq4d runs as uid {me}. \
             A volume made while rq4d's image ran as root needs its owner changed once: `docker run --rm -v <volume>:/data --user 0 <any image with chown> chown -R \
             {me}:{my_group} /data` (or run this container with --user {uid})",
            dir.display()
        ),
        _ => format!("cannot write in {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rqlited_is_found_on_the_path_or_refused_with_why() {
        assert!(find_executable(Path::new("sh")).is_ok());
        let err = find_executable(Path::new("no-such-rqlited-anywhere")).expect_err("missing");
        assert!(err.contains("not on the PATH"), "{err}");
        let err = find_executable(Path::new("/tmp")).expect_err("a directory");
        assert!(err.contains("is a directory"), "{err}");
        let plain =
            std::env::temp_dir().join(format!("rq4d-not-executable-{}", std::process::id()));
        std::fs::write(&plain, b"").expect("write");
        let err = find_executable(&plain).expect_err("not executable");
        assert!(err.contains("not executable"), "{err}");
        let _ = std::fs::remove_file(&plain);
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let err = port_free(addr).expect_err("in use");
        assert!(err.contains("in use"), "{err}");
        drop(held);
        assert!(port_free(addr).is_ok());
    }

    #[test]
    fn a_data_directory_that_cannot_be_written_is_refused() {
        assert!(writable(Path::new("/proc/rq4d-data")).is_err());
        let file = std::env::temp_dir().join(format!("rq4d-a-file-{}", std::process::id()));
        std::fs::write(&file, b"").expect("write");
        assert!(writable(&file.join("data")).is_err());
        let _ = std::fs::remove_file(&file);
        let dir = std::env::temp_dir().join(format!("rq4d-preflight-{}", std::process::id()));
        assert!(writable(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
