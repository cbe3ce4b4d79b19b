//! Ingestion: the event streams of lead scoring and opportunity acceptance,
//! consumed over gRPC from a stored cursor and folded into facts and roll-ups.
//!
//! Each batch is applied in one transaction together with its event ids and
//! the stream's new cursor, so a crash or restart resumes exactly after the
//! last applied batch, and an event delivered twice is applied once. Every
//! figure is a pure function of the events: replaying both streams from the
//! start (a rebuild) reproduces it exactly, whichever stream runs ahead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use qualify_domain::{LeadSource, LeadStage, OpportunityState, Role, Segment};
use qualify_platform::client::{ServiceChannel, service_channel};
use qualify_platform::outbox::SYSTEM_TENANT;
use qualify_platform::{ApiError, TokenIssuer};
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::convert::{WireEnum, from_timestamp};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set, Statement, TransactionTrait,
};
use tokio::sync::Mutex;

use crate::store::entity::{cursor, lead_fact, opportunity_fact, processed, rollup};

/// Most events applied in one transaction. Large batches let a catch-up or a
/// rebuild fold many events into each roll-up row it writes.
pub const BATCH: usize = 20_000;

/// The two upstream streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Lead scoring: leads created, stage changes.
    Scoring,
    /// Opportunity acceptance: opportunities changed.
    Acceptance,
}

impl Upstream {
    /// Both, in a fixed order.
    pub const ALL: [Upstream; 2] = [Upstream::Scoring, Upstream::Acceptance];

    /// Name of its cursor.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Scoring => "scoring",
            Upstream::Acceptance => "acceptance",
        }
    }
}

/// One event of either stream, as metrics needs it.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // both are large; a batch holds at most `BATCH`
pub enum Event {
    /// From lead scoring.
    Scoring(sc::Event),
    /// From opportunity acceptance.
    Acceptance(acc::Event),
}

impl Event {
    fn id(&self) -> &str {
        match self {
            Event::Scoring(e) => &e.event_id,
            Event::Acceptance(e) => &e.event_id,
        }
    }
    fn sequence(&self) -> i64 {
        match self {
            Event::Scoring(e) => e.sequence,
            Event::Acceptance(e) => e.sequence,
        }
    }
}

/// Month of a time, `YYYY-MM` (UTC).
pub fn period(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

fn period_of(t: Option<&prost_types::Timestamp>, fallback: DateTime<Utc>) -> String {
    period(t.and_then(from_timestamp).unwrap_or(fallback))
}

/// The slice a figure is counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slice {
    /// Lead source.
    pub source: String,
    /// Segment.
    pub segment: String,
    /// Team (empty for lead figures).
    pub team: String,
    /// SDR.
    pub rep: String,
    /// Campaign.
    pub campaign: String,
}

/// Figures kept in roll-ups (see `FunnelFigures` in the contract).
pub mod figure {
    pub const LEADS: &str = "leads";
    pub const MQLS: &str = "mqls";
    pub const SQLS: &str = "sqls";
    pub const SUBMITTED: &str = "sqos_submitted";
    pub const ACCEPTED: &str = "sqos_accepted";
    pub const REJECTED: &str = "sqos_rejected";
    pub const OVERRIDES: &str = "overrides";
    pub const WON: &str = "won";
    pub const LOST: &str = "lost";
    pub const PIPELINE: &str = "pipeline_generated";
    pub const WON_AMOUNT: &str = "won_amount";
    pub const OPEN: &str = "open_pipeline";
    pub const VELOCITY_SECS: &str = "velocity_seconds";
    pub const CLOSED_ACCEPTED: &str = "closed_accepted";
    pub const NO_ACTIVITY: &str = "accepted_without_activity";
    // A cohort is the leads (or SQOs) that entered a stage in a month, so its size is that
    // month's count of entries (MQLS, SQLS, ACCEPTED); these count the cohort's later milestones,
    // in the month the cohort entered.
    pub const COHORT_MQL_SQL: &str = "cohort_mql_sql";
    pub const COHORT_SQL_SQO: &str = "cohort_sql_sqo";
    pub const COHORT_SQL_WON: &str = "cohort_sql_won";
    pub const COHORT_SQO_WON: &str = "cohort_sqo_won";
    pub const WITHIN_30: &str = "meaningful_within_30";
    pub const STALE_CONTACTS: &str = "accepted_stale_contacts";
    /// Prefix of the follow-through histogram: `followthrough_day:DD`, DD in 00..=90.
    pub const FOLLOWTHROUGH_DAY: &str = "followthrough_day:";
    /// Last day of the follow-through histogram (it holds that day and later).
    pub const FOLLOWTHROUGH_MAX_DAYS: i64 = 90;
    /// Prefix of rejections by reason: `reject_reason:NO_BUDGET`.
    pub const REJECT_REASON: &str = "reject_reason:";
    /// Calibration reviews of the decisions made in the month (one per reviewer and sample).
    pub const CALIBRATION_REVIEWED: &str = "calibration_reviewed";
    /// Those agreeing with the decision (a changed verdict moves this count).
    pub const CALIBRATION_AGREED: &str = "calibration_agreed";
}

/// The dimension sets roll-ups are kept at. Every grain keeps month, source
/// and segment (the forecast needs them) and at most one of team, rep and
/// campaign; a query reads the grain that holds its dimensions, so its cost
/// follows the groups it returns. (A grain of every dimension would hold
/// about a row per lead: no roll-up at all.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// Month, source, segment.
    Base,
    /// ... and team.
    Team,
    /// ... and rep.
    Rep,
    /// ... and campaign.
    Campaign,
}

impl Grain {
    /// Every grain.
    pub const ALL: [Grain; 4] = [Grain::Base, Grain::Team, Grain::Rep, Grain::Campaign];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Base => "base",
            Grain::Team => "team",
            Grain::Rep => "rep",
            Grain::Campaign => "campaign",
        }
    }

    /// The grain keeping team, rep or campaign as asked; `None` for more than one.
    pub fn for_dimensions(team: bool, rep: bool, campaign: bool) -> Option<Grain> {
        match (team, rep, campaign) {
            (false, false, false) => Some(Grain::Base),
            (true, false, false) => Some(Grain::Team),
            (false, true, false) => Some(Grain::Rep),
            (false, false, true) => Some(Grain::Campaign),
            _ => None,
        }
    }

    fn mask(self, s: &Slice) -> Slice {
        let keep = |on: bool, v: &String| if on { v.clone() } else { String::new() };
        Slice {
            source: s.source.clone(),
            segment: s.segment.clone(),
            team: keep(self == Grain::Team, &s.team),
            rep: keep(self == Grain::Rep, &s.rep),
            campaign: keep(self == Grain::Campaign, &s.campaign),
        }
    }
}

type Key = (String, String, Grain, Slice, String);

/// Roll-up changes of a batch, written once per key.
#[derive(Default)]
struct Deltas(HashMap<Key, i64>);

impl Deltas {
    fn add(&mut self, tenant: &str, period: &str, slice: &Slice, figure: impl Into<String>, by: i64) {
        if by == 0 {
            return;
        }
        let figure = figure.into();
        for g in Grain::ALL {
            let key = (tenant.to_string(), period.to_string(), g, g.mask(slice), figure.clone());
            *self.0.entry(key).or_default() += by;
        }
    }

    async fn write(self, txn: &DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        use rollup::Column as R;
        if txn.get_database_backend() == DbBackend::Postgres {
            let rows = self.0.into_iter().filter(|(_, v)| *v != 0).map(|((tenant, period, g, s, figure), value)| {
                serde_json::json!({
                    "tenant_id": tenant, "period": period, "grain": g.as_str(), "source": s.source, "segment": s.segment,
                    "team": s.team, "rep": s.rep, "campaign": s.campaign, "figure": figure, "value": value,
                })
            });
            return upsert_json(
                txn,
                "funnel_rollups",
                ROLLUP_COLUMNS,
                ROLLUP_KEY,
                "value = funnel_rollups.value + excluded.value",
                rows,
            )
            .await;
        }
        let rows: Vec<_> = self
            .0
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|((tenant, period, g, s, figure), value)| rollup::ActiveModel {
                tenant_id: Set(tenant),
                period: Set(period),
                grain: Set(g.as_str().to_string()),
                source: Set(s.source),
                segment: Set(s.segment),
                team: Set(s.team),
                rep: Set(s.rep),
                campaign: Set(s.campaign),
                figure: Set(figure),
                value: Set(value),
            })
            .collect();
        for chunk in rows.chunks(500) {
            rollup::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        R::TenantId,
                        R::Grain,
                        R::Period,
                        R::Source,
                        R::Segment,
                        R::Team,
                        R::Rep,
                        R::Campaign,
                        R::Figure,
                    ])
                    .value(R::Value, Expr::cust("funnel_rollups.value + excluded.value"))
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}

const ROLLUP_COLUMNS: &[(&str, &str)] = &[
    ("tenant_id", "text"),
    ("period", "text"),
    ("grain", "text"),
    ("source", "text"),
    ("segment", "text"),
    ("team", "text"),
    ("rep", "text"),
    ("campaign", "text"),
    ("figure", "text"),
    ("value", "bigint"),
];
const ROLLUP_KEY: &str = "tenant_id, grain, period, source, segment, team, rep, campaign, figure";
const LEAD_COLUMNS: &[(&str, &str)] = &[
    ("tenant_id", "text"),
    ("lead_id", "text"),
    ("known", "boolean"),
    ("created_period", "text"),
    ("source", "text"),
    ("segment", "text"),
    ("rep", "text"),
    ("campaign", "text"),
    ("mql_period", "text"),
    ("sql_period", "text"),
    ("reached_sqo", "boolean"),
    ("reached_won", "boolean"),
];
const OPPORTUNITY_COLUMNS: &[(&str, &str)] = &[
    ("tenant_id", "text"),
    ("opportunity_id", "text"),
    ("lead_id", "text"),
    ("source", "text"),
    ("segment", "text"),
    ("team", "text"),
    ("rep", "text"),
    ("campaign", "text"),
    ("amount_minor", "bigint"),
    ("accept_period", "text"),
    ("accepted_at", "timestamptz"),
    ("meaningful_activity", "boolean"),
    ("closed", "boolean"),
];

/// Upserts many rows on PostgreSQL in one statement whose only parameter is
/// the rows as JSON: the statement text never changes, so it is prepared once,
/// and no statement carries thousands of parameters.
async fn upsert_json(
    txn: &DatabaseTransaction,
    table: &str,
    columns: &[(&str, &str)],
    key: &str,
    update: &str,
    rows: impl Iterator<Item = serde_json::Value>,
) -> Result<(), sea_orm::DbErr> {
    let rows: Vec<serde_json::Value> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let typed: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM json_to_recordset($1::json) AS x({typed}) \
         ON CONFLICT ({key}) DO UPDATE SET {update}",
        cols = names.join(", "),
        typed = typed.join(", "),
    );
    let json = serde_json::Value::Array(rows).to_string();
    txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.into()])).await?;
    Ok(())
}

/// The rows of `table` keyed by (tenant_id, `id`) for each of `keys`, in one statement on
/// PostgreSQL: every key is a primary-key probe (a LATERAL subquery with a LIMIT is not
/// flattened), where an `IN` list is planned as a scan of the tenant's rows once the table is big.
async fn by_keys<M: sea_orm::FromQueryResult>(
    txn: &DatabaseTransaction,
    table: &str,
    id: &str,
    keys: &[FactKey],
) -> Result<Vec<M>, sea_orm::DbErr> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let json = serde_json::Value::Array(keys.iter().map(|(t, i)| serde_json::json!({ "t": t, "id": i })).collect());
    let sql = format!(
        "SELECT f.* FROM json_to_recordset($1::json) AS k(t text, id text) \
         CROSS JOIN LATERAL (SELECT * FROM {table} WHERE tenant_id = k.t AND {id} = k.id LIMIT 1) AS f"
    );
    let rows =
        txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.to_string().into()])).await?;
    rows.iter().map(|r| M::from_query_result(r, "")).collect()
}

fn excluded(columns: &[(&str, &str)], skip: usize) -> String {
    columns[skip..].iter().map(|(n, _)| format!("{n} = excluded.{n}")).collect::<Vec<_>>().join(", ")
}

type FactKey = (String, String);

/// The facts a batch touches, loaded once and written once.
#[derive(Default)]
struct Facts {
    leads: HashMap<FactKey, lead_fact::Model>,
    opportunities: HashMap<FactKey, opportunity_fact::Model>,
    dirty_leads: HashSet<FactKey>,
    dirty_opportunities: HashSet<FactKey>,
}

impl Facts {
    /// Loads the facts `events` refer to, in two queries.
    async fn load(txn: &DatabaseTransaction, events: &[&Event]) -> Result<Self, sea_orm::DbErr> {
        let (mut lead_keys, mut opp_keys) = (HashSet::new(), HashSet::new());
        for e in events {
            match e {
                Event::Scoring(e) => match &e.payload {
                    Some(sc::event::Payload::LeadCreated(c)) => {
                        if let Some(l) = &c.lead {
                            lead_keys.insert((e.tenant.clone(), l.lead_id.clone()));
                        }
                    }
                    Some(sc::event::Payload::LeadStageChanged(ch)) => {
                        lead_keys.insert((e.tenant.clone(), ch.lead_id.clone()));
                    }
                    None => {}
                },
                Event::Acceptance(e) => match &e.payload {
                    Some(acc::event::Payload::OpportunityChanged(ch)) => {
                        if let Some(o) = &ch.opportunity {
                            opp_keys.insert((e.tenant.clone(), o.opportunity_id.clone()));
                            lead_keys.insert((e.tenant.clone(), o.lead_id.clone()));
                        }
                    }
                    Some(acc::event::Payload::DecisionRecorded(dec)) => {
                        opp_keys.insert((e.tenant.clone(), dec.opportunity_id.clone()));
                    }
                    Some(acc::event::Payload::CalibrationReviewed(r)) => {
                        opp_keys.insert((e.tenant.clone(), r.opportunity_id.clone()));
                    }
                    _ => {}
                },
            }
        }
        let mut facts = Facts::default();
        let (lead_keys, opp_keys): (Vec<FactKey>, Vec<FactKey>) =
            (lead_keys.into_iter().collect(), opp_keys.into_iter().collect());
        if txn.get_database_backend() == DbBackend::Postgres {
            let leads: Vec<lead_fact::Model> = by_keys(txn, "lead_facts", "lead_id", &lead_keys).await?;
            facts.leads.extend(leads.into_iter().map(|r| ((r.tenant_id.clone(), r.lead_id.clone()), r)));
            let opps: Vec<opportunity_fact::Model> =
                by_keys(txn, "opportunity_facts", "opportunity_id", &opp_keys).await?;
            facts.opportunities.extend(opps.into_iter().map(|r| ((r.tenant_id.clone(), r.opportunity_id.clone()), r)));
            return Ok(facts);
        }
        for chunk in lead_keys.chunks(500) {
            let tenants: HashSet<&str> = chunk.iter().map(|k| k.0.as_str()).collect();
            let rows = lead_fact::Entity::find()
                .filter(lead_fact::Column::TenantId.is_in(tenants))
                .filter(lead_fact::Column::LeadId.is_in(chunk.iter().map(|k| k.1.as_str())))
                .all(txn)
                .await?;
            facts.leads.extend(rows.into_iter().map(|r| ((r.tenant_id.clone(), r.lead_id.clone()), r)));
        }
        for chunk in opp_keys.chunks(500) {
            let tenants: HashSet<&str> = chunk.iter().map(|k| k.0.as_str()).collect();
            let rows = opportunity_fact::Entity::find()
                .filter(opportunity_fact::Column::TenantId.is_in(tenants))
                .filter(opportunity_fact::Column::OpportunityId.is_in(chunk.iter().map(|k| k.1.as_str())))
                .all(txn)
                .await?;
            facts.opportunities.extend(rows.into_iter().map(|r| ((r.tenant_id.clone(), r.opportunity_id.clone()), r)));
        }
        Ok(facts)
    }

    /// The lead's fact (a blank one if unseen), marked to be written.
    fn lead(&mut self, tenant: &str, lead_id: &str) -> &mut lead_fact::Model {
        let key = (tenant.to_string(), lead_id.to_string());
        self.dirty_leads.insert(key.clone());
        self.leads.entry(key).or_insert_with(|| lead_fact::Model {
            tenant_id: tenant.to_string(),
            lead_id: lead_id.to_string(),
            known: false,
            created_period: None,
            source: String::new(),
            segment: String::new(),
            rep: String::new(),
            campaign: String::new(),
            mql_period: None,
            sql_period: None,
            reached_sqo: false,
            reached_won: false,
        })
    }

    /// Writes every touched fact, a few statements per table.
    async fn write(self, txn: &DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        use lead_fact::Column as L;
        use opportunity_fact::Column as O;
        if txn.get_database_backend() == DbBackend::Postgres {
            let leads = self.dirty_leads.iter().filter_map(|k| self.leads.get(k)).map(|m| {
                serde_json::json!({
                    "tenant_id": m.tenant_id, "lead_id": m.lead_id, "known": m.known,
                    "created_period": m.created_period, "source": m.source, "segment": m.segment, "rep": m.rep,
                    "campaign": m.campaign, "mql_period": m.mql_period, "sql_period": m.sql_period,
                    "reached_sqo": m.reached_sqo, "reached_won": m.reached_won,
                })
            });
            upsert_json(txn, "lead_facts", LEAD_COLUMNS, "tenant_id, lead_id", &excluded(LEAD_COLUMNS, 2), leads)
                .await?;
            let opps = self.dirty_opportunities.iter().filter_map(|k| self.opportunities.get(k)).map(|m| {
                serde_json::json!({
                    "tenant_id": m.tenant_id, "opportunity_id": m.opportunity_id, "lead_id": m.lead_id,
                    "source": m.source, "segment": m.segment, "team": m.team, "rep": m.rep, "campaign": m.campaign,
                    "amount_minor": m.amount_minor, "accept_period": m.accept_period,
                    "accepted_at": m.accepted_at.map(|t| t.to_rfc3339()),
                    "meaningful_activity": m.meaningful_activity, "closed": m.closed,
                })
            });
            let update = excluded(OPPORTUNITY_COLUMNS, 2);
            return upsert_json(
                txn,
                "opportunity_facts",
                OPPORTUNITY_COLUMNS,
                "tenant_id, opportunity_id",
                &update,
                opps,
            )
            .await;
        }
        let leads: Vec<_> =
            self.dirty_leads.iter().filter_map(|k| self.leads.get(k)).map(|m| m.clone().into_active_model()).collect();
        for chunk in leads.chunks(500) {
            lead_fact::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([L::TenantId, L::LeadId])
                        .update_columns([
                            L::Known,
                            L::CreatedPeriod,
                            L::Source,
                            L::Segment,
                            L::Rep,
                            L::Campaign,
                            L::MqlPeriod,
                            L::SqlPeriod,
                            L::ReachedSqo,
                            L::ReachedWon,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        let opps: Vec<_> = self
            .dirty_opportunities
            .iter()
            .filter_map(|k| self.opportunities.get(k))
            .map(|m| m.clone().into_active_model())
            .collect();
        for chunk in opps.chunks(500) {
            opportunity_fact::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([O::TenantId, O::OpportunityId])
                        .update_columns([O::AcceptPeriod, O::AcceptedAt, O::MeaningfulActivity, O::Closed])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}

fn lead_slice(l: &lead_fact::Model) -> Slice {
    Slice {
        source: l.source.clone(),
        segment: l.segment.clone(),
        team: String::new(),
        rep: l.rep.clone(),
        campaign: l.campaign.clone(),
    }
}

/// The SQL cohort's later milestones count once both the lead's SQL move and
/// the opportunity's milestone are known, in whichever order the streams bring them.
fn credit_sql_cohort(l: &lead_fact::Model, d: &mut Deltas, sqo: bool, won: bool) {
    if let (true, Some(p)) = (l.known, &l.sql_period) {
        let s = lead_slice(l);
        d.add(&l.tenant_id, p, &s, figure::COHORT_SQL_SQO, i64::from(sqo));
        d.add(&l.tenant_id, p, &s, figure::COHORT_SQL_WON, i64::from(won));
    }
}

fn apply_scoring(facts: &mut Facts, e: &sc::Event, d: &mut Deltas) {
    // Figures are bucketed by event time: an event without one (no producer sends such) cannot
    // be placed, and placing it at the time it arrived would make a rebuild differ from live.
    let Some(at) = e.occur_time.as_ref().and_then(from_timestamp) else {
        tracing::warn!(event_id = %e.event_id, "event without an occur_time skipped");
        return;
    };
    let tenant = e.tenant.as_str();
    match &e.payload {
        Some(sc::event::Payload::LeadCreated(c)) => {
            let Some(l) = &c.lead else { return };
            let f = facts.lead(tenant, &l.lead_id);
            if f.known {
                return;
            }
            let p = period_of(l.create_time.as_ref(), at);
            f.known = true;
            f.source = LeadSource::from_wire(l.source).map(|s| s.as_str().to_string()).unwrap_or_default();
            f.segment = Segment::from_wire(c.segment).map(|s| s.as_str().to_string()).unwrap_or_default();
            f.rep = l.owner_sdr.clone();
            f.campaign = l.campaign.clone();
            d.add(tenant, &p, &lead_slice(f), figure::LEADS, 1);
            f.created_period = Some(p);
            // Milestones of the other stream that arrived before the lead's creation.
            credit_sql_cohort(f, d, f.reached_sqo, f.reached_won);
        }
        Some(sc::event::Payload::LeadStageChanged(ch)) => {
            let f = facts.lead(tenant, &ch.lead_id);
            let p = period_of(ch.change_time.as_ref(), at);
            let s = lead_slice(f);
            match LeadStage::from_wire(ch.to_stage) {
                Some(LeadStage::Mql | LeadStage::Pql) if f.mql_period.is_none() => {
                    d.add(tenant, &p, &s, figure::MQLS, 1);
                    f.mql_period = Some(p);
                }
                Some(LeadStage::Sql) if f.sql_period.is_none() => {
                    d.add(tenant, &p, &s, figure::SQLS, 1);
                    if let Some(m) = &f.mql_period {
                        d.add(tenant, m, &s, figure::COHORT_MQL_SQL, 1);
                    }
                    f.sql_period = Some(p);
                    credit_sql_cohort(f, d, f.reached_sqo, f.reached_won);
                }
                _ => {}
            }
        }
        None => {}
    }
}

fn apply_acceptance(facts: &mut Facts, e: &acc::Event, d: &mut Deltas) {
    // Figures are bucketed by event time: an event without one (no producer sends such) cannot
    // be placed, and placing it at the time it arrived would make a rebuild differ from live.
    let Some(at) = e.occur_time.as_ref().and_then(from_timestamp) else {
        tracing::warn!(event_id = %e.event_id, "event without an occur_time skipped");
        return;
    };
    let tenant = e.tenant.as_str();
    let ch = match &e.payload {
        Some(acc::event::Payload::OpportunityChanged(ch)) => ch,
        Some(acc::event::Payload::DecisionRecorded(dec)) => return apply_decision(facts, tenant, dec, at, d),
        Some(acc::event::Payload::CalibrationReviewed(r)) => return apply_review(facts, tenant, r, at, d),
        // Activities that matter arrive as opportunity changes (the first meaningful one).
        _ => return,
    };
    let Some(o) = &ch.opportunity else { return };
    let key = (tenant.to_string(), o.opportunity_id.clone());
    if !facts.opportunities.contains_key(&key) {
        let snap = o.lead_snapshot.as_ref();
        let f = opportunity_fact::Model {
            tenant_id: tenant.to_string(),
            opportunity_id: o.opportunity_id.clone(),
            lead_id: o.lead_id.clone(),
            source: snap
                .and_then(|s| LeadSource::from_wire(s.source))
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            segment: Segment::from_wire(o.segment).map(|s| s.as_str().to_string()).unwrap_or_default(),
            team: o.team.clone(),
            rep: o.submitted_by.clone(),
            campaign: snap.map(|s| s.campaign.clone()).unwrap_or_default(),
            amount_minor: o.amount.as_ref().map_or(0, |m| m.amount_minor),
            accept_period: None,
            accepted_at: None,
            meaningful_activity: false,
            closed: false,
        };
        d.add(tenant, &period_of(o.create_time.as_ref(), at), &opp_slice(&f), figure::SUBMITTED, 1);
        facts.opportunities.insert(key.clone(), f);
        facts.dirty_opportunities.insert(key.clone());
    }
    let Some(mut f) = facts.opportunities.get(&key).cloned() else { return };
    let s = opp_slice(&f);
    let state = OpportunityState::from_wire(o.state);
    let from = OpportunityState::from_wire(ch.from_state);
    let entered = |x: OpportunityState| state == Some(x) && from != Some(x);
    let mut changed = false;
    if entered(OpportunityState::Rejected) {
        d.add(tenant, &period_of(o.update_time.as_ref(), at), &s, figure::REJECTED, 1);
    }
    if f.accept_period.is_none() && o.accept_time.is_some() {
        let accepted = o.accept_time.as_ref().and_then(from_timestamp).unwrap_or(at);
        let p = period(accepted);
        d.add(tenant, &p, &s, figure::ACCEPTED, 1);
        d.add(tenant, &p, &s, figure::PIPELINE, f.amount_minor);
        d.add(tenant, &p, &s, figure::OPEN, f.amount_minor);
        d.add(tenant, &p, &s, figure::OVERRIDES, i64::from(o.overridden));
        d.add(tenant, &p, &s, figure::NO_ACTIVITY, 1);
        f.accept_period = Some(p);
        f.accepted_at = Some(accepted);
        changed = true;
        let l = facts.lead(tenant, &f.lead_id);
        if !l.reached_sqo {
            l.reached_sqo = true;
            credit_sql_cohort(l, d, true, false);
        }
    }
    if let Some(p) = f.accept_period.clone() {
        if !f.meaningful_activity
            && let Some(first) = o.first_meaningful_activity_time.as_ref().and_then(from_timestamp)
        {
            let days = f.accepted_at.map_or(0, |a| (first - a).num_days().clamp(0, figure::FOLLOWTHROUGH_MAX_DAYS));
            d.add(tenant, &p, &s, format!("{}{days:02}", figure::FOLLOWTHROUGH_DAY), 1);
            d.add(tenant, &p, &s, figure::WITHIN_30, i64::from(days < 30));
            d.add(tenant, &p, &s, figure::NO_ACTIVITY, -1);
            f.meaningful_activity = true;
            changed = true;
        }
        let won = entered(OpportunityState::ClosedWon);
        if !f.closed && (won || entered(OpportunityState::ClosedLost)) {
            let closed_at = o.close_time.as_ref().and_then(from_timestamp).unwrap_or(at);
            let cp = period(closed_at);
            d.add(tenant, &cp, &s, if won { figure::WON } else { figure::LOST }, 1);
            if won {
                let amount = o.closed_amount.as_ref().map_or(f.amount_minor, |m| m.amount_minor);
                d.add(tenant, &cp, &s, figure::WON_AMOUNT, amount);
                d.add(tenant, &p, &s, figure::COHORT_SQO_WON, 1);
            }
            if let Some(a) = f.accepted_at {
                d.add(tenant, &cp, &s, figure::VELOCITY_SECS, (closed_at - a).num_seconds().max(0));
                d.add(tenant, &cp, &s, figure::CLOSED_ACCEPTED, 1);
            }
            d.add(tenant, &p, &s, figure::OPEN, -f.amount_minor);
            f.closed = true;
            changed = true;
            if won {
                let l = facts.lead(tenant, &f.lead_id);
                if !l.reached_won {
                    l.reached_won = true;
                    credit_sql_cohort(l, d, false, true);
                }
            }
        }
    }
    if changed {
        facts.dirty_opportunities.insert(key.clone());
        facts.opportunities.insert(key, f);
    }
}

/// Rejections by reason, and acceptances over stale contact data, from the audit trail.
fn apply_decision(facts: &Facts, tenant: &str, dec: &acc::Decision, at: DateTime<Utc>, d: &mut Deltas) {
    let Some(f) = facts.opportunities.get(&(tenant.to_string(), dec.opportunity_id.clone())) else { return };
    let p = period_of(dec.decide_time.as_ref(), at);
    match acc::DecisionKind::try_from(dec.kind) {
        Ok(acc::DecisionKind::Reject) => {
            let reason = acc::RejectionReason::try_from(dec.reason).unwrap_or(acc::RejectionReason::Other);
            let name = reason.as_str_name().trim_start_matches("REJECTION_REASON_");
            d.add(tenant, &p, &opp_slice(f), format!("{}{name}", figure::REJECT_REASON), 1);
        }
        Ok(acc::DecisionKind::Accept) => {
            let stale = dec.checks.iter().any(|c| c.code == acc::GateCheckCode::ContactDataStale as i32 && !c.passed);
            d.add(tenant, &p, &opp_slice(f), figure::STALE_CONTACTS, i64::from(stale));
        }
        _ => {}
    }
}

/// A reviewer's verdict counts once per sample, in the month of the decision and its
/// opportunity's slice; a changed verdict only moves the agreed count.
fn apply_review(facts: &Facts, tenant: &str, r: &acc::CalibrationReviewed, at: DateTime<Utc>, d: &mut Deltas) {
    let Some(f) = facts.opportunities.get(&(tenant.to_string(), r.opportunity_id.clone())) else { return };
    let p = period_of(r.decide_time.as_ref(), at);
    let s = opp_slice(f);
    let agree = i64::from(r.agree);
    match r.previous_agree {
        None => {
            d.add(tenant, &p, &s, figure::CALIBRATION_REVIEWED, 1);
            d.add(tenant, &p, &s, figure::CALIBRATION_AGREED, agree);
        }
        Some(before) => d.add(tenant, &p, &s, figure::CALIBRATION_AGREED, agree - i64::from(before)),
    }
}

fn opp_slice(f: &opportunity_fact::Model) -> Slice {
    Slice {
        source: f.source.clone(),
        segment: f.segment.clone(),
        team: f.team.clone(),
        rep: f.rep.clone(),
        campaign: f.campaign.clone(),
    }
}

/// Applies a batch of one stream's events (in stream order) in one
/// transaction with their ids and the new cursor. Events at or before the
/// stored cursor, or already applied, change nothing. Returns the cursor.
/// The facts the batch touches are read in one query per table and written
/// back in one per table: the cost is per batch, not per event.
pub async fn apply_batch(db: &DatabaseConnection, upstream: Upstream, events: &[Event]) -> Result<i64, ApiError> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Replicas follow the same streams: one batch is applied at a time across all of them
        // (as the in-process lock does within one), and the next reads the cursor, the
        // processed ids and the facts only after the previous one committed. So no event is
        // counted twice (a decision's counts are not idempotent facts) and the two streams,
        // which update the same lead facts, never overwrite each other's changes.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('qualify.metrics.ingest'))").await?;
    }
    let stored = cursor::Entity::find_by_id(upstream.as_str()).one(&txn).await?;
    let (mut seq, mut count) = stored.as_ref().map_or((0, 0), |c| (c.applied_sequence, c.applied_events));
    // Past the cursor, and not applied before under another position.
    let mut fresh: Vec<&Event> = Vec::with_capacity(events.len());
    for e in events {
        if e.sequence() > seq {
            seq = e.sequence();
            fresh.push(e);
        }
    }
    let id = |e: &Event| format!("{}:{}", upstream.as_str(), e.id());
    // Each event id is claimed once: the ids this batch claims are its fresh events.
    let mut claimed: HashSet<String> = HashSet::with_capacity(fresh.len());
    if txn.get_database_backend() == DbBackend::Postgres {
        // One statement for the batch: the claim and the check together.
        let ids = serde_json::Value::Array(fresh.iter().map(|e| serde_json::Value::String(id(e))).collect());
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO processed_events (event_id) SELECT json_array_elements_text($1::json) \
                 ON CONFLICT DO NOTHING RETURNING event_id",
                [ids.to_string().into()],
            ))
            .await?;
        for r in rows {
            claimed.insert(r.try_get::<String>("", "event_id")?);
        }
    } else {
        let mut known = HashSet::new();
        for chunk in fresh.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|e| id(e)).collect();
            let rows: Vec<String> = processed::Entity::find()
                .select_only()
                .column(processed::Column::EventId)
                .filter(processed::Column::EventId.is_in(ids))
                .into_tuple()
                .all(&txn)
                .await?;
            known.extend(rows);
        }
        claimed.extend(fresh.iter().map(|e| id(e)).filter(|i| !known.contains(i)));
        let rows: Vec<String> = claimed.iter().cloned().collect();
        for chunk in rows.chunks(500) {
            let models = chunk.iter().map(|i| processed::ActiveModel { event_id: Set(i.clone()) });
            processed::Entity::insert_many(models).on_conflict_do_nothing().exec_without_returning(&txn).await?;
        }
    }
    // The first of several deliveries of one id within the batch.
    fresh.retain(|e| claimed.remove(&id(e)));
    count += fresh.len() as i64;
    let mut facts = Facts::load(&txn, &fresh).await?;
    let mut d = Deltas::default();
    for e in &fresh {
        match e {
            Event::Scoring(e) => apply_scoring(&mut facts, e, &mut d),
            Event::Acceptance(e) => apply_acceptance(&mut facts, e, &mut d),
        }
    }
    facts.write(&txn).await?;
    d.write(&txn).await?;
    let row = cursor::ActiveModel {
        stream: Set(upstream.as_str().to_string()),
        applied_sequence: Set(seq),
        applied_events: Set(count),
    };
    cursor::Entity::insert(row)
        .on_conflict(
            OnConflict::column(cursor::Column::Stream)
                .update_columns([cursor::Column::AppliedSequence, cursor::Column::AppliedEvents])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(seq)
}

/// Where each stream stands.
pub async fn positions(db: &impl ConnectionTrait) -> Result<Vec<cursor::Model>, ApiError> {
    let mut out = Vec::new();
    for u in Upstream::ALL {
        out.push(cursor::Entity::find_by_id(u.as_str()).one(db).await?.unwrap_or(cursor::Model {
            stream: u.as_str().to_string(),
            applied_sequence: 0,
            applied_events: 0,
        }));
    }
    Ok(out)
}

/// Running stream consumers (and the service's other background tasks); dropping it stops them.
pub struct Consumers(pub(crate) Vec<tokio::task::JoinHandle<()>>);

impl Drop for Consumers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The consumers of both streams, and the rebuild that replays them.
#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    scoring: Option<ServiceChannel>,
    acceptance: Option<ServiceChannel>,
    issuer: TokenIssuer,
    /// Held while a batch is applied or a rebuild runs.
    lock: Arc<Mutex<()>>,
}

impl Ingestor {
    /// An ingestor of the streams at `scoring_url` and `acceptance_url` (either may be absent).
    pub fn new(
        db: DatabaseConnection,
        scoring_url: Option<&str>,
        acceptance_url: Option<&str>,
        jwt_secret: &str,
    ) -> anyhow::Result<Self> {
        let channel = |u: Option<&str>| u.map(|u| service_channel(u, None)).transpose();
        Ok(Ingestor {
            db,
            scoring: channel(scoring_url)?,
            acceptance: channel(acceptance_url)?,
            issuer: TokenIssuer::hs256(jwt_secret.as_bytes()),
            lock: Arc::new(Mutex::new(())),
        })
    }

    fn token(&self) -> Result<String, ApiError> {
        self.issuer
            .issue(SYSTEM_TENANT, "metrics-ingestor", &[Role::Service], Duration::from_secs(3600))
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("minting the ingestion token: {e}")))
    }

    /// Opens `upstream`'s stream after `after`.
    async fn open(
        &self,
        upstream: Upstream,
        after: i64,
        follow: bool,
    ) -> Result<futures::stream::BoxStream<'static, Result<Event, tonic::Status>>, ApiError> {
        let mut req = tonic::Request::new(());
        let bearer = format!("Bearer {}", self.token()?);
        let auth: tonic::metadata::MetadataValue<_> =
            bearer.parse().map_err(|_| ApiError::Internal(anyhow::anyhow!("token is not ASCII")))?;
        req.metadata_mut().insert("authorization", auth);
        let meta = req.metadata().clone();
        let unavailable = |_| ApiError::Unavailable { dependency: "event stream" };
        Ok(match upstream {
            Upstream::Scoring => {
                let ch = self.scoring.clone().ok_or(ApiError::Unavailable { dependency: "lead scoring" })?;
                let mut r = tonic::Request::new(sc::StreamEventsRequest { after_sequence: after, follow });
                *r.metadata_mut() = meta;
                let s = LeadScoringServiceClient::new(ch).stream_events(r).await.map_err(unavailable)?.into_inner();
                s.filter_map(|m| async move { m.map(|m| m.event.map(Event::Scoring)).transpose() }).boxed()
            }
            Upstream::Acceptance => {
                let ch =
                    self.acceptance.clone().ok_or(ApiError::Unavailable { dependency: "opportunity acceptance" })?;
                let mut r = tonic::Request::new(acc::StreamEventsRequest { after_sequence: after, follow });
                *r.metadata_mut() = meta;
                let s = OpportunityAcceptanceServiceClient::new(ch)
                    .stream_events(r)
                    .await
                    .map_err(unavailable)?
                    .into_inner();
                s.filter_map(|m| async move { m.map(|m| m.event.map(Event::Acceptance)).transpose() }).boxed()
            }
        })
    }

    /// Reads `stream` in batches (a batch closes at [`BATCH`] events or when
    /// the stream pauses) and applies each under the lock. Returns when the
    /// stream ends.
    async fn drain(
        &self,
        upstream: Upstream,
        mut stream: futures::stream::BoxStream<'static, Result<Event, tonic::Status>>,
    ) -> Result<(), ApiError> {
        let unavailable = |_| ApiError::Unavailable { dependency: "event stream" };
        loop {
            let Some(first) = stream.next().await else { return Ok(()) };
            let mut batch = vec![first.map_err(unavailable)?];
            let mut ended = false;
            while batch.len() < BATCH {
                match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
                    Ok(Some(e)) => batch.push(e.map_err(unavailable)?),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            {
                let _held = self.lock.lock().await;
                apply_batch(&self.db, upstream, &batch).await?;
            }
            metrics::counter!("qualify_metrics_events_ingested_total", "stream" => upstream.as_str())
                .increment(batch.len() as u64);
            if ended {
                return Ok(());
            }
        }
    }

    /// Follows `upstream` for ever from its stored cursor, reconnecting with
    /// backoff after any failure.
    pub async fn follow(self, upstream: Upstream) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let after = match cursor::Entity::find_by_id(upstream.as_str()).one(&self.db).await {
                Ok(c) => c.map_or(0, |c| c.applied_sequence),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics cannot read its cursor");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let run = async {
                let s = self.open(upstream, after, true).await?;
                self.drain(upstream, s).await
            };
            match run.await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::debug!(stream = upstream.as_str(), error = %e, "event stream interrupted; resuming");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Starts following both streams (those configured) until the returned
    /// guard is dropped: the service holds it, so its consumers end with it
    /// and the upstream servers are not kept waiting on open streams.
    pub fn spawn(&self) -> Consumers {
        let mut tasks = Vec::new();
        for (u, ch) in [(Upstream::Scoring, &self.scoring), (Upstream::Acceptance, &self.acceptance)] {
            if ch.is_some() {
                tasks.push(tokio::spawn(self.clone().follow(u)));
            }
        }
        Consumers(tasks)
    }

    /// Drops every roll-up, fact, applied id and cursor, then replays both
    /// streams from the start up to their current ends. Consumers wait
    /// meanwhile; afterwards they skip what the replay already applied.
    pub async fn rebuild(&self) -> Result<Vec<cursor::Model>, ApiError> {
        let _held = self.lock.lock().await;
        let txn = self.db.begin().await?;
        rollup::Entity::delete_many().exec(&txn).await?;
        lead_fact::Entity::delete_many().exec(&txn).await?;
        opportunity_fact::Entity::delete_many().exec(&txn).await?;
        processed::Entity::delete_many().exec(&txn).await?;
        cursor::Entity::delete_many().exec(&txn).await?;
        txn.commit().await?;
        for u in Upstream::ALL {
            if (u == Upstream::Scoring && self.scoring.is_none())
                || (u == Upstream::Acceptance && self.acceptance.is_none())
            {
                continue;
            }
            let mut s = self.open(u, 0, false).await?;
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(e) = s.next().await {
                batch.push(e.map_err(|_| ApiError::Unavailable { dependency: "event stream" })?);
                if batch.len() == BATCH {
                    apply_batch(&self.db, u, &std::mem::take(&mut batch)).await?;
                }
            }
            if !batch.is_empty() {
                apply_batch(&self.db, u, &batch).await?;
            }
        }
        positions(&self.db).await
    }
}
