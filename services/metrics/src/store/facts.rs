//! Queries of `lead_facts` and `opportunity_facts`: a batch's facts read by
//! key and written back, a few statements per table on either database.

use std::collections::HashSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set};

use super::bulk::{CHUNK, Columns, by_keys, excluded, is_postgres, upsert_json};
use super::entity::{lead_fact, opportunity_fact};
use crate::ingest::facts::{FactKey, LeadFact, OpportunityFact};

const LEAD_COLUMNS: Columns = &[
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
const OPPORTUNITY_COLUMNS: Columns = &[
    ("tenant_id", "text"),
    ("opportunity_id", "text"),
    ("lead_id", "text"),
    ("source", "text"),
    ("segment", "text"),
    ("team", "text"),
    ("rep", "text"),
    ("campaign", "text"),
    ("amount_minor", "bigint"),
    ("currency_code", "text"),
    ("expansion", "boolean"),
    ("accept_period", "text"),
    ("accepted_at", "timestamptz"),
    ("meaningful_activity", "boolean"),
    ("closed", "boolean"),
];

/// The stored facts of `leads` and `opportunities` (those never stored are left out).
pub(crate) async fn load(
    txn: &DatabaseTransaction,
    leads: &[FactKey],
    opportunities: &[FactKey],
) -> Result<(Vec<LeadFact>, Vec<OpportunityFact>), DbErr> {
    let (mut lead_rows, mut opp_rows): (Vec<lead_fact::Model>, Vec<opportunity_fact::Model>) = (vec![], vec![]);
    if is_postgres(txn) {
        lead_rows = by_keys(txn, "lead_facts", "lead_id", leads).await?;
        opp_rows = by_keys(txn, "opportunity_facts", "opportunity_id", opportunities).await?;
    } else {
        for chunk in leads.chunks(CHUNK) {
            let tenants: HashSet<&str> = chunk.iter().map(|k| k.0.as_str()).collect();
            let rows = lead_fact::Entity::find()
                .filter(lead_fact::Column::TenantId.is_in(tenants))
                .filter(lead_fact::Column::LeadId.is_in(chunk.iter().map(|k| k.1.as_str())))
                .all(txn)
                .await?;
            lead_rows.extend(rows);
        }
        for chunk in opportunities.chunks(CHUNK) {
            let tenants: HashSet<&str> = chunk.iter().map(|k| k.0.as_str()).collect();
            let rows = opportunity_fact::Entity::find()
                .filter(opportunity_fact::Column::TenantId.is_in(tenants))
                .filter(opportunity_fact::Column::OpportunityId.is_in(chunk.iter().map(|k| k.1.as_str())))
                .all(txn)
                .await?;
            opp_rows.extend(rows);
        }
    }
    // On SQLite tenants and ids are matched apart, so a few rows may not have been asked for:
    // they are loaded but never looked up, so never written.
    let leads = lead_rows.into_iter().map(lead_of).collect();
    let opportunities = opp_rows.into_iter().map(opportunity_of).collect();
    Ok((leads, opportunities))
}

/// Writes `leads` and `opportunities`, inserting those not stored yet.
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    leads: Vec<LeadFact>,
    opportunities: Vec<OpportunityFact>,
) -> Result<(), DbErr> {
    use lead_fact::Column as L;
    use opportunity_fact::Column as O;
    if is_postgres(txn) {
        let leads = leads.into_iter().map(|m| {
            serde_json::json!({
                "tenant_id": m.tenant_id, "lead_id": m.lead_id, "known": m.known,
                "created_period": m.created_period, "source": m.source, "segment": m.segment, "rep": m.rep,
                "campaign": m.campaign, "mql_period": m.mql_period, "sql_period": m.sql_period,
                "reached_sqo": m.reached_sqo, "reached_won": m.reached_won,
            })
        });
        upsert_json(txn, "lead_facts", LEAD_COLUMNS, "tenant_id, lead_id", &excluded(LEAD_COLUMNS, 2), leads).await?;
        let opps = opportunities.into_iter().map(|m| {
            serde_json::json!({
                "tenant_id": m.tenant_id, "opportunity_id": m.opportunity_id, "lead_id": m.lead_id,
                "source": m.source, "segment": m.segment, "team": m.team, "rep": m.rep, "campaign": m.campaign,
                "amount_minor": m.amount_minor, "currency_code": m.currency_code,
                "expansion": m.expansion, "accept_period": m.accept_period,
                "accepted_at": m.accepted_at.map(|t| t.to_rfc3339()),
                "meaningful_activity": m.meaningful_activity, "closed": m.closed,
            })
        });
        let update = excluded(OPPORTUNITY_COLUMNS, 2);
        return upsert_json(txn, "opportunity_facts", OPPORTUNITY_COLUMNS, "tenant_id, opportunity_id", &update, opps)
            .await;
    }
    let leads: Vec<lead_fact::ActiveModel> = leads.into_iter().map(lead_row).collect();
    for chunk in leads.chunks(CHUNK) {
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
    let opps: Vec<opportunity_fact::ActiveModel> = opportunities.into_iter().map(opportunity_row).collect();
    for chunk in opps.chunks(CHUNK) {
        opportunity_fact::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                // Only these change once an opportunity is stored.
                OnConflict::columns([O::TenantId, O::OpportunityId])
                    .update_columns([O::AcceptPeriod, O::AcceptedAt, O::MeaningfulActivity, O::Closed])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Forgets every fact (a rebuild starts over).
pub(crate) async fn clear(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    lead_fact::Entity::delete_many().exec(txn).await?;
    opportunity_fact::Entity::delete_many().exec(txn).await?;
    Ok(())
}

fn lead_of(m: lead_fact::Model) -> LeadFact {
    LeadFact {
        tenant_id: m.tenant_id,
        lead_id: m.lead_id,
        known: m.known,
        created_period: m.created_period,
        source: m.source,
        segment: m.segment,
        rep: m.rep,
        campaign: m.campaign,
        mql_period: m.mql_period,
        sql_period: m.sql_period,
        reached_sqo: m.reached_sqo,
        reached_won: m.reached_won,
    }
}

fn lead_row(f: LeadFact) -> lead_fact::ActiveModel {
    lead_fact::ActiveModel {
        tenant_id: Set(f.tenant_id),
        lead_id: Set(f.lead_id),
        known: Set(f.known),
        created_period: Set(f.created_period),
        source: Set(f.source),
        segment: Set(f.segment),
        rep: Set(f.rep),
        campaign: Set(f.campaign),
        mql_period: Set(f.mql_period),
        sql_period: Set(f.sql_period),
        reached_sqo: Set(f.reached_sqo),
        reached_won: Set(f.reached_won),
    }
}

fn opportunity_of(m: opportunity_fact::Model) -> OpportunityFact {
    OpportunityFact {
        tenant_id: m.tenant_id,
        opportunity_id: m.opportunity_id,
        lead_id: m.lead_id,
        source: m.source,
        segment: m.segment,
        team: m.team,
        rep: m.rep,
        campaign: m.campaign,
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
        expansion: m.expansion,
        accept_period: m.accept_period,
        accepted_at: m.accepted_at,
        meaningful_activity: m.meaningful_activity,
        closed: m.closed,
    }
}

fn opportunity_row(f: OpportunityFact) -> opportunity_fact::ActiveModel {
    opportunity_fact::ActiveModel {
        tenant_id: Set(f.tenant_id),
        opportunity_id: Set(f.opportunity_id),
        lead_id: Set(f.lead_id),
        source: Set(f.source),
        segment: Set(f.segment),
        team: Set(f.team),
        rep: Set(f.rep),
        campaign: Set(f.campaign),
        amount_minor: Set(f.amount_minor),
        currency_code: Set(f.currency_code),
        expansion: Set(f.expansion),
        accept_period: Set(f.accept_period),
        accepted_at: Set(f.accepted_at),
        meaningful_activity: Set(f.meaningful_activity),
        closed: Set(f.closed),
    }
}
