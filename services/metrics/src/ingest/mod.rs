//! Ingestion: the event streams of lead scoring and opportunity acceptance,
//! consumed over gRPC from a stored cursor and folded into facts and roll-ups.
//!
//! Each batch is applied in one transaction together with its event ids and
//! the stream's new cursor, so a crash or restart resumes exactly after the
//! last applied batch, and an event delivered twice is applied once. Every
//! figure is a pure function of the events: replaying both streams from the
//! start (a rebuild) reproduces it exactly, whichever stream runs ahead.
//!
//! `grpc::events` reads and decodes the streams; [`event`] is what it hands
//! over, [`apply`] what one event changes, [`facts`] what is remembered
//! between events, and [`consumer`] follows the streams and rebuilds.

mod apply;
pub mod consumer;
pub mod event;
pub(crate) mod facts;

use std::collections::HashSet;

use qualify_platform::ApiError;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

pub use self::consumer::{Consumers, Ingestor};
pub use self::event::{Change, Event};
use self::facts::Facts;
use crate::rollup::Deltas;
use crate::store;

/// Most events applied in one transaction. Large batches let a catch-up or a
/// rebuild fold many events into each roll-up row it writes.
pub const BATCH: usize = 20_000;

/// The two upstream streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Lead scoring: leads created, stage changes.
    Scoring,
    /// Opportunity acceptance: opportunities changed.
    Acceptance,
}

impl Upstream {
    /// Both, in a fixed order.
    pub const ALL: [Upstream; 2] = [Upstream::Scoring, Upstream::Acceptance];

    /// Name of its cursor.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Scoring => "scoring",
            Upstream::Acceptance => "acceptance",
        }
    }
}

/// Where a stream's ingestion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Stream name ([`Upstream::as_str`]).
    pub stream: String,
    /// Sequence of the last event applied.
    pub applied_sequence: i64,
    /// Events applied (each once).
    pub applied_events: i64,
}

/// Applies a batch of one stream's events (in stream order) in one
/// transaction with their ids and the new cursor. Events at or before the
/// stored cursor, or already applied, change nothing. Returns the cursor.
/// The facts the batch touches are read in one query per table and written
/// back in one per table: the cost is per batch, not per event.
pub async fn apply_batch(db: &DatabaseConnection, upstream: Upstream, events: &[Event]) -> Result<i64, ApiError> {
    let txn = db.begin().await?;
    // Replicas follow the same streams: one batch is applied at a time across all of them
    // (as the in-process lock does within one), and the next reads the cursor, the
    // processed ids and the facts only after the previous one committed. So no event is
    // counted twice (a decision's counts are not idempotent facts) and the two streams,
    // which update the same lead facts, never overwrite each other's changes.
    store::stream::lock_ingestion(&txn).await?;
    let (mut seq, mut count) = store::stream::position(&txn, upstream.as_str()).await?;
    // Past the cursor, and not applied before under another position.
    let mut fresh: Vec<&Event> = Vec::with_capacity(events.len());
    for e in events {
        if e.sequence > seq {
            seq = e.sequence;
            fresh.push(e);
        }
    }
    let id = |e: &Event| format!("{}:{}", upstream.as_str(), e.id);
    // Each event id is claimed once: the ids this batch claims are its fresh events.
    let ids: Vec<String> = fresh.iter().map(|e| id(e)).collect();
    let mut claimed: HashSet<String> = store::stream::claim(&txn, &ids).await?;
    // The first of several deliveries of one id within the batch.
    fresh.retain(|e| claimed.remove(&id(e)));
    count += fresh.len() as i64;
    let mut facts = Facts::load(&txn, &fresh).await?;
    let mut d = Deltas::default();
    for e in &fresh {
        apply::apply(&mut facts, e, &mut d);
    }
    facts.write(&txn).await?;
    store::rollup::add(&txn, d).await?;
    store::stream::save_position(&txn, upstream.as_str(), seq, count).await?;
    txn.commit().await?;
    Ok(seq)
}

/// Where each stream stands.
pub async fn positions(db: &impl ConnectionTrait) -> Result<Vec<Position>, ApiError> {
    let mut out = Vec::new();
    for u in Upstream::ALL {
        let (applied_sequence, applied_events) = store::stream::position(db, u.as_str()).await?;
        out.push(Position { stream: u.as_str().to_string(), applied_sequence, applied_events });
    }
    Ok(out)
}
