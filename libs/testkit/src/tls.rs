//! Certificates a test makes for itself: a CA, and server and client
//! certificates it signs, as PEM files, for TLS on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, as PEM.
pub struct Leaf {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl Leaf {
    /// Writes the certificate and key as `name.crt` and `name.key` in `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, &self.cert_pem).expect("write cert");
        std::fs::write(&k, &self.key_pem).expect("write key");
        (c, k)
    }
}

impl TestCa {
    /// A new CA.
    pub fn new(name: &str) -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = p.self_signed(&key).expect("CA cert");
        TestCa { pem: cert.pem(), issuer: Issuer::new(p, key) }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server(&self) -> Leaf {
        self.leaf(Self::loopback(vec![ExtendedKeyUsagePurpose::ServerAuth]))
    }

    /// A service's certificate for `127.0.0.1` and `localhost`, for serving and for its own calls
    /// (server and client authentication, as cert-manager issues it in the chart).
    pub fn service(&self) -> Leaf {
        self.leaf(Self::loopback(vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]))
    }

    fn loopback(usages: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        p.extended_key_usages = usages;
        p
    }

    /// A client certificate for `name`.
    pub fn client(&self, name: &str) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(p)
    }

    fn leaf(&self, p: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// A TLS acceptor for `127.0.0.1` with a certificate from a fresh CA, and that CA's PEM.
pub fn acceptor_for_loopback() -> (tokio_rustls::TlsAcceptor, String) {
    let ca = TestCa::new("qualify test idp CA");
    let leaf = ca.server();
    let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("certs");
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem().to_string())
}
