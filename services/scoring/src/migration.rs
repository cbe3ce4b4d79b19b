//! Schema of lead scoring; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use qualify_domain::scoring::signal_log;

use crate::entity::{account, contact, lead, scorecard, signal, stage_change};

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(qualify_platform::idempotency::Migration),
            Box::new(qualify_platform::outbox::Migration),
            Box::new(M001AccountsLeads),
            Box::new(M002ContactsSignalsScorecards),
            Box::new(M003SignalLog),
            Box::new(qualify_platform::outbox::UnstampedIndex),
            Box::new(qualify_platform::db::Reindex {
                name: "m20261123_000002_discriminating_indexes",
                indexes: &[
                    ("idx_leads_account", "leads", &["account_id", "tenant_id"]),
                    ("idx_contacts_account", "contacts", &["account_id", "tenant_id"]),
                    ("idx_signals_lead", "signals", &["lead_id", "tenant_id", "occurred_at"]),
                    ("idx_signals_account", "signals", &["account_id", "tenant_id", "occurred_at"]),
                    ("idx_stage_changes_lead", "lead_stage_changes", &["lead_id", "tenant_id", "id"]),
                ],
            }),
            Box::new(qualify_platform::outbox::StampFunction),
        ]
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
                .col(ColumnDef::new(L::ContactId).string().null())
                .col(ColumnDef::new(L::Score).blob().null())
                .col(ColumnDef::new(L::ScoreTotal).integer().null())
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
        use contact::Column as C;
        m.create_table(
            Table::create()
                .table(contact::Entity)
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
                .table(contact::Entity)
                .col(C::TenantId)
                .col(C::AccountId)
                .to_owned(),
        )
        .await?;

        use signal::Column as S;
        m.create_table(
            Table::create()
                .table(signal::Entity)
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
                .table(signal::Entity)
                .col(S::TenantId)
                .col(S::LeadId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_signals_account")
                .table(signal::Entity)
                .col(S::TenantId)
                .col(S::AccountId)
                .col(S::OccurredAt)
                .to_owned(),
        )
        .await?;

        use scorecard::Column as K;
        m.create_table(
            Table::create()
                .table(scorecard::Entity)
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

        use stage_change::Column as H;
        m.create_table(
            Table::create()
                .table(stage_change::Entity)
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
                .table(stage_change::Entity)
                .col(H::TenantId)
                .col(H::LeadId)
                .col(H::Id)
                .to_owned(),
        )
        .await
    }
}

/// The packed per-lead signal log, filled from the signals already stored.
pub struct M003SignalLog;

impl MigrationName for M003SignalLog {
    fn name(&self) -> &str {
        "m20261123_000003_signal_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M003SignalLog {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryOrder, Set};
        m.alter_table(
            Table::alter()
                .table(lead::Entity)
                .add_column(ColumnDef::new(lead::Column::SignalLog).blob().null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let mut pages = lead::Entity::find()
            .order_by_asc(lead::Column::TenantId)
            .order_by_asc(lead::Column::LeadId)
            .paginate(db, 500);
        while let Some(page) = pages.fetch_and_next().await? {
            for l in page {
                let sigs = crate::leads::signals(db, &l.tenant_id, &l.lead_id)
                    .await
                    .map_err(|e| DbErr::Custom(format!("reading the signals of lead {}: {e:?}", l.lead_id)))?;
                if sigs.is_empty() {
                    continue;
                }
                let mut row = l.into_active_model();
                row.signal_log = Set(Some(signal_log::encode(&sigs, crate::leads::MAX_SIGNALS_PER_LEAD)));
                row.update(db).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(lead::Entity).drop_column(lead::Column::SignalLog).to_owned()).await
    }
}
