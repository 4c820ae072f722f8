//! A minimal blocking HTTP/1.1 client, enough to talk to rqlited's and rq4d's
//! APIs without pulling an HTTP client crate into the tests: plain HTTP, or
//! HTTPS through rustls trusting a test CA, with optional Basic auth.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| {
            format!(
                "status {} body {:?} is not JSON: {e}",
                self.status, self.body
            )
        })
    }
}

/// How a test reaches a server: plain HTTP or HTTPS trusting a test CA, with or
/// without HTTP Basic credentials. The default is plain HTTP without
/// credentials, which is what [`http_request`] and friends use.
#[derive(Debug, Clone, Default)]
pub struct HttpClient {
    tls: Option<TlsOptions>,
    basic: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct TlsOptions {
    ca_pem: PathBuf,
    server_name: Option<String>,
    identity: Option<(PathBuf, PathBuf)>,
}

impl HttpClient {
    /// Plain HTTP, no credentials.
    pub fn plain() -> HttpClient {
        HttpClient::default()
    }

    /// HTTPS, trusting only the CA certificate in `ca_pem` (e.g.
    /// [`crate::certs::TestPki::ca_pem_path`]). The server certificate must
    /// name the host of the address dialled, unless [`HttpClient::server_name`]
    /// says otherwise.
    pub fn https(ca_pem: impl Into<PathBuf>) -> HttpClient {
        HttpClient {
            tls: Some(TlsOptions {
                ca_pem: ca_pem.into(),
                server_name: None,
                identity: None,
            }),
            basic: None,
        }
    }

    /// Checks the server certificate against `name` instead of the dialled host.
    pub fn server_name(mut self, name: &str) -> HttpClient {
        if let Some(t) = self.tls.as_mut() {
            t.server_name = Some(name.to_string());
        }
        self
    }

    /// Presents this certificate and key (PEM files) when the server asks for
    /// one (mutual TLS, rqlited's `-http-verify-client`).
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> HttpClient {
        if let Some(t) = self.tls.as_mut() {
            t.identity = Some((cert.into(), key.into()));
        }
        self
    }

    /// Sends `Authorization: Basic` with these credentials on every request.
    pub fn basic_auth(mut self, user: &str, password: &str) -> HttpClient {
        self.basic = Some((user.to_string(), password.to_string()));
        self
    }

    /// The same client without credentials (to check what an anonymous caller gets).
    pub fn anonymous(mut self) -> HttpClient {
        self.basic = None;
        self
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends one request with `Connection: close` and reads the whole answer.
    /// Handles `Content-Length` and chunked bodies (real rqlited sends
    /// `/status` chunked).
    pub fn request(
        &self,
        method: &str,
        addr: &str,
        path_and_query: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> io::Result<HttpResponse> {
        let sock = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot resolve {addr}"),
            )
        })?;
        let tcp = TcpStream::connect_timeout(&sock, timeout)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let mut stream: Box<dyn ReadWrite> = match &self.tls {
            None => Box::new(tcp),
            Some(t) => Box::new(tls_stream(t, addr, tcp)?),
        };
        let body = body.unwrap_or("");
        let auth = match &self.basic {
            Some((u, p)) => format!(
                "Authorization: Basic {}\r\n",
                BASE64.encode(format!("{u}:{p}"))
            ),
            None => String::new(),
        };
        let request = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rq4d-tests\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        stream.flush()?;
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw) {
            Ok(_) => {}
            // A TLS peer that closes without close_notify: what came is all there is.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e),
        }
        parse_http_response(&raw)
    }

    pub fn get(&self, addr: &str, path_and_query: &str) -> io::Result<HttpResponse> {
        self.request("GET", addr, path_and_query, None, HTTP_TIMEOUT)
    }

    pub fn post(&self, addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
        self.request("POST", addr, path_and_query, Some(body), HTTP_TIMEOUT)
    }

    pub fn delete(&self, addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
        self.request("DELETE", addr, path_and_query, Some(body), HTTP_TIMEOUT)
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tls_stream(
    t: &TlsOptions,
    addr: &str,
    tcp: TcpStream,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&t.ca_pem)
        .map_err(|e| bad(format!("{}: {e}", t.ca_pem.display())))?
    {
        let cert = cert.map_err(|e| bad(format!("{}: {e}", t.ca_pem.display())))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    // The process-wide provider: ring, the only one this crate's rustls is built with.
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &t.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad(e.to_string()))?
        }
    };
    let host = match &t.server_name {
        Some(n) => n.clone(),
        None => addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(addr)
            .to_string(),
    };
    let name = ServerName::try_from(host).map_err(|e| bad(e.to_string()))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| bad(e.to_string()))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Sends one plain-HTTP request without credentials; see [`HttpClient::request`].
pub fn http_request(
    method: &str,
    addr: &str,
    path_and_query: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    HttpClient::plain().request(method, addr, path_and_query, body, timeout)
}

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse_http_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad_data("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad_data(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad_data("truncated chunk size"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad_data(format!("bad chunk size {size_text:?}")))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err(bad_data("truncated chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        out
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// Default per-request timeout of the helpers below.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn http_get(addr: &str, path_and_query: &str) -> io::Result<HttpResponse> {
    http_request("GET", addr, path_and_query, None, HTTP_TIMEOUT)
}

pub fn http_post(addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
    http_request("POST", addr, path_and_query, Some(body), HTTP_TIMEOUT)
}

pub fn http_delete(addr: &str, path_and_query: &str, body: &str) -> io::Result<HttpResponse> {
    http_request("DELETE", addr, path_and_query, Some(body), HTTP_TIMEOUT)
}

/// Percent-encodes a query-string value (for `/db/query?q=`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
