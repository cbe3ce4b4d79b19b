//! Opportunities through the SQO gate: submit with a snapshot from lead
//! scoring, decide (accept, reject, send back) under optimistic versioning,
//! then activities, later stages and the close. Typed in domain types; the
//! rules are libs/domain's. Each change runs in the caller's transaction and
//! returns the events it caused, which the caller appends in that same
//! transaction (`grpc` writes their wire form).

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use qualify_domain::gate::{self, GateResult};
use qualify_domain::opportunity::{CurrencyMismatch, DecisionError, LeadSnapshot, Money, Stakeholder, is_abandoned};
use qualify_domain::subject;
use qualify_domain::{
    Activity, ActivityType, Authors, Caller, Decision, LeadSource, LeadStage, Opportunity, OpportunityAction,
    OpportunityState, Qualification, Segment, TransitionError, Verdict,
};
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::OnBehalf;
use qualify_platform::error::PreconditionViolation;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};

use crate::store::opportunities::{self as store, InsertError};
pub use crate::store::opportunities::{load as get, page as list};
use crate::store::policies;

/// Follow-up window after acceptance when none is given.
pub const DEFAULT_FOLLOW_UP_DAYS: u32 = 14;
/// Most opportunities one abandoned list returns.
const MAX_ABANDONED: u64 = 1000;

/// What lead scoring says about a lead now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredLead {
    /// Its stage (`None`: one this build does not know).
    pub stage: Option<LeadStage>,
    /// Its last total score, 0 when never scored.
    pub score: i32,
    /// Version of the scorecard behind the score, 0 when never scored.
    pub scorecard_version: i64,
    /// Where it came from.
    pub source: Option<LeadSource>,
    /// Campaign that brought it.
    pub campaign: String,
}

/// Lead scoring as acceptance uses it, on the caller's behalf (`on`).
pub trait LeadScoring: Sync {
    /// The lead as lead scoring sees it now.
    fn lead(&self, on: &OnBehalf, lead_id: &str) -> impl Future<Output = Result<ScoredLead, ApiError>> + Send;

    /// When each contact was last verified and found reachable, `None` when
    /// never (or when it bounced or left): answers in the order asked.
    fn contacts_verified_at(
        &self,
        on: &OnBehalf,
        contact_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<DateTime<Utc>>>, ApiError>> + Send;
}

/// A change the event stream reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An opportunity after a change, with its state before (`None`: it was submitted).
    Changed {
        /// The opportunity after the change.
        opportunity: Box<Opportunity>,
        /// Its state before.
        from: Option<OpportunityState>,
    },
    /// A decision was recorded.
    Decided(Decision),
    /// An activity was recorded on an opportunity.
    ActivityRecorded {
        /// The opportunity.
        opportunity_id: String,
        /// The activity.
        activity: Activity,
    },
}

fn changed(o: &Opportunity, from: Option<OpportunityState>) -> Event {
    Event::Changed { opportunity: Box::new(o.clone()), from }
}

/// A new opportunity as the SDR submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Caller-chosen id.
    pub opportunity_id: String,
    /// The lead; it must be at SQL.
    pub lead_id: String,
    /// Expected amount.
    pub amount: Money,
    /// Expected close date.
    pub expected_close_at: DateTime<Utc>,
    /// Segment whose policy applies.
    pub segment: Segment,
    /// Evidence, buying group and next step.
    pub qualification: Qualification,
    /// Competitors evaluated.
    pub competitors: Vec<String>,
    /// Team of the submitter.
    pub team: String,
    /// Why this is an expansion of a lead with a live opportunity (empty: an ordinary one).
    pub expansion_reason: String,
}

/// A submission ready to store, with the gate as it stands now.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The opportunity, pending review.
    pub opportunity: Opportunity,
    /// The gate now, so the SDR sees what is still missing.
    pub gate: GateResult,
    /// Version of the policy evaluated.
    pub policy_version: i64,
}

/// An activity as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    /// Kind.
    pub kind: ActivityType,
    /// Whether a real conversation happened.
    pub meaningful: bool,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Free text.
    pub note: String,
}

fn transition_error(e: TransitionError, id: &str) -> ApiError {
    match e {
        TransitionError::Forbidden(why) => ApiError::forbidden("ROLE_REQUIRED", why),
        TransitionError::IllegalState { from, action } => ApiError::FailedPrecondition {
            reason: "ILLEGAL_STATE",
            message: e.to_string(),
            violations: vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: format!("opportunities/{id}"),
                description: format!("the opportunity is {}; {action:?} is not possible", from.as_str()),
            }],
        },
    }
}

/// Checks the caller's roles for submitting, before anything is decoded or read.
pub fn authorize_submit(c: &Caller) -> Result<(), ApiError> {
    OpportunityState::submit(c).map(|_| ()).map_err(|e| transition_error(e, ""))
}

/// Checks the caller's roles for `action` before anything is read, so a
/// refused caller learns nothing about the opportunity (not even that it exists).
pub fn authorize(c: &Caller, action: OpportunityAction) -> Result<(), ApiError> {
    if action == OpportunityAction::Resubmit {
        // Ownership decides the rest once the opportunity is read.
        return authorize_submit(c);
    }
    match OpportunityState::PendingReview.apply(action, c, Authors::NONE) {
        Err(e @ TransitionError::Forbidden(_)) => Err(transition_error(e, "")),
        _ => Ok(()),
    }
}

fn check_expected(expected: i64, o: &Opportunity) -> Result<(), ApiError> {
    if expected != 0 && expected != o.version {
        return Err(ApiError::Aborted(format!(
            "opportunity {} is at version {}, not {expected}",
            o.opportunity_id, o.version
        )));
    }
    Ok(())
}

/// Refuses a lead that may not carry the opportunity (an ordinary one needs
/// it at SQL; a disqualified or recycled lead carries none).
fn check_lead_carries(lead_id: &str, stage: Option<LeadStage>, expansion: bool) -> Result<LeadStage, ApiError> {
    match stage {
        Some(s) if s.carries_opportunity(expansion) => Ok(s),
        _ => Err(ApiError::FailedPrecondition {
            reason: "LEAD_NOT_SQL",
            message: "only a lead at SQL can carry an opportunity through the gate".into(),
            violations: vec![PreconditionViolation {
                kind: "STAGE".into(),
                subject: format!("leads/{lead_id}"),
                description: format!("the lead is {}", stage.map_or("unknown", |s| s.as_str())),
            }],
        }),
    }
}

/// When lead scoring says each of an opportunity's stakeholder contacts was
/// last verified by a provider, by contact id.
pub type Verified = HashMap<String, Option<DateTime<Utc>>>;

/// Before an acceptance's transaction: `c` may accept opportunity `id` as it
/// stands (permission and state first, so a refused caller learns nothing of
/// the lead), and lead scoring says its lead may still carry it: a
/// disqualified or recycled lead's opportunity is not accepted. Returns the
/// stakeholders' verification as lead scoring has it now, which the gate
/// judges (never the times of the submission). The transaction checks the
/// opportunity again.
pub async fn precheck_accept(
    db: &impl ConnectionTrait,
    scoring: &impl LeadScoring,
    c: &Caller,
    on: &OnBehalf,
    id: &str,
) -> Result<Verified, ApiError> {
    let o = store::load(db, &c.tenant, id).await?;
    o.state.apply(OpportunityAction::Accept, c, o.authors()).map_err(|e| transition_error(e, id))?;
    let ids: Vec<String> = o.stakeholders.iter().filter_map(|s| s.contact_id.clone()).collect();
    let (lead, verified) =
        futures::future::try_join(scoring.lead(on, &o.lead_id), scoring.contacts_verified_at(on, &ids)).await?;
    check_lead_carries(&o.lead_id, lead.stage, o.is_expansion())?;
    Ok(ids.into_iter().zip(verified).collect())
}

/// The refusal of a second live opportunity for a lead, naming the live one.
fn lead_has_live(lead_id: &str, existing: &str) -> ApiError {
    ApiError::FailedPrecondition {
        reason: "LEAD_HAS_LIVE_OPPORTUNITY",
        message: format!(
            "lead {lead_id} already has a live opportunity, {existing}; submit an expansion with a reason if this is one"
        ),
        violations: vec![PreconditionViolation {
            kind: "LIVE_OPPORTUNITY".into(),
            subject: format!("opportunities/{existing}"),
            description: format!("opportunity {existing} of lead {lead_id} is pending, sent back or accepted and open"),
        }],
    }
}

/// Snapshots the lead (an ordinary opportunity needs it at SQL) and refreshes
/// the stakeholders' verification times from lead scoring: never the
/// submitter's word for them.
pub async fn snapshot(
    scoring: &impl LeadScoring,
    on: &OnBehalf,
    lead_id: &str,
    expansion: bool,
    stakeholders: &mut [Stakeholder],
    now: DateTime<Utc>,
) -> Result<LeadSnapshot, ApiError> {
    // The lead and the stakeholders' contacts (one batch) are read concurrently.
    let ids: Vec<String> = stakeholders.iter().filter_map(|s| s.contact_id.clone()).collect();
    let (lead, verified) =
        futures::future::try_join(scoring.lead(on, lead_id), scoring.contacts_verified_at(on, &ids)).await?;
    let stage = check_lead_carries(lead_id, lead.stage, expansion)?;
    let mut verified = verified.into_iter();
    for s in stakeholders {
        s.verified_at = match s.contact_id {
            None => None,
            Some(_) => verified.next().flatten(),
        };
    }
    Ok(LeadSnapshot {
        score: lead.score,
        stage,
        scorecard_version: lead.scorecard_version,
        source: lead.source,
        campaign: lead.campaign,
        taken_at: now,
    })
}

/// The opportunity a submission makes at `now` under the segment's policy in force, and its gate.
pub async fn prepare(
    db: &impl ConnectionTrait,
    c: &Caller,
    s: Submission,
    lead_snapshot: LeadSnapshot,
    now: DateTime<Utc>,
) -> Result<Submitted, ApiError> {
    let policy = policies::in_force(db, &c.tenant, s.segment).await?;
    let Qualification { evidence, stakeholders, next_step } = s.qualification;
    let opportunity = Opportunity {
        opportunity_id: s.opportunity_id,
        lead_id: s.lead_id,
        state: OpportunityState::PendingReview,
        amount: s.amount,
        expected_close_at: s.expected_close_at,
        segment: s.segment,
        framework: policy.policy.framework,
        evidence,
        stakeholders,
        competitors: s.competitors,
        next_step,
        team: s.team,
        submitted_by: c.subject.clone(),
        lead_snapshot,
        overridden: false,
        version: 1,
        created_at: now,
        updated_at: now,
        accepted_at: None,
        first_meaningful_activity_at: None,
        missing_items: vec![],
        closed_amount: None,
        close_reason: String::new(),
        closed_at: None,
        accepted_by: String::new(),
        contributors: vec![subject::normalise(&c.subject)],
        expansion_reason: s.expansion_reason,
        imported: false,
    };
    let gate = gate::evaluate(&policy.policy, &opportunity.gate_candidate(), now);
    Ok(Submitted { opportunity, gate, policy_version: policy.version })
}

/// Stores a prepared submission, unless (for an ordinary one) its lead
/// already has a live opportunity: refused with that one's id.
pub async fn submit(txn: &DatabaseTransaction, tenant: &str, o: &Opportunity) -> Result<Vec<Event>, ApiError> {
    if !o.is_expansion()
        && let Some(existing) = store::live_of_lead(txn, tenant, &o.lead_id).await?
    {
        return Err(lead_has_live(&o.lead_id, &existing));
    }
    // Under a savepoint: when a racing submission wins the lead's unique mark,
    // the transaction stays usable to name the winner.
    let attempt = txn.begin().await?;
    match store::insert(&attempt, tenant, o).await {
        Ok(()) => attempt.commit().await?,
        Err(e) => {
            attempt.rollback().await?;
            return Err(match e {
                InsertError::IdTaken => ApiError::AlreadyExists { kind: "opportunity", id: o.opportunity_id.clone() },
                InsertError::LeadHasLive => {
                    let existing = store::live_of_lead(txn, tenant, &o.lead_id).await?.unwrap_or_default();
                    lead_has_live(&o.lead_id, &existing)
                }
                InsertError::Other(e) => e,
            });
        }
    }
    Ok(vec![changed(o, None)])
}

/// A sent-back opportunity revised by `c` with a new qualification, snapshotted
/// again from lead scoring; nothing is stored yet (see [`resubmit`]).
pub async fn revise(
    db: &impl ConnectionTrait,
    scoring: &impl LeadScoring,
    c: &Caller,
    on: &OnBehalf,
    id: &str,
    q: Qualification,
    now: DateTime<Utc>,
) -> Result<Opportunity, ApiError> {
    let mut o = store::load(db, &c.tenant, id).await?;
    o.state.apply(OpportunityAction::Resubmit, c, o.authors()).map_err(|e| transition_error(e, id))?;
    (o.evidence, o.stakeholders, o.next_step) = (q.evidence, q.stakeholders, q.next_step);
    // Whoever writes the content now vouches for it: they may no longer decide it.
    o.add_contributor(c);
    o.lead_snapshot = snapshot(scoring, on, &o.lead_id, o.is_expansion(), &mut o.stakeholders, now).await?;
    Ok(o)
}

/// Stores a revised opportunity as pending review again, if the stored one is
/// still at `expected` (0: any) and may still be resubmitted by `c`.
pub async fn resubmit(
    txn: &impl ConnectionTrait,
    c: &Caller,
    mut o: Opportunity,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<(Opportunity, Vec<Event>), ApiError> {
    let current = store::load(txn, &c.tenant, &o.opportunity_id).await?;
    check_expected(expected, &current)?;
    current
        .state
        .apply(OpportunityAction::Resubmit, c, current.authors())
        .map_err(|e| transition_error(e, &current.opportunity_id))?;
    o.state = OpportunityState::PendingReview;
    o.missing_items.clear();
    o.version = current.version;
    o.touch(now);
    store::save(txn, &c.tenant, &o, current.version).await?;
    let events = vec![changed(&o, Some(current.state))];
    Ok((o, events))
}

/// One decision: the version read, the move, the gate under the policy in
/// force (libs/domain decides) on the stakeholders' verification as
/// `verified` says it is now (see [`precheck_accept`]; empty keeps the
/// stored times), then the opportunity and its audit row.
pub async fn decide(
    txn: &impl ConnectionTrait,
    c: &Caller,
    id: &str,
    expected: i64,
    verdict: &Verdict,
    verified: &Verified,
    now: DateTime<Utc>,
) -> Result<(Opportunity, Decision, Vec<Event>), ApiError> {
    let mut o = store::load(txn, &c.tenant, id).await?;
    for s in &mut o.stakeholders {
        if let Some(at) = s.contact_id.as_ref().and_then(|id| verified.get(id)) {
            s.verified_at = *at;
        }
    }
    check_expected(expected, &o)?;
    let (from, read) = (o.state, o.version);
    // Permission and state before the policy is read; `decide` checks them again.
    from.apply(verdict.action(), c, o.authors()).map_err(|e| transition_error(e, id))?;
    let policy = policies::in_force(txn, &c.tenant, o.segment).await?;
    let decision_id = uuid::Uuid::now_v7().to_string();
    let d = o.decide(c, verdict, &policy, decision_id, now).map_err(|e| match e {
        DecisionError::Transition(e) => transition_error(e, id),
        DecisionError::GateNotPassed { failed } => ApiError::FailedPrecondition {
            reason: "GATE_NOT_PASSED",
            message: "the gate does not pass; complete what is missing or justify an override".into(),
            violations: failed
                .into_iter()
                .map(|f| PreconditionViolation {
                    kind: "GATE".into(),
                    subject: format!("opportunities/{id}"),
                    description: f,
                })
                .collect(),
        },
    })?;
    store::save(txn, &c.tenant, &o, read).await?;
    store::insert_decision(txn, &c.tenant, &d).await?;
    let events = vec![changed(&o, Some(from)), Event::Decided(d.clone())];
    Ok((o, d, events))
}

/// The decisions taken on an opportunity of the tenant, oldest first.
pub async fn decisions(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<Vec<Decision>, ApiError> {
    store::load(db, tenant, id).await?;
    store::decisions_of(db, tenant, id).await
}

/// Records `c`'s activity on an accepted opportunity; a first meaningful
/// follow-up changes the opportunity too.
pub async fn record_activity(
    txn: &impl ConnectionTrait,
    c: &Caller,
    id: &str,
    a: NewActivity,
    now: DateTime<Utc>,
) -> Result<(Activity, Opportunity, Vec<Event>), ApiError> {
    let mut o = store::load(txn, &c.tenant, id).await?;
    if !o.takes_activities() {
        return Err(ApiError::FailedPrecondition {
            reason: "NOT_ACCEPTED",
            message: "activities are recorded on accepted opportunities".into(),
            violations: vec![],
        });
    }
    let activity = Activity {
        activity_id: uuid::Uuid::now_v7().to_string(),
        kind: a.kind,
        meaningful: a.meaningful,
        occurred_at: a.occurred_at,
        note: a.note,
        recorded_by: c.subject.clone(),
    };
    let mut events = Vec::with_capacity(2);
    let read = o.version;
    if o.note_activity(&activity, now) {
        store::save(txn, &c.tenant, &o, read).await?;
        events.push(changed(&o, Some(o.state)));
    }
    store::insert_activity(txn, &c.tenant, &o.opportunity_id, &activity).await?;
    events.push(Event::ActivityRecorded { opportunity_id: o.opportunity_id.clone(), activity: activity.clone() });
    Ok((activity, o, events))
}

/// Moves an accepted deal to its next later stage.
pub async fn advance(
    txn: &impl ConnectionTrait,
    c: &Caller,
    id: &str,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<(Opportunity, Vec<Event>), ApiError> {
    move_deal(txn, c, id, expected, OpportunityAction::Advance, None, now).await
}

/// A close as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// Won (else lost).
    pub won: bool,
    /// Final amount: required when won, in the opportunity's currency.
    pub amount: Option<Money>,
    /// Why it closed.
    pub reason: String,
}

impl Closing {
    /// The move it makes.
    pub fn action(&self) -> OpportunityAction {
        if self.won { OpportunityAction::CloseWon } else { OpportunityAction::CloseLost }
    }
}

/// Closes an accepted deal as won or lost.
pub async fn close(
    txn: &impl ConnectionTrait,
    c: &Caller,
    id: &str,
    expected: i64,
    closing: Closing,
    now: DateTime<Utc>,
) -> Result<(Opportunity, Vec<Event>), ApiError> {
    let action = closing.action();
    move_deal(txn, c, id, expected, action, Some(closing), now).await
}

async fn move_deal(
    txn: &impl ConnectionTrait,
    c: &Caller,
    id: &str,
    expected: i64,
    action: OpportunityAction,
    closing: Option<Closing>,
    now: DateTime<Utc>,
) -> Result<(Opportunity, Vec<Event>), ApiError> {
    let mut o = store::load(txn, &c.tenant, id).await?;
    check_expected(expected, &o)?;
    let (from, read) = (o.state, o.version);
    let to = from.apply(action, c, o.authors()).map_err(|e| transition_error(e, id))?;
    if let Some(Closing { amount, reason, .. }) = closing {
        o.close(amount, reason, now)
            .map_err(|e @ CurrencyMismatch { .. }| ApiError::field("amount.currency_code", e.to_string()))?;
    }
    o.state = to;
    o.touch(now);
    store::save(txn, &c.tenant, &o, read).await?;
    let events = vec![changed(&o, Some(from))];
    Ok((o, events))
}

/// The tenant's deals abandoned as of `at` ([`is_abandoned`]: accepted more than
/// `follow_up_days` before it, default [`DEFAULT_FOLLOW_UP_DAYS`], open then, untouched within
/// that window of their acceptance), oldest acceptance first, at most [`MAX_ABANDONED`]. As of
/// now only deals open now are read; as of a past time, every deal accepted before it, a page
/// at a time.
pub async fn abandoned(
    db: &impl ConnectionTrait,
    tenant: &str,
    follow_up_days: Option<u32>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Opportunity>, ApiError> {
    const PAGE: u64 = 1000;
    let window = Duration::days(i64::from(follow_up_days.unwrap_or(DEFAULT_FOLLOW_UP_DAYS)));
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = store::accepted_before(db, tenant, at - window, at >= now, after, PAGE).await?;
        let last = page.len() < PAGE as usize;
        after = page.last().map(|o| (o.accepted_at.unwrap_or(at), o.opportunity_id.clone()));
        found.extend(page.into_iter().filter(|o| is_abandoned(o, at, window)));
        if last || found.len() >= MAX_ABANDONED as usize {
            found.truncate(MAX_ABANDONED as usize);
            return Ok(found);
        }
    }
}
