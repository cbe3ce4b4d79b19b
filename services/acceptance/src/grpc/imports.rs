//! Imports on the wire: `ImportOpportunities` decodes each opportunity with
//! its past, judges it alone (one bad opportunity does not sink the batch)
//! and writes the rest with their events, each at the time it happened.

use chrono::{DateTime, Utc};
use qualify_domain::{Activity, ActivityType, Caller, RejectionReason};
use qualify_platform::auth::credentials::OnBehalf;
use qualify_platform::error::FieldViolation;
use qualify_platform::validate::{FieldPath, Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations, import};
use qualify_proto::acceptance as pb;
use qualify_proto::convert::from_timestamp;
use sea_orm::TransactionTrait;

use super::opportunities::{decode_money, decode_opportunity, encode_event};
use super::{AcceptanceApi, emit_at};
use crate::imports::{self, Outcome, PastClose, PastDecision, PastOpportunity};

/// Most opportunities one call may carry.
const MAX_OPPORTUNITIES: usize = 1000;

/// Most activities one opportunity may carry.
const MAX_ACTIVITIES: usize = 1000;

/// Who did something when the CRM does not say.
const UNKNOWN_ACTOR: &str = "import";

/// A required time of the past, at or after `after` when given.
fn past_time(
    v: &mut Violations,
    field: impl FieldPath + Copy,
    t: Option<&prost_types::Timestamp>,
    after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let at = t.and_then(from_timestamp);
    v.check(at.is_some(), field, "is required and must be a valid time");
    v.check(at.is_none_or(|t| t <= now), field, "is in the future");
    v.check(at.is_none_or(|t| after.is_none_or(|a| t >= a)), field, "is before the step it follows");
    at
}

fn actor(name: &str) -> String {
    if name.trim().is_empty() { UNKNOWN_ACTOR.to_string() } else { name.trim().to_string() }
}

/// Decodes one opportunity with its past, or every problem it has.
fn decode(item: &pb::ImportedOpportunity, now: DateTime<Utc>) -> Result<PastOpportunity, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let Some(o) = item.opportunity.as_ref() else {
        v.add("opportunity", "is required");
        return Err(v.into_vec());
    };
    let submission = decode_opportunity(&mut v, o);
    let submitted_at = past_time(&mut v, "submit_time", item.submit_time.as_ref(), None, now);
    v.text("submitted_by", &item.submitted_by, MAX_TEXT);
    let decision = item.decision.as_ref().map(|d| {
        v.check(!d.decided_by.trim().is_empty(), "decision.decided_by", "is required");
        v.text("decision.decided_by", &d.decided_by, MAX_TEXT);
        let at = past_time(&mut v, "decision.decide_time", d.decide_time.as_ref(), submitted_at, now);
        let reason = if d.accepted { None } else { v.required_enum::<RejectionReason>("decision.reason", d.reason) };
        v.text("decision.note", &d.note, MAX_TEXT * 4);
        at.map(|at| PastDecision {
            accepted: d.accepted,
            decided_by: d.decided_by.trim().to_string(),
            at,
            reason,
            note: d.note.clone(),
        })
    });
    v.check(item.activities.len() <= MAX_ACTIVITIES, "activities", "must have at most 1000 items");
    let mut activities = Vec::with_capacity(item.activities.len());
    for (i, a) in item.activities.iter().enumerate().take(MAX_ACTIVITIES) {
        let kind = v.required_enum::<ActivityType>(Item("activities", i, "type"), a.r#type);
        let at = past_time(&mut v, Item("activities", i, "occur_time"), a.occur_time.as_ref(), submitted_at, now);
        v.optional_id(Item("activities", i, "activity_id"), &a.activity_id);
        v.text(Item("activities", i, "note"), &a.note, MAX_TEXT * 4);
        v.text(Item("activities", i, "recorded_by"), &a.recorded_by, MAX_TEXT);
        if let (Some(kind), Some(occurred_at)) = (kind, at) {
            let activity_id =
                if a.activity_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { a.activity_id.clone() };
            activities.push(Activity {
                activity_id,
                kind,
                meaningful: a.meaningful,
                occurred_at,
                note: a.note.clone(),
                recorded_by: actor(&a.recorded_by),
            });
        }
    }
    let decided = decision.as_ref().and_then(|d| d.as_ref());
    let close = item.close.as_ref().map(|c| {
        v.check(decided.is_some_and(|d| d.accepted), "close", "only an accepted opportunity closes");
        let at = past_time(&mut v, "close.close_time", c.close_time.as_ref(), decided.map(|d| d.at), now);
        let amount = decode_money(&mut v, "close.amount", c.amount.as_ref(), false);
        let currency = o.amount.as_ref().map(|m| m.currency_code.as_str());
        v.check(
            amount.as_ref().is_none_or(|m| Some(m.currency_code.as_str()) == currency),
            "close.amount.currency_code",
            "must be the opportunity's currency",
        );
        v.text("close.reason", &c.reason, MAX_TEXT);
        at.map(|at| PastClose { won: c.won, amount, at, reason: c.reason.clone() })
    });
    match (submission, submitted_at) {
        (Some(submission), Some(submitted_at)) if v.is_empty() => Ok(PastOpportunity {
            submission,
            submitted_at,
            submitted_by: actor(&item.submitted_by),
            decision: decision.flatten(),
            activities,
            close: close.flatten(),
        }),
        _ => Err(v.into_vec()),
    }
}

fn encode(items: &[pb::ImportedOpportunity], outcomes: Vec<Outcome>) -> pb::ImportOpportunitiesResponse {
    let ids = items.iter().map(|o| o.opportunity.as_ref().map(|o| o.opportunity_id.clone()).unwrap_or_default());
    let r = import::encode(ids, outcomes);
    pb::ImportOpportunitiesResponse {
        results: r.results,
        imported_count: r.imported,
        unchanged_count: r.unchanged,
        rejected_count: r.rejected,
    }
}

impl AcceptanceApi {
    pub(crate) async fn import_opportunities(
        &self,
        c: Caller,
        on: &OnBehalf,
        req: pb::ImportOpportunitiesRequest,
    ) -> Result<pb::ImportOpportunitiesResponse, ApiError> {
        // Permission before anything else: a refused caller learns nothing.
        qualify_domain::permission::import_history(&c)?;
        let mut v = Violations::new();
        v.check(!req.opportunities.is_empty(), "opportunities", "must not be empty");
        v.check(req.opportunities.len() <= MAX_OPPORTUNITIES, "opportunities", "must hold at most 1000 opportunities");
        v.finish()?;
        let now = self.clock.now();
        let batch: Vec<_> = req.opportunities.iter().map(|o| decode(o, now)).collect();
        // Lead scoring is asked before the transaction opens: no lock waits on the network.
        let leads = imports::leads_of(&self.scoring, on, &batch).await?;
        let txn = self.db.begin().await?;
        let (outcomes, events) = imports::import_opportunities(&txn, &leads, &c.tenant, batch).await?;
        let events: Vec<_> = events.iter().map(|(at, e)| (*at, encode_event(e))).collect();
        emit_at(&txn, &c.tenant, events).await?;
        txn.commit().await?;
        self.relay.nudge();
        Ok(encode(&req.opportunities, outcomes))
    }
}
