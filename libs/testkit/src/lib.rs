//! Test support: a database per test on the machine's real PostgreSQL (or
//! SQLite), services spawned on `127.0.0.1:0`, the whole [`Cluster`], the
//! [`fixtures`] tests start from, tokens, and eventually-asserts.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use qualify_platform::{QualifyService, ServiceConfig, TokenIssuer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use cluster::{Clients, Cluster};
pub use qualify_domain::Role;

mod cluster;
pub mod fixtures;
pub mod oidc;
mod schema;
pub mod tls;

/// Signing key of every test cluster.
pub const TEST_SECRET: &str = "qualify-test-secret-0123456789abcdef";

/// PostgreSQL used by tests: `QUALIFY_TEST_DATABASE_URL`, or the machine's server.
pub fn postgres_url() -> String {
    std::env::var("QUALIFY_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Redis used by tests: `QUALIFY_TEST_REDIS_URL`, or the machine's server.
pub fn redis_url() -> String {
    std::env::var("QUALIFY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh in-memory SQLite database.
    Sqlite,
    /// A fresh schema on the machine's PostgreSQL.
    Postgres,
}

/// Configuration for one service of a test, on a database of its own.
/// PostgreSQL must answer: a test that needs it fails loudly, it never skips.
/// On PostgreSQL the schema is dropped once the configuration, its clones and
/// the services spawned on it are all dropped, that is when the test is done.
pub async fn config(service: &str, backend: Backend) -> TestConfig {
    let mut c = ServiceConfig::embedded(service, SocketAddr::from(([127, 0, 0, 1], 0)));
    c.jwt_secret = TEST_SECRET.into();
    c.dev_key = false;
    let mut schema = None;
    match backend {
        Backend::Sqlite => c.database_url = "sqlite::memory:".into(),
        Backend::Postgres => {
            let url = postgres_url();
            let s = schema::Schema::create(&url, service).await;
            c.database_url = url;
            c.database_schema = Some(s.name().to_string());
            c.database_max_connections = 8;
            schema = Some(s);
        }
    }
    TestConfig { config: c, schema, file: None }
}

/// Like [`config`], but a restarted service finds what the first one stored:
/// on SQLite the database is a file (removed when the test is done) instead
/// of memory; PostgreSQL's schema already outlives a restart.
pub async fn durable_config(service: &str, backend: Backend) -> TestConfig {
    let mut c = config(service, backend).await;
    if backend == Backend::Sqlite {
        let path = std::env::temp_dir().join(format!("qualify-{service}-{}.db", uuid::Uuid::new_v4().simple()));
        c.config.database_url = format!("sqlite://{}?mode=rwc", path.display());
        c.file = Some(Arc::new(SqliteFile(path)));
    }
    c
}

/// A test's SQLite file, removed with its WAL and shared memory when dropped.
#[derive(Debug)]
struct SqliteFile(std::path::PathBuf);

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A [`ServiceConfig`] (it derefs to one) that keeps its test schema alive:
/// clones share the schema, and [`spawn`] hands it to the [`Running`] service.
#[derive(Debug, Clone)]
pub struct TestConfig {
    config: ServiceConfig,
    schema: Option<Arc<schema::Schema>>,
    file: Option<Arc<SqliteFile>>,
}

impl Deref for TestConfig {
    type Target = ServiceConfig;

    fn deref(&self) -> &ServiceConfig {
        &self.config
    }
}

impl DerefMut for TestConfig {
    fn deref_mut(&mut self) -> &mut ServiceConfig {
        &mut self.config
    }
}

/// A configuration made by hand owns no schema.
impl From<ServiceConfig> for TestConfig {
    fn from(config: ServiceConfig) -> Self {
        TestConfig { config, schema: None, file: None }
    }
}

/// A service running on a loopback port; stops when dropped or on [`Running::stop`].
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// The test schema or SQLite file, kept at least as long as the service.
    _storage: (Option<Arc<schema::Schema>>, Option<Arc<SqliteFile>>),
    /// How clients reach it when it serves TLS: its CA, and its own certificate as theirs.
    client_tls: Option<qualify_platform::tls::ClientTls>,
}

impl Running {
    /// `http://addr`, or `https://addr` when it serves TLS, for clients.
    pub fn url(&self) -> String {
        let scheme = if self.client_tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A channel to the service (over TLS, presenting the service's own certificate, when it serves TLS).
    pub async fn channel(&self) -> tonic::transport::Channel {
        if let Some(tls) = &self.client_tls {
            return qualify_platform::client::channel(&self.url(), None, tls).expect("TLS channel");
        }
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("valid url")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("service reachable")
    }

    /// Kills the service as a crash would: its task is aborted wherever it is,
    /// with no drain; open transactions are rolled back by the database.
    pub async fn kill(mut self) {
        self.stop.take();
        if let Some(h) = self.handle.take() {
            h.abort();
            let _ = h.await;
        }
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.halt().await
    }

    /// Stops the service gracefully and waits for it, keeping its address
    /// for [`Running::resume`].
    pub async fn halt(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.handle.take() {
            Some(h) => h.await?,
            None => Ok(()),
        }
    }

    /// Starts `S` with `config` again on the address of this halted service,
    /// as a restarted pod keeps its Service address.
    pub async fn resume<S: QualifyService>(&mut self, config: impl Into<TestConfig>) {
        let mut listener = tokio::net::TcpListener::bind(self.addr).await;
        for _ in 0..50 {
            if listener.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            listener = tokio::net::TcpListener::bind(self.addr).await;
        }
        *self = spawn_on::<S>(config, listener.expect("the halted service's address is free again")).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts service `S` with `config` on `127.0.0.1:0` and waits until it accepts connections.
pub async fn spawn<S: QualifyService>(config: impl Into<TestConfig>) -> Running {
    spawn_on::<S>(config, loopback().await).await
}

/// A listener on `127.0.0.1:0`, for a service whose address others must know before it starts.
pub async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback")
}

/// Starts service `S` with `config` on `listener`.
pub async fn spawn_on<S: QualifyService>(config: impl Into<TestConfig>, listener: tokio::net::TcpListener) -> Running {
    let TestConfig { mut config, schema, file } = config.into();
    let addr = listener.local_addr().expect("local addr");
    config.listen_addr = addr;
    let client_tls = config.tls.as_ref().map(|t| qualify_platform::tls::ClientTls {
        ca: config.tls_ca_file.clone(),
        identity: Some((t.cert.clone(), t.key.clone())),
    });
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(S::run(
        config,
        listener,
        Box::pin(async move {
            let _ = rx.await;
        }),
    ));
    Running { addr, stop: Some(tx), handle: Some(handle), _storage: (schema, file), client_tls }
}

/// A token for the test cluster.
pub fn token(tenant: &str, subject: &str, roles: &[Role]) -> String {
    TokenIssuer::hs256(TEST_SECRET.as_bytes()).issue(tenant, subject, roles, Duration::from_secs(3600)).expect("token")
}

/// A token of the same tenant and roles as `token`, for another `subject`:
/// someone who may make the same calls, but is not the one who made them.
pub fn impostor(token: &str, subject: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    let claims: qualify_platform::auth::Claims = serde_json::from_slice(&json).expect("Qualify claims");
    let roles: Vec<Role> = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
    self::token(&claims.tenant, subject, &roles)
}

/// Wraps a message in a request carrying `token`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    r
}

/// Tokens of one tenant's people, the cast of the tests and [`fixtures`].
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The tenant they belong to.
    pub tenant: String,
    /// `sync`, the CRM sync: a service account.
    pub sync: String,
    /// `sam`, a sales development rep.
    pub sdr: String,
    /// `alex`, an account executive.
    pub ae: String,
    /// `mia`, a sales manager.
    pub manager: String,
    /// `rita`, revenue operations.
    pub revops: String,
    /// `enricher`, the contact-data verification integration: a verifier.
    pub verifier: String,
    /// `crm-migration`, the job that imports the CRM's history: an importer.
    pub importer: String,
}

impl Tokens {
    /// The tokens of `tenant`'s people.
    pub fn new(tenant: &str) -> Self {
        Tokens {
            tenant: tenant.into(),
            sync: token(tenant, "sync", &[Role::Service]),
            sdr: token(tenant, "sam", &[Role::Sdr]),
            ae: token(tenant, "alex", &[Role::Ae]),
            manager: token(tenant, "mia", &[Role::Manager]),
            revops: token(tenant, "rita", &[Role::Revops]),
            verifier: token(tenant, "enricher", &[Role::Verifier]),
            importer: token(tenant, "crm-migration", &[Role::Importer]),
        }
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs each named `async fn(Backend)` as two tests: on SQLite and on the
/// machine's PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() { super::$name($crate::Backend::Sqlite).await }
            #[tokio::test]
            async fn postgres() { super::$name($crate::Backend::Postgres).await }
        }
    )*};
}

/// Points `config` at the machine's Redis, which must answer: a test that
/// needs Redis fails loudly, it never skips.
pub async fn with_redis(mut config: TestConfig) -> TestConfig {
    let url = redis_url();
    let reachable = tokio::time::timeout(Duration::from_secs(2), async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
    })
    .await
    .ok()
    .flatten();
    assert_eq!(reachable.as_deref(), Some("PONG"), "Redis at {url} is required by this test and did not answer");
    config.redis_url = Some(url);
    config
}

/// A tenant id no earlier run has used (Redis outlives test databases).
pub fn unique_tenant(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
