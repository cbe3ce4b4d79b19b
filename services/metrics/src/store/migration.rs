//! Schema of metrics; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use frozen::{
    ContactFacts, ExchangeRates, FunnelRollups, LeadFacts, OpportunityFacts, ProcessedEvents, Quotas,
    ReportingCurrencies, StreamCursors,
};

/// The tables as these migrations made them: each migration names its own
/// columns, so a later change to the service's entities never changes what
/// an old migration does.
mod frozen {
    use sea_orm_migration::prelude::*;

    #[derive(DeriveIden)]
    pub enum Quotas {
        #[sea_orm(iden = "quotas")]
        Table,
        TenantId,
        Period,
        OwnerKind,
        OwnerId,
        AmountMinor,
        CurrencyCode,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum StreamCursors {
        #[sea_orm(iden = "stream_cursors")]
        Table,
        Stream,
        AppliedSequence,
        AppliedEvents,
    }

    #[derive(DeriveIden)]
    pub enum ProcessedEvents {
        #[sea_orm(iden = "processed_events")]
        Table,
        EventId,
    }

    #[derive(DeriveIden)]
    pub enum LeadFacts {
        #[sea_orm(iden = "lead_facts")]
        Table,
        TenantId,
        LeadId,
        Known,
        CreatedPeriod,
        Source,
        Segment,
        Rep,
        Campaign,
        MqlPeriod,
        SqlPeriod,
        ReachedSqo,
        ReachedWon,
        ContactId,
        Reach,
    }

    #[derive(DeriveIden)]
    pub enum ContactFacts {
        #[sea_orm(iden = "contact_facts")]
        Table,
        TenantId,
        ContactId,
        EmailStatus,
        PhoneStatus,
        LeadIds,
    }

    #[derive(DeriveIden)]
    pub enum OpportunityFacts {
        #[sea_orm(iden = "opportunity_facts")]
        Table,
        TenantId,
        OpportunityId,
        LeadId,
        Source,
        Segment,
        Team,
        Rep,
        Campaign,
        AmountMinor,
        CurrencyCode,
        Expansion,
        AcceptPeriod,
        AcceptedAt,
        MeaningfulActivity,
        Closed,
    }

    #[derive(DeriveIden)]
    pub enum ReportingCurrencies {
        #[sea_orm(iden = "reporting_currencies")]
        Table,
        TenantId,
        CurrencyCode,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum ExchangeRates {
        #[sea_orm(iden = "exchange_rates")]
        Table,
        TenantId,
        Period,
        CurrencyCode,
        RateNanos,
        ReportingCode,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum FunnelRollups {
        #[sea_orm(iden = "funnel_rollups")]
        Table,
        TenantId,
        Grain,
        Period,
        Source,
        Segment,
        Team,
        Rep,
        Campaign,
        Figure,
        Value,
    }
}

/// All migrations, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(qualify_platform::idempotency::Migration),
            Box::new(M001Quotas),
            Box::new(M002Rollups),
            Box::new(qualify_platform::idempotency::SubjectColumn),
            Box::new(M003Currencies),
        ]
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
        use Quotas as Q;
        m.create_table(
            Table::create()
                .table(Quotas::Table)
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
        m.create_table(
            Table::create()
                .table(StreamCursors::Table)
                .col(text(StreamCursors::Stream).primary_key())
                .col(ColumnDef::new(StreamCursors::AppliedSequence).big_integer().not_null())
                .col(ColumnDef::new(StreamCursors::AppliedEvents).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create().table(ProcessedEvents::Table).col(text(ProcessedEvents::EventId).primary_key()).to_owned(),
        )
        .await?;
        use LeadFacts as L;
        m.create_table(
            Table::create()
                .table(LeadFacts::Table)
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
        use OpportunityFacts as O;
        m.create_table(
            Table::create()
                .table(OpportunityFacts::Table)
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
        use FunnelRollups as R;
        m.create_table(
            Table::create()
                .table(FunnelRollups::Table)
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

/// Money by currency, expansions apart, and contact reach: each opportunity's
/// currency and whether it is an expansion, the tenants' reporting currencies
/// and exchange rates, each lead's contact and what providers found of it. Earlier roll-ups summed amounts of every currency into one figure
/// and counted expansions as SQOs, which cannot be taken apart: they, the
/// facts and the cursors are cleared, so ingestion replays both streams from
/// their start.
pub struct M003Currencies;

impl MigrationName for M003Currencies {
    fn name(&self) -> &str {
        "m20261204_000003_currencies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M003Currencies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use OpportunityFacts as O;
        m.alter_table(
            Table::alter()
                .table(O::Table)
                .add_column(ColumnDef::new(O::CurrencyCode).string().not_null().default(""))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(O::Table)
                .add_column(ColumnDef::new(O::Expansion).boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        for column in [LeadFacts::ContactId, LeadFacts::Reach] {
            m.alter_table(
                Table::alter()
                    .table(LeadFacts::Table)
                    .add_column(ColumnDef::new(column).string().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        }
        use ContactFacts as K;
        m.create_table(
            Table::create()
                .table(K::Table)
                .col(text(K::TenantId))
                .col(text(K::ContactId))
                .col(text(K::EmailStatus))
                .col(text(K::PhoneStatus))
                .col(text(K::LeadIds))
                .primary_key(Index::create().col(K::TenantId).col(K::ContactId))
                .to_owned(),
        )
        .await?;
        use ReportingCurrencies as C;
        m.create_table(
            Table::create()
                .table(C::Table)
                .col(text(C::TenantId).primary_key())
                .col(text(C::CurrencyCode))
                .col(ColumnDef::new(C::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        use ExchangeRates as X;
        m.create_table(
            Table::create()
                .table(X::Table)
                .col(text(X::TenantId))
                .col(text(X::Period))
                .col(text(X::CurrencyCode))
                .col(ColumnDef::new(X::RateNanos).big_integer().not_null())
                .col(text(X::ReportingCode))
                .col(ColumnDef::new(X::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(X::TenantId).col(X::Period).col(X::CurrencyCode))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        for table in ["funnel_rollups", "lead_facts", "opportunity_facts", "processed_events", "stream_cursors"] {
            // contact_facts is new, and empty.
            db.execute_unprepared(&format!("DELETE FROM {table}")).await?;
        }
        Ok(())
    }
}
