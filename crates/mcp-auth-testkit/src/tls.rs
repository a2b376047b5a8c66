//! A private certificate authority for tests: a CA, and certificates it
//! signs for `127.0.0.1` / `localhost` (servers) or for a client, as PEM
//! files in a directory. Nothing here is for production.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A CA whose certificate and key live in memory; [`TestCa::issue_server`] and
/// [`TestCa::issue_client`] write
/// signed certificates into a directory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

#[allow(clippy::panic)]
fn must<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("test CA: {what}: {e}"),
    }
}

impl TestCa {
    /// A fresh CA (P-256) named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = must("CA params", CertificateParams::new(Vec::<String>::new()));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = must("CA key", KeyPair::generate());
        Self {
            issuer: must("CA certificate", CertifiedIssuer::self_signed(params, key)),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/{name}.pem` and returns its path.
    pub fn write_cert(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        must("write CA", std::fs::write(&path, self.cert_pem()));
        path
    }

    /// A server certificate for `127.0.0.1`, `::1` and `localhost`, as
    /// `dir/{name}.crt` and `dir/{name}.key`.
    pub fn issue_server(&self, dir: &Path, name: &str) -> IssuedFiles {
        let mut params = must(
            "server params",
            CertificateParams::new(vec!["localhost".to_owned()]),
        );
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(
            std::net::Ipv6Addr::LOCALHOST,
        )));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, dir, name)
    }

    /// A client certificate named `name`, as `dir/{name}.crt` / `.key`.
    pub fn issue_client(&self, dir: &Path, name: &str) -> IssuedFiles {
        let mut params = must(
            "client params",
            CertificateParams::new(Vec::<String>::new()),
        );
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, dir, name)
    }

    fn issue(&self, params: CertificateParams, dir: &Path, name: &str) -> IssuedFiles {
        let key = must("key", KeyPair::generate());
        let cert = must("sign", params.signed_by(&key, &self.issuer));
        let files = IssuedFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        must("write cert", std::fs::write(&files.cert, cert.pem()));
        must("write key", std::fs::write(&files.key, key.serialize_pem()));
        files
    }
}
