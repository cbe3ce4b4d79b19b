//! An identity provider a test runs itself: signing keys generated in the
//! test (RS256, ES256, EdDSA), its discovery document and JWKS served over
//! HTTP or HTTPS (a CA made for the test) on `127.0.0.1:0`, and tokens signed
//! with any of its keys. Keys can be added and withdrawn (a rotation) and
//! the whole provider can stop answering (an outage).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A key type the provider can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA 2048, RS256.
    Rs256,
    /// P-256, ES256.
    Es256,
    /// Ed25519, EdDSA.
    EdDsa,
}

struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn generate(kind: KeyType, kid: &str) -> SigningKey {
    use p256::pkcs8::EncodePrivateKey as _;
    match kind {
        KeyType::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let k = rsa::RsaPrivateKey::new(&mut rand08::thread_rng(), 2048).expect("RSA key");
            let der = k.to_pkcs1_der().expect("PKCS#1");
            let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": B64.encode(k.n().to_bytes_be()), "e": B64.encode(k.e().to_bytes_be())});
            SigningKey { kid: kid.into(), alg: Algorithm::RS256, key: EncodingKey::from_rsa_der(der.as_bytes()), jwk }
        }
        KeyType::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let k = p256::SecretKey::random(&mut rand08::rngs::OsRng);
            let der = k.to_pkcs8_der().expect("PKCS#8");
            let p = k.public_key().to_encoded_point(false);
            let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": B64.encode(p.x().expect("x")), "y": B64.encode(p.y().expect("y"))});
            SigningKey { kid: kid.into(), alg: Algorithm::ES256, key: EncodingKey::from_ec_der(der.as_bytes()), jwk }
        }
        KeyType::EdDsa => {
            let k = ed25519_dalek::SigningKey::generate(&mut rand08::rngs::OsRng);
            let der = k.to_pkcs8_der().expect("PKCS#8");
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
                "x": B64.encode(k.verifying_key().as_bytes())});
            SigningKey { kid: kid.into(), alg: Algorithm::EdDSA, key: EncodingKey::from_ed_der(der.as_bytes()), jwk }
        }
    }
}

struct State {
    keys: Mutex<Vec<SigningKey>>,
    answering: AtomicBool,
    jwks_fetches: AtomicUsize,
    issuer: Mutex<String>,
}

/// A running test identity provider; stops when dropped.
pub struct Provider {
    state: Arc<State>,
    issuer: String,
    ca: Option<PathBuf>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.ca {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

impl Provider {
    /// Starts a provider over plain HTTP.
    pub async fn http() -> Provider {
        Self::start(false).await
    }

    /// Starts a provider over HTTPS with a certificate for `127.0.0.1` from a CA of its own
    /// ([`Provider::ca_file`]).
    pub async fn https() -> Provider {
        Self::start(true).await
    }

    async fn start(tls: bool) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let issuer = format!("{}://127.0.0.1:{}/idp", if tls { "https" } else { "http" }, addr.port());
        let state = Arc::new(State {
            keys: Mutex::default(),
            answering: AtomicBool::new(true),
            jwks_fetches: AtomicUsize::new(0),
            issuer: Mutex::new(issuer.clone()),
        });
        let (acceptor, ca) = if tls {
            let (acceptor, ca_pem) = crate::tls::acceptor_for_loopback();
            let path = std::env::temp_dir().join(format!("qualify-idp-ca-{}.pem", uuid::Uuid::new_v4().simple()));
            std::fs::write(&path, &ca_pem).expect("write CA");
            (Some(acceptor), Some(path))
        } else {
            (None, None)
        };
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                answer(tls, &s).await;
                            }
                        }
                        None => answer(tcp, &s).await,
                    }
                });
            }
        });
        Provider { state, issuer, ca, task }
    }

    /// The issuer URL (`iss`), under which `/.well-known/openid-configuration` is served.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The PEM file of the CA that signed the HTTPS certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.clone()
    }

    /// Generates a key of `kind` named `kid` and publishes it.
    pub fn add_key(&self, kind: KeyType, kid: &str) {
        self.state.keys.lock().expect("keys").push(generate(kind, kid));
    }

    /// Withdraws key `kid` from the JWKS (tokens signed with it can still be made).
    pub fn unpublish(&self, kid: &str) {
        for k in self.state.keys.lock().expect("keys").iter_mut().filter(|k| k.kid == kid) {
            k.jwk = Value::Null;
        }
    }

    /// Whether the provider answers at all (false: every request gets 503).
    pub fn set_answering(&self, on: bool) {
        self.state.answering.store(on, Ordering::SeqCst);
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The public JWK of key `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        self.state.keys.lock().expect("keys").iter().find(|k| k.kid == kid).expect("known kid").jwk.clone()
    }

    /// A token signed with key `kid` carrying `claims` (nothing added).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let keys = self.state.keys.lock().expect("keys");
        let k = keys.iter().find(|k| k.kid == kid).expect("known kid");
        let mut h = Header::new(k.alg);
        h.kid = Some(k.kid.clone());
        jsonwebtoken::encode(&h, claims, &k.key).expect("sign")
    }

    /// The people of `tenant` as [`crate::fixtures`] knows them, each a token signed
    /// with `kid` whose `org` claim names the tenant and whose `groups` claim their
    /// role by its Qualify name; `sync` is a person with the service role.
    pub fn tenant_tokens(&self, kid: &str, tenant: &str) -> crate::Tokens {
        let t = |sub: &str, role: &str| self.token(kid, sub, "qualify", json!({"org": tenant, "groups": [role]}));
        crate::Tokens {
            tenant: tenant.into(),
            sync: t("sync", "service"),
            sdr: t("sam", "sdr"),
            ae: t("alex", "ae"),
            manager: t("mia", "manager"),
            revops: t("rita", "revops"),
            verifier: t("enricher", "verifier"),
            importer: t("crm-migration", "importer"),
        }
    }

    /// A token signed with `kid` for `sub`, this issuer, `aud`, valid for an hour, plus `extra` claims.
    pub fn token(&self, kid: &str, sub: &str, aud: &str, extra: Value) -> String {
        let mut claims = json!({"iss": self.issuer, "sub": sub, "aud": aud, "iat": now(), "exp": now() + 3600});
        if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
            c.extend(e);
        }
        self.sign(kid, &claims)
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S, state: &State) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let issuer = state.issuer.lock().expect("issuer").clone();
    let (status, body) = if !state.answering.load(Ordering::SeqCst) {
        ("503 Service Unavailable", "{}".to_string())
    } else if path == "/idp/.well-known/openid-configuration" {
        ("200 OK", json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}).to_string())
    } else if path == "/idp/jwks" {
        state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        let keys: Vec<Value> =
            state.keys.lock().expect("keys").iter().map(|k| k.jwk.clone()).filter(|j| !j.is_null()).collect();
        ("200 OK", json!({ "keys": keys }).to_string())
    } else {
        ("404 Not Found", "{}".to_string())
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(resp.as_bytes()).await;
    let _ = io.shutdown().await;
}
