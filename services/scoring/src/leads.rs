//! Use cases around leads: scoring a stored lead, storing a score with the
//! threshold move it calls for, and moving a lead through the funnel with its
//! history, all in the caller's transaction. The events these changes cause
//! are the caller's to append (`grpc::events`), in the same transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{Score, StoredScore};
use qualify_domain::{Lead, LeadStage, Mover, Role, StageChange, StageError};
use qualify_platform::ApiError;
use qualify_platform::error::PreconditionViolation;
use sea_orm::ConnectionTrait;

use crate::scorecards::{Card, Cards};
use crate::store::leads as store;
pub use crate::store::leads::{LeadData, ScoreReads, load};

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
