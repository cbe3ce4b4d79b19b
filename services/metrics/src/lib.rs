//! Metrics (`qualify.metrics.v1`): funnel figures and the quotas they are measured against.

pub mod entity;
pub mod export;
pub mod funnel;
pub mod grpc;
pub mod health;
pub mod ingest;
pub mod migration;

use futures::future::BoxFuture;
use qualify_platform::{QualifyService, ServiceConfig, migrate_only, run_service};
use qualify_proto::metrics::metrics_service_server::{MetricsServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

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
        run_service::<migration::Migrator>(Self::NAME, SERVICE_NAME, config, listener, shutdown, |db, config, auth| {
            let ingestor = match ingest::Ingestor::new(
                db.clone(),
                config.scoring_url.as_deref(),
                config.acceptance_url.as_deref(),
                &config.jwt_secret,
            ) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "invalid upstream URL; metrics will not ingest events");
                    ingest::Ingestor::new(db.clone(), None, None, &config.jwt_secret)
                        .unwrap_or_else(|_| unreachable!("no URL to parse"))
                }
            };
            let mut consumers = ingestor.spawn();
            consumers.0.push(export::spawn(db.clone(), export::EXPORT_EVERY));
            let server = MetricsServiceServer::new(grpc::MetricsApi::new(db, ingestor, consumers))
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes);
            Routes::new(InterceptedService::new(server, auth))
        })
    }

    fn migrate(config: ServiceConfig) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        migrate_only::<migration::Migrator>(Self::NAME, config)
    }
}
