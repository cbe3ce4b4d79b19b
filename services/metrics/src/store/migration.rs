//! Schema of metrics; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use crate::store::entity::quota;

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(qualify_platform::idempotency::Migration), Box::new(M001Quotas), Box::new(M002Rollups)]
    }
}

/// Quotas.
pub struct M001Quotas;

impl MigrationName for M001Quotas {
    fn name(&self) -> &str {
        "m20261122_000001_quotas"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M001Quotas {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use quota::Column as Q;
        m.create_table(
            Table::create()
                .table(quota::Entity)
                .col(ColumnDef::new(Q::TenantId).string().not_null())
                .col(ColumnDef::new(Q::Period).string().not_null())
                .col(ColumnDef::new(Q::OwnerKind).string().not_null())
                .col(ColumnDef::new(Q::OwnerId).string().not_null())
                .col(ColumnDef::new(Q::AmountMinor).big_integer().not_null())
                .col(ColumnDef::new(Q::CurrencyCode).string().not_null())
                .col(ColumnDef::new(Q::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(Q::TenantId).col(Q::Period).col(Q::OwnerKind).col(Q::OwnerId))
                .to_owned(),
        )
        .await
    }
}

fn text(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).string().not_null().to_owned()
}

/// Stream cursors, applied event ids, lead and opportunity facts, roll-ups.
pub struct M002Rollups;

impl MigrationName for M002Rollups {
    fn name(&self) -> &str {
        "m20261123_000002_rollups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M002Rollups {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use crate::store::entity::{cursor, lead_fact, opportunity_fact, processed, rollup};
        m.create_table(
            Table::create()
                .table(cursor::Entity)
                .col(text(cursor::Column::Stream).primary_key())
                .col(ColumnDef::new(cursor::Column::AppliedSequence).big_integer().not_null())
                .col(ColumnDef::new(cursor::Column::AppliedEvents).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create().table(processed::Entity).col(text(processed::Column::EventId).primary_key()).to_owned(),
        )
        .await?;
        use lead_fact::Column as L;
        m.create_table(
            Table::create()
                .table(lead_fact::Entity)
                .col(text(L::TenantId))
                .col(text(L::LeadId))
                .col(ColumnDef::new(L::Known).boolean().not_null())
                .col(ColumnDef::new(L::CreatedPeriod).string().null())
                .col(text(L::Source))
                .col(text(L::Segment))
                .col(text(L::Rep))
                .col(text(L::Campaign))
                .col(ColumnDef::new(L::MqlPeriod).string().null())
                .col(ColumnDef::new(L::SqlPeriod).string().null())
                .col(ColumnDef::new(L::ReachedSqo).boolean().not_null())
                .col(ColumnDef::new(L::ReachedWon).boolean().not_null())
                .primary_key(Index::create().col(L::TenantId).col(L::LeadId))
                .to_owned(),
        )
        .await?;
        use opportunity_fact::Column as O;
        m.create_table(
            Table::create()
                .table(opportunity_fact::Entity)
                .col(text(O::TenantId))
                .col(text(O::OpportunityId))
                .col(text(O::LeadId))
                .col(text(O::Source))
                .col(text(O::Segment))
                .col(text(O::Team))
                .col(text(O::Rep))
                .col(text(O::Campaign))
                .col(ColumnDef::new(O::AmountMinor).big_integer().not_null())
                .col(ColumnDef::new(O::AcceptPeriod).string().null())
                .col(ColumnDef::new(O::AcceptedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(O::MeaningfulActivity).boolean().not_null())
                .col(ColumnDef::new(O::Closed).boolean().not_null())
                .primary_key(Index::create().col(O::TenantId).col(O::OpportunityId))
                .to_owned(),
        )
        .await?;
        use rollup::Column as R;
        m.create_table(
            Table::create()
                .table(rollup::Entity)
                .col(text(R::TenantId))
                .col(text(R::Period))
                .col(text(R::Grain))
                .col(text(R::Source))
                .col(text(R::Segment))
                .col(text(R::Team))
                .col(text(R::Rep))
                .col(text(R::Campaign))
                .col(text(R::Figure))
                .col(ColumnDef::new(R::Value).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(R::TenantId)
                        .col(R::Grain)
                        .col(R::Period)
                        .col(R::Source)
                        .col(R::Segment)
                        .col(R::Team)
                        .col(R::Rep)
                        .col(R::Campaign)
                        .col(R::Figure),
                )
                .to_owned(),
        )
        .await?;
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Counters and facts are updated in place again and again: room on each page lets
            // PostgreSQL keep the new version beside the old (a HOT update) without touching the
            // wide primary keys, so neither table nor index bloats under a steady stream.
            for table in ["funnel_rollups", "lead_facts", "opportunity_facts"] {
                m.get_connection().execute_unprepared(&format!("ALTER TABLE {table} SET (fillfactor = 50)")).await?;
            }
        }
        Ok(())
    }
}
