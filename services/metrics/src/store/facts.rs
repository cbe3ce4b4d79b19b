//! Queries of `lead_facts` and `opportunity_facts`: a batch's facts read by
//! key and written back, a few statements per table on either database.

use std::collections::HashSet;

use qualify_domain::Verification;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set};

use super::bulk::{CHUNK, Columns, by_keys, excluded, is_postgres, upsert_json};
use super::entity::{contact_fact, lead_fact, opportunity_fact};
use crate::ingest::facts::{ContactFact, FactKey, LeadFact, OpportunityFact, Reach};

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
    ("contact_id", "text"),
    ("reach", "text"),
];
const CONTACT_COLUMNS: Columns = &[
    ("tenant_id", "text"),
    ("contact_id", "text"),
    ("email_status", "text"),
    ("phone_status", "text"),
    ("lead_ids", "text"),
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
                "reached_sqo": m.reached_sqo, "reached_won": m.reached_won, "contact_id": m.contact_id,
                "reach": m.reach.as_str(),
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
                        L::ContactId,
                        L::Reach,
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
    contact_fact::Entity::delete_many().exec(txn).await?;
    Ok(())
}

/// The stored facts of `contacts` (those never stored are left out).
pub(crate) async fn load_contacts(txn: &DatabaseTransaction, contacts: &[FactKey]) -> Result<Vec<ContactFact>, DbErr> {
    let mut rows: Vec<contact_fact::Model> = vec![];
    if is_postgres(txn) {
        rows = by_keys(txn, "contact_facts", "contact_id", contacts).await?;
    } else {
        for chunk in contacts.chunks(CHUNK) {
            let tenants: HashSet<&str> = chunk.iter().map(|k| k.0.as_str()).collect();
            let asked: HashSet<&FactKey> = chunk.iter().collect();
            let found = contact_fact::Entity::find()
                .filter(contact_fact::Column::TenantId.is_in(tenants))
                .filter(contact_fact::Column::ContactId.is_in(chunk.iter().map(|k| k.1.as_str())))
                .all(txn)
                .await?;
            // Tenants and ids are matched apart: keep only the pairs asked for.
            rows.extend(found.into_iter().filter(|m| asked.contains(&(m.tenant_id.clone(), m.contact_id.clone()))));
        }
    }
    Ok(rows.into_iter().map(contact_of).collect())
}

/// Writes `contacts`, inserting those not stored yet.
pub(crate) async fn write_contacts(txn: &DatabaseTransaction, contacts: Vec<ContactFact>) -> Result<(), DbErr> {
    use contact_fact::Column as K;
    if is_postgres(txn) {
        let rows = contacts.into_iter().map(|c| {
            serde_json::json!({
                "tenant_id": c.tenant_id, "contact_id": c.contact_id, "email_status": c.email.as_str(),
                "phone_status": c.phone.as_str(), "lead_ids": c.leads.join(","),
            })
        });
        let update = excluded(CONTACT_COLUMNS, 2);
        return upsert_json(txn, "contact_facts", CONTACT_COLUMNS, "tenant_id, contact_id", &update, rows).await;
    }
    let rows: Vec<contact_fact::ActiveModel> = contacts.into_iter().map(contact_row).collect();
    for chunk in rows.chunks(CHUNK) {
        contact_fact::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([K::TenantId, K::ContactId])
                    .update_columns([K::EmailStatus, K::PhoneStatus, K::LeadIds])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

fn contact_of(m: contact_fact::Model) -> ContactFact {
    let status = |s: &str| Verification::parse(s).unwrap_or(Verification::Unverified);
    ContactFact {
        email: status(&m.email_status),
        phone: status(&m.phone_status),
        leads: m.lead_ids.split(',').filter(|l| !l.is_empty()).map(str::to_string).collect(),
        tenant_id: m.tenant_id,
        contact_id: m.contact_id,
    }
}

fn contact_row(c: ContactFact) -> contact_fact::ActiveModel {
    contact_fact::ActiveModel {
        tenant_id: Set(c.tenant_id),
        contact_id: Set(c.contact_id),
        email_status: Set(c.email.as_str().to_string()),
        phone_status: Set(c.phone.as_str().to_string()),
        lead_ids: Set(c.leads.join(",")),
    }
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
        contact_id: m.contact_id,
        reach: Reach::parse(&m.reach),
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
        contact_id: Set(f.contact_id),
        reach: Set(f.reach.as_str().to_string()),
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
