//! Signal ingestion: a result per item, duplicates counted once, and the
//! affected leads re-scored (and moved on thresholds) in the same transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Duration, Utc};
use qualify_domain::Caller;
use qualify_domain::scoring::{Signal, SignalType, signal_log};
use qualify_platform::validate::is_resource_id;
use qualify_platform::{ApiError, Violations};
use qualify_proto::convert::{WireEnum, from_timestamp};
use qualify_proto::scoring::{self as pb, SignalOutcome};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, TryInsertResult};

use super::{ScoringApi, events};
use crate::leads;
use crate::store::entity::{lead, signal};

/// Most signals one call may carry.
pub const MAX_BATCH: usize = 1000;

fn violation(field: &str, description: &str) -> pb::ItemViolation {
    pb::ItemViolation { field: field.into(), description: description.into() }
}

/// Checks one signal on its own; the lead's existence is checked against the batch.
fn check(
    s: &pb::Signal,
    now: chrono::DateTime<Utc>,
) -> Result<(SignalType, chrono::DateTime<Utc>), Vec<pb::ItemViolation>> {
    let mut errors = Vec::new();
    if !is_resource_id(&s.signal_id) {
        errors.push(violation("signal_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]"));
    }
    if !is_resource_id(&s.lead_id) {
        errors.push(violation("lead_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]"));
    }
    if !s.contact_id.is_empty() && !is_resource_id(&s.contact_id) {
        errors.push(violation("contact_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]"));
    }
    let kind = SignalType::from_wire(s.r#type);
    if kind.is_none() {
        errors.push(violation("type", if s.r#type == 0 { "is required" } else { "is not a known value" }));
    }
    let at = s.occur_time.as_ref().and_then(from_timestamp);
    match at {
        None => errors.push(violation("occur_time", "is required and must be a valid time")),
        // A day of clock skew is tolerated; further in the future is a bug upstream.
        Some(t) if t > now + Duration::days(1) => errors.push(violation("occur_time", "is in the future")),
        Some(_) => {}
    }
    match (kind, at) {
        (Some(k), Some(t)) if errors.is_empty() => Ok((k, t)),
        _ => Err(errors),
    }
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
        let tenant = caller.tenant.as_str();
        let now = self.clock.now();

        let checked: Vec<_> = req.signals.iter().map(|s| check(s, now)).collect();
        let lead_ids: BTreeSet<&str> =
            req.signals.iter().map(|s| s.lead_id.as_str()).filter(|id| is_resource_id(id)).collect();

        let txn = self.db.begin().await?;
        // The leads are locked (in key order, so batches cannot deadlock) because
        // their signal logs are rewritten below.
        let leads: HashMap<String, lead::Model> = lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant))
            .filter(lead::Column::LeadId.is_in(lead_ids))
            .order_by_asc(lead::Column::LeadId)
            .lock_exclusive()
            .all(&txn)
            .await?
            .into_iter()
            .map(|l| (l.lead_id.clone(), l))
            .collect();

        let mut out = pb::IngestSignalsResponse::default();
        let mut touched: BTreeMap<String, Vec<Signal>> = BTreeMap::new();
        for (s, c) in req.signals.iter().zip(checked) {
            let mut result = pb::SignalResult { signal_id: s.signal_id.clone(), ..Default::default() };
            let stored = c.and_then(|(kind, at)| match leads.get(&s.lead_id) {
                Some(l) => Ok((kind, at, l)),
                None => Err(vec![violation("lead_id", "no such lead")]),
            });
            match stored {
                Err(violations) => {
                    result.outcome = SignalOutcome::Rejected as i32;
                    result.violations = violations;
                    out.rejected_count += 1;
                }
                Ok((kind, at, l)) => {
                    let row = signal::ActiveModel {
                        tenant_id: Set(tenant.to_string()),
                        signal_id: Set(s.signal_id.clone()),
                        lead_id: Set(s.lead_id.clone()),
                        account_id: Set(l.account_id.clone()),
                        contact_id: Set((!s.contact_id.is_empty()).then(|| s.contact_id.clone())),
                        kind: Set(kind.as_str().to_string()),
                        occurred_at: Set(at),
                        received_at: Set(now),
                    };
                    let inserted =
                        signal::Entity::insert(row).on_conflict_do_nothing().exec_without_returning(&txn).await?;
                    if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
                        result.outcome = SignalOutcome::Accepted as i32;
                        out.accepted_count += 1;
                        touched.entry(s.lead_id.clone()).or_default().push(Signal { kind, occurred_at: at });
                    } else {
                        result.outcome = SignalOutcome::Duplicate as i32;
                        out.duplicate_count += 1;
                    }
                }
            }
            out.results.push(result);
        }

        // Each touched lead's packed log takes its new signals, then the lead is
        // re-scored. Without a scorecard the signals are kept and count as soon
        // as one is published.
        for (lead_id, new) in &touched {
            let Some(l) = leads.get(lead_id) else { continue };
            let log = signal_log::merge(l.signal_log.as_deref().unwrap_or_default(), new, leads::MAX_SIGNALS_PER_LEAD);
            lead::Entity::update_many()
                .col_expr(lead::Column::SignalLog, Expr::value(log))
                .filter(lead::Column::TenantId.eq(tenant))
                .filter(lead::Column::LeadId.eq(lead_id.as_str()))
                .exec(&txn)
                .await?;
        }
        for lead_id in touched.into_keys() {
            let data = leads::load(&txn, tenant, &lead_id).await?;
            let (score, card) = match leads::score(&txn, &self.cards, tenant, &data, 0, now).await {
                Ok(s) => s,
                Err(ApiError::FailedPrecondition { reason: "NO_SCORECARD", .. }) => break,
                Err(e) => return Err(e),
            };
            let (_, change) = leads::apply_score(&txn, tenant, &data, &score, card.version(), now).await?;
            if let Some(c) = change {
                events::stage_changed(&txn, tenant, &c).await?;
                out.stage_changes.push(events::encode_change(&c));
            }
        }
        txn.commit().await?;
        if !out.stage_changes.is_empty() {
            self.relay.nudge();
        }
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "accepted")
            .increment(out.accepted_count as u64);
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "duplicate")
            .increment(out.duplicate_count as u64);
        metrics::counter!("qualify_signals_ingested_total", "outcome" => "rejected")
            .increment(out.rejected_count as u64);
        Ok(out)
    }
}
