//! Database connections and migrations for both backends: SQLite (the
//! embedded default) and PostgreSQL (production), through sea-orm.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::config::ServiceConfig;

/// Whether `e` is a unique-key violation: the row (or key) already exists.
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Lower-case SQL identifiers only: schema names are interpolated into DDL.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Connects to the service's database. On PostgreSQL the service's schema is
/// created if needed and put first on the search path; on SQLite the file's
/// directory is created and writes are made durable (WAL, synchronous=FULL).
pub async fn connect(config: &ServiceConfig) -> anyhow::Result<DatabaseConnection> {
    connect_url(&config.database_url, config.database_schema.as_deref(), config.database_max_connections).await
}

/// [`connect`] with explicit settings.
pub async fn connect_url(url: &str, schema: Option<&str>, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .max_connections(max_connections)
        .min_connections(1)
        // A ping on every checkout costs a round trip per transaction; only a
        // connection that sat idle (and may have been cut) is checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        if let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // One connection serialises writers, so transactions never race for
        // SQLite's single write lock (and in-memory databases stay one database).
        opts.max_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
        });
    } else if let Some(schema) = schema {
        anyhow::ensure!(is_identifier(schema), "schema {schema:?} is not a lower-case identifier");
        let admin = Database::connect(ConnectOptions::new(url.to_string()).sqlx_logging(false).to_owned())
            .await
            .context("connecting to PostgreSQL")?;
        // CREATE SCHEMA IF NOT EXISTS races with itself (a unique violation in
        // pg_namespace) when replicas start together: serialise it.
        let txn = admin.begin().await?;
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("qualify-schema-{schema}").into()],
        ))
        .await?;
        txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
        txn.commit().await?;
        admin.close().await?;
        opts.set_schema_search_path(schema.to_string());
    }
    let db = Database::connect(opts).await.with_context(|| format!("connecting to {}", redact(url)))?;
    Ok(db)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && !path.starts_with(':')).then_some(path)
}

/// A URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Applies pending migrations. On PostgreSQL they run inside one transaction
/// holding an advisory lock, so replicas or Jobs started together never run
/// them twice (sea-orm has no migration lock of its own).
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection, lock_name: &str) -> anyhow::Result<()> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                [format!("qualify-migrate-{lock_name}").into()],
            ))
            .await?;
            M::up(&txn, None).await.context("running migrations")?;
            txn.commit().await?;
        }
        _ => M::up(db, None).await.context("running migrations")?,
    }
    Ok(())
}

/// A migration rebuilding secondary indexes with new column orders.
///
/// Every table's primary key starts with `tenant_id`. A secondary index that
/// also starts with it competes with the key for a lookup by id: while a table
/// is new and nearly empty both look like one-row scans, and a prepared
/// statement's generic plan, fixed then, can keep using the secondary index as
/// the table grows, reading all of a tenant's rows for each lookup (seen:
/// opportunities, leads and contacts). Indexes that lead with the column they
/// discriminate on (an account, a lead, a state) serve their queries as well
/// (equality on both leading columns) and give the key no rival.
pub struct Reindex {
    /// Migration name.
    pub name: &'static str,
    /// (index, table, columns in their new order).
    pub indexes: &'static [(&'static str, &'static str, &'static [&'static str])],
}

impl sea_orm_migration::MigrationName for Reindex {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Reindex {
    async fn up(&self, m: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::prelude::{Alias, Index};
        for (name, table, columns) in self.indexes {
            m.drop_index(Index::drop().name(*name).table(Alias::new(*table)).if_exists().to_owned()).await?;
            let mut create = Index::create();
            create.name(*name).table(Alias::new(*table));
            for c in *columns {
                create.col(Alias::new(*c));
            }
            m.create_index(create).await?;
        }
        Ok(())
    }
}

/// A PostgreSQL `text[]` parameter (for `unnest`: one parameter per column, whatever the rows).
pub fn text_array(values: impl IntoIterator<Item = String>) -> sea_orm::Value {
    array(sea_orm::sea_query::ArrayType::String, values.into_iter().map(sea_orm::Value::from))
}

/// A PostgreSQL `timestamptz[]` parameter.
pub fn time_array(values: impl IntoIterator<Item = chrono::DateTime<chrono::Utc>>) -> sea_orm::Value {
    array(sea_orm::sea_query::ArrayType::ChronoDateTimeUtc, values.into_iter().map(sea_orm::Value::from))
}

fn array(kind: sea_orm::sea_query::ArrayType, values: impl Iterator<Item = sea_orm::Value>) -> sea_orm::Value {
    sea_orm::Value::Array(kind, Some(Box::new(values.collect())))
}

/// A trace span for a database query or transaction on `db`, named by
/// `operation`: traces show the database as a client call of the RPC.
pub fn span(db: &impl ConnectionTrait, operation: &str) -> tracing::Span {
    let system = match db.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    };
    tracing::info_span!("db", otel.name = %operation, otel.kind = "client", db.system = system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_redaction() {
        assert!(is_identifier("scoring_test_1"));
        assert!(!is_identifier("Scoring"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a\"b"));
        assert_eq!(redact("postgres://app:secret@db:5432/q"), "postgres://app:***@db:5432/q");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(sqlite_path("sqlite://data/x.db?mode=rwc"), Some("data/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
