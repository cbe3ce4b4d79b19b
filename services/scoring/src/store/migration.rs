//! Schema of lead scoring; runs unchanged on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

use qualify_domain::scoring::signal_log;

use crate::store::entity::{account, contact, lead, scorecard, signal, stage_change};

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
        let schema = format!("t_m003_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let db = qualify_platform::db::connect_url(&url, Some(&schema), 2)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required by this test: {e:#}"));
        signal_logs_are_filled_from_the_stored_signals(db.clone()).await;
        db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    }
}
