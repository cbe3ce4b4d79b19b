//! M002: contacts, signals, scorecard versions and stage history.

use sea_orm_migration::prelude::*;

use super::frozen::{Contacts, Scorecards, Signals, StageChanges};

/// Contacts, signals, scorecard versions and stage history.
pub struct M002ContactsSignalsScorecards;

impl MigrationName for M002ContactsSignalsScorecards {
    fn name(&self) -> &str {
        "m20261122_000002_contacts_signals_scorecards"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M002ContactsSignalsScorecards {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Contacts as C;
        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(ColumnDef::new(C::TenantId).string().not_null())
                .col(ColumnDef::new(C::ContactId).string().not_null())
                .col(ColumnDef::new(C::AccountId).string().not_null())
                .col(ColumnDef::new(C::FullName).string().not_null())
                .col(ColumnDef::new(C::Title).string().not_null())
                .col(ColumnDef::new(C::Seniority).string().not_null())
                .col(ColumnDef::new(C::Department).string().not_null())
                .col(ColumnDef::new(C::BuyingRole).string().null())
                .col(ColumnDef::new(C::Email).string().not_null())
                .col(ColumnDef::new(C::EmailStatus).string().not_null())
                .col(ColumnDef::new(C::EmailVerifiedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(C::Phone).string().not_null())
                .col(ColumnDef::new(C::PhoneStatus).string().not_null())
                .col(ColumnDef::new(C::PhoneVerifiedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(C::Version).big_integer().not_null())
                .col(ColumnDef::new(C::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(C::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(C::TenantId).col(C::ContactId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_contacts_account")
                .table(Contacts::Table)
                .col(C::TenantId)
                .col(C::AccountId)
                .to_owned(),
        )
        .await?;

        use Signals as S;
        m.create_table(
            Table::create()
                .table(Signals::Table)
                .col(ColumnDef::new(S::TenantId).string().not_null())
                .col(ColumnDef::new(S::SignalId).string().not_null())
                .col(ColumnDef::new(S::LeadId).string().not_null())
                .col(ColumnDef::new(S::AccountId).string().not_null())
                .col(ColumnDef::new(S::ContactId).string().null())
                .col(ColumnDef::new(S::Kind).string().not_null())
                .col(ColumnDef::new(S::OccurredAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(S::ReceivedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(S::TenantId).col(S::SignalId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_signals_lead")
                .table(Signals::Table)
                .col(S::TenantId)
                .col(S::LeadId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_signals_account")
                .table(Signals::Table)
                .col(S::TenantId)
                .col(S::AccountId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;

        use Scorecards as K;
        m.create_table(
            Table::create()
                .table(Scorecards::Table)
                .col(ColumnDef::new(K::TenantId).string().not_null())
                .col(ColumnDef::new(K::Segment).string().not_null())
                .col(ColumnDef::new(K::Version).big_integer().not_null())
                .col(ColumnDef::new(K::Body).blob().not_null())
                .col(ColumnDef::new(K::PublishedBy).string().not_null())
                .col(ColumnDef::new(K::PublishedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(K::TenantId).col(K::Segment).col(K::Version))
                .to_owned(),
        )
        .await?;

        use StageChanges as H;
        m.create_table(
            Table::create()
                .table(StageChanges::Table)
                .col(ColumnDef::new(H::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(H::TenantId).string().not_null())
                .col(ColumnDef::new(H::LeadId).string().not_null())
                .col(ColumnDef::new(H::FromStage).string().not_null())
                .col(ColumnDef::new(H::ToStage).string().not_null())
                .col(ColumnDef::new(H::Actor).string().not_null())
                .col(ColumnDef::new(H::ActorRoles).string().not_null())
                .col(ColumnDef::new(H::Reason).string().not_null())
                .col(ColumnDef::new(H::Score).integer().not_null())
                .col(ColumnDef::new(H::ScorecardVersion).big_integer().not_null())
                .col(ColumnDef::new(H::ChangedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_stage_changes_lead")
                .table(StageChanges::Table)
                .col(H::TenantId)
                .col(H::LeadId)
                .col(H::Id)
                .to_owned(),
        )
        .await
    }
}
