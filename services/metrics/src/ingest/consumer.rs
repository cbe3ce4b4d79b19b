//! The consumers that follow both streams for as long as the service runs,
//! and the rebuild that replays them from the start.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::Credentials;
use qualify_platform::tls::ClientTls;
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::Mutex;

use super::{BATCH, Position, Upstream, apply_batch, positions};
use crate::grpc::events::{EventStream, Upstreams};
use crate::store;

/// Running stream consumers (and the service's other background tasks); dropping it stops them.
pub struct Consumers(pub(crate) Vec<tokio::task::JoinHandle<()>>);

impl Drop for Consumers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The consumers of both streams, and the rebuild that replays them.
#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    upstreams: Upstreams,
    /// Held while a batch is applied or a rebuild runs.
    lock: Arc<Mutex<()>>,
}

impl Ingestor {
    /// An ingestor of the streams at `scoring_url` and `acceptance_url` (either may be absent).
    pub fn new(
        db: DatabaseConnection,
        scoring_url: Option<&str>,
        acceptance_url: Option<&str>,
        credentials: Credentials,
        tls: &ClientTls,
    ) -> anyhow::Result<Self> {
        let upstreams = Upstreams::new(scoring_url, acceptance_url, credentials, tls)?;
        Ok(Ingestor { db, upstreams, lock: Arc::new(Mutex::new(())) })
    }

    /// Reads `stream` in batches (a batch closes at [`BATCH`] events or when
    /// the stream pauses) and applies each under the lock. Returns when the
    /// stream ends.
    async fn drain(&self, upstream: Upstream, mut stream: EventStream) -> Result<(), ApiError> {
        loop {
            let Some(first) = stream.next().await else { return Ok(()) };
            let mut batch = vec![first?];
            let mut ended = false;
            while batch.len() < BATCH {
                match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
                    Ok(Some(e)) => batch.push(e?),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            {
                let _held = self.lock.lock().await;
                apply_batch(&self.db, upstream, &batch).await?;
            }
            metrics::counter!("qualify_metrics_events_ingested_total", "stream" => upstream.as_str())
                .increment(batch.len() as u64);
            if ended {
                return Ok(());
            }
        }
    }

    /// Follows `upstream` for ever from its stored cursor, reconnecting with
    /// backoff after any failure.
    pub async fn follow(self, upstream: Upstream) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let after = match store::stream::position(&self.db, upstream.as_str()).await {
                Ok((applied_sequence, _)) => applied_sequence,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics cannot read its cursor");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let run = async {
                let s = self.upstreams.open(upstream, after, true).await?;
                self.drain(upstream, s).await
            };
            match run.await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::debug!(stream = upstream.as_str(), error = %e, "event stream interrupted; resuming");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Starts following both streams (those configured) until the returned
    /// guard is dropped: the service holds it, so its consumers end with it
    /// and the upstream servers are not kept waiting on open streams.
    pub fn spawn(&self) -> Consumers {
        let tasks = Upstream::ALL
            .into_iter()
            .filter(|u| self.upstreams.configured(*u))
            .map(|u| tokio::spawn(self.clone().follow(u)))
            .collect();
        Consumers(tasks)
    }

    /// Drops every roll-up, fact, applied id and cursor, then replays both
    /// streams from the start up to their current ends. Consumers wait
    /// meanwhile; afterwards they skip what the replay already applied.
    pub async fn rebuild(&self) -> Result<Vec<Position>, ApiError> {
        let _held = self.lock.lock().await;
        let txn = self.db.begin().await?;
        store::rollup::clear(&txn).await?;
        store::facts::clear(&txn).await?;
        store::stream::clear(&txn).await?;
        txn.commit().await?;
        for u in Upstream::ALL.into_iter().filter(|u| self.upstreams.configured(*u)) {
            let mut s = self.upstreams.open(u, 0, false).await?;
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(e) = s.next().await {
                batch.push(e?);
                if batch.len() == BATCH {
                    apply_batch(&self.db, u, &std::mem::take(&mut batch)).await?;
                }
            }
            if !batch.is_empty() {
                apply_batch(&self.db, u, &batch).await?;
            }
        }
        positions(&self.db).await
    }
}
