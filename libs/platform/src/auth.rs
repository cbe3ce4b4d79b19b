//! Caller identity: a JWT bearer token carrying tenant, subject and roles,
//! verified by an interceptor in front of every business service. Health and
//! reflection are served outside it and answer without a token.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qualify_domain::{Caller, Role};
use serde::{Deserialize, Serialize};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::ApiError;
use crate::resilience::TenantLimiter;

/// Issuer and audience every Qualify token carries.
pub const ISSUER: &str = "qualify";
/// Audience every Qualify token carries.
pub const AUDIENCE: &str = "qualify";

/// The claims of a Qualify token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: a stable user or service id.
    pub sub: String,
    /// Tenant the subject acts in.
    pub tenant: String,
    /// Roles: sdr, ae, manager, revops, service.
    pub roles: Vec<String>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
}

/// The raw bearer token of the current request, kept so a service can call
/// another on the caller's behalf.
#[derive(Debug, Clone)]
pub struct BearerToken(pub String);

/// Verifies bearer tokens; cheap to clone. A verified token is remembered
/// (up to a minute, never past its expiry) so a client that sends the same
/// token on every call pays for the signature check once.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<(DecodingKey, Validation)>,
    verified: moka::sync::Cache<String, (Caller, u64)>,
    limiter: Option<TenantLimiter>,
}

/// Leeway on expiry for clock skew between issuer and verifier, in seconds.
const LEEWAY_SECS: u64 = 30;

impl Authenticator {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = LEEWAY_SECS;
        let verified = moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build();
        Authenticator { inner: Arc::new((DecodingKey::from_secret(secret), v)), verified, limiter: None }
    }

    /// Also holds each verified tenant to `limiter`'s request rate.
    pub fn with_tenant_limit(mut self, limiter: Option<TenantLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Verifies a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some((caller, exp)) = self.verified.get(token)
            && now <= exp + LEEWAY_SECS
        {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_signed(token)?;
        self.verified.insert(token.to_string(), (caller.clone(), exp));
        Ok(caller)
    }

    fn verify_signed(&self, token: &str) -> Result<(Caller, u64), ApiError> {
        let (key, validation) = &*self.inner;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            ApiError::Unauthenticated("the bearer token is invalid or expired")
        })?;
        let c = data.claims;
        if !is_tenant_id(&c.tenant) {
            return Err(ApiError::Unauthenticated("the token's tenant is malformed"));
        }
        if c.sub.is_empty() || c.sub.len() > 128 {
            return Err(ApiError::Unauthenticated("the token's subject is malformed"));
        }
        let roles = c
            .roles
            .iter()
            .map(|r| Role::parse(r).ok_or(ApiError::Unauthenticated("the token carries an unknown role")))
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            return Err(ApiError::Unauthenticated("the token carries no role"));
        }
        Ok((Caller { tenant: c.tenant, subject: c.sub, roles }, c.exp))
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token").into_status("auth.qualify"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::Unauthenticated("malformed authorization header").into_status("auth.qualify"))?
            .to_string();
        let caller = self.verify(&token).map_err(|e| e.into_status("auth.qualify"))?;
        if let Some(limiter) = &self.limiter {
            limiter.check(&caller.tenant).map_err(|e| e.into_status("auth.qualify"))?;
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(BearerToken(token));
        Ok(req)
    }
}

/// The verified caller of a request that went through [`Authenticator`].
pub fn caller<T>(req: &Request<T>) -> Result<Caller, ApiError> {
    req.extensions().get::<Caller>().cloned().ok_or(ApiError::Unauthenticated("no verified caller"))
}

/// Tenants are lower-case slugs: `[a-z0-9-]{1,64}`.
pub fn is_tenant_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Mints tokens: development tokens for the embedded cluster, and test tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    key: Arc<EncodingKey>,
}

impl TokenIssuer {
    /// An issuer signing HS256 with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        TokenIssuer { key: Arc::new(EncodingKey::from_secret(secret)) }
    }

    /// A token for `subject` in `tenant` with `roles`, valid for `ttl`.
    pub fn issue(&self, tenant: &str, subject: &str, roles: &[Role], ttl: Duration) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            sub: subject.to_string(),
            tenant: tenant.to_string(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            exp: now + ttl.as_secs(),
            iat: now,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)?)
    }

    /// [`TokenIssuer::issue`] with roles by name (`sdr`, `ae`, `manager`,
    /// `revops`, `service`), as typed on a command line.
    pub fn issue_named(
        &self,
        tenant: &str,
        subject: &str,
        roles: &[impl AsRef<str>],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let roles = roles
            .iter()
            .map(|r| Role::parse(r.as_ref()).ok_or_else(|| anyhow::anyhow!("unknown role {:?}", r.as_ref())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.issue(tenant, subject, &roles, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_valid_token_yields_its_caller() {
        let t = TokenIssuer::hs256(KEY).issue("acme", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        let c = Authenticator::hs256(KEY).verify(&t).unwrap();
        assert_eq!((c.tenant.as_str(), c.subject.as_str(), c.roles), ("acme", "ada", vec![Role::Ae]));
    }

    #[test]
    fn wrong_key_expired_and_roleless_tokens_are_refused() {
        let other = TokenIssuer::hs256(b"another-key-another-key-another-k");
        let t = other.issue("acme", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        assert!(Authenticator::hs256(KEY).verify(&t).is_err());

        let issuer = TokenIssuer::hs256(KEY);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let expired = Claims {
            sub: "ada".into(),
            tenant: "acme".into(),
            roles: vec!["ae".into()],
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now - 3600,
            iat: now - 7200,
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &issuer.key).unwrap();
        assert!(Authenticator::hs256(KEY).verify(&t).is_err());

        let t = issuer.issue("acme", "ada", &[], Duration::from_secs(60)).unwrap();
        assert!(Authenticator::hs256(KEY).verify(&t).is_err());
        let t = issuer.issue("Acme Corp", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        assert!(Authenticator::hs256(KEY).verify(&t).is_err());
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let issuer = TokenIssuer::hs256(KEY);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        // Inside the leeway now, past it in a moment: remembered, then refused.
        let claims = Claims {
            sub: "ada".into(),
            tenant: "acme".into(),
            roles: vec!["ae".into()],
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now - LEEWAY_SECS + 1,
            iat: now - 600,
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &issuer.key).unwrap();
        let auth = Authenticator::hs256(KEY);
        assert!(auth.verify(&t).is_ok());
        assert!(auth.verify(&t).is_ok(), "a second call is answered from memory");
        std::thread::sleep(Duration::from_millis(2100));
        assert!(auth.verify(&t).is_err(), "memory never outlives the token");
        // A forged token never reaches memory, even after the genuine one did.
        let sig = t.rfind('.').unwrap() + 1;
        let flipped = if t.as_bytes()[sig] == b'A' { "B" } else { "A" };
        let forged = format!("{}{flipped}{}", &t[..sig], &t[sig + 1..]);
        assert!(auth.verify(&forged).is_err());
    }

    #[test]
    fn the_interceptor_needs_a_bearer_header() {
        let mut a = Authenticator::hs256(KEY);
        let s = a.call(Request::new(())).unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        let mut r = Request::new(());
        r.metadata_mut().insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(a.call(r).unwrap_err().code(), tonic::Code::Unauthenticated);
        let t = TokenIssuer::hs256(KEY).issue("acme", "ada", &[Role::Sdr], Duration::from_secs(60)).unwrap();
        let mut r = Request::new(());
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        let r = a.call(r).unwrap();
        assert_eq!(caller(&r).unwrap().subject, "ada");
    }
}
