//! M006: the positions pipelines' signal streams have reached (one row per
//! tenant and stream, advanced in the transaction that ingests each batch), and
//! room on the leads' pages for in-place updates on PostgreSQL: ingestion
//! rewrites a lead row per batch that touches it, and with full pages every
//! rewrite moves the row and adds index entries.

use sea_orm_migration::prelude::*;

/// The `signal_streams` table; leads' fill factor.
pub struct M006SignalStreams;

impl MigrationName for M006SignalStreams {
    fn name(&self) -> &str {
        "m20261205_000006_signal_streams"
    }
}

#[derive(DeriveIden)]
enum SignalStreams {
    #[sea_orm(iden = "signal_streams")]
    Table,
    TenantId,
    StreamId,
    Position,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M006SignalStreams {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use SignalStreams as S;
        m.create_table(
            Table::create()
                .table(S::Table)
                .col(ColumnDef::new(S::TenantId).string().not_null())
                .col(ColumnDef::new(S::StreamId).string().not_null())
                .col(ColumnDef::new(S::Position).big_integer().not_null())
                .col(ColumnDef::new(S::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(S::TenantId).col(S::StreamId))
                .to_owned(),
        )
        .await?;
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Rows written from now on leave a third of each page free (HOT updates).
            m.get_connection().execute_unprepared("ALTER TABLE leads SET (fillfactor = 70)").await?;
        }
        Ok(())
    }
}
