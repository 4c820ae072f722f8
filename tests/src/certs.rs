//! Test certificates: a throw-away certificate authority and certificates it
//! issues, written as PEM files that `rqlited` (the double or the real server)
//! reads from its `-http-cert`/`-http-key`/`-node-cert`/`-node-key`/`-*-ca-cert`
//! flags, and that test clients trust through [`crate::HttpClient::https`].
//!
//! ```no_run
//! use rq4d_tests::{TempDir, certs::TestPki};
//!
//! let dir = TempDir::new("pki").expect("temp dir");
//! let pki = TestPki::new(dir.join("pki")).expect("make a CA");
//! // A certificate for a node reachable at 127.0.0.5 and by the name "db".
//! let node = pki.issue("node1", &["127.0.0.5"], &["db"]).expect("issue");
//! let args = [
//!     "-node-cert", node.cert_str(), "-node-key", node.key_str(),
//!     "-node-ca-cert", pki.ca_pem_str(),
//! ];
//! ```
//!
//! Every certificate can serve both as a server certificate and as a client
//! certificate (its extended key usage lists both), because rqlite presents
//! the node certificate when it dials another node (mutual TLS with
//! `-node-verify-client`). Keys are ECDSA P-256 in PKCS#8 PEM, which Go's
//! `tls.LoadX509KeyPair` and rustls both read. Nothing here is secret: the CA
//! key lives in memory only and dies with the [`TestPki`].

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate authority whose certificate is `<dir>/ca.pem`, and which
/// issues certificates into the same directory.
pub struct TestPki {
    dir: PathBuf,
    ca_pem: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// Where [`TestPki::issue`] wrote a certificate (`<dir>/<name>.pem`, the leaf
/// certificate alone) and its private key (`<dir>/<name>-key.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    /// The certificate path as a command-line argument.
    pub fn cert_str(&self) -> &str {
        self.cert.to_str().unwrap_or_default()
    }
    /// The key path as a command-line argument.
    pub fn key_str(&self) -> &str {
        self.key.to_str().unwrap_or_default()
    }
}

impl TestPki {
    /// Creates `dir` if needed, makes a new CA and writes its certificate to
    /// `<dir>/ca.pem`.
    pub fn new(dir: impl Into<PathBuf>) -> anyhow::Result<TestPki> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "rq4d test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_pem = dir.join("ca.pem");
        fs::write(&ca_pem, issuer.pem()).with_context(|| format!("write {}", ca_pem.display()))?;
        Ok(TestPki {
            dir,
            ca_pem,
            issuer,
        })
    }

    /// The CA certificate (PEM): what `-node-ca-cert`/`-http-ca-cert` and
    /// clients must trust.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem
    }

    /// [`TestPki::ca_pem_path`] as a command-line argument.
    pub fn ca_pem_str(&self) -> &str {
        self.ca_pem.to_str().unwrap_or_default()
    }

    /// Issues a certificate with common name `name`, valid for the IP addresses
    /// `ips` and the DNS names `dns_names` (subject alternative names; TLS
    /// clients check the dialled host against them), and writes it with its key.
    /// Issuing the same `name` twice overwrites the files.
    pub fn issue(&self, name: &str, ips: &[&str], dns_names: &[&str]) -> anyhow::Result<CertPaths> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        for ip in ips {
            let ip: IpAddr = ip
                .parse()
                .map_err(|e| anyhow!("{ip:?} is not an IP address: {e}"))?;
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        for dns in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName((*dns).try_into()?));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let paths = CertPaths {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        fs::write(&paths.cert, cert.pem())
            .with_context(|| format!("write {}", paths.cert.display()))?;
        fs::write(&paths.key, key.serialize_pem())
            .with_context(|| format!("write {}", paths.key.display()))?;
        Ok(paths)
    }
}
