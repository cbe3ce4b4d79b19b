//! Opportunity acceptance (`qualify.acceptance.v1`): the SQO gate.

pub mod entity;
pub mod grpc;
pub mod migration;
pub mod scoring;

use futures::future::BoxFuture;
use qualify_platform::outbox::Relay;
use qualify_platform::{QualifyService, ServiceConfig, migrate_only, run_service};
use qualify_proto::acceptance::opportunity_acceptance_service_server::{
    OpportunityAcceptanceServiceServer, SERVICE_NAME,
};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

/// The opportunity acceptance service.
pub struct Acceptance;

impl QualifyService for Acceptance {
    const NAME: &'static str = "acceptance";
    const PORT: u16 = 50052;

    fn run(
        config: ServiceConfig,
        listener: TcpListener,
        shutdown: BoxFuture<'static, ()>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        run_service::<migration::Migrator>(Self::NAME, SERVICE_NAME, config, listener, shutdown, |db, config, auth| {
            let scoring = match scoring::ScoringClient::new(config.scoring_url.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "invalid QUALIFY_SCORING_URL; submissions will be UNAVAILABLE");
                    scoring::ScoringClient::unconfigured()
                }
            };
            let relay = Relay::spawn(db.clone());
            let server = OpportunityAcceptanceServiceServer::new(grpc::AcceptanceApi::new(db, relay, scoring))
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes);
            Routes::new(InterceptedService::new(server, auth))
        })
    }

    fn migrate(config: ServiceConfig) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        migrate_only::<migration::Migrator>(Self::NAME, config)
    }
}
