//! Opportunity acceptance (`qualify.acceptance.v1`): the SQO gate.
//!
//! `grpc` speaks the wire; the use cases (`opportunities`, `policies`,
//! `calibration`) work in domain types; `store` holds the tables and queries.

pub mod calibration;
pub mod grpc;
pub mod imports;
pub mod opportunities;
pub mod policies;
pub mod store;

use anyhow::Context;
use futures::future::BoxFuture;
use qualify_platform::outbox::{Pruning, Relay};
use qualify_platform::{QualifyService, ServiceConfig, migrate_only, run_service};
use tokio::net::TcpListener;

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
        run_service::<store::migration::Migrator>(
            Self::NAME,
            grpc::SERVICE_NAME,
            config,
            listener,
            shutdown,
            |db, config, auth, draining| {
                let scoring =
                    grpc::ScoringClient::new(config.scoring_url.as_deref(), config.credentials(), &config.client_tls())
                        .context("QUALIFY_SCORING_URL")?;
                let relay = Relay::spawn(db.clone(), draining, Pruning::from_config(config));
                let api = grpc::AcceptanceApi::new(db, relay, scoring, config.clock.clone());
                Ok(grpc::routes(api, auth, config.max_message_bytes))
            },
        )
    }

    fn migrate(config: ServiceConfig) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        migrate_only::<store::migration::Migrator>(Self::NAME, config)
    }
}
