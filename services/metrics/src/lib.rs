//! Metrics (`qualify.metrics.v1`): funnel figures and the quotas they are measured against.

pub mod export;
pub mod funnel;
pub mod grpc;
pub mod health;
pub mod ingest;
pub mod quotas;
pub mod rollup;
pub mod store;

use anyhow::Context;
use futures::future::BoxFuture;
use qualify_platform::{QualifyService, ServiceConfig, migrate_only, run_service};
use tokio::net::TcpListener;

/// The metrics service.
pub struct Metrics;

impl QualifyService for Metrics {
    const NAME: &'static str = "metrics";
    const PORT: u16 = 50053;

    fn run(
        config: ServiceConfig,
        listener: TcpListener,
        shutdown: BoxFuture<'static, ()>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        run_service::<store::migration::Migrator>(
            Self::NAME,
            grpc::SERVICE_NAME,
            config,
            listener,
            shutdown,
            |db, config, auth, _draining| {
                let ingestor = ingest::Ingestor::new(
                    db.clone(),
                    config.scoring_url.as_deref(),
                    config.acceptance_url.as_deref(),
                    config.credentials(),
                    &config.client_tls(),
                )
                .context("QUALIFY_SCORING_URL or QUALIFY_ACCEPTANCE_URL")?;
                let mut consumers = ingestor.spawn();
                consumers.0.push(export::spawn(db.clone(), config.clock.clone(), export::EXPORT_EVERY));
                let api = grpc::MetricsApi::new(db, ingestor, consumers, config.clock.clone());
                Ok(grpc::routes(api, auth, config.max_message_bytes))
            },
        )
    }

    fn migrate(config: ServiceConfig) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        migrate_only::<store::migration::Migrator>(Self::NAME, config)
    }
}
