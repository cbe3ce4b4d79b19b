//! TLS on every port and on the services' own calls, with rustls (ring).
//!
//! A server presents the certificate in `QUALIFY_TLS_CERT_FILE` /
//! `QUALIFY_TLS_KEY_FILE`, read again when either file changes (a renewal by
//! cert-manager or a rotated Secret needs no restart; an unreadable or
//! mismatched pair keeps the one in use and is logged), and with
//! `QUALIFY_TLS_CLIENT_CA_FILE` requires a client certificate signed by that CA
//! (the bundle, too, is read again when it changes).
//! A service's own calls to `https://` peers trust `QUALIFY_TLS_CA_FILE` (the
//! public roots without it) and present the same certificate when the peer asks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rustls::DigitallySignedStruct;
use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// How often the certificate files are looked at for a change.
const RECHECK: Duration = Duration::from_secs(2);

/// Where the TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle that client certificates must chain to; none: no client certificate asked.
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: no certificate", path.display());
    Ok(certs)
}

fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).with_context(|| format!("{}: an unusable CA certificate", path.display()))?;
    }
    Ok(roots)
}

/// A file's modification time and length: what changes when it is rewritten.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A value loaded from files and loaded again when any of them changes (looked at
/// every [`RECHECK`]); a load that fails keeps the value in use and is logged.
#[derive(Debug)]
struct Watched<T> {
    paths: Vec<PathBuf>,
    what: &'static str,
    load: fn(&[PathBuf]) -> anyhow::Result<T>,
    current: RwLock<(T, Vec<Stamp>)>,
    checked: Mutex<Instant>,
}

impl<T: Clone> Watched<T> {
    fn new(paths: Vec<PathBuf>, what: &'static str, load: fn(&[PathBuf]) -> anyhow::Result<T>) -> anyhow::Result<Self> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let value = load(&paths)?;
        Ok(Watched { paths, what, load, current: RwLock::new((value, stamps)), checked: Mutex::new(Instant::now()) })
    }

    fn get(&self) -> T {
        let due = {
            let mut checked = self.checked.lock().expect("tls lock");
            let due = checked.elapsed() >= RECHECK;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if due {
            let stamps: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
            if stamps != self.current.read().expect("tls lock").1 {
                match (self.load)(&self.paths) {
                    Ok(v) => {
                        tracing::info!(file = %self.paths[0].display(), "{} reloaded", self.what);
                        *self.current.write().expect("tls lock") = (v, stamps);
                    }
                    // Half-written during a rotation, or broken: keep the one in use.
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "{} not reloaded", self.what),
                }
            }
        }
        self.current.read().expect("tls lock").0.clone()
    }
}

/// A certificate and key read from files, and read again when they change.
#[derive(Debug)]
pub struct ReloadingKey(Watched<Arc<CertifiedKey>>);

impl ReloadingKey {
    /// Reads the pair; an unusable pair is an error.
    pub fn new(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        let watched =
            Watched::new(vec![cert.to_path_buf(), key.to_path_buf()], "TLS certificate", |p| Self::load(&p[0], &p[1]))?;
        Ok(Arc::new(ReloadingKey(watched)))
    }

    fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
        let chain = read_certs(cert)?;
        let der =
            PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}: not a PEM private key", key.display()))?;
        let ck = CertifiedKey::from_der(chain, der, &provider())
            .with_context(|| format!("{} and {} do not make a usable pair", cert.display(), key.display()))?;
        Ok(Arc::new(ck))
    }

    /// The pair in use, after reloading it if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.get()
    }
}

/// Client certificates verified against a CA bundle read from a file, and read
/// again when it changes (a rotated client CA needs no restart). It names no
/// acceptable CAs to clients (an empty hint list means any), since the bundle may change.
#[derive(Debug)]
struct ReloadingClientCa(Watched<Arc<dyn ClientCertVerifier>>);

impl ReloadingClientCa {
    fn new(ca: &Path) -> anyhow::Result<Self> {
        Ok(ReloadingClientCa(Watched::new(vec![ca.to_path_buf()], "TLS client CA", |p| {
            let verifier: Arc<dyn ClientCertVerifier> =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&p[0])?), provider())
                    .build()
                    .with_context(|| format!("{}: no usable client CA", p[0].display()))?;
            Ok(verifier)
        })?))
    }
}

impl ClientCertVerifier for ReloadingClientCa {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.get().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.get().supported_verify_schemes()
    }
}

impl ResolvesServerCert for ReloadingKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingKey {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The acceptor of a TLS port: HTTP/2 and HTTP/1.1 (gRPC-Web) offered by ALPN.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(Arc::new(ReloadingClientCa::new(ca)?)),
    };
    let mut config = builder.with_cert_resolver(ReloadingKey::new(&files.cert, &files.key)?);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What a service's own TLS connections trust and present; the default trusts the public roots
/// and presents nothing.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM CA bundle the peer's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// The certificate and key presented when the peer asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// The rustls configuration of these settings, speaking HTTP/2.
    pub fn config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let roots = match &self.ca {
            Some(ca) => roots(ca)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => builder.with_client_cert_resolver(ReloadingKey::new(cert, key)?),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Handshakes on `listener`'s connections as they come (a slow one holds up
/// no other), yielding the established ones; stops when the stream is dropped.
pub fn incoming(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let Ok((tcp, peer)) = accepted else { continue };
            // Small responses must not wait out delayed ACKs (40 ms).
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
