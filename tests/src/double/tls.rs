//! TLS as rqlited configures it (`rtls/config.go`): HTTPS for the API
//! (`-http-cert`, `-http-key`, optionally mutual TLS with `-http-verify-client`
//! against `-http-ca-cert`), and TLS around the whole Raft port (`-node-cert`,
//! `-node-key`, `-node-ca-cert`, `-node-no-verify`, `-node-verify-client`,
//! `-node-verify-server-name`). Node TLS matters to a supervisor because a node
//! with it and a node without it cannot talk at all, so a cluster is
//! all-or-nothing; the double reproduces that by wrapping its own Raft-port
//! protocol in TLS.
//!
//! Differences from Go, none of which a supervisor should notice: without
//! `-node-ca-cert` the double trusts no CA at all (Go would use the system's
//! roots, which never sign test certificates either), and mutual TLS needs the
//! matching CA flag (the double refuses to start otherwise).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::log;

/// How long a peer may take over its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("failed to read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", path.display());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow!("failed to read private key from {}: {e}", path.display()))
}

fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .with_context(|| format!("bad CA certificate in {}", path.display()))?;
    }
    Ok(roots)
}

/// A server configuration, requiring client certificates signed by `client_ca`
/// when it is given.
fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<ServerConfig> {
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(load_roots(ca)?))
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .context("certificate and key do not match")
}

/// The HTTPS acceptor for `-http-cert`/`-http-key`. The double speaks only
/// HTTP/1.1, so it offers only that in ALPN.
pub fn http_acceptor(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    verify_client: bool,
) -> anyhow::Result<TlsAcceptor> {
    let client_ca = if verify_client {
        Some(ca.ok_or_else(|| {
            anyhow!("-http-verify-client needs -http-ca-cert in the rq4d test double")
        })?)
    } else {
        None
    };
    let mut config = server_config(cert, key, client_ca)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Node (Raft-port) TLS settings, shared by the listener and every dial.
pub struct NodeTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// `-node-verify-server-name`: the name peers' certificates must carry
    /// instead of the dialled host.
    server_name: Option<String>,
}

/// What a node-TLS command line says.
pub struct NodeTlsFlags<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: Option<&'a Path>,
    pub no_verify: bool,
    pub verify_client: bool,
    pub server_name: Option<String>,
}

impl NodeTls {
    pub fn new(f: NodeTlsFlags<'_>) -> anyhow::Result<NodeTls> {
        let client_ca = if f.verify_client {
            Some(f.ca.ok_or_else(|| {
                anyhow!("-node-verify-client needs -node-ca-cert in the rq4d test double")
            })?)
        } else {
            None
        };
        let server = server_config(f.cert, f.key, client_ca)?;
        // rqlite's dialer presents the node certificate too, for mutual TLS.
        let roots = match f.ca {
            Some(ca) => load_roots(ca)?,
            None => RootCertStore::empty(),
        };
        let mut client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(load_certs(f.cert)?, load_key(f.key)?)
            .context("node certificate and key do not match")?;
        if f.no_verify {
            client
                .dangerous()
                .set_certificate_verifier(Arc::new(AcceptAnyServerCert));
        }
        Ok(NodeTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name: f.server_name,
        })
    }

    /// The server's side of a Raft-port connection.
    pub async fn accept(&self, tcp: TcpStream) -> anyhow::Result<TlsStream<TcpStream>> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| anyhow!("TLS handshake timed out"))?
            .context("TLS handshake")
    }

    /// The dialler's side: the certificate must name `-node-verify-server-name`
    /// when set, else the host of `addr` (Go's default).
    pub async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(addr).to_string(),
        };
        let name = ServerName::try_from(host).context("server name")?;
        self.connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("tls: handshake with {addr}"))
    }
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(addr)
}

/// `-node-no-verify` (Go's `InsecureSkipVerify`): any server certificate is taken.
#[derive(Debug)]
struct AcceptAnyServerCert;

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::CryptoProvider::get_default()
            .map(|p| p.signature_verification_algorithms.supported_schemes())
            .unwrap_or_default()
    }
}

/// An HTTPS listener for `axum::serve`: a task accepts TCP connections and runs
/// each handshake in its own task, so one slow or broken client never holds up
/// the others; finished handshakes are handed over through a channel.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => log(
                            "http",
                            &format!("http: TLS handshake error from {peer}: {e}"),
                        ),
                        Err(_) => log("http", &format!("http: TLS handshake timeout from {peer}")),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task never ends, so neither does the channel.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
