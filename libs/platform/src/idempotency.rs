//! Idempotent writes (AIP-155): the key `(tenant, method, request_id)` is
//! stored with the response inside the same transaction as the change
//! (`INSERT … ON CONFLICT DO NOTHING`). A replay returns the stored response;
//! the same key with another payload is refused.

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use prost::Message;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set, TransactionTrait,
    TryInsertResult,
};
use sea_orm_migration::prelude::*;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::error::ApiError;

/// The stored idempotency keys.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One claimed key with its response.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// Tenant of the caller.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// Full gRPC method name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub method: String,
        /// The client's key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// SHA-256 of the encoded request.
        pub request_hash: String,
        /// Encoded response.
        pub response: Vec<u8>,
        /// When the key was claimed.
        pub created_at: ChronoDateTimeUtc,
        /// Subject who claimed it (`None` for keys claimed before subjects were kept).
        pub subject: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How long keys are kept; retries within this window are safe.
pub const RETENTION_HOURS: i64 = 48;

/// The migration creating the key table; every service includes it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000000_idempotency_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(entity::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(entity::Column::TenantId).string().not_null())
                    .col(ColumnDef::new(entity::Column::Method).string().not_null())
                    .col(ColumnDef::new(entity::Column::RequestId).string().not_null())
                    .col(ColumnDef::new(entity::Column::RequestHash).string().not_null())
                    .col(ColumnDef::new(entity::Column::Response).blob().not_null())
                    .col(ColumnDef::new(entity::Column::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(entity::Column::TenantId)
                            .col(entity::Column::Method)
                            .col(entity::Column::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_idempotency_created")
                    .table(entity::Entity)
                    .col(entity::Column::CreatedAt)
                    .to_owned(),
            )
            .await
    }
}

/// Keys belong to the subject that claimed them: a migration adding the column.
pub struct SubjectColumn;

impl MigrationName for SubjectColumn {
    fn name(&self) -> &str {
        "m20261203_000010_idempotency_key_subject"
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Subject,
}

#[async_trait::async_trait]
impl MigrationTrait for SubjectColumn {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(ColumnDef::new(IdempotencyKeys::Subject).string().null())
                    .to_owned(),
            )
            .await
    }
}

/// Who is retrying what.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Caller's tenant.
    pub tenant: &'a str,
    /// gRPC method.
    pub method: &'a str,
    /// The client's key; empty means the call is not idempotent.
    pub request_id: &'a str,
    /// The caller: a key is theirs, and the same key from anyone else is refused.
    pub subject: &'a str,
}

/// Runs `work` in a transaction guarded by the idempotency key. With an empty
/// `request_id` it is a plain transaction.
///
/// The key is claimed, with the response, at the end of the same transaction
/// (`INSERT … ON CONFLICT DO NOTHING`): one statement on the common path. If
/// the key is already there (a replay, or a retry racing the first call),
/// this transaction's change is rolled back and the stored response returned,
/// or the call refused when the key came with another payload. If `work`
/// fails, a stored response for the key is returned instead of the error (a
/// replay of a call whose change makes it fail now, such as a second create);
/// otherwise nothing was stored and the call can be retried with the same key.
pub async fn run<Req, Resp, F>(db: &DatabaseConnection, key: Key<'_>, request: &Req, work: F) -> Result<Resp, ApiError>
where
    Req: Message,
    Resp: Message + Default,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Resp, ApiError>>,
{
    run_reporting(db, key, request, work).await.map(|(response, _)| response)
}

/// [`run`], also saying whether this call's own work was committed (`true`)
/// or a stored response was returned (`false`): count an effect only once.
pub async fn run_reporting<Req, Resp, F>(
    db: &DatabaseConnection,
    key: Key<'_>,
    request: &Req,
    work: F,
) -> Result<(Resp, bool), ApiError>
where
    Req: Message,
    Resp: Message + Default,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Resp, ApiError>>,
{
    let span = crate::db::span(db, &format!("transaction {}", key.method));
    run_traced(db, key, request, work).instrument(span).await
}

async fn run_traced<Req, Resp, F>(
    db: &DatabaseConnection,
    key: Key<'_>,
    request: &Req,
    work: F,
) -> Result<(Resp, bool), ApiError>
where
    Req: Message,
    Resp: Message + Default,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Resp, ApiError>>,
{
    let txn = db.begin().await?;
    let response = match work(&txn).await {
        Ok(r) => r,
        Err(e) => {
            txn.rollback().await?;
            return match stored(db, key).await? {
                Some(s) => replay(s, key, request).map(|r| (r, false)),
                None => Err(e),
            };
        }
    };
    if key.request_id.is_empty() {
        txn.commit().await?;
        return Ok((response, true));
    }
    let claim = entity::ActiveModel {
        tenant_id: Set(key.tenant.to_string()),
        method: Set(key.method.to_string()),
        request_id: Set(key.request_id.to_string()),
        request_hash: Set(hash(request)),
        response: Set(response.encode_to_vec()),
        // When the key was claimed, for its retention: wall time, whatever clock the service runs on.
        created_at: Set(crate::Clock::system().now()),
        subject: Set(Some(key.subject.to_string())),
    };
    let inserted = entity::Entity::insert(claim).on_conflict_do_nothing().exec_without_returning(&txn).await?;
    if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        txn.commit().await?;
        return Ok((response, true));
    }
    txn.rollback().await?;
    let s = stored(db, key).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("idempotency key vanished")))?;
    replay(s, key, request).map(|r| (r, false))
}

fn hash(request: &impl Message) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}

/// The answer already stored for `key`, when `request` is a retry of the call that stored it:
/// for handlers that check something before [`run`] (a call to another service, a state
/// read), so a retry gets the first answer even though those checks would now fail.
pub async fn replayed<Resp: Message + Default>(
    db: &DatabaseConnection,
    key: Key<'_>,
    request: &impl Message,
) -> Result<Option<Resp>, ApiError> {
    match stored(db, key).await? {
        Some(s) => replay(s, key, request).map(Some),
        None => Ok(None),
    }
}

async fn stored(db: &DatabaseConnection, key: Key<'_>) -> Result<Option<entity::Model>, ApiError> {
    if key.request_id.is_empty() {
        return Ok(None);
    }
    let id = (key.tenant.to_string(), key.method.to_string(), key.request_id.to_string());
    Ok(entity::Entity::find_by_id(id).one(db).await?)
}

/// The stored response, if `request` is the call that stored it, from the
/// caller who stored it: another subject's retry is refused and learns nothing.
fn replay<Resp: Message + Default>(
    stored: entity::Model,
    key: Key<'_>,
    request: &impl Message,
) -> Result<Resp, ApiError> {
    let theirs = stored.subject.as_deref().is_some_and(|s| s != key.subject);
    if theirs || stored.request_hash != hash(request) {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Resp::decode(stored.response.as_slice()).map_err(|e| ApiError::Internal(e.into()))
}

/// Deletes expired keys every `every`, by `clock`, until aborted: keys are
/// kept [`RETENTION_HOURS`] and no longer (a retry after that runs anew).
pub fn spawn_purger(
    db: DatabaseConnection,
    clock: crate::Clock,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match purge_expired(&db, clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "expired idempotency keys purged"),
                Err(e) => tracing::warn!(error = %e, "expired idempotency keys not purged"),
            }
        }
    })
}

/// Deletes keys older than the retention window; returns how many.
pub async fn purge_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let cutoff = now - Duration::hours(RETENTION_HOURS);
    let r = entity::Entity::delete_many().filter(entity::Column::CreatedAt.lt(cutoff)).exec(db).await?;
    Ok(r.rows_affected)
}
