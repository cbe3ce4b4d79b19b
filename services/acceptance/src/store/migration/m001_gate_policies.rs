//! M001: gate policies.

use sea_orm_migration::prelude::*;

use super::frozen::GatePolicies;

/// Gate policies.
pub struct M001GatePolicies;

impl MigrationName for M001GatePolicies {
    fn name(&self) -> &str {
        "m20261122_000001_gate_policies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M001GatePolicies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use GatePolicies as G;
        m.create_table(
            Table::create()
                .table(G::Table)
                .col(ColumnDef::new(G::TenantId).string().not_null())
                .col(ColumnDef::new(G::Segment).string().not_null())
                .col(ColumnDef::new(G::Framework).string().not_null())
                .col(ColumnDef::new(G::RequiredCriteria).string().not_null())
                .col(ColumnDef::new(G::RequireEconomicBuyer).boolean().not_null())
                .col(ColumnDef::new(G::RequireChampion).boolean().not_null())
                .col(ColumnDef::new(G::MinStakeholders).integer().not_null())
                .col(ColumnDef::new(G::RequireNextStep).boolean().not_null())
                .col(ColumnDef::new(G::ContactMaxAgeDays).integer().not_null())
                .col(ColumnDef::new(G::MinScore).integer().not_null())
                .col(ColumnDef::new(G::Version).big_integer().not_null())
                .col(ColumnDef::new(G::UpdatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(G::UpdatedBy).string().not_null())
                .primary_key(Index::create().col(G::TenantId).col(G::Segment))
                .to_owned(),
        )
        .await
    }
}
