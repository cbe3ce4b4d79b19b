//! Use cases around leads: creating one at an existing account, scoring a
//! stored lead, storing a score with the threshold move it calls for, and
//! moving a lead through the funnel (on a threshold or by hand) with its
//! history, all in the caller's transaction. The events these changes cause
//! are the caller's to append (`grpc::events`), in the same transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{Score, StoredScore};
use qualify_domain::{Caller, Lead, LeadSource, LeadStage, Mover, Role, Segment, StageChange, StageError, permission};
use qualify_platform::ApiError;
use qualify_platform::error::PreconditionViolation;
use sea_orm::ConnectionTrait;

use crate::accounts;
use crate::scorecards::{Card, Cards};
pub use crate::store::leads::{LeadData, ScoreReads, load};
use crate::store::{contacts, leads as store};

/// Most recent signals of a lead that a score reads.
pub const MAX_SIGNALS_PER_LEAD: usize = 5000;

/// Who acts: a verified caller, or the scoring engine on a threshold.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Subject (or "scoring").
    pub subject: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// How the stage machine sees it.
    pub mover: Mover,
}

impl Actor {
    /// The scoring engine.
    pub fn scoring() -> Self {
        Actor { subject: "scoring".into(), roles: vec![], mover: Mover::Scoring }
    }
}

/// A lead as a client sends it.
pub struct NewLead {
    /// Its id.
    pub lead_id: String,
    /// Its account, which must exist.
    pub account_id: String,
    /// Where it came from.
    pub source: LeadSource,
    /// Campaign that brought it.
    pub campaign: String,
    /// SDR who owns it.
    pub owner_sdr: String,
    /// Its contact, which must exist at its account, if known.
    pub contact_id: Option<String>,
}

/// Creates a lead, at stage NEW; returns it with its account's segment (the
/// event of its creation carries both). A taken id is ALREADY_EXISTS.
pub async fn create(
    txn: &impl ConnectionTrait,
    tenant: &str,
    l: NewLead,
    now: DateTime<Utc>,
) -> Result<(Lead, Option<Segment>), ApiError> {
    let account = accounts::require(txn, tenant, &l.account_id, "lead's").await?;
    if let Some(contact_id) = &l.contact_id {
        let c = contacts::find(txn, tenant, contact_id).await?;
        if c.is_none_or(|c| c.account_id != l.account_id) {
            return Err(ApiError::FailedPrecondition {
                reason: "CONTACT_NOT_FOUND",
                message: format!("contact {:?} does not exist at account {:?}", contact_id, l.account_id),
                violations: vec![PreconditionViolation {
                    kind: "CONTACT_NOT_FOUND".into(),
                    subject: format!("contacts/{contact_id}"),
                    description: "the lead's contact must exist at its account".into(),
                }],
            });
        }
    }
    let lead = Lead {
        lead_id: l.lead_id,
        account_id: l.account_id,
        source: Some(l.source),
        campaign: l.campaign,
        owner_sdr: l.owner_sdr,
        stage: LeadStage::New,
        contact_id: l.contact_id,
        score: None,
        created_at: now,
        updated_at: now,
    };
    Ok((store::insert(txn, tenant, &lead).await?, account.details.segment))
}

/// Scores a loaded lead with the version `version` of its scorecard (0: the active one) at `now`.
pub async fn score(
    db: &impl ConnectionTrait,
    cards: &Cards,
    tenant: &str,
    data: &LeadData,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(Score, Arc<Card>), ApiError> {
    let card = cards.resolve(db, tenant, data.segment, version).await?;
    Ok((card.compiled.score(&data.profile, &data.signals(), now), card))
}

/// Scores a stored lead with the active version of its scorecard at `now`,
/// stores the score and makes the threshold move it calls for.
pub async fn rescore(
    txn: &impl ConnectionTrait,
    cards: &Cards,
    tenant: &str,
    lead_id: &str,
    now: DateTime<Utc>,
) -> Result<(StoredScore, Option<StageChange>), ApiError> {
    let data = load(txn, tenant, lead_id).await?;
    let (score, card) = score(txn, cards, tenant, &data, 0, now).await?;
    apply_score(txn, tenant, &data, &score, card.version(), now).await
}

/// Stores a new score on the lead and makes the threshold move it calls for.
pub async fn apply_score(
    txn: &impl ConnectionTrait,
    tenant: &str,
    data: &LeadData,
    score: &Score,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(StoredScore, Option<StageChange>), ApiError> {
    let stored = StoredScore { score: score.clone(), scorecard_version: version, scored_at: now };
    store::store_score(txn, tenant, &data.lead.lead_id, &stored).await?;
    let current = data.lead.stage;
    let to = score.recommended;
    if to == current || !current.can_reach(to) || !matches!(to, LeadStage::Mql | LeadStage::Pql) {
        return Ok((stored, None));
    }
    let reason =
        format!("score {} crossed the {} threshold", score.total, if to == LeadStage::Pql { "PQL" } else { "MQL" });
    let change = move_stage(txn, tenant, &data.lead, to, &Actor::scoring(), &reason, score.total, version, now).await?;
    Ok((stored, Some(change)))
}

/// Moves a lead and records the move. The update only lands on the stage that
/// was read (a concurrent move makes it ABORTED).
#[allow(clippy::too_many_arguments)]
pub async fn move_stage(
    txn: &impl ConnectionTrait,
    tenant: &str,
    lead: &Lead,
    to: LeadStage,
    actor: &Actor,
    reason: &str,
    score: i32,
    scorecard_version: i64,
    now: DateTime<Utc>,
) -> Result<StageChange, ApiError> {
    let from = lead.stage;
    from.transition(to, actor.mover).map_err(|e| match e {
        StageError::IllegalMove { .. } => ApiError::FailedPrecondition {
            reason: "ILLEGAL_STAGE_MOVE",
            message: e.to_string(),
            violations: vec![PreconditionViolation {
                kind: "STAGE".into(),
                subject: format!("leads/{}", lead.lead_id),
                description: format!("the lead is {}; it cannot move to {}", from.as_str(), to.as_str()),
            }],
        },
        StageError::NotAllowed { .. } => ApiError::forbidden("ROLE_REQUIRED", e.to_string()),
    })?;
    if !store::set_stage(txn, tenant, &lead.lead_id, from, to, now).await? {
        return Err(ApiError::Aborted(format!("lead {} changed stage concurrently; read it again", lead.lead_id)));
    }
    let change = StageChange {
        lead_id: lead.lead_id.clone(),
        from,
        to,
        actor: actor.subject.clone(),
        actor_roles: actor.roles.clone(),
        reason: reason.to_string(),
        score,
        scorecard_version,
        changed_at: now,
    };
    store::record_change(txn, tenant, &change).await?;
    Ok(change)
}

/// Who moves a lead to `to` by hand: a person in a sales role, the strongest
/// one held, whom the stage machine lets make that move.
pub fn hand_mover(caller: &Caller, to: LeadStage) -> Result<Actor, ApiError> {
    let role = permission::move_leads_by_hand(caller)?;
    let actor = Actor { subject: caller.subject.clone(), roles: caller.roles.clone(), mover: Mover::Role(role) };
    if !LeadStage::may_move(actor.mover, to) {
        return Err(ApiError::forbidden(
            "ROLE_REQUIRED",
            format!("{} cannot move a lead to {}", actor.subject, to.as_str()),
        ));
    }
    Ok(actor)
}

/// Moves a lead by hand (see [`hand_mover`]) for `reason`, recording its last
/// score; returns the lead as it now stands, and the move.
pub async fn move_by_hand(
    txn: &impl ConnectionTrait,
    caller: &Caller,
    lead_id: &str,
    to: LeadStage,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(Lead, StageChange), ApiError> {
    let actor = hand_mover(caller, to)?;
    let mut lead = load(txn, &caller.tenant, lead_id).await?.lead;
    let score = lead.score_total();
    let change = move_stage(txn, &caller.tenant, &lead, to, &actor, reason, score, 0, now).await?;
    (lead.stage, lead.updated_at) = (change.to, change.changed_at);
    Ok((lead, change))
}
