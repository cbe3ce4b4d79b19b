//! M004: every published gate policy is kept as a version, so a decision's
//! `policy_version` always resolves to the policy it was judged by. The
//! policies in force move over as their current versions (the versions they
//! replaced were overwritten before this release and are gone), and the
//! table that held one row per segment is dropped.

use sea_orm_migration::prelude::*;

use super::frozen::{GatePolicies, GatePolicyVersions};

/// Gate policy versions.
pub struct M004PolicyVersions;

impl MigrationName for M004PolicyVersions {
    fn name(&self) -> &str {
        "m20261203_000005_policy_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M004PolicyVersions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use GatePolicyVersions as V;
        m.create_table(
            Table::create()
                .table(V::Table)
                .col(ColumnDef::new(V::TenantId).string().not_null())
                .col(ColumnDef::new(V::Segment).string().not_null())
                .col(ColumnDef::new(V::Version).big_integer().not_null())
                .col(ColumnDef::new(V::Framework).string().not_null())
                .col(ColumnDef::new(V::RequiredCriteria).string().not_null())
                .col(ColumnDef::new(V::RequireEconomicBuyer).boolean().not_null())
                .col(ColumnDef::new(V::RequireChampion).boolean().not_null())
                .col(ColumnDef::new(V::MinStakeholders).integer().not_null())
                .col(ColumnDef::new(V::RequireNextStep).boolean().not_null())
                .col(ColumnDef::new(V::ContactMaxAgeDays).integer().not_null())
                .col(ColumnDef::new(V::MinScore).integer().not_null())
                .col(ColumnDef::new(V::UpdatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(V::UpdatedBy).string().not_null())
                .primary_key(Index::create().col(V::TenantId).col(V::Segment).col(V::Version))
                .to_owned(),
        )
        .await?;
        let columns = [
            (V::TenantId, GatePolicies::TenantId),
            (V::Segment, GatePolicies::Segment),
            (V::Version, GatePolicies::Version),
            (V::Framework, GatePolicies::Framework),
            (V::RequiredCriteria, GatePolicies::RequiredCriteria),
            (V::RequireEconomicBuyer, GatePolicies::RequireEconomicBuyer),
            (V::RequireChampion, GatePolicies::RequireChampion),
            (V::MinStakeholders, GatePolicies::MinStakeholders),
            (V::RequireNextStep, GatePolicies::RequireNextStep),
            (V::ContactMaxAgeDays, GatePolicies::ContactMaxAgeDays),
            (V::MinScore, GatePolicies::MinScore),
            (V::UpdatedAt, GatePolicies::UpdatedAt),
            (V::UpdatedBy, GatePolicies::UpdatedBy),
        ];
        let select = Query::select().columns(columns.map(|(_, from)| from)).from(GatePolicies::Table).to_owned();
        let copy = Query::insert()
            .into_table(V::Table)
            .columns(columns.map(|(to, _)| to))
            .select_from(select)
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        m.exec_stmt(copy).await?;
        m.drop_table(Table::drop().table(GatePolicies::Table).to_owned()).await
    }
}
