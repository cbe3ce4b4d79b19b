//! Caller identity: a JWT bearer token carrying tenant, subject and roles,
//! verified by [`Authenticated`], a layer in front of every business service.
//! Health and reflection are served outside it and answer without a token.
//!
//! Tokens come from the issuers of the identity file ([`identity`]): the
//! company's OIDC provider for people, a dedicated issuer for operators, and
//! Kubernetes for service accounts, each verified with the keys of its JWKS
//! ([`jwks`]). The HS256 key (`QUALIFY_JWT_SECRET`, or the development key)
//! signs the embedded cluster's tokens; with an issuer configured it is
//! refused unless the identity file allows it.

pub mod credentials;
pub mod identity;
pub mod jwks;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qualify_domain::{Caller, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tonic::Request;
use tonic::server::NamedService;

use crate::error::ApiError;
use crate::resilience::TenantLimiter;
pub use identity::Identity;
use identity::{IdentityConfig, IssuerConfig, TENANT_HEADER, Tenants};
use jwks::KeySet;

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
    inner: Arc<Verifiers>,
    verified: moka::sync::Cache<String, (Identity, u64)>,
    limiter: Option<TenantLimiter>,
}

struct Verifiers {
    hs256: Option<(DecodingKey, Validation)>,
    issuers: Vec<(IssuerConfig, KeySet)>,
    refresh_every: Duration,
}

/// Leeway on expiry for clock skew between issuer and verifier, in seconds.
const LEEWAY_SECS: u64 = 30;

/// Algorithms an issuer's keys may sign with; never HMAC (a public key used as
/// a shared secret) and never `none`.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn hs256_validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = LEEWAY_SECS;
    v
}

impl Authenticator {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::build(Some(secret), None).expect("an HS256 verifier needs no I/O")
    }

    /// A verifier for the issuers of `identity`, and for HS256 tokens signed
    /// with `secret` when there is no identity file or it allows them.
    pub fn new(secret: Option<&[u8]>, identity: Option<&IdentityConfig>) -> anyhow::Result<Self> {
        let hs256 = match identity {
            Some(i) if !i.allow_hs256 => None,
            _ => secret,
        };
        Self::build(hs256, identity)
    }

    fn build(secret: Option<&[u8]>, identity: Option<&IdentityConfig>) -> anyhow::Result<Self> {
        let (issuers, refresh_every) = match identity {
            None => (vec![], Duration::from_secs(300)),
            Some(i) => {
                i.check()?;
                let min = Duration::from_secs(i.min_refresh_secs);
                let issuers = i
                    .issuers
                    .iter()
                    .map(|c| Ok((c.clone(), KeySet::new(c, min)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (issuers, Duration::from_secs(i.refresh_secs.max(1)))
            }
        };
        let hs256 = secret.map(|s| (DecodingKey::from_secret(s), hs256_validation()));
        let verified = moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build();
        Ok(Authenticator { inner: Arc::new(Verifiers { hs256, issuers, refresh_every }), verified, limiter: None })
    }

    /// Also holds each verified tenant to `limiter`'s request rate.
    pub fn with_tenant_limit(mut self, limiter: Option<TenantLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Fetches every issuer's keys now; an issuer that does not answer keeps
    /// the keys it had and is fetched again on the next pass or unknown key.
    pub async fn refresh_keys(&self) {
        futures::future::join_all(self.inner.issuers.iter().map(|(_, keys)| keys.refresh())).await;
    }

    /// Fetches every issuer's keys on the identity file's schedule (the first
    /// fetch is [`Authenticator::refresh_keys`] at start-up), until the returned
    /// task is aborted; `None` without issuers.
    pub fn spawn_refresh(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.inner.issuers.is_empty() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(me.inner.refresh_every).await;
                me.refresh_keys().await;
            }
        }))
    }

    /// Whether every issuer's last key fetch succeeded; `None` without issuers.
    pub fn keys_fresh(&self) -> Option<bool> {
        (!self.inner.issuers.is_empty()).then(|| self.inner.issuers.iter().all(|(_, k)| k.status().ok))
    }

    /// How each issuer's last key fetch went, by issuer name.
    pub fn key_status(&self) -> Vec<(String, jwks::FetchStatus)> {
        self.inner.issuers.iter().map(|(_, k)| (k.name().to_string(), k.status())).collect()
    }

    /// Verifies a token and returns whom it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some((identity, exp)) = self.verified.get(token)
            && now <= exp + LEEWAY_SECS
        {
            return Ok(identity);
        }
        let (identity, exp) = self.verify_signed(token).await?;
        self.verified.insert(token.to_string(), (identity.clone(), exp));
        Ok(identity)
    }

    /// The caller a request's `authorization` (and `qualify-tenant`) headers
    /// name, and its bearer token.
    pub async fn authorize(&self, headers: &http::HeaderMap) -> Result<(Caller, String), ApiError> {
        let header =
            headers.get(http::header::AUTHORIZATION).ok_or(ApiError::Unauthenticated("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or(ApiError::Unauthenticated("malformed authorization header"))?;
        let requested = match headers.get(TENANT_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| ApiError::Unauthenticated("malformed qualify-tenant header"))?),
        };
        let caller = self.verify(token).await?.caller(requested)?;
        if let Some(limiter) = &self.limiter {
            limiter.check(&caller.tenant)?;
        }
        Ok((caller, token.to_string()))
    }

    async fn verify_signed(&self, token: &str) -> Result<(Identity, u64), ApiError> {
        let refused = |e: jsonwebtoken::errors::Error| {
            tracing::debug!(error = %e, "token refused");
            ApiError::Unauthenticated("the bearer token is invalid or expired")
        };
        let header = jsonwebtoken::decode_header(token).map_err(refused)?;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return match &self.inner.hs256 {
                Some((key, validation)) => verify_hs256(token, key, validation).map_err(|e| match e {
                    Hs256Error::Token(e) => refused(e),
                    Hs256Error::Api(e) => e,
                }),
                None => Err(ApiError::Unauthenticated(
                    "HS256 tokens are not accepted here: sign in through the identity provider",
                )),
            };
        }
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(ApiError::Unauthenticated("the token's algorithm is not accepted"));
        }
        #[derive(Deserialize)]
        struct Iss {
            iss: String,
        }
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token).map_err(refused)?.iss;
        let (config, keys) = self
            .inner
            .issuers
            .iter()
            .find(|(c, _)| c.issuer == iss)
            .ok_or(ApiError::Unauthenticated("the token's issuer is not trusted"))?;
        let key = keys
            .key(header.kid.as_deref())
            .await
            .ok_or(ApiError::Unauthenticated("the token is signed with a key its issuer does not publish"))?;
        if key.alg.is_some_and(|a| a != header.alg) || key.key.family() != header.alg.family() {
            return Err(ApiError::Unauthenticated("the token's algorithm does not match its key"));
        }
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&config.issuer]);
        v.set_audience(&[&config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(refused)?.claims;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or_default();
        Ok((config.identity(&claims)?, exp))
    }

    /// Wraps `inner` so every request is verified first.
    pub fn protect<S>(&self, inner: S) -> Authenticated<S> {
        Authenticated { inner, auth: self.clone() }
    }
}

enum Hs256Error {
    Token(jsonwebtoken::errors::Error),
    Api(ApiError),
}

fn verify_hs256(token: &str, key: &DecodingKey, validation: &Validation) -> Result<(Identity, u64), Hs256Error> {
    let c = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(Hs256Error::Token)?.claims;
    let api = |m| Hs256Error::Api(ApiError::Unauthenticated(m));
    if !is_tenant_id(&c.tenant) {
        return Err(api("the token's tenant is malformed"));
    }
    if c.sub.is_empty() || c.sub.len() > 128 {
        return Err(api("the token's subject is malformed"));
    }
    let roles = c
        .roles
        .iter()
        .map(|r| Role::parse(r).ok_or(api("the token carries an unknown role")))
        .collect::<Result<Vec<_>, _>>()?;
    if roles.is_empty() {
        return Err(api("the token carries no role"));
    }
    Ok((Identity { subject: c.sub, roles, tenants: Tenants::One(c.tenant) }, c.exp))
}

/// A service behind [`Authenticator`]: a request without a valid token is
/// answered with its status and never reaches the service; a verified one
/// carries its [`Caller`] and [`BearerToken`].
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Authenticator,
}

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready service answers this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            match auth.authorize(req.headers()).await {
                Ok((caller, token)) => {
                    req.extensions_mut().insert(caller);
                    req.extensions_mut().insert(BearerToken(token));
                    inner.call(req).await
                }
                Err(e) => Ok(e.into_status("auth.qualify").into_http()),
            }
        })
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
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

    async fn verify(a: &Authenticator, t: &str) -> Result<Caller, ApiError> {
        a.verify(t).await?.caller(None)
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_caller() {
        let t = TokenIssuer::hs256(KEY).issue("acme", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        let c = verify(&Authenticator::hs256(KEY), &t).await.unwrap();
        assert_eq!((c.tenant.as_str(), c.subject.as_str(), c.roles), ("acme", "ada", vec![Role::Ae]));
    }

    #[tokio::test]
    async fn wrong_key_expired_and_roleless_tokens_are_refused() {
        let other = TokenIssuer::hs256(b"another-key-another-key-another-k");
        let t = other.issue("acme", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        assert!(verify(&Authenticator::hs256(KEY), &t).await.is_err());

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
        assert!(verify(&Authenticator::hs256(KEY), &t).await.is_err());

        let t = issuer.issue("acme", "ada", &[], Duration::from_secs(60)).unwrap();
        assert!(verify(&Authenticator::hs256(KEY), &t).await.is_err());
        let t = issuer.issue("Acme Corp", "ada", &[Role::Ae], Duration::from_secs(60)).unwrap();
        assert!(verify(&Authenticator::hs256(KEY), &t).await.is_err());
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_it_expires() {
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
        assert!(verify(&auth, &t).await.is_ok());
        assert!(verify(&auth, &t).await.is_ok(), "a second call is answered from memory");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(verify(&auth, &t).await.is_err(), "memory never outlives the token");
        // A forged token never reaches memory, even after the genuine one did.
        let sig = t.rfind('.').unwrap() + 1;
        let flipped = if t.as_bytes()[sig] == b'A' { "B" } else { "A" };
        let forged = format!("{}{flipped}{}", &t[..sig], &t[sig + 1..]);
        assert!(verify(&auth, &forged).await.is_err());
    }

    #[tokio::test]
    async fn a_request_needs_a_bearer_header() {
        let a = Authenticator::hs256(KEY);
        let e = a.authorize(&http::HeaderMap::new()).await.unwrap_err();
        assert_eq!(e.into_status("t").code(), tonic::Code::Unauthenticated);
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(a.authorize(&h).await.unwrap_err().into_status("t").code(), tonic::Code::Unauthenticated);
        let t = TokenIssuer::hs256(KEY).issue("acme", "ada", &[Role::Sdr], Duration::from_secs(60)).unwrap();
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        assert_eq!(a.authorize(&h).await.unwrap().0.subject, "ada");
        h.insert(TENANT_HEADER, "beta".parse().unwrap());
        let e = a.authorize(&h).await.unwrap_err().into_status("t");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "a tenant's token acts in its own tenant only");
    }

    #[tokio::test]
    async fn with_an_identity_file_hs256_is_refused_unless_allowed() {
        let file: IdentityConfig = serde_yaml_ng::from_str(
            "issuers: [{name: idp, issuer: 'https://idp.invalid', audience: qualify, tenant: acme}]",
        )
        .unwrap();
        let t = TokenIssuer::hs256(KEY).issue("acme", "ada", &[Role::Sdr], Duration::from_secs(60)).unwrap();
        let strict = Authenticator::new(Some(KEY), Some(&file)).unwrap();
        assert!(matches!(strict.verify(&t).await, Err(ApiError::Unauthenticated(m)) if m.contains("HS256")));
        let allowing = IdentityConfig { allow_hs256: true, ..file };
        assert!(Authenticator::new(Some(KEY), Some(&allowing)).unwrap().verify(&t).await.is_ok());
    }
}
