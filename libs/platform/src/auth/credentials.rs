//! How a Qualify service authenticates its own calls to another: on
//! Kubernetes with the pod's projected service-account token (audience
//! `qualify`), re-read from its file as the kubelet rotates it; in the
//! embedded cluster with tokens minted with the HS256 key. A call made on a
//! caller's behalf names the caller's tenant in `qualify-tenant` (and, in the
//! embedded cluster, forwards the caller's own token); a platform call (every
//! tenant's event streams) acts in the platform tenant.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qualify_domain::Role;
use qualify_domain::permission::SYSTEM_TENANT;
use tonic::metadata::MetadataValue;

use super::TokenIssuer;
use super::identity::TENANT_HEADER;
use crate::error::ApiError;

/// How long a token read from its file is used before the file is read again;
/// the kubelet refreshes a projected token well before it expires.
const REREAD: Duration = Duration::from_secs(60);

/// A call made on a caller's behalf: the caller's tenant and bearer token.
#[derive(Debug, Clone)]
pub struct OnBehalf {
    /// The tenant the call acts in.
    pub tenant: String,
    /// The caller's own bearer token.
    pub bearer: String,
}

/// The credentials of a service's own calls; cheap to clone.
#[derive(Clone)]
pub enum Credentials {
    /// Tokens minted with the HS256 key (the embedded cluster and tests).
    Minted(TokenIssuer),
    /// The pod's service-account token, from its file.
    Workload(TokenFile),
}

/// A token kept in a file that something else rewrites (the kubelet's projected volume).
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    cached: Arc<Mutex<Option<(String, Instant)>>>,
}

impl TokenFile {
    /// The token at `path`, read on first use and every minute after.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TokenFile { path: path.into(), cached: Arc::default() }
    }

    /// The current token.
    pub fn token(&self) -> Result<String, ApiError> {
        let mut cached = self.cached.lock().expect("token lock");
        if let Some((t, at)) = cached.as_ref()
            && at.elapsed() < REREAD
        {
            return Ok(t.clone());
        }
        let t = std::fs::read_to_string(&self.path)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading the service token {}: {e}", self.path.display())))?
            .trim()
            .to_string();
        *cached = Some((t.clone(), Instant::now()));
        Ok(t)
    }
}

fn value(s: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, ApiError> {
    s.parse().map_err(|_| ApiError::Internal(anyhow::anyhow!("a credential is not ASCII")))
}

impl Credentials {
    /// The pod's token file when `token_file` is set, else tokens minted with `hs256_key`.
    pub fn new(token_file: Option<&std::path::Path>, hs256_key: &str) -> Self {
        match token_file {
            Some(p) => Credentials::Workload(TokenFile::new(p)),
            None => Credentials::Minted(TokenIssuer::hs256(hs256_key.as_bytes())),
        }
    }

    fn bearer<T>(req: &mut tonic::Request<T>, token: &str) -> Result<(), ApiError> {
        req.metadata_mut().insert("authorization", value(&format!("Bearer {token}"))?);
        Ok(())
    }

    /// Authenticates `req` as this service acting in the platform tenant (as
    /// `subject` when minted).
    pub fn platform<T>(&self, req: &mut tonic::Request<T>, subject: &str) -> Result<(), ApiError> {
        let token = match self {
            Credentials::Minted(issuer) => issuer
                .issue(SYSTEM_TENANT, subject, &[Role::Service], Duration::from_secs(3600))
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("minting a service token: {e}")))?,
            Credentials::Workload(file) => file.token()?,
        };
        Self::bearer(req, &token)?;
        req.metadata_mut().insert(TENANT_HEADER, value(SYSTEM_TENANT)?);
        Ok(())
    }

    /// Authenticates `req` as a call on `on`'s behalf: the caller's own token in
    /// the embedded cluster, the pod's token on Kubernetes; in the caller's tenant.
    pub fn on_behalf<T>(&self, req: &mut tonic::Request<T>, on: &OnBehalf) -> Result<(), ApiError> {
        match self {
            Credentials::Minted(_) => Self::bearer(req, &on.bearer)?,
            Credentials::Workload(file) => Self::bearer(req, &file.token()?)?,
        }
        req.metadata_mut().insert(TENANT_HEADER, value(&on.tenant)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_read_again_once_its_reread_time_passes() {
        let dir = std::env::temp_dir().join(format!("qualify-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "first\n").unwrap();
        let f = TokenFile::new(&dir);
        assert_eq!(f.token().unwrap(), "first");
        std::fs::write(&dir, "second").unwrap();
        assert_eq!(f.token().unwrap(), "first", "kept for a minute");
        *f.cached.lock().unwrap() = Some(("first".into(), Instant::now() - REREAD));
        assert_eq!(f.token().unwrap(), "second");
        std::fs::remove_file(&dir).unwrap();
        let mut r = tonic::Request::new(());
        let on = OnBehalf { tenant: "acme".into(), bearer: "caller".into() };
        Credentials::Workload(TokenFile::new("/nonexistent/token")).on_behalf(&mut r, &on).unwrap_err();
        Credentials::new(None, "k").on_behalf(&mut r, &on).unwrap();
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer caller");
        assert_eq!(r.metadata().get(TENANT_HEADER).unwrap(), "acme");
    }
}
