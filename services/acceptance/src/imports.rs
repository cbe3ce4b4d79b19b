//! History from a CRM: opportunities with their submission, the gate's
//! decision, their activities and their close, written as they happened and
//! marked imported. Idempotent by the opportunity's id. The gate's live rules
//! (contributors never decide, the gate must pass) judged the live decisions;
//! these were taken in the CRM, so they are recorded as they were, by an actor
//! holding the importer role, and kept out of calibration samples.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use qualify_domain::opportunity::{LeadSnapshot, Money};
use qualify_domain::subject;
use qualify_domain::{
    Activity, Decision, DecisionKind, Opportunity, OpportunityState, Qualification, RejectionReason, Role,
};
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::OnBehalf;
use qualify_platform::error::FieldViolation;
pub use qualify_platform::import::Outcome;
use sea_orm::{DatabaseTransaction, TransactionTrait};

use crate::opportunities::{Event, LeadScoring, ScoredLead, Submission};
use crate::store::opportunities::{self as store, InsertError};
use crate::store::policies;

/// The gate's decision as the CRM recorded it.
pub struct PastDecision {
    /// Accepted (else rejected).
    pub accepted: bool,
    /// Who decided.
    pub decided_by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why it was rejected.
    pub reason: Option<RejectionReason>,
    /// A note.
    pub note: String,
}

/// How it closed.
pub struct PastClose {
    /// Won (else lost).
    pub won: bool,
    /// Final amount (the expected one when absent).
    pub amount: Option<Money>,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// An opportunity as the CRM holds it, checked on its own.
pub struct PastOpportunity {
    /// What was submitted.
    pub submission: Submission,
    /// When.
    pub submitted_at: DateTime<Utc>,
    /// By whom.
    pub submitted_by: String,
    /// The gate's decision, if any.
    pub decision: Option<PastDecision>,
    /// Its activities.
    pub activities: Vec<Activity>,
    /// Its close, if any.
    pub close: Option<PastClose>,
}

/// The leads a batch names, as lead scoring sees them (`None`: no such lead),
/// read before any transaction opens, a few at a time.
pub async fn leads_of(
    scoring: &impl LeadScoring,
    on: &OnBehalf,
    batch: &[Result<PastOpportunity, Vec<FieldViolation>>],
) -> Result<HashMap<String, Option<ScoredLead>>, ApiError> {
    use futures::{StreamExt, TryStreamExt};
    let ids: BTreeSet<String> = batch.iter().flatten().map(|p| p.submission.lead_id.clone()).collect();
    futures::stream::iter(ids)
        .map(|id: String| async move {
            match scoring.lead(on, &id).await {
                Ok(l) => Ok((id, Some(l))),
                Err(ApiError::NotFound { .. }) => Ok((id, None)),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(LEAD_READS)
        .try_collect()
        .await
}

/// Lead reads in flight at once.
const LEAD_READS: usize = 8;

/// Imports `batch` in `txn`, one opportunity after the other, each under a
/// savepoint, with its lead as [`leads_of`] read it; returns each one's
/// outcome and the events to append, each with the time it happened.
pub async fn import_opportunities(
    txn: &DatabaseTransaction,
    leads: &HashMap<String, Option<ScoredLead>>,
    tenant: &str,
    batch: Vec<Result<PastOpportunity, Vec<FieldViolation>>>,
) -> Result<(Vec<Outcome>, Vec<(DateTime<Utc>, Event)>), ApiError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for item in batch {
        let outcome = match item {
            Err(v) => Outcome::Rejected(v),
            Ok(p) => import_one(txn, leads, tenant, p, &mut events).await?,
        };
        outcomes.push(outcome);
    }
    Ok((outcomes, events))
}

async fn import_one(
    txn: &DatabaseTransaction,
    leads: &HashMap<String, Option<ScoredLead>>,
    tenant: &str,
    p: PastOpportunity,
    events: &mut Vec<(DateTime<Utc>, Event)>,
) -> Result<Outcome, ApiError> {
    if store::exists(txn, tenant, &p.submission.opportunity_id).await? {
        return Ok(Outcome::Unchanged);
    }
    let Some(Some(lead)) = leads.get(&p.submission.lead_id).cloned() else {
        return Ok(Outcome::rejected("opportunity.lead_id", "no such lead in lead scoring"));
    };
    let policy = policies::in_force(txn, tenant, p.submission.segment).await?;
    let snapshot = LeadSnapshot {
        score: lead.score,
        stage: lead.stage.unwrap_or(qualify_domain::LeadStage::Sql),
        scorecard_version: lead.scorecard_version,
        source: lead.source,
        campaign: lead.campaign,
        taken_at: p.submitted_at,
    };
    let activities = p.activities.clone();
    let (o, decision) = as_written(p, policy.policy.framework, snapshot);
    let attempt = txn.begin().await?;
    match store::insert(&attempt, tenant, &o).await {
        Ok(()) => {}
        Err(e) => {
            attempt.rollback().await?;
            return match e {
                InsertError::IdTaken => Ok(Outcome::Unchanged),
                InsertError::LeadHasLive => {
                    Ok(Outcome::rejected("opportunity.lead_id", "the lead already has a live opportunity"))
                }
                InsertError::Other(e) => Err(e),
            };
        }
    }
    if let Some(d) = &decision {
        store::insert_decision(&attempt, tenant, d).await?;
    }
    for a in &activities {
        store::insert_activity(&attempt, tenant, &o.opportunity_id, a).await?;
    }
    attempt.commit().await?;
    events.push((o.updated_at, Event::Changed { opportunity: Box::new(o.clone()), from: None }));
    if let Some(d) = decision {
        events.push((d.decided_at, Event::Decided(d)));
    }
    for activity in activities {
        events.push((
            activity.occurred_at,
            Event::ActivityRecorded { opportunity_id: o.opportunity_id.clone(), activity },
        ));
    }
    Ok(Outcome::Imported)
}

/// The opportunity as written, in the state its past left it, and its decision.
fn as_written(
    p: PastOpportunity,
    framework: qualify_domain::Framework,
    lead_snapshot: LeadSnapshot,
) -> (Opportunity, Option<Decision>) {
    let s = p.submission;
    let Qualification { evidence, stakeholders, next_step } = s.qualification;
    let accepted_at = p.decision.as_ref().filter(|d| d.accepted).map(|d| d.at);
    let state = match (&p.decision, &p.close) {
        (None, _) => OpportunityState::PendingReview,
        (Some(d), _) if !d.accepted => OpportunityState::Rejected,
        (Some(_), None) => OpportunityState::Accepted,
        (Some(_), Some(c)) if c.won => OpportunityState::ClosedWon,
        (Some(_), Some(_)) => OpportunityState::ClosedLost,
    };
    let first_meaningful = accepted_at
        .and_then(|a| p.activities.iter().filter(|x| x.meaningful && x.occurred_at >= a).map(|x| x.occurred_at).min());
    let updated_at = [Some(p.submitted_at), p.decision.as_ref().map(|d| d.at), p.close.as_ref().map(|c| c.at)]
        .into_iter()
        .flatten()
        .chain(p.activities.iter().map(|a| a.occurred_at))
        .max()
        .unwrap_or(p.submitted_at);
    let o = Opportunity {
        opportunity_id: s.opportunity_id,
        lead_id: s.lead_id,
        state,
        closed_amount: p.close.as_ref().map(|c| c.amount.clone().unwrap_or_else(|| s.amount.clone())),
        amount: s.amount,
        expected_close_at: s.expected_close_at,
        segment: s.segment,
        framework,
        evidence,
        stakeholders,
        competitors: s.competitors,
        next_step,
        team: s.team,
        submitted_by: p.submitted_by.clone(),
        lead_snapshot,
        overridden: false,
        version: 1,
        created_at: p.submitted_at,
        updated_at,
        accepted_at,
        first_meaningful_activity_at: first_meaningful,
        missing_items: vec![],
        close_reason: p.close.as_ref().map(|c| c.reason.clone()).unwrap_or_default(),
        closed_at: p.close.as_ref().map(|c| c.at),
        accepted_by: p.decision.as_ref().filter(|d| d.accepted).map(|d| d.decided_by.clone()).unwrap_or_default(),
        contributors: vec![subject::normalise(&p.submitted_by)],
        expansion_reason: s.expansion_reason,
        imported: true,
    };
    let decision = p.decision.map(|d| Decision {
        decision_id: uuid::Uuid::now_v7().to_string(),
        opportunity_id: o.opportunity_id.clone(),
        kind: if d.accepted { DecisionKind::Accept } else { DecisionKind::Reject },
        decided_by: d.decided_by,
        decided_by_roles: vec![Role::Importer],
        decided_at: d.at,
        reason: d.reason,
        note: d.note,
        // Judged in the CRM, not by this gate: no checks to record, nothing overridden.
        gate_passed: d.accepted,
        checks: vec![],
        overridden: false,
        override_justification: String::new(),
        scorecard_version: o.lead_snapshot.scorecard_version,
        policy_version: 0,
        evidence: o.evidence.clone(),
        team: o.team.clone(),
        source: o.lead_snapshot.source,
        contributors: o.contributors.clone(),
    });
    (o, decision)
}
