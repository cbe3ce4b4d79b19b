//! An issuer's signing keys: read from its JWKS (found through its OpenID
//! discovery document unless configured), kept in memory, fetched again on a
//! schedule and when a token names a key id not yet known (at most once per
//! `min_refresh`), so a key rotation at the provider needs no restart. A
//! failed fetch keeps the keys already known; it is logged, counted
//! (`qualify_jwks_fetch_total{issuer,outcome}`) and shown in health
//! (`qualify.identity`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::identity::IssuerConfig;

/// One usable key: the key and the one algorithm it may verify.
#[derive(Clone)]
pub struct Key {
    /// The decoding key.
    pub key: Arc<DecodingKey>,
    /// The algorithm the JWK names, if it names one.
    pub alg: Option<Algorithm>,
}

/// How the last fetch went.
#[derive(Debug, Clone, Default)]
pub struct FetchStatus {
    /// Whether the last fetch succeeded (false before the first).
    pub ok: bool,
    /// Why the last fetch failed.
    pub error: Option<String>,
    /// Keys known.
    pub keys: usize,
}

/// The keys of one issuer.
pub struct KeySet {
    name: String,
    issuer: String,
    configured_jwks: Option<String>,
    token_file: Option<std::path::PathBuf>,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Key>>,
    status: RwLock<FetchStatus>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    min_refresh: Duration,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl KeySet {
    /// The key set of `issuer`, empty until fetched.
    pub fn new(issuer: &IssuerConfig, min_refresh: Duration) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .user_agent("qualify");
        if let Some(ca) = &issuer.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("issuers.{}.ca_file {}", issuer.name, ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("issuers.{}.ca_file holds no PEM certificate", issuer.name))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(KeySet {
            name: issuer.name.clone(),
            issuer: issuer.issuer.trim_end_matches('/').to_string(),
            configured_jwks: issuer.jwks_uri.clone(),
            token_file: issuer.token_file.clone(),
            http: http.build()?,
            keys: RwLock::default(),
            status: RwLock::default(),
            last_fetch: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
            min_refresh,
        })
    }

    /// The issuer's short name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the last fetch went.
    pub fn status(&self) -> FetchStatus {
        self.status.read().expect("status lock").clone()
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Key> {
        let keys = self.keys.read().expect("keys lock");
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            // A token without a key id is only unambiguous when the issuer has one key.
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    /// The key `kid` names, fetching the keys again if it is unknown and the
    /// last fetch is older than the minimum interval.
    pub async fn key(&self, kid: Option<&str>) -> Option<Key> {
        if let Some(k) = self.lookup(kid) {
            return Some(k);
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.lookup(kid) {
            return Some(k);
        }
        let recent = self.last_fetch.lock().expect("fetch lock").is_some_and(|t| t.elapsed() < self.min_refresh);
        if recent {
            return None;
        }
        self.fetch_locked().await;
        self.lookup(kid)
    }

    /// Fetches the keys now (the schedule's pass).
    pub async fn refresh(&self) {
        let _one = self.fetching.lock().await;
        self.fetch_locked().await;
    }

    async fn fetch_locked(&self) {
        *self.last_fetch.lock().expect("fetch lock") = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let n = keys.len();
                *self.keys.write().expect("keys lock") = keys;
                let was = std::mem::replace(
                    &mut *self.status.write().expect("status lock"),
                    FetchStatus { ok: true, error: None, keys: n },
                );
                if !was.ok {
                    tracing::info!(issuer = %self.name, keys = n, "identity provider keys fetched");
                }
                metrics::counter!("qualify_jwks_fetch_total", "issuer" => self.name.clone(), "outcome" => "ok")
                    .increment(1);
                metrics::gauge!("qualify_jwks_keys", "issuer" => self.name.clone()).set(n as f64);
            }
            Err(e) => {
                let mut s = self.status.write().expect("status lock");
                tracing::warn!(issuer = %self.name, error = %format!("{e:#}"), keys_kept = s.keys,
                    "identity provider keys could not be fetched; the keys already known stay in use");
                s.ok = false;
                s.error = Some(format!("{e:#}"));
                metrics::counter!("qualify_jwks_fetch_total", "issuer" => self.name.clone(), "outcome" => "error")
                    .increment(1);
            }
        }
    }

    async fn get(&self, url: &str) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.get(url);
        if let Some(f) = &self.token_file {
            let token = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            req = req.bearer_auth(token.trim());
        }
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: {}", resp.status());
        }
        Ok(resp)
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Key>> {
        let jwks_uri = match &self.configured_jwks {
            Some(u) => u.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let d: Discovery =
                    self.get(&url).await?.json().await.with_context(|| format!("{url}: not a discovery document"))?;
                if d.issuer.trim_end_matches('/') != self.issuer {
                    bail!("{url} names issuer {:?}, not {:?}", d.issuer, self.issuer);
                }
                d.jwks_uri
            }
        };
        let set: JwkSet = self.get(&jwks_uri).await?.json().await.with_context(|| format!("{jwks_uri}: not a JWKS"))?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            let signing = jwk.common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature);
            let Some(kid) = jwk.common.key_id.clone().filter(|_| signing) else { continue };
            // A symmetric key in a public key set is never trusted.
            if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    keys.insert(kid, Key { key: Arc::new(key), alg });
                }
                Err(e) => tracing::warn!(issuer = %self.name, kid, error = %e, "skipping an unusable key"),
            }
        }
        Ok(keys)
    }
}
