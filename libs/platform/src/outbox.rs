//! The transactional outbox: an event is appended in the same transaction as
//! the change it describes, so it exists exactly when the change does.
//!
//! Rows get their stream position (`seq`) from a relay after they commit, in
//! the order the relay sees them: a consumer reading `seq > cursor` can never
//! skip an event whose transaction committed late, as it could with an
//! auto-increment id. On PostgreSQL one relay at a time holds an advisory
//! lock, so replicas never hand out the same position twice.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, TransactionTrait,
};
use sea_orm_migration::prelude::*;
use tokio::sync::Notify;

/// The outbox table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Insertion id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Stream position, assigned by the relay after commit.
        pub seq: Option<i64>,
        /// Unique event id; consumers deduplicate on it.
        pub event_id: String,
        /// Tenant of the event.
        pub tenant_id: String,
        /// Encoded event.
        pub payload: Vec<u8>,
        /// When it was appended.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migration creating the outbox; services that publish events include it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use entity::Column as C;
        m.create_table(
            Table::create()
                .table(entity::Entity)
                .if_not_exists()
                .col(ColumnDef::new(C::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(C::Seq).big_integer().null().unique_key())
                .col(ColumnDef::new(C::EventId).string().not_null().unique_key())
                .col(ColumnDef::new(C::TenantId).string().not_null())
                .col(ColumnDef::new(C::Payload).blob().not_null())
                .col(ColumnDef::new(C::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_outbox_tenant_seq")
                .table(entity::Entity)
                .col(C::TenantId)
                .col(C::Seq)
                .to_owned(),
        )
        .await
    }
}

/// An index of the events still waiting for a position, so the relay finds
/// them without walking the whole history (on PostgreSQL an ordered index scan
/// also learns to skip the entries of rows already stamped).
pub struct UnstampedIndex;

impl MigrationName for UnstampedIndex {
    fn name(&self) -> &str {
        "m20261123_000001_outbox_unstamped"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for UnstampedIndex {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("CREATE INDEX IF NOT EXISTS idx_outbox_unstamped ON outbox (id) WHERE seq IS NULL")
            .await
            .map(|_| ())
    }
}

/// The migration adding the stamping function (PostgreSQL): the relay's lock
/// and its update in one round trip. Services that publish events include it.
pub struct StampFunction;

impl MigrationName for StampFunction {
    fn name(&self) -> &str {
        "m20261123_000003_outbox_stamp_function"
    }
}

/// Stamps at most `lim` events; 0 when another replica holds the relay's lock.
/// A VOLATILE function: its UPDATE takes its snapshot after the lock is held,
/// so it sees every position the previous holder handed out.
const STAMP_FUNCTION: &str = "CREATE OR REPLACE FUNCTION qualify_outbox_stamp(lim integer) RETURNS bigint \
    LANGUAGE plpgsql VOLATILE AS $$ \
    DECLARE n bigint; \
    BEGIN \
      IF NOT pg_try_advisory_xact_lock(hashtext('qualify-outbox-relay')) THEN RETURN 0; END IF; \
      UPDATE outbox SET seq = m.base + r.rn \
        FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM outbox WHERE seq IS NULL ORDER BY id LIMIT lim) AS r, \
             (SELECT COALESCE(MAX(seq), 0) AS base FROM outbox) AS m \
        WHERE outbox.id = r.id; \
      GET DIAGNOSTICS n = ROW_COUNT; \
      RETURN n; \
    END $$";

#[async_trait::async_trait]
impl MigrationTrait for StampFunction {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        m.get_connection().execute_unprepared(STAMP_FUNCTION).await.map(|_| ())
    }
}

/// Appends events `(event id, encoded event)` inside the caller's transaction, in one statement.
pub async fn append(
    txn: &impl ConnectionTrait,
    tenant: &str,
    events: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<(), DbErr> {
    let now = crate::Clock::system().now(); // when it was written, for retention
    let rows = events.into_iter().map(|(event_id, payload)| entity::ActiveModel {
        seq: Set(None),
        event_id: Set(event_id),
        tenant_id: Set(tenant.to_string()),
        payload: Set(payload),
        created_at: Set(now),
        ..Default::default()
    });
    entity::Entity::insert_many(rows).exec_without_returning(txn).await?;
    Ok(())
}

/// Gives committed, unpositioned events their stream positions, oldest first;
/// returns how many. Safe to call from every replica at once.
pub async fn stamp(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        // One round trip: the lock, the update and the commit (see [`StampFunction`]).
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                "SELECT qualify_outbox_stamp($1) AS n",
                [(STAMP_BATCH as i32).into()],
            ))
            .await?;
        let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
        return Ok(<u64 as TryFrom<i64>>::try_from(n).unwrap_or(0));
    }
    let txn = db.begin().await?;
    let sql = format!(
        "UPDATE outbox SET seq = m.base + r.rn \
         FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM outbox WHERE seq IS NULL ORDER BY id LIMIT {STAMP_BATCH}) AS r, \
              (SELECT COALESCE(MAX(seq), 0) AS base FROM outbox) AS m \
         WHERE outbox.id = r.id"
    );
    let done = txn.execute_raw(Statement::from_string(backend, sql)).await?;
    txn.commit().await?;
    Ok(done.rows_affected())
}

/// Most events one stamping positions.
const STAMP_BATCH: u64 = 5000;

/// Events after `after` in stream order, for one tenant or (with `None`) all.
pub async fn read_after(
    db: &impl ConnectionTrait,
    tenant: Option<&str>,
    after: i64,
    limit: u64,
) -> Result<Vec<entity::Model>, DbErr> {
    let mut q = entity::Entity::find().filter(entity::Column::Seq.gt(after));
    if let Some(t) = tenant {
        q = q.filter(entity::Column::TenantId.eq(t));
    }
    q.order_by_asc(entity::Column::Seq).limit(limit).all(db).await
}

/// How long stamped events are kept, and how often old ones are pruned.
#[derive(Clone)]
pub struct Pruning {
    /// Events stamped and written longer ago than this are pruned; `None` keeps them.
    pub keep: Option<chrono::Duration>,
    /// How often the relay prunes.
    pub every: Duration,
    /// The clock the retention is measured by.
    pub clock: crate::Clock,
}

impl Pruning {
    /// The service's retention (`QUALIFY_OUTBOX_RETENTION_DAYS`, 0: for ever),
    /// pruned as often as idempotency keys are purged.
    pub fn from_config(config: &crate::ServiceConfig) -> Self {
        let days = config.outbox_retention_days;
        Pruning {
            keep: (days > 0).then(|| chrono::Duration::days(i64::from(days))),
            every: config.idempotency_purge_every,
            clock: config.clock.clone(),
        }
    }
}

/// Deletes stamped events written before `cutoff`; returns how many. The
/// newest stamped event always stays, so positions keep counting from it.
pub async fn prune(db: &impl ConnectionTrait, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    let newest = entity::Entity::find()
        .filter(entity::Column::Seq.is_not_null())
        .order_by_desc(entity::Column::Seq)
        .one(db)
        .await?
        .and_then(|m| m.seq);
    let Some(newest) = newest else { return Ok(0) };
    let done = entity::Entity::delete_many()
        .filter(entity::Column::Seq.lt(newest))
        .filter(entity::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// The first position still kept, when events before it were pruned: a
/// reader asking for events after an earlier position would miss some.
async fn pruned_before(db: &impl ConnectionTrait) -> Result<Option<i64>, DbErr> {
    let first = entity::Entity::find()
        .filter(entity::Column::Seq.is_not_null())
        .order_by_asc(entity::Column::Seq)
        .one(db)
        .await?
        .and_then(|m| m.seq);
    Ok(first.filter(|s| *s > 1))
}

/// A running relay: nudge it after a commit that appended events.
#[derive(Clone, Default)]
pub struct Relay {
    nudge: Arc<Notify>,
    stamped: Arc<Notify>,
    draining: crate::serve::Draining,
}

impl Relay {
    /// Starts the relay loop over `db`: it stamps when nudged and at least
    /// every 200 ms, and prunes as `pruning` says. Followed [`stream`]s end
    /// when the server is `draining`.
    pub fn spawn(db: DatabaseConnection, draining: crate::serve::Draining, pruning: Pruning) -> Self {
        let relay = Relay { draining, ..Relay::default() };
        let r = relay.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            let mut last_prune: Option<tokio::time::Instant> = None;
            loop {
                match stamp(&db).await {
                    Ok(n) => {
                        failures = 0;
                        if n > 0 {
                            r.stamped.notify_waiters();
                        }
                        if n == STAMP_BATCH {
                            continue; // there may be more; a nudge since the last stamping is kept
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(50) {
                            tracing::warn!(error = %e, failures, "outbox relay cannot stamp events");
                        }
                    }
                }
                if let Some(keep) = pruning.keep
                    && last_prune.is_none_or(|t| t.elapsed() >= pruning.every)
                {
                    last_prune = Some(tokio::time::Instant::now());
                    match prune(&db, pruning.clock.now() - keep).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(events = n, "outbox events past their retention pruned"),
                        Err(e) => tracing::warn!(error = %e, "outbox events not pruned"),
                    }
                }
                tokio::select! {
                    _ = r.nudge.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        relay
    }

    /// Tells the relay new events were committed.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Waits until the relay stamps something, or `max` passes.
    pub async fn wait_stamped(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.stamped.notified()).await;
    }
}

pub use qualify_domain::permission::SYSTEM_TENANT;

/// Who may read an event stream, and whose events: service accounts only; a
/// service account of [`SYSTEM_TENANT`] reads every tenant (`None`), any other
/// its own tenant.
pub fn stream_scope(caller: &qualify_domain::Caller, after_sequence: i64) -> Result<Option<String>, crate::ApiError> {
    let scope = qualify_domain::permission::read_event_stream(caller)?;
    let mut v = crate::Violations::new();
    v.check(after_sequence >= 0, "after_sequence", "must not be negative");
    v.finish()?;
    Ok(scope)
}

/// Streams committed events after `after` in stream order, following new ones
/// when `follow`. `decode` turns a payload and its position into the
/// service's message; an undecodable row is logged and skipped. The stream
/// ends when the receiver is dropped, and a followed one with UNAVAILABLE
/// when the server drains (the follower resumes after its last position).
pub fn stream<T, D>(
    db: DatabaseConnection,
    relay: Relay,
    tenant: Option<String>,
    after: i64,
    follow: bool,
    error_domain: &'static str,
    decode: D,
) -> tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>
where
    T: Send + 'static,
    D: Fn(&[u8], i64) -> Option<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let mut draining = relay.draining.clone();
    tokio::spawn(async move {
        let mut cursor = after;
        match pruned_before(&db).await {
            Ok(Some(first)) if cursor < first - 1 => {
                let status = tonic::Status::out_of_range(format!(
                    "events up to sequence {} are past their retention (QUALIFY_OUTBOX_RETENTION_DAYS) and pruned; \
                     resume after sequence {} to skip them",
                    first - 1,
                    first - 1
                ));
                let _ = tx.send(Err(status)).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(crate::ApiError::from(e).into_status(error_domain))).await;
                return;
            }
        }
        loop {
            let rows = match read_after(&db, tenant.as_deref(), cursor, 500).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(crate::ApiError::from(e).into_status(error_domain))).await;
                    return;
                }
            };
            if rows.is_empty() {
                if !follow {
                    return;
                }
                tokio::select! {
                    _ = relay.wait_stamped(Duration::from_millis(250)) => {}
                    _ = tx.closed() => return,
                    _ = draining.started() => {
                        let status = tonic::Status::unavailable(format!(
                            "the server is draining; resume after sequence {cursor}"
                        ));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                continue;
            }
            for row in rows {
                let seq = row.seq.unwrap_or_default();
                cursor = seq;
                let Some(item) = decode(&row.payload, seq) else {
                    tracing::error!(seq, "undecodable outbox event skipped");
                    continue;
                };
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}
