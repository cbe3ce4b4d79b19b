//! Cross-cutting building blocks every Qualify service uses, written once:
//! typed configuration, tracing, caller identity, errors mapped to gRPC status
//! with rich details, request validation, pagination, database connections
//! and migrations, idempotent writes, and serving with health, reflection and
//! graceful drain.

/// The allocator every Qualify binary chooses in its `main` (a library never
/// does): request handling is allocation-heavy (protobuf decoding, HTTP/2
/// frames) and glibc's arenas contend under load.
pub use mimalloc::MiMalloc as Allocator;

pub mod auth;
pub mod batch;
pub mod cache;
pub mod client;
pub mod clock;
pub mod coalesce;
pub mod config;
pub mod db;
pub mod error;
pub mod follow;
pub mod idempotency;
pub mod import;
pub mod outbox;
pub mod page;
pub mod partition;
pub mod resilience;
pub mod rpc;
pub mod serve;
pub mod telemetry;
pub mod tls;
pub mod validate;

pub use auth::{Authenticator, TokenIssuer, caller};
pub use clock::Clock;
pub use config::{EnvSource, ServiceConfig};
pub use error::ApiError;
pub use validate::Violations;

/// A Qualify service as its binary and the all-in-one runner start it.
pub trait QualifyService {
    /// Short name: `scoring`, `acceptance` or `metrics`.
    const NAME: &'static str;
    /// Default listen port.
    const PORT: u16;

    /// Connects, optionally migrates, and serves on `listener` until `shutdown`.
    fn run(
        config: ServiceConfig,
        listener: tokio::net::TcpListener,
        shutdown: futures::future::BoxFuture<'static, ()>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static;

    /// Applies pending migrations and returns (the Helm hook Job runs this).
    fn migrate(config: ServiceConfig) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static;
}

/// The whole `main` of a service binary: `<bin> [serve|migrate]`, configured
/// from the environment.
pub fn service_main<S: QualifyService>() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env(S::NAME, S::PORT, &config::ProcessEnv)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let _telemetry =
        runtime.block_on(async { telemetry::init(config.log_format, S::NAME, config.otlp_endpoint.as_deref()) });
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => runtime.block_on(async {
            if let Some(addr) = config.metrics_addr {
                telemetry::serve_prometheus(addr, config.tls.as_ref())?;
            }
            if config.dev_key {
                tracing::warn!("USING THE DEVELOPMENT SIGNING KEY: anyone can mint tokens; set QUALIFY_JWT_SECRET");
            }
            let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
            S::run(config, listener, Box::pin(serve::shutdown_signal())).await
        }),
        Some("migrate") => runtime.block_on(S::migrate(config)),
        Some(other) => anyhow::bail!("unknown command {other:?}: expected serve or migrate"),
    }
}

/// The shared start-up of every service: connect, migrate when configured,
/// build the routes over the database, and serve with health, reflection and
/// drain. `build` receives the database, the configuration and the
/// authenticator to put in front of the business service; its error (a
/// setting that cannot be used) stops the start-up.
pub async fn run_service<M: sea_orm_migration::MigratorTrait>(
    name: &'static str,
    service_name: &'static str,
    config: ServiceConfig,
    listener: tokio::net::TcpListener,
    shutdown: futures::future::BoxFuture<'static, ()>,
    build: impl FnOnce(
        sea_orm::DatabaseConnection,
        &ServiceConfig,
        Authenticator,
        serve::Draining,
    ) -> anyhow::Result<tonic::service::Routes>,
) -> anyhow::Result<()> {
    let ready = |_| Box::pin(async { Ok(()) }) as futures::future::BoxFuture<'static, anyhow::Result<()>>;
    run_service_prepared::<M>(name, service_name, config, listener, shutdown, ready, build).await
}

/// [`run_service`] with a step between the migrations and serving: `prepare`
/// gets the database and must succeed before a request is taken (for example
/// the storage a request will need, such as the current month's partition).
pub async fn run_service_prepared<M: sea_orm_migration::MigratorTrait>(
    name: &'static str,
    service_name: &'static str,
    config: ServiceConfig,
    listener: tokio::net::TcpListener,
    shutdown: futures::future::BoxFuture<'static, ()>,
    prepare: impl FnOnce(sea_orm::DatabaseConnection) -> futures::future::BoxFuture<'static, anyhow::Result<()>>,
    build: impl FnOnce(
        sea_orm::DatabaseConnection,
        &ServiceConfig,
        Authenticator,
        serve::Draining,
    ) -> anyhow::Result<tonic::service::Routes>,
) -> anyhow::Result<()> {
    let db = db::connect(&config).await?;
    if config.run_migrations {
        db::migrate::<M>(&db, name).await?;
    }
    prepare(db.clone()).await?;
    let auth = Authenticator::new(Some(config.jwt_secret.as_bytes()), config.identity.as_ref())?
        .with_tenant_limit(resilience::TenantLimiter::new(config.tenant_rate_limit));
    // The issuers' keys are fetched before the first request; one that does not answer (within
    // its timeout) is fetched again on the first token it signed.
    auth.refresh_keys().await;
    let key_refresh = auth.spawn_refresh();
    let (draining, shutdown) = serve::Draining::on(shutdown);
    let routes = build(db.clone(), &config, auth.clone(), draining)?;
    let purger = idempotency::spawn_purger(db.clone(), config.clock.clone(), config.idempotency_purge_every);
    let opts = serve::ServeOptions {
        service_name,
        db,
        drain_grace: config.drain_grace,
        readiness_interval: std::time::Duration::from_secs(2),
        request_timeout: config.request_timeout,
        max_concurrent_requests: config.max_concurrent_requests,
        cors_origins: config.cors_origins.clone(),
        identity: Some(auth),
        tls: config.tls.clone(),
        health_listener: match config.health_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("QUALIFY_HEALTH_ADDR {addr}: {e}"))?,
            ),
            None => None,
        },
    };
    let served = serve::serve(listener, routes, opts, shutdown).await;
    purger.abort();
    if let Some(r) = key_refresh {
        r.abort();
    }
    served
}

/// Connects and applies pending migrations (the `migrate` command).
pub async fn migrate_only<M: sea_orm_migration::MigratorTrait>(
    name: &str,
    config: ServiceConfig,
) -> anyhow::Result<()> {
    let db = db::connect(&config).await?;
    db::migrate::<M>(&db, name).await?;
    tracing::info!(service = name, "migrations applied");
    Ok(())
}
