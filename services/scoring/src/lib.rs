//! Lead scoring (`qualify.scoring.v1`): accounts and leads enter Qualify here.

pub mod accounts;
pub mod contacts;
pub mod grpc;
pub mod imports;
pub mod leads;
pub mod milestones;
pub mod retention;
pub mod scorecards;
pub mod signals;
pub mod store;

use anyhow::Context;
use futures::future::BoxFuture;
use qualify_platform::cache::Redis;
use qualify_platform::outbox::{Pruning, Relay};
use qualify_platform::{QualifyService, ServiceConfig, migrate_only, run_service_prepared};

use crate::scorecards::Cards;
use tokio::net::TcpListener;

/// The lead scoring service.
pub struct Scoring;

impl QualifyService for Scoring {
    const NAME: &'static str = "scoring";
    const PORT: u16 = 50051;

    fn run(
        config: ServiceConfig,
        listener: TcpListener,
        shutdown: BoxFuture<'static, ()>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        // The signals table's months are made (and old ones dropped) before the first request.
        let retention = retention::Retention::new(config.signal_retention_days);
        let (first, clock) = (retention.clone(), config.clock.clone());
        let prepare = move |db: sea_orm::DatabaseConnection| -> BoxFuture<'static, anyhow::Result<()>> {
            Box::pin(async move {
                let done = first.maintain(&db, clock.now()).await.context("signal partitions")?;
                tracing::info!(created = ?done.created, dropped = ?done.dropped, deleted = done.deleted, "signal partitions maintained");
                Ok(())
            })
        };
        run_service_prepared::<store::migration::Migrator>(
            Self::NAME,
            grpc::SERVICE_NAME,
            config,
            listener,
            shutdown,
            prepare,
            move |db, config, auth, draining| {
                let redis = match config.redis_url.as_deref() {
                    Some(url) => Some(Redis::connect(url).context("QUALIFY_REDIS_URL")?),
                    None => None,
                };
                retention.spawn(db.clone(), config.clock.clone(), draining.clone());
                let relay = Relay::spawn(db.clone(), draining, Pruning::from_config(config));
                // Half the pool for batched score reads: the rest stays free for writes.
                let read_slots = (config.database_max_connections as usize / 2).max(1);
                // A lead follows its opportunity through acceptance's event stream.
                let following = match config.acceptance_url.as_deref() {
                    Some(url) => Some(
                        grpc::follow_acceptance(
                            db.clone(),
                            relay.clone(),
                            url,
                            config.credentials(),
                            &config.client_tls(),
                        )
                        .context("QUALIFY_ACCEPTANCE_URL")?,
                    ),
                    None => None,
                };
                let api = grpc::ScoringApi::new(db, Cards::new(redis), relay, read_slots, config.clock.clone())
                    .ingest_slots(config.ingest_slots(), config.ingest_concurrency, config.ingest_wait)
                    .following(following)
                    .retention(retention);
                Ok(grpc::routes(api, auth, config.max_message_bytes))
            },
        )
    }

    fn migrate(config: ServiceConfig) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        migrate_only::<store::migration::Migrator>(Self::NAME, config)
    }
}
