//! The opportunity aggregate's tables: `opportunities`, `decisions` and
//! `activities`. Each row keeps its record as a versioned JSON document of the
//! domain type (`doc`), enums by their storage names, so the stored form
//! follows the domain, never the API; the other columns are copies that
//! queries filter on. Everything here runs unchanged on PostgreSQL and SQLite.

use chrono::{DateTime, Utc};
use qualify_domain::opportunity::{Evidence, LeadSnapshot, Money, NextStep, Stakeholder};
use qualify_domain::subject;
use qualify_domain::{
    Activity, ActivityType, Criterion, Decision, DecisionKind, EvidenceStatus, Framework, GateCheck, GateCheckCode,
    LeadSource, LeadStage, Opportunity, OpportunityState, RejectionReason, Role, Segment, StakeholderRole,
};
use qualify_platform::ApiError;
use qualify_platform::db::is_unique_violation;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::entity::{activity, decision, opportunity};

/// Loads an opportunity of the tenant, or NOT_FOUND.
pub async fn load(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<Opportunity, ApiError> {
    let row = opportunity::Entity::find_by_id((tenant.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "opportunity", id: id.to_string() })?;
    from_row(row)
}

/// Why a new opportunity could not be stored.
#[derive(Debug)]
pub enum InsertError {
    /// Its id is taken.
    IdTaken,
    /// Its lead already has a live ordinary opportunity.
    LeadHasLive,
    /// Anything else.
    Other(ApiError),
}

impl<E: Into<ApiError>> From<E> for InsertError {
    fn from(e: E) -> Self {
        InsertError::Other(e.into())
    }
}

/// The id of the lead's live ordinary opportunity, if it has one.
pub async fn live_of_lead(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<Option<String>, ApiError> {
    let found = opportunity::Entity::find()
        .select_only()
        .column(opportunity::Column::OpportunityId)
        .filter(opportunity::Column::TenantId.eq(tenant))
        .filter(opportunity::Column::LiveLead.eq(lead_id))
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(found)
}

/// Whether an opportunity with this id exists.
pub async fn exists(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<bool, ApiError> {
    use sea_orm::PaginatorTrait;
    Ok(opportunity::Entity::find_by_id((tenant.to_string(), id.to_string())).count(db).await? > 0)
}

/// The mark the unique index holds one of per lead: an ordinary opportunity while it is live.
fn live_mark(o: &Opportunity) -> Option<String> {
    (o.is_live() && !o.is_expansion()).then(|| o.lead_id.clone())
}

/// Stores a new opportunity, unless its id is taken or (for an ordinary one)
/// its lead already has a live one: the database's unique indexes decide, so
/// two racing submissions for one lead leave exactly one.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, o: &Opportunity) -> Result<(), InsertError> {
    let inserted = opportunity::Entity::insert(opportunity::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        opportunity_id: Set(o.opportunity_id.clone()),
        lead_id: Set(o.lead_id.clone()),
        state: Set(o.state.as_str().to_string()),
        team: Set(o.team.clone()),
        submitted_by: Set(o.submitted_by.clone()),
        version: Set(o.version),
        accepted_at: Set(o.accepted_at),
        first_meaningful_at: Set(o.first_meaningful_activity_at),
        created_at: Set(o.created_at),
        doc: Set(encode(&OpportunityDoc::from(o))?),
        live_lead: Set(live_mark(o)),
    })
    .exec_without_returning(db)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            // Which unique index refused it (both backends name the column or the index).
            if e.to_string().contains("live_lead") { Err(InsertError::LeadHasLive) } else { Err(InsertError::IdTaken) }
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `o` (already at its new version) only if the stored row is still
/// at `read_version`: a concurrent change makes this ABORTED, never a lost update.
pub async fn save(db: &impl ConnectionTrait, tenant: &str, o: &Opportunity, read_version: i64) -> Result<(), ApiError> {
    let mut update = opportunity::Entity::update_many();
    if live_mark(o).is_none() {
        // The mark is only ever cleared: a lead's live opportunity keeps it until it is decided or closed.
        update = update.col_expr(opportunity::Column::LiveLead, Expr::value(Option::<String>::None));
    }
    let done = update
        .col_expr(opportunity::Column::State, Expr::value(o.state.as_str()))
        .col_expr(opportunity::Column::Version, Expr::value(o.version))
        .col_expr(opportunity::Column::AcceptedAt, Expr::value(o.accepted_at))
        .col_expr(opportunity::Column::FirstMeaningfulAt, Expr::value(o.first_meaningful_activity_at))
        .col_expr(opportunity::Column::Doc, Expr::value(encode(&OpportunityDoc::from(o))?))
        .filter(opportunity::Column::TenantId.eq(tenant))
        .filter(opportunity::Column::OpportunityId.eq(&o.opportunity_id))
        .filter(opportunity::Column::Version.eq(read_version))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::Aborted(format!("opportunity {} changed concurrently; read it again", o.opportunity_id)));
    }
    Ok(())
}

/// At most `limit` opportunities in id order after `after`, in `state` when given.
pub async fn page(
    db: &impl ConnectionTrait,
    tenant: &str,
    state: Option<OpportunityState>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Opportunity>, ApiError> {
    let mut q = opportunity::Entity::find().filter(opportunity::Column::TenantId.eq(tenant));
    if let Some(s) = state {
        q = q.filter(opportunity::Column::State.eq(s.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(opportunity::Column::OpportunityId.gt(after));
    }
    let rows = q.order_by_asc(opportunity::Column::OpportunityId).limit(limit).all(db).await?;
    rows.into_iter().map(from_row).collect()
}

/// The accepted opportunities submitted in `[from, until)`.
pub async fn accepted_submitted_between(
    db: &impl ConnectionTrait,
    tenant: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Opportunity>, ApiError> {
    let rows = opportunity::Entity::find()
        .filter(opportunity::Column::TenantId.eq(tenant))
        .filter(opportunity::Column::CreatedAt.gte(from))
        .filter(opportunity::Column::CreatedAt.lt(until))
        .filter(opportunity::Column::AcceptedAt.is_not_null())
        .all(db)
        .await?;
    rows.into_iter().map(from_row).collect()
}

/// A page of the deals accepted before `before` (only those open now with
/// `open_only`), in acceptance order after the `(accepted_at, id)` key `after`.
pub async fn accepted_before(
    db: &impl ConnectionTrait,
    tenant: &str,
    before: DateTime<Utc>,
    open_only: bool,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<Opportunity>, ApiError> {
    use sea_orm::sea_query::Cond;
    let mut q = opportunity::Entity::find()
        .filter(opportunity::Column::TenantId.eq(tenant))
        .filter(opportunity::Column::AcceptedAt.lt(before));
    if open_only {
        let open: Vec<&str> =
            OpportunityState::ALL.into_iter().filter(|s| s.is_open_pipeline()).map(|s| s.as_str()).collect();
        q = q.filter(opportunity::Column::State.is_in(open));
    }
    if let Some((at, id)) = after {
        q = q.filter(Cond::any().add(opportunity::Column::AcceptedAt.gt(at)).add(
            Cond::all().add(opportunity::Column::AcceptedAt.eq(at)).add(opportunity::Column::OpportunityId.gt(id)),
        ));
    }
    let rows = q
        .order_by_asc(opportunity::Column::AcceptedAt)
        .order_by_asc(opportunity::Column::OpportunityId)
        .limit(limit)
        .all(db)
        .await?;
    rows.into_iter().map(from_row).collect()
}

fn from_row(row: opportunity::Model) -> Result<Opportunity, ApiError> {
    let doc: OpportunityDoc = decode(&row.doc, "opportunity", &row.opportunity_id)?;
    doc.into_domain(row.opportunity_id.clone()).map_err(|e| corrupt("opportunity", &row.opportunity_id, e))
}

/// Method names the `decisions.kind` column has always held, per kind.
fn kind_column(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Accept => "AcceptOpportunity",
        DecisionKind::Reject => "RejectOpportunity",
        DecisionKind::SendBack => "SendBackOpportunity",
    }
}

/// Records a decision.
pub async fn insert_decision(db: &impl ConnectionTrait, tenant: &str, d: &Decision) -> Result<(), ApiError> {
    decision::Entity::insert(decision::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        decision_id: Set(d.decision_id.clone()),
        opportunity_id: Set(d.opportunity_id.clone()),
        kind: Set(kind_column(d.kind).to_string()),
        team: Set(d.team.clone()),
        decided_by: Set(d.decided_by.clone()),
        decided_at: Set(d.decided_at),
        doc: Set(encode(&DecisionDoc::from(d))?),
        imported: Set(d.is_imported()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The decisions taken on an opportunity, in id (time) order.
pub async fn decisions_of(
    db: &impl ConnectionTrait,
    tenant: &str,
    opportunity_id: &str,
) -> Result<Vec<Decision>, ApiError> {
    let rows = decision::Entity::find()
        .filter(decision::Column::TenantId.eq(tenant))
        .filter(decision::Column::OpportunityId.eq(opportunity_id))
        .order_by_asc(decision::Column::DecisionId)
        .all(db)
        .await?;
    rows.into_iter().map(decision_from_row).collect()
}

/// One decision, if the tenant has it.
pub async fn decision(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<Option<Decision>, ApiError> {
    let row = decision::Entity::find_by_id((tenant.to_string(), id.to_string())).one(db).await?;
    row.map(decision_from_row).transpose()
}

/// Ids of the live (not imported) decisions of `kinds` taken in `[start, end)`, of `team` when
/// given, in id order: cheap to draw from, however many there are.
pub async fn decision_ids_between(
    db: &impl ConnectionTrait,
    tenant: &str,
    kinds: &[DecisionKind],
    team: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<String>, ApiError> {
    let mut q = decision::Entity::find()
        .select_only()
        .column(decision::Column::DecisionId)
        .filter(decision::Column::TenantId.eq(tenant))
        .filter(decision::Column::Kind.is_in(kinds.iter().map(|k| kind_column(*k))))
        .filter(decision::Column::DecidedAt.gte(start))
        .filter(decision::Column::DecidedAt.lt(end))
        .filter(decision::Column::Imported.eq(false));
    if let Some(team) = team {
        q = q.filter(decision::Column::Team.eq(team));
    }
    Ok(q.order_by_asc(decision::Column::DecisionId).into_tuple().all(db).await?)
}

/// The decisions with these ids, in the order asked; ids the tenant does not have are skipped.
pub async fn decisions_by_ids(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Decision>, ApiError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let rows = decision::Entity::find()
        .filter(decision::Column::TenantId.eq(tenant))
        .filter(decision::Column::DecisionId.is_in(ids))
        .all(db)
        .await?;
    let mut found: std::collections::HashMap<String, decision::Model> =
        rows.into_iter().map(|r| (r.decision_id.clone(), r)).collect();
    ids.iter().filter_map(|id| found.remove(id)).map(decision_from_row).collect()
}

fn decision_from_row(row: decision::Model) -> Result<Decision, ApiError> {
    let doc: DecisionDoc = decode(&row.doc, "decision", &row.decision_id)?;
    doc.into_domain(row.decision_id.clone()).map_err(|e| corrupt("decision", &row.decision_id, e))
}

/// Records an activity on an opportunity.
pub async fn insert_activity(
    db: &impl ConnectionTrait,
    tenant: &str,
    opportunity_id: &str,
    a: &Activity,
) -> Result<(), ApiError> {
    activity::Entity::insert(activity::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        activity_id: Set(a.activity_id.clone()),
        opportunity_id: Set(opportunity_id.to_string()),
        meaningful: Set(a.meaningful),
        occurred_at: Set(a.occurred_at),
        doc: Set(encode(&ActivityDoc::from(a))?),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The activities recorded on an opportunity, in id (recording) order.
pub async fn activities_of(
    db: &impl ConnectionTrait,
    tenant: &str,
    opportunity_id: &str,
) -> Result<Vec<Activity>, ApiError> {
    let rows = activity::Entity::find()
        .filter(activity::Column::TenantId.eq(tenant))
        .filter(activity::Column::OpportunityId.eq(opportunity_id))
        .order_by_asc(activity::Column::ActivityId)
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let doc: ActivityDoc = decode(&row.doc, "activity", &row.activity_id)?;
            doc.into_domain(row.activity_id.clone()).map_err(|e| corrupt("activity", &row.activity_id, e))
        })
        .collect()
}

// The documents, version 1. Names, not positions: enums by their storage
// names, so a reordered enum never changes a row. A field added later gets a
// default here (or a version 2); the migration that wrote version 1 from the
// older protobuf rows builds exactly these shapes.

const VERSION: u32 = 1;

fn encode(doc: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(doc).map_err(|e| ApiError::Internal(e.into()))
}

fn decode<T: DeserializeOwned>(doc: &str, kind: &str, id: &str) -> Result<T, ApiError> {
    serde_json::from_str(doc).map_err(|e| corrupt(kind, id, e.to_string()))
}

fn corrupt(kind: &str, id: &str, e: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("stored {kind} {id}: {e}"))
}

fn named<T>(parse: fn(&str) -> Option<T>, s: &str, what: &str) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("unknown {what} {s:?}"))
}

fn named_opt<T>(parse: fn(&str) -> Option<T>, s: Option<&str>, what: &str) -> Result<Option<T>, String> {
    s.map(|s| named(parse, s, what)).transpose()
}

fn check_version(v: u32) -> Result<(), String> {
    if v == VERSION { Ok(()) } else { Err(format!("document version {v}, this build reads {VERSION}")) }
}

#[derive(Debug, Serialize, Deserialize)]
struct OpportunityDoc {
    v: u32,
    lead_id: String,
    state: String,
    amount: MoneyDoc,
    expected_close_at: DateTime<Utc>,
    segment: String,
    framework: String,
    evidence: Vec<EvidenceDoc>,
    stakeholders: Vec<StakeholderDoc>,
    competitors: Vec<String>,
    next_step: Option<NextStepDoc>,
    team: String,
    submitted_by: String,
    lead_snapshot: SnapshotDoc,
    overridden: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    first_meaningful_activity_at: Option<DateTime<Utc>>,
    missing_items: Vec<String>,
    closed_amount: Option<MoneyDoc>,
    close_reason: String,
    closed_at: Option<DateTime<Utc>>,
    accepted_by: String,
    /// Absent from documents written before contributors were recorded: then the submitter.
    #[serde(default)]
    contributors: Vec<String>,
    #[serde(default)]
    expansion_reason: String,
    /// Absent from documents written before imports: live.
    #[serde(default)]
    imported: bool,
}

impl From<&Opportunity> for OpportunityDoc {
    fn from(o: &Opportunity) -> Self {
        OpportunityDoc {
            v: VERSION,
            lead_id: o.lead_id.clone(),
            state: o.state.as_str().into(),
            amount: MoneyDoc::from(&o.amount),
            expected_close_at: o.expected_close_at,
            segment: o.segment.as_str().into(),
            framework: o.framework.as_str().into(),
            evidence: o.evidence.iter().map(EvidenceDoc::from).collect(),
            stakeholders: o.stakeholders.iter().map(StakeholderDoc::from).collect(),
            competitors: o.competitors.clone(),
            next_step: o.next_step.as_ref().map(NextStepDoc::from),
            team: o.team.clone(),
            submitted_by: o.submitted_by.clone(),
            lead_snapshot: SnapshotDoc::from(&o.lead_snapshot),
            overridden: o.overridden,
            version: o.version,
            created_at: o.created_at,
            updated_at: o.updated_at,
            accepted_at: o.accepted_at,
            first_meaningful_activity_at: o.first_meaningful_activity_at,
            missing_items: o.missing_items.clone(),
            closed_amount: o.closed_amount.as_ref().map(MoneyDoc::from),
            close_reason: o.close_reason.clone(),
            closed_at: o.closed_at,
            accepted_by: o.accepted_by.clone(),
            contributors: o.contributors.clone(),
            expansion_reason: o.expansion_reason.clone(),
            imported: o.imported,
        }
    }
}

impl OpportunityDoc {
    fn into_domain(self, opportunity_id: String) -> Result<Opportunity, String> {
        check_version(self.v)?;
        Ok(Opportunity {
            opportunity_id,
            lead_id: self.lead_id,
            state: named(OpportunityState::parse, &self.state, "state")?,
            amount: self.amount.into(),
            expected_close_at: self.expected_close_at,
            segment: named(Segment::parse, &self.segment, "segment")?,
            framework: named(Framework::parse, &self.framework, "framework")?,
            evidence: evidence(self.evidence)?,
            stakeholders: self.stakeholders.into_iter().map(StakeholderDoc::into_domain).collect::<Result<_, _>>()?,
            competitors: self.competitors,
            next_step: self.next_step.map(NextStepDoc::into_domain).transpose()?,
            team: self.team,
            lead_snapshot: self.lead_snapshot.into_domain()?,
            overridden: self.overridden,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            accepted_at: self.accepted_at,
            first_meaningful_activity_at: self.first_meaningful_activity_at,
            missing_items: self.missing_items,
            closed_amount: self.closed_amount.map(Money::from),
            close_reason: self.close_reason,
            closed_at: self.closed_at,
            contributors: if self.contributors.is_empty() {
                vec![subject::normalise(&self.submitted_by)]
            } else {
                self.contributors
            },
            submitted_by: self.submitted_by,
            accepted_by: self.accepted_by,
            expansion_reason: self.expansion_reason,
            imported: self.imported,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyDoc {
    amount_minor: i64,
    currency_code: String,
}

impl From<&Money> for MoneyDoc {
    fn from(m: &Money) -> Self {
        MoneyDoc { amount_minor: m.amount_minor, currency_code: m.currency_code.clone() }
    }
}

impl From<MoneyDoc> for Money {
    fn from(m: MoneyDoc) -> Self {
        Money { amount_minor: m.amount_minor, currency_code: m.currency_code }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct EvidenceDoc {
    criterion: String,
    status: String,
    note: String,
    confirmed_by: String,
}

impl From<&Evidence> for EvidenceDoc {
    fn from(e: &Evidence) -> Self {
        EvidenceDoc {
            criterion: e.criterion.as_str().into(),
            status: e.status.as_str().into(),
            note: e.note.clone(),
            confirmed_by: e.confirmed_by.clone(),
        }
    }
}

fn evidence(docs: Vec<EvidenceDoc>) -> Result<Vec<Evidence>, String> {
    docs.into_iter()
        .map(|e| {
            Ok(Evidence {
                criterion: named(Criterion::parse, &e.criterion, "criterion")?,
                status: named(EvidenceStatus::parse, &e.status, "evidence status")?,
                note: e.note,
                confirmed_by: e.confirmed_by,
            })
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct StakeholderDoc {
    contact_id: Option<String>,
    role: String,
    verified_at: Option<DateTime<Utc>>,
}

impl From<&Stakeholder> for StakeholderDoc {
    fn from(s: &Stakeholder) -> Self {
        StakeholderDoc { contact_id: s.contact_id.clone(), role: s.role.as_str().into(), verified_at: s.verified_at }
    }
}

impl StakeholderDoc {
    fn into_domain(self) -> Result<Stakeholder, String> {
        Ok(Stakeholder {
            contact_id: self.contact_id,
            role: named(StakeholderRole::parse, &self.role, "buying role")?,
            verified_at: self.verified_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct NextStepDoc {
    description: String,
    scheduled_at: Option<DateTime<Utc>>,
    kind: Option<String>,
}

impl From<&NextStep> for NextStepDoc {
    fn from(n: &NextStep) -> Self {
        NextStepDoc {
            description: n.description.clone(),
            scheduled_at: n.scheduled_at,
            kind: n.kind.map(|k| k.as_str().into()),
        }
    }
}

impl NextStepDoc {
    fn into_domain(self) -> Result<NextStep, String> {
        Ok(NextStep {
            description: self.description,
            scheduled_at: self.scheduled_at,
            kind: named_opt(ActivityType::parse, self.kind.as_deref(), "activity type")?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotDoc {
    score: i32,
    stage: String,
    scorecard_version: i64,
    source: Option<String>,
    campaign: String,
    taken_at: DateTime<Utc>,
}

impl From<&LeadSnapshot> for SnapshotDoc {
    fn from(s: &LeadSnapshot) -> Self {
        SnapshotDoc {
            score: s.score,
            stage: s.stage.as_str().into(),
            scorecard_version: s.scorecard_version,
            source: s.source.map(|s| s.as_str().into()),
            campaign: s.campaign.clone(),
            taken_at: s.taken_at,
        }
    }
}

impl SnapshotDoc {
    fn into_domain(self) -> Result<LeadSnapshot, String> {
        Ok(LeadSnapshot {
            score: self.score,
            stage: named(LeadStage::parse, &self.stage, "lead stage")?,
            scorecard_version: self.scorecard_version,
            source: named_opt(LeadSource::parse, self.source.as_deref(), "lead source")?,
            campaign: self.campaign,
            taken_at: self.taken_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DecisionDoc {
    v: u32,
    opportunity_id: String,
    kind: String,
    decided_by: String,
    decided_by_roles: Vec<String>,
    decided_at: DateTime<Utc>,
    reason: Option<String>,
    note: String,
    gate_passed: bool,
    checks: Vec<CheckDoc>,
    overridden: bool,
    override_justification: String,
    scorecard_version: i64,
    policy_version: i64,
    evidence: Vec<EvidenceDoc>,
    team: String,
    source: Option<String>,
    #[serde(default)]
    contributors: Vec<String>,
}

impl From<&Decision> for DecisionDoc {
    fn from(d: &Decision) -> Self {
        DecisionDoc {
            v: VERSION,
            opportunity_id: d.opportunity_id.clone(),
            kind: d.kind.as_str().into(),
            decided_by: d.decided_by.clone(),
            decided_by_roles: d.decided_by_roles.iter().map(|r| r.as_str().into()).collect(),
            decided_at: d.decided_at,
            reason: d.reason.map(|r| r.as_str().into()),
            note: d.note.clone(),
            gate_passed: d.gate_passed,
            checks: d.checks.iter().map(CheckDoc::from).collect(),
            overridden: d.overridden,
            override_justification: d.override_justification.clone(),
            scorecard_version: d.scorecard_version,
            policy_version: d.policy_version,
            evidence: d.evidence.iter().map(EvidenceDoc::from).collect(),
            team: d.team.clone(),
            source: d.source.map(|s| s.as_str().into()),
            contributors: d.contributors.clone(),
        }
    }
}

impl DecisionDoc {
    fn into_domain(self, decision_id: String) -> Result<Decision, String> {
        check_version(self.v)?;
        Ok(Decision {
            decision_id,
            opportunity_id: self.opportunity_id,
            kind: named(DecisionKind::parse, &self.kind, "decision kind")?,
            decided_by: self.decided_by,
            decided_by_roles: self
                .decided_by_roles
                .iter()
                .map(|r| named(Role::parse, r, "role"))
                .collect::<Result<_, _>>()?,
            decided_at: self.decided_at,
            reason: named_opt(RejectionReason::parse, self.reason.as_deref(), "rejection reason")?,
            note: self.note,
            gate_passed: self.gate_passed,
            checks: self.checks.into_iter().map(CheckDoc::into_domain).collect::<Result<_, _>>()?,
            overridden: self.overridden,
            override_justification: self.override_justification,
            scorecard_version: self.scorecard_version,
            policy_version: self.policy_version,
            evidence: evidence(self.evidence)?,
            team: self.team,
            source: named_opt(LeadSource::parse, self.source.as_deref(), "lead source")?,
            contributors: self.contributors,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckDoc {
    code: String,
    passed: bool,
    criterion: Option<String>,
    detail: String,
}

impl From<&GateCheck> for CheckDoc {
    fn from(k: &GateCheck) -> Self {
        CheckDoc {
            code: k.code.as_str().into(),
            passed: k.passed,
            criterion: k.criterion.map(|c| c.as_str().into()),
            detail: k.detail.clone(),
        }
    }
}

impl CheckDoc {
    fn into_domain(self) -> Result<GateCheck, String> {
        Ok(GateCheck {
            code: named(GateCheckCode::parse, &self.code, "gate check")?,
            passed: self.passed,
            criterion: named_opt(Criterion::parse, self.criterion.as_deref(), "criterion")?,
            detail: self.detail,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ActivityDoc {
    v: u32,
    kind: String,
    meaningful: bool,
    occurred_at: DateTime<Utc>,
    note: String,
    recorded_by: String,
}

impl From<&Activity> for ActivityDoc {
    fn from(a: &Activity) -> Self {
        ActivityDoc {
            v: VERSION,
            kind: a.kind.as_str().into(),
            meaningful: a.meaningful,
            occurred_at: a.occurred_at,
            note: a.note.clone(),
            recorded_by: a.recorded_by.clone(),
        }
    }
}

impl ActivityDoc {
    fn into_domain(self, activity_id: String) -> Result<Activity, String> {
        check_version(self.v)?;
        Ok(Activity {
            activity_id,
            kind: named(ActivityType::parse, &self.kind, "activity type")?,
            meaningful: self.meaningful,
            occurred_at: self.occurred_at,
            note: self.note,
            recorded_by: self.recorded_by,
        })
    }
}
