//! M007: signals keyed by tenant, id and time, and on PostgreSQL partitioned
//! by month of `occurred_at`, so a retention drops whole months.
//!
//! A partitioned table's primary key must include the partition column, so a
//! signal is identified by its id and the time it occurred: a replay (same id,
//! same time) is still a duplicate; an id sent again with another time is
//! another signal. SQLite takes the same key, so both backends answer alike.
//! The rows are copied into the new table; partitions cover every month from
//! the oldest signal through three months ahead (the service's maintenance
//! pass, before it serves, adds the months or the partition for anything
//! older that its retention calls for).

use qualify_platform::partition;
use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::frozen::Signals;

/// The signals table's partitioning, as this migration made it.
const SIGNALS: partition::Monthly = partition::Monthly { table: "signals", column: "occurred_at" };

/// The signals table rebuilt with its new key, partitioned on PostgreSQL.
pub struct M007SignalPartitions;

impl MigrationName for M007SignalPartitions {
    fn name(&self) -> &str {
        "m20261206_000007_signal_partitions"
    }
}

/// Where the rows wait while the new table is made.
const OLD: &str = "signals_m007";

const COLUMNS: &str = "tenant_id, signal_id, lead_id, account_id, contact_id, kind, occurred_at, received_at";

#[async_trait::async_trait]
impl MigrationTrait for M007SignalPartitions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use Signals as S;
        let db = m.get_connection();
        let pg = m.get_database_backend() == DbBackend::Postgres;
        // Index and constraint names are per schema: the old ones make way.
        for index in ["idx_signals_lead", "idx_signals_account"] {
            m.drop_index(Index::drop().name(index).table(S::Table).to_owned()).await?;
        }
        db.execute_unprepared(&format!("ALTER TABLE signals RENAME TO {OLD}")).await?;
        if pg {
            db.execute_unprepared(&format!("ALTER TABLE {OLD} RENAME CONSTRAINT signals_pkey TO {OLD}_pkey")).await?;
        }
        let mut table = Table::create();
        table
            .table(S::Table)
            .col(ColumnDef::new(S::TenantId).string().not_null())
            .col(ColumnDef::new(S::SignalId).string().not_null())
            .col(ColumnDef::new(S::LeadId).string().not_null())
            .col(ColumnDef::new(S::AccountId).string().not_null())
            .col(ColumnDef::new(S::ContactId).string().null())
            .col(ColumnDef::new(S::Kind).string().not_null())
            .col(ColumnDef::new(S::OccurredAt).timestamp_with_time_zone().not_null())
            .col(ColumnDef::new(S::ReceivedAt).timestamp_with_time_zone().not_null())
            .primary_key(Index::create().col(S::TenantId).col(S::SignalId).col(S::OccurredAt));
        if pg {
            table.extra("PARTITION BY RANGE (occurred_at)");
        }
        m.create_table(table.to_owned()).await?;
        if pg {
            let oldest = db
                .query_one_raw(sea_orm::Statement::from_string(
                    DbBackend::Postgres,
                    format!("SELECT min(occurred_at) AS oldest FROM {OLD}"),
                ))
                .await?
                .map(|r| r.try_get::<Option<chrono::DateTime<chrono::Utc>>>("", "oldest"))
                .transpose()?
                .flatten();
            // The months the rows need; the service's first pass (on its own clock) adds what
            // its retention needs. A migration has no injected clock: the system's is the one.
            let now = qualify_platform::Clock::system().now();
            SIGNALS.cover(db, oldest.map(partition::Month::of), now, false).await?;
        }
        db.execute_unprepared(&format!("INSERT INTO signals ({COLUMNS}) SELECT {COLUMNS} FROM {OLD}")).await?;
        db.execute_unprepared(&format!("DROP TABLE {OLD}")).await?;
        for (name, by) in [("idx_signals_lead", S::LeadId), ("idx_signals_account", S::AccountId)] {
            m.create_index(
                Index::create().name(name).table(S::Table).col(by).col(S::TenantId).col(S::OccurredAt).to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
