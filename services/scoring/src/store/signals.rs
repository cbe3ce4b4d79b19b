//! The `signals` table (the record of every signal, deduplicated by the
//! client's id and the time it occurred; partitioned by month on PostgreSQL)
//! and the packed signal log each lead row carries, read and written in
//! domain types.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use qualify_domain::RecordedSignal;
use qualify_domain::scoring::{Signal, SignalType};
use qualify_platform::{ApiError, db, partition};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    Set, Statement, TryInsertResult,
};

use tracing::Instrument;

use super::entity::{signal, signal_stream};

/// Signals per insert statement on SQLite: 8 bound values each, far below its limit.
const INSERT_CHUNK: usize = 500;

/// The table's monthly partitions on PostgreSQL.
pub const PARTITIONS: partition::Monthly = partition::Monthly { table: "signals", column: "occurred_at" };

/// A signal's identity: its id and when it occurred (a replay repeats both).
pub type SignalKey = (String, DateTime<Utc>);

/// Records `signals` (distinct keys) and returns the keys it recorded: the
/// others were recorded before (duplicates). One statement on PostgreSQL (the
/// columns bound as arrays and unnested), one multi-row insert per chunk on SQLite.
pub async fn insert_new<'a>(
    db: &impl ConnectionTrait,
    tenant: &str,
    signals: impl Iterator<Item = &'a RecordedSignal>,
) -> Result<HashSet<SignalKey>, ApiError> {
    let signals: Vec<&RecordedSignal> = signals.collect();
    if signals.is_empty() {
        return Ok(HashSet::new());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return insert_unnested(db, tenant, &signals).await;
    }
    let rows: Vec<signal::ActiveModel> = signals
        .iter()
        .map(|s| signal::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            signal_id: Set(s.signal_id.clone()),
            lead_id: Set(s.lead_id.clone()),
            account_id: Set(s.account_id.clone()),
            contact_id: Set(s.contact_id.clone()),
            kind: Set(s.signal.kind.as_str().to_string()),
            occurred_at: Set(s.signal.occurred_at),
            received_at: Set(s.received_at),
        })
        .collect();
    let mut inserted = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let keys = signal::Entity::insert_many(chunk.to_vec())
            .on_conflict_do_nothing()
            .exec_with_returning_keys(db)
            .instrument(db::span(db, "INSERT signals"))
            .await?;
        if let TryInsertResult::Inserted(keys) = keys {
            inserted.extend(keys.into_iter().map(|(_, signal_id, occurred_at)| (signal_id, occurred_at)));
        }
    }
    Ok(inserted)
}

/// [`insert_new`] on PostgreSQL: eight parameters whatever the batch's size, so
/// the statement is parsed and planned once and binding costs one array per column.
async fn insert_unnested(
    db: &impl ConnectionTrait,
    tenant: &str,
    signals: &[&RecordedSignal],
) -> Result<HashSet<SignalKey>, ApiError> {
    let strings = |f: &dyn Fn(&RecordedSignal) -> String| db::text_array(signals.iter().map(|s| f(s)));
    let values = vec![
        tenant.into(),
        strings(&|s| s.signal_id.clone()),
        strings(&|s| s.lead_id.clone()),
        strings(&|s| s.account_id.clone()),
        // A contact id is never empty (it is a resource id): empty stands for none.
        strings(&|s| s.contact_id.clone().unwrap_or_default()),
        strings(&|s| s.signal.kind.as_str().to_string()),
        db::time_array(signals.iter().map(|s| s.signal.occurred_at)),
        db::time_array(signals.iter().map(|s| s.received_at)),
    ];
    let sql = "INSERT INTO signals (tenant_id, signal_id, lead_id, account_id, contact_id, kind, occurred_at, received_at) \
               SELECT $1, u.s, u.l, u.a, NULLIF(u.c, ''), u.k, u.o, u.r \
               FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], \
                           $8::timestamptz[]) AS u(s, l, a, c, k, o, r) \
               ON CONFLICT DO NOTHING RETURNING signal_id, occurred_at";
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .instrument(db::span(db, "INSERT signals"))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "signal_id")?, r.try_get("", "occurred_at")?))).collect()
}

/// The position a pipeline's stream has reached (0: none yet).
pub async fn stream_position(db: &impl ConnectionTrait, tenant: &str, stream_id: &str) -> Result<i64, ApiError> {
    let row = signal_stream::Entity::find_by_id((tenant.to_string(), stream_id.to_string())).one(db).await?;
    Ok(row.map_or(0, |r| r.position))
}

/// Moves a stream's position forward to `position` (never back).
pub async fn advance_stream(
    db: &impl ConnectionTrait,
    tenant: &str,
    stream_id: &str,
    position: i64,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let row = signal_stream::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        stream_id: Set(stream_id.to_string()),
        position: Set(position),
        updated_at: Set(now),
    };
    let forward = sea_orm::sea_query::ExprTrait::lt(
        Expr::col((signal_stream::Entity, signal_stream::Column::Position)),
        position,
    );
    let upsert =
        sea_orm::sea_query::OnConflict::columns([signal_stream::Column::TenantId, signal_stream::Column::StreamId])
            .update_columns([signal_stream::Column::Position, signal_stream::Column::UpdatedAt])
            .action_and_where(forward)
            .to_owned();
    match signal_stream::Entity::insert(row).on_conflict(upsert).exec_without_returning(db).await {
        Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn to_recorded(m: signal::Model) -> Option<RecordedSignal> {
    Some(RecordedSignal {
        signal: Signal { kind: SignalType::parse(&m.kind)?, occurred_at: m.occurred_at },
        signal_id: m.signal_id,
        lead_id: m.lead_id,
        account_id: m.account_id,
        contact_id: m.contact_id,
        received_at: m.received_at,
    })
}

/// An account's signals that occurred since `since`.
fn at_account_since(tenant: &str, account_id: &str, since: DateTime<Utc>) -> Select<signal::Entity> {
    signal::Entity::find()
        .filter(signal::Column::TenantId.eq(tenant))
        .filter(signal::Column::AccountId.eq(account_id))
        .filter(signal::Column::OccurredAt.gte(since))
}

/// How many contacts of an account sent a signal since `since`.
pub async fn engaged_contacts(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let engaged: Vec<Option<String>> = at_account_since(tenant, account_id, since)
        .select_only()
        .column(signal::Column::ContactId)
        .filter(signal::Column::ContactId.is_not_null())
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(engaged.len())
}

/// How many signals an account received that occurred since `since`.
pub async fn count_at_account(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<u64, ApiError> {
    Ok(at_account_since(tenant, account_id, since).count(db).await?)
}

/// An account's latest signal of one of `kinds` that occurred since `since`.
pub async fn latest_at_account(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
    kinds: &[SignalType],
) -> Result<Option<RecordedSignal>, ApiError> {
    let latest = at_account_since(tenant, account_id, since)
        .filter(signal::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
        .order_by_desc(signal::Column::OccurredAt)
        .one(db)
        .await?;
    Ok(latest.and_then(to_recorded)) // its kind is one of `kinds`, so one this build knows
}
