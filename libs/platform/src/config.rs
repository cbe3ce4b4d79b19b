//! Typed configuration, read once from an injectable environment source so
//! it can be tested without touching the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where configuration values come from.
pub trait EnvSource {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A development signing key, used only when no key is configured and the
/// operator explicitly allowed it (the all-in-one runner does).
pub const DEV_JWT_SECRET: &str = "qualify-development-key-never-use-in-production";

/// The key development tools sign with: `QUALIFY_JWT_SECRET`, or
/// [`DEV_JWT_SECRET`] when it is unset (then the flag is true).
pub fn dev_signing_key(env: &impl EnvSource) -> (String, bool) {
    match env.get("QUALIFY_JWT_SECRET") {
        Some(k) => (k, false),
        None => (DEV_JWT_SECRET.to_string(), true),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Configuration of one service process.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address the gRPC server listens on (`QUALIFY_LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// sea-orm database URL, `sqlite://…` or `postgres://…` (`QUALIFY_DATABASE_URL`).
    pub database_url: String,
    /// PostgreSQL schema holding this service's tables (`QUALIFY_DATABASE_SCHEMA`).
    pub database_schema: Option<String>,
    /// Connection pool size (`QUALIFY_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Redis URL for the scorecard cache; unset uses the in-process cache (`QUALIFY_REDIS_URL`).
    pub redis_url: Option<String>,
    /// HS256 secret that signs bearer tokens (`QUALIFY_JWT_SECRET`).
    pub jwt_secret: String,
    /// True when running on [`DEV_JWT_SECRET`].
    pub dev_key: bool,
    /// Run pending migrations at start (`QUALIFY_RUN_MIGRATIONS`); the Helm chart runs them in a hook Job instead.
    pub run_migrations: bool,
    /// How long to report NOT_SERVING before closing listeners on shutdown (`QUALIFY_DRAIN_GRACE_SECS`).
    pub drain_grace: Duration,
    /// Largest request or response message in bytes (`QUALIFY_MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// Lead scoring endpoint, for services that call it (`QUALIFY_SCORING_URL`).
    pub scoring_url: Option<String>,
    /// Opportunity acceptance endpoint, for services that call it (`QUALIFY_ACCEPTANCE_URL`).
    pub acceptance_url: Option<String>,
    /// Log format (`QUALIFY_LOG_FORMAT`: text or json).
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset: no export.
    pub otlp_endpoint: Option<String>,
    /// Where Prometheus scrapes `/metrics` (`QUALIFY_METRICS_ADDR`, default `0.0.0.0:9464`;
    /// `off` disables it).
    pub metrics_addr: Option<SocketAddr>,
    /// Longest a request may run when the client sets no shorter `grpc-timeout`
    /// (`QUALIFY_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Requests handled at once by this process's service; beyond it requests are
    /// refused at once with RESOURCE_EXHAUSTED (`QUALIFY_MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent_requests: usize,
    /// Requests per second each tenant may make to this replica, 0 for no limit
    /// (`QUALIFY_TENANT_RATE_LIMIT`); bursts of twice the rate pass.
    pub tenant_rate_limit: u32,
    /// Web origins whose pages may call the service with gRPC-Web
    /// (`QUALIFY_CORS_ORIGINS`: comma-separated, or `*`); empty sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Where every use case reads the current time: the system clock, or a
    /// test's manual one.
    pub clock: crate::Clock,
    /// How often expired idempotency keys (and, with a retention, outbox
    /// events) are purged (`QUALIFY_IDEMPOTENCY_PURGE_SECS`).
    pub idempotency_purge_every: Duration,
    /// How many days delivered outbox events are kept for the event streams
    /// (`QUALIFY_OUTBOX_RETENTION_DAYS`); 0 keeps them for ever.
    pub outbox_retention_days: u32,
    /// Bulk ingestion calls (signal batches, verification feeds) a replica admits at once
    /// (`QUALIFY_INGEST_CONCURRENCY`; 0: half the database pool for verification feeds, which
    /// hold a connection each, so reads keep theirs, and 32 signal batches, which share one
    /// writer's connection).
    pub ingest_concurrency: usize,
    /// How long a bulk ingestion call waits for a slot before it is refused with
    /// RESOURCE_EXHAUSTED and RetryInfo (`QUALIFY_INGEST_WAIT_MS`): a short queue, never a deadline.
    pub ingest_wait: Duration,
    /// How many days engagement signals are kept (`QUALIFY_SIGNAL_RETENTION_DAYS`; 0 keeps them
    /// for ever). Never less than the longest look-back window of a published scorecard nor the
    /// account roll-up's default window; signals older than it are refused, and on PostgreSQL
    /// whole months older than it are dropped.
    pub signal_retention_days: u32,
    /// The trusted issuers (`QUALIFY_IDENTITY_FILE`, YAML: see [`crate::auth::identity`]); unset:
    /// HS256 tokens only.
    pub identity: Option<crate::auth::identity::IdentityConfig>,
    /// The pod's projected service-account token, which this service's own calls to the others
    /// present (`QUALIFY_SERVICE_TOKEN_FILE`); unset: tokens minted with the HS256 key.
    pub service_token_file: Option<std::path::PathBuf>,
    /// TLS on this service's ports (`QUALIFY_TLS_CERT_FILE`, `QUALIFY_TLS_KEY_FILE`; client
    /// certificates required with `QUALIFY_TLS_CLIENT_CA_FILE`); unset: plaintext.
    pub tls: Option<crate::tls::TlsFiles>,
    /// CA bundle this service's calls to `https://` peers trust (`QUALIFY_TLS_CA_FILE`); unset:
    /// the public roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// A plaintext port serving grpc.health.v1 and nothing else (`QUALIFY_HEALTH_ADDR`), for
    /// probes that cannot speak TLS (the kubelet's); unset: health is served on the main port only.
    pub health_addr: Option<SocketAddr>,
}

impl ServiceConfig {
    /// The credentials of this service's own calls to the others.
    pub fn credentials(&self) -> crate::auth::credentials::Credentials {
        crate::auth::credentials::Credentials::new(self.service_token_file.as_deref(), &self.jwt_secret)
    }

    /// What this service's own TLS connections trust and present: `QUALIFY_TLS_CA_FILE`, and
    /// its own certificate when a peer asks for one.
    pub fn client_tls(&self) -> crate::tls::ClientTls {
        crate::tls::ClientTls {
            ca: self.tls_ca_file.clone(),
            identity: self.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone())),
        }
    }

    /// Bulk ingestion calls run at once: as configured, else half the database pool (at least one).
    pub fn ingest_slots(&self) -> usize {
        match self.ingest_concurrency {
            0 => (self.database_max_connections as usize / 2).max(1),
            n => n,
        }
    }

    /// Defaults for the embedded single-machine setup of `service`.
    pub fn embedded(service: &str, listen_addr: SocketAddr) -> Self {
        ServiceConfig {
            listen_addr,
            database_url: format!("sqlite://data/{service}.db?mode=rwc"),
            database_schema: None,
            database_max_connections: 8,
            redis_url: None,
            jwt_secret: DEV_JWT_SECRET.to_string(),
            dev_key: true,
            run_migrations: true,
            drain_grace: Duration::ZERO,
            max_message_bytes: 4 * 1024 * 1024,
            scoring_url: None,
            acceptance_url: None,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            metrics_addr: None,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            tenant_rate_limit: 0,
            cors_origins: Vec::new(),
            clock: crate::Clock::system(),
            idempotency_purge_every: Duration::from_secs(600),
            outbox_retention_days: 0,
            ingest_concurrency: 0,
            ingest_wait: Duration::from_millis(1000),
            signal_retention_days: 0,
            identity: None,
            service_token_file: None,
            tls: None,
            tls_ca_file: None,
            health_addr: None,
        }
    }

    /// Reads the configuration of `service` from `env`, starting from the
    /// embedded defaults. A missing signing key is an error unless
    /// `QUALIFY_ALLOW_DEV_KEY=true`.
    pub fn from_env(service: &str, default_port: u16, env: &impl EnvSource) -> anyhow::Result<Self> {
        let default_addr = SocketAddr::from(([0, 0, 0, 0], default_port));
        let mut c = Self::embedded(service, default_addr);
        if let Some(v) = env.get("QUALIFY_LISTEN_ADDR") {
            c.listen_addr = v.parse().with_context(|| format!("QUALIFY_LISTEN_ADDR={v:?} is not host:port"))?;
        }
        if let Some(v) = env.get("QUALIFY_DATABASE_URL") {
            c.database_url = v;
        }
        c.database_schema = env.get("QUALIFY_DATABASE_SCHEMA");
        if let Some(s) = &c.database_schema
            && !crate::db::is_identifier(s)
        {
            bail!("QUALIFY_DATABASE_SCHEMA={s:?} must be a lower-case identifier");
        }
        c.database_max_connections = parse(env, "QUALIFY_DATABASE_MAX_CONNECTIONS", c.database_max_connections)?;
        c.redis_url = env.get("QUALIFY_REDIS_URL");
        if let Some(v) = &c.redis_url {
            redis::Client::open(v.as_str())
                .with_context(|| format!("QUALIFY_REDIS_URL={:?} is not a redis:// URL", crate::db::redact(v)))?;
        }
        if let Some(f) = env.get("QUALIFY_IDENTITY_FILE") {
            let read = crate::auth::identity::IdentityConfig::read(f.as_ref());
            c.identity = Some(read.with_context(|| format!("QUALIFY_IDENTITY_FILE={f:?}"))?);
        }
        c.service_token_file = env.get("QUALIFY_SERVICE_TOKEN_FILE").map(Into::into);
        let hs256_allowed = c.identity.as_ref().is_none_or(|i| i.allow_hs256);
        match env.get("QUALIFY_JWT_SECRET") {
            Some(secret) if secret.len() >= 32 => {
                c.jwt_secret = secret;
                c.dev_key = false;
            }
            Some(_) => bail!("QUALIFY_JWT_SECRET must be at least 32 bytes"),
            // With an identity provider and no HS256, no shared key exists: this one signs nothing
            // anyone accepts.
            None if !hs256_allowed => {
                c.jwt_secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                c.dev_key = false;
            }
            None if c.identity.is_some() => {
                bail!("the identity file allows HS256 tokens, but QUALIFY_JWT_SECRET is not set")
            }
            None if parse(env, "QUALIFY_ALLOW_DEV_KEY", false)? => {}
            None => bail!("QUALIFY_JWT_SECRET is not set (set QUALIFY_ALLOW_DEV_KEY=true for a development key)"),
        }
        c.run_migrations = parse(env, "QUALIFY_RUN_MIGRATIONS", c.run_migrations)?;
        c.drain_grace = Duration::from_secs(parse(env, "QUALIFY_DRAIN_GRACE_SECS", 5)?);
        c.max_message_bytes = parse(env, "QUALIFY_MAX_MESSAGE_BYTES", c.max_message_bytes)?;
        c.scoring_url = endpoint(env, "QUALIFY_SCORING_URL")?;
        c.acceptance_url = endpoint(env, "QUALIFY_ACCEPTANCE_URL")?;
        c.log_format = match env.get("QUALIFY_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("QUALIFY_LOG_FORMAT={other:?} must be text or json"),
        };
        c.otlp_endpoint = endpoint(env, "OTEL_EXPORTER_OTLP_ENDPOINT")?;
        c.metrics_addr = match env.get("QUALIFY_METRICS_ADDR").as_deref() {
            None => Some(SocketAddr::from(([0, 0, 0, 0], 9464))),
            Some("off") => None,
            Some(v) => Some(v.parse().with_context(|| format!("QUALIFY_METRICS_ADDR={v:?} is not host:port or off"))?),
        };
        c.request_timeout = Duration::from_millis(parse(env, "QUALIFY_REQUEST_TIMEOUT_MS", 30_000)?);
        c.max_concurrent_requests = parse(env, "QUALIFY_MAX_CONCURRENT_REQUESTS", c.max_concurrent_requests)?;
        if c.max_concurrent_requests == 0 {
            bail!("QUALIFY_MAX_CONCURRENT_REQUESTS must be at least 1");
        }
        c.tenant_rate_limit = parse(env, "QUALIFY_TENANT_RATE_LIMIT", c.tenant_rate_limit)?;
        c.idempotency_purge_every = Duration::from_secs(parse(env, "QUALIFY_IDEMPOTENCY_PURGE_SECS", 600)?.max(1));
        c.outbox_retention_days = parse(env, "QUALIFY_OUTBOX_RETENTION_DAYS", 0)?;
        c.ingest_concurrency = parse(env, "QUALIFY_INGEST_CONCURRENCY", 0)?;
        c.ingest_wait = Duration::from_millis(parse(env, "QUALIFY_INGEST_WAIT_MS", 1000)?);
        c.signal_retention_days = parse(env, "QUALIFY_SIGNAL_RETENTION_DAYS", 0)?;
        c.cors_origins = cors_origins(env.get("QUALIFY_CORS_ORIGINS").as_deref().unwrap_or(""))?;
        c.tls = match (env.get("QUALIFY_TLS_CERT_FILE"), env.get("QUALIFY_TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.into(),
                key: key.into(),
                client_ca: env.get("QUALIFY_TLS_CLIENT_CA_FILE").map(Into::into),
            }),
            (None, None) if env.get("QUALIFY_TLS_CLIENT_CA_FILE").is_some() => {
                bail!("QUALIFY_TLS_CLIENT_CA_FILE needs QUALIFY_TLS_CERT_FILE and QUALIFY_TLS_KEY_FILE")
            }
            (None, None) => None,
            _ => bail!("QUALIFY_TLS_CERT_FILE and QUALIFY_TLS_KEY_FILE are set together"),
        };
        c.tls_ca_file = env.get("QUALIFY_TLS_CA_FILE").map(Into::into);
        if let Some(v) = env.get("QUALIFY_HEALTH_ADDR") {
            c.health_addr = Some(v.parse().with_context(|| format!("QUALIFY_HEALTH_ADDR={v:?} is not host:port"))?);
        }
        let calls_others = c.scoring_url.is_some() || c.acceptance_url.is_some();
        if !hs256_allowed && calls_others && c.service_token_file.is_none() {
            bail!(
                "QUALIFY_SERVICE_TOKEN_FILE is not set: with an identity provider and no HS256 tokens, \
                 this service's calls to the others need the pod's service-account token"
            );
        }
        Ok(c)
    }
}

/// Parses `QUALIFY_CORS_ORIGINS`: `*`, or comma-separated `scheme://host[:port]` origins.
pub fn cors_origins(v: &str) -> anyhow::Result<Vec<String>> {
    let origins: Vec<String> = v.split(',').map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect();
    for o in &origins {
        let ok = o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/'));
        if !ok {
            bail!("QUALIFY_CORS_ORIGINS: {o:?} is not * or an origin like https://app.example.com");
        }
    }
    Ok(origins)
}

/// An `http://` or `https://` endpoint with a host, or unset.
fn endpoint(env: &impl EnvSource, key: &str) -> anyhow::Result<Option<String>> {
    let Some(v) = env.get(key) else { return Ok(None) };
    let uri: http::Uri = v.parse().map_err(|_| anyhow::anyhow!("{key}={v:?} is not a URL"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        bail!("{key}={v:?} must be an http:// or https:// URL with a host");
    }
    Ok(Some(v))
}

fn parse<T: std::str::FromStr>(env: &impl EnvSource, key: &str, default: T) -> anyhow::Result<T> {
    match env.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("{key}={v:?} is not a valid value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn production_settings_are_read_and_typed() {
        let c = ServiceConfig::from_env(
            "scoring",
            50051,
            &env(&[
                ("QUALIFY_DATABASE_URL", "postgres://app@db/qualify"),
                ("QUALIFY_DATABASE_SCHEMA", "scoring"),
                ("QUALIFY_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("QUALIFY_REDIS_URL", "redis://cache:6379"),
                ("QUALIFY_RUN_MIGRATIONS", "false"),
                ("QUALIFY_LOG_FORMAT", "json"),
                ("QUALIFY_SIGNAL_RETENTION_DAYS", "400"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen_addr.port(), 50051);
        assert_eq!(c.database_schema.as_deref(), Some("scoring"));
        assert!(!c.dev_key && !c.run_migrations);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.drain_grace, Duration::from_secs(5));
        assert_eq!(c.metrics_addr, Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
        assert_eq!((c.max_concurrent_requests, c.tenant_rate_limit), (256, 0));
        assert_eq!(c.signal_retention_days, 400);
    }

    #[test]
    fn no_signing_key_is_an_error_unless_the_dev_key_is_allowed() {
        assert!(ServiceConfig::from_env("scoring", 1, &env(&[])).is_err());
        let c = ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_ALLOW_DEV_KEY", "true")])).unwrap();
        assert!(c.dev_key);
        assert!(ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_JWT_SECRET", "short")])).is_err());
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let e = ServiceConfig::from_env(
            "scoring",
            1,
            &env(&[("QUALIFY_ALLOW_DEV_KEY", "true"), ("QUALIFY_DATABASE_MAX_CONNECTIONS", "many")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("QUALIFY_DATABASE_MAX_CONNECTIONS"), "{e}");
        let e = ServiceConfig::from_env(
            "scoring",
            1,
            &env(&[("QUALIFY_ALLOW_DEV_KEY", "true"), ("QUALIFY_DATABASE_SCHEMA", "x; drop")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("QUALIFY_DATABASE_SCHEMA"), "{e}");
    }

    #[test]
    fn unusable_urls_stop_the_start_naming_their_setting() {
        for (key, bad) in [
            ("QUALIFY_REDIS_URL", "cache:6379"),
            ("QUALIFY_SCORING_URL", "scoring:50051"),
            ("QUALIFY_ACCEPTANCE_URL", "http://"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
            ("QUALIFY_LISTEN_ADDR", "localhost"),
        ] {
            let e = ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_ALLOW_DEV_KEY", "true"), (key, bad)]))
                .unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        let c = ServiceConfig::from_env(
            "acceptance",
            1,
            &env(&[("QUALIFY_ALLOW_DEV_KEY", "true"), ("QUALIFY_SCORING_URL", "http://scoring:50051")]),
        )
        .unwrap();
        assert_eq!(c.scoring_url.as_deref(), Some("http://scoring:50051"));
    }

    #[test]
    fn cors_origins_are_any_or_exact_origins() {
        assert_eq!(cors_origins("").unwrap(), Vec::<String>::new());
        assert_eq!(cors_origins("*").unwrap(), ["*"]);
        assert_eq!(cors_origins(" https://app.example.com, http://localhost:5173 ").unwrap().len(), 2);
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x"] {
            let e = cors_origins(bad).unwrap_err();
            assert!(e.to_string().contains("QUALIFY_CORS_ORIGINS"), "{e}");
        }
    }

    #[test]
    fn an_identity_file_replaces_the_shared_key_and_needs_the_pods_token_for_calls() {
        let dir = std::env::temp_dir().join(format!("qualify-identity-{}.yaml", uuid::Uuid::new_v4().simple()));
        let file = dir.display().to_string();
        std::fs::write(&dir, "issuers: [{name: idp, issuer: 'https://idp', audience: qualify, tenant: acme}]").unwrap();
        let c = ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_IDENTITY_FILE", &file)])).unwrap();
        assert!(c.identity.is_some() && !c.dev_key, "no shared key is needed, and the development key is not used");
        let e = ServiceConfig::from_env(
            "acceptance",
            1,
            &env(&[("QUALIFY_IDENTITY_FILE", &file), ("QUALIFY_SCORING_URL", "http://scoring:50051")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("QUALIFY_SERVICE_TOKEN_FILE"), "{e}");
        std::fs::write(
            &dir,
            "allow_hs256: true\nissuers: [{name: idp, issuer: 'https://idp', audience: q, tenant: a}]",
        )
        .unwrap();
        let e = ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_IDENTITY_FILE", &file)])).unwrap_err();
        assert!(e.to_string().contains("QUALIFY_JWT_SECRET"), "{e}");
        std::fs::write(&dir, "issuers: [{name: idp, isuer: 'https://idp'}]").unwrap();
        let e = ServiceConfig::from_env("scoring", 1, &env(&[("QUALIFY_IDENTITY_FILE", &file)])).unwrap_err();
        assert!(format!("{e:#}").contains("QUALIFY_IDENTITY_FILE") && format!("{e:#}").contains("isuer"), "{e:#}");
        std::fs::remove_file(&dir).unwrap();
    }
}
