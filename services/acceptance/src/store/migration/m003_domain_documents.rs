//! M003: stored rows hold domain documents.

use sea_orm_migration::prelude::*;

use super::frozen::{Activities, Decisions, Opportunities};

/// Stored rows hold domain data, not API messages: opportunities, decisions
/// and activities keep a versioned JSON document of the domain record
/// (`doc`, see `store::opportunities`) instead of its encoded protobuf
/// message (`body`).
pub struct M003DomainDocuments;

impl MigrationName for M003DomainDocuments {
    fn name(&self) -> &str {
        "m20261203_000003_domain_documents"
    }
}

/// The messages as the rows held them before M003, frozen here: field numbers
/// and types of `qualify.acceptance.v1` and `qualify.common.v1` at the time,
/// enums by number; and the version 1 documents built from them.
mod m003 {
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Opportunity {
        #[prost(string, tag = "2")]
        pub lead_id: String,
        #[prost(int32, tag = "3")]
        pub state: i32,
        #[prost(message, optional, tag = "4")]
        pub amount: Option<Money>,
        #[prost(message, optional, tag = "5")]
        pub expected_close_time: Option<Timestamp>,
        #[prost(int32, tag = "6")]
        pub segment: i32,
        #[prost(int32, tag = "7")]
        pub framework: i32,
        #[prost(message, repeated, tag = "8")]
        pub evidence: Vec<CriterionEvidence>,
        #[prost(message, repeated, tag = "9")]
        pub stakeholders: Vec<Stakeholder>,
        #[prost(string, repeated, tag = "10")]
        pub competitors: Vec<String>,
        #[prost(message, optional, tag = "11")]
        pub next_step: Option<NextStep>,
        #[prost(string, tag = "12")]
        pub team: String,
        #[prost(string, tag = "13")]
        pub submitted_by: String,
        #[prost(message, optional, tag = "14")]
        pub lead_snapshot: Option<LeadSnapshot>,
        #[prost(bool, tag = "15")]
        pub overridden: bool,
        #[prost(int64, tag = "16")]
        pub version: i64,
        #[prost(message, optional, tag = "17")]
        pub create_time: Option<Timestamp>,
        #[prost(message, optional, tag = "18")]
        pub update_time: Option<Timestamp>,
        #[prost(message, optional, tag = "19")]
        pub accept_time: Option<Timestamp>,
        #[prost(message, optional, tag = "20")]
        pub first_meaningful_activity_time: Option<Timestamp>,
        #[prost(string, repeated, tag = "21")]
        pub missing_items: Vec<String>,
        #[prost(message, optional, tag = "22")]
        pub closed_amount: Option<Money>,
        #[prost(string, tag = "23")]
        pub close_reason: String,
        #[prost(message, optional, tag = "24")]
        pub close_time: Option<Timestamp>,
        #[prost(string, tag = "25")]
        pub accepted_by: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Money {
        #[prost(int64, tag = "1")]
        pub amount_minor: i64,
        #[prost(string, tag = "2")]
        pub currency_code: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CriterionEvidence {
        #[prost(int32, tag = "1")]
        pub criterion: i32,
        #[prost(int32, tag = "2")]
        pub status: i32,
        #[prost(string, tag = "3")]
        pub note: String,
        #[prost(string, tag = "4")]
        pub confirmed_by: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stakeholder {
        #[prost(string, tag = "1")]
        pub contact_id: String,
        #[prost(int32, tag = "2")]
        pub role: i32,
        #[prost(message, optional, tag = "3")]
        pub verify_time: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NextStep {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(message, optional, tag = "2")]
        pub scheduled_time: Option<Timestamp>,
        #[prost(int32, tag = "3")]
        pub r#type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeadSnapshot {
        #[prost(int32, tag = "1")]
        pub score: i32,
        #[prost(int32, tag = "2")]
        pub stage: i32,
        #[prost(int64, tag = "3")]
        pub scorecard_version: i64,
        #[prost(int32, tag = "4")]
        pub source: i32,
        #[prost(string, tag = "5")]
        pub campaign: String,
        #[prost(message, optional, tag = "6")]
        pub snapshot_time: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Decision {
        #[prost(string, tag = "2")]
        pub opportunity_id: String,
        #[prost(int32, tag = "3")]
        pub kind: i32,
        #[prost(message, optional, tag = "4")]
        pub actor: Option<Actor>,
        #[prost(message, optional, tag = "5")]
        pub decide_time: Option<Timestamp>,
        #[prost(int32, tag = "6")]
        pub reason: i32,
        #[prost(string, tag = "7")]
        pub note: String,
        #[prost(bool, tag = "8")]
        pub gate_passed: bool,
        #[prost(message, repeated, tag = "9")]
        pub checks: Vec<GateCheck>,
        #[prost(bool, tag = "10")]
        pub overridden: bool,
        #[prost(string, tag = "11")]
        pub override_justification: String,
        #[prost(int64, tag = "12")]
        pub scorecard_version: i64,
        #[prost(int64, tag = "13")]
        pub policy_version: i64,
        #[prost(message, repeated, tag = "14")]
        pub evidence: Vec<CriterionEvidence>,
        #[prost(string, tag = "15")]
        pub team: String,
        #[prost(int32, tag = "16")]
        pub source: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Actor {
        #[prost(string, tag = "1")]
        pub subject: String,
        #[prost(int32, repeated, tag = "2")]
        pub roles: Vec<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GateCheck {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(bool, tag = "2")]
        pub passed: bool,
        #[prost(int32, tag = "3")]
        pub criterion: i32,
        #[prost(string, tag = "4")]
        pub detail: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Activity {
        #[prost(int32, tag = "2")]
        pub r#type: i32,
        #[prost(bool, tag = "3")]
        pub meaningful: bool,
        #[prost(message, optional, tag = "4")]
        pub occur_time: Option<Timestamp>,
        #[prost(string, tag = "5")]
        pub note: String,
        #[prost(string, tag = "6")]
        pub recorded_by: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// Storage names by wire number, as the enums stood ("" for unspecified).
    const STATES: [&str; 10] = [
        "",
        "pending_review",
        "sent_back",
        "accepted",
        "proposal",
        "negotiation",
        "rejected",
        "withdrawn",
        "closed_won",
        "closed_lost",
    ];
    const SEGMENTS: [&str; 4] = ["", "smb", "mid_market", "enterprise"];
    const FRAMEWORKS: [&str; 9] = ["", "bant", "meddic", "meddpicc", "champ", "gpctba_ci", "faint", "neat", "anum"];
    const CRITERIA: [&str; 26] = [
        "",
        "budget",
        "authority",
        "need",
        "timeline",
        "metrics",
        "economic_buyer",
        "decision_criteria",
        "decision_process",
        "identify_pain",
        "champion",
        "paper_process",
        "competition",
        "challenges",
        "money",
        "priority",
        "goals",
        "plans",
        "negative_consequences",
        "positive_implications",
        "funds",
        "interest",
        "timing",
        "economic_impact",
        "access_to_authority",
        "urgency",
    ];
    const EVIDENCE: [&str; 4] = ["", "unknown", "partial", "confirmed"];
    const BUYING_ROLES: [&str; 8] = [
        "",
        "economic_buyer",
        "decision_maker",
        "champion",
        "influencer",
        "technical_evaluator",
        "blocker",
        "end_user",
    ];
    const ACTIVITIES: [&str; 6] = ["", "call", "meeting", "email", "demo", "proposal"];
    const STAGES: [&str; 11] =
        ["", "new", "mql", "sal", "sql", "sqo", "pql", "closed_won", "closed_lost", "disqualified", "nurture"];
    const SOURCES: [&str; 7] = ["", "inbound", "outbound", "plg", "event", "referral", "partner"];
    const KINDS: [&str; 4] = ["", "accept", "reject", "send_back"];
    const REASONS: [&str; 11] = [
        "",
        "no_budget",
        "no_authority",
        "no_need",
        "no_timeline",
        "no_next_step",
        "not_icp",
        "bad_contact_data",
        "duplicate",
        "competitor_locked_in",
        "other",
    ];
    const ROLES: [&str; 6] = ["", "sdr", "ae", "manager", "revops", "service"];
    const CHECKS: [&str; 8] = [
        "",
        "criterion_not_confirmed",
        "economic_buyer_missing",
        "champion_missing",
        "buying_group_too_small",
        "next_step_missing",
        "contact_data_stale",
        "score_below_floor",
    ];

    /// The storage name of a required enum value.
    fn name(names: &[&'static str], n: i32, what: &str) -> Result<&'static str, String> {
        usize::try_from(n)
            .ok()
            .and_then(|i| names.get(i))
            .copied()
            .filter(|s| !s.is_empty())
            .ok_or(format!("{what} {n}"))
    }

    /// The storage name of an optional enum value: unspecified is null.
    fn optional(names: &[&'static str], n: i32, what: &str) -> Result<Option<&'static str>, String> {
        if n == 0 { Ok(None) } else { name(names, n, what).map(Some) }
    }

    fn time(t: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, String> {
        t.map(|t| {
            u32::try_from(t.nanos)
                .ok()
                .filter(|n| *n < 1_000_000_000)
                .and_then(|n| DateTime::from_timestamp(t.seconds, n))
                .ok_or(format!("time {}.{:09}", t.seconds, t.nanos))
        })
        .transpose()
    }

    fn required_time(t: Option<&Timestamp>, what: &str) -> Result<DateTime<Utc>, String> {
        time(t)?.ok_or(format!("no {what}"))
    }

    fn money(m: &Money) -> Value {
        json!({ "amount_minor": m.amount_minor, "currency_code": m.currency_code })
    }

    fn evidence(list: &[CriterionEvidence]) -> Result<Vec<Value>, String> {
        list.iter()
            .map(|e| {
                Ok(json!({
                    "criterion": name(&CRITERIA, e.criterion, "criterion")?,
                    "status": name(&EVIDENCE, e.status, "evidence status")?,
                    "note": e.note,
                    "confirmed_by": e.confirmed_by,
                }))
            })
            .collect()
    }

    /// An opportunity's document (version 1), from its old message.
    pub fn opportunity_doc(o: &Opportunity) -> Result<Value, String> {
        let stakeholders: Vec<Value> = o
            .stakeholders
            .iter()
            .map(|s| {
                Ok(json!({
                    "contact_id": (!s.contact_id.is_empty()).then_some(&s.contact_id),
                    "role": name(&BUYING_ROLES, s.role, "buying role")?,
                    "verified_at": time(s.verify_time.as_ref())?,
                }))
            })
            .collect::<Result<_, String>>()?;
        let next_step = match &o.next_step {
            None => Value::Null,
            Some(n) => json!({
                "description": n.description,
                "scheduled_at": time(n.scheduled_time.as_ref())?,
                "kind": optional(&ACTIVITIES, n.r#type, "activity type")?,
            }),
        };
        let s = o.lead_snapshot.as_ref().ok_or("no lead snapshot")?;
        Ok(json!({
            "v": 1,
            "lead_id": o.lead_id,
            "state": name(&STATES, o.state, "state")?,
            "amount": money(o.amount.as_ref().ok_or("no amount")?),
            "expected_close_at": required_time(o.expected_close_time.as_ref(), "expected close time")?,
            "segment": name(&SEGMENTS, o.segment, "segment")?,
            "framework": name(&FRAMEWORKS, o.framework, "framework")?,
            "evidence": evidence(&o.evidence)?,
            "stakeholders": stakeholders,
            "competitors": o.competitors,
            "next_step": next_step,
            "team": o.team,
            "submitted_by": o.submitted_by,
            "lead_snapshot": {
                "score": s.score,
                "stage": name(&STAGES, s.stage, "lead stage")?,
                "scorecard_version": s.scorecard_version,
                "source": optional(&SOURCES, s.source, "lead source")?,
                "campaign": s.campaign,
                "taken_at": required_time(s.snapshot_time.as_ref(), "snapshot time")?,
            },
            "overridden": o.overridden,
            "version": o.version,
            "created_at": required_time(o.create_time.as_ref(), "create time")?,
            "updated_at": required_time(o.update_time.as_ref(), "update time")?,
            "accepted_at": time(o.accept_time.as_ref())?,
            "first_meaningful_activity_at": time(o.first_meaningful_activity_time.as_ref())?,
            "missing_items": o.missing_items,
            "closed_amount": o.closed_amount.as_ref().map(money),
            "close_reason": o.close_reason,
            "closed_at": time(o.close_time.as_ref())?,
            "accepted_by": o.accepted_by,
        }))
    }

    /// A decision's document (version 1), from its old message.
    pub fn decision_doc(d: &Decision) -> Result<Value, String> {
        let actor = d.actor.as_ref().ok_or("no actor")?;
        let roles: Vec<&str> = actor.roles.iter().map(|r| name(&ROLES, *r, "role")).collect::<Result<_, _>>()?;
        let checks: Vec<Value> = d
            .checks
            .iter()
            .map(|k| {
                Ok(json!({
                    "code": name(&CHECKS, k.code, "gate check")?,
                    "passed": k.passed,
                    "criterion": optional(&CRITERIA, k.criterion, "criterion")?,
                    "detail": k.detail,
                }))
            })
            .collect::<Result<_, String>>()?;
        Ok(json!({
            "v": 1,
            "opportunity_id": d.opportunity_id,
            "kind": name(&KINDS, d.kind, "decision kind")?,
            "decided_by": actor.subject,
            "decided_by_roles": roles,
            "decided_at": required_time(d.decide_time.as_ref(), "decide time")?,
            "reason": optional(&REASONS, d.reason, "rejection reason")?,
            "note": d.note,
            "gate_passed": d.gate_passed,
            "checks": checks,
            "overridden": d.overridden,
            "override_justification": d.override_justification,
            "scorecard_version": d.scorecard_version,
            "policy_version": d.policy_version,
            "evidence": evidence(&d.evidence)?,
            "team": d.team,
            "source": optional(&SOURCES, d.source, "lead source")?,
        }))
    }

    /// An activity's document (version 1), from its old message.
    pub fn activity_doc(a: &Activity) -> Result<Value, String> {
        Ok(json!({
            "v": 1,
            "kind": name(&ACTIVITIES, a.r#type, "activity type")?,
            "meaningful": a.meaningful,
            "occurred_at": required_time(a.occur_time.as_ref(), "occur time")?,
            "note": a.note,
            "recorded_by": a.recorded_by,
        }))
    }
}

/// The column M003 adds to each of the three tables.
#[derive(DeriveIden)]
enum M003 {
    Doc,
}

/// Replaces `body` by `doc` in `table`, whose rows are keyed by tenant and
/// `id`: every row's message decoded and written again as its document, a
/// page at a time in key order (a tenant may hold millions of rows).
async fn body_to_doc(
    m: &SchemaManager<'_>,
    table: impl Iden + Copy + 'static,
    tenant: impl Iden + Copy + 'static,
    id: impl Iden + Copy + 'static,
    body: impl Iden + Copy + 'static,
    to_doc: impl Fn(&[u8]) -> Result<serde_json::Value, String>,
) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table(table).add_column(ColumnDef::new(M003::Doc).text().null()).to_owned()).await?;
    let db = m.get_connection();
    let mut after: Option<(String, String)> = None;
    loop {
        let mut page = Query::select();
        page.expr_as(Expr::col(tenant), Alias::new("k_tenant"))
            .expr_as(Expr::col(id), Alias::new("k_id"))
            .expr_as(Expr::col(body), Alias::new("k_body"))
            .from(table)
            .order_by(tenant, Order::Asc)
            .order_by(id, Order::Asc)
            .limit(500);
        if let Some((t, i)) = &after {
            page.cond_where(
                Cond::any()
                    .add(Expr::col(tenant).gt(t.as_str()))
                    .add(Cond::all().add(Expr::col(tenant).eq(t.as_str())).add(Expr::col(id).gt(i.as_str()))),
            );
        }
        let rows = db.query_all(&page).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.try_get("", "k_tenant")?, last.try_get("", "k_id")?));
        for row in rows {
            let (t, i): (String, String) = (row.try_get("", "k_tenant")?, row.try_get("", "k_id")?);
            let bytes: Vec<u8> = row.try_get("", "k_body")?;
            let doc = to_doc(&bytes).map_err(|e| DbErr::Migration(format!("{} {t}/{i}: {e}", table.to_string())))?;
            let update = Query::update()
                .table(table)
                .value(M003::Doc, doc.to_string())
                .and_where(Expr::col(tenant).eq(t))
                .and_where(Expr::col(id).eq(i))
                .to_owned();
            db.execute(&update).await?;
        }
    }
    m.alter_table(Table::alter().table(table).drop_column(body).to_owned()).await
}

/// Decodes a frozen message and builds its document.
fn doc_of<T: prost::Message + Default>(
    build: fn(&T) -> Result<serde_json::Value, String>,
) -> impl Fn(&[u8]) -> Result<serde_json::Value, String> {
    move |bytes| build(&T::decode(bytes).map_err(|e| e.to_string())?)
}

#[async_trait::async_trait]
impl MigrationTrait for M003DomainDocuments {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use {Activities as A, Decisions as D, Opportunities as O};
        body_to_doc(m, O::Table, O::TenantId, O::OpportunityId, O::Body, doc_of(m003::opportunity_doc)).await?;
        body_to_doc(m, D::Table, D::TenantId, D::DecisionId, D::Body, doc_of(m003::decision_doc)).await?;
        body_to_doc(m, A::Table, A::TenantId, A::ActivityId, A::Body, doc_of(m003::activity_doc)).await
    }
}
