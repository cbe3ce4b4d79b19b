//! M003: the packed per-lead signal log.

use sea_orm_migration::prelude::*;

use qualify_domain::scoring::signal_log;

/// The packed per-lead signal log, filled from the signals already stored.
pub struct M003SignalLog;

impl MigrationName for M003SignalLog {
    fn name(&self) -> &str {
        "m20261123_000003_signal_log"
    }
}

/// The tables as M003 found them: a migration names its own columns and
/// queries, so later changes to the service's entities or use cases never
/// change what it did.
#[derive(DeriveIden)]
enum M003Leads {
    #[sea_orm(iden = "leads")]
    Table,
    TenantId,
    LeadId,
    SignalLog,
}

#[derive(DeriveIden)]
enum M003Signals {
    #[sea_orm(iden = "signals")]
    Table,
    TenantId,
    LeadId,
    Kind,
    OccurredAt,
}

/// Signals a log kept per lead when M003 ran.
const M003_MAX_SIGNALS: u64 = 5000;

#[async_trait::async_trait]
impl MigrationTrait for M003SignalLog {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use chrono::{DateTime, Utc};
        use qualify_domain::scoring::{Signal, SignalType};
        m.alter_table(
            Table::alter()
                .table(M003Leads::Table)
                .add_column(ColumnDef::new(M003Leads::SignalLog).blob().null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // Every lead, a page at a time in key order; its newest signals packed into its log.
        let mut after: Option<(String, String)> = None;
        loop {
            let mut page = Query::select();
            page.columns([M003Leads::TenantId, M003Leads::LeadId])
                .from(M003Leads::Table)
                .order_by(M003Leads::TenantId, Order::Asc)
                .order_by(M003Leads::LeadId, Order::Asc)
                .limit(500);
            if let Some((t, l)) = &after {
                page.cond_where(
                    Cond::any().add(Expr::col(M003Leads::TenantId).gt(t.as_str())).add(
                        Cond::all()
                            .add(Expr::col(M003Leads::TenantId).eq(t.as_str()))
                            .add(Expr::col(M003Leads::LeadId).gt(l.as_str())),
                    ),
                );
            }
            let leads = db.query_all(&page).await?;
            let Some(last) = leads.last() else { return Ok(()) };
            after = Some((last.try_get("", "tenant_id")?, last.try_get("", "lead_id")?));
            for row in &leads {
                let (tenant, lead): (String, String) = (row.try_get("", "tenant_id")?, row.try_get("", "lead_id")?);
                let q = Query::select()
                    .columns([M003Signals::Kind, M003Signals::OccurredAt])
                    .from(M003Signals::Table)
                    .and_where(Expr::col(M003Signals::TenantId).eq(tenant.as_str()))
                    .and_where(Expr::col(M003Signals::LeadId).eq(lead.as_str()))
                    .order_by(M003Signals::OccurredAt, Order::Desc)
                    .limit(M003_MAX_SIGNALS)
                    .to_owned();
                let mut signals = Vec::new();
                for s in db.query_all(&q).await? {
                    let kind: String = s.try_get("", "kind")?;
                    let occurred_at: DateTime<Utc> = s.try_get("", "occurred_at")?;
                    if let Some(kind) = SignalType::parse(&kind) {
                        signals.push(Signal { kind, occurred_at });
                    }
                }
                if signals.is_empty() {
                    continue;
                }
                let log = signal_log::encode(&signals, M003_MAX_SIGNALS as usize);
                let update = Query::update()
                    .table(M003Leads::Table)
                    .value(M003Leads::SignalLog, log)
                    .and_where(Expr::col(M003Leads::TenantId).eq(tenant.as_str()))
                    .and_where(Expr::col(M003Leads::LeadId).eq(lead.as_str()))
                    .to_owned();
                db.execute(&update).await?;
            }
        }
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(M003Leads::Table).drop_column(M003Leads::SignalLog).to_owned()).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use qualify_domain::scoring::{Signal, SignalType};
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use super::*;
    use crate::store::migration::Migrator;

    /// Migrations applied before M003.
    const BEFORE_M003: u32 = 4;

    async fn exec(db: &DatabaseConnection, sql: &str) {
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Leads and signals stored by the schema before M003; after it, each
    /// lead's log holds its signals, newest first, and nothing else changed.
    async fn signal_logs_are_filled_from_the_stored_signals(db: DatabaseConnection) {
        let steps = Migrator::migrations().iter().take_while(|m| m.name() != M003SignalLog.name()).count();
        assert_eq!(steps as u32, BEFORE_M003);
        Migrator::up(&db, Some(BEFORE_M003)).await.unwrap();
        let t0: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
        exec(&db, "INSERT INTO accounts (tenant_id, account_id, display_name, industry, employee_count, revenue_band, region, segment, version, created_at, updated_at) VALUES ('t', 'a', 'A', 'saas', 10, '', '', NULL, 1, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')").await;
        for (lead, score) in [("l-1", 10), ("l-2", 20)] {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                match db.get_database_backend() {
                    DbBackend::Postgres => "INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, score_total, created_at, updated_at) VALUES ('t', $1, 'a', 'inbound', '', '', 'new', $2, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')",
                    _ => "INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, score_total, created_at, updated_at) VALUES ('t', ?, 'a', 'inbound', '', '', 'new', ?, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')",
                },
                [lead.into(), score.into()],
            ))
            .await
            .unwrap();
        }
        let kinds = ["website_visit", "email_reply", "demo_request"];
        for (i, kind) in kinds.iter().enumerate() {
            let at = (t0 + Duration::hours(i as i64)).to_rfc3339();
            exec(&db, &format!("INSERT INTO signals (tenant_id, signal_id, lead_id, account_id, kind, occurred_at, received_at) VALUES ('t', 's-{i}', 'l-1', 'a', '{kind}', '{at}', '{at}')")).await;
        }
        Migrator::up(&db, None).await.unwrap();
        let log = |lead: &'static str| {
            let db = db.clone();
            async move {
                let row = db
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        format!("SELECT signal_log, score_total FROM leads WHERE lead_id = '{lead}'"),
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let log: Option<Vec<u8>> = row.try_get("", "signal_log").unwrap();
                let score: Option<i32> = row.try_get("", "score_total").unwrap();
                (log.map(|l| signal_log::decode(&l)), score)
            }
        };
        let want: Vec<Signal> = kinds
            .iter()
            .enumerate()
            .rev()
            .map(|(i, k)| Signal { kind: SignalType::parse(k).unwrap(), occurred_at: t0 + Duration::hours(i as i64) })
            .collect();
        assert_eq!(log("l-1").await, (Some(want), Some(10)));
        assert_eq!(log("l-2").await, (None, Some(20)), "a lead without signals keeps no log");
    }

    #[tokio::test]
    async fn signal_log_migration_on_sqlite() {
        let db = qualify_platform::db::connect_url("sqlite::memory:", None, 1).await.unwrap();
        signal_logs_are_filled_from_the_stored_signals(db).await;
    }

    #[tokio::test]
    async fn signal_log_migration_on_postgres() {
        let url = std::env::var("QUALIFY_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        // `t_<name>_<pid>_<random>`: the test schema sweep of other test processes keeps it while this one runs.
        let schema = format!("t_m003_{}_{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let db = qualify_platform::db::connect_url(&url, Some(&schema), 2)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required by this test: {e:#}"));
        signal_logs_are_filled_from_the_stored_signals(db.clone()).await;
        db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    }
}
