//! Parsers of single flag values. Each error says what was wrong and what is accepted; clap
//! adds the flag (and `validate` the environment variable it came from).

use std::net::SocketAddr;
use std::time::Duration;

use super::Discovery;

/// The longest duration any flag takes: beyond it a timer would be meaningless, and near
/// `u64::MAX` seconds one would overflow the clock.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration as Go, rqlite and Consul write them (`1m30s`, `500ms`, `2h`, also with
/// spaces: `1m 30s`), or a bare number of seconds (`7`, `0.5`). At most a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let accepted = "e.g. 500ms, 30s, 1m30s, 2h, or a number of seconds";
    let duration = if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !text.is_empty() {
        let seconds: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a duration ({accepted})"))?;
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} is longer than a year"))?
    } else {
        humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration: {e} ({accepted})"))?
    };
    if duration > LONGEST {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(duration)
}

/// Parses `dns:NAME[:PORT]`.
pub fn parse_discovery(text: &str) -> Result<Discovery, String> {
    let Some(rest) = text.strip_prefix("dns:") else {
        return Err(format!("{text:?}: expected dns:NAME[:PORT]"));
    };
    let (name, port) = match rest.rsplit_once(':') {
        Some((name, port)) => (name, Some(parse_port(text, port)?)),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("{text:?}: the DNS name is empty"));
    }
    if name.contains(':') || name.contains('/') || name.contains(' ') {
        return Err(format!("{text:?}: {name:?} is not a DNS name"));
    }
    Ok(Discovery::Dns {
        name: name.to_string(),
        port,
    })
}

/// Parses a seed, `HOST:PORT` with HOST a DNS name or an IPv4 address, or `[IPv6]:PORT`.
pub fn parse_seed(text: &str) -> Result<String, String> {
    let accepted = "expected host:port, 10.0.0.1:7946 or [fd00::1]:7946";
    if text.starts_with('[') {
        return text
            .parse::<SocketAddr>()
            .map(|_| text.to_string())
            .map_err(|_| format!("{text:?} is not [IPv6]:port ({accepted})"));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port ({accepted})"));
    };
    if host.contains(':') {
        return Err(format!(
            "{text:?}: an IPv6 address needs brackets, [{host}]:{port}"
        ));
    }
    if host.is_empty() || host.contains('/') || host.contains(' ') {
        return Err(format!("{text:?}: {host:?} is not a host ({accepted})"));
    }
    parse_port(text, port)?;
    Ok(text.to_string())
}

/// Parses the status API address of a running rq4d (`rq4d members --api`).
pub fn parse_api(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("{text:?} is not IP:PORT (e.g. 127.0.0.1:7947, [::1]:7947); a port is 1-65535")
    })
}

fn parse_port(whole: &str, port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{whole:?}: {port:?} is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("1h", Duration::from_secs(3600)),
            ("7", Duration::from_secs(7)),
            ("0.5", Duration::from_millis(500)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "soon",
            "5x",
            "",
            "-1s",
            "100000000000000000000000",
            "1e30",
            "2y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn discovery_specs_parse() {
        assert_eq!(
            parse_discovery("dns:db:7000"),
            Ok(Discovery::Dns {
                name: "db".into(),
                port: Some(7000)
            })
        );
        assert_eq!(
            parse_discovery("dns:db"),
            Ok(Discovery::Dns {
                name: "db".into(),
                port: None
            })
        );
        for bad in ["db", "dns:db:x", "dns:", "dns:db:0", "dns:a:b:1"] {
            assert!(parse_discovery(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn seeds_are_host_port_with_ipv6_in_brackets() {
        for good in ["db:7946", "10.0.0.1:7946", "[::1]:7946", "[fd00::1]:1"] {
            assert_eq!(parse_seed(good).as_deref(), Ok(good));
        }
        let err = parse_seed("::1:7946").expect_err("refused");
        assert!(err.contains("[::1]:7946"), "{err}");
        for bad in [
            "nohost", ":7946", "db:", "db:0", "db:99999", "[::1]", "a b:1",
        ] {
            assert!(parse_seed(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_api_address_is_a_socket_address() {
        assert!(parse_api("127.0.0.1:7947").is_ok());
        assert!(parse_api("[::1]:7947").is_ok());
        for bad in ["127.0.0.1:99999", "localhost", "127.0.0.1"] {
            assert!(parse_api(bad).is_err(), "{bad:?} accepted");
        }
    }
}
