//! Signal ingestion on the wire: each signal checked on its own (a rejected one
//! does not fail the batch), the batch ingested in one transaction with the
//! events of the moves it caused, and a result per signal.

use chrono::{DateTime, Duration, Utc};
use qualify_domain::Caller;
use qualify_domain::scoring::{Signal, SignalType};
use qualify_platform::Clock;
use qualify_platform::batch::Group;
use qualify_platform::outbox::Relay;
use qualify_platform::validate::is_resource_id;
use qualify_platform::{ApiError, Violations};
use qualify_proto::convert::{WireEnum, from_timestamp};
use qualify_proto::scoring::{self as pb, SignalOutcome};
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{ScoringApi, events};
use crate::scorecards::Cards;
use crate::signals::{self, Incoming, Ingested, Outcome, Rejection};

/// Most signals one call may carry.
pub const MAX_BATCH: usize = 1000;

fn rejection(field: &'static str, description: &'static str) -> Rejection {
    Rejection { field, description }
}

/// Checks one signal on its own; the lead's existence is checked against the batch.
fn check(s: &pb::Signal, now: DateTime<Utc>) -> Result<Signal, Vec<Rejection>> {
    const ID: &str = "must be 1 to 128 characters of [A-Za-z0-9._:-]";
    let mut errors = Vec::new();
    if !is_resource_id(&s.signal_id) {
        errors.push(rejection("signal_id", ID));
    }
    if !is_resource_id(&s.lead_id) {
        errors.push(rejection("lead_id", ID));
    }
    if !s.contact_id.is_empty() && !is_resource_id(&s.contact_id) {
        errors.push(rejection("contact_id", ID));
    }
    let kind = SignalType::from_wire(s.r#type);
    if kind.is_none() {
        errors.push(rejection("type", if s.r#type == 0 { "is required" } else { "is not a known value" }));
    }
    let at = s.occur_time.as_ref().and_then(from_timestamp);
    match at {
        None => errors.push(rejection("occur_time", "is required and must be a valid time")),
        // A day of clock skew is tolerated; further in the future is a bug upstream.
        Some(t) if t > now + Duration::days(1) => errors.push(rejection("occur_time", "is in the future")),
        Some(_) => {}
    }
    match (kind, at) {
        (Some(kind), Some(occurred_at)) if errors.is_empty() => Ok(Signal { kind, occurred_at }),
        _ => Err(errors),
    }
}

fn decode(s: &pb::Signal, now: DateTime<Utc>) -> Incoming {
    Incoming {
        signal_id: s.signal_id.clone(),
        lead_id: s.lead_id.clone(),
        contact_id: (!s.contact_id.is_empty()).then(|| s.contact_id.clone()),
        checked: check(s, now),
    }
}

fn encode(signals: &[pb::Signal], ingested: Ingested) -> pb::IngestSignalsResponse {
    let mut out = pb::IngestSignalsResponse::default();
    for (s, outcome) in signals.iter().zip(ingested.outcomes) {
        let mut result = pb::SignalResult { signal_id: s.signal_id.clone(), ..Default::default() };
        match outcome {
            Outcome::Accepted => {
                result.outcome = SignalOutcome::Accepted as i32;
                out.accepted_count += 1;
            }
            Outcome::Duplicate => {
                result.outcome = SignalOutcome::Duplicate as i32;
                out.duplicate_count += 1;
            }
            Outcome::Rejected(rejections) => {
                result.outcome = SignalOutcome::Rejected as i32;
                result.violations = super::encode_rejections(rejections);
                out.rejected_count += 1;
            }
        }
        out.results.push(result);
    }
    out.stage_changes = ingested.stage_changes.iter().map(events::encode_change).collect();
    out
}

/// Signal batches (each with its tenant), ingested a round at a time.
pub(super) type Writer = Group<(String, Vec<Incoming>), Ingested>;

/// Batches per round: 16,000 signals at most in one transaction.
const MAX_ROUND: usize = 16;

/// The writer of signal batches: the batches that arrive while a round runs
/// are ingested together in the next one, in one transaction with the events
/// of the moves they caused. Concurrent batches over the same leads would
/// otherwise wait on each other's row locks, one transaction at a time.
pub(super) fn writer(db: DatabaseConnection, cards: Cards, relay: Relay, clock: Clock) -> Writer {
    Group::spawn("signal batches", MAX_ROUND, move |group: Vec<(String, Vec<Incoming>)>| {
        let (db, cards, relay, now) = (db.clone(), cards.clone(), relay.clone(), clock.now());
        async move {
            let tenants: Vec<String> = group.iter().map(|(t, _)| t.clone()).collect();
            let txn = db.begin().await?;
            let ingested = signals::ingest(&txn, &cards, group, now).await?;
            let mut moved = false;
            for (tenant, i) in tenants.iter().zip(&ingested) {
                events::stage_changes(&txn, tenant, &i.stage_changes).await?;
                moved |= !i.stage_changes.is_empty();
            }
            txn.commit().await?;
            if moved {
                relay.nudge();
            }
            Ok(ingested)
        }
    })
}

impl ScoringApi {
    pub(crate) async fn ingest_signals(
        &self,
        caller: Caller,
        req: pb::IngestSignalsRequest,
    ) -> Result<pb::IngestSignalsResponse, ApiError> {
        let mut v = Violations::new();
        v.check(!req.signals.is_empty(), "signals", "must not be empty");
        v.check(req.signals.len() <= MAX_BATCH, "signals", "must hold at most 1000 signals");
        v.finish()?;
        let _slot = self.ingest_slot().await?;
        let now = self.clock.now();
        let batch = req.signals.iter().map(|s| decode(s, now)).collect();
        let ingested = self.signals.submit((caller.tenant, batch)).await?;
        let out = encode(&req.signals, ingested);
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "accepted")
            .increment(out.accepted_count as u64);
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "duplicate")
            .increment(out.duplicate_count as u64);
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "rejected")
            .increment(out.rejected_count as u64);
        Ok(out)
    }
}
