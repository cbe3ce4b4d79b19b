//! Schema of lead scoring; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use crate::entity::{account, lead};

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(qualify_platform::idempotency::Migration), Box::new(M001AccountsLeads)]
    }
}

/// Accounts and leads.
pub struct M001AccountsLeads;

impl MigrationName for M001AccountsLeads {
    fn name(&self) -> &str {
        "m20261122_000001_accounts_leads"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M001AccountsLeads {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use account::Column as A;
        m.create_table(
            Table::create()
                .table(account::Entity)
                .col(ColumnDef::new(A::TenantId).string().not_null())
                .col(ColumnDef::new(A::AccountId).string().not_null())
                .col(ColumnDef::new(A::DisplayName).string().not_null())
                .col(ColumnDef::new(A::Industry).string().not_null())
                .col(ColumnDef::new(A::EmployeeCount).integer().not_null())
                .col(ColumnDef::new(A::RevenueBand).string().not_null())
                .col(ColumnDef::new(A::Region).string().not_null())
                .col(ColumnDef::new(A::Segment).string().null())
                .col(ColumnDef::new(A::Version).big_integer().not_null())
                .col(ColumnDef::new(A::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(A::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(A::TenantId).col(A::AccountId))
                .to_owned(),
        )
        .await?;
        use lead::Column as L;
        m.create_table(
            Table::create()
                .table(lead::Entity)
                .col(ColumnDef::new(L::TenantId).string().not_null())
                .col(ColumnDef::new(L::LeadId).string().not_null())
                .col(ColumnDef::new(L::AccountId).string().not_null())
                .col(ColumnDef::new(L::Source).string().not_null())
                .col(ColumnDef::new(L::Campaign).string().not_null())
                .col(ColumnDef::new(L::OwnerSdr).string().not_null())
                .col(ColumnDef::new(L::Stage).string().not_null())
                .col(ColumnDef::new(L::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(L::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(L::TenantId).col(L::LeadId))
                .foreign_key(
                    ForeignKey::create()
                        .from(lead::Entity, (L::TenantId, L::AccountId))
                        .to(account::Entity, (A::TenantId, A::AccountId)),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_leads_account").table(lead::Entity).col(L::TenantId).col(L::AccountId).to_owned(),
        )
        .await
    }
}
