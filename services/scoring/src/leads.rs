//! Use cases around leads: loading what a score needs, scoring, moving
//! through the funnel with history and events, all in the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message;
use qualify_domain::scoring::{Profile, Score, Signal, SignalType, signal_log};
use qualify_domain::{LeadStage, Mover, Role, Segment, StageError, StakeholderRole};
use qualify_platform::batch::{BatchFailed, Batcher};
use qualify_platform::error::PreconditionViolation;
use qualify_platform::{ApiError, outbox};
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use tracing::Instrument;

use crate::cards::{Card, Cards};
use crate::store::entity::{account, contact, lead, signal, stage_change};

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

/// Everything a stored lead's score depends on.
#[derive(Clone)]
pub struct LeadData {
    /// The lead.
    pub lead: lead::Model,
    /// Its account.
    pub account: account::Model,
    /// Its contact, if any.
    pub contact: Option<contact::Model>,
}

impl LeadData {
    /// The account's segment.
    pub fn segment(&self) -> Option<Segment> {
        self.account.segment.as_deref().and_then(Segment::parse)
    }

    /// Its most recent signals, newest first (from the packed log).
    pub fn signals(&self) -> Vec<Signal> {
        self.lead.signal_log.as_deref().map(signal_log::decode).unwrap_or_default()
    }

    /// The attributes fit rules test.
    pub fn profile(&self) -> Profile {
        let c = self.contact.as_ref();
        Profile {
            industry: self.account.industry.clone(),
            employee_count: i64::from(self.account.employee_count),
            revenue_band: self.account.revenue_band.clone(),
            region: self.account.region.clone(),
            title: c.map(|c| c.title.clone()).unwrap_or_default(),
            seniority: c.map(|c| c.seniority.clone()).unwrap_or_default(),
            department: c.map(|c| c.department.clone()).unwrap_or_default(),
            buying_role: c.and_then(|c| c.buying_role.clone()).unwrap_or_default(),
        }
    }
}

/// Loads a lead with its account and contact, or NOT_FOUND.
pub async fn load(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<LeadData, ApiError> {
    let lead = lead::Entity::find_by_id((tenant.to_string(), lead_id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "lead", id: lead_id.to_string() })?;
    let account = account::Entity::find_by_id((tenant.to_string(), lead.account_id.clone()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("lead {lead_id} has no account")))?;
    let contact = match &lead.contact_id {
        Some(id) => contact::Entity::find_by_id((tenant.to_string(), id.clone())).one(db).await?,
        None => None,
    };
    Ok(LeadData { lead, account, contact })
}

/// Reads of stored leads for scoring. A lead travels with everything its
/// score reads (its signals packed in the lead row). On PostgreSQL one
/// statement reads a lead joined to its account and contact, for every lead
/// that concurrent scorings asked for while the previous such statement ran
/// (see [`Batcher`]); elsewhere these are the plain primary-key reads.
#[derive(Clone)]
pub struct ScoreReads {
    db: DatabaseConnection,
    batch: Option<Batcher<(String, String), LeadData>>,
}

/// Leads one statement reads at most.
const SCORE_READ_BATCH: usize = 256;

impl ScoreReads {
    /// Reads on `db`; `slots` batched statements at most run at once (and hold a connection each).
    pub fn new(db: DatabaseConnection, slots: usize) -> Self {
        let batch = (db.get_database_backend() == DbBackend::Postgres).then(|| {
            let conn = db.clone();
            Batcher::spawn("leads for scoring", SCORE_READ_BATCH, slots, move |keys| {
                let conn = conn.clone();
                async move { read_for_score(&conn, keys).await }
            })
        });
        ScoreReads { db, batch }
    }

    /// The lead with its account and contact, or NOT_FOUND.
    pub async fn load(&self, tenant: &str, lead_id: &str) -> Result<LeadData, ApiError> {
        if let Some(batch) = &self.batch {
            match batch.get((tenant.to_string(), lead_id.to_string())).await {
                Ok(Some(data)) => return Ok(data),
                Ok(None) => return Err(ApiError::NotFound { kind: "lead", id: lead_id.to_string() }),
                Err(BatchFailed) => {} // read alone, to answer with this read's own error
            }
        }
        load(&self.db, tenant, lead_id).await
    }
}

/// The leads `keys` name (tenant, lead id), each joined to its account and contact, in one statement.
async fn read_for_score(
    db: &DatabaseConnection,
    keys: Vec<(String, String)>,
) -> anyhow::Result<HashMap<(String, String), LeadData>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let cols = |alias: &str, names: Vec<&str>| {
            names.iter().map(|c| format!("{alias}.\"{c}\" AS \"{alias}_{c}\"")).collect::<Vec<_>>().join(", ")
        };
        format!(
            // Each key is a primary-key lookup whatever the tables' statistics say: a LATERAL
            // subquery with a LIMIT is not flattened into a join, which the planner would run
            // as a hash join scanning every lead for each batch.
            "SELECT {}, {}, {} \
             FROM json_to_recordset($1::json) AS k(t text, id text) \
             CROSS JOIN LATERAL (SELECT * FROM leads WHERE tenant_id = k.t AND lead_id = k.id LIMIT 1) l \
             CROSS JOIN LATERAL (SELECT * FROM accounts WHERE tenant_id = l.tenant_id AND account_id = l.account_id LIMIT 1) a \
             LEFT JOIN LATERAL (SELECT * FROM contacts WHERE tenant_id = l.tenant_id AND contact_id = l.contact_id LIMIT 1) c \
               ON true",
            cols("l", lead::Column::iter().map(|c| c.as_str()).collect()),
            cols("a", account::Column::iter().map(|c| c.as_str()).collect()),
            cols("c", contact::Column::iter().map(|c| c.as_str()).collect()),
        )
    });
    let json = serde_json::Value::Array(keys.iter().map(|(t, id)| serde_json::json!({ "t": t, "id": id })).collect());
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, SQL.as_str(), [json.to_string().into()]))
        .instrument(qualify_platform::db::span(db, "SELECT leads for scoring"))
        .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let lead = lead::Model::from_query_result(&row, "l_")?;
        let account = account::Model::from_query_result(&row, "a_")?;
        let contact = match row.try_get::<Option<String>>("", "c_contact_id")? {
            Some(_) => Some(contact::Model::from_query_result(&row, "c_")?),
            None => None,
        };
        found.insert((lead.tenant_id.clone(), lead.lead_id.clone()), LeadData { lead, account, contact });
    }
    Ok(found)
}

/// The lead's most recent signals.
pub async fn signals(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<Vec<Signal>, ApiError> {
    let rows: Vec<(String, DateTime<Utc>)> = signal::Entity::find()
        .select_only()
        .column(signal::Column::Kind)
        .column(signal::Column::OccurredAt)
        .filter(signal::Column::TenantId.eq(tenant))
        .filter(signal::Column::LeadId.eq(lead_id))
        .order_by_desc(signal::Column::OccurredAt)
        .limit(MAX_SIGNALS_PER_LEAD as u64)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, at)| SignalType::parse(&k).map(|kind| Signal { kind, occurred_at: at }))
        .collect())
}

/// Scores a loaded lead.
pub async fn score(
    db: &impl ConnectionTrait,
    cards: &Cards,
    tenant: &str,
    data: &LeadData,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(Score, std::sync::Arc<Card>), ApiError> {
    let card = cards.resolve(db, tenant, data.segment(), version).await?;
    Ok((card.compiled.score(&data.profile(), &data.signals(), now), card))
}

/// The wire form of a score.
pub fn encode_score(s: &Score, version: i64, at: DateTime<Utc>) -> pb::Score {
    pb::Score {
        total: s.total,
        fit: s.fit,
        engagement: s.engagement,
        product: s.product,
        grade: s.grade.clone(),
        recommended_stage: s.recommended.to_wire(),
        scorecard_version: version,
        contributions: s
            .contributions
            .iter()
            .map(|c| pb::RuleContribution {
                rule_id: c.rule_id.clone(),
                kind: c.kind.to_wire(),
                points: c.points,
                signal_count: c.signals as i32,
            })
            .collect(),
        score_time: Some(timestamp(at)),
    }
}

/// Stores a new score on the lead and applies the threshold move it calls for.
pub async fn apply_score(
    txn: &impl ConnectionTrait,
    tenant: &str,
    data: &LeadData,
    score: &Score,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(pb::Score, Option<pb::LeadStageChange>), ApiError> {
    let wire = encode_score(score, version, now);
    lead::Entity::update_many()
        .col_expr(lead::Column::Score, Expr::value(wire.encode_to_vec()))
        .col_expr(lead::Column::ScoreTotal, Expr::value(score.total))
        .col_expr(lead::Column::UpdatedAt, Expr::value(now))
        .filter(lead::Column::TenantId.eq(tenant))
        .filter(lead::Column::LeadId.eq(&data.lead.lead_id))
        .exec(txn)
        .await?;
    let current = LeadStage::parse(&data.lead.stage).unwrap_or(LeadStage::New);
    let to = score.recommended;
    if to == current || !current.can_reach(to) || !matches!(to, LeadStage::Mql | LeadStage::Pql) {
        return Ok((wire, None));
    }
    let reason =
        format!("score {} crossed the {} threshold", score.total, if to == LeadStage::Pql { "PQL" } else { "MQL" });
    let change = move_stage(txn, tenant, &data.lead, to, &Actor::scoring(), &reason, score.total, version, now).await?;
    Ok((wire, Some(change)))
}

/// Moves a lead, recording the change and its event. The update only lands
/// on the stage that was read (a concurrent move makes it ABORTED).
#[allow(clippy::too_many_arguments)]
pub async fn move_stage(
    txn: &impl ConnectionTrait,
    tenant: &str,
    lead: &lead::Model,
    to: LeadStage,
    actor: &Actor,
    reason: &str,
    score: i32,
    scorecard_version: i64,
    now: DateTime<Utc>,
) -> Result<pb::LeadStageChange, ApiError> {
    let from = LeadStage::parse(&lead.stage).unwrap_or(LeadStage::New);
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
    let done = lead::Entity::update_many()
        .col_expr(lead::Column::Stage, Expr::value(to.as_str()))
        .col_expr(lead::Column::UpdatedAt, Expr::value(now))
        .filter(lead::Column::TenantId.eq(tenant))
        .filter(lead::Column::LeadId.eq(&lead.lead_id))
        .filter(lead::Column::Stage.eq(&lead.stage))
        .exec(txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::Aborted(format!("lead {} changed stage concurrently; read it again", lead.lead_id)));
    }
    let roles = actor.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
    stage_change::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        lead_id: Set(lead.lead_id.clone()),
        from_stage: Set(from.as_str().to_string()),
        to_stage: Set(to.as_str().to_string()),
        actor: Set(actor.subject.clone()),
        actor_roles: Set(roles),
        reason: Set(reason.to_string()),
        score: Set(score),
        scorecard_version: Set(scorecard_version),
        changed_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let change = pb::LeadStageChange {
        lead_id: lead.lead_id.clone(),
        from_stage: from.to_wire(),
        to_stage: to.to_wire(),
        actor: Some(cpb::Actor {
            subject: actor.subject.clone(),
            roles: actor.roles.iter().map(|r| r.to_wire()).collect(),
        }),
        reason: reason.to_string(),
        score,
        scorecard_version,
        change_time: Some(timestamp(now)),
    };
    emit(txn, tenant, now, pb::event::Payload::LeadStageChanged(change.clone())).await?;
    Ok(change)
}

/// Appends an event to the outbox in the caller's transaction.
pub async fn emit(
    txn: &impl ConnectionTrait,
    tenant: &str,
    now: DateTime<Utc>,
    payload: pb::event::Payload,
) -> Result<(), ApiError> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let event = pb::Event {
        event_id: event_id.clone(),
        sequence: 0,
        tenant: tenant.to_string(),
        occur_time: Some(timestamp(now)),
        payload: Some(payload),
    };
    outbox::append(txn, tenant, [(event_id, event.encode_to_vec())]).await?;
    Ok(())
}

/// Decodes a stage change row.
pub fn encode_change(m: stage_change::Model) -> pb::LeadStageChange {
    let stage = |s: &str| LeadStage::parse(s).map_or(0, WireEnum::to_wire);
    pb::LeadStageChange {
        lead_id: m.lead_id,
        from_stage: stage(&m.from_stage),
        to_stage: stage(&m.to_stage),
        actor: Some(cpb::Actor {
            subject: m.actor,
            roles: m.actor_roles.split(',').filter_map(Role::parse).map(|r| r.to_wire()).collect(),
        }),
        reason: m.reason,
        score: m.score,
        scorecard_version: m.scorecard_version,
        change_time: Some(timestamp(m.changed_at)),
    }
}

/// Whether a contact's buying role carries purchase influence.
pub fn has_purchase_influence(buying_role: Option<&str>) -> bool {
    buying_role.and_then(StakeholderRole::parse).is_some_and(StakeholderRole::has_purchase_influence)
}
