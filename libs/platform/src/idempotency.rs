//! Idempotent writes (AIP-155): the key `(tenant, method, request_id)` is
//! claimed with `INSERT … ON CONFLICT DO NOTHING` inside the same transaction
//! as the change, and the response is stored with it. A replay returns the
//! stored response; the same key with another payload is refused.

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use prost::Message;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set, TransactionTrait,
    TryInsertResult,
};
use sea_orm_migration::prelude::*;
use sha2::{Digest, Sha256};

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

/// Who is retrying what.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Caller's tenant.
    pub tenant: &'a str,
    /// gRPC method.
    pub method: &'a str,
    /// The client's key; empty means the call is not idempotent.
    pub request_id: &'a str,
}

/// Runs `work` in a transaction guarded by the idempotency key. With an empty
/// `request_id` it is a plain transaction. An error rolls back the change and
/// the claim together, so a failed call can be retried with the same key.
pub async fn run<Req, Resp, F>(db: &DatabaseConnection, key: Key<'_>, request: &Req, work: F) -> Result<Resp, ApiError>
where
    Req: Message,
    Resp: Message + Default,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Resp, ApiError>>,
{
    let txn = db.begin().await?;
    let hash = hex::encode(Sha256::digest(request.encode_to_vec()));
    if !key.request_id.is_empty() {
        let claim = entity::ActiveModel {
            tenant_id: Set(key.tenant.to_string()),
            method: Set(key.method.to_string()),
            request_id: Set(key.request_id.to_string()),
            request_hash: Set(hash.clone()),
            response: Set(Vec::new()),
            created_at: Set(Utc::now()),
        };
        let inserted = entity::Entity::insert(claim).on_conflict_do_nothing().exec_without_returning(&txn).await?;
        if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            let stored = entity::Entity::find_by_id((
                key.tenant.to_string(),
                key.method.to_string(),
                key.request_id.to_string(),
            ))
            .one(&txn)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("idempotency key vanished")))?;
            if stored.request_hash != hash {
                return Err(ApiError::IdempotencyKeyReused);
            }
            return Resp::decode(stored.response.as_slice()).map_err(|e| ApiError::Internal(e.into()));
        }
    }
    let response = work(&txn).await?;
    if !key.request_id.is_empty() {
        entity::Entity::update_many()
            .col_expr(entity::Column::Response, Expr::value(response.encode_to_vec()))
            .filter(entity::Column::TenantId.eq(key.tenant))
            .filter(entity::Column::Method.eq(key.method))
            .filter(entity::Column::RequestId.eq(key.request_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(response)
}

/// Deletes keys older than the retention window; returns how many.
pub async fn purge_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let cutoff = now - Duration::hours(RETENTION_HOURS);
    let r = entity::Entity::delete_many().filter(entity::Column::CreatedAt.lt(cutoff)).exec(db).await?;
    Ok(r.rows_affected)
}
