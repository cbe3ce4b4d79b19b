//! Use cases around leads: creating one at an existing account, scoring a
//! stored lead, storing a score with the threshold move it calls for, and
//! moving a lead through the funnel (on a threshold or by hand) with its
//! history, all in the caller's transaction. The events these changes cause
//! are the caller's to append (`grpc::events`), in the same transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{Score, Signal, StoredScore};
use qualify_domain::{Caller, Lead, LeadSource, LeadStage, Mover, Role, Segment, StageChange, StageError, permission};
use qualify_platform::ApiError;
use qualify_platform::error::PreconditionViolation;
use sea_orm::ConnectionTrait;

use crate::accounts;
use crate::scorecards::{Card, Cards};
pub use crate::store::leads::{LeadData, ScoreReads, load, read_many};
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
        imported: false,
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

/// What re-scoring one lead of a batch did.
pub struct Rescored {
    /// The lead.
    pub lead_id: String,
    /// Its new stored score (none while no scorecard is in force for it).
    pub stored: Option<StoredScore>,
    /// The threshold move the score made.
    pub change: Option<StageChange>,
}

/// Re-scoring of leads read (and locked) with [`store::read_many`], in memory:
/// each [`Rescoring::rescore`] adds signals to logs, scores with the active
/// scorecards and makes threshold moves as one batch after another would; then
/// [`Rescoring::store`] writes every log, score, stage and move with a constant
/// number of statements. A lead with no scorecard in force keeps its new
/// signals unscored: they count as soon as one is published.
pub struct Rescoring {
    leads: BTreeMap<String, LeadData>,
    in_force: HashMap<Option<Segment>, Option<Arc<Card>>>,
    logs: BTreeSet<String>,
    scores: BTreeMap<String, StoredScore>,
    changes: Vec<StageChange>,
}

impl Rescoring {
    /// Re-scoring of `leads`.
    pub fn new(leads: BTreeMap<String, LeadData>) -> Self {
        Rescoring {
            leads,
            in_force: HashMap::new(),
            logs: BTreeSet::new(),
            scores: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// Adds `new` signals to their leads' logs, then re-scores the leads `ids` names
    /// (those it holds) at `now`, making the threshold moves their scores call for.
    pub async fn rescore<'a>(
        &mut self,
        db: &impl ConnectionTrait,
        cards: &Cards,
        tenant: &str,
        new: &BTreeMap<String, Vec<Signal>>,
        ids: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Rescored>, ApiError> {
        for (lead_id, signals) in new {
            if let Some(data) = self.leads.get_mut(lead_id) {
                data.add_signals(signals, MAX_SIGNALS_PER_LEAD);
                self.logs.insert(lead_id.clone());
            }
        }
        let mut done = Vec::new();
        for id in ids {
            let Some(data) = self.leads.get_mut(id) else { continue };
            let card = match self.in_force.get(&data.segment) {
                Some(card) => card.clone(),
                None => {
                    let card = match cards.resolve(db, tenant, data.segment, 0).await {
                        Ok(card) => Some(card),
                        Err(ApiError::FailedPrecondition { reason: "NO_SCORECARD", .. }) => None,
                        Err(e) => return Err(e),
                    };
                    self.in_force.insert(data.segment, card.clone());
                    card
                }
            };
            let Some(card) = card else {
                done.push(Rescored { lead_id: id.to_string(), stored: None, change: None });
                continue;
            };
            let score = card.compiled.score(&data.profile, &data.signals(), now);
            let change = threshold_move(&data.lead, &score, card.version(), now);
            if let Some(c) = &change {
                data.lead.stage = c.to;
                self.changes.push(c.clone());
            }
            let stored = StoredScore { score, scorecard_version: card.version(), scored_at: now };
            self.scores.insert(id.to_string(), stored.clone());
            done.push(Rescored { lead_id: id.to_string(), stored: Some(stored), change });
        }
        Ok(done)
    }

    /// Writes what changed: logs, scores and stages in one statement per shape, the moves in one insert.
    pub async fn store(self, txn: &impl ConnectionTrait, tenant: &str) -> Result<Vec<StageChange>, ApiError> {
        let changed: BTreeSet<&String> = self.logs.iter().chain(self.scores.keys()).collect();
        let writes: Vec<store::LeadWrite> = changed
            .into_iter()
            .filter_map(|id| {
                let data = self.leads.get(id)?;
                Some(store::LeadWrite {
                    lead_id: id,
                    log: self.logs.contains(id).then(|| data.signal_log()),
                    score: self.scores.get(id).map(|s| (s, data.lead.stage)),
                })
            })
            .collect();
        store::write_many(txn, tenant, &writes).await?;
        store::record_changes(txn, tenant, &self.changes).await?;
        Ok(self.changes)
    }
}

/// The move a new score calls for: up to MQL or PQL when the lead may still
/// get there, made by the scoring engine.
fn threshold_move(lead: &Lead, score: &Score, version: i64, now: DateTime<Utc>) -> Option<StageChange> {
    let (from, to) = (lead.stage, score.recommended);
    if to == from || !from.can_reach(to) || !matches!(to, LeadStage::Mql | LeadStage::Pql) {
        return None;
    }
    from.transition(to, Mover::Scoring).ok()?;
    let actor = Actor::scoring();
    Some(StageChange {
        lead_id: lead.lead_id.clone(),
        from,
        to,
        actor: actor.subject,
        actor_roles: actor.roles,
        reason: format!(
            "score {} crossed the {} threshold",
            score.total,
            if to == LeadStage::Pql { "PQL" } else { "MQL" }
        ),
        score: score.total,
        scorecard_version: version,
        changed_at: now,
    })
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
