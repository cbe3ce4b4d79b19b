//! M001: accounts and leads.

use sea_orm_migration::prelude::*;

use super::frozen::{Accounts, Leads};

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
        use Accounts as A;
        m.create_table(
            Table::create()
                .table(Accounts::Table)
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
        use Leads as L;
        m.create_table(
            Table::create()
                .table(Leads::Table)
                .col(ColumnDef::new(L::TenantId).string().not_null())
                .col(ColumnDef::new(L::LeadId).string().not_null())
                .col(ColumnDef::new(L::AccountId).string().not_null())
                .col(ColumnDef::new(L::Source).string().not_null())
                .col(ColumnDef::new(L::Campaign).string().not_null())
                .col(ColumnDef::new(L::OwnerSdr).string().not_null())
                .col(ColumnDef::new(L::Stage).string().not_null())
                .col(ColumnDef::new(L::ContactId).string().null())
                .col(ColumnDef::new(L::Score).blob().null())
                .col(ColumnDef::new(L::ScoreTotal).integer().null())
                .col(ColumnDef::new(L::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(L::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(L::TenantId).col(L::LeadId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Leads::Table, (L::TenantId, L::AccountId))
                        .to(Accounts::Table, (A::TenantId, A::AccountId)),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_leads_account").table(Leads::Table).col(L::TenantId).col(L::AccountId).to_owned(),
        )
        .await
    }
}
