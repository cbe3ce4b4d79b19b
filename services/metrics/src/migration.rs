//! Schema of metrics; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use crate::entity::quota;

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(qualify_platform::idempotency::Migration), Box::new(M001Quotas)]
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
