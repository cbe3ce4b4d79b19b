//! M005: one live opportunity per lead, held by the database. `live_lead` is
//! the lead's id while an ordinary (not expansion) opportunity is pending,
//! sent back or accepted and open, and NULL otherwise; a unique index on
//! (tenant, live_lead) refuses a second one even when two submissions race
//! (NULLs never collide, on PostgreSQL and SQLite alike). Where earlier
//! releases let a lead gather several, the oldest keeps the mark and the
//! others stay as they are.

use sea_orm_migration::prelude::*;

use super::frozen::Opportunities as O;

/// The live-opportunity mark and its unique index.
pub struct M005LiveOpportunities;

impl MigrationName for M005LiveOpportunities {
    fn name(&self) -> &str {
        "m20261203_000006_one_live_opportunity_per_lead"
    }
}

/// States of a live opportunity, as stored by this release.
const LIVE: &str = "('pending_review', 'sent_back', 'accepted', 'proposal', 'negotiation')";

#[async_trait::async_trait]
impl MigrationTrait for M005LiveOpportunities {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(O::Table).add_column(ColumnDef::new(O::LiveLead).string().null()).to_owned(),
        )
        .await?;
        // No release before this one had expansions: every live opportunity is an ordinary one.
        let mark = format!(
            "UPDATE opportunities SET live_lead = lead_id WHERE state IN {LIVE} AND NOT EXISTS (\
               SELECT 1 FROM opportunities o2 WHERE o2.tenant_id = opportunities.tenant_id \
               AND o2.lead_id = opportunities.lead_id AND o2.state IN {LIVE} \
               AND (o2.created_at < opportunities.created_at OR (o2.created_at = opportunities.created_at \
               AND o2.opportunity_id < opportunities.opportunity_id)))"
        );
        m.get_connection().execute_unprepared(&mark).await?;
        m.create_index(
            Index::create()
                .name("idx_opportunities_live_lead")
                .table(O::Table)
                .col(O::TenantId)
                .col(O::LiveLead)
                .unique()
                .to_owned(),
        )
        .await
    }
}
