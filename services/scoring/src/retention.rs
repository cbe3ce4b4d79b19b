//! How long signals are kept. A retention is configured in days
//! (`QUALIFY_SIGNAL_RETENTION_DAYS`, 0: for ever) and is never shorter than
//! the longest look-back window of a published scorecard, nor the account
//! roll-up's default window. Signals that occurred before it are refused; the
//! months wholly before it are dropped (PostgreSQL) or their rows deleted
//! (SQLite) by a maintenance pass before the service serves and every few
//! hours, which also creates the months from the retention's through three ahead. Scores read each lead's packed log, not the
//! table, so dropping a month changes no score; what it bounds is account
//! roll-ups, whose window may not reach past the retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use qualify_platform::partition::Maintained;
use qualify_platform::serve::Draining;
use qualify_platform::{ApiError, Clock};
use sea_orm::DatabaseConnection;

use crate::accounts::DEFAULT_WINDOW_DAYS;
use crate::store::{scorecards, signals};

/// How often the maintenance pass runs.
pub const EVERY: StdDuration = StdDuration::from_secs(6 * 3600);

/// The retention of one replica: the configured days and the days in effect.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    configured: u32,
    /// Days in effect, raised to the scorecards' longest window by each pass; 0: for ever.
    in_effect: Arc<AtomicU32>,
}

impl Retention {
    /// A retention of `configured` days (0: signals are kept for ever).
    pub fn new(configured: u32) -> Self {
        let days = if configured == 0 { 0 } else { configured.max(DEFAULT_WINDOW_DAYS.unsigned_abs()) };
        Retention { configured, in_effect: Arc::new(AtomicU32::new(days)) }
    }

    /// Days signals are kept, if not for ever.
    pub fn days(&self) -> Option<u32> {
        Some(self.in_effect.load(Ordering::Relaxed)).filter(|d| *d > 0)
    }

    /// Signals that occurred before this, at `now`, are refused.
    pub fn floor(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.days().map(|d| now - Duration::days(i64::from(d)))
    }

    /// One pass at `now`: the days in effect recomputed from the published
    /// scorecards, then the table's months created ahead and those past the
    /// retention dropped.
    pub async fn maintain(&self, db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Maintained, ApiError> {
        if self.configured > 0 {
            let longest = scorecards::longest_window(db).await?;
            let days = self.configured.max(DEFAULT_WINDOW_DAYS.unsigned_abs()).max(longest);
            self.in_effect.store(days, Ordering::Relaxed);
        }
        let keep = self.days().map(|d| Duration::days(i64::from(d)));
        Ok(signals::PARTITIONS.maintain(db, now, keep).await?)
    }

    /// A published scorecard looks back `days`: the retention in effect covers it at once
    /// (the other replicas on their next pass, refusing more until then, never less).
    pub fn cover_window(&self, days: u32) {
        if self.configured > 0 {
            self.in_effect.fetch_max(days, Ordering::Relaxed);
        }
    }

    /// Runs [`Retention::maintain`] every [`EVERY`] (the first pass is the
    /// service's, before it serves) until the server drains.
    pub fn spawn(&self, db: DatabaseConnection, clock: Clock, mut draining: Draining) {
        let retention = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = draining.started() => return,
                }
                match retention.maintain(&db, clock.now()).await {
                    Ok(done) => tracing::info!(
                        created = ?done.created,
                        dropped = ?done.dropped,
                        deleted = done.deleted,
                        retention_days = retention.days().unwrap_or(0),
                        "signal partitions maintained"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "signal partition maintenance failed; retried on the next pass")
                    }
                }
            }
        });
    }
}
